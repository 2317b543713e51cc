"""The release table (node_agent/protocol/releases.py): every boundary, read from each release's
dist (docs/openclaw-releases.md), on both sides."""

from __future__ import annotations

import pytest

from node_agent.protocol.releases import SurfaceStage, parse_release, profile_for


@pytest.mark.parametrize("version, stage, key", [
    ("2026.2.26", SurfaceStage.NONE, "gateway.nodes.allowCommands"),
    ("2026.3.28", SurfaceStage.NONE, "gateway.nodes.allowCommands"),
    ("2026.3.31", SurfaceStage.AT_CONNECT, "gateway.nodes.allowCommands"),
    ("2026.4.1", SurfaceStage.UNREPORTED, "gateway.nodes.allowCommands"),
    ("2026.7.35", SurfaceStage.UNREPORTED, "gateway.nodes.allowCommands"),
    ("2026.8.1", SurfaceStage.REPORTED, "gateway.nodes.commands.allow"),
    ("2026.9.6", SurfaceStage.REPORTED, "gateway.nodes.commands.allow"),
    ("2026.10.1", SurfaceStage.REPORTED, "gateway.nodes.commands.allow"),  # numeric, not text, order
    ("2026.8.1-beta.3", SurfaceStage.REPORTED, "gateway.nodes.commands.allow"),
])
def test_each_boundary_of_the_release_table(version, stage, key):
    profile = profile_for(version)
    assert profile.known and profile.surface_stage is stage and profile.allowlist_key == key


@pytest.mark.parametrize("version", [None, "", "dev", "unknown", "fake", "2026.9"])
def test_a_version_the_table_cannot_read_gets_the_newest_behaviour(version):
    # 2026.2.26 installed from npm says "dev" in hello-ok; a release newer than the table reads.
    profile = profile_for(version)
    assert not profile.known and parse_release(version) is None
    assert profile.surface_stage is SurfaceStage.REPORTED and profile.allowlist_key == "gateway.nodes.commands.allow"


def test_the_allowlist_hint_is_a_command_a_person_can_paste():
    assert profile_for("2026.7.35").allowlist_hint('["device.info"]') == \
        "openclaw config set gateway.nodes.allowCommands '[\"device.info\"]'"


@pytest.mark.parametrize("version, approves", [
    ("2026.3.31", True), ("2026.4.1", False), ("2026.4.29", False), ("2026.5.27", False),
    ("2026.5.28", True), ("2026.9.6", True), ("dev", True),
])
def test_which_releases_cli_can_approve_a_nodes_commands(version, approves):
    assert profile_for(version).cli_approves_surface is approves
