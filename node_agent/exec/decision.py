"""The decision table: may this command run now, and if not, why not.

One pure function over facts computed elsewhere (the effective policy from the document, the
allowlist verdict from ``matcher.py``, the approval the gateway forwarded). Rows, in order (as
``evaluateSystemRunPolicy`` in ``src/node-host/exec-policy.ts``):

====================  =========================================  =========  ===================
security              condition                                  runs?      reason
====================  =========================================  =========  ===================
deny                  (anything)                                 no         security=deny
any                   ask=always, not approved                   no         approval-required
allowlist             ask=on-miss, not covered, not durable,     no         approval-required
                      not approved
allowlist             ask=off, not covered, not durable,         no         allowlist-miss
                      not approved
allowlist             covered, or durable ("allow always"),      yes
                      or approved
full                  ask != always, or approved                 yes
====================  =========================================  =========  ===================

"covered" means the command could be analysed and every segment matched an entry; "durable"
that every segment matched an ``allow-always`` entry or an exact-command grant exists (it skips
``on-miss``, never ``always``). "approved" is only ever true for a run the gateway tied to a
real approval record; checking that the run matches the approved plan is ``plan.py``'s job and
happens before this.

An ``ask-fallback`` run (the approval timed out and the gateway applied the fallback) is
decided with ``security = min(security, askFallback)`` and ``ask = off``: with the default
``askFallback: deny`` nothing runs.

The node never asks for approval itself: "approval-required" is an answer to the gateway,
which then asks a person and comes back with an approved run.
"""

from __future__ import annotations

import attrs

from .document import Policy

_SECURITY_ORDER = {"deny": 0, "allowlist": 1, "full": 2}
_ASK_ORDER = {"off": 0, "on-miss": 1, "always": 2}


def min_security(a: str, b: str) -> str:
    return a if _SECURITY_ORDER[a] <= _SECURITY_ORDER[b] else b


def max_ask(a: str, b: str) -> str:
    return a if _ASK_ORDER[a] >= _ASK_ORDER[b] else b


@attrs.frozen
class Decision:
    allowed: bool
    #: The ``exec.denied`` reason (None when allowed).
    reason: str | None = None
    #: The error message sent with ``SYSTEM_RUN_DENIED`` (None when allowed).
    message: str | None = None
    #: The security/ask the decision was taken under (after an ask-fallback).
    security: str = "deny"
    ask: str = "off"
    #: The run is allowed by a person's approval rather than by the policy alone.
    by_approval: bool = False


def decide(policy: Policy, *, analysis_ok: bool, covered: bool, durable: bool, approved: bool,
           ask_fallback: bool = False) -> Decision:
    security = min_security(policy.security, policy.ask_fallback) if ask_fallback else policy.security
    ask = "off" if ask_fallback else policy.ask
    covered = analysis_ok and covered
    facts = {"security": security, "ask": ask}
    if security == "deny":
        return Decision(False, "security=deny", "SYSTEM_RUN_DISABLED: security=deny", **facts)
    requires_ask = ask == "always" or (
        not durable and ask == "on-miss" and security == "allowlist" and not covered)
    if requires_ask and not approved:
        return Decision(False, "approval-required", "SYSTEM_RUN_DENIED: approval required", **facts)
    if security == "allowlist" and not covered and not approved and not durable:
        return Decision(False, "allowlist-miss", "SYSTEM_RUN_DENIED: allowlist miss", **facts)
    return Decision(True, by_approval=approved, **facts)
