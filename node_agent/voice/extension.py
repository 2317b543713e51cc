"""Voice on the wire: plugs the :class:`~.pipeline.VoicePipeline` into the agent.

The pipeline lives for the whole process (the microphone keeps listening across reconnects);
this extension is the only part that knows about the gateway:

* ``voicewake.changed {triggers}`` -> the active wake models. Triggers with no model are
  reported plainly: a log warning, ``status``, and once per trigger set to the gateway as
  ``node.event voice.wake.unsupported``. The gateway pushes its list right after a node
  connects; when the node's commands are approved on a live connection, or the gateway answers
  one of this connection's requests with PAIRING_CHANGED, and that push (or the routing push
  below) has not come, the extension reconnects once to get it (:data:`WAKE_SNAPSHOT_GRACE_S`,
  :data:`GENERATION_GRACE_S`).
* ``talk.mode`` -> the pipeline mode (documented dialect: ``{mode, enabled}``; OpenClaw:
  ``{enabled, phase}``, which only switches listening on or off). The documented dialect sends it
  to nodes; OpenClaw sends it only to operators, so there it arrives through the optional
  operator link (``[voice] operator_link``, :mod:`node_agent.agent.operator_link`) and
  :meth:`VoiceExtension.on_operator_event`.
* ``voicewake.routing.changed {config}`` (also a connect snapshot) -> which ``sessionKey`` each
  trigger's transcript goes to (:mod:`.routing`); the default target "current" is
  ``[voice] session_key``, or none (the gateway's main session).
* a finished utterance -> ``node.event voice.transcript {text, sessionKey?}``; while offline the
  pipeline is told so (status ``offline``), never silently dropped.
* node commands ``talk.ptt.start|stop|once|cancel`` (declared with the ``talk`` cap).
* with ``speak_replies``: ``node.event chat.subscribe {sessionKey}`` for every session the node
  sends transcripts to (at connect for the configured one, then each routed one on first use);
  the gateway forwards their ``chat`` events, and each final assistant message is spoken by the
  :class:`~.speaker.ReplySpeaker` -- through the gateway's ``talk.speak`` on the operator link when
  it is up (:meth:`VoiceExtension.attach_operator_link`), else a Wyoming TTS server, else
  espeak-ng -- with captures muted and barge-in on.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import trio

from ..adapters import PlatformAdapter
from ..agent.commands import CommandContext, CommandRegistry
from ..agent.connection import Connection
from ..agent.status import StatusBoard, VoiceStatus, section_from_json
from ..config.voice import VoiceSettings
from ..errors import ConnectionLost, GatewayRejected, GatewayUnreachable, InvokeError, SurfacePending
from ..protocol import (
    Event,
    GenericEvent,
    HelloOk,
    NodePairResolved,
    TalkMode,
    VoiceWakeChanged,
    VoiceWakeRoutingChanged,
)
from .errors import VoiceError
from .pipeline import Mode, Transcript, VoicePipeline
from .routing import VoiceWakeRouting
from .speaker import ReplySpeaker, final_reply_text

log = logging.getLogger("node_agent.voice")

_MODES = tuple(m.value for m in Mode)

__all__ = ["VoiceExtension", "VoiceSettings"]

#: How long after ``node.pair.resolved: approved`` the wake words may still be on their way.
#: OpenClaw (2026.9.6) sends its connect snapshot of them only to the pairing generation the node
#: connected with, and an approval starts a new one: approve within milliseconds of the request
#: (an operator script does) and the snapshot is dropped without a word. Nothing a node may call
#: returns the list (``voicewake.get`` is an operator method), so the node reconnects to get it.
WAKE_SNAPSHOT_GRACE_S = 5.0
#: The same loss, seen from a request: PAIRING_CHANGED on this connection means its pairing
#: generation changed under it (in CI: the node's first requests after a connect, while its
#: operator link connected), and a snapshot still on its way to the old generation is dropped.
#: Shorter than the approval's grace, because the refusal itself says the change has happened.
GENERATION_GRACE_S = 1.0
ROUTING_EVENT = "voicewake.routing.changed"


class VoiceExtension:
    def __init__(self, settings: VoiceSettings, adapter: PlatformAdapter, status: StatusBoard,
                 pipeline: VoicePipeline | None = None, state_dir: Path | None = None):
        self.settings = settings
        self.state_dir = state_dir
        self.adapter = adapter
        self.status = status
        self.pipeline = pipeline or self._build_pipeline()
        self._conn: Connection | None = None
        self._reported_unsupported: tuple[str, ...] | None = None
        self._unsupported: list[str] = []
        # A report the gateway refused because the node's commands await approval
        # (PAIRING_CHANGED): sent again once they are approved.
        self._unreported: tuple[list[str], list[str]] | None = None
        #: This connection has delivered the gateway's wake words (see WAKE_SNAPSHOT_GRACE_S),
        #: and its routing table (owed only by a gateway that lists the routing event in hello-ok).
        self._wake_words_seen = False
        self._routing_seen = True
        #: A snapshot check is scheduled on this connection (one per connection).
        self._snapshot_check = False
        self.routing = VoiceWakeRouting()
        self._last_session_key: str | None = None
        #: Sessions this connection asked to hear (as sent, and as the gateway names them).
        self._subscribed: set[str] = set()
        self._reply_keys: set[str] = set()
        self._operator_link: Any = None
        self.speaker: ReplySpeaker | None = None
        if settings.speak_replies:
            from .build import build_sink, build_tts

            tts = build_tts(settings, talk=self._talk, talk_connected=self._talk_connected)
            self.speaker = ReplySpeaker(tts, build_sink(settings), self.pipeline)

    def attach_operator_link(self, link: Any) -> None:
        """The operator link (its ``call`` and ``connected``): replies are spoken with the
        gateway's ``talk.speak`` while it is up."""
        self._operator_link = link

    def _talk_connected(self) -> bool:
        return self._operator_link is not None and bool(self._operator_link.connected)

    async def _talk(self, method: str, params: Any) -> Any:
        if self._operator_link is None:
            raise ConnectionLost(f"{method}: no operator link")
        return await self._operator_link.call(method, params, timeout=60.0)

    def __repr__(self) -> str:
        return f"<VoiceExtension {self.pipeline!r} connected={self._conn is not None}>"

    def _build_pipeline(self) -> VoicePipeline:
        from .audio import PortAudioSource, WavFileSource
        from .build import build_detector, build_stt

        s = self.settings
        source = WavFileSource(s.wav, realtime=True) if s.wav else PortAudioSource(device=s.device)
        return VoicePipeline(
            source, on_transcript=self._on_transcript, mode=s.mode, stt=build_stt(s, state_dir=self.state_dir),
            detector=build_detector(s),
            indicator=self.adapter.indicator, local_triggers=s.local_triggers, debug_dir=s.debug_dir)

    # -- the process-long part ----------------------------------------------------------------

    async def run(self) -> None:
        """Run the pipeline and keep ``status`` fresh. Start it in the process's root nursery."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._status_loop)
            nursery.start_soon(self._preload)
            if self.speaker is not None:
                nursery.start_soon(self.speaker.run)
            try:
                await self.pipeline.run()
            finally:
                # A finite source (a WAV file) can end while its last utterance is still being
                # transcribed: the pipeline waits for it, and its count must not be lost with the
                # status loop.
                self._publish()
            if self.speaker is None:
                nursery.cancel_scope.cancel()
            # else: the node is still connected and its replies still come (a finite source ends
            # the listening, not the reply path).

    async def _preload(self) -> None:
        """Load the local speech-to-text model now (pocketsphinx: ~0.7 s, seconds on a Pi), so the
        first command is not slower than the rest."""
        from .build import preload

        try:
            await preload(self.pipeline.stt)
        except VoiceError as exc:
            log.warning("speech to text unavailable: %s%s", exc.message, f" ({exc.hint})" if exc.hint else "")

    async def _status_loop(self) -> None:
        while True:
            self._publish()
            await trio.sleep(2)

    def _publish(self) -> None:
        status = dict(self.pipeline.status(), routing=self.routing.status(), lastSessionKey=self._last_session_key,
                      replies=self.speaker.status() if self.speaker is not None else None)
        self.status.update(voice=section_from_json(VoiceStatus, status))

    def register(self, registry: CommandRegistry) -> None:
        async def start(params: dict[str, Any], ctx: CommandContext) -> Any:
            return await self._ptt(self.pipeline.ptt_start)

        async def stop(params: dict[str, Any], ctx: CommandContext) -> Any:
            return await self._ptt(self.pipeline.ptt_stop)

        async def once(params: dict[str, Any], ctx: CommandContext) -> Any:
            max_s = params.get("maxSeconds")
            return await self._ptt(self.pipeline.ptt_once, max_s if isinstance(max_s, (int, float)) else None)

        async def cancel(params: dict[str, Any], ctx: CommandContext) -> Any:
            return self.pipeline.ptt_cancel()

        registry.register("talk.ptt.start", start, cap="talk")
        registry.register("talk.ptt.stop", stop, cap="talk")
        registry.register("talk.ptt.once", once, cap="talk")
        registry.register("talk.ptt.cancel", cancel, cap="talk")

    async def _ptt(self, fn: Any, *args: Any) -> Any:
        try:
            return await fn(*args)
        except VoiceError as exc:  # AudioDeviceError and friends: the device, not the request
            raise InvokeError("UNAVAILABLE", str(exc)) from None
        finally:
            self._publish()

    # -- AgentExtension hooks -----------------------------------------------------------------

    async def on_ready(self, conn: Connection, hello: HelloOk) -> None:
        self._conn = conn
        self._reported_unsupported = None  # a new connection hears about them again
        self._unreported = None
        self._wake_words_seen = False
        self._routing_seen = ROUTING_EVENT not in hello.events
        self._snapshot_check = False
        self._subscribed = set()
        if self.speaker is not None:
            conn.nursery.start_soon(self._subscribe, conn, self.settings.session_key or "main")

    async def on_disconnected(self) -> None:
        self._conn = None

    async def on_event(self, conn: Connection, event: Event) -> None:
        body = event.body
        if isinstance(body, VoiceWakeChanged):
            self._wake_words_seen = True
            active, unsupported = self.pipeline.set_triggers(body.triggers)
            self._unsupported = unsupported
            log.info("wake words from the gateway: %s (listening for: %s)", ", ".join(body.triggers) or "none",
                     ", ".join(active) or "nothing")
            if unsupported:
                log.warning("no wake-word model for %s; those triggers will not wake this node "
                            "(supported: %s, or add <phrase>.tflite to voice.custom_model_dir)",
                            ", ".join(repr(t) for t in unsupported),
                            ", ".join(self.pipeline.status().get("supportedPhrases", [])))
            self._publish()
            if tuple(unsupported) != self._reported_unsupported:
                self._reported_unsupported = tuple(unsupported)
                if unsupported:
                    conn.nursery.start_soon(self._report_unsupported, conn, list(unsupported), list(active))
        elif isinstance(body, TalkMode):
            self._apply_talk_mode(body)
        elif isinstance(body, NodePairResolved) and body.approved:
            if self.speaker is not None:  # a subscribe refused while the surface was pending
                conn.nursery.start_soon(self._subscribe, conn, self.settings.session_key or "main")
            if self._unreported is not None:
                unreported, self._unreported = self._unreported, None
                conn.nursery.start_soon(self._report_unsupported, conn, *unreported)
            self._check_snapshot(conn, WAKE_SNAPSHOT_GRACE_S)
        elif isinstance(body, VoiceWakeRoutingChanged):
            self._routing_seen = True
            self.routing = VoiceWakeRouting.from_payload({"config": body.config})
            log.info("voice routing from the gateway: %d route(s), default %s%s", len(self.routing.routes),
                     self.routing.default.mode, f" ({self.routing.dropped} malformed dropped)" if self.routing.dropped
                     else "")
            self._publish()
        elif isinstance(body, GenericEvent) and body.name == "chat" and self.speaker is not None:
            text = final_reply_text(body.payload, self._reply_keys)
            if text:
                log.info("reply for %s (%d chars): speaking it", body.payload.get("sessionKey"), len(text))
                self.speaker.say(text)

    async def on_operator_event(self, event: Event) -> None:
        """An event from the operator link (OpenClaw's ``talk.mode`` goes to operators only).
        Only ``talk.mode`` is taken from there: wake words come on the node link."""
        if isinstance(event.body, TalkMode):
            self._apply_talk_mode(event.body)

    # -- helpers --------------------------------------------------------------------------------

    def _apply_talk_mode(self, body: TalkMode) -> None:
        mode = body.mode if body.mode in _MODES else None
        if not body.enabled:
            mode = Mode.DISABLED.value
        elif mode is None:
            mode = self.settings.mode if self.settings.mode != Mode.DISABLED.value else Mode.VOICE_WAKE.value
        log.info("talk.mode %s%s: voice mode %s", "on" if body.enabled else "off",
                 f" (phase {body.phase})" if body.phase else "", mode)
        self.pipeline.set_mode(mode)
        self._publish()

    async def _on_transcript(self, transcript: Transcript) -> None:
        conn = self._conn
        if conn is None:
            raise GatewayUnreachable("not connected to the gateway; transcript not delivered")
        payload: dict[str, Any] = {"text": transcript.text}
        session_key = self.routing.session_key_for(transcript.trigger, self.settings.session_key)
        if session_key:
            payload["sessionKey"] = session_key
        self._last_session_key = session_key
        if self.speaker is not None and (session_key or "main") not in self._subscribed:
            conn.nursery.start_soon(self._subscribe, conn, session_key or "main")
        try:
            reply = await conn.node_event("voice.transcript", payload)
        except ConnectionLost as exc:
            raise GatewayUnreachable(f"transcript not delivered: {exc.message}") from None
        except GatewayRejected as exc:  # e.g. SurfacePending: the node's commands await approval
            raise GatewayRejected(f"transcript refused: {exc.message}", code=exc.code,
                                  detail_code=exc.detail_code, retry=exc.retry) from None
        # OpenClaw answers a node event it acted on with a bare {ok: true} (no "handled" field);
        # only a dropped one says handled: false (and Connection has logged and counted that).
        log.info("transcript sent (%d chars, from %s, session %s; %s)", len(transcript.text),
                 transcript.source, session_key or "default",
                 f"handled: false ({reply.reason})" if reply.refused else "gateway answered ok")
        self._publish()

    def _check_snapshot(self, conn: Connection, grace: float) -> None:
        """Reconnect once, ``grace`` from now, if this connection's connect snapshot (wake words,
        routing) has still not come by then: it went to a pairing generation that is gone."""
        if self._snapshot_check or not conn.session.dialect.wake_words_on_connect:
            return
        if self._wake_words_seen and self._routing_seen:
            return
        self._snapshot_check = True
        conn.nursery.start_soon(self._await_snapshot, conn, grace)

    async def _await_snapshot(self, conn: Connection, grace: float) -> None:
        await trio.sleep(grace)
        missing = [name for name, seen in (("wake words", self._wake_words_seen), ("routing", self._routing_seen))
                   if not seen]
        if not missing or self._conn is not conn:
            return
        log.info("the gateway's %s did not come with this connection (dropped by a pairing change); "
                 "reconnecting once to get them", " and ".join(missing))
        conn.close_soon(1000, "fetching the voice snapshot")

    def _pairing_changed(self, conn: Connection, exc: BaseException) -> None:
        if isinstance(exc, SurfacePending):
            self._check_snapshot(conn, GENERATION_GRACE_S)

    async def _report_unsupported(self, conn: Connection, unsupported: list[str], active: list[str]) -> None:
        try:
            answer = await conn.node_event("voice.wake.unsupported", {"unsupported": unsupported, "active": active})
        except Exception as exc:  # a report is a courtesy: never let it end the connection
            pending = isinstance(exc, SurfacePending)
            self._pairing_changed(conn, exc)
            if pending and self._reported_unsupported == tuple(unsupported):
                self._unreported = (unsupported, active)
            log.info("could not report unsupported wake triggers to the gateway%s: %s",
                     " yet (will once this node's commands are approved)" if pending else "", exc)
            return
        # OpenClaw 2026.9.6 accepts it as {"ok": true, "handled": false, "reason": "unsupported_event"}.
        handled = answer.handled
        log.info("reported unsupported wake triggers to the gateway: %s (handled: %s)",
                 ", ".join(unsupported), "unknown" if handled is None else str(handled).lower())

    async def _subscribe(self, conn: Connection, session_key: str) -> None:
        if session_key in self._subscribed:
            return
        self._subscribed.add(session_key)
        self._reply_keys.update(_gateway_keys(session_key))
        try:
            await conn.subscribe(session_key)
        except Exception as exc:  # replies are a courtesy: never let it end the connection
            self._subscribed.discard(session_key)
            self._pairing_changed(conn, exc)
            log.info("chat.subscribe %s failed (%s); its replies will not be spoken", session_key, exc)
        else:
            log.info("subscribed to the chat of session %s (replies are spoken)", session_key)


def _gateway_keys(session_key: str) -> set[str]:
    """How the gateway names a session in its chat events: ``main`` -> ``agent:main:main``
    (the default agent); an ``agent:...`` key as it is."""
    return {session_key} if session_key.startswith("agent:") else {session_key, f"agent:main:{session_key}"}
