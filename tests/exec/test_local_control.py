"""Local control: ``node-agent exec policy|allow|deny``, ``status``, ``doctor``, the audit log."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from node_agent.audit import AuditLog
from node_agent.cli import main
from node_agent.doctor import Status, check_exec


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_allow_policy_deny_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = ["--state-dir", str(tmp_path)]
    code, out, _ = run_cli(capsys, "exec", "policy", *state)
    assert code == 0 and "not written yet" in out and "ask=on-miss" in out
    assert run_cli(capsys, "exec", "allow", "/usr/bin/uname", *state)[0] == 0
    assert run_cli(capsys, "exec", "allow", "rg", "--agent", "main", "--arg-pattern", "^--files", *state)[0] == 0
    code, out, _ = run_cli(capsys, "exec", "policy", "--json", *state)
    report = json.loads(out)
    assert report["hash"] != "" and report["problem"] is None
    assert [e["pattern"] for e in report["agents"]["main"]["allowlist"]] == ["/usr/bin/uname", "rg"]
    assert stat.S_IMODE((tmp_path / "exec-approvals.json").stat().st_mode) == 0o600
    code, out, _ = run_cli(capsys, "exec", "deny", "rg", "--agent", "main", *state)
    assert code == 0 and "removed 1 entry" in out
    code, _, err = run_cli(capsys, "exec", "deny", "rg", "--agent", "main", *state)
    assert code == 1 and "no allowlist entry" in err


def test_allow_refuses_an_arg_pattern_it_cannot_evaluate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "exec", "allow", "rg", "--arg-pattern", "\\p{L}", "--state-dir", str(tmp_path))
    assert code == 2 and "not supported" in err
    assert not (tmp_path / "exec-approvals.json").exists()


def test_an_unusable_document_is_reported_and_never_edited(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = tmp_path / "exec-approvals.json"
    doc.write_text('{"version": 1}')
    doc.chmod(0o644)
    code, out, _ = run_cli(capsys, "exec", "policy", "--state-dir", str(tmp_path))
    assert code == 1 and "NOT IN FORCE" in out and "mode is 0644" in out
    code, _, err = run_cli(capsys, "exec", "allow", "/usr/bin/true", "--state-dir", str(tmp_path))
    assert code == 78 and "mode is 0644" in err
    assert doc.read_text() == '{"version": 1}'
    check = check_exec(tmp_path)
    assert check.status is Status.FAIL and "chmod 600" in (check.fix or "")
    code, out, _ = run_cli(capsys, "status", "--state-dir", str(tmp_path))
    assert "exec:      NOT IN FORCE" in out


def test_doctor_and_status_show_the_policy_in_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_cli(capsys, "exec", "allow", "/usr/bin/true", "--state-dir", str(tmp_path))
    check = check_exec(tmp_path)
    assert check.status is Status.OK and "security=allowlist ask=on-miss" in check.detail
    assert "1 allowlist entry" in check.detail
    (tmp_path / "status.json").write_text(json.dumps({"state": "connected", "exec": {"lastDenials": [
        {"command": "rm -rf /", "reason": "approval-required"}]}}))
    code, out, _ = run_cli(capsys, "status", "--state-dir", str(tmp_path))
    assert "security=allowlist ask=on-miss askFallback=deny, 1 allowlist entries" in out
    assert "denied:  rm -rf / (approval-required)" in out


def test_the_audit_log_is_0600_json_lines_and_rotates_by_size(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl", max_bytes=300)
    for i in range(10):
        log.record({"event": "run", "i": i, "argv": ["echo", "é"]})
    assert stat.S_IMODE(log.path.stat().st_mode) == 0o600
    rotated = tmp_path / "audit.jsonl.1"
    assert rotated.exists() and log.path.stat().st_size <= 300
    lines = [json.loads(line) for line in rotated.read_text().splitlines() + log.path.read_text().splitlines()]
    assert [entry["i"] for entry in lines] == sorted(entry["i"] for entry in lines)
    assert log.tail(1)[0]["i"] == 9
    log.path.chmod(0o644)
    log.record({"event": "run"})
    assert stat.S_IMODE(log.path.stat().st_mode) == 0o600


async def test_the_extension_declares_five_system_commands_and_logs_an_unhandled_event_once(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from node_agent.agent.commands import CommandRegistry
    from node_agent.agent.status import StatusBoard
    from node_agent.exec.extension import COMMANDS, ExecExtension, build_service

    class Conn:
        async def node_event(self, event: str, payload: dict) -> dict:
            return {"ok": True, "event": event, "handled": False, "reason": "unmatched_exec_event"}

    status = StatusBoard(None)
    ext = ExecExtension(build_service(tmp_path, base_env=lambda: {"PATH": "/usr/bin:/bin"}), status)
    ext.prepare_store()
    registry = CommandRegistry()
    ext.register(registry)
    assert set(registry.commands) == set(COMMANDS) and registry.caps == ("system",)
    await ext.on_ready(Conn(), None)  # type: ignore[arg-type]
    for _ in range(3):
        await ext._emit("exec.finished", {"runId": "r"})
    assert [r.message for r in caplog.records if "did not handle" in r.message] == \
        ["gateway did not handle exec.finished (unmatched_exec_event)"]
    ext._publish()
    assert status.get("exec")["eventsUnhandled"] == [{"event": "exec.finished", "reason": "unmatched_exec_event",
                                                      "count": 3}]


def test_exec_is_on_for_desktop_adapters_and_off_on_a_pi(tmp_path: Path) -> None:
    from node_agent.adapters import select_adapter
    from node_agent.agent.status import StatusBoard
    from node_agent.cli.run_cmd import _exec_extension
    from node_agent.config import Config

    config = Config(state_dir=tmp_path)
    assert _exec_extension(config, select_adapter("linux"), StatusBoard(None)) is not None
    assert _exec_extension(config, select_adapter("pi"), StatusBoard(None)) is None
