"""Wake-word cost and accuracy, microWakeWord and openWakeWord side by side. Prints numbers; asserts nothing.

    python bench/wake_bench.py                      # 120 s of generated audio, okay nabu, both engines
    python bench/wake_bench.py --models all --vad   # every phrase both ship, plus Silero VAD alone
    python bench/wake_bench.py --pipeline           # always-listening: VoicePipeline (wake + VAD captures)
    python bench/wake_bench.py --rates              # espeak-ng detection / false-wake rates, both engines

Cost: real-time factor (processing wall time / audio time), CPU seconds per audio second
(process time: every thread, TFLite's included) and resident memory, for each engine on the
*same* audio: pink noise with espeak-ng phrases mixed in (wake phrases among them) when espeak-ng
and sox are installed, else noise only. ``--pipeline`` runs the daemon's path over it: the wake
engine on every chunk, Silero VAD only inside the captures that wakes start (no STT), which is
what "always listening" costs.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from node_agent.voice.audio import SAMPLE_RATE, read_wav  # noqa: E402
from node_agent.voice.wake import MICRO, MICRO_BUILTIN, OPENWAKEWORD, OWW_BUILTIN, WakeDetector  # noqa: E402

ENGINES = (MICRO, OPENWAKEWORD)


def detector_for(engine: str, phrases: list[str], **kw) -> WakeDetector:
    return WakeDetector(engine_overrides={p: engine for p in phrases if p in MICRO_BUILTIN and p in OWW_BUILTIN}, **kw)

CHUNK = 1280 * 2


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def have_tools() -> bool:
    return bool(shutil.which("espeak-ng") and shutil.which("sox"))


def speak(tmp: Path, text: str, voice="en-us", speed=150, pitch=50, pad=(0.5, 1.0)) -> bytes:
    raw, out = tmp / "raw.wav", tmp / "out.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(raw), text], check=True)
    subprocess.run(["sox", str(raw), "-r", "16000", "-c", "1", "-b", "16", str(out), "pad", str(pad[0]), str(pad[1])],
                   check=True)
    return read_wav(out)


def noise(tmp: Path, seconds: float, kind="pinknoise", vol="0.05") -> bytes:
    out = tmp / "noise.wav"
    subprocess.run(["sox", "-n", "-r", "16000", "-c", "1", "-b", "16", str(out), "synth", str(seconds), kind,
                    "vol", vol], check=True)
    return read_wav(out)


def generated_audio(seconds: float) -> bytes:
    if not have_tools():
        import numpy as np

        rng = np.random.default_rng(1)
        return (rng.standard_normal(int(seconds * SAMPLE_RATE)) * 300).astype("<i2").tobytes()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        pcm = bytearray()
        phrases = ["hey jarvis", "what time is it", "the weather is nice today", "alexa", "okay nabu",
                   "what is the weather like in london today"]
        rng = random.Random(1)
        while len(pcm) < seconds * SAMPLE_RATE * 2:
            pcm += speak(tmp, rng.choice(phrases), rng.choice(["en-us", "en", "en-gb", "en-us+f3"]))
        bg = noise(tmp, seconds)
    import numpy as np

    speech = np.frombuffer(bytes(pcm[:len(bg)]), "<i2").astype(np.int32)
    mixed = np.clip(speech + np.frombuffer(bg, "<i2"), -32768, 32767).astype("<i2")
    return mixed.tobytes()


def room_audio(seconds: float) -> bytes:
    """A quiet room: a faint noise floor, an unrelated sentence every 20 s, and one "okay nabu,
    what time is it" a minute -- what an always-listening node mostly hears."""
    import numpy as np

    if not have_tools():
        return generated_audio(seconds)
    total = int(seconds * SAMPLE_RATE)
    mix = np.zeros(total, dtype=np.int32)
    rng = np.random.default_rng(2)
    mix += (rng.standard_normal(total) * 200).astype(np.int32)
    unrelated = ["the weather is nice today", "please pass the salt", "I think we should leave at seven"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for i, start in enumerate(range(10, int(seconds), 20)):
            text = "okay nabu. what time is it" if i % 3 == 1 else unrelated[i % len(unrelated)]
            clip = np.frombuffer(speak(tmp, text, pad=(0.0, 0.0)), "<i2").astype(np.int32)
            at = start * SAMPLE_RATE
            end = min(total, at + len(clip))
            mix[at:end] += clip[:end - at]
    return np.clip(mix, -32768, 32767).astype("<i2").tobytes()


def bench_cost(args) -> None:
    both = sorted(set(MICRO_BUILTIN) & set(OWW_BUILTIN))
    models = both if args.models == "all" else [m.replace("_", " ") for m in args.models.split(",")]
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {os.uname().machine}")
    print(f"RSS before import: {rss_mib():.1f} MiB")
    pcm = room_audio(args.seconds) if args.scene == "room" else generated_audio(args.seconds)
    audio_s = len(pcm) / (2 * SAMPLE_RATE)
    print(f"audio: {args.scene} ({audio_s:.0f} s)")
    for engine in ENGINES:
        t0 = time.perf_counter()
        rss0 = rss_mib()
        det = detector_for(engine, models)
        active, unsupported = det.set_triggers(models)
        det.process(bytes(CHUNK))
        print(f"[{engine}] models {det.models} loaded in {time.perf_counter() - t0:.3f} s; "
              f"RSS +{rss_mib() - rss0:.1f} MiB")
        wall0, cpu0 = time.perf_counter(), time.process_time()
        per_chunk, wakes = [], 0
        for i in range(0, len(pcm), CHUNK):
            c0 = time.perf_counter()
            wakes += len(det.process(pcm[i:i + CHUNK]))
            per_chunk.append(time.perf_counter() - c0)
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        per_chunk.sort()
        print(f"[{engine}] wake ({len(active)} model(s)) over {audio_s:.0f} s of audio: RTF {wall / audio_s:.4f}, "
              f"CPU {cpu / audio_s:.4f} s per audio s, per 80 ms chunk median "
              f"{per_chunk[len(per_chunk) // 2] * 1e3:.2f} ms p99 {per_chunk[int(len(per_chunk) * 0.99)] * 1e3:.2f} ms "
              f"max {per_chunk[-1] * 1e3:.2f} ms; {wakes} detections")
        if args.pipeline:
            bench_pipeline(engine, models, pcm, audio_s)

    if args.vad:
        from node_agent.voice.vad import SileroVad

        vad = SileroVad()
        wall0, cpu0 = time.perf_counter(), time.process_time()
        for i in range(0, len(pcm) - 1023, 1024):
            vad(pcm[i:i + 1024])
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        print(f"silero VAD on every window over {audio_s:.0f} s (not what the pipeline does): RTF {wall / audio_s:.4f}, "
              f"CPU {cpu / audio_s:.4f} s per audio s")
    print(f"RSS now {rss_mib():.1f} MiB, peak {peak_rss_mib():.1f} MiB")


def bench_pipeline(engine: str, models: list[str], pcm: bytes, audio_s: float) -> None:
    """The daemon's always-listening path, without STT: wake on every chunk (worker thread), a
    capture with Silero VAD after each wake."""
    import trio

    from node_agent.voice import BytesSource, VoicePipeline

    async def run():
        async def on_transcript(t):
            pass

        p = VoicePipeline(BytesSource(pcm), on_transcript=on_transcript, detector=detector_for(engine, models))
        p.set_triggers(models)
        p._get_vad()  # loaded before the clock starts, as the daemon does at its first capture
        wall0, cpu0 = time.perf_counter(), time.process_time()
        await p.run()
        return p, time.perf_counter() - wall0, time.process_time() - cpu0

    p, wall, cpu = trio.run(run)
    print(f"[{engine}] always listening (VoicePipeline: wake + VAD in {p.wake_count} captures, no STT) over "
          f"{audio_s:.0f} s: RTF {wall / audio_s:.4f}, CPU {cpu / audio_s:.4f} s per audio s")


def bench_rates(args) -> None:
    if not have_tools():
        sys.exit("--rates needs espeak-ng and sox")
    voices = ["en-us", "en", "en-gb", "en-us+f3", "en+m3", "en-us+f2", "en-gb-scotland", "en-029", "en-us+m7",
              "en-gb-x-rp"]
    speeds, pitches = [120, 150, 180], [30, 50, 70]
    phrases = {p: p for p in sorted(set(MICRO_BUILTIN) & set(OWW_BUILTIN))}
    negatives = ["the weather is nice today", "please turn on the kitchen lights", "what time is it",
                 "I think we should leave at seven", "play some music in the living room", "hey travis",
                 "a lexus", "okay now", "hey my craft", "hey jealous"]
    for engine in ENGINES:
        det = detector_for(engine, list(phrases), threshold=args.threshold)
        det.set_triggers(list(phrases))
        print(f"== {engine}: {det.models}")
        rates_for(det, engine, args, voices, speeds, pitches, phrases, negatives)


def rates_for(det, engine, args, voices, speeds, pitches, phrases, negatives) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        print(f"threshold {args.threshold} (openWakeWord; micro: each model's cutoff); {len(voices)} voices x speeds "
              f"{speeds} x pitches {pitches}")
        for trigger, text in phrases.items():
            fired_on, scores = 0, []
            n = 0
            for voice, speed, pitch in itertools.product(voices, speeds, pitches):
                pcm = speak(tmp, text, voice, speed, pitch, pad=(1.0, 1.5))
                det.reset()
                det.take_peaks()
                hits = [d.trigger for i in range(0, len(pcm), CHUNK) for d in det.process(pcm[i:i + CHUNK])]
                peaks = det.take_peaks()
                scores.append(peaks.get(det.models[trigger]["model"], 0.0))
                fired_on += trigger in hits
                n += 1
            scores.sort()
            at = {th: sum(s >= th for s in scores) for th in (0.3, 0.5, 0.7)}
            print(f"[{engine}] {trigger!r:14} detected {fired_on}/{n} ({fired_on / n:.0%}); peak score median "
                  f"{scores[n // 2]:.3f}, min {scores[0]:.3f}; >=0.3: {at[0.3]}, >=0.5: {at[0.5]}, >=0.7: {at[0.7]}")
        wakes, total_s, worst = 0, 0.0, ("", 0.0)
        per_text = {}
        for text, voice in itertools.product(negatives, voices):
            pcm = speak(tmp, text, voice)
            det.reset()
            det.take_peaks()
            fired = [d for i in range(0, len(pcm), CHUNK) for d in det.process(pcm[i:i + CHUNK])]
            peak = max(det.take_peaks().items(), key=lambda kv: kv[1], default=("", 0.0))
            wakes += len(fired)
            per_text[text] = per_text.get(text, 0) + len(fired)
            total_s += len(pcm) / 32000
            if peak[1] > worst[1]:
                worst = (f"{text!r} [{voice}] -> {peak[0]}", peak[1])
        print(f"[{engine}] negatives: {wakes} false wakes in {len(negatives) * len(voices)} utterances ({total_s:.0f} s); "
              f"by phrase {per_text}; highest score {worst[1]:.3f} for {worst[0]}")
        for kind, vol in (("pinknoise", "0.2"), ("whitenoise", "0.05"), ("brownnoise", "0.3")):
            pcm = noise(tmp, args.seconds, kind, vol)
            det.reset()
            det.take_peaks()
            fired = sum(len(det.process(pcm[i:i + CHUNK])) for i in range(0, len(pcm), CHUNK))
            peak = max(det.take_peaks().values(), default=0.0)
            print(f"[{engine}] {args.seconds:.0f} s of {kind}: {fired} false wakes (highest score {peak:.3f})")


def main() -> None:
    logging.basicConfig(level=logging.ERROR)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=120.0)
    ap.add_argument("--models", default="okay_nabu", help="comma-separated phrases both engines ship, or 'all'")
    ap.add_argument("--vad", action="store_true", help="also time Silero VAD")
    ap.add_argument("--pipeline", action="store_true", help="also run the always-listening path (VoicePipeline)")
    ap.add_argument("--rates", action="store_true", help="espeak-ng detection and false-wake rates instead")
    ap.add_argument("--threshold", type=float, default=0.5)
    ap.add_argument("--scene", choices=("dense", "room"), default="dense",
                    help="dense: phrases back to back over pink noise; room: a quiet room, one wake a minute")
    args = ap.parse_args()
    if args.rates:
        bench_rates(args)
    else:
        bench_cost(args)


if __name__ == "__main__":
    main()
