"""Keeping one MCP server alive: start, list, serve, notice the crash, wait, start again.

Theory of operation. One :class:`ServerSupervisor` per configured server runs one loop in the
hub's nursery::

    STARTING --(handshake + first tools/list within `timeout`)--> READY --(output ends)--+
       ^   \\--(spawn error, handshake error, timeout)--+                                  |
       |                                                v                                  |
       +--------(backoff delay)-------- RESTARTING / FAILING <-----------------------------+

* A server is READY only while its connection lives; its tools are in the hub's catalog only
  while it is READY. Every transition calls ``on_change``, and the hub republishes, so a crashed
  server's tools are withdrawn at once, never left dangling at the gateway.
* The start deadline covers spawning, the MCP handshake and the first listing: a server that
  hangs before it can answer is a failed start, killed and retried like a crash.
* :class:`RestartPolicy` is pure (times in, delays out): 0.25 s, 0.5 s, 1 s ... capped at 60 s;
  a run that stayed READY for ``stable_after`` seconds starts the schedule afresh. After
  ``failing_after`` failed runs in a row the state is FAILING: still retried at the capped
  delay (a device that appears later is picked up) but shown as broken in ``status``/``doctor``.
* A ``tools/list_changed`` announcement re-lists while READY; a failed re-list ends the run
  (the reference node host does the same: a server that cannot list is not trusted to call).

Tool calls do not go through the loop: the hub takes :attr:`session` and calls it from the
invoke's own task, so a slow call never blocks supervision and a crash mid-call surfaces in
both places (the call answers ``MCP_SERVER_UNAVAILABLE``; the loop restarts the server).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Protocol

import attrs
import trio

from ..agent.status import McpServerState as ServerState
from ..agent.status import McpServerStatus as ServerStatus
from .descriptors import ListedTool
from .session import McpError, McpRequestFailed, McpSession, describe, innermost, is_control

log = logging.getLogger("node_agent.tools")


class Connector(Protocol):
    """How to reach one server: open a live :class:`McpSession` (stdio child, in-process
    server, a test double). ``diagnostics`` is what the server said about itself lately
    (its last stderr lines), for a person reading ``status``/``doctor``."""

    def open(self) -> AbstractAsyncContextManager[McpSession]: ...

    def diagnostics(self) -> tuple[str, ...]: ...


@attrs.define
class RestartPolicy:
    initial: float = 0.25
    maximum: float = 60.0
    factor: float = 2.0
    stable_after: float = 30.0
    failing_after: int = 3

    def delay(self, consecutive_failures: int) -> float:
        """Delay before the next start after ``consecutive_failures`` (>= 1) failed runs."""
        return min(self.initial * self.factor ** max(consecutive_failures - 1, 0), self.maximum)


class ServerSupervisor:
    def __init__(self, name: str, connector: Connector, *, timeout: float, enabled: bool = True,
                 policy: RestartPolicy | None = None, on_change: Callable[[], None] = lambda: None,
                 builtin: bool = False):
        self.name = name
        self.connector = connector
        self.timeout = timeout
        self.enabled = enabled
        self.builtin = builtin
        self.policy = policy or RestartPolicy()
        self._on_change = on_change
        self.state = ServerState.STARTING if enabled else ServerState.DISABLED
        self.tools: tuple[ListedTool, ...] = ()
        self.session: McpSession | None = None
        self.restarts = 0
        self.consecutive_failures = 0
        self.last_error: str | None = None
        self._runs = 0

    async def run(self) -> None:
        """Supervise forever (until cancelled). Never raises for anything the server does."""
        if not self.enabled:
            return
        while True:
            ready_for = await self._run_once()
            if ready_for is not None and ready_for >= self.policy.stable_after:
                self.consecutive_failures = 1
            else:
                self.consecutive_failures += 1
            delay = self.policy.delay(self.consecutive_failures)
            failing = self.consecutive_failures >= self.policy.failing_after
            self._set(ServerState.FAILING if failing else ServerState.RESTARTING)
            # One warning per streak: its first failure and the moment it counts as failing.
            loud = self.consecutive_failures in (1, self.policy.failing_after)
            log.log(logging.WARNING if loud else logging.INFO, "MCP server %s %s: %s; starting again in %.2f s",
                    self.name, "keeps failing" if failing else ("stopped" if ready_for is not None
                                                                 else "did not start"),
                    self.last_error, delay)
            await trio.sleep(delay)
            self.restarts += 1

    async def probe(self) -> ServerStatus:
        """Start once, list the tools, stop: ``doctor``'s check, through the same connector and
        SDK edge the daemon uses, within the same start deadline. READY with the tool names, or
        FAILING with the reason."""
        status = self.status()
        if not self.enabled:
            return status
        error = None
        with trio.move_on_after(self.timeout) as deadline:
            try:
                async with self.connector.open() as session:
                    tools = await session.list_tools()
                return dataclasses.replace(status, state=ServerState.READY, tools=tuple(t.name for t in tools))
            except BaseException as exc:
                if is_control(exc):
                    raise
                error = describe(exc)
        if deadline.cancelled_caught:
            error = f"did not start within {self.timeout:g} s"
        lines = self.connector.diagnostics()
        return dataclasses.replace(status, state=ServerState.FAILING, last_error=f"{error}{self._stderr_hint()}",
                            stderr=lines[-1] if lines else None)

    async def _run_once(self) -> float | None:
        """One start-and-serve run. Returns how long it was READY (``None``: never was)."""
        self._set(ServerState.STARTING)
        self._runs += 1
        ready_at: float | None = None
        with trio.CancelScope() as start_scope:
            start_scope.deadline = trio.current_time() + self.timeout
            try:
                async with self.connector.open() as session:
                    self.tools = await session.list_tools()
                    start_scope.deadline = math.inf
                    ready_at = trio.current_time()
                    self.session = session
                    self._set(ServerState.READY)
                    log.info("MCP server %s ready: %d tool(s)", self.name, len(self.tools))
                    await self._serve(session)
                self.last_error = "exited" + self._stderr_hint()
            except BaseException as exc:
                if is_control(exc):
                    raise
                self.last_error = describe(exc) + self._stderr_hint()
                if not isinstance(innermost(exc), (McpError, OSError)):
                    log.warning("MCP server %s: unexpected error", self.name, exc_info=exc)
            finally:
                self.session = None
                self.tools = ()
        if start_scope.cancelled_caught:
            self.last_error = f"did not start within {self.timeout:g} s" + self._stderr_hint()
        return None if ready_at is None else trio.current_time() - ready_at

    async def _serve(self, session: McpSession) -> None:
        async with trio.open_nursery() as nursery:
            async def watch_closed() -> None:
                await session.wait_closed()
                nursery.cancel_scope.cancel()

            nursery.start_soon(watch_closed)
            while True:
                await session.wait_tools_changed()
                with trio.move_on_after(self.timeout) as relist:
                    tools = await session.list_tools()
                if relist.cancelled_caught:
                    raise McpRequestFailed(f"tools/list after a change did not answer within {self.timeout:g} s")
                if tools != self.tools:
                    log.info("MCP server %s: tool list changed (%d tool(s))", self.name, len(tools))
                    self.tools = tools
                    self._on_change()

    def _stderr_hint(self) -> str:
        lines = self.connector.diagnostics()
        return f" (stderr: {lines[-1]})" if lines else ""

    def _set(self, state: ServerState) -> None:
        changed = state is not self.state
        self.state = state
        if changed:
            self._on_change()

    def status(self) -> ServerStatus:
        lines = self.connector.diagnostics()
        return ServerStatus(name=self.name, state=self.state, tools=tuple(t.name for t in self.tools),
                            restarts=self.restarts, consecutive_failures=self.consecutive_failures,
                            last_error=self.last_error, stderr=lines[-1] if lines else None,
                            builtin=self.builtin)

    def __repr__(self) -> str:
        return (f"<ServerSupervisor {self.name} {self.state.value} tools={len(self.tools)} "
                f"restarts={self.restarts}>")
