"""Settings in, a ready-to-run :class:`ToolHub` out (no I/O until the hub runs)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from ..adapters.base import Gpio
from ..config.mcp import BUILTIN_SERVER, McpSettings
from .builtin import build_device_server
from .connectors import InProcessConnector, StdioConnector
from .hub import AuditSink, ToolHub
from .supervisor import RestartPolicy, ServerSupervisor

log = logging.getLogger("node_agent.tools")

#: Builds a child's environment from the server's own ``env`` (the one place that does it for
#: every subprocess: minimal, never the gateway's token or password).
ChildEnv = Callable[[Mapping[str, str]], Mapping[str, str]]


def build_hub(settings: McpSettings, *, child_env: ChildEnv, agent_started_at: float,
              gpio: Gpio | None = None, audit: AuditSink | None = None,
              policy: RestartPolicy | None = None) -> ToolHub:
    supervisors: list[ServerSupervisor] = []
    if settings.builtin.enabled:
        connector = InProcessConnector(BUILTIN_SERVER, lambda: build_device_server(
            agent_started_at=agent_started_at, gpio=gpio))
        supervisors.append(ServerSupervisor(BUILTIN_SERVER, connector, timeout=settings.builtin.timeout,
                                            policy=policy, builtin=True))
    for server in settings.servers:
        connector = StdioConnector(server.name, server.command, env=child_env(server.env), cwd=server.cwd,
                                   masked=tuple(server.env.values()))
        supervisors.append(ServerSupervisor(server.name, connector, timeout=server.timeout,
                                            enabled=server.enabled, policy=policy))
    return ToolHub(supervisors, audit=audit)
