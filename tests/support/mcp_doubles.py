"""MCP servers for tests that need exact virtual time: the real SDK on both ends, in memory.

:class:`MemoryServer` is a :class:`~node_agent.tools.supervisor.Connector` whose every ``open``
runs a fresh real ``MCPServer`` (built by ``build``) over the SDK's in-memory JSON-RPC streams,
the same framing a stdio child speaks. What a child process can do wrong, it can do too:

* ``crash()``: the server stops at once and its output ends (what ``os._exit`` in a child does);
  calls in flight see the connection close, the supervisor sees the end of output.
* ``behaviour = "exit"``: the output ends before the handshake (a server that dies on start).
* ``behaviour = "silent"``: the streams open and nothing ever answers (a server hung on start).

No subprocess, no sleep: under ``autojump_clock`` every timeout lands at its exact virtual time.
Real child processes are covered by tests/tools/test_stdio_servers.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import trio

from node_agent.tools.session import SdkSession, open_session
from node_agent.tools.stdio import WatchedReadStream


class MemoryServer:
    def __init__(self, name: str, build: Callable[["MemoryServer"], Any]):
        self.name = name
        self.build = build
        self.behaviour = "ok"
        self.opens = 0
        self.stderr: tuple[str, ...] = ()
        self._scope: trio.CancelScope | None = None

    def crash(self) -> None:
        if self._scope is not None:
            self._scope.cancel()

    def diagnostics(self) -> tuple[str, ...]:
        return self.stderr

    @asynccontextmanager
    async def open(self) -> AsyncIterator[SdkSession]:
        from mcp.shared.memory import create_client_server_memory_streams  # noqa: PLC0415

        self.opens += 1
        closed = trio.Event()
        server = self.build(self)

        @asynccontextmanager
        async def transport() -> AsyncIterator[tuple[Any, Any]]:
            async with create_client_server_memory_streams() as (client_streams, server_streams):
                client_read, client_write = client_streams
                server_read, server_write = server_streams
                async with trio.open_nursery() as nursery:
                    async def serve() -> None:
                        with trio.CancelScope() as self._scope:
                            if self.behaviour == "ok":
                                low = server._lowlevel_server  # noqa: SLF001  (as the SDK's own transport does)
                                await low.run(server_read, server_write, low.create_initialization_options())
                            elif self.behaviour == "silent":
                                await trio.sleep_forever()
                        await server_write.aclose()  # the end of the server's output

                    nursery.start_soon(serve)
                    try:
                        yield WatchedReadStream(client_read, closed), client_write
                    finally:
                        self.crash()

        async with open_session(transport(), label=self.name, closed=closed) as session:
            yield session


def tool_server(name: str = "fixture", **tools: Callable[..., Any]) -> Callable[[MemoryServer], Any]:
    """A ``build`` for :class:`MemoryServer`: an ``MCPServer`` with ``tools`` (name -> function)."""
    def build(_memory: MemoryServer) -> Any:
        from mcp.server.mcpserver import MCPServer  # noqa: PLC0415

        server = MCPServer(name)
        for tool_name, fn in tools.items():
            server.add_tool(fn, name=tool_name, description=(fn.__doc__ or tool_name).strip())
        return server

    return build
