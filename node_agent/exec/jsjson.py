"""``JSON.stringify(value, null, 2)`` byte for byte, and the approvals hash built on it.

The gateway identifies an approvals document by ``sha256(JSON.stringify(file, null, 2) + "\\n")``
(``serializeExecApprovals`` / ``hashExecApprovalsRaw`` in ``src/infra/exec-approvals-sqlite.ts``)
and compares that hex string for compare-and-swap. Python's ``json.dumps(indent=2)`` is close but
not equal, so this module writes what V8 writes:

- object keys that are array indices (``"0"``, ``"17"``, canonical, < 2**32 - 1) come first in
  ascending numeric order, then the others in insertion order (ECMA-262 OrdinaryOwnPropertyKeys);
- numbers use ECMAScript Number::toString: an integral value below 1e21 has no ``.0``, exponents
  look like ``1e+21`` / ``1e-7``, NaN and the infinities become ``null``; a Python int beyond
  2**53 is first rounded to a double, as JavaScript's ``JSON.parse`` would have done;
- strings escape ``"``, ``\\``, ``\\b \\f \\n \\r \\t``, other C0 controls as ``\\u00xx`` (lower
  case), lone surrogates as ``\\udxxx`` (ES2019 well-formed stringify); everything else is raw;
- empty objects and arrays are ``{}`` / ``[]``; nested levels indent by two spaces.

Only JSON data types are accepted (dict with str keys, list/tuple, str, int, float, bool, None);
anything else raises TypeError, so a stray object can never change a hash silently.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

__all__ = ["approvals_hash", "missing_hash", "stringify"]

_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_MAX_ARRAY_INDEX = 2**32 - 2


def _is_array_index(key: str) -> bool:
    return key.isascii() and key.isdigit() and (key == "0" or key[0] != "0") and int(key) <= _MAX_ARRAY_INDEX


def _ordered_keys(obj: dict[str, Any]) -> list[str]:
    indices = sorted((k for k in obj if _is_array_index(k)), key=int)
    return indices + [k for k in obj if not _is_array_index(k)]


def _quote(text: str) -> str:
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif code < 0x20 or 0xD800 <= code <= 0xDFFF:
            out.append(f"\\u{code:04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _number(value: float) -> str:
    """ECMAScript Number::toString(value) for a finite, non-integral-or-huge double."""
    if value == 0:
        return "0"
    sign = "-" if value < 0 else ""
    from decimal import Decimal  # here: documents rarely hold a fraction, and `status` reads them

    # repr() gives the shortest digit string that round-trips, exactly what V8 chooses too;
    # only the placement of the decimal point and the exponent format differ.
    parts = Decimal(repr(abs(value))).normalize().as_tuple()
    digits = "".join(map(str, parts.digits))
    point = len(digits) + int(parts.exponent)  # value = 0.digits * 10**point
    k, n = len(digits), point
    if k <= n <= 21:
        return sign + digits + "0" * (n - k)
    if 0 < n <= 21:
        return sign + digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return sign + "0." + "0" * (-n) + digits
    exponent = n - 1
    exp = f"e+{exponent}" if exponent >= 0 else f"e-{-exponent}"
    if k == 1:
        return sign + digits + exp
    return sign + digits[0] + "." + digits[1:] + exp


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        if abs(value) <= 2**53:
            return str(value)
        value = float(value)  # what JSON.parse would have made of it
    if isinstance(value, float):
        if not math.isfinite(value):
            return "null"
        return _number(value)
    if isinstance(value, str):
        return _quote(value)
    raise TypeError(f"not a JSON value: {type(value).__name__}")


def _write(value: Any, indent: str, out: list[str]) -> None:
    if isinstance(value, dict):
        if not value:
            out.append("{}")
            return
        inner = indent + "  "
        out.append("{\n")
        for i, key in enumerate(_ordered_keys(value)):
            if not isinstance(key, str):
                raise TypeError(f"object key is not a string: {key!r}")
            if i:
                out.append(",\n")
            out.append(inner + _quote(key) + ": ")
            _write(value[key], inner, out)
        out.append("\n" + indent + "}")
    elif isinstance(value, (list, tuple)):
        if not value:
            out.append("[]")
            return
        inner = indent + "  "
        out.append("[\n")
        for i, item in enumerate(value):
            if i:
                out.append(",\n")
            out.append(inner)
            _write(item, inner, out)
        out.append("\n" + indent + "]")
    else:
        out.append(_scalar(value))


def stringify(value: Any) -> str:
    """``JSON.stringify(value, null, 2)`` for JSON data."""
    out: list[str] = []
    _write(value, "", out)
    return "".join(out)


def serialize(file: Any) -> bytes:
    """The stored form of an approvals document: ``stringify(file) + "\\n"``, UTF-8.

    Lone surrogates cannot occur in the output (they are escaped), so encoding cannot fail."""
    return (stringify(file) + "\n").encode("utf-8")


def approvals_hash(file: Any) -> str:
    return hashlib.sha256(serialize(file)).hexdigest()


def missing_hash() -> str:
    """What the gateway reports for a document that does not exist."""
    return "missing:" + hashlib.sha256(b"").hexdigest()
