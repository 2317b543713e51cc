"""The node: the link configured as role ``node``, serving commands and riding extensions.

:class:`Agent` is the node agent a daemon runs: one :class:`~.link.Link` with the node's
commands (the :class:`~.commands.CommandRegistry` is also its declared surface), plus what only
the node does:

* presence: ``node.presence.alive`` at connect and then at least ``heartbeat_interval`` apart,
  on the first gateway ``tick`` after that (every ``SURFACE_PENDING_POLL_S`` on a timer for a
  while when the gateway says the commands are pending), each followed by ``node.host.stats``
  where the gateway takes it;
* the command surface (OpenClaw's second pairing stage), as far as the gateway's release lets a
  node know it (:mod:`node_agent.protocol.releases`): a refusal as
  :class:`~node_agent.errors.SurfacePending` means it awaits a person's approval (2026.8.1+);
  a release without the stage has nothing to approve; on releases that never say, the surface
  is ``unconfirmed`` until an invoke proves it, the person is told once (on the connect that
  made the request) what to approve, and on 2026.3.31, which applies an approval only at
  connect, the node reconnects once, a heartbeat later, to pick it up;
* the node's status fields (dialect, gateway version, surface, wake words, refused events);
* extensions (:class:`AgentExtension`: the voice pipeline, the operator link...) hear the node
  link's news: ready, every event, disconnected;
* ``pair`` mode: once the commands are approved (presence accepted), stop.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from typing import Any, Callable, Protocol

import trio

from .. import __version__
from ..adapters import PlatformAdapter
from ..config import Config
from ..errors import ConnectionLost, GatewayRejected, NodeAgentError, SurfacePending
from ..identity import DeviceIdentity, IdentityRecord
from ..protocol import (
    ClientInfo,
    Dialect,
    Event,
    HelloOk,
    NodeInvokeRequest,
    OpenClawDialect,
    PairingPending,
    Shutdown,
    Tick,
    UnknownEvent,
    VoiceWakeChanged,
)
from ..protocol.releases import SurfaceStage, default_allowed, profile_for
from ..secret import Secret
from ..secrets.base import SecretStore
from .backoff import ReconnectPolicy
from .commands import CommandContext, CommandRegistry, builtin_registry, host_stats, host_stats_event
from .connection import Connection, retry_while_settling
from .link import EXIT_FATAL, EXIT_OK, STOP_GRACE_S, Link, LinkRole, Notice, NoticeKind, NoticeSink, transport_opener
from .status import LinkState, StatusBoard, Surface

__all__ = ["EXIT_FATAL", "EXIT_OK", "STOP_GRACE_S", "Agent", "AgentExtension", "approval_instructions",
           "transport_opener"]

log = logging.getLogger("node_agent.agent")

#: The gateway's broadcast of accepted host stats; in ``features.events`` where they are handled.
HOST_STATS_BROADCAST = "node.hostStats"
#: How long after a PAIRING_CHANGED refusal of presence a node whose commands were approved
#: before asks once more, before it says they are pending (see :meth:`Agent._send_presence`).
SURFACE_RECHECK_S = 1.0
#: While the gateway refuses presence as "commands pending", presence is sent this often (for
#: SURFACE_PENDING_POLL_FOR_S from the first refusal, then at the heartbeat again): releases
#: 2026.8.1-8.2 tell only operator.pairing sockets about the approval (the node.pair.resolved
#: broadcast is scope-guarded; 9.6 also sends it to the node's own session), so the node learns
#: of it when presence is accepted, and a person who just approved should not wait a heartbeat.
SURFACE_PENDING_POLL_S = 5.0
SURFACE_PENDING_POLL_FOR_S = 600.0
#: A heartbeat that is due waits for the gateway's next ``tick`` (the process wakes for it anyway,
#: so an idle node has no wake-up of its own), but no longer than a tick interval and this much:
#: a gateway whose ticks went missing still gets its heartbeat.
TICK_GRACE_S = 1.0


class AgentExtension(Protocol):
    """Something that rides on the node link (the voice pipeline, MCP tools, the operator link).

    ``register`` declares the extension's commands before the first connect (``pair`` declares
    the same surface as ``run``, so an approval covers both); ``run`` is the process-long part,
    started in the root nursery by the composition root. Hooks must return promptly; long work
    goes in a task on ``conn.nursery``."""

    async def on_ready(self, conn: Connection, hello: HelloOk) -> None: ...

    async def on_event(self, conn: Connection, event: Event) -> None: ...

    async def on_disconnected(self) -> None: ...


class Agent:
    """The node agent: ``await agent.run()`` returns an exit status; :meth:`request_stop` ends it."""

    def __init__(self, config: Config, *, store: SecretStore, identity: DeviceIdentity, record: IdentityRecord,
                 adapter: PlatformAdapter, registry: CommandRegistry | None = None,
                 policy: ReconnectPolicy | None = None, status: StatusBoard | None = None,
                 open_transport: Callable[[], Any] | None = None, bootstrap_token: Secret | None = None,
                 exit_when_paired: bool = False, notices: NoticeSink | None = None,
                 extensions: list[AgentExtension] | None = None, dialect: Dialect | None = None):
        from .liveness import LivenessExtras

        self.config = config
        self.store = store
        self.identity = identity
        self.record = record
        self.adapter = adapter
        self.registry = registry or builtin_registry()
        self.status = status or StatusBoard(None)
        self.liveness = LivenessExtras()
        self.extensions: list[AgentExtension] = [self.liveness, *(extensions or [])]
        self._fixed_dialect = dialect
        self._exit_when_paired = exit_when_paired
        self._surface_hint_shown = False
        self._speech_problem: str | None = None
        #: What the gateway's release does about the surface (from the last hello-ok).
        self._profile = profile_for(None)
        #: The current connection paired this device (it went out without a device token), so
        #: on the releases that make a surface request at connect, this connect made it.
        self._fresh_pairing = False
        #: The connection whose next heartbeat reconnects to pick up the surface (once per process).
        self._pickup: Connection | None = None
        self._pickup_done = False
        #: trio time of the first "commands pending" refusal since they were last accepted.
        self._pending_since: float | None = None
        #: Set (and replaced) at every gateway tick: what a due heartbeat waits for.
        self._ticked = trio.Event()
        self._started_at = time.time()
        self.paired = False
        self._notices = notices
        # With a terminal to print to (`node-agent pair`), instructions go there and the log gets
        # them at INFO; a daemon has only its log, so there they are warnings a person must see.
        self.link = Link(config, LinkRole(name="node link", role="node", registry=self.registry,
                                          command_context=self._command_context),
                         self, store=store, identity=identity, publish=self.status.update,
                         policy=policy, open_transport=open_transport, bootstrap_token=bootstrap_token,
                         notices=self._notice, say_level=logging.INFO if notices is not None else logging.WARNING,
                         screen=notices is not None)
        self.status.update(state=LinkState.STARTING, gateway=config.gateway_url, device_id=identity.device_id,
                           display_name=config.display_name, secret_store=store.name, version=__version__,
                           adapter=adapter.name)

    def __repr__(self) -> str:
        return f"<Agent {self.identity!r} gateway={self.config.gateway_url} state={self.status.current.state.value}>"

    # -- the link, as callers see it ------------------------------------------------------------------

    async def run(self) -> int:
        code = await self.link.run()
        self.status.close(state=LinkState.STOPPED if code == EXIT_OK else LinkState.ERROR)
        log.info("node agent stopped (exit status %d)", code)
        return code

    def request_stop(self) -> None:
        self.link.request_stop()

    @property
    def connections(self) -> int:
        return self.link.connections

    @property
    def conn(self) -> Connection | None:
        return self.link.conn

    # -- RoleHooks --------------------------------------------------------------------------------------

    def client(self) -> ClientInfo:
        rec = self.record
        return ClientInfo(version=__version__, platform=rec.platform, device_family=rec.device_family,
                          display_name=self.config.display_name, instance_id=rec.instance_id,
                          model_identifier=self.adapter.model_identifier)

    async def pick_dialect(self, transport: Any) -> tuple[Dialect, str | bytes | None]:
        if self._fixed_dialect is not None:
            return self._fixed_dialect, None
        if self.config.protocol == "openclaw":
            return OpenClawDialect(), None
        from ..protocol.autodetect import DETECT_WINDOW_S, choose_dialect, get_dialect

        if self.config.protocol == "jsonrpc":
            return get_dialect("jsonrpc"), None
        first: str | bytes | None = None
        with trio.move_on_after(DETECT_WINDOW_S):
            first = await transport.receive()
        name = choose_dialect(first)
        if self.status.current.dialect != name:
            log.info("protocol auto-detected: %s", name)
        self.status.update(dialect=name)
        return get_dialect(name), first

    async def on_ready(self, conn: Connection, hello: HelloOk) -> None:
        self.status.update(server_version=hello.server_version, protocol=hello.protocol,
                           dialect=conn.session.dialect.name, token_save_error=self.link.tokens.save_error)
        self._profile = profile_for(hello.server_version)
        sent = conn.session.inputs.credentials
        self._fresh_pairing = sent.device_token is None
        # hello-ok names the auth method only from 2026.9.x; before that, say what we sent.
        auth = hello.auth_method or (f"{sent.method} (sent)" if sent.method else "none")
        log.info("connected to %s (gateway %s, protocol %s, auth %s) as %s", self.status.current.gateway,
                 hello.server_version or "?", hello.protocol or "?", auth, self.identity.fingerprint)
        conn.nursery.start_soon(self._presence_loop, conn)
        for ext in self.extensions:
            await ext.on_ready(conn, hello)

    async def on_event(self, conn: Connection, event: Event) -> None:
        body = event.body
        if isinstance(body, Shutdown):
            log.info("gateway is shutting down (%s); will reconnect", body.reason or "no reason given")
            self.status.update(state=LinkState.GATEWAY_RESTARTING)
        elif isinstance(body, VoiceWakeChanged):
            self.status.update(voice_wake_triggers=tuple(body.triggers))
        elif isinstance(body, Tick):
            self._ticked.set()
            self._ticked = trio.Event()
        elif isinstance(body, UnknownEvent):
            log.debug("unknown event %s ignored", event.name)
        for ext in self.extensions:
            await ext.on_event(conn, event)

    async def on_surface_approved(self, conn: Connection) -> None:
        log.info("the gateway approved this node's commands")
        conn.nursery.start_soon(self._send_presence, conn, "manual")

    async def on_disconnected(self) -> None:
        for ext in self.extensions:
            await ext.on_disconnected()

    def pairing_text(self, pending: PairingPending) -> str:
        return approval_instructions(self.identity, pending, self.config.display_name)

    def on_event_refused(self, event: str, reason: str) -> None:
        if self.status.record_refusal(event, reason):
            log.warning("the gateway did not take node.event %s (%s); counted in `node-agent status`",
                        event, reason)

    def _notice(self, notice: Notice) -> None:
        if self._notices is not None:
            self._notices(notice)
        pending = notice.pending
        conn = self.link.conn
        if pending is not None and pending.code and self.adapter.speech is not None and conn is not None:
            # Spoken in the background: the reader must keep serving the socket meanwhile.
            conn.nursery.start_soon(self._speak_code, pending.code)

    async def _speak_code(self, code: str) -> None:
        assert self.adapter.speech is not None
        try:
            with trio.move_on_after(30):
                await self.adapter.speech.say(f"Pairing code: {' '.join(code)}")
        except Exception as exc:  # speech is a courtesy; never let it break pairing
            # Why, with the fix, once per reason: a box without a speaker says so on the first
            # code, not on every code the gateway reissues.
            reason = exc.message if isinstance(exc, NodeAgentError) else f"{type(exc).__name__}: {exc}"
            hint = exc.hint if isinstance(exc, NodeAgentError) else None
            level = logging.DEBUG if reason == self._speech_problem else logging.INFO
            self._speech_problem = reason
            log.log(level, "could not speak the pairing code: %s%s", reason, f"; to fix: {hint}" if hint else "")

    # -- commands -----------------------------------------------------------------------------------------

    def _command_context(self, conn: Connection, request: NodeInvokeRequest) -> CommandContext:
        # The gateway only forwards an invoke for a command in the live surface: proof of it where
        # the gateway's release does not report the surface.
        if self.status.current.surface is Surface.UNCONFIRMED:
            self.status.update(surface=Surface.APPROVED)
        return CommandContext(adapter=self.adapter, device_id=self.identity.device_id,
                              display_name=self.config.display_name, started_at=self._started_at,
                              status=lambda: self.status.current, request=request, node_event=conn.node_event,
                              after_result=functools.partial(conn.after_result, request.id))

    # -- presence -------------------------------------------------------------------------------------------

    async def _presence_loop(self, conn: Connection) -> None:
        trigger = "connect"
        while True:
            await self._send_presence(conn, trigger)
            trigger = "background"
            await self._next_heartbeat(conn)
            if self._pickup is conn:  # 2026.3.31 applies approved commands at connect only
                log.info("reconnecting once to pick up this node's approved commands (openclaw %s applies "
                         "them at connect)", self._profile.version)
                conn.close_soon(1000, "picking up approved commands")
                return

    async def _next_heartbeat(self, conn: Connection) -> None:
        """Until the next presence is due: ``heartbeat_interval`` from now, then the gateway's next
        tick. Measured from the answer to the last one, so the gateway, which persists presence at
        most once a minute (``NODE_PRESENCE_PERSIST_MIN_INTERVAL_MS``), never throttles ours; with
        its 30 s ticks and the 60 s default, presence and host stats go out every third tick."""
        now = trio.current_time()
        since = self._pending_since
        if since is not None and now - since < SURFACE_PENDING_POLL_FOR_S:
            await trio.sleep(min(SURFACE_PENDING_POLL_S, self.config.heartbeat_interval))
            return
        due = now + self.config.heartbeat_interval
        hello = conn.session.hello
        tick_s = hello.policy.tick_interval_ms / 1000 if hello is not None else 0.0
        with trio.move_on_at(due + tick_s + TICK_GRACE_S):
            while True:
                await self._ticked.wait()
                if trio.current_time() >= due:
                    return

    async def _send_presence(self, conn: Connection, trigger: str) -> None:
        payload: dict[str, Any] = {"trigger": trigger, "displayName": self.config.display_name,
                                   "version": __version__, "platform": self.record.platform,
                                   "deviceFamily": self.record.device_family}
        # Approved before, refused now: after a gateway restart this connection's pairing can go
        # stale as the gateway's pairing worker comes up. The gateway then routes nothing to it
        # and closes it only on our next request, so make that request a moment later (a stale
        # connection ends and the link reconnects) rather than a heartbeat later, and say
        # "pending" only if the gateway says so again.
        attempts = 2 if self.status.current.surface is Surface.APPROVED else 1
        try:
            await retry_while_settling(lambda: conn.node_event("node.presence.alive", payload),
                                       attempts=attempts, delay=SURFACE_RECHECK_S)
        except SurfacePending:
            self._surface_pending()
            return
        except GatewayRejected as exc:
            log.info("presence heartbeat refused: %s", exc.message)
            return
        except ConnectionLost:
            return
        self._pending_since = None
        stage = self._profile.surface_stage
        if stage in (SurfaceStage.REPORTED, SurfaceStage.NONE):
            if self.status.current.surface is not Surface.APPROVED:
                self.status.update(surface=Surface.APPROVED)
                if self._surface_hint_shown:
                    self.link.say(NoticeKind.SURFACE_APPROVED, "node commands approved: this node is fully paired")
        else:
            self._surface_unreported(conn, stage)
        if self._exit_when_paired:
            self.paired = True
            self.request_stop()
            return
        await self._send_host_stats(conn)

    async def _send_host_stats(self, conn: Connection) -> None:
        # Only a gateway that handles node.host.stats (openclaw 2026.9.2+) lists its broadcast of
        # them, node.hostStats, in hello-ok: older releases drop the event (2026.8.x, 9.1 say
        # unsupported_event; up to 7.35 without a word), so it is not sent to them at all.
        hello = conn.session.hello
        if hello is None or HOST_STATS_BROADCAST not in hello.events:
            return
        stats = host_stats_event(host_stats())
        if stats is None:
            return
        try:
            await conn.node_event("node.host.stats", stats)  # a handled:false reply is counted there
        except (GatewayRejected, ConnectionLost) as exc:
            log.debug("node.host.stats not accepted: %s", exc)

    def _surface_pending(self) -> None:
        self.status.update(surface=Surface.PENDING)
        if self._pending_since is None:
            self._pending_since = trio.current_time()
        if self._surface_hint_shown:
            return
        self._surface_hint_shown = True
        self.link.say(NoticeKind.SURFACE_PENDING,
                      summary="connected; the gateway has not approved this node's commands yet: "
                              "openclaw nodes pending; openclaw nodes approve <requestId>",
                      text="connected, but the gateway has not approved this node's commands yet.\n"
                           + self._approve_commands_text())

    def _surface_unreported(self, conn: Connection, stage: SurfaceStage) -> None:
        """A release that makes a surface request but never tells the node how it went."""
        if self.status.current.surface is not Surface.APPROVED:  # an invoke may have proved it
            self.status.update(surface=Surface.UNCONFIRMED)
        if not self._fresh_pairing or self._surface_hint_shown:
            return  # only the connect that made the request knows there is one
        self._surface_hint_shown = True
        release = f"openclaw {self._profile.version}"
        if stage is SurfaceStage.AT_CONNECT and self._exit_when_paired:
            how = (f"This gateway ({release}) applies approved commands only when a node connects:\n"
                   "approve them, then start `node-agent run` (or the service).")
        elif stage is SurfaceStage.AT_CONNECT:
            wait = self.config.heartbeat_interval
            how = (f"This gateway ({release}) applies approved commands only when a node connects:\n"
                   f"node-agent reconnects once in {wait:g} s to pick them up; if you approve later, restart it.")
            if not self._pickup_done:
                self._pickup, self._pickup_done = conn, True  # the next heartbeat reconnects instead
        else:
            how = f"This gateway ({release}) does not tell a node when its commands are approved."
        self.link.say(NoticeKind.SURFACE_PENDING,
                      summary="connected; the gateway may also ask a person to approve this node's commands: "
                              "openclaw nodes pending; openclaw nodes approve <requestId>",
                      text=f"connected. The gateway also asks a person to approve this node's commands.\n{how}\n"
                           + self._approve_commands_text())

    def _approve_commands_text(self) -> str:
        text = ("On the gateway host, find the request of "
                f"{self.config.display_name} ({self.identity.fingerprint}):\n"
                "  openclaw nodes pending\n"
                "and approve it:\n"
                "  openclaw nodes approve <requestId>")
        if not self._profile.cli_approves_surface:
            text += (f"\n(openclaw {self._profile.version}'s CLI cannot: it answers \"missing scope\", asking for "
                     "operator.pairing where the gateway\nalso wants operator.write, or operator.admin for "
                     "system.run. Approve the node in the Control UI, Nodes.)")
        extra = [c for c in self.registry.commands if c not in default_allowed()]
        if extra:
            text += ("\nCommands outside the gateway's defaults are dropped unless allowed there:\n"
                     f"  {self._profile.allowlist_hint(json.dumps(extra, separators=(',', ':')))}")
        return text


def approval_instructions(identity: DeviceIdentity, pending: PairingPending, display_name: str) -> str:
    if pending.code:
        return (f"Pairing code: {pending.code}\n"
                f"Enter this code on the gateway to approve {display_name} "
                f"(device {identity.fingerprint}).")
    request = pending.request_id or "<requestId>"
    why = {"metadata-upgrade": " (its platform changed since it was approved)",
           "role-upgrade": " (it asks for a new role)", "scope-upgrade": " (it asks for more scopes)"}
    return (f"This device is waiting for approval on the gateway{why.get(pending.reason or '', '')}.\n"
            f"  name:       {display_name}\n"
            f"  device id:  {identity.fingerprint} ({identity.device_id})\n"
            f"  request id: {request}\n"
            f"On the gateway host, check the device id in `openclaw devices list`, then run:\n"
            f"  openclaw devices approve {request}\n"
            f"If the gateway then asks for this node's commands to be approved too, node-agent says so.")
