"""The sans-io protocol core: models, one codec per wire dialect, and the session state machine.

Nothing in this package performs I/O, reads a clock, or logs: it turns frames and the current
time into actions (see :mod:`.session`). The Trio layer in :mod:`node_agent.agent` runs it.
"""

from .actions import (
    Action,
    CancelInvoke,
    Close,
    Dispatch,
    ForgetDeviceToken,
    LogProblem,
    PairingPending,
    Ready,
    ResponseReceived,
    Send,
    StoreDeviceToken,
)
from .autodetect import DETECT_WINDOW_S, choose_dialect, get_dialect
from .dialect import ClientInfo, ConnectInputs, Credentials, Dialect, Handshake, Signer
from .jsonrpc import JsonRpcDialect, JsonRpcHandshake
from .models import (
    ConnectChallenge,
    ErrorShape,
    Event,
    EventBody,
    GenericEvent,
    HelloOk,
    NodeInvokeCancel,
    NodeInvokeRequest,
    NodePairResolved,
    PairingCode,
    Policy,
    Request,
    Response,
    Shutdown,
    TalkMode,
    Tick,
    UnknownEvent,
    VoiceWakeChanged,
)
from .openclaw import OpenClawDialect
from .session import Session, State

__all__ = [name for name in dir() if not name.startswith("_")]
