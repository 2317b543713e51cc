"""sd_notify over a real AF_UNIX datagram socket standing in for systemd's.

Timing of the watchdog loop is asserted in virtual time (autojump clock). Only the blocked-loop
test uses real time, because its point is that a *really* blocked loop goes silent: it runs the
agent side in a subprocess and blocks that process's Trio loop with ``time.sleep``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

import pytest
import trio

from node_agent.service.sd_notify import SdNotify

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="needs AF_UNIX")


@pytest.fixture
def systemd_socket():
    """A bound datagram socket (as systemd's), and the NOTIFY_SOCKET value that names it."""
    # A short directory: AF_UNIX paths are limited to ~107 bytes, pytest's tmp_path can be longer.
    directory = tempfile.mkdtemp(prefix="sdn-")
    path = os.path.join(directory, "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    try:
        yield sock, path
    finally:
        sock.close()
        os.unlink(path)
        os.rmdir(directory)


def drain(sock: socket.socket) -> list[str]:
    """Every datagram already queued, in order, without waiting."""
    out = []
    while True:
        try:
            out.append(sock.recv(4096, socket.MSG_DONTWAIT).decode())
        except BlockingIOError:
            return out


def test_not_under_systemd_everything_is_a_no_op():
    notifier = SdNotify(environ={"WATCHDOG_USEC": "30000000"})
    assert not notifier.enabled
    assert notifier.watchdog_interval is None
    assert notifier.ready() is False
    assert notifier.notify(STATUS="x") is False


def test_from_env_gives_none_outside_systemd(systemd_socket):
    _, path = systemd_socket
    assert SdNotify.from_env({}) is None
    assert SdNotify.from_env({"NOTIFY_SOCKET": path}).enabled


async def test_watchdog_loop_returns_at_once_when_disabled():
    with trio.fail_after(1):
        await SdNotify(environ={}).watchdog_loop()


def test_ready_and_status(systemd_socket):
    sock, path = systemd_socket
    notifier = SdNotify(environ={"NOTIFY_SOCKET": path})
    assert notifier.enabled and notifier.watchdog_interval is None
    assert notifier.ready(status="offline, retrying in 8s")
    assert notifier.status("pairing: approve request 7f3a on the gateway")
    assert notifier.stopping()
    assert drain(sock) == ["READY=1\nSTATUS=offline, retrying in 8s",
                           "STATUS=pairing: approve request 7f3a on the gateway",
                           "STOPPING=1"]


def test_a_status_text_cannot_forge_another_field(systemd_socket):
    sock, path = systemd_socket
    SdNotify(environ={"NOTIFY_SOCKET": path}).status("evil\nREADY=1")
    assert drain(sock) == ["STATUS=evil READY=1"]


def test_abstract_socket():
    name = f"node-agent-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        assert SdNotify(environ={"NOTIFY_SOCKET": "@" + name}).ready()
        assert drain(sock) == ["READY=1"]


def test_a_vanished_systemd_is_not_an_error(tmp_path):
    notifier = SdNotify(environ={"NOTIFY_SOCKET": str(tmp_path / "gone")})
    assert notifier.enabled
    assert notifier.ready() is False  # ENOENT swallowed


@pytest.mark.parametrize(("env", "interval"), [
    ({"WATCHDOG_USEC": "200000"}, 0.1),
    ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}, 15.0),
    ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, None),  # someone else's watchdog
    ({"WATCHDOG_USEC": "0"}, None),
    ({"WATCHDOG_USEC": "soon"}, None),
    ({}, None),
])
def test_watchdog_interval_is_half_of_watchdog_usec(systemd_socket, env, interval):
    _, path = systemd_socket
    assert SdNotify(environ={"NOTIFY_SOCKET": path, **env}).watchdog_interval == interval


async def test_watchdog_pings_every_half_period(systemd_socket, autojump_clock):
    sock, path = systemd_socket
    notifier = SdNotify(environ={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "30000000"})
    received: list[tuple[float, bytes]] = []

    async def receive(tsock: trio.socket.SocketType) -> None:
        while True:
            data = await tsock.recv(4096)
            received.append((trio.current_time(), data))

    start = trio.current_time()
    with trio.socket.from_stdlib_socket(sock.dup()) as tsock:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(receive, tsock)
            await nursery.start(notifier.watchdog_loop)
            await trio.sleep(59.9)
            nursery.cancel_scope.cancel()
    assert [(t - start, data) for t, data in received] == [
        (0.0, b"WATCHDOG=1"), (15.0, b"WATCHDOG=1"), (30.0, b"WATCHDOG=1"), (45.0, b"WATCHDOG=1")]


AGENT = textwrap.dedent("""
    import time
    import trio
    from node_agent.service.sd_notify import SdNotify

    async def main():
        notifier = SdNotify()
        async with trio.open_nursery() as nursery:
            await nursery.start(notifier.watchdog_loop)
            notifier.ready()
            await trio.sleep(0.55)
            notifier.status("blocking")
            time.sleep(1.0)  # a hung loop: a blocking call in a task
            notifier.status("unblocked")
            await trio.sleep(0.35)
            nursery.cancel_scope.cancel()
        notifier.stopping()

    trio.run(main)
""")


def test_no_watchdog_pings_while_the_trio_loop_is_blocked(systemd_socket):
    sock, path = systemd_socket
    env = {**os.environ, "NOTIFY_SOCKET": path, "WATCHDOG_USEC": "200000",  # ping every 0.1 s
           "PYTHONPATH": str(REPO)}
    env.pop("WATCHDOG_PID", None)
    proc = subprocess.Popen([sys.executable, "-c", AGENT], env=env)
    messages: list[tuple[float, str]] = []
    try:
        sock.settimeout(10)
        while not messages or messages[-1][1] != "STOPPING=1":
            messages.append((time.monotonic(), sock.recv(4096).decode()))
        assert proc.wait(timeout=10) == 0
    finally:
        proc.kill()
        proc.wait()

    texts = [m for _, m in messages]
    assert texts[0] == "WATCHDOG=1" and texts[1] == "READY=1"
    blocked, unblocked = texts.index("STATUS=blocking"), texts.index("STATUS=unblocked")
    before, during, after = texts[:blocked], texts[blocked + 1:unblocked], texts[unblocked + 1:]
    assert before.count("WATCHDOG=1") >= 4  # t = 0, 0.1, ..., 0.5 while the loop ran
    assert during == []  # systemd would have seen silence and restarted us
    assert after.count("WATCHDOG=1") >= 2  # and the pings resume once the loop runs again
    last_before = max(t for t, m in messages[:blocked] if m == "WATCHDOG=1")
    first_after = min(t for t, m in messages[unblocked:] if m == "WATCHDOG=1")
    assert first_after - last_before >= 0.9
