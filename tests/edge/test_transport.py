"""The WebSocket edge against misbehaving peers on loopback: errors arrive typed, and fast; and
:func:`~node_agent.transport.probe`, doctor's road through the same edge."""

from __future__ import annotations

import functools

import pytest
import trio

from node_agent.errors import ConfigError, GatewayUnreachable
from node_agent.transport import PeerCertificate, Stage, UpgradeInterrupted, open_transport, probe
from tests.support.peers import CHALLENGE, closed_port, leaf_sha256, serve_http_refusal, serve_ws, tls_pair


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


# --- probe: the same road, for doctor -------------------------------------------------------------

async def test_probe_of_a_closed_port_fails_in_tcp_with_the_transports_own_words():
    port = closed_port()
    result = await probe(f"ws://127.0.0.1:{port}", connect_timeout=5, window=0.2)
    assert (result.failed_in, result.tcp_after_s, result.opened) == (Stage.TCP, None, False)
    assert result.error.message == f"cannot reach 127.0.0.1:{port}: Connection refused"
    assert result.where == f"127.0.0.1:{port}"


async def test_probe_hears_what_the_gateway_says_first_or_its_silence_or_its_close():
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            talking = await serve_ws(nursery, first=CHALLENGE)
            silent = await serve_ws(nursery)
            closing = await serve_ws(nursery, close_code=1008)
            heard = await probe(f"ws://127.0.0.1:{talking}", window=5)
            quiet = await probe(f"ws://127.0.0.1:{silent}", window=0.3)
            closed = await probe(f"ws://127.0.0.1:{closing}", window=5)
            nursery.cancel_scope.cancel()
    assert heard.opened and heard.first_frame == CHALLENGE and heard.closed is None
    assert 0 <= heard.tcp_after_s <= heard.open_after_s <= heard.heard_after_s
    assert quiet.opened and quiet.first_frame is None and quiet.heard_after_s >= 0.3 and quiet.window_s == 0.3
    assert closed.opened and closed.first_frame is None and closed.closed.close_code == 1008


async def test_probe_of_an_http_server_fails_in_the_upgrade_with_its_status():
    async with trio.open_nursery() as nursery:
        port = await serve_http_refusal(nursery)
        result = await probe(f"ws://127.0.0.1:{port}")
        nursery.cancel_scope.cancel()
    assert result.failed_in is Stage.UPGRADE and result.tcp_after_s is not None
    assert result.error.message == "gateway refused the WebSocket upgrade (HTTP 404)"


async def test_probe_of_a_server_that_never_upgrades_names_the_stage_it_waited_in():
    async def mute(stream):
        await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(functools.partial(trio.serve_tcp, mute, 0, host="127.0.0.1"))
        port = listeners[0].socket.getsockname()[1]
        result = await probe(f"ws://127.0.0.1:{port}", connect_timeout=0.5)
        nursery.cancel_scope.cancel()
    assert result.failed_in is Stage.UPGRADE
    assert result.error.message == f"TCP to 127.0.0.1:{port} works but no WebSocket upgrade within 0.5 s"


async def test_probe_over_tls_records_the_certificate_and_each_way_tls_can_fail(tmp_path):
    ca, _ = tls_pair()
    actual = leaf_sha256()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            port = await serve_ws(nursery, first=CHALLENGE, tls=True)
            url = f"wss://127.0.0.1:{port}"
            pinned = await probe(url, fingerprint=actual, window=5)
            verified = await probe(url, ca_file=str(ca_file), window=5)
            wrong_pin = await probe(url, fingerprint="ab" * 32)
            unknown_ca = await probe(url)
            missing_ca = await probe(url, ca_file=str(tmp_path / "nope.pem"))
            nursery.cancel_scope.cancel()
    assert pinned.opened and pinned.certificate == PeerCertificate(sha256=actual, checked_by="pin")
    assert verified.opened and verified.certificate.checked_by == "ca" and verified.certificate.not_after
    assert wrong_pin.failed_in is Stage.TLS and wrong_pin.certificate.sha256 == actual
    assert isinstance(wrong_pin.error, ConfigError) and "pinned fingerprint" in wrong_pin.error.message
    assert unknown_ca.failed_in is Stage.TLS and unknown_ca.certificate is None
    assert unknown_ca.error.message.startswith(f"the TLS certificate of 127.0.0.1:{port} does not verify: ")
    assert "--tls-ca" in unknown_ca.error.hint
    assert missing_ca.failed_in is Stage.TLS and missing_ca.tcp_after_s is None
    assert missing_ca.error.message.startswith(f"cannot load the CA file {tmp_path / 'nope.pem'}")


async def test_a_bad_port_in_the_url_is_a_config_error_not_a_crash():
    with pytest.raises(ConfigError, match="port"):
        async with open_transport("ws://127.0.0.1:99999"):
            pass
