"""Wake -> transcript sent, for a 2 s command: pocketsphinx on the node vs a Wyoming server on loopback.

    python bench/voice_latency.py [--runs 5]

Each run plays "okay nabu" then a ~2 s command (espeak-ng over a room's noise floor) from a
source paced like a microphone (real time), through the daemon's pipeline (microWakeWord,
Silero VAD, 1.0 s of silence ends the command) into the engine, and times, on the wall clock:

* wake -> sent: from the wake detection to ``on_transcript`` (what a person waits, minus the
  command itself: it includes speaking the command and the 1 s end-of-speech silence);
* end -> sent: from the capture's end to ``on_transcript``: the engine's own tail, the part
  streaming shortens (pocketsphinx has decoded most of it by then; the Wyoming server has had
  the audio as it was spoken).

The Wyoming server is ``tests/support/wyoming_servers.AsrServer`` (built on the wyoming library)
answering at once, so its figure is the protocol and streaming cost, not a model's. Prints;
asserts nothing.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import trio  # noqa: E402

from node_agent.config.voice import VoiceSettings  # noqa: E402
from node_agent.voice import BytesSource, VoicePipeline  # noqa: E402
from node_agent.voice.build import build_detector  # noqa: E402
from node_agent.voice.stt_pocketsphinx import PocketsphinxSTT  # noqa: E402
from node_agent.voice.stt_wyoming import WyomingSTT  # noqa: E402
from tests.support import speech  # noqa: E402
from tests.support.wyoming_servers import AsrServer  # noqa: E402

COMMAND = "what is the weather like in london today"


class TimedDetector:
    def __init__(self, inner):
        self.inner = inner
        self.wakes: list[float] = []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def set_triggers(self, triggers):
        return self.inner.set_triggers(triggers)

    def process(self, chunk):
        found = self.inner.process(chunk)
        if found:
            self.wakes.append(time.monotonic())
        return found

    def reset(self):
        self.inner.reset()


async def one_run(pcm: bytes, stt) -> tuple[float, float, str, float]:
    detector = TimedDetector(build_detector(VoiceSettings()))
    sent: list[tuple[float, str]] = []

    async def on_transcript(t):
        sent.append((time.monotonic(), t.text))

    pipeline = VoicePipeline(BytesSource(pcm, realtime=True), on_transcript=on_transcript, stt=stt, detector=detector)
    pipeline.set_triggers(["okay nabu"])
    pipeline._get_vad()
    ended: list[float] = []
    original_end = pipeline._end

    def end(cap, reason):
        if cap.kind == "wake" and not ended:
            ended.append(time.monotonic())
        original_end(cap, reason)

    pipeline._end = end
    await pipeline.run()
    if not sent or not detector.wakes:
        raise SystemExit(f"no transcript (wakes {len(detector.wakes)}); the wake word was missed")
    speech_s = pipeline.last_result["audioS"]
    return sent[0][0] - detector.wakes[0], sent[0][0] - ended[0], sent[0][1], speech_s


def main() -> None:
    logging.basicConfig(level=logging.ERROR)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    if not speech.have_tools():
        raise SystemExit("needs espeak-ng and sox")
    command = speech.speak(COMMAND, speed=150, pad_before=0.2, pad_after=0.0)
    pcm = speech.session(speech.silence(1.5), speech.speak("okay nabu", pad_before=0, pad_after=0), command,
                         speech.silence(2.0))
    print(f"command: {COMMAND!r}, {len(command) / 32000:.2f} s of speech; {args.runs} runs each, real time")
    local = PocketsphinxSTT()
    trio.run(local.load)
    with AsrServer(text=COMMAND) as server:
        for name, stt in (("pocketsphinx", local), (f"wyoming ({server.uri}, answers at once)", WyomingSTT(server.uri))):
            rows = [trio.run(one_run, pcm, stt) for _ in range(args.runs)]
            wake = statistics.median(r[0] for r in rows)
            tail = statistics.median(r[1] for r in rows)
            print(f"{name}: wake -> transcript sent median {wake:.3f} s (min {min(r[0] for r in rows):.3f}, "
                  f"max {max(r[0] for r in rows):.3f}); capture end -> sent median {tail * 1000:.0f} ms; "
                  f"captured {rows[0][3]:.2f} s; heard {rows[0][2]!r}")


if __name__ == "__main__":
    main()
