"""Wyoming speech to text and text to speech against servers built with the ``wyoming`` library
(tests/support/wyoming_servers.py) on 127.0.0.1: the frames on a real socket, streaming while a
capture runs, and every way a server fails (down, hanging, malformed, an error event, a hang-up,
the wrong kind of server), with the local fallback taking over."""

from __future__ import annotations

import socket

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("wyoming")

from wyoming.asr import Transcript  # noqa: E402
from wyoming.audio import AudioChunk  # noqa: E402

from node_agent.voice import BytesSource, VoicePipeline  # noqa: E402
from node_agent.voice.errors import STTError, TTSError  # noqa: E402
from node_agent.voice.stt import FallbackSTT, transcribe  # noqa: E402
from node_agent.voice.stt_wyoming import WyomingSTT  # noqa: E402
from node_agent.voice.tts_wyoming import WyomingTTS  # noqa: E402
from node_agent.voice.wyoming_client import FrameSplitter, WyomingProtocolError, encode, parse_uri  # noqa: E402
from tests.support.voice_fakes import FakeDetector, FakeVad, audio  # noqa: E402
from tests.support.wyoming_servers import AsrServer, TtsServer  # noqa: E402

PCM = bytes(range(256)) * 125  # 1 s of 16 kHz int16 "audio"
BOUND = 20


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalSTT:
    """The local engine a fallback falls back to (pocketsphinx in the product)."""

    name = "local"

    def __init__(self):
        self.heard: list[int] = []

    async def start(self, *, sample_rate=16000):
        owner = self

        class Stream:
            def __init__(self):
                self.n = 0

            async def feed(self, pcm):
                self.n += len(pcm)

            async def finish(self):
                owner.heard.append(self.n)
                return "heard locally"

            async def aclose(self):
                pass

        return Stream()


# --- framing (sans-io) --------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=200), st.binary(max_size=3000), st.lists(st.integers(1, 50), min_size=1, max_size=30))
def test_frames_split_anywhere_decode_to_the_same_events(text, payload, cuts):
    events = [Transcript(text=text).event(), AudioChunk(rate=16000, width=2, channels=1, audio=payload).event()]
    data = b"".join(encode(e) for e in events)
    splitter, got, offset = FrameSplitter(), [], 0
    for cut in cuts * (len(data) // sum(cuts) + 1):
        got += splitter.feed(data[offset:offset + cut])
        offset += cut
        if offset >= len(data):
            break
    assert [(e.type, e.data.get("text"), e.payload or b"") for e in got] == [
        ("transcript", text, b""), ("audio-chunk", None, payload)]


@pytest.mark.parametrize("data, message", [
    (b"not json\n", "not JSON"), (b'{"no": "type"}\n', "no event type"),
    (b'{"type": "x", "payload_length": -1}\n', "not a length"),
    (b'{"type": "x", "payload_length": 99999999999}\n', "over the"),
    (b'{"type": "x", "data_length": 3}\nabc', "malformed 'x' event"),
    (b"x" * 70000, "longer than"),
])
def test_garbage_is_a_protocol_error_before_it_is_buffered(data, message):
    with pytest.raises(WyomingProtocolError, match=message):
        FrameSplitter().feed(data)


@pytest.mark.parametrize("uri, expected", [
    ("wyoming://127.0.0.1:10300", ("127.0.0.1", 10300)), ("wyoming://asr.local", ("asr.local", 7)),
    ("tcp://[::1]:1", ("::1", 1)),
])
def test_addresses(uri, expected):
    assert parse_uri(uri, 7) == expected


@pytest.mark.parametrize("uri", ["http://x:1", "wyoming://", "wyoming://h:port", "wyoming://h:1/path"])
def test_bad_addresses_are_refused_plainly(uri):
    with pytest.raises(ValueError):
        parse_uri(uri, 7)


# --- speech to text ----------------------------------------------------------------------------------


async def test_a_transcription_describes_then_streams_and_gets_the_transcript():
    with AsrServer(text="what time is it") as server, trio.fail_after(BOUND):
        stt = WyomingSTT(server.uri)
        assert await transcribe(stt, PCM) == "what time is it"
        kinds = [e.type for e in server.events]
        assert kinds == ["describe", "transcribe", "audio-start", "audio-chunk", "audio-stop"]
        assert server.received("audio-start")[0].data == {"rate": 16000, "width": 2, "channels": 1, "timestamp": 0}
        assert stt.status()["server"] == {"program": "test-asr", "version": "1.0", "models": ["tiny-test"],
                                          "streaming": False}


async def test_a_streaming_server_is_read_to_its_final_transcript():
    with AsrServer("stream", text="turn on the lights") as server, trio.fail_after(BOUND):
        assert await transcribe(WyomingSTT(server.uri), PCM) == "turn on the lights"


async def test_audio_reaches_the_server_while_the_utterance_is_still_being_captured():
    """A wake, 1.6 s of speech, then silence, from a source paced like a microphone (real time:
    the server is on a real socket): the server has most of the command before it ends."""
    with AsrServer(text="what time is it") as server, trio.fail_after(BOUND):
        got = []

        async def on_transcript(t):
            got.append((t.audio_s, t.text))

        pcm = audio(("sil", 0.4), ("wake", 0.08), ("speech", 1.6), ("sil", 1.2))
        pipeline = VoicePipeline(BytesSource(pcm, realtime=True), on_transcript=on_transcript,
                                 stt=WyomingSTT(server.uri), detector=FakeDetector(), vad_factory=FakeVad)
        pipeline.set_triggers(["hey jarvis"])
        await pipeline.run()
        chunks = server.received("audio-chunk")
        stop = server.received("audio-stop")[0]
        assert [text for _, text in got] == ["what time is it"]
        # Every chunk went as captured: the first ~2.7 s before the end of the capture, one per 80 ms.
        assert stop.at - chunks[0].at > 2.0
        # The whole utterance, exactly: from the chunk after the wake to the end of the silence.
        assert abs(sum(c.payload_len for c in chunks) / 32000 - got[0][0]) < 0.01 and got[0][0] > 2.5
        assert len({round(c.at, 2) for c in chunks}) > 20  # spread over the capture, not one burst


async def test_a_server_that_is_down_is_a_clear_error_and_the_local_engine_takes_over(caplog):
    port = closed_port()
    stt = WyomingSTT(f"wyoming://127.0.0.1:{port}")
    with trio.fail_after(BOUND):
        with pytest.raises(STTError, match=f"connecting: cannot connect to wyoming://127.0.0.1:{port}"):
            await transcribe(stt, PCM)
        local = LocalSTT()
        fallback = FallbackSTT(stt, local)
        assert await transcribe(fallback, PCM) == "heard locally"
        assert await transcribe(fallback, PCM) == "heard locally"
    assert local.heard == [len(PCM), len(PCM)]
    assert fallback.status()["fallbacks"] == 2 and stt.failures_in_a_row == 3
    # Said loudly once per outage, quietly after.
    warnings = [r for r in caplog.records if r.levelname == "WARNING" and "transcribing with local" in r.message]
    assert len(warnings) == 1


async def test_the_next_utterance_reconnects_once_the_server_is_back():
    port = closed_port()
    stt = WyomingSTT(f"wyoming://127.0.0.1:{port}")
    with trio.fail_after(BOUND):
        with pytest.raises(STTError):
            await transcribe(stt, PCM)
        with AsrServer(text="back again", port=port):
            assert await transcribe(stt, PCM) == "back again"
    assert stt.failures_in_a_row == 0 and stt.status()["lastError"].startswith("connecting")


@pytest.mark.parametrize("behaviour, message", [
    ("hang", "wyoming://127.0.0.1:\\d+ gave no transcript within 0.5 s"),
    ("malformed", "waiting for the transcript: header is not JSON"),
    ("error", "says: model exploded \\(test-error\\)"),
    ("close", "waiting for the transcript: wyoming://127.0.0.1:\\d+ closed the connection"),
    ("no-asr", "offers no speech-to-text"),
])
async def test_every_failure_is_an_stt_error_and_the_fallback_answers(behaviour, message):
    with AsrServer(behaviour) as server, trio.fail_after(BOUND):
        stt = WyomingSTT(server.uri, timeout_s=0.5)
        with pytest.raises(STTError, match=message):
            await transcribe(stt, PCM)
        assert await transcribe(FallbackSTT(stt, LocalSTT()), PCM) == "heard locally"


async def test_a_server_that_stops_reading_times_out_the_stream():
    """A listener that accepts and never reads: the kernel buffers fill and a send blocks."""
    with socket.socket() as listener, trio.fail_after(BOUND):
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        stt = WyomingSTT(f"wyoming://127.0.0.1:{listener.getsockname()[1]}", connect_timeout_s=0.3)
        with pytest.raises(STTError, match="did not answer within 0.3 s"):
            await stt.start()  # describe goes unanswered


# --- text to speech ----------------------------------------------------------------------------------


async def test_a_wyoming_tts_server_speaks_with_real_audio():
    with TtsServer() as server, trio.fail_after(BOUND):
        tts = WyomingTTS(server.uri)
        spoken = await tts.synthesize("it is seven o'clock")
        assert spoken.rate == 22050 and spoken.width == 2 and spoken.channels == 1
        assert 0.8 < spoken.seconds < 3.0
        assert server.received("synthesize")[0].data["text"] == "it is seven o'clock"
        assert tts.server == {"program": "test-tts", "voices": ["espeak-en"]}


@pytest.mark.parametrize("behaviour, message", [
    ("hang", "did not answer within 0.5 s"), ("malformed", "header is not JSON"),
    ("error", "says: model exploded"), ("close", "closed the connection"), ("no-tts", "offers no text-to-speech"),
    ("format-change", "changed the audio format mid-reply"),
])
async def test_every_tts_failure_is_a_tts_error(behaviour, message):
    with TtsServer(behaviour) as server, trio.fail_after(BOUND):
        with pytest.raises(TTSError, match=message):
            await WyomingTTS(server.uri, timeout_s=0.5).synthesize("hello")


async def test_a_tts_server_that_is_down_is_a_tts_error():
    with trio.fail_after(BOUND), pytest.raises(TTSError, match="cannot connect"):
        await WyomingTTS(f"wyoming://127.0.0.1:{closed_port()}").synthesize("hello")
