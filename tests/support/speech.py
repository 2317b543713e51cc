"""Synthesized speech for voice tests and benchmarks: espeak-ng, resampled by sox to 16 kHz mono,
over a room's noise floor.

Why the noise: a microphone never delivers digital silence, and pocketsphinx's front end (its
noise estimate and cepstral mean) is thrown by the exact zeros sox pads with -- the same sentence
goes from "what is the weather like in london and then" to "... in london today" once a faint
floor (about -44 dBFS, what a quiet room gives a USB microphone) is under it. The floor is seeded,
and sox runs without dither (``-D``), so a clip is the same bytes on every run.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from node_agent.voice.audio import read_wav, write_wav

NOISE_RMS = 200.0  # int16 units: about -44 dBFS


def have_tools() -> bool:
    return bool(shutil.which("espeak-ng") and shutil.which("sox"))


def speak(text: str, *, voice: str = "en-us", speed: int = 150, pitch: int = 50, pad_before: float = 0.3,
          pad_after: float = 0.3) -> bytes:
    """16 kHz mono int16 PCM of ``text``, padded with silence (no noise yet)."""
    with tempfile.TemporaryDirectory(prefix="node-agent-speech-") as tmp:
        raw, out = Path(tmp) / "raw.wav", Path(tmp) / "out.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(raw), text],
                       check=True)
        subprocess.run(["sox", "-D", str(raw), "-r", "16000", "-c", "1", "-b", "16", str(out),
                        "pad", str(pad_before), str(pad_after)], check=True)
        return read_wav(out)


def silence(seconds: float) -> bytes:
    return bytes(int(seconds * 16000) * 2)


def with_room_noise(pcm: bytes, *, rms: float = NOISE_RMS, seed: int = 0) -> bytes:
    samples = np.frombuffer(pcm, "<i2").astype(np.int32)
    noise = np.random.default_rng(seed).standard_normal(len(samples)) * rms
    return np.clip(samples + noise.astype(np.int32), -32768, 32767).astype("<i2").tobytes()


def session(*parts: bytes, seed: int = 0) -> bytes:
    """Clips end to end, over one noise floor."""
    return with_room_noise(b"".join(parts), seed=seed)


def save(path: Path, pcm: bytes) -> Path:
    write_wav(path, pcm)
    return path


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(word edits, reference words): the word error rate's numerator and denominator."""
    ref, hyp = reference.lower().split(), hypothesis.lower().split()
    row = list(range(len(hyp) + 1))
    for i in range(1, len(ref) + 1):
        diagonal, row[0] = row[0], i
        for j in range(1, len(hyp) + 1):
            diagonal, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, diagonal + (ref[i - 1] != hyp[j - 1]))
    return row[len(hyp)], len(ref)
