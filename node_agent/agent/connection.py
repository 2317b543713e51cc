"""One connection to the gateway: a session, a transport, and the tasks that serve them.

:meth:`Connection.run` owns one nursery for the life of one WebSocket. The main task reads
frames and carries out the session's actions; beside it run the liveness watchdog (the
session's ``deadline()`` and the keepalive ping, on one timer), the presence heartbeat once ready, and one
task per running ``node.invoke``. When the connection ends, for whatever reason, the nursery is
cancelled (so nothing outlives its socket) and ``run`` returns the typed error that ended it.

Invoke contract: every ``node.invoke.request`` gets exactly one ``node.invoke.result``. The
handler runs under the request's ``timeoutMs`` (minus a margin so our answer beats the
gateway's own timeout); on timeout, cancel or a crash it is answered with ``ok: false``. A
connection without a command registry (the operator link) answers every invoke ``UNAVAILABLE``.
An answer the gateway refuses as :class:`~node_agent.errors.PairingStale` ends the connection:
the gateway routes nothing more to it, so the link reconnects at once.

The connection never parses wire JSON and never matches error codes: the session hands it typed
actions (:class:`~node_agent.protocol.actions.InvokeStarted`, a ``ResponseReceived`` whose
refusal is already a typed :class:`~node_agent.errors.GatewayRejected`).
"""

from __future__ import annotations

import logging
import math
from typing import Any, Awaitable, Callable, Protocol

import trio

from ..errors import (
    ConnectionLost,
    GatewayRejected,
    InvokeError,
    NodeAgentError,
    PairingStale,
    RemoteProtocolError,
    Retry,
    SurfacePending,
)
from ..protocol import (
    Action,
    CancelInvoke,
    Close,
    Dispatch,
    Event,
    ForgetDeviceToken,
    HelloOk,
    LogProblem,
    NodeInvokeRequest,
    PairingPending,
    Ready,
    ResponseReceived,
    Send,
    Session,
    State,
    StoreDeviceToken,
)
from ..protocol.actions import InvokeStarted, SurfaceApproved
from ..protocol.replies import NodeEventReply
from ..secret import Secret
from .commands import CommandContext, CommandRegistry

log = logging.getLogger("node_agent.connection")

#: Answer this long before the gateway's own invoke deadline, so the result is not "late".
INVOKE_MARGIN_S = 0.25
#: A handler's time when the gateway sends no ``timeoutMs``.
DEFAULT_INVOKE_BUDGET_S = 30.0


class ConnectionHooks(Protocol):
    """What the link does with a connection's news. All hooks must return promptly; long work
    goes in a task on ``conn.nursery``."""

    async def on_ready(self, conn: "Connection", hello: HelloOk) -> None: ...

    async def on_store_token(self, token: Secret) -> None: ...

    async def on_forget_token(self) -> None: ...

    async def on_pairing_pending(self, pending: PairingPending) -> None: ...

    async def on_surface_approved(self, conn: "Connection") -> None: ...

    async def on_event(self, conn: "Connection", event: Event) -> None: ...

    def on_event_refused(self, event: str, reason: str) -> None:
        """The gateway dropped (``handled: false``) or refused a ``node.event`` we sent."""
        ...


#: Builds the context a command handler gets, for one invoke on one connection.
ContextFactory = Callable[["Connection", NodeInvokeRequest], CommandContext]


async def retry_while_settling(send: Callable[[], Any], *, attempts: int = 6, delay: float = 0.5) -> Any:
    """Call ``send`` again while the gateway refuses it as :class:`SurfacePending`.

    Right after ``node.pair.resolved: approved`` the real gateway can still refuse node methods
    for a moment ("node pairing changed before request dispatch"): the approval is broadcast
    before the live session picks it up. Use this for the first calls after an approval only; a
    surface that is really pending keeps refusing and the last refusal is raised.
    """
    for attempt in range(attempts):
        try:
            return await send()
        except SurfacePending:
            if attempt == attempts - 1:
                raise
            await trio.sleep(delay)


class Connection:
    def __init__(self, session: Session, transport: Any, hooks: ConnectionHooks, *,
                 registry: CommandRegistry | None = None, command_context: ContextFactory | None = None,
                 ping_interval: float | None = 35.0, ping_timeout: float = 10.0):
        self.session = session
        self._transport = transport
        self._hooks = hooks
        self._registry = registry
        self._command_context = command_context
        self._ping_interval = ping_interval
        self._ping_timeout = ping_timeout
        self._send_lock = trio.Lock()
        self._waiters: dict[str, tuple[trio.Event, list[ResponseReceived]]] = {}
        self._invokes: dict[str, trio.CancelScope] = {}
        #: Events an invoke's handler asked to send once its result is written (see
        #: :meth:`after_result`), by invoke id.
        self._after_result: dict[str, list[tuple[str, Any, Callable[[NodeEventReply | None], None] | None]]] = {}
        self._cancelled_invokes: set[str] = set()
        self._deadline_changed = trio.Event()
        self._pinging = False
        self._ponged = -math.inf
        self._nursery: trio.Nursery | None = None
        self._ending: NodeAgentError | None = None
        #: The gateway approved this node's commands on this connection (see :meth:`node_event`).
        self.surface_approved = False

    def __repr__(self) -> str:
        return f"<Connection {self.session!r} invokes={len(self._invokes)}>"

    # -- public, for hooks and handlers -------------------------------------------------------------

    @property
    def nursery(self) -> trio.Nursery:
        assert self._nursery is not None, "connection not running"
        return self._nursery

    async def call(self, method: str, params: Any = None, *, timeout: float = 15.0) -> Any:
        """Make a request and wait for its answer: the decoded reply. Raises
        :class:`~node_agent.errors.GatewayRejected` (typed by the protocol core) on ``ok: false``
        and :class:`~node_agent.errors.ConnectionLost` when no answer can come."""
        self._check_open(method)
        rid, actions = self.session.request(method, params)
        return await self._await_response(method, rid, actions, timeout)

    def close_soon(self, code: int = 1000, reason: str = "node stopping") -> bool:
        """Start a clean close (close frame, wait for the gateway's reply) while the socket's
        reader is still alive. Returns False if the connection is not running any more."""
        if self._nursery is None or self._ending is not None:
            return False
        self._nursery.start_soon(self._perform, [Close(code, reason, ConnectionLost(f"closed by us ({reason})",
                                                                                    close_code=code))])
        return True

    async def subscribe(self, session_key: str, *, subscribe: bool = True, timeout: float = 15.0) -> Any:
        """(Un)subscribe this node to a session's ``chat`` events, however the dialect spells it."""
        method, params = self.session.dialect.subscription(session_key, subscribe)
        return await self.call(method, params, timeout=timeout)

    async def node_event(self, event: str, payload: Any, *, timeout: float = 15.0) -> NodeEventReply:
        """Send a ``node.event`` and return the gateway's typed reply. A reply that says the
        gateway dropped the event (``handled: false``), and a refusal, are reported to the hooks
        (logged once per event and reason, shown in ``status``); a refusal is also raised."""
        try:
            reply = await self._node_event_once(event, payload, timeout)
        except SurfacePending:
            if not self.surface_approved:
                raise
            # This connection saw its commands approved, yet the gateway refused: it has not
            # caught up yet (also when the refusal was in flight across the approval). Ask again.
            reply = await retry_while_settling(lambda: self._node_event_once(event, payload, timeout))
        except GatewayRejected as exc:
            self._hooks.on_event_refused(event, exc.detail_code or exc.code)
            raise
        if reply.refused:
            self._hooks.on_event_refused(event, reply.reason or "not handled")
        return reply

    async def post_node_event(self, event: str, payload: Any, *, timeout: float = 15.0,
                              on_reply: Callable[[NodeEventReply | None], None] | None = None) -> None:
        """Send a ``node.event`` and return as soon as its frame is written, before the gateway
        answers; whatever this connection sends next goes out after it. The answer is read in the
        background and reported to the hooks as :meth:`node_event` reports it; ``on_reply`` hears
        it (None: refused, or no answer came). For a report whose answer nothing waits on
        (:meth:`after_result`)."""
        self._check_open("node.event")
        rid, actions = self.session.node_event(event, payload)
        done, slot = await self._send_request(rid, actions)
        self.nursery.start_soon(self._posted_reply, event, rid, done, slot, timeout, on_reply)

    def after_result(self, invoke_id: str, event: str, payload: Any, *,
                     on_reply: Callable[[NodeEventReply | None], None] | None = None) -> None:
        """Send a ``node.event`` right after the result of invoke ``invoke_id`` is written (with
        :meth:`post_node_event`), if that result is ``ok``; ``on_reply`` hears None if it is not,
        or if the event could not be sent. A report the gateway accepts after the result, such as
        ``exec.finished``, then costs the invoke no gateway round trip."""
        self._after_result.setdefault(invoke_id, []).append((event, payload, on_reply))

    async def _posted_reply(self, event: str, rid: str, done: trio.Event, slot: list[ResponseReceived],
                            timeout: float, on_reply: Callable[[NodeEventReply | None], None] | None) -> None:
        reply: NodeEventReply | None = None
        try:
            reply = await self._response("node.event", rid, done, slot, timeout)
        except GatewayRejected as exc:
            self._hooks.on_event_refused(event, exc.detail_code or exc.code)
        except ConnectionLost:
            pass
        if reply is not None and reply.refused:
            self._hooks.on_event_refused(event, reply.reason or "not handled")
        if on_reply is not None:
            on_reply(reply)

    async def _node_event_once(self, event: str, payload: Any, timeout: float) -> NodeEventReply:
        self._check_open("node.event")
        rid, actions = self.session.node_event(event, payload)
        return await self._await_response("node.event", rid, actions, timeout)

    def _check_open(self, method: str) -> None:
        # A task started just before the socket ended (the presence loop, started by on_ready
        # while the reader finds the close) may run its first step after it: that is the
        # connection being lost, not an illegal protocol step, and must not crash the agent.
        if self._ending is not None or self.session.state in (State.CLOSING, State.CLOSED):
            raise ConnectionLost(f"{method}: the connection has ended")

    # -- the run loop -----------------------------------------------------------------------------

    async def run(self, first_frame: str | bytes | None = None) -> NodeAgentError:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            nursery.start_soon(self._guarded, self._watchdog)
            await self._guarded(self._read_loop, first_frame)
            nursery.cancel_scope.cancel()
        assert self._ending is not None
        for event, _slot in self._waiters.values():
            event.set()  # waiters see an empty slot and raise ConnectionLost
        self._waiters.clear()
        return self._ending

    async def _read_loop(self, first_frame: str | bytes | None) -> None:
        await self._perform(self.session.start(trio.current_time()))
        if first_frame is not None:
            await self._perform(self.session.receive_data(first_frame, trio.current_time()))
        while self._ending is None:
            data = await self._transport.receive()
            await self._perform(self.session.receive_data(data, trio.current_time()))

    async def _guarded(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run a connection task; whatever ends it ends the whole connection, typed once."""
        try:
            await fn(*args)
        except ConnectionLost as exc:
            error = self.session.connection_closed(exc.close_code, exc.close_reason)
            if exc.close_code is None and isinstance(error, ConnectionLost) and error.close_code is None \
                    and error.retry is Retry.TRANSIENT:
                error = exc  # the transport's message is more specific (ping timeout, broken pipe)
            self._end(error)
        except RemoteProtocolError as exc:
            self.session.connection_closed(1009, None)
            self._end(exc)

    def _end(self, error: NodeAgentError) -> None:
        if self._ending is None:
            self._ending = error
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()

    async def _watchdog(self) -> None:
        """The connection's one timer: the session's deadline (handshake timeout, tick watchdog)
        and the keepalive ping, both measured from the last frame heard. Every frame moves them
        without waking the process, so a link whose gateway ticks is never pinged: the ticks
        prove it alive, and an idle node sleeps until the next one arrives."""
        while True:
            deadline = self.session.deadline()
            ping_at = self._ping_due()
            wake = min((t for t in (deadline, ping_at) if t is not None), default=math.inf)
            with trio.move_on_at(wake):
                await self._deadline_changed.wait()
                self._deadline_changed = trio.Event()
                continue
            now = trio.current_time()
            if ping_at is not None and now >= ping_at:
                self._pinging = True
                self.nursery.start_soon(self._ping)
            if deadline is not None and now >= deadline:
                await self._perform(self.session.on_timer(now))

    def _ping_due(self) -> float | None:
        """When to ping: ``ping_interval`` after the last frame or pong, unless a ping is out."""
        if not self._ping_interval or self._pinging or not hasattr(self._transport, "ping"):
            return None
        heard = self.session.last_received
        if heard is None:
            return None
        return max(heard, self._ponged) + self._ping_interval

    async def _ping(self) -> None:
        from ..transport import PingTimeout

        try:
            with trio.fail_after(self._ping_timeout):
                await self._transport.ping()
        except trio.TooSlowError:
            error = PingTimeout(f"no pong within {self._ping_timeout:g} s (link is dead)")
            log.warning("%s; reconnecting", error.message)
            await self._perform([Close(4000, "ping timeout", error)])
            return
        except ConnectionLost:
            return  # the reader sees the close and reports it with its real code
        self._ponged = trio.current_time()
        self._pinging = False
        self._deadline_changed.set()

    # -- carrying out actions -----------------------------------------------------------------------

    async def _perform(self, actions: list[Action]) -> None:
        self._deadline_changed.set()  # any input may move the session's deadline
        for action in actions:
            if isinstance(action, Send):
                async with self._send_lock:
                    await self._transport.send(action.data)
            elif isinstance(action, Dispatch):
                await self._dispatch(action.event)
            elif isinstance(action, InvokeStarted):
                self.nursery.start_soon(self._run_invoke, action)
            elif isinstance(action, SurfaceApproved):
                self.surface_approved = True
                await self._hooks.on_surface_approved(self)
            elif isinstance(action, ResponseReceived):
                if isinstance(action.refusal, PairingStale):
                    self._pairing_went_stale(action.refusal)
                waiter = self._waiters.pop(action.response.id, None)
                if waiter is not None:
                    waiter[1].append(action)
                    waiter[0].set()
                elif action.refusal is not None and not isinstance(action.refusal, PairingStale):
                    log.info("%s answered late: %s", action.method, action.refusal.message)
            elif isinstance(action, CancelInvoke):
                scope = self._invokes.get(action.invoke_id)
                if scope is not None:
                    self._cancelled_invokes.add(action.invoke_id)
                    scope.cancel()
            elif isinstance(action, Ready):
                await self._hooks.on_ready(self, action.hello)
            elif isinstance(action, StoreDeviceToken):
                await self._hooks.on_store_token(action.token)
            elif isinstance(action, ForgetDeviceToken):
                await self._hooks.on_forget_token()
            elif isinstance(action, PairingPending):
                await self._hooks.on_pairing_pending(action)
            elif isinstance(action, LogProblem):
                log.warning("%s", action.message)
            elif isinstance(action, Close):
                if self._ending is None:
                    self._ending = action.error or ConnectionLost(f"closed by us ({action.reason})",
                                                                  close_code=action.code)
                with trio.move_on_after(2) as scope:
                    scope.shield = True
                    await self._transport.aclose(action.code, action.reason)
                if self._nursery is not None:
                    self._nursery.cancel_scope.cancel()

    def _pairing_went_stale(self, refusal: PairingStale) -> None:
        # The gateway will not route to this connection again and closes it on our next request,
        # which may be a heartbeat away: the node would be invisible until then.
        if self.close_soon(1000, "pairing changed; reconnecting"):
            log.warning("the gateway says this connection's pairing is no longer current (%s); reconnecting",
                        refusal.message)

    async def _dispatch(self, event: Event) -> None:
        try:
            await self._hooks.on_event(self, event)
        except Exception:  # a handler bug must not take the connection down
            log.exception("handler for %s failed", event.name)

    async def _await_response(self, method: str, rid: str, actions: list[Action], timeout: float) -> Any:
        done, slot = await self._send_request(rid, actions)
        return await self._response(method, rid, done, slot, timeout)

    async def _send_request(self, rid: str, actions: list[Action]) -> tuple[trio.Event, list[ResponseReceived]]:
        """Write request ``rid``; returns where its answer will land. The waiter is registered
        before the write: the answer may arrive before ``_perform`` returns."""
        done, slot = trio.Event(), []
        self._waiters[rid] = (done, slot)
        try:
            await self._perform(actions)
        except BaseException:
            self._waiters.pop(rid, None)
            raise
        return done, slot

    async def _response(self, method: str, rid: str, done: trio.Event, slot: list[ResponseReceived],
                        timeout: float) -> Any:
        try:
            with trio.fail_after(timeout):
                await done.wait()
        except trio.TooSlowError:
            raise ConnectionLost(f"{method}: no answer within {timeout:g} s") from None
        finally:
            self._waiters.pop(rid, None)
        if not slot:
            raise ConnectionLost(f"{method}: connection ended before the answer")
        received = slot[0]
        if received.refusal is not None:
            raise received.refusal
        return received.reply

    # -- node.invoke --------------------------------------------------------------------------------

    async def _run_invoke(self, started: InvokeStarted) -> None:
        request = started.request
        begun = trio.current_time()
        command = self._registry.get(request.command) if self._registry is not None else None
        ok, payload, code, message = False, None, "UNAVAILABLE", ""
        budget = (request.timeout_ms / 1000 - INVOKE_MARGIN_S) if request.timeout_ms else DEFAULT_INVOKE_BUDGET_S
        with trio.CancelScope() as scope:
            self._invokes[request.id] = scope
            try:
                if command is None or self._command_context is None:
                    code, message = "UNAVAILABLE", f"command not supported: {request.command}"
                elif started.error is not None:
                    code, message = "INVALID_REQUEST", started.error
                else:
                    assert started.arguments is not None
                    with trio.fail_after(max(budget, 0.05)):
                        payload = await command.handler(started.arguments, self._command_context(self, request))
                    ok = True
            except InvokeError as exc:
                code, message = exc.code, exc.message
            except trio.TooSlowError:
                code, message = "TIMEOUT", f"{request.command} did not finish within {budget:.2f} s"
            except Exception as exc:  # the gateway must hear back even when a handler has a bug
                log.exception("command %s failed", request.command)
                code, message = "INTERNAL_ERROR", f"{request.command} failed: {type(exc).__name__}"
        self._invokes.pop(request.id, None)
        if scope.cancelled_caught or request.id in self._cancelled_invokes:
            self._cancelled_invokes.discard(request.id)
            ok, code, message = False, "CANCELLED", "cancelled by the gateway"
        log.info("invoke %s %s in %.0f ms", request.command, "ok" if ok else code,
                 (trio.current_time() - begun) * 1000)
        try:
            if ok:
                _rid, actions = self.session.invoke_result(request.id, ok=True, payload=payload)
            else:
                _rid, actions = self.session.invoke_result(request.id, ok=False, error_code=code,
                                                           error_message=message)
            await self._perform(actions)
        except NodeAgentError as exc:
            log.info("could not answer invoke %s: %s", request.command, exc.message)
            ok = False
        for event, event_payload, on_reply in self._after_result.pop(request.id, ()):
            if ok:
                try:
                    await self.post_node_event(event, event_payload, on_reply=on_reply)
                    continue
                except NodeAgentError as exc:
                    log.info("could not send %s: %s", event, exc.message)
            if on_reply is not None:
                on_reply(None)


async def serve_once(open_transport: Callable[[], Any],
                     start_session: Callable[[Any], Awaitable[tuple[Session, str | bytes | None]]],
                     hooks: ConnectionHooks, *, registry: CommandRegistry | None = None,
                     command_context: ContextFactory | None = None, ping_interval: float | None,
                     ping_timeout: float, track: Callable[[Connection | None], None]) -> tuple[NodeAgentError, bool]:
    """One connection attempt, start to end: open the transport, start a session on it (the
    caller picks the dialect and may hand over a first frame it already read), run a
    :class:`Connection` until it ends. ``track`` sees the live connection, then ``None``.

    Returns the typed error that ended it and whether it had reached ``hello-ok``.
    """
    was_ready = False
    try:
        async with open_transport() as transport:
            session, first = await start_session(transport)
            conn = Connection(session, transport, hooks, registry=registry, command_context=command_context,
                              ping_interval=ping_interval, ping_timeout=ping_timeout)
            track(conn)
            try:
                error = await conn.run(first)
            finally:
                track(None)
            was_ready = session.hello is not None
    except NodeAgentError as exc:
        error = exc
    return error, was_ready
