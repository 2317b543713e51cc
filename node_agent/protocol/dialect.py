"""The seam between the session state machine and a wire dialect.

A dialect owns everything that differs on the wire: framing (``{"type":"req"}`` vs. JSON-RPC
2.0), event payload shapes, and the handshake (OpenClaw: the gateway challenges, we sign;
documented: we connect, the gateway shows a 6-digit code). The :class:`~.session.Session` owns
everything that does not: request bookkeeping, the liveness watchdog, the invoke contract.
Adding a dialect means writing one module that satisfies :class:`Dialect`; nothing in the
session or the agent branches on which one is in use.
"""

from __future__ import annotations

from typing import Callable, Protocol

import attrs

from ..secret import Secret
from .actions import HandshakeAction
from .models import Event, Request, Response

#: Our ``client.version`` and ``userAgent``. Kept here (not imported from the package root) so
#: the protocol core stays importable on its own.
CLIENT_ID = "node-host"  # the only id the gateway accepts for a headless node (closed enum)
CLIENT_MODE = "node"
ROLE = "node"
MIN_PROTOCOL = 3
MAX_PROTOCOL = 4


class Signer(Protocol):
    """The device identity as the protocol needs it: an id, a public key and a way to sign."""

    @property
    def device_id(self) -> str: ...

    @property
    def public_key(self) -> str:
        """base64url (unpadded) of the raw 32-byte Ed25519 public key."""
        ...

    def sign(self, message: str) -> str:
        """base64url (unpadded) Ed25519 signature over ``message`` encoded as UTF-8."""
        ...


@attrs.frozen(kw_only=True)
class ClientInfo:
    version: str
    platform: str
    device_family: str | None = None
    display_name: str | None = None
    instance_id: str | None = None
    model_identifier: str | None = None
    id: str = CLIENT_ID
    mode: str = CLIENT_MODE


def client_object(client: ClientInfo) -> dict:
    """``connect.params.client``: required keys always, optional ones only when set (the
    gateway's schema is closed and rejects ``null``)."""
    obj = {"id": client.id, "version": client.version, "platform": client.platform, "mode": client.mode}
    for key, value in (("displayName", client.display_name), ("deviceFamily", client.device_family),
                       ("modelIdentifier", client.model_identifier), ("instanceId", client.instance_id)):
        if value:
            obj[key] = value
    return obj


@attrs.frozen(kw_only=True)
class Credentials:
    """What we can authenticate with. The handshake picks in this order: device token,
    bootstrap token (setup code), shared token, password."""

    device_token: Secret | None = None
    bootstrap_token: Secret | None = None
    shared_token: Secret | None = None
    password: Secret | None = None

    @property
    def method(self) -> str | None:
        """Which one a handshake sends, named as OpenClaw's ``hello-ok.auth.method`` names it."""
        if self.device_token:
            return "device-token"
        if self.bootstrap_token:
            return "bootstrap-token"
        if self.shared_token:
            return "token"
        return "password" if self.password else None


@attrs.frozen(kw_only=True)
class ConnectInputs:
    """Everything a handshake needs to introduce this node. Built by the agent per attempt."""

    client: ClientInfo
    credentials: Credentials
    signer: Signer | None
    caps: tuple[str, ...] = ()
    commands: tuple[str, ...] = ()
    permissions: dict[str, bool] = attrs.field(factory=dict)
    role: str = ROLE
    scopes: tuple[str, ...] = ()
    signature_version: int = 3
    min_protocol: int = MIN_PROTOCOL
    max_protocol: int = MAX_PROTOCOL
    locale: str | None = None
    user_agent: str | None = None


class Handshake(Protocol):
    """One connection's handshake. Fed by the session until it returns a ``Ready`` or ``Close``;
    it reports each step it takes (:class:`~.actions.HandshakeStep`) so the session's state
    follows from facts, not from the actions' contents."""

    def start(self, now: float) -> list[HandshakeAction]:
        """The socket just opened."""
        ...

    def on_event(self, event: Event, now: float) -> list[HandshakeAction]:
        """May answer :class:`HoldUntilReady` for an event that belongs to the session being set up."""
        ...

    def on_response(self, response: Response, now: float) -> list[HandshakeAction]: ...

    def deadline(self) -> float | None:
        """When the handshake gives up (absolute session time), or None for no limit."""
        ...

    def on_timer(self, now: float) -> list[HandshakeAction]: ...


class Dialect(Protocol):
    name: str
    #: Seconds between client ``heartbeat`` requests (acknowledged by a ``heartbeat`` event), or
    #: None when the dialect has no client heartbeat (OpenClaw: liveness is ticks + WS pings).
    client_heartbeat_s: float | None
    #: The gateway pushes ``voicewake.changed`` to every node right after it connects (OpenClaw),
    #: so a connection that has not delivered it may have lost it.
    wake_words_on_connect: bool

    def subscription(self, session_key: str, subscribe: bool) -> tuple[str, dict]:
        """The request (method, params) that (un)subscribes this node to a session's chat."""
        ...

    def decode(self, data: str | bytes) -> Request | Response | Event:
        """Parse one frame. Raises :class:`~node_agent.errors.RemoteProtocolError` on garbage."""
        ...

    def encode(self, request: Request) -> str: ...

    def handshake(self, inputs: ConnectInputs, new_id: Callable[[], str]) -> Handshake: ...
