"""Watch the whole test session for secrets reaching logs or exception text.

Installed once per session by ``tests/conftest.py``:

* every :class:`~node_agent.secret.Secret` created in this process, every device signature
  produced, and every token/key found in a subprocess agent's secret store is a *known secret*;
* every log record (at DEBUG, formatted, with its traceback) and the text of every
  :class:`~node_agent.errors.NodeAgentError` raised is *captured output*, as are the log files of
  the subprocess agents (:data:`tests.support.agent_process.LOG_FILES`).

When the session finishes, :func:`verdict` (called from ``pytest_sessionfinish`` in
``tests/conftest.py``, so it runs after every test whatever the order or selection) checks that
no known secret appears in any captured output; a leak fails the run. Short values (under 8 characters) are ignored: they are test fixtures like "x", not
credentials, and would match ordinary words.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

MIN_LEN = 8
known: set[str] = set()
captured: list[str] = []
errors_seen: list[BaseException] = []
_installed = False


class _Capture(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except Exception:
            text = str(record.msg)
        if record.exc_info:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
        captured.append(text)


def remember(value: str | None) -> None:
    if value and len(value) >= MIN_LEN:
        known.add(value)


def install() -> None:
    global _installed
    if _installed:
        return
    _installed = True
    from node_agent import errors, identity, secret

    original_init = secret.Secret.__init__

    def init(self, value):  # type: ignore[no-untyped-def]
        original_init(self, value)
        remember(value)

    secret.Secret.__init__ = init  # type: ignore[method-assign]

    original_sign = identity.DeviceIdentity.sign

    def sign(self, message):  # type: ignore[no-untyped-def]
        signature = original_sign(self, message)
        remember(signature)
        return signature

    identity.DeviceIdentity.sign = sign  # type: ignore[method-assign]

    original_error_init = errors.NodeAgentError.__init__

    def error_init(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        original_error_init(self, *args, **kwargs)
        errors_seen.append(self)  # rendered at scan time: subclasses finish __init__ after this

    errors.NodeAgentError.__init__ = error_init  # type: ignore[method-assign]

    root = logging.getLogger()
    root.addHandler(_Capture(level=logging.DEBUG))
    root.setLevel(logging.DEBUG)
    # The product silences trio-websocket's per-frame DEBUG logs; the session does the same.
    logging.getLogger("trio-websocket").setLevel(logging.WARNING)


def harvest_subprocess_secrets() -> list[Path]:
    """Known secrets from subprocess agents' stores; returns their log files to scan."""
    from tests.support.agent_process import KNOWN_TOKENS, LOG_FILES, STATE_DIRS

    for token in KNOWN_TOKENS:
        remember(token)
    for state_dir in STATE_DIRS:
        path = state_dir / "secrets.json"
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        for value in data.values():
            if isinstance(value, str):
                remember(value)
    return [p for p in LOG_FILES if p.exists()]


def error_texts() -> list[str]:
    texts = []
    for exc in errors_seen:
        try:
            texts.append(f"{exc!s} {exc!r} {getattr(exc, 'hint', None) or ''}")
        except Exception as render_error:  # a broken __repr__ is itself worth seeing
            texts.append(f"<unrenderable {type(exc).__name__}: {render_error!r}>")
    return texts


def leaks(texts: list[str], secrets: set[str]) -> list[tuple[str, str]]:
    found = []
    for secret_value in secrets:
        for text in texts:
            if secret_value in text:
                start = max(text.index(secret_value) - 60, 0)
                found.append((secret_value[:4] + "…", text[start:start + 140]))
                break
    return found


#: A scan over less than this is a partial run (one file, ``-k``): it proves nothing, so it says so.
MIN_SECRETS, MIN_TEXTS = 10, 50


def verdict() -> tuple[bool | None, str]:
    """(passed, one-line report) for the whole session; passed is None for a run too small to judge."""
    files = harvest_subprocess_secrets()
    texts = list(captured) + error_texts() + [p.read_text("utf-8", "replace") for p in files]
    summary = (f"{len(known)} secrets checked against {len(captured)} log records, "
               f"{len(errors_seen)} exception texts and {len(files)} agent log files")
    if len(known) < MIN_SECRETS or len(texts) < MIN_TEXTS:
        return None, f"not judged (a partial run: {summary})"
    found = leaks(texts, known)
    if found:
        return False, f"LEAKED {len(found)} secret(s): {found} ({summary})"
    return True, summary
