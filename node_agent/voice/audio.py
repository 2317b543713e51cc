"""Where audio comes from: 16 kHz, mono, signed 16-bit little-endian PCM, in fixed chunks.

Every source has the same shape: ``async with source.open() as frames: async for chunk in
frames: ...``. Opening is where a device can fail (:class:`AudioDeviceError`); leaving the
``async with`` always releases the device, cancelled or not. A chunk is ``bytes`` of
``chunk_samples`` samples (default 1280 = 80 ms, openWakeWord's step); the last chunk of a file is
zero-padded. A source whose iterator *ends* has run out (a file); a live device never ends, it
raises :class:`AudioDeviceError` instead (gone, stopped, or silent past a watchdog).

``PortAudioSource`` runs PortAudio's callback on PortAudio's own thread. The callback only copies
the buffer and schedules a non-blocking ``send_nowait`` on the Trio thread; the channel is
bounded, so if the consumer falls behind, chunks are dropped and counted rather than queued
without limit (a wake detector that runs late is worse than one that misses 80 ms).

``sounddevice`` (and so PortAudio) is imported only when a live source is opened or devices are
listed.
"""

from __future__ import annotations

import logging
import wave
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Protocol

import trio

from ..errors import ConfigError
from .errors import AudioDeviceError, VoiceUnavailable

log = logging.getLogger("node_agent.voice.audio")

SAMPLE_RATE = 16000
SAMPLE_WIDTH = 2  # bytes, int16
CHUNK_SAMPLES = 1280  # 80 ms


class AudioSource(Protocol):
    #: Shown in ``status()`` and logs: ``"portaudio:default"``, ``"wav:/path/x.wav"``...
    name: str

    def open(self) -> Any:
        """An async context manager yielding an async iterator of PCM chunks (``bytes``)."""
        ...


def chunk_seconds(chunk: bytes) -> float:
    return len(chunk) / (SAMPLE_WIDTH * SAMPLE_RATE)


class _BufferFrames:
    """Chunks of an in-memory buffer; in ``realtime`` mode chunk *i* is handed out at
    ``start + (i + 1) * chunk duration``, the moment a microphone would have delivered it."""

    def __init__(self, pcm: bytes, chunk_samples: int, realtime: bool):
        self._pcm = pcm
        self._step = chunk_samples * SAMPLE_WIDTH
        self._chunk_s = chunk_samples / SAMPLE_RATE
        self._realtime = realtime
        self._offset = 0
        self._index = 0
        self._start: float | None = None

    def __aiter__(self) -> _BufferFrames:
        return self

    async def __anext__(self) -> bytes:
        if self._offset >= len(self._pcm):
            raise StopAsyncIteration
        if self._realtime:
            if self._start is None:
                self._start = trio.current_time()
            await trio.sleep_until(self._start + (self._index + 1) * self._chunk_s)
        else:
            await trio.lowlevel.checkpoint()
        chunk = self._pcm[self._offset:self._offset + self._step]
        self._offset += self._step
        self._index += 1
        if len(chunk) < self._step:
            chunk = chunk + bytes(self._step - len(chunk))
        return chunk


class BytesSource:
    """Raw PCM already in memory (16 kHz mono int16). For tests, benchmarks and ``doctor``."""

    def __init__(self, pcm: bytes, *, chunk_samples: int = CHUNK_SAMPLES, realtime: bool = False,
                 name: str = "memory"):
        if len(pcm) % SAMPLE_WIDTH:
            raise ValueError("PCM length must be a whole number of int16 samples")
        self.pcm = pcm
        self.chunk_samples = chunk_samples
        self.realtime = realtime
        self.name = name

    @asynccontextmanager
    async def open(self) -> AsyncIterator[_BufferFrames]:
        yield _BufferFrames(self.pcm, self.chunk_samples, self.realtime)

    def __repr__(self) -> str:
        return f"BytesSource({self.name!r}, {len(self.pcm) / (SAMPLE_WIDTH * SAMPLE_RATE):.2f} s)"


def read_wav(path: str | Path) -> bytes:
    """The PCM of a 16 kHz, 16-bit WAV file, downmixed to mono if it has more channels.

    Other rates are refused rather than resampled badly; the error says how to convert.
    """
    path = Path(path)
    try:
        with wave.open(str(path), "rb") as wav:
            rate, width, channels = wav.getframerate(), wav.getsampwidth(), wav.getnchannels()
            frames = wav.readframes(wav.getnframes())
    except (OSError, EOFError, wave.Error) as exc:
        raise ConfigError(f"cannot read WAV file {path}: {exc}") from exc
    if rate != SAMPLE_RATE or width != SAMPLE_WIDTH:
        raise ConfigError(
            f"{path} is {rate} Hz / {8 * width}-bit; voice needs 16000 Hz 16-bit",
            hint=f"convert it: sox {path} -r 16000 -c 1 -b 16 out.wav")
    if channels > 1:
        import numpy as np  # noqa: PLC0415  (voice extra; lazy)

        samples = np.frombuffer(frames, dtype="<i2").reshape(-1, channels).astype(np.int32)
        frames = samples.mean(axis=1).round().astype("<i2").tobytes()
    return frames


def write_wav(path: str | Path, pcm: bytes, sample_rate: int = SAMPLE_RATE) -> None:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(SAMPLE_WIDTH)
        wav.setframerate(sample_rate)
        wav.writeframes(pcm)


def wav_bytes(pcm: bytes, sample_rate: int = SAMPLE_RATE) -> bytes:
    import io  # noqa: PLC0415

    buf = io.BytesIO()
    with wave.open(buf, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(SAMPLE_WIDTH)
        wav.setframerate(sample_rate)
        wav.writeframes(pcm)
    return buf.getvalue()


class WavFileSource:
    """A 16 kHz 16-bit WAV file (see :func:`read_wav`). ``realtime=True`` paces it like a
    microphone (use with ``autojump_clock`` in tests); otherwise it is read as fast as consumed."""

    def __init__(self, path: str | Path, *, realtime: bool = False, chunk_samples: int = CHUNK_SAMPLES):
        self.path = Path(path)
        self.realtime = realtime
        self.chunk_samples = chunk_samples
        self.name = f"wav:{self.path}"

    @asynccontextmanager
    async def open(self) -> AsyncIterator[_BufferFrames]:
        pcm = await trio.to_thread.run_sync(read_wav, self.path)
        yield _BufferFrames(pcm, self.chunk_samples, self.realtime)

    def __repr__(self) -> str:
        return f"WavFileSource({str(self.path)!r}, realtime={self.realtime})"


# --- PortAudio --------------------------------------------------------------------------------


def import_sounddevice():
    """``sounddevice``, or :class:`VoiceUnavailable` saying what to install."""
    try:
        import sounddevice  # noqa: PLC0415
    except ImportError as exc:
        raise VoiceUnavailable("sounddevice is not installed",
                               hint="install the voice extra: pip install 'node-agent[voice]'") from exc
    except OSError as exc:  # sounddevice raises OSError when libportaudio is missing
        raise VoiceUnavailable(f"PortAudio is not available: {exc}",
                               hint="install it: sudo apt-get install libportaudio2") from exc
    return sounddevice


def list_devices() -> list[dict[str, Any]]:
    """Input-capable devices, for ``doctor`` and ``--list-input-devices``. Blocking (PortAudio
    scans the host APIs): call it from a thread in async code."""
    sd = import_sounddevice()
    try:
        devices = sd.query_devices()
        hostapis = sd.query_hostapis()
        default_in = sd.default.device[0]
    except sd.PortAudioError as exc:
        raise AudioDeviceError(f"cannot list audio devices: {exc}") from exc
    result = []
    for index, dev in enumerate(devices):
        if dev["max_input_channels"] < 1:
            continue
        result.append({
            "index": index,
            "name": dev["name"],
            "hostapi": hostapis[dev["hostapi"]]["name"],
            "max_input_channels": dev["max_input_channels"],
            "default_samplerate": dev["default_samplerate"],
            "default": index == default_in,
        })
    return result


def check_input(device: int | str | None = None) -> None:
    """Raise :class:`AudioDeviceError` unless ``device`` can record 16 kHz mono int16 (blocking)."""
    sd = import_sounddevice()
    try:
        sd.check_input_settings(device=device, channels=1, dtype="int16", samplerate=SAMPLE_RATE)
    except (sd.PortAudioError, ValueError) as exc:
        raise AudioDeviceError(f"input device {device if device is not None else 'default'!r} "
                               f"cannot record 16 kHz mono: {exc}",
                               hint="pick another device, or the 'default'/'pulse' device which resamples") from exc


class _LiveFrames:
    def __init__(self, source: PortAudioSource, recv: trio.MemoryReceiveChannel[bytes]):
        self._source = source
        self._recv = recv

    def __aiter__(self) -> _LiveFrames:
        return self

    async def __anext__(self) -> bytes:
        stall = self._source.stall_timeout_s
        try:
            with trio.fail_after(stall):
                return await self._recv.receive()
        except trio.TooSlowError:
            raise AudioDeviceError(f"no audio from {self._source.name} for {stall:g} s",
                                   hint="the device may have been unplugged or grabbed by another program") from None
        except trio.EndOfChannel:
            raise AudioDeviceError(f"audio stream from {self._source.name} stopped") from None


class PortAudioSource:
    """A live microphone through PortAudio (``sounddevice.RawInputStream``, callback mode).

    ``device`` is a PortAudio index or a name substring (``None``: the system default).
    ``dropped_chunks`` counts chunks lost because the consumer fell behind; ``overflows`` counts
    PortAudio input overflows. Both go into the pipeline's status.
    """

    def __init__(self, device: int | str | None = None, *, chunk_samples: int = CHUNK_SAMPLES,
                 max_queued_chunks: int = 25, stall_timeout_s: float = 3.0):
        self.device = device
        self.chunk_samples = chunk_samples
        self.max_queued_chunks = max_queued_chunks
        self.stall_timeout_s = stall_timeout_s
        self.name = f"portaudio:{device if device is not None else 'default'}"
        self.dropped_chunks = 0
        self.overflows = 0

    @asynccontextmanager
    async def open(self) -> AsyncIterator[_LiveFrames]:
        sd = import_sounddevice()
        send, recv = trio.open_memory_channel[bytes](self.max_queued_chunks)
        token = trio.lowlevel.current_trio_token()

        def deliver(data: bytes) -> None:  # on the Trio thread
            try:
                send.send_nowait(data)
            except trio.WouldBlock:
                self.dropped_chunks += 1
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                pass

        def callback(indata, frames, time_info, status) -> None:  # on PortAudio's thread
            if status.input_overflow:
                self.overflows += 1
            try:
                token.run_sync_soon(deliver, bytes(indata))
            except trio.RunFinishedError:
                raise sd.CallbackAbort from None

        def finished() -> None:  # on PortAudio's thread, when the stream stops for any reason
            try:
                token.run_sync_soon(send.close)
            except trio.RunFinishedError:
                pass

        def start():
            stream = sd.RawInputStream(samplerate=SAMPLE_RATE, blocksize=self.chunk_samples, device=self.device,
                                       channels=1, dtype="int16", callback=callback, finished_callback=finished)
            try:
                stream.start()
            except BaseException:
                stream.close()
                raise
            return stream

        try:
            # Not abandoned on cancel: an abandoned open would hold the device with nobody to close it.
            stream = await trio.to_thread.run_sync(start)
        except (sd.PortAudioError, ValueError) as exc:
            # ValueError: "No input device matching ..." (a USB mic that is unplugged right now).
            raise AudioDeviceError(f"cannot open {self.name}: {exc}",
                                   hint="is another program using the microphone (arecord, pulseaudio "
                                        "with exclusive access)? is it plugged in? see `doctor`") from exc
        log.info("audio: opened %s", self.name)
        try:
            yield _LiveFrames(self, recv)
        finally:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(self._close, stream, sd)
            send.close()
            log.info("audio: closed %s", self.name)

    @staticmethod
    def _close(stream, sd) -> None:
        try:
            stream.stop()
        except sd.PortAudioError:
            pass
        stream.close(ignore_errors=True)

    def __repr__(self) -> str:
        return f"PortAudioSource({self.name!r}, dropped={self.dropped_chunks}, overflows={self.overflows})"
