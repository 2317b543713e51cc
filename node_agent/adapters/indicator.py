"""Showing the agent's state (``idle``, ``listening``, ``thinking``, ``error``, ``off``).

Every indicator logs state changes, so a headless box without an LED is still debuggable from its
journal. The LED backends are used only when configured *and* usable; anything else degrades to
the log with one line saying why. ``set_state`` never blocks on anything slower than a sysfs
write and never raises: a broken LED must not take the voice pipeline down with it.

* :class:`SysfsLed`: a kernel LED under ``/sys/class/leds/<name>`` (a Pi's ``ACT``/``PWR``, or a
  ``gpio-leds`` overlay). Needs write access (root, or a udev rule). Blinking is done by the
  kernel's ``timer`` trigger; the original trigger is put back on :meth:`LedIndicator.close`.
* :class:`GpiodLed`: a bare GPIO line through libgpiod's v2 Python binding (``import gpiod``),
  imported only when configured. On/off only: blinking would need a thread of its own.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Protocol

log = logging.getLogger("node_agent.adapters.indicator")

#: state -> (on, blink period in ms or None). One LED cannot say much; these are the four
#: states a person needs to tell apart at a glance.
_PATTERNS: dict[str, tuple[bool, int | None]] = {
    "off": (False, None),
    "idle": (False, None),
    "listening": (True, None),
    "thinking": (True, 500),
    "speaking": (True, 500),
    "error": (True, 120),
}


class ConsoleIndicator:
    """Logs each state change once (repeats of the same state are not logged)."""

    def __init__(self, logger: logging.Logger | None = None):
        self._log = logger or log
        self.state: str | None = None

    def set_state(self, state: str) -> None:
        if state == self.state:
            return
        self.state = state
        self._log.info("indicator: %s", state)

    def __repr__(self) -> str:
        return f"ConsoleIndicator(state={self.state!r})"


class Led(Protocol):
    def set(self, on: bool, blink_ms: int | None) -> None: ...

    def close(self) -> None: ...


class SysfsLed:
    """``/sys/class/leds/<name>``; construct with :meth:`open`, which checks it is usable."""

    def __init__(self, path: Path):
        self.path = path
        self._max = self._read_int("max_brightness", 1)
        self._original_trigger = self._current_trigger()

    @classmethod
    def open(cls, name: str, root: Path = Path("/sys/class/leds")) -> SysfsLed:
        """Raises ``OSError`` with the reason when the LED is missing or not writable."""
        path = root / name
        if not (path / "brightness").exists():
            available = sorted(p.name for p in root.iterdir()) if root.is_dir() else []
            raise FileNotFoundError(f"no LED {name!r} under {root} (found: {', '.join(available) or 'none'})")
        for leaf in ("brightness", "trigger"):
            with open(path / leaf, "r+b"):  # raises PermissionError if we may not write it
                pass
        return cls(path)

    def _read_int(self, leaf: str, default: int) -> int:
        try:
            return int((self.path / leaf).read_text().strip())
        except (OSError, ValueError):
            return default

    def _current_trigger(self) -> str | None:
        # The trigger file lists every trigger and brackets the active one: "none [mmc0] timer".
        try:
            for word in (self.path / "trigger").read_text().split():
                if word.startswith("[") and word.endswith("]"):
                    return word[1:-1]
        except OSError:
            pass
        return None

    def _write(self, leaf: str, value: str) -> None:
        (self.path / leaf).write_text(value)

    def set(self, on: bool, blink_ms: int | None) -> None:
        if on and blink_ms:
            self._write("trigger", "timer")
            # The timer trigger creates delay_on/delay_off only after it is selected.
            half = str(max(1, blink_ms // 2))
            self._write("delay_on", half)
            self._write("delay_off", half)
        else:
            self._write("trigger", "none")
            self._write("brightness", str(self._max if on else 0))

    def close(self) -> None:
        if self._original_trigger:
            self._write("trigger", self._original_trigger)

    def __repr__(self) -> str:
        return f"SysfsLed({str(self.path)!r})"


class GpiodLed:
    """A GPIO line driven through libgpiod v2 (``pip install gpiod`` / ``python3-libgpiod``)."""

    def __init__(self, chip: str, line: int, *, active_low: bool = False, gpiod_module=None):
        gpiod = gpiod_module or _import_gpiod()
        from_line = gpiod.line
        self._value = from_line.Value
        self._line = line
        self._request = gpiod.request_lines(
            chip, consumer="node-agent-led",
            config={line: gpiod.LineSettings(direction=from_line.Direction.OUTPUT, active_low=active_low,
                                             output_value=from_line.Value.INACTIVE)})

    def set(self, on: bool, blink_ms: int | None) -> None:
        self._request.set_value(self._line, self._value.ACTIVE if on else self._value.INACTIVE)

    def close(self) -> None:
        try:
            self._request.set_value(self._line, self._value.INACTIVE)
        finally:
            self._request.release()


def _import_gpiod():
    import gpiod  # noqa: PLC0415  (optional, only on boards that configure a GPIO LED/button)

    if not hasattr(gpiod, "request_lines"):
        raise ImportError("gpiod is the v1 binding; node-agent needs libgpiod v2 (gpiod>=2)")
    return gpiod


class LedIndicator:
    """Drives one :class:`Led` and logs through a :class:`ConsoleIndicator` as well. If the LED
    fails once (unplugged overlay, permissions changed) it is dropped and the log carries on."""

    def __init__(self, led: Led, console: ConsoleIndicator | None = None):
        self.led: Led | None = led
        self.console = console or ConsoleIndicator()

    @property
    def state(self) -> str | None:
        return self.console.state

    def set_state(self, state: str) -> None:
        if state == self.console.state:
            return
        self.console.set_state(state)
        if self.led is None:
            return
        on, blink = _PATTERNS.get(state, (True, None))
        try:
            self.led.set(on, blink)
        except Exception as exc:  # noqa: BLE001  (an LED must never break the caller)
            log.warning("LED %r failed (%s: %s); state goes to the log only from now on",
                        self.led, type(exc).__name__, exc)
            self.led = None

    def close(self) -> None:
        if self.led is not None:
            try:
                self.led.close()
            except Exception as exc:  # noqa: BLE001
                log.info("could not restore LED %r: %s", self.led, exc)

    def __repr__(self) -> str:
        return f"LedIndicator(led={self.led!r}, state={self.state!r})"


def make_indicator(*, led: str | None = None, gpio_chip: str | None = None, gpio_line: int | None = None,
                   active_low: bool = False, leds_root: Path = Path("/sys/class/leds"),
                   gpiod_module=None) -> ConsoleIndicator | LedIndicator:
    """The best indicator the configuration allows: a sysfs LED named ``led``, else a GPIO line
    (``gpio_chip`` such as ``/dev/gpiochip0`` and ``gpio_line``), else the console."""
    if led:
        try:
            return LedIndicator(SysfsLed.open(led, leds_root))
        except OSError as exc:
            log.info("LED indicator unavailable (%s); using the log", exc)
    if gpio_chip and gpio_line is not None:
        try:
            return LedIndicator(GpiodLed(gpio_chip, gpio_line, active_low=active_low, gpiod_module=gpiod_module))
        except Exception as exc:  # noqa: BLE001  (ImportError, OSError, whatever libgpiod raises)
            log.info("GPIO LED indicator unavailable (%s: %s); using the log", type(exc).__name__, exc)
    return ConsoleIndicator()
