"""The ``identity`` line: ``identity.json`` and the device key in the secret store must agree.

Every mismatch fails closed, as the agent does: it never makes a new identity over one it cannot
read, so doctor never suggests that either, except as the explicit ``unpair --reset-identity``.
"""

from __future__ import annotations

from pathlib import Path

import trio

from ..errors import IdentityError, NodeAgentError
from ..identity import IDENTITY_FILE, DeviceIdentity, missing_key_hint, read_record
from ..secrets import DEVICE_KEY, SecretStore
from .check import Check, fail, ok, warn
from .context import Context

_RESET = "restore the state dir or keyring from a backup; to start over: `node-agent unpair --reset-identity`"


async def check_identity(state_dir: Path, store: SecretStore) -> Check:
    name = "identity"
    if not store.durable:
        return warn(name, f"{store.name} store: each run makes a new identity of its own ({IDENTITY_FILE} is "
                          "neither read nor written)", "use a store that keeps the identity to stay paired")
    try:
        record = await trio.to_thread.run_sync(read_record, state_dir)
    except IdentityError as exc:
        return fail(name, exc.message, exc.hint or _RESET)
    try:
        secret = await store.get(DEVICE_KEY)
    except NodeAgentError as exc:
        return fail(name, f"cannot read the device key from the {store.name} store: {exc.message}",
                    exc.hint or "make the secret store readable (see the secret store line)")
    if record is None and secret is None:
        return warn(name, "no identity yet (the first start creates one)", "run `node-agent pair`")
    try:
        identity = DeviceIdentity.from_secret(secret) if secret is not None else None
    except IdentityError as exc:
        return fail(name, f"{exc.message} ({store.name} store)", _RESET)
    if record is None:
        assert identity is not None
        return warn(name, f"device key {identity.device_id[:12]}… is in the {store.name} store but "
                          f"{IDENTITY_FILE} is missing (the next start rebuilds it from the key)",
                    "start the agent once, or run `node-agent pair`")
    if identity is None:
        return fail(name, f"{IDENTITY_FILE} names device {record.device_id[:12]}… but its private key is not in "
                          f"the {store.name} store; the agent refuses to start rather than make a new identity",
                    missing_key_hint(store.name, state_dir))
    if identity.device_id != record.device_id:
        return fail(name, f"the key in the {store.name} store ({identity.device_id[:12]}…) does not match "
                          f"{IDENTITY_FILE} ({record.device_id[:12]}…); the agent refuses to guess", _RESET)
    return ok(name, f"device {identity.fingerprint} ({record.platform}/{record.device_family}), key in the "
                    f"{store.name} store")


async def run(ctx: Context) -> Check:
    assert ctx.store is not None
    return await check_identity(ctx.cfg.state_dir, ctx.store)
