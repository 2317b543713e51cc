"""``node-agent run`` (the daemon) and ``node-agent pair`` (the same agent, until approved).

This is the composition root: it opens the secret store, loads or creates the identity, picks
the platform adapter, builds the :class:`~node_agent.agent.node.Agent`, and owns process
concerns: signals (first SIGTERM/SIGINT closes the socket cleanly and exits 0; a second one
exits at once), systemd notification, and the terminal output of ``pair``.
"""

from __future__ import annotations

import argparse
import os
import signal
from typing import TYPE_CHECKING, Callable

from .options import config_from_args

if TYPE_CHECKING:
    from ..config import Config

if TYPE_CHECKING:
    from ..agent.link import Notice
    from ..agent.status import AgentStatus


def add_parser(sub, common: Callable[[argparse.ArgumentParser], None]) -> None:
    p = sub.add_parser("run", help="run the agent (the daemon)")
    common(p)
    p.set_defaults(func=run)
    p = sub.add_parser("pair", help="pair this device with the gateway (foreground until approved)")
    common(p)
    p.add_argument("--setup-code", metavar="CODE", help="an OpenClaw setup code (openclaw qr) or oc-pair:// link")
    p.add_argument("--timeout", type=float, metavar="SECONDS", help="give up after this long (default: never)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import trio

    from ..logs import register_secret, setup_logging

    pair_mode = args.command == "pair"
    setup = None
    overrides: dict[str, object] = {}
    if pair_mode and getattr(args, "setup_code", None):
        from ..setup_code import decode_setup_code

        setup = decode_setup_code(args.setup_code)
        if args.gateway is None:
            overrides["gateway_url"] = setup.url
        if setup.tls_fingerprint and args.tls_fingerprint is None:
            overrides["tls_fingerprint"] = setup.tls_fingerprint
    config = config_from_args(args, **overrides)
    setup_logging(config.log_level)
    if setup is not None:
        register_secret(setup.bootstrap_token)
        if setup.expired():
            from ..errors import ConfigError

            raise ConfigError("the setup code has expired", hint="ask the gateway for a new one (`openclaw qr`)")
    out = _printer() if pair_mode else None
    return trio.run(serve, config, pair_mode, setup.bootstrap_token if setup else None,
                    getattr(args, "timeout", None), out)


def _printer() -> Callable[[Notice | str], None]:
    """The ``pair`` terminal: notices as a person reads them (a pairing code in large digits)."""
    def out(notice: Notice | str) -> None:
        if isinstance(notice, str):
            print(notice, flush=True)
            return
        pending = notice.pending
        if pending is not None and pending.code:
            print(big_digits(pending.code), flush=True)
        print(notice.text, flush=True)

    return out


async def serve(config: Config, pair_mode: bool = False, bootstrap=None, timeout: float | None = None,
                out: Callable[[Notice | str], None] | None = None, *,
                ready: Callable[[object], None] | None = None) -> int:
    import trio

    from ..adapters import select_adapter
    from ..agent.commands import builtin_registry
    from ..agent.node import EXIT_OK, Agent
    from ..agent.status import LinkState, StatusBoard, Surface
    from ..identity import load_or_create
    from ..logs import register_secret
    from ..secrets import open_store

    register_secret(config.shared_token)
    register_secret(config.password)
    adapter = select_adapter(config.adapter)
    store = await open_store(config.state_dir, backend=config.secret_backend, timeout=config.secret_timeout)
    identity, record = await load_or_create(config.state_dir, store, platform=adapter.platform,
                                            device_family=adapter.device_family)
    register_secret(identity.private_secret())
    if (record.platform, record.device_family) != (adapter.platform, adapter.device_family):
        # The gateway pinned what we sent at pairing; changing it would ask for re-approval.
        import logging

        logging.getLogger("node_agent").warning(
            "adapter %s reports platform %s/%s but this identity was paired as %s/%s; keeping the paired values",
            adapter.name, adapter.platform, adapter.device_family, record.platform, record.device_family)
    status = StatusBoard(config.state_dir, mode="pair" if pair_mode else "run")
    notifier = _sd_notifier(status)
    registry = builtin_registry()
    voice = _voice_extension(config, adapter, status)
    if voice is not None:
        # `pair` declares the same commands `run` will: a wider surface later would make the
        # gateway ask a person to approve the node's commands a second time.
        voice.register(registry)
    if pair_mode:
        voice = None  # ...but it does not open the microphone or listen
    link = _operator_link(config, voice, store, identity, record, status) if voice is not None else None
    agent = Agent(config, store=store, identity=identity, record=record, adapter=adapter, status=status,
                  registry=registry, bootstrap_token=bootstrap, exit_when_paired=pair_mode, notices=out,
                  extensions=[ext for ext in (voice, link) if ext is not None] or None)
    if pair_mode and out is not None:
        out(f"Pairing '{config.display_name}' with {config.gateway_url}\n"
            f"  device id: {identity.fingerprint} ({identity.device_id})\n"
            f"  secrets:   {store.name} store")
    if ready is not None:
        ready(agent)
    code = EXIT_OK
    async with trio.open_nursery() as nursery:
        nursery.start_soon(status.run)
        nursery.start_soon(_signals, agent)
        if voice is not None:
            nursery.start_soon(voice.run)
        if link is not None:
            nursery.start_soon(link.run)
        if notifier is not None:
            nursery.start_soon(notifier.watchdog_loop)
            notifier.notify(READY="1", STATUS="starting")
        if timeout is not None:
            with trio.move_on_after(timeout) as scope:
                code = await agent.run()
            if scope.cancelled_caught:
                status.close(state=LinkState.STOPPED)
                if out is not None:
                    out(f"not paired within {timeout:g} s; run `node-agent pair` again after approving")
                code = 1
        else:
            code = await agent.run()
        if link is not None:
            await link.stop()
        if notifier is not None:
            notifier.notify(STOPPING="1")
        nursery.cancel_scope.cancel()
    if pair_mode and out is not None and code == EXIT_OK and status.current.surface is Surface.APPROVED:
        out("paired: this device is an approved node. Start the service or run `node-agent run`.")
    elif pair_mode and out is not None and code == EXIT_OK and status.current.surface is Surface.UNCONFIRMED:
        out(f"paired: this device is approved. Its commands need `openclaw nodes approve` on the gateway, "
            f"which this gateway (openclaw {status.current.server_version}) does not report to the node; "
            "then start the service or run `node-agent run`.")
    return code


def _voice_extension(config: Config, adapter, status):
    """The voice pipeline, when ``[voice] enabled = true``. Built before connecting so a broken
    voice setup is reported at start, not on the first wake."""
    if not config.voice.enabled:
        return None
    from ..voice.extension import VoiceExtension

    return VoiceExtension(config.voice, adapter, status)


def _operator_link(config: Config, voice, store, identity, record, status):
    """The second, operator-role connection that hears OpenClaw's ``talk.mode`` (which the
    gateway sends to operators only), when ``[voice] operator_link = true``."""
    if not voice.settings.operator_link:
        return None
    from ..agent.operator_link import OperatorLink

    return OperatorLink(config, store=store, identity=identity, record=record, status=status,
                        on_event=voice.on_operator_event)


def _sd_notifier(status):
    try:
        from ..service.sd_notify import SdNotify
    except ImportError:
        return None
    notifier = SdNotify.from_env()
    if notifier is None:
        return None

    last: list[str] = []

    def push(snapshot: AgentStatus) -> None:
        line = describe_status(snapshot)
        if last != [line]:  # STATUS= only when what it says changes
            last[:] = [line]
            notifier.notify(STATUS=line)

    status.subscribe(push)
    return notifier


def describe_status(snapshot: AgentStatus) -> str:
    """One line for systemd's ``STATUS=`` (``systemctl status`` shows it)."""
    from ..agent.status import LinkState, Surface

    state = snapshot.state
    if state is LinkState.PAIRING:
        pairing = snapshot.pairing
        if pairing is not None and pairing.code:
            return f"pairing: enter code {pairing.code} on the gateway"
        return f"pairing: waiting for approval (request {(pairing.request_id if pairing else None) or '?'})"
    if state is LinkState.CONNECTED:
        surface = {Surface.PENDING: " (commands awaiting approval)",
                   Surface.UNCONFIRMED: " (commands: not reported by the gateway)"}.get(snapshot.surface, "")
        return f"connected to {snapshot.gateway}{surface}"
    if state is LinkState.WAITING:
        return f"disconnected: {snapshot.last_error}; retry in {snapshot.retry_in_seconds} s"
    return state.value


async def _signals(agent) -> None:
    import trio

    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        stopping = False
        async for _sig in signals:
            if stopping:
                os._exit(1)  # second signal: the person means it
            stopping = True
            agent.request_stop()


_DIGITS = {
    "0": [" _ ", "| |", "|_|"], "1": ["   ", "  |", "  |"], "2": [" _ ", " _|", "|_ "], "3": [" _ ", " _|", " _|"],
    "4": ["   ", "|_|", "  |"], "5": [" _ ", "|_ ", " _|"], "6": [" _ ", "|_ ", "|_|"], "7": [" _ ", "  |", "  |"],
    "8": [" _ ", "|_|", "|_|"], "9": [" _ ", "|_|", " _|"],
}


def big_digits(code: str) -> str:
    """A pairing code in seven-segment digits, doubled in width, readable across a room."""
    rows = ["", "", ""]
    for ch in code:
        glyph = _DIGITS.get(ch, [" ", ch, " "])
        for i in range(3):
            rows[i] += "".join(c * 2 for c in glyph) + "  "
    return "\n".join("    " + row.rstrip() for row in rows)

