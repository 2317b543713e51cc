"""What an OpenClaw release does that its answers do not say, looked up by hello-ok's version.

A node must act on a few differences between gateway releases that never show on the wire: the
name of the command-allowlist key a person must set, and whether (and how) the gateway tells a
node about the second pairing stage, its command surface. ``hello-ok.server.version`` is the
gateway's own answer to "which release are you?", so this table is keyed by it. Every row was
read from that release's ``dist/`` and watched live against it (docs/openclaw-releases.md; the
interop matrix ``scripts/interop-matrix`` re-runs it):

========================  =====================================================================
release                   command surface (``openclaw nodes approve``)
========================  =====================================================================
<= 2026.3.28              no second stage: a paired device's allowlisted commands are live
2026.3.31                 a request is made at connect, and the live session keeps the commands
                          approved *at connect* (none, the first time): an approval never
                          reaches a connected node, and the node is not told
2026.4.1 - 2026.7.35      a request is made at connect; an approval reaches the live session,
                          but the node is never told either way (no PAIRING_CHANGED, no
                          ``node.pair.resolved`` for role node)
>= 2026.8.1               node methods answer PAIRING_CHANGED while the surface is pending; on
                          approval 2026.9.6 sends ``node.pair.resolved`` to the node's session,
                          8.1-8.2 only broadcast it to operator.pairing sockets (the node sees
                          its presence accepted again)
========================  =====================================================================

From 2026.4.1 to before 2026.5.28 (the matrix: 3.31 and 5.28 approve, 4.29 refuses)
``openclaw nodes approve`` asks the gateway for ``operator.pairing`` only, while the gateway also
wants ``operator.write`` to approve a surface with commands (``operator.admin`` with
``system.run``): the CLI answers "missing scope" (openclaw #60461 of 2026-04-03 moved the method
to the pairing scope; #84144, fixed by #84392 of 2026-05-20). A person approves in the Control UI.

The allowlist key is ``gateway.nodes.allowCommands`` up to 2026.7.35 and
``gateway.nodes.commands.allow`` from 2026.8.1 (each release's strict config schema rejects the
other). A version this table cannot read ("dev", a build without a version) is taken to be the
newest behaviour: that is what a release newer than the table does too.

Pure: no I/O, no clock; the agent asks :func:`profile_for` once per ``hello-ok``.
"""

from __future__ import annotations

import enum
import re

import attrs

NEW_ALLOWLIST_KEY = "gateway.nodes.commands.allow"
OLD_ALLOWLIST_KEY = "gateway.nodes.allowCommands"

_VERSION = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)(?:[-+][0-9A-Za-z.-]+)?$")

#: Release boundaries (first release with the newer behaviour).
_SURFACE_STAGE_SINCE = (2026, 3, 31)
_SURFACE_LIVE_SINCE = (2026, 4, 1)
_SURFACE_REPORTED_SINCE = (2026, 8, 1)
_NEW_ALLOWLIST_SINCE = (2026, 8, 1)
_CLI_APPROVAL_BROKEN = ((2026, 4, 1), (2026, 5, 28))


class SurfaceStage(enum.Enum):
    """How a release handles a node's command surface (the second pairing stage)."""

    #: No second stage: the device's approval is the whole pairing.
    NONE = "none"
    #: Approved commands apply only when the node connects; a live session never gets them.
    AT_CONNECT = "at-connect"
    #: Approval reaches the live session, but the node is not told whether it is pending.
    UNREPORTED = "unreported"
    #: PAIRING_CHANGED while pending, ``node.pair.resolved`` on approval.
    REPORTED = "reported"


def parse_release(version: str | None) -> tuple[int, int, int] | None:
    """``"2026.7.35"`` -> ``(2026, 7, 35)``; None for anything that is not a release number."""
    match = _VERSION.match(version.strip()) if isinstance(version, str) else None
    return (int(match[1]), int(match[2]), int(match[3])) if match else None


@attrs.frozen
class GatewayProfile:
    """One gateway release as the node must treat it. ``release`` is None when the version
    could not be read; then every answer is the newest release's."""

    version: str | None
    release: tuple[int, int, int] | None

    @property
    def known(self) -> bool:
        return self.release is not None

    def _since(self, boundary: tuple[int, int, int]) -> bool:
        return self.release is None or self.release >= boundary

    @property
    def allowlist_key(self) -> str:
        """The config key that lets more node commands through on this gateway."""
        return NEW_ALLOWLIST_KEY if self._since(_NEW_ALLOWLIST_SINCE) else OLD_ALLOWLIST_KEY

    @property
    def surface_stage(self) -> SurfaceStage:
        if self._since(_SURFACE_REPORTED_SINCE):
            return SurfaceStage.REPORTED
        if self._since(_SURFACE_LIVE_SINCE):
            return SurfaceStage.UNREPORTED
        if self._since(_SURFACE_STAGE_SINCE):
            return SurfaceStage.AT_CONNECT
        return SurfaceStage.NONE

    @property
    def cli_approves_surface(self) -> bool:
        """``openclaw nodes approve`` can approve a node's commands on this release."""
        first, fixed = _CLI_APPROVAL_BROKEN
        return self.release is None or not first <= self.release < fixed

    def allowlist_hint(self, commands: str = '["device.info","device.status"]') -> str:
        """The command a person runs on the gateway host to allow more commands."""
        return f"openclaw config set {self.allowlist_key} '{commands}'"


#: What a stock 2026.9.6 gateway lets a Linux node run without the allowlist: the platform
#: defaults and the commands of an approved desktop-host surface
#: (``src/gateway/node-command-policy.ts``; shared/reference/openclaw-node-commands.md §1).
#: Older releases allow fewer; a hint naming one of these for them errs on the side of allowing.
_LINUX_DEFAULTS = frozenset({
    "system.notify", "computer.act", "camera.list", "location.get", "talk.ptt.start", "talk.ptt.stop",
    "talk.ptt.cancel", "talk.ptt.once", "system.run", "system.run.prepare", "system.which",
    "system.execApprovals.get", "system.execApprovals.set", "fs.listDir", "terminal.upload", "browser.proxy",
    "browser.proxy.upload.v1", "mcp.tools.call.v1", "agent.cli.claude.run.v1", "screen.snapshot",
    "desktop.stream",
})


def default_allowed() -> frozenset[str]:
    """The node commands a gateway lets through without ``allowlist_key``."""
    return _LINUX_DEFAULTS


def profile_for(version: str | None) -> GatewayProfile:
    return GatewayProfile(version=version, release=parse_release(version))
