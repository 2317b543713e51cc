"""Install, remove and inspect the service on the machine we run on.

Job: put the generated definition where the platform's service manager looks, put the gateway
token (if given) in a 0600 environment file next to it, and drive the manager:

* systemd: ``/etc/systemd/system/node-agent.service`` (``~/.config/systemd/user/`` with
  ``--user``), then ``systemctl [--user] daemon-reload``, ``enable``, ``restart``;
* launchd: ``~/Library/LaunchAgents/ai.openclaw.node-agent.plist``, then ``launchctl bootout``,
  ``enable`` and ``bootstrap gui/$UID``;
* Windows: ``%LOCALAPPDATA%\\node-agent\\node-agent-task.xml``, then ``schtasks /Create /XML`` and
  ``/Run`` (``/End`` and ``/Delete`` to remove).

Invariants:

* Every external command goes through one :data:`Runner` (tests pass a recorder); the program
  names come from ``$SYSTEMCTL``/``$LAUNCHCTL``/``$SCHTASKS`` when set.
* ``$NODE_AGENT_ROOT`` (default ``/``) prefixes every *system* path we write, like ``DESTDIR``; the
  paths written *into* files stay the target's (``EnvironmentFile=-/etc/node-agent/env``). Only
  tests and the Pi installer's test set it.
* Files are replaced atomically (temp file in the same directory, then rename); the temp file is
  created 0600, so a token is never readable by others, not even for a moment.
* Install is idempotent: running it again rewrites the same bytes and restarts the service (so a
  new version of the package in the same venv takes effect). Uninstall keeps configuration and
  state (the env file, the pairing) and says where they are.
* No message ever contains the token.
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path, PurePath

from ..atomic import atomic_write as _atomic_write
from ..childenv import without_secrets
from ..errors import LocalError, Retry
from ..secret import Secret
from .launchd import log_paths, render_plist
from .spec import LAUNCHD_LABEL, SERVICE_NAME, TOKEN_ENV_VAR, Platform, Scope, ServiceSpec
from .systemd import render_unit, system_path_problems
from .windows import render_task_xml, task_xml_for_schtasks


class ServiceError(LocalError):
    """Installing or controlling the service failed; the message says what to do."""

    retry = Retry.FATAL


@dataclasses.dataclass(frozen=True, slots=True)
class CommandResult:
    returncode: int
    stdout: str = ""
    stderr: str = ""


#: Runs one external command to completion and reports how it went; never raises for a
#: non-zero exit (callers decide which failures matter).
Runner = Callable[[Sequence[str]], CommandResult]


def run_command(argv: Sequence[str]) -> CommandResult:
    """The real :data:`Runner`: ``subprocess.run`` without a shell, output captured, and the
    caller's environment without its secrets (``service install --token-from-env`` is run with the
    gateway token in the environment; systemctl has no use for it)."""
    import subprocess  # `service print` runs nothing

    try:
        proc = subprocess.run(list(argv), capture_output=True, text=True, check=False,
                              env=without_secrets(os.environ))
    except FileNotFoundError:
        return CommandResult(127, "", f"{argv[0]}: command not found")
    return CommandResult(proc.returncode, proc.stdout, proc.stderr)


def render(spec: ServiceSpec, platform: Platform) -> str:
    """The definition file for ``platform`` as text: what ``service print`` shows."""
    if platform is Platform.SYSTEMD:
        return render_unit(spec)
    if platform is Platform.LAUNCHD:
        return render_plist(spec).decode("utf-8")
    return render_task_xml(spec)


def current_platform(sys_platform: str = sys.platform) -> Platform:
    if sys_platform.startswith("linux"):
        return Platform.SYSTEMD
    if sys_platform == "darwin":
        return Platform.LAUNCHD
    if sys_platform in ("win32", "cygwin"):
        return Platform.WINDOWS
    raise ServiceError(f"no service manager support for {sys_platform!r}; run `node-agent run` "
                       "under your own supervisor", hint="use --platform with `service print`")


def default_argv(platform: Platform, config: str | None = None, *, extra: Sequence[str] = (),
                 python: str = sys.executable) -> list[str]:
    """The command a service runs: the ``node-agent`` script next to the interpreter when there
    is one, else ``<python> -m node_agent``; then ``run``, ``--config <absolute path>`` and the
    ``extra`` run flags.

    On Windows ``pythonw.exe -m node_agent`` is preferred: a console script (and ``python.exe``)
    would open a console window in the user's session at every logon.
    """
    exe = PurePath(python)
    if platform is Platform.WINDOWS:
        pythonw = Path(exe.with_name("pythonw.exe"))
        argv = [str(pythonw) if pythonw.exists() else python, "-m", "node_agent"]
    else:
        script = Path(exe.with_name("node-agent"))
        argv = [str(script)] if script.exists() else [python, "-m", "node_agent"]
    argv.append("run")
    if config:
        # The service's working directory is not the caller's.
        argv += ["--config", os.path.abspath(config)]
    argv += extra
    return argv


# --- files ------------------------------------------------------------------------------------


def atomic_write(path: Path, data: bytes, mode: int) -> None:
    """Replace ``path`` with ``data`` (:func:`node_agent.atomic.atomic_write`), creating its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(path, data, mode)


# Characters a value may carry bare in a systemd environment file (and in a POSIX shell).
_SAFE_VALUE = re.compile(r"[A-Za-z0-9._~+/=:@-]+")


def env_file_line(token: Secret) -> str:
    """``OPENCLAW_GATEWAY_TOKEN=...`` for an environment file, quoted when it must be."""
    value = token.reveal()
    if not value:
        raise ServiceError(f"${TOKEN_ENV_VAR} is empty")
    if _SAFE_VALUE.fullmatch(value):
        return f"{TOKEN_ENV_VAR}={value}"
    if not any(c in value for c in "'\\\n\r\0"):
        return f"{TOKEN_ENV_VAR}='{value}'"  # single quotes: no escapes, no expansion
    raise ServiceError("the gateway token contains characters an environment file cannot carry "
                       "(quote, backslash, newline)")


def write_env_file(path: Path, token: Secret) -> None:
    """Set the token line in ``path`` (mode 0600), keeping any other lines a person added."""
    try:
        old = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        old = []
    kept = [line for line in old if not line.lstrip().startswith(f"{TOKEN_ENV_VAR}=")]
    atomic_write(path, ("\n".join([*kept, env_file_line(token)]) + "\n").encode("utf-8"), 0o600)


def _owner(path: Path) -> int:
    return path.stat().st_uid


# --- the manager ------------------------------------------------------------------------------


@dataclasses.dataclass(kw_only=True, slots=True)
class ServiceManager:
    """The service on this host, for one platform and scope. Build it with :meth:`from_environ`."""

    platform: Platform
    scope: Scope = Scope.SYSTEM
    #: Prefix for system paths (``$NODE_AGENT_ROOT``); ``Path("/")`` on a real install.
    root: Path = Path("/")
    home: Path
    #: ``$XDG_CONFIG_HOME`` or ``~/.config``: where a user unit and its env file go.
    config_home: Path
    #: ``%LOCALAPPDATA%`` (Windows only).
    local_appdata: Path | None = None
    #: ``DOMAIN\\user`` for the Windows task principal.
    account: str | None = None
    uid: int = 0
    runner: Runner = run_command
    systemctl: str = "systemctl"
    launchctl: str = "launchctl"
    schtasks: str = "schtasks"
    #: Where progress lines go (the CLI's stdout).
    echo: Callable[[str], None] = print

    @classmethod
    def from_environ(cls, platform: Platform, scope: Scope = Scope.SYSTEM, *,
                     environ: Mapping[str, str] | None = None, runner: Runner = run_command,
                     echo: Callable[[str], None] = print) -> ServiceManager:
        env = os.environ if environ is None else environ
        home = Path(env.get("HOME") or env.get("USERPROFILE") or Path.home())
        account = None
        if env.get("USERNAME"):
            account = (f"{env['USERDOMAIN']}\\{env['USERNAME']}" if env.get("USERDOMAIN")
                       else env["USERNAME"])
        if platform is not Platform.SYSTEMD:
            scope = Scope.USER  # see Scope: launchd and Windows only get per-user services
        return cls(
            platform=platform, scope=scope, root=Path(env.get("NODE_AGENT_ROOT") or "/"), home=home,
            config_home=Path(env.get("XDG_CONFIG_HOME") or home / ".config"),
            local_appdata=Path(env["LOCALAPPDATA"]) if env.get("LOCALAPPDATA") else None,
            account=account, uid=os.getuid() if hasattr(os, "getuid") else 0, runner=runner,
            systemctl=env.get("SYSTEMCTL") or "systemctl", launchctl=env.get("LAUNCHCTL") or "launchctl",
            schtasks=env.get("SCHTASKS") or "schtasks", echo=echo)

    # -- where things go -------------------------------------------------------------------------

    def _rooted(self, target: str) -> Path:
        """A target-system absolute path, as a path on this filesystem under :attr:`root`."""
        return self.root / target.lstrip("/")

    def unrooted(self, path: str) -> str:
        """The inverse of the root prefix: what a path we found under the root is on the target."""
        root = str(self.root).rstrip("/")
        if root and (path == root or path.startswith(root + "/")):
            return path[len(root):] or "/"
        return path

    @property
    def user(self) -> bool:
        return self.scope is Scope.USER

    def env_file_target(self) -> str | None:
        """The env file's path as the service sees it (None where the token lives in the OS
        secret store instead: Keychain, Credential Manager)."""
        if self.platform is not Platform.SYSTEMD:
            return None
        if self.user:
            return str(self.config_home / SERVICE_NAME / "env")
        return f"/etc/{SERVICE_NAME}/env"

    def env_file_path(self) -> Path | None:
        target = self.env_file_target()
        if target is None:
            return None
        return Path(target) if self.user else self._rooted(target)

    def definition_path(self) -> Path:
        if self.platform is Platform.SYSTEMD:
            if self.user:
                return self.config_home / "systemd" / "user" / f"{SERVICE_NAME}.service"
            return self._rooted(f"/etc/systemd/system/{SERVICE_NAME}.service")
        if self.platform is Platform.LAUNCHD:
            return self.home / "Library" / "LaunchAgents" / f"{LAUNCHD_LABEL}.plist"
        base = self.local_appdata or (self.home / "AppData" / "Local")
        return base / SERVICE_NAME / f"{SERVICE_NAME}-task.xml"

    def build_spec(self, argv: Sequence[str], *, voice: bool = False) -> ServiceSpec:
        """The spec for this host: ``argv`` plus this platform's paths and account."""
        argv = [self.unrooted(argv[0]), *argv[1:]]
        if self.platform is Platform.SYSTEMD:
            return ServiceSpec(argv=argv, scope=self.scope, voice=voice,
                               env_file=self.env_file_target(),
                               home=str(self.home) if self.user else None)
        if self.platform is Platform.LAUNCHD:
            return ServiceSpec(argv=argv, scope=Scope.USER, voice=voice,
                               log_dir=str(self.home / "Library" / "Logs" / SERVICE_NAME))
        return ServiceSpec(argv=argv, scope=Scope.USER, voice=voice, account=self.account)

    # -- commands --------------------------------------------------------------------------------

    def _run(self, *argv: str, check: bool = True) -> CommandResult:
        result = self.runner(argv)
        if check and result.returncode != 0:
            detail = (result.stderr or result.stdout).strip()
            raise ServiceError(f"`{' '.join(argv)}` failed (exit {result.returncode})"
                               + (f": {detail}" if detail else ""))
        return result

    def _systemctl(self, *args: str, check: bool = True) -> CommandResult:
        return self._run(self.systemctl, *(("--user",) if self.user else ()), *args, check=check)

    # -- install / uninstall / status ------------------------------------------------------------

    def install(self, spec: ServiceSpec, *, token: Secret | None = None) -> None:
        """Write the definition (and the token, if given), then enable and (re)start it."""
        if self.platform is Platform.SYSTEMD:
            self._install_systemd(spec, token)
        elif self.platform is Platform.LAUNCHD:
            self._refuse_token(token, "the login Keychain")
            self._install_launchd(spec)
        else:
            self._refuse_token(token, "Windows Credential Manager")
            self._install_windows(spec)

    def uninstall(self) -> None:
        """Stop and disable the service and remove its definition; keep config and state."""
        path = self.definition_path()
        existed = path.exists()
        if self.platform is Platform.SYSTEMD:
            if existed:
                self._systemctl("disable", "--now", f"{SERVICE_NAME}.service", check=False)
                path.unlink()
                self._systemctl("daemon-reload")
        elif self.platform is Platform.LAUNCHD:
            self._run(self.launchctl, "bootout", f"gui/{self.uid}/{LAUNCHD_LABEL}", check=False)
            path.unlink(missing_ok=True)
        else:
            self._run(self.schtasks, "/End", "/TN", SERVICE_NAME, check=False)
            if self._run(self.schtasks, "/Query", "/TN", SERVICE_NAME, check=False).returncode == 0:
                self._run(self.schtasks, "/Delete", "/TN", SERVICE_NAME, "/F")
            path.unlink(missing_ok=True)
        self.echo(f"removed {path}" if existed else f"not installed (no {path})")
        env_file = self.env_file_path()
        if env_file is not None and env_file.exists():
            self.echo(f"kept {env_file} (holds the gateway token; delete it to forget the token)")

    def status(self) -> int:
        """Show what the manager knows; returns its exit status (0: running)."""
        path = self.definition_path()
        self.echo(f"definition: {path} ({'present' if path.exists() else 'missing'})")
        env_file = self.env_file_path()
        if env_file is not None:
            self.echo(f"token file: {env_file} ({'present' if env_file.exists() else 'missing'})")
        if self.platform is Platform.SYSTEMD:
            result = self._systemctl("status", "--no-pager", f"{SERVICE_NAME}.service", check=False)
        elif self.platform is Platform.LAUNCHD:
            result = self._run(self.launchctl, "print", f"gui/{self.uid}/{LAUNCHD_LABEL}", check=False)
        else:
            result = self._run(self.schtasks, "/Query", "/TN", SERVICE_NAME, "/V", "/FO", "LIST",
                               check=False)
        for text in (result.stdout, result.stderr):
            if text.strip():
                self.echo(text.rstrip("\n"))
        return result.returncode

    # -- per platform ----------------------------------------------------------------------------

    def _refuse_token(self, token: Secret | None, store: str) -> None:
        if token is not None:
            raise ServiceError(f"--token-from-env is for systemd; under {self.platform.value} the "
                               f"service reads the gateway token from {store}, so store it there")

    def _install_systemd(self, spec: ServiceSpec, token: Secret | None) -> None:
        problems = system_path_problems(spec)
        if problems:
            raise ServiceError("; ".join(problems))
        env_file = self.env_file_path()
        if not self.user:
            self._claim_config_dir(self._rooted(f"/etc/{spec.config_dir}"))
        if token is not None and env_file is not None:
            env_file.parent.mkdir(mode=0o755 if not self.user else 0o700, parents=True, exist_ok=True)
            write_env_file(env_file, token)
            self.echo(f"wrote {env_file} (mode 0600)")
        path = self.definition_path()
        atomic_write(path, render_unit(spec).encode("utf-8"), 0o644)
        self.echo(f"wrote {path}")
        unit = f"{SERVICE_NAME}.service"
        self._systemctl("daemon-reload")
        self._systemctl("enable", unit)
        # restart, not `enable --now`: a re-install usually means new code in the same venv.
        self._systemctl("restart", unit)
        self.echo(f"enabled and started {unit}; `systemctl{' --user' if self.user else ''} status "
                  f"{SERVICE_NAME}` shows its state")
        if self.user:
            self.echo("to start it at boot without a login: loginctl enable-linger "
                      f"{self.home.name}")
        if token is None and env_file is not None and not env_file.exists():
            self.echo(f"no gateway token stored: export {TOKEN_ENV_VAR} and re-run with "
                      "--token-from-env, or pair with a setup code")

    def _claim_config_dir(self, path: Path) -> None:
        """``/etc/node-agent`` exists, root's, 0755, before the first start. systemd (252, seen
        booted in a container) creates a *missing* ``ConfigurationDirectory=`` owned by the
        service's user, the transient ``DynamicUser=`` one included, and leaves an existing one
        alone; a service owning the directory of its own env file and config could rewrite them.
        A directory an earlier start gave away is taken back (when we are root)."""
        path.mkdir(mode=0o755, parents=True, exist_ok=True)
        owner = _owner(path)
        if self.uid == 0 and owner != 0:
            os.chown(path, 0, 0)
            os.chmod(path, 0o755)
            self.echo(f"{path} was owned by uid {owner} (systemd hands a ConfigurationDirectory= it creates "
                      "to the service's user); gave it back to root")

    def _install_launchd(self, spec: ServiceSpec) -> None:
        for log_file in log_paths(spec):
            Path(log_file).parent.mkdir(parents=True, exist_ok=True)  # launchd will not
        path = self.definition_path()
        atomic_write(path, render_plist(spec), 0o644)
        self.echo(f"wrote {path}")
        domain = f"gui/{self.uid}"
        service = f"{domain}/{spec.label}"
        # bootstrap refuses a job that is already loaded; bootout first makes install repeatable.
        self._run(self.launchctl, "bootout", service, check=False)
        self._run(self.launchctl, "enable", service)
        self._run(self.launchctl, "bootstrap", domain, str(path))
        self.echo(f"loaded {service}; logs in {Path(log_paths(spec)[0]).parent}")

    def _install_windows(self, spec: ServiceSpec) -> None:
        path = self.definition_path()
        atomic_write(path, task_xml_for_schtasks(spec), 0o644)
        self.echo(f"wrote {path}")
        self._run(self.schtasks, "/Create", "/TN", spec.name, "/XML", str(path), "/F")
        self._run(self.schtasks, "/Run", "/TN", spec.name)
        self.echo(f"registered and started task {spec.name!r} (runs at every logon)")
