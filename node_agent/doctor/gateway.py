"""The ``gateway`` line: can the daemon's own transport reach the gateway, and does what it says
first fit the configured dialect?

The probe is :func:`node_agent.transport.probe`: the transport the daemon opens, with its own
error translation, so what doctor reports is what the agent would meet. This module only reads
the :class:`~node_agent.transport.Probe` and words it: OpenClaw sends ``connect.challenge``
within milliseconds of the upgrade; the documented dialect says nothing until we ``connect``.
"""

from __future__ import annotations

from ..protocol.autodetect import choose_dialect, is_openclaw_challenge
from ..transport import Probe, Stage
from .check import Check, fail, ok, skip, warn
from .context import Context

NAME = "gateway"
_UNREACHABLE_FIX = ("is the gateway running (`openclaw gateway status`)? check the host and port in the gateway "
                    "URL, and any firewall between here and the gateway")
_NOT_THE_GATEWAY_FIX = "check the URL's port and path: is this the gateway?"


def check_gateway(probe: Probe, protocol: str) -> Check:
    """``protocol`` is the configured dialect (``openclaw``, ``jsonrpc`` or ``auto``)."""
    if probe.error is not None:
        if probe.failed_in is Stage.TLS:
            reached = f"TCP to {probe.where} works; " if probe.tcp_after_s is not None else ""
            return skip(NAME, f"{reached}not tried further because TLS failed (see the tls line)")
        fix = _UNREACHABLE_FIX if probe.failed_in is Stage.TCP else _NOT_THE_GATEWAY_FIX
        return fail(NAME, probe.error.message, fix)

    url = probe.url
    if probe.closed is not None:
        return warn(NAME, f"{probe.where} upgraded to WebSocket, then closed it at once "
                          f"(code {probe.closed.close_code}) without a word",
                    "check that the URL points at an OpenClaw gateway")
    first = probe.first_frame
    if is_openclaw_challenge(first):
        detail = f"OpenClaw gateway at {url}: connect.challenge {_seconds(probe.heard_after_s)} after connecting"
        if protocol == "jsonrpc":
            return warn(NAME, f"{detail}, but gateway.protocol is \"jsonrpc\"",
                        'set gateway.protocol = "openclaw" (or "auto")')
        return ok(NAME, detail)
    if first is None or choose_dialect(first) == "jsonrpc":
        what = "said nothing" if first is None else "sent a non-OpenClaw frame first"
        detail = (f"WebSocket at {url} (upgrade in {_seconds(probe.open_after_s)}) {what} within "
                  f"{probe.window_s:g} s: no connect.challenge")
        if protocol == "jsonrpc":
            return ok(NAME, f"{detail}, as the documented dialect does (protocol \"jsonrpc\")")
        if protocol == "auto":
            return ok(NAME, f"{detail}; \"auto\" will speak the documented dialect")
        return warn(NAME, f"{detail}: not an OpenClaw gateway, or one speaking the documented dialect",
                    'if it speaks the documented (JSON-RPC) dialect set gateway.protocol = "jsonrpc" or "auto"; '
                    "otherwise check the URL and port")
    return warn(NAME, f"{probe.where} sent an OpenClaw-style frame first, but not connect.challenge",
                "check the gateway version (node-agent needs protocol 3 or 4)")


async def run(ctx: Context) -> Check:
    return check_gateway(await ctx.probe(), ctx.cfg.protocol)


def _seconds(value: float | None) -> str:
    """A measured time, always as wide ("0.004 s"): the words after it wrap the same way each run."""
    return f"{value or 0.0:.3f} s"
