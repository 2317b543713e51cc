"""MCP tools through the real gateway: call round trip, the agent's memory, start to published.

    scripts/in-netns .venv/bin/python bench/tools.py                      # 200 calls, 5 starts
    scripts/in-netns .venv/bin/python bench/tools.py --calls 50 --starts 2   # quick

Setup: a real gateway (RealGateway, ``autoApproveLocal`` on) and the real ``node-agent run``
(subprocess, paired once; its node surface approved by the operator) configured with two stdio
MCP servers from PyPI: ``mcp-server-time`` and ``mcp-server-git`` (on a throwaway repository).

1. Round trip: an operator socket calls ``node.invoke mcp.tools.call.v1 {server: "time", tool:
   "get_current_time"}`` ``--calls`` times in sequence (after ``--warmup``): operator -> gateway
   -> node-agent -> MCP server (stdio JSON-RPC) -> back. p50/p90/p99/max. For reference: the
   same operator's ``node.invoke device.info`` (the invoke path without MCP), and the agent's own
   account of the MCP leg (its ``MCP tool call ... in N ms`` log lines).
2. Memory: RSS of the agent process alone (not its MCP servers: they are separate processes,
   reported separately) after ``--settle`` seconds idle with both servers up; for comparison the
   same agent started without ``[mcp]``.
3. Start -> tools published: the paired agent stopped and started ``--starts`` times; from the
   spawn to ``hello-ok`` (the agent's "connected to" line) and to the moment the *gateway's own
   view* (operator ``node.describe`` -> ``nodePluginTools``, polled every 50 ms) holds every tool
   of both servers. Includes the MCP SDK's import (logged by the agent; it waits for hello-ok)
   and both servers' start.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import _common as C  # noqa: E402

EXPECTED_TIME_TOOLS = {"time_get_current_time", "time_convert_time"}


def write_config(work: Path, repo: Path, *, with_tools: bool) -> Path:
    path = work / ("tools.toml" if with_tools else "plain.toml")
    text = ""
    if with_tools:
        text = (f'[[mcp.servers]]\nname = "time"\ncommand = [{json.dumps(str(C.VENV_BIN / "mcp-server-time"))}, '
                f'"--local-timezone", "UTC"]\n\n'
                f'[[mcp.servers]]\nname = "git"\ncommand = [{json.dumps(str(C.VENV_BIN / "mcp-server-git"))}, '
                f'"--repository", {json.dumps(str(repo))}]\n')
    path.write_text(text)
    return path


def make_repo(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    (path / "README").write_text("bench\n")
    git = ["git", "-C", str(path), "-c", "user.name=Bench", "-c", "user.email=bench@example.invalid"]
    subprocess.run([*git, "add", "README"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "bench"], check=True)
    return path


async def described(op: Any, device_id: str) -> set[str]:
    reply = await op.call("node.describe", {"nodeId": device_id})
    return {t["name"] for t in reply.get("nodePluginTools") or []}


async def run(gw: Any, args: argparse.Namespace) -> dict[str, Any]:
    import trio

    from tests.support.operator import Operator

    out: dict[str, Any] = {}
    with C.workdir("bench-tools-") as work:
        state = work / "state"
        repo = make_repo(work / "repo")
        tools_cfg = write_config(work, repo, with_tools=True)
        plain_cfg = write_config(work, repo, with_tools=False)
        env = C.agent_env(work / "home", gw.token)
        argv = C.agent_argv(gw.url, state, "bench-tools", "--config", str(tools_cfg))
        async with Operator.connect(gw.url, gw.token) as op, trio.open_nursery() as nursery:
            child = await C.Child.spawn(nursery, argv, env=env, cwd=work, log_path=work / "agent.log")
            try:
                device_id = await C.pair_once(op, lambda: child.proc.poll() is None, "bench-tools",
                                              known_device_id=C.identity_reader(state))
                C.log("paired; waiting for the gateway to hold both servers' tools")
                expected = await wait_published(op, device_id, child, timeout=180)
                out["published_tools"] = len(expected)

                # 1. round trip
                params = {"server": "time", "tool": "get_current_time", "arguments": {"timezone": "UTC"}}
                for _ in range(args.warmup):
                    await op.invoke(device_id, "mcp.tools.call.v1", params, timeout_ms=30000)
                start_line = len(child.lines)
                lat = []
                for _ in range(args.calls):
                    t0 = time.monotonic()
                    res = await op.invoke(device_id, "mcp.tools.call.v1", params, timeout_ms=30000)
                    lat.append(time.monotonic() - t0)
                    assert res["payload"]["structuredContent"]["timezone"] == "UTC"
                ref = []
                for _ in range(args.calls):
                    t0 = time.monotonic()
                    await op.invoke(device_id, "device.info", {}, timeout_ms=10000)
                    ref.append(time.monotonic() - t0)
                await trio.sleep(0.5)
                mcp_leg = [float(m.group(1)) for _, line in child.lines[start_line:]
                           if (m := re.search(r"MCP tool call time/get_current_time: ok in (\d+) ms", line))]
                ms, ref_ms = [x * 1000 for x in lat], [x * 1000 for x in ref]
                out["round_trip"] = {
                    "calls": len(ms), "p50_ms": C.percentile(ms, 50), "p90_ms": C.percentile(ms, 90),
                    "p99_ms": C.percentile(ms, 99), "max_ms": max(ms), "min_ms": min(ms),
                    "device_info_p50_ms": C.percentile(ref_ms, 50), "device_info_p99_ms": C.percentile(ref_ms, 99),
                    "agent_mcp_leg_p50_ms": C.percentile(mcp_leg, 50) if mcp_leg else None,
                    "agent_mcp_leg_p99_ms": C.percentile(mcp_leg, 99) if mcp_leg else None}

                # 2. memory, with both servers up and idle
                await trio.sleep(args.settle)
                detail = C.tree_detail(child.pid)
                out["rss_with_tools"] = {"agent_mib": C.rss_bytes(child.pid) / C.MIB,
                                         "agent_pss_mib": C.pss_bytes(child.pid) / C.MIB,
                                         "tree_mib": detail["rss"] / C.MIB, "processes": len(C.tree_pids(child.pid))}
                child.signal(signal.SIGTERM)
                await child.wait_exit(15)
            finally:
                child.kill_group()

            # 3. start -> tools published (the paired agent, restarted)
            starts = []
            for i in range(args.starts):
                child = await C.Child.spawn(nursery, argv, env=env, cwd=work, log_path=work / f"start-{i}.log")
                try:
                    hello = await child.wait_line(r"connected to ", timeout=60)
                    t_published = await wait_published(op, device_id, child, expected=expected, timeout=180)
                    sdk = child.find_line(r"MCP SDK loaded in ([\d.]+) s")
                    starts.append({"hello_s": hello[0] - child.t0, "published_s": t_published - child.t0,
                                   "sdk_import_s": float(re.search(r"in ([\d.]+) s", sdk[1]).group(1)) if sdk else None})
                    C.log(f"start {i + 1}: hello-ok {starts[-1]['hello_s']:.2f} s, tools at the gateway "
                          f"{starts[-1]['published_s']:.2f} s")
                    child.signal(signal.SIGTERM)
                    await child.wait_exit(15)
                finally:
                    child.kill_group()
                # The gateway drops a node's tools when it disconnects: wait for that, so the next
                # start measures a publication and not a leftover.
                with trio.fail_after(30):
                    while await described(op, device_id):
                        await trio.sleep(0.1)
            out["starts"] = starts

            # 2b. the same agent without [mcp], for comparison
            child = await C.Child.spawn(nursery, C.agent_argv(gw.url, state, "bench-tools", "--config",
                                                              str(plain_cfg)), env=env, cwd=work,
                                        log_path=work / "plain.log")
            try:
                hello = await child.wait_line(r"connected to ", timeout=60)
                out["plain_hello_s"] = hello[0] - child.t0
                await trio.sleep(args.settle)
                out["rss_without_tools"] = {"agent_mib": C.rss_bytes(child.pid) / C.MIB,
                                            "agent_pss_mib": C.pss_bytes(child.pid) / C.MIB}
                child.signal(signal.SIGTERM)
                await child.wait_exit(15)
            finally:
                child.kill_group()
            nursery.cancel_scope.cancel()
    return out


async def wait_published(op: Any, device_id: str, child: Any, *, expected: set[str] | None = None,
                         timeout: float = 120.0) -> Any:
    """Poll the gateway's view until it holds ``expected`` (or, the first time, both servers' tools:
    the time tools and at least one git tool). Returns the names (first time) or the monotonic time."""
    import trio

    with trio.fail_after(timeout):
        while True:
            if child.proc.poll() is not None:
                raise RuntimeError("the agent exited")
            names = await described(op, device_id)
            now = time.monotonic()
            if expected is None and EXPECTED_TIME_TOOLS <= names and any(n.startswith("git_") for n in names):
                return names
            if expected is not None and names >= expected:
                return now
            await trio.sleep(0.05)


def report(out: dict[str, Any]) -> None:
    rt = out["round_trip"]
    print(f"\n## mcp.tools.call.v1 round trip through the real gateway ({rt['calls']} sequential calls of "
          "mcp-server-time's get_current_time)")
    C.print_table(["path", "p50 ms", "p90 ms", "p99 ms", "max ms"], [
        ["operator -> gateway -> node-agent -> mcp-server-time -> back", f"{rt['p50_ms']:.2f}", f"{rt['p90_ms']:.2f}",
         f"{rt['p99_ms']:.2f}", f"{rt['max_ms']:.2f}"],
        ["reference: node.invoke device.info (no MCP)", f"{rt['device_info_p50_ms']:.2f}", "",
         f"{rt['device_info_p99_ms']:.2f}", ""],
        ["the agent's MCP leg (its log, whole ms)", f"{rt['agent_mcp_leg_p50_ms']}", "",
         f"{rt['agent_mcp_leg_p99_ms']}", ""],
    ])
    with_tools, without = out["rss_with_tools"], out["rss_without_tools"]
    print(f"\n## agent memory ({out['published_tools']} tools from 2 servers published)")
    C.print_table(["", "agent RSS MiB", "agent PSS MiB", "whole tree RSS MiB (agent + servers)"], [
        ["with mcp-server-time + mcp-server-git", f"{with_tools['agent_mib']:.1f}",
         f"{with_tools['agent_pss_mib']:.1f}", f"{with_tools['tree_mib']:.1f} ({with_tools['processes']} processes)"],
        ["same agent, no [mcp]", f"{without['agent_mib']:.1f}", f"{without['agent_pss_mib']:.1f}", ""],
    ])
    starts = out["starts"]
    hello = C.summary(s["hello_s"] for s in starts)
    published = C.summary(s["published_s"] for s in starts)
    sdk = C.summary(s["sdk_import_s"] for s in starts)
    print("\n## start -> tools published (paired agent restarted; min / median / max, n)")
    C.print_table(["milestone", "seconds after spawn"], [
        ["hello-ok", C.fmt_summary(hello, "{:.2f}")],
        ["hello-ok of the same agent without [mcp] (one start)", f"{out['plain_hello_s']:.2f}"],
        ["MCP SDK import (in a worker thread, after start)", C.fmt_summary(sdk, "{:.2f}")],
        ["the gateway's node.describe holds every tool", C.fmt_summary(published, "{:.2f}")],
    ])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--calls", type=int, default=200)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--starts", type=int, default=5)
    p.add_argument("--settle", type=float, default=10.0, help="idle seconds before reading RSS")
    args = p.parse_args()
    import trio

    from tests.support.real_gateway import RealGateway

    C.require_netns()
    gw = RealGateway(auto_approve_local=True)
    C.log("starting the gateway")
    try:
        gw.start()
        out = trio.run(run, gw, args)
    finally:
        gw.close()
    out["machine"] = C.machine_info()
    report(out)
    print(f"\nload average: {out['machine']['loadavg']} (2-core machine; other work adds noise)")
    C.emit_json("tools", out)


if __name__ == "__main__":
    sys.exit(main())
