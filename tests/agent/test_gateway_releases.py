"""The node against older OpenClaw releases, each scripted from what it was seen to do.

The in-memory gateway says the release's version in hello-ok and answers as that release does
(docs/openclaw-releases.md; the same flows run against the real releases in
tests/interop/test_release_behaviour.py and the interop matrix):

* up to 2026.7.35 a loopback device is paired silently (``auto_approve``: hello-ok with a new
  device token on the first connect);
* up to 2026.3.28 there is no second stage; 2026.3.31 applies an approved surface only at
  connect; 2026.4.1-7.35 apply it live but never tell the node; none of them answers
  PAIRING_CHANGED, every node.event gets ``{ok: true}`` (presence ``handled: true`` from 4.29);
* up to 2026.4.29 a protocol refusal carries only ``details.expectedProtocol``;
* up to 2026.8.2 hello-ok has no ``auth.method``.
"""

from __future__ import annotations

import logging

import pytest
import trio

from node_agent.agent.node import EXIT_FATAL, EXIT_OK, SURFACE_PENDING_POLL_S
from node_agent.agent.status import Surface
from node_agent.protocol.releases import parse_release
from node_agent.secret import Secret
from node_agent.secrets import device_token_key
from tests.support.agents import URL, Messages, make_agent, run_in
from tests.support.fake_openclaw import FakeGateway

PRESENCE_HANDLED = {"ok": True, "event": "node.presence.alive", "handled": True, "reason": "persisted"}


def release(version: str, *, silent_pairing: bool = True) -> FakeGateway:
    gw = FakeGateway()
    gw.ticks = True  # every 30 s, as every release does: the node's heartbeat rides them
    gw.server_version = version
    gw.auto_approve = silent_pairing
    if parse_release(version) >= (2026, 4, 29):
        gw.node_event_replies["node.presence.alive"] = PRESENCE_HANDLED
    return gw


async def pair_against(version: str, tmp_path) -> tuple[Surface | None, list[str]]:
    """``node-agent pair`` against ``version`` (loopback: paired silently). Returns the surface
    status it ends with and what the person was told."""
    messages = Messages()
    agent = make_agent(release(version), tmp_path, exit_when_paired=True, notices=messages)
    assert await agent.run() == EXIT_OK
    return agent.status.current.surface, messages.texts


async def test_a_gateway_without_a_second_stage_gets_no_nodes_approve_hint(autojump_clock, tmp_path):
    surface, said = await pair_against("2026.3.22", tmp_path)
    assert surface is Surface.APPROVED
    assert not [t for t in said if "nodes approve" in t or "devices approve" in t], said


async def test_a_gateway_that_never_reports_the_surface_is_not_called_approved(autojump_clock, tmp_path):
    # 2026.7.35: the surface request exists and a person must approve it, but the node is never
    # told; presence is handled:true either way. "approved" would be a guess.
    surface, said = await pair_against("2026.7.35", tmp_path)
    assert surface is Surface.UNCONFIRMED
    hint = next(t for t in said if "openclaw nodes approve" in t)
    assert "2026.7.35" in hint and "gateway.nodes.allowCommands" in hint
    assert "devices approve" not in "".join(said)  # paired silently: never asked for


async def test_an_invoke_proves_the_surface_is_live(autojump_clock, tmp_path):
    gw = release("2026.7.35")
    agent = make_agent(gw, tmp_path)
    async with trio.open_nursery() as nursery:
        await run_in(nursery, agent)
        conn = await gw.wait_connection(1)
        await conn.wait_request("node.event")
        await trio.sleep(1)
        assert agent.status.current.surface is Surface.UNCONFIRMED
        await conn.send_event("node.invoke.request", {"id": "inv-1", "nodeId": agent.identity.device_id,
                                                      "command": "device.info", "paramsJSON": "{}"})
        await conn.wait_request("node.invoke.result")
        assert agent.status.current.surface is Surface.APPROVED
        nursery.cancel_scope.cancel()


async def test_on_2026_3_31_the_node_reconnects_once_to_pick_up_its_approved_commands(autojump_clock, tmp_path):
    # 2026.3.31 keeps a live session's commands as approved at connect: the connect that created
    # the node's request has none, and an approval never reaches it. One reconnect, a heartbeat
    # after the hint, picks the approval up; after that the node stays put.
    gw = release("2026.3.31")
    messages = Messages()
    agent = make_agent(gw, tmp_path, heartbeat=60.0, notices=messages)
    with trio.fail_after(900):
        await _reconnects_once(gw, agent, messages)


async def _reconnects_once(gw, agent, messages) -> None:
    async with trio.open_nursery() as nursery:
        await run_in(nursery, agent)
        first = await gw.wait_connection(1)
        await first.ready.wait()
        assert "auth" in first.connect_params and "token" in first.connect_params["auth"]  # the shared token
        hint = await messages.wait_for(lambda t: "openclaw nodes approve" in t)
        assert "reconnects" in hint
        second = await gw.wait_connection(2)
        await second.ready.wait()
        assert gw.attempt_times[1] == 60.5  # the first heartbeat, then the 0.5 s recovery delay
        assert first.closed_code == 1000
        assert list(second.connect_params["auth"]) == ["deviceToken"]
        await trio.sleep(600)
        assert len(gw.connections) == 2
        assert agent.status.current.surface is Surface.UNCONFIRMED
        nursery.cancel_scope.cancel()


async def test_a_known_device_on_2026_3_31_does_not_reconnect(autojump_clock, tmp_path):
    gw = release("2026.3.31", silent_pairing=False)
    agent = make_agent(gw, tmp_path, heartbeat=60.0)
    token = gw.approve(agent.identity.device_id)
    await agent.store.set(device_token_key(URL), Secret(token))
    async with trio.open_nursery() as nursery:
        await run_in(nursery, agent)
        await (await gw.wait_connection(1)).ready.wait()
        await trio.sleep(600)
        assert len(gw.connections) == 1
        nursery.cancel_scope.cancel()


async def test_a_protocol_refusal_with_only_expected_protocol_ends_in_the_upgrade_message(autojump_clock, tmp_path):
    # 2026.3.31 (and everything up to 4.29) refuses a protocol range it does not speak with
    # details {expectedProtocol} alone: no PROTOCOL_MISMATCH code. Retrying cannot help.
    gw = release("2026.3.31")
    gw.refuse_next.append(({"code": "INVALID_REQUEST", "message": "protocol mismatch",
                            "details": {"expectedProtocol": 3}}, 1002))
    messages = Messages()
    agent = make_agent(gw, tmp_path, notices=messages)
    with trio.move_on_after(300):
        code = await agent.run()
    assert code == EXIT_FATAL
    assert len(gw.attempt_times) == 1
    assert "protocol 3" in messages[-1] and "Upgrade" in messages[-1]


async def test_a_hello_ok_without_auth_method_names_the_credential_sent(autojump_clock, tmp_path, caplog):
    gw = release("2026.8.2")
    agent = make_agent(gw, tmp_path)
    with caplog.at_level(logging.INFO, logger="node_agent.agent"):
        async with trio.open_nursery() as nursery:
            await run_in(nursery, agent)
            await (await gw.wait_connection(1)).wait_request("node.event")
            nursery.cancel_scope.cancel()
    line = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("connected to"))
    assert "auth ?" not in line and "auth token (sent)" in line, line


async def test_on_a_release_whose_cli_cannot_approve_commands_the_person_is_sent_to_the_control_ui(
        autojump_clock, tmp_path):
    # 2026.4.29's `openclaw nodes approve` asks for operator.pairing only and the gateway answers
    # "missing scope: operator.write" (operator.admin with system.run): seen in the matrix.
    _surface, said = await pair_against("2026.4.29", tmp_path)
    hint = next(t for t in said if "openclaw nodes approve" in t)
    assert ("(openclaw 2026.4.29's CLI cannot: it answers \"missing scope\", asking for operator.pairing where the "
            "gateway\nalso wants operator.write, or operator.admin for system.run. Approve the node in the "
            "Control UI, Nodes.)") in hint
    _surface, said = await pair_against("2026.5.28", tmp_path / "later")
    assert "Control UI" not in "".join(said)


async def test_while_its_commands_are_pending_the_node_asks_every_few_seconds(autojump_clock, tmp_path):
    # 2026.8.2 refuses presence (PAIRING_CHANGED) until a person approves, and then tells only
    # operator.pairing sockets: the node learns of the approval when presence is taken again, so
    # `pair` must not wait a whole heartbeat for it.
    gw = release("2026.8.2")
    gw.node_event_errors["node.presence.alive"] = {
        "code": "UNAVAILABLE", "message": "node pairing changed before request dispatch",
        "details": {"code": "PAIRING_CHANGED"}}
    messages = Messages()
    agent = make_agent(gw, tmp_path, exit_when_paired=True, notices=messages)
    assert await agent.run() == EXIT_OK
    conn = gw.connections[0]
    presences = [t for r, t in zip(conn.requests, conn.request_times) if r.get("method") == "node.event"]
    assert len(presences) == 2 and presences[1] - presences[0] == pytest.approx(SURFACE_PENDING_POLL_S)
    assert agent.status.current.surface is Surface.APPROVED
    assert any("not approved this node's commands yet" in t for t in messages.texts)
    assert any("fully paired" in t for t in messages.texts)
