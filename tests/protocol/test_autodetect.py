"""Dialect auto-detection from the first frame (or the silence) after the upgrade."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from node_agent.errors import ConfigError
from node_agent.protocol.autodetect import DETECT_WINDOW_S, DIALECT_NAMES, choose_dialect, get_dialect
from node_agent.protocol.dialect import Dialect
from node_agent.protocol.jsonrpc import JsonRpcDialect
from node_agent.protocol.openclaw import OpenClawDialect

RECORDED = Path("/work/shared/reference/recorded/pairing-session-frames.jsonl")

OPENCLAW_CHALLENGE = {"type": "event", "event": "connect.challenge",
                      "payload": {"nonce": "2fb14d80-69ca-4b1f-85d1-5bc8aa56d475", "ts": 1795316234619}}


@pytest.mark.parametrize(("frame", "dialect"), [
    (None, "jsonrpc"),  # silence: the documented gateway waits for our connect
    (json.dumps(OPENCLAW_CHALLENGE), "openclaw"),
    (json.dumps(OPENCLAW_CHALLENGE).encode(), "openclaw"),
    (json.dumps({**OPENCLAW_CHALLENGE, "payload": {**OPENCLAW_CHALLENGE["payload"], "capabilities": ["x"]}}),
     "openclaw"),
    (json.dumps({"type": "event", "event": "tick", "payload": {"ts": 1}}), "openclaw"),
    (json.dumps({"type": "res", "id": "a", "ok": True}), "openclaw"),
    # the documented shapes
    (json.dumps({"event": "connect.challenge", "payload": {"challenge": "123456", "expiresAt": 1}}), "jsonrpc"),
    (json.dumps({"event": "tick", "payload": {"timestamp": 1}}), "jsonrpc"),
    (json.dumps({"jsonrpc": "2.0", "id": "a", "ok": True}), "jsonrpc"),
    (json.dumps({"jsonrpc": "2.0", "method": "tick", "params": {}}), "jsonrpc"),
    (json.dumps({"jsonrpc": "2.0", "type": "event", "event": "tick"}), "jsonrpc"),
    # nothing recognisable: the default
    ("garbage", "jsonrpc"),
    (b"\xff\xfe", "jsonrpc"),
    ("[1, 2]", "jsonrpc"),
    ('{"type": ["event"]}', "jsonrpc"),
    ("[" * 100_000, "jsonrpc"),
])
def test_choose_dialect(frame, dialect):
    assert choose_dialect(frame) == dialect


@pytest.mark.skipif(not RECORDED.exists(), reason="recorded frames not available")
def test_the_real_gateways_recorded_first_frame_is_openclaw():
    for line in RECORDED.read_text().splitlines():
        record = json.loads(line)
        if record["dir"].endswith("<<<") and isinstance(record["frame"], dict):
            assert choose_dialect(json.dumps(record["frame"])) == "openclaw"
            return
    pytest.fail("no inbound frame recorded")


def test_get_dialect():
    assert isinstance(get_dialect("openclaw"), OpenClawDialect)
    assert isinstance(get_dialect("jsonrpc"), JsonRpcDialect)
    assert set(DIALECT_NAMES) == {"openclaw", "jsonrpc"}
    for name in DIALECT_NAMES:
        dialect: Dialect = get_dialect(name)
        assert dialect.name == name
    with pytest.raises(ConfigError):
        get_dialect("soap")


def test_the_window_is_short():
    assert 0 < DETECT_WINDOW_S <= 1
