"""The [mcp] table: strict, with errors that name the key and the file (and via load_config)."""

from __future__ import annotations

import tomllib

import pytest

from node_agent.config.mcp import McpSettings
from node_agent.errors import ConfigError

EXAMPLE = """
[mcp.builtin]
enabled = true
[mcp.builtin.gpio.relay]
chip = "/dev/gpiochip0"
line = 17
direction = "out"
[mcp.builtin.gpio.door]
chip = "/dev/gpiochip0"
line = 27
bias = "pull-up"
active_low = true

[[mcp.servers]]
name = "time"
command = ["mcp-server-time", "--local-timezone", "UTC"]
env = { TZ = "UTC", API_KEY = "s3cr3t-value" }
cwd = "/srv"
timeout = 20

[[mcp.servers]]
name = "git"
command = ["mcp-server-git"]
enabled = false
"""


def test_the_readme_example_loads():
    settings = McpSettings.from_table(tomllib.loads(EXAMPLE)["mcp"])
    time_server, git = settings.servers
    assert time_server.command == ("mcp-server-time", "--local-timezone", "UTC")
    assert time_server.env == {"TZ": "UTC", "API_KEY": "s3cr3t-value"}
    assert (time_server.cwd, time_server.timeout, time_server.enabled) == ("/srv", 20.0, True)
    assert git.enabled is False and git.timeout == 60.0
    assert [s.name for s in settings.enabled_servers] == ["time"]
    assert [(g.name, g.line, g.direction, g.active_low, g.bias) for g in settings.builtin.gpio] == [
        ("door", 27, "in", True, "pull-up"), ("relay", 17, "out", False, "as-is")]
    assert settings.declares_tools


def test_env_values_never_show_in_repr():
    settings = McpSettings.from_table(tomllib.loads(EXAMPLE)["mcp"])
    assert "s3cr3t-value" not in repr(settings) and "'API_KEY': '***'" in repr(settings)


def test_nothing_configured_declares_no_tools():
    assert not McpSettings.from_table({}).declares_tools
    assert not McpSettings.from_table({"servers": [{"name": "a", "command": ["x"], "enabled": False}]}).declares_tools
    assert McpSettings.from_table({"builtin": True}).declares_tools


@pytest.mark.parametrize(("table", "message"), [
    ({"server": []}, "unknown key mcp.server"),
    ({"servers": {"name": "x"}}, "mcp.servers must be an array of tables"),
    ({"servers": [{"name": "x", "command": ["a"], "argv": []}]}, "unknown key mcp.servers[0].argv"),
    ({"servers": [{"name": "bad name", "command": ["a"]}]}, "mcp.servers[0].name must match"),
    ({"servers": [{"name": "device", "command": ["a"]}]}, "reserved for the builtin tools"),
    ({"servers": [{"name": "a", "command": "mcp-server-time"}]}, "command must be a non-empty list"),
    ({"servers": [{"name": "a", "command": []}]}, "command must be a non-empty list"),
    ({"servers": [{"name": "a", "command": ["x"], "env": {"A": 1}}]}, "env must be a table of strings"),
    ({"servers": [{"name": "a", "command": ["x"], "timeout": 0}]}, "timeout must be a number of seconds"),
    ({"servers": [{"name": "a", "command": ["x"], "enabled": "yes"}]}, "enabled must be true or false"),
    ({"servers": [{"name": "a", "command": ["x"]}, {"name": "a", "command": ["y"]}]}, "two [[mcp.servers]]"),
    ({"builtin": {"gpio": {"r": {"chip": "/dev/gpiochip0", "line": -1}}}}, "line must be a line offset"),
    ({"builtin": {"gpio": {"r": {"chip": "/dev/gpiochip0", "line": 1, "direction": "both"}}}},
     "direction must be one of in, out"),
    ({"builtin": {"gpio": {"a": {"chip": "c", "line": 1}, "b": {"chip": "c", "line": 1}}}}, "are the same line"),
    ({"builtin": {"gpio": {"r": {"chip": "c", "line": 1, "pin": 4}}}}, "unknown key mcp.builtin.gpio.r.pin"),
])
def test_a_bad_table_is_an_error_naming_the_file_and_key(table, message):
    with pytest.raises(ConfigError) as caught:
        McpSettings.from_table(table, where="/etc/node-agent/config.toml")
    assert message in str(caught.value)
    assert str(caught.value).startswith("/etc/node-agent/config.toml: ")


def test_the_config_file_carries_the_mcp_table(tmp_path):
    from node_agent.config import load_config

    path = tmp_path / "config.toml"
    path.write_text(EXAMPLE)
    config = load_config(config_file=path, env={})
    assert [s.name for s in config.mcp.servers] == ["time", "git"]
    path.write_text("[mcp]\nservers = 3\n")
    with pytest.raises(ConfigError) as caught:
        load_config(config_file=path, env={})
    assert str(caught.value) == f"{path}: mcp.servers must be an array of tables ([[mcp.servers]])"
