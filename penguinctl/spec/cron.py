"""Five-field cron expressions (minute hour day-of-month month day-of-week), through croniter.

``check_cron`` validates a schedule written in a spec or in ``config/schedules.yaml``;
``next_after`` / ``latest_at`` are the scheduler's arithmetic. All instants are aware UTC
datetimes and schedules are read in UTC. croniter is imported on first use (it costs ~50 ms).
"""

from __future__ import annotations

from datetime import UTC, datetime

_MACROS = frozenset(
    {"@hourly", "@daily", "@midnight", "@weekly", "@monthly", "@yearly", "@annually"}
)
_FIELDS = ("minute", "hour", "day of month", "month", "day of week")
_RANGES = ("0-59", "0-23", "1-31", "1-12 or jan-dec", "0-7 or sun-sat")


def _normal(value: str) -> str:
    return " ".join(str(value).lower().split())


def check_cron(value: str) -> str:
    """Validate a five-field cron expression (or a macro such as ``@daily``); return it
    normalised (lower case, single spaces). Raises ``ValueError`` naming the bad field."""
    from croniter import croniter

    text = _normal(value)
    if text in _MACROS:
        return text
    fields = text.split(" ") if text else []
    if len(fields) != 5:
        raise ValueError(
            "a schedule is a cron expression with 5 fields: minute hour day-of-month month "
            "day-of-week (for example '30 2 * * *')"
        )
    for i, (what, allowed) in enumerate(zip(_FIELDS, _RANGES, strict=True)):
        alone = ["*"] * 5
        alone[i] = fields[i]
        if not croniter.is_valid(" ".join(alone)):
            raise ValueError(
                f"the {what} field of the schedule is invalid: use numbers {allowed}, "
                "'*', ranges (a-b), lists (a,b) and steps (*/n)"
            )
    if not croniter.is_valid(text):
        raise ValueError(f"{text!r} is not a valid cron expression")
    try:
        next_after(text, datetime(2000, 1, 1, tzinfo=UTC))
    except ValueError:
        raise ValueError(f"the schedule {text!r} never fires (e.g. 31 February)") from None
    return text


def next_after(expr: str, instant: datetime) -> datetime:
    """The first tick of ``expr`` strictly after ``instant``."""
    from croniter import CroniterBadDateError, croniter

    try:
        return croniter(expr, instant.astimezone(UTC)).get_next(datetime).astimezone(UTC)
    except CroniterBadDateError:
        raise ValueError(f"the schedule {expr!r} has no next tick") from None


def latest_at(expr: str, instant: datetime) -> datetime:
    """The last tick of ``expr`` at or before ``instant``."""
    from croniter import CroniterBadDateError, croniter

    at = instant.astimezone(UTC)
    try:
        if croniter.match(expr, at) and at.second == 0 and at.microsecond == 0:
            return at
        return croniter(expr, at).get_prev(datetime).astimezone(UTC)
    except CroniterBadDateError:
        raise ValueError(f"the schedule {expr!r} has no earlier tick") from None


def longest_gap(expr: str, start: datetime, ticks: int = 60) -> float:
    """The longest interval, in seconds, between consecutive ticks over the next ``ticks``
    ticks from ``start`` (a weekday-only schedule's weekend gap, for instance)."""
    from croniter import croniter

    it = croniter(expr, start.astimezone(UTC))
    prev = it.get_next(datetime)
    gap = 0.0
    for _ in range(ticks):
        nxt = it.get_next(datetime)
        gap = max(gap, (nxt - prev).total_seconds())
        prev = nxt
    return gap
