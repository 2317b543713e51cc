"""The ``node-agent`` command line.

Import rule: the top of the package; anything may be imported from here, nothing imports it.
Only ``argparse`` (and the configuration's constants) is imported up front: each command imports
what it needs when it runs, so ``node-agent identity`` pays for neither Trio nor ``cryptography``
and ``node-agent run`` reaches ``hello-ok`` fast.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence


def _common(parser: argparse.ArgumentParser) -> None:
    from ..config import ADAPTERS, LOG_LEVELS, PROTOCOLS, SECRET_BACKENDS

    g = parser.add_argument_group("configuration (flags override environment, which overrides the file)")
    g.add_argument("--config", metavar="FILE", help="TOML config file (env NODE_AGENT_CONFIG)")
    g.add_argument("--gateway", metavar="URL", help="gateway URL (env OPENCLAW_GATEWAY_URL; default ws://127.0.0.1:18789)")
    g.add_argument("--token-file", metavar="FILE",
                   help="file holding the gateway's shared token (or env OPENCLAW_GATEWAY_TOKEN; never a flag value)")
    g.add_argument("--state-dir", metavar="DIR", help="where identity and state live (env NODE_AGENT_STATE_DIR)")
    g.add_argument("--display-name", metavar="NAME", help="name shown on the gateway (default: hostname)")
    g.add_argument("--protocol", choices=PROTOCOLS, help=f"wire dialect (default {PROTOCOLS[0]})")
    g.add_argument("--adapter", choices=ADAPTERS, help="platform adapter (default: detected)")
    g.add_argument("--secret-backend", choices=SECRET_BACKENDS, help="where secrets live")
    g.add_argument("--allow-insecure-ws", action="store_true", default=None,
                   help="allow plain ws:// to a public host (tokens travel unencrypted)")
    g.add_argument("--tls-ca", metavar="FILE", help="extra CA bundle for wss://")
    g.add_argument("--tls-fingerprint", metavar="SHA256", help="pin the gateway certificate's SHA-256")
    g.add_argument("--log-level", choices=LOG_LEVELS)


#: Every command module: each adds its parsers with ``set_defaults(func=...)``. What a command
#: needs is imported when it runs.
_COMMANDS = ("run_cmd", "info_cmd", "service_cmd", "doctor_cmd", "voice_cmd", "exec_cmd", "tools_cmd")
#: Which module adds each command (a test holds it to what the modules register): a command
#: line that names one builds only that module's parsers, not all seven modules' imports and
#: parsers for a command that reads one file.
_MODULE_OF = {"run": "run_cmd", "pair": "run_cmd", "status": "info_cmd", "identity": "info_cmd",
              "unpair": "info_cmd", "service": "service_cmd", "doctor": "doctor_cmd", "voice": "voice_cmd",
              "exec": "exec_cmd", "tools": "tools_cmd"}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole parser, or with ``command`` (a known command's name) only the parsers of the
    module that adds it: the same arguments, help and errors for that command."""
    import importlib

    parser = argparse.ArgumentParser(prog="node-agent", description="A device-side node for OpenClaw gateways.")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in (_MODULE_OF[command],) if command in _MODULE_OF else _COMMANDS:
        importlib.import_module(f"{__name__}.{name}").add_parser(sub, _common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return _main(list(sys.argv[1:] if argv is None else argv))[0]


def _main(words: list[str]) -> tuple[int, bool]:
    """The command's exit status, and whether it asked to end the process at once
    (``exit_at_once`` in its parser's defaults, see :func:`entry`)."""
    if words == ["--version"]:
        # Answered before the parser is built: building it imports every command module (and
        # through their option lists the configuration package), ~0.2 s for one line.
        from .. import __version__

        print(__version__)
        return 0, True
    parser = build_parser(words[0] if words else None)
    args = parser.parse_args(words)
    if args.version:
        from .. import __version__

        print(__version__)
        return 0, True
    if args.command is None:
        parser.print_help()
        return 2, False
    from ..errors import NodeAgentError
    from ..logs import setup_logging

    # One logging setup (with the secret redactor) for every command; `run` re-levels it from
    # the configuration once that is loaded.
    setup_logging(getattr(args, "log_level", None) or os.environ.get("NODE_AGENT_LOG_LEVEL") or "info")
    at_once = bool(getattr(args, "exit_at_once", False))
    try:
        return args.func(args), at_once
    except NodeAgentError as exc:
        print(f"node-agent: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"  to fix: {exc.hint}", file=sys.stderr)
        if exc.exit_status is not None:
            return exc.exit_status, at_once
        return (78 if exc.retry.value == "fatal" else 1), at_once
    except KeyboardInterrupt:
        return 130, False


def entry(argv: Sequence[str] | None = None) -> None:
    """The console script (``node-agent``) and ``python -m node_agent``: :func:`main`, then exit.

    A command whose parser sets ``exit_at_once`` has nothing left to do when it returns: no
    thread, no open file, no work for an ``atexit`` hook. When ``run`` or ``pair`` returns, the
    close frame has been sent and answered, the secret files are on disk (written with fsync and
    an atomic rename before they are reported saved), the status file is complete (atomically
    renamed; not fsynced, it describes this process) and the agent's tasks are gone; ``status``,
    ``identity`` and ``service print`` only read and print. What is left is interpreter teardown:
    freeing every module and object one by one, which nothing needs: ~0.2 s of CPU between a
    daemon's SIGTERM and its exit, ~4 ms of a ``status``. So the log handlers and streams are
    flushed and the process ends with ``os._exit``. Other commands exit normally (``main`` is
    also what tests and embedders call; it never exits by itself)."""
    code, at_once = _main(sys.argv[1:] if argv is None else list(argv))
    if at_once:
        import logging

        logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    entry()
