"""The documented (JSON-RPC) dialect end to end: the real agent and transport over real loopback
sockets against the gateway double. Real time (sockets), every test bounded by ``fail_after``;
the reconnect policy is shrunk so a full pairing takes well under a second."""

from __future__ import annotations

import logging
import re

import trio

from node_agent.agent.node import EXIT_FATAL
from node_agent.agent.status import LinkState
from node_agent.protocol import TalkMode, Tick, UnknownEvent, VoiceWakeChanged
from node_agent.protocol import documented_models as dm
from node_agent.secrets import MemoryStore, device_token_key
from tests.support.agents import SHARED, Messages, Recorder
from tests.support.agents import make_documented_agent as make_agent
from tests.support.agents import run_in as run
from tests.support.documented_gateway import DOCUMENTED_EXAMPLES, open_documented_gateway


async def test_full_pairing_by_code_then_reconnect_with_token_only(tmp_path):
    store, messages = MemoryStore(), Messages()
    with trio.fail_after(20):
        async with open_documented_gateway(shared_token=SHARED) as gw, trio.open_nursery() as nursery:
            agent = make_agent(gw.url, tmp_path, store=store, messages=messages)
            await run(nursery, agent)
            code = await gw.wait_for_code()
            await agent.status.wait_for(lambda s: s.pairing is not None)
            assert agent.status.current.pairing.code == code      # `node-agent status` shows it
            await messages.wait_for(lambda m: m.startswith(f"Pairing code: {code}"))  # the terminal shows it
            assert await gw.enter_code(code) is True
            first = await gw.wait_ready()
            await agent.status.wait_for(lambda s: s.state is LinkState.CONNECTED)
            token = await store.get(device_token_key(gw.url))
            assert token is not None and token.reveal() in gw.tokens
            agent.request_stop()

            again = make_agent(gw.url, tmp_path, store=store, shared=None)
            await run(nursery, again)
            before = len(gw.received)
            await next_ready(gw, first)
            connect = next(f for f in gw.received[before:] if f.method == "connect")
            assert connect.params["auth"] == {"deviceToken": token.reveal()}
            assert gw.pending_codes == []
            nursery.cancel_scope.cancel()


async def test_a_code_on_a_screen_is_one_log_line_and_a_daemon_logs_the_whole_of_it(tmp_path, caplog):
    caplog.set_level(logging.DEBUG, logger="node_agent")

    async def announce(messages: Messages | None) -> tuple[list[tuple[int, str]], str]:
        caplog.clear()
        async with open_documented_gateway(shared_token=SHARED, code_factory=lambda: "977009") as gw, \
                trio.open_nursery() as nursery:
            agent = make_agent(gw.url, tmp_path / str(messages is None), messages=messages)
            await run(nursery, agent)
            await agent.status.wait_for(lambda s: s.pairing is not None and s.pairing.code == "977009")
            nursery.cancel_scope.cancel()
        said = [(r.levelno, r.getMessage()) for r in caplog.records
                if r.name == "node_agent.agent" and ("977009" in r.getMessage() or "Enter this code" in r.getMessage())]
        return said, agent.identity.fingerprint

    with trio.fail_after(20):
        shown = Messages()
        said, fingerprint = await announce(shown)  # `pair`: the screen shows it, the log keeps one line
        assert len(said) == 1 and said[0][0] == logging.INFO
        assert re.fullmatch(r"pairing code 977009, valid until \d\d:\d\d:\d\d: enter it on the gateway to "
                            rf"approve kitchen \(device {fingerprint}\)", said[0][1]), said
        assert shown.texts == [f"Pairing code: 977009\nEnter this code on the gateway to approve kitchen "
                         f"(device {fingerprint})."]
        said, fingerprint = await announce(None)  # `run`: the log is all a person has
        assert said == [(logging.WARNING, "Pairing code: 977009"),
                        (logging.WARNING, f"Enter this code on the gateway to approve kitchen (device {fingerprint}).")]


async def test_wrong_code_keeps_the_request_and_the_right_one_pairs(tmp_path):
    with trio.fail_after(20):
        async with open_documented_gateway(shared_token=SHARED) as gw, trio.open_nursery() as nursery:
            agent = make_agent(gw.url, tmp_path)
            await run(nursery, agent)
            code = await gw.wait_for_code()
            wrong = "000000" if code != "000000" else "111111"
            assert await gw.enter_code(wrong) is False
            assert gw.pending_codes == [code]
            assert await gw.enter_code(code) is True
            await gw.wait_ready()
            nursery.cancel_scope.cancel()


async def test_expired_code_is_replaced_and_the_new_one_is_shown(tmp_path):
    messages = Messages()
    with trio.fail_after(20):
        async with open_documented_gateway(shared_token=SHARED, code_lifetime_s=0.5) as gw, \
                trio.open_nursery() as nursery:
            agent = make_agent(gw.url, tmp_path, messages=messages)
            await run(nursery, agent)
            first = await gw.wait_for_code()
            second = await gw.wait_for_new_code(first)
            assert await gw.enter_code(first) is False  # expired
            await messages.wait_for(lambda m: m.startswith(f"Pairing code: {second}"))
            assert await gw.enter_code(second) is True
            await gw.wait_ready()
            nursery.cancel_scope.cancel()


async def test_rejection_stops_with_a_clear_message_and_no_retry_loop(tmp_path):
    messages = Messages()
    with trio.fail_after(20):
        async with open_documented_gateway(shared_token=SHARED) as gw:
            agent = make_agent(gw.url, tmp_path, messages=messages)
            async with trio.open_nursery() as nursery:
                result = await run(nursery, agent)
                await gw.wait_for_code()
                assert await gw.reject() is True
            assert result == [EXIT_FATAL]
            assert "reject" in messages[-1].lower()
            assert len([f for f in gw.received if f.method == "connect"]) == 1


async def test_unauthorized_shared_token_is_fatal_with_a_fix(tmp_path):
    messages = Messages()
    with trio.fail_after(20):
        async with open_documented_gateway(shared_token=SHARED) as gw:
            agent = make_agent(gw.url, tmp_path, shared="not-the-token-at-all", messages=messages)
            assert await agent.run() == EXIT_FATAL
            assert "to fix" in messages[-1]


async def test_rate_limited_backs_off_then_pairs(tmp_path):
    with trio.fail_after(20):
        async with open_documented_gateway(shared_token=SHARED, rate_limited=True) as gw, \
                trio.open_nursery() as nursery:
            agent = make_agent(gw.url, tmp_path)
            await run(nursery, agent)
            await trio.sleep(0.7)
            attempts = len([f for f in gw.received if f.method == "connect"])
            assert 2 <= attempts <= 4  # 0.2 s, 0.4 s, 0.4 s...: backing off, not hammering
            assert agent.status.current.state.value == "waiting"
            gw.rate_limited = False
            code = await gw.wait_for_code()
            await gw.enter_code(code)
            await gw.wait_ready()
            nursery.cancel_scope.cancel()


async def test_shutdown_and_dropped_socket_reconnect_with_the_token(tmp_path):
    store = MemoryStore()
    with trio.fail_after(20):
        async with open_documented_gateway(shared_token=SHARED, linger_s=0.1) as gw, trio.open_nursery() as nursery:
            agent = make_agent(gw.url, tmp_path, store=store)
            await run(nursery, agent)
            await gw.enter_code(await gw.wait_for_code())
            first = await gw.wait_ready()
            await gw.shutdown("Gateway restart requested")
            second = await next_ready(gw, first)
            await gw.drop()
            await next_ready(gw, second)
            token = (await store.get(device_token_key(gw.url))).reveal()
            connects = [f for f in gw.received if f.method == "connect"]
            assert connects[-1].params["auth"] == {"deviceToken": token}
            nursery.cancel_scope.cancel()


async def test_auto_picks_jsonrpc_against_the_documented_double(tmp_path):
    with trio.fail_after(20):
        async with open_documented_gateway(shared_token=SHARED, auto_approve=True) as gw, \
                trio.open_nursery() as nursery:
            agent = make_agent(gw.url, tmp_path, protocol="auto")
            await run(nursery, agent)
            await gw.wait_ready()
            await agent.status.wait_for(lambda s: s.state is LinkState.CONNECTED)
            assert agent.status.current.dialect == "jsonrpc"
            nursery.cancel_scope.cancel()


async def next_ready(gw, previous):
    return await gw.wait_ready_other(previous)


EXPECTED_TYPES = {
    "agent": dm.Agent, "chat": dm.Chat, "presence": dm.Presence, "health": dm.Health, "tick": Tick,
    "heartbeat": dm.Heartbeat, "talk.mode": TalkMode, "cron": dm.Cron, "node.pair.requested": dm.NodePairRequested,
    "device.pair.requested": dm.DevicePairRequested, "device.pair.resolved": dm.DevicePairResolved,
    "voicewake.changed": VoiceWakeChanged, "exec.approval.requested": dm.ExecApprovalRequested,
    "exec.approval.resolved": dm.ExecApprovalResolved, "update.available": dm.UpdateAvailable,
}


async def test_each_documented_event_reaches_its_handler_typed(tmp_path):
    recorder = Recorder()
    with trio.fail_after(20):
        async with open_documented_gateway(shared_token=SHARED, auto_approve=True) as gw, \
                trio.open_nursery() as nursery:
            agent = make_agent(gw.url, tmp_path, recorder=recorder)
            await run(nursery, agent)
            conn = await gw.wait_ready()
            await recorder.ready.wait()
            await gw.emit_examples(conn=conn)
            await gw.emit("brand.new.event", {"x": 1}, conn=conn)
            await recorder.wait_event("brand.new.event")
            nursery.cancel_scope.cancel()
    seen = {e.name: e.body for e in recorder.events}
    for name, kind in EXPECTED_TYPES.items():
        if name in DOCUMENTED_EXAMPLES and name != "connect.challenge":
            assert isinstance(seen.get(name), kind), (name, seen.get(name))
    assert isinstance(seen["brand.new.event"], UnknownEvent)
    presence = seen["presence"]
    assert presence.nodes[0].name == "iPhone" and presence.version == 42


async def test_client_heartbeat_is_acknowledged_and_version_gaps_are_logged(tmp_path, caplog):
    caplog.set_level("INFO")
    recorder = Recorder()  # rides after the liveness extras: when it has an event, they have it too
    with trio.fail_after(20):
        async with open_documented_gateway(shared_token=SHARED, auto_approve=True) as gw, \
                trio.open_nursery() as nursery:
            agent = make_agent(gw.url, tmp_path, recorder=recorder)
            await run(nursery, agent)
            conn = await gw.wait_ready()
            await gw.wait_for_method("heartbeat")
            await recorder.wait_event("heartbeat")
            assert agent.liveness.heartbeats_acked >= 1
            await gw.emit("presence", {"nodes": [], "version": 3}, conn=conn)
            await gw.emit("presence", {"nodes": [], "version": 7}, conn=conn)
            await recorder.wait_event("presence", 2)
            nursery.cancel_scope.cancel()
    assert agent.liveness.gaps == [("presence", 3, 7)]
    assert "3 update(s) missed" in caplog.text


async def test_subscribe_uses_the_documented_method(tmp_path):
    recorder = Recorder()
    with trio.fail_after(20):
        async with open_documented_gateway(shared_token=SHARED, auto_approve=True) as gw, \
                trio.open_nursery() as nursery:
            holder: dict = {}

            class Grab(Recorder):
                async def on_ready(self, conn, hello):
                    holder["conn"] = conn
                    self.ready.set()

            grab = Grab()
            agent = make_agent(gw.url, tmp_path, recorder=grab)
            await run(nursery, agent)
            await grab.ready.wait()
            await holder["conn"].subscribe("user:alice")
            frame = await gw.wait_for_method("node.subscribe")
            assert frame.params == {"sessionKey": "user:alice"}
            nursery.cancel_scope.cancel()
    assert recorder.events == []


async def test_a_gateway_that_assigns_its_own_node_ids_pairs_once(tmp_path):
    # The pages' gateway names the node itself ("nodeId": "node-123") and shows the token only in
    # node.pair.resolved. That resolution, on the socket being paired, for the code on show, is
    # ours: the token is kept, the connect response's nodeId confirms it, and every later connect
    # uses it alone.
    store = MemoryStore()
    with trio.fail_after(20):
        async with open_documented_gateway(shared_token=SHARED, assign_node_ids=True,
                                           token_in_connect_response=False) as gw, trio.open_nursery() as nursery:
            agent = make_agent(gw.url, tmp_path, store=store)
            await run(nursery, agent)
            assert await gw.enter_code(await gw.wait_for_code()) is True
            first = await gw.wait_ready()
            assert first.node_id == "node-1"
            await agent.status.wait_for(lambda s: s.state is LinkState.CONNECTED)
            token = await store.get(device_token_key(gw.url))
            assert token is not None and gw.tokens.get(token.reveal()) == "node-1"
            assert agent.conn.session.hello.node_id == "node-1"  # invoke results name it

            before = len(gw.received)
            await gw.close(first, 1012, "service restart")
            await next_ready(gw, first)
            connect = next(f for f in gw.received[before:] if f.method == "connect")
            assert connect.params["auth"] == {"deviceToken": token.reveal()}
            assert gw.pending_codes == [] and len(gw.tokens) == 1
            nursery.cancel_scope.cancel()


async def test_another_nodes_resolution_broadcast_to_a_pending_node_is_not_taken(tmp_path):
    # Broadcast pairing events reach every socket. A resolution for another node, arriving while
    # this one shows its own code, must not end up as this node's token: the connect response
    # (there is none for us) would not confirm it.
    store_a, store_b = MemoryStore(), MemoryStore()
    with trio.fail_after(20):
        async with open_documented_gateway(shared_token=SHARED, assign_node_ids=True, token_in_connect_response=False,
                                           broadcast_pairing_events=True) as gw, trio.open_nursery() as nursery:
            a = make_agent(gw.url, tmp_path / "a", store=store_a)
            await run(nursery, a)
            code_a = await gw.wait_for_code()
            b = make_agent(gw.url, tmp_path / "b", store=store_b)
            await run(nursery, b)
            code_b = await gw.wait_for_new_code(code_a)
            assert await gw.enter_code(code_a) is True
            await a.status.wait_for(lambda s: s.state is LinkState.CONNECTED)
            await trio.sleep(0.5)
            assert await store_b.get(device_token_key(gw.url)) is None
            assert code_b in gw.pending_codes and b.status.current.state is LinkState.PAIRING
            assert await gw.enter_code(code_b) is True
            await b.status.wait_for(lambda s: s.state is LinkState.CONNECTED)
            token_a, token_b = await store_a.get(device_token_key(gw.url)), await store_b.get(device_token_key(gw.url))
            assert {gw.tokens[token_a.reveal()], gw.tokens[token_b.reveal()]} == {"node-1", "node-2"}
            nursery.cancel_scope.cancel()
