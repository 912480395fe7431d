"""When a failed delivery is tried again (Standard Webhooks' example schedule, as Svix runs it).

The first attempt is immediate; after a failure the next comes after 5 s, 5 min, 30 min, 2 h,
5 h, 10 h and 10 h again, each delay moved by up to +/-10 % (jitter, so receivers coming back
from an outage are not hit by every sender at the same second): 8 attempts over about 27.6 h.
After the last the delivery is ``failed`` (``webhooks redeliver`` queues it again). An endpoint
whose deliveries have failed without a single success for ``DISABLE_AFTER`` is disabled; one
that answers ``410 Gone`` is disabled at once. A ``Retry-After`` (429, 503) pushes the next
attempt later, never sooner.
"""

from __future__ import annotations

import random
from datetime import timedelta

DELAYS: tuple[timedelta, ...] = (
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=10),
)
JITTER = 0.10
ATTEMPTS = len(DELAYS) + 1
DISABLE_AFTER = timedelta(days=5)


def next_delay(
    attempts: int, rng: random.Random, retry_after: float | None = None
) -> timedelta | None:
    """The wait before attempt ``attempts + 1`` after ``attempts`` failed ones; None when the
    schedule is exhausted."""
    if attempts < 1 or attempts > len(DELAYS):
        return None
    base = DELAYS[attempts - 1]
    delay = base * (1 + rng.uniform(-JITTER, JITTER))
    if retry_after is not None:
        delay = max(delay, timedelta(seconds=retry_after))
    return delay


def describe() -> str:
    """The schedule for people: ``0s, 5s, 5m, 30m, 2h, 5h, 10h, 10h``."""

    def fmt(d: timedelta) -> str:
        s = int(d.total_seconds())
        for unit, size in (("h", 3600), ("m", 60)):
            if s >= size and s % size == 0:
                return f"{s // size}{unit}"
        return f"{s}s"

    return ", ".join(["0s", *(fmt(d) for d in DELAYS)])
