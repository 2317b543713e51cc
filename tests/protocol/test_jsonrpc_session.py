"""The documented handshake driven through a real Session with no I/O: frames and times in,
actions out (h11-style). Times are the session's monotonic seconds; gateway clocks are epoch ms."""

from __future__ import annotations

import json
from typing import Any

import pytest

from node_agent.errors import (
    ConfigError,
    ConnectionLost,
    GatewayRejected,
    PairingRejected,
    RemoteProtocolError,
    Retry,
)
from node_agent.protocol import jsonrpc
from node_agent.protocol.actions import (
    Close,
    Dispatch,
    ForgetDeviceToken,
    InvokeStarted,
    LogProblem,
    PairingPending,
    Ready,
    ResponseReceived,
    Send,
    StoreDeviceToken,
)
from node_agent.protocol.dialect import ClientInfo, Credentials
from node_agent.protocol.jsonrpc import JsonRpcDialect
from node_agent.protocol.models import NodeInvokeRequest, Response, Shutdown
from node_agent.protocol.replies import NodeEventReply
from node_agent.protocol.session import Session, State
from node_agent.secret import Secret
from tests.support.builders import connect_inputs, counting_ids

GATEWAY_EPOCH_MS = 1_800_000_000_000  # the gateway's wall clock when our session clock reads 0


def make_session(*, device_token: str | None = None, shared_token: str | None = "shared",
                 password: str | None = None, instance_id: str | None = None) -> Session:
    creds = Credentials(device_token=Secret(device_token) if device_token else None,
                        shared_token=Secret(shared_token) if shared_token else None,
                        password=Secret(password) if password else None)
    inputs = connect_inputs(client=ClientInfo(version="0.1.0", platform="linux", instance_id=instance_id),
                            credentials=creds, signer=None, caps=(), commands=("system.notify",))
    return Session(JsonRpcDialect(), inputs, new_id=counting_ids("r"))


def feed(session: Session, frame: dict[str, Any], now: float) -> list[Any]:
    return session.receive_data(json.dumps(frame), now)


def sent(actions: list[Any]) -> list[dict[str, Any]]:
    return [json.loads(a.data) for a in actions if isinstance(a, Send)]


def challenge(code: str = "123456", expires_in_s: float | None = 60.0, at: float = 0.0) -> dict[str, Any]:
    payload: dict[str, Any] = {"challenge": code}
    if expires_in_s is not None:
        payload["expiresAt"] = int(GATEWAY_EPOCH_MS + (at + expires_in_s) * 1000)
    return {"event": "connect.challenge", "payload": payload}


def tick(at: float) -> dict[str, Any]:
    return {"event": "tick", "payload": {"timestamp": int(GATEWAY_EPOCH_MS + at * 1000)}}


def ok(rid: str, payload: Any = None) -> dict[str, Any]:
    return {"id": rid, "ok": True, "payload": payload if payload is not None else {"type": "hello-ok"}}


def error(rid: str, code: str, message: str = "no", **extra: Any) -> dict[str, Any]:
    return {"id": rid, "ok": False, "error": {"code": code, "message": message, **extra}}


def start(session: Session, now: float = 0.0) -> dict[str, Any]:
    actions = session.start(now)
    [frame] = sent(actions)
    assert session.state is State.CONNECTING
    return frame


# --- pairing by code --------------------------------------------------------------------------

def test_we_speak_first_with_a_json_rpc_connect():
    session = make_session()
    frame = start(session)
    assert frame["jsonrpc"] == "2.0" and frame["id"] == "r1" and frame["method"] == "connect"
    assert frame["params"]["role"] == "node" and frame["params"]["auth"] == {"token": "shared"}
    assert session.deadline() == jsonrpc.CONNECT_TIMEOUT_S


def test_code_displayed_then_resolved_then_token_stored_then_ready():
    session = make_session(instance_id="node-7")
    start(session)
    assert feed(session, tick(0.1), 0.1) == []

    actions = feed(session, challenge("482913", at=0.2), 0.2)
    assert actions == [PairingPending(code="482913", expires_at_ms=GATEWAY_EPOCH_MS + 60_200)]
    assert session.state is State.PENDING_APPROVAL  # and nothing closes: the socket stays open

    # a person types the code on the gateway
    actions = feed(session, {"event": "node.pair.resolved",
                             "payload": {"nodeId": "node-7", "approved": True, "token": "tok-1"}}, 30.0)
    assert actions == [StoreDeviceToken(Secret("tok-1"))]

    actions = feed(session, ok("r1", {"type": "hello-ok", "auth": {"deviceToken": "tok-1"},
                                      "policy": {"tickIntervalMs": 10_000}}), 30.1)
    [ready] = actions  # the same token is not stored twice
    assert isinstance(ready, Ready) and session.state is State.READY
    assert ready.hello.device_token == Secret("tok-1") and ready.hello.node_id == "node-7"
    assert session.deadline() == pytest.approx(30.1 + 20.0)  # watchdog: 2 x tickIntervalMs

    # node methods work through the same session calls
    rid, actions = session.node_event("voice.transcript", {"text": "hi"})
    [frame] = sent(actions)
    assert frame == {"jsonrpc": "2.0", "id": rid, "method": "node.event",
                     "params": {"event": "voice.transcript", "payloadJSON": '{"text":"hi"}'}}
    assert feed(session, {"id": rid, "ok": True, "payload": {"ok": True}}, 31.0) == [
        ResponseReceived(Response(id=rid, ok=True, payload={"ok": True}), "node.event",
                         reply=NodeEventReply(event="voice.transcript", handled=None))]


def test_token_in_the_connect_response_is_stored_when_the_event_had_none():
    session = make_session()
    start(session)
    feed(session, challenge(), 0.1)
    assert feed(session, {"event": "device.pair.resolved", "payload": {"deviceId": "d", "approved": True}}, 5) == []
    actions = feed(session, ok("r1", {"auth": {"deviceToken": "tok-2"}}), 5.1)
    assert actions[0] == StoreDeviceToken(Secret("tok-2")) and isinstance(actions[1], Ready)
    assert actions[1].hello.device_token == Secret("tok-2")


def test_device_pair_requested_shows_its_challenge():
    session = make_session(instance_id="dev-1")
    start(session)
    assert feed(session, {"event": "device.pair.requested",
                          "payload": {"deviceId": "someone-else", "challenge": "111111"}}, 0.1) == []
    actions = feed(session, {"event": "device.pair.requested",
                             "payload": {"deviceId": "dev-1", "name": "Pi", "challenge": "222222"}}, 0.2)
    assert actions == [PairingPending(code="222222")]


def test_a_resolution_for_another_node_is_not_ours():
    session = make_session(instance_id="node-7")
    start(session)
    feed(session, challenge(), 0.1)
    assert feed(session, {"event": "node.pair.resolved",
                          "payload": {"nodeId": "node-8", "approved": False}}, 1.0) == []
    assert session.state is State.PENDING_APPROVAL


def test_an_approval_under_the_gateways_own_id_is_ours_once_the_connect_response_names_it():
    # The pages' gateway assigns ids ("node-123"); the token comes only in node.pair.resolved.
    session = make_session(instance_id="our-instance")
    start(session)
    feed(session, challenge(), 0.1)
    resolved = {"event": "node.pair.resolved", "payload": {"nodeId": "node-123", "approved": True, "token": "tok-9"}}
    assert feed(session, resolved, 5.0) == []  # nothing stored on the event's word alone
    assert session.state is State.PENDING_APPROVAL
    actions = feed(session, ok("r1", {"type": "hello-ok", "nodeId": "node-123"}), 5.1)
    assert actions[0] == StoreDeviceToken(Secret("tok-9"))
    assert isinstance(actions[1], Ready) and actions[1].hello.node_id == "node-123"
    assert actions[1].hello.device_token == Secret("tok-9")


def test_an_approval_under_an_id_the_connect_response_does_not_name_is_never_stored():
    session = make_session(instance_id="our-instance")
    start(session)
    feed(session, challenge(), 0.1)
    feed(session, {"event": "node.pair.resolved",
                   "payload": {"nodeId": "node-1", "approved": True, "token": "someone-elses"}}, 5.0)
    actions = feed(session, ok("r1", {"type": "hello-ok", "nodeId": "node-2", "auth": {"deviceToken": "ours"}}), 9.0)
    assert actions[0] == StoreDeviceToken(Secret("ours"))
    assert not [a for a in actions if a == StoreDeviceToken(Secret("someone-elses"))]


def test_a_wrong_code_typed_at_the_gateway_changes_nothing_here():
    session = make_session()
    start(session)
    feed(session, challenge(), 0.1)
    # the gateway does not resolve; ticks keep arriving; the session waits (no hot loop, no close)
    for t in (10.0, 20.0, 30.0):
        assert feed(session, tick(t), t) == []
        assert session.on_timer(t) == []
    assert session.state is State.PENDING_APPROVAL


def test_broadcasts_before_ready_are_ignored_quietly():
    session = make_session()
    start(session)
    for frame in ({"event": "presence", "payload": {"nodes": []}}, {"event": "health", "payload": {}},
                  {"event": "heartbeat", "payload": {"timestamp": GATEWAY_EPOCH_MS}}):
        assert feed(session, frame, 0.1) == []
    assert session.state is State.CONNECTING


# --- code expiry ------------------------------------------------------------------------------

def test_expired_code_asks_for_a_new_one_using_the_ticks_clock():
    session = make_session()
    start(session)
    feed(session, tick(0.0), 0.0)
    feed(session, challenge("111111", expires_in_s=60.0, at=1.0), 1.0)
    expected = 1.0 + 60.0 + jsonrpc.CODE_EXPIRY_GRACE_S
    assert session.deadline() == pytest.approx(expected)
    assert session.on_timer(expected - 0.001) == []

    actions = session.on_timer(expected)
    [frame] = sent(actions)
    assert frame["method"] == "connect" and frame["id"] == "r2"
    assert session.state is State.CONNECTING

    assert feed(session, challenge("222222", at=expected), expected) == [
        PairingPending(code="222222", expires_at_ms=int(GATEWAY_EPOCH_MS + (expected + 60) * 1000))]
    # the superseded connect's refusal is not ours any more; its success would be
    assert feed(session, error("r1", "UNAUTHORIZED", "superseded"), expected + 1) == []
    assert session.state is State.PENDING_APPROVAL
    feed(session, {"event": "node.pair.resolved", "payload": {"approved": True, "token": "t"}}, expected + 2)
    assert isinstance(feed(session, ok("r2"), expected + 3)[-1], Ready)


def test_expiry_deadline_uses_a_fallback_until_a_tick_tells_the_gateway_clock():
    session = make_session()
    start(session)
    feed(session, challenge(expires_in_s=30.0, at=1.0), 1.0)
    assert session.deadline() == pytest.approx(1.0 + jsonrpc.FALLBACK_CODE_LIFETIME_S + jsonrpc.CODE_EXPIRY_GRACE_S)
    # our clock and the gateway's are unrelated: only the tick lets us compare
    feed(session, tick(5.0), 5.0)
    assert session.deadline() == pytest.approx(1.0 + 30.0 + jsonrpc.CODE_EXPIRY_GRACE_S)


def test_a_replacement_code_from_the_gateway_resets_the_deadline_without_asking():
    session = make_session()
    start(session)
    feed(session, tick(0.0), 0.0)
    feed(session, challenge("111111", expires_in_s=20.0, at=0.0), 0.0)
    assert feed(session, challenge("222222", expires_in_s=20.0, at=20.5), 20.5) == [
        PairingPending(code="222222", expires_at_ms=GATEWAY_EPOCH_MS + 40_500)]
    assert session.on_timer(22.0) == []  # the old deadline passed; nothing re-sent
    assert session.deadline() == pytest.approx(20.5 + 20 + jsonrpc.CODE_EXPIRY_GRACE_S)


@pytest.mark.parametrize(("expires_in_s", "lifetime"), [
    (-500.0, jsonrpc.MIN_CODE_LIFETIME_S),  # already expired (skew, or a hostile gateway): no hot loop
    (1.0, jsonrpc.MIN_CODE_LIFETIME_S),
    (10 ** 6, jsonrpc.MAX_CODE_LIFETIME_S),
])
def test_code_lifetimes_are_clamped(expires_in_s, lifetime):
    session = make_session()
    start(session)
    feed(session, tick(0.0), 0.0)
    feed(session, challenge(expires_in_s=expires_in_s), 0.0)
    assert session.deadline() == pytest.approx(lifetime + jsonrpc.CODE_EXPIRY_GRACE_S)


# --- approval without a response --------------------------------------------------------------

def test_approved_but_unanswered_reconnects_once_with_the_new_token():
    session = make_session()
    start(session)
    feed(session, challenge(), 0.1)
    feed(session, {"event": "node.pair.resolved", "payload": {"approved": True, "token": "tok-3"}}, 1.0)
    assert session.deadline() == pytest.approx(1.0 + jsonrpc.APPROVED_RESPONSE_TIMEOUT_S)
    [frame] = sent(session.on_timer(11.0))
    assert frame["method"] == "connect" and frame["params"]["auth"] == {"deviceToken": "tok-3"}
    [close] = session.on_timer(21.0)
    assert isinstance(close, Close) and isinstance(close.error, ConnectionLost)
    assert close.error.retry is Retry.TRANSIENT


def test_approved_then_reconnect_answered():
    session = make_session()
    start(session)
    feed(session, challenge(), 0.1)
    feed(session, {"event": "node.pair.resolved", "payload": {"approved": True, "token": "tok-3"}}, 1.0)
    session.on_timer(11.0)
    [ready] = feed(session, ok("r2"), 11.5)
    assert isinstance(ready, Ready) and ready.hello.device_token == Secret("tok-3")


# --- refusals ---------------------------------------------------------------------------------

def test_rejection_closes_with_a_fatal_pairing_rejected():
    session = make_session()
    start(session)
    feed(session, challenge(), 0.1)
    [close] = feed(session, {"event": "node.pair.resolved", "payload": {"approved": False}}, 3.0)
    assert isinstance(close, Close) and isinstance(close.error, PairingRejected)
    assert close.error.retry is Retry.FATAL and close.error.hint
    assert session.state is State.CLOSING
    # the gateway's follow-up refusal changes nothing
    assert feed(session, error("r1", "UNAUTHORIZED", "pairing rejected"), 3.1) == []
    assert session.connection_closed(1000, None) is close.error


def test_rate_limited_backs_off_long():
    session = make_session()
    start(session)
    [close] = feed(session, error("r1", "RATE_LIMITED", "slow down", retryAfterMs=60_000), 0.1)
    assert isinstance(close.error, GatewayRejected)
    assert close.error.retry is Retry.RATE_LIMITED and close.error.retry_after_s == 60.0
    assert session.connection_closed(1008, "rate limit exceeded") is close.error


def test_unauthorized_with_a_stored_token_forgets_it_and_reauths():
    session = make_session(device_token="old")
    frame = start(session)
    assert frame["params"]["auth"] == {"deviceToken": "old"}
    forget, close = feed(session, error("r1", "UNAUTHORIZED", "invalid device token"), 0.1)
    assert forget == ForgetDeviceToken()
    assert close.error.retry is Retry.REAUTH


@pytest.mark.parametrize("creds", [{"shared_token": "wrong"}, {"shared_token": None, "password": "wrong"},
                                   {"shared_token": None}])
def test_unauthorized_with_a_shared_credential_is_fatal(creds):
    session = make_session(**creds)
    start(session)
    actions = feed(session, error("r1", "UNAUTHORIZED", "invalid token"), 0.1)
    [close] = actions  # nothing to forget
    assert isinstance(close.error, ConfigError) and close.error.retry is Retry.FATAL


def test_valid_stored_token_connects_at_once():
    session = make_session(device_token="tok")
    start(session)
    [ready] = feed(session, ok("r1", {"auth": {"deviceToken": "tok"}}), 0.1)
    assert isinstance(ready, Ready)
    # a rotated token is stored
    session = make_session(device_token="tok")
    start(session)
    store, ready = feed(session, ok("r1", {"auth": {"deviceToken": "tok-new"}}), 0.1)
    assert store == StoreDeviceToken(Secret("tok-new")) and isinstance(ready, Ready)


def test_no_answer_at_all_times_out():
    session = make_session()
    start(session)
    assert session.on_timer(jsonrpc.CONNECT_TIMEOUT_S - 0.01) == []
    [close] = session.on_timer(jsonrpc.CONNECT_TIMEOUT_S)
    assert close.code == 1008 and isinstance(close.error, ConnectionLost) and close.error.retry is Retry.TRANSIENT


def test_an_openclaw_challenge_means_the_wrong_dialect_and_is_retried():
    session = make_session()
    start(session)
    [close] = feed(session, {"type": "event", "event": "connect.challenge",
                             "payload": {"nonce": "uuid", "ts": GATEWAY_EPOCH_MS}}, 0.1)
    assert isinstance(close.error, RemoteProtocolError) and close.error.retry is Retry.TRANSIENT
    assert "openclaw" in close.error.hint


# --- shutdown ---------------------------------------------------------------------------------

def test_shutdown_while_pending_closes_for_a_restart():
    session = make_session()
    start(session)
    feed(session, challenge(), 0.1)
    [close] = feed(session, {"event": "shutdown", "payload": {"reason": "Gateway restart requested"}}, 1.0)
    assert isinstance(close.error, ConnectionLost) and close.error.retry is Retry.SERVER_RESTART


def test_shutdown_when_ready_is_dispatched_and_the_close_means_restart():
    session = make_session(device_token="tok")
    start(session)
    feed(session, ok("r1"), 0.1)
    [dispatch] = feed(session, {"event": "shutdown", "payload": {"reason": "Gateway restart requested"}}, 1.0)
    assert isinstance(dispatch, Dispatch) and dispatch.event.body == Shutdown(reason="Gateway restart requested")
    err = session.connection_closed(1000, None)
    assert err.retry is Retry.SERVER_RESTART


# --- after READY ------------------------------------------------------------------------------

def test_invoke_round_trip_after_ready():
    session = make_session(device_token="tok")
    start(session)
    [ready] = feed(session, ok("r1", {"nodeId": "n1"}), 0.1)
    assert ready.hello.node_id == "n1"
    [started] = feed(session, {"event": "node.invoke.request",
                               "payload": {"id": "inv-1", "nodeId": "n1", "command": "system.notify",
                                           "paramsJSON": "{}"}}, 1.0)
    assert isinstance(started, InvokeStarted) and isinstance(started.request, NodeInvokeRequest)
    assert started.arguments == {} and started.error is None
    rid, actions = session.invoke_result("inv-1", ok=True, payload={"shown": True})
    [frame] = sent(actions)
    assert frame["method"] == "node.invoke.result" and frame["params"]["payloadJSON"] == '{"shown":true}'


def test_malformed_frames_after_ready_are_logged_and_skipped():
    session = make_session(device_token="tok")
    start(session)
    feed(session, ok("r1"), 0.1)
    [problem] = session.receive_data("{nope", 1.0)
    assert isinstance(problem, LogProblem) and session.state is State.READY
    [problem] = feed(session, {"id": "unknown", "ok": True}, 1.1)
    assert isinstance(problem, LogProblem)
