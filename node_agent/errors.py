"""One exception tree for the whole agent, typed by blame and carrying a retry category.

Blame answers "whose fault is it?": ``LocalError`` is ours (bad config, a secret store that
will not answer, a bug that tried an illegal protocol step), ``GatewayError`` is the other end's
(it refused us, went away, or sent garbage). The retry category answers "what should the
supervisor do next?" and is the only thing the reconnect loop looks at, so a new error never
needs a new branch there.

Messages never contain secrets: callers pass tokens around as :class:`node_agent.secret.Secret`,
whose ``str`` is ``***``; a gateway error's ``details`` are copied through :func:`_safe_details`.
"""

from __future__ import annotations

import enum
from typing import Any, Mapping


class Retry(enum.Enum):
    """What the supervisor does after an error ends a connection."""

    #: Network trouble, a dropped socket, a stalled gateway: exponential backoff 1 s -> 30 s.
    TRANSIENT = "transient"
    #: The gateway said it is restarting (``shutdown`` / close 1012): wait what it announced.
    SERVER_RESTART = "server-restart"
    #: The gateway is starting (``UNAVAILABLE`` + ``retryAfterMs``): retry soon, at the hint.
    STARTING = "starting"
    #: Too many attempts: back off long (30 s -> 5 min) so we do not make it worse.
    RATE_LIMITED = "rate-limited"
    #: A person must approve this device: retry at a calm cadence to keep the request alive.
    PAIRING_PENDING = "pairing-pending"
    #: Our stored device token was refused: forget it and retry at once with the shared token.
    REAUTH = "reauth"
    #: Nothing will change by retrying (wrong shared token, protocol mismatch, rejected pairing):
    #: stop and tell the person what to fix. Exits non-zero so a service manager notices.
    FATAL = "fatal"


class Blame(enum.Enum):
    LOCAL = "local"
    GATEWAY = "gateway"


class NodeAgentError(Exception):
    """Base of every error the agent raises on purpose."""

    blame: Blame = Blame.LOCAL
    retry: Retry = Retry.FATAL
    #: One sentence telling a person what to do about it (shown by the CLI, ``status``, ``doctor``).
    hint: str | None = None
    #: The process exit status when this error ends a command; None: by the retry category
    #: (78, EX_CONFIG, for FATAL; 1 otherwise).
    exit_status: int | None = None

    def __init__(self, message: str, *, retry: Retry | None = None, hint: str | None = None):
        super().__init__(message)
        if retry is not None:
            self.retry = retry
        if hint is not None:
            self.hint = hint

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else type(self).__name__

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, retry={self.retry.value})"


# --- our side ---------------------------------------------------------------------------------


class LocalError(NodeAgentError):
    blame = Blame.LOCAL


class ConfigError(LocalError):
    """The configuration cannot work (bad URL, unreadable file, insecure ``ws://``...)."""

    retry = Retry.FATAL


class LocalProtocolError(LocalError):
    """We tried something the protocol forbids in the current state: a bug on our side."""

    retry = Retry.FATAL


class StateDirBusy(LocalError):
    """Another agent holds this state directory (:mod:`node_agent.lock`); the message names it.

    Its own exit status, 75 (EX_TEMPFAIL: the same command works once the other agent is gone),
    so scripts and service managers can tell it from a configuration error (78); see
    :data:`node_agent.service.spec.EXIT_BUSY` for what the systemd unit does with it."""

    retry = Retry.FATAL
    exit_status = 75


class SecretStoreError(LocalError):
    """The secret store failed. Transient by default: a keyring may come back."""

    retry = Retry.TRANSIENT


class IdentityError(LocalError):
    """The device identity exists but cannot be read. Never 'fixed' by generating a new one."""

    retry = Retry.FATAL


# --- the gateway's side -----------------------------------------------------------------------


class GatewayError(NodeAgentError):
    blame = Blame.GATEWAY
    retry = Retry.TRANSIENT


class GatewayUnreachable(GatewayError):
    """Could not open the WebSocket, or it broke under us."""


class ConnectionLost(GatewayError):
    """The socket closed (``close_code`` tells how) or went silent past the watchdog."""

    def __init__(self, message: str, *, close_code: int | None = None, close_reason: str | None = None,
                 retry: Retry | None = None, retry_after_s: float | None = None):
        super().__init__(message, retry=retry)
        self.close_code = close_code
        self.close_reason = close_reason
        self.retry_after_s = retry_after_s


class RemoteProtocolError(GatewayError):
    """The gateway sent something that is not the protocol (malformed, oversized, out of order)."""


class GatewayRejected(GatewayError):
    """The gateway answered a request with ``ok: false``: a refused ``connect`` (classified by the
    dialect's handshake) or a refused call after ``hello-ok`` (``method`` names it).

    ``code`` is the top-level error code, ``detail_code`` the finer ``details.code`` (OpenClaw
    puts the useful distinction there: ``PAIRING_REQUIRED``, ``AUTH_TOKEN_MISMATCH``...).
    ``signature_version``, when set, is the device-signature version the next connect should use
    (the gateway refused ours as invalid and may only know the older one).
    """

    def __init__(self, message: str, *, code: str, detail_code: str | None = None,
                 details: Mapping[str, Any] | None = None, retry: Retry | None = None,
                 retry_after_s: float | None = None, hint: str | None = None, method: str | None = None,
                 signature_version: int | None = None):
        super().__init__(message, retry=retry, hint=hint)
        self.code = code
        self.detail_code = detail_code
        self.details = _safe_details(details or {})
        self.retry_after_s = retry_after_s
        self.method = method
        self.signature_version = signature_version

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.message!r}, code={self.code!r}, "
                f"detail_code={self.detail_code!r}, retry={self.retry.value})")


class SurfacePending(GatewayRejected):
    """A node method was refused because the node's declared commands are not approved
    (OpenClaw ``PAIRING_CHANGED``): a person must run ``openclaw nodes approve``, or the gateway
    has not caught up with an approval it just broadcast. Classified once, in the protocol core
    (:func:`node_agent.protocol.replies.call_refused`)."""

    retry = Retry.PAIRING_PENDING


class PairingStale(GatewayRejected):
    """The answer to an invoke was refused with OpenClaw ``PAIRING_CHANGED``. The gateway had
    dispatched that invoke on this connection, so its surface was live; the refusal means the
    connection's pairing went stale meanwhile (seen right after a gateway restart, when the
    pairing worker publishes after the node has connected). The gateway has invalidated the
    session, routes nothing more to it and closes it only on the node's next request: reconnect
    now rather than a heartbeat later. Classified in :func:`node_agent.protocol.replies.call_refused`."""

    retry = Retry.TRANSIENT


class PairingRequired(GatewayRejected):
    """This device is waiting for a person to approve it."""

    retry = Retry.PAIRING_PENDING

    @property
    def request_id(self) -> str | None:
        value = self.details.get("requestId")
        return str(value) if value else None

    @property
    def reason(self) -> str | None:
        value = self.details.get("reason")
        return str(value) if value else None


class PairingRejected(GatewayError):
    """A person (or the gateway) said no. Retrying would just ask again."""

    retry = Retry.FATAL


class InvokeError(NodeAgentError):
    """Raised by a command handler to answer ``node.invoke`` with ``ok: false``."""

    blame = Blame.LOCAL
    retry = Retry.TRANSIENT

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


_SECRET_DETAIL_KEYS = frozenset({"token", "deviceToken", "bootstrapToken", "password", "signature"})


def _safe_details(details: Mapping[str, Any]) -> dict[str, Any]:
    """Copy gateway error details, dropping anything that looks like a credential."""
    return {k: ("***" if k in _SECRET_DETAIL_KEYS else v) for k, v in details.items()}
