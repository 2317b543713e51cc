"""Start-up, idle and shutdown cost of ``node-agent run``, side by side with the floor (a bare
Python client that only does the signed connect, ``bench/bare_client.py``, with ``--bare``) and
OpenClaw's own ``openclaw node run`` (``--peer``), measured the way
shared/reference/baseline-node-host.md measured them, in one interleaved run on one gateway.

    scripts/in-netns .venv/bin/python bench/start_to_hello.py                     # ours, 10 runs
    scripts/in-netns .venv/bin/python bench/start_to_hello.py --bare --peer       # side by side
    scripts/in-netns .venv/bin/python bench/start_to_hello.py --runs 3 --settle 3 --idle 5   # quick

Python runs with bytecode caching on (``PYTHONDONTWRITEBYTECODE`` is removed from the children's
environment: some shells and CI images set it, and then every start recompiles every module).

It starts its own real gateway (RealGateway: fresh state, token auth, ``autoApproveLocal`` on as in
the baseline), pairs each node once (device approval if asked, then node-surface approval, through
an operator socket),
stops it, and then for each run:

* t=0 just before the fork of the real console script;
* connected = an operator socket receives ``presence`` with our device id, ``reason:"connect"``
  and a gateway ``ts`` >= the spawn (also recorded: the gateway's own ``ts``, and the node's own
  "connected" log line, which for node-agent marks hello-ok);
* RSS and CPU summed over the spawned command's process tree, sampled every ``--sample-ms``
  until connect + 5 s, then every 0.5 s; peak RSS during start-up is the sampled maximum up to
  connect + 5 s (plus the exact VmHWM sum of the survivors);
* at connect + ``--settle`` s: RSS, PSS, CPU ticks and per-thread schedstat; again ``--idle`` s
  later (idle CPU = the difference);
* SIGTERM -> process exit, and SIGTERM -> the gateway's ``presence`` with ``reason:"disconnect"``;
* wake-ups over the idle window: the context switches of every thread (a sleeping thread that
  wakes switches once), scaled to a minute.

Runs alternate between the two nodes so machine noise hits both alike. Prints a markdown table
(min / median / max (n), and peer/ours ratio of medians) and one JSON line. Asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import signal
import time
from pathlib import Path
from typing import Any

import _common as C  # noqa: E402  (puts the repo root on sys.path)
import trio  # noqa: E402

from tests.support.operator import Operator  # noqa: E402
from tests.support.real_gateway import RealGateway  # noqa: E402

FAST_WINDOW_S = 5.0


class Subject:
    def __init__(self, key: str, label: str, argv: list[str], env: dict[str, str], cwd: Path,
                 ready_regex: str, state_dir: Path):
        self.key, self.label, self.argv, self.env, self.cwd = key, label, argv, env, cwd
        self.ready_regex = ready_regex
        self.state_dir = state_dir
        self.device_id: str | None = None
        self.runs: list[dict[str, Any]] = []
        self.display_name = argv[argv.index("--display-name") + 1]

    def known_device_id(self) -> str | None:
        try:
            return json.loads((self.state_dir / "identity.json").read_text())["deviceId"]
        except (OSError, ValueError, KeyError):
            return None


async def pair(op: Operator, subj: Subject, nursery: trio.Nursery, logs: Path) -> None:
    C.log(f"pairing {subj.label} ({subj.display_name})")
    child = await C.Child.spawn(nursery, subj.argv, env=subj.env, cwd=subj.cwd,
                                log_path=logs / f"{subj.key}-pair.log")
    try:
        subj.device_id = await C.pair_once(op, lambda: child.proc.poll() is None, subj.display_name,
                                           known_device_id=subj.known_device_id, timeout=180)
        # Let the node notice the approval (node.pair.resolved) before we stop it.
        if subj.key == "ours":
            await C.wait_agent_status(subj.state_dir, state="connected", surface="approved")
        await trio.sleep(1.0)
        child.signal(signal.SIGTERM)
        await child.wait_exit(35)
    finally:
        child.kill_group()
    C.log(f"{subj.label} paired as {subj.device_id[:12]}…")


async def one_run(op: Operator, subj: Subject, index: int, args: argparse.Namespace, offset: float,
                  nursery: trio.Nursery, logs: Path) -> dict[str, Any]:
    assert subj.device_id is not None
    samples: list[tuple[float, int, int, int]] = []
    seen: dict[int, str] = {}
    fast = True
    stop = trio.Event()
    child = await C.Child.spawn(nursery, subj.argv, env=subj.env, cwd=subj.cwd,
                                log_path=logs / f"{subj.key}-run{index}.log")
    t0 = child.t0

    async def sampler() -> None:
        while not stop.is_set():
            s = C.tree_sample(child.pid)
            samples.append((time.monotonic() - t0, s["rss"], s["cpu_ticks"], len(s["pids"])))
            for p in s["pids"]:
                if p not in seen:
                    seen[p] = C.cmdline(p) or C.comm(p)
            with trio.move_on_after(args.sample_ms / 1000 if fast else 0.5):
                await stop.wait()

    nursery.start_soon(sampler)
    run: dict[str, Any] = {"subject": subj.key, "run": index}
    try:
        got = await C.wait_presence(op, subj.device_id, "connect", child.wall0_ms,
                                    timeout=args.connect_timeout, offset=offset)
        if got is None:
            raise RuntimeError(f"{subj.label} did not connect within {args.connect_timeout} s; "
                               f"output:\n{child.tail()}")
        connected_at, entry = got
        at_connect = C.tree_sample(child.pid)
        run["connect_s"] = connected_at - t0
        run["connect_gateway_ts_s"] = (entry["ts"] - child.wall0_ms) / 1000
        run["cpu_to_connect_s"] = at_connect["cpu_ticks"] / C.HZ
        try:
            hello_at, _text, _ = await child.wait_line(subj.ready_regex, timeout=10)
            run["hello_log_s"] = hello_at - t0
        except (trio.TooSlowError, RuntimeError):
            run["hello_log_s"] = None

        await trio.sleep_until(connected_at + offset + min(FAST_WINDOW_S, max(args.settle, 0.5)))
        fast = False
        detail = C.tree_detail(child.pid)
        run["peak_rss_start_mib"] = max(s[1] for s in samples) / C.MIB
        run["hwm_sum_mib"] = detail["hwm"] / C.MIB
        if args.settle > 0 or args.idle > 0:
            await trio.sleep_until(connected_at + offset + max(args.settle, FAST_WINDOW_S))
            d1 = C.tree_detail(child.pid)
            run["idle_rss_mib"] = d1["rss"] / C.MIB
            run["idle_pss_mib"] = d1["pss"] / C.MIB
            run["idle_threads"] = d1["threads"]
            run["live_procs"] = d1["nprocs"]
            if args.idle > 0:
                await trio.sleep(args.idle)
                d2 = C.tree_detail(child.pid)
                run["idle_cpu_ticks_s"] = (d2["cpu_ticks"] - d1["cpu_ticks"]) / C.HZ
                run["idle_cpu_sched_s"] = C.sched_delta_ns(d1["sched_threads"], d2["sched_threads"]) / 1e9
                run["idle_wakeups_per_min"] = (C.sched_delta_ns(d1["ctxt_threads"], d2["ctxt_threads"])
                                               * 60 / args.idle)
                run["rss_after_idle_mib"] = d2["rss"] / C.MIB
        stop.set()
        run["procs_started"] = len(seen)

        # -- stop ----------------------------------------------------------------------------
        wall_term_ms = time.time() * 1000
        t_term = time.monotonic()
        child.signal(signal.SIGTERM)
        exit_at = await child.wait_exit(35)
        run["sigterm_exit_s"] = exit_at - t_term if exit_at is not None else None
        run["exit_code"] = child.proc.returncode
        disc = await C.wait_presence(op, subj.device_id, "disconnect", wall_term_ms - 5, timeout=5, offset=offset)
        run["sigterm_disconnect_s"] = disc[0] - t_term if disc is not None else None
        run["clean_disconnect"] = disc is not None
    finally:
        stop.set()
        child.kill_group()
    run["processes"] = sorted(set(seen.values()))[:20]
    return run


METRICS: list[tuple[str, str, str, str]] = [
    # key, label, format, unit
    ("connect_s", "**start -> connected** (operator sees presence connect), s", "{:.3f}", ""),
    ("connect_gateway_ts_s", "same, by the gateway's presence ts, s", "{:.3f}", ""),
    ("hello_log_s", "start -> node's own 'connected' log line (hello-ok), s", "{:.3f}", ""),
    ("cpu_to_connect_s", "CPU seconds, start -> connected", "{:.2f}", ""),
    ("peak_rss_start_mib", "**peak RSS during start-up** (tree, sampled), MiB", "{:.1f}", ""),
    ("hwm_sum_mib", "sum of VmHWM of the survivors, MiB", "{:.1f}", ""),
    ("idle_rss_mib", "**idle RSS**, connect + settle (tree), MiB", "{:.1f}", ""),
    ("idle_pss_mib", "idle PSS, same moment, MiB", "{:.1f}", ""),
    ("rss_after_idle_mib", "RSS after the idle window, MiB", "{:.1f}", ""),
    ("idle_cpu_ticks_s", "**CPU over the idle window** (utime+stime), s", "{:.3f}", ""),
    ("idle_cpu_sched_s", "same, per-thread schedstat (ns resolution), s", "{:.4f}", ""),
    ("idle_wakeups_per_min", "wake-ups per minute idle (context switches, all threads)", "{:.0f}", ""),
    ("procs_started", "processes seen per start-up", "{:.0f}", ""),
    ("idle_threads", "threads at idle", "{:.0f}", ""),
    ("sigterm_exit_s", "SIGTERM -> exit, s", "{:.3f}", ""),
    ("sigterm_disconnect_s", "SIGTERM -> gateway presence disconnect, s", "{:.3f}", ""),
]


def report(subjects: list[Subject], args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"args": {k: v for k, v in vars(args).items() if k != "out"}, "machine": C.machine_info()}
    summaries: dict[str, dict[str, Any]] = {}
    for subj in subjects:
        summaries[subj.key] = {key: C.summary(r.get(key) for r in subj.runs) for key, *_ in METRICS}
        summaries[subj.key]["clean_disconnects"] = sum(1 for r in subj.runs if r.get("clean_disconnect"))
        summaries[subj.key]["runs"] = len(subj.runs)
        summaries[subj.key]["exit_codes"] = sorted({r.get("exit_code") for r in subj.runs}, key=str)
    out.update(summaries)
    headers = ["metric"] + [f"{s.label} min / median / max (n)" for s in subjects]
    headers += [f"{s.label} / {subjects[0].label}" for s in subjects[1:]]
    rows = []
    for key, label, fmt, unit in METRICS:
        if all(summaries[s.key][key] is None for s in subjects):
            continue
        if key in ("idle_rss_mib", "idle_pss_mib", "rss_after_idle_mib"):
            label = label.replace("settle", f"{args.settle:g} s")
        if key.startswith("idle_cpu"):
            label = label.replace("idle window", f"{args.idle:g} s idle window")
        row = [label] + [C.fmt_summary(summaries[s.key][key], fmt, unit) for s in subjects]
        row += [C.ratio(summaries[s.key][key], summaries[subjects[0].key][key]) for s in subjects[1:]]
        rows.append(row)
    rows.append(["clean disconnects seen"] + [f"{summaries[s.key]['clean_disconnects']} of "
                                               f"{summaries[s.key]['runs']}" for s in subjects]
                + [""] * (len(subjects) - 1))
    print()
    C.print_table(headers, rows)
    print(f"\nload average at the end: {C.machine_info()['loadavg']} (2-core machine; other work adds noise)")
    return out


async def main(gw: RealGateway, args: argparse.Namespace) -> None:
    with C.workdir("bench-s2h-") as work:
        await measure(gw, args, work)


async def measure(gw: RealGateway, args: argparse.Namespace, work: Path) -> None:
    offset = C.trio_offset()
    logs = Path(args.out) if args.out else work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    subjects = [Subject("ours", "node-agent", C.agent_argv(gw.url, work / "ours" / "state", "bench-ours"),
                        C.agent_env(work / "ours" / "home", gw.token), work, r"connected to ws://",
                        work / "ours" / "state")]
    if args.bare:
        (work / "bare").mkdir(parents=True, exist_ok=True)
        subjects.append(Subject("bare", "bare client", C.bare_argv(gw.url, work / "bare" / "state.json", "bench-bare"),
                                C.agent_env(work / "bare" / "home", gw.token), work, r"^connected",
                                work / "bare"))
    if args.peer:
        peer_dir = work / "peer"
        subjects.append(Subject("peer", "openclaw node run", C.peer_argv(gw, "bench-peer"),
                                C.peer_env(gw, peer_dir), peer_dir, r"node host gateway connected",
                                peer_dir / "state"))
    async with Operator.connect(gw.url, gw.token) as op, trio.open_nursery() as nursery:
        for subj in subjects:
            await pair(op, subj, nursery, logs)
        for i in range(1, args.runs + 1):
            for subj in subjects:
                await trio.sleep(args.pause)
                run = await one_run(op, subj, i, args, offset, nursery, logs)
                subj.runs.append(run)
                C.log(f"{subj.label} run {i}: connected {run['connect_s']:.3f} s, hello log "
                      f"{run['hello_log_s'] if run['hello_log_s'] is None else round(run['hello_log_s'], 3)} s, "
                      f"peak {run['peak_rss_start_mib']:.1f} MiB, idle {run.get('idle_rss_mib', 0):.1f} MiB, "
                      f"exit {run['sigterm_exit_s']}, disconnect {run['sigterm_disconnect_s']}")
                if args.out:
                    with open(logs / "runs.jsonl", "a") as f:
                        f.write(json.dumps(run) + "\n")
        nursery.cancel_scope.cancel()
    out = report(subjects, args)
    out["logs"] = str(logs) if args.out else None
    blocked = gw.blocked_egress()
    out["gateway_blocked_egress"] = sorted({f"{e.kind} {e.target}" for e in blocked})
    for subj in subjects:
        guard = subj.cwd / "blocked-egress.log" if subj.key == "peer" else None
        if guard is not None:
            out["peer_blocked_egress_lines"] = len(guard.read_text().splitlines()) if guard.exists() else 0
    C.emit_json("start_to_hello", out)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=10, help="measured starts per node (default 10)")
    p.add_argument("--peer", action="store_true", help="also measure `openclaw node run`, interleaved")
    p.add_argument("--bare", action="store_true", help="also measure the bare floor client, interleaved")
    p.add_argument("--settle", type=float, default=30.0, help="idle RSS is taken this long after connect (30)")
    p.add_argument("--idle", type=float, default=60.0, help="idle CPU window after the settle point (60; 0 = skip)")
    p.add_argument("--pause", type=float, default=2.0, help="pause between runs, s")
    p.add_argument("--sample-ms", type=float, default=15.0, help="/proc sampling period during start-up")
    p.add_argument("--connect-timeout", type=float, default=90.0)
    p.add_argument("--out", help="keep per-run logs and runs.jsonl here (default: a temp dir)")
    return p.parse_args(argv)


if __name__ == "__main__":
    arguments = parse_args()
    C.require_netns()
    # autoApproveLocal on, as in the baseline: the device pairs silently, the node surface is
    # approved through the operator (pair_once handles either setting).
    gateway = RealGateway(auto_approve_local=True)
    C.log("starting the gateway")
    try:
        gateway.start()
        C.log(f"gateway ready in {gateway.start_seconds:.1f} s at {gateway.url}")
        trio.run(main, gateway, arguments)
    finally:
        gateway.close()
