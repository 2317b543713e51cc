"""Typed frames and event payloads, shared by every wire dialect.

A dialect's codec turns its own wire shapes into these models (``tick {timestamp}`` in the
documented pages and ``tick {ts}`` in OpenClaw both become :class:`Tick`). Models are frozen
attrs classes; inbound ones are parsed leniently (unknown keys ignored), outbound ones are built
strictly by the codec (optional fields omitted, never ``null``).

Event class names follow the wire: ``voicewake.changed`` -> :class:`VoiceWakeChanged`.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

import attrs

from ..secret import Secret

# --- generic frames ---------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class ErrorShape:
    code: str
    message: str = ""
    details: dict[str, Any] = attrs.field(factory=dict)
    retryable: bool | None = None
    retry_after_ms: int | None = None

    @property
    def detail_code(self) -> str | None:
        value = self.details.get("code")
        return value if isinstance(value, str) else None


@attrs.frozen(kw_only=True)
class Request:
    """A request in either direction (the gateway never sends one to a node today).

    ``params`` stays out of the ``repr``: our ``connect`` carries the credentials."""

    id: str
    method: str
    params: Any = attrs.field(default=None, repr=False)


@attrs.frozen(kw_only=True)
class Response:
    """``payload`` stays out of the ``repr``: a ``hello-ok`` carries the device token."""

    id: str
    ok: bool
    payload: Any = attrs.field(default=None, repr=False)
    error: ErrorShape | None = None


@attrs.frozen(kw_only=True)
class StateVersion:
    presence: int | None = None
    health: int | None = None


@attrs.frozen(kw_only=True)
class Event:
    """An inbound event: its wire name, its typed body, and the frame-level counters."""

    name: str
    body: "EventBody"
    seq: int | None = None
    state_version: StateVersion | None = None


# --- event bodies -----------------------------------------------------------------------------


class EventBody:
    """Marker base: every typed event payload. ``wire_name`` is the event string it came from."""

    wire_name: ClassVar[str] = ""


@attrs.frozen(kw_only=True)
class ConnectChallenge(EventBody):
    """OpenClaw: the nonce we must sign. Arrives unprompted right after the upgrade."""

    wire_name = "connect.challenge"
    nonce: str
    ts: int


@attrs.frozen(kw_only=True)
class PairingCode(EventBody):
    """Documented dialect: the 6-digit code a person reads off the device to approve it.

    Same wire name as :class:`ConnectChallenge`, different meaning: the codec decides which.
    """

    wire_name = "connect.challenge"
    code: str
    expires_at_ms: int | None = None


@attrs.frozen(kw_only=True)
class Tick(EventBody):
    wire_name = "tick"
    ts: int | None = None


@attrs.frozen(kw_only=True)
class Shutdown(EventBody):
    wire_name = "shutdown"
    reason: str = ""
    restart_expected_ms: int | None = None


@attrs.frozen(kw_only=True)
class NodeInvokeRequest(EventBody):
    wire_name = "node.invoke.request"
    id: str
    node_id: str = ""
    command: str
    #: Parameters exactly as the gateway sent them: a JSON string (or an object from older hosts).
    params_json: str | None = None
    params: Any = None
    timeout_ms: int | None = None
    idempotency_key: str | None = None

    def arguments(self) -> dict[str, Any]:
        """The command's parameters as an object (``paramsJSON`` decoded; older hosts sent
        ``params``). Raises ValueError with a one-line reason when they are not an object."""
        value = self.params
        if self.params_json:
            try:
                value = json.loads(self.params_json)
            except (ValueError, RecursionError):
                raise ValueError("paramsJSON is not valid JSON") from None
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise ValueError("params must be a JSON object")
        return value


@attrs.frozen(kw_only=True)
class NodeInvokeCancel(EventBody):
    wire_name = "node.invoke.cancel"
    invoke_id: str
    node_id: str = ""


@attrs.frozen(kw_only=True)
class VoiceWakeChanged(EventBody):
    wire_name = "voicewake.changed"
    triggers: tuple[str, ...] = ()


@attrs.frozen(kw_only=True)
class VoiceWakeRoutingChanged(EventBody):
    """``voicewake.routing.changed {config}``: which session each trigger's transcript goes to.
    The table is kept as the gateway's dict; the voice room resolves it (node_agent.voice.routing)."""

    wire_name = "voicewake.routing.changed"
    config: Any = None  # lenient: a malformed table is the router's to drop, not a protocol error


@attrs.frozen(kw_only=True)
class TalkMode(EventBody):
    """``talk.mode``. OpenClaw sends ``{enabled, phase, ts}``; the documented pages ``{mode, enabled}``."""

    wire_name = "talk.mode"
    enabled: bool = False
    phase: str | None = None
    mode: str | None = None
    ts: int | None = None


@attrs.frozen(kw_only=True)
class NodePairResolved(EventBody):
    """Pairing decided. OpenClaw: ``decision`` and no token; documented: ``approved`` + ``token``."""

    wire_name = "node.pair.resolved"
    request_id: str | None = None
    node_id: str | None = None
    approved: bool = False
    decision: str | None = None
    token: Secret | None = attrs.field(default=None, repr=False)


@attrs.frozen(kw_only=True)
class UnknownEvent(EventBody):
    """Any event this agent has no model for. Passed through so handlers may still look."""

    name: str
    payload: Any = None


@attrs.frozen(kw_only=True)
class GenericEvent(EventBody):
    """An event we know by name but keep as a plain payload (``health``, ``presence``, ``chat``...)."""

    name: str
    payload: Any = None


# --- handshake results ------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Policy:
    max_payload: int = 25 * 1024 * 1024
    max_buffered_bytes: int | None = None
    tick_interval_ms: int = 30_000


@attrs.frozen(kw_only=True)
class HelloOk:
    """What a successful connect tells us. ``device_token`` is set once the device is paired."""

    protocol: int | None = None
    server_version: str | None = None
    conn_id: str | None = None
    role: str | None = None
    scopes: tuple[str, ...] = ()
    device_token: Secret | None = attrs.field(default=None, repr=False)
    policy: Policy = attrs.field(factory=Policy)
    methods: frozenset[str] = frozenset()
    events: frozenset[str] = frozenset()
    #: The raw snapshot (presence, health, session defaults): kept as a dict, it grows by version.
    snapshot: dict[str, Any] = attrs.field(factory=dict, repr=False)
    auth_method: str | None = None
    #: The gateway's id for this node when it tells us one (the documented dialect's
    #: ``node.pair.resolved {nodeId}``); OpenClaw derives it from the device id instead.
    node_id: str | None = None
