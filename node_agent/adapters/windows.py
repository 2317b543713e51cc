"""Windows adapter: a toast notification and SAPI speech, both through Windows PowerShell 5.1.

The PowerShell scripts are constants, handed over as ``-EncodedCommand`` (base64 of UTF-16LE) so
no command-line quoting can bend them. The caller's text reaches them only through environment
variables (UTF-16 on Windows, so no code-page trouble either), read as ``$env:...`` and used as
plain .NET strings: ``CreateTextNode`` for the toast XML, ``Speak`` for SAPI. Nothing is pasted
into a script.

``powershell.exe`` (5.1), not ``pwsh`` (7): only 5.1 projects the WinRT toast API. A node running
as a Windows service (session 0) has no desktop to show a toast on; the notifier then falls back
to the log and says so.
"""

from __future__ import annotations

import base64
import logging

from ._process import ProcessRunner, notify_or_log, run_process, speak_with
from .base import PlatformAdapter
from .indicator import ConsoleIndicator

log = logging.getLogger("node_agent.adapters.windows")

TITLE_VAR = "NODE_AGENT_NOTIFY_TITLE"
BODY_VAR = "NODE_AGENT_NOTIFY_BODY"
SAY_VAR = "NODE_AGENT_SAY_TEXT"

#: Windows caps one environment variable at 32767 UTF-16 units.
_ENV_MAX = 32000

# Toasts need an AppUserModelID; PowerShell's own is registered on every Windows 10/11.
_TOAST_SCRIPT = rf"""
$ErrorActionPreference = 'Stop'
$null = [Windows.UI.Notifications.ToastNotificationManager, Windows.UI.Notifications, ContentType = WindowsRuntime]
$xml = [Windows.UI.Notifications.ToastNotificationManager]::GetTemplateContent([Windows.UI.Notifications.ToastTemplateType]::ToastText02)
$text = $xml.GetElementsByTagName('text')
$null = $text.Item(0).AppendChild($xml.CreateTextNode($env:{TITLE_VAR}))
$null = $text.Item(1).AppendChild($xml.CreateTextNode($env:{BODY_VAR}))
$toast = [Windows.UI.Notifications.ToastNotification]::new($xml)
$appId = '{{1AC14E77-02E7-4E5D-B744-2EB1AE5198B7}}\WindowsPowerShell\v1.0\powershell.exe'
[Windows.UI.Notifications.ToastNotificationManager]::CreateToastNotifier($appId).Show($toast)
"""

_SAY_SCRIPT = rf"""
$ErrorActionPreference = 'Stop'
Add-Type -AssemblyName System.Speech
$synth = New-Object System.Speech.Synthesis.SpeechSynthesizer
try {{ $synth.Speak($env:{SAY_VAR}) }} finally {{ $synth.Dispose() }}
"""


def encode_command(script: str) -> str:
    return base64.b64encode(script.encode("utf-16-le")).decode("ascii")


def _env_value(text: str) -> str:
    # NUL cannot live in an environment block.
    return text.replace("\0", "")[:_ENV_MAX]


def powershell_argv(script: str, powershell: str = "powershell.exe") -> list[str]:
    return [powershell, "-NoProfile", "-NonInteractive", "-NoLogo", "-EncodedCommand", encode_command(script)]


class WindowsNotifier:
    def __init__(self, *, runner: ProcessRunner = run_process, powershell: str = "powershell.exe"):
        self._run = runner
        self.powershell = powershell

    async def notify(self, title: str, body: str, *, priority: str | None = None) -> str:
        env = {TITLE_VAR: _env_value(title), BODY_VAR: _env_value(body)}
        return await notify_or_log("powershell toast", "powershell-toast",
                                   lambda: self._run(powershell_argv(_TOAST_SCRIPT, self.powershell), env=env,
                                                     timeout_s=15),
                                   title, body, log)


class WindowsSpeech:
    def __init__(self, *, runner: ProcessRunner = run_process, powershell: str = "powershell.exe"):
        self._run = runner
        self.powershell = powershell

    async def say(self, text: str) -> None:
        if not text.strip():
            return
        # PowerShell itself takes a second or two to start.
        await speak_with(self._run, f"SAPI speech ({self.powershell})", powershell_argv(_SAY_SCRIPT, self.powershell),
                         env={SAY_VAR: _env_value(text)}, timeout_s=20.0 + len(text) / 5)


def make_adapter() -> PlatformAdapter:
    return PlatformAdapter(name="windows", platform="win32", device_family="Windows", notifier=WindowsNotifier(),
                           speech=WindowsSpeech(), indicator=ConsoleIndicator())
