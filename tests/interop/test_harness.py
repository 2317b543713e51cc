"""The interop harness itself works: the real gateway is up and isolated, the operator drives it.

These run first in a fresh session and are the thing to look at when every other interop test
fails at once.
"""

from __future__ import annotations

import time

import trio

from tests.support.operator import Operator, OperatorError
from tests.support.real_gateway import KNOWN_BLOCKED_HOSTS, RealGateway, network_interfaces


async def test_operator_connects_and_health_answers(real_gateway: RealGateway, operator: Operator) -> None:
    assert operator.hello["type"] == "hello-ok"
    assert operator.hello["server"]["version"] == real_gateway.release.version
    assert operator.hello["auth"]["role"] == "operator"
    assert set(operator.hello["auth"]["scopes"]) >= {"operator.admin", "operator.pairing"}
    methods = set(operator.hello["features"]["methods"])
    for method in ("health", "device.pair.approve", "node.pair.approve", "node.invoke",
                   "voicewake.set", "talk.mode"):
        assert method in methods

    with trio.fail_after(5):
        health = await operator.health()
    assert isinstance(health, dict)


async def test_operator_calls_are_fast_and_errors_are_typed(operator: Operator) -> None:
    t0 = trio.current_time()
    assert isinstance(await operator.pending_devices(), list)
    assert isinstance(await operator.pending_nodes(), list)
    assert trio.current_time() - t0 < 1.0

    try:
        await operator.invoke("no-such-node", "device.info", {}, timeout_ms=1000)
    except OperatorError as exc:
        print(f"node.invoke on an unknown node: {exc}")
        assert exc.method == "node.invoke"
        assert exc.code and exc.message
    else:
        raise AssertionError("node.invoke on an unknown node succeeded")


async def test_operator_sees_its_own_broadcasts(operator: Operator) -> None:
    before = await operator.get_voicewake()
    try:
        wanted = [*before, "harness check"]
        assert await operator.set_voicewake(wanted) == wanted
        changed = await operator.wait_event("voicewake.changed", timeout=5)
        assert "harness check" in changed["triggers"]
    finally:
        await operator.set_voicewake(before)

    await operator.talk_mode(True, "listening")
    mode = await operator.wait_event(
        "talk.mode", lambda p: p.get("phase") == "listening", timeout=5
    )
    assert mode["enabled"] is True
    await operator.talk_mode(False)


def test_runs_isolated(real_gateway: RealGateway) -> None:
    assert network_interfaces() == ["lo"]
    assert real_gateway.url.startswith("ws://127.0.0.1:")


async def test_no_unexpected_egress(real_gateway: RealGateway) -> None:
    # The known plugin-catalog fetch comes ~2 s after "ready"; give anything else the same chance.
    assert real_gateway.ready_at is not None
    await trio.sleep(max(0.0, real_gateway.ready_at + 5.0 - time.monotonic()))

    print(f"gateway start took {real_gateway.start_seconds:.1f} s")
    blocked = real_gateway.blocked_egress()
    print(f"loopback guard refused {len(blocked)} attempt(s): "
          + ", ".join(sorted({f'{e.kind} {e.target}' for e in blocked})))
    unexpected = real_gateway.unexpected_egress()
    assert unexpected == [], f"outbound attempts beyond {sorted(KNOWN_BLOCKED_HOSTS)}: {unexpected}"
