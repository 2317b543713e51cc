"""The CMU dictionary cut down to the words the language model can produce, for the worker.

Why: with an n-gram language model pocketsphinx only searches words that are in the dictionary
*and* among the model's unigrams (its lexicon tree skips a dictionary word the model does not
know), so of the wheel's 134,860 entries the 55,434 whose word the 72k-word model never
produces are dead weight -- ~13 MiB resident in the worker (the dictionary's entries and the
search's per-word tables), for nothing. Cut, the dictionary keeps every entry of every word the
model knows, alternate pronunciations (``word(2)``) included, in the original order: the
decoder hears exactly what it heard before (``tests/voice/test_stt_pocketsphinx.py`` compares
the hypotheses word for word).

The decoder reads a dictionary only from a file (``add_word`` one entry at a time is slower and
refuses the wheel's alternates), and cutting it costs ~0.3 s of a desktop core (seconds on a
Pi), so the cut file is made once and kept in the agent's state directory, beside nothing else
of ours.

Invariants: a cut file is used only when its first line (a ``##`` comment, which the dictionary
reader skips) names the sources it was cut from -- paths, sizes and mtimes of the dictionary, the
model and pocketsphinx's library -- and the sha256 of the rest of its bytes. A new wheel, a
truncated or edited file is never trusted: it is cut again and replaced atomically. A cut that
cannot be written falls back to the full dictionary: more memory, never a different answer.
Blocking: it runs in the worker, before the model is loaded.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from ..atomic import atomic_write

FILE_NAME = "cmudict-pruned.dict"
_MAGIC = b"## node-agent pruned dictionary v1"


def pruned_dictionary(cache_dir: Path, dict_path: str, lm_path: str) -> tuple[str, str]:
    """(the dictionary to load, how it was found: ``cached``, ``cut`` or ``full: <why>``)."""
    target = cache_dir / FILE_NAME
    try:
        header = _header(dict_path, lm_path)
    except OSError as exc:
        return dict_path, f"full: {exc}"
    if _trusted(target, header):
        return str(target), "cached"
    body = _cut(dict_path, lm_path)
    data = b"%s sha256=%s\n%s" % (header, hashlib.sha256(body).hexdigest().encode(), body)
    try:
        cache_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Not durable: a power cut that loses it costs one more cut, and the check catches a torn file.
        atomic_write(target, data, 0o600, durable=False)
    except OSError as exc:
        return dict_path, f"full: cannot write {target}: {exc}"
    return str(target), "cut"


def _header(dict_path: str, lm_path: str) -> bytes:
    # The decoder's own library stands for its version (a new wheel rewrites it, and the model
    # files, with new mtimes); importlib.metadata would cost the worker ~3 MiB of modules.
    from pocketsphinx import _pocketsphinx  # noqa: PLC0415

    paths = (dict_path, lm_path, _pocketsphinx.__file__)
    sources = [[p, (s := os.stat(p)).st_size, s.st_mtime_ns] for p in paths]
    key = hashlib.sha256(json.dumps(sources).encode()).hexdigest()[:32]
    return b"%s source=%s" % (_MAGIC, key.encode())


def _trusted(target: Path, header: bytes) -> bool:
    try:
        data = target.read_bytes()
    except OSError:
        return False
    first, _, body = data.partition(b"\n")
    return first == b"%s sha256=%s" % (header, hashlib.sha256(body).hexdigest().encode())


def _cut(dict_path: str, lm_path: str) -> bytes:
    from pocketsphinx import Config, LogMath, NGramModel  # noqa: PLC0415

    lm = NGramModel(Config(), LogMath(), lm_path)
    # A word the model does not know scores the log-math floor (the model has no <unk>).
    unknown = lm.prob(["<node-agent: not a word>"])
    kept = []
    known: tuple[bytes, bool] = (b"", False)  # the last base word: alternates follow their word
    with open(dict_path, "rb") as lines:
        for line in lines:
            fields = line.split(None, 1)
            if not fields or line.startswith((b"##", b";;")):
                continue
            word = fields[0]
            base = word[:word.rindex(b"(")] if word.endswith(b")") and b"(" in word else word
            if base != known[0]:
                known = (base, lm.prob([base.decode("utf-8")]) != unknown)
            if known[1]:
                kept.append(line if line.endswith(b"\n") else line + b"\n")
    return b"".join(kept)
