"""What differs between OpenClaw releases, checked against each real release (issue 10, item 4).

Run against the pinned and the oldest supported release by ``scripts/test``, and against each
release of the matrix by ``scripts/interop-matrix``. Each test holds node-agent to the same
promise on every release; the release decides only what the gateway side looks like.
"""

from __future__ import annotations

import json

import attrs
import trio

from node_agent.agent.link import EXIT_FATAL
from node_agent.agent.status import LinkState
from node_agent.protocol.releases import NEW_ALLOWLIST_KEY, OLD_ALLOWLIST_KEY, profile_for
from tests.interop.helpers import build_agent, pair_on_release, start_agent
from tests.support.operator import Operator, OperatorError
from tests.support.real_gateway import CliError, RealGateway


async def invoke_ok(operator: Operator, device_id: str) -> bool:
    try:
        result = await operator.invoke(device_id, "device.info", {}, timeout_ms=5000)
    except OperatorError:
        return False
    return isinstance(result, dict) and result.get("ok") is True


async def test_approved_commands_answer_without_restarting_the_agent(real_gateway: RealGateway,
                                                                     operator: Operator, tmp_path):
    # 2026.3.31 never applies an approval to a connected node ("the node did not declare any
    # supported commands" for as long as it stays connected): the agent reconnects once, at its
    # next heartbeat (which rides the gateway's next 30 s tick), to pick it up. Every other release
    # applies it live (or has no such stage).
    heartbeat = 5.0
    wait = heartbeat + 30 + 20  # the heartbeat, the gateway's next tick, the reconnect and approval
    agent = build_agent(real_gateway, real_gateway.token, tmp_path, heartbeat_interval=heartbeat)
    with trio.fail_after(120):
        async with trio.open_nursery() as nursery:
            running = await start_agent(nursery, agent)
            await pair_on_release(operator, running, real_gateway.release)
            approved_at = trio.current_time()
            while not await invoke_ok(operator, running.device_id):
                assert trio.current_time() - approved_at < wait, (
                    f"device.info still refused {wait:g} s after approval: {running.describe()}")
                await trio.sleep(0.5)
            assert agent.connections <= 2  # at most the one pick-up reconnect
            await running.stop()


async def test_a_protocol_range_the_gateway_does_not_speak_ends_in_the_upgrade_message(real_gateway, tmp_path):
    # Up to 2026.4.29 the refusal carries only details.expectedProtocol (no detail code); later
    # releases add PROTOCOL_MISMATCH. Either way: one attempt, then the "upgrade" message.
    agent = build_agent(real_gateway, real_gateway.token, tmp_path)
    speaks = agent.link.connect_inputs

    def future_node_agent():
        return attrs.evolve(speaks(), min_protocol=9, max_protocol=9)

    agent.link.connect_inputs = future_node_agent
    with trio.fail_after(30):
        code = await agent.run()
    status = agent.status.current
    assert code == EXIT_FATAL and status.state is LinkState.ERROR
    assert agent.connections == 1
    assert "Upgrade whichever is older" in (status.hint or ""), status


async def test_the_allowlist_key_node_agent_names_is_the_one_this_release_accepts(real_gateway: RealGateway,
                                                                                    operator: Operator, tmp_path):
    # node-agent reads the release from hello-ok's server.version; the release's own `openclaw
    # config validate` is the judge (its schema is strict: the other key is an error).
    version = operator.hello["server"]["version"]
    key = profile_for(version).allowlist_key
    other = OLD_ALLOWLIST_KEY if key == NEW_ALLOWLIST_KEY else NEW_ALLOWLIST_KEY
    for path, accepted in ((key, True), (other, False)):
        config = real_gateway.config()
        nodes = config["gateway"]["nodes"]
        nodes.pop("allowCommands", None)
        nodes.pop("commands", None)
        node = nodes
        *parents, leaf = path.split(".")[2:]
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = ["device.info", "device.status"]
        candidate = tmp_path / f"{leaf}-{accepted}.json"
        candidate.write_text(json.dumps(config))
        try:
            await trio.to_thread.run_sync(lambda: real_gateway.cli("config", "validate",
                                                                   env={"OPENCLAW_CONFIG_PATH": str(candidate)}))
            valid = True
        except CliError as exc:
            assert "Unrecognized key" in exc.stdout + exc.stderr or "Invalid input" in exc.stdout + exc.stderr, exc
            valid = False
        assert valid is accepted, f"{path} on openclaw {version}"
