"""An index of a district's closures by month and hours to close on SQLite (for a district's series)

A 12-month series of a district of a province on SpatiaLite works out its median and 90th percentile hours to
close month by month (`gridmap.cases.measures._series_hours`). Through 0023's index it read the year's closures of
the district (545,806 on the 10 M-case province) and handed each case's hours to Python for its percentiles: the
query ~210 ms of SQL and ~400 ms more to hand the rows over; the hours 0.78-0.85 s of a series of ~0.85 s. SQLite
has no percentile function, and its window functions sorted the year in 1.8 s.

`ix_case_file_district_close_hours (district_code, <China-time month of closure>, <hours from report to
closure>, closed_at, grid_code, reported_at) WHERE state = 'closed'`: a district's closures of a month are one
range of it, in order of their hours, so that each month's count and the two values either side of each percentile
are read from the index alone (`LIMIT … OFFSET …` over the month's range) and only those come to Python. The two
expressions are written exactly as `gridmap.cases.measures` writes them (`CLOSE_MONTH_SQLITE`, `CLOSE_HOURS_SQLITE`),
for SQLite matches an indexed expression by its form; the grid codes, the closure time and the report time are
there for the conditions the series keeps (the district's grids, a month cut short, the report-time bounds).

SQLite only: PostgreSQL works out the percentiles itself (`percentile_cont`, over 0019's index). The upgrade
refreshes the planner's statistics for the index alone when the file has statistics (`sqlite_stat1`), as 0016
does. On the 10 M-case province it took ~36 s to make.

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None

NAME = "ix_case_file_district_close_hours"
# as gridmap.cases.measures.CLOSE_MONTH_SQLITE and CLOSE_HOURS_SQLITE had them when this was written
MONTH = "strftime('%Y-%m', closed_at, '+8 hours')"
HOURS = "(julianday(closed_at) - julianday(reported_at)) * 24.0"


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    bind.exec_driver_sql(
        f"CREATE INDEX IF NOT EXISTS {NAME} ON case_file "
        f"(district_code, {MONTH}, {HOURS}, closed_at, grid_code, reported_at) WHERE state = 'closed'"
    )
    if bind.execute(sa.text("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'")).first():
        bind.exec_driver_sql(f"ANALYZE {NAME}")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute(f"DROP INDEX IF EXISTS {NAME}")
