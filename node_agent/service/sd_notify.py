"""The systemd notification protocol (sd_notify(3)), ~one screen of code instead of a dependency.

Job: tell systemd ``READY=1`` once the agent runs, ``STATUS=...`` on every state change
(pairing, connected, backoff), ``STOPPING=1`` on shutdown, and ``WATCHDOG=1`` every half of
``$WATCHDOG_USEC`` from a task on the Trio loop.

Invariants:

* Not under systemd (no ``$NOTIFY_SOCKET``, or not on a platform with AF_UNIX) means every call
  is a silent no-op, so callers never branch on "are we a service?".
* Sending never blocks and never raises: each message is one non-blocking datagram, and a full
  socket buffer or a vanished systemd just drops it (a lost ping is retried half a period later;
  a lost STATUS is superseded by the next). That is why a plain stdlib socket is fine here even
  when called from inside the Trio loop, from a worker thread, or from a shutdown path.
* The watchdog proves that the *event loop* is alive, nothing more: :meth:`SdNotify.watchdog_loop`
  is an ordinary Trio task, so a blocked loop stops the pings and systemd restarts us, while an
  unreachable gateway does not (the reconnect policy deals with that).
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

import trio

log = logging.getLogger(__name__)


def _parse_address(raw: str | None) -> str | bytes | None:
    """``$NOTIFY_SOCKET`` as a ``sendto`` address: a path, or ``b"\\0name"`` for ``@name``."""
    if not raw:
        return None
    if raw.startswith("@"):
        return b"\0" + raw[1:].encode()
    if raw.startswith("/"):
        return raw
    # systemd >= 253 can also hand out "vsock:CID:PORT" (for VMs); we are never in one of those.
    log.warning("ignoring unsupported NOTIFY_SOCKET %r", raw)
    return None


def _parse_watchdog(environ: Mapping[str, str]) -> float | None:
    """Seconds between pings (half the timeout), or None when no watchdog is asked of *us*."""
    try:
        usec = int(environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    if usec <= 0:
        return None
    pid = environ.get("WATCHDOG_PID")
    if pid and pid != str(os.getpid()):
        return None  # meant for the process that exec'd us, as sd_watchdog_enabled(3) says
    return usec / 2 / 1_000_000


class SdNotify:
    """A handle on the notification socket; cheap, stateless between calls, thread-safe.

    ``SdNotify()`` reads ``os.environ``; pass ``environ=`` to use another mapping (tests).
    :meth:`from_env` returns None instead of a disabled instance, for callers that prefer that.
    """

    def __init__(self, environ: Mapping[str, str] | None = None):
        env = os.environ if environ is None else environ
        self._address = _parse_address(env.get("NOTIFY_SOCKET")) if hasattr(socket, "AF_UNIX") else None
        #: Seconds between ``WATCHDOG=1`` pings, or None when systemd set no watchdog.
        self.watchdog_interval: float | None = _parse_watchdog(env) if self._address else None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SdNotify | None:
        """An :class:`SdNotify` when running under systemd (``$NOTIFY_SOCKET`` usable), else None."""
        notifier = cls(environ)
        return notifier if notifier.enabled else None

    @property
    def enabled(self) -> bool:
        """True when there is a systemd to talk to."""
        return self._address is not None

    def __repr__(self) -> str:
        return f"SdNotify(enabled={self.enabled}, watchdog_interval={self.watchdog_interval})"

    def notify(self, **fields: object) -> bool:
        """Send one message, e.g. ``notify(READY=1, STATUS="offline, retrying in 8s")``.

        Values are ``str()``-ed; newlines in them become spaces, since a newline would start
        another field (a STATUS text must not be able to forge ``READY=1``). Returns whether the
        datagram was handed to the kernel; False when disabled or the send failed.
        """
        if self._address is None or not fields:
            return False
        payload = "\n".join(f"{key}={_one_line(value)}" for key, value in fields.items())
        try:
            # A socket per message, as libsystemd does: nothing to keep open or to leak into a
            # fork (Python sockets are non-inheritable anyway), and no state to reset.
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.setblocking(False)
                sock.sendto(payload.encode("utf-8", "replace"), self._address)
        except OSError as exc:  # includes BlockingIOError: a busy systemd just misses one message
            log.debug("sd_notify %s failed: %s", ",".join(fields), exc)
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        """``READY=1`` (with an optional ``STATUS=``): send once config is loaded and devices are
        open, *not* after the gateway connects, since an offline node is still a running one."""
        return self.notify(READY=1, STATUS=status) if status is not None else self.notify(READY=1)

    def status(self, text: str) -> bool:
        """``STATUS=text``: shown by ``systemctl status``; send it on every state change."""
        return self.notify(STATUS=text)

    def stopping(self, status: str | None = None) -> bool:
        """``STOPPING=1``: send when shutdown begins."""
        return self.notify(STOPPING=1, STATUS=status) if status is not None else self.notify(STOPPING=1)

    def watchdog(self) -> bool:
        """One ``WATCHDOG=1`` ping (the loop below sends them; this is for the odd manual one)."""
        return self.notify(WATCHDOG=1)

    async def watchdog_loop(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Ping ``WATCHDOG=1`` now and then every :attr:`watchdog_interval` seconds, forever.

        Start it in the root nursery (``nursery.start_soon(notifier.watchdog_loop)``). Returns at
        once when systemd asked for no watchdog. It must stay a plain task on the main Trio loop
        (never a thread): its silence when the loop is blocked is the whole point.
        """
        task_status.started()
        interval = self.watchdog_interval
        if interval is None:
            return
        while True:
            self.notify(WATCHDOG=1)
            await trio.sleep(interval)


def _one_line(value: object) -> str:
    return str(value).replace("\r", " ").replace("\n", " ")
