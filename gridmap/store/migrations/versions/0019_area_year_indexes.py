"""The case table indexed by grid code first for an area's year (PostgreSQL only)

A 12-month series of an area (`gridmap.cases.measures.area_series`) reads the area's cases reported or due in the
year (the counts) and those closed in it (the hours to close). The indexes of 0009 lead with the time, then the
grid code: for a district of the 10 M-case province each month's range holds every district's entries, 16 times
what the district needs (0.7-1.1 s for the counts and 1.2-1.6 s for the hours, after migration 0018 took the steps
from 4.4-11 s to 15 ms). Led by the grid code (the area's range of codes), then the time, and holding what the
formulas read:

- `ix_case_file_grid_reported (grid_code, reported_at) INCLUDE (due_at, state, closed_at, rework_count,
  extension_count)`: the counts, read from the index alone;
- `ix_case_file_grid_closed (grid_code, closed_at) INCLUDE (state, reported_at)`: the hours, month by month.

Made on PostgreSQL only: SQLite keeps no histogram of a column's values and took a district's index over the
state's before (see 0015); its series of a one-district city reads the months' ranges of 0009. Each costs about
10 s to build on the province, and an index entry on each write of a case.

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
    "ix_case_file_grid_closed": "(grid_code, closed_at) INCLUDE (state, reported_at)",
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
