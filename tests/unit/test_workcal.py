"""Deadline arithmetic on the working calendar: hand-computed cases across lunch, nights, weekends, public holidays
and make-up working days (调休), and properties that tie `add` and `elapsed` together."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridmap.calendar import CST, WorkCalendar, clock, seed_days

CAL = WorkCalendar.seeded()


def cst(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=CST)


CASES = [
    # (accepted, limit, unit, due) — office hours 09:00–12:00 and 13:30–17:30 CST, 7 hours a day
    ("2026-11-23 10:00", 4, "work_hours", "2026-11-23 15:30", "Monday: two hours before lunch, two after"),
    ("2026-11-23 12:30", 1, "work_hours", "2026-11-23 14:30", "accepted at lunch: the clock starts at 13:30"),
    ("2026-11-23 07:00", 3, "work_hours", "2026-11-23 12:00", "accepted before office hours"),
    ("2026-11-27 16:00", 4, "work_hours", "2026-11-30 11:30", "Friday afternoon runs into Monday"),
    ("2026-11-28 10:00", 1, "work_hours", "2026-11-30 10:00", "accepted on a Saturday"),
    ("2026-11-23 10:00", 1, "work_days", "2026-11-24 10:00", "one working day is the same time next working day"),
    ("2026-11-23 10:00", 15, "work_days", "2026-12-14 10:00", "illegal structure: 15 working days, three weeks"),
    ("2026-02-13 16:30", 1, "work_days", "2026-02-14 16:30", "Saturday 14 February 2026 is a make-up working day"),
    ("2026-02-13 17:00", 2, "work_days", "2026-02-24 17:00", "then the Spring Festival, 15–23 February"),
    ("2026-09-30 09:00", 3, "work_days", "2026-10-09 17:30", "National Day 1–7 October; ends exactly at closing"),
    ("2026-09-19 12:00", 1, "work_hours", "2026-09-20 10:00", "Sunday 20 September 2026 is worked"),
    ("2026-10-09 17:00", 1, "work_hours", "2026-10-10 09:30", "and so is Saturday 10 October"),
    ("2025-12-31 17:00", 1, "work_hours", "2026-01-04 09:30", "New Year 1–3 January, Sunday 4 January worked"),
    ("2025-09-30 17:00", 4, "work_hours", "2025-10-09 14:00", "2025: National Day and Mid-Autumn, 1–8 October"),
    ("2026-02-14 10:00", 7, "calendar_days", "2026-02-21 10:00", "calendar days ignore holidays"),
    ("2026-11-23 10:00", 0, "work_hours", "2026-11-23 10:00", "a zero limit is due at once"),
]


@pytest.mark.parametrize("accepted,limit,unit,due,why", CASES, ids=[c[4] for c in CASES])
def test_due_times_by_hand(accepted, limit, unit, due, why):
    assert CAL.add(cst(accepted), limit, unit) == cst(due)


def test_instants_in_utc_are_read_in_china_standard_time():
    assert CAL.add(dt.datetime(2026, 11, 23, 1, 0, tzinfo=dt.UTC), 1, "work_hours") == cst("2026-11-23 10:00")
    assert CAL.add(dt.datetime(2026, 11, 23, 1, 0), 1, "work_hours") == cst("2026-11-23 10:00")  # naive = UTC


def test_working_days_and_make_up_days():
    assert not CAL.is_working_day(dt.date(2026, 2, 16)) and CAL.is_working_day(dt.date(2026, 2, 14))
    assert not CAL.is_working_day(dt.date(2026, 11, 28)) and CAL.is_working_day(dt.date(2026, 11, 27))
    assert CAL.covers(dt.date(2026, 5, 1)) and not CAL.covers(dt.date(2027, 5, 1))
    rows = seed_days()
    assert sum(1 for d, k, _ in rows if k == "holiday" and d.year == 2026) == 3 + 9 + 3 + 5 + 3 + 3 + 7
    assert all(d.weekday() >= 5 for d, k, _ in rows if k == "workday")  # make-up days are weekend days


def test_elapsed_working_time():
    assert CAL.elapsed(cst("2026-11-27 16:00"), cst("2026-11-30 11:30"), "work_hours") == pytest.approx(4)
    assert CAL.elapsed(cst("2026-02-13 09:00"), cst("2026-02-24 09:00"), "work_days") == pytest.approx(2)
    assert CAL.elapsed(cst("2026-11-23 12:00"), cst("2026-11-23 13:30"), "work_hours") == 0
    assert CAL.elapsed(cst("2026-11-24 10:00"), cst("2026-11-23 10:00"), "work_hours") == 0


@pytest.mark.parametrize(
    "now,colour",
    [
        ("2026-11-23 12:00", "green"),
        ("2026-11-23 14:30", "yellow"),
        ("2026-11-23 15:30", "yellow"),
        ("2026-11-23 15:31", "red"),
        ("2026-11-24 09:00", "red"),
    ],
)
def test_clock_colours(now, colour):
    """Accepted Monday 09:00 with 5 working hours: 80 % is reached at 14:30, the limit at 15:30."""
    start = cst("2026-11-23 09:00")
    assert clock(CAL, start, CAL.add(start, 5, "work_hours"), "work_hours", cst(now))[0] == colour


def test_bad_limits_are_refused():
    with pytest.raises(ValueError, match="time unit"):
        CAL.add(cst("2026-11-23 10:00"), 1, "fortnights")
    with pytest.raises(ValueError, match="negative"):
        CAL.add(cst("2026-11-23 10:00"), -1, "work_hours")
    with pytest.raises(ValueError, match="working hours run past"):
        CAL.add(cst("2026-11-23 10:00"), 10_000, "work_days")


instants = st.datetimes(min_value=dt.datetime(2025, 1, 1), max_value=dt.datetime(2026, 12, 31), timezones=st.just(CST))


@settings(max_examples=300, deadline=None)
@given(start=instants, hours=st.floats(min_value=0, max_value=200, allow_nan=False))
def test_add_then_elapsed_gives_the_limit_back(start, hours):
    due = CAL.add(start, hours, "work_hours")
    assert due >= start
    assert CAL.elapsed(start, due, "work_hours") == pytest.approx(hours, abs=1e-6)
    # and the due time falls inside office hours on a working day (or is the start itself)
    local = due.astimezone(CST)
    if hours > 0:
        assert CAL.is_working_day(local.date())
        assert any(a <= local.time() <= b for a, b in CAL.periods)


@settings(max_examples=200, deadline=None)
@given(a=instants, b=instants, c=instants)
def test_elapsed_is_additive(a, b, c):
    a, b, c = sorted([a, b, c])
    total = CAL.working_seconds(a, c)
    assert total == pytest.approx(CAL.working_seconds(a, b) + CAL.working_seconds(b, c), abs=1e-6)
