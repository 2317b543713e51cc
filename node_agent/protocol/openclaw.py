"""The OpenClaw dialect: what the real gateway (npm ``openclaw``) speaks.

Frames are ``{"type": "req"|"res"|"event", ...}``. The gateway opens with a
``connect.challenge {nonce, ts}`` event; we answer with a signed ``connect`` request (Ed25519
over the v3 device-auth payload, ``signedAt`` = the challenge ``ts`` so our clock never
matters) and get ``hello-ok`` or an error that says what is missing. The gateway's schemas are
closed, so outbound params carry only known keys and omit what is unset.

Handshake errors are mapped here to the agent's typed errors, each with the retry category the
supervisor acts on (see :func:`classify_connect_error`).
"""

from __future__ import annotations

import json
import sys
from typing import Any, Callable, Mapping

from ..errors import (
    ConfigError,
    ConnectionLost,
    GatewayRejected,
    IdentityError,
    LocalProtocolError,
    NodeAgentError,
    PairingRequired,
    RemoteProtocolError,
    Retry,
)
from ..secret import Secret
from . import convert
from .actions import (
    Action,
    Close,
    ForgetDeviceToken,
    HandshakeAction,
    HandshakeStep,
    HoldUntilReady,
    LogProblem,
    PairingPending,
    Ready,
    Send,
    Step,
    StoreDeviceToken,
)
from .dialect import ConnectInputs, client_object
from .models import (
    ConnectChallenge,
    ErrorShape,
    Event,
    EventBody,
    GenericEvent,
    HelloOk,
    NodeInvokeCancel,
    NodeInvokeRequest,
    NodePairResolved,
    Policy,
    Request,
    Response,
    Shutdown,
    StateVersion,
    TalkMode,
    Tick,
    UnknownEvent,
    VoiceWakeChanged,
    VoiceWakeRoutingChanged,
)
from .signing import device_auth_payload

#: The gateway's pre-auth handshake timeout is 15 s; waiting longer for a challenge is pointless.
HANDSHAKE_TIMEOUT_S = 15.0

_converter = convert.make_converter()

_TYPED_EVENTS: dict[str, type[EventBody]] = {
    cls.wire_name: cls
    for cls in (ConnectChallenge, Tick, Shutdown, NodeInvokeRequest, NodeInvokeCancel, VoiceWakeChanged,
                VoiceWakeRoutingChanged, TalkMode)
}

#: Events we know and route by name, but whose payload we keep as a dict.
_GENERIC_EVENTS = frozenset({
    "presence", "health", "heartbeat", "chat", "agent", "cron", "update.available",
    "node.invoke.input", "node.pair.requested",
    "device.pair.requested", "device.pair.resolved", "exec.approval.requested",
    "exec.approval.resolved", "talk.event",
})


class OpenClawDialect:
    name = "openclaw"
    client_heartbeat_s = None  # liveness is the gateway's ticks plus WebSocket pings
    wake_words_on_connect = True  # "voicewake.changed ... also pushed right after a node connects"

    def subscription(self, session_key: str, subscribe: bool) -> tuple[str, dict]:
        # No subscribe RPC here: a node asks through node.event chat.subscribe / chat.unsubscribe.
        event = "chat.subscribe" if subscribe else "chat.unsubscribe"
        return "node.event", {"event": event, "payloadJSON": json.dumps({"sessionKey": session_key})}

    # -- framing -------------------------------------------------------------------------------

    def decode(self, data: str | bytes) -> Request | Response | Event:
        obj = convert.load_object(data)
        kind = obj.get("type")
        if kind == "event":
            return self._decode_event(obj)
        if kind == "res":
            return _decode_response(obj)
        if kind == "req":
            rid, method = obj.get("id"), obj.get("method")
            if not isinstance(rid, str) or not rid or not isinstance(method, str) or not method:
                raise RemoteProtocolError("request frame needs a non-empty string id and method")
            return Request(id=rid, method=method, params=obj.get("params"))
        raise RemoteProtocolError(f"unknown frame type {kind!r}" if kind is not None else "frame has no 'type'")

    def encode(self, request: Request) -> str:
        frame: dict[str, Any] = {"type": "req", "id": request.id, "method": request.method}
        if request.params is not None:
            frame["params"] = request.params
        return json.dumps(frame, separators=(",", ":"), ensure_ascii=False)

    def _decode_event(self, obj: Mapping[str, Any]) -> Event:
        name = obj.get("event")
        if not isinstance(name, str) or not name:
            raise RemoteProtocolError("event frame needs a non-empty string 'event'")
        seq = obj.get("seq")
        if seq is not None and (isinstance(seq, bool) or not isinstance(seq, int) or seq < 0):
            raise RemoteProtocolError(f"{name}: 'seq' must be a non-negative integer")
        sv = obj.get("stateVersion")
        state_version = None
        if isinstance(sv, Mapping):
            state_version = StateVersion(
                presence=sv.get("presence") if isinstance(sv.get("presence"), int) else None,
                health=sv.get("health") if isinstance(sv.get("health"), int) else None,
            )
        return Event(name=name, body=decode_event_body(name, obj.get("payload")), seq=seq,
                     state_version=state_version)

    # -- handshake -----------------------------------------------------------------------------

    def handshake(self, inputs: ConnectInputs, new_id: Callable[[], str]) -> "OpenClawHandshake":
        return OpenClawHandshake(inputs, new_id)


def decode_event_body(name: str, payload: Any) -> EventBody:
    cls = _TYPED_EVENTS.get(name)
    if cls is not None:
        return convert.structure(_converter, payload if payload is not None else {}, cls, name)
    if name == "node.pair.resolved":
        if not isinstance(payload, Mapping):
            raise RemoteProtocolError("node.pair.resolved: payload must be an object")
        decision = payload.get("decision")
        return NodePairResolved(
            request_id=_opt_str(payload.get("requestId")),
            node_id=_opt_str(payload.get("nodeId")),
            decision=_opt_str(decision),
            approved=decision == "approved",
        )
    if name in _GENERIC_EVENTS:
        return GenericEvent(name=name, payload=payload)
    return UnknownEvent(name=name, payload=payload)


def _opt_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def decode_error_shape(raw: Any) -> ErrorShape:
    if not isinstance(raw, Mapping):
        return ErrorShape(code="UNKNOWN", message="error without details")
    details = raw.get("details")
    retry_after = raw.get("retryAfterMs")
    return ErrorShape(
        code=str(raw.get("code") or "UNKNOWN"),
        message=str(raw.get("message") or ""),
        details=dict(details) if isinstance(details, Mapping) else {},
        retryable=raw.get("retryable") if isinstance(raw.get("retryable"), bool) else None,
        retry_after_ms=retry_after if isinstance(retry_after, int) and not isinstance(retry_after, bool) else None,
    )


def _decode_response(obj: Mapping[str, Any]) -> Response:
    rid, ok = obj.get("id"), obj.get("ok")
    if not isinstance(rid, str) or not isinstance(ok, bool):
        raise RemoteProtocolError("response frame needs a string 'id' and a boolean 'ok'")
    return Response(id=rid, ok=ok, payload=obj.get("payload"),
                    error=None if ok else decode_error_shape(obj.get("error")))


def parse_hello(payload: Any) -> HelloOk:
    """Lenient: ``hello-ok`` grows optional fields every release; we read what we use."""
    if not isinstance(payload, Mapping):
        raise RemoteProtocolError("hello-ok payload must be an object")
    auth = payload.get("auth") if isinstance(payload.get("auth"), Mapping) else {}
    policy_raw = payload.get("policy") if isinstance(payload.get("policy"), Mapping) else {}
    server = payload.get("server") if isinstance(payload.get("server"), Mapping) else {}
    features = payload.get("features") if isinstance(payload.get("features"), Mapping) else {}

    def _int(value: Any, default: int | None) -> int | None:
        return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else default

    token = auth.get("deviceToken")
    return HelloOk(
        protocol=_int(payload.get("protocol"), None),
        server_version=_opt_str(server.get("version")),
        conn_id=_opt_str(server.get("connId")),
        role=_opt_str(auth.get("role")),
        scopes=tuple(s for s in auth.get("scopes") or () if isinstance(s, str)),
        device_token=Secret(token) if isinstance(token, str) and token else None,
        auth_method=_opt_str(auth.get("method")),
        policy=Policy(
            max_payload=_int(policy_raw.get("maxPayload"), 25 * 1024 * 1024),
            max_buffered_bytes=_int(policy_raw.get("maxBufferedBytes"), None),
            tick_interval_ms=_int(policy_raw.get("tickIntervalMs"), 30_000),
        ),
        # Interned: every connection gets the same ~530 names; one copy per process, not per agent.
        methods=frozenset(sys.intern(m) for m in features.get("methods") or () if isinstance(m, str)),
        events=frozenset(sys.intern(e) for e in features.get("events") or () if isinstance(e, str)),
        snapshot=dict(payload["snapshot"]) if isinstance(payload.get("snapshot"), Mapping) else {},
    )


# --- handshake --------------------------------------------------------------------------------


def build_connect_params(inputs: ConnectInputs, challenge: ConnectChallenge) -> dict[str, Any]:
    """The exact ``connect`` params: closed schema, so only known keys and no ``null``."""
    client = inputs.client
    client_obj = client_object(client)

    creds = inputs.credentials
    auth: dict[str, str] = {}
    # One credential, most specific first (what the Windows node does): a stored device token
    # proves this device; a setup code's bootstrap token pairs it; the shared token or password
    # asks for pairing. The signature binds whichever token we send.
    if creds.device_token:
        auth["deviceToken"] = creds.device_token.reveal()
    elif creds.bootstrap_token:
        auth["bootstrapToken"] = creds.bootstrap_token.reveal()
    elif creds.shared_token:
        auth["token"] = creds.shared_token.reveal()
    if creds.password and not auth:
        auth["password"] = creds.password.reveal()
    signed_token = auth.get("token") or auth.get("deviceToken") or auth.get("bootstrapToken") or ""

    params: dict[str, Any] = {
        "minProtocol": inputs.min_protocol,
        "maxProtocol": inputs.max_protocol,
        "client": client_obj,
        "role": inputs.role,
        "scopes": list(inputs.scopes),
        "caps": list(inputs.caps),
        "commands": list(inputs.commands),
    }
    if inputs.permissions:
        params["permissions"] = dict(inputs.permissions)
    if auth:
        params["auth"] = auth
    if inputs.locale:
        params["locale"] = inputs.locale
    if inputs.user_agent:
        params["userAgent"] = inputs.user_agent
    if inputs.signer is not None:
        signer = inputs.signer
        payload = device_auth_payload(
            version=inputs.signature_version, device_id=signer.device_id, client_id=client.id,
            client_mode=client.mode, role=inputs.role, scopes=inputs.scopes, signed_at_ms=challenge.ts,
            token=signed_token, nonce=challenge.nonce, platform=client.platform,
            device_family=client.device_family,
        )
        params["device"] = {"id": signer.device_id, "publicKey": signer.public_key,
                            "signature": signer.sign(payload), "signedAt": challenge.ts,
                            "nonce": challenge.nonce}
    return params


def classify_connect_error(error: ErrorShape, inputs: ConnectInputs) -> NodeAgentError:
    """Map a refused ``connect`` to a typed error whose retry category drives the supervisor."""
    code, detail = error.code, error.detail_code
    retry_after_s = error.retry_after_ms / 1000 if error.retry_after_ms is not None else None
    kwargs: dict[str, Any] = dict(code=code, detail_code=detail, details=error.details, retry_after_s=retry_after_s)
    message = error.message or code

    if detail == "PAIRING_REQUIRED" or (code == "NOT_PAIRED" and message.startswith("pairing required")):
        return PairingRequired(message, **kwargs)
    if code == "NOT_PAIRED" and detail is None and "changed" in message:
        # "node pairing changed during connect": an approval landed mid-handshake. Nothing for a
        # person to do; connect again at once and the new pairing state applies.
        kwargs["retry_after_s"] = 0.25
        return GatewayRejected(message, retry=Retry.STARTING, **kwargs)
    if detail == "DEVICE_IDENTITY_REQUIRED":
        return LocalProtocolError(f"gateway: {message} (node-agent sent no device identity)")
    if detail == "AUTH_DEVICE_TOKEN_MISMATCH":
        return GatewayRejected(message, retry=Retry.REAUTH,
                               hint="the gateway no longer accepts this device's token; "
                                    "it was forgotten and pairing starts again", **kwargs)
    if detail == "AUTH_RATE_LIMITED":
        return GatewayRejected(message, retry=Retry.RATE_LIMITED, **kwargs)
    # Releases up to 2026.4.29 say only {expectedProtocol: 3}, with no detail code; an older or
    # newer protocol is FATAL either way: retrying the same range cannot succeed.
    if detail == "PROTOCOL_MISMATCH" or (detail is None and "expectedProtocol" in error.details):
        expected = error.details.get("expectedProtocol")
        return GatewayRejected(
            message, retry=Retry.FATAL,
            hint=f"this gateway speaks protocol {expected}; node-agent speaks "
                 f"{inputs.min_protocol}-{inputs.max_protocol}. Upgrade whichever is older.", **kwargs)
    if detail == "DEVICE_AUTH_SIGNATURE_INVALID" and inputs.signature_version == 3:
        # An older gateway that knows only the v2 payload: connect again at once, signing v2.
        return GatewayRejected(message, retry=Retry.TRANSIENT, signature_version=2, **kwargs)
    if detail == "DEVICE_AUTH_DEVICE_ID_MISMATCH":
        return IdentityError(f"gateway: {message}: the stored device id does not match its key")
    if detail in {"DEVICE_AUTH_SIGNATURE_EXPIRED", "DEVICE_AUTH_NONCE_MISMATCH", "DEVICE_AUTH_NONCE_REQUIRED"}:
        return GatewayRejected(message, retry=Retry.TRANSIENT, **kwargs)
    if detail == "AUTH_BOOTSTRAP_TOKEN_INVALID":
        return GatewayRejected(message, retry=Retry.FATAL,
                               hint="the setup code is expired or already used; ask for a new one "
                                    "(openclaw qr) or pair with the shared token", **kwargs)
    if detail == "AUTH_SCOPE_MISMATCH":
        return GatewayRejected(
            message, retry=Retry.FATAL,
            hint=f"the gateway approved this device's {inputs.role} role with other scopes than "
                 f"{', '.join(inputs.scopes) or 'none'}; approve the pending scope upgrade "
                 "(`openclaw devices approve <requestId>`) or remove and re-pair the device", **kwargs)
    if detail is not None and detail.startswith("AUTH_"):
        return ConfigError(
            f"gateway refused our credentials: {message}",
            hint="set OPENCLAW_GATEWAY_TOKEN (or gateway.token_file) to the gateway's shared token, "
                 "then run `node-agent pair`")
    if code == "UNAVAILABLE":
        return GatewayRejected(message, retry=Retry.STARTING, **kwargs)
    if code == "INVALID_REQUEST" and message.startswith("invalid connect params"):
        return LocalProtocolError(f"gateway rejected our connect: {message}")
    return GatewayRejected(message, retry=Retry.RATE_LIMITED if error.retryable is False else Retry.TRANSIENT,
                           **kwargs)


class OpenClawHandshake:
    """Wait for the challenge, send the signed connect, read ``hello-ok`` or the refusal."""

    def __init__(self, inputs: ConnectInputs, new_id: Callable[[], str]):
        self._inputs = inputs
        self._new_id = new_id
        self._connect_id: str | None = None
        self._deadline: float | None = None

    def start(self, now: float) -> list[Action]:
        self._deadline = now + HANDSHAKE_TIMEOUT_S
        return []

    def deadline(self) -> float | None:
        return self._deadline

    def on_timer(self, now: float) -> list[Action]:
        if self._deadline is None or now < self._deadline:
            return []
        waiting_for = "connect challenge" if self._connect_id is None else "connect response"
        return [Close(1008, f"{waiting_for} timeout",
                      ConnectionLost(f"gateway sent no {waiting_for} within {HANDSHAKE_TIMEOUT_S:g} s"))]

    def on_event(self, event: Event, now: float) -> list[HandshakeAction]:
        body = event.body
        if isinstance(body, ConnectChallenge):
            if self._connect_id is not None:
                return [LogProblem("second connect.challenge ignored")]
            self._connect_id = self._new_id()
            params = build_connect_params(self._inputs, body)
            data = OpenClawDialect().encode(Request(id=self._connect_id, method="connect", params=params))
            self._deadline = now + HANDSHAKE_TIMEOUT_S
            return [HandshakeStep(Step.CONNECT_SENT), Send(data, "connect")]
        if self._connect_id is not None:
            return [HoldUntilReady(event)]
        return [LogProblem(f"event {event.name!r} before connect ignored")]

    def on_response(self, response: Response, now: float) -> list[HandshakeAction]:
        if self._connect_id is None or response.id != self._connect_id:
            return [LogProblem("response before connect ignored")]
        self._deadline = None
        if response.ok:
            try:
                hello = parse_hello(response.payload)
            except RemoteProtocolError as exc:
                # The handshake never raises: a garbled hello-ok ends this connection like any
                # other refusal, typed as the gateway's fault (TRANSIENT: the next one may be fine).
                return [Close(1002, "malformed hello-ok", exc)]
            actions: list[HandshakeAction] = []
            if hello.device_token is not None:
                actions.append(StoreDeviceToken(hello.device_token))
            actions.append(Ready(hello))
            return actions
        assert response.error is not None
        error = classify_connect_error(response.error, self._inputs)
        actions: list[HandshakeAction] = []
        if isinstance(error, PairingRequired):
            actions += [HandshakeStep(Step.AWAITING_APPROVAL),
                        PairingPending(request_id=error.request_id, reason=error.reason)]
        if error.retry is Retry.REAUTH:
            actions.append(ForgetDeviceToken())
        actions.append(Close(1000, "handshake refused", error))
        return actions
