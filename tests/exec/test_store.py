"""The approvals document on disk: format, normalization, fail-closed reading, CAS."""

from __future__ import annotations

import itertools
import json
import os
import stat
from pathlib import Path

import pytest

from node_agent.exec.document import DocumentError, parse_document, policy_snapshot, resolve, snapshot_is_current
from node_agent.exec.jsjson import approvals_hash, missing_hash
from node_agent.exec.store import ApprovalsConflict, ApprovalsInvalid, ApprovalsStore


def ids() -> itertools.count:
    return itertools.count(1)


def counter_id():
    numbers = itertools.count(1)
    return lambda: f"id-{next(numbers)}"


@pytest.fixture
def store(tmp_path: Path) -> ApprovalsStore:
    return ApprovalsStore(tmp_path / "state" / "exec-approvals.json", new_id=counter_id())


def test_a_missing_document_is_the_unconfigured_policy_and_the_missing_hash(store: ApprovalsStore) -> None:
    snap = store.read()
    assert not snap.exists and snap.usable and snap.hash == missing_hash()
    assert resolve(snap.file, "main").policy.as_wire() == \
        {"security": "allowlist", "ask": "on-miss", "askFallback": "deny", "autoAllowSkills": False}


def test_ensure_writes_the_defaults_0600_and_the_hash_is_of_the_bytes(store: ApprovalsStore) -> None:
    snap = store.ensure()
    assert snap.exists and stat.S_IMODE(store.path.stat().st_mode) == 0o600
    raw = store.path.read_bytes()
    assert json.loads(raw) == snap.file and raw.endswith(b"}\n")
    assert snap.hash == approvals_hash(snap.file)
    assert store.ensure().hash == snap.hash  # idempotent


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o660, 0o602])
def test_a_document_readable_or_writable_by_others_is_refused_and_denies_all(store: ApprovalsStore, mode: int) -> None:
    store.ensure()
    store.path.chmod(mode)
    snap = store.read()
    assert not snap.usable and f"mode is {mode:04o}" in (snap.problem or "")
    assert resolve(snap.file, "main").policy.security == "deny"


def test_a_document_owned_by_someone_else_is_refused(tmp_path: Path) -> None:
    foreign = ApprovalsStore(tmp_path / "exec-approvals.json", uid=os.getuid() + 1)
    foreign.path.write_text('{"version": 1}')
    foreign.path.chmod(0o600)
    assert "not by this agent" in (foreign.read().problem or "")


def test_a_symlinked_document_is_refused(store: ApprovalsStore, tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.json"
    target.write_text('{"version": 1}')
    target.chmod(0o600)
    store.path.parent.mkdir()
    store.path.symlink_to(target)
    assert "symbolic link" in (store.read().problem or "")


@pytest.mark.parametrize(("content", "why"), [
    ("{not json", "not valid JSON"),
    ('{"version": 2}', "document.version"),
    ('{"version": 1, "defaults": {"security": "sometimes"}}', "defaults.security"),
    ('{"version": 1, "agents": {"main": {"allowlist": [{"pattern": ""}]}}}', "allowlist[0].pattern"),
    ('{"version": 1, "extra": true}', "unknown field 'extra'"),
    ("\xff\xfe", "not valid JSON"),
])
def test_an_invalid_document_fails_closed_and_says_where(store: ApprovalsStore, content: str, why: str) -> None:
    store.path.parent.mkdir()
    store.path.write_bytes(content.encode("latin-1"))
    store.path.chmod(0o600)
    snap = store.read()
    assert not snap.usable and why in (snap.problem or "")
    assert snap.file["defaults"]["security"] == "deny"


@pytest.fixture
def settled(monkeypatch):
    """Every file looks as if it last changed long before it is read."""
    import node_agent.exec.store as module

    real = module.time.time_ns
    monkeypatch.setattr(module.time, "time_ns", lambda: real() + 3_600_000_000_000)


def test_a_read_is_reused_only_while_the_file_is_provably_the_same(store: ApprovalsStore, settled) -> None:
    snap = store.ensure()
    assert store.cached() is None  # ensure wrote it: nothing was read from this file yet
    snap = store.read()
    assert store.cached() is snap
    store.path.write_text(store.path.read_text().replace('"deny"', '"full"'))  # in place, same size
    assert store.cached() is None
    assert store.read().file["defaults"]["askFallback"] == "full"
    assert store.cached() is not None
    store.path.chmod(0o644)
    assert store.cached() is None and not store.read().usable
    assert store.cached() is not None and not store.cached().usable  # still the same bad file
    store.path.unlink()
    assert store.cached() is None and not store.read().exists


def test_a_read_swapped_for_a_symlink_is_not_reused(store: ApprovalsStore, settled, tmp_path: Path) -> None:
    store.ensure()
    store.read()
    target = tmp_path / "elsewhere.json"
    target.write_bytes(store.path.read_bytes())
    target.chmod(0o600)
    store.path.unlink()
    store.path.symlink_to(target)
    assert store.cached() is None and "symbolic link" in (store.read().problem or "")


def test_a_file_read_in_the_same_second_it_changed_is_read_again(store: ApprovalsStore) -> None:
    # File times are coarse: a change later in the same tick would leave them as they were.
    store.ensure()
    store.read()
    assert store.cached() is None


def test_set_is_compare_and_swap_on_the_hash(store: ApprovalsStore) -> None:
    first = store.ensure()
    doc = {"version": 1, "agents": {"main": {"allowlist": [{"pattern": "/usr/bin/uname"}]}}}
    second = store.set(doc, first.hash)
    assert second.hash != first.hash
    with pytest.raises(ApprovalsConflict, match="exec approvals changed; reload and retry"):
        store.set(doc, first.hash)
    with pytest.raises(ApprovalsInvalid, match="base hash required"):
        store.set(doc, None)
    assert store.read().hash == second.hash  # the refused writes changed nothing


def test_set_on_a_missing_document_accepts_no_hash_or_the_missing_hash(store: ApprovalsStore) -> None:
    with pytest.raises(ApprovalsConflict):
        store.set({"version": 1}, "deadbeef")
    assert store.set({"version": 1}, missing_hash()).exists


def test_set_can_replace_an_unusable_document_with_its_reported_hash(store: ApprovalsStore) -> None:
    store.path.parent.mkdir()
    store.path.write_text("{broken")
    store.path.chmod(0o644)
    broken = store.read()
    fixed = store.set({"version": 1}, broken.hash)
    assert fixed.usable and stat.S_IMODE(store.path.stat().st_mode) == 0o600


def test_an_invalid_set_changes_nothing(store: ApprovalsStore) -> None:
    before = store.ensure()
    with pytest.raises(ApprovalsInvalid, match="defaults.ask"):
        store.set({"version": 1, "defaults": {"ask": "maybe"}}, before.hash)
    assert store.read() == before


def test_normalization_adds_ids_drops_the_socket_and_merges_the_legacy_default_agent() -> None:
    doc = parse_document({
        "version": 1, "socket": {"path": "/x.sock", "token": "secret-token"},
        "agents": {"default": {"ask": "always", "allowlist": ["/bin/a", {"pattern": "/bin/b", "commandText": "b"}]},
                   "main": {"allowlist": [{"id": "keep", "pattern": "/bin/a"}]}},
    }, new_id=counter_id())
    assert "socket" not in doc and "secret-token" not in json.dumps(doc)
    assert doc["agents"]["main"] == {"ask": "always", "allowlist": [
        {"id": "keep", "pattern": "/bin/a"}, {"id": "id-2", "pattern": "/bin/b"}]}


def test_resolution_layers_agent_then_wildcard_then_defaults() -> None:
    doc = parse_document({"version": 1, "defaults": {"security": "full"},
                          "agents": {"*": {"ask": "always", "allowlist": [{"pattern": "/bin/w"}]},
                                     "ops": {"security": "allowlist", "allowlist": [{"pattern": "/bin/o"}]}}},
                         new_id=counter_id())
    ops = resolve(doc, "ops")
    assert (ops.policy.security, ops.policy.ask) == ("allowlist", "always")
    assert [e.pattern for e in ops.allowlist] == ["/bin/w", "/bin/o"]
    nobody = resolve(doc, None)
    assert (nobody.policy.security, nobody.policy.ask) == ("full", "always")
    assert [e.pattern for e in nobody.allowlist] == ["/bin/w"]


def test_the_policy_snapshot_survives_added_rules_but_not_removed_ones() -> None:
    def snap(patterns: list[str], **defaults: str) -> dict:
        doc = parse_document({"version": 1, "defaults": defaults,
                              "agents": {"main": {"allowlist": [{"pattern": p} for p in patterns]}}},
                             new_id=counter_id())
        return policy_snapshot(resolve(doc, "main"))

    approved = snap(["/bin/b", "/bin/a"])
    assert [r["pattern"] for r in approved["allowlistRules"]] == ["/bin/a", "/bin/b"]  # sorted
    assert snapshot_is_current(approved, snap(["/bin/a", "/bin/b", "/bin/c"]))
    assert not snapshot_is_current(approved, snap(["/bin/a"]))
    assert not snapshot_is_current(approved, snap(["/bin/a", "/bin/b"], ask="always"))


def test_document_errors_never_echo_values() -> None:
    with pytest.raises(DocumentError) as caught:
        parse_document({"version": 1, "defaults": {"security": "hunter2-secret"}}, new_id=counter_id())
    assert "hunter2" not in str(caught.value)
