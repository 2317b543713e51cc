"""Turn the JSON lines the benchmarks print into the README's performance table.

    .venv/bin/python bench/summary.py results.jsonl        # (bench/run_all.sh calls this)

Reads every line starting with ``{"bench":`` (the last one of each kind wins) and prints one
markdown table: metric, node-agent, OpenClaw's ``openclaw node run``, ratio, target, command.
Medians unless a row says otherwise. Missing benchmarks are left out.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import _common as C  # noqa: E402

#: Targets from the issue / spine. The start-up row shows the baseline's Python floor client
#: (shared/reference/baseline-node-host.md) as the reference, not a pass/fail line.
TARGETS = {
    "start": "floor client: 0.35 s",
    "throughput": ">= 50,000 frames/s",
    "reconnect": "<= 1.5 s",
    "many": "<= 2 MiB per agent",
}


def load(path: str) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    with open(path) as f:
        for line in f:
            if line.startswith('{"bench":'):
                data = json.loads(line)
                found[data["bench"]] = data
    return found


def med(d: dict[str, Any] | None, key: str) -> float | None:
    s = (d or {}).get(key)
    return s["median"] if isinstance(s, dict) and s.get("median") is not None else None


def fmt(value: float | None, spec: str, unit: str = "") -> str:
    return "-" if value is None else f"{spec.format(value)}{unit}"


def ratio(peer: float | None, ours: float | None) -> str:
    if peer is None or ours is None or ours <= 0:
        return "-"
    r = peer / ours
    return f"{r:.0f}x" if r >= 10 else f"{r:.1f}x"


def rows_for(results: dict[str, dict[str, Any]], cmds: dict[str, str]) -> list[list[str]]:
    rows: list[list[str]] = []
    s2h = results.get("start_to_hello")
    if s2h:
        ours, peer = s2h.get("ours"), s2h.get("peer")
        n = (ours or {}).get("runs", "?")
        settle, idle = s2h["args"]["settle"], s2h["args"]["idle"]
        cmd = cmds["start_to_hello"]
        for key, label, spec, unit, target in [
            ("connect_s", f"start -> connected (gateway presence; median of {n})", "{:.2f}", " s", TARGETS["start"]),
            ("hello_log_s", "start -> hello-ok (node's own log line)", "{:.2f}", " s", ""),
            ("cpu_to_connect_s", "CPU time, start -> connected", "{:.2f}", " s", ""),
            ("peak_rss_start_mib", "peak RSS during start-up (process tree)", "{:.0f}", " MiB", ""),
            ("idle_rss_mib", f"idle RSS, {settle:g} s after connect", "{:.0f}", " MiB", ""),
            ("idle_pss_mib", f"idle PSS, {settle:g} s after connect", "{:.0f}", " MiB", ""),
            ("idle_cpu_sched_s", f"CPU over {idle:g} s idle (schedstat)", "{:.4f}", " s", ""),
            ("procs_started", "processes started per start-up", "{:.0f}", "", ""),
            ("sigterm_exit_s", "SIGTERM -> process exit", "{:.2f}", " s", ""),
            ("sigterm_disconnect_s", "SIGTERM -> gateway sees the disconnect", "{:.3f}", " s", ""),
        ]:
            o, p = med(ours, key), med(peer, key)
            if o is None and p is None:
                continue
            rows.append([label, fmt(o, spec, unit), fmt(p, spec, unit), ratio(p, o), target, cmd])
    tp = results.get("throughput")
    if tp:
        dd = tp.get("decode_dispatch", {})
        for dialect in ("openclaw", "jsonrpc"):
            mixed = (dd.get(dialect) or {}).get("mixed")
            if mixed:
                rows.append([f"decode + dispatch, {dialect} dialect (mixed frames, in process)",
                             f"{mixed['median_fps']:,.0f} frames/s", "-", "-", TARGETS["throughput"],
                             cmds["throughput"]])
        inv = tp.get("invoke_latency")
        if inv:
            rows.append([f"node.invoke device.info round trip via the gateway, p50 / p99 ({inv['invokes']} calls)",
                         f"{inv['p50_ms']:.1f} / {inv['p99_ms']:.1f} ms", "-", "-",
                         f"(gateway alone: {inv['gateway_only_p50_ms']:.1f} ms p50)", cmds["throughput"]])
    rc = results.get("reconnect")
    if rc:
        ours, peer = rc.get("ours"), rc.get("peer")
        n = (ours or {}).get("ready_to_connected_s", {}).get("n", "?")
        for key, label, target in [
            ("ready_to_connected_s", f"gateway restart: 'ready' -> node connected (median of {n}; < 0 = before ready)",
             TARGETS["reconnect"]),
            ("listening_to_connected_s", "gateway restart: listener open -> node connected", ""),
        ]:
            o, p = med(ours, key), med(peer, key)
            rows.append([label, fmt(o, "{:+.2f}", " s"), fmt(p, "{:+.2f}", " s"),
                         ratio(p, o) if key.startswith("listening") else "-", target, cmds["reconnect"]])
    ma = results.get("many_agents")
    if ma:
        for r in ma.get("sizes", []):
            if "error" in r or r.get("n") not in (max(x.get("n", 0) for x in ma["sizes"]),):
                continue
            allc = r.get("all_connected_s")
            rows.append([f"{r['n']} agents in one process: RSS per agent", f"{r['per_agent_mib']:.2f} MiB", "-", "-",
                         TARGETS["many"], cmds["many_agents"]])
            value = fmt(allc, "{:.0f}", " s")
            if allc is not None and r.get("gateway_cpu_s") is not None:
                value += f" (gateway-bound: our CPU {r['cpu_during_connect_s']:.1f} s, gateway's {r['gateway_cpu_s']:.0f} s)"
            rows.append([f"{r['n']} agents: all connected (new devices, <= 32 handshakes in flight)",
                         value, "-", "-", "", cmds["many_agents"]])
    tools = results.get("tools")
    if tools:
        rt = tools["round_trip"]
        rows.append([f"`mcp.tools.call.v1` round trip via the real gateway (mcp-server-time, {rt['calls']} calls)",
                     f"p50 {rt['p50_ms']:.1f} ms, p99 {rt['p99_ms']:.1f} ms (device.info: p50 "
                     f"{rt['device_info_p50_ms']:.1f} ms)", "-", "-", "", cmds["tools"]])
        with_tools, without = tools["rss_with_tools"], tools["rss_without_tools"]
        rows.append(["agent RSS with two MCP servers (the agent alone; PSS)",
                     f"{with_tools['agent_mib']:.1f} MiB ({with_tools['agent_pss_mib']:.1f}); without [mcp] "
                     f"{without['agent_mib']:.1f} MiB", "-", "-", "", cmds["tools"]])
        published = C.summary(s["published_s"] for s in tools["starts"])
        rows.append(["start -> the gateway holds every MCP tool (two servers)",
                     f"{fmt(published['median'] if published else None, '{:.2f}', ' s')} "
                     f"(n={published['n'] if published else 0})",
                     "-", "-", "", cmds["tools"]])
    ic = results.get("import_cost")
    if ic:
        rows.append(["python + run-path imports, spawn -> exit", fmt(med(ic, "run_path_imports_s"), "{:.2f}", " s"),
                     "-", "-", "", cmds["import_cost"]])
    return rows


DEFAULT_COMMANDS = {
    "start_to_hello": "`bench/start_to_hello.py --peer`",
    "throughput": "`bench/throughput.py`",
    "reconnect": "`bench/reconnect.py --peer`",
    "many_agents": "`bench/many_agents.py`",
    "import_cost": "`bench/import_cost.py`",
    "tools": "`bench/tools.py`",
}


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit("usage: bench/summary.py RESULTS.jsonl")
    results = load(sys.argv[1])
    rows = rows_for(results, DEFAULT_COMMANDS)
    machine = next((r.get("machine") for r in results.values() if r.get("machine")), {})
    print(f"\n<!-- generated by bench/summary.py; machine: {machine.get('cpus')} CPUs, "
          f"load {machine.get('loadavg')}, Python {machine.get('python')} -->")
    C.print_table(["metric", "node-agent", "openclaw node run", "ratio", "target", "command"], rows)
    print("\nAll commands run inside the loopback-only netns: `scripts/in-netns .venv/bin/python bench/...`, or "
          "everything at once with `bench/run_all.sh` (`--quick` for a short run).")


if __name__ == "__main__":
    main()
