"""Named GPIO lines through libgpiod v2 (the :class:`~.base.Gpio` interface, Pi adapter).

A line is requested from the kernel on first use and kept until :meth:`GpiodLines.close`: an
output must stay requested to hold its value, and requesting at start-up would drive outputs
before anyone asked. Reading an output nobody has driven yet requests it ``AS_IS``, so a read
never changes a pin; the first write reconfigures it as an output *with* the value (no glitch
through the opposite level). Every kernel call runs in a worker thread (the house rule for
blocking calls), one at a time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import trio

from .base import GpioError

_CONSUMER = "node-agent"


class GpiodLines:
    def __init__(self, lines: Sequence[Any], *, gpiod_module: Any = None):
        """``lines``: objects with ``name, chip, line, direction ("in"|"out"), active_low, bias``
        (``GpioLineSettings`` of the config)."""
        self._specs = {spec.name: spec for spec in lines}
        self._gpiod = gpiod_module
        self._requests: dict[str, Any] = {}
        self._driven: set[str] = set()
        self._lock = trio.Lock()

    def lines(self) -> Mapping[str, str]:
        return {name: spec.direction for name, spec in self._specs.items()}

    async def read(self, name: str) -> bool:
        spec = self._spec(name)
        async with self._lock:
            return await trio.to_thread.run_sync(self._read, spec)

    async def write(self, name: str, value: bool) -> None:
        spec = self._spec(name)
        if spec.direction != "out":
            raise GpioError(f"GPIO line {name!r} is an input; only lines configured direction = \"out\" "
                            "can be written")
        async with self._lock:
            await trio.to_thread.run_sync(self._write, spec, bool(value))

    def close(self) -> None:
        for request in self._requests.values():
            try:
                request.release()
            except OSError:
                pass
        self._requests.clear()

    # -- worker-thread side --------------------------------------------------------------------

    def _spec(self, name: str) -> Any:
        spec = self._specs.get(name)
        if spec is None:
            raise GpioError(f"no GPIO line named {name!r} is configured (configured: "
                            f"{', '.join(sorted(self._specs)) or 'none'})")
        return spec

    def _module(self) -> Any:
        if self._gpiod is None:
            from .indicator import _import_gpiod  # noqa: PLC0415  (optional dependency)

            try:
                self._gpiod = _import_gpiod()
            except ImportError as exc:
                raise GpioError(f"GPIO needs libgpiod v2's Python binding (pip install gpiod): {exc}") from exc
        return self._gpiod

    def _settings(self, spec: Any, *, direction: str, value: bool | None = None) -> Any:
        gpiod = self._module()
        line = gpiod.line
        bias = {"as-is": line.Bias.AS_IS, "disabled": line.Bias.DISABLED, "pull-up": line.Bias.PULL_UP,
                "pull-down": line.Bias.PULL_DOWN}[spec.bias]
        kwargs: dict[str, Any] = {"direction": getattr(line.Direction, direction), "active_low": spec.active_low}
        if direction == "INPUT":
            kwargs["bias"] = bias
        if value is not None:
            kwargs["output_value"] = line.Value.ACTIVE if value else line.Value.INACTIVE
        return gpiod.LineSettings(**kwargs)

    def _request(self, spec: Any, settings: Any) -> Any:
        try:
            return self._module().request_lines(spec.chip, consumer=_CONSUMER, config={spec.line: settings})
        except OSError as exc:
            raise GpioError(f"GPIO line {spec.name!r} ({spec.chip} line {spec.line}): "
                            f"{exc.strerror or exc}") from exc

    def _read(self, spec: Any) -> bool:
        request = self._requests.get(spec.name)
        if request is None:
            direction = "INPUT" if spec.direction == "in" else "AS_IS"
            request = self._requests[spec.name] = self._request(spec, self._settings(spec, direction=direction))
        try:
            return request.get_value(spec.line) == self._module().line.Value.ACTIVE
        except OSError as exc:
            raise GpioError(f"GPIO line {spec.name!r}: {exc.strerror or exc}") from exc

    def _write(self, spec: Any, value: bool) -> None:
        active = self._module().line.Value
        request = self._requests.get(spec.name)
        try:
            if request is None:
                self._requests[spec.name] = self._request(spec, self._settings(spec, direction="OUTPUT", value=value))
            elif spec.name not in self._driven:
                request.reconfigure_lines(config={spec.line: self._settings(spec, direction="OUTPUT", value=value)})
            else:
                request.set_value(spec.line, active.ACTIVE if value else active.INACTIVE)
        except OSError as exc:
            raise GpioError(f"GPIO line {spec.name!r}: {exc.strerror or exc}") from exc
        self._driven.add(spec.name)

    def __repr__(self) -> str:
        return f"<GpiodLines {', '.join(f'{n}={s.direction}' for n, s in self._specs.items())}>"
