"""The published catalog obeys the gateway's closed schema and limits, whatever the servers list."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from node_agent.tools.descriptors import (
    DESCRIPTION_MAX_UTF16,
    MAX_TOOLS,
    NAME_RE,
    ListedTool,
    build_catalog,
    truncate_utf16,
    utf16_len,
)


def tool(name: str, description: str | None = "A tool.", schema=None) -> ListedTool:
    return ListedTool(name=name, description=description,
                      input_schema=schema if schema is not None else {"type": "object", "properties": {}})


def test_a_descriptor_has_exactly_the_keys_of_the_gateway_s_closed_schema():
    catalog = build_catalog({"time": [tool("get_current_time", "Now.",
                                           {"type": "object", "properties": {"tz": {"type": "string"}}})]})
    assert catalog.to_wire() == [{
        "pluginId": "node-mcp", "name": "time_get_current_time", "description": "Now.",
        "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}},
        "command": "mcp.tools.call.v1", "mcp": {"server": "time", "tool": "get_current_time"}}]
    assert catalog.notes == ()


def test_names_are_squeezed_into_the_pattern_and_the_mcp_name_travels_untouched():
    catalog = build_catalog({"git": [tool("git.status"), tool("9lives"), tool("  spaced out  "), tool("émoji✓")]})
    by_tool = {d.tool: d.name for d in catalog.descriptors}
    assert by_tool == {"git.status": "git_git_status", "9lives": "git_tool_9lives",
                       "spaced out": "git_spaced_out", "émoji✓": "git_moji"}
    assert all(NAME_RE.match(n) for n in by_tool.values())


def test_names_that_clash_case_insensitively_get_numbered_in_sorted_order():
    catalog = build_catalog({"s": [tool("a.b"), tool("a_b"), tool("A-B"), tool("a b")]})
    names = sorted(d.name for d in catalog.descriptors)
    assert names == ["s_A-B", "s_a_b", "s_a_b_2", "s_a_b_3"]
    assert len({n.lower() for n in names}) == 4


def test_long_names_keep_a_31_character_server_part_and_fit_64():
    catalog = build_catalog({"s" * 40: [tool("t" * 100)]})
    (descriptor,) = catalog.descriptors
    assert descriptor.name == "s" * 31 + "_" + "t" * 32
    assert len(descriptor.name) == 64


def test_a_description_is_cut_at_1024_utf16_units_never_inside_a_surrogate_pair():
    text = "a" * 1023 + "😀" + "tail"
    catalog = build_catalog({"s": [tool("t", text)]})
    (descriptor,) = catalog.descriptors
    assert descriptor.description == "a" * 1023  # the emoji would be units 1024 and 1025
    assert [str(n) for n in catalog.notes] == ["s/t: description cut to 1024 characters"]
    assert truncate_utf16("😀😀", 3) == "😀" and utf16_len("😀") == 2


def test_a_blank_description_gets_one_since_the_gateway_rejects_empty_ones():
    catalog = build_catalog({"s": [tool("t", None), tool("u", " \t\x00\x07 ")]})
    assert [d.description for d in catalog.descriptors] == ["MCP tool t", "MCP tool u"]


def test_control_characters_in_a_description_become_spaces():
    (descriptor,) = build_catalog({"s": [tool("t", "line one\nline\x1btwo")]}).descriptors
    assert descriptor.description == "line one\nline two"


def test_a_schema_that_is_not_an_object_becomes_the_gateway_s_own_default():
    (descriptor,) = build_catalog({"s": [ListedTool(name="t", description="d", input_schema=None)]}).descriptors
    assert descriptor.parameters == {"type": "object", "properties": {}, "additionalProperties": True}


def test_past_128_tools_the_rest_are_skipped_with_a_reason():
    catalog = build_catalog({"s": [tool(f"t{i:03d}") for i in range(130)]})
    assert len(catalog.descriptors) == MAX_TOOLS
    assert [str(n) for n in catalog.skipped] == [
        "s/t128: over the gateway's 128-tool limit", "s/t129: over the gateway's 128-tool limit"]


def test_an_oversize_or_unserialisable_schema_skips_only_that_tool():
    huge = {"type": "object", "description": "x" * (1024 * 1024)}
    catalog = build_catalog({"s": [tool("big", schema=huge), tool("nan", schema={"default": float("nan")}),
                                   tool("fine")]})
    assert [d.tool for d in catalog.descriptors] == ["fine"]
    assert {n.tool for n in catalog.skipped} == {"big", "nan"}
    assert catalog.descriptors[0].name == "s_fine"


def test_a_nameless_tool_is_skipped():
    catalog = build_catalog({"s": [tool("   "), tool("ok")]})
    assert [d.tool for d in catalog.descriptors] == ["ok"]
    assert [n.what for n in catalog.skipped] == ["has no name"]


def test_names_do_not_depend_on_which_server_listed_first():
    one = build_catalog({"b": [tool("x")], "a": [tool("x")]})
    other = build_catalog({"a": [tool("x")], "b": [tool("x")]})
    assert one == other


_names = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=80)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(max_size=40), st.lists(st.tuples(_names, st.none() | st.text(max_size=1500)),
                                                      max_size=40), max_size=6))
def test_any_listing_yields_a_batch_the_gateway_schema_accepts(listing):
    catalog = build_catalog({server: [tool(n, d) for n, d in tools] for server, tools in listing.items()})
    wire = catalog.to_wire()
    assert len(wire) <= MAX_TOOLS
    assert len({d["name"].lower() for d in wire}) == len(wire)
    for descriptor in wire:
        assert set(descriptor) == {"pluginId", "name", "description", "parameters", "command", "mcp"}
        assert NAME_RE.match(descriptor["name"])
        assert descriptor["description"].strip() and utf16_len(descriptor["description"]) <= DESCRIPTION_MAX_UTF16
        assert descriptor["mcp"]["server"] and descriptor["mcp"]["tool"]
        json.dumps(descriptor, allow_nan=False)
