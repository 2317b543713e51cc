"""What a person reads when a start fails, through the real ``python -m node_agent``.

A start that fails says what to do about this failure (not about another store's), promises a
restart only when a service manager will really restart the agent, and is what ``status`` shows
next, in place of the previous run's state and last error. The gateway URL is shown without a
password wherever it is printed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from node_agent.agent.status import LinkState, StatusBoard
from node_agent.identity import DeviceIdentity, IdentityRecord, write_record
from tests.support.agent_process import KNOWN_TOKENS, REPO

UNREACHABLE = "ws://127.0.0.1:9"
#: Makes the keyring package answer every call with an error (no D-Bus needed).
NO_KEYRING = {"PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}


def node_agent(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("OPENCLAW_", "NODE_AGENT_")) and k not in ("INVOCATION_ID", "NOTIFY_SOCKET")}
    return subprocess.run([sys.executable, "-m", "node_agent", *args], capture_output=True, text=True, cwd=REPO,
                          env={**base, **(env or {})}, timeout=timeout)


def keyring_marked(state: Path) -> Path:
    """A state directory whose secrets an earlier start put in the OS keyring."""
    state.mkdir(mode=0o700)
    (state / "secret-backend").write_text("keyring\n")
    return state


def test_a_keyring_that_does_not_answer_promises_a_restart_only_under_a_service_manager(tmp_path):
    state = keyring_marked(tmp_path / "state")
    args = ("run", "--state-dir", str(state), "--gateway", UNREACHABLE)
    by_hand = node_agent(*args, env=NO_KEYRING)
    assert by_hand.returncode == 1, by_hand.stderr
    assert "retries by itself" not in by_hand.stderr and "restarts the agent by itself" not in by_hand.stderr
    assert "then start the agent again" in by_hand.stderr
    # Under systemd (our unit is Type=notify: both variables are set) the restart is real.
    service = node_agent(*args, env={**NO_KEYRING, "INVOCATION_ID": "0123456789abcdef",
                                     "NOTIFY_SOCKET": str(tmp_path / "no-such-socket")})
    assert service.returncode == 1, service.stderr
    assert "the service manager restarts the agent by itself" in service.stderr
    assert "then start the agent again" not in service.stderr


def test_status_after_a_failed_start_shows_that_failure_not_the_last_run(tmp_path):
    state = keyring_marked(tmp_path / "state")
    StatusBoard(state, gateway=UNREACHABLE).close(
        state=LinkState.WAITING, last_error="cannot reach 127.0.0.1:9: Connection refused", retry_in_seconds=30.0)
    failed = node_agent("run", "--state-dir", str(state), "--gateway", UNREACHABLE, env=NO_KEYRING)
    assert failed.returncode == 1
    shown = json.loads(node_agent("status", "--json", "--state-dir", str(state), "--gateway", UNREACHABLE).stdout)
    assert shown["state"] == "error" and "OS keyring" in shown["lastError"], shown
    assert "retryInSeconds" not in shown or shown["retryInSeconds"] is None
    text = node_agent("status", "--state-dir", str(state), "--gateway", UNREACHABLE).stdout
    assert "Connection refused" not in text and "state:      error" in text and "to fix:" in text, text


def test_a_key_missing_from_the_file_store_is_not_blamed_on_a_keyring(tmp_path):
    state = tmp_path / "state"
    identity = DeviceIdentity.generate()
    write_record(state, IdentityRecord(device_id=identity.device_id, public_key=identity.public_key,
                                       instance_id="i", platform="linux", device_family="Linux", created_at_ms=0))
    (state / "secrets.json").write_text("{}\n")
    (state / "secrets.json").chmod(0o600)
    result = node_agent("run", "--state-dir", str(state), "--secret-backend", "file", "--gateway", UNREACHABLE)
    assert result.returncode == 78, result.stderr
    assert "keyring" not in result.stderr.lower(), result.stderr
    assert f"restore {state / 'secrets.json'} from a backup" in result.stderr


def test_pair_and_status_show_the_gateway_without_its_password(tmp_path):
    password = "pw-in-the-url-0123456789"
    KNOWN_TOKENS.append(password)
    url = f"ws://someone:{password}@127.0.0.1:9"
    state = tmp_path / "state"
    pair = node_agent("pair", "--state-dir", str(state), "--secret-backend", "file", "--gateway", url,
                      "--timeout", "1", env={"OPENCLAW_GATEWAY_TOKEN": "shared-token-for-this-test-0000"})
    assert pair.returncode == 1, pair.stderr
    assert pair.stdout.startswith("Pairing '") and f" with {UNREACHABLE}\n" in pair.stdout, pair.stdout
    for args in (("status",), ("status", "--json")):
        shown = node_agent(*args, "--state-dir", str(state), "--gateway", url)
        assert shown.returncode == 0 and UNREACHABLE in shown.stdout
        assert password not in shown.stdout + shown.stderr
    assert password not in pair.stdout + pair.stderr
    assert password not in (state / "status.json").read_text()
