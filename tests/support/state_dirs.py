"""State directories for the CLI-level tests: one as ``pair`` leaves it, and the check that
one is whole (identity, key, marker, token agreeing; no temp file left behind)."""

from __future__ import annotations

import json
from pathlib import Path

from node_agent.identity import DeviceIdentity, load_or_create
from node_agent.secret import Secret
from node_agent.secrets import DEVICE_KEY, FileStore, device_token_key
from tests.support.agent_process import secrets_file
from tests.support.documented_gateway import DocumentedGateway


async def paired_directory(gw: DocumentedGateway, state: Path) -> str:
    """A state directory as `pair` leaves it: key, identity.json, marker, a device token."""
    store = FileStore(state / "secrets.json")
    state.mkdir(mode=0o700)
    (state / "secret-backend").write_text("file\n")
    identity, _ = await load_or_create(state, store, platform="linux", device_family="Linux")
    await store.set(device_token_key(gw.url), Secret(gw.issue_token(identity.device_id)))
    return identity.device_id


def assert_identity_intact(state: Path, *, token_for: str | None = None, marker: bool = True) -> str:
    """identity.json, the key, the backend marker (written by ``auto``) and, if asked, the
    token: present, whole, and agreeing; no temp file left. Returns the device id."""
    record = json.loads((state / "identity.json").read_text())
    secrets = secrets_file(state)
    assert DeviceIdentity.from_secret(Secret(secrets[DEVICE_KEY])).device_id == record["deviceId"]
    if marker:
        assert (state / "secret-backend").read_text() == "file\n"
    if token_for is not None:
        assert secrets[device_token_key(token_for)]
    leftovers = [p.name for p in state.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == [], leftovers
    return record["deviceId"]
