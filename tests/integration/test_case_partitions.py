"""The case table partitioned by month on PostgreSQL (migration 0010), and the same application on SpatiaLite.

On PostGIS: `case_file` is a range-partitioned table (one partition per month of China time and a DEFAULT one);
the measures of a month and a date-bounded case list read only the partitions of the months concerned (EXPLAIN);
cases of a new month, of the far past and of the far future are written; ids, numbers and tickets stay unique
across partitions; rows that reference a case cannot name a missing one; the upgrade from 0009 keeps every row
(count and checksum) and the downgrade gives back the single table. On both databases: the same demo gives the same
measures and the same case lists.
"""

from __future__ import annotations

import datetime as dt
import re

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.orm import Session

from gridmap.boundaries.areas import load_index
from gridmap.cases import intake as cases
from gridmap.cases import measures, queries
from gridmap.store import engine as storage
from gridmap.store import partitions as case_partitions
from gridmap.store.tables import Case, CaseEvent, CaseMonthHours
from tests.conftest import _load, _new_postgis_database, _postgis_template

CST = dt.timezone(dt.timedelta(hours=8))
JUNE = (dt.datetime(2026, 6, 1, tzinfo=CST), dt.datetime(2026, 7, 1, tzinfo=CST))
PARTITION = re.compile(r"\bcase_file_(p\d{6}|default)\b")


@pytest.fixture(scope="module")
def pg_url():
    """A PostGIS database of its own holding the small demo (at the head revision: partitioned)."""
    url, drop = _new_postgis_database(template=_postgis_template())
    yield url
    drop()


@pytest.fixture(scope="module")
def pg(pg_url):
    engine = storage.make_engine(pg_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def lite(tmp_path_factory):
    engine = storage.make_engine(_load(f"sqlite:///{tmp_path_factory.mktemp('parts') / 'gridmap.sqlite'}"))
    yield engine
    engine.dispose()


def _partition_of(session: Session, case_id: int) -> str:
    return session.scalar(sa.text("SELECT tableoid::regclass::text FROM case_file WHERE id = :id"), {"id": case_id})


def _explained(session: Session, run) -> list[tuple[str, set[str]]]:
    """Every statement `run(session)` sends that reads case_file, with the partitions its plan (EXPLAIN, same
    parameters, same connection) reads."""
    sent: list[tuple[str, object]] = []
    conn = session.connection()

    def capture(_conn, _cursor, statement, parameters, _context, _many) -> None:
        if "case_file" in statement:
            sent.append((statement, parameters))

    sa.event.listen(conn, "before_cursor_execute", capture)
    try:
        run(session)
    finally:
        sa.event.remove(conn, "before_cursor_execute", capture)
    out = []
    cursor = conn.connection.dbapi_connection.cursor()
    for statement, parameters in sent:
        cursor.execute("EXPLAIN " + statement, parameters)
        plan = "\n".join(row[0] for row in cursor.fetchall())
        out.append((statement, {f"case_file_{m}" for m in PARTITION.findall(plan)}))
    return out


# -- the table is partitioned ---------------------------------------------------------------------------------------


def test_the_case_table_is_partitioned_by_month_of_report(pg):
    with Session(pg) as session:
        strategy, key = session.execute(
            sa.text(
                "SELECT p.partstrat, a.attname FROM pg_partitioned_table p JOIN pg_attribute a "
                "ON a.attrelid = p.partrelid AND a.attnum = p.partattrs[0] WHERE p.partrelid = 'case_file'::regclass"
            )
        ).one()
        assert (strategy, key) == ("r", "reported_at")
        children = set(
            session.scalars(
                sa.text("SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = 'case_file'::regclass")
            )
        )
        found = case_partitions.partitions(session)
        assert found is not None and found.default and "case_file_default" in children
        assert {m.name for m in found.months} | {"case_file_default"} == children
        # consecutive months (China time), each bound [first of the month 00:00+08, first of the next)
        for a, b in zip(found.months, found.months[1:]):
            assert a.until == b.since
        bounds = dict(
            session.execute(
                sa.text(
                    "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i JOIN pg_class c "
                    "ON c.oid = i.inhrelid WHERE i.inhparent = 'case_file'::regclass"
                )
            ).all()
        )
        session.execute(sa.text("SET LOCAL TimeZone = 'Asia/Shanghai'"))
        june = case_partitions.month_of(JUNE[0])
        assert june.name == "case_file_p202606" and (june.since, june.until) == tuple(JUNE)
        assert "2026-06-01 00:00:00+08" in session.scalar(
            sa.text("SELECT pg_get_expr(relpartbound, oid) FROM pg_class WHERE relname = 'case_file_p202606'")
        )
        assert bounds["case_file_default"] == "DEFAULT"
        # every demo case is in its month's partition
        rows = session.execute(sa.text("SELECT tableoid::regclass::text, reported_at FROM case_file")).all()
        assert len(rows) >= 300
        assert all(name == case_partitions.month_of(at).name for name, at in rows)
        # the indexes the measures read (0009) are on the partitioned table, hence on every partition
        indexes = set(session.scalars(sa.text("SELECT indexname FROM pg_indexes WHERE tablename = 'case_file'")))
        assert {
            "ix_case_file_reported_grid",
            "ix_case_file_due_measures",
            "ix_case_file_closed_measures",
            "ix_case_file_state_reported",
            "ix_case_file_due",
            "idx_case_file_geom",
            "case_file_pkey",
        } <= indexes
        per_partition = session.scalar(sa.text("SELECT count(*) FROM pg_indexes WHERE tablename = 'case_file_p202606'"))
        assert per_partition == len(indexes)


def test_spatialite_has_no_partitions_and_nothing_to_make(lite):
    with Session(lite) as session:
        assert case_partitions.partitions(session) is None
        assert case_partitions.report_bounds(session, *JUNE) is None
        assert case_partitions.ensure_months(session, *JUNE) == 0


# -- pruning --------------------------------------------------------------------------------------------------------


def _months_between(session: Session, lo: str, hi: str) -> set[str]:
    found = case_partitions.partitions(session)
    assert found is not None
    return {m.name for m in found.months if lo <= m.name <= hi}


def _allowed(session: Session, since: dt.datetime, until: dt.datetime) -> set[str]:
    """The month partitions from the earliest to the latest holding a case reported, due or closed in the period."""
    first, last = session.execute(
        sa.text(
            "SELECT min(tableoid::regclass::text), max(tableoid::regclass::text) FROM case_file "
            "WHERE (reported_at >= :s AND reported_at < :u) OR (due_at >= :s AND due_at < :u) "
            "OR (closed_at >= :s AND closed_at < :u)"
        ),
        {"s": since, "u": until},
    ).one()
    return _months_between(session, first, last)


def test_a_months_measures_read_only_the_months_concerned(pg):
    """Every statement of a month's measures that bounds the report time (the cases received, the due cohort, the
    hours to close) reads only the partitions from the earliest month holding a case due or closed in June to
    June — not the other months of the year. (The steps of the month are joined to their cases by id, which
    bounds no report time: those statements, and the report-time probe itself, read every partition.)"""
    with Session(pg) as session:
        allowed = _allowed(session, *JUNE)
        every = {m.name for m in case_partitions.partitions(session).months} | {"case_file_default"}
        assert "case_file_p202606" in allowed and len(allowed) <= 3 < len(every) - 10
        plans = _explained(session, lambda s: measures.measures(s, "grid", since=JUNE[0], until=JUNE[1]))
        bounded = [(sql, parts) for sql, parts in plans if "case_file.reported_at >=" in sql]
        assert len(bounded) >= 2  # the counts and the hours to close
        for sql, parts in bounded:
            assert parts and parts <= allowed, (sql[:200], parts)


def test_a_years_measures_skip_the_probe_and_give_the_same_answers(pg, monkeypatch):
    """Over a period longer than `measures.PRUNE_MAX_PERIOD` the partitions are not probed for bounds (the probe
    cost more than the pruning saved over a year); the answers are the same as with the bounds."""
    year = (JUNE[1] - dt.timedelta(days=365), JUNE[1])
    with Session(pg) as session:
        plans = _explained(session, lambda s: measures.measures(s, "grid", since=year[0], until=year[1]))
        assert not any("EXISTS" in sql and "case_file_p" in sql for sql, _ in plans)
        _, unbounded = measures.measures(session, "grid", since=year[0], until=year[1])
        monkeypatch.setattr(measures, "PRUNE_MAX_PERIOD", dt.timedelta(days=3650))
        plans = _explained(session, lambda s: measures.measures(s, "grid", since=year[0], until=year[1]))
        assert any("EXISTS" in sql and "case_file_p" in sql for sql, _ in plans)  # the probe, when asked for
        _, bounded = measures.measures(session, "grid", since=year[0], until=year[1])
    assert measures.to_records(unbounded) == measures.to_records(bounded)


def test_a_series_reads_the_months_of_the_series(pg):
    edges = [dt.datetime(2026, m, 1, tzinfo=CST) for m in (4, 5, 6, 7)]
    with Session(pg) as session:
        # three whole past months: their hours as kept (0026), no closure of theirs read
        plans = _explained(session, lambda s: measures.area_series(s, "530111", months=3, until=edges[-1]))
        assert not any("percentile_cont" in sql for sql, _ in plans)
        session.execute(sa.delete(CaseMonthHours))  # none kept (rolled back with the session): read from the cases
        plans = _explained(session, lambda s: measures.area_series(s, "530111", months=3, until=edges[-1]))
        bounded = [(sql, parts) for sql, parts in plans if "case_file.reported_at >=" in sql]
        # the hours to close; the counts are read from what the database keeps by grid and month (0021), and a
        # series ending at a month's end has no last month's tail to read from the cases
        assert len(bounded) >= 1 and any("percentile_cont" in sql for sql, _ in bounded)
        allowed = _allowed(session, edges[0], edges[-1])
        assert len(allowed) <= 5
        for sql, parts in bounded:
            assert parts and parts <= allowed, (sql[:200], parts)


def test_a_date_bounded_case_list_reads_only_its_months(pg):
    with Session(pg) as session:
        plans = _explained(session, lambda s: queries.find_cases(s, since=JUNE[0], until=JUNE[1], offset=5, limit=5))
        assert len(plans) == 3  # the count, the page's ids, its cases whole
        for _, parts in plans:
            assert parts == {"case_file_p202606"}
        total, page = queries.find_cases(session, since=JUNE[0], until=JUNE[1], offset=5, limit=5)
        assert total == session.scalar(
            sa.select(sa.func.count()).select_from(Case).where(Case.reported_at >= JUNE[0], Case.reported_at < JUNE[1])
        ) and len(page) == min(5, total - 5)


def test_a_page_after_a_cursor_reads_only_the_months_it_can_hold(pg):
    """A date-bounded list walked by cursor reads its months alone, with no count after the first page; a list
    without dates, newest first, reads no month after the position of its cursor."""
    f = queries.CaseFilter(since=JUNE[0], until=JUNE[1])
    with Session(pg) as session:
        first = queries.page_cases(session, f, limit=5)
        assert first.next_cursor and first.total and first.total > 10
        plans = _explained(session, lambda s: queries.page_cases(s, f, limit=5, cursor=first.next_cursor))
        assert len(plans) == 1  # the page alone: not counted again
        assert plans[0][1] == {"case_file_p202606"}
        june = queries.page_cases(session, queries.CaseFilter(until=JUNE[1]), limit=5)
        assert june.next_cursor
        plans = _explained(
            session, lambda s: queries.page_cases(s, queries.CaseFilter(), limit=5, cursor=june.next_cursor)
        )
        assert len(plans) == 1 and "case_file_p202606" in plans[0][1]
        later = {p for p in plans[0][1] if p > "case_file_p202606"}
        assert not later, later


# -- writing in any month -------------------------------------------------------------------------------------------

WHEN = {
    "new month": dt.datetime(2030, 2, 14, 9, tzinfo=CST),
    "far past": dt.datetime(1995, 3, 1, 8, tzinfo=CST),
    "far future": dt.datetime(2061, 12, 31, 23, 59, tzinfo=CST),
    "first hour of a China month": dt.datetime(2029, 5, 1, 0, 30, tzinfo=CST),
}
# given in UTC, as the intake channels give them (an aware time of another zone is stored by SQLite as its wall
# clock: see the report of this change)
WHEN = {name: at.astimezone(dt.UTC) for name, at in WHEN.items()}


@pytest.mark.parametrize("which", ["pg", "lite"])
def test_cases_are_written_in_any_month(which, request):
    engine = request.getfixturevalue(which)
    with Session(engine) as session:
        index = load_index(session)
        leaf = index.leaf_geoms[0].representative_point()
        made = {
            name: cases.create_case(
                session,
                index,
                cases.NewCase(
                    f"测试 {name}", leaf.x, leaf.y, source="hotline", external_ref=f"P-{name}", reported_at=at
                ),
                now=at,
            )
            for name, at in WHEN.items()
        }
        session.commit()
        ids = [c.id for c in made.values()]
        assert len(set(ids)) == len(ids)
        for name, case in made.items():
            got = cases.get_case(session, case.id)
            assert cases.utc(got.reported_at) == WHEN[name] and got.events
        if which == "pg":
            # no month partition yet: kept in the DEFAULT partition, then moved into the months made for them
            assert {_partition_of(session, i) for i in ids} == {"case_file_default"}
            # a month made ahead by the maintenance step, the others as the server's round finds them there
            assert case_partitions.ensure_months(session, WHEN["new month"], WHEN["new month"]) == 1
            assert case_partitions.adopt_default(session) == len(WHEN) - 1
            assert case_partitions.adopt_default(session) == 0
            session.commit()
            for name, case in made.items():
                assert _partition_of(session, case.id) == case_partitions.month_of(WHEN[name]).name
                assert cases.get_case(session, case.id).number == case.number
            assert session.scalar(sa.text("SELECT count(*) FROM case_file_default")) == 0
            # the registry still matches every case after the move
            assert (
                session.scalar(
                    sa.text(
                        "SELECT count(*) FROM case_registry r FULL JOIN case_file c ON c.id = r.id "
                        "WHERE c.id IS NULL OR r.id IS NULL OR c.reported_at <> r.reported_at OR c.number <> r.number"
                    )
                )
                == 0
            )
        # the list bounded to the far-future month finds it, on either database
        month = case_partitions.month_of(WHEN["far future"])
        total, page = queries.find_cases(session, since=month.since, until=month.until)
        assert total == 1 and page[0].id == made["far future"].id


def test_a_change_of_report_time_moves_the_case_and_keeps_its_history(pg):
    with Session(pg) as session:
        case = Case(
            number="MOVE-1", title="t", source="api", state="reported", reported_at=dt.datetime(2026, 8, 3, tzinfo=CST)
        )
        session.add(case)
        session.flush()
        session.add(CaseEvent(case_id=case.id, actor="t", action="note", at=case.reported_at))
        session.commit()
        assert _partition_of(session, case.id) == "case_file_p202608"
        case.reported_at = dt.datetime(2026, 2, 10, tzinfo=CST)  # an UPDATE moving the row to another partition
        session.commit()
        assert _partition_of(session, case.id) == "case_file_p202602"
        assert session.scalar(
            sa.text("SELECT reported_at FROM case_registry WHERE id = :i"), {"i": case.id}
        ) == dt.datetime(2026, 2, 10, tzinfo=CST)
        assert session.scalar(sa.select(sa.func.count()).where(CaseEvent.case_id == case.id)) == 1


# -- ids unique, references kept ------------------------------------------------------------------------------------


def _refused(engine, sql: str, **params) -> str:
    with engine.connect() as conn, pytest.raises(sa.exc.IntegrityError) as caught, conn.begin():
        conn.execute(sa.text(sql), params)
    return str(caught.value.orig)


INSERT = (
    "INSERT INTO case_file (id, number, title, source, state, reported_at, version, external_ref) "
    "VALUES (:id, :number, 't', :source, 'reported', :at, 1, :ref)"
)


def test_ids_numbers_and_tickets_stay_unique_across_partitions(pg):
    with Session(pg) as session:
        some = session.execute(
            sa.select(Case.id, Case.number, Case.source, Case.external_ref, Case.reported_at)
            .where(Case.external_ref.is_not(None))
            .limit(1)
        ).one()
        top = session.scalar(sa.select(sa.func.max(Case.id)))
    elsewhere = some.reported_at + dt.timedelta(days=100)  # another month's partition
    assert case_partitions.month_of(elsewhere).name != case_partitions.month_of(some.reported_at).name
    assert "case_registry_pkey" in _refused(pg, INSERT, id=some.id, number="U-1", source="api", at=elsewhere, ref=None)
    assert "uq_case_registry_number" in _refused(
        pg, INSERT, id=top + 1000, number=some.number, source="api", at=elsewhere, ref=None
    )
    assert "uq_case_registry_source_ref" in _refused(
        pg, INSERT, id=top + 1001, number="U-2", source=some.source, at=elsewhere, ref=some.external_ref
    )
    # ids drawn from the table's sequence keep coming (what the bulk writers read)
    with pg.begin() as conn:
        nxt = conn.scalar(sa.text("SELECT nextval(pg_get_serial_sequence('case_file', 'id'))"))
        assert nxt > top


def test_rows_referencing_a_case_cannot_name_a_missing_one(pg):
    with Session(pg) as session:
        top = session.scalar(sa.select(sa.func.max(Case.id)))
        with_events = session.scalar(sa.select(CaseEvent.case_id).limit(1))
    missing = top + 10_000
    for sql in (
        "INSERT INTO case_event (case_id, at, actor, action) VALUES (:id, now(), 't', 'note')",
        "WITH a AS (INSERT INTO account (username, role, password_hash, active, created_at) "
        "VALUES ('partition-test', 'admin', 'x', true, now()) RETURNING id) "
        "INSERT INTO notification (account_id, kind, case_id, text, at) SELECT id, 'urge', :id, 't', now() "
        "FROM a",
        "INSERT INTO idempotency_key (key, request_hash, case_id, created_at) VALUES ('k', 'h', :id, now())",
        "UPDATE case_file SET merged_into_id = :id WHERE id = (SELECT min(id) FROM case_file)",
    ):
        assert "foreign key" in _refused(pg, sql, id=missing)
    # a case its history still names cannot be deleted
    assert "case_event_case_id_fkey" in _refused(pg, "DELETE FROM case_file WHERE id = :id", id=with_events)
    # the registry follows its cases through the triggers alone (0012 dropped its key to case_file, whose check at
    # commit cost O(partitions) per case): after every write above, one row per case, with the case's values
    with pg.connect() as conn:
        assert not conn.scalar(sa.text("SELECT count(*) FROM pg_constraint WHERE conname = 'fk_case_registry_case'"))
        assert not conn.scalar(
            sa.text(
                "SELECT count(*) FROM case_registry r FULL JOIN case_file c ON c.id = r.id "
                "WHERE c.id IS NULL OR r.id IS NULL OR c.reported_at <> r.reported_at OR c.number <> r.number"
            )
        )
    # a case with no history is deleted with its registry row
    with pg.begin() as conn:
        conn.execute(sa.text(INSERT), {"id": missing, "number": "D-1", "source": "api", "at": JUNE[0], "ref": None})
    with pg.begin() as conn:
        conn.execute(sa.text("DELETE FROM case_file WHERE id = :id"), {"id": missing})
        assert conn.scalar(sa.text("SELECT count(*) FROM case_registry WHERE id = :id"), {"id": missing}) == 0


def test_copy_into_the_case_table_fills_the_registry(pg):
    with pg.connect() as conn:
        top = conn.scalar(sa.text("SELECT max(id) FROM case_file"))
        raw = conn.connection.dbapi_connection
        columns = "id, number, title, source, state, reported_at, version"
        with raw.cursor() as cursor, cursor.copy(f"COPY case_file ({columns}) FROM STDIN") as copy:
            for i in range(1, 51):
                at = dt.datetime(2026, 1 + i % 12, 3, tzinfo=CST)
                copy.write_row((top + 20_000 + i, f"CP-{i}", "t", "patrol", "reported", at, 1))
        raw.commit()
        assert conn.scalar(sa.text("SELECT count(*) FROM case_registry WHERE number LIKE 'CP-%'")) == 50
        conn.execute(sa.text("DELETE FROM case_file WHERE number LIKE 'CP-%'"))
        conn.commit()
        assert conn.scalar(sa.text("SELECT count(*) FROM case_registry WHERE number LIKE 'CP-%'")) == 0


# -- the migration --------------------------------------------------------------------------------------------------


def _alembic(engine, action: str, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(storage._MIGRATIONS))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        getattr(command, action)(config, revision)


def _fingerprint(engine) -> dict[str, tuple]:
    """Counts and checksums of every row of the case table and of the tables referencing cases."""
    out = {}
    with engine.connect() as conn:
        for table in ("case_file", "case_event", "attachment", "notification", "idempotency_key"):
            key = "key" if table == "idempotency_key" else "id"
            sql = f"SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t.{key}), '')) FROM {table} t"
            out[table] = tuple(conn.execute(sa.text(sql)).one())
    return out


def _shape(engine) -> dict:
    with engine.connect() as conn:
        return {
            "kind": conn.scalar(sa.text("SELECT relkind FROM pg_class WHERE relname = 'case_file'")),
            "indexes": set(conn.scalars(sa.text("SELECT indexname FROM pg_indexes WHERE tablename = 'case_file'"))),
            "references": set(
                conn.execute(
                    sa.text(
                        "SELECT conrelid::regclass::text, conname, confrelid::regclass::text FROM pg_constraint "
                        "WHERE contype = 'f' AND conparentid = 0 AND confrelid IN "
                        "('case_file'::regclass, to_regclass('case_registry'))"
                    )
                ).all()
            ),
            "registry": conn.scalar(sa.text("SELECT to_regclass('case_registry') IS NOT NULL")),
        }


def test_upgrade_from_0009_keeps_every_row_and_downgrade_gives_the_table_back():
    url, drop = _new_postgis_database(template=_postgis_template())
    engine = storage.make_engine(url)
    try:
        with engine.begin() as conn:  # a merge, so that the self-reference has a row to carry
            conn.execute(
                sa.text(
                    "UPDATE case_file SET merged_into_id = (SELECT max(id) FROM case_file) "
                    "WHERE id = (SELECT min(id) FROM case_file)"
                )
            )
        at_head = _fingerprint(engine)
        _alembic(engine, "downgrade", "0009")
        assert storage.schema_revision(engine) == "0009"
        before = _shape(engine)
        assert before["kind"] == "r" and not before["registry"]
        assert {"case_file_pkey", "case_file_number_key", "uq_case_file_source_ref"} <= before["indexes"]
        assert {(t, n, f) for t, n, f in before["references"]} >= {
            ("case_event", "case_event_case_id_fkey", "case_file"),
            ("case_file", "fk_case_file_merged_into", "case_file"),
        }
        assert _fingerprint(engine) == at_head
        with engine.begin() as conn:  # rows written at 0009 are carried up too
            conn.execute(
                sa.text(
                    "INSERT INTO case_file (number, title, source, state, reported_at, version) "
                    "VALUES ('M-1', 't', 'api', 'reported', '2019-07-01T00:00:00+08:00', 1)"
                )
            )
        at_0009 = _fingerprint(engine)
        assert at_0009["case_file"][0] == at_head["case_file"][0] + 1
        storage.migrate(engine)
        after = _shape(engine)
        assert after["kind"] == "p" and after["registry"]
        assert _fingerprint(engine) == at_0009
        assert before["indexes"] - {"case_file_number_key", "uq_case_file_source_ref"} <= after["indexes"]
        # the same references (to case_registry now); the registry's own key to case_file is gone from 0012 on
        assert {(t, n) for t, n, _ in after["references"]} == {(t, n) for t, n, _ in before["references"]}
        with engine.connect() as conn:
            assert (
                conn.scalar(sa.text("SELECT tableoid::regclass::text FROM case_file WHERE number = 'M-1'"))
                == "case_file_p201907"
            )
            assert conn.scalar(sa.text("SELECT count(*) FROM case_registry")) == at_0009["case_file"][0]
        # and down again: the same rows in one table
        _alembic(engine, "downgrade", "0009")
        assert _shape(engine) == before
        assert _fingerprint(engine) == at_0009
        storage.migrate(engine)
    finally:
        engine.dispose()
        drop()


# -- the same answers on both databases -----------------------------------------------------------------------------


def test_measures_and_lists_are_the_same_on_both_databases(pg, lite):
    """The small demo on SpatiaLite and on partitioned PostGIS: a month's measures per grid, a district's series,
    and a date-bounded list page by page. (Run before the tests above add cases? No: each database here is its
    module's own copy, and the cases added above lie outside the periods compared.)"""
    answers = {}
    for name, engine in (("pg", pg), ("lite", lite)):
        with Session(engine) as session:
            _, table = measures.measures(session, "grid", since=JUNE[0], until=JUNE[1])
            series = measures.area_series(session, "530111", months=6, until=JUNE[1])
            pages = [
                [
                    (c.number, c.state, c.grid_code)
                    for c in queries.find_cases(
                        session, since=dt.datetime(2026, 3, 1, tzinfo=CST), until=JUNE[1], limit=20, offset=offset
                    )[1]
                ]
                for offset in (0, 20, 60)
            ]
            answers[name] = (measures.to_records(table), series, pages)
    assert answers["pg"][2] == answers["lite"][2] and answers["pg"][2][2]
    assert answers["pg"][1] == answers["lite"][1]
    assert answers["pg"][0] == answers["lite"][0]
