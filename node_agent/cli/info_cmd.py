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
    from ..agent.status import AgentStatus, ExecStatus


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
    print(render_status(current, gateway=config.gateway_url, device_id=record.device_id if record else None,
                        exec_policy=exec_policy), end="")
    if config.state_dir_source == "system-service":
        print(f"state dir: {config.state_dir} (the system service's; --state-dir to look at another)")
    return 0


def _exec_policy(state_dir) -> dict | None:
    """The exec approvals policy in force, read from the document itself (None if never written):
    a person editing it sees the change here at once, whether the daemon runs or not."""
    from ..exec.store import FILE_NAME, ApprovalsStore
    from .exec_cmd import policy_report

    snap = ApprovalsStore(state_dir / FILE_NAME).read()
    return policy_report(snap, None) if snap.exists else None


def render_status(current: "AgentStatus | None", *, gateway: str, device_id: str | None,
                  exec_policy: dict | None = None) -> str:
    """The ``status`` screen, as a person reads it."""
    from ..agent.status import LinkState, Surface

    lines: list[str] = []
    if current is None:
        lines.append("state:     never run")
        lines.append(f"gateway:   {public_url(gateway)}")
        lines.append(f"device id: {device_id or '(no identity yet)'}")
        lines += _exec_lines(exec_policy, None)
        return "\n".join(lines) + "\n"
    lines.append(f"state:     {current.state.value}{' (stale status file)' if current.stale else ''}")
    lines.append(f"gateway:   {current.gateway or public_url(gateway)}"
                 + (f" ({current.dialect} dialect)" if current.dialect else ""))
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
    lines += _exec_lines(exec_policy, current.exec)
    for refusal in current.refused_events:
        lines.append(f"refused:   node.event {refusal.event} ({refusal.reason}) x{refusal.count}")
    if current.token_save_error:
        lines.append(f"token:     not saved: {current.token_save_error}")
    if current.last_error and current.state is not LinkState.CONNECTED:
        lines.append(f"last error: {current.last_error}")
    if current.hint:
        lines.append(f"to fix:    {current.hint}")
    return "\n".join(lines) + "\n"


def _exec_lines(policy: dict | None, section: "ExecStatus | None") -> list[str]:
    if policy is None:
        return []
    lines = []
    d = policy["defaults"]
    if policy.get("problem"):
        lines.append(f"exec:      NOT IN FORCE, every command denied: {policy['problem']}")
    else:
        entries = sum(len(a["allowlist"]) for a in policy["agents"].values())
        lines.append(f"exec:      security={d['security']} ask={d['ask']} askFallback={d['askFallback']}, "
                     f"{entries} allowlist entries (node-agent exec policy)")
    for denial in (section.last_denials if section is not None else ())[-3:]:
        lines.append(f"  denied:  {denial.command} ({denial.reason})")
    return lines


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
