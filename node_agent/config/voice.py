"""The ``[voice]`` table of the config file, validated strictly (a typo is an error).

Defined at the configuration's level, not in the voice package: loading a config (which every
command does, ``node-agent identity`` included) must not import the voice room or Trio.
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

    @property
    def active(self) -> bool:
        """Voice is on: ``enabled`` and a mode other than ``disabled``."""
        return self.enabled and self.mode != "disabled"

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
        for key, (low, high) in (("threshold", (0.0, 1.0)), ("refractory_seconds", (0.0, 60.0))):
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


