"""The case table indexed by district, state and deadline (PostgreSQL only)

A district dispatcher's console polls the counts of its queues (its tabs), and its overdue list (the case list of
state `overdue`) counts its cases. On the 10 M-case province both read a district's cases in some
states through two indexes joined by bitmap and then the table: 已派遣 (dispatched, accepted, rework) 0.26-0.34 s,
超期 0.26 s, and the overdue list's count 0.72-0.85 s (`state NOT IN …`, which no index seeks), so the console's
counts took 0.6-0.8 s a poll. `ix_case_file_district_state_due (district_code, state, due_at)` answers each from
the index alone by a seek per state (7 ms, 2 ms); the list's `overdue` now names the running states as the queue
does (`gridmap.cases.queries.state_condition`: the same cases for every state the app writes, `CaseState`).

Made on PostgreSQL only, as `ix_case_file_district_reported` (0015): SQLite keeps no histogram of a column's values
and took a district's index over the state's for the queues. About 12 s to build on the province.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

NAME = "ix_case_file_district_state_due"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"CREATE INDEX IF NOT EXISTS {NAME} ON case_file (district_code, state, due_at)")
    op.execute("ANALYZE case_file")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"DROP INDEX IF EXISTS {NAME}")
