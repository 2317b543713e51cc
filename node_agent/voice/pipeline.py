"""The voice pipeline: microphone -> wake word -> utterance -> speech to text -> callback.

Theory of operation
-------------------
One task (:meth:`VoicePipeline.run`) owns the audio source. It opens the microphone only while
something needs it -- ``voice-wake`` mode with at least one supported trigger, ``always-on``
mode, or a push-to-talk capture -- so ``disabled`` and idle ``push-to-talk`` leave the device
free for other programs. Every chunk goes into a ring buffer (triage audio), then to exactly
one consumer:

* the active **capture**, if there is one (an :class:`~.vad.UtteranceCapture` fed in a worker
  thread; it decides when the utterance is over, by silence, by a no-speech timeout, or by a
  maximum length, so the pipeline can never stay "listening" forever);
* else, in ``voice-wake`` mode, the **wake detector** (worker thread). A wake starts a capture,
  even while the previous utterance is still being transcribed;
* else, in ``always-on`` mode, a capture that idles until the VAD hears speech.

Speech to text *streams*: every capture has its own task that opens a transcription
(:class:`~.stt.Transcription`) with the first chunk and feeds it each chunk as it is captured
(in always-on mode, from the moment speech starts, pre-roll included), so a Wyoming server hears
the command while it is spoken and pocketsphinx decodes as it goes; when the capture ends, that
task asks for the text and calls ``on_transcript``. The audio task never waits for STT or the
network: it hands chunks over through an unbounded channel (bounded in practice by the
capture's maximum length). The audio streamed is exactly the utterance's audio. The detector is
reset after every wake and when every capture ends, and all of this sits in
``try/finally`` blocks: whatever fails (STT, the callback, a feedback sound), the pipeline
returns to idle -- the "stuck after the first wake" failure of other satellites cannot happen
silently here.

While the node speaks a reply (:meth:`VoicePipeline.speaking`), the microphone is muted for
captures -- always-on mode does not capture the node's own voice -- but in voice-wake mode the
wake detector keeps listening: a wake word during playback is a *barge-in*, which stops the
reply (the callback given to ``speaking``) and starts a capture as usual.

The microphone failing (busy, unplugged, silent) raises :class:`~.errors.AudioDeviceError`: the
pipeline shows ``error``, backs off (1 s doubling to 30 s, reset after 30 s of healthy audio)
and reopens. A push-to-talk request cuts a back-off short. A missing dependency
(:class:`~.errors.VoiceUnavailable`) is not retried on a timer; the next change (mode, triggers,
push-to-talk) tries again. A source whose iterator ends (a WAV file) ends :meth:`run`, after any
capture in progress has been processed.

Push-to-talk follows OpenClaw's node commands and the iOS node's payloads:
``talk.ptt.start -> {captureId}``, ``talk.ptt.stop``/``talk.ptt.once``/``talk.ptt.cancel ->
{captureId, transcript?, status}`` with ``status`` one of ``queued`` (transcript delivered),
``empty`` (nothing said), ``cancelled``, ``idle`` (nothing to stop), ``busy``, ``offline``
(``on_transcript`` raised a gateway error) or ``error``.

Time: captures count *audio* time; back-off, the push-to-talk start timeout and the feedback
mute use Trio's clock (so tests run under ``autojump_clock``). ``offload=False`` runs inference
on the Trio thread, for tests with a virtual clock and cheap fake models.
"""

from __future__ import annotations

import enum
import functools
import logging
import math
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Protocol

import attrs
import trio

from ..errors import GatewayError
from .audio import AudioSource
from .errors import AudioDeviceError, STTError, VoiceError, VoiceUnavailable
from .ringbuffer import DebugRecorder, RingBuffer
from .stt import SpeechToText, Transcription, stt_status
from .vad import EndReason, Utterance, UtteranceCapture, Vad
from .wake import WakeDetection

log = logging.getLogger("node_agent.voice.pipeline")

#: The gateway caps a voice.transcript's text at this many characters.
MAX_TRANSCRIPT_CHARS = 20000


class Mode(str, enum.Enum):
    DISABLED = "disabled"
    PUSH_TO_TALK = "push-to-talk"
    VOICE_WAKE = "voice-wake"
    ALWAYS_ON = "always-on"


class Phase(str, enum.Enum):
    """What the pipeline is doing; also the indicator state."""

    OFF = "off"  # microphone closed
    IDLE = "idle"  # microphone open, waiting for a wake word / speech / push-to-talk
    LISTENING = "listening"  # capturing an utterance
    THINKING = "thinking"  # transcribing / delivering
    ERROR = "error"  # microphone failing; backing off


class WakeEngine(Protocol):
    """What the pipeline needs from a wake detector (:class:`~.wake.WakeDetector`, or a fake)."""

    active: list[str]
    unsupported: list[str]

    def set_triggers(self, triggers: Iterable[str]) -> tuple[list[str], list[str]]: ...

    def process(self, chunk: bytes) -> list[WakeDetection]: ...

    def reset(self) -> None: ...


class Indicator(Protocol):
    def set_state(self, state: str) -> None: ...


@attrs.frozen
class Transcript:
    """What ``on_transcript`` receives. The agent sends ``text`` as ``node.event
    voice.transcript``; ``trigger`` lets it pick a session from ``voicewake.routing``."""

    text: str
    source: str  # "wake", "ptt", "ptt_once", "always-on"
    capture_id: str
    trigger: str | None = None
    audio_s: float = 0.0


@attrs.frozen
class CaptureSettings:
    #: After speech, this much silence ends an utterance (iOS uses 0.9 s, macOS 2 s).
    end_silence_s: float = 1.0
    #: After a wake (or ``ptt.once``) with no speech at all, give up (macOS: 5 s).
    no_speech_timeout_s: float = 5.0
    #: Hard stop for an utterance after a wake or in always-on mode.
    max_s: float = 30.0
    #: Hard stop for a held push-to-talk (``ptt.start`` without ``ptt.stop``).
    ptt_max_s: float = 60.0
    #: Hard stop for ``ptt.once`` (the iOS node uses 12 s).
    ptt_once_max_s: float = 12.0
    speech_threshold: float = 0.5
    #: In always-on mode, audio kept from just before speech starts (the first syllable).
    pre_roll_s: float = 0.3
    #: How long ``ptt_start``/``ptt_once`` wait for the microphone to deliver audio.
    start_timeout_s: float = 5.0
    #: At most this long, audio is ignored while the wake feedback sound plays.
    feedback_max_s: float = 3.0


@attrs.define(eq=False)
class _Capture:
    kind: str  # "wake", "ptt", "ptt_once", "always-on"
    capture_id: str
    machine: UtteranceCapture
    trigger: str | None = None
    muted: bool = False
    #: To this capture's transcription task; closed when the capture ends or is dropped.
    audio: trio.MemorySendChannel[bytes] | None = None
    audio_sent: int = 0  # bytes of the machine's audio handed over so far
    utterance: Utterance | None = None  # set when the capture ends (None: dropped)
    ended: trio.Event = attrs.Factory(trio.Event)
    started: trio.Event = attrs.Factory(trio.Event)  # first audio fed, or failed
    error: BaseException | None = None
    done: trio.Event = attrs.Factory(trio.Event)  # result is final
    result: dict[str, Any] | None = None
    collected: bool = False  # result handed to a ptt_stop/ptt_once caller
    cancelled: bool = False  # ptt_cancel arrived after the capture ended
    scope: trio.CancelScope | None = None  # processing, for ptt_cancel
    # The machine is being fed in a worker thread; an end requested meanwhile waits for it, so
    # the machine is never touched from two threads.
    feeding: bool = False
    end_requested: EndReason | None = None

    @property
    def is_ptt(self) -> bool:
        return self.kind in ("ptt", "ptt_once")

    def finish(self, status: str, transcript: str | None = None) -> dict[str, Any]:
        if self.result is None:
            self.result = {"captureId": self.capture_id, "status": status}
            if transcript:
                self.result["transcript"] = transcript
        self.started.set()
        self.done.set()
        return self.result


TranscriptCallback = Callable[[Transcript], Awaitable[None]]
FeedbackCallback = Callable[[str], Awaitable[None]]


class VoicePipeline:
    def __init__(self, source: AudioSource, *, on_transcript: TranscriptCallback,
                 stt: SpeechToText | None = None, detector: WakeEngine | None = None,
                 vad_factory: Callable[[], Vad] | None = None, mode: Mode | str = Mode.VOICE_WAKE,
                 indicator: Indicator | None = None, feedback: FeedbackCallback | None = None,
                 local_triggers: Sequence[str] = (), capture: CaptureSettings = CaptureSettings(),
                 debug_dir: str | Path | None = None, ring_seconds: float = 5.0, offload: bool = True,
                 backoff_initial_s: float = 1.0, backoff_max_s: float = 30.0,
                 wall_clock: Callable[[], float] = time.time):
        self.source = source
        self.on_transcript = on_transcript
        self.stt = stt
        if detector is None:
            from .wake import WakeDetector  # noqa: PLC0415  (no model is loaded until set_triggers)

            detector = WakeDetector()
        self.detector = detector
        self._vad_factory = vad_factory
        self._vad: Vad | None = None
        self.mode = Mode(mode)
        self.indicator = indicator
        self.feedback = feedback
        self.local_triggers = list(local_triggers)
        self.settings = capture
        self.ring = RingBuffer(ring_seconds)
        self.recorder = DebugRecorder(debug_dir) if debug_dir else None
        self._offload = offload
        self._backoff_initial = backoff_initial_s
        self._backoff_max = backoff_max_s
        self._wall = wall_clock

        self._capture: _Capture | None = None
        self._last_ptt: _Capture | None = None
        self._processing = 0
        self._muted = 0
        self._speaking = 0
        self._barge_in: list[Callable[[], None]] = []
        self._reset_detector = False
        self._kick = trio.Event()
        self._nursery: trio.Nursery | None = None
        self._audio_open = False
        self._indicated: str | None = None

        self.wake_count = 0
        self.transcript_count = 0
        self.audio_restarts = 0
        self.barge_ins = 0
        self.last_wake: dict[str, Any] | None = None
        self.last_result: dict[str, Any] | None = None
        self.last_error: dict[str, Any] | None = None
        if self.local_triggers:
            self.set_triggers([])

    # --- control (called from command / event handlers) ---------------------------------------

    def set_mode(self, mode: Mode | str) -> None:
        """``disabled``, ``push-to-talk``, ``voice-wake`` or ``always-on``. Leaving a mode drops
        a capture that belonged to it; ``disabled`` also cancels push-to-talk."""
        mode = Mode(mode)
        if mode == self.mode:
            return
        log.info("voice mode: %s -> %s", self.mode.value, mode.value)
        self.mode = mode
        cap = self._capture
        if cap is not None and (mode == Mode.DISABLED or (cap.kind == "wake" and mode != Mode.VOICE_WAKE)
                                or (cap.kind == "always-on" and mode != Mode.ALWAYS_ON)):
            self._drop_capture(cap, "cancelled")
        self._reset_detector = True
        self._changed()

    def set_triggers(self, triggers: Iterable[str]) -> tuple[list[str], list[str]]:
        """Apply ``voicewake.changed {triggers}`` (plus the local triggers). Returns
        ``(active, unsupported)``; unsupported ones are logged, listed in ``status()``, and not
        listened for."""
        gateway = [t for t in triggers if isinstance(t, str)]
        active, unsupported = self.detector.set_triggers([*gateway, *self.local_triggers])
        if unsupported:
            supported = getattr(self.detector, "supported_phrases", None)
            log.warning("wake triggers with no model, not listened for: %s%s", ", ".join(map(repr, unsupported)),
                        f" (supported: {', '.join(supported)})" if supported else "")
        if active:
            log.info("listening for wake triggers: %s", ", ".join(map(repr, active)))
        elif self.mode == Mode.VOICE_WAKE:
            log.warning("voice-wake mode, but no trigger has a model: the microphone stays closed")
        self._reset_detector = True
        self._changed()
        return active, unsupported

    async def ptt_start(self) -> dict[str, Any]:
        """``talk.ptt.start``: start capturing until :meth:`ptt_stop` (or ``ptt_max_s``).
        Returns ``{captureId}`` once the microphone delivers audio; raises
        :class:`AudioDeviceError` if it cannot, :class:`VoiceError` if voice is disabled."""
        self._check_enabled()
        cap = self._capture
        if cap is not None and cap.is_ptt:
            return {"captureId": cap.capture_id}
        machine = UtteranceCapture(self._get_vad(), speech_threshold=self.settings.speech_threshold,
                                   endpoint=False, max_s=self.settings.ptt_max_s)
        cap = self._begin("ptt", machine)
        try:
            await self._wait_started(cap)
        except trio.Cancelled:
            if self._capture is cap:
                self._drop_capture(cap, "cancelled")
            raise
        return {"captureId": cap.capture_id}

    async def ptt_stop(self) -> dict[str, Any]:
        """``talk.ptt.stop``: end the push-to-talk capture, transcribe, deliver; returns
        ``{captureId, transcript?, status}``."""
        cap = self._capture
        if cap is not None and cap.is_ptt:
            self._end(cap, EndReason.STOPPED)
            return await self._collect(cap)
        last = self._last_ptt
        if last is not None and not last.collected:
            # It ended on its own (max length) before the stop arrived: report that one.
            return await self._collect(last)
        return {"captureId": last.capture_id if last else str(uuid.uuid4()), "status": "idle"}

    async def ptt_once(self, max_s: float | None = None) -> dict[str, Any]:
        """``talk.ptt.once``: capture one utterance, ended by silence (or ``max_s``), transcribe
        and deliver it; returns the same payload as :meth:`ptt_stop`."""
        self._check_enabled()
        cap = self._capture
        if cap is not None and cap.is_ptt:
            return {"captureId": cap.capture_id, "status": "busy"}
        machine = UtteranceCapture(self._get_vad(), speech_threshold=self.settings.speech_threshold,
                                   end_silence_s=self.settings.end_silence_s,
                                   no_speech_timeout_s=self.settings.no_speech_timeout_s,
                                   max_s=max_s or self.settings.ptt_once_max_s)
        cap = self._begin("ptt_once", machine)
        try:
            await self._wait_started(cap)
            return await self._collect(cap)
        except trio.Cancelled:
            # The invoke was cancelled or timed out: stop listening on its behalf.
            if self._capture is cap:
                self._drop_capture(cap, "cancelled")
            raise

    def ptt_cancel(self) -> dict[str, Any]:
        """``talk.ptt.cancel``: drop the push-to-talk capture (or stop its transcription)
        without delivering anything."""
        cap = self._capture
        if cap is not None and cap.is_ptt:
            self._drop_capture(cap, "cancelled")
            return cap.result or {}
        last = self._last_ptt
        if last is not None and not last.done.is_set():
            last.cancelled = True
            if last.scope is not None:
                last.scope.cancel()
            last.collected = True
            return {"captureId": last.capture_id, "status": "cancelled"}
        return {"captureId": last.capture_id if last else str(uuid.uuid4()), "status": "idle"}

    @asynccontextmanager
    async def muted(self) -> AsyncIterator[None]:
        """While the device itself speaks (TTS), do not wake on or capture what the microphone
        hears: ``async with pipeline.muted(): await adapter.speech.say(text)``. Push-to-talk
        still works (a person pressed it)."""
        self._muted += 1
        cap = self._capture
        if cap is not None and not cap.is_ptt:
            self._drop_capture(cap, "cancelled")
        try:
            yield
        finally:
            self._muted -= 1
            self._reset_detector = True

    @asynccontextmanager
    async def speaking(self, on_barge_in: Callable[[], None]) -> AsyncIterator[None]:
        """While the node plays a reply: no capture starts from what the microphone hears, but a
        wake word is a barge-in -- ``on_barge_in()`` is called (it should stop the playback) and
        a capture starts. A capture already running is left alone (the reply path waits for
        :meth:`quiet` first, so the node does not talk over a person)."""
        self._speaking += 1
        self._barge_in.append(on_barge_in)
        try:
            yield
        finally:
            self._speaking -= 1
            self._barge_in.remove(on_barge_in)
            self._reset_detector = True

    async def quiet(self) -> None:
        """Return once no utterance is being captured (push-to-talk included)."""
        while self._capture is not None:
            cap = self._capture
            await cap.ended.wait()

    def status(self) -> dict[str, Any]:
        """A JSON-able snapshot for ``status``/``doctor`` (camelCase, like the agent's status)."""
        return {
            "mode": self.mode.value,
            "phase": self.phase.value,
            "device": getattr(self.source, "name", repr(self.source)),
            "audioOpen": self._audio_open,
            "activeTriggers": list(self.detector.active),
            "wakeModels": dict(getattr(self.detector, "models", {})),
            "unsupportedTriggers": list(self.detector.unsupported),
            "supportedPhrases": list(getattr(self.detector, "supported_phrases", [])),
            "wakeCount": self.wake_count,
            "lastWake": self.last_wake,
            "lastNearMiss": _near_miss(self.detector),
            "transcriptCount": self.transcript_count,
            "lastResult": self.last_result,
            "lastError": self.last_error,
            "audioRestarts": self.audio_restarts,
            "droppedChunks": getattr(self.source, "dropped_chunks", 0),
            "stt": getattr(self.stt, "name", None),
            "sttStatus": stt_status(self.stt),
            "speaking": self._speaking > 0,
            "bargeIns": self.barge_ins,
            "debugDir": str(self.recorder.directory) if self.recorder else None,
        }

    @property
    def phase(self) -> Phase:
        cap = self._capture
        if cap is not None and (cap.kind != "always-on" or cap.machine.speech_started):
            return Phase.LISTENING
        if self._processing:
            return Phase.THINKING
        if self._audio_open:
            return Phase.IDLE
        if self.last_error is not None and self._needs_audio():
            return Phase.ERROR
        return Phase.OFF

    def __repr__(self) -> str:
        return (f"VoicePipeline(mode={self.mode.value}, phase={self.phase.value}, "
                f"source={getattr(self.source, 'name', self.source)!r}, wakes={self.wake_count})")

    # --- the audio task ----------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run until cancelled (or until a finite source ends). Never raises for audio trouble."""
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                task_status.started()
                await self._audio_loop()
        finally:
            self._nursery = None
            cap = self._capture
            if cap is not None:
                self._drop_capture(cap, "cancelled")
            self._audio_open = False
            self._indicate()

    async def _audio_loop(self) -> None:
        delay = self._backoff_initial
        while True:
            if not self._needs_audio():
                self._indicate()
                await self._wait_for_change()
                continue
            opened_at = trio.current_time()
            try:
                async with self.source.open() as frames:
                    self._audio_open = True
                    self.last_error = None
                    self._reset_detector = True
                    self._indicate()
                    ended = await self._consume(frames)
                    self._audio_open = False
                if ended:
                    cap = self._capture
                    if cap is not None:
                        self._end(cap, EndReason.EOF)
                    return
            except (AudioDeviceError, VoiceUnavailable) as exc:
                self._audio_open = False
                fatal = isinstance(exc, VoiceUnavailable)
                if trio.current_time() - opened_at >= 30.0:
                    delay = self._backoff_initial
                self.last_error = {"message": exc.message, "hint": exc.hint, "at": self._wall(),
                                   "retryInS": None if fatal else delay}
                self.audio_restarts += 1
                cap = self._capture
                if cap is not None:
                    if cap.is_ptt:
                        cap.error = exc
                    self._drop_capture(cap, "error")
                self._indicate()
                log.warning("microphone %s: %s%s; %s", getattr(self.source, "name", "?"), exc.message,
                            f" ({exc.hint})" if exc.hint else "",
                            "waiting for a configuration change" if fatal else f"retrying in {delay:g} s")
                # Only a change from here on (a push-to-talk press, a new mode) cuts the wait short.
                if fatal:
                    await self._wait_for_change()
                else:
                    with trio.move_on_after(delay):
                        await self._wait_for_change()
                    delay = min(delay * 2, self._backoff_max)
            finally:
                self._audio_open = False

    async def _consume(self, frames: AsyncIterator[bytes]) -> bool:
        """Feed chunks until audio is no longer needed (False) or the source ends (True)."""
        async for chunk in frames:
            self.ring.append(chunk)
            await self._on_chunk(chunk)
            self._indicate()
            if not self._needs_audio():
                return False
        return True

    async def _on_chunk(self, chunk: bytes) -> None:
        cap = self._capture
        if cap is None and self._muted == 0 and self._speaking == 0 and self.mode == Mode.ALWAYS_ON:
            cap = self._begin("always-on", UtteranceCapture(
                self._get_vad(), speech_threshold=self.settings.speech_threshold,
                end_silence_s=self.settings.end_silence_s, no_speech_timeout_s=None, max_s=self.settings.max_s,
                keep_pre_speech_s=self.settings.pre_roll_s))
        if cap is not None:
            if cap.muted:
                return
            cap.feeding = True
            try:
                end = await self._call(cap.machine.feed, chunk)
            finally:
                cap.feeding = False
            cap.started.set()
            self._hand_over(cap)
            if cap.end_requested is not None:
                self._end(cap, cap.end_requested)
            elif end is not None and self._capture is cap:
                self._end(cap, end)
            return
        if self.mode != Mode.VOICE_WAKE or self._muted:
            return
        reset, self._reset_detector = self._reset_detector, False
        detections = await self._call(self._detect, chunk, reset, light=getattr(self.detector, "light", False))
        if detections and self._capture is None and self.mode == Mode.VOICE_WAKE and not self._muted:
            if self._speaking:
                self.barge_ins += 1
                log.info("barge-in: %r during a spoken reply; stopping it", detections[0].trigger)
                for stop in list(self._barge_in):
                    stop()
            self._on_wake(detections[0])

    def _hand_over(self, cap: _Capture) -> None:
        """Give the capture's new audio to its transcription task (always-on: once speech has
        started, beginning with the pre-roll the machine kept)."""
        if cap.audio is None or (cap.kind == "always-on" and not cap.machine.speech_started):
            return
        new = cap.machine.pcm_from(cap.audio_sent)
        if new:
            cap.audio_sent += len(new)
            try:
                cap.audio.send_nowait(new)
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                pass

    def _detect(self, chunk: bytes, reset: bool) -> list[WakeDetection]:
        if reset:
            self.detector.reset()
        return self.detector.process(chunk)

    def _on_wake(self, detection: WakeDetection) -> None:
        self.wake_count += 1
        engine = getattr(detection, "engine", None)
        self.last_wake = {"trigger": detection.trigger, "engine": engine, "model": detection.model_id,
                          "score": round(detection.score, 3), "at": self._wall()}
        log.info("wake: %r (%s model %s, score %.3f)", detection.trigger, engine, detection.model_id, detection.score)
        if self.recorder is not None:
            self._spawn(self._save_debug, "wake", self.ring.get(), f"{detection.model_id}-{detection.score:.2f}")
        self._reset_detector = True
        machine = UtteranceCapture(self._get_vad(), speech_threshold=self.settings.speech_threshold,
                                   end_silence_s=self.settings.end_silence_s,
                                   no_speech_timeout_s=self.settings.no_speech_timeout_s, max_s=self.settings.max_s)
        cap = self._begin("wake", machine, trigger=detection.trigger)
        if self.feedback is not None:
            cap.muted = True
            self._spawn(self._play_feedback, cap, "wake")

    async def _play_feedback(self, cap: _Capture, event: str) -> None:
        # The microphone would record the chime (and the VAD call it speech): ignore audio
        # until it has played.
        try:
            with trio.move_on_after(self.settings.feedback_max_s):
                await self.feedback(event)
        except Exception as exc:  # noqa: BLE001  (a sound must never break listening)
            log.info("feedback sound %r failed: %s", event, exc)
        finally:
            cap.muted = False

    # --- captures ----------------------------------------------------------------------------

    def _begin(self, kind: str, machine: UtteranceCapture, *, trigger: str | None = None) -> _Capture:
        old = self._capture
        if old is not None:
            self._drop_capture(old, "cancelled")
        cap = _Capture(kind=kind, capture_id=str(uuid.uuid4()), machine=machine, trigger=trigger)
        if self._nursery is not None:
            send, recv = trio.open_memory_channel[bytes](math.inf)
            cap.audio = send
            self._nursery.start_soon(self._process, cap, recv)
        self._capture = cap
        if cap.is_ptt:
            self._last_ptt = cap
            log.info("push-to-talk %s: capture %s", kind, cap.capture_id)
        self._changed()
        self._indicate()
        return cap

    def _end(self, cap: _Capture, reason: EndReason) -> None:
        """The capture is over: hand its audio to a processing task."""
        if self._capture is cap:
            self._capture = None
        if cap.result is not None:  # dropped meanwhile
            return
        if cap.feeding:
            cap.end_requested = reason  # finished by the audio task as soon as the feed returns
            return
        if cap.audio is None:  # the pipeline is not running
            cap.finish("cancelled")
            cap.ended.set()
            return
        cap.utterance = cap.machine.finish(reason)
        self._hand_over(cap)
        # The detector heard nothing during the capture: it resumes from a clean state now, not
        # when the transcript is done (that can land in the middle of the next wake word).
        self._reset_detector = True
        self._processing += 1
        cap.audio.close()
        cap.ended.set()
        self._indicate()

    def _drop_capture(self, cap: _Capture, status: str) -> None:
        if self._capture is cap:
            self._capture = None
        cap.finish(status)
        if cap.audio is not None:
            cap.audio.close()
        cap.ended.set()
        if cap.is_ptt:
            cap.collected = status == "cancelled"
        self._indicate()

    async def _wait_started(self, cap: _Capture) -> None:
        with trio.move_on_after(self.settings.start_timeout_s):
            await cap.started.wait()
        if cap.error is not None:
            raise cap.error
        if not cap.started.is_set():
            self._drop_capture(cap, "error")
            raise AudioDeviceError(f"the microphone ({getattr(self.source, 'name', '?')}) delivered no audio "
                                   f"within {self.settings.start_timeout_s:g} s",
                                   hint=(self.last_error or {}).get("hint"))
        if cap.result is not None and cap.result["status"] == "error":
            raise AudioDeviceError("the microphone failed as the capture started")

    async def _collect(self, cap: _Capture) -> dict[str, Any]:
        await cap.done.wait()
        cap.collected = True
        return dict(cap.result or {"captureId": cap.capture_id, "status": "error"})

    async def _process(self, cap: _Capture, audio: trio.MemoryReceiveChannel[bytes]) -> None:
        """The capture's transcription: stream its audio while it is captured, then, once it
        has ended, finish the transcript and deliver it. A dropped capture just closes it."""
        stream: Transcription | None = None
        error: STTError | None = None
        status, text = "error", None
        try:
            with trio.CancelScope() as scope:
                cap.scope = scope
                async with audio:
                    async for chunk in audio:
                        if self.stt is None or error is not None:
                            continue
                        try:
                            if stream is None:
                                stream = await self.stt.start()
                            await stream.feed(chunk)
                        except STTError as exc:
                            error = exc
                await cap.ended.wait()
                utterance = cap.utterance
                if utterance is None:  # dropped (cancelled, the microphone failed, a mode change)
                    return
                if cap.cancelled:
                    scope.cancel()
                status, text = await self._transcribe_and_deliver(cap, utterance, stream, error)
            if scope.cancelled_caught or cap.cancelled:
                status, text = "cancelled", None
        finally:
            if stream is not None:
                with trio.CancelScope(shield=True):
                    await stream.aclose()
            if cap.utterance is not None:  # it ended (counted in _end): this task reports it
                self._processing -= 1
                result = cap.finish(status, text)
                self.last_result = {"source": cap.kind, "status": status, "reason": cap.utterance.reason.value,
                                    "audioS": round(cap.utterance.duration_s, 2), "at": self._wall(),
                                    "captureId": result["captureId"]}
                self._indicate()

    async def _transcribe_and_deliver(self, cap: _Capture, utterance: Utterance, stream: Transcription | None,
                                      error: STTError | None) -> tuple[str, str | None]:
        if self.recorder is not None:
            self._spawn(self._save_debug, "utterance", utterance.pcm, f"{cap.kind}-{utterance.reason.value}")
        if not utterance.speech_started or utterance.reason == EndReason.NO_SPEECH:
            log.info("%s capture ended (%s) with no speech", cap.kind, utterance.reason.value)
            return "empty", None
        if self.stt is None:
            log.warning("%s: %.1f s of speech captured but no speech-to-text engine is configured",
                        cap.kind, utterance.duration_s)
            return "error", None
        try:
            if error is not None:
                raise error
            if stream is None:  # no audio reached the task (an always-on capture cut at once)
                stream = await self.stt.start()
                await stream.feed(utterance.pcm)
            text = (await stream.finish()).strip()
        except STTError as exc:
            log.warning("speech-to-text failed: %s", exc.message)
            return "error", None
        if not text:
            return "empty", None
        text = text[:MAX_TRANSCRIPT_CHARS]
        transcript = Transcript(text=text, source=cap.kind, capture_id=cap.capture_id, trigger=cap.trigger,
                                audio_s=round(utterance.duration_s, 2))
        try:
            await self.on_transcript(transcript)
        except GatewayError as exc:
            log.warning("transcript not delivered (%s): %s", type(exc).__name__, exc.message)
            return "offline", text
        except Exception:
            log.exception("on_transcript failed")
            return "error", text
        self.transcript_count += 1
        log.info("transcript delivered (%s, %d chars)", cap.kind, len(text))
        return "queued", text

    # --- helpers ------------------------------------------------------------------------------

    def _needs_audio(self) -> bool:
        if self._capture is not None:
            return True
        if self.mode == Mode.ALWAYS_ON:
            return True
        return self.mode == Mode.VOICE_WAKE and bool(self.detector.active)

    def _check_enabled(self) -> None:
        if self._nursery is None:
            raise VoiceError("the voice pipeline is not running")
        if self.mode == Mode.DISABLED:
            raise VoiceError("voice is disabled on this node", hint="set the voice mode to push-to-talk or voice-wake")

    def _get_vad(self) -> Vad | None:
        if self._vad is None and self._vad_factory is not None:
            self._vad = self._vad_factory()
        elif self._vad is None:
            from .vad import SileroVad  # noqa: PLC0415

            self._vad = SileroVad()
        return self._vad

    def _changed(self) -> None:
        self._kick.set()

    async def _wait_for_change(self) -> None:
        # A fresh event: changes that happened before this call were already looked at (there
        # is no checkpoint between the caller's check and here).
        self._kick = trio.Event()
        await self._kick.wait()

    async def _call(self, fn: Callable[..., Any], *args: Any, light: bool = False) -> Any:
        """Blocking audio work, in a worker thread (``offload``) unless it is ``light``: cheaper
        than the trip to the thread and back (microWakeWord's inference on a chunk)."""
        if self._offload and not light:
            return await trio.to_thread.run_sync(fn, *args)
        return fn(*args)

    def _spawn(self, fn: Callable[..., Awaitable[None]], *args: Any) -> None:
        if self._nursery is not None:
            self._nursery.start_soon(fn, *args)

    async def _save_debug(self, kind: str, pcm: bytes, label: str) -> None:
        try:
            path = await trio.to_thread.run_sync(functools.partial(self.recorder.save, kind, pcm, label=label))
            log.info("saved %s audio: %s", kind, path)
        except OSError as exc:
            log.warning("could not save %s audio in %s: %s", kind, self.recorder.directory, exc)

    def _indicate(self) -> None:
        state = self.phase.value
        if state == self._indicated or self.indicator is None:
            self._indicated = state
            return
        self._indicated = state
        try:
            self.indicator.set_state(state)
        except Exception:  # noqa: BLE001  (Indicator promises not to raise; belt and braces)
            log.exception("indicator failed")


async def ptt_button_loop(pipeline: VoicePipeline, presses: AsyncIterator[bool]) -> None:
    """Drive push-to-talk from a button (e.g. :meth:`node_agent.adapters.pi.GpioButton.events`):
    press starts, release stops. A failing microphone is logged, not raised: the button must
    keep working once the device is back."""
    async for pressed in presses:
        try:
            if pressed:
                await pipeline.ptt_start()
            else:
                result = await pipeline.ptt_stop()
                log.info("push-to-talk button: %s", result.get("status"))
        except VoiceError as exc:
            log.warning("push-to-talk button: %s", exc.message)


def _near_miss(detector: object) -> dict[str, Any] | None:
    miss = getattr(detector, "last_near_miss", None)
    if not miss:
        return None
    trigger, score, audio_time = miss
    return {"trigger": trigger, "score": round(score, 3), "audioTime": round(audio_time, 2)}
