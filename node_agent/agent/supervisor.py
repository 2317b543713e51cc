"""The supervisor: connect, serve, and reconnect forever (or until paired, for ``node-agent pair``).

Each attempt builds fresh :class:`~node_agent.protocol.ConnectInputs` (the device token may have
changed), opens a transport, picks the dialect, and hands both to a
:class:`~.connection.Connection`. When the connection ends, the typed error's retry category
and the :class:`~.backoff.ReconnectPolicy` decide the wait; a FATAL error ends :meth:`Agent.run`
with exit status 78 (EX_CONFIG), which the systemd unit treats as "do not restart".

The supervisor is also the connection's :class:`~.connection.ConnectionHooks`: it persists
device tokens, tells a person how to approve a pending pairing, sends presence heartbeats, and
fans events out to extensions (the voice pipeline) through :class:`AgentExtension`.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Protocol

import trio

from .. import __version__
from ..adapters import PlatformAdapter
from ..config import Config
from ..errors import ConnectionLost, NodeAgentError, Retry
from ..identity import DeviceIdentity, IdentityRecord
from ..protocol import (
    ClientInfo,
    ConnectInputs,
    Credentials,
    Dialect,
    Event,
    HelloOk,
    NodePairResolved,
    OpenClawDialect,
    PairingPending,
    Session,
    Shutdown,
    Tick,
    UnknownEvent,
    VoiceWakeChanged,
)
from ..protocol.openclaw import SignatureRejected
from ..secret import Secret
from ..secrets.base import SecretStore, device_token_key
from .backoff import ReconnectPolicy
from .commands import CommandContext, CommandRegistry, builtin_registry, host_stats
from .connection import Connection, GatewayCallError, serve_once
from .status import StatusBoard

log = logging.getLogger("node_agent.agent")

EXIT_OK = 0
EXIT_FATAL = 78  # EX_CONFIG: a person must change something; restarting will not help

#: A clean stop waits this long for the gateway to answer our close frame, then just exits.
STOP_GRACE_S = 1.5


class AgentExtension(Protocol):
    """Something that rides on the connection (the voice pipeline). Hooks must return promptly;
    long work goes in a task on ``conn.nursery``."""

    async def on_ready(self, conn: Connection, hello: HelloOk) -> None: ...

    async def on_event(self, conn: Connection, event: Event) -> None: ...

    async def on_disconnected(self) -> None: ...


def transport_opener(config: Config) -> Callable[[], Any]:
    from ..transport import open_transport

    def opener() -> Any:
        return open_transport(config.gateway_url, ca_file=config.tls_ca_file, fingerprint=config.tls_fingerprint)

    return opener


class Agent:
    def __init__(self, config: Config, *, store: SecretStore, identity: DeviceIdentity, record: IdentityRecord,
                 adapter: PlatformAdapter, registry: CommandRegistry | None = None,
                 policy: ReconnectPolicy | None = None, status: StatusBoard | None = None,
                 open_transport: Callable[[], Any] | None = None, bootstrap_token: Secret | None = None,
                 exit_when_paired: bool = False, on_message: Callable[[str], None] | None = None,
                 extensions: list[AgentExtension] | None = None, dialect: Dialect | None = None):
        self.config = config
        self.store = store
        self.identity = identity
        self.record = record
        self.adapter = adapter
        self.registry = registry or builtin_registry()
        self.policy = policy or ReconnectPolicy()
        self.status = status or StatusBoard(None)
        from .liveness import LivenessExtras

        self.liveness = LivenessExtras()
        self.extensions = [self.liveness, *(extensions or [])]
        self._open_transport = open_transport or transport_opener(config)
        self._bootstrap_token = bootstrap_token
        self._exit_when_paired = exit_when_paired
        self._on_message = on_message or (lambda text: None)
        # With a terminal to print to (`node-agent pair`), instructions go there and the log gets
        # them at INFO; a daemon has only its log, so there they are warnings a person must see.
        self._say_level = logging.INFO if on_message is not None else logging.WARNING
        self._fixed_dialect = dialect
        self._device_token: Secret | None = None
        self._token_loaded = False
        self._signature_version = 3
        self._announced_requests: set[str | None] = set()
        self._surface_hint_shown = False
        self._paired = trio.Event()
        self._stop_scope = trio.CancelScope()
        self._stopping = False
        self._conn: Connection | None = None
        self._started_at = time.time()
        self.connections = 0
        self.status.update(state="starting", gateway=config.gateway_url, deviceId=identity.device_id,
                           displayName=config.display_name, secretStore=store.name, version=__version__,
                           adapter=adapter.name)

    def __repr__(self) -> str:
        return f"<Agent {self.identity!r} gateway={self.config.gateway_url} state={self.status.get('state')}>"

    # -- lifecycle -------------------------------------------------------------------------------

    def request_stop(self) -> None:
        """Leave :meth:`run` soon. An open socket is closed with a proper close frame first:
        cancelling right away would also cancel the WebSocket's reader, and then the gateway's
        close reply could never arrive. :data:`STOP_GRACE_S` bounds the wait either way."""
        self._stopping = True
        if self._conn is not None and self._conn.close_soon(1000, "node stopping"):
            self._stop_scope.deadline = min(self._stop_scope.deadline, trio.current_time() + STOP_GRACE_S)
        else:
            self._stop_scope.cancel()

    async def run(self) -> int:
        """Connect and stay connected. Returns an exit status (0, or 78 for a fatal error)."""
        code = EXIT_OK
        with self._stop_scope:
            if self._device_token is None and not self._token_loaded:
                self._device_token = await self.store.get(device_token_key(self.config.gateway_url))
                self._token_loaded = True
            last_message: str | None = None
            while True:
                error = await self._attempt()
                if self.status.get("state") == "connected" or error.retry is Retry.SERVER_RESTART:
                    last_message = None  # a new streak starts after a good connection
                if self._stopping or self._paired.is_set():
                    break
                now = trio.current_time()
                if isinstance(error, SignatureRejected):
                    log.info("gateway rejected the v3 device signature; retrying with v2")
                    self._signature_version = 2
                delay = self.policy.next_delay(error, now)
                if delay is None:
                    self._report_fatal(error)
                    code = EXIT_FATAL
                    break
                self.status.update(state="pairing" if error.retry is Retry.PAIRING_PENDING else "waiting",
                                   lastError=error.message, retryInSeconds=round(delay, 2))
                # One warning per streak of the same failure; the repeats go to debug (a gateway
                # restart is ~15 refused connects, and that is one event for a person).
                repeat = error.message == last_message
                last_message = error.message
                quiet = error.retry in (Retry.PAIRING_PENDING, Retry.SERVER_RESTART)
                log.log(logging.DEBUG if repeat else logging.INFO if quiet else logging.WARNING,
                        "%s; retrying in %.1f s", error.message, delay)
                await trio.sleep(delay)
        self.status.close(state="stopped" if code == EXIT_OK else "error")
        return code

    async def _attempt(self) -> NodeAgentError:
        inputs = self._connect_inputs()
        self.status.update(state="connecting")

        async def start_session(transport: Any) -> tuple[Session, str | bytes | None]:
            dialect, first = await self._pick_dialect(transport)
            return Session(dialect, inputs), first

        error, was_ready = await serve_once(
            self._open_transport, start_session, self, self.registry, self._command_context,
            ping_interval=self.config.ping_interval, ping_timeout=self.config.ping_timeout, track=self._track)
        if was_ready:
            self.policy.lost(trio.current_time())
            for ext in self.extensions:
                await ext.on_disconnected()
        return error

    def _track(self, conn: Connection | None) -> None:
        self._conn = conn
        if conn is not None:
            self.connections += 1

    async def _pick_dialect(self, transport: Any) -> tuple[Dialect, str | bytes | None]:
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
        if self.status.get("dialect") != name:
            log.info("protocol auto-detected: %s", name)
        self.status.update(dialect=name)
        return get_dialect(name), first

    def _connect_inputs(self) -> ConnectInputs:
        rec = self.record
        creds = Credentials(
            device_token=self._device_token,
            bootstrap_token=self._bootstrap_token if self._device_token is None else None,
            shared_token=self.config.shared_token,
            password=self.config.password,
        )
        return ConnectInputs(
            client=ClientInfo(version=__version__, platform=rec.platform, device_family=rec.device_family,
                              display_name=self.config.display_name, instance_id=rec.instance_id,
                              model_identifier=self.adapter.model_identifier),
            credentials=creds,
            signer=self.identity,
            caps=self.registry.caps,
            commands=self.registry.commands,
            signature_version=self._signature_version,
            user_agent=f"node-agent/{__version__}",
        )

    def _command_context(self) -> CommandContext:
        return CommandContext(adapter=self.adapter, device_id=self.identity.device_id,
                              display_name=self.config.display_name, started_at=self._started_at,
                              status=self.status.snapshot)

    def _report_fatal(self, error: NodeAgentError) -> None:
        self.status.update(state="error", lastError=error.message, hint=error.hint)
        log.error("%s", error.message)
        if error.hint:
            log.error("to fix: %s", error.hint)
        self._on_message(f"error: {error.message}" + (f"\n  to fix: {error.hint}" if error.hint else ""))

    # -- ConnectionHooks -----------------------------------------------------------------------------

    async def on_ready(self, conn: Connection, hello: HelloOk) -> None:
        self.policy.connected(trio.current_time())
        self.status.update(state="connected", connectedAtMs=int(time.time() * 1000), lastError=None,
                           retryInSeconds=None, pairing=None, serverVersion=hello.server_version,
                           protocol=hello.protocol, dialect=conn.session.dialect.name, hint=None)
        log.info("connected to %s (gateway %s, protocol %s, auth %s) as %s", self.config.gateway_url,
                 hello.server_version or "?", hello.protocol or "?", hello.auth_method or "?",
                 self.identity.fingerprint)
        if self._announced_requests:
            self._on_message("device approved by the gateway")
        conn.nursery.start_soon(self._presence_loop, conn)
        for ext in self.extensions:
            await ext.on_ready(conn, hello)

    async def on_store_token(self, token: Secret) -> None:
        if self._device_token == token and self.status.get("tokenSaveError") is None:
            return  # already saved (after a failed save the same token must be written again)
        try:
            await self.store.set(device_token_key(self.config.gateway_url), token)
        except NodeAgentError as exc:
            # Keep running on the token in memory; the gateway re-sends it on every connect, so the
            # next connect retries the save. The old token on disk stays intact (atomic writes).
            log.error("could not save the device token (%s); will retry on the next connect", exc.message)
            self.status.update(tokenSaveError=exc.message)
        else:
            log.info("device token saved to the %s secret store", self.store.name)
            self.status.update(tokenSaveError=None)
        self._device_token = token
        self._bootstrap_token = None

    async def on_forget_token(self) -> None:
        log.warning("the gateway refused this device's token (revoked, rotated, or the device was removed); "
                    "forgetting it and pairing again with the shared token")
        self._device_token = None
        try:
            await self.store.delete(device_token_key(self.config.gateway_url))
        except NodeAgentError as exc:
            log.error("could not delete the refused device token: %s", exc.message)

    async def on_pairing_pending(self, pending: PairingPending) -> None:
        self.status.update(state="pairing", pairing={"requestId": pending.request_id, "reason": pending.reason,
                                                     "code": pending.code, "expiresAtMs": pending.expires_at_ms})
        key = pending.code or pending.request_id
        if key in self._announced_requests:
            return
        self._announced_requests.add(key)
        text = approval_instructions(self.identity, pending, self.config.display_name)
        for line in text.splitlines():
            log.log(self._say_level, "%s", line)
        self._on_message(text)
        if pending.code and self.adapter.speech is not None and self._conn is not None:
            # Spoken in the background: the reader must keep serving the socket meanwhile.
            self._conn.nursery.start_soon(self._speak_code, pending.code)

    async def _speak_code(self, code: str) -> None:
        assert self.adapter.speech is not None
        try:
            with trio.move_on_after(30):
                await self.adapter.speech.say(f"Pairing code: {' '.join(code)}")
        except Exception as exc:  # speech is a courtesy; never let it break pairing
            log.info("could not speak the pairing code (%s)", type(exc).__name__)

    async def on_event(self, conn: Connection, event: Event) -> None:
        body = event.body
        if isinstance(body, Tick):
            pass
        elif isinstance(body, Shutdown):
            log.info("gateway is shutting down (%s); will reconnect", body.reason or "no reason given")
            self.status.update(state="gateway-restarting")
        elif isinstance(body, VoiceWakeChanged):
            self.status.update(voiceWakeTriggers=list(body.triggers))
        elif isinstance(body, NodePairResolved):
            mine = body.node_id in (None, self.identity.device_id, conn.session.hello and conn.session.hello.node_id)
            if body.approved and body.token is None and mine:
                log.info("the gateway approved this node's commands")
                conn.nursery.start_soon(self._send_presence, conn, "manual")
        elif isinstance(body, UnknownEvent):
            log.debug("unknown event %s ignored", event.name)
        for ext in self.extensions:
            await ext.on_event(conn, event)

    # -- presence ------------------------------------------------------------------------------------

    async def _presence_loop(self, conn: Connection) -> None:
        trigger = "connect"
        while True:
            await self._send_presence(conn, trigger)
            trigger = "background"
            await trio.sleep(self.config.heartbeat_interval)

    async def _send_presence(self, conn: Connection, trigger: str) -> None:
        payload: dict[str, Any] = {"trigger": trigger, "displayName": self.config.display_name,
                                   "version": __version__, "platform": self.record.platform,
                                   "deviceFamily": self.record.device_family}
        try:
            await conn.node_event("node.presence.alive", payload)
        except GatewayCallError as exc:
            if exc.detail_code == "PAIRING_CHANGED":
                self._surface_pending()
                return
            log.info("presence heartbeat refused: %s", exc.message)
            return
        except ConnectionLost:
            return
        if self.status.get("surface") != "approved":
            self.status.update(surface="approved")
            if self._surface_hint_shown:
                self._on_message("node commands approved: this node is fully paired")
        if self._exit_when_paired:
            self._paired.set()
            self.request_stop()
            return
        try:
            await conn.node_event("node.host.stats", host_stats())
        except (GatewayCallError, ConnectionLost) as exc:
            log.debug("node.host.stats not accepted: %s", exc)

    def _surface_pending(self) -> None:
        self.status.update(surface="pending")
        if self._surface_hint_shown:
            return
        self._surface_hint_shown = True
        text = ("connected, but the gateway has not approved this node's commands yet.\n"
                "On the gateway host run:\n"
                "  openclaw nodes pending\n"
                "  openclaw nodes approve <requestId>     # the request for "
                f"{self.config.display_name} ({self.identity.fingerprint})")
        for line in text.splitlines():
            log.log(self._say_level, "%s", line)
        self._on_message(text)


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
            f"and, once it connects, approve its commands:\n"
            f"  openclaw nodes pending\n"
            f"  openclaw nodes approve <requestId>")
