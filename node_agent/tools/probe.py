"""The probe ``doctor``'s MCP lines and ``tools list --probe`` share.

Each configured server is started once, the way the daemon starts it (same connector, same
child environment, same SDK edge: :meth:`ServerSupervisor.probe`), asked for its tools within its
own ``timeout``, and stopped. All servers are probed at once, so the check takes as long as the
slowest server, not their sum. The builtin tools are probed too, without touching a GPIO line
(lines are requested on first use, and listing uses none).
"""

from __future__ import annotations

import time

import trio

from ..agent.status import McpServerStatus
from ..childenv import server_env
from ..config.mcp import McpSettings
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
