"""The five exec commands, end to end: check, decide, run, report.

``ExecService`` implements ``system.run``, ``system.run.prepare``, ``system.which``,
``system.execApprovals.get`` and ``system.execApprovals.set`` against small seams of its own:
an :class:`ApprovalsStore`, a base environment, an ``emit(event, payload)`` coroutine that sends
a ``node.event`` on the connection the invoke came in on, and an audit sink. It knows nothing of
the wire; a handler returns the payload or raises :class:`~node_agent.errors.InvokeError`.

The order inside ``system.run`` is the node host's, and every early exit leaves nothing running:

1. parse and validate the request (``INVALID_REQUEST`` for malformed input);
2. an approved run must carry the exact plan ``system.run.prepare`` produced (argv, cwd, agent,
   session) with its policy snapshot; the snapshot must still hold (``SYSTEM_RUN_DENIED``);
3. environment overrides of blocked keys are refused (``SYSTEM_RUN_DENIED``, not the node host's
   ``INVALID_REQUEST``: the agent reads only ``SYSTEM_RUN_DENIED`` as "denied, not run");
4. the cwd (and, for a pinned executable, its real path) must be unchanged;
5. the decision table (``decision.py``) decides; a denial sends ``exec.denied`` and is audited;
6. "allow always" persists its entries, the cwd is checked once more, the command runs
   (``exec.started`` goes out if it is still running after a second), ``exec.finished`` goes out
   *before* the result (the gateway accepts exec events only while the run is in flight), and
   the run is audited.

An unusable approvals document resolves to ``security: deny``: nothing runs, and the denial
says why.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import stat
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import attrs
import trio

from ..childenv import without_secrets
from ..errors import InvokeError, NodeAgentError
from . import envpolicy
from .command import Command, CommandError, is_login_shell, parse_command
from .decision import decide, max_ask, min_security
from .document import (
    FAIL_CLOSED,
    Resolved,
    add_allowlist_entries,
    normalize_snapshot,
    policy_snapshot,
    resolve,
    snapshot_is_current,
)
from .matcher import allow_always_coverage, evaluate, has_exact_command_approval, resolve_executable
from .runner import RunResult, run_command
from .store import ApprovalsConflict, ApprovalsInvalid, ApprovalsStore, ApprovalsWriteError, Snapshot

log = logging.getLogger(__name__)

OUTPUT_EVENT_TAIL = 20_000
#: How long a command runs before ``exec.started`` is sent (see ``_run_reporting_start``).
STARTED_NOTICE_S = 1.0
_LOGIN_PATH_TTL_S = 60.0
Emit = Callable[[str, dict[str, Any]], Awaitable[Any]]


class AuditSink(Protocol):
    """Where runs and denials are recorded (``node_agent.audit.AuditLog`` in production)."""

    async def append(self, kind: str, **fields: Any) -> None: ...


class _NoAudit:
    async def append(self, kind: str, **fields: Any) -> None:
        pass


async def _no_emit(event: str, payload: dict[str, Any]) -> None:
    return None


@attrs.frozen
class Denial:
    """One recent denial, for ``status``."""

    at_ms: int
    command: str
    reason: str
    agent_id: str | None


def _invalid(message: str) -> InvokeError:
    return InvokeError("INVALID_REQUEST", message)


def _opt_str(params: Mapping[str, Any], key: str) -> str | None:
    value = params.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _invalid(f"{key} must be a string")
    return value.strip() or None


def _command_of(params: Any) -> Command:
    """The request's checked command (``INVALID_REQUEST`` when malformed)."""
    if not isinstance(params, dict):
        raise _invalid("params must be an object")
    try:
        return parse_command(params.get("command"), params.get("rawCommand"))
    except CommandError as exc:
        raise _invalid(str(exc)) from None


def _env_param(params: Mapping[str, Any]) -> dict[str, str] | None:
    env = params.get("env")
    if env is None:
        return None
    if not isinstance(env, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
        raise _invalid("env must be an object of string values")
    return env


def tail_text(text: str, limit: int = OUTPUT_EVENT_TAIL) -> str:
    """The node host's event output: the last ``limit`` characters, marked when cut."""
    text = text.strip()
    return text if len(text) <= limit else f"... (truncated) {text[-limit:]}"


@attrs.frozen
class _CwdCheck:
    path: str
    identity: tuple[int, int]


def _canonical_cwd(path: str) -> _CwdCheck | str:
    """The directory as it is now, or why it cannot be used for an approval-bound run."""
    absolute = os.path.abspath(path)
    try:
        info = os.stat(absolute)
        real = os.path.realpath(absolute, strict=True)
    except OSError:
        return "SYSTEM_RUN_DENIED: approval requires an existing canonical cwd"
    if not os.path.isdir(absolute):
        return "SYSTEM_RUN_DENIED: approval requires cwd to be a directory"
    if real != absolute:
        return "SYSTEM_RUN_DENIED: approval requires canonical cwd (no symlink path components)"
    return _CwdCheck(real, (info.st_dev, info.st_ino))


def _same_dir(check: _CwdCheck) -> bool:
    again = _canonical_cwd(check.path)
    return isinstance(again, _CwdCheck) and again.identity == check.identity


class ExecService:
    def __init__(self, store: ApprovalsStore, *, base_env: Callable[[], Mapping[str, str]],
                 default_cwd: str | None = None, audit: AuditSink | None = None,
                 clock_ms: Callable[[], int] | None = None, run: Callable[..., Awaitable[RunResult]] = run_command,
                 max_denials: int = 10, started_notice_s: float = STARTED_NOTICE_S) -> None:
        self.store = store
        self._base_env = base_env
        self._default_cwd = default_cwd
        self._audit = audit or _NoAudit()
        self._clock_ms = clock_ms or _wall_ms
        self._run = run
        self._max_denials = max_denials
        self._started_notice_s = started_notice_s
        self.denials: list[Denial] = []
        self.runs = 0
        self._login_paths: dict[str, tuple[float, str]] = {}

    def __repr__(self) -> str:
        return f"<ExecService store={self.store.path} runs={self.runs} denials={len(self.denials)}>"

    # -- shared --------------------------------------------------------------------------------

    async def snapshot(self) -> Snapshot:
        # Every run reads the document; it rarely changes, and a worker thread's round trip
        # costs more than checking, with one lstat here, that the last read still holds.
        return self.store.cached() or await trio.to_thread.run_sync(self.store.read)

    def _resolve(self, snap: Snapshot, agent_id: str | None) -> Resolved:
        if not snap.usable:
            return dataclasses.replace(resolve(snap.file, agent_id, fallback=FAIL_CLOSED), policy=FAIL_CLOSED)
        return resolve(snap.file, agent_id)

    def _cwd(self, requested: str | None) -> str:
        if requested:
            return requested
        if self._default_cwd:
            return self._default_cwd
        home = Path.home()
        return str(home) if home.is_dir() else "/"

    def child_env(self, overrides: Mapping[str, str] | None, *, shell_wrapper: bool) -> dict[str, str]:
        """The environment a command gets: the filtered inherited one plus accepted overrides."""
        env = envpolicy.filter_inherited(without_secrets(self._base_env()))
        accepted = envpolicy.check_overrides(overrides).accepted
        env.update(envpolicy.for_shell_wrapper(accepted) if shell_wrapper else accepted)
        return env

    async def _resolution_env(self, command: Command, env: Mapping[str, str]) -> Mapping[str, str]:
        """The environment bare names resolve in. A login shell (``sh -lc``, how the gateway sends
        every agent command) reads its profile, which may set another PATH: we ask the shell
        itself, once a minute, as the node host does, and match against what it will really run.
        If the shell cannot tell us, bare names stay unresolved (not covered: a person is asked)."""
        if not is_login_shell(command.argv):
            return env
        shell = command.argv[0]
        now = trio.current_time()
        cached = self._login_paths.get(shell)
        if cached is None or now - cached[0] > _LOGIN_PATH_TTL_S:
            result = await self._run([shell, "-lc", 'printf "%s" "$PATH"'], cwd="/", env=dict(env), timeout_ms=5000)
            path = result.stdout if result.success and result.stdout.startswith("/") else ""
            cached = self._login_paths[shell] = (now, path)
        return {**env, "PATH": cached[1]}

    async def _audit_entry(self, kind: str, **fields: Any) -> None:
        try:
            await self._audit.append(kind, **{k: v for k, v in fields.items() if v is not None})
        except NodeAgentError as exc:  # a full disk must not turn a denial into a crash
            log.warning("could not write the exec audit log: %s", exc.message)

    # -- system.execApprovals.get / set ---------------------------------------------------------

    def _approvals_payload(self, snap: Snapshot) -> dict[str, Any]:
        resolved = self._resolve(snap, None)
        return {"path": str(snap.path), "exists": snap.exists, "hash": snap.hash, "file": snap.file,
                "resolvedDefaults": resolved.defaults.as_wire()}

    async def approvals_get(self, params: Any) -> dict[str, Any]:
        if params is not None and not isinstance(params, dict):
            raise _invalid("params must be an object")
        if isinstance(params, dict) and params.get("includeResolvedDefaults") not in (None, True, False):
            raise _invalid("includeResolvedDefaults must be boolean")
        snap = await self.snapshot()
        if not snap.usable:
            log.warning("%s", snap.problem)
        return self._approvals_payload(snap)

    async def approvals_set(self, params: Any) -> dict[str, Any]:
        if not isinstance(params, dict) or not isinstance(params.get("file"), dict):
            raise _invalid("exec approvals file required")
        base_hash = params.get("baseHash")
        if base_hash is not None and not isinstance(base_hash, str):
            raise _invalid("baseHash must be a string")
        try:
            snap = await trio.to_thread.run_sync(self.store.set, params["file"], base_hash)
        except ApprovalsConflict as exc:
            raise _invalid(exc.message) from None
        except ApprovalsInvalid as exc:
            raise _invalid(exc.message) from None
        except ApprovalsWriteError as exc:
            raise InvokeError("UNAVAILABLE", exc.message) from None
        await self._audit_entry("exec.approvals.set", hash=snap.hash)
        return self._approvals_payload(snap)

    # -- system.which ----------------------------------------------------------------------------

    async def which(self, params: Any) -> dict[str, Any]:
        if not isinstance(params, dict) or not isinstance(params.get("bins"), list):
            raise _invalid("bins required")
        env = self.child_env(None, shell_wrapper=False)
        found: dict[str, str] = {}
        for name in params["bins"]:
            if not isinstance(name, str) or not name.strip() or "/" in name or "\\" in name:
                continue
            resolution = resolve_executable(name.strip(), cwd="/", env=env)
            if resolution.path:
                found[name.strip()] = resolution.path
        return {"bins": found}

    # -- system.run.prepare ---------------------------------------------------------------------

    async def prepare(self, params: Any) -> dict[str, Any]:
        command = _command_of(params)
        agent_id = _opt_str(params, "agentId")
        session_key = _opt_str(params, "sessionKey")
        overrides = _env_param(params)
        check = envpolicy.check_overrides(overrides)
        if not check.ok:
            raise InvokeError("SYSTEM_RUN_DENIED", check.refusal())
        snap = await self.snapshot()
        resolved = self._resolve(snap, agent_id)
        policy = resolved.policy
        req_security = params.get("security") if params.get("security") in ("deny", "allowlist", "full") else None
        req_ask = params.get("ask") if params.get("ask") in ("off", "on-miss", "always") else None
        bind = (req_security is None or req_ask is None or min_security(policy.security, req_security) != "full"
                or max_ask(policy.ask, req_ask) != "off")
        requested = self._cwd(_opt_str(params, "cwd"))
        if bind:
            # A plan a person will approve names a canonical directory (no symlink components),
            # whose identity the run checks again; otherwise the real path is enough.
            cwd_check = _canonical_cwd(requested)
            if isinstance(cwd_check, str):
                raise _invalid(cwd_check)
            cwd = cwd_check.path
        elif os.path.isdir(requested):
            cwd = os.path.realpath(requested)
        else:
            raise _invalid("SYSTEM_RUN_DENIED: working directory does not exist or is inaccessible")
        env = self.child_env(overrides, shell_wrapper=command.shell_payload is not None)
        argv = list(command.argv)
        if bind and command.shell_payload is None:
            # Pin the executable to the file it is now, so the approval cannot be redirected.
            resolution = resolve_executable(argv[0], cwd=cwd, env=env)
            if not resolution.real_path:
                raise _invalid("SYSTEM_RUN_DENIED: approval requires a stable executable path")
            argv[0] = resolution.real_path
        pinned = parse_command(argv)
        preview = command.preview if command.preview and command.preview != pinned.text else None
        plan: dict[str, Any] = {"argv": argv, "cwd": cwd, "commandText": pinned.text, "commandPreview": preview,
                                "agentId": agent_id, "sessionKey": session_key}
        if bind and command.shell_payload is None:
            # As the node host: bind the approval to the executable's bytes (mutableFileOperand is
            # the one plan field the gateway carries through for this), checked again at run time.
            digest = await trio.to_thread.run_sync(_file_sha256, argv[0])
            if digest is None:
                raise _invalid("SYSTEM_RUN_DENIED: approval requires a stable executable path")
            plan["mutableFileOperand"] = {"argvIndex": 0, "path": argv[0], "sha256": digest}
        plan["policySnapshot"] = policy_snapshot(resolved)
        coverage = allow_always_coverage(pinned, cwd=cwd, env=await self._resolution_env(pinned, env)) if bind else None
        return {"plan": plan, "execPolicy": {"security": policy.security, "ask": policy.ask},
                "allowAlwaysCoverage": coverage.as_wire() if coverage else {"complete": False, "patterns": []}}

    # -- system.run ------------------------------------------------------------------------------

    async def run(self, params: Any, emit: Emit = _no_emit) -> dict[str, Any]:
        command = _command_of(params)
        agent_id = _opt_str(params, "agentId")
        requested_session = _opt_str(params, "sessionKey")
        session_key = requested_session or "node"
        run_id = _opt_str(params, "runId") or str(uuid.uuid4())
        requested_cwd = _opt_str(params, "cwd")
        overrides = _env_param(params)
        timeout_ms = params.get("timeoutMs")
        if timeout_ms is not None and (isinstance(timeout_ms, bool) or not isinstance(timeout_ms, (int, float))
                                       or timeout_ms < 0):
            raise _invalid("timeoutMs must be a number >= 0")
        suppress = params.get("suppressNotifyOnExit") is True
        decision_param = params.get("approvalDecision")
        if decision_param not in (None, "allow-once", "allow-always"):
            raise _invalid("approvalDecision must be allow-once or allow-always")
        source = params.get("approvalSource")
        if source not in (None, "ask-fallback", "auto-review"):
            raise _invalid("approvalSource invalid")
        if source is not None and (params.get("approved") is not None or decision_param is not None):
            raise _invalid("approvalSource cannot be combined with explicit approval")
        approved = params.get("approved") is True or decision_param is not None
        ask_fallback = source == "ask-fallback"
        base = {"sessionKey": session_key, "runId": run_id, "host": "node", "command": command.text}

        async def deny(reason: str, message: str) -> None:
            await emit("exec.denied", {**base, "reason": reason, "suppressNotifyOnExit": suppress})
            self._remember_denial(command.text, reason, agent_id)
            await self._audit_entry("exec.denied", runId=run_id, agentId=agent_id, sessionKey=requested_session,
                                    argv=list(command.argv), cwd=requested_cwd, decision="deny", reason=reason,
                                    message=message)
            raise InvokeError("SYSTEM_RUN_DENIED", message.removeprefix("SYSTEM_RUN_DENIED: "))

        plan = None
        snapshot_expected = None
        if approved or source is not None:
            plan = _matching_plan(params.get("systemRunPlan"), command, requested_cwd, agent_id, requested_session)
            snapshot_expected = normalize_snapshot(plan.get("policySnapshot")) if plan is not None else None
            if plan is None:
                raise _invalid("explicit approval requires matching systemRunPlan")
            if snapshot_expected is None:
                raise _invalid("delayed approval requires a prepared policy snapshot")
        if source == "auto-review":
            await deny("approval-required", "SYSTEM_RUN_DENIED: this node accepts approvals by a person only")
        if params.get("needsScreenRecording") is True:
            await deny("permission:screenRecording", "PERMISSION_MISSING: screenRecording")
        check = envpolicy.check_overrides(overrides)
        if not check.ok:
            await deny("env-override-rejected", check.refusal())

        snap = await self.snapshot()
        resolved = self._resolve(snap, agent_id)
        if snapshot_expected is not None and not snapshot_is_current(snapshot_expected, policy_snapshot(resolved)):
            await deny("approval-required", "SYSTEM_RUN_DENIED: exec approval policy changed; request approval again")

        bound = approved or ask_fallback
        cwd = self._cwd(requested_cwd)
        cwd_check: _CwdCheck | None = None
        if bound or resolved.policy.security == "allowlist":
            checked = _canonical_cwd(cwd)
            if isinstance(checked, str):
                await deny("cwd-unavailable" if not os.path.isdir(cwd) else "approval-required",
                           "SYSTEM_RUN_DENIED: approval cwd changed before execution" if bound else checked)
            assert isinstance(checked, _CwdCheck)  # deny() raised otherwise
            cwd_check = checked
            cwd = checked.path
        env = self.child_env(overrides, shell_wrapper=command.shell_payload is not None)
        evaluation = evaluate(command, resolved.allowlist, cwd=cwd, env=await self._resolution_env(command, env))
        durable = evaluation.durable or has_exact_command_approval(resolved.allowlist, command.text)
        decision = decide(resolved.policy, analysis_ok=evaluation.analysis_ok, covered=evaluation.satisfied,
                          durable=durable, approved=approved, ask_fallback=ask_fallback)
        if not decision.allowed:
            message = decision.message or "SYSTEM_RUN_DENIED"
            if not snap.usable:
                message = f"{message} ({snap.problem})"
            await deny(decision.reason or "approval-required", message)

        executable = None
        if command.shell_payload is None:
            if bound:
                # The plan pinned argv[0] to a real path (and its bytes); it must still be that file.
                if os.path.realpath(command.argv[0]) != command.argv[0] or not os.access(command.argv[0], os.X_OK):
                    await deny("approval-required", "SYSTEM_RUN_DENIED: approval executable changed before execution")
                executable = command.argv[0]
        if bound and plan is not None and plan.get("mutableFileOperand") is not None:
            operand = plan["mutableFileOperand"]
            index = operand.get("argvIndex") if isinstance(operand, dict) else None
            if not isinstance(index, int) or not 0 <= index < len(command.argv) \
                    or command.argv[index] != operand.get("path") \
                    or os.path.realpath(str(operand.get("path"))) != operand.get("path") \
                    or await trio.to_thread.run_sync(_file_sha256, str(operand.get("path"))) != operand.get("sha256"):
                await deny("approval-required", "SYSTEM_RUN_DENIED: approval script operand changed before execution")
        if command.shell_payload is None and not bound:
            if evaluation.satisfied and evaluation.matches and evaluation.matches[0].resolution.path:
                executable = evaluation.matches[0].resolution.path  # run the file that matched

        if decision_param == "allow-always":
            await self._persist_allow_always(command, agent_id, cwd, env)
        if cwd_check is not None and not _same_dir(cwd_check):
            await deny("approval-required", "SYSTEM_RUN_DENIED: approval cwd changed before execution")

        self.runs += 1
        result = await self._run_reporting_start(
            emit, {**base, "suppressNotifyOnExit": suppress}, list(command.argv), cwd=cwd, env=env,
            executable=executable, timeout_ms=int(timeout_ms) if timeout_ms else None)
        combined = "\n".join(part for part in (result.stdout, result.stderr, result.error or "") if part)
        finished = {**base, "timedOut": result.timed_out, "success": result.success,
                    "output": tail_text(combined), "suppressNotifyOnExit": suppress}
        if result.exit_code is not None:
            finished["exitCode"] = result.exit_code
        await emit("exec.finished", finished)
        await self._audit_entry("exec.run", runId=run_id, agentId=agent_id, sessionKey=requested_session,
                                argv=list(command.argv), cwd=cwd, decision="allow",
                                reason="approved" if decision.by_approval else
                                ("allowlist" if decision.security == "allowlist" else "security=full"),
                                approvalDecision=decision_param, exitCode=result.exit_code,
                                timedOut=result.timed_out, durationMs=result.duration_ms,
                                stdoutBytes=result.stdout_bytes, stderrBytes=result.stderr_bytes, error=result.error)
        return result.payload()

    async def _run_reporting_start(self, emit: Emit, started: dict[str, Any], argv: list[str],
                                   **options: Any) -> RunResult:
        """Run the command; if it is still running after :data:`STARTED_NOTICE_S`, send
        ``exec.started`` meanwhile. A quick command (most are) costs no extra round trip to the
        gateway, which would otherwise post "Exec started" to the session right before
        "Exec finished"; a long one is reported while it runs."""
        result: list[RunResult] = []
        async with trio.open_nursery() as nursery:
            async def run() -> None:
                result.append(await self._run(argv, **options))
                nursery.cancel_scope.cancel()  # the notice is moot now

            async def notice() -> None:
                await trio.sleep(self._started_notice_s)
                with trio.CancelScope(shield=True):  # once begun, the event is sent whole
                    await emit("exec.started", started)

            nursery.start_soon(run)
            nursery.start_soon(notice)
        return result[0]

    async def _persist_allow_always(self, command: Command, agent_id: str | None, cwd: str,
                                    env: Mapping[str, str]) -> None:
        coverage = allow_always_coverage(command, cwd=cwd, env=await self._resolution_env(command, env))
        if not agent_id or not coverage.patterns:
            log.info("allow-always for %r stores nothing reusable (%s); it ran once", command.text,
                     "no agent id" if not agent_id else "no pattern covers it")
            return
        now = self._clock_ms()

        def edit(doc: dict[str, Any]) -> dict[str, Any] | None:
            return add_allowlist_entries(doc, agent_id, coverage.entries(command.text), source="allow-always",
                                         now_ms=now, new_id=lambda: str(uuid.uuid4()))

        try:
            await trio.to_thread.run_sync(self.store.update, edit)
        except (ApprovalsInvalid, ApprovalsWriteError) as exc:
            # The person approved this run; failing to remember it only means asking next time.
            log.warning("could not persist allow-always for %r: %s", command.text, exc.message)

    def _remember_denial(self, command: str, reason: str, agent_id: str | None) -> None:
        self.denials.append(Denial(self._clock_ms(), command, reason, agent_id))
        del self.denials[: -self._max_denials]


def _matching_plan(raw: Any, command: Command, cwd: str | None, agent_id: str | None,
                   session_key: str | None) -> dict[str, Any] | None:
    """The forwarded plan, if it describes exactly this run (``argvArraysMatch`` and friends)."""
    if not isinstance(raw, dict) or not isinstance(raw.get("argv"), list):
        return None

    def norm(value: Any) -> str | None:
        return value.strip() or None if isinstance(value, str) else None

    if [str(a) for a in raw["argv"]] != list(command.argv):
        return None
    text = norm(raw.get("commandText")) or norm(raw.get("rawCommand"))
    if text != command.text or norm(raw.get("cwd")) != cwd or norm(raw.get("agentId")) != agent_id \
            or norm(raw.get("sessionKey")) != session_key:
        return None
    return raw


def _file_sha256(path: str, limit: int = 512 * 1024 * 1024) -> str | None:
    """The SHA-256 of a regular file (None if it is not one, or larger than ``limit``)."""
    try:
        with open(path, "rb") as f:
            info = os.fstat(f.fileno())
            if not stat.S_ISREG(info.st_mode) or info.st_size > limit:
                return None
            digest = hashlib.sha256()
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
            return digest.hexdigest()
    except OSError:
        return None


def _wall_ms() -> int:
    return int(time.time() * 1000)
