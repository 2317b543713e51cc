"""cattrs plumbing shared by the dialect converters: camelCase wire keys, secrets, lenient input,
and :func:`load_object`, the first step of every frame decode (text to one JSON object).

Each dialect makes its own converter with :func:`make_converter` and registers its extra hooks.
Structuring ignores unknown keys (gateways add fields across versions); validation failures
become a single readable line via :func:`describe_error`.
"""

from __future__ import annotations

import json
import re
from typing import Any, Mapping

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, override

from ..errors import RemoteProtocolError
from ..secret import Secret

#: Wire spellings that plain camelCase would get wrong.
_SPECIAL = {"params_json": "paramsJSON", "payload_json": "payloadJSON"}


def to_camel(name: str) -> str:
    if name in _SPECIAL:
        return _SPECIAL[name]
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _structure_secret(value: Any, _type: type) -> Secret:
    if not isinstance(value, str):
        raise ValueError("expected a string")
    return Secret(value)


def _structure_str(value: Any, _type: type) -> str:
    # cattrs would happily turn 42 or {} into "42"/"{}"; on the wire that is a protocol error.
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {type(value).__name__}")
    return value


def _structure_int(value: Any, _type: type) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise ValueError(f"expected an integer, got {type(value).__name__}")
    return int(value)


def _structure_bool(value: Any, _type: type) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected a boolean, got {type(value).__name__}")
    return value


def _structure_str_tuple(value: Any, _type: type) -> tuple[str, ...]:
    # A bare string is iterable; without this check "openclaw" would become ('o', 'p', ...).
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ValueError("expected a list of strings")
    return tuple(value)


def make_converter() -> cattrs.Converter:
    conv = cattrs.Converter()
    conv.register_structure_hook(Secret, _structure_secret)
    conv.register_structure_hook(str, _structure_str)
    conv.register_structure_hook(int, _structure_int)
    conv.register_structure_hook(bool, _structure_bool)
    conv.register_structure_hook_func(lambda t: t == tuple[str, ...], _structure_str_tuple)
    conv.register_unstructure_hook(Secret, lambda s: s.reveal())

    def camel_structure(cls: type) -> Any:
        return make_dict_structure_fn(
            cls, conv, **{a.name: override(rename=to_camel(a.name)) for a in attrs.fields(cls)}
        )

    conv.register_structure_hook_factory(attrs.has, camel_structure)
    return conv


def describe_error(exc: BaseException) -> str:
    """One line for a cattrs validation failure (no payload values, so no secrets)."""
    if isinstance(exc, (cattrs.BaseValidationError,)):
        return "; ".join(cattrs.transform_error(exc))
    return f"{type(exc).__name__}: {exc}"


def structure(conv: cattrs.Converter, payload: Any, cls: type, what: str) -> Any:
    if not isinstance(payload, Mapping):
        raise RemoteProtocolError(f"{what}: payload must be an object, got {type(payload).__name__}")
    try:
        return conv.structure(payload, cls)
    except Exception as exc:  # cattrs raises ExceptionGroups and plain errors alike
        raise RemoteProtocolError(f"{what}: {describe_error(exc)}") from None


_SNAKE = re.compile(r"(?<!^)(?=[A-Z])")


def to_snake(name: str) -> str:
    return _SNAKE.sub("_", name).lower()


def load_object(data: str | bytes) -> dict[str, Any]:
    """A frame's text (or UTF-8 bytes) as a JSON object, or a :class:`RemoteProtocolError` that
    says what was wrong with it (never the frame itself: it may carry a secret)."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        try:
            data = bytes(data).decode("utf-8")
        except UnicodeDecodeError:
            raise RemoteProtocolError("frame is not valid UTF-8") from None
    try:
        obj = json.loads(data)
    except RecursionError:
        raise RemoteProtocolError("frame is nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError
        raise RemoteProtocolError(f"frame is not JSON ({getattr(exc, 'msg', 'invalid')})") from None
    if not isinstance(obj, dict):
        raise RemoteProtocolError(f"frame must be a JSON object, got {type(obj).__name__}")
    return obj
