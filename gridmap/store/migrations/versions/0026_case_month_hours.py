"""case_month_hours: a district's hours to close of each past month, kept until a closure of that month changes

A 12-month series of a district (`gridmap.cases.measures.area_series`) works out the median and 90th percentile of
the hours from report to closure of the cases closed in each month. On the 10 M-case province that is ~45,000
closures a month, each month read from 0019's index and sorted by PostgreSQL (`percentile_cont`): ~200 ms of a
series of ~200-265 ms in process, 178-328 ms over HTTP, against a target of 300 ms. A month's closures seldom change
once it has ended, yet every series sorted all twelve again.

`case_month_hours (month, area_code) PRIMARY KEY, p50, p90)`: for a China-time month (year × 100 + month, as in
`case_month_count`) and a district, the two percentiles as the series works them out (both NULL: no closure that
month). Written only by `gridmap.cases.measures.keep_close_hours`, for whole months that have ended, and read by the
series for those months; any other month is worked out from the cases as before.

Kept right by the database: any write of a case that is closed before or after it and could change the hours (an
insert, a delete, an update of its state, closure time, report time, district or grid: a closure reopened, moved to
another grid, its report time corrected, a historical import) deletes the rows of the month of its closure, before
and after; the next `keep_close_hours` works them out again. That is the month's rows of every district: such
writes are rare once a month has ended, and a closure of the current month finds no row to delete. A rating, a
note or a new version of a closed case deletes nothing. On PostgreSQL a statement trigger per operation over the
transition tables (as 0021's; the update's compares each case's old and new values, since a trigger with
transition tables cannot name columns); on SQLite row triggers (the update's on those columns).

No write may slip between `keep_close_hours`' reading of a month and its commit (its rows would then be stale for
good). On PostgreSQL the trigger takes a shared advisory lock on the month before it deletes (writers never wait
for each other), and `keep_close_hours` takes the same lock exclusively before it reads: a writer that has written
the month commits before the read begins (it is in the read), or deletes the rows after they are committed. On
SQLite, writes are one at a time: `keep_close_hours` takes the write lock first (`BEGIN IMMEDIATE`).

The upgrade makes the table empty; the server fills it in the background (`keep_close_hours` at start-up and on the
overdue sweep's schedule), and so do the demo loads. Bulk loads into an empty case table empty it too
(`gridmap.store.bulkload`).

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None

# the advisory locks' first key (two 32-bit keys: a space apart from single 64-bit keys such as the sweep's); the
# second is the month. 'gmhc' as an integer.
LOCK_CLASS = 0x676D6863
_CLOSED = "{c}state = 'closed' AND {c}closed_at IS NOT NULL"

# ---- PostgreSQL ----
# the China-time month of a time, as year × 100 + month (0021's)
_PG_MONTH = "to_char(({at} AT TIME ZONE 'UTC') + interval '8 hours', 'YYYYMM')::integer"


def _pg_function(name: str, tables: list[tuple[str, int]]) -> str:
    """A trigger function deleting the rows of the months of the closures in the transition `tables`, each (name,
    sign): one table, every closure of it; old and new (1, -1), the closures whose values the hours read changed,
    in the month of either (a case whose values are the same before and after cancels out, in a hash aggregate: a
    join of the two tables, which have no statistics, was planned as a nested loop, 9.4 s for 5,000 cases)."""
    columns = ", ".join(READ)
    closures = "\n                UNION ALL ".join(
        f"SELECT id, {_PG_MONTH.format(at='closed_at')} AS month, {columns}, {sign} AS sign FROM {table} "
        f"WHERE {_CLOSED.format(c='')}"
        for table, sign in tables
    )
    changed = f" GROUP BY id, month, {columns} HAVING sum(sign) <> 0" if len(tables) > 1 else ""
    return f"""
CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE
    closure_month integer;
BEGIN
    FOR closure_month IN
            SELECT DISTINCT month FROM (SELECT month FROM (
                {closures}) d{changed}) m
            ORDER BY month
    LOOP
        PERFORM pg_advisory_xact_lock_shared({LOCK_CLASS}, closure_month);
        DELETE FROM case_month_hours WHERE month = closure_month;
    END LOOP;
    RETURN NULL;
END
$fn$;"""


# the columns the series' hours read (the state, the closure and report times, the district and its grids): an
# update that changes none of them (a rating, a note, a version) changes no month's hours
READ = ("state", "closed_at", "reported_at", "district_code", "grid_code")
_PG_TRIGGERS = f"""
{_pg_function("gridmap_case_hours_insert", [("new_cases", 1)])}
{_pg_function("gridmap_case_hours_delete", [("old_cases", 1)])}
{_pg_function("gridmap_case_hours_update", [("old_cases", 1), ("new_cases", -1)])}
CREATE TRIGGER case_hours_insert AFTER INSERT ON case_file REFERENCING NEW TABLE AS new_cases
    FOR EACH STATEMENT EXECUTE FUNCTION gridmap_case_hours_insert();
CREATE TRIGGER case_hours_delete AFTER DELETE ON case_file REFERENCING OLD TABLE AS old_cases
    FOR EACH STATEMENT EXECUTE FUNCTION gridmap_case_hours_delete();
CREATE TRIGGER case_hours_update AFTER UPDATE ON case_file
    REFERENCING OLD TABLE AS old_cases NEW TABLE AS new_cases
    FOR EACH STATEMENT EXECUTE FUNCTION gridmap_case_hours_update();
"""
_PG_DROP = (
    "DROP TRIGGER case_hours_insert ON case_file",
    "DROP TRIGGER case_hours_delete ON case_file",
    "DROP TRIGGER case_hours_update ON case_file",
    "DROP FUNCTION gridmap_case_hours_insert()",
    "DROP FUNCTION gridmap_case_hours_delete()",
    "DROP FUNCTION gridmap_case_hours_update()",
)

# ---- SQLite ----
_SL_MONTH = "CAST(strftime('%Y%m', {at}, '+8 hours') AS INTEGER)"


def _sl_delete(row: str) -> str:
    return (
        f"DELETE FROM case_month_hours WHERE {_CLOSED.format(c=row + '.')} "
        f"AND month = {_SL_MONTH.format(at=row + '.closed_at')};"
    )


_SL_TRIGGERS = (
    f"CREATE TRIGGER case_hours_insert AFTER INSERT ON case_file BEGIN\n    {_sl_delete('NEW')}\nEND",
    f"CREATE TRIGGER case_hours_delete AFTER DELETE ON case_file BEGIN\n    {_sl_delete('OLD')}\nEND",
    f"CREATE TRIGGER case_hours_update AFTER UPDATE OF {', '.join(READ)} ON case_file BEGIN\n"
    f"    {_sl_delete('OLD')}\n    {_sl_delete('NEW')}\nEND",
)
_SL_TRIGGER_NAMES = ("case_hours_insert", "case_hours_delete", "case_hours_update")
# what a bulk load into an empty case table does instead of the insert trigger (`gridmap.store.bulkload`)
FILL = "DELETE FROM case_month_hours"


def upgrade() -> None:
    op.create_table(
        "case_month_hours",
        sa.Column("month", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("area_code", sa.String(length=24), nullable=False),
        sa.Column("p50", sa.Float(), nullable=True),
        sa.Column("p90", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("month", "area_code", name=op.f("case_month_hours_pkey")),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_TRIGGERS)
    else:
        for trigger in _SL_TRIGGERS:
            op.execute(trigger)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in _PG_DROP:
            op.execute(statement)
    else:
        for name in _SL_TRIGGER_NAMES:
            op.execute(f"DROP TRIGGER {name}")
    op.drop_table("case_month_hours")
