"""The operator link: a second, operator-role connection for this device, to hear ``talk.mode``.

Why it exists: the real OpenClaw gateway (2026.9.6) never sends ``talk.mode`` to a node; it
broadcasts it only to operator sockets holding ``operator.talk``. A node that wants to follow
Talk Mode must therefore also be an operator. The gateway allows that for the same device key:

* the first operator-role connect (shared token) is refused with ``NOT_PAIRED`` /
  ``PAIRING_REQUIRED``, ``reason: "role-upgrade"``, ``requestedRole: "operator"``,
  ``requestedScopes``, ``approvedRoles: ["node"]``; operators see a ``device.pair.requested``
  with ``role: "operator"`` and ``isRepair: true``;
* a person approves it once (``openclaw devices approve <requestId>``); the next connect gets
  ``hello-ok`` with an operator device token of its own (the node token is refused for role
  operator with ``AUTH_DEVICE_TOKEN_MISMATCH``, and asking for more scopes than approved with
  ``AUTH_SCOPE_MISMATCH``). The node role and its token keep working unchanged.

What it is: one supervised WebSocket beside the node link, run by the same Trio code
(:class:`~.connection.Connection` over an unchanged :class:`~node_agent.protocol.Session`) with
``role="operator"``, ``scopes=("operator.read", "operator.talk")``, client ``node-host``/``node``
(what the device was paired with; the gateway also accepts ``gateway-client``/``backend`` and
``cli``/``cli`` for an operator token), no caps, no commands and no presence heartbeats. It only
listens, and hands the events it was asked for (``talk.mode``) to a callback; :meth:`call` makes
operator requests (``voicewake.get``) on the live socket.

Invariants:

* Its device token lives under ``device_token_key(url, role="operator")``, never mixed with the
  node token; a refused operator token is forgotten alone.
* It follows the node link (it is one of the node :class:`~.supervisor.Agent`'s extensions): an
  attempt starts only while the node link is connected. So it never asks the gateway to pair an
  unknown device, never races the node link's own pairing request, and after the device was
  removed the node link pairs again first.
* It can never take the node link down: a fatal error (a refused approval, a scope mismatch)
  stops only this link, shown as ``status.operatorLink.state = "error"``.
* OpenClaw only. A documented-dialect gateway sends ``talk.mode`` to nodes directly: with
  ``protocol = "jsonrpc"`` the link does not start, and with ``auto`` it stops once the node link
  turns out to speak that dialect.
"""

from __future__ import annotations

import logging
from typing import Any, Awaitable, Callable

import trio

from .. import __version__
from ..config import Config
from ..errors import ConnectionLost, NodeAgentError, Retry
from ..identity import DeviceIdentity, IdentityRecord
from ..protocol import (
    ClientInfo,
    ConnectInputs,
    Credentials,
    Event,
    HelloOk,
    OpenClawDialect,
    PairingPending,
    Session,
)
from ..protocol.openclaw import SignatureRejected
from ..secret import Secret
from ..secrets.base import SecretStore, device_token_key
from .backoff import ReconnectPolicy
from .commands import CommandContext, CommandRegistry
from .connection import Connection, serve_once
from .status import StatusBoard

log = logging.getLogger("node_agent.operator_link")

ROLE = "operator"
#: What the voice-node setup-code profile grants, and all that following Talk Mode needs.
SCOPES: tuple[str, ...] = ("operator.read", "operator.talk")
#: Events handed to the callback unless the caller picks others.
DEFAULT_EVENTS = frozenset({"talk.mode"})

EventCallback = Callable[[Event], Awaitable[None]]


class OperatorLink:
    """Run with ``nursery.start_soon(link.run)`` and pass ``link`` in the node Agent's
    ``extensions`` (that is how it learns the node link is up). Stop with :meth:`stop`."""

    def __init__(self, config: Config, *, store: SecretStore, identity: DeviceIdentity, record: IdentityRecord,
                 on_event: EventCallback, status: StatusBoard | None = None,
                 events: frozenset[str] = DEFAULT_EVENTS, scopes: tuple[str, ...] = SCOPES,
                 policy: ReconnectPolicy | None = None, open_transport: Callable[[], Any] | None = None):
        self.config = config
        self.store = store
        self.identity = identity
        self.record = record
        self.status = status or StatusBoard(None)
        self.scopes = tuple(scopes)
        self.events = events
        self.policy = policy or ReconnectPolicy()
        self._on_event = on_event
        if open_transport is None:
            from .supervisor import transport_opener

            open_transport = transport_opener(config)
        self._open_transport = open_transport
        self._token_key = device_token_key(config.gateway_url, role=ROLE)
        self._device_token: Secret | None = None
        self._signature_version = 3
        self._node_up = trio.Event()
        self._dialect_ok = config.protocol != "jsonrpc"
        self._stopping = False
        self._done = trio.Event()
        self._conn: Connection | None = None
        self._announced: set[str | None] = set()
        self._pairing: dict[str, Any] | None = None  # the pending role upgrade, for status
        self._hooks = _LinkHooks(self)
        self.connections = 0

    def __repr__(self) -> str:
        state = (self.status.get("operatorLink") or {}).get("state")
        return f"<OperatorLink {self.identity!r} scopes={','.join(self.scopes)} state={state}>"

    # -- AgentExtension: the node link's news --------------------------------------------------------

    async def on_ready(self, conn: Connection, hello: HelloOk) -> None:
        if conn.session.dialect.name != OpenClawDialect.name:
            if self._dialect_ok:
                log.info("the gateway speaks the %s dialect, which sends talk.mode to nodes; "
                         "no operator link needed", conn.session.dialect.name)
            self._dialect_ok = False
        self._node_up.set()

    async def on_event(self, conn: Connection, event: Event) -> None:
        pass

    async def on_disconnected(self) -> None:
        if self._node_up.is_set():
            self._node_up = trio.Event()

    # -- public ------------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._conn is not None and self._conn.session.hello is not None

    async def call(self, method: str, params: Any = None, *, timeout: float = 15.0) -> Any:
        """An operator request on the live link (``voicewake.get``, ``talk.config``...).
        Raises :class:`~node_agent.errors.ConnectionLost` when the link is not connected."""
        conn = self._conn
        if conn is None or conn.session.hello is None:
            raise ConnectionLost(f"{method}: the operator link is not connected")
        return await conn.call(method, params, timeout=timeout)

    async def stop(self, grace: float = 1.5) -> None:
        """Close the socket with a close frame and wait (at most ``grace`` s) for :meth:`run`."""
        self._stopping = True
        conn = self._conn
        if conn is not None and conn.close_soon(1000, "node stopping"):
            with trio.move_on_after(grace):
                await self._done.wait()

    async def run(self) -> None:
        """Connect whenever the node link is up, reconnect with the usual policy, until a fatal
        error or :meth:`stop`. Never raises for gateway trouble."""
        try:
            if not self._dialect_ok:
                log.info("operator link: only the OpenClaw dialect needs it; not started")
                self._publish("off", reason="dialect")
                return
            try:
                self._device_token = await self.store.get(self._token_key)
            except NodeAgentError as exc:
                log.warning("operator link: cannot read its token (%s); asking with the shared token", exc.message)
            if self._device_token is None and self.config.shared_token is None and self.config.password is None:
                self._publish("error", lastError="no operator token and no shared token to ask for one",
                              hint="set OPENCLAW_GATEWAY_TOKEN (or gateway.token_file) once, so the operator "
                                   "link can ask the gateway for the operator role")
                log.error("operator link not started: it has no operator token yet and no shared token to ask "
                          "the gateway for one (set OPENCLAW_GATEWAY_TOKEN or gateway.token_file)")
                return
            self._publish("waiting-for-node")
            while not self._stopping:
                await self._node_up.wait()
                if not self._dialect_ok:
                    self._publish("off", reason="dialect")
                    return
                error = await self._attempt()
                if self._stopping:
                    break
                if isinstance(error, SignatureRejected):
                    self._signature_version = 2
                delay = self.policy.next_delay(error, trio.current_time())
                if delay is None:
                    self._report_fatal(error)
                    return
                pairing = error.retry is Retry.PAIRING_PENDING
                self._publish("pairing" if pairing else "waiting", lastError=error.message,
                              retryInSeconds=round(delay, 2))
                (log.info if pairing or error.retry is Retry.SERVER_RESTART else log.warning)(
                    "operator link: %s; retrying in %.1f s", error.message, delay)
                await trio.sleep(delay)
        finally:
            self._done.set()

    # -- one connection ------------------------------------------------------------------------------

    async def _attempt(self) -> NodeAgentError:
        session = Session(OpenClawDialect(), self._connect_inputs())
        self._publish("connecting")

        async def start_session(transport: Any) -> tuple[Session, None]:
            return session, None

        error, was_ready = await serve_once(
            self._open_transport, start_session, self._hooks, CommandRegistry(), self._command_context,
            ping_interval=self.config.ping_interval, ping_timeout=self.config.ping_timeout, track=self._track)
        if was_ready:
            self.policy.lost(trio.current_time())
            log.info("operator link closed: %s", error.message)
        return error

    def _track(self, conn: Connection | None) -> None:
        self._conn = conn
        if conn is not None:
            self.connections += 1

    def _connect_inputs(self) -> ConnectInputs:
        rec = self.record
        # No instanceId: that names the node's own presence entry, and this socket is not the node
        # (the gateway lists it apart, with roles ["operator"]).
        client = ClientInfo(version=__version__, platform=rec.platform, device_family=rec.device_family,
                            display_name=self.config.display_name)
        creds = Credentials(device_token=self._device_token,
                            shared_token=self.config.shared_token if self._device_token is None else None,
                            password=self.config.password if self._device_token is None else None)
        return ConnectInputs(client=client, credentials=creds, signer=self.identity, role=ROLE, scopes=self.scopes,
                             signature_version=self._signature_version, user_agent=f"node-agent/{__version__}")

    def _command_context(self) -> CommandContext:  # never used: an operator is sent no invokes
        raise RuntimeError("the operator link runs no node commands")

    # -- status and messages ---------------------------------------------------------------------

    def _publish(self, state: str, **fields: Any) -> None:
        if state == "pairing" and self._pairing is not None:
            fields.setdefault("pairing", self._pairing)
        self.status.update(operatorLink={"state": state, "role": ROLE, "scopes": list(self.scopes), **fields})

    def _report_fatal(self, error: NodeAgentError) -> None:
        hint = error.hint
        # The handshake types every AUTH_* refusal as a ConfigError whose hint is about the shared
        # token; AUTH_SCOPE_MISMATCH ("device token scope mismatch") needs another remedy, and
        # only its message still tells them apart.
        if "scope mismatch" in error.message:
            hint = (f"the gateway approved this device's operator role with other scopes than "
                    f"{', '.join(self.scopes)}; approve the pending scope upgrade or remove and re-pair the device")
        self._publish("error", lastError=error.message, hint=hint)
        log.error("operator link stopped (the node link is unaffected; talk.mode will not be followed): %s",
                  error.message)
        if hint:
            log.error("to fix: %s", hint)


class _LinkHooks:
    """The link's own :class:`~.connection.ConnectionHooks` (separate from the AgentExtension
    hooks above, which carry the *node* link's news)."""

    def __init__(self, link: OperatorLink):
        self._link = link

    async def on_ready(self, conn: Connection, hello: HelloOk) -> None:
        link = self._link
        link.policy.connected(trio.current_time())
        link._announced.clear()
        link._pairing = None
        missing = [s for s in link.scopes if s not in hello.scopes]
        link._publish("connected", grantedScopes=list(hello.scopes))
        log.info("operator link connected (role %s, scopes %s, auth %s)", hello.role or "?",
                 ",".join(hello.scopes) or "none", hello.auth_method or "?")
        if missing:
            log.warning("operator link: the gateway did not grant %s; talk.mode may not arrive", ", ".join(missing))

    async def on_store_token(self, token: Secret) -> None:
        link = self._link
        if link._device_token == token:
            return
        try:
            await link.store.set(link._token_key, token)
        except NodeAgentError as exc:
            log.error("operator link: could not save its device token (%s); will retry on the next connect",
                      exc.message)
        else:
            log.info("operator link: device token saved to the %s secret store", link.store.name)
        link._device_token = token

    async def on_forget_token(self) -> None:
        link = self._link
        log.warning("operator link: the gateway refused its operator token; forgetting it (the node token is "
                    "kept) and asking for the operator role again")
        link._device_token = None
        try:
            await link.store.delete(link._token_key)
        except NodeAgentError as exc:
            log.error("operator link: could not delete the refused token: %s", exc.message)

    async def on_pairing_pending(self, pending: PairingPending) -> None:
        link = self._link
        link._pairing = {"requestId": pending.request_id, "reason": pending.reason}
        link._publish("pairing")
        if pending.request_id in link._announced:
            return
        link._announced.add(pending.request_id)
        request = pending.request_id or "<requestId>"
        why = f" (the gateway says: {pending.reason})" if pending.reason not in (None, "role-upgrade") else ""
        text = (f"The operator link (to follow Talk Mode) is waiting for a person to approve its role upgrade"
                f"{why}: role operator, scopes {', '.join(link.scopes)}, for device {link.identity.fingerprint} "
                f"({link.identity.device_id}).\n"
                f"On the gateway host run:\n"
                f"  openclaw devices approve {request}\n"
                f"or set `operator_link = false` in [voice] to do without Talk Mode.")
        for line in text.splitlines():
            log.warning("%s", line)

    async def on_event(self, conn: Connection, event: Event) -> None:
        if event.name in self._link.events:
            await self._link._on_event(event)
