"""The environment a child process starts with: the one place that decides it.

Every program the agent starts (a notifier, a speech engine, a speech-to-text command, an MCP
server, a command the gateway asked us to run) gets its environment from here, never a copy of
``os.environ``. The agent's own environment holds what a child must not see: the gateway's
shared token (``OPENCLAW_GATEWAY_TOKEN``, kept for the service's lifetime by a systemd env
file), a password, the paths of token files. A child that inherits them can read them from its
own ``/proc/PID/environ``, and so can anything that child starts.

Three shapes:

* :func:`helper_env` for helper programs (notify-send, espeak-ng, ``say``, STT commands): an
  allowlist of what such a tool needs to find its binaries, speak the locale and reach the
  desktop session's sound and notification services, plus the caller's extras.
* :func:`server_env` for a configured MCP server: the helper allowlist plus the variables a
  person wrote into its ``env`` table, *by name*: an MCP server's ``GITHUB_TOKEN`` is why that
  table exists, so a credential-looking name a person configured for that server passes (a
  registered secret's value still never does, whatever its name).
* :func:`without_secrets` for a child that should see the node's environment as a person set it
  up (a command run for the agent): everything except what is secret.

Invariants: no variable whose name is a known credential reaches a child, whatever the caller
passes; no value equal to a secret the process has registered with
:func:`node_agent.logs.register_secret` reaches a child under any name (a token copied into an
innocently named variable is still the token).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

#: What a helper program needs: where binaries and libraries are, who and where the user is,
#: the locale, and the session buses and sockets for sound, notifications and a display.
HELPER_KEYS = frozenset({
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TERM",
    "XDG_RUNTIME_DIR", "XDG_DATA_DIRS", "XDG_CONFIG_DIRS", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME",
    "DBUS_SESSION_BUS_ADDRESS", "DISPLAY", "WAYLAND_DISPLAY", "XAUTHORITY",
    "PULSE_SERVER", "PULSE_RUNTIME_PATH", "PIPEWIRE_RUNTIME_DIR", "ALSA_CONFIG_PATH",
    # Windows: without these, PowerShell and the speech API do not start.
    "SYSTEMROOT", "SYSTEMDRIVE", "WINDIR", "COMSPEC", "PATHEXT", "TEMP", "TMP", "USERPROFILE",
    "APPDATA", "LOCALAPPDATA", "PROGRAMDATA", "PROGRAMFILES", "PSMODULEPATH",
})
HELPER_PREFIXES = ("LC_",)

#: Names that are credentials wherever they appear: the gateway's (OpenClaw's own spellings),
#: ours, and the usual suspects a node's environment may carry for other tools.
SECRET_KEYS = frozenset({
    "OPENCLAW_GATEWAY_TOKEN", "OPENCLAW_GATEWAY_PASSWORD", "OPENCLAW_TOKEN", "OPENCLAW_PASSWORD",
    "NODE_AGENT_TOKEN_FILE", "CREDENTIALS_DIRECTORY",
})
_SECRET_MARKERS = ("TOKEN", "PASSWORD", "PASSWD", "SECRET", "API_KEY", "APIKEY", "PRIVATE_KEY", "CREDENTIAL")


def is_secret_name(name: str) -> bool:
    upper = name.upper()
    return upper in SECRET_KEYS or any(marker in upper for marker in _SECRET_MARKERS)


def helper_env(extra: Mapping[str, str] | None = None, *, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """A helper program's environment: the allowlisted part of ``base`` (default ``os.environ``)
    plus ``extra`` (the caller's own variables, e.g. text for a speech engine), minus secrets."""
    source = os.environ if base is None else base
    env = {k: v for k, v in source.items() if _helper_key(k)}
    if extra:
        env.update(extra)
    return without_secrets(env)


def server_env(configured: Mapping[str, str], *, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """A configured MCP server's environment (see module doc): :func:`helper_env` plus
    ``configured``, except any value this process registered as secret (the gateway's token or
    password copied into a server's ``env`` by mistake is still dropped)."""
    from .logs import registered_values

    env = helper_env(base=base)
    secrets = registered_values()
    env.update({k: v for k, v in configured.items() if v not in secrets})
    return env


def without_secrets(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` without credentials: no secret-named variable, no registered secret value."""
    from .logs import registered_values

    secrets = registered_values()
    return {k: v for k, v in env.items() if not is_secret_name(k) and v not in secrets}


def _helper_key(name: str) -> bool:
    upper = name.upper() if os.name == "nt" else name  # Windows names are case-insensitive
    return upper in HELPER_KEYS or upper.startswith(HELPER_PREFIXES)
