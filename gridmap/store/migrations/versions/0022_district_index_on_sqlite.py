"""The case table indexed by district, state and deadline on SQLite too (0020's index)

A district dispatcher's console on SpatiaLite counted its six queues (the console's tabs) and the first page of
its case list by reading every case of the file: SQLite had no index led by the district (0015 and 0020 made theirs
on PostgreSQL only), and the district's condition was written as a prefix (`district_code LIKE '530102%'`), which no
index serves. On the 10 M-case province that was 0.71-0.99 s a poll of the queues and 1.9-3.8 s for a counted first
page over HTTP.

`ix_case_file_district_state_due (district_code, state, due_at)`, as 0020's: a count of the district's cases seeks
the district in it and reads its entries alone; a queue's count seeks the district and each state, and an overdue
count each running state's deadlines before now. Those counts now compare the district by equality on SQLite too
(`gridmap.store.dialect.code_is`, `seek`). A page in some order still writes the prefix, so that SQLite walks that
order's index and keeps the district's cases, as before.

0015's reason for leaving SQLite out, that it took its district index (by report time) over the state index for a
district's queues (a few hundred cases among ~600,000), does not hold for this one: it is led by the district and
then the state, so either index finds those few hundred.

The upgrade refreshes the planner's statistics for the index alone when the file has statistics (`sqlite_stat1`),
as 0016 does. On the 10 M-case province: see the CHANGELOG.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None

NAME = "ix_case_file_district_state_due"  # (0020's, on PostgreSQL)


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    op.execute(f"CREATE INDEX IF NOT EXISTS {NAME} ON case_file (district_code, state, due_at)")
    if bind.execute(sa.text("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'")).first():
        bind.exec_driver_sql(f"ANALYZE {NAME}")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute(f"DROP INDEX IF EXISTS {NAME}")
