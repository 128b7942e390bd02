"""An index of the cases by grid and closure on SQLite (for an area's hours to close)

A 12-month series of a district of a province on SpatiaLite works out its median and 90th percentile hours to
close from the year's closures of the district (`gridmap.cases.measures._series_hours`). SQLite found them through
`ix_case_file_closed_measures`, led by the closure time: it read the year's closures of every district (8.7 M on
the 10 M-case province) to keep the district's 545,806, by their grid codes: ~0.78 s of the query's 1.1-1.2 s,
and the series took 1.4-2.8 s.

`ix_case_file_grid_closed (grid_code, closed_at, state, reported_at)`: the area's grid codes are one range of it
(the series names the range alone, the same cases as the prefix for a code of digits), and it holds what the
query reads, so the same rows come from the index alone: 374-390 ms on the province, of which ~300 ms is handing
them to Python.

SQLite only: PostgreSQL reads a district's closures month by month through 0019's index of grid and month of
closure. The upgrade refreshes the planner's statistics for the index alone when the file has statistics
(`sqlite_stat1`), as 0016 does. On the 10 M-case province it takes ~45 s to make (see the CHANGELOG).

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None

NAME = "ix_case_file_grid_closed"


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    op.execute(f"CREATE INDEX IF NOT EXISTS {NAME} ON case_file (grid_code, closed_at, state, reported_at)")
    if bind.execute(sa.text("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'")).first():
        bind.exec_driver_sql(f"ANALYZE {NAME}")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute(f"DROP INDEX IF EXISTS {NAME}")
