"""What a service definition says, independent of the service manager that will run it.

A :class:`ServiceSpec` is the single input to every generator (:mod:`.systemd`, :mod:`.launchd`,
:mod:`.windows`). The generators are pure functions of it: same spec, same bytes, which is what
lets a test keep the static examples in ``systemd/`` and ``platform/`` identical to the code.

Invariants:

* ``argv`` is the exact command the manager runs; ``argv[0]`` is an absolute path (managers do
  not share our ``PATH``).
* No secret is ever a field here. The gateway token reaches the service through ``env_file``
  (systemd reads it as root before dropping privileges) or through the secret store; a unit,
  plist or task never holds it, because those files are world-readable.
* Paths are in the *target's* terms, not this machine's: a spec printed with
  ``--platform windows`` on Linux carries Windows paths. Nothing here touches the filesystem.
"""

from __future__ import annotations

import dataclasses
import enum

from ..errors import StateDirBusy

#: The service's name everywhere a manager wants one: unit name, directory names, task name.
SERVICE_NAME = "node-agent"
#: launchd's reverse-DNS label (also the plist's file name).
LAUNCHD_LABEL = "ai.openclaw.node-agent"
#: Exit status the agent uses for a FATAL error (bad token, rejected pairing, bad config):
#: EX_CONFIG from sysexits.h. systemd is told not to restart on it, since retrying cannot help
#: and a restart loop only hides the message a person needs to read.
EXIT_FATAL = 78
#: Exit status of an agent that found its state directory held by another agent (EX_TEMPFAIL;
#: :mod:`node_agent.lock`). systemd is told not to restart on it either: the directory would still
#: be held 2 s later, and a restart loop every few seconds (a second of CPU each on a Pi) would
#: bury the message that names the other agent. Whoever started that one stops it, then starts
#: the service. (launchd cannot exempt a status: it tries again after ``ThrottleInterval``.)
EXIT_BUSY = StateDirBusy.exit_status
#: The one environment variable that carries the shared gateway token into a service.
TOKEN_ENV_VAR = "OPENCLAW_GATEWAY_TOKEN"


class Platform(enum.Enum):
    """The service managers we generate definitions for."""

    SYSTEMD = "systemd"
    LAUNCHD = "launchd"
    WINDOWS = "windows"


class Scope(enum.Enum):
    """Who runs the service. Only systemd has both; a launchd LaunchAgent and a Task Scheduler
    logon task are always per-user, because a LaunchDaemon or a session-0 Windows service gets
    no microphone consent and no Keychain / Credential Manager."""

    SYSTEM = "system"
    USER = "user"


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class ServiceSpec:
    """Everything a generator needs; see the module docstring for the invariants."""

    #: The command line, ``argv[0]`` absolute, e.g. ``("/opt/node-agent/venv/bin/node-agent", "run")``.
    argv: tuple[str, ...]
    scope: Scope = Scope.SYSTEM
    #: Voice needs the sound devices (and on a Pi the GPIO LED/button), so the systemd unit keeps
    #: ``/dev`` visible, joins ``audio``, and drops the W^X and scheduler restrictions that
    #: PortAudio callbacks and the wake-word runtimes trip over.
    voice: bool = False
    #: Absolute path of the ``KEY=value`` file holding ``OPENCLAW_GATEWAY_TOKEN``; optional at
    #: run time (systemd gets ``EnvironmentFile=-``). None: no environment file at all.
    env_file: str | None = None
    #: systemd: names relative to ``/var/lib``, ``/etc``, ``/var/log`` (or the XDG equivalents
    #: for a user unit), given to ``StateDirectory=`` etc. launchd: ``log_dir`` is the absolute
    #: directory for ``StandardOutPath``/``StandardErrorPath``. Windows: unused (the agent logs
    #: under ``%LOCALAPPDATA%`` itself).
    state_dir: str = SERVICE_NAME
    config_dir: str = SERVICE_NAME
    log_dir: str = SERVICE_NAME
    description: str = "OpenClaw node agent"
    #: systemd ``WatchdogSec=``; the agent pings every half of it from its Trio loop. 0 disables.
    watchdog_sec: int = 30
    #: Account the service runs as: systemd ``User=`` (None: ``DynamicUser=yes``); Windows task
    #: principal ``DOMAIN\\user`` (None: whoever registers it). Ignored by launchd.
    account: str | None = None
    #: The home directory of the user a ``--user`` systemd unit belongs to. Paths under it are
    #: written with ``%h`` so the unit does not hard-code one person's home.
    home: str | None = None
    name: str = SERVICE_NAME
    label: str = LAUNCHD_LABEL

    def __post_init__(self) -> None:
        # A unit file with an empty or multi-line ExecStart= would be rejected by the manager (or
        # worse, read as two lines): refused here, where the caller can still say why.
        argv = tuple(str(a) for a in self.argv)
        if not argv:
            raise ValueError("argv must name a program")
        if any("\n" in a or "\0" in a for a in argv):
            raise ValueError("argv must not contain newlines or NUL bytes")
        if self.watchdog_sec < 0:
            raise ValueError(f"watchdog_sec must be >= 0, got {self.watchdog_sec}")
        object.__setattr__(self, "argv", argv)  # frozen: the one normalisation, at construction
