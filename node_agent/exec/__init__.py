"""Running commands for the agent: ``system.run`` under exec approvals the gateway understands.

Layers, each importable without the ones above it:

- ``jsjson``, ``jsregex``: the gateway's JSON bytes (for the approvals hash) and its regexes;
- ``document``: the approvals document and the policy it resolves to (pure);
- ``command``, ``matcher``, ``envpolicy``, ``decision``: what a command is, whether the
  allowlist covers it, which environment it may get, and whether it may run (pure);
- ``store``: the document on disk (blocking, fail-closed);
- ``runner``: one process group, run to the end (Trio);
- ``service``: the five ``system.*`` commands on top of all of it;
- ``extension``: the glue to the agent (``node-agent doctor``'s check of the document is
  :mod:`node_agent.doctor.exec_approvals`).

Import rule: importing this package imports nothing; ``store``, ``document`` and the pure
modules import neither Trio nor the agent, so ``node-agent status`` and ``node-agent exec
policy`` stay light. Only ``runner``, ``service`` and ``extension`` import Trio.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ApprovalsStore", "Denial", "ExecService", "Snapshot"]


def __getattr__(name: str) -> Any:
    if name in ("ExecService", "Denial"):
        from . import service

        return getattr(service, name)
    if name in ("ApprovalsStore", "Snapshot"):
        from . import store

        return getattr(store, name)
    raise AttributeError(name)
