"""What the gateway's answers to our calls mean: refusals typed once, replies decoded once.

Every response to a request the node made after ``hello-ok`` passes through here, in the
session, before the I/O layer sees it (:class:`~.actions.ResponseReceived`):

* ``ok: false`` becomes a :class:`~node_agent.errors.GatewayRejected` (blamed on the gateway,
  carrying a retry category), and OpenClaw's ``PAIRING_CHANGED`` on a node method becomes
  :class:`~node_agent.errors.SurfacePending`, except on ``node.invoke.result``, where it can
  only mean the connection went stale (:class:`~node_agent.errors.PairingStale`). Nothing above the protocol core matches codes or
  message text.
* ``ok: true`` to ``node.event`` is read as a :class:`NodeEventReply`. OpenClaw answers
  ``{ok: true, handled: false, reason}`` for an event it dropped (``invalid_payload``,
  ``unsupported_event``, ``unmatched_exec_event``...), so "ok" alone says nothing about whether
  the gateway took the event.
"""

from __future__ import annotations

from typing import Any, Mapping

import attrs

from ..errors import GatewayRejected, PairingStale, Retry, SurfacePending
from .models import ErrorShape


@attrs.frozen(kw_only=True)
class NodeEventReply:
    """The gateway's answer to one ``node.event``. ``handled`` is None when the gateway did not
    say (the documented dialect; older releases answer a bare ``{ok: true}``)."""

    event: str
    handled: bool | None = None
    reason: str | None = None

    @property
    def refused(self) -> bool:
        """The gateway said it dropped the event."""
        return self.handled is False


def call_refused(method: str, error: ErrorShape) -> GatewayRejected:
    """Type a refused call. ``method`` is the request's method (``node.event``, ``voicewake.get``...)."""
    detail = error.detail_code
    retry_after_s = error.retry_after_ms / 1000 if error.retry_after_ms is not None else None
    text = f"{method} refused: {error.code}{'/' + detail if detail else ''}: {error.message or 'no reason given'}"
    kwargs: dict[str, Any] = dict(code=error.code, detail_code=detail, details=error.details,
                                  retry_after_s=retry_after_s, method=method)
    if detail == "PAIRING_CHANGED":
        # The gateway dispatches invokes only to a live surface: refusing the answer to one is
        # not "commands pending" but "this connection's pairing is no longer current".
        if method == "node.invoke.result":
            return PairingStale(text, **kwargs)
        return SurfacePending(text, **kwargs)
    if error.code == "RATE_LIMITED" or error.retryable is False:
        return GatewayRejected(text, retry=Retry.RATE_LIMITED, **kwargs)
    return GatewayRejected(text, retry=Retry.TRANSIENT, **kwargs)


def decode_reply(method: str, payload: Any, *, event: str | None = None) -> Any:
    """The typed reply for methods whose answers the node acts on (``node.event``: ``event`` is
    the name of the event we sent); other payloads pass as the gateway sent them."""
    if method != "node.event":
        return payload
    fields = payload if isinstance(payload, Mapping) else {}
    handled = fields.get("handled")
    reason = fields.get("reason")
    return NodeEventReply(event=event or "",
                          handled=handled if isinstance(handled, bool) else None,
                          reason=reason if isinstance(reason, str) and reason else None)
