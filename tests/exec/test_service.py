"""The five commands end to end, with real files and real processes, and a recording emitter.

Bad input must give a clear error and run nothing: the tests that check it count the processes
the service started (``runs``) and look at the events it sent.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import trio

from node_agent.errors import InvokeError
from node_agent.exec import ApprovalsStore, ExecService
from node_agent.exec.command import parse_command


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    async def __call__(self, event: str, payload: dict[str, Any]) -> None:
        self.events.append((event, payload))

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.events]


class Audit:
    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []

    async def append(self, kind: str, **fields: Any) -> None:
        self.entries.append({"kind": kind, **fields})


@pytest.fixture
def work(tmp_path: Path) -> Path:
    path = tmp_path / "work"
    path.mkdir()
    return path


@pytest.fixture
def bins(tmp_path: Path) -> Path:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    tool = bindir / "tool"
    tool.write_text("#!/bin/sh\necho tool:$1\n")
    tool.chmod(0o755)
    return bindir


@pytest.fixture
def svc(tmp_path: Path, work: Path, bins: Path) -> ExecService:
    numbers = itertools.count(1)
    store = ApprovalsStore(tmp_path / "state" / "exec-approvals.json", new_id=lambda: f"id-{next(numbers)}")
    store.ensure()
    env = {"PATH": f"{bins}:/usr/bin:/bin", "HOME": str(tmp_path), "LD_PRELOAD": "/evil.so",
           "OPENCLAW_GATEWAY_TOKEN": "gateway-secret-token", "LANG": "C"}
    return ExecService(store, base_env=lambda: env, default_cwd=str(work), audit=Audit(), clock_ms=lambda: 1000)


async def allow(svc: ExecService, *patterns: str, agent: str = "main", **policy: str) -> None:
    snap = await svc.snapshot()
    file = {"version": 1, "defaults": policy or snap.file["defaults"],
            "agents": {agent: {"allowlist": [{"pattern": p} for p in patterns]}}}
    await svc.approvals_set({"file": file, "baseHash": snap.hash})


async def denied(coro: Any, code: str = "SYSTEM_RUN_DENIED") -> InvokeError:
    with pytest.raises(InvokeError) as caught:
        await coro
    assert caught.value.code == code, caught.value
    return caught.value


# -- approvals get / set ------------------------------------------------------------------------


async def test_get_returns_path_exists_hash_file_and_the_resolved_defaults(svc: ExecService) -> None:
    got = await svc.approvals_get({})
    assert set(got) == {"path", "exists", "hash", "file", "resolvedDefaults"}
    assert got["exists"] and got["file"]["defaults"]["ask"] == "on-miss"
    assert got["resolvedDefaults"] == {"security": "allowlist", "ask": "on-miss", "askFallback": "deny",
                                       "autoAllowSkills": False}


async def test_set_with_a_stale_hash_is_a_conflict_and_changes_nothing(svc: ExecService) -> None:
    got = await svc.approvals_get({})
    await svc.approvals_set({"file": {"version": 1}, "baseHash": got["hash"]})
    error = await denied(svc.approvals_set({"file": {"version": 1, "defaults": {"security": "full"}},
                                            "baseHash": got["hash"]}), "INVALID_REQUEST")
    assert error.message == "exec approvals changed; reload and retry"
    assert (await svc.approvals_get({}))["file"] == {"version": 1, "defaults": {}, "agents": {}}


async def test_set_rejects_an_invalid_document_with_the_place(svc: ExecService) -> None:
    got = await svc.approvals_get({})
    error = await denied(svc.approvals_set({"file": {"version": 1, "agents": {"main": {"allowlist": [{}]}}},
                                            "baseHash": got["hash"]}), "INVALID_REQUEST")
    assert "agents.main.allowlist[0].pattern" in error.message


# -- bad input: a clear error and nothing run -----------------------------------------------------


@pytest.mark.parametrize(("params", "message"), [
    ({"command": "ls"}, "command required"),
    ({"command": ["ls", 1]}, "array of strings"),
    ({"command": ["echo", "a"], "rawCommand": "echo b"}, "rawCommand does not match command"),
    ({"command": ["true"], "env": {"A": 1}}, "env must be an object of string values"),
    ({"command": ["true"], "timeoutMs": -5}, "timeoutMs"),
    ({"command": ["true"], "approved": True}, "explicit approval requires matching systemRunPlan"),
    ({"command": ["true"], "approvalDecision": "allow-forever"}, "approvalDecision"),
    ({"command": ["true"], "approvalSource": "me"}, "approvalSource invalid"),
])
async def test_malformed_requests_are_invalid_and_run_nothing(svc: ExecService, params: dict[str, Any],
                                                              message: str) -> None:
    emit = Recorder()
    error = await denied(svc.run(params, emit), "INVALID_REQUEST")
    assert message in error.message
    assert svc.runs == 0 and emit.events == []


async def test_blocked_env_overrides_are_denied_with_system_run_denied(svc: ExecService) -> None:
    await allow(svc, "*")
    emit = Recorder()
    error = await denied(svc.run({"command": ["true"], "env": {"LD_PRELOAD": "x", "PATH": "/tmp"}, "runId": "r"}, emit))
    assert error.message == "environment override rejected (blocked override keys: LD_PRELOAD, PATH)"
    assert emit.names == ["exec.denied"] and emit.events[0][1]["reason"] == "env-override-rejected"
    assert svc.runs == 0


@pytest.mark.parametrize("mode_or_content", [0o644, "{not json"])
async def test_an_unusable_document_denies_every_run_and_says_why(svc: ExecService,
                                                                  mode_or_content: int | str) -> None:
    if isinstance(mode_or_content, int):
        svc.store.path.chmod(mode_or_content)
    else:
        svc.store.path.write_text(mode_or_content)
    emit = Recorder()
    error = await denied(svc.run({"command": ["true"], "agentId": "main"}, emit))
    assert error.message.startswith("SYSTEM_RUN_DISABLED: security=deny (")
    assert "every command is denied until it is fixed" in error.message
    assert emit.events[0][1]["reason"] == "security=deny" and svc.runs == 0
    assert (await svc.approvals_get({}))["file"]["defaults"]["security"] == "deny"


# -- the policy in action ---------------------------------------------------------------------------


async def test_an_unconfigured_node_asks_for_a_new_command_and_never_runs_it(svc: ExecService) -> None:
    emit = Recorder()
    error = await denied(svc.run({"command": ["/bin/sh", "-lc", "tool x"], "rawCommand": "tool x",
                                  "runId": "r1", "sessionKey": "s1", "agentId": "main"}, emit))
    assert error.message == "approval required"
    assert emit.events == [("exec.denied", {"sessionKey": "s1", "runId": "r1", "host": "node",
                                            "command": '/bin/sh -lc "tool x"', "reason": "approval-required",
                                            "suppressNotifyOnExit": False})]
    assert svc.denials[-1].reason == "approval-required" and svc.runs == 0


async def test_an_allowlisted_chain_runs_and_reports_started_then_finished(svc: ExecService, bins: Path) -> None:
    await allow(svc, "tool", "/usr/bin/echo")
    emit = Recorder()
    result = await svc.run({"command": ["/bin/sh", "-c", "tool a && /usr/bin/echo b"], "runId": "r2",
                            "sessionKey": "s", "agentId": "main"}, emit)
    assert result == {"exitCode": 0, "timedOut": False, "success": True, "stdout": "tool:a\nb\n", "stderr": "",
                      "error": None}
    assert emit.names == ["exec.finished"]  # quick: no "started" notice
    assert emit.events[0][1] == {"sessionKey": "s", "runId": "r2", "host": "node",
                                 "command": '/bin/sh -c "tool a && /usr/bin/echo b"', "timedOut": False,
                                 "success": True, "output": "tool:a\nb", "suppressNotifyOnExit": False,
                                 "exitCode": 0}


async def test_a_chain_with_one_unlisted_segment_is_not_covered(svc: ExecService) -> None:
    await allow(svc, "tool", ask="off", security="allowlist")
    error = await denied(svc.run({"command": ["/bin/sh", "-c", "tool a; uname"], "agentId": "main"}))
    assert error.message == "allowlist miss"


async def test_a_long_command_is_reported_started_while_it_runs(svc: ExecService) -> None:
    await allow(svc, "*")
    svc._started_notice_s = 0.05
    emit = Recorder()
    with trio.fail_after(20):
        await svc.run({"command": ["sleep", "0.5"], "agentId": "main", "runId": "long"}, emit)
    assert emit.names == ["exec.started", "exec.finished"]
    assert emit.events[0][1] == {"sessionKey": "node", "runId": "long", "host": "node", "command": "sleep 0.5",
                                 "suppressNotifyOnExit": False}


async def test_the_child_environment_is_filtered_and_never_carries_the_gateway_token(svc: ExecService) -> None:
    await allow(svc, "*")
    result = await svc.run({"command": ["/usr/bin/printenv"], "agentId": "main", "env": {"EXTRA": "1"}})
    lines = set(str(result["stdout"]).splitlines())
    assert "EXTRA=1" in lines and "LANG=C" in lines
    assert not any(line.startswith(("LD_PRELOAD=", "OPENCLAW_GATEWAY_TOKEN=")) for line in lines)
    assert "gateway-secret-token" not in json.dumps(svc._audit.entries)  # type: ignore[attr-defined]


async def test_a_timeout_answers_exit_124(svc: ExecService) -> None:
    await allow(svc, "*")
    with trio.fail_after(20):
        result = await svc.run({"command": ["sleep", "30"], "timeoutMs": 200, "agentId": "main"})
    assert result["exitCode"] == 124 and result["timedOut"] is True


# -- prepare and approved runs ----------------------------------------------------------------------


async def prepare(svc: ExecService, command: list[str], raw: str | None = None, **extra: Any) -> dict[str, Any]:
    params = {"command": command, "security": "full", "ask": "off", "agentId": "main", "sessionKey": "s", **extra}
    if raw is not None:
        params["rawCommand"] = raw
    return await svc.prepare(params)


def approved_params(plan: dict[str, Any], decision: str = "allow-once", run_id: str = "appr-1") -> dict[str, Any]:
    return {"command": plan["argv"], "rawCommand": plan["commandText"], "cwd": plan["cwd"], "agentId": "main",
            "sessionKey": "s", "runId": run_id, "approved": True, "approvalDecision": decision,
            "systemRunPlan": plan}


async def test_prepare_pins_the_executable_and_reports_policy_and_coverage(svc: ExecService, bins: Path,
                                                                          work: Path) -> None:
    prepared = await prepare(svc, ["tool", "x"])
    plan = prepared["plan"]
    assert plan["argv"] == [str(bins / "tool"), "x"] and plan["cwd"] == str(work)
    assert plan["mutableFileOperand"]["path"] == str(bins / "tool")
    assert prepared["execPolicy"] == {"security": "allowlist", "ask": "on-miss"}
    assert plan["policySnapshot"]["allowlistRules"] == []
    assert prepared["allowAlwaysCoverage"]["complete"] is True


async def test_an_approved_run_with_the_prepared_plan_runs(svc: ExecService) -> None:
    plan = (await prepare(svc, ["/bin/sh", "-c", "tool y"], "tool y"))["plan"]
    emit = Recorder()
    result = await svc.run(approved_params(plan), emit)
    assert result["stdout"] == "tool:y\n" and emit.names == ["exec.finished"]
    assert svc._audit.entries[-1]["reason"] == "approved"  # type: ignore[attr-defined]


async def test_an_approved_run_that_differs_from_its_plan_is_refused(svc: ExecService) -> None:
    plan = (await prepare(svc, ["/bin/sh", "-c", "tool y"], "tool y"))["plan"]
    params = approved_params(plan)
    params["command"] = ["/bin/sh", "-lc", "tool z"]
    params["rawCommand"] = '/bin/sh -lc "tool z"'
    await denied(svc.run(params), "INVALID_REQUEST")
    assert svc.runs == 0


async def test_a_policy_change_after_approval_voids_it(svc: ExecService) -> None:
    await allow(svc, "/usr/bin/true")
    plan = (await prepare(svc, ["/bin/sh", "-c", "tool y"], "tool y"))["plan"]
    await allow(svc, "/usr/bin/false")  # the rule the person saw is gone
    error = await denied(svc.run(approved_params(plan)))
    assert error.message == "exec approval policy changed; request approval again" and svc.runs == 0


async def test_a_cwd_that_vanished_between_prepare_and_run_is_denied(svc: ExecService, tmp_path: Path) -> None:
    cwd = tmp_path / "gone-soon"
    cwd.mkdir()
    plan = (await prepare(svc, ["/bin/sh", "-c", "tool y"], "tool y", cwd=str(cwd)))["plan"]
    cwd.rmdir()
    emit = Recorder()
    error = await denied(svc.run(approved_params(plan), emit))
    assert error.message == "approval cwd changed before execution"
    assert emit.events[0][1]["reason"] == "cwd-unavailable" and svc.runs == 0


async def test_a_cwd_swapped_for_a_symlink_is_denied(svc: ExecService, tmp_path: Path) -> None:
    cwd = tmp_path / "dir"
    cwd.mkdir()
    plan = (await prepare(svc, ["/bin/sh", "-c", "tool y"], "tool y", cwd=str(cwd)))["plan"]
    cwd.rmdir()
    (tmp_path / "other").mkdir()
    cwd.symlink_to(tmp_path / "other")
    await denied(svc.run(approved_params(plan)))
    assert svc.runs == 0


async def test_an_executable_swapped_for_a_symlink_between_prepare_and_run_is_denied(svc: ExecService,
                                                                                    bins: Path) -> None:
    plan = (await prepare(svc, ["tool", "x"]))["plan"]
    tool = bins / "tool"
    tool.rename(bins / "tool.orig")
    evil = bins / "evil"
    evil.write_text("#!/bin/sh\necho pwned\n")
    evil.chmod(0o755)
    tool.symlink_to(evil)
    error = await denied(svc.run(approved_params(plan)))
    assert error.message == "approval executable changed before execution" and svc.runs == 0


async def test_an_executable_rewritten_in_place_is_denied(svc: ExecService, bins: Path) -> None:
    plan = (await prepare(svc, ["tool", "x"]))["plan"]
    (bins / "tool").write_text("#!/bin/sh\necho changed\n")
    error = await denied(svc.run(approved_params(plan)))
    assert error.message == "approval script operand changed before execution" and svc.runs == 0


async def test_allow_always_persists_entries_so_the_same_command_runs_unasked(svc: ExecService, bins: Path,
                                                                             work: Path) -> None:
    plan = (await prepare(svc, ["/bin/sh", "-c", "tool y"], "tool y"))["plan"]
    await svc.run(approved_params(plan, "allow-always"))
    allowlist = (await svc.approvals_get({}))["file"]["agents"]["main"]["allowlist"]
    assert [(e["pattern"], e.get("source")) for e in allowlist] == [
        (str(bins / "tool"), "allow-always"), (allowlist[1]["pattern"], "allow-always")]
    assert allowlist[1]["pattern"].startswith("=node-command:")
    again = await svc.run({"command": plan["argv"], "cwd": str(work), "agentId": "main", "sessionKey": "s"})
    assert again["stdout"] == "tool:y\n"
    await denied(svc.run({"command": ["/bin/sh", "-c", "tool other"], "agentId": "main"}))


async def test_system_which_finds_names_on_the_filtered_path(svc: ExecService, bins: Path) -> None:
    found = await svc.which({"bins": ["tool", "sh", "definitely-missing", "/bin/sh", 3]})
    assert found["bins"]["tool"] == str(bins / "tool") and "definitely-missing" not in found["bins"]
    assert set(found["bins"]) == {"tool", "sh"}
    await denied(svc.which({}), "INVALID_REQUEST")


def test_tools_used_here_exist() -> None:
    assert shutil.which("sh") and os.path.exists("/usr/bin/printenv")


async def test_a_login_shell_resolves_bare_names_on_its_own_profile_path(svc: ExecService, bins: Path) -> None:
    """``sh -lc`` (how the gateway sends agent commands) reads /etc/profile, which may set its own
    PATH: a name found only on the agent's PATH is not what the shell would run, so it is not
    covered, while an absolute path still is."""
    await allow(svc, "tool", "/usr/bin/true", ask="off", security="allowlist")
    probe = await svc._resolution_env(  # what the login shell itself reports
        parse_command(["/bin/sh", "-lc", "true"]),
        {"PATH": f"{bins}:/usr/bin:/bin"})
    assert probe["PATH"] and str(bins) not in probe["PATH"], probe
    await denied(svc.run({"command": ["/bin/sh", "-lc", "tool x"], "agentId": "main"}))
    assert (await svc.run({"command": ["/bin/sh", "-lc", "/usr/bin/true"], "agentId": "main"}))["exitCode"] == 0
