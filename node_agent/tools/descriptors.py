"""From what the MCP servers list to what the gateway accepts: the published tool catalog.

Pure: no Trio, no SDK, no logging. In: every ready server's listed tools. Out: a
:class:`Catalog` of ``node.pluginTools.update`` descriptors plus what was adjusted or left out,
and why, so the hub can log it once per change.

The gateway's rules (openclaw 2026.9.6, ``packages/gateway-protocol/src/schema/nodes.ts`` and
``src/gateway/node-plugin-tool-snapshot.ts``) decide every choice here:

* The params schema is closed and validated *before* anything else: a single descriptor with a
  bad ``name`` (pattern ``^[A-Za-z][A-Za-z0-9_-]{0,63}$``), an empty ``description`` or an extra
  key makes the gateway reject the whole batch. So names are always rewritten into the pattern
  and descriptions are never blank: a bad tool can cost itself, never its neighbours.
* After validation the gateway drops silently: tools past the 128th, duplicates of a
  ``(pluginId, name)`` pair, ``node-mcp`` tools without ``mcp.{server,tool}``, tools whose
  ``command`` the node may not run. We never rely on that silence: the catalog is already
  within the limits, so what we publish is what the gateway keeps (once approved).
* A description is cut at 1024 UTF-16 code units (JavaScript's ``String.length``), so an
  astral character counts twice.

Names: ``<server>_<tool>``, as the OpenClaw node host names its MCP tools, so two servers may
both have a ``status`` tool. Each part is squeezed into ``[A-Za-z0-9_-]``; the server part keeps
at most 31 characters; a clash (case-insensitive, as the agent side compares tool names) gets
``_2``, ``_3``... Servers and tools are taken in sorted order so a name does not depend on which
server came up first. The original MCP tool name always travels untouched in ``mcp.tool``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

PLUGIN_ID = "node-mcp"
COMMAND = "mcp.tools.call.v1"

MAX_TOOLS = 128
NAME_MAX = 64
SERVER_FRAGMENT_MAX = 31
DESCRIPTION_MAX_UTF16 = 1024
#: Bounds of the reference node host (``src/node-host/mcp.ts``): one descriptor's JSON at most
#: 1 MiB, the whole catalog at most 10 MiB (the gateway's frame limit is 25 MiB).
MAX_DESCRIPTOR_BYTES = 1024 * 1024
MAX_CATALOG_BYTES = 10 * 1024 * 1024

NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
_NOT_NAME_CHARS = re.compile(r"[^A-Za-z0-9_-]+")
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def default_parameters() -> dict[str, Any]:
    """What the gateway itself substitutes for a tool without a usable input schema."""
    return {"type": "object", "properties": {}, "additionalProperties": True}


@attrs.frozen(kw_only=True)
class ListedTool:
    """One tool as a server listed it (decoded from MCP's ``Tool`` at the SDK edge)."""

    name: str
    description: str | None = None
    input_schema: Mapping[str, Any] | None = None


@attrs.frozen(kw_only=True)
class ToolDescriptor:
    """One entry of ``node.pluginTools.update``'s ``tools``."""

    name: str
    description: str
    parameters: Mapping[str, Any]
    server: str
    tool: str

    def to_wire(self) -> dict[str, Any]:
        return {"pluginId": PLUGIN_ID, "name": self.name, "description": self.description,
                "parameters": dict(self.parameters), "command": COMMAND,
                "mcp": {"server": self.server, "tool": self.tool}}


@attrs.frozen
class Note:
    """Something about one listed tool a person should know: it was renamed, its description
    cut, or it was left out (``skipped``)."""

    server: str
    tool: str
    what: str
    skipped: bool = False

    def __str__(self) -> str:
        return f"{self.server}/{self.tool}: {self.what}"


@attrs.frozen
class Catalog:
    descriptors: tuple[ToolDescriptor, ...] = ()
    notes: tuple[Note, ...] = ()

    def find(self, server: str, tool: str) -> ToolDescriptor | None:
        for descriptor in self.descriptors:
            if descriptor.server == server and descriptor.tool == tool:
                return descriptor
        return None

    def of_server(self, server: str) -> tuple[ToolDescriptor, ...]:
        return tuple(d for d in self.descriptors if d.server == server)

    @property
    def skipped(self) -> tuple[Note, ...]:
        return tuple(n for n in self.notes if n.skipped)

    def to_wire(self) -> list[dict[str, Any]]:
        return [d.to_wire() for d in self.descriptors]


def build_catalog(listed: Mapping[str, Sequence[ListedTool]]) -> Catalog:
    """Every ready server's tools -> descriptors within the gateway's limits (see module doc)."""
    used: set[str] = set()
    descriptors: list[ToolDescriptor] = []
    notes: list[Note] = []
    total_bytes = 0
    for server in sorted(listed):
        if not server or server != server.strip():  # the config forbids it; the gateway would refuse
            notes.extend(Note(server, t.name, "its server name is blank or padded", skipped=True)
                         for t in listed[server])
            continue
        for tool in sorted(listed[server], key=lambda t: t.name):
            tool_name = tool.name.strip()
            if not tool_name:
                notes.append(Note(server, tool.name, "has no name", skipped=True))
                continue
            if len(descriptors) >= MAX_TOOLS:
                notes.append(Note(server, tool_name, f"over the gateway's {MAX_TOOLS}-tool limit", skipped=True))
                continue
            name = _reserve(_base_name(server, tool_name), used)
            if name != f"{server}_{tool_name}":
                notes.append(Note(server, tool_name, f"published as {name!r} (names must match {NAME_RE.pattern})"))
            description, cut = _description(tool.description, tool_name)
            if cut:
                notes.append(Note(server, tool_name, f"description cut to {DESCRIPTION_MAX_UTF16} characters"))
            schema = tool.input_schema
            parameters = dict(schema) if isinstance(schema, Mapping) else default_parameters()
            descriptor = ToolDescriptor(name=name, description=description, parameters=parameters,
                                        server=server, tool=tool_name)
            size = _json_bytes(descriptor.to_wire())
            if size is None or size > MAX_DESCRIPTOR_BYTES:
                used.discard(name.lower())
                notes.append(Note(server, tool_name, "descriptor over 1 MiB (input schema too large"
                                  " or not JSON)", skipped=True))
                continue
            if total_bytes + size > MAX_CATALOG_BYTES:
                used.discard(name.lower())
                notes.append(Note(server, tool_name, "catalog over 10 MiB", skipped=True))
                continue
            total_bytes += size
            descriptors.append(descriptor)
    return Catalog(tuple(descriptors), tuple(notes))


def _fragment(raw: str, fallback: str) -> str:
    squeezed = _NOT_NAME_CHARS.sub("_", raw.strip()).strip("_-") or fallback
    return squeezed if squeezed[0].isascii() and squeezed[0].isalpha() else f"{fallback}_{squeezed}"


def _base_name(server: str, tool: str) -> str:
    server_part = _fragment(server, "mcp")[:SERVER_FRAGMENT_MAX]
    budget = max(1, NAME_MAX - len(server_part) - 1)
    return f"{server_part}_{_fragment(tool, 'tool')[:budget]}"


def _reserve(base: str, used: set[str]) -> str:
    index = 1
    while True:
        suffix = "" if index == 1 else f"_{index}"
        candidate = base[:NAME_MAX - len(suffix)] + suffix
        if candidate.lower() not in used:
            used.add(candidate.lower())
            return candidate
        index += 1


def _description(raw: str | None, tool_name: str) -> tuple[str, bool]:
    text = _CONTROL_CHARS.sub(" ", raw or "").strip() or f"MCP tool {tool_name}"
    cut = truncate_utf16(text, DESCRIPTION_MAX_UTF16)
    return cut, cut != text


def utf16_len(text: str) -> int:
    return sum(2 if ord(ch) > 0xFFFF else 1 for ch in text)


def truncate_utf16(text: str, limit: int) -> str:
    """The longest prefix of ``text`` whose UTF-16 length is at most ``limit`` (never half a
    surrogate pair)."""
    if len(text) * 2 <= limit or utf16_len(text) <= limit:
        return text
    units = 0
    for index, ch in enumerate(text):
        units += 2 if ord(ch) > 0xFFFF else 1
        if units > limit:
            return text[:index]
    return text


def _json_bytes(value: Any) -> int | None:
    try:
        return len(json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode())
    except (TypeError, ValueError):
        return None
