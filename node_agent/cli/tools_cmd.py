"""``node-agent tools list``: what the node publishes, per MCP server, with each server's state.

By default it reads what the running daemon wrote (``status.json``'s ``tools`` section): the
servers as the daemon supervises them, the descriptor names it published, what the gateway kept,
and the tools it had to rename, cut or leave out. ``--probe`` starts every configured server
once instead, through the same path as the daemon (and ``doctor``), for when it is not running.
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Callable

from .options import config_from_args

if TYPE_CHECKING:
    from ..agent.status import ToolsStatus


def add_parser(sub, common: Callable[[argparse.ArgumentParser], None]) -> None:
    p = sub.add_parser("tools", help="the node's MCP tools (tools list)")
    tools_sub = p.add_subparsers(dest="tools_command", metavar="ACTION", required=True)
    q = tools_sub.add_parser("list", help="what is published, per MCP server, with its state")
    common(q)
    q.add_argument("--json", action="store_true", help="machine-readable output")
    q.add_argument("--probe", action="store_true",
                   help="start each configured server now and list its tools (when the agent is not running)")
    q.set_defaults(func=tools_list)


def tools_list(args: argparse.Namespace) -> int:
    from ..agent.status import McpServerState, ToolsStatus, read_status, to_json

    config = config_from_args(args)
    if args.probe:
        import trio

        from ..tools.probe import probe_all

        servers = trio.run(probe_all, config.mcp)
        tools = ToolsStatus(servers=tuple(servers))
        running = False
    else:
        current = read_status(config.state_dir)
        running = current is not None and not current.stale and current.pid is not None
        tools = current.tools if current is not None and running else None
    if args.json:
        from ..agent.status import AgentStatus

        section = to_json(AgentStatus(tools=tools))["tools"] if tools is not None else None
        print(json.dumps({"running": running, "probed": bool(args.probe), "tools": section}, indent=2,
                         sort_keys=True))
        return 0
    if tools is None:
        configured = [s.name for s in config.mcp.servers] + (["device (builtin)"] if config.mcp.builtin.enabled else [])
        print("node-agent is not running: nothing is published right now.")
        print(f"configured MCP servers: {', '.join(configured) or 'none'}"
              + (" (try `node-agent tools list --probe`)" if configured else ""))
        return 1
    print(render_tools(tools, probed=args.probe), end="")
    broken = any(s.state is McpServerState.FAILING for s in tools.servers)
    return 1 if broken else 0


def render_tools(tools: "ToolsStatus", *, probed: bool = False) -> str:
    """The ``tools list`` screen, as a person reads it."""
    from ..tools.descriptors import PLUGIN_ID

    lines: list[str] = []
    width = max((len(s.name) for s in tools.servers), default=6)
    published = {(p.server, p.tool): p.name for p in tools.published}
    for server in tools.servers:
        label = f"{server.name:<{width}}  {server.state.value:<10}"
        if server.builtin:
            label += " (builtin)"
        lines.append(label.rstrip())
        for tool in server.tools:
            name = published.get((server.name, tool))
            lines.append(f"    {tool}" + (f"  -> {name}" if name else ("" if probed else "  (not published)")))
        if server.last_error and server.state.value != "ready":
            lines.append(f"    last error: {server.last_error}")
        if server.restarts:
            lines.append(f"    restarts: {server.restarts}")
    if not probed:
        if tools.sent is None:
            lines.append(f"published: {len(tools.published)} tool(s) in the catalog; not sent to a gateway yet")
        else:
            kept = "?" if tools.kept is None else str(tools.kept)
            lines.append(f"published: {tools.sent} tool(s) as plugin {PLUGIN_ID}; the gateway keeps {kept}")
        if tools.publish_error:
            lines.append(f"  last update: {tools.publish_error}")
        if not tools.sdk_loaded:
            lines.append("  (the MCP SDK is still loading)")
    for note in tools.notes:
        lines.append(f"note: {note}")
    return "\n".join(lines) + "\n"

