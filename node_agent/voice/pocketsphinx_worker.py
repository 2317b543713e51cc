"""The pocketsphinx decoder in a process of its own, speaking Wyoming ASR on stdin/stdout.

Why a process: pocketsphinx's ``process_raw`` holds the GIL while it decodes (measured: a Python
thread beside a 10 s decode got 0.1 % of its usual speed), so in the agent's process every other
thread -- the Trio loop reading the microphone, the wake engines, the VAD -- would stall for as
long as each chunk takes to decode, and a slow board would drop audio. Here it has a core's
scheduler slot to itself. Why Wyoming: it is the protocol the node already speaks to ASR
servers, so the agent's client (:mod:`.stt_wyoming`) drives this worker exactly like a remote
one; only the transport (a pipe) and the lifetime (one long connection) differ.

Blocking and single-threaded on purpose: the library's own ``read_event``/``write_event`` on the
pipes. It loads the model before answering the first ``describe`` (so the agent knows when it is
ready), then handles one utterance at a time: ``transcribe`` / ``audio-start`` start it, each
``audio-chunk`` is decoded as it arrives, ``audio-stop`` answers ``transcript``. End of input
ends the worker. Run as ``python -m node_agent.voice.pocketsphinx_worker`` with settings as JSON
in argv[1] (``hmm``, ``lm``, ``dict``..., and ``pruned_dict_dir``: load the wheel's model with
the dictionary cut to its language model's words, kept there -- :mod:`.pocketsphinx_dict`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    from pocketsphinx import Decoder
    from wyoming.asr import Transcript
    from wyoming.audio import AudioChunk, AudioStart, AudioStop
    from wyoming.error import Error
    from wyoming.event import read_event, write_event
    from wyoming.info import AsrModel, AsrProgram, Attribution, Describe, Info

    config = json.loads(argv[1]) if len(argv) > 1 else {}
    cache_dir = config.pop("pruned_dict_dir", None)
    if cache_dir is not None:
        from pocketsphinx import Config

        from .pocketsphinx_dict import pruned_dictionary

        defaults = Config()
        config["dict"], how = pruned_dictionary(Path(cache_dir), defaults["dict"], defaults["lm"])
        if how.startswith("full"):  # the agent's log: the worker's stderr is its own
            print(f"pocketsphinx worker: the full dictionary ({how[6:]})", file=sys.stderr, flush=True)
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    decoder = Decoder(loglevel="ERROR", **config)
    attribution = Attribution(name="CMU Sphinx", url="https://github.com/cmusphinx/pocketsphinx")
    info = Info(asr=[AsrProgram(
        name="pocketsphinx", attribution=attribution, installed=True, description="node-agent's local engine",
        version=None, models=[AsrModel(name="en-us", attribution=attribution, installed=True, description=None,
                                       version=None, languages=["en"])])])
    in_utterance = False
    while True:
        event = read_event(stdin)
        if event is None:
            return 0
        try:
            if Describe.is_type(event.type):
                write_event(info.event(), stdout)
            elif AudioStart.is_type(event.type):
                if event.data.get("rate") != 16000 or event.data.get("width") != 2 or event.data.get("channels") != 1:
                    write_event(Error(text="pocketsphinx wants 16 kHz 16-bit mono", code="format").event(), stdout)
                    continue
                if in_utterance:
                    decoder.end_utt()
                decoder.start_utt()
                in_utterance = True
            elif AudioChunk.is_type(event.type) and in_utterance and event.payload:
                decoder.process_raw(event.payload, False, False)
            elif AudioStop.is_type(event.type) and in_utterance:
                decoder.end_utt()
                in_utterance = False
                hyp = decoder.hyp()
                write_event(Transcript(text=" ".join(hyp.hypstr.split()) if hyp else "").event(), stdout)
        except RuntimeError as exc:  # the decoder's own failures: say so, stay up
            in_utterance = False
            write_event(Error(text=f"pocketsphinx: {exc}", code="decoder").event(), stdout)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
