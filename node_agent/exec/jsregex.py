"""Run an allowlist ``argPattern`` (an ECMAScript regular expression) with Python's ``re``.

The gateway tests ``new RegExp(argPattern).test(args)``: no flags, a search anywhere. JavaScript
and Python agree on most syntax but not all of it (``\\d`` is Unicode in Python, ``.`` stops at
``\\r`` in JavaScript, ``$`` matches before a trailing newline in Python, ``\\s`` covers more in
JavaScript, named groups are spelled differently...). Rather than approximate, this translates
the constructs whose meaning it can state exactly and refuses the rest:

- literals and escapes ``\\t \\n \\r \\f \\v \\0 \\xHH \\uHHHH`` and escaped punctuation;
- ``.`` ``^`` ``$`` ``\\b`` ``\\B``, classes ``[...]`` / ``[^...]`` with ranges, ``\\d \\D \\w \\W
  \\s \\S`` (inside classes too);
- groups ``(...)``, ``(?:...)``, ``(?<name>...)``, lookarounds ``(?=`` ``(?!`` ``(?<=`` ``(?<!``,
  back-references ``\\1``.. ``\\9``, alternation, quantifiers ``* + ? {n} {n,} {n,m}`` and their lazy
  forms.

Anything else (``\\p{...}``, ``\\k<name>``, ``\\cX``, ``[^]``, Python-only syntax...) raises
:class:`UnsupportedPattern`: the allowlist entry then matches nothing, which fails closed, and
``status``/``doctor`` name the entry.
"""

from __future__ import annotations

import functools
import re

__all__ = ["UnsupportedPattern", "compile_js"]

# ECMAScript WhiteSpace + LineTerminator (the set \s matches).
_JS_SPACE = "\\t\\n\\x0b\\x0c\\r \\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000\\ufeff"
_CLASS_ESCAPES = {"d": "0-9", "w": "A-Za-z0-9_", "s": _JS_SPACE}
_SIMPLE_ESCAPES = {"t": "\\t", "n": "\\n", "r": "\\r", "f": "\\x0c", "v": "\\x0b"}
_SYNTAX = set("^$\\.*+?()[]{}|/-")


class UnsupportedPattern(ValueError):
    pass


def _escape(pattern: str, i: int, *, in_class: bool) -> tuple[str, int]:
    """Translate the escape at ``pattern[i] == '\\'``; returns (python text, next index)."""
    if i + 1 >= len(pattern):
        raise UnsupportedPattern("a pattern may not end with a backslash")
    ch = pattern[i + 1]
    if ch in _CLASS_ESCAPES:
        body = _CLASS_ESCAPES[ch]
        return (body if in_class else f"[{body}]"), i + 2
    if ch in "DWS":
        if in_class:
            raise UnsupportedPattern(f"\\{ch} inside a character class is not supported")
        return f"[^{_CLASS_ESCAPES[ch.lower()]}]", i + 2
    if ch in _SIMPLE_ESCAPES:
        return _SIMPLE_ESCAPES[ch], i + 2
    if ch == "0" and not (i + 2 < len(pattern) and pattern[i + 2].isdigit()):
        return "\\x00", i + 2
    if ch == "x" and re.fullmatch(r"[0-9A-Fa-f]{2}", pattern[i + 2:i + 4]):
        return "\\x" + pattern[i + 2:i + 4], i + 4
    if ch == "u" and re.fullmatch(r"[0-9A-Fa-f]{4}", pattern[i + 2:i + 6]):
        return "\\u" + pattern[i + 2:i + 6], i + 6
    if ch in "bB" and not in_class:
        return "\\" + ch, i + 2
    if ch == "b" and in_class:
        return "\\x08", i + 2
    if ch in "123456789" and not in_class and not (i + 2 < len(pattern) and pattern[i + 2].isdigit()):
        return "\\" + ch, i + 2
    if ch in _SYNTAX:
        return re.escape(ch), i + 2
    raise UnsupportedPattern(f"the escape \\{ch} is not supported")


def _class(pattern: str, i: int) -> tuple[str, int]:
    """Translate ``[...]`` starting at ``pattern[i] == '['``."""
    out = ["["]
    i += 1
    if i < len(pattern) and pattern[i] == "^":
        out.append("^")
        i += 1
    if i < len(pattern) and pattern[i] == "]":
        raise UnsupportedPattern("empty or [^] classes are not supported")
    while i < len(pattern) and pattern[i] != "]":
        ch = pattern[i]
        if ch == "\\":
            text, i = _escape(pattern, i, in_class=True)
            out.append(text)
        elif ch == "[":
            out.append("\\[")  # literal in JS; Python warns about nested sets
            i += 1
        elif ch in "&~|" and pattern[i:i + 2] in ("&&", "~~", "||"):
            out.append("\\" + ch)
            i += 1
        else:
            out.append(ch)
            i += 1
    if i >= len(pattern):
        raise UnsupportedPattern("unterminated character class")
    out.append("]")
    return "".join(out), i + 1


@functools.lru_cache(maxsize=256)
def compile_js(pattern: str) -> re.Pattern[str]:
    """Compile an ECMAScript pattern (no flags) to an equivalent Python pattern."""
    out: list[str] = []
    i = 0
    n = len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "\\":
            text, i = _escape(pattern, i, in_class=False)
            out.append(text)
        elif ch == "[":
            text, i = _class(pattern, i)
            out.append(text)
        elif ch == ".":
            out.append("[^\\n\\r\\u2028\\u2029]")
            i += 1
        elif ch == "$":
            out.append("\\Z")
            i += 1
        elif ch == "(":
            if pattern.startswith("(?<", i) and not pattern.startswith(("(?<=", "(?<!"), i):
                match = re.match(r"\(\?<([A-Za-z_$][A-Za-z0-9_$]*)>", pattern[i:])
                if not match or "$" in match.group(1):
                    raise UnsupportedPattern("unsupported group name")
                out.append(f"(?P<{match.group(1)}>")
                i += match.end()
            elif pattern.startswith("(?", i) and not pattern.startswith(("(?:", "(?=", "(?!", "(?<=", "(?<!"), i):
                raise UnsupportedPattern("unsupported group syntax")
            else:
                out.append("(")
                i += 1
        elif ch == "{":
            match = re.match(r"\{(\d+)(,(\d*))?\}", pattern[i:])
            if match:
                out.append(match.group(0))
                i += match.end()
            else:
                out.append("\\{")  # a literal brace (Annex B), as in JavaScript
                i += 1
        elif ch == "}":
            out.append("\\}")
            i += 1
        else:
            out.append(ch)
            i += 1
    try:
        return re.compile("".join(out))
    except re.error as exc:
        raise UnsupportedPattern(f"invalid pattern ({exc.msg})") from None
