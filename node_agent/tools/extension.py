"""MCP tools on the wire: plugs the :class:`~.hub.ToolHub` into the agent.

The hub (its servers, their supervision, the catalog) lives for the whole process, across
reconnects; this extension is the only part that knows about the gateway:

* It declares ``mcp.tools.call.v1`` (cap ``mcp``, as the OpenClaw node host does) only when
  something can answer it: an enabled ``[[mcp.servers]]`` or ``[mcp.builtin]``. A new command
  widens the node's surface, and the gateway then asks a person to approve the node again, so a
  node without tools must not declare it.
* After ``hello-ok`` it runs one :class:`~.publisher.Publisher` loop on the connection's nursery
  (``node.pluginTools.update``, once per catalog change); the connection's end ends it. OpenClaw
  refuses node methods while the node's commands await approval (``SurfacePending``): the
  update is sent again once ``node.pair.resolved`` says approved. Only the OpenClaw dialect has
  the method; on the documented dialect nothing is published (the command stays declared: such
  a gateway may still invoke it directly).
* ``mcp.tools.call.v1 {server, tool, arguments?}`` -> :meth:`ToolHub.call`, with the invoke's
  own deadline (``timeoutMs``, less the connection's margin) as the upper bound, so the answer is
  ``MCP_TOOL_TIMEOUT`` rather than the connection's generic ``TIMEOUT``.
* ``status``: the hub's :class:`~node_agent.agent.status.ToolsStatus`, on every change.

The SDK is imported in :meth:`run`, in a worker thread (:func:`~.connectors.load_sdk`): the node
connects and serves its other commands meanwhile; tool calls answer ``MCP_SERVER_UNAVAILABLE``
until the servers are up.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from ..adapters import PlatformAdapter
from ..agent.commands import CommandContext, CommandRegistry
from ..agent.connection import DEFAULT_INVOKE_BUDGET_S, INVOKE_MARGIN_S, Connection, retry_while_settling
from ..agent.status import StatusBoard
from ..childenv import server_env
from ..config.mcp import McpSettings
from ..errors import ConfigError, InvokeError, SurfacePending
from ..protocol import Event, HelloOk, NodePairResolved
from .assemble import build_hub
from .connectors import load_sdk, require_sdk
from .descriptors import COMMAND
from .hub import AuditSink, ToolHub
from .publisher import Publisher

log = logging.getLogger("node_agent.tools")

CAP = "mcp"
METHOD = "node.pluginTools.update"
#: Answer before the connection's own deadline fires (it would answer a bare ``TIMEOUT``).
_DEADLINE_MARGIN_S = 0.25
#: How long the SDK import waits for the node's first hello-ok (see :meth:`ToolsExtension.run`).
CONNECT_FIRST_S = 10.0


class ToolsExtension:
    def __init__(self, settings: McpSettings, adapter: PlatformAdapter, status: StatusBoard, *,
                 agent_started_at: float, audit: AuditSink | None = None, hub: ToolHub | None = None,
                 load: Callable[[], Awaitable[None]] = load_sdk):
        self.settings = settings
        self.status = status
        self._load = load
        if hub is None:
            require_sdk()
            hub = build_hub(settings, child_env=server_env, agent_started_at=agent_started_at,
                            gpio=_gpio(settings, adapter), audit=audit)
        self.hub = hub
        self.publisher = Publisher(self.hub)
        self._conn: Connection | None = None
        self._first_ready = trio.Event()

    def __repr__(self) -> str:
        return f"<ToolsExtension servers={[s.name for s in self.hub.servers]} connected={self._conn is not None}>"

    def register(self, registry: CommandRegistry) -> None:
        if self.settings.declares_tools:
            registry.register(COMMAND, self._call, cap=CAP)

    # -- the process-long part ----------------------------------------------------------------

    async def run(self) -> None:
        """Load the SDK, then supervise every server; keep ``status`` fresh. Root nursery.

        The import waits for the node's first ``hello-ok`` (at most :data:`CONNECT_FIRST_S`): it
        runs in a worker thread, but building pydantic models is Python holding the GIL for a
        second or more, and the node's own connect should not compete with it (bench/tools.py:
        hello-ok 0.90 s median before this wait, 0.69 s with it, on a busy 2-core machine). The
        tools come no later either way: the servers need the SDK to start."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._status_loop)
            with trio.move_on_after(CONNECT_FIRST_S):
                await self._first_ready.wait()
            began = trio.current_time()
            await self._load()
            self.hub.sdk_loaded = True
            log.info("MCP SDK loaded in %.2f s; starting %d MCP server(s)", trio.current_time() - began,
                     sum(1 for s in self.hub.servers if s.enabled))
            await self.hub.run()

    async def _status_loop(self) -> None:
        while True:
            seen = self.hub.status_version
            self.status.update(tools=self.hub.status())
            await self.hub.wait_status_changed(seen)

    # -- the command ----------------------------------------------------------------------------

    async def _call(self, params: dict[str, Any], ctx: CommandContext) -> Any:
        server, tool, arguments = _call_params(params)
        request = ctx.request
        # The connection's own budget for this handler (see Connection._run_invoke), a little less.
        budget = (request.timeout_ms / 1000 - INVOKE_MARGIN_S if request is not None and request.timeout_ms
                  else DEFAULT_INVOKE_BUDGET_S)
        return await self.hub.call(server, tool, arguments, timeout=max(budget - _DEADLINE_MARGIN_S, 0.05))

    # -- AgentExtension hooks -----------------------------------------------------------------

    async def on_ready(self, conn: Connection, hello: HelloOk) -> None:
        self._conn = conn
        self._first_ready.set()
        if not self.settings.declares_tools:
            return
        if conn.session.dialect.name != "openclaw":
            log.info("this gateway's dialect (%s) has no %s: MCP tools are served but not published",
                     conn.session.dialect.name, METHOD)
            return

        async def send(tools: list[dict[str, Any]]) -> Any:
            async def once() -> Any:
                return await conn.call(METHOD, {"tools": tools})

            try:
                return await once()
            except SurfacePending:
                if not conn.surface_approved:
                    raise
                return await retry_while_settling(once)  # approved a moment ago: it is catching up

        conn.nursery.start_soon(self.publisher.publish, send)

    async def on_event(self, conn: Connection, event: Event) -> None:
        if isinstance(event.body, NodePairResolved) and event.body.approved:
            self.publisher.refresh()

    async def on_disconnected(self) -> None:
        self._conn = None


def _call_params(params: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    server, tool = params.get("server"), params.get("tool")
    server = server.strip() if isinstance(server, str) else ""
    tool = tool.strip() if isinstance(tool, str) else ""
    if not server or not tool:
        raise InvokeError("INVALID_REQUEST", f"{COMMAND} needs string 'server' and 'tool'")
    arguments = params.get("arguments", {})
    if arguments is None:
        arguments = {}
    if not isinstance(arguments, dict):
        raise InvokeError("INVALID_REQUEST", f"{COMMAND}: 'arguments' must be an object")
    return server, tool, arguments


def _gpio(settings: McpSettings, adapter: PlatformAdapter) -> Any:
    lines = settings.builtin.gpio
    if not settings.builtin.enabled or not lines:
        return None
    if adapter.gpio_factory is None:
        raise ConfigError(f"[mcp.builtin.gpio] names {len(lines)} line(s), but the {adapter.name!r} adapter has "
                          "no GPIO", hint="GPIO tools need the Pi adapter ([node] adapter = \"pi\")")
    return adapter.gpio_factory(lines)
