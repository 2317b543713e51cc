"""Runs last (file order): no secret seen anywhere in the session reached a log or an exception.

Scans every log record captured in this process (DEBUG and up, with tracebacks), the text of
every NodeAgentError raised, and the log files of every subprocess agent, for every secret the
session handled: Secret values (shared tokens, device tokens, private keys, bootstrap tokens),
device signatures, and the tokens/keys found in subprocess agents' secret stores.
"""

from __future__ import annotations

import logging

import pytest

from node_agent.errors import GatewayRejected
from node_agent.logs import RedactingFilter, register_secret
from node_agent.secret import Secret
from tests.support import secret_watch


def test_the_watch_catches_a_leak():
    # Positive control: a leak planted here is found by the same scan.
    canary = "canary-secret-value-0123456789"
    assert secret_watch.leaks([f"oops {canary} leaked"], {canary})
    assert not secret_watch.leaks(["all *** fine"], {canary})


def test_redacting_filter_scrubs_registered_values():
    value = "registered-token-abcdef123456"
    register_secret(Secret(value))
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "token is %s", (value,), None)
    RedactingFilter().filter(record)
    assert value not in record.getMessage() and "***" in record.getMessage()


def test_gateway_error_details_are_scrubbed():
    error = GatewayRejected("refused", code="X", details={"deviceToken": "dt-should-not-appear-123"})
    assert "dt-should-not-appear-123" not in repr(error.details)


def test_no_secret_in_any_log_line_or_exception_of_the_session():
    files = secret_watch.harvest_subprocess_secrets()
    texts = list(secret_watch.captured) + secret_watch.error_texts() + [p.read_text("utf-8", "replace") for p in files]
    if len(secret_watch.known) < 10 or len(texts) < 50:
        pytest.skip("run the whole suite: this test checks what the other tests logged")
    print(f"\n[no-secrets] {len(secret_watch.known)} secrets checked against {len(secret_watch.captured)} "
          f"log records, {len(secret_watch.errors_seen)} exception texts and {len(files)} agent log files")
    assert secret_watch.leaks(texts, secret_watch.known) == []
