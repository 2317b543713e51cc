"""The ``[mcp]`` table of the config file, validated strictly (a typo is an error).

Defined at the configuration's level, not in the tools room: loading a config must not import
the MCP SDK (seconds of pydantic model building) or Trio.

Example::

    [mcp.builtin]                  # the node's own tools, in process (no subprocess)
    enabled = true
    [mcp.builtin.gpio.relay]       # only named lines are ever touched (Pi adapter)
    chip = "/dev/gpiochip0"
    line = 17
    direction = "out"

    [[mcp.servers]]
    name = "time"                  # [A-Za-z][A-Za-z0-9_-]*, at most 31; "device" is the builtin's
    command = ["mcp-server-time", "--local-timezone", "UTC"]
    env = { TZ = "UTC" }           # added to a minimal environment; values are masked in logs
    cwd = "/srv"
    enabled = true
    timeout = 60                   # seconds: to start and list tools, and for each call
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

from ..errors import ConfigError

BUILTIN_SERVER = "device"
DEFAULT_TIMEOUT = 60.0
SERVER_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,30}$")
_GPIO_DIRECTIONS = ("in", "out")
_GPIO_BIAS = ("as-is", "disabled", "pull-up", "pull-down")


def _env_repr(env: Mapping[str, str]) -> str:
    return "{" + ", ".join(f"{k!r}: '***'" for k in env) + "}"


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True, repr=False)
class McpServerSettings:
    """One ``[[mcp.servers]]`` entry. ``env`` values never show in ``repr`` (API keys live there)."""

    name: str
    command: tuple[str, ...]
    env: Mapping[str, str] = dataclasses.field(default_factory=dict)
    cwd: str | None = None
    enabled: bool = True
    timeout: float = DEFAULT_TIMEOUT

    def __repr__(self) -> str:
        return (f"McpServerSettings(name={self.name!r}, command={self.command!r}, env={_env_repr(self.env)}, "
                f"cwd={self.cwd!r}, enabled={self.enabled!r}, timeout={self.timeout!r})")


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class GpioLineSettings:
    name: str
    chip: str
    line: int
    direction: str = "in"
    active_low: bool = False
    bias: str = "as-is"


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class BuiltinToolsSettings:
    enabled: bool = False
    timeout: float = 10.0
    gpio: tuple[GpioLineSettings, ...] = ()


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class McpSettings:
    servers: tuple[McpServerSettings, ...] = ()
    builtin: BuiltinToolsSettings = BuiltinToolsSettings()

    @property
    def enabled_servers(self) -> tuple[McpServerSettings, ...]:
        return tuple(s for s in self.servers if s.enabled)

    @property
    def declares_tools(self) -> bool:
        """Whether the node declares ``mcp.tools.call.v1`` (a new command needs a new approval
        of the node on the gateway, so it is declared only when something can answer it)."""
        return bool(self.enabled_servers) or self.builtin.enabled

    @classmethod
    def from_table(cls, table: Mapping[str, Any], *, where: str | None = None) -> "McpSettings":
        """Validate an ``[mcp]`` table; ``where`` (the file) prefixes every error."""
        try:
            return cls._from_table(table)
        except ConfigError as exc:
            raise ConfigError((f"{where}: " if where else "") + exc.message, hint=exc.hint) from None

    @classmethod
    def _from_table(cls, table: Mapping[str, Any]) -> "McpSettings":
        _known(table, ("servers", "builtin"), "mcp")
        raw_servers = table.get("servers", [])
        if not isinstance(raw_servers, list) or not all(isinstance(s, Mapping) for s in raw_servers):
            raise ConfigError("mcp.servers must be an array of tables ([[mcp.servers]])")
        servers = tuple(_server(s, i) for i, s in enumerate(raw_servers))
        seen: set[str] = set()
        for server in servers:
            if server.name in seen:
                raise ConfigError(f"two [[mcp.servers]] are named {server.name!r}")
            seen.add(server.name)
        if "builtin" not in table:
            return cls(servers=servers)
        builtin = table["builtin"]
        if isinstance(builtin, bool):
            builtin = {"enabled": builtin}
        if not isinstance(builtin, Mapping):
            raise ConfigError("mcp.builtin must be a table or true/false")
        return cls(servers=servers, builtin=_builtin(builtin))


def _known(table: Mapping[str, Any], keys: tuple[str, ...], where: str) -> None:
    unknown = sorted(set(table) - set(keys))
    if unknown:
        raise ConfigError(f"unknown key {where}.{unknown[0]} (known: {', '.join(keys)})")


def _server(table: Mapping[str, Any], index: int) -> McpServerSettings:
    where = f"mcp.servers[{index}]"
    _known(table, ("name", "command", "env", "cwd", "enabled", "timeout"), where)
    name = table.get("name")
    if not isinstance(name, str) or not SERVER_NAME_RE.match(name):
        raise ConfigError(f"{where}.name must match {SERVER_NAME_RE.pattern} (got {name!r})")
    if name == BUILTIN_SERVER:
        raise ConfigError(f"{where}.name {name!r} is reserved for the builtin tools")
    where = f"mcp.servers {name!r}"
    command = table.get("command")
    if (not isinstance(command, list) or not command or not all(isinstance(a, str) for a in command)
            or not command[0]):
        raise ConfigError(f"{where}: command must be a non-empty list of strings (an argv, "
                          "no shell)")
    env = table.get("env", {})
    if not isinstance(env, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
        raise ConfigError(f"{where}: env must be a table of strings")
    cwd = table.get("cwd")
    if cwd is not None and (not isinstance(cwd, str) or not cwd):
        raise ConfigError(f"{where}: cwd must be a path")
    enabled = table.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ConfigError(f"{where}: enabled must be true or false")
    return McpServerSettings(name=name, command=tuple(command), env=dict(env), cwd=cwd, enabled=enabled,
                             timeout=_timeout(table.get("timeout", DEFAULT_TIMEOUT), where))


def _timeout(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 3600:
        raise ConfigError(f"{where}: timeout must be a number of seconds in (0, 3600]")
    return float(value)


def _builtin(table: Mapping[str, Any]) -> BuiltinToolsSettings:
    _known(table, ("enabled", "timeout", "gpio"), "mcp.builtin")
    enabled = table.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ConfigError("mcp.builtin.enabled must be true or false")
    gpio = table.get("gpio", {})
    if not isinstance(gpio, Mapping) or not all(isinstance(v, Mapping) for v in gpio.values()):
        raise ConfigError("mcp.builtin.gpio must be tables, one per named line "
                          "([mcp.builtin.gpio.<name>])")
    lines = tuple(_gpio_line(name, spec) for name, spec in sorted(gpio.items()))
    taken: dict[tuple[str, int], str] = {}
    for line in lines:
        other = taken.setdefault((line.chip, line.line), line.name)
        if other != line.name:
            raise ConfigError(f"mcp.builtin.gpio: {other!r} and {line.name!r} are the same line")
    return BuiltinToolsSettings(enabled=enabled, gpio=lines,
                                timeout=_timeout(table.get("timeout", 10.0), "mcp.builtin"))


def _gpio_line(name: str, table: Mapping[str, Any]) -> GpioLineSettings:
    where = f"mcp.builtin.gpio.{name}"
    if not SERVER_NAME_RE.match(name):
        raise ConfigError(f"{where}: a line name must match {SERVER_NAME_RE.pattern}")
    _known(table, ("chip", "line", "direction", "active_low", "bias"), where)
    chip, line = table.get("chip"), table.get("line")
    if not isinstance(chip, str) or not chip:
        raise ConfigError(f"{where}.chip must be a GPIO chip (e.g. /dev/gpiochip0)")
    if isinstance(line, bool) or not isinstance(line, int) or line < 0:
        raise ConfigError(f"{where}.line must be a line offset (a number >= 0)")
    direction = table.get("direction", "in")
    if direction not in _GPIO_DIRECTIONS:
        raise ConfigError(f"{where}.direction must be one of {', '.join(_GPIO_DIRECTIONS)}")
    active_low = table.get("active_low", False)
    if not isinstance(active_low, bool):
        raise ConfigError(f"{where}.active_low must be true or false")
    bias = table.get("bias", "as-is")
    if bias not in _GPIO_BIAS:
        raise ConfigError(f"{where}.bias must be one of {', '.join(_GPIO_BIAS)}")
    return GpioLineSettings(name=name, chip=chip, line=line, direction=direction, active_low=active_low,
                            bias=bias)
