"""Which environment variables a command may be given, by the gateway's own lists.

The lists are ``src/infra/host-env-security-policy.json`` of the installed gateway, vendored in
``host_env_policy.json`` (``scripts/vendor-exec-env-policy`` refreshes it; its ``_source`` names
the package version). The rules are those of ``src/infra/host-env-security.ts``:

- an **override** (``system.run``'s ``env``) of ``PATH``, of a key blocked everywhere, of a key
  blocked as an override, or with a blocked prefix is refused, the whole request with it;
  ``PAGER``/``GIT_PAGER`` set to ``""`` or ``cat`` is accepted (as ``""``: no pager);
- a key that is not a portable name is refused as invalid;
- a **shell wrapper** (``sh -c ...``) only receives terminal and locale overrides (``TERM``,
  ``LANG``, ``LC_*``, ``COLORTERM``, ``NO_COLOR``, ``FORCE_COLOR``); other accepted keys are
  dropped, because a shell could be steered by them in ways no list foresees;
- the **inherited** environment loses every key blocked everywhere, every override-only key not
  explicitly allowed to be inherited, and every blocked prefix (``LD_``, ``DYLD_``,
  ``BASH_FUNC_``); ``GIT_ALLOW_PROTOCOL`` keeps only git/http/https/ssh and a permissive
  ``GIT_PROTOCOL_FROM_USER`` becomes ``0``.

Pure functions over mappings; the agent's own secrets are removed before this (``childenv``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from importlib import resources
from typing import Any

import attrs


def _load() -> dict[str, Any]:
    return json.loads(resources.files(__package__).joinpath("host_env_policy.json").read_text("utf-8"))


_POLICY = _load()
SOURCE: dict[str, str] = _POLICY["_source"]


def _upper_set(values: list[str]) -> frozenset[str]:
    return frozenset(v.upper() for v in values)


BLOCKED_KEYS = _upper_set(_POLICY["blockedEverywhereKeys"])
BLOCKED_OVERRIDE_KEYS = _upper_set(_POLICY["blockedOverrideOnlyKeys"])
_ALLOWED_INHERITED = _upper_set(_POLICY["allowedInheritedOverrideOnlyKeys"])
BLOCKED_INHERITED_KEYS = BLOCKED_KEYS | (BLOCKED_OVERRIDE_KEYS - _ALLOWED_INHERITED)
BLOCKED_PREFIXES = tuple(p.upper() for p in _POLICY["blockedPrefixes"])
BLOCKED_OVERRIDE_PREFIXES = tuple(p.upper() for p in _POLICY["blockedOverridePrefixes"])

_PORTABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_WINDOWS_COMPAT = re.compile(r"^[A-Za-z_][A-Za-z0-9_()]*$")
_CARGO_TARGET = re.compile(r"^CARGO_TARGET_[A-Z0-9_]+_(?:LINKER|RUNNER)$")
_SHELL_ALLOWED = frozenset({"TERM", "LANG", "LC_ALL", "LC_CTYPE", "LC_MESSAGES", "COLORTERM", "NO_COLOR",
                            "FORCE_COLOR", "OPENCLAW_SUBAGENT_EXEC"})
_GIT_PROTOCOLS = ("git", "http", "https", "ssh")


@attrs.frozen
class OverrideCheck:
    accepted: dict[str, str]
    blocked: tuple[str, ...]  # upper-cased, sorted, unique
    invalid: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.blocked and not self.invalid

    def refusal(self) -> str:
        """The node host's wording (``SYSTEM_RUN_DENIED: environment override rejected (...)``)."""
        details = []
        if self.blocked:
            details.append(f"blocked override keys: {', '.join(self.blocked)}")
        if self.invalid:
            details.append(f"invalid non-portable override keys: {', '.join(self.invalid)}")
        return f"SYSTEM_RUN_DENIED: environment override rejected ({'; '.join(details)})"


def _no_pager(key: str, value: str) -> bool:
    return key in ("PAGER", "GIT_PAGER") and value in ("", "cat")


def is_blocked_everywhere(key: str) -> bool:
    upper = key.strip().upper()
    return upper in BLOCKED_KEYS or upper.startswith(BLOCKED_PREFIXES)


def is_blocked_override(key: str) -> bool:
    upper = key.strip().upper()
    return (upper in BLOCKED_OVERRIDE_KEYS or bool(_CARGO_TARGET.match(upper))
            or upper.startswith(BLOCKED_OVERRIDE_PREFIXES))


def check_overrides(overrides: Mapping[str, str] | None) -> OverrideCheck:
    """Sort requested overrides into accepted, blocked and invalid (values must be strings:
    the caller has checked that)."""
    accepted: dict[str, str] = {}
    blocked: set[str] = set()
    invalid: set[str] = set()
    for raw_key, value in (overrides or {}).items():
        key = raw_key.strip()
        if not key or not (_PORTABLE.match(key) or _WINDOWS_COMPAT.match(key)):
            invalid.add(key or raw_key)
            continue
        upper = key.upper()
        if upper == "PATH":
            blocked.add(upper)
        elif _no_pager(upper, value):
            accepted[key] = ""
        elif is_blocked_everywhere(upper) or is_blocked_override(upper):
            blocked.add(upper)
        else:
            accepted[key] = value
    return OverrideCheck(accepted, tuple(sorted(blocked)), tuple(sorted(invalid)))


def for_shell_wrapper(accepted: Mapping[str, str]) -> dict[str, str]:
    """What a ``sh -c`` command keeps of the accepted overrides."""
    kept = {}
    for key, value in accepted.items():
        upper = key.upper()
        if not _PORTABLE.match(key):
            continue
        if _no_pager(upper, value) or upper in _SHELL_ALLOWED or upper.startswith("LC_"):
            kept[key] = value
    return kept


def _permissive(value: str) -> bool:
    text = value.strip().lower()
    numeric = bool(re.fullmatch(r"[+-]?\d+", text)) and not re.fullmatch(r"[+-]?0+", text)
    return text in ("true", "yes", "on") or numeric


def filter_inherited(env: Mapping[str, str]) -> dict[str, str]:
    """The inherited environment a command may see."""
    out: dict[str, str] = {}
    for raw_key, value in env.items():
        key = raw_key.strip()
        if not key:
            continue
        upper = key.upper()
        if upper == "GIT_ALLOW_PROTOCOL":
            out[key] = ":".join(p for p in value.strip().split(":") if p in _GIT_PROTOCOLS)
            continue
        if upper == "GIT_PROTOCOL_FROM_USER":
            out[key] = "0" if _permissive(value) else value
            continue
        if upper in BLOCKED_INHERITED_KEYS or upper.startswith(BLOCKED_PREFIXES):
            continue
        out[key] = value
    return out
