"""The fault proxy (tests/support/fault_proxy.py) against a local echo server.

Real sockets on 127.0.0.1, so these run on the real clock (an autojump clock would leap ahead
while the kernel moves bytes): every wait is short and bounded, and timing assertions are
lower bounds with generous upper ones. The whole file takes about three seconds.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import time
from typing import AsyncIterator

import pytest
import trio

from tests.support.fault_proxy import FaultProxy, Mode, open_fault_proxy

BOUND = 5.0  # no single step may take longer than this


class EchoServer:
    """Echoes every byte; records what it received and whether it saw EOF or a reset."""

    def __init__(self) -> None:
        self.port = 0
        self.received = bytearray()
        self.eofs = 0
        self.resets = 0
        self.accepted = 0

    async def handle(self, stream: trio.SocketStream) -> None:
        self.accepted += 1
        async with stream:
            while True:
                try:
                    data = await stream.receive_some(65536)
                except trio.BrokenResourceError:
                    self.resets += 1
                    return
                if not data:
                    self.eofs += 1
                    return
                self.received += data
                try:
                    await stream.send_all(data)
                except trio.BrokenResourceError:
                    self.resets += 1
                    return


@contextlib.asynccontextmanager
async def echo_and_proxy() -> AsyncIterator[tuple[EchoServer, FaultProxy]]:
    echo = EchoServer()
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(functools.partial(trio.serve_tcp, echo.handle, 0, host="127.0.0.1"))
        echo.port = listeners[0].socket.getsockname()[1]
        async with open_fault_proxy(echo.port) as proxy:
            yield echo, proxy
        nursery.cancel_scope.cancel()


async def connect(proxy: FaultProxy) -> trio.SocketStream:
    return await trio.open_tcp_stream("127.0.0.1", proxy.port)


async def receive_exactly(stream: trio.SocketStream, n: int) -> bytes:
    data = bytearray()
    while len(data) < n:
        chunk = await stream.receive_some(n - len(data))
        if not chunk:
            raise EOFError(f"EOF after {len(data)} of {n} bytes")
        data += chunk
    return bytes(data)


def refused(exc: OSError) -> bool:
    """trio reports a refused connect as an OSError caused by a group of per-address errors."""
    cause = exc.__cause__
    causes = cause.exceptions if isinstance(cause, BaseExceptionGroup) else (exc,)
    return any(getattr(e, "errno", None) == errno.ECONNREFUSED for e in causes)


async def wait_until(predicate, timeout: float = BOUND) -> None:
    with trio.fail_after(timeout):
        while not predicate():
            await trio.sleep(0.01)


async def test_pass_forwards_both_ways_and_counts():
    async with echo_and_proxy() as (echo, proxy):
        with trio.fail_after(BOUND):
            streams = [await connect(proxy) for _ in range(3)]
            for i, stream in enumerate(streams):
                await stream.send_all(b"hello %d" % i)
                assert await receive_exactly(stream, 7) == b"hello %d" % i
            assert proxy.connections == 3 and proxy.stats.accepted == 3
            await wait_until(lambda: proxy.stats.forwarded == 2 * 3 * 7)  # counted once sent
            for stream in streams:
                await stream.aclose()
            await wait_until(lambda: proxy.connections == 0)
        assert proxy.mode == Mode.PASS and f"127.0.0.1:{proxy.port}" in repr(proxy)


async def test_eof_is_forwarded_as_a_half_close():
    async with echo_and_proxy() as (echo, proxy):
        with trio.fail_after(BOUND):
            stream = await connect(proxy)
            await stream.send_all(b"last words")
            await stream.send_eof()
            assert await receive_exactly(stream, 10) == b"last words"
            assert await stream.receive_some(10) == b""  # the echo server saw EOF and closed
            assert echo.eofs == 1


async def test_cut_resets_live_connections_and_new_ones_still_work():
    async with echo_and_proxy() as (echo, proxy):
        with trio.fail_after(BOUND):
            stream = await connect(proxy)
            await stream.send_all(b"x")
            await receive_exactly(stream, 1)
            assert proxy.cut() == 1
            with pytest.raises(trio.BrokenResourceError):  # ECONNRESET, not a clean EOF
                while await stream.receive_some(10):
                    pass
            await wait_until(lambda: echo.resets == 1)
            again = await connect(proxy)
            await again.send_all(b"y")
            assert await receive_exactly(again, 1) == b"y"


async def test_cut_without_reset_closes_with_fin():
    async with echo_and_proxy() as (echo, proxy):
        with trio.fail_after(BOUND):
            stream = await connect(proxy)
            await stream.send_all(b"x")
            await receive_exactly(stream, 1)
            proxy.cut(reset=False)
            assert await stream.receive_some(10) == b""
            await wait_until(lambda: echo.eofs == 1)


async def test_delay_adds_latency_each_way_without_capping_the_rate():
    async with echo_and_proxy() as (echo, proxy):
        with trio.fail_after(BOUND):
            stream = await connect(proxy)
            proxy.delay(0.25)
            t0 = time.monotonic()
            for i in range(20):  # 20 chunks in a row: latency, not 20 x 0.5 s
                await stream.send_all(b"%02d" % i)
            data = await receive_exactly(stream, 40)
            elapsed = time.monotonic() - t0
            assert data == b"".join(b"%02d" % i for i in range(20))  # order kept
            assert 0.5 <= elapsed < 1.5, elapsed
            proxy.restore()
            t0 = time.monotonic()
            await stream.send_all(b"!")
            await receive_exactly(stream, 1)
            assert time.monotonic() - t0 < 0.25


async def test_throttle_caps_the_rate():
    async with echo_and_proxy() as (echo, proxy):
        with trio.fail_after(BOUND):
            stream = await connect(proxy)
            proxy.throttle(40_000)
            t0 = time.monotonic()
            payload = bytes(range(256)) * 80  # 20 480 bytes: ~0.5 s at 40 kB/s each way
            async with trio.open_nursery() as nursery:
                nursery.start_soon(stream.send_all, payload)
                echoed = await receive_exactly(stream, len(payload))
            elapsed = time.monotonic() - t0
            assert echoed == payload
            assert 0.45 <= elapsed < 2.5, elapsed
    with pytest.raises(ValueError):
        proxy.throttle(0)


async def test_blackhole_keeps_connections_open_and_silent_then_restore_resets_them():
    async with echo_and_proxy() as (echo, proxy):
        with trio.fail_after(BOUND):
            stream = await connect(proxy)
            await stream.send_all(b"before")
            await receive_exactly(stream, 6)
            proxy.blackhole()
            await stream.send_all(b"into the void")
            await stream.send_eof()  # not even the FIN gets through
            with trio.move_on_after(0.5) as silence:
                await stream.receive_some(10)
            assert silence.cancelled_caught  # no byte, no EOF, no reset: a half-open link
            assert bytes(echo.received) == b"before" and echo.eofs == 0 and echo.resets == 0
            assert proxy.connections == 1 and proxy.stats.dropped == 13

            # A connection made during the black hole is accepted and then hears nothing either.
            late = await connect(proxy)
            await late.send_all(b"hello?")
            with trio.move_on_after(0.2) as silence:
                await late.receive_some(10)
            assert silence.cancelled_caught

            proxy.restore()
            for broken in (stream, late):
                with pytest.raises(trio.BrokenResourceError):
                    while await broken.receive_some(10):
                        pass
            fresh = await connect(proxy)
            await fresh.send_all(b"after")
            assert await receive_exactly(fresh, 5) == b"after"


async def test_refuse_closes_the_listener_and_reopens_on_the_same_port():
    async with echo_and_proxy() as (echo, proxy):
        with trio.fail_after(BOUND):
            live = await connect(proxy)
            port = proxy.port
            proxy.refuse = True
            with pytest.raises(OSError) as info:
                await connect(proxy)
            assert refused(info.value)
            await live.send_all(b"still here")  # refusing new connections leaves old ones alone
            assert await receive_exactly(live, 10) == b"still here"
            proxy.refuse = False
            assert proxy.port == port
            stream = await connect(proxy)
            await stream.send_all(b"back")
            assert await receive_exactly(stream, 4) == b"back"


async def test_a_dead_target_is_passed_on_as_a_reset():
    async with echo_and_proxy() as (echo, proxy):
        proxy.target_port = 1  # nothing listens on port 1 of 127.0.0.1
        with trio.fail_after(BOUND):
            stream = await connect(proxy)
            with pytest.raises(trio.BrokenResourceError):
                while await stream.receive_some(10):
                    pass
            assert proxy.stats.refused == 1


async def test_only_loopback_targets():
    with pytest.raises(ValueError, match="loopback"):
        async with open_fault_proxy(80, target_host="192.0.2.1"):
            pass
