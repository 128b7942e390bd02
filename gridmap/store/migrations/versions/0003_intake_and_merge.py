"""intake channels, duplicates and the catalogue: a case's reference in its source system (a 12345 ticket
number), the patrol worker who reported it, the case a duplicate was merged into; categories can be retired

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _case_columns() -> list[sa.Column[Any]]:
    return [
        sa.Column("external_ref", sa.String(length=64), nullable=True),
        sa.Column("reported_by_staff_id", sa.Integer(), nullable=True),
        sa.Column("merged_into_id", sa.Integer(), nullable=True),
    ]


def upgrade() -> None:
    # plain ADD COLUMN (no batch copy): SpatiaLite keeps the geometry column registered
    for column in _case_columns():
        op.add_column("case_file", column)
    if op.get_bind().dialect.name != "sqlite":  # SQLite cannot add a constraint to an existing table
        op.create_foreign_key("fk_case_file_reported_by", "case_file", "staff", ["reported_by_staff_id"], ["id"])
        op.create_foreign_key("fk_case_file_merged_into", "case_file", "case_file", ["merged_into_id"], ["id"])
    op.add_column("case_category", sa.Column("active", sa.Boolean(), nullable=False, server_default=sa.true()))
    # one case per ticket of a source system: re-importing a 12345 export creates nothing new
    op.create_index("uq_case_file_source_ref", "case_file", ["source", "external_ref"], unique=True)
    op.create_index("ix_case_file_category_reported", "case_file", ["category_id", "reported_at"])
    op.create_index("ix_case_event_action_at", "case_event", ["action", "at"])  # the measures count steps


def downgrade() -> None:
    op.drop_column("case_category", "active")
    op.drop_index("ix_case_event_action_at", table_name="case_event")
    op.drop_index("ix_case_file_category_reported", table_name="case_file")
    op.drop_index("uq_case_file_source_ref", table_name="case_file")
    if op.get_bind().dialect.name != "sqlite":
        op.drop_constraint("fk_case_file_merged_into", "case_file", type_="foreignkey")
        op.drop_constraint("fk_case_file_reported_by", "case_file", type_="foreignkey")
    for column in reversed(_case_columns()):
        op.drop_column("case_file", column.name)
