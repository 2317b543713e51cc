"""Which OpenClaw releases the interop tests run against, and what each one accepts.

Job: one place for the release list (the pinned one, the oldest supported, the interop matrix),
where each release is installed, and the few facts about a release the harness must act on:
which config keys its strict config schema accepts, and how it pairs a loopback node. Each fact
was read from that release's own ``dist/`` and checked with its own ``openclaw config
validate`` (see docs/openclaw-releases.md); :mod:`tests.interop.test_harness` re-checks the
config half against every installed release it runs on.

Invariants:
- A version is compared by its numeric release triple (``2026.7.35`` < ``2026.8.1``); a
  pre-release (``2026.8.1-beta.2``) counts as its release: none of them is in the matrix.
- The install location is the one rule ``scripts/gateway-setup.sh`` uses too: the pinned
  release in ``…/node-agent/openclaw-gateway`` (where everything else looks), any other in
  ``…/node-agent/openclaw-<version>``, all under the user cache, never in the repo.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import attrs

#: The release the product is built and documented against (the whole suite runs on it).
PINNED = "2026.9.6"
#: The oldest release the project supports. Releases before it depend on a git-only package
#: (``libsignal`` from github.com, through ``@whiskeysockets/baileys@7.0.0-rc.9``): the npm
#: registry alone cannot install them.
OLDEST_SUPPORTED = "2026.3.22"
#: The interop matrix: one release a month from the oldest supported to the pinned one, plus the
#: releases named in issue 10 (3.31: surface not live; 7.35: last with the old config keys;
#: 8.2: last without ``auth.method`` in hello-ok).
MATRIX: tuple[str, ...] = ("2026.3.22", "2026.3.31", "2026.4.29", "2026.5.28", "2026.6.35",
                           "2026.7.35", "2026.8.2", "2026.9.6")

#: First release whose config knows ``gateway.nodes.commands.allow``,
#: ``gateway.nodes.pairing.{autoApproveLocal,sshVerify}``, ``telemetry`` and
#: ``models.catalogRefresh`` (2026.7.35 rejects each; 2026.8.1 accepts each).
NEW_CONFIG_SINCE = "2026.8.1"
#: First release that reports ``handled``/``reason`` for ``node.presence.alive`` (4.29).
PRESENCE_HANDLED_SINCE = "2026.4.29"
#: First release with a second pairing stage (a node surface request at connect).
SURFACE_STAGE_SINCE = "2026.3.31"
#: First release that applies an approved surface to a live session (3.31 does not).
SURFACE_LIVE_SINCE = "2026.4.1"
#: First release that tells the node about its surface (PAIRING_CHANGED, node.pair.resolved).
SURFACE_REPORTED_SINCE = "2026.8.1"
#: First release of the matrix that issues a node its device token. 2026.3.22 stores a node's
#: empty scope list as no scope baseline at all (``mergeScopes`` returns undefined), and
#: ``ensureDeviceToken`` issues nothing against a missing baseline: hello-ok has no ``auth``, and
#: the node stays on the gateway token. 2026.3.31 and later hand one over (seen in the matrix).
NODE_TOKEN_SINCE = "2026.3.31"
#: First release that handles ``node.host.stats`` (and lists ``node.hostStats`` in hello-ok).
HOST_STATS_SINCE = "2026.9.2"
#: First release of the matrix that widens the ``openclaw`` CLI's own device pairing without a
#: person. The CLI pairs its device silently on its first (loopback, shared-token) call, with
#: the scopes that call asked for; 2026.4.29-6.35 then refuse a later call that needs more
#: (``scope upgrade pending approval``, or close 1008 "device is asking for more scopes than
#: currently approved"), 2026.7.35 and later let it through (seen in the matrix).
CLI_SCOPE_UPGRADE_SILENT_SINCE = "2026.7.35"
#: ``openclaw nodes approve`` of 2026.4.1 up to this release asks for ``operator.pairing`` only
#: and the gateway wants ``operator.write`` (``operator.admin`` with ``system.run``) as well: the
#: matrix's 4.29 answers "missing scope: operator.admin", 3.31 and 5.28 approve.
CLI_APPROVES_SURFACE_AGAIN_SINCE = "2026.5.28"
#: A run that fails before it starts (the harness configures no model) still sends its session's
#: ``chat`` events on 3.x and 9.6; 2026.4.29-8.2 of the matrix only log "agent failed node=<id>:
#: Agent harness runtime ... is unavailable" and send nothing (seen in the matrix).
FAILED_RUN_IN_CHAT_AGAIN_SINCE = "2026.9.6"

_VERSION = re.compile(r"^(\d+)\.(\d+)\.(\d+)(?:-[0-9A-Za-z.-]+)?$")


def version_key(version: str) -> tuple[int, int, int]:
    match = _VERSION.match(version)
    if match is None:
        raise ValueError(f"not an openclaw release version: {version!r}")
    return int(match[1]), int(match[2]), int(match[3])


@attrs.frozen
class Release:
    """One openclaw release, as the harness needs to know it."""

    version: str = attrs.field()

    @version.validator
    def _check(self, _attribute: attrs.Attribute, value: str) -> None:
        version_key(value)

    def __str__(self) -> str:
        return self.version

    def at_least(self, version: str) -> bool:
        return version_key(self.version) >= version_key(version)

    # -- config -------------------------------------------------------------------------------

    @property
    def allowlist_key(self) -> str:
        """The config path of the extra node-command allowlist."""
        return "gateway.nodes.commands.allow" if self.at_least(NEW_CONFIG_SINCE) else "gateway.nodes.allowCommands"

    @property
    def has_pairing_switches(self) -> bool:
        """``gateway.nodes.pairing.autoApproveLocal`` / ``sshVerify`` exist."""
        return self.at_least(NEW_CONFIG_SINCE)

    @property
    def has_telemetry_switch(self) -> bool:
        return self.at_least(NEW_CONFIG_SINCE)

    @property
    def has_catalog_refresh_switch(self) -> bool:
        return self.at_least(NEW_CONFIG_SINCE)

    # -- behaviour tests must expect ------------------------------------------------------------

    @property
    def has_surface_stage(self) -> bool:
        """``openclaw nodes approve`` exists for a node's commands."""
        return self.at_least(SURFACE_STAGE_SINCE)

    @property
    def applies_surface_at_connect(self) -> bool:
        """2026.3.31: an approval never reaches a connected node; the next connect applies it."""
        return self.has_surface_stage and not self.at_least(SURFACE_LIVE_SINCE)

    @property
    def reports_surface(self) -> bool:
        return self.at_least(SURFACE_REPORTED_SINCE)

    @property
    def reports_presence_handled(self) -> bool:
        return self.at_least(PRESENCE_HANDLED_SINCE)

    @property
    def handles_host_stats(self) -> bool:
        return self.at_least(HOST_STATS_SINCE)

    @property
    def issues_node_tokens(self) -> bool:
        """hello-ok hands a paired node its device token (see :data:`NODE_TOKEN_SINCE`)."""
        return self.at_least(NODE_TOKEN_SINCE)

    @property
    def cli_approves_surface(self) -> bool:
        """``openclaw nodes approve`` can approve a node's commands (:data:`CLI_APPROVES_SURFACE_AGAIN_SINCE`)."""
        return self.at_least(CLI_APPROVES_SURFACE_AGAIN_SINCE) or not self.at_least("2026.4.1")

    @property
    def reports_a_failed_run_in_chat(self) -> bool:
        """See :data:`FAILED_RUN_IN_CHAT_AGAIN_SINCE`."""
        return self.at_least(FAILED_RUN_IN_CHAT_AGAIN_SINCE) or not self.at_least("2026.4.1")

    @property
    def upgrades_cli_scopes_silently(self) -> bool:
        """See :data:`CLI_SCOPE_UPGRADE_SILENT_SINCE` (3.x pairs the CLI with every scope it
        may ask for, as the matrix's 3.22 and 3.31 runs show)."""
        return self.at_least(CLI_SCOPE_UPGRADE_SILENT_SINCE) or not self.at_least("2026.4.1")

    @property
    def pairs_loopback_silently(self) -> bool:
        """A node connecting from loopback with the shared token gets its device approved without
        a person (no switch turns that off before :data:`NEW_CONFIG_SINCE`)."""
        return not self.has_pairing_switches

    # -- where it lives -----------------------------------------------------------------------

    @property
    def install_dir(self) -> Path:
        return install_dir(self.version)


def install_dir(version: str = PINNED) -> Path:
    """Where ``scripts/gateway-setup.sh`` installs ``version`` (same rule, same variables)."""
    explicit = os.environ.get("NODE_AGENT_GATEWAY_DIR")
    if explicit and version == os.environ.get("OPENCLAW_VERSION", PINNED):
        return Path(explicit)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    name = "openclaw-gateway" if version == PINNED else f"openclaw-{version}"
    return Path(cache) / "node-agent" / name


def installed_version(install: Path) -> str | None:
    """The openclaw version installed in ``install`` (from its package.json), or None."""
    import json

    try:
        data = json.loads((install / "app" / "node_modules" / "openclaw" / "package.json").read_text())
    except (OSError, ValueError):
        return None
    version = data.get("version") if isinstance(data, dict) else None
    return version if isinstance(version, str) else None


def releases_from_env(name: str, default: tuple[str, ...]) -> tuple[Release, ...]:
    """A comma-separated release list from the environment (``name``), else ``default``."""
    raw = os.environ.get(name, "").strip()
    versions = [v.strip() for v in raw.split(",") if v.strip()] if raw else list(default)
    return tuple(Release(v) for v in dict.fromkeys(versions))
