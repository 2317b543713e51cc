"""The ``memory`` backend: a dict that lives as long as the process.

For tests and ``--ephemeral`` runs, where forgetting the identity on exit is the point. It
keeps :class:`~node_agent.secret.Secret` objects as given, so nothing is ever turned back
into a plain string here.
"""

from __future__ import annotations

from ..secret import Secret
from ._values import require_secret


class MemoryStore:
    name = "memory"
    durable = False

    def __init__(self) -> None:
        self._values: dict[str, Secret] = {}

    def __repr__(self) -> str:
        return f"MemoryStore(keys={len(self._values)})"

    async def get(self, key: str) -> Secret | None:
        return self._values.get(key)

    async def set(self, key: str, value: Secret) -> None:
        require_secret(value)
        self._values[key] = value

    async def delete(self, key: str) -> None:
        self._values.pop(key, None)

