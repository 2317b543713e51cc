"""What a person reads on a terminal: the ``pair`` screen, the ``status`` screen, the ``doctor``
report. Nothing else.

Every renderer is pure: it takes the facts (typed models, never a re-parsed string), the
terminal's width and, where time matters, the time, and returns the text; printing is the
caller's. So each screen is tested as exact text, and the pty tests (tests/cli/test_screens_pty.py)
check that a real terminal shows that text as it is: lines that would be longer than the
terminal are wrapped here, at a word, under their own column, never left for the terminal to
break in the middle of a word or a command.

The pairing code is the one thing a person must read across a room, so a terminal shows it once,
in large seven-segment digits (:func:`big_digits`), with the time left before it expires; the
plain text goes to a pipe (scripts) and one summary line to the log (the agent's link).

Import rule: the standard library and the typed models only (no Trio): ``status`` renders
through here.
"""

from __future__ import annotations

import textwrap
import time
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:
    from ..agent.link import Notice
    from ..agent.status import AgentStatus, ExecStatus, ToolsStatus
    from ..doctor import Check

DEFAULT_WIDTH = 80


def terminal_width(stream) -> int | None:
    """The width of the terminal ``stream`` writes to, or None when it is not a terminal (a pipe
    or a file gets one line per item, unwrapped, for grep and scripts)."""
    import os

    try:
        if not stream.isatty():
            return None
        return os.get_terminal_size(stream.fileno()).columns or DEFAULT_WIDTH
    except (AttributeError, OSError, ValueError):
        return None

def fit(text: str, width: int) -> str:
    """``text`` with each line longer than ``width`` wrapped at a word, its continuation
    indented like the line itself (a terminal would break it mid-word at the edge)."""
    out: list[str] = []
    for line in text.split("\n"):
        if len(line) <= width:
            out.append(line)
            continue
        indent = line[:len(line) - len(line.lstrip())]
        out += textwrap.wrap(line, width, initial_indent="", subsequent_indent=indent + "  ",
                             break_long_words=False, break_on_hyphens=False) or [line]
    return "\n".join(out)


# --- big digits -----------------------------------------------------------------------------------

#: Seven segments: a top, b upper right, c lower right, d bottom, e lower left, f upper left, g middle.
SEGMENTS = {
    "0": "abcdef", "1": "bc", "2": "abdeg", "3": "abcdg", "4": "bcfg",
    "5": "acdfg", "6": "acdefg", "7": "abc", "8": "abcdefg", "9": "abcdfg",
}
#: Gap between two digits, in columns.
DIGIT_GAP = 2


def _glyph(segments: str) -> list[str]:
    """One digit, five rows of five columns: ``___`` bars for a, g, d; ``|`` for the sides."""
    def on(segment: str, text: str) -> str:
        return text if segment in segments else " " * len(text)

    return [
        " " + on("a", "___") + " ",
        on("f", "|") + "   " + on("b", "|"),
        on("f", "|") + on("g", "___") + on("b", "|"),
        on("e", "|") + "   " + on("c", "|"),
        on("e", "|") + on("d", "___") + on("c", "|"),
    ]


def big_digits(code: str) -> str | None:
    """``code`` in large seven-segment digits (five rows, no trailing spaces), or None when it
    holds anything but the digits 0-9 (the screen then shows it plainly)."""
    if not code or any(ch not in SEGMENTS for ch in code):
        return None
    glyphs = [_glyph(SEGMENTS[ch]) for ch in code]
    gap = " " * DIGIT_GAP
    return "\n".join(gap.join(g[row] for g in glyphs).rstrip() for row in range(5))


# --- time -------------------------------------------------------------------------------------------


def clock(ms: int) -> str:
    """A wall-clock time as the log shows it (local time)."""
    return time.strftime("%H:%M:%S", time.localtime(ms / 1000))


def time_left(expires_at_ms: int, now_ms: int) -> str:
    """``"in 4 min"``, ``"in 42 s"`` or ``"now"``: the time until ``expires_at_ms``."""
    left = (expires_at_ms - now_ms) / 1000
    if left <= 0:
        return "now"
    if left < 60:
        return f"in {int(left + 0.999)} s"
    return f"in {round(left / 60)} min"


def _now_ms() -> int:
    return int(time.time() * 1000)


# --- the pair screen ------------------------------------------------------------------------------


def render_pair_header(*, display_name: str, gateway: str, fingerprint: str, device_id: str,
                       store_name: str) -> str:
    """The first lines of ``pair``: who is pairing with what, and where its secrets live."""
    return (f"Pairing '{display_name}' with {gateway}\n"
            f"  device id: {fingerprint} ({device_id[:12]}…)\n"
            f"  secrets:   {store_name} store")


def render_notice(notice: Notice, *, terminal: bool, now_ms: int | None = None,
                  width: int = DEFAULT_WIDTH) -> str:
    """A notice as the ``pair`` screen shows it. On a terminal, a pairing code is the large
    code screen; everything else, and everything on a pipe, is the notice's own text."""
    pending = notice.pending
    if terminal and pending is not None and pending.code:
        return render_code(pending.code, expires_at_ms=pending.expires_at_ms,
                           now_ms=_now_ms() if now_ms is None else now_ms, width=width)
    return fit(notice.text, width) if terminal else notice.text


def render_code(code: str, *, expires_at_ms: int | None, now_ms: int, width: int = DEFAULT_WIDTH) -> str:
    """The code screen: what to do, the code in large digits, and how long it is good for.
    Shown once per code; a code the gateway replaces gets a screen of its own."""
    art = big_digits(code)
    lines = ["", "  Enter this code on the gateway:", ""]
    if art is not None and 4 + len(art.splitlines()[0]) <= width:
        lines += ["    " + row if row else "" for row in art.splitlines()]
    else:
        lines.append("    " + " ".join(code))
    lines.append("")
    if expires_at_ms is not None:
        lines.append(f"  It expires {time_left(expires_at_ms, now_ms)} (at {clock(expires_at_ms)}).")
    lines.append("")
    return "\n".join(lines)


# --- the status screen ------------------------------------------------------------------------------

_LABEL = 12  # "operator:   " and every other label pad to this column
_LIVE = ("connecting", "connected", "pairing", "waiting", "gateway-restarting")


def _field(label: str, value: str, width: int) -> list[str]:
    """``label: value``, the value wrapped at a word under its own column."""
    head = f"{label + ':' if label else '':<{_LABEL}}"
    room = max(20, width - _LABEL)
    wrapped = textwrap.wrap(value, room, break_long_words=False, break_on_hyphens=False) or [""]
    return [head + wrapped[0], *(" " * _LABEL + more for more in wrapped[1:])]


def _commands(*commands: str) -> list[str]:
    """Commands to run, one a line under the value column (a command is never wrapped)."""
    return [" " * (_LABEL + 2) + command for command in commands]


def render_status(current: AgentStatus | None, *, gateway: str | None, device_id: str | None,
                  exec_policy: dict[str, Any] | None = None, now_ms: int | None = None,
                  service_state_dir: str | None = None, width: int = DEFAULT_WIDTH) -> str:
    """The ``status`` screen for the agent's last status (None: it never ran here).
    ``gateway`` and ``device_id`` are the configuration's and the identity's, for when the
    status does not say; ``exec_policy`` is the exec approvals document's report
    (:func:`node_agent.cli.exec_cmd.policy_report`; None when there is none);
    ``service_state_dir`` is set when the state directory read is the system service's (status
    run as root), so the screen says whose it is."""
    from ..agent.status import LinkState, Surface, public_url

    now_ms = _now_ms() if now_ms is None else now_ms
    lines: list[str] = []
    if current is None:
        lines += _field("state", "never run", width)
        lines += _field("gateway", public_url(gateway) or "(not configured)", width)
        lines += _field("device id", device_id or "(no identity yet)", width)
        lines += _exec_lines(exec_policy, None, width)
        lines += _state_dir_line(service_state_dir, width)
        return "\n".join(lines) + "\n"

    state = current.state.value
    if current.stale:
        updated = f" (last update {clock(current.updated_at_ms)})" if current.updated_at_ms else ""
        state += f": the agent is not running{updated}"
    elif current.state is LinkState.CONNECTED and current.connected_at_ms:
        state += f" since {clock(current.connected_at_ms)}"
    elif (current.state is LinkState.WAITING and current.retry_in_seconds is not None
          and current.updated_at_ms is not None):
        state += f"; next attempt at {clock(current.updated_at_ms + int(current.retry_in_seconds * 1000))}"
    if current.mode == "pair" and current.state.value in _LIVE and not current.stale:
        state += " (in `node-agent pair`)"
    lines += _field("state", state, width)

    lines += _field("gateway", current.gateway or public_url(gateway) or "(not configured)", width)
    # What the gateway said in its hello: the dialect, its version and the protocol it chose.
    about = [f"{current.dialect} dialect"] if current.dialect else []
    if current.server_version:
        about.append(f"gateway {current.server_version}")
    if current.protocol is not None:
        about.append(f"protocol {current.protocol}")
    if about:
        lines += _field("", ", ".join(about), width)
    lines += _field("device id", current.device_id or device_id or "(no identity yet)", width)
    if current.display_name:
        lines += _field("name", current.display_name, width)
    if current.secret_store:
        lines += _field("secrets", f"{current.secret_store} store", width)

    pairing = current.pairing
    if current.state is LinkState.PAIRING and pairing is not None and pairing.code:
        until = (f" (expires {time_left(pairing.expires_at_ms, now_ms)}, at {clock(pairing.expires_at_ms)})"
                 if pairing.expires_at_ms else "")
        lines += _field("pairing", f"enter code {pairing.code} on the gateway{until}", width)
    elif current.state is LinkState.PAIRING and pairing is not None:
        lines += _field("pairing", "waiting for approval; on the gateway host run:", width)
        lines += _commands(f"openclaw devices approve {pairing.request_id or '<requestId>'}")
    if current.surface is Surface.PENDING:
        lines += _field("commands", "awaiting approval; on the gateway host run:", width)
        lines += _commands("openclaw nodes pending", "openclaw nodes approve <requestId>")
    elif current.surface is Surface.UNCONFIRMED:
        lines += _field("commands", "not reported by this gateway; on the gateway host check:", width)
        lines += _commands("openclaw nodes pending")
    if current.surface in (Surface.PENDING, Surface.UNCONFIRMED) and current.server_version \
            and current.dialect == "openclaw":
        # While a person is about to approve: where this release allows the commands beyond its defaults.
        from ..protocol.releases import profile_for

        lines += _field("allowlist", f"{profile_for(current.server_version).allowlist_key} (the gateway's key "
                                     "for node commands beyond its defaults)", width)

    link = current.operator_link
    if link is not None:
        text = link.state.value
        if link.pairing is not None and link.pairing.request_id:
            lines += _field("operator", f"{text}; approve its role on the gateway host:", width)
            lines += _commands(f"openclaw devices approve {link.pairing.request_id}")
        else:
            if link.last_error and link.state is not LinkState.CONNECTED:
                text += f": {link.last_error}"
            lines += _field("operator", text, width)
            if link.hint:
                lines += _field("", f"to fix: {link.hint}", width)

    if current.voice_wake_triggers is not None:
        lines += _field("wake words", ", ".join(current.voice_wake_triggers) or "(none)", width)
    if current.voice is not None:
        lines += _field("voice", f"mode {current.voice.mode}; unsupported triggers: "
                                 f"{', '.join(current.voice.unsupported_triggers) or 'none'}", width)
    lines += _exec_lines(exec_policy, current.exec, width)
    lines += _tools_lines(current.tools, width)
    for refusal in current.refused_events:
        lines += _field("refused", f"node.event {refusal.event} ({refusal.reason}) x{refusal.count}", width)
    if current.token_save_error:
        lines += _field("token", f"not saved: {current.token_save_error}", width)
    if current.last_error and current.state not in (LinkState.CONNECTED, LinkState.PAIRING):
        lines += _field("last error", current.last_error, width)
    if current.hint:
        lines += _field("to fix", current.hint, width)
    lines += _state_dir_line(service_state_dir, width)
    return "\n".join(lines) + "\n"


def _state_dir_line(service_state_dir: str | None, width: int) -> list[str]:
    if service_state_dir is None:
        return []
    return _field("state dir", f"{service_state_dir} (the system service's; --state-dir to look at another)", width)


def _tools_lines(section: ToolsStatus | None, width: int) -> list[str]:
    """What the tools room published, what the gateway keeps of it, and which servers fail."""
    if section is None:
        return []
    from ..agent.status import McpServerState

    broken = [s.name for s in section.servers if s.state is McpServerState.FAILING]
    kept = "" if section.kept is None else f", the gateway keeps {section.kept}"
    return _field("tools", f"{len(section.published)} published{kept}"
                           + (f"; failing: {', '.join(broken)}" if broken else "") + " (node-agent tools list)", width)


def _exec_lines(policy: dict[str, Any] | None, section: ExecStatus | None, width: int) -> list[str]:
    """The policy for running commands in force (from the document itself), and the last denials."""
    if policy is None:
        return []
    defaults = policy["defaults"]
    if policy.get("problem"):
        lines = _field("exec", f"NOT IN FORCE, every command denied: {policy['problem']}", width)
    else:
        entries = sum(len(agent["allowlist"]) for agent in policy["agents"].values())
        noun = "entry" if entries == 1 else "entries"
        lines = _field("exec", f"security={defaults['security']} ask={defaults['ask']} "
                               f"askFallback={defaults['askFallback']}, {entries} allowlist {noun} "
                               "(node-agent exec policy)", width)
    for denial in (section.last_denials if section is not None else ())[-3:]:
        lines += fit(f"  denied:  {denial.command} ({denial.reason})", width).split("\n")
    return lines


# --- the doctor report ----------------------------------------------------------------------------


_SYMBOLS = {"ok": "✓", "warn": "!", "fail": "✗", "skip": "-"}
_ASCII = {"ok": "ok", "warn": "!", "fail": "x", "skip": "-"}


def render_doctor(checks: Sequence[Check], *, encoding: str | None = "utf-8", width: int = DEFAULT_WIDTH) -> str:
    """The table people read: symbol, name, detail, and the fix on the line below; a detail
    or fix longer than the terminal wraps at a word under its own column."""
    symbols = _SYMBOLS
    try:
        "".join(_SYMBOLS.values()).encode(encoding or "ascii")
    except (UnicodeEncodeError, LookupError):
        symbols = _ASCII  # a Windows console in cp1252 cannot print ✓
    name_width = max((len(c.name) for c in checks), default=0)
    column = 3 + name_width + 2
    room = max(20, width - column)

    def wrap(text: str) -> list[str]:
        return textwrap.wrap(text, room, break_long_words=False, break_on_hyphens=False) or [""]

    lines = []
    for c in checks:
        detail = wrap(c.detail)
        lines.append(f"{symbols[c.status.value]:>2} {c.name:<{name_width}}  {detail[0]}")
        lines += [" " * column + more for more in detail[1:]]
        if c.fix and c.status.value != "ok":
            fix = textwrap.wrap(f"fix: {c.fix}", room, break_long_words=False, break_on_hyphens=False,
                                subsequent_indent="     ")
            lines += [" " * column + part for part in fix]
    counts = {s: sum(1 for c in checks if c.status.value == s) for s in _SYMBOLS}
    lines.append(f"{counts['ok']} ok, {counts['warn']} warning(s), {counts['fail']} failed, "
                 f"{counts['skip']} skipped")
    return "\n".join(lines) + "\n"
