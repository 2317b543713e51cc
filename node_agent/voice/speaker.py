"""Spoken replies: the final assistant message of the node's session, spoken aloud.

The gateway forwards the session's ``chat`` events to a node that asked (``node.event
chat.subscribe {sessionKey}``); :func:`final_reply_text` picks the text of a ``state: "final"``
assistant message out of one. :class:`ReplySpeaker` queues it and, one reply at a time:

1. waits until nobody is being listened to (:meth:`VoicePipeline.quiet`) -- the node does not
   talk over a person giving the next command;
2. synthesizes it (:class:`~.tts.TTSChain`: the gateway's ``talk.speak``, a Wyoming TTS server,
   espeak-ng);
3. plays it into the sink inside :meth:`VoicePipeline.speaking`: captures are muted (the node
   does not transcribe its own voice), and a wake word is a barge-in that cancels the playback
   *and* drops the replies still queued (the person has moved on).

The queue is small and newest-wins (a burst of replies while the speaker is busy keeps the
latest ``max_queued``); a failure to speak is logged and counted, never raised.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

import trio

from .errors import TTSError, VoiceError
from .tts import SpokenAudio, TextToSpeech

log = logging.getLogger("node_agent.voice.speaker")

#: The gateway caps what it shows; a node need not read a novel aloud.
MAX_SPOKEN_CHARS = 4000


class AudioSink(Protocol):
    name: str

    async def play(self, audio: SpokenAudio) -> None:
        """Play to the end, or stop when cancelled."""
        ...


class Pipeline(Protocol):
    async def quiet(self) -> None: ...

    def speaking(self, on_barge_in: Any) -> Any: ...


def final_reply_text(payload: Any, session_keys: frozenset[str] | set[str]) -> str | None:
    """The text of a ``chat`` event that is a final assistant message for one of
    ``session_keys`` (as the gateway spells them: ``agent:main:main``), else None."""
    if not isinstance(payload, dict) or payload.get("state") != "final":
        return None
    key = payload.get("sessionKey")
    if not isinstance(key, str) or key not in session_keys:
        return None
    message = payload.get("message")
    if not isinstance(message, dict) or message.get("role", "assistant") != "assistant":
        return None
    content = message.get("content")
    if isinstance(content, str):
        text = content
    elif isinstance(content, list):
        text = " ".join(part["text"] for part in content
                        if isinstance(part, dict) and part.get("type", "text") == "text"
                        and isinstance(part.get("text"), str))
    else:
        return None
    text = " ".join(text.split())
    return text[:MAX_SPOKEN_CHARS] or None


class ReplySpeaker:
    def __init__(self, tts: TextToSpeech, sink: AudioSink, pipeline: Pipeline, *, max_queued: int = 3):
        self.tts = tts
        self.sink = sink
        self.pipeline = pipeline
        self.max_queued = max_queued
        self._queue: list[str] = []
        self._wake = trio.Event()
        self._playing: trio.CancelScope | None = None
        self.spoken = 0
        self.interrupted = 0
        self.failed = 0
        self.last_error: str | None = None

    def say(self, text: str) -> None:
        """Queue a reply (returns at once)."""
        text = " ".join(text.split())
        if not text:
            return
        self._queue.append(text)
        del self._queue[:-self.max_queued]
        self._wake.set()

    def barge_in(self) -> None:
        """Stop the reply being played and forget the queued ones."""
        self._queue.clear()
        if self._playing is not None:
            self._playing.cancel()

    async def run(self) -> None:
        while True:
            if not self._queue:
                self._wake = trio.Event()
                await self._wake.wait()
                continue
            await self.pipeline.quiet()
            if not self._queue:
                continue
            text = self._queue.pop(0)
            await self._speak(text)

    async def _speak(self, text: str) -> None:
        try:
            audio = await self.tts.synthesize(text)
        except TTSError as exc:
            self.failed += 1
            self.last_error = exc.message
            log.warning("could not speak the reply: %s", exc.message)
            return
        with trio.CancelScope() as scope:
            self._playing = scope
            try:
                async with self.pipeline.speaking(self.barge_in):
                    await self.sink.play(audio)
            except VoiceError as exc:  # the loudspeaker is gone or busy
                self.failed += 1
                self.last_error = exc.message
                log.warning("could not play the reply on %s: %s", self.sink.name, exc.message)
                return
            finally:
                self._playing = None
        if scope.cancelled_caught:
            self.interrupted += 1
            log.info("reply interrupted after %s (barge-in)", audio.source)
        else:
            self.spoken += 1
            log.info("reply spoken (%.1f s, %s)", audio.seconds, audio.source)

    def status(self) -> dict[str, Any]:
        tts_status = getattr(self.tts, "status", None)
        return {"tts": tts_status() if callable(tts_status) else self.tts.name, "sink": self.sink.name,
                "spoken": self.spoken, "interrupted": self.interrupted, "failed": self.failed,
                "queued": len(self._queue), "lastError": self.last_error}
