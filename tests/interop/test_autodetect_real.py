"""``--protocol auto`` against the real OpenClaw gateway picks the OpenClaw dialect (the gateway
speaks first with a typed ``connect.challenge``) and goes on to a normal pairing request."""

from __future__ import annotations

import trio

from tests.support.agents import make_documented_agent as make_agent


async def test_auto_picks_openclaw_against_the_real_gateway(real_gateway, operator, tmp_path):
    agent = make_agent(real_gateway.url, tmp_path, shared=real_gateway.token, protocol="auto")
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(agent.run)
            request = await operator.wait_event(
                "device.pair.requested", lambda p: p.get("deviceId") == agent.identity.device_id, timeout=30)
            assert agent.status.current.dialect == "openclaw"
            assert agent.status.current.state.value in ("pairing", "waiting", "connecting")
            assert request["clientId"] == "node-host" and request["role"] == "node"
            nursery.cancel_scope.cancel()
