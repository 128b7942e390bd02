"""The migrations make the schema the models describe, on both databases (what `alembic check` would say).

A fresh, empty database is upgraded to head with the project's migrations (`gridmap.store.engine.migrate`) and compared
with the SQLAlchemy metadata (`gridmap.store.tables.Base.metadata`, which also holds `runtime_version` from
`gridmap.runtime`) by Alembic's autogenerate comparison: any table, column, type, nullability, index, unique or
foreign key that one has and the other has not fails the test. What the spatial extensions add themselves
(SpatiaLite's metadata tables and views, PostGIS's `spatial_ref_sys`, the spatial indexes GeoAlchemy2 manages, the
partitions of a partitioned table) are not the models' business and are left out by name; any other table the
models do not have is a difference.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from geoalchemy2 import Geometry, alembic_helpers

import gridmap.runtime  # noqa: F401  (defines runtime_version on Base.metadata)
from gridmap.store import engine as storage
from gridmap.store.tables import Base
from tests.conftest import DIALECTS, _new_postgis_database

# Objects that differ on purpose, each with its reason: left out of the comparison, their presence checked below.
KNOWN_OBJECTS: dict[tuple[str, str], str] = {
    # (kind of object, name): reason
    ("index", "ix_case_event_rating"): (
        "an index on an expression written per database (the rating cast of gridmap.cases.measures.RATING_SQL), "
        "made by migration 0009 only"
    ),
    ("index", "ix_case_file_closed_month"): (
        "0019, PostgreSQL only: an index on an expression (the China-time month of closure, then the grid code) for "
        "a series' hours, made by the migration only"
    ),
}
# Differences of one database that are there on purpose, as `_describe` writes them, each with its reason; each must
# still be found (a stale entry fails), everything else fails.
_CASE_REGISTRY = (
    "0010: on PostgreSQL case_file is partitioned by month, and a partitioned table cannot hold a key or unique "
    "constraint without the partition key: case ids, numbers, tickets and every reference to a case live in "
    "case_registry (the models describe the table as SQLite has it)"
)
KNOWN_DIFFERENCES: dict[str, dict[str, str]] = {
    "sqlite": {
        "add_index ix_case_file_grid_reported on case_file": (
            "0019: made on PostgreSQL only, for an area's year on a province; SQLite's one-district series reads "
            "0009's month ranges"
        ),
        "add_index ix_case_file_district_reported on case_file": (
            "0015: made on PostgreSQL only; SQLite, without histograms, took it over the state index for a "
            "district's queues (a few hundred cases among ~600,000)"
        ),
    },
    "postgresql": {
        "remove_table case_registry": _CASE_REGISTRY,
        "remove_fk attachment(case_id) -> case_registry": _CASE_REGISTRY,
        "add_fk attachment(case_id) -> case_file": _CASE_REGISTRY,
        "remove_fk case_event(case_id) -> case_registry": _CASE_REGISTRY,
        "add_fk case_event(case_id) -> case_file": _CASE_REGISTRY,
        "remove_fk idempotency_key(case_id) -> case_registry": _CASE_REGISTRY,
        "add_fk idempotency_key(case_id) -> case_file": _CASE_REGISTRY,
        "remove_fk notification(case_id) -> case_registry": _CASE_REGISTRY,
        "add_fk notification(case_id) -> case_file": _CASE_REGISTRY,
        "remove_fk case_file(merged_into_id) -> case_registry": _CASE_REGISTRY,
        "add_fk case_file(merged_into_id) -> case_file": _CASE_REGISTRY,
        "remove_index ix_case_file_number on case_file": _CASE_REGISTRY,
        "remove_index ix_case_file_source_ref on case_file": _CASE_REGISTRY,
        "add_index uq_case_file_source_ref on case_file": _CASE_REGISTRY,
        "add_constraint UniqueConstraint case_file(number)": _CASE_REGISTRY,
        "add_index ix_case_file_reported_map on case_file": (
            "0016: the index covering the map's clusters is SQLite's only (the model says so with ddl_if); "
            "PostgreSQL reads the period's month partitions whole"
        ),
        "add_index ix_case_file_grid_closed on case_file": (
            "0023: SQLite's only (ddl_if); PostgreSQL reads an area's closures by 0019's index of grid and month"
        ),
        "add_index ix_case_file_district_map on case_file": (
            "0024: SQLite's only (ddl_if); PostgreSQL compares the district by equality and prunes the months"
        ),
    },
}


# what SpatiaLite's InitSpatialMetaData and PostGIS's CREATE EXTENSION make: theirs, not the models'
SPATIALITE_TABLES = {
    "ElementaryGeometries", "KNN", "SpatialIndex", "data_licenses", "spatial_ref_sys", "spatial_ref_sys_aux",
    "spatialite_history", "sql_statements_log",
    *(f"{prefix}geometry_columns{suffix}" for prefix in ("", "views_", "virts_")
      for suffix in ("", "_auth", "_field_infos", "_statistics")),
    "geometry_columns_time",
}  # fmt: skip
POSTGIS_TABLES = {"spatial_ref_sys"}


def _extension_tables(conn: sa.Connection) -> set[str]:
    """The tables of the database that the spatial extension owns: its catalogue, and on SpatiaLite the R*Tree
    tables of each geometry column's spatial index (`idx_<table>_<column>` and its shadow tables); on PostgreSQL
    also the partitions of a partitioned table (their parent is compared, they are PostgreSQL's business)."""
    if conn.dialect.name == "sqlite":
        rtrees = {
            f"idx_{table.name}_{column.name}{suffix}"
            for table in Base.metadata.tables.values()
            for column in table.columns
            if isinstance(column.type, Geometry)
            for suffix in ("", "_node", "_parent", "_rowid")
        }
        return SPATIALITE_TABLES | rtrees
    partitions = conn.execute(sa.text("SELECT relname FROM pg_class WHERE relispartition AND relkind IN ('r', 'p')"))
    return POSTGIS_TABLES | set(partitions.scalars())


def _differences(engine: sa.Engine, metadata: sa.MetaData = Base.metadata) -> list[Any]:
    with engine.connect() as conn, warnings.catch_warnings():
        ignored = _extension_tables(conn)

        def include(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
            if type_ == "table" and name in ignored:
                return False
            if name is not None and (type_, name) in KNOWN_OBJECTS:
                return False
            return bool(alembic_helpers.include_object(obj, name, type_, reflected, compare_to))

        # SQLite's reflection skips an index on an expression with a warning; that index is a known difference
        warnings.filterwarnings("ignore", "Skipped unsupported reflection of expression-based index")
        context = MigrationContext.configure(conn, opts={"include_object": include, "compare_type": True})
        return list(compare_metadata(context, metadata))


@pytest.fixture(params=DIALECTS)
def migrated(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[sa.Engine]:
    """A fresh database of each kind, upgraded to head by the migrations alone (no demo, no create_all)."""
    if request.param == "spatialite":
        url, drop = f"sqlite:///{tmp_path / 'fresh.sqlite'}", None
    else:
        url, drop = _new_postgis_database()
    engine = storage.make_engine(url)
    try:
        storage.migrate(engine)
        yield engine
    finally:
        engine.dispose()
        if drop:
            drop()


def _describe(diff: Any) -> str:
    """One line per difference: what autogenerate would do to make the database match the models."""
    if isinstance(diff, list):  # column modifications come as a list of tuples
        return "; ".join(_describe(d) for d in diff)
    op, *rest = diff
    if op in ("add_fk", "remove_fk"):
        fk = rest[0]
        cols = ", ".join(c.name for c in fk.columns)
        return f"{op} {fk.table.name}({cols}) -> {fk.referred_table.name}"
    if op in ("add_index", "remove_index"):
        index = rest[0]
        return f"{op} {index.name} on {index.table.name}"
    if op in ("add_table", "remove_table"):
        return f"{op} {rest[0].name}"
    if op in ("add_constraint", "remove_constraint"):
        constraint = rest[0]
        cols = ", ".join(c.name for c in constraint.columns)
        return f"{op} {type(constraint).__name__} {constraint.table.name}({cols})"
    if op in ("add_column", "remove_column"):
        return f"{op} {rest[1]}.{rest[2].name}"
    return f"{op} {rest}"


def test_migrations_at_head_match_the_models(migrated: sa.Engine) -> None:
    found = [_describe(d) for d in _differences(migrated)]
    known = KNOWN_DIFFERENCES[migrated.dialect.name]
    differences = [d for d in found if d not in known]
    assert not differences, f"{migrated.dialect.name}: the migrated schema differs from the models:\n" + "\n".join(
        differences
    )
    stale = sorted(set(known) - set(found))
    assert not stale, f"{migrated.dialect.name}: KNOWN_DIFFERENCES lists what the schema no longer has: {stale}"


def test_the_known_differences_are_there(migrated: sa.Engine) -> None:
    """The migration-only index exists on both databases, on `rate` steps only."""
    with migrated.connect() as conn:
        if migrated.dialect.name == "sqlite":
            sql = conn.execute(
                sa.text("SELECT sql FROM sqlite_master WHERE type = 'index' AND name = 'ix_case_event_rating'")
            ).scalar()
        else:
            sql = conn.execute(
                sa.text("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_case_event_rating'")
            ).scalar()
    assert sql is not None and "case_event" in sql and "satisfaction" in sql and "rate" in sql
    with migrated.connect() as conn:
        months = sa.inspect(conn).get_indexes("case_file")
    closed_month = [i for i in months if i["name"] == "ix_case_file_closed_month"]
    assert len(closed_month) == (migrated.dialect.name == "postgresql")


def test_a_difference_is_found() -> None:
    """The comparison is not blind: a column the database lacks is reported (on a throwaway copy of the models)."""
    metadata = sa.MetaData()
    for table in Base.metadata.tables.values():
        table.to_metadata(metadata)
    metadata.tables["calendar_day"].append_column(sa.Column("not_in_any_migration", sa.Integer()))
    engine = storage.make_engine("sqlite://")
    try:
        storage.migrate(engine)
        found = [_describe(d) for d in _differences(engine, metadata)]
    finally:
        engine.dispose()
    assert "add_column calendar_day.not_in_any_migration" in found
