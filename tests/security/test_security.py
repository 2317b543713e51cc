"""Security properties, each checked directly rather than assumed:

* no secret in the ``repr``/``str`` of anything that holds one, and none in a debug log of a
  whole pairing;
* every secret file the agent writes is mode 0600 whatever the umask;
* plain ``ws://`` is refused to public hosts and allowed on loopback, private and tailnet ones;
* TLS: a pinned certificate connects with the right pin and is refused, before a single
  WebSocket byte, with a wrong one; an extra CA file works; an unknown CA does not;
* ``system.run``-style commands are never offered.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import json
import logging
import os
import ssl
import stat
from pathlib import Path
from typing import AsyncIterator

import pytest
import trio
import trio_websocket
import trustme
from keyring.backends import fail

from node_agent.agent.commands import builtin_registry
from node_agent.config import Config, check_gateway_url, load_config
from node_agent.errors import ConfigError, ConnectionLost, GatewayRejected, GatewayUnreachable
from node_agent.identity import IDENTITY_FILE, DeviceIdentity, load_or_create
from node_agent.logs import setup_logging
from node_agent.protocol import (
    ClientInfo,
    Close,
    ConnectInputs,
    Credentials,
    ForgetDeviceToken,
    JsonRpcDialect,
    NodePairResolved,
    OpenClawDialect,
    Ready,
    Send,
    Session,
    StoreDeviceToken,
)
from node_agent.protocol.openclaw import parse_hello
from node_agent.secret import Secret
from node_agent.secrets import MARKER_FILE, SECRETS_FILE, FileStore, KeyringStore, MemoryStore, open_store
from node_agent.service.manage import write_env_file
from node_agent.setup_code import decode_setup_code
from node_agent.transport import open_transport
from tests.support.agents import connected, make_agent, run_in
from tests.support.builders import connect_inputs
from tests.support.fake_openclaw import FakeGateway

SHARED = "SHARED-shared-token-7f3a9c"
DEVICE_TOKEN = "DEVICE-device-token-41be02"
BOOTSTRAP = "BOOTSTRAP-bootstrap-token-c0ffee"
PASSWORD = "PASSWORD-gateway-password-99aa"
ALL = (SHARED, DEVICE_TOKEN, BOOTSTRAP, PASSWORD)


def assert_hidden(obj: object, *plain: str) -> None:
    texts = [repr(obj), str(obj), f"{obj}", f"{obj!r}"]
    for text in texts:
        for value in plain or ALL:
            assert value not in text, f"{type(obj).__name__} shows a secret: {text}"


# --- repr -------------------------------------------------------------------------------------


def credentials() -> Credentials:
    return Credentials(device_token=Secret(DEVICE_TOKEN), bootstrap_token=Secret(BOOTSTRAP),
                       shared_token=Secret(SHARED), password=Secret(PASSWORD))


def inputs() -> ConnectInputs:
    return connect_inputs(client=ClientInfo(version="1", platform="linux"), credentials=credentials())


def hello_frame(rid: str) -> str:
    return json.dumps({"type": "res", "id": rid, "ok": True,
                       "payload": {"type": "hello-ok", "protocol": 4, "auth": {"deviceToken": DEVICE_TOKEN}}})


def test_secret_itself():
    secret = Secret(SHARED)
    assert_hidden(secret)
    assert f"{secret:>40}" == "***" and "%s %r" % (secret, secret) == "*** Secret('***')"
    with pytest.raises(TypeError):
        import pickle
        pickle.dumps(secret)


def test_protocol_objects_hide_their_secrets():
    assert_hidden(credentials())
    assert_hidden(inputs())
    hello = parse_hello({"type": "hello-ok", "auth": {"deviceToken": DEVICE_TOKEN}})
    assert hello.device_token == Secret(DEVICE_TOKEN)
    assert_hidden(hello)
    resolved = JsonRpcDialect().decode(json.dumps({"event": "node.pair.resolved", "payload": {
        "nodeId": "n", "approved": True, "token": DEVICE_TOKEN}}))
    assert isinstance(resolved.body, NodePairResolved) and resolved.body.token == Secret(DEVICE_TOKEN)
    assert_hidden(resolved)
    assert_hidden(resolved.body)


def test_the_frames_of_a_handshake_hide_their_secrets():
    # The connect request carries the shared token, the hello-ok the device token: neither the
    # parsed frames nor the actions made from them show either.
    ids = iter(f"r{i}" for i in range(1, 100))
    session = Session(OpenClawDialect(), ConnectInputs(client=ClientInfo(version="1", platform="linux"),
                                                       credentials=Credentials(shared_token=Secret(SHARED)),
                                                       signer=DeviceIdentity.generate()),
                      new_id=lambda: next(ids))
    session.start(0.0)
    challenge = json.dumps({"type": "event", "event": "connect.challenge", "payload": {"nonce": "n", "ts": 1}})
    [send] = session.receive_data(challenge, 0.0)
    assert isinstance(send, Send) and SHARED in send.data  # the wire has it; the repr must not
    assert_hidden(send)
    response = OpenClawDialect().decode(hello_frame("r1"))
    assert_hidden(response)
    actions = session.receive_data(hello_frame("r1"), 0.1)
    assert [type(a) for a in actions] == [StoreDeviceToken, Ready]
    for action in actions:
        assert_hidden(action)
    assert_hidden(session)
    assert_hidden([ForgetDeviceToken(), Close(1000, "bye", ConnectionLost("gone"))])


def test_a_request_repr_hides_its_params():
    request = OpenClawDialect().decode(json.dumps({"type": "req", "id": "1", "method": "connect",
                                                   "params": {"auth": {"token": SHARED}}}))
    assert_hidden(request)


def test_gateway_errors_hide_credentials_in_their_details():
    error = GatewayRejected("refused", code="INVALID_REQUEST", detail_code="X",
                            details={"token": SHARED, "deviceToken": DEVICE_TOKEN, "password": PASSWORD,
                                     "bootstrapToken": BOOTSTRAP, "reason": "fine to show"})
    assert_hidden(error)
    assert error.details["reason"] == "fine to show" and error.details["token"] == "***"


def test_config_and_setup_code_hide_their_secrets(tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(SHARED + "\n")
    empty = tmp_path / "config.toml"
    empty.write_text("")
    config = load_config(config_file=empty, env={"OPENCLAW_GATEWAY_PASSWORD": PASSWORD,
                                                 "NODE_AGENT_STATE_DIR": str(tmp_path)},
                         flags={"token_file": token_file})
    assert config.shared_token == Secret(SHARED) and config.password == Secret(PASSWORD)
    assert_hidden(config)
    assert_hidden(Config(shared_token=Secret(SHARED), password=Secret(PASSWORD), state_dir=tmp_path))

    import base64
    code = base64.urlsafe_b64encode(json.dumps({"url": "ws://127.0.0.1:18789", "bootstrapToken": BOOTSTRAP,
                                                "expiresAtMs": 1}).encode()).decode().rstrip("=")
    setup = decode_setup_code(f"oc-pair://{code}")
    assert setup.bootstrap_token == Secret(BOOTSTRAP)
    assert_hidden(setup)


async def test_stores_identity_and_agent_hide_their_secrets(tmp_path):
    identity = DeviceIdentity.generate()
    key = identity.private_secret().reveal()
    assert_hidden(identity, key)
    memory, file = MemoryStore(), FileStore(tmp_path / SECRETS_FILE)
    for store in (memory, file):
        await store.set("device-token:x", Secret(DEVICE_TOKEN))
        assert_hidden(store)
    assert_hidden(KeyringStore("svc"))
    agent = make_agent(FakeGateway(shared_token=SHARED), tmp_path)
    assert_hidden(agent)
    assert_hidden(agent.config)
    assert_hidden(agent.status.current)


async def test_a_debug_log_of_a_whole_pairing_shows_no_secret(autojump_clock, tmp_path):
    # End to end: pairing, the token arriving and being stored, presence, an invoke, a refused
    # token and re-pairing, all at DEBUG, through the real log setup. Not one credential shows.
    stream = io.StringIO()
    root = logging.getLogger()
    saved = root.level, list(root.handlers), logging.getLogger("trio-websocket").level
    setup_logging("debug", stream=stream)
    try:
        gw = FakeGateway(shared_token=SHARED)
        agent = make_agent(gw, tmp_path)
        private = agent.identity.private_secret().reveal()
        async with trio.open_nursery() as nursery:
            await run_in(nursery, agent)
            await trio.sleep(4)  # pairing pending, retried once
            gw.approve(agent.identity.device_id, token=DEVICE_TOKEN)
            conn = await gw.wait_connection(3)
            await conn.wait_request("node.event")
            await conn.send_event("node.invoke.request", {"id": "i1", "command": "device.status", "timeoutMs": 5000})
            await conn.wait_request("node.invoke.result")
            gw.paired[agent.identity.device_id] = "ROTATED-token-never-sent-000"  # the old one is refused now
            await conn.close(1012, "service restart")
            await gw.wait_connection(5)
            nursery.cancel_scope.cancel()
    finally:
        root.setLevel(saved[0])
        root.handlers[:] = saved[1]
        logging.getLogger("trio-websocket").setLevel(saved[2])
    text = stream.getvalue()
    assert "connected to" in text and "device token saved" in text and "forgetting it" in text
    for value in (*ALL, private):
        assert value not in text


# --- file modes -------------------------------------------------------------------------------


@contextlib.contextmanager
def umask(mask: int):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_every_secret_file_is_0600_whatever_the_umask(tmp_path):
    state = tmp_path / "state"
    with umask(0):
        store = await open_store(state, keyring_backend=fail.Keyring())  # auto -> file, with a marker
        identity, record = await load_or_create(state, store, platform="linux", device_family="Linux")
        await store.set("device-token:node@ws://127.0.0.1:18789", Secret(DEVICE_TOKEN))
        env_file = tmp_path / "etc" / "node-agent" / "env"
        write_env_file(env_file, Secret(SHARED))
        # Rewriting keeps the mode too (and the write goes through a temp file, not in place).
        await store.set("device-token:node@ws://127.0.0.1:18789", Secret(DEVICE_TOKEN + "2"))
        write_env_file(env_file, Secret(SHARED + "2"))
    assert mode_of(state) == 0o700
    for path in (state / SECRETS_FILE, state / IDENTITY_FILE, state / MARKER_FILE, env_file):
        assert mode_of(path) == 0o600, f"{path.name} is {mode_of(path):04o}"
    assert DEVICE_TOKEN + "2" in (state / SECRETS_FILE).read_text()
    assert identity.private_secret().reveal() in (state / SECRETS_FILE).read_text()
    assert identity.private_secret().reveal() not in (state / IDENTITY_FILE).read_text()
    assert [p.name for p in state.iterdir() if p.name.endswith(".tmp")] == []


# --- plain ws:// ------------------------------------------------------------------------------


@pytest.mark.parametrize("url", [
    "ws://gateway.example.com:18789", "ws://8.8.8.8:18789", "ws://[2001:4860:4860::8888]:18789",
    "ws://[::ffff:8.8.8.8]:18789", "ws://localhost.example.com", "ws://evil.local.example.com",
    "ws://ts.net", "ws://127.1", "ws://2130706433",
])
def test_plain_ws_to_a_public_host_is_refused(url):
    with pytest.raises(ConfigError, match="refusing plain ws://") as info:
        check_gateway_url(url)
    assert "wss://" in (info.value.hint or "")
    check_gateway_url(url, allow_insecure=True)  # a person may say the network is private
    check_gateway_url(url.replace("ws://", "wss://", 1))


@pytest.mark.parametrize("url", [
    "ws://127.0.0.1:18789", "ws://localhost:18789", "ws://LOCALHOST.", "ws://[::1]:18789",
    "ws://10.1.2.3", "ws://172.16.0.9", "ws://192.168.1.20:18789", "ws://169.254.10.1",
    "ws://100.100.1.2", "ws://[fd00::1]", "ws://[fe80::1]", "ws://kitchen-pi.local",
    "ws://gateway.tailnet-1234.ts.net:18789", "ws://gw.localhost",
])
def test_plain_ws_to_loopback_private_local_or_tailnet_is_allowed(url):
    check_gateway_url(url)


def test_the_config_loader_applies_the_rule(tmp_path):
    empty = tmp_path / "config.toml"
    empty.write_text("")
    env = {"OPENCLAW_GATEWAY_URL": "ws://gateway.example.com:18789", "NODE_AGENT_STATE_DIR": str(tmp_path)}
    with pytest.raises(ConfigError, match="refusing plain ws:// to gateway.example.com"):
        load_config(config_file=empty, env=env, flags={})
    config = load_config(config_file=empty, env={**env, "NODE_AGENT_ALLOW_INSECURE_WS": "yes"}, flags={})
    assert config.allow_insecure_ws and config.gateway_url == env["OPENCLAW_GATEWAY_URL"]


# --- TLS --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def server_cert(ca: trustme.CA) -> trustme.LeafCert:
    return ca.issue_cert("127.0.0.1", "localhost")


def server_context(cert: trustme.LeafCert) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(ctx)
    return ctx


def fingerprint_of(cert: trustme.LeafCert, *, colons: bool = True) -> str:
    der = ssl.PEM_cert_to_DER_cert(cert.cert_chain_pems[0].bytes().decode())
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i:i + 2] for i in range(0, 64, 2)) if colons else digest.lower()


@contextlib.asynccontextmanager
async def wss_echo(cert: trustme.LeafCert) -> AsyncIterator[int]:
    async def handler(request: trio_websocket.WebSocketRequest) -> None:
        ws = await request.accept()
        with contextlib.suppress(trio_websocket.ConnectionClosed):
            while True:
                await ws.send_message(await ws.get_message())

    async with trio.open_nursery() as nursery:
        server = await nursery.start(functools.partial(
            trio_websocket.serve_websocket, handler, "127.0.0.1", 0, ssl_context=server_context(cert)))
        yield server.port
        nursery.cancel_scope.cancel()


@contextlib.asynccontextmanager
async def raw_tls_server(cert: trustme.LeafCert) -> AsyncIterator[tuple[int, list[bytes], trio.Event]]:
    """A TLS server that records every application byte it receives after the handshake."""
    received: list[bytes] = []
    done = trio.Event()

    async def handler(stream: trio.SSLStream) -> None:
        try:
            await stream.do_handshake()
            while data := await stream.receive_some(65536):
                received.append(data)
        except (trio.BrokenResourceError, ssl.SSLError):
            pass
        finally:
            done.set()

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(functools.partial(
            trio.serve_ssl_over_tcp, handler, 0, server_context(cert), host="127.0.0.1"))
        yield listeners[0].transport_listener.socket.getsockname()[1], received, done
        nursery.cancel_scope.cancel()


async def test_the_right_pin_connects(server_cert):
    with trio.fail_after(10):
        async with wss_echo(server_cert) as port:
            for pin in (fingerprint_of(server_cert), "sha256:" + fingerprint_of(server_cert, colons=False)):
                async with open_transport(f"wss://127.0.0.1:{port}", fingerprint=pin) as conn:
                    await conn.send("pinned hello")
                    assert await conn.receive() == "pinned hello"


async def test_a_wrong_pin_is_refused_before_any_websocket_byte(server_cert, ca):
    other = ca.issue_cert("127.0.0.1")  # same CA, same name: only the pin tells them apart
    with trio.fail_after(10):
        async with raw_tls_server(server_cert) as (port, received, done):
            with pytest.raises(ConfigError, match="does not match the pinned fingerprint") as info:
                async with open_transport(f"wss://127.0.0.1:{port}", fingerprint=fingerprint_of(other)):
                    pytest.fail("connected despite a wrong pin")
            await done.wait()
    assert received == []  # not even the HTTP upgrade went out
    assert info.value.retry.value == "fatal" and "tls_fingerprint" in (info.value.hint or "")


async def test_a_malformed_pin_is_a_config_error(server_cert):
    with pytest.raises(ConfigError, match="SHA-256"):
        async with open_transport("wss://127.0.0.1:1", fingerprint="abc"):
            pass


async def test_an_extra_ca_file_is_trusted_and_the_system_store_alone_is_not(server_cert, ca, tmp_path):
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    with trio.fail_after(10):
        async with wss_echo(server_cert) as port:
            async with open_transport(f"wss://127.0.0.1:{port}", ca_file=str(ca_file)) as conn:
                await conn.send("ca hello")
                assert await conn.receive() == "ca hello"
            async with open_transport(f"wss://localhost:{port}", ca_file=str(ca_file)) as conn:
                await conn.send("by name")
                assert await conn.receive() == "by name"
            with pytest.raises(GatewayUnreachable):
                async with open_transport(f"wss://127.0.0.1:{port}"):
                    pass


async def test_a_cert_for_another_name_is_refused_even_from_a_trusted_ca(ca, tmp_path):
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    with trio.fail_after(10):
        async with wss_echo(ca.issue_cert("gateway.example")) as port:
            with pytest.raises(GatewayUnreachable):
                async with open_transport(f"wss://127.0.0.1:{port}", ca_file=str(ca_file)):
                    pass


async def test_a_certificate_failure_says_it_is_one(server_cert):
    with trio.fail_after(10):
        async with wss_echo(server_cert) as port:
            with pytest.raises(GatewayUnreachable, match="(?i)certificate"):
                async with open_transport(f"wss://127.0.0.1:{port}"):
                    pass


# --- the command surface ----------------------------------------------------------------------


def test_no_shell_commands_are_offered():
    registry = builtin_registry()
    for name in registry.commands:
        assert not name.startswith(("system.run", "system.exec", "system.which", "system.execApprovals")), name
        assert "shell" not in name and "exec" not in name
    assert registry.commands == ("device.info", "device.status", "system.notify")


async def test_system_run_is_not_declared_and_an_invoke_of_it_is_refused(autojump_clock, tmp_path):
    gw = FakeGateway()
    async with connected(gw, tmp_path) as (agent, conn):
        assert not any(c.startswith("system.run") for c in conn.connect_params["commands"])
        await conn.send_event("node.invoke.request", {"id": "r", "command": "system.run", "timeoutMs": 5000,
                                                      "paramsJSON": json.dumps({"command": ["id"]})})
        [result] = await conn.wait_request("node.invoke.result")
        assert result["params"]["ok"] is False and result["params"]["error"]["code"] == "UNAVAILABLE"
