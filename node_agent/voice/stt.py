"""Speech to text, behind one small interface that streams.

The pipeline opens a :class:`Transcription` when an utterance *starts*, feeds it every chunk as
it is captured, and asks for the text when the utterance ends. An engine that can work while the
person is still speaking (pocketsphinx decodes as it goes; a Wyoming server receives the audio
as it is captured) then has little left to do at the end, and the transcript is sent sooner; an
engine that cannot (:class:`CommandSTT`) simply buffers. Three engines:

* ``pocketsphinx`` (:mod:`.stt_pocketsphinx`) -- the default when the ``voice`` extra is
  installed: its wheel ships the CMU en-US model, so it works offline on first start. Rough on
  free speech (see ``tests/voice/test_stt_pocketsphinx.py`` for a word-error figure);
* ``wyoming://host:port`` (:mod:`.stt_wyoming`) -- a Wyoming ASR server (wyoming-faster-whisper
  and friends, port 10300 by convention), typically the one Home Assistant already runs;
* a command (:class:`CommandSTT`) -- any recognizer that reads a WAV and prints text.

:class:`FallbackSTT` puts a second engine behind the first: when a Wyoming server is down, hangs
or talks nonsense, the utterance is transcribed locally instead (it keeps the audio it was fed
until the primary has answered), and the failure is still logged and shown in ``status``.

Contract of a :class:`Transcription`: ``feed`` and ``finish`` raise :class:`STTError` (never a
library's or socket's own exception); ``aclose`` abandons it quietly and is safe to call at any
time, twice, or after ``finish``. All calls come from one task.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import trio

from ..childenv import helper_env
from .audio import SAMPLE_RATE, wav_bytes
from .errors import STTError

log = logging.getLogger("node_agent.voice.stt")


class Transcription(Protocol):
    async def feed(self, pcm: bytes) -> None:
        """More 16-bit mono PCM of the utterance."""
        ...

    async def finish(self) -> str:
        """The utterance is over: its text, ``""`` if nothing was said."""
        ...

    async def aclose(self) -> None:
        """Abandon it (no speech after all, a cancelled push-to-talk)."""
        ...


class SpeechToText(Protocol):
    #: Shown in ``status()``: ``"pocketsphinx"``, ``"wyoming://host:10300"``, ``"command:whisper-cli"``.
    name: str

    async def start(self, *, sample_rate: int = SAMPLE_RATE) -> Transcription:
        """Open a transcription for one utterance. Raises :class:`STTError` (a server that is down)."""
        ...


async def transcribe(stt: SpeechToText, pcm: bytes, *, sample_rate: int = SAMPLE_RATE) -> str:
    """All of ``pcm`` at once, through the streaming interface (``voice test``, benchmarks)."""
    stream = await stt.start(sample_rate=sample_rate)
    try:
        await stream.feed(pcm)
        return await stream.finish()
    finally:
        with trio.CancelScope(shield=True):
            await stream.aclose()


def stt_status(stt: SpeechToText | None) -> dict[str, Any] | None:
    """The engine's own status section, if it has one, else its name."""
    if stt is None:
        return None
    status = getattr(stt, "status", None)
    return status() if callable(status) else {"name": stt.name}


# --- a command -----------------------------------------------------------------------------------


class _Buffered:
    def __init__(self, run: Any, sample_rate: int):
        self._run = run
        self._sample_rate = sample_rate
        self._pcm = bytearray()

    async def feed(self, pcm: bytes) -> None:
        self._pcm += pcm

    async def finish(self) -> str:
        return await self._run(bytes(self._pcm), self._sample_rate)

    async def aclose(self) -> None:
        self._pcm.clear()


class CommandSTT:
    """A program the operator installs and names, run once per utterance on a 16 kHz mono WAV;
    the transcript is its stdout. For example whisper.cpp::

        CommandSTT(["whisper-cli", "-m", "/opt/models/ggml-base.en.bin", "-nt", "-np", "-f", "{wav}"])

    ``{wav}`` in an argument is replaced by the path of a temporary WAV file (deleted afterwards);
    without it the WAV goes to the program's stdin.
    """

    def __init__(self, argv: Sequence[str], *, timeout_s: float = 60.0, env: Mapping[str, str] | None = None,
                 name: str | None = None):
        if not argv:
            raise ValueError("CommandSTT needs a program to run")
        self.argv = list(argv)
        self.timeout_s = timeout_s
        self.env = dict(env) if env else None
        self.name = name or f"command:{os.path.basename(self.argv[0])}"

    async def start(self, *, sample_rate: int = SAMPLE_RATE) -> Transcription:
        return _Buffered(self._run, sample_rate)

    async def _run(self, pcm: bytes, sample_rate: int) -> str:
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


# --- a fallback ----------------------------------------------------------------------------------


class _WithFallback:
    def __init__(self, owner: FallbackSTT, primary: Transcription | None, sample_rate: int):
        self._owner = owner
        self._primary = primary
        self._sample_rate = sample_rate
        self._pcm = bytearray()  # kept until the primary answers: the fallback needs all of it

    async def feed(self, pcm: bytes) -> None:
        self._pcm += pcm
        if self._primary is not None:
            try:
                await self._primary.feed(pcm)
            except STTError as exc:
                await self._drop_primary(exc)

    async def finish(self) -> str:
        if self._primary is not None:
            try:
                text = await self._primary.finish()
            except STTError as exc:
                await self._drop_primary(exc)
            else:
                self._owner.fallbacks_in_a_row = 0
                return text
        return await transcribe(self._owner.fallback, bytes(self._pcm), sample_rate=self._sample_rate)

    async def _drop_primary(self, exc: STTError) -> None:
        primary, self._primary = self._primary, None
        self._owner.note_failure(exc)
        if primary is not None:
            with trio.CancelScope(shield=True):
                await primary.aclose()

    async def aclose(self) -> None:
        self._pcm.clear()
        if self._primary is not None:
            primary, self._primary = self._primary, None
            await primary.aclose()


class FallbackSTT:
    """``primary`` (a Wyoming server), or ``fallback`` (pocketsphinx) when it fails."""

    def __init__(self, primary: SpeechToText, fallback: SpeechToText):
        self.primary = primary
        self.fallback = fallback
        self.name = f"{primary.name} (fallback {fallback.name})"
        self.fallbacks = 0
        self.fallbacks_in_a_row = 0

    def note_failure(self, exc: STTError) -> None:
        self.fallbacks += 1
        self.fallbacks_in_a_row += 1
        # Once per outage, not once per utterance: the primary's own status has the detail.
        (log.warning if self.fallbacks_in_a_row == 1 else log.info)(
            "speech-to-text: %s failed (%s); transcribing with %s instead", self.primary.name, exc.message,
            self.fallback.name)

    async def start(self, *, sample_rate: int = SAMPLE_RATE) -> Transcription:
        try:
            primary = await self.primary.start(sample_rate=sample_rate)
        except STTError as exc:
            self.note_failure(exc)
            primary = None
        return _WithFallback(self, primary, sample_rate)

    def status(self) -> dict[str, Any]:
        return {"name": self.name, "primary": stt_status(self.primary), "fallback": stt_status(self.fallback),
                "fallbacks": self.fallbacks}

    def __repr__(self) -> str:
        return f"FallbackSTT({self.primary!r}, {self.fallback!r})"
