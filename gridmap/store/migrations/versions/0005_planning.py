"""planning: who made, submitted and approved a generation and from which it was copied; locked areas; the
register of every area code ever used; the edit log of drafts (undo/redo); branch and staff assignments a
draft brings with it; a party branch marked for merging

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_TZ = sa.DateTime(timezone=True)


def _add_columns(table: str, columns: list[tuple[str, str, str | None]]) -> None:
    """ALTER TABLE … ADD COLUMN, the same on both databases (batch mode would copy SQLite's tables, which the
    spatial metadata and the foreign keys pointing at them do not survive)."""
    for name, sql_type, references in columns:
        ref = f" REFERENCES {references}" if references else ""
        op.execute(f"ALTER TABLE {table} ADD COLUMN {name} {sql_type}{ref}")


def upgrade() -> None:
    tz = "TIMESTAMP WITH TIME ZONE" if op.get_bind().dialect.name == "postgresql" else "DATETIME"
    _add_columns(
        "generation",
        [
            ("base_id", "INTEGER", "generation(id)"),
            ("created_by", "VARCHAR(64)", None),
            ("submitted_by", "VARCHAR(64)", None),
            ("submitted_at", tz, None),
            ("approved_by", "VARCHAR(64)", None),
            ("approved_at", tz, None),
            ("activated_at", tz, None),
        ],
    )
    _add_columns("area", [("locked", "BOOLEAN NOT NULL DEFAULT false", None)])
    _add_columns("party_org", [("merge_into_id", "INTEGER", "party_org(id)")])
    op.create_table(
        "code_registry",
        sa.Column("code", sa.String(24), primary_key=True),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("first_generation_id", sa.Integer(), sa.ForeignKey("generation.id")),
        sa.Column("registered_at", _TZ, nullable=False, server_default=sa.func.current_timestamp()),
    )
    op.execute(
        "INSERT INTO code_registry (code, level, first_generation_id) "
        "SELECT code, MIN(level), MIN(generation_id) FROM area GROUP BY code"
    )
    op.create_table(
        "plan_edit",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("generation_id", sa.Integer(), sa.ForeignKey("generation.id"), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("op", sa.String(32), nullable=False),
        sa.Column("params", sa.JSON()),
        sa.Column("before", sa.JSON()),
        sa.Column("after", sa.JSON()),
        sa.Column("actor", sa.String(64)),
        sa.Column("at", _TZ, nullable=False),
        sa.Column("undone", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.UniqueConstraint("generation_id", "seq", name="uq_plan_edit_generation_seq"),
    )
    op.create_table(
        "plan_assignment",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("generation_id", sa.Integer(), sa.ForeignKey("generation.id"), nullable=False, index=True),
        sa.Column("area_code", sa.String(24), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("ref_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(32)),
        sa.Column("actor", sa.String(64)),
        sa.Column("at", _TZ, nullable=False),
        sa.UniqueConstraint("generation_id", "area_code", "kind", "ref_id", name="uq_plan_assignment"),
    )


def downgrade() -> None:
    op.drop_table("plan_assignment")
    op.drop_table("plan_edit")
    op.drop_table("code_registry")
    with op.batch_alter_table("party_org") as batch:
        batch.drop_column("merge_into_id")
    with op.batch_alter_table("area") as batch:
        batch.drop_column("locked")
    with op.batch_alter_table("generation") as batch:
        for column in (
            "activated_at",
            "approved_at",
            "approved_by",
            "submitted_at",
            "submitted_by",
            "created_by",
            "base_id",
        ):
            batch.drop_column(column)
