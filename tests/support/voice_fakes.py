"""Fakes for the voice pipeline tests: synthetic audio made of marker samples, a detector that
fires on a wake marker, a VAD that hears any loud sample, a speech-to-text engine that describes
what it was given, and sources that count their opens or fail on purpose.

The audio is 16 kHz 16-bit mono PCM in which every sample of a segment holds one value (silence
0, speech ``SPEECH``, wake word ``WAKE``), so each fake decides from the first sample of a chunk.
"""

from __future__ import annotations

import struct

import trio

from node_agent.voice import AudioDeviceError, BytesSource, STTError
from node_agent.voice.wake import WakeDetection, normalize_phrase

CHUNK = 0.08
SPEECH, WAKE = 5000, 777


def seg(kind: str, seconds: float) -> bytes:
    n = round(seconds * 16000)
    value = {"sil": 0, "speech": SPEECH, "wake": WAKE}[kind]
    return struct.pack("<h", value) * n


def audio(*parts: tuple[str, float]) -> bytes:
    return b"".join(seg(kind, s) for kind, s in parts)


class FakeDetector:
    """Fires on a chunk of wake markers; supports only the phrases in ``known``."""

    def __init__(self, known=("hey jarvis", "alexa")):
        self.known = set(known)
        self.active: list[str] = []
        self.unsupported: list[str] = []
        self.supported_phrases = sorted(self.known)
        self.resets = 0
        self.processed = 0
        self._armed = True

    def set_triggers(self, triggers):
        self.active = [t for t in triggers if normalize_phrase(t) in self.known]
        self.unsupported = [t for t in triggers if normalize_phrase(t) not in self.known]
        return list(self.active), list(self.unsupported)

    def process(self, chunk: bytes):
        self.processed += 1
        (first,) = struct.unpack_from("<h", chunk)
        if first != WAKE:
            self._armed = True
            return []
        if not self._armed or not self.active:
            return []
        self._armed = False
        return [WakeDetection(trigger=self.active[0], model_id="fake", score=0.9, audio_time=0.0)]

    def reset(self):
        self.resets += 1


class FakeVad:
    def __call__(self, window: bytes) -> float:
        (first,) = struct.unpack_from("<h", window)
        return 1.0 if abs(first) > 1000 else 0.0

    def reset(self):
        pass


class FakeSTT:
    """A streaming engine double: records every chunk fed (with the virtual time it arrived) and,
    at ``finish``, after ``delay``, answers with how much "speech" it was fed."""

    name = "fake"

    def __init__(self, delay: float = 0.0, fail: bool = False, text: str | None = None, fail_start: bool = False):
        self.delay = delay
        self.fail = fail
        self.fail_start = fail_start
        self.text = text
        self.calls: list[bytes] = []  # the audio of each finished transcription
        self.feeds: list[tuple[float, int]] = []  # (time, bytes) of every feed
        self.starts: list[float] = []
        self.closed = 0

    async def start(self, *, sample_rate: int = 16000):
        self.starts.append(round(trio.current_time(), 3))
        if self.fail_start:
            raise STTError("server down")
        return FakeStream(self)


class FakeStream:
    def __init__(self, owner: FakeSTT):
        self.owner = owner
        self.pcm = bytearray()

    async def feed(self, pcm: bytes) -> None:
        self.owner.feeds.append((round(trio.current_time(), 3), len(pcm)))
        self.pcm += pcm

    async def finish(self) -> str:
        pcm = bytes(self.pcm)
        self.owner.calls.append(pcm)
        await trio.sleep(self.owner.delay)
        if self.owner.fail:
            raise STTError("engine crashed")
        if self.owner.text is not None:
            return self.owner.text
        speech = sum(1 for i in range(0, len(pcm), 2) if struct.unpack_from("<h", pcm, i)[0] == SPEECH)
        return f"speech {speech / 16000:.2f}s of {len(pcm) / 32000:.2f}s"

    async def aclose(self) -> None:
        self.owner.closed += 1


class CountingSource(BytesSource):
    def __init__(self, pcm: bytes, **kw):
        super().__init__(pcm, realtime=True, **kw)
        self.opens: list[float] = []

    def open(self):
        self.opens.append(trio.current_time())
        return super().open()


class RecordingIndicator:
    def __init__(self):
        self.states: list[tuple[float, str]] = []

    def set_state(self, state: str) -> None:
        self.states.append((round(trio.current_time(), 3), state))



# 13 chunks of silence, 2 of wake marker, 13 of speech, then silence.
WAKE_THEN_COMMAND = audio(("sil", 1.04), ("wake", 0.16), ("speech", 1.04), ("sil", 2.0))


class FailingSource:
    """Fails ``failures`` times, then plays ``pcm`` in real time."""

    name = "flaky-mic"

    def __init__(self, failures: int, pcm: bytes = b"", exc=AudioDeviceError):
        self.failures = failures
        self.inner = BytesSource(pcm, realtime=True)
        self.opens: list[float] = []
        self.exc = exc

    def open(self):
        self.opens.append(trio.current_time())
        if len(self.opens) <= self.failures:
            raise self.exc("Device or resource busy", hint="close arecord")
        return self.inner.open()
