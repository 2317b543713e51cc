"""Service definitions: systemd units (checked by systemd-analyze itself), the launchd plist, the
Task Scheduler XML, the static examples, and the install/uninstall/status flows with every
external command recorded instead of run."""

from __future__ import annotations

import argparse
import os
import plistlib
import re
import shutil
import stat
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from node_agent.cli import service_cmd
from node_agent.secret import Secret
from node_agent.service import examples
from node_agent.service.launchd import plist_dict, render_plist
from node_agent.service.manage import CommandResult, ServiceError, ServiceManager, default_argv, env_file_line, render
from node_agent.service.spec import Platform, Scope, ServiceSpec
from node_agent.service.systemd import exec_arg, render_unit, system_path_problems
from node_agent.service.windows import TASK_NAMESPACE, render_task_xml, task_xml_for_schtasks

REPO = Path(__file__).resolve().parents[2]
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
needs_systemd_analyze = pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze not installed")
# Any executable that exists: `systemd-analyze verify` insists that ExecStart's program does.
REAL_EXE = str(REPO / ".venv" / "bin" / "node-agent") if (REPO / ".venv/bin/node-agent").exists() \
    else sys.executable
TOKEN = "tok-3xAmple.Secret_value"


def unit_spec(scope: Scope, voice: bool, **kw) -> ServiceSpec:
    system = scope is Scope.SYSTEM
    kw.setdefault("env_file", "/etc/node-agent/env" if system else "/home/u/.config/node-agent/env")
    return ServiceSpec(argv=(REAL_EXE, "run", "--config", "/etc/node-agent/config.toml"), scope=scope,
                       voice=voice, home="/home/u" if scope is Scope.USER else None, **kw)


def write_unit(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "node-agent.service"
    path.write_text(text)
    return path


def analyze(*args: str, tmp_path: Path, user: bool = False) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if user:  # a user-mode analysis wants a runtime directory, even offline
        runtime = tmp_path / "xdg-runtime"
        runtime.mkdir(mode=0o700, exist_ok=True)
        env["XDG_RUNTIME_DIR"] = str(runtime)
    cmd = [SYSTEMD_ANALYZE, *(["--user"] if user else []), *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)


ALL_UNITS = [(scope, voice) for scope in Scope for voice in (False, True)]
IDS = [f"{s.value}-{'voice' if v else 'plain'}" for s, v in ALL_UNITS]


# --- systemd ----------------------------------------------------------------------------------


@needs_systemd_analyze
@pytest.mark.parametrize(("scope", "voice"), ALL_UNITS, ids=IDS)
def test_systemd_analyze_verify_accepts_every_unit(tmp_path, scope, voice):
    path = write_unit(tmp_path, render_unit(unit_spec(scope, voice)))
    result = analyze("verify", str(path), tmp_path=tmp_path, user=scope is Scope.USER)
    assert result.returncode == 0, result.stderr
    # verify also reports problems as warnings with exit 0; none may concern our unit
    assert "node-agent.service" not in result.stderr, result.stderr


@needs_systemd_analyze
def test_verify_accepts_awkward_argv(tmp_path):
    # Blanks, quotes, specifier and variable characters all survive into a valid ExecStart.
    spec = ServiceSpec(argv=(REAL_EXE, "run", "--config", "/etc/node agent/it's 100%.toml",
                             'say "$HOME"', ""))
    path = write_unit(tmp_path, render_unit(spec))
    result = analyze("verify", str(path), tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "node-agent.service" not in result.stderr, result.stderr


_EXPOSURE = re.compile(r"Overall exposure level for \S+: (\d+\.\d+) (\w+)")


def exposure(tmp_path: Path, spec: ServiceSpec) -> tuple[float, str]:
    path = write_unit(tmp_path, render_unit(spec))
    # --offline=true (systemd >= 250) analyses the file itself, without a running manager.
    result = analyze("security", "--offline=true", str(path), tmp_path=tmp_path,
                     user=spec.scope is Scope.USER)
    match = _EXPOSURE.search(result.stdout + result.stderr)
    assert match, result.stdout + result.stderr
    return float(match.group(1)), match.group(2)


@needs_systemd_analyze
@pytest.mark.parametrize("voice", [False, True], ids=["plain", "voice"])
def test_system_unit_security_exposure_is_ok(tmp_path, capsys, voice):
    score, label = exposure(tmp_path, unit_spec(Scope.SYSTEM, voice))
    with capsys.disabled():
        print(f"\n[systemd-analyze security] system unit{' (voice)' if voice else ''}: "
              f"exposure {score} {label}")
    assert label in ("PERFECT", "SAFE", "OK"), (score, label)
    assert score <= 2.5  # today 1.3 plain / 2.1 voice: catch a dropped setting early


@needs_systemd_analyze
@pytest.mark.parametrize("voice", [False, True], ids=["plain", "voice"])
def test_user_unit_security_exposure_is_reported(tmp_path, capsys, voice):
    # A user unit runs as the person, with no mount-namespace sandbox (see systemd._sandbox for
    # why); the score is informational, the bound catches a dropped seccomp/NNP setting.
    score, label = exposure(tmp_path, unit_spec(Scope.USER, voice))
    with capsys.disabled():
        print(f"\n[systemd-analyze security] user unit{' (voice)' if voice else ''}: "
              f"exposure {score} {label}")
    assert score <= 7.5, (score, label)


def test_unit_contents_system():
    text = render_unit(unit_spec(Scope.SYSTEM, voice=False))
    lines = text.splitlines()
    for line in ["Type=notify", "NotifyAccess=main", "WatchdogSec=30", "Restart=on-failure",
                 "StateDirectory=node-agent", "ConfigurationDirectory=node-agent",
                 "LogsDirectory=node-agent", "DynamicUser=yes", "NoNewPrivileges=yes",
                 "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes", "PrivateDevices=yes",
                 "Wants=network-online.target", "After=network-online.target",
                 "EnvironmentFile=-/etc/node-agent/env", "CapabilityBoundingSet=",
                 "SystemCallFilter=@system-service", "RestrictNamespaces=yes",
                 "WantedBy=multi-user.target",
                 # 78: a person must fix the config; 75: another agent holds the state directory.
                 "RestartPreventExitStatus=78 75"]:
        assert line in lines, line
    assert f"ExecStart={REAL_EXE} run --config /etc/node-agent/config.toml" in lines
    assert not any(line.startswith("SupplementaryGroups=") for line in lines)


def test_voice_keeps_devices_and_joins_audio():
    lines = render_unit(unit_spec(Scope.SYSTEM, voice=True)).splitlines()
    assert "SupplementaryGroups=audio" in lines
    assert "After=network-online.target sound.target" in lines
    assert not any(line.startswith(("PrivateDevices=", "DevicePolicy=", "ProtectClock=",
                                    "MemoryDenyWriteExecute=")) for line in lines)


def test_user_unit_uses_home_specifier_and_default_target():
    lines = render_unit(ServiceSpec(argv=("/home/u/.local/bin/node-agent", "run"), scope=Scope.USER,
                                    env_file="/home/u/.config/node-agent/env", home="/home/u")).splitlines()
    assert "ExecStart=%h/.local/bin/node-agent run" in lines
    assert "EnvironmentFile=-%h/.config/node-agent/env" in lines
    assert "WantedBy=default.target" in lines
    assert not any(line.startswith(("DynamicUser=", "ProtectHome=", "PrivateTmp=")) for line in lines)


def test_watchdog_zero_means_no_watchdog_line():
    assert "WatchdogSec" not in render_unit(unit_spec(Scope.SYSTEM, False, watchdog_sec=0))


def test_dedicated_account_replaces_dynamic_user():
    lines = render_unit(unit_spec(Scope.SYSTEM, False, account="nodeagent")).splitlines()
    assert "User=nodeagent" in lines and "DynamicUser=yes" not in lines


@pytest.mark.parametrize(("arg", "home", "expected"), [
    ("/opt/x/bin/node-agent", None, "/opt/x/bin/node-agent"),
    ("100%", None, "100%%"),
    ("$HOME", None, '"$$HOME"'),
    ("a b", None, '"a b"'),
    ('say "hi"\\', None, '"say \\"hi\\"\\\\"'),
    ("", None, '""'),
    ("/home/u/bin/x", "/home/u", "%h/bin/x"),
    ("/home/u/my dir/x", "/home/u/", '"%h/my dir/x"'),
    ("/home/user2/x", "/home/u", "/home/user2/x"),
])
def test_exec_arg_escaping(arg, home, expected):
    assert exec_arg(arg, home) == expected


def test_system_unit_refuses_paths_hidden_by_protect_home():
    spec = ServiceSpec(argv=("/home/pi/venv/bin/node-agent", "run"))
    assert system_path_problems(spec)
    assert not system_path_problems(ServiceSpec(argv=spec.argv, scope=Scope.USER))


# --- launchd ----------------------------------------------------------------------------------


def test_plist_parses_and_has_required_keys():
    spec = ServiceSpec(argv=("/Users/a/.local/bin/node-agent", "run"), scope=Scope.USER,
                       log_dir="/Users/a/Library/Logs/node-agent")
    plist = plistlib.loads(render_plist(spec))
    assert plist == plist_dict(spec)
    assert plist["Label"] == "ai.openclaw.node-agent"
    assert plist["ProgramArguments"] == ["/Users/a/.local/bin/node-agent", "run"]
    assert plist["RunAtLoad"] is True
    assert plist["KeepAlive"] == {"SuccessfulExit": False}
    assert plist["StandardOutPath"] == "/Users/a/Library/Logs/node-agent/node-agent.log"
    assert plist["StandardErrorPath"] == "/Users/a/Library/Logs/node-agent/node-agent.err.log"


def test_plist_needs_absolute_log_dir():
    with pytest.raises(ValueError):
        render_plist(ServiceSpec(argv=("/x", "run"), log_dir="node-agent"))


# --- Windows ----------------------------------------------------------------------------------

NS = {"t": TASK_NAMESPACE}


def test_task_xml_parses_and_names_the_command():
    spec = ServiceSpec(argv=("C:\\Program Files\\Python311\\pythonw.exe", "-m", "node_agent", "run",
                             "--config", "C:\\Users\\a b\\node-agent.toml"), account="PC\\a")
    task = ET.fromstring(render_task_xml(spec))
    assert task.tag == f"{{{TASK_NAMESPACE}}}Task"
    assert task.findtext("t:Actions/t:Exec/t:Command", namespaces=NS) == \
        '"C:\\Program Files\\Python311\\pythonw.exe"'
    assert task.findtext("t:Actions/t:Exec/t:Arguments", namespaces=NS) == \
        '-m node_agent run --config "C:\\Users\\a b\\node-agent.toml"'
    assert task.find("t:Triggers/t:LogonTrigger", NS) is not None
    assert task.findtext("t:Triggers/t:LogonTrigger/t:UserId", namespaces=NS) == "PC\\a"
    assert task.findtext("t:Principals/t:Principal/t:LogonType", namespaces=NS) == "InteractiveToken"
    assert task.findtext("t:Settings/t:RestartOnFailure/t:Interval", namespaces=NS) == "PT1M"
    assert task.findtext("t:Settings/t:ExecutionTimeLimit", namespaces=NS) == "PT0S"
    assert task.findtext("t:Settings/t:MultipleInstancesPolicy", namespaces=NS) == "IgnoreNew"
    assert task.findtext("t:Settings/t:DisallowStartIfOnBatteries", namespaces=NS) == "false"


def test_task_xml_for_schtasks_is_utf16_with_bom_and_parses():
    spec = ServiceSpec(argv=("C:\\x\\pythonw.exe", "-m", "node_agent", "run"))
    data = task_xml_for_schtasks(spec)
    assert data.startswith(b"\xff\xfe")
    task = ET.fromstring(data)
    assert task.findtext("t:Actions/t:Exec/t:Command", namespaces=NS) == "C:\\x\\pythonw.exe"


# --- static examples ----------------------------------------------------------------------------


def test_static_examples_match_the_generators():
    stale = [rel for rel, data in examples.example_files().items() if (REPO / rel).read_bytes() != data]
    assert not stale, f"regenerate with `python -m node_agent.service.examples`: {stale}"


def test_platform_dir_is_not_a_package():
    # platform/__init__.py would shadow the stdlib `platform` module for anything run from REPO.
    assert not list((REPO / "platform").rglob("__init__.py"))


@needs_systemd_analyze
@pytest.mark.parametrize("rel", ["systemd/node-agent.service", "systemd/node-agent-user.service"])
def test_static_example_units_verify(tmp_path, rel):
    # ExecStart must exist for verify: point the example's program at a real one, keep the rest.
    text = (REPO / rel).read_text()
    text = re.sub(r"^ExecStart=\S+", f"ExecStart={REAL_EXE}", text, flags=re.M)
    result = analyze("verify", str(write_unit(tmp_path, text)), tmp_path=tmp_path,
                     user="user" in rel)
    assert result.returncode == 0, result.stderr
    assert "node-agent.service" not in result.stderr, result.stderr


# --- install / uninstall / status, commands recorded -------------------------------------------


class Recorder:
    """A :data:`Runner` that records argv and answers from a table (default: success)."""

    def __init__(self, answers: dict[str, CommandResult] | None = None):
        self.calls: list[list[str]] = []
        self.answers = answers or {}

    def __call__(self, argv):
        self.calls.append(list(argv))
        return self.answers.get(" ".join(argv[1:]), CommandResult(0, "", ""))


def manager(tmp_path: Path, platform: Platform, scope: Scope = Scope.SYSTEM,
            runner: Recorder | None = None, **env) -> tuple[ServiceManager, list[str]]:
    """A manager rooted in ``tmp_path``, and the list its progress lines go to."""
    environ = {"HOME": str(tmp_path / "home"), "NODE_AGENT_ROOT": str(tmp_path / "root"), **env}
    lines: list[str] = []
    m = ServiceManager.from_environ(platform, scope, environ=environ, runner=runner or Recorder(),
                                    echo=lines.append)
    return m, lines


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_systemd_system_install_writes_unit_and_0600_env_file(tmp_path):
    runner = Recorder()
    m, lines = manager(tmp_path, Platform.SYSTEMD, runner=runner)
    env_file = tmp_path / "root/etc/node-agent/env"
    env_file.parent.mkdir(parents=True)
    env_file.write_text("OPENCLAW_GATEWAY_TOKEN=old\nOTHER=kept\n")
    spec = m.build_spec([str(tmp_path / "root/opt/node-agent/venv/bin/node-agent"), "run"], voice=True)
    m.install(spec, token=Secret(TOKEN))

    unit = tmp_path / "root/etc/systemd/system/node-agent.service"
    text = unit.read_text()
    assert text == render_unit(spec)
    # paths inside the unit are the target's, not the staging root's
    assert "ExecStart=/opt/node-agent/venv/bin/node-agent run" in text
    assert "EnvironmentFile=-/etc/node-agent/env" in text
    assert TOKEN not in text
    assert mode(unit) == 0o644
    assert mode(env_file) == 0o600
    assert env_file.read_text() == f"OTHER=kept\nOPENCLAW_GATEWAY_TOKEN={TOKEN}\n"
    assert runner.calls == [["systemctl", "daemon-reload"],
                            ["systemctl", "enable", "node-agent.service"],
                            ["systemctl", "restart", "node-agent.service"]]
    assert not any(TOKEN in line for line in lines)

    # idempotent: same bytes, same commands
    m.install(spec, token=Secret(TOKEN))
    assert unit.read_text() == text
    assert env_file.read_text().count("OPENCLAW_GATEWAY_TOKEN=") == 1
    assert runner.calls[3:] == runner.calls[:3]


def test_systemd_uninstall_keeps_env_file_and_is_idempotent(tmp_path):
    runner = Recorder()
    m, lines = manager(tmp_path, Platform.SYSTEMD, runner=runner)
    m.install(m.build_spec(["/opt/node-agent/venv/bin/node-agent", "run"]), token=Secret(TOKEN))
    runner.calls.clear()
    m.uninstall()
    assert not (tmp_path / "root/etc/systemd/system/node-agent.service").exists()
    assert (tmp_path / "root/etc/node-agent/env").exists()
    assert runner.calls == [["systemctl", "disable", "--now", "node-agent.service"],
                            ["systemctl", "daemon-reload"]]
    runner.calls.clear()
    m.uninstall()
    assert runner.calls == []


def test_systemd_user_install(tmp_path):
    runner = Recorder()
    m, lines = manager(tmp_path, Platform.SYSTEMD, Scope.USER, runner=runner, SYSTEMCTL="/stub/systemctl")
    m.install(m.build_spec([str(tmp_path / "home/.local/bin/node-agent"), "run"]), token=Secret(TOKEN))
    unit = tmp_path / "home/.config/systemd/user/node-agent.service"
    assert "ExecStart=%h/.local/bin/node-agent run" in unit.read_text()
    assert "EnvironmentFile=-%h/.config/node-agent/env" in unit.read_text()
    env_file = tmp_path / "home/.config/node-agent/env"
    assert mode(env_file) == 0o600 and mode(env_file.parent) == 0o700
    assert runner.calls[0] == ["/stub/systemctl", "--user", "daemon-reload"]
    assert any("enable-linger" in line for line in lines)


def test_systemd_status_reports_and_passes_exit_code(tmp_path):
    runner = Recorder({"status --no-pager node-agent.service": CommandResult(3, "inactive (dead)\n")})
    m, lines = manager(tmp_path, Platform.SYSTEMD, runner=runner)
    assert m.status() == 3
    assert any("missing" in line for line in lines)
    assert "inactive (dead)" in lines


def test_failed_command_raises_with_its_message(tmp_path):
    runner = Recorder({"restart node-agent.service": CommandResult(1, "", "Job failed.\n")})
    m, lines = manager(tmp_path, Platform.SYSTEMD, runner=runner)
    with pytest.raises(ServiceError, match="Job failed") as info:
        m.install(m.build_spec(["/opt/x/node-agent", "run"]), token=Secret(TOKEN))
    assert TOKEN not in str(info.value)


def test_system_install_refuses_a_venv_under_home(tmp_path):
    m, lines = manager(tmp_path, Platform.SYSTEMD)
    with pytest.raises(ServiceError, match="ProtectHome"):
        m.install(m.build_spec(["/home/pi/venv/bin/node-agent", "run"]))


def test_launchd_install_uninstall(tmp_path):
    runner = Recorder()
    m, lines = manager(tmp_path, Platform.LAUNCHD, runner=runner)
    m.uid = 501
    spec = m.build_spec(["/Users/a/.local/bin/node-agent", "run"])
    m.install(spec)
    plist_path = tmp_path / "home/Library/LaunchAgents/ai.openclaw.node-agent.plist"
    assert plistlib.loads(plist_path.read_bytes())["ProgramArguments"] == list(spec.argv)
    assert (tmp_path / "home/Library/Logs/node-agent").is_dir()
    assert runner.calls == [["launchctl", "bootout", "gui/501/ai.openclaw.node-agent"],
                            ["launchctl", "enable", "gui/501/ai.openclaw.node-agent"],
                            ["launchctl", "bootstrap", "gui/501", str(plist_path)]]
    with pytest.raises(ServiceError, match="Keychain"):
        m.install(spec, token=Secret(TOKEN))
    m.uninstall()
    assert not plist_path.exists()


def test_windows_install_uninstall(tmp_path):
    runner = Recorder()
    m, lines = manager(tmp_path, Platform.WINDOWS, runner=runner, USERDOMAIN="PC", USERNAME="a",
                LOCALAPPDATA=str(tmp_path / "appdata"))
    spec = m.build_spec(["C:\\venv\\Scripts\\pythonw.exe", "-m", "node_agent", "run"])
    m.install(spec)
    xml_path = tmp_path / "appdata/node-agent/node-agent-task.xml"
    task = ET.fromstring(xml_path.read_bytes())
    assert task.findtext("t:Principals/t:Principal/t:UserId", namespaces=NS) == "PC\\a"
    assert runner.calls == [["schtasks", "/Create", "/TN", "node-agent", "/XML", str(xml_path), "/F"],
                            ["schtasks", "/Run", "/TN", "node-agent"]]
    runner.calls.clear()
    m.uninstall()
    assert runner.calls == [["schtasks", "/End", "/TN", "node-agent"],
                            ["schtasks", "/Query", "/TN", "node-agent"],
                            ["schtasks", "/Delete", "/TN", "node-agent", "/F"]]
    assert not xml_path.exists()


def test_env_file_line_quotes_or_refuses():
    assert env_file_line(Secret("abc-DEF_1.2~3+4/5=")) == "OPENCLAW_GATEWAY_TOKEN=abc-DEF_1.2~3+4/5="
    assert env_file_line(Secret("a b$c")) == "OPENCLAW_GATEWAY_TOKEN='a b$c'"
    for bad in ("", "it's", "a\nb", "back\\slash"):
        with pytest.raises(ServiceError) as info:
            env_file_line(Secret(bad))
        assert not bad or bad not in str(info.value)


def test_default_argv(tmp_path):
    bindir = tmp_path / "venv/bin"
    bindir.mkdir(parents=True)
    python = bindir / "python"
    python.touch()
    cfg = tmp_path / "c.toml"
    assert default_argv(Platform.SYSTEMD, None, python=str(python)) == \
        [str(python), "-m", "node_agent", "run"]
    (bindir / "node-agent").touch()
    assert default_argv(Platform.SYSTEMD, str(cfg), python=str(python)) == \
        [str(bindir / "node-agent"), "run", "--config", str(cfg)]
    (bindir / "pythonw.exe").touch()
    assert default_argv(Platform.WINDOWS, None, python=str(python))[:3] == \
        [str(bindir / "pythonw.exe"), "-m", "node_agent"]


# --- the CLI ----------------------------------------------------------------------------------


def test_cli_print_every_platform(capsys):
    assert service_cmd.main(["service", "print", "--platform", "launchd", "--voice"]) == 0
    assert plistlib.loads(capsys.readouterr().out.encode())["ProcessType"] == "Interactive"
    assert service_cmd.main(["service", "print", "--platform", "windows"]) == 0
    assert ET.fromstring(capsys.readouterr().out).find("t:Actions/t:Exec", NS) is not None
    assert service_cmd.main(["service", "print", "--platform", "systemd", "--user"]) == 0
    assert "WantedBy=default.target" in capsys.readouterr().out


def test_cli_install_with_token_from_env(tmp_path, monkeypatch, capsys):
    log = tmp_path / "systemctl.log"
    stub = tmp_path / "systemctl"
    stub.write_text(f'#!/bin/sh\necho "$@" >> {log}\n')
    stub.chmod(0o755)
    monkeypatch.setenv("NODE_AGENT_ROOT", str(tmp_path / "root"))
    monkeypatch.setenv("SYSTEMCTL", str(stub))
    monkeypatch.setenv("OPENCLAW_GATEWAY_TOKEN", TOKEN)
    assert service_cmd.main(["service", "install", "--voice", "--token-from-env",
                             "--config", "/etc/node-agent/config.toml"]) == 0
    out, err = capsys.readouterr()
    assert TOKEN not in out + err
    unit = (tmp_path / "root/etc/systemd/system/node-agent.service").read_text()
    assert "--config /etc/node-agent/config.toml" in unit and "SupplementaryGroups=audio" in unit
    assert TOKEN in (tmp_path / "root/etc/node-agent/env").read_text()
    assert log.read_text().splitlines() == ["daemon-reload", "enable node-agent.service",
                                            "restart node-agent.service"]

    monkeypatch.delenv("OPENCLAW_GATEWAY_TOKEN")
    assert service_cmd.main(["service", "install", "--token-from-env"]) == 1
    assert "OPENCLAW_GATEWAY_TOKEN is not set" in capsys.readouterr().err


def lead_style_common(parser: argparse.ArgumentParser) -> None:
    """The shape of the main CLI's configuration flags (what ``common`` adds)."""
    group = parser.add_argument_group("configuration")
    group.add_argument("--config", metavar="FILE")
    group.add_argument("--gateway", metavar="URL")
    group.add_argument("--state-dir", metavar="DIR")
    group.add_argument("--display-name", metavar="NAME")
    group.add_argument("--allow-insecure-ws", action="store_true", default=None)
    group.add_argument("--log-level", choices=("debug", "info"))


def test_cli_forwards_the_run_flags_given(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    parser = argparse.ArgumentParser()
    service_cmd.add_parser(parser.add_subparsers(dest="command"), lead_style_common)
    args = parser.parse_args(["service", "print", "--platform", "systemd", "--config", "site.toml",
                              "--gateway", "wss://gw:18789", "--display-name", "Kitchen Pi",
                              "--allow-insecure-ws"])
    assert args.func is service_cmd.run
    assert service_cmd.run_flags(args) == ["--config", str(tmp_path / "site.toml"), "--gateway",
                                           "wss://gw:18789", "--display-name", "Kitchen Pi",
                                           "--allow-insecure-ws"]
    assert args.func(args) == 0
    exec_start = [line for line in capsys.readouterr().out.splitlines() if line.startswith("ExecStart=")]
    assert exec_start[0].endswith(f' run --config {tmp_path}/site.toml --gateway wss://gw:18789 '
                                  '--display-name "Kitchen Pi" --allow-insecure-ws')


def test_system_unit_refuses_flags_that_cannot_work_in_its_sandbox(capsys):
    for flags in (["--state-dir", "/srv/na"], ["--token-file", "/etc/node-agent/token"]):
        spec = ServiceSpec(argv=("/opt/x/node-agent", "run", *flags))
        assert system_path_problems(spec), flags


def test_render_dispatch_matches_generators():
    spec = ServiceSpec(argv=("/x", "run"), log_dir="/logs")
    assert render(spec, Platform.SYSTEMD) == render_unit(spec)
    assert render(spec, Platform.LAUNCHD).encode() == render_plist(spec)
    assert render(spec, Platform.WINDOWS) == render_task_xml(spec)


def test_system_install_makes_the_configuration_directory_before_systemd_can(tmp_path):
    """systemd (252, booted in a container) creates a missing ConfigurationDirectory= owned by the
    service's user (the DynamicUser= one) and leaves an existing one alone: the installer makes
    /etc/node-agent first, root's and 0755, token or not, so the service can never rewrite it."""
    config_dir = tmp_path / "root/etc/node-agent"
    seen: list[tuple[bool, int | None]] = []

    class Watching(Recorder):
        def __call__(self, argv):
            if list(argv[-2:]) == ["restart", "node-agent.service"]:
                seen.append((config_dir.is_dir(), mode(config_dir) if config_dir.is_dir() else None))
            return super().__call__(argv)

    m, lines = manager(tmp_path, Platform.SYSTEMD, runner=Watching())
    m.install(m.build_spec(["/opt/node-agent/venv/bin/node-agent", "run"]))
    assert seen == [(True, 0o755)]
    assert config_dir.stat().st_uid == os.geteuid()


def test_system_install_takes_back_a_configuration_directory_systemd_gave_away(tmp_path, monkeypatch):
    from node_agent.service import manage

    config_dir = tmp_path / "root/etc/node-agent"
    config_dir.mkdir(parents=True, mode=0o755)
    chowned: list[tuple[str, int, int]] = []
    monkeypatch.setattr(manage, "_owner", lambda path: 61234)  # a DynamicUser= uid, as an earlier start left it
    monkeypatch.setattr(manage.os, "chown", lambda path, uid, gid: chowned.append((str(path), uid, gid)))
    m, lines = manager(tmp_path, Platform.SYSTEMD)
    m.uid = 0
    m.install(m.build_spec(["/opt/node-agent/venv/bin/node-agent", "run"]))
    assert chowned == [(str(config_dir), 0, 0)]
    assert any("owned by uid 61234" in line and "gave it back to root" in line for line in lines), lines
