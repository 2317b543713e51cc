"""``node-agent exec``: see and edit, on the device, which commands the gateway may run here.

* ``exec policy [--agent ID] [--json]``: the effective policy (security, ask, askFallback) per
  agent, the allowlist, the document's path and hash (the one ``openclaw approvals get --node``
  shows), and why the document is not in force if it is not.
* ``exec allow PATTERN [--agent ID] [--arg-pattern REGEX]``: add an allowlist entry (``*`` by
  default: every agent). A pattern with a ``/`` is a glob on the executable's real path; a bare
  name matches commands run by that name.
* ``exec deny PATTERN [--agent ID]``: remove the entries with that pattern (or that id).

Edits go through the same store the daemon reads (compare-and-swap under its lock, 0600,
atomic), so a running agent applies them to the next command without a restart. Exit status 1
when ``deny`` removed nothing or the document is unusable.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any, Callable


def add_parser(subparsers, common: Callable[[argparse.ArgumentParser], None]) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("exec", help="show or edit which commands the gateway may run on this device",
                                   description="The exec approvals document of this node (OpenClaw's format).")
    sub = parser.add_subparsers(dest="exec_command", metavar="SUBCOMMAND", required=True)
    policy = sub.add_parser("policy", help="the effective policy, the allowlist and the document's hash")
    common(policy)
    policy.add_argument("--agent", metavar="ID", help="show the policy as this agent gets it")
    policy.add_argument("--json", action="store_true")
    allow = sub.add_parser("allow", help="allow commands matching PATTERN (a path glob or a bare name)")
    common(allow)
    allow.add_argument("pattern", metavar="PATTERN")
    allow.add_argument("--agent", metavar="ID", default="*", help="agent id (default: * = every agent)")
    allow.add_argument("--arg-pattern", metavar="REGEX",
                       help="also require the arguments (joined by spaces) to match this JavaScript regex")
    deny = sub.add_parser("deny", help="remove the allowlist entries with PATTERN (or this entry id)")
    common(deny)
    deny.add_argument("pattern", metavar="PATTERN")
    deny.add_argument("--agent", metavar="ID", default="*", help="agent id (default: *)")
    parser.set_defaults(func=run)
    return parser


def _store(args: argparse.Namespace):
    from ..exec.store import FILE_NAME, ApprovalsStore
    from .options import config_from_args

    config = config_from_args(args)
    return ApprovalsStore(config.state_dir / FILE_NAME)


def run(args: argparse.Namespace) -> int:
    store = _store(args)
    if args.exec_command == "policy":
        return _policy(store, args)
    if args.exec_command == "allow":
        return _allow(store, args)
    return _deny(store, args)


def policy_report(snap: Any, agent: str | None) -> dict[str, Any]:
    from ..exec.document import FAIL_CLOSED, resolve

    agents = sorted((snap.file.get("agents") or {}).keys())
    wanted = [agent] if agent else (agents or ["*"])
    report: dict[str, Any] = {"path": str(snap.path), "exists": snap.exists, "hash": snap.hash,
                              "problem": snap.problem, "agents": {}}
    for agent_id in wanted:
        resolved = resolve(snap.file, None if agent_id == "*" else agent_id)
        policy = FAIL_CLOSED if not snap.usable else resolved.policy
        report["agents"][agent_id] = {
            **policy.as_wire(),
            "allowlist": [{k: v for k, v in (("id", e.id), ("pattern", e.pattern), ("argPattern", e.arg_pattern),
                                             ("source", e.source)) if v is not None} for e in resolved.allowlist],
        }
    report["defaults"] = (FAIL_CLOSED if not snap.usable else resolve(snap.file, None).defaults).as_wire()
    return report


def _policy(store: Any, args: argparse.Namespace) -> int:
    snap = store.read()
    report = policy_report(snap, args.agent)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0 if snap.usable else 1
    print(f"document: {report['path']}{'' if snap.exists else ' (not written yet: the defaults below apply)'}")
    print(f"hash:     {report['hash']}")
    if snap.problem:
        print(f"NOT IN FORCE: {snap.problem}")
    d = report["defaults"]
    print(f"defaults: security={d['security']} ask={d['ask']} askFallback={d['askFallback']}")
    for agent_id, entry in report["agents"].items():
        print(f"\nagent {agent_id}: security={entry['security']} ask={entry['ask']} askFallback={entry['askFallback']}")
        if not entry["allowlist"]:
            print("  (no allowlist entries: every command is asked for)" if entry["ask"] != "off"
                  else "  (no allowlist entries)")
        for item in entry["allowlist"]:
            extra = f" args~/{item['argPattern']}/" if item.get("argPattern") else ""
            source = " (allow-always)" if item.get("source") else ""
            print(f"  {item['pattern']}{extra}{source}  [{item.get('id', '')}]")
    return 0 if snap.usable else 1


def _allow(store: Any, args: argparse.Namespace) -> int:
    from ..exec.document import add_allowlist_entries
    from ..exec.jsregex import UnsupportedPattern, compile_js

    if args.arg_pattern is not None:
        try:
            compile_js(args.arg_pattern)
        except UnsupportedPattern as exc:
            print(f"node-agent: --arg-pattern: {exc}", file=sys.stderr)
            return 2
    import uuid  # here, not at the top: `status` imports this module for its policy report

    now = int(time.time() * 1000)
    snap = store.update(lambda doc: add_allowlist_entries(doc, args.agent, [(args.pattern, args.arg_pattern)],
                                                          source=None, now_ms=now,
                                                          new_id=lambda: str(uuid.uuid4())))
    print(f"allowed {args.pattern!r} for agent {args.agent} (hash {snap.hash})")
    return 0


def _deny(store: Any, args: argparse.Namespace) -> int:
    from ..exec.document import remove_allowlist_entries

    removed = 0

    def edit(doc: dict[str, Any]) -> dict[str, Any] | None:
        nonlocal removed
        changed, removed = remove_allowlist_entries(doc, args.agent, args.pattern)
        return changed

    snap = store.update(edit)
    if not removed:
        print(f"no allowlist entry {args.pattern!r} for agent {args.agent}", file=sys.stderr)
        return 1
    print(f"removed {removed} entr{'y' if removed == 1 else 'ies'} {args.pattern!r} for agent {args.agent} "
          f"(hash {snap.hash})")
    return 0
