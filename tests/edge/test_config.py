"""Configuration: TOML < environment < flags, strict keys, secrets never from flags, ws:// safety."""

from __future__ import annotations

from pathlib import Path

import pytest

from node_agent.config import Config, check_gateway_url, is_private_host, load_config
from node_agent.errors import ConfigError
from node_agent.secret import Secret


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_precedence_file_then_env_then_flags(tmp_path):
    path = write(tmp_path, '[gateway]\nurl = "ws://10.0.0.2:18789"\nprotocol = "jsonrpc"\n'
                           '[node]\ndisplay_name = "from-file"\n')
    env = {"OPENCLAW_GATEWAY_URL": "ws://10.0.0.3:18789", "NODE_AGENT_DISPLAY_NAME": "from-env"}
    config = load_config(config_file=path, env=env, flags={"display_name": "from-flag"})
    assert config.gateway_url == "ws://10.0.0.3:18789" and config.gateway_url_source == "env"
    assert config.display_name == "from-flag"
    assert config.protocol == "jsonrpc"
    assert load_config(config_file=path, env={}).gateway_url_source == "file"


def test_defaults(tmp_path):
    config = load_config(config_file=None, env={"NODE_AGENT_CONFIG": str(write(tmp_path, ""))})
    assert config.gateway_url == "ws://127.0.0.1:18789" and config.protocol == "openclaw"
    assert config.secret_backend == "auto" and config.shared_token is None


def test_shared_token_from_env_or_file_never_in_repr(tmp_path):
    config = load_config(config_file=write(tmp_path, ""), env={"OPENCLAW_GATEWAY_TOKEN": " tok-from-env-123 \n"})
    assert config.shared_token == Secret("tok-from-env-123")
    token_file = tmp_path / "token"
    token_file.write_text("tok-from-file-456\n")
    config = load_config(config_file=write(tmp_path, f'[gateway]\ntoken_file = "{token_file}"\n'),
                         env={"OPENCLAW_GATEWAY_TOKEN": "tok-from-env-123"})
    assert config.shared_token == Secret("tok-from-file-456")  # the file is the more specific setting
    assert "tok-from" not in repr(config)


@pytest.mark.parametrize("text, fragment", [
    ('[gateway]\nurll = "ws://x"\n', "unknown key gateway.urll"),
    ('[gatway]\nurl = "ws://x"\n', "unknown section [gatway]"),
    ('[gateway]\nurl = 5\n', "expected a string"),
    ('[node]\nheartbeat_interval = -1\n', "must be between 5 and 3600 seconds, got -1"),
    ('[secrets]\ntimeout = inf\n', "secrets.timeout: must be a finite number"),
    ('[gateway]\nping_interval = 1e999\n', "gateway.ping_interval: must be a finite number"),
    ('[gateway]\nping_timeout = nan\n', "gateway.ping_timeout: must be a finite number"),
    ('[gateway]\nping_interval = 0\n', "must be between 1 and 600 seconds"),
    ('[voice]\nthreshold = 1.5\n', "voice.threshold must be between 0 and 1"),
    ('[gateway]\nprotocol = "grpc"\n', "gateway.protocol: must be one of openclaw, jsonrpc, auto"),
    ('[secrets]\nbackend = "vault"\n', "secrets.backend: must be one of"),
    ('[node]\nadapter = "amiga"\n', "node.adapter: must be one of"),
    ('[voice]\nenabld = true\n', "unknown key voice.enabld"),
    ('[voice]\nmode = "shouting"\n', "voice.mode"),
    ('[gateway]\ntls_fingerprint = "abc"\n', "SHA-256"),
    ("not = [toml", "not valid TOML"),
])
def test_bad_config_is_one_clear_error(tmp_path, text, fragment):
    with pytest.raises(ConfigError) as info:
        load_config(config_file=write(tmp_path, text), env={})
    assert fragment in info.value.message
    assert str(tmp_path) in info.value.message  # which file to open

def test_missing_explicit_file_and_empty_token_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(config_file=tmp_path / "nope.toml", env={})
    (tmp_path / "empty").write_text("  \n")
    with pytest.raises(ConfigError, match="empty"):
        load_config(config_file=write(tmp_path, ""), env={"NODE_AGENT_TOKEN_FILE": str(tmp_path / "empty")})


@pytest.mark.parametrize("url", ["ws://127.0.0.1:18789", "ws://localhost:1", "ws://[::1]:1", "ws://10.1.2.3",
                                 "ws://192.168.1.10:18789", "ws://172.20.0.1", "ws://100.101.102.103",
                                 "ws://kitchen.local", "ws://gw.tail1234.ts.net", "ws://169.254.1.1",
                                 "wss://gateway.example.com:443"])
def test_urls_accepted(url):
    check_gateway_url(url)


@pytest.mark.parametrize("url", ["ws://gateway.example.com:18789", "ws://8.8.8.8", "ws://[2606:4700:4700::1111]:1"])
def test_plain_ws_to_public_hosts_is_refused_unless_allowed(url):
    with pytest.raises(ConfigError, match="refusing plain ws://") as info:
        check_gateway_url(url)
    assert "wss://" in info.value.hint
    check_gateway_url(url, allow_insecure=True)


@pytest.mark.parametrize("url", ["http://127.0.0.1", "ws://", "127.0.0.1:18789", "ws://h:99999"])
def test_malformed_urls(url):
    with pytest.raises(ConfigError):
        check_gateway_url(url)


def test_is_private_host_does_not_resolve_names():
    assert not is_private_host("my-gateway")  # unknown names are not trusted by guessing DNS


def test_config_is_immutable():
    config = Config(state_dir=Path("/tmp/x"))
    with pytest.raises(Exception):
        config.gateway_url = "ws://elsewhere"  # type: ignore[misc]


def test_a_token_file_others_can_read_is_used_with_a_warning(tmp_path, caplog):
    import logging

    token_file = tmp_path / "token"
    token_file.write_text("tok-readable-by-all-0123\n")
    token_file.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="node_agent"):
        config = load_config(config_file=write(tmp_path, f'[gateway]\ntoken_file = "{token_file}"\n'), env={})
    assert config.shared_token.reveal() == "tok-readable-by-all-0123"
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert f"token file {token_file} has mode 0644" in warning and f"chmod 600 {token_file}" in warning
    assert "tok-readable" not in warning
    caplog.clear()
    token_file.chmod(0o640)  # group-readable on purpose (a service group) is a choice, not a leak
    load_config(config_file=write(tmp_path, f'[gateway]\ntoken_file = "{token_file}"\n'), env={})
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]


def test_readers_look_at_the_system_service_state_only_as_root_with_nothing_chosen(tmp_path, monkeypatch):
    from node_agent.config import for_reading

    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    service, own = tmp_path / "var-lib-node-agent", tmp_path / "own"
    service.mkdir()
    (service / "status.json").write_text("{}")
    default = Config(state_dir=own)
    assert for_reading(default, euid=0, system_dir=service).state_dir == service
    assert for_reading(default, euid=0, system_dir=service).state_dir_source == "system-service"
    assert for_reading(default, euid=1000, system_dir=service) == default  # not root
    chosen = load_config(env={"NODE_AGENT_STATE_DIR": str(own)})
    assert chosen.state_dir_source == "env" and for_reading(chosen, euid=0, system_dir=service) == chosen
    own.mkdir()
    (own / "identity.json").write_text("{}")  # root's own directory is in use: it is root's choice
    assert for_reading(default, euid=0, system_dir=service) == default
