"""Platform adapters. macOS and Windows cannot run here, so their tests record the exact argv,
extra environment and stdin they would execute through an injected process runner, and check
that no caller text can reach a script. Linux speech runs the real espeak-ng."""

from __future__ import annotations

import base64
import logging
import os
import re
import shutil
import types
import wave
from datetime import timedelta

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from node_agent.adapters import SpeechError, select_adapter
from node_agent.adapters._process import ProcessResult
from node_agent.adapters.indicator import ConsoleIndicator, LedIndicator, SysfsLed, make_indicator
from node_agent.adapters.linux import EspeakSpeech
from node_agent.adapters.macos import MacNotifier, MacSpeech, applescript_string
from node_agent.adapters.pi import GpioButton
from node_agent.adapters.windows import BODY_VAR, SAY_VAR, TITLE_VAR, WindowsNotifier, WindowsSpeech

NASTY = 'He said "hi" \\ & then: " & (do shell script "rm -rf ~") & "\n$(whoami) `id` \'; -e x\x00\x07é'


class Recorder:
    def __init__(self, result=ProcessResult(0), exc: BaseException | None = None):
        self.calls: list[dict] = []
        self.result = result
        self.exc = exc

    async def __call__(self, argv, *, env=None, stdin=b"", timeout_s):
        self.calls.append({"argv": list(argv), "env": env, "stdin": stdin, "timeout_s": timeout_s})
        if self.exc is not None:
            raise self.exc
        return self.result


# --- select_adapter -----------------------------------------------------------------------------


@pytest.mark.parametrize("name, platform, family", [
    ("linux", "linux", "Linux"), ("pi", "linux", "Linux"), ("macos", "darwin", "Mac"), ("windows", "win32", "Windows"),
])
def test_every_adapter_has_the_wire_identity_and_speech(name, platform, family):
    adapter = select_adapter(name)
    assert (adapter.name, adapter.platform, adapter.device_family) == (name, platform, family)
    assert adapter.speech is not None and adapter.indicator is not None


def test_unknown_adapter():
    with pytest.raises(ValueError):
        select_adapter("beos")


# --- macOS --------------------------------------------------------------------------------------


def parse_applescript_string(src: str, pos: int) -> tuple[str, int]:
    """A reader for AppleScript string literals: returns (value, index after the closing quote)."""
    assert src[pos] == '"'
    out, i = [], pos + 1
    while src[i] != '"':
        if src[i] == "\\":
            out.append({"\\": "\\", '"': '"', "n": "\n", "r": "\r", "t": "\t"}[src[i + 1]])
            i += 2
        else:
            out.append(src[i])
            i += 1
    return "".join(out), i + 1


@given(st.text())
def test_applescript_string_round_trips_without_control_chars(text):
    literal = applescript_string(text)
    value, end = parse_applescript_string(literal, 0)
    assert end == len(literal)
    kept = "".join(c for c in text if c in "\n\r\t" or not (ord(c) < 0x20 or c == "\x7f"))
    assert value == kept


async def test_mac_notification_argv_keeps_text_inside_its_literals():
    run = Recorder()
    assert await MacNotifier(runner=run).notify(NASTY, NASTY + "body") == "osascript"
    (call,) = run.calls
    argv = call["argv"]
    assert argv[:2] == ["/usr/bin/osascript", "-e"] and len(argv) == 3
    script = argv[2]
    assert script.startswith("display notification ")
    body, i = parse_applescript_string(script, len("display notification "))
    assert script[i:i + len(" with title ")] == " with title "
    title, j = parse_applescript_string(script, i + len(" with title "))
    assert j == len(script)  # nothing after the title: no injected statement
    assert body == NASTY.replace("\x00", "").replace("\x07", "") + "body"
    assert title == NASTY.replace("\x00", "").replace("\x07", "")
    assert "\n" not in script and "\x00" not in script


async def test_mac_time_sensitive_notification_plays_a_sound():
    run = Recorder()
    await MacNotifier(runner=run).notify("t", "b", priority="timeSensitive")
    assert run.calls[0]["argv"][2].endswith(' sound name "default"')


@pytest.mark.parametrize("runner", [Recorder(ProcessResult(1, b"", b"not allowed")), Recorder(exc=FileNotFoundError()),
                                    Recorder(exc=trio.TooSlowError())])
async def test_mac_notification_falls_back_to_the_log(runner, caplog):
    with caplog.at_level(logging.WARNING):
        assert await MacNotifier(runner=runner).notify("T", "B") == "log"
    assert "notification: T: B" in caplog.text


async def test_mac_say_reads_the_text_from_stdin():
    run = Recorder()
    await MacSpeech(runner=run, voice="Samantha").say("-v Bad --help " + NASTY)
    (call,) = run.calls
    assert call["argv"] == ["/usr/bin/say", "-v", "Samantha", "-f", "-"]
    assert call["stdin"] == ("-v Bad --help " + NASTY).encode("utf-8") and call["env"] is None


async def test_mac_say_failure_raises():
    with pytest.raises(SpeechError, match="exit 1"):
        await MacSpeech(runner=Recorder(ProcessResult(1))).say("hello")


# --- Windows ------------------------------------------------------------------------------------


def decode(argv: list[str]) -> str:
    assert argv[:5] == ["powershell.exe", "-NoProfile", "-NonInteractive", "-NoLogo", "-EncodedCommand"]
    assert len(argv) == 6
    return base64.b64decode(argv[5]).decode("utf-16-le")


async def test_windows_toast_gets_its_text_from_the_environment_only():
    run = Recorder()
    assert await WindowsNotifier(runner=run).notify(NASTY, "body " + NASTY) == "powershell-toast"
    (call,) = run.calls
    script = decode(call["argv"])
    assert f"$env:{TITLE_VAR}" in script and f"$env:{BODY_VAR}" in script
    assert "CreateTextNode" in script and "ToastNotificationManager" in script
    assert "whoami" not in script and "said" not in script  # caller text never enters the script
    assert call["env"] == {TITLE_VAR: NASTY.replace("\x00", ""), BODY_VAR: "body " + NASTY.replace("\x00", "")}
    assert call["stdin"] == b""


async def test_windows_toast_failure_falls_back_to_the_log():
    run = Recorder(ProcessResult(1, b"", b"Cannot find type [Windows.UI.Notifications.ToastNotificationManager]"))
    assert await WindowsNotifier(runner=run).notify("T", "B") == "log"


async def test_windows_speech_uses_sapi_with_text_in_the_environment():
    run = Recorder()
    long_text = "x" * 40000
    await WindowsSpeech(runner=run).say(NASTY)
    await WindowsSpeech(runner=run).say(long_text)
    script = decode(run.calls[0]["argv"])
    assert "System.Speech.Synthesis.SpeechSynthesizer" in script and f"$env:{SAY_VAR}" in script
    assert "whoami" not in script
    assert run.calls[0]["env"] == {SAY_VAR: NASTY.replace("\x00", "")}
    assert len(run.calls[1]["env"][SAY_VAR]) == 32000  # under the 32767-unit environment limit


async def test_windows_speech_errors():
    with pytest.raises(SpeechError):
        await WindowsSpeech(runner=Recorder(exc=FileNotFoundError("powershell.exe"))).say("hi")
    with pytest.raises(SpeechError, match="did not finish"):
        await WindowsSpeech(runner=Recorder(exc=trio.TooSlowError())).say("hi")


async def test_blank_text_is_not_spoken():
    run = Recorder()
    for speech in (WindowsSpeech(runner=run), MacSpeech(runner=run), EspeakSpeech(runner=run)):
        await speech.say("  \n")
    assert run.calls == []


# --- Linux / Pi speech --------------------------------------------------------------------------


async def test_espeak_argv_and_stdin():
    run = Recorder()
    await EspeakSpeech(runner=run, voice="en-us", rate_wpm=140, wav_out="/tmp/x.wav").say("-x " + NASTY)
    (call,) = run.calls
    assert call["argv"] == ["espeak-ng", "--stdin", "-b", "1", "-v", "en-us", "-s", "140", "-w", "/tmp/x.wav"]
    assert call["stdin"] == ("-x " + NASTY).encode("utf-8")


async def test_espeak_missing_says_how_to_install():
    with pytest.raises(SpeechError) as info:
        await EspeakSpeech(runner=Recorder(exc=FileNotFoundError())).say("hi")
    assert "apt-get install espeak-ng" in info.value.hint


@pytest.mark.skipif(not shutil.which("espeak-ng"), reason="needs espeak-ng")
async def test_real_espeak_speaks_a_pairing_code_into_a_wav(tmp_path):
    out = tmp_path / "code.wav"
    await EspeakSpeech(wav_out=str(out)).say("Your pairing code is 4 7 1 9. Über-café.")
    with wave.open(str(out)) as w:
        assert w.getnchannels() == 1 and w.getnframes() / w.getframerate() > 2.0


@pytest.mark.skipif(not shutil.which("espeak-ng"), reason="needs espeak-ng")
async def test_real_espeak_with_a_missing_output_device_fails_typed_and_says_which():
    # espeak-ng exits 0 here; only ALSA's lines and its "error:" line on stderr tell.
    with pytest.raises(SpeechError) as info:
        await EspeakSpeech(device="no_such_pcm_device").say("hello")
    assert info.value.message == "espeak-ng cannot play: ALSA has no output device 'no_such_pcm_device'"
    assert "aplay -L" in info.value.hint


# What espeak-ng's stderr holds when it cannot play, as ALSA and PulseAudio word it (recorded on
# Debian 12: libasound2 1.2.8, libpulse0 16.1).
_NO_CARD = (b"ALSA lib confmisc.c:855:(parse_card) cannot find card '0'\n"
            b"ALSA lib conf.c:5180:(_snd_config_evaluate) function snd_func_card_inum returned error: "
            b"No such file or directory\n"
            b"ALSA lib pcm.c:2666:(snd_pcm_open_noupdate) Unknown PCM default\nerror: No such file or directory\n")


@pytest.mark.parametrize("stderr, message, hint", [
    (_NO_CARD, "espeak-ng cannot play: no sound card (ALSA: cannot find card '0')", "connect a speaker"),
    (b"ALSA lib confmisc.c:165:(snd_config_get_card) Cannot get card index for Speaker\nerror: No such device\n",
     "espeak-ng cannot play: no sound card (ALSA: cannot get card index for Speaker)", "card Speaker does not"),
    (b"ALSA lib pcm_dmix.c:1032:(snd_pcm_dmix_open) unable to open slave\n"
     b"error: Device or resource busy\n",
     "espeak-ng cannot play: the sound output is busy (ALSA: Device or resource busy)", "fuser -v /dev/snd/*"),
    (b"ALSA lib pcm_hw.c:1829:(_snd_pcm_hw_open) Invalid value for card\nerror: Permission denied\n",
     "espeak-ng cannot play: no permission to open the sound device (Permission denied)", "'audio' group"),
    (b"ALSA lib pcm.c:2666:(snd_pcm_open_noupdate) Unknown PCM bluetooth\nerror: No such file or directory\n",
     "espeak-ng cannot play: ALSA has no output device 'bluetooth'", "aplay -L"),
])
async def test_espeak_that_cannot_play_says_why_in_a_persons_words(stderr, message, hint):
    with pytest.raises(SpeechError) as info:
        await EspeakSpeech(runner=Recorder(ProcessResult(0, stderr=stderr))).say("hello")
    assert info.value.message == message
    assert hint in info.value.hint


async def test_espeak_failure_it_does_not_recognise_keeps_espeaks_own_words():
    with pytest.raises(SpeechError) as info:
        await EspeakSpeech(runner=Recorder(ProcessResult(1, stderr=b"error: voice 'xx' not found\n"))).say("hello")
    assert info.value.message == "espeak-ng failed (exit 1): error: voice 'xx' not found"


async def test_espeak_output_check_plays_silence_through_the_same_output():
    run = Recorder()
    await EspeakSpeech(runner=run, device="plughw:1,0").check_output(timeout_s=3)
    assert run.calls[0]["argv"][-4:] == ["-d", "plughw:1,0", "-a", "0"] and run.calls[0]["timeout_s"] == 3


async def test_espeak_device_argv():
    run = Recorder()
    await EspeakSpeech(runner=run, device="plughw:1,0").say("hi")
    assert run.calls[0]["argv"][-2:] == ["-d", "plughw:1,0"]


# --- indicators ---------------------------------------------------------------------------------


def test_console_indicator_logs_changes_once(caplog):
    ind = ConsoleIndicator()
    with caplog.at_level(logging.INFO, logger="node_agent.adapters.indicator"):
        for state in ["idle", "idle", "listening", "listening", "idle"]:
            ind.set_state(state)
    assert re.findall(r"indicator: (\w+)", caplog.text) == ["idle", "listening", "idle"]


def fake_led(root, name="ACT", trigger="none [mmc0] timer heartbeat"):
    led = root / name
    led.mkdir(parents=True)
    (led / "brightness").write_text("0\n")
    (led / "max_brightness").write_text("255\n")
    (led / "trigger").write_text(trigger + "\n")
    return led


def test_sysfs_led_patterns_and_restore(tmp_path):
    led_dir = fake_led(tmp_path)
    ind = make_indicator(led="ACT", leds_root=tmp_path)
    assert isinstance(ind, LedIndicator)
    ind.set_state("listening")
    assert (led_dir / "trigger").read_text() == "none" and (led_dir / "brightness").read_text() == "255"
    ind.set_state("thinking")
    assert (led_dir / "trigger").read_text() == "timer"
    assert (led_dir / "delay_on").read_text() == "250" and (led_dir / "delay_off").read_text() == "250"
    ind.set_state("idle")
    assert (led_dir / "brightness").read_text() == "0"
    ind.close()
    assert (led_dir / "trigger").read_text() == "mmc0"


def test_missing_or_unwritable_led_degrades_to_the_console(tmp_path, caplog):
    with caplog.at_level(logging.INFO):
        assert isinstance(make_indicator(led="ACT", leds_root=tmp_path), ConsoleIndicator)
    assert "no LED 'ACT'" in caplog.text
    led_dir = fake_led(tmp_path / "ro")
    (led_dir / "trigger").chmod(0o444)
    if os.geteuid() == 0:
        pytest.skip("root can write read-only files")
    assert isinstance(make_indicator(led="ACT", leds_root=tmp_path / "ro"), ConsoleIndicator)


def test_a_failing_led_is_dropped_not_raised(tmp_path, caplog):
    led_dir = fake_led(tmp_path)
    ind = LedIndicator(SysfsLed.open("ACT", tmp_path))
    shutil.rmtree(led_dir)
    with caplog.at_level(logging.WARNING):
        ind.set_state("listening")
        ind.set_state("error")
    assert ind.led is None and ind.state == "error" and "log only" in caplog.text


def fake_gpiod():
    """Enough of libgpiod v2's Python API for an LED and a button."""
    g = types.SimpleNamespace()
    g.line = types.SimpleNamespace(
        Direction=types.SimpleNamespace(INPUT="in", OUTPUT="out"),
        Value=types.SimpleNamespace(ACTIVE="on", INACTIVE="off"),
        Edge=types.SimpleNamespace(BOTH="both"),
        Bias=types.SimpleNamespace(PULL_UP="up", PULL_DOWN="down"),
    )
    g.EdgeEvent = types.SimpleNamespace(Type=types.SimpleNamespace(RISING_EDGE="rise", FALLING_EDGE="fall"))
    g.LineSettings = lambda **kw: kw
    g.requests = []

    class Request:
        def __init__(self, chip, consumer, config):
            self.chip, self.consumer, self.config = chip, consumer, config
            self.values = []
            self.released = False
            self.events = [["rise"], [], ["fall", "rise"], ["fall"]]

        def set_value(self, line, value):
            self.values.append((line, value))

        def wait_edge_events(self, timeout):
            assert isinstance(timeout, timedelta)
            if self.events and not self.events[0]:
                self.events.pop(0)  # this wait times out with nothing to read
                return False
            return bool(self.events)

        def read_edge_events(self):
            return [types.SimpleNamespace(event_type=e) for e in self.events.pop(0)]

        def release(self):
            self.released = True

    def request_lines(chip, consumer, config):
        req = Request(chip, consumer, config)
        g.requests.append(req)
        return req

    g.request_lines = request_lines
    return g


def test_gpiod_led(caplog):
    g = fake_gpiod()
    ind = make_indicator(gpio_chip="/dev/gpiochip0", gpio_line=17, gpiod_module=g)
    assert isinstance(ind, LedIndicator)
    ind.set_state("listening")
    ind.set_state("thinking")  # no blinking on a bare line: on
    ind.set_state("idle")
    ind.close()
    (req,) = g.requests
    assert req.config[17]["direction"] == "out"
    assert req.values == [(17, "on"), (17, "on"), (17, "off"), (17, "off")] and req.released


def test_gpiod_missing_degrades_to_the_console(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "gpiod", None)  # import gpiod -> ImportError
    assert isinstance(make_indicator(gpio_chip="/dev/gpiochip0", gpio_line=17), ConsoleIndicator)


async def test_gpio_button_presses_and_releases():
    g = fake_gpiod()
    button = GpioButton("/dev/gpiochip0", 27, gpiod_module=g, poll_s=0.01)
    seen = []
    with trio.move_on_after(5):
        async for pressed in button.events():
            seen.append(pressed)
            if len(seen) == 4:
                break
    assert seen == [True, False, True, False]
    (req,) = g.requests
    assert req.config[27]["bias"] == "up" and req.config[27]["active_low"] is True
    assert req.config[27]["edge_detection"] == "both" and req.consumer == "node-agent-ptt"
