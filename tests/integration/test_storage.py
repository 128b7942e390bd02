"""Storage on both databases: migrations, the loaded demo, and the SQL lookup agreeing with the in-memory one."""

import datetime as dt
from collections import Counter

import numpy as np
import pytest
import sqlalchemy as sa
from geoalchemy2.shape import to_shape

from gridmap.boundaries.areas import covering_leaf_codes, load_index
from gridmap.calendar import seed_days
from gridmap.demo.tiling import SMALL_SCALE
from gridmap.store import engine as storage
from gridmap.store.tables import Area, Case, CaseEvent, PartyOrg, PartyOrgArea, Place
from tests.conftest import DIALECTS, _new_postgis_database


def _head() -> str:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(storage._MIGRATIONS))
    return str(ScriptDirectory.from_config(config).get_current_head())


HEAD = _head()  # the newest migration (0010 when written: the case table partitioned on PostgreSQL)


def test_migrations_are_at_head_and_idempotent(engine):
    storage.migrate(engine)
    assert storage.schema_revision(engine) == HEAD


def test_the_connection_used_last_is_used_next(db_url):
    """The pool hands out the connection returned last (not the one idle longest), whose database caches a
    request's work warmed; an in-memory SQLite keeps its one connection."""
    engine = storage.make_engine(db_url)
    try:
        first, second = engine.connect(), engine.connect()
        a, b = first.connection.dbapi_connection, second.connection.dbapi_connection
        assert a is not b
        first.close()
        second.close()  # returned last
        with engine.connect() as again:
            assert again.connection.dbapi_connection is b
    finally:
        engine.dispose()
    memory = storage.make_engine("sqlite:///:memory:")
    with memory.connect() as conn:
        assert conn.execute(sa.text("SELECT 1")).scalar() == 1
    memory.dispose()


@pytest.mark.parametrize("dialect", DIALECTS)
def test_the_migrated_calendar_is_the_seed_calendar(dialect, tmp_path):
    """Migration 0002 carries its own copy of the holiday notices; the list in gridmap.calendar (what a calendar
    with no database uses) must say the same, so a new year's notice needs a migration as well as the list."""
    if dialect == "spatialite":
        url, drop = f"sqlite:///{tmp_path / 'empty.sqlite'}", None
    else:
        url, drop = _new_postgis_database()
    engine = storage.make_engine(url)
    try:
        storage.migrate(engine)
        with engine.connect() as conn:
            rows = [
                (r.day, r.kind, r.name)
                for r in conn.execute(sa.text("SELECT day, kind, name FROM calendar_day ORDER BY day"))
            ]
    finally:
        engine.dispose()
        if drop:
            drop()
    rows = [(d if isinstance(d, dt.date) else dt.date.fromisoformat(str(d)[:10]), k, n) for d, k, n in rows]
    assert rows == seed_days()


def test_demo_rows_keep_the_promises(session):
    levels = Counter(session.scalars(sa.select(Area.level)))
    assert levels == {
        "district": 1,
        "subdistrict": SMALL_SCALE.subdistricts,
        "community": SMALL_SCALE.communities,
        "grid": SMALL_SCALE.grids,
        "microgrid": SMALL_SCALE.microgrids,
    }
    codes = list(session.scalars(sa.select(Area.code)))
    assert len(codes) == len(set(codes))
    district = session.scalars(sa.select(Area).where(Area.level == "district")).one()
    for level in ("subdistrict", "community", "grid", "microgrid"):
        assert session.scalar(sa.select(sa.func.sum(Area.households)).where(Area.level == level)) == district.households
    grid_codes = set(session.scalars(sa.select(Area.code).where(Area.level == "grid")))
    branch_codes = list(
        session.scalars(sa.select(PartyOrgArea.area_code).join(PartyOrg).where(PartyOrg.kind == "grid_branch"))
    )
    assert sorted(branch_codes) == sorted(grid_codes), "one party branch per grid"
    assert (
        session.scalar(sa.select(sa.func.count()).where(Place.kind == "service_centre")) == SMALL_SCALE.service_centres
    )
    assert session.scalar(sa.select(sa.func.count()).select_from(Case)) >= SMALL_SCALE.cases
    assert session.scalar(sa.select(sa.func.count()).select_from(CaseEvent)) > SMALL_SCALE.cases


def test_stored_children_lie_inside_their_parents(session):
    rows = session.execute(sa.select(Area.id, Area.parent_id, Area.geom)).all()
    geom = {r.id: to_shape(r.geom) for r in rows}
    for r in rows:
        if r.parent_id:
            assert geom[r.parent_id].buffer(1e-9).covers(geom[r.id])


def _probe_points(index, n_random: int, rng):
    bounds = np.array([g.bounds for g in index.leaf_geoms])
    minx, miny, maxx, maxy = bounds[:, 0].min(), bounds[:, 1].min(), bounds[:, 2].max(), bounds[:, 3].max()
    pad = 0.01
    points = [
        ("random", x, y)
        for x, y in zip(rng.uniform(minx - pad, maxx + pad, n_random), rng.uniform(miny - pad, maxy + pad, n_random))
    ]
    for geom in index.leaf_geoms[:12]:
        for x, y in list(geom.geoms[0].exterior.coords)[:8]:
            points.append(("vertex", x, y))
    return points


def test_sql_lookup_agrees_with_memory_for_10000_points(session):
    index = load_index(session)
    points = _probe_points(index, 10_000, np.random.default_rng(5))
    mismatches = []
    for kind, x, y in points:
        memory = index.leaf_codes_at(x, y)
        sql = covering_leaf_codes(session, x, y, index.generation_id)
        if memory != sql:
            mismatches.append((kind, x, y, memory, sql))
    assert not mismatches, mismatches[:5]
    inside = sum(1 for _, x, y in points if index.leaf_codes_at(x, y))
    assert inside > 1000, "the probe must hit the grids, not only the space around them"
    assert any(len(index.leaf_codes_at(x, y)) > 1 for kind, x, y in points if kind == "vertex")


def test_spatialite_file_is_durable_wal_with_full_sync(tmp_path):
    engine = storage.make_engine(f"sqlite:///{tmp_path / 'durable.sqlite'}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
        # read through memory mapping (the OS's cache, shared), not copied into each connection's page cache
        assert conn.exec_driver_sql("PRAGMA mmap_size").scalar() == storage.SQLITE_MMAP_BYTES > 2**30
    engine.dispose()


@pytest.mark.parametrize("dialect", ["spatialite", "postgis"])
def test_upgrading_a_0001_database_keeps_its_cases(dialect, tmp_path):
    """A database made before the case loop (revision 0001) upgrades in place: its cases keep their rows and get
    zero counters, and the working calendar is seeded."""
    from tests.conftest import empty_database

    url, drop = empty_database(dialect, tmp_path)
    engine = storage.make_engine(url)
    try:
        storage.migrate(engine, "0001")
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO case_file (id, number, title, source, state, reported_at, version) "
                    "VALUES (1, '202601010000001', '旧案卷', 'hotline', 'accepted', :t, 3)"
                ),
                {"t": "2026-01-01 08:00:00+00:00"},
            )
        storage.migrate(engine)
        assert storage.schema_revision(engine) == HEAD
        with engine.connect() as conn:
            row = conn.execute(
                sa.text("SELECT title, version, escalation_level, rework_count, pending FROM case_file WHERE id = 1")
            ).one()
            assert tuple(row) == ("旧案卷", 3, 0, 0, None)
            holidays = conn.execute(sa.text("SELECT count(*) FROM calendar_day WHERE kind = 'holiday'")).scalar()
            assert holidays == 33 + 28  # the 2026 and 2025 notices
            assert conn.execute(sa.text("SELECT external_ref, merged_into_id FROM case_file")).one() == (None, None)
        with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:  # one case per ticket of a source
            for i in (2, 3):
                conn.execute(
                    sa.text(
                        "INSERT INTO case_file (id, number, title, source, state, reported_at, "
                        "version, external_ref) VALUES (:i, :n, 't', 'hotline', 'reported', :t, 1, "
                        "'GD2026-1')"
                    ),
                    {"i": i, "n": f"n{i}", "t": "2026-01-02 08:00:00+00:00"},
                )
    finally:
        engine.dispose()
        if drop:
            drop()


def test_postgis_connections_run_without_jit_and_keep_the_urls_options(postgis_url):
    """The app's PostgreSQL connections have JIT compilation off (it cost seconds a query on the province's case
    lists) and plan each execution for its own values (a generic plan locks every month partition of the case
    table); options the URL gives are kept, and a setting the URL names itself wins."""
    from urllib.parse import quote

    def settings(url: str) -> tuple[str, str, str]:
        engine = storage.make_engine(url)
        try:
            with engine.connect() as conn:
                return (
                    conn.execute(sa.text("SHOW jit")).scalar_one(),
                    conn.execute(sa.text("SHOW default_transaction_read_only")).scalar_one(),
                    conn.execute(sa.text("SHOW plan_cache_mode")).scalar_one(),
                )
        finally:
            engine.dispose()

    sep = "&" if "?" in postgis_url else "?"
    assert settings(postgis_url) == ("off", "off", "force_custom_plan")
    read_only = f"{postgis_url}{sep}options={quote('-c default_transaction_read_only=on')}"
    assert settings(read_only) == ("off", "on", "force_custom_plan")
    assert settings(f"{postgis_url}{sep}options={quote('-c plan_cache_mode=auto')}") == ("off", "off", "auto")
    assert settings(f"{postgis_url}{sep}options={quote('-c jit=on')}") == ("on", "off", "force_custom_plan")
