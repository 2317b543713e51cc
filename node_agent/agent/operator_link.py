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

What it is: the one supervised :class:`~.link.Link`, configured as role ``operator`` with
``scopes=("operator.read", "operator.talk")``, client ``node-host``/``node`` (what the device was
paired with; the gateway also accepts ``gateway-client``/``backend`` and ``cli``/``cli`` for an
operator token), no commands and no presence heartbeats. It hands the events it was asked for
(``talk.mode``) to a callback; :meth:`call` makes operator requests (``voicewake.get``,
``talk.speak``) on the live socket.

Invariants:

* Its device token lives under ``device_token_key(url, role="operator")``, never mixed with the
  node token; a refused operator token is forgotten alone.
* It follows the node link (it is one of the node :class:`~.node.Agent`'s extensions): an
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

import dataclasses
import logging
from typing import Any, Awaitable, Callable

import attrs
import trio

from .. import __version__
from ..config import Config
from ..errors import ConnectionLost, NodeAgentError
from ..identity import DeviceIdentity, IdentityRecord
from ..protocol import ClientInfo, Dialect, Event, HelloOk, OpenClawDialect, PairingPending
from ..secrets.base import SecretStore
from .backoff import ReconnectPolicy
from .connection import Connection
from .link import STOP_GRACE_S, Link, LinkRole
from .status import LinkState, LinkStatus, StatusBoard

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
        self.identity = identity
        self.record = record
        self.status = status or StatusBoard(None)
        self.scopes = tuple(scopes)
        self.events = events
        #: Where this link's events go (``talk.mode`` to the voice extension).
        self.callback = on_event
        self._node_up = trio.Event()
        self._dialect_ok = config.protocol != "jsonrpc"
        self._done = trio.Event()
        role = OperatorRole(config, identity, record, self.scopes, events, on_event, self._publish)
        self.link = Link(config, LinkRole(name="operator link", role=ROLE, scopes=self.scopes,
                                          after_forget="asking for the operator role again (the node token is kept)"), role,
                         store=store, identity=identity, publish=self._publish, policy=policy,
                         open_transport=open_transport, gate=self._wait_for_node, logger=log)

    def __repr__(self) -> str:
        section = self.status.current.operator_link
        return f"<OperatorLink {self.identity!r} scopes={','.join(self.scopes)} " \
               f"state={section.state.value if section else None}>"

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
        return self.link.connected

    @property
    def connections(self) -> int:
        return self.link.connections

    async def call(self, method: str, params: Any = None, *, timeout: float = 15.0) -> Any:
        """An operator request on the live link (``voicewake.get``, ``talk.speak``...).
        Raises :class:`~node_agent.errors.ConnectionLost` when the link is not connected and
        :class:`~node_agent.errors.GatewayRejected` when the gateway refuses."""
        conn = self.link.conn
        if conn is None or conn.session.hello is None:
            raise ConnectionLost(f"{method}: the operator link is not connected")
        return await conn.call(method, params, timeout=timeout)

    async def stop(self, grace: float = STOP_GRACE_S) -> None:
        """Close the socket with a close frame and wait (at most ``grace`` s) for :meth:`run`."""
        self.link.request_stop()
        self._node_up.set()  # a link waiting for the node link must wake up to leave
        with trio.move_on_after(grace):
            await self._done.wait()

    async def run(self) -> None:
        """Connect whenever the node link is up, reconnect with the usual policy, until a fatal
        error (which stops this link only) or :meth:`stop`. Never raises for gateway trouble."""
        try:
            if not self._dialect_ok:
                log.info("operator link: only the OpenClaw dialect needs it; not started")
                self._publish(state=LinkState.OFF, reason="dialect")
                return
            try:
                await self.link.tokens.load()
            except NodeAgentError as exc:
                log.warning("operator link: cannot read its token (%s); asking with the shared token", exc.message)
                self.link.tokens.loaded = True
            if self.config.shared_token is None and self.config.password is None:
                if self.link.tokens.token is None:
                    self._publish(state=LinkState.ERROR,
                                  last_error="no operator token and no shared token to ask for one",
                                  hint="set OPENCLAW_GATEWAY_TOKEN (or gateway.token_file) once, so the operator "
                                       "link can ask the gateway for the operator role")
                    log.error("operator link not started: it has no operator token yet and no shared token to ask "
                              "the gateway for one (set OPENCLAW_GATEWAY_TOKEN or gateway.token_file)")
                    return
            self._publish(state=LinkState.WAITING_FOR_NODE)
            await self.link.run()
        finally:
            self._done.set()

    async def _wait_for_node(self) -> bool:
        """The link's gate: attempts start only while the node link is connected."""
        await self._node_up.wait()
        if self.link.stopping:
            return False
        if not self._dialect_ok:
            self._publish(state=LinkState.OFF, reason="dialect")
            return False
        return True

    # -- the link's status ------------------------------------------------------------------------------

    def _publish(self, **fields: Any) -> None:
        fields.pop("connected_at_ms", None)
        section = self.status.current.operator_link or LinkStatus(state=LinkState.WAITING_FOR_NODE,
                                                                  role=ROLE, scopes=self.scopes)
        if fields.get("state") is LinkState.STOPPED:
            return  # the node link's stop says it; the section keeps what the link last did
        if "pairing" not in fields and fields.get("state") is not LinkState.PAIRING:
            fields["pairing"] = None
        self.status.update(operator_link=dataclasses.replace(section, **fields))



@attrs.frozen
class OperatorRole:
    """The operator link's :class:`~.link.RoleHooks`: its client description, its pairing text,
    and its events, handed to the callback. Separate from :class:`OperatorLink`, whose own
    ``on_ready``/``on_event`` hooks carry the *node* link's news."""

    _config: Config
    _identity: DeviceIdentity
    _record: IdentityRecord
    _scopes: tuple[str, ...]
    _events: frozenset[str]
    _on_event: EventCallback
    _publish: Callable[..., None]

    def client(self) -> ClientInfo:
        rec = self._record
        # No instanceId: that names the node's own presence entry, and this socket is not the node
        # (the gateway lists it apart, with roles ["operator"]).
        return ClientInfo(version=__version__, platform=rec.platform, device_family=rec.device_family,
                          display_name=self._config.display_name)

    async def pick_dialect(self, transport: Any) -> tuple[Dialect, None]:
        return OpenClawDialect(), None

    async def on_ready(self, conn: Connection, hello: HelloOk) -> None:
        missing = [s for s in self._scopes if s not in hello.scopes]
        self._publish(granted_scopes=tuple(hello.scopes))
        log.info("operator link connected (role %s, scopes %s, auth %s)", hello.role or "?",
                 ",".join(hello.scopes) or "none", hello.auth_method or "?")
        if missing:
            log.warning("operator link: the gateway did not grant %s; talk.mode may not arrive", ", ".join(missing))

    async def on_event(self, conn: Connection, event: Event) -> None:
        if event.name in self._events:
            await self._on_event(event)

    async def on_surface_approved(self, conn: Connection) -> None:
        pass

    async def on_disconnected(self) -> None:
        log.info("operator link closed")

    def pairing_text(self, pending: PairingPending) -> str:
        request = pending.request_id or "<requestId>"
        why = f" (the gateway says: {pending.reason})" if pending.reason not in (None, "role-upgrade") else ""
        return (f"The operator link (to follow Talk Mode) is waiting for a person to approve its role upgrade"
                f"{why}: role operator, scopes {', '.join(self._scopes)}, for device {self._identity.fingerprint} "
                f"({self._identity.device_id}).\n"
                f"On the gateway host run:\n"
                f"  openclaw devices approve {request}\n"
                f"or set `operator_link = false` in [voice] to do without Talk Mode.")

    def on_event_refused(self, event: str, reason: str) -> None:
        log.info("operator link: the gateway did not take %s (%s)", event, reason)
