"""A TCP proxy on 127.0.0.1 that breaks the link between the agent and the gateway on demand.

Job: sit between a client and a server (``open_fault_proxy(target_port)``, then point the
client at ``proxy.port``) and forward bytes both ways, until a test changes the weather:

* ``cut()``: close every live connection now (RST by default, FIN with ``reset=False``);
* ``delay(seconds)``: deliver each chunk ``seconds`` after it arrived (latency, not a rate cap;
  order is kept);
* ``throttle(bytes_per_s)``: deliver at most that many bytes per second in each direction;
* ``blackhole()``: a half-open link: the connections stay open, bytes are read and dropped
  both ways, and neither end ever sees a FIN or RST (what a dead Wi-Fi or a NAT that forgot
  the flow looks like: only a keepalive can notice);
* ``restore()``: back to plain forwarding;
* ``refuse = True``: new connections are refused (the listening socket is closed, so a connect
  gets ECONNREFUSED like a stopped server); ``refuse = False`` listens again on the same port.

Invariants:

* Modes apply to every connection, live or new, from the moment they are set; each chunk is
  judged by the mode in force when it was read.
* A connection that lost bytes to a black hole is beyond repair (its byte stream has a hole;
  a WebSocket peer would read garbage), so ``restore()`` closes those, as the peers' TCP
  retransmission timers would have by then. Connections the black hole never touched carry on.
* In pass mode an EOF is forwarded as an EOF (half-close) and a reset as a reset; in a black
  hole nothing is forwarded, not even the end.
* Everything lives in the nursery of ``open_fault_proxy``: leaving it closes every socket.
"""

from __future__ import annotations

import contextlib
import enum
import errno
import socket
import struct
from typing import AsyncIterator

import attrs
import trio

CHUNK = 65536
_LINGER_RST = struct.pack("ii", 1, 0)


class Mode(enum.StrEnum):
    PASS = "pass"
    DELAY = "delay"
    THROTTLE = "throttle"
    BLACKHOLE = "blackhole"


@attrs.define(eq=False)
class _Link:
    """One proxied connection: the accepted client stream and our stream to the target."""

    id: int
    client: trio.SocketStream
    upstream: trio.SocketStream | None = None
    scope: trio.CancelScope = attrs.Factory(trio.CancelScope)
    blackholed: bool = False  # lost bytes (or was open) during a black hole
    reset: bool = False  # close with RST rather than FIN


@attrs.define
class Stats:
    accepted: int = 0
    refused: int = 0  # accepted, but the target refused us in turn
    forwarded: int = 0  # bytes delivered, both directions
    dropped: int = 0  # bytes swallowed by a black hole


class FaultProxy:
    def __init__(self, nursery: trio.Nursery, target_port: int, target_host: str = "127.0.0.1"):
        self._nursery = nursery
        self.target_host = target_host
        self.target_port = target_port
        self.port = 0
        self.mode: Mode = Mode.PASS
        self.delay_s = 0.0
        self.rate = 0.0  # bytes per second, in THROTTLE
        self.stats = Stats()
        self._links: set[_Link] = set()
        self._ids = 0
        self._listener: trio.SocketListener | None = None
        self._accept_scope: trio.CancelScope | None = None
        self._refuse = False

    def __repr__(self) -> str:
        detail = {Mode.DELAY: f" {self.delay_s:g}s", Mode.THROTTLE: f" {self.rate:g}B/s"}.get(self.mode, "")
        return (f"<FaultProxy 127.0.0.1:{self.port} -> {self.target_host}:{self.target_port} "
                f"mode={self.mode}{detail} refuse={self._refuse} links={len(self._links)}>")

    # -- what tests call --------------------------------------------------------------------------

    @property
    def connections(self) -> int:
        """Live proxied connections."""
        return len(self._links)

    def cut(self, *, reset: bool = True) -> int:
        """Close every live connection now; returns how many there were."""
        links = list(self._links)
        for link in links:
            link.reset = reset
            link.scope.cancel()
        return len(links)

    def delay(self, seconds: float) -> None:
        self._set_mode(Mode.DELAY)
        self.delay_s = seconds

    def throttle(self, bytes_per_s: float) -> None:
        if bytes_per_s <= 0:
            raise ValueError("throttle needs a positive rate; use blackhole() to stop the flow")
        self._set_mode(Mode.THROTTLE)
        self.rate = bytes_per_s

    def blackhole(self) -> None:
        self._set_mode(Mode.BLACKHOLE)
        for link in self._links:
            link.blackholed = True

    def restore(self) -> None:
        """Plain forwarding again; connections that lost bytes to a black hole are reset."""
        self._set_mode(Mode.PASS)
        for link in list(self._links):
            if link.blackholed:
                link.reset = True
                link.scope.cancel()

    @property
    def refuse(self) -> bool:
        return self._refuse

    @refuse.setter
    def refuse(self, value: bool) -> None:
        if value == self._refuse:
            return
        self._refuse = value
        if value:
            self._close_listener()
        else:
            self._listen(self.port)

    # -- internals --------------------------------------------------------------------------------

    def _set_mode(self, mode: Mode) -> None:
        self.mode = mode
        self.delay_s = 0.0
        self.rate = 0.0

    def _listen(self, port: int) -> None:
        # Synchronous on purpose: once ``refuse = False`` returns, a connect succeeds.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen(64)
        self.port = sock.getsockname()[1]
        self._listener = trio.SocketListener(trio.socket.from_stdlib_socket(sock))
        self._accept_scope = trio.CancelScope()
        self._nursery.start_soon(self._accept_loop, self._listener, self._accept_scope)

    def _close_listener(self) -> None:
        # Closing the socket itself (not just cancelling the accept) is what makes the kernel
        # answer the next SYN with RST, i.e. ECONNREFUSED, at once.
        if self._accept_scope is not None:
            self._accept_scope.cancel()
        if self._listener is not None:
            self._listener.socket.close()
        self._listener = self._accept_scope = None

    async def _accept_loop(self, listener: trio.SocketListener, scope: trio.CancelScope) -> None:
        with scope:
            while True:
                try:
                    client = await listener.accept()
                except (trio.ClosedResourceError, OSError):
                    return
                self._ids += 1
                self.stats.accepted += 1
                self._nursery.start_soon(self._serve, _Link(self._ids, client))

    async def _serve(self, link: _Link) -> None:
        self._links.add(link)
        if self.mode == Mode.BLACKHOLE:
            link.blackholed = True
        try:
            with link.scope:
                try:
                    link.upstream = await trio.open_tcp_stream(self.target_host, self.target_port)
                except OSError:
                    # The target is down: pass its refusal on as a reset, the nearest we can get.
                    self.stats.refused += 1
                    link.reset = True
                    return
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._pump, link, link.client, link.upstream)
                    nursery.start_soon(self._pump, link, link.upstream, link.client)
        finally:
            self._links.discard(link)
            await self._close(link)

    async def _pump(self, link: _Link, src: trio.SocketStream, dst: trio.SocketStream) -> None:
        """Copy ``src`` to ``dst`` through the mode in force. A queue decouples reading from
        writing, so DELAY adds latency without capping the rate and THROTTLE paces writes only."""
        send, receive = trio.open_memory_channel[tuple[float, bytes]](float("inf"))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._deliver, link, receive, dst)
            async with send:
                while True:
                    try:
                        data = await src.receive_some(CHUNK)
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        if link.blackholed or self.mode == Mode.BLACKHOLE:
                            link.blackholed = True
                            await trio.sleep_forever()  # a reset vanishes into the hole too
                        link.reset = True
                        link.scope.cancel()
                        return
                    if link.blackholed or self.mode == Mode.BLACKHOLE:
                        link.blackholed = True
                        self.stats.dropped += len(data)
                        if not data:
                            await trio.sleep_forever()  # swallow the FIN too; the peer keeps waiting
                        continue
                    due = trio.current_time() + (self.delay_s if self.mode == Mode.DELAY else 0.0)
                    await send.send((due, data))
                    if not data:
                        return  # EOF queued; the deliverer half-closes dst after the last byte

    async def _deliver(self, link: _Link, receive: trio.MemoryReceiveChannel[tuple[float, bytes]],
                       dst: trio.SocketStream) -> None:
        async with receive:
            async for due, data in receive:
                await trio.sleep_until(due)
                if not data:
                    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                        await dst.send_eof()
                    return
                try:
                    await self._write(dst, data)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    link.reset = True
                    link.scope.cancel()
                    return

    async def _write(self, dst: trio.SocketStream, data: bytes) -> None:
        view = memoryview(data)
        while view:
            if self.mode == Mode.THROTTLE and self.rate > 0:
                # Slices of ~50 ms worth of bytes keep the rate smooth at any speed.
                piece = view[:max(1, int(self.rate / 20))]
                await dst.send_all(piece)
                self.stats.forwarded += len(piece)
                view = view[len(piece):]
                await trio.sleep(len(piece) / self.rate)
            else:
                await dst.send_all(view)
                self.stats.forwarded += len(view)
                return

    async def _close(self, link: _Link) -> None:
        for stream in (link.client, link.upstream):
            if stream is None:
                continue
            if link.reset:
                with contextlib.suppress(OSError):
                    stream.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
            with contextlib.suppress(OSError, trio.BrokenResourceError, trio.ClosedResourceError):
                await trio.aclose_forcefully(stream)


@contextlib.asynccontextmanager
async def open_fault_proxy(target_port: int, *, target_host: str = "127.0.0.1",
                           port: int = 0) -> AsyncIterator[FaultProxy]:
    """Listen on 127.0.0.1 (``port``, or a free one) and forward to ``target_host:target_port``."""
    if target_host not in ("127.0.0.1", "localhost"):
        raise ValueError("the fault proxy only forwards to loopback")
    async with trio.open_nursery() as nursery:
        proxy = FaultProxy(nursery, target_port, target_host)
        try:
            proxy._listen(port)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise OSError(exc.errno, f"fault proxy: port {port} is in use") from None
            raise
        try:
            yield proxy
        finally:
            proxy._close_listener()
            proxy.cut()
            nursery.cancel_scope.cancel()
