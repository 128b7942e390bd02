"""runtime_version: one counter per topic of the serving processes' caches (boundaries, people, calendar,
principals), bumped by the writes that change what a cache holds, so that every server worker drops its stale
copy before its next answer (see gridmap/runtime.py)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

# the topics as this migration knows them (not imported: a later change of gridmap.runtime must not change what an
# old migration inserts)
_TOPICS = ("boundaries", "people", "calendar", "principals")


def upgrade() -> None:
    table = op.create_table(
        "runtime_version",
        sa.Column("topic", sa.String(32), primary_key=True),
        sa.Column("version", sa.BigInteger(), nullable=False, server_default="0"),
    )
    op.bulk_insert(table, [{"topic": topic, "version": 0} for topic in _TOPICS])


def downgrade() -> None:
    op.drop_table("runtime_version")
