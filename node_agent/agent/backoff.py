"""How long to wait before the next connection attempt, by retry category.

Pure: no clock, no sleep; randomness is injected so tests can assert the exact schedule.

* TRANSIENT: 1 s, 2 s, 4 s ... capped at 30 s, each scaled by a jitter factor in
  [1 - jitter, 1 + jitter] (so a fleet of nodes does not reconnect in lock-step after a
  gateway restart). If we *were* connected until recently, we are in "recovery": a gateway
  restart on a Pi takes ~12 s and the user expects the node back as soon as it is up, so for
  ``recovery_window`` seconds after losing a good connection we retry every ``recovery_delay``
  (a refused loopback/LAN connect costs nothing), then fall back to the exponential schedule.
* SERVER_RESTART: the announced ``restartExpectedMs`` (or ``recovery_delay``), then recovery.
* STARTING: the gateway's ``retryAfterMs`` hint (it said "starting, retry shortly").
* RATE_LIMITED: 30 s doubling to 5 min, never less than the gateway's hint.
* PAIRING_PENDING: a calm fixed cadence; each retry keeps the pending request alive (it
  expires 5 min after the last one) and picks up an approval within seconds.
* REAUTH: almost at once; the stale token was just dropped.
* FATAL: no retry (``None``).
"""

from __future__ import annotations

import random
from typing import Callable

from ..errors import GatewayUnreachable, NodeAgentError, Retry


class ReconnectPolicy:
    def __init__(self, *, initial: float = 1.0, maximum: float = 30.0, factor: float = 2.0, jitter: float = 0.2,
                 recovery_delay: float = 0.5, recovery_window: float = 120.0, pairing_interval: float = 3.0,
                 rate_limited_initial: float = 30.0, rate_limited_max: float = 300.0, reauth_delay: float = 0.25,
                 rng: Callable[[], float] = random.random):
        self.initial, self.maximum, self.factor, self.jitter = initial, maximum, factor, jitter
        self.recovery_delay, self.recovery_window = recovery_delay, recovery_window
        self.pairing_interval = pairing_interval
        self.rate_limited_initial, self.rate_limited_max = rate_limited_initial, rate_limited_max
        self.reauth_delay = reauth_delay
        self._rng = rng
        self._attempt = 0
        self._rate_attempt = 0
        self._lost_at: float | None = None
        self._handshake_failures = 0

    def connected(self, now: float) -> None:
        """A connection reached hello-ok: the next failure starts the schedule afresh."""
        self._attempt = 0
        self._rate_attempt = 0
        self._lost_at = None
        self._handshake_failures = 0

    def lost(self, now: float) -> None:
        """A connection that had reached hello-ok ended: enter recovery."""
        self._lost_at = now

    def next_delay(self, error: NodeAgentError, now: float) -> float | None:
        retry = error.retry
        hint = getattr(error, "retry_after_s", None)
        if retry is Retry.FATAL:
            return None
        if retry is Retry.REAUTH:
            return self.reauth_delay
        if retry is Retry.PAIRING_PENDING:
            return self._jittered(self.pairing_interval)
        if retry is Retry.STARTING:
            return hint if hint is not None else self.recovery_delay
        if retry is Retry.RATE_LIMITED:
            base = min(self.rate_limited_initial * self.factor ** self._rate_attempt, self.rate_limited_max)
            self._rate_attempt += 1
            return max(self._jittered(base), hint or 0.0)
        if retry is Retry.SERVER_RESTART:
            self._lost_at = now if self._lost_at is None else self._lost_at
            return hint if hint is not None else self._recovery()
        # TRANSIENT
        if self._lost_at is not None and now - self._lost_at < self.recovery_window:
            # Fast retries suit a refused connect (the gateway is not up yet: cheap to ask again).
            # A failure *after* the socket opened (handshake timeout, closed mid-handshake) means
            # an overloaded gateway: after two of those, fall through to the exponential schedule
            # instead of joining a synchronised storm.
            if isinstance(error, GatewayUnreachable):
                return self._recovery()
            self._handshake_failures += 1
            if self._handshake_failures <= 2:
                return self._recovery()
        base = min(self.initial * self.factor ** self._attempt, self.maximum)
        self._attempt += 1
        return max(min(self._jittered(base), self.maximum), hint or 0.0)

    def _recovery(self) -> float:
        # Spread over [0.5, 1.5] x recovery_delay: a fleet that lost the same gateway at the same
        # moment must not come back at the same moment.
        return self.recovery_delay * (0.5 + self._rng())

    def _jittered(self, base: float) -> float:
        return base * (1 - self.jitter + 2 * self.jitter * self._rng())
