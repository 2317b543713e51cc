"""The floor: the least a Python node can do to be connected, for side-by-side benchmarks.

    python bench/bare_client.py --url ws://127.0.0.1:18789 --state DIR --display-name NAME

trio + trio-websocket + cryptography and nothing else of node-agent's machinery: load (or make)
an Ed25519 key, answer ``connect.challenge`` with a signed ``connect`` (the same v3 payload
node-agent signs, built by ``node_agent.protocol.signing``, which is pure string work), keep the
device token the gateway issues, then read frames until SIGTERM, close with 1000 and exit at
once. No presence, no keepalive of its own, no status file, no logging: whatever node-agent costs
above this is what its features cost.

Prints ``connected`` on hello-ok and ``pairing`` when the gateway wants an approval (the bench
approves through its operator socket and the client simply reconnects).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import signal
import sys
import uuid
from pathlib import Path

import trio
import trio_websocket
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from node_agent.protocol.signing import device_auth_payload  # noqa: E402


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def load_state(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        key = Ed25519PrivateKey.generate()
        raw = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                serialization.NoEncryption())
        state = {"key": b64url(raw), "instanceId": str(uuid.uuid4()), "token": None}
        path.write_text(json.dumps(state))
        return state


async def run(url: str, state_path: Path, display_name: str, shared_token: str | None) -> int:
    state = load_state(state_path)
    raw = base64.urlsafe_b64decode(state["key"] + "=" * (-len(state["key"]) % 4))
    key = Ed25519PrivateKey.from_private_bytes(raw)
    public = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    device_id = hashlib.sha256(public).hexdigest()
    stop = trio.Event()

    async def signals() -> None:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as received:
            async for _ in received:
                stop.set()
                return

    async with trio.open_nursery() as nursery:
        nursery.start_soon(signals)
        while not stop.is_set():
            try:
                async with trio_websocket.open_websocket_url(url, max_message_size=32 * 1024 * 1024) as ws:
                    challenge = json.loads(await ws.get_message())["payload"]
                    token = state.get("token") or shared_token or ""
                    auth = {"deviceToken": token} if state.get("token") else {"token": token}
                    client = {"id": "node-host", "version": "0.0.0", "platform": "linux", "mode": "node",
                              "displayName": display_name, "deviceFamily": "Linux", "instanceId": state["instanceId"]}
                    payload = device_auth_payload(version=3, device_id=device_id, client_id="node-host",
                                                  client_mode="node", role="node", scopes=(),
                                                  signed_at_ms=challenge["ts"], token=token,
                                                  nonce=challenge["nonce"], platform="linux", device_family="Linux")
                    params = {"minProtocol": 3, "maxProtocol": 4, "client": client, "role": "node", "scopes": [],
                              "caps": [], "commands": [], "auth": auth,
                              "device": {"id": device_id, "publicKey": b64url(public),
                                         "signature": b64url(key.sign(payload.encode())),
                                         "signedAt": challenge["ts"], "nonce": challenge["nonce"]}}
                    await ws.send_message(json.dumps({"type": "req", "id": "c1", "method": "connect",
                                                      "params": params}))
                    while True:
                        frame = json.loads(await ws.get_message())
                        if frame.get("type") == "res" and frame.get("id") == "c1":
                            break
                    if not frame.get("ok"):
                        print("pairing", flush=True)
                        await trio.sleep(1)
                        continue
                    issued = ((frame.get("payload") or {}).get("auth") or {}).get("deviceToken")
                    if issued and issued != state.get("token"):
                        state["token"] = issued
                        state_path.write_text(json.dumps(state))
                    print("connected", flush=True)
                    async with trio.open_nursery() as reader:
                        async def read() -> None:
                            while True:
                                await ws.get_message()

                        reader.start_soon(read)
                        await stop.wait()
                        reader.cancel_scope.cancel()
                    await ws.aclose(1000, "bye")
            except (trio_websocket.ConnectionClosed, trio_websocket.HandshakeError, OSError):
                with trio.move_on_after(1):
                    await stop.wait()
        nursery.cancel_scope.cancel()
    return 0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", required=True)
    p.add_argument("--state", required=True, help="a JSON file for the key and the device token")
    p.add_argument("--display-name", default="bench-bare")
    args = p.parse_args()
    code = trio.run(run, args.url, Path(args.state), args.display_name, os.environ.get("OPENCLAW_GATEWAY_TOKEN"))
    sys.stdout.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
