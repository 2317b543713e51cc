"""Wake-word detection: OpenClaw's free-text triggers mapped onto the models we actually have.

OpenClaw's gateway owns one global list of wake *phrases* (``voicewake.changed {triggers}``, by
default ``openclaw``, ``claude``, ``computer``); Apple's apps match them with on-device speech
recognition. A keyword model, by contrast, knows exactly one phrase. So each trigger is mapped,
by its normalised text, to one model of one *engine* (:mod:`.wake_engines`):

* ``micro`` -- microWakeWord (``pymicro-wakeword``): ``alexa``, ``hey jarvis``, ``hey mycroft``,
  ``okay nabu`` ship in the wheel. The default for those phrases: ~0.006 CPU-s per audio second,
  a tenth of openWakeWord (``bench/wake_bench.py``). A custom ``<phrase>.tflite`` with its
  microWakeWord manifest ``<phrase>.json`` beside it is a micro model too.
* ``openwakeword`` -- openWakeWord (``pyopen-wakeword``): the same four plus ``hey rhasspy``; a
  custom ``<phrase>.tflite`` without a manifest. ``engine_overrides`` picks it for a phrase both
  ship (``{"hey jarvis": "openwakeword"}``: micro's model misses synthetic "hey jarvis").
* ``keyword`` -- experimental, off unless ``keyword_spotting``: pocketsphinx keyphrase search for
  a trigger no model covers whose words its dictionary spells (OpenClaw's defaults). Its
  false-accept rate is much higher than a trained model's (``voice test`` measures it).

A trigger with no model is *unsupported*: :meth:`WakeDetector.set_triggers` returns it, the
pipeline logs it and shows it in ``status()``. Nothing is silently ignored and nothing "sort of"
matches ("jarvis" alone is not "hey jarvis": the model would not fire on it).

Detection: each engine turns a chunk into scores per model (openWakeWord every 80 ms, micro every
30 ms); a model fires when ``trigger_level`` consecutive-ish scores reach its threshold (a score
below takes one back), and then nothing fires for ``refractory_s`` of *audio* time, so a file is
detected the same way at any speed. The threshold is ``threshold`` for openWakeWord and the
model's own tuned cutoff for micro (its manifest's ``probability_cutoff``). :meth:`process` is
blocking CPU work: the pipeline runs it in a worker thread.

``set_triggers`` may be called from the Trio thread while ``process`` runs in a worker: it builds
a new model table and swaps it in one assignment; ``process`` works on the table it started with.
"""

from __future__ import annotations

import json
import logging
import re
import unicodedata
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs

from .audio import SAMPLE_RATE, SAMPLE_WIDTH

log = logging.getLogger("node_agent.voice.wake")

MICRO = "micro"
OPENWAKEWORD = "openwakeword"
KEYWORD = "keyword"
ENGINES = (MICRO, OPENWAKEWORD, KEYWORD)

#: Models shipped inside the pymicro-wakeword wheel, by normalised phrase.
MICRO_BUILTIN: dict[str, str] = {
    "alexa": "alexa",
    "hey jarvis": "hey_jarvis",
    "hey mycroft": "hey_mycroft",
    "okay nabu": "okay_nabu",
}
#: Models shipped inside the pyopen-wakeword wheel, by normalised phrase.
OWW_BUILTIN: dict[str, str] = {
    "alexa": "alexa",
    "hey jarvis": "hey_jarvis",
    "hey mycroft": "hey_mycroft",
    "hey rhasspy": "hey_rhasspy",
    "okay nabu": "okay_nabu",
}
#: Every phrase a wheel ships a model for (kept under its old name for callers and benchmarks).
BUILTIN_MODELS: dict[str, str] = {**OWW_BUILTIN, **MICRO_BUILTIN}

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
    engine: str  # MICRO, OPENWAKEWORD or KEYWORD
    model_id: str  # "hey_jarvis", a custom file's stem, or the spoken keyphrase
    phrase: str  # normalised phrase it detects
    path: Path | None = None  # None: bundled with the engine's wheel (or a keyphrase)
    keyphrase: str | None = None  # KEYWORD only: the dictionary words it listens for


@attrs.frozen
class TriggerResolution:
    #: trigger (as the gateway sent it) -> model
    mapping: dict[str, WakeModel]
    unsupported: list[str]

    @property
    def active(self) -> list[str]:
        return list(self.mapping)


def _custom_models(folder: Path) -> dict[str, WakeModel]:
    found: dict[str, WakeModel] = {}
    if not folder.is_dir():
        log.warning("custom wake-word folder %s does not exist", folder)
        return found
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
        if not phrase:
            continue
        manifest = path.with_suffix(".json")
        if manifest.is_file() and _is_micro_manifest(manifest):
            found[phrase] = WakeModel(MICRO, path.stem, phrase, manifest)
        else:
            found[phrase] = WakeModel(OPENWAKEWORD, path.stem, phrase, path)
    return found


def _is_micro_manifest(path: Path) -> bool:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        log.warning("ignoring wake-word manifest %s: %s", path, exc)
        return False
    return isinstance(data, dict) and data.get("type") == "micro" and isinstance(data.get("micro"), dict)


def available_models(custom_model_dir: str | Path | None = None, *,
                     engine_overrides: Mapping[str, str] | None = None) -> dict[str, WakeModel]:
    """Every phrase a trained model can detect, and the model chosen for it: a custom model
    first, then the engine ``engine_overrides`` names for the phrase, then micro, then
    openWakeWord. Files that are not TFLite models are skipped with a log line."""
    overrides = {normalize_phrase(k): v for k, v in (engine_overrides or {}).items()}
    models: dict[str, WakeModel] = {}
    for phrase in sorted(set(MICRO_BUILTIN) | set(OWW_BUILTIN)):
        candidates = {}
        if phrase in MICRO_BUILTIN:
            candidates[MICRO] = WakeModel(MICRO, MICRO_BUILTIN[phrase], phrase)
        if phrase in OWW_BUILTIN:
            candidates[OPENWAKEWORD] = WakeModel(OPENWAKEWORD, OWW_BUILTIN[phrase], phrase)
        wanted = overrides.get(phrase)
        models[phrase] = candidates.get(wanted) or candidates.get(MICRO) or candidates[OPENWAKEWORD]
    if custom_model_dir:
        models.update(_custom_models(Path(custom_model_dir)))
    return models


def resolve_triggers(triggers: Iterable[str], models: Mapping[str, WakeModel],
                     keyword: Any = None) -> TriggerResolution:
    """Pure: which triggers have a model, and which do not. Duplicates (after normalising) and
    blank triggers are dropped; the first spelling wins. ``keyword`` (a callable phrase ->
    keyphrase or None) covers what no trained model does, when keyword spotting is on."""
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
        if model is None and keyword is not None:
            keyphrase = keyword(phrase)
            if keyphrase:
                model = WakeModel(KEYWORD, keyphrase, phrase, keyphrase=keyphrase)
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
    engine: str = OPENWAKEWORD


@attrs.define
class _Loaded:
    model: WakeModel
    handle: Any  # the engine's own object for this model
    triggers: list[str]


class WakeDetector:
    """Every active trigger's model, over the engines that run them (:mod:`.wake_engines`).

    ``engines`` maps an engine name to a factory of an engine object (tests pass scripted
    ones); by default the real engines, created when their first model is loaded.
    ``keyword_lookup`` (phrase -> keyphrase or None) says which phrases keyword spotting can
    listen for; by default pocketsphinx's dictionary decides.
    """

    def __init__(self, *, threshold: float = 0.5, trigger_level: int = 1, refractory_s: float = 2.0,
                 custom_model_dir: str | Path | None = None, near_miss_ratio: float = 0.5,
                 engine_overrides: Mapping[str, str] | None = None, keyword_spotting: bool = False,
                 keyword_threshold: float = 1e-20, engines: Mapping[str, Any] | None = None,
                 keyword_lookup: Any = None):
        if not 0.0 < threshold <= 1.0:
            raise ValueError("threshold must be in (0, 1]")
        for phrase, engine in (engine_overrides or {}).items():
            if engine not in (MICRO, OPENWAKEWORD):
                raise ValueError(f"wake engine for {phrase!r} must be {MICRO!r} or {OPENWAKEWORD!r}, not {engine!r}")
        self.threshold = threshold
        self.trigger_level = max(1, int(trigger_level))
        self.refractory_s = refractory_s
        self.custom_model_dir = custom_model_dir
        self.near_miss_ratio = near_miss_ratio
        self.keyword_spotting = keyword_spotting
        self.keyword_threshold = keyword_threshold
        self._available = available_models(custom_model_dir, engine_overrides=engine_overrides)
        self._factories = dict(engines) if engines is not None else None
        self._engines: dict[str, Any] = {}
        self._keyword_lookup: Any = keyword_lookup
        # engine name -> {model_id: _Loaded}; replaced wholesale by set_triggers.
        self._tables: dict[str, dict[str, _Loaded]] = {}
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
    def phrase_engines(self) -> dict[str, str]:
        """Normalised phrase -> the engine that would serve it (for ``status`` and ``voice test``)."""
        return {phrase: model.engine for phrase, model in sorted(self._available.items())}

    @property
    def active(self) -> list[str]:
        return self._resolution.active

    @property
    def unsupported(self) -> list[str]:
        return list(self._resolution.unsupported)

    @property
    def models(self) -> dict[str, dict[str, str]]:
        """Active trigger -> ``{engine, model}``, for ``status``."""
        return {trigger: {"engine": m.engine, "model": m.model_id} for trigger, m in self._resolution.mapping.items()}

    def set_triggers(self, triggers: Iterable[str]) -> tuple[list[str], list[str]]:
        """Use the models for ``triggers``; returns ``(active, unsupported)`` trigger texts.

        Loads new models (a few ms each, from the wheel or the custom folder); a model that fails
        to load -- or whose engine is not installed -- makes its trigger unsupported, with a log
        line saying why. Models no longer needed are dropped.
        """
        keyword = self._keyword_phrase if self.keyword_spotting else None
        resolution = resolve_triggers(triggers, self._available, keyword)
        old = self._tables
        new: dict[str, dict[str, _Loaded]] = {}
        unsupported = list(resolution.unsupported)
        mapping = dict(resolution.mapping)
        for trigger, model in resolution.mapping.items():
            table = new.setdefault(model.engine, {})
            if model.model_id in table:
                table[model.model_id].triggers.append(trigger)
                continue
            previous = old.get(model.engine, {}).get(model.model_id)
            if previous is not None and previous.model == model:
                table[model.model_id] = _Loaded(model, previous.handle, [trigger])
                continue
            try:
                handle = self._engine(model.engine).load(model)
            except Exception as exc:  # noqa: BLE001  (a bad custom model must not stop the rest)
                log.warning("wake-word model %s (%s) failed to load: %s", model.path or model.model_id, model.engine, exc)
                unsupported.append(trigger)
                del mapping[trigger]
                continue
            table[model.model_id] = _Loaded(model, handle, [trigger])
        self._resolution = TriggerResolution(mapping, unsupported)
        self._activations = {model_id: 0 for table in new.values() for model_id in table}
        self._tables = {engine: table for engine, table in new.items() if table}
        return self._resolution.active, list(unsupported)

    def _engine(self, name: str) -> Any:
        engine = self._engines.get(name)
        if engine is None:
            if self._factories is not None:
                if name not in self._factories:
                    raise RuntimeError(f"no {name} engine")
                engine = self._factories[name]()
            else:
                from . import wake_engines  # noqa: PLC0415  (the voice extra; lazy)

                engine = wake_engines.create(name, keyword_threshold=self.keyword_threshold)
            self._engines[name] = engine
        return engine

    def _keyword_phrase(self, phrase: str) -> str | None:
        if self._keyword_lookup is None:
            try:
                from .wake_engines import keyphrase_lookup  # noqa: PLC0415

                self._keyword_lookup = keyphrase_lookup()
            except Exception as exc:  # noqa: BLE001  (pocketsphinx missing: nothing to spot with)
                log.warning("keyword spotting is on but unusable: %s", exc)
                self._keyword_lookup = lambda phrase: None
        return self._keyword_lookup(phrase)

    @property
    def light(self) -> bool:
        """Whether a chunk is cheap enough to process on the caller's (Trio) thread: every
        active engine says so (:mod:`.wake_engines`)."""
        return all(getattr(self._engines[name], "light", False) for name in self._tables)

    def process(self, chunk: bytes) -> list[WakeDetection]:
        """Feed 16 kHz int16 PCM (any length, typically 80 ms); returns what fired. Blocking."""
        self._audio_s += len(chunk) / (SAMPLE_WIDTH * SAMPLE_RATE)
        tables = self._tables
        if not tables:
            return []
        fired: list[WakeDetection] = []
        now = self._audio_s
        for engine_name, table in tables.items():
            engine = self._engines[engine_name]
            handles = {model_id: loaded.handle for model_id, loaded in table.items()}
            for model_id, score, cutoff in engine.process(chunk, handles):
                loaded = table[model_id]
                threshold = self.threshold if cutoff is None else cutoff
                detection = self._score(loaded, float(score), threshold, now)
                if detection is not None:
                    fired.append(detection)
        return fired

    def take_peaks(self) -> dict[str, float]:
        peaks, self.peaks = self.peaks, {}
        return peaks

    def _score(self, loaded: _Loaded, score: float, threshold: float, now: float) -> WakeDetection | None:
        model_id, trigger = loaded.model.model_id, loaded.triggers[0]
        if score > self.peaks.get(model_id, 0.0):
            self.peaks[model_id] = score
        if score < threshold:
            self._activations[model_id] = max(0, self._activations.get(model_id, 0) - 1)
            if score >= threshold * self.near_miss_ratio and (
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
        return WakeDetection(trigger=trigger, model_id=model_id, score=score, audio_time=now,
                             engine=loaded.model.engine)

    def reset(self) -> None:
        """Forget what the models have heard (after a wake, so the tail of the phrase and the
        command that follows cannot fire again). Cheap: each engine clears its models' windows
        and keeps its shared feature history (resetting that is what is expensive, and old
        feature frames cannot fire anything once the models' windows are clear). The
        refractory clock is kept."""
        for engine_name, table in self._tables.items():
            self._engines[engine_name].reset([loaded.handle for loaded in table.values()])
        self._activations = {model_id: 0 for table in self._tables.values() for model_id in table}

    def __repr__(self) -> str:
        return (f"WakeDetector(active={self.models!r}, unsupported={self.unsupported!r}, "
                f"threshold={self.threshold}, trigger_level={self.trigger_level})")
