"""One agent per state directory: an advisory lock held for the life of the process.

Two agents on one state directory are one device connected twice: the gateway routes invokes to
the newer connection, and when that one exits the device looks offline while the older agent
believes it is connected; both write ``status.json``; two first starts race to create the
identity. So ``run``, ``pair`` and ``unpair`` (everything that writes the directory) take this
lock first, before any other write, and hold it until the process ends. A second one exits at
once with :class:`~node_agent.errors.StateDirBusy`, naming the holder (exit status
:data:`EXIT_BUSY`).

Invariants:

* The lock file (``agent.lock``) is never deleted, renamed or replaced. Deleting a lock file
  lets a third process create and lock a new inode while the second still holds the old one:
  two holders. The file is opened ``O_CREAT`` (no ``O_EXCL``), so every process locks the same inode.
* POSIX: ``flock(LOCK_EX | LOCK_NB)``. Windows: ``msvcrt.locking(LK_NBLCK)`` on one byte far
  past the holder record, because Windows locks are mandatory and a lock over the record would
  stop ``status`` from reading who holds it. Either way the kernel drops the lock when the
  process ends, however it ends: there is never a stale lock to clean up.
* The holder writes ``{pid, startedAtMs, command}`` into the file, in place, after locking;
  a process that fails to lock only reads it. A holder that has not written its record yet (a
  few microseconds) is waited for briefly, then described without a pid.
* A read-only state directory still runs a paired agent (the house's promise): the lock file is
  then locked read-only, without a record, and where there is none the agent runs unguarded,
  with a warning, rather than not at all.
* Readers (``status``, ``identity``, ``doctor``) never take the lock: a probe, however short,
  would make an agent starting at that moment exit as "busy".
* The descriptor is close-on-exec and not inheritable: a helper program the agent starts never
  holds the lock after the agent is gone.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import attrs

from .errors import LocalError, Retry, StateDirBusy

log = logging.getLogger("node_agent.lock")

LOCK_FILE = "agent.lock"

#: The exit status of an agent that found its state directory held by another: EX_TEMPFAIL from
#: sysexits.h (the same command works once the other agent is gone). The systemd unit does not
#: restart on it (why: :data:`node_agent.service.spec.EXIT_BUSY`).
EXIT_BUSY = StateDirBusy.exit_status

#: Where the Windows lock byte sits: past any record we write, so the record stays readable.
_WINDOWS_LOCK_OFFSET = 1 << 20
#: How long a process that lost the race waits for the winner's record (it is written right after
#: the winner locks; this only matters when both started in the same millisecond).
_RECORD_PATIENCE_S = 0.5


@attrs.frozen(kw_only=True)
class Holder:
    """Who holds (or last held) a state directory, as its lock file says."""

    pid: int | None = None
    started_at_ms: int | None = None
    command: str | None = None

    def describe(self) -> str:
        parts = []
        if self.pid is not None:
            parts.append(f"pid {self.pid}")
        if self.command:
            parts.append(f"`node-agent {self.command}`")
        if self.started_at_ms is not None:
            parts.append("started " + time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.started_at_ms / 1000)))
        return f"another node-agent ({', '.join(parts) if parts else 'its pid is not recorded'})"


class StateLock:
    """The held lock. :meth:`release` (or leaving the ``with`` block) lets the next agent in;
    process exit does the same."""

    def __init__(self, path: Path, fd: int | None):
        self.path = path
        #: None: not held, because the directory is read-only and has no lock file (see acquire).
        self._fd: int | None = fd

    def __repr__(self) -> str:
        return f"<StateLock {str(self.path)!r} {'held' if self._fd is not None else 'released'}>"

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)  # released cleanly: nobody holds it now
            _unlock(fd)
        finally:
            os.close(fd)

    def __enter__(self) -> StateLock:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


def acquire(state_dir: Path, command: str) -> StateLock:
    """Lock ``state_dir`` for this process (creating the directory, mode 0700, if needed).

    Raises :class:`StateDirBusy` when another process holds it, and
    :class:`~node_agent.errors.LocalError` when the directory or the lock file cannot be made.
    Blocking only for the time of a few system calls (and, when the race was lost within the
    same instant, up to half a second to read the winner's record).
    """
    if not state_dir.is_dir():  # (mkdir on a read-only file system fails even for a directory that exists)
        try:
            state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise _unusable(state_dir, f"cannot create state directory {state_dir}", exc) from None
    path = state_dir / LOCK_FILE
    private = getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOINHERIT", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | private, 0o644)
    except OSError as exc:
        if exc.errno not in _READ_ONLY:
            raise _unusable(state_dir, f"cannot open the lock file {path}", exc) from None
        # A read-only state directory (an overlay root, a remount after fsck) still runs a paired
        # agent. flock needs no write access: lock the file an earlier start created, without a
        # record; if there is none, run unguarded rather than not at all, and say so.
        try:
            fd = os.open(path, os.O_RDONLY | private)
        except OSError as again:
            log.warning("cannot create the lock file %s (%s): a second agent on this directory would not "
                        "be stopped", path, exc.strerror or type(exc).__name__)
            if again.errno != errno.ENOENT:
                log.debug("opening it read-only failed too: %s", again.strerror)
            return StateLock(path, None)
    try:
        locked = _try_lock(fd)
    except OSError as exc:
        os.close(fd)
        raise _unusable(state_dir, f"cannot lock {path}", exc) from None
    if not locked:
        try:
            holder = _wait_for_record(fd)
        finally:
            os.close(fd)
        raise StateDirBusy(
            f"{holder.describe()} is using the state directory {state_dir}",
            hint=("only one agent may use a state directory at a time. Stop that one first (if it is "
                  "the service: `systemctl stop node-agent`), or give this one its own --state-dir."))
    _write_record(fd, Holder(pid=os.getpid(), started_at_ms=int(time.time() * 1000), command=command))
    return StateLock(path, fd)


def read_holder(state_dir: Path) -> Holder | None:
    """The lock file's record, for read-only commands: who holds the directory, or last held it
    (check the pid). None without a record. Never locks."""
    try:
        raw = (state_dir / LOCK_FILE).read_bytes()
    except OSError:
        return None
    return _parse(raw)


# --- the record -------------------------------------------------------------------------------


def _write_record(fd: int, holder: Holder) -> None:
    data = json.dumps({"pid": holder.pid, "startedAtMs": holder.started_at_ms, "command": holder.command}).encode()
    # In place: the lock belongs to this inode, so no temp file and no rename. Best effort: on a
    # full disk the record may not fit, and the lock (what matters) is already held.
    with contextlib.suppress(OSError):
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, data + b"\n")
        os.ftruncate(fd, len(data) + 1)


def _wait_for_record(fd: int) -> Holder:
    deadline = time.monotonic() + _RECORD_PATIENCE_S
    while True:
        holder = _parse(_read_all(fd))
        if holder is not None or time.monotonic() >= deadline:
            return holder or Holder()
        time.sleep(0.01)


def _read_all(fd: int) -> bytes:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        return os.read(fd, 4096)
    except OSError:
        return b""


def _parse(raw: bytes) -> Holder | None:
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None  # empty (released, or the holder is still writing) or from someone else
    if not isinstance(data, dict):
        return None

    def number(key: str) -> int | None:
        value = data.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None

    command = data.get("command")
    return Holder(pid=number("pid"), started_at_ms=number("startedAtMs"),
                  command=command if isinstance(command, str) and command.isprintable() else None)


# --- the platform's lock call --------------------------------------------------------------------


def _try_lock(fd: int) -> bool:
    """True if we now hold the lock, False if another process does; OSError for anything else."""
    if os.name == "nt":
        import msvcrt

        os.lseek(fd, _WINDOWS_LOCK_OFFSET, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.EDEADLK):
                return False
            raise
        return True
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return False
        raise
    return True


def _unlock(fd: int) -> None:
    with contextlib.suppress(OSError):
        if os.name == "nt":
            import msvcrt

            os.lseek(fd, _WINDOWS_LOCK_OFFSET, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
        else:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_UN)


_READ_ONLY = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})


def _unusable(state_dir: Path, what: str, exc: OSError) -> LocalError:
    reason = exc.strerror or type(exc).__name__
    if exc.errno == errno.EROFS:
        return LocalError(f"{what}: {reason}", retry=Retry.FATAL,
                          hint=f"the file system holding {state_dir} is mounted read-only; remount it "
                               "read-write or use a --state-dir on a writable one")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return LocalError(f"{what}: {reason}", retry=Retry.FATAL,
                          hint=f"make {state_dir} writable by the user the agent runs as, or use another "
                               "--state-dir")
    return LocalError(f"{what}: {reason}", retry=Retry.TRANSIENT)
