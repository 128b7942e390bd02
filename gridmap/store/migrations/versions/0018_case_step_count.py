"""case_step_count: the steps of each grid's cases counted by month, kept by triggers (both databases); the case
registry holds each case's grid (PostgreSQL)

A 12-month series of an area (the overview's chart, `gridmap.cases.measures.area_series`) counts the steps of the
area's cases month by month: handled, rated, rated satisfied, bounced back. The history has no area of its own, so
those steps were found through the cases: for a district of the 10 M-case province (~600,000 cases, ~1 M steps in a
year among 14.6 M) PostgreSQL read the year's history once in a hash join, 4.4-4.9 s of a series of 9-15 s, against
a target of 300 ms.

`case_step_count (month, grid_code) PRIMARY KEY, handled, rated, satisfied, bounces)`: per grid and China-time month
(year × 100 + month), the steps of the cases that are in that grid now. A district's year is its grids × 12 rows.
Kept by the database, as `case_activity` is (no write path can forget it):

- an insert into `case_event` adds its steps under the case's grid, a delete takes them away, an update does both;
- a change of a case's grid moves the steps of that case from the old grid to the new (a boundary redraw
  re-locating cases, a correction by hand).

On PostgreSQL the case's grid is read from `case_registry`, which now holds it (`grid_code`, kept by its triggers
with the rest): reading it from `case_file` by id would name every month partition again, the locks that
fc18085 took out of a step (a join's inner side is not pruned at plan time). The step's upkeep is a statement
trigger over the transition table (one INSERT … ON CONFLICT per statement, rows in key order so that two writers
never wait for each other crosswise); a grid change is followed in the registry's update trigger, before the
registry takes the new grid. On SQLite, row triggers on `case_event` and `case_file`.

A grid-month's row is locked by a step written in it until that transaction ends: steps of one grid in one month
are committed one after another (milliseconds each).

A rating is "satisfied" from 3 (`gridmap.cases.measures.SATISFIED_MIN`, checked equal by the tests), read as the
index `ix_case_event_rating` reads it (`RATING_SQL`), for `rate` steps only.

The upgrade fills the table from the history in one statement (and the registry's grids from the cases).

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

SATISFIED_MIN = 3
STEPS = "('handle', 'rate', 'bounce')"

# ---- PostgreSQL ----
# the China-time month of a step, as year × 100 + month (UTC+8, no daylight saving: the month partitions' rule)
_PG_MONTH = "to_char((e.at AT TIME ZONE 'UTC') + interval '8 hours', 'YYYYMM')::integer"
_PG_SATISFIED = (
    f"CASE WHEN e.action = 'rate' THEN CAST((e.detail ->> 'satisfaction') AS INTEGER) >= {SATISFIED_MIN} END"
)
_PG_COUNTS = (
    "count(*) FILTER (WHERE e.action = 'handle'), count(*) FILTER (WHERE e.action = 'rate'), "
    f"count(*) FILTER (WHERE {_PG_SATISFIED}), count(*) FILTER (WHERE e.action = 'bounce')"
)
_PG_UPSERT = (
    "ON CONFLICT (month, grid_code) DO UPDATE SET handled = s.handled + excluded.handled, "
    "rated = s.rated + excluded.rated, satisfied = s.satisfied + excluded.satisfied, "
    "bounces = s.bounces + excluded.bounces"
)


def _pg_steps(events: str, sign: str) -> str:
    """The steps of a set of history rows (`events`: a table or transition table, aliased e) added (sign '') or
    taken away (sign '-') under their cases' grids, read from the registry."""
    counts = ", ".join(f"{sign}{c}" for c in _PG_COUNTS.split(", "))
    return (
        "INSERT INTO case_step_count AS s (month, grid_code, handled, rated, satisfied, bounces)\n"
        f"        SELECT {_PG_MONTH}, r.grid_code, {counts}\n"
        f"        FROM {events} e JOIN case_registry r ON r.id = e.case_id\n"
        f"        WHERE e.action IN {STEPS} AND r.grid_code IS NOT NULL GROUP BY 1, 2 ORDER BY 1, 2\n"
        f"    {_PG_UPSERT};"
    )


PG_FILL = _pg_steps("case_event", "")

_PG_REGISTRY_INSERT = r"""
CREATE OR REPLACE FUNCTION gridmap_case_registry_insert() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    INSERT INTO case_registry (id, reported_at, number, source, external_ref, grid_code)
        SELECT id, reported_at, number, source, external_ref, grid_code FROM new_cases;
    RETURN NULL;
END
$fn$;
"""
# the steps of a case whose grid changes move with it (read before the registry takes the new grid)
_PG_REGISTRY_UPDATE = rf"""
CREATE OR REPLACE FUNCTION gridmap_case_registry_update() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    INSERT INTO case_step_count AS s (month, grid_code, handled, rated, satisfied, bounces)
        SELECT {_PG_MONTH}, m.grid_code, {
    ", ".join(
        f"coalesce(sum(m.sign) FILTER (WHERE {c}), 0)"
        for c in ("e.action = 'handle'", "e.action = 'rate'", _PG_SATISFIED, "e.action = 'bounce'")
    )
}
        FROM (SELECT r.id, r.grid_code, -1 AS sign FROM case_registry r JOIN new_cases n ON n.id = r.id
                  WHERE r.grid_code IS DISTINCT FROM n.grid_code AND r.grid_code IS NOT NULL
              UNION ALL
              SELECT n.id, n.grid_code, 1 FROM case_registry r JOIN new_cases n ON n.id = r.id
                  WHERE r.grid_code IS DISTINCT FROM n.grid_code AND n.grid_code IS NOT NULL) m
        JOIN case_event e ON e.case_id = m.id
        WHERE e.action IN {STEPS} GROUP BY 1, 2 ORDER BY 1, 2
    {_PG_UPSERT};
    UPDATE case_registry r SET reported_at = n.reported_at, number = n.number, source = n.source,
                               external_ref = n.external_ref, grid_code = n.grid_code
        FROM new_cases n
        WHERE r.id = n.id AND (r.reported_at, r.number, r.source, r.external_ref, r.grid_code)
            IS DISTINCT FROM (n.reported_at, n.number, n.source, n.external_ref, n.grid_code);
    RETURN NULL;
END
$fn$;
"""
# 0010's, as they were
_PG_REGISTRY_BEFORE = r"""
CREATE OR REPLACE FUNCTION gridmap_case_registry_insert() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    INSERT INTO case_registry (id, reported_at, number, source, external_ref)
        SELECT id, reported_at, number, source, external_ref FROM new_cases;
    RETURN NULL;
END
$fn$;
CREATE OR REPLACE FUNCTION gridmap_case_registry_update() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    UPDATE case_registry r SET reported_at = n.reported_at, number = n.number, source = n.source,
                               external_ref = n.external_ref
        FROM new_cases n
        WHERE r.id = n.id AND (r.reported_at, r.number, r.source, r.external_ref)
            IS DISTINCT FROM (n.reported_at, n.number, n.source, n.external_ref);
    RETURN NULL;
END
$fn$;
"""

_PG_TRIGGERS = f"""
CREATE FUNCTION gridmap_case_steps_insert() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    {_pg_steps("new_events", "")}
    RETURN NULL;
END
$fn$;
CREATE FUNCTION gridmap_case_steps_delete() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    {_pg_steps("old_events", "-")}
    RETURN NULL;
END
$fn$;
CREATE FUNCTION gridmap_case_steps_update() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    {_pg_steps("old_events", "-")}
    {_pg_steps("new_events", "")}
    RETURN NULL;
END
$fn$;
CREATE TRIGGER case_steps_insert AFTER INSERT ON case_event REFERENCING NEW TABLE AS new_events
    FOR EACH STATEMENT EXECUTE FUNCTION gridmap_case_steps_insert();
CREATE TRIGGER case_steps_delete AFTER DELETE ON case_event REFERENCING OLD TABLE AS old_events
    FOR EACH STATEMENT EXECUTE FUNCTION gridmap_case_steps_delete();
CREATE TRIGGER case_steps_update AFTER UPDATE ON case_event
    REFERENCING OLD TABLE AS old_events NEW TABLE AS new_events
    FOR EACH STATEMENT EXECUTE FUNCTION gridmap_case_steps_update();
"""
_PG_DROP = (
    "DROP TRIGGER case_steps_insert ON case_event",
    "DROP TRIGGER case_steps_delete ON case_event",
    "DROP TRIGGER case_steps_update ON case_event",
    "DROP FUNCTION gridmap_case_steps_insert()",
    "DROP FUNCTION gridmap_case_steps_delete()",
    "DROP FUNCTION gridmap_case_steps_update()",
)

# ---- SQLite ----
_SL_MONTH = "CAST(strftime('%Y%m', {at}, '+8 hours') AS INTEGER)"
_SL_SATISFIED = (
    "(CASE WHEN {e}action = 'rate' THEN "
    f"coalesce(CAST(JSON_EXTRACT({{e}}detail, '$.\"satisfaction\"') AS INTEGER) >= {SATISFIED_MIN}, 0) ELSE 0 END)"
)
_SL_UPSERT = (
    "ON CONFLICT (month, grid_code) DO UPDATE SET handled = handled + excluded.handled, "
    "rated = rated + excluded.rated, satisfied = satisfied + excluded.satisfied, bounces = bounces + excluded.bounces"
)


def _sl_counts(e: str, sign: str) -> str:
    """The four counts of history rows with prefix `e` ("e." or "NEW."), summed, with `sign` ('' or '-')."""
    return ", ".join(
        f"{sign}sum({c})"
        for c in (
            f"{e}action = 'handle'",
            f"{e}action = 'rate'",
            _SL_SATISFIED.format(e=e),
            f"{e}action = 'bounce'",
        )
    )


def _sl_row(row: str, sign: str) -> str:
    """A history row's steps (`row`: NEW or OLD) added or taken away under its case's grid."""
    return (
        "INSERT INTO case_step_count (month, grid_code, handled, rated, satisfied, bounces)\n"
        f"        SELECT {_SL_MONTH.format(at=row + '.at')}, c.grid_code, {_sl_counts(row + '.', sign)}\n"
        f"        FROM case_file c WHERE c.id = {row}.case_id AND c.grid_code IS NOT NULL\n"
        f"            AND {row}.action IN {STEPS} GROUP BY 1, 2\n"
        f"    {_SL_UPSERT};"
    )


def _sl_case(row: str, sign: str) -> str:
    """The steps of a case (`row`: OLD or NEW of case_file) added or taken away under its grid of that row."""
    return (
        "INSERT INTO case_step_count (month, grid_code, handled, rated, satisfied, bounces)\n"
        f"        SELECT {_SL_MONTH.format(at='e.at')}, {row}.grid_code, {_sl_counts('e.', sign)}\n"
        f"        FROM case_event e WHERE e.case_id = {row}.id AND {row}.grid_code IS NOT NULL\n"
        f"            AND e.action IN {STEPS} GROUP BY 1, 2\n"
        f"    {_SL_UPSERT};"
    )


SL_FILL = (
    "INSERT INTO case_step_count (month, grid_code, handled, rated, satisfied, bounces)\n"
    f"    SELECT {_SL_MONTH.format(at='e.at')}, c.grid_code, {_sl_counts('e.', '')}\n"
    "    FROM case_event e JOIN case_file c ON c.id = e.case_id\n"
    f"    WHERE e.action IN {STEPS} AND c.grid_code IS NOT NULL GROUP BY 1, 2\n"
    f"{_SL_UPSERT}"
)
_SL_TRIGGERS = (
    f"CREATE TRIGGER case_steps_insert AFTER INSERT ON case_event BEGIN\n    {_sl_row('NEW', '')}\nEND",
    f"CREATE TRIGGER case_steps_delete AFTER DELETE ON case_event BEGIN\n    {_sl_row('OLD', '-')}\nEND",
    "CREATE TRIGGER case_steps_update AFTER UPDATE OF case_id, at, action, detail ON case_event BEGIN\n"
    f"    {_sl_row('OLD', '-')}\n    {_sl_row('NEW', '')}\nEND",
    "CREATE TRIGGER case_steps_move AFTER UPDATE OF grid_code ON case_file "
    "WHEN OLD.grid_code IS NOT NEW.grid_code BEGIN\n"
    f"    {_sl_case('OLD', '-')}\n    {_sl_case('NEW', '')}\nEND",
)
_SL_TRIGGER_NAMES = ("case_steps_insert", "case_steps_delete", "case_steps_update", "case_steps_move")


def _rows(sql: str) -> list[tuple[str, ...]]:
    return [tuple(r) for r in op.get_bind().execute(sa.text(sql))]


def _registry_with_grids() -> None:
    """The registry made again with each case's grid (PostgreSQL): copied into a new table beside it, its keys and
    the foreign keys naming it made again by their own definitions. An UPDATE of every row instead took 8.5 min on
    the 10 M-case province and left the table twice its size (every row a new version, each key's index written)."""
    referencing = _rows(
        "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE contype = 'f' "
        "AND confrelid = 'case_registry'::regclass AND conparentid = 0 ORDER BY 1, 2"
    )
    own = _rows(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'case_registry'::regclass "
        "ORDER BY contype <> 'p', conname"
    )
    for table, name, _ in referencing:
        op.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
    op.execute("CREATE TABLE case_registry_grids (LIKE case_registry INCLUDING DEFAULTS INCLUDING STORAGE)")
    op.execute("ALTER TABLE case_registry_grids ADD COLUMN grid_code varchar(24)")
    op.execute(
        "INSERT INTO case_registry_grids SELECT r.*, c.grid_code FROM case_registry r "
        "LEFT JOIN case_file c ON c.id = r.id AND c.reported_at = r.reported_at"
    )
    op.execute("DROP TABLE case_registry")
    op.execute("ALTER TABLE case_registry_grids RENAME TO case_registry")
    for name, definition in own:
        op.execute(f'ALTER TABLE case_registry ADD CONSTRAINT "{name}" {definition}')
    for table, name, definition in referencing:
        op.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    op.create_table(
        "case_step_count",
        sa.Column("month", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("grid_code", sa.String(length=24), nullable=False),
        sa.Column("handled", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("rated", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("satisfied", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("bounces", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.PrimaryKeyConstraint("month", "grid_code", name=op.f("case_step_count_pkey")),
    )
    if postgres:
        op.execute("LOCK TABLE case_file, case_event IN SHARE MODE")  # no write between the fill and the triggers
        _registry_with_grids()
        op.execute(_PG_REGISTRY_INSERT)
        op.execute(_PG_REGISTRY_UPDATE)
        op.execute(PG_FILL)
        op.execute(_PG_TRIGGERS)
        op.execute("ANALYZE case_registry")
    else:
        op.execute(SL_FILL)
        for trigger in _SL_TRIGGERS:
            op.execute(trigger)
    op.execute("ANALYZE case_step_count")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in _PG_DROP:
            op.execute(statement)
        op.execute(_PG_REGISTRY_BEFORE)
        op.execute("ALTER TABLE case_registry DROP COLUMN grid_code")
    else:
        for name in _SL_TRIGGER_NAMES:
            op.execute(f"DROP TRIGGER {name}")
    op.drop_table("case_step_count")
