"""Text to speech for spoken replies: backends behind one interface, tried in order.

A backend turns text into :class:`SpokenAudio` (PCM and its format); playing it is the sink's
job (:mod:`.playback`), so every backend is muted, interrupted by a barge-in and recorded in
tests the same way. The reply path tries, in order:

1. the gateway's ``talk.speak`` over the operator link (:mod:`.tts_talk`): the voice the gateway
   is configured with, the same one OpenClaw's apps speak with; only while that link is up;
2. a Wyoming TTS server (``[voice] tts = "wyoming://host:10200"``, :mod:`.tts_wyoming`), such
   as wyoming-piper;
3. espeak-ng on the device (:class:`EspeakTTS`), which is always there on a Pi image.

:class:`TTSChain` falls through on :class:`~.errors.TTSError` and logs the first failure of a
streak as a warning (later ones at info), so a gateway with no Talk provider configured is said
once, not at every reply.
"""

from __future__ import annotations

import io
import logging
import shutil
import wave
from collections.abc import Sequence
from typing import Any, Protocol

import attrs
import trio

from ..childenv import helper_env
from .errors import TTSError

log = logging.getLogger("node_agent.voice.tts")


@attrs.frozen
class SpokenAudio:
    pcm: bytes = attrs.field(repr=lambda pcm: f"<{len(pcm)} bytes>")
    rate: int
    width: int = 2
    channels: int = 1
    source: str = ""  # which backend made it

    @property
    def seconds(self) -> float:
        return len(self.pcm) / (self.rate * self.width * self.channels)


class TextToSpeech(Protocol):
    #: Shown in ``status`` and logs: ``"talk.speak"``, ``"wyoming://host:10200"``, ``"espeak-ng"``.
    name: str

    def available(self) -> bool:
        """Worth trying right now (the operator link is up...)."""
        ...

    async def synthesize(self, text: str) -> SpokenAudio:
        """The spoken text. Raises :class:`TTSError`."""
        ...


def decode_wav(data: bytes, source: str) -> SpokenAudio:
    """A WAV file's PCM; :class:`TTSError` if it is not a PCM WAV we can play."""
    try:
        with wave.open(io.BytesIO(data), "rb") as wav:
            rate, width, channels = wav.getframerate(), wav.getsampwidth(), wav.getnchannels()
            frames = wav.readframes(wav.getnframes())
    except (EOFError, wave.Error) as exc:
        raise TTSError(f"{source} returned audio that is not a PCM WAV: {exc}") from None
    if width not in (1, 2, 4) or channels < 1 or rate < 1000:
        raise TTSError(f"{source} returned a WAV we cannot play ({rate} Hz, {8 * width}-bit, {channels} ch)")
    # espeak-ng --stdout writes 0x7fffffff as the data size (it cannot seek a pipe); ``wave``
    # then reads to the end, which is right.
    return SpokenAudio(frames, rate, width, channels, source)


async def convert_to_wav(data: bytes, source: str, mime: str, *, timeout_s: float = 30.0) -> SpokenAudio:
    """Compressed audio (MP3, Opus...) through ffmpeg, if it is installed; else a clear TTSError."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise TTSError(f"{source} returned {mime}, which this node can play only with ffmpeg installed",
                       hint="install ffmpeg, or have the gateway's Talk provider output WAV/PCM")
    argv = [ffmpeg, "-hide_banner", "-loglevel", "error", "-i", "pipe:0", "-f", "wav", "-acodec", "pcm_s16le",
            "pipe:1"]
    try:
        with trio.fail_after(timeout_s):
            result = await trio.run_process(argv, stdin=data, capture_stdout=True, capture_stderr=True, check=False,
                                            env=helper_env())
    except trio.TooSlowError:
        raise TTSError(f"ffmpeg did not convert {source}'s {mime} within {timeout_s:g} s") from None
    except OSError as exc:
        raise TTSError(f"cannot run ffmpeg: {exc}") from None
    if result.returncode != 0:
        raise TTSError(f"ffmpeg could not convert {source}'s {mime}: "
                       f"{result.stderr.decode('utf-8', 'replace').strip()[-200:]}")
    return decode_wav(result.stdout, source)


class EspeakTTS:
    """``espeak-ng`` on the device, to WAV on stdout. The text goes on stdin (``--stdin -b 1``:
    UTF-8, and a text starting with ``-`` is never an option)."""

    name = "espeak-ng"

    def __init__(self, *, executable: str = "espeak-ng", voice: str | None = None, rate_wpm: int | None = None):
        self.executable = executable
        self.voice = voice
        self.rate_wpm = rate_wpm

    def available(self) -> bool:
        return shutil.which(self.executable) is not None

    def argv(self) -> list[str]:
        argv = [self.executable, "--stdin", "-b", "1", "--stdout"]
        if self.voice:
            argv += ["-v", self.voice]
        if self.rate_wpm:
            argv += ["-s", str(int(self.rate_wpm))]
        return argv

    async def synthesize(self, text: str) -> SpokenAudio:
        timeout_s = 15.0 + len(text) / 5
        try:
            with trio.fail_after(timeout_s):
                result = await trio.run_process(self.argv(), stdin=text.encode("utf-8"), capture_stdout=True,
                                                capture_stderr=True, check=False, env=helper_env())
        except trio.TooSlowError:
            raise TTSError(f"espeak-ng did not finish within {timeout_s:.0f} s") from None
        except FileNotFoundError:
            raise TTSError("espeak-ng is not installed", hint="install it: sudo apt-get install espeak-ng") from None
        except OSError as exc:
            raise TTSError(f"cannot run espeak-ng: {exc}") from None
        if result.returncode != 0 or not result.stdout:
            raise TTSError(f"espeak-ng failed (exit {result.returncode}): "
                           f"{result.stderr.decode('utf-8', 'replace').strip()[-200:]}")
        return decode_wav(result.stdout, self.name)

    def __repr__(self) -> str:
        return f"EspeakTTS(voice={self.voice!r})"


class TTSChain:
    """The first backend that is available and succeeds."""

    def __init__(self, backends: Sequence[TextToSpeech]):
        if not backends:
            raise ValueError("TTSChain needs at least one backend")
        self.backends = list(backends)
        self.name = " > ".join(b.name for b in self.backends)
        self._streaks: dict[str, int] = {}
        self.last_used: str | None = None
        self.last_errors: dict[str, str] = {}

    def available(self) -> bool:
        return any(b.available() for b in self.backends)

    async def synthesize(self, text: str) -> SpokenAudio:
        errors: list[str] = []
        for backend in self.backends:
            if not backend.available():
                continue
            try:
                audio = await backend.synthesize(text)
            except TTSError as exc:
                streak = self._streaks.get(backend.name, 0) + 1
                self._streaks[backend.name] = streak
                self.last_errors[backend.name] = exc.message
                (log.warning if streak == 1 else log.info)("text-to-speech %s failed: %s%s", backend.name, exc.message,
                                                            f" ({exc.hint})" if exc.hint else "")
                errors.append(f"{backend.name}: {exc.message}")
                continue
            if self._streaks.pop(backend.name, 0):
                log.info("text-to-speech %s works again", backend.name)
            self.last_errors.pop(backend.name, None)
            self.last_used = backend.name
            return audio
        raise TTSError("no text-to-speech backend could speak the reply"
                       + (f" ({'; '.join(errors)})" if errors else " (none available)"))

    def status(self) -> dict[str, Any]:
        return {"order": [b.name for b in self.backends], "lastUsed": self.last_used,
                "lastErrors": dict(self.last_errors)}
