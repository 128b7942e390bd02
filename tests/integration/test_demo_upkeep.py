"""The demo's load into a new database defers the case tables' upkeep to one rebuild at the end (issue 15 §2), on both
databases, and leaves the schema as it found it: every index and trigger of the case tables is back under its own
definition, and what the triggers keep is what they would have kept row by row (the kept counts, the registry, the
last changes: their own tests run on the demo so loaded, `tests/conftest.py`'s template). A database at an older
revision (a test of an upgrade) is loaded with the upkeep row by row: the rebuild's fills are the newest schema's.
"""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from gridmap.demo.load import load_demo
from gridmap.store import engine as storage
from tests.conftest import DIALECTS, empty_database

TODAY = dt.date(2026, 11, 20)
TABLES = ("case_file", "case_event", "case_registry")


def _schema(conn: sa.Connection) -> set[tuple[str, str]]:
    """(name, definition) of every index and trigger of the case tables."""
    if conn.dialect.name == "sqlite":
        rows = conn.exec_driver_sql(
            "SELECT name, sql FROM sqlite_master WHERE type IN ('index', 'trigger') AND tbl_name IN "
            "('case_file', 'case_event') AND sql IS NOT NULL"
        ).all()
    else:
        rows = conn.exec_driver_sql(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = ANY(%(t)s) UNION ALL "
            "SELECT tgname, pg_get_triggerdef(oid) FROM pg_trigger WHERE tgrelid::regclass::text = ANY(%(t)s) "
            "AND NOT tgisinternal UNION ALL SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid::regclass::text = ANY(%(t)s)",
            {"t": list(TABLES)},
        ).all()
    return {(name, definition) for name, definition in rows}


@pytest.mark.parametrize("dialect", DIALECTS)
def test_the_demo_load_puts_back_every_index_trigger_and_key_of_the_case_tables(dialect, tmp_path):
    url, drop = empty_database(dialect, tmp_path)
    engine = storage.make_engine(url)
    try:
        storage.migrate(engine)
        with engine.connect() as conn:
            assert storage.at_head(conn)
            before = _schema(conn)
        assert len(before) > 25
        deferred: list[str] = []

        class Steps:  # the rebuild's steps, as `gridmap demo` prints them
            enabled = True
            bars = False

            def stage(self, text: str, count: int | None = None) -> None:
                if text.startswith("rebuilt: "):
                    deferred.append(text)

            def bar(self, total: int, desc: str, unit: str = "rows"):
                from gridmap.cases.bulk import Progress

                return Progress(enabled=False).bar(total, desc, unit)

        with storage.session_scope(storage.make_sessionmaker(engine)) as session:
            load_demo(session, "530111", small=True, seed=11, today=TODAY, progress=Steps())  # type: ignore[arg-type]
        assert any("index ix_case_file_grid_code" in s for s in deferred), deferred  # it was deferred
        with engine.connect() as conn:
            assert _schema(conn) == before
            assert conn.scalar(sa.text("SELECT count(*) FROM case_file")) > 200
    finally:
        engine.dispose()
        if drop:
            drop()


@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_database_at_an_older_revision_is_loaded_with_the_upkeep_row_by_row(dialect, tmp_path):
    url, drop = empty_database(dialect, tmp_path)
    engine = storage.make_engine(url)
    try:
        storage.migrate(engine, "0017")
        with engine.connect() as conn:
            assert not storage.at_head(conn)
        with storage.session_scope(storage.make_sessionmaker(engine)) as session:
            load_demo(session, "530111", small=True, seed=11, today=TODAY)
        storage.migrate(engine)
        with engine.connect() as conn:
            assert storage.at_head(conn) and storage.schema_revision(engine) == storage.head_revision()
            assert conn.scalar(sa.text("SELECT count(*) FROM case_file")) > 200
    finally:
        engine.dispose()
        if drop:
            drop()
