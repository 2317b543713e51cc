"""VoicePipeline behaviour with fake models, in virtual time.

Audio is synthetic and chunk-aligned (80 ms chunks): silence is zeros, "speech" is a constant
5000 (the fake VAD calls anything louder than 1000 speech) and the wake marker is a constant 777
(the fake detector fires on it; the VAD calls it silence). A realtime BytesSource hands out chunk
*i* at ``open + (i + 1) * 0.08`` s, so every time below is exact under ``autojump_clock``.
"""

from __future__ import annotations

import pytest
import trio

from node_agent.errors import ConnectionLost
from node_agent.voice import AudioDeviceError, CaptureSettings, Mode, Phase, VoiceError, VoicePipeline, VoiceUnavailable
from tests.support.voice_fakes import (
    WAKE_THEN_COMMAND,
    CountingSource,
    FailingSource,
    FakeDetector,
    FakeSTT,
    FakeVad,
    RecordingIndicator,
    audio,
)


def make(pcm: bytes, *, mode=Mode.VOICE_WAKE, stt=None, triggers=("hey jarvis",), **kw):
    got = []

    async def on_transcript(t):
        got.append((round(trio.current_time(), 3), t))

    source = kw.pop("source", None) or CountingSource(pcm)
    p = VoicePipeline(source, on_transcript=kw.pop("on_transcript", on_transcript),
                      stt=stt if stt is not None else FakeSTT(), detector=kw.pop("detector", FakeDetector()),
                      vad_factory=kw.pop("vad_factory", FakeVad), mode=mode, offload=False, **kw)
    if triggers is not None:
        p.set_triggers(list(triggers))
    return p, source, got


async def test_wake_then_command_is_transcribed_at_the_exact_time(autojump_clock):
    indicator = RecordingIndicator()
    p, source, got = make(WAKE_THEN_COMMAND, indicator=indicator)
    await p.run()
    # The wake marker is chunk 13 (delivered at 1.12 s); the capture starts with chunk 14.
    # Speech ends 17920 samples into the capture, exactly on a 512-sample window boundary; 1.0 s
    # of silence takes 32 windows (31 are 0.992 s), completing at sample 34304 of the capture,
    # inside capture chunk 26 = stream chunk 40, delivered at 41 * 0.08 = 3.28 s.
    assert [(t, tr.text, tr.trigger, tr.source) for t, tr in got] == [
        (3.28, "speech 1.04s of 2.16s", "hey jarvis", "wake")]
    st = p.status()
    assert st["wakeCount"] == 1 and st["transcriptCount"] == 1
    assert st["lastResult"]["status"] == "queued" and st["lastResult"]["reason"] == "silence"
    assert st["lastWake"]["trigger"] == "hey jarvis"
    assert [s for _, s in indicator.states] == ["idle", "listening", "thinking", "idle", "off"]
    assert indicator.states[1] == (1.12, "listening")


async def test_no_speech_after_wake_times_out_and_the_next_wake_still_works(autojump_clock):
    pcm = audio(("sil", 0.4), ("wake", 0.08), ("sil", 6.0), ("wake", 0.08), ("speech", 0.48), ("sil", 1.2))
    stt = FakeSTT()
    p, source, got = make(pcm, stt=stt)
    results = []
    orig = p._process

    async def spy(cap, audio):
        await orig(cap, audio)
        results.append((round(trio.current_time(), 3), cap.result["status"], cap.utterance.reason.value))

    p._process = spy
    await p.run()
    # First wake at chunk 5 (delivered at 0.48 s); the capture gives up at the first chunk that
    # completes 5.0 s of audio, its 63rd (5.04 s): 0.48 + 5.04.
    assert results[0] == (5.52, "empty", "no_speech")
    assert results[1][1:] == ("queued", "silence")
    assert len(stt.calls) == 1  # the empty capture was streamed but never asked for a transcript
    assert len(stt.starts) == 2 and stt.closed == 2
    assert [tr.text for _, tr in got] == ["speech 0.48s of 1.52s"]
    assert p.wake_count == 2


async def test_endless_speech_stops_at_max_length(autojump_clock):
    pcm = audio(("wake", 0.08), ("speech", 12.0), ("sil", 1.0))
    p, source, got = make(pcm, capture=CaptureSettings(max_s=5.0))
    await p.run()
    # It stops at the first chunk that completes 5.0 s: the 63rd (5.04 s), delivered at 0.08 + 5.04.
    assert [(t, tr.text) for t, tr in got] == [(5.12, "speech 5.04s of 5.04s")]
    assert p.status()["lastResult"]["reason"] == "max_length"


async def test_unsupported_triggers_are_reported_and_the_mic_stays_closed(autojump_clock):
    p, source, got = make(WAKE_THEN_COMMAND, triggers=["openclaw", "Computer"])
    assert p.set_triggers(["openclaw", "Computer"]) == ([], ["openclaw", "Computer"])
    st = p.status()
    assert st["activeTriggers"] == [] and st["unsupportedTriggers"] == ["openclaw", "Computer"]
    async with trio.open_nursery() as nursery:
        await nursery.start(p.run)
        await trio.sleep(5)
        assert source.opens == [] and p.phase == Phase.OFF
        # voicewake.changed brings a supported trigger: the microphone opens at once.
        assert p.set_triggers(["openclaw", "Hey, Jarvis!"]) == (["Hey, Jarvis!"], ["openclaw"])
        await trio.sleep(0.01)
        assert source.opens == [5.0]
        await trio.sleep(10)
    assert [tr.trigger for _, tr in got] == ["Hey, Jarvis!"]


async def test_local_triggers_are_added_to_the_gateways(autojump_clock):
    p, source, got = make(WAKE_THEN_COMMAND, triggers=None, local_triggers=["alexa"])
    assert p.status()["activeTriggers"] == ["alexa"]
    assert p.set_triggers(["openclaw"]) == (["alexa"], ["openclaw"])


async def test_push_to_talk_opens_the_mic_only_while_held(autojump_clock):
    pcm = audio(("speech", 1.6), ("sil", 10.0))
    p, source, got = make(pcm, mode=Mode.PUSH_TO_TALK)
    async with trio.open_nursery() as nursery:
        await nursery.start(p.run)
        await trio.sleep(1)
        assert source.opens == [] and p.phase == Phase.OFF
        started = await p.ptt_start()
        assert trio.current_time() == 1.08  # returned once the first chunk arrived
        assert p.phase == Phase.LISTENING
        assert await p.ptt_start() == started  # idempotent while held
        await trio.sleep_until(2.95)  # between chunks: 24 delivered (1.08 ... 2.92 s)
        stopped = await p.ptt_stop()
        assert stopped == {"captureId": started["captureId"], "status": "queued",
                           "transcript": "speech 1.60s of 1.92s"}
        await trio.sleep(1)
        assert p.phase == Phase.OFF and source.opens == [1.0]
        assert await p.ptt_stop() == {"captureId": started["captureId"], "status": "idle"}
        nursery.cancel_scope.cancel()
    assert [tr.source for _, tr in got] == ["ptt"]


async def test_ptt_once_ends_on_silence_or_reports_empty(autojump_clock):
    p, source, got = make(audio(("speech", 0.8), ("sil", 8.0)), mode=Mode.PUSH_TO_TALK)
    async with trio.open_nursery() as nursery:
        await nursery.start(p.run)
        result = await p.ptt_once()
        assert result["status"] == "queued" and result["transcript"].startswith("speech 0.80s")
        # 0.8 s speech + 1.0 s silence (+ the window in progress) -> ends at 1.84 s.
        assert trio.current_time() == 1.84
        p.source = CountingSource(audio(("sil", 8.0)))
        t0 = trio.current_time()
        result = await p.ptt_once()
        assert result["status"] == "empty" and "transcript" not in result
        assert trio.current_time() - t0 == pytest.approx(5.04)  # no_speech_timeout_s, in whole chunks
        nursery.cancel_scope.cancel()


async def test_ptt_once_while_held_is_busy(autojump_clock):
    p, source, got = make(audio(("speech", 5.0)), mode=Mode.PUSH_TO_TALK)
    async with trio.open_nursery() as nursery:
        await nursery.start(p.run)
        started = await p.ptt_start()
        assert await p.ptt_once() == {"captureId": started["captureId"], "status": "busy"}
        nursery.cancel_scope.cancel()


async def test_ptt_cancel_drops_the_capture(autojump_clock):
    stt = FakeSTT()
    p, source, got = make(audio(("speech", 5.0)), mode=Mode.PUSH_TO_TALK, stt=stt)
    async with trio.open_nursery() as nursery:
        await nursery.start(p.run)
        started = await p.ptt_start()
        await trio.sleep(1)
        assert p.ptt_cancel() == {"captureId": started["captureId"], "status": "cancelled"}
        assert (await p.ptt_stop())["status"] == "idle"
        assert p.ptt_cancel()["status"] == "idle"
        nursery.cancel_scope.cancel()
    assert stt.calls == [] and got == []


async def test_ptt_cancel_during_transcription(autojump_clock):
    stt = FakeSTT(delay=2.0)
    p, source, got = make(audio(("speech", 5.0)), mode=Mode.PUSH_TO_TALK, stt=stt)
    async with trio.open_nursery() as nursery:
        await nursery.start(p.run)
        await p.ptt_start()
        await trio.sleep(1)
        results = []

        async def stop():
            results.append(await p.ptt_stop())

        nursery.start_soon(stop)
        await trio.sleep(0.5)
        assert p.phase == Phase.THINKING
        assert p.ptt_cancel()["status"] == "cancelled"
        await trio.sleep(0.1)
        assert results[0]["status"] == "cancelled" and "transcript" not in results[0]
        nursery.cancel_scope.cancel()
    assert len(stt.calls) == 1 and got == []


async def test_disabled_mode_refuses_ptt_and_never_opens_the_mic(autojump_clock):
    p, source, got = make(WAKE_THEN_COMMAND, mode=Mode.DISABLED)
    async with trio.open_nursery() as nursery:
        await nursery.start(p.run)
        with pytest.raises(VoiceError):
            await p.ptt_start()
        with pytest.raises(VoiceError):
            await p.ptt_once()
        await trio.sleep(10)
        assert source.opens == [] and p.status()["phase"] == "off"
        nursery.cancel_scope.cancel()


async def test_switching_modes_drops_the_old_modes_capture(autojump_clock):
    p, source, got = make(audio(("wake", 0.08), ("speech", 20.0)))
    async with trio.open_nursery() as nursery:
        await nursery.start(p.run)
        await trio.sleep(1)
        assert p.phase == Phase.LISTENING
        p.set_mode("push-to-talk")
        assert p.phase == Phase.IDLE  # capture dropped; the microphone closes with the next chunk
        await trio.sleep(1)
        assert p.phase == Phase.OFF and not p.status()["audioOpen"]
        nursery.cancel_scope.cancel()
    assert got == []


async def test_always_on_captures_each_utterance_with_pre_roll(autojump_clock):
    pcm = audio(("sil", 2.0), ("speech", 0.8), ("sil", 1.6), ("speech", 0.4), ("sil", 2.0))
    p, source, got = make(pcm, mode=Mode.ALWAYS_ON, triggers=None)
    await p.run()
    assert [(tr.source, tr.text.split(" of ")[0]) for _, tr in got] == [
        ("always-on", "speech 0.80s"), ("always-on", "speech 0.40s")]
    # Each holds up to 0.3 s of pre-roll, the speech, and the ~1 s of silence that ended it.
    for (_, tr), speech in zip(got, (0.8, 0.4)):
        assert speech + 1.0 <= tr.audio_s <= speech + 0.3 + 1.1


async def test_muted_while_speaking_ignores_wake_words(autojump_clock):
    pcm = audio(("sil", 0.4), ("wake", 0.08), ("speech", 0.5), ("sil", 3.0), ("wake", 0.08), ("speech", 0.5),
                ("sil", 2.0))
    p, source, got = make(pcm)
    async with trio.open_nursery() as nursery:
        await nursery.start(p.run)
        async with p.muted():
            await trio.sleep(2.0)  # the first wake word falls in here
        await trio.sleep(10)
    assert p.wake_count == 1 and len(got) == 1


async def test_feedback_sound_mutes_the_start_of_the_capture(autojump_clock):
    played = []

    async def feedback(event):
        played.append((round(trio.current_time(), 3), event))
        await trio.sleep(0.5)

    # Speech straight after the wake falls under the chime and is ignored; what follows counts.
    pcm = audio(("wake", 0.08), ("speech", 0.4), ("sil", 0.4), ("speech", 0.8), ("sil", 2.0))
    p, source, got = make(pcm, feedback=feedback)
    await p.run()
    assert played == [(0.08, "wake")]
    # Muted from 0.08 to 0.58 s: the chunks delivered at 0.16 ... 0.56 (0.4 s of speech and 0.08 s
    # of silence) are dropped; the capture holds 0.32 s silence + 0.8 s speech + 1.04 s silence.
    assert [tr.text for _, tr in got] == ["speech 0.80s of 2.16s"]


@pytest.mark.parametrize("exc, status", [(ConnectionLost("gone"), "offline"), (RuntimeError("bug"), "error")])
async def test_a_failing_callback_is_reported_and_listening_goes_on(autojump_clock, exc, status):
    calls = []

    async def on_transcript(t):
        calls.append(t)
        raise exc

    pcm = WAKE_THEN_COMMAND + WAKE_THEN_COMMAND
    p, source, got = make(pcm, on_transcript=on_transcript)
    await p.run()
    assert len(calls) == 2
    assert p.status()["lastResult"]["status"] == status and p.transcript_count == 0


async def test_stt_failure_is_reported_and_listening_goes_on(autojump_clock):
    p, source, got = make(WAKE_THEN_COMMAND + WAKE_THEN_COMMAND, stt=FakeSTT(fail=True))
    await p.run()
    assert p.wake_count == 2 and p.status()["lastResult"]["status"] == "error"


async def test_ptt_stop_without_stt_engine_reports_error(autojump_clock):
    p, source, got = make(audio(("speech", 3.0)), mode=Mode.PUSH_TO_TALK)
    p.stt = None
    async with trio.open_nursery() as nursery:
        await nursery.start(p.run)
        await p.ptt_start()
        await trio.sleep(1)
        assert (await p.ptt_stop())["status"] == "error"
        nursery.cancel_scope.cancel()


async def test_busy_microphone_backs_off_and_recovers(autojump_clock):
    indicator = RecordingIndicator()
    source = FailingSource(6, WAKE_THEN_COMMAND)
    p, _, got = make(b"", source=source, indicator=indicator)
    await p.run()
    assert source.opens == [0, 1, 3, 7, 15, 31, 61]  # 1, 2, 4, 8, 16, 30 s (capped)
    assert p.audio_restarts == 6 and p.status()["lastError"] is None
    assert ("error" in [s for _, s in indicator.states]) and len(got) == 1


async def test_ptt_during_backoff_retries_at_once_and_reports_the_error(autojump_clock):
    source = FailingSource(10)
    p, _, got = make(b"", source=source, mode=Mode.ALWAYS_ON)
    async with trio.open_nursery() as nursery:
        await nursery.start(p.run)
        await trio.sleep(2)
        assert p.phase == Phase.ERROR
        assert p.status()["lastError"]["message"] == "Device or resource busy"
        with pytest.raises(AudioDeviceError, match="busy"):
            await p.ptt_start()
        assert source.opens == [0, 1, 2]  # the press cut the 2 s back-off short
        nursery.cancel_scope.cancel()


async def test_missing_dependency_waits_for_a_change_instead_of_polling(autojump_clock):
    source = FailingSource(10, exc=VoiceUnavailable)
    p, _, got = make(b"", source=source, mode=Mode.ALWAYS_ON)
    async with trio.open_nursery() as nursery:
        await nursery.start(p.run)
        await trio.sleep(600)
        assert source.opens == [0]
        with pytest.raises(VoiceUnavailable):
            await p.ptt_start()
        assert source.opens == [0, 600]
        nursery.cancel_scope.cancel()


async def test_debug_dir_keeps_wake_and_utterance_audio(autojump_clock, tmp_path):
    p, source, got = make(WAKE_THEN_COMMAND, debug_dir=tmp_path / "dbg", ring_seconds=2.0)
    await p.run()
    names = sorted(f.name for f in (tmp_path / "dbg").iterdir())
    assert len(names) == 2
    assert any("-wake-fake-0.90" in n for n in names) and any("-utterance-wake-silence" in n for n in names)
    import wave

    wake_wav = next((tmp_path / "dbg").glob("*-wake-fake-*"))
    with wave.open(str(wake_wav)) as w:
        assert w.getframerate() == 16000 and w.getnframes() == 14 * 1280  # all audio up to the wake


async def test_status_is_json_serialisable(autojump_clock):
    import json

    p, source, got = make(WAKE_THEN_COMMAND)
    await p.run()
    json.dumps(p.status())
    assert repr(p).startswith("VoicePipeline(mode=voice-wake")


async def test_ptt_stop_while_a_chunk_is_in_the_worker_thread_waits_for_it():
    """With real threads: the stop arrives while the VAD is busy with a chunk in a worker thread.
    The capture is finished only after that feed returns (never from two threads at once), and
    the chunk is part of the utterance."""
    import threading

    class BlockingVad(FakeVad):
        def __init__(self):
            self.hold = threading.Event()
            self.release = threading.Event()
            self.blocked = threading.Event()

        def __call__(self, window):
            if self.hold.is_set():
                self.blocked.set()
                self.release.wait(10)
            return super().__call__(window)

    vad = BlockingVad()
    p, source, got = make(audio(("speech", 5.0)), mode=Mode.PUSH_TO_TALK, vad_factory=lambda: vad)
    p._offload = True
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(p.run)
            await p.ptt_start()
            vad.hold.set()
            while not vad.blocked.is_set():
                await trio.sleep(0.005)
            results = []

            async def stop():
                results.append(await p.ptt_stop())

            nursery.start_soon(stop)
            await trio.sleep(0.2)
            assert results == [] and p.phase != Phase.THINKING
            vad.hold.clear()
            vad.release.set()
            while not results:
                await trio.sleep(0.005)
            assert results[0]["status"] == "queued"
            nursery.cancel_scope.cancel()
    (_, transcript), = got
    assert transcript.audio_s >= 0.16  # the first chunk and the one that was in the thread


async def test_ptt_needs_a_running_pipeline():
    p, source, got = make(b"", mode=Mode.PUSH_TO_TALK)
    with pytest.raises(VoiceError, match="not running"):
        await p.ptt_start()


async def test_a_button_drives_push_to_talk(autojump_clock):
    from node_agent.voice.pipeline import ptt_button_loop

    p, source, got = make(audio(("speech", 3.0)), mode=Mode.PUSH_TO_TALK)

    async def presses():
        await trio.sleep(1.0)
        yield True
        await trio.sleep(1.01)
        yield False
        yield False  # a bouncy release: nothing to stop, just "idle"
        p.set_mode("disabled")
        yield True  # refused (disabled): logged, the loop goes on

    async with trio.open_nursery() as nursery:
        await nursery.start(p.run)
        await ptt_button_loop(p, presses())
        nursery.cancel_scope.cancel()
    assert [(tr.source, tr.text) for _, tr in got] == [("ptt", "speech 1.04s of 1.04s")]


@pytest.mark.parametrize("light", [True, False])
async def test_a_light_wake_engine_runs_on_the_trio_thread_a_heavy_one_in_a_worker(light, autojump_clock):
    """A worker-thread round trip per 80 ms chunk cost more than microWakeWord's inference (a
    third of always listening's CPU): a detector whose engines are all light is called inline;
    openWakeWord's 7-30 ms per chunk still goes to a worker thread, off the link's loop."""
    import threading

    class Recording(FakeDetector):
        def __init__(self):
            super().__init__()
            self.light = light
            self.threads: set[int] = set()

        def process(self, chunk):
            self.threads.add(threading.get_ident())
            return super().process(chunk)

    detector = Recording()
    p, _, got = make(WAKE_THEN_COMMAND, detector=detector)
    p._offload = True
    await p.run()
    assert detector.processed > 10 and len(got) == 1
    assert (detector.threads == {threading.get_ident()}) is light
