"""Every node.event node-agent sends is taken by the real gateway, on every release.

OpenClaw answers ``node.event`` ``{ok: true}`` even for an event it drops, so "ok" proves
nothing: where a release reports ``handled`` (presence from 2026.4.29, host stats from 2026.9.2),
the test asserts ``handled: true``; where the gateway's handler reports nothing on any release
(voice.transcript, chat.subscribe: answered a bare ``{ok: true}``, facts in
docs/openclaw-releases.md), it asserts what the event does at the gateway: a transcript starts an
agent run in its session, and a subscription brings that run's ``chat`` events to the node.
(The harness configures no model, so the run fails at once. 2026.4.29-8.2 send no ``chat`` event
for such a run: there the gateway's own log line is the proof of the run, and the subscription
goes unproven.)
Events no release handles are not sent (host stats to releases before 2026.9.2), and the
agent's own status must show no refused event at the end.
"""

from __future__ import annotations

import trio

from node_agent.agent.commands import host_stats, host_stats_event
from node_agent.agent.node import HOST_STATS_BROADCAST
from tests.interop.helpers import build_agent, pair_on_release, start_agent
from tests.support.agents import Recorder
from tests.support.operator import Operator
from tests.support.real_gateway import RealGateway

SESSION = "main"


def mine(device_id: str):
    return lambda payload: isinstance(payload, dict) and payload.get("nodeId") == device_id


async def test_each_event_the_agent_sends_is_handled(real_gateway: RealGateway, operator: Operator, tmp_path):
    release = real_gateway.release
    recorder = Recorder()
    agent = build_agent(real_gateway, real_gateway.token, tmp_path, heartbeat_interval=3.0)
    agent.extensions.append(recorder)
    with trio.fail_after(150):
        async with trio.open_nursery() as nursery:
            running = await start_agent(nursery, agent)
            await pair_on_release(operator, running, release)
            if release.applies_surface_at_connect:
                await running.wait_connected(65, after=1)  # 2026.3.31: the one reconnect at the next heartbeat (and tick)
            conn = agent.conn
            hello = conn.session.hello

            presence = await conn.node_event("node.presence.alive", {"trigger": "manual"})
            assert presence.handled is (True if release.reports_presence_handled else None), presence

            # Host stats: only where the gateway lists them, and there in the shape it takes.
            assert (HOST_STATS_BROADCAST in hello.events) is release.handles_host_stats
            if release.handles_host_stats:
                stats = await conn.node_event("node.host.stats", host_stats_event(host_stats()))
                assert (stats.handled, stats.reason) == (True, "updated"), stats
                await operator.wait_event("node.hostStats", mine(running.device_id), timeout=10)

            # chat.subscribe, then a transcript: the run it starts reaches the node's session.
            subscribed = await conn.subscribe(SESSION)
            assert not (isinstance(subscribed, dict) and subscribed.get("handled") is False), subscribed
            transcript = await conn.node_event("voice.transcript", {"text": "hello from the interop test",
                                                                     "sessionKey": SESSION})
            assert transcript.handled is not False, transcript
            if release.reports_a_failed_run_in_chat:
                chat = None
                with trio.move_on_after(60):
                    chat = await recorder.wait_event("chat")
                assert chat is not None, f"no chat event for the transcript's run; the gateway's log:\n{real_gateway.log_tail(60)}"
                assert str(chat[0].body.payload.get("sessionKey", "")).endswith(SESSION)
            else:
                started = f"agent failed node={running.device_id}"
                with trio.fail_after(60):
                    while started not in real_gateway.log_text():
                        await trio.sleep(0.2)
                print(f"\nopenclaw {release}: the transcript started a run (gateway log); no chat event for a run "
                      "that fails before it starts, so the subscription is unproven on this release")

            await trio.sleep(34)  # a heartbeat's worth of the agent's own sends: 3 s, then the next 30 s tick
            assert agent.status.current.refused_events == (), agent.status.current.refused_events
            await running.stop()


async def test_host_stats_reach_the_gateways_view_of_the_node(real_gateway: RealGateway, operator: Operator,
                                                              tmp_path):
    release = real_gateway.release
    agent = build_agent(real_gateway, real_gateway.token, tmp_path, heartbeat_interval=3.0)
    with trio.fail_after(120):
        async with trio.open_nursery() as nursery:
            running = await start_agent(nursery, agent)
            await pair_on_release(operator, running, release)
            if not release.handles_host_stats:
                await trio.sleep(4)
                assert all(r.event != "node.host.stats" for r in agent.status.current.refused_events)
                await running.stop()
                return

            async def described() -> bool:
                node = await operator.call("node.describe", {"nodeId": running.device_id})
                return isinstance(node, dict) and isinstance(node.get("hostStats"), dict)

            deadline = trio.current_time() + 30
            while not await described():
                assert trio.current_time() < deadline, "node.describe never showed host stats"
                await trio.sleep(0.5)
            node = await operator.call("node.describe", {"nodeId": running.device_id})
            assert node["hostStats"]["cpuCount"] == host_stats()["cpuCount"]
            await running.stop()

