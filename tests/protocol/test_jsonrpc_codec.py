"""Table tests for the documented (JSON-RPC) codec: every payload on the pages, framing, errors."""

from __future__ import annotations

import json

import pytest

from node_agent.errors import ConfigError, GatewayRejected, LocalProtocolError, RemoteProtocolError, Retry
from node_agent.protocol.dialect import ClientInfo, ConnectInputs, Credentials
from node_agent.protocol.documented_models import (
    Agent,
    Chat,
    Cron,
    DevicePairRequested,
    DevicePairResolved,
    ExecApprovalRequested,
    ExecApprovalResolved,
    Health,
    HealthChannel,
    Heartbeat,
    NodePairRequested,
    Presence,
    PresenceNode,
    UpdateAvailable,
)
from node_agent.protocol.jsonrpc import (
    RETRY_BY_CODE,
    JsonRpcDialect,
    build_connect_params,
    classify_connect_error,
    parse_connect_result,
    retry_for,
)
from node_agent.protocol.models import (
    ConnectChallenge,
    ErrorShape,
    Event,
    NodeInvokeCancel,
    NodeInvokeRequest,
    NodePairResolved,
    PairingCode,
    Request,
    Response,
    Shutdown,
    TalkMode,
    Tick,
    UnknownEvent,
    VoiceWakeChanged,
)
from node_agent.secret import Secret
from tests.support.builders import connect_inputs
from tests.support.documented_gateway import DOCUMENTED_EXAMPLES

D = JsonRpcDialect()


def decode(frame: object) -> object:
    return D.decode(json.dumps(frame))


# --- every documented event payload -----------------------------------------------------------

EVENT_TABLE = [
    ("agent", DOCUMENTED_EXAMPLES["agent"][0],
     Agent(run_id="run-123", stream="assistant", data={"type": "text", "text": "Hello! "})),
    ("agent", DOCUMENTED_EXAMPLES["agent"][1],
     Agent(run_id="run-123", stream="tool", data={"phase": "start", "name": "web_search",
                                                  "toolCallId": "call-456", "input": {"query": "OpenClaw"}})),
    ("agent", DOCUMENTED_EXAMPLES["agent"][2], Agent(run_id="run-123", stream="lifecycle", data={"phase": "end"})),
    ("chat", DOCUMENTED_EXAMPLES["chat"][0],
     Chat(session_id="session-123", type="message", message={"role": "assistant", "content": "Hello!"})),
    ("presence", DOCUMENTED_EXAMPLES["presence"][0],
     Presence(nodes=(PresenceNode(id="node-123", name="iPhone", online=True, last_seen=1234567890000),),
              version=42)),
    ("health", DOCUMENTED_EXAMPLES["health"][0],
     Health(status="healthy", version=10, channels=(
         HealthChannel(id="signal", status="connected", account="+1234567890"),
         HealthChannel(id="telegram", status="disconnected", error="Not logged in")))),
    ("tick", DOCUMENTED_EXAMPLES["tick"][0], Tick(ts=1234567890000)),
    ("heartbeat", DOCUMENTED_EXAMPLES["heartbeat"][0], Heartbeat(timestamp=1234567890000)),
    ("shutdown", DOCUMENTED_EXAMPLES["shutdown"][0], Shutdown(reason="Gateway restart requested")),
    ("node.pair.requested", DOCUMENTED_EXAMPLES["node.pair.requested"][0],
     NodePairRequested(node_id="node-123", name="Alice's iPhone", platform="ios", requested_at=1234567890000)),
    ("node.pair.resolved", DOCUMENTED_EXAMPLES["node.pair.resolved"][0],
     NodePairResolved(node_id="node-123", approved=True, token=Secret("device-token-abc123"))),
    ("device.pair.requested", DOCUMENTED_EXAMPLES["device.pair.requested"][0],
     DevicePairRequested(device_id="device-123", name="Desktop Client", challenge="123456")),
    ("device.pair.resolved", DOCUMENTED_EXAMPLES["device.pair.resolved"][0],
     DevicePairResolved(device_id="device-123", approved=True)),
    ("talk.mode", DOCUMENTED_EXAMPLES["talk.mode"][0], TalkMode(mode="push-to-talk", enabled=True)),
    ("voicewake.changed", DOCUMENTED_EXAMPLES["voicewake.changed"][0],
     VoiceWakeChanged(triggers=("hey openclaw", "hello openclaw"))),
    ("exec.approval.requested", DOCUMENTED_EXAMPLES["exec.approval.requested"][0],
     ExecApprovalRequested(request_id="req-123", command="rm -rf /dangerous/path", requested_at=1234567890000,
                           requested_by="agent-run-456")),
    ("exec.approval.resolved", DOCUMENTED_EXAMPLES["exec.approval.resolved"][0],
     ExecApprovalResolved(request_id="req-123", approved=False, reason="User rejected")),
    ("cron", DOCUMENTED_EXAMPLES["cron"][0], Cron(id="daily-report", status="running", started_at=1234567890000)),
    ("update.available", DOCUMENTED_EXAMPLES["update.available"][0],
     UpdateAvailable(version="2026.3.1", release_notes="Bug fixes and improvements", download_url="https://...")),
    ("connect.challenge", DOCUMENTED_EXAMPLES["connect.challenge"][0],
     PairingCode(code="123456", expires_at_ms=1234567890000)),
]


@pytest.mark.parametrize(("name", "payload", "body"), EVENT_TABLE, ids=[f"{n}-{i}" for i, (n, _, _) in
                                                                          enumerate(EVENT_TABLE)])
def test_documented_event_payloads_decode_to_typed_bodies(name, payload, body):
    assert decode({"event": name, "payload": payload}) == Event(name=name, body=body)


def test_the_table_covers_every_documented_example():
    covered = {name for name, _, _ in EVENT_TABLE}
    assert covered == set(DOCUMENTED_EXAMPLES)
    assert sum(len(v) for v in DOCUMENTED_EXAMPLES.values()) == len(EVENT_TABLE)


OTHER_EVENTS = [
    # shared models the pages do not show, in OpenClaw's payload shape
    ({"event": "node.invoke.request", "payload": {"id": "i1", "nodeId": "n", "command": "system.which",
                                                  "paramsJSON": "{\"bins\":[\"sh\"]}", "timeoutMs": 5000}},
     NodeInvokeRequest(id="i1", node_id="n", command="system.which", params_json='{"bins":["sh"]}',
                       timeout_ms=5000)),
    ({"event": "node.invoke.cancel", "payload": {"invokeId": "i1", "nodeId": "n"}},
     NodeInvokeCancel(invoke_id="i1", node_id="n")),
    # leniency: unknown keys ignored, missing payload allowed where nothing is required, OpenClaw's tick
    ({"event": "tick", "payload": {"timestamp": 5, "extra": [1]}}, Tick(ts=5)),
    ({"event": "tick"}, Tick()),
    ({"event": "tick", "payload": {"ts": 7}}, Tick(ts=7)),
    ({"event": "shutdown", "payload": {"reason": "x", "restartExpectedMs": 1500}},
     Shutdown(reason="x", restart_expected_ms=1500)),
    ({"type": "event", "event": "voicewake.changed", "payload": {"triggers": []}}, VoiceWakeChanged()),
    # an 8-digit code is still a code
    ({"event": "connect.challenge", "payload": {"challenge": "12345678"}}, PairingCode(code="12345678")),
    # OpenClaw's challenge on this dialect: decoded as such, the handshake explains
    ({"event": "connect.challenge", "payload": {"nonce": "abc", "ts": 1}}, ConnectChallenge(nonce="abc", ts=1)),
    ({"event": "node.pair.resolved", "payload": {"nodeId": "n", "approved": False}},
     NodePairResolved(node_id="n", approved=False)),
    ({"event": "node.pair.resolved", "payload": {"approved": True, "token": ""}}, NodePairResolved(approved=True)),
    ({"event": "device.pair.resolved", "payload": {"deviceId": "d", "approved": True, "token": "t"}},
     DevicePairResolved(device_id="d", approved=True, token=Secret("t"))),
    ({"event": "something.new", "payload": {"a": 1}}, UnknownEvent(name="something.new", payload={"a": 1})),
    ({"event": "something.new"}, UnknownEvent(name="something.new", payload={})),
]


@pytest.mark.parametrize(("frame", "body"), OTHER_EVENTS)
def test_other_event_frames(frame, body):
    event = decode(frame)
    assert isinstance(event, Event) and event.body == body


def test_a_notification_is_read_as_an_event():
    assert decode({"jsonrpc": "2.0", "method": "tick", "params": {"timestamp": 3}}) == \
        Event(name="tick", body=Tick(ts=3))


def test_tokens_do_not_appear_in_reprs():
    event = decode({"event": "node.pair.resolved", "payload": {"nodeId": "n", "approved": True,
                                                              "token": "sekrit-token"}})
    assert "sekrit-token" not in repr(event)
    assert event.body.token.reveal() == "sekrit-token"


# --- responses and requests -------------------------------------------------------------------

RESPONSES = [
    ({"id": "a", "ok": True, "payload": {"x": 1}}, Response(id="a", ok=True, payload={"x": 1})),
    ({"jsonrpc": "2.0", "id": "a", "ok": True}, Response(id="a", ok=True)),
    ({"id": 7, "ok": True, "payload": 1}, Response(id="7", ok=True, payload=1)),
    ({"id": "a", "ok": False, "error": {"code": "RATE_LIMITED", "message": "slow down", "retryAfterMs": 9000}},
     Response(id="a", ok=False, error=ErrorShape(code="RATE_LIMITED", message="slow down", retry_after_ms=9000))),
    ({"id": "a", "ok": False, "error": {"code": "UNAUTHORIZED", "message": "no", "details": {"k": "v"}}},
     Response(id="a", ok=False, error=ErrorShape(code="UNAUTHORIZED", message="no", details={"k": "v"}))),
    ({"id": "a", "ok": False}, Response(id="a", ok=False, error=ErrorShape(code="UNKNOWN",
                                                                          message="error without details"))),
    # plain JSON-RPC 2.0
    ({"jsonrpc": "2.0", "id": "a", "result": {"y": 2}}, Response(id="a", ok=True, payload={"y": 2})),
    ({"jsonrpc": "2.0", "id": "a", "error": {"code": -32601, "message": "nope"}},
     Response(id="a", ok=False, error=ErrorShape(code="METHOD_NOT_FOUND", message="nope"))),
    ({"jsonrpc": "2.0", "id": "a", "error": {"code": -32603, "message": "boom"}},
     Response(id="a", ok=False, error=ErrorShape(code="INTERNAL_ERROR", message="boom"))),
    ({"jsonrpc": "2.0", "id": "a", "error": {"code": -32000, "message": "srv"}},
     Response(id="a", ok=False, error=ErrorShape(code="INTERNAL_ERROR", message="srv"))),
    ({"jsonrpc": "2.0", "id": "a", "error": {"code": 12, "message": "?"}},
     Response(id="a", ok=False, error=ErrorShape(code="UNKNOWN", message="?"))),
]


@pytest.mark.parametrize(("frame", "response"), RESPONSES)
def test_responses(frame, response):
    assert decode(frame) == response


def test_requests_from_the_gateway_decode():
    assert decode({"jsonrpc": "2.0", "id": 40, "method": "node.subscribe", "params": {"sessionKey": "user:alice"}}) \
        == Request(id="40", method="node.subscribe", params={"sessionKey": "user:alice"})


def test_encode_is_json_rpc_2_and_omits_empty_params():
    assert D.encode(Request(id="r1", method="node.event", params={"event": "x"})) == \
        '{"jsonrpc":"2.0","id":"r1","method":"node.event","params":{"event":"x"}}'
    assert D.encode(Request(id="r2", method="health")) == '{"jsonrpc":"2.0","id":"r2","method":"health"}'


def test_bytes_frames_are_utf8():
    assert D.decode(b'{"event":"tick","payload":{"timestamp":1}}') == Event(name="tick", body=Tick(ts=1))


# --- garbage ----------------------------------------------------------------------------------

GARBAGE = [
    (b"\xff\xfe", "not valid UTF-8"),
    ("not json", "not JSON"),
    ("[1, 2]", "must be a JSON object"),
    ("{}", "neither a request, a response nor an event"),
    ('{"jsonrpc": "1.0", "id": "a", "ok": true}', "jsonrpc"),
    ('{"event": 5}', "non-empty string 'event'"),
    ('{"event": ""}', "non-empty string 'event'"),
    ('{"method": 5, "id": 1}', "non-empty string 'method'"),
    ('{"id": true, "ok": true}', "'id'"),
    ('{"id": null, "ok": false, "error": {"code": -32700}}', "'id'"),
    ('{"id": "a", "ok": "yes"}', "boolean 'ok'"),
    ('{"event": "tick", "payload": [1]}', "payload must be an object"),
    ('{"event": "tick", "payload": {"timestamp": "now"}}', "timestamp"),
    ('{"event": "tick", "payload": {"timestamp": -1}}', "timestamp"),
    ('{"event": "connect.challenge", "payload": {"challenge": 123456}}', "challenge"),
    ('{"event": "connect.challenge", "payload": {"challenge": "12\\u001b[2J"}}', "challenge"),
    ('{"event": "connect.challenge", "payload": {"challenge": "123456", "expiresAt": "soon"}}', "expiresAt"),
    ('{"event": "node.pair.resolved", "payload": {"nodeId": "n"}}', "approved"),
    ('{"event": "node.pair.resolved", "payload": {"approved": true, "token": 42}}', "token"),
    ('{"event": "voicewake.changed", "payload": {"triggers": "hey"}}', "triggers"),
    ('{"event": "agent", "payload": {"runId": "r", "stream": "s", "data": ["ab"]}}', "data"),
    ('{"event": "presence", "payload": {"nodes": [{"name": "x"}]}}', "nodes"),
    ('{"event": "talk.mode", "payload": {"enabled": "yes"}}', "enabled"),
    ('{"event": "device.pair.resolved", "payload": {"deviceId": "d"}}', "approved"),
    ("[" * 100_000, ""),
]


@pytest.mark.parametrize(("data", "fragment"), GARBAGE, ids=range(len(GARBAGE)))
def test_garbage_is_a_one_line_remote_protocol_error(data, fragment):
    with pytest.raises(RemoteProtocolError) as info:
        D.decode(data)
    message = info.value.message
    assert fragment in message
    assert "\n" not in message


@pytest.mark.parametrize("frame", [
    {"event": "node.pair.resolved", "payload": {"nodeId": "n", "approved": "sekrit-value"}},
    {"event": "node.pair.resolved", "payload": {"approved": True, "token": ["sekrit-value"]}},
    {"event": "device.pair.resolved", "payload": {"deviceId": "d", "approved": "sekrit-value", "token": "x"}},
    {"event": "connect.challenge", "payload": {"challenge": "sekrit-value-that-is-too-long"}},
    {"event": "presence", "payload": {"nodes": [{"id": "x", "lastSeen": "sekrit-value"}]}},
    {"event": "tick", "payload": {"timestamp": "sekrit-value"}},
])
def test_error_messages_carry_no_payload_values(frame):
    with pytest.raises(RemoteProtocolError) as info:
        decode(frame)
    assert "sekrit" not in info.value.message


# --- error codes -> retry categories ------------------------------------------------------------

@pytest.mark.parametrize(("code", "sent_device_token", "retry"), [
    ("INVALID_REQUEST", False, Retry.FATAL),
    ("INVALID_REQUEST", True, Retry.FATAL),
    ("UNAUTHORIZED", False, Retry.FATAL),
    ("UNAUTHORIZED", True, Retry.REAUTH),
    ("METHOD_NOT_FOUND", False, Retry.FATAL),
    ("INTERNAL_ERROR", False, Retry.TRANSIENT),
    ("INTERNAL_ERROR", True, Retry.TRANSIENT),
    ("RATE_LIMITED", False, Retry.RATE_LIMITED),
    ("RATE_LIMITED", True, Retry.RATE_LIMITED),
    ("SOMETHING_NEW", False, Retry.TRANSIENT),
])
def test_retry_category_per_code(code, sent_device_token, retry):
    assert retry_for(code, sent_device_token=sent_device_token) is retry


def test_every_documented_code_has_a_category():
    assert set(RETRY_BY_CODE) == {"INVALID_REQUEST", "UNAUTHORIZED", "METHOD_NOT_FOUND", "INTERNAL_ERROR",
                                  "RATE_LIMITED"}


@pytest.mark.parametrize(("error", "sent_device_token", "cls", "retry"), [
    (ErrorShape(code="UNAUTHORIZED", message="invalid token"), False, ConfigError, Retry.FATAL),
    (ErrorShape(code="UNAUTHORIZED", message="invalid device token"), True, GatewayRejected, Retry.REAUTH),
    (ErrorShape(code="INVALID_REQUEST", message="bad"), False, LocalProtocolError, Retry.FATAL),
    (ErrorShape(code="METHOD_NOT_FOUND", message="no connect"), False, GatewayRejected, Retry.FATAL),
    (ErrorShape(code="INTERNAL_ERROR", message="boom"), False, GatewayRejected, Retry.TRANSIENT),
    (ErrorShape(code="RATE_LIMITED", message="slow"), False, GatewayRejected, Retry.RATE_LIMITED),
])
def test_classify_connect_error(error, sent_device_token, cls, retry):
    err = classify_connect_error(error, sent_device_token=sent_device_token)
    assert type(err) is cls and err.retry is retry
    if cls is ConfigError or retry is Retry.REAUTH:
        assert err.hint


def test_rate_limited_carries_the_retry_hint():
    err = classify_connect_error(ErrorShape(code="RATE_LIMITED", message="slow", retry_after_ms=45_000),
                                 sent_device_token=False)
    assert isinstance(err, GatewayRejected) and err.retry_after_s == 45.0


# --- connect params ---------------------------------------------------------------------------

CLIENT = ClientInfo(version="0.1.0", platform="linux", display_name="Kitchen Pi", instance_id="inst-1")


def inputs(**creds: Secret) -> ConnectInputs:
    return connect_inputs(client=CLIENT, signer=None, caps=("voice",), commands=("system.notify",),
                          credentials=Credentials(**creds))


@pytest.mark.parametrize(("creds", "device_token", "auth"), [
    ({}, None, None),
    ({"shared_token": Secret("S")}, None, {"token": "S"}),
    ({"password": Secret("P")}, None, {"password": "P"}),
    ({"bootstrap_token": Secret("B")}, None, {"bootstrapToken": "B"}),
    ({"shared_token": Secret("S"), "password": Secret("P")}, None, {"token": "S"}),
    ({"shared_token": Secret("S")}, Secret("T"), {"deviceToken": "T"}),
])
def test_connect_params_carry_one_credential(creds, device_token, auth):
    params = build_connect_params(inputs(**creds), device_token=device_token)
    assert params.get("auth") == auth
    assert params["role"] == "node"
    assert params["client"] == {"id": "node-host", "version": "0.1.0", "platform": "linux", "mode": "node",
                                "displayName": "Kitchen Pi", "instanceId": "inst-1"}
    assert params["caps"] == ["voice"] and params["commands"] == ["system.notify"]
    assert None not in json.loads(json.dumps(params)).values()


def test_connect_result_is_read_leniently():
    hello = parse_connect_result({"type": "hello-ok", "nodeId": "n1", "auth": {"deviceToken": "T"},
                                  "policy": {"tickIntervalMs": 5000}})
    assert hello.node_id == "n1" and hello.device_token == Secret("T") and hello.policy.tick_interval_ms == 5000
    assert parse_connect_result({"token": "T2"}).device_token == Secret("T2")
    assert parse_connect_result(None).device_token is None
    assert parse_connect_result(True).policy.tick_interval_ms == 30_000
