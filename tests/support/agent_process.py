"""Run the real ``node-agent`` CLI as a subprocess, the way a user or systemd does.

Used by interop tests that must exercise the product end to end: argument parsing, config,
the secret store on disk, logging, signals. Output goes to a log file that tests can wait on
(``wait_log``) and that the no-secrets check scans at the end of the session.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import trio

if TYPE_CHECKING:
    from node_agent.agent.status import AgentStatus

REPO = Path(__file__).resolve().parents[2]

#: Every agent log written, state dir used and token handed out during the session, for the
#: no-secret scan (tests/support/secret_watch.py).
LOG_FILES: list[Path] = []
STATE_DIRS: list[Path] = []
KNOWN_TOKENS: list[str] = []


class AgentProcess:
    def __init__(self, command: str, *, state_dir: Path, gateway_url: str, token: str | None,
                 extra: list[str] | None = None, name: str = "agent", log_dir: Path | None = None,
                 env: dict[str, str] | None = None):
        self.state_dir = state_dir
        log_dir = log_dir or state_dir.parent
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"{name}-{command}-{int(time.time() * 1000)}.log"
        LOG_FILES.append(self.log_path)
        STATE_DIRS.append(state_dir)
        if token is not None:
            KNOWN_TOKENS.append(token)
        extra_env = env or {}
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENCLAW_", "NODE_AGENT_"))}
        if token is not None:
            env["OPENCLAW_GATEWAY_TOKEN"] = token
        env["PYTHONUNBUFFERED"] = "1"
        env.update(extra_env)
        argv = [sys.executable, "-m", "node_agent", command, "--state-dir", str(state_dir), "--secret-backend",
                "file", "--gateway", gateway_url, "--log-level", "debug", *(extra or [])]
        self._log = open(self.log_path, "wb")
        self.started = time.monotonic()
        self.proc = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT, env=env, cwd=REPO)

    def __repr__(self) -> str:
        return f"<AgentProcess pid={self.proc.pid} rc={self.proc.poll()}>"

    def text(self) -> str:
        return self.log_path.read_text("utf-8", "replace")

    async def wait_log(self, pattern: str, *, timeout: float = 30.0, after: int = 0) -> re.Match[str]:
        regex = re.compile(pattern)
        try:
            with trio.fail_after(timeout):
                while True:
                    match = regex.search(self.text(), after)
                    if match:
                        return match
                    if self.proc.poll() is not None:
                        raise AssertionError(f"agent exited ({self.proc.returncode}) before /{pattern}/:\n"
                                             f"{self.text()[-3000:]}")
                    await trio.sleep(0.05)
        except trio.TooSlowError:
            # The log is the only witness of what the agent saw instead: put it in the report.
            raise AssertionError(f"no /{pattern}/ in the agent log after {timeout} s:\n{self.text()[-6000:]}") from None

    async def wait_exit(self, timeout: float = 30.0) -> int:
        with trio.fail_after(timeout):
            while self.proc.poll() is None:
                await trio.sleep(0.02)
        self._log.close()
        return self.proc.returncode

    async def terminate(self, timeout: float = 5.0) -> tuple[int, float]:
        """SIGTERM; returns (exit code, seconds to exit)."""
        start = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        code = await self.wait_exit(timeout)
        return code, time.monotonic() - start

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._log.close()

    def status(self) -> dict[str, Any]:
        out = subprocess.run([sys.executable, "-m", "node_agent", "status", "--json", "--state-dir",
                              str(self.state_dir)], capture_output=True, text=True, check=True, cwd=REPO)
        return json.loads(out.stdout)

    async def wait_status(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 5.0) -> dict[str, Any]:
        """``status --json`` as a person runs it, until ``predicate`` holds: the daemon writes the
        file at most once a second (``WRITE_INTERVAL_S``), so a change a log line just announced
        may take that long to show. On timeout, says what it last showed."""
        last: dict[str, Any] | None = None
        try:
            with trio.fail_after(timeout):
                while True:
                    last = await trio.to_thread.run_sync(self.status)
                    if predicate(last):
                        return last
                    await trio.sleep(0.2)
        except trio.TooSlowError:
            raise AssertionError(f"status never matched in {timeout} s; last: {last}") from None


def secrets_file(state_dir: Path) -> dict[str, str]:
    """The file secret store's contents (test-only peek)."""
    path = state_dir / "secrets.json"
    return json.loads(path.read_text()) if path.exists() else {}


def device_token(state_dir: Path, gateway_url: str) -> str | None:
    from node_agent.secrets.base import device_token_key

    data = secrets_file(state_dir)
    value = data.get(device_token_key(gateway_url))
    if isinstance(value, dict):  # tolerate a richer on-disk shape
        value = value.get("value")
    return value


def presence_of(device_id: str, reason: str):
    def predicate(payload: Any) -> bool:
        entries = payload.get("presence", []) if isinstance(payload, dict) else []
        return any(e.get("deviceId") == device_id and e.get("reason") == reason for e in entries)

    return predicate


# --- waiting on an agent's state dir (what ``node-agent status`` reads) ------------------------


async def device_id_of(state_dir: Path, timeout: float = 30.0) -> str:
    """The device id, once the agent has written its identity (its first act on start)."""
    with trio.fail_after(timeout):
        while not (state_dir / "identity.json").exists():
            await trio.sleep(0.05)
    return json.loads((state_dir / "identity.json").read_text())["deviceId"]


def of_device(device_id: str, role: str | None = None) -> Callable[[Any], bool]:
    """Matches a gateway payload (pairing request, presence entry) about ``device_id``."""
    def predicate(payload: Any) -> bool:
        return (isinstance(payload, dict) and payload.get("deviceId", payload.get("nodeId")) == device_id
                and (role is None or payload.get("role") == role))

    return predicate


async def wait_status_file(state_dir: Path, predicate: Callable[["AgentStatus"], bool],
                           timeout: float = 30.0) -> "AgentStatus":
    """Wait until ``status.json`` (read through the status model) matches; on timeout, say what
    it last held. Polls: the writer is another process."""
    from node_agent.agent.status import read_status

    last: AgentStatus | None = None
    try:
        with trio.fail_after(timeout):
            while True:
                last = read_status(state_dir)
                if last is not None and predicate(last):
                    return last
                await trio.sleep(0.05)
    except trio.TooSlowError:
        raise AssertionError(f"status.json never matched in {timeout} s; last: {last}") from None
