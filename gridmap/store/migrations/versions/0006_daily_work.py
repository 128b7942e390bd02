"""daily work: notifications to accounts (催办, 督办, new cases) and what the dispatcher's desk needs (the grids
near a case's point, stored with the case so that lists need not read its history)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    # ALTER TABLE … ADD COLUMN on both databases (batch mode would copy SQLite's spatial table)
    op.execute("ALTER TABLE case_file ADD COLUMN locate_candidates JSON")
    op.create_table(
        "notification",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("account_id", sa.Integer(), sa.ForeignKey("account.id"), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("case_id", sa.Integer(), sa.ForeignKey("case_file.id"), nullable=True),
        sa.Column("text", sa.String(500), nullable=False),
        sa.Column("actor", sa.String(64), nullable=True),
        sa.Column("at", _TZ, nullable=False),
        sa.Column("read_at", _TZ, nullable=True),
    )
    op.create_index("ix_notification_account_read", "notification", ["account_id", "read_at"])


def downgrade() -> None:
    op.drop_index("ix_notification_account_read", table_name="notification")
    op.drop_table("notification")
    op.execute("ALTER TABLE case_file DROP COLUMN locate_candidates")
