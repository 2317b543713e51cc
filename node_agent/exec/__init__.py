"""Running commands for the agent: ``system.run`` under exec approvals the gateway understands.

Layers, each importable without the ones above it:

- ``jsjson``, ``jsregex``: the gateway's JSON bytes (for the approvals hash) and its regexes;
- ``document``: the approvals document and the policy it resolves to (pure);
- ``command``, ``matcher``, ``envpolicy``, ``decision``: what a command is, whether the
  allowlist covers it, which environment it may get, and whether it may run (pure);
- ``store``: the document on disk (blocking, fail-closed);
- ``runner``: one process group, run to the end (Trio);
- ``service``: the five ``system.*`` commands on top of all of it.
"""

from .service import Denial, ExecService
from .store import ApprovalsStore, Snapshot

__all__ = ["ApprovalsStore", "Denial", "ExecService", "Snapshot"]
