"""`case_step_count` (migration 0018) holds, per grid and China-time month, the steps of the cases in that grid now —
handled, rated, rated satisfied, bounced back — kept by the database's triggers in step with the history and the
cases, on both databases (issue 15: a district's series counts its year of steps from it, a few thousand rows).

Every test compares the table with the same counts worked out in Python from `case_event` and `case_file` after a
kind of write: the demo's history as loaded, steps added one by one and many in one statement, steps changed and
removed, cases moved to other grids (one by the ORM, many by one UPDATE, into no grid and back), a new case with
its history in one flush, and a series month cut short. On PostgreSQL the registry's grid of every case is checked
against the case's own.
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
from gridmap.store.tables import Case, CaseEvent, CaseStepCount
from tests.conftest import DIALECTS, empty_database
from tests.integration.test_foreign_key_indexes import _alembic

TODAY = dt.date(2026, 11, 20)

CST = dt.timezone(dt.timedelta(hours=8))
MIGRATION = importlib.import_module("gridmap.store.migrations.versions.0018_case_step_count")


def _month(at: dt.datetime) -> int:
    local = (at if at.tzinfo else at.replace(tzinfo=dt.UTC)).astimezone(CST)
    return local.year * 100 + local.month


def truth(session) -> dict[tuple[int, str], tuple[int, int, int, int]]:
    """The counts from the history and the cases' grids now, worked out here."""
    counts: Counter[tuple[int, str, str]] = Counter()
    rows = session.execute(
        sa.select(CaseEvent.at, CaseEvent.action, CaseEvent.detail, Case.grid_code)
        .join(Case, Case.id == CaseEvent.case_id)
        .where(CaseEvent.action.in_(("handle", "rate", "bounce")), Case.grid_code.is_not(None))
    )
    for at, action, detail, grid in rows:
        key = (_month(at), grid)
        counts[(*key, action)] += 1
        score = (detail or {}).get("satisfaction")
        if action == "rate" and score is not None and int(score) >= measures.SATISFIED_MIN:
            counts[(*key, "satisfied")] += 1
    keys = {(m, g) for m, g, _ in counts}
    out = {k: tuple(counts[(*k, a)] for a in ("handle", "rate", "satisfied", "bounce")) for k in keys}
    return {k: v for k, v in out.items() if any(v)}


def kept(session) -> dict[tuple[int, str], tuple[int, int, int, int]]:
    """The table, rows of nothing but zeros left out (a grid-month whose steps all went away keeps its row)."""
    rows = session.execute(
        sa.select(
            CaseStepCount.month,
            CaseStepCount.grid_code,
            CaseStepCount.handled,
            CaseStepCount.rated,
            CaseStepCount.satisfied,
            CaseStepCount.bounces,
        )
    )
    return {(m, g): (h, r, s, b) for m, g, h, r, s, b in rows if (h, r, s, b) != (0, 0, 0, 0)}


def check(session) -> None:
    session.flush()
    assert kept(session) == truth(session)
    if session.get_bind().dialect.name == "postgresql":
        wrong = session.execute(
            sa.text(
                "SELECT count(*) FROM case_registry r JOIN case_file c ON c.id = r.id "
                "WHERE r.grid_code IS DISTINCT FROM c.grid_code"
            )
        ).scalar_one()
        assert wrong == 0


def _cases(session, n: int, *, offset: int = 0) -> list[Case]:
    return list(
        session.scalars(
            sa.select(Case).where(Case.grid_code.is_not(None)).order_by(Case.id).offset(offset).limit(n)
        ).all()
    )


def _step(case: Case, action: str, at: dt.datetime, satisfaction: int | None = None) -> CaseEvent:
    detail = {"satisfaction": satisfaction} if satisfaction is not None else None
    return CaseEvent(case_id=case.id, at=at, actor="test", action=action, detail=detail)


def test_the_history_loaded_is_counted_and_the_threshold_is_the_measures(session):
    assert MIGRATION.SATISFIED_MIN == measures.SATISFIED_MIN
    counted = kept(session)
    assert len(counted) > 50 and sum(v[0] for v in counted.values()) > 200
    assert sum(v[2] for v in counted.values()) < sum(v[1] for v in counted.values())  # some ratings are not
    check(session)


def test_steps_added_one_by_one_and_many_at_once(session):
    a, b, c = _cases(session, 3)
    june_first_cst = dt.datetime(2026, 5, 31, 16, 0, tzinfo=dt.UTC)  # 2026-06-01 00:00 China time: June
    session.add_all(
        [
            _step(a, "handle", june_first_cst),
            _step(a, "handle", june_first_cst - dt.timedelta(microseconds=1)),  # May
            _step(b, "rate", june_first_cst, satisfaction=2),
            _step(b, "rate", june_first_cst, satisfaction=3),
            _step(c, "rate", june_first_cst, satisfaction=5),
            _step(c, "bounce", june_first_cst),
            _step(c, "urge", june_first_cst),  # not a step the measures count
        ]
    )
    check(session)
    many = _cases(session, 40, offset=3)
    session.execute(
        sa.insert(CaseEvent),
        [
            {
                "case_id": case.id,
                "at": dt.datetime(2026, 3, 1 + i % 28, 3, tzinfo=dt.UTC),
                "actor": "test",
                "action": ("handle", "rate", "bounce")[i % 3],
                "detail": {"satisfaction": i % 5 + 1} if i % 3 == 1 else None,
            }
            for i, case in enumerate(many)
        ],
    )
    check(session)


def test_steps_changed_and_removed(session):
    case, other = _cases(session, 2, offset=10)
    step = _step(case, "rate", dt.datetime(2026, 4, 2, tzinfo=dt.UTC), satisfaction=5)
    session.add(step)
    check(session)
    step.detail = {"satisfaction": 1}  # no longer satisfied
    check(session)
    step.at = dt.datetime(2026, 7, 9, tzinfo=dt.UTC)  # another month
    step.case_id = other.id  # and another case (of another grid, maybe)
    check(session)
    step.action = "handle"
    check(session)
    session.execute(
        sa.update(CaseEvent)
        .where(CaseEvent.action == "handle", CaseEvent.case_id.in_([c.id for c in _cases(session, 30)]))
        .values(at=dt.datetime(2026, 8, 15, 1, tzinfo=dt.UTC))  # one statement, many months to one
    )
    check(session)
    session.execute(
        sa.delete(CaseEvent).where(
            CaseEvent.action == "bounce", CaseEvent.case_id.in_([c.id for c in _cases(session, 200)])
        )
    )
    check(session)


def test_a_case_moved_to_another_grid_takes_its_steps(session):
    stepped = session.scalars(
        sa.select(Case)
        .where(Case.grid_code.is_not(None), Case.id.in_(sa.select(CaseEvent.case_id).where(CaseEvent.action == "rate")))
        .order_by(Case.id)
        .limit(30)
    ).all()
    grids = sorted({c.grid_code for c in _cases(session, 500)})
    assert len(grids) > 2
    one = stepped[0]
    one.grid_code = next(g for g in grids if g != one.grid_code)  # by the ORM (through the month-pruned write)
    check(session)
    one.grid_code = None  # into no grid: its steps are no grid's
    check(session)
    one.grid_code = grids[0]
    check(session)
    ids = [c.id for c in stepped[1:]]
    session.execute(sa.update(Case).where(Case.id.in_(ids)).values(grid_code=grids[1]))  # many in one statement
    check(session)
    session.execute(sa.update(Case).where(Case.id.in_(ids[:5])).values(title="only the title"))  # no move
    check(session)


def test_a_new_case_and_its_history_in_one_flush(session):
    grid = _cases(session, 1)[0].grid_code
    now = dt.datetime(2026, 11, 2, 9, tzinfo=dt.UTC)
    case = Case(
        number="S-STEP-NEW",
        title="new",
        source="api",
        state="closed",
        reported_at=now,
        due_at=now + dt.timedelta(days=3),
        closed_at=now + dt.timedelta(days=1),
        version=1,
        grid_code=grid,
    )
    case.events = [
        CaseEvent(at=now + dt.timedelta(hours=5), actor="w", action="handle"),
        CaseEvent(at=now + dt.timedelta(hours=9), actor="r", action="rate", detail={"satisfaction": 4}),
    ]
    session.add(case)
    check(session)
    assert kept(session)[(202611, grid)][:3] >= (1, 1, 1)


@pytest.mark.parametrize("dialect", ["postgresql", "sqlite"])
def test_the_bulk_fill_is_the_migrations_statement(dialect):
    """What a bulk load runs instead of the insert trigger (gridmap.store.bulkload) is the migration's own fill."""
    assert bulkload.STEPS_FILL[dialect] == {"postgresql": MIGRATION.PG_FILL, "sqlite": MIGRATION.SL_FILL}[dialect]
    assert ("case_event", bulkload.STEPS_TRIGGER) in bulkload.FILLS
    keys = list(bulkload.FILLS)
    assert keys.index(("case_file", bulkload.REGISTRY_TRIGGER)) < keys.index(("case_event", bulkload.STEPS_TRIGGER))


def test_a_series_month_cut_short_leaves_out_the_steps_after_its_end(session):
    """The counts are by whole month; a series ending on 20 November at 15:30 takes away that month's steps after
    then (from the history), and counts one made before then."""
    case = _cases(session, 1, offset=7)[0]
    community = case.grid_code[:12]
    until = dt.datetime(2026, 11, 20, 7, 30, tzinfo=dt.UTC)  # 15:30 China time (times are written in UTC)
    before = measures.area_series(session, community, months=2, until=until)
    session.add_all(
        [
            _step(case, "handle", until - dt.timedelta(minutes=1)),
            _step(case, "handle", until),  # at the end: after the series
            _step(case, "bounce", until + dt.timedelta(days=3)),
        ]
    )
    session.flush()
    after = measures.area_series(session, community, months=2, until=until)
    assert after[-1]["handled"] == before[-1]["handled"] + 1
    assert after[-1]["bounces"] == before[-1]["bounces"]
    assert after[0] == before[0]
    check(session)


FOREIGN_KEYS = (
    "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid), convalidated FROM pg_constraint "
    "WHERE (conrelid = 'case_registry'::regclass OR confrelid = 'case_registry'::regclass) ORDER BY 1, 2"
)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_an_existing_database_is_counted_by_the_upgrade(dialect, tmp_path):
    """A database at 0017 with cases and history: 0018 counts its steps (and on PostgreSQL makes the registry again
    with the cases' grids, every key and every foreign key naming it as before), the triggers then keep the counts,
    and a downgrade and upgrade again give the same."""
    url, drop = empty_database(dialect, tmp_path)
    engine = storage.make_engine(url)
    postgres = engine.dialect.name == "postgresql"
    try:
        storage.migrate(engine, "0017")
        with storage.session_scope(storage.make_sessionmaker(engine)) as session:
            load_demo(session, "530111", small=True, seed=11, today=TODAY)
        with engine.connect() as conn:
            keys = conn.exec_driver_sql(FOREIGN_KEYS).all() if postgres else None
        storage.migrate(engine)
        with Session(engine) as session:
            check(session)
            assert len(kept(session)) > 50
            case = _cases(session, 1)[0]
            session.add(_step(case, "handle", dt.datetime(2026, 11, 3, tzinfo=dt.UTC)))
            check(session)
            counted = kept(session)
            session.commit()
        with engine.connect() as conn:
            if postgres:
                assert conn.exec_driver_sql(FOREIGN_KEYS).all() == keys
        _alembic(engine, "downgrade", "0017")
        with engine.connect() as conn:
            assert not sa.inspect(conn).has_table("case_step_count")
        storage.migrate(engine)
        with Session(engine) as session:
            assert kept(session) == counted
            check(session)
    finally:
        engine.dispose()
        if drop is not None:
            drop()
