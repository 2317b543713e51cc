"""``node-agent doctor``: check the configuration, the state, the gateway, voice and the service.

Picked up by :func:`node_agent.cli.build_parser` (``add_parser``) and dispatched to :func:`run`.
The checks live in :mod:`node_agent.doctor` (one module each); this module only parses flags and
prints (:func:`node_agent.cli.screens.render_doctor`). Exit status: 0 when nothing failed
(warnings allowed), 1 when a check failed. A configuration that does not load is a failed check,
not a crash.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Callable


def add_parser(subparsers, common: Callable[[argparse.ArgumentParser], None]) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "doctor", help="check config, state, secrets, gateway, pairing, audio, wake words, speech and the service",
        description="Look at everything the agent depends on and print what to fix. Exit status 1 if a check "
                    "failed.")
    common(parser)
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--timeout", type=float, default=5.0, metavar="SECONDS",
                        help="for reaching the gateway (TCP, TLS, WebSocket upgrade); default 5")
    parser.add_argument("--no-audio-probe", action="store_true",
                        help="do not open audio devices (microphones to see which are busy, the speech output "
                             "to see that it plays)")
    parser.add_argument("--unit-file", action="append", metavar="FILE", dest="doctor_unit_files",
                        help="verify this systemd unit instead of the installed ones (repeatable)")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    import trio

    from ..config import for_reading
    from ..doctor import DoctorOptions, exit_code, report_json, run_checks
    from .options import config_from_args
    from .screens import render_doctor, terminal_width

    options = DoctorOptions(
        gateway_timeout=args.timeout, probe_audio=not args.no_audio_probe,
        unit_files=[Path(p).expanduser() for p in args.doctor_unit_files] if args.doctor_unit_files else None)
    # Doctor reports problems itself; the stores' own log lines would repeat them out of order.
    # Restored afterwards: the CLI may run inside a longer-lived process (tests, a REPL).
    logger = logging.getLogger("node_agent")
    previous = logger.level
    logger.setLevel(logging.ERROR)
    try:
        checks = trio.run(run_checks, lambda: for_reading(config_from_args(args)), options)
    finally:
        logger.setLevel(previous)
    if args.json:
        print(json.dumps(report_json(checks), indent=2))
    else:
        width = terminal_width(sys.stdout)
        sys.stdout.write(render_doctor(checks, encoding=sys.stdout.encoding, width=width or 10_000))
    return exit_code(checks)
