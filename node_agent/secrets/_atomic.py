"""Replace a small file so that a reader sees either the old bytes or the new, never a mix.

Blocking and synchronous on purpose: callers run it in a worker thread. Raises ``OSError``
unchanged; translating it into our own errors is the caller's job (it knows what the file is).

Invariants:

* The temp file lives next to the target (``os.replace`` is only atomic within one file
  system) and is created ``O_EXCL`` with the final mode, so the bytes are never readable by
  anyone else, not even for the moment between create and chmod.
* The target is only touched by ``os.replace``, after the data is fsynced; until then the old
  file is intact. A failure before the rename removes our temp file; a crash leaves it behind,
  and :func:`remove_stale_temps` (run at the start of every write) sweeps it up.
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
    """Delete temp files a crashed earlier write left next to ``target``."""
    prefix = _temp_prefix(target)
    with os.scandir(target.parent) as entries:
        for entry in entries:
            if entry.name.startswith(prefix) and entry.name.endswith(_TEMP_SUFFIX):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)


def atomic_write(target: Path, data: bytes, mode: int = 0o600) -> None:
    remove_stale_temps(target)
    temp = target.parent / f"{_temp_prefix(target)}{os.urandom(6).hex()}{_TEMP_SUFFIX}"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(temp, flags, mode)
    try:
        try:
            view = memoryview(data)
            while view:  # os.write may write less than asked (signals, pipes, quotas)
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
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
