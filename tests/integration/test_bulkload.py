"""Bulk loads with the upkeep deferred (gridmap.store.bulkload), on both databases: the province's cases written into
empty case tables in one transaction, with their indexes, keys and triggers made again at the end, are the same
rows as the transaction-per-chunk path with the upkeep row by row writes; the schema afterwards is the one the
migrations made (every index, key and trigger, by name and definition, keys validated); the registry (PostGIS) and
the R*Tree (SpatiaLite) hold every case, `case_activity` each case's last change; a failure leaves neither rows nor
a missing index; tables with rows are left alone."""

from __future__ import annotations

import datetime as dt
import hashlib

import numpy as np
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from gridmap.demo import province_cases
from gridmap.demo.province import AREA_TABLES, ProvinceScale, Territory, build_province, load_province
from gridmap.demo.province_write import write_columns
from gridmap.store import bulkload
from gridmap.store import engine as storage
from gridmap.store.tables import Case, Generation, PartyOrgArea, StaffArea
from tests.conftest import DIALECTS, _new_postgis_database

SCALE = ProvinceScale(districts=1, microgrids=600, cases=0)
SEED = 11
TODAY = dt.date(2026, 11, 20)
CASES = 2_500  # in chunks of 1,000: three chunks, the last short


def _database(dialect: str, tmp_path_factory: pytest.TempPathFactory, label: str) -> tuple[str, object]:
    if dialect == "spatialite":
        return f"sqlite:///{tmp_path_factory.mktemp(label) / 'bulk.sqlite'}", None
    return _new_postgis_database()


def _areas(url: str) -> sa.Engine:
    engine = storage.make_engine(url)
    storage.migrate(engine)
    load_province(storage.make_sessionmaker(engine), SCALE, seed=SEED, today=TODAY)
    return engine


def _territory(engine: sa.Engine) -> tuple[Territory, int]:
    province = build_province(SCALE, SEED)
    with engine.connect() as conn:
        generation = conn.scalar(sa.select(Generation.id).where(Generation.status == "active"))
        branches = dict(conn.execute(sa.select(PartyOrgArea.area_code, PartyOrgArea.party_org_id)).all())
        workers = dict(
            conn.execute(
                sa.select(StaffArea.area_code, StaffArea.staff_id).where(StaffArea.role == "fulltime_worker")
            ).all()
        )
    grids = province.levels["grid"].codes
    return Territory(province, {}, np.array([branches[g] for g in grids]), np.array([workers[g] for g in grids])), int(
        generation
    )


CASE_TABLES = ("case_file", "case_event", "case_registry")


def schema(engine: sa.Engine, names: tuple[str, ...] = CASE_TABLES) -> list[tuple[object, ...]]:
    """Every index, key and trigger of the tables named (and of case_file's partitions) as the catalogue states
    them."""
    listed = ", ".join(f"'{n}'" for n in names)
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            return [
                tuple(r)
                for r in conn.exec_driver_sql(
                    f"SELECT type, name, tbl_name, sql FROM sqlite_master WHERE (tbl_name IN ({listed}) "
                    f"OR tbl_name IN (SELECT 'idx_' || n || '_geom' FROM (SELECT name AS n FROM sqlite_master "
                    f"WHERE name IN ({listed})))) AND type <> 'table' ORDER BY type, name"
                )
            ]
        tables = (
            f"SELECT c.oid FROM pg_class c WHERE c.relname IN ({listed}) AND c.relnamespace = 'public'::regnamespace"
        )
        if "case_file" in names:
            tables += " UNION SELECT inhrelid FROM pg_inherits WHERE inhparent = 'case_file'::regclass"
        indexes = conn.exec_driver_sql(
            "SELECT 'index', i.indexrelid::regclass::text, i.indrelid::regclass::text, pg_get_indexdef(i.indexrelid), "
            f"i.indisvalid FROM pg_index i WHERE i.indrelid IN ({tables})"
        ).all()
        keys = conn.exec_driver_sql(
            "SELECT 'constraint', conname, conrelid::regclass::text, pg_get_constraintdef(oid), convalidated "
            f"FROM pg_constraint WHERE conrelid IN ({tables})"
        ).all()
        triggers = conn.exec_driver_sql(
            "SELECT 'trigger', tgname, tgrelid::regclass::text, pg_get_triggerdef(oid), tgenabled::text "
            f"FROM pg_trigger WHERE tgrelid IN ({tables}) AND NOT tgisinternal"
        ).all()
        return sorted(tuple(r) for r in [*indexes, *keys, *triggers])


def rows_digest(engine: sa.Engine) -> str:
    """Every column of every case and history row, in id order."""
    digest = hashlib.sha256()
    with engine.connect() as conn:
        for table in ("case_file", "case_event"):
            columns = [c.name for c in Case.metadata.tables[table].columns if c.name != "geom"]
            geom = ", ST_AsBinary(geom)" if table == "case_file" else ""
            for row in conn.exec_driver_sql(f"SELECT {', '.join(columns)}{geom} FROM {table} ORDER BY id"):
                digest.update(repr(tuple(bytes(v) if isinstance(v, memoryview) else v for v in row)).encode())
    return digest.hexdigest()


@pytest.fixture(scope="module", params=DIALECTS)
def loaded(request, tmp_path_factory):
    """The same areas twice: cases by the bulk path into one, by the per-chunk path into the other; the schema of
    the first before its cases."""
    drops = []
    engines = []
    for label in ("bulk", "chunks"):
        url, drop = _database(request.param, tmp_path_factory, label)
        if drop is not None:
            drops.append(drop)
        engines.append(_areas(url))
    bulk_engine, chunk_engine = engines
    before = schema(bulk_engine)
    patch = pytest.MonkeyPatch()
    patch.setattr(province_cases, "CHUNK", 1_000)
    for engine, deferred in ((bulk_engine, True), (chunk_engine, False)):
        territory, generation = _territory(engine)
        made = province_cases.insert_province_cases(
            storage.make_sessionmaker(engine), territory, generation, CASES, TODAY, SEED, deferred_upkeep=deferred
        )
        assert made[0] == CASES
    patch.undo()
    yield bulk_engine, chunk_engine, before
    for engine in engines:
        engine.dispose()
    for drop in drops:
        drop()


def test_the_bulk_path_writes_the_rows_the_per_chunk_path_writes(loaded):
    bulk_engine, chunk_engine, _ = loaded
    with bulk_engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(Case)) == CASES
    assert rows_digest(bulk_engine) == rows_digest(chunk_engine)


def test_the_schema_afterwards_is_the_one_before(loaded):
    bulk_engine, chunk_engine, before = loaded
    after = schema(bulk_engine)
    assert after == before
    assert after == schema(chunk_engine)
    if bulk_engine.dialect.name == "postgresql":
        assert all(row[4] for row in after if row[0] in ("index", "constraint")), "an index or key left invalid"


def test_the_areas_tables_have_their_upkeep_back(loaded, tmp_path_factory):
    """load_province wrote the areas, people and places into a new database with their upkeep deferred: their
    indexes, keys, triggers (and R*Trees) are those of a freshly migrated database."""
    bulk_engine, _, _ = loaded
    dialect = "postgis" if bulk_engine.dialect.name == "postgresql" else "spatialite"
    url, drop = _database(dialect, tmp_path_factory, "fresh")
    fresh = storage.make_engine(url)
    try:
        storage.migrate(fresh)
        expected = schema(fresh, AREA_TABLES)
    finally:
        fresh.dispose()
        if drop is not None:
            drop()
    assert len(expected) > 10
    assert schema(bulk_engine, AREA_TABLES) == expected


def test_the_registry_or_the_rtree_holds_every_case(loaded):
    bulk_engine, _, _ = loaded
    with bulk_engine.connect() as conn:
        if bulk_engine.dialect.name == "postgresql":
            missing = conn.exec_driver_sql(
                "SELECT count(*) FROM (SELECT id, reported_at, number, source, external_ref FROM case_file "
                "EXCEPT SELECT id, reported_at, number, source, external_ref FROM case_registry) d"
            ).scalar()
            assert missing == 0
            assert conn.exec_driver_sql("SELECT count(*) FROM case_registry").scalar() == CASES
        else:
            boxes = conn.exec_driver_sql(
                "SELECT count(*) FROM case_file c JOIN idx_case_file_geom r ON r.pkid = c.rowid "
                "WHERE r.xmin <= ST_X(c.geom) AND r.xmax >= ST_X(c.geom) AND r.ymin <= ST_Y(c.geom) "
                "AND r.ymax >= ST_Y(c.geom)"
            ).scalar()
            assert boxes == CASES
            assert conn.exec_driver_sql("SELECT count(*) FROM idx_case_file_geom").scalar() == CASES


def test_each_case_last_change_is_kept_by_both_paths(loaded):
    """Migration 0015's `case_activity`: filled in one statement at the end of the bulk path (its trigger taken off
    for the load, and back: the schema test), kept row by row by the trigger on the per-chunk path; the same rows,
    each case's latest history time."""
    found = []
    for engine in loaded[:2]:
        with engine.connect() as conn:
            kept = conn.exec_driver_sql("SELECT case_id, last_event_at FROM case_activity ORDER BY case_id").all()
            latest = conn.exec_driver_sql(
                "SELECT case_id, max(at) FROM case_event GROUP BY case_id ORDER BY case_id"
            ).all()
        assert kept == latest
        assert len(kept) == CASES
        found.append(kept)
    assert found[0] == found[1]


@pytest.fixture(params=DIALECTS)
def empty(request, tmp_path_factory):
    url, drop = _database(request.param, tmp_path_factory, "empty")
    engine = storage.make_engine(url)
    storage.migrate(engine)
    yield engine
    engine.dispose()
    if drop is not None:
        drop()


def _two_cases(number: str) -> dict[str, object]:
    at = np.array(["2026-11-01T02:00:00", "2026-11-02T03:00:00"], dtype="datetime64[us]")
    return {
        "id": np.array([1, 2]),
        "number": [number, number],
        "title": ["a", "b"],
        "source": ["hotline", "hotline"],
        "state": ["reported", "reported"],
        "raw_crs": ["wgs84", "wgs84"],
        "version": np.array([1, 1]),
        "reported_at": at,
        "rework_count": np.zeros(2, int),
        "extension_count": np.zeros(2, int),
        "reopen_count": np.zeros(2, int),
        "bounce_count": np.zeros(2, int),
        "escalation_level": np.zeros(2, int),
    }


def test_a_duplicate_refused_at_the_end_leaves_no_row_and_every_index(empty):
    before = schema(empty)
    with (
        pytest.raises(sa.exc.IntegrityError),
        empty.begin() as conn,
        bulkload.deferred_upkeep(conn, province_cases.TABLES) as deferred,
    ):
        assert deferred
        write_columns(conn, Case.__table__, _two_cases("RX202611010000001"))
    assert schema(empty) == before
    with Session(empty) as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(Case)) == 0


def index_count(conn: sa.Connection) -> int:
    """The indexes of case_file as the open transaction sees them."""
    if conn.dialect.name == "sqlite":
        sql = "SELECT count(*) FROM sqlite_master WHERE tbl_name = 'case_file' AND type = 'index'"
    else:
        sql = "SELECT count(*) FROM pg_index WHERE indrelid = 'case_file'::regclass"
    return int(conn.exec_driver_sql(sql).scalar() or 0)


def test_a_failure_in_the_block_leaves_every_index(empty):
    before = schema(empty)
    with empty.connect() as conn:
        indexes = index_count(conn)
    with (
        pytest.raises(RuntimeError),
        empty.begin() as conn,
        bulkload.deferred_upkeep(conn, province_cases.TABLES) as deferred,
    ):
        assert deferred and index_count(conn) < indexes  # taken off inside the transaction
        raise RuntimeError("stop")
    assert schema(empty) == before


def test_tables_with_rows_keep_their_upkeep(empty):
    with empty.begin() as conn:
        write_columns(conn, Case.__table__, {**_two_cases("RX1"), "number": ["RX1", "RX2"]})
    before = schema(empty)
    with empty.connect() as conn:
        indexes = index_count(conn)
    with empty.begin() as conn, bulkload.deferred_upkeep(conn, province_cases.TABLES) as deferred:
        assert not deferred
        assert index_count(conn) == indexes
    assert schema(empty) == before


def test_sqlite_loads_in_rollback_journal_mode_and_goes_back_to_wal(tmp_path):
    """rollback_journal switches a SQLite file out of WAL for a load and back after; while another connection is
    reading the file it leaves the mode alone."""
    engine = storage.make_engine(f"sqlite:///{tmp_path / 'journal.sqlite'}")
    storage.migrate(engine)
    engine.dispose()
    with engine.connect() as conn, bulkload.rollback_journal(conn) as switched:
        assert switched
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "delete"
        conn.commit()
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    reader = engine.raw_connection()
    try:
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM area").fetchall()  # a read transaction open on the file
        with engine.connect() as conn, bulkload.rollback_journal(conn) as switched:
            assert not switched
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    finally:
        reader.rollback()
        reader.close()
    engine.dispose()


def test_the_loaded_sqlite_file_is_back_in_wal_mode(loaded):
    bulk_engine, _, _ = loaded
    if bulk_engine.dialect.name == "sqlite":
        with bulk_engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    else:
        with bulk_engine.connect() as conn:  # PostGIS: no journal to switch; the registry's trigger is back
            assert (
                conn.exec_driver_sql("SELECT count(*) FROM pg_trigger WHERE tgname = 'case_registry_insert'").scalar()
                == 1
            )
