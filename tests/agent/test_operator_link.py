"""The operator link against the in-memory gateway, on virtual time (``autojump_clock``).

:class:`RoleGateway` adds to the in-memory OpenClaw gateway what the real one (2026.9.6) was seen
doing for the operator role of an already paired node device (see the module docstring of
``node_agent.agent.operator_link``): ``PAIRING_REQUIRED``/``role-upgrade`` until approved, then a
separate operator device token, the node token refused for that role.
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from node_agent.agent.backoff import ReconnectPolicy
from node_agent.agent.operator_link import SCOPES, OperatorLink
from node_agent.agent.status import LinkState, PairingStatus, StatusBoard
from node_agent.protocol import TalkMode
from node_agent.secret import Secret
from node_agent.secrets import MemoryStore, device_token_key
from tests.support.agents import URL, make_agent, run_in
from tests.support.fake_openclaw import FakeGateway, GatewayConn

OP_KEY = device_token_key(URL, role="operator")
NODE_KEY = device_token_key(URL)


class RoleGateway(FakeGateway):
    def __init__(self, **kw: Any):
        super().__init__(**kw)
        self.operator_tokens: dict[str, str] = {}  # device id -> operator token
        self.operator_scopes: tuple[str, ...] = SCOPES

    def approve_operator(self, device_id: str) -> str:
        token = f"operator-token-{device_id[:8]}-{next(self._ids):04d}-abcdefghijklmnop"
        self.operator_tokens[device_id] = token
        return token

    def _check_connect(self, params, nonce, ts):
        if params.get("role") != "operator":
            return super()._check_connect(params, nonce, ts)
        # The same checks (schema, signature, auth) against the operator tokens.
        node_tokens, self.paired = self.paired, dict(self.operator_tokens)
        try:
            error = super()._check_connect(params, nonce, ts)
        finally:
            self.paired = node_tokens
        device_id = params["device"]["id"]
        if error is not None and error[0].get("details", {}).get("reason") == "not-paired" and device_id in self.paired:
            return {"code": "NOT_PAIRED", "message": "pairing required: device is asking for a higher role than "
                                                     "currently approved",
                    "details": {"code": "PAIRING_REQUIRED", "reason": "role-upgrade",
                                "requestId": f"upgrade-{device_id[:8]}", "deviceId": device_id,
                                "requestedRole": "operator", "requestedScopes": params["scopes"],
                                "approvedRoles": ["node"]}}, 1008
        if error is None and tuple(params["scopes"]) != self.operator_scopes:
            return {"code": "INVALID_REQUEST", "message": "unauthorized: device token scope mismatch (re-pair or "
                                                          "approve scope upgrade)",
                    "details": {"code": "AUTH_SCOPE_MISMATCH"}}, 1008
        return error

    async def _session(self, conn: GatewayConn) -> None:
        # The parent's session, with the operator's hello-ok when the role is operator.
        original = conn.send

        async def send(frame: dict[str, Any]) -> None:
            payload = frame.get("payload")
            params = conn.connect_params or {}
            if isinstance(payload, dict) and payload.get("type") == "hello-ok" and params.get("role") == "operator":
                device_id = params["device"]["id"]
                payload["auth"] = {"method": "device-token" if "deviceToken" in params["auth"] else "token",
                                   "role": "operator", "scopes": list(self.operator_scopes),
                                   "deviceToken": self.operator_tokens[device_id]}
            await original(frame)

        conn.send = send  # type: ignore[method-assign]
        await super()._session(conn)


def operator_conns(gw: FakeGateway) -> list[GatewayConn]:
    return [c for c in gw.connections if (c.connect_params or {}).get("role") == "operator"]


def node_conns(gw: FakeGateway) -> list[GatewayConn]:
    return [c for c in gw.connections if (c.connect_params or {}).get("role") == "node"]


async def wait_for(predicate, step: float = 0.05) -> None:
    while not predicate():
        await trio.sleep(step)


@asynccontextmanager
async def both_links(gw: RoleGateway, tmp_path: Path):
    """``make_pair`` with the device approved for both roles, running until both are connected:
    yields (agent, link, received operator events). Cancelled when the block ends."""
    agent, link, received = make_pair(gw, tmp_path)
    gw.approve(agent.identity.device_id)
    gw.approve_operator(agent.identity.device_id)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(link.run)
        await run_in(nursery, agent)
        await wait_for(lambda: link.connected)
        yield agent, link, received
        nursery.cancel_scope.cancel()


def make_pair(gw: RoleGateway, tmp_path: Path, *, store: MemoryStore | None = None, protocol: str = "openclaw",
              on_event=None):
    """A node Agent and its operator link, sharing identity, store and status as in ``serve``."""
    store = store or MemoryStore()
    status = StatusBoard(None)
    received: list[Any] = []

    async def record(event):
        received.append(event)

    agent = make_agent(gw, tmp_path, store=store, status=status)
    if protocol != "openclaw":
        import dataclasses

        agent.config = dataclasses.replace(agent.config, protocol=protocol)
    link = OperatorLink(agent.config, store=store, identity=agent.identity, record=agent.record,
                        on_event=on_event or record, status=status, policy=ReconnectPolicy(rng=lambda: 0.5),
                        open_transport=gw.opener())
    agent.extensions.append(link)
    return agent, link, received


async def test_role_upgrade_is_requested_once_the_node_is_up_then_its_own_token_is_used(
        autojump_clock, tmp_path, caplog):
    caplog.set_level(logging.INFO, "node_agent")
    gw = RoleGateway()
    store = MemoryStore()
    agent, link, _ = make_pair(gw, tmp_path, store=store)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(link.run)
        await trio.sleep(5)
        assert gw.connections == []  # nothing before the node link is up
        assert link.status.current.operator_link.state.value == "waiting-for-node"

        node_token = gw.approve(agent.identity.device_id)
        await run_in(nursery, agent)
        await wait_for(lambda: link.status.current.operator_link.state.value == "pairing")
        first = operator_conns(gw)[0]
        params = first.connect_params
        assert params["role"] == "operator" and params["scopes"] == ["operator.read", "operator.talk"]
        assert params["caps"] == [] and params["commands"] == []
        assert params["client"]["id"] == "node-host" and params["client"]["mode"] == "node"
        assert "instanceId" not in params["client"]  # presence is keyed by it; this is not the node
        assert params["auth"] == {"token": gw.shared_token}
        assert params["device"]["id"] == agent.identity.device_id
        assert link.status.current.operator_link.pairing == PairingStatus(
            request_id=f"upgrade-{agent.identity.device_id[:8]}", reason="role-upgrade")
        assert f"openclaw devices approve upgrade-{agent.identity.device_id[:8]}" in caplog.text
        assert agent.status.current.state.value == "connected"  # the node link is not disturbed

        op_token = gw.approve_operator(agent.identity.device_id)
        approved_at = trio.current_time()
        await wait_for(lambda: link.connected)
        assert trio.current_time() - approved_at <= 3.0 + 0.05  # the next pairing retry, 3 s cadence
        assert await store.get(OP_KEY) == Secret(op_token)
        assert await store.get(NODE_KEY) == Secret(node_token)  # never mixed
        assert link.status.current.operator_link.state.value == "connected"
        assert caplog.text.count("openclaw devices approve") == 1  # announced once

        # Next connection: the operator token alone.
        await operator_conns(gw)[-1].close(1012, "service restart")
        await wait_for(lambda: len(operator_conns(gw)) == 3 and link.connected)
        assert operator_conns(gw)[-1].connect_params["auth"] == {"deviceToken": op_token}
        nursery.cancel_scope.cancel()


async def test_it_listens_only_no_presence_no_commands_and_forwards_talk_mode(autojump_clock, tmp_path):
    gw = RoleGateway()
    async with both_links(gw, tmp_path) as (agent, link, received):
        op = operator_conns(gw)[0]
        await op.send_event("talk.mode", {"enabled": True, "phase": "listening", "ts": 1}, seq=2)
        await op.send_event("voicewake.changed", {"triggers": ["alexa"]}, seq=3)
        await op.send_event("presence", {"presence": []}, seq=4)
        await op.send_event("talk.mode", {"enabled": False, "phase": None, "ts": 2}, seq=5)
        await wait_for(lambda: len(received) == 2)
        assert [e.body for e in received] == [TalkMode(enabled=True, phase="listening", ts=1),
                                              TalkMode(enabled=False, phase=None, ts=2)]
        assert await link.call("voicewake.get") == {"ok": True}  # an operator request on the live link
        await trio.sleep(300)  # five presence periods of the node link
        assert [r["method"] for r in op.requests] == ["voicewake.get"]
        assert any(r["params"]["event"] == "node.presence.alive" for r in node_conns(gw)[0].requests)


async def test_a_refused_operator_token_is_forgotten_alone(autojump_clock, tmp_path, caplog):
    gw = RoleGateway()
    store = MemoryStore()
    agent, link, _ = make_pair(gw, tmp_path, store=store)
    node_token = gw.approve(agent.identity.device_id)
    await store.set(NODE_KEY, Secret(node_token))
    await store.set(OP_KEY, Secret("operator-token-revoked-000000000000000000000"))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(link.run)
        await run_in(nursery, agent)
        await wait_for(lambda: (link.status.current.operator_link.state.value if link.status.current.operator_link else None) == "pairing")
        refused, asked = operator_conns(gw)[:2]
        assert "deviceToken" in refused.connect_params["auth"]
        assert asked.connect_params["auth"] == {"token": gw.shared_token}  # 0.25 s later, asking again
        assert await store.get(OP_KEY) is None
        assert await store.get(NODE_KEY) == Secret(node_token)
        assert "the node token is kept" in caplog.text
        assert agent.status.current.state.value == "connected"
        nursery.cancel_scope.cancel()


async def test_a_fatal_error_stops_only_the_link(autojump_clock, tmp_path, caplog):
    gw = RoleGateway()
    agent, link, _ = make_pair(gw, tmp_path)
    gw.approve(agent.identity.device_id)
    gw.approve_operator(agent.identity.device_id)
    gw.operator_scopes = ("operator.read",)  # approved with fewer scopes than it asks for
    async with trio.open_nursery() as nursery:
        link_done = trio.Event()

        async def run_link():
            await link.run()
            link_done.set()

        nursery.start_soon(run_link)
        await run_in(nursery, agent)
        await link_done.wait()
        state = link.status.current.operator_link
        assert state.state is LinkState.ERROR and "scope mismatch" in state.last_error
        assert "approve the pending scope upgrade" in state.hint
        assert "operator link: " in caplog.text and agent.status.current.state is LinkState.CONNECTED
        assert len(operator_conns(gw)) == 1  # no hot loop
        await trio.sleep(120)  # (the fake sends no ticks: the node link reconnects every 60 s, as it should)
        assert agent.status.current.state.value == "connected" and len(operator_conns(gw)) == 1
        nursery.cancel_scope.cancel()


async def test_it_follows_the_node_link_down_and_up(autojump_clock, tmp_path):
    gw = RoleGateway()
    async with both_links(gw, tmp_path) as (agent, link, _):
        gw.unreachable = True  # both links drop; only the node link may try while it is down
        for conn in list(gw.connections):
            await conn.close(1012, "service restart")
        await trio.sleep(60)
        assert not link.connected and link.status.current.operator_link.state.value in ("waiting", "connecting")
        attempts_while_down = len(gw.attempt_times)
        gw.unreachable = False
        await wait_for(lambda: link.connected and agent.status.current.state.value == "connected")
        assert len(gw.attempt_times) - attempts_while_down == 2  # the node first, then the link
        assert (gw.connections[-1].connect_params or {}).get("role") == "operator"


async def test_not_started_for_the_documented_dialect(autojump_clock, tmp_path):
    gw = RoleGateway()
    agent, link, _ = make_pair(gw, tmp_path, protocol="jsonrpc")
    with trio.fail_after(1):
        await link.run()
    assert link.status.current.operator_link.state.value == "off"
    assert gw.connections == []


async def test_stop_closes_the_link_with_a_close_frame(autojump_clock, tmp_path):
    gw = RoleGateway()
    async with both_links(gw, tmp_path) as (agent, link, _):
        await link.stop()
        op = operator_conns(gw)[0]
        await op.ended.wait()
        assert op.closed_code == 1000


def test_serve_builds_the_link_only_when_asked(tmp_path):
    from node_agent.adapters import select_adapter
    from node_agent.cli.run_cmd import _operator_link, _voice_extension
    from node_agent.config import Config
    from node_agent.config.voice import VoiceSettings
    from node_agent.identity import DeviceIdentity

    identity = DeviceIdentity.generate()
    status = StatusBoard(None)
    for table, wanted in (({"enabled": True}, False), ({"enabled": True, "operator_link": True}, True)):
        config = Config(state_dir=tmp_path, voice=VoiceSettings.from_table(table))
        voice = _voice_extension(config, select_adapter("linux"), status)
        link = _operator_link(config, voice, MemoryStore(), identity, None, status)
        assert (link is not None) == wanted
        if link is not None:
            assert link.callback == voice.on_operator_event


@pytest.mark.parametrize("value", ["yes", 1])
def test_operator_link_setting_must_be_a_boolean(value):
    from node_agent.config.voice import VoiceSettings
    from node_agent.errors import ConfigError

    with pytest.raises(ConfigError, match="voice.operator_link must be true or false"):
        VoiceSettings.from_table({"operator_link": value})
    assert VoiceSettings.from_table({"operator_link": True}).operator_link is True



async def test_with_auto_it_stops_when_the_node_link_speaks_the_documented_dialect(autojump_clock, tmp_path, caplog):
    from types import SimpleNamespace

    from node_agent.protocol import HelloOk, JsonRpcDialect

    # What the Agent hands its extensions after a documented-dialect hello (only the dialect matters).
    documented_node_conn = SimpleNamespace(session=SimpleNamespace(dialect=JsonRpcDialect()))

    gw = RoleGateway()
    agent, link, _ = make_pair(gw, tmp_path, protocol="auto")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(link.run)
        await trio.sleep(1)
        await link.on_ready(documented_node_conn, HelloOk())
        with trio.fail_after(1):
            await link._done.wait()
        nursery.cancel_scope.cancel()
    assert link.status.current.operator_link.state.value == "off" and gw.connections == []
    assert "sends talk.mode to nodes; no operator link needed" in caplog.text
