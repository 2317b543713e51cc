"""Raspberry-Pi-class boards: Linux plus board detection, an optional LED and push-to-talk button.

The LED and the button are opt-in (a Pi's ``ACT`` LED also shows SD-card activity, and which GPIO
line a button sits on is a wiring choice): with nothing configured the indicator is the log.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import trio

from .base import PlatformAdapter
from .gpio import GpiodLines
from .indicator import _import_gpiod, make_indicator
from .linux import EspeakSpeech, LinuxNotifier

log = logging.getLogger("node_agent.adapters.pi")

_MODEL_FILE = Path("/proc/device-tree/model")


def board_model() -> str | None:
    try:
        return _MODEL_FILE.read_bytes().rstrip(b"\0").decode("utf-8", "replace").strip() or None
    except OSError:
        return None


def is_pi_class_board() -> bool:
    model = board_model()
    return bool(model) and "raspberry pi" in model.lower()


class GpioButton:
    """A push button on a GPIO line (libgpiod v2), as an async stream of ``True`` (pressed) and
    ``False`` (released). Default wiring: button to ground, internal pull-up, so the line is
    active-low. The kernel debounces; the thread wakes every ``poll_s`` so cancellation is prompt
    and the line is released by the same thread that waits on it."""

    def __init__(self, chip: str, line: int, *, active_low: bool = True, debounce_ms: int = 20,
                 poll_s: float = 0.2, gpiod_module=None):
        self.chip = chip
        self.line = line
        self.active_low = active_low
        self.debounce_ms = debounce_ms
        self.poll_s = poll_s
        self._gpiod = gpiod_module

    async def events(self) -> AsyncIterator[bool]:
        gpiod = self._gpiod or _import_gpiod()
        settings = gpiod.LineSettings(
            direction=gpiod.line.Direction.INPUT, edge_detection=gpiod.line.Edge.BOTH,
            bias=gpiod.line.Bias.PULL_UP if self.active_low else gpiod.line.Bias.PULL_DOWN,
            active_low=self.active_low, debounce_period=timedelta(milliseconds=self.debounce_ms))
        request = await trio.to_thread.run_sync(
            lambda: gpiod.request_lines(self.chip, consumer="node-agent-ptt", config={self.line: settings}))
        rising = gpiod.EdgeEvent.Type.RISING_EDGE

        def wait() -> list[bool]:
            if not request.wait_edge_events(timedelta(seconds=self.poll_s)):
                return []
            return [event.event_type == rising for event in request.read_edge_events()]

        try:
            while True:
                for pressed in await trio.to_thread.run_sync(wait):
                    yield pressed
        finally:
            request.release()


def make_adapter(*, led: str | None = None, gpio_chip: str | None = None, gpio_led_line: int | None = None) -> PlatformAdapter:
    # Same wire platform as plain Linux: the gateway's command policy keys on it, and it must
    # not change if a user switches adapters on the same identity.
    return PlatformAdapter(name="pi", platform="linux", device_family="Linux", notifier=LinuxNotifier(),
                           speech=EspeakSpeech(),
                           indicator=make_indicator(led=led, gpio_chip=gpio_chip, gpio_line=gpio_led_line),
                           model_identifier=board_model(), gpio_factory=GpiodLines)
