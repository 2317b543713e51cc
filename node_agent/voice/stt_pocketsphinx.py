"""Offline speech to text with pocketsphinx, whose wheel ships the CMU en-US model.

Why it is the default: it is the one recognizer on PyPI whose wheel carries a model (acoustic
model, a 72k-word trigram language model and the CMU dictionary), so a node with the ``voice``
extra transcribes on first start with no download and no service. It is rough on free speech --
far behind Whisper -- and costs ~1 CPU-s per audio second on a desktop core; a Wyoming server is
the better choice wherever one runs.

The decoder runs in a worker process (:mod:`.pocketsphinx_worker`: it holds the GIL while it
decodes, which would stall the microphone), driven over its stdin/stdout with the same Wyoming
client as a remote server (:class:`~.stt_wyoming.WyomingStream`). It decodes *while* the
utterance is captured: each chunk is sent as it arrives, so at the end only the final search is
left. :meth:`PocketsphinxSTT.load` starts the worker and waits for its model (~0.7 s on a
desktop core, seconds on a Pi; ~108 MiB resident, most of it the language model) -- the daemon
calls it at start-up, not at the first wake. Given a ``dict_cache_dir`` (the daemon: its state
directory), the wheel's model loads with the dictionary cut to the language model's words
(:mod:`.pocketsphinx_dict`: 13 MiB less, the same hypotheses); a custom model is left alone.
One utterance at a time: a second waits for the first (the pipeline may capture the next
command while the last is still being decoded). A
worker that dies, hangs or talks nonsense is killed and started again for the next utterance;
an utterance abandoned half-way is finished (and its text dropped) so the worker stays in step.

The worker's environment is the helper allowlist (:func:`node_agent.childenv.helper_env`: no
gateway token, nothing secret), plus ``PYTHONPATH`` when the agent itself runs from one.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import trio

from ..childenv import helper_env
from .audio import SAMPLE_RATE
from .errors import STTError, VoiceUnavailable
from .stt_wyoming import WyomingStream, _stt_error
from .wyoming_client import WyomingConnection, WyomingError, wyoming_lib

log = logging.getLogger("node_agent.voice.stt")

#: Beside the helper allowlist: where the agent's own code and pocketsphinx's models are.
_WORKER_KEYS = ("PYTHONPATH", "POCKETSPHINX_PATH")
#: Settings that make the model not the wheel's one, whose dictionary may not be cut to ``lm``.
_OWN_MODEL = frozenset({"hmm", "dict", "lm", "jsgf", "fsg", "kws", "keyphrase", "allphone"})


def worker_env() -> dict[str, str]:
    return helper_env({k: os.environ[k] for k in _WORKER_KEYS if k in os.environ})


class PocketsphinxSTT:
    name = "pocketsphinx"

    def __init__(self, *, load_timeout_s: float = 60.0, send_timeout_s: float = 10.0, timeout_s: float = 60.0,
                 dict_cache_dir: Path | None = None, **config: Any):
        #: Extra decoder settings (``hmm``, ``lm``, ``dict``, ``beam``...), for a custom model.
        self.config = config
        #: Where the worker keeps the wheel's dictionary cut to its language model (None: the full one).
        self.dict_cache_dir = dict_cache_dir
        self.load_timeout_s = load_timeout_s
        self.send_timeout_s = send_timeout_s
        self.timeout_s = timeout_s
        self._proc: trio.Process | None = None
        self._conn: WyomingConnection | None = None
        self._busy = trio.Semaphore(1)
        self._loading = trio.Lock()
        self.utterances = 0
        self.restarts = 0
        self.last_error: str | None = None

    async def load(self) -> None:
        """Start the worker and wait until its model is loaded. Raises :class:`VoiceUnavailable`
        when the ``voice`` extra is not installed, :class:`STTError` when the worker fails."""
        async with self._loading:
            if self._conn is not None:
                return
            wyoming_lib()
            try:
                import pocketsphinx  # noqa: F401, PLC0415
            except ImportError as exc:
                raise VoiceUnavailable("pocketsphinx is not installed",
                                       hint="install the voice extra: pip install 'node-agent[voice]'") from exc
            config = dict(self.config)
            if self.dict_cache_dir is not None and not config.keys() & _OWN_MODEL:
                config["pruned_dict_dir"] = str(self.dict_cache_dir)
            argv = [sys.executable, "-m", "node_agent.voice.pocketsphinx_worker", json.dumps(config)]
            try:
                proc = await trio.lowlevel.open_process(argv, stdin=-1, stdout=-1, env=worker_env())
            except OSError as exc:
                raise STTError(f"cannot start the pocketsphinx worker: {exc}") from None
            conn = WyomingConnection(trio.StapledStream(proc.stdin, proc.stdout), "pocketsphinx")
            try:
                await conn.describe(timeout_s=self.load_timeout_s)
            except WyomingError as exc:
                await self._kill(proc, conn)
                raise STTError(f"the pocketsphinx worker did not start: {exc.message}") from None
            self._proc, self._conn = proc, conn
            log.info("pocketsphinx loaded (worker pid %d)", proc.pid)

    async def start(self, *, sample_rate: int = SAMPLE_RATE) -> WyomingStream:
        from wyoming.asr import Transcribe  # noqa: PLC0415
        from wyoming.audio import AudioStart  # noqa: PLC0415

        if sample_rate != SAMPLE_RATE:
            raise STTError(f"pocketsphinx's model wants {SAMPLE_RATE} Hz audio, not {sample_rate}")
        await self._busy.acquire()
        try:
            await self.load()
            assert self._conn is not None
            await self._conn.send(Transcribe(language="en"), timeout_s=self.send_timeout_s)
            await self._conn.send(AudioStart(rate=sample_rate, width=2, channels=1, timestamp=0),
                                  timeout_s=self.send_timeout_s)
        except WyomingError as exc:
            await self._restart()
            self._busy.release()
            raise self.failed(_stt_error(exc, "starting a transcription")) from None
        except BaseException:
            self._busy.release()
            raise
        self.utterances += 1
        return WyomingStream(self, self._conn, sample_rate)

    async def release(self, conn: WyomingConnection, state: str) -> None:
        try:
            if state == "abandoned" and conn is self._conn:
                await self._drain(conn)
            elif state == "broken":
                await self._restart()
        finally:
            self._busy.release()

    async def _drain(self, conn: WyomingConnection) -> None:
        """End the abandoned utterance and read its transcript away, or restart the worker."""
        from wyoming.asr import Transcript  # noqa: PLC0415
        from wyoming.audio import AudioStop  # noqa: PLC0415

        try:
            await conn.send(AudioStop(), timeout_s=self.send_timeout_s)
            while not Transcript.is_type((await conn.receive(timeout_s=self.timeout_s)).type):
                pass
        except WyomingError:
            await self._restart()

    async def _restart(self) -> None:
        proc, conn, self._proc, self._conn = self._proc, self._conn, None, None
        if proc is not None:
            self.restarts += 1
            log.warning("pocketsphinx worker failed; starting a new one for the next utterance")
            await self._kill(proc, conn)

    @staticmethod
    async def _kill(proc: trio.Process, conn: WyomingConnection | None) -> None:
        with trio.CancelScope(shield=True):
            if conn is not None:
                await conn.aclose()
            proc.kill()
            await proc.wait()

    async def aclose(self) -> None:
        """Stop the worker (end of the daemon)."""
        proc, conn, self._proc, self._conn = self._proc, self._conn, None, None
        if proc is not None:
            await self._kill(proc, conn)

    def failed(self, exc: STTError) -> STTError:
        self.last_error = exc.message
        log.warning("speech-to-text: %s", exc.message)
        return exc

    def succeeded(self) -> None:
        pass

    def status(self) -> dict[str, Any]:
        return {"name": self.name, "loaded": self._conn is not None, "utterances": self.utterances,
                "restarts": self.restarts, "workerPid": self._proc.pid if self._proc else None,
                "lastError": self.last_error}

    def __repr__(self) -> str:
        return f"PocketsphinxSTT(loaded={self._conn is not None}, restarts={self.restarts})"
