"""Where the agent keeps its secrets: the device key and the device tokens.

Public surface (everything else in this package is private)::

    store = await open_store(state_dir)            # "auto": keyring if it answers, else file
    await store.set(DEVICE_KEY, Secret(...))
    key = await store.get(DEVICE_KEY)              # Secret | None

    choice = await describe_store(state_dir)     # which one, and why (read-only: doctor)

See :mod:`.base` for the interface and the backends, :mod:`.selection` for how ``auto``
chooses, and why it chooses only once per state directory.

Import rule: an I/O edge beside the transport; it imports ``errors``, ``secret`` and ``atomic``
only, and knows nothing of the wire or of pairing.
"""

from .base import DEVICE_KEY, SecretStore, device_token_key
from .file_store import FileStore
from .keyring_store import KeyringStore
from .memory_store import MemoryStore
from .selection import BACKENDS, MARKER_FILE, SECRETS_FILE, StoreChoice, describe_store, keyring_service, open_store

__all__ = [
    "BACKENDS",
    "DEVICE_KEY",
    "MARKER_FILE",
    "SECRETS_FILE",
    "FileStore",
    "KeyringStore",
    "MemoryStore",
    "SecretStore",
    "StoreChoice",
    "describe_store",
    "device_token_key",
    "keyring_service",
    "open_store",
]
