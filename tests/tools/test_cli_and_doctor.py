"""`node-agent tools list` (from the daemon's status, or --probe) and doctor's MCP check, which
starts each server through the daemon's own start path within its timeout."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import trio

from node_agent.agent.status import (
    McpServerState,
    McpServerStatus,
    PublishedTool,
    StatusBoard,
    ToolsStatus,
)
from node_agent.cli import main as cli_main
from node_agent.config import load_config
from node_agent.doctor import Status
from node_agent.doctor.tools import check_tools

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = [sys.executable, "-m", "tests.support.mcp_fixture_server"]


def toml_value(value) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {json.dumps(v)}" for k, v in value.items()) + " }"
    return json.dumps(value)


def write_config(tmp_path: Path, servers: list[dict], builtin: bool = False) -> Path:
    lines = [f'[node]\nstate_dir = "{tmp_path / "state"}"\n']
    if builtin:
        lines.append("[mcp.builtin]\nenabled = true\n")
    for server in servers:
        lines.append("[[mcp.servers]]")
        for key, value in server.items():
            lines.append(f"{key} = {toml_value(value)}")
        lines.append("")
    path = tmp_path / "config.toml"
    path.write_text("\n".join(lines))
    return path


def daemon_status(state_dir: Path) -> None:
    board = StatusBoard(state_dir)
    board.update(tools=ToolsStatus(
        servers=(McpServerStatus(name="device", state=McpServerState.READY, tools=("status",), builtin=True),
                 McpServerStatus(name="git", state=McpServerState.FAILING, restarts=4, consecutive_failures=5,
                                 last_error="No such file or directory: /opt/mcp-server-git")),
        published=(PublishedTool(name="device_status", server="device", tool="status"),),
        notes=("git/x.y: published as 'git_x_y' (names must match ^[A-Za-z][A-Za-z0-9_-]{0,63}$)",),
        sent=1, kept=1, sdk_loaded=True))
    board._write(board.current)  # what the daemon's writer task does, without the task


def test_tools_list_shows_each_server_its_state_and_what_the_gateway_keeps(tmp_path, capsys):
    config = write_config(tmp_path, [{"name": "git", "command": ["/opt/mcp-server-git"]}], builtin=True)
    daemon_status(tmp_path / "state")
    code = cli_main(["tools", "list", "--config", str(config)])
    out = capsys.readouterr().out
    assert code == 1  # a failing server is worth a non-zero exit for scripts
    assert out.splitlines() == [
        "device  ready      (builtin)",
        "    status  -> device_status",
        "git     failing",
        "    last error: No such file or directory: /opt/mcp-server-git",
        "    restarts: 4",
        "published: 1 tool(s) as plugin node-mcp; the gateway keeps 1",
        "note: git/x.y: published as 'git_x_y' (names must match ^[A-Za-z][A-Za-z0-9_-]{0,63}$)",
    ]
    cli_main(["tools", "list", "--json", "--config", str(config)])
    data = json.loads(capsys.readouterr().out)
    assert data["running"] is True
    assert data["tools"]["published"] == [{"name": "device_status", "server": "device", "tool": "status"}]
    assert data["tools"]["servers"][1]["lastError"].startswith("No such file")


def test_tools_list_says_so_when_the_agent_is_not_running(tmp_path, capsys):
    config = write_config(tmp_path, [{"name": "time", "command": ["mcp-server-time"]}])
    assert cli_main(["tools", "list", "--config", str(config)]) == 1
    assert capsys.readouterr().out.splitlines() == [
        "node-agent is not running: nothing is published right now.",
        "configured MCP servers: time (try `node-agent tools list --probe`)"]


def test_the_status_screen_has_a_tools_line(tmp_path, capsys):
    config = write_config(tmp_path, [])
    daemon_status(tmp_path / "state")
    cli_main(["status", "--config", str(config)])
    assert "tools:      1 published, the gateway keeps 1; failing: git (node-agent tools list)" in \
        capsys.readouterr().out


def test_tools_list_probe_starts_the_servers_and_lists_their_tools(tmp_path, capsys):
    config = write_config(tmp_path, [{"name": "fix", "command": FIXTURE, "env": {"PYTHONPATH": str(ROOT)}}],
                          builtin=True)
    assert cli_main(["tools", "list", "--probe", "--config", str(config)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "device  ready      (builtin)"
    assert "fix     ready" in out and "    crash" in out and "    echo" in out


async def test_doctor_checks_each_server_starts_and_lists_within_its_timeout(tmp_path):
    config = load_config(config_file=write_config(tmp_path, [
        {"name": "fix", "command": FIXTURE, "env": {"PYTHONPATH": str(ROOT)}},
        {"name": "missing", "command": ["/nonexistent/mcp-server"]},
        {"name": "hung", "command": [sys.executable, "-c", "import time; time.sleep(600)"], "timeout": 2},
        {"name": "off", "command": ["x"], "enabled": False}]), env={})
    with trio.fail_after(120):
        checks = await check_tools(config)
    by_name = {c.name: c for c in checks}
    assert list(by_name) == ["mcp fix", "mcp missing", "mcp hung", "mcp off"]
    assert by_name["mcp fix"].status is Status.OK
    assert by_name["mcp fix"].detail.startswith("started and listed 5 tool(s): ")
    assert (by_name["mcp missing"].status, by_name["mcp missing"].detail) == (
        Status.FAIL, "No such file or directory: /nonexistent/mcp-server")
    assert (by_name["mcp hung"].status, by_name["mcp hung"].detail) == (Status.FAIL, "did not start within 2 s")
    assert by_name["mcp off"].status is Status.SKIP


async def test_doctor_has_no_mcp_lines_when_nothing_is_configured(tmp_path):
    config = load_config(config_file=write_config(tmp_path, []), env={})
    assert await check_tools(config) == []
