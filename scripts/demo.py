"""The newcomer's tour: a real gateway, a real node-agent, pairing and an invoke, end to end.

Runs inside a loopback-only network namespace (``scripts/run`` puts it there). It starts the real
OpenClaw gateway with manual approval on, starts ``node-agent pair``, and plays the person at the
gateway: it runs the very ``openclaw`` commands the agent prints, showing each one. Then it starts
``node-agent run``, invokes ``device.info`` on the node through the gateway, and leaves the node
running until Ctrl-C (or exits at once with ``--once`` or without a terminal).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.real_gateway import RealGateway  # noqa: E402

NODE_AGENT = [sys.executable, "-m", "node_agent"]


def say(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m", flush=True)


def show_cli(gateway: RealGateway, *args: str):
    print(f"$ openclaw {' '.join(args)}", flush=True)
    return gateway.cli(*args)


def wait_for(what: str, probe, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.5)
    raise SystemExit(f"demo: gave up waiting for {what}")


def main() -> int:
    once = "--once" in sys.argv[1:] or not sys.stdin.isatty()
    say("Starting a real OpenClaw gateway (npm openclaw) on 127.0.0.1, manual approval on (~15 s)")
    with RealGateway() as gateway, tempfile.TemporaryDirectory(prefix="node-agent-demo-") as tmp:
        print(f"gateway ready at {gateway.url} in {gateway.start_seconds:.1f} s")
        state = Path(tmp) / "state"
        env = {**os.environ, "OPENCLAW_GATEWAY_TOKEN": gateway.token}
        common = ["--state-dir", str(state), "--gateway", gateway.url, "--secret-backend", "file",
                  "--display-name", "demo-node"]

        say("node-agent pair: asks the gateway to pair this device")
        pair = subprocess.Popen([*NODE_AGENT, "pair", *common, "--timeout", "120", "--log-level", "warning"], env=env)
        pending = wait_for("the pairing request", lambda: show_quiet(gateway, "devices", "list", "--json")["pending"])
        say("On the gateway: approve the device (the command node-agent printed)")
        show_cli(gateway, "devices", "approve", pending[0]["requestId"], "--json")
        nodes = wait_for("the command-surface request", lambda: show_quiet(gateway, "nodes", "pending", "--json"))
        say("On the gateway: approve the node's commands")
        show_cli(gateway, "nodes", "approve", nodes[0]["requestId"], "--json")
        if pair.wait(timeout=120) != 0:
            return 1

        say("node-agent run: the daemon, reconnecting forever with the stored device token")
        run = subprocess.Popen([*NODE_AGENT, "run", *common], env={k: v for k, v in env.items()
                                                                   if k != "OPENCLAW_GATEWAY_TOKEN"})
        try:
            device_id = json.loads((state / "identity.json").read_text())["deviceId"]
            wait_for("the node to connect", lambda: node_status(state) == "connected")
            say("On the gateway: invoke a command on the node")
            result = show_cli(gateway, "nodes", "invoke", "--node", device_id, "--command", "device.info", "--json")
            print(json.dumps(result.get("payload", result), indent=2))
            say("`node-agent status`")
            subprocess.run([*NODE_AGENT, "status", "--state-dir", str(state), "--gateway", gateway.url], check=False)
            if once:
                say("Done (--once). Stopping the node and the gateway.")
            else:
                say("The node is connected. Ctrl-C stops the node and the gateway.")
                try:
                    while run.poll() is None:
                        time.sleep(0.5)
                except KeyboardInterrupt:
                    pass
        finally:
            if run.poll() is None:
                run.send_signal(signal.SIGTERM)
                run.wait(timeout=10)
    return 0


def show_quiet(gateway: RealGateway, *args: str):
    return gateway.cli(*args)


def node_status(state: Path) -> str | None:
    try:
        return json.loads((state / "status.json").read_text()).get("state")
    except (OSError, ValueError):
        return None


if __name__ == "__main__":
    sys.exit(main())
