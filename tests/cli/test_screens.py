"""What a person reads, as exact text: every digit of the pairing code, whole codes, the code
screen, the status screen in each state, and the doctor report, at a fixed width and time.

The renderers are pure (node_agent/cli/screens.py); the pty tests (test_screens_pty.py) show
the same screens through a real terminal, from the same goldens (goldens.py). Times are
rendered in UTC here (TZ is set per test).
"""

from __future__ import annotations

import time

import pytest

from node_agent.agent.link import Notice, NoticeKind
from node_agent.agent.status import AgentStatus, LinkState
from node_agent.cli.screens import big_digits, fit, render_code, render_doctor, render_notice, render_status, time_left
from node_agent.doctor import Check, Status
from node_agent.protocol import PairingPending
from tests.cli.goldens import CASES, CODE_977009, DEVICE, NEVER_RUN, NOW, URL


@pytest.fixture(autouse=True)
def utc(monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def rows(*lines: str) -> str:
    return "\n".join(lines)


# --- big digits: every glyph, exactly ----------------------------------------------------------

DIGITS = {
    "0": (" ___",
          "|   |",
          "|   |",
          "|   |",
          "|___|"),
    "1": ("",
          "    |",
          "    |",
          "    |",
          "    |"),
    "2": (" ___",
          "    |",
          " ___|",
          "|",
          "|___"),
    "3": (" ___",
          "    |",
          " ___|",
          "    |",
          " ___|"),
    "4": ("",
          "|   |",
          "|___|",
          "    |",
          "    |"),
    "5": (" ___",
          "|",
          "|___",
          "    |",
          " ___|"),
    "6": (" ___",
          "|",
          "|___",
          "|   |",
          "|___|"),
    "7": (" ___",
          "    |",
          "    |",
          "    |",
          "    |"),
    "8": (" ___",
          "|   |",
          "|___|",
          "|   |",
          "|___|"),
    "9": (" ___",
          "|   |",
          "|___|",
          "    |",
          " ___|"),
}


@pytest.mark.parametrize("digit", sorted(DIGITS))
def test_each_digit_is_five_rows_of_its_own_glyph(digit):
    assert big_digits(digit) == rows(*DIGITS[digit])


def test_a_whole_code_puts_the_glyphs_side_by_side_row_by_row():
    # The bug this replaces joined every row of every glyph into each line.
    assert big_digits("977009") == rows(
        " ___    ___    ___    ___    ___    ___",
        "|   |      |      |  |   |  |   |  |   |",
        "|___|      |      |  |   |  |   |  |___|",
        "    |      |      |  |   |  |   |      |",
        " ___|      |      |  |___|  |___|   ___|",
    )
    assert big_digits("123456") == rows(
        "        ___    ___           ___    ___",
        "    |      |      |  |   |  |      |",
        "    |   ___|   ___|  |___|  |___   |___",
        "    |  |          |      |      |  |   |",
        "    |  |___    ___|      |   ___|  |___|",
    )


def test_every_digit_in_one_code_is_each_glyph_in_its_columns():
    art = big_digits("0123456789").split("\n")
    assert len(art) == 5
    for i, digit in enumerate("0123456789"):
        for row, expected in zip(art, DIGITS[digit]):
            assert row[i * 7:i * 7 + 5].rstrip() == expected, digit


@pytest.mark.parametrize("code", ["", "12a456", "12 456", "١٢٣"])
def test_anything_but_ascii_digits_has_no_big_form(code):
    assert big_digits(code) is None


# --- the code screen --------------------------------------------------------------------------


def test_the_code_screen_shows_the_code_once_large_with_the_time_left():
    assert render_code("977009", expires_at_ms=NOW + 300_000, now_ms=NOW) == rows(
        "",
        "  Enter this code on the gateway:",
        "",
        *CODE_977009,
        "",
        "  It expires in 5 min (at 14:18:20).",
        "",
    )


def test_a_code_too_wide_for_the_terminal_is_shown_plainly_and_one_without_expiry_says_nothing_of_it():
    assert render_code("12345678", expires_at_ms=None, now_ms=NOW, width=40) == rows(
        "", "  Enter this code on the gateway:", "", "    1 2 3 4 5 6 7 8", "", "")


@pytest.mark.parametrize("left_ms, said", [
    (300_000, "in 5 min"), (299_001, "in 5 min"), (89_000, "in 1 min"), (90_000, "in 2 min"),
    (60_000, "in 1 min"), (59_001, "in 60 s"), (42_000, "in 42 s"), (1, "in 1 s"), (0, "now"), (-5_000, "now"),
])
def test_time_left(left_ms, said):
    assert time_left(NOW + left_ms, NOW) == said


def test_a_pairing_notice_is_the_code_screen_on_a_terminal_and_its_own_text_on_a_pipe():
    pending = PairingPending(code="977009", expires_at_ms=NOW + 60_000)
    notice = Notice(kind=NoticeKind.PAIRING_PENDING, text="Pairing code: 977009\nEnter it.", pending=pending)
    assert render_notice(notice, terminal=False, now_ms=NOW) == "Pairing code: 977009\nEnter it."
    screen = render_notice(notice, terminal=True, now_ms=NOW)
    assert screen == render_code("977009", expires_at_ms=NOW + 60_000, now_ms=NOW)
    assert "977009" not in screen  # once, and large: not also in small print
    request = Notice(kind=NoticeKind.PAIRING_PENDING, text="approve " + "x" * 90,
                     pending=PairingPending(request_id="r"))
    assert render_notice(request, terminal=True, width=80) == "approve\n  " + "x" * 90


def test_fit_wraps_long_lines_at_a_word_keeping_their_indent():
    text = "short\n    " + " ".join(["word"] * 20)
    assert fit(text, 40) == rows(
        "short",
        "    word word word word word word word",
        "      word word word word word word word",
        "      word word word word word word",
    )


# --- the status screen, state by state ----------------------------------------------------------


@pytest.mark.parametrize("name", sorted(CASES))
def test_status_screen_in_each_state(name):
    build, golden = CASES[name]
    assert render_status(build(NOW, None), gateway=URL, device_id=None, now_ms=NOW) == golden


def test_status_of_a_node_that_never_ran_names_its_identity_once_there_is_one():
    assert render_status(None, gateway=URL, device_id=None, now_ms=NOW) == NEVER_RUN
    assert render_status(None, gateway=URL, device_id=DEVICE, now_ms=NOW) == NEVER_RUN.replace(
        "(no identity yet)", DEVICE)


def test_status_shows_a_gateway_url_without_its_password():
    status = AgentStatus(state=LinkState.CONNECTING)
    text = render_status(status, gateway="wss://me:hunter22@gw.lan:18789", device_id=None, now_ms=NOW)
    assert "gateway:    wss://gw.lan:18789\n" in text and "hunter22" not in text


@pytest.mark.parametrize(("entries", "said"), [(0, "0 allowlist entries"), (1, "1 allowlist entry"),
                                               (2, "2 allowlist entries")])
def test_the_exec_line_counts_allowlist_entries_in_words(entries, said):
    policy = {"defaults": {"security": "allowlist", "ask": "on-miss", "askFallback": "deny"},
              "agents": {"*": {"allowlist": [{"pattern": f"/usr/bin/p{i}"} for i in range(entries)]}}}
    text = render_status(AgentStatus(state=LinkState.STOPPED), gateway=URL, device_id=DEVICE, now_ms=NOW,
                         exec_policy=policy, width=120)
    assert f"exec:       security=allowlist ask=on-miss askFallback=deny, {said} (node-agent exec policy)\n" in text


# --- the doctor report ------------------------------------------------------------------------


def test_doctor_report_wraps_details_and_fixes_under_their_column():
    checks = [Check("config", Status.OK, "fine"),
              Check("gateway", Status.FAIL, "cannot reach 127.0.0.1:18789: Connection refused",
                    "is the gateway running (`openclaw gateway status`)? check the host and port in the gateway "
                    "URL, and any firewall between here and the gateway"),
              Check("speech", Status.WARN, "espeak-ng at /usr/bin/espeak-ng, but cannot play: no sound card "
                                           "(ALSA: cannot find card '0')", "connect a speaker"),
              Check("audio", Status.SKIP, "no sounddevice")]
    assert render_doctor(checks, width=80) == rows(
        " ✓ config   fine",
        " ✗ gateway  cannot reach 127.0.0.1:18789: Connection refused",
        "            fix: is the gateway running (`openclaw gateway status`)? check the",
        "                 host and port in the gateway URL, and any firewall between here",
        "                 and the gateway",
        " ! speech   espeak-ng at /usr/bin/espeak-ng, but cannot play: no sound card",
        "            (ALSA: cannot find card '0')",
        "            fix: connect a speaker",
        " - audio    no sounddevice",
        "1 ok, 1 warning(s), 1 failed, 1 skipped",
        "")
    # A pipe gets one line per finding (the CLI passes a huge width there).
    assert render_doctor(checks, width=10_000).count("\n") == 1 + 2 + 2 + 1 + 1
