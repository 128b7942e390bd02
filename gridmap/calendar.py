"""The working calendar: which days are worked (weekends, public holidays and make-up working days, 调休), the
working hours of a day, and time-limit arithmetic on them.

Time limits come per category in working hours, working days or calendar days (docs/DOMAIN.md §3). gridmap counts them
all as *working time* except calendar days: a limit of N working days is N × the working hours of a day, so a case
accepted on Monday at 10:00 with a limit of one working day is due on Tuesday at 10:00, and one accepted on a
Friday evening starts its clock on the next working morning. Calendar days are plain elapsed days.

Clock times are China Standard Time (UTC+8, no daylight saving); instants in and out are timezone-aware.

The seed calendar holds the State Council's notices for 2025 (国办发明电〔2024〕12号) and 2026 (4 November 2025).
Years without a notice fall back to Monday–Friday; `WorkCalendar.covers(day)` says whether a day is backed by a
notice, and the API reports the years covered so that an administrator adds next year's notice when it appears.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

CST = dt.timezone(dt.timedelta(hours=8), "CST")


def china_date(at: dt.datetime | None = None) -> dt.date:
    """The date in China (UTC+8) at `at`, now by default: the day assignments and boundaries take effect on, from
    00:00 local time (a naive `at` is taken as UTC)."""
    at = at or dt.datetime.now(dt.UTC)
    if at.tzinfo is None:
        at = at.replace(tzinfo=dt.UTC)
    return at.astimezone(CST).date()


# (first day, last day, name) of holidays and the make-up working days (调休上班) of each notice
SEED_HOLIDAYS: list[tuple[str, str, str]] = [
    ("2025-01-01", "2025-01-01", "元旦"),
    ("2025-01-28", "2025-02-04", "春节"),
    ("2025-04-04", "2025-04-06", "清明节"),
    ("2025-05-01", "2025-05-05", "劳动节"),
    ("2025-05-31", "2025-06-02", "端午节"),
    ("2025-10-01", "2025-10-08", "国庆节、中秋节"),
    ("2026-01-01", "2026-01-03", "元旦"),
    ("2026-02-15", "2026-02-23", "春节"),
    ("2026-04-04", "2026-04-06", "清明节"),
    ("2026-05-01", "2026-05-05", "劳动节"),
    ("2026-06-19", "2026-06-21", "端午节"),
    ("2026-09-25", "2026-09-27", "中秋节"),
    ("2026-10-01", "2026-10-07", "国庆节"),
]
SEED_WORKDAYS: list[tuple[str, str]] = [
    ("2025-01-26", "春节调休"),
    ("2025-02-08", "春节调休"),
    ("2025-04-27", "劳动节调休"),
    ("2025-09-28", "国庆节调休"),
    ("2025-10-11", "国庆节调休"),
    ("2026-01-04", "元旦调休"),
    ("2026-02-14", "春节调休"),
    ("2026-02-28", "春节调休"),
    ("2026-05-09", "劳动节调休"),
    ("2026-09-20", "国庆节调休"),
    ("2026-10-10", "国庆节调休"),
]
SEED_YEARS = (2025, 2026)
# Office hours of the sub-district and community service centres: 09:00–12:00 and 13:30–17:30 (7 hours)
DEFAULT_PERIODS: tuple[tuple[dt.time, dt.time], ...] = (
    (dt.time(9, 0), dt.time(12, 0)),
    (dt.time(13, 30), dt.time(17, 30)),
)
TIME_UNITS = ("work_hours", "work_days", "calendar_days")
MAX_SPAN_DAYS = 3 * 366  # no time limit runs longer: guards the day-by-day loops against bad input


def seed_days() -> list[tuple[dt.date, str, str]]:
    """The seed calendar as (day, kind, name) rows, kind `holiday` or `workday`."""
    rows = []
    for first, last, name in SEED_HOLIDAYS:
        day, end = dt.date.fromisoformat(first), dt.date.fromisoformat(last)
        while day <= end:
            rows.append((day, "holiday", name))
            day += dt.timedelta(days=1)
    rows += [(dt.date.fromisoformat(d), "workday", name) for d, name in SEED_WORKDAYS]
    return sorted(rows)


@dataclass
class WorkCalendar:
    """Working days and hours. `holidays` are days off that would be worked; `workdays` are weekend days worked."""

    holidays: set[dt.date] = field(default_factory=set)
    workdays: set[dt.date] = field(default_factory=set)
    periods: tuple[tuple[dt.time, dt.time], ...] = DEFAULT_PERIODS
    years: tuple[int, ...] = ()

    @classmethod
    def seeded(cls) -> WorkCalendar:
        rows = seed_days()
        return cls(
            {d for d, k, _ in rows if k == "holiday"}, {d for d, k, _ in rows if k == "workday"}, years=SEED_YEARS
        )

    @classmethod
    def from_session(cls, session: Session) -> WorkCalendar:
        """The calendar stored in the database (table `calendar_day`, seeded by the migration, edited by admins)."""
        from gridmap.store.tables import CalendarDay

        rows = session.query(CalendarDay.day, CalendarDay.kind).all()
        holidays = {d for d, k in rows if k == "holiday"}
        return cls(holidays, {d for d, k in rows if k == "workday"}, years=tuple(sorted({d.year for d in holidays})))

    @property
    def hours_per_day(self) -> float:
        return sum(_seconds(a, b) for a, b in self.periods) / 3600

    def covers(self, day: dt.date) -> bool:
        """Whether `day` falls in a year whose holiday notice the calendar holds."""
        return day.year in self.years

    def is_working_day(self, day: dt.date) -> bool:
        if day in self.workdays:
            return True
        if day in self.holidays:
            return False
        return day.weekday() < 5

    def _day_periods(self, day: dt.date) -> list[tuple[dt.datetime, dt.datetime]]:
        if not self.is_working_day(day):
            return []
        return [(dt.datetime.combine(day, a, CST), dt.datetime.combine(day, b, CST)) for a, b in self.periods]

    def add(self, start: dt.datetime, amount: float, unit: str) -> dt.datetime:
        """The instant `amount` `unit`s after `start` (aware), counting working time for working hours and days."""
        _check_unit(unit)
        if amount < 0:
            raise ValueError(f"time limit: {amount} is negative")
        if unit == "calendar_days":
            return start + dt.timedelta(days=amount)
        seconds = amount * 3600 * (self.hours_per_day if unit == "work_days" else 1)
        return self.add_working_seconds(start, seconds)

    def add_working_seconds(self, start: dt.datetime, seconds: float) -> dt.datetime:
        local = _aware(start).astimezone(CST)
        remaining = seconds
        day = local.date()
        for _ in range(MAX_SPAN_DAYS):
            for a, b in self._day_periods(day):
                begin = max(a, local)
                if begin >= b:
                    continue
                available = (b - begin).total_seconds()
                if remaining <= available:
                    return (begin + dt.timedelta(seconds=remaining)).astimezone(dt.UTC)
                remaining -= available
            day += dt.timedelta(days=1)
        raise ValueError(f"time limit: {seconds / 3600:.0f} working hours run past {MAX_SPAN_DAYS} days")

    def working_seconds(self, start: dt.datetime, end: dt.datetime) -> float:
        """Working time between two instants (0 when `end` is not after `start`)."""
        a, b = _aware(start).astimezone(CST), _aware(end).astimezone(CST)
        if b <= a:
            return 0.0
        if (b.date() - a.date()).days > MAX_SPAN_DAYS * 4:
            raise ValueError("period: longer than twelve years")
        total = 0.0
        day, last = a.date(), b.date()
        # a day strictly between the first and the last holds its periods whole: their lengths are added as the
        # clipping would add them (same order, same floats) without making its instants (a deadline colour of a
        # case running for months walked every day's datetimes: 0.36 ms a case, a quarter of a busy map tile)
        lengths = [_seconds(p, q) for p, q in self.periods]
        one_day = dt.timedelta(days=1)
        while day <= last:
            if a.date() < day < last:
                if self.is_working_day(day):
                    for length in lengths:
                        if length > 0:
                            total += length
            else:
                for p, q in self._day_periods(day):
                    lo, hi = max(p, a), min(q, b)
                    if hi > lo:
                        total += (hi - lo).total_seconds()
            day += one_day
        return total

    def elapsed(self, start: dt.datetime, end: dt.datetime, unit: str) -> float:
        """Time between two instants in the unit of a limit (working hours, working days or calendar days)."""
        _check_unit(unit)
        if unit == "calendar_days":
            return max((_aware(end) - _aware(start)).total_seconds(), 0.0) / 86400
        hours = self.working_seconds(start, end) / 3600
        return hours / self.hours_per_day if unit == "work_days" else hours


def clock(
    calendar: WorkCalendar, start: dt.datetime, due: dt.datetime, unit: str, now: dt.datetime
) -> tuple[str, float]:
    """The warning colour of a running clock and the share of the time from `start` to `due` used, counted in
    `unit` (so an extension or a suspension that moved `due` is taken into account): green under 80 %, yellow up to
    the deadline, red past it (docs/DOMAIN.md §3)."""
    total = calendar.elapsed(start, due, unit)
    used = calendar.elapsed(start, now, unit) / total if total > 0 else 1.0
    return ("red" if _aware(now) > _aware(due) else "green" if used < 0.8 else "yellow"), used


def _check_unit(unit: str) -> None:
    if unit not in TIME_UNITS:
        raise ValueError(f"time unit: {unit!r}; accepted: {', '.join(TIME_UNITS)}")


def _aware(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value


def _seconds(a: dt.time, b: dt.time) -> float:
    return (dt.datetime.combine(dt.date.min, b) - dt.datetime.combine(dt.date.min, a)).total_seconds()
