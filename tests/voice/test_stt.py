"""CommandSTT against tiny fake recognizers (real processes, real clock: a subprocess and a
virtual clock do not mix)."""

from __future__ import annotations

import os
import sys

import pytest
import trio

from node_agent.voice import CommandSTT, STTError
from node_agent.voice.stt import transcribe

PCM = (1000).to_bytes(2, "little", signed=True) * 16000  # 1 s


@pytest.fixture
def script(tmp_path):
    def make(body: str):
        path = tmp_path / f"stt{len(list(tmp_path.iterdir()))}.py"
        path.write_text("import sys, wave\n" + body)
        return [sys.executable, str(path)]

    return make


async def test_wav_on_stdin_text_on_stdout(script):
    argv = script("w = wave.open(sys.stdin.buffer)\n"
                  "assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16000, 1, 2)\n"
                  "print(f'  heard {w.getnframes()} frames\\n  and   more  ')\n")
    assert await transcribe(CommandSTT(argv), PCM) == "heard 16000 frames and more"


async def test_wav_placeholder_gets_a_temporary_file_that_is_removed(script, tmp_path):
    argv = script("path = sys.argv[1]\n"
                  "open(sys.argv[2], 'w').write(path)\n"
                  "print(wave.open(path).getnframes())\n")
    record = tmp_path / "seen.txt"
    stt = CommandSTT([*argv, "{wav}", str(record)])
    assert await transcribe(stt, PCM) == "16000"
    used = record.read_text()
    assert used.endswith(".wav") and not os.path.exists(used)


async def test_utf8_text_survives(script):
    argv = script("sys.stdout.buffer.write('qu\\u00e9 hora es \\u2014 ok'.encode('utf-8'))\n")
    assert await transcribe(CommandSTT(argv), PCM) == "qué hora es — ok"


async def test_failure_is_an_stt_error_with_stderr(script):
    argv = script("sys.stderr.write('model file not found\\n'); sys.exit(3)\n")
    with pytest.raises(STTError, match="exit 3.*model file not found"):
        await transcribe(CommandSTT(argv), PCM)


async def test_timeout_kills_it(script):
    argv = script("import time; time.sleep(30)\n")
    start = trio.current_time()
    with pytest.raises(STTError, match="longer than 0.5 s"):
        await transcribe(CommandSTT(argv, timeout_s=0.5), PCM)
    assert trio.current_time() - start < 10


async def test_missing_program():
    with pytest.raises(STTError, match="cannot run"):
        await transcribe(CommandSTT(["/nonexistent/whisper"]), PCM)


async def test_env_is_added(script):
    argv = script("import os; print(os.environ['STT_LANG'], 'PATH' in os.environ)\n")
    assert await transcribe(CommandSTT(argv, env={"STT_LANG": "en"}), PCM) == "en True"


def test_needs_a_program():
    with pytest.raises(ValueError):
        CommandSTT([])
