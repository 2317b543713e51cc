"""The ``keyring`` backend: the OS keyring, reached through the ``keyring`` package.

Every call leaves the Trio thread and runs under a deadline, because a keyring can block
indefinitely: a locked Secret Service waits for an unlock prompt nobody sees on a headless
box, and the first call may spend seconds discovering D-Bus.

Invariants:

* Each call is one worker thread under ``trio.fail_after(timeout)`` with
  ``abandon_on_cancel=True``: a timeout returns control at the deadline even though the
  thread stays stuck. A per-store ``CapacityLimiter(1)`` serialises calls (backends are not
  all thread-safe) and means a stuck keyring holds one thread, not one per retry: later calls
  wait for the limiter under their own deadline and time out the same way.
* Whatever the backend raises becomes :class:`~node_agent.errors.SecretStoreError` (retry
  ``TRANSIENT``: a keyring may be unlocked or come back), with any value scrubbed from the text.
* The ``fail`` and ``null`` backends, or a chainer with nothing to chain, count as "no
  keyring": ``null`` in particular would accept writes and forget them, and a device that
  forgets its identity on every start has to be paired again each time.
* Deleting a missing key is not an error.
"""

from __future__ import annotations

import functools
import sys
from typing import Any, Callable, TypeVar

import trio

from ..errors import SecretStoreError
from ..secret import Secret
from ._values import require_secret, scrub

T = TypeVar("T")

#: Read by :meth:`KeyringStore.probe`; never written, so probing leaves no trace.
PROBE_KEY = "probe"


class KeyringStore:
    name = "keyring"
    durable = True

    def __init__(self, service: str, timeout: float = 3.0, backend: Any | None = None):
        self.service = service
        self.timeout = timeout
        #: ``None`` means "whatever ``keyring.get_keyring()`` picks", resolved in the worker
        #: thread on first use because resolving it may itself block on D-Bus.
        self._backend = backend
        self._limiter = trio.CapacityLimiter(1)

    def __repr__(self) -> str:
        backend = "default" if self._backend is None else type(self._backend).__name__
        return f"KeyringStore(service={self.service!r}, backend={backend}, timeout={self.timeout:g})"

    async def get(self, key: str) -> Secret | None:
        plain = await self._call("read", key, lambda kr: kr.get_password(self.service, key))
        return None if plain is None else Secret(plain)

    async def set(self, key: str, value: Secret) -> None:
        require_secret(value)
        plain = value.reveal()
        await self._call("write", key, lambda kr: kr.set_password(self.service, key, plain), plain=plain)

    async def delete(self, key: str) -> None:
        def delete(kr: Any) -> None:
            try:
                kr.delete_password(self.service, key)
            except _keyring().errors.PasswordDeleteError:
                # Backends raise this both for "not found" and for real failures (macOS uses
                # one error for everything), so look: only a key that is still there is a failure.
                if kr.get_password(self.service, key) is not None:
                    raise

        await self._call("delete", key, delete)

    async def probe(self) -> None:
        """Raise :class:`SecretStoreError` unless the keyring answers a harmless read in time."""
        await self._call("probe", PROBE_KEY, lambda kr: kr.get_password(self.service, PROBE_KEY))

    async def _call(self, what: str, key: str, op: Callable[[Any], T], *, plain: str | None = None) -> T:
        try:
            with trio.fail_after(self.timeout):
                return await trio.to_thread.run_sync(
                    functools.partial(self._run, op), abandon_on_cancel=True, limiter=self._limiter)
        except trio.TooSlowError:
            raise SecretStoreError(
                f"keyring did not answer within {self.timeout:g} s ({what} of {key!r})",
                hint=_LOCKED_HINT) from None
        except SecretStoreError:
            raise
        except Exception as exc:
            # Broader than keyring's own errors on purpose: backends leak D-Bus, jeepney,
            # secretstorage and OS errors, and none of them should escape this edge.
            text = f"{type(exc).__name__}: {exc}"
            clean = scrub(text, plain)
            err = SecretStoreError(f"keyring {what} of {key!r} failed: {clean}", hint=_LOCKED_HINT)
            if clean != text or (plain and plain in repr(exc.args)):
                raise err from None  # the original carries the value: do not chain it
            raise err from exc

    def _run(self, op: Callable[[Any], T]) -> T:
        backend = self._backend if self._backend is not None else _keyring().get_keyring()
        _require_usable(backend)
        return op(backend)


def _keyring() -> Any:
    # Imported on first use, in the worker thread: `keyring` and its backend discovery cost
    # ~25 ms at start-up, which an agent on the file store never needs to pay.
    import keyring
    import keyring.errors

    return keyring


def _require_usable(backend: Any) -> None:
    from keyring.backends import chainer, fail, null

    empty_chain = isinstance(backend, chainer.ChainerBackend) and not backend.backends
    if isinstance(backend, (fail.Keyring, null.Keyring)) or empty_chain:
        raise SecretStoreError(f"no usable OS keyring (keyring chose {_describe(backend)}{_NO_KEYRING_WHY})",
                               hint=_NO_KEYRING_HINT)


def _describe(backend: Any) -> str:
    name = getattr(backend, "name", None)
    return repr(name if isinstance(name, str) else type(backend).__name__)


if sys.platform.startswith("linux"):
    _NO_KEYRING_WHY = "; no D-Bus Secret Service found"
    _NO_KEYRING_HINT = ("Run a Secret Service (gnome-keyring, KWallet, KeePassXC) in this user's "
                        "D-Bus session, or use the file backend.")
else:
    _NO_KEYRING_WHY = ""
    _NO_KEYRING_HINT = "Check the OS keyring, or use the file backend."

_LOCKED_HINT = "Unlock the OS keyring (or start its service) for the user the agent runs as."
