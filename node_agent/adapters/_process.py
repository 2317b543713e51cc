"""Running a helper program (a notifier, a speech engine) under a timeout.

Adapters never call :func:`trio.run_process` directly: they take a :class:`ProcessRunner`, so a
test can record the exact argv, extra environment and stdin a macOS or Windows adapter *would*
execute, on a Linux box, without running anything. User-supplied text travels only through
stdin or an environment variable, never inside a script or a shell command line.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Protocol

import attrs
import trio


@attrs.frozen
class ProcessResult:
    returncode: int
    stdout: bytes = b""
    stderr: bytes = b""


class ProcessRunner(Protocol):
    async def __call__(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None,
                       stdin: bytes = b"", timeout_s: float) -> ProcessResult:
        """Run ``argv`` (no shell) with ``env`` *added to* the inherited environment, feed it
        ``stdin`` and wait at most ``timeout_s``. Raises ``OSError`` if it cannot start and
        :class:`trio.TooSlowError` on timeout (the process is killed)."""
        ...


async def run_process(argv: Sequence[str], *, env: Mapping[str, str] | None = None,
                      stdin: bytes = b"", timeout_s: float) -> ProcessResult:
    full_env = None if env is None else {**os.environ, **env}
    with trio.fail_after(timeout_s):
        # On cancellation (timeout included) trio kills the child and waits for it.
        result = await trio.run_process(list(argv), stdin=stdin, capture_stdout=True,
                                        capture_stderr=True, check=False, env=full_env)
    return ProcessResult(result.returncode, result.stdout or b"", result.stderr or b"")


def stderr_tail(result: ProcessResult, limit: int = 200) -> str:
    """The last bit of a helper's stderr, for a log line or an error message."""
    text = result.stderr.decode("utf-8", "replace").strip()
    return text[-limit:]
