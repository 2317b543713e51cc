"""node.pluginTools.update: sent at connect, once per real change (bursts coalesced), retried
after a refusal, and what the gateway kept is noted for status."""

from __future__ import annotations

import pytest
import trio

from node_agent.errors import GatewayRejected
from node_agent.tools.descriptors import ListedTool
from node_agent.tools.hub import ToolHub
from node_agent.tools.publisher import Publisher
from node_agent.tools.supervisor import ServerState, ServerSupervisor


class StaticConnector:
    def open(self):  # never opened: these tests drive the supervisors' state by hand
        raise AssertionError("not used")

    def diagnostics(self):
        return ()


def make_hub(*names: str) -> ToolHub:
    return ToolHub([ServerSupervisor(n, StaticConnector(), timeout=5) for n in names])


def bring_up(hub: ToolHub, name: str, *tools: str) -> None:
    supervisor = next(s for s in hub.servers if s.name == name)
    supervisor.tools = tuple(ListedTool(name=t, description=t, input_schema={"type": "object"}) for t in tools)
    supervisor._set(ServerState.READY)


def take_down(hub: ToolHub, name: str) -> None:
    supervisor = next(s for s in hub.servers if s.name == name)
    supervisor.tools = ()
    supervisor._set(ServerState.RESTARTING)


class Gateway:
    """Answers like openclaw's node.pluginTools.update: {nodeId, tools: kept}."""

    def __init__(self, keep: bool = True):
        self.keep = keep
        self.sent: list[tuple[float, list[str]]] = []
        self.refuse = 0

    async def send(self, tools):
        self.sent.append((trio.current_time(), [t["name"] for t in tools]))
        if self.refuse:
            self.refuse -= 1
            raise GatewayRejected("invalid node.pluginTools.update params", code="INVALID_REQUEST")
        return {"nodeId": "abc", "tools": tools if self.keep else []}


async def test_the_catalog_is_sent_at_once_then_once_per_coalesced_change(autojump_clock):
    hub = make_hub("a", "b")
    gateway = Gateway()
    publisher = Publisher(hub, settle=0.2)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(publisher.publish, gateway.send)
        await trio.sleep(1)
        bring_up(hub, "a", "x")
        await trio.sleep(0.05)
        bring_up(hub, "b", "y")  # within the settle window of the first change
        await trio.sleep(1)
        take_down(hub, "a")
        await trio.sleep(1)
        nursery.cancel_scope.cancel()
    # Both servers' arrivals go out together, `settle` after the first of them.
    assert gateway.sent == [(0, []), (pytest.approx(1.2), ["a_x", "b_y"]), (pytest.approx(2.25), ["b_y"])]
    assert hub.status().sent == 1 and hub.status().kept == 1


async def test_a_state_change_that_leaves_the_catalog_as_it_was_sends_nothing(autojump_clock):
    hub = make_hub("a")
    gateway = Gateway()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(Publisher(hub).publish, gateway.send)
        await trio.sleep(1)
        next(iter(hub.servers))._set(ServerState.FAILING)  # was not ready: no tools either way
        await trio.sleep(1)
        nursery.cancel_scope.cancel()
    assert [names for _, names in gateway.sent] == [[]]


async def test_a_refused_update_is_retried_after_ten_seconds_and_noted(autojump_clock):
    hub = make_hub("a")
    bring_up(hub, "a", "x")
    gateway = Gateway()
    gateway.refuse = 2
    async with trio.open_nursery() as nursery:
        nursery.start_soon(Publisher(hub, retry_after=10, settle=0.2).publish, gateway.send)
        await trio.sleep(5)
        assert hub.status().publish_error == "invalid node.pluginTools.update params"
        await trio.sleep(30)
        nursery.cancel_scope.cancel()
    assert [t for t, _ in gateway.sent] == [0, pytest.approx(10.2), pytest.approx(20.4)]
    assert hub.status().publish_error is None and hub.status().kept == 1


async def test_what_the_gateway_keeps_is_noted_and_refresh_resends(autojump_clock):
    hub = make_hub("a")
    bring_up(hub, "a", "x", "y")
    gateway = Gateway(keep=False)  # not approved yet: mcp.tools.call.v1 not an allowed command
    publisher = Publisher(hub)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(publisher.publish, gateway.send)
        await trio.sleep(1)
        assert (hub.status().sent, hub.status().kept) == (2, 0)
        gateway.keep = True  # approved
        publisher.refresh()
        await trio.sleep(1)
        nursery.cancel_scope.cancel()
    assert (hub.status().sent, hub.status().kept) == (2, 2)
    assert len(gateway.sent) == 2
