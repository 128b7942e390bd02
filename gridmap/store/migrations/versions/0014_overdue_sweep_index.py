"""a partial index of the cases the overdue sweep may escalate (both databases)

The server sweeps for overdue cases at start-up and every minute (`gridmap.cases.workflow.escalate_overdue`): the
open cases (`accepted`, `rework`) past their deadline and not yet escalated, oldest deadline first, a chunk of 1,000
at a time. No index led with those conditions and the deadline: on PostgreSQL the planner walked the measures' index
led by `due_at` over every case ever due and read each one from its month partition to test its state and level —
12 to 17 s per chunk on the province demo (10 M cases, load 6-7 on 2 cores), every minute even with nothing to do,
and ~120 chunks after a start on a database where thousands had come due. The index holds only the candidates
(`escalation_level = 0 AND state IN ('accepted', 'rework')`, the text `tables.OVERDUE_CANDIDATES` that the sweep's
query also uses, so that SQLite, which needs the very terms, uses it too): a chunk reads the ~1,000 entries it
escalates (11 ms), and an escalated or closed case leaves the index.

On PostgreSQL it is made on the partitioned table (each month partition gets its own). Making it reads the table
once (3.2 s on the 10 M cases, load 6.5, in a transaction rolled back; the table is locked against writes
meanwhile) and it is small (the open cases not yet escalated: ~60,000 of 10 M).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

# as in gridmap.store.tables.OVERDUE_CANDIDATES at this revision (a migration does not follow later edits of a model)
WHERE = "escalation_level = 0 AND state IN ('accepted', 'rework')"


def upgrade() -> None:
    op.create_index(
        "ix_case_file_overdue",
        "case_file",
        ["due_at", "id"],
        postgresql_where=sa.text(WHERE),
        sqlite_where=sa.text(WHERE),
    )


def downgrade() -> None:
    op.drop_index("ix_case_file_overdue", table_name="case_file")
