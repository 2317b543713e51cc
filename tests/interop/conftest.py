"""Fixtures for the interop tests: the real OpenClaw gateway, and an operator socket to drive it.

Job: start ONE real gateway per release per pytest session (start-up is ~10-14 s), give each
test a fresh operator connection, and mark every test under tests/interop with ``interop``.

Releases: every interop test runs against the pinned release; the spine
(``test_spine.py``), the event checks (``test_events.py``) and the release checks
(``test_release_behaviour.py``) also run against the oldest
supported one, so the README's test command covers both ends of the supported range. Test ids
carry the release (``[2026.9.6]``). ``NODE_AGENT_SPINE_RELEASES=v1,v2`` replaces the spine's
list (what ``scripts/interop-matrix`` does, one release per run); ``OPENCLAW_VERSION``
replaces the pinned release for everything else.

Invariants:
- These tests never skip quietly. Outside a loopback-only network namespace, or without the
  gateway install, they fail with the command that fixes it; only ``NODE_AGENT_SKIP_INTEROP=1``
  turns them into skips (for machines that cannot run them; CI runs them for real).
- The gateway is stopped at the end of the session whatever happened (and RealGateway itself
  kills it at exit, or when pytest dies).
- The session gateway has ``autoApproveLocal`` off, so devices go through real pairing. A test
  that restarts or kills it must leave it running (``real_gateway.restart()``) for later tests.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.support.agent_process import LOG_FILES
from tests.support.openclaw_releases import OLDEST_SUPPORTED, PINNED, Release, releases_from_env
from tests.support.operator import Operator
from tests.support.real_gateway import (
    NETNS_HINT,
    GatewayNotInstalledError,
    NotIsolatedError,
    RealGateway,
    check_isolated,
)

HERE = Path(__file__).resolve().parent

#: Talk's voice, offline: the gateway's local-CLI speech provider running espeak-ng (what
#: ``talk.speak`` answers with; docs/tools/tts/configuration.md, "Local CLI"). Only talk.speak
#: reads it, so it is harmless for every other test.
TALK_LOCAL_CLI = {"talk": {"provider": "tts-local-cli", "providers": {"tts-local-cli": {
    "command": "espeak-ng", "args": ["-w", "{{OutputPath}}", "{{Text}}"], "outputFormat": "wav", "timeoutMs": 30000}}}}

#: Test files whose tests run against every release of the spine list.
RELEASE_SPANNING = frozenset({"test_spine.py", "test_release_behaviour.py", "test_events.py"})


def spine_releases() -> tuple[Release, ...]:
    return releases_from_env("NODE_AGENT_SPINE_RELEASES", (PINNED, OLDEST_SUPPORTED))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize ``real_gateway`` by release for every interop test (all of them, so that
    tests of one release share one session gateway; an unparametrized use would start another)."""
    if "real_gateway" not in metafunc.fixturenames or not metafunc.definition.path.is_relative_to(HERE):
        return
    if metafunc.definition.path.name in RELEASE_SPANNING:
        releases = spine_releases()
    else:
        releases = releases_from_env("OPENCLAW_VERSION", (PINNED,))
    metafunc.parametrize("real_gateway", releases, indirect=True, scope="session", ids=str)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.interop)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item):
    """A failing interop test reports the tail of every agent log it wrote: against a real
    gateway on a loaded CI machine, that log is the only account of what the agent saw."""
    first = len(LOG_FILES)
    outcome = yield
    if outcome.excinfo is None:
        return
    for path in LOG_FILES[first:]:
        try:
            text = path.read_text("utf-8", "replace")
        except OSError as exc:
            text = f"(unreadable: {exc})"
        item.add_report_section("call", f"agent log {path.name}", text[-8000:])


@pytest.fixture(scope="session")
def real_gateway(request: pytest.FixtureRequest) -> Iterator[RealGateway]:
    """The session's real OpenClaw gateway of one release (running, ready, autoApproveLocal off
    where the release has that switch)."""
    if os.environ.get("NODE_AGENT_SKIP_INTEROP") == "1":
        pytest.skip("NODE_AGENT_SKIP_INTEROP=1")
    release = getattr(request, "param", None)
    # Talk's speech settings are keys only today's release knows (an older one's strict schema
    # would refuse to start); the voice tests that speak run against it alone.
    talk = TALK_LOCAL_CLI if release is None or str(release) == PINNED else None
    gateway = RealGateway(release=release, extra_config=talk, start_timeout=150.0)  # a loaded 2-core CI machine
    try:
        check_isolated()
        gateway.check_install()
    except (NotIsolatedError, GatewayNotInstalledError) as exc:
        pytest.fail(
            f"{exc}\nInterop tests need the real gateway in a loopback-only netns: "
            f"{gateway.setup_hint}, then {NETNS_HINT} "
            "(or set NODE_AGENT_SKIP_INTEROP=1 to skip them).",
            pytrace=False,
        )
    with gateway:
        yield gateway


@pytest.fixture
async def operator(real_gateway: RealGateway) -> AsyncIterator[Operator]:
    """A fresh operator socket on the session gateway (all operator scopes, no device identity)."""
    async with Operator.connect(real_gateway.url, real_gateway.token) as op:
        yield op
