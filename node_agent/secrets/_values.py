"""Checks every backend applies to what it is asked to store, before any I/O."""

from __future__ import annotations

from ..secret import Secret


def require_secret(value: object) -> None:
    """A plain ``str`` here means a caller forgot to wrap a token: it would print in clear."""
    if not isinstance(value, Secret):
        raise TypeError(f"secret stores take a Secret, not {type(value).__name__}")


def scrub(text: str, plain: str | None) -> str:
    """Hide ``plain`` in a message that came from code we do not control (a keyring backend)."""
    if plain and plain in text:
        return text.replace(plain, "***")
    return text
