"""Builders for the agent-layer tests: a node agent wired to an in-memory OpenClaw gateway
(virtual time) or to the documented-dialect double over real loopback sockets.

``make_agent`` gives an agent on :class:`~tests.support.fake_openclaw.FakeGateway` with a
deterministic reconnect policy (jitter pinned to the middle), so backoff schedules are exact;
``connected`` runs an approved one for the length of a block.
"""

from __future__ import annotations

import json
from contextlib import asynccontextmanager
from pathlib import Path

import trio

from node_agent.adapters import select_adapter
from node_agent.agent.backoff import ReconnectPolicy
from node_agent.agent.commands import builtin_registry
from node_agent.agent.node import Agent, transport_opener
from node_agent.config import Config
from node_agent.identity import DeviceIdentity, IdentityRecord
from node_agent.protocol import Event
from node_agent.secret import Secret
from node_agent.secrets import MemoryStore
from tests.support.fake_openclaw import FakeGateway

SHARED = "documented-shared-token-1234"

URL = "ws://127.0.0.1:18789"


def make_agent(gw: FakeGateway, tmp_path: Path, *, registry=None, store=None, heartbeat=1000.0, **kw) -> Agent:
    identity = DeviceIdentity.generate()
    record = IdentityRecord(device_id=identity.device_id, public_key=identity.public_key, instance_id="inst",
                            platform="linux", device_family="Linux", created_at_ms=0)
    config = Config(gateway_url=URL, shared_token=Secret(gw.shared_token), state_dir=tmp_path,
                    display_name="test-node", heartbeat_interval=heartbeat, ping_interval=20.0)
    return Agent(config, store=store or MemoryStore(), identity=identity, record=record,
                 adapter=select_adapter("linux"), registry=registry or builtin_registry(),
                 policy=ReconnectPolicy(rng=lambda: 0.5), open_transport=gw.opener(), **kw)


async def run_in(nursery, agent) -> list[int]:
    result: list[int] = []

    async def runner():
        result.append(await agent.run())

    nursery.start_soon(runner)
    return result


@asynccontextmanager
async def connected(gw: FakeGateway, tmp_path: Path, **kw):
    """An approved agent running on ``gw`` for the block: yields (agent, its first connection,
    once ready). The agent is cancelled when the block ends."""
    agent = make_agent(gw, tmp_path, **kw)
    gw.approve(agent.identity.device_id)
    async with trio.open_nursery() as nursery:
        await run_in(nursery, agent)
        conn = await gw.wait_connection(1)
        await conn.ready.wait()
        yield agent, conn
        nursery.cancel_scope.cancel()


def results(conn, method):
    return [json.loads(r["params"]["payloadJSON"]) if "payloadJSON" in r["params"] else r["params"]
            for r in conn.requests if r.get("method") == method]


class Recorder:
    """An extension that records every event the node link delivers; tests wait on it."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.ready = trio.Event()
        self._changed = trio.Event()

    async def on_ready(self, conn, hello) -> None:
        self.ready.set()

    async def on_event(self, conn, event) -> None:
        self.events.append(event)
        self._changed.set()
        self._changed = trio.Event()

    async def on_disconnected(self) -> None:
        self.ready = trio.Event()

    async def wait_event(self, name: str, count: int = 1) -> list[Event]:
        while len(found := [e for e in self.events if e.name == name]) < count:
            await self._changed.wait()
        return found


class Messages:
    """What the ``pair`` screen would print (each notice's text); tests wait on it."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self._changed = trio.Event()

    def __call__(self, notice) -> None:
        self.texts.append(notice.text)
        self._changed.set()
        self._changed = trio.Event()

    def __getitem__(self, index: int) -> str:
        return self.texts[index]

    async def wait_for(self, predicate) -> str:
        while (found := next((t for t in self.texts if predicate(t)), None)) is None:
            await self._changed.wait()
        return found


def fast_policy() -> ReconnectPolicy:
    return ReconnectPolicy(initial=0.05, maximum=0.2, pairing_interval=0.1, rate_limited_initial=0.2,
                           rate_limited_max=0.4, recovery_delay=0.05, reauth_delay=0.05, rng=lambda: 0.5)


def make_documented_agent(url: str, tmp_path: Path, *, store=None, shared: str | None = SHARED, protocol: str = "jsonrpc",
               messages=None, recorder=None) -> Agent:
    identity = DeviceIdentity.generate()
    record = IdentityRecord(device_id=identity.device_id, public_key=identity.public_key, instance_id="kitchen-node",
                            platform="linux", device_family="Linux", created_at_ms=0)
    config = Config(gateway_url=url, shared_token=Secret(shared) if shared else None, state_dir=tmp_path,
                    protocol=protocol, display_name="kitchen", heartbeat_interval=1000.0)
    return Agent(config, store=store or MemoryStore(), identity=identity, record=record,
                 adapter=select_adapter("linux"), policy=fast_policy(), open_transport=transport_opener(config),
                 notices=messages,
                 extensions=[recorder] if recorder else None)
