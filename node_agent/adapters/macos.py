"""macOS adapter: notifications through ``osascript``, speech through ``say``.

The notification text has to go *inside* an AppleScript statement, so it is written as an
AppleScript string literal by :func:`applescript_string`, which escapes ``\\`` and ``"`` and turns
control characters into escapes; nothing a caller sends can end the literal early and add
statements. ``say`` gets its text on stdin (``-f -``), never as an argument.

A LaunchAgent that runs a bare Python gets no notification permission prompt and records
digital silence from the microphone (no ``NSMicrophoneUsageDescription``); see the packaging
notes. These commands still work from a logged-in user's session.
"""

from __future__ import annotations

import logging

from ._process import ProcessRunner, notify_or_log, run_process, speak_with
from .base import PlatformAdapter
from .indicator import ConsoleIndicator

log = logging.getLogger("node_agent.adapters.macos")

_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def applescript_string(text: str) -> str:
    """``text`` as an AppleScript string literal, quotes included.

    AppleScript knows the escapes ``\\\\ \\" \\n \\r \\t``; other control characters (and NUL,
    which would truncate the C string osascript hands to the compiler) are dropped.
    """
    out = []
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or ch == "\x7f":
            continue
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


class MacNotifier:
    def __init__(self, *, runner: ProcessRunner = run_process, osascript: str = "/usr/bin/osascript"):
        self._run = runner
        self.osascript = osascript

    def argv(self, title: str, body: str, *, priority: str | None = None) -> list[str]:
        script = f"display notification {applescript_string(body)} with title {applescript_string(title)}"
        if priority == "timeSensitive":
            script += ' sound name "default"'
        return [self.osascript, "-e", script]

    async def notify(self, title: str, body: str, *, priority: str | None = None) -> str:
        return await notify_or_log("osascript", "osascript",
                                   lambda: self._run(self.argv(title, body, priority=priority), timeout_s=10),
                                   title, body, log)


class MacSpeech:
    def __init__(self, *, runner: ProcessRunner = run_process, say: str = "/usr/bin/say", voice: str | None = None):
        self._run = runner
        self.say_path = say
        self.voice = voice

    def argv(self) -> list[str]:
        argv = [self.say_path]
        if self.voice:
            argv += ["-v", self.voice]
        return argv + ["-f", "-"]

    async def say(self, text: str) -> None:
        if not text.strip():
            return
        await speak_with(self._run, "say", self.argv(), stdin=text.encode("utf-8"), timeout_s=15.0 + len(text) / 5)


def make_adapter() -> PlatformAdapter:
    return PlatformAdapter(name="macos", platform="darwin", device_family="Mac", notifier=MacNotifier(),
                           speech=MacSpeech(), indicator=ConsoleIndicator())
