"""``node-agent voice``: try the voice pieces without a gateway.

* ``voice test --wav FILE [--trigger PHRASE ...] [--stt-command CMD]`` runs wake-word detection
  over a recording and prints every detection with its time and score, the best score of each
  model (the number to look at when a wake word is missed), and the triggers that have no model.
  With a speech-to-text command it then runs the file through the pipeline exactly as the daemon
  would (wake, capture until silence, transcribe) and prints each transcript.
* ``voice devices`` lists the audio input devices (what ``[voice] device`` may name).

Defaults come from the ``[voice]`` table of the config file when there is one; flags override
it. Without any trigger, every phrase that has a model is listened for. Exit status of ``voice
test``: 0 if something was detected, 1 if nothing was (so a script can check a recording), and
the usual 78 for a configuration error (a WAV that is not 16 kHz, an unknown device library).
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
from pathlib import Path
from typing import Any, Callable


def add_parser(subparsers, common: Callable[[argparse.ArgumentParser], None]) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("voice", help="test wake words and speech-to-text on a WAV file; list microphones",
                                   description="Try the voice pipeline without a gateway.")
    sub = parser.add_subparsers(dest="voice_command", metavar="SUBCOMMAND", required=True)

    test = sub.add_parser("test", help="detect wake words (and transcribe, with --stt-command) in a WAV file",
                          description="Run wake-word detection over a 16 kHz mono WAV file and print what fired, "
                                      "when, and with which score; with --stt-command also capture and transcribe "
                                      "the utterance after each wake, as the daemon does. Exit status 1 if "
                                      "nothing was detected.")
    common(test)
    test.add_argument("--wav", required=True, metavar="FILE", help="16 kHz, 16-bit WAV (mono, or downmixed)")
    test.add_argument("--trigger", action="append", metavar="PHRASE", dest="triggers",
                      help="a wake phrase to listen for (repeatable; default: [voice] local_triggers, "
                           "else every phrase that has a model)")
    test.add_argument("--stt-command", metavar="CMD",
                      help="speech-to-text program, as one shell-quoted string; {wav} becomes a WAV file path, "
                           "else the WAV goes to its stdin (default: [voice] stt_command)")
    test.add_argument("--threshold", type=float, metavar="SCORE", help="detection threshold (default 0.5)")
    test.add_argument("--custom-model-dir", metavar="DIR", help="folder of <phrase>.tflite wake-word models")
    test.add_argument("--json", action="store_true", help="machine-readable output")

    devices = sub.add_parser("devices", help="list audio input devices")
    devices.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    if args.voice_command == "devices":
        return _devices(args)
    return _test(args)


# --- voice devices -----------------------------------------------------------------------------


def _devices(args: argparse.Namespace) -> int:
    from ..voice.audio import list_devices

    devices = list_devices()
    if args.json:
        print(json.dumps(devices, indent=2))
        return 0
    if not devices:
        print("no audio input devices found")
        return 0
    for dev in devices:
        mark = "*" if dev.get("default") else " "
        print(f"{mark} {dev['index']:>3}  {dev['name']}  ({dev['hostapi']}, {dev['max_input_channels']} ch, "
              f"{dev['default_samplerate']:g} Hz)")
    print("* = default input. Set one with [voice] device = \"<index or part of the name>\".")
    return 0


# --- voice test --------------------------------------------------------------------------------


def _test(args: argparse.Namespace) -> int:
    import trio

    from ..errors import ConfigError
    from .options import config_from_args

    if getattr(args, "log_level", None) is None:
        # `voice test` prints its own report; the pipeline's INFO lines would interleave with it.
        logging.getLogger().setLevel(logging.WARNING)
    settings = config_from_args(args).voice
    stt_command = tuple(shlex.split(args.stt_command)) if args.stt_command else settings.stt_command
    if args.stt_command is not None and not stt_command:
        raise ConfigError("--stt-command is empty")
    report = trio.run(_run_test, Path(args.wav).expanduser(),
                      args.triggers or list(settings.local_triggers),
                      args.threshold if args.threshold is not None else settings.threshold,
                      args.custom_model_dir or settings.custom_model_dir, settings.refractory_seconds, stt_command)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        sys.stdout.write(_text(report))
    return 0 if report["detections"] else 1


async def _run_test(wav: Path, triggers: list[str], threshold: float, custom_model_dir: str | None,
                    refractory_s: float, stt_command: tuple[str, ...]) -> dict[str, Any]:
    import trio

    from ..errors import ConfigError
    from ..voice.audio import CHUNK_SAMPLES, SAMPLE_RATE, SAMPLE_WIDTH, read_wav

    pcm = await trio.to_thread.run_sync(read_wav, wav)
    if not 0.0 < threshold <= 1.0:
        raise ConfigError("--threshold must be in (0, 1]")
    detector = _detector(threshold, refractory_s, custom_model_dir)
    triggers = triggers or detector.supported_phrases
    active, unsupported = detector.set_triggers(triggers)
    step = CHUNK_SAMPLES * SAMPLE_WIDTH

    def scan() -> list[Any]:
        found = []
        for offset in range(0, len(pcm), step):
            chunk = pcm[offset:offset + step]
            found.extend(detector.process(chunk + bytes(step - len(chunk))))
        return found

    detections = await trio.to_thread.run_sync(scan)
    report: dict[str, Any] = {
        "file": str(wav),
        "seconds": round(len(pcm) / (SAMPLE_WIDTH * SAMPLE_RATE), 2),
        "threshold": threshold,
        "triggers": list(active),
        "unsupported": list(unsupported),
        "supportedPhrases": detector.supported_phrases,
        "detections": [{"trigger": d.trigger, "model": d.model_id, "at": round(d.audio_time, 2),
                        "score": round(d.score, 3)} for d in detections],
        "bestScores": {model: round(score, 3) for model, score in sorted(detector.take_peaks().items())},
    }
    if stt_command and active:
        report["transcripts"] = await _transcribe(wav, triggers, threshold, custom_model_dir, refractory_s,
                                                  stt_command)
    return report


def _detector(threshold: float, refractory_s: float, custom_model_dir: str | None):
    from ..voice.wake import WakeDetector

    return WakeDetector(threshold=threshold, refractory_s=refractory_s, custom_model_dir=custom_model_dir)


async def _transcribe(wav: Path, triggers: list[str], threshold: float, custom_model_dir: str | None,
                      refractory_s: float, stt_command: tuple[str, ...]) -> list[dict[str, Any]]:
    """The daemon's path over the file: wake -> capture until silence -> STT, in audio time."""
    from ..voice.audio import WavFileSource
    from ..voice.pipeline import Transcript, VoicePipeline
    from ..voice.stt import CommandSTT

    detector = _RecordingDetector(_detector(threshold, refractory_s, custom_model_dir))
    transcripts: list[dict[str, Any]] = []

    async def on_transcript(t: Transcript) -> None:
        wake = detector.last
        transcripts.append({"text": t.text, "trigger": t.trigger, "audioSeconds": t.audio_s,
                            "wakeAt": round(wake.audio_time, 2) if wake is not None else None})

    pipeline = VoicePipeline(WavFileSource(wav), on_transcript=on_transcript, stt=CommandSTT(stt_command),
                             detector=detector)
    pipeline.set_triggers(triggers)
    await pipeline.run()
    return transcripts


class _RecordingDetector:
    """A :class:`~node_agent.voice.wake.WakeDetector` that remembers its last detection, so a
    transcript can be paired with the wake that started it."""

    def __init__(self, inner: Any):
        self.inner = inner
        self.last = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def set_triggers(self, triggers):
        return self.inner.set_triggers(triggers)

    def process(self, chunk: bytes):
        found = self.inner.process(chunk)
        if found:
            self.last = found[0]
        return found

    def reset(self) -> None:
        self.inner.reset()


def _text(report: dict[str, Any]) -> str:
    lines = [f"{report['file']}: {report['seconds']:g} s, threshold {report['threshold']:g}"]
    lines.append(f"listening for: {', '.join(report['triggers']) or 'nothing'}")
    if report["unsupported"]:
        lines.append(f"no model for: {', '.join(report['unsupported'])} "
                     f"(supported: {', '.join(report['supportedPhrases'])}, or add <phrase>.tflite to a custom "
                     f"model folder)")
    if report["detections"]:
        for d in report["detections"]:
            lines.append(f"wake  {d['at']:7.2f} s  {d['trigger']!r}  score {d['score']:.3f}  (model {d['model']})")
    else:
        lines.append("no wake word detected")
    if report["bestScores"]:
        lines.append("best score per model: " + ", ".join(f"{m} {s:.3f}" for m, s in report["bestScores"].items()))
    if "transcripts" in report:
        if not report["transcripts"]:
            lines.append("no transcript (nothing said after a wake, or the speech-to-text program printed nothing)")
        for t in report["transcripts"]:
            at = f"after the wake at {t['wakeAt']:.2f} s" if t["wakeAt"] is not None else ""
            lines.append(f"transcript {at} ({t['audioSeconds']:g} s of audio): {t['text']}")
    return "\n".join(lines) + "\n"
