"""Every shell script we ship passes shellcheck.

Fails (does not skip) when shellcheck is missing: CI installs it, and a silently skipped lint is
a lint nobody runs.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def shell_scripts() -> list[Path]:
    scripts = sorted((REPO / "packaging").rglob("*.sh")) + sorted((REPO / "scripts").rglob("*.sh"))
    scripts += sorted((REPO / "bench").rglob("*.sh"))
    # Extension-less entry points: the README's commands, CI, and the helpers they call.
    scripts += [REPO / name for name in ("scripts/run", "scripts/test", "scripts/bootstrap", "scripts/fuzz",
                                         "scripts/interop-matrix",
                                         ".ci/run") if (REPO / name).exists()]
    in_netns = REPO / "scripts" / "in-netns"
    if in_netns.is_file():
        scripts.append(in_netns)
    return scripts


def test_there_is_something_to_check():
    assert REPO / "packaging" / "install-pi.sh" in shell_scripts()


@pytest.mark.parametrize("script", shell_scripts(), ids=lambda p: str(p.relative_to(REPO)))
def test_shellcheck(script):
    shellcheck = shutil.which("shellcheck")
    assert shellcheck, "shellcheck is not installed (apt-get install shellcheck)"
    result = subprocess.run([shellcheck, "--external-sources", str(script)], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
