"""Wake-word detection: OpenClaw's free-text triggers mapped onto the models we actually have.

OpenClaw's gateway owns one global list of wake *phrases* (``voicewake.changed {triggers}``, by
default ``openclaw``, ``claude``, ``computer``); Apple's apps match them with on-device speech
recognition. A keyword model, by contrast, knows exactly one phrase. So we map each trigger, by
its normalised text, to a model: the five bundled with ``pyopen-wakeword`` (``alexa``, ``hey
jarvis``, ``hey mycroft``, ``hey rhasspy``, ``okay nabu``), or a ``<phrase>.tflite`` in a custom
model folder (``hey_computer.tflite`` serves the trigger "hey computer"). A trigger with no model
is *unsupported*: :meth:`WakeDetector.set_triggers` returns it, the pipeline logs it and shows it
in ``status()``. Nothing is silently ignored and nothing "sort of" matches ("jarvis" alone is not
"hey jarvis": the model would not fire on it).

Detection, per 80 ms chunk: the shared feature extractor (mel spectrogram + embedding) yields
embeddings; every active model scores each. A model fires when ``trigger_level`` scores reach
``threshold`` (a score below it takes one back), and then nothing fires for ``refractory_s`` of
*audio* time, so a file is detected the same way at any speed. :meth:`WakeDetector.process` is
blocking CPU work (about 4-5 ms per chunk for features + one model on a desktop x86 core; see
``bench/wake_bench.py``): the pipeline runs it in a worker thread.

``set_triggers`` may be called from the Trio thread while ``process`` runs in a worker: it builds
a new model table and swaps it in one assignment; ``process`` works on the table it started with.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Iterable
from pathlib import Path

import attrs

from .audio import SAMPLE_RATE, SAMPLE_WIDTH

log = logging.getLogger("node_agent.voice.wake")

#: Models shipped inside the pyopen-wakeword wheel, by normalised phrase.
BUILTIN_MODELS: dict[str, str] = {
    "alexa": "alexa",
    "hey jarvis": "hey_jarvis",
    "hey mycroft": "hey_mycroft",
    "hey rhasspy": "hey_rhasspy",
    "okay nabu": "okay_nabu",
}

_TFLITE_MAGIC = b"TFL3"  # FlatBuffer file identifier at bytes 4..8 of every .tflite


def normalize_phrase(text: str) -> str:
    """Fold case, punctuation, ``_``/``-`` separators and "ok" vs "okay".

    ``"Hey, Jarvis!"``, ``"hey_jarvis"`` and ``"HEY-JARVIS"`` all become ``"hey jarvis"``;
    ``"OK Nabu"`` and ``"o.k. nabu"`` become ``"okay nabu"``.
    """
    text = unicodedata.normalize("NFKC", text).casefold()
    text = re.sub(r"\bo\.k\.?", "ok", text)
    text = re.sub(r"[_\-]+", " ", text)
    text = re.sub(r"[^\w\s']+", " ", text)
    words = text.replace("'", "").split()
    words = ["okay" if w == "ok" else w for w in words]
    return " ".join(words)


@attrs.frozen
class WakeModel:
    model_id: str  # "hey_jarvis", or a custom file's stem
    phrase: str  # normalised phrase it detects
    path: Path | None  # None: bundled with pyopen-wakeword


@attrs.frozen
class TriggerResolution:
    #: trigger (as the gateway sent it) -> model
    mapping: dict[str, WakeModel]
    unsupported: list[str]

    @property
    def active(self) -> list[str]:
        return list(self.mapping)


def available_models(custom_model_dir: str | Path | None = None) -> dict[str, WakeModel]:
    """Every phrase we can detect: the bundled models, then ``*.tflite`` files in the custom
    folder (a custom model for a bundled phrase replaces the bundled one). Files that are not
    TFLite models are skipped with a log line."""
    models = {phrase: WakeModel(model_id, phrase, None) for phrase, model_id in BUILTIN_MODELS.items()}
    if custom_model_dir:
        folder = Path(custom_model_dir)
        if not folder.is_dir():
            log.warning("custom wake-word folder %s does not exist", folder)
        else:
            for path in sorted(folder.glob("*.tflite")):
                try:
                    with open(path, "rb") as f:
                        head = f.read(8)
                except OSError as exc:
                    log.warning("skipping wake-word model %s: %s", path, exc)
                    continue
                if head[4:8] != _TFLITE_MAGIC:
                    log.warning("skipping %s: not a TFLite model", path)
                    continue
                phrase = normalize_phrase(path.stem)
                if phrase:
                    models[phrase] = WakeModel(path.stem, phrase, path)
    return models


def resolve_triggers(triggers: Iterable[str], models: dict[str, WakeModel]) -> TriggerResolution:
    """Pure: which triggers have a model, and which do not. Duplicates (after normalising) and
    blank triggers are dropped; the first spelling wins."""
    mapping: dict[str, WakeModel] = {}
    unsupported: list[str] = []
    seen: set[str] = set()
    for trigger in triggers:
        if not isinstance(trigger, str):
            continue
        phrase = normalize_phrase(trigger)
        if not phrase or phrase in seen:
            continue
        seen.add(phrase)
        model = models.get(phrase)
        if model is None:
            unsupported.append(trigger)
        else:
            mapping[trigger] = model
    return TriggerResolution(mapping, unsupported)


@attrs.frozen
class WakeDetection:
    trigger: str  # the gateway's trigger text that this model serves
    model_id: str
    score: float
    audio_time: float  # seconds of audio the detector had seen when it fired


class WakeDetector:
    """openWakeWord models over one shared feature extractor (``pyopen-wakeword``)."""

    def __init__(self, *, threshold: float = 0.5, trigger_level: int = 1, refractory_s: float = 2.0,
                 custom_model_dir: str | Path | None = None, near_miss_ratio: float = 0.5):
        if not 0.0 < threshold <= 1.0:
            raise ValueError("threshold must be in (0, 1]")
        self.threshold = threshold
        self.trigger_level = max(1, int(trigger_level))
        self.refractory_s = refractory_s
        self.custom_model_dir = custom_model_dir
        self.near_miss_ratio = near_miss_ratio
        self._available = available_models(custom_model_dir)
        self._features = None
        # model_id -> (OpenWakeWord, [triggers]); replaced wholesale by set_triggers.
        self._models: dict[str, tuple[object, list[str]]] = {}
        self._resolution = TriggerResolution({}, [])
        self._activations: dict[str, int] = {}
        self._audio_s = 0.0
        self._last_fire: float | None = None
        #: (trigger, score, audio_time) of the best score at or above ``near_miss_ratio *
        #: threshold`` that did *not* fire: the number to look at when a wake word is missed.
        self.last_near_miss: tuple[str, float, float] | None = None
        #: model_id -> best score since :meth:`take_peaks` (for tuning and for benchmarks).
        self.peaks: dict[str, float] = {}

    @property
    def supported_phrases(self) -> list[str]:
        return sorted(self._available)

    @property
    def active(self) -> list[str]:
        return self._resolution.active

    @property
    def unsupported(self) -> list[str]:
        return list(self._resolution.unsupported)

    def set_triggers(self, triggers: Iterable[str]) -> tuple[list[str], list[str]]:
        """Use the models for ``triggers``; returns ``(active, unsupported)`` trigger texts.

        Loads new models (a few ms each, from the wheel or the custom folder); a model that fails
        to load makes its trigger unsupported. Models no longer needed are dropped.
        """
        resolution = resolve_triggers(triggers, self._available)
        old = self._models
        new: dict[str, tuple[object, list[str]]] = {}
        unsupported = list(resolution.unsupported)
        mapping = dict(resolution.mapping)
        for trigger, model in resolution.mapping.items():
            if model.model_id in new:
                new[model.model_id][1].append(trigger)
                continue
            instance = old[model.model_id][0] if model.model_id in old else None
            if instance is None:
                try:
                    instance = self._load(model)
                except Exception as exc:  # noqa: BLE001  (a bad custom model must not stop the rest)
                    log.warning("wake-word model %s failed to load: %s", model.path or model.model_id, exc)
                    unsupported.append(trigger)
                    del mapping[trigger]
                    continue
            new[model.model_id] = (instance, [trigger])
        self._resolution = TriggerResolution(mapping, unsupported)
        self._activations = {model_id: 0 for model_id in new}
        self._models = new
        return self._resolution.active, list(unsupported)

    def _load(self, model: WakeModel):
        from pyopen_wakeword import Model, OpenWakeWord, OpenWakeWordFeatures  # noqa: PLC0415

        if self._features is None:
            features = OpenWakeWordFeatures.from_builtin()
            # pyopen-wakeword "autofills" 8 s of zeros into a fresh extractor, so the first chunk
            # costs ~100 mel and ~90 embedding runs (0.6 s on a desktop core, seconds on a Pi) and
            # stalls the microphone. Starting empty costs nothing: the first score simply comes
            # after ~2 s of real audio (76 mel frames + 16 embeddings).
            if hasattr(features, "new_audio_samples"):
                features.new_audio_samples = 0
            self._features = features
        if model.path is None:
            return OpenWakeWord.from_builtin(Model(model.model_id))
        return OpenWakeWord.from_model(model.path)

    def process(self, chunk: bytes) -> list[WakeDetection]:
        """Feed 16 kHz int16 PCM (any length, typically 80 ms); returns what fired. Blocking."""
        self._audio_s += len(chunk) / (SAMPLE_WIDTH * SAMPLE_RATE)
        models = self._models
        if not models or self._features is None:
            return []
        fired: list[WakeDetection] = []
        now = self._audio_s
        for embedding in self._features.process_streaming(chunk):
            for model_id, (model, triggers) in models.items():
                for score in model.process_streaming(embedding):
                    detection = self._score(model_id, triggers[0], float(score), now)
                    if detection is not None:
                        fired.append(detection)
        return fired

    def take_peaks(self) -> dict[str, float]:
        peaks, self.peaks = self.peaks, {}
        return peaks

    def _score(self, model_id: str, trigger: str, score: float, now: float) -> WakeDetection | None:
        if score > self.peaks.get(model_id, 0.0):
            self.peaks[model_id] = score
        if score < self.threshold:
            self._activations[model_id] = max(0, self._activations.get(model_id, 0) - 1)
            if score >= self.threshold * self.near_miss_ratio and (
                    self.last_near_miss is None or now - self.last_near_miss[2] > 1.0
                    or score > self.last_near_miss[1]):
                self.last_near_miss = (trigger, score, now)
            return None
        level = self._activations.get(model_id, 0) + 1
        self._activations[model_id] = level
        if level < self.trigger_level:
            return None
        if self._last_fire is not None and now - self._last_fire < self.refractory_s:
            return None
        self._last_fire = now
        self._activations[model_id] = 0
        return WakeDetection(trigger=trigger, model_id=model_id, score=score, audio_time=now)

    def reset(self) -> None:
        """Forget what the models have heard (after a wake, so the tail of the phrase and the
        command that follows cannot fire again): each model scores again only after 16 fresh
        embeddings (1.28 s of audio). Cheap. The shared feature extractor keeps its history
        (resetting it is what is expensive, and old mel frames cannot fire anything once the
        models' windows are clear). The refractory clock is kept."""
        for model, _ in self._models.values():
            model.reset()
        self._activations = {model_id: 0 for model_id in self._models}

    def __repr__(self) -> str:
        return (f"WakeDetector(active={self.active!r}, unsupported={self.unsupported!r}, "
                f"threshold={self.threshold}, trigger_level={self.trigger_level})")
