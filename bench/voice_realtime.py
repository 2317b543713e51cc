"""Does the voice pipeline keep real time on a slow CPU? And what does an agent with voice cost in memory?

    python bench/voice_realtime.py --minutes 10 [--quota 25] [--stt pocketsphinx|wyoming|none]
    python bench/voice_realtime.py --rss

Real time (default): the daemon's pipeline (microWakeWord "okay nabu", Silero VAD in captures,
the chosen STT) listens to a quiet room (``bench/wake_bench.room_audio``: noise floor, an
unrelated sentence every 20 s, "okay nabu, what time is it" once a minute), looped for
``--minutes``, delivered by a microphone stand-in built like :class:`PortAudioSource`: a thread
that produces one 80 ms chunk per 80 ms of wall-clock time and hands it to the Trio loop through
the same bounded channel (25 chunks); a chunk that finds the channel full is dropped and
counted. The whole process (its pocketsphinx worker included) is put in a cgroup-v1 ``cpu``
group with ``cfs_quota_us = quota% of cfs_period_us`` and pinned to one core with
``sched_setaffinity``: one core at ``--quota`` percent, the stand-in for a Pi Zero 2. If the
cgroup cannot be written, it says so and runs on one unthrottled core.

``--rss``: starts ``node-agent run`` with voice on (micro + VAD + pocketsphinx, reading a WAV
with one wake and a command) against a closed port (no gateway needed: the voice pipeline runs
regardless) and reports the resident memory of the agent and of its pocketsphinx worker, once
the command has been transcribed: twice on one state directory, the first start (which cuts the
pocketsphinx dictionary to its language model's words and keeps it there) and the next one
(which finds it; every later start is this one).

Prints; asserts nothing.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import trio  # noqa: E402

from node_agent.config.voice import VoiceSettings  # noqa: E402
from node_agent.voice import VoicePipeline  # noqa: E402
from node_agent.voice.audio import CHUNK_SAMPLES  # noqa: E402
from node_agent.voice.build import build_detector, build_stt, preload  # noqa: E402

CGROUP = Path("/sys/fs/cgroup/cpu")
CHUNK_BYTES = CHUNK_SAMPLES * 2
CHUNK_S = CHUNK_SAMPLES / 16000


def throttle(quota_pct: int) -> str:
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    group = CGROUP / f"node-agent-bench-{os.getpid()}"
    try:
        group.mkdir()
        period = int((group / "cpu.cfs_period_us").read_text())
        (group / "cpu.cfs_quota_us").write_text(str(period * quota_pct // 100))
        (group / "cgroup.procs").write_text(str(os.getpid()))
    except OSError as exc:
        return f"NOT throttled (cgroup {group} not writable: {exc}); pinned to one core"
    return f"one core, cgroup v1 cpu.cfs_quota_us={period * quota_pct // 100} / cfs_period_us={period} ({quota_pct} %)"


class PacedMicrophone:
    """A microphone stand-in with PortAudio's hand-off: chunks on a wall-clock schedule from a
    thread, a bounded channel, drops counted."""

    name = "paced-microphone"

    def __init__(self, pcm: bytes, seconds: float, max_queued_chunks: int = 25):
        self.pcm = pcm
        self.seconds = seconds
        self.max_queued_chunks = max_queued_chunks
        self.dropped_chunks = 0
        self.delivered = 0
        self.max_lag_s = 0.0

    def open(self):
        source = self

        class Frames:
            async def __aenter__(self_inner):
                send, recv = trio.open_memory_channel[bytes](source.max_queued_chunks)
                token = trio.lowlevel.current_trio_token()
                stop = threading.Event()

                def deliver(data: bytes) -> None:
                    try:
                        send.send_nowait(data)
                    except trio.WouldBlock:
                        source.dropped_chunks += 1

                def produce() -> None:
                    start = time.monotonic()
                    n = int(source.seconds / CHUNK_S)
                    for i in range(n):
                        due = start + (i + 1) * CHUNK_S
                        delay = due - time.monotonic()
                        if delay > 0:
                            time.sleep(delay)
                        source.max_lag_s = max(source.max_lag_s, -delay)
                        offset = (i * CHUNK_BYTES) % (len(source.pcm) - CHUNK_BYTES)
                        try:
                            token.run_sync_soon(deliver, source.pcm[offset:offset + CHUNK_BYTES])
                        except trio.RunFinishedError:
                            return
                        if stop.is_set():
                            return
                    token.run_sync_soon(send.close)

                self_inner.stop = stop
                self_inner.thread = threading.Thread(target=produce, daemon=True)
                self_inner.thread.start()
                self_inner.recv = recv
                return self_inner

            def __aiter__(self_inner):
                return self_inner

            async def __anext__(self_inner):
                try:
                    chunk = await self_inner.recv.receive()
                except trio.EndOfChannel:
                    raise StopAsyncIteration from None
                source.delivered += 1
                return chunk

            async def __aexit__(self_inner, *exc):
                self_inner.stop.set()

        return Frames()


async def realtime(args, pcm: bytes) -> None:
    settings = VoiceSettings()
    if args.stt == "wyoming":
        from tests.support.wyoming_servers import AsrServer

        server = AsrServer(text="what time is it").__enter__()
        stt = build_stt(settings, engine=server.uri)
    else:
        stt = build_stt(settings, engine=args.stt)
    await preload(stt)
    mic = PacedMicrophone(pcm, args.minutes * 60)
    transcripts = []

    async def on_transcript(t):
        transcripts.append(t.text)

    pipeline = VoicePipeline(mic, on_transcript=on_transcript, stt=stt, detector=build_detector(settings))
    pipeline.set_triggers(["okay nabu"])
    cpu0, wall0 = time.process_time(), time.monotonic()
    await pipeline.run()
    wall = time.monotonic() - wall0
    print(f"{args.minutes:g} min of audio ({mic.delivered} chunks delivered) in {wall:.0f} s; STT {args.stt}; "
          f"wakes {pipeline.wake_count}, transcripts {len(transcripts)}; DROPPED CHUNKS {mic.dropped_chunks}; "
          f"producer's worst lag {mic.max_lag_s * 1000:.0f} ms; agent-process CPU {time.process_time() - cpu0:.1f} s "
          f"({(time.process_time() - cpu0) / wall:.3f} of a core)")
    if transcripts:
        print(f"  e.g. heard: {transcripts[0]!r}")
    aclose = getattr(stt, "aclose", None)
    if aclose:
        await aclose()


def rss(args) -> None:
    from tests.support import speech

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        wav = speech.save(tmp / "session.wav", speech.session(
            speech.silence(2.0), speech.speak("okay nabu", pad_before=0, pad_after=0.3),
            speech.speak("what time is it", pad_before=0, pad_after=2.0)))
        config = tmp / "voice.toml"
        config.write_text(f'[voice]\nenabled = true\nwav = "{wav}"\nlocal_triggers = ["okay nabu"]\n')
        for start in ("first start", "next start"):
            _rss_once(tmp, config, start)


def _rss_once(tmp: Path, config: Path, label: str) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tmp / f"agent-{label.split()[0]}.log"
    agent = subprocess.Popen([str(Path(sys.executable).parent / "node-agent"), "run", "--state-dir", str(tmp / "state"),
                              "--secret-backend", "memory", "--gateway", f"ws://127.0.0.1:{port}", "--config",
                              str(config), "--log-level", "info"], stdout=log.open("wb"), stderr=subprocess.STDOUT,
                             env={**os.environ, "OPENCLAW_GATEWAY_TOKEN": "x" * 32})
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and "transcript not delivered" not in log.read_text(errors="replace"):
            time.sleep(0.5)
        time.sleep(2)
        children = [int(p.name) for p in Path("/proc").iterdir()
                    if p.name.isdigit() and _ppid(int(p.name)) == agent.pid]
        agent_kib = _rss_kib(agent.pid)
        worker_kib = sum(_rss_kib(pid) for pid in children)
        print(f"{label}: agent RSS {agent_kib / 1024:.1f} MiB + pocketsphinx worker {worker_kib / 1024:.1f} MiB = "
              f"{(agent_kib + worker_kib) / 1024:.1f} MiB (micro + VAD + pocketsphinx loaded; the command was "
              f"transcribed: {'transcript not delivered' in log.read_text(errors='replace')})")
    finally:
        agent.terminate()
        agent.wait(10)


def _ppid(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def main() -> None:
    logging.basicConfig(level=logging.ERROR)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--quota", type=int, default=25, help="percent of one core (cgroup cpu quota)")
    ap.add_argument("--stt", default="pocketsphinx", choices=("pocketsphinx", "wyoming", "none"))
    ap.add_argument("--rss", action="store_true", help="measure an agent's resident memory with voice on instead")
    args = ap.parse_args()
    if args.rss:
        rss(args)
        return
    from bench.wake_bench import room_audio

    pcm = room_audio(180)
    print(throttle(args.quota))
    trio.run(realtime, args, pcm)


if __name__ == "__main__":
    main()
