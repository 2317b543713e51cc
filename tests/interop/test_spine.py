"""The spine against the real OpenClaw gateway, end to end through the CLI, on every release.

Each test runs the real ``node-agent`` command as a subprocess with a file secret store, and
drives the gateway side with the real ``openclaw`` CLI where the issue names it (``devices
approve``, ``nodes approve``, ``nodes invoke``) and with the fast operator socket elsewhere.

These run against the pinned release and the oldest supported one (``scripts/test``), and
against each release of the matrix (``scripts/interop-matrix``). Where releases differ, the
test asks the release (``real_gateway.release``, facts in tests/support/openclaw_releases.py)
what a person would be asked to approve there, and holds node-agent to asking for exactly that:
up to 2026.7.35 a loopback device is paired without ``devices approve`` (no switch turns that
off), up to 2026.3.28 there is no ``nodes approve`` stage at all, and before 2026.8.1 the
gateway never tells the node whether its commands are approved.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
import trio

from node_agent.agent.status import LinkState, Surface
from tests.support.agent_process import (
    AgentProcess,
    device_id_of,
    device_token,
    of_device,
    wait_status_file,
)
from tests.support.openclaw_releases import Release
from tests.support.operator import Operator
from tests.support.real_gateway import CliError, RealGateway


async def cli(gateway: RealGateway, *args: str):
    return await trio.to_thread.run_sync(lambda: gateway.cli(*args))


async def pair(operator: Operator, device_id: str, release: Release) -> None:
    """Approve, through the operator socket (fast path), what ``release`` asks a person for."""
    if not release.pairs_loopback_silently:
        request = await operator.wait_event("device.pair.requested", of_device(device_id), timeout=30)
        await operator.approve_device(request["requestId"])
    if release.has_surface_stage:
        node_request = await operator.wait_event("node.pair.requested", of_device(device_id), timeout=30)
        await operator.approve_node(node_request["requestId"])


async def node_connected(operator: Operator, device_id: str, since: float, timeout: float = 30.0) -> None:
    """The gateway lists the node as connected by a connection made after ``since`` (its
    ``node.list``, asked every 0.2 s; not the presence broadcast, which a release may leave out
    for a device that reconnects while its presence entry is still fresh, as 2026.3.22 does)."""
    with trio.fail_after(timeout):
        while True:
            nodes = (await operator.list_nodes()).get("nodes", [])
            if any(n.get("nodeId") == device_id and n.get("connected")
                   and (n.get("connectedAtMs") or 0) >= since * 1000 for n in nodes):
                return
            await trio.sleep(0.2)


def needs_node_tokens(release: Release) -> None:
    if not release.issues_node_tokens:
        pytest.skip(f"openclaw {release} issues a node no device token (the first pairing test checks that "
                    "node-agent says so): nothing to reconnect with, keep or revoke")


async def start_paired(real_gateway: RealGateway, operator: Operator, state_dir: Path,
                       name: str) -> tuple[AgentProcess, str]:
    agent = AgentProcess("run", state_dir=state_dir, gateway_url=real_gateway.url, token=real_gateway.token,
                         extra=["--display-name", name])
    device_id = await device_id_of(state_dir)
    await pair(operator, device_id, real_gateway.release)
    await surface_approved(state_dir, real_gateway.release)
    return agent, device_id


def surface_as_approved(release: Release) -> set[Surface]:
    """What ``status`` may call an approved surface on ``release``: before 2026.8.1 the gateway
    never says, so node-agent says "unconfirmed" (until an invoke proves it)."""
    if release.reports_surface or not release.has_surface_stage:
        return {Surface.APPROVED}
    return {Surface.APPROVED, Surface.UNCONFIRMED}


async def surface_approved(state_dir: Path, release: Release, timeout: float = 30.0) -> None:
    # The status file, not a log line: an approval that lands between two connects is never
    # announced on a live socket, but the next presence heartbeat succeeds and says so.
    wanted = surface_as_approved(release)
    await wait_status_file(state_dir, lambda s: s.surface in wanted and s.state is LinkState.CONNECTED, timeout)


async def test_first_pairing_approve_invoke_with_the_openclaw_cli(real_gateway, operator, tmp_path):
    release = real_gateway.release
    state = tmp_path / "state"
    pairing = AgentProcess("pair", state_dir=state, gateway_url=real_gateway.url, token=real_gateway.token,
                           extra=["--display-name", "interop-first", "--timeout", "180"])
    try:
        device_id = await device_id_of(state)
        if not release.pairs_loopback_silently:
            request = await operator.wait_event("device.pair.requested", of_device(device_id), timeout=30)
            # What the person reads off the terminal is the exact command to run on the gateway.
            await pairing.wait_log(re.escape(f"openclaw devices approve {request['requestId']}"))
            assert device_token(state, real_gateway.url) is None
            await cli(real_gateway, "devices", "approve", request["requestId"], "--json")
        if release.issues_node_tokens:
            await pairing.wait_log(r"device token saved", timeout=30)
            token = device_token(state, real_gateway.url)
            assert token and token not in pairing.text()
        else:  # said, so that nobody removes the gateway token the node still needs
            await pairing.wait_log(r"gave the node no device token: .* keep OPENCLAW_GATEWAY_TOKEN", timeout=30)
            assert device_token(state, real_gateway.url) is None
        if release.has_surface_stage:
            await pairing.wait_log(r"openclaw nodes approve <requestId>", timeout=30)
            node_request = await operator.wait_event("node.pair.requested", of_device(device_id), timeout=30)
            if release.cli_approves_surface:
                await cli(real_gateway, "nodes", "approve", node_request["requestId"], "--json")
            else:
                # This release's CLI cannot, as the node said; the Control UI's way is an
                # operator.admin socket, which the operator fixture is.
                with pytest.raises(CliError, match="missing scope: operator.admin"):
                    await cli(real_gateway, "nodes", "approve", node_request["requestId"], "--json")
                await pairing.wait_log(r"CLI cannot: .*\n.*Approve the node in the Control UI", timeout=5)
                await operator.approve_node(node_request["requestId"])
        assert await pairing.wait_exit(30) == 0
        said = pairing.text()
        if surface_as_approved(release) == {Surface.APPROVED}:
            assert "paired: this device is an approved node" in said
        else:
            assert "paired: this device is approved. Its commands need `openclaw nodes approve`" in said
        # Only what this release asks for: no approval that will never be asked for.
        if release.pairs_loopback_silently:
            assert "devices approve" not in said
        if not release.has_surface_stage:
            assert "nodes approve" not in said
        assert "auth ?" not in said
    finally:
        pairing.kill()

    since = time.time()
    agent = AgentProcess("run", state_dir=state, gateway_url=real_gateway.url, token=real_gateway.token,
                         extra=["--display-name", "interop-first"])
    try:
        await node_connected(operator, device_id, since)
        result = await cli(real_gateway, "nodes", "invoke", "--node", device_id, "--command", "device.info", "--json")
        assert result["ok"] is True
        assert result["payload"]["deviceId"] == device_id
        assert result["payload"]["displayName"] == "interop-first"
        assert result["payload"]["agent"]["name"] == "node-agent"
        assert (await agent.terminate())[0] == 0
    finally:
        agent.kill()


async def test_agent_restart_reconnects_with_the_device_token_alone(real_gateway, operator, tmp_path):
    needs_node_tokens(real_gateway.release)
    state = tmp_path / "state"
    agent, device_id = await start_paired(real_gateway, operator, state, "interop-restart")
    token = device_token(state, real_gateway.url)
    assert (await agent.terminate())[0] == 0
    spawned_at = trio.current_time()
    since = time.time()
    second = AgentProcess("run", state_dir=state, gateway_url=real_gateway.url, token=None,
                          extra=["--display-name", "interop-restart"])  # no shared token at all
    try:
        await node_connected(operator, device_id, since)
        await second.wait_log(r"connected to .* auth device-token", timeout=10)
        assert device_token(state, real_gateway.url) == token
        assert not [e for e in operator.events if e.name == "device.pair.requested"
                    and e.payload.get("deviceId") == device_id and e.received_at > spawned_at]
        invoked = await operator.invoke(device_id, "device.status", {}, timeout_ms=10_000)
        assert invoked["ok"] is True
    finally:
        second.kill()


async def test_gateway_restart_agent_comes_back_without_help(real_gateway, operator, tmp_path):
    state = tmp_path / "state"
    agent, device_id = await start_paired(real_gateway, operator, state, "interop-gw-restart")
    try:
        mark = len(agent.text())
        restarted_at = time.time()
        await trio.to_thread.run_sync(real_gateway.restart)
        ready_at = real_gateway.ready_at
        await agent.wait_log(r"gateway is shutting down", after=mark, timeout=5)  # the shutdown event
        async with Operator.connect(real_gateway.url, real_gateway.token) as fresh:
            await node_connected(fresh, device_id, restarted_at)
        back = time.monotonic() - ready_at
        print(f"\n[interop] node back {back:.2f} s after the gateway logged ready")
        await agent.wait_log(r"connected to", after=mark, timeout=5)
        assert bool(device_token(state, real_gateway.url)) is real_gateway.release.issues_node_tokens
    finally:
        agent.kill()


async def test_revoked_token_is_reported_and_pairing_starts_again(real_gateway, operator, tmp_path):
    needs_node_tokens(real_gateway.release)
    state = tmp_path / "state"
    agent, device_id = await start_paired(real_gateway, operator, state, "interop-revoke")
    try:
        old = device_token(state, real_gateway.url)
        mark = len(agent.text())
        await cli(real_gateway, "devices", "remove", device_id, "--json")
        await agent.wait_log(r"refused this device's node token|waiting for approval", after=mark, timeout=60)
        if not real_gateway.release.pairs_loopback_silently:
            request = await operator.wait_event("device.pair.requested", of_device(device_id), timeout=60)
            await agent.wait_log(re.escape(f"openclaw devices approve {request['requestId']}"), after=mark,
                                 timeout=30)
            await operator.approve_device(request["requestId"])
        await agent.wait_log(r"device token saved", after=mark, timeout=30)
        assert device_token(state, real_gateway.url) not in (None, old)
    finally:
        agent.kill()
