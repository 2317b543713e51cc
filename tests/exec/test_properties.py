"""Property tests for the exec room's decoders: whatever comes in, they answer with a value or
their own typed error, never a crash, and what they accept round-trips."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node_agent.exec.command import CommandError, parse_command, split_segments
from node_agent.exec.document import DocumentError, parse_document, resolve
from node_agent.exec.jsjson import approvals_hash
from node_agent.exec.jsregex import UnsupportedPattern, compile_js
from node_agent.exec.store import ApprovalsStore

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=12,
)
policy_value = st.sampled_from(["deny", "allowlist", "full", "off", "on-miss", "always", "bogus"])
entry = st.fixed_dictionaries({"pattern": st.text(min_size=1, max_size=12)},
                              optional={"argPattern": st.text(max_size=8), "source": st.just("allow-always"),
                                        "id": st.text(min_size=1, max_size=6), "lastUsedAt": st.integers(0, 2**50)})
documents = st.fixed_dictionaries(
    {"version": st.just(1)},
    optional={"defaults": st.dictionaries(st.sampled_from(["security", "ask", "askFallback"]), policy_value),
              "agents": st.dictionaries(st.sampled_from(["main", "*", "ops", "default"]),
                                        st.fixed_dictionaries({}, optional={"allowlist": st.lists(entry, max_size=3),
                                                                            "security": policy_value}),
                                        max_size=3)})


def ids():
    numbers = itertools.count()
    return lambda: f"id-{next(numbers)}"


@given(json_values)
def test_parse_document_returns_a_document_or_a_document_error(data: Any) -> None:
    try:
        doc = parse_document(data, new_id=ids())
    except DocumentError:
        return
    assert doc["version"] == 1


@given(documents)
def test_an_accepted_document_is_a_fixed_point_and_resolves(data: dict[str, Any]) -> None:
    try:
        doc = parse_document(data, new_id=ids())
    except DocumentError:
        return
    again = parse_document(json.loads(json.dumps(doc)), new_id=ids())
    assert again == doc and approvals_hash(again) == approvals_hash(doc)
    for agent in (None, "main", "ops"):
        policy = resolve(doc, agent).policy
        assert policy.security in ("deny", "allowlist", "full") and policy.ask in ("off", "on-miss", "always")


@given(st.text(max_size=40))
def test_split_segments_never_crashes_and_never_returns_an_empty_command(payload: str) -> None:
    segments = split_segments(payload)
    if segments is not None:
        assert segments and all(segment.argv and all(isinstance(a, str) for a in segment.argv)
                                for segment in segments)


@given(json_values, json_values)
def test_parse_command_returns_a_command_or_a_command_error(command: Any, raw: Any) -> None:
    try:
        parsed = parse_command(command, raw)
    except CommandError:
        return
    assert list(parsed.argv) == command


@given(st.text(max_size=20))
def test_compile_js_returns_a_pattern_or_refuses(pattern: str) -> None:
    try:
        compile_js(pattern)
    except UnsupportedPattern:
        pass


@settings(max_examples=50, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=200))
def test_reading_any_bytes_gives_a_snapshot_never_an_exception(tmp_path: Path, raw: bytes) -> None:
    path = tmp_path / "exec-approvals.json"
    path.write_bytes(raw)
    path.chmod(0o600)
    snap = ApprovalsStore(path, new_id=ids()).read()
    assert snap.exists and (snap.usable or snap.file["defaults"]["security"] == "deny")
