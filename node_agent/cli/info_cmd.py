"""``status``, ``identity`` and ``unpair``: read (or clear) what the daemon keeps on disk."""

from __future__ import annotations

import argparse
import json
import sys

from ..identity import IDENTITY_FILE, read_record
from .options import config_from_args


def status(args: argparse.Namespace) -> int:
    from ..agent.status import read_status

    config = config_from_args(args)
    record = read_record(config.state_dir)
    data = read_status(config.state_dir) or {"state": "never run"}
    data.setdefault("gateway", config.gateway_url)
    if record is not None:
        data.setdefault("deviceId", record.device_id)
    data["stateDir"] = str(config.state_dir)
    if args.json:
        print(json.dumps(data, indent=2, sort_keys=True))
        return 0
    print(f"state:     {data.get('state')}{' (stale status file)' if data.get('stale') else ''}")
    print(f"gateway:   {data.get('gateway')}" + (f" ({data['dialect']} dialect)" if data.get("dialect") else ""))
    print(f"device id: {data.get('deviceId', '(no identity yet)')}")
    if data.get("secretStore"):
        print(f"secrets:   {data['secretStore']} store")
    pairing = data.get("pairing") or {}
    if pairing.get("code"):
        print(f"pairing:   enter code {pairing['code']} on the gateway")
    elif pairing.get("requestId"):
        print(f"pairing:   waiting for approval: openclaw devices approve {pairing['requestId']}")
    if data.get("surface") == "pending":
        print("commands:  awaiting approval: openclaw nodes pending; openclaw nodes approve <requestId>")
    link = data.get("operatorLink") or {}
    if isinstance(link, dict) and link.get("state"):
        pending = (link.get("pairing") or {}).get("requestId")
        print(f"operator link: {link['state']}" + (f" (approve: openclaw devices approve {pending})" if pending else ""))
    if data.get("voiceWakeTriggers") is not None:
        print(f"wake words: {', '.join(data['voiceWakeTriggers']) or '(none)'}")
    if data.get("voice"):
        voice = data["voice"]
        print(f"voice:     mode {voice.get('mode')}; unsupported triggers: "
              f"{', '.join(voice.get('unsupportedTriggers') or []) or 'none'}")
    if data.get("lastError"):
        print(f"last error: {data['lastError']}")
    if data.get("hint"):
        print(f"to fix:    {data['hint']}")
    return 0


def identity(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    record = read_record(config.state_dir)
    if record is None:
        print("no identity yet: run `node-agent pair` (or `node-agent run`) first", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({"deviceId": record.device_id, "publicKey": record.public_key}))
    else:
        print(f"deviceId:  {record.device_id}\npublicKey: {record.public_key}")
    return 0


def unpair(args: argparse.Namespace) -> int:
    import trio

    from ..secrets import open_store
    from ..secrets.base import DEVICE_KEY, device_token_key

    config = config_from_args(args)
    if args.reset_identity and not args.yes:
        if not sys.stdin.isatty():
            print("refusing to delete the identity without --yes", file=sys.stderr)
            return 2
        answer = input("Delete this device's identity? The gateway will see a new, unpaired device. [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            return 1

    async def _clear() -> None:
        store = await open_store(config.state_dir, backend=config.secret_backend, timeout=config.secret_timeout)
        await store.delete(device_token_key(config.gateway_url))
        await store.delete(device_token_key(config.gateway_url, role="operator"))  # the voice operator link
        if args.reset_identity:
            await store.delete(DEVICE_KEY)
            (config.state_dir / IDENTITY_FILE).unlink(missing_ok=True)

    trio.run(_clear)
    print("device token forgotten" + ("; identity deleted" if args.reset_identity else "")
          + ". Remove the device on the gateway too: openclaw devices remove <deviceId>")
    return 0
