"""Speech to text, behind one small interface.

No speech-to-text engine that is worth using ships its model inside a PyPI wheel: Whisper-family
packages (faster-whisper, pywhispercpp) and Vosk fetch models at run time or need a separate
download, and the one that does bundle a model (``pocketsphinx`` 5.x, a 29 MB wheel with the
CMU en-US model) transcribed none of our synthesized test sentences correctly. So the engine is a
*program* the operator installs and names: :class:`CommandSTT` runs it per utterance, feeds it a
16 kHz mono WAV, and reads the transcript from its stdout. For example, whisper.cpp::

    CommandSTT(["whisper-cli", "-m", "/opt/models/ggml-base.en.bin", "-nt", "-np", "-f", "{wav}"])

``{wav}`` in an argument is replaced by the path of a temporary WAV file (deleted afterwards);
without it the WAV goes to the program's stdin.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from typing import Protocol

import trio

from ..childenv import helper_env
from .audio import SAMPLE_RATE, wav_bytes
from .errors import STTError


class SpeechToText(Protocol):
    #: Shown in ``status()``.
    name: str

    async def transcribe(self, pcm: bytes, *, sample_rate: int = SAMPLE_RATE) -> str:
        """Text for 16-bit mono PCM; ``""`` if nothing was said. Raises :class:`STTError`."""
        ...


class CommandSTT:
    def __init__(self, argv: Sequence[str], *, timeout_s: float = 60.0, env: Mapping[str, str] | None = None,
                 name: str | None = None):
        if not argv:
            raise ValueError("CommandSTT needs a program to run")
        self.argv = list(argv)
        self.timeout_s = timeout_s
        self.env = dict(env) if env else None
        self.name = name or f"command:{os.path.basename(self.argv[0])}"

    async def transcribe(self, pcm: bytes, *, sample_rate: int = SAMPLE_RATE) -> str:
        data = wav_bytes(pcm, sample_rate)
        uses_file = any("{wav}" in arg for arg in self.argv)
        tmp_path: str | None = None
        try:
            if uses_file:
                tmp_path = await trio.to_thread.run_sync(_write_temp_wav, data)
                argv = [arg.replace("{wav}", tmp_path) for arg in self.argv]
                stdin = b""
            else:
                argv, stdin = self.argv, data
            env = helper_env(self.env)  # never the agent's own environment: it holds the gateway token
            try:
                with trio.fail_after(self.timeout_s):
                    result = await trio.run_process(argv, stdin=stdin, capture_stdout=True, capture_stderr=True,
                                                    check=False, env=env)
            except trio.TooSlowError:
                raise STTError(f"{self.name} took longer than {self.timeout_s:g} s") from None
            except OSError as exc:
                raise STTError(f"cannot run {self.argv[0]}: {exc}",
                               hint="check the speech-to-text command in the voice configuration") from exc
        finally:
            if tmp_path is not None:
                with trio.CancelScope(shield=True):
                    await trio.to_thread.run_sync(_unlink, tmp_path)
        if result.returncode != 0:
            tail = result.stderr.decode("utf-8", "replace").strip()[-300:]
            raise STTError(f"{self.name} failed (exit {result.returncode}): {tail}")
        return " ".join(result.stdout.decode("utf-8", "replace").split())

    def __repr__(self) -> str:
        return f"CommandSTT({self.argv!r}, timeout_s={self.timeout_s})"


def _write_temp_wav(data: bytes) -> str:
    fd, path = tempfile.mkstemp(prefix="node-agent-utt-", suffix=".wav")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return path


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
