"""What a ``system.run`` command is: its argv, its display text, and the commands inside it.

Three jobs, all pure:

1. **Check the request.** ``command`` must be a non-empty list of strings; ``rawCommand`` is a
   consistency check only and must equal the argv formatted the gateway's way
   (:func:`format_command`), or the ``X`` of ``sh -lc X``. argv is what runs.
2. **Find the shell payload.** The gateway sends every agent command as ``["/bin/sh", "-lc",
   cmd]``; :func:`shell_payload` finds ``cmd`` for the POSIX shells.
3. **Split the payload into segments** for the allowlist, conservatively. A payload is a chain
   of simple commands joined by ``&&``, ``||``, ``;`` or ``|``, made of plain words, single
   quotes, double quotes without expansions, and backslash escapes. Anything else (``$``,
   backticks, globs, redirections, subshells, braces, ``~``, comments, ``!``, assignments,
   background ``&``, newlines) makes :func:`split_segments` return None: the command is not
   analysable, so no allowlist entry can cover it and a person is asked. What we cannot read we
   never guess at.

Dispatch wrappers (``env``, ``sudo``, ``nice``, ``timeout``, ``xargs``...) run another program
named in their arguments, so a segment that starts with one is not analysable either: an
allowlist entry for ``/usr/bin/env`` must not quietly allow everything.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import Any

import attrs

POSIX_SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh", "ash", "mksh", "yash", "busybox-sh"})
DISPATCH_WRAPPERS = frozenset({
    "env", "sudo", "doas", "su", "nice", "nohup", "timeout", "xargs", "stdbuf", "ionice", "chroot",
    "setsid", "time", "command", "exec", "builtin", "eval", "source", ".", "busybox", "flock",
    "taskset", "chrt", "unshare", "nsenter", "runuser", "script", "watch", "strace", "ltrace",
})
_SHELL_OPTIONS_WITH_VALUE = frozenset({"-o", "+o", "-O", "+O", "--rcfile", "--init-file"})
_WS = re.compile(r"\s")


class CommandError(ValueError):
    """The request's command fields are malformed (answered ``INVALID_REQUEST``)."""


@attrs.frozen
class Segment:
    """One simple command of a chain: the words it runs."""

    argv: tuple[str, ...]
    raw: str


@attrs.frozen
class Command:
    argv: tuple[str, ...]
    #: The argv formatted the gateway's way; the approval plan's ``commandText``.
    text: str
    #: ``cmd`` of ``sh -c cmd`` (None for a direct command).
    shell_payload: str | None
    #: What a person should read: the payload of a plain ``sh -c``, else None.
    preview: str | None


def format_command(argv: Sequence[str]) -> str:
    """``formatExecCommand``: args with whitespace or ``"`` double-quoted, ``"`` escaped."""
    out = []
    for arg in argv:
        if not arg:
            out.append('""')
        elif _WS.search(arg) or '"' in arg:
            out.append('"' + arg.replace('"', '\\"') + '"')
        else:
            out.append(arg)
    return " ".join(out)


def basename(token: str) -> str:
    return re.split(r"[\\/]", token)[-1].lower()


def _inline_command_index(argv: Sequence[str]) -> int | None:
    """Index of the ``cmd`` token of ``sh [options] -c cmd`` (``-lc``, ``-ec``... included)."""
    i = 1
    while i < len(argv):
        token = argv[i]
        if token == "--" or not token or token[0] not in "-+" or token in ("-", "+"):
            return None
        if token in _SHELL_OPTIONS_WITH_VALUE:
            i += 2
            continue
        if token.startswith("--"):
            i += 1
            continue
        if token[0] == "-" and "c" in token[1:]:
            return i + 1 if i + 1 < len(argv) else None
        i += 1
    return None


def shell_payload(argv: Sequence[str]) -> str | None:
    if not argv or basename(argv[0]) not in POSIX_SHELLS:
        return None
    index = _inline_command_index(argv)
    return argv[index] if index is not None else None


def is_login_shell(argv: Sequence[str]) -> bool:
    """``sh -l -c``/``-lc``/``--login`` (or any zsh, which always reads ``.zshenv``): the shell
    reads a profile first, which may set its own PATH."""
    if shell_payload(argv) is None:
        return False
    if basename(argv[0]) == "zsh":
        return True
    index = _inline_command_index(argv) or len(argv)
    options = argv[1:index]
    return os.path.basename(argv[0]).startswith("-") or any(
        opt == "--login" or (opt.startswith("-") and not opt.startswith("--") and "l" in opt[1:]) for opt in options)


def is_shell_wrapper(argv: Sequence[str]) -> bool:
    return shell_payload(argv) is not None


def parse_command(command: Any, raw_command: Any = None) -> Command:
    """Validate ``command`` / ``rawCommand`` of a ``system.run`` (or ``.prepare``) request."""
    if not isinstance(command, list) or not command:
        raise CommandError("command required (a non-empty array of strings)")
    if not all(isinstance(arg, str) for arg in command):
        raise CommandError("command must be an array of strings")
    if any("\0" in arg for arg in command):
        raise CommandError("command arguments must not contain NUL bytes")
    if not command[0].strip():
        raise CommandError("command[0] must name a program")
    if raw_command is not None and not isinstance(raw_command, str):
        raise CommandError("rawCommand must be a string")
    argv = tuple(command)
    text = format_command(argv)
    payload = shell_payload(argv)
    index = _inline_command_index(argv) if payload is not None else None
    # The gateway shows the payload only for a plain wrapper: nothing after the inline command
    # (it would become $0, $1... and change what the payload does).
    trailing = index is not None and any(arg.strip() for arg in argv[index + 1:])
    preview = payload.strip() if payload is not None and not trailing and payload.strip() else None
    raw = raw_command.strip() if isinstance(raw_command, str) and raw_command.strip() else None
    if raw is not None and raw != text and raw != preview:
        raise CommandError("rawCommand does not match command")
    return Command(argv=argv, text=text, shell_payload=payload, preview=preview)


# --- segments ---------------------------------------------------------------------------------

_OPERATORS = ("&&", "||", ";", "|")
_UNSAFE_UNQUOTED = set("$`()<>*?[]{}!#&")


def split_segments(payload: str) -> list[Segment] | None:
    """The simple commands of a shell payload, or None if it is not plainly analysable."""
    if "\n" in payload or "\r" in payload or "\0" in payload:
        return None
    segments: list[Segment] = []
    words: list[str] = []
    word: list[str] | None = None
    start = 0
    i = 0
    n = len(payload)

    def end_word() -> None:
        nonlocal word
        if word is not None:
            words.append("".join(word))
            word = None

    def end_segment(at: int) -> bool:
        nonlocal start
        end_word()
        if not words:
            return False
        segments.append(Segment(tuple(words), payload[start:at].strip()))
        words.clear()
        return True

    while i < n:
        ch = payload[i]
        if ch in " \t":
            end_word()
            i += 1
            continue
        op = next((o for o in _OPERATORS if payload.startswith(o, i)), None)
        if op is not None:
            if op == "|" and payload.startswith("|&", i):
                return None
            if not end_segment(i):
                return None
            i += len(op)
            start = i
            continue
        if ch == "'":
            close = payload.find("'", i + 1)
            if close < 0:
                return None
            word = (word or []) + [payload[i + 1:close]]
            i = close + 1
            continue
        if ch == '"':
            j = i + 1
            chunk: list[str] = []
            while j < n and payload[j] != '"':
                c = payload[j]
                if c in "$`":
                    return None
                if c == "\\" and j + 1 < n and payload[j + 1] in '"\\$`':
                    chunk.append(payload[j + 1])
                    j += 2
                    continue
                chunk.append(c)
                j += 1
            if j >= n:
                return None
            word = (word or []) + chunk
            i = j + 1
            continue
        if ch == "\\":
            if i + 1 >= n:
                return None
            word = (word or []) + [payload[i + 1]]
            i += 2
            continue
        if ch in _UNSAFE_UNQUOTED:
            return None
        if ch == "~" and word is None:
            return None
        if ch == "=" and not words and word is not None:
            return None  # FOO=bar cmd: an assignment changes what the command does
        word = (word or []) + [ch]
        i += 1
    if not end_segment(n):
        return None
    return segments


def segments_of(command: Command) -> list[Segment] | None:
    """The segments the allowlist must cover, or None if the command cannot be analysed."""
    if command.shell_payload is None:
        segments = [Segment(command.argv, command.text)]
    else:
        index = _inline_command_index(command.argv)
        if index is not None and any(arg.strip() for arg in command.argv[index + 1:]):
            return None  # positional args to the payload: $1 could be anything
        segments = split_segments(command.shell_payload)
        if segments is None:
            return None
    for segment in segments:
        if basename(segment.argv[0]) in DISPATCH_WRAPPERS or basename(segment.argv[0]) in POSIX_SHELLS:
            return None
    return segments
