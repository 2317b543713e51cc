"""``system.run ["true"]`` through the real gateway: node-agent vs ``openclaw node run``, and leaks.

    scripts/in-netns .venv/bin/python bench/exec_roundtrip.py                  # 500 calls each + 100 concurrent
    scripts/in-netns .venv/bin/python bench/exec_roundtrip.py --calls 100 --concurrent 20   # quick

Part 1, latency: one real gateway (``autoApproveLocal`` on), the real ``node-agent run`` and the
real ``openclaw node run`` (both subprocesses, paired once), both with the same approvals
document set through ``exec.approvals.node.set`` (``allowlist`` / ``on-miss``, ``*`` allows
``/usr/bin/true``), so ``true`` is allowlisted on both and nobody is asked. An operator socket
calls, interleaved, ``node.invoke system.run {command: ["true"]}`` on ours, the same on the peer,
and ``device.info`` on ours, ``--calls`` times each after ``--warmup``. Reported p50/p90/p99/max.
Interleaved with them, the gateway's own floor: an in-process node whose ``system.run`` answers
at once without running anything, asked ``system.run`` and ``device.info`` alike; the difference
of those two is what the gateway alone adds to a ``system.run`` (its parameter and approval
checks), which no node can take off.

Part 2, leaks: an in-process agent (same wiring as ``node-agent run``), 100 ``system.run`` calls
in flight at once (``sleep 0.2``), then the process's open fds and live Trio tasks are compared
with their values before: they must be back to baseline (printed, not asserted).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import _common as C  # noqa: E402

POLICY = {"version": 1, "defaults": {"security": "allowlist", "ask": "on-miss", "askFallback": "deny"},
          "agents": {"*": {"allowlist": [{"pattern": "/usr/bin/true"}]}}}


async def set_policy(op: Any, node_id: str) -> None:
    snap = await op.call("exec.approvals.node.get", {"nodeId": node_id})
    await op.call("exec.approvals.node.set", {"nodeId": node_id, "file": POLICY, "baseHash": snap["hash"]})


async def ready(op: Any, node_id: str, command: str, params: dict[str, Any]) -> None:
    import trio

    last: Exception | None = None
    with trio.move_on_after(60):
        while True:
            try:
                await op.invoke(node_id, command, params, timeout_ms=10000)
                return
            except Exception as exc:  # the approval may still be on its way: retry
                last = exc
                await trio.sleep(0.25)
    raise RuntimeError(f"{command} on {node_id[:12]} never succeeded: {last}")


def instant_registry() -> Any:
    """device.info as ever, and a system.run that answers ``true``'s result without running it."""
    from node_agent.agent.commands import builtin_registry

    async def instant_run(params: Any, ctx: Any) -> dict[str, Any]:
        return {"exitCode": 0, "timedOut": False, "success": True, "stdout": "", "stderr": "", "error": None}

    registry = builtin_registry()
    registry.register("system.run", instant_run, cap="system")
    return registry


async def part1(gw: Any, args: argparse.Namespace) -> dict[str, Any]:
    import trio

    from tests.interop.helpers import approve_surface, build_agent, start_agent
    from tests.support.operator import Operator

    with C.workdir("bench-exec-") as work:
        state = work / "state"
        ours_argv = C.agent_argv(gw.url, state, "bench-exec-ours")
        async with Operator.connect(gw.url, gw.token) as op, trio.open_nursery() as nursery:
            ours = await C.Child.spawn(nursery, ours_argv, env=C.agent_env(work / "home", gw.token), cwd=work,
                                       log_path=work / "agent.log")
            peer = await C.Child.spawn(nursery, C.peer_argv(gw, "bench-exec-peer"),
                                       env=C.peer_env(gw, work / "peer"), cwd=work / "peer",
                                       log_path=work / "peer.log")
            try:
                ours_id = await C.pair_once(op, lambda: ours.proc.poll() is None, "bench-exec-ours")
                peer_id = await C.pair_once(op, lambda: peer.proc.poll() is None, "bench-exec-peer", timeout=240)
                # agentId: the node host cannot record an allowlist hit without one ("approval state
                # could not be persisted"), so both get the same, as the gateway's exec tool sends.
                run = {"command": ["true"], "agentId": "main"}
                for node_id in (ours_id, peer_id):
                    await ready(op, node_id, "system.which", {"bins": ["true"]})
                    await set_policy(op, node_id)
                    await ready(op, node_id, "system.run", run)
                floor = build_agent(gw, gw.token, work / "floor", registry=instant_registry(),
                                    display_name="bench-exec-floor")
                running = await start_agent(nursery, floor)
                await running.wait_connected(60)
                await approve_surface(op, running, 60)
                floor_id = floor.identity.device_id
                await ready(op, floor_id, "system.run", run)
                calls = (("ours_run", ours_id, "system.run", run), ("peer_run", peer_id, "system.run", run),
                         ("ours_info", ours_id, "device.info", {}), ("floor_run", floor_id, "system.run", run),
                         ("floor_info", floor_id, "device.info", {}))
                for _ in range(args.warmup):
                    for _key, node_id, command, params in calls:
                        await op.invoke(node_id, command, params, timeout_ms=10000)
                lat: dict[str, list[float]] = {key: [] for key, *_ in calls}
                for _ in range(args.calls):
                    for key, node_id, command, params in calls:
                        t0 = time.perf_counter()
                        res = await op.invoke(node_id, command, params, timeout_ms=10000)
                        lat[key].append((time.perf_counter() - t0) * 1000)
                        if command == "system.run":
                            assert res["payload"]["exitCode"] == 0, res
            finally:
                for child in (ours, peer):
                    child.kill_group()
                nursery.cancel_scope.cancel()
    out = {key: {"n": len(v), "p50_ms": C.percentile(v, 50), "p90_ms": C.percentile(v, 90),
                 "p99_ms": C.percentile(v, 99), "max_ms": max(v)} for key, v in lat.items()}
    print(f"\n## system.run [\"true\"] round trip through the real gateway ({args.calls} each, interleaved, "
          f"after {args.warmup} warm-up; allowlisted on both)")
    C.print_table(["path", "p50 ms", "p90 ms", "p99 ms", "max ms"], [
        [label, f"{out[key]['p50_ms']:.2f}", f"{out[key]['p90_ms']:.2f}", f"{out[key]['p99_ms']:.2f}",
         f"{out[key]['max_ms']:.2f}"]
        for key, label in (("ours_run", "node-agent system.run"), ("peer_run", "openclaw node run system.run"),
                           ("ours_info", "node-agent device.info"),
                           ("floor_run", "floor node system.run (answers at once)"),
                           ("floor_info", "floor node device.info"))])
    gateway_s = out["floor_run"]["p50_ms"] - out["floor_info"]["p50_ms"]
    ours_s = out["ours_run"]["p50_ms"] - out["ours_info"]["p50_ms"]
    print(f"\nsystem.run minus device.info at p50: node-agent {ours_s:+.2f} ms, of which the gateway alone "
          f"(floor node) {gateway_s:+.2f} ms; node-agent's own part {ours_s - gateway_s:+.2f} ms")
    out["gap_p50_ms"] = {"ours": ours_s, "gateway_floor": gateway_s, "node_side": ours_s - gateway_s}
    return out


async def part2(gw: Any, args: argparse.Namespace) -> dict[str, Any]:
    import trio

    from node_agent.agent.commands import builtin_registry
    from node_agent.agent.status import StatusBoard
    from node_agent.config.exec import ExecSettings
    from node_agent.exec.extension import ExecExtension, build_service
    from tests.interop.helpers import approve_surface, build_agent, open_fds, start_agent, trio_tasks
    from tests.support.operator import Operator

    with C.workdir("bench-exec-leak-") as work:
        status = StatusBoard(None)
        ext = ExecExtension(build_service(work, base_env=lambda: {"PATH": "/usr/bin:/bin"},
                                          settings=ExecSettings(cwd=str(work))), status)
        ext.prepare_store()
        registry = builtin_registry()
        ext.register(registry)
        agent = build_agent(gw, gw.token, work, registry=registry, extensions=[ext], status=status,
                            display_name="bench-exec-leak")
        async with Operator.connect(gw.url, gw.token) as op, trio.open_nursery() as nursery:
            running = await start_agent(nursery, agent)
            await running.wait_connected(60)  # autoApproveLocal: the device is approved silently
            await approve_surface(op, running, 60)
            node_id = agent.identity.device_id
            await set_policy(op, node_id)
            params = {"command": ["/usr/bin/true"]}
            await ready(op, node_id, "system.run", params)
            await op.call("exec.approvals.node.set", {
                "nodeId": node_id, "baseHash": (await op.call("exec.approvals.node.get", {"nodeId": node_id}))["hash"],
                "file": {**POLICY, "agents": {"*": {"allowlist": [{"pattern": "/usr/bin/true"},
                                                                   {"pattern": "/usr/bin/sleep"}]}}}})
            slow = {"command": ["/usr/bin/sleep", "0.2"]}
            for _ in range(5):
                await op.invoke(node_id, "system.run", slow, timeout_ms=10000)
            await trio.sleep(0.5)
            fds0, tasks0 = open_fds(), trio_tasks()
            results: list[Any] = []
            t0 = time.perf_counter()

            async def one() -> None:
                results.append(await op.invoke(node_id, "system.run", slow, timeout_ms=30000))

            async with trio.open_nursery() as calls:
                for _ in range(args.concurrent):
                    calls.start_soon(one)
                peak_fds, peak_tasks = 0, 0
                while len(results) < args.concurrent:
                    peak_fds, peak_tasks = max(peak_fds, open_fds()), max(peak_tasks, trio_tasks())
                    await trio.sleep(0.01)
            wall = time.perf_counter() - t0
            await trio.sleep(0.5)
            fds1, tasks1 = open_fds(), trio_tasks()
            ok = sum(1 for r in results if r["payload"]["exitCode"] == 0)
            agent.request_stop()
            nursery.cancel_scope.cancel()
    out = {"concurrent": args.concurrent, "ok": ok, "wall_s": wall, "fds_before": fds0, "fds_peak": peak_fds,
           "fds_after": fds1, "tasks_before": tasks0, "tasks_peak": peak_tasks, "tasks_after": tasks1}
    print(f"\n## {args.concurrent} concurrent system.run [sleep 0.2] (in-process agent)")
    C.print_table(["ok", "wall s", "fds before / peak / after", "Trio tasks before / peak / after"], [
        [f"{ok}/{args.concurrent}", f"{wall:.2f}", f"{fds0} / {peak_fds} / {fds1}",
         f"{tasks0} / {peak_tasks} / {tasks1}"]])
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--calls", type=int, default=500)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--concurrent", type=int, default=100)
    args = p.parse_args()
    C.require_netns()
    import trio

    from tests.support.real_gateway import RealGateway

    gw = RealGateway(auto_approve_local=True, start_timeout=300)
    with gw:
        result = {"machine": C.machine_info(), "latency": trio.run(part1, gw, args),
                  "leaks": trio.run(part2, gw, args)}
    C.emit_json("exec_roundtrip", result)


if __name__ == "__main__":
    main()
