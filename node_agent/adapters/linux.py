"""Linux desktop/server adapter: ``notify-send`` where present, else the log; ``espeak-ng``."""

from __future__ import annotations

import logging
import re
import shutil

from ._process import ProcessRunner, notify_or_log, run_process, speak_with
from .base import PlatformAdapter
from .indicator import ConsoleIndicator

log = logging.getLogger("node_agent.adapters.linux")

_ESPEAK_ERROR = re.compile(rb"^error:", re.MULTILINE)


class LinuxNotifier:
    def __init__(self, *, runner: ProcessRunner = run_process):
        self._run = runner

    async def notify(self, title: str, body: str, *, priority: str | None = None) -> str:
        exe = shutil.which("notify-send")
        if not exe:
            log.warning("notification: %s: %s", title, body)
            return "log"
        urgency = {"timeSensitive": "critical", "active": "normal", "passive": "low"}.get(priority or "", "normal")
        return await notify_or_log("notify-send", "notify-send",
                                   lambda: self._run([exe, "-u", urgency, "--", title, body], timeout_s=5),
                                   title, body, log)


class EspeakSpeech:
    """``espeak-ng`` with the text on stdin (``--stdin -b 1``: all of it, as UTF-8), so a text
    that starts with ``-`` is never read as an option and a locale of ``C`` under systemd does
    not mangle accents. ``wav_out`` writes a WAV file instead of playing (``-w``), for tests and
    for ``doctor``."""

    def __init__(self, *, executable: str = "espeak-ng", voice: str | None = None, rate_wpm: int | None = None,
                 device: str | None = None, wav_out: str | None = None, runner: ProcessRunner = run_process):
        self.executable = executable
        self.voice = voice
        self.rate_wpm = rate_wpm
        self.device = device  # an output device name (ALSA PCM / PortAudio), e.g. "plughw:1,0"
        self.wav_out = wav_out
        self._run = runner

    def argv(self) -> list[str]:
        argv = [self.executable, "--stdin", "-b", "1"]
        if self.voice:
            argv += ["-v", self.voice]
        if self.rate_wpm:
            argv += ["-s", str(int(self.rate_wpm))]
        if self.wav_out:
            argv += ["-w", self.wav_out]
        elif self.device:
            argv += ["-d", self.device]
        return argv

    async def say(self, text: str) -> None:
        if not text.strip():
            return
        # Generous: ~175 words/min is ~15 chars/s; allow for a slow voice and a busy device.
        await speak_with(self._run, self.executable, self.argv(), stdin=text.encode("utf-8"),
                         timeout_s=15.0 + len(text) / 5, missing_hint="install it: sudo apt-get install espeak-ng",
                         # espeak-ng exits 0 even when it cannot open the audio device; it only says "error:".
                         failed=lambda result: result.returncode != 0 or bool(_ESPEAK_ERROR.search(result.stderr)),
                         failure_hint="check the audio output device (aplay -l)")

    def __repr__(self) -> str:
        return f"EspeakSpeech(voice={self.voice!r}, wav_out={self.wav_out!r})"


def make_adapter() -> PlatformAdapter:
    return PlatformAdapter(name="linux", platform="linux", device_family="Linux", notifier=LinuxNotifier(),
                           speech=EspeakSpeech(), indicator=ConsoleIndicator())
