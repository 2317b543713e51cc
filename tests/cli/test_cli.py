"""The command line as a user meets it: help, identity/status before and after a run, errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from node_agent.agent.status import from_json
from node_agent.cli import main
from node_agent.cli.run_cmd import describe_status


def run_cli(*args: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENCLAW_", "NODE_AGENT_"))}
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "node_agent", *args], capture_output=True, text=True, env=env,
                          timeout=60)


def test_help_lists_every_command():
    out = run_cli("--help").stdout
    for command in ("run", "pair", "status", "identity", "unpair", "service", "doctor"):
        assert command in out


def test_identity_before_and_after(tmp_path):
    assert run_cli("identity", "--state-dir", str(tmp_path)).returncode == 1
    from node_agent.identity import DeviceIdentity, IdentityRecord, write_record

    identity = DeviceIdentity.generate()
    write_record(tmp_path, IdentityRecord(device_id=identity.device_id, public_key=identity.public_key,
                                          instance_id="i", platform="linux", device_family="Linux", created_at_ms=1))
    result = run_cli("identity", "--json", "--state-dir", str(tmp_path))
    assert json.loads(result.stdout) == {"deviceId": identity.device_id, "publicKey": identity.public_key}


def _commands_of(parser) -> dict[str, object]:
    import argparse

    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_each_command_is_built_from_the_module_that_adds_it():
    """``node-agent identity`` builds only ``info_cmd``'s parsers; the map that says so must match
    what every module really registers, or a command would vanish from its own command line."""
    import argparse
    import importlib

    from node_agent import cli

    registered = {}
    for module in cli._COMMANDS:
        parser = argparse.ArgumentParser()
        importlib.import_module(f"node_agent.cli.{module}").add_parser(parser.add_subparsers(), cli._common)
        registered.update(dict.fromkeys(_commands_of(parser), module))
    assert registered == cli._MODULE_OF
    assert set(_commands_of(cli.build_parser())) == set(cli._MODULE_OF)
    for command, module in cli._MODULE_OF.items():
        own = _commands_of(cli.build_parser(command))
        assert command in own and {registered[c] for c in own} == {module}
    assert set(_commands_of(cli.build_parser("no-such-command"))) == set(cli._MODULE_OF)


def test_an_unknown_command_is_told_the_whole_list():
    result = run_cli("statsu")
    assert result.returncode == 2 and "invalid choice: 'statsu'" in result.stderr
    for command in ("run", "status", "identity", "service", "doctor", "voice", "exec", "tools"):
        assert f"'{command}'" in result.stderr


def test_status_of_a_node_that_never_ran(tmp_path):
    result = run_cli("status", "--json", "--state-dir", str(tmp_path))
    assert json.loads(result.stdout)["state"] == "never run"


def test_config_errors_exit_78_with_a_fix(tmp_path):
    result = run_cli("run", "--state-dir", str(tmp_path), "--gateway", "ws://gateway.example.com:18789")
    assert result.returncode == 78
    assert "refusing plain ws://" in result.stderr and "to fix:" in result.stderr


def test_unpair_reset_identity_needs_yes_without_a_terminal(tmp_path):
    result = run_cli("unpair", "--reset-identity", "--state-dir", str(tmp_path), "--secret-backend", "file")
    assert result.returncode == 2 and "--yes" in result.stderr


def test_pair_with_an_expired_setup_code_says_so(tmp_path):
    import base64

    code = base64.urlsafe_b64encode(json.dumps({"url": "ws://127.0.0.1:1", "bootstrapToken": "boot-123456789",
                                                "expiresAtMs": 1}).encode()).decode().rstrip("=")
    result = run_cli("pair", "--setup-code", code, "--state-dir", str(tmp_path))
    assert result.returncode == 78 and "expired" in result.stderr
    assert "boot-123456789" not in result.stderr + result.stdout


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip()


def test_systemd_status_lines():
    assert describe_status(from_json({"state": "pairing", "pairing": {"code": "123456"}})) == \
        "pairing: enter code 123456 on the gateway"
    assert describe_status(from_json({"state": "connected", "gateway": "ws://x", "surface": "pending"})).endswith(
        "(commands awaiting approval)")
    assert "retry in 2.0 s" in describe_status(from_json({"state": "waiting", "lastError": "refused",
                                                          "retryInSeconds": 2.0}))


@pytest.mark.parametrize("argv", [["run", "--protocol", "grpc"], ["bogus"]])
def test_argparse_errors(argv):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2


def test_unpair_reset_identity_names_the_device_to_remove_on_the_gateway(tmp_path):
    from node_agent.identity import DeviceIdentity, IdentityRecord, write_record

    identity = DeviceIdentity.generate()
    write_record(tmp_path, IdentityRecord(device_id=identity.device_id, public_key=identity.public_key,
                                          instance_id="i", platform="linux", device_family="Linux", created_at_ms=1))
    result = run_cli("unpair", "--reset-identity", "--yes", "--state-dir", str(tmp_path), "--secret-backend", "file")
    assert result.returncode == 0, result.stderr
    assert f"openclaw devices remove {identity.device_id}" in result.stdout
    assert not (tmp_path / "identity.json").exists()


def test_status_shows_the_gateway_version_protocol_and_its_allowlist_key(tmp_path):
    from node_agent.cli.screens import render_status

    for version, key in (("2026.9.6", "gateway.nodes.commands.allow"), ("2026.7.35", "gateway.nodes.allowCommands")):
        snapshot = from_json({"state": "connected", "gateway": "ws://gw.lan:18789", "dialect": "openclaw",
                              "serverVersion": version, "protocol": 4, "surface": "pending"})
        text = render_status(snapshot, gateway="ws://gw.lan:18789", device_id="d")
        assert f"gateway:    ws://gw.lan:18789\n            openclaw dialect, gateway {version}, protocol 4\n" in text
        assert f"allowlist:  {key}" in text
    unreported = from_json({"state": "connected", "dialect": "openclaw", "serverVersion": "2026.5.28",
                            "surface": "unconfirmed"})
    assert "commands:   not reported by this gateway" in render_status(unreported, gateway="ws://x", device_id="d")
