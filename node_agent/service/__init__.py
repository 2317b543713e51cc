"""Running the agent as a service: definitions for systemd, launchd and Task Scheduler, the
code that installs them, and the systemd notification protocol the daemon speaks.

Generators are pure (:class:`ServiceSpec` in, text or bytes out); :mod:`.manage` is the only
module that writes files or runs commands; :mod:`.sd_notify` is the only one the running
daemon imports.

Import rule: nothing here imports the agent, the protocol or Trio; the CLI imports this package.
"""

from .spec import EXIT_FATAL, LAUNCHD_LABEL, SERVICE_NAME, TOKEN_ENV_VAR, Platform, Scope, ServiceSpec

_LAZY = {"ServiceError": "manage", "ServiceManager": "manage", "current_platform": "manage",
         "default_argv": "manage", "render": "manage", "SdNotify": "sd_notify"}


def __getattr__(name: str):
    # `manage` pulls in Trio and subprocess helpers; building the CLI parser must not pay for it.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(name)

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
