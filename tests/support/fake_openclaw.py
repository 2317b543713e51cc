"""An in-memory OpenClaw gateway for agent tests: real WebSocket framing, no sockets, no clock.

Each agent connection attempt gets a fresh ``memory_stream_pair``; the server side runs
trio-websocket over it and plays the gateway: challenge, signature check (real Ed25519
verification of the v3/v2 payload), auth, pairing, ``hello-ok``, then it records every request
and answers ``node.event`` / ``node.invoke.result`` with ``ok``. Tests steer it through plain
attributes (``paired``, ``refuse_next``, ``tick_interval_ms``...) and drive a live connection
through :class:`GatewayConn` (``send_event``, ``close``, ``requests``).

It is deliberately strict where the real gateway is strict (closed connect schema, signature,
nonce) so a wire mistake in the agent fails here before it fails against the real thing.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import itertools
import json
from typing import Any, AsyncIterator

import trio
import trio.testing
import trio_websocket
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from node_agent.protocol.signing import device_auth_payload
from node_agent.transport import WebSocketTransport

CONNECT_KEYS = {"minProtocol", "maxProtocol", "client", "caps", "commands", "permissions", "pathEnv", "role",
                "scopes", "device", "auth", "locale", "userAgent"}
CLIENT_KEYS = {"id", "displayName", "version", "platform", "deviceFamily", "modelIdentifier", "mode", "instanceId"}


def _b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class GatewayConn:
    """The server side of one accepted connection."""

    def __init__(self, ws: trio_websocket.WebSocketConnection, gateway: "FakeGateway"):
        self.ws = ws
        self.gateway = gateway
        self.connect_params: dict[str, Any] | None = None
        self.requests: list[dict[str, Any]] = []
        #: When each of ``requests`` arrived (trio time).
        self.request_times: list[float] = []
        #: When each ``tick`` went out (with ``FakeGateway.ticks``).
        self.tick_times: list[float] = []
        self.request_event = trio.Event()
        self.closed_code: int | None = None
        self.ready = trio.Event()
        self.ended = trio.Event()

    async def send(self, frame: dict[str, Any]) -> None:
        await self.ws.send_message(json.dumps(frame))

    async def send_event(self, event: str, payload: Any = None, **extra: Any) -> None:
        frame = {"type": "event", "event": event, **extra}
        if payload is not None:
            frame["payload"] = payload
        await self.send(frame)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        # The agent tears its side down as soon as it sees the close frame, so the reply may never
        # reach us: do not wait for the closing handshake forever.
        with trio.move_on_after(1):
            await self.ws.aclose(code, reason)

    async def wait_request(self, method: str, count: int = 1) -> list[dict[str, Any]]:
        while True:
            found = [r for r in self.requests if r.get("method") == method]
            if len(found) >= count:
                return found
            self.request_event = trio.Event()
            await self.request_event.wait()


class FakeGateway:
    def __init__(self, *, shared_token: str = "shared-token-0123456789", tick_interval_ms: int = 30_000):
        self.shared_token = shared_token
        self.tick_interval_ms = tick_interval_ms
        self.paired: dict[str, str] = {}  # device id -> device token
        self.auto_approve = False
        #: Scripted refusals for the next connects: (error dict, close code). Consumed in order.
        self.refuse_next: list[tuple[dict[str, Any], int]] = []
        #: When set, accept the TCP/WS connection but never send the challenge.
        self.silent = False
        #: Send ``tick`` every ``tick_interval_ms`` from hello-ok on, as the real gateway does.
        self.ticks = False
        #: How long a request waits for its answer (the real gateway persists presence first: ~10 ms).
        self.reply_delay_s = 0.0
        self.unreachable = False
        self.accept_v3 = True
        #: Events pushed after a connect is accepted but before hello-ok is written: the real
        #: gateway's connect snapshot (voicewake.changed) can overtake hello-ok this way.
        self.events_before_hello: list[tuple[str, Any]] = []
        #: What hello-ok says about the gateway: ``server.version``, ``features.events`` and
        #: ``auth.method`` (None: left out, as releases up to 2026.8.2 do).
        self.server_version = "fake"
        self.hello_events: list[str] = ["tick"]
        self.auth_method: str | None = None
        #: The ``node.event`` reply payload for an event name (default ``{"ok": true}``, what
        #: releases up to 2026.3.31 answer for everything).
        self.node_event_replies: dict[str, dict[str, Any]] = {}
        #: An error the next ``node.event`` of that name is answered with (once), e.g. the
        #: PAIRING_CHANGED a live gateway gives while the node's pairing generation changes.
        self.node_event_errors: dict[str, dict[str, Any]] = {}
        #: The same for any other request method (``node.invoke.result``...), once each.
        self.request_errors: dict[str, dict[str, Any]] = {}
        #: False: hello-ok carries no ``auth`` at all, as openclaw 2026.3.22 answers a node
        #: that asks for no scopes (approved, but no scope baseline to issue a token against).
        self.issue_tokens = True
        self.connections: list[GatewayConn] = []
        #: Reply payloads by method (a function of the request's params); default ``{"ok": true}``.
        self.replies: dict[str, Any] = {}
        self.attempt_times: list[float] = []
        self.new_connection = trio.Event()
        self._ids = itertools.count(1)
        self._nursery: trio.Nursery | None = None

    # -- what the agent plugs in as its transport opener ----------------------------------------

    def opener(self):
        @contextlib.asynccontextmanager
        async def open_transport() -> AsyncIterator[WebSocketTransport]:
            from node_agent.errors import GatewayUnreachable

            self.attempt_times.append(trio.current_time())
            if self.unreachable:
                raise GatewayUnreachable("cannot reach 127.0.0.1:18789: Connection refused")
            client_stream, server_stream = trio.testing.memory_stream_pair()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._serve, server_stream)
                ws = await trio_websocket.wrap_client_stream(nursery, client_stream, "127.0.0.1", "/",
                                                             max_message_size=32 * 1024 * 1024)
                transport = WebSocketTransport(ws, "ws://127.0.0.1:18789")
                try:
                    yield transport
                finally:
                    with trio.move_on_after(2) as scope:
                        scope.shield = True
                        await transport.aclose()
                    nursery.cancel_scope.cancel()

        return open_transport

    async def wait_connection(self, count: int) -> GatewayConn:
        while len(self.connections) < count:
            self.new_connection = trio.Event()
            await self.new_connection.wait()
        return self.connections[count - 1]

    # -- the gateway ----------------------------------------------------------------------------

    async def _serve(self, stream: trio.abc.Stream) -> None:
        async with trio.open_nursery() as nursery:
            request = await trio_websocket.wrap_server_stream(nursery, stream, max_message_size=32 * 1024 * 1024)
            ws = await request.accept()
            conn = GatewayConn(ws, self)
            self.connections.append(conn)
            self.new_connection.set()
            if self.ticks:
                nursery.start_soon(self._ticker, conn)
            try:
                await self._session(conn)
            except trio_websocket.ConnectionClosed as exc:
                conn.closed_code = exc.reason.code if exc.reason else None
            finally:
                if conn.closed_code is None and ws.closed is not None:
                    conn.closed_code = ws.closed.code  # the close frame arrived; we were cancelled first
                conn.ended.set()
                nursery.cancel_scope.cancel()

    async def _ticker(self, conn: GatewayConn) -> None:
        await conn.ready.wait()
        while True:
            await trio.sleep(self.tick_interval_ms / 1000)
            await conn.send_event("tick", {"ts": int(trio.current_time() * 1000)})
            conn.tick_times.append(trio.current_time())

    async def _session(self, conn: GatewayConn) -> None:
        if self.silent:
            await trio.sleep_forever()
        nonce = f"nonce-{next(self._ids)}"
        ts = 1_795_316_234_000 + len(self.connections)
        await conn.send_event("connect.challenge", {"nonce": nonce, "ts": ts})
        frame = json.loads(await conn.ws.get_message())
        assert frame["type"] == "req" and frame["method"] == "connect", frame
        params = frame["params"]
        conn.connect_params = params
        error = self._check_connect(params, nonce, ts)
        if error is None and self.refuse_next:
            error = self.refuse_next.pop(0)
        if error is not None:
            body, close_code = error
            await conn.send({"type": "res", "id": frame["id"], "ok": False, "error": body})
            await conn.ws.aclose(close_code, body.get("message", "")[:100])
            return
        device_id = params["device"]["id"]
        token = self.paired[device_id]
        auth: dict[str, Any] = {"role": "node", "scopes": [], "deviceToken": token}
        if self.auth_method is not None:
            auth["method"] = self.auth_method
        if not self.issue_tokens:
            auth = {}
        hello = {"type": "hello-ok", "protocol": 4,
                 "server": {"version": self.server_version, "connId": f"c{len(self.connections)}"},
                 "features": {"methods": ["node.event", "node.invoke.result"], "events": list(self.hello_events)},
                 "snapshot": {"presence": []},
                 **({"auth": auth} if auth else {}),
                 "policy": {"maxPayload": 26214400, "maxBufferedBytes": 52428800,
                            "tickIntervalMs": self.tick_interval_ms}}
        for name, payload in self.events_before_hello:
            await conn.send_event(name, payload)
        await conn.send({"type": "res", "id": frame["id"], "ok": True, "payload": hello})
        conn.ready.set()
        while True:
            message = await conn.ws.get_message()
            req = json.loads(message)
            conn.requests.append(req)
            conn.request_times.append(trio.current_time())
            conn.request_event.set()
            if req.get("type") == "req":
                if self.reply_delay_s:
                    await trio.sleep(self.reply_delay_s)
                reply = self.replies.get(req.get("method"))
                payload = reply(req.get("params")) if reply is not None else {"ok": True}
                if req.get("method") in self.request_errors:
                    await conn.send({"type": "res", "id": req["id"], "ok": False,
                                     "error": self.request_errors.pop(req["method"])})
                    continue
                if req.get("method") == "node.event":
                    name = req["params"].get("event")
                    if name in self.node_event_errors:
                        await conn.send({"type": "res", "id": req["id"], "ok": False,
                                         "error": self.node_event_errors.pop(name)})
                        continue
                    payload = self.node_event_replies.get(name, payload)
                await conn.send({"type": "res", "id": req["id"], "ok": True, "payload": payload})

    def _check_connect(self, params: dict[str, Any], nonce: str, ts: int) -> tuple[dict[str, Any], int] | None:
        def invalid(message: str, code: str | None = None, **details: Any) -> tuple[dict[str, Any], int]:
            body: dict[str, Any] = {"code": "INVALID_REQUEST", "message": message}
            if code:
                body["details"] = {"code": code, **details}
            return body, 1008

        extra = set(params) - CONNECT_KEYS
        if extra:
            return invalid(f"invalid connect params: at root: unexpected property '{sorted(extra)[0]}'")
        client = params.get("client", {})
        if set(client) - CLIENT_KEYS or client.get("id") != "node-host" or client.get("mode") != "node":
            return invalid("invalid connect params: at /client")
        if any(v is None for v in params.values()) or any(v is None for v in client.values()):
            return invalid("invalid connect params: null value")
        device = params.get("device")
        if device is None:
            return {"code": "NOT_PAIRED", "message": "device identity required",
                    "details": {"code": "DEVICE_IDENTITY_REQUIRED"}}, 1008
        raw_pub = _b64d(device["publicKey"])
        if hashlib.sha256(raw_pub).hexdigest() != device["id"]:
            return invalid("device identity mismatch", "DEVICE_AUTH_DEVICE_ID_MISMATCH")
        if device["nonce"] != nonce:
            return invalid("device nonce mismatch", "DEVICE_AUTH_NONCE_MISMATCH")
        auth = params.get("auth", {})
        token = auth.get("token") or auth.get("deviceToken") or auth.get("bootstrapToken") or ""
        versions = (3, 2) if self.accept_v3 else (2,)
        ok = False
        for version in versions:
            payload = device_auth_payload(version=version, device_id=device["id"], client_id=client["id"],
                                          client_mode=client["mode"], role=params["role"], scopes=params["scopes"],
                                          signed_at_ms=device["signedAt"], token=token, nonce=nonce,
                                          platform=client.get("platform"), device_family=client.get("deviceFamily"))
            try:
                Ed25519PublicKey.from_public_bytes(raw_pub).verify(_b64d(device["signature"]), payload.encode())
                ok = True
                break
            except Exception:
                continue
        if not ok:
            return invalid("device signature invalid", "DEVICE_AUTH_SIGNATURE_INVALID")
        # auth: shared token, or this device's token
        if auth.get("token") == self.shared_token:
            pass
        elif auth.get("deviceToken") is not None or auth.get("token") is not None:
            presented = auth.get("deviceToken") or auth.get("token")
            if self.paired.get(device["id"]) != presented:
                return invalid("unauthorized: device token mismatch (rotate/reissue device token)",
                               "AUTH_DEVICE_TOKEN_MISMATCH", recommendedNextStep="update_auth_credentials")
        else:
            return invalid("unauthorized: gateway token missing (provide gateway auth token)", "AUTH_TOKEN_MISSING")
        if device["id"] not in self.paired:
            if self.auto_approve:
                self.approve(device["id"])
            else:
                return {"code": "NOT_PAIRED", "message": "pairing required: device is not approved yet",
                        "details": {"code": "PAIRING_REQUIRED", "reason": "not-paired",
                                    "requestId": f"req-{device['id'][:8]}", "deviceId": device["id"],
                                    "requestedRole": "node"}}, 1008
        return None

    def approve(self, device_id: str, token: str | None = None) -> str:
        token = token or f"device-token-{device_id[:8]}-{next(self._ids):04d}-abcdefghijklmnop"
        self.paired[device_id] = token
        return token
