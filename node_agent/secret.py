"""A value that must never be printed: tokens, private keys, bootstrap codes.

``repr``/``str``/``format`` give ``***``; the only way to the plain text is :meth:`Secret.reveal`,
which is easy to grep for. Equality compares in constant time so a token check leaks nothing.
"""

from __future__ import annotations


class Secret:
    __slots__ = ("_value",)

    def __init__(self, value: str):
        if not isinstance(value, str):
            raise TypeError("Secret holds a str")
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    def __str__(self) -> str:
        return "***"

    def __format__(self, spec: str) -> str:
        return "***"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        import hmac  # on first comparison: every command imports this module, few compare

        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self):  # pickling would write the secret somewhere we do not control
        raise TypeError("Secret cannot be pickled")
