"""Plugs the exec room into the agent: declares the five commands, sends their events on the
invoke's own connection, and keeps the ``exec`` section of ``status`` current.

Thin on purpose: everything that decides or runs lives in :mod:`node_agent.exec.service`.
Cancellation needs no code here: ``node.invoke.cancel``, the deadline and a lost connection
cancel the handler's task, and the runner ends the process group on the way out. A
``node.event`` the gateway answers ``handled: false`` is logged once and counted in ``status``
by the connection itself; the replies are also kept here (``replies``) for ``status`` and tests.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Mapping

import attrs
import trio

from ..agent.commands import CommandContext, CommandRegistry
from ..agent.status import ExecDenial, ExecStatus, StatusBoard
from ..audit import AUDIT_FILE, AuditLog
from ..config.exec import ExecSettings
from ..errors import NodeAgentError
from ..protocol.replies import NodeEventReply
from .document import resolve
from .service import ExecService
from .store import FILE_NAME, ApprovalsStore, Snapshot

log = logging.getLogger("node_agent.exec")

COMMANDS = ("system.run", "system.run.prepare", "system.which", "system.execApprovals.get",
            "system.execApprovals.set")


def build_service(state_dir: Path, *, base_env: Callable[[], Mapping[str, str]],
                  settings: ExecSettings = ExecSettings(), audit: AuditLog | None = None) -> ExecService:
    """``audit``: the process's one audit log (shared with the MCP tools room, so one writer
    rotates the file); made here when not given."""
    store = ApprovalsStore(state_dir / FILE_NAME)
    audit = audit or AuditLog(state_dir / AUDIT_FILE, max_bytes=settings.audit_max_bytes)
    return ExecService(store, base_env=base_env, default_cwd=settings.cwd, audit=audit)


@attrs.frozen
class EventReply:
    event: str
    handled: bool | None
    reason: str | None


class ExecExtension:
    def __init__(self, service: ExecService, status: StatusBoard) -> None:
        self.service = service
        self.status = status
        self.replies: list[EventReply] = []

    def __repr__(self) -> str:
        return f"<ExecExtension {self.service!r}>"

    def prepare_store(self) -> None:
        """Write the unconfigured document if there is none, so the gateway sees the policy."""
        try:
            snap = self.service.store.ensure()
        except NodeAgentError as exc:  # a read-only state dir: the defaults still apply in memory
            log.warning("%s", exc.message)
            snap = self.service.store.read()
        if not snap.usable:
            log.error("%s", snap.problem)
        self._publish(snap)

    def register(self, registry: CommandRegistry) -> None:
        svc = self.service

        async def run(params: dict[str, Any], ctx: CommandContext) -> Any:
            try:
                return await svc.run(params, lambda event, payload: self._emit(ctx, event, payload))
            finally:
                await self._refresh()

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
                await self._refresh()

        for name, handler in zip(COMMANDS, (run, prepare, which, approvals_get, approvals_set)):
            registry.register(name, handler, cap="system")

    async def _emit(self, ctx: CommandContext, event: str, payload: dict[str, Any]) -> None:
        if event == "exec.finished" and ctx.after_result is not None:
            # Sent right after the run's result instead of before it: the gateway keeps a run's
            # event authorization until its terminal event when the result is ok (system.run's
            # always is), so it still takes the event, and the run does not wait for a gateway
            # round trip. exec.denied goes first and is awaited: a failed result drops the
            # authorization at once.
            ctx.after_result(event, payload, on_reply=lambda reply: self._keep(event, reply))
            return
        if ctx.node_event is None:
            return
        try:
            reply = await ctx.node_event(event, payload)
        except NodeAgentError as exc:  # an event is a report: failing to send it must not fail the run
            log.info("could not send %s: %s", event, exc.message)
            self._keep(event, None)
            return
        self._keep(event, reply)

    def _keep(self, event: str, reply: NodeEventReply | None) -> None:
        self.replies.append(EventReply(event, reply.handled, reply.reason) if reply is not None
                            else EventReply(event, False, "not sent or refused"))
        del self.replies[:-50]

    async def _refresh(self) -> None:
        # Also after a cancelled run: the denial or the run count must still reach ``status``.
        with trio.CancelScope(shield=True):
            self._publish(await self.service.snapshot())

    def _publish(self, snap: Snapshot) -> None:
        svc = self.service
        defaults = resolve(snap.file, None).defaults
        self.status.update(exec=ExecStatus(
            approvals_path=str(svc.store.path), security=defaults.security, ask=defaults.ask,
            ask_fallback=defaults.ask_fallback, problem=snap.problem, runs=svc.runs,
            allowlist_entries=sum(len(a.get("allowlist", [])) for a in (snap.file.get("agents") or {}).values()),
            last_denials=tuple(ExecDenial(at_ms=d.at_ms, command=d.command, reason=d.reason, agent_id=d.agent_id)
                               for d in svc.denials[-5:])))

    # -- AgentExtension hooks (the events come with each invoke's context instead) -------------

    async def on_ready(self, conn: Any, hello: Any) -> None:
        return None

    async def on_event(self, conn: Any, event: Any) -> None:
        return None

    async def on_disconnected(self) -> None:
        return None
