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
