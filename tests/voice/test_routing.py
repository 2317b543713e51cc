"""voicewake.routing: the gateway's payloads (as documented and as its normaliser keeps them)
resolved to the sessionKey of voice.transcript. Pure tables."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node_agent.voice.routing import CURRENT, Target, VoiceWakeRouting, normalize_route_trigger

DOCUMENTED = {"config": {"version": 1, "defaultTarget": {"mode": "current"},
                         "routes": [{"trigger": "robot wake", "target": {"sessionKey": "agent:main:main"}}],
                         "updatedAtMs": 1730000000000}}


@pytest.mark.parametrize("text, normalized", [
    ("Hey, Bot!!", "hey bot"), ("  hey   bot ", "hey bot"), ("OK-Nabu", "ok-nabu"), ("...", ""),
    ("Computer?", "computer"), ("¡Hola!", "hola"),
])
def test_triggers_are_normalised_like_the_gateway_does(text, normalized):
    assert normalize_route_trigger(text) == normalized


def test_the_documented_example_routes_its_trigger_and_defaults_the_rest():
    routing = VoiceWakeRouting.from_payload(DOCUMENTED)
    assert routing.session_key_for("Robot, wake!", current="main") == "agent:main:main"
    assert routing.session_key_for("okay nabu", current="main") == "main"
    assert routing.session_key_for("okay nabu", current=None) is None
    assert routing.session_key_for(None, current="kitchen") == "kitchen"  # push-to-talk: the default
    assert routing.updated_at_ms == 1730000000000


@pytest.mark.parametrize("target, key", [
    ({"sessionKey": "agent:ops:voice"}, "agent:ops:voice"),
    ({"agentId": "Ops"}, "agent:ops:main"),
    ({"mode": "current"}, "mine"),
    ({"agentId": "a", "sessionKey": "b"}, "mine"),  # both: the gateway drops the route
    ({}, "mine"), ("agent:x", "mine"),
])
def test_each_kind_of_target(target, key):
    routing = VoiceWakeRouting.from_payload({"config": {"routes": [{"trigger": "computer", "target": target}]}})
    assert routing.session_key_for("computer", current="mine") == key


def test_a_default_target_applies_to_every_unrouted_trigger():
    routing = VoiceWakeRouting.from_payload({"config": {"defaultTarget": {"agentId": "home"}, "routes": []}})
    assert routing.default == Target(agent_id="home")
    assert routing.session_key_for("alexa", current="mine") == "agent:home:main"


def test_bad_entries_are_dropped_and_counted_and_the_first_route_wins():
    routing = VoiceWakeRouting.from_payload({"config": {"routes": [
        {"trigger": "!!!", "target": {"mode": "current"}}, "nonsense", {"target": {"agentId": "x"}},
        {"trigger": "Computer", "target": {"agentId": "first"}},
        {"trigger": "computer", "target": {"agentId": "second"}}]}})
    assert routing.dropped == 3
    assert routing.session_key_for("COMPUTER", current=None) == "agent:first:main"


def test_more_than_32_routes_are_cut_as_the_gateway_caps_them():
    routes = [{"trigger": f"t{i}", "target": {"agentId": "a"}} for i in range(40)]
    routing = VoiceWakeRouting.from_payload({"config": {"routes": routes}})
    assert len(routing.routes) == 32 and routing.dropped == 8


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=10),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
                    max_leaves=20))
def test_any_payload_parses_to_something_that_resolves(payload):
    routing = VoiceWakeRouting.from_payload(payload)
    key = routing.session_key_for("computer", current="mine")
    assert key is None or isinstance(key, str)
    assert routing.default in (CURRENT,) or routing.default.mode in ("agentId", "sessionKey")
