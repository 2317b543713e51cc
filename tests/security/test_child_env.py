"""No child process of the agent holds a secret: proved by fake helpers on ``PATH`` that record
the environment they were started with (``/proc/self/environ``, what the issue read).

End to end: a real ``python -m node_agent run`` with the gateway token, the password, a token
copied under an innocent allowlisted name (``LC_PAPER``) and an unrelated API key in its own
environment; the documented-dialect double invokes ``system.notify`` and a fake ``notify-send``
writes down its environment. In process, through the same fake: the adapter's speech engine, the
voice room's reply speaker and ffmpeg, the speech-to-text command; and the pocketsphinx worker's
environment.
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
from pathlib import Path

import pytest
import trio

from node_agent.adapters.linux import EspeakSpeech, LinuxNotifier
from node_agent.logs import register_secret
from node_agent.voice.errors import TTSError
from node_agent.voice.stt import CommandSTT, transcribe
from node_agent.voice.tts import EspeakTTS, convert_to_wav
from tests.support.agent_process import KNOWN_TOKENS, AgentProcess, wait_status_file
from tests.support.agents import SHARED
from tests.support.documented_gateway import open_documented_gateway

PASSWORD = "documented-password-5678-abcdef"
API_KEY = "sk-unrelated-api-key-0000111122223333"

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/environ")


def fake_helper(bin_dir: Path, name: str, record_dir: Path, *, stdout: str = "") -> None:
    """``name`` on PATH: saves the environment it was given (it cannot be told where through the
    environment, which is the point) and prints ``stdout``."""
    bin_dir.mkdir(exist_ok=True)
    script = bin_dir / name
    script.write_text(f"#!/bin/sh\ncat /proc/$$/environ > '{record_dir}/{name}.$$.environ'\ncat > /dev/null\n"
                      f"printf '%s' '{stdout}'\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)


def recorded(record_dir: Path, name: str) -> dict[str, str]:
    [path] = record_dir.glob(f"{name}.*.environ")
    pairs = [entry.split("=", 1) for entry in path.read_bytes().decode().split("\0") if entry]
    return {k: v for k, v in pairs}


def assert_holds_no_secret(env: dict[str, str], *secrets: str) -> None:
    assert env.get("PATH"), env  # it did get what a helper needs
    for name, value in env.items():
        assert "TOKEN" not in name and "PASSWORD" not in name and "API_KEY" not in name, name
        for secret in secrets:
            assert secret not in value, name


async def test_a_helper_started_by_a_running_agent_holds_no_secret(tmp_path):
    records = tmp_path / "records"
    records.mkdir()
    fake_helper(tmp_path / "bin", "notify-send", records)
    KNOWN_TOKENS.extend([PASSWORD, API_KEY])  # the session's secret watch looks for them in every log
    async with open_documented_gateway(shared_token=SHARED, password=PASSWORD, auto_approve=True) as gw:
        agent = AgentProcess("run", state_dir=tmp_path / "state", gateway_url=gw.url, token=SHARED,
                             extra=["--protocol", "jsonrpc", "--adapter", "linux"],
                             env={"OPENCLAW_GATEWAY_PASSWORD": PASSWORD, "LC_PAPER": SHARED, "MY_API_KEY": API_KEY,
                                  "PATH": f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}"})
        try:
            await wait_status_file(tmp_path / "state", lambda s: s.state.value == "connected")
            with trio.fail_after(20):
                result = await gw.invoke("system.notify", {"title": "hello", "body": "from the test"})
            assert result.get("ok") is True, result
            code, _ = await agent.terminate()
            assert code == 0
        finally:
            agent.kill()
    env = recorded(records, "notify-send")
    assert_holds_no_secret(env, SHARED, PASSWORD, API_KEY)
    # Positive control: the agent's own environment did hold them all.
    assert "LC_PAPER" not in env and "OPENCLAW_GATEWAY_TOKEN" not in env


@pytest.fixture
def secret_environment(monkeypatch, tmp_path):
    """The agent's environment as a service has it: the token (from a systemd env file), the
    password, a copy of the token under an allowlisted name, and another tool's API key."""
    monkeypatch.setenv("OPENCLAW_GATEWAY_TOKEN", SHARED)
    monkeypatch.setenv("OPENCLAW_GATEWAY_PASSWORD", PASSWORD)
    monkeypatch.setenv("LC_PAPER", SHARED)
    monkeypatch.setenv("MY_API_KEY", API_KEY)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    register_secret(SHARED)  # as serve() does
    register_secret(PASSWORD)
    records = tmp_path / "records"
    records.mkdir()
    return records


@pytest.mark.parametrize("helper", ["notify-send", "espeak-ng", "voice espeak-ng", "ffmpeg", "stt"])
async def test_every_kind_of_helper_gets_an_environment_without_secrets(tmp_path, secret_environment, helper):
    records = secret_environment
    program = helper.split()[-1]
    fake_helper(tmp_path / "bin", program, records, stdout="hello there")
    if helper == "notify-send":
        assert await LinuxNotifier().notify("title", "body") == "notify-send"
    elif helper == "espeak-ng":
        await EspeakSpeech().say("the pairing code is 1 2 3")
    elif helper == "voice espeak-ng":  # the voice room's reply speaker
        with contextlib.suppress(TTSError):  # the fake's "audio" is not a WAV; its environment is the point
            await EspeakTTS().synthesize("it is three o'clock")
    elif helper == "ffmpeg":  # converts a Talk provider's MP3 for playback
        with contextlib.suppress(TTSError):
            await convert_to_wav(b"ID3 not really mp3", "talk.speak", "audio/mpeg")
    else:
        stt = CommandSTT(["stt", "--lang", "en"], env={"STT_MODEL": "small"})
        assert await transcribe(stt, b"\0\0" * 160) == "hello there"
    env = recorded(records, program)
    assert_holds_no_secret(env, SHARED, PASSWORD, API_KEY)
    if helper == "stt":
        assert env["STT_MODEL"] == "small"  # what the user configured for the tool does arrive


def test_the_pocketsphinx_worker_starts_without_secrets(secret_environment):
    from node_agent.voice.stt_pocketsphinx import worker_env

    assert_holds_no_secret(worker_env(), SHARED, PASSWORD, API_KEY)
