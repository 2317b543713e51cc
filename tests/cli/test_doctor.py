"""``node-agent doctor``: each check is shown the failure it exists to catch, for real where it can
be staged (a closed port, a silent WebSocket server, a trustme certificate under the wrong pin, a
unit file systemd-analyze rejects), and reported with a fix; plus the ``--json`` shape and the
exit codes of the CLI."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import threading
import types
from pathlib import Path
from typing import Any

import pytest
import trio

from node_agent import doctor
from node_agent.agent.status import AgentStatus
from node_agent.cli import main as cli_main
from node_agent.cli.screens import render_doctor
from node_agent.config import load_config
from node_agent.config.voice import VoiceSettings
from node_agent.doctor import Check, DoctorOptions, Status
from node_agent.doctor import state_dir as state_dir_check
from node_agent.doctor.audio import check_audio
from node_agent.doctor.config import check_config
from node_agent.doctor.secret_store import check_secret_store
from node_agent.doctor.service import check_service
from node_agent.doctor.speech import check_speech
from node_agent.doctor.state_dir import check_state_dir
from node_agent.doctor.wake import check_wake_models
from node_agent.identity import DeviceIdentity, load_or_create
from node_agent.secret import Secret
from node_agent.secrets import DEVICE_KEY, FileStore, device_token_key
from node_agent.service.spec import ServiceSpec
from node_agent.service.systemd import render_unit
from tests.support.peers import CHALLENGE, closed_port, leaf_sha256, serve_http_refusal, serve_ws, tls_pair

TIMEOUT = 10.0
NAMES = ["config", "state dir", "secret store", "identity", "gateway", "tls", "pairing", "audio", "wake word",
         "speech", "exec approvals", "service"]
#: Without a configuration nobody knows whether MCP servers are configured: that line says it skipped.
NAMES_NO_CONFIG = [*NAMES[:-1], "mcp servers", NAMES[-1]]
needs_systemd_analyze = pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                                           reason="systemd-analyze not installed")
posix_only = pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")


# --- helpers ----------------------------------------------------------------------------------


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    path = tmp_path / "state"
    path.mkdir(mode=0o700)
    return path


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    # An explicit (empty) file keeps the developer's own ~/.config/node-agent out of the tests.
    path = tmp_path / "config.toml"
    path.write_text("")
    return path


def make_config(config_file: Path, state_dir: Path, **flags: Any):
    flags.setdefault("secret_backend", "file")
    flags.setdefault("gateway_url", f"ws://127.0.0.1:{closed_port()}")
    return load_config(config_file=config_file, env={}, flags={"state_dir": state_dir, **flags})


async def run(config_file: Path, state_dir: Path, **flags: Any) -> dict[str, Check]:
    options = DoctorOptions(gateway_timeout=3, challenge_window=0.5, probe_audio=False, unit_files=[])
    with trio.fail_after(TIMEOUT):
        checks = await doctor.run_checks(lambda: make_config(config_file, state_dir, **flags), options)
    assert [c.name for c in checks] == NAMES
    return {c.name: c for c in checks}


def assert_reported(check: Check, status: Status, *words: str) -> None:
    text = f"{check.detail} {check.fix}"
    assert check.status is status, check
    for word in words:
        assert word in text, check
    if status in (Status.WARN, Status.FAIL):
        assert check.fix, f"{check.name}: a problem without a fix line"
        assert "\n" not in check.fix


async def make_identity(state_dir: Path) -> DeviceIdentity:
    store = FileStore(state_dir / "secrets.json")
    identity, _ = await load_or_create(state_dir, store, platform="linux", device_family="Linux")
    return identity


# --- config -----------------------------------------------------------------------------------


async def test_bad_toml_is_a_failed_check_and_the_rest_skip_or_carry_on(tmp_path, state_dir):
    bad = tmp_path / "bad.toml"
    bad.write_text("[gateway\nurl = 'ws://127.0.0.1:1'\n")

    def load():
        return load_config(config_file=bad, env={}, flags={"state_dir": state_dir})

    with trio.fail_after(TIMEOUT):
        checks = await doctor.run_checks(load, DoctorOptions(probe_audio=False, unit_files=[]))
    by_name = {c.name: c for c in checks}
    assert [c.name for c in checks] == NAMES_NO_CONFIG
    assert_reported(by_name["config"], Status.FAIL, "not valid TOML", str(bad))
    for name in ("state dir", "secret store", "identity", "gateway", "tls", "pairing"):
        assert by_name[name].status is Status.SKIP
        assert "configuration" in by_name[name].detail
    # Checks that need no configuration still run.
    assert by_name["speech"].status in (Status.OK, Status.WARN)
    assert doctor.exit_code(checks) == 1


async def test_unknown_key_and_missing_token_file_are_failed_checks(tmp_path, state_dir):
    typo = tmp_path / "typo.toml"
    typo.write_text("[gateway]\nadress = 'ws://127.0.0.1:1'\n")
    config_check, config = check_config(lambda: load_config(config_file=typo, env={}))
    assert config is None
    assert_reported(config_check, Status.FAIL, "unknown key gateway.adress")

    config_check, config = check_config(
        lambda: load_config(config_file=None, env={"NODE_AGENT_CONFIG": str(typo.with_name("none.toml"))}))
    assert_reported(config_check, Status.FAIL, "does not exist")


# --- state dir --------------------------------------------------------------------------------


@posix_only
def test_state_dir_writable_by_others_fails(state_dir):
    state_dir.chmod(0o777)
    assert_reported(check_state_dir(state_dir), Status.FAIL, "0777", f"chmod 700 {state_dir}")
    state_dir.chmod(0o770)
    assert_reported(check_state_dir(state_dir), Status.FAIL, "0770")
    state_dir.chmod(0o700)
    assert check_state_dir(state_dir).status is Status.OK


@posix_only
def test_unwritable_state_dir_fails(state_dir, monkeypatch):
    state_dir.chmod(0o500)
    if os.geteuid() == 0:
        # root writes through mode bits; stand in for the kernel's answer to anyone else.
        def refuse(directory: Path) -> None:
            raise PermissionError(13, "Permission denied")

        monkeypatch.setattr(state_dir_check, "write_probe", refuse)
    try:
        assert_reported(check_state_dir(state_dir), Status.FAIL, "not writable", "Permission denied", "chown")
    finally:
        state_dir.chmod(0o700)


def test_state_dir_that_is_a_file_or_missing(tmp_path):
    file = tmp_path / "state"
    file.write_text("")
    assert_reported(check_state_dir(file), Status.FAIL, "not a directory")
    assert_reported(check_state_dir(tmp_path / "nope"), Status.WARN, "does not exist yet", "node-agent pair")


# --- secret store and identity ----------------------------------------------------------------


async def test_healthy_identity_in_the_file_store(config_file, state_dir):
    identity = await make_identity(state_dir)
    checks = await run(config_file, state_dir)
    assert_reported(checks["secret store"], Status.OK, "file store", "secrets.json")
    assert_reported(checks["identity"], Status.OK, identity.fingerprint, "file store")


async def test_identity_json_without_its_key_fails_closed(config_file, state_dir):
    await make_identity(state_dir)
    (state_dir / "secrets.json").write_text("{}\n")
    checks = await run(config_file, state_dir)
    assert_reported(checks["identity"], Status.FAIL, "identity.json names device", "not in the file store",
                    "reset-identity")


async def test_key_that_does_not_match_identity_json_fails(config_file, state_dir):
    await make_identity(state_dir)
    other = DeviceIdentity.generate()
    await FileStore(state_dir / "secrets.json").set(DEVICE_KEY, other.private_secret())
    checks = await run(config_file, state_dir)
    assert_reported(checks["identity"], Status.FAIL, "does not match identity.json", other.device_id[:12])


async def test_corrupt_identity_json_and_key(config_file, state_dir):
    await make_identity(state_dir)
    (state_dir / "identity.json").write_text("{not json")
    checks = await run(config_file, state_dir)
    assert_reported(checks["identity"], Status.FAIL, "not valid JSON")

    (state_dir / "identity.json").unlink()
    await FileStore(state_dir / "secrets.json").set(DEVICE_KEY, Secret("not-a-key"))
    checks = await run(config_file, state_dir)
    assert_reported(checks["identity"], Status.FAIL, "not a valid Ed25519 key")


async def test_no_identity_yet_is_a_warning(config_file, state_dir):
    checks = await run(config_file, state_dir)
    assert_reported(checks["identity"], Status.WARN, "no identity yet", "node-agent pair")


async def test_secret_store_shows_what_the_marker_selects(config_file, state_dir, monkeypatch):
    from keyring.backends import fail as fail_keyring

    monkeypatch.setattr("keyring.get_keyring", lambda: fail_keyring.Keyring())
    (state_dir / "secret-backend").write_text("file\n")
    checks = await run(config_file, state_dir, secret_backend="auto")
    assert_reported(checks["secret store"], Status.OK, "file store", "per", "secret-backend")

    (state_dir / "secret-backend").write_text("keyring\n")
    checks = await run(config_file, state_dir, secret_backend="auto")
    assert_reported(checks["secret store"], Status.FAIL, "OS keyring", "unavailable", "unlock")
    assert checks["identity"].status is Status.SKIP

    (state_dir / "secret-backend").write_text("vault\n")
    checks = await run(config_file, state_dir, secret_backend="auto")
    assert_reported(checks["secret store"], Status.FAIL, "expected 'keyring' or 'file'")

    # No marker, no keyring: the file store, and doctor does not write the marker itself.
    (state_dir / "secret-backend").unlink()
    checks = await run(config_file, state_dir, secret_backend="auto")
    assert_reported(checks["secret store"], Status.OK, "file store", "first start will choose it",
                    "no usable OS keyring")
    assert not (state_dir / "secret-backend").exists()


async def test_keyring_that_hangs_is_reported_at_the_timeout(config_file, state_dir, monkeypatch):
    import time as real_time

    class Hanging:
        def get_password(self, service: str, key: str) -> None:
            real_time.sleep(5)

    monkeypatch.setattr("keyring.get_keyring", lambda: Hanging())
    (state_dir / "secret-backend").write_text("keyring\n")
    config = load_config(config_file=config_file, env={},
                         flags={"state_dir": state_dir, "secret_backend": "auto"})
    config = __import__("dataclasses").replace(config, secret_timeout=0.2)
    with trio.fail_after(2):
        check, store = await check_secret_store(config)
    assert store is None
    assert_reported(check, Status.FAIL, "did not answer within 0.2 s")


@posix_only
async def test_secrets_file_readable_by_others_is_a_warning(config_file, state_dir):
    await make_identity(state_dir)
    (state_dir / "secrets.json").chmod(0o644)
    checks = await run(config_file, state_dir)
    assert_reported(checks["secret store"], Status.WARN, "0644", "readable by others")


async def test_corrupt_secrets_file_fails(config_file, state_dir):
    (state_dir / "secrets.json").write_text("{torn")
    checks = await run(config_file, state_dir)
    assert_reported(checks["secret store"], Status.FAIL, "not valid JSON")
    assert checks["identity"].status is Status.SKIP and checks["pairing"].status is Status.SKIP


# --- gateway and TLS --------------------------------------------------------------------------


async def test_gateway_on_a_closed_port_is_unreachable(config_file, state_dir):
    port = closed_port()
    checks = await run(config_file, state_dir, gateway_url=f"ws://127.0.0.1:{port}")
    assert_reported(checks["gateway"], Status.FAIL, f"127.0.0.1:{port}", "Connection refused", "gateway running")
    assert checks["tls"].status is Status.SKIP


async def test_silent_websocket_server_is_not_an_openclaw_gateway(config_file, state_dir):
    async with trio.open_nursery() as nursery:
        port = await serve_ws(nursery)
        url = f"ws://127.0.0.1:{port}"
        checks = await run(config_file, state_dir, gateway_url=url)
        assert_reported(checks["gateway"], Status.WARN, "no connect.challenge", "not an OpenClaw gateway",
                        "documented dialect", 'gateway.protocol = "jsonrpc"')
        # Configured for the documented dialect, silence is what it should see.
        checks = await run(config_file, state_dir, gateway_url=url, protocol="jsonrpc")
        assert_reported(checks["gateway"], Status.OK, "documented dialect")
        nursery.cancel_scope.cancel()


async def test_documented_gateway_double_reads_as_the_documented_dialect(config_file, state_dir):
    from tests.support.documented_gateway import open_documented_gateway

    async with open_documented_gateway() as gw:
        checks = await run(config_file, state_dir, gateway_url=gw.url, protocol="auto")
    assert_reported(checks["gateway"], Status.OK, "no connect.challenge", "documented dialect")


async def test_gateway_that_sends_a_challenge_is_openclaw(config_file, state_dir):
    async with trio.open_nursery() as nursery:
        port = await serve_ws(nursery, first=CHALLENGE)
        checks = await run(config_file, state_dir, gateway_url=f"ws://127.0.0.1:{port}")
        assert_reported(checks["gateway"], Status.OK, "OpenClaw gateway", "connect.challenge")
        checks = await run(config_file, state_dir, gateway_url=f"ws://127.0.0.1:{port}", protocol="jsonrpc")
        assert_reported(checks["gateway"], Status.WARN, "OpenClaw", '"jsonrpc"')
        nursery.cancel_scope.cancel()


async def test_http_server_that_refuses_the_upgrade(config_file, state_dir):
    async with trio.open_nursery() as nursery:
        port = await serve_http_refusal(nursery)
        checks = await run(config_file, state_dir, gateway_url=f"ws://127.0.0.1:{port}")
        assert_reported(checks["gateway"], Status.FAIL, "refused the WebSocket upgrade", "404")
        nursery.cancel_scope.cancel()


async def test_tls_pin_mismatch_fails_and_stops_before_the_websocket(config_file, state_dir):
    wrong_pin = hashlib.sha256(b"some other certificate").hexdigest()
    async with trio.open_nursery() as nursery:
        port = await serve_ws(nursery, first=CHALLENGE, tls=True)
        checks = await run(config_file, state_dir, gateway_url=f"wss://127.0.0.1:{port}",
                           tls_fingerprint=wrong_pin)
        nursery.cancel_scope.cancel()
    assert_reported(checks["tls"], Status.FAIL, "does not match the pin", "tls_fingerprint")
    assert checks["gateway"].status is Status.SKIP and "TLS failed" in checks["gateway"].detail


async def test_tls_pin_match_and_ca_verification(config_file, state_dir, tmp_path):
    ca, _ = tls_pair()
    digest = leaf_sha256()
    pin = ":".join(digest[i:i + 2].upper() for i in range(0, 64, 2))
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    async with trio.open_nursery() as nursery:
        port = await serve_ws(nursery, first=CHALLENGE, tls=True)
        url = f"wss://127.0.0.1:{port}"
        pinned = await run(config_file, state_dir, gateway_url=url, tls_fingerprint=pin)
        with_ca = await run(config_file, state_dir, gateway_url=url, tls_ca_file=str(ca_file))
        unknown_ca = await run(config_file, state_dir, gateway_url=url)
        nursery.cancel_scope.cancel()
    assert_reported(pinned["tls"], Status.OK, "matches the pinned SHA-256")
    assert_reported(pinned["gateway"], Status.OK, "OpenClaw gateway")
    assert_reported(with_ca["tls"], Status.OK, "certificate verified for 127.0.0.1")
    assert_reported(with_ca["gateway"], Status.OK, "OpenClaw gateway")
    assert_reported(unknown_ca["tls"], Status.FAIL, "does not verify", "--tls-ca")


# --- pairing ----------------------------------------------------------------------------------


async def test_no_device_token_is_not_paired(config_file, state_dir):
    await make_identity(state_dir)
    checks = await run(config_file, state_dir)
    assert_reported(checks["pairing"], Status.WARN, "not paired", "no device token", "node-agent pair",
                    "OPENCLAW_GATEWAY_TOKEN")


async def test_device_token_and_last_status(config_file, state_dir):
    await make_identity(state_dir)
    url = "ws://127.0.0.1:18789"
    token = "tok-" + "x" * 40
    await FileStore(state_dir / "secrets.json").set(device_token_key(url), Secret(token))
    checks = await run(config_file, state_dir, gateway_url=url)
    assert_reported(checks["pairing"], Status.OK, f"device token stored for {url}")

    status = {"pid": None, "state": "pairing", "gateway": url, "pairing": {"requestId": "req-42"}}
    (state_dir / "status.json").write_text(json.dumps(status))
    checks = await run(config_file, state_dir, gateway_url=url)
    assert_reported(checks["pairing"], Status.WARN, "waiting for approval", "openclaw devices approve req-42")

    status = {"pid": None, "state": "error", "gateway": url, "lastError": "gateway refused the shared token",
              "hint": "check OPENCLAW_GATEWAY_TOKEN"}
    (state_dir / "status.json").write_text(json.dumps(status))
    checks = await run(config_file, state_dir, gateway_url=url)
    assert_reported(checks["pairing"], Status.FAIL, "refused the shared token", "check OPENCLAW_GATEWAY_TOKEN")

    status = {"pid": None, "state": "connected", "gateway": url, "surface": "pending"}
    (state_dir / "status.json").write_text(json.dumps(status))
    checks = await run(config_file, state_dir, gateway_url=url)
    assert_reported(checks["pairing"], Status.WARN, "awaiting approval", "openclaw nodes approve")
    # The token itself never appears anywhere in the report.
    assert token not in json.dumps(doctor.report_json(list(checks.values())))


async def test_pairing_names_the_allowlist_key_of_the_gateway_release_it_last_met(config_file, state_dir):
    await make_identity(state_dir)
    url = "ws://127.0.0.1:18789"
    await FileStore(state_dir / "secrets.json").set(device_token_key(url), Secret("tok-" + "y" * 40))
    for version, key in (("2026.7.35", "gateway.nodes.allowCommands"), ("2026.9.6", "gateway.nodes.commands.allow")):
        status = {"pid": None, "state": "connected", "gateway": url, "dialect": "openclaw",
                  "serverVersion": version, "surface": "unconfirmed" if version == "2026.7.35" else "approved"}
        (state_dir / "status.json").write_text(json.dumps(status))
        checks = await run(config_file, state_dir, gateway_url=url)
        assert_reported(checks["pairing"], Status.OK, f"openclaw {version}", key)
        assert ("does not tell the node" in checks["pairing"].detail) is (version == "2026.7.35")


# --- audio, wake word, speech -----------------------------------------------------------------


async def test_audio_skips_with_the_reason_when_sounddevice_is_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "sounddevice", None)  # `import sounddevice` raises ImportError
    check = await check_audio(VoiceSettings())
    assert_reported(check, Status.SKIP, "sounddevice is not installed", "pip install")
    # Voice asked for in the config: the same gap is a failure.
    check = await check_audio(VoiceSettings(enabled=True))
    assert_reported(check, Status.FAIL, "sounddevice is not installed")


async def test_audio_and_wake_skip_without_the_voice_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "node_agent.voice", None)
    assert_reported(await check_audio(VoiceSettings()), Status.SKIP, "voice support is not part of this install")
    assert_reported(check_wake_models(VoiceSettings(), None), Status.SKIP, "voice support is not part of this install")


def fake_sounddevice(busy: set[int]) -> types.ModuleType:
    sd = types.ModuleType("sounddevice")

    class PortAudioError(Exception):
        pass

    class InputStream:
        def __init__(self, *, device: int, **kw: Any):
            if device in busy:
                raise PortAudioError("Error opening InputStream: Device unavailable [PaErrorCode -9985]")
            self.device = device

        def start(self) -> None: ...

        def stop(self) -> None: ...

        def close(self) -> None: ...

    devices = [{"name": "USB mic", "hostapi": 0, "max_input_channels": 1, "default_samplerate": 48000.0},
               {"name": "HDMI out", "hostapi": 0, "max_input_channels": 0, "default_samplerate": 48000.0},
               {"name": "pulse", "hostapi": 0, "max_input_channels": 32, "default_samplerate": 44100.0}]
    sd.PortAudioError = PortAudioError
    sd.InputStream = InputStream
    sd.query_devices = lambda: devices
    sd.query_hostapis = lambda: [{"name": "ALSA"}]
    sd.default = types.SimpleNamespace(device=(2, 1))
    return sd


async def test_busy_input_device_is_flagged(monkeypatch):
    monkeypatch.setitem(sys.modules, "sounddevice", fake_sounddevice(busy={0}))
    check = await check_audio(VoiceSettings())
    assert_reported(check, Status.WARN, "2 input device(s)", "busy: #0 USB mic", "another program")
    assert "HDMI" not in check.detail

    monkeypatch.setitem(sys.modules, "sounddevice", fake_sounddevice(busy=set()))
    check = await check_audio(VoiceSettings())
    assert_reported(check, Status.OK, "all free", "#2 pulse (default)")
    assert_reported(await check_audio(VoiceSettings(device="usb")), Status.OK, "all free")
    assert_reported(await check_audio(VoiceSettings(device="1")), Status.WARN, "matches no input device")
    assert_reported(await check_audio(VoiceSettings(enabled=True, device="webcam")), Status.FAIL,
                    "'webcam' matches no input device", "voice.device")


async def test_voice_from_a_wav_file_needs_no_microphone(tmp_path):
    assert_reported(await check_audio(VoiceSettings(wav=str(tmp_path / "missing.wav"))), Status.WARN, "does not exist")
    (tmp_path / "in.wav").write_bytes(b"RIFF")
    assert_reported(await check_audio(VoiceSettings(wav=str(tmp_path / "in.wav"))), Status.OK, "instead of a microphone")


def test_wake_models_custom_folder_and_triggers(tmp_path):
    pytest.importorskip("pyopen_wakeword")
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "hey_computer.tflite").write_bytes(b"\0\0\0\0TFL3" + b"\0" * 8)
    (folder / "broken.tflite").write_bytes(b"not a model")
    status = AgentStatus(voice_wake_triggers=("openclaw", "claude"))
    check = check_wake_models(VoiceSettings(custom_model_dir=str(folder)), status)
    assert_reported(check, Status.WARN, "5 bundled models load", "1 model(s) (hey_computer)", "broken.tflite",
                    "without a model: openclaw, claude")

    check = check_wake_models(VoiceSettings(), AgentStatus(voice_wake_triggers=("hey jarvis", "openclaw")))
    assert_reported(check, Status.OK, "triggers with a model: hey jarvis", "without a model: openclaw")
    # This node's own triggers count too.
    check = check_wake_models(VoiceSettings(local_triggers=("okay nabu",)), AgentStatus(voice_wake_triggers=("openclaw",)))
    assert_reported(check, Status.OK, "triggers with a model: okay nabu")

    check = check_wake_models(VoiceSettings(custom_model_dir=str(tmp_path / "nope")), None)
    assert_reported(check, Status.WARN, "does not exist")


async def test_missing_espeak_ng_is_reported(monkeypatch):
    real_which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name, *a, **kw: None if name == "espeak-ng" else real_which(name))
    assert_reported(await check_speech("linux"), Status.WARN, "espeak-ng not found", "apt-get install espeak-ng")
    assert_reported(await check_speech("pi"), Status.WARN, "espeak-ng not found")
    assert_reported(await check_speech("linux", required=True), Status.FAIL, "espeak-ng not found")

    monkeypatch.setattr(shutil, "which", lambda name, *a, **kw: f"/usr/bin/{name}")
    assert_reported(await check_speech("linux", probe=False), Status.OK, "/usr/bin/espeak-ng", "not probed")
    assert_reported(await check_speech("macos"), Status.OK, "/usr/bin/say")
    assert_reported(await check_speech("windows"), Status.OK, "powershell.exe")


needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")


def stage_alsa(monkeypatch, tmp_path: Path, asoundrc: str) -> None:
    """ALSA as the test sets it up: ``~/.asoundrc`` in a home of our own, and no PulseAudio
    (espeak-ng then plays through ALSA, whatever the machine has)."""
    home = tmp_path / "home"
    home.mkdir()
    (home / ".asoundrc").write_text(asoundrc)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("PULSE_SERVER", f"unix:{tmp_path}/no-pulse")


@needs_espeak
async def test_speech_that_cannot_reach_a_sound_card_says_why_and_how_to_fix_it(monkeypatch, tmp_path):
    # The box: espeak-ng installed, no sound card; ALSA says "cannot find card".
    stage_alsa(monkeypatch, tmp_path, "defaults.pcm.card 5\ndefaults.ctl.card 5\n")
    with trio.fail_after(TIMEOUT):
        check = await check_speech("linux")
    assert_reported(check, Status.WARN, "espeak-ng at", "no sound card (ALSA: cannot find card '5')",
                    "connect a speaker", "aplay -l")


@needs_espeak
async def test_speech_that_reaches_an_output_device_is_ok(monkeypatch, tmp_path):
    # The positive control: ALSA's null device plays (silently) wherever ALSA is installed.
    stage_alsa(monkeypatch, tmp_path, "pcm.!default { type null }\n")
    with trio.fail_after(TIMEOUT):
        check = await check_speech("linux")
    assert_reported(check, Status.OK, "reaches the default sound output")


# --- service ----------------------------------------------------------------------------------


def real_exe() -> str:
    repo = Path(__file__).resolve().parents[2]
    exe = repo / ".venv" / "bin" / "node-agent"
    return str(exe) if exe.exists() else sys.executable


@needs_systemd_analyze
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="systemd")
async def test_installed_unit_is_verified_and_a_broken_one_fails(tmp_path, monkeypatch):
    # Where `service install` writes, relocated the way the installer's own tests do it.
    monkeypatch.setenv("NODE_AGENT_ROOT", str(tmp_path / "root"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert_reported(await check_service(), Status.SKIP, "no systemd unit installed", "service install")

    unit = tmp_path / "root" / "etc" / "systemd" / "system" / "node-agent.service"
    unit.parent.mkdir(parents=True)
    unit.write_text(render_unit(ServiceSpec(argv=(real_exe(), "run"))))
    with trio.fail_after(60):
        assert_reported(await check_service(), Status.OK, str(unit), "verify passes")

    broken = render_unit(ServiceSpec(argv=(real_exe(), "run"))).replace(
        f"ExecStart={real_exe()}", "ExecStart=relative/node-agent")
    unit.write_text(broken)
    with trio.fail_after(60):
        check = await check_service()
    assert_reported(check, Status.FAIL, str(unit), "relative/node-agent", "node-agent service install")

    user_unit = tmp_path / "xdg" / "systemd" / "user" / "node-agent.service"
    user_unit.parent.mkdir(parents=True)
    user_unit.write_text("[Service]\nType=bogus\nExecStart=/nonexistent/node-agent run\n")
    unit.unlink()
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)  # doctor supplies one for --user
    with trio.fail_after(60):
        check = await check_service()
    assert_reported(check, Status.FAIL, str(user_unit), "--user")


# --- output and the CLI -----------------------------------------------------------------------


def test_text_report_is_a_table_with_fix_lines():
    checks = [Check("config", Status.OK, "fine"), Check("gateway", Status.FAIL, "refused", "start it"),
              Check("pairing", Status.WARN, "not paired", "pair it"), Check("audio", Status.SKIP, "no sounddevice")]
    text = render_doctor(checks)
    lines = text.splitlines()
    assert lines[0].startswith(" ✓ config ")
    assert lines[1].startswith(" ✗ gateway ") and lines[2].strip() == "fix: start it"
    assert lines[3].startswith(" ! pairing ") and lines[4].strip() == "fix: pair it"
    assert lines[5].startswith(" - audio ")
    assert lines[-1] == "1 ok, 1 warning(s), 1 failed, 1 skipped"
    ascii_text = render_doctor(checks, encoding="cp1252")
    assert "✓" not in ascii_text and ascii_text.splitlines()[1].startswith(" x gateway")


def run_cli(capsys, *argv: str) -> tuple[int, str]:
    code = cli_main(["doctor", *argv])
    return code, capsys.readouterr().out


def test_cli_bad_toml_exits_1_with_json_and_does_not_crash(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("[gateway\n")
    code, out = run_cli(capsys, "--config", str(bad), "--state-dir", str(tmp_path / "s"), "--json",
                        "--no-audio-probe", "--unit-file", str(tmp_path / "none.service"))
    assert code == 1
    data = json.loads(out)
    assert set(data) == {"ok", "counts", "checks"}
    assert data["ok"] is False
    assert set(data["counts"]) == {"ok", "warn", "fail", "skip"}
    assert [c["name"] for c in data["checks"]] == NAMES_NO_CONFIG
    for c in data["checks"]:
        assert set(c) == {"name", "status", "detail", "fix"}
        assert c["status"] in ("ok", "warn", "fail", "skip")
    assert data["checks"][0]["status"] == "fail" and "not valid TOML" in data["checks"][0]["detail"]
    assert data["counts"]["fail"] == sum(1 for c in data["checks"] if c["status"] == "fail")


class ThreadGateway:
    """A challenge-sending WebSocket server in its own thread and Trio run, for CLI tests (the CLI
    calls ``trio.run`` itself, so the server cannot live in the test's run)."""

    def __init__(self) -> None:
        self.port: int | None = None
        self._ready = threading.Event()
        self._token: trio.lowlevel.TrioToken | None = None
        self._cancel: trio.CancelScope | None = None
        self._thread = threading.Thread(target=trio.run, args=(self._main,), daemon=True)

    async def _main(self) -> None:
        with trio.CancelScope() as self._cancel:
            self._token = trio.lowlevel.current_trio_token()
            async with trio.open_nursery() as nursery:
                self.port = await serve_ws(nursery, first=CHALLENGE)
                self._ready.set()
                await trio.sleep_forever()

    def __enter__(self) -> "ThreadGateway":
        self._thread.start()
        assert self._ready.wait(TIMEOUT)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._token is not None and self._cancel is not None
        self._token.run_sync_soon(self._cancel.cancel)
        self._thread.join(TIMEOUT)


def test_cli_exit_codes_and_human_output(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("NODE_AGENT_SECRET_BACKEND", "file")
    config = tmp_path / "config.toml"
    config.write_text("")
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    common = ["--config", str(config), "--state-dir", str(state), "--no-audio-probe",
              "--unit-file", str(tmp_path / "none.service")]
    with ThreadGateway() as gw:
        code, out = run_cli(capsys, *common, "--gateway", f"ws://127.0.0.1:{gw.port}")
    assert code == 0, out
    assert " ✓ gateway " in out and "OpenClaw gateway" in out
    assert " ! pairing " in out and "fix: run `node-agent pair`" in out
    assert out.rstrip().splitlines()[-1].endswith("skipped")

    code, out = run_cli(capsys, *common, "--gateway", f"ws://127.0.0.1:{closed_port()}", "--json")
    assert code == 1
    gateway = next(c for c in json.loads(out)["checks"] if c["name"] == "gateway")
    assert gateway["status"] == "fail" and "Connection refused" in gateway["detail"]


def test_doctor_is_a_cli_subcommand():
    from node_agent.cli import build_parser

    args = build_parser().parse_args(["doctor", "--json", "--timeout", "2", "--gateway", "ws://127.0.0.1:1"])
    assert args.command == "doctor" and args.json and args.timeout == 2.0


# --- the runner and the package's shape ----------------------------------------------------------


async def test_a_new_check_is_one_step_and_a_broken_check_does_not_hide_the_others(tmp_path, state_dir, caplog):
    from node_agent.doctor import CHECKS, Needs, Step

    async def extra(ctx) -> Check:
        return doctor.ok("extra", f"saw {ctx.cfg.state_dir.name}")

    async def broken(ctx) -> Check:
        raise RuntimeError("boom")

    config_file = tmp_path / "config.toml"
    config_file.write_text("")
    steps = (CHECKS[0], Step("extra", extra, Needs.CONFIG), Step("broken", broken), CHECKS[-1])
    checks = await doctor.run_checks(lambda: make_config(config_file, state_dir),
                                     DoctorOptions(unit_files=[]), steps=steps)
    assert [(c.name, c.status) for c in checks] == [("config", Status.OK), ("extra", Status.OK),
                                                    ("broken", Status.FAIL), ("service", Status.SKIP)]
    assert checks[1].detail == "saw state"
    assert_reported(checks[2], Status.FAIL, "the check itself failed (RuntimeError: boom)", "doctor --json")


async def test_a_step_whose_need_is_unmet_is_a_skip_that_says_which(tmp_path):
    from node_agent.doctor import CHECKS, Needs, Step

    async def never(ctx) -> Check:
        raise AssertionError("a step ran without what it needs")

    bad = tmp_path / "bad.toml"
    bad.write_text("[gateway\n")
    steps = (CHECKS[0], Step("needs config", never, Needs.CONFIG), Step("needs store", never, Needs.STORE))
    checks = await doctor.run_checks(lambda: load_config(config_file=bad, env={}), steps=steps)
    assert [c.detail for c in checks[1:]] == ["needs a configuration that loads"] * 2


def test_only_the_transport_touches_trio_websocket():
    import ast

    import node_agent

    users = []
    for path in sorted(Path(node_agent.__file__).parent.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(name.split(".")[0] in ("trio_websocket", "wsproto") for name in names):
                users.append(path.name)
    assert users and set(users) == {"transport.py"}
