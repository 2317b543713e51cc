"""``status.json`` is replaced atomically but not fsynced; secrets are fsynced (file and directory).

The status file describes the running process and is rewritten on every change: an fsync per
change is milliseconds on the exit path and SD-card wear, for a file a power cut makes moot.
"""

from __future__ import annotations

import os

from node_agent.agent.status import LinkState, StatusBoard, read_status
from node_agent.atomic import atomic_write


def _count_fsyncs(monkeypatch) -> list[int]:
    synced: list[int] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        synced.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return synced


def test_the_status_file_is_complete_without_an_fsync(tmp_path, monkeypatch):
    synced = _count_fsyncs(monkeypatch)
    board = StatusBoard(tmp_path)
    board.close(state=LinkState.STOPPED)
    status = read_status(tmp_path)
    assert status is not None and status.state is LinkState.STOPPED and status.pid is None
    assert synced == []
    assert [p.name for p in tmp_path.iterdir()] == ["status.json"]  # no temp file left behind


def test_a_durable_write_syncs_the_file_and_its_directory(tmp_path, monkeypatch):
    synced = _count_fsyncs(monkeypatch)
    atomic_write(tmp_path / "secrets.json", b"{}\n")
    assert len(synced) == 2 and (tmp_path / "secrets.json").read_bytes() == b"{}\n"


async def test_a_burst_of_changes_is_one_write_a_second_the_first_at_once(autojump_clock, tmp_path, monkeypatch):
    """500 commands in a row must not be 500 file writes: the writer writes the latest state at
    most once per WRITE_INTERVAL_S, and the first change after a quiet interval at once."""
    import trio

    from node_agent.agent import status as status_module

    writes: list[tuple[float, float | None]] = []
    board = StatusBoard(tmp_path)
    real_write = board._write_locked

    def write(snapshot):
        real_write(snapshot)
        writes.append((trio.current_time(), snapshot.retry_in_seconds))

    async def inline(fn, *args):  # the worker thread, inline: virtual time stays exact
        return fn(*args)

    monkeypatch.setattr(board, "_write_locked", write)
    monkeypatch.setattr(trio.to_thread, "run_sync", inline)
    assert status_module.WRITE_INTERVAL_S == 1.0
    async with trio.open_nursery() as nursery:
        nursery.start_soon(board.run)
        for at, value in ((0.2, 1.0), (0.5, 2.0), (0.9, 3.0), (5.0, 4.0), (5.1, 5.0)):
            await trio.sleep_until(at)
            board.update(retry_in_seconds=value)
        await trio.sleep_until(10.0)
        nursery.cancel_scope.cancel()
    assert writes == [(0.0, None), (1.0, 3.0), (5.0, 4.0), (6.0, 5.0)]
    assert read_status(tmp_path).retry_in_seconds == 5.0
