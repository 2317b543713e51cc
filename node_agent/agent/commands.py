"""The ``node.invoke`` command registry and the built-in commands.

A command is an async function ``(params: dict, ctx: CommandContext) -> JSON-able payload``.
It answers ``ok: false`` by raising :class:`~node_agent.errors.InvokeError`. Its Trio task is
cancelled when the gateway cancels the invoke (``node.invoke.cancel``), when its deadline
passes, or when the connection ends: clean up in ``finally``. The registry is also the node's
declared surface: ``commands`` and ``caps`` in ``connect`` come from it, so a command that is not
registered is never advertised (and ``system.run``-style commands exist only if something
registers them on purpose).
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import time
from typing import TYPE_CHECKING, Any, Awaitable, Callable

import attrs

from .. import __version__
from ..adapters import PlatformAdapter
from ..errors import InvokeError

if TYPE_CHECKING:
    from ..protocol.models import NodeInvokeRequest
    from ..protocol.replies import NodeEventReply
    from .status import AgentStatus


#: ``after_result(event, payload, on_reply=callback)``: see :class:`CommandContext`.
AfterResult = Callable[..., None]


@attrs.frozen(kw_only=True)
class CommandContext:
    """What a handler may use: the device, the agent's status, and the invoke's own connection
    (``node_event`` sends an event on it and returns the gateway's typed reply, raising
    :class:`~node_agent.errors.GatewayRejected` if it is refused; ``after_result`` sends one
    right after this invoke's result, handing the reply, or None, to a callback:
    :meth:`~.connection.Connection.after_result`)."""

    adapter: PlatformAdapter
    device_id: str
    display_name: str
    started_at: float  # time.time() of process start
    status: Callable[[], "AgentStatus"]
    request: "NodeInvokeRequest | None" = None
    node_event: Callable[[str, Any], Awaitable["NodeEventReply"]] | None = attrs.field(default=None, repr=False)
    after_result: AfterResult | None = attrs.field(default=None, repr=False)


Handler = Callable[[dict[str, Any], CommandContext], Awaitable[Any]]


@attrs.frozen
class Command:
    name: str
    handler: Handler
    cap: str


class CommandRegistry:
    def __init__(self) -> None:
        self._commands: dict[str, Command] = {}

    def register(self, name: str, handler: Handler, *, cap: str) -> None:
        if name in self._commands:
            raise ValueError(f"command {name!r} registered twice")
        self._commands[name] = Command(name, handler, cap)

    def get(self, name: str) -> Command | None:
        return self._commands.get(name)

    @property
    def commands(self) -> tuple[str, ...]:
        return tuple(sorted(self._commands))

    @property
    def caps(self) -> tuple[str, ...]:
        return tuple(sorted({c.cap for c in self._commands.values()}))

    def __repr__(self) -> str:
        return f"<CommandRegistry {', '.join(self.commands)}>"


# --- built-ins ------------------------------------------------------------------------------


async def device_info(params: dict[str, Any], ctx: CommandContext) -> dict[str, Any]:
    uname = os.uname() if hasattr(os, "uname") else None
    return {
        "deviceId": ctx.device_id,
        "displayName": ctx.display_name,
        "hostname": socket.gethostname(),
        "platform": ctx.adapter.platform,
        "deviceFamily": ctx.adapter.device_family,
        "adapter": ctx.adapter.name,
        "modelIdentifier": ctx.adapter.model_identifier,
        "osRelease": uname.release if uname else None,
        "machine": uname.machine if uname else None,
        "agent": {"name": "node-agent", "version": __version__},
        "python": sys.version.split()[0],
    }


async def device_status(params: dict[str, Any], ctx: CommandContext) -> dict[str, Any]:
    payload: dict[str, Any] = {"uptimeSeconds": round(time.time() - ctx.started_at, 3), **host_stats()}
    from .status import to_json

    payload["agent"] = to_json(ctx.status())
    return payload


async def system_notify(params: dict[str, Any], ctx: CommandContext) -> dict[str, Any]:
    title, body = params.get("title"), params.get("body")
    if not isinstance(title, str) or not isinstance(body, str):
        raise InvokeError("INVALID_REQUEST", "system.notify needs string 'title' and 'body'")
    priority = params.get("priority")
    delivered = await ctx.adapter.notifier.notify(title, body,
                                                  priority=priority if isinstance(priority, str) else None)
    return {"delivered": True, "via": delivered}


def host_stats() -> dict[str, Any]:
    """Cheap host figures (no subprocess), as ``device.status`` reports them (nested, with
    ``None`` where the host would not say). ``node.host.stats`` sends :func:`host_stats_event`."""
    stats: dict[str, Any] = {"cpuCount": os.cpu_count()}
    try:
        stats["loadAverage"] = list(os.getloadavg())
    except (AttributeError, OSError):
        pass
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            info = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in fh if line.split()[1:2]}
        stats["memory"] = {"totalBytes": info.get("MemTotal"), "availableBytes": info.get("MemAvailable")}
    except (OSError, ValueError, IndexError):
        pass
    try:
        usage = shutil.disk_usage(os.path.abspath(os.sep))
        stats["disk"] = {"totalBytes": usage.total, "freeBytes": usage.free}
    except OSError:
        pass
    return stats


#: ``NodeHostStatsPayloadSchema`` (openclaw 2026.9.2 - 2026.9.6): its bounds.
_MAX_CPUS = 4096
_MAX_LOAD = 1e5


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def host_stats_event(stats: dict[str, Any]) -> dict[str, Any] | None:
    """``stats`` (from :func:`host_stats`) in the gateway's closed, flat ``node.host.stats`` shape:
    ``{cpuCount, loadAverage?: [1, 5, 15 min], memoryTotalBytes, memoryFreeBytes, diskTotalBytes?,
    diskAvailableBytes?}``. The gateway refuses the whole event (``handled: false,
    invalid_payload``) for one figure out of bounds, so a figure the schema cannot hold is left
    out where optional and clamped where it only overshoots (more than 4096 CPUs, a load above
    1e5, free memory above total after a racy read). None when a required figure is missing.
    "Free" memory is ``MemAvailable``, what the reference node host reports (libuv's freemem);
    disk is the root file system, available to unprivileged users."""
    cpus = _count(stats.get("cpuCount"))
    memory = stats.get("memory") if isinstance(stats.get("memory"), dict) else {}
    total, free = _count(memory.get("totalBytes")), _count(memory.get("availableBytes"))
    if not cpus or total is None or free is None:
        return None
    event: dict[str, Any] = {"cpuCount": min(cpus, _MAX_CPUS)}
    load = stats.get("loadAverage")
    if isinstance(load, list) and len(load) == 3 and all(
            isinstance(x, (int, float)) and not isinstance(x, bool) and x == x for x in load):
        event["loadAverage"] = [min(max(float(x), 0.0), _MAX_LOAD) for x in load]
    event["memoryTotalBytes"] = total
    event["memoryFreeBytes"] = min(free, total)
    disk = stats.get("disk") if isinstance(stats.get("disk"), dict) else {}
    disk_total, disk_free = _count(disk.get("totalBytes")), _count(disk.get("freeBytes"))
    if disk_total is not None and disk_free is not None:  # the schema wants both or neither
        event["diskTotalBytes"] = disk_total
        event["diskAvailableBytes"] = min(disk_free, disk_total)
    return event


def builtin_registry() -> CommandRegistry:
    registry = CommandRegistry()
    registry.register("device.info", device_info, cap="device")
    registry.register("device.status", device_status, cap="device")
    registry.register("system.notify", system_notify, cap="system")
    return registry
