"""The secret-store interface: three small async methods, three backends.

Backends (see :func:`node_agent.secrets.open_store`):

* ``keyring``: the OS keyring (macOS Keychain, Windows Credential Manager, Secret Service).
  Every call runs in a worker thread under a timeout, because a locked Secret Service can
  block forever waiting for a prompt nobody will see.
* ``file``: one JSON file, mode 0600, in the state directory; written atomically (temp file,
  fsync, rename, fsync of the directory) so a crash or a full disk leaves the old contents.
* ``memory``: a dict, for tests and for ``--ephemeral`` runs.

Keys are short strings such as ``device-key`` or ``device-token:node@ws://host:18789``. Values
are :class:`~node_agent.secret.Secret`. Failures raise
:class:`~node_agent.errors.SecretStoreError` (never ``keyring`` or ``OSError`` directly), and no
message ever contains a value.
"""

from __future__ import annotations

from typing import Protocol

from ..secret import Secret

#: Where the private half of the device identity lives.
DEVICE_KEY = "device-key"


def device_token_key(gateway_url: str, role: str = "node") -> str:
    """Device tokens are per gateway and role (a device may be paired to two gateways)."""
    return f"device-token:{role}@{gateway_url}"


class SecretStore(Protocol):
    #: "keyring", "file" or "memory": shown by ``status`` and ``doctor``.
    name: str
    #: False for a store that forgets everything when the process ends (``memory``): nothing
    #: durable may be built on it (no identity file names its key; ``pair`` refuses it).
    durable: bool

    async def get(self, key: str) -> Secret | None: ...

    async def set(self, key: str, value: Secret) -> None: ...

    async def delete(self, key: str) -> None:
        """Remove ``key``; removing a missing key is not an error."""
        ...
