"""The ``speech`` line: can this node speak (a pairing code, a reply) to someone in the room?

The program being there is not enough: espeak-ng on a box with no sound card exits 0 and says
only ALSA's "cannot find card '0'". So where the adapter's speech offers ``check_output`` (the
espeak-ng adapters), doctor plays one sentence at amplitude 0 through the same output the agent
would use, under a timeout, and reports the reason and fix in the adapter's own words
(:func:`node_agent.adapters.linux.explain_output_failure`). Elsewhere (``say``,
SAPI) the program is found and the output is not probed: those platforms have an output device.

Speech is a courtesy, so a problem is a warning, unless ``[voice] speak_replies`` asks for it.
"""

from __future__ import annotations

import shutil

from ..adapters import SpeechError, detect_adapter_name, select_adapter
from .check import Check, fail, ok, warn
from .context import Context

NAME = "speech"

_PROGRAMS = {
    "linux": ("espeak-ng", "sudo apt-get install espeak-ng"),
    "pi": ("espeak-ng", "sudo apt-get install espeak-ng"),
    "macos": ("say", "`say` ships with macOS: check PATH (/usr/bin)"),
    "windows": ("powershell.exe", "Windows PowerShell 5.1 ships with Windows: check PATH"),
}


async def check_speech(adapter: str | None, *, probe: bool = True, timeout: float = 10.0,
                       required: bool = False) -> Check:
    """``adapter``: the configured platform adapter (None: detected). ``required``: speech is
    asked for (spoken replies), so a problem fails."""
    adapter = adapter or detect_adapter_name()
    problem = fail if required else warn
    program, install = _PROGRAMS.get(adapter, _PROGRAMS["linux"])
    path = shutil.which(program)
    if path is None:
        return problem(NAME, f"{program} not found: pairing codes and replies cannot be spoken ({adapter} adapter)",
                       install)
    speech = select_adapter(adapter).speech
    check_output = getattr(speech, "check_output", None)
    if check_output is None:
        return ok(NAME, f"{program} at {path} (the sound output is not probed on {adapter})")
    if not probe:
        return ok(NAME, f"{program} at {path} (sound output not probed: --no-audio-probe)")
    try:
        await check_output(timeout_s=timeout)
    except SpeechError as exc:
        return problem(NAME, f"{program} at {path}, but {exc.message.removeprefix(program + ' ')}",
                       exc.hint or "check the sound output (`aplay -l`)")
    return ok(NAME, f"{program} at {path} reaches the default sound output")


async def run(ctx: Context) -> Check:
    voice = ctx.voice
    return await check_speech(ctx.config.adapter if ctx.config is not None else None, probe=ctx.options.probe_audio,
                              timeout=ctx.options.audio_timeout, required=voice.active and voice.speak_replies)
