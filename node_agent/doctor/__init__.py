"""``node-agent doctor``: look at everything the agent depends on and say what to fix.

One check per module, each a line of the report (:class:`Check`: ok / warn / fail / skip, a
one-line detail, and for anything not ok a one-line fix): :mod:`.config`, :mod:`.state_dir`,
:mod:`.secret_store`, :mod:`.identity`, :mod:`.gateway`, :mod:`.tls`, :mod:`.pairing`,
:mod:`.audio`, :mod:`.wake`, :mod:`.speech`, :mod:`.exec_approvals`, :mod:`.tools`, :mod:`.service`. :mod:`.runner` runs them in order
(:data:`~.runner.CHECKS`); the text rendering is :func:`node_agent.cli.screens.render_doctor`.

Invariants:

* Read-only. Doctor never writes the secret-backend marker (it asks
  :func:`node_agent.secrets.describe_store`), never creates the state directory or an identity,
  never stores a token. Opening a microphone for a moment to see whether it is busy, and
  playing a silent sentence to see that speech reaches a sound output, are the only things it
  "uses". (Reading ``secrets.json`` through the file store tightens a loose mode to 0600,
  exactly as the agent would on its next start; the check reports it.)
* On the real edge. The gateway is reached through the daemon's own transport
  (:func:`node_agent.transport.probe`): no socket, TLS or WebSocket code of its own, and no
  library exception caught here.
* Typed. The agent's status is read through :class:`~node_agent.agent.status.AgentStatus` and
  the settings through :class:`~node_agent.config.Config` (``Config.voice`` is
  :class:`~node_agent.config.voice.VoiceSettings`), never as raw dicts.
* Bounded. Every network, keyring, audio and subprocess step runs under a timeout, blocking
  calls in worker threads (abandoned on timeout where the call could hang forever: keyring,
  PortAudio).
* No secret reaches a detail: a device token is "present", never shown.
* Voice is optional: ``node_agent.voice``, ``sounddevice``/PortAudio and ``pyopen-wakeword`` are
  imported lazily; when they are missing the audio and wake-word checks are skipped with the
  reason, unless ``[voice]`` turns voice on, in which case missing pieces fail.

Import rule: this package is imported by ``node-agent doctor`` only; it may import every layer
below the CLI (config, secrets, identity, transport, protocol, agent status, adapters, voice),
and nothing imports it but :mod:`node_agent.cli.doctor_cmd`.
"""

from .check import Check, Status, fail, ok, skip, warn
from .context import Context, DoctorOptions, Needs
from .runner import CHECKS, Step, exit_code, report_json, run_checks

__all__ = [
    "CHECKS", "Check", "Context", "DoctorOptions", "Needs", "Status", "Step", "exit_code", "fail", "ok",
    "report_json", "run_checks", "skip", "warn",
]
