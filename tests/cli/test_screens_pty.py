"""The screens as a person sees them: ``node-agent`` on a real 80-column pseudo-terminal, its
output rendered by a terminal emulator (pyte), compared with golden text.

What is masked, and why, is tests/support/terminal.py's ``normalize`` (wall-clock times, test
ports, measured durations, the random part of a fixed-length temp dir; each mask keeps the
length, so the masked screen wraps where the real one does); nothing else is.
The device key is fixed, so device ids and fingerprints are real and stable; audio is staged
through ALSA (``~/.asoundrc`` in a home of the test's own, no PulseAudio), so speech behaves
the same on every machine. Each test is bounded; waits are on the screen, not on sleeps.

The OpenClaw pair screen, against the real gateway, is tests/interop/test_pair_screen.py.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import trio

from node_agent.agent.status import STATUS_FILE, to_json
from node_agent.identity import IDENTITY_FILE, DeviceIdentity, IdentityRecord, b64url, write_record
from node_agent.secret import Secret
from node_agent.secrets import DEVICE_KEY, FileStore
from tests.cli.goldens import CASES, CODE_977009, NEVER_RUN, URL
from tests.support.documented_gateway import open_documented_gateway
from tests.support.terminal import cli_env, fixed_tmp_dir, node_agent, normalize, open_terminal

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX pseudo-terminals")

SHARED = "documented-shared-token-1234"
#: A fixed device key: device id 56475aa7..., fingerprint "5647 5aa7 5463 474c".
KEY = Secret(b64url(bytes(range(32))))
DEVICE_ID = DeviceIdentity.from_secret(KEY).device_id
NO_CARD = "defaults.pcm.card 5\ndefaults.ctl.card 5\n"  # ALSA: "cannot find card '5'"
NULL_OUTPUT = "pcm.!default { type null }\n"  # plays, silently, wherever ALSA is installed


def rows(*lines: str) -> str:
    return "\n".join(lines) + "\n"


@pytest.fixture
def tmp():
    with fixed_tmp_dir() as path:
        yield path


def home_with(tmp: Path, asoundrc: str) -> dict[str, str]:
    """The environment of a person whose ALSA is ``asoundrc`` (and who runs no PulseAudio)."""
    home = tmp / "home"
    home.mkdir(exist_ok=True)
    (home / ".asoundrc").write_text(asoundrc)
    return {"HOME": str(home), "PULSE_SERVER": f"unix:{tmp}/no-pulse"}


async def paired_key(state: Path) -> None:
    state.mkdir(mode=0o700, exist_ok=True)
    await FileStore(state / "secrets.json").set(DEVICE_KEY, KEY)


async def run_screen(*args: str, env: dict[str, str] | None = None, timeout: float = 60.0) -> tuple[int, str]:
    """Run a command to its end on a terminal; its exit status and its screen, normalized."""
    async with open_terminal(node_agent(*args), env=cli_env(**(env or {}))) as term:
        code = await term.wait_exit(timeout=timeout)
        return code, term.screen(normalized=True)


# --- status -----------------------------------------------------------------------------------


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.mark.parametrize("name", sorted(CASES))
async def test_status_on_a_terminal_in_each_state(tmp, name):
    build, golden = CASES[name]
    state = tmp / "state"
    state.mkdir(mode=0o700)
    now = int(time.time() * 1000)
    status = build(now, dead_pid() if name == "stale" else os.getpid())
    (state / STATUS_FILE).write_text(json.dumps(to_json(status)))
    with trio.fail_after(30):
        code, screen = await run_screen("status", "--state-dir", str(state), "--gateway", URL)
    assert code == 0
    assert screen == normalize(golden)


async def test_status_on_a_terminal_before_the_first_run(tmp):
    with trio.fail_after(30):
        code, screen = await run_screen("status", "--state-dir", str(tmp / "state"), "--gateway", URL)
    assert (code, screen) == (0, normalize(NEVER_RUN))


# --- pair, documented dialect, then status and doctor -------------------------------------------

PAIR_HEAD = (
    "Pairing 'pty-node' with ws://127.0.0.1:PPPPP",
    "  device id: 5647 5aa7 5463 474c (56475aa75463…)",
    "  secrets:   file store",
)
CODE_SCREEN = (
    "HH:MM:SS INFO    node_agent.agent: pairing code 977009, valid until HH:MM:SS: en",
    "ter it on the gateway to approve pty-node (device 5647 5aa7 5463 474c)",
    "",
    "  Enter this code on the gateway:",
    "",
    *CODE_977009,
    "",
    "  It expires in 5 min (at HH:MM:SS).",
)


async def test_the_documented_pair_screen_shows_the_code_once_large_then_status_and_doctor_agree(tmp):
    state = tmp / "state"
    await paired_key(state)
    env = {"OPENCLAW_GATEWAY_TOKEN": SHARED, **home_with(tmp, NULL_OUTPUT)}
    with trio.fail_after(60):
        async with open_documented_gateway(shared_token=SHARED, code_lifetime_s=300,
                                           code_factory=lambda: "977009") as gw:
            argv = node_agent("pair", "--protocol", "jsonrpc", "--gateway", gw.url, "--state-dir", str(state),
                              "--secret-backend", "file", "--display-name", "pty-node")
            async with open_terminal(argv, env=cli_env(**env)) as term:
                await term.wait_for("It expires")
                assert term.screen(normalized=True) == rows(*PAIR_HEAD, *CODE_SCREEN)
                assert await gw.enter_code("977009") is True
                assert await term.wait_exit() == 0
                pair_screen = term.screen(normalized=True)
            print(f"--- the documented pair screen, at the end ---\n{pair_screen}")  # shown with -s
            assert pair_screen == rows(
                *PAIR_HEAD, *CODE_SCREEN,
                "",
                "HH:MM:SS INFO    node_agent.agent: node link: device token saved to the file sec",
                "ret store",
                "HH:MM:SS INFO    node_agent.agent: device approved by the gateway",
                "device approved by the gateway",
                "HH:MM:SS INFO    node_agent.agent: connected to ws://127.0.0.1:PPPPP (gateway do",
                "cumented-double, protocol 1, auth token (sent)) as 5647 5aa7 5463 474c",
                "HH:MM:SS INFO    node_agent.agent: node agent stopped (exit status 0)",
                "paired: this device is an approved node. Run the service or `node-agent run`.",
            )
            # The code is on the screen in large digits and in the one log line, nowhere else.
            assert pair_screen.count("977009") == 1

            code, screen = await run_screen("status", "--state-dir", str(state), "--gateway", gw.url, env=env)
            assert code == 0
            assert screen == rows(
                "state:      stopped",
                "gateway:    ws://127.0.0.1:PPPPP",
                "            jsonrpc dialect, gateway documented-double, protocol 1",
                f"device id:  {DEVICE_ID}",
                "name:       pty-node",
                "secrets:    file store",
                # pair wrote the exec approvals document (the node declares system.run)
                "exec:       security=allowlist ask=on-miss askFallback=deny, 0 allowlist entries",
                "            (node-agent exec policy)",
            )

            config = tmp / "config.toml"
            config.write_text(f'[voice]\nwav = "{tmp}/in.wav"\n')
            (tmp / "in.wav").write_bytes(b"RIFF")
            code, screen = await run_screen(
                "doctor", "--config", str(config), "--state-dir", str(state), "--gateway", gw.url,
                "--secret-backend", "file", "--protocol", "jsonrpc", "--unit-file", str(tmp / "none.service"),
                env=env)
    assert code == 0
    assert screen == rows(
        " ✓ config          /tmp/na-pty-XXXXXXXX/config.toml; gateway",
        "                   ws://127.0.0.1:PPPPP (from flag)",
        " ✓ state dir       /tmp/na-pty-XXXXXXXX/state (mode 0700, writable)",
        " ✓ secret store    file store /tmp/na-pty-XXXXXXXX/state/secrets.json (secret",
        "                   backend 'file' configured)",
        " ✓ identity        device 5647 5aa7 5463 474c (linux/Linux), key in the file",
        "                   store",
        " ✓ gateway         WebSocket at ws://127.0.0.1:PPPPP (upgrade in N.NNN s) sent a",
        "                   non-OpenClaw frame first within 2 s: no connect.challenge, as",
        "                   the documented dialect does (protocol \"jsonrpc\")",
        " - tls             plain ws:// (allowed for loopback and private networks)",
        " ✓ pairing         device token stored for ws://127.0.0.1:PPPPP; last state:",
        "                   stopped",
        " ✓ audio           voice reads /tmp/na-pty-XXXXXXXX/in.wav instead of a",
        "                   microphone (voice.wav)",
        " ✓ wake word       5 bundled models load (alexa, hey jarvis, hey mycroft, hey",
        "                   rhasspy, okay nabu)",
        " ✓ speech          espeak-ng at /usr/bin/espeak-ng reaches the default sound",
        "                   output",
        " ✓ exec approvals  /tmp/na-pty-XXXXXXXX/state/exec-approvals.json:",
        "                   security=allowlist ask=on-miss askFallback=deny, 0 allowlist",
        "                   entries",
        " - service         no systemd unit installed",
        "                   fix: to run at boot: `sudo node-agent service install` (or",
        "                        `node-agent service install --user`)",
        "10 ok, 0 warning(s), 0 failed, 2 skipped",
    )


async def test_a_code_that_cannot_be_spoken_says_why_and_the_fix_once(tmp):
    # The box: espeak-ng installed, no sound card. The first code says why; the code the
    # gateway issues when the first expires fails the same way, and that is not said again.
    state = tmp / "state"
    await paired_key(state)
    codes = iter(["977009", "123456"])
    env = {"OPENCLAW_GATEWAY_TOKEN": SHARED, **home_with(tmp, NO_CARD)}
    with trio.fail_after(60):
        async with open_documented_gateway(shared_token=SHARED, code_lifetime_s=4,
                                           code_factory=lambda: next(codes)) as gw:
            argv = node_agent("pair", "--protocol", "jsonrpc", "--gateway", gw.url, "--state-dir", str(state),
                              "--secret-backend", "file", "--display-name", "pty-node", "--log-level", "debug")
            async with open_terminal(argv, env=cli_env(**env)) as term:
                said = re.compile(r"(INFO|DEBUG) +node_agent\.agent: could not speak the pairing code: (.*)")
                while len(said.findall(term.output())) < 2:
                    await term.wait_output()
                output = term.output()
                assert await gw.enter_code("123456") is True
                assert await term.wait_exit() == 0
    levels = [level for level, _ in said.findall(output)]
    assert levels == ["INFO", "DEBUG"]
    reason = said.search(output).group(2)
    assert reason == ("espeak-ng cannot play: no sound card (ALSA: cannot find card '5'); to fix: connect a "
                      "speaker or a USB sound card (`aplay -l` lists the sound cards), or point ALSA's default "
                      "device at one that exists (card 5 does not; see /etc/asound.conf)")
    assert "SpeechError" not in output


# --- doctor with staged failures ------------------------------------------------------------------


async def test_doctor_on_a_terminal_with_staged_failures(tmp):
    state = tmp / "state"
    state.mkdir()
    state.chmod(0o775)  # others in the group could replace the identity
    # identity.json names a device whose key is not in the store: the agent refuses to start.
    write_record(state, IdentityRecord(device_id=DEVICE_ID, public_key=DeviceIdentity.from_secret(KEY).public_key,
                                       instance_id="i", platform="linux", device_family="Linux", created_at_ms=1))
    (state / "secrets.json").write_text("{}\n")
    (state / "secrets.json").chmod(0o600)
    config = tmp / "config.toml"
    config.write_text(f'[voice]\nwav = "{tmp}/missing.wav"\n')
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with trio.fail_after(60):
        code, screen = await run_screen(
            "doctor", "--config", str(config), "--state-dir", str(state), "--gateway", f"ws://127.0.0.1:{port}",
            "--secret-backend", "file", "--unit-file", str(tmp / "none.service"), env=home_with(tmp, NO_CARD))
    assert code == 1
    assert IDENTITY_FILE + " names device" in screen
    assert screen == rows(
        " ✓ config          /tmp/na-pty-XXXXXXXX/config.toml; gateway",
        "                   ws://127.0.0.1:PPPPP (from flag)",
        " ✗ state dir       /tmp/na-pty-XXXXXXXX/state has mode 0775: others can replace",
        "                   the identity and tokens in it",
        "                   fix: chmod 700 /tmp/na-pty-XXXXXXXX/state",
        " ✓ secret store    file store /tmp/na-pty-XXXXXXXX/state/secrets.json (secret",
        "                   backend 'file' configured)",
        " ✗ identity        identity.json names device 56475aa75463… but its private key",
        "                   is not in the file store; the agent refuses to start rather",
        "                   than make a new identity",
        "                   fix: restore /tmp/na-pty-XXXXXXXX/state/secrets.json from a",
        "                        backup (it holds the key); to start over (a new device,",
        "                        paired again): `node-agent unpair --reset-identity`",
        " ✗ gateway         cannot reach 127.0.0.1:PPPPP: Connection refused",
        "                   fix: is the gateway running (`openclaw gateway status`)?",
        "                        check the host and port in the gateway URL, and any",
        "                        firewall between here and the gateway",
        " - tls             plain ws:// (allowed for loopback and private networks)",
        " ! pairing         not paired with ws://127.0.0.1:PPPPP: no device token in the",
        "                   file store",
        "                   fix: run `node-agent pair` and approve it on the gateway",
        "                        (`openclaw devices approve <requestId>`); it needs the",
        "                        gateway token first: OPENCLAW_GATEWAY_TOKEN or",
        "                        --token-file, or pair with --setup-code",
        " ! audio           voice.wav /tmp/na-pty-XXXXXXXX/missing.wav does not exist",
        "                   fix: point voice.wav at a 16 kHz mono WAV file, or remove it",
        " ✓ wake word       5 bundled models load (alexa, hey jarvis, hey mycroft, hey",
        "                   rhasspy, okay nabu)",
        " ! speech          espeak-ng at /usr/bin/espeak-ng, but cannot play: no sound",
        "                   card (ALSA: cannot find card '5')",
        "                   fix: connect a speaker or a USB sound card (`aplay -l` lists",
        "                        the sound cards), or point ALSA's default device at one",
        "                        that exists (card 5 does not; see /etc/asound.conf)",
        " ✓ exec approvals  /tmp/na-pty-XXXXXXXX/state/exec-approvals.json (not written",
        "                   yet): security=allowlist ask=on-miss askFallback=deny, 0",
        "                   allowlist entries",
        " - service         no systemd unit installed",
        "                   fix: to run at boot: `sudo node-agent service install` (or",
        "                        `node-agent service install --user`)",
        "4 ok, 3 warning(s), 3 failed, 2 skipped",
    )
