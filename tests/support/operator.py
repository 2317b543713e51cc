"""A minimal OpenClaw operator client for driving interop tests against the real gateway.

Job: approve pairings, invoke node commands, set wake words and talk mode, and watch gateway
events, over one WebSocket at ~5 ms a call (the openclaw CLI takes ~1-2 s a call).

It connects as the "trusted local backend" the gateway lets in without a device identity on
direct loopback: client ``gateway-client``/``backend``, role ``operator``, all five operator
scopes, and the shared gateway token. It is written straight against the wire (plain dicts, not
the agent's own codec), so an interop test never checks node_agent's protocol code against itself.

Invariants:
- The handshake is the gateway's: wait for ``connect.challenge``, send ``connect``, require
  ``hello-ok``; anything else raises OperatorError before ``connect()`` yields.
- No event is missed: every event frame after ``hello-ok`` is buffered from the moment of connect.
  ``wait_event`` hands out the earliest buffered match and consumes it, so two waits for the
  same name get two different events; ``events`` keeps the full history for assertions.
- Every wait is bounded (``timeout``); a timeout raises ``trio.TooSlowError`` naming what was
  seen, and a dropped connection wakes every waiter with OperatorClosed instead of a hang.
- Outbound params are strict: optional fields are omitted, never sent as null (the gateway's
  param schemas are closed).
- Releases up to 2026.7.35 strip every scope from a device-less operator (no "trusted local
  backend" exception; their hello-ok has no ``auth``). ``connect`` then reconnects once with
  this process's own operator device identity, which those releases pair silently on loopback.
  The signature is built here from the gateway's documented v3 payload (not node_agent's
  signing code), for the same reason as above.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import attrs
import trio
import trio_websocket
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

CLIENT = {"id": "gateway-client", "mode": "backend", "version": "0.1.0", "platform": "linux"}
SCOPES = (
    "operator.read",
    "operator.write",
    "operator.pairing",
    "operator.admin",
    "operator.talk",
)
MIN_PROTOCOL = 3
MAX_PROTOCOL = 4
# hello-ok carries the whole method/event catalogue and a health snapshot.
MAX_MESSAGE_SIZE = 32 * 1024 * 1024


class OperatorError(Exception):
    """The gateway answered ``ok: false`` (or the handshake went wrong)."""

    def __init__(
        self,
        code: str,
        message: str,
        details: Any = None,
        *,
        method: str | None = None,
        retryable: bool | None = None,
    ) -> None:
        self.code = code
        self.message = message
        self.details = details
        self.method = method
        self.retryable = retryable
        where = f"{method}: " if method else ""
        super().__init__(f"{where}{code}: {message}" + (f" {details!r}" if details else ""))


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class OperatorDevice:
    """An Ed25519 device identity for the operator (one per test process)."""

    def __init__(self) -> None:
        self._key = Ed25519PrivateKey.generate()
        raw = self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.device_id = hashlib.sha256(raw).hexdigest()
        self.public_key = _b64url(raw)

    def __repr__(self) -> str:
        return f"<OperatorDevice {self.device_id[:12]}>"

    def sign_connect(self, *, token: str, nonce: str, signed_at: int) -> dict[str, Any]:
        """``connect.params.device`` for this operator (v3 payload, platform "linux")."""
        payload = "|".join(["v3", self.device_id, CLIENT["id"], CLIENT["mode"], "operator", ",".join(SCOPES),
                            str(signed_at), token, nonce, CLIENT["platform"], ""])
        return {"id": self.device_id, "publicKey": self.public_key,
                "signature": _b64url(self._key.sign(payload.encode("utf-8"))), "signedAt": signed_at,
                "nonce": nonce}


_process_device: OperatorDevice | None = None


def _operator_device() -> OperatorDevice:
    global _process_device
    if _process_device is None:
        _process_device = OperatorDevice()
    return _process_device


def _granted_all_scopes(hello: dict[str, Any]) -> bool:
    auth = hello.get("auth")
    return isinstance(auth, dict) and set(SCOPES) <= set(auth.get("scopes") or ())


class OperatorClosed(Exception):
    """The operator socket closed while a call or wait was in flight."""


@attrs.frozen
class Event:
    """One event frame as received (``seq`` is absent on frames sent to one client only)."""

    name: str
    payload: Any
    seq: int | None = None
    received_at: float = 0.0  # trio.current_time()


@attrs.define
class _Pending:
    done: trio.Event = attrs.Factory(trio.Event)
    frame: dict[str, Any] | None = None


class Operator:
    """An operator session; create it with ``async with Operator.connect(url, token) as op``."""

    def __init__(self, ws: trio_websocket.WebSocketConnection, hello: dict[str, Any]) -> None:
        self._ws = ws
        #: The ``hello-ok`` payload (server version, features, snapshot, policy, auth).
        self.hello = hello
        self._pending: dict[str, _Pending] = {}
        self._history: list[Event] = []
        self._unconsumed: list[Event] = []
        self._arrived = trio.Event()
        self._closed: BaseException | None = None

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<Operator {state} events={len(self._history)} pending_calls={len(self._pending)}>"

    @classmethod
    @asynccontextmanager
    async def connect(
        cls, url: str, token: str, *, timeout: float = 10.0, caps: Sequence[str] = ()
    ) -> AsyncIterator[Operator]:
        """Open the socket, do the handshake and yield a ready operator; close it on exit.

        ``caps`` are declared in ``connect``: ``("exec-approvals",)`` makes this socket an exec
        approval client, the one the gateway sends ``exec.approval.requested`` to (without
        one, the gateway denies an exec that needs approval at once: "no approval route")."""
        device = None
        if not await _backend_keeps_scopes(url, token, timeout):
            device = _operator_device()
        async with trio_websocket.open_websocket_url(
            url,
            max_message_size=MAX_MESSAGE_SIZE,
            message_queue_size=64,
            connect_timeout=timeout,
            disconnect_timeout=2.0,
        ) as ws:
            with trio.fail_after(timeout):
                hello, early_events = await _handshake(ws, token, device, caps)
            op = cls(ws, hello)
            for frame in early_events:
                op._record(frame)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(op._reader)
                try:
                    yield op
                finally:
                    nursery.cancel_scope.cancel()

    # -- requests --------------------------------------------------------------------------

    async def call(
        self, method: str, params: dict[str, Any] | None = None, timeout: float = 10.0
    ) -> Any:
        """Send one request and return its payload; raise OperatorError on ``ok: false``."""
        if self._closed is not None:
            raise OperatorClosed(f"{method}: operator socket already closed") from self._closed
        req_id = str(uuid.uuid4())
        pending = self._pending[req_id] = _Pending()
        try:
            with trio.fail_after(timeout):
                frame = {"type": "req", "id": req_id, "method": method, "params": params or {}}
                await self._send(frame)
                await pending.done.wait()
        except trio.TooSlowError:
            raise trio.TooSlowError(f"{method}: no response within {timeout} s") from None
        finally:
            del self._pending[req_id]
        if pending.frame is None:
            raise OperatorClosed(
                f"{method}: operator socket closed before the response"
            ) from self._closed
        return _payload_or_raise(pending.frame, method)

    async def health(self) -> Any:
        return await self.call("health")

    async def approve_device(self, request_id: str) -> Any:
        """Stage 1 of pairing: approve a device (and its role). Needs operator.admin for nodes."""
        return await self.call("device.pair.approve", {"requestId": request_id})

    async def reject_device(self, request_id: str) -> Any:
        return await self.call("device.pair.reject", {"requestId": request_id})

    async def approve_node(self, request_id: str) -> Any:
        """Stage 2 of pairing: approve a node's declared caps/commands surface."""
        return await self.call("node.pair.approve", {"requestId": request_id})

    async def reject_node(self, request_id: str) -> Any:
        return await self.call("node.pair.reject", {"requestId": request_id})

    async def device_pairs(self) -> dict[str, list[dict[str, Any]]]:
        """``{"pending": [...], "paired": [...]}`` for devices."""
        return await self.call("device.pair.list")

    async def node_pairs(self) -> dict[str, list[dict[str, Any]]]:
        """``{"pending": [...], "paired": [...]}`` for node surfaces."""
        return await self.call("node.pair.list")

    async def pending_devices(self) -> list[dict[str, Any]]:
        return list((await self.device_pairs())["pending"])

    async def pending_nodes(self) -> list[dict[str, Any]]:
        return list((await self.node_pairs())["pending"])

    async def list_nodes(self) -> Any:
        return await self.call("node.list")

    async def invoke(
        self,
        node_id: str,
        command: str,
        params: Any = None,
        timeout_ms: int | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> Any:
        """``node.invoke``; returns ``{"ok", "nodeId", "command", "payload", "payloadJSON"}``.

        A node-side failure arrives as OperatorError (code ``UNAVAILABLE``, message
        ``"<node code>: <node message>"``). The call waits ``timeout_ms`` plus 5 s.
        """
        params_out: dict[str, Any] = {
            "nodeId": node_id,
            "command": command,
            "idempotencyKey": idempotency_key or str(uuid.uuid4()),
        }
        if params is not None:
            params_out["params"] = params
        if timeout_ms is not None:
            params_out["timeoutMs"] = int(timeout_ms)
        wait = (timeout_ms / 1000 if timeout_ms is not None else 30.0) + 5.0
        return await self.call("node.invoke", params_out, timeout=wait)

    async def get_voicewake(self) -> list[str]:
        return list((await self.call("voicewake.get"))["triggers"])

    async def set_voicewake(self, triggers: Sequence[str]) -> list[str]:
        """Set the wake words; nodes get ``voicewake.changed``. Returns the stored triggers."""
        return list((await self.call("voicewake.set", {"triggers": list(triggers)}))["triggers"])

    async def talk_mode(self, enabled: bool, phase: str | None = None) -> Any:
        """``talk.mode``; operators with operator.talk get a ``talk.mode`` event (nodes do not)."""
        params: dict[str, Any] = {"enabled": enabled}
        if phase is not None:
            params["phase"] = phase
        return await self.call("talk.mode", params)

    # -- events ----------------------------------------------------------------------------

    @property
    def events(self) -> list[Event]:
        """Every event received since connect, oldest first (consumed ones included)."""
        return list(self._history)

    async def wait_event(
        self,
        name: str,
        predicate: Callable[[Any], bool] | None = None,
        timeout: float = 30.0,
    ) -> Any:
        """Return (and consume) the payload of the earliest unconsumed ``name`` event matching
        ``predicate(payload)``, waiting up to ``timeout`` s for one to arrive."""
        try:
            with trio.fail_after(timeout):
                while True:
                    for i, event in enumerate(self._unconsumed):
                        if event.name == name and (predicate is None or predicate(event.payload)):
                            del self._unconsumed[i]
                            return event.payload
                    if self._closed is not None:
                        raise OperatorClosed(f"closed while waiting for {name!r}") from self._closed
                    await self._arrived.wait()
        except trio.TooSlowError:
            seen = ", ".join(sorted({e.name for e in self._history})) or "none"
            raise trio.TooSlowError(
                f"no matching {name!r} event within {timeout} s (events seen: {seen})"
            ) from None

    # -- internals -------------------------------------------------------------------------

    async def _send(self, frame: dict[str, Any]) -> None:
        try:
            await self._ws.send_message(json.dumps(frame))
        except trio_websocket.ConnectionClosed as exc:
            raise OperatorClosed(f"send failed: {exc}") from exc

    async def _reader(self) -> None:
        try:
            while True:
                frame = json.loads(await self._ws.get_message())
                kind = frame.get("type")
                if kind == "res":
                    pending = self._pending.get(frame.get("id"))
                    if pending is not None:
                        pending.frame = frame
                        pending.done.set()
                elif kind == "event":
                    self._record(frame)
        except trio_websocket.ConnectionClosed as exc:
            self._closed = exc
        finally:
            if self._closed is None:
                self._closed = OperatorClosed("reader stopped")
            for pending in self._pending.values():
                pending.done.set()
            self._wake()

    def _record(self, frame: dict[str, Any]) -> None:
        event = Event(
            name=frame.get("event", ""),
            payload=frame.get("payload"),
            seq=frame.get("seq"),
            received_at=trio.current_time(),
        )
        self._history.append(event)
        self._unconsumed.append(event)
        self._wake()

    def _wake(self) -> None:
        self._arrived.set()
        self._arrived = trio.Event()


_scope_answers: dict[tuple[str, str], bool] = {}


async def _backend_keeps_scopes(url: str, token: str, timeout: float) -> bool:
    """Does this gateway grant a device-less backend operator its scopes? Asked once per URL."""
    key = (url, token)
    if key not in _scope_answers:
        async with trio_websocket.open_websocket_url(
            url, max_message_size=MAX_MESSAGE_SIZE, connect_timeout=timeout, disconnect_timeout=2.0
        ) as ws:
            with trio.fail_after(timeout):
                hello, _ = await _handshake(ws, token, None)
        _scope_answers[key] = _granted_all_scopes(hello)
    return _scope_answers[key]


async def _handshake(
    ws: trio_websocket.WebSocketConnection, token: str, device: OperatorDevice | None, caps: Sequence[str] = ()
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Challenge, connect, hello-ok. Returns hello-ok's payload and any events sent meanwhile."""
    first = json.loads(await ws.get_message())
    if first.get("type") != "event" or first.get("event") != "connect.challenge":
        raise OperatorError("PROTOCOL", f"expected connect.challenge first, got {first!r:.300}")
    req_id = str(uuid.uuid4())
    params: dict[str, Any] = {
        "minProtocol": MIN_PROTOCOL,
        "maxProtocol": MAX_PROTOCOL,
        "client": dict(CLIENT),
        "role": "operator",
        "scopes": list(SCOPES),
        "auth": {"token": token},
        **({"caps": list(caps)} if caps else {}),
    }
    if device is not None:
        challenge = first.get("payload") or {}
        params["device"] = device.sign_connect(token=token, nonce=str(challenge.get("nonce")),
                                               signed_at=int(challenge.get("ts")))
    await ws.send_message(json.dumps({"type": "req", "id": req_id, "method": "connect", "params": params}))
    early_events = []
    while True:
        frame = json.loads(await ws.get_message())
        if frame.get("type") == "res" and frame.get("id") == req_id:
            break
        if frame.get("type") == "event":
            early_events.append(frame)
    hello = _payload_or_raise(frame, "connect")
    if not isinstance(hello, dict) or hello.get("type") != "hello-ok":
        raise OperatorError("PROTOCOL", f"expected hello-ok, got {hello!r:.300}", method="connect")
    return hello, early_events


def _payload_or_raise(frame: dict[str, Any], method: str) -> Any:
    if frame.get("ok"):
        return frame.get("payload")
    error = frame.get("error") or {}
    raise OperatorError(
        str(error.get("code", "UNKNOWN")),
        str(error.get("message", "")),
        error.get("details"),
        method=method,
        retryable=error.get("retryable"),
    )
