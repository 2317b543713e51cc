"""``pair`` says "paired" only when the device token is stored, and exits non-zero otherwise;
``run`` keeps going on the token it holds, saves it again on the next connect, and ``status`` and
``doctor`` say meanwhile that it is not saved.

Two ways the store can fail between the pairing request and the approval, as the issue found them:

* a full file system: a real 64 KiB tmpfs as the state directory, mounted by an unprivileged
  root inside ``unshare -rm`` (user + mount namespaces), filled after the request is on show;
  the agent is a real ``python -m node_agent pair`` against the documented-dialect double;
* a keyring that stops answering after the key was stored: the real start path (``serve``)
  with a keyring backend that hangs from the moment the test says so.
"""

from __future__ import annotations

import errno
import functools
import os
import shutil
import subprocess
import sys
import threading

import keyring
import keyring.backend
import pytest
import trio

from node_agent.agent.status import read_status
from node_agent.cli.run_cmd import serve
from node_agent.cli.screens import render_status
from node_agent.config import Config
from node_agent.doctor import Status
from node_agent.doctor.pairing import check_pairing
from node_agent.secret import Secret
from node_agent.secrets import FileStore, device_token_key
from node_agent.secrets import file_store as file_store_module
from tests.support.agent_process import KNOWN_TOKENS, LOG_FILES, REPO, secrets_file, wait_status_file
from tests.support.agents import SHARED
from tests.support.documented_gateway import open_documented_gateway

#: Runs inside the new namespaces: mount the tmpfs, start `pair` on it, fill the disk when the
#: test writes to the `fill` fifo, say so on the `filled` fifo, then report what reached the disk.
WRAPPER = r'''
set -u
state="$1"; ctl="$2"; shift 2
mkdir -p "$state"
mount -t tmpfs -o size=64k,mode=0700 node-agent-test "$state" || exit 99
"$@" &
agent=$!
read -r _ < "$ctl/fill"
dd if=/dev/zero of="$state/filler" bs=1k 2>/dev/null
echo filled > "$ctl/filled"
wait "$agent"
code=$?
if grep -q device-token "$state/secrets.json"; then
    echo "WRAPPER: token on disk"
else
    echo "WRAPPER: no token on disk"
fi
exit "$code"
'''


def _can_mount_tmpfs() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs none /mnt"], capture_output=True)
    return probe.returncode == 0


async def test_pair_on_a_full_file_system_exits_non_zero_saying_what_to_fix(tmp_path):
    if not _can_mount_tmpfs():
        pytest.skip("needs unshare -rm (user + mount namespaces) to mount a tmpfs")
    ctl = tmp_path / "ctl"
    ctl.mkdir()
    for name in ("fill", "filled"):
        os.mkfifo(ctl / name)
    log_path = tmp_path / "pair.log"
    LOG_FILES.append(log_path)
    KNOWN_TOKENS.append(SHARED)
    async with open_documented_gateway(shared_token=SHARED) as gw:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENCLAW_", "NODE_AGENT_"))}
        env["OPENCLAW_GATEWAY_TOKEN"] = SHARED
        argv = ["unshare", "-rm", "bash", "-c", WRAPPER, "wrapper", str(tmp_path / "state"), str(ctl),
                sys.executable, "-m", "node_agent", "pair", "--state-dir", str(tmp_path / "state"),
                "--secret-backend", "file", "--gateway", gw.url, "--protocol", "jsonrpc", "--adapter", "linux"]
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO)
            try:
                with trio.fail_after(60):
                    code = await gw.wait_for_code()  # the request is on show: the key is stored by now
                    await trio.to_thread.run_sync(lambda: (ctl / "fill").write_text("go\n"))
                    await trio.to_thread.run_sync((ctl / "filled").read_text)
                    assert await gw.enter_code(code)  # approved; the token arrives on a full disk
                    while proc.poll() is None:
                        await trio.sleep(0.05)
            finally:
                if proc.poll() is None:
                    proc.kill()
                proc.wait()
    text = log_path.read_text()
    KNOWN_TOKENS.extend(gw.tokens)
    assert proc.returncode == 1, text  # TRANSIENT: the same `pair` works once there is space
    assert "the gateway approved this device, but its device token could not be saved" in text, text
    assert "no space left on device" in text and "to fix: Free some space" in text, text
    assert "run `node-agent pair` again" in text
    assert "paired: this device is an approved node" not in text
    assert "WRAPPER: no token on disk" in text


class StopsAnswering(keyring.backend.KeyringBackend):
    """A keyring that works, then hangs (a Secret Service that locked itself mid-pairing)."""

    priority = 1

    def __init__(self) -> None:
        super().__init__()
        self.passwords: dict[tuple[str, str], str] = {}
        self.hang = threading.Event()
        self.release = threading.Event()

    def _gate(self) -> None:
        if self.hang.is_set():
            self.release.wait(30)

    def get_password(self, service, username):
        self._gate()
        return self.passwords.get((service, username))

    def set_password(self, service, username, password):
        self._gate()
        self.passwords[(service, username)] = password

    def delete_password(self, service, username):
        self._gate()
        self.passwords.pop((service, username), None)


keyring.backend.KeyringBackend._classes.discard(StopsAnswering)  # never offered to keyring's discovery


async def test_pair_with_a_keyring_that_stops_answering_exits_non_zero(tmp_path, monkeypatch):
    backend = StopsAnswering()
    monkeypatch.setattr(keyring.core, "_keyring_backend", backend)
    said: list[str] = []
    try:
        async with open_documented_gateway(shared_token=SHARED) as gw:
            config = Config(gateway_url=gw.url, shared_token=Secret(SHARED), state_dir=tmp_path / "state",
                            protocol="jsonrpc", adapter="linux", secret_backend="keyring", secret_timeout=0.5,
                            display_name="keyring-pair")
            with trio.fail_after(30):
                async with trio.open_nursery() as nursery:
                    codes: list[int] = []

                    def out(notice) -> None:
                        said.append(notice if isinstance(notice, str) else notice.text)

                    async def run() -> None:
                        codes.append(await serve(config, pair_mode=True, out=out))

                    nursery.start_soon(run)
                    code = await gw.wait_for_code()
                    assert any(k == "device-key" for _, k in backend.passwords)  # the key got in
                    backend.hang.set()
                    assert await gw.enter_code(code)
            KNOWN_TOKENS.extend(gw.tokens)
    finally:
        backend.release.set()
    text = "\n".join(said)
    assert codes == [1], text
    assert "its device token could not be saved: keyring did not answer within 0.5 s" in text
    assert "paired: this device is an approved node" not in text
    assert not any(k.startswith("device-token") for _, k in backend.passwords)


async def test_run_saves_a_token_it_could_not_save_on_the_next_connect_and_says_so_meanwhile(tmp_path, monkeypatch):
    full = True
    real_atomic_write = file_store_module.atomic_write

    def atomic_write(path, data: bytes, mode: int = 0o600) -> None:
        if full and b"device-token" in data:  # the key fits; the token does not
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_atomic_write(path, data, mode)

    monkeypatch.setattr(file_store_module, "atomic_write", atomic_write)
    state = tmp_path / "state"
    async with open_documented_gateway(shared_token=SHARED, auto_approve=True) as gw:
        config = Config(gateway_url=gw.url, shared_token=Secret(SHARED), state_dir=state, protocol="jsonrpc",
                        adapter="linux", secret_backend="file", display_name="full-disk-run")
        agents: list = []
        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(functools.partial(serve, config, ready=agents.append))
                shown = await wait_status_file(state, lambda s: s.state.value == "connected" and s.token_save_error)
                assert "no space left on device" in shown.token_save_error
                assert "token:      not saved: cannot write secrets file" in render_status(
                    shown, gateway=gw.url, device_id=None)
                check = await check_pairing(config, FileStore(state / "secrets.json"), read_status(state))
                assert check.status is Status.WARN and "could not be saved" in check.detail, check
                full = False  # space freed: the next connect brings the token again
                await gw.drop()
                await wait_status_file(state, lambda s: s.state.value == "connected" and not s.token_save_error)
                assert secrets_file(state)[device_token_key(gw.url)] in gw.tokens
                agents[0].request_stop()
        KNOWN_TOKENS.extend(gw.tokens)
    assert read_status(state).token_save_error is None
