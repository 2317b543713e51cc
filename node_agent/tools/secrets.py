"""Which tool arguments may be written to the audit log, and in what form.

MCP has no field for "this argument is a secret", so a tool's input schema speaks for it the way
JSON Schema already can: a property with ``"writeOnly": true`` or ``"format": "password"`` (what
form builders and OpenAPI use for credentials) is secret, and so is everything under it. A name
that says credential (``password``, ``token``, ``api_key``, ``secret``, ``private_key``...) is
secret whatever the schema says, because most servers' schemas say nothing. Secret values are
written as ``***``; the others are kept short (a few hundred characters), never whole documents.
The tool's output never reaches the audit at all.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

MASK = "***"
_VALUE_MAX = 200
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_SECRET_WORDS = re.compile(
    r"(?:^|_)(?:password|passwd|passphrase|secret|token|apikey|api_key|credentials?|private_key|"
    r"auth|authorization|cookie|session_key)(?:$|_)")


def secret_name(name: str) -> bool:
    return bool(_SECRET_WORDS.search(_CAMEL.sub("_", name).replace("-", "_").lower()))


def marked_secret(schema: Any) -> bool:
    """Does this (sub)schema mark a value, or anything inside it, as secret?"""
    if isinstance(schema, Mapping):
        if schema.get("writeOnly") is True or schema.get("format") == "password":
            return True
        return any(marked_secret(v) for k, v in schema.items() if k != "default")
    if isinstance(schema, list):
        return any(marked_secret(v) for v in schema)
    return False


def audit_arguments(arguments: Mapping[str, Any], input_schema: Mapping[str, Any] | None) -> dict[str, Any]:
    properties = (input_schema or {}).get("properties")
    properties = properties if isinstance(properties, Mapping) else {}
    out: dict[str, Any] = {}
    for name, value in arguments.items():
        name = str(name)
        out[name] = MASK if secret_name(name) or marked_secret(properties.get(name)) else _short(value)
    return out


def _short(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float)):
        return value
    text = value if isinstance(value, str) else json.dumps(_masked(value), ensure_ascii=False, default=str)
    return text if len(text) <= _VALUE_MAX else text[:_VALUE_MAX - 1] + "…"


def _masked(value: Any) -> Any:
    """A nested value with every secret-named key masked (an unmarked ``config`` object can
    still hold a ``password``)."""
    if isinstance(value, Mapping):
        return {k: MASK if secret_name(str(k)) else _masked(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_masked(v) for v in value]
    return value
