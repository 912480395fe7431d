"""The product's one clock: every read of the date or time in penguinctl goes through here.

Monotonic timers (``time.monotonic``, ``time.perf_counter``) measure durations and timeouts and
stay as they are; everything that asks "what time is it" calls ``now()`` (an aware UTC
``datetime``) or ``today()``. ``tests/test_one_clock.py`` walks the package and fails on any
other ``datetime.now``/``date.today``/``time.time`` call.

Which clock is current:

- ``install(clock)`` sets it for the process (the CLI does so per invocation from its
  ``AppContext``; ``serve`` once at start). Code deep inside (SQLModel column defaults, audit
  rows) reads the same clock through ``now()`` without being handed it.
- Until something is installed, ``current()`` follows the environment (re-checked on every
  call, cheaply), so library use and child processes honour the same variables:

  ============================  ================================================================
  ``PENGUINCTL_CLOCK_FILE``     the instant is read from this file (ISO 8601, re-read when the
                                file changes): a test or a drill drives real ``serve`` processes
                                forward in time by writing to it.
  ``PENGUINCTL_TODAY``          ``YYYY-MM-DD``: the wall clock shifted by whole days so that today
                                is that date (time of day and its passing are real).
  ``PENGUINCTL_TIME_OFFSET``    seconds added to the wall clock (CI re-runs the date-sensitive
                                tests under a leap day and a year end this way).
  ============================  ================================================================

  Precedence is that order; none set means the system clock.

Nothing here is built at import time.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Protocol

ENV_FILE = "PENGUINCTL_CLOCK_FILE"
ENV_TODAY = "PENGUINCTL_TODAY"
ENV_OFFSET = "PENGUINCTL_TIME_OFFSET"


class Clock(Protocol):
    """Anything with ``now()`` returning the current instant as an aware UTC datetime."""

    def now(self) -> datetime: ...


class SystemClock:
    """The machine's wall clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def __repr__(self) -> str:
        return "SystemClock()"


class OffsetClock:
    """The wall clock plus a fixed offset: time passes at real speed, from another instant."""

    def __init__(self, offset: timedelta) -> None:
        self.offset = offset

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def __repr__(self) -> str:
        return f"OffsetClock({self.offset!r})"


class ManualClock:
    """A clock the caller sets and moves (tests, simulations). Thread-safe."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("ManualClock needs an aware datetime")
        self._now = start.astimezone(UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def set(self, instant: datetime) -> None:
        if instant.tzinfo is None:
            raise ValueError("ManualClock needs an aware datetime")
        with self._lock:
            self._now = instant.astimezone(UTC)

    def advance(self, delta: timedelta) -> datetime:
        with self._lock:
            self._now += delta
            return self._now

    def __repr__(self) -> str:
        return f"ManualClock({self._now.isoformat()})"


class FileClock:
    """The instant written in a file (ISO 8601), for driving separate processes through time.

    The file is re-read only when its modification time or size changes, so ``now()`` costs
    one ``stat`` on the hot path. A missing or unreadable file is an error, not the wall clock:
    a process told to follow a clock file must never silently fall back to real time.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._seen: tuple[int, int] | None = None
        self._value: datetime | None = None
        self._lock = threading.Lock()

    def now(self) -> datetime:
        st = self.path.stat()
        key = (st.st_mtime_ns, st.st_size)
        with self._lock:
            if key != self._seen or self._value is None:
                self._value = parse_instant(self.path.read_text().strip(), where=str(self.path))
                self._seen = key
            return self._value

    @staticmethod
    def write(path: str | os.PathLike[str], instant: datetime) -> None:
        """Set the clock file atomically (write a temporary file, then rename)."""
        target = Path(path)
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text(instant.astimezone(UTC).isoformat() + "\n")
        os.replace(tmp, target)

    def __repr__(self) -> str:
        return f"FileClock({str(self.path)!r})"


def parse_instant(text: str, *, where: str = "clock") -> datetime:
    """An ISO 8601 instant; a naive one is taken as UTC."""
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{where}: {text[:60]!r} is not an ISO 8601 instant") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def from_env(env: Mapping[str, str] | None = None) -> Clock:
    """The clock the environment asks for (see the module docstring); raises ValueError on a
    malformed value."""
    env = os.environ if env is None else env
    if env.get(ENV_FILE):
        return FileClock(env[ENV_FILE])
    if env.get(ENV_TODAY):
        try:
            forced = date.fromisoformat(env[ENV_TODAY].strip())
        except ValueError:
            raise ValueError(
                f"{ENV_TODAY}={env[ENV_TODAY][:40]!r} is not a YYYY-MM-DD date"
            ) from None
        return OffsetClock(timedelta(days=(forced - datetime.now(UTC).date()).days))
    if env.get(ENV_OFFSET):
        try:
            seconds = float(env[ENV_OFFSET])
        except ValueError:
            raise ValueError(f"{ENV_OFFSET}={env[ENV_OFFSET][:40]!r} is not a number") from None
        return OffsetClock(timedelta(seconds=seconds))
    return SystemClock()


_installed: Clock | None = None
_from_env: tuple[tuple[str | None, ...], Clock] | None = None


def install(clock: Clock | None) -> Clock | None:
    """Make ``clock`` the process's clock (``None``: back to the environment's); returns the
    previous one so a caller can restore it."""
    global _installed
    previous, _installed = _installed, clock
    return previous


def current() -> Clock:
    """The installed clock, else the one the environment names (rebuilt when it changes)."""
    global _from_env
    if _installed is not None:
        return _installed
    key = (os.environ.get(ENV_FILE), os.environ.get(ENV_TODAY), os.environ.get(ENV_OFFSET))
    cached = _from_env
    if cached is None or cached[0] != key:
        cached = _from_env = (key, from_env())
    return cached[1]


def now() -> datetime:
    """The current instant, timezone-aware UTC."""
    return current().now()


def today() -> date:
    """Today's date in UTC."""
    return current().now().date()


def timestamp() -> float:
    """The current instant as POSIX seconds (for protocols that sign a Unix time)."""
    return current().now().timestamp()
