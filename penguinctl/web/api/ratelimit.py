"""Per-key token buckets (in process: each ``serve`` replica counts for itself).

A key gets ``rate`` requests per second on average and bursts of ``burst``; past that the
request is answered 429 with ``Retry-After`` (whole seconds until a token is back). Settings:
``PENGUINCTL_API_RATE`` (default 20/s) and ``PENGUINCTL_API_BURST`` (default 100)."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Mapping

from penguinctl.errors import RateLimited

DEFAULT_RATE = 20.0
DEFAULT_BURST = 100.0
MAX_KEYS = 100_000  # buckets kept; the least recently used go first beyond it


class Buckets:
    def __init__(self, rate: float = DEFAULT_RATE, burst: float = DEFAULT_BURST) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._state: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Buckets:
        from penguinctl.errors import ConfigError

        try:
            rate = float(env.get("PENGUINCTL_API_RATE") or DEFAULT_RATE)
            burst = float(env.get("PENGUINCTL_API_BURST") or DEFAULT_BURST)
            return cls(rate, burst)
        except ValueError as exc:
            raise ConfigError(f"PENGUINCTL_API_RATE/BURST: {exc}") from None

    def take(self, key: str, now: float | None = None) -> None:
        """Spend one token of ``key``'s bucket, or raise ``RateLimited``."""
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens, last = self._state.pop(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens < 1:
                self._state[key] = (tokens, now)
                wait = max(1, math.ceil((1 - tokens) / self.rate))
                raise RateLimited(
                    f"rate limit of {self.rate:g} requests/s (bursts of {self.burst:g}) reached",
                    retry_after=wait,
                    hint=f"retry after {wait} s",
                )
            self._state[key] = (tokens - 1, now)  # re-inserted: most recently used last
            if len(self._state) > MAX_KEYS:
                self._state.pop(next(iter(self._state)))
