"""Spoken replies: picking the final assistant message, talk.speak's audio decoded and played into a
WAV sink, the TTS chain falling through, and a barge-in that stops playback -- the pipeline in
virtual time with its fakes, the audio real (espeak-ng's WAV, base64 as the gateway sends it)."""

from __future__ import annotations

import base64
import shutil
import subprocess
import wave

import pytest
import trio

from node_agent.errors import GatewayRejected
from node_agent.voice import BytesSource, VoicePipeline
from node_agent.voice.errors import TTSError
from node_agent.voice.playback import WavSink
from node_agent.voice.speaker import ReplySpeaker, final_reply_text
from node_agent.voice.tts import EspeakTTS, SpokenAudio, TTSChain, decode_wav
from node_agent.voice.tts_talk import TalkSpeakTTS
from tests.support.voice_fakes import FakeDetector, FakeVad, audio

needs_espeak = pytest.mark.skipif(not shutil.which("espeak-ng"), reason="needs espeak-ng")
KEYS = frozenset({"agent:main:main"})


def espeak_wav(text: str) -> bytes:
    return subprocess.run(["espeak-ng", "--stdout", text], check=True, capture_output=True).stdout


# --- which chat events are replies ---------------------------------------------------------------


@pytest.mark.parametrize("payload, text", [
    ({"state": "final", "sessionKey": "agent:main:main",
      "message": {"role": "assistant", "content": [{"type": "text", "text": "It is"}, {"type": "text", "text": "noon."}]}},
     "It is noon."),
    ({"state": "final", "sessionKey": "agent:main:main", "message": {"role": "assistant", "content": "Hi  there"}},
     "Hi there"),
    ({"state": "delta", "sessionKey": "agent:main:main", "message": {"role": "assistant", "content": "It"}}, None),
    ({"state": "final", "sessionKey": "agent:other:main", "message": {"role": "assistant", "content": "x"}}, None),
    ({"state": "final", "sessionKey": "agent:main:main", "message": {"role": "user", "content": "x"}}, None),
    ({"state": "final", "sessionKey": "agent:main:main",
      "message": {"role": "assistant", "content": [{"type": "image", "url": "x"}]}}, None),
    ({"state": "error", "sessionKey": "agent:main:main", "errorMessage": "no model"}, None),
    ("garbage", None), ({"state": "final"}, None),
])
def test_only_a_final_assistant_message_of_our_session_is_a_reply(payload, text):
    assert final_reply_text(payload, KEYS) == text


# --- talk.speak ----------------------------------------------------------------------------------


class FakeOperatorLink:
    """The operator link's call(), answering talk.speak as the real gateway does with the
    tts-local-cli provider running espeak-ng (base64 WAV, audio/wav)."""

    def __init__(self, answer=None, error=None):
        self.connected = True
        self.calls = []
        self.answer = answer
        self.error = error

    async def call(self, method, params):
        self.calls.append((method, params))
        if self.error is not None:
            raise self.error
        if self.answer is not None:
            return self.answer
        return {"audioBase64": base64.b64encode(espeak_wav(params["text"])).decode(), "provider": "tts-local-cli",
                "outputFormat": "wav", "mimeType": "audio/wav", "fileExtension": ".wav", "voiceCompatible": False}


@needs_espeak
async def test_talk_speak_audio_is_decoded_and_played_into_a_wav_sink(tmp_path):
    link = FakeOperatorLink()
    tts = TalkSpeakTTS(link.call, lambda: link.connected)
    sink = WavSink(tmp_path)
    spoken = await tts.synthesize("It is seven o'clock.")
    await sink.play(spoken)
    assert link.calls == [("talk.speak", {"text": "It is seven o'clock."})]
    assert spoken.source == "talk.speak (tts-local-cli)" and spoken.rate == 22050
    with wave.open(str(tmp_path / "reply-1.wav")) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (22050, 1, 2)
        assert w.getnframes() == len(spoken.pcm) // 2 and w.getnframes() > 22050 // 2
    assert sink.played[0].completed


@pytest.mark.parametrize("answer, error, message", [
    (None, GatewayRejected("talk.speak unavailable: talk provider not configured", code="UNAVAILABLE"),
     "refused talk.speak: talk.speak unavailable"),
    ({"provider": "x"}, None, "without audioBase64"),
    ({"audioBase64": "***not base64***"}, None, "not base64"),
])
async def test_talk_speak_refusals_and_bad_answers_are_tts_errors(answer, error, message):
    link = FakeOperatorLink(answer, error)
    with pytest.raises(TTSError, match=message) as caught:
        await TalkSpeakTTS(link.call, lambda: True).synthesize("hello")
    if error is not None:
        assert "configure a Talk provider" in caught.value.hint


async def test_compressed_talk_audio_needs_ffmpeg(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    link = FakeOperatorLink({"audioBase64": base64.b64encode(b"ID3\x04fake mp3").decode(), "mimeType": "audio/mpeg",
                             "provider": "elevenlabs"})
    with pytest.raises(TTSError, match="returned audio/mpeg, which this node can play only with ffmpeg"):
        await TalkSpeakTTS(link.call, lambda: True).synthesize("hello")


def test_a_wav_that_is_not_pcm_is_refused():
    with pytest.raises(TTSError, match="not a PCM WAV"):
        decode_wav(b"RIFF....WAVEjunk", "x")


class Failing:
    def __init__(self, name, available=True):
        self.name = name
        self._available = available
        self.calls = 0

    def available(self):
        return self._available

    async def synthesize(self, text):
        self.calls += 1
        raise TTSError(f"{self.name} is broken")


@needs_espeak
async def test_the_chain_falls_through_to_espeak_and_says_each_failure_once(caplog):
    down = Failing("talk.speak", available=False)
    broken = Failing("wyoming://127.0.0.1:1")
    chain = TTSChain([down, broken, EspeakTTS()])
    for _ in range(3):
        spoken = await chain.synthesize("hello")
        assert spoken.source == "espeak-ng"
    assert down.calls == 0 and broken.calls == 3
    assert [r.levelname for r in caplog.records if "broken" in r.message] == ["WARNING", "INFO", "INFO"]
    assert chain.status() == {"order": ["talk.speak", "wyoming://127.0.0.1:1", "espeak-ng"], "lastUsed": "espeak-ng",
                              "lastErrors": {"wyoming://127.0.0.1:1": "wyoming://127.0.0.1:1 is broken"}}


async def test_when_every_backend_fails_the_reply_is_dropped_with_the_reasons():
    with pytest.raises(TTSError, match="a: a is broken; b: b is broken"):
        await TTSChain([Failing("a"), Failing("b")]).synthesize("hello")


# --- the reply path: muting and barge-in (virtual time) ---------------------------------------------


class ToneTTS:
    """2 s of a tone, instantly (the chain is tested above; here the timing matters)."""

    name = "tone"

    def available(self):
        return True

    async def synthesize(self, text):
        return SpokenAudio(b"\x10\x00" * 32000, 16000, source="tone")


def make_pipeline(pcm, mode="voice-wake"):
    got = []

    async def on_transcript(t):
        got.append((round(trio.current_time(), 3), t.text))

    class STT:
        name = "fake"

        async def start(self, *, sample_rate=16000):
            class S:
                async def feed(self, pcm):
                    pass

                async def finish(self):
                    return "next command"

                async def aclose(self):
                    pass
            return S()

    p = VoicePipeline(BytesSource(pcm, realtime=True), on_transcript=on_transcript, stt=STT(),
                      detector=FakeDetector(), vad_factory=FakeVad, mode=mode, offload=False)
    p.set_triggers(["hey jarvis"])
    return p, got


async def test_a_wake_word_during_a_reply_stops_it_and_starts_a_capture(autojump_clock):
    # The reply starts at once (2 s of audio); the wake marker is delivered at 1.04 s.
    pcm = audio(("sil", 0.96), ("wake", 0.08), ("speech", 0.8), ("sil", 1.5))
    p, got = make_pipeline(pcm)
    sink = WavSink(realtime=True)
    speaker = ReplySpeaker(ToneTTS(), sink, p)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(speaker.run)
        speaker.say("It is noon.")
        speaker.say("And sunny.")  # queued behind it: dropped by the barge-in
        await p.run()
        nursery.cancel_scope.cancel()
    assert [(round(pl.audio.seconds, 1), pl.completed) for pl in sink.played] == [(1.0, False)]
    assert speaker.interrupted == 1 and speaker.spoken == 0 and p.barge_ins == 1
    assert [text for _, text in got] == ["next command"]
    assert p.status()["bargeIns"] == 1


async def test_while_speaking_always_on_mode_does_not_capture_the_nodes_own_voice(autojump_clock):
    # "Speech" during the whole reply (the loudspeaker, heard by the microphone), then silence.
    pcm = audio(("speech", 1.9), ("sil", 2.0))
    p, got = make_pipeline(pcm, mode="always-on")
    sink = WavSink(realtime=True)
    speaker = ReplySpeaker(ToneTTS(), sink, p)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(speaker.run)
        speaker.say("It is noon.")
        await p.run()
        nursery.cancel_scope.cancel()
    assert sink.played[0].completed and speaker.spoken == 1
    assert got == []


async def test_a_reply_waits_until_the_person_has_finished_speaking(autojump_clock):
    # A wake at 0.48 s and a command until 1.28 s, then 1.0 s of silence ends the capture at 2.32 s.
    pcm = audio(("sil", 0.4), ("wake", 0.08), ("speech", 0.8), ("sil", 3.0))
    p, got = make_pipeline(pcm)
    sink = WavSink(realtime=True)
    speaker = ReplySpeaker(ToneTTS(), sink, p)
    started = []

    class TimedSink:
        name = "timed"

        async def play(self, audio):
            started.append(round(trio.current_time(), 2))
            await sink.play(audio)

    speaker.sink = TimedSink()
    async def reply_arrives_mid_command():
        await trio.sleep(0.6)  # the capture is running
        speaker.say("a late reply")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(speaker.run)
        nursery.start_soon(reply_arrives_mid_command)
        await p.run()
        nursery.cancel_scope.cancel()
    assert [text for _, text in got] == ["next command"]
    assert started == [2.32]  # the moment the capture ended, not at 0.6 s
