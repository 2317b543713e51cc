"""Telling the gateway which tools this node has: ``node.pluginTools.update``, once per change.

One :func:`publish` loop runs per gateway connection, from ``hello-ok`` until the connection
ends (its cancellation ends the loop). It sends the hub's whole catalog at once (the method
*replaces* the node's tool list, so a withdrawn tool is simply absent), then waits for the next
catalog version. A burst of changes (servers coming up together at boot, a crash and its
restart) is coalesced over ``settle`` seconds; a refused update is retried after ``retry_after``
(or sooner, at the next change), with one warning per streak of refusals.

The gateway's reply is ``{nodeId, tools}`` where ``tools`` are the descriptors it *kept*: it
keeps a tool only while the node's ``mcp.tools.call.v1`` is an approved command, so before
``openclaw nodes approve`` it keeps none and, once approved, it re-applies the tools it was sent
without being asked again (``refreshSessionPolicy`` in ``src/gateway/node-registry.ts``).
:meth:`Publisher.refresh` resends anyway after an approval, so ``status`` shows the new count.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import trio

from ..errors import ConnectionLost, SurfacePending
from .hub import ToolHub
from .session import describe

log = logging.getLogger("node_agent.tools")

#: ``send(tools)`` performs one ``node.pluginTools.update`` on the live connection and returns
#: the reply payload; it raises (any ``NodeAgentError``) when the gateway refuses.
Send = Callable[[list[dict[str, Any]]], Awaitable[Mapping[str, Any] | None]]


class Publisher:
    def __init__(self, hub: ToolHub, *, settle: float = 0.2, retry_after: float = 10.0):
        self.hub = hub
        self.settle = settle
        self.retry_after = retry_after
        self._refresh = trio.Event()

    def refresh(self) -> None:
        """Resend the current catalog soon (e.g. after the node's commands were approved)."""
        self._refresh.set()

    async def publish(self, send: Send) -> None:
        """Publish now and after every change, until cancelled (see module doc)."""
        failing = False
        while True:
            version = self.hub.version
            tools = self.hub.catalog.to_wire()
            self._refresh = trio.Event()
            ok = await self._send_once(send, tools, quiet=failing)
            failing = not ok
            with trio.move_on_after(self.retry_after if failing else float("inf")):
                async with trio.open_nursery() as nursery:
                    async def on_change() -> None:
                        await self.hub.wait_changed(version)
                        nursery.cancel_scope.cancel()

                    async def on_refresh() -> None:
                        await self._refresh.wait()
                        nursery.cancel_scope.cancel()

                    nursery.start_soon(on_change)
                    nursery.start_soon(on_refresh)
            await trio.sleep(self.settle)

    async def _send_once(self, send: Send, tools: list[dict[str, Any]], *, quiet: bool) -> bool:
        try:
            reply = await send(tools)
        except ConnectionLost:
            return False  # the connection is ending; its nursery ends this loop too
        except SurfacePending:
            # Expected until a person approves the node's commands; node.pair.resolved brings a refresh.
            self.hub.note_publication(sent=len(tools), error="waiting for this node's commands to be approved "
                                                             "(openclaw nodes approve)")
            log.log(logging.DEBUG if quiet else logging.INFO,
                    "%d MCP tool(s) not published yet: this node's commands await approval on the gateway",
                    len(tools))
            return False
        except Exception as exc:  # noqa: BLE001  (whatever the link raises for a refusal)
            self.hub.note_publication(sent=len(tools), error=describe(exc))
            log.log(logging.INFO if quiet else logging.WARNING,
                    "node.pluginTools.update with %d tool(s) refused: %s; retrying in %g s",
                    len(tools), describe(exc), self.retry_after)
            return False
        kept_list = reply.get("tools") if isinstance(reply, Mapping) else None
        kept = len(kept_list) if isinstance(kept_list, list) else None
        self.hub.note_publication(sent=len(tools), kept=kept)
        if kept is not None and kept < len(tools):
            log.info("published %d MCP tool(s); the gateway keeps %d for now (mcp.tools.call.v1 must be "
                     "an approved command of this node: openclaw nodes approve)", len(tools), kept)
        else:
            log.info("published %d MCP tool(s)", len(tools))
        return True
