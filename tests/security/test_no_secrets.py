"""The secret watch's own checks. The session-wide proof itself (no secret the session handled
reached a log record, an exception text or a subprocess agent's log) runs after the last test,
from ``pytest_sessionfinish`` (tests/conftest.py); these tests show the watch and the redactor
can catch what that proof looks for.
"""

from __future__ import annotations

import logging

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
