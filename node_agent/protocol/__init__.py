"""The sans-io protocol core: models, one codec per wire dialect, and the session state machine.

Nothing in this package performs I/O, reads a clock, or logs: it turns frames and the current
time into actions (see :mod:`.session`). The Trio layer in :mod:`node_agent.agent` runs it.

Import rule: the bottom of the stack; it imports only ``errors`` and ``secret`` (never Trio,
sockets or the agent), and each dialect is one codec module behind :class:`.dialect.Dialect`.
"""

import importlib
from typing import Any

#: The public names, by the module that defines them. Loaded on first use (PEP 562): an agent
#: that speaks only OpenClaw never imports the documented dialect's codec, and ``node-agent
#: status`` never imports a codec at all.
_EXPORTS: dict[str, tuple[str, ...]] = {
    "actions": ("Action", "CancelInvoke", "Close", "Dispatch", "ForgetDeviceToken", "InvokeStarted", "LogProblem",
                "PairingPending", "Ready", "ResponseReceived", "Send", "StoreDeviceToken", "SurfaceApproved"),
    "autodetect": ("DETECT_WINDOW_S", "choose_dialect", "get_dialect"),
    "dialect": ("ClientInfo", "ConnectInputs", "Credentials", "Dialect", "Handshake", "Signer"),
    "jsonrpc": ("JsonRpcDialect", "JsonRpcHandshake"),
    "models": ("ConnectChallenge", "ErrorShape", "Event", "EventBody", "GenericEvent", "HelloOk", "NodeInvokeCancel",
               "NodeInvokeRequest", "NodePairResolved", "PairingCode", "Policy", "Request", "Response", "Shutdown",
               "TalkMode", "Tick", "UnknownEvent", "VoiceWakeChanged", "VoiceWakeRoutingChanged"),
    "openclaw": ("OpenClawDialect",),
    "replies": ("NodeEventReply",),
    "session": ("Session", "State"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # once loaded, a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
