"""Render a systemd unit from a :class:`~.spec.ServiceSpec`.

The unit is ``Type=notify``: the agent sends ``READY=1`` once it runs (see :mod:`.sd_notify`), and
``WATCHDOG=1`` from its Trio loop every half of ``WatchdogSec=``, so systemd restarts a hung loop
but never restarts the agent merely because the gateway is unreachable (the agent's own reconnect
policy handles that; restarting would only lose its backoff state).

The system unit is sandboxed to score "OK" in ``systemd-analyze security`` (a test keeps it
there). Each relaxation for voice is listed in :func:`_sandbox` with the reason.

Quoting: ``ExecStart=`` and the other values pass through systemd's specifier (``%``) and, for
``ExecStart=``, variable (``$``) expansion; :func:`exec_arg` escapes both, and quotes arguments
with blanks or quotes in them, so any argv round-trips.
"""

from __future__ import annotations

import re

from .spec import EXIT_BUSY, EXIT_FATAL, Scope, ServiceSpec

_BARE_ARG = re.compile(r"[A-Za-z0-9_@%+=:,./-]+")


def _escape_specifiers(text: str) -> str:
    return text.replace("%", "%%")


def exec_arg(arg: str, home: str | None = None) -> str:
    """One argument of ``ExecStart=``, escaped; a path under ``home`` is written ``%h/...``."""
    prefix = ""
    if home and (arg == home or arg.startswith(home.rstrip("/") + "/")):
        prefix, arg = "%h", arg[len(home.rstrip("/")):]
    body = prefix + _escape_specifiers(arg).replace("$", "$$")
    if _BARE_ARG.fullmatch(body):
        return body
    # Specifiers and $ are still expanded inside quotes, which is why escaping came first.
    return '"' + body.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _path_value(path: str, home: str | None) -> str:
    """A path for a non-exec setting (``EnvironmentFile=``): specifiers escaped, home -> %h."""
    if home and path.startswith(home.rstrip("/") + "/"):
        return "%h" + _escape_specifiers(path[len(home.rstrip("/")):])
    return _escape_specifiers(path)


def system_path_problems(spec: ServiceSpec) -> list[str]:
    """Why a *system* unit for ``spec`` could not work, e.g. a venv under ``/home`` that
    ``ProtectHome=yes`` hides from the service. Empty when fine; always empty for user units."""
    if spec.scope is not Scope.SYSTEM:
        return []
    hidden = ("/home/", "/root/", "/run/user/")
    problems = []
    for arg in spec.argv:
        if arg.startswith(hidden):
            problems.append(f"{arg} is hidden from a system service (ProtectHome=yes); install under "
                            f"/opt or /usr/local, put the config in /etc/{spec.config_dir}/, "
                            "or use a --user unit")
    if "--state-dir" in spec.argv:
        problems.append(f"a system unit keeps its state in /var/lib/{spec.state_dir} "
                        "(StateDirectory=; everything else is read-only): drop --state-dir")
    if spec.account is None and "--token-file" in spec.argv:
        # Only PID 1 (root) reads EnvironmentFile=; the transient user cannot read root's 0600 file.
        problems.append("--token-file cannot work with DynamicUser=yes: use --token-from-env, "
                        "which puts the token where systemd hands it to the service")
    return problems


def _sandbox(spec: ServiceSpec) -> list[str]:
    """The hardening block. Ordered and commented so a person reading the unit sees why."""
    voice = spec.voice
    if spec.scope is Scope.USER:
        # A user manager can only set up mount/user namespaces through an unprivileged user
        # namespace, which some distributions forbid (then the unit fails to start at all). So
        # user units get only the seccomp- and prctl-based restrictions, which always work.
        lines = [
            "NoNewPrivileges=yes",
            "LockPersonality=yes",
            "RestrictRealtime=yes",
            "RestrictSUIDSGID=yes",
            "SystemCallArchitectures=native",
            "SystemCallFilter=@system-service",
            "SystemCallErrorNumber=EPERM",
            "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK",
        ]
        if not voice:
            lines.insert(1, "MemoryDenyWriteExecute=yes")
        return lines

    lines = []
    if spec.account:
        lines.append(f"User={spec.account}")
    else:
        # A transient UID: nothing to create, nothing left behind; State/Logs directories are
        # chowned to it. So is a ConfigurationDirectory= that systemd has to create itself, which
        # is why `service install` creates /etc/node-agent first (root's, 0755: systemd leaves an
        # existing one alone). The env file in it stays root's and 0600: PID 1 reads it before the drop.
        lines.append("DynamicUser=yes")
    if voice:
        lines.append("SupplementaryGroups=audio")
    lines += [
        "UMask=0077",
        "NoNewPrivileges=yes",
        "CapabilityBoundingSet=",
        "AmbientCapabilities=",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "PrivateMounts=yes",
    ]
    if not voice:
        # Voice keeps the real /dev: PrivateDevices= (and the device policy ProtectClock= implies)
        # would hide /dev/snd and, on a Pi, the GPIO/SPI nodes of the LED ring and button.
        lines += ["PrivateDevices=yes", "DevicePolicy=closed", "ProtectClock=yes",
                  # Supplementary groups (audio) would be unmapped inside a user namespace.
                  "PrivateUsers=yes"]
    lines += [
        "ProtectKernelTunables=yes",
        "ProtectKernelModules=yes",
        "ProtectKernelLogs=yes",
        "ProtectControlGroups=yes",
        "ProtectHostname=yes",
        # Not ProcSubset=pid: it hides /proc/device-tree (board detection) and /proc/cpuinfo,
        # which NumPy and the wake-word runtimes read on ARM.
        "ProtectProc=invisible",
        "LockPersonality=yes",
        "RestrictRealtime=yes",
        "RestrictSUIDSGID=yes",
        "RestrictNamespaces=yes",
        "RemoveIPC=yes",
        "KeyringMode=private",
        "SystemCallArchitectures=native",
        "SystemCallFilter=@system-service",
    ]
    if voice:
        lines.append("SystemCallFilter=~@privileged")
    else:
        # Voice needs @resources: the ONNX/TFLite thread pools pin threads (sched_setaffinity).
        lines.append("SystemCallFilter=~@privileged @resources")
        # Voice needs W+X pages: PortAudio callbacks go through libffi closures.
        lines.append("MemoryDenyWriteExecute=yes")
    lines += [
        "SystemCallErrorNumber=EPERM",
        # AF_NETLINK: getifaddrs()/getaddrinfo(AI_ADDRCONFIG) ask the kernel over netlink.
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK",
    ]
    return lines


def render_unit(spec: ServiceSpec) -> str:
    """The complete unit file text for ``spec`` (system or ``--user`` by ``spec.scope``)."""
    home = spec.home if spec.scope is Scope.USER else None
    exec_start = " ".join(exec_arg(a, home) for a in spec.argv)
    user = spec.scope is Scope.USER
    out: list[str | None] = [
        f"# {spec.name}.service: generated by `node-agent service print --platform systemd"
        f"{' --user' if user else ''}{' --voice' if spec.voice else ''}`.",
        "# Regenerate rather than edit; put local changes in a drop-in (systemctl"
        f"{' --user' if user else ''} edit {spec.name}).",
        "",
        "[Unit]",
        f"Description={_escape_specifiers(spec.description)}",
        "Wants=network-online.target",
        "After=network-online.target" + (" sound.target" if spec.voice else ""),
        "",
        "[Service]",
        "Type=notify",
        "NotifyAccess=main",
        f"ExecStart={exec_start}",
        # "-": a missing file is fine (the token may live in the secret store instead).
        f"EnvironmentFile=-{_path_value(spec.env_file, home)}" if spec.env_file else None,
        "Environment=PYTHONUNBUFFERED=1",
        f"SyslogIdentifier={spec.name}",
        "Restart=on-failure",
        "RestartSec=2",
        f"RestartPreventExitStatus={EXIT_FATAL} {EXIT_BUSY}",
        f"WatchdogSec={spec.watchdog_sec}" if spec.watchdog_sec else None,
        "TimeoutStopSec=15",
        f"StateDirectory={spec.state_dir}",
        "StateDirectoryMode=0700",
        f"ConfigurationDirectory={spec.config_dir}",
        f"LogsDirectory={spec.log_dir}",
        "LogsDirectoryMode=0750",
    ]
    out += _sandbox(spec)
    out += [
        "",
        "[Install]",
        f"WantedBy={'default.target' if user else 'multi-user.target'}",
    ]
    return "\n".join(line for line in out if line is not None) + "\n"
