"""A Wyoming peer over a Trio TCP stream: the framing and the event types of the ``wyoming`` library.

The ``wyoming`` package (Home Assistant's voice protocol) defines the events (``describe``,
``info``, ``transcribe``, ``audio-chunk``, ``synthesize``...) and their framing: a JSON header
line, then ``data_length`` bytes of extra JSON data, then ``payload_length`` bytes of payload.
Its own I/O is asyncio or blocking file objects, neither of which fits a Trio daemon, so this
module does only the part the library cannot: it finds where one frame ends in the byte stream
(from the header's two lengths) and hands exactly that frame to the library's ``read_event`` to
decode; outbound events are encoded by the library's ``write_event``. The format stays the
library's.

Invariants: every read and write runs under the caller's timeout; a header over 64 KiB, a data
block over 1 MiB or a payload over 16 MiB is refused before it is buffered (a peer cannot make
us hold unbounded memory); anything that is not a frame is :class:`WyomingProtocolError`; a
closed or refused socket is :class:`WyomingUnavailable`. No Trio or socket exception leaves this
module. Wyoming has no authentication and no encryption by design: trusted networks only.
"""

from __future__ import annotations

import io
import json
from typing import Any

import trio

from ..config.voice import parse_wyoming_uri as parse_uri  # noqa: F401  (re-exported for the STT/TTS clients)
from .errors import VoiceError, VoiceUnavailable

MAX_HEADER = 64 * 1024
MAX_DATA = 1024 * 1024
MAX_PAYLOAD = 16 * 1024 * 1024


class WyomingError(VoiceError):
    """A Wyoming server failed us; transient (it may come back)."""


class WyomingUnavailable(WyomingError):
    """Cannot connect, or the connection closed."""


class WyomingProtocolError(WyomingError):
    """The peer sent something that is not a Wyoming frame, or not the event we need."""


class WyomingTimeout(WyomingError):
    """The peer did not answer in time (a hung server)."""


def wyoming_lib() -> Any:
    try:
        import wyoming.event  # noqa: PLC0415

        return wyoming
    except ImportError as exc:
        raise VoiceUnavailable("the wyoming library is not installed",
                               hint="install the voice extra: pip install 'node-agent[voice]'") from exc


def encode(event: Any) -> bytes:
    """One event (a ``wyoming`` Eventable or Event) as bytes, by the library's own writer."""
    lib = wyoming_lib()
    if not isinstance(event, lib.event.Event):
        event = event.event()
    buf = io.BytesIO()
    lib.event.write_event(event, buf)
    return buf.getvalue()


class FrameSplitter:
    """Sans-io: bytes in, complete frames out (decoded by the library)."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[Any]:
        self._buf += data
        events = []
        while True:
            event = self._next()
            if event is None:
                return events
            events.append(event)

    def _next(self) -> Any:
        newline = self._buf.find(b"\n")
        if newline < 0:
            if len(self._buf) > MAX_HEADER:
                raise WyomingProtocolError(f"header line longer than {MAX_HEADER} bytes")
            return None
        if newline > MAX_HEADER:
            raise WyomingProtocolError(f"header line longer than {MAX_HEADER} bytes")
        try:
            header = json.loads(self._buf[:newline])
        except ValueError as exc:
            raise WyomingProtocolError(f"header is not JSON: {exc}") from None
        if not isinstance(header, dict) or not isinstance(header.get("type"), str):
            raise WyomingProtocolError("header has no event type")
        data_length = _length(header, "data_length", MAX_DATA)
        payload_length = _length(header, "payload_length", MAX_PAYLOAD)
        end = newline + 1 + data_length + payload_length
        if len(self._buf) < end:
            return None
        frame = bytes(self._buf[:end])
        del self._buf[:end]
        lib = wyoming_lib()
        event = lib.event.read_event(io.BytesIO(frame))
        if event is None:  # the library swallows ValueError (bad data JSON) and says None
            raise WyomingProtocolError(f"malformed {header['type']!r} event")
        if not isinstance(event.data, dict):
            raise WyomingProtocolError(f"{header['type']!r} event data is not an object")
        return event


def _length(header: dict[str, Any], key: str, limit: int) -> int:
    value = header.get(key)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise WyomingProtocolError(f"{key} is not a length: {value!r}")
    if value > limit:
        raise WyomingProtocolError(f"{key} {value} is over the {limit}-byte limit")
    return value


class WyomingConnection:
    """One TCP connection to a Wyoming server."""

    def __init__(self, stream: trio.abc.Stream, name: str):
        self._stream = stream
        self.name = name
        self._splitter = FrameSplitter()
        self._pending: list[Any] = []

    @classmethod
    async def connect(cls, host: str, port: int, *, timeout_s: float) -> WyomingConnection:
        name = f"wyoming://{host}:{port}"
        try:
            with trio.fail_after(timeout_s):
                stream = await trio.open_tcp_stream(host, port)
        except trio.TooSlowError:
            raise WyomingTimeout(f"{name} did not accept a connection within {timeout_s:g} s") from None
        except OSError as exc:
            raise WyomingUnavailable(f"cannot connect to {name}: {exc.strerror or exc}",
                                     hint="is the Wyoming server running and reachable?") from None
        return cls(stream, name)

    async def send(self, event: Any, *, timeout_s: float) -> None:
        data = encode(event)
        try:
            with trio.fail_after(timeout_s):
                await self._stream.send_all(data)
        except trio.TooSlowError:
            raise WyomingTimeout(f"{self.name} stopped reading (send blocked {timeout_s:g} s)") from None
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            raise WyomingUnavailable(f"{self.name} closed the connection: {exc}") from None

    async def receive(self, *, timeout_s: float) -> Any:
        """The next event; :class:`WyomingUnavailable` at end of stream."""
        try:
            with trio.fail_after(timeout_s):
                while not self._pending:
                    data = await self._stream.receive_some(65536)
                    if not data:
                        raise WyomingUnavailable(f"{self.name} closed the connection")
                    self._pending.extend(self._splitter.feed(data))
        except trio.TooSlowError:
            raise WyomingTimeout(f"{self.name} did not answer within {timeout_s:g} s") from None
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            raise WyomingUnavailable(f"{self.name} connection failed: {exc}") from None
        return self._pending.pop(0)

    async def describe(self, *, timeout_s: float) -> Any:
        """``describe`` -> the server's ``info`` (a ``wyoming.info.Info``); other events that
        come first are skipped."""
        wyoming_lib()
        from wyoming.info import Describe, Info  # noqa: PLC0415

        await self.send(Describe(), timeout_s=timeout_s)
        while True:
            event = await self.receive(timeout_s=timeout_s)
            if Info.is_type(event.type):
                try:
                    return Info.from_event(event)
                except (KeyError, TypeError, ValueError, AttributeError) as exc:
                    raise WyomingProtocolError(f"{self.name} sent a malformed info event: {exc!r}") from None

    async def programs(self, kind: str, *, timeout_s: float) -> list[Any]:
        """``describe``, then the installed programs of ``kind`` ("asr", "tts") the server offers
        (empty: it is not that kind of server)."""
        info = await self.describe(timeout_s=timeout_s)
        return [p for p in getattr(info, kind) if getattr(p, "installed", True)]

    async def aclose(self) -> None:
        with trio.CancelScope(shield=True):
            try:
                await self._stream.aclose()
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                pass
