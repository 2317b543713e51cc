"""``doctor``'s MCP check, and the probe ``tools list --probe`` shares with it.

Each configured server is started once, the way the daemon starts it (same connector, same
child environment, same SDK edge: :meth:`ServerSupervisor.probe`), asked for its tools within its
own ``timeout``, and stopped. All servers are probed at once, so the check takes as long as the
slowest server, not their sum. The builtin tools are probed too, without touching a GPIO line
(lines are requested on first use, and listing uses none).
"""

from __future__ import annotations

import time

import trio

from ..agent.status import McpServerState, McpServerStatus
from ..childenv import server_env
from ..config import Config
from ..config.mcp import McpSettings
from ..doctor import Check, fail, ok, skip, warn
from ..errors import ConfigError
from .assemble import build_hub
from .connectors import load_sdk


async def probe_all(settings: McpSettings) -> list[McpServerStatus]:
    """Start, list and stop every configured server concurrently; in configuration order."""
    await load_sdk()
    hub = build_hub(settings, child_env=server_env, agent_started_at=time.time())
    results: dict[str, McpServerStatus] = {}

    async def probe(supervisor) -> None:
        results[supervisor.name] = await supervisor.probe()

    async with trio.open_nursery() as nursery:
        for supervisor in hub.servers:
            nursery.start_soon(probe, supervisor)
    return [results[s.name] for s in hub.servers]


async def check_tools(config: Config) -> list[Check]:
    """One line per configured server (none at all when ``[mcp]`` configures nothing)."""
    settings = config.mcp
    if not settings.servers and not settings.builtin.enabled:
        return []
    try:
        statuses = await probe_all(settings)
    except ConfigError as exc:
        return [fail("mcp servers", exc.message, exc.hint)]
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
