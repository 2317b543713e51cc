"""Running the agent as a service: definitions for systemd, launchd and Task Scheduler, the
code that installs them, and the systemd notification protocol the daemon speaks.

Generators are pure (:class:`ServiceSpec` in, text or bytes out); :mod:`.manage` is the only
module that writes files or runs commands; :mod:`.sd_notify` is the only one the running
daemon imports.
"""

from .manage import ServiceError, ServiceManager, current_platform, default_argv, render
from .sd_notify import SdNotify
from .spec import EXIT_FATAL, LAUNCHD_LABEL, SERVICE_NAME, TOKEN_ENV_VAR, Platform, Scope, ServiceSpec

__all__ = [
    "EXIT_FATAL",
    "LAUNCHD_LABEL",
    "SERVICE_NAME",
    "TOKEN_ENV_VAR",
    "Platform",
    "Scope",
    "SdNotify",
    "ServiceError",
    "ServiceManager",
    "ServiceSpec",
    "current_platform",
    "default_argv",
    "render",
]
