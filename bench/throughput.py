"""Protocol throughput (in process, no network) and node.invoke latency (through the real gateway).

    .venv/bin/python bench/throughput.py --no-gateway                    # decode+dispatch only, anywhere
    scripts/in-netns .venv/bin/python bench/throughput.py                # + 500 invokes via the gateway
    scripts/in-netns .venv/bin/python bench/throughput.py --frames 20000 --invokes 200   # quick

Part 1, decode + dispatch: realistic frames pushed through ``Session.receive_data`` of a session
that has completed its handshake, for both dialects, with no I/O at all. Frames are the shapes
the real gateway sends (OpenClaw: ``tick {ts}`` with ``seq``; ``node.invoke.request`` with
``paramsJSON``, ``timeoutMs`` and ``idempotencyKey``, each with a fresh id; ``voicewake.changed``;
``health`` with the real gateway's 1.4 KB health snapshot from
shared/reference/recorded/hello-ok-node.json) and the documented pages' shapes for ``jsonrpc``.
Frames are pre-encoded strings (what the transport hands the session); the clock stops when the
session has returned its actions for the last one. Also timed: a full invoke cycle on the
protocol side (request decoded + ``node.invoke.result`` encoded). Best and median of
``--repeats``. Target: >= 50,000 frames/s.

Part 2, ``node.invoke`` round trip: a real gateway (RealGateway, ``autoApproveLocal`` on), the
real ``node-agent run`` (subprocess, paired once: node surface approved by the operator), and an
operator socket calling ``node.invoke device.info`` ``--invokes`` times in sequence (after
``--warmup`` unmeasured ones). Operator -> gateway -> agent -> gateway -> operator; reported
p50/p90/p99/max. For reference, the gateway alone: the same operator's ``voicewake.get``.
"""

from __future__ import annotations

import argparse
import gc
import json
import signal
import statistics
import time
import uuid
from pathlib import Path
from typing import Any, Callable

import _common as C  # noqa: E402

from node_agent.identity import DeviceIdentity  # noqa: E402
from node_agent.protocol import (  # noqa: E402
    ClientInfo,
    ConnectInputs,
    Credentials,
    Dispatch,
    JsonRpcDialect,
    OpenClawDialect,
    Ready,
    Send,
    Session,
    State,
)
from node_agent.secret import Secret  # noqa: E402

TARGET_FPS = 50_000
RECORDED = Path("/work/shared/reference/recorded/hello-ok-node.json")
FALLBACK_HEALTH = {"ok": True, "ts": 1795316234694, "durationMs": 36,
                   "plugins": {"loaded": ["anthropic", "browser", "canvas", "device-pair", "talk-voice"],
                               "errors": [], "unavailable": []},
                   "configReload": {"hotReloadStatus": "active"}, "channels": {}, "channelOrder": [],
                   "channelLabels": {}, "heartbeatSeconds": 1800, "defaultAgentId": "main",
                   "agents": [{"agentId": "main", "isDefault": True,
                               "heartbeat": {"enabled": True, "every": "30m", "everyMs": 1800000}}]}
KINDS = ("tick", "node.invoke.request", "voicewake.changed", "health")


def hello_payload() -> dict[str, Any]:
    try:
        return json.loads(RECORDED.read_text())
    except (OSError, ValueError):
        return {"type": "hello-ok", "protocol": 4, "server": {"version": "2026.9.6", "connId": "c1"},
                "features": {"methods": [], "events": []}, "snapshot": {"health": FALLBACK_HEALTH},
                "auth": {"method": "token", "role": "node", "scopes": [], "deviceToken": "t" * 43},
                "policy": {"maxPayload": 26214400, "maxBufferedBytes": 52428800, "tickIntervalMs": 30000}}


def ready_session(dialect: str, identity: DeviceIdentity) -> Session:
    """A session past its handshake (READY), fed the way the real gateway would feed it."""
    inputs = ConnectInputs(
        client=ClientInfo(version="0.1.0", platform="linux", device_family="Linux", display_name="bench",
                          instance_id=str(uuid.uuid4())),
        credentials=Credentials(shared_token=Secret("s" * 48)), signer=identity,
        caps=("device", "system"), commands=("device.info", "device.status", "system.notify"))
    hello = hello_payload()
    if dialect == "openclaw":
        session = Session(OpenClawDialect(), inputs)
        session.start(0.0)
        actions = session.receive_data(json.dumps({"type": "event", "event": "connect.challenge",
                                                   "payload": {"nonce": str(uuid.uuid4()), "ts": 1795316234670}}), 0.0)
        connect = json.loads(next(a for a in actions if isinstance(a, Send)).data)
        actions = session.receive_data(json.dumps({"type": "res", "id": connect["id"], "ok": True,
                                                   "payload": hello}), 0.01)
    else:
        session = Session(JsonRpcDialect(), inputs)
        actions = session.start(0.0)
        connect = json.loads(next(a for a in actions if isinstance(a, Send)).data)
        actions = session.receive_data(json.dumps({"jsonrpc": "2.0", "id": connect["id"], "ok": True,
                                                   "payload": hello}), 0.01)
    assert any(isinstance(a, Ready) for a in actions) and session.state is State.READY, actions
    return session


def make_frames(dialect: str, kind: str, n: int, node_id: str) -> list[str]:
    """``n`` pre-encoded frames of one kind ("mixed" cycles through all four)."""
    health = (hello_payload().get("snapshot") or {}).get("health") or FALLBACK_HEALTH
    documented_health = {"status": "healthy", "version": 10,
                         "channels": [{"id": "signal", "status": "connected", "account": "+1234567890"},
                                      {"id": "telegram", "status": "disconnected", "error": "Not logged in"}]}
    frames = []
    for i in range(n):
        k = KINDS[i % len(KINDS)] if kind == "mixed" else kind
        ts = 1795316264458 + i * 30000
        if k == "tick":
            payload: Any = {"ts": ts} if dialect == "openclaw" else {"timestamp": ts}
        elif k == "node.invoke.request":
            payload = {"id": str(uuid.uuid4()), "nodeId": node_id, "command": "device.info", "paramsJSON": "{}",
                       "timeoutMs": 30000, "idempotencyKey": str(uuid.uuid4())}
        elif k == "voicewake.changed":
            payload = {"triggers": ["openclaw", "claude", "computer"]}
        else:
            payload = health if dialect == "openclaw" else documented_health
        if dialect == "openclaw":
            frame: dict[str, Any] = {"type": "event", "event": k, "payload": payload}
            if k in ("tick", "health"):  # broadcasts carry seq (and health a stateVersion)
                frame["seq"] = i + 1
                if k == "health":
                    frame["stateVersion"] = {"presence": 2, "health": 3 + i}
        else:
            frame = {"event": k, "payload": payload}
        frames.append(json.dumps(frame, separators=(",", ":")))
    return frames


def time_receive(session_factory: Callable[[], Session], frames: list[str]) -> tuple[float, int]:
    """Seconds to push every frame through receive_data; and how many Dispatch actions came out."""
    session = session_factory()
    receive = session.receive_data
    dispatched = 0
    t0 = time.perf_counter()
    for i, data in enumerate(frames):
        for action in receive(data, 1.0 + i * 1e-6):
            if type(action) is Dispatch:
                dispatched += 1
    return time.perf_counter() - t0, dispatched


def time_invoke_cycle(session_factory: Callable[[], Session], frames: list[str]) -> float:
    """Seconds for: decode each invoke request, then encode its node.invoke.result (device.info-like)."""
    session = session_factory()
    result = {"deviceId": "x" * 64, "displayName": "bench", "platform": "linux", "deviceFamily": "Linux",
              "version": "0.1.0", "uptimeSeconds": 12.5, "adapter": "linux"}
    t0 = time.perf_counter()
    for i, data in enumerate(frames):
        for action in session.receive_data(data, 1.0 + i * 1e-6):
            if type(action) is Dispatch:
                session.invoke_result(action.event.body.id, ok=True, payload=result)
    return time.perf_counter() - t0


def part1(args: argparse.Namespace) -> dict[str, Any]:
    identity = DeviceIdentity.generate()
    rows = []
    out: dict[str, Any] = {}
    for dialect in ("openclaw", "jsonrpc"):
        out[dialect] = {}
        factory = (lambda d=dialect: ready_session(d, identity))
        for kind in ("mixed", *KINDS):
            frames = make_frames(dialect, kind, args.frames, identity.device_id)
            sizes = [len(f) for f in frames[:len(KINDS)]]
            rates = []
            for _ in range(args.repeats):
                gc.collect()
                secs, dispatched = time_receive(factory, frames)
                assert dispatched == len(frames), (dialect, kind, dispatched)
                rates.append(len(frames) / secs)
            out[dialect][kind] = {"best_fps": max(rates), "median_fps": statistics.median(rates),
                                  "us_per_frame": 1e6 / statistics.median(rates), "bytes": statistics.mean(sizes)}
            rows.append([dialect, kind, f"{statistics.mean(sizes):.0f}", f"{statistics.median(rates):,.0f}",
                         f"{max(rates):,.0f}", f"{1e6 / statistics.median(rates):.1f}",
                         "yes" if statistics.median(rates) >= TARGET_FPS else "NO"])
        inv = make_frames(dialect, "node.invoke.request", args.frames, identity.device_id)
        cyc = []
        for _ in range(args.repeats):
            gc.collect()
            cyc.append(len(inv) / time_invoke_cycle(factory, inv))
        out[dialect]["invoke_cycle"] = {"best_per_s": max(cyc), "median_per_s": statistics.median(cyc)}
        rows.append([dialect, "invoke request + result encode", "", f"{statistics.median(cyc):,.0f}",
                     f"{max(cyc):,.0f}", f"{1e6 / statistics.median(cyc):.1f}", ""])
    print(f"\n## decode + dispatch through Session.receive_data ({args.frames:,} frames x {args.repeats} repeats, "
          f"target >= {TARGET_FPS:,} frames/s)")
    C.print_table(["dialect", "frames", "bytes/frame", "median frames/s", "best frames/s", "us/frame",
                   ">= 50k"], rows)
    return out


# --- part 2: invoke latency through the real gateway ------------------------------------------


async def part2_async(gw: Any, args: argparse.Namespace) -> dict[str, Any]:
    with C.workdir("bench-invoke-") as work:
        return await part2_measure(gw, args, work)


async def part2_measure(gw: Any, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    import trio

    from tests.support.operator import Operator

    state = work / "state"
    argv = C.agent_argv(gw.url, state, "bench-invoke")
    env = C.agent_env(work / "home", gw.token)
    async with Operator.connect(gw.url, gw.token) as op, trio.open_nursery() as nursery:
        child = await C.Child.spawn(nursery, argv, env=env, cwd=work, log_path=work / "agent.log")
        try:
            device_id = await C.pair_once(op, lambda: child.proc.poll() is None, "bench-invoke",
                                          known_device_id=C.identity_reader(state))
            # The approval reaches the live socket (node.pair.resolved); wait until invokes work.
            with trio.fail_after(30):
                while True:
                    try:
                        await op.invoke(device_id, "device.info", {}, timeout_ms=5000)
                        break
                    except Exception:
                        await trio.sleep(0.2)
            for _ in range(args.warmup):
                await op.invoke(device_id, "device.info", {}, timeout_ms=10000)
            lat, leg_in, leg_out = [], [], []
            t_all = time.perf_counter()
            for _ in range(args.invokes):
                start = len(child.lines)
                t0 = time.monotonic()
                res = await op.invoke(device_id, "device.info", {}, timeout_ms=10000)
                t1 = time.monotonic()
                lat.append(t1 - t0)
                # The agent logs "invoke device.info ok in N ms" just before it sends the result;
                # the line's arrival splits the round trip into the two legs (+- a scheduling slice).
                found = child.find_line(r"invoke device\.info ok", start)
                if found is None:
                    with trio.move_on_after(1):
                        await child.wait_line(r"invoke device\.info ok", start=start)
                    found = child.find_line(r"invoke device\.info ok", start)
                if found is not None:
                    leg_in.append(found[0] - t0)
                    leg_out.append(t1 - found[0])
            wall = time.perf_counter() - t_all
            assert res.get("ok") is not False
            ref = []
            for _ in range(min(args.invokes, 200)):
                t0 = time.perf_counter()
                await op.call("voicewake.get")
                ref.append(time.perf_counter() - t0)
            agent_rss = C.tree_detail(child.pid)["rss"] / C.MIB
            child.signal(signal.SIGTERM)
            await child.wait_exit(10)
        finally:
            child.kill_group()
            nursery.cancel_scope.cancel()
    ms = [x * 1000 for x in lat]
    ref_ms = [x * 1000 for x in ref]
    out = {"invokes": len(ms), "p50_ms": C.percentile(ms, 50), "p90_ms": C.percentile(ms, 90),
           "p99_ms": C.percentile(ms, 99), "max_ms": max(ms), "min_ms": min(ms), "per_s": len(ms) / wall,
           "gateway_only_p50_ms": C.percentile(ref_ms, 50), "gateway_only_p99_ms": C.percentile(ref_ms, 99),
           "agent_rss_mib_after": agent_rss,
           "to_agent_p50_ms": C.percentile([x * 1000 for x in leg_in], 50) if leg_in else None,
           "from_agent_p50_ms": C.percentile([x * 1000 for x in leg_out], 50) if leg_out else None}
    print(f"\n## node.invoke device.info round trip through the real gateway ({len(ms)} sequential, "
          f"after {args.warmup} warm-up)")
    C.print_table(["path", "p50 ms", "p90 ms", "p99 ms", "max ms", "calls/s"], [
        ["operator -> gateway -> node-agent -> gateway -> operator", f"{out['p50_ms']:.2f}", f"{out['p90_ms']:.2f}",
         f"{out['p99_ms']:.2f}", f"{out['max_ms']:.2f}", f"{out['per_s']:.0f}"],
        ["reference: operator -> gateway (voicewake.get)", f"{out['gateway_only_p50_ms']:.2f}",
         f"{C.percentile(ref_ms, 90):.2f}", f"{out['gateway_only_p99_ms']:.2f}", f"{max(ref_ms):.2f}", ""],
    ])
    if leg_in:
        print(f"split by the agent's log line (sent just before its result): operator -> agent handled "
              f"{out['to_agent_p50_ms']:.2f} ms p50, agent -> operator {out['from_agent_p50_ms']:.2f} ms p50 "
              "(the agent's own handler: 0 ms)")
    print(f"agent RSS after the invokes: {agent_rss:.1f} MiB")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", type=int, default=100_000, help="frames per measurement (100000)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--invokes", type=int, default=500, help="sequential node.invoke calls (500)")
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--no-gateway", action="store_true", help="part 1 only (runs anywhere)")
    args = p.parse_args()
    result: dict[str, Any] = {"machine": C.machine_info(), "frames": args.frames, "repeats": args.repeats,
                              "decode_dispatch": part1(args)}
    if not args.no_gateway:
        import trio

        from tests.support.real_gateway import RealGateway

        C.require_netns()
        gw = RealGateway(auto_approve_local=True)
        C.log("starting the gateway")
        try:
            gw.start()
            C.log(f"gateway ready in {gw.start_seconds:.1f} s")
            result["invoke_latency"] = trio.run(part2_async, gw, args)
        finally:
            gw.close()
    print(f"\nload average: {C.machine_info()['loadavg']} (2-core machine; other work adds noise)")
    C.emit_json("throughput", result)


if __name__ == "__main__":
    main()
