"""Coverage-guided fuzzing (atheris / libFuzzer) of everything that reads the gateway's bytes.

Targets, picked by the first input byte:

* ``decode`` of both dialects, on bytes and on text: the only exception allowed is
  :class:`~node_agent.errors.RemoteProtocolError`, with a one-line message;
* :meth:`Session.receive_data` of both dialects, from four starting points (fresh socket,
  handshake in flight, READY, and READY with the watchdog fired in between): the rest of the
  input is a sequence of frames, one per line. ``receive_data`` must never raise (a malformed
  frame is a ``LogProblem``), must only return known actions, and a READY session must stay
  READY and keep its invoke contract (each dispatched invoke can be answered exactly once).

Run it with ``scripts/fuzz [seconds]``; that installs atheris into the venv if it is missing,
writes a seed corpus (recorded real frames and the documented examples) and a dictionary of
wire tokens under ``.run/fuzz/``, and keeps what it learns there for the next run. Directly::

    .venv/bin/python fuzz/fuzz_decoders.py --make-seeds DIR   # seeds + DIR/../wire.dict
    .venv/bin/python fuzz/fuzz_decoders.py [libFuzzer flags] CORPUS_DIR

A crash leaves ``crash-<sha1>`` in the working directory; replay it with
``.venv/bin/python fuzz/fuzz_decoders.py crash-<sha1>``.
"""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import atheris  # noqa: E402  (after the path fix, so `node_agent` resolves to this checkout)

with atheris.instrument_imports(include=["node_agent"]):
    from node_agent.errors import RemoteProtocolError
    from node_agent.protocol import (
        CancelInvoke,
        ClientInfo,
        Close,
        ConnectInputs,
        Credentials,
        Dispatch,
        ForgetDeviceToken,
        JsonRpcDialect,
        LogProblem,
        NodeInvokeRequest,
        OpenClawDialect,
        PairingPending,
        Ready,
        ResponseReceived,
        Send,
        Session,
        State,
        StoreDeviceToken,
    )
    from node_agent.secret import Secret

INPUTS = ConnectInputs(client=ClientInfo(version="0.1.0", platform="linux", instance_id="node-1"),
                       credentials=Credentials(shared_token=Secret("shared-token-for-the-fuzzer")),
                       signer=None, caps=("device",), commands=("device.info",))

ALL_ACTIONS = (Send, Ready, StoreDeviceToken, ForgetDeviceToken, PairingPending, Dispatch, CancelInvoke,
               ResponseReceived, Close, LogProblem)
READY_ACTIONS = (LogProblem, Dispatch, ResponseReceived, CancelInvoke, Send)

OPENCLAW_CHALLENGE = json.dumps({"type": "event", "event": "connect.challenge",
                                 "payload": {"nonce": "n-1", "ts": 1_800_000_000_000}})
OPENCLAW_HELLO = json.dumps({"type": "res", "id": "r1", "ok": True,
                             "payload": {"type": "hello-ok", "protocol": 4, "auth": {"deviceToken": "tok"},
                                         "policy": {"tickIntervalMs": 30000}}})
JSONRPC_HELLO = json.dumps({"id": "r1", "ok": True, "payload": {"type": "hello-ok", "nodeId": "node-1"}})

#: (dialect, prelude frames, expected state after the prelude)
_MODES = ("decode-openclaw-bytes", "decode-openclaw-text", "decode-jsonrpc-bytes", "decode-jsonrpc-text",
          "session-openclaw-fresh", "session-openclaw-connecting", "session-openclaw-ready",
          "session-jsonrpc-fresh", "session-jsonrpc-ready", "session-openclaw-ready-timer")


def _new_session(dialect: Any) -> Session:
    counter = itertools.count(1)
    return Session(dialect, INPUTS, new_id=lambda: f"r{next(counter)}")


def _session_for(mode: str) -> Session:
    if "openclaw" in mode:
        session = _new_session(OpenClawDialect())
        session.start(0.0)
        if mode.endswith("fresh"):
            return session
        session.receive_data(OPENCLAW_CHALLENGE, 0.0)
        assert session.state is State.CONNECTING
        if mode.endswith("connecting"):
            return session
        session.receive_data(OPENCLAW_HELLO, 0.0)
    else:
        session = _new_session(JsonRpcDialect())
        session.start(0.0)
        if mode.endswith("fresh"):
            return session
        session.receive_data(JSONRPC_HELLO, 0.0)
    assert session.state is State.READY, session
    return session


def _check_decode(dialect: Any, data: str | bytes) -> None:
    try:
        dialect.decode(data)
    except RemoteProtocolError as exc:
        if "\n" in exc.message:
            raise AssertionError(f"multi-line RemoteProtocolError: {exc.message!r}") from None


def _feed(mode: str, body: bytes) -> None:
    session = _session_for(mode)
    ready = session.state is State.READY
    now = 1.0
    for raw in body.split(b"\n"):
        # Alternate bytes and text frames: the transport delivers both.
        frame: str | bytes = raw
        if len(raw) % 2 == 0:
            try:
                frame = raw.decode("utf-8")
            except UnicodeDecodeError:
                pass
        actions = session.receive_data(frame, now)
        allowed = READY_ACTIONS if ready else ALL_ACTIONS
        for action in actions:
            if not isinstance(action, allowed):
                raise AssertionError(f"{mode}: unexpected action {action!r} in {session!r}")
        if ready:
            if session.state is not State.READY:
                raise AssertionError(f"{mode}: a frame knocked a READY session to {session.state}")
            for action in actions:
                if isinstance(action, Dispatch) and isinstance(action.event.body, NodeInvokeRequest):
                    session.invoke_result(action.event.body.id, ok=True, payload={"ok": True})
        deadline = session.deadline()
        if mode.endswith("timer") and deadline is not None:
            now = max(now, deadline)
            for action in session.on_timer(now):
                if not isinstance(action, ALL_ACTIONS):
                    raise AssertionError(f"{mode}: unexpected timer action {action!r}")
            ready = session.state is State.READY
        now += 0.5
    session.connection_closed(1006, None)


def test_one_input(data: bytes) -> None:
    if not data:
        return
    mode = _MODES[data[0] % len(_MODES)]
    body = data[1:]
    if mode.startswith("decode"):
        dialect = OpenClawDialect() if "openclaw" in mode else JsonRpcDialect()
        if mode.endswith("text"):
            _check_decode(dialect, body.decode("utf-8", "replace"))
        else:
            _check_decode(dialect, body)
        return
    _feed(mode, body)


# --- seeds ------------------------------------------------------------------------------------


def _gateway_frames() -> list[dict[str, Any]]:
    frames = []
    for line in (REPO / "tests" / "vectors" / "openclaw-live-frames.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record.get("dir") == "<<<" and isinstance(record.get("frame"), dict):
            frames.append(_shrink(record["frame"]))
    return frames


def _shrink(frame: dict[str, Any]) -> dict[str, Any]:
    """The real hello-ok lists 466 methods: keep a few, so seeds fit libFuzzer's max_len."""
    payload = frame.get("payload")
    if isinstance(payload, dict) and isinstance(payload.get("features"), dict):
        features = {k: v[:3] if isinstance(v, list) else v for k, v in payload["features"].items()}
        payload = {**payload, "features": features, "snapshot": {"presence": []}}
        frame = {**frame, "payload": payload}
    return frame


def _documented_frames() -> list[dict[str, Any]]:
    from tests.support.documented_gateway import DOCUMENTED_EXAMPLES

    return [{"event": name, "payload": payload} for name, payloads in DOCUMENTED_EXAMPLES.items()
            for payload in payloads]


WIRE_TOKENS = ['"type"', '"event"', '"req"', '"res"', '"id"', '"ok"', '"payload"', '"error"', '"method"',
               '"params"', '"jsonrpc"', '"2.0"', '"result"', '"seq"', '"stateVersion"', '"code"', '"message"',
               '"details"', '"retryAfterMs"', '"retryable"', '"connect.challenge"', '"nonce"', '"ts"',
               '"challenge"', '"expiresAt"', '"hello-ok"', '"auth"', '"deviceToken"', '"policy"',
               '"tickIntervalMs"', '"tick"', '"shutdown"', '"restartExpectedMs"', '"node.invoke.request"',
               '"node.invoke.cancel"', '"invokeId"', '"command"', '"paramsJSON"', '"timeoutMs"', '"nodeId"',
               '"node.pair.resolved"', '"decision"', '"approved"', '"token"', '"voicewake.changed"',
               '"triggers"', '"talk.mode"', '"enabled"', '"NOT_PAIRED"', '"PAIRING_REQUIRED"', '"requestId"',
               '"UNAVAILABLE"', '"AUTH_DEVICE_TOKEN_MISMATCH"', '"r1"', '"r2"', 'null', 'true', 'false', '{}',
               '[]', '-1', '1e999']


def make_seeds(corpus: Path) -> int:
    corpus.mkdir(parents=True, exist_ok=True)
    gateway = [json.dumps(f) for f in _gateway_frames()]
    documented = [json.dumps(f) for f in _documented_frames()]
    # The recorded handshake answers its own connect id; ours is "r1".
    handshake = [json.dumps({**f, "id": "r1"}) if f.get("type") == "res" else json.dumps(f)
                 for f in _gateway_frames()]
    seeds: list[bytes] = []
    for i, mode in enumerate(_MODES):
        pool = gateway if "openclaw" in mode else documented
        if mode.startswith("decode"):
            seeds += [bytes([i]) + text.encode() for text in gateway + documented]
        else:
            seeds.append(bytes([i]) + "\n".join(handshake if "openclaw" in mode else pool).encode())
            seeds += [bytes([i]) + text.encode() for text in pool[:20]]
    for n, seed in enumerate(seeds):
        (corpus / f"seed-{n:04d}").write_bytes(seed)
    (corpus.parent / "wire.dict").write_text("".join(f"kw{n}={json.dumps(t)}\n" for n, t in enumerate(WIRE_TOKENS)))
    return len(seeds)


def main(argv: list[str]) -> None:
    if len(argv) == 3 and argv[1] == "--make-seeds":
        print(f"wrote {make_seeds(Path(argv[2]))} seeds to {argv[2]}")
        return
    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
