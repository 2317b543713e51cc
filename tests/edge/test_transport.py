"""The WebSocket edge against misbehaving peers on loopback: errors arrive typed, and fast."""

from __future__ import annotations

import functools

import pytest
import trio

from node_agent.errors import GatewayUnreachable
from node_agent.transport import UpgradeInterrupted, open_transport


async def run_against(handler) -> GatewayUnreachable:
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(functools.partial(trio.serve_tcp, handler, 0, host="127.0.0.1"))
        port = listeners[0].socket.getsockname()[1]
        try:
            with pytest.raises(GatewayUnreachable) as info:
                async with open_transport(f"ws://127.0.0.1:{port}", connect_timeout=10):
                    pass
        finally:
            nursery.cancel_scope.cancel()
    return info.value


async def test_a_hang_up_during_the_upgrade_fails_at_once_not_after_the_timeout():
    async def hang_up(stream):
        await stream.receive_some(4096)
        await stream.aclose()

    start = trio.current_time()
    error = await run_against(hang_up)
    assert isinstance(error, UpgradeInterrupted)
    assert trio.current_time() - start < 2.0  # it used to wait out the whole 10 s connect timeout


async def test_an_http_refusal_says_what_the_gateway_said():
    async def refuse(stream):
        await stream.receive_some(4096)
        body = b"Gateway websocket admission closed"
        await stream.send_all(b"HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\ncontent-length: "
                              + str(len(body)).encode() + b"\r\n\r\n" + body)
        await stream.aclose()

    error = await run_against(refuse)
    assert "HTTP 503" in error.message and "admission closed" in error.message


async def test_nothing_listening_names_the_reason():
    error = await run_against_closed_port()
    assert "refused" in error.message.lower()


async def run_against_closed_port() -> GatewayUnreachable:
    sock = trio.socket.socket()
    await sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    with pytest.raises(GatewayUnreachable) as info:
        async with open_transport(f"ws://127.0.0.1:{port}"):
            pass
    return info.value


def test_trio_websocket_pong_while_closing_bug_is_a_lost_connection_not_a_crash():
    # python-trio/trio-websocket#184: its reader raises wsproto's LocalProtocolError when it
    # answers a ping after our close began; that must not escape as an unknown exception.
    from wsproto.utilities import LocalProtocolError

    from node_agent.errors import ConnectionLost
    from node_agent.transport import _translate_group

    group = ExceptionGroup("reader", [LocalProtocolError("Event Pong cannot be sent in state LOCAL_CLOSING")])
    assert isinstance(_translate_group(group, "127.0.0.1:1"), ConnectionLost)


async def test_a_stop_that_meets_the_pong_bug_is_absorbed_by_the_stop_not_raised():
    # Seen in interop: request_stop() while the gateway pinged; the reader's LocalProtocolError
    # arrived in one group with the stop's Cancelled, and the group escaped the stop's scope.
    from wsproto.utilities import LocalProtocolError

    from node_agent.transport import raise_translated

    with trio.CancelScope() as stop:
        try:
            async with trio.open_nursery() as nursery:
                async def reader():
                    try:
                        await trio.sleep_forever()
                    except trio.Cancelled:  # its clean-up answers a ping on a closing socket
                        raise LocalProtocolError("Event Pong cannot be sent in state LOCAL_CLOSING") from None

                nursery.start_soon(trio.sleep_forever)
                nursery.start_soon(reader)
                await trio.sleep(0.5)
                stop.cancel()
        except BaseExceptionGroup as group:
            raise_translated(group, "127.0.0.1:1")
    assert stop.cancelled_caught
