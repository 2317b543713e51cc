"""What ``status``, ``identity`` and ``doctor`` make of directories set up by someone else: the
system service's state seen as root, and a state directory on a read-only file system.

Both are real situations only root (or a mount) can create, so each test runs the real CLI
inside ``unshare -rm`` (a user namespace where we are root, and a mount namespace where a tmpfs
can be put over ``/var/lib`` and a bind mount made read-only), touching nothing outside it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from node_agent.agent.status import LinkState, StatusBoard
from node_agent.identity import DeviceIdentity, IdentityRecord, write_record
from tests.support.agent_process import REPO


def _namespaces_work() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs none /mnt"], capture_output=True)
    return probe.returncode == 0


pytestmark = pytest.mark.skipif(not _namespaces_work(), reason="needs unshare -rm (user + mount namespaces)")


def in_namespace(setup: str, *args: str, home: Path,
                 setup_args: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    """``python -m node_agent ARGS`` after ``setup`` (sh, as namespace root), with nothing
    configured: no state-dir flag or variable, HOME an empty directory."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OPENCLAW_", "NODE_AGENT_")) and k not in ("STATE_DIRECTORY", "XDG_STATE_HOME")}
    env["HOME"] = str(home)
    script = f'{setup}\nshift {len(setup_args)}\nexec "$@"'
    return subprocess.run(["unshare", "-rm", "sh", "-c", script, "sh", *setup_args, sys.executable, "-m", "node_agent",
                           *args], capture_output=True, text=True, cwd=REPO, env=env, timeout=120)


def test_as_root_status_finds_the_system_service_state(tmp_path):
    service_state = tmp_path / "service-state"
    identity = DeviceIdentity.generate()
    write_record(service_state, IdentityRecord(device_id=identity.device_id, public_key=identity.public_key,
                                               instance_id="i", platform="linux", device_family="Linux",
                                               created_at_ms=1))
    StatusBoard(service_state, gateway="ws://127.0.0.1:18789", device_id=identity.device_id).close(
        state=LinkState.CONNECTED)
    setup = 'mount -t tmpfs none /var/lib && mkdir -m 0700 /var/lib/node-agent && cp "$1"/* /var/lib/node-agent/'
    home = tmp_path / "home"
    home.mkdir()
    shown = in_namespace(setup, "status", "--json", home=home, setup_args=(str(service_state),))
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert data["stateDir"] == "/var/lib/node-agent" and data["state"] == "connected", data
    assert data["deviceId"] == identity.device_id
    text = in_namespace(setup, "status", home=home, setup_args=(str(service_state),)).stdout
    assert "state:      connected" in text and "/var/lib/node-agent (the system service's" in text, text
    ident = in_namespace(setup, "identity", "--json", home=home, setup_args=(str(service_state),))
    assert json.loads(ident.stdout)["deviceId"] == identity.device_id, ident.stderr
    # Root's own default directory, once used, is root's choice again: no second guessing.
    own = home / ".local/state/node-agent"
    StatusBoard(own, gateway="ws://127.0.0.1:18789").close(state=LinkState.STOPPED)
    mine = json.loads(in_namespace(setup, "status", "--json", home=home, setup_args=(str(service_state),)).stdout)
    assert mine["stateDir"] == str(own) and mine["state"] == "stopped"


def test_doctor_on_a_read_only_state_dir_does_not_suggest_chown(tmp_path):
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    setup = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1"'
    result = in_namespace(setup, "doctor", "--json", "--no-audio-probe", "--timeout", "1", "--state-dir", str(state),
                          "--secret-backend", "file", "--gateway", "ws://127.0.0.1:9", home=tmp_path,
                          setup_args=(str(state),))
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    check = checks["state dir"]
    assert check["status"] == "fail" and "read-only" in check["detail"], check
    assert "chown" not in check["fix"] and "remount" in check["fix"] and "read-write" in check["fix"], check
