"""The ``exec approvals`` line: is the approvals document for running commands in force, and
what does it allow (the exec room's document, read through its own store: a document that
cannot be used means every command is denied, and says why)."""

from __future__ import annotations

import trio

from ..config import Config
from .check import Check, fail, ok, skip
from .context import Context

NAME = "exec approvals"


def check_exec(config: Config) -> Check:
    """The policy in force, or why every command is denied (blocking: run it in a thread)."""
    from ..exec.document import resolve
    from ..exec.store import FILE_NAME, ApprovalsStore

    adapter = config.adapter or "linux"
    if config.adapter is not None and not config.exec.active_for(adapter):
        return skip(NAME, f"running commands is off for the {adapter} adapter ([exec] enabled = true turns it on)")
    snap = ApprovalsStore(config.state_dir / FILE_NAME).read()
    if not snap.usable:
        return fail(NAME, snap.problem or "unusable", f"fix or remove {snap.path} (chmod 600, valid JSON), or "
                    "replace it with `openclaw approvals set --node <id>`")
    policy = resolve(snap.file, None).defaults
    entries = sum(len(agent.get("allowlist", [])) for agent in (snap.file.get("agents") or {}).values())
    where = str(snap.path) if snap.exists else f"{snap.path} (not written yet)"
    return ok(NAME, f"{where}: security={policy.security} ask={policy.ask} askFallback={policy.ask_fallback}, "
                    f"{entries} allowlist entr{'y' if entries == 1 else 'ies'}")


async def run(ctx: Context) -> Check:
    return await trio.to_thread.run_sync(check_exec, ctx.cfg)
