"""Which cases an account sees (`policy.case_condition`, its Python twin `sees_case`), on both databases.

An area's scope is compared with a case's code at the area's own level. For a code of its level's shape that is an
equality, not a prefix `LIKE`: PostgreSQL serves a prefix `LIKE` from a B-tree only under the C collation, so a
district dispatcher's counted list read every case (2–10 s at 10 M cases). Shown here:

* the equality admits exactly the cases the prefix did, for every area of the demo at every level, in SQL and in
  Python, for a case in no grid too;
* except a micro-grid whose code starts with a neighbour's (micro-grid codes widen from 2 to 3 digits: `…10` and
  `…100`), which the prefix wrongly let in and the equality does not — in SQL, in Python and over HTTP;
* a scope whose code is not of its level's shape (a gateway's odd code) is still compared by prefix, and so is a
  district on SQLite in a page's statement, so that SQLite walks the page's order (`gridmap.store.dialect.code_is`);
* the district's and the sub-district's counts are served by their indexes (the plans say so), on SQLite too for
  the counts that the list and the console make (migration 0022): there the district is sought by equality for a
  count, while a page keeps the prefix and walks its order's index.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from gridmap.access import accounts, policy
from gridmap.cases import queries
from gridmap.demo.load import load_demo
from gridmap.store import engine as storage
from gridmap.store.tables import Area, Case
from tests.conftest import TODAY, api_client, empty_database
from tests.integration.test_foreign_key_indexes import _alembic

LEVELS = ("district", "subdistrict", "community", "grid", "microgrid")


def _reader(*scopes: policy.Scope, role: str = "dispatcher") -> policy.Principal:
    return policy.Principal(key="t", name="t", role=role, scopes=scopes, via="gateway")


def _by_prefix(case: Case, scope: policy.Scope) -> bool:
    """The old rule: the case's code at the scope's level starts with the scope's code."""
    value = getattr(case, policy.LEVEL_COLUMNS[scope.level])
    return bool(value) and value.startswith(scope.code)


def _seen(session, principal: policy.Principal) -> set[int]:
    return set(session.scalars(sa.select(Case.id).where(policy.case_condition(principal, Case))))


def test_an_area_sees_the_same_cases_by_equality_as_by_prefix(session):
    cases = list(session.scalars(sa.select(Case)))
    areas = session.execute(sa.select(Area.code, Area.level).distinct()).all()
    assert {level for _, level in areas} == set(LEVELS)
    assert any(c.grid_code is None and c.district_code for c in cases)  # a case in no grid still has its district
    checked = 0
    for code, level in areas:
        scope = policy.Scope(code, level)
        assert policy._own_level(scope)
        principal = _reader(scope)
        expected = {c.id for c in cases if _by_prefix(c, scope)}
        assert _seen(session, principal) == expected, (code, level)
        assert {c.id for c in cases if policy.sees_case(principal, c)} == expected, (code, level)
        checked += bool(expected)
    assert checked > 30
    # the SQL compares by equality, which the indexes serve — except the district's on SQLite, written as the prefix
    # for a page (SQLite took the equality for selective and sorted a whole district for a page: `dialect.code_is`;
    # its counts seek the district by equality: `dialect.seeking`, below)
    for code, level in areas:
        condition = policy.case_condition(_reader(policy.Scope(code, level)), Case)
        sql = str(condition.compile(session.bind)).upper()
        prefix = level == "district" and session.bind.dialect.name == "sqlite"
        assert ("LIKE" in sql) == prefix and (prefix or " = " in sql), (level, sql)


def _neighbours(session) -> tuple[Case, Case, str, str]:
    """Two cases given micro-grids `…10` and `…100` of one grid (both shapes the code register can give)."""
    first, second = session.scalars(sa.select(Case).where(Case.grid_code.is_not(None)).order_by(Case.id).limit(2))
    grid = first.grid_code
    short, long = f"{grid}10", f"{grid}100"
    for case, code in ((first, short), (second, long)):
        case.grid_code, case.microgrid_code = grid, code
        case.community_code, case.subdistrict_code, case.district_code = grid[:12], grid[:9], grid[:6]
    session.flush()
    return first, second, short, long


def test_a_micro_grid_does_not_see_its_longer_neighbour(session):
    first, second, short, long = _neighbours(session)
    for code, mine, theirs in ((short, first, second), (long, second, first)):
        principal = _reader(policy.Scope(code, "microgrid"))
        seen = _seen(session, principal)
        assert mine.id in seen and theirs.id not in seen
        assert policy.sees_case(principal, mine) and not policy.sees_case(principal, theirs)
        assert policy.within(principal, code) and not policy.within(principal, theirs.microgrid_code)
    assert _by_prefix(second, policy.Scope(short, "microgrid"))  # what the old rule let in
    # the grid above both still sees both
    grid = _reader(policy.Scope(first.grid_code, "grid"))
    assert {first.id, second.id} <= _seen(session, grid)
    assert policy.within(grid, short) and policy.within(grid, long)


def test_a_code_not_of_its_levels_shape_is_still_a_prefix(session):
    case = session.scalars(sa.select(Case).where(Case.microgrid_code.is_not(None)).limit(1)).one()
    prefix = case.microgrid_code[:4]
    scope = policy.Scope(prefix, accounts.level_of_code(prefix))  # a gateway's X-Areas: the level by length
    assert not policy._own_level(scope)
    principal = _reader(scope)
    expected = set(session.scalars(sa.select(Case.id).where(Case.microgrid_code.like(f"{prefix}%"))))
    assert case.id in expected and _seen(session, principal) == expected
    assert "LIKE" in str(policy.case_condition(principal, Case).compile()).upper()


def _plan(session, condition: sa.ColumnElement[bool]) -> str:
    query = sa.select(sa.func.count()).select_from(Case).where(condition)
    sql = str(query.compile(session.bind, compile_kwargs={"literal_binds": True}))
    if session.bind.dialect.name == "postgresql":
        session.execute(sa.text("SET LOCAL enable_seqscan = off"))  # the small demo would be scanned whole anyway
        return "\n".join(session.scalars(sa.text(f"EXPLAIN {sql}")))
    return "\n".join(str(r[-1]) for r in session.execute(sa.text(f"EXPLAIN QUERY PLAN {sql}")))


def test_the_counts_of_a_district_and_a_sub_district_use_their_indexes(session):
    case = session.scalars(sa.select(Case).where(Case.subdistrict_code.is_not(None)).limit(1)).one()
    plan = _plan(session, policy.case_condition(_reader(policy.Scope(case.subdistrict_code, "subdistrict")), Case))
    if session.bind.dialect.name == "sqlite":  # (SQLite has no district index: see migration 0015)
        assert "ix_case_file_subdistrict_reported (subdistrict_code=?)" in plan, plan
        return
    # every month's partition by its own copy of the index (no scan, no filter by LIKE)
    assert f"Index Cond: (subdistrict_code = '{case.subdistrict_code}'::text)" in plan, plan
    assert "subdistrict_code_reported_at_idx" in plan and "Seq Scan" not in plan and "Filter" not in plan, plan
    plan = _plan(session, policy.case_condition(_reader(policy.Scope(case.district_code, "district")), Case))
    assert f"Index Cond: (district_code = '{case.district_code}'::text)" in plan, plan
    # by one of the district's indexes: by report time (0015) or by state and deadline (0020), both led by it
    district_index = "district_code_reported_at_idx" in plan or "district_code_state_due_at_idx" in plan
    assert district_index and "Seq Scan" not in plan and "Filter" not in plan, plan


def _statements(engine, work):
    """What `work()` returns, and the statements it sent (SQL text, parameters)."""
    sent: list[tuple[str, object]] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        sent.append((statement, parameters))

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        return work(), sent
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)


def test_a_district_dispatchers_counts_seek_the_district_and_its_pages_walk_their_order(engine):
    now = dt.datetime(2026, 11, 21, 4, tzinfo=dt.UTC)
    with sa.orm.Session(engine) as session:
        district = session.scalar(sa.select(Case.district_code).where(Case.district_code.is_not(None)).limit(1))
        who = _reader(policy.Scope(district, "district"))
        mine = Case.district_code.startswith(district)
        page, sent = _statements(
            engine, lambda: queries.page_cases(session, queries.CaseFilter(), limit=5, now=now, who=who)
        )
        assert page.total == session.scalar(sa.select(sa.func.count()).select_from(Case).where(mine)) > 5
        counted = [s for s in sent if "count(*)" in s[0]]
        listed = [s for s in sent if "count(*)" not in s[0] and "FROM case_file" in s[0]]
        assert len(counted) == 1 and listed
        queues, queue_sent = _statements(engine, lambda: queries.queue_counts(session, now=now, who=who))
        expected = {
            name: session.scalar(
                sa.select(sa.func.count()).select_from(Case).where(queries.queue_condition(name, now), mine)
            )
            for name in queries.QUEUES
        }
        assert {q["name"]: q["count"] for q in queues} == expected and sum(expected.values()) > 0
        assert len(queue_sent) == len(queries.QUEUES)
        if engine.dialect.name != "sqlite":  # (PostgreSQL compares by equality everywhere: the test above)
            return
        for statement, parameters in counted + queue_sent:
            assert "district_code = ?" in statement and "LIKE" not in statement, statement
            plan = [r[-1] for r in session.connection().exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)]
            # a district-led index: 0022's, or for a count of all its cases 0024's map index (both cover a count)
            assert any(
                f"INDEX {name} (district_code=?" in step
                for step in plan
                for name in ("ix_case_file_district_state_due", "ix_case_file_district_map")
            ), (statement, plan)
            assert not any(step.startswith("SCAN case_file") for step in plan), plan
        # the page itself: the prefix, which SQLite takes for unselective (it walks the report time's index)
        assert all("district_code LIKE" in statement for statement, _ in listed[:1]), listed


def test_an_existing_spatialite_database_gets_the_district_index_by_the_upgrade(tmp_path):
    """A SpatiaLite file at 0021 with cases and statistics: 0022 makes the district's index and describes it to the
    planner; the district's counts then seek it; a downgrade takes it away and an upgrade makes it again."""
    _made_by_the_upgrade(
        tmp_path,
        "0021",
        "ix_case_file_district_state_due",
        test_a_district_dispatchers_counts_seek_the_district_and_its_pages_walk_their_order,
    )


def _made_by_the_upgrade(tmp_path, before: str, name: str, check) -> None:
    """A SpatiaLite file at `before` with the small demo and statistics, without index `name`; the upgrade makes it
    and describes it to the planner (`sqlite_stat1`), then `check(engine)`; a downgrade to `before` takes it away;
    the upgrade again, then `check(engine)`."""
    url, _ = empty_database("spatialite", tmp_path)
    engine = storage.make_engine(url)

    def indexes() -> set[str]:
        with engine.connect() as conn:
            return {ix["name"] for ix in sa.inspect(conn).get_indexes("case_file")}

    try:
        storage.migrate(engine, before)
        with storage.session_scope(storage.make_sessionmaker(engine)) as session:
            load_demo(session, "530111", small=True, seed=11, today=TODAY)
        assert name not in indexes()
        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
        storage.migrate(engine)
        with engine.connect() as conn:
            stat = list(conn.scalars(sa.text("SELECT stat FROM sqlite_stat1 WHERE idx = :n"), {"n": name}))
        assert stat and stat[0].startswith(str(_count(engine)))
        check(engine)
        _alembic(engine, "downgrade", before)
        assert name not in indexes()
        storage.migrate(engine)
        check(engine)
    finally:
        engine.dispose()


def test_a_district_dispatchers_map_reads_the_district_from_its_map_index(engine):
    """The overview's first screen for a district dispatcher: the month's clusters and the all-or-none count of its
    points. On SQLite both compare the district by equality and read its period as one range of
    `ix_case_file_district_map` (migration 0024), from the index alone; on PostgreSQL (equality everywhere) no
    such index. The answers equal those counted by the district's prefix."""
    from gridmap.views import mapdata

    now = dt.datetime(2026, 11, 21, 4, tzinfo=dt.UTC)
    with sa.orm.Session(engine) as session:
        district = session.scalar(sa.select(Case.district_code).where(Case.district_code.is_not(None)).limit(1))
        lon0, lat0, lon1, lat1 = session.execute(
            sa.select(sa.func.min(Case.lon), sa.func.min(Case.lat), sa.func.max(Case.lon), sa.func.max(Case.lat))
        ).one()
        since = dt.datetime(2026, 8, 1, tzinfo=dt.UTC)
        flt = mapdata.CaseFilter(since=since, until=now, bbox=(lon0, lat0, lon1, lat1))
        who = _reader(policy.Scope(district, "district"))
        expected = session.scalar(
            sa.select(sa.func.count())
            .select_from(Case)
            .where(
                Case.district_code.startswith(district),
                Case.lon.is_not(None),
                Case.reported_at >= since,
                Case.reported_at < now,
            )
        )
        assert expected > 10
        clusters, sent = _statements(engine, lambda: mapdata.case_clusters(session, flt, 12, now=now, who=who))
        assert clusters["total"] == expected
        points, counted = _statements(
            engine, lambda: mapdata.case_points(session, flt, now=now, who=who, limit=10, all_or_none=True)
        )
        assert points["truncated"] and not points["rows"]
        points = mapdata.case_points(session, flt, now=now, who=who, limit=expected, all_or_none=True)
        assert points["count"] == expected and not points["truncated"]
        names = {ix["name"] for ix in sa.inspect(session.connection()).get_indexes("case_file")}
        if engine.dialect.name != "sqlite":
            assert "ix_case_file_district_map" not in names
            return
        grouped = [s for s in sent if "GROUP BY" in s[0]]
        assert len(grouped) == 1 and len(counted) == 1, (grouped, counted)
        for statement, parameters in grouped + counted:
            assert "district_code = ?" in statement and "LIKE" not in statement, statement
            plan = [r[-1] for r in session.connection().exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)]
            assert (
                "SEARCH case_file USING COVERING INDEX ix_case_file_district_map "
                "(district_code=? AND reported_at>? AND reported_at<?)"
            ) in plan, (statement, plan)


def test_an_existing_spatialite_database_gets_the_district_map_index_by_the_upgrade(tmp_path):
    """A SpatiaLite file at 0023 with cases and statistics: 0024 makes the district's map index and describes it to
    the planner; the district's map then reads it; a downgrade takes it away and an upgrade makes it again."""
    _made_by_the_upgrade(
        tmp_path,
        "0023",
        "ix_case_file_district_map",
        test_a_district_dispatchers_map_reads_the_district_from_its_map_index,
    )


def _count(engine) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(sa.select(sa.func.count()).select_from(Case)))


def test_over_http_a_micro_grid_worker_does_not_see_the_neighbour(settings, engine):
    from sqlalchemy.orm import Session

    with Session(engine) as s:
        first, second, short, long = _neighbours(s)
        ids = first.id, second.id
        s.commit()
    with api_client(settings, role="viewer", **{"X-Areas": short}) as client:
        assert client.get(f"/api/v1/cases/{ids[0]}").status_code == 200
        r = client.get(f"/api/v1/cases/{ids[1]}")
        assert r.status_code == 404, r.text
        listed = client.get("/api/v1/cases", params={"limit": 200})
        assert listed.status_code == 200, listed.text
        found = {c["id"] for c in listed.json()["items"]}
        assert ids[0] in found and ids[1] not in found
