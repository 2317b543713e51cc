"""How fast ``node-agent run`` is back after the gateway restarts (target: <= 1.5 s after "ready").

    scripts/in-netns .venv/bin/python bench/reconnect.py                  # 5 graceful restarts
    scripts/in-netns .venv/bin/python bench/reconnect.py --restarts 3 --kill   # SIGKILL (a crash) instead
    scripts/in-netns .venv/bin/python bench/reconnect.py --peer           # openclaw node run alongside

A real gateway (RealGateway, ``autoApproveLocal`` on) and the real ``node-agent run`` (a
subprocess, paired once through an operator socket). Then, ``--restarts`` times: stop the gateway
(SIGTERM: it sends ``shutdown`` and closes with 1012; or SIGKILL with ``--kill``), start it again
on the same port and state, and time the agent's return:

* ready: :attr:`RealGateway.ready_at` (monotonic; the harness polls every 100 ms, so it can be up
  to ~0.1 s late), and the gateway's own ms timestamps on its ``http server listening`` and
  ``[gateway] ready`` log lines;
* connected: the agent's own "connected to" log line (it is logged on hello-ok), stamped on
  arrival; cross-checked with the gateway's view, the ``ts`` of our ``presence`` entry
  (``reason: "connect"``), read by a fresh operator socket after the restart.

The gateway accepts nodes a few seconds before it logs "ready" (it is still starting channels and
sidecars), so "ready -> connected" is usually negative: the agent is back first. "listening ->
connected" is the agent's real reaction time plus the handshake on a gateway that is still busy
starting. Also reported: the whole outage (stop begun -> connected). Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import _common as C  # noqa: E402
import trio  # noqa: E402

from tests.support.operator import Operator  # noqa: E402
from tests.support.real_gateway import RealGateway, strip_ansi  # noqa: E402

TARGET_S = 1.5
READY = re.compile(r"\[gateway\] ready\s*$", re.MULTILINE)


_GW_LINE = re.compile(r"^(?P<ts>\d{4}-\d\d-\d\dT\S+) \[gateway\] (?P<what>http server listening|ready)\b", re.MULTILINE)


def gateway_marks(gw: RealGateway, offset_bytes: int) -> dict[str, float]:
    """Wall-clock ms of the gateway's own "http server listening" and "[gateway] ready" log lines
    written after ``offset_bytes`` (its timestamps are ms-precise, taken when it logged)."""
    with gw.log_path.open("rb") as f:
        f.seek(offset_bytes)
        text = strip_ansi(f.read().decode(errors="replace"))
    marks: dict[str, float] = {}
    for m in _GW_LINE.finditer(text):
        key = "listening" if m["what"].startswith("http") else "ready"
        if key not in marks:
            marks[key] = datetime.fromisoformat(m["ts"]).timestamp() * 1000
    return marks


async def gateway_presence_ts(gw: RealGateway, device_id: str, since_ms: float) -> float | None:
    """The ``ts`` of our connect presence entry as the gateway reports it (snapshot or event)."""
    offset = C.trio_offset()
    try:
        async with Operator.connect(gw.url, gw.token) as op:
            snap = (op.hello.get("snapshot") or {})
            entry = C.presence_entry({"presence": snap.get("presence")}, device_id, "connect", since_ms)
            if entry is None:
                got = await C.wait_presence(op, device_id, "connect", since_ms, timeout=10, offset=offset)
                entry = got[1] if got else None
            return float(entry["ts"]) if entry else None
    except Exception as exc:  # the cross-check must not sink the measurement
        C.log(f"presence cross-check failed: {exc!r}")
        return None


class Node:
    """One node under test: its process, how it says "connected", and its results."""

    def __init__(self, key: str, label: str, argv: list[str], env: dict[str, str], cwd: Path, ready_regex: str,
                 state_dir: Path | None):
        self.key, self.label, self.argv, self.env, self.cwd = key, label, argv, env, cwd
        self.ready_regex, self.state_dir = ready_regex, state_dir
        self.display_name = argv[argv.index("--display-name") + 1]
        self.child: C.Child | None = None
        self.device_id: str | None = None
        self.results: list[dict[str, Any]] = []

    def known_device_id(self) -> str | None:
        if self.state_dir is None:
            return None
        try:
            return json.loads((self.state_dir / "identity.json").read_text())["deviceId"]
        except (OSError, ValueError, KeyError):
            return None


KEYS = ("ready_to_connected_s", "log_ready_to_connected_s", "listening_to_connected_s",
        "listening_to_presence_ts_s", "outage_s", "agent_retries")


async def main(gw: RealGateway, args: argparse.Namespace) -> dict[str, Any]:
    with C.workdir("bench-reconnect-") as work:
        return await measure(gw, args, work)


async def measure(gw: RealGateway, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    nodes = [Node("ours", "node-agent", C.agent_argv(gw.url, work / "ours" / "state", "bench-reconnect"),
                  C.agent_env(work / "ours" / "home", gw.token), work, r"connected to ws://", work / "ours" / "state")]
    if args.peer:
        nodes.append(Node("peer", "openclaw node run", C.peer_argv(gw, "bench-reconnect-peer"),
                          C.peer_env(gw, work / "peer"), work / "peer", r"node host gateway connected", None))
    starts: list[float] = []
    async with trio.open_nursery() as nursery:
        try:
            async with Operator.connect(gw.url, gw.token) as op:
                for node in nodes:
                    node.child = await C.Child.spawn(nursery, node.argv, env=node.env, cwd=node.cwd,
                                                     log_path=work / f"{node.key}.log")
                    child = node.child
                    node.device_id = await C.pair_once(op, lambda child=child: child.proc.poll() is None,
                                                       node.display_name, known_device_id=node.known_device_id,
                                                       timeout=180)
                    C.log(f"{node.label} paired as {node.device_id[:12]}…")
            for node in nodes:
                if node.state_dir is not None:
                    await C.wait_agent_status(node.state_dir, state="connected", surface="approved")
            for k in range(1, args.restarts + 1):
                await trio.sleep(args.pause)
                start_index = {node.key: len(node.child.lines) for node in nodes}
                log_offset = gw.log_path.stat().st_size
                t_stop = time.monotonic()
                wall_stop_ms = time.time() * 1000
                await trio.to_thread.run_sync(lambda: gw.restart(kill=args.kill))
                assert gw.ready_at is not None
                starts.append(gw.start_seconds or 0.0)
                marks = gateway_marks(gw, log_offset)
                for node in nodes:
                    child = node.child
                    hello_at, _line, _i = await child.wait_line(node.ready_regex, start=start_index[node.key],
                                                                timeout=90)
                    hello_wall_ms = child.wall0_ms + (hello_at - child.t0) * 1000
                    retries = sum(1 for _t, text in child.lines[start_index[node.key]:]
                                  if "retrying in" in text or "reconnect" in text)
                    gw_ts = await gateway_presence_ts(gw, node.device_id, wall_stop_ms)

                    def since(mark: str, at_ms: float | None) -> float | None:
                        return (at_ms - marks[mark]) / 1000 if at_ms is not None and mark in marks else None

                    r = {
                        "restart": k,
                        "ready_to_connected_s": hello_at - gw.ready_at,
                        "log_ready_to_connected_s": since("ready", hello_wall_ms),
                        "listening_to_connected_s": since("listening", hello_wall_ms),
                        "listening_to_presence_ts_s": since("listening", gw_ts),
                        "outage_s": hello_at - t_stop,
                        "agent_retries": retries,
                    }
                    node.results.append(r)
                    C.log(f"restart {k}, {node.label}: connected {r['ready_to_connected_s']:+.3f} s from ready_at, "
                          f"{r['listening_to_connected_s']} s after the gateway's 'http server listening', "
                          f"outage {r['outage_s']:.1f} s")
            for node in nodes:
                node.child.signal(signal.SIGTERM)
                await node.child.wait_exit(10)
        finally:
            for node in nodes:
                if node.child is not None:
                    node.child.kill_group()
            nursery.cancel_scope.cancel()
    summaries = {node.key: {key: C.summary(r[key] for r in node.results) for key in KEYS} for node in nodes}
    gw_start = C.summary(starts)
    mode = "SIGKILL" if args.kill else "SIGTERM (graceful)"
    labels = [
        ("ready_to_connected_s", "**gateway ready (RealGateway.ready_at) -> node connected**, s", "{:.3f}"),
        ("log_ready_to_connected_s", "gateway's own '[gateway] ready' log ts -> node connected, s", "{:.3f}"),
        ("listening_to_connected_s", "gateway's 'http server listening' log ts -> node connected, s", "{:.3f}"),
        ("listening_to_presence_ts_s", "same, to the gateway's presence ts for the node, s", "{:.3f}"),
        ("outage_s", "whole outage: stop begun -> node connected, s", "{:.1f}"),
        ("agent_retries", "log lines about retrying during the outage", "{:.0f}"),
    ]
    headers = ["metric"] + [n.label for n in nodes] + (["peer / ours"] if len(nodes) == 2 else [])
    rows = []
    for key, label, fmt in labels:
        row = [label] + [C.fmt_summary(summaries[n.key][key], fmt) for n in nodes]
        if len(nodes) == 2:
            row.append(C.ratio(summaries["peer"][key], summaries["ours"][key]) if key.startswith("listening") else "")
        rows.append(row)
    rows.append(["gateway restart (launch -> ready), s", C.fmt_summary(gw_start, "{:.1f}")]
                + [""] * (len(headers) - 2))
    print(f"\n## reconnect after a gateway restart ({mode}), min / median / max (n); target <= {TARGET_S} s")
    C.print_table(headers, rows)
    med = summaries["ours"]["ready_to_connected_s"]
    met = med is not None and med["median"] <= TARGET_S
    print(f"target <= {TARGET_S} s after ready: {'met' if met else 'NOT met'} (median). Negative = back before the "
          "gateway logged ready: it accepts nodes while its channels and sidecars are still starting.")
    print(f"load average: {C.machine_info()['loadavg']} (2-core machine; other work adds noise)")
    return {"mode": mode, "target_s": TARGET_S, "gateway_start_s": gw_start, "machine": C.machine_info(),
            **{node.key: {**summaries[node.key], "restarts": node.results} for node in nodes}}


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--restarts", type=int, default=5)
    p.add_argument("--kill", action="store_true", help="SIGKILL the gateway instead of a graceful stop")
    p.add_argument("--pause", type=float, default=3.0, help="connected time before each restart, s")
    p.add_argument("--peer", action="store_true", help="also run `openclaw node run` through the same restarts")
    arguments = p.parse_args()
    C.require_netns()
    gateway = RealGateway(auto_approve_local=True)
    C.log("starting the gateway")
    try:
        gateway.start()
        C.log(f"gateway ready in {gateway.start_seconds:.1f} s")
        C.emit_json("reconnect", trio.run(main, gateway, arguments))
    finally:
        gateway.close()
