"""Wyoming ASR and TTS servers for tests and benchmarks, built with the ``wyoming`` library itself.

The real servers (wyoming-faster-whisper, wyoming-piper) download their models at run time, so
none can run here; these are built the way they are -- ``wyoming.server.AsyncTcpServer`` and an
``AsyncEventHandler`` per connection, the library's events and framing -- on 127.0.0.1 with a port
chosen by the kernel, in an asyncio loop on a thread of their own (the tests are Trio).

Behaviours (``behaviour=``), so the client's failure paths meet a real server socket:

* ``ok`` -- ASR: ``transcript {text}`` after ``audio-stop``; TTS: espeak-ng's real audio in
  ``audio-start``/``audio-chunk``.../``audio-stop``;
* ``stream`` (ASR) -- ``transcript-start``, one ``transcript-chunk`` per word, ``transcript-stop``,
  then the final ``transcript``;
* ``hang`` -- answers ``describe`` but never the request (a stuck model);
* ``malformed`` -- answers the request with bytes that are not a Wyoming frame;
* ``error`` -- a Wyoming ``error`` event;
* ``close`` -- hangs up instead of answering;
* ``no-asr`` / ``no-tts`` -- its ``info`` offers nothing of the kind;
* ``format-change`` (TTS) -- the audio format changes mid-reply.

Every event received is recorded with its ``time.monotonic()`` arrival (``server.events``), so a
test can tell audio streamed during a capture from audio sent after it.
"""

from __future__ import annotations

import asyncio
import subprocess
import threading
import time
import wave
from collections.abc import Callable
from io import BytesIO
from typing import Any

import attrs
from wyoming.asr import Transcribe, Transcript, TranscriptChunk, TranscriptStart, TranscriptStop
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import AsrModel, AsrProgram, Attribution, Describe, Info, TtsProgram, TtsVoice
from wyoming.server import AsyncEventHandler, AsyncTcpServer
from wyoming.tts import Synthesize

_ATTRIBUTION = Attribution(name="node-agent tests", url="https://example.invalid/")


@attrs.frozen
class Received:
    at: float  # time.monotonic()
    type: str
    data: dict[str, Any]
    payload_len: int


class _Handler(AsyncEventHandler):
    def __init__(self, server: "WyomingDouble", reader, writer) -> None:
        super().__init__(reader, writer)
        self.double = server
        self.audio = bytearray()

    async def handle_event(self, event: Event) -> bool:
        self.double._record(event)
        behaviour = self.double.behaviour
        if Describe.is_type(event.type):
            await self.write_event(self.double.info().event())
            return True
        return await self.double.handle(self, event, behaviour)


class WyomingDouble:
    kind = ""

    def __init__(self, behaviour: str = "ok", *, port: int = 0) -> None:
        """``port=0``: one the kernel picks (``port`` after start); a fixed one to bring a server
        "back up" where a client expects it."""
        self.behaviour = behaviour
        self.events: list[Received] = []
        self.connections = 0
        self.port: int | None = port or None
        self._bind_port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: AsyncTcpServer | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def uri(self) -> str:
        return f"wyoming://127.0.0.1:{self.port}"

    def __enter__(self) -> "WyomingDouble":
        ready = threading.Event()

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            server = AsyncTcpServer("127.0.0.1", self._bind_port)
            self._server = server
            loop.run_until_complete(server.start(self._factory))
            self.port = server._server.sockets[0].getsockname()[1]
            ready.set()
            loop.run_forever()
            loop.run_until_complete(server.stop())
            pending = asyncio.all_tasks(loop)
            for task in pending:  # a "hang" handler sleeps for an hour
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.close()

        self._thread = threading.Thread(target=serve, name=f"wyoming-{self.kind}", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the Wyoming test server did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    def _factory(self, reader, writer) -> _Handler:
        with self._lock:
            self.connections += 1
        return _Handler(self, reader, writer)

    def _record(self, event: Event) -> None:
        with self._lock:
            self.events.append(Received(time.monotonic(), event.type, dict(event.data or {}),
                                        len(event.payload or b"")))

    def received(self, event_type: str) -> list[Received]:
        with self._lock:
            return [e for e in self.events if e.type == event_type]

    def info(self) -> Info:  # pragma: no cover - overridden
        raise NotImplementedError

    async def handle(self, handler: _Handler, event: Event, behaviour: str) -> bool:  # pragma: no cover
        raise NotImplementedError

    async def misbehave(self, handler: _Handler, behaviour: str) -> bool | None:
        """The behaviours common to both kinds; None if ``behaviour`` is none of them."""
        if behaviour == "hang":
            await asyncio.sleep(3600)
            return False
        if behaviour == "malformed":
            handler.writer.write(b"this is not a wyoming frame\n")
            await handler.writer.drain()
            return True
        if behaviour == "error":
            await handler.write_event(Error(text="model exploded", code="test-error").event())
            return True
        if behaviour == "close":
            return False
        return None


class AsrServer(WyomingDouble):
    """``text`` (a string, or a callable of the received PCM) is what it transcribes."""

    kind = "asr"

    def __init__(self, behaviour: str = "ok", *, text: str | Callable[[bytes], str] = "what time is it",
                 port: int = 0) -> None:
        super().__init__(behaviour, port=port)
        self.text = text

    def info(self) -> Info:
        if self.behaviour == "no-asr":
            return Info()
        model = AsrModel(name="tiny-test", attribution=_ATTRIBUTION, installed=True, description=None,
                         version="1", languages=["en"])
        return Info(asr=[AsrProgram(name="test-asr", attribution=_ATTRIBUTION, installed=True, description=None,
                                    version="1.0", models=[model],
                                    supports_transcript_streaming=self.behaviour == "stream")])

    async def handle(self, handler: _Handler, event: Event, behaviour: str) -> bool:
        if Transcribe.is_type(event.type) or AudioStart.is_type(event.type):
            return True
        if AudioChunk.is_type(event.type):
            handler.audio += event.payload or b""
            return True
        if not AudioStop.is_type(event.type):
            return True
        handled = await self.misbehave(handler, behaviour)
        if handled is not None:
            return handled
        text = self.text(bytes(handler.audio)) if callable(self.text) else self.text
        if behaviour == "stream":
            await handler.write_event(TranscriptStart(language="en").event())
            for word in text.split():
                await handler.write_event(TranscriptChunk(text=word + " ").event())
            await handler.write_event(TranscriptStop().event())
        await handler.write_event(Transcript(text=text, language="en").event())
        return False  # like wyoming-faster-whisper: one transcript per connection


def espeak_pcm(text: str) -> tuple[bytes, int]:
    """espeak-ng's own audio for ``text``: (PCM, rate)."""
    wav = subprocess.run(["espeak-ng", "--stdout", text], check=True, capture_output=True).stdout
    with wave.open(BytesIO(wav)) as w:
        return w.readframes(w.getnframes()), w.getframerate()


class TtsServer(WyomingDouble):
    kind = "tts"

    def info(self) -> Info:
        if self.behaviour == "no-tts":
            return Info()
        voice = TtsVoice(name="espeak-en", attribution=_ATTRIBUTION, installed=True, description=None, version="1",
                         languages=["en"])
        return Info(tts=[TtsProgram(name="test-tts", attribution=_ATTRIBUTION, installed=True, description=None,
                                    version="1.0", voices=[voice])])

    async def handle(self, handler: _Handler, event: Event, behaviour: str) -> bool:
        if not Synthesize.is_type(event.type):
            return True
        handled = await self.misbehave(handler, behaviour)
        if handled is not None:
            return handled
        pcm, rate = await asyncio.to_thread(espeak_pcm, event.data["text"])
        await handler.write_event(AudioStart(rate=rate, width=2, channels=1).event())
        step = 1024 * 2
        for i, offset in enumerate(range(0, len(pcm), step)):
            chunk_rate = rate * 2 if behaviour == "format-change" and i == 3 else rate
            await handler.write_event(AudioChunk(rate=chunk_rate, width=2, channels=1,
                                                 audio=pcm[offset:offset + step]).event())
        await handler.write_event(AudioStop().event())
        return False
