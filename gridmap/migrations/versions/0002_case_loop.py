"""the case loop: working calendar, idempotency keys, who handled and verified, whistles, counters, requests

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

from gridmap.workcal import seed_days  # the 2025 and 2026 State Council notices

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

def _case_columns() -> list[sa.Column]:
    return [
        sa.Column('handled_by', sa.String(length=64), nullable=True),
        sa.Column('handled_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('department_id', sa.Integer(), nullable=True),
        sa.Column('whistled_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('department_due_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('department_reported_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('escalation_level', sa.Integer(), nullable=False, server_default='0'),
        sa.Column('escalated_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('rework_count', sa.Integer(), nullable=False, server_default='0'),
        sa.Column('bounce_count', sa.Integer(), nullable=False, server_default='0'),
        sa.Column('reopen_count', sa.Integer(), nullable=False, server_default='0'),
        sa.Column('extension_count', sa.Integer(), nullable=False, server_default='0'),
        sa.Column('pending', sa.JSON(), nullable=True),
        sa.Column('suspended_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('rated_at', sa.DateTime(timezone=True), nullable=True),
    ]


def upgrade() -> None:
    op.create_table('calendar_day',
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('day')
    )
    calendar = sa.table('calendar_day', sa.column('day', sa.Date()), sa.column('kind', sa.String()),
                        sa.column('name', sa.String()))
    op.bulk_insert(calendar, [{'day': d, 'kind': k, 'name': n} for d, k, n in seed_days()])
    op.create_table('idempotency_key',
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('request_hash', sa.String(length=64), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['case_id'], ['case_file.id'], ),
    sa.PrimaryKeyConstraint('key')
    )
    # plain ADD COLUMN (no batch copy): SpatiaLite keeps the geometry column registered
    for column in _case_columns():
        op.add_column('case_file', column)
    if op.get_bind().dialect.name != 'sqlite':  # SQLite cannot add a constraint to an existing table
        op.create_foreign_key('fk_case_file_department', 'case_file', 'department', ['department_id'], ['id'])
    op.create_index('ix_case_file_due', 'case_file', ['state', 'due_at'])


def downgrade() -> None:
    op.drop_index('ix_case_file_due', table_name='case_file')
    if op.get_bind().dialect.name != 'sqlite':
        op.drop_constraint('fk_case_file_department', 'case_file', type_='foreignkey')
    for column in reversed(_case_columns()):
        op.drop_column('case_file', column.name)
    op.drop_table('idempotency_key')
    op.drop_table('calendar_day')
