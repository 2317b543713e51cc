"""The ``[voice]`` table of the config file, validated strictly (a typo is an error).

Kept free of heavy imports: ``node_agent.config`` validates the table at load time.
"""

from __future__ import annotations

from typing import Any

import attrs

from ..errors import ConfigError

_MODES = ("disabled", "push-to-talk", "voice-wake", "always-on")


@attrs.frozen(kw_only=True)
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
    debug_dir: str | None = None
    session_key: str | None = None
    speak_replies: bool = False
    #: OpenClaw only: a second, operator-role connection for this device (scopes operator.read
    #: and operator.talk), because the gateway sends ``talk.mode`` to operators only. It needs a
    #: one-time approval of the role upgrade on the gateway (``openclaw devices approve``).
    operator_link: bool = False

    @classmethod
    def from_table(cls, table: dict[str, Any]) -> "VoiceSettings":
        known = {a.name for a in attrs.fields(cls)}
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
        for key in ("enabled", "speak_replies", "operator_link"):
            if key in values and not isinstance(values[key], bool):
                raise ConfigError(f"voice.{key} must be true or false")
        for key in ("threshold", "refractory_seconds"):
            if key in values and (isinstance(values[key], bool) or not isinstance(values[key], (int, float))):
                raise ConfigError(f"voice.{key} must be a number")
        if "device" in values and values["device"] is not None:
            values["device"] = str(values["device"])
        return cls(**values)


