"""The tools room through our agent: declared surface, node.pluginTools.update after hello-ok
and on every change, mcp.tools.call.v1 invokes (results, errors, deadline, cancel), status.

The gateway is the in-memory OpenClaw double (tests/support/fake_openclaw.py), answering
node.pluginTools.update as the real one does ({nodeId, tools: kept}). The MCP servers are real
SDK servers in memory (virtual time); the last test runs the real mcp-server-time from PyPI as a
child process, in real time.
"""

from __future__ import annotations

import json
import sys
from contextlib import asynccontextmanager
from pathlib import Path

import trio

from node_agent.agent.status import McpServerState, StatusBoard, from_json, to_json
from node_agent.config.mcp import McpSettings
from node_agent.tools.connectors import StdioConnector
from node_agent.tools.extension import ToolsExtension
from node_agent.tools.hub import ToolHub
from node_agent.tools.supervisor import ServerSupervisor
from tests.support.agents import make_agent, run_in
from tests.support.fake_openclaw import FakeGateway
from tests.support.mcp_doubles import MemoryServer, tool_server

SETTINGS = McpSettings.from_table({"servers": [{"name": "fix", "command": ["unused"]}]})


async def echo(text: str) -> str:
    """Echo text back."""
    return text


async def noop_load() -> None:
    return None


def extension_for(hub: ToolHub, status: StatusBoard, settings: McpSettings = SETTINGS) -> ToolsExtension:
    from node_agent.adapters import select_adapter

    return ToolsExtension(settings, select_adapter("linux"), status, agent_started_at=0.0, hub=hub, load=noop_load)


@asynccontextmanager
async def bounded(seconds: float = 600):
    """A nursery that fails instead of running on forever in virtual time (the agent's timers
    would keep the autojump clock going if an expectation is wrong)."""
    with trio.fail_after(seconds):
        async with trio.open_nursery() as nursery:
            yield nursery


def kept_like_openclaw(params):
    return {"nodeId": "the-node", "tools": params["tools"]}


async def started(gw: FakeGateway, tmp_path: Path, tools: ToolsExtension, nursery, status: StatusBoard):
    from node_agent.agent.commands import builtin_registry

    registry = builtin_registry()
    tools.register(registry)
    agent = make_agent(gw, tmp_path, registry=registry, extensions=[tools], status=status)
    gw.approve(agent.identity.device_id)
    gw.replies["node.pluginTools.update"] = kept_like_openclaw
    nursery.start_soon(status.run)
    nursery.start_soon(tools.run)
    await run_in(nursery, agent)
    conn = await gw.wait_connection(1)
    await conn.ready.wait()
    return agent, conn


def published_names(request) -> list[str]:
    return [t["name"] for t in request["params"]["tools"]]


async def update_where(conn, predicate, *, after: int = 0):
    """The first node.pluginTools.update past the first ``after`` whose tool names satisfy
    ``predicate``, and its index."""
    while True:
        updates = [r for r in conn.requests if r.get("method") == "node.pluginTools.update"]
        for index, update in enumerate(updates[after:], start=after):
            if predicate(published_names(update)):
                return index, update
        conn.request_event = trio.Event()
        await conn.request_event.wait()


async def invoke(conn, agent, invoke_id: str, params, timeout_ms: int = 30000):
    await conn.send_event("node.invoke.request", {
        "id": invoke_id, "nodeId": agent.identity.device_id, "command": "mcp.tools.call.v1",
        "paramsJSON": json.dumps(params), "timeoutMs": timeout_ms})


async def result_of(conn, invoke_id: str):
    while True:
        for request in await conn.wait_request("node.invoke.result"):
            if request["params"]["id"] == invoke_id:
                return request["params"]
        conn.request_event = trio.Event()
        await conn.request_event.wait()


async def test_the_command_is_declared_only_when_something_can_answer_it(autojump_clock, tmp_path):
    from node_agent.agent.commands import builtin_registry

    with_tools = builtin_registry()
    extension_for(ToolHub([]), StatusBoard(None)).register(with_tools)
    assert "mcp.tools.call.v1" in with_tools.commands and "mcp" in with_tools.caps
    without = builtin_registry()
    disabled = McpSettings.from_table({"servers": [{"name": "fix", "command": ["x"], "enabled": False}]})
    extension_for(ToolHub([]), StatusBoard(None), disabled).register(without)
    assert "mcp.tools.call.v1" not in without.commands and "mcp" not in without.caps


async def test_tools_are_published_after_hello_ok_and_on_every_change_then_called(autojump_clock, tmp_path):
    memory = MemoryServer("fix", tool_server(echo=echo))
    hub = ToolHub([ServerSupervisor("fix", memory, timeout=5)])
    # No status.json writer here: its worker thread would let the autojump clock run ahead.
    gw, status = FakeGateway(), StatusBoard(None)
    tools = extension_for(hub, status)
    async with bounded() as nursery:
        agent, conn = await started(gw, tmp_path, tools, nursery, status)
        assert "mcp.tools.call.v1" in conn.connect_params["commands"] and "mcp" in conn.connect_params["caps"]
        first, update = await update_where(conn, lambda names: names == ["fix_echo"])
        assert update["params"]["tools"][0] == {
            "pluginId": "node-mcp", "name": "fix_echo", "description": "Echo text back.",
            "parameters": hub.catalog.descriptors[0].parameters, "command": "mcp.tools.call.v1",
            "mcp": {"server": "fix", "tool": "echo"}}
        await invoke(conn, agent, "call-1", {"server": "fix", "tool": "echo", "arguments": {"text": "hello"}})
        answer = await result_of(conn, "call-1")
        assert answer["ok"] is True
        assert json.loads(answer["payloadJSON"]) == {"content": [{"type": "text", "text": "hello"}],
                                                     "structuredContent": {"result": "hello"}}
        memory.crash()  # withdrawn, then back after the restart
        withdrawn, _ = await update_where(conn, lambda names: names == [], after=first + 1)
        await update_where(conn, lambda names: names == ["fix_echo"], after=withdrawn + 1)
        current = await status.wait_for(lambda s: s.tools is not None and s.tools.kept == 1
                                        and s.tools.servers[0].restarts == 1)
        assert current.tools.servers[0].state is McpServerState.READY
        nursery.cancel_scope.cancel()
    assert [p.name for p in from_json(to_json(current)).tools.published] == ["fix_echo"]


async def test_call_errors_answer_with_mcp_codes_and_bad_params_are_invalid(autojump_clock, tmp_path):
    hub = ToolHub([ServerSupervisor("fix", MemoryServer("fix", tool_server(echo=echo)), timeout=5)])
    gw, status = FakeGateway(), StatusBoard(None)
    async with bounded() as nursery:
        agent, conn = await started(gw, tmp_path, extension_for(hub, status), nursery, status)
        await update_where(conn, lambda names: names == ["fix_echo"])
        cases = {"u1": {"server": "nope", "tool": "echo"}, "u2": {"server": "fix", "tool": "missing"},
                 "b1": {"server": "fix"}, "b2": {"server": "fix", "tool": "echo", "arguments": [1]}}
        for invoke_id, params in cases.items():
            await invoke(conn, agent, invoke_id, params)
        answers = {i: (await result_of(conn, i))["error"] for i in cases}
        nursery.cancel_scope.cancel()
    assert answers["u1"] == {"code": "MCP_SERVER_UNAVAILABLE", "message": 'MCP server "nope" is unavailable'}
    assert answers["u2"]["code"] == "MCP_TOOL_UNAVAILABLE"
    assert answers["b1"] == {"code": "INVALID_REQUEST", "message": "mcp.tools.call.v1 needs string 'server' and 'tool'"}
    assert answers["b2"]["code"] == "INVALID_REQUEST"


async def test_the_invoke_deadline_bounds_the_call_and_cancel_reaches_the_server(autojump_clock, tmp_path):
    cancelled = []

    async def hang(tag: str) -> str:
        """Never return."""
        try:
            await trio.sleep_forever()
        finally:
            cancelled.append((tag, trio.current_time()))

    hub = ToolHub([ServerSupervisor("fix", MemoryServer("fix", tool_server(hang=hang)), timeout=60)])
    gw, status = FakeGateway(), StatusBoard(None)
    async with bounded() as nursery:
        agent, conn = await started(gw, tmp_path, extension_for(hub, status), nursery, status)
        await update_where(conn, lambda names: names == ["fix_hang"])
        began = trio.current_time()
        await invoke(conn, agent, "slow", {"server": "fix", "tool": "hang", "arguments": {"tag": "deadline"}},
                     timeout_ms=3000)
        answer = await result_of(conn, "slow")
        # timeoutMs 3 s - the connection's 0.25 s margin - our 0.25 s: answered as an MCP timeout.
        assert answer["error"]["code"] == "MCP_TOOL_TIMEOUT"
        assert trio.current_time() - began == 2.5
        await invoke(conn, agent, "gone", {"server": "fix", "tool": "hang", "arguments": {"tag": "cancel"}})
        await trio.sleep(1)
        await conn.send_event("node.invoke.cancel", {"invokeId": "gone", "nodeId": agent.identity.device_id})
        answer = await result_of(conn, "gone")
        assert answer["error"]["code"] == "CANCELLED"
        await trio.sleep(0.1)
        nursery.cancel_scope.cancel()
    assert [tag for tag, _ in cancelled] == ["deadline", "cancel"]


async def test_mcp_server_time_through_our_agent_lists_publishes_and_answers(tmp_path):
    """The real server from PyPI, as a child process: real time, bounded."""
    argv = [str(Path(sys.executable).parent / "mcp-server-time"), "--local-timezone", "UTC"]
    hub = ToolHub([ServerSupervisor("time", StdioConnector("time", argv, env={}), timeout=60)])
    gw, status = FakeGateway(), StatusBoard(None)
    with trio.fail_after(120):
        async with trio.open_nursery() as nursery:
            agent, conn = await started(gw, tmp_path, extension_for(hub, status), nursery, status)
            await update_where(conn, lambda names: "time_get_current_time" in names)
            await invoke(conn, agent, "now", {"server": "time", "tool": "get_current_time",
                                              "arguments": {"timezone": "Asia/Tokyo"}})
            answer = await result_of(conn, "now")
            nursery.cancel_scope.cancel()
    payload = json.loads(answer["payloadJSON"])
    assert payload["structuredContent"]["timezone"] == "Asia/Tokyo"
    assert payload["structuredContent"]["datetime"].endswith("+09:00")
