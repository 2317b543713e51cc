"""One supervised link to the gateway: connect, serve, and reconnect by retry category.

A :class:`Link` is one role's connection for the life of the process. Each attempt builds fresh
:class:`~node_agent.protocol.ConnectInputs` (the device token may have changed), opens a
transport, lets the role pick the dialect, and hands both to a
:class:`~.connection.Connection`. When the connection ends, the typed error's retry category
and the :class:`~.backoff.ReconnectPolicy` decide the wait; a FATAL error ends :meth:`Link.run`
with exit status 78 (EX_CONFIG), which the systemd unit treats as "do not restart".

What a link is comes from its :class:`LinkRole`: the wire role and scopes, the commands it
serves (the node) or none (the operator), and a :class:`RoleHooks` object for what only that
role does (the node's presence and extensions; the operator link's event callback). The link
itself owns what every role shares:

* the reconnect loop and the signature fallback (the protocol's classification of a refused
  ``connect`` says when to sign v2; the link never looks at a codec's types);
* the device token, per role (:class:`TokenKeeper`): loaded once, saved when the gateway issues
  one (and again on every connect after a failed save, whether or not that connect brings it
  again), forgotten when the gateway refuses it;
* the pairing announcer: each request or code is announced once, to the log and to the
  :class:`Notice` sink (the ``pair`` screen). When a screen shows the notices (``screen=True``)
  the log keeps one line per notice, its summary: the screen is where a person reads the whole
  of it, and the same words twice on one terminal is noise;
* the link's status (state, last error, retry delay, pairing), published through one callback.

Invariants: a link never raises for gateway trouble (every failure is an error value with a
retry category); a FATAL error stops this link only; a failure streak is logged once at WARNING,
its repeats at DEBUG.
"""

from __future__ import annotations

import enum
import logging
from typing import Any, Awaitable, Callable, Protocol

import attrs
import trio

from .. import __version__
from ..config import Config
from ..errors import GatewayRejected, NodeAgentError, Retry
from ..identity import DeviceIdentity
from ..protocol import ClientInfo, ConnectInputs, Credentials, Dialect, Event, HelloOk, PairingPending, Session
from ..secret import Secret
from ..secrets.base import SecretStore, device_token_key
from .backoff import ReconnectPolicy
from .commands import CommandRegistry
from .connection import Connection, ContextFactory, serve_once
from .status import LinkState, PairingStatus

EXIT_OK = 0
EXIT_FATAL = 78  # EX_CONFIG: a person must change something; restarting will not help

#: A clean stop waits this long for the gateway to answer our close frame, then just exits.
STOP_GRACE_S = 1.5


def transport_opener(config: Config) -> Callable[[], Any]:
    def opener() -> Any:
        from ..transport import open_transport

        return open_transport(config.gateway_url, ca_file=config.tls_ca_file, fingerprint=config.tls_fingerprint)

    return opener


# --- what a person is told ------------------------------------------------------------------------


class NoticeKind(enum.Enum):
    PAIRING_PENDING = "pairing-pending"
    DEVICE_APPROVED = "device-approved"
    SURFACE_PENDING = "surface-pending"
    SURFACE_APPROVED = "surface-approved"
    FATAL = "fatal"


@attrs.frozen(kw_only=True)
class Notice:
    """Something a person at the device should read now. ``text`` is the whole message as the
    log has it; ``pending`` is the pairing itself (so a screen can show the code large, with the
    time left), ``error`` the fatal error."""

    kind: NoticeKind
    text: str
    pending: PairingPending | None = None
    error: NodeAgentError | None = None


NoticeSink = Callable[[Notice], None]


# --- the role ---------------------------------------------------------------------------------------


class RoleHooks(Protocol):
    """What one role does on top of the shared link. All hooks must return promptly."""

    async def pick_dialect(self, transport: Any) -> tuple[Dialect, str | bytes | None]:
        """The dialect for this attempt, and a first frame already read while choosing (or None)."""
        ...

    def client(self) -> ClientInfo: ...

    async def on_ready(self, conn: Connection, hello: HelloOk) -> None: ...

    async def on_event(self, conn: Connection, event: Event) -> None: ...

    async def on_surface_approved(self, conn: Connection) -> None: ...

    async def on_disconnected(self) -> None: ...

    def pairing_text(self, pending: PairingPending) -> str:
        """What a person must do to approve this pending pairing."""
        ...

    def on_event_refused(self, event: str, reason: str) -> None: ...


@attrs.frozen(kw_only=True)
class LinkRole:
    """A link's identity on the wire. ``name`` is for log lines ("node link", "operator link")."""

    name: str
    role: str
    scopes: tuple[str, ...] = ()
    #: The commands this link serves and declares; None: it serves none (invokes get UNAVAILABLE).
    registry: CommandRegistry | None = None
    command_context: ContextFactory | None = None
    #: What forgetting a refused token leads to, for the log line (the node pairs again; the
    #: operator link keeps the node's token and asks for its role again).
    after_forget: str = "pairing again with the shared token"


#: The link's own status fields, published by the link (the role decides where they go):
#: ``state``, ``last_error``, ``retry_in_seconds``, ``hint``, ``pairing``, ``connected_at_ms``.
Publish = Callable[..., None]


class TokenKeeper:
    """One role's device token: in memory, and in the secret store under a key of its own
    (:func:`~node_agent.secrets.base.device_token_key`), so roles never overwrite each other."""

    def __init__(self, store: SecretStore, gateway_url: str, role: str, *, label: str):
        self._store = store
        self.key = device_token_key(gateway_url, role=role)
        self._label = label
        self.token: Secret | None = None
        self.loaded = False
        #: Why the last save failed (None once a save succeeds). While set, the next issue of the
        #: same token is saved again.
        self.save_failure: NodeAgentError | None = None

    def __repr__(self) -> str:
        return f"<TokenKeeper {self.key} held={self.token is not None} save_error={self.save_error is not None}>"

    @property
    def save_error(self) -> str | None:
        return self.save_failure.message if self.save_failure is not None else None

    async def load(self) -> None:
        """Read the stored token (once per process; raises the store's error)."""
        self.token = await self._store.get(self.key)
        self.loaded = True

    async def keep(self, token: Secret) -> None:
        if self.token == token and self.save_failure is None:
            return  # already saved
        self.token = token
        await self._save(token, "will retry on the next connect")

    async def retry_save(self, then: str = "still failing") -> NodeAgentError | None:
        """Try once more to save a token whose save failed (the link does on a connect that did
        not bring the token again; ``pair`` does before it says how pairing went). Returns the
        failure if it still fails, None once the token is stored."""
        if self.save_failure is not None and self.token is not None:
            await self._save(self.token, then)
        return self.save_failure

    async def _save(self, token: Secret, then: str) -> None:
        try:
            await self._store.set(self.key, token)
        except NodeAgentError as exc:
            # Keep running on the token in memory; every later connect retries the save (see
            # Link._on_ready). The old token on disk stays intact (atomic writes).
            logging.getLogger("node_agent.agent").error(
                "%s: could not save the device token (%s); %s", self._label, exc.message, then)
            self.save_failure = exc
        else:
            logging.getLogger("node_agent.agent").info("%s: device token saved to the %s secret store",
                                                       self._label, self._store.name)
            self.save_failure = None

    async def forget(self) -> None:
        self.token = None
        try:
            await self._store.delete(self.key)
        except NodeAgentError as exc:
            logging.getLogger("node_agent.agent").error("%s: could not delete the refused device token: %s",
                                                        self._label, exc.message)


class Link:
    """Run with :meth:`run` (returns an exit status); stop with :meth:`request_stop`."""

    def __init__(self, config: Config, role: LinkRole, hooks: RoleHooks, *, store: SecretStore,
                 identity: DeviceIdentity, publish: Publish,
                 policy: ReconnectPolicy | None = None, open_transport: Callable[[], Any] | None = None,
                 bootstrap_token: Secret | None = None, notices: NoticeSink | None = None,
                 say_level: int = logging.WARNING, screen: bool = False,
                 gate: Callable[[], Awaitable[bool]] | None = None, logger: logging.Logger | None = None):
        self.config = config
        self.role = role
        self.hooks = hooks
        self.identity = identity
        self.policy = policy or ReconnectPolicy()
        self.tokens = TokenKeeper(store, config.gateway_url, role.role, label=role.name)
        self.log = logger or logging.getLogger("node_agent.agent")
        self._publish = publish
        self._open_transport = open_transport or transport_opener(config)
        self._bootstrap_token = bootstrap_token
        self._notices = notices or (lambda notice: None)
        self._say_level = say_level
        self._screen = screen
        self._gate = gate
        self._signature_version = 3
        self._token_offered = False  # this connection brought a device token (saved, or tried)
        self._no_token_said = False
        self._announced: set[str | None] = set()
        self._stop_scope = trio.CancelScope()
        self._stopping = False
        self.conn: Connection | None = None
        self.connections = 0
        self.state = LinkState.STARTING

    def __repr__(self) -> str:
        return f"<Link {self.role.name} {self.identity!r} state={self.state.value}>"

    @property
    def connected(self) -> bool:
        return self.conn is not None and self.conn.session.hello is not None

    # -- lifecycle ------------------------------------------------------------------------------------

    def request_stop(self) -> None:
        """Leave :meth:`run` soon. An open socket is closed with a proper close frame first:
        cancelling right away would also cancel the WebSocket's reader, and then the gateway's
        close reply could never arrive. :data:`STOP_GRACE_S` bounds the wait either way."""
        self._stopping = True
        if self.conn is not None and self.conn.close_soon(1000, "node stopping"):
            self._stop_scope.deadline = min(self._stop_scope.deadline, trio.current_time() + STOP_GRACE_S)
        else:
            self._stop_scope.cancel()

    @property
    def stopping(self) -> bool:
        return self._stopping

    async def run(self) -> int:
        """Connect and stay connected. Returns an exit status (0, or 78 for a fatal error)."""
        code = EXIT_OK
        with self._stop_scope:
            if not self.tokens.loaded:
                await self.tokens.load()
            last_message: str | None = None
            while not self._stopping:
                if self._gate is not None and not await self._gate():
                    break
                error = await self._attempt()
                if self.state is LinkState.CONNECTED or error.retry is Retry.SERVER_RESTART:
                    last_message = None  # a new streak starts after a good connection
                if self._stopping:
                    break
                if isinstance(error, GatewayRejected) and error.signature_version is not None:
                    self.log.info("%s: the gateway rejected the v%d device signature; retrying with v%d",
                                  self.role.name, self._signature_version, error.signature_version)
                    self._signature_version = error.signature_version
                delay = self.policy.next_delay(error, trio.current_time())
                if delay is None:
                    self._report_fatal(error)
                    code = EXIT_FATAL
                    break
                pairing = error.retry is Retry.PAIRING_PENDING
                self._set_state(LinkState.PAIRING if pairing else LinkState.WAITING, last_error=error.message,
                                retry_in_seconds=round(delay, 2))
                # One warning per streak of the same failure; the repeats go to debug (a gateway
                # restart is ~15 refused connects, and that is one event for a person).
                repeat = error.message == last_message
                last_message = error.message
                quiet = error.retry in (Retry.PAIRING_PENDING, Retry.SERVER_RESTART)
                # A screen showing the pending pairing already says what this retry is waiting for.
                shown = pairing and self._screen and bool(self._announced)
                self.log.log(logging.DEBUG if repeat or shown else logging.INFO if quiet else logging.WARNING,
                             "%s; retrying in %.1f s", self._named(error.message), delay)
                await trio.sleep(delay)
        if self.state is not LinkState.ERROR:
            self._set_state(LinkState.STOPPED)
        return code

    def _named(self, text: str) -> str:
        return text if self.role.role == "node" else f"{self.role.name}: {text}"

    async def _attempt(self) -> NodeAgentError:
        self._token_offered = False
        inputs = self.connect_inputs()
        self._set_state(LinkState.CONNECTING)

        async def start_session(transport: Any) -> tuple[Session, str | bytes | None]:
            dialect, first = await self.hooks.pick_dialect(transport)
            return Session(dialect, inputs), first

        error, was_ready = await serve_once(
            self._open_transport, start_session, _Hooks(self), registry=self.role.registry,
            command_context=self.role.command_context, ping_interval=self.config.ping_interval,
            ping_timeout=self.config.ping_timeout, track=self._track)
        if was_ready:
            self.policy.lost(trio.current_time())
            await self.hooks.on_disconnected()
        return error

    def _track(self, conn: Connection | None) -> None:
        self.conn = conn
        if conn is not None:
            self.connections += 1

    def connect_inputs(self) -> ConnectInputs:
        token = self.tokens.token
        creds = Credentials(device_token=token,
                            bootstrap_token=self._bootstrap_token if token is None else None,
                            shared_token=self.config.shared_token, password=self.config.password)
        registry = self.role.registry
        return ConnectInputs(client=self.hooks.client(), credentials=creds, signer=self.identity,
                             caps=registry.caps if registry is not None else (),
                             commands=registry.commands if registry is not None else (),
                             role=self.role.role, scopes=self.role.scopes,
                             signature_version=self._signature_version, user_agent=f"node-agent/{__version__}")

    # -- status and messages -----------------------------------------------------------------------------

    def _set_state(self, state: LinkState, **fields: Any) -> None:
        self.state = state
        self._publish(state=state, **fields)

    def say(self, kind: NoticeKind, text: str, *, summary: str | None = None, **extra: Any) -> None:
        """Tell a person: in the log (a warning for a daemon, which has only its log) and on the
        notice sink (the ``pair`` screen). With a screen, the log gets ``summary`` alone (one
        line; the text's first line when there is none)."""
        lines = [summary or text.splitlines()[0]] if self._screen and text else text.splitlines()
        for line in lines:
            self.log.log(self._say_level, "%s", line)
        self._notices(Notice(kind=kind, text=text, **extra))

    def _report_fatal(self, error: NodeAgentError) -> None:
        self._set_state(LinkState.ERROR, last_error=error.message, hint=error.hint)
        if self._screen and error.hint:
            self.log.error("%s (to fix: %s)", self._named(error.message), error.hint)
        else:
            self.log.error("%s", self._named(error.message))
            if error.hint:
                self.log.error("to fix: %s", error.hint)
        self._notices(Notice(kind=NoticeKind.FATAL, error=error,
                             text=f"error: {error.message}" + (f"\n  to fix: {error.hint}" if error.hint else "")))

    # -- the connection's news ------------------------------------------------------------------------------

    async def _on_ready(self, conn: Connection, hello: HelloOk) -> None:
        self.policy.connected(trio.current_time())
        self._bootstrap_token = None  # a setup code pairs once
        self._set_state(LinkState.CONNECTED, connected_at_ms=_now_ms(), last_error=None, retry_in_seconds=None,
                        pairing=None, hint=None)
        if not self._token_offered:
            # A dialect may not hand over again a token we presented ourselves (the documented one
            # does not): a save that failed earlier is retried on every connect all the same.
            await self.tokens.retry_save("will retry on the next connect")
        if self.tokens.token is None and not self._no_token_said:
            # openclaw 2026.3.22 approves a node that asks for no scopes, then finds no scope
            # baseline to issue its token against: the node stays on the gateway token.
            self._no_token_said = True
            self.log.info("%s", self._named("the gateway issued no device token; connecting with the gateway "
                                            "token, which must stay configured"))
        if self._announced:
            self._announced.clear()
            self.say(NoticeKind.DEVICE_APPROVED, f"{self.role.name}: device approved by the gateway"
                     if self.role.role != "node" else "device approved by the gateway")
        await self.hooks.on_ready(conn, hello)

    async def _on_pairing_pending(self, pending: PairingPending) -> None:
        self._set_state(LinkState.PAIRING, pairing=PairingStatus(request_id=pending.request_id, reason=pending.reason,
                                                                 code=pending.code,
                                                                 expires_at_ms=pending.expires_at_ms))
        key = pending.code or pending.request_id
        if key in self._announced:
            return
        self._announced.add(key)
        self.say(NoticeKind.PAIRING_PENDING, self.hooks.pairing_text(pending), pending=pending,
                 summary=self._pairing_summary(pending))

    def _pairing_summary(self, pending: PairingPending) -> str:
        """The pairing as one log line, with everything needed to act on it."""
        who = f"{self.config.display_name} (device {self.identity.fingerprint})"
        if pending.code:
            until = f", valid until {_clock(pending.expires_at_ms)}" if pending.expires_at_ms else ""
            return self._named(f"pairing code {pending.code}{until}: enter it on the gateway to approve {who}")
        return self._named(f"waiting for approval of {who}: "
                           f"openclaw devices approve {pending.request_id or '<requestId>'}")

    async def _on_store_token(self, token: Secret) -> None:
        self._token_offered = True
        await self.tokens.keep(token)
        self._bootstrap_token = None

    async def _on_forget_token(self) -> None:
        self.log.warning("%s", self._named(f"the gateway refused this device's {self.role.role} token (revoked, "
                                           f"rotated, or the device was removed); forgetting it and "
                                           f"{self.role.after_forget}"))
        await self.tokens.forget()


class _Hooks:
    """The link as its connections' :class:`~.connection.ConnectionHooks` (kept apart so the
    link's public surface stays what a caller needs)."""

    def __init__(self, link: Link):
        self._link = link

    async def on_ready(self, conn: Connection, hello: HelloOk) -> None:
        await self._link._on_ready(conn, hello)

    async def on_store_token(self, token: Secret) -> None:
        await self._link._on_store_token(token)

    async def on_forget_token(self) -> None:
        await self._link._on_forget_token()

    async def on_pairing_pending(self, pending: PairingPending) -> None:
        await self._link._on_pairing_pending(pending)

    async def on_surface_approved(self, conn: Connection) -> None:
        await self._link.hooks.on_surface_approved(conn)

    async def on_event(self, conn: Connection, event: Event) -> None:
        await self._link.hooks.on_event(conn, event)

    def on_event_refused(self, event: str, reason: str) -> None:
        self._link.hooks.on_event_refused(event, reason)


def _now_ms() -> int:
    import time

    return int(time.time() * 1000)


def _clock(ms: int) -> str:
    import time

    return time.strftime("%H:%M:%S", time.localtime(ms / 1000))
