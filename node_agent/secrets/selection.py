"""Choosing a secret store once, and choosing the same one on every later start.

The device identity is created on the first start and must be found on every start after.
With ``backend="auto"`` the choice is therefore made once and written to a marker file,
``<state_dir>/secret-backend`` (``keyring`` or ``file``); later starts obey the marker and
never probe again. Without that, a keyring that is up on Monday and down on Tuesday would
send Tuesday's start to an empty file, and the agent would make itself a new identity.

Rules, in order, for ``auto``:

1. Marker ``file``: the file store, no probe.
2. Marker ``keyring``: the keyring if it answers a probe in time; otherwise
   :class:`~node_agent.errors.SecretStoreError` (``TRANSIENT``). Never a silent fall-back:
   the identity is in the keyring, and the file does not have it.
3. No marker, but ``secrets.json`` exists (an earlier explicit ``file`` run): the file store.
4. No marker: probe the keyring (one harmless read under the timeout). If it answers, the
   keyring; if it is missing, raises or hangs, the file store plus one log line saying why.

The marker is written at selection time, before any secret is stored, rather than lazily
on the first write. Lazily would need a wrapper around every store and would order two writes
in different places (the secret, then the marker): a crash or a full disk between them would
leave a secret in the keyring with no marker pointing at it, which is exactly the loss the
marker exists to prevent. Writing first fails early and cleanly. The cost is that a keyring
chosen on a start that stores nothing is still remembered; a person can delete the marker.

Keyring entries are namespaced per state directory (:func:`keyring_service`), so two agents,
or two test runs, on one account never see each other's secrets.

The rules live once, in :func:`_choose`, which decides without writing anything.
:func:`open_store` acts on the decision (creates the state directory, writes the marker, logs
the fall-back); :func:`describe_store` only reports it, with the reason in words, for
``node-agent doctor``: it never creates the directory or writes the marker, so looking cannot
change what the next start will pick.
"""

from __future__ import annotations

import errno
import hashlib
import logging
from pathlib import Path
from typing import Any

import attrs
import trio

from ..atomic import atomic_write
from ..errors import ConfigError, Retry, SecretStoreError
from ..supervision import after_the_fix
from .base import SecretStore
from .file_store import FileStore
from .keyring_store import KeyringStore
from .memory_store import MemoryStore

log = logging.getLogger(__name__)

SECRETS_FILE = "secrets.json"
MARKER_FILE = "secret-backend"
BACKENDS = ("auto", "keyring", "file", "memory")
_MARKED = ("keyring", "file")


def keyring_service(state_dir: Path) -> str:
    """The keyring "service" for one state directory: stable across starts, unique per dir."""
    digest = hashlib.sha256(str(state_dir.resolve()).encode("utf-8")).hexdigest()
    return f"node-agent:{digest[:12]}"


@attrs.frozen(kw_only=True)
class StoreChoice:
    """Which store :func:`open_store` picks for a state directory, and why.

    ``store`` is the store it would return, or None when it would raise ``error`` instead.
    ``record`` is the marker value it would write first (None: nothing to write), and
    ``keyring_error`` why ``auto`` passed over the keyring, when it did."""

    backend: str
    reason: str
    store: SecretStore | None = None
    error: SecretStoreError | None = None
    marker: Path | None = None
    record: str | None = None
    keyring_error: SecretStoreError | None = None


async def open_store(state_dir: Path, *, backend: str = "auto", timeout: float = 3.0,
                     keyring_backend: Any | None = None) -> SecretStore:
    """Open the secret store for ``state_dir`` (see the module docstring for ``auto``).

    ``keyring_backend`` replaces the process-wide keyring (tests, or a caller that already
    picked one). Raises :class:`SecretStoreError` when the chosen store cannot be used and
    :class:`ConfigError` for an unknown ``backend``.
    """
    _check_backend(backend)
    if backend == "memory":
        return MemoryStore()
    state_dir = await trio.to_thread.run_sync(_prepare, Path(state_dir))
    choice = await _choose(state_dir, backend, timeout, keyring_backend)
    if choice.error is not None:
        raise choice.error
    assert choice.store is not None
    if choice.record is not None and choice.marker is not None:
        await _write_marker(choice.marker, choice.record)
    if choice.keyring_error is not None:
        # The one line a person setting up a headless box needs: where the secrets went and why.
        log.warning("OS keyring unavailable; storing secrets in %s (mode 0600). Reason: %s",
                    getattr(choice.store, "path", state_dir / SECRETS_FILE), choice.keyring_error.message)
    return choice.store


async def describe_store(state_dir: Path, *, backend: str = "auto", timeout: float = 3.0,
                         keyring_backend: Any | None = None) -> StoreChoice:
    """What :func:`open_store` would pick for ``state_dir`` and why, without choosing: no
    directory is created and no marker written (the keyring may be probed, as ``auto`` does: a
    harmless read). The store in the answer is the one ``open_store`` would return."""
    _check_backend(backend)
    if backend == "memory":
        return StoreChoice(backend="memory", reason="memory store: forgotten when the agent exits",
                           store=MemoryStore())
    return await _choose(Path(state_dir).resolve(), backend, timeout, keyring_backend)


def _check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise ConfigError(f"unknown secret backend {backend!r}; expected one of {', '.join(BACKENDS)}")


async def _choose(state_dir: Path, backend: str, timeout: float, keyring_backend: Any | None) -> StoreChoice:
    """The rules of the module docstring, deciding only: nothing is written here."""
    file_store = FileStore(state_dir / SECRETS_FILE)
    keyring_store = KeyringStore(keyring_service(state_dir), timeout, keyring_backend)
    if backend == "file":
        return StoreChoice(backend="file", reason="secret backend 'file' configured", store=file_store)
    if backend == "keyring":
        try:
            await keyring_store.probe()
        except SecretStoreError as exc:
            return StoreChoice(backend="keyring", reason="secret backend 'keyring' configured", error=exc)
        return StoreChoice(backend="keyring", reason="secret backend 'keyring' configured", store=keyring_store)

    marker = state_dir / MARKER_FILE
    try:
        chosen = await trio.to_thread.run_sync(_read_marker, marker)
    except SecretStoreError as exc:
        return StoreChoice(backend="auto", reason=f"cannot tell from {marker}", error=exc, marker=marker)
    if chosen == "file":
        return StoreChoice(backend="file", reason=f"chosen earlier, per {marker}", store=file_store, marker=marker)
    if chosen == "keyring":
        reason = f"chosen earlier, per {marker}"
        try:
            await keyring_store.probe()
        except SecretStoreError as exc:
            error = SecretStoreError(
                f"this device's secrets are in the OS keyring (per {marker}), which is "
                f"unavailable: {exc.message}",
                retry=Retry.TRANSIENT,
                hint=("Make the OS keyring available to the user the agent runs as (unlock it, or "
                      f"start its service); {after_the_fix()}. Deleting {marker} would "
                      "switch to the file store and a new identity (the device must then be "
                      "paired again)."),
            )
            error.__cause__ = exc
            return StoreChoice(backend="keyring", reason=reason, error=error, marker=marker)
        return StoreChoice(backend="keyring", reason=reason, store=keyring_store, marker=marker)

    if await trio.to_thread.run_sync(file_store.path.exists):
        return StoreChoice(backend="file", reason=f"{SECRETS_FILE} exists; the next start records that choice",
                           store=file_store, marker=marker, record="file")
    try:
        await keyring_store.probe()
    except SecretStoreError as exc:
        return StoreChoice(backend="file", reason=f"the first start will choose it: {exc.message}",
                           store=file_store, marker=marker, record="file", keyring_error=exc)
    return StoreChoice(backend="keyring", reason="the keyring answers: the first start will choose it",
                       store=keyring_store, marker=marker, record="keyring")


def _prepare(state_dir: Path) -> Path:
    try:
        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise SecretStoreError(f"cannot create state directory {state_dir}: {exc.strerror}",
                               retry=Retry.FATAL) from None
    # Resolved once, so the keyring service name does not depend on how the path was spelled.
    return state_dir.resolve()


def _read_marker(marker: Path) -> str | None:
    try:
        text = marker.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8"
        raise SecretStoreError(f"cannot read {marker}: {reason}", retry=Retry.FATAL) from None
    if text not in _MARKED:
        raise SecretStoreError(
            f"{marker} says {text[:20]!r}; expected 'keyring' or 'file'", retry=Retry.FATAL,
            hint=f"Write 'keyring' or 'file' into {marker}: whichever holds this device's secrets.")
    return text


async def _write_marker(marker: Path, chosen: str) -> None:
    try:
        await trio.to_thread.run_sync(atomic_write, marker, f"{chosen}\n".encode(), 0o600)
    except OSError as exc:
        raise SecretStoreError(f"cannot record the secret backend in {marker}: {exc.strerror}",
                               retry=Retry.FATAL if exc.errno in _NOT_WRITABLE else Retry.TRANSIENT,
                               hint=f"Make {marker.parent} writable by the user the agent runs as.") from None


_NOT_WRITABLE = {errno.EROFS, errno.EACCES, errno.EPERM}
