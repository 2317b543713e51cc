"""The ``pairing`` line: is there a device token for this gateway, and what did the agent last
say about its link (``status.json``, read through :class:`~node_agent.agent.status.AgentStatus`)?

The token is looked up, never shown: "stored" or "no device token" is all a person needs.
"""

from __future__ import annotations

from ..agent.status import AgentStatus, LinkState, Surface, public_url
from ..config import Config
from ..errors import NodeAgentError
from ..secrets import SecretStore, device_token_key
from .check import Check, Findings, Status, fail
from .context import Context

NAME = "pairing"
_RETRYING = (LinkState.WAITING, LinkState.CONNECTING, LinkState.STOPPED)


async def check_pairing(config: Config, store: SecretStore, status: AgentStatus | None) -> Check:
    url = config.gateway_url
    try:
        token = await store.get(device_token_key(url))
    except NodeAgentError as exc:
        return fail(NAME, f"cannot read the device token: {exc.message}", exc.hint)
    found = Findings(NAME)
    if token is None:
        credential = config.shared_token is not None or config.password is not None
        found.note(f"not paired with {url}: no device token in the {store.name} store", Status.WARN,
                   "run `node-agent pair` and approve it on the gateway (`openclaw devices approve <requestId>`)"
                   + ("" if credential else "; it needs the gateway token first: OPENCLAW_GATEWAY_TOKEN or "
                                            "--token-file, or pair with --setup-code"))
    else:
        found.note(f"device token stored for {url}")
    if status is not None:
        _last_status(found, status, public_url(url))
    return found.check()


def _last_status(found: Findings, status: AgentStatus, url: str | None) -> None:
    if status.gateway and status.gateway != url:
        found.note(f"last status is about another gateway ({status.gateway})")
        return
    state = status.state
    found.note(f"last state: {state.value}{' (agent not running)' if status.stale else ''}")
    pairing = status.pairing
    if state is LinkState.ERROR:
        found.note(f"last error: {status.last_error}", Status.FAIL,
                   status.hint or "fix the error above, then start the agent again")
    elif state is LinkState.PAIRING:
        if pairing is not None and pairing.code:
            found.note(f"waiting for code {pairing.code} to be entered on the gateway", Status.WARN,
                       "enter the code on the gateway")
        else:
            request = (pairing.request_id if pairing is not None else None) or "<requestId>"
            found.note(f"waiting for approval (request {request})", Status.WARN,
                       f"on the gateway host: openclaw devices approve {request}")
    elif status.last_error and state in _RETRYING:
        found.note(f"last error: {status.last_error}", Status.WARN,
                   status.hint or "see the gateway line above; the agent retries by itself")
    if status.surface is Surface.PENDING:
        found.note("node commands awaiting approval", Status.WARN,
                   "on the gateway host: openclaw nodes pending; openclaw nodes approve <requestId>")
    elif status.surface is Surface.UNCONFIRMED:
        found.note("this gateway does not tell the node whether its commands are approved "
                   "(check `openclaw nodes pending`)")
    if status.server_version and status.dialect == "openclaw":
        from ..protocol.releases import profile_for

        found.note(f"gateway openclaw {status.server_version}: more node commands are allowed with "
                   f"{profile_for(status.server_version).allowlist_key}")
    if status.token_save_error:
        found.note(f"the device token could not be saved: {status.token_save_error}", Status.WARN,
                   "make the secret store writable (see the secret store line)")


async def run(ctx: Context) -> Check:
    assert ctx.store is not None
    return await check_pairing(ctx.cfg, ctx.store, await ctx.status())
