"""The ``[exec]`` table of the config file: whether this node runs commands for the agent.

Strict, like every section (an unknown key is an error naming the file). Defined here, not in
the exec room, so loading a config imports nothing of it.

    [exec]
    enabled = true          # default: on for the linux, macos and windows adapters, off on pi
    cwd = "/srv/work"       # where a command runs when the gateway names no cwd (default: $HOME)
    audit_max_bytes = 4194304
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..errors import ConfigError

#: Adapters that offer commands unless ``[exec] enabled = false`` (a Pi is a voice node first).
ENABLED_BY_DEFAULT = frozenset({"linux", "macos", "windows"})


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class ExecSettings:
    #: None: the adapter decides (:data:`ENABLED_BY_DEFAULT`).
    enabled: bool | None = None
    cwd: str | None = None
    audit_max_bytes: int = 4 * 1024 * 1024

    def active_for(self, adapter: str) -> bool:
        return self.enabled if self.enabled is not None else adapter in ENABLED_BY_DEFAULT

    @classmethod
    def from_table(cls, table: dict[str, Any], *, where: str | None = None) -> "ExecSettings":
        prefix = f"{where}: " if where else ""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(table) - known
        if unknown:
            raise ConfigError(f"{prefix}unknown key exec.{sorted(unknown)[0]} (known: {', '.join(sorted(known))})")
        values = dict(table)
        if "enabled" in values and not isinstance(values["enabled"], bool):
            raise ConfigError(f"{prefix}exec.enabled must be true or false")
        if "cwd" in values and (not isinstance(values["cwd"], str) or not values["cwd"].startswith("/")):
            raise ConfigError(f"{prefix}exec.cwd must be an absolute path")
        if "audit_max_bytes" in values:
            size = values["audit_max_bytes"]
            if isinstance(size, bool) or not isinstance(size, int) or not 4096 <= size <= 1 << 34:
                raise ConfigError(f"{prefix}exec.audit_max_bytes must be a whole number of bytes, 4096 or more")
        return cls(**values)
