"""case_month_count: the cases of each grid counted by month, kept by triggers (both databases)

A 12-month series of an area (the overview's chart, `gridmap.cases.measures.area_series`) counts, month by month,
the cases received (by the month of their report) and the due cohort (by the month of their deadline): due,
suspended, active, closed, closed on time, reworked, extended. Those counts read every case of the area in the
year: for a district of the 10 M-case province (~600,000 cases), 0.2-0.26 s on PostGIS from 0019's index and
2.2-3.1 s on SpatiaLite (a scan), against a target of 300 ms for the whole series.

`case_month_count (month, grid_code) PRIMARY KEY, received, due, suspended, active, closed, closed_on_time,
reworked, extended)`: per grid and China-time month (year × 100 + month), the cases that are in that grid now —
`received` by the month of `reported_at`, the others by the month of `due_at` — with the formulas of
`gridmap.cases.measures._case_counts` (a condition that is NULL in SQL counts as false, as it does there):

- due: a state not in NOT_COUNTED (rejected, voided, merged);
- suspended: due and `suspended`; active: due and not `suspended`;
- closed: active, `closed` and a closure time; closed on time: closed no later than the deadline;
- reworked, extended: active with a rework count, an extension count above 0.

A district's year is then its grids × 12 rows. Cases of no grid are not kept: no area's series counts them.

Kept by the database, as `case_step_count` is (no write path can forget it): an insert into `case_file` adds a
case's counts, a delete takes them away, an update takes away the old row's and adds the new row's (a step that
changes no count — a case dispatched, then accepted — writes nothing). On PostgreSQL, statement triggers over the
transition tables of the partitioned table (one INSERT … ON CONFLICT per statement, rows in key order so that two
writers never wait for each other crosswise; a trigger with transition tables cannot name columns, so every update
of a case runs it); on SQLite, row triggers (the update's on the columns the counts read).

A grid-month's row is locked by a case written in it until that transaction ends: the cases of one grid whose
counts change in one month are committed one after another.

The upgrade fills the table from the cases in one statement. Bulk loads into an empty case table fill it once at the
end (`gridmap.store.bulkload`).

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

NOT_COUNTED = ("rejected", "voided", "merged")
COUNTS = ("received", "due", "suspended", "active", "closed", "closed_on_time", "reworked", "extended")
_NOT_COUNTED = "(" + ", ".join(f"'{s}'" for s in NOT_COUNTED) + ")"
# the due cohort's formulas, over a row of the case table with prefix {c}
_COHORT = {
    "due": "",  # every case of the cohort
    "suspended": "{c}state = 'suspended'",
    "active": "{c}state <> 'suspended'",
    "closed": "{c}state = 'closed' AND {c}closed_at IS NOT NULL",
    "closed_on_time": "{c}state = 'closed' AND {c}closed_at IS NOT NULL AND {c}closed_at <= {c}due_at",
    "reworked": "{c}state <> 'suspended' AND {c}rework_count > 0",
    "extended": "{c}state <> 'suspended' AND {c}extension_count > 0",
}
_COLUMNS = ", ".join(COUNTS)


def _contributions(month: str, source: str, c: str, sign: str) -> str:
    """The counts of case rows (`source`: a FROM clause, or '' for a trigger's row; `c`: the rows' prefix) as rows
    (month, grid_code, counts…) with `sign` ('1' or '-1'): one row for the report, one for the deadline."""
    cohort = ", ".join(f"CASE WHEN {f.format(c=c)} THEN {sign} ELSE 0 END" if f else sign for f in _COHORT.values())
    zeros = ", ".join(f"0 AS {n}" for n in _COHORT)  # the first arm names the columns
    reported, due = month.format(at=f"{c}reported_at"), month.format(at=f"{c}due_at")
    return (
        f"SELECT {reported} AS month, {c}grid_code AS grid_code, {sign} AS received, {zeros}{source} "
        f"WHERE {c}grid_code IS NOT NULL AND {c}reported_at IS NOT NULL\n"
        f"            UNION ALL SELECT {due}, {c}grid_code, 0, {cohort}{source} "
        f"WHERE {c}grid_code IS NOT NULL AND {c}due_at IS NOT NULL AND {c}state NOT IN {_NOT_COUNTED}"
    )


def _upsert(prefix: str) -> str:
    return "ON CONFLICT (month, grid_code) DO UPDATE SET " + ", ".join(
        f"{n} = {prefix}{n} + excluded.{n}" for n in COUNTS
    )


def _counted(parts: list[str], prefix: str) -> str:
    """The INSERT … ON CONFLICT that adds the contributions `parts` (UNION ALL) to the table, by grid and month,
    leaving out a grid-month whose counts do not change; `prefix` names the row already there ("t." on PostgreSQL;
    SQLite's triggers take no alias and name it bare)."""
    sums = ", ".join(f"sum({n})" for n in COUNTS)
    unchanged = " AND ".join(f"sum({n}) = 0" for n in COUNTS)
    body = "\n            UNION ALL ".join(parts)
    return (
        f"INSERT INTO case_month_count{' AS t' if prefix else ''} (month, grid_code, {_COLUMNS})\n"
        f"        SELECT month, grid_code, {sums} FROM (\n            {body}) d\n"
        f"        GROUP BY month, grid_code HAVING NOT ({unchanged}) ORDER BY month, grid_code\n"
        f"    {_upsert(prefix)};"
    )


# ---- PostgreSQL ----
# the China-time month of a time, as year × 100 + month (UTC+8, no daylight saving: the month partitions' rule)
_PG_MONTH = "to_char(({at} AT TIME ZONE 'UTC') + interval '8 hours', 'YYYYMM')::integer"


def _pg(tables: list[tuple[str, str]]) -> str:
    return _counted([_contributions(_PG_MONTH, f" FROM {t} c", "c.", s) for t, s in tables], "t.")


PG_FILL = _pg([("case_file", "1")])
_PG_TRIGGERS = f"""
CREATE FUNCTION gridmap_case_counts_insert() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    {_pg([("new_cases", "1")])}
    RETURN NULL;
END
$fn$;
CREATE FUNCTION gridmap_case_counts_delete() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    {_pg([("old_cases", "-1")])}
    RETURN NULL;
END
$fn$;
CREATE FUNCTION gridmap_case_counts_update() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    {_pg([("old_cases", "-1"), ("new_cases", "1")])}
    RETURN NULL;
END
$fn$;
CREATE TRIGGER case_counts_insert AFTER INSERT ON case_file REFERENCING NEW TABLE AS new_cases
    FOR EACH STATEMENT EXECUTE FUNCTION gridmap_case_counts_insert();
CREATE TRIGGER case_counts_delete AFTER DELETE ON case_file REFERENCING OLD TABLE AS old_cases
    FOR EACH STATEMENT EXECUTE FUNCTION gridmap_case_counts_delete();
CREATE TRIGGER case_counts_update AFTER UPDATE ON case_file
    REFERENCING OLD TABLE AS old_cases NEW TABLE AS new_cases
    FOR EACH STATEMENT EXECUTE FUNCTION gridmap_case_counts_update();
"""
_PG_DROP = (
    "DROP TRIGGER case_counts_insert ON case_file",
    "DROP TRIGGER case_counts_delete ON case_file",
    "DROP TRIGGER case_counts_update ON case_file",
    "DROP FUNCTION gridmap_case_counts_insert()",
    "DROP FUNCTION gridmap_case_counts_delete()",
    "DROP FUNCTION gridmap_case_counts_update()",
)

# ---- SQLite ----
_SL_MONTH = "CAST(strftime('%Y%m', {at}, '+8 hours') AS INTEGER)"


def _sl(rows: list[tuple[str, str]]) -> str:
    return _counted([_contributions(_SL_MONTH, "", f"{r}.", s) for r, s in rows], "")


SL_FILL = _counted([_contributions(_SL_MONTH, " FROM case_file c", "c.", "1")], "")
# the columns the counts read: an update of none of them changes nothing
READ = ("grid_code", "reported_at", "due_at", "state", "closed_at", "rework_count", "extension_count")
_SL_TRIGGERS = (
    f"CREATE TRIGGER case_counts_insert AFTER INSERT ON case_file BEGIN\n    {_sl([('NEW', '1')])}\nEND",
    f"CREATE TRIGGER case_counts_delete AFTER DELETE ON case_file BEGIN\n    {_sl([('OLD', '-1')])}\nEND",
    f"CREATE TRIGGER case_counts_update AFTER UPDATE OF {', '.join(READ)} ON case_file BEGIN\n"
    f"    {_sl([('OLD', '-1'), ('NEW', '1')])}\nEND",
)
_SL_TRIGGER_NAMES = ("case_counts_insert", "case_counts_delete", "case_counts_update")


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    op.create_table(
        "case_month_count",
        sa.Column("month", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("grid_code", sa.String(length=24), nullable=False),
        *(sa.Column(n, sa.Integer(), server_default=sa.text("0"), nullable=False) for n in COUNTS),
        sa.PrimaryKeyConstraint("month", "grid_code", name=op.f("case_month_count_pkey")),
    )
    if postgres:
        op.execute("LOCK TABLE case_file IN SHARE MODE")  # no write between the fill and the triggers
        op.execute(PG_FILL)
        op.execute(_PG_TRIGGERS)
    else:
        op.execute(SL_FILL)
        for trigger in _SL_TRIGGERS:
            op.execute(trigger)
    op.execute("ANALYZE case_month_count")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in _PG_DROP:
            op.execute(statement)
    else:
        for name in _SL_TRIGGER_NAMES:
            op.execute(f"DROP TRIGGER {name}")
    op.drop_table("case_month_count")
