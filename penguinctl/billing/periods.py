"""Billing periods: calendar months in UTC (``YYYY-MM``), half-open ``[start, end)``.

Tenants have no time zone in their spec and the send ledger stores UTC, so every tenant's month
runs from 00:00 UTC on the 1st to 00:00 UTC on the 1st of the next month. Proration counts
whole UTC days.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from penguinctl.errors import UsageError

_PERIOD = re.compile(r"([0-9]{4})-(0[1-9]|1[0-2])")


@dataclass(frozen=True)
class Period:
    year: int
    month: int

    @classmethod
    def parse(cls, text: str) -> Period:
        m = _PERIOD.fullmatch(text.strip())
        if not m:
            raise UsageError(f"period {text!r} is not YYYY-MM", hint="e.g. --period 2026-07")
        return cls(int(m.group(1)), int(m.group(2)))

    @classmethod
    def containing(cls, day: date) -> Period:
        return cls(day.year, day.month)

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    @property
    def first_day(self) -> date:
        return date(self.year, self.month, 1)

    @property
    def next(self) -> Period:
        return Period(self.year + self.month // 12, self.month % 12 + 1)

    @property
    def start(self) -> datetime:
        return datetime(self.year, self.month, 1, tzinfo=UTC)

    @property
    def end(self) -> datetime:
        return self.next.start

    @property
    def days(self) -> int:
        return (self.next.first_day - self.first_day).days

    def day_starts(self) -> list[datetime]:
        return [self.start + timedelta(days=i) for i in range(self.days)]

    def ended(self, today: date) -> bool:
        return today >= self.next.first_day


def as_utc(value: datetime) -> datetime:
    """Stored timestamps come back naive from SQLite: they were written in UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def prorate(amount_cents: int, days: int, period_days: int) -> int:
    """``amount * days / period_days`` rounded half up to a whole cent (integers only)."""
    return (2 * amount_cents * days + period_days) // (2 * period_days)
