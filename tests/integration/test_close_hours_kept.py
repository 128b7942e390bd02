"""A district's hours to close of past months, kept (`case_month_hours`, migration 0026), on both databases.

`measures.keep_close_hours` works out the median and 90th percentile of each whole past month for every district;
a district's series reads them for those months and works out only the others (issue 15: a district's series on
PostGIS spent ~200 ms of ~250 sorting twelve months of closures). Shown here:

- the kept months are what the cases say (the percentiles worked out here in pandas), and a district's series with
  them is the series without them;
- the series reads them (a value put in the table by hand shows), and a month not kept is worked out from the
  cases;
- every kind of write of a closure takes its month's rows away (and nothing else's): reopened, its closure moved
  to another month, its report time or grid changed, deleted, a new closed case, many in one statement; a write
  that changes nothing the hours read (a title, a version, an open case) takes nothing away; the keeper then works
  out exactly the months taken away;
- on PostgreSQL a closure written while its month is being worked out is not lost (the advisory lock);
- a server's sweep round keeps what is missing.
"""

from __future__ import annotations

import datetime as dt
import importlib
import threading
import time

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from gridmap.cases import measures
from gridmap.store import bulkload
from gridmap.store import engine as storage
from gridmap.store.tables import Case, CaseEvent, CaseMonthHours

DISTRICT = "530111"
NOW = dt.datetime(2026, 11, 20, 6, 0, tzinfo=dt.UTC)  # the demo's today: its series ends in November, cut short
CST = dt.timezone(dt.timedelta(hours=8))
MIGRATION = importlib.import_module("gridmap.store.migrations.versions.0026_case_month_hours")
APP_SETTINGS = {"escalation_interval_s": 3600.0}


def _aware(at: dt.datetime) -> dt.datetime:
    return at if at.tzinfo else at.replace(tzinfo=dt.UTC)


def _month(at: dt.datetime) -> int:
    local = _aware(at).astimezone(CST)
    return local.year * 100 + local.month


@pytest.fixture()
def factory(engine):
    return storage.make_sessionmaker(engine)


def truth(factory) -> dict[int, tuple[float, float]]:
    """The district's median and 90th percentile hours to close by China-time month of closure, from its closed
    cases, worked out here (pandas' linear interpolation, as the measures have it)."""
    with factory() as s:
        rows = s.execute(
            sa.select(Case.reported_at, Case.closed_at).where(
                Case.state == "closed", Case.closed_at.is_not(None), Case.grid_code.startswith(DISTRICT)
            )
        ).all()
    frame = pd.DataFrame(
        {
            "month": [_month(c) for _, c in rows],
            "h": [(_aware(c) - _aware(r)).total_seconds() / 3600 for r, c in rows],
        }
    )
    return {int(m): tuple(g["h"].quantile([0.5, 0.9]).to_numpy()) for m, g in frame.groupby("month")}


def kept(factory) -> dict[int, tuple[float | None, float | None]]:
    with factory() as s:
        rows = s.execute(
            sa.select(CaseMonthHours.month, CaseMonthHours.p50, CaseMonthHours.p90).where(
                CaseMonthHours.area_code == DISTRICT
            )
        ).all()
    return {m: (a, b) for m, a, b in rows}


def _months_before(now: dt.datetime, n: int = measures.KEEP_HOURS_MONTHS) -> list[int]:
    local = now.astimezone(CST)
    year, month = local.year, local.month
    out = []
    for _ in range(n):
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
        out.append(year * 100 + month)
    return sorted(out)


def check(factory, now: dt.datetime | None = None) -> dict[int, tuple[float | None, float | None]]:
    """Every kept month of the district is what its cases say (both None for a month with no closure), and the
    36 months before `now` are all kept."""
    rows, right = kept(factory), truth(factory)
    for month, (p50, p90) in rows.items():
        if month in right:
            assert p50 is not None and p90 is not None, month
            # (SQLite's hours are of `julianday`, a day as a double: within a few milliseconds)
            np.testing.assert_allclose([p50, p90], right[month], rtol=1e-9, atol=1e-6, err_msg=str(month))
        else:
            assert (p50, p90) == (None, None), month
    assert set(_months_before(now or dt.datetime.now(dt.UTC))) <= set(rows)
    return rows


def test_the_kept_months_are_what_the_cases_say(factory):
    check(factory)  # as the demo's load left them (`gridmap demo`, the tests' template: the 36 months before today)
    assert measures.keep_close_hours(factory) == 0  # nothing left to do
    measures.keep_close_hours(factory, NOW)  # the 36 before the demo's today, whatever the day the tests run
    rows = check(factory, NOW)
    closed_months = [m for m in _months_before(NOW) if rows[m][0] is not None]
    assert len(closed_months) >= 3, rows


def _series(factory) -> list[dict]:
    with factory() as s:
        return measures.area_series(s, DISTRICT, months=12, now=NOW, beside=factory)


def _same(a: list[dict], b: list[dict]) -> None:
    assert [r["month"] for r in a] == [r["month"] for r in b]
    for x, y in zip(a, b):
        for key in x:
            if isinstance(x[key], float) and isinstance(y[key], float):
                assert x[key] == pytest.approx(y[key], rel=1e-9, abs=0.006), (x["month"], key)  # (hours: 2 places)
            else:
                assert x[key] == y[key], (x["month"], key)


def test_a_districts_series_reads_the_kept_months_and_is_the_series_without_them(factory):
    with_kept = _series(factory)
    months = [r["month"] for r in with_kept]
    closed = [r for r in with_kept[:-1] if r["close_hours_p50"] is not None]
    assert len(closed) >= 3
    marked = closed[0]["month"]
    key = int(marked.replace("-", ""))
    with factory.begin() as s:  # a value no case has: the series shows it, so it reads the kept month
        s.execute(sa.update(CaseMonthHours).where(CaseMonthHours.month == key).values(p50=12345.0))
    shown = {r["month"]: r for r in _series(factory)}
    assert shown[marked]["close_hours_p50"] == 12345.0
    assert shown[marked]["close_hours_p90"] == closed[0]["close_hours_p90"]
    with factory.begin() as s:  # none kept: every month from the cases, the same series
        s.execute(sa.delete(CaseMonthHours))
    _same(_series(factory), with_kept)
    # the last month of the series (November, cut at NOW) is never read from the table, even when kept
    assert months[-1] == "2026-11"
    assert measures.keep_close_hours(factory, NOW) == measures.KEEP_HOURS_MONTHS
    check(factory, NOW)
    _same(_series(factory), with_kept)


def _closed(s: Session, n: int) -> list[Case]:
    """Closed cases of the district from `n` different months of closure before NOW's month (July and September
    left out: the tests write closures into those)."""
    picked: dict[int, Case] = {}
    for case in s.scalars(
        sa.select(Case)
        .where(Case.state == "closed", Case.closed_at.is_not(None), Case.grid_code.startswith(DISTRICT))
        .order_by(Case.id)
    ):
        month = _month(case.closed_at)
        if month < _month(NOW) and month not in (202607, 202609) and month not in picked:
            picked[month] = case
    assert len(picked) >= n, sorted(picked)
    return [picked[m] for m in sorted(picked)[-n:]]


def _taken_away(factory, write) -> set[int]:
    """The months whose rows a committed write took away; then kept again (the 36 months before the demo's today,
    whatever the day the tests run), and right."""
    measures.keep_close_hours(factory, NOW)
    before = set(kept(factory))
    with factory.begin() as s:
        write(s)
    gone = before - set(kept(factory))
    assert measures.keep_close_hours(factory, NOW) == len(gone)
    check(factory, NOW)
    return gone


def test_every_write_of_a_closure_takes_its_months_rows_away_and_nothing_else(factory):
    with factory() as s:
        a, b, c, d, e = (x.id for x in _closed(s, 5))
        months = {x.id: _month(x.closed_at) for x in s.scalars(sa.select(Case).where(Case.id.in_([a, b, c, d, e])))}
        open_case = s.scalar(sa.select(Case.id).where(Case.state == "accepted").limit(1))
        grids = sorted(set(s.scalars(sa.select(Case.grid_code).where(Case.grid_code.startswith(DISTRICT)))))
    september = dt.datetime(2026, 9, 10, 2, tzinfo=dt.UTC)

    def reopen(s: Session) -> None:
        case = s.get(Case, a)
        case.state, case.closed_at = "handled", None

    assert _taken_away(factory, reopen) == {months[a]}

    def moved(s: Session) -> None:  # closed in September instead
        s.get(Case, b).closed_at = september

    assert _taken_away(factory, moved) == {months[b], 202609}

    def reported(s: Session) -> None:  # its report time corrected: other hours
        case = s.get(Case, c)
        case.reported_at = _aware(case.reported_at) - dt.timedelta(hours=5)

    assert _taken_away(factory, reported) == {months[c]}

    def regridded(s: Session) -> None:  # relocated to another grid of the district
        case = s.get(Case, d)
        case.grid_code = next(g for g in grids if g != case.grid_code)

    assert _taken_away(factory, regridded) == {months[d]}

    def untouched(s: Session) -> None:  # nothing the hours read: a title, a version; an open case's step
        case = s.get(Case, e)
        case.title, case.version = "标题改了", case.version + 1
        s.get(Case, open_case).state = "handled"

    assert _taken_away(factory, untouched) == set()

    def many(s: Session) -> None:  # several months' closures in one statement (a relocation)
        now_in = {s.get(Case, b).grid_code, s.get(Case, e).grid_code}
        elsewhere = next(g for g in grids if g not in now_in)
        s.execute(sa.update(Case).where(Case.id.in_([b, e])).values(grid_code=elsewhere))

    assert _taken_away(factory, many) == {202609, months[e]}

    def deleted(s: Session) -> None:
        s.execute(sa.delete(CaseEvent).where(CaseEvent.case_id == e))
        s.execute(sa.delete(Case).where(Case.id == e))

    assert _taken_away(factory, deleted) == {months[e]}

    def new(s: Session) -> None:  # a closed case of the past (an import of history)
        s.add(
            Case(
                number="S-HOURS-NEW",
                title="历史工单",
                source="api",
                state="closed",
                reported_at=dt.datetime(2026, 7, 1, 1, tzinfo=dt.UTC),
                due_at=dt.datetime(2026, 7, 4, 1, tzinfo=dt.UTC),
                closed_at=dt.datetime(2026, 7, 2, 1, tzinfo=dt.UTC),
                version=1,
                grid_code=grids[0],
                district_code=DISTRICT,  # as every case located in a grid has it
            )
        )

    assert _taken_away(factory, new) == {202607}


def test_the_bulk_loads_fill_is_the_migrations(engine):
    """What a bulk load into an empty case table runs instead of the insert trigger (gridmap.store.bulkload): every
    month's rows taken away."""
    assert bulkload.FILLS["case_file", bulkload.HOURS_TRIGGER] == MIGRATION.FILL == "DELETE FROM case_month_hours"
    assert measures.HOURS_LOCK_CLASS == MIGRATION.LOCK_CLASS


def test_a_closure_written_while_its_month_is_worked_out_is_not_lost(engine, factory):
    """The keeper waits for a writer of a closure of the month to commit before it reads the month, so that what
    it keeps holds that write: on PostgreSQL for the month's advisory lock (the writer's trigger holds it shared),
    on SQLite for the write lock (`BEGIN IMMEDIATE`). Without the lock it would read the month as it
    was, keep it, and the writer's trigger would have found no row to take away: stale for good."""
    with factory() as s:
        (case,) = _closed(s, 1)
        month = _month(case.closed_at)
    measures.keep_close_hours(factory, NOW)  # (the 36 months before the demo's today, whatever the day)
    with factory.begin() as s:
        s.execute(sa.delete(CaseMonthHours).where(CaseMonthHours.month == month))
    writer = factory()
    writer.begin()
    row = writer.get(Case, case.id)
    row.reported_at = _aware(row.reported_at) - dt.timedelta(hours=300)  # its hours change
    writer.flush()  # the trigger has run: the month's lock held, shared, until the commit
    done: list[int] = []
    keeper = threading.Thread(target=lambda: done.append(measures.keep_close_hours(factory, NOW)))
    keeper.start()
    time.sleep(1.0)
    assert keeper.is_alive() and not done  # waiting for the writer
    writer.commit()
    writer.close()
    keeper.join(60)
    assert done == [1]
    check(factory, NOW)  # the month as the writer left it


def test_two_keepers_of_one_month_work_it_out_once(engine, factory):
    """Two workers of a server keep the hours at their start: the second to get the month's lock finds it kept
    and leaves it. Here the lock is held while both start, so that both find the month missing first."""
    measures.keep_close_hours(factory, NOW)
    month = _months_before(NOW)[-1]
    with factory.begin() as s:
        s.execute(sa.delete(CaseMonthHours).where(CaseMonthHours.month == month))
    holder = engine.connect()
    if engine.dialect.name == "postgresql":
        holder.execute(sa.select(sa.func.pg_advisory_xact_lock(measures.HOURS_LOCK_CLASS, month)))
    else:
        holder.exec_driver_sql("BEGIN IMMEDIATE")
    done: list[int] = []
    keepers = [threading.Thread(target=lambda: done.append(measures.keep_close_hours(factory, NOW))) for _ in range(2)]
    for keeper in keepers:
        keeper.start()
    time.sleep(1.0)
    assert all(k.is_alive() for k in keepers) and not done  # both waiting for the month
    holder.rollback()
    holder.close()
    for keeper in keepers:
        keeper.join(60)
    assert sorted(done) == [0, 1]
    check(factory, NOW)


def test_a_servers_sweep_round_keeps_the_months_missing(settings, factory):
    from tests.conftest import api_client

    last_three = _months_before(dt.datetime.now(dt.UTC), 3)  # the server keeps the months before today's
    with factory.begin() as s:
        s.execute(sa.delete(CaseMonthHours).where(CaseMonthHours.month.in_(last_three)))
    assert not set(last_three) & set(kept(factory))
    with api_client(settings) as client:
        deadline = time.monotonic() + 60
        while client.app.state.sweep_rounds < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
    check(factory)
