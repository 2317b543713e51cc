"""Speech to text on a Wyoming ASR server (``[voice] stt = "wyoming://host:10300"``).

Per utterance, one TCP connection, opened the moment the utterance starts (a wake, a
push-to-talk press), so connecting costs the person nothing:

    describe -> info          the server says what it is; refused unless it offers ASR
    transcribe {language?}    then audio-start, one audio-chunk per captured chunk *as it is
                              captured*, audio-stop when the utterance ends
    <- transcript {text}      (a streaming server may send transcript-start/-chunk first;
                              the final ``transcript`` wins, else the chunks joined)

That is what wyoming-faster-whisper and Home Assistant's other ASR servers expect; most close the
connection after the transcript. A new connection per utterance is also the reconnect policy: a
server that was down is simply tried again at the next utterance, and the first failure of an
outage is logged as a warning (later ones at info) with what to check. Every step has a timeout:
``connect_timeout_s`` to connect and get ``info``, ``send_timeout_s`` for a chunk the server will
not read, ``timeout_s`` from ``audio-stop`` to the transcript (a big Whisper model on a slow box
needs a while). Failures are :class:`~.errors.STTError` with the server's name; with
:class:`~.stt.FallbackSTT` the node then transcribes locally.
"""

from __future__ import annotations

import logging
from typing import Any

import trio

from .audio import SAMPLE_RATE, SAMPLE_WIDTH
from .errors import STTError
from .wyoming_client import WyomingConnection, WyomingError, parse_uri, wyoming_lib

log = logging.getLogger("node_agent.voice.stt")

DEFAULT_PORT = 10300


def _stt_error(exc: WyomingError, during: str) -> STTError:
    return STTError(f"{during}: {exc.message}", hint=exc.hint or "check [voice] stt and the Wyoming server's log")


class WyomingStream:
    """One utterance on a Wyoming connection (after ``transcribe`` and ``audio-start``).

    ``owner`` gives the name, the timeouts, ``failed``/``succeeded`` book-keeping and
    ``release(conn, state)``, called exactly once with ``"done"`` (a transcript came),
    ``"abandoned"`` (closed before ``finish``) or ``"broken"`` (the connection failed): a
    per-utterance connection is closed in every case, a persistent one (the local pocketsphinx
    worker) is kept, drained or restarted."""

    def __init__(self, owner: Any, conn: WyomingConnection, sample_rate: int):
        self._owner = owner
        self._conn = conn
        self._rate = sample_rate
        self._sent_s = 0.0
        self._closed = False

    async def feed(self, pcm: bytes) -> None:
        from wyoming.audio import AudioChunk  # noqa: PLC0415

        if self._closed or not pcm:
            return
        timestamp = int(self._sent_s * 1000)
        self._sent_s += len(pcm) / (SAMPLE_WIDTH * self._rate)
        try:
            await self._conn.send(AudioChunk(rate=self._rate, width=SAMPLE_WIDTH, channels=1, audio=pcm,
                                             timestamp=timestamp), timeout_s=self._owner.send_timeout_s)
        except WyomingError as exc:
            await self._release("broken")
            raise self._owner.failed(_stt_error(exc, "streaming audio")) from None

    async def finish(self) -> str:
        from wyoming.asr import Transcript, TranscriptChunk  # noqa: PLC0415
        from wyoming.audio import AudioStop  # noqa: PLC0415
        from wyoming.error import Error  # noqa: PLC0415

        if self._closed:
            raise STTError(f"{self._owner.name}: the transcription was already closed")
        chunks: list[str] = []
        state = "broken"
        try:
            await self._conn.send(AudioStop(timestamp=int(self._sent_s * 1000)), timeout_s=self._owner.send_timeout_s)
            with trio.move_on_after(self._owner.timeout_s) as waited:
                while True:
                    event = await self._conn.receive(timeout_s=self._owner.timeout_s)
                    if Transcript.is_type(event.type):
                        text = event.data.get("text")
                        if not isinstance(text, str):
                            raise STTError(f"{self._owner.name} sent a transcript without text")
                        self._owner.succeeded()
                        state = "done"
                        return " ".join(text.split())
                    if TranscriptChunk.is_type(event.type) and isinstance(event.data.get("text"), str):
                        chunks.append(event.data["text"])
                    elif Error.is_type(event.type):
                        raise STTError(f"{self._owner.name} says: {event.data.get('text') or 'error'}"
                                       f"{' (' + str(event.data['code']) + ')' if event.data.get('code') else ''}")
                    # transcript-start/-stop and anything newer: nothing to do
            if waited.cancelled_caught:
                raise STTError(f"{self._owner.name} gave no transcript within {self._owner.timeout_s:g} s",
                               hint="the server may be overloaded or hung; see its log")
        except WyomingError as exc:
            if chunks and "closed" in exc.message:  # a streaming server that hung up after its chunks
                self._owner.succeeded()
                state = "done"
                return " ".join("".join(chunks).split())
            raise self._owner.failed(_stt_error(exc, "waiting for the transcript")) from None
        except STTError as exc:
            raise self._owner.failed(exc) from None
        finally:
            await self._release(state)
        raise AssertionError("unreachable")  # pragma: no cover

    async def aclose(self) -> None:
        await self._release("abandoned")

    async def _release(self, state: str) -> None:
        if not self._closed:
            self._closed = True
            with trio.CancelScope(shield=True):
                await self._owner.release(self._conn, state)


class WyomingSTT:
    def __init__(self, uri: str, *, language: str | None = None, model: str | None = None,
                 connect_timeout_s: float = 3.0, send_timeout_s: float = 5.0, timeout_s: float = 30.0):
        self.host, self.port = parse_uri(uri, DEFAULT_PORT)
        self.name = f"wyoming://{self.host}:{self.port}"
        self.language = language
        self.model = model
        self.connect_timeout_s = connect_timeout_s
        self.send_timeout_s = send_timeout_s
        self.timeout_s = timeout_s
        self.server: dict[str, Any] | None = None  # from the last info
        self.last_error: str | None = None
        self.failures_in_a_row = 0
        self.utterances = 0

    async def start(self, *, sample_rate: int = SAMPLE_RATE) -> WyomingStream:
        wyoming_lib()
        from wyoming.asr import Transcribe  # noqa: PLC0415
        from wyoming.audio import AudioStart  # noqa: PLC0415

        try:
            conn = await WyomingConnection.connect(self.host, self.port, timeout_s=self.connect_timeout_s)
        except WyomingError as exc:
            raise self.failed(_stt_error(exc, "connecting")) from None
        try:
            programs = await conn.programs("asr", timeout_s=self.connect_timeout_s)
            if not programs:
                raise STTError(f"{self.name} offers no speech-to-text (its info lists no installed asr program)",
                               hint="point [voice] stt at the ASR server (port 10300 by convention)")
            self.server = {"program": programs[0].name, "version": programs[0].version,
                           "models": [m.name for m in programs[0].models if getattr(m, "installed", True)],
                           "streaming": bool(getattr(programs[0], "supports_transcript_streaming", False))}
            await conn.send(Transcribe(name=self.model, language=self.language), timeout_s=self.send_timeout_s)
            await conn.send(AudioStart(rate=sample_rate, width=SAMPLE_WIDTH, channels=1, timestamp=0),
                            timeout_s=self.send_timeout_s)
        except WyomingError as exc:
            await conn.aclose()
            raise self.failed(_stt_error(exc, "starting a transcription")) from None
        except STTError as exc:
            await conn.aclose()
            raise self.failed(exc) from None
        except BaseException:
            await conn.aclose()
            raise
        self.utterances += 1
        return WyomingStream(self, conn, sample_rate)

    async def release(self, conn: WyomingConnection, state: str) -> None:
        await conn.aclose()  # one connection per utterance, whatever happened

    def failed(self, exc: STTError) -> STTError:
        self.failures_in_a_row += 1
        self.last_error = exc.message
        (log.warning if self.failures_in_a_row == 1 else log.info)("speech-to-text: %s%s", exc.message,
                                                                     f" ({exc.hint})" if exc.hint else "")
        return exc

    def succeeded(self) -> None:
        if self.failures_in_a_row:
            log.info("speech-to-text %s answers again", self.name)
        self.failures_in_a_row = 0

    def status(self) -> dict[str, Any]:
        return {"name": self.name, "server": self.server, "lastError": self.last_error,
                "failuresInARow": self.failures_in_a_row, "utterances": self.utterances}

    def __repr__(self) -> str:
        return f"WyomingSTT({self.name!r}, failures_in_a_row={self.failures_in_a_row})"
