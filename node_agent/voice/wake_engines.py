"""The wake-word engines behind :class:`~.wake.WakeDetector`: one small interface, three engines.

An engine loads models (:meth:`load` returns its own handle for one), turns a chunk of 16 kHz
int16 PCM into scores for the handles it is given (:meth:`process` yields ``(model_id, score,
cutoff)``; ``cutoff`` None means "use the detector's threshold"), and forgets what the models
heard (:meth:`reset`). Each keeps its shared feature extractor across resets; only the models'
windows are cleared. Everything here is blocking CPU work, called by the pipeline's audio task
one call at a time: on the Trio thread when every active engine is ``light`` (a chunk costs
less than the hop to a worker thread and back), in a worker thread otherwise. The models a call
works on are the ones it was handed.

* :class:`MicroEngine` -- microWakeWord: the TFLite Micro audio frontend (10 ms feature frames)
  and one small streaming model per phrase, run every ``stride`` frames (30 ms). The score is
  the model's sliding-window mean probability; the cutoff its manifest's.
* :class:`OpenWakeWordEngine` -- openWakeWord: a mel spectrogram and a 96-dim embedding model
  shared by every phrase, then one classifier per phrase, every 80 ms.
* :class:`KeywordEngine` -- pocketsphinx keyphrase search over the triggers' words (experimental).
  One decoder for all keyphrases, rebuilt when the set changes, with a dictionary of just those
  words (the acoustic model and a tiny dictionary cost ~6 MiB; the full one ~37 MiB). A hit is
  reported with score 1.0.

The wheels are imported here and nowhere else in :mod:`.wake`; a missing one raises
:class:`~.errors.VoiceUnavailable` naming the ``voice`` extra.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from .errors import VoiceUnavailable
from .wake import KEYWORD, MICRO, OPENWAKEWORD, WakeModel

log = logging.getLogger("node_agent.voice.wake")

Score = tuple[str, float, "float | None"]

_EXTRA_HINT = "install the voice extra: pip install 'node-agent[voice]'"


def _require(module: str, what: str) -> Any:
    import importlib  # noqa: PLC0415

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise VoiceUnavailable(f"{what} is not installed ({module})", hint=_EXTRA_HINT) from exc


def create(name: str, *, keyword_threshold: float = 1e-20) -> Any:
    if name == MICRO:
        return MicroEngine()
    if name == OPENWAKEWORD:
        return OpenWakeWordEngine()
    if name == KEYWORD:
        return KeywordEngine(threshold=keyword_threshold)
    raise ValueError(f"unknown wake engine {name!r}")


# --- microWakeWord ------------------------------------------------------------------------------


class _MicroModel:
    """A microWakeWord model and how many feature frames it has been fed since its last inference:
    ``process_streaming_prob`` answers 0.0 between inferences, which is not a score."""

    def __init__(self, model: Any):
        self.model = model
        self.pending = 0


class MicroEngine:
    name = MICRO
    #: ~0.3 ms per 80 ms chunk and model on a desktop core (p99 0.6 ms; a few ms on a Pi Zero 2):
    #: less than a worker-thread round trip, which made up a third of always listening's CPU.
    light = True

    def __init__(self) -> None:
        self._lib = _require("pymicro_wakeword", "microWakeWord")
        self._features = self._lib.MicroWakeWordFeatures()

    def load(self, model: WakeModel) -> _MicroModel:
        if model.path is None:
            return _MicroModel(self._lib.MicroWakeWord.from_builtin(self._lib.Model(model.model_id)))
        return _MicroModel(self._lib.MicroWakeWord.from_config(model.path))

    def process(self, chunk: bytes, handles: Mapping[str, _MicroModel]) -> Iterator[Score]:
        for features in self._features.process_streaming(chunk):
            for model_id, handle in handles.items():
                prob = handle.model.process_streaming_prob(features)
                handle.pending += 1
                if handle.pending < handle.model.stride or prob is None:
                    continue
                handle.pending = 0
                yield model_id, float(prob), float(handle.model.probability_cutoff)

    def reset(self, handles: Iterable[_MicroModel]) -> None:
        for handle in handles:
            handle.model.reset()  # reloads the interpreter (~1 ms): its streaming state lives there
            handle.pending = 0


# --- openWakeWord -------------------------------------------------------------------------------


class OpenWakeWordEngine:
    name = OPENWAKEWORD
    #: ~7 ms per chunk, 30 ms at worst: in a worker thread, off the loop that carries the link.
    light = False

    def __init__(self) -> None:
        self._lib = _require("pyopen_wakeword", "openWakeWord")
        features = self._lib.OpenWakeWordFeatures.from_builtin()
        # pyopen-wakeword "autofills" 8 s of zeros into a fresh extractor, so the first chunk
        # costs ~100 mel and ~90 embedding runs (0.6 s on a desktop core, seconds on a Pi) and
        # stalls the microphone. Starting empty costs nothing: the first score simply comes
        # after ~2 s of real audio (76 mel frames + 16 embeddings).
        if hasattr(features, "new_audio_samples"):
            features.new_audio_samples = 0
        self._features = features

    def load(self, model: WakeModel) -> Any:
        if model.path is None:
            return self._lib.OpenWakeWord.from_builtin(self._lib.Model(model.model_id))
        return self._lib.OpenWakeWord.from_model(model.path)

    def process(self, chunk: bytes, handles: Mapping[str, Any]) -> Iterator[Score]:
        for embedding in self._features.process_streaming(chunk):
            for model_id, handle in handles.items():
                for score in handle.process_streaming(embedding):
                    yield model_id, float(score), None

    def reset(self, handles: Iterable[Any]) -> None:
        for handle in handles:
            handle.reset()


# --- pocketsphinx keyphrase search (experimental) -----------------------------------------------


def _dictionary_path() -> str:
    pocketsphinx = _require("pocketsphinx", "pocketsphinx")
    return pocketsphinx.get_model_path("en-us/cmudict-en-us.dict")


@functools.lru_cache(maxsize=32)
def _pronunciations(words: frozenset[str]) -> dict[str, str]:
    """ARPAbet phones of ``words`` from the bundled dictionary (first pronunciation of each).
    One pass over the 3 MB file; never kept whole in memory."""
    found: dict[str, str] = {}
    with open(_dictionary_path(), encoding="utf-8") as f:
        for line in f:
            word, _, phones = line.rstrip("\n").partition(" ")
            if word in words and word not in found:
                found[word] = phones.strip()
    return found


def keyphrase_lookup() -> Any:
    """A callable phrase -> keyphrase (words the dictionary has) or None. A word the dictionary
    lacks may be two words run together: OpenClaw's "openclaw" is spotted as "open claw"."""
    _dictionary_path()  # fail now (VoiceUnavailable) rather than at the first trigger

    def lookup(phrase: str) -> str | None:
        words = phrase.split()
        if not words or not all(re.fullmatch(r"[a-z']+", w) for w in words):
            return None
        splits = {w: [(w[:i], w[i:]) for i in range(2, len(w) - 1)] for w in words}
        wanted = frozenset(words) | {part for pairs in splits.values() for pair in pairs for part in pair}
        known = _pronunciations(wanted)
        spoken: list[str] = []
        for word in words:
            if word in known:
                spoken.append(word)
                continue
            pair = next((p for p in splits[word] if p[0] in known and p[1] in known), None)
            if pair is None:
                return None
            spoken.extend(pair)
        return " ".join(spoken)

    return lookup


class KeywordEngine:
    name = KEYWORD
    light = False

    def __init__(self, *, threshold: float = 1e-20):
        self._lib = _require("pocketsphinx", "pocketsphinx")
        self.threshold = threshold
        self._decoder: Any = None
        self._built: frozenset[str] = frozenset()

    def load(self, model: WakeModel) -> str:
        keyphrase = model.keyphrase or model.model_id
        missing = set(keyphrase.split()) - set(_pronunciations(frozenset(keyphrase.split())))
        if missing:
            raise ValueError(f"the pocketsphinx dictionary has no {', '.join(sorted(missing))}")
        return keyphrase

    def _build(self, keyphrases: frozenset[str]) -> None:
        words = frozenset(w for k in keyphrases for w in k.split())
        phones = _pronunciations(words)
        with tempfile.TemporaryDirectory(prefix="node-agent-kws-") as tmp:
            dict_path, kws_path = os.path.join(tmp, "words.dict"), os.path.join(tmp, "phrases.kws")
            with open(dict_path, "w", encoding="utf-8") as f:
                f.writelines(f"{w} {phones[w]}\n" for w in sorted(words))
            with open(kws_path, "w", encoding="utf-8") as f:
                f.writelines(f"{k} /{self.threshold:g}/\n" for k in sorted(keyphrases))
            self._decoder = self._lib.Decoder(loglevel="ERROR", dict=dict_path, lm=None, kws=kws_path)
        self._decoder.start_utt()
        self._built = keyphrases

    def process(self, chunk: bytes, handles: Mapping[str, str]) -> Iterator[Score]:
        keyphrases = frozenset(handles.values())
        if keyphrases != self._built:
            self._build(keyphrases)
        self._decoder.process_raw(chunk)
        hyp = self._decoder.hyp()
        if hyp is None:
            return
        heard = " ".join(hyp.hypstr.split())
        self._restart()
        for model_id, keyphrase in handles.items():
            if f" {keyphrase} " in f" {heard} ":
                yield model_id, 1.0, 0.5

    def _restart(self) -> None:
        self._decoder.end_utt()
        self._decoder.start_utt()

    def reset(self, handles: Iterable[str]) -> None:
        if self._decoder is not None:
            self._restart()
