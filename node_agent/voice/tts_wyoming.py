"""Text to speech on a Wyoming TTS server (``[voice] tts = "wyoming://host:10200"``), e.g. wyoming-piper.

Per reply, one connection: ``describe -> info`` (refused unless the server offers TTS), then
``synthesize {text, voice?}``; the server answers ``audio-start {rate, width, channels}``, any
number of ``audio-chunk`` and ``audio-stop``. Every step is under a timeout; a server that is
down, hangs, sends malformed events or changes the audio format mid-stream is a
:class:`~.errors.TTSError`, and the reply path falls through to espeak-ng.
"""

from __future__ import annotations

import logging
from typing import Any

from .errors import TTSError
from .tts import SpokenAudio
from .wyoming_client import WyomingConnection, WyomingError, parse_uri, wyoming_lib

log = logging.getLogger("node_agent.voice.tts")

DEFAULT_PORT = 10200
#: A reply longer than this much audio is cut off (a runaway server cannot fill memory).
MAX_AUDIO_S = 300.0


class WyomingTTS:
    def __init__(self, uri: str, *, voice: str | None = None, connect_timeout_s: float = 3.0,
                 timeout_s: float = 30.0):
        self.host, self.port = parse_uri(uri, DEFAULT_PORT)
        self.name = f"wyoming://{self.host}:{self.port}"
        self.voice = voice
        self.connect_timeout_s = connect_timeout_s
        self.timeout_s = timeout_s
        self.server: dict[str, Any] | None = None

    def available(self) -> bool:
        return True

    async def synthesize(self, text: str) -> SpokenAudio:
        wyoming_lib()
        from wyoming.tts import Synthesize, SynthesizeVoice  # noqa: PLC0415

        try:
            conn = await WyomingConnection.connect(self.host, self.port, timeout_s=self.connect_timeout_s)
        except WyomingError as exc:
            raise TTSError(exc.message, hint=exc.hint) from None
        try:
            programs = await conn.programs("tts", timeout_s=self.connect_timeout_s)
            if not programs:
                raise TTSError(f"{self.name} offers no text-to-speech (its info lists no installed tts program)",
                               hint="point [voice] tts at the TTS server (port 10200 by convention)")
            self.server = {"program": programs[0].name, "voices": [v.name for v in programs[0].voices][:20]}
            voice = SynthesizeVoice(name=self.voice) if self.voice else None
            await conn.send(Synthesize(text=text, voice=voice), timeout_s=self.timeout_s)
            return await self._receive_audio(conn)
        except WyomingError as exc:
            raise TTSError(f"{self.name}: {exc.message}", hint=exc.hint) from None
        finally:
            await conn.aclose()

    async def _receive_audio(self, conn: WyomingConnection) -> SpokenAudio:
        from wyoming.audio import AudioChunk, AudioStart, AudioStop  # noqa: PLC0415
        from wyoming.error import Error  # noqa: PLC0415

        fmt: tuple[int, int, int] | None = None
        pcm = bytearray()
        while True:
            event = await conn.receive(timeout_s=self.timeout_s)
            if Error.is_type(event.type):
                raise TTSError(f"{self.name} says: {event.data.get('text') or 'error'}")
            if AudioStart.is_type(event.type) or AudioChunk.is_type(event.type):
                try:
                    got = (int(event.data["rate"]), int(event.data["width"]), int(event.data["channels"]))
                except (KeyError, TypeError, ValueError):
                    raise TTSError(f"{self.name} sent {event.type} without a valid audio format") from None
                if got[0] < 1000 or got[1] not in (1, 2, 4) or got[2] < 1:
                    raise TTSError(f"{self.name} sent an unplayable audio format {got}")
                if fmt is not None and got != fmt:
                    raise TTSError(f"{self.name} changed the audio format mid-reply ({fmt} -> {got})")
                fmt = got
                if AudioChunk.is_type(event.type):
                    pcm += event.payload or b""
                    if len(pcm) > MAX_AUDIO_S * fmt[0] * fmt[1] * fmt[2]:
                        raise TTSError(f"{self.name} sent more than {MAX_AUDIO_S:g} s of audio")
            elif AudioStop.is_type(event.type):
                if fmt is None or not pcm:
                    raise TTSError(f"{self.name} sent no audio")
                return SpokenAudio(bytes(pcm), fmt[0], fmt[1], fmt[2], self.name)

    def __repr__(self) -> str:
        return f"WyomingTTS({self.name!r})"
