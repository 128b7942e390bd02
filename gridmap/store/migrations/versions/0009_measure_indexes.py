"""indexes for the measures and the monthly series: a month of an area's reports, deadlines, closures and ratings
read as a range of one index (see gridmap/cases/measures.py `_cases_by_month_ranges`, `_steps_by_month_ranges`,
`_series_hours`) instead of a scan of every case

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# the rating of a `rate` step, written exactly as gridmap.cases.measures.RATING_SQL has it (an index on an expression
# serves only a query that writes the same expression); copied, not imported: an old migration must not change
_RATING = {
    "sqlite": "CAST(JSON_EXTRACT(detail, '$.\"satisfaction\"') AS INTEGER)",
    "postgresql": "(CAST((detail ->> 'satisfaction') AS INTEGER))",
}


def upgrade() -> None:
    op.create_index("ix_case_file_reported_grid", "case_file", ["reported_at", "grid_code"])
    op.create_index(
        "ix_case_file_due_measures",
        "case_file",
        ["due_at", "grid_code", "state", "closed_at", "rework_count", "extension_count"],
    )
    op.create_index("ix_case_file_closed_measures", "case_file", ["closed_at", "grid_code", "state", "reported_at"])
    rating = _RATING[op.get_bind().dialect.name]
    # partial: the cast runs on ratings only (PostgreSQL's cast would refuse any other step whose detail carried a
    # non-number under that key)
    op.execute(f"CREATE INDEX ix_case_event_rating ON case_event (action, at, {rating}) WHERE action = 'rate'")


def downgrade() -> None:
    op.execute("DROP INDEX ix_case_event_rating")
    op.drop_index("ix_case_file_closed_measures", table_name="case_file")
    op.drop_index("ix_case_file_due_measures", table_name="case_file")
    op.drop_index("ix_case_file_reported_grid", table_name="case_file")
