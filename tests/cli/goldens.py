"""Golden screens shared by the pure tests (test_screens.py) and the pty tests
(test_screens_pty.py): the code screen's digits, and the ``status`` screen in each state.

For the status screen, one table for two tests: test_screens.py renders each status with the pure renderer at
:data:`NOW` (UTC) and compares exactly; test_screens_pty.py writes each status to a
``status.json``, runs ``node-agent status`` on a real 80-column pty and compares the screen,
with the times masked (tests/support/terminal.py: ``normalize``). A builder takes the time and
the pid to write, so a live agent's status can name a live process.
"""

from __future__ import annotations

from typing import Callable

from node_agent.agent.status import (
    AgentStatus,
    EventRefusal,
    LinkState,
    LinkStatus,
    PairingStatus,
    Surface,
    VoiceStatus,
)

#: The code screen's digits for the code 977009 (indented as the screen shows them).
CODE_977009 = (
    "     ___    ___    ___    ___    ___    ___",
    "    |   |      |      |  |   |  |   |  |   |",
    "    |___|      |      |  |   |  |   |  |___|",
    "        |      |      |  |   |  |   |      |",
    "     ___|      |      |  |___|  |___|   ___|",
)

# 2026-09-21 14:13:20 UTC
NOW = 1_790_000_000_000
DEVICE = "56475aa75463474c" + "ab" * 24
URL = "ws://127.0.0.1:18789"
HEAD = (f"device id:  {DEVICE}", "name:       kitchen-pi", "secrets:    file store")
OPENCLAW_3 = ("state:      connected since 14:12:50", f"gateway:    {URL}",
              "            openclaw dialect, gateway 2026.9.6, protocol 3")


def base(now: int, pid: int | None) -> dict:
    return dict(pid=pid, started_at_ms=now - 60_000, updated_at_ms=now - 1_000, gateway=URL, device_id=DEVICE,
                display_name="kitchen-pi", secret_store="file", version="0.1.0", adapter="linux")


def connected(now: int, pid: int | None, **fields) -> AgentStatus:
    return AgentStatus(**base(now, pid), state=LinkState.CONNECTED, dialect="openclaw", server_version="2026.9.6",
                       protocol=3, connected_at_ms=now - 30_000, **fields)


def lines(*rows: str) -> str:
    return "\n".join(rows) + "\n"


Builder = Callable[[int, "int | None"], AgentStatus]

CASES: dict[str, tuple[Builder, str]] = {
    "connecting": (
        lambda now, pid: AgentStatus(**base(now, pid), state=LinkState.CONNECTING),
        lines("state:      connecting", f"gateway:    {URL}", *HEAD)),
    "pairing by request id": (
        lambda now, pid: AgentStatus(**base(now, pid), state=LinkState.PAIRING, dialect="openclaw",
                                     last_error="pairing required",
                                     pairing=PairingStatus(request_id="92089db7-5d03-4c1e-aac1-86d73245b71c")),
        lines("state:      pairing",
              f"gateway:    {URL}",
              "            openclaw dialect",
              *HEAD,
              "pairing:    waiting for approval; on the gateway host run:",
              "              openclaw devices approve 92089db7-5d03-4c1e-aac1-86d73245b71c")),
    "pairing by code": (
        lambda now, pid: AgentStatus(**{**base(now, pid), "mode": "pair"}, state=LinkState.PAIRING, dialect="jsonrpc",
                                     pairing=PairingStatus(code="977009", expires_at_ms=now + 240_000)),
        lines("state:      pairing (in `node-agent pair`)",
              f"gateway:    {URL}",
              "            jsonrpc dialect",
              *HEAD,
              "pairing:    enter code 977009 on the gateway (expires in 4 min, at 14:17:20)")),
    "connected": (
        lambda now, pid: connected(now, pid, surface=Surface.APPROVED, voice_wake_triggers=("openclaw", "claude"),
                                   voice=VoiceStatus(mode="voice-wake", phase="listening",
                                                     unsupported_triggers=("claude",))),
        lines(*OPENCLAW_3, *HEAD,
              "wake words: openclaw, claude",
              "voice:      mode voice-wake; unsupported triggers: claude")),
    "surface pending": (
        lambda now, pid: connected(now, pid, surface=Surface.PENDING),
        lines(*OPENCLAW_3, *HEAD,
              "commands:   awaiting approval; on the gateway host run:",
              "              openclaw nodes pending",
              "              openclaw nodes approve <requestId>",
              "allowlist:  gateway.nodes.commands.allow (the gateway's key for node commands",
              "            beyond its defaults)")),
    "waiting with the last error": (
        lambda now, pid: AgentStatus(**base(now, pid), state=LinkState.WAITING, dialect="openclaw",
                                     retry_in_seconds=4.0,
                                     last_error="cannot reach 127.0.0.1:18789: Connection refused"),
        lines("state:      waiting; next attempt at 14:13:23",
              f"gateway:    {URL}",
              "            openclaw dialect",
              *HEAD,
              "last error: cannot reach 127.0.0.1:18789: Connection refused")),
    "error with a hint": (
        lambda now, pid: AgentStatus(**base(now, pid), state=LinkState.ERROR, dialect="openclaw",
                                     last_error="the gateway refused the shared token (AUTH_TOKEN_MISMATCH)",
                                     hint="check OPENCLAW_GATEWAY_TOKEN (or --token-file) against the gateway's "
                                          "gateway.auth.token, then start the agent again"),
        lines("state:      error",
              f"gateway:    {URL}",
              "            openclaw dialect",
              *HEAD,
              "last error: the gateway refused the shared token (AUTH_TOKEN_MISMATCH)",
              "to fix:     check OPENCLAW_GATEWAY_TOKEN (or --token-file) against the gateway's",
              "            gateway.auth.token, then start the agent again")),
    "stale": (
        # As read_status returns a file whose writer is gone (the pty test writes it with a dead pid).
        lambda now, pid: AgentStatus(**base(now, pid), state=LinkState.STOPPED if pid is None else LinkState.CONNECTED,
                                     stale=pid is None, dialect="openclaw", server_version="2026.9.6", protocol=3),
        lines("state:      stopped: the agent is not running (last update 14:13:19)",
              f"gateway:    {URL}",
              "            openclaw dialect, gateway 2026.9.6, protocol 3",
              *HEAD)),
    "operator link connected": (
        lambda now, pid: connected(now, pid, operator_link=LinkStatus(state=LinkState.CONNECTED)),
        lines(*OPENCLAW_3, *HEAD, "operator:   connected")),
    "operator link waiting for the node": (
        lambda now, pid: connected(now, pid, operator_link=LinkStatus(state=LinkState.WAITING_FOR_NODE)),
        lines(*OPENCLAW_3, *HEAD, "operator:   waiting-for-node")),
    "operator link off": (
        lambda now, pid: connected(now, pid, operator_link=LinkStatus(state=LinkState.OFF)),
        lines(*OPENCLAW_3, *HEAD, "operator:   off")),
    "operator link pairing": (
        lambda now, pid: connected(now, pid, operator_link=LinkStatus(
            state=LinkState.PAIRING, pairing=PairingStatus(request_id="upgrade-1234", reason="role-upgrade"))),
        lines(*OPENCLAW_3, *HEAD,
              "operator:   pairing; approve its role on the gateway host:",
              "              openclaw devices approve upgrade-1234")),
    "operator link error": (
        lambda now, pid: connected(now, pid, operator_link=LinkStatus(
            state=LinkState.ERROR, last_error="the gateway refused the operator role",
            hint="approve the role upgrade on the gateway host")),
        lines(*OPENCLAW_3, *HEAD,
              "operator:   error: the gateway refused the operator role",
              "            to fix: approve the role upgrade on the gateway host")),
    "refused events and an unsaved token": (
        lambda now, pid: connected(now, pid, token_save_error="cannot write secrets.json: No space left on device",
                                   refused_events=(EventRefusal(event="voice.transcript", reason="unknown event",
                                                                count=3),
                                                   EventRefusal(event="node.host.stats", reason="not allowed"))),
        lines(*OPENCLAW_3, *HEAD,
              "refused:    node.event voice.transcript (unknown event) x3",
              "refused:    node.event node.host.stats (not allowed) x1",
              "token:      not saved: cannot write secrets.json: No space left on device")),
}

NEVER_RUN = lines("state:      never run", f"gateway:    {URL}", "device id:  (no identity yet)")
