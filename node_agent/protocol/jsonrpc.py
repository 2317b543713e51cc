"""The documented dialect: what the published API pages describe (JSON-RPC 2.0, a 6-digit code).

The pages (``seed-websocket-protocol``, ``seed-events-api``) specify a gateway that differs from
the real OpenClaw one in framing, payloads and pairing (see the gateway notes, §10). This module
speaks the pages faithfully and decides, in one place each, what they leave open.

Framing
    Requests ``{"jsonrpc": "2.0", "id", "method", "params"}`` (``params`` omitted when empty).
    Responses ``{"id", "ok", "payload" | "error": {code, message}}``, with or without the
    ``jsonrpc`` key; a plain JSON-RPC ``result``/``error`` response (no ``ok``) is read too, and
    JSON-RPC's numeric error codes map onto the pages' names. Events ``{"event", "payload"}``
    (a ``type`` key, if any, is ignored). A JSON-RPC notification ``{"method", "params"}`` without
    an ``id`` is read as an event of that name: the pages never send one, but a JSON-RPC server
    would, and it cannot be anything else. Integer ids are read as their decimal string; ours
    are always strings.

Handshake (:class:`JsonRpcHandshake`), theory of operation::

    start --send connect--> CONNECTING --connect ok--------------------------------> DONE (Ready)
                               |   ^  \\--connect error / rejected / shutdown------> DONE (Close)
          connect.challenge    |   |
          {challenge,expiresAt}v   | code expired, none replaced it: re-send connect
                             PENDING (PairingPending(code); socket stays open)
                               |
          *.pair.resolved      | approved:false -> DONE (Close, PairingRejected: no retry)
          approved:true        v
                             APPROVED (StoreDeviceToken) --connect ok--> DONE (Ready)
                               \\-- no response in 10 s: re-send connect with the new token

Invariants: we speak first (the pages' flow: open, send ``connect``, maybe get a challenge);
every refusal ends in exactly one ``Close`` carrying a typed error whose retry category the
supervisor obeys; ``UNAUTHORIZED`` is only ever retried once we have forgotten the device token
that caused it (REAUTH), so it cannot loop without a person approving a new code in between.

Code expiry. ``expiresAt`` is the gateway's epoch milliseconds; the session's ``now`` is a
monotonic clock and this module reads no clock of its own. The pages give no relative lifetime,
so the gateway's wall clock is estimated from the only in-band reading the pages offer, the
``timestamp`` of ``tick`` and ``heartbeat`` events (offset = timestamp - now). With an estimate
the code's deadline is ``arrival + (expiresAt - estimated gateway now at arrival)``; without one
(no tick seen yet) the deadline is a fallback lifetime and is corrected by the first tick. A
grace period after expiry lets the gateway issue the replacement itself (the pages imply it does
not have to); if it does not, we ask for one by re-sending ``connect``, the only pairing request
the pages define. Lifetimes are clamped so a skewed or hostile ``expiresAt`` can neither make us
re-request in a loop nor wait for hours.
"""

from __future__ import annotations

import enum
import json
import re
import typing
from typing import Any, Callable, Mapping

import attrs

from ..errors import (
    ConfigError,
    ConnectionLost,
    GatewayRejected,
    LocalProtocolError,
    NodeAgentError,
    PairingRejected,
    RemoteProtocolError,
    Retry,
)
from ..secret import Secret
from . import convert
from .actions import (
    Close,
    ForgetDeviceToken,
    HandshakeAction,
    HandshakeStep,
    LogProblem,
    PairingPending,
    Ready,
    Send,
    Step,
    StoreDeviceToken,
)
from .dialect import ConnectInputs, client_object
from .documented_models import (
    DOCUMENTED_EVENTS,
    DevicePairRequested,
    DevicePairResolved,
    Heartbeat,
)
from .models import (
    ConnectChallenge,
    ErrorShape,
    Event,
    EventBody,
    HelloOk,
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
from .openclaw import parse_hello

NAME = "jsonrpc"

#: How long we wait for the gateway's first answer to ``connect`` (a code or a response).
CONNECT_TIMEOUT_S = 15.0
#: After ``approved: true``, how long we wait for the connect response before re-connecting
#: with the token we were just given (covers a gateway that expects a fresh ``connect``).
APPROVED_RESPONSE_TIMEOUT_S = 10.0
#: After a code expires, how long we let the gateway send its replacement before asking.
CODE_EXPIRY_GRACE_S = 2.0
#: Bounds on a code's lifetime as we compute it (see the module docstring).
MIN_CODE_LIFETIME_S = 10.0
MAX_CODE_LIFETIME_S = 3600.0
#: The lifetime assumed until a ``tick``/``heartbeat`` tells us the gateway's clock.
FALLBACK_CODE_LIFETIME_S = 300.0

#: The pages promise a 6-digit code; we accept any short alphanumeric one (a gateway may use 8
#: digits) but nothing a terminal could misread, since the agent shows it to a person.
_CODE_RE = re.compile(r"[0-9A-Za-z]{4,16}")

#: JSON-RPC 2.0's reserved error codes, in the pages' vocabulary.
_JSONRPC_CODES = {
    -32700: "INVALID_REQUEST",  # parse error: the gateway could not read our frame
    -32600: "INVALID_REQUEST",
    -32601: "METHOD_NOT_FOUND",
    -32602: "INVALID_REQUEST",  # invalid params
    -32603: "INTERNAL_ERROR",
}

# --- error codes and what they mean for the next attempt ---------------------------------------

#: The pages' five error codes -> what the supervisor does after a refused ``connect``.
#: ``UNAUTHORIZED`` is FATAL here; :func:`retry_for` turns it into REAUTH when the credential
#: that failed was a device token (forget it, pair again: a person is in the loop, no hot loop).
RETRY_BY_CODE: Mapping[str, Retry] = {
    "INVALID_REQUEST": Retry.FATAL,  # our connect is malformed for this gateway: a bug, not luck
    "UNAUTHORIZED": Retry.FATAL,  # wrong shared token / password: a person must fix the config
    "METHOD_NOT_FOUND": Retry.FATAL,  # no `connect` here: wrong URL or wrong dialect
    "INTERNAL_ERROR": Retry.TRANSIENT,  # the gateway's bug or hiccup: ordinary backoff
    "RATE_LIMITED": Retry.RATE_LIMITED,  # back off long so we do not make it worse
}


def retry_for(code: str, *, sent_device_token: bool) -> Retry:
    """The retry category for an error ``code``; unknown codes are TRANSIENT."""
    if code == "UNAUTHORIZED" and sent_device_token:
        return Retry.REAUTH
    return RETRY_BY_CODE.get(code, Retry.TRANSIENT)


def classify_connect_error(error: ErrorShape, *, sent_device_token: bool) -> NodeAgentError:
    """Map a refused ``connect`` to a typed error carrying its retry category."""
    code = error.code
    retry = retry_for(code, sent_device_token=sent_device_token)
    retry_after_s = error.retry_after_ms / 1000 if error.retry_after_ms is not None else None
    kwargs: dict[str, Any] = dict(code=code, detail_code=error.detail_code, details=error.details,
                                  retry_after_s=retry_after_s)
    message = error.message or code
    if code == "UNAUTHORIZED":
        if retry is Retry.REAUTH:
            return GatewayRejected(message, retry=Retry.REAUTH,
                                   hint="the gateway no longer accepts this device's token; "
                                        "it was forgotten and pairing starts again", **kwargs)
        return ConfigError(f"gateway refused our credentials: {message}",
                           hint="check the gateway token or password in the configuration, "
                                "then run `node-agent pair`")
    if code == "INVALID_REQUEST":
        return LocalProtocolError(f"gateway rejected our connect: {message}")
    if code == "METHOD_NOT_FOUND":
        return GatewayRejected(message, retry=retry,
                               hint="this server has no `connect` method: check the gateway URL, "
                                    "or set the dialect to 'openclaw'", **kwargs)
    return GatewayRejected(message, retry=retry, **kwargs)


# --- the converter ----------------------------------------------------------------------------

_converter = convert.make_converter()


def _is_homogeneous_tuple(t: Any) -> bool:
    args = typing.get_args(t)
    return typing.get_origin(t) is tuple and len(args) == 2 and args[1] is Ellipsis


def _structure_tuple(value: Any, t: Any) -> tuple[Any, ...]:
    # cattrs would turn the string "hey" into ('h', 'e', 'y'); on the wire that is an error.
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"expected an array, got {type(value).__name__}")
    item = typing.get_args(t)[0]
    return tuple(_converter.structure(v, item) for v in value)


def _structure_dict(value: Any, _t: Any) -> dict[str, Any]:
    # cattrs would build a dict from ["ab"]; only a JSON object is an object.
    if not isinstance(value, Mapping):
        raise ValueError(f"expected an object, got {type(value).__name__}")
    return dict(value)


_converter.register_structure_hook_func(_is_homogeneous_tuple, _structure_tuple)
_converter.register_structure_hook_func(lambda t: t is dict or typing.get_origin(t) is dict, _structure_dict)

#: Events whose documented payload maps field-for-field (camelCase) onto a model.
_TYPED_EVENTS: dict[str, type[EventBody]] = {
    cls.wire_name: cls
    for cls in (Shutdown, VoiceWakeChanged, TalkMode, NodeInvokeRequest, NodeInvokeCancel, *DOCUMENTED_EVENTS)
}


# --- the dialect ------------------------------------------------------------------------------


class JsonRpcDialect:
    """The documented dialect. Stateless: one instance may serve every connection."""

    name = NAME
    #: The Events page lists ``heartbeat`` as "Client heartbeat (periodic)" and its event as the
    #: "acknowledgment"; it names no method or period, so we send ``heartbeat {timestamp}`` every 30 s.
    client_heartbeat_s = 30.0
    wake_words_on_connect = False  # the pages promise no snapshot; they push on change only

    def subscription(self, session_key: str, subscribe: bool) -> tuple[str, dict]:
        return ("node.subscribe" if subscribe else "node.unsubscribe"), {"sessionKey": session_key}

    def decode(self, data: str | bytes) -> Request | Response | Event:
        obj = convert.load_object(data)
        version = obj.get("jsonrpc")
        if version is not None and version != "2.0":
            raise RemoteProtocolError("unsupported 'jsonrpc' version (expected \"2.0\")")
        if "event" in obj:
            name = obj.get("event")
            if not isinstance(name, str) or not name:
                raise RemoteProtocolError("event frame needs a non-empty string 'event'")
            return Event(name=name, body=decode_event_body(name, obj.get("payload")))
        if "method" in obj:
            method = obj.get("method")
            if not isinstance(method, str) or not method:
                raise RemoteProtocolError("request frame needs a non-empty string 'method'")
            if obj.get("id") is None:  # a JSON-RPC notification: the only thing it can be is an event
                return Event(name=method, body=decode_event_body(method, obj.get("params")))
            return Request(id=_frame_id(obj.get("id")), method=method, params=obj.get("params"))
        if "id" in obj and ("ok" in obj or "result" in obj or "error" in obj):
            return _decode_response(obj)
        raise RemoteProtocolError("frame is neither a request, a response nor an event")

    def encode(self, request: Request) -> str:
        frame: dict[str, Any] = {"jsonrpc": "2.0", "id": request.id, "method": request.method}
        if request.params is not None:
            frame["params"] = request.params
        return json.dumps(frame, separators=(",", ":"), ensure_ascii=False)

    def handshake(self, inputs: ConnectInputs, new_id: Callable[[], str]) -> "JsonRpcHandshake":
        return JsonRpcHandshake(inputs, new_id)

    def __repr__(self) -> str:
        return "JsonRpcDialect()"


def decode_event_body(name: str, payload: Any) -> EventBody:
    """The typed body for an event in the documented shapes; unknown names pass through."""
    if payload is None:
        payload = {}
    if name == "tick":
        obj = _payload_object(payload, name)
        ts = obj.get("timestamp", obj.get("ts"))
        return Tick(ts=_opt_int(ts, name, "timestamp"))
    if name == "connect.challenge":
        return _decode_challenge(_payload_object(payload, name))
    if name == "node.pair.resolved":
        obj = _payload_object(payload, name)
        approved = obj.get("approved")
        if not isinstance(approved, bool):
            raise RemoteProtocolError("node.pair.resolved: 'approved' must be a boolean")
        return NodePairResolved(node_id=_opt_str(obj.get("nodeId"), name, "nodeId"),
                                request_id=_opt_str(obj.get("requestId"), name, "requestId"),
                                approved=approved, token=_opt_token(obj.get("token"), name))
    if name == "device.pair.resolved":
        obj = _payload_object(payload, name)
        resolved = convert.structure(_converter, {k: v for k, v in obj.items() if k != "token"},
                                     DevicePairResolved, name)
        return attrs.evolve(resolved, token=_opt_token(obj.get("token"), name))
    cls = _TYPED_EVENTS.get(name)
    if cls is not None:
        return convert.structure(_converter, payload, cls, name)
    return UnknownEvent(name=name, payload=payload)


def _decode_challenge(obj: Mapping[str, Any]) -> EventBody:
    if "challenge" not in obj and "nonce" in obj:
        # OpenClaw's challenge arrived on this dialect: decode it as such; the handshake says why
        # that cannot work rather than this decoder calling it garbage.
        nonce, ts = obj.get("nonce"), obj.get("ts")
        if not isinstance(nonce, str) or not nonce:
            raise RemoteProtocolError("connect.challenge: 'nonce' must be a non-empty string")
        return ConnectChallenge(nonce=nonce, ts=_opt_int(ts, "connect.challenge", "ts") or 0)
    code = obj.get("challenge")
    if not isinstance(code, str) or not _CODE_RE.fullmatch(code):
        raise RemoteProtocolError("connect.challenge: 'challenge' must be a short alphanumeric code")
    return PairingCode(code=code, expires_at_ms=_opt_int(obj.get("expiresAt"), "connect.challenge", "expiresAt"))


def _decode_response(obj: Mapping[str, Any]) -> Response:
    rid = _frame_id(obj.get("id"))
    ok = obj.get("ok")
    if ok is None:  # a plain JSON-RPC response
        ok = "result" in obj and obj.get("error") is None
    if not isinstance(ok, bool):
        raise RemoteProtocolError("response frame needs a boolean 'ok'")
    payload = obj["payload"] if "payload" in obj else obj.get("result")
    return Response(id=rid, ok=ok, payload=payload if ok else None,
                    error=None if ok else _decode_error(obj.get("error")))


def _decode_error(raw: Any) -> ErrorShape:
    if not isinstance(raw, Mapping):
        return ErrorShape(code="UNKNOWN", message="error without details")
    code = raw.get("code")
    if isinstance(code, int) and not isinstance(code, bool):
        code = _JSONRPC_CODES.get(code, "INTERNAL_ERROR" if -32099 <= code <= -32000 else "UNKNOWN")
    elif not isinstance(code, str) or not code:
        code = "UNKNOWN"
    message = raw.get("message")
    details = raw.get("details", raw.get("data"))
    retry_after = raw.get("retryAfterMs")
    return ErrorShape(
        code=code,
        message=message if isinstance(message, str) else "",
        details=dict(details) if isinstance(details, Mapping) else {},
        retryable=raw.get("retryable") if isinstance(raw.get("retryable"), bool) else None,
        retry_after_ms=retry_after if isinstance(retry_after, int) and not isinstance(retry_after, bool)
        and retry_after >= 0 else None,
    )


def _frame_id(value: Any) -> str:
    if isinstance(value, str) and value:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise RemoteProtocolError("frame 'id' must be a non-empty string or an integer")


def _payload_object(payload: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(payload, Mapping):
        raise RemoteProtocolError(f"{what}: payload must be an object, got {type(payload).__name__}")
    return payload


def _opt_int(value: Any, what: str, key: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise RemoteProtocolError(f"{what}: '{key}' must be a non-negative integer")
    return value


def _opt_str(value: Any, what: str, key: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise RemoteProtocolError(f"{what}: '{key}' must be a string")
    return value


def _opt_token(value: Any, what: str) -> Secret | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise RemoteProtocolError(f"{what}: 'token' must be a string")
    return Secret(value)


# --- connect ----------------------------------------------------------------------------------


def build_connect_params(inputs: ConnectInputs, *, device_token: Secret | None) -> dict[str, Any]:
    """The ``connect`` params. The pages name three parts (``role``, ``auth``, client metadata)
    and no field names; we use OpenClaw's names for them, so one vocabulary serves both, and
    add the node's ``caps``/``commands``/``permissions`` (a node is useless without them).
    Optional fields are omitted, never ``null``."""
    client = inputs.client
    client_obj = client_object(client)
    creds = inputs.credentials
    # One credential, most specific first: a device token proves this device was paired; the
    # shared token (the pages' "bearer token") or a password only lets us ask to be paired.
    auth: dict[str, str] = {}
    if device_token:
        auth["deviceToken"] = device_token.reveal()
    elif creds.shared_token:
        auth["token"] = creds.shared_token.reveal()
    elif creds.bootstrap_token:
        auth["bootstrapToken"] = creds.bootstrap_token.reveal()
    elif creds.password:
        auth["password"] = creds.password.reveal()
    params: dict[str, Any] = {"role": inputs.role, "client": client_obj}
    if auth:
        params["auth"] = auth
    if inputs.caps:
        params["caps"] = list(inputs.caps)
    if inputs.commands:
        params["commands"] = list(inputs.commands)
    if inputs.permissions:
        params["permissions"] = dict(inputs.permissions)
    if inputs.locale:
        params["locale"] = inputs.locale
    if inputs.user_agent:
        params["userAgent"] = inputs.user_agent
    return params


def parse_connect_result(payload: Any) -> HelloOk:
    """The pages never show the connect response's payload. We read OpenClaw's ``hello-ok``
    shape leniently (``auth.deviceToken``, ``policy.tickIntervalMs``...) and also accept a
    top-level ``deviceToken``/``token`` and ``nodeId``; anything else means defaults."""
    if not isinstance(payload, Mapping):
        return HelloOk()
    hello = parse_hello(payload)
    token = hello.device_token
    if token is None:
        for key in ("deviceToken", "token"):
            value = payload.get(key)
            if isinstance(value, str) and value:
                token = Secret(value)
                break
    node_id = payload.get("nodeId")
    return attrs.evolve(hello, device_token=token, node_id=node_id if isinstance(node_id, str) and node_id else None)


class _Phase(enum.Enum):
    IDLE = "idle"
    #: ``connect`` sent; waiting for a code or the response.
    CONNECTING = "connecting"
    #: A code is displayed; waiting for a person (or its expiry).
    PENDING = "pending"
    #: Approved; waiting for the connect response.
    APPROVED = "approved"
    #: Ready or refused: everything else is ignored.
    DONE = "done"


class JsonRpcHandshake:
    """We connect; the gateway answers, or shows a code and answers once a person approves."""

    def __init__(self, inputs: ConnectInputs, new_id: Callable[[], str]):
        self._inputs = inputs
        self._new_id = new_id
        self._phase = _Phase.IDLE
        self._deadline: float | None = None
        self._connect_id: str | None = None
        self._superseded: set[str] = set()
        #: The device token the next ``connect`` carries (the stored one, then an issued one).
        self._device_token: Secret | None = inputs.credentials.device_token
        self._sent_device_token = False
        self._issued_token: Secret | None = None
        self._node_id: str | None = None
        #: Approvals naming another id than ours, seen while our code is on show (a gateway that
        #: assigns its own ids, or other nodes' broadcasts): node id -> token, unstored, until the
        #: response to our pending connect names one of them.
        self._unconfirmed: dict[str, Secret | None] = {}
        self._reconnected_after_approval = False
        # the displayed code
        self._code: str | None = None
        self._code_expires_at_ms: int | None = None
        self._code_arrived: float | None = None
        #: gateway wall clock (ms) minus our session clock (ms), from tick/heartbeat timestamps.
        self._clock_offset_ms: float | None = None

    def __repr__(self) -> str:
        return f"<JsonRpcHandshake phase={self._phase.value} deadline={self._deadline}>"

    # -- Handshake protocol --------------------------------------------------------------------

    def start(self, now: float) -> list[HandshakeAction]:
        if self._phase is not _Phase.IDLE:
            raise LocalProtocolError("handshake started twice")
        return self._send_connect(now)

    def deadline(self) -> float | None:
        return self._deadline

    def on_timer(self, now: float) -> list[HandshakeAction]:
        if self._deadline is None or now < self._deadline:
            return []
        if self._phase is _Phase.PENDING:
            # The code expired and the gateway sent no replacement within the grace period.
            return self._send_connect(now)
        if self._phase is _Phase.APPROVED and self._issued_token is not None \
                and not self._reconnected_after_approval:
            self._reconnected_after_approval = True
            return self._send_connect(now)
        waited = "the connect response after approval" if self._phase is _Phase.APPROVED \
            else "a pairing code or a connect response"
        return self._finish(Close(1008, "connect response timeout",
                                  ConnectionLost(f"gateway sent no {waited} in time")))

    def on_event(self, event: Event, now: float) -> list[HandshakeAction]:
        if self._phase is _Phase.DONE:
            return []
        body = event.body
        if isinstance(body, Tick) and body.ts is not None:
            return self._observe_clock(body.ts, now)
        if isinstance(body, Heartbeat) and body.timestamp is not None:
            return self._observe_clock(body.timestamp, now)
        if isinstance(body, PairingCode):
            return self._on_code(body.code, body.expires_at_ms, now)
        if isinstance(body, DevicePairRequested) and body.challenge and self._is_ours(body.device_id):
            if not _CODE_RE.fullmatch(body.challenge):
                return [LogProblem("device.pair.requested with an unusable code ignored")]
            return self._on_code(body.challenge, None, now)
        if isinstance(body, NodePairResolved) and self._is_ours(body.node_id):
            return self._on_resolved(body.approved, body.token, body.node_id, now)
        if isinstance(body, DevicePairResolved) and self._is_ours(body.device_id):
            return self._on_resolved(body.approved, body.token, None, now)
        if isinstance(body, (NodePairResolved, DevicePairResolved)) and body.approved \
                and self._phase is _Phase.PENDING:
            # Another id than ours, while this socket shows its code: a gateway that names nodes
            # itself (the pages' "node-123"), or another node's broadcast. Ours only if the
            # response to our pending connect then names that id; until then the code stays on
            # show and nothing is stored (reconnecting with that token would "confirm" it
            # whoever it belonged to).
            node_id = body.node_id if isinstance(body, NodePairResolved) else body.device_id
            if node_id is not None:
                self._unconfirmed[node_id] = body.token
            return []
        if isinstance(body, Shutdown):
            retry_after = body.restart_expected_ms / 1000 if body.restart_expected_ms is not None else None
            return self._finish(Close(1000, "gateway shutting down", ConnectionLost(
                f"gateway shutting down during the handshake ({body.reason or 'no reason given'})",
                retry=Retry.SERVER_RESTART, retry_after_s=retry_after)))
        if isinstance(body, ConnectChallenge):
            # Possible when auto-detection's window closed before a slow OpenClaw gateway spoke.
            # TRANSIENT, not FATAL: the next attempt detects again.
            return self._finish(Close(1002, "wrong dialect", RemoteProtocolError(
                "the gateway sent an OpenClaw connect.challenge: it speaks the OpenClaw dialect",
                retry=Retry.TRANSIENT, hint="set the dialect to 'openclaw' (or 'auto')")))
        # Broadcasts (presence, health, agent...) reach every socket; before we are connected
        # they are not ours to handle.
        return []

    def on_response(self, response: Response, now: float) -> list[HandshakeAction]:
        if self._phase is _Phase.DONE:
            return []
        current = response.id == self._connect_id
        if not current and response.id not in self._superseded:
            return [LogProblem("response to an unknown request during the handshake ignored")]
        if response.ok:
            return self._on_connected(response.payload)
        if not current:
            return []  # a refusal of a connect we already replaced
        assert response.error is not None
        error = classify_connect_error(response.error, sent_device_token=self._sent_device_token)
        actions: list[HandshakeAction] = []
        if error.retry is Retry.REAUTH:
            actions.append(ForgetDeviceToken())
        actions.append(Close(1000, "handshake refused", error))
        return self._finish(*actions)

    # -- steps ---------------------------------------------------------------------------------

    def _send_connect(self, now: float) -> list[HandshakeAction]:
        if self._connect_id is not None:
            self._superseded.add(self._connect_id)
        self._connect_id = self._new_id()
        self._sent_device_token = self._device_token is not None
        params = build_connect_params(self._inputs, device_token=self._device_token)
        data = JsonRpcDialect().encode(Request(id=self._connect_id, method="connect", params=params))
        if self._phase is not _Phase.APPROVED:
            self._phase = _Phase.CONNECTING
        self._deadline = now + (APPROVED_RESPONSE_TIMEOUT_S if self._phase is _Phase.APPROVED
                                else CONNECT_TIMEOUT_S)
        return [HandshakeStep(Step.CONNECT_SENT), Send(data, "connect")]

    def _on_code(self, code: str, expires_at_ms: int | None, now: float) -> list[HandshakeAction]:
        if self._phase not in (_Phase.CONNECTING, _Phase.PENDING):
            return [LogProblem(f"pairing code ignored while {self._phase.value}")]
        self._phase = _Phase.PENDING
        self._code, self._code_expires_at_ms, self._code_arrived = code, expires_at_ms, now
        self._deadline = self._code_deadline()
        return [HandshakeStep(Step.AWAITING_APPROVAL), PairingPending(code=code, expires_at_ms=expires_at_ms)]

    def _on_resolved(self, approved: bool, token: Secret | None, node_id: str | None,
                     now: float) -> list[HandshakeAction]:
        if self._phase is _Phase.APPROVED and approved:
            # node.pair.resolved and device.pair.resolved may both come; one is enough.
            if token is not None and token != self._issued_token:
                self._issued_token = self._device_token = token
                return [StoreDeviceToken(token)]
            return []
        if self._phase not in (_Phase.CONNECTING, _Phase.PENDING):
            return [LogProblem(f"pairing resolution ignored while {self._phase.value}")]
        if not approved:
            return self._finish(Close(1000, "pairing rejected", PairingRejected(
                "the gateway's operator rejected this device's pairing request",
                hint="ask the operator to approve it, then run `node-agent pair` again")))
        self._phase = _Phase.APPROVED
        self._node_id = node_id or self._node_id
        self._deadline = now + APPROVED_RESPONSE_TIMEOUT_S
        if token is None:
            return []
        self._issued_token = self._device_token = token
        return [StoreDeviceToken(token)]

    def _on_connected(self, payload: Any) -> list[HandshakeAction]:
        hello = parse_connect_result(payload)
        actions: list[HandshakeAction] = []
        if hello.node_id is not None and hello.node_id in self._unconfirmed:
            self._node_id = hello.node_id
            token = self._unconfirmed[hello.node_id]
            if token is not None and hello.device_token is None:
                self._issued_token = self._device_token = token
                actions.append(StoreDeviceToken(token))
        # _device_token is what we already hold: the stored token, or the one just issued and stored.
        if hello.device_token is not None and hello.device_token != self._device_token:
            actions.append(StoreDeviceToken(hello.device_token))
        hello = attrs.evolve(hello, device_token=hello.device_token or self._device_token,
                             node_id=hello.node_id or self._node_id)
        actions.append(Ready(hello))
        return self._finish(*actions)

    def _finish(self, *actions: HandshakeAction) -> list[HandshakeAction]:
        self._phase = _Phase.DONE
        self._deadline = None
        return list(actions)

    # -- helpers -------------------------------------------------------------------------------

    def _is_ours(self, node_id: str | None) -> bool:
        # Pairing events are broadcasts in the pages. They are ours for sure when they name the
        # id we sent (client.instanceId), or when we sent none; a gateway that assigns its own ids
        # is handled in on_event (confirmed by the connect response).
        expected = self._inputs.client.instance_id
        return node_id is None or expected is None or node_id == expected

    def _observe_clock(self, gateway_ms: int, now: float) -> list[HandshakeAction]:
        self._clock_offset_ms = gateway_ms - now * 1000
        if self._phase is _Phase.PENDING:
            self._deadline = self._code_deadline()
        return []

    def _code_deadline(self) -> float:
        assert self._code_arrived is not None
        if self._code_expires_at_ms is None or self._clock_offset_ms is None:
            lifetime = FALLBACK_CODE_LIFETIME_S
        else:
            gateway_now_ms = self._code_arrived * 1000 + self._clock_offset_ms
            lifetime = (self._code_expires_at_ms - gateway_now_ms) / 1000
        lifetime = min(max(lifetime, MIN_CODE_LIFETIME_S), MAX_CODE_LIFETIME_S)
        return self._code_arrived + lifetime + CODE_EXPIRY_GRACE_S
