"""The approvals document on disk: ``exec-approvals.json`` in the state directory.

Blocking and synchronous (small local files); the service calls it from a worker thread. One
agent per state directory, and one lock here, so a read-modify-write (``set``, allow-always,
``node-agent exec allow``) never interleaves with another inside the process; a second process
(the CLI while the daemon runs) is kept honest by compare-and-swap on the content hash.

Invariants:

- **Fail closed.** A document that is a symlink, not a regular file, not owned by us, readable
  or writable by group or others, not UTF-8 JSON, or not a valid approvals document is
  *unusable*: :meth:`read` returns the deny-everything document with ``problem`` saying why, and
  nothing runs until a person fixes the file or replaces it with ``set`` (which writes a fresh
  0600 file, owned by us). It is never repaired silently.
- **Missing is not broken.** No file means the unconfigured policy (ask for everything);
  :meth:`ensure` writes it out so ``openclaw approvals get --node`` shows what is in force.
- **Written atomically, 0600**: temp file, fsync, rename, fsync of the directory.
- **A read is reused only while the file provably did not change** (:meth:`cached`): same inode,
  size, mtime and ctime (every write, chmod, chown and rename moves ctime), and it was read at
  least ``_SETTLED_NS`` after its last change: file times are coarse (a few ms), so a change in
  the same tick as the read would leave them equal ("racily clean", as git calls it).
- **The hash is the gateway's** (``jsjson.approvals_hash``) over the normalized document, so
  ``get``'s hash is what ``set``'s ``baseHash`` must carry; a mismatch changes nothing.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import json
import os
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..atomic import atomic_write
from ..errors import LocalError, Retry
from .document import DocumentError, empty_document, fail_closed_document, parse_document
from .jsjson import approvals_hash, missing_hash, serialize

FILE_NAME = "exec-approvals.json"
_SETTLED_NS = 1_000_000_000


class ApprovalsConflict(LocalError):
    """``set`` carried a ``baseHash`` that is not the current one (someone changed it first)."""

    retry = Retry.TRANSIENT

    def __init__(self) -> None:
        super().__init__("exec approvals changed; reload and retry")


class ApprovalsInvalid(LocalError):
    """A document offered to ``set`` (or the CLI) is not a valid approvals document."""

    retry = Retry.FATAL


class ApprovalsWriteError(LocalError):
    """The document could not be written (disk full, read-only state directory...)."""

    retry = Retry.TRANSIENT


def _uuid4() -> str:
    import uuid  # (with platform and friends) when an entry gets an id, not when `status` reads the policy

    return str(uuid.uuid4())


@dataclasses.dataclass(frozen=True, slots=True)
class Snapshot:
    path: Path
    exists: bool
    file: dict[str, Any]
    hash: str
    #: Why the stored document cannot be used (None when it can). The file then denies all.
    problem: str | None = None

    @property
    def usable(self) -> bool:
        return self.problem is None


class ApprovalsStore:
    def __init__(self, path: Path, *, new_id: Callable[[], str] = _uuid4,
                 uid: int | None = None) -> None:
        self.path = Path(path)
        self._new_id = new_id
        self._uid = os.getuid() if uid is None and hasattr(os, "getuid") else uid
        self._lock = threading.Lock()
        #: (what the file was, by stat; the snapshot read from it), for :meth:`cached`.
        self._last: tuple[tuple[int, ...], Snapshot] | None = None

    def __repr__(self) -> str:
        return f"<ApprovalsStore {self.path}>"

    # -- reading -------------------------------------------------------------------------------

    def read(self) -> Snapshot:
        with self._lock:
            return self._read()

    def cached(self) -> Snapshot | None:
        """The last :meth:`read`'s snapshot if the file is still the one it came from (one
        ``lstat``, cheap enough for the event loop), else None: then :meth:`read` again."""
        last = self._last
        if last is None:
            return None
        try:
            info = os.lstat(self.path)
        except OSError:
            return None
        return last[1] if _file_identity(info) == last[0] else None

    def _read(self) -> Snapshot:
        self._last = None
        snap, info = self._read_once()
        if info is not None and time.time_ns() - info.st_ctime_ns >= _SETTLED_NS:
            self._last = (_file_identity(info), snap)
        return snap

    def _read_once(self) -> tuple[Snapshot, os.stat_result | None]:
        try:
            fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            return Snapshot(self.path, exists=False, file=empty_document(), hash=missing_hash()), None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                return self._unusable(b"", "it is a symbolic link"), None
            return self._unusable(b"", f"it cannot be opened ({exc.strerror})"), None
        try:
            info = os.fstat(fd)  # of the file we opened, not of whatever the name points at now
            raw = _read_all(fd) if stat.S_ISREG(info.st_mode) else b""
        finally:
            os.close(fd)
        problem = self._insecure(info)
        if problem:
            return self._unusable(raw, problem), info
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return self._unusable(raw, "it is not valid JSON"), info
        try:
            doc = parse_document(data, new_id=self._new_id)
        except DocumentError as exc:
            return self._unusable(raw, f"it is not a valid approvals document ({exc})"), info
        return Snapshot(self.path, exists=True, file=doc, hash=approvals_hash(doc)), info

    def _insecure(self, info: os.stat_result) -> str | None:
        if not stat.S_ISREG(info.st_mode):
            return "it is not a regular file"
        if self._uid is not None and info.st_uid != self._uid:
            return f"it is owned by uid {info.st_uid}, not by this agent (uid {self._uid})"
        if info.st_mode & 0o077:
            return (f"its mode is {stat.S_IMODE(info.st_mode):04o}; it must be readable and writable by its "
                    f"owner only (chmod 600 {self.path})")
        return None

    def _unusable(self, raw: bytes, why: str) -> Snapshot:
        return Snapshot(self.path, exists=True, file=fail_closed_document(),
                        hash=hashlib.sha256(raw).hexdigest(),
                        problem=f"{self.path} is not used because {why}; every command is denied until it is fixed")

    # -- writing -------------------------------------------------------------------------------

    def ensure(self) -> Snapshot:
        """Write the unconfigured document if there is none; return what is in force."""
        with self._lock:
            current = self._read()
            if current.exists:
                return current
            return self._write(empty_document())

    def set(self, file: Any, base_hash: str | None) -> Snapshot:
        """Replace the document if ``base_hash`` is the current hash (``system.execApprovals.set``).

        With no document yet, ``base_hash`` may be omitted or be the ``missing:`` hash."""
        try:
            doc = parse_document(file, new_id=self._new_id)
        except DocumentError as exc:
            raise ApprovalsInvalid(f"invalid exec approvals document: {exc}") from None
        with self._lock:
            current = self._read()
            base = (base_hash or "").strip()
            if current.exists:
                if not base:
                    raise ApprovalsInvalid("exec approvals base hash required; reload and retry")
                if base != current.hash:
                    raise ApprovalsConflict()
            elif base and base != current.hash:
                raise ApprovalsConflict()
            return self._write(doc)

    def update(self, edit: Callable[[dict[str, Any]], dict[str, Any] | None]) -> Snapshot:
        """Read, ``edit`` (None = no change), write, under the lock. Refuses an unusable document:
        an edit must never launder a file we do not trust into one we do."""
        with self._lock:
            current = self._read()
            if not current.usable:
                raise ApprovalsInvalid(current.problem or "exec approvals unusable")
            changed = edit(current.file)
            if changed is None:
                return current
            return self._write(parse_document(changed, new_id=self._new_id))

    def _write(self, doc: dict[str, Any]) -> Snapshot:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            atomic_write(self.path, serialize(doc), 0o600)
        except OSError as exc:
            raise ApprovalsWriteError(f"could not write {self.path}: {exc.strerror or exc}") from exc
        return Snapshot(self.path, exists=True, file=doc, hash=approvals_hash(doc))


def _read_all(fd: int, limit: int = 4 * 1024 * 1024) -> bytes:
    chunks = []
    size = 0
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:  # a document this large is not one a person wrote; treat as invalid
            return b"\0"
        chunks.append(chunk)


def _file_identity(info: os.stat_result) -> tuple[int, ...]:
    return (info.st_dev, info.st_ino, info.st_mode, info.st_uid, info.st_size, info.st_mtime_ns, info.st_ctime_ns)
