"""Configuration: a TOML file, then the environment, then command-line flags (each overrides the last).

Strict where a person typed it: an unknown key in the TOML file is an error (a typo should not
silently do nothing). Secrets never come from a flag value (it would show in ``ps`` and shell
history): the shared token comes from ``OPENCLAW_GATEWAY_TOKEN`` or a token file.

Plain ``ws://`` is refused unless the host is loopback, a private/link-local/CGNAT address,
``*.local`` or ``*.ts.net`` (the same rule as OpenClaw's own clients), or the user explicitly
allows it: a device token sent in clear over the internet is a stolen device.

Example ``config.toml``::

    [gateway]
    url = "wss://gateway.example:18789"
    token_file = "/etc/node-agent/token"
    protocol = "openclaw"          # or "jsonrpc", "auto"
    tls_fingerprint = "ab:cd:..."  # optional pin

    [node]
    display_name = "kitchen-pi"
    adapter = "pi"                 # linux | pi | macos | windows (default: detected)

    [secrets]
    backend = "auto"               # auto | keyring | file | memory

Each section other than the flat ones above is a typed settings class of its own module in
this package (``[voice]``: :mod:`.voice`; ``[exec]``: :mod:`.exec`; ``[mcp]``: :mod:`.mcp`), validated as strictly.

Import rule: this package imports only ``errors`` and ``secret`` (no Trio, no voice, no
transport): every command, ``node-agent identity`` included, loads it. For the same reason its
settings are stdlib dataclasses, not attrs classes like the rest of the code: importing attrs
alone is ~25 ms of the 100 ms a read-only command may take (``bench/cli_start.py``).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import urlsplit

from ..errors import ConfigError
from ..secret import Secret
from .exec import ExecSettings
from .mcp import McpSettings
from .voice import VoiceSettings

DEFAULT_GATEWAY_URL = "ws://127.0.0.1:18789"
PROTOCOLS = ("openclaw", "jsonrpc", "auto")
SECRET_BACKENDS = ("auto", "keyring", "file", "memory")
ADAPTERS = ("linux", "pi", "macos", "windows")
LOG_LEVELS = ("debug", "info", "warning", "error")

#: Settings with a fixed set of values, checked where they are read (so the error names the file
#: or the variable); flags are checked by argparse, defaults by :func:`validate`.
_CHOICES = {"protocol": PROTOCOLS, "secret_backend": SECRET_BACKENDS, "adapter": ADAPTERS, "log_level": LOG_LEVELS}

#: Sane ranges for the numbers a person may set, in seconds: (low, high). A value outside them
#: (``timeout = inf``, ``ping_interval = 1e999``, ``0``) would silently remove a limit.
_RANGES = {
    "secret_timeout": (0.1, 120.0),
    "heartbeat_interval": (5.0, 3600.0),
    "ping_interval": (1.0, 600.0),
    "ping_timeout": (0.5, 300.0),
}


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Config:
    gateway_url: str = DEFAULT_GATEWAY_URL
    gateway_url_source: str = "default"  # "default" | "file" | "env" | "flag" | "setup-code"
    shared_token: Secret | None = dataclasses.field(default=None, repr=False)
    password: Secret | None = dataclasses.field(default=None, repr=False)
    token_file: Path | None = None
    protocol: str = "openclaw"
    allow_insecure_ws: bool = False
    tls_ca_file: str | None = None
    tls_fingerprint: str | None = None
    display_name: str = dataclasses.field(default_factory=lambda: _hostname())
    adapter: str | None = None
    state_dir: Path = dataclasses.field(default_factory=lambda: default_state_dir())
    #: "default" | "file" | "env" | "flag" | "system-service" (see :func:`for_reading`).
    state_dir_source: str = "default"
    config_file: Path | None = None
    secret_backend: str = "auto"
    secret_timeout: float = 3.0
    #: Least time between two presence heartbeats; each goes out on the gateway's next tick.
    heartbeat_interval: float = 60.0
    #: Ping after this long without a frame from the gateway. Longer than OpenClaw's 30 s tick, so a
    #: healthy link is never pinged (its ticks prove it alive) and a dead one is found at ~45 s,
    #: before the tick watchdog's 60 s.
    ping_interval: float = 35.0
    ping_timeout: float = 10.0
    log_level: str = "info"
    voice: VoiceSettings = dataclasses.field(default_factory=VoiceSettings)
    exec: ExecSettings = dataclasses.field(default_factory=ExecSettings)
    mcp: McpSettings = dataclasses.field(default_factory=McpSettings)


def _hostname() -> str:
    if hasattr(os, "uname"):  # the uname(2) nodename gethostname() returns, without importing socket
        return os.uname().nodename
    import socket

    return socket.gethostname()


def default_state_dir() -> Path:
    # Under systemd, StateDirectory= hands us $STATE_DIRECTORY; HOME may mean nothing there.
    if os.environ.get("STATE_DIRECTORY"):
        return Path(os.environ["STATE_DIRECTORY"].split(":")[0])
    import platformdirs

    return Path(platformdirs.user_state_dir("node-agent", appauthor=False))


#: Where the system service keeps its state: the unit's ``StateDirectory=`` (a symlink into
#: ``/var/lib/private`` under ``DynamicUser=``).
SYSTEM_STATE_DIR = Path("/var/lib/node-agent")
#: Files that show an agent has used a state directory (identity, or a status it wrote).
_USED_MARKS = ("identity.json", "status.json")


def for_reading(config: Config, *, euid: int | None = None, system_dir: Path = SYSTEM_STATE_DIR) -> Config:
    """The configuration a command that only reads (``status``, ``identity``, ``doctor``) looks
    through. As root with no state directory chosen (no flag, variable or file setting), root's
    own default directory has usually never been used while the system service's has: then it is
    the service's. Not for ``run`` or ``pair``: where a new agent keeps its state is a person's
    choice, and joining the service's directory is what the single-instance lock refuses."""
    if os.name != "posix" or config.state_dir_source != "default" or os.environ.get("STATE_DIRECTORY"):
        return config
    if (os.geteuid() if euid is None else euid) != 0:
        return config
    if _used(config.state_dir) or not _used(system_dir):
        return config
    return dataclasses.replace(config, state_dir=system_dir, state_dir_source="system-service")


def _used(directory: Path) -> bool:
    return any((directory / name).exists() for name in _USED_MARKS)


def default_config_file() -> Path:
    if os.environ.get("CONFIGURATION_DIRECTORY"):
        return Path(os.environ["CONFIGURATION_DIRECTORY"].split(":")[0]) / "config.toml"
    import platformdirs

    return Path(platformdirs.user_config_dir("node-agent", appauthor=False)) / "config.toml"


# TOML schema: section -> key -> (Config field, type)
_SCHEMA: dict[str, dict[str, tuple[str, type]]] = {
    "gateway": {"url": ("gateway_url", str), "token_file": ("token_file", str), "protocol": ("protocol", str),
                "allow_insecure_ws": ("allow_insecure_ws", bool), "tls_ca_file": ("tls_ca_file", str),
                "tls_fingerprint": ("tls_fingerprint", str), "ping_interval": ("ping_interval", float),
                "ping_timeout": ("ping_timeout", float)},
    "node": {"display_name": ("display_name", str), "adapter": ("adapter", str), "state_dir": ("state_dir", str),
             "heartbeat_interval": ("heartbeat_interval", float)},
    "secrets": {"backend": ("secret_backend", str), "timeout": ("secret_timeout", float)},
    "log": {"level": ("log_level", str)},
}

_ENV: dict[str, tuple[str, type]] = {
    "OPENCLAW_GATEWAY_URL": ("gateway_url", str),
    "NODE_AGENT_TOKEN_FILE": ("token_file", str),
    "NODE_AGENT_PROTOCOL": ("protocol", str),
    "NODE_AGENT_ALLOW_INSECURE_WS": ("allow_insecure_ws", bool),
    "NODE_AGENT_TLS_CA_FILE": ("tls_ca_file", str),
    "NODE_AGENT_TLS_FINGERPRINT": ("tls_fingerprint", str),
    "NODE_AGENT_DISPLAY_NAME": ("display_name", str),
    "NODE_AGENT_ADAPTER": ("adapter", str),
    "NODE_AGENT_STATE_DIR": ("state_dir", str),
    "NODE_AGENT_SECRET_BACKEND": ("secret_backend", str),
    "NODE_AGENT_LOG_LEVEL": ("log_level", str),
}


def _coerce(value: Any, kind: type, where: str, field: str | None = None) -> Any:
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            return value.strip().lower() in ("1", "true", "yes", "on")
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if kind is float:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected a number")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected a number, got {value!r}") from None
        low, high = _RANGES.get(field or "", (0.0, float("inf")))
        if not (number == number and number != float("inf")):  # NaN or infinite
            raise ConfigError(f"{where}: must be a finite number, got {value!r}")
        if not low <= number <= high or not number > 0:
            raise ConfigError(f"{where}: must be between {low:g} and {high:g} seconds, got {value!r}")
        return number
    if not isinstance(value, str):
        raise ConfigError(f"{where}: expected a string, got {type(value).__name__}")
    choices = _CHOICES.get(field or "")
    if choices is not None and value.lower() not in choices:
        raise ConfigError(f"{where}: must be one of {', '.join(choices)}, got {value!r}")
    if field == "tls_fingerprint":
        try:
            normalize_fingerprint(value)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc.message}") from None
    return value


def _shown(name: str) -> str:
    """A key as typed, or quoted if it holds anything that could break the message's one line."""
    return name if name.isprintable() and name.strip() == name and name else repr(name)


def read_toml(path: Path) -> tuple[dict[str, Any], VoiceSettings | None]:
    """Return (settings, voice settings) from a TOML file; raise ConfigError naming the file."""
    import tomllib  # only where a file exists: most runs of a read-only command have none

    try:
        data = tomllib.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not UTF-8") from None
    except RecursionError:  # tomllib recurses once per nested array or inline table
        raise ConfigError(f"config file {path} is nested too deeply") from None
    settings: dict[str, Any] = {}
    voice: VoiceSettings | None = None
    for section, table in data.items():
        if section == "voice":
            if not isinstance(table, dict):
                raise ConfigError(f"{path}: [voice] must be a table")
            voice = VoiceSettings.from_table(table, where=str(path))
            continue
        if section == "exec":
            if not isinstance(table, dict):
                raise ConfigError(f"{path}: [exec] must be a table")
            settings["exec"] = ExecSettings.from_table(table, where=str(path))
            continue
        if section == "mcp":
            if not isinstance(table, dict):
                raise ConfigError(f"{path}: [mcp] must be a table")
            settings["mcp"] = McpSettings.from_table(table, where=str(path))
            continue
        schema = _SCHEMA.get(section)
        if schema is None:
            raise ConfigError(f"{path}: unknown section [{_shown(section)}] "
                              f"(known: {', '.join([*_SCHEMA, 'voice', 'exec', 'mcp'])})")
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: [{section}] must be a table")
        for key, value in table.items():
            if key not in schema:
                raise ConfigError(f"{path}: unknown key {section}.{_shown(key)} (known: {', '.join(schema)})")
            field, kind = schema[key]
            settings[field] = _coerce(value, kind, f"{path}: {section}.{key}", field)
    return settings, voice


def load_config(*, config_file: Path | None = None, env: Mapping[str, str] | None = None,
                flags: Mapping[str, Any] | None = None) -> Config:
    """Merge defaults < TOML < environment < flags and validate the result."""
    env = os.environ if env is None else env
    flags = {k: v for k, v in (flags or {}).items() if v is not None}
    settings: dict[str, Any] = {}
    sources: dict[str, str] = {}
    voice: VoiceSettings | None = None

    explicit = config_file or (Path(env["NODE_AGENT_CONFIG"]) if env.get("NODE_AGENT_CONFIG") else None)
    path = explicit or default_config_file()
    if explicit is not None or path.exists():
        file_settings, voice = read_toml(path)
        settings.update(file_settings)
        sources.update({k: "file" for k in file_settings})
        settings["config_file"] = path
    for name, (field, kind) in _ENV.items():
        if env.get(name):
            settings[field] = _coerce(env[name], kind, f"${name}", field)
            sources[field] = "env"
    for field, value in flags.items():
        settings[field] = value
        sources[field] = "flag"

    if "gateway_url" in settings:
        settings["gateway_url_source"] = sources.get("gateway_url", "default")
    if "state_dir" in settings:
        settings["state_dir_source"] = sources.get("state_dir", "default")
    for key in ("state_dir", "token_file"):
        if isinstance(settings.get(key), str):
            settings[key] = _expand_path(settings[key], key)
    if settings.get("token_file") is not None:
        settings["shared_token"] = read_token_file(settings["token_file"])
    elif env.get("OPENCLAW_GATEWAY_TOKEN"):
        settings["shared_token"] = Secret(env["OPENCLAW_GATEWAY_TOKEN"].strip())
    if env.get("OPENCLAW_GATEWAY_PASSWORD"):
        settings["password"] = Secret(env["OPENCLAW_GATEWAY_PASSWORD"])
    if voice is not None:
        settings["voice"] = voice
    try:
        config = Config(**settings)
    except TypeError as exc:
        raise ConfigError(f"bad configuration: {exc}") from None
    validate(config)
    return config


def _expand_path(text: str, what: str) -> Path:
    if "\x00" in text:
        raise ConfigError(f"{what} contains a NUL character")
    try:
        return Path(text).expanduser()
    except RuntimeError:  # "~someone" for a user that does not exist
        raise ConfigError(f"{what} {text!r}: cannot expand '~' (no such user or no home directory)") from None


def read_token_file(path: Path) -> Secret:
    try:
        text = path.read_text("utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"cannot read token file {path}: {exc.strerror or type(exc).__name__}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"token file {path} is not UTF-8") from None
    except ValueError:  # an embedded NUL in the path
        raise ConfigError(f"token file path {str(path)!r} is not a valid path") from None
    if not text:
        raise ConfigError(f"token file {path} is empty")
    _warn_if_public(path)
    return Secret(text)


def _warn_if_public(path: Path) -> None:
    """One warning when everyone on the machine can read (or replace) the token file. Used anyway:
    refusing would not un-leak it, only stop the agent. Group bits are left alone: 0640 with the
    service's group is how a shared token is meant to reach a service account."""
    if os.name != "posix":
        return
    try:
        mode = path.stat().st_mode & 0o777
    except OSError:
        return
    if mode & 0o006:
        import logging

        logging.getLogger("node_agent.config").warning(
            "token file %s has mode %04o: every user on this machine can read or replace the gateway "
            "token; chmod 600 %s (or 640 with the service's group)", path, mode, path)


def validate(config: Config) -> None:
    if config.protocol not in PROTOCOLS:
        raise ConfigError(f"protocol must be one of {', '.join(PROTOCOLS)}, got {config.protocol!r}")
    if config.secret_backend not in SECRET_BACKENDS:
        raise ConfigError(f"secrets backend must be one of {', '.join(SECRET_BACKENDS)}, got {config.secret_backend!r}")
    if config.adapter is not None and config.adapter not in ADAPTERS:
        raise ConfigError(f"adapter must be one of {', '.join(ADAPTERS)}, got {config.adapter!r}")
    if config.log_level.lower() not in LOG_LEVELS:
        raise ConfigError(f"log level must be one of {', '.join(LOG_LEVELS)}, got {config.log_level!r}")
    check_gateway_url(config.gateway_url, allow_insecure=config.allow_insecure_ws)
    if config.tls_fingerprint:
        normalize_fingerprint(config.tls_fingerprint)  # a malformed pin is a config error now, not at connect


def normalize_fingerprint(fingerprint: str) -> str:
    """A TLS pin as 64 lowercase hex digits (``sha256:`` prefix and colons allowed in the input)."""
    text = fingerprint.lower().removeprefix("sha256:").replace(":", "").strip()
    if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
        raise ConfigError("TLS fingerprint must be a SHA-256 hex digest (64 hex digits, colons allowed)")
    return text


def check_gateway_url(url: str, *, allow_insecure: bool = False) -> None:
    try:
        parts = urlsplit(url)
    except ValueError:  # an unbalanced IPv6 bracket, for one
        raise ConfigError(f"gateway URL is malformed: {url!r}") from None
    if parts.scheme not in ("ws", "wss"):
        raise ConfigError(f"gateway URL must start with ws:// or wss://, got {url!r}")
    try:
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise ConfigError(f"gateway URL has a bad port: {url!r}") from None
    if not host:
        raise ConfigError(f"gateway URL has no host: {url!r}")
    if parts.scheme == "ws" and not allow_insecure and not is_private_host(host):
        raise ConfigError(
            f"refusing plain ws:// to {host}: tokens would cross the internet unencrypted",
            hint="use wss:// (TLS), or set gateway.allow_insecure_ws = true if this network is really private")


def is_private_host(host: str) -> bool:
    name = host.lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost") or name.endswith(".local") or name.endswith(".ts.net"):
        return True
    try:
        addr = ipaddress.ip_address(name)
    except ValueError:
        return False  # a public-looking name: we will not resolve DNS to decide
    if addr.is_loopback or addr.is_private or addr.is_link_local:
        return True
    return isinstance(addr, ipaddress.IPv4Address) and addr in ipaddress.ip_network("100.64.0.0/10")
