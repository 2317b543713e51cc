"""The runner against real processes: timeouts, cancellation, caps, and nothing left behind.

These start real children (``sh``, ``sleep``, ``head``); each test is bounded by ``fail_after``.
Where a test must know a grandchild's pid, the child writes it to a file we then poll.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import trio

from node_agent.exec.runner import OUTPUT_CAP, TIMEOUT_EXIT_CODE, HeadTail, run_command

ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin"}


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it is dead for our purposes only once reaped by its parent.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


async def wait_for_pid_file(path: Path) -> int:
    with trio.fail_after(10):
        while not path.exists() or not path.read_text().strip():
            await trio.sleep(0.01)
    return int(path.read_text().strip())


async def test_a_command_runs_with_exactly_the_given_environment_and_cwd(tmp_path: Path) -> None:
    with trio.fail_after(10):
        result = await run_command(["sh", "-c", "pwd; echo $ONLY; env | wc -l"], cwd=str(tmp_path),
                                   env={**ENV, "ONLY": "yes"})
    lines = result.stdout.split()
    assert result.exit_code == 0 and result.success
    assert lines[0] == str(tmp_path) and lines[1] == "yes"
    assert int(lines[2]) <= 4  # PATH, ONLY, and what sh itself adds (PWD, SHLVL)


async def test_stdin_is_closed_so_a_reader_sees_end_of_file_at_once(tmp_path: Path) -> None:
    with trio.fail_after(10):
        result = await run_command(["cat"], cwd=str(tmp_path), env=ENV)
    assert result.exit_code == 0 and result.stdout == ""


async def test_a_timeout_kills_the_grandchild_and_exits_124(tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild.pid"
    with trio.fail_after(15):
        result = await run_command(["sh", "-c", f"sleep 60 & echo $! > {pid_file}; wait"], cwd=str(tmp_path),
                                   env=ENV, timeout_ms=300)
        grandchild = await wait_for_pid_file(pid_file)
    assert result.timed_out and result.exit_code == TIMEOUT_EXIT_CODE and not result.success
    assert not alive(grandchild)


async def test_a_command_that_ignores_sigterm_is_killed_after_the_grace(tmp_path: Path) -> None:
    with trio.fail_after(15):
        result = await run_command(["sh", "-c", "trap '' TERM; sleep 30"], cwd=str(tmp_path), env=ENV,
                                   timeout_ms=200)
    assert result.timed_out and result.exit_code == TIMEOUT_EXIT_CODE


async def test_a_command_that_picks_its_own_exit_code_on_sigterm_keeps_it(tmp_path: Path) -> None:
    with trio.fail_after(15):
        result = await run_command(["sh", "-c", "trap 'exit 3' TERM; sleep 30 & wait"], cwd=str(tmp_path),
                                   env=ENV, timeout_ms=200)
    assert result.timed_out and result.exit_code == 3


async def test_cancellation_kills_the_whole_tree_and_raises(tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild.pid"
    with trio.fail_after(15):
        with trio.move_on_after(60) as scope:
            async with trio.open_nursery() as nursery:
                async def run() -> None:
                    await run_command(["sh", "-c", f"sleep 60 & echo $! > {pid_file}; wait"], cwd=str(tmp_path),
                                      env=ENV)
                    raise AssertionError("the run should have been cancelled")

                nursery.start_soon(run)
                grandchild = await wait_for_pid_file(pid_file)
                assert alive(grandchild)
                scope.cancel()
    assert scope.cancelled_caught
    assert not alive(grandchild)


async def test_background_children_do_not_outlive_their_command(tmp_path: Path) -> None:
    pid_file = tmp_path / "bg.pid"
    with trio.fail_after(15):
        result = await run_command(["sh", "-c", f"sleep 60 & echo $! > {pid_file}; echo done"], cwd=str(tmp_path),
                                   env=ENV)
        grandchild = await wait_for_pid_file(pid_file)
    assert result.exit_code == 0 and result.stdout == "done\n"
    assert not alive(grandchild)


async def test_ten_megabytes_of_output_keep_the_head_and_the_tail_with_a_marker(tmp_path: Path) -> None:
    script = "printf 'FIRST-LINE\\n'; head -c 10485760 /dev/zero | tr '\\0' x; printf '\\nLAST-ERROR\\n' >&2; " \
             "printf '\\nLAST-LINE\\n'"
    with trio.fail_after(30):
        result = await run_command(["sh", "-c", script], cwd=str(tmp_path), env=ENV)
    assert result.stdout.startswith("FIRST-LINE\n")
    assert result.stdout.endswith("\nLAST-LINE\n")
    total = 11 + 10485760 + 11
    assert result.stdout_bytes == total
    assert f"... [{total - OUTPUT_CAP} bytes truncated] ..." in result.stdout
    assert len(result.stdout.encode()) < OUTPUT_CAP + 100
    assert result.stderr == "\nLAST-ERROR\n"


def test_head_tail_keeps_everything_below_the_cap_and_counts_what_it_drops() -> None:
    buf = HeadTail(cap=10)
    buf.feed(b"abc")
    assert buf.text() == "abc" and buf.dropped == 0
    for chunk in (b"defgh", b"ijklmnop", b"qrstuvwxyz"):
        buf.feed(chunk)
    assert buf.total == 26 and buf.dropped == 16
    assert buf.text() == "abcde\n... [16 bytes truncated] ...\nvwxyz"


async def test_a_missing_executable_is_a_result_with_an_error_not_an_exception(tmp_path: Path) -> None:
    result = await run_command(["/nonexistent/program"], cwd=str(tmp_path), env=ENV)
    assert result.exit_code is None and not result.success
    assert result.error == "command not found: /nonexistent/program"
    assert "exitCode" not in result.payload()


async def test_a_vanished_cwd_is_named_in_the_error(tmp_path: Path) -> None:
    gone = tmp_path / "gone"
    result = await run_command(["true"], cwd=str(gone), env=ENV)
    assert result.error == f"working directory does not exist or is not a directory on this node: {gone}"


async def test_a_signal_death_reports_the_shell_convention_exit_code(tmp_path: Path) -> None:
    result = await run_command(["sh", "-c", "kill -KILL $$"], cwd=str(tmp_path), env=ENV)
    assert result.exit_code == 128 + signal.SIGKILL and not result.timed_out


def _fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def _children() -> set[int]:
    me = str(os.getpid())
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1] == me:
                    found.add(int(entry))
            except (OSError, IndexError):
                continue
    return found


@pytest.mark.parametrize("runs", [200])
async def test_two_hundred_runs_leave_no_fd_and_no_zombie(tmp_path: Path, runs: int) -> None:
    await run_command(["true"], cwd=str(tmp_path), env=ENV)  # warm up trio's process machinery
    fds, children = _fd_count(), _children()
    with trio.fail_after(120):
        for i in range(runs):
            if i % 3 == 0:
                await run_command(["sh", "-c", "sleep 5 & exit 0"], cwd=str(tmp_path), env=ENV)
            elif i % 3 == 1:
                await run_command(["sleep", "5"], cwd=str(tmp_path), env=ENV, timeout_ms=1)
            else:
                await run_command(["echo", str(i)], cwd=str(tmp_path), env=ENV)
    assert _fd_count() == fds
    assert _children() == children
