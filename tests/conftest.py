"""Session-wide test setup: the secret watch (see tests/support/secret_watch.py)."""

from __future__ import annotations

from tests.support import secret_watch


def pytest_configure(config):
    secret_watch.install()
