"""Shared plumbing for the benchmarks: /proc sampling, statistics, tables, child processes,
the operator-side view of "connected", and pairing a node once.

Nothing here asserts anything: the scripts print figures. Conventions:

* Times are ``time.monotonic()`` seconds (on Linux the same clock as ``time.perf_counter()``
  and as :attr:`RealGateway.ready_at`). Trio's own clock has a random offset, so times taken
  inside Trio (the operator's ``Event.received_at``) are converted with :func:`trio_to_mono`.
* "Connected" is what the baseline measured: an operator socket receives a ``presence`` event
  whose entry for our device id has ``reason: "connect"`` and a gateway ``ts`` no older than
  the spawn (see ``shared/reference/baseline-node-host.md``).
* RSS and CPU are summed over the process tree of the spawned command (BFS over
  ``/proc/<pid>/task/*/children``), as in the baseline.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

VENV_BIN = REPO / ".venv" / "bin"
NODE_AGENT_BIN = VENV_BIN / "node-agent"
PYTHON = VENV_BIN / "python"

PAGE = os.sysconf("SC_PAGE_SIZE")
HZ = os.sysconf("SC_CLK_TCK")
MIB = 1024 * 1024


# --- statistics and output -------------------------------------------------------------------


def summary(values: Iterable[float | None]) -> dict[str, Any] | None:
    """min / median / max / n of the values that are not None (None if there are none)."""
    vals = [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not vals:
        return None
    return {"min": min(vals), "median": statistics.median(vals), "max": max(vals), "n": len(vals)}


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def fmt_summary(s: dict[str, Any] | None, fmt: str = "{:.3f}", unit: str = "") -> str:
    if not s:
        return "-"
    return f"{fmt.format(s['min'])} / {fmt.format(s['median'])} / {fmt.format(s['max'])}{unit} ({s['n']})"


def ratio(peer: dict[str, Any] | None, ours: dict[str, Any] | None) -> str:
    """peer median / our median, as "123x" (or "-" when either is missing or ours is 0)."""
    if not peer or not ours or ours["median"] <= 0:
        return "-"
    r = peer["median"] / ours["median"]
    return f"{r:.0f}x" if r >= 10 else f"{r:.1f}x"


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, file=None) -> None:
    """A GitHub-markdown table (pastes straight into the README)."""
    out = file or sys.stdout
    cells = [[str(c) for c in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |"

    print(line(cells[0]), file=out)
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|", file=out)
    for row in cells[1:]:
        print(line(row), file=out)
    out.flush()


def emit_json(bench: str, data: dict[str, Any]) -> None:
    """The one machine-readable line of a benchmark: ``{"bench": <name>, ...}``."""
    print(json.dumps({"bench": bench, **data}, separators=(",", ":"), default=str), flush=True)


def machine_info() -> dict[str, Any]:
    load = os.getloadavg()
    return {"cpus": os.cpu_count(), "loadavg": [round(x, 2) for x in load], "python": sys.version.split()[0],
            "kernel": os.uname().release}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --- /proc ---------------------------------------------------------------------------------------


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def tree_pids(root: int) -> list[int]:
    """``root`` and every live descendant (BFS over ``task/*/children``)."""
    seen: list[int] = []
    queue = [root]
    while queue:
        pid = queue.pop(0)
        if pid in seen:
            continue
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        seen.append(pid)
        for tid in tasks:
            text = _read(f"/proc/{pid}/task/{tid}/children")
            if text:
                queue.extend(int(c) for c in text.split())
    return seen


def rss_bytes(pid: int) -> int:
    text = _read(f"/proc/{pid}/statm")
    return int(text.split()[1]) * PAGE if text else 0


def cpu_ticks(pid: int) -> int:
    """utime + stime + cutime + cstime (clock ticks); cutime/cstime cover reaped children."""
    text = _read(f"/proc/{pid}/stat")
    if not text:
        return 0
    fields = text[text.rindex(")") + 2:].split()
    # after "comm": state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14)
    return sum(int(fields[i]) for i in (11, 12, 13, 14))


def thread_schedstat(pid: int) -> dict[int, int]:
    """Nanoseconds on CPU of each live thread of the process (tid -> ns)."""
    out: dict[int, int] = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        text = _read(f"/proc/{pid}/task/{tid}/schedstat")
        if text:
            out[int(tid)] = int(text.split()[0])
    return out


def schedstat_ns(pid: int) -> int:
    """Nanoseconds on CPU summed over the process's live threads."""
    return sum(thread_schedstat(pid).values())


def sched_delta_ns(before: dict[int, int], after: dict[int, int]) -> int:
    """CPU ns spent between two per-thread snapshots. Threads that exited in between lose what
    they spent after ``before`` (a thread pool worker retiring), never make the sum negative."""
    return sum(ns - before.get(tid, 0) for tid, ns in after.items())


def thread_ctxt_switches(pid: int) -> dict[int, int]:
    """Voluntary + involuntary context switches of each live thread (tid -> count): a thread
    that sleeps and wakes switches once per wake-up, so the delta over an idle window counts the
    wake-ups."""
    out: dict[int, int] = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        text = _read(f"/proc/{pid}/task/{tid}/status") or ""
        total = 0
        for line in text.splitlines():
            if line.startswith(("voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:")):
                total += int(line.split()[1])
        out[int(tid)] = total
    return out


def status_kib(pid: int, key: str) -> int:
    text = _read(f"/proc/{pid}/status") or ""
    for line in text.splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def pss_bytes(pid: int) -> int:
    text = _read(f"/proc/{pid}/smaps_rollup") or ""
    for line in text.splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) * 1024
    return 0


def cmdline(pid: int) -> str:
    raw = _read(f"/proc/{pid}/cmdline") or ""
    return raw.replace("\0", " ").strip()[:200]


def comm(pid: int) -> str:
    return (_read(f"/proc/{pid}/comm") or "?").strip()


def tree_sample(root: int) -> dict[str, Any]:
    """Cheap sample for the fast loop: RSS and CPU ticks summed over the tree."""
    pids = tree_pids(root)
    return {"pids": pids, "rss": sum(rss_bytes(p) for p in pids), "cpu_ticks": sum(cpu_ticks(p) for p in pids)}


def tree_detail(root: int) -> dict[str, Any]:
    """Full snapshot: RSS, PSS, VmHWM, CPU ticks and per-thread schedstat, summed over the tree."""
    pids = tree_pids(root)
    return {
        "pids": pids,
        "nprocs": len(pids),
        "rss": sum(rss_bytes(p) for p in pids),
        "pss": sum(pss_bytes(p) for p in pids),
        "hwm": sum(status_kib(p, "VmHWM") * 1024 for p in pids),
        "cpu_ticks": sum(cpu_ticks(p) for p in pids),
        "sched_ns": sum(schedstat_ns(p) for p in pids),
        "sched_threads": {tid: ns for p in pids for tid, ns in thread_schedstat(p).items()},
        "ctxt_threads": {tid: n for p in pids for tid, n in thread_ctxt_switches(p).items()},
        "threads": sum(len(os.listdir(f"/proc/{p}/task")) for p in pids if os.path.isdir(f"/proc/{p}/task")),
    }


def self_rss() -> int:
    return rss_bytes(os.getpid())


# --- scratch directories ---------------------------------------------------------------------------


@contextlib.contextmanager
def workdir(prefix: str):
    """A scratch directory (state dirs, keys, logs) removed on success; kept, and named on
    stderr, when the benchmark fails or ``NODE_AGENT_KEEP_BENCH_DIR=1``."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    except BaseException:
        log(f"kept {path} for a look")
        raise
    if os.environ.get("NODE_AGENT_KEEP_BENCH_DIR") == "1":
        log(f"kept {path} (NODE_AGENT_KEEP_BENCH_DIR=1)")
    else:
        shutil.rmtree(path, ignore_errors=True)


# --- time ----------------------------------------------------------------------------------------


def trio_offset() -> float:
    """trio.current_time() - time.monotonic(), constant for Trio's SystemClock. Call inside Trio."""
    import trio

    return trio.current_time() - time.monotonic()


# --- child processes with timestamped output -------------------------------------------------------


class Child:
    """A spawned command whose merged stdout/stderr is read line by line, each line stamped with
    ``time.monotonic()`` on arrival. Runs in its own session (process group) so cleanup reaches
    every helper it starts. Use from Trio: ``child = await Child.spawn(...)``; ``nursery`` runs
    the reader."""

    def __init__(self, argv: Sequence[str], proc: Any, t0: float, wall0_ms: float, log_path: Path | None):
        self.argv = list(argv)
        self.proc = proc
        self.t0 = t0  # monotonic, just before the fork
        self.wall0_ms = wall0_ms
        self.lines: list[tuple[float, str]] = []
        self._log = open(log_path, "a") if log_path else None
        self._changed = None
        self.exited_at: float | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    @classmethod
    async def spawn(cls, nursery: Any, argv: Sequence[str], *, env: dict[str, str], cwd: Path | str | None = None,
                    log_path: Path | None = None) -> "Child":
        import trio

        wall0_ms = time.time() * 1000
        t0 = time.monotonic()
        # Popen itself (not trio.lowlevel.open_process, which forks from a worker thread) so t0
        # is really "just before the fork".
        proc = subprocess.Popen(list(argv), env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, start_new_session=True, bufsize=0)
        child = cls(argv, proc, t0, wall0_ms, log_path)
        child._changed = trio.Event()
        nursery.start_soon(child._reader)
        return child

    async def _reader(self) -> None:
        import trio

        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        os.set_blocking(fd, False)
        buf = b""
        while True:
            try:
                await trio.lowlevel.wait_readable(fd)
            except (trio.ClosedResourceError, OSError):
                break
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                continue
            except OSError:
                break
            now = time.monotonic()
            if not chunk:
                break
            buf += chunk
            *complete, buf = buf.split(b"\n")
            for raw in complete:
                text = raw.decode(errors="replace")
                self.lines.append((now, text))
                if self._log:
                    self._log.write(f"{now - self.t0:9.3f} {text}\n")
            if complete:
                self._wake()
        if buf:
            self.lines.append((time.monotonic(), buf.decode(errors="replace")))
        if self._log:
            self._log.flush()
        self._wake()

    def _wake(self) -> None:
        import trio

        if self._changed is not None:
            self._changed.set()
            self._changed = trio.Event()

    async def wait_line(self, pattern: str, *, start: int = 0, timeout: float = 60.0) -> tuple[float, str, int]:
        """First output line at index >= ``start`` matching ``pattern``: (monotonic, text, index)."""
        import trio

        rx = re.compile(pattern)
        with trio.fail_after(timeout):
            i = start
            while True:
                while i < len(self.lines):
                    t, text = self.lines[i]
                    if rx.search(text):
                        return t, text, i
                    i += 1
                if self.proc.poll() is not None and i >= len(self.lines):
                    await trio.sleep(0.05)
                    if i >= len(self.lines):
                        raise RuntimeError(f"{self.argv[0]} exited ({self.proc.returncode}) before {pattern!r}; "
                                           f"last output: {self.tail()}")
                assert self._changed is not None
                with trio.move_on_after(0.2):
                    await self._changed.wait()

    def find_line(self, pattern: str, start: int = 0) -> tuple[float, str] | None:
        rx = re.compile(pattern)
        for t, text in self.lines[start:]:
            if rx.search(text):
                return t, text
        return None

    def tail(self, n: int = 15) -> str:
        return "\n".join(text for _, text in self.lines[-n:])

    async def wait_exit(self, timeout: float) -> float | None:
        """Wait for the process to exit; return the monotonic exit time (polled every 2 ms)."""
        import trio

        with trio.move_on_after(timeout):
            while self.proc.poll() is None:
                await trio.sleep(0.002)
            self.exited_at = time.monotonic()
            return self.exited_at
        return None

    def signal(self, sig: int) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(sig)
            except ProcessLookupError:
                pass

    def kill_group(self) -> None:
        """SIGKILL the whole process group (this child's session) and reap the leader."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        if self._log:
            self._log.close()
            self._log = None


# --- presence, as an operator sees it ------------------------------------------------------------


def presence_entry(payload: Any, device_id: str, reason: str, since_ms: float) -> dict[str, Any] | None:
    """Our device's entry in a ``presence`` payload with this reason and ``ts >= since_ms``."""
    entries = payload.get("presence") if isinstance(payload, dict) else None
    for entry in entries or ():
        if not isinstance(entry, dict):
            continue
        if entry.get("deviceId") != device_id or entry.get("reason") != reason:
            continue
        ts = entry.get("ts")
        if isinstance(ts, (int, float)) and ts >= since_ms:
            return entry
    return None


async def wait_presence(op: Any, device_id: str, reason: str, since_ms: float, *, timeout: float,
                        offset: float) -> tuple[float, dict[str, Any]] | None:
    """Wait for a presence event naming our device with ``reason``; return (monotonic receipt
    time, entry), or None after ``timeout``. Scans the operator's full history, so an event that
    arrived before the call is found too."""
    import trio

    deadline = trio.current_time() + timeout
    seen = 0
    while True:
        events = op.events
        for event in events[seen:]:
            if event.name == "presence":
                entry = presence_entry(event.payload, device_id, reason, since_ms)
                if entry is not None:
                    return event.received_at - offset, entry
        seen = len(events)
        if trio.current_time() >= deadline:
            return None
        await trio.sleep(0.002)


# --- pairing a node once (ours or the peer) ----------------------------------------------------------


async def pair_once(op: Any, child_alive: Callable[[], bool], display_name: str, *, timeout: float = 120.0,
                    known_device_id: Callable[[], str | None] | None = None) -> str:
    """Approve the device (stage 1) and the node surface (stage 2) of a node called
    ``display_name`` that is running and retrying; return its device id once both are approved.

    Matches by display name (each benchmark uses a unique one), or by ``known_device_id()``.
    Works with ``autoApproveLocal`` on (stage 1 is then silent) or off.
    """
    import trio

    approved_devices: set[str] = set()
    approved_nodes: set[str] = set()
    ignored: set[str] = set()
    device_id: str | None = None
    with trio.fail_after(timeout):
        while True:
            if not child_alive():
                raise RuntimeError(f"{display_name} exited during pairing")
            wanted = known_device_id() if known_device_id else None

            def mine(entry: dict[str, Any], id_key: str) -> bool:
                return entry.get("displayName") == display_name or (wanted is not None and entry.get(id_key) == wanted)

            devices = await op.device_pairs()
            for req in devices.get("pending", []):
                if mine(req, "deviceId") and req["requestId"] not in approved_devices:
                    approved_devices.add(req["requestId"])
                    device_id = req.get("deviceId") or device_id
                    log(f"approving device {str(device_id)[:12]}… ({display_name})")
                    await _approve(op.approve_device, req["requestId"])
            nodes = await op.node_pairs()
            for req in nodes.get("pending", []):
                if mine(req, "nodeId") and req["requestId"] not in approved_nodes:
                    approved_nodes.add(req["requestId"])
                    device_id = req.get("nodeId") or device_id
                    log(f"approving node surface {str(device_id)[:12]}… ({display_name})")
                    await _approve(op.approve_node, req["requestId"])
            for req in [*devices.get("pending", []), *nodes.get("pending", [])]:
                key = req.get("requestId")
                if key not in approved_devices and key not in approved_nodes and key not in ignored:
                    ignored.add(key)
                    log(f"pending request not ours ({display_name}): displayName={req.get('displayName')!r}")
            paired = [n for n in nodes.get("paired", []) if mine(n, "nodeId")]
            pending = [n for n in nodes.get("pending", []) if mine(n, "nodeId")]
            if paired and not pending:
                return str(paired[0]["nodeId"])
            await trio.sleep(0.25)


async def _approve(approve: Callable[[str], Any], request_id: str) -> None:
    """Approve, tolerating a request that resolved meanwhile (``autoApproveLocal`` approves a
    device a moment after listing it as pending; a retrying node replaces its request)."""
    from tests.support.operator import OperatorError

    try:
        await approve(request_id)
    except OperatorError as exc:
        if "unknown requestId" not in exc.message:
            raise
        log(f"request {request_id[:8]}… already resolved ({exc.message}); carrying on")


async def wait_agent_status(state_dir: Path, *, timeout: float = 30.0, **want: Any) -> dict[str, Any]:
    """Wait until node-agent's ``status.json`` has every ``key=value`` in ``want``."""
    import trio

    with trio.fail_after(timeout):
        while True:
            try:
                status = json.loads((state_dir / "status.json").read_text())
            except (OSError, ValueError):
                status = {}
            if all(status.get(k) == v for k, v in want.items()):
                return status
            await trio.sleep(0.05)


def identity_reader(state_dir: Path) -> Callable[[], str | None]:
    """``known_device_id`` for :func:`pair_once`: the device id once the agent has written it."""
    def known() -> str | None:
        try:
            return json.loads((state_dir / "identity.json").read_text())["deviceId"]
        except (OSError, ValueError, KeyError):
            return None

    return known


def agent_env(home: Path, token: str) -> dict[str, str]:
    """Environment for ``node-agent run``: PATH and locale, a private HOME, the shared token."""
    env = {k: os.environ[k] for k in ("PATH", "LANG", "LC_ALL", "TZ") if k in os.environ}
    home.mkdir(parents=True, exist_ok=True)
    env.update({"HOME": str(home), "OPENCLAW_GATEWAY_TOKEN": token, "TMPDIR": str(home)})
    return env


def agent_argv(url: str, state_dir: Path, display_name: str, *extra: str) -> list[str]:
    return [str(NODE_AGENT_BIN), "run", "--gateway", url, "--state-dir", str(state_dir),
            "--secret-backend", "file", "--display-name", display_name, *extra]


def bare_argv(url: str, state_file: Path, display_name: str) -> list[str]:
    """The floor client (bench/bare_client.py), run by the same interpreter as node-agent."""
    return [str(PYTHON), str(REPO / "bench" / "bare_client.py"), "--url", url, "--state", str(state_file),
            "--display-name", display_name]


def peer_env(gw: Any, run_dir: Path) -> dict[str, str]:
    """Environment for ``openclaw node run`` as the baseline ran it: its own HOME/state dir,
    the token from the environment, no update check, the loopback guard preloaded."""
    from tests.support.real_gateway import GUARD_SCRIPT

    for sub in ("home", "state", "tmp"):
        (run_dir / sub).mkdir(parents=True, exist_ok=True)
    env = {k: os.environ[k] for k in ("LANG", "LC_ALL", "TZ") if k in os.environ}
    env.update({
        "PATH": f"{gw.node_bin_dir}{os.pathsep}/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": str(run_dir / "home"),
        "OPENCLAW_STATE_DIR": str(run_dir / "state"),
        "TMPDIR": str(run_dir / "tmp"),
        "OPENCLAW_GATEWAY_TOKEN": gw.token,
        "OPENCLAW_NO_AUTO_UPDATE": "1",
        "DO_NOT_TRACK": "1",
        "OPENCLAW_DISABLE_BONJOUR": "1",
        "NODE_OPTIONS": f"--require {GUARD_SCRIPT}",
        "OC_GUARD_LOG": str(run_dir / "blocked-egress.log"),
    })
    return env


def peer_argv(gw: Any, display_name: str) -> list[str]:
    return [str(gw.openclaw_bin), "node", "run", "--host", "127.0.0.1", "--port", str(gw.port),
            "--display-name", display_name]


def require_netns() -> None:
    """Exit with the fixing command unless this process is in a loopback-only netns."""
    from tests.support.real_gateway import NotIsolatedError, check_isolated

    try:
        check_isolated()
    except NotIsolatedError as exc:
        script = Path(sys.argv[0]).relative_to(REPO) if Path(sys.argv[0]).is_absolute() else sys.argv[0]
        sys.exit(f"{exc}\nrun it as: scripts/in-netns .venv/bin/python {script} ...")
