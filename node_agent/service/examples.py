"""The static example definitions shipped in ``systemd/`` and ``platform/``, from code.

The files are *outputs* of the generators for fixed, documented specs; ``tests/service/test_service_units``
regenerates them and compares bytes, so an example can never drift from what ``service print``
would write. After changing a generator, refresh them with::

    python -m node_agent.service.examples [REPO_ROOT]
"""

from __future__ import annotations

import sys
from pathlib import Path

from .launchd import render_plist
from .spec import Scope, ServiceSpec
from .systemd import render_unit
from .windows import render_task_xml


def example_files() -> dict[str, bytes]:
    """Repository-relative path -> the bytes that belong there."""
    # The Pi installer's layout: venv in /opt, token in /etc/node-agent/env.
    system = ServiceSpec(argv=("/opt/node-agent/venv/bin/node-agent", "run"),
                         env_file="/etc/node-agent/env")
    # A desktop user with pipx/uv: a user unit, voice on (the reason to run in the user session).
    user = ServiceSpec(argv=("/home/pi/.local/bin/node-agent", "run"), scope=Scope.USER, voice=True,
                       env_file="/home/pi/.config/node-agent/env", home="/home/pi")
    mac = ServiceSpec(argv=("/Users/you/.local/bin/node-agent", "run"), scope=Scope.USER, voice=True,
                      log_dir="/Users/you/Library/Logs/node-agent")
    win = ServiceSpec(argv=("C:\\Users\\you\\AppData\\Local\\node-agent\\venv\\Scripts\\pythonw.exe",
                            "-m", "node_agent", "run"), scope=Scope.USER, voice=True,
                      account="YOURPC\\you")
    return {
        "systemd/node-agent.service": render_unit(system).encode("utf-8"),
        "systemd/node-agent-user.service": render_unit(user).encode("utf-8"),
        "platform/macos/ai.openclaw.node-agent.plist": render_plist(mac),
        "platform/windows/node-agent-task.xml": render_task_xml(win).encode("utf-8"),
    }


def write_examples(repo_root: Path) -> list[Path]:
    written = []
    for rel, data in example_files().items():
        path = repo_root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    root = Path(args[0]) if args else Path(__file__).resolve().parents[2]
    for path in write_examples(root):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
