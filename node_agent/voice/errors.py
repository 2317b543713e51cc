"""Voice errors. All are ours (``LocalError``); the retry category tells the pipeline whether to
back off and try the microphone again or to stop and say what is missing."""

from __future__ import annotations

from ..errors import LocalError, Retry


class VoiceError(LocalError):
    retry = Retry.TRANSIENT


class AudioDeviceError(VoiceError):
    """The microphone is busy, gone, or stopped delivering audio. The pipeline backs off and
    reopens it (1 s doubling to 30 s); it never crash-loops and never takes the agent down."""

    retry = Retry.TRANSIENT


class VoiceUnavailable(VoiceError):
    """A voice dependency is missing (the ``voice`` extra, or PortAudio on Linux). Retrying will
    not install it."""

    retry = Retry.FATAL


class STTError(VoiceError):
    """The speech-to-text engine failed or timed out for one utterance."""

    retry = Retry.TRANSIENT


class TTSError(VoiceError):
    """A text-to-speech backend failed for one reply; the next one in line is tried."""

    retry = Retry.TRANSIENT
