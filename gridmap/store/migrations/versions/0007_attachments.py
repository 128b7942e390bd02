"""attachments: photos and files of a case (上报, 处置前, 处置后), their thumbnails and where they are stored

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "attachment",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("case_id", sa.Integer(), sa.ForeignKey("case_file.id"), nullable=False),
        sa.Column("stage", sa.String(16), nullable=False),
        sa.Column("content_type", sa.String(32), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("bytes", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("backend", sa.String(16), nullable=False),
        sa.Column("storage_key", sa.String(200), nullable=False),
        sa.Column("thumbnail_key", sa.String(200), nullable=False),
        sa.Column("thumb_width", sa.Integer(), nullable=False),
        sa.Column("thumb_height", sa.Integer(), nullable=False),
        sa.Column("gps_lon", sa.Float()),
        sa.Column("gps_lat", sa.Float()),
        sa.Column("uploaded_by", sa.String(64), nullable=False),
        sa.Column("at", _TZ, nullable=False),
        sa.CheckConstraint("stage IN ('report', 'before', 'after', 'patrol')", name="ck_attachment_stage"),
    )
    op.create_index("ix_attachment_case_id", "attachment", ["case_id"])


def downgrade() -> None:
    op.drop_index("ix_attachment_case_id", table_name="attachment")
    op.drop_table("attachment")
