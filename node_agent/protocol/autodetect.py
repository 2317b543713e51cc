"""Which dialect a gateway speaks, from the first frame it sends (or its silence).

The two dialects open differently, and that is the whole test: the real OpenClaw gateway sends
a typed ``connect.challenge {nonce, ts}`` the moment the socket opens and waits for a signed
``connect``; the gateway the published pages describe says nothing until we ``connect``. So
the I/O layer opens the socket, waits a short window (:data:`DETECT_WINDOW_S`) for a first
frame, asks :func:`choose_dialect`, builds a session with :func:`get_dialect`, starts it, and
then feeds it the frame it already read. Pure functions: no clock, no I/O.

A wrong guess is recoverable: a JSON-RPC session that meets an OpenClaw challenge closes with a
TRANSIENT error (see :mod:`.jsonrpc`), so the next attempt detects again.
"""

from __future__ import annotations

import json
from typing import Any, Mapping

from ..errors import ConfigError
from .dialect import Dialect
from .jsonrpc import JsonRpcDialect
from .openclaw import OpenClawDialect

#: How long the I/O layer waits for an unprompted first frame. OpenClaw sends its challenge
#: within milliseconds of the upgrade on loopback and LAN; the margin covers a loaded Pi on Wi-Fi.
DETECT_WINDOW_S = 0.75

OPENCLAW = OpenClawDialect.name
JSONRPC = JsonRpcDialect.name
#: What a person may put in the configuration.
DIALECT_NAMES = (OPENCLAW, JSONRPC)

#: OpenClaw's frame discriminator values; the documented frames carry no ``type``.
_OPENCLAW_TYPES = frozenset({"event", "res", "req"})


def choose_dialect(first_frame: str | bytes | None) -> str:
    """``"openclaw"`` or ``"jsonrpc"`` for the first frame seen within the window.

    * ``None`` (silence): ``"jsonrpc"``: the documented gateway waits for our ``connect``.
    * An OpenClaw-typed frame (``{"type": "event" | "res" | "req", ...}``; in practice always
      the ``connect.challenge`` with a ``nonce``): ``"openclaw"``.
    * Anything else, JSON-RPC-shaped or not, is ``"jsonrpc"``: only OpenClaw has a reliable
      signature, and garbage will be reported by whichever session reads it next.
    """
    if first_frame is None:
        return JSONRPC
    obj = _load(first_frame)
    if obj is None:
        return JSONRPC
    if _is_openclaw_challenge(obj):
        return OPENCLAW
    kind = obj.get("type")
    if isinstance(kind, str) and kind in _OPENCLAW_TYPES and "jsonrpc" not in obj:
        return OPENCLAW
    return JSONRPC


def is_openclaw_challenge(first_frame: str | bytes | None) -> bool:
    """Whether a first frame is OpenClaw's ``connect.challenge`` itself (with its nonce), not
    just OpenClaw-shaped (``doctor`` tells the two apart)."""
    obj = _load(first_frame) if first_frame is not None else None
    return obj is not None and _is_openclaw_challenge(obj)


def get_dialect(name: str) -> Dialect:
    """A fresh dialect object for a name from :data:`DIALECT_NAMES`."""
    if name == OPENCLAW:
        return OpenClawDialect()
    if name == JSONRPC:
        return JsonRpcDialect()
    raise ConfigError(f"unknown gateway dialect {name!r}",
                      hint=f"use one of: auto, {', '.join(DIALECT_NAMES)}")


def _is_openclaw_challenge(obj: Mapping[str, Any]) -> bool:
    payload = obj.get("payload")
    return (obj.get("type") == "event" and obj.get("event") == "connect.challenge"
            and isinstance(payload, Mapping) and isinstance(payload.get("nonce"), str))


def _load(frame: str | bytes) -> dict[str, Any] | None:
    try:
        if isinstance(frame, (bytes, bytearray, memoryview)):
            frame = bytes(frame).decode("utf-8")
        obj = json.loads(frame)
    except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        return None
    return obj if isinstance(obj, dict) else None
