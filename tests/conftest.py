"""Session-wide test setup: the secret watch (see tests/support/secret_watch.py).

The watch is installed before any test runs and judged after the last one, in
``pytest_sessionfinish``: a secret that reached a log line or an exception text anywhere in the
session fails the run, whatever order the tests ran in.
"""

from __future__ import annotations

import pytest

from tests.support import secret_watch


def pytest_configure(config: pytest.Config) -> None:
    secret_watch.install()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    passed, report = secret_watch.verdict()
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"[no-secrets] {report}", red=passed is False, green=passed is True)
    if passed is False:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
