"""``node-agent service install|uninstall|status|print``: the CLI face of :mod:`node_agent.service`.

Wiring: the main CLI calls ``add_parser(subparsers, common)`` and, when ``service`` was chosen,
:func:`run` with the parsed namespace (also set as ``func`` on it). ``python -m
node_agent.cli.service_cmd service ...`` runs it stand-alone.

``install`` and ``print`` take the same configuration flags as ``run`` (the ``common`` function
adds them) and bake the ones a person gave into the service's command line, file paths made
absolute, since the service's working directory is not the caller's: ``service install --gateway
wss://gw:18789 --config site.toml`` makes ``ExecStart=... run --gateway wss://gw:18789 --config
/abs/site.toml``. Our own options use ``service_`` destinations so they cannot collide with them.

The token never travels on a command line: ``--token-from-env`` copies ``$OPENCLAW_GATEWAY_TOKEN``
into the 0600 environment file.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from ..service.spec import TOKEN_ENV_VAR, Platform, Scope

#: Metavars that mark an option's value as a path (the main CLI's convention).
_PATH_METAVARS = ("FILE", "DIR")


def _config_only(parser: argparse.ArgumentParser) -> None:
    """The stand-alone stand-in for the main CLI's ``common``: just ``--config``."""
    parser.add_argument("--config", metavar="FILE", help="TOML config file the service runs with")


def add_parser(subparsers, common: Callable[[argparse.ArgumentParser], None] | None = None
               ) -> argparse.ArgumentParser:
    """Add ``service`` and its four actions to ``subparsers``; returns the new parser.

    ``common(parser)`` adds the ``run`` configuration flags to a parser; without it only
    ``--config`` is offered.
    """
    common = common or _config_only
    parser = subparsers.add_parser(
        "service", help="install, remove, inspect or print the background service",
        description="Run node-agent as a service: systemd (Linux), launchd (macOS), Task Scheduler "
                    "(Windows).")
    actions = parser.add_subparsers(dest="service_action", metavar="ACTION", required=True)

    def scope(p: argparse.ArgumentParser) -> None:
        p.add_argument("--user", dest="service_user", action="store_true",
                       help="systemd: a user unit (~/.config/systemd/user) instead of a system unit")

    def shape(p: argparse.ArgumentParser) -> None:
        scope(p)
        p.add_argument("--voice", dest="service_voice", action="store_true",
                       help="allow the sound devices (and Pi GPIO): join 'audio', keep /dev")
        # Reading the parser's action list is the one way to learn which flags `common` added
        # (it returns nothing); those are the ones forwarded to `run`.
        known = len(p._actions)
        common(p)
        p.set_defaults(service_forward=tuple(p._actions[known:]))

    install = actions.add_parser("install", help="write the definition, enable and start it")
    shape(install)
    install.add_argument("--token-from-env", dest="service_token_from_env", action="store_true",
                         help=f"copy ${TOKEN_ENV_VAR} into the 0600 environment file (systemd)")
    scope(actions.add_parser("uninstall", help="stop, disable and remove it (keeps config/state)"))
    scope(actions.add_parser("status", help="show what the service manager reports"))
    print_ = actions.add_parser("print", help="print the definition without installing anything")
    shape(print_)
    print_.add_argument("--platform", dest="service_platform",
                        choices=[p.value for p in Platform],
                        help="generate for this platform (default: the one we run on)")
    print_.set_defaults(exit_at_once=True)  # it only prints (see node_agent.cli.entry)
    parser.set_defaults(func=run)
    return parser


def run_flags(args: argparse.Namespace) -> list[str]:
    """The ``run`` flags given on this command line, as argv for the service (paths absolute)."""
    out: list[str] = []
    for action in getattr(args, "service_forward", ()):
        value = getattr(args, action.dest, None)
        if value is None or value is False or not action.option_strings:
            continue
        flag = action.option_strings[-1]  # the long spelling
        if action.nargs == 0:
            out.append(flag)
        elif action.metavar in _PATH_METAVARS:
            out += [flag, os.path.abspath(os.path.expanduser(str(value)))]
        else:
            out += [flag, str(value)]
    return out


def run(args: argparse.Namespace) -> int:
    """Carry out the parsed ``service`` command; returns the process exit status."""
    from ..service.manage import ServiceError

    try:
        return _run(args)
    except ServiceError as exc:
        print(f"node-agent service: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        return 1
    except PermissionError as exc:
        print(f"node-agent service: {exc.strerror}: {exc.filename}", file=sys.stderr)
        print("hint: a system service needs root (sudo), or use --user", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace) -> int:
    from ..secret import Secret
    from ..service.manage import ServiceError, ServiceManager, current_platform, default_argv, render

    action = args.service_action
    platform = (Platform(args.service_platform) if getattr(args, "service_platform", None)
                else current_platform())
    scope = Scope.USER if args.service_user else Scope.SYSTEM
    manager = ServiceManager.from_environ(platform, scope)
    if action == "status":
        return manager.status()
    if action == "uninstall":
        manager.uninstall()
        return 0

    spec = manager.build_spec(default_argv(platform, extra=run_flags(args)), voice=args.service_voice)
    if action == "print":
        sys.stdout.write(render(spec, platform))
        return 0

    token = None
    if args.service_token_from_env:
        value = os.environ.get(TOKEN_ENV_VAR, "")
        if not value:
            raise ServiceError(f"--token-from-env given but ${TOKEN_ENV_VAR} is not set")
        token = Secret(value)
    manager.install(spec, token=token)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Stand-alone entry point: ``python -m node_agent.cli.service_cmd service install ...``."""
    parser = argparse.ArgumentParser(prog="node-agent")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
