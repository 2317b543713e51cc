"""The one edge to the MCP Python SDK: a live connection to one MCP server, as a small interface.

Everything above this module (supervisor, hub, builtin tools) sees :class:`McpSession` and our
own exceptions, never ``mcp.Client``, ``MCPError`` or anyio's exceptions, in the way
``httpcore`` maps its backends' errors at the I/O edge. That keeps the rest of the room testable
with a fake session and keeps an SDK upgrade in one file.

The SDK runs on anyio, and anyio runs on the event loop it finds: inside our ``trio.run`` every
anyio call lands on anyio's Trio backend (task groups are Trio nurseries, ``anyio.open_process``
is ``trio.lowlevel.open_process``, cancellation is ``trio.Cancelled``), so an SDK call is an
ordinary Trio checkpoint and a Trio cancel scope around it cancels the MCP request (the SDK then
sends ``notifications/cancelled`` to the server, shielded and bounded).

Two facts of SDK 2.x shape :func:`open_session`:

* It negotiates protocol 2026-07-28 with servers that speak it, where a server announces a
  changed tool list only on a ``subscriptions/listen`` stream the client opens; older servers
  send ``notifications/tools/list_changed`` unasked. We listen on the first and watch
  ``message_handler`` for the second, so either kind of server triggers a re-list.
* Nothing in the SDK tells a caller that the server went away while it sits idle. The transport
  below it does: the stdio transport and the test doubles set ``closed`` when the server's output
  ends, and :meth:`McpSession.wait_closed` waits on that.

The response cache is off (``cache=None``): the hub keeps the tool list itself and re-lists on
every change, so a cached listing could only be a stale one.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, Protocol

import trio

from .. import __version__
from ..errors import LocalError, Retry
from .descriptors import ListedTool

log = logging.getLogger("node_agent.tools")

#: A server that pages its tool list forever must not hang a re-list.
MAX_LIST_PAGES = 64
#: The reference node host's bound on one server's listing.
MAX_LISTED_TOOLS = 16384
_ERROR_MAX_CHARS = 1024

_CONNECTION_CLOSED = -32000  # mcp_types.jsonrpc.CONNECTION_CLOSED
_REQUEST_TIMEOUT = -32001  # mcp_types.jsonrpc.REQUEST_TIMEOUT


class McpError(LocalError):
    """Base of what this room raises about an MCP server. Transient: a server can come back."""

    retry = Retry.TRANSIENT


class McpStartError(McpError):
    """The server could not be started or did not complete the MCP handshake."""


class McpServerGone(McpError):
    """The server's connection ended (it exited or crashed) while we used it."""


class McpRequestFailed(McpError):
    """The server answered a request with an error, or with something that is not MCP."""


class McpSession(Protocol):
    """A live connection to one MCP server."""

    @property
    def closed(self) -> bool: ...

    async def list_tools(self) -> tuple[ListedTool, ...]:
        """Every tool, across pages. Raises :class:`McpServerGone` or :class:`McpRequestFailed`."""
        ...

    async def call_tool(self, name: str, arguments: Mapping[str, Any]) -> dict[str, Any]:
        """MCP's ``CallToolResult`` as wire JSON (camelCase keys). Raises like :meth:`list_tools`."""
        ...

    async def wait_closed(self) -> None:
        """Return once the server's connection has ended."""
        ...

    async def wait_tools_changed(self) -> None:
        """Return at the next tool-list change the server announces (each change once)."""
        ...


class SdkSession:
    """:class:`McpSession` over an entered ``mcp.Client``."""

    def __init__(self, client: Any, closed: trio.Event, label: str):
        self._client = client
        self._closed = closed
        self._label = label
        self._changed = trio.Event()
        self.listening = False  # a subscriptions/listen stream carries the change events

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    @property
    def protocol_version(self) -> str:
        return self._client.protocol_version

    async def list_tools(self) -> tuple[ListedTool, ...]:
        tools: list[ListedTool] = []
        cursor: str | None = None
        for _ in range(MAX_LIST_PAGES):
            with self._mapped("tools/list"):
                page = await self._client.list_tools(cursor=cursor)
            for tool in page.tools:
                if len(tools) >= MAX_LISTED_TOOLS:
                    return tuple(tools)
                tools.append(ListedTool(name=tool.name, description=tool.description,
                                        input_schema=tool.input_schema))
            cursor = page.next_cursor
            if not cursor:
                return tuple(tools)
        log.warning("MCP server %s: tool list still paging after %d pages; using what came so far",
                    self._label, MAX_LIST_PAGES)
        return tuple(tools)

    async def call_tool(self, name: str, arguments: Mapping[str, Any]) -> dict[str, Any]:
        with self._mapped(f"tools/call {name}"):
            result = await self._client.call_tool(name, dict(arguments))
            return result.model_dump(mode="json", by_alias=True, exclude_none=True)

    async def wait_closed(self) -> None:
        await self._closed.wait()

    async def wait_tools_changed(self) -> None:
        await self._changed.wait()
        self._changed = trio.Event()

    # -- the SDK's side ------------------------------------------------------------------------

    def tools_changed(self) -> None:
        self._changed.set()

    async def on_message(self, message: Any) -> None:
        """``message_handler``: a server of the 2025 era announces changes here, unasked."""
        if getattr(message, "method", None) == "notifications/tools/list_changed" and not self.listening:
            self.tools_changed()

    async def listen_for_changes(self) -> None:
        """The 2026-07-28 way: a ``subscriptions/listen`` stream, opened again if it drops while
        the connection lives (the spec has no replay, so each re-open also counts as a change)."""
        while not self.closed:
            try:
                async with self._client.listen(tools_list_changed=True) as subscription:
                    self.listening = True
                    async for _event in subscription:
                        self.tools_changed()
            except Exception as exc:  # noqa: BLE001  (SubscriptionLost or a dying connection: decided below)
                if self.closed:
                    return
                log.info("MCP server %s: change subscription ended (%s); listening again", self._label,
                         describe(exc))
            finally:
                self.listening = False
            if self.closed:
                return
            self.tools_changed()
            await trio.sleep(1.0)

    class _Mapper:
        def __init__(self, session: "SdkSession", what: str):
            self.session, self.what = session, what

        def __enter__(self) -> None:
            return None

        def __exit__(self, exc_type, exc, tb) -> bool:
            if exc is None or isinstance(exc, McpError) or is_control(exc):
                return False
            raise self.session._translate(exc, self.what) from exc

    def _mapped(self, what: str) -> "SdkSession._Mapper":
        return SdkSession._Mapper(self, what)

    def _translate(self, exc: BaseException, what: str) -> McpError:
        code = getattr(getattr(exc, "error", None), "code", None)
        if self.closed or code == _CONNECTION_CLOSED:
            return McpServerGone(f"MCP server {self._label} disconnected during {what}")
        if code == _REQUEST_TIMEOUT:
            return McpRequestFailed(f"{what} timed out at the MCP server {self._label}")
        return McpRequestFailed(f"{what}: {describe(exc)}")

    def __repr__(self) -> str:
        return f"<SdkSession {self._label} closed={self.closed} listening={self.listening}>"


@asynccontextmanager
async def open_session(target: Any, *, label: str, closed: trio.Event | None = None) -> AsyncIterator[SdkSession]:
    """Connect the SDK client to ``target`` (an SDK ``Transport``, or an in-process
    ``MCPServer``/``Server``) and yield the session. ``closed`` is the event the transport sets
    when the server's output ends (an in-process server never ends on its own)."""
    from mcp import Client  # noqa: PLC0415  (the SDK costs seconds to import; see tools.connectors)
    from mcp_types import Implementation  # noqa: PLC0415
    from mcp_types.version import MODERN_PROTOCOL_VERSIONS  # noqa: PLC0415

    closed = closed if closed is not None else trio.Event()
    holder: list[SdkSession] = []

    async def on_message(message: Any) -> None:
        if holder:
            await holder[0].on_message(message)

    entered = False
    try:
        async with Client(target, cache=None, message_handler=on_message,
                          client_info=Implementation(name="node-agent", version=__version__)) as client:
            entered = True
            session = SdkSession(client, closed, label)
            holder.append(session)
            async with trio.open_nursery() as nursery:
                capabilities = client.server_capabilities
                if (client.protocol_version in MODERN_PROTOCOL_VERSIONS and capabilities.tools is not None
                        and capabilities.tools.list_changed):
                    nursery.start_soon(session.listen_for_changes)
                try:
                    yield session
                finally:
                    nursery.cancel_scope.cancel()
    except BaseException as exc:
        if entered or is_control(exc):
            raise
        spawn_failed = isinstance(innermost(exc), OSError)  # no such command, bad cwd, no permission
        reason = "exited during the MCP handshake" if closed.is_set() and not spawn_failed else describe(exc)
        raise McpStartError(reason) from exc


def is_control(exc: BaseException) -> bool:
    """Cancellation or an interrupt, bare or inside an exception group: never ours to translate
    (a cancel scope must see its ``Cancelled``, even wrapped by the SDK's task groups)."""
    control = (trio.Cancelled, KeyboardInterrupt, SystemExit, GeneratorExit)
    if isinstance(exc, BaseExceptionGroup):
        return exc.split(control)[0] is not None
    return isinstance(exc, control)


def innermost(exc: BaseException) -> BaseException:
    """The first real error inside (nested) exception groups: the SDK's and our own task groups
    wrap what went wrong, and a person wants what went wrong."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def describe(exc: BaseException) -> str:
    """One line for a person about ``exc``, without secrets (SDK errors carry the server's
    words, never our environment)."""
    exc = innermost(exc)
    if isinstance(exc, OSError) and exc.strerror:
        text = f"{exc.strerror}" + (f": {exc.filename}" if exc.filename else "")
    else:
        text = str(exc) or type(exc).__name__
    text = " ".join(text.split())
    return text if len(text) <= _ERROR_MAX_CHARS else text[:_ERROR_MAX_CHARS - 1] + "…"
