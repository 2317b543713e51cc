"""The ``audio`` line: the microphones voice would use, and whether they can be opened.

Voice is optional: ``node_agent.voice`` and ``sounddevice``/PortAudio are imported here, lazily;
when they are missing the line is a skip with the reason, unless ``[voice]`` turns voice on
(:attr:`~node_agent.config.voice.VoiceSettings.active`), in which case missing pieces fail.
Opening each input for a moment, to find busy ones, is the only thing doctor "uses"; PortAudio
calls run in a worker thread under a timeout (abandoned: PortAudio can hang).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import trio

from ..config.voice import VoiceSettings
from .check import Check, fail, ok, skip, warn
from .context import Context

NAME = "audio"


def _configured(devices: list[dict[str, Any]], wanted: str) -> list[dict[str, Any]]:
    """The inputs ``voice.device`` names, as PortAudio would pick them: an index, else a
    case-insensitive name substring."""
    if wanted.strip().isdigit():
        return [d for d in devices if d["index"] == int(wanted)]
    return [d for d in devices if wanted.lower() in str(d["name"]).lower()]


def _probe_inputs(audio: Any, devices: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """Open each input device for a moment (blocking). Returns (busy, unusable) descriptions."""
    sd = audio.import_sounddevice()
    busy: list[str] = []
    unusable: list[str] = []
    for dev in devices:
        label = f"#{dev['index']} {dev['name']}"
        try:
            stream = sd.InputStream(device=dev["index"], channels=1, dtype="int16",
                                    samplerate=dev.get("default_samplerate") or None)
            try:
                stream.start()
                stream.stop()
            finally:
                stream.close()
        except Exception as exc:  # PortAudioError, ValueError; any failure is the finding
            text = str(exc)
            if any(s in text.lower() for s in ("unavailable", "busy", "-9985")):
                busy.append(label)
            else:
                unusable.append(f"{label} ({text[:80]})")
    return busy, unusable


async def check_audio(voice: VoiceSettings, *, probe: bool = True, timeout: float = 10.0) -> Check:
    wanted = voice.active
    missing = fail if wanted else skip  # voice support absent
    problem = fail if wanted else warn  # present, but this host's audio is not right
    try:
        from ..voice import audio
        from ..voice.errors import AudioDeviceError, VoiceUnavailable
    except ImportError as exc:
        return missing(NAME, f"voice support is not part of this install ({exc.name or exc})",
                       "install a node-agent with voice support")
    if voice.wav:
        wav = Path(voice.wav).expanduser()
        if not wav.is_file():
            return problem(NAME, f"voice.wav {wav} does not exist",
                           "point voice.wav at a 16 kHz mono WAV file, or remove it")
        return ok(NAME, f"voice reads {wav} instead of a microphone (voice.wav)")
    try:
        with trio.fail_after(timeout):
            devices = await trio.to_thread.run_sync(audio.list_devices, abandon_on_cancel=True)
    except trio.TooSlowError:
        return fail(NAME, f"listing audio devices did not finish within {timeout:g} s",
                    "check the sound system (`arecord -l`); a hung PulseAudio/PipeWire can cause this")
    except VoiceUnavailable as exc:
        return missing(NAME, exc.message, exc.hint)
    except AudioDeviceError as exc:
        return problem(NAME, exc.message, exc.hint or "check the sound system (`arecord -l`)")
    if not devices:
        return problem(NAME, "no input devices found",
                       "plug in a microphone; check `arecord -l` and that the agent's user is in the 'audio' group")
    names = ", ".join(f"#{d['index']} {d['name']}{' (default)' if d.get('default') else ''}" for d in devices)
    if voice.device is not None and not _configured(devices, voice.device):
        return problem(NAME, f"voice.device {voice.device!r} matches no input device (inputs: {names})",
                       "set voice.device to one of the inputs listed (an index or part of its name), or remove it")
    if not probe:
        return ok(NAME, f"{len(devices)} input device(s): {names}")
    try:
        with trio.fail_after(timeout):
            busy, unusable = await trio.to_thread.run_sync(functools.partial(_probe_inputs, audio, devices),
                                                           abandon_on_cancel=True)
    except trio.TooSlowError:
        return warn(NAME, f"{len(devices)} input device(s): {names}; opening them did not finish within "
                          f"{timeout:g} s",
                    "a device may be held by another program (`fuser -v /dev/snd/*`)")
    except (VoiceUnavailable, AudioDeviceError) as exc:
        return warn(NAME, exc.message, exc.hint)
    if busy or unusable:
        parts = [f"busy: {', '.join(busy)}"] if busy else []
        parts += [f"cannot open: {'; '.join(unusable)}"] if unusable else []
        everything = len(busy) + len(unusable) == len(devices)
        return (fail if wanted and everything else warn)(
            NAME, f"{len(devices)} input device(s): {names}; {'; '.join(parts)}",
            "another program holds the microphone (`fuser -v /dev/snd/*`; stop it, or use the 'default'/'pulse' "
            "device, which shares)")
    return ok(NAME, f"{len(devices)} input device(s), all free: {names}")


async def run(ctx: Context) -> Check:
    return await check_audio(ctx.voice, probe=ctx.options.probe_audio, timeout=ctx.options.audio_timeout)
