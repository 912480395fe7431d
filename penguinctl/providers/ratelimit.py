"""Client-side flow control for HTTP API clients: a token bucket and a circuit breaker.

Both are thread-safe and take an injectable clock (and the bucket a sleep), so tests never wait.

- ``TokenBucket(rate, burst)``: ``acquire()`` blocks until a request may go, keeping under
  ``rate`` requests per second with bursts of at most ``burst``.
- ``CircuitBreaker(threshold, reset_after)``: after ``threshold`` consecutive failed calls it
  opens and refuses calls (``allow()`` returns False) until ``reset_after`` seconds have passed;
  then it is half-open and lets exactly one trial call through: a success closes it, a failure
  opens it again for another ``reset_after`` seconds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half-open"


class TokenBucket:
    """``rate`` requests per second with bursts of up to ``burst``; thread-safe. A caller
    reserves its slot under the lock and sleeps outside it."""

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a token bucket needs rate > 0 and burst >= 1")
        self.rate = rate
        self.burst = float(burst)
        self._clock = clock
        self._sleep = sleep
        self._tokens = float(burst)
        self._last = clock()
        self._lock = threading.Lock()

    def acquire(self) -> None:
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
            self._tokens -= 1.0
            wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
        if wait > 0:
            self._sleep(wait)


class CircuitBreaker:
    """Counts consecutive failed calls; see the module docstring for the state machine.

    Callers ask ``allow()`` before a call and report its outcome with ``success()`` or
    ``failure()``. ``retry_in()`` is how long an open breaker still refuses calls.
    """

    def __init__(
        self,
        threshold: int = 5,
        reset_after: float = 60.0,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if threshold < 1 or reset_after < 0:
            raise ValueError("a circuit breaker needs threshold >= 1 and reset_after >= 0")
        self.threshold = threshold
        self.reset_after = reset_after
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._trial = False  # a half-open trial call is in flight
        self._lock = threading.Lock()

    @property
    def state(self) -> str:
        with self._lock:
            return self._state()

    def _state(self) -> str:
        if self._opened_at is None:
            return CLOSED
        if self._clock() - self._opened_at >= self.reset_after:
            return HALF_OPEN
        return OPEN

    @property
    def failures(self) -> int:
        """Consecutive failures so far."""
        with self._lock:
            return self._failures

    def allow(self) -> bool:
        """May a call go now? In the half-open state only one trial call is let through."""
        with self._lock:
            state = self._state()
            if state == CLOSED:
                return True
            if state == HALF_OPEN and not self._trial:
                self._trial = True
                return True
            return False

    def retry_in(self) -> float:
        with self._lock:
            if self._opened_at is None:
                return 0.0
            return max(0.0, self.reset_after - (self._clock() - self._opened_at))

    def success(self) -> None:
        with self._lock:
            self._failures = 0
            self._opened_at = None
            self._trial = False

    def abandon(self) -> None:
        """A call ended without an outcome (interrupted): free the half-open trial slot."""
        with self._lock:
            self._trial = False

    def failure(self) -> bool:
        """Record a failed call. True when this failure opened (or re-opened) the breaker."""
        with self._lock:
            self._failures += 1
            if self._trial:  # the half-open trial call failed: open again
                self._trial = False
                self._opened_at = self._clock()
                return True
            if self._opened_at is None and self._failures >= self.threshold:
                self._opened_at = self._clock()
                return True
            return False
