"""Wall time of the read-only commands, spawn -> exit, side by side with ``python -c pass``.

    .venv/bin/python bench/cli_start.py              # 21 runs each, interleaved
    .venv/bin/python bench/cli_start.py --runs 51

``node-agent --version``, ``identity --json``, ``status``, ``status --json`` and ``service
print``, each run as a person runs it (the console script, a fresh interpreter) against the state
directory of a node that has run: an identity, a status file with its voice, exec and tools
sections, and an exec approvals document (so ``status`` reads and renders all three, as on a
real node; no network, no daemon).
Rounds alternate the commands so machine noise hits all alike. Bytecode caching is on
(``PYTHONDONTWRITEBYTECODE`` is removed from the children's environment: some shells and CI
images set it, and then every start recompiles what it imports). Prints min / median / max in
ms and one JSON line; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

import _common as C  # noqa: E402

COMMANDS = (["--version"], ["identity", "--json"], ["status"], ["status", "--json"], ["service", "print"])

IDENTITY = {"version": 1, "deviceId": "ab" * 32, "publicKey": "cHVibGlj", "instanceId": "i-1", "platform": "linux",
            "deviceFamily": "Linux", "createdAtMs": 0}
#: What a running voice + exec + tools node writes (the pid is gone, so status shows it stopped).
STATUS = {"pid": 999_999_999, "state": "connected", "gateway": "ws://127.0.0.1:18789", "deviceId": "ab" * 32,
          "surface": "approved", "connectedAtMs": 1, "mode": "run",
          "voice": {"mode": "voice-wake", "phase": "listening", "activeTriggers": ["okay nabu"], "wakeCount": 2,
                    "stt": "pocketsphinx"},
          "exec": {"approvalsPath": "exec-approvals.json", "security": "allowlist", "ask": "on-miss",
                   "askFallback": "deny", "runs": 12, "lastDenials": [
                       {"atMs": 1, "command": "rm -rf /tmp/x", "reason": "allowlist-miss"}]},
          "tools": {"servers": [{"name": "time", "state": "ready", "tools": ["get_current_time"]}],
                    "published": [{"name": "time__get_current_time", "server": "time", "tool": "get_current_time"}],
                    "sent": 1, "kept": 1}}
APPROVALS = {"version": 1, "defaults": {"security": "allowlist", "ask": "on-miss", "askFallback": "deny"},
             "agents": {"*": {"allowlist": [{"id": "e-1", "pattern": "/usr/bin/uptime", "source": "allow-always"}]}}}


def seed(state: Path) -> None:
    state.mkdir(mode=0o700, parents=True)
    (state / "identity.json").write_text(json.dumps(IDENTITY))
    (state / "status.json").write_text(json.dumps(STATUS, indent=2))
    (state / "exec-approvals.json").write_text(json.dumps(APPROVALS, indent=2) + "\n")
    (state / "exec-approvals.json").chmod(0o600)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=21)
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-cli-") as tmp:
        home = Path(tmp)
        env = {k: v for k, v in os.environ.items()
               if k != "PYTHONDONTWRITEBYTECODE" and not k.startswith(("NODE_AGENT_", "OPENCLAW_"))}
        env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / "config"), NODE_AGENT_STATE_DIR=str(home / "state"))
        seed(home / "state")
        subjects = [("python -c pass", [str(C.PYTHON), "-c", "pass"])]
        subjects += [(f"node-agent {' '.join(c)}", [str(C.NODE_AGENT_BIN), *c]) for c in COMMANDS]
        times: dict[str, list[float]] = {label: [] for label, _ in subjects}
        for label, argv in subjects:  # once each first: bytecode written, page cache warm
            subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        for _ in range(args.runs):
            for label, argv in subjects:
                t0 = time.perf_counter()
                subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                times[label].append((time.perf_counter() - t0) * 1000)
    summaries = {label: C.summary(v) for label, v in times.items()}
    C.print_table(["command", "wall ms min / median / max"],
                  [[label, C.fmt_summary(s, "{:.0f}")] for label, s in summaries.items()])
    C.emit_json("cli_start", {"machine": C.machine_info(), "runs": args.runs, "ms": summaries})


if __name__ == "__main__":
    main()
