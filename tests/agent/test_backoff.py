"""The reconnect schedule, exactly (jitter pinned by injecting the random source)."""

from __future__ import annotations

import pytest

from node_agent.agent.backoff import ReconnectPolicy
from node_agent.errors import ConnectionLost, GatewayRejected, GatewayUnreachable, PairingRequired, Retry


def policy(u=0.5, **kw):
    return ReconnectPolicy(rng=lambda: u, **kw)


def test_transient_schedule_doubles_to_thirty_seconds():
    p = policy()
    delays = [p.next_delay(GatewayUnreachable("refused"), 0.0) for _ in range(8)]
    assert delays == [1, 2, 4, 8, 16, 30, 30, 30]


def test_jitter_stays_within_twenty_percent_and_below_the_cap():
    assert policy(0.0).next_delay(GatewayUnreachable("x"), 0) == 0.8
    assert policy(1.0).next_delay(GatewayUnreachable("x"), 0) == pytest.approx(1.2)
    high = policy(1.0)
    assert max(high.next_delay(GatewayUnreachable("x"), 0) for _ in range(10)) == 30.0


def test_success_resets_the_schedule():
    p = policy()
    for _ in range(4):
        p.next_delay(GatewayUnreachable("x"), 0)
    p.connected(10.0)
    assert p.next_delay(GatewayUnreachable("x"), 11.0) == 1


def test_recovery_after_losing_a_good_connection_is_fast_then_exponential():
    p = policy()
    p.connected(0.0)
    p.lost(100.0)
    assert [p.next_delay(GatewayUnreachable("x"), t) for t in (100.0, 150.0, 219.9)] == [0.5, 0.5, 0.5]
    assert [p.next_delay(GatewayUnreachable("x"), 220.0 + i) for i in range(3)] == [1, 2, 4]


def test_server_restart_waits_the_announced_time():
    p = policy()
    error = ConnectionLost("restarting", retry=Retry.SERVER_RESTART, retry_after_s=5.0)
    assert p.next_delay(error, 0.0) == 5.0
    assert p.next_delay(GatewayUnreachable("refused while it restarts"), 5.0) == 0.5


def test_categories():
    p = policy()
    assert p.next_delay(PairingRequired("p", code="NOT_PAIRED"), 0) == 3.0
    assert p.next_delay(GatewayRejected("x", code="C", retry=Retry.REAUTH), 0) == 0.25
    assert p.next_delay(GatewayRejected("x", code="C", retry=Retry.STARTING, retry_after_s=0.5), 0) == 0.5
    assert p.next_delay(GatewayRejected("x", code="C", retry=Retry.FATAL), 0) is None


def test_rate_limited_backs_off_long_and_honours_the_hint():
    p = policy()
    rate = GatewayRejected("slow down", code="INVALID_REQUEST", retry=Retry.RATE_LIMITED)
    assert [p.next_delay(rate, 0) for _ in range(5)] == [30, 60, 120, 240, 300]
    hinted = GatewayRejected("slow down", code="X", retry=Retry.RATE_LIMITED, retry_after_s=900)
    assert policy().next_delay(hinted, 0) == 900


def test_recovery_retries_are_spread_so_a_fleet_does_not_return_in_lock_step():
    for u, expected in ((0.0, 0.25), (0.5, 0.5), (1.0, 0.75)):
        p = policy(u)
        p.lost(0.0)
        assert p.next_delay(GatewayUnreachable("refused"), 1.0) == pytest.approx(expected)


def test_handshake_failures_during_recovery_fall_back_to_exponential():
    p = policy()
    p.lost(0.0)
    stalled = ConnectionLost("gateway sent no connect response within 15 s")
    assert [p.next_delay(stalled, 1.0 + i) for i in range(4)] == [0.5, 0.5, 1, 2]
    assert p.next_delay(GatewayUnreachable("refused"), 10.0) == 0.5  # a refused connect stays cheap
