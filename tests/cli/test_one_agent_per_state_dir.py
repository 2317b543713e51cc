"""One agent per state directory, proved with real ``python -m node_agent`` processes.

Two agents started at the same instant on one directory, against the documented-dialect double
on loopback (it runs in this test's Trio loop): exactly one runs, the other exits at once with
status 75 and a message naming the first, and no file of the directory is lost or torn, both on
a fresh directory (the first start creates the identity) and on a paired one (the token must
survive). Rounds run a few at a time on separate directories to keep the whole thing fast; each
round is a genuine race (both processes are started back to back and do the same work before
they reach the lock).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import trio

from tests.support.agent_process import REPO, AgentProcess, wait_status_file
from tests.support.agents import SHARED
from tests.support.documented_gateway import DocumentedGateway, open_documented_gateway
from tests.support.state_dirs import assert_identity_intact, paired_directory

ROUNDS = 50
#: Rounds at a time (each is two processes); the machine has two cores.
BATCH = 5
EXIT_BUSY = 75


async def first_exit(a: AgentProcess, b: AgentProcess, timeout: float = 60.0) -> tuple[AgentProcess, AgentProcess]:
    """(the one that exited, the one still running); fails if neither or both exit."""
    with trio.move_on_after(timeout):
        while a.proc.poll() is None and b.proc.poll() is None:
            await trio.sleep(0.02)
    done = [p for p in (a, b) if p.proc.poll() is not None]
    assert len(done) == 1, (f"expected exactly one of the two agents to exit, {len(done)} did:\n"
                            f"--- a ---\n{a.text()[-1500:]}\n--- b ---\n{b.text()[-1500:]}")
    loser = done[0]
    return loser, (b if loser is a else a)


def assert_refused_naming(loser: AgentProcess, winner: AgentProcess) -> None:
    text = loser.text()
    assert loser.proc.returncode == EXIT_BUSY, text
    assert f"pid {winner.proc.pid}" in text and "is using the state directory" in text, text
    assert "Traceback" not in text, text


async def race_on_a_fresh_directory(gw: DocumentedGateway, root: Path, n: int) -> None:
    state = root / f"fresh-{n}"
    # `auto`: a first start chooses the store and records the choice (the write the issue saw
    # fail when the other process swept its temp file away).
    a, b = (AgentProcess("run", state_dir=state, gateway_url=gw.url, token=SHARED, name=f"{name}{n}",
                         extra=["--protocol", "jsonrpc", "--adapter", "linux", "--secret-backend", "auto"],
                         log_dir=root / "logs")
            for name in ("a", "b"))
    try:
        loser, winner = await first_exit(a, b)
        assert_refused_naming(loser, winner)
        # The winner really runs: it asked the gateway to pair (a code is on show) and said so.
        status = await wait_status_file(
            state, lambda s: s.pid == winner.proc.pid and s.state.value == "pairing", timeout=60)
        assert status.pairing is not None and status.pairing.code
        code, _ = await winner.terminate()
        assert code == 0, winner.text()[-2000:]
        assert_identity_intact(state)
    finally:
        a.kill()
        b.kill()


async def test_two_agents_racing_on_a_fresh_directory_one_runs_one_exits_naming_it(tmp_path):
    async with open_documented_gateway(shared_token=SHARED) as gw:
        for first in range(0, ROUNDS, BATCH):
            async with trio.open_nursery() as nursery:
                for n in range(first, first + BATCH):
                    nursery.start_soon(race_on_a_fresh_directory, gw, tmp_path, n)


async def test_two_agents_racing_on_a_paired_directory_one_connects_and_nothing_is_lost(tmp_path):
    async with open_documented_gateway(shared_token=SHARED) as gw:
        states = [tmp_path / f"paired-{n}" for n in range(BATCH)]
        before = {}
        for state in states:
            await paired_directory(gw, state)
            before[state] = {name: (state / name).read_bytes() for name in ("identity.json", "secrets.json")}

        async def round_(state: Path, n: int) -> None:
            # No shared token: only the stored device token gets these agents in.
            a, b = (AgentProcess("run", state_dir=state, gateway_url=gw.url, token=None, name=f"{name}{n}",
                                 extra=["--protocol", "jsonrpc", "--adapter", "linux"], log_dir=tmp_path / "logs")
                    for name in ("a", "b"))
            try:
                loser, winner = await first_exit(a, b)
                assert_refused_naming(loser, winner)
                await wait_status_file(
                    state, lambda s: s.pid == winner.proc.pid and s.state.value == "connected", timeout=60)
                code, _ = await winner.terminate()
                assert code == 0, winner.text()[-2000:]
            finally:
                a.kill()
                b.kill()

        for first in range(0, ROUNDS, BATCH):
            async with trio.open_nursery() as nursery:
                for i, state in enumerate(states):
                    nursery.start_soon(round_, state, first + i)
        # One connection per round, never two agents of one device at once.
        assert len(gw.connections) == ROUNDS
        for state in states:
            assert_identity_intact(state, token_for=gw.url)
            assert {name: (state / name).read_bytes() for name in ("identity.json", "secrets.json")} == before[state]


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "node_agent", *args], capture_output=True, text=True,
                          cwd=REPO, timeout=60, env=env)


async def test_while_an_agent_runs_readers_work_and_writers_are_refused(tmp_path):
    async with open_documented_gateway(shared_token=SHARED) as gw:
        state = tmp_path / "state"
        device_id = await paired_directory(gw, state)
        agent = AgentProcess("run", state_dir=state, gateway_url=gw.url, token=None, name="holder",
                             extra=["--protocol", "jsonrpc", "--adapter", "linux"])
        try:
            await wait_status_file(state, lambda s: s.pid == agent.proc.pid and s.state.value == "connected")
            common = ["--state-dir", str(state), "--gateway", gw.url, "--secret-backend", "file"]
            status = await trio.to_thread.run_sync(lambda: cli("status", "--json", *common))
            assert status.returncode == 0 and json.loads(status.stdout)["pid"] == agent.proc.pid
            ident = await trio.to_thread.run_sync(lambda: cli("identity", "--json", *common))
            assert ident.returncode == 0 and json.loads(ident.stdout)["deviceId"] == device_id
            doctor = await trio.to_thread.run_sync(
                lambda: cli("doctor", "--json", "--no-audio-probe", "--timeout", "2", *common))
            checks = {c["name"]: c for c in json.loads(doctor.stdout)["checks"]}
            assert checks["identity"]["status"] == "ok" and checks["state dir"]["status"] == "ok", checks
            for writer in (["pair", "--protocol", "jsonrpc"], ["unpair", "--yes"], ["run", "--protocol", "jsonrpc"]):
                refused = await trio.to_thread.run_sync(lambda: cli(*writer, *common))
                assert refused.returncode == EXIT_BUSY, (writer, refused.stderr)
                assert f"pid {agent.proc.pid}" in refused.stderr and "`node-agent run`" in refused.stderr
                assert "to fix: only one agent may use a state directory" in refused.stderr
            # The refused ones never connected (doctor's probe only upgrades and closes).
            assert [c.id for c in gw.connections if c.ready] == [1]
            code, _ = await agent.terminate()
            assert code == 0
        finally:
            agent.kill()
        assert_identity_intact(state, token_for=gw.url)
