"""Every row of the decision table (reference §3; ``evaluateSystemRunPolicy``)."""

from __future__ import annotations

import pytest

from node_agent.exec.decision import decide, max_ask, min_security
from node_agent.exec.document import UNCONFIGURED, Policy

SECURITIES = ("deny", "allowlist", "full")
ASKS = ("off", "on-miss", "always")


def policy(security: str, ask: str, fallback: str = "deny") -> Policy:
    return Policy(security=security, ask=ask, ask_fallback=fallback, auto_allow_skills=False)


# (security, ask, covered, durable, approved) -> (allowed, reason)
TABLE = [
    # deny: nothing runs, approved or not
    *[((("deny", ask, cov, dur, app)), (False, "security=deny"))
      for ask in ASKS for cov in (False, True) for dur in (False, True) for app in (False, True)],
    # ask=always: a person must approve every run, allowlisted or durable or not
    (("allowlist", "always", True, True, False), (False, "approval-required")),
    (("allowlist", "always", False, False, False), (False, "approval-required")),
    (("full", "always", False, False, False), (False, "approval-required")),
    (("full", "always", True, True, True), (True, None)),
    (("allowlist", "always", False, False, True), (True, None)),
    # allowlist + on-miss: a miss asks; a hit or a durable grant runs
    (("allowlist", "on-miss", False, False, False), (False, "approval-required")),
    (("allowlist", "on-miss", True, False, False), (True, None)),
    (("allowlist", "on-miss", False, True, False), (True, None)),
    (("allowlist", "on-miss", False, False, True), (True, None)),
    # allowlist + off: a miss is denied outright, nobody is asked
    (("allowlist", "off", False, False, False), (False, "allowlist-miss")),
    (("allowlist", "off", True, False, False), (True, None)),
    (("allowlist", "off", False, True, False), (True, None)),
    (("allowlist", "off", False, False, True), (True, None)),
    # full: runs unless ask=always
    (("full", "off", False, False, False), (True, None)),
    (("full", "on-miss", False, False, False), (True, None)),
]


@pytest.mark.parametrize(("facts", "expected"), TABLE, ids=[str(f) for f, _ in TABLE])
def test_the_decision_table(facts: tuple[str, str, bool, bool, bool], expected: tuple[bool, str | None]) -> None:
    security, ask, covered, durable, approved = facts
    decision = decide(policy(security, ask), analysis_ok=True, covered=covered, durable=durable, approved=approved)
    assert (decision.allowed, decision.reason) == expected
    if not decision.allowed:
        assert decision.message and decision.message.startswith(("SYSTEM_RUN_DENIED", "SYSTEM_RUN_DISABLED"))


def test_a_command_that_cannot_be_analysed_is_never_covered() -> None:
    decision = decide(policy("allowlist", "on-miss"), analysis_ok=False, covered=True, durable=False, approved=False)
    assert decision.reason == "approval-required"


def test_the_unconfigured_node_asks_for_every_new_command() -> None:
    assert (UNCONFIGURED.security, UNCONFIGURED.ask, UNCONFIGURED.ask_fallback) == ("allowlist", "on-miss", "deny")
    assert decide(UNCONFIGURED, analysis_ok=True, covered=False, durable=False, approved=False).reason == \
        "approval-required"


def test_an_ask_fallback_run_is_decided_under_the_fallback_which_denies_by_default() -> None:
    assert decide(policy("full", "on-miss"), analysis_ok=True, covered=False, durable=False, approved=False,
                  ask_fallback=True).reason == "security=deny"
    allowed = decide(policy("full", "on-miss", fallback="allowlist"), analysis_ok=True, covered=True,
                     durable=False, approved=False, ask_fallback=True)
    assert allowed.allowed and (allowed.security, allowed.ask) == ("allowlist", "off")
    missed = decide(policy("full", "on-miss", fallback="allowlist"), analysis_ok=True, covered=False,
                    durable=False, approved=False, ask_fallback=True)
    assert missed.reason == "allowlist-miss"


def test_min_security_and_max_ask_order_as_the_gateway() -> None:
    assert [min_security(a, b) for a, b in [("full", "allowlist"), ("deny", "full"), ("allowlist", "allowlist")]] == \
        ["allowlist", "deny", "allowlist"]
    assert [max_ask(a, b) for a, b in [("off", "on-miss"), ("always", "off"), ("on-miss", "on-miss")]] == \
        ["on-miss", "always", "on-miss"]
