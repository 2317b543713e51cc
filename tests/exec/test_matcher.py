"""The pattern matcher: globs on real paths, bare names via PATH, argPattern, shell chains."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from node_agent.exec.command import parse_command, split_segments
from node_agent.exec.document import AllowlistEntry
from node_agent.exec.jsregex import UnsupportedPattern, compile_js
from node_agent.exec.matcher import (
    allow_always_coverage,
    arg_pattern_matches,
    cwd_bound_hash,
    evaluate,
    glob_matches,
    resolve_executable,
)


@pytest.fixture
def bins(tmp_path: Path) -> Path:
    """A private PATH with real executables, a symlink to one, and a non-executable file."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name in ("rg", "git", "gitk", "uname"):
        exe = bindir / name
        exe.write_text("#!/bin/sh\nexit 0\n")
        exe.chmod(0o755)
    (bindir / "rg-link").symlink_to(bindir / "rg")
    (bindir / "notexec").write_text("x")
    return bindir


def entries(*specs: str | tuple[str, str]) -> list[AllowlistEntry]:
    return [AllowlistEntry(pattern=s) if isinstance(s, str) else AllowlistEntry(pattern=s[0], arg_pattern=s[1])
            for s in specs]


def run_eval(argv: list[str], allow: list[AllowlistEntry], bins: Path, cwd: Path) -> bool:
    return evaluate(parse_command(argv), allow, cwd=str(cwd), env={"PATH": str(bins)}).satisfied


GLOBS = [
    ("/usr/bin/rg", "/usr/bin/rg", True),
    ("/usr/bin/*", "/usr/bin/rg", True),
    ("/usr/bin/*", "/usr/bin/sub/rg", False),  # * stays within one path component
    ("/usr/**", "/usr/bin/sub/rg", True),
    ("/usr/bin/r?", "/usr/bin/rg", True),
    ("/usr/bin/r?", "/usr/bin/rgx", False),
    ("/opt/[ab]/rg", "/opt/[ab]/rg", True),  # brackets are literal, as in the gateway's globs
    ("/opt/a/rg", "/opt/b/rg", False),
    ("~/bin/tool", "/home/me/bin/tool", True),
]


@pytest.mark.parametrize(("pattern", "target", "expected"), GLOBS)
def test_globs_on_paths(pattern: str, target: str, expected: bool) -> None:
    assert glob_matches(pattern, target, home="/home/me") is expected


def test_a_bare_name_resolves_through_path_and_matches_by_file_name(bins: Path, tmp_path: Path) -> None:
    assert run_eval(["rg", "foo"], entries("rg"), bins, tmp_path)
    assert run_eval(["git", "status"], entries("git*"), bins, tmp_path)
    assert not run_eval(["gitk"], entries("git"), bins, tmp_path)
    assert not run_eval(["notexec"], entries("notexec"), bins, tmp_path)  # found only if executable
    assert not run_eval(["missing"], entries("missing"), bins, tmp_path)


def test_a_bare_pattern_does_not_match_a_command_named_by_path(bins: Path, tmp_path: Path) -> None:
    assert not run_eval([str(bins / "rg")], entries("rg"), bins, tmp_path)
    assert run_eval([str(bins / "rg")], entries(str(bins / "rg")), bins, tmp_path)


def test_path_patterns_match_the_real_path_not_the_symlink(bins: Path, tmp_path: Path) -> None:
    assert run_eval(["rg-link"], entries(str(bins / "rg")), bins, tmp_path)
    assert not run_eval(["rg-link"], entries(str(bins / "rg-link")), bins, tmp_path)


def test_relative_paths_resolve_against_the_cwd(bins: Path, tmp_path: Path) -> None:
    assert run_eval(["./bin/rg"], entries(str(bins / "rg")), bins, tmp_path)
    assert not run_eval(["./bin/rg"], entries(str(bins / "rg")), bins, bins)


def test_empty_and_relative_path_entries_are_never_searched(bins: Path, tmp_path: Path) -> None:
    assert resolve_executable("rg", cwd=str(bins), env={"PATH": ":bin:."}).path is None
    assert resolve_executable("rg", cwd=str(tmp_path), env={"PATH": f"bin:{bins}"}).path == str(bins / "rg")


def test_a_lone_star_allows_anything_even_unresolved(bins: Path, tmp_path: Path) -> None:
    assert run_eval(["no-such-program"], entries("*"), bins, tmp_path)


def test_arg_patterns_are_searched_in_the_args_joined_by_spaces(bins: Path, tmp_path: Path) -> None:
    allow = entries(("rg", "^--files( |$)"))
    assert run_eval(["rg", "--files", "src"], allow, bins, tmp_path)
    assert not run_eval(["rg", "foo", "--files"], allow, bins, tmp_path)
    assert run_eval(["git", "status"], entries(("git", "status")), bins, tmp_path)  # a search, not a full match


def test_a_nul_in_the_arg_pattern_switches_to_the_nul_rendering() -> None:
    assert arg_pattern_matches("^a b\0c\0$", ["x", "a b", "c"])
    assert arg_pattern_matches("^\0\0$", ["x"])
    assert not arg_pattern_matches("^a\0$", ["x", "a b"])


def test_an_unsupported_or_invalid_arg_pattern_matches_nothing(bins: Path, tmp_path: Path) -> None:
    assert not run_eval(["rg", "x"], entries(("rg", "\\p{L}")), bins, tmp_path)
    assert not run_eval(["rg", "x"], entries(("rg", "(unclosed")), bins, tmp_path)


def test_a_path_only_entry_is_the_fallback_when_no_arg_pattern_matches(bins: Path, tmp_path: Path) -> None:
    allow = entries(("rg", "^--never$"), "rg")
    result = evaluate(parse_command(["rg", "x"]), allow, cwd=str(tmp_path), env={"PATH": str(bins)})
    assert result.satisfied and result.matches[0].entry == allow[1]


def test_every_segment_of_a_shell_chain_must_match(bins: Path, tmp_path: Path) -> None:
    allow = entries("rg", "git")
    assert run_eval(["/bin/sh", "-lc", "rg foo && git status | rg x; git log || rg y"], allow, bins, tmp_path)
    assert not run_eval(["/bin/sh", "-lc", "rg foo && uname -a"], allow, bins, tmp_path)


UNANALYSABLE = ["echo $HOME", "rg `id`", "rg $(id)", "rg *.py", "rg foo > out", "rg < in", "(rg)", "{ rg; }",
                "rg foo &", "rg ~/x", "FOO=1 rg", "rg # c", "! rg", "rg foo\nuname", "rg 'unclosed",
                "rg \"$X\"", "env rg", "sudo rg", "sh -c rg", "rg ;", "&& rg", "rg |& git"]


@pytest.mark.parametrize("payload", UNANALYSABLE)
def test_shell_payloads_we_cannot_read_are_never_covered(payload: str, bins: Path, tmp_path: Path) -> None:
    assert not run_eval(["/bin/sh", "-c", payload], entries("*", "rg", "git", "env", "sudo", "sh"), bins, tmp_path)


def test_quotes_and_escapes_are_read_like_a_shell() -> None:
    segments = split_segments("rg 'a b' \"c \\\"d\\\"\" e\\ f g''h")
    assert segments is not None and segments[0].argv == ("rg", "a b", 'c "d"', "e f", "gh")


def test_positional_args_after_the_inline_command_are_not_analysable(bins: Path, tmp_path: Path) -> None:
    assert not run_eval(["/bin/sh", "-c", "rg \"$1\"", "sh", "x"], entries("*"), bins, tmp_path)


def test_the_cwd_bound_hash_is_the_gateways() -> None:
    # Pinned from buildCwdBoundHashedArgPattern (exec-command-resolution.ts) run in Node.js.
    assert cwd_bound_hash(["uname", "-a"], "/tmp/work") == \
        "sha256:cwd-argv:v1:" + __import__("hashlib").sha256(b"9\x00/tmp/work\x001\x002\x00-a\x00").hexdigest()


def test_allow_always_coverage_binds_each_real_executable_to_cwd_and_args(bins: Path, tmp_path: Path) -> None:
    command = parse_command(["/bin/sh", "-lc", "rg-link x && git status"])
    coverage = allow_always_coverage(command, cwd=str(tmp_path), env={"PATH": str(bins)})
    assert coverage.complete
    assert coverage.patterns == ((str(bins / "rg"), cwd_bound_hash(["rg-link", "x"], str(tmp_path))),
                                 (str(bins / "git"), cwd_bound_hash(["git", "status"], str(tmp_path))))
    partial = allow_always_coverage(parse_command(["/bin/sh", "-lc", "rg x && nope"]), cwd=str(tmp_path),
                                    env={"PATH": str(bins)})
    assert not partial.complete and len(partial.patterns) == 1


def test_a_generated_entry_matches_only_its_own_cwd_and_args(bins: Path, tmp_path: Path) -> None:
    generated = [AllowlistEntry(pattern=str(bins / "rg"), arg_pattern=cwd_bound_hash(["rg", "x"], str(tmp_path)),
                                source="allow-always")]
    assert evaluate(parse_command(["rg", "x"]), generated, cwd=str(tmp_path), env={"PATH": str(bins)}).durable
    assert not run_eval(["rg", "y"], generated, bins, tmp_path)
    assert not run_eval(["rg", "x"], generated, bins, bins)
    # an allow-always entry without a hash never matches (the gateway treats it as inactive)
    assert not run_eval(["rg"], [AllowlistEntry(pattern="rg", source="allow-always")], bins, tmp_path)


JS_REGEX = [
    ("^a.c$", "abc", True), ("^a.c$", "a\rc", False), ("a$", "a\n", False), ("\\d+", "٣", False),
    ("\\w", "_", True), ("\\s", "\u00a0", True), ("[\\d-]+", "1-2", True), ("(?<y>\\d{4})", "2026", True),
    ("\\bfoo\\b", "a foo b", True), ("x{2,}", "xx", True), ("a{", "a{", True), ("\\/", "/", True),
]


@pytest.mark.parametrize(("pattern", "subject", "expected"), JS_REGEX)
def test_ecmascript_regexes_keep_their_javascript_meaning(pattern: str, subject: str, expected: bool) -> None:
    assert (compile_js(pattern).search(subject) is not None) is expected


@pytest.mark.parametrize("pattern", ["\\p{L}", "\\k<a>", "\\cA", "[^]", "(?i)a", "(?P<n>a)", "\\A", "\\Z"])
def test_regex_constructs_with_no_exact_translation_are_refused(pattern: str) -> None:
    with pytest.raises(UnsupportedPattern):
        compile_js(pattern)


def test_resolution_reports_path_and_real_path(bins: Path) -> None:
    found = resolve_executable("rg-link", cwd="/", env={"PATH": str(bins)})
    assert found.path == str(bins / "rg-link") and found.real_path == os.path.realpath(bins / "rg")
