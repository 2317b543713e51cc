"""Builders for the protocol-layer tests: connect inputs, sessions, and OpenClaw frames.

One place for what every sans-io test needs, so a change to ``ConnectInputs`` or to the wire
shape of a frame is made once. Everything here is pure: no Trio, no sockets, no clock.
Request ids are deterministic (``<prefix>1``, ``<prefix>2``...) so tests can answer them.
"""

from __future__ import annotations

import itertools
import json
from typing import Any, Callable

from node_agent.identity import DeviceIdentity
from node_agent.protocol import ClientInfo, ConnectInputs, Credentials, OpenClawDialect, Session, State
from node_agent.secret import Secret

DEFAULT_CLIENT = ClientInfo(version="0.1.0", platform="linux", device_family="Linux")


def counting_ids(prefix: str = "id-") -> Callable[[], str]:
    counter = itertools.count(1)
    return lambda: f"{prefix}{next(counter)}"


def connect_inputs(*, client: ClientInfo = DEFAULT_CLIENT, signer: Any = "generate", caps: tuple[str, ...] = ("device",),
                   commands: tuple[str, ...] = ("device.info",), credentials: Credentials | None = None,
                   **secrets: Secret | None) -> ConnectInputs:
    """Inputs for one connect. ``signer="generate"`` makes a fresh device identity; pass ``None``
    for a dialect that signs nothing. Credentials: ``credentials`` exactly, else the ``secrets``
    given as keywords, else a shared token."""
    creds = credentials or Credentials(**(secrets or {"shared_token": Secret("shared-token-123")}))
    return ConnectInputs(client=client, credentials=creds,
                         signer=DeviceIdentity.generate() if signer == "generate" else signer,
                         caps=caps, commands=commands)


def make_session(dialect: Any = None, *, id_prefix: str = "id-", **kw: Any) -> Session:
    return Session(dialect or OpenClawDialect(), connect_inputs(**kw), new_id=counting_ids(id_prefix))


# --- OpenClaw frames ----------------------------------------------------------------------------


def event(name: str, payload: Any = None, **extra: Any) -> str:
    frame = {"type": "event", "event": name, **extra}
    if payload is not None:
        frame["payload"] = payload
    return json.dumps(frame)


def res(rid: str, ok: bool = True, payload: Any = None, error: Any = None) -> str:
    frame: dict[str, Any] = {"type": "res", "id": rid, "ok": ok}
    if payload is not None:
        frame["payload"] = payload
    if error is not None:
        frame["error"] = error
    return json.dumps(frame)


HELLO = {"type": "hello-ok", "protocol": 4, "auth": {"role": "node", "scopes": [], "deviceToken": "tok-abcdefgh"},
         "policy": {"tickIntervalMs": 30000, "maxPayload": 26214400}}

CHALLENGE = event("connect.challenge", {"nonce": "n", "ts": 5})


def ready_session(now: float = 0.0, **kw: Any) -> Session:
    """An OpenClaw session through challenge and ``hello-ok`` (its connect was ``id-1``)."""
    session = make_session(**kw)
    session.start(now)
    session.receive_data(CHALLENGE, now)
    session.receive_data(res("id-1", payload=HELLO), now)
    assert session.state is State.READY
    return session
