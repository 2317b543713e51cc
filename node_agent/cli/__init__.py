"""The ``node-agent`` command line.

Only ``argparse`` is imported up front: each command imports what it needs when it runs, so
``node-agent identity`` does not pay for Trio and ``node-agent run`` reaches ``hello-ok`` fast.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence


def _common(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("configuration (flags override environment, which overrides the file)")
    g.add_argument("--config", metavar="FILE", help="TOML config file (env NODE_AGENT_CONFIG)")
    g.add_argument("--gateway", metavar="URL", help="gateway URL (env OPENCLAW_GATEWAY_URL; default ws://127.0.0.1:18789)")
    g.add_argument("--token-file", metavar="FILE",
                   help="file holding the gateway's shared token (or env OPENCLAW_GATEWAY_TOKEN; never a flag value)")
    g.add_argument("--state-dir", metavar="DIR", help="where identity and state live (env NODE_AGENT_STATE_DIR)")
    g.add_argument("--display-name", metavar="NAME", help="name shown on the gateway (default: hostname)")
    g.add_argument("--protocol", choices=("openclaw", "jsonrpc", "auto"), help="wire dialect (default openclaw)")
    g.add_argument("--adapter", choices=("linux", "pi", "macos", "windows"), help="platform adapter (default: detected)")
    g.add_argument("--secret-backend", choices=("auto", "keyring", "file", "memory"), help="where secrets live")
    g.add_argument("--allow-insecure-ws", action="store_true", default=None,
                   help="allow plain ws:// to a public host (tokens travel unencrypted)")
    g.add_argument("--tls-ca", metavar="FILE", help="extra CA bundle for wss://")
    g.add_argument("--tls-fingerprint", metavar="SHA256", help="pin the gateway certificate's SHA-256")
    g.add_argument("--log-level", choices=("debug", "info", "warning", "error"))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="node-agent", description="A device-side node for OpenClaw gateways.")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("run", help="run the agent (the daemon)")
    _common(p)
    p = sub.add_parser("pair", help="pair this device with the gateway (foreground until approved)")
    _common(p)
    p.add_argument("--setup-code", metavar="CODE", help="an OpenClaw setup code (openclaw qr) or oc-pair:// link")
    p.add_argument("--timeout", type=float, metavar="SECONDS", help="give up after this long (default: never)")
    p = sub.add_parser("status", help="what the agent is doing (connection, pairing, voice)")
    _common(p)
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("identity", help="this device's id and public key")
    _common(p)
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("unpair", help="forget the device token (and optionally the identity)")
    _common(p)
    p.add_argument("--reset-identity", action="store_true",
                   help="also delete the device key: the gateway will see a new device")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")

    for module in ("service_cmd", "doctor_cmd", "voice_cmd"):
        try:
            mod = __import__(f"node_agent.cli.{module}", fromlist=["add_parser"])
        except ImportError:
            continue
        mod.add_parser(sub, _common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from .. import __version__

        print(__version__)
        return 0
    if args.command is None:
        parser.print_help()
        return 2
    from ..errors import NodeAgentError

    try:
        if args.command in ("run", "pair"):
            from .run_cmd import run

            return run(args)
        if args.command in ("status", "identity", "unpair"):
            from . import info_cmd

            return getattr(info_cmd, args.command)(args)
        mod = __import__(f"node_agent.cli.{args.command}_cmd", fromlist=["run"])
        return mod.run(args)
    except NodeAgentError as exc:
        print(f"node-agent: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"  to fix: {exc.hint}", file=sys.stderr)
        return 78 if exc.retry.value == "fatal" else 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
