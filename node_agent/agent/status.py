"""What the agent is doing right now, for people and supervisors: one typed model, one writer.

:class:`AgentStatus` is the whole picture (connection state, pairing, the operator link, voice,
running commands, MCP tools, refused events); ``status.json`` in the state directory is its serialization (camelCase keys),
and :func:`read_status` reads it back through the same model, so ``node-agent status``,
``doctor`` and the ``pair`` screen see exactly the fields the daemon wrote, typed.

Each section has one owner that publishes it through :meth:`StatusBoard.update`: the node link
owns the connection fields, the operator link its :class:`LinkStatus`, the voice extension its
:class:`VoiceStatus`, the exec room its :class:`ExecStatus`. The board is the only thing that
writes the file.

Invariants:

* An update that changes nothing writes nothing and wakes nobody.
* The file is written by :meth:`StatusBoard.run`, a task that writes the latest state at most
  once per :data:`WRITE_INTERVAL_S` (the first change after a quiet interval at once), in a
  worker thread (a slow disk never stalls the event loop), atomically
  (:func:`node_agent.atomic.atomic_write`, so a reader never sees half a file) and without an
  fsync (it describes this process, which a power cut ends too). Without that task running
  nothing reaches the disk until :meth:`StatusBoard.close`, which writes synchronously: the
  process is ending.
* Writing is best effort: a full disk must never stop the agent, so a failed write is logged once
  and retried on the next change.
* One write at a time: :meth:`StatusBoard.close` writes from the Trio thread while the writer's
  worker thread may still be writing; a lock orders them (two writes of one file at once would
  sweep each other's temp file away: ``atomic_write`` treats its own process's temps as stale).
* No secret is ever a field: a gateway URL is stored without its password.

This module imports neither Trio nor anything heavy at import time: ``node-agent status`` reads
the file through it.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import logging
import os
import threading
import time
import types
import typing
from pathlib import Path
from typing import Any, Callable, TypeVar
from urllib.parse import urlsplit, urlunsplit

log = logging.getLogger("node_agent.status")

STATUS_FILE = "status.json"
#: Least time between two writes of the file. A burst of changes -- 500 ``system.run`` in a row,
#: each counted in ``exec.runs``; a link flapping -- costs one write a second, not one each (a
#: write is ~0.4 ms of CPU and a worker-thread hop, which on a 2-core board competes with the
#: next command); a person reading ``status`` sees it at most a second late.
WRITE_INTERVAL_S = 1.0

_T = TypeVar("_T")


class LinkState(enum.Enum):
    """What a link to the gateway is doing: the node link's is the agent's ``state``; the
    operator link has its own in its section."""

    STARTING = "starting"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    #: Waiting for a person to approve this device (a request id or a code is on show).
    PAIRING = "pairing"
    #: Between attempts (``retryInSeconds`` says how long).
    WAITING = "waiting"
    GATEWAY_RESTARTING = "gateway-restarting"
    STOPPED = "stopped"
    #: Stopped by something only a person can fix (``lastError`` and ``hint`` say what).
    ERROR = "error"
    #: The operator link: waiting for the node link to be up before it asks anything.
    WAITING_FOR_NODE = "waiting-for-node"
    #: The operator link is not needed (the gateway speaks a dialect that sends talk.mode to nodes).
    OFF = "off"


class Surface(enum.Enum):
    """The node's declared commands, as the gateway sees them (OpenClaw's second pairing stage)."""

    PENDING = "pending"
    APPROVED = "approved"
    #: The gateway's release never tells a node (2026.3.31 - 2026.7.35) and no invoke has
    #: arrived yet to prove it (see :mod:`node_agent.protocol.releases`).
    UNCONFIRMED = "unconfirmed"


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class PairingStatus:
    """The pairing on show: a request id (OpenClaw) or a code to type in (documented dialect)."""

    request_id: str | None = None
    reason: str | None = None
    code: str | None = None
    expires_at_ms: int | None = None


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class LinkStatus:
    state: LinkState
    role: str = "operator"
    scopes: tuple[str, ...] = ()
    granted_scopes: tuple[str, ...] | None = None
    last_error: str | None = None
    retry_in_seconds: float | None = None
    hint: str | None = None
    reason: str | None = None
    pairing: PairingStatus | None = None


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class VoiceStatus:
    """The voice pipeline (published by the voice extension). The ``last*`` records are the
    pipeline's own small dicts (time, trigger, score, text...)."""

    mode: str
    phase: str
    device: str | None = None
    audio_open: bool = False
    active_triggers: tuple[str, ...] = ()
    unsupported_triggers: tuple[str, ...] = ()
    supported_phrases: tuple[str, ...] = ()
    wake_count: int = 0
    last_wake: dict[str, Any] | None = None
    last_near_miss: dict[str, Any] | None = None
    transcript_count: int = 0
    last_result: dict[str, Any] | None = None
    last_error: dict[str, Any] | None = None
    audio_restarts: int = 0
    dropped_chunks: int = 0
    stt: str | None = None
    debug_dir: str | None = None
    #: Active trigger -> {engine: micro|openwakeword|keyword, model}.
    wake_models: dict[str, Any] = dataclasses.field(default_factory=dict)
    #: The speech-to-text engine's own status (server info, fallbacks, worker restarts...).
    stt_status: dict[str, Any] | None = None
    speaking: bool = False
    barge_ins: int = 0
    #: voicewake.routing as the node resolves it, and where the last transcript went.
    routing: dict[str, Any] | None = None
    last_session_key: str | None = None
    #: Spoken replies (speak_replies): TTS order and last use, counts.
    replies: dict[str, Any] | None = None


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class ExecDenial:
    """One command this node refused to run (published by the exec room)."""

    at_ms: int
    command: str
    reason: str
    agent_id: str | None = None


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class ExecStatus:
    """Running commands for the agent (the exec room): the policy in force and recent denials.
    ``problem`` is set while the approvals document is unusable (then every command is denied)."""

    approvals_path: str
    security: str
    ask: str
    ask_fallback: str
    allowlist_entries: int = 0
    problem: str | None = None
    runs: int = 0
    last_denials: tuple[ExecDenial, ...] = ()


class McpServerState(enum.Enum):
    """Where one MCP server is in its supervision loop (:mod:`node_agent.tools.supervisor`)."""

    #: Spawning and handshaking (also again after a crash, once the backoff is over).
    STARTING = "starting"
    #: Connected and listed: its tools are published.
    READY = "ready"
    #: Ended or failed to start; waiting out the backoff before the next start.
    RESTARTING = "restarting"
    #: Failed several times in a row: still retried, reported as broken; no tools published.
    FAILING = "failing"
    #: ``enabled = false`` in the configuration: never started.
    DISABLED = "disabled"


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class McpServerStatus:
    """One MCP server as ``status`` and ``tools list`` show it."""

    name: str
    state: McpServerState
    tools: tuple[str, ...] = ()  # MCP tool names as the server listed them
    restarts: int = 0
    consecutive_failures: int = 0
    last_error: str | None = None
    stderr: str | None = None  # its last stderr line, its configured secrets masked
    builtin: bool = False


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class PublishedTool:
    """One descriptor in ``node.pluginTools.update``: its published name and where it runs."""

    name: str
    server: str
    tool: str


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class ToolsStatus:
    """The MCP tools room (published by the tools extension): its servers, the descriptors in
    the catalog, and the last ``node.pluginTools.update``."""

    servers: tuple[McpServerStatus, ...] = ()
    published: tuple[PublishedTool, ...] = ()  # the catalog now
    notes: tuple[str, ...] = ()  # tools renamed, cut or left out, and why
    sent: int | None = None  # descriptors in the last update...
    kept: int | None = None  # ...and how many the gateway kept (0 until mcp.tools.call.v1 is approved)
    publish_error: str | None = None
    published_at_ms: int | None = None
    sdk_loaded: bool = False


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class EventRefusal:
    """A ``node.event`` the gateway answered ``handled: false`` (or refused): which, why, how often."""

    event: str
    reason: str
    count: int = 1
    last_at_ms: int = 0


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class AgentStatus:
    pid: int | None = None
    started_at_ms: int | None = None
    updated_at_ms: int | None = None
    #: "run" (the daemon) or "pair".
    mode: str = "run"
    state: LinkState = LinkState.STARTING
    gateway: str | None = None
    device_id: str | None = None
    display_name: str | None = None
    secret_store: str | None = None
    version: str | None = None
    adapter: str | None = None
    dialect: str | None = None
    server_version: str | None = None
    protocol: int | None = None
    connected_at_ms: int | None = None
    last_error: str | None = None
    retry_in_seconds: float | None = None
    hint: str | None = None
    pairing: PairingStatus | None = None
    surface: Surface | None = None
    token_save_error: str | None = None
    voice_wake_triggers: tuple[str, ...] | None = None
    voice: VoiceStatus | None = None
    operator_link: LinkStatus | None = None
    exec: ExecStatus | None = None
    tools: ToolsStatus | None = None
    refused_events: tuple[EventRefusal, ...] = ()
    #: Set by :func:`read_status` only: the process that wrote the file is gone.
    stale: bool = False


# --- serialization ------------------------------------------------------------------------------


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


# The codec is the model's own fields (dataclasses.fields and their type hints), not a library:
# ``node-agent status`` reads this file on every call, and attrs + cattrs alone were ~40 ms of
# import and code generation in a command that should take 100 ms in all.
_plans: dict[type, list[tuple[str, str, Callable[[Any], Any]]]] = {}


def to_json(status: AgentStatus) -> dict[str, Any]:
    return _unstructure(status)


def _unstructure(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return {_camel(f.name): _unstructure(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (tuple, list)):
        return [_unstructure(v) for v in value]
    if isinstance(value, dict):
        return {k: _unstructure(v) for k, v in value.items()}
    return value


def from_json(data: Any) -> AgentStatus:
    """Lenient: unknown keys are ignored (a newer agent may have written them); a file that does
    not fit raises ValueError with one line."""
    if not isinstance(data, dict):
        raise ValueError("status file is not a JSON object")
    try:
        return _structure(AgentStatus, data)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"status file does not fit the status model ({exc})") from None


def section_from_json(cls: type[_T], data: dict[str, Any]) -> _T:
    """A status section (:class:`VoiceStatus`...) from its camelCase JSON shape."""
    return _structure(cls, data)


def _structure(cls: type[_T], data: Any) -> _T:
    if not isinstance(data, dict):
        raise TypeError(f"{cls.__name__} is not an object")
    plan = _plans.get(cls)
    if plan is None:
        hints = typing.get_type_hints(cls)
        plan = _plans[cls] = [(f.name, _camel(f.name), _converter(hints[f.name])) for f in dataclasses.fields(cls)]
    return cls(**{name: convert(data[key]) for name, key, convert in plan if key in data})


def _converter(hint: Any) -> Callable[[Any], Any]:
    """How a JSON value becomes a field of type ``hint`` (the types this model uses), or a
    TypeError/ValueError naming what does not fit."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return lambda value: value
    if origin in (types.UnionType, typing.Union):  # X | None
        inner = _converter(next(a for a in args if a is not type(None)))
        return lambda value: None if value is None else inner(value)
    if origin is tuple:
        item = _converter(args[0])
        return lambda value: tuple(item(v) for v in _of(value, list))
    if origin is dict:
        return lambda value: dict(_of(value, dict))
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return hint  # ValueError for a state this agent does not know
    if dataclasses.is_dataclass(hint):
        return lambda value: _structure(hint, value)
    if hint is float:
        return lambda value: float(_of(value, (int, float)))
    return lambda value: _of(value, hint)


def _of(value: Any, kind: Any) -> Any:
    if not isinstance(value, kind) or (isinstance(value, bool) and kind in (int, (int, float))):
        raise TypeError(f"{type(value).__name__} where {getattr(kind, '__name__', 'a number')} belongs")
    return value


def public_url(url: str | None) -> str | None:
    """A gateway URL as it may be shown and stored: without a user name or password in it."""
    if not url:
        return url
    try:
        parts = urlsplit(url)
        if parts.username is None and parts.password is None:
            return url
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        netloc = host + (f":{parts.port}" if parts.port else "")
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    except ValueError:
        return "(malformed URL)"


# --- the board ------------------------------------------------------------------------------------


class StatusBoard:
    def __init__(self, state_dir: Path | None, *, mode: str = "run", **initial: Any):
        self._path = state_dir / STATUS_FILE if state_dir is not None else None
        now = int(time.time() * 1000)
        self._status = AgentStatus(pid=os.getpid(), started_at_ms=now, updated_at_ms=now, mode=mode, **initial)
        self._listeners: list[Callable[[AgentStatus], None]] = []
        self._write_failed = False
        self._dirty: Any = None  # a trio.Event while the writer runs
        self._written: AgentStatus | None = None
        self._write_lock = threading.Lock()
        self._changed: list[Any] = []  # trio.Events of wait_for callers

    def __repr__(self) -> str:
        return f"<StatusBoard state={self._status.state.value}>"

    @property
    def current(self) -> AgentStatus:
        return self._status

    def subscribe(self, listener: Callable[[AgentStatus], None]) -> None:
        self._listeners.append(listener)

    def update(self, **changes: Any) -> None:
        """Change fields of :class:`AgentStatus` (snake_case names). ``gateway`` is stored
        without credentials."""
        if "gateway" in changes:
            changes["gateway"] = public_url(changes["gateway"])
        new = dataclasses.replace(self._status, **changes)
        if new == self._status:
            return
        self._status = dataclasses.replace(new, updated_at_ms=int(time.time() * 1000))
        if self._dirty is not None:
            self._dirty.set()
        for event in self._changed:
            event.set()
        for listener in self._listeners:
            try:
                listener(self._status)
            except Exception:
                log.exception("status listener failed")

    def record_refusal(self, event: str, reason: str) -> bool:
        """Count a refused ``node.event``. Returns True the first time this (event, reason) is seen
        (the caller logs it then, and only then)."""
        now = int(time.time() * 1000)
        refusals = list(self._status.refused_events)
        for i, seen in enumerate(refusals):
            if (seen.event, seen.reason) == (event, reason):
                refusals[i] = dataclasses.replace(seen, count=seen.count + 1, last_at_ms=now)
                self.update(refused_events=tuple(refusals))
                return False
        self.update(refused_events=(*refusals, EventRefusal(event=event, reason=reason, last_at_ms=now)))
        return True

    async def wait_for(self, predicate: Callable[[AgentStatus], bool]) -> AgentStatus:
        """Wait until the status satisfies ``predicate`` (for tests and the ``pair`` screen:
        no polling)."""
        import trio

        while not predicate(self._status):
            event = trio.Event()
            self._changed.append(event)
            try:
                await event.wait()
            finally:
                self._changed.remove(event)
        return self._status

    async def run(self) -> None:
        """The writer: ``status.json`` follows the model, at most once per
        :data:`WRITE_INTERVAL_S`, in a worker thread. Run it for the life of the process (in the
        root nursery)."""
        import trio

        if self._path is None:
            return
        self._dirty = trio.Event()
        self._dirty.set()  # the first state goes out at once
        try:
            while True:
                await self._dirty.wait()
                self._dirty = trio.Event()
                snapshot = self._status
                if snapshot != self._written:
                    await trio.to_thread.run_sync(self._write, snapshot)
                    # Changes meanwhile set the flag again: the latest of them goes out next.
                    await trio.sleep(WRITE_INTERVAL_S)
        finally:
            self._dirty = None

    def close(self, **changes: Any) -> None:
        """Final state on exit (``state: stopped``, no pid), written now, synchronously, so
        ``status`` does not show a ghost."""
        self.update(pid=None, **changes)
        if self._path is not None and self._status != self._written:
            self._write(self._status)

    def _write(self, snapshot: AgentStatus) -> None:
        with self._write_lock:
            # Only the latest state goes out: an older snapshot that waited for the lock would
            # overwrite a newer one (close()'s final state with a ghost). A newer state set the
            # writer's dirty flag, so it is written next anyway.
            if snapshot is not self._status or snapshot == self._written:
                return
            self._write_locked(snapshot)

    def _write_locked(self, snapshot: AgentStatus) -> None:
        from ..atomic import atomic_write

        assert self._path is not None
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            data = json.dumps(to_json(snapshot), indent=2, sort_keys=True) + "\n"
            # Not fsynced: it describes this process, which a power cut ends too (read_status
            # checks the pid), and it is rewritten on every change.
            atomic_write(self._path, data.encode("utf-8"), 0o644, durable=False)
            self._written = snapshot
            self._write_failed = False
        except OSError as exc:
            if not self._write_failed:
                log.warning("cannot write %s (%s); status will be stale until it can", self._path,
                            exc.strerror or type(exc).__name__)
            self._write_failed = True


def read_status(state_dir: Path) -> AgentStatus | None:
    """The status the agent last wrote, or None when there is none (or it is unreadable)."""
    try:
        data = json.loads((state_dir / STATUS_FILE).read_text("utf-8"))
        status = from_json(data)
    except (OSError, ValueError):
        return None
    if status.pid is not None and not _alive(status.pid):
        status = dataclasses.replace(status, state=LinkState.STOPPED, stale=True)
    return status


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
