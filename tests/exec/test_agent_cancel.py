"""Through the agent: ``node.invoke.cancel`` and a lost connection end a running command's whole
process tree (grandchildren included), with the strict fake gateway and real processes."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio

from node_agent.agent.commands import builtin_registry
from node_agent.agent.status import StatusBoard
from node_agent.config.exec import ExecSettings
from node_agent.exec.extension import ExecExtension, build_service
from tests.exec.test_runner import alive, wait_for_pid_file
from tests.support.agents import connected
from tests.support.fake_openclaw import FakeGateway


def exec_registry(tmp_path: Path):
    settings = ExecSettings(cwd=str(tmp_path))
    ext = ExecExtension(build_service(tmp_path / "exec", base_env=lambda: {"PATH": "/usr/bin:/bin"},
                                      settings=settings), StatusBoard(None))
    (tmp_path / "exec").mkdir()
    ext.service.store.set({"version": 1, "defaults": {"security": "full", "ask": "off"}}, None)
    registry = builtin_registry()
    ext.register(registry)
    return registry, ext


def sleeper(pid_file: Path) -> str:
    return json.dumps({"command": ["/bin/sh", "-c", f"sleep 60 & echo $! > {pid_file}; wait"], "runId": "r1"})


@asynccontextmanager
async def running_sleeper(tmp_path: Path, invoke_id: str) -> AsyncIterator[tuple[Any, Any, Any, int]]:
    """An agent on the fake gateway running ``sleep 60 &`` through ``system.run``; yields
    (agent, connection, exec extension, the grandchild's pid) once the grandchild is alive."""
    registry, ext = exec_registry(tmp_path)
    pid_file = tmp_path / "pid"
    async with connected(FakeGateway(), tmp_path, registry=registry, extensions=[ext]) as (agent, conn):
        await conn.send_event("node.invoke.request", {"id": invoke_id, "nodeId": agent.identity.device_id,
                                                      "command": "system.run", "paramsJSON": sleeper(pid_file),
                                                      "timeoutMs": 30000})
        grandchild = await wait_for_pid_file(pid_file)
        assert alive(grandchild)
        yield agent, conn, ext, grandchild


async def test_node_invoke_cancel_kills_the_grandchild(tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with running_sleeper(tmp_path, "inv-1") as (agent, conn, _ext, grandchild):
            await conn.send_event("node.invoke.cancel", {"invokeId": "inv-1", "nodeId": agent.identity.device_id})
            (result,) = await conn.wait_request("node.invoke.result")
            assert result["params"]["error"]["code"] == "CANCELLED"
            assert not alive(grandchild)


async def test_a_lost_connection_kills_the_grandchild(tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with running_sleeper(tmp_path, "inv-2") as (_agent, conn, ext, grandchild):
            await conn.close(1006, "gone")
            while alive(grandchild):
                await trio.sleep(0.01)
            assert ext.service.runs == 1
