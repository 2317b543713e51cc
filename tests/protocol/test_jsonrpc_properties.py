"""Property tests: no input makes either decoder raise anything but RemoteProtocolError, and no
input knocks a READY session over. Run against BOTH dialects."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node_agent.errors import RemoteProtocolError
from node_agent.protocol.actions import (
    CancelInvoke,
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
    SurfaceApproved,
)
from node_agent.protocol.dialect import ClientInfo
from node_agent.protocol.jsonrpc import JsonRpcDialect
from node_agent.protocol.openclaw import OpenClawDialect
from node_agent.protocol.session import Session, State
from node_agent.secret import Secret
from tests.support.builders import connect_inputs
from tests.support.documented_gateway import DOCUMENTED_EXAMPLES

DIALECTS = [JsonRpcDialect(), OpenClawDialect()]
PROPERTY_SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --- strategies -------------------------------------------------------------------------------

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=25,
)

EVENT_NAMES = sorted(set(DOCUMENTED_EXAMPLES) | {
    "node.invoke.request", "node.invoke.cancel", "node.invoke.input", "voicewake.routing.changed", "talk.event"})
#: Every key the two dialects' payload models read, so typed structuring gets real exercise.
FIELD_NAMES = sorted({
    "timestamp", "ts", "challenge", "expiresAt", "nonce", "nodeId", "approved", "token", "decision", "requestId",
    "triggers", "mode", "enabled", "phase", "reason", "restartExpectedMs", "nodes", "version", "status",
    "channels", "runId", "stream", "data", "sessionId", "type", "message", "id", "name", "online", "lastSeen",
    "command", "paramsJSON", "params", "timeoutMs", "idempotencyKey", "invokeId", "deviceId", "platform",
    "requestedAt", "requestedBy", "startedAt", "releaseNotes", "downloadUrl", "account", "error",
})
payloads = json_values | st.dictionaries(st.sampled_from(FIELD_NAMES), json_values, max_size=8)
# payloads that look like the documented examples with some values swapped for anything
mutated_examples = st.sampled_from([(n, p) for n, ps in DOCUMENTED_EXAMPLES.items() for p in ps]).flatmap(
    lambda item: st.builds(
        lambda overrides: (item[0], {**item[1], **overrides}),
        st.dictionaries(st.sampled_from(sorted(item[1])), json_values, max_size=3)))

ids = st.text(max_size=8) | st.integers() | json_scalars
event_frames = st.one_of(
    st.fixed_dictionaries({"event": st.sampled_from(EVENT_NAMES) | st.text(max_size=10)},
                          optional={"payload": payloads, "type": st.just("event") | json_scalars,
                                    "seq": json_values, "stateVersion": json_values,
                                    "jsonrpc": st.just("2.0") | json_scalars}),
    mutated_examples.map(lambda np: {"event": np[0], "payload": np[1]}),
    mutated_examples.map(lambda np: {"type": "event", "event": np[0], "payload": np[1]}),
)
response_frames = st.fixed_dictionaries(
    {"id": ids}, optional={"ok": st.booleans() | json_scalars, "payload": json_values, "result": json_values,
                           "error": json_values | st.dictionaries(st.sampled_from(
                               ["code", "message", "details", "retryable", "retryAfterMs", "data"]), json_values),
                           "type": st.just("res") | json_scalars, "jsonrpc": st.just("2.0") | json_scalars})
request_frames = st.fixed_dictionaries(
    {"method": st.text(max_size=10) | json_scalars},
    optional={"id": ids, "params": json_values, "type": st.just("req") | json_scalars,
              "jsonrpc": st.just("2.0") | json_scalars})
frames = st.one_of(event_frames, response_frames, request_frames,
                   st.dictionaries(st.text(max_size=8), json_values, max_size=6), json_values)
texts = frames.map(lambda f: json.dumps(f))
wire = texts | texts.map(str.encode) | st.binary(max_size=200) | st.text(max_size=200)


def _decode_or_remote_error(dialect: Any, data: str | bytes) -> None:
    try:
        dialect.decode(data)
    except RemoteProtocolError as exc:
        assert "\n" not in exc.message


# --- decode -----------------------------------------------------------------------------------

@pytest.mark.parametrize("dialect", DIALECTS, ids=lambda d: d.name)
@PROPERTY_SETTINGS
@given(data=st.binary(max_size=300))
def test_arbitrary_bytes_decode_or_raise_remote_protocol_error(dialect, data):
    _decode_or_remote_error(dialect, data)


@pytest.mark.parametrize("dialect", DIALECTS, ids=lambda d: d.name)
@PROPERTY_SETTINGS
@given(data=wire)
def test_arbitrary_json_decode_or_raise_remote_protocol_error(dialect, data):
    _decode_or_remote_error(dialect, data)


@PROPERTY_SETTINGS
@given(frame=event_frames)
def test_jsonrpc_decode_error_messages_never_quote_string_values(frame):
    # Plant a marker in every string value: no decode error may repeat it (tokens live in values).
    def plant(value: Any) -> Any:
        if isinstance(value, str):
            return "\x00MARK" + value
        if isinstance(value, list):
            return [plant(v) for v in value]
        if isinstance(value, dict):
            return {k: plant(v) for k, v in value.items()}
        return value
    payload = frame.get("payload")
    if payload is None:
        return
    try:
        JsonRpcDialect().decode(json.dumps({"event": frame["event"], "payload": plant(payload)}))
    except RemoteProtocolError as exc:
        assert "MARK" not in exc.message


# --- sessions ---------------------------------------------------------------------------------

INPUTS = connect_inputs(client=ClientInfo(version="0.1.0", platform="linux"), signer=None, caps=(), commands=(),
                        device_token=Secret("tok"))
OPENCLAW_CHALLENGE = json.dumps({"type": "event", "event": "connect.challenge",
                                 "payload": {"nonce": "n-1", "ts": 1_800_000_000_000}})


def ready_session(dialect: Any) -> Session:
    counter = itertools.count(1)
    session = Session(dialect, INPUTS, new_id=lambda: f"r{next(counter)}")
    actions = session.start(0.0)
    if isinstance(dialect, OpenClawDialect):
        actions = session.receive_data(OPENCLAW_CHALLENGE, 0.0)
        hello = json.dumps({"type": "res", "id": "r1", "ok": True, "payload": {"type": "hello-ok"}})
    else:
        hello = json.dumps({"id": "r1", "ok": True, "payload": {"type": "hello-ok"}})
    assert [a.label for a in actions if isinstance(a, Send)] == ["connect"]
    assert any(isinstance(a, Ready) for a in session.receive_data(hello, 0.1))
    assert session.state is State.READY
    return session


def response_to(dialect: Any, rid: str) -> str:
    frame = {"id": rid, "ok": True, "payload": {"ok": True}}
    if isinstance(dialect, OpenClawDialect):
        frame["type"] = "res"
    return json.dumps(frame)


READY_ACTIONS = (LogProblem, Dispatch, InvokeStarted, SurfaceApproved, ResponseReceived, CancelInvoke)


@pytest.mark.parametrize("dialect", DIALECTS, ids=lambda d: d.name)
@PROPERTY_SETTINGS
@given(data=st.lists(wire, min_size=1, max_size=5))
def test_a_ready_session_survives_anything(dialect, data):
    session = ready_session(dialect)
    for i, item in enumerate(data):
        actions = session.receive_data(item, 1.0 + i)
        assert all(isinstance(a, READY_ACTIONS) for a in actions), actions
        assert session.state is State.READY
    # still usable: a request goes out and its answer is matched
    rid, actions = session.node_event("node.presence.alive", {"trigger": "manual"})
    assert [a.label for a in actions] == ["node.event"]
    [answer] = session.receive_data(response_to(dialect, rid), 10.0)
    assert isinstance(answer, ResponseReceived) and answer.method == "node.event"


@pytest.mark.parametrize("dialect", DIALECTS, ids=lambda d: d.name)
@PROPERTY_SETTINGS
@given(data=st.binary(max_size=200))
def test_garbage_bytes_in_ready_give_at_most_one_log_problem(dialect, data):
    session = ready_session(dialect)
    actions = session.receive_data(data, 1.0)
    assert len(actions) <= 1 and all(isinstance(a, READY_ACTIONS) for a in actions)
    assert session.state is State.READY


HANDSHAKE_ACTIONS = (Send, Ready, StoreDeviceToken, ForgetDeviceToken, PairingPending, LogProblem, Close)


@pytest.mark.parametrize("dialect", DIALECTS, ids=lambda d: d.name)
@PROPERTY_SETTINGS
@given(data=st.lists(wire, min_size=1, max_size=6))
def test_the_handshake_survives_anything(dialect, data):
    # Pre-READY input goes to the dialect's handshake: it may close, but never raise.
    counter = itertools.count(1)
    session = Session(dialect, INPUTS, new_id=lambda: f"r{next(counter)}")
    session.start(0.0)
    for i, item in enumerate(data):
        for action in session.receive_data(item, 0.1 * (i + 1)):
            assert isinstance(action, HANDSHAKE_ACTIONS + READY_ACTIONS)
        deadline = session.deadline()
        if deadline is not None:
            session.on_timer(deadline)
