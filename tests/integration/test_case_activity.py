"""Each case's last change (`case_activity`, migration 0015), kept by the database on both: after every kind of write
to the history — the demo's load, an entry added later or earlier than the last, several cases in one statement, an
entry deleted, moved to another case or given another time, a whole history deleted — the table holds exactly each
case's latest `case_event.at`, and no row for a case without history; an existing database is filled by the upgrade;
the list by last update reads it (and gives what the history says)."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from gridmap.cases import queries
from gridmap.demo.load import load_demo
from gridmap.store import engine as storage
from gridmap.store.tables import Case, CaseActivity, CaseEvent
from tests.conftest import DIALECTS, empty_database

TODAY = dt.date(2026, 11, 20)
LATER = dt.datetime(2026, 11, 21, 9, 30, 15, 123456, tzinfo=dt.UTC)


def kept(session: Session) -> dict[int, dt.datetime]:
    rows = session.execute(sa.select(CaseActivity.case_id, CaseActivity.last_event_at)).all()
    return {r[0]: queries.utc(r[1]) for r in rows}


def history(session: Session) -> dict[int, dt.datetime]:
    rows = session.execute(sa.select(CaseEvent.case_id, sa.func.max(CaseEvent.at)).group_by(CaseEvent.case_id)).all()
    return {r[0]: queries.utc(r[1]) for r in rows}


def agree(session: Session) -> dict[int, dt.datetime]:
    session.flush()
    found = kept(session)
    assert found == history(session)
    return found


def _downgrade(engine: sa.Engine, revision: str) -> None:
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(storage._MIGRATIONS))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, revision)


def _event(case_id: int, at: dt.datetime, action: str = "note") -> dict[str, object]:
    return {"case_id": case_id, "at": at, "actor": "test", "action": action, "from_state": None, "to_state": None}


def test_the_demo_loaded_keeps_every_case_last_change(session):
    found = agree(session)
    cases = session.scalar(sa.select(sa.func.count()).select_from(Case))
    assert len(found) == cases > 100  # every demo case has a history


def test_every_write_of_history_keeps_the_last_change(session):
    first, second = session.scalars(sa.select(Case.id).order_by(Case.id).limit(2)).all()
    before = agree(session)

    # an entry later than the last moves the time forward; one earlier than the last leaves it
    session.execute(sa.insert(CaseEvent), [_event(first, LATER)])
    assert agree(session)[first] == LATER
    session.execute(sa.insert(CaseEvent), [_event(first, LATER - dt.timedelta(days=400))])
    assert agree(session)[first] == LATER

    # several cases in one statement, each with several entries
    session.execute(
        sa.insert(CaseEvent),
        [_event(second, LATER + dt.timedelta(hours=h)) for h in (3, 1, 2)] + [_event(first, LATER - dt.timedelta(1))],
    )
    found = agree(session)
    assert (found[first], found[second]) == (LATER, LATER + dt.timedelta(hours=3))

    # the last entry deleted: back to the one before
    session.execute(sa.delete(CaseEvent).where(CaseEvent.case_id == second, CaseEvent.at >= LATER))
    assert agree(session)[second] == before[second]

    # an entry given another time, then moved to another case
    latest = session.scalar(sa.select(sa.func.max(CaseEvent.id)).where(CaseEvent.case_id == first))
    session.execute(sa.update(CaseEvent).where(CaseEvent.id == latest).values(at=LATER + dt.timedelta(days=2)))
    assert agree(session)[first] == LATER + dt.timedelta(days=2)
    session.execute(sa.update(CaseEvent).where(CaseEvent.id == latest).values(case_id=second))
    found = agree(session)
    assert (found[first], found[second]) == (LATER, LATER + dt.timedelta(days=2))

    # a whole history deleted: no row, as max() over no entries gave NULL
    session.execute(sa.delete(CaseEvent).where(CaseEvent.case_id == first))
    assert first not in agree(session)


def test_the_list_by_last_update_is_ordered_by_the_kept_time(session):
    """The newest change first (a case given an entry now comes to the top), the cases without history last."""
    first, last = session.scalars(sa.select(Case.id).order_by(Case.id).limit(2)).all()
    session.execute(sa.insert(CaseEvent), [_event(last, LATER)])
    session.execute(sa.delete(CaseEvent).where(CaseEvent.case_id == first))
    agree(session)
    for order in ("desc", "asc"):
        f = queries.CaseFilter(sort="updated_at", order=order)
        page = queries.page_cases(session, f, limit=5, count=False, now=LATER)
        times = [kept(session).get(c.id) for c in page.rows]
        assert (page.rows[0].id == last) == (order == "desc")
        assert None not in times
        assert times == sorted(times, reverse=order == "desc")
    tail = queries.page_cases(session, queries.CaseFilter(sort="updated_at"), limit=10_000, count=False, now=LATER)
    assert tail.rows[-1].id == first  # no history: after every case that has one


@pytest.mark.parametrize("dialect", DIALECTS)
def test_an_existing_database_is_filled_by_the_upgrade(dialect, tmp_path):
    """A database at 0014 with cases and history: 0015 fills the table from the history, and its triggers then keep
    it (a downgrade and upgrade again give the same)."""
    url, drop = empty_database(dialect, tmp_path)
    engine = storage.make_engine(url)
    try:
        storage.migrate(engine, "0014")
        with storage.session_scope(storage.make_sessionmaker(engine)) as session:
            load_demo(session, "530111", small=True, seed=11, today=TODAY)
        storage.migrate(engine)
        with Session(engine) as session:
            found = agree(session)
            assert len(found) > 100
            case = min(found)
            session.execute(sa.insert(CaseEvent), [_event(case, LATER)])
            assert agree(session)[case] == LATER
            session.commit()
        _downgrade(engine, "0014")
        with engine.connect() as conn:
            assert not sa.inspect(conn).has_table("case_activity")
        storage.migrate(engine)
        with Session(engine) as session:
            assert agree(session)[case] == LATER
    finally:
        engine.dispose()
        if drop is not None:
            drop()


def _walk(session: Session, f: queries.CaseFilter) -> list[int]:
    ids: list[int] = []
    cursor = None
    while True:
        page = queries.page_cases(session, f, limit=7, cursor=cursor, count=False, now=LATER)
        ids += [c.id for c in page.rows]
        if page.next_cursor is None:
            return ids
        cursor = page.next_cursor


@pytest.mark.parametrize("order", ["desc", "asc"])
def test_looking_among_the_latest_changes_first_gives_the_same_pages(session, monkeypatch, order):
    """SQLite looks for a page by last update among the next few changes first (`queries.LATEST_WINDOWS`), then
    further: with windows so small that pages straddle them, every list, walked by cursor, is the one read without
    them — the province, an area, a queue, and the cases without history last."""
    first = session.scalar(sa.select(sa.func.min(Case.id)))
    session.execute(sa.delete(CaseEvent).where(CaseEvent.case_id == first))
    community = session.scalar(sa.select(Case.community_code).where(Case.community_code.is_not(None)).limit(1))
    lists = [
        queries.CaseFilter(sort="updated_at", order=order),
        queries.CaseFilter(area=community, sort="updated_at", order=order),
        queries.CaseFilter(queue="dispatched", sort="updated_at", order=order),
    ]
    for f in lists:
        monkeypatch.setattr(queries, "LATEST_WINDOWS", ())
        whole = _walk(session, f)
        for windows in ((5, 40), (50, 60)):  # pages found in a window, at the end of one, or after the windows
            monkeypatch.setattr(queries, "LATEST_WINDOWS", windows)
            assert _walk(session, f) == whole
        assert len(whole) > 7
        if f.area is None and f.queue is None:
            assert whole[-1] == first  # no history: last, whichever the order
