"""How the hub reaches each kind of server: a child process over stdio, or in process.

Also the cost of the SDK itself: ``import mcp`` builds its pydantic models at import time and takes
seconds (about 6 s on the 2-core build machine, more on a Pi). :func:`load_sdk` does it in a
worker thread, so the agent's gateway connection comes up at its usual speed while the tools room
is still loading; the servers start once it is done.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, Callable

import trio

from ..errors import ConfigError
from .session import SdkSession, open_session
from .stdio import StderrTail, stdio_transport

_SDK_MODULES = ("mcp", "mcp.client.stdio", "mcp.client.subscriptions", "mcp.server.mcpserver")


def sdk_installed() -> bool:
    return importlib.util.find_spec("mcp") is not None


def require_sdk() -> None:
    if not sdk_installed():
        raise ConfigError("[mcp] is configured but the MCP SDK is not installed",
                          hint="install the tools extra: pip install 'node-agent[tools]'")


async def load_sdk() -> None:
    """Import the SDK off the event loop (see module doc). Idempotent."""
    require_sdk()
    await trio.to_thread.run_sync(lambda: [importlib.import_module(m) for m in _SDK_MODULES],
                                  abandon_on_cancel=True)


class StdioConnector:
    """A configured ``[[mcp.servers]]`` entry, spawned fresh for every run."""

    def __init__(self, name: str, argv: Sequence[str], *, env: Mapping[str, str], cwd: str | None = None,
                 masked: Sequence[str] = ()):
        self.name = name
        self.argv = tuple(argv)
        self.env = dict(env)
        self.cwd = cwd
        self.tail = StderrTail(name, masked)

    @asynccontextmanager
    async def open(self) -> AsyncIterator[SdkSession]:
        closed = trio.Event()
        transport = stdio_transport(self.argv, env=self.env, cwd=self.cwd, tail=self.tail, closed=closed)
        async with open_session(transport, label=self.name, closed=closed) as session:
            yield session

    def diagnostics(self) -> tuple[str, ...]:
        return self.tail.lines

    def __repr__(self) -> str:  # never the environment: its values are the server's secrets
        return f"<StdioConnector {self.name} argv={list(self.argv)!r} env_keys={sorted(self.env)}>"


class InProcessConnector:
    """An SDK server object living in the agent (the builtin tools): no process, no pipes; the
    SDK dispatches to it directly. ``factory`` builds the server once, on first open."""

    def __init__(self, name: str, factory: Callable[[], Any]):
        self.name = name
        self._factory = factory
        self._server: Any = None

    @asynccontextmanager
    async def open(self) -> AsyncIterator[SdkSession]:
        if self._server is None:
            self._server = self._factory()
        async with open_session(self._server, label=self.name) as session:
            yield session

    def diagnostics(self) -> tuple[str, ...]:
        return ()

    def __repr__(self) -> str:
        return f"<InProcessConnector {self.name}>"
