"""The node's MCP servers as one thing: their supervisors, the published catalog, tool calls.

Invariants:

* The catalog is a function of the READY servers' tool lists (:func:`build_catalog`), rebuilt on
  every state change of any server; ``version`` moves only when the catalog really changed, so
  the publisher sends ``node.pluginTools.update`` once per real change, however many servers
  restart together.
* A call is served only for a tool that is in the catalog *now*: what the gateway was told is
  what can run. A tool we skipped (over the limits) or of a server that is down is
  ``MCP_TOOL_UNAVAILABLE`` / ``MCP_SERVER_UNAVAILABLE`` before anything is sent to a server.
* Error codes are the reference node host's (``src/node-host/mcp.ts``): the server is not
  connected or went away during the call -> ``MCP_SERVER_UNAVAILABLE``; the call outlived its
  timeout -> ``MCP_TOOL_TIMEOUT``; the server answered with an MCP error -> ``MCP_TOOL_ERROR``.
  A tool that *ran* and failed is not an error here: its ``isError: true`` result is the answer.
* Cancellation (``node.invoke.cancel``, a lost gateway connection) cancels the caller's task; the
  SDK turns that into ``notifications/cancelled`` to the server. Nothing is answered or audited
  as a success for a cancelled call.
* Every call that reached the lookup is audited: server, tool, duration, outcome, and the
  arguments with every one the tool's input schema marks secret masked; never the output.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import trio

from ..agent.status import McpServerState, PublishedTool, ToolsStatus
from ..errors import InvokeError
from .bounds import bound_result
from .descriptors import Catalog, ListedTool, build_catalog
from .secrets import audit_arguments
from .session import McpError, McpServerGone
from .supervisor import ServerSupervisor

log = logging.getLogger("node_agent.tools")

SERVER_UNAVAILABLE = "MCP_SERVER_UNAVAILABLE"
TOOL_UNAVAILABLE = "MCP_TOOL_UNAVAILABLE"
TOOL_TIMEOUT = "MCP_TOOL_TIMEOUT"
TOOL_ERROR = "MCP_TOOL_ERROR"

#: ``await audit(kind, **fields)``: :meth:`node_agent.audit.AuditLog.append`'s shape.
AuditSink = Callable[..., Awaitable[None]]
AUDIT_KIND = "mcp.tool.call"
_AUDIT_WRITE_TIMEOUT = 5.0


class ToolHub:
    def __init__(self, supervisors: Sequence[ServerSupervisor], *, audit: AuditSink | None = None,
                 clock: Callable[[], float] = time.monotonic):
        names = [s.name for s in supervisors]
        if len(set(names)) != len(names):
            raise ValueError(f"MCP server names must be unique: {names}")
        self._servers = {s.name: s for s in supervisors}
        for supervisor in supervisors:
            supervisor._on_change = self._rebuild  # noqa: SLF001  (the hub owns its supervisors)
        self._audit = audit
        self._clock = clock
        self.catalog = Catalog()
        self.version = 0  # moves when the catalog changes (what the gateway must be told)
        self.status_version = 0  # moves on any change a person would see (states, errors too)
        self._changed = trio.Event()
        self.sdk_loaded = False
        self._publication: dict[str, Any] = {}

    @property
    def servers(self) -> tuple[ServerSupervisor, ...]:
        return tuple(self._servers.values())

    async def run(self) -> None:
        """Supervise every enabled server until cancelled."""
        async with trio.open_nursery() as nursery:
            for supervisor in self._servers.values():
                nursery.start_soon(supervisor.run, name=f"mcp-server:{supervisor.name}")

    async def wait_changed(self, seen: int) -> int:
        """Wait until the catalog's version differs from ``seen``; return the new version."""
        while self.version == seen:
            await self._changed.wait()
        return self.version

    async def wait_status_changed(self, seen: int) -> int:
        """Wait until :attr:`status_version` differs from ``seen``; return it."""
        while self.status_version == seen:
            await self._changed.wait()
        return self.status_version

    def _rebuild(self) -> None:
        self.status_version += 1
        self._wake()
        listed: dict[str, tuple[ListedTool, ...]] = {
            s.name: s.tools for s in self._servers.values() if s.state is McpServerState.READY}
        catalog = build_catalog(listed)
        if catalog == self.catalog:
            return
        old_notes = set(self.catalog.notes)
        for note in catalog.notes:
            if note not in old_notes:
                log.log(logging.WARNING if note.skipped else logging.INFO, "MCP tool %s%s", note,
                        " (not published)" if note.skipped else "")
        self.catalog = catalog
        self.version += 1
        self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    # -- calls ---------------------------------------------------------------------------------

    async def call(self, server: str, tool: str, arguments: Mapping[str, Any], *,
                   timeout: float | None = None) -> dict[str, Any]:
        """Run ``tool`` on ``server``: the bounded MCP result, or :class:`InvokeError` with an
        ``MCP_*`` code (see module doc). ``timeout`` (the invoke's own) can only shorten the
        server's configured one."""
        started = self._clock()
        outcome = "ok"
        supervisor = self._servers.get(server)
        listed = None
        try:
            if supervisor is None or supervisor.session is None:
                raise InvokeError(SERVER_UNAVAILABLE, f'MCP server "{server}" is unavailable')
            session = supervisor.session
            if self.catalog.find(server, tool) is None:
                raise InvokeError(TOOL_UNAVAILABLE, f'MCP tool "{tool}" is unavailable on server "{server}"')
            listed = next((t for t in supervisor.tools if t.name == tool), None)
            limit = supervisor.timeout if timeout is None else min(timeout, supervisor.timeout)
            with trio.move_on_after(limit) as scope:
                try:
                    result = await session.call_tool(tool, arguments)
                except McpServerGone as exc:
                    raise InvokeError(SERVER_UNAVAILABLE, f'MCP server "{server}" disconnected') from exc
                except McpError as exc:
                    raise InvokeError(TOOL_ERROR, exc.message) from exc
            if scope.cancelled_caught:
                raise InvokeError(TOOL_TIMEOUT, f'MCP tool "{tool}" on server "{server}" did not answer '
                                                f"within {limit:g} s")
            payload = bound_result(result)
            if payload.get("isError"):
                outcome = "isError"
            return payload
        except InvokeError as exc:
            outcome = exc.code
            raise
        except BaseException:
            outcome = "cancelled"
            raise
        finally:
            # Shielded: a cancelled call is still recorded (as "cancelled"), within a bound.
            with trio.CancelScope(shield=True), trio.move_on_after(_AUDIT_WRITE_TIMEOUT):
                await self._record(server, tool, arguments, listed, outcome, self._clock() - started)

    async def _record(self, server: str, tool: str, arguments: Mapping[str, Any], listed: ListedTool | None,
                      outcome: str, duration: float) -> None:
        log.info("MCP tool call %s/%s: %s in %.0f ms", server, tool, outcome, duration * 1000)
        if self._audit is None:
            return
        try:
            await self._audit(AUDIT_KIND, server=server, tool=tool, durationMs=round(duration * 1000, 1),
                              outcome=outcome,
                              arguments=audit_arguments(arguments, listed.input_schema if listed else None))
        except Exception as exc:  # noqa: BLE001  (a full disk must not turn a tool result into an error)
            log.warning("audit log: could not record the MCP tool call %s/%s: %s", server, tool, exc)

    # -- what a person sees --------------------------------------------------------------------

    def note_publication(self, *, sent: int, kept: int | None = None, error: str | None = None) -> None:
        """What the last ``node.pluginTools.update`` did (the publisher reports it here)."""
        self._publication = {"sent": sent, "kept": kept, "publish_error": error,
                             "published_at_ms": int(time.time() * 1000)}
        self.status_version += 1
        self._wake()

    def status(self) -> ToolsStatus:
        return ToolsStatus(servers=tuple(s.status() for s in self._servers.values()),
                           published=tuple(PublishedTool(name=d.name, server=d.server, tool=d.tool)
                                           for d in self.catalog.descriptors),
                           notes=tuple(str(n) for n in self.catalog.notes), sdk_loaded=self.sdk_loaded,
                           **self._publication)
