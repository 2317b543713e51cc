"""The tools room's weight stays where it belongs: loading a config with [mcp] and reading what
the daemon published (`tools list`) import neither the MCP SDK nor Trio."""

from __future__ import annotations

from tests.cli.test_layers import heavy_in, imported_by, modules_after_loading, write_identity_and_status

SDK = ("mcp", "mcp_types", "pydantic", "node_agent.tools.session", "node_agent.tools.hub")


def sdk_in(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in SDK))


def test_tools_list_imports_neither_trio_nor_the_sdk(tmp_path):
    write_identity_and_status(tmp_path / "state")
    code, modules = imported_by(["tools", "list", "--json"], tmp_path / "state")
    assert code == 0
    assert heavy_in(modules) == [] and sdk_in(modules) == []


def test_loading_a_config_with_an_mcp_section_imports_neither_the_tools_room_nor_the_sdk(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text('[[mcp.servers]]\nname = "time"\ncommand = ["mcp-server-time"]\n')
    modules = modules_after_loading(config, "c.mcp.servers")
    assert not [m for m in modules if m.startswith(("trio", "node_agent.tools", "mcp", "pydantic"))]
