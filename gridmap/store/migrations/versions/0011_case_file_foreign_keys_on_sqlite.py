"""the three foreign keys of case_file that 0002 and 0003 could not add on SQLite (department_id, reported_by_staff_id,
merged_into_id): SQLite has no ALTER TABLE ... ADD CONSTRAINT, so each column is added again with its REFERENCES
clause, filled from the old one, and takes its name; found by tests/integration/test_migrations_match_models.py.
Nothing to do on PostgreSQL, which has had them since 0002/0003.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

# (column, referred table): none of the three is indexed, unique or named by a trigger or view, so SQLite can drop it
_COLUMNS = (("department_id", "department"), ("reported_by_staff_id", "staff"), ("merged_into_id", "case_file"))


def _swap(references: bool) -> None:
    # plain ALTER TABLE (no batch copy of the table): SpatiaLite keeps the geometry column and its triggers registered
    for column, referred in _COLUMNS:
        clause = f" REFERENCES {referred} (id)" if references else ""
        op.execute(f"ALTER TABLE case_file ADD COLUMN {column}__new INTEGER{clause}")
        # with foreign_keys=ON a value that names no row stops the upgrade here rather than being lost
        op.execute(f"UPDATE case_file SET {column}__new = {column} WHERE {column} IS NOT NULL")
        op.execute(f"ALTER TABLE case_file DROP COLUMN {column}")
        op.execute(f"ALTER TABLE case_file RENAME COLUMN {column}__new TO {column}")


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _swap(references=True)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _swap(references=False)
