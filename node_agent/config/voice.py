"""The ``[voice]`` table of the config file, validated strictly (a typo is an error).

Defined at the configuration's level, not in the voice package: loading a config (which every
command does, ``node-agent identity`` included) must not import the voice room or Trio.
"""

from __future__ import annotations

import dataclasses
from typing import Any
from urllib.parse import urlsplit

from ..errors import ConfigError

_MODES = ("disabled", "push-to-talk", "voice-wake", "always-on")
_STT = ("pocketsphinx", "command", "none")


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class VoiceSettings:
    """The ``[voice]`` table of the config file (strict: unknown keys are errors)."""

    enabled: bool = False
    mode: str = "voice-wake"
    device: str | None = None
    wav: str | None = None  # a WAV file instead of the microphone (demos, `voice test`)
    local_triggers: tuple[str, ...] = ()
    custom_model_dir: str | None = None
    threshold: float = 0.5
    refractory_seconds: float = 2.0
    stt_command: tuple[str, ...] = ()
    #: "pocketsphinx" (the default), "wyoming://host:port", or "command" (``stt_command``; also
    #: the default when only ``stt_command`` is set, as before), or "none".
    stt: str | None = None
    #: When a Wyoming server fails: transcribe with this local engine instead ("pocketsphinx",
    #: "command", or none).
    stt_fallback: str | None = None
    stt_language: str | None = None
    stt_timeout_seconds: float = 30.0
    #: Spoken replies: "wyoming://host:10200" between the gateway's talk.speak and espeak-ng.
    tts: str | None = None
    tts_voice: str | None = None
    output_device: str | None = None
    #: Write spoken replies as WAV files into this folder instead of playing them (a node with no
    #: loudspeaker, demos, tests) -- the counterpart of ``wav`` for the microphone.
    reply_wav_dir: str | None = None
    #: Phrase -> "micro" or "openwakeword", for a phrase both engines ship.
    wake_engines: dict[str, str] = dataclasses.field(default_factory=dict)
    #: Experimental: pocketsphinx keyword spotting for triggers no model covers.
    keyword_spotting: bool = False
    keyword_threshold: float = 1e-20
    debug_dir: str | None = None
    session_key: str | None = None
    speak_replies: bool = False
    #: OpenClaw only: a second, operator-role connection for this device (scopes operator.read
    #: and operator.talk), because the gateway sends ``talk.mode`` to operators only. It needs a
    #: one-time approval of the role upgrade on the gateway (``openclaw devices approve``).
    operator_link: bool = False

    @property
    def active(self) -> bool:
        """Voice is on: ``enabled`` and a mode other than ``disabled``."""
        return self.enabled and self.mode != "disabled"

    @property
    def stt_engine(self) -> str:
        """What ``stt`` means once defaults are applied."""
        if self.stt is not None:
            return self.stt
        return "command" if self.stt_command else "pocketsphinx"

    @classmethod
    def from_table(cls, table: dict[str, Any], *, where: str | None = None) -> "VoiceSettings":
        """Validate a ``[voice]`` table; ``where`` (the file) prefixes every error."""
        prefix = f"{where}: " if where else ""
        try:
            return cls._from_table(table)
        except ConfigError as exc:
            raise ConfigError(prefix + exc.message, hint=exc.hint) from None

    @classmethod
    def _from_table(cls, table: dict[str, Any]) -> "VoiceSettings":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(table) - known
        if unknown:
            raise ConfigError(f"unknown key voice.{sorted(unknown)[0]} (known: {', '.join(sorted(known))})")
        values = dict(table)
        for key in ("local_triggers", "stt_command"):
            if key in values:
                if not isinstance(values[key], list) or not all(isinstance(v, str) for v in values[key]):
                    raise ConfigError(f"voice.{key} must be a list of strings")
                values[key] = tuple(values[key])
        if values.get("mode", "voice-wake") not in _MODES:
            raise ConfigError(f"voice.mode must be one of {', '.join(_MODES)}")
        for key in ("stt", "stt_fallback", "stt_language", "tts", "tts_voice", "output_device", "reply_wav_dir"):
            if key in values and values[key] is not None and not isinstance(values[key], str):
                raise ConfigError(f"voice.{key} must be a string")
        stt = values.get("stt")
        if stt is not None and stt not in _STT and not stt.startswith("wyoming://"):
            raise ConfigError(f"voice.stt must be one of {', '.join(_STT)} or wyoming://host:port, not {stt!r}")
        if values.get("stt_fallback") not in (None, "pocketsphinx", "command"):
            raise ConfigError("voice.stt_fallback must be \"pocketsphinx\" or \"command\"")
        if (stt == "command" or values.get("stt_fallback") == "command") and not values.get("stt_command"):
            raise ConfigError("voice.stt = \"command\" needs voice.stt_command")
        tts = values.get("tts")
        if tts is not None and not tts.startswith("wyoming://"):
            raise ConfigError(f"voice.tts must be wyoming://host:port, not {tts!r}")
        for key in ("stt", "tts"):
            if isinstance(values.get(key), str) and values[key].startswith("wyoming://"):
                try:
                    parse_wyoming_uri(values[key], 1)
                except ValueError as exc:
                    raise ConfigError(f"voice.{key}: {exc}") from None
        engines = values.get("wake_engines", {})
        if not isinstance(engines, dict) or not all(
                isinstance(k, str) and v in ("micro", "openwakeword") for k, v in engines.items()):
            raise ConfigError("voice.wake_engines must map phrases to \"micro\" or \"openwakeword\"")
        for key in ("enabled", "speak_replies", "operator_link", "keyword_spotting"):
            if key in values and not isinstance(values[key], bool):
                raise ConfigError(f"voice.{key} must be true or false")
        for key, (low, high) in (("threshold", (0.0, 1.0)), ("refractory_seconds", (0.0, 60.0)),
                                 ("stt_timeout_seconds", (0.1, 600.0)), ("keyword_threshold", (0.0, 1.0))):
            if key not in values:
                continue
            value = values[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"voice.{key} must be a number")
            if not low <= value <= high:  # also refuses NaN and infinities
                raise ConfigError(f"voice.{key} must be between {low:g} and {high:g}, got {value!r}")
            values[key] = float(value)
        if "device" in values and values["device"] is not None:
            values["device"] = str(values["device"])
        return cls(**values)


def parse_wyoming_uri(uri: str, default_port: int) -> tuple[str, int]:
    """``wyoming://host:port`` (or ``tcp://``) -> ``(host, port)``; a clear ValueError otherwise."""
    parts = urlsplit(uri)
    if parts.scheme not in ("wyoming", "tcp") or not parts.hostname:
        raise ValueError(f"{uri!r} is not a Wyoming address (wyoming://host:port)")
    if parts.path not in ("", "/") or parts.query or parts.username:
        raise ValueError(f"{uri!r}: a Wyoming address is only wyoming://host:port")
    try:
        port = parts.port or default_port
    except ValueError:
        raise ValueError(f"{uri!r}: the port is not a number") from None
    return parts.hostname, port
