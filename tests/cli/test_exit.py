"""``node-agent run`` ends with ``os._exit`` after a SIGTERM (interpreter teardown is wasted time
for a daemon): nothing it wrote may be lost on the way. A real subprocess of the console entry,
against the documented-dialect double over loopback; then the files and the log are read back.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from node_agent.agent.status import LinkState, read_status
from tests.support.documented_gateway import open_documented_gateway

REPO = Path(__file__).resolve().parents[2]
SHARED = "exit-test-shared-token-123456"


async def test_a_sigterm_leaves_status_secrets_and_the_last_log_line_complete(tmp_path):
    state = tmp_path / "state"
    log_path = tmp_path / "agent.log"
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path), "PYTHONPATH": str(REPO),
           "OPENCLAW_GATEWAY_TOKEN": SHARED}
    with trio.fail_after(60):
        async with open_documented_gateway(shared_token=SHARED, auto_approve=True) as gw:
            with open(log_path, "wb") as log:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "node_agent", "run", "--gateway", gw.url, "--protocol", "jsonrpc",
                     "--state-dir", str(state), "--secret-backend", "file", "--display-name", "exit-test"],
                    env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
            try:
                conn = await gw.wait_ready()
                while (status := read_status(state)) is None or status.state is not LinkState.CONNECTED:
                    await trio.sleep(0.05)  # another process writes it: nothing to wait on but the file
                proc.send_signal(signal.SIGTERM)
                while proc.poll() is None:
                    await trio.sleep(0.02)
                await gw.wait_closed(conn)
            finally:
                if proc.poll() is None:
                    proc.kill()
    assert proc.returncode == 0
    final = read_status(state)
    assert final is not None and final.state is LinkState.STOPPED and final.pid is None and not final.stale
    secrets = json.loads((state / "secrets.json").read_text())
    token_keys = [k for k in secrets if k.startswith("device-token:")]
    assert token_keys and secrets[token_keys[0]] in gw.tokens  # the issued token, whole
    assert "device-key" in secrets and json.loads((state / "identity.json").read_text())["deviceId"]
    last = log_path.read_text().strip().splitlines()[-1]
    assert "node agent stopped (exit status 0)" in last  # the log was flushed before the fast exit


#: The commands that end with ``os._exit`` (``exit_at_once`` in their parser's defaults): the two
#: daemons, and the read-only commands a person runs often. Anything that writes, asks or runs
#: a subprocess of its own exits through the interpreter as usual.
AT_ONCE = {("run",), ("pair",), ("status",), ("identity",), ("service", "print")}


@pytest.mark.parametrize("words", [["run"], ["pair"], ["status"], ["status", "--json"], ["identity"],
                                   ["service", "print"], ["service", "install"], ["service", "status"],
                                   ["unpair"], ["doctor"], ["exec", "policy"], ["exec", "allow", "/bin/true"],
                                   ["voice", "test", "--wav", "x.wav"], ["tools", "list"]])
def test_only_the_daemons_and_the_read_only_commands_skip_interpreter_teardown(words):
    from node_agent.cli import build_parser

    args = build_parser(words[0]).parse_args(words)
    expected = tuple(w for w in words if not w.startswith("-"))[:2] in AT_ONCE or (words[0],) in AT_ONCE
    assert getattr(args, "exit_at_once", False) is expected


def test_a_read_only_command_ended_at_once_still_prints_everything_into_a_pipe(tmp_path, capsys, monkeypatch):
    # status --json through the console entry (os._exit after the flush) prints what main()
    # prints in process: the buffered stdout of a pipe reaches the reader whole.
    from node_agent.cli import main

    state = tmp_path / "state"
    state.mkdir()
    (state / "identity.json").write_text(json.dumps({
        "version": 1, "deviceId": "cd" * 32, "publicKey": "pk", "instanceId": "i", "platform": "linux",
        "deviceFamily": "Linux", "createdAtMs": 0}))
    (state / "status.json").write_text(json.dumps({"state": "connected", "gateway": "ws://127.0.0.1:18789",
                                                   "pid": None, "deviceId": "cd" * 32, "surface": "approved"}))
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path), "PYTHONPATH": str(REPO),
           "NODE_AGENT_STATE_DIR": str(state)}
    out = subprocess.run([sys.executable, "-m", "node_agent", "status", "--json"], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    for name in list(os.environ):
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main(["status", "--json"]) == 0
    assert out.stdout == capsys.readouterr().out
    assert json.loads(out.stdout)["deviceId"] == "cd" * 32
