"""Running a helper program (a notifier, a speech engine) under a timeout.

Adapters never call :func:`trio.run_process` directly: they take a :class:`ProcessRunner`, so a
test can record the exact argv, extra environment and stdin a macOS or Windows adapter *would*
execute, on a Linux box, without running anything. User-supplied text travels only through
stdin or an environment variable, never inside a script or a shell command line.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Protocol

import attrs
import trio

from ..childenv import helper_env
from .base import SpeechError


@attrs.frozen
class ProcessResult:
    returncode: int
    stdout: bytes = b""
    stderr: bytes = b""


class ProcessRunner(Protocol):
    async def __call__(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None,
                       stdin: bytes = b"", timeout_s: float) -> ProcessResult:
        """Run ``argv`` (no shell) with ``env`` added to a helper's minimal environment
        (:func:`node_agent.childenv.helper_env`: never the gateway token), feed it
        ``stdin`` and wait at most ``timeout_s``. Raises ``OSError`` if it cannot start and
        :class:`trio.TooSlowError` on timeout (the process is killed)."""
        ...


async def run_process(argv: Sequence[str], *, env: Mapping[str, str] | None = None,
                      stdin: bytes = b"", timeout_s: float) -> ProcessResult:
    full_env = helper_env(env)
    with trio.fail_after(timeout_s):
        # On cancellation (timeout included) trio kills the child and waits for it.
        result = await trio.run_process(list(argv), stdin=stdin, capture_stdout=True,
                                        capture_stderr=True, check=False, env=full_env)
    return ProcessResult(result.returncode, result.stdout or b"", result.stderr or b"")


def stderr_tail(result: ProcessResult, limit: int = 200) -> str:
    """The last bit of a helper's stderr, for a log line or an error message."""
    text = result.stderr.decode("utf-8", "replace").strip()
    return text[-limit:]


async def speak_with(run: ProcessRunner, tool: str, argv: Sequence[str], *, timeout_s: float, stdin: bytes = b"",
                     env: Mapping[str, str] | None = None, missing_hint: str | None = None,
                     failed: Callable[[ProcessResult], bool] = lambda result: result.returncode != 0,
                     failure_hint: str | None = None,
                     explain: Callable[[ProcessResult], SpeechError | None] | None = None) -> None:
    """Run a speech engine to the end. Every way it can go wrong (missing, cannot start, hangs,
    fails) becomes a :class:`SpeechError` naming ``tool``; ``failed`` decides what counts as a
    failure for engines that exit 0 on error, and ``explain`` may turn a failure it recognises
    into the reason and fix in a person's words (else: the tool's last words and ``failure_hint``)."""
    try:
        result = await run(argv, env=env, stdin=stdin, timeout_s=timeout_s)
    except FileNotFoundError as exc:
        if missing_hint is None:
            raise SpeechError(f"could not start {tool}: {exc}") from exc
        raise SpeechError(f"{tool} is not installed", hint=missing_hint) from exc
    except OSError as exc:
        raise SpeechError(f"could not start {tool}: {exc}") from exc
    except trio.TooSlowError as exc:
        raise SpeechError(f"{tool} did not finish within {timeout_s:.0f} s") from exc
    if failed(result):
        explained = explain(result) if explain is not None else None
        if explained is not None:
            raise explained
        raise SpeechError(f"{tool} failed (exit {result.returncode}): {stderr_tail(result)}", hint=failure_hint)


async def notify_or_log(tool: str, delivered_as: str, attempt: Callable[[], Awaitable[ProcessResult]],
                        title: str, body: str, log: logging.Logger) -> str:
    """Show a notification with a platform tool; when the tool is missing, fails or hangs, the
    notification still reaches a person through the log. Returns how it was delivered."""
    try:
        result = await attempt()
        if result.returncode == 0:
            return delivered_as
        log.info("%s failed (exit %s: %s); logging the notification instead", tool, result.returncode,
                 stderr_tail(result))
    except (OSError, trio.TooSlowError) as exc:
        log.info("%s unusable (%s); logging the notification instead", tool, type(exc).__name__)
    log.warning("notification: %s: %s", title, body)
    return "log"
