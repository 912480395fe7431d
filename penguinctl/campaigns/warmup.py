"""Warmup ramps: a new mailbox's daily cap grows from ``start`` to ``target`` over ``days``.

Presets come from the facts file (campaigns.md section 3, "plan presets"): conservative 8 weeks
5 -> 300/day, standard 6 weeks 10 -> 500/day, aggressive 4 weeks 20 -> 1,000/day. The volume
formula is the documented linear one, ``start + (target - start) / days * day`` (day 0 is the
day the ramp started), capped at ``target``; once ``days`` have passed the ramp imposes no cap
(the mailbox's own ``daily_limit`` and the campaign's ``per_mailbox_daily`` still apply).
A custom ramp (``preset: custom``) is a list of phases ``{days, start, end}``, each ramping
linearly from ``start`` to ``end`` over its days; after the last phase the ramp is complete.

The ramp *pauses* with its mailbox: while a mailbox is paused for bounces no day of the ramp
passes (``MailboxState.resume`` moves the ramp's start forward by the paused time), so sending
resumes at the volume it had reached, not at a higher one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Ramp:
    start: int
    target: int
    days: int
    schedule: tuple[int, ...] = field(default=())  # explicit caps per day (custom)

    def cap(self, day: int) -> int | None:
        """The cap on ``day`` (0 = the ramp's first day), or None once the ramp is complete."""
        day = max(0, day)
        if self.schedule:
            return self.schedule[day] if day < len(self.schedule) else None
        if day >= self.days:
            return None
        return min(self.target, int(self.start + (self.target - self.start) / self.days * day))


PRESETS: dict[str, Ramp] = {
    "conservative": Ramp(5, 300, 56),
    "standard": Ramp(10, 500, 42),
    "aggressive": Ramp(20, 1000, 28),
}


def _get(obj: Any, key: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj.get(key)
    return getattr(obj, key, None)


def ramp_from_spec(warmup: Any) -> Ramp | None:
    """The ramp of a campaign's ``warmup`` block (model or dict): a preset name, or custom."""
    if warmup is None or warmup is False:
        return None
    if isinstance(warmup, str):
        return PRESETS[warmup]
    preset = _get(warmup, "preset")
    if preset and preset != "custom":
        return PRESETS[str(preset)]
    schedule: Sequence[Any] | None = _get(warmup, "schedule")
    if schedule:
        if all(isinstance(x, int) for x in schedule):
            return Ramp(int(schedule[0]), int(schedule[-1]), len(schedule), tuple(schedule))
        caps: list[int] = []
        for phase in schedule:
            days, start, end = int(_get(phase, "days")), _get(phase, "start"), _get(phase, "end")
            step = (end - start) / max(1, days - 1) if days > 1 else 0
            caps.extend(round(start + step * d) for d in range(days))
        return Ramp(caps[0], caps[-1], len(caps), tuple(caps))
    start, target, days = _get(warmup, "start"), _get(warmup, "target"), _get(warmup, "days")
    if start is not None and target is not None and days:
        return Ramp(int(start), int(target), int(days))
    return None


def ramp_day(started: datetime | None, now: datetime) -> int:
    if started is None:
        return 0
    return max(0, (now - started).days)


def ramp_cap(ramp: Ramp | None, started: datetime | None, now: datetime) -> int | None:
    return None if ramp is None else ramp.cap(ramp_day(started, now))
