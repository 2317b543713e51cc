"""Linux desktop/server adapter: ``notify-send`` where present, else the log; ``espeak-ng``.

espeak-ng plays through PulseAudio/PipeWire or ALSA, and when neither has a device it still
exits 0, after ALSA's lines on stderr. :func:`explain_output_failure` turns those lines into the
reason and the fix a person needs ("no sound card"), once, rather than "SpeechError"; the same
words serve ``doctor``, which plays a silent sentence (:meth:`EspeakSpeech.check_output`) to see
that speech reaches an output device at all.
"""

from __future__ import annotations

import logging
import re
import shutil

from ._process import ProcessResult, ProcessRunner, notify_or_log, run_process, speak_with
from .base import PlatformAdapter, SpeechError
from .indicator import ConsoleIndicator

log = logging.getLogger("node_agent.adapters.linux")

_ESPEAK_ERROR = re.compile(rb"^error:", re.MULTILINE)

_NO_CARD = re.compile(r"cannot find card '([^']*)'|Cannot get card index for (\S+)")
_UNKNOWN_PCM = re.compile(r"Unknown PCM (\S+)")
_LIST_CARDS = "`aplay -l` lists the sound cards"


def explain_output_failure(result: ProcessResult, tool: str = "espeak-ng") -> SpeechError | None:
    """Why a speech engine could not play, from ALSA's and PulseAudio's words on its stderr, as
    a :class:`SpeechError` with the fix; None when the words are not recognised."""
    text = result.stderr.decode("utf-8", "replace")
    no_card = _NO_CARD.search(text)
    if no_card:
        card = no_card.group(1) or no_card.group(2)
        said = no_card.group(0)[0].lower() + no_card.group(0)[1:]
        return SpeechError(f"{tool} cannot play: no sound card (ALSA: {said})",
                           hint=f"connect a speaker or a USB sound card ({_LIST_CARDS}), or point ALSA's default "
                                f"device at one that exists (card {card} does not; see /etc/asound.conf)")
    if "Device or resource busy" in text:
        return SpeechError(f"{tool} cannot play: the sound output is busy (ALSA: Device or resource busy)",
                           hint="another program holds it (`fuser -v /dev/snd/*`); playing through PulseAudio/"
                                "PipeWire, or ALSA's 'default' device with dmix, shares it")
    if "Permission denied" in text:
        return SpeechError(f"{tool} cannot play: no permission to open the sound device (Permission denied)",
                           hint="add the agent's user to the 'audio' group: sudo usermod -aG audio <user>")
    unknown = _UNKNOWN_PCM.search(text)
    if unknown:
        return SpeechError(f"{tool} cannot play: ALSA has no output device {unknown.group(1)!r}",
                           hint=f"set the output to a device that exists ({_LIST_CARDS}; `aplay -L` the names)")
    return None


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
        await self._speak(self.argv(), text, timeout_s=15.0 + len(text) / 5)

    async def check_output(self, *, timeout_s: float = 10.0) -> None:
        """Play one short sentence at amplitude 0 (silence) through the same output ``say`` uses;
        raises the :class:`SpeechError` ``say`` would. For ``doctor``: nothing is heard."""
        argv = [*self.argv(), "-a", "0"]
        await self._speak(argv, "doctor", timeout_s=timeout_s)

    async def _speak(self, argv: list[str], text: str, *, timeout_s: float) -> None:
        await speak_with(self._run, self.executable, argv, stdin=text.encode("utf-8"), timeout_s=timeout_s,
                         missing_hint="install it: sudo apt-get install espeak-ng",
                         # espeak-ng exits 0 even when it cannot open the audio device; it only says "error:".
                         failed=lambda result: result.returncode != 0 or bool(_ESPEAK_ERROR.search(result.stderr)),
                         failure_hint="check the audio output device (aplay -l)",
                         explain=lambda result: explain_output_failure(result, self.executable))

    def __repr__(self) -> str:
        return f"EspeakSpeech(voice={self.voice!r}, wav_out={self.wav_out!r})"


def make_adapter() -> PlatformAdapter:
    return PlatformAdapter(name="linux", platform="linux", device_family="Linux", notifier=LinuxNotifier(),
                           speech=EspeakSpeech(), indicator=ConsoleIndicator())
