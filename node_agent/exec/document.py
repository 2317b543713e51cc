"""The exec approvals document, in OpenClaw's own format, and the policy it resolves to.

Pure data: no files, no clocks of its own (callers pass ``now_ms``), no randomness of its own
(callers pass ``new_id``). The store (``store.py``) reads and writes it; the decision table
(``decision.py``) consumes what :func:`resolve` returns.

The format is the gateway's (``packages/gateway-protocol/src/schema/exec-approvals.ts``, closed
objects; ``src/infra/exec-approvals-config.ts`` for the persisted form)::

    {version: 1,
     defaults?: {security?, ask?, askFallback?, autoAllowSkills?},
     agents?: {<agentId> | "*": {security?, ask?, askFallback?, autoAllowSkills?,
                                allowlist?: [{id?, pattern, argPattern?, source?: "allow-always",
                                              lastUsedAt?, lastUsedCommand?, lastResolvedPath?}],
                                mcpTools?: [...]}}}

Differences from the node host, on purpose:

- **Unconfigured means ask.** A field absent everywhere resolves to ``allowlist`` / ``on-miss`` /
  ``askFallback: deny`` / ``autoAllowSkills: false`` (the node host: ``full`` / ``off``), so a new
  command always goes to a person at the gateway.
- **Strict values.** An unknown ``security``/``ask`` value or an unknown key is an error naming
  the place (never the value), not a silently ignored field: a typo must not loosen policy.
- **No socket.** ``socket`` (the macOS companion app's exec host and its token) has no meaning
  here; it is dropped on write and never stored, so the document holds no secret.

Normalization (as the node host's ``normalizeExecApprovals``): string allowlist entries become
``{pattern}``, every entry gets an ``id``, the legacy ``commandText`` field is dropped, and the
legacy agent key ``default`` merges into ``main``. Key order is fixed so the bytes, and so the
hash, depend on content only.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

SECURITY_VALUES = ("deny", "allowlist", "full")
ASK_VALUES = ("off", "on-miss", "always")
ALLOW_ALWAYS = "allow-always"
DEFAULT_AGENT_ID = "main"
WILDCARD_AGENT = "*"

_POLICY_KEYS = ("security", "ask", "askFallback", "autoAllowSkills")
_ENTRY_KEYS = ("id", "pattern", "argPattern", "source", "lastUsedAt", "lastUsedCommand", "lastResolvedPath")
_MCP_KEYS = ("server", "tool", "source", "addedAt", "lastUsedAt")


class DocumentError(ValueError):
    """The document is not a valid approvals document; the message names where, never a value."""


@dataclasses.dataclass(frozen=True, slots=True)
class Policy:
    security: str
    ask: str
    ask_fallback: str
    auto_allow_skills: bool

    def as_wire(self) -> dict[str, Any]:
        return {
            "security": self.security,
            "ask": self.ask,
            "askFallback": self.ask_fallback,
            "autoAllowSkills": self.auto_allow_skills,
        }


#: What an unconfigured node does: every command not on the allowlist goes to a person.
UNCONFIGURED = Policy(security="allowlist", ask="on-miss", ask_fallback="deny", auto_allow_skills=False)
#: What an unreadable document means: nothing runs.
FAIL_CLOSED = Policy(security="deny", ask="off", ask_fallback="deny", auto_allow_skills=False)


@dataclasses.dataclass(frozen=True, slots=True)
class AllowlistEntry:
    pattern: str
    arg_pattern: str | None = None
    source: str | None = None
    id: str | None = None

    @property
    def allow_always(self) -> bool:
        return self.source == ALLOW_ALWAYS


@dataclasses.dataclass(frozen=True, slots=True)
class Resolved:
    """The policy one agent runs under, with the allowlist that applies to it (``*`` first)."""

    agent_id: str | None
    defaults: Policy
    policy: Policy
    allowlist: tuple[AllowlistEntry, ...]


def empty_document() -> dict[str, Any]:
    """The document a fresh node writes: the unconfigured policy, spelled out."""
    return {"version": 1, "defaults": UNCONFIGURED.as_wire(), "agents": {}}


def fail_closed_document() -> dict[str, Any]:
    """What ``get`` shows while the stored document is unusable."""
    return {"version": 1, "defaults": FAIL_CLOSED.as_wire(), "agents": {}}


# --- validation and normalization -------------------------------------------------------------


def _require_object(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise DocumentError(f"{where}: expected an object")
    return value


def _closed(value: Mapping[str, Any], allowed: Iterable[str], where: str) -> None:
    extra = sorted(set(value) - set(allowed))
    if extra:
        # Key names are not values: naming them is safe and is what a person needs.
        raise DocumentError(f"{where}: unknown field {extra[0]!r}")


def _string(value: Any, where: str, *, non_empty: bool = False) -> str:
    if not isinstance(value, str) or (non_empty and not value.strip()):
        raise DocumentError(f"{where}: expected a {'non-empty ' if non_empty else ''}string")
    return value


def _number(value: Any, where: str) -> int | float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise DocumentError(f"{where}: expected a finite number >= 0")
    return value


def _policy_fields(raw: Mapping[str, Any], where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, values in (("security", SECURITY_VALUES), ("ask", ASK_VALUES), ("askFallback", SECURITY_VALUES)):
        if key in raw and raw[key] is not None:
            value = raw[key]
            if not isinstance(value, str) or value.strip() not in values:
                raise DocumentError(f"{where}.{key}: expected one of {', '.join(values)}")
            out[key] = value.strip()
    if "autoAllowSkills" in raw and raw["autoAllowSkills"] is not None:
        if not isinstance(raw["autoAllowSkills"], bool):
            raise DocumentError(f"{where}.autoAllowSkills: expected a boolean")
        out["autoAllowSkills"] = raw["autoAllowSkills"]
    return out


def _entry(raw: Any, where: str, new_id: Callable[[], str]) -> dict[str, Any]:
    if isinstance(raw, str):
        raw = {"pattern": raw}
    entry = _require_object(raw, where)
    # commandText is a legacy field the node host strips too (exec-approvals-config.ts).
    _closed(entry, (*_ENTRY_KEYS, "commandText"), where)
    pattern = _string(entry.get("pattern"), f"{where}.pattern", non_empty=True).strip()
    out: dict[str, Any] = {"id": entry.get("id") or new_id(), "pattern": pattern}
    _string(out["id"], f"{where}.id", non_empty=True)
    if entry.get("argPattern") is not None:
        out["argPattern"] = _string(entry["argPattern"], f"{where}.argPattern")
    if entry.get("source") is not None:
        if entry["source"] != ALLOW_ALWAYS:
            raise DocumentError(f"{where}.source: expected \"allow-always\"")
        out["source"] = ALLOW_ALWAYS
    if entry.get("lastUsedAt") is not None:
        out["lastUsedAt"] = _number(entry["lastUsedAt"], f"{where}.lastUsedAt")
    for key in ("lastUsedCommand", "lastResolvedPath"):
        if entry.get(key) is not None:
            out[key] = _string(entry[key], f"{where}.{key}")
    return out


def _mcp_tool(raw: Any, where: str) -> dict[str, Any]:
    grant = _require_object(raw, where)
    _closed(grant, _MCP_KEYS, where)
    out: dict[str, Any] = {
        "server": _string(grant.get("server"), f"{where}.server", non_empty=True),
        "tool": _string(grant.get("tool"), f"{where}.tool", non_empty=True),
    }
    if grant.get("source") != ALLOW_ALWAYS:
        raise DocumentError(f"{where}.source: expected \"allow-always\"")
    out["source"] = ALLOW_ALWAYS
    out["addedAt"] = _number(grant.get("addedAt"), f"{where}.addedAt")
    if grant.get("lastUsedAt") is not None:
        out["lastUsedAt"] = _number(grant["lastUsedAt"], f"{where}.lastUsedAt")
    return out


def _agent(raw: Any, where: str, new_id: Callable[[], str]) -> dict[str, Any]:
    agent = _require_object(raw, where)
    _closed(agent, (*_POLICY_KEYS, "allowlist", "mcpTools"), where)
    out = _policy_fields(agent, where)
    if agent.get("allowlist") is not None:
        if not isinstance(agent["allowlist"], list):
            raise DocumentError(f"{where}.allowlist: expected an array")
        out["allowlist"] = [_entry(item, f"{where}.allowlist[{i}]", new_id)
                            for i, item in enumerate(agent["allowlist"])]
    if agent.get("mcpTools") is not None:
        if not isinstance(agent["mcpTools"], list):
            raise DocumentError(f"{where}.mcpTools: expected an array")
        out["mcpTools"] = [_mcp_tool(item, f"{where}.mcpTools[{i}]") for i, item in enumerate(agent["mcpTools"])]
    return out


def _merge_legacy_default(main: dict[str, Any] | None, legacy: dict[str, Any]) -> dict[str, Any]:
    # As mergeLegacyAgent: main's fields win, allowlists are joined without duplicates.
    merged = {**legacy, **(main or {})}
    seen: set[tuple[str, str]] = set()
    allowlist = []
    for entry in [*(main or {}).get("allowlist", []), *legacy.get("allowlist", [])]:
        key = (entry["pattern"].lower(), (entry.get("argPattern") or "").strip())
        if key not in seen:
            seen.add(key)
            allowlist.append(entry)
    if allowlist:
        merged["allowlist"] = allowlist
    return merged


def parse_document(data: Any, *, new_id: Callable[[], str]) -> dict[str, Any]:
    """Validate ``data`` (parsed JSON) and return the normalized document.

    Raises :class:`DocumentError` naming the first problem. ``new_id`` makes ids for entries that
    have none (``uuid4`` in production, a counter in tests)."""
    doc = _require_object(data, "document")
    _closed(doc, ("version", "socket", "defaults", "agents"), "document")
    if doc.get("version") != 1 or isinstance(doc.get("version"), bool):
        raise DocumentError("document.version: expected 1")
    if doc.get("socket") is not None:
        socket = _require_object(doc["socket"], "socket")
        _closed(socket, ("path", "token"), "socket")
    defaults: dict[str, Any] = {}
    if doc.get("defaults") is not None:
        raw_defaults = _require_object(doc["defaults"], "defaults")
        _closed(raw_defaults, _POLICY_KEYS, "defaults")
        defaults = _policy_fields(raw_defaults, "defaults")
    agents: dict[str, dict[str, Any]] = {}
    if doc.get("agents") is not None:
        for key, raw_agent in _require_object(doc["agents"], "agents").items():
            if not isinstance(key, str) or not key.strip() or key == "__proto__":
                raise DocumentError("agents: expected agent ids as keys")
            agents[key] = _agent(raw_agent, f"agents.{_safe_key(key)}", new_id)
    if "default" in agents:
        legacy = agents.pop("default")
        agents[DEFAULT_AGENT_ID] = _merge_legacy_default(agents.get(DEFAULT_AGENT_ID), legacy)
    return {"version": 1, "defaults": _ordered(defaults, _POLICY_KEYS),
            "agents": {k: _ordered_agent(v) for k, v in agents.items()}}


def _safe_key(key: str) -> str:
    return key if len(key) <= 64 and key.isprintable() else "<agent>"


def _ordered(values: Mapping[str, Any], order: Iterable[str]) -> dict[str, Any]:
    return {key: values[key] for key in order if key in values}


def _ordered_agent(agent: Mapping[str, Any]) -> dict[str, Any]:
    out = _ordered(agent, _POLICY_KEYS)
    if "allowlist" in agent:
        out["allowlist"] = [_ordered(entry, _ENTRY_KEYS) for entry in agent["allowlist"]]
    if "mcpTools" in agent:
        out["mcpTools"] = [_ordered(grant, _MCP_KEYS) for grant in agent["mcpTools"]]
    return out


# --- resolution ---------------------------------------------------------------------------------


def resolve(doc: Mapping[str, Any], agent_id: str | None, *, fallback: Policy = UNCONFIGURED) -> Resolved:
    """The policy for ``agent_id`` (its own fields, then ``*``'s, then ``defaults``, then
    ``fallback``) and its allowlist (``*``'s entries, then its own), as
    ``resolveExecApprovalsFromFile`` computes them. No agent id means only ``*`` applies."""
    raw_defaults = doc.get("defaults") or {}
    defaults = Policy(
        security=raw_defaults.get("security", fallback.security),
        ask=raw_defaults.get("ask", fallback.ask),
        ask_fallback=raw_defaults.get("askFallback", fallback.ask_fallback),
        auto_allow_skills=raw_defaults.get("autoAllowSkills", fallback.auto_allow_skills),
    )
    agents = doc.get("agents") or {}
    own = agents.get(agent_id, {}) if agent_id is not None else {}
    wildcard = agents.get(WILDCARD_AGENT, {})

    def pick(key: str, default: Any) -> Any:
        for layer in (own, wildcard):
            if key in layer:
                return layer[key]
        return default

    policy = Policy(
        security=pick("security", defaults.security),
        ask=pick("ask", defaults.ask),
        ask_fallback=pick("askFallback", defaults.ask_fallback),
        auto_allow_skills=pick("autoAllowSkills", defaults.auto_allow_skills),
    )
    entries = [*wildcard.get("allowlist", []), *(own.get("allowlist", []) if own is not wildcard else [])]
    allowlist = tuple(AllowlistEntry(pattern=e["pattern"], arg_pattern=e.get("argPattern"),
                                     source=e.get("source"), id=e.get("id")) for e in entries)
    return Resolved(agent_id=agent_id, defaults=defaults, policy=policy, allowlist=allowlist)


# --- the policy snapshot carried in a prepared plan ----------------------------------------------


def _rule_key(rule: Mapping[str, Any]) -> str:
    return json.dumps([rule["pattern"], rule.get("argPattern"), rule.get("source")], separators=(",", ":"))


def _utf8_sort_key(rule: Mapping[str, Any]) -> tuple[bytes, tuple[int, bytes], tuple[int, bytes]]:
    # The gateway sorts by UTF-8 bytes, absent before present (compareExecApprovalPolicyRules).
    def opt(value: str | None) -> tuple[int, bytes]:
        return (0, b"") if value is None else (1, value.encode("utf-8"))

    return rule["pattern"].encode("utf-8"), opt(rule.get("argPattern")), opt(rule.get("source"))


def policy_snapshot(resolved: Resolved) -> dict[str, Any]:
    """``createExecApprovalPolicySnapshot``: the effective policy without ids or usage metadata,
    rules de-duplicated and sorted so two nodes compute the same snapshot for the same policy."""
    rules: dict[str, dict[str, Any]] = {}
    for entry in resolved.allowlist:
        rule: dict[str, Any] = {"pattern": entry.pattern}
        if entry.arg_pattern is not None:
            rule["argPattern"] = entry.arg_pattern
        if entry.allow_always:
            rule["source"] = ALLOW_ALWAYS
        rules[_rule_key(rule)] = rule
    return {**resolved.policy.as_wire(), "allowlistRules": sorted(rules.values(), key=_utf8_sort_key)}


def normalize_snapshot(value: Any) -> dict[str, Any] | None:
    """Accept a snapshot that came back from the gateway inside a plan; None if malformed."""
    if not isinstance(value, dict):
        return None
    if value.get("security") not in SECURITY_VALUES or value.get("ask") not in ASK_VALUES \
            or value.get("askFallback") not in SECURITY_VALUES or not isinstance(value.get("autoAllowSkills"), bool) \
            or not isinstance(value.get("allowlistRules"), list):
        return None
    rules = []
    for raw in value["allowlistRules"]:
        if not isinstance(raw, dict) or not isinstance(raw.get("pattern"), str):
            return None
        if raw.get("argPattern") is not None and not isinstance(raw["argPattern"], str):
            return None
        if raw.get("source") not in (None, ALLOW_ALWAYS):
            return None
        rule: dict[str, Any] = {"pattern": raw["pattern"]}
        if isinstance(raw.get("argPattern"), str):
            rule["argPattern"] = raw["argPattern"]
        if raw.get("source") == ALLOW_ALWAYS:
            rule["source"] = ALLOW_ALWAYS
        rules.append(rule)
    return {key: value[key] for key in _POLICY_KEYS} | {"allowlistRules": sorted(rules, key=_utf8_sort_key)}


def snapshot_is_current(expected: Mapping[str, Any], current: Mapping[str, Any]) -> bool:
    """``isExecApprovalPolicySnapshotCurrent``: the same policy values, and every rule the person
    approved under still present (rules added since are fine; a removed rule voids the approval).
    A plain rule later upgraded to ``allow-always`` still counts as present."""
    if any(expected[key] != current[key] for key in _POLICY_KEYS):
        return False
    keys = {_rule_key(rule) for rule in current["allowlistRules"]}
    for rule in expected["allowlistRules"]:
        if _rule_key(rule) in keys:
            continue
        if "source" not in rule and _rule_key({**rule, "source": ALLOW_ALWAYS}) in keys:
            continue
        return False
    return True


# --- edits --------------------------------------------------------------------------------------


def add_allowlist_entries(doc: Mapping[str, Any], agent_id: str, patterns: Iterable[tuple[str, str | None]], *,
                          source: str | None, now_ms: int, new_id: Callable[[], str]) -> dict[str, Any] | None:
    """Add ``(pattern, argPattern)`` entries for ``agent_id`` (``applyAllowlistEntryUpdate``):
    an existing identical entry is left alone (or gains ``source``); returns None when nothing
    changed, so the caller writes nothing and the hash stays put."""
    agents = dict(doc.get("agents") or {})
    agent = dict(agents.get(agent_id) or {})
    allowlist = [dict(entry) for entry in agent.get("allowlist", [])]
    changed = False
    for pattern, arg_pattern in patterns:
        pattern = pattern.strip()
        if not pattern:
            continue
        existing = next((e for e in allowlist if e["pattern"] == pattern and e.get("argPattern") == arg_pattern), None)
        if existing is not None:
            if source is not None and existing.get("source") != source:
                existing["source"] = source
                existing["lastUsedAt"] = now_ms
                changed = True
            continue
        entry: dict[str, Any] = {"id": new_id(), "pattern": pattern}
        if arg_pattern is not None:
            entry["argPattern"] = arg_pattern
        if source is not None:
            entry["source"] = source
        entry["lastUsedAt"] = now_ms
        allowlist.append(entry)
        changed = True
    if not changed:
        return None
    agent["allowlist"] = allowlist
    agents[agent_id] = _ordered_agent(agent)
    return {"version": 1, "defaults": dict(doc.get("defaults") or {}), "agents": agents}


def remove_allowlist_entries(doc: Mapping[str, Any], agent_id: str, pattern: str) -> tuple[dict[str, Any] | None, int]:
    """Remove every entry of ``agent_id`` whose pattern is ``pattern`` (or whose id is it).
    Returns ``(new document or None, how many were removed)``."""
    agents = dict(doc.get("agents") or {})
    agent = dict(agents.get(agent_id) or {})
    before = agent.get("allowlist", [])
    kept = [e for e in before if e["pattern"] != pattern.strip() and e.get("id") != pattern.strip()]
    removed = len(before) - len(kept)
    if not removed:
        return None, 0
    if kept:
        agent["allowlist"] = kept
    else:
        agent.pop("allowlist", None)
    agents[agent_id] = _ordered_agent(agent)
    return {"version": 1, "defaults": dict(doc.get("defaults") or {}), "agents": agents}, removed


def sha256_prefix(text: str, length: int = 16) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


def node_command_marker(command_text: str) -> str:
    """The ``=node-command:`` marker an allow-always decision stores for a whole command, which
    the gateway checks (``hasNodeCommandAllowAlwaysMarker``) before it skips asking again."""
    return f"=node-command:{sha256_prefix(command_text.strip())}"


def command_marker(command_text: str) -> str:
    """The exact-command durable approval pattern (``=command:``), honoured when present."""
    return f"=command:{sha256_prefix(command_text.strip())}"
