"""The ``mcp <server>`` lines: each configured MCP server started the way the daemon starts it,
asked for its tools, and stopped (:func:`node_agent.tools.probe.probe_all`). One line per
server; none at all when ``[mcp]`` configures nothing."""

from __future__ import annotations

from typing import Sequence

from ..agent.status import McpServerState, McpServerStatus
from ..config import Config
from ..errors import ConfigError
from .check import Check, fail, ok, skip, warn
from .context import Context


def word(statuses: Sequence[McpServerStatus]) -> list[Check]:
    """One finding per probed server."""
    checks = []
    for status in statuses:
        name = f"mcp {status.name}"
        if status.state is McpServerState.DISABLED:
            checks.append(skip(name, "enabled = false"))
        elif status.state is McpServerState.READY:
            detail = f"started and listed {len(status.tools)} tool(s)"
            if status.tools:
                checks.append(ok(name, f"{detail}: {', '.join(status.tools[:8])}"
                                       + (", ..." if len(status.tools) > 8 else "")))
            else:
                checks.append(warn(name, f"{detail}: nothing to publish", "check the server's own configuration"))
        else:
            checks.append(fail(name, status.last_error or "did not start",
                               "run its command by hand to see why; raise its timeout if it is only slow"))
    return checks


async def check_tools(config: Config) -> list[Check]:
    settings = config.mcp
    if not settings.servers and not settings.builtin.enabled:
        return []
    from ..tools.probe import probe_all  # the MCP SDK loads only when servers are configured

    try:
        statuses = await probe_all(settings)
    except ConfigError as exc:
        return [fail("mcp servers", exc.message, exc.hint)]
    return word(statuses)


async def run(ctx: Context) -> list[Check]:
    return await check_tools(ctx.cfg)
