"""A tool result is bounded the reference host's way, measured as it crosses the wire."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from node_agent.tools.bounds import PAYLOAD_MARKER, TEXT_MARKER, bound_result, wire_bytes


def text(value: str) -> dict:
    return {"type": "text", "text": value}


def test_a_small_result_passes_with_only_content_structured_content_and_is_error():
    result = {"content": [text("hi")], "structuredContent": {"a": 1}, "isError": False,
              "_meta": {"x": 1}, "resultType": "complete"}
    assert bound_result(result) == {"content": [text("hi")], "structuredContent": {"a": 1}}
    assert bound_result({"content": [text("no")], "isError": True}) == {"content": [text("no")], "isError": True}


def test_text_over_its_budget_is_cut_at_a_character_with_a_marker_and_later_text_dropped():
    image = {"type": "image", "data": "AAAA", "mimeType": "image/png"}
    result = {"content": [text("é" * 40), image, text("later")]}
    bounded = bound_result(result, text_max=60)
    first = bounded["content"][0]["text"]
    assert first.endswith(TEXT_MARKER)
    assert len(first.encode()) <= 60 and set(first[:-len(TEXT_MARKER)]) == {"é"}
    assert bounded["content"][1:] == [image]  # other blocks are kept, later text is not


def test_text_that_fills_the_budget_exactly_gets_a_separate_marker():
    budget = 10 + len(TEXT_MARKER.encode())
    bounded = bound_result({"content": [text("x" * 10), text("more" * 20)]}, text_max=budget)
    assert bounded["content"] == [text("x" * 10), text(TEXT_MARKER.lstrip())]


def test_blocks_past_the_payload_budget_are_replaced_by_one_marker():
    blocks = [text(f"{i:03d}" * 10) for i in range(10)]
    budget = wire_bytes({"content": []}) + 3 * (wire_bytes(blocks[0]) + 1) + wire_bytes(text(PAYLOAD_MARKER)) + 1
    bounded = bound_result({"content": blocks}, payload_max=budget)
    assert bounded["content"] == blocks[:3] + [text(PAYLOAD_MARKER)]


def test_structured_content_is_kept_whole_or_not_at_all():
    bounded = bound_result({"content": [text("a")], "structuredContent": {"blob": "x" * 500}}, payload_max=300)
    assert "structuredContent" not in bounded
    assert bounded["content"] == [text("a"), text(PAYLOAD_MARKER)]


def test_escaping_inside_payload_json_counts():
    quotes = text('"' * 100)
    assert wire_bytes(quotes) > 2 * 100  # each quote is \\\" in the frame
    assert wire_bytes("é") == len(json.dumps(json.dumps("é", ensure_ascii=False), ensure_ascii=False).encode()) - 2


def test_garbage_blocks_are_dropped_not_sent():
    bounded = bound_result({"content": ["not a block", text("ok"), {"type": "x", "v": float("nan")}]})
    assert bounded["content"] == [text("ok"), text(PAYLOAD_MARKER)]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(max_size=300), max_size=12), st.integers(200, 3000), st.integers(100, 2000))
def test_a_bounded_payload_always_fits_its_frame_budget(texts, payload_max, text_max):
    bounded = bound_result({"content": [text(t) for t in texts]}, payload_max=payload_max, text_max=text_max)
    assert wire_bytes(bounded) <= payload_max
    total_text = sum(len(b["text"].encode()) for b in bounded["content"] if b["text"] != PAYLOAD_MARKER)
    assert total_text <= max(text_max, len(TEXT_MARKER.encode()))
