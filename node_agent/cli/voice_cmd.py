"""``node-agent voice``: try the voice pieces without a gateway.

* ``voice test --wav FILE [--trigger PHRASE ...] [--stt ENGINE]`` runs the whole pipeline over a
  recording, built by the same code as the daemon's (:mod:`node_agent.voice.build`): every wake
  with its engine, model, time and score; the best score of each model (the number to look at
  when a wake word is missed); the triggers that have no model; then, as the daemon would,
  capture after each wake until silence and transcribe with the configured engine (pocketsphinx
  by default, a Wyoming server, a command, or ``none``), printing each transcript. Two seconds of
  silence are put before the file (pre-roll): the engines need context before they score, and a
  1 s clip that starts with the wake word would otherwise be judged unfairly. With keyword
  spotting on, it also measures that engine's false accepts on synthesized unrelated speech.
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

    test = sub.add_parser("test", help="run wake words, capture and speech-to-text over a WAV file",
                          description="Run the voice pipeline over a 16 kHz mono WAV file as the daemon would: "
                                      "print every wake (engine, model, time, score), then capture the utterance "
                                      "after each wake and transcribe it with the configured engine. Exit status 1 "
                                      "if nothing was detected.")
    common(test)
    test.add_argument("--wav", required=True, metavar="FILE", help="16 kHz, 16-bit WAV (mono, or downmixed)")
    test.add_argument("--trigger", action="append", metavar="PHRASE", dest="triggers",
                      help="a wake phrase to listen for (repeatable; default: [voice] local_triggers, "
                           "else every phrase that has a model)")
    test.add_argument("--stt", metavar="ENGINE",
                      help="pocketsphinx, wyoming://host:port, command, or none (default: [voice] stt, "
                           "else pocketsphinx)")
    test.add_argument("--stt-command", metavar="CMD",
                      help="speech-to-text program, as one shell-quoted string; {wav} becomes a WAV file path, "
                           "else the WAV goes to its stdin (implies --stt command; default: [voice] stt_command)")
    test.add_argument("--keyword-spotting", action="store_true",
                      help="also spot triggers no model covers with pocketsphinx (experimental), and measure "
                           "its false accepts")
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

#: Silence put before the recording: openWakeWord scores only after ~2 s of audio.
PRE_ROLL_S = 2.0
#: Unrelated speech the keyword engine is tried on (near misses of OpenClaw's triggers included).
NEGATIVE_SENTENCES = ("the weather is nice today", "please turn on the kitchen lights", "what time is it",
                      "I think we should leave at seven", "play some music in the living room", "open the door",
                      "the cat has sharp claws", "commute to work", "cloudy skies", "a comfortable chair")
NEGATIVE_VOICES = ("en-us", "en", "en-gb")


def _test(args: argparse.Namespace) -> int:
    import dataclasses
    import trio

    from ..errors import ConfigError
    from ..voice.build import require_voice_extra
    from .options import config_from_args

    if getattr(args, "log_level", None) is None:
        # `voice test` prints its own report; the pipeline's INFO lines would interleave with it.
        logging.getLogger().setLevel(logging.WARNING)
    settings = config_from_args(args).voice
    if args.stt_command is not None:
        command = tuple(shlex.split(args.stt_command))
        if not command:
            raise ConfigError("--stt-command is empty")
        settings = dataclasses.replace(settings, stt_command=command)
    engine = args.stt or ("command" if args.stt_command else settings.stt_engine)
    if engine == "command" and not settings.stt_command:
        raise ConfigError("--stt command needs --stt-command (or [voice] stt_command)")
    if engine not in ("pocketsphinx", "command", "none") and not engine.startswith("wyoming://"):
        raise ConfigError(f"--stt must be pocketsphinx, wyoming://host:port, command or none, not {engine!r}")
    threshold = args.threshold if args.threshold is not None else settings.threshold
    if not 0.0 < threshold <= 1.0:
        raise ConfigError("--threshold must be in (0, 1]")
    # Before anything else: a missing extra is the answer, not "no model for ..." later.
    require_voice_extra()
    settings = dataclasses.replace(settings, threshold=threshold,
                            custom_model_dir=args.custom_model_dir or settings.custom_model_dir,
                            keyword_spotting=settings.keyword_spotting or args.keyword_spotting)
    report = trio.run(_run_test, Path(args.wav).expanduser(), args.triggers or list(settings.local_triggers),
                      settings, engine)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        sys.stdout.write(_text(report))
    return 0 if report["detections"] else 1


async def _run_test(wav: Path, triggers: list[str], settings: Any, engine: str) -> dict[str, Any]:
    import trio

    from ..voice.audio import CHUNK_SAMPLES, SAMPLE_RATE, SAMPLE_WIDTH, read_wav
    from ..voice.build import build_detector

    pcm = await trio.to_thread.run_sync(read_wav, wav)
    padded = bytes(int(PRE_ROLL_S * SAMPLE_RATE) * SAMPLE_WIDTH) + pcm
    detector = build_detector(settings)
    triggers = triggers or detector.supported_phrases
    active, unsupported = detector.set_triggers(triggers)
    step = CHUNK_SAMPLES * SAMPLE_WIDTH

    def scan() -> list[Any]:
        found = []
        for offset in range(0, len(padded), step):
            chunk = padded[offset:offset + step]
            found.extend(detector.process(chunk + bytes(step - len(chunk))))
        return found

    detections = await trio.to_thread.run_sync(scan)
    models = detector.models
    report: dict[str, Any] = {
        "file": str(wav),
        "seconds": round(len(pcm) / (SAMPLE_WIDTH * SAMPLE_RATE), 2),
        "preRollSeconds": PRE_ROLL_S,
        "threshold": settings.threshold,
        "triggers": list(active),
        "models": models,
        "unsupported": list(unsupported),
        "supportedPhrases": detector.supported_phrases,
        "detections": [{"trigger": d.trigger, "engine": d.engine, "model": d.model_id,
                        "at": round(d.audio_time - PRE_ROLL_S, 2), "score": round(d.score, 3)} for d in detections],
        "bestScores": {model: round(score, 3) for model, score in sorted(detector.take_peaks().items())},
        "stt": engine,
    }
    if engine != "none" and active:
        report["transcripts"] = await _transcribe(padded, triggers, settings, engine)
    keyword = [t for t, m in models.items() if m["engine"] == "keyword"]
    if keyword:
        report["keywordFalseAccepts"] = await trio.to_thread.run_sync(_keyword_false_accepts, settings, keyword)
    return report


async def _transcribe(pcm: bytes, triggers: list[str], settings: Any, engine: str) -> list[dict[str, Any]]:
    """The daemon's path over the file: wake -> capture until silence -> STT, in audio time."""

    from ..voice.audio import BytesSource
    from ..voice.build import build_detector, build_stt, preload
    from ..voice.pipeline import Transcript, VoicePipeline

    detector = _RecordingDetector(build_detector(settings))
    stt = build_stt(settings, engine=engine)
    await preload(stt)
    transcripts: list[dict[str, Any]] = []

    async def on_transcript(t: Transcript) -> None:
        wake = detector.last
        transcripts.append({"text": t.text, "trigger": t.trigger, "audioSeconds": t.audio_s,
                            "wakeAt": round(wake.audio_time - PRE_ROLL_S, 2) if wake is not None else None})

    pipeline = VoicePipeline(BytesSource(pcm, name="wav"), on_transcript=on_transcript, stt=stt, detector=detector)
    pipeline.set_triggers(triggers)
    await pipeline.run()
    return transcripts


def _keyword_false_accepts(settings: Any, triggers: list[str]) -> dict[str, Any]:
    """The keyword engine over espeak-ng's unrelated sentences (over a faint noise floor): how
    often it wakes when nobody said a trigger. Blocking."""
    import shutil
    import subprocess

    from ..voice.build import build_detector
    from ..voice.tts import decode_wav

    if not shutil.which("espeak-ng"):
        return {"measured": False, "reason": "espeak-ng is not installed"}
    import numpy as np

    detector = build_detector(settings, keyword_spotting=True)
    detector.set_triggers(triggers)
    rng = np.random.default_rng(0)
    seconds, accepts, examples = 0.0, 0, []
    for voice in NEGATIVE_VOICES:
        for sentence in NEGATIVE_SENTENCES:
            wav = subprocess.run(["espeak-ng", "-v", voice, "--stdout", sentence], check=True,
                                 capture_output=True).stdout
            spoken = decode_wav(wav, "espeak-ng")
            samples = np.frombuffer(spoken.pcm, "<i2").astype(np.float64)
            resampled = np.interp(np.arange(0, len(samples), spoken.rate / 16000), np.arange(len(samples)), samples)
            clip = np.concatenate([np.zeros(8000), resampled, np.zeros(8000)]) + rng.standard_normal(
                len(resampled) + 16000) * 200
            pcm = np.clip(clip, -32768, 32767).astype("<i2").tobytes()
            detector.reset()
            for offset in range(0, len(pcm), 2560):
                for d in detector.process(pcm[offset:offset + 2560]):
                    if d.engine == "keyword":
                        accepts += 1
                        examples.append(f"{sentence!r} ({voice}) -> {d.trigger!r}")
            seconds += len(pcm) / 32000
    return {"measured": True, "falseAccepts": accepts, "seconds": round(seconds, 1),
            "perHour": round(accepts / seconds * 3600, 1), "utterances": len(NEGATIVE_VOICES) * len(NEGATIVE_SENTENCES),
            "examples": examples[:10]}


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
    lines = [f"{report['file']}: {report['seconds']:g} s (+{report['preRollSeconds']:g} s of silence before it), "
             f"threshold {report['threshold']:g}"]
    listening = [f"{t} ({m['engine']})" for t, m in report["models"].items()]
    lines.append(f"listening for: {', '.join(listening) or 'nothing'}")
    if report["unsupported"]:
        lines.append(f"no model for: {', '.join(report['unsupported'])} "
                     f"(supported: {', '.join(report['supportedPhrases'])}, or add <phrase>.tflite to a custom "
                     f"model folder, or turn on keyword spotting)")
    if report["detections"]:
        for d in report["detections"]:
            lines.append(f"wake  {d['at']:7.2f} s  {d['trigger']!r}  score {d['score']:.3f}  "
                         f"({d['engine']} model {d['model']})")
    else:
        lines.append("no wake word detected")
    if report["bestScores"]:
        lines.append("best score per model: " + ", ".join(f"{m} {s:.3f}" for m, s in report["bestScores"].items()))
    if "transcripts" in report:
        if not report["transcripts"]:
            lines.append(f"no transcript (nothing said after a wake, or {report['stt']} heard nothing)")
        for t in report["transcripts"]:
            at = f"after the wake at {t['wakeAt']:.2f} s" if t["wakeAt"] is not None else ""
            lines.append(f"transcript {at} ({t['audioSeconds']:g} s of audio, {report['stt']}): {t['text']}")
    fa = report.get("keywordFalseAccepts")
    if fa:
        if fa["measured"]:
            lines.append(f"keyword spotting (experimental): {fa['falseAccepts']} false accepts in {fa['seconds']:g} s "
                         f"of unrelated synthesized speech ({fa['utterances']} utterances) = {fa['perHour']:g} per hour")
            lines.extend(f"  false accept: {e}" for e in fa["examples"])
        else:
            lines.append(f"keyword spotting false accepts not measured: {fa['reason']}")
    return "\n".join(lines) + "\n"
