"""Small interfaces the agent uses to touch the device. One implementation set per platform.

The agent and the voice pipeline only see these Protocols; which concrete classes back them is
decided once at start-up by :func:`node_agent.adapters.select_adapter`. Adapters know nothing of
the wire: they get plain strings and numbers, never frames.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import attrs

from ..errors import LocalError, Retry


class Notifier(Protocol):
    async def notify(self, title: str, body: str, *, priority: str | None = None) -> str:
        """Show a notification to whoever is at the device. Returns how it was delivered
        (e.g. ``"notify-send"``, ``"osascript"``, ``"log"``), for the invoke result."""
        ...


class Speech(Protocol):
    async def say(self, text: str) -> None:
        """Speak ``text`` aloud (blocking until done or cancelled). Raises :class:`SpeechError`
        when the engine is missing or fails; cancelling kills the engine process."""
        ...


class Indicator(Protocol):
    def set_state(self, state: str) -> None:
        """Show an agent state (``idle``, ``listening``, ``thinking``, ``error``...) on an LED
        or the console. Must never block or raise."""
        ...


class Gpio(Protocol):
    """GPIO lines a person named in the configuration. Callers pass those *names*, never a chip
    or a line offset, so nothing outside the configuration can reach a pin."""

    def lines(self) -> Mapping[str, str]:
        """``{name: "in" | "out"}`` for every configured line."""
        ...

    async def read(self, name: str) -> bool:
        """The line's logical value (``True`` = active, ``active_low`` applied). Raises
        :class:`GpioError`."""
        ...

    async def write(self, name: str, value: bool) -> None:
        """Drive an ``out`` line. Raises :class:`GpioError` (also for an ``in`` line)."""
        ...


class GpioError(LocalError):
    """A GPIO line could not be read or driven (unknown name, no permission, line busy)."""

    retry = Retry.TRANSIENT


class SpeechError(LocalError):
    """The text-to-speech engine is missing, failed or took too long. Transient: nothing about the
    agent is broken, and the next ``say`` may work (an audio device that was busy is free)."""

    retry = Retry.TRANSIENT


@attrs.frozen(kw_only=True)
class PlatformAdapter:
    """The bundle chosen at start-up. ``platform``/``device_family`` go on the wire and must stay
    stable for an identity (the gateway pins them at pairing)."""

    name: str  # "linux", "pi", "macos", "windows"
    platform: str  # wire client.platform: "linux", "darwin", "win32"
    device_family: str  # wire client.deviceFamily: "Linux", "Mac", "Windows"
    notifier: Notifier
    speech: Speech | None = None
    indicator: Indicator | None = None
    model_identifier: str | None = None
    #: Opens the configured GPIO lines (``Sequence[GpioLineSettings] -> Gpio``); ``None`` on
    #: platforms whose adapter drives no GPIO.
    gpio_factory: Callable[[Sequence[Any]], Gpio] | None = None
