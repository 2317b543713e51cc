"""Peers on loopback for the edge and doctor tests: a WebSocket server that speaks first, says
nothing or closes at once (optionally over TLS with a trustme certificate), an HTTP server that
refuses the upgrade, and a port nothing listens on. Real sockets, 127.0.0.1 only."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import socket
import ssl

import trio
import trustme
from trio_websocket import ConnectionClosed, WebSocketRequest, serve_websocket

#: OpenClaw's first frame, as the real gateway sends it the moment the socket opens.
CHALLENGE = json.dumps({"type": "event", "event": "connect.challenge", "payload": {"nonce": "n-1", "ts": 1}})
#: How long a server waits for the client to close first.
LINGER_S = 10.0


@functools.cache
def tls_pair() -> tuple[trustme.CA, trustme.LeafCert]:
    """A CA and a leaf certificate for 127.0.0.1 (made once per session)."""
    ca = trustme.CA()
    return ca, ca.issue_cert("127.0.0.1")


def leaf_sha256() -> str:
    """The SHA-256 of the leaf certificate, lowercase hex: what a pin names."""
    der = ssl.PEM_cert_to_DER_cert(tls_pair()[1].cert_chain_pems[0].bytes().decode())
    return hashlib.sha256(der).hexdigest()


async def serve_ws(nursery: trio.Nursery, *, first: str | None = None, close_code: int | None = None,
                   tls: bool = False) -> int:
    """A WebSocket server on 127.0.0.1 that sends ``first`` (or nothing), or closes with
    ``close_code`` at once, and then waits for the client to close. Returns its port."""
    ssl_context = None
    if tls:
        ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls_pair()[1].configure_cert(ssl_context)

    async def handler(request: WebSocketRequest) -> None:
        ws = await request.accept()
        if close_code is not None:
            await ws.aclose(close_code)
            return
        if first is not None:
            await ws.send_message(first)
        with trio.move_on_after(LINGER_S), contextlib.suppress(ConnectionClosed):
            await ws.get_message()

    server = await nursery.start(functools.partial(serve_websocket, handler, "127.0.0.1", 0, ssl_context,
                                                   handler_nursery=nursery))
    return server.port


async def serve_http_refusal(nursery: trio.Nursery, status: bytes = b"404 Not Found") -> int:
    """An HTTP server that answers every upgrade with ``status``. Returns its port."""
    async def refuse(stream: trio.SocketStream) -> None:
        await stream.receive_some(65536)
        await stream.send_all(b"HTTP/1.1 " + status + b"\r\ncontent-length: 0\r\n\r\n")
        await stream.aclose()

    listeners = await nursery.start(functools.partial(trio.serve_tcp, refuse, 0, host="127.0.0.1"))
    return listeners[0].socket.getsockname()[1]


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
