"""Logging setup: one line per record, journald-aware, and a last-line-of-defence redactor.

Secrets are kept out of log calls by construction (they travel as :class:`~node_agent.secret.Secret`,
which formats as ``***``). As a second guard, every secret the agent handles is registered with
:func:`register_secret`, and :class:`RedactingFilter` replaces any registered value that still
reaches a formatted message or traceback.
"""

from __future__ import annotations

import logging
import os
import sys
import threading

from .secret import Secret

_registered: set[str] = set()
_lock = threading.Lock()
#: Shorter strings would redact ordinary words; real tokens and keys are 32+ characters.
_MIN_SECRET_LEN = 8


def register_secret(secret: Secret | str | None) -> None:
    if secret is None:
        return
    value = secret.reveal() if isinstance(secret, Secret) else secret
    if len(value) >= _MIN_SECRET_LEN:
        with _lock:
            _registered.add(value)


def registered_values() -> frozenset[str]:
    """Every secret value registered so far (for :mod:`node_agent.childenv`, which keeps them out
    of child processes' environments)."""
    with _lock:
        return frozenset(_registered)


def redact(text: str) -> str:
    for value in list(_registered):
        if value in text:
            text = text.replace(value, "***")
    return text


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if _registered:
            message = record.getMessage()
            cleaned = redact(message)
            if cleaned != message:
                record.msg, record.args = cleaned, None
            if record.exc_info and record.exc_info[1] is not None:
                record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return True


class _JournalFormatter(logging.Formatter):
    """``<N>`` syslog priority prefixes, which journald parses into levels (SyslogLevelPrefix=)."""

    _PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}

    def format(self, record: logging.LogRecord) -> str:
        return f"<{self._PRIORITY.get(record.levelno, 6)}>{super().format(record)}"


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time of the record, not at setup: a CLI command
    run inside a longer-lived process (tests, a REPL) must not keep a stream that was replaced."""

    @property  # type: ignore[override]
    def stream(self):  # noqa: D401
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def setup_logging(level: str = "info", *, stream=None) -> None:
    """One handler on the root logger (replacing ours from an earlier call), with the redactor."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_node_agent", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(stream) if stream is not None else _StderrHandler()
    handler._node_agent = True  # type: ignore[attr-defined]
    if os.environ.get("JOURNAL_STREAM"):
        handler.setFormatter(_JournalFormatter("%(name)s: %(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S"))
    handler.addFilter(RedactingFilter())
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    # trio-websocket logs every frame at DEBUG; that is noise even when debugging us.
    logging.getLogger("trio-websocket").setLevel(logging.WARNING)
