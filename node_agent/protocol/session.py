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

States (each transition is driven by the dialect's handshake until READY)::

    AWAITING_CHALLENGE --(challenge: send connect)--> CONNECTING --(hello-ok)--> READY
            |                                             |                         |
            |                                             +--(pairing required)--> PENDING_APPROVAL
            +----------------------(timeout / refusal / close)-----------------> CLOSING -> CLOSED

``PENDING_APPROVAL`` ends the connection in the OpenClaw dialect (the gateway closes after
``NOT_PAIRED``); in the documented dialect the socket stays open while a person types the code.

Invariants
----------
* Node methods (``node.event``, ``node.invoke.result``) are only legal in READY; calling them
  earlier is a :class:`~node_agent.errors.LocalProtocolError` (our bug, never the gateway's).
* Every ``node.invoke.request`` is answered exactly once: a second answer, or an answer to an id
  we never received, raises ``LocalProtocolError``. A ``node.invoke.cancel`` does not close the
  invoke; the handler is cancelled and still answers (with ``CANCELLED``).
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

from ..errors import ConnectionLost, LocalProtocolError, NodeAgentError, RemoteProtocolError, Retry
from .actions import (
    Action,
    CancelInvoke,
    Close,
    Dispatch,
    HandshakeAction,
    HoldUntilReady,
    LogProblem,
    PairingPending,
    Ready,
    ResponseReceived,
    Send,
)
from .dialect import ConnectInputs, Dialect, Handshake
from .models import Event, HelloOk, NodeInvokeCancel, NodeInvokeRequest, Request, Response, Shutdown


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
        self._pending: dict[str, str] = {}  # request id -> method
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
        self.state = State.CLOSED
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

    def request(self, method: str, params: Any = None) -> tuple[str, list[Action]]:
        """Send a request in READY; the answer comes back as ``ResponseReceived``."""
        if self.state is not State.READY:
            raise LocalProtocolError(f"{method} is only legal once connected (state {self.state.value})")
        rid = self._new_id()
        self._pending[rid] = method
        return rid, [Send(self.dialect.encode(Request(id=rid, method=method, params=params)), method)]

    def node_event(self, event: str, payload: Any) -> tuple[str, list[Action]]:
        # payloadJSON is a string or absent, never null (closed schema).
        params = {"event": event, "payloadJSON": json.dumps(payload, separators=(",", ":"))}
        return self.request("node.event", params)

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
        method = self._pending.pop(response.id, None)
        if method is not None:
            return [ResponseReceived(response, method)]
        if self.state is State.READY:
            return [LogProblem(f"response to unknown request id ignored")]
        return self._apply(self._handshake.on_response(response, now), now)

    def _on_event(self, event: Event, now: float) -> list[Action]:
        if self.state is not State.READY:
            return self._apply(self._handshake.on_event(event, now), now)
        body = event.body
        actions: list[Action] = []
        if isinstance(body, NodeInvokeRequest):
            if body.id in self._open_invokes:
                return [LogProblem("duplicate node.invoke.request ignored", body.id)]
            self._open_invokes.add(body.id)
        elif isinstance(body, NodeInvokeCancel):
            if body.invoke_id in self._open_invokes:
                actions.append(CancelInvoke(body.invoke_id))
        elif isinstance(body, Shutdown):
            self._shutdown = body
        actions.append(Dispatch(event))
        return actions

    def _apply(self, actions: list[HandshakeAction], now: float) -> list[Action]:
        """Track the state changes the handshake's actions imply."""
        out: list[Action] = []
        for action in actions:
            if isinstance(action, HoldUntilReady):
                if len(self._held) < MAX_HELD_EVENTS:
                    self._held.append(action.event)
                else:
                    out.append(LogProblem(f"event {action.event.name!r} before hello-ok dropped "
                                          f"(more than {MAX_HELD_EVENTS} held)"))
                continue
            out.append(action)
            if isinstance(action, Send) and action.label == "connect":
                self.state = State.CONNECTING
            elif isinstance(action, Ready):
                self.state = State.READY
                self.hello = action.hello
                held, self._held = self._held, []
                for event in held:
                    out.extend(self._on_event(event, now))
            elif isinstance(action, PairingPending):
                self.state = State.PENDING_APPROVAL
            elif isinstance(action, Close):
                self.state = State.CLOSING
                self._held.clear()  # a refused handshake's early events were never ours
                if action.error is not None and self._ending_error is None:
                    self._ending_error = action.error
        return out


def _frame_size(data: str | bytes) -> str:
    return f"{len(data)} {'bytes' if isinstance(data, (bytes, bytearray)) else 'chars'}"
