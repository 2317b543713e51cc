"""Where spoken replies go: a loudspeaker through PortAudio, or a WAV file (tests, headless demos).

A sink plays one :class:`~.tts.SpokenAudio` to the end or until cancelled -- cancelling is how a
barge-in stops a reply, so :class:`PortAudioSink` writes in blocks of ``block_s`` from a worker
thread and checks for cancellation between blocks (a reply stops within ~0.1 s), then aborts
the stream (dropping what PortAudio still buffers). ``sounddevice`` is imported only when a
reply is played.
"""

from __future__ import annotations

import logging
from pathlib import Path

import attrs
import trio

from .audio import import_sounddevice
from .errors import AudioDeviceError
from .tts import SpokenAudio

log = logging.getLogger("node_agent.voice.playback")


class PortAudioSink:
    def __init__(self, device: int | str | None = None, *, block_s: float = 0.1):
        self.device = device
        self.block_s = block_s
        self.name = f"portaudio:{device if device is not None else 'default'}"

    async def play(self, audio: SpokenAudio) -> None:
        sd = import_sounddevice()
        dtype = {1: "uint8", 2: "int16", 4: "int32"}[audio.width]
        frame = audio.width * audio.channels
        block = max(frame, int(audio.rate * self.block_s) * frame)

        def open_stream():
            stream = sd.RawOutputStream(samplerate=audio.rate, channels=audio.channels, dtype=dtype, device=self.device)
            stream.start()
            return stream

        try:
            stream = await trio.to_thread.run_sync(open_stream)
        except (sd.PortAudioError, ValueError) as exc:
            raise AudioDeviceError(f"cannot open {self.name} for playback: {exc}",
                                   hint="check the output device (voice devices --output)") from exc
        finished = False
        try:
            for offset in range(0, len(audio.pcm), block):
                await trio.to_thread.run_sync(stream.write, audio.pcm[offset:offset + block])
            finished = True
        except sd.PortAudioError as exc:
            raise AudioDeviceError(f"playback on {self.name} failed: {exc}") from exc
        finally:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(_close, stream, finished)

    def __repr__(self) -> str:
        return f"PortAudioSink({self.name!r})"


def _close(stream, drain: bool) -> None:
    try:
        if drain:
            stream.stop()  # lets the buffered tail play
        else:
            stream.abort()  # a barge-in: silence now
    finally:
        stream.close(ignore_errors=True)


@attrs.define
class PlayedAudio:
    audio: SpokenAudio
    path: Path | None
    completed: bool


class WavSink:
    """Writes each reply to ``directory`` as ``reply-<n>.wav`` (and remembers them). Plays in
    real time when ``realtime`` (so a barge-in can interrupt it, as on a loudspeaker); a reply cut
    short is written up to where it was cut."""

    def __init__(self, directory: str | Path | None = None, *, realtime: bool = False, block_s: float = 0.1):
        self.directory = Path(directory) if directory is not None else None
        self.realtime = realtime
        self.block_s = block_s
        self.name = f"wav:{self.directory}" if self.directory else "wav:memory"
        self.played: list[PlayedAudio] = []

    async def play(self, audio: SpokenAudio) -> None:
        frame = audio.width * audio.channels
        block = max(frame, int(audio.rate * self.block_s) * frame)
        done = 0
        completed = False
        try:
            for offset in range(0, len(audio.pcm), block):
                if self.realtime:
                    await trio.sleep(min(block, len(audio.pcm) - offset) / (audio.rate * frame))
                else:
                    await trio.lowlevel.checkpoint()
                done = min(len(audio.pcm), offset + block)
            completed = True
        finally:
            played = attrs.evolve(audio, pcm=audio.pcm[:done])
            path = None
            if self.directory is not None:
                path = self.directory / f"reply-{len(self.played) + 1}.wav"
                with trio.CancelScope(shield=True):
                    await trio.to_thread.run_sync(_write, path, played)
            self.played.append(PlayedAudio(played, path, completed))


def _write(path: Path, audio: SpokenAudio) -> None:
    import wave  # noqa: PLC0415

    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(audio.channels)
        wav.setsampwidth(audio.width)
        wav.setframerate(audio.rate)
        wav.writeframes(audio.pcm)
