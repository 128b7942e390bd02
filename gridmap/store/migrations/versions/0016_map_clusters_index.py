"""an index covering what the map's clusters read of each case (SQLite only)

The map draws a period's cases zoomed out as clusters (`gridmap.views.mapdata.case_clusters`): the cases reported in
the period, each read for its point, state and deadline. On SQLite the cases of a period were found through
`ix_case_file_reported_grid` and each then read from its row in the table: on the province demo (10 M cases, a
15 GB file) the browser's last 30 days are 383,619 cases whose rows fill ~600 MB of table pages, and reading them
took 200-300 ms with every page in the operating system's cache (more when other files had pushed them out of it).
This index holds `(reported_at, lon, lat, state, due_at)`: the same cases are one range of it, ~35 MB, read in
70 ms (load 2.5).

SQLite only: PostgreSQL reads the period's month partitions (migration 0010) in one sequential pass and groups the
province's month in under half a second already; an index there would be one more for every COPY of an import.

On the 10 M-case province it takes ~0.9 GB (6 % of the file) and 40 s to make (load 2.5; 15-18 s with the table's
pages cached). The upgrade then refreshes the planner's statistics for it alone (2-3 s) when the file has
statistics (`sqlite_stat1`; the province demo's load makes them): with the other indexes described and this one
not, SQLite guesses for it.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

NAME = "ix_case_file_reported_map"


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    op.create_index(NAME, "case_file", ["reported_at", "lon", "lat", "state", "due_at"])
    if bind.execute(sa.text("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'")).first():
        bind.exec_driver_sql(f"ANALYZE {NAME}")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.drop_index(NAME, table_name="case_file")
