"""``node-agent doctor``'s exec check: is the approvals document in force, and what does it say."""

from __future__ import annotations

from ..config import Config
from ..doctor import Check, fail, ok, skip
from .document import resolve
from .store import FILE_NAME, ApprovalsStore


def check_exec(config: Config) -> Check:
    """The policy in force, or why every command is denied (blocking: run it in a thread)."""
    name = "exec approvals"
    adapter = config.adapter or "linux"
    if config.adapter is not None and not config.exec.active_for(adapter):
        return skip(name, f"running commands is off for the {adapter} adapter ([exec] enabled = true turns it on)")
    snap = ApprovalsStore(config.state_dir / FILE_NAME).read()
    if not snap.usable:
        return fail(name, snap.problem or "unusable", f"fix or remove {snap.path} (chmod 600, valid JSON), or "
                    "replace it with `openclaw approvals set --node <id>`")
    policy = resolve(snap.file, None).defaults
    entries = sum(len(agent.get("allowlist", [])) for agent in (snap.file.get("agents") or {}).values())
    where = str(snap.path) if snap.exists else f"{snap.path} (not written yet)"
    return ok(name, f"{where}: security={policy.security} ask={policy.ask} askFallback={policy.ask_fallback}, "
                    f"{entries} allowlist entr{'y' if entries == 1 else 'ies'}")
