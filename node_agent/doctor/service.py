"""The ``service`` line: the systemd unit ``service install`` wrote (or the ones named with
``--unit-file``) passes ``systemd-analyze verify``; only the lines about our unit count."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Sequence

import trio

from ..childenv import helper_env
from .check import Check, Status, ok, skip
from .context import Context

NAME = "service"


def installed_unit_files() -> list[tuple[Path, bool]]:
    """``(path, user_scope)`` of the systemd units ``service install`` would have written."""
    from ..service.manage import ServiceManager
    from ..service.spec import Platform, Scope

    found = []
    for scope in (Scope.SYSTEM, Scope.USER):
        path = ServiceManager.from_environ(Platform.SYSTEMD, scope).definition_path()
        if path.is_file():
            found.append((path, scope is Scope.USER))
    return found


async def check_service(unit_files: Sequence[Path] | None = None) -> Check:
    if not sys.platform.startswith("linux"):
        return skip(NAME, f"unit verification is for systemd; not checked on {sys.platform}")
    if unit_files is None:
        units = installed_unit_files()
    else:
        # A unit under a systemd/user directory is verified in user mode.
        units = [(Path(p), "user" in Path(p).parts) for p in unit_files if Path(p).is_file()]
    if not units:
        return skip(NAME, "no systemd unit installed", "to run at boot: `sudo node-agent service install` "
                                                       "(or `node-agent service install --user`)")
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        return skip(NAME, f"{', '.join(str(p) for p, _ in units)} installed; systemd-analyze is not available to "
                          "verify it")
    findings = [(path, await _verify_unit(analyze, path, user)) for path, user in units]
    problems = [(path, found) for path, found in findings if found is not None]
    if problems:
        level = Status.FAIL if any(status is Status.FAIL for _, (status, _) in problems) else Status.WARN
        user_flag = " --user" if all(user for _, user in units) else ""
        return Check(NAME, level, "; ".join(f"{path}: {text}" for path, (_, text) in problems),
                     f"regenerate it: `node-agent service install{user_flag}` (`node-agent service print` shows "
                     "what it would write)")
    return ok(NAME, f"{', '.join(str(p) for p, _ in units)}: systemd-analyze verify passes")


async def _verify_unit(analyze: str, path: Path, user: bool) -> tuple[Status, str] | None:
    """``None`` when verify is happy; else how bad, and the first line that names our unit."""
    env = helper_env()
    with tempfile.TemporaryDirectory(prefix="node-agent-doctor-") as runtime:
        if user and not env.get("XDG_RUNTIME_DIR"):
            env["XDG_RUNTIME_DIR"] = runtime  # a user-mode analysis needs one, even offline
        argv = [analyze, *(["--user"] if user else []), "verify", str(path)]
        try:
            with trio.fail_after(30):
                result = await trio.run_process(argv, env=env, check=False, capture_stdout=True,
                                                capture_stderr=True, stdin=subprocess.DEVNULL)
        except trio.TooSlowError:
            return Status.WARN, "systemd-analyze verify did not finish within 30 s"
        except OSError as exc:
            return Status.WARN, f"cannot run systemd-analyze: {exc.strerror}"
    lines = [line.strip() for line in (result.stderr + result.stdout).decode(errors="replace").splitlines()
             if line.strip()]
    # verify also complains about other units it happens to load; only lines about ours count.
    ours = [line for line in lines if path.name in line or str(path) in line]
    if result.returncode != 0:
        return Status.FAIL, " / ".join((ours or lines or [f"systemd-analyze verify exited {result.returncode}"])[:2])
    if ours:
        return Status.WARN, " / ".join(ours[:2])
    return None


async def run(ctx: Context) -> Check:
    return await check_service(ctx.options.unit_files)
