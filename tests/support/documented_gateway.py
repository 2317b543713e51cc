"""A gateway double that speaks the documented (JSON-RPC) dialect over a real loopback WebSocket.

It implements the published pages (``seed-websocket-protocol``, ``seed-events-api``) and,
where they are silent, makes the choices :mod:`node_agent.protocol.jsonrpc` documents, so the
agent can be tested end to end without the real gateway (which speaks another dialect):

* The client speaks first: ``connect {role, auth, client}``. A valid device token connects at
  once; an invalid one, a wrong shared token or password gets ``UNAUTHORIZED``; no device
  token means pairing: ``connect.challenge {challenge: <6 random digits>, expiresAt}`` and the
  socket stays open. The operator API approves by the code (:meth:`enter_code`): right code ->
  ``node.pair.resolved {nodeId, approved: true, token}`` then the connect response ``ok``;
  wrong code -> ``False`` and the node stays pending (the pages say nothing of wrong codes,
  and a typo should not cost the device its request); expired code -> ``False`` and a fresh
  code. An expiring code is replaced unprompted (``reissue_expired_codes``); a second
  ``connect`` while pending also gets a fresh code, and only the latest ``connect`` is answered.
* ``pairing_style="device"`` uses the pages' "alternative format" instead:
  ``device.pair.requested {deviceId, name, challenge}`` and ``device.pair.resolved {deviceId,
  approved}`` (no token, as on the page); the token then arrives in the connect response.
* The pages' ids: ``assign_node_ids=True`` gives each new node the gateway's own id
  (``node-1``, ``node-2``..., like the pages' ``"nodeId": "node-123"``) instead of the
  ``client.instanceId`` it sent; ``token_in_connect_response=False`` leaves the device token out
  of the connect response (the pages show it only in ``node.pair.resolved``); and
  ``broadcast_pairing_events=True`` sends ``node.pair.resolved`` to every open socket, pending
  nodes included ("Most events are automatically broadcast to all connected clients").
* Responses are ``{id, ok, payload | error{code, message}}`` without ``jsonrpc`` (the page's
  response frame lists no such key; ``jsonrpc_in_responses=True`` adds it). The connect
  response payload, which the pages never show, is OpenClaw's ``hello-ok`` shape plus
  ``nodeId``.
* After a refused ``connect`` the double lets the client close first and closes with 1008
  after ``linger_s`` if it has not.
* ``tick {timestamp}`` at connection open and every ``tick_interval_s``; ``heartbeat
  {timestamp}`` every ``heartbeat_interval_s`` if set. Every received frame is recorded in
  :attr:`received`, every sent one in :attr:`sent`.

Use it as ``async with open_documented_gateway(**options) as gw:`` and connect to ``gw.url``.
Test-only: it is not shipped.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import secrets
import socket
import struct
import time
from typing import Any, AsyncIterator, Callable, Literal

import attrs
import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, WebSocketRequest, serve_websocket

#: Every event payload exactly as the Events API page shows it (``connect.challenge`` too).
DOCUMENTED_EXAMPLES: dict[str, list[dict[str, Any]]] = {
    "agent": [
        {"runId": "run-123", "stream": "assistant", "data": {"type": "text", "text": "Hello! "}},
        {"runId": "run-123", "stream": "tool", "data": {"phase": "start", "name": "web_search",
                                                        "toolCallId": "call-456",
                                                        "input": {"query": "OpenClaw"}}},
        {"runId": "run-123", "stream": "lifecycle", "data": {"phase": "end"}},
    ],
    "chat": [{"sessionId": "session-123", "type": "message",
              "message": {"role": "assistant", "content": "Hello!"}}],
    "presence": [{"nodes": [{"id": "node-123", "name": "iPhone", "online": True, "lastSeen": 1234567890000}],
                  "version": 42}],
    "health": [{"status": "healthy",
                "channels": [{"id": "signal", "status": "connected", "account": "+1234567890"},
                             {"id": "telegram", "status": "disconnected", "error": "Not logged in"}],
                "version": 10}],
    "tick": [{"timestamp": 1234567890000}],
    "heartbeat": [{"timestamp": 1234567890000}],
    "shutdown": [{"reason": "Gateway restart requested"}],
    "node.pair.requested": [{"nodeId": "node-123", "name": "Alice's iPhone", "platform": "ios",
                             "requestedAt": 1234567890000}],
    "node.pair.resolved": [{"nodeId": "node-123", "approved": True, "token": "device-token-abc123"}],
    "device.pair.requested": [{"deviceId": "device-123", "name": "Desktop Client", "challenge": "123456"}],
    "device.pair.resolved": [{"deviceId": "device-123", "approved": True}],
    "talk.mode": [{"mode": "push-to-talk", "enabled": True}],
    "voicewake.changed": [{"triggers": ["hey openclaw", "hello openclaw"]}],
    "exec.approval.requested": [{"requestId": "req-123", "command": "rm -rf /dangerous/path",
                                 "requestedAt": 1234567890000, "requestedBy": "agent-run-456"}],
    "exec.approval.resolved": [{"requestId": "req-123", "approved": False, "reason": "User rejected"}],
    "cron": [{"id": "daily-report", "status": "running", "startedAt": 1234567890000}],
    "update.available": [{"version": "2026.3.1", "releaseNotes": "Bug fixes and improvements",
                          "downloadUrl": "https://..."}],
    "connect.challenge": [{"challenge": "123456", "expiresAt": 1234567890000}],
}

#: The pages' error codes.
ERROR_CODES = ("INVALID_REQUEST", "UNAUTHORIZED", "METHOD_NOT_FOUND", "INTERNAL_ERROR", "RATE_LIMITED")

#: Methods the double answers ``ok`` once a node is connected (the pages list no node methods;
#: these are the OpenClaw node methods plus the pages' subscribe pair).
NODE_METHODS = frozenset({"node.invoke.result", "node.event", "node.subscribe", "node.unsubscribe",
                          "node.invoke.progress", "skills.bins", "health"})


@attrs.frozen
class ReceivedFrame:
    conn: int
    text: str
    #: The parsed JSON, or None when it was not JSON.
    obj: Any

    @property
    def method(self) -> str | None:
        return self.obj.get("method") if isinstance(self.obj, dict) else None

    @property
    def params(self) -> Any:
        return self.obj.get("params") if isinstance(self.obj, dict) else None


@attrs.define(eq=False)
class Pairing:
    """A node on one connection waiting for a person to type its code."""

    code: str
    expires_at_ms: int
    deadline: float  # trio time
    connect_id: Any
    node_id: str
    name: str | None


@attrs.define(eq=False)
class Connection:
    id: int
    ws: WebSocketConnection
    nursery: trio.Nursery
    node_id: str | None = None
    token: str | None = None
    ready: bool = False
    pairing: Pairing | None = None
    closed: bool = False
    close_code: int | None = None
    #: The raw TCP stream, for :meth:`DocumentedGateway.drop`.
    stream: Any = None


class DocumentedGateway:
    def __init__(
        self,
        *,
        shared_token: str | None = None,
        password: str | None = None,
        code_lifetime_s: float = 60.0,
        reissue_expired_codes: bool = True,
        answer_connect_after_approval: bool = True,
        pairing_style: Literal["node", "device"] = "node",
        auto_approve: bool = False,
        rate_limited: bool = False,
        retry_after_ms: int | None = None,
        tick_interval_s: float | None = 30.0,
        heartbeat_interval_s: float | None = None,
        jsonrpc_in_responses: bool = False,
        linger_s: float = 2.0,
        wall_ms: Callable[[], int] = lambda: int(time.time() * 1000),
        code_factory: Callable[[], str] | None = None,
        assign_node_ids: bool = False,
        token_in_connect_response: bool = True,
        broadcast_pairing_events: bool = False,
    ):
        self.shared_token = shared_token
        self.password = password
        self.code_lifetime_s = code_lifetime_s
        self.reissue_expired_codes = reissue_expired_codes
        self.answer_connect_after_approval = answer_connect_after_approval
        self.pairing_style = pairing_style
        self.auto_approve = auto_approve
        #: While True every ``connect`` gets ``RATE_LIMITED`` (with ``retryAfterMs`` if set).
        self.rate_limited = rate_limited
        self.retry_after_ms = retry_after_ms
        #: While set, every ``connect`` gets this ``(code, message)`` error (e.g. INTERNAL_ERROR).
        self.connect_error: tuple[str, str] | None = None
        #: Methods answered with an error after connect: ``{method: (code, message)}``.
        self.method_errors: dict[str, tuple[str, str]] = {}
        self.tick_interval_s = tick_interval_s
        self.heartbeat_interval_s = heartbeat_interval_s
        self.jsonrpc_in_responses = jsonrpc_in_responses
        self.linger_s = linger_s
        self.wall_ms = wall_ms
        self._code_factory = code_factory or (lambda: f"{secrets.randbelow(10**6):06d}")
        self.assign_node_ids = assign_node_ids
        self.token_in_connect_response = token_in_connect_response
        self.broadcast_pairing_events = broadcast_pairing_events
        self._node_numbers = itertools.count(1)

        #: Device token -> node id, for every device this gateway has paired.
        self.tokens: dict[str, str] = {}
        self.connections: list[Connection] = []
        self.received: list[ReceivedFrame] = []
        #: ``(connection id, frame)`` for everything the double sent.
        self.sent: list[tuple[int, dict[str, Any]]] = []
        #: ``node.invoke.result`` params by invoke id.
        self.invoke_results: dict[str, Any] = {}
        self.port: int | None = None
        self._ids = itertools.count(1)
        self._changed = trio.Event()

    def __repr__(self) -> str:
        return (f"<DocumentedGateway {self.url if self.port else 'not serving'} "
                f"connections={len(self.open_connections)} pending={self.pending_codes}>")

    @property
    def url(self) -> str:
        assert self.port is not None, "serve() first"
        return f"ws://127.0.0.1:{self.port}"

    # -- lifecycle -----------------------------------------------------------------------------

    async def serve(self, *, task_status: trio.TaskStatus[DocumentedGateway] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            server = await nursery.start(functools.partial(
                serve_websocket, self._handle, "127.0.0.1", 0, None, handler_nursery=nursery,
                disconnect_timeout=1))
            self.port = server.port
            task_status.started(self)

    # -- operator API --------------------------------------------------------------------------

    @property
    def open_connections(self) -> list[Connection]:
        return [c for c in self.connections if not c.closed]

    @property
    def pending_codes(self) -> list[str]:
        return [c.pairing.code for c in self.open_connections if c.pairing is not None]

    def issue_token(self, node_id: str = "node-preapproved") -> str:
        """Pair a device without a person (as if approved earlier); returns its token."""
        token = f"device-token-{secrets.token_hex(8)}"
        self.tokens[token] = node_id
        return token

    def revoke(self, token: str) -> None:
        self.tokens.pop(token, None)

    async def wait_for_code(self) -> str:
        """The code currently displayed to a pending node (waits for one)."""
        await self._wait_until(lambda: bool(self.pending_codes))
        return self.pending_codes[-1]

    async def wait_for_new_code(self, old: str) -> str:
        await self._wait_until(lambda: bool(self.pending_codes) and self.pending_codes[-1] != old)
        return self.pending_codes[-1]

    async def wait_ready(self, node_id: str | None = None) -> Connection:
        def find() -> Connection | None:
            return next((c for c in self.open_connections
                         if c.ready and (node_id is None or c.node_id == node_id)), None)
        await self._wait_until(lambda: find() is not None)
        conn = find()
        assert conn is not None
        return conn

    async def wait_ready_other(self, previous: Connection) -> Connection:
        """The next ready, open connection that is not ``previous`` (a reconnect)."""
        def find() -> Connection | None:
            return next((c for c in self.open_connections if c.ready and c is not previous and not c.closed), None)
        await self._wait_until(lambda: find() is not None)
        conn = find()
        assert conn is not None
        return conn

    async def wait_for_method(self, method: str, *, after: int = 0) -> ReceivedFrame:
        """The first frame with ``method`` at index >= ``after`` in :attr:`received`."""
        def find() -> ReceivedFrame | None:
            return next((f for f in self.received[after:] if f.method == method), None)
        await self._wait_until(lambda: find() is not None)
        frame = find()
        assert frame is not None
        return frame

    async def wait_closed(self, conn: Connection) -> None:
        await self._wait_until(lambda: conn.closed)

    async def enter_code(self, code: str) -> bool:
        """A person types ``code`` on the gateway. True if it approved a pending node."""
        conn = next((c for c in self.open_connections if c.pairing and c.pairing.code == code), None)
        if conn is None:
            return False  # wrong code: whoever is pending stays pending
        pairing = conn.pairing
        assert pairing is not None
        if trio.current_time() >= pairing.deadline:
            await self._issue_code(conn, pairing.connect_id, pairing.node_id, pairing.name)
            return False
        conn.pairing = None
        token = self.issue_token(pairing.node_id)
        if self.pairing_style == "device":
            await self._send_event(conn, "device.pair.resolved", {"deviceId": pairing.node_id, "approved": True})
        else:
            resolved = {"nodeId": pairing.node_id, "approved": True, "token": token}
            for target in self.open_connections if self.broadcast_pairing_events else [conn]:
                await self._send_event(target, "node.pair.resolved", resolved)
        if self.answer_connect_after_approval:
            await self._accept(conn, pairing.connect_id, pairing.node_id, token)
        else:
            conn.node_id = pairing.node_id
        self._notify()
        return True

    async def reject(self, code: str | None = None) -> bool:
        """A person rejects the pending node showing ``code`` (or the only pending one)."""
        conn = next((c for c in self.open_connections
                     if c.pairing and (code is None or c.pairing.code == code)), None)
        if conn is None:
            return False
        pairing = conn.pairing
        assert pairing is not None
        conn.pairing = None
        name = "device.pair.resolved" if self.pairing_style == "device" else "node.pair.resolved"
        key = "deviceId" if self.pairing_style == "device" else "nodeId"
        await self._send_event(conn, name, {key: pairing.node_id, "approved": False})
        await self._refuse(conn, pairing.connect_id, "UNAUTHORIZED", "pairing rejected")
        self._notify()
        return True

    async def emit(self, event: str, payload: Any = None, *, conn: Connection | None = None) -> None:
        """Send an event to one connection, or broadcast it to every open one."""
        for target in [conn] if conn is not None else self.open_connections:
            await self._send_event(target, event, payload)

    async def emit_examples(self, *, conn: Connection | None = None, skip: frozenset[str] = frozenset(
            {"shutdown", "connect.challenge"})) -> int:
        """Every example payload from the pages (except the ones in ``skip``); returns the count."""
        count = 0
        for event, payloads in DOCUMENTED_EXAMPLES.items():
            if event in skip:
                continue
            for payload in payloads:
                await self.emit(event, payload, conn=conn)
                count += 1
        return count

    async def invoke(self, command: str, params: Any = None, *, node_id: str | None = None,
                     timeout_ms: int | None = None) -> Any:
        """Send ``node.invoke.request`` (OpenClaw's shape: the pages define none) to a connected
        node and wait for its ``node.invoke.result`` params."""
        conn = await self.wait_ready(node_id)
        invoke_id = f"invoke-{next(self._ids)}"
        payload: dict[str, Any] = {"id": invoke_id, "nodeId": conn.node_id, "command": command}
        if params is not None:
            payload["paramsJSON"] = json.dumps(params)
        if timeout_ms is not None:
            payload["timeoutMs"] = timeout_ms
        await self._send_event(conn, "node.invoke.request", payload)
        await self._wait_until(lambda: invoke_id in self.invoke_results)
        return self.invoke_results[invoke_id]

    async def shutdown(self, reason: str = "Gateway restart requested", *, close_code: int = 1012) -> None:
        """``shutdown {reason}`` to everyone, then close every socket (the double keeps serving)."""
        for conn in self.open_connections:
            await self._send_event(conn, "shutdown", {"reason": reason})
            await self.close(conn, close_code, "service restart")

    async def close(self, conn: Connection, code: int = 1000, reason: str = "bye") -> None:
        """Close one connection with a close frame (bounded: a silent peer cannot hang us)."""
        with trio.move_on_after(self.linger_s + 1), contextlib.suppress(
                ConnectionClosed, trio.BrokenResourceError, trio.ClosedResourceError):
            await conn.ws.aclose(code, reason)

    async def drop(self) -> None:
        """Kill every TCP connection at once: no close frame, an RST where the OS allows."""
        for conn in self.open_connections:
            stream = conn.stream
            with contextlib.suppress(OSError, AttributeError):
                stream.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await stream.aclose()

    # -- connection handling -------------------------------------------------------------------

    async def _handle(self, request: WebSocketRequest) -> None:
        ws = await request.accept()
        async with trio.open_nursery() as nursery:
            conn = Connection(id=next(self._ids), ws=ws, nursery=nursery, stream=getattr(ws, "_stream", None))
            self.connections.append(conn)
            self._notify()
            if self.tick_interval_s is not None:
                nursery.start_soon(self._periodic, conn, "tick", self.tick_interval_s)
            if self.heartbeat_interval_s is not None:
                nursery.start_soon(self._periodic, conn, "heartbeat", self.heartbeat_interval_s)
            try:
                while True:
                    frame = self._record(conn, await ws.get_message())
                    await self._on_message(conn, frame.obj)
            except ConnectionClosed as exc:
                conn.close_code = exc.reason.code
            finally:
                conn.closed = True
                conn.pairing = None
                nursery.cancel_scope.cancel()
                self._notify()

    async def _periodic(self, conn: Connection, event: str, interval: float) -> None:
        while True:  # the first one at once: it tells the client the gateway's clock
            await self._send_event(conn, event, {"timestamp": self.wall_ms()})
            await trio.sleep(interval)

    def _record(self, conn: Connection, message: str | bytes) -> ReceivedFrame:
        text = message.decode("utf-8", "replace") if isinstance(message, bytes) else message
        try:
            obj = json.loads(text)
        except ValueError:
            obj = None
        frame = ReceivedFrame(conn.id, text, obj)
        self.received.append(frame)
        self._notify()
        return frame

    async def _on_message(self, conn: Connection, frame: Any) -> None:
        if not isinstance(frame, dict):
            await self._respond(conn, None, error=("INVALID_REQUEST", "frame is not a JSON object"))
            return
        rid, method, params = frame.get("id"), frame.get("method"), frame.get("params")
        if frame.get("jsonrpc") != "2.0" or rid is None or not isinstance(method, str):
            await self._respond(conn, rid, error=("INVALID_REQUEST", "expected a JSON-RPC 2.0 request"))
            return
        if method == "connect":
            await self._on_connect(conn, rid, params)
        elif not conn.ready:
            await self._respond(conn, rid, error=("UNAUTHORIZED", "connect first"))
        elif method in self.method_errors:
            await self._respond(conn, rid, error=self.method_errors[method])
        elif method == "node.invoke.result":
            if isinstance(params, dict) and isinstance(params.get("id"), str):
                self.invoke_results[params["id"]] = params
                self._notify()
            await self._respond(conn, rid, payload={"ok": True})
        elif method == "heartbeat":
            await self._respond(conn, rid, payload={"ok": True})
            await self._send_event(conn, "heartbeat", {"timestamp": self.wall_ms()})  # the acknowledgement
        elif method in NODE_METHODS:
            await self._respond(conn, rid, payload={"ok": True})
        else:
            await self._respond(conn, rid, error=("METHOD_NOT_FOUND", f"unknown method: {method}"))

    async def _on_connect(self, conn: Connection, rid: Any, params: Any) -> None:
        if not isinstance(params, dict):
            await self._refuse(conn, rid, "INVALID_REQUEST", "connect needs params")
            return
        if self.rate_limited:
            await self._refuse(conn, rid, "RATE_LIMITED", "rate limit exceeded",
                               retry_after_ms=self.retry_after_ms)
            return
        if self.connect_error is not None:
            await self._refuse(conn, rid, *self.connect_error)
            return
        role = params.get("role")
        if role not in ("node", "control", "webchat"):
            await self._refuse(conn, rid, "INVALID_REQUEST", "role must be control, node or webchat")
            return
        auth = params.get("auth") if isinstance(params.get("auth"), dict) else {}
        client = params.get("client") if isinstance(params.get("client"), dict) else {}
        device_token, token, password = auth.get("deviceToken"), auth.get("token"), auth.get("password")
        presented = device_token if device_token is not None else (token if token in self.tokens else None)
        if presented is not None:
            node_id = self.tokens.get(presented)
            if node_id is None:
                await self._refuse(conn, rid, "UNAUTHORIZED", "invalid device token")
            else:
                await self._accept(conn, rid, node_id, presented)
            return
        if token is not None and token != self.shared_token:
            await self._refuse(conn, rid, "UNAUTHORIZED", "invalid token")
            return
        if password is not None and password != self.password:
            await self._refuse(conn, rid, "UNAUTHORIZED", "invalid password")
            return
        instance = client.get("instanceId")
        if conn.pairing is not None:
            node_id = conn.pairing.node_id  # a second connect while pending: the same request
        elif self.assign_node_ids:
            node_id = f"node-{next(self._node_numbers)}"
        else:
            node_id = instance if isinstance(instance, str) and instance else f"node-{secrets.token_hex(4)}"
        name = client.get("displayName") if isinstance(client.get("displayName"), str) else None
        if self.auto_approve:
            await self._accept(conn, rid, node_id, self.issue_token(node_id))
            return
        await self._issue_code(conn, rid, node_id, name)

    async def _issue_code(self, conn: Connection, connect_id: Any, node_id: str, name: str | None) -> None:
        old = conn.pairing.code if conn.pairing else None
        code = self._code_factory()
        while code == old:
            code = self._code_factory()
        expires_at_ms = self.wall_ms() + int(self.code_lifetime_s * 1000)
        pairing = Pairing(code=code, expires_at_ms=expires_at_ms,
                          deadline=trio.current_time() + self.code_lifetime_s,
                          connect_id=connect_id, node_id=node_id, name=name)
        conn.pairing = pairing
        if self.pairing_style == "device":
            await self._send_event(conn, "device.pair.requested",
                                   {"deviceId": node_id, "name": name or node_id, "challenge": code})
        else:
            await self._send_event(conn, "connect.challenge", {"challenge": code, "expiresAt": expires_at_ms})
        for other in self.open_connections:  # operators learn of the request
            if other is not conn and other.ready:
                await self._send_event(other, "node.pair.requested",
                                       {"nodeId": node_id, "name": name or node_id, "platform": "linux",
                                        "requestedAt": self.wall_ms()})
        if self.reissue_expired_codes and not conn.closed:
            conn.nursery.start_soon(self._expire, conn, pairing)
        self._notify()

    async def _expire(self, conn: Connection, pairing: Pairing) -> None:
        await trio.sleep_until(pairing.deadline)
        if conn.pairing is pairing and not conn.closed:
            await self._issue_code(conn, pairing.connect_id, pairing.node_id, pairing.name)

    async def _accept(self, conn: Connection, rid: Any, node_id: str, token: str) -> None:
        conn.ready, conn.node_id, conn.token, conn.pairing = True, node_id, token, None
        await self._respond(conn, rid, payload={
            "type": "hello-ok",
            "protocol": 1,
            "server": {"version": "documented-double", "connId": f"conn-{conn.id}"},
            "nodeId": node_id,
            "auth": {"deviceToken": token, "role": "node", "scopes": []} if self.token_in_connect_response
            else {"role": "node", "scopes": []},
            "policy": {"tickIntervalMs": int((self.tick_interval_s or 30.0) * 1000)},
        })
        self._notify()

    async def _refuse(self, conn: Connection, rid: Any, code: str, message: str, *,
                      retry_after_ms: int | None = None) -> None:
        """A refused connect: answer, let the client close first, close ourselves after linger_s."""
        await self._respond(conn, rid, error=(code, message), retry_after_ms=retry_after_ms)

        async def close_later() -> None:
            await trio.sleep(self.linger_s)
            await self.close(conn, 1008, message)

        if not conn.closed:
            conn.nursery.start_soon(close_later)

    async def _respond(self, conn: Connection, rid: Any, *, payload: Any = None,
                       error: tuple[str, str] | None = None, retry_after_ms: int | None = None) -> None:
        frame: dict[str, Any] = {"jsonrpc": "2.0"} if self.jsonrpc_in_responses else {}
        frame["id"] = rid
        if error is None:
            frame.update(ok=True, payload=payload)
        else:
            frame.update(ok=False, error={"code": error[0], "message": error[1]})
            if retry_after_ms is not None:
                frame["error"]["retryAfterMs"] = retry_after_ms
        await self._send(conn, frame)

    async def _send_event(self, conn: Connection, event: str, payload: Any) -> None:
        await self._send(conn, {"event": event, "payload": payload})

    async def _send(self, conn: Connection, frame: dict[str, Any]) -> None:
        if conn.closed:
            return
        self.sent.append((conn.id, frame))
        with contextlib.suppress(ConnectionClosed, trio.BrokenResourceError, trio.ClosedResourceError):
            await conn.ws.send_message(json.dumps(frame))

    # -- waiting -------------------------------------------------------------------------------

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def _wait_until(self, predicate: Callable[[], bool]) -> None:
        while not predicate():
            await self._changed.wait()


@contextlib.asynccontextmanager
async def open_documented_gateway(**options: Any) -> AsyncIterator[DocumentedGateway]:
    """Serve a :class:`DocumentedGateway` on 127.0.0.1 (a free port) for the block's duration."""
    gateway = DocumentedGateway(**options)
    async with trio.open_nursery() as nursery:
        await nursery.start(gateway.serve)
        try:
            yield gateway
        finally:
            nursery.cancel_scope.cancel()
