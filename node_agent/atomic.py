"""Replace a small file so that a reader sees either the old bytes or the new, never a mix.

The one atomic-file helper of the package: secrets, the identity record, the status file, the
exec approvals document and the service definitions all go through :func:`atomic_write`.
Blocking and synchronous on purpose: callers run it in a worker thread. Raises ``OSError``
unchanged; translating it into our own errors is the caller's job (it knows what the file is).

Invariants:

* The temp file lives next to the target (``os.replace`` is only atomic within one file
  system) and is created ``O_EXCL`` with the final mode, so the bytes are never readable by
  anyone else, not even for the moment between create and chmod.
* The target is only touched by ``os.replace``, after the data is fsynced (unless the caller
  says the file need not survive a power cut: ``durable=False``); until then the old file is
  intact. A failure before the rename removes our temp file; a crash leaves it behind,
  and :func:`remove_stale_temps` (run at the start of every write) sweeps it up.
* A temp file is named after the process that made it (``.<name>.<pid>.<random>.tmp``) and the
  sweep removes only those of processes that no longer exist: two processes writing next to each
  other (two first starts racing for one state directory) never delete each other's temp file
  mid-write. A stale temp whose pid was reused by a live process stays behind; that is harmless.
* One writer per target at a time (callers hold a lock; one agent per state directory).
"""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path


def _temp_prefix(target: Path) -> str:
    return f".{target.name}."


_TEMP_SUFFIX = ".tmp"


def remove_stale_temps(target: Path) -> None:
    """Delete temp files that crashed earlier writes (of processes now gone) left next to ``target``."""
    prefix = _temp_prefix(target)
    with os.scandir(target.parent) as entries:
        for entry in entries:
            if not (entry.name.startswith(prefix) and entry.name.endswith(_TEMP_SUFFIX)):
                continue
            owner = entry.name[len(prefix):-len(_TEMP_SUFFIX)].split(".", 1)[0]
            if owner.isdigit() and _alive(int(owner)):
                continue  # another process is writing this target right now
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # ours, left by an earlier failed write of this process: a write is not running
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists (another user's), or we cannot tell: keep it
    return True


def atomic_write(target: Path, data: bytes, mode: int = 0o600, *, durable: bool = True) -> None:
    """Replace ``target`` with ``data``, final permission ``mode`` (set at creation).

    ``durable=False`` skips both fsyncs: readers still see the old bytes or the new, but a power
    cut may bring back the old file. For a file that only describes the running process (the
    status file, rewritten on every change), where an fsync per change is milliseconds of
    latency, and wear on an SD card, for nothing."""
    remove_stale_temps(target)
    temp = target.parent / f"{_temp_prefix(target)}{os.getpid()}.{os.urandom(6).hex()}{_TEMP_SUFFIX}"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(temp, flags, mode)
    try:
        try:
            if hasattr(os, "fchmod"):
                os.fchmod(fd, mode)  # exactly ``mode``: the umask only narrowed it at creation
            view = memoryview(data)
            while view:  # os.write may write less than asked (signals, pipes, quotas)
                written = os.write(fd, view)
                view = view[written:]
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    if durable:
        _fsync_dir(target.parent)


def _fsync_dir(directory: Path) -> None:
    # Without this the rename itself may not survive a power cut: the new name lives in the
    # directory's blocks. Windows has no O_DIRECTORY and no way to fsync a directory.
    if not hasattr(os, "O_DIRECTORY"):
        return
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    except OSError as exc:
        # Some file systems (certain network and FUSE mounts) cannot fsync a directory. The
        # rename has happened by now, so failing the write would report a loss that is not one.
        if exc.errno != errno.EINVAL:
            raise
    finally:
        os.close(fd)
