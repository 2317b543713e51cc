"""Liveness extras that ride on any dialect: client heartbeats and state-version gaps.

* Client heartbeat: when the dialect has one (``Dialect.client_heartbeat_s``; the documented
  dialect does, OpenClaw does not), send ``heartbeat {timestamp}`` periodically and treat the
  gateway's ``heartbeat`` event as the acknowledgement. A missing ack is logged (the tick
  watchdog and pings are what actually declare a link dead).
* Version gaps: ``presence``/``health`` carry a version (documented: ``payload.version``;
  OpenClaw: the frame's ``stateVersion``). A jump of more than one means updates were missed
  (dropped as slow, or sent while we were away); it is logged so a person debugging presence
  knows the view was incomplete.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import trio

from ..protocol import Event, GenericEvent, HelloOk
from .connection import Connection

log = logging.getLogger("node_agent.liveness")


class LivenessExtras:
    def __init__(self) -> None:
        self._versions: dict[str, int] = {}
        self._acked = trio.Event()
        self.heartbeats_sent = 0
        self.heartbeats_acked = 0
        self.gaps: list[tuple[str, int, int]] = []

    def __repr__(self) -> str:
        return f"<LivenessExtras sent={self.heartbeats_sent} acked={self.heartbeats_acked} gaps={len(self.gaps)}>"

    async def on_ready(self, conn: Connection, hello: HelloOk) -> None:
        self._versions.clear()  # a new connection starts from the snapshot it got
        interval = getattr(conn.session.dialect, "client_heartbeat_s", None)
        if interval:
            conn.nursery.start_soon(self._heartbeat_loop, conn, interval)

    async def on_disconnected(self) -> None:
        pass

    async def on_event(self, conn: Connection, event: Event) -> None:
        if event.name == "heartbeat":
            self.heartbeats_acked += 1
            self._acked.set()
        if event.name in ("presence", "health"):
            version = _version_of(event)
            if version is not None:
                self._check_gap(event.name, version)

    def _check_gap(self, name: str, version: int) -> None:
        last = self._versions.get(name)
        self._versions[name] = version
        if last is not None and version > last + 1:
            self.gaps.append((name, last, version))
            log.info("%s version jumped %d -> %d: %d update(s) missed", name, last, version, version - last - 1)

    async def _heartbeat_loop(self, conn: Connection, interval: float) -> None:
        while True:
            self._acked = trio.Event()
            try:
                await conn.call("heartbeat", {"timestamp": int(time.time() * 1000)}, timeout=interval)
            except Exception as exc:  # the watchdog decides whether the link is dead, not us
                log.info("client heartbeat not answered: %s", exc)
            self.heartbeats_sent += 1
            with trio.move_on_after(interval):
                await self._acked.wait()
            if not self._acked.is_set():
                log.info("no heartbeat acknowledgement within %g s", interval)
            await trio.sleep(interval)


def _version_of(event: Event) -> int | None:
    body: Any = event.body
    if event.state_version is not None:
        value = getattr(event.state_version, event.name, None)
        if isinstance(value, int):
            return value
    value = getattr(body, "version", None)
    if isinstance(body, GenericEvent) and isinstance(body.payload, dict):
        value = body.payload.get("version")
    return value if isinstance(value, int) and not isinstance(value, bool) else None
