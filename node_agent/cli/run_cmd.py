"""``node-agent run`` (the daemon) and ``node-agent pair`` (the same agent, until approved).

This is the composition root: it locks the state directory, opens the secret store, loads or
creates the identity, picks the platform adapter, builds the :class:`~node_agent.agent.node.Agent`,
and owns process concerns: signals (first SIGTERM/SIGINT closes the socket cleanly and exits 0; a
second one exits at once), systemd notification, and the terminal output of ``pair``.

Order of the start, and why:

1. The state directory's lock (:mod:`node_agent.lock`), before anything writes there and before
   Trio is even imported: a second agent on the directory exits at once (status 75), naming the
   first, having changed nothing.
2. The status board, fresh: a start that fails from here on (a locked keyring, an unreadable
   identity) is what ``status`` shows next, not the previous run's state and last error.
3. The secret store, then the identity: from the store for a durable store, and for ``memory``
   an identity of this process only, so a memory run leaves nothing behind that a later run
   would trip over.

``pair`` is honest about what it leaves behind: it refuses the ``memory`` store, and it exits
non-zero, saying what to fix, when the device token could not be saved (a full disk, a keyring
that stopped answering), even though the gateway approved the device.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import os
import signal
from typing import TYPE_CHECKING, Any, Callable

from .options import config_from_args

if TYPE_CHECKING:
    from ..agent.link import Notice
    from ..agent.status import AgentStatus
    from ..config import Config
    from ..lock import StateLock


def add_parser(sub, common: Callable[[argparse.ArgumentParser], None]) -> None:
    p = sub.add_parser("run", help="run the agent (the daemon)")
    common(p)
    p.set_defaults(func=run, exit_at_once=True)
    p = sub.add_parser("pair", help="pair this device with the gateway (foreground until approved)")
    common(p)
    p.add_argument("--setup-code", metavar="CODE", help="an OpenClaw setup code (openclaw qr) or oc-pair:// link")
    p.add_argument("--timeout", type=float, metavar="SECONDS", help="give up after this long (default: never)")
    p.set_defaults(func=run, exit_at_once=True)


def run(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..lock import acquire
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
            raise ConfigError("the setup code has expired", hint="ask the gateway for a new one (`openclaw qr`)")
    if pair_mode and config.secret_backend == "memory":
        raise ConfigError("`pair` with the memory secret store would forget the device token when it exits",
                          hint="pair with --secret-backend auto, keyring or file")
    out = _printer() if pair_mode else None
    with acquire(config.state_dir, args.command) as lock:
        import trio

        return trio.run(functools.partial(serve, config, pair_mode, setup.bootstrap_token if setup else None,
                                          getattr(args, "timeout", None), out, lock=lock))


def _printer() -> Callable[[Notice | str], None]:
    """The ``pair`` terminal: notices as a person reads them (:mod:`.screens`: on a terminal a
    pairing code is shown once, in large digits, with the time left; a pipe gets plain text)."""
    import sys

    from .screens import DEFAULT_WIDTH, fit, render_notice, terminal_width

    def out(notice: Notice | str) -> None:
        width = terminal_width(sys.stdout)
        if isinstance(notice, str):
            print(fit(notice, width) if width else notice, flush=True)
            return
        print(render_notice(notice, terminal=width is not None, width=width or DEFAULT_WIDTH), flush=True)

    return out


async def serve(config: Config, pair_mode: bool = False, bootstrap=None, timeout: float | None = None,
                out: Callable[[Notice | str], None] | None = None, *,
                ready: Callable[[object], None] | None = None, lock: StateLock | None = None) -> int:
    """Run the agent (or ``pair``) to its end; returns the exit status. ``lock`` is the state
    directory's, when the caller took it already (:func:`run` does, before importing Trio);
    without it, serve takes it itself (and raises :class:`~node_agent.errors.StateDirBusy`)."""
    import trio

    from ..lock import acquire

    if lock is not None:
        return await _serve(config, pair_mode, bootstrap, timeout, out, ready)
    with await trio.to_thread.run_sync(acquire, config.state_dir, "pair" if pair_mode else "run"):
        return await _serve(config, pair_mode, bootstrap, timeout, out, ready)


async def _serve(config: Config, pair_mode: bool, bootstrap, timeout: float | None,
                 out: Callable[[Notice | str], None] | None, ready: Callable[[object], None] | None) -> int:
    import trio

    from .. import __version__
    from ..agent.node import EXIT_OK, Agent
    from ..agent.status import LinkState, StatusBoard
    from ..errors import NodeAgentError
    from ..logs import register_secret

    register_secret(config.shared_token)
    register_secret(config.password)
    register_secret(_url_password(config.gateway_url))
    status = StatusBoard(config.state_dir, mode="pair" if pair_mode else "run", gateway=config.gateway_url,
                         display_name=config.display_name, version=__version__)
    try:
        parts = await _start(config, status, pair_mode)
    except NodeAgentError as exc:
        # This start's own failure, in place of whatever the last run left in status.json.
        status.close(state=LinkState.ERROR, last_error=exc.message, hint=exc.hint)
        raise
    notifier = _sd_notifier(status)
    store, identity, voice, link, tools = parts.store, parts.identity, parts.voice, parts.link, parts.tools
    agent = Agent(config, store=store, identity=identity, record=parts.record, adapter=parts.adapter,
                  status=status, registry=parts.registry, bootstrap_token=bootstrap, exit_when_paired=pair_mode,
                  notices=out, extensions=parts.extensions() or None)
    if pair_mode and out is not None:
        from ..agent.status import public_url
        from .screens import render_pair_header

        out(render_pair_header(display_name=config.display_name, gateway=public_url(config.gateway_url) or "",
                               fingerprint=identity.fingerprint, device_id=identity.device_id,
                               store_name=store.name))
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
        if tools is not None:
            nursery.start_soon(tools.run)
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
    if pair_mode:
        code = await _pair_outcome(agent, code, out)
    return code


def _audit_log(config: Config):
    """The one audit log of the process: command runs and MCP tool calls append to it, and one
    writer rotates it (its size is ``[exec] audit_max_bytes``)."""
    from ..audit import AUDIT_FILE, AuditLog

    return AuditLog(config.state_dir / AUDIT_FILE, max_bytes=config.exec.audit_max_bytes)


def _exec_extension(config: Config, adapter, status, audit):
    """``system.run`` and friends when ``[exec]`` (or the adapter's default) says so."""
    if not config.exec.active_for(adapter.name):
        return None
    import os

    from ..childenv import without_secrets
    from ..exec.extension import ExecExtension, build_service

    service = build_service(config.state_dir, base_env=lambda: without_secrets(os.environ), settings=config.exec,
                            audit=audit)
    return ExecExtension(service, status)


async def _start(config: Config, status, pair_mode: bool):
    """Everything between the lock and the first connect that can fail for a local reason."""
    from ..adapters import select_adapter
    from ..agent.commands import builtin_registry
    from ..identity import ephemeral, load_or_create
    from ..logs import register_secret
    from ..secrets import open_store

    adapter = select_adapter(config.adapter)
    store = await open_store(config.state_dir, backend=config.secret_backend, timeout=config.secret_timeout)
    if store.durable:
        identity, record = await load_or_create(config.state_dir, store, platform=adapter.platform,
                                                device_family=adapter.device_family)
    else:
        identity, record = ephemeral(platform=adapter.platform, device_family=adapter.device_family)
    register_secret(identity.private_secret())
    if (record.platform, record.device_family) != (adapter.platform, adapter.device_family):
        # The gateway pinned what we sent at pairing; changing it would ask for re-approval.
        import logging

        logging.getLogger("node_agent").warning(
            "adapter %s reports platform %s/%s but this identity was paired as %s/%s; keeping the paired values",
            adapter.name, adapter.platform, adapter.device_family, record.platform, record.device_family)
    registry = builtin_registry()
    voice = _voice_extension(config, adapter, status)
    if voice is not None:
        # `pair` declares the same commands `run` will: a wider surface later would make the
        # gateway ask a person to approve the node's commands a second time.
        voice.register(registry)
    audit = _audit_log(config)
    exec_ext = _exec_extension(config, adapter, status, audit)
    if exec_ext is not None:
        exec_ext.register(registry)  # declared by `pair` too: the same surface, approved once
        exec_ext.prepare_store()
    tools = _tools_extension(config, adapter, status, audit)
    if tools is not None:
        tools.register(registry)  # like voice: `pair` declares mcp.tools.call.v1 too...
    if pair_mode:
        voice = tools = None  # ...but it does not open the microphone, listen or start a server
    link = _operator_link(config, voice, store, identity, record, status) if voice is not None else None
    return _Parts(store=store, identity=identity, record=record, adapter=adapter, registry=registry, voice=voice,
                  link=link, exec_ext=exec_ext, tools=tools)


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class _Parts:
    """What :func:`_start` built; the extensions are None where the configuration (or ``pair``)
    leaves them out."""

    store: Any
    identity: Any
    record: Any
    adapter: Any
    registry: Any
    voice: Any = None
    link: Any = None
    exec_ext: Any = None
    tools: Any = None

    def extensions(self) -> list[Any]:
        return [ext for ext in (self.voice, self.link, self.exec_ext, self.tools) if ext is not None]


async def _pair_outcome(agent, code: int, out: Callable[[Notice | str], None] | None) -> int:
    """``pair``'s last word. Approved is not paired until the device token is stored: the next
    ``run`` (without the shared token) depends on it."""
    from ..agent.node import EXIT_FATAL, EXIT_OK
    from ..agent.status import Surface
    from ..errors import Retry

    say = out or (lambda text: None)
    failure = await agent.link.tokens.retry_save()
    if failure is not None:
        fix = (failure.hint or "make the secret store writable (see `node-agent doctor`)").rstrip(".")
        say(f"error: the gateway approved this device, but its device token could not be saved: {failure.message}\n"
            f"  to fix: {fix}; then run `node-agent pair` again: the gateway hands the token over again on "
            "connect, without a new approval")
        return EXIT_FATAL if failure.retry is Retry.FATAL else 1
    if code == EXIT_OK and agent.link.tokens.token is None:
        # The device is approved, but `run` has nothing of its own to connect with.
        version = agent.status.current.server_version
        say(f"paired, but this gateway{f' (openclaw {version})' if version else ''} gave the node no device token: "
            "`node-agent run` and the service connect with the gateway token, so keep OPENCLAW_GATEWAY_TOKEN "
            "(or --token-file) configured for them.")
    if code == EXIT_OK and agent.status.current.surface is Surface.APPROVED:
        say("paired: this device is an approved node. Run the service or `node-agent run`.")
    elif code == EXIT_OK and agent.status.current.surface is Surface.UNCONFIRMED:
        say("paired: this device is approved. Its commands need `openclaw nodes approve` on the gateway, which "
            f"this gateway (openclaw {agent.status.current.server_version}) does not report to the node; then "
            "run the service or `node-agent run`.")
    return code


def _url_password(url: str) -> str | None:
    from urllib.parse import urlsplit

    try:
        return urlsplit(url).password
    except ValueError:
        return None


def _voice_extension(config: Config, adapter, status):
    """The voice pipeline, when ``[voice] enabled = true``. Built before connecting so a broken
    voice setup is reported at start, not on the first wake."""
    if not config.voice.enabled:
        return None
    from ..voice.extension import VoiceExtension

    return VoiceExtension(config.voice, adapter, status, state_dir=config.state_dir)


def _tools_extension(config: Config, adapter, status, audit):
    """The MCP tools room, when ``[mcp]`` configures a server or the builtin tools. Built before
    connecting, so a missing SDK or a GPIO line on a board without GPIO stops the start."""
    if not config.mcp.declares_tools:
        return None
    import time

    from ..tools.extension import ToolsExtension

    return ToolsExtension(config.mcp, adapter, status, agent_started_at=time.time(), audit=audit.append)


def _operator_link(config: Config, voice, store, identity, record, status):
    """The second, operator-role connection that hears OpenClaw's ``talk.mode`` (which the
    gateway sends to operators only), when ``[voice] operator_link = true``."""
    if not voice.settings.operator_link:
        return None
    from ..agent.operator_link import OperatorLink

    link = OperatorLink(config, store=store, identity=identity, record=record, status=status,
                        on_event=voice.on_operator_event)
    voice.attach_operator_link(link)  # replies in the gateway's voice (talk.speak) while it is up
    return link


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
