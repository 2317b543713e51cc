"""Render a launchd LaunchAgent plist from a :class:`~.spec.ServiceSpec`.

Always a per-user agent (``~/Library/LaunchAgents``), never a LaunchDaemon: daemons get neither
the login Keychain nor microphone consent. Built with :mod:`plistlib` (never a string template),
keys sorted, so the bytes are stable for the example-file test.

The agent must not daemonize (``launchd.plist(5)``): it runs in the foreground and handles
SIGTERM, which is what ``launchctl bootout`` sends.
"""

from __future__ import annotations

from pathlib import PurePosixPath

from .spec import ServiceSpec

#: Seconds launchd waits between respawns; also its default, written out so nobody has to know.
THROTTLE_INTERVAL = 10


def log_paths(spec: ServiceSpec) -> tuple[str, str]:
    """(stdout, stderr) files; ``spec.log_dir`` must be absolute (launchd does not expand ``~``)."""
    log_dir = PurePosixPath(spec.log_dir)
    if not log_dir.is_absolute():
        raise ValueError(f"launchd needs an absolute log directory, not {spec.log_dir!r}")
    return str(log_dir / f"{spec.name}.log"), str(log_dir / f"{spec.name}.err.log")


def plist_dict(spec: ServiceSpec) -> dict:
    """The plist as a dict (what tests inspect; :func:`render_plist` serialises it)."""
    out_path, err_path = log_paths(spec)
    return {
        "Label": spec.label,
        "ProgramArguments": list(spec.argv),
        "RunAtLoad": True,
        # Restart after a crash or a non-zero exit, not after a clean stop (bootout, SIGTERM):
        # the same policy as systemd's Restart=on-failure.
        "KeepAlive": {"SuccessfulExit": False},
        "ThrottleInterval": THROTTLE_INTERVAL,
        "StandardOutPath": out_path,
        "StandardErrorPath": err_path,
        "EnvironmentVariables": {"PYTHONUNBUFFERED": "1"},
        # Interactive: macOS does not throttle the timers of a process listening for a wake word.
        "ProcessType": "Interactive" if spec.voice else "Standard",
    }


def render_plist(spec: ServiceSpec) -> bytes:
    """The plist file's bytes (XML plist, UTF-8)."""
    import plistlib  # with the XML parser: only for a launchd agent, not every `service` command

    return plistlib.dumps(plist_dict(spec), fmt=plistlib.FMT_XML, sort_keys=True)
