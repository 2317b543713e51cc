"""Table tests of the OpenClaw dialect: decoding real frames, signing, connect params, and the
mapping of every handshake refusal the live gateway produced (openclaw-gateway-live.md §8)."""

from __future__ import annotations

import json
from pathlib import Path

import attrs
import pytest

from node_agent.errors import (
    ConfigError,
    GatewayRejected,
    IdentityError,
    LocalProtocolError,
    PairingRequired,
    RemoteProtocolError,
    Retry,
)
from node_agent.identity import DeviceIdentity
from node_agent.protocol import (
    ClientInfo,
    ConnectChallenge,
    ConnectInputs,
    Credentials,
    ErrorShape,
    GenericEvent,
    NodeInvokeCancel,
    NodeInvokeRequest,
    NodePairResolved,
    OpenClawDialect,
    Response,
    Tick,
    UnknownEvent,
    VoiceWakeChanged,
)
from node_agent.protocol.openclaw import (
    build_connect_params,
    classify_connect_error,
    parse_hello,
)
from node_agent.protocol.signing import device_auth_payload
from node_agent.secret import Secret
from tests.support.builders import connect_inputs

VECTORS = Path(__file__).parent / "vectors"
DIALECT = OpenClawDialect()


def live_frames(direction: str):
    for line in (VECTORS / "openclaw-live-frames.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row.get("dir") == direction:
            yield row["frame"]


def inputs(**creds) -> ConnectInputs:
    return connect_inputs(client=ClientInfo(version="0.1.0", platform="linux", device_family="Linux",
                                            display_name="kitchen", instance_id="inst-1"),
                          caps=("device", "system"), commands=("device.info", "system.notify"),
                          credentials=Credentials(**creds))


def test_every_recorded_gateway_frame_decodes():
    kinds = {}
    for frame in live_frames("<<<"):
        decoded = DIALECT.decode(json.dumps(frame))
        kinds[type(getattr(decoded, "body", decoded)).__name__] = True
    assert {"ConnectChallenge", "NodeInvokeRequest", "NodeInvokeCancel", "VoiceWakeChanged", "Tick",
            "NodePairResolved", "Response", "GenericEvent"} <= set(kinds)


def test_recorded_invoke_request_keeps_params_json_as_sent():
    frame = next(f for f in live_frames("<<<") if f.get("event") == "node.invoke.request")
    body = DIALECT.decode(json.dumps(frame)).body
    assert isinstance(body, NodeInvokeRequest)
    assert body.params_json == frame["payload"]["paramsJSON"]
    assert body.timeout_ms == frame["payload"]["timeoutMs"]
    assert body.node_id == frame["payload"]["nodeId"]


@pytest.mark.parametrize("text, body", [
    ('{"type":"event","event":"tick","payload":{"ts":1795316264458},"seq":1}', Tick(ts=1795316264458)),
    ('{"type":"event","event":"voicewake.changed","payload":{"triggers":["openclaw","computer"]}}',
     VoiceWakeChanged(triggers=("openclaw", "computer"))),
    ('{"type":"event","event":"node.invoke.cancel","payload":{"invokeId":"i1","nodeId":"n"}}',
     NodeInvokeCancel(invoke_id="i1", node_id="n")),
    ('{"type":"event","event":"node.pair.resolved","payload":{"requestId":"r","nodeId":"n","decision":"approved","ts":1}}',
     NodePairResolved(request_id="r", node_id="n", decision="approved", approved=True)),
    ('{"type":"event","event":"health","payload":{"ok":true}}', GenericEvent(name="health", payload={"ok": True})),
    ('{"type":"event","event":"brand.new.thing","payload":[1,2]}', UnknownEvent(name="brand.new.thing", payload=[1, 2])),
])
def test_event_table(text, body):
    assert DIALECT.decode(text).body == body


@pytest.mark.parametrize("text, fragment", [
    ("not json", "not JSON"),
    (b"\xff\xfe", "UTF-8"),
    ("[1,2]", "JSON object"),
    ('{"event":"tick"}', "no 'type'"),
    ('{"type":"bogus"}', "unknown frame type"),
    ('{"type":"event","event":""}', "non-empty"),
    ('{"type":"event","event":"tick","seq":-1}', "seq"),
    ('{"type":"event","event":"tick","payload":{"ts":"soon"}}', "tick"),
    ('{"type":"event","event":"node.invoke.request","payload":{"id":"x"}}', "node.invoke.request"),
    ('{"type":"event","event":"voicewake.changed","payload":{"triggers":"openclaw"}}', "voicewake.changed"),
    ('{"type":"res","id":5,"ok":true}', "response frame"),
])
def test_malformed_frames_are_remote_protocol_errors(text, fragment):
    with pytest.raises(RemoteProtocolError) as info:
        DIALECT.decode(text)
    assert fragment in info.value.message


def test_signature_payload_matches_the_live_example():
    # openclaw-gateway-live.md §4.2: the exact string the gateway verified.
    assert device_auth_payload(
        version=3, device_id="e903992ecc6391a20ce476c65602351e3e57c4cb35e6fe804f18ea020f95e4f2",
        client_id="node-host", client_mode="node", role="node", scopes=(), signed_at_ms=1795316234670,
        token="test-shared-token-123", nonce="d0480e7b-f573-4944-b452-e467d4794b69", platform="linux",
        device_family=None,
    ) == ("v3|e903992ecc6391a20ce476c65602351e3e57c4cb35e6fe804f18ea020f95e4f2|node-host|node|node||1795316234670|"
          "test-shared-token-123|d0480e7b-f573-4944-b452-e467d4794b69|linux|")


def test_signature_metadata_lowercases_ascii_only():
    payload = device_auth_payload(version=3, device_id="d", client_id="node-host", client_mode="node", role="node",
                                  scopes=("a", "b"), signed_at_ms=1, token="", nonce="n",
                                  platform=" Linux ", device_family="ÉCLAIR Pi")
    assert payload == "v3|d|node-host|node|node|a,b|1||n|linux|Éclair pi"
    assert device_auth_payload(version=2, device_id="d", client_id="c", client_mode="m", role="r", scopes=(),
                               signed_at_ms=1, token="t", nonce="n") == "v2|d|c|m|r||1|t|n"


def test_device_id_is_sha256_of_raw_public_key():
    import base64
    import hashlib

    identity = DeviceIdentity.generate()
    raw = base64.urlsafe_b64decode(identity.public_key + "=")
    assert len(raw) == 32 and "=" not in identity.public_key
    assert identity.device_id == hashlib.sha256(raw).hexdigest()
    assert identity.device_id not in repr(identity) and "key" not in repr(identity).lower().replace("device_id", "")


def test_connect_params_are_closed_and_never_null():
    params = build_connect_params(inputs(shared_token=Secret("shared-secret-value")),
                                  ConnectChallenge(nonce="n-1", ts=123))
    assert set(params) <= {"minProtocol", "maxProtocol", "client", "caps", "commands", "permissions", "pathEnv",
                           "role", "scopes", "device", "auth", "locale", "userAgent"}
    assert params["client"] == {"id": "node-host", "version": "0.1.0", "platform": "linux", "mode": "node",
                                "displayName": "kitchen", "deviceFamily": "Linux", "instanceId": "inst-1"}
    assert (params["role"], params["scopes"], params["minProtocol"], params["maxProtocol"]) == ("node", [], 3, 4)
    assert params["auth"] == {"token": "shared-secret-value"}
    assert params["device"]["signedAt"] == 123 and params["device"]["nonce"] == "n-1"
    assert "null" not in json.dumps(params)


@pytest.mark.parametrize("creds, auth", [
    (dict(device_token=Secret("dev-token-123456"), shared_token=Secret("shared-1234567")), {"deviceToken": "dev-token-123456"}),
    (dict(bootstrap_token=Secret("boot-12345678"), shared_token=Secret("shared-1234567")), {"bootstrapToken": "boot-12345678"}),
    (dict(shared_token=Secret("shared-1234567")), {"token": "shared-1234567"}),
    (dict(password=Secret("hunter2-hunter2")), {"password": "hunter2-hunter2"}),
    (dict(), None),
])
def test_one_credential_most_specific_first(creds, auth):
    params = build_connect_params(inputs(**creds), ConnectChallenge(nonce="n", ts=1))
    assert params.get("auth") == auth


def _err(top, message, **details):
    return ErrorShape(code=top, message=message, details=details)


# Every refusal observed live (openclaw-gateway-live.md §8), and what the agent must do next.
HANDSHAKE_ERRORS = [
    ("unknown device", _err("NOT_PAIRED", "pairing required: device is not approved yet", code="PAIRING_REQUIRED",
                            reason="not-paired", requestId="r1"), PairingRequired, Retry.PAIRING_PENDING),
    ("platform changed", _err("NOT_PAIRED", "pairing required: device identity changed and must be re-approved",
                              code="PAIRING_REQUIRED", reason="metadata-upgrade", requestId="r2"),
     PairingRequired, Retry.PAIRING_PENDING),
    ("bad signature", _err("INVALID_REQUEST", "device signature invalid", code="DEVICE_AUTH_SIGNATURE_INVALID"),
     GatewayRejected, Retry.TRANSIENT),
    ("signature expired", _err("INVALID_REQUEST", "device signature expired", code="DEVICE_AUTH_SIGNATURE_EXPIRED"),
     GatewayRejected, Retry.TRANSIENT),
    ("wrong nonce", _err("INVALID_REQUEST", "device nonce mismatch", code="DEVICE_AUTH_NONCE_MISMATCH"),
     GatewayRejected, Retry.TRANSIENT),
    ("wrong device token", _err("INVALID_REQUEST", "unauthorized: device token mismatch (rotate/reissue device token)",
                                code="AUTH_DEVICE_TOKEN_MISMATCH", recommendedNextStep="update_auth_credentials"),
     GatewayRejected, Retry.REAUTH),
    ("no auth", _err("INVALID_REQUEST", "unauthorized: gateway token missing (provide gateway auth token)",
                     code="AUTH_TOKEN_MISSING"), ConfigError, Retry.FATAL),
    ("wrong shared token", _err("INVALID_REQUEST", "unauthorized: gateway token mismatch", code="AUTH_TOKEN_MISMATCH"),
     ConfigError, Retry.FATAL),
    ("no device identity", _err("NOT_PAIRED", "device identity required", code="DEVICE_IDENTITY_REQUIRED"),
     LocalProtocolError, Retry.FATAL),
    ("unknown client id", _err("INVALID_REQUEST",
                               "invalid connect params: at /client/id: must be equal to one of the allowed values"),
     LocalProtocolError, Retry.FATAL),
    ("extra connect key", _err("INVALID_REQUEST", "invalid connect params: at root: unexpected property 'extraField'"),
     LocalProtocolError, Retry.FATAL),
    ("protocol 5", _err("INVALID_REQUEST", "protocol mismatch", code="PROTOCOL_MISMATCH", expectedProtocol=4),
     GatewayRejected, Retry.FATAL),
    # 2026.2.26 - 2026.4.29 (dist): no detail code, only {expectedProtocol: 3}.
    ("protocol, no detail code", ErrorShape(code="INVALID_REQUEST", message="protocol mismatch",
                                            details={"expectedProtocol": 3}), GatewayRejected, Retry.FATAL),
    ("device id mismatch", _err("INVALID_REQUEST", "device identity mismatch", code="DEVICE_AUTH_DEVICE_ID_MISMATCH"),
     IdentityError, Retry.FATAL),
    ("rate limited", ErrorShape(code="INVALID_REQUEST", message="too many attempts", retryable=True,
                                retry_after_ms=60_000, details={"code": "AUTH_RATE_LIMITED"}),
     GatewayRejected, Retry.RATE_LIMITED),
    ("starting", ErrorShape(code="UNAVAILABLE", message="gateway starting; retry shortly", retryable=True,
                            retry_after_ms=500, details={"reason": "startup-sidecars"}),
     GatewayRejected, Retry.STARTING),
    ("setup code used", _err("INVALID_REQUEST", "bootstrap token invalid", code="AUTH_BOOTSTRAP_TOKEN_INVALID"),
     GatewayRejected, Retry.FATAL),
    ("scope mismatch", _err("INVALID_REQUEST", "unauthorized: device token scope mismatch", code="AUTH_SCOPE_MISMATCH"),
     GatewayRejected, Retry.FATAL),
]


@pytest.mark.parametrize("case, error, kind, retry", HANDSHAKE_ERRORS, ids=[c[0] for c in HANDSHAKE_ERRORS])
def test_handshake_error_table(case, error, kind, retry):
    result = classify_connect_error(error, inputs(shared_token=Secret("shared-1234567")))
    assert type(result) is kind
    assert result.retry is retry
    if retry is Retry.FATAL:
        assert result.message  # a person gets a sentence, and for config problems a fix
    if kind is ConfigError:
        assert "OPENCLAW_GATEWAY_TOKEN" in (result.hint or "")


def test_a_refused_v3_signature_asks_for_v2_once():
    bad = _err("INVALID_REQUEST", "device signature invalid", code="DEVICE_AUTH_SIGNATURE_INVALID")
    assert classify_connect_error(bad, inputs()).signature_version == 2
    v2 = attrs.evolve(inputs(), signature_version=2)
    assert classify_connect_error(bad, v2).signature_version is None  # v2 refused too: nothing older to try


def test_a_scope_mismatch_names_the_role_and_scopes_not_the_shared_token():
    error = classify_connect_error(_err("INVALID_REQUEST", "unauthorized: device token scope mismatch",
                                        code="AUTH_SCOPE_MISMATCH"),
                                   attrs.evolve(inputs(), role="operator", scopes=("operator.read", "operator.talk")))
    assert "operator role" in error.hint and "operator.read, operator.talk" in error.hint
    assert "OPENCLAW_GATEWAY_TOKEN" not in error.hint


def test_rate_limit_and_starting_carry_the_gateway_hint():
    starting = classify_connect_error({c[0]: c[1] for c in HANDSHAKE_ERRORS}["starting"], inputs())
    assert starting.retry_after_s == 0.5


def test_protocol_mismatch_says_what_to_upgrade():
    error = classify_connect_error(_err("INVALID_REQUEST", "protocol mismatch", code="PROTOCOL_MISMATCH",
                                        expectedProtocol=5), inputs())
    assert "protocol 5" in error.hint and "3-4" in error.hint


def test_recorded_hello_ok_parses():
    hello = parse_hello(json.loads((VECTORS / "hello-ok-node.json").read_text()))
    assert hello.protocol == 4 and hello.server_version == "2026.9.6"
    assert hello.policy.tick_interval_ms == 30_000 and hello.policy.max_payload == 26_214_400
    assert hello.device_token is not None and hello.role == "node"
    assert "node.invoke.result" in hello.methods and "tick" in hello.events
    assert hello.device_token.reveal() not in repr(hello)


def test_hello_ok_tolerates_missing_and_odd_fields():
    hello = parse_hello({"type": "hello-ok", "policy": {"tickIntervalMs": "fast"}, "auth": None, "newThing": 1})
    assert hello.policy.tick_interval_ms == 30_000 and hello.device_token is None


def test_response_error_decoding():
    response = DIALECT.decode('{"type":"res","id":"r","ok":false,"error":{"code":"UNAVAILABLE","message":"m",'
                              '"retryable":true,"retryAfterMs":500,"details":{"code":"PAIRING_CHANGED"}}}')
    assert isinstance(response, Response) and not response.ok
    assert response.error.detail_code == "PAIRING_CHANGED" and response.error.retry_after_ms == 500


def test_error_details_never_keep_credentials():
    error = classify_connect_error(_err("INVALID_REQUEST", "x", code="SOMETHING", token="leaky-token-value"),
                                   inputs())
    assert "leaky-token-value" not in repr(error.details)
