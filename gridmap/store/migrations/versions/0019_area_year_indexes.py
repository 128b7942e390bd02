"""The case table indexed for an area's year: by grid code first, and by month of closure then grid code
(PostgreSQL only)

A 12-month series of an area (`gridmap.cases.measures.area_series`) reads the area's cases reported or due in the
year (the counts) and those closed in each month (the hours to close, month by month). The indexes of 0009 lead
with the time, then the grid code: for a district of the 10 M-case province each month's range holds every
district's entries, 16 times what the district needs (0.8-1.4 s for the counts and 1.2-1.6 s for the hours, once
migration 0018 had taken the steps from 10-12 s to 15 ms). Now:

- `ix_case_file_grid_reported (grid_code, reported_at) INCLUDE (due_at, state, closed_at, rework_count,
  extension_count)`: the area's range of grid codes first, holding what the counts' formulas read — the counts
  from the index alone, the area's entries only;
- `ix_case_file_closed_month (date_trunc('month', closed_at AT TIME ZONE INTERVAL '+08:00'), grid_code) INCLUDE
  (closed_at, state, reported_at)`: the China-time month of closure (an equality), then the grid codes' range —
  each month's closures of the area are one range of the index (`gridmap.cases.measures._month_is` writes the
  same expression). `AT TIME ZONE` with an interval and `date_trunc` of a timestamp are immutable, as an index
  expression must be.

Made on PostgreSQL only: SQLite keeps no histogram of a column's values and took a district's index over the
state's before (see 0015); its series of a one-district city reads the months' ranges of 0009. Each took 10-15 s to
build on the province, and adds an index entry to each write of a case.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

INDEXES = {
    "ix_case_file_grid_reported": (
        "(grid_code, reported_at) INCLUDE (due_at, state, closed_at, rework_count, extension_count)"
    ),
    "ix_case_file_closed_month": (
        "((date_trunc('month', closed_at AT TIME ZONE INTERVAL '+08:00')), grid_code) "
        "INCLUDE (closed_at, state, reported_at)"
    ),
}


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name, columns in INDEXES.items():
        op.execute(f"CREATE INDEX IF NOT EXISTS {name} ON case_file {columns}")
    op.execute("ANALYZE case_file")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name in INDEXES:
        op.execute(f"DROP INDEX IF EXISTS {name}")
