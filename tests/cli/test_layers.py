"""The layers, as the import graph shows them: each check runs in a fresh interpreter and looks
at ``sys.modules`` afterwards, so an import that crept in anywhere along the way is caught.

* the read-only CLI commands (``identity``, ``status``, ``--version``, ``service print``) import
  neither Trio nor ``cryptography``: they read JSON files, and paying ~0.3 s for a crypto library
  and an event loop to do that is a slow command;
* the protocol core imports no Trio, no sockets, no agent;
* nor attrs or cattrs;
* the configuration imports neither the voice room nor Trio.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

HEAVY = ("trio", "trio_websocket", "cryptography", "keyring", "numpy", "node_agent.voice", "node_agent.agent.link")

_PROBE = """
import json, sys, io, contextlib
sys.argv = ["node-agent", *json.loads(sys.argv[1])]
from node_agent.cli import main
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    code = main(sys.argv[1:])
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def imported_by(argv: list[str], state_dir: Path) -> tuple[int, set[str]]:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(state_dir), "NODE_AGENT_STATE_DIR": str(state_dir),
           "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", _PROBE, json.dumps(argv)], capture_output=True, text=True,
                         env=env, cwd=REPO, check=True, timeout=60)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return result["code"], set(result["modules"])


def heavy_in(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY))


def write_identity_and_status(state_dir: Path) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / "identity.json").write_text(json.dumps({
        "version": 1, "deviceId": "ab" * 32, "publicKey": "pk", "instanceId": "i", "platform": "linux",
        "deviceFamily": "Linux", "createdAtMs": 0}))
    (state_dir / "status.json").write_text(json.dumps({
        "state": "connected", "gateway": "ws://127.0.0.1:18789", "pid": None, "pairing": {"requestId": "r"},
        "operatorLink": {"state": "connected", "scopes": ["operator.read"]}, "surface": "approved"}))


@pytest.mark.parametrize("argv", [
    ["identity", "--json"], ["identity"], ["status", "--json"], ["status"], ["--version"],
    ["service", "print", "--platform", "systemd"],
])
def test_read_only_commands_import_neither_trio_nor_cryptography(tmp_path, argv):
    write_identity_and_status(tmp_path / "state")
    code, modules = imported_by(argv, tmp_path / "state")
    assert code == 0
    assert heavy_in(modules) == []


#: attrs and cattrs cost ~40 ms of import and code generation: what these commands load (the
#: configuration, the identity record, the status model and its codec, the exec approvals
#: document, the service definition) is stdlib dataclasses so that they never pay it.
ATTRS = ("attr", "attrs", "cattr", "cattrs")


@pytest.mark.parametrize("argv", [["identity", "--json"], ["status"], ["status", "--json"],
                                  ["service", "print", "--platform", "systemd"]])
def test_read_only_commands_import_no_attrs(tmp_path, argv):
    write_identity_and_status(tmp_path / "state")
    (tmp_path / "state" / "exec-approvals.json").write_text(json.dumps({
        "version": 1, "defaults": {"security": "allowlist", "ask": "on-miss", "askFallback": "deny"},
        "agents": {"*": {"allowlist": [{"pattern": "/usr/bin/true"}]}}}, indent=2) + "\n")
    (tmp_path / "state" / "exec-approvals.json").chmod(0o600)
    code, modules = imported_by(argv, tmp_path / "state")
    assert code == 0
    assert sorted(m for m in modules if m.split(".")[0] in ATTRS) == []


def test_version_alone_builds_no_parser_and_loads_no_configuration(tmp_path):
    # The parser imports every command module and, through their options, the configuration
    # package: three times the interpreter's own start for one line of output.
    code, modules = imported_by(["--version"], tmp_path)
    assert code == 0
    assert not [m for m in modules if m in ("attr", "attrs", "node_agent.config") or m.startswith("node_agent.cli.")]


def test_the_protocol_core_imports_no_trio_and_nothing_above_it(tmp_path):
    code = "import json, sys, node_agent.protocol; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True,
                         timeout=60)
    modules = set(json.loads(out.stdout))
    assert not [m for m in modules if m.startswith(("trio", "node_agent.agent", "node_agent.transport",
                                                   "node_agent.voice", "node_agent.cli", "node_agent.secrets"))]


def modules_after_loading(config: Path, check: str) -> set[str]:
    """The modules a fresh interpreter holds after loading the config file ``config`` and
    asserting ``check`` (an expression on the loaded config ``c``)."""
    code = ("import json, sys; from pathlib import Path; from node_agent.config import load_config; "
            f"c = load_config(config_file=Path({str(config)!r}), env={{}}); assert {check}; "
            "print(json.dumps(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True,
                         timeout=60)
    return set(json.loads(out.stdout))


def test_loading_a_config_with_a_voice_section_imports_neither_voice_nor_trio(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text('[voice]\nenabled = true\nlocal_triggers = ["hey jarvis"]\n')
    assert heavy_in(modules_after_loading(config, "c.voice.enabled")) == []


def test_the_exec_policy_command_stays_light(tmp_path: Path) -> None:
    """``node-agent exec policy`` reads one JSON file; it must not pay for Trio or the agent."""
    code, modules = imported_by(["exec", "policy"], tmp_path)
    assert code == 0
    assert heavy_in(modules) == []
    assert "node_agent.exec.service" not in modules


def test_the_pocketsphinx_worker_imports_neither_trio_nor_the_pipeline():
    """The worker is a process of its own whose memory counts against the voice node's: it runs
    as ``-m node_agent.voice.pocketsphinx_worker``, and the voice package imports its exports
    only when asked for them."""
    code = ("import json, sys, node_agent.voice.pocketsphinx_worker; modules = sorted(sys.modules); "
            "from node_agent.voice import WakeDetector, VoicePipeline; "
            "print(json.dumps([modules, WakeDetector.__module__, VoicePipeline.__module__]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True,
                         timeout=60)
    modules, wake, pipeline = json.loads(out.stdout)
    assert not [m for m in modules if m.split(".")[0] in ("trio", "attr", "attrs", "numpy")]
    assert "node_agent.voice.pipeline" not in modules
    assert (wake, pipeline) == ("node_agent.voice.wake", "node_agent.voice.pipeline")  # exports still resolve
