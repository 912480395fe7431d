"""Sending windows, time zones and DST (no database, no clock but the one passed in)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from penguinctl.campaigns.window import ManualClock, Schedule, Window, parse_hours, zone

pytestmark = pytest.mark.clock  # date-sensitive: scripts/test re-runs it under shifted clocks

NY = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")
WEEKDAYS = ["mon", "tue", "wed", "thu", "fri"]


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def local(tz: ZoneInfo, *args: int, fold: int = 0) -> datetime:
    return datetime(*args, tzinfo=tz, fold=fold)


def test_parse_hours_and_days() -> None:
    assert parse_hours("09:00-17:00") == (time(9), time(17))
    assert parse_hours("00:00-24:00") == (time(0), None)
    with pytest.raises(ValueError, match="end must be after"):
        parse_hours("17:00-09:00")
    with pytest.raises(ValueError, match="HH:MM"):
        parse_hours("nine to five")
    with pytest.raises(ValueError, match="day 'funday'"):
        Window.parse(["funday"], "09:00-17:00")
    assert Window.parse(["Monday", "fri"], None).days == frozenset({0, 4})


def test_inside_window_is_now() -> None:
    w = Window.parse(WEEKDAYS, "09:00-17:00")
    t = local(NY, 2026, 11, 23, 10, 15).astimezone(UTC)  # a Monday
    assert w.contains(t, NY)
    assert w.next_allowed(t, NY) == t


def test_before_after_and_weekend() -> None:
    w = Window.parse(WEEKDAYS, "09:00-17:00")
    early = local(NY, 2026, 11, 23, 7, 0)  # Monday 07:00
    assert w.next_allowed(early, NY) == local(NY, 2026, 11, 23, 9, 0)
    late = local(NY, 2026, 11, 23, 17, 0)  # end is exclusive
    assert not w.contains(late, NY)
    assert w.next_allowed(late, NY) == local(NY, 2026, 11, 24, 9, 0)
    friday_evening = local(NY, 2026, 11, 27, 18, 30)
    assert w.next_allowed(friday_evening, NY) == local(NY, 2026, 11, 30, 9, 0)  # Monday
    saturday = local(NY, 2026, 11, 28, 12, 0)
    assert w.next_allowed(saturday, NY) == local(NY, 2026, 11, 30, 9, 0)


def test_recipient_zone_differs_from_utc_day() -> None:
    # 03:00 UTC on Tuesday is still Monday 22:00 in New York: next window is Tuesday 09:00 NY
    w = Window.parse(WEEKDAYS, "09:00-17:00")
    assert w.next_allowed(utc(2026, 11, 24, 3, 0), NY) == local(NY, 2026, 11, 24, 9, 0)
    # Saturday 01:00 in Auckland is Friday 12:00 UTC: inside a UTC window, not an Auckland one
    akl = ZoneInfo("Pacific/Auckland")
    t = local(akl, 2026, 11, 28, 1, 0)
    assert Window.parse(WEEKDAYS, "09:00-17:00").contains(t, ZoneInfo("UTC"))
    assert w.next_allowed(t, akl) == local(akl, 2026, 11, 30, 9, 0)


def test_lead_zone_with_fallback() -> None:
    s = Schedule(Window.parse(WEEKDAYS, "09:00-17:00"), "lead", "America/New_York")
    assert s.zone_for("Europe/Berlin") == BERLIN
    assert s.zone_for(None) == NY
    assert s.zone_for("Not/AZone") == NY
    fixed = Schedule(Window.parse(WEEKDAYS, "09:00-17:00"), "Europe/Berlin", None)
    assert fixed.zone_for("America/New_York") == BERLIN
    assert zone(None) == ZoneInfo("UTC")
    t = local(BERLIN, 2026, 11, 23, 10, 0)  # 04:00 in New York
    assert s.contains(t, "Europe/Berlin")
    assert not s.contains(t, None)
    assert s.next_allowed(t, None) == local(NY, 2026, 11, 23, 9, 0)


def test_from_spec_dict_and_object() -> None:
    s = Schedule.from_spec(
        {"timezone": "lead", "fallback_timezone": "UTC", "days": ["sat"], "hours": "10:00-11:00"}
    )
    assert s.window.days == frozenset({5})
    assert Schedule.from_spec(None).window.always

    class Obj:
        timezone = "Europe/Berlin"
        fallback_timezone = None
        days = ["mon"]
        hours = "08:00-09:00"

    assert Schedule.from_spec(Obj()).zone_for("x") == BERLIN


def test_spring_forward_gap() -> None:
    # New York, Sunday 2026-03-08: 02:00 EST jumps to 03:00 EDT.
    w = Window.parse(None, "02:30-05:00")
    before = local(NY, 2026, 3, 8, 1, 0)
    opens = w.next_allowed(before, NY)
    # 02:30 does not exist that day: the window opens at 03:30 EDT (one hour later), 07:30 UTC
    assert opens == utc(2026, 3, 8, 7, 30)
    assert opens.astimezone(NY).hour == 3 and opens.astimezone(NY).minute == 30
    assert w.contains(opens, NY)
    assert not w.contains(opens - timedelta(minutes=1), NY)
    # a window entirely inside the gap moves one hour later as a whole (03:10-03:50 EDT)
    gap = Window.parse(None, "02:10-02:50")
    assert gap.next_allowed(before, NY) == utc(2026, 3, 8, 7, 10)
    assert gap.next_allowed(utc(2026, 3, 8, 7, 50), NY) == local(NY, 2026, 3, 9, 2, 10)
    # the day after: 02:30 exists again
    assert w.next_allowed(local(NY, 2026, 3, 9, 0, 0), NY) == local(NY, 2026, 3, 9, 2, 30)


def test_fall_back_fold_does_not_reopen() -> None:
    # New York, Sunday 2026-11-01: 02:00 EDT goes back to 01:00 EST; 01:00-02:00 happens twice.
    w = Window.parse(None, "01:00-01:30")
    first = local(NY, 2026, 11, 1, 1, 10, fold=0)  # EDT
    second = local(NY, 2026, 11, 1, 1, 10, fold=1)  # EST, one hour later
    assert second.astimezone(UTC) - first.astimezone(UTC) == timedelta(hours=1)
    assert w.contains(first, NY)
    assert not w.contains(second, NY)  # no second chance in the repeated hour
    assert w.next_allowed(second, NY) == local(NY, 2026, 11, 2, 1, 0)
    # a normal window keeps its wall-clock bounds across the change
    day = Window.parse(None, "09:00-17:00")
    assert day.next_allowed(utc(2026, 10, 31, 22, 0), NY) == utc(2026, 11, 1, 14, 0)  # 09 EST
    assert day.next_allowed(utc(2026, 10, 30, 22, 0), NY) == utc(2026, 10, 31, 13, 0)  # 09 EDT


def test_delay_keeps_wall_clock_across_dst() -> None:
    s = Schedule(Window.parse(WEEKDAYS, "09:00-17:00"), "America/New_York")
    sent = local(NY, 2026, 10, 29, 10, 0)  # Thursday 10:00 EDT
    due = s.after_delay(sent, timedelta(days=4), None)  # Monday, after the change to EST
    assert due.astimezone(NY).replace(tzinfo=None) == datetime(2026, 11, 2, 10, 0)
    assert due - sent.astimezone(UTC) == timedelta(days=4, hours=1)
    # a sub-day delay is absolute, then moved into the window
    late = local(NY, 2026, 11, 2, 16, 0)
    assert s.after_delay(late, timedelta(hours=2), None) == local(NY, 2026, 11, 3, 9, 0)
    # delay landing on a weekend moves to Monday
    fri = local(NY, 2026, 11, 27, 11, 0)
    assert s.after_delay(fri, timedelta(days=1), None) == local(NY, 2026, 11, 30, 9, 0)


def test_manual_clock() -> None:
    c = ManualClock(utc(2026, 1, 1))
    assert c.advance(timedelta(minutes=5)) == utc(2026, 1, 1, 0, 5)
    c.set(local(NY, 2026, 1, 1, 12, 0))
    assert c.now().tzinfo is UTC
    with pytest.raises(ValueError):
        ManualClock(datetime(2026, 1, 1))
