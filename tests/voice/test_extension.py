"""The voice extension on the wire: the in-memory OpenClaw gateway on virtual time
(``autojump_clock``), and the documented-dialect double over a real loopback socket.

The pipeline runs with the fakes of ``tests/support/voice_fakes.py`` (a detector that fires on a
marker, a VAD that calls loud samples speech, an STT that returns a fixed text), so every time
below is exact.
"""

from __future__ import annotations

import json
import logging
import types
from contextlib import asynccontextmanager

import pytest
import trio

from node_agent.adapters import select_adapter
from node_agent.agent.commands import builtin_registry
from node_agent.agent.status import StatusBoard
from node_agent.config import Config
from node_agent.config.voice import VoiceSettings
from node_agent.protocol import Event, HelloOk, TalkMode
from node_agent.protocol.models import ErrorShape
from node_agent.protocol.replies import NodeEventReply, call_refused
from node_agent.voice import BytesSource, Mode, VoicePipeline
from node_agent.voice.extension import GENERATION_GRACE_S, ROUTING_EVENT, WAKE_SNAPSHOT_GRACE_S, VoiceExtension
from node_agent.voice.speaker import ReplySpeaker
from tests.support.agents import make_agent, run_in
from tests.support.documented_gateway import open_documented_gateway
from tests.support.fake_openclaw import FakeGateway
from tests.support.voice_fakes import WAKE_THEN_COMMAND, FailingSource, FakeDetector, FakeSTT, FakeVad, audio

SENTENCE = "what time is it"
# Push-to-talk audio: speech at once, then silence (the capture ends 1 s into the silence).
SPEECH_THEN_SILENCE = audio(("speech", 1.04), ("sil", 3.0))


class SilentMic:
    """A microphone that delivers 80 ms of silence every 80 ms, forever."""

    name = "silent-mic"

    def __init__(self):
        self.opens = 0

    @asynccontextmanager
    async def open(self):
        self.opens += 1

        async def frames():
            while True:
                await trio.sleep(0.08)
                yield bytes(2560)

        yield frames()


def make_voice(source=None, *, mode: str = "voice-wake", local_triggers=(), session_key: str | None = "main",
               status: StatusBoard | None = None) -> VoiceExtension:
    settings = VoiceSettings(enabled=True, mode=mode, session_key=session_key, local_triggers=tuple(local_triggers))
    pipeline = VoicePipeline(source or SilentMic(), on_transcript=None, stt=FakeSTT(text=SENTENCE),
                             detector=FakeDetector(), vad_factory=FakeVad, mode=mode, offload=False,
                             local_triggers=local_triggers)
    ext = VoiceExtension(settings, select_adapter("linux"), status or StatusBoard(None), pipeline=pipeline)
    pipeline.on_transcript = ext._on_transcript  # the extension is what delivers transcripts
    return ext


def voice_agent(gw: FakeGateway, tmp_path, ext: VoiceExtension):
    registry = builtin_registry()
    ext.register(registry)
    agent = make_agent(gw, tmp_path, registry=registry, extensions=[ext], status=ext.status)
    gw.approve(agent.identity.device_id)
    return agent


@asynccontextmanager
async def voice_node(gateway: FakeGateway, tmp_path, ext: VoiceExtension):
    """``ext`` running in an agent on ``gateway``: yields (agent, first connection), cancelled on exit."""
    agent = voice_agent(gateway, tmp_path, ext)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(ext.run)
        await run_in(nursery, agent)
        yield agent, await gateway.wait_connection(1)
        nursery.cancel_scope.cancel()


def node_events(conn, name: str) -> list:
    return [json.loads(r["params"]["payloadJSON"]) for r in conn.requests
            if r.get("method") == "node.event" and r["params"]["event"] == name]


async def wait_node_event(conn, name: str, count: int = 1) -> list:
    """Wakes on the very request (no polling), so the virtual time is exact."""
    while len(node_events(conn, name)) < count:
        conn.request_event = trio.Event()
        await conn.request_event.wait()
    return node_events(conn, name)


async def until(predicate, step: float = 0.01) -> None:
    while not predicate():
        await trio.sleep(step)


# --- voicewake.changed -------------------------------------------------------------------------


@pytest.fixture
def gateway():
    return FakeGateway()


async def test_voicewake_changed_changes_models_and_reports_unsupported(autojump_clock, tmp_path, gateway, caplog):
    caplog.set_level(logging.INFO, "node_agent")
    ext = make_voice()
    async with voice_node(gateway, tmp_path, ext) as (agent, conn):
        await conn.wait_request("node.event")  # presence: the node is up
        assert ext.pipeline.detector.active == []

        await conn.send_event("voicewake.changed", {"triggers": ["hey jarvis", "computer"]})
        await wait_node_event(conn, "voice.wake.unsupported")
        assert ext.pipeline.detector.active == ["hey jarvis"]
        voice = agent.status.current.voice
        assert voice.active_triggers == ("hey jarvis",) and voice.unsupported_triggers == ("computer",)
        assert agent.status.current.voice_wake_triggers == ("hey jarvis", "computer")
        assert node_events(conn, "voice.wake.unsupported") == [{"unsupported": ["computer"], "active": ["hey jarvis"]}]
        assert "no wake-word model for 'computer'" in caplog.text
        await until(lambda: "reported unsupported wake triggers to the gateway: computer (handled: " in caplog.text)

        # The same unsupported set again (reordered): not reported twice.
        await conn.send_event("voicewake.changed", {"triggers": ["computer", "hey jarvis"]})
        await trio.sleep(1)
        assert len(node_events(conn, "voice.wake.unsupported")) == 1
        # A different one is; an all-supported set is not.
        await conn.send_event("voicewake.changed", {"triggers": ["alexa", "claude"]})
        await wait_node_event(conn, "voice.wake.unsupported", 2)
        assert node_events(conn, "voice.wake.unsupported")[1] == {"unsupported": ["claude"], "active": ["alexa"]}
        await conn.send_event("voicewake.changed", {"triggers": ["alexa"]})
        await trio.sleep(1)
        assert len(node_events(conn, "voice.wake.unsupported")) == 2
        assert agent.status.current.voice.unsupported_triggers == ()

        # A new connection hears about them again.
        await conn.send_event("voicewake.changed", {"triggers": ["alexa", "claude"]})
        await wait_node_event(conn, "voice.wake.unsupported", 3)
        await conn.close(1012, "service restart")
        second = await gateway.wait_connection(2)
        await second.wait_request("node.event")
        await second.send_event("voicewake.changed", {"triggers": ["alexa", "claude"]})
        await wait_node_event(second, "voice.wake.unsupported")


async def test_a_wake_word_snapshot_that_overtakes_hello_ok_is_applied(autojump_clock, tmp_path, gateway):
    # What openclaw@2026.9.6 does now and then: its connect snapshot arrives before hello-ok.
    gateway.events_before_hello = [("voicewake.changed", {"triggers": ["hey jarvis", "computer"]})]
    ext = make_voice()
    async with voice_node(gateway, tmp_path, ext) as (agent, conn):
        with trio.fail_after(5):  # virtual seconds; the report follows the connect at once
            await wait_node_event(conn, "voice.wake.unsupported")
        assert ext.pipeline.detector.active == ["hey jarvis"]
        assert agent.status.current.voice_wake_triggers == ("hey jarvis", "computer")


async def test_approval_that_drops_the_wake_word_snapshot_costs_one_reconnect(autojump_clock, tmp_path, gateway,
                                                                               caplog):
    # openclaw@2026.9.6 sends the connect snapshot to the pairing generation the node connected
    # with; an approval landing first drops it. Nothing a node may call returns the list.
    caplog.set_level(logging.INFO, "node_agent")
    ext = make_voice()
    async with voice_node(gateway, tmp_path, ext) as (agent, first):
        await first.wait_request("node.event")
        gateway.events_before_hello = [("voicewake.changed", {"triggers": ["hey jarvis"]})]
        approved_at = trio.current_time()
        await first.send_event("node.pair.resolved", {"requestId": "r1", "nodeId": agent.identity.device_id,
                                                      "decision": "approved", "ts": 1})
        second = await gateway.wait_connection(2)
        # The grace, then the first fast retry after losing a good link (0.5 s with the test rng).
        assert gateway.attempt_times[-1] - approved_at == pytest.approx(WAKE_SNAPSHOT_GRACE_S + 0.5)
        assert first.closed_code == 1000
        await second.ready.wait()
        await until(lambda: ext.pipeline.detector.active == ["hey jarvis"])
        assert "reconnecting once to get them" in caplog.text
        # The snapshot came with this connection: a later approval does not reconnect again.
        await second.send_event("node.pair.resolved", {"requestId": "r2", "nodeId": agent.identity.device_id,
                                                       "decision": "approved", "ts": 2})
        await trio.sleep(WAKE_SNAPSHOT_GRACE_S * 3)
        assert len(gateway.connections) == 2


async def test_a_pairing_change_that_drops_the_routing_snapshot_costs_one_reconnect(autojump_clock, tmp_path,
                                                                                     gateway, caplog):
    # Seen in CI against openclaw@2026.9.6: the node's first request after a connect is refused
    # PAIRING_CHANGED (its pairing generation changed meanwhile) and the routing snapshot, sent to
    # the old generation, never comes; the wake words had come before the change.
    caplog.set_level(logging.INFO, "node_agent")
    gateway.hello_events = ["tick", ROUTING_EVENT]
    gateway.events_before_hello = [("voicewake.changed", {"triggers": ["alexa", "computer"]})]
    gateway.node_event_errors["voice.wake.unsupported"] = {
        "code": "UNAVAILABLE", "message": "node pairing changed before request dispatch",
        "details": {"code": "PAIRING_CHANGED"}}
    routing = {"config": {"version": 1, "defaultTarget": {"mode": "current"},
                          "routes": [{"trigger": "alexa", "target": {"sessionKey": "agent:main:kitchen"}}]}}
    ext = make_voice()
    async with voice_node(gateway, tmp_path, ext) as (agent, first):
        await wait_node_event(first, "voice.wake.unsupported")
        refused_at = trio.current_time()
        gateway.events_before_hello.append((ROUTING_EVENT, routing))
        await gateway.wait_connection(2)
        # The grace, then the first fast retry after losing a good link (0.5 s with the test rng).
        assert gateway.attempt_times[-1] - refused_at == pytest.approx(GENERATION_GRACE_S + 0.5)
        assert first.closed_code == 1000
        await until(lambda: len(ext.routing.routes) == 1)
        assert "routing did not come with this connection" in caplog.text
        await trio.sleep(GENERATION_GRACE_S * 10)
        assert len(gateway.connections) == 2  # this one brought everything: no second reconnect


async def test_an_approval_after_the_snapshot_does_not_reconnect(autojump_clock, tmp_path, gateway):
    gateway.events_before_hello = [("voicewake.changed", {"triggers": ["hey jarvis"]})]
    ext = make_voice()
    async with voice_node(gateway, tmp_path, ext) as (agent, conn):
        await conn.wait_request("node.event")
        await conn.send_event("node.pair.resolved", {"requestId": "r1", "nodeId": agent.identity.device_id,
                                                     "decision": "approved", "ts": 1})
        await trio.sleep(60)
        assert len(gateway.connections) == 1 and conn.closed_code is None


# --- talk.mode ---------------------------------------------------------------------------------


@pytest.mark.parametrize("configured, payload, expected", [
    # OpenClaw: {enabled, phase}: on -> the configured mode, off -> disabled
    ("voice-wake", {"enabled": False, "phase": None}, "disabled"),
    ("voice-wake", {"enabled": True, "phase": "listening"}, "voice-wake"),
    ("push-to-talk", {"enabled": True, "phase": "listening"}, "push-to-talk"),
    ("disabled", {"enabled": True}, "voice-wake"),  # "on" must mean listening for something
    # documented: {mode, enabled}
    ("voice-wake", {"mode": "push-to-talk", "enabled": True}, "push-to-talk"),
    ("voice-wake", {"mode": "always-on", "enabled": True}, "always-on"),
    ("push-to-talk", {"mode": "always-on", "enabled": False}, "disabled"),
    ("push-to-talk", {"mode": "karaoke", "enabled": True}, "push-to-talk"),  # unknown mode: configured one
])
async def test_talk_mode_maps_to_the_pipeline_mode(autojump_clock, tmp_path, gateway, configured, payload, expected):
    ext = make_voice(mode=configured)
    ext.pipeline.set_mode("always-on" if expected != "always-on" else "disabled")  # so a change shows
    agent = voice_agent(gateway, tmp_path, ext)
    async with trio.open_nursery() as nursery:
        await run_in(nursery, agent)
        conn = await gateway.wait_connection(1)
        await conn.wait_request("node.event")
        await conn.send_event("talk.mode", payload)
        await until(lambda: ext.pipeline.mode.value == expected)
        assert agent.status.current.voice.mode == expected
        nursery.cancel_scope.cancel()


async def test_operator_events_switch_talk_mode_and_nothing_else(autojump_clock):
    ext = make_voice(mode="voice-wake")
    await ext.on_operator_event(Event(name="talk.mode", body=TalkMode(enabled=False, phase=None)))
    assert ext.pipeline.mode is Mode.DISABLED
    await ext.on_operator_event(Event(name="talk.mode", body=TalkMode(enabled=True, phase="listening")))
    assert ext.pipeline.mode is Mode.VOICE_WAKE
    # Wake words come on the node link; an operator copy of voicewake.changed is ignored.
    from node_agent.protocol import VoiceWakeChanged

    await ext.on_operator_event(Event(name="voicewake.changed", body=VoiceWakeChanged(triggers=("alexa",))))
    assert ext.pipeline.detector.active == []


async def test_documented_dialect_talk_mode_switches_the_pipeline(tmp_path):
    """The documented double over a real socket: its ``talk.mode {mode, enabled}`` reaches the
    node directly (no operator link), and the pipeline follows it."""
    ext = make_voice(mode="voice-wake")
    registry = builtin_registry()
    ext.register(registry)
    with trio.fail_after(20):
        async with open_documented_gateway(auto_approve=True) as gw, trio.open_nursery() as nursery:
            from node_agent.agent.node import Agent
            from node_agent.identity import DeviceIdentity, IdentityRecord
            from node_agent.secrets import MemoryStore

            identity = DeviceIdentity.generate()
            record = IdentityRecord(device_id=identity.device_id, public_key=identity.public_key, instance_id="inst",
                                    platform="linux", device_family="Linux", created_at_ms=0)
            config = Config(gateway_url=gw.url, protocol="jsonrpc", state_dir=tmp_path, display_name="doc-node")
            agent = Agent(config, store=MemoryStore(), identity=identity, record=record,
                          adapter=select_adapter("linux"), registry=registry, extensions=[ext], status=ext.status)
            nursery.start_soon(ext.run)
            await run_in(nursery, agent)
            conn = await gw.wait_ready()
            for payload, expected in (({"mode": "push-to-talk", "enabled": True}, Mode.PUSH_TO_TALK),
                                      ({"mode": "always-on", "enabled": True}, Mode.ALWAYS_ON),
                                      ({"mode": "push-to-talk", "enabled": False}, Mode.DISABLED),
                                      ({"enabled": True}, Mode.VOICE_WAKE)):
                await gw.emit("talk.mode", payload, conn=conn)
                await until(lambda: ext.pipeline.mode is expected)
            assert conn.node_id and agent.status.current.state.value == "connected"
            assert ext.status.current.voice.mode == "voice-wake"
            nursery.cancel_scope.cancel()


# --- transcripts -------------------------------------------------------------------------------


async def test_the_last_transcript_of_a_finite_source_is_in_the_status(autojump_clock, tmp_path, gateway):
    # The WAV (a test fixture, or `voice test --wav`) ends while its last command is still being
    # transcribed; the status loop stops with the source, so the count must be published at the end.
    ext = make_voice(BytesSource(WAKE_THEN_COMMAND, realtime=True), local_triggers=["hey jarvis"])
    ext.pipeline.stt = FakeSTT(delay=5.0, text=SENTENCE)  # outlasts the 2 s of silence after the command
    agent = voice_agent(gateway, tmp_path, ext)
    async with trio.open_nursery() as nursery:
        await run_in(nursery, agent)
        await ext.run()  # returns once the source has ended and the transcript is out
        assert ext.status.current.voice.transcript_count == 1
        assert ext.status.current.voice.last_result["status"] == "queued"
        nursery.cancel_scope.cancel()


async def test_a_wake_and_a_command_reach_the_gateway_as_voice_transcript(autojump_clock, tmp_path, gateway):
    ext = make_voice(BytesSource(WAKE_THEN_COMMAND, realtime=True), local_triggers=["hey jarvis"])
    async with voice_node(gateway, tmp_path, ext) as (agent, conn):
        await wait_node_event(conn, "voice.transcript")
        # The same instant as in the pipeline's own test: the command ends at 3.28 s (virtual).
        assert trio.current_time() == pytest.approx(3.28, abs=1e-9)
        assert node_events(conn, "voice.transcript") == [{"text": SENTENCE, "sessionKey": "main"}]
        await until(lambda: ext.pipeline.last_result is not None)
        assert ext.pipeline.last_result["status"] == "queued"


async def test_a_transcript_while_offline_is_reported_not_dropped(autojump_clock, caplog):
    ext = make_voice(BytesSource(SPEECH_THEN_SILENCE, realtime=True), mode="push-to-talk")
    async with trio.open_nursery() as nursery:
        await nursery.start(ext.pipeline.run)
        result = await ext.pipeline.ptt_once()
        assert result["status"] == "offline" and result["transcript"] == SENTENCE
        assert ext.pipeline.last_result["status"] == "offline"
        assert "not connected to the gateway" in caplog.text
        nursery.cancel_scope.cancel()


async def test_a_refused_transcript_is_offline_not_a_crash(autojump_clock, caplog):
    class RefusingConn:
        async def node_event(self, event, payload):
            raise call_refused("node.event", ErrorShape(code="UNAVAILABLE", details={"code": "PAIRING_CHANGED"},
                                                        message="node pairing changed while invocation was active"))

    ext = make_voice(BytesSource(SPEECH_THEN_SILENCE, realtime=True), mode="push-to-talk")
    await ext.on_ready(RefusingConn(), HelloOk())
    async with trio.open_nursery() as nursery:
        await nursery.start(ext.pipeline.run)
        result = await ext.pipeline.ptt_once()
        assert result["status"] == "offline"
        assert "transcript refused" in caplog.text and "PAIRING_CHANGED" in caplog.text
        assert "on_transcript failed" not in caplog.text  # typed, not a traceback
        nursery.cancel_scope.cancel()


# --- push-to-talk commands ---------------------------------------------------------------------


def invoke(device_id: str, command: str, invoke_id: str, params=None) -> dict:
    return {"id": invoke_id, "nodeId": device_id, "command": command, "paramsJSON": json.dumps(params or {}),
            "timeoutMs": 30000}


async def test_ptt_commands_are_declared_and_ptt_once_returns_the_transcript(autojump_clock, tmp_path, gateway):
    ext = make_voice(BytesSource(SPEECH_THEN_SILENCE, realtime=True), mode="push-to-talk")
    async with voice_node(gateway, tmp_path, ext) as (agent, conn):
        await conn.wait_request("node.event")
        assert "talk" in conn.connect_params["caps"]
        assert {"talk.ptt.start", "talk.ptt.stop", "talk.ptt.once", "talk.ptt.cancel"} <= set(
            conn.connect_params["commands"])
        started = trio.current_time()
        await conn.send_event("node.invoke.request", invoke(agent.identity.device_id, "talk.ptt.once", "inv-1"))
        (result,) = await conn.wait_request("node.invoke.result")
        # 1.04 s of speech, then 1.0 s of silence ends it (in 80 ms chunks): 2.08 s after the press.
        assert trio.current_time() - started == pytest.approx(2.08, abs=1e-9)
        params = result["params"]
        assert params["ok"] is True and params["id"] == "inv-1"
        payload = json.loads(params["payloadJSON"])
        assert payload["status"] == "queued" and payload["transcript"] == SENTENCE and payload["captureId"]
        assert node_events(conn, "voice.transcript") == [{"text": SENTENCE, "sessionKey": "main"}]


@pytest.mark.parametrize("case", ["disabled", "broken-mic"])
async def test_ptt_voice_errors_are_unavailable(autojump_clock, tmp_path, gateway, case):
    if case == "disabled":
        ext, message = make_voice(mode="disabled"), "voice is disabled on this node"
    else:
        ext, message = make_voice(FailingSource(99), mode="push-to-talk"), "Device or resource busy"
    async with voice_node(gateway, tmp_path, ext) as (agent, conn):
        await conn.wait_request("node.event")
        await conn.send_event("node.invoke.request", invoke(agent.identity.device_id, "talk.ptt.start", "inv-2"))
        (result,) = await conn.wait_request("node.invoke.result")
        assert result["params"]["ok"] is False
        assert result["params"]["error"] == {"code": "UNAVAILABLE", "message": message}
        assert len(gateway.connections) == 1  # a device problem never costs the connection


async def test_an_unsupported_report_refused_before_approval_is_sent_once_approved(autojump_clock, caplog):
    from node_agent.protocol import NodePairResolved, VoiceWakeChanged

    class PendingSurface:
        """The gateway before ``nodes approve``: node.event is refused with PAIRING_CHANGED."""

        def __init__(self, nursery):
            self.nursery = nursery
            self.approved = False
            self.calls: list = []
            # A dialect without a connect snapshot: nothing to fetch again on PAIRING_CHANGED.
            self.session = types.SimpleNamespace(dialect=types.SimpleNamespace(wake_words_on_connect=False))

        async def node_event(self, event, payload):
            self.calls.append((event, payload))
            if not self.approved:
                raise call_refused("node.event", ErrorShape(code="UNAVAILABLE", details={"code": "PAIRING_CHANGED"},
                                                            message="node pairing changed while invocation was active"))
            return NodeEventReply(event=event, handled=False, reason="unsupported_event")

    ext = make_voice()
    resolved = Event(name="node.pair.resolved", body=NodePairResolved(approved=True, decision="approved"))
    async with trio.open_nursery() as nursery:
        conn = PendingSurface(nursery)
        await ext.on_ready(conn, HelloOk())
        await ext.on_event(conn, Event(name="voicewake.changed", body=VoiceWakeChanged(triggers=("alexa", "computer"))))
        await until(lambda: len(conn.calls) == 1)
        assert "will once this node's commands are approved" in caplog.text
        conn.approved = True
        await ext.on_event(conn, resolved)
        await until(lambda: len(conn.calls) == 2)
        assert conn.calls[1] == conn.calls[0] == ("voice.wake.unsupported", {"unsupported": ["computer"],
                                                                               "active": ["alexa"]})
        await until(lambda: "(handled: false)" in caplog.text)
        await ext.on_event(conn, resolved)  # nothing left to send
        await trio.sleep(1)
        assert len(conn.calls) == 2
        nursery.cancel_scope.cancel()


# --- routing and spoken replies ------------------------------------------------------------------


async def test_the_routing_snapshot_decides_each_triggers_session(autojump_clock, tmp_path, gateway):
    ext = make_voice(BytesSource(WAKE_THEN_COMMAND + WAKE_THEN_COMMAND, realtime=True),
                     local_triggers=["hey jarvis"], session_key=None)
    routing = {"config": {"version": 1, "defaultTarget": {"mode": "current"},
                          "routes": [{"trigger": "Hey, Jarvis!", "target": {"agentId": "Kitchen"}}], "updatedAtMs": 7}}
    async with voice_node(gateway, tmp_path, ext) as (agent, conn):
        await conn.send_event("voicewake.routing.changed", routing)
        await wait_node_event(conn, "voice.transcript")
        assert node_events(conn, "voice.transcript") == [{"text": SENTENCE, "sessionKey": "agent:kitchen:main"}]
        # A change of routing applies to the next transcript: the route is gone, the default is current
        # (no [voice] session_key: the gateway's main session, so no sessionKey at all).
        await conn.send_event("voicewake.routing.changed", {"config": {"defaultTarget": {"mode": "current"}}})
        await wait_node_event(conn, "voice.transcript", 2)
        assert node_events(conn, "voice.transcript")[1] == {"text": SENTENCE}
        await until(lambda: ext.pipeline.transcript_count == 2)
        voice = ext.status.current.voice
        assert voice.routing["routes"] == [] and voice.last_session_key is None


class RecordingSink:
    name = "recording"

    def __init__(self):
        self.played = []

    async def play(self, audio):
        self.played.append((round(trio.current_time(), 3), audio.source))
        await trio.sleep(audio.seconds)


class TalkLink:
    """The operator link's two members the reply path uses."""

    def __init__(self, connected=True):
        self.connected = connected
        self.calls = []

    async def call(self, method, params, timeout=15.0):
        import base64
        import io
        import wave

        self.calls.append((method, params))
        buf = io.BytesIO()
        with wave.open(buf, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(16000)
            w.writeframes(bytes(16000))  # 0.5 s
        return {"audioBase64": base64.b64encode(buf.getvalue()).decode(), "mimeType": "audio/wav",
                "provider": "tts-local-cli"}


def replying_voice(session_key="main"):
    ext = make_voice(session_key=session_key)
    ext.settings = VoiceSettings(enabled=True, session_key=session_key, speak_replies=True)
    from node_agent.voice.build import build_tts
    ext.speaker = ReplySpeaker(build_tts(ext.settings, talk=ext._talk, talk_connected=ext._talk_connected),
                               RecordingSink(), ext.pipeline)
    return ext


def final(session_key, text, role="assistant"):
    return {"runId": "r1", "sessionKey": session_key, "seq": 2, "state": "final",
            "message": {"role": role, "content": [{"type": "text", "text": text}]}}


async def test_speak_replies_subscribes_and_speaks_the_final_reply_with_talk_speak(autojump_clock, tmp_path, gateway):
    ext = replying_voice()
    link = TalkLink()
    ext.attach_operator_link(link)
    async with voice_node(gateway, tmp_path, ext) as (agent, conn):
        subscribed = await wait_node_event(conn, "chat.subscribe")
        assert subscribed == [{"sessionKey": "main"}]
        await conn.send_event("chat", {**final("agent:main:main", "x"), "state": "delta"})
        await conn.send_event("chat", final("agent:other:main", "not ours"))
        await conn.send_event("chat", final("agent:main:main", "It is noon."))
        await until(lambda: ext.speaker.spoken == 1)
        assert link.calls == [("talk.speak", {"text": "It is noon."})]
        assert ext.speaker.sink.played[0][1] == "talk.speak (tts-local-cli)"
        await until(lambda: ext.status.current.voice.replies["spoken"] == 1, step=0.5)


async def test_without_the_operator_link_replies_fall_back_to_espeak(autojump_clock, tmp_path, gateway, monkeypatch):
    from node_agent.voice import tts

    async def fake_espeak(self, text):
        return tts.SpokenAudio(bytes(8000), 16000, source="espeak-ng")

    monkeypatch.setattr(tts.EspeakTTS, "synthesize", fake_espeak)
    monkeypatch.setattr(tts.EspeakTTS, "available", lambda self: True)
    ext = replying_voice()
    ext.attach_operator_link(TalkLink(connected=False))
    async with voice_node(gateway, tmp_path, ext) as (agent, conn):
        await wait_node_event(conn, "chat.subscribe")
        await conn.send_event("chat", final("agent:main:main", "It is noon."))
        await until(lambda: ext.speaker.spoken == 1)
        assert ext.speaker.sink.played[0][1] == "espeak-ng"
