"""Typed bodies for the events only the documented (JSON-RPC) pages describe.

The published Events API lists payloads that the real OpenClaw gateway either shapes
differently or never sends to a node (see the gateway notes, §10). The shared models in
:mod:`.models` cover what both dialects agree on; this module holds the rest, so the shared
module does not grow a second vocabulary. Every field the pages show is here, named after the
wire (camelCase on the wire, snake_case here); every field is optional unless the event means
nothing without it, because the pages never say which fields are required.

Only :mod:`.jsonrpc` decodes into these. Handlers match on the class, exactly as for the
shared models.
"""

from __future__ import annotations

from typing import Any

import attrs

from ..secret import Secret
from .models import EventBody

# --- agent and chat ---------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Agent(EventBody):
    """``agent``: one chunk of an agent run. ``stream`` is ``assistant``, ``tool`` or ``lifecycle``;
    ``data`` is that stream's object (``{type, text}``, ``{phase, name, toolCallId, input}``,
    ``{phase}``), kept as a dict because it differs per stream."""

    wire_name = "agent"
    run_id: str
    stream: str
    data: dict[str, Any] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class Chat(EventBody):
    """``chat``: a WebChat session update; ``message`` is ``{role, content}`` for ``type: message``."""

    wire_name = "chat"
    session_id: str | None = None
    type: str | None = None
    message: dict[str, Any] | None = None


# --- system -----------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class PresenceNode:
    id: str
    name: str | None = None
    online: bool | None = None
    last_seen: int | None = None


@attrs.frozen(kw_only=True)
class Presence(EventBody):
    """``presence``: the nodes the gateway knows, with a version for gap detection."""

    wire_name = "presence"
    nodes: tuple[PresenceNode, ...] = ()
    version: int | None = None


@attrs.frozen(kw_only=True)
class HealthChannel:
    id: str
    status: str | None = None
    account: str | None = None
    error: str | None = None


@attrs.frozen(kw_only=True)
class Health(EventBody):
    """``health``: ``status`` is ``healthy``, ``degraded`` or ``unhealthy``."""

    wire_name = "health"
    status: str | None = None
    channels: tuple[HealthChannel, ...] = ()
    version: int | None = None


@attrs.frozen(kw_only=True)
class Heartbeat(EventBody):
    """``heartbeat``: the pages call it a client heartbeat acknowledgment, with the gateway's
    wall clock. (In the real gateway it is an agent heartbeat-run status; different dialect.)"""

    wire_name = "heartbeat"
    timestamp: int | None = None


@attrs.frozen(kw_only=True)
class Cron(EventBody):
    """``cron``: ``status`` is ``running``, ``completed`` or ``failed``."""

    wire_name = "cron"
    id: str
    status: str | None = None
    started_at: int | None = None


@attrs.frozen(kw_only=True)
class UpdateAvailable(EventBody):
    wire_name = "update.available"
    version: str
    release_notes: str | None = None
    download_url: str | None = None


# --- pairing ----------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class NodePairRequested(EventBody):
    """``node.pair.requested``: some node asked to pair (an operator-facing broadcast)."""

    wire_name = "node.pair.requested"
    node_id: str
    name: str | None = None
    platform: str | None = None
    requested_at: int | None = None


@attrs.frozen(kw_only=True)
class DevicePairRequested(EventBody):
    """``device.pair.requested``, the pages' "alternative format": it carries the code to show."""

    wire_name = "device.pair.requested"
    device_id: str
    name: str | None = None
    challenge: str | None = None


@attrs.frozen(kw_only=True)
class DevicePairResolved(EventBody):
    """``device.pair.resolved``. The pages show no ``token``; we read one if it is there, as for
    ``node.pair.resolved``."""

    wire_name = "device.pair.resolved"
    device_id: str
    approved: bool
    token: Secret | None = attrs.field(default=None, repr=False)


# --- exec approvals ---------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class ExecApprovalRequested(EventBody):
    wire_name = "exec.approval.requested"
    request_id: str
    command: str | None = None
    requested_at: int | None = None
    requested_by: str | None = None


@attrs.frozen(kw_only=True)
class ExecApprovalResolved(EventBody):
    wire_name = "exec.approval.resolved"
    request_id: str
    approved: bool
    reason: str | None = None


#: Every body this module defines, for the codec's name table.
DOCUMENTED_EVENTS: tuple[type[EventBody], ...] = (
    Agent, Chat, Presence, Health, Heartbeat, Cron, UpdateAvailable, NodePairRequested,
    DevicePairRequested, DevicePairResolved, ExecApprovalRequested, ExecApprovalResolved,
)
