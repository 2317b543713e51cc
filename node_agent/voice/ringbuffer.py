"""The last few seconds of microphone audio, and an opt-in folder of WAVs for wake triage.

Users' most frequent voice question is "why did it wake (or not)?". With ``debug_dir`` set, the
pipeline saves the seconds *before* each wake (the audio that fired the detector) and each
captured utterance, named by time, trigger and score, so a false wake can be listened to and a
threshold chosen from evidence. The folder is capped (oldest files go first) so a forgotten
debug setting cannot fill an SD card.
"""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path

from .audio import SAMPLE_RATE, SAMPLE_WIDTH, write_wav

log = logging.getLogger("node_agent.voice.ringbuffer")


class RingBuffer:
    """Keeps the most recent ``seconds`` of PCM. Appending is amortised O(chunk)."""

    def __init__(self, seconds: float, sample_rate: int = SAMPLE_RATE):
        self.capacity = int(seconds * sample_rate) * SAMPLE_WIDTH
        self.sample_rate = sample_rate
        self._buf = bytearray()

    def append(self, chunk: bytes) -> None:
        if self.capacity <= 0:
            return
        self._buf += chunk
        excess = len(self._buf) - self.capacity
        if excess > 0:
            del self._buf[:excess]

    def get(self, seconds: float | None = None) -> bytes:
        """The newest ``seconds`` of audio (all of it by default)."""
        if seconds is None:
            return bytes(self._buf)
        n = min(len(self._buf), int(seconds * self.sample_rate) * SAMPLE_WIDTH)
        return bytes(self._buf[len(self._buf) - n:])

    def clear(self) -> None:
        self._buf.clear()

    @property
    def seconds(self) -> float:
        return len(self._buf) / (SAMPLE_WIDTH * self.sample_rate)

    def save_wav(self, path: str | Path) -> Path:
        path = Path(path)
        write_wav(path, bytes(self._buf), self.sample_rate)
        return path

    def __len__(self) -> int:
        return len(self._buf)

    def __repr__(self) -> str:
        return f"RingBuffer({self.seconds:.2f}/{self.capacity / (SAMPLE_WIDTH * self.sample_rate):.2f} s)"


_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


class DebugRecorder:
    """Writes triage WAVs into ``directory`` and keeps at most ``max_files`` of them.

    Blocking (file I/O): the pipeline calls :meth:`save` from a worker thread.
    """

    def __init__(self, directory: str | Path, *, max_files: int = 100):
        self.directory = Path(directory)
        self.max_files = max_files

    def save(self, kind: str, pcm: bytes, *, label: str = "", when: float | None = None) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        when = time.time() if when is None else when
        stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(when)) + f"-{int(when * 1000) % 1000:03d}"
        name = f"{stamp}-{kind}"
        if label:
            name += "-" + _UNSAFE.sub("_", label)[:60]
        path = self.directory / f"{name}.wav"
        write_wav(path, pcm)
        self._prune()
        return path

    def _prune(self) -> None:
        files = sorted(self.directory.glob("*.wav"))
        for old in files[:max(0, len(files) - self.max_files)]:
            try:
                old.unlink()
            except OSError as exc:
                log.info("could not prune %s: %s", old, exc)
