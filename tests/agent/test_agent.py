"""The Trio layer against an in-memory gateway, on virtual time (``autojump_clock``).

Every timing assertion is an exact virtual time: the backoff schedule, the tick watchdog at
2 x ``tickIntervalMs``, the announced restart delay, the invoke deadline.
"""

from __future__ import annotations

import json

import pytest
import trio

from node_agent.agent.commands import builtin_registry
from node_agent.agent.node import EXIT_FATAL, EXIT_OK, SURFACE_PENDING_POLL_S, SURFACE_RECHECK_S
from node_agent.agent.status import Surface
from node_agent.errors import InvokeError
from node_agent.secret import Secret
from node_agent.secrets import MemoryStore, device_token_key
from tests.support.agents import URL, connected, make_agent, results, run_in
from tests.support.fake_openclaw import FakeGateway


async def test_backoff_schedule_is_exact(autojump_clock, tmp_path):
    gw = FakeGateway()
    gw.unreachable = True
    agent = make_agent(gw, tmp_path)
    async with trio.open_nursery() as nursery:
        await run_in(nursery, agent)
        while len(gw.attempt_times) < 8:
            await trio.sleep(1)
        nursery.cancel_scope.cancel()
    assert gw.attempt_times[:8] == [0, 1, 3, 7, 15, 31, 61, 91]


async def test_pairing_then_token_persisted_and_presence_sent(autojump_clock, tmp_path):
    gw = FakeGateway()
    store = MemoryStore()
    agent = make_agent(gw, tmp_path, store=store)
    async with trio.open_nursery() as nursery:
        await run_in(nursery, agent)
        await trio.sleep(4)  # attempts at 0 and 3 s are refused: pairing required
        assert gw.attempt_times == [0, 3]
        assert agent.status.current.state.value == "pairing"
        assert agent.status.current.pairing.request_id == f"req-{agent.identity.device_id[:8]}"
        token = gw.approve(agent.identity.device_id)
        conn = await gw.wait_connection(3)
        await conn.wait_request("node.event")
        assert trio.current_time() == 6  # the next pairing retry, 3 s later
        assert await store.get(device_token_key(URL)) == Secret(token)
        assert results(conn, "node.event")[0]["trigger"] == "connect"
        assert agent.status.current.state.value == "connected"
        nursery.cancel_scope.cancel()


async def test_restart_pairs_with_the_token_alone(autojump_clock, tmp_path):
    gw = FakeGateway()
    store = MemoryStore()
    first = make_agent(gw, tmp_path, store=store)
    token = gw.approve(first.identity.device_id)
    await store.set(device_token_key(URL), Secret(token))
    async with trio.open_nursery() as nursery:
        await run_in(nursery, first)
        conn = await gw.wait_connection(1)
        await conn.ready.wait()
        assert conn.connect_params["auth"] == {"deviceToken": token}
        nursery.cancel_scope.cancel()


async def test_tick_watchdog_closes_at_twice_the_interval(autojump_clock, tmp_path):
    gw = FakeGateway(tick_interval_ms=30_000)
    agent = make_agent(gw, tmp_path)
    gw.approve(agent.identity.device_id)
    async with trio.open_nursery() as nursery:
        await run_in(nursery, agent)
        conn = await gw.wait_connection(1)
        await conn.wait_request("node.event")  # last frame the agent hears: the presence answer, t=0
        await conn.ended.wait()
        assert trio.current_time() == 60.0
        assert conn.closed_code == 4000
        await gw.wait_connection(2)
        assert gw.attempt_times[1] == 60.5  # recovery: back quickly after losing a good link
        nursery.cancel_scope.cancel()


async def test_ticks_keep_the_connection_alive(autojump_clock, tmp_path):
    gw = FakeGateway(tick_interval_ms=30_000)
    async with connected(gw, tmp_path) as (agent, conn):
        for i in range(10):
            await trio.sleep(30)
            await conn.send_event("tick", {"ts": i}, seq=i + 1)
        assert len(gw.connections) == 1 and not conn.ended.is_set()


def _node_events(conn) -> list[tuple[float, str]]:
    return [(round(t - conn.request_times[0], 3), r["params"]["event"])
            for r, t in zip(conn.requests, conn.request_times) if r.get("method") == "node.event"]


async def test_presence_and_host_stats_ride_the_gateway_tick_at_least_a_heartbeat_apart(autojump_clock, tmp_path):
    # The gateway persists presence at most once a minute, measured from its answer; its ticks
    # come every 30 s and wake the node anyway. So a heartbeat goes out on the first tick at
    # least heartbeat_interval after the last answer: every third tick, never on a timer of its own.
    gw = FakeGateway()
    gw.ticks, gw.reply_delay_s = True, 0.01
    gw.hello_events = ["tick", "node.hostStats"]
    async with connected(gw, tmp_path, heartbeat=60.0) as (agent, conn):
        await trio.sleep(200)
        ready = conn.tick_times[0] - 30
        assert conn.request_times[0] == ready  # presence at connect
        assert [t - ready for t in conn.tick_times[:6]] == [30, 60, 90, 120, 150, 180]
        assert _node_events(conn) == [(0, "node.presence.alive"), (0.01, "node.host.stats"),
                                      (90, "node.presence.alive"), (90.01, "node.host.stats"),
                                      (180, "node.presence.alive"), (180.01, "node.host.stats")]
        assert [p["trigger"] for p in results(conn, "node.event") if "trigger" in p] == \
            ["connect", "background", "background"]


async def test_a_heartbeat_whose_tick_never_comes_goes_out_a_tick_interval_late(autojump_clock, tmp_path):
    gw = FakeGateway()  # its ticks are lost (the gateway drops them for a slow socket); other frames flow
    async with connected(gw, tmp_path, heartbeat=60.0) as (agent, conn):
        for _ in range(10):
            await trio.sleep(20)
            await conn.send_event("health", {"ok": True})
        assert [t for t, _ in _node_events(conn)] == [0, 91, 182]  # 60 s + the 30 s tick + 1 s grace


async def test_shutdown_event_reconnects_after_the_announced_delay(autojump_clock, tmp_path):
    gw = FakeGateway()
    async with connected(gw, tmp_path) as (agent, conn):
        await trio.sleep(10)
        await conn.send_event("shutdown", {"reason": "gateway stopping", "restartExpectedMs": 5000}, seq=3)
        await conn.close(1012, "service restart")
        second = await gw.wait_connection(2)
        assert gw.attempt_times[1] == 15.0
        await second.ready.wait()


async def test_invoke_cancel_stops_the_handler_and_answers_once(autojump_clock, tmp_path):
    gw = FakeGateway()
    registry = builtin_registry()
    handler_cancelled = trio.Event()

    async def slow(params, ctx):
        try:
            await trio.sleep_forever()
        finally:
            handler_cancelled.set()

    registry.register("probe.slow", slow, cap="probe")
    async with connected(gw, tmp_path, registry=registry) as (agent, conn):
        assert "probe.slow" in conn.connect_params["commands"]
        await conn.send_event("node.invoke.request", {"id": "inv-1", "nodeId": agent.identity.device_id,
                                                      "command": "probe.slow", "paramsJSON": "{}", "timeoutMs": 30000})
        await trio.sleep(2)
        await conn.send_event("node.invoke.cancel", {"invokeId": "inv-1", "nodeId": agent.identity.device_id})
        (result,) = await conn.wait_request("node.invoke.result")
        assert trio.current_time() == 2.0 and handler_cancelled.is_set()
        assert result["params"]["ok"] is False and result["params"]["error"]["code"] == "CANCELLED"
        await trio.sleep(60)
        assert len(await conn.wait_request("node.invoke.result")) == 1


async def test_invoke_times_out_before_the_gateway_does(autojump_clock, tmp_path):
    gw = FakeGateway()
    registry = builtin_registry()
    registry.register("probe.slow", lambda params, ctx: trio.sleep_forever(), cap="probe")
    async with connected(gw, tmp_path, registry=registry) as (agent, conn):
        await conn.send_event("node.invoke.request", {"id": "inv-2", "command": "probe.slow", "timeoutMs": 3000})
        (result,) = await conn.wait_request("node.invoke.result")
        assert trio.current_time() == 2.75  # timeoutMs minus the 250 ms margin
        assert result["params"]["error"]["code"] == "TIMEOUT"


async def test_invoke_ok_unknown_and_bad_params(autojump_clock, tmp_path):
    gw = FakeGateway()
    async with connected(gw, tmp_path) as (agent, conn):
        await conn.send_event("node.invoke.request", {"id": "a", "command": "device.info", "paramsJSON": "{}",
                                                      "timeoutMs": 5000})
        await conn.send_event("node.invoke.request", {"id": "b", "command": "camera.snap", "timeoutMs": 5000})
        await conn.send_event("node.invoke.request", {"id": "c", "command": "system.notify",
                                                      "paramsJSON": "[1]", "timeoutMs": 5000})
        answers = {r["params"]["id"]: r["params"] for r in await conn.wait_request("node.invoke.result", 3)}
        info = json.loads(answers["a"]["payloadJSON"])
        assert answers["a"]["ok"] and info["deviceId"] == agent.identity.device_id
        assert answers["a"]["nodeId"] == agent.identity.device_id
        assert answers["b"]["error"]["code"] == "UNAVAILABLE" and "camera.snap" in answers["b"]["error"]["message"]
        assert answers["c"]["error"]["code"] == "INVALID_REQUEST"


async def test_revoked_token_is_forgotten_and_pairing_restarts(autojump_clock, tmp_path):
    gw = FakeGateway()
    store = MemoryStore()
    agent = make_agent(gw, tmp_path, store=store)
    await store.set(device_token_key(URL), Secret("revoked-token-000000"))
    async with trio.open_nursery() as nursery:
        await run_in(nursery, agent)
        first = await gw.wait_connection(1)
        await first.ended.wait()
        assert first.connect_params["auth"] == {"deviceToken": "revoked-token-000000"}
        second = await gw.wait_connection(2)
        assert gw.attempt_times[1] == 0.25
        await second.ended.wait()
        assert second.connect_params["auth"] == {"token": gw.shared_token}  # back to the shared token
        assert await store.get(device_token_key(URL)) is None
        assert agent.status.current.state.value == "pairing"
        nursery.cancel_scope.cancel()


async def test_protocol_mismatch_is_fatal(autojump_clock, tmp_path):
    gw = FakeGateway()
    gw.refuse_next.append(({"code": "INVALID_REQUEST", "message": "protocol mismatch",
                            "details": {"code": "PROTOCOL_MISMATCH", "expectedProtocol": 5}}, 1002))
    messages: list[str] = []
    agent = make_agent(gw, tmp_path, notices=lambda notice: messages.append(notice.text))
    gw.approve(agent.identity.device_id)
    assert await agent.run() == EXIT_FATAL
    assert agent.status.current.state.value == "error" and "protocol 5" in messages[-1]
    assert len(gw.attempt_times) == 1


async def test_gateway_starting_is_retried_at_its_hint(autojump_clock, tmp_path):
    gw = FakeGateway()
    gw.refuse_next.append(({"code": "UNAVAILABLE", "message": "gateway starting; retry shortly", "retryable": True,
                            "retryAfterMs": 500, "details": {"reason": "startup-sidecars"}}, 1013))
    agent = make_agent(gw, tmp_path)
    gw.approve(agent.identity.device_id)
    async with trio.open_nursery() as nursery:
        await run_in(nursery, agent)
        (await gw.wait_connection(2))
        await gw.connections[1].ready.wait()
        assert gw.attempt_times == [0, 0.5]
        nursery.cancel_scope.cancel()


async def test_v3_rejection_falls_back_to_v2(autojump_clock, tmp_path):
    gw = FakeGateway()
    gw.accept_v3 = False
    agent = make_agent(gw, tmp_path)
    gw.approve(agent.identity.device_id)
    async with trio.open_nursery() as nursery:
        await run_in(nursery, agent)
        await (await gw.wait_connection(2)).ready.wait()
        nursery.cancel_scope.cancel()


async def test_stop_closes_the_socket_cleanly(autojump_clock, tmp_path):
    gw = FakeGateway()
    agent = make_agent(gw, tmp_path)
    gw.approve(agent.identity.device_id)
    async with trio.open_nursery() as nursery:
        result = await run_in(nursery, agent)
        conn = await gw.wait_connection(1)
        await conn.ready.wait()
        stopped_at = trio.current_time()
        agent.request_stop()
        await conn.ended.wait()
    assert result == [EXIT_OK] and conn.closed_code == 1000
    assert trio.current_time() == stopped_at  # the close handshake completes; no grace period spent
    assert agent.status.current.state.value == "stopped"


async def test_silent_gateway_times_out_the_handshake(autojump_clock, tmp_path):
    gw = FakeGateway()
    gw.silent = True
    agent = make_agent(gw, tmp_path)
    async with trio.open_nursery() as nursery:
        await run_in(nursery, agent)
        await gw.wait_connection(2)
        assert gw.attempt_times == [0, 16.0]  # 15 s challenge timeout, then 1 s backoff
        nursery.cancel_scope.cancel()


async def test_pair_mode_exits_once_the_surface_is_approved(autojump_clock, tmp_path):
    gw = FakeGateway()
    agent = make_agent(gw, tmp_path, exit_when_paired=True)
    gw.approve(agent.identity.device_id)
    assert await agent.run() == EXIT_OK
    assert agent.status.current.surface is Surface.APPROVED


async def test_a_ticking_gateway_is_never_pinged_and_a_silent_one_exactly_one_interval_after_it_spoke(
        autojump_clock, tmp_path, monkeypatch):
    from node_agent.transport import WebSocketTransport

    pings: list[float] = []
    real_ping = WebSocketTransport.ping

    async def ping(self):
        pings.append(trio.current_time())
        await real_ping(self)

    monkeypatch.setattr(WebSocketTransport, "ping", ping)
    gw = FakeGateway()
    async with connected(gw, tmp_path) as (agent, conn):  # ping_interval 20 s
        for _ in range(8):  # the gateway speaks every 15 s: its frames prove the link alive
            await trio.sleep(15)
            await conn.send_event("tick", {"ts": 1})
        assert pings == []
        spoke = trio.current_time()
        await trio.sleep(50)  # silence: a ping 20 s after the last frame, the next 20 s after its pong
        assert pings == [spoke + 20.0, spoke + 40.0]


async def test_a_ping_without_a_pong_ends_the_link_at_exactly_interval_plus_timeout(
        autojump_clock, tmp_path, monkeypatch):
    from node_agent.transport import WebSocketTransport

    async def black_hole(self):
        await trio.sleep_forever()  # a half-open link: the ping goes out, nothing comes back

    monkeypatch.setattr(WebSocketTransport, "ping", black_hole)
    gw = FakeGateway()
    async with connected(gw, tmp_path) as (agent, conn):  # ping_interval 20 s, ping_timeout 10 s
        await conn.send_event("tick", {"ts": 1})
        spoke = trio.current_time()
        await conn.ended.wait()
        assert trio.current_time() == spoke + 30.0
        assert conn.closed_code == 4000
        await gw.wait_connection(2)


async def test_device_approved_is_said_once_however_often_the_link_reconnects(autojump_clock, tmp_path):
    from node_agent.agent.link import NoticeKind

    gw = FakeGateway()
    notices = []
    agent = make_agent(gw, tmp_path, notices=notices.append)
    async with trio.open_nursery() as nursery:
        await run_in(nursery, agent)
        await trio.sleep(4)  # refused at 0 and 3 s: one request, announced once
        gw.approve(agent.identity.device_id)
        for count in (3, 4, 5):  # approved; then the gateway drops the socket twice
            conn = await gw.wait_connection(count)
            await conn.wait_request("node.event")
            if count < 5:
                await conn.close(1012, "service restart")
        nursery.cancel_scope.cancel()
    kinds = [n.kind for n in notices]
    assert kinds == [NoticeKind.PAIRING_PENDING, NoticeKind.DEVICE_APPROVED], [n.text for n in notices]


async def test_a_gateway_that_issues_no_device_token_is_said_once_and_the_gateway_token_kept(
        autojump_clock, tmp_path, caplog):
    gw = FakeGateway()
    gw.issue_tokens = False
    store = MemoryStore()
    agent = make_agent(gw, tmp_path, store=store)
    gw.approve(agent.identity.device_id)
    async with trio.open_nursery() as nursery:
        await run_in(nursery, agent)
        conn = await gw.wait_connection(1)
        await conn.wait_request("node.event")
        await conn.close(1012, "service restart")
        again = await gw.wait_connection(2)
        await again.wait_request("node.event")
        assert again.connect_params["auth"]["token"]  # still the gateway token
        nursery.cancel_scope.cancel()
    assert await store.get(device_token_key(URL)) is None
    said = [r.getMessage() for r in caplog.records if "issued no device token" in r.getMessage()]
    assert said == ["the gateway issued no device token; connecting with the gateway token, which must stay "
                    "configured"]


async def test_a_refused_invoke_answer_for_a_stale_pairing_reconnects_at_once(autojump_clock, tmp_path, caplog):
    # openclaw 2026.9.6 right after a restart: an invoke dispatched to the node's fresh
    # connection, whose answer the gateway refuses because the connection's pairing went stale.
    # The gateway routes nothing more to it and would close it only on the next heartbeat.
    gw = FakeGateway()
    gw.request_errors["node.invoke.result"] = {
        "code": "UNAVAILABLE", "message": "node pairing changed before request dispatch",
        "details": {"code": "PAIRING_CHANGED"}}
    async with connected(gw, tmp_path) as (agent, conn):
        await conn.send_event("node.invoke.request", {"id": "a", "command": "device.info", "paramsJSON": "{}",
                                                      "timeoutMs": 5000})
        await conn.wait_request("node.invoke.result")
        answered_at = trio.current_time()
        second = await gw.wait_connection(2)
        assert conn.closed_code == 1000
        assert gw.attempt_times[-1] - answered_at == pytest.approx(0.5)  # the first fast retry
        await second.ready.wait()
        assert "this connection's pairing is no longer current" in caplog.text
        await second.send_event("node.invoke.request", {"id": "b", "command": "device.info", "paramsJSON": "{}",
                                                        "timeoutMs": 5000})
        (result,) = await second.wait_request("node.invoke.result")
        assert result["params"]["ok"] is True
        await trio.sleep(30)  # (less than the fake's silence deadline: it sends no ticks)
        assert len(gw.connections) == 2  # an accepted answer: no further reconnect


async def test_an_event_deferred_to_after_the_result_follows_it_and_its_answer_is_still_checked(
        autojump_clock, tmp_path):
    # after_result: the event is written right after the handler's ok result; a handled:false
    # answer is still reported (status) as an awaited event's is. After a failed result, nothing.
    gw = FakeGateway()
    gw.node_event_replies["exec.finished"] = {"ok": True, "handled": False, "reason": "unmatched_exec_event"}
    registry = builtin_registry()
    replies = []

    async def report(params, ctx):
        ctx.after_result("exec.finished", {"runId": "r1"}, on_reply=replies.append)
        if params.get("fail"):
            raise InvokeError("INVALID_REQUEST", "no")
        return {"done": True}

    registry.register("probe.report", report, cap="probe")
    async with connected(gw, tmp_path, registry=registry) as (agent, conn):
        await conn.send_event("node.invoke.request", {"id": "p", "command": "probe.report", "paramsJSON": "{}",
                                                      "timeoutMs": 5000})
        while not any((r.get("params") or {}).get("event") == "exec.finished" for r in conn.requests):
            await trio.sleep(0.01)
        sent = [(r["method"], (r.get("params") or {}).get("event")) for r in conn.requests
                if r.get("method") in ("node.event", "node.invoke.result")]
        assert sent[-2:] == [("node.invoke.result", None), ("node.event", "exec.finished")]
        while not replies:
            await trio.sleep(0.01)
        assert replies[0].handled is False and replies[0].reason == "unmatched_exec_event"
        assert any(r.event == "exec.finished" and r.reason == "unmatched_exec_event"
                   for r in agent.status.current.refused_events)

        before = len(conn.requests)
        await conn.send_event("node.invoke.request", {"id": "q", "command": "probe.report",
                                                      "paramsJSON": '{"fail": true}', "timeoutMs": 5000})
        await conn.wait_request("node.invoke.result", 2)
        await trio.sleep(1)
        assert [r["method"] for r in conn.requests[before:]] == ["node.invoke.result"]
        assert replies[1:] == [None]


PAIRING_CHANGED = {"code": "UNAVAILABLE", "message": "node pairing changed before request dispatch",
                   "details": {"code": "PAIRING_CHANGED"}}


async def test_a_node_approved_before_asks_again_before_it_calls_its_commands_pending(autojump_clock, tmp_path,
                                                                                      caplog):
    # openclaw 2026.9.6 after a restart: the node's first presence on its new connection can be
    # refused PAIRING_CHANGED while the gateway's pairing worker comes up. A node whose commands
    # were approved asks once more a second later; only a second refusal means "pending".
    gw = FakeGateway()
    gw.server_version = "2026.9.6"
    async with connected(gw, tmp_path) as (agent, first):
        await first.wait_request("node.event")
        await trio.sleep(0.1)
        assert agent.status.current.surface is Surface.APPROVED
        gw.node_event_errors["node.presence.alive"] = PAIRING_CHANGED
        await first.close(1012, "service restart")
        second = await gw.wait_connection(2)
        presences = await second.wait_request("node.event", 2)
        refused, again = (t for r, t in zip(second.requests, second.request_times) if r.get("method") == "node.event")
        assert again - refused == pytest.approx(SURFACE_RECHECK_S)
        assert all(p["params"]["event"] == "node.presence.alive" for p in presences)
        await trio.sleep(0.1)
        assert agent.status.current.surface is Surface.APPROVED
        assert "has not approved this node's commands" not in caplog.text


async def test_a_node_never_approved_is_told_at_once_that_its_commands_are_pending(autojump_clock, tmp_path,
                                                                                  caplog):
    gw = FakeGateway()
    gw.server_version = "2026.9.6"
    gw.node_event_errors["node.presence.alive"] = PAIRING_CHANGED
    async with connected(gw, tmp_path) as (agent, conn):
        await conn.wait_request("node.event")
        await trio.sleep(0.1)
        assert agent.status.current.surface is Surface.PENDING
        assert "has not approved this node's commands yet" in caplog.text
        await trio.sleep(SURFACE_PENDING_POLL_S - 0.5)
        # No quick re-ask (that is for a node approved before); the pending poll comes later.
        assert len([r for r in conn.requests if r.get("method") == "node.event"]) == 1
