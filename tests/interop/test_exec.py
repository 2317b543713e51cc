"""system.run through the real gateway's own approval logic, against our exec room.

The agent runs in-process (so the tests can read its exec extension and audit log), wired as
``node-agent run`` wires it on Linux: exec on, the approvals document in its state directory.
Commands reach it the way an agent's do: an agent run on this module's gateway (with the scripted
offline model of ``tests/support/mock_model.py``) calls the gateway's ``exec`` tool, which prepares the run on
the node, asks a person at an operator socket when the node's policy says so
(``exec.approval.requested`` / ``exec.approval.resolve``), and only then sends ``system.run``
carrying the approval. Nothing here calls the node around that logic, except the one test that
shows what an unapproved ``node.invoke system.run`` gets: ``SYSTEM_RUN_DENIED``, nothing run.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

from node_agent.agent.commands import builtin_registry
from node_agent.agent.status import StatusBoard, Surface
from node_agent.config.exec import ExecSettings
from node_agent.exec.extension import ExecExtension, build_service
from tests.interop.helpers import approve_device, build_agent, pending_node_request, poll, start_agent
from tests.support.mock_model import MockModel
from tests.support.operator import Operator, OperatorError
from tests.support.real_gateway import RealGateway, check_isolated

ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": "/tmp"}


@pytest.fixture(scope="module")
def real_gateway() -> Iterator[RealGateway]:
    """This module's own real gateway: the session's, plus one offline model (``mock/scripted``,
    tests/support/mock_model.py on 127.0.0.1) as its agents' default, and agent ``exec`` calls
    sent to nodes (``tools.exec.host = node``). Kept apart so that no other test's agent run
    meets a model (the voice tests expect a run with no model to fail)."""
    if os.environ.get("NODE_AGENT_SKIP_INTEROP") == "1":
        pytest.skip("NODE_AGENT_SKIP_INTEROP=1")
    check_isolated()
    with MockModel() as model:
        config = model.provider_config()
        config["tools"] = {"exec": {"host": "node"}}
        # 180 s: on a loaded 2-core machine the listener has been seen to take over 60 s to open.
        with RealGateway(extra_config=config, start_timeout=180) as gateway:
            yield gateway


@pytest.fixture
async def operator(real_gateway: RealGateway) -> AsyncIterator[Operator]:
    async with Operator.connect(real_gateway.url, real_gateway.token) as op:
        yield op


@pytest.fixture
async def approver(real_gateway: RealGateway) -> AsyncIterator[Operator]:
    """The person at the gateway: an operator socket that declares the ``exec-approvals`` cap,
    as the Control UI and the apps do, so the gateway routes exec approval requests to it."""
    async with Operator.connect(real_gateway.url, real_gateway.token, caps=("exec-approvals",)) as op:
        yield op


async def cli(gateway: RealGateway, *args: str, check: bool = True) -> Any:
    return await trio.to_thread.run_sync(lambda: gateway.cli(*args, check=check))


class ExecNode:
    """An in-process agent with the exec room, paired and approved with ``openclaw nodes approve``."""

    def __init__(self, gateway: RealGateway, state_dir: Path) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        self.state_dir = state_dir
        self.status = StatusBoard(None)
        self.exec = ExecExtension(build_service(state_dir, base_env=lambda: ENV, settings=ExecSettings(cwd="/tmp")),
                                  self.status)
        self.exec.prepare_store()
        registry = builtin_registry()
        self.exec.register(registry)
        self.agent = build_agent(gateway, gateway.token, state_dir, registry=registry, extensions=[self.exec],
                                 status=self.status, display_name="exec-node")

    @property
    def node_id(self) -> str:
        return self.agent.identity.device_id

    def audit(self, kind: str) -> list[dict[str, Any]]:
        path = self.state_dir / "audit.jsonl"
        records = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
        return [r for r in records if r.get("kind") == kind]

    def accepted(self, event: str) -> list[bool]:
        """For each ``event`` this node sent: did the gateway take it? It answers an exec event it
        matched to the in-flight run with a bare ``{ok: true}`` and one it did not with
        ``handled: false, reason: "unmatched_exec_event"`` (``server-methods/nodes.event.ts``)."""
        return [reply.handled is not False for reply in self.exec.replies if reply.event == event]


async def start_exec_node(nursery: trio.Nursery, gateway: RealGateway, operator: Operator,
                          state_dir: Path) -> ExecNode:
    node = ExecNode(gateway, state_dir)
    running = await start_agent(nursery, node.agent)
    await approve_device(operator, running)
    await running.wait_connected()
    request_id = await poll(lambda: pending_node_request(operator, node.node_id), "pending node request")
    # The person at the gateway approves the node's commands with the CLI the agent told them about.
    await cli(gateway, "nodes", "approve", request_id, "--json")
    await running.wait(lambda: node.status.current.surface is Surface.APPROVED, "surface approved", 60)
    return node


@pytest.fixture
async def node(real_gateway: RealGateway, operator: Operator, tmp_path: Path) -> AsyncIterator[ExecNode]:
    """A fresh exec node for one test, stopped after it."""
    async with trio.open_nursery() as nursery:
        started = await start_exec_node(nursery, real_gateway, operator, tmp_path / "state")
        yield started
        nursery.cancel_scope.cancel()


async def agent_exec(operator: Operator, command: str) -> str:
    """Start an agent turn whose model calls ``exec`` with ``command``; returns the run id."""
    accepted = await operator.call("agent", {"message": f"Run this: EXEC<<{command}>>", "agentId": "main",
                                             "idempotencyKey": str(uuid.uuid4())}, timeout=30)
    return str(accepted["runId"])


async def agent_reply(operator: Operator, run_id: str) -> str:
    done = await operator.call("agent.wait", {"runId": run_id, "timeoutMs": 90_000}, timeout=100)
    assert done.get("status") == "ok", done
    return str((done.get("terminalReply") or {}).get("text", ""))


async def exec_asked(operator: Operator, approver: Operator, node: ExecNode, command: str,
                     decision: str) -> tuple[str, dict[str, Any]]:
    """An agent turn runs ``command`` on ``node``; the gateway asks the approver, who answers
    ``decision``. Returns the run id and the approval request."""
    run_id = await agent_exec(operator, command)
    request = await approver.wait_event("exec.approval.requested", for_node(node.node_id), timeout=90)
    assert request["request"]["host"] == "node"
    if decision == "allow-once":
        assert node.exec.service.runs == 0  # asked first: nothing has run yet
    await approver.call("exec.approval.resolve", {"id": request["id"], "decision": decision})
    return run_id, request


def for_node(node_id: str):
    def predicate(payload: Any) -> bool:
        request = (payload or {}).get("request") or {}
        return request.get("nodeId") == node_id
    return predicate


async def test_approvals_get_and_set_round_trip_through_the_openclaw_cli(real_gateway, operator, node, tmp_path):
    got = await cli(real_gateway, "approvals", "get", "--node", node.node_id, "--json")
    stored = (node.state_dir / "exec-approvals.json").read_bytes()
    assert got["hash"] == hashlib.sha256(stored).hexdigest()
    assert got["file"] == json.loads(stored)
    assert got["file"]["defaults"] == {"security": "allowlist", "ask": "on-miss", "askFallback": "deny",
                                       "autoAllowSkills": False}

    wanted = {"version": 1, "defaults": {"security": "allowlist", "ask": "on-miss", "askFallback": "deny"},
              "agents": {"main": {"allowlist": [{"pattern": "/usr/bin/true"}]}}}
    upload = tmp_path / "approvals.json"
    upload.write_text(json.dumps(wanted))
    await cli(real_gateway, "approvals", "set", "--node", node.node_id, "--file", str(upload), "--json")
    after = await cli(real_gateway, "approvals", "get", "--node", node.node_id, "--json")
    stored = (node.state_dir / "exec-approvals.json").read_bytes()
    assert after["hash"] == hashlib.sha256(stored).hexdigest() != got["hash"]
    assert [e["pattern"] for e in after["file"]["agents"]["main"]["allowlist"]] == ["/usr/bin/true"]

    # A write based on the old hash is refused by the node and changes nothing.
    with_old = {"nodeId": node.node_id, "file": {"version": 1}, "baseHash": got["hash"]}
    with pytest.raises(OperatorError, match="exec approvals changed; reload and retry"):
        await operator.call("exec.approvals.node.set", with_old)
    assert (node.state_dir / "exec-approvals.json").read_bytes() == stored


async def test_a_command_missing_the_allowlist_is_approved_by_a_person_then_runs(operator, approver, node):
    run_id, request = await exec_asked(operator, approver, node, "uname -s", "allow-once")
    reply = await agent_reply(operator, run_id)
    assert "Linux" in reply, reply
    assert node.exec.service.runs == 1
    with trio.fail_after(10):  # sent right after the run's result, its answer read after that
        while not node.accepted("exec.finished"):
            await trio.sleep(0.05)
    assert node.accepted("exec.finished") == [True]  # the gateway still matched it to the run
    runs = node.audit("exec.run")
    assert runs[-1]["reason"] == "approved" and runs[-1]["argv"] == ["/bin/sh", "-lc", "uname -s"]
    assert runs[-1]["runId"] == request["id"]  # the gateway runs it under the approval's id


async def test_allow_always_is_remembered_so_the_next_run_is_not_asked(operator, approver, node):
    first, request = await exec_asked(operator, approver, node, "uname -m", "allow-always")
    await agent_reply(operator, first)
    allowlist = json.loads((node.state_dir / "exec-approvals.json").read_text())["agents"]["main"]["allowlist"]
    assert {e["source"] for e in allowlist} == {"allow-always"}
    second = await agent_exec(operator, "uname -m")
    reply = await agent_reply(operator, second)
    assert node.exec.service.runs == 2, reply
    assert not [e for e in approver.events if e.name == "exec.approval.requested"
                and for_node(node.node_id)(e.payload) and e.payload["id"] != request["id"]]


async def test_a_command_a_person_denies_never_reaches_the_node(operator, approver, node):
    run_id, _ = await exec_asked(operator, approver, node, "uname -r", "deny")
    reply = await agent_reply(operator, run_id)
    assert "denied" in reply.lower(), reply
    assert node.exec.service.runs == 0
    assert not node.audit("exec.run")


async def test_an_unapproved_run_is_answered_system_run_denied_and_never_runs(operator, node, tmp_path):
    marker = tmp_path / "must-not-exist"
    with pytest.raises(OperatorError) as caught:
        await operator.invoke(node.node_id, "system.run", {"command": ["/usr/bin/touch", str(marker)]},
                              timeout_ms=15_000)
    assert caught.value.code == "UNAVAILABLE"
    assert caught.value.message.startswith("SYSTEM_RUN_DENIED: approval required")
    assert caught.value.details["nodeError"]["code"] == "SYSTEM_RUN_DENIED"
    assert not marker.exists() and node.exec.service.runs == 0
    assert node.accepted("exec.denied") == [True]  # the gateway matched it to the in-flight run
    assert node.audit("exec.denied")[-1]["reason"] == "approval-required"
    assert node.exec.service.denials[-1].reason == "approval-required"


async def test_an_allowlisted_absolute_path_runs_without_asking(operator, approver, node):
    snap = await operator.call("exec.approvals.node.get", {"nodeId": node.node_id})
    await operator.call("exec.approvals.node.set", {
        "nodeId": node.node_id, "baseHash": snap["hash"],
        "file": {"version": 1, "defaults": snap["file"]["defaults"],
                 "agents": {"main": {"allowlist": [{"pattern": "/usr/bin/uname"}]}}}})
    reply = await agent_reply(operator, await agent_exec(operator, "/usr/bin/uname -s"))
    assert "Linux" in reply, reply
    assert node.exec.service.runs == 1
    assert not [e for e in approver.events if e.name == "exec.approval.requested"
                and for_node(node.node_id)(e.payload)]
    assert node.audit("exec.run")[-1]["reason"] == "allowlist"
