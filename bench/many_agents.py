"""Many agents in one process against one real gateway: connect time and memory per agent.

    scripts/in-netns .venv/bin/python bench/many_agents.py                   # N = 10, 100, 500
    scripts/in-netns .venv/bin/python bench/many_agents.py --sizes 10,100 --idle 5   # quick

Target: 500 agents at <= 2 MiB each.

One gateway (RealGateway, ``autoApproveLocal`` on so each new device pairs silently; its node
surface stays pending, which does not matter here: hello-ok is what counts). For each N, a fresh
child process (so one size's freed-but-kept heap does not flatter the next) builds N complete
:class:`~node_agent.agent.node.Agent` objects, each with its own Ed25519 identity,
``memory`` secret store and config, sharing one platform adapter, and starts them all at once in
one Trio nursery. It reports:

* connect time: start -> every agent has reached hello-ok (``status: connected``), plus the
  per-agent p50/p99 and how many connection attempts that took;
* RSS per agent: (RSS with N connected agents, ``--settle`` s after the last connect, after
  ``gc.collect()``) minus (RSS of the same process before the agents were built), divided by N;
* CPU while idle: the process's CPU time over ``--idle`` s with everyone connected (ticks every
  30 s and a presence heartbeat every 60 s per agent);
* the gateway's RSS before and after, for context.

The gateway admits at most 32 *unauthenticated* sockets per client IP at a time
(``OPENCLAW_MAX_PREAUTH_CONNECTIONS_PER_IP``, default 32; excess upgrades get HTTP 503). All our
agents share 127.0.0.1, which no real fleet does, so the budget is raised (``--preauth-budget``;
0 keeps the gateway's default and shows the agents' backoff instead). There is no separate
per-IP cap on authenticated sockets in openclaw 2026.9.6 (no ``maxWebSocketConnections`` key).
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import resource
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import _common as C  # noqa: E402

TARGET_MIB_PER_AGENT = 2.0


# --- child: N agents in this process ---------------------------------------------------------------


class Progress:
    """Event-driven bookkeeping (no polling: with 500 agents a 10 ms poll per agent would cost
    more CPU than the agents). Fed by each agent's StatusBoard listener."""

    def __init__(self, n: int) -> None:
        import trio

        self.n = n
        self.connected_at: dict[int, float] = {}
        self.ready = [trio.Event() for _ in range(n)]
        self.all_done = trio.Event()

    def connected(self, i: int) -> None:
        if i not in self.connected_at:
            self.connected_at[i] = time.monotonic()
            self._settle(i)

    def crashed(self, i: int) -> None:
        self._settle(i)

    def _settle(self, i: int) -> None:
        self.ready[i].set()
        if len(self.connected_at) + len(CRASHES) >= self.n:
            self.all_done.set()


async def wait_connected(agents: list[Any], progress: Progress, timeout: float) -> None:
    """Until every agent has reached hello-ok (or ``timeout``); progress on stderr every 5 s."""
    import collections

    import trio

    t0 = time.monotonic()
    connected_at, n = progress.connected_at, progress.n
    with trio.move_on_after(timeout):
        while not progress.all_done.is_set():
            with trio.move_on_after(5):
                await progress.all_done.wait()
            if not progress.all_done.is_set():
                states = collections.Counter(a.status.current.state.value for a in agents)
                errors = collections.Counter(str(a.status.current.last_error)[:80] for a in agents
                                             if a.status.current.state.value != "connected")
                C.log(f"  {time.monotonic() - t0:5.0f} s: {len(connected_at)}/{n} connected; states "
                      f"{dict(states)}; attempts {sum(a.connections for a in agents)}; "
                      f"top errors {errors.most_common(2)}")


#: Agents whose run() raised (an agent bug or a library error that escaped it): index -> what.
CRASHES: dict[int, str] = {}


async def guarded_run(i: int, agent: Any, progress: Progress) -> None:
    """agent.run(), but a crash is recorded instead of taking the other N-1 agents down with it
    (in a real deployment each agent is its own process and systemd would restart it)."""
    try:
        await agent.run()
    except Exception as exc:  # noqa: BLE001 - recorded and reported
        leaf = exc
        while isinstance(leaf, BaseExceptionGroup) and leaf.exceptions:
            leaf = leaf.exceptions[0]
        CRASHES[i] = f"{type(leaf).__module__}.{type(leaf).__name__}: {str(leaf)[:120]}"
        C.log(f"agent {i} crashed: {CRASHES[i]}")
        progress.crashed(i)


async def launch(nursery: Any, agents: list[Any], progress: Progress, limit: int) -> None:
    """Start every agent; with ``limit`` > 0, at most ``limit`` of them still short of hello-ok
    at a time (an agent frees its slot on hello-ok, or after 20 s). 0 = all at once."""
    import trio

    if limit <= 0:
        for i, agent in enumerate(agents):
            nursery.start_soon(guarded_run, i, agent, progress)
        return
    slots = trio.Semaphore(limit)

    async def one(i: int, agent: Any) -> None:
        nursery.start_soon(guarded_run, i, agent, progress)
        with trio.move_on_after(20):
            await progress.ready[i].wait()
        slots.release()

    for i, agent in enumerate(agents):
        await slots.acquire()
        nursery.start_soon(one, i, agent)


async def run_child(args: argparse.Namespace) -> dict[str, Any]:
    import trio

    from node_agent import __version__  # noqa: F401  (the whole agent stack is imported up front)
    from node_agent.adapters import select_adapter
    from node_agent.agent.node import Agent
    from node_agent.agent.status import StatusBoard
    from node_agent.config import Config
    from node_agent.identity import DeviceIdentity, IdentityRecord
    from node_agent.secret import Secret
    from node_agent.secrets import MemoryStore
    from node_agent.transport import open_transport  # noqa: F401

    token = Secret(Path(args.token_file).read_text().strip())
    adapter = select_adapter("linux")
    state_dir = Path(tempfile.gettempdir()) / "node-agent-bench-unused"  # memory stores: nothing is written
    n = args.child
    gc.collect()
    await trio.sleep(0.2)
    rss_before = C.self_rss()

    progress = Progress(n)
    t_build = time.monotonic()
    identities = []
    for i in range(n):
        identity = DeviceIdentity.generate()
        record = IdentityRecord(device_id=identity.device_id, public_key=identity.public_key,
                                instance_id=f"bench-{os.getpid()}-{i}", platform=adapter.platform,
                                device_family=adapter.device_family, created_at_ms=int(time.time() * 1000))
        config = Config(gateway_url=args.url, gateway_url_source="flag", shared_token=token,
                        display_name=f"bench-many-{n}-{i}", state_dir=state_dir, secret_backend="memory")
        identities.append((identity, record, config, MemoryStore()))

    def build_agents() -> list[Agent]:
        nonlocal progress
        progress = Progress(n)
        built = []
        for i, (identity, record, config, store) in enumerate(identities):
            status = StatusBoard(None)

            def on_status(snapshot: dict[str, Any], i: int = i) -> None:
                if snapshot.get("state") == "connected":
                    progress.connected(i)

            status.subscribe(on_status)
            built.append(Agent(config, store=store, identity=identity, record=record, adapter=adapter,
                               status=status))
        return built

    agents = build_agents()
    build_s = time.monotonic() - t_build
    gc.collect()
    rss_built = C.self_rss()

    result: dict[str, Any] = {"n": n}

    def cpu_now() -> float:
        ru = resource.getrusage(resource.RUSAGE_SELF)
        return ru.ru_utime + ru.ru_stime

    async with trio.open_nursery() as nursery:
        cpu0 = cpu_now()
        t0 = time.monotonic()
        nursery.start_soon(launch, nursery, agents, progress, args.max_handshakes)
        await wait_connected(agents, progress, args.connect_timeout)
        connected_at = progress.connected_at
        t_all = time.monotonic()
        cpu_connect = cpu_now() - cpu0
        lat = sorted(t - t0 for t in connected_at.values())
        result.update({
            "crashed": dict(CRASHES),
            "cpu_during_connect_s": cpu_connect,
            "connected": len(connected_at),
            "all_connected_s": (max(connected_at.values()) - t0) if len(connected_at) == n else None,
            "connect_p50_s": C.percentile(lat, 50) if lat else None,
            "connect_p99_s": C.percentile(lat, 99) if lat else None,
            "connection_attempts": sum(a.connections for a in agents),
            "gave_up_after_s": None if len(connected_at) == n else t_all - t0,
        })
        await trio.sleep(args.settle)
        gc.collect()
        rss_connected = C.self_rss()
        t_cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        idle_t0 = time.monotonic()
        await trio.sleep(args.idle)
        t_cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        idle_wall = time.monotonic() - idle_t0
        cpu = (t_cpu1.ru_utime - t_cpu0.ru_utime) + (t_cpu1.ru_stime - t_cpu0.ru_stime)
        still = sum(1 for a in agents if a.status.current.state.value == "connected")
        result.update({
            "rss_before_mib": rss_before / C.MIB,
            "rss_built_mib": rss_built / C.MIB,
            "rss_connected_mib": rss_connected / C.MIB,
            "per_agent_mib": (rss_connected - rss_before) / n / C.MIB,
            "per_agent_built_mib": (rss_built - rss_before) / n / C.MIB,
            "build_s": build_s,
            "idle_cpu_s": cpu, "idle_window_s": idle_wall,
            "idle_cpu_pct_of_core": 100 * cpu / idle_wall,
            "connected_after_idle": still,
            "threads": len(os.listdir("/proc/self/task")),
            "fds": len(os.listdir("/proc/self/fd")),
        })
        t_stop = time.monotonic()
        for agent in agents:
            agent.request_stop()
    result["stop_all_s"] = time.monotonic() - t_stop
    # Crashes while stopping count too (a close frame crossing a gateway ping can hit
    # trio-websocket's pong-while-closing bug).
    result["crashed_incl_stop"] = dict(CRASHES)
    if args.rounds > 1:
        # Round 2: the same devices, now paired (device tokens in their stores): a fleet coming back.
        await trio.sleep(2)
        CRASHES.clear()
        agents = build_agents()
        async with trio.open_nursery() as nursery:
            cpu0 = cpu_now()
            t0 = time.monotonic()
            nursery.start_soon(launch, nursery, agents, progress, args.max_handshakes_paired)
            await wait_connected(agents, progress, args.connect_timeout)
            connected_at = progress.connected_at
            lat = sorted(t - t0 for t in connected_at.values())
            result["paired"] = {
                "connected": len(connected_at),
                "all_connected_s": (max(connected_at.values()) - t0) if len(connected_at) == n else None,
                "connect_p50_s": C.percentile(lat, 50) if lat else None,
                "connect_p99_s": C.percentile(lat, 99) if lat else None,
                "connection_attempts": sum(a.connections for a in agents),
                "cpu_during_connect_s": cpu_now() - cpu0,
                "crashed": dict(CRASHES),
            }
            for agent in agents:
                agent.request_stop()
        result["paired"]["crashed_incl_stop"] = dict(CRASHES)
    return result


def child_main(args: argparse.Namespace) -> None:
    import trio

    logging.basicConfig(level=logging.ERROR, format="%(name)s: %(message)s")
    res = trio.run(run_child, args)
    print(json.dumps(res), flush=True)


# --- parent: the gateway and one child per size --------------------------------------------------------


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="10,100,500", help="comma-separated agent counts (10,100,500)")
    p.add_argument("--settle", type=float, default=5.0, help="RSS is read this long after the last connect")
    p.add_argument("--idle", type=float, default=30.0, help="idle CPU window with everyone connected, s")
    p.add_argument("--connect-timeout", type=float, default=300.0)
    p.add_argument("--max-handshakes", type=int, default=32,
                   help="new devices: at most this many agents short of hello-ok at once (32; 0 = all at once)")
    p.add_argument("--max-handshakes-paired", type=int, default=32,
                   help="paired devices (round 2): the same limit (32; 0 = all at once, as after a gateway "
                        "restart: see the report for what that does at N=500)")
    p.add_argument("--rounds", type=int, default=2,
                   help="2 = connect again with the same, now paired, devices and time that too")
    p.add_argument("--preauth-budget", type=int, default=4096,
                   help="gateway's unauthenticated sockets per IP (0 = its default, 32)")
    p.add_argument("--child", type=int, help=argparse.SUPPRESS)
    p.add_argument("--url", help=argparse.SUPPRESS)
    p.add_argument("--token-file", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child_main(args)
        return

    from tests.support.real_gateway import RealGateway

    C.require_netns()
    extra_env = {"OPENCLAW_MAX_PREAUTH_CONNECTIONS_PER_IP": str(args.preauth_budget)} if args.preauth_budget else {}
    gw = RealGateway(auto_approve_local=True, extra_env=extra_env)
    sizes = [int(x) for x in args.sizes.split(",") if x.strip()]
    results = []
    C.log("starting the gateway")
    try:
        gw.start()
        C.log(f"gateway ready in {gw.start_seconds:.1f} s")
        token_file = gw.run_dir / "bench-token"
        token_file.write_text(gw.token)
        token_file.chmod(0o600)
        for n in sizes:
            gw_before_detail = C.tree_detail(gw.pid) if gw.pid else None
            gw_before = gw_before_detail["rss"] / C.MIB if gw_before_detail else None
            C.log(f"{n} agents ...")
            argv = [str(C.PYTHON), str(Path(__file__).resolve()), "--child", str(n), "--url", gw.url,
                    "--token-file", str(token_file), "--settle", str(args.settle), "--idle", str(args.idle),
                    "--connect-timeout", str(args.connect_timeout), "--rounds", str(args.rounds),
                    "--max-handshakes", str(args.max_handshakes),
                    "--max-handshakes-paired", str(args.max_handshakes_paired)]
            try:
                done = subprocess.run(argv, stdout=subprocess.PIPE, text=True, check=False,
                                      timeout=args.rounds * args.connect_timeout + args.settle + args.idle + 120)
            except subprocess.TimeoutExpired:
                C.log(f"child for {n} timed out")
                results.append({"n": n, "error": "timed out"})
                continue
            lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
            if done.returncode != 0 or not lines:
                C.log(f"child for {n} failed ({done.returncode})")
                results.append({"n": n, "error": f"exit {done.returncode}"})
                continue
            res = json.loads(lines[-1])
            res["gateway_rss_before_mib"] = gw_before
            gw_after_detail = C.tree_detail(gw.pid) if gw.pid else None
            res["gateway_rss_after_mib"] = gw_after_detail["rss"] / C.MIB if gw_after_detail else None
            if gw_before_detail and gw_after_detail:
                res["gateway_cpu_s"] = (gw_after_detail["cpu_ticks"] - gw_before_detail["cpu_ticks"]) / C.HZ
            results.append(res)
            C.log(f"{n} agents: all connected in {res.get('all_connected_s')} s (our CPU "
                  f"{res.get('cpu_during_connect_s', 0):.2f} s), {res.get('per_agent_mib', 0):.3f} MiB per agent, "
                  f"idle CPU {res.get('idle_cpu_pct_of_core', 0):.2f} % of a core; paired reconnect: "
                  f"{(res.get('paired') or {}).get('all_connected_s')} s")
            time.sleep(2)
    finally:
        gw.close()

    def paired_cell(p: dict[str, Any] | None) -> str:
        if not p:
            return "-"
        if p["all_connected_s"] is None:
            return f"{p['connected']} connected" + (f", {len(p['crashed'])} crashed" if p.get("crashed") else "")
        return (f"{p['all_connected_s']:.2f} (p50 {p['connect_p50_s']:.2f}, {p['connection_attempts']} attempts, "
                f"CPU {p['cpu_during_connect_s']:.2f})")

    rows = []
    for r in results:
        if "error" in r:
            rows.append([r["n"], "failed"] + [""] * 10)
            continue
        allc = r["all_connected_s"]
        rows.append([
            r["n"],
            (f"{allc:.2f}" if allc is not None else f"{r['connected']}/{r['n']} in {r['gave_up_after_s']:.0f} s")
            + (f" ({len(r['crashed'])} crashed)" if r.get("crashed") else ""),
            f"{r['connect_p50_s']:.2f} / {r['connect_p99_s']:.2f}" if r["connect_p50_s"] is not None else "-",
            r["connection_attempts"],
            f"{r['cpu_during_connect_s']:.2f}",
            paired_cell(r.get("paired")),
            f"{r['rss_before_mib']:.1f} -> {r['rss_connected_mib']:.1f}",
            f"**{r['per_agent_mib']:.3f}**",
            "yes" if r["per_agent_mib"] <= TARGET_MIB_PER_AGENT else "NO",
            f"{r['idle_cpu_pct_of_core']:.2f} % ({r['idle_cpu_s']:.2f} s / {r['idle_window_s']:.0f} s)",
            f"{r['gateway_rss_before_mib']:.0f} -> {r['gateway_rss_after_mib']:.0f}",
            str(len(r.get("crashed_incl_stop") or {}) + len((r.get("paired") or {}).get("crashed_incl_stop") or {})),
        ])
    budget = args.preauth_budget or "default (32)"
    limit = lambda k: f"at most {k} in handshake at once" if k > 0 else "all at once"  # noqa: E731
    print(f"\n## N agents in one process, one gateway (preauth budget per IP: {budget}; new devices: "
          f"{limit(args.max_handshakes)}; paired: {limit(args.max_handshakes_paired)}); "
          f"target <= {TARGET_MIB_PER_AGENT} MiB per agent at 500")
    C.print_table(["N", "all connected (new devices), s", "per-agent p50 / p99, s", "connect attempts",
                   "our CPU during connect, s", "all connected again (paired), s", "process RSS, MiB",
                   "RSS per agent, MiB", "<= 2 MiB", f"idle CPU over {args.idle:g} s", "gateway RSS, MiB",
                   "agents crashed (incl. stop)"], rows)
    print(f"load average: {C.machine_info()['loadavg']} (2-core machine; other work adds noise)")
    C.emit_json("many_agents", {"machine": C.machine_info(), "preauth_budget": args.preauth_budget,
                                "target_mib_per_agent": TARGET_MIB_PER_AGENT, "sizes": results})


if __name__ == "__main__":
    main()
