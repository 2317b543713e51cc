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


def _every_section():
    from node_agent.agent.status import (AgentStatus, EventRefusal, ExecDenial, ExecStatus, LinkStatus,
                                         McpServerState, McpServerStatus, PairingStatus, PublishedTool, Surface,
                                         ToolsStatus, VoiceStatus)

    return AgentStatus(
        pid=41, started_at_ms=1, updated_at_ms=2, state=LinkState.CONNECTED, gateway="ws://127.0.0.1:18789",
        device_id="ab" * 32, retry_in_seconds=1.5, pairing=PairingStatus(request_id="r-1", expires_at_ms=9),
        surface=Surface.APPROVED, voice_wake_triggers=("okay nabu",),
        voice=VoiceStatus(mode="voice-wake", phase="listening", active_triggers=("okay nabu",), wake_count=3,
                          last_wake={"trigger": "okay nabu", "score": 0.97}, wake_models={"okay nabu": "micro"}),
        operator_link=LinkStatus(state=LinkState.WAITING, scopes=("operator.read",), granted_scopes=None,
                                 pairing=PairingStatus(code="123456")),
        exec=ExecStatus(approvals_path="/s/exec-approvals.json", security="allowlist", ask="on-miss",
                        ask_fallback="deny", runs=7,
                        last_denials=(ExecDenial(at_ms=5, command="rm -rf /", reason="allowlist-miss"),)),
        tools=ToolsStatus(servers=(McpServerStatus(name="time", state=McpServerState.READY, tools=("now",)),),
                          published=(PublishedTool(name="time__now", server="time", tool="now"),), sent=1, kept=1),
        refused_events=(EventRefusal(event="exec.finished", reason="unknown run", count=2),))


def test_the_status_model_round_trips_through_its_camel_case_json(tmp_path):
    import json

    from node_agent.agent.status import from_json, to_json

    status = _every_section()
    data = json.loads(json.dumps(to_json(status)))
    assert data["operatorLink"]["grantedScopes"] is None and data["exec"]["lastDenials"][0]["atMs"] == 5
    assert data["tools"]["servers"][0]["state"] == "ready" and data["retryInSeconds"] == 1.5
    assert from_json(data) == status


def test_a_status_file_that_does_not_fit_is_refused_in_one_line_and_unknown_keys_are_ignored():
    import pytest

    from node_agent.agent.status import from_json, to_json

    data = to_json(_every_section())
    assert from_json({**data, "fromANewerAgent": {"x": 1}}) == _every_section()
    assert from_json({"state": "connected", "retryInSeconds": 2}).retry_in_seconds == 2.0  # an int is a float
    for bad in ({"state": "melting"}, {"pid": "41"}, {"pid": True}, {"voice": {"mode": "voice-wake"}},
                {"exec": []}, {"refusedEvents": {"event": "x"}}, {"voiceWakeTriggers": "okay nabu"}):
        with pytest.raises(ValueError, match="^status file does not fit the status model") as caught:
            from_json(bad)
        assert "\n" not in str(caught.value)
