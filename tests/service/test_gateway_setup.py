"""scripts/gateway-setup.sh refuses what it cannot install, before touching npm, and agrees with
the test harness on the pinned and the oldest supported release."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from tests.support.openclaw_releases import OLDEST_SUPPORTED, PINNED, install_dir

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "gateway-setup.sh"


def setup(version: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OPENCLAW_VERSION": version, "XDG_CACHE_HOME": str(tmp_path)}
    env.pop("NODE_AGENT_GATEWAY_DIR", None)
    return subprocess.run([str(SCRIPT)], capture_output=True, text=True, env=env, timeout=30)


def test_the_script_and_the_harness_name_the_same_releases():
    text = SCRIPT.read_text()
    assert re.search(rf"^PINNED={re.escape(PINNED)}$", text, re.M)
    assert re.search(rf"^OLDEST_SUPPORTED={re.escape(OLDEST_SUPPORTED)}$", text, re.M)


def test_a_release_with_a_git_only_dependency_is_refused_with_the_reason(tmp_path):
    for version in ("2026.2.26", "2026.3.13"):
        done = setup(version, tmp_path)
        assert done.returncode == 3, done.stderr
        assert "libsignal" in done.stderr and f"supports openclaw {OLDEST_SUPPORTED} and later" in done.stderr
    assert not (tmp_path / "node-agent").exists()  # refused before npm was asked for anything


def test_a_version_that_is_not_a_release_is_refused(tmp_path):
    assert setup("latest", tmp_path).returncode == 2


def test_each_release_gets_its_own_cache_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("NODE_AGENT_GATEWAY_DIR", raising=False)
    assert install_dir(PINNED) == tmp_path / "node-agent" / "openclaw-gateway"
    assert install_dir("2026.7.35") == tmp_path / "node-agent" / "openclaw-2026.7.35"
