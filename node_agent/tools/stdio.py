"""A configured MCP server as a child process: the SDK's stdio transport, plus what it lacks.

:func:`stdio_transport` wraps ``mcp.client.stdio.stdio_client`` (spawn in a new session, newline
JSON-RPC on stdin/stdout, the spec's shutdown: close stdin, wait, SIGTERM the group, SIGKILL)
and adds two things the agent needs:

* **End of output is a fact.** The read stream handed to the SDK is watched; when the server's
  stdout ends (exit, crash, ``os._exit``) ``closed`` is set, so the supervisor learns of a crash
  while the server sits idle, not at the next call.
* **stderr is kept, not spilled.** The SDK would write the child's stderr to ours. Here it goes
  through a pipe into a :class:`StderrTail`: each line logged at DEBUG under
  ``node_agent.tools.<server>``, the last lines kept for ``status``/``doctor`` (a server that will
  not start usually says why on stderr). Values of the server's configured ``env`` are masked in
  every kept or logged line: that is where its API keys are.

The child's environment is built by the caller (one place builds every child environment; it
never holds the gateway token). The SDK adds ``HOME``, ``LOGNAME``, ``PATH``, ``SHELL``, ``TERM``
and ``USER`` from ours underneath it, and nothing else.
"""

from __future__ import annotations

import collections
import logging
import os
import sys
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import trio

_TAIL_LINES = 20
_LINE_MAX = 500
_STDERR_DRAIN_GRACE = 0.5  # seconds for the last stderr lines after the process is gone
_MIN_MASKED_LEN = 4  # shorter env values ("1", "yes") would mask half of every line


class StderrTail:
    """The last lines a server wrote to stderr, with its secret values masked."""

    def __init__(self, server: str, secrets: Iterable[str] = (), *, lines: int = _TAIL_LINES):
        self._log = logging.getLogger(f"node_agent.tools.{server}")
        self._secrets = sorted({s for s in secrets if len(s) >= _MIN_MASKED_LEN}, key=len, reverse=True)
        self._lines: collections.deque[str] = collections.deque(maxlen=lines)
        self._partial = b""

    def feed(self, data: bytes) -> None:
        data = self._partial + data
        *complete, self._partial = data.split(b"\n")
        if len(self._partial) > 4 * _LINE_MAX:
            complete.append(self._partial)
            self._partial = b""
        for raw in complete:
            self._add(raw)

    def flush(self) -> None:
        if self._partial:
            self._add(self._partial)
            self._partial = b""

    def _add(self, raw: bytes) -> None:
        line = raw.decode("utf-8", "replace").rstrip("\r")
        for secret in self._secrets:
            line = line.replace(secret, "***")
        if len(line) > _LINE_MAX:
            line = line[:_LINE_MAX - 1] + "…"
        if line.strip():
            self._lines.append(line)
            self._log.debug("stderr: %s", line)

    @property
    def lines(self) -> tuple[str, ...]:
        return tuple(self._lines)

    @property
    def last(self) -> str | None:
        return self._lines[-1] if self._lines else None


class WatchedReadStream:
    """The SDK's read stream, unchanged, except that its end sets ``closed``."""

    def __init__(self, inner: Any, closed: trio.Event):
        self._inner = inner
        self._closed = closed

    async def receive(self) -> Any:
        try:
            return await self._inner.receive()
        except BaseException as exc:
            if not isinstance(exc, trio.Cancelled):
                self._closed.set()
            raise

    async def aclose(self) -> None:
        self._closed.set()
        await self._inner.aclose()

    def __aiter__(self) -> "WatchedReadStream":
        return self

    async def __anext__(self) -> Any:
        try:
            return await self._inner.__anext__()
        except StopAsyncIteration:
            self._closed.set()
            raise

    async def __aenter__(self) -> "WatchedReadStream":
        await self._inner.__aenter__()
        return self

    async def __aexit__(self, *exc_info: Any) -> bool | None:
        self._closed.set()
        return await self._inner.__aexit__(*exc_info)

    def __getattr__(self, name: str) -> Any:  # e.g. ``last_context``, read by duck typing
        return getattr(self._inner, name)


@asynccontextmanager
async def stdio_transport(argv: Sequence[str], *, env: Mapping[str, str], cwd: str | None,
                          tail: StderrTail, closed: trio.Event) -> AsyncIterator[tuple[Any, Any]]:
    """An SDK ``Transport`` for the server ``argv`` (see module doc). Spawning fails with
    ``OSError`` (no such command, bad ``cwd``), as the SDK does."""
    from mcp.client.stdio import StdioServerParameters, stdio_client  # noqa: PLC0415

    params = StdioServerParameters(command=argv[0], args=list(argv[1:]), env=dict(env), cwd=cwd)
    if sys.platform == "win32":  # no FdStream for a pipe there; the server's stderr is dropped
        with open(os.devnull, "w") as errlog:
            async with stdio_client(params, errlog=errlog) as (read, write):
                yield WatchedReadStream(read, closed), write
        return

    read_fd, write_fd = os.pipe()
    errlog = os.fdopen(write_fd, "w")
    stderr = trio.lowlevel.FdStream(read_fd)
    drained = trio.Event()

    async def drain() -> None:
        try:
            async with stderr:
                while data := await stderr.receive_some(65536):
                    tail.feed(data)
        except (trio.ClosedResourceError, trio.BrokenResourceError, OSError):
            pass
        finally:
            tail.flush()
            drained.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(drain)
        try:
            async with stdio_client(params, errlog=errlog) as (read, write):
                errlog.close()  # the child has its own copy: our copy would hold off EOF forever
                yield WatchedReadStream(read, closed), write
        finally:
            errlog.close()
            closed.set()
            # A grandchild can keep the pipe open after the server is gone: do not wait for it.
            with trio.move_on_after(_STDERR_DRAIN_GRACE):
                await drained.wait()
            nursery.cancel_scope.cancel()
