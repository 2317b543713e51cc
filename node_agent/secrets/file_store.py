"""The ``file`` backend: one JSON object ``{key: value}`` in a mode-0600 file.

Used where there is no OS keyring (headless Linux without a Secret Service, containers).
The file is as private as the user account, no more: that is the documented trade-off.

Invariants:

* Writes are atomic (see :mod:`node_agent.atomic`): after a crash, a full disk or a read-only file
  system the file holds either the old object or the new one, never a torn mix.
* A file we cannot parse is an error (:class:`~node_agent.errors.SecretStoreError`, retry
  ``FATAL``), never "empty": it may hold the device identity, and treating it as empty would
  let the agent generate a new identity and overwrite the old one on the next write.
* A file readable by group or others is tightened to 0600 with one warning, not refused:
  refusing would not un-leak anything, it would only stop the agent.
* Blocking I/O runs in worker threads that are never abandoned (a half-abandoned write
  would race the next one); a ``trio.Lock`` makes each read-modify-write one step.
* No value reaches a message, a log line or a ``repr``.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import stat
from pathlib import Path

import attrs
import trio

from ..atomic import atomic_write
from ..errors import Retry, SecretStoreError
from ..secret import Secret
from ._values import require_secret

log = logging.getLogger(__name__)

_PRIVATE = 0o600


@attrs.frozen
class _Loaded:
    values: dict[str, str] = attrs.field(repr=False)
    #: The mode the file had if it was readable by others (we tightened it), else ``None``.
    loose_mode: int | None = None
    #: Why tightening failed, if it did.
    tighten_error: str | None = None


class FileStore:
    name = "file"
    durable = True

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self._lock = trio.Lock()

    def __repr__(self) -> str:
        return f"FileStore({str(self.path)!r})"

    async def get(self, key: str) -> Secret | None:
        async with self._lock:
            values = await self._load()
        plain = values.get(key)
        return None if plain is None else Secret(plain)

    async def set(self, key: str, value: Secret) -> None:
        require_secret(value)
        async with self._lock:
            values = await self._load()
            values[key] = value.reveal()
            await trio.to_thread.run_sync(_write, self.path, values)

    async def delete(self, key: str) -> None:
        async with self._lock:
            values = await self._load()
            if key not in values:
                return  # nothing to do; do not create the file just to say so
            del values[key]
            await trio.to_thread.run_sync(_write, self.path, values)

    async def _load(self) -> dict[str, str]:
        loaded = await trio.to_thread.run_sync(_read, self.path)
        if loaded.loose_mode is not None:
            if loaded.tighten_error is None:
                log.warning("secrets file %s had mode %04o (readable by others); tightened it to 0600",
                            self.path, loaded.loose_mode)
            else:
                log.warning("secrets file %s has mode %04o (readable by others) and could not be "
                            "tightened to 0600: %s", self.path, loaded.loose_mode, loaded.tighten_error)
        return loaded.values


# --- blocking halves, run in worker threads ---------------------------------------------------


def _read(path: Path) -> _Loaded:
    try:
        f = open(path, "rb")  # not a with-statement: open errors and read errors read differently
    except FileNotFoundError:
        return _Loaded({})
    except OSError as exc:
        raise SecretStoreError(f"cannot read secrets file {path}: {_reason(exc)}",
                               hint=f"Make {path} readable by the user the agent runs as.") from None
    with f:
        loose_mode = tighten_error = None
        try:
            mode = stat.S_IMODE(os.fstat(f.fileno()).st_mode)
            if mode & 0o077:
                loose_mode = mode
                try:
                    _chmod_private(f.fileno(), path)
                except OSError as exc:
                    tighten_error = _reason(exc)
            raw = f.read()
        except OSError as exc:
            raise SecretStoreError(f"cannot read secrets file {path}: {_reason(exc)}") from None
    return _Loaded(_parse(raw, path), loose_mode, tighten_error)


def _parse(raw: bytes, path: Path) -> dict[str, str]:
    # ``from None`` throughout: a JSONDecodeError carries the whole document in ``.doc``, and a
    # chained cause would put it within reach of any error reporter that walks exceptions.
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise _corrupt(path, "is not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise _corrupt(path, f"is not valid JSON (line {exc.lineno}, column {exc.colno})") from None
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise _corrupt(path, "is not a JSON object of strings")
    return data


def _corrupt(path: Path, what: str) -> SecretStoreError:
    return SecretStoreError(
        f"secrets file {path} {what}; refusing to treat it as empty",
        retry=Retry.FATAL,
        hint=(f"{path} may hold this device's identity. Restore it from a backup, or move it "
              "aside to start over with a new identity (the device must then be paired again)."),
    )


def _write(path: Path, values: dict[str, str]) -> None:
    data = (json.dumps(values, indent=2, sort_keys=True) + "\n").encode("utf-8")
    try:
        atomic_write(path, data, _PRIVATE)
    except OSError as exc:
        raise _write_error(path, exc) from None


def _write_error(path: Path, exc: OSError) -> SecretStoreError:
    if exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        return SecretStoreError(
            f"cannot write secrets file {path}: no space left on device; the previous contents "
            "are intact", retry=Retry.TRANSIENT, hint=f"Free some space on the disk holding {path.parent}.")
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return SecretStoreError(
            f"cannot write secrets file {path}: {_reason(exc)}; the previous contents are intact",
            retry=Retry.FATAL,
            hint=f"Make {path.parent} writable by the user the agent runs as, or use another state directory.")
    return SecretStoreError(f"cannot write secrets file {path}: {_reason(exc)}")


def _reason(exc: OSError) -> str:
    # strerror, not str(exc): the latter repeats file names we already print once.
    return exc.strerror or type(exc).__name__


def _chmod_private(fd: int, path: Path) -> None:
    if hasattr(os, "fchmod"):
        os.fchmod(fd, _PRIVATE)
    else:  # Windows: only the read-only bit means anything, but keep the call symmetric
        os.chmod(path, _PRIVATE)
