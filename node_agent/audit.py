"""The audit log: one JSON object per line for every act done on the gateway's behalf.

Command runs and their denials (``system.run``) and MCP tool calls are recorded here, so a
person can answer "what did the agent do on this machine, when, and why was it allowed" without
the gateway. The file lives in the state directory, mode 0600, and is only ever appended to;
when it would grow past ``max_bytes`` it is rotated (``audit.jsonl`` -> ``audit.jsonl.1`` ...,
keeping ``keep`` old files), so a busy node cannot fill its disk with it.

Invariants:

* What goes in is what the caller names: time, kind, and the caller's fields (argv, cwd, exit
  code, duration, decision and reason, server and tool). Never environment values, never command
  output or tool results: callers do not pass them, and every record is run through the log
  redactor (:func:`node_agent.logs.redact`) as a last guard against a registered secret.
* One record is one ``write`` of one line to a file opened ``O_APPEND``: concurrent appends (two
  invokes finishing together) never interleave within a line.
* Blocking I/O leaves the Trio thread; a ``trio.Lock`` keeps rotation and appends in order.
* A failed append raises :class:`AuditError`; whether that stops the act is the caller's policy.
"""

from __future__ import annotations

import datetime
import errno
import json
import os
from pathlib import Path
from typing import Any

from .errors import LocalError, Retry

AUDIT_FILE = "audit.jsonl"


class AuditError(LocalError):
    """The audit log cannot be written (full disk, read-only state directory)."""

    retry = Retry.TRANSIENT


class AuditLog:
    def __init__(self, path: Path, *, max_bytes: int = 4 * 1024 * 1024, keep: int = 3):
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.keep = keep
        self._lock: Any = None  # a trio.Lock, made on first use (so importing this needs no Trio)

    def __repr__(self) -> str:
        return f"AuditLog({str(self.path)!r})"

    async def append(self, kind: str, **fields: Any) -> None:
        """Record one act. ``fields`` must be JSON-able; keys are written as given (camelCase)."""
        import trio

        if self._lock is None:
            self._lock = trio.Lock()
        line = self.render(kind, fields)
        async with self._lock:
            await trio.to_thread.run_sync(self._write, line)

    def render(self, kind: str, fields: dict[str, Any]) -> bytes:
        from .logs import redact

        record = {"ts": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds"),
                  "kind": kind, **fields}
        text = json.dumps(record, separators=(",", ":"), ensure_ascii=False, default=str)
        return (redact(text) + "\n").encode("utf-8")

    def _write(self, line: bytes) -> None:
        try:
            self._rotate_if_needed(len(line))
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
            try:
                if hasattr(os, "fchmod"):
                    os.fchmod(fd, 0o600)
                os.write(fd, line)  # one write of one line: O_APPEND keeps lines whole
            finally:
                os.close(fd)
        except OSError as exc:
            full = exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))
            raise AuditError(f"cannot write the audit log {self.path}: {exc.strerror or type(exc).__name__}",
                             hint=f"free space on the disk holding {self.path.parent}" if full else
                             f"make {self.path.parent} writable by the user the agent runs as") from None

    def _rotate_if_needed(self, incoming: int) -> None:
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return
        if size + incoming <= self.max_bytes:
            return
        for n in range(self.keep - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{n}")
            if older.exists():
                os.replace(older, self.path.with_name(f"{self.path.name}.{n + 1}"))
        if self.keep > 0:
            os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
        else:
            os.unlink(self.path)
