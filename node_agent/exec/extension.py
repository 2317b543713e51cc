"""Plugs the exec room into the agent: declares the five commands, sends their events on the
connection the invoke came in on, and keeps ``status`` and the audit log current.

Thin on purpose: everything that decides or runs lives in :mod:`node_agent.exec.service`.
Cancellation needs no code here: ``node.invoke.cancel`` and a lost connection cancel the
handler's task, and the runner kills the process group on the way out.

A ``node.event`` the gateway answers with ``handled: false`` (an exec event it did not match
to an in-flight run) is logged once per (event, reason) and counted in ``status``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ..agent.commands import CommandContext, CommandRegistry
from ..agent.connection import Connection
from ..agent.status import StatusBoard
from ..audit import FILE_NAME as AUDIT_FILE
from ..audit import AuditLog
from ..protocol import Event, HelloOk
from .service import ExecService
from .store import FILE_NAME, ApprovalsStore

log = logging.getLogger("node_agent.exec")

COMMANDS = ("system.run", "system.run.prepare", "system.which", "system.execApprovals.get",
            "system.execApprovals.set")
#: Adapters that offer commands unless configured otherwise (a Pi is a voice node first).
ENABLED_BY_DEFAULT = frozenset({"linux", "macos", "windows"})


def build_service(state_dir: Path, *, base_env: Any, default_cwd: str | None = None) -> ExecService:
    store = ApprovalsStore(state_dir / FILE_NAME)
    return ExecService(store, base_env=base_env, default_cwd=default_cwd, audit=AuditLog(state_dir / AUDIT_FILE))


class ExecExtension:
    def __init__(self, service: ExecService, status: StatusBoard) -> None:
        self.service = service
        self.status = status
        self._conn: Connection | None = None
        self._unhandled: dict[tuple[str, str], int] = {}
        self.handled = 0

    def __repr__(self) -> str:
        return f"<ExecExtension {self.service!r} connected={self._conn is not None}>"

    def prepare_store(self) -> None:
        """Write the unconfigured document if there is none (so the gateway sees the policy)."""
        try:
            snap = self.service.store.ensure()
        except Exception as exc:  # a read-only state dir: the defaults still apply in memory
            log.warning("could not write %s: %s", self.service.store.path, exc)
            return
        if not snap.usable:
            log.error("%s", snap.problem)
        self._publish(snap.problem)

    def register(self, registry: CommandRegistry) -> None:
        svc = self.service

        async def run(params: dict[str, Any], ctx: CommandContext) -> Any:
            try:
                return await svc.run(params, self._emit)
            finally:
                self._publish()

        async def prepare(params: dict[str, Any], ctx: CommandContext) -> Any:
            return await svc.prepare(params)

        async def which(params: dict[str, Any], ctx: CommandContext) -> Any:
            return await svc.which(params)

        async def approvals_get(params: dict[str, Any], ctx: CommandContext) -> Any:
            return await svc.approvals_get(params)

        async def approvals_set(params: dict[str, Any], ctx: CommandContext) -> Any:
            try:
                return await svc.approvals_set(params)
            finally:
                self._publish()

        for name, handler in zip(COMMANDS, (run, prepare, which, approvals_get, approvals_set)):
            registry.register(name, handler, cap="system")

    async def _emit(self, event: str, payload: dict[str, Any]) -> None:
        conn = self._conn
        if conn is None:
            return
        try:
            reply = await conn.node_event(event, payload)
        except Exception as exc:  # an event is a report; a failure to send must not fail the run
            log.info("could not send %s: %s", event, exc)
            return
        handled = reply.get("handled") if isinstance(reply, dict) else None
        if handled is False:
            key = (event, str(reply.get("reason")))
            if key not in self._unhandled:
                log.warning("gateway did not handle %s (%s)", event, key[1])
            self._unhandled[key] = self._unhandled.get(key, 0) + 1
        else:
            self.handled += 1

    def _publish(self, problem: str | None = None) -> None:
        svc = self.service
        self.status.update(exec={
            "enabled": True,
            "approvalsPath": str(svc.store.path),
            "problem": problem,
            "runs": svc.runs,
            "eventsHandled": self.handled,
            "eventsUnhandled": [{"event": e, "reason": r, "count": n} for (e, r), n in self._unhandled.items()],
            "lastDenials": [{"atMs": d.at_ms, "command": d.command, "reason": d.reason, "agentId": d.agent_id}
                            for d in svc.denials[-5:]],
        })

    # -- AgentExtension hooks -----------------------------------------------------------------

    async def on_ready(self, conn: Connection, hello: HelloOk) -> None:
        self._conn = conn

    async def on_event(self, conn: Connection, event: Event) -> None:
        return None

    async def on_disconnected(self) -> None:
        self._conn = None
