"""The secret stores: one contract for all three backends, then each failure the agent must survive.

No test touches the real OS keyring: every keyring test injects a backend object. Timeouts run
on ``autojump_clock`` and are asserted to the virtual second; no test sleeps.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import stat
import threading
import traceback
from pathlib import Path

import keyring.backend
import keyring.errors
import pytest
import trio
from keyring.backends import fail, null

from node_agent.errors import ConfigError, Retry, SecretStoreError
from node_agent.secret import Secret
from node_agent.secrets import (
    DEVICE_KEY,
    MARKER_FILE,
    SECRETS_FILE,
    FileStore,
    KeyringStore,
    MemoryStore,
    describe_store,
    device_token_key,
    keyring_service,
    open_store,
)

PLAIN = "s3cr3t-VALUE-never-printed"
SECRET = Secret(PLAIN)
OLD_PLAIN = "0ld-s3cr3t-also-never-printed"
TOKEN_KEY = device_token_key("ws://gw.local:18789")


# --- keyring doubles --------------------------------------------------------------------------


class MemoryKeyring(keyring.backend.KeyringBackend):
    """A working keyring that keeps passwords in a dict and records every call."""

    priority = 1

    def __init__(self) -> None:
        super().__init__()
        self.passwords: dict[tuple[str, str], str] = {}
        self.calls: list[tuple[str, str, str]] = []

    def get_password(self, service, username):
        self.calls.append(("get", service, username))
        return self.passwords.get((service, username))

    def set_password(self, service, username, password):
        self.calls.append(("set", service, username))
        self.passwords[(service, username)] = password

    def delete_password(self, service, username):
        self.calls.append(("delete", service, username))
        try:
            del self.passwords[(service, username)]
        except KeyError:
            raise keyring.errors.PasswordDeleteError("Password not found") from None


class RaisingKeyring(MemoryKeyring):
    """Present, but every call fails the way a locked or broken keyring does."""

    def __init__(self, exc: Exception) -> None:
        super().__init__()
        self.exc = exc

    def get_password(self, service, username, *password):
        raise self.exc

    set_password = delete_password = get_password


class HangingKeyring(MemoryKeyring):
    """A Secret Service waiting for an unlock prompt nobody will answer."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def get_password(self, service, username):
        # The cap only matters if a test forgets its timeout: it fails after a minute instead
        # of hanging the run. The teardown releases the thread at once in every real case.
        self.release.wait(60)
        return None


class LeakyKeyring(MemoryKeyring):
    """A backend whose error message repeats the password it was given."""

    def set_password(self, service, username, password):
        raise keyring.errors.PasswordSetError(f"could not store {password!r} for {username}")


class StubbornDeleteKeyring(MemoryKeyring):
    """Refuses deletes with the same error it would use for "not found"."""

    def delete_password(self, service, username):
        raise keyring.errors.PasswordDeleteError("Can't delete password in keychain")


# keyring registers every backend subclass for its own discovery; keep our doubles out of it,
# so no other test (or a later keyring.get_keyring()) ever picks one up.
for _cls in (MemoryKeyring, RaisingKeyring, HangingKeyring, LeakyKeyring, StubbornDeleteKeyring):
    keyring.backend.KeyringBackend._classes.discard(_cls)


# --- helpers ----------------------------------------------------------------------------------


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def hanging():
    kr = HangingKeyring()
    yield kr
    kr.release.set()  # let the abandoned worker thread finish


@pytest.fixture(autouse=True)
def _capture_all(caplog):
    caplog.set_level(logging.DEBUG, logger="node_agent")


def agent_records(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith("node_agent")]


def assert_no_leak(caplog, *things: object) -> None:
    """No secret value in the log, nor in any exception's text, repr, hint or traceback."""
    texts = [caplog.text] + [r.getMessage() for r in caplog.records]
    for thing in things:
        texts += [str(thing), repr(thing)]
        if isinstance(thing, BaseException):
            texts.append("".join(traceback.format_exception(thing)))
            texts.append(str(getattr(thing, "hint", "")))
    for text in texts:
        assert PLAIN not in text
        assert OLD_PLAIN not in text


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def read_json(path: Path) -> dict[str, str]:
    return json.loads(path.read_text())


async def seeded_file(state_dir: Path) -> FileStore:
    state_dir.mkdir(parents=True, exist_ok=True)
    store = FileStore(state_dir / SECRETS_FILE)
    await store.set(DEVICE_KEY, Secret(OLD_PLAIN))
    return store


def temp_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


# --- the contract, for every backend ----------------------------------------------------------


BACKENDS = ["memory", "file", "keyring"]


async def open_backend(kind: str, state_dir: Path):
    return await open_store(state_dir, backend=kind, keyring_backend=MemoryKeyring())


@pytest.mark.parametrize("kind", BACKENDS)
async def test_contract_set_get_overwrite_delete(kind, state_dir, caplog):
    store = await open_backend(kind, state_dir)
    assert store.name == kind

    assert await store.get(DEVICE_KEY) is None
    await store.set(DEVICE_KEY, Secret(OLD_PLAIN))
    await store.set(TOKEN_KEY, SECRET)
    assert await store.get(DEVICE_KEY) == Secret(OLD_PLAIN)
    assert await store.get(TOKEN_KEY) == SECRET

    await store.set(DEVICE_KEY, SECRET)  # overwrite
    assert await store.get(DEVICE_KEY) == SECRET

    await store.delete(DEVICE_KEY)
    assert await store.get(DEVICE_KEY) is None
    assert await store.get(TOKEN_KEY) == SECRET  # the other key survives
    await store.delete(DEVICE_KEY)  # deleting a missing key is not an error
    await store.delete("never-set")

    assert_no_leak(caplog, store)
    assert agent_records(caplog) == []


@pytest.mark.parametrize("kind", BACKENDS)
async def test_contract_values_round_trip_exactly(kind, state_dir):
    store = await open_backend(kind, state_dir)
    odd = ["", " padded ", 'quote " and \\ backslash', "line\nbreak", "ünïcødé ✓ 🔑", "x" * 4096]
    for i, plain in enumerate(odd):
        await store.set(f"k{i}", Secret(plain))
    for i, plain in enumerate(odd):
        got = await store.get(f"k{i}")
        assert got is not None and got.reveal() == plain


@pytest.mark.parametrize("kind", BACKENDS)
async def test_contract_refuses_plain_strings(kind, state_dir):
    store = await open_backend(kind, state_dir)
    with pytest.raises(TypeError, match="Secret"):
        await store.set(DEVICE_KEY, PLAIN)  # type: ignore[arg-type]
    assert await store.get(DEVICE_KEY) is None


async def test_file_store_survives_a_restart(state_dir):
    first = await open_store(state_dir, backend="file")
    await first.set(DEVICE_KEY, SECRET)
    second = await open_store(state_dir, backend="file")
    assert await second.get(DEVICE_KEY) == SECRET


async def test_unknown_backend_is_a_config_error(state_dir):
    with pytest.raises(ConfigError, match="unknown secret backend 'vault'"):
        await open_store(state_dir, backend="vault")


# --- auto: choosing once ----------------------------------------------------------------------


async def test_auto_prefers_a_working_keyring_and_remembers_it(state_dir, caplog):
    kr = MemoryKeyring()
    store = await open_store(state_dir, keyring_backend=kr)
    assert isinstance(store, KeyringStore)
    assert (state_dir / MARKER_FILE).read_text() == "keyring\n"
    assert agent_records(caplog) == []

    await store.set(DEVICE_KEY, SECRET)
    assert kr.passwords == {(keyring_service(state_dir), DEVICE_KEY): PLAIN}
    assert not (state_dir / SECRETS_FILE).exists()

    again = await open_store(state_dir, keyring_backend=kr)
    assert isinstance(again, KeyringStore)
    assert await again.get(DEVICE_KEY) == SECRET


@pytest.mark.parametrize("backend", [fail.Keyring(), null.Keyring()], ids=["fail", "null"])
async def test_auto_without_keyring_falls_back_to_file_with_one_line(backend, state_dir, caplog):
    store = await open_store(state_dir, keyring_backend=backend)
    assert isinstance(store, FileStore)
    assert store.path == state_dir.resolve() / SECRETS_FILE
    assert (state_dir / MARKER_FILE).read_text() == "file\n"

    [record] = agent_records(caplog)
    assert record.levelno == logging.WARNING
    message = record.getMessage()
    assert message.startswith(f"OS keyring unavailable; storing secrets in {store.path} (mode 0600). "
                              "Reason: no usable OS keyring")

    await store.set(DEVICE_KEY, SECRET)
    assert mode_of(store.path) == 0o600
    assert len(agent_records(caplog)) == 1
    assert_no_leak(caplog)


@pytest.mark.parametrize(
    "exc",
    [keyring.errors.KeyringLocked("Failed to unlock the collection!"),
     keyring.errors.NoKeyringError("No recommended backend"),
     RuntimeError("dbus went away"),
     OSError(errno.ECONNREFUSED, "Connection refused")],
    ids=["locked", "no-keyring", "runtime", "os"],
)
async def test_auto_with_a_raising_keyring_falls_back_to_file(exc, state_dir, caplog):
    store = await open_store(state_dir, keyring_backend=RaisingKeyring(exc))
    assert isinstance(store, FileStore)
    [record] = agent_records(caplog)
    assert f"{type(exc).__name__}: {exc}" in record.getMessage()
    assert (state_dir / MARKER_FILE).read_text() == "file\n"


async def test_auto_with_a_hanging_keyring_gives_up_at_the_timeout(state_dir, hanging, caplog,
                                                                   autojump_clock):
    store = await open_store(state_dir, keyring_backend=hanging)
    assert trio.current_time() == pytest.approx(3.0)
    assert isinstance(store, FileStore)
    [record] = agent_records(caplog)
    assert "keyring did not answer within 3 s" in record.getMessage()

    await store.set(DEVICE_KEY, SECRET)  # the file store works while the keyring thread is stuck
    assert await store.get(DEVICE_KEY) == SECRET
    assert trio.current_time() == pytest.approx(3.0)


async def test_auto_honours_a_custom_timeout(state_dir, hanging, autojump_clock):
    await open_store(state_dir, keyring_backend=hanging, timeout=0.25)
    assert trio.current_time() == pytest.approx(0.25)


async def test_marker_file_sticks_even_when_the_keyring_comes_back(state_dir, caplog):
    first = await open_store(state_dir, keyring_backend=fail.Keyring())
    await first.set(DEVICE_KEY, SECRET)
    caplog.clear()

    kr = MemoryKeyring()
    second = await open_store(state_dir, keyring_backend=kr)
    assert isinstance(second, FileStore)
    assert await second.get(DEVICE_KEY) == SECRET
    assert kr.calls == []  # not even probed
    assert agent_records(caplog) == []


async def test_marker_keyring_with_a_failing_keyring_does_not_fall_back(state_dir, caplog):
    await open_store(state_dir, keyring_backend=MemoryKeyring())  # chose the keyring once
    caplog.clear()

    with pytest.raises(SecretStoreError) as info:
        await open_store(state_dir, keyring_backend=fail.Keyring())
    err = info.value
    assert err.retry is Retry.TRANSIENT
    assert "secrets are in the OS keyring" in err.message
    assert "no usable OS keyring" in err.message
    assert err.hint and MARKER_FILE in err.hint
    assert not (state_dir / SECRETS_FILE).exists()
    assert (state_dir / MARKER_FILE).read_text() == "keyring\n"
    assert agent_records(caplog) == []


async def test_marker_keyring_with_a_hanging_keyring_times_out(state_dir, hanging, autojump_clock):
    (state_dir).mkdir()
    (state_dir / MARKER_FILE).write_text("keyring\n")
    with pytest.raises(SecretStoreError, match="did not answer within 3 s") as info:
        await open_store(state_dir, keyring_backend=hanging)
    assert info.value.retry is Retry.TRANSIENT
    assert trio.current_time() == pytest.approx(3.0)
    assert not (state_dir / SECRETS_FILE).exists()


async def test_existing_secrets_file_without_marker_is_kept(state_dir, caplog):
    await seeded_file(state_dir)
    kr = MemoryKeyring()
    store = await open_store(state_dir, keyring_backend=kr)
    assert isinstance(store, FileStore)
    assert await store.get(DEVICE_KEY) == Secret(OLD_PLAIN)
    assert kr.calls == []
    assert (state_dir / MARKER_FILE).read_text() == "file\n"
    assert agent_records(caplog) == []


async def test_unknown_marker_is_fatal(state_dir):
    state_dir.mkdir()
    (state_dir / MARKER_FILE).write_text("vault\n")
    with pytest.raises(SecretStoreError, match="expected 'keyring' or 'file'") as info:
        await open_store(state_dir, keyring_backend=MemoryKeyring())
    assert info.value.retry is Retry.FATAL


async def test_explicit_keyring_fails_early_without_a_keyring(state_dir):
    with pytest.raises(SecretStoreError, match="no usable OS keyring"):
        await open_store(state_dir, backend="keyring", keyring_backend=fail.Keyring())


# --- describing the choice (doctor) ---------------------------------------------------------------


def listing(directory: Path) -> list[str] | None:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else None


async def stage(state_dir: Path, setup: str) -> None:
    if setup == "fresh":
        return
    state_dir.mkdir()
    if setup == "secrets.json":
        await FileStore(state_dir / SECRETS_FILE).set(DEVICE_KEY, SECRET)
    else:
        (state_dir / MARKER_FILE).write_text(setup.removeprefix("marker ") + "\n")


@pytest.mark.parametrize("setup, keyring_works, backend, reason", [
    ("fresh", True, "keyring", "the keyring answers: the first start will choose it"),
    ("fresh", False, "file", "the first start will choose it: "),
    ("marker file", True, "file", "chosen earlier, per "),
    ("marker keyring", True, "keyring", "chosen earlier, per "),
    ("secrets.json", True, "file", "secrets.json exists; the next start records that choice"),
])
async def test_describing_the_choice_writes_nothing_and_names_what_open_store_then_opens(
        state_dir, setup, keyring_works, backend, reason):
    kr = MemoryKeyring() if keyring_works else fail.Keyring()
    await stage(state_dir, setup)
    before = listing(state_dir)
    choice = await describe_store(state_dir, keyring_backend=kr)
    assert listing(state_dir) == before  # no directory made, no marker written
    assert (choice.backend, choice.error) == (backend, None) and choice.reason.startswith(reason)
    assert (choice.keyring_error is not None) == (not keyring_works)

    store = await open_store(state_dir, keyring_backend=kr)
    assert type(store) is type(choice.store) and store.name == backend
    assert (state_dir / MARKER_FILE).read_text().strip() == (choice.record or setup.removeprefix("marker "))


@pytest.mark.parametrize("marker", ["keyring", "vault"])
async def test_describing_a_choice_that_cannot_be_used_gives_the_error_open_store_raises(state_dir, marker):
    state_dir.mkdir()
    (state_dir / MARKER_FILE).write_text(marker + "\n")
    choice = await describe_store(state_dir, keyring_backend=fail.Keyring())
    assert choice.store is None and choice.error is not None
    with pytest.raises(SecretStoreError) as info:
        await open_store(state_dir, keyring_backend=fail.Keyring())
    assert (info.value.message, info.value.hint, info.value.retry) == (
        choice.error.message, choice.error.hint, choice.error.retry)


async def test_describing_an_explicit_backend_needs_no_marker(state_dir):
    choice = await describe_store(state_dir, backend="file")
    assert (choice.backend, choice.marker, choice.record) == ("file", None, None)
    assert isinstance(choice.store, FileStore) and not state_dir.exists()
    choice = await describe_store(state_dir, backend="keyring", keyring_backend=fail.Keyring())
    assert choice.store is None and "no usable OS keyring" in choice.error.message
    assert isinstance((await describe_store(state_dir, backend="memory")).store, MemoryStore)
    with pytest.raises(ConfigError):
        await describe_store(state_dir, backend="vault")


# --- keyring store ----------------------------------------------------------------------------


def test_service_name_is_stable_and_per_state_dir(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    service = keyring_service(a)
    assert service.startswith("node-agent:") and len(service) == len("node-agent:") + 12
    assert keyring_service(tmp_path / "x" / ".." / "a") == service
    assert keyring_service(b) != service


async def test_two_state_dirs_share_a_keyring_without_colliding(tmp_path):
    kr = MemoryKeyring()
    one = await open_store(tmp_path / "one", backend="keyring", keyring_backend=kr)
    two = await open_store(tmp_path / "two", backend="keyring", keyring_backend=kr)
    await one.set(DEVICE_KEY, SECRET)
    assert await two.get(DEVICE_KEY) is None
    await two.set(DEVICE_KEY, Secret(OLD_PLAIN))
    assert await one.get(DEVICE_KEY) == SECRET


async def test_keyring_errors_become_secret_store_errors(caplog):
    store = KeyringStore("svc", backend=RaisingKeyring(keyring.errors.KeyringLocked("locked")))
    for call in (lambda: store.get(DEVICE_KEY), lambda: store.set(DEVICE_KEY, SECRET),
                 lambda: store.delete(DEVICE_KEY)):
        with pytest.raises(SecretStoreError, match="KeyringLocked: locked") as info:
            await call()
        assert info.value.retry is Retry.TRANSIENT
        assert isinstance(info.value.__cause__, keyring.errors.KeyringLocked)
        assert_no_leak(caplog, info.value)


async def test_keyring_error_text_is_scrubbed_of_the_value(caplog):
    store = KeyringStore("svc", backend=LeakyKeyring())
    with pytest.raises(SecretStoreError, match="PasswordSetError") as info:
        await store.set(DEVICE_KEY, SECRET)
    assert "***" in info.value.message
    assert info.value.__cause__ is None  # the original names the value: not chained
    assert_no_leak(caplog, info.value)


async def test_keyring_delete_of_a_present_key_that_fails_is_an_error():
    kr = StubbornDeleteKeyring()
    store = KeyringStore("svc", backend=kr)
    await store.delete(DEVICE_KEY)  # missing: fine, whatever the backend says
    await store.set(DEVICE_KEY, SECRET)
    with pytest.raises(SecretStoreError, match="delete of 'device-key' failed"):
        await store.delete(DEVICE_KEY)


async def test_a_stuck_keyring_costs_one_thread_and_every_call_its_timeout(hanging, autojump_clock):
    store = KeyringStore("svc", timeout=3.0, backend=hanging)
    with pytest.raises(SecretStoreError, match="within 3 s"):
        await store.get(DEVICE_KEY)
    assert trio.current_time() == pytest.approx(3.0)
    # The first thread is still stuck; the second call waits for it and gives up on time.
    with pytest.raises(SecretStoreError, match="within 3 s"):
        await store.get(DEVICE_KEY)
    assert trio.current_time() == pytest.approx(6.0)


async def test_keyring_store_repr_shows_no_value(caplog):
    store = KeyringStore("svc", backend=MemoryKeyring())
    await store.set(DEVICE_KEY, SECRET)
    assert repr(store) == "KeyringStore(service='svc', backend=MemoryKeyring, timeout=3)"
    assert_no_leak(caplog, store)


# --- file store: permissions ------------------------------------------------------------------


async def test_file_is_created_0600(state_dir):
    store = await open_store(state_dir, backend="file")
    await store.set(DEVICE_KEY, SECRET)
    assert mode_of(store.path) == 0o600
    assert mode_of(state_dir) == 0o700
    assert read_json(store.path) == {DEVICE_KEY: PLAIN}


async def test_loose_file_is_tightened_with_one_warning(state_dir, caplog):
    store = await seeded_file(state_dir)
    os.chmod(store.path, 0o644)

    assert await store.get(DEVICE_KEY) == Secret(OLD_PLAIN)
    assert mode_of(store.path) == 0o600
    [record] = agent_records(caplog)
    assert record.levelno == logging.WARNING
    assert "had mode 0644" in record.getMessage() and "tightened it to 0600" in record.getMessage()

    await store.get(DEVICE_KEY)
    assert len(agent_records(caplog)) == 1  # tightened once, warned once
    assert_no_leak(caplog)


# --- file store: failures leave the old file ---------------------------------------------------


async def test_crash_between_write_and_rename_loses_nothing(state_dir, monkeypatch, caplog):
    store = await seeded_file(state_dir)

    def crash(src, dst):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(SecretStoreError, match="cannot write secrets file") as info:
        await store.set(DEVICE_KEY, SECRET)
    monkeypatch.undo()

    assert read_json(store.path) == {DEVICE_KEY: OLD_PLAIN}
    assert await FileStore(store.path).get(DEVICE_KEY) == Secret(OLD_PLAIN)
    assert temp_files(state_dir) == []
    assert_no_leak(caplog, info.value)


async def test_stale_temp_files_from_a_crash_are_swept_on_next_write(state_dir):
    store = await seeded_file(state_dir)
    # What a power cut after fsync but before the rename leaves behind.
    stale = state_dir / f".{SECRETS_FILE}.deadbeef0000.tmp"
    stale.write_text(json.dumps({DEVICE_KEY: PLAIN}))
    unrelated = state_dir / "other.tmp"
    unrelated.write_text("not ours")

    assert await FileStore(store.path).get(DEVICE_KEY) == Secret(OLD_PLAIN)  # reads ignore it
    await store.set(TOKEN_KEY, SECRET)
    assert not stale.exists()
    assert unrelated.exists()
    assert read_json(store.path) == {DEVICE_KEY: OLD_PLAIN, TOKEN_KEY: PLAIN}


async def test_disk_full_raises_and_keeps_the_old_file(state_dir, monkeypatch, caplog):
    store = await seeded_file(state_dir)

    def full(fd, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(SecretStoreError, match="no space left on device") as info:
        await store.set(DEVICE_KEY, SECRET)
    monkeypatch.undo()

    assert info.value.retry is Retry.TRANSIENT
    assert "previous contents are intact" in info.value.message
    assert read_json(store.path) == {DEVICE_KEY: OLD_PLAIN}
    assert temp_files(state_dir) == []
    assert_no_leak(caplog, info.value)


async def test_read_only_state_dir_raises_and_keeps_the_old_file(state_dir, monkeypatch, caplog):
    store = await seeded_file(state_dir)
    os.chmod(state_dir, 0o500)
    if os.access(state_dir, os.W_OK):
        # Root ignores mode bits; make the directory behave like a read-only mount instead.
        real_open = os.open

        def read_only_open(path, flags, *args, **kwargs):
            if flags & os.O_CREAT and Path(path).parent == state_dir:
                raise OSError(errno.EROFS, os.strerror(errno.EROFS))
            return real_open(path, flags, *args, **kwargs)

        monkeypatch.setattr(os, "open", read_only_open)
    try:
        with pytest.raises(SecretStoreError, match="cannot write secrets file") as info:
            await store.set(DEVICE_KEY, SECRET)
        assert await store.get(DEVICE_KEY) == Secret(OLD_PLAIN)  # reading still works
    finally:
        monkeypatch.undo()
        os.chmod(state_dir, 0o700)

    assert info.value.retry is Retry.FATAL
    assert info.value.hint and "writable" in info.value.hint
    assert read_json(store.path) == {DEVICE_KEY: OLD_PLAIN}
    assert_no_leak(caplog, info.value)


@pytest.mark.parametrize(
    "content",
    [b"", b"{\"device-key\": \"" + OLD_PLAIN.encode(), b"[1, 2]", b"{\"device-key\": 42}", b"\xff\xfe"],
    ids=["empty", "truncated", "list", "non-string", "not-utf8"],
)
async def test_corrupt_file_is_an_error_not_empty(content, state_dir, caplog):
    state_dir.mkdir()
    path = state_dir / SECRETS_FILE
    path.write_bytes(content)
    os.chmod(path, 0o600)
    store = await open_store(state_dir, keyring_backend=MemoryKeyring())  # auto keeps the file
    assert isinstance(store, FileStore)

    for call in (lambda: store.get(DEVICE_KEY), lambda: store.set(TOKEN_KEY, SECRET),
                 lambda: store.delete(DEVICE_KEY)):
        with pytest.raises(SecretStoreError, match="refusing to treat it as empty") as info:
            await call()
        assert info.value.retry is Retry.FATAL
        assert info.value.__cause__ is None
        assert_no_leak(caplog, info.value)
    assert path.read_bytes() == content  # never overwritten


async def test_unreadable_file_is_an_error(state_dir, monkeypatch):
    store = await seeded_file(state_dir)
    real_open = open

    def denied(file, *args, **kwargs):
        if Path(file) == store.path:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr("builtins.open", denied)
    with pytest.raises(SecretStoreError, match="cannot read secrets file .*Permission denied"):
        await store.get(DEVICE_KEY)


# --- nothing leaks ----------------------------------------------------------------------------


async def test_no_repr_or_log_shows_a_value(state_dir, caplog):
    memory = MemoryStore()
    file = FileStore(state_dir / SECRETS_FILE)
    state_dir.mkdir()
    for store in (memory, file):
        await store.set(DEVICE_KEY, SECRET)
    assert repr(memory) == "MemoryStore(keys=1)"
    assert repr(file) == f"FileStore({str(state_dir / SECRETS_FILE)!r})"
    assert_no_leak(caplog, memory, file, await memory.get(DEVICE_KEY), await file.get(DEVICE_KEY))
