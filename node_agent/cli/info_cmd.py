"""``status``, ``identity`` and ``unpair``: read (or clear) what the daemon keeps on disk."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Callable

from ..identity import IDENTITY_FILE, read_record
from .options import config_from_args


def add_parser(sub, common: Callable[[argparse.ArgumentParser], None]) -> None:
    p = sub.add_parser("status", help="what the agent is doing (connection, pairing, voice)")
    common(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=status, exit_at_once=True)
    p = sub.add_parser("identity", help="this device's id and public key")
    common(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=identity, exit_at_once=True)
    p = sub.add_parser("unpair", help="forget the device token (and optionally the identity)")
    common(p)
    p.add_argument("--reset-identity", action="store_true",
                   help="also delete the device key: the gateway will see a new device")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p.set_defaults(func=unpair)


def status(args: argparse.Namespace) -> int:
    from ..agent.status import public_url, read_status, to_json
    from ..config import for_reading

    config = for_reading(config_from_args(args))
    record = read_record(config.state_dir)
    current = read_status(config.state_dir)
    exec_policy = _exec_policy(config.state_dir)
    if args.json:
        data = to_json(current) if current is not None else {"state": "never run"}
        data.setdefault("gateway", public_url(config.gateway_url))
        if record is not None and not data.get("deviceId"):
            data["deviceId"] = record.device_id
        data["stateDir"] = str(config.state_dir)
        if exec_policy is not None:
            data["execPolicy"] = exec_policy
        print(json.dumps(data, indent=2, sort_keys=True))
        return 0
    from .screens import render_status, terminal_width

    width = terminal_width(sys.stdout)
    service_dir = str(config.state_dir) if config.state_dir_source == "system-service" else None
    print(render_status(current, gateway=config.gateway_url, device_id=record.device_id if record else None,
                        exec_policy=exec_policy, service_state_dir=service_dir, width=width or 10_000), end="")
    return 0


def _exec_policy(state_dir) -> dict | None:
    """The exec approvals policy in force, read from the document itself (None if never written):
    a person editing it sees the change here at once, whether the daemon runs or not."""
    from ..exec.store import FILE_NAME, ApprovalsStore
    from .exec_cmd import policy_report

    snap = ApprovalsStore(state_dir / FILE_NAME).read()
    return policy_report(snap, None) if snap.exists else None


def identity(args: argparse.Namespace) -> int:
    from ..config import for_reading

    config = for_reading(config_from_args(args))
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
    from ..lock import acquire

    config = config_from_args(args)
    if config.secret_backend == "memory":
        print("the memory secret store keeps nothing between runs: nothing to forget", file=sys.stderr)
        return 0
    if args.reset_identity and not args.yes:
        if not sys.stdin.isatty():
            print("refusing to delete the identity without --yes", file=sys.stderr)
            return 2
        answer = input("Delete this device's identity? The gateway will see a new, unpaired device. [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            return 1
    # A writer like `run`: never behind a running agent's back (it would save the token again on
    # its next connect, or keep running on an identity that no longer exists on disk).
    with acquire(config.state_dir, "unpair"):
        record = read_record(config.state_dir)
        _forget(config, reset_identity=args.reset_identity)
    device = record.device_id if record is not None else "<deviceId>"
    print("device token forgotten" + ("; identity deleted" if args.reset_identity else "")
          + f". Remove the device on the gateway too: openclaw devices remove {device}")
    return 0


def _forget(config, *, reset_identity: bool) -> None:
    import trio

    from ..secrets import open_store
    from ..secrets.base import DEVICE_KEY, device_token_key

    async def clear() -> None:
        store = await open_store(config.state_dir, backend=config.secret_backend, timeout=config.secret_timeout)
        await store.delete(device_token_key(config.gateway_url))
        await store.delete(device_token_key(config.gateway_url, role="operator"))  # the voice operator link
        if reset_identity:
            await store.delete(DEVICE_KEY)
            (config.state_dir / IDENTITY_FILE).unlink(missing_ok=True)

    trio.run(clear)
