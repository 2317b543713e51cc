"""Bounding an MCP tool result before it crosses ``node.invoke.result``.

Pure. The reference node host (``src/node-host/invoke-mcp-result.ts``) caps a result at 1 MiB
of text and 20 MiB in all, and this follows its shape so a gateway agent sees the same thing from
either host:

* Text blocks share one 1 MiB budget (UTF-8 bytes). The block that crosses it is cut at a
  character boundary and ends with a marker line; later text blocks are dropped; other blocks
  (images, audio, resource links) are kept for the second pass.
* The whole payload must fit 20 MiB. ``structuredContent`` is kept whole or not at all, then
  blocks are taken in order while they fit; if anything was dropped a final text block says so.

One difference, on purpose: sizes are measured as the payload travels, i.e. inside the frame's
``payloadJSON`` *string*, where every quote, backslash and control character is escaped again.
The reference measures the plain JSON, so a result rich in quotes can pass its 20 MiB check and
still exceed the gateway's 25 MiB frame limit (which closes the socket). Measured our way it
cannot. Only ``content``, ``structuredContent`` and ``isError`` are passed on: the rest of an MCP
result (``_meta``, ``resultType``) means nothing to the gateway.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

TEXT_MAX_BYTES = 1024 * 1024
PAYLOAD_MAX_BYTES = 20 * 1024 * 1024
TEXT_MARKER = "\n[truncated: MCP text content exceeded 1 MB]"
PAYLOAD_MARKER = "[truncated: MCP result exceeded 20 MB]"


def bound_result(result: Mapping[str, Any], *, text_max: int = TEXT_MAX_BYTES,
                 payload_max: int = PAYLOAD_MAX_BYTES) -> dict[str, Any]:
    """``{content, structuredContent?, isError?}`` within the limits (see module doc)."""
    blocks = [dict(b) for b in result.get("content") or () if isinstance(b, Mapping)]
    structured = result.get("structuredContent")
    is_error = result.get("isError") is True
    blocks = _bound_text(blocks, text_max)

    marker = {"type": "text", "text": PAYLOAD_MARKER}
    reserve = wire_bytes(marker) + 1
    used = wire_bytes({"content": [], **({"isError": True} if is_error else {})})
    truncated = False
    kept_structured = None
    if isinstance(structured, Mapping):
        size = wire_bytes(structured)
        cost = None if size is None else size + len(',"structuredContent":') + 2  # the key's quotes, escaped
        if cost is not None and used + cost + reserve <= payload_max:
            kept_structured, used = dict(structured), used + cost
        else:
            truncated = True
    content: list[dict[str, Any]] = []
    for block in blocks:
        size = wire_bytes(block)
        cost = None if size is None else size + (1 if content else 0)
        if cost is None or used + cost + reserve > payload_max:
            truncated = True
            continue
        content.append(block)
        used += cost
    if truncated:
        content.append(marker)
    payload: dict[str, Any] = {"content": content}
    if kept_structured is not None:
        payload["structuredContent"] = kept_structured
    if is_error:
        payload["isError"] = True
    return payload


def _bound_text(blocks: list[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
    def text_of(block: dict[str, Any]) -> str | None:
        text = block.get("text")
        return text if block.get("type") == "text" and isinstance(text, str) else None

    total = sum(len(t.encode()) for b in blocks if (t := text_of(b)) is not None)
    if total <= limit:
        return blocks
    remaining = limit - len(TEXT_MARKER.encode())
    out: list[dict[str, Any]] = []
    done = False
    for block in blocks:
        text = text_of(block)
        if text is None:
            out.append(block)
            continue
        if done:
            continue
        raw = text.encode()
        if len(raw) <= remaining:
            out.append(block)
            remaining -= len(raw)
            if remaining == 0:
                out.append({"type": "text", "text": TEXT_MARKER.lstrip()})
                done = True
            continue
        head = raw[:max(remaining, 0)].decode("utf-8", "ignore")
        out.append({**block, "text": head + TEXT_MARKER})
        done = True
    return out


def wire_bytes(value: Any) -> int | None:
    """Bytes ``value`` takes inside a frame's ``payloadJSON`` string (``None``: not JSON)."""
    try:
        inner = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError):
        return None
    return len(json.dumps(inner, ensure_ascii=False).encode()) - 2
