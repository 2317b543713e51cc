"""One line of the doctor's report: :class:`Check`, its :class:`Status`, and the four makers.

A check returns one :class:`Check`: ``ok`` / ``warn`` / ``fail`` / ``skip``, a one-line detail,
and for anything not ``ok`` a one-line fix a person can act on. Checks never raise: an error the
agent would die of is what a check *reports*.
"""

from __future__ import annotations

import enum
from typing import Any

import attrs


class Status(str, enum.Enum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"


#: From best to worst, for checks that collect several findings and report the worst.
SEVERITY = (Status.OK, Status.SKIP, Status.WARN, Status.FAIL)


@attrs.frozen
class Check:
    """One line of the report. ``fix`` is one line a person can act on (None when ``ok``)."""

    name: str
    status: Status
    detail: str
    fix: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status.value, "detail": self.detail, "fix": self.fix}


def ok(name: str, detail: str) -> Check:
    return Check(name, Status.OK, detail)


def warn(name: str, detail: str, fix: str | None) -> Check:
    return Check(name, Status.WARN, detail, fix)


def fail(name: str, detail: str, fix: str | None) -> Check:
    return Check(name, Status.FAIL, detail, fix)


def skip(name: str, detail: str, fix: str | None = None) -> Check:
    return Check(name, Status.SKIP, detail, fix)


class Findings:
    """Notes gathered by one check, reported as one line at the worst status seen (the fix is
    the one that came with the worst)."""

    def __init__(self, name: str):
        self.name = name
        self.notes: list[str] = []
        self.status = Status.OK
        self.fix: str | None = None

    def note(self, text: str, status: Status = Status.OK, fix: str | None = None) -> None:
        self.notes.append(text)
        if SEVERITY.index(status) > SEVERITY.index(self.status):
            self.status, self.fix = status, fix

    def check(self) -> Check:
        return Check(self.name, self.status, "; ".join(self.notes), self.fix)
