"""The OpenClaw ``pair`` screen as a person sees it: ``node-agent pair`` on a real 80-column
pseudo-terminal against the real gateway, approved with the real ``openclaw`` CLI, the screen
rendered by a terminal emulator and compared with golden text at each step.

Masked (tests/support/terminal.py ``normalize``): wall-clock times, the gateway's port and the
request id the gateway makes up. The device key is fixed, so the device id and fingerprint on
the screen are real and the same on every run.
"""

from __future__ import annotations

import trio

from node_agent.identity import DeviceIdentity
from tests.cli.test_screens_pty import KEY, NULL_OUTPUT, home_with, paired_key
from tests.support.agent_process import of_device
from tests.support.operator import Operator
from tests.support.real_gateway import RealGateway
from tests.support.terminal import cli_env, fixed_tmp_dir, node_agent, open_terminal

DEVICE_ID = DeviceIdentity.from_secret(KEY).device_id

HEAD = (
    "Pairing 'pty-openclaw' with ws://127.0.0.1:PPPPP",
    "  device id: 5647 5aa7 5463 474c (56475aa75463…)",
    "  secrets:   file store",
)
#: Until a person approves the device: one log line, then what to run on the gateway host.
WAITING = (
    "HH:MM:SS INFO    node_agent.agent: waiting for approval of pty-openclaw (device",
    "5647 5aa7 5463 474c): openclaw devices approve xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxx",
    "xxx",
    "This device is waiting for approval on the gateway.",
    "  name:       pty-openclaw",
    "  device id:  5647 5aa7 5463 474c",
    f"    ({DEVICE_ID})",
    "  request id: xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx",
    "On the gateway host, check the device id in `openclaw devices list`, then run:",
    "  openclaw devices approve xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx",
    "If the gateway then asks for this node's commands to be approved too, node-agent",
    "  says so.",
)
#: After `openclaw devices approve`: the token, the connection, and the second stage.
DEVICE_APPROVED = (
    "HH:MM:SS INFO    node_agent.agent: node link: device token saved to the file sec",
    "ret store",
    "HH:MM:SS INFO    node_agent.agent: device approved by the gateway",
    "device approved by the gateway",
    "HH:MM:SS INFO    node_agent.agent: connected to ws://127.0.0.1:PPPPP (gateway 20",
    "26.9.6, protocol 4, auth token) as 5647 5aa7 5463 474c",
    "HH:MM:SS INFO    node_agent.agent: connected; the gateway has not approved this",
    "node's commands yet: openclaw nodes pending; openclaw nodes approve <requestId>",
    "connected, but the gateway has not approved this node's commands yet.",
    "On the gateway host, find the request of pty-openclaw (5647 5aa7 5463 474c):",
    "  openclaw nodes pending",
    "and approve it:",
    "  openclaw nodes approve <requestId>",
    "Commands outside the gateway's defaults are dropped unless allowed there:",
    "  openclaw config set gateway.nodes.commands.allow",
    "    '[\"device.info\",\"device.status\"]'",
)
#: After `openclaw nodes approve`.
PAIRED = (
    "HH:MM:SS INFO    node_agent.agent: the gateway approved this node's commands",
    "HH:MM:SS INFO    node_agent.agent: node commands approved: this node is fully pa",
    "ired",
    "node commands approved: this node is fully paired",
    "HH:MM:SS INFO    node_agent.agent: node agent stopped (exit status 0)",
    "paired: this device is an approved node. Run the service or `node-agent run`.",
)


def rows(*lines: str) -> str:
    return "\n".join(lines) + "\n"


async def cli(gateway: RealGateway, *args: str):
    return await trio.to_thread.run_sync(lambda: gateway.cli(*args))


async def test_the_openclaw_pair_screen_as_a_person_sees_it(real_gateway: RealGateway, operator: Operator):
    with fixed_tmp_dir() as tmp:
        state = tmp / "state"
        await paired_key(state)
        env = cli_env(OPENCLAW_GATEWAY_TOKEN=real_gateway.token, **home_with(tmp, NULL_OUTPUT))
        argv = node_agent("pair", "--gateway", real_gateway.url, "--state-dir", str(state), "--secret-backend",
                          "file", "--display-name", "pty-openclaw", "--timeout", "180")
        with trio.fail_after(150):
            async with open_terminal(argv, env=env) as term:
                request = await operator.wait_event("device.pair.requested", of_device(DEVICE_ID), timeout=60)
                await term.wait_for("says so.", timeout=60)
                first = term.screen(normalized=True)
                assert request["requestId"] in term.output()

                await cli(real_gateway, "devices", "approve", request["requestId"], "--json")
                node_request = await operator.wait_event("node.pair.requested", of_device(DEVICE_ID), timeout=60)
                await term.wait_for("and approve it:", timeout=60)
                second = term.screen(normalized=True)

                await cli(real_gateway, "nodes", "approve", node_request["requestId"], "--json")
                assert await term.wait_exit(timeout=60) == 0
                last = term.screen(normalized=True)
    print(f"--- the OpenClaw pair screen, waiting for approval ---\n{first}"
          f"--- after `openclaw devices approve` ---\n{second}--- after `openclaw nodes approve` ---\n{last}")
    assert first == rows(*HEAD, *WAITING)
    assert second == rows(*HEAD, *WAITING, *DEVICE_APPROVED)
    assert last == rows(*HEAD, *WAITING, *DEVICE_APPROVED, *PAIRED)
