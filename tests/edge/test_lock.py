"""The state directory's lock (node_agent/lock.py), against the real kernel: flock between
processes, release on any kind of exit, the holder's record, what readers see."""

from __future__ import annotations

import fcntl
import os
import signal
import stat
import subprocess
import sys
import textwrap

import pytest

from node_agent.errors import StateDirBusy
from node_agent.lock import EXIT_BUSY, LOCK_FILE, acquire, read_holder
from tests.support.agent_process import REPO

pytestmark = pytest.mark.skipif(os.name != "posix", reason="flock; the Windows branch needs Windows")


def holder_process(state_dir, *, record: bool = True) -> subprocess.Popen:
    """Another process that takes the lock (through the module, or a bare flock without a
    record), says "locked" and waits."""
    take = (f"from node_agent.lock import acquire; lock = acquire(Path({str(state_dir)!r}), 'run')" if record else
            f"import fcntl, os; fd = os.open({str(state_dir / LOCK_FILE)!r}, os.O_RDWR | os.O_CREAT); "
            "fcntl.flock(fd, fcntl.LOCK_EX)")
    code = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        {take}
        print("locked", flush=True)
        time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=REPO)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_the_first_lock_creates_a_private_directory_and_records_its_holder(tmp_path):
    state = tmp_path / "a" / "state"
    with acquire(state, "pair") as lock:
        assert lock.held
        assert stat.S_IMODE(state.stat().st_mode) == 0o700
        holder = read_holder(state)
        assert holder is not None and holder.pid == os.getpid() and holder.command == "pair"
        assert holder.started_at_ms and holder.started_at_ms > 0
    assert not lock.held
    assert read_holder(state) is None  # released cleanly: nobody holds it
    assert (state / LOCK_FILE).exists()  # never deleted: see the module's invariants


def test_a_second_agent_is_refused_naming_the_holder_and_gets_in_once_it_is_gone(tmp_path):
    proc = holder_process(tmp_path)
    try:
        with pytest.raises(StateDirBusy) as refused:
            acquire(tmp_path, "run")
        assert f"pid {proc.pid}" in refused.value.message and "`node-agent run`" in refused.value.message
        assert f"is using the state directory {tmp_path}" in refused.value.message
        assert "only one agent may use a state directory" in refused.value.hint
        assert refused.value.exit_status == EXIT_BUSY == 75
    finally:
        proc.send_signal(signal.SIGKILL)  # the hardest way to go: the kernel still drops the lock
        proc.wait()
    with acquire(tmp_path, "run") as lock:
        assert lock.held and read_holder(tmp_path).pid == os.getpid()


def test_a_holder_that_has_not_written_its_record_is_described_without_a_pid(tmp_path):
    proc = holder_process(tmp_path, record=False)
    try:
        with pytest.raises(StateDirBusy) as refused:
            acquire(tmp_path, "run")
        assert refused.value.message.startswith("another node-agent (its pid is not recorded) is using")
    finally:
        proc.kill()
        proc.wait()


def test_two_locks_in_one_process_exclude_each_other_and_none_is_inherited(tmp_path):
    with acquire(tmp_path, "run") as lock:
        with pytest.raises(StateDirBusy):
            acquire(tmp_path, "run")  # flock is per open file: a second open in-process is refused too
        fd = lock._fd
        assert fd is not None and not os.get_inheritable(fd)
        assert fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC


def test_a_record_that_is_not_ours_reads_as_no_record(tmp_path):
    (tmp_path / LOCK_FILE).write_text('{"pid": "12", "command": "run\\u0007"}')
    holder = read_holder(tmp_path)
    assert holder is not None and holder.pid is None and holder.command is None
    (tmp_path / LOCK_FILE).write_bytes(b"\xff\xfe garbage")
    assert read_holder(tmp_path) is None


def test_a_directory_that_cannot_be_created_is_a_local_error_with_a_fix(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    from node_agent.errors import LocalError

    with pytest.raises(LocalError) as failed:
        acquire(blocker / "state", "run")
    assert "cannot create state directory" in failed.value.message


def read_only(monkeypatch, directory) -> None:
    """Writes under ``directory`` fail as on a read-only mount (root ignores chmod)."""
    import errno

    real_open = os.open

    def os_open(path, flags, *args, **kwargs):
        if flags & (os.O_CREAT | os.O_WRONLY | os.O_RDWR) and str(path).startswith(str(directory)):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", os_open)


def test_a_read_only_directory_is_still_locked_through_the_file_an_earlier_start_left(tmp_path, monkeypatch):
    acquire(tmp_path, "run").release()  # the paired directory, as a run left it
    read_only(monkeypatch, tmp_path)
    with acquire(tmp_path, "run") as lock:
        assert lock.held
        with pytest.raises(StateDirBusy) as refused:
            acquire(tmp_path, "run")
        # No record: the holder could not write one on a read-only directory.
        assert refused.value.message.startswith("another node-agent (its pid is not recorded)")


def test_a_read_only_directory_without_a_lock_file_runs_unguarded_and_says_so(tmp_path, monkeypatch, caplog):
    read_only(monkeypatch, tmp_path)
    with caplog.at_level("WARNING", logger="node_agent.lock"):
        lock = acquire(tmp_path, "run")
    assert not lock.held
    assert "a second agent on this directory would not be stopped" in caplog.text
    lock.release()  # a no-op, not an error
