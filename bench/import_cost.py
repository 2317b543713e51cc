"""What ``node-agent run`` pays for imports before it can say hello, and what could be lazy.

    scripts/in-netns .venv/bin/python bench/import_cost.py            # 5 timing runs
    scripts/in-netns .venv/bin/python bench/import_cost.py --runs 10 --top 25

Three measurements, each in a fresh interpreter:

1. ``python -X importtime <venv>/bin/node-agent run --gateway ws://127.0.0.1:9 ...`` (a closed
   port, so it imports the whole run path, fails to connect, and is stopped with SIGINT): the
   import tree of the real start path, as ``-X importtime`` prints it;
2. spawn -> exit of ``python -c pass``, of ``node-agent --version`` (argparse only), and of a
   process that imports everything the run path imports (``RUN_PATH_IMPORTS``), ``--runs`` times;
3. from the tree: the cost of each top-level package, the cost of node_agent's own modules, and
   the cost of the imports that a default ``run`` (OpenClaw dialect, file store) does not need
   before hello-ok (``LAZY_CANDIDATES``), i.e. what making them lazy would save.

``-X importtime`` inflates times (it measures itself) and this machine is shared, so read the
figures as proportions. Runs in the loopback-only netns because step 1 opens a socket.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import time
from pathlib import Path

import _common as C  # noqa: E402

#: Everything ``node-agent run`` imports on its way to hello-ok (see cli/__init__, run_cmd.serve).
RUN_PATH_IMPORTS = ("node_agent.cli", "node_agent.cli.run_cmd", "node_agent.agent.node",
                    "node_agent.transport", "node_agent.identity", "node_agent.secrets",
                    "node_agent.adapters.linux", "node_agent.agent.status")

#: Imports on the default run path that hello-ok does not need, and why.
LAZY_CANDIDATES: dict[str, str] = {
    "node_agent.cli.service_cmd": "imported by build_parser() to add the `service` subcommand; pulls in "
                                  "node_agent.service.* (launchd/plistlib, windows, xml.etree, sd_notify)",
    "node_agent.cli.doctor_cmd": "imported by build_parser() for `doctor`",
    "node_agent.cli.voice_cmd": "imported by build_parser() for `voice`",
    "keyring": "imported by node_agent.secrets -> keyring_store even with --secret-backend file "
               "(and with `auto` once the marker says file)",
    "node_agent.protocol.jsonrpc": "the documented dialect, imported by node_agent.protocol even when "
                                   "the dialect is openclaw",
    "node_agent.protocol.documented_models": "only the jsonrpc dialect uses these",
    "cryptography.hazmat.primitives.serialization": "identity.py uses it for raw key bytes; "
                                                    "private_bytes_raw()/public_bytes_raw() need no import",
    "node_agent.adapters.pi": "board detection for the default adapter (reads /proc/device-tree)",
    "platformdirs": "only needed when --state-dir/--config are not given",
}


def parse_importtime(text: str) -> list[tuple[int, int, int, str]]:
    """(self_us, cumulative_us, depth, module) in the order -X importtime prints them."""
    rows = []
    for line in text.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        body = line[len("import time:"):]
        self_s, cum_s, raw = body.split("|", 2)
        raw = raw[1:] if raw.startswith(" ") else raw
        depth = (len(raw) - len(raw.lstrip(" "))) // 2
        rows.append((int(self_s), int(cum_s), depth, raw.strip()))
    return rows


def outermost(rows: list[tuple[int, int, int, str]], match) -> list[tuple[int, int, int, str]]:
    """Rows for which ``match(name)`` holds and no enclosing row also matches (no double count).

    -X importtime prints a module after its children, so the enclosing row of a row is the next
    row below it with a smaller depth."""
    result = []
    for i, (s, c, d, name) in enumerate(rows):
        if not match(name):
            continue
        depth, enclosed = d, False
        for _s, _c, d2, n2 in rows[i + 1:]:
            if d2 < depth:
                if match(n2):
                    enclosed = True
                    break
                depth = d2
                if d2 == 0:
                    break
        if not enclosed:
            result.append(rows[i])
    return result


#: What any Trio node client needs at minimum (the baseline's "floor" client imported these):
#: a candidate's import is only a saving where it brings modules outside this set.
CORE_IMPORTS = ("import argparse, logging, json, ssl, trio, trio_websocket, attrs, cattrs; "
                "from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey")


def subtree(rows: list[tuple[int, int, int, str]], i: int) -> list[tuple[int, int, int, str]]:
    """Row ``i`` and everything imported beneath it (printed just before it, deeper)."""
    depth = rows[i][2]
    j = i
    while j > 0 and rows[j - 1][2] > depth:
        j -= 1
    return rows[j:i + 1]


def core_modules(env: dict[str, str]) -> set[str]:
    done = subprocess.run([str(C.PYTHON), "-X", "importtime", "-c", CORE_IMPORTS], env=env,
                          capture_output=True, text=True, check=False)
    return {name for *_x, name in parse_importtime(done.stderr)}


def importtime_of_run(tmp: Path) -> tuple[str, float]:
    env = C.agent_env(tmp / "home", "x" * 32)
    argv = [str(C.PYTHON), "-X", "importtime", str(C.NODE_AGENT_BIN), "run", "--gateway", "ws://127.0.0.1:9",
            "--state-dir", str(tmp / "state"), "--secret-backend", "file", "--display-name", "imports"]
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    # The first "retrying" line means every import on the run path has happened.
    lines = []
    assert proc.stderr is not None
    for line in proc.stderr:
        lines.append(line)
        if "retrying in" in line:
            break
    elapsed = time.monotonic() - t0
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=10)
    return "".join(lines) + (out or ""), elapsed


def spawn_exit(argv: list[str], env: dict[str, str], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        t0 = time.monotonic()
        subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        times.append(time.monotonic() - t0)
    return times


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--top", type=int, default=20)
    p.add_argument("--save-importtime", metavar="FILE", help="keep the raw -X importtime output here")
    args = p.parse_args()
    C.require_netns()
    with C.workdir("bench-imports-") as tmp:
        measure(args, tmp)


def measure(args: argparse.Namespace, tmp: Path) -> None:
    env = C.agent_env(tmp / "home", "x" * 32)

    text, to_retry = importtime_of_run(tmp)
    rows = parse_importtime(text)
    total_us = sum(c for _s, c, d, _n in rows if d == 0)

    def pkg_of(name: str) -> str:
        return name.split(".")[0]

    packages = sorted({pkg_of(n) for *_x, n in rows})
    pkg_cost = []
    for pkg in packages:
        if pkg == "node_agent":
            continue
        tops = outermost(rows, lambda n, pkg=pkg: n == pkg or n.startswith(pkg + "."))
        pkg_cost.append((sum(c for _s, c, _d, _n in tops), pkg))
    pkg_cost.sort(reverse=True)

    ours = [(c, s, n) for s, c, _d, n in rows if n.startswith("node_agent")]
    ours.sort(reverse=True)
    core = core_modules(env)
    lazy = []
    for name, why in LAZY_CANDIDATES.items():
        idx = [i for i, r in enumerate(rows) if r[3] == name or r[3].startswith(name + ".")]
        tops = outermost(rows, lambda n, name=name: n == name or n.startswith(name + "."))
        cost = sum(c for _s, c, _d, _n in tops)
        beneath: dict[str, int] = {}
        for i in idx:
            for s_us, _c, _d, n in subtree(rows, i):
                beneath[n] = s_us
        exclusive = sum(s_us for n, s_us in beneath.items() if n not in core)
        lazy.append((exclusive, cost, name, why if tops else "not imported on this path"))
    lazy.sort(reverse=True)

    t_pass = spawn_exit([str(C.PYTHON), "-c", "pass"], env, args.runs)
    t_version = spawn_exit([str(C.NODE_AGENT_BIN), "--version"], env, args.runs)
    import_stmt = "import " + ", ".join(RUN_PATH_IMPORTS) + "; node_agent.cli.build_parser()"
    t_imports = spawn_exit([str(C.PYTHON), "-c", import_stmt], env, args.runs)
    ldconfig = subprocess.run(
        [str(C.PYTHON), "-c", "import time, ctypes.util; t = time.perf_counter(); ctypes.util.find_library('pthread'); "
                              "print(time.perf_counter() - t)"], env=env, capture_output=True, text=True, check=False)
    try:
        ldconfig_s: float | None = float(ldconfig.stdout.strip())
    except ValueError:
        ldconfig_s = None
    rss_imports = subprocess.run(
        [str(C.PYTHON), "-c", import_stmt + "; import resource; print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"],
        env=env, capture_output=True, text=True, check=False).stdout.strip()

    print("\n## spawn -> exit (fresh interpreter), min / median / max s")
    C.print_table(["command", f"wall ({args.runs} runs)"], [
        ["python -c pass", C.fmt_summary(C.summary(t_pass))],
        ["node-agent --version (argparse, no run path)", C.fmt_summary(C.summary(t_version))],
        ["python -c 'import <run path>; build_parser()'", C.fmt_summary(C.summary(t_imports))],
    ])
    print(f"\npeak RSS after the run-path imports: {int(rss_imports) / 1024 if rss_imports.isdigit() else '?'} MiB")
    print(f"-X importtime run: {len(rows)} modules, {total_us / 1000:.0f} ms of imports "
          f"(inflated by -X importtime), first retry line after {to_retry:.2f} s")

    print("\n## top packages by cumulative import time (-X importtime, ms)")
    C.print_table(["package", "ms", "share"],
                  [[pkg, f"{c / 1000:.1f}", f"{100 * c / total_us:.0f} %"] for c, pkg in pkg_cost[:args.top]])
    print("\n## node_agent modules by cumulative import time (ms, nested counts overlap)")
    C.print_table(["module", "cumulative ms", "self ms"],
                  [[n, f"{c / 1000:.1f}", f"{s / 1000:.1f}"] for c, s, n in ours[:args.top]])
    print("\n## imports hello-ok does not need on the default path (what lazy imports would save)")
    print("(exclusive = self time of the modules beneath it that a minimal Trio client would not import "
          "anyway; cumulative includes trio etc.)")
    C.print_table(["module", "exclusive ms", "cumulative ms", "why it is imported / how to avoid"],
                  [[n, f"{x / 1000:.1f}", f"{c / 1000:.1f}", why] for x, c, n, why in lazy])
    if ldconfig_s is not None:
        print(f"\n`import trio` runs `/sbin/ldconfig -p` (ctypes.util.find_library('pthread') in "
              f"trio/_core/_thread_cache.py, to name worker threads): {ldconfig_s * 1000:.1f} ms here; upstream, "
              "not avoidable from node_agent")
    print(f"\nload average: {C.machine_info()['loadavg']} (2-core machine; other work adds noise)")
    C.emit_json("import_cost", {
        "machine": C.machine_info(), "runs": args.runs,
        "python_pass_s": C.summary(t_pass), "version_s": C.summary(t_version),
        "run_path_imports_s": C.summary(t_imports),
        "run_path_import_rss_mib": int(rss_imports) / 1024 if rss_imports.isdigit() else None,
        "importtime_total_ms": total_us / 1000, "trio_ldconfig_ms": ldconfig_s * 1000 if ldconfig_s else None, "modules": len(rows),
        "packages_ms": {pkg: c / 1000 for c, pkg in pkg_cost[:args.top]},
        "lazy_candidates_exclusive_ms": {n: x / 1000 for x, _c, n, _w in lazy},
    })
    if args.save_importtime:
        Path(args.save_importtime).write_text(text)
        C.log(f"raw -X importtime output: {args.save_importtime}")


if __name__ == "__main__":
    main()
