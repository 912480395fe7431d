"""Sending windows (days x hours) in the recipient's time zone or a fixed one, and the clock.

A window is a set of weekdays and a daily span of wall-clock time, ``09:00-17:00`` (end
exclusive; ``24:00`` means midnight). Everything is computed with ``zoneinfo`` from aware UTC
instants:

- ``next_allowed(instant, zone)`` is the first instant >= ``instant`` inside the window.
- ``contains`` is defined through it (``next_allowed(t) == t``), so the two never disagree.
- Spring forward: a window bound that falls in the gap (02:30 on the day clocks jump from 02:00
  to 03:00) is taken with the offset before the jump, i.e. it moves one hour later (03:30).
- Fall back: a wall time that occurs twice is taken at its first occurrence (``fold=0``); the
  repeated hour does not reopen a window that already closed.
- ``after_delay`` adds a step's delay: whole days keep the local wall-clock time across a DST
  change (sent Monday 10:00, delay 3d -> Thursday 10:00 local), shorter delays are absolute.

Time comes from a ``Clock`` (``penguinctl.clock``: the product's one clock, or a settable
``ManualClock`` in tests), never from ``datetime.now`` inside the scheduling code.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from penguinctl import clock

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ALL_DAYS = frozenset(range(7))


# The product's one clock (re-exported: the scheduling code and its tests take a ``Clock``).
SystemClock = clock.SystemClock
ManualClock = clock.ManualClock
Clock = clock.Clock


def parse_hours(text: str) -> tuple[time, time | None]:
    """``"09:00-17:00"`` -> (09:00, 17:00); an end of ``24:00`` is returned as ``None``."""
    try:
        start_s, end_s = (p.strip() for p in text.split("-", 1))
        start = time.fromisoformat(start_s)
        end = None if end_s == "24:00" else time.fromisoformat(end_s)
    except ValueError:
        raise ValueError(f"hours {text!r}: expected HH:MM-HH:MM (e.g. 09:00-17:00)") from None
    if end is not None and end <= start:
        raise ValueError(f"hours {text!r}: the end must be after the start (same day)")
    return start, end


def parse_days(days: Iterable[str | int] | None) -> frozenset[int]:
    if not days:
        return ALL_DAYS
    out: set[int] = set()
    for d in days:
        if isinstance(d, int):
            out.add(d % 7)
            continue
        key = str(d).strip().lower()[:3]
        if key not in DAY_NAMES:
            raise ValueError(f"day {d!r}: use mon, tue, wed, thu, fri, sat or sun")
        out.add(DAY_NAMES.index(key))
    return frozenset(out)


def zone(name: str | None, fallback: str | None = None) -> ZoneInfo:
    """The zone called ``name``; an empty or unknown name gives ``fallback`` (or UTC)."""
    for candidate in (name, fallback):
        if candidate:
            try:
                return ZoneInfo(candidate)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")


def _local_to_utc(day: date, at: time | None, tz: ZoneInfo) -> datetime:
    if at is None:  # 24:00 = next midnight
        return datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz).astimezone(UTC)
    return datetime.combine(day, at, tzinfo=tz).astimezone(UTC)  # fold=0 (see module doc)


@dataclass(frozen=True)
class Window:
    days: frozenset[int] = ALL_DAYS
    start: time = time(0)
    end: time | None = None  # None = 24:00

    @classmethod
    def parse(cls, days: Iterable[str | int] | None = None, hours: str | None = None) -> Window:
        start, end = parse_hours(hours) if hours else (time(0), None)
        return cls(parse_days(days), start, end)

    @property
    def always(self) -> bool:
        return self.days == ALL_DAYS and self.start == time(0) and self.end is None

    def next_allowed(self, instant: datetime, tz: ZoneInfo) -> datetime:
        """The first instant at or after ``instant`` (aware) inside the window, in UTC."""
        instant = instant.astimezone(UTC)
        if self.always:
            return instant
        if not self.days:
            raise ValueError("a sending window needs at least one day")
        local_day = instant.astimezone(tz).date()
        for offset in range(-1, 9):
            day = local_day + timedelta(days=offset)
            if day.weekday() not in self.days:
                continue
            opens = _local_to_utc(day, self.start, tz)
            closes = _local_to_utc(day, self.end, tz)
            if closes <= opens:  # cannot happen with end > start; kept as a guard
                continue
            if instant < closes:
                return max(instant, opens)
        raise AssertionError("unreachable: a window with a day opens within 8 days")

    def contains(self, instant: datetime, tz: ZoneInfo) -> bool:
        return self.next_allowed(instant, tz) == instant.astimezone(UTC)


@dataclass(frozen=True)
class Schedule:
    """A campaign's sending schedule: the window and how each lead's zone is chosen."""

    window: Window
    timezone: str = "UTC"  # "lead" or an IANA name
    fallback_timezone: str | None = None

    @classmethod
    def from_spec(cls, schedule: Any) -> Schedule:
        """From the campaign spec's ``schedule`` block (a pydantic model or a dict), or None."""
        if schedule is None:
            return cls(Window())
        get = (
            schedule.get
            if isinstance(schedule, dict)
            else lambda k, d=None: getattr(schedule, k, d)
        )
        days = get("days", None)
        hours = get("hours", None)
        return cls(
            Window.parse(days, str(hours) if hours else None),
            str(get("timezone", None) or "UTC"),
            get("fallback_timezone", None),
        )

    def zone_for(self, lead_timezone: str | None) -> ZoneInfo:
        if self.timezone == "lead":
            return zone(lead_timezone, self.fallback_timezone)
        return zone(self.timezone, self.fallback_timezone)

    def next_allowed(self, instant: datetime, lead_timezone: str | None) -> datetime:
        return self.window.next_allowed(instant, self.zone_for(lead_timezone))

    def contains(self, instant: datetime, lead_timezone: str | None) -> bool:
        return self.window.contains(instant, self.zone_for(lead_timezone))

    def after_delay(self, sent: datetime, delay: timedelta, lead_timezone: str | None) -> datetime:
        """When the next step is due: ``sent + delay`` moved into the window (see module doc)."""
        tz = self.zone_for(lead_timezone)
        if delay and delay % timedelta(days=1) == timedelta(0):
            local = sent.astimezone(tz).replace(tzinfo=None) + delay
            target = local.replace(tzinfo=tz, fold=0).astimezone(UTC)
        else:
            target = sent.astimezone(UTC) + delay
        return self.window.next_allowed(target, tz)
