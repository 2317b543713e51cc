"""Helpers for interop tests that run our agent in-process against the real gateway.

Job: build an :class:`~node_agent.agent.node.Agent` wired like ``node-agent run`` would
wire it (real transport, real identity, a secret store of the test's choosing), run it in the
test's nursery, pair it through an operator socket (both stages: the device, then the node's
command surface), and wait on its status board with a bound and a useful failure message.

Invariants:

* Every wait is bounded and, when it fails, says what it waited for and what the agent's
  status said at the time (the first thing to look at when the real gateway surprises us).
* Pairing is driven from the gateway's side of the truth (``device.pair.list`` /
  ``node.pair.list`` filtered by this agent's device id), not from the agent's status, so a
  request id that went stale across a gateway restart is never approved.
* Nothing here restarts the gateway; tests do that themselves, through
  ``trio.to_thread.run_sync`` because :class:`~tests.support.real_gateway.RealGateway` blocks.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable, TypeVar

import attrs
import trio

from node_agent.adapters import select_adapter
from node_agent.agent.backoff import ReconnectPolicy
from node_agent.agent.commands import CommandRegistry, builtin_registry
from node_agent.agent.node import Agent
from node_agent.agent.status import StatusBoard, Surface
from node_agent.config import Config
from node_agent.identity import DeviceIdentity, IdentityRecord, load_or_create
from node_agent.secret import Secret
from node_agent.secrets import MemoryStore, SecretStore, device_token_key
from tests.support.openclaw_releases import Release
from tests.support.operator import Operator
from tests.support.real_gateway import RealGateway

T = TypeVar("T")

#: How often tests retry a pending pairing. The product default is 3 s (calm for a person
#: watching); 1 s keeps interop tests short and is still well clear of any rate limit.
TEST_PAIRING_INTERVAL = 1.0


async def new_identity(state_dir: Path, store: SecretStore) -> tuple[DeviceIdentity, IdentityRecord]:
    """A device identity persisted as the product persists it (key in ``store``, record on disk)."""
    adapter = select_adapter("linux")
    return await load_or_create(state_dir, store, platform=adapter.platform, device_family=adapter.device_family)


def build_agent(gateway: RealGateway | str, token: str | None, state_dir: Path, *,
                store: SecretStore | None = None, identity: DeviceIdentity | None = None,
                record: IdentityRecord | None = None, registry: CommandRegistry | None = None,
                policy: ReconnectPolicy | None = None, display_name: str = "interop-node",
                ping_interval: float = 20.0, ping_timeout: float = 10.0, heartbeat_interval: float = 60.0,
                open_transport: Callable[[], Any] | None = None, extensions: list[Any] | None = None,
                status: StatusBoard | None = None) -> Agent:
    """An agent for ``gateway`` (or a URL, e.g. a fault proxy in front of it).

    ``token=None`` leaves out the shared token, so the agent can only get in with a device token
    from ``store``: the way to prove a stored token is intact.
    """
    url = gateway.url if isinstance(gateway, RealGateway) else gateway
    adapter = select_adapter("linux")
    if identity is None:
        identity = DeviceIdentity.generate()
    if record is None:
        record = IdentityRecord(device_id=identity.device_id, public_key=identity.public_key,
                                instance_id=f"interop-{identity.device_id[:8]}", platform=adapter.platform,
                                device_family=adapter.device_family, created_at_ms=int(time.time() * 1000))
    config = Config(gateway_url=url, shared_token=Secret(token) if token else None, state_dir=state_dir,
                    display_name=display_name, heartbeat_interval=heartbeat_interval,
                    ping_interval=ping_interval, ping_timeout=ping_timeout, secret_backend="memory")
    return Agent(config, store=store or MemoryStore(), identity=identity, record=record, adapter=adapter,
                 registry=registry or builtin_registry(),
                 policy=policy or ReconnectPolicy(pairing_interval=TEST_PAIRING_INTERVAL),
                 status=status or StatusBoard(None), open_transport=open_transport, extensions=extensions)


@attrs.define(eq=False)
class RunningAgent:
    """An agent running in a test's nursery."""

    agent: Agent
    done: trio.Event = attrs.Factory(trio.Event)
    exit_code: int | None = None
    crashed: BaseException | None = None

    @property
    def device_id(self) -> str:
        return self.agent.identity.device_id

    @property
    def state(self) -> str | None:
        return self.agent.status.current.state.value

    def describe(self) -> str:
        snap = self.agent.status.current
        keep = ("state", "last_error", "retry_in_seconds", "pairing", "surface", "token_save_error")
        return f"connections={self.agent.connections} " + ", ".join(f"{k}={getattr(snap, k)!r}" for k in keep)

    async def stop(self, timeout: float = 10.0) -> int | None:
        self.agent.request_stop()
        with trio.fail_after(timeout):
            await self.done.wait()
        return self.exit_code

    async def wait(self, predicate: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
        await wait_until(predicate, what, timeout, describe=self.describe, running=self)

    async def wait_connected(self, timeout: float = 30.0, *, after: int = 0) -> None:
        """Until the agent has made more than ``after`` connections and says "connected"."""
        await self.wait(lambda: self.agent.connections > after and self.state == "connected",
                        f"connected (connection #{after + 1} or later)", timeout)


async def start_agent(nursery: trio.Nursery, agent: Agent) -> RunningAgent:
    running = RunningAgent(agent)

    async def run() -> None:
        try:
            running.exit_code = await agent.run()
        except BaseException as exc:  # a crash must fail the test, with the agent's own traceback
            running.crashed = exc
            raise
        finally:
            running.done.set()

    nursery.start_soon(run)
    return running


async def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 30.0, *,
                     describe: Callable[[], str] | None = None, running: RunningAgent | None = None,
                     interval: float = 0.05) -> None:
    deadline = trio.current_time() + timeout
    while not predicate():
        if running is not None and running.done.is_set():
            raise AssertionError(f"the agent stopped (exit {running.exit_code}) while waiting for {what}: "
                                 f"{running.describe()}")
        if trio.current_time() > deadline:
            extra = f"; agent: {describe()}" if describe else ""
            raise AssertionError(f"not {what} within {timeout:g} s{extra}")
        await trio.sleep(interval)


async def poll(fetch: Callable[[], Awaitable[T | None]], what: str, timeout: float = 30.0,
               interval: float = 0.25) -> T:
    """Call ``fetch`` until it returns something other than None."""
    deadline = trio.current_time() + timeout
    while True:
        value = await fetch()
        if value is not None:
            return value
        if trio.current_time() > deadline:
            raise AssertionError(f"no {what} within {timeout:g} s")
        await trio.sleep(interval)


# --- the gateway's view ------------------------------------------------------------------------


async def pending_device_request(operator: Operator, device_id: str) -> str | None:
    for item in await operator.pending_devices():
        if item.get("deviceId") == device_id:
            return str(item["requestId"])
    return None


async def pending_node_request(operator: Operator, device_id: str) -> str | None:
    for item in await operator.pending_nodes():
        if item.get("nodeId") == device_id:
            return str(item["requestId"])
    return None


async def paired_entries(operator: Operator, device_id: str) -> list[dict[str, Any]]:
    """This device's entries in ``device.pair.list``'s paired list (one, once paired; never two)."""
    return [d for d in (await operator.device_pairs())["paired"] if d.get("deviceId") == device_id]


async def approve_device(operator: Operator, running: RunningAgent, timeout: float = 30.0) -> str:
    """Stage 1: wait for this agent's pending device request and approve it; returns its id."""
    request_id = await poll(lambda: pending_device_request(operator, running.device_id),
                            f"pending device request for {running.device_id[:12]}", timeout)
    await operator.approve_device(request_id)
    return request_id


async def approve_surface(operator: Operator, running: RunningAgent, timeout: float = 30.0) -> str:
    """Stage 2: approve the node's declared commands, then wait until the agent sees it."""
    request_id = await poll(lambda: pending_node_request(operator, running.device_id),
                            f"pending node request for {running.device_id[:12]}", timeout)
    await operator.approve_node(request_id)
    await running.wait(lambda: running.agent.status.current.surface is Surface.APPROVED, "surface approved", timeout)
    return request_id


async def pair(operator: Operator, running: RunningAgent, *, surface: bool = True, timeout: float = 30.0) -> None:
    """Both pairing stages for an agent that is running with the shared token."""
    await approve_device(operator, running, timeout)
    await running.wait_connected(timeout)
    if surface:
        await approve_surface(operator, running, timeout)


async def pair_on_release(operator: Operator, running: RunningAgent, release: Release,
                          timeout: float = 30.0) -> None:
    """Approve what ``release`` asks a person for (up to 2026.7.35 the device is paired silently
    on loopback; up to 2026.3.28 there is no surface stage), then wait until the agent is
    connected and says its surface is approved, or "unconfirmed" where the release never says."""
    if not release.pairs_loopback_silently:
        await approve_device(operator, running, timeout)
    await running.wait_connected(timeout)
    if release.has_surface_stage:
        request_id = await poll(lambda: pending_node_request(operator, running.device_id),
                                f"pending node request for {running.device_id[:12]}", timeout)
        await operator.approve_node(request_id)
    wanted = {Surface.APPROVED} if release.reports_surface or not release.has_surface_stage \
        else {Surface.APPROVED, Surface.UNCONFIRMED}
    await running.wait(lambda: running.agent.status.current.surface in wanted, f"surface in {wanted}", timeout)


async def stored_token(running: RunningAgent) -> Secret | None:
    agent = running.agent
    return await agent.store.get(device_token_key(agent.config.gateway_url))


@contextlib.asynccontextmanager
async def operator_for(gateway: RealGateway, timeout: float = 20.0) -> AsyncIterator[Operator]:
    """A fresh operator socket, retried while the gateway is still starting (after a restart the
    fixture's socket is gone)."""
    deadline = trio.current_time() + timeout
    while True:
        try:
            cm = Operator.connect(gateway.url, gateway.token)
            op = await cm.__aenter__()
        except Exception:
            if trio.current_time() > deadline:
                raise
            await trio.sleep(0.25)
            continue
        break
    try:
        yield op
    finally:
        with trio.CancelScope(shield=True), contextlib.suppress(Exception):
            await cm.__aexit__(None, None, None)


# --- process figures ----------------------------------------------------------------------------


def rss_bytes() -> int:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def trio_tasks() -> int:
    """Live Trio tasks in this run (a leak of per-connection tasks shows up here first)."""
    def count(task: trio.lowlevel.Task) -> int:
        return 1 + sum(count(child) for nursery in task.child_nurseries for child in nursery.child_tasks)

    return count(trio.lowlevel.current_root_task())
