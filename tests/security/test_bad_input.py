"""Bad input is refused with our own error, never with a crash.

* The config loader: any TOML document (and any environment) gives a valid :class:`Config` or
  a :class:`ConfigError`, never another exception (hypothesis writes the files).
* Setup codes: any text gives a :class:`SetupCode` or a :class:`ConfigError`.
* Oversized frames: a message above the agent's limit closes the socket with 1009 and the agent
  reconnects (in memory, on virtual time, against the fake gateway).

The decoders have their own property tests (tests/protocol/test_jsonrpc_properties.py) and a fuzz
target (fuzz/fuzz_decoders.py).
"""

from __future__ import annotations

import base64
import contextlib
import json
import math
from pathlib import Path
from typing import Any, AsyncIterator

import pytest
import trio
import trio.testing
import trio_websocket
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import node_agent.transport as transport
from node_agent.config import _ENV, _SCHEMA, Config, load_config
from node_agent.errors import ConfigError
from node_agent.setup_code import SetupCode, decode_setup_code
from node_agent.transport import WebSocketTransport
from tests.support.agents import URL, make_agent, run_in
from tests.support.fake_openclaw import FakeGateway

SETTINGS = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

# --- a TOML writer for the strategies (the standard library only reads TOML) -------------------


def toml_string(text: str) -> str:
    # JSON's string syntax is TOML's basic string, except that TOML also wants DEL escaped and
    # has no surrogate escapes (ensure_ascii=False keeps astral characters as they are).
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{toml_string(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(type(value))


def to_toml(doc: dict[str, Any]) -> str:
    lines = []
    for key, value in doc.items():  # top-level scalars first: TOML has no way back to the root
        if not isinstance(value, dict):
            lines.append(f"{toml_string(key)} = {toml_value(value)}")
    for key, value in doc.items():
        if isinstance(value, dict):
            lines.append(f"[{toml_string(key)}]")
            lines += [f"{toml_string(k)} = {toml_value(v)}" for k, v in value.items()]
    return "\n".join(lines) + "\n"


# --- strategies -------------------------------------------------------------------------------

KNOWN_KEYS = sorted({key for table in _SCHEMA.values() for key in table})
interesting_text = st.sampled_from([
    "", " ", "~", "~nosuchuser-xyz/state", "ws://", "ws://[::1", "wss://[::1]:99999", "ws://host:-1",
    "ws://127.0.0.1:18789", "wss://gateway.example", "ws://gateway.example", "http://x", "ws://a b",
    "openclaw", "jsonrpc", "auto", "file", "keyring", "memory", "linux", "pi", "nul\x00byte", "\ud7ff",
    "/nonexistent/token", "/dev/null", "/", ".", "ab:cd", "sha256:" + "0" * 64, "true", "1", "off",
]) | st.text(max_size=30)
scalars = (st.booleans() | st.integers(min_value=-(2**63), max_value=2**63 - 1) | st.floats()
           | interesting_text)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8)
keys = st.sampled_from(KNOWN_KEYS) | st.text(max_size=12)
sections = st.sampled_from([*_SCHEMA, "voice"]) | st.text(max_size=10)
tables = st.dictionaries(keys, values, max_size=6)
documents = st.dictionaries(sections, tables | values, max_size=5)
# Credentials get values of their own: the session's secret watch (tests/support/secret_watch.py)
# treats every Secret as a secret, and "ws://127.0.0.1:18789" is in plenty of honest log lines.
credential_values = st.text(max_size=16).map(lambda s: "hyp-credential-" + s)
environments = st.fixed_dictionaries({}, optional={
    "OPENCLAW_GATEWAY_TOKEN": credential_values, "OPENCLAW_GATEWAY_PASSWORD": credential_values,
    **{name: interesting_text.filter(lambda s: "\x00" not in s) for name in sorted(_ENV)},
})


def load_or_refuse(path: Path, env: dict[str, str]) -> Config | None:
    try:
        return load_config(config_file=path, env=env, flags={})
    except ConfigError as exc:
        assert exc.message
        return None


def check_valid(config: Config) -> None:
    assert config.protocol in ("openclaw", "jsonrpc", "auto")
    assert config.secret_backend in ("auto", "keyring", "file", "memory")
    assert config.gateway_url.startswith(("ws://", "wss://"))
    for number in (config.ping_interval, config.ping_timeout, config.heartbeat_interval, config.secret_timeout):
        assert number > 0


@SETTINGS
@given(doc=documents)
@example(doc={"gateway": {"url": "ws://[::1"}})
@example(doc={"gateway": {"url": "wss://host:99999"}})
@example(doc={"node": {"state_dir": "~nosuchuser-xyz/state"}})
@example(doc={"gateway": {"token_file": "nul\x00byte"}})
@example(doc={"gateway": {"token_file": "~nosuchuser-xyz/token"}})
@example(doc={"gateway": {"ping_interval": float("nan")}})
@example(doc={"gateway": {"ping_timeout": float("inf")}})
@example(doc={"secrets": {"timeout": 10**30}})
@example(doc={"voice": {"anything": [1, {"x": "y"}]}})
@example(doc={"gateway": "not a table"})
def test_any_toml_document_loads_or_is_a_config_error(tmp_path_factory, doc):
    path = tmp_path_factory.mktemp("cfg") / "config.toml"
    path.write_text(to_toml(doc), "utf-8")
    config = load_or_refuse(path, {})
    if config is not None:
        check_valid(config)


@SETTINGS
@given(env=environments)
@example(env={"OPENCLAW_GATEWAY_URL": "ws://[::1"})
@example(env={"NODE_AGENT_STATE_DIR": "~nosuchuser-xyz"})
@example(env={"NODE_AGENT_TOKEN_FILE": "~nosuchuser-xyz/token"})
@example(env={"NODE_AGENT_TOKEN_FILE": "/"})
def test_any_environment_loads_or_is_a_config_error(tmp_path_factory, env):
    path = tmp_path_factory.mktemp("cfg") / "config.toml"
    path.write_text("", "utf-8")
    config = load_or_refuse(path, env)
    if config is not None:
        check_valid(config)


@SETTINGS
@given(raw=st.binary(max_size=200))
@example(raw=b"\xff\xfe[gateway]")
@example(raw=b"[gateway]\nurl = 'ws://127.0.0.1'\n[gateway]\n")
@example(raw=b"a = " + b"[" * 5000)
def test_any_bytes_as_a_config_file_load_or_are_a_config_error(tmp_path_factory, raw):
    path = tmp_path_factory.mktemp("cfg") / "config.toml"
    path.write_bytes(raw)
    config = load_or_refuse(path, {})
    if config is not None:
        check_valid(config)


def test_a_config_file_that_is_a_directory_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(config_file=tmp_path, env={}, flags={})


# --- setup codes ------------------------------------------------------------------------------


def encode_code(obj: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                                       max_size=3), max_leaves=10)
setup_objects = st.fixed_dictionaries({}, optional={
    "url": json_values | st.sampled_from(["ws://127.0.0.1:18789", "wss://gw.example"]),
    "bootstrapToken": json_values.filter(lambda v: not isinstance(v, str)) | credential_values,
    "expiresAtMs": json_values | st.integers(),
    "tlsFingerprint": json_values, "fingerprint": json_values,
}) | json_values


def decode_or_refuse(text: str) -> SetupCode | None:
    try:
        code = decode_setup_code(text)
    except ConfigError as exc:
        assert "\n" not in exc.message
        return None
    assert isinstance(code.url, str) and code.bootstrap_token.reveal()
    assert "bootstrap" not in repr(code)
    return code


@SETTINGS
@given(text=st.text(max_size=200) | st.binary(max_size=150).map(lambda b: base64.urlsafe_b64encode(b).decode()))
@example(text="oc-pair://")
@example(text="é")
@example(text="=" * 7)
@example(text=base64.urlsafe_b64encode(b"[" * 5000).decode())
def test_any_text_is_a_setup_code_or_a_config_error(text):
    decode_or_refuse(text)


@SETTINGS
@given(obj=setup_objects, prefix=st.sampled_from(["", "oc-pair://", "  "]))
@example(obj={"url": "ws://127.0.0.1:18789", "bootstrapToken": "hyp-credential-x", "expiresAtMs": True}, prefix="")
def test_any_json_in_a_setup_code_decodes_or_is_a_config_error(obj, prefix):
    code = decode_or_refuse(prefix + encode_code(obj))
    if code is not None:
        assert code.expires_at_ms is None or type(code.expires_at_ms) is int
        assert code.tls_fingerprint is None or isinstance(code.tls_fingerprint, str)


# --- oversized frames -------------------------------------------------------------------------


class LimitedGateway(FakeGateway):
    """The fake gateway, with the agent's side of each connection built like the real transport:
    trio-websocket with ``max_message_size`` taken from :data:`node_agent.transport.MAX_MESSAGE_SIZE`
    at connect time (so a test may lower it)."""

    def opener(self):
        @contextlib.asynccontextmanager
        async def open_transport() -> AsyncIterator[WebSocketTransport]:
            self.attempt_times.append(trio.current_time())
            client_stream, server_stream = trio.testing.memory_stream_pair()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._serve, server_stream)
                ws = await trio_websocket.wrap_client_stream(nursery, client_stream, "127.0.0.1", "/",
                                                             message_queue_size=1,
                                                             max_message_size=transport.MAX_MESSAGE_SIZE)
                conn = WebSocketTransport(ws, URL)
                try:
                    yield conn
                finally:
                    with trio.move_on_after(2) as scope:
                        scope.shield = True
                        await conn.aclose()
                    nursery.cancel_scope.cancel()

        return open_transport


LIMIT = 64 * 1024


async def test_a_message_over_the_limit_closes_with_1009_and_the_agent_reconnects(
        autojump_clock, tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(transport, "MAX_MESSAGE_SIZE", LIMIT)
    gw = LimitedGateway()
    agent = make_agent(gw, tmp_path)
    gw.approve(agent.identity.device_id)
    async with trio.open_nursery() as nursery:
        await run_in(nursery, agent)
        first = await gw.wait_connection(1)
        await first.ready.wait()

        # Just under the limit is fine: the frame is read (and ignored as an unknown event).
        filler = "x" * (LIMIT - 200)
        await first.send_event("probe.big", {"blob": filler})
        await trio.sleep(1)
        assert not first.ended.is_set() and agent.status.current.state.value == "connected"

        t0 = trio.current_time()
        await first.send_event("probe.huge", {"blob": "x" * (2 * LIMIT)})
        await first.ended.wait()
        assert first.closed_code == 1009
        assert trio.current_time() == t0  # refused as it arrived, not after a timeout

        second = await gw.wait_connection(2)
        await second.wait_request("node.event")  # the presence heartbeat: the agent is back
        # Recovery after losing a good connection: back 0.5 s later.
        assert gw.attempt_times[1] == pytest.approx(t0 + 0.5)
        assert agent.status.current.state.value == "connected"
        nursery.cancel_scope.cancel()
    assert any("exceeded the size limit" in r.getMessage() for r in caplog.records)


async def test_an_oversized_hello_is_refused_the_same_way(autojump_clock, tmp_path, monkeypatch):
    # The limit applies from the first frame: a gateway that sends a huge hello-ok is cut off
    # too, and the agent keeps trying at its normal pace rather than hot-looping.
    monkeypatch.setattr(transport, "MAX_MESSAGE_SIZE", 300)  # the challenge fits, hello-ok does not
    gw = LimitedGateway()
    agent = make_agent(gw, tmp_path)
    gw.approve(agent.identity.device_id)
    async with trio.open_nursery() as nursery:
        await run_in(nursery, agent)
        first = await gw.wait_connection(1)
        await first.ended.wait()
        assert first.closed_code == 1009
        await gw.wait_connection(3)
        assert gw.attempt_times[:3] == [0, 1, 3]  # the transient schedule: 1 s, then 2 s
        assert agent.status.current.state.value != "connected"
        nursery.cancel_scope.cancel()
