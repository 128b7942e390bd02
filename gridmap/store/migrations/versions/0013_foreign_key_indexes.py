"""an index on the referencing column of every foreign key that had none (both databases)

A foreign key is checked from both ends: a row written on the referencing side looks up the referenced row (by its
primary key: indexed), and a referenced row deleted (or its key changed) looks for rows still referencing it — on
the referencing table, by the referencing columns. Without an index there, every deleted row scans the whole
referencing table. Fourteen foreign keys had none (found by walking the catalogue of a database migrated to 0012;
tests/integration/test_foreign_key_indexes.py now fails on any foreign key whose columns do not lead an index).
The costly ones were those referencing a case: deleting ~9,900 cases on the province demo (1 M cases, PostGIS)
took over 7 minutes, each case's registry row checked against `case_file.merged_into_id` by a scan of every month
partition, and against `notification.case_id` and `idempotency_key.case_id` by scans of their tables
(tests/benchmarks/scale.py `bench_delete` measures it at 0012 and at 0013 in one run). The others make deleting a
staff member, a party organisation, a department, a category, a place or a draft generation scan the tables that
may name it.

On PostgreSQL the indexes of `case_file` are made on the partitioned table (each month partition gets its own);
the index of a column that is mostly NULL (merged_into_id, department_id, reported_by_staff_id) stays small, as
B-tree deduplication keeps one entry per run of NULLs per page. Making them reads the table once per index
(seconds per million cases; the table is locked against writes meanwhile).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

# (table, referencing column): each foreign key without an index at 0012, on both databases
FOREIGN_KEYS = (
    ("generation", "base_id"),
    ("party_org", "merge_into_id"),
    ("place", "parent_id"),
    ("case_category", "department_id"),
    ("case_file", "generation_id"),
    ("case_file", "branch_id"),
    ("case_file", "assignee_id"),
    ("case_file", "department_id"),
    ("case_file", "reported_by_staff_id"),
    ("case_file", "merged_into_id"),
    ("idempotency_key", "case_id"),
    ("account", "staff_id"),
    ("code_registry", "first_generation_id"),
    ("notification", "case_id"),
)


def upgrade() -> None:
    for table, column in FOREIGN_KEYS:
        op.create_index(f"ix_{table}_{column}", table, [column])


def downgrade() -> None:
    for table, column in reversed(FOREIGN_KEYS):
        op.drop_index(f"ix_{table}_{column}", table_name=table)
