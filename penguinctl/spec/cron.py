"""Five-field cron expressions (minute hour day-of-month month day-of-week)."""

from __future__ import annotations

import re

_MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
_DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
_FIELDS: tuple[tuple[str, int, int, list[str]], ...] = (
    ("minute", 0, 59, []),
    ("hour", 0, 23, []),
    ("day of month", 1, 31, []),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 7, _DAYS),
)
_ITEM = re.compile(r"(\*|[a-z0-9]+(?:-[a-z0-9]+)?)(?:/([0-9]+))?")
_MACROS = frozenset(
    {"@hourly", "@daily", "@midnight", "@weekly", "@monthly", "@yearly", "@annually"}
)


def _value(text: str, low: int, high: int, names: list[str]) -> int | None:
    if text.isdigit():
        number = int(text)
        return number if low <= number <= high else None
    if text in names:
        return names.index(text) + (1 if low == 1 else 0)
    return None


def check_cron(value: str) -> str:
    """Validate a five-field cron expression (or a macro such as ``@daily``); return it."""
    text = " ".join(value.lower().split())
    if text in _MACROS:
        return text
    fields = text.split(" ")
    if len(fields) != 5:
        raise ValueError(
            "a schedule is a cron expression with 5 fields: minute hour day-of-month month "
            "day-of-week (for example '30 2 * * *')"
        )
    for part, (what, low, high, names) in zip(fields, _FIELDS, strict=True):
        for item in part.split(","):
            match = _ITEM.fullmatch(item)
            ok = match is not None
            if match and match.group(1) != "*":
                bounds = match.group(1).split("-")
                numbers = [_value(b, low, high, names) for b in bounds]
                ok = None not in numbers and numbers == sorted(numbers)  # type: ignore[type-var]
            if match and match.group(2) is not None and int(match.group(2)) < 1:
                ok = False
            if not ok:
                raise ValueError(
                    f"the {what} field of the schedule is invalid: use numbers {low}-{high}, "
                    "'*', ranges (a-b), lists (a,b) and steps (*/n)"
                )
    return text
