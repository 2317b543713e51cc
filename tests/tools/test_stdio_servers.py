"""Real MCP servers as child processes, through the hub: mcp-server-time and mcp-server-git from
PyPI, and a misbehaving SDK server (tests/support/mcp_fixture_server.py) for crashes, hangs,
failed starts and unpublishable tool lists.

Real processes mean real time: every wait is bounded by ``fail_after``, nothing sleeps, and no
assertion is about how long something took (except that a start deadline was the cause).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from node_agent.errors import InvokeError
from node_agent.tools.connectors import StdioConnector
from node_agent.tools.hub import ToolHub
from node_agent.tools.supervisor import RestartPolicy, ServerState, ServerSupervisor

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[2]
FIXTURE = [sys.executable, "-m", "tests.support.mcp_fixture_server"]
FAST = RestartPolicy(initial=0.1, maximum=0.5, failing_after=3)
WAIT = 90  # seconds: a Python MCP server takes seconds to import on a loaded 2-core machine


def supervisor(name, argv, *, env=None, timeout=60.0, cwd=None, policy=FAST):
    env = dict(env or {})
    connector = StdioConnector(name, argv, env={"PYTHONPATH": str(ROOT), **env}, cwd=cwd or str(ROOT),
                               masked=tuple(env.values()))
    return ServerSupervisor(name, connector, timeout=timeout, policy=policy)


async def until(hub: ToolHub, predicate) -> None:
    with trio.fail_after(WAIT):
        while not predicate():
            await hub.wait_status_changed(hub.status_version)


def names(hub: ToolHub) -> list[str]:
    return [d.name for d in hub.catalog.descriptors]


async def test_mcp_server_time_lists_publishes_and_answers():
    hub = ToolHub([supervisor("time", [str(BIN / "mcp-server-time"), "--local-timezone", "UTC"])])
    async with trio.open_nursery() as nursery:
        nursery.start_soon(hub.run)
        await until(hub, lambda: names(hub) == ["time_convert_time", "time_get_current_time"])
        descriptor = hub.catalog.find("time", "get_current_time").to_wire()
        assert descriptor["parameters"]["required"] == ["timezone"]
        assert descriptor["mcp"] == {"server": "time", "tool": "get_current_time"}
        with trio.fail_after(WAIT):
            result = await hub.call("time", "get_current_time", {"timezone": "Europe/Paris"})
            wrong = await hub.call("time", "get_current_time", {"timezone": "Nowhere/Atlantis"})
        nursery.cancel_scope.cancel()
    assert result["structuredContent"]["timezone"] == "Europe/Paris"
    assert result["structuredContent"]["datetime"][-6:] in ("+01:00", "+02:00")
    assert "isError" not in result
    assert wrong["isError"] is True and "Invalid timezone" in wrong["content"][0]["text"]


async def test_mcp_server_git_answers_about_a_throwaway_repository(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.name=Test", "-c", "user.email=test@example.invalid"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "notes.txt").write_text("first\n")
    subprocess.run([*git, "add", "notes.txt"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "first commit"], check=True)
    (repo / "notes.txt").write_text("first\nsecond\n")
    hub = ToolHub([supervisor("git", [str(BIN / "mcp-server-git"), "--repository", str(repo)],
                              env={"HOME": str(tmp_path)})])
    async with trio.open_nursery() as nursery:
        nursery.start_soon(hub.run)
        await until(hub, lambda: "git_git_status" in names(hub))
        with trio.fail_after(WAIT):
            status = await hub.call("git", "git_status", {"repo_path": str(repo)})
            log = await hub.call("git", "git_log", {"repo_path": str(repo), "max_count": 5})
        nursery.cancel_scope.cancel()
    status_text = " ".join(b.get("text", "") for b in status["content"])
    log_text = " ".join(b.get("text", "") for b in log["content"])
    assert "notes.txt" in status_text
    assert "first commit" in log_text


async def test_a_real_crash_mid_call_is_server_unavailable_then_the_server_is_back():
    hub = ToolHub([supervisor("fix", FIXTURE)])
    async with trio.open_nursery() as nursery:
        nursery.start_soon(hub.run)
        await until(hub, lambda: "fix_crash" in names(hub))
        with trio.fail_after(WAIT), pytest.raises(InvokeError) as caught:
            await hub.call("fix", "crash", {})
        assert caught.value.code == "MCP_SERVER_UNAVAILABLE"
        await until(hub, lambda: names(hub) == [])  # withdrawn...
        await until(hub, lambda: "fix_echo" in names(hub))  # ...and republished after the restart
        assert hub.servers[0].restarts == 1
        with trio.fail_after(WAIT):
            echoed = await hub.call("fix", "echo", {"text": "back again"})
        nursery.cancel_scope.cancel()
    assert echoed["content"][0]["text"] == "back again"


async def test_a_server_that_cannot_be_spawned_is_failing_and_the_others_are_published():
    hub = ToolHub([supervisor("nope", ["/nonexistent/mcp-server"]),
                   supervisor("exits", [sys.executable, "-c", "import sys; sys.stderr.write('no sensor\\n'); "
                                                             "sys.exit(3)"]),
                   supervisor("fix", FIXTURE)])
    async with trio.open_nursery() as nursery:
        nursery.start_soon(hub.run)
        await until(hub, lambda: "fix_echo" in names(hub)
                    and all(s.state is ServerState.FAILING for s in hub.servers[:2]))
        nursery.cancel_scope.cancel()
    nope, exits, _ = hub.status().servers
    assert nope.last_error == "No such file or directory: /nonexistent/mcp-server"
    assert exits.last_error == "exited during the MCP handshake (stderr: no sensor)"
    assert not any(n.startswith(("nope_", "exits_")) for n in names(hub))


async def test_a_server_that_hangs_at_start_is_killed_at_its_timeout(tmp_path):
    pid_file = tmp_path / "pid"
    hub = ToolHub([supervisor("hung", [sys.executable, "-c", f"import os, time; open({str(pid_file)!r}, 'w')"
                                                             ".write(str(os.getpid())); time.sleep(600)"],
                              timeout=3.0, policy=RestartPolicy(initial=600))])
    async with trio.open_nursery() as nursery:
        nursery.start_soon(hub.run)
        with trio.fail_after(WAIT):
            while hub.servers[0].state is not ServerState.RESTARTING:
                await hub.wait_status_changed(hub.status_version)
        nursery.cancel_scope.cancel()
    assert hub.servers[0].last_error == "did not start within 3 s"
    pid = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # reaped: the SDK's shutdown killed its process group


async def test_a_hanging_call_times_out_and_the_server_keeps_serving():
    hub = ToolHub([supervisor("fix", FIXTURE, timeout=60.0)])
    async with trio.open_nursery() as nursery:
        nursery.start_soon(hub.run)
        await until(hub, lambda: "fix_hang" in names(hub))
        with trio.fail_after(WAIT), pytest.raises(InvokeError) as caught:
            await hub.call("fix", "hang", {}, timeout=1.0)
        assert caught.value.code == "MCP_TOOL_TIMEOUT"
        with trio.fail_after(WAIT):
            echoed = await hub.call("fix", "echo", {"text": "still here"})
        nursery.cancel_scope.cancel()
    assert echoed["content"][0]["text"] == "still here"


async def test_a_tool_list_change_is_picked_up_from_a_real_server():
    hub = ToolHub([supervisor("fix", FIXTURE)])
    async with trio.open_nursery() as nursery:
        nursery.start_soon(hub.run)
        await until(hub, lambda: "fix_grow" in names(hub))
        with trio.fail_after(WAIT):
            await hub.call("fix", "grow", {})
        await until(hub, lambda: "fix_echo_again" in names(hub))
        nursery.cancel_scope.cancel()


async def test_bad_names_and_an_oversize_description_are_sanitised_logged_and_the_rest_published(caplog):
    caplog.set_level(logging.INFO, logger="node_agent.tools")
    hub = ToolHub([supervisor("fix", [*FIXTURE, "--bad-names"])])
    async with trio.open_nursery() as nursery:
        nursery.start_soon(hub.run)
        await until(hub, lambda: "fix_echo" in names(hub))
        nursery.cancel_scope.cancel()
    by_tool = {d.tool: d for d in hub.catalog.descriptors}
    assert by_tool["git.status"].name == "fix_git_status"
    assert by_tool["9lives"].name == "fix_tool_9lives"
    assert len(by_tool["verbose"].description) == 1024
    assert {"fix_crash", "fix_echo", "fix_env", "fix_grow", "fix_hang"} <= set(names(hub))
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "MCP tool fix/9lives: published as 'fix_tool_9lives'" in logged
    assert "MCP tool fix/verbose: description cut to 1024 characters" in logged


async def test_the_child_gets_a_minimal_environment_and_its_secrets_are_masked_in_stderr(monkeypatch):
    monkeypatch.setenv("OPENCLAW_GATEWAY_TOKEN", "gateway-token-must-not-leak")
    monkeypatch.setenv("OPENCLAW_GATEWAY_PASSWORD", "gateway-password-must-not-leak")
    hub = ToolHub([supervisor("fix", [*FIXTURE, "--stderr", "starting with key sk-live-0123456789"],
                              env={"SERVICE_API_KEY": "sk-live-0123456789"})])
    async with trio.open_nursery() as nursery:
        nursery.start_soon(hub.run)
        await until(hub, lambda: "fix_env" in names(hub))
        with trio.fail_after(WAIT):
            result = await hub.call("fix", "env", {})
        nursery.cancel_scope.cancel()
    env_names = set(result["structuredContent"]["result"])
    assert "SERVICE_API_KEY" in env_names
    assert not {"OPENCLAW_GATEWAY_TOKEN", "OPENCLAW_GATEWAY_PASSWORD"} & env_names
    assert env_names <= {"HOME", "LOGNAME", "PATH", "SHELL", "TERM", "USER", "PYTHONPATH", "SERVICE_API_KEY",
                         "LC_CTYPE"}
    assert hub.status().servers[0].stderr == "starting with key ***"
