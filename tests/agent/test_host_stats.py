"""``node.host.stats`` in the gateway's closed flat shape, sent only where a gateway takes it.

``accepted_by_gateway`` is the gateway's own rule, transcribed from openclaw 2026.9.6
(``NodeHostStatsPayloadSchema``, identical in 2026.9.2): a closed object, ``cpuCount`` 1..4096,
``loadAverage`` exactly three numbers 0..1e5, memory total/free integers with free <= total,
disk total/available as a pair with available <= total. The real gateway checks the same in
tests/interop/test_events.py.
"""

from __future__ import annotations

import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node_agent.agent.commands import host_stats, host_stats_event
from tests.support.agents import connected, results
from tests.support.fake_openclaw import FakeGateway

_KEYS = {"cpuCount", "loadAverage", "memoryTotalBytes", "memoryFreeBytes", "diskTotalBytes", "diskAvailableBytes"}


def _int(value, low=0, high=None) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low and (high is None or value <= high)


def accepted_by_gateway(stats) -> bool:
    if not isinstance(stats, dict) or set(stats) - _KEYS:
        return False
    if not _int(stats.get("cpuCount"), 1, 4096):
        return False
    load = stats.get("loadAverage")
    if load is not None and not (isinstance(load, list) and len(load) == 3 and all(
            isinstance(x, (int, float)) and not isinstance(x, bool) and 0 <= x <= 1e5 for x in load)):
        return False
    total, free = stats.get("memoryTotalBytes"), stats.get("memoryFreeBytes")
    if not (_int(total) and _int(free) and free <= total):
        return False
    disk_total, disk_free = stats.get("diskTotalBytes"), stats.get("diskAvailableBytes")
    if disk_total is None:
        return disk_free is None
    return _int(disk_total) and _int(disk_free) and disk_free <= disk_total


def test_this_hosts_stats_are_sent_in_the_gateways_closed_flat_shape():
    rich = host_stats()
    event = host_stats_event(rich)
    assert event is not None and accepted_by_gateway(event), event
    assert event["cpuCount"] == rich["cpuCount"]
    assert event["memoryTotalBytes"] == rich["memory"]["totalBytes"]


def test_the_richer_device_status_shape_is_what_the_gateway_refuses():
    # What node-agent sent before issue 10; 2026.9.6 answered handled:false, invalid_payload.
    assert not accepted_by_gateway(host_stats())


def test_figures_the_schema_cannot_hold_are_left_out_or_clamped():
    assert host_stats_event({"cpuCount": None, "memory": {"totalBytes": 10, "availableBytes": 5}}) is None
    assert host_stats_event({"cpuCount": 4}) is None  # memory is required
    event = host_stats_event({"cpuCount": 9000, "loadAverage": [0.5, -1.0, 2e6],
                              "memory": {"totalBytes": 100, "availableBytes": 150},
                              "disk": {"totalBytes": 50, "freeBytes": None}})
    assert event == {"cpuCount": 4096, "loadAverage": [0.5, 0.0, 1e5], "memoryTotalBytes": 100,
                     "memoryFreeBytes": 100}


_figure = st.one_of(st.none(), st.integers(-10, 2**64), st.floats(allow_nan=True), st.text(max_size=3))


# No deadline: on a loaded 2-core CI machine the first examples can be slow (not a finding).
@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.fixed_dictionaries({}, optional={
    "cpuCount": _figure,
    "loadAverage": st.one_of(st.none(), st.lists(_figure, max_size=5)),
    "memory": st.one_of(st.none(), st.fixed_dictionaries({}, optional={"totalBytes": _figure,
                                                                       "availableBytes": _figure})),
    "disk": st.one_of(st.none(), st.fixed_dictionaries({}, optional={"totalBytes": _figure,
                                                                     "freeBytes": _figure})),
}))
def test_whatever_the_host_reports_the_event_is_valid_or_not_sent(rich):
    event = host_stats_event(rich)
    assert event is None or accepted_by_gateway(event), event


async def test_host_stats_go_out_only_to_a_gateway_that_lists_node_host_stats(autojump_clock, tmp_path):
    # A gateway that handles node.host.stats (2026.9.2+) lists node.hostStats, its broadcast of
    # them, in hello-ok's features.events; 2026.8.2 and 9.1 answer unsupported_event, older
    # releases drop it without a word.
    for events, sent in ((["tick"], False), (["tick", "node.hostStats"], True)):
        gw = FakeGateway()
        gw.hello_events = events
        async with connected(gw, tmp_path / str(sent)) as (agent, conn):
            await conn.wait_request("node.event")
            await trio.sleep(1)
            stats = [p for p in results(conn, "node.event") if "cpuCount" in p]
        assert bool(stats) is sent
        if sent:
            assert accepted_by_gateway(stats[0])
