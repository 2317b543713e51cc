"""The WebSocket edge: trio-websocket behind a three-method interface, and nothing else.

Upper layers see :class:`Transport` (``send``/``receive``/``aclose``) and our own errors:
``trio_websocket.ConnectionClosed``, ``HandshakeError``, ``OSError`` and
``trio.BrokenResourceError`` are translated here (as httpcore's ``map_exceptions`` does), so
the agent never catches a library type.

Two trio-websocket defaults are wrong for OpenClaw and are overridden: the 1 MiB message limit
(the gateway allows 25 MiB; we accept 32 MiB) and the missing keepalive (the connection pings
through :meth:`WebSocketTransport.ping` when the gateway has been silent, and declares the link
dead with :class:`PingTimeout` when no pong comes back). TLS: system CAs by default, an
extra CA file, or a pinned SHA-256 certificate fingerprint (checked after the TLS handshake,
before any WebSocket byte is sent).

:func:`probe` is the same road for ``node-agent doctor``: it opens the transport exactly as the
daemon does, notes how far the connect got (TCP, TLS, upgrade) and what certificate the gateway
showed, waits a short window for the gateway to speak first, and reports it all as a
:class:`Probe` with our own error; doctor never touches a socket or a library type itself.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import ssl
from typing import Any, AsyncIterator, NoReturn, Protocol
from urllib.parse import urlsplit

import attrs
import trio
import trio_websocket

from .config import normalize_fingerprint
from .errors import ConfigError, ConnectionLost, GatewayUnreachable, NodeAgentError, RemoteProtocolError

MAX_MESSAGE_SIZE = 32 * 1024 * 1024


class Transport(Protocol):
    async def send(self, data: str) -> None: ...

    async def receive(self) -> str | bytes: ...

    async def aclose(self, code: int = 1000, reason: str = "") -> None: ...


class WebSocketTransport:
    def __init__(self, ws: trio_websocket.WebSocketConnection, url: str):
        self._ws = ws
        self.url = url

    def __repr__(self) -> str:
        return f"<WebSocketTransport {self.url} closed={self._ws.closed is not None}>"

    async def send(self, data: str) -> None:
        with _map_closed():
            await self._ws.send_message(data)

    async def receive(self) -> str | bytes:
        with _map_closed():
            return await self._ws.get_message()

    async def ping(self) -> None:
        with _map_closed():
            await self._ws.ping()

    async def aclose(self, code: int = 1000, reason: str = "") -> None:
        with contextlib.suppress(trio.BrokenResourceError, OSError, trio_websocket.ConnectionClosed):
            await self._ws.aclose(code, reason)
        # When the peer vanished without a close frame (a crashed gateway), trio-websocket records
        # 1006 and its aclose returns at once, leaving the TCP socket open until garbage
        # collection: one socket per gateway crash. Close it ourselves (a no-op if already closed).
        stream = getattr(self._ws, "_stream", None)
        if stream is not None:
            await trio.aclose_forcefully(stream)

    @property
    def close_code(self) -> int | None:
        closed = self._ws.closed
        return closed.code if closed is not None else None


@contextlib.contextmanager
def _map_closed():
    try:
        yield
    except trio_websocket.ConnectionClosed as exc:
        reason = exc.reason
        code = reason.code if reason is not None else None
        text = reason.reason if reason is not None else None
        if code == 1009:
            # trio-websocket does not say which side closed: ours (an inbound message over
            # MAX_MESSAGE_SIZE) or the gateway's (one of ours over its maxPayload).
            raise RemoteProtocolError("a message exceeded the size limit (close 1009): the gateway sent one "
                                      "over 32 MiB, or refused one of ours") from None
        raise ConnectionLost(f"connection closed (code {code}{', ' + text if text else ''})",
                             close_code=code, close_reason=text) from None
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
        raise ConnectionLost(f"connection broken ({type(exc).__name__})") from None


def ssl_context_for(url: str, *, ca_file: str | None = None, fingerprint: str | None = None) -> ssl.SSLContext | None:
    if urlsplit(url).scheme != "wss":
        return None
    if fingerprint:
        # A pinned self-signed gateway cert will not chain to any CA: the pin *is* the check.
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    ctx = ssl.create_default_context(cafile=ca_file) if ca_file else ssl.create_default_context()
    return ctx


class Stage(enum.Enum):
    """How far a connect gets, in order. A failed connect fails *in* one of them."""

    TCP = "tcp"
    TLS = "tls"
    UPGRADE = "upgrade"
    #: Upgraded: the WebSocket is open.
    OPEN = "open"


@attrs.frozen(kw_only=True)
class PeerCertificate:
    """The certificate the gateway showed in the TLS handshake (no secret: it is public)."""

    #: SHA-256 of the DER certificate, lowercase hex: what ``tls_fingerprint`` pins.
    sha256: str
    #: ``"pin"``: checked against ``tls_fingerprint`` only; ``"ca"``: verified for the host by a CA.
    checked_by: str
    #: The certificate's ``notAfter`` (only known when a CA verified it).
    not_after: str | None = None


@attrs.define
class ConnectTrace:
    """What one connect attempt got to: written by :func:`open_transport` as it goes, so a
    caller that sees it fail knows where (doctor's TLS and gateway lines come from this)."""

    stage: Stage = Stage.TCP
    #: Seconds (trio clock) at which each stage was reached.
    started_at: float = 0.0
    tcp_at: float | None = None
    open_at: float | None = None
    certificate: PeerCertificate | None = None


@contextlib.asynccontextmanager
async def open_transport(url: str, *, connect_timeout: float = 10.0, ca_file: str | None = None,
                         fingerprint: str | None = None, max_message_size: int = MAX_MESSAGE_SIZE,
                         trace: ConnectTrace | None = None) -> AsyncIterator[WebSocketTransport]:
    """Open the WebSocket; on exit, close it (1000) if still open. One nursery per connection.
    ``trace``, when given, records how far the connect got."""
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise ConfigError(f"gateway URL must be ws:// or wss:// with a host, got {url!r}")
    host = parts.hostname
    try:
        port = parts.port or (443 if parts.scheme == "wss" else 80)
    except ValueError:
        raise ConfigError("gateway URL has a port that is not a number from 1 to 65535") from None
    resource = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    trace = trace if trace is not None else ConnectTrace()
    trace.started_at = trio.current_time()
    try:
        ctx = ssl_context_for(url, ca_file=ca_file, fingerprint=fingerprint)
    except (OSError, ssl.SSLError) as exc:
        trace.stage = Stage.TLS
        reason = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or str(exc)
        raise ConfigError(f"cannot load the CA file {ca_file}: {reason}",
                          hint="point tls_ca_file (--tls-ca) at a readable PEM bundle") from None
    pin = normalize_fingerprint(fingerprint) if fingerprint else None

    try:
        async with trio.open_nursery() as nursery:
            ws = await _connect(nursery, host, port, resource, ctx, pin, connect_timeout, max_message_size, trace)
            transport = WebSocketTransport(ws, url)
            try:
                yield transport
            finally:
                with trio.move_on_after(2) as scope:
                    scope.shield = True
                    await transport.aclose()
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        # trio-websocket's reader task raises into our nursery (an HTTP 503 while the gateway
        # restarts arrives as ConnectionRejected there), so library errors reach us as groups.
        raise_translated(group, f"{host}:{port}")


async def _connect(nursery: trio.Nursery, host: str, port: int, resource: str, ctx: ssl.SSLContext | None,
                   pin: str | None, connect_timeout: float, max_message_size: int,
                   trace: ConnectTrace) -> trio_websocket.WebSocketConnection:
    try:
        with trio.fail_after(connect_timeout):
            trace.stage = Stage.TCP
            stream: trio.abc.Stream = await trio.open_tcp_stream(host, port)
            trace.tcp_at = trio.current_time()
            if ctx is not None:
                trace.stage = Stage.TLS
                ssl_stream = trio.SSLStream(stream, ctx, server_hostname=host)
                await ssl_stream.do_handshake()
                der = ssl_stream.getpeercert(binary_form=True) or b""
                actual = hashlib.sha256(der).hexdigest()
                # getpeercert() has fields only when a CA verified the chain (not under a pin).
                trace.certificate = PeerCertificate(sha256=actual, checked_by="pin" if pin else "ca",
                                                    not_after=(ssl_stream.getpeercert() or {}).get("notAfter"))
                if pin is not None and actual != pin:
                    await ssl_stream.aclose()
                    raise ConfigError(
                        "gateway TLS certificate does not match the pinned fingerprint; refusing to connect",
                        hint="if the gateway's certificate was replaced on purpose, update tls_fingerprint")
                stream = ssl_stream
            trace.stage = Stage.UPGRADE
            host_header = host if port in (80, 443) else f"{host}:{port}"
            ws = await _upgrade(nursery, stream, host_header, resource, max_message_size)
            trace.stage, trace.open_at = Stage.OPEN, trio.current_time()
            return ws
    except BaseException as exc:
        error = _translate(exc, f"{host}:{port}", connect_timeout, trace.stage)
        if error is None:
            raise
        raise error from None


class _WatchedStream(trio.abc.Stream):
    """Passes everything through and notes when the peer is gone (EOF, reset, broken pipe)."""

    def __init__(self, inner: trio.abc.Stream):
        self.inner = inner
        self.gone = trio.Event()

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        try:
            await self.inner.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            self.gone.set()
            raise

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        try:
            data = await self.inner.receive_some(max_bytes)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            self.gone.set()
            raise
        if not data:
            self.gone.set()
        return data

    async def aclose(self) -> None:
        await self.inner.aclose()


class UpgradeInterrupted(GatewayUnreachable):
    """The connection ended during the WebSocket upgrade (a gateway dying or starting)."""


async def _upgrade(nursery: trio.Nursery, stream: trio.abc.Stream, host_header: str, resource: str,
                   max_message_size: int) -> trio_websocket.WebSocketConnection:
    # trio-websocket waits for the upgrade response forever if the peer hangs up before sending
    # it (its reader just stops): without this race a reset mid-upgrade cost the whole connect
    # timeout, 10 s, before the next attempt.
    watched = _WatchedStream(stream)
    result: list[trio_websocket.WebSocketConnection] = []
    async with trio.open_nursery() as race:
        async def upgrade() -> None:
            result.append(await trio_websocket.wrap_client_stream(
                nursery, watched, host_header, resource, message_queue_size=1, max_message_size=max_message_size))
            race.cancel_scope.cancel()

        async def watch() -> None:
            await watched.gone.wait()
            race.cancel_scope.cancel()

        race.start_soon(upgrade)
        race.start_soon(watch)
    if not result:
        raise UpgradeInterrupted(f"connection to {host_header} ended during the WebSocket upgrade")
    return result[0]


_TOO_SLOW = {
    Stage.TCP: "no TCP connection to {where} within {timeout:g} s",
    Stage.TLS: "TCP to {where} works but the TLS handshake did not finish within {timeout:g} s",
    Stage.UPGRADE: "TCP to {where} works but no WebSocket upgrade within {timeout:g} s",
}


def _translate(exc: BaseException, where: str, connect_timeout: float = 0.0,
               stage: Stage = Stage.UPGRADE) -> Exception | None:
    """Our error for a library error at the I/O edge, or None if it is not ours to translate."""
    if isinstance(exc, (ConfigError, GatewayUnreachable, ConnectionLost, RemoteProtocolError)):
        return exc
    if isinstance(exc, trio.TooSlowError):
        return GatewayUnreachable(_TOO_SLOW.get(stage, _TOO_SLOW[Stage.UPGRADE]).format(
            where=where, timeout=connect_timeout))
    if isinstance(exc, trio_websocket.ConnectionRejected):
        status = getattr(exc, "status_code", None)
        body = (getattr(exc, "body", None) or b"")[:120].decode("utf-8", "replace").strip()
        return GatewayUnreachable(f"gateway refused the WebSocket upgrade (HTTP {status}{': ' + body if body else ''})")
    if isinstance(exc, trio_websocket.HandshakeError):
        return GatewayUnreachable(f"WebSocket upgrade to {where} failed ({type(exc).__name__})")
    if type(exc).__name__ == "LocalProtocolError" and type(exc).__module__.startswith("wsproto"):
        # trio-websocket's reader answers a ping after we started closing (upstream
        # python-trio/trio-websocket#184): the socket is going away anyway.
        return ConnectionLost(f"connection closing ({exc})")
    if isinstance(exc, trio_websocket.ConnectionClosed):
        reason = exc.reason
        return ConnectionLost(f"connection closed (code {reason.code if reason else None})",
                              close_code=reason.code if reason else None)
    ssl_error = _root_cause(exc, ssl.SSLError)
    if isinstance(ssl_error, ssl.SSLCertVerificationError):  # trio wraps it in BrokenResourceError
        return GatewayUnreachable(
            f"the TLS certificate of {where} does not verify: {ssl_error.verify_message or ssl_error.reason}",
            hint="give the gateway's CA with --tls-ca (tls_ca_file), or pin its certificate with tls_fingerprint")
    if ssl_error is not None:
        return GatewayUnreachable(f"TLS handshake with {where} failed: {ssl_error.reason or ssl_error}",
                                  hint="check that the gateway serves TLS on this port (else use ws://)")
    if isinstance(exc, (OSError, trio.BrokenResourceError, trio.ClosedResourceError)):
        return GatewayUnreachable(f"cannot reach {where}: {_os_reason(exc)}")
    return None


def _root_cause(exc: BaseException, kind: type) -> Any:
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, kind):
            return exc
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
        seen += 1
    return None


def _os_reason(exc: BaseException) -> str:
    """The useful words. Trio's "all attempts to connect failed" keeps the real errors (one per
    address) in an exception group one level down, and each of their strerrors repeats the
    address ("Error connecting to ('127.0.0.1', 1): Connection refused"): keep the reasons,
    once each."""
    cause = exc.__cause__
    if isinstance(cause, BaseExceptionGroup):
        errors: list[BaseException] = list(cause.exceptions)
    elif getattr(exc, "strerror", None) or cause is None:
        errors = [exc]
    else:
        errors = [cause]
    reasons = [getattr(e, "strerror", None) or str(e) or type(e).__name__ for e in errors]
    text = ", ".join(dict.fromkeys(r.rsplit(": ", 1)[-1] for r in reasons))
    return text if text and len(text) < 160 else type(exc).__name__


def raise_translated(group: BaseExceptionGroup, where: str) -> NoReturn:
    """Raise what the upper layers should see for a group out of the connection's nursery.

    A cancellation (a stop) that meets the reader's echo of the closing socket (the pong bug,
    a broken pipe) raises the cancellation alone: the cancel scope that asked for it absorbs it,
    and the echo is noise. Library errors become ours; anything else passes unchanged."""
    cancelled, rest = group.split(trio.Cancelled)
    error = _translate_group(rest, where) if rest is not None else None
    if cancelled is not None and (rest is None or error is not None):
        raise cancelled
    if error is None:
        raise group
    raise error from None


def _translate_group(group: BaseExceptionGroup, where: str) -> Exception | None:
    leaves: list[BaseException] = []

    def flatten(exc: BaseException) -> None:
        if isinstance(exc, BaseExceptionGroup):
            for inner in exc.exceptions:
                flatten(inner)
        else:
            leaves.append(exc)

    flatten(group)
    if any(isinstance(e, trio.Cancelled) for e in leaves):
        return None  # a cancellation is passing through: let the cancel scope have it
    translated = [_translate(e, where) for e in leaves]
    if not translated or any(t is None for t in translated):
        return None
    # An HTTP refusal (503 "admission closed") says more than our "ended during the upgrade";
    # otherwise prefer our own, most specific error over the reader task's echo of it.
    rejected = [t for t, e in zip(translated, leaves) if isinstance(e, trio_websocket.ConnectionRejected)]
    ours = [t for t, e in zip(translated, leaves) if t is e and not isinstance(e, UpgradeInterrupted)]
    return (rejected or ours or translated)[0]


# --- the probe (doctor) ---------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Probe:
    """What :func:`probe` found. Exactly one of two shapes:

    * the connect failed: ``error`` is our typed error, ``failed_in`` the stage it failed in;
    * the WebSocket opened: ``first_frame`` is what the gateway sent unprompted within the
      window (None: silence), or ``closed`` the close that came instead.

    Times are seconds from the start of the attempt (the trio clock).
    """

    url: str
    #: ``host:port``, as the error messages name it.
    where: str
    #: How long the probe listened for a first frame.
    window_s: float
    error: NodeAgentError | None = None
    failed_in: Stage | None = None
    #: When TCP connected (None: it did not).
    tcp_after_s: float | None = None
    certificate: PeerCertificate | None = None
    open_after_s: float | None = None
    first_frame: str | bytes | None = None
    #: When the first frame came, or the window ended without one.
    heard_after_s: float | None = None
    closed: ConnectionLost | None = None

    @property
    def opened(self) -> bool:
        return self.error is None


async def probe(url: str, *, connect_timeout: float = 5.0, window: float = 2.0, ca_file: str | None = None,
                fingerprint: str | None = None) -> Probe:
    """Open the transport the daemon opens, listen ``window`` s for the gateway to speak first,
    close it (1000), and say what happened. Never raises for gateway trouble (only for
    cancellation): every failure is a :class:`Probe` with our error in it."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:  # open_transport says what is wrong with the URL
        port = None
    where = f"{parts.hostname or ''}:{port or (443 if parts.scheme == 'wss' else 80)}"
    trace = ConnectTrace()
    first: str | bytes | None = None
    closed: ConnectionLost | None = None
    heard_at: float | None = None
    try:
        async with open_transport(url, connect_timeout=connect_timeout, ca_file=ca_file, fingerprint=fingerprint,
                                  trace=trace) as transport:
            with trio.move_on_after(window):
                try:
                    first = await transport.receive()
                except ConnectionLost as exc:
                    closed = exc
            heard_at = trio.current_time()
    except NodeAgentError as exc:
        if trace.stage is not Stage.OPEN:
            return _probe_result(url, where, window, trace, error=exc, failed_in=trace.stage)
        # The socket broke while closing after the window: what was heard still stands.
    return _probe_result(url, where, window, trace, first_frame=first, closed=closed,
                         heard_after_s=None if heard_at is None else heard_at - trace.started_at)


def _probe_result(url: str, where: str, window: float, trace: ConnectTrace, **fields: Any) -> Probe:
    def since(at: float | None) -> float | None:
        return None if at is None else at - trace.started_at

    return Probe(url=url, where=where, window_s=window, tcp_after_s=since(trace.tcp_at), certificate=trace.certificate,
                 open_after_s=since(trace.open_at), **fields)


class PingTimeout(ConnectionLost):
    """No pong came back: the link is dead even though TCP has not noticed."""
