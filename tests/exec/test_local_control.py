"""Local control: ``node-agent exec policy|allow|deny``, ``status``, ``doctor``, the audit log."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import attrs
import pytest

from node_agent.cli import main
from node_agent.config import Config
from node_agent.doctor import Status
from node_agent.doctor.exec_approvals import check_exec


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
    check = check_exec(Config(state_dir=tmp_path))
    assert check.status is Status.FAIL and "chmod 600" in (check.fix or "")
    code, out, _ = run_cli(capsys, "status", "--state-dir", str(tmp_path))
    assert "exec:       NOT IN FORCE" in out


def test_doctor_and_status_show_the_policy_in_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_cli(capsys, "exec", "allow", "/usr/bin/true", "--state-dir", str(tmp_path))
    check = check_exec(Config(state_dir=tmp_path))
    assert check.status is Status.OK and "security=allowlist ask=on-miss" in check.detail
    assert "1 allowlist entry" in check.detail
    (tmp_path / "status.json").write_text(json.dumps({"state": "connected", "exec": {
        "approvalsPath": "x", "security": "allowlist", "ask": "on-miss", "askFallback": "deny",
        "lastDenials": [{"atMs": 1, "command": "rm -rf /", "reason": "approval-required"}]}}))
    code, out, _ = run_cli(capsys, "status", "--state-dir", str(tmp_path))
    assert "security=allowlist ask=on-miss askFallback=deny, 1 allowlist entry" in out
    assert "denied:  rm -rf / (approval-required)" in out


async def test_the_extension_declares_five_system_commands_and_keeps_the_gateways_replies(tmp_path: Path) -> None:
    from node_agent.agent.commands import CommandContext, CommandRegistry
    from node_agent.agent.status import StatusBoard
    from node_agent.exec.extension import COMMANDS, ExecExtension, build_service
    from node_agent.protocol.replies import NodeEventReply

    sent: list[tuple[str, dict]] = []

    async def node_event(event: str, payload: dict) -> NodeEventReply:
        sent.append((event, payload))
        return NodeEventReply(event=event, handled=False, reason="unmatched_exec_event")

    status = StatusBoard(None)
    ext = ExecExtension(build_service(tmp_path, base_env=lambda: {"PATH": "/usr/bin:/bin"}), status)
    ext.prepare_store()
    assert status.current.exec is not None and status.current.exec.ask == "on-miss"
    registry = CommandRegistry()
    ext.register(registry)
    assert set(registry.commands) == set(COMMANDS) and registry.caps == ("system",)
    ctx = CommandContext(adapter=None, device_id="d", display_name="n", started_at=0.0,  # type: ignore[arg-type]
                         status=lambda: status.current, node_event=node_event)
    command = registry.get("system.run")
    assert command is not None
    with pytest.raises(Exception):
        await command.handler({"command": ["uname"], "runId": "r"}, ctx)
    assert [e for e, _ in sent] == ["exec.denied"]
    assert ext.replies[-1].handled is False and ext.replies[-1].reason == "unmatched_exec_event"
    assert status.current.exec.last_denials[-1].reason == "approval-required"

    # A run that goes ahead reports exec.finished after its result where the connection offers
    # that; the answer is kept all the same.
    deferred: list[tuple[str, dict]] = []

    def after_result(event: str, payload: dict, *, on_reply) -> None:
        deferred.append((event, payload))
        on_reply(NodeEventReply(event=event))

    snap = await ext.service.snapshot()
    await ext.service.approvals_set({"baseHash": snap.hash, "file": {
        "version": 1, "defaults": snap.file["defaults"], "agents": {"main": {"allowlist": [{"pattern": "/usr/bin/true"}]}}}})
    ctx = attrs.evolve(ctx, after_result=after_result)
    result = await command.handler({"command": ["/usr/bin/true"], "runId": "r2", "agentId": "main"}, ctx)
    assert result["exitCode"] == 0
    assert [e for e, _ in deferred] == ["exec.finished"] and [e for e, _ in sent] == ["exec.denied"]
    assert ext.replies[-1].event == "exec.finished" and ext.replies[-1].handled is None


def test_exec_is_on_for_desktop_adapters_and_off_on_a_pi_unless_configured(tmp_path: Path) -> None:
    from node_agent.adapters import select_adapter
    from node_agent.agent.status import StatusBoard
    from node_agent.cli.run_cmd import _audit_log, _exec_extension
    from node_agent.config.exec import ExecSettings

    config = Config(state_dir=tmp_path)
    audit = _audit_log(config)
    assert _exec_extension(config, select_adapter("linux"), StatusBoard(None), audit) is not None
    assert _exec_extension(config, select_adapter("pi"), StatusBoard(None), audit) is None
    on = Config(state_dir=tmp_path, exec=ExecSettings(enabled=True))
    assert _exec_extension(on, select_adapter("pi"), StatusBoard(None), audit) is not None
    off = Config(state_dir=tmp_path, exec=ExecSettings(enabled=False))
    assert _exec_extension(off, select_adapter("linux"), StatusBoard(None), audit) is None


def test_the_exec_table_is_strict(tmp_path: Path) -> None:
    from node_agent.config import load_config
    from node_agent.errors import ConfigError

    path = tmp_path / "config.toml"
    path.write_text('[exec]\nenabled = true\ncwd = "/srv"\n')
    assert load_config(config_file=path, env={}).exec.cwd == "/srv"
    for bad, message in (("enable = true", "unknown key exec.enable"), ('cwd = "rel"', "absolute path"),
                         ("enabled = 1", "true or false"), ("audit_max_bytes = 10", "4096 or more")):
        path.write_text(f"[exec]\n{bad}\n")
        with pytest.raises(ConfigError, match=message):
            load_config(config_file=path, env={})
