"""The node's own tools, as an MCP server that runs inside the agent (no subprocess).

Why an MCP server at all: a stock gateway does not forward ``device.*`` commands to a Linux
node, but it does forward ``mcp.tools.call.v1`` once the node is approved; served this way the
device's status and its GPIO reach the gateway's agents with no gateway configuration.

Tools (published as ``device_<tool>``):

* ``status``: uptime, load, memory, root-disk usage and every temperature the kernel exposes in
  ``/sys/class/thermal`` (``thermal_zone*/temp``, millidegrees Celsius).
* ``gpio_read`` / ``gpio_write``: only when the configuration names GPIO lines and the platform
  adapter can drive them (the Pi adapter). The ``line`` argument is an *enum of the configured
  names*: the schema the agent sees lists them, the SDK rejects anything else before our code
  runs, and the adapter is asked for names, never pin numbers. ``gpio_write`` takes only lines
  configured ``direction = "out"``.

This module must not use ``from __future__ import annotations``: the SDK builds each tool's
input schema from its signature, and the ``Literal`` of line names exists only at run time.
"""

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

from ..adapters.base import Gpio
from ..agent.commands import host_stats

THERMAL_ROOT = Path("/sys/class/thermal")


def temperatures(root: Path = THERMAL_ROOT) -> list[dict[str, Any]]:
    """``[{zone, type, celsius}]`` for every readable thermal zone (none on most VMs)."""
    found: list[dict[str, Any]] = []
    for zone in sorted(root.glob("thermal_zone*")):
        try:
            millidegrees = int((zone / "temp").read_text().strip())
        except (OSError, ValueError):
            continue
        try:
            kind = (zone / "type").read_text().strip()
        except OSError:
            kind = "unknown"
        found.append({"zone": zone.name, "type": kind, "celsius": round(millidegrees / 1000, 1)})
    return found


def system_uptime() -> float | None:
    try:
        return float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def device_status(*, agent_started_at: float, thermal_root: Path = THERMAL_ROOT) -> dict[str, Any]:
    status: dict[str, Any] = {"agentUptimeSeconds": round(time.time() - agent_started_at, 1)}
    uptime = system_uptime()
    if uptime is not None:
        status["uptimeSeconds"] = uptime
    status.update(host_stats())
    status["temperatures"] = temperatures(thermal_root)
    return status


def build_device_server(*, agent_started_at: float, gpio: Gpio | None = None,
                        thermal_root: Path = THERMAL_ROOT) -> Any:
    """The in-process ``MCPServer`` (imported here: the SDK is slow to import)."""
    from mcp.server.mcpserver import MCPServer  # noqa: PLC0415
    from mcp_types import ToolAnnotations  # noqa: PLC0415

    server = MCPServer("node-agent-device", instructions="Tools of the device this node agent runs on.")

    def status() -> dict[str, Any]:
        return device_status(agent_started_at=agent_started_at, thermal_root=thermal_root)

    server.add_tool(status, name="status", structured_output=True,
                    description="Device status: uptime, load average, memory, disk usage and temperatures.",
                    annotations=ToolAnnotations(read_only_hint=True, open_world_hint=False))

    if gpio is not None and gpio.lines():
        lines = gpio.lines()
        _add_gpio_tools(server, gpio, sorted(lines), sorted(n for n, d in lines.items() if d == "out"),
                        ToolAnnotations)
    return server


def _add_gpio_tools(server: Any, gpio: Gpio, names: Sequence[str], outputs: Sequence[str],
                    annotations: Callable[..., Any]) -> None:
    async def gpio_read(line: str) -> dict[str, Any]:
        return {"line": line, "value": await gpio.read(line)}

    gpio_read.__annotations__ = {"line": Literal[tuple(names)], "return": dict[str, Any]}
    server.add_tool(gpio_read, name="gpio_read", structured_output=True,
                    description="Read a named GPIO line of this device (true = active). Lines: "
                                + ", ".join(names) + ".",
                    annotations=annotations(read_only_hint=True, open_world_hint=False))
    if not outputs:
        return

    async def gpio_write(line: str, value: bool) -> dict[str, Any]:
        await gpio.write(line, value)
        return {"line": line, "value": value}

    gpio_write.__annotations__ = {"line": Literal[tuple(outputs)], "value": bool, "return": dict[str, Any]}
    server.add_tool(gpio_write, name="gpio_write", structured_output=True,
                    description="Drive a named GPIO output line of this device (true = active). Lines: "
                                + ", ".join(outputs) + ".",
                    annotations=annotations(read_only_hint=False, destructive_hint=False,
                                            idempotent_hint=True, open_world_hint=False))
