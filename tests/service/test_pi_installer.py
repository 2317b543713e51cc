"""packaging/install-pi.sh in a throwaway root, with systemctl, apt-get and python3 stubbed.

The python3 stub fakes only ``-m venv``: the "venv" it makes has a ``python`` that records pip
calls and a ``node-agent`` that runs *this checkout's* CLI (``python -m node_agent``), so the
unit the test finds in the fake root is the one the real generator wrote (and systemd-analyze
checks it).
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "packaging" / "install-pi.sh"
TOKEN = "pi-token-Zq9.example"

STUB_LOGGER = """#!/usr/bin/env bash
echo "{name} $*" >> "$STUB_LOG"
"""

PYTHON_STUB = """#!/usr/bin/env bash
echo "python3 $*" >> "$STUB_LOG"
if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then
    venv="${{!#}}"
    mkdir -p "$venv/bin"
    printf '#!/usr/bin/env bash\\necho "venv-python $*" >> "$STUB_LOG"\\n' > "$venv/bin/python"
    printf '#!/usr/bin/env bash\\nPYTHONPATH={repo} exec {python} -m node_agent "$@"\\n' \\
        > "$venv/bin/node-agent"
    chmod +x "$venv/bin/python" "$venv/bin/node-agent"
    exit 0
fi
exec {python} "$@"
"""


def write_exe(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o755)
    return path


@pytest.fixture
def pi(tmp_path):
    """Run the installer against a fake root; returns a callable and the paths to look at."""
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    root = tmp_path / "root"
    root.mkdir()
    log = tmp_path / "stub.log"
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path / "home"),
        "NODE_AGENT_ROOT": str(root),
        "SYSTEMCTL": str(write_exe(stubs / "systemctl", STUB_LOGGER.format(name="systemctl"))),
        "APT_GET": str(write_exe(stubs / "apt-get", STUB_LOGGER.format(name="apt-get"))),
        "PYTHON": str(write_exe(stubs / "python3", PYTHON_STUB.format(repo=REPO, python=sys.executable))),
        "STUB_LOG": str(log),
    }

    class Pi:
        def __init__(self):
            self.root, self.log = root, log
            self.unit = root / "etc/systemd/system/node-agent.service"
            self.env_file = root / "etc/node-agent/env"
            self.venv = root / "opt/node-agent/venv"

        def run(self, *args: str, **extra_env: str) -> subprocess.CompletedProcess:
            return subprocess.run(["bash", str(SCRIPT), *args], env={**env, **extra_env},
                                  capture_output=True, text=True, timeout=120)

        def calls(self, prefix: str) -> list[str]:
            lines = log.read_text().splitlines() if log.exists() else []
            return [line for line in lines if line.startswith(prefix + " ")]

    return Pi()


def test_install_upgrade_uninstall(pi, tmp_path):
    wheel = tmp_path / "dist" / "node_agent-0.1.0-py3-none-any.whl"
    wheel.parent.mkdir()
    wheel.write_bytes(b"not really a wheel")
    config = tmp_path / "node-agent.toml"
    config.write_text('[gateway]\nurl = "wss://gw.example:18789"\n')

    result = pi.run("--wheel", str(wheel), "--voice", "--config", str(config), "--token-from-env",
                    OPENCLAW_GATEWAY_TOKEN=TOKEN)
    assert result.returncode == 0, result.stderr
    assert TOKEN not in result.stdout + result.stderr
    assert "openclaw devices approve" in result.stdout  # tells the person how to pair

    assert pi.calls("apt-get") == [
        "apt-get update -q",
        "apt-get install -y -q --no-install-recommends python3-venv libportaudio2 espeak-ng"]
    assert pi.calls("python3")[-1] == f"python3 -m venv {pi.venv}"
    assert pi.calls("venv-python") == [
        "venv-python -m pip install --quiet --disable-pip-version-check --upgrade "
        f"{wheel}[voice]"]

    unit = pi.unit.read_text()
    assert "SupplementaryGroups=audio" in unit
    assert "--config /etc/node-agent/config.toml" in unit
    assert "EnvironmentFile=-/etc/node-agent/env" in unit and TOKEN not in unit
    assert (pi.root / "etc/node-agent/config.toml").read_text() == config.read_text()
    assert pi.env_file.read_text() == f"OPENCLAW_GATEWAY_TOKEN={TOKEN}\n"
    assert stat.S_IMODE(pi.env_file.stat().st_mode) == 0o600
    assert pi.calls("systemctl") == ["systemctl daemon-reload", "systemctl enable node-agent.service",
                                     "systemctl restart node-agent.service"]
    if shutil.which("systemd-analyze"):
        verify = subprocess.run(["systemd-analyze", "verify", str(pi.unit)], capture_output=True,
                                text=True, timeout=60)
        assert verify.returncode == 0, verify.stderr

    # Again: same unit, the venv is kept, the service restarted (new code may be in the venv).
    result = pi.run("--wheel", str(wheel), "--voice")
    assert result.returncode == 0, result.stderr
    assert pi.unit.read_text() == unit
    assert sum("-m venv" in line for line in pi.calls("python3")) == 1
    assert f"keeping {pi.venv}" in result.stdout
    assert pi.env_file.read_text() == f"OPENCLAW_GATEWAY_TOKEN={TOKEN}\n"  # untouched without the flag
    assert pi.calls("systemctl")[-1] == "systemctl restart node-agent.service"

    # Uninstall removes the service and the venv, keeps config, token and state; twice is fine.
    result = pi.run("--uninstall")
    assert result.returncode == 0, result.stderr
    assert not pi.unit.exists() and not pi.venv.exists()
    assert pi.env_file.exists() and (pi.root / "etc/node-agent/config.toml").exists()
    assert pi.calls("systemctl")[-2:] == ["systemctl disable --now node-agent.service",
                                          "systemctl daemon-reload"]
    calls_before = len(pi.calls("systemctl"))
    result = pi.run("--uninstall")
    assert result.returncode == 0, result.stderr
    assert len(pi.calls("systemctl")) == calls_before


def test_pypi_install_without_voice(pi):
    result = pi.run()
    assert result.returncode == 0, result.stderr
    assert pi.calls("venv-python")[-1].endswith("--upgrade node-agent")
    unit = pi.unit.read_text()
    assert "PrivateDevices=yes" in unit and "SupplementaryGroups" not in unit
    assert "--config" not in unit
    assert not pi.env_file.exists()


def test_uninstall_without_venv_removes_a_leftover_unit(pi):
    pi.unit.parent.mkdir(parents=True)
    pi.unit.write_text("[Service]\nExecStart=/bin/true\n")
    result = pi.run("--uninstall")
    assert result.returncode == 0, result.stderr
    assert not pi.unit.exists()
    assert pi.calls("systemctl") == ["systemctl disable --now node-agent.service",
                                     "systemctl daemon-reload"]


@pytest.mark.parametrize(("args", "env", "message"), [
    (["--wheel", "/nonexistent/x.whl"], {}, "no such file"),
    (["--token-from-env"], {}, "OPENCLAW_GATEWAY_TOKEN is not set"),
    (["--bogus"], {}, "unknown option"),
    ([], {"NODE_AGENT_ROOT": "relative/root"}, "absolute"),
])
def test_refuses_before_changing_anything(pi, args, env, message):
    result = pi.run(*args, **env)
    assert result.returncode != 0
    assert message in result.stderr
    assert pi.calls("apt-get") == [] and not pi.unit.exists()


def test_help(pi):
    result = pi.run("--help")
    assert result.returncode == 0 and "--uninstall" in result.stdout
