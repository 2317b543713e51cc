"""Whether this process runs under a service manager that restarts it after a failure.

A hint such as "the agent retries by itself" is true under the units this package installs
(systemd ``Restart=on-failure``, launchd ``KeepAlive``) and false for ``node-agent run`` typed in
a terminal, where a failed start is simply the end. Messages that promise a restart ask here.

Detection, and why each test is as narrow as it is:

* systemd: ``NOTIFY_SOCKET`` and ``INVOCATION_ID`` together. Our unit is ``Type=notify``, so
  both are set; ``INVOCATION_ID`` alone is not enough, because a shell in a desktop session may
  inherit it from the terminal emulator's own unit.
* launchd: ``XPC_SERVICE_NAME`` is the job's label (in a Terminal window it is ``0`` or the
  application's name).

The Windows logon task starts the agent again only at its next five-minute repeat, which is not
a restart a person should wait for; it is not detected.
"""

from __future__ import annotations

import os
from collections.abc import Mapping


def restarted_on_failure(environ: Mapping[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    if env.get("NOTIFY_SOCKET") and env.get("INVOCATION_ID"):
        return True
    from .service.spec import LAUNCHD_LABEL

    return env.get("XPC_SERVICE_NAME") == LAUNCHD_LABEL


def after_the_fix(environ: Mapping[str, str] | None = None) -> str:
    """How a start-up failure's hint ends: who starts the agent again once it is fixed."""
    if restarted_on_failure(environ):
        return "the service manager restarts the agent by itself"
    return "then start the agent again"
