"""``status``, ``identity`` and ``unpair``: read (or clear) what the daemon keeps on disk."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Callable

from ..agent.status import public_url
from ..identity import IDENTITY_FILE, read_record
from .options import config_from_args

if TYPE_CHECKING:
    from ..agent.status import AgentStatus


def add_parser(sub, common: Callable[[argparse.ArgumentParser], None]) -> None:
    p = sub.add_parser("status", help="what the agent is doing (connection, pairing, voice)")
    common(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=status)
    p = sub.add_parser("identity", help="this device's id and public key")
    common(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=identity)
    p = sub.add_parser("unpair", help="forget the device token (and optionally the identity)")
    common(p)
    p.add_argument("--reset-identity", action="store_true",
                   help="also delete the device key: the gateway will see a new device")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p.set_defaults(func=unpair)


def status(args: argparse.Namespace) -> int:
    from ..agent.status import read_status, to_json

    config = config_from_args(args)
    record = read_record(config.state_dir)
    current = read_status(config.state_dir)
    if args.json:
        data = to_json(current) if current is not None else {"state": "never run"}
        data.setdefault("gateway", public_url(config.gateway_url))
        if record is not None and not data.get("deviceId"):
            data["deviceId"] = record.device_id
        data["stateDir"] = str(config.state_dir)
        print(json.dumps(data, indent=2, sort_keys=True))
        return 0
    print(render_status(current, gateway=config.gateway_url, device_id=record.device_id if record else None), end="")
    return 0


def render_status(current: "AgentStatus | None", *, gateway: str, device_id: str | None) -> str:
    """The ``status`` screen, as a person reads it."""
    from ..agent.status import LinkState, Surface

    lines: list[str] = []
    if current is None:
        lines.append("state:     never run")
        lines.append(f"gateway:   {public_url(gateway)}")
        lines.append(f"device id: {device_id or '(no identity yet)'}")
        return "\n".join(lines) + "\n"
    lines.append(f"state:     {current.state.value}{' (stale status file)' if current.stale else ''}")
    about = [f"{current.dialect} dialect"] if current.dialect else []
    if current.server_version:
        about.insert(0, f"{'openclaw ' if current.dialect == 'openclaw' else ''}{current.server_version}")
    if current.protocol is not None:
        about.insert(min(1, len(about)), f"protocol {current.protocol}")
    lines.append(f"gateway:   {current.gateway or public_url(gateway)}" + (f" ({', '.join(about)})" if about else ""))
    lines.append(f"device id: {current.device_id or device_id or '(no identity yet)'}")
    if current.secret_store:
        lines.append(f"secrets:   {current.secret_store} store")
    pairing = current.pairing
    if pairing is not None and pairing.code:
        lines.append(f"pairing:   enter code {pairing.code} on the gateway")
    elif pairing is not None and pairing.request_id:
        lines.append(f"pairing:   waiting for approval: openclaw devices approve {pairing.request_id}")
    if current.surface is Surface.PENDING:
        lines.append("commands:  awaiting approval: openclaw nodes pending; openclaw nodes approve <requestId>")
    elif current.surface is Surface.UNCONFIRMED:
        lines.append("commands:  not reported by this gateway: check openclaw nodes pending")
    if current.server_version and current.dialect == "openclaw":
        from ..protocol.releases import profile_for

        lines.append(f"allowlist: {profile_for(current.server_version).allowlist_key} "
                     "(the gateway's key for node commands beyond its defaults)")
    link = current.operator_link
    if link is not None:
        pending = link.pairing.request_id if link.pairing is not None else None
        lines.append(f"operator link: {link.state.value}"
                     + (f" (approve: openclaw devices approve {pending})" if pending else ""))
    if current.voice_wake_triggers is not None:
        lines.append(f"wake words: {', '.join(current.voice_wake_triggers) or '(none)'}")
    if current.voice is not None:
        lines.append(f"voice:     mode {current.voice.mode}; unsupported triggers: "
                     f"{', '.join(current.voice.unsupported_triggers) or 'none'}")
    for refusal in current.refused_events:
        lines.append(f"refused:   node.event {refusal.event} ({refusal.reason}) x{refusal.count}")
    if current.token_save_error:
        lines.append(f"token:     not saved: {current.token_save_error}")
    if current.last_error and current.state is not LinkState.CONNECTED:
        lines.append(f"last error: {current.last_error}")
    if current.hint:
        lines.append(f"to fix:    {current.hint}")
    return "\n".join(lines) + "\n"


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
