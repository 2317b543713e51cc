"""The device identity: an Ed25519 key pair, its derived device id, and how it is kept.

The gateway knows this device by ``sha256(raw public key)`` (64 lowercase hex chars); it pins
the ``platform``/``deviceFamily`` sent at pairing, so those are stored with the identity and
reused on every connect. The private key is a secret and lives in the secret store; the public
half and metadata live in ``identity.json`` in the state directory.

Invariant: an identity that exists but cannot be read **fails closed**. If ``identity.json`` is
present and the key is missing, unreadable or does not match, we raise :class:`IdentityError`
and never generate a replacement: a new key would silently orphan the pairing a person approved.
Only ``node-agent unpair --reset-identity`` starts over.

A store that forgets (``memory``) gets an identity of its own (:func:`ephemeral`) that never
touches the state directory: an ``identity.json`` naming a key nobody kept would make every
later start, with any store, fail closed.

``cryptography`` and the secret stores (which bring Trio) are imported where a key is used, not
at import time: ``node-agent identity`` and ``status`` read ``identity.json`` and need neither.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import IdentityError
from .secret import Secret

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from .secrets.base import SecretStore

IDENTITY_FILE = "identity.json"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class DeviceIdentity:
    """Satisfies :class:`node_agent.protocol.Signer`. ``repr`` shows the id, never the key."""

    __slots__ = ("_key", "_public_raw", "device_id", "public_key")

    def __init__(self, key: "Ed25519PrivateKey"):
        import hashlib

        from cryptography.hazmat.primitives import serialization

        self._key = key
        self._public_raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.device_id = hashlib.sha256(self._public_raw).hexdigest()
        self.public_key = b64url(self._public_raw)

    @classmethod
    def generate(cls) -> "DeviceIdentity":
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_secret(cls, secret: Secret) -> "DeviceIdentity":
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        try:
            raw = b64url_decode(secret.reveal())
            if len(raw) != 32:
                raise ValueError("wrong length")
            return cls(Ed25519PrivateKey.from_private_bytes(raw))
        except (ValueError, TypeError):
            raise IdentityError("the stored device key is not a valid Ed25519 key") from None

    def private_secret(self) -> Secret:
        from cryptography.hazmat.primitives import serialization

        raw = self._key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                       serialization.NoEncryption())
        return Secret(b64url(raw))

    def sign(self, message: str) -> str:
        return b64url(self._key.sign(message.encode("utf-8")))

    @property
    def fingerprint(self) -> str:
        """What a person compares with ``openclaw devices list``: the id's first 16 hex digits."""
        return " ".join(self.device_id[i:i + 4] for i in range(0, 16, 4))

    def __repr__(self) -> str:
        return f"DeviceIdentity(device_id={self.device_id[:12]}…)"


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class IdentityRecord:
    """The public, non-secret half of the identity (``identity.json``)."""

    device_id: str
    public_key: str
    instance_id: str
    platform: str
    device_family: str
    created_at_ms: int

    def to_json(self) -> dict[str, Any]:
        return {"version": 1, "deviceId": self.device_id, "publicKey": self.public_key,
                "instanceId": self.instance_id, "platform": self.platform,
                "deviceFamily": self.device_family, "createdAtMs": self.created_at_ms}

    @classmethod
    def from_json(cls, data: Any) -> "IdentityRecord":
        try:
            return cls(device_id=str(data["deviceId"]), public_key=str(data["publicKey"]),
                       instance_id=str(data["instanceId"]), platform=str(data["platform"]),
                       device_family=str(data["deviceFamily"]), created_at_ms=int(data["createdAtMs"]))
        except (KeyError, TypeError, ValueError):
            raise IdentityError(f"{IDENTITY_FILE} is missing fields or malformed") from None


def read_record(state_dir: Path) -> IdentityRecord | None:
    path = state_dir / IDENTITY_FILE
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise IdentityError(f"cannot read {path}: {exc.strerror}") from None
    try:
        return IdentityRecord.from_json(json.loads(text))
    except ValueError:
        raise IdentityError(f"{path} is not valid JSON; refusing to replace the identity",
                            hint="restore it from a backup, or start over with `node-agent unpair --reset-identity`") from None


def write_record(state_dir: Path, record: IdentityRecord) -> None:
    from .atomic import atomic_write  # the same crash-safe write the secret file uses

    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    atomic_write(state_dir / IDENTITY_FILE, (json.dumps(record.to_json(), indent=2) + "\n").encode())


def ephemeral(*, platform: str, device_family: str) -> tuple[DeviceIdentity, IdentityRecord]:
    """A new identity for this process only (the ``memory`` store): nothing is read from or
    written to the state directory."""
    identity = DeviceIdentity.generate()
    return identity, _new_record(identity, platform, device_family)


def _new_record(identity: DeviceIdentity, platform: str, device_family: str) -> IdentityRecord:
    import uuid  # with platform and friends: not for the commands that only read the record

    return IdentityRecord(device_id=identity.device_id, public_key=identity.public_key, instance_id=str(uuid.uuid4()),
                          platform=platform, device_family=device_family, created_at_ms=int(time.time() * 1000))


def missing_key_hint(store_name: str, state_dir: Path) -> str:
    """What to do when ``identity.json`` names a key the store does not have: only the keyring
    can be locked; a file store's key is in ``secrets.json``, which a backup can bring back."""
    from .secrets.selection import SECRETS_FILE

    reset = "to start over (a new device, paired again): `node-agent unpair --reset-identity`"
    if store_name == "keyring":
        return f"if the OS keyring is locked, unlock it (or start its service); {reset}"
    if store_name == "file":
        return f"restore {state_dir / SECRETS_FILE} from a backup (it holds the key); {reset}"
    return reset


async def load_or_create(state_dir: Path, store: "SecretStore", *, platform: str, device_family: str,
                         create: bool = True) -> tuple[DeviceIdentity, IdentityRecord]:
    """Load this device's identity, creating it on first run.

    Order on creation: the key goes to the secret store first, ``identity.json`` second, so a
    crash in between leaves a key we can rebuild the record from (never a record without a key).
    """
    import trio

    from .secrets.base import DEVICE_KEY

    record = await trio.to_thread.run_sync(read_record, state_dir)
    secret = await store.get(DEVICE_KEY)
    if record is not None:
        if secret is None:
            raise IdentityError(
                f"{state_dir / IDENTITY_FILE} names device {record.device_id[:12]}… but its private key "
                f"is not in the {store.name} secret store; refusing to create a new identity",
                hint=missing_key_hint(store.name, state_dir))
        identity = DeviceIdentity.from_secret(secret)
        if identity.device_id != record.device_id:
            raise IdentityError(
                f"the private key in the {store.name} store does not match {IDENTITY_FILE} "
                f"({identity.device_id[:12]}… vs {record.device_id[:12]}…); refusing to guess")
        return identity, record

    if secret is not None:
        identity = DeviceIdentity.from_secret(secret)  # crash after storing the key: rebuild the record
    elif not create:
        raise IdentityError("this device has no identity yet", hint="run `node-agent pair` first")
    else:
        identity = DeviceIdentity.generate()
        await store.set(DEVICE_KEY, identity.private_secret())
    record = _new_record(identity, platform, device_family)
    try:
        await trio.to_thread.run_sync(write_record, state_dir, record)
    except OSError as exc:
        # The key is stored; the next start rebuilds this record from it (see above).
        raise IdentityError(f"cannot write {state_dir / IDENTITY_FILE}: {exc.strerror or type(exc).__name__}",
                            hint=f"Make {state_dir} writable by the user the agent runs as, or use "
                                 "another state directory.") from None
    return identity, record
