"""MCP tools against the real OpenClaw gateway: the real ``node-agent run`` with real MCP servers
from PyPI (mcp-server-time, mcp-server-git on a throwaway repository), the builtin device tools
and a misbehaving SDK server; the node approved with the real ``openclaw nodes approve``.

What is checked on the gateway's side, not ours: the reply to ``node.pluginTools.update`` (the
descriptors it kept, which the agent shows in ``status.json``), the gateway's own view of the
node's tools (operator RPC ``node.describe`` -> ``nodePluginTools``, and the CLI ``openclaw nodes
describe --json``), and operator-driven ``node.invoke mcp.tools.call.v1`` round trips,
including how the gateway relays the node's MCP error codes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from node_agent.agent.status import LinkState, McpServerState, Surface
from tests.support.agent_process import AgentProcess, device_id_of, of_device, wait_status_file
from tests.support.operator import Operator, OperatorError
from tests.support.real_gateway import RealGateway

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
START = 120.0  # Python MCP servers take seconds each to import on a loaded 2-core machine


def git_repo(path: Path) -> Path:
    path.mkdir(parents=True)
    git = ["git", "-C", str(path), "-c", "user.name=Interop", "-c", "user.email=interop@example.invalid"]
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    (path / "README").write_text("hello\n")
    subprocess.run([*git, "add", "README"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "initial commit"], check=True)
    return path


def tools_config(tmp_path: Path, repo: Path) -> Path:
    config = tmp_path / "config.toml"
    config.write_text(f"""
[mcp.builtin]
enabled = true

[[mcp.servers]]
name = "time"
command = [{json.dumps(str(BIN / "mcp-server-time"))}, "--local-timezone", "UTC"]

[[mcp.servers]]
name = "git"
command = [{json.dumps(str(BIN / "mcp-server-git"))}, "--repository", {json.dumps(str(repo))}]
env = {{ HOME = {json.dumps(str(tmp_path))} }}

[[mcp.servers]]
name = "fix"
command = [{json.dumps(sys.executable)}, "-m", "tests.support.mcp_fixture_server", "--bad-names"]
env = {{ PYTHONPATH = {json.dumps(str(ROOT))} }}
""")
    return config


async def cli(gateway: RealGateway, *args: str):
    return await trio.to_thread.run_sync(lambda: gateway.cli(*args))


def names_of(tools) -> set[str]:
    return {t["name"] for t in tools or []}


async def described_tools(operator: Operator, device_id: str) -> list[dict]:
    return (await operator.call("node.describe", {"nodeId": device_id})).get("nodePluginTools") or []


async def test_published_tools_are_kept_seen_by_the_gateway_and_callable_through_it(real_gateway, operator,
                                                                                     tmp_path):
    repo = git_repo(tmp_path / "repo")
    state = tmp_path / "state"
    agent = AgentProcess("run", state_dir=state, gateway_url=real_gateway.url, token=real_gateway.token,
                         extra=["--config", str(tools_config(tmp_path, repo)), "--display-name", "interop-tools"])
    try:
        device_id = await device_id_of(state)
        request = await operator.wait_event("device.pair.requested", of_device(device_id), timeout=60)
        await operator.approve_device(request["requestId"])
        node_request = await operator.wait_event("node.pair.requested", of_device(device_id), timeout=60)
        assert "mcp.tools.call.v1" in node_request.get("commands", [])
        # The servers come up while the surface waits for a person; nothing is kept before that.
        await wait_status_file(state, lambda s: s.tools is not None and len(s.tools.published) >= 8, START)
        await cli(real_gateway, "nodes", "approve", node_request["requestId"], "--json")
        status = await wait_status_file(
            state, lambda s: s.surface is Surface.APPROVED and s.state is LinkState.CONNECTED
            and s.tools is not None and s.tools.kept is not None and s.tools.kept == s.tools.sent
            and s.tools.sent == len(s.tools.published) >= 8, START)
        published = {p.name for p in status.tools.published}
        assert {"device_status", "time_get_current_time", "time_convert_time", "git_git_status",
                "fix_git_status", "fix_tool_9lives", "fix_verbose"} <= published
        assert all(s.state is McpServerState.READY for s in status.tools.servers)

        # The gateway's own view: the operator RPC and the CLI.
        seen = await described_tools(operator, device_id)
        assert names_of(seen) == published
        described = await cli(real_gateway, "nodes", "describe", "--node", device_id, "--json")
        assert names_of(described.get("nodePluginTools")) == published
        by_name = {t["name"]: t for t in seen}
        assert by_name["time_get_current_time"]["mcp"] == {"server": "time", "tool": "get_current_time"}
        assert by_name["time_get_current_time"]["command"] == "mcp.tools.call.v1"
        assert by_name["time_get_current_time"]["pluginId"] == "node-mcp"
        assert len(by_name["fix_verbose"]["description"]) == 1024

        # Operator-driven calls through the gateway.
        answer = await operator.invoke(device_id, "mcp.tools.call.v1", {
            "server": "time", "tool": "get_current_time", "arguments": {"timezone": "Europe/Berlin"}},
            timeout_ms=60_000)
        assert answer["ok"] is True
        payload = answer["payload"]
        assert payload["structuredContent"]["timezone"] == "Europe/Berlin"
        git_status = await operator.invoke(device_id, "mcp.tools.call.v1", {
            "server": "git", "tool": "git_log", "arguments": {"repo_path": str(repo), "max_count": 3}},
            timeout_ms=60_000)
        assert "initial commit" in json.dumps(git_status["payload"])
        device = await operator.invoke(device_id, "mcp.tools.call.v1",
                                       {"server": "device", "tool": "status"}, timeout_ms=60_000)
        assert device["payload"]["structuredContent"]["memory"]["totalBytes"] > 0

        with pytest.raises(OperatorError) as caught:
            await operator.invoke(device_id, "mcp.tools.call.v1", {"server": "time", "tool": "nope"},
                                  timeout_ms=30_000)
        # The gateway relays a node's error as UNAVAILABLE "<node code>: <node message>".
        assert caught.value.code == "UNAVAILABLE"
        assert caught.value.message == 'MCP_TOOL_UNAVAILABLE: MCP tool "nope" is unavailable on server "time"'

        # A crash mid-call: the call fails as MCP_SERVER_UNAVAILABLE, the gateway's view loses
        # the server's tools, and gets them back once it has restarted.
        with pytest.raises(OperatorError) as caught:
            await operator.invoke(device_id, "mcp.tools.call.v1", {"server": "fix", "tool": "crash"},
                                  timeout_ms=30_000)
        assert "MCP_SERVER_UNAVAILABLE" in str(caught.value)
        await wait_status_file(state, lambda s: s.tools.servers[3].restarts >= 1
                               and s.tools.servers[3].state is McpServerState.READY and s.tools.kept == len(published),
                               START)
        with trio.fail_after(60):
            while names_of(await described_tools(operator, device_id)) != published:
                await trio.sleep(0.2)
        again = await operator.invoke(device_id, "mcp.tools.call.v1", {
            "server": "fix", "tool": "echo", "arguments": {"text": "back"}}, timeout_ms=30_000)
        assert again["payload"]["content"][0]["text"] == "back"
        audit = [json.loads(line) for line in (state / "audit.jsonl").read_text().splitlines()]
        assert [(a["server"], a["tool"], a["outcome"]) for a in audit if a["kind"] == "mcp.tool.call"] == [
            ("time", "get_current_time", "ok"), ("git", "git_log", "ok"), ("device", "status", "ok"),
            ("time", "nope", "MCP_TOOL_UNAVAILABLE"), ("fix", "crash", "MCP_SERVER_UNAVAILABLE"),
            ("fix", "echo", "ok")]
    finally:
        agent.kill()
