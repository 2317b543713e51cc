"""Render a Windows Task Scheduler task (XML) from a :class:`~.spec.ServiceSpec`.

A task at logon in the user's session, not a Windows service: session 0 has no microphone
consent and no access to the user's Credential Manager vault (see the reference notes, B.7).
Registered with ``schtasks /Create /XML <file> /TN node-agent /F``.

Keeping it alive takes two mechanisms, because Task Scheduler's ``RestartOnFailure`` only fires
when the task fails to *launch*, not when the program later exits non-zero:

* ``RestartOnFailure`` covers launch failures (a venv mid-upgrade, say);
* the logon trigger repeats every :data:`KEEPALIVE_INTERVAL` with ``MultipleInstancesPolicy``
  ``IgnoreNew``: while the agent runs the repeat is a no-op, after a crash it starts it again.

The defaults Task Scheduler would otherwise apply are wrong for a long-running agent and are
overridden explicitly: a 72-hour execution limit, and stopping on battery power.

:func:`render_task_xml` returns text with no encoding declaration, so the same string is valid
XML both as the UTF-8 example file and as the UTF-16 (with BOM) file handed to ``schtasks``,
which is the encoding Task Scheduler itself exports.
"""

from __future__ import annotations

import subprocess
import xml.etree.ElementTree as ET

from .spec import ServiceSpec

TASK_NAMESPACE = "http://schemas.microsoft.com/windows/2004/02/mit/task"
#: How soon a crashed agent comes back (the repeat of the logon trigger).
KEEPALIVE_INTERVAL = "PT5M"


def command_and_arguments(spec: ServiceSpec) -> tuple[str, str]:
    """``<Command>`` and ``<Arguments>`` for ``spec.argv``, quoted the way CreateProcess parses."""
    command = spec.argv[0]
    if " " in command or "\t" in command:
        command = f'"{command}"'
    return command, subprocess.list2cmdline(spec.argv[1:])


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrib: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attrib)
    if text is not None:
        element.text = text
    return element


#: The task's <Settings>, in the schema's order (Task Scheduler rejects another order).
_SETTINGS: tuple[tuple[str, str | tuple[tuple[str, str], ...]], ...] = (
    ("MultipleInstancesPolicy", "IgnoreNew"),
    ("DisallowStartIfOnBatteries", "false"),
    ("StopIfGoingOnBatteries", "false"),
    ("AllowHardTerminate", "true"),
    ("StartWhenAvailable", "true"),
    ("RunOnlyIfNetworkAvailable", "false"),  # the agent's backoff waits for it
    ("IdleSettings", (("StopOnIdleEnd", "false"), ("RestartOnIdle", "false"))),
    ("AllowStartOnDemand", "true"),
    ("Enabled", "true"),
    ("Hidden", "false"),
    ("RunOnlyIfIdle", "false"),
    ("WakeToRun", "false"),
    ("ExecutionTimeLimit", "PT0S"),  # unlimited; the default would stop it at 72 h
    ("Priority", "5"),  # "normal"; the default 7 is below normal
    # Interval: the schema's minimum; Count: its maximum.
    ("RestartOnFailure", (("Interval", "PT1M"), ("Count", "999"))),
)


def task_element(spec: ServiceSpec) -> ET.Element:
    task = ET.Element("Task", {"version": "1.2", "xmlns": TASK_NAMESPACE})

    info = _sub(task, "RegistrationInfo")
    _sub(info, "Description", spec.description)
    _sub(info, "URI", "\\" + spec.name)

    triggers = _sub(task, "Triggers")
    logon = _sub(triggers, "LogonTrigger")
    _sub(logon, "Enabled", "true")
    if spec.account:
        _sub(logon, "UserId", spec.account)
    repetition = _sub(logon, "Repetition")
    _sub(repetition, "Interval", KEEPALIVE_INTERVAL)  # no Duration: repeat indefinitely
    _sub(repetition, "StopAtDurationEnd", "false")

    principals = _sub(task, "Principals")
    principal = _sub(principals, "Principal", id="Author")
    if spec.account:
        _sub(principal, "UserId", spec.account)
    _sub(principal, "LogonType", "InteractiveToken")
    _sub(principal, "RunLevel", "LeastPrivilege")

    settings = _sub(task, "Settings")
    for tag, value in _SETTINGS:
        if isinstance(value, str):
            _sub(settings, tag, value)
        else:
            group = _sub(settings, tag)
            for inner, text in value:
                _sub(group, inner, text)

    actions = _sub(task, "Actions", Context="Author")
    exec_ = _sub(actions, "Exec")
    command, arguments = command_and_arguments(spec)
    _sub(exec_, "Command", command)
    if arguments:
        _sub(exec_, "Arguments", arguments)
    return task


def render_task_xml(spec: ServiceSpec) -> str:
    """The task definition as text (no encoding declaration; see the module docstring)."""
    task = task_element(spec)
    ET.indent(task, space="  ")
    return '<?xml version="1.0"?>\n' + ET.tostring(task, encoding="unicode") + "\n"


def task_xml_for_schtasks(spec: ServiceSpec) -> bytes:
    """The bytes to write for ``schtasks /XML``: UTF-16 little-endian with a BOM, CRLF lines."""
    return b"\xff\xfe" + render_task_xml(spec).replace("\n", "\r\n").encode("utf-16-le")
