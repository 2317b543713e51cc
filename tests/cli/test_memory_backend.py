"""``--secret-backend memory`` leaves the state directory usable: real ``python -m node_agent``
runs against the documented-dialect double, a memory run first, then a file-backed one.

The memory store forgets the key when the process ends, so a memory run must not leave an
``identity.json`` naming that key (every later start, with any store, would fail closed on it),
nor create the directory world-readable. What it may leave is what any run leaves: the lock file,
its last status and the exec policy document.
"""

from __future__ import annotations

import stat
from pathlib import Path

from node_agent.exec.store import FILE_NAME as EXEC_POLICY_FILE
from tests.support.agent_process import AgentProcess, wait_status_file
from tests.support.agents import SHARED
from tests.support.documented_gateway import open_documented_gateway
from tests.support.state_dirs import assert_identity_intact, paired_directory

ARGS = ["--protocol", "jsonrpc", "--adapter", "linux"]


async def run_until_connected(state: Path, url: str, *, backend: str, token: str | None, name: str) -> str:
    agent = AgentProcess("run", state_dir=state, gateway_url=url, token=token, name=name,
                         extra=[*ARGS, "--secret-backend", backend])
    try:
        status = await wait_status_file(state, lambda s: s.pid == agent.proc.pid and s.state.value == "connected")
        code, _ = await agent.terminate()
        assert code == 0, agent.text()[-2000:]
    finally:
        agent.kill()
    assert status.device_id
    return status.device_id


async def test_a_memory_run_then_a_file_run_on_one_directory(tmp_path):
    state = tmp_path / "state"
    async with open_documented_gateway(shared_token=SHARED, auto_approve=True) as gw:
        await run_until_connected(state, gw.url, backend="memory", token=SHARED, name="memory")
        # What any run leaves (the lock, its status, the exec policy document it publishes), and
        # nothing of the throwaway identity.
        left = {p.name for p in state.iterdir()}
        assert {"agent.lock", "status.json"} <= left <= {"agent.lock", "status.json", EXEC_POLICY_FILE}, left
        assert stat.S_IMODE(state.stat().st_mode) == 0o700
        device = await run_until_connected(state, gw.url, backend="file", token=SHARED, name="file")
    assert assert_identity_intact(state, token_for=gw.url, marker=False) == device


async def test_a_memory_run_on_a_paired_directory_leaves_the_pairing_alone(tmp_path):
    state = tmp_path / "state"
    async with open_documented_gateway(shared_token=SHARED, auto_approve=True) as gw:
        paired = await paired_directory(gw, state)
        before = {name: (state / name).read_bytes() for name in ("identity.json", "secrets.json", "secret-backend")}
        ephemeral = await run_until_connected(state, gw.url, backend="memory", token=SHARED, name="memory")
        assert ephemeral != paired  # a device of its own, for this run only
        assert {name: (state / name).read_bytes() for name in before} == before
        # ...and the paired device still gets in with its stored token alone.
        assert await run_until_connected(state, gw.url, backend="file", token=None, name="file") == paired
