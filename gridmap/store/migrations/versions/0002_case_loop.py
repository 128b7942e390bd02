"""the case loop: working calendar, idempotency keys, who handled and verified, whistles, counters, requests

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

import datetime as dt
from typing import Any

import sqlalchemy as sa
from alembic import op

# The seed calendar as this migration inserts it: the State Council notices for 2025 and 2026, written out here
# rather than imported, so that a later edit of gridmap.calendar's list never changes what this old migration does
# (a new year's notice comes with a migration of its own; tests/integration/test_storage.py checks that the list in
# gridmap.calendar and the migrated rows agree).
_HOLIDAYS = [  # first day, last day, name
    ("2025-01-01", "2025-01-01", "元旦"),
    ("2025-01-28", "2025-02-04", "春节"),
    ("2025-04-04", "2025-04-06", "清明节"),
    ("2025-05-01", "2025-05-05", "劳动节"),
    ("2025-05-31", "2025-06-02", "端午节"),
    ("2025-10-01", "2025-10-08", "国庆节、中秋节"),
    ("2026-01-01", "2026-01-03", "元旦"),
    ("2026-02-15", "2026-02-23", "春节"),
    ("2026-04-04", "2026-04-06", "清明节"),
    ("2026-05-01", "2026-05-05", "劳动节"),
    ("2026-06-19", "2026-06-21", "端午节"),
    ("2026-09-25", "2026-09-27", "中秋节"),
    ("2026-10-01", "2026-10-07", "国庆节"),
]
_WORKDAYS = [  # weekend days worked
    ("2025-01-26", "春节调休"),
    ("2025-02-08", "春节调休"),
    ("2025-04-27", "劳动节调休"),
    ("2025-09-28", "国庆节调休"),
    ("2025-10-11", "国庆节调休"),
    ("2026-01-04", "元旦调休"),
    ("2026-02-14", "春节调休"),
    ("2026-02-28", "春节调休"),
    ("2026-05-09", "劳动节调休"),
    ("2026-09-20", "国庆节调休"),
    ("2026-10-10", "国庆节调休"),
]


def _seed_days() -> list[tuple[dt.date, str, str]]:
    rows = []
    for first, last, name in _HOLIDAYS:
        day, end = dt.date.fromisoformat(first), dt.date.fromisoformat(last)
        while day <= end:
            rows.append((day, "holiday", name))
            day += dt.timedelta(days=1)
    rows += [(dt.date.fromisoformat(d), "workday", name) for d, name in _WORKDAYS]
    return sorted(rows)


revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _case_columns() -> list[sa.Column[Any]]:
    return [
        sa.Column("handled_by", sa.String(length=64), nullable=True),
        sa.Column("handled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("department_id", sa.Integer(), nullable=True),
        sa.Column("whistled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("department_due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("department_reported_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("escalation_level", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("escalated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("rework_count", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("bounce_count", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("reopen_count", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("extension_count", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("pending", sa.JSON(), nullable=True),
        sa.Column("suspended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("rated_at", sa.DateTime(timezone=True), nullable=True),
    ]


def upgrade() -> None:
    op.create_table(
        "calendar_day",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("day"),
    )
    calendar = sa.table(
        "calendar_day", sa.column("day", sa.Date()), sa.column("kind", sa.String()), sa.column("name", sa.String())
    )
    op.bulk_insert(calendar, [{"day": d, "kind": k, "name": n} for d, k, n in _seed_days()])
    op.create_table(
        "idempotency_key",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["case_file.id"],
        ),
        sa.PrimaryKeyConstraint("key"),
    )
    # plain ADD COLUMN (no batch copy): SpatiaLite keeps the geometry column registered
    for column in _case_columns():
        op.add_column("case_file", column)
    if op.get_bind().dialect.name != "sqlite":  # SQLite cannot add a constraint to an existing table
        op.create_foreign_key("fk_case_file_department", "case_file", "department", ["department_id"], ["id"])
    op.create_index("ix_case_file_due", "case_file", ["state", "due_at"])


def downgrade() -> None:
    op.drop_index("ix_case_file_due", table_name="case_file")
    if op.get_bind().dialect.name != "sqlite":
        op.drop_constraint("fk_case_file_department", "case_file", type_="foreignkey")
    for column in reversed(_case_columns()):
        op.drop_column("case_file", column.name)
    op.drop_table("idempotency_key")
    op.drop_table("calendar_day")
