"""Every foreign key has an index on its referencing columns, on both databases (migration 0013).

Deleting a referenced row makes the database look for rows still referencing it, by the referencing columns; with
no index leading with them, each deleted row scans the referencing table (deleting ~9,900 cases on the province
demo took over 7 minutes on PostGIS that way). The test walks the catalogue of a fresh database migrated to head —
PostgreSQL's pg_constraint and pg_index (every foreign key, those PostgreSQL cloned onto each month partition of
`case_file` included), SQLite's `PRAGMA foreign_key_list` and `index_list` — and fails on any foreign key whose
columns are not the leading columns of one index (in any order among themselves; a primary key counts, a partial
or expression index does not). SpatiaLite's own metadata tables are not the project's and are left out.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from gridmap.store import engine as storage
from tests.conftest import DIALECTS, _new_postgis_database
from tests.integration.test_migrations_match_models import SPATIALITE_TABLES

_PARTITION = re.compile(r"^case_file_(p\d{6}|default)\(")

# a foreign key of PostgreSQL's catalogue: its table, name, referencing columns, and whether one full index
# (no predicate, no expression) leads with exactly those columns
_PG_UNINDEXED = """
SELECT c.conrelid::regclass::text AS tbl, c.conname,
       ARRAY(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY k(attnum, n)
             JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum ORDER BY k.n) AS cols
FROM pg_constraint c
WHERE c.contype = 'f'
  AND NOT EXISTS (
      SELECT 1 FROM pg_index i
      WHERE i.indrelid = c.conrelid AND i.indpred IS NULL AND i.indexprs IS NULL
        AND i.indnkeyatts >= cardinality(c.conkey)
        AND (i.indkey::int2[])[0:cardinality(c.conkey) - 1] @> c.conkey
        AND c.conkey @> (i.indkey::int2[])[0:cardinality(c.conkey) - 1])
ORDER BY 1, 2
"""


def unindexed_foreign_keys(conn: sa.Connection) -> list[str]:
    """`table(columns) -> referenced` for each foreign key of the database no index serves."""
    if conn.dialect.name == "postgresql":
        found = conn.execute(sa.text(_PG_UNINDEXED)).all()
        return [f"{r.tbl}({', '.join(r.cols)}) [{r.conname}]" for r in found]
    out = []
    tables = conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'table'").scalars().all()
    for table in sorted(set(tables) - SPATIALITE_TABLES):
        keys: dict[int, list[tuple[int, str, str]]] = {}
        for row in conn.exec_driver_sql(f"PRAGMA foreign_key_list('{table}')"):
            keys.setdefault(row[0], []).append((row[1], row[3], row[2]))  # (seq, from column, referenced table)
        if not keys:
            continue
        leading: list[list[str]] = []
        for index in conn.exec_driver_sql(f"PRAGMA index_list('{table}')").all():
            if index[4]:  # partial
                continue
            columns = [r[2] for r in conn.exec_driver_sql(f"PRAGMA index_info('{index[1]}')").all()]
            if None not in columns:  # no expression
                leading.append(columns)
        info = conn.exec_driver_sql(f"PRAGMA table_info('{table}')").all()
        primary = [r[1] for r in sorted((r for r in info if r[5]), key=lambda r: r[5])]
        leading.append(primary)  # an INTEGER PRIMARY KEY is the rowid: not in index_list, and indexed
        for parts in keys.values():
            columns = [c for _, c, _ in sorted(parts)]
            if not any(len(ix) >= len(columns) and set(ix[: len(columns)]) == set(columns) for ix in leading):
                out.append(f"{table}({', '.join(columns)}) -> {parts[0][2]}")
    return out


@pytest.fixture(params=DIALECTS)
def migrated(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[sa.Engine]:
    """A fresh database of each kind, upgraded to head by the migrations alone."""
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


def test_every_foreign_key_leads_an_index(migrated: sa.Engine) -> None:
    with migrated.connect() as conn:
        if conn.dialect.name == "postgresql":  # the walk sees the partitions' own keys too
            assert conn.scalar(sa.text("SELECT count(*) FROM pg_constraint WHERE contype = 'f'")) > 30
        missing = unindexed_foreign_keys(conn)
    assert not missing, f"{migrated.dialect.name}: foreign keys without an index on their columns:\n" + "\n".join(
        missing
    )


def test_the_walk_finds_a_foreign_key_without_an_index(migrated: sa.Engine) -> None:
    """Not blind: a foreign key served by no index (a partial one does not count) is reported, and no longer once
    an index leads with its column; at 0012 the walk finds exactly the fourteen keys 0013 indexes (on PostgreSQL
    also their clones on each month partition of case_file)."""
    with migrated.begin() as conn:
        conn.execute(
            sa.text(
                "CREATE TABLE fk_probe (id INTEGER PRIMARY KEY, staff_id INTEGER REFERENCES staff (id), "
                "area_code VARCHAR(24))"
            )
        )
        conn.execute(sa.text("CREATE INDEX ix_fk_probe_partial ON fk_probe (staff_id) WHERE staff_id > 0"))
        assert [m.split(" ")[0] for m in unindexed_foreign_keys(conn)] == ["fk_probe(staff_id)"]
        conn.execute(sa.text("CREATE INDEX ix_fk_probe_staff ON fk_probe (staff_id, area_code)"))
        assert unindexed_foreign_keys(conn) == []
        conn.execute(sa.text("DROP TABLE fk_probe"))
    _alembic(migrated, "downgrade", "0012")
    with migrated.connect() as conn:
        at_0012 = {_PARTITION.sub("case_file(", m.split(" ")[0]) for m in unindexed_foreign_keys(conn)}
    _alembic(migrated, "upgrade", "head")
    with migrated.connect() as conn:
        assert unindexed_foreign_keys(conn) == []
    assert at_0012 == {f"{t}({c})" for t, c in _revision_0013().FOREIGN_KEYS}


def _alembic(engine: sa.Engine, action: str, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(storage._MIGRATIONS))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        getattr(command, action)(config, revision)


def _revision_0013() -> Any:
    path = storage._MIGRATIONS / "versions" / "0013_foreign_key_indexes.py"
    spec = importlib.util.spec_from_file_location("gridmap_revision_0013", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
