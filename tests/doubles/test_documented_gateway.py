"""The documented-dialect gateway double over a real loopback socket, driven by a minimal client
loop (a Session + JsonRpcDialect over trio-websocket). The supervisor's own end-to-end tests
come later; these pin down what the double does, so those tests can rely on it."""

from __future__ import annotations

import json
import math
from typing import Any, Callable

import pytest
import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, open_websocket_url

from node_agent.errors import ConfigError, ConnectionLost, GatewayRejected, NodeAgentError, PairingRejected, Retry
from node_agent.protocol import jsonrpc
from node_agent.protocol.actions import (
    Close,
    Dispatch,
    ForgetDeviceToken,
    InvokeStarted,
    PairingPending,
    Ready,
    ResponseReceived,
    Send,
    StoreDeviceToken,
)
from node_agent.protocol.dialect import ClientInfo, ConnectInputs, Credentials
from node_agent.protocol.documented_models import Heartbeat
from node_agent.protocol.jsonrpc import JsonRpcDialect
from node_agent.protocol.models import Shutdown, Tick, UnknownEvent
from node_agent.protocol.session import Session, State
from node_agent.secret import Secret
from tests.support.documented_gateway import DOCUMENTED_EXAMPLES, DocumentedGateway, open_documented_gateway

TIMEOUT = 5.0  # every I/O test runs under this bound


class Client:
    """The smallest loop that runs a Session over a WebSocket: frames and timers in, actions out."""

    def __init__(self, url: str, *, device_token: str | None = None, shared_token: str | None = None,
                 password: str | None = None, instance_id: str | None = "node-kitchen",
                 on_dispatch: Callable[["Client", Dispatch | InvokeStarted], Any] | None = None):
        creds = Credentials(device_token=Secret(device_token) if device_token else None,
                            shared_token=Secret(shared_token) if shared_token else None,
                            password=Secret(password) if password else None)
        self.url = url
        self.session = Session(JsonRpcDialect(), ConnectInputs(
            client=ClientInfo(version="0.1.0", platform="linux", display_name="Kitchen Pi",
                              instance_id=instance_id),
            credentials=creds, signer=None, commands=("system.notify",)))
        self.on_dispatch = on_dispatch
        self.actions: list[Any] = []
        self.error: NodeAgentError | None = None
        self.done = trio.Event()
        self.ws: WebSocketConnection | None = None
        self._changed = trio.Event()

    async def run(self) -> None:
        try:
            async with open_websocket_url(self.url) as ws:
                self.ws = ws
                await self._perform(self.session.start(trio.current_time()))
                while self.error is None:
                    deadline = self.session.deadline()
                    with trio.move_on_at(deadline if deadline is not None else math.inf):
                        try:
                            message = await ws.get_message()
                        except ConnectionClosed as exc:
                            self.error = self.session.connection_closed(exc.reason.code, exc.reason.reason)
                            break
                        await self._perform(self.session.receive_data(message, trio.current_time()))
                        continue
                    await self._perform(self.session.on_timer(trio.current_time()))
        finally:
            self.done.set()
            self._notify()

    async def send(self, actions: list[Any]) -> None:
        await self._perform(actions)

    async def _perform(self, actions: list[Any]) -> None:
        assert self.ws is not None
        for action in actions:
            self.actions.append(action)
            self._notify()
            if isinstance(action, Send):
                try:
                    await self.ws.send_message(action.data)
                except ConnectionClosed:
                    pass  # the read side reports why
            elif isinstance(action, Close):
                await self.ws.aclose(action.code, action.reason)
            elif isinstance(action, (Dispatch, InvokeStarted)) and self.on_dispatch is not None:
                await self.on_dispatch(self, action)

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    def of(self, cls: type) -> list[Any]:
        return [a for a in self.actions if isinstance(a, cls)]

    async def wait_for(self, cls: type, count: int = 1, where: Callable[[Any], bool] = lambda a: True) -> Any:
        while len([a for a in self.of(cls) if where(a)]) < count:
            if self.done.is_set():
                raise AssertionError(f"connection ended ({self.error!r}) before {count} x {cls.__name__}")
            await self._changed.wait()
        return [a for a in self.of(cls) if where(a)][count - 1]

    async def wait_dispatched(self, body_cls: type, count: int = 1) -> Any:
        action = await self.wait_for(Dispatch, count, lambda a: isinstance(a.event.body, body_cls))
        return action.event.body

    async def wait_closed(self) -> NodeAgentError:
        await self.done.wait()
        assert self.error is not None
        return self.error


async def connect(nursery: trio.Nursery, gw: DocumentedGateway, **kwargs: Any) -> Client:
    client = Client(gw.url, **kwargs)
    nursery.start_soon(client.run)
    return client


# --- pairing ----------------------------------------------------------------------------------

async def test_pair_by_code_then_ready():
    with trio.fail_after(TIMEOUT):
        async with open_documented_gateway() as gw, trio.open_nursery() as nursery:
            client = await connect(nursery, gw)
            pending = await client.wait_for(PairingPending)
            assert client.session.state is State.PENDING_APPROVAL
            assert pending.code == await gw.wait_for_code() and len(pending.code) == 6 and pending.code.isdigit()
            assert pending.expires_at_ms is not None

            assert await gw.enter_code(pending.code) is True
            store = await client.wait_for(StoreDeviceToken)
            ready = await client.wait_for(Ready)
            assert gw.tokens[store.token.reveal()] == "node-kitchen"
            assert ready.hello.node_id == "node-kitchen" and ready.hello.device_token == store.token
            assert client.session.state is State.READY
            assert len(client.of(StoreDeviceToken)) == 1

            [connect_frame] = [f for f in gw.received if f.method == "connect"]
            assert connect_frame.obj["jsonrpc"] == "2.0"
            assert connect_frame.params["role"] == "node" and "auth" not in connect_frame.params
            assert connect_frame.params["client"]["instanceId"] == "node-kitchen"
            nursery.cancel_scope.cancel()


async def test_the_pages_style_gateway_names_nodes_itself_and_keeps_the_token_out_of_the_response():
    with trio.fail_after(TIMEOUT):
        async with open_documented_gateway(assign_node_ids=True, token_in_connect_response=False,
                                           broadcast_pairing_events=True) as gw, \
                open_websocket_url(gw.url) as first, open_websocket_url(gw.url) as second:
            for n, ws in enumerate((first, second), 1):
                await ws.send_message(json.dumps({"jsonrpc": "2.0", "id": n, "method": "connect",
                                                  "params": {"role": "node", "client": {"instanceId": "mine"}}}))
            codes = []
            for ws in (first, second):
                while (frame := json.loads(await ws.get_message())).get("event") != "connect.challenge":
                    pass
                codes.append(frame["payload"]["challenge"])
            assert await gw.enter_code(codes[0]) is True
            resolved = [json.loads(await ws.get_message()) for ws in (first, second)]
            while resolved[1].get("event") != "node.pair.resolved":  # the second socket also hears it
                resolved[1] = json.loads(await second.get_message())
            assert resolved[0]["event"] == "node.pair.resolved" == resolved[1]["event"]
            assert resolved[0]["payload"]["nodeId"] == "node-1" and resolved[0]["payload"]["token"]
            answer = json.loads(await first.get_message())
            assert answer["id"] == 1 and answer["payload"]["nodeId"] == "node-1"
            assert "deviceToken" not in answer["payload"]["auth"]
            assert gw.pending_codes == [codes[1]]


async def test_wrong_code_leaves_the_node_pending():
    with trio.fail_after(TIMEOUT):
        async with open_documented_gateway() as gw, trio.open_nursery() as nursery:
            client = await connect(nursery, gw)
            code = (await client.wait_for(PairingPending)).code
            wrong = f"{(int(code) + 1) % 10**6:06d}"
            assert await gw.enter_code(wrong) is False
            await trio.sleep(0.05)
            assert client.session.state is State.PENDING_APPROVAL and gw.pending_codes == [code]
            assert await gw.enter_code(code) is True
            await client.wait_for(Ready)
            nursery.cancel_scope.cancel()


async def test_an_expired_code_is_refused_and_replaced():
    with trio.fail_after(TIMEOUT):
        async with open_documented_gateway(code_lifetime_s=0.2, reissue_expired_codes=False) as gw, \
                trio.open_nursery() as nursery:
            client = await connect(nursery, gw)
            old = (await client.wait_for(PairingPending)).code
            await trio.sleep(0.3)
            assert await gw.enter_code(old) is False
            new = (await client.wait_for(PairingPending, 2)).code
            assert new != old and gw.pending_codes == [new]
            assert await gw.enter_code(new) is True
            await client.wait_for(Ready)
            nursery.cancel_scope.cancel()


async def test_the_gateway_replaces_an_expiring_code_unprompted():
    with trio.fail_after(TIMEOUT):
        async with open_documented_gateway(code_lifetime_s=0.2) as gw, trio.open_nursery() as nursery:
            client = await connect(nursery, gw)
            first = await client.wait_for(PairingPending)
            second = await client.wait_for(PairingPending, 2)
            assert second.code != first.code and second.expires_at_ms > first.expires_at_ms
            # the client did not have to ask: one connect only
            assert [f.method for f in gw.received] == ["connect"]
            nursery.cancel_scope.cancel()


async def test_the_client_asks_for_a_new_code_when_the_gateway_does_not(monkeypatch):
    monkeypatch.setattr(jsonrpc, "MIN_CODE_LIFETIME_S", 0.05)
    monkeypatch.setattr(jsonrpc, "CODE_EXPIRY_GRACE_S", 0.05)
    with trio.fail_after(TIMEOUT):
        async with open_documented_gateway(code_lifetime_s=0.2, reissue_expired_codes=False) as gw, \
                trio.open_nursery() as nursery:
            client = await connect(nursery, gw)
            first = await client.wait_for(PairingPending)
            second = await client.wait_for(PairingPending, 2)
            assert second.code != first.code
            assert [f.method for f in gw.received] == ["connect", "connect"]
            assert await gw.enter_code(second.code) is True
            await client.wait_for(Ready)  # the gateway answers the latest connect
            nursery.cancel_scope.cancel()


async def test_rejection_closes_for_good():
    with trio.fail_after(TIMEOUT):
        async with open_documented_gateway() as gw, trio.open_nursery() as nursery:
            client = await connect(nursery, gw)
            await client.wait_for(PairingPending)
            assert await gw.reject() is True
            error = await client.wait_closed()
            assert isinstance(error, PairingRejected) and error.retry is Retry.FATAL
            conn = gw.connections[0]
            await gw.wait_closed(conn)
            assert conn.close_code == 1000  # the client closed first, cleanly


async def test_device_style_pairing():
    with trio.fail_after(TIMEOUT):
        async with open_documented_gateway(pairing_style="device") as gw, trio.open_nursery() as nursery:
            client = await connect(nursery, gw)
            pending = await client.wait_for(PairingPending)
            assert [f for _, f in gw.sent if f.get("event") == "device.pair.requested"]
            assert await gw.enter_code(pending.code) is True
            ready = await client.wait_for(Ready)
            store = await client.wait_for(StoreDeviceToken)  # from the connect response this time
            assert ready.hello.device_token == store.token and store.token.reveal() in gw.tokens
            nursery.cancel_scope.cancel()


async def test_approved_without_an_answer_reconnects_with_the_token(monkeypatch):
    monkeypatch.setattr(jsonrpc, "APPROVED_RESPONSE_TIMEOUT_S", 0.1)
    with trio.fail_after(TIMEOUT):
        async with open_documented_gateway(answer_connect_after_approval=False) as gw, \
                trio.open_nursery() as nursery:
            client = await connect(nursery, gw)
            assert await gw.enter_code((await client.wait_for(PairingPending)).code)
            store = await client.wait_for(StoreDeviceToken)
            await client.wait_for(Ready)
            second = [f for f in gw.received if f.method == "connect"][1]
            assert second.params["auth"] == {"deviceToken": store.token.reveal()}
            nursery.cancel_scope.cancel()


async def test_auto_approve():
    with trio.fail_after(TIMEOUT):
        async with open_documented_gateway(auto_approve=True) as gw, trio.open_nursery() as nursery:
            client = await connect(nursery, gw)
            store = await client.wait_for(StoreDeviceToken)
            await client.wait_for(Ready)
            assert not client.of(PairingPending) and store.token.reveal() in gw.tokens
            nursery.cancel_scope.cancel()


# --- tokens and refusals ----------------------------------------------------------------------

async def test_a_valid_token_connects_at_once():
    with trio.fail_after(TIMEOUT):
        async with open_documented_gateway() as gw, trio.open_nursery() as nursery:
            token = gw.issue_token("node-kitchen")
            client = await connect(nursery, gw, device_token=token)
            ready = await client.wait_for(Ready)
            assert not client.of(PairingPending) and not client.of(StoreDeviceToken)
            assert ready.hello.node_id == "node-kitchen"
            nursery.cancel_scope.cancel()


async def test_an_invalid_token_is_unauthorized_and_forgotten():
    with trio.fail_after(TIMEOUT):
        async with open_documented_gateway() as gw, trio.open_nursery() as nursery:
            token = gw.issue_token()
            gw.revoke(token)
            client = await connect(nursery, gw, device_token=token, shared_token="shared")
            error = await client.wait_closed()
            assert client.of(ForgetDeviceToken)
            assert isinstance(error, GatewayRejected) and error.code == "UNAUTHORIZED" and error.retry is Retry.REAUTH


async def test_a_wrong_shared_token_is_fatal():
    with trio.fail_after(TIMEOUT):
        async with open_documented_gateway(shared_token="right") as gw, trio.open_nursery() as nursery:
            client = await connect(nursery, gw, shared_token="wrong")
            error = await client.wait_closed()
            assert isinstance(error, ConfigError) and error.retry is Retry.FATAL
            assert not client.of(ForgetDeviceToken)
            # the right shared token still asks for pairing
            client = await connect(nursery, gw, shared_token="right")
            await client.wait_for(PairingPending)
            nursery.cancel_scope.cancel()


async def test_rate_limited():
    with trio.fail_after(TIMEOUT):
        async with open_documented_gateway(rate_limited=True, retry_after_ms=30_000) as gw, \
                trio.open_nursery() as nursery:
            client = await connect(nursery, gw, device_token=gw.issue_token())
            error = await client.wait_closed()
            assert isinstance(error, GatewayRejected) and error.retry is Retry.RATE_LIMITED
            assert error.retry_after_s == 30.0


async def test_internal_error_is_transient():
    with trio.fail_after(TIMEOUT):
        async with open_documented_gateway() as gw, trio.open_nursery() as nursery:
            gw.connect_error = ("INTERNAL_ERROR", "database on fire")
            client = await connect(nursery, gw)
            error = await client.wait_closed()
            assert isinstance(error, GatewayRejected) and error.retry is Retry.TRANSIENT


async def test_the_double_closes_if_a_refused_client_lingers():
    with trio.fail_after(TIMEOUT):
        async with open_documented_gateway(rate_limited=True, linger_s=0.1) as gw, \
                open_websocket_url(gw.url) as ws:
            await ws.send_message(json.dumps({"jsonrpc": "2.0", "id": "c1", "method": "connect",
                                              "params": {"role": "node"}}))
            response = json.loads(await ws.get_message())
            while "event" in response:
                response = json.loads(await ws.get_message())
            assert response == {"id": "c1", "ok": False, "error": {"code": "RATE_LIMITED",
                                                                    "message": "rate limit exceeded"}}
            with pytest.raises(ConnectionClosed) as info:
                while True:
                    await ws.get_message()
            assert info.value.reason.code == 1008


# --- after READY ------------------------------------------------------------------------------

async def ready_client(nursery: trio.Nursery, gw: DocumentedGateway, **kwargs: Any) -> Client:
    client = await connect(nursery, gw, device_token=gw.issue_token("node-kitchen"), **kwargs)
    await client.wait_for(Ready)
    return client


async def test_ticks_and_heartbeats_arrive_periodically():
    with trio.fail_after(TIMEOUT):
        async with open_documented_gateway(tick_interval_s=0.05, heartbeat_interval_s=0.05) as gw, \
                trio.open_nursery() as nursery:
            client = await ready_client(nursery, gw)
            tick = await client.wait_dispatched(Tick, 3)
            heartbeat = await client.wait_dispatched(Heartbeat, 3)
            assert tick.ts is not None and heartbeat.timestamp is not None
            assert client.session.hello.policy.tick_interval_ms == 50
            nursery.cancel_scope.cancel()


async def test_every_documented_event_reaches_the_client_typed():
    with trio.fail_after(TIMEOUT):
        async with open_documented_gateway() as gw, trio.open_nursery() as nursery:
            client = await ready_client(nursery, gw)
            before = len(client.of(Dispatch))
            count = await gw.emit_examples(conn=await gw.wait_ready())
            await client.wait_for(Dispatch, before + count)
            events = [a.event for a in client.of(Dispatch)[before:]]
            assert {e.name for e in events} == set(DOCUMENTED_EXAMPLES) - {"shutdown", "connect.challenge"}
            assert not [e for e in events if isinstance(e.body, UnknownEvent)]
            assert client.session.state is State.READY
            nursery.cancel_scope.cancel()


async def test_invoke_round_trip():
    async def handle(client: Client, action: Dispatch | InvokeStarted) -> None:
        if isinstance(action, InvokeStarted):
            _, actions = client.session.invoke_result(action.request.id, ok=True, payload={"echo": action.arguments})
            await client.send(actions)

    with trio.fail_after(TIMEOUT):
        async with open_documented_gateway() as gw, trio.open_nursery() as nursery:
            await ready_client(nursery, gw, on_dispatch=handle)
            result = await gw.invoke("system.notify", {"title": "hi"}, timeout_ms=1000)
            assert result["ok"] is True and json.loads(result["payloadJSON"]) == {"echo": {"title": "hi"}}
            assert result["nodeId"]  # whatever the session derives; see the report on node ids
            nursery.cancel_scope.cancel()


async def test_node_methods_and_errors_after_ready():
    with trio.fail_after(TIMEOUT):
        async with open_documented_gateway() as gw, trio.open_nursery() as nursery:
            client = await ready_client(nursery, gw)
            gw.method_errors["node.event"] = ("INTERNAL_ERROR", "boom")
            _, actions = client.session.node_event("voice.transcript", {"text": "hi"})
            await client.send(actions)
            _, actions = client.session.request("no.such.method", {})
            await client.send(actions)
            first = await client.wait_for(ResponseReceived, 1)
            second = await client.wait_for(ResponseReceived, 2)
            by_method = {r.method: r.response for r in (first, second)}
            assert by_method["node.event"].error.code == "INTERNAL_ERROR"
            assert by_method["no.such.method"].error.code == "METHOD_NOT_FOUND"
            sent = await gw.wait_for_method("node.event")
            assert sent.params == {"event": "voice.transcript", "payloadJSON": '{"text":"hi"}'}
            nursery.cancel_scope.cancel()


async def test_shutdown_then_close():
    with trio.fail_after(TIMEOUT):
        async with open_documented_gateway() as gw, trio.open_nursery() as nursery:
            client = await ready_client(nursery, gw)
            await gw.shutdown()
            body = await client.wait_dispatched(Shutdown)
            assert body.reason == "Gateway restart requested"
            error = await client.wait_closed()
            assert isinstance(error, ConnectionLost) and error.retry is Retry.SERVER_RESTART
            assert error.close_code == 1012


async def test_drop_kills_the_tcp_connection():
    with trio.fail_after(TIMEOUT):
        async with open_documented_gateway() as gw, trio.open_nursery() as nursery:
            client = await ready_client(nursery, gw)
            await gw.drop()
            error = await client.wait_closed()
            assert isinstance(error, ConnectionLost) and error.retry is Retry.TRANSIENT
            assert error.close_code == 1006  # abnormal closure: no close frame


# --- the double's own framing -----------------------------------------------------------------

async def test_requests_before_connect_and_garbage_are_refused():
    with trio.fail_after(TIMEOUT):
        async with open_documented_gateway(tick_interval_s=None, jsonrpc_in_responses=True) as gw, \
                open_websocket_url(gw.url) as ws:
            await ws.send_message(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "node.event", "params": {}}))
            assert json.loads(await ws.get_message()) == {
                "jsonrpc": "2.0", "id": 1, "ok": False, "error": {"code": "UNAUTHORIZED", "message": "connect first"}}
            await ws.send_message("not json")
            reply = json.loads(await ws.get_message())
            assert reply["id"] is None and reply["error"]["code"] == "INVALID_REQUEST"
            await ws.send_message(json.dumps({"id": 2, "method": "connect"}))  # no "jsonrpc": "2.0"
            assert json.loads(await ws.get_message())["error"]["code"] == "INVALID_REQUEST"
            assert [f.obj for f in gw.received][1] is None and len(gw.received) == 3
