"""Server supervision and tool calls through the hub, against real SDK servers in memory, in
exact virtual time (autojump_clock): restarts and their schedule, withdrawal and republishing,
a crash mid-call, a server that never starts, one that hangs, a changing tool list."""

from __future__ import annotations

import logging

import pytest
import trio
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.shared.exceptions import MCPError

from node_agent.errors import InvokeError
from node_agent.tools.hub import ToolHub
from node_agent.tools.supervisor import RestartPolicy, ServerState, ServerSupervisor
from tests.support.mcp_doubles import MemoryServer, tool_server


# Tool functions are async: the SDK runs a sync tool in a worker thread, and the autojump
# clock would jump while it ran.
async def echo(text: str) -> str:
    """Echo text back."""
    return text


def hub_with(*servers: MemoryServer, timeout: float = 5.0, policy: RestartPolicy | None = None) -> ToolHub:
    return ToolHub([ServerSupervisor(s.name, s, timeout=timeout, policy=policy) for s in servers])


async def wait_for(hub: ToolHub, predicate) -> None:
    while not predicate():
        await hub.wait_changed(hub.version)


def published(hub: ToolHub) -> list[str]:
    return [d.name for d in hub.catalog.descriptors]


async def test_a_ready_server_s_tools_are_in_the_catalog_and_callable(autojump_clock):
    memory = MemoryServer("fix", tool_server(echo=echo))
    hub = hub_with(memory)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(hub.run)
        await wait_for(hub, lambda: published(hub) == ["fix_echo"])
        assert hub.servers[0].state is ServerState.READY
        descriptor = hub.catalog.find("fix", "echo")
        assert descriptor.to_wire()["parameters"]["properties"]["text"]["type"] == "string"
        result = await hub.call("fix", "echo", {"text": "hi"})
        assert result["content"] == [{"type": "text", "text": "hi"}]
        assert result["structuredContent"] == {"result": "hi"}
        nursery.cancel_scope.cancel()


async def test_a_crash_mid_call_answers_server_unavailable_then_restarts_and_republishes(autojump_clock):
    crashes = []

    def build(memory: MemoryServer):
        async def crash() -> str:
            """Crash the server."""
            crashes.append(trio.current_time())
            memory.crash()
            await trio.sleep_forever()

        return tool_server(echo=echo, crash=crash)(memory)

    memory = MemoryServer("fix", build)
    hub = hub_with(memory)
    versions = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(hub.run)
        await wait_for(hub, lambda: "fix_crash" in published(hub))
        crashed_at = trio.current_time()
        with pytest.raises(InvokeError) as caught:
            await hub.call("fix", "crash", {})
        assert caught.value.code == "MCP_SERVER_UNAVAILABLE"
        # Withdrawn at once, then back after the first backoff step (0.25 s).
        await wait_for(hub, lambda: published(hub) == [])
        versions.append(hub.version)
        assert hub.servers[0].state in (ServerState.RESTARTING, ServerState.STARTING)
        await wait_for(hub, lambda: published(hub) == ["fix_crash", "fix_echo"])
        assert trio.current_time() - crashed_at == pytest.approx(0.25)
        assert memory.opens == 2 and hub.servers[0].restarts == 1
        assert (await hub.call("fix", "echo", {"text": "back"}))["content"][0]["text"] == "back"
        nursery.cancel_scope.cancel()
    assert crashes and versions


async def test_a_server_that_exits_at_start_backs_off_exactly_and_is_reported_failing(autojump_clock):
    memory = MemoryServer("dies", tool_server(echo=echo))
    memory.behaviour = "exit"
    memory.stderr = ("fatal: no such device /dev/ttyUSB0",)
    good = MemoryServer("good", tool_server(echo=echo))
    hub = hub_with(memory, good)
    starts = []
    original = memory.open

    def counting_open():
        starts.append(trio.current_time())
        return original()

    memory.open = counting_open
    async with trio.open_nursery() as nursery:
        nursery.start_soon(hub.run)
        await wait_for(hub, lambda: published(hub) == ["good_echo"])
        with trio.move_on_after(10):
            await trio.sleep_forever()
        nursery.cancel_scope.cancel()
    # 0.25, 0.5, 1, 2, 4 ... between starts (start itself takes no virtual time here).
    gaps = [round(b - a, 3) for a, b in zip(starts, starts[1:])]
    assert gaps[:5] == [0.25, 0.5, 1.0, 2.0, 4.0]
    status = hub.servers[0].status()
    assert status.state is ServerState.FAILING
    assert status.last_error == "exited during the MCP handshake (stderr: fatal: no such device /dev/ttyUSB0)"
    assert status.stderr == "fatal: no such device /dev/ttyUSB0"
    assert status.tools == ()
    with pytest.raises(InvokeError) as caught:
        await hub.call("dies", "echo", {"text": "x"})
    assert caught.value.code == "MCP_SERVER_UNAVAILABLE"


async def test_a_server_that_never_answers_fails_its_start_at_its_timeout(autojump_clock):
    memory = MemoryServer("hung", tool_server(echo=echo))
    memory.behaviour = "silent"
    hub = hub_with(memory, timeout=3.0)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(hub.run)
        while hub.servers[0].state is ServerState.STARTING:
            await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    assert trio.current_time() == pytest.approx(3.0, abs=0.011)
    assert hub.servers[0].last_error == "did not start within 3 s"
    assert hub.servers[0].state is ServerState.RESTARTING


async def test_a_hanging_call_times_out_and_the_server_is_told_to_cancel(autojump_clock):
    cancelled = trio.Event()

    async def hang() -> str:
        """Never return."""
        try:
            await trio.sleep_forever()
        finally:
            cancelled.set()

    memory = MemoryServer("fix", tool_server(hang=hang, echo=echo))
    hub = hub_with(memory, timeout=5.0)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(hub.run)
        await wait_for(hub, lambda: "fix_hang" in published(hub))
        began = trio.current_time()
        with pytest.raises(InvokeError) as caught:
            await hub.call("fix", "hang", {}, timeout=2.0)
        assert caught.value.code == "MCP_TOOL_TIMEOUT"
        assert trio.current_time() - began == pytest.approx(2.0)
        with trio.fail_after(1):
            await cancelled.wait()
        # A hung tool is not a hung server: still ready, still serving.
        assert hub.servers[0].state is ServerState.READY
        assert (await hub.call("fix", "echo", {"text": "ok"}))["content"][0]["text"] == "ok"
        nursery.cancel_scope.cancel()


async def test_cancelling_a_call_cancels_the_mcp_request(autojump_clock):
    cancelled = trio.Event()
    started = trio.Event()

    async def hang() -> str:
        """Never return."""
        started.set()
        try:
            await trio.sleep_forever()
        finally:
            cancelled.set()

    outcomes = []

    async def audit(kind, **fields):
        outcomes.append(fields["outcome"])

    hub = ToolHub([ServerSupervisor("fix", MemoryServer("fix", tool_server(hang=hang)), timeout=5)], audit=audit)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(hub.run)
        await wait_for(hub, lambda: "fix_hang" in published(hub))
        scopes = []
        outcome = []

        async def caller() -> None:
            with trio.CancelScope() as scope:
                scopes.append(scope)
                outcome.append(await hub.call("fix", "hang", {}))

        async with trio.open_nursery() as inner:
            inner.start_soon(caller)
            await started.wait()
            scopes[0].cancel()
        assert outcome == [] and scopes[0].cancelled_caught
        with trio.fail_after(1):
            await cancelled.wait()
        nursery.cancel_scope.cancel()
    assert outcomes == ["cancelled"]


async def test_a_stable_run_resets_the_backoff(autojump_clock):
    memory = MemoryServer("fix", tool_server(echo=echo))
    policy = RestartPolicy(stable_after=30.0)
    hub = hub_with(memory, policy=policy)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(hub.run)
        for _ in range(3):  # three quick crashes: 0.25, 0.5, 1 s
            await wait_for(hub, lambda: published(hub) == ["fix_echo"])
            memory.crash()
            await wait_for(hub, lambda: published(hub) == [])
        assert hub.servers[0].state is ServerState.FAILING
        await wait_for(hub, lambda: published(hub) == ["fix_echo"])
        await trio.sleep(31)  # a stable run
        crashed = trio.current_time()
        memory.crash()
        await wait_for(hub, lambda: published(hub) == [])
        await wait_for(hub, lambda: published(hub) == ["fix_echo"])
        assert trio.current_time() - crashed == pytest.approx(0.25)
        assert hub.servers[0].state is ServerState.READY
        nursery.cancel_scope.cancel()


async def test_an_announced_tool_list_change_is_republished(autojump_clock):
    def build(memory: MemoryServer):
        server = tool_server(echo=echo)(memory)

        async def grow(ctx: Context) -> str:
            """Add a tool."""
            server.add_tool(echo, name="echo2", description="Echo, again.")
            await ctx.notify_tools_changed()
            return "grown"

        server.add_tool(grow, name="grow", description="Add a tool.")
        return server

    hub = hub_with(MemoryServer("fix", build))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(hub.run)
        await wait_for(hub, lambda: published(hub) == ["fix_echo", "fix_grow"])
        await hub.call("fix", "grow", {})
        await wait_for(hub, lambda: published(hub) == ["fix_echo", "fix_echo2", "fix_grow"])
        assert (await hub.call("fix", "echo2", {"text": "new"}))["content"][0]["text"] == "new"
        nursery.cancel_scope.cancel()


async def test_invalid_names_and_an_oversize_description_are_sanitised_logged_and_the_rest_published(
        autojump_clock, caplog):
    def build(memory: MemoryServer):
        server = tool_server(echo=echo)(memory)
        server.add_tool(echo, name="git.status", description="Dotted name.")
        server.add_tool(echo, name="9lives", description="Starts with a digit.")
        server.add_tool(echo, name="long", description="x" * 5000)
        return server

    caplog.set_level(logging.INFO, logger="node_agent.tools")
    hub = hub_with(MemoryServer("fix", build))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(hub.run)
        await wait_for(hub, lambda: len(published(hub)) == 4)
        nursery.cancel_scope.cancel()
    by_tool = {d.tool: d for d in hub.catalog.descriptors}
    assert by_tool["git.status"].name == "fix_git_status"
    assert by_tool["9lives"].name == "fix_tool_9lives"
    assert len(by_tool["long"].description) == 1024
    assert by_tool["echo"].name == "fix_echo"
    messages = [r.getMessage() for r in caplog.records]
    assert "MCP tool fix/git.status: published as 'fix_git_status' (names must match " \
           "^[A-Za-z][A-Za-z0-9_-]{0,63}$)" in messages
    assert "MCP tool fix/long: description cut to 1024 characters" in messages


async def test_a_tool_the_catalog_does_not_hold_is_unavailable_without_asking_the_server(autojump_clock):
    calls = []

    async def counted(text: str) -> str:
        """Counted."""
        calls.append(text)
        return text

    hub = hub_with(MemoryServer("fix", tool_server(echo=counted)))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(hub.run)
        await wait_for(hub, lambda: published(hub) == ["fix_echo"])
        with pytest.raises(InvokeError) as caught:
            await hub.call("fix", "nope", {})
        assert caught.value.code == "MCP_TOOL_UNAVAILABLE"
        with pytest.raises(InvokeError) as caught:
            await hub.call("other", "echo", {})
        assert caught.value.code == "MCP_SERVER_UNAVAILABLE"
        nursery.cancel_scope.cancel()
    assert calls == []


async def test_a_failing_tool_is_an_is_error_result_and_an_mcp_error_answer_is_tool_error(autojump_clock):
    async def fails() -> str:
        """Always fails."""
        raise ToolError("sensor unplugged")

    async def refuses() -> str:
        """Answers with a protocol error."""
        raise MCPError(-32602, "no such sensor")

    hub = hub_with(MemoryServer("fix", tool_server(fails=fails, refuses=refuses, echo=echo)))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(hub.run)
        await wait_for(hub, lambda: "fix_refuses" in published(hub))
        result = await hub.call("fix", "fails", {})
        assert result == {"content": [{"type": "text", "text": "Error executing tool fails: sensor unplugged"}],
                          "isError": True}
        with pytest.raises(InvokeError) as caught:
            await hub.call("fix", "refuses", {})
        assert caught.value.code == "MCP_TOOL_ERROR"
        assert caught.value.message == "tools/call refuses: no such sensor"
        bad_arguments = await hub.call("fix", "echo", {"text": {"not": "a string"}})
        assert bad_arguments["isError"] is True
        nursery.cancel_scope.cancel()


async def test_every_call_is_audited_without_output_and_with_secret_arguments_masked(autojump_clock):
    async def login(user: str, password: str) -> str:
        """Log in."""
        return f"welcome {user}, output-never-audited"

    entries = []

    async def audit(kind, **fields):
        entries.append({"kind": kind, **fields})

    hub = ToolHub([ServerSupervisor("fix", MemoryServer("fix", tool_server(login=login)), timeout=5)],
                  audit=audit)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(hub.run)
        await wait_for(hub, lambda: published(hub) == ["fix_login"])
        await hub.call("fix", "login", {"user": "ada", "password": "hunter2"})
        with pytest.raises(InvokeError):
            await hub.call("fix", "missing", {})
        nursery.cancel_scope.cancel()
    assert [(e["kind"], e["server"], e["tool"], e["outcome"]) for e in entries] == [
        ("mcp.tool.call", "fix", "login", "ok"), ("mcp.tool.call", "fix", "missing", "MCP_TOOL_UNAVAILABLE")]
    assert entries[0]["arguments"] == {"user": "ada", "password": "***"}
    assert "hunter2" not in repr(entries) and "output-never-audited" not in repr(entries)
    assert entries[0]["durationMs"] >= 0


async def test_a_probe_starts_lists_and_stops_within_the_start_deadline(autojump_clock):
    good = ServerSupervisor("fix", MemoryServer("fix", tool_server(echo=echo)), timeout=5)
    status = await good.probe()
    assert (status.state, status.tools) == (ServerState.READY, ("echo",))
    silent = MemoryServer("hung", tool_server(echo=echo))
    silent.behaviour = "silent"
    status = await ServerSupervisor("hung", silent, timeout=4).probe()
    assert (status.state, status.last_error) == (ServerState.FAILING, "did not start within 4 s")
    assert trio.current_time() == pytest.approx(4.0)
