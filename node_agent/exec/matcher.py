"""Does an allowlist cover a command? The gateway's matching rules, on this node's files.

A segment (one simple command, ``command.py``) is covered by an entry when (as
``matchAllowlist`` in ``src/infra/exec-command-resolution.ts``):

- the entry's pattern is ``*`` alone (no ``argPattern``, not generated): any command; or
- the executable resolves (a path relative to the cwd, or a bare name looked up in the ``PATH``
  the command will run with) to an executable regular file, and
  - a pattern with a path selector (``/``, ``\\``, ``~``) is a glob that matches its *real* path
    (``**`` any characters, ``*`` and ``?`` within one path component), or
  - a bare pattern (``rg``, ``git*``) matches the executable's file name, and the command named
    it by bare name too (``./rg`` does not match ``rg``);
- and the entry's ``argPattern``, if any, matches: an ECMAScript regex searched in ``argv[1:]``
  joined by spaces (by NULs, rendered the gateway's way, when the pattern contains a NUL); a
  generated ``sha256:cwd-argv:v1:`` pattern must equal the hash of this cwd and these args.

A generated (``allow-always``) entry only ever matches through its hash. A chain is covered
when every segment is. The first entry with an ``argPattern`` that matches wins, else the first
path-only match.

What differs from the gateway, on purpose: an empty or relative ``PATH`` entry is never
searched (it would make the current directory part of the policy), and an executable is only
found if it is a regular file we may execute.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import re
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path

import attrs

from .command import Command, Segment, segments_of
from .document import AllowlistEntry, command_marker, node_command_marker
from .jsregex import UnsupportedPattern, compile_js

CWD_HASH_PREFIX = "sha256:cwd-argv:v1:"
LEGACY_HASH_PREFIX = "sha256:argv:"


@attrs.frozen
class Resolution:
    raw: str
    path: str | None  # absolute path found (None if not found)
    real_path: str | None

    @property
    def name(self) -> str:
        return os.path.basename(self.path) if self.path else self.raw


@attrs.frozen
class SegmentMatch:
    segment: Segment
    resolution: Resolution
    entry: AllowlistEntry | None


@attrs.frozen
class Evaluation:
    """The allowlist verdict for a whole command."""

    #: The command could be split into segments we understand.
    analysis_ok: bool
    matches: tuple[SegmentMatch, ...] = ()

    @property
    def satisfied(self) -> bool:
        return self.analysis_ok and bool(self.matches) and all(m.entry is not None for m in self.matches)

    @property
    def durable(self) -> bool:
        """Every segment is covered by an ``allow-always`` entry (a person said "always")."""
        return self.satisfied and all(m.entry is not None and m.entry.allow_always for m in self.matches)

    @property
    def first_miss(self) -> Segment | None:
        return next((m.segment for m in self.matches if m.entry is None), None)


def _is_executable_file(path: str) -> bool:
    try:
        info = os.stat(path)
    except OSError:
        return False
    return stat.S_ISREG(info.st_mode) and os.access(path, os.X_OK)


def resolve_executable(raw: str, *, cwd: str, env: Mapping[str, str]) -> Resolution:
    """Find the file ``raw`` would run as, the way ``execvp`` would with ``env['PATH']``."""
    if not raw or raw.startswith("~"):
        return Resolution(raw, None, None)
    if "/" in raw:
        candidate = posixpath.normpath(posixpath.join(cwd, raw))
        found = candidate if _is_executable_file(candidate) else None
    else:
        found = None
        for entry in (env.get("PATH") or "").split(os.pathsep):
            if not entry or not os.path.isabs(entry):
                continue
            candidate = os.path.join(entry, raw)
            if _is_executable_file(candidate):
                found = candidate
                break
    real = os.path.realpath(found) if found else None
    return Resolution(raw, found, real)


def _glob_regex(pattern: str) -> re.Pattern[str]:
    out = ["^"]
    i = 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    out.append("$")
    return re.compile("".join(out), re.DOTALL)


def glob_matches(pattern: str, target: str, *, home: str | None = None) -> bool:
    """``matchesExecAllowlistPattern`` on POSIX."""
    pattern = pattern.strip()
    if not pattern:
        return False
    if pattern.startswith("~"):
        pattern = (home or str(Path.home())) + pattern[1:]
    target = target.replace("\\\\", "/")
    pattern = pattern.replace("\\\\", "/")
    if re.search(r"[*?]", pattern) and any(part in (".", "..") for part in target.split("/")):
        target = posixpath.normpath(target)
    return bool(_glob_regex(pattern).match(target))


def _has_path_selector(value: str) -> bool:
    return "/" in value or "\\" in value or "~" in value


def cwd_bound_hash(argv: Sequence[str], cwd: str) -> str:
    """``buildCwdBoundHashedArgPattern``: binds an allow-always grant to this cwd and these args."""
    normalized = posixpath.normpath(cwd).replace("\\", "/")
    args = list(argv[1:])
    subject = f"{len(normalized.encode())}\0{normalized}\0{len(args)}\0" + "".join(
        f"{len(arg.encode())}\0{arg}\0" for arg in args)
    return CWD_HASH_PREFIX + hashlib.sha256(subject.encode("utf-8")).hexdigest()


def arg_pattern_matches(arg_pattern: str, argv: Sequence[str]) -> bool:
    if arg_pattern.startswith(LEGACY_HASH_PREFIX):
        return False
    if "\0" in arg_pattern:
        args = list(argv[1:])
        subject = "\0\0" if not args else "\0".join(args) + "\0"
    else:
        subject = " ".join(argv[1:])
    try:
        return compile_js(arg_pattern).search(subject) is not None
    except UnsupportedPattern:
        return False


def match_segment(entries: Sequence[AllowlistEntry], resolution: Resolution, argv: Sequence[str], *,
                  cwd: str, home: str | None = None) -> AllowlistEntry | None:
    for entry in entries:
        if entry.pattern.strip() == "*" and not entry.arg_pattern and not entry.allow_always:
            return entry
    if not resolution.path:
        return None
    trust_path = resolution.real_path or resolution.path
    path_only: AllowlistEntry | None = None
    cwd_hash: str | None = None
    for entry in entries:
        pattern = entry.pattern.strip()
        if not pattern or pattern.startswith("="):
            continue
        if _has_path_selector(pattern):
            hit = glob_matches(pattern, trust_path, home=home)
        else:
            hit = pattern != "*" and not _has_path_selector(resolution.raw) and any(
                glob_matches(pattern, name) for name in {resolution.name, os.path.basename(resolution.path)})
        if not hit:
            continue
        if not entry.arg_pattern:
            if not entry.allow_always and path_only is None:
                path_only = entry
            continue
        if entry.arg_pattern.startswith(CWD_HASH_PREFIX):
            cwd_hash = cwd_hash or cwd_bound_hash(argv, cwd)
            if entry.arg_pattern == cwd_hash:
                return entry
        elif not entry.allow_always and arg_pattern_matches(entry.arg_pattern, argv):
            return entry
    return path_only


def evaluate(command: Command, entries: Sequence[AllowlistEntry], *, cwd: str, env: Mapping[str, str],
             home: str | None = None) -> Evaluation:
    segments = segments_of(command)
    if segments is None:
        return Evaluation(analysis_ok=False)
    matches = []
    for segment in segments:
        resolution = resolve_executable(segment.argv[0], cwd=cwd, env=env)
        matches.append(SegmentMatch(segment, resolution, match_segment(entries, resolution, segment.argv,
                                                                       cwd=cwd, home=home)))
    return Evaluation(analysis_ok=True, matches=tuple(matches))


def has_exact_command_approval(entries: Sequence[AllowlistEntry], command_text: str) -> bool:
    """An ``=command:`` grant for exactly this command text (``hasExactCommandDurableExecApproval``)."""
    marker = command_marker(command_text)
    return any(e.allow_always and e.pattern == marker for e in entries)


@attrs.frozen
class Coverage:
    """What "allow always" would store: one cwd-bound entry per segment, and whether that covers
    the whole command (then the ``=node-command:`` marker is stored too)."""

    complete: bool
    patterns: tuple[tuple[str, str], ...]  # (pattern, argPattern)

    def as_wire(self) -> dict[str, object]:
        return {"complete": self.complete,
                "patterns": [{"pattern": p, "argPattern": a} for p, a in self.patterns]}

    def entries(self, command_text: str) -> list[tuple[str, str | None]]:
        out: list[tuple[str, str | None]] = list(self.patterns)
        if self.complete and self.patterns:
            out.append((node_command_marker(command_text), None))
        return out


def allow_always_coverage(command: Command, *, cwd: str, env: Mapping[str, str]) -> Coverage:
    """``buildSystemRunAllowAlwaysCoverage`` for the commands we can analyse: every segment's
    real executable path, bound to the cwd and its exact args. A segment that does not resolve
    leaves the coverage incomplete (and "allow always" then stores nothing reusable)."""
    segments = segments_of(command)
    if not segments:
        return Coverage(False, ())
    patterns: list[tuple[str, str]] = []
    complete = True
    for segment in segments:
        resolution = resolve_executable(segment.argv[0], cwd=cwd, env=env)
        if not resolution.real_path:
            complete = False
            continue
        pair = (resolution.real_path, cwd_bound_hash(segment.argv, cwd))
        if pair not in patterns:
            patterns.append(pair)
    return Coverage(complete and bool(patterns), tuple(patterns))
