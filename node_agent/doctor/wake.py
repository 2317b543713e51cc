"""The ``wake word`` line: the bundled openWakeWord models are there and load, a custom model
folder holds real TFLite models, and the gateway's trigger phrases (as the agent last saw them,
in its status) plus this node's own have a model each.

Imports ``node_agent.voice`` and ``pyopen_wakeword`` lazily (the ``voice`` extra); a missing one
is a skip, or a failure when ``[voice]`` turns voice on.
"""

from __future__ import annotations

from pathlib import Path

import trio

from ..agent.status import AgentStatus
from ..config.voice import VoiceSettings
from .check import Check, Findings, Status, fail, skip
from .context import Context

NAME = "wake word"


def check_wake_models(voice: VoiceSettings, status: AgentStatus | None) -> Check:
    missing = fail if voice.active else skip
    try:
        from ..voice import wake
    except ImportError as exc:
        return missing(NAME, f"voice support is not part of this install ({exc.name or exc})",
                       "install a node-agent with voice support")
    try:
        import pyopen_wakeword
    except ImportError:
        return missing(NAME, "pyopen-wakeword is not installed", "pip install 'node-agent[voice]'")
    except OSError as exc:
        return missing(NAME, f"pyopen-wakeword cannot load: {exc}",
                       "reinstall it: pip install --force-reinstall pyopen-wakeword")
    models_dir = Path(pyopen_wakeword.__file__).parent / "models"
    needed = [*sorted(set(wake.BUILTIN_MODELS.values())), "melspectrogram", "embedding_model"]
    absent = [m for m in needed if not (models_dir / f"{m}.tflite").is_file()]
    if absent:
        return fail(NAME, f"pyopen-wakeword is missing bundled models: {', '.join(absent)} (in {models_dir})",
                    "reinstall it: pip install --force-reinstall pyopen-wakeword")
    try:
        features = pyopen_wakeword.OpenWakeWordFeatures.from_builtin()
        model = pyopen_wakeword.OpenWakeWord.from_builtin(pyopen_wakeword.Model(needed[0]))
        del model, features
    except Exception as exc:  # the TFLite runtime is a native library: anything can happen
        return fail(NAME, f"the bundled models do not load: {type(exc).__name__}: {exc}",
                    "reinstall pyopen-wakeword for this platform (it ships the TFLite runtime)")

    found = Findings(NAME)
    found.note(f"{len(wake.BUILTIN_MODELS)} bundled models load ({', '.join(sorted(wake.BUILTIN_MODELS))})")
    custom = voice.custom_model_dir
    if custom:
        folder = Path(custom).expanduser()
        if not folder.is_dir():
            found.note(f"custom model folder {folder} does not exist", Status.WARN,
                       f"create {folder} and put <phrase>.tflite models in it, or remove the setting")
        else:
            files = sorted(folder.glob("*.tflite"))
            good = [p for p in files if _is_tflite(p)]
            bad = [p.name for p in files if p not in good]
            found.note(f"custom folder {folder}: {len(good)} model(s)"
                       + (f" ({', '.join(p.stem for p in good)})" if good else ""))
            if bad:
                found.note(f"not TFLite models, ignored: {', '.join(bad)}", Status.WARN,
                           "replace them with openWakeWord .tflite models")
    # The gateway's phrases (as last seen by the agent) plus this node's own, as the pipeline uses them.
    gateway = status.voice_wake_triggers if status is not None else None
    triggers = [*(gateway or ()), *voice.local_triggers]
    if triggers:
        resolution = wake.resolve_triggers(triggers, wake.available_models(custom or None))
        if resolution.unsupported:
            found.note(f"gateway triggers without a model: {', '.join(resolution.unsupported)}",
                       Status.OK if resolution.mapping else Status.WARN,
                       "set a trigger that has a model (`openclaw` voicewake settings), e.g. \"hey jarvis\", "
                       "or add <phrase>.tflite to the custom model folder")
        if resolution.mapping:
            found.note(f"triggers with a model: {', '.join(resolution.mapping)}")
    return found.check()


def _is_tflite(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(8)[4:8] == b"TFL3"
    except OSError:
        return False


async def run(ctx: Context) -> Check:
    status = await ctx.status()
    return await trio.to_thread.run_sync(check_wake_models, ctx.voice, status)
