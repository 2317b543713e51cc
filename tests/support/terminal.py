"""The ``node-agent`` CLI on a real pseudo-terminal, read back as a person sees the screen.

:func:`open_terminal` runs a command with stdin, stdout and stderr on the slave side of a pty
of a fixed size (80 columns by default; rows enough that nothing scrolls away, so the screen
is the whole session), and feeds everything it writes into a :mod:`pyte` screen: a VT100/xterm
model that wraps at the right edge, honours carriage returns and cursor moves, and so shows the
characters a terminal would, where it would. The program sees a real terminal: ``isatty()`` is
true and ``os.get_terminal_size()`` answers the pty's size, so what it decides from that is
what is tested.

:func:`normalize` is the one place where anything is masked, and it masks only what must vary
between runs (each rule says why). Every mask keeps the length of what it hides and is applied to
the program's output *before* it is drawn (:meth:`Terminal.screen` with ``normalized=True``), so
the masked screen wraps exactly where the real one does, and a value the terminal split across
two rows is still masked whole.

Invariants: every wait is bounded (``trio.fail_after``) and event-driven (new output or the
process's exit wakes it; no sleep polling); the process is killed when the block ends; all it
wrote joins the session's secret scan (tests/support/secret_watch.py), and the credentials
handed to it through :func:`cli_env` are among the secrets looked for.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import re
import struct
import sys
import termios
from pathlib import Path
from typing import AsyncIterator, Mapping, Sequence

import pyte
import trio

REPO = Path(__file__).resolve().parents[2]
COLUMNS = 80
ROWS = 60

#: What :func:`normalize` masks, and why. Nothing else is masked; each keeps the length.
MASKS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Wall-clock times (log timestamps, expiry times).
    (re.compile(r"\b\d\d:\d\d:\d\d\b"), "HH:MM:SS"),
    # The ephemeral port of a test server (always five digits on Linux: 32768-60999).
    (re.compile(r"(127\.0\.0\.1|localhost):\d{5}\b"), r"\1:PPPPP"),
    # Request ids the real gateway makes up (UUIDs).
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b"),
     "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx"),
    # Measured durations, which doctor prints at a fixed width ("0.004 s").
    (re.compile(r"\b\d\.\d{3} s\b"), "N.NNN s"),
    # The random part of a fixed-length temporary directory (see fixed_tmp_dir).
    (re.compile(r"/tmp/na-pty-[a-z0-9_]{8}"), "/tmp/na-pty-XXXXXXXX"),
)


def normalize(text: str) -> str:
    for pattern, replacement in MASKS:
        text = pattern.sub(replacement, text)
    return text


def cli_env(**extra: str) -> dict[str, str]:
    """The environment of a person's shell, minus anything of ours or the developer's that
    would change what the CLI says: no OPENCLAW_/NODE_AGENT_ variables, UTC, UTF-8, and no
    COLUMNS (the width must come from the terminal itself)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OPENCLAW_", "NODE_AGENT_")) and k not in ("COLUMNS", "LINES", "JOURNAL_STREAM")}
    env.update(TZ="UTC", LANG="C.UTF-8", LC_ALL="C.UTF-8", PYTHONUNBUFFERED="1", TERM="xterm")
    env.update(extra)
    from . import secret_watch

    for name in ("OPENCLAW_GATEWAY_TOKEN", "OPENCLAW_GATEWAY_PASSWORD"):
        secret_watch.remember(extra.get(name))
    return env


class Terminal:
    """One program on one pty, and the screen it has drawn so far."""

    def __init__(self, process: trio.Process, master: int, columns: int, rows: int):
        self.process = process
        self.columns = columns
        self.rows = rows
        self._screen = pyte.Screen(columns, rows)
        self._stream = pyte.ByteStream(self._screen)
        self._master = master
        self._changed = trio.Event()
        self.raw = bytearray()
        self.eof = False

    def __repr__(self) -> str:
        return f"<Terminal {self.columns}x{self.rows} pid={self.process.pid} rc={self.process.returncode}>"

    def screen(self, *, normalized: bool = False) -> str:
        """What the terminal shows: each row without its trailing blanks, no blank rows at the end.
        ``normalized``: the same screen drawn from the output with :func:`normalize`'s masks."""
        screen = self._screen
        if normalized:
            text = self.raw.decode("utf-8", "replace")
            masked = normalize(text)
            assert len(masked) == len(text), "a mask changed the length of the output"
            screen = pyte.Screen(self.columns, self.rows)
            pyte.Stream(screen).feed(masked)
        rows = [row.rstrip() for row in screen.display]
        while rows and not rows[-1]:
            rows.pop()
        return "\n".join(rows) + "\n"

    def output(self) -> str:
        """Everything the program wrote, as text, line ends as the program wrote them (the pty
        turns each newline into CR LF on the way; this turns them back)."""
        return self.raw.decode("utf-8", "replace").replace("\r\n", "\n")

    async def wait_output(self) -> None:
        """Until the program writes something more (or ends)."""
        if not self.eof:
            await self._changed.wait()

    async def wait_for(self, text: str | re.Pattern[str], *, timeout: float = 30.0) -> None:
        """Until ``text`` (a substring or a regex) is on the screen."""
        def shown() -> bool:
            screen = self.screen()
            return bool(text.search(screen)) if isinstance(text, re.Pattern) else text in screen

        try:
            with trio.fail_after(timeout):
                while not shown():
                    if self.eof:
                        raise AssertionError(f"the program ended before {text!r} was shown:\n{self.screen()}")
                    await self.wait_output()
        except trio.TooSlowError:
            raise AssertionError(f"{text!r} not shown within {timeout} s; the screen:\n{self.screen()}") from None

    async def wait_exit(self, *, timeout: float = 30.0) -> int:
        """The exit status, once the program has ended and everything it wrote is on the screen."""
        with trio.fail_after(timeout):
            await self.process.wait()
            while not self.eof:
                await self.wait_output()
        assert self.process.returncode is not None
        return self.process.returncode

    def _changed_now(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def _pump(self) -> None:
        """Everything the program writes, into the screen model. A pty master reads EIO once the
        last slave fd is closed (the program exited): that is the end of the output."""
        try:
            while True:
                await trio.lowlevel.wait_readable(self._master)
                try:
                    data = os.read(self._master, 65536)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if not data:
                    break
                self.raw += data
                self._stream.feed(data)
                self._changed_now()
        finally:
            self.eof = True
            self._changed_now()


@contextlib.asynccontextmanager
async def open_terminal(argv: Sequence[str], *, env: Mapping[str, str] | None = None, columns: int = COLUMNS,
                        rows: int = ROWS, cwd: Path = REPO) -> AsyncIterator[Terminal]:
    """Run ``argv`` on a new ``columns`` x ``rows`` pty for the block; killed at the end."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    os.set_blocking(master, False)
    try:
        async with trio.open_nursery() as nursery:
            # A session of its own, with the pty as its controlling terminal, as a shell gives it.
            process = await trio.lowlevel.open_process(
                list(argv), stdin=slave, stdout=slave, stderr=slave, env=dict(env or cli_env()), cwd=str(cwd),
                start_new_session=True)
            os.close(slave)
            slave = -1
            terminal = Terminal(process, master, columns, rows)
            nursery.start_soon(terminal._pump)
            try:
                yield terminal
            finally:
                if process.returncode is None:
                    process.kill()
                with trio.move_on_after(5):
                    await process.wait()
                nursery.cancel_scope.cancel()
                from . import secret_watch

                secret_watch.captured.append(terminal.output())
    finally:
        if slave >= 0:
            os.close(slave)
        os.close(master)


def node_agent(*args: str) -> list[str]:
    """The ``node-agent`` command, as this checkout runs it."""
    return [sys.executable, "-m", "node_agent", *args]


@contextlib.contextmanager
def fixed_tmp_dir():
    """A temporary directory whose path has the same length on every run (``/tmp/na-pty-`` and
    eight random characters), so a path in a wrapped line wraps the same way each time."""
    import shutil
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="na-pty-", dir="/tmp"))
    assert len(path.name) == len("na-pty-") + 8, path
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
