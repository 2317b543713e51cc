"""The node session: a pure state machine that turns frames and time into actions.

Theory of operation
-------------------
One :class:`Session` lives for one WebSocket connection. It has no clock, no socket and no
logger; the Trio layer feeds it three kinds of input and carries out the actions it returns:

* ``receive_data(text, now)`` for every inbound frame;
* ``on_timer(now)`` whenever ``deadline()`` has passed;
* ``connection_closed(code, reason)`` when the socket ends, which returns the error that ends
  the connection (so the supervisor can pick its retry category).

Outbound calls (``node_event``, ``invoke_result``, ``request``) return the actions to perform.

States, and what moves between them (every legal transition is a row of :data:`TRANSITIONS`;
anything else is our bug and raises :class:`~node_agent.errors.LocalProtocolError`)::

    AWAITING_CHALLENGE --CONNECT_SENT--> CONNECTING --HELLO_OK--> READY
                                          |      ^                  |
                          AWAITING_APPROVAL      CONNECT_SENT       |
                                          v      |                  |
                                        PENDING_APPROVAL --HELLO_OK-+
          (any open state) --CLOSE_REQUESTED--> CLOSING --SOCKET_CLOSED--> CLOSED (terminal)

The handshake reports its progress explicitly (:class:`~.actions.HandshakeStep` for
``CONNECT_SENT`` and ``AWAITING_APPROVAL``); ``Ready`` is ``HELLO_OK`` and ``Close`` is
``CLOSE_REQUESTED``. ``PENDING_APPROVAL`` ends the connection in the OpenClaw dialect (the gateway
closes after ``NOT_PAIRED``); in the documented dialect the socket stays open while a person
types the code, and a new ``connect`` (the code expired, or the approval needs one) goes back to
``CONNECTING``.

Invariants
----------
* Node methods (``node.event``, ``node.invoke.result``) are only legal in READY; calling them
  earlier is a :class:`~node_agent.errors.LocalProtocolError` (our bug, never the gateway's).
* Every ``node.invoke.request`` becomes one :class:`~.actions.InvokeStarted` (its parameters
  decoded here, once) and is answered exactly once: a second answer, or an answer to an id we
  never received, raises ``LocalProtocolError``. A ``node.invoke.cancel`` does not close the
  invoke; the handler is cancelled and still answers (with ``CANCELLED``).
* Every response to our own request is typed here (:mod:`.replies`): a refusal as a
  gateway-blamed error, a ``node.event`` answer as a ``NodeEventReply``.
* Liveness: any inbound frame counts. With no frame for 2 x ``tickIntervalMs`` the session asks
  to close with 4000 "tick timeout" (what the reference client does).
* A malformed frame is reported (``LogProblem``) and skipped; the connection carries on. Only
  the handshake's own refusals close it.
* Events the handshake holds (they arrived between ``connect`` and ``hello-ok``) are delivered
  right after ``Ready``, in arrival order, as if they had come then; at most
  ``MAX_HELD_EVENTS`` are kept, so a gateway that floods before hello-ok costs bounded memory.
"""

from __future__ import annotations

import enum
import json
import uuid
from typing import Any, Callable

import attrs

from ..errors import (
    ConnectionLost,
    LocalProtocolError,
    NodeAgentError,
    RemoteProtocolError,
    Retry,
)
from .actions import (
    Action,
    CancelInvoke,
    Close,
    Dispatch,
    HandshakeAction,
    HandshakeStep,
    HoldUntilReady,
    InvokeStarted,
    LogProblem,
    Ready,
    ResponseReceived,
    Send,
    Step,
    SurfaceApproved,
)
from .dialect import ConnectInputs, Dialect, Handshake
from .models import (
    Event,
    HelloOk,
    NodeInvokeCancel,
    NodeInvokeRequest,
    NodePairResolved,
    Request,
    Response,
    Shutdown,
)
from .replies import call_refused, decode_reply


class State(enum.Enum):
    #: Socket open; waiting for the gateway to speak first (OpenClaw) or for our connect to go out.
    AWAITING_CHALLENGE = "awaiting-challenge"
    #: ``connect`` sent; waiting for ``hello-ok``.
    CONNECTING = "connecting"
    #: The gateway wants a person to approve this device.
    PENDING_APPROVAL = "pending-approval"
    #: ``hello-ok`` received: a connected node.
    READY = "ready"
    #: We asked to close (watchdog, refusal); waiting for the socket to end.
    CLOSING = "closing"
    #: The socket ended. Terminal.
    CLOSED = "closed"


class Trigger(enum.Enum):
    """What moves the session from one state to the next."""

    CONNECT_SENT = "connect-sent"
    AWAITING_APPROVAL = "awaiting-approval"
    HELLO_OK = "hello-ok"
    CLOSE_REQUESTED = "close-requested"
    SOCKET_CLOSED = "socket-closed"


_OPEN = (State.AWAITING_CHALLENGE, State.CONNECTING, State.PENDING_APPROVAL, State.READY)

#: Every legal transition, (state, trigger) -> next state. Read it as the protocol's contract.
TRANSITIONS: dict[tuple[State, Trigger], State] = {
    (State.AWAITING_CHALLENGE, Trigger.CONNECT_SENT): State.CONNECTING,
    # The documented dialect may replace a connect (a superseded one, or after a code expired).
    (State.CONNECTING, Trigger.CONNECT_SENT): State.CONNECTING,
    (State.PENDING_APPROVAL, Trigger.CONNECT_SENT): State.CONNECTING,
    (State.CONNECTING, Trigger.AWAITING_APPROVAL): State.PENDING_APPROVAL,
    # A replacement code while one is on show.
    (State.PENDING_APPROVAL, Trigger.AWAITING_APPROVAL): State.PENDING_APPROVAL,
    (State.CONNECTING, Trigger.HELLO_OK): State.READY,
    # Documented dialect: approved while waiting on the same socket.
    (State.PENDING_APPROVAL, Trigger.HELLO_OK): State.READY,
    **{(state, Trigger.CLOSE_REQUESTED): State.CLOSING for state in (*_OPEN, State.CLOSING)},
    **{(state, Trigger.SOCKET_CLOSED): State.CLOSED for state in State},
}

_STEP_TRIGGER = {Step.CONNECT_SENT: Trigger.CONNECT_SENT, Step.AWAITING_APPROVAL: Trigger.AWAITING_APPROVAL}


@attrs.frozen
class _Pending:
    method: str
    #: For ``node.event``: the event's name, so its reply can say which event it answers.
    event: str | None = None


# Close codes the gateway uses and what they mean for the next attempt.
_CLOSE_RETRY = {
    1012: Retry.SERVER_RESTART,  # "service restart", after a shutdown event
    1013: Retry.STARTING,  # "gateway starting"
    1008: Retry.TRANSIENT,  # policy: usually preceded by an error response we already classified
    1009: Retry.TRANSIENT,  # message too big
}


#: Early events kept for delivery after hello-ok (the real gateway sends one or two).
MAX_HELD_EVENTS = 64


class Session:
    def __init__(self, dialect: Dialect, inputs: ConnectInputs, *,
                 new_id: Callable[[], str] = lambda: str(uuid.uuid4())):
        self.dialect = dialect
        self.inputs = inputs
        self._new_id = new_id
        self._handshake: Handshake = dialect.handshake(inputs, new_id)
        self.state = State.AWAITING_CHALLENGE
        self.hello: HelloOk | None = None
        self._last_rx: float | None = None
        self._pending: dict[str, _Pending] = {}  # request id -> what it asked
        self._open_invokes: set[str] = set()
        self._ending_error: NodeAgentError | None = None
        self._shutdown: Shutdown | None = None
        self._started = False
        self._held: list[Event] = []

    def __repr__(self) -> str:
        return (f"<Session {self.dialect.name} state={self.state.value} pending={len(self._pending)} "
                f"invokes={len(self._open_invokes)}>")

    # -- inputs --------------------------------------------------------------------------------

    def start(self, now: float) -> list[Action]:
        """The socket is open."""
        if self._started:
            raise LocalProtocolError("session started twice")
        self._started = True
        self._last_rx = now
        return self._apply(self._handshake.start(now), now)

    def receive_data(self, data: str | bytes, now: float) -> list[Action]:
        if self.state is State.CLOSED:
            return []
        self._last_rx = now
        try:
            frame = self.dialect.decode(data)
        except RemoteProtocolError as exc:
            return [LogProblem(f"malformed frame skipped: {exc.message}", _frame_size(data))]
        if isinstance(frame, Response):
            return self._on_response(frame, now)
        if isinstance(frame, Event):
            return self._on_event(frame, now)
        return [LogProblem(f"unexpected request {frame.method!r} from the gateway ignored")]

    @property
    def last_received(self) -> float | None:
        """Session time of the last inbound frame (None before the socket opened)."""
        return self._last_rx

    def deadline(self) -> float | None:
        """Absolute time at which :meth:`on_timer` has something to do, or None."""
        if self.state in (State.CLOSING, State.CLOSED):
            return None
        if self.state is State.READY:
            assert self.hello is not None and self._last_rx is not None
            return self._last_rx + 2 * self.hello.policy.tick_interval_ms / 1000
        return self._handshake.deadline()

    def on_timer(self, now: float) -> list[Action]:
        if self.state is State.READY:
            deadline = self.deadline()
            if deadline is not None and now >= deadline:
                silent_s = 2 * self.hello.policy.tick_interval_ms / 1000  # type: ignore[union-attr]
                return self._apply([Close(4000, "tick timeout",
                                          ConnectionLost(f"no frame from the gateway for {silent_s:g} s"))], now)
            return []
        if self.state in (State.CLOSING, State.CLOSED):
            return []
        return self._apply(self._handshake.on_timer(now), now)

    def connection_closed(self, code: int | None, reason: str | None) -> NodeAgentError:
        """The socket ended. Returns why, typed for the reconnect policy."""
        previous = self.state
        self._transition(Trigger.SOCKET_CLOSED)
        self._pending.clear()
        if self._ending_error is not None:
            return self._ending_error
        if self._shutdown is not None or code == 1012:
            restart_ms = self._shutdown.restart_expected_ms if self._shutdown else None
            return ConnectionLost(
                f"gateway restarting ({self._shutdown.reason if self._shutdown else reason or 'service restart'})",
                close_code=code, close_reason=reason, retry=Retry.SERVER_RESTART,
                retry_after_s=restart_ms / 1000 if restart_ms is not None else None)
        where = "after hello-ok" if previous is State.READY else "during the handshake"
        return ConnectionLost(f"connection closed {where} (code {code}{', ' + reason if reason else ''})",
                              close_code=code, close_reason=reason,
                              retry=_CLOSE_RETRY.get(code or 0, Retry.TRANSIENT))

    # -- outputs the agent asks for --------------------------------------------------------------

    def request(self, method: str, params: Any = None, *, _event: str | None = None) -> tuple[str, list[Action]]:
        """Send a request in READY; the answer comes back as ``ResponseReceived``."""
        if self.state is not State.READY:
            raise LocalProtocolError(f"{method} is only legal once connected (state {self.state.value})")
        rid = self._new_id()
        self._pending[rid] = _Pending(method, _event)
        return rid, [Send(self.dialect.encode(Request(id=rid, method=method, params=params)), method)]

    def node_event(self, event: str, payload: Any) -> tuple[str, list[Action]]:
        # payloadJSON is a string or absent, never null (closed schema).
        params = {"event": event, "payloadJSON": json.dumps(payload, separators=(",", ":"), ensure_ascii=False)}
        return self.request("node.event", params, _event=event)

    def invoke_result(self, invoke_id: str, *, ok: bool, payload: Any = None,
                      error_code: str | None = None, error_message: str | None = None) -> tuple[str, list[Action]]:
        if invoke_id not in self._open_invokes:
            raise LocalProtocolError(f"invoke {invoke_id!r} is not open (answered twice, or never received)")
        params: dict[str, Any] = {"id": invoke_id, "nodeId": self._node_id(), "ok": ok}
        if ok:
            if payload is not None:
                params["payloadJSON"] = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
        else:
            params["error"] = {"code": error_code or "UNAVAILABLE", "message": error_message or "failed"}
        rid, actions = self.request("node.invoke.result", params)
        self._open_invokes.discard(invoke_id)
        return rid, actions

    @property
    def open_invokes(self) -> frozenset[str]:
        return frozenset(self._open_invokes)

    # -- internals -----------------------------------------------------------------------------

    def _node_id(self) -> str:
        # A documented-dialect gateway names the node in its connect response; OpenClaw uses the
        # device id (hello.node_id is None there).
        if self.hello is not None and self.hello.node_id:
            return self.hello.node_id
        signer = self.inputs.signer
        return signer.device_id if signer is not None else self.inputs.client.id

    def _on_response(self, response: Response, now: float) -> list[Action]:
        pending = self._pending.pop(response.id, None)
        if pending is not None:
            if response.ok:
                return [ResponseReceived(response, pending.method,
                                         reply=decode_reply(pending.method, response.payload, event=pending.event))]
            assert response.error is not None
            return [ResponseReceived(response, pending.method, refusal=call_refused(pending.method, response.error))]
        if self.state is State.READY:
            return [LogProblem("response to unknown request id ignored")]
        return self._apply(self._handshake.on_response(response, now), now)

    def _on_event(self, event: Event, now: float) -> list[Action]:
        if self.state is not State.READY:
            return self._apply(self._handshake.on_event(event, now), now)
        body = event.body
        if isinstance(body, NodeInvokeRequest):
            if body.id in self._open_invokes:
                return [LogProblem("duplicate node.invoke.request ignored", body.id)]
            self._open_invokes.add(body.id)
            try:
                return [InvokeStarted(body, arguments=body.arguments())]
            except ValueError as exc:
                return [InvokeStarted(body, error=str(exc))]
        actions: list[Action] = []
        if isinstance(body, NodeInvokeCancel):
            if body.invoke_id in self._open_invokes:
                actions.append(CancelInvoke(body.invoke_id))
        elif isinstance(body, Shutdown):
            self._shutdown = body
        elif isinstance(body, NodePairResolved) and body.approved and body.token is None \
                and self._is_us(body.node_id):
            actions.append(SurfaceApproved())
        actions.append(Dispatch(event))
        return actions

    def _is_us(self, node_id: str | None) -> bool:
        return node_id is None or node_id == self._node_id() or node_id == self.inputs.client.instance_id

    def _transition(self, trigger: Trigger) -> None:
        try:
            self.state = TRANSITIONS[(self.state, trigger)]
        except KeyError:
            raise LocalProtocolError(f"{trigger.value} is not legal in state {self.state.value}") from None

    def _apply(self, actions: list[HandshakeAction], now: float) -> list[Action]:
        """Carry the handshake's news: state changes from its steps, ``Ready`` and ``Close``;
        held events after ``Ready``; everything else passes to the I/O layer in order."""
        out: list[Action] = []
        for action in actions:
            if isinstance(action, HandshakeStep):
                self._transition(_STEP_TRIGGER[action.step])
                continue
            if isinstance(action, HoldUntilReady):
                if len(self._held) < MAX_HELD_EVENTS:
                    self._held.append(action.event)
                else:
                    out.append(LogProblem(f"event {action.event.name!r} before hello-ok dropped "
                                          f"(more than {MAX_HELD_EVENTS} held)"))
                continue
            out.append(action)
            if isinstance(action, Ready):
                self._transition(Trigger.HELLO_OK)
                self.hello = action.hello
                held, self._held = self._held, []
                for event in held:
                    out.extend(self._on_event(event, now))
            elif isinstance(action, Close):
                self._transition(Trigger.CLOSE_REQUESTED)
                self._held.clear()  # a refused handshake's early events were never ours
                if action.error is not None and self._ending_error is None:
                    self._ending_error = action.error
        return out


def _frame_size(data: str | bytes) -> str:
    return f"{len(data)} {'bytes' if isinstance(data, (bytes, bytearray)) else 'chars'}"
