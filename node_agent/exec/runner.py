"""Run one command to the end, and never leave a process behind.

Invariants:

- **Its own process group**, stdin on ``/dev/null``, argv executed directly (a shell only when
  argv names one). Every signal goes to the whole group, so grandchildren go with it.
- **Timeout** (``timeout_ms`` > 0): SIGTERM to the group, a grace period (300 ms, as the node
  host), SIGKILL; the exit code is 124 unless the command chose its own non-zero code first.
- **Cancellation** (``node.invoke.cancel``, a lost connection, agent shutdown) does the same
  term-grace-kill under a shielded scope and re-raises: nobody receives a result.
- **No leftovers**: when the main process exits, whatever it left running in its group (``cmd &``)
  is terminated the same way, so no pipe is held open and no process outlives its command.
- **Bounded memory**: each stream keeps its first and last ``cap / 2`` bytes (200,000 bytes per
  stream by default) with a marker between saying how much was left out; the node host keeps
  only the head and loses the error printed last.
- A command that cannot start (missing file, no permission, cwd gone) is a result with
  ``error`` set, not an exception: the caller answers ``ok: true`` as the node host does.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence

import attrs
import trio

OUTPUT_CAP = 200_000
GRACE_S = 0.3
TIMEOUT_EXIT_CODE = 124
_READ_CHUNK = 65536


class HeadTail:
    """Keeps the first and last ``cap // 2`` bytes of a stream and counts the rest."""

    def __init__(self, cap: int = OUTPUT_CAP) -> None:
        self._half = cap // 2
        self._head = bytearray()
        self._tail = bytearray()
        self.total = 0

    def feed(self, data: bytes) -> None:
        self.total += len(data)
        room = self._half - len(self._head)
        if room > 0:
            self._head += data[:room]
            data = data[room:]
        if data:
            self._tail += data
            if len(self._tail) > self._half:
                del self._tail[: len(self._tail) - self._half]

    @property
    def dropped(self) -> int:
        return self.total - len(self._head) - len(self._tail)

    def text(self) -> str:
        head = self._head.decode("utf-8", "replace")
        if not self.dropped:
            return head + self._tail.decode("utf-8", "replace")
        tail = self._tail.decode("utf-8", "replace")
        return f"{head}\n... [{self.dropped} bytes truncated] ...\n{tail}"


@attrs.frozen
class RunResult:
    exit_code: int | None
    timed_out: bool
    stdout: str
    stderr: str
    error: str | None = None
    stdout_bytes: int = 0
    stderr_bytes: int = 0
    duration_ms: int = 0

    @property
    def success(self) -> bool:
        return self.exit_code == 0 and not self.timed_out and self.error is None

    @property
    def truncated(self) -> bool:
        return self.stdout_bytes > OUTPUT_CAP or self.stderr_bytes > OUTPUT_CAP

    def payload(self) -> dict[str, object]:
        """The ``system.run`` result payload (the node host's keys; exitCode absent if none)."""
        out: dict[str, object] = {}
        if self.exit_code is not None:
            out["exitCode"] = self.exit_code
        out.update(timedOut=self.timed_out, success=self.success, stdout=self.stdout,
                   stderr=self.stderr, error=self.error)
        return out


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


async def _end_group(process: trio.Process, pgid: int, grace_s: float) -> None:
    """SIGTERM the group, give it ``grace_s``, SIGKILL what is left; reap the leader."""
    _signal_group(pgid, signal.SIGTERM)
    with trio.move_on_after(grace_s):
        await process.wait()
        while _group_alive(pgid):  # members left after the leader: poll briefly
            await trio.sleep(0.01)
    _signal_group(pgid, signal.SIGKILL)
    await process.wait()


async def _drain(stream: trio.abc.ReceiveStream | None, sink: HeadTail) -> None:
    if stream is None:
        return
    async with stream:
        while True:
            try:
                data = await stream.receive_some(_READ_CHUNK)
            except trio.ClosedResourceError:
                return
            if not data:
                return
            sink.feed(data)


async def run_command(argv: Sequence[str], *, cwd: str, env: Mapping[str, str], timeout_ms: int | None = None,
                      executable: str | None = None, cap: int = OUTPUT_CAP, grace_s: float = GRACE_S) -> RunResult:
    """Run ``argv`` in ``cwd`` with exactly ``env``; see the module notes for the guarantees."""
    started = trio.current_time()
    try:
        process = await trio.lowlevel.open_process(
            list(argv), executable=executable, cwd=cwd, env=dict(env), stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True, close_fds=True)
    except OSError as exc:
        return RunResult(exit_code=None, timed_out=False, stdout="", stderr="", error=_spawn_error(exc, argv, cwd))
    pgid = process.pid  # start_new_session: the child leads its own session and group
    out, err = HeadTail(cap), HeadTail(cap)
    timed_out = False
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_drain, process.stdout, out)
            nursery.start_soon(_drain, process.stderr, err)
            with trio.move_on_after(timeout_ms / 1000 if timeout_ms and timeout_ms > 0 else float("inf")) as scope:
                await process.wait()
            if scope.cancelled_caught:
                timed_out = True
            # Whatever is still running in the group (the command's own background children, or
            # everything on a timeout) ends now; that also closes the pipes the readers wait on.
            with trio.CancelScope(shield=True):
                await _end_group(process, pgid, grace_s)
            # A descendant that left the group (setsid) may still hold a pipe: stop reading soon.
            nursery.cancel_scope.deadline = trio.current_time() + 1.0
    except BaseException:
        with trio.CancelScope(shield=True):
            await _end_group(process, pgid, grace_s)
        raise
    code = process.returncode
    if timed_out and (code is None or code <= 0):
        code = TIMEOUT_EXIT_CODE
    elif code is not None and code < 0:
        code = 128 + -code  # killed by a signal, the shell's convention (SIGKILL -> 137)
    return RunResult(exit_code=code, timed_out=timed_out, stdout=out.text(), stderr=err.text(),
                     stdout_bytes=out.total, stderr_bytes=err.total,
                     duration_ms=int((trio.current_time() - started) * 1000))


def _spawn_error(exc: OSError, argv: Sequence[str], cwd: str) -> str:
    if not os.path.isdir(cwd):
        return f"working directory does not exist or is not a directory on this node: {cwd}"
    if isinstance(exc, FileNotFoundError):
        return f"command not found: {argv[0]}"
    if isinstance(exc, PermissionError):
        return f"permission denied: {argv[0]}"
    return f"could not start {argv[0]}: {exc.strerror or exc}"
