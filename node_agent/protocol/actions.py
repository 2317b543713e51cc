"""What the session asks the I/O layer to do.

The session never performs I/O: every input (a frame, the passage of time, a socket close)
returns a list of these, and the Trio layer carries them out in order. Each action is a small
frozen record; none holds a secret in its ``repr``.
"""

from __future__ import annotations

import enum
from typing import Any

import attrs

from ..errors import GatewayRejected, NodeAgentError
from ..secret import Secret
from .models import Event, HelloOk, NodeInvokeRequest, Response


@attrs.frozen
class Send:
    """Write this text frame. ``label`` is what may be logged (a method name, never content)."""

    data: str = attrs.field(repr=False)
    label: str


@attrs.frozen
class Ready:
    """The handshake is done; the node is connected and may call node methods."""

    hello: HelloOk


@attrs.frozen
class StoreDeviceToken:
    """The gateway issued (or re-issued) a device token: persist it if it differs."""

    token: Secret = attrs.field(repr=False)


@attrs.frozen
class ForgetDeviceToken:
    """The gateway refused our stored device token: drop it, fall back to the shared credential."""


@attrs.frozen
class PairingPending:
    """A person must approve this device. ``code`` is set in the documented dialect only."""

    request_id: str | None = None
    reason: str | None = None
    code: str | None = None
    expires_at_ms: int | None = None


@attrs.frozen
class Dispatch:
    """Hand this event to the agent's handlers."""

    event: Event


@attrs.frozen
class InvokeStarted:
    """The gateway asked this node to run a command: start it. ``arguments`` are its decoded
    parameters; when they could not be decoded, ``error`` says why (answer ``INVALID_REQUEST``).
    Exactly one ``node.invoke.result`` must follow (see the session's invariants)."""

    request: NodeInvokeRequest
    arguments: dict[str, Any] | None = attrs.field(default=None, repr=False)
    error: str | None = None


@attrs.frozen
class SurfaceApproved:
    """The gateway approved this node's declared commands on this live connection (OpenClaw
    ``node.pair.resolved`` for our device): node methods work now, or will in a moment."""


@attrs.frozen
class CancelInvoke:
    """The gateway cancelled an invoke (its caller gave up): stop the running handler."""

    invoke_id: str


@attrs.frozen
class ResponseReceived:
    """A response to a request the agent made (``node.event``, ``node.invoke.result``...), read
    once here: ``refusal`` is the typed error of an ``ok: false`` answer, ``reply`` the decoded
    payload of an ``ok: true`` one (a :class:`~.replies.NodeEventReply` for ``node.event``)."""

    response: Response
    method: str
    refusal: GatewayRejected | None = None
    reply: Any = attrs.field(default=None, repr=False)


@attrs.frozen
class Close:
    """Close the socket with this code; the connection then ends with ``error`` (if any)."""

    code: int
    reason: str
    error: NodeAgentError | None = None


@attrs.frozen
class LogProblem:
    """Something bad but survivable arrived (a malformed frame, an unknown response id)."""

    message: str
    detail: Any = None


@attrs.frozen
class HoldUntilReady:
    """From a handshake to its session only (never reaches the I/O layer): this event arrived
    after ``connect`` went out but before ``hello-ok``; deliver it once the session is READY.

    The OpenClaw gateway registers the node and starts pushing to it (the ``voicewake.changed``
    connect snapshot) concurrently with writing ``hello-ok``, so that push can overtake it."""

    event: Event


class Step(enum.Enum):
    """Where a handshake has got to, as it tells its session (see the session's transition table)."""

    #: ``connect`` went out (the first one, or one replacing an expired or approved request).
    CONNECT_SENT = "connect-sent"
    #: The gateway wants a person to approve this device (a request id or a code is on show).
    AWAITING_APPROVAL = "awaiting-approval"


@attrs.frozen
class HandshakeStep:
    """From a handshake to its session only (never reaches the I/O layer): the handshake moved
    on. The session changes state from these, from ``Ready`` and from ``Close``, never from what
    an action happens to carry."""

    step: Step


Action = Send | Ready | StoreDeviceToken | ForgetDeviceToken | PairingPending | Dispatch | InvokeStarted | \
    SurfaceApproved | CancelInvoke | ResponseReceived | Close | LogProblem

#: What a dialect's handshake may return to its session.
HandshakeAction = Action | HoldUntilReady | HandshakeStep
