"""`case_month_count` (migration 0021) holds, per grid and China-time month, the cases in that grid now: received by
the month of their report, the due cohort (due, suspended, active, closed, closed on time, reworked, extended) by the
month of their deadline — kept by the database's triggers in step with the case table, on both databases (issue 15:
a district's series counts its year of cases from it, a few thousand rows instead of ~600,000 cases).

Every test compares the table with the same counts worked out in Python from `case_file` after a kind of write: the
demo as loaded, cases changed one by one by the ORM (state, closure, rework, extension, deadline into another
month, grid, into no grid and back), many in one statement, deleted, a new case, and a series month cut short.
"""

from __future__ import annotations

import datetime as dt
import importlib
from collections import Counter

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from gridmap.cases import measures
from gridmap.demo.load import load_demo
from gridmap.store import bulkload
from gridmap.store import engine as storage
from gridmap.store.tables import Case, CaseEvent, CaseMonthCount
from tests.conftest import DIALECTS, empty_database
from tests.integration.test_foreign_key_indexes import _alembic

TODAY = dt.date(2026, 11, 20)
CST = dt.timezone(dt.timedelta(hours=8))
MIGRATION = importlib.import_module("gridmap.store.migrations.versions.0021_case_month_count")
COUNTS = measures.CASE_COUNTS


def _aware(at: dt.datetime) -> dt.datetime:
    return at if at.tzinfo else at.replace(tzinfo=dt.UTC)


def _month(at: dt.datetime) -> int:
    local = _aware(at).astimezone(CST)
    return local.year * 100 + local.month


def truth(session) -> dict[tuple[int, str], tuple[int, ...]]:
    """The counts from the cases and their grids now, worked out here with the formulas of `_case_counts`."""
    counts: Counter[tuple[int, str, str]] = Counter()
    rows = session.execute(
        sa.select(
            Case.grid_code,
            Case.reported_at,
            Case.due_at,
            Case.state,
            Case.closed_at,
            Case.rework_count,
            Case.extension_count,
        ).where(Case.grid_code.is_not(None))
    )
    for grid, reported, due, state, closed_at, reworks, extensions in rows:
        if reported is not None:
            counts[(_month(reported), grid, "received")] += 1
        if due is None or state is None or state in measures.NOT_COUNTED:
            continue
        active = state != "suspended"
        closed = active and state == "closed" and closed_at is not None
        flags = {
            "due": True,
            "suspended": state == "suspended",
            "active": active,
            "closed": closed,
            "closed_on_time": closed and _aware(closed_at) <= _aware(due),
            "reworked": active and (reworks or 0) > 0,
            "extended": active and (extensions or 0) > 0,
        }
        for name, member in flags.items():
            counts[(_month(due), grid, name)] += int(member)
    keys = {(m, g) for m, g, _ in counts}
    out = {k: tuple(counts[(*k, n)] for n in COUNTS) for k in keys}
    return {k: v for k, v in out.items() if any(v)}


def kept(session) -> dict[tuple[int, str], tuple[int, ...]]:
    """The table, rows of nothing but zeros left out (a grid-month whose cases all went away keeps its row)."""
    rows = session.execute(
        sa.select(CaseMonthCount.month, CaseMonthCount.grid_code, *(getattr(CaseMonthCount, n) for n in COUNTS))
    )
    return {(m, g): tuple(v) for m, g, *v in rows if any(v)}


def check(session) -> None:
    session.flush()
    assert kept(session) == truth(session)


def _cases(session, n: int, *, offset: int = 0, **where) -> list[Case]:
    query = sa.select(Case).where(
        Case.grid_code.is_not(None), Case.due_at.is_not(None), *(getattr(Case, k) == v for k, v in where.items())
    )
    return list(session.scalars(query.order_by(Case.id).offset(offset).limit(n)).all())


def test_the_cases_loaded_are_counted_and_the_formulas_are_the_measures(session):
    assert MIGRATION.NOT_COUNTED == measures.NOT_COUNTED
    assert MIGRATION.COUNTS == measures.CASE_COUNTS
    counted = kept(session)
    assert len(counted) > 50
    totals = dict(zip(COUNTS, map(sum, zip(*counted.values()))))
    # every kind of case is there to count: closed late and on time, suspended, reworked, extended
    # every kind of case is there to count (the small demo closes on time; the tests below close one late)
    assert totals["received"] > 200 and 0 < totals["closed_on_time"] <= totals["closed"] < totals["active"]
    assert totals["suspended"] > 0 and totals["reworked"] > 0 and totals["extended"] > 0
    check(session)


def test_cases_changed_one_by_one(session):
    a, b, c = _cases(session, 3, state="closed")
    a.state, a.closed_at = "dispatched", None
    check(session)
    a.state = "accepted"  # no count changes: nothing written (checked below: the same counts)
    check(session)
    a.state, a.closed_at = "closed", _aware(a.due_at) - dt.timedelta(hours=1)  # closed on time
    check(session)
    a.closed_at = _aware(a.due_at) + dt.timedelta(seconds=1)  # late
    check(session)
    b.rework_count = (b.rework_count or 0) + 1
    b.extension_count = (b.extension_count or 0) + 1
    check(session)
    b.state = "suspended"  # out of the active, into the suspended
    check(session)
    b.state = "voided"  # out of the cohort altogether
    check(session)
    june_first_cst = dt.datetime(2026, 5, 31, 16, 0, tzinfo=dt.UTC)  # 2026-06-01 00:00 China time: June
    c.due_at = june_first_cst
    check(session)
    assert truth(session)[(202606, c.grid_code)][1] >= 1
    c.due_at = june_first_cst - dt.timedelta(microseconds=1)  # May
    check(session)
    c.reported_at = c.reported_at - dt.timedelta(days=40)  # reported a month or two earlier (another partition)
    check(session)


def test_a_case_moved_to_another_grid_takes_its_counts(session):
    cases = _cases(session, 30, offset=50)
    grids = sorted({c.grid_code for c in _cases(session, 500)})
    assert len(grids) > 2
    one = cases[0]
    one.grid_code = next(g for g in grids if g != one.grid_code)
    check(session)
    one.grid_code = None  # into no grid: its counts are no grid's
    check(session)
    one.grid_code = grids[0]
    check(session)
    ids = [c.id for c in cases[1:]]
    session.execute(sa.update(Case).where(Case.id.in_(ids)).values(grid_code=grids[1]))  # many in one statement
    check(session)
    session.execute(sa.update(Case).where(Case.id.in_(ids[:5])).values(title="only the title"))  # no count changes
    check(session)


def test_many_cases_changed_and_removed_in_one_statement(session):
    ids = [c.id for c in _cases(session, 200, offset=100)]
    session.execute(
        sa.update(Case)
        .where(Case.id.in_(ids[:100]))
        .values(due_at=dt.datetime(2026, 8, 15, 1, tzinfo=dt.UTC), rework_count=Case.rework_count + 1)
    )
    check(session)
    session.execute(sa.update(Case).where(Case.id.in_(ids[100:150])).values(state="closed", closed_at=None))
    check(session)  # closed without a closure time: in the active, not in the closed (as `_case_counts` has it)
    session.execute(sa.delete(CaseEvent).where(CaseEvent.case_id.in_(ids[150:])))
    session.execute(sa.delete(Case).where(Case.id.in_(ids[150:])))
    check(session)


def test_a_new_case(session):
    grid = _cases(session, 1)[0].grid_code
    now = dt.datetime(2026, 11, 2, 9, tzinfo=dt.UTC)
    before = kept(session).get((202611, grid), (0,) * len(COUNTS))
    session.add(
        Case(
            number="S-COUNT-NEW",
            title="new",
            source="api",
            state="closed",
            reported_at=now,
            due_at=now + dt.timedelta(days=3),
            closed_at=now + dt.timedelta(days=1),
            version=1,
            grid_code=grid,
        )
    )
    check(session)
    after = dict(zip(COUNTS, kept(session)[(202611, grid)]))
    assert [after[n] - dict(zip(COUNTS, before))[n] for n in ("received", "due", "closed", "closed_on_time")] == [
        1,
        1,
        1,
        1,
    ]


@pytest.mark.parametrize("dialect", ["postgresql", "sqlite"])
def test_the_bulk_fill_is_the_migrations_statement(dialect):
    """What a bulk load runs instead of the insert trigger (gridmap.store.bulkload) is the migration's own fill."""
    assert bulkload.COUNTS_FILL[dialect] == {"postgresql": MIGRATION.PG_FILL, "sqlite": MIGRATION.SL_FILL}[dialect]
    assert ("case_file", bulkload.COUNTS_TRIGGER) in bulkload.FILLS


def test_a_series_month_cut_short_leaves_out_the_cases_after_its_end(session):
    """The counts are by whole month; a series ending on 20 November at 15:30 takes away that month's cases
    reported or due after then (counted from the cases), and counts those before."""
    case = _cases(session, 1, offset=7)[0]
    community = case.grid_code[:12]
    until = dt.datetime(2026, 11, 20, 7, 30, tzinfo=dt.UTC)  # 15:30 China time (times are written in UTC)
    before = measures.area_series(session, community, months=2, until=until)

    def new(number: str, reported: dt.datetime, due: dt.datetime) -> Case:
        return Case(
            number=number,
            title="cut",
            source="api",
            state="dispatched",
            reported_at=reported,
            due_at=due,
            version=1,
            grid_code=case.grid_code,
        )

    session.add_all(
        [
            new("S-CUT-1", until - dt.timedelta(minutes=1), until - dt.timedelta(seconds=1)),  # both before the end
            new("S-CUT-2", until - dt.timedelta(minutes=1), until),  # due at the end: after the series
            new("S-CUT-3", until, until + dt.timedelta(days=3)),  # reported at the end
        ]
    )
    session.flush()
    after = measures.area_series(session, community, months=2, until=until)
    assert after[-1]["received"] == before[-1]["received"] + 2
    assert after[-1]["due"] == before[-1]["due"] + 1 and after[-1]["handled"] == before[-1]["handled"]
    assert after[0] == before[0]
    check(session)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_an_existing_database_is_counted_by_the_upgrade(dialect, tmp_path):
    """A database at 0020 with cases: 0021 counts them, the triggers then keep the counts, and a downgrade and
    upgrade again give the same."""
    url, drop = empty_database(dialect, tmp_path)
    engine = storage.make_engine(url)
    try:
        storage.migrate(engine, "0020")
        with storage.session_scope(storage.make_sessionmaker(engine)) as session:
            load_demo(session, "530111", small=True, seed=11, today=TODAY)
        storage.migrate(engine)
        with Session(engine) as session:
            check(session)
            assert len(kept(session)) > 50
            case = _cases(session, 1, state="closed")[0]
            case.state, case.closed_at = "rework", None
            check(session)
            counted = kept(session)
            session.commit()
        _alembic(engine, "downgrade", "0020")
        with engine.connect() as conn:
            assert not sa.inspect(conn).has_table("case_month_count")
        storage.migrate(engine)
        with Session(engine) as session:
            assert kept(session) == counted
            check(session)
    finally:
        engine.dispose()
        if drop is not None:
            drop()
