"""The case table indexed for a district's map on SQLite: district, report time and what the map reads

A district dispatcher's first screen on SpatiaLite groups the month's cases of the district into clusters and counts
them (up to the points' limit) to decide between points and clusters. Both read the month of every district from
0016's `ix_case_file_reported_map (reported_at, lon, lat, state, due_at)` and checked the district in each case's
row of the table: on the 10 M-case province ~170,000 entries and table rows for the district's ~10,000 cases,
110-145 ms each with the pages cached, and 0.3-0.5 s each on a freshly started server's first screen.

`ix_case_file_district_map (district_code, reported_at, lon, lat, state, due_at)`: the district's month is one
range of it, and it holds what the clusters' grouping and the count read. Those two statements compare the
district by equality on SQLite (`gridmap.store.dialect.seeking`, as the counts of 0022 do). PostgreSQL is not
given it: its district conditions are equalities everywhere and its month partitions are pruned.

The upgrade refreshes the planner's statistics for the index alone when the file has statistics (`sqlite_stat1`),
as 0016 does. On the 10 M-case province: see the CHANGELOG.

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None

NAME = "ix_case_file_district_map"


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    op.execute(f"CREATE INDEX IF NOT EXISTS {NAME} ON case_file (district_code, reported_at, lon, lat, state, due_at)")
    if bind.execute(sa.text("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'")).first():
        bind.exec_driver_sql(f"ANALYZE {NAME}")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute(f"DROP INDEX IF EXISTS {NAME}")
