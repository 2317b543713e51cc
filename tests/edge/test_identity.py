"""The device identity: stable, derived correctly, and failing closed when it cannot be read."""

from __future__ import annotations

import json

import pytest

from node_agent.errors import IdentityError
from node_agent.identity import DeviceIdentity, load_or_create, read_record
from node_agent.secret import Secret
from node_agent.secrets import DEVICE_KEY, FileStore, MemoryStore


async def test_first_run_creates_then_later_runs_load_the_same_identity(tmp_path):
    store = MemoryStore()
    first, record = await load_or_create(tmp_path, store, platform="linux", device_family="Linux")
    again, record2 = await load_or_create(tmp_path, store, platform="darwin", device_family="Mac")
    assert again.device_id == first.device_id and record2 == record
    assert record2.platform == "linux"  # pinned at creation: the gateway pinned it at pairing
    assert (tmp_path / "identity.json").stat().st_mode & 0o777 == 0o600
    on_disk = json.loads((tmp_path / "identity.json").read_text())
    assert on_disk["deviceId"] == first.device_id and "private" not in json.dumps(on_disk).lower()


async def test_missing_key_fails_closed_and_never_regenerates(tmp_path):
    store = MemoryStore()
    identity, _ = await load_or_create(tmp_path, store, platform="linux", device_family="Linux")
    await store.delete(DEVICE_KEY)
    with pytest.raises(IdentityError, match="refusing to create a new identity") as info:
        await load_or_create(tmp_path, store, platform="linux", device_family="Linux")
    assert "unpair --reset-identity" in info.value.hint
    assert read_record(tmp_path).device_id == identity.device_id  # untouched
    assert await store.get(DEVICE_KEY) is None  # and nothing new was written


async def test_mismatched_key_fails_closed(tmp_path):
    store = MemoryStore()
    await load_or_create(tmp_path, store, platform="linux", device_family="Linux")
    await store.set(DEVICE_KEY, DeviceIdentity.generate().private_secret())
    with pytest.raises(IdentityError, match="does not match"):
        await load_or_create(tmp_path, store, platform="linux", device_family="Linux")


async def test_corrupt_identity_file_fails_closed(tmp_path):
    store = MemoryStore()
    await load_or_create(tmp_path, store, platform="linux", device_family="Linux")
    (tmp_path / "identity.json").write_text("{not json")
    with pytest.raises(IdentityError, match="not valid JSON"):
        await load_or_create(tmp_path, store, platform="linux", device_family="Linux")


async def test_garbage_key_is_an_identity_error(tmp_path):
    store = MemoryStore()
    await store.set(DEVICE_KEY, Secret("this is not a key at all"))
    with pytest.raises(IdentityError, match="not a valid Ed25519 key"):
        await load_or_create(tmp_path, store, platform="linux", device_family="Linux")


async def test_crash_after_storing_the_key_recovers_the_record(tmp_path):
    store = FileStore(tmp_path / "secrets.json")
    identity = DeviceIdentity.generate()
    await store.set(DEVICE_KEY, identity.private_secret())  # the crash came before identity.json
    loaded, record = await load_or_create(tmp_path, store, platform="linux", device_family="Linux")
    assert loaded.device_id == identity.device_id == record.device_id


async def test_create_false_does_not_create(tmp_path):
    with pytest.raises(IdentityError, match="no identity yet"):
        await load_or_create(tmp_path, MemoryStore(), platform="linux", device_family="Linux", create=False)


def test_signature_verifies_and_key_round_trips():
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from node_agent.identity import b64url_decode

    identity = DeviceIdentity.generate()
    clone = DeviceIdentity.from_secret(identity.private_secret())
    assert clone.device_id == identity.device_id
    signature = identity.sign("v3|payload")
    Ed25519PublicKey.from_public_bytes(b64url_decode(identity.public_key)).verify(
        b64url_decode(signature), b"v3|payload")
    assert len(identity.fingerprint.replace(" ", "")) == 16
