"""Command fields (argv, rawCommand) and the environment policy (the gateway's vendored lists)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from node_agent.exec import envpolicy
from node_agent.exec.command import CommandError, format_command, parse_command, shell_payload
from tests.support.real_gateway import install_dir

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("command", "message"), [
    (None, "command required"), ([], "command required"), ("ls -l", "command required"),
    (["ls", 3], "array of strings"), (["ls", None], "array of strings"), ([" "], "must name a program"),
    (["ls", "a\0b"], "NUL"),
])
def test_argv_must_be_a_non_empty_list_of_strings(command: object, message: str) -> None:
    with pytest.raises(CommandError, match=message):
        parse_command(command)


def test_raw_command_must_match_the_formatted_argv_or_the_shell_payload() -> None:
    assert parse_command(["echo", "a b", 'c"d', ""], 'echo "a b" "c\\"d" ""').text == 'echo "a b" "c\\"d" ""'
    assert parse_command(["/bin/sh", "-lc", "uname -a"], "uname -a").preview == "uname -a"
    with pytest.raises(CommandError, match="rawCommand does not match command"):
        parse_command(["echo", "a"], "echo b")
    with pytest.raises(CommandError, match="rawCommand does not match command"):
        parse_command(["/bin/sh", "-c", "x", "sh", "y"], "x")  # trailing args: the payload is not the command
    with pytest.raises(CommandError, match="rawCommand must be a string"):
        parse_command(["echo"], ["echo"])


@pytest.mark.parametrize(("argv", "payload"), [
    (["/bin/sh", "-lc", "a"], "a"), (["bash", "-c", "a"], "a"), (["zsh", "-ec", "a"], "a"),
    (["sh", "-o", "pipefail", "-c", "a"], "a"), (["sh", "script.sh"], None), (["python3", "-c", "a"], None),
    (["sh", "-c"], None),
])
def test_shell_payloads_are_found_for_posix_shells_only(argv: list[str], payload: str | None) -> None:
    assert shell_payload(argv) == payload


def test_format_command_quotes_like_the_gateway() -> None:
    assert format_command(["a", "b c", "d\te", 'f"g', ""]) == 'a "b c" "d\te" "f\\"g" ""'


def test_blocked_override_keys_are_refused_with_the_node_hosts_wording() -> None:
    check = envpolicy.check_overrides({"PATH": "/x", "LD_PRELOAD": "y", "NODE_OPTIONS": "z", "HOME": "/h",
                                       "GIT_CONFIG_KEY_0": "k", "TF_VAR_x": "1", "OK_VAR": "fine", "bad-key": "v"})
    assert check.blocked == ("GIT_CONFIG_KEY_0", "HOME", "LD_PRELOAD", "NODE_OPTIONS", "PATH", "TF_VAR_X")
    assert check.invalid == ("bad-key",)
    assert check.accepted == {"OK_VAR": "fine"}
    assert check.refusal() == ("SYSTEM_RUN_DENIED: environment override rejected (blocked override keys: "
                               "GIT_CONFIG_KEY_0, HOME, LD_PRELOAD, NODE_OPTIONS, PATH, TF_VAR_X; "
                               "invalid non-portable override keys: bad-key)")


def test_no_pager_overrides_are_accepted_as_empty() -> None:
    assert envpolicy.check_overrides({"PAGER": "cat", "GIT_PAGER": ""}).accepted == {"PAGER": "", "GIT_PAGER": ""}
    assert envpolicy.check_overrides({"PAGER": "less"}).blocked == ("PAGER",)


def test_a_shell_wrapper_keeps_only_terminal_and_locale_overrides() -> None:
    assert envpolicy.for_shell_wrapper({"TERM": "xterm", "LC_TIME": "C", "OK_VAR": "x", "NO_COLOR": "1"}) == \
        {"TERM": "xterm", "LC_TIME": "C", "NO_COLOR": "1"}


def test_the_inherited_environment_loses_the_blocked_keys() -> None:
    env = envpolicy.filter_inherited({"PATH": "/usr/bin", "HOME": "/home/me", "LD_PRELOAD": "evil.so",
                                      "NODE_OPTIONS": "--require x", "BASH_FUNC_x%%": "() { :; }",
                                      "EDITOR": "vim", "GIT_ALLOW_PROTOCOL": "file:https:ext",
                                      "GIT_PROTOCOL_FROM_USER": "1", "LANG": "C.UTF-8"})
    assert env == {"PATH": "/usr/bin", "HOME": "/home/me", "GIT_ALLOW_PROTOCOL": "https",
                   "GIT_PROTOCOL_FROM_USER": "0", "LANG": "C.UTF-8"}


def test_the_vendored_lists_are_the_gateways_and_name_their_source() -> None:
    assert envpolicy.SOURCE["path"] == "src/infra/host-env-security-policy.json"
    assert len(envpolicy.BLOCKED_KEYS) >= 100 and "LD_" in envpolicy.BLOCKED_PREFIXES


@pytest.mark.skipif(not (install_dir() / "app" / "node_modules" / "openclaw").exists(),
                    reason="the real gateway is not installed (scripts/gateway-setup)")
def test_the_vendored_lists_equal_the_installed_gateways() -> None:
    done = subprocess.run([str(REPO / "scripts" / "vendor-exec-env-policy"), "--check"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    vendored = json.loads((REPO / "node_agent" / "exec" / "host_env_policy.json").read_text())
    assert vendored["_source"]["package"] == "openclaw@2026.9.6"
