"""Bulk loads into empty tables: what the database maintains row by row — secondary indexes, foreign keys, the case
registry's trigger on PostgreSQL, the history's trigger that keeps `case_activity`, SpatiaLite's geometry triggers
and R*Tree — is taken off for the load and made again, in one pass each, before the same transaction commits.

Row by row, each case written to PostGIS updates the 11 secondary indexes of its month partition (a GiST among
them), checks 7 foreign keys (a query each) and passes through the registry's statement trigger, whose transition
table also makes COPY insert a row at a time; each case written to SpatiaLite runs three triggers (a geometry check,
a metadata update and an R*Tree insert) and updates 10 indexes. A sorted index build, one validation query per key
and one INSERT … SELECT into the registry or the R*Tree do the same work for a fraction of the CPU: 300,000 province
cases took 22.3 s of the PostGIS server's CPU row by row and 9.1 s deferred, one after the other at load 13
(tests/benchmarks/province_build.py times the whole command).

    with engine.begin() as conn:
        with deferred_upkeep(conn, ("case_file", "case_event", "case_registry")) as deferred:
            ...  # COPY / executemany into the tables
        # here every index, key and trigger is back, validated over every row written

Only when every table named is empty (`deferred` is then true; otherwise nothing is taken off and the writes pay
the usual upkeep). Everything happens in the caller's transaction: a failure anywhere — a duplicate number, a key
that names no row, a geometry SpatiaLite refuses — rolls back the rows and the schema changes together, so the
schema is never left without an index. The tables are locked (ACCESS EXCLUSIVE on PostgreSQL, the write lock on
SQLite) until the transaction ends: readers of the case tables wait for a bulk load.

What is made again is what was there, read from the catalogue (`pg_get_indexdef`, `pg_get_constraintdef`,
`pg_get_triggerdef`; SQLite's `sqlite_master`), under the same names. On PostgreSQL a partial index (migration 0014's
of the overdue sweep) stays through the load: it takes only the few rows its predicate admits, and its predicate as
`pg_get_indexdef` prints it would be parsed again into other text (`state IN (…)` comes back with each element cast).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import sqlalchemy as sa

# the case registry's insert trigger (migration 0010) and what it does, done once for the whole load
REGISTRY_TRIGGER = "case_registry_insert"
REGISTRY_FILL = (
    "INSERT INTO case_registry (id, reported_at, number, source, external_ref, grid_code) "
    "SELECT id, reported_at, number, source, external_ref, grid_code FROM case_file"
)
# the history's insert trigger that keeps each case's last change (migration 0015), and the same done once: an empty
# history means an empty case_activity, which the triggers keep in step with it
ACTIVITY_TRIGGER = "case_activity_insert"
ACTIVITY_FILL = (
    "INSERT INTO case_activity (case_id, last_event_at) SELECT case_id, max(at) FROM case_event GROUP BY case_id"
)
# the history's insert trigger that counts the steps of each grid by month (migration 0018), and the same done once
# (on PostgreSQL through the registry's grids: filled first), per database: the migration's own statements
STEPS_TRIGGER = "case_steps_insert"
_STEPS = importlib.import_module("gridmap.store.migrations.versions.0018_case_step_count")
STEPS_FILL: dict[str, str] = {"postgresql": _STEPS.PG_FILL, "sqlite": _STEPS.SL_FILL}
# the case table's insert trigger that counts the cases of each grid by month (migration 0021), and the same done once
COUNTS_TRIGGER = "case_counts_insert"
_COUNTS = importlib.import_module("gridmap.store.migrations.versions.0021_case_month_count")
COUNTS_FILL: dict[str, str] = {"postgresql": _COUNTS.PG_FILL, "sqlite": _COUNTS.SL_FILL}
# the case table's insert trigger that deletes a month's kept hours to close when a closure of it is written
# (migration 0026); into an empty case table every month's are stale
HOURS_TRIGGER = "case_hours_insert"
_HOURS = importlib.import_module("gridmap.store.migrations.versions.0026_case_month_hours")
# (table, trigger) → the statement that does what the trigger would have done for every row loaded (a statement
# per database where they differ), in the order they run: the registry before the steps read it
FILLS: dict[tuple[str, str], str | dict[str, str]] = {
    ("case_file", REGISTRY_TRIGGER): REGISTRY_FILL,
    ("case_file", COUNTS_TRIGGER): COUNTS_FILL,
    ("case_file", HOURS_TRIGGER): _HOURS.FILL,
    ("case_event", ACTIVITY_TRIGGER): ACTIVITY_FILL,
    ("case_event", STEPS_TRIGGER): STEPS_FILL,
}


def _fill(table: str, trigger: str, dialect: str) -> str:
    sql = FILLS[table, trigger]
    return sql if isinstance(sql, str) else sql[dialect]


Step = Callable[[str], None]  # told the name of each rebuild step as it starts (a progress line)


@dataclass
class _Plan:
    """What was taken off, as the statements that make it again (in order), and the checks to run first."""

    before: list[str] = field(default_factory=list)  # fills and checks (the registry, R*Trees)
    indexes: list[tuple[str, str]] = field(default_factory=list)  # (name, CREATE INDEX …)
    keys: list[tuple[str, str]] = field(default_factory=list)  # (name, ALTER TABLE … ADD CONSTRAINT …)
    triggers: list[tuple[str, str]] = field(default_factory=list)  # (name, CREATE TRIGGER …)
    geometry_checks: list[tuple[str, str]] = field(default_factory=list)  # (table.column, SELECT count of bad rows)


def is_empty(conn: sa.Connection, tables: Sequence[str]) -> bool:
    """Whether every table named holds no row."""
    return all(conn.exec_driver_sql(f"SELECT 1 FROM {t} LIMIT 1").first() is None for t in tables)


def existing(conn: sa.Connection, tables: Sequence[str]) -> list[str]:
    """The tables named that exist (the case registry exists only on PostgreSQL)."""
    return [t for t in tables if sa.inspect(conn).has_table(t)]


@contextmanager
def deferred_upkeep(
    conn: sa.Connection,
    tables: Sequence[str],
    *,
    step: Step | None = None,
    work_mem_mb: int = 256,
    nowait: bool = False,
) -> Iterator[bool]:
    """Take the row-by-row upkeep of `tables` off while the block writes, if they are all empty (yields whether it
    did), and make it again, validated, when the block ends. Runs inside the caller's transaction. With `nowait`,
    tables another session is using on PostgreSQL are loaded as they are (no waiting for their lock)."""
    step = step or (lambda _name: None)
    postgres = conn.dialect.name == "postgresql"
    tables = existing(conn, tables)
    if not is_empty(conn, tables):  # no lock taken: writers beside a load into tables with rows are not held up
        yield False
        return
    if postgres and not _lock(conn, tables, nowait):
        yield False
        return
    if not postgres and not conn.connection.driver_connection.in_transaction:  # type: ignore[union-attr]
        # the sqlite3 module opens a transaction only before INSERT, UPDATE and DELETE: a DROP INDEX before one
        # would be committed on its own. BEGIN IMMEDIATE makes the drops part of the transaction (the caller's
        # commit or rollback ends it) and takes the write lock.
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    if not is_empty(conn, tables):  # a row written between the first look and the lock
        yield False
        return
    plan = _take_off_postgres(conn, tables) if postgres else _take_off_sqlite(conn, tables)
    if postgres:
        yield True
        _put_back(conn, plan, step, postgres, work_mem_mb)
        return
    # SQLite: the connection's page cache holds the tables the keys look up and the sorts of the index builds
    cache = conn.exec_driver_sql("PRAGMA cache_size").scalar()
    conn.exec_driver_sql(f"PRAGMA cache_size = -{int(work_mem_mb) * 1024}")
    try:
        yield True
        _put_back(conn, plan, step, postgres, work_mem_mb)
    finally:
        conn.exec_driver_sql(f"PRAGMA cache_size = {int(cache or -2000)}")


def _pragma(conn: sa.Connection, sql: str) -> object:
    value = conn.exec_driver_sql(sql).scalar()
    conn.commit()  # out of SQLAlchemy's transaction again (SQLite itself opened none for a PRAGMA)
    return value


@contextmanager
def rollback_journal(conn: sa.Connection) -> Iterator[bool]:
    """On SQLite in WAL mode, the database in rollback-journal mode while the block runs (back to WAL after it);
    yields whether it switched. Call it on a connection outside any transaction, and run the load on that
    connection alone.

    Why: a transaction of gigabytes in WAL mode makes every page read look for the page in the write-ahead log
    first, in a time that grows with the log (SQLite's walFindFrame: a third of the CPU of the province's writes at 6
    million cases, and every page the index builds read afterwards), and writes everything twice (the log, then the
    file). In rollback-journal mode the new pages go to the file once and the journal holds only the few pages the
    load changes. Switching needs the file to itself: while another connection is reading it (another process, a
    server) the mode stays WAL and nothing else changes; one that starts reading during the load waits for it (its
    busy timeout) instead of reading beside it as WAL allows — a load into a new file. A crash in the middle leaves a
    journal that the next connection rolls back (and puts WAL back, as every connection of `gridmap.store.engine`
    does)."""
    if conn.dialect.name != "sqlite" or _pragma(conn, "PRAGMA journal_mode") != "wal":
        yield False
        return
    try:
        switched = _pragma(conn, "PRAGMA journal_mode = DELETE") == "delete"
    except sa.exc.OperationalError:  # "database is locked": someone is reading it
        conn.rollback()
        switched = False
    try:
        yield switched
    finally:
        if switched:
            _pragma(conn, "PRAGMA journal_mode = WAL")


def _lock(conn: sa.Connection, tables: Sequence[str], nowait: bool) -> bool:
    """ACCESS EXCLUSIVE on `tables` for the rest of the transaction; with `nowait`, False at once if another
    session holds one of them."""
    sql = f"LOCK TABLE {', '.join(tables)} IN ACCESS EXCLUSIVE MODE"
    if not nowait:
        conn.exec_driver_sql(sql)
        return True
    savepoint = conn.begin_nested()
    try:
        conn.exec_driver_sql(sql + " NOWAIT")
    except sa.exc.DBAPIError:  # another session has one: loaded as they are
        savepoint.rollback()
        return False
    savepoint.commit()
    return True


def _take_off_postgres(conn: sa.Connection, tables: Sequence[str]) -> _Plan:
    plan = _Plan()
    for table in tables:
        rows = conn.exec_driver_sql(
            "SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "LEFT JOIN pg_inherits h ON h.inhrelid = i.indexrelid "
            "WHERE i.indrelid = %(t)s::regclass AND NOT i.indisprimary AND h.inhrelid IS NULL AND i.indpred IS NULL "
            "AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid) ORDER BY c.relname",
            {"t": table},
        ).all()
        for name, definition in rows:
            # a partitioned table's index is written "ON ONLY table"; made again it must reach every partition
            plan.indexes.append((name, definition.replace(" ON ONLY ", " ON ", 1)))
            conn.exec_driver_sql(f'DROP INDEX "{name}"')
        # unique constraints (their indexes built once at the end) before foreign keys (checked once at the end)
        keys = conn.exec_driver_sql(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE contype IN ('u', 'f') "
            "AND conrelid = %(t)s::regclass AND conparentid = 0 ORDER BY contype DESC, conname",
            {"t": table},
        ).all()
        for name, definition in keys:
            plan.keys.append((name, f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}'))
            conn.exec_driver_sql(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
        triggers = conn.exec_driver_sql(
            "SELECT tgname, pg_get_triggerdef(oid) FROM pg_trigger WHERE tgrelid = %(t)s::regclass "
            "AND tgname = ANY(%(names)s) AND NOT tgisinternal ORDER BY tgname",
            {"t": table, "names": [name for t, name in FILLS if t == table]},
        ).all()
        for name, definition in triggers:
            plan.triggers.append((name, definition))
            plan.before.append(_fill(table, name, "postgresql"))
            conn.exec_driver_sql(f'DROP TRIGGER "{name}" ON {table}')
    return plan


def _take_off_sqlite(conn: sa.Connection, tables: Sequence[str]) -> _Plan:
    plan = _Plan()
    for table in tables:
        for name, sql in conn.exec_driver_sql(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL "
            "ORDER BY name",
            (table,),
        ).all():
            plan.indexes.append((name, sql))
            conn.exec_driver_sql(f'DROP INDEX "{name}"')
        for name, sql in conn.exec_driver_sql(
            "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = ? ORDER BY name", (table,)
        ).all():
            if (table, name) in FILLS:
                plan.triggers.append((name, sql))
                plan.before.append(_fill(table, name, "sqlite"))
                conn.exec_driver_sql(f'DROP TRIGGER "{name}"')
        columns = conn.exec_driver_sql(
            "SELECT f_geometry_column, spatial_index_enabled FROM geometry_columns WHERE lower(f_table_name) = "
            "lower(?) ORDER BY f_geometry_column",
            (table,),
        ).all()
        for column, spatial_index in columns:
            # SpatiaLite's insert triggers of the column: the type and SRID check, the last-insert time, the R*Tree
            names = [f"ggi_{table}_{column}", f"tmi_{table}_{column}", f"gii_{table}_{column}"]
            for name, sql in conn.exec_driver_sql(
                f"SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND name IN ({', '.join('?' * 3)})",
                tuple(names),
            ).all():
                plan.triggers.append((name, sql))
                conn.exec_driver_sql(f'DROP TRIGGER "{name}"')
            plan.geometry_checks.append(
                (
                    f"{table}.{column}",
                    f'SELECT count(*) FROM "{table}" t WHERE (SELECT geometry_type FROM geometry_columns '
                    f"WHERE lower(f_table_name) = lower('{table}') AND lower(f_geometry_column) = lower('{column}') "
                    f'AND GeometryConstraints(t."{column}", geometry_type, srid) = 1) IS NULL',
                )
            )
            if spatial_index == 1:
                # the R*Tree rounds a box outwards to floats as the triggers' RTreeAlign does: the same boxes. Given
                # in the order of cells of 0.05° (row by row), neighbours go in one after the other: 18 % less CPU
                # than in id order at 2 million points, the sort included
                plan.before.append(
                    f'INSERT INTO "idx_{table}_{column}" (pkid, xmin, xmax, ymin, ymax) SELECT rowid, '
                    f'MbrMinX("{column}"), MbrMaxX("{column}"), MbrMinY("{column}"), MbrMaxY("{column}") '
                    f'FROM "{table}" WHERE "{column}" IS NOT NULL '
                    f'ORDER BY CAST(MbrMinY("{column}") * 20 AS INTEGER), CAST(MbrMinX("{column}") * 20 AS INTEGER)'
                )
            plan.before.append(
                "UPDATE geometry_columns_time SET last_insert = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') "
                f"WHERE lower(f_table_name) = lower('{table}') AND lower(f_geometry_column) = lower('{column}')"
            )
    return plan


def _put_back(conn: sa.Connection, plan: _Plan, step: Step, postgres: bool, work_mem_mb: int) -> None:
    for what, check in plan.geometry_checks:
        step(f"geometries checked ({what})")
        bad = int(conn.exec_driver_sql(check).scalar() or 0)
        if bad:
            raise sa.exc.IntegrityError(check, None, ValueError(f"{what}: {bad} geometries of a type or SRID refused"))
    if postgres:
        conn.exec_driver_sql(f"SET LOCAL maintenance_work_mem = '{int(work_mem_mb)}MB'")
    _rebuild(conn, plan, step)


def _rebuild(conn: sa.Connection, plan: _Plan, step: Step) -> None:
    # the fills in FILLS' order (the registry's grids before the steps' counts read them), whatever the tables' order
    fills = [_fill(t, n, conn.dialect.name) for t, n in FILLS]
    plan.before.sort(key=lambda sql: fills.index(sql) if sql in fills else -1)
    for sql in plan.before:
        if "geometry_columns_time" in sql:  # SpatiaLite's last-insert time: nothing to tell
            conn.exec_driver_sql(sql)
            continue
        step(
            "registry filled"
            if sql == REGISTRY_FILL
            else "last changes of the cases filled"
            if sql == ACTIVITY_FILL
            else "steps counted by grid and month"
            if sql in STEPS_FILL.values()
            else "spatial index filled"
        )
        conn.exec_driver_sql(sql)
    for name, sql in plan.indexes:
        step(f"index {name}")
        conn.exec_driver_sql(sql)
    plan.keys.sort(key=lambda key: " FOREIGN KEY " in key[1])  # every table's unique keys before any foreign key
    for name, sql in plan.keys:
        step(f"key {name} checked")
        conn.exec_driver_sql(sql)
    for _name, sql in plan.triggers:
        conn.exec_driver_sql(sql)


__all__ = [
    "ACTIVITY_FILL",
    "ACTIVITY_TRIGGER",
    "FILLS",
    "REGISTRY_FILL",
    "REGISTRY_TRIGGER",
    "STEPS_FILL",
    "STEPS_TRIGGER",
    "deferred_upkeep",
    "existing",
    "is_empty",
    "rollback_journal",
]
