"""The doctor's runner: every check, in a fixed order, each given what it needs.

:data:`CHECKS` is the whole report. Each check module in this package has a pure function that
words one finding (testable on its own) and an ``async def run(ctx)`` that feeds it from the
:class:`~.context.Context`; a :class:`Step` names the line, points at ``run`` and says what it
needs from the steps before it. A step whose need is unmet is a skip that says so, rather than
a guess. Adding a check is one module and one line here.

Checks never raise; if one does anyway (a bug), the runner reports it as that check's failure
and carries on, so one broken check cannot hide the others.
"""

from __future__ import annotations

import logging
from typing import Any, Awaitable, Callable, Iterable, Sequence

import attrs

from ..config import Config
from . import (
    audio,
    config,
    exec_approvals,
    gateway,
    identity,
    pairing,
    secret_store,
    service,
    speech,
    state_dir,
    tls,
    tools,
    wake,
)
from .check import Check, Status, fail, skip
from .context import Context, DoctorOptions, Needs

log = logging.getLogger("node_agent.doctor")


@attrs.frozen
class Step:
    name: str
    #: One line, or several (``mcp <server>``: one per configured server, none when there is none).
    run: Callable[[Context], Awaitable[Check | list[Check]]]
    needs: Needs = Needs.NOTHING


#: Every line of the report, in order.
CHECKS: tuple[Step, ...] = (
    Step("config", config.run),
    Step("state dir", state_dir.run, Needs.CONFIG),
    Step("secret store", secret_store.run, Needs.CONFIG),
    Step("identity", identity.run, Needs.STORE),
    Step("gateway", gateway.run, Needs.CONFIG),
    Step("tls", tls.run, Needs.CONFIG),
    Step("pairing", pairing.run, Needs.STORE),
    Step("audio", audio.run),
    Step("wake word", wake.run),
    Step("speech", speech.run),
    Step("exec approvals", exec_approvals.run, Needs.CONFIG),
    Step("mcp servers", tools.run, Needs.CONFIG),
    Step("service", service.run),
)


async def run_checks(load_config: Callable[[], Config], options: DoctorOptions = DoctorOptions(),
                     steps: Sequence[Step] = CHECKS) -> list[Check]:
    """Run every step in order; ``load_config`` is called once, by the first."""
    ctx = Context(load_config, options)
    checks: list[Check] = []
    for step in steps:
        unmet = ctx.unmet(step.needs)
        if unmet is not None:
            checks.append(skip(step.name, f"needs {unmet.value}"))
            continue
        try:
            found = await step.run(ctx)
            checks += found if isinstance(found, list) else [found]
        except Exception as exc:  # a bug in one check must not hide the others
            log.error("doctor check %r failed", step.name, exc_info=True)
            checks.append(fail(step.name, f"the check itself failed ({type(exc).__name__}: {exc})",
                               "a bug in node-agent doctor: please report it with the output of "
                               "`node-agent doctor --json`"))
    return checks


def exit_code(checks: Iterable[Check]) -> int:
    return 1 if any(c.status is Status.FAIL for c in checks) else 0


def report_json(checks: Sequence[Check]) -> dict[str, Any]:
    counts = {s.value: sum(1 for c in checks if c.status is s) for s in Status}
    return {"ok": exit_code(checks) == 0, "counts": counts, "checks": [c.to_json() for c in checks]}
