"""What the session asks the I/O layer to do.

The session never performs I/O: every input (a frame, the passage of time, a socket close)
returns a list of these, and the Trio layer carries them out in order. Each action is a small
frozen record; none holds a secret in its ``repr``.
"""

from __future__ import annotations

from typing import Any

import attrs

from ..errors import NodeAgentError
from ..secret import Secret
from .models import Event, HelloOk, Response


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
class CancelInvoke:
    """The gateway cancelled an invoke (its caller gave up): stop the running handler."""

    invoke_id: str


@attrs.frozen
class ResponseReceived:
    """A response to a request the agent made (``node.event``, ``node.invoke.result``...)."""

    response: Response
    method: str


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


Action = Send | Ready | StoreDeviceToken | ForgetDeviceToken | PairingPending | Dispatch | \
    CancelInvoke | ResponseReceived | Close | LogProblem

#: What a dialect's handshake may return to its session.
HandshakeAction = Action | HoldUntilReady
