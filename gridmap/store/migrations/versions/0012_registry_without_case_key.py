"""case_registry without its foreign key to case_file (PostgreSQL; a no-op on SQLite)

Migration 0010 gave `case_registry (id, reported_at)` a foreign key to the partitioned `case_file`'s primary key,
DEFERRABLE INITIALLY DEFERRED. Its check runs once per registry row at commit, as a query on the partitioned table
whose cached generic plan locks every partition on each execution: a cost per case that grows with the number of
months. Measured on the small demo (load 2, 2 cores): the five commits of a 10,000-ticket hotline import took
6.2 s of its 10.6 s (1.2 s per 2,000 cases); with the key gone a commit of 2,000 cases takes milliseconds.

What the key guarded — a registry row whose case does not exist — the statement-level triggers of 0010 already
guarantee for every write through `case_file` (insert adds, update follows, delete removes, in the same statement);
only a write straight into a partition could bypass them, and only the month function does that, moving rows it
has just read. The registry's own keys (ids, numbers, tickets unique across partitions) and every reference to a
case (events, attachments, notifications, idempotency keys, merges → case_registry) are unchanged.

`gridmap_case_partition` is redefined without dropping and re-adding the key around the move.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

_KEY = "fk_case_registry_case"

# 0010's month function, the key's drop and re-add around the move left out (`with_key` puts them back)
_MONTH_FUNCTION = r"""
CREATE OR REPLACE FUNCTION gridmap_case_partition(at timestamptz) RETURNS text LANGUAGE plpgsql AS $fn$
DECLARE
    local_month timestamp := date_trunc('month', (at AT TIME ZONE 'UTC') + interval '8 hours');
    lo timestamptz := (local_month - interval '8 hours') AT TIME ZONE 'UTC';
    hi timestamptz := (local_month + interval '1 month' - interval '8 hours') AT TIME ZONE 'UTC';
    name text := 'case_file_p' || to_char(local_month, 'YYYYMM');
BEGIN
    IF at IS NULL THEN
        RETURN NULL;
    END IF;
    IF to_regclass(name) IS NOT NULL THEN
        RETURN name;
    END IF;
    LOCK TABLE case_file_default IN EXCLUSIVE MODE;  -- no write slips into the month between check and move
    IF EXISTS (SELECT 1 FROM case_file_default WHERE reported_at >= lo AND reported_at < hi) THEN
        EXECUTE format('CREATE TABLE %I (LIKE case_file INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', name);
        {drop}
        EXECUTE format('INSERT INTO %I SELECT * FROM case_file_default WHERE reported_at >= $1 AND reported_at < $2',
                       name) USING lo, hi;
        DELETE FROM case_file_default WHERE reported_at >= lo AND reported_at < hi;
        EXECUTE format('ALTER TABLE case_file ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)', name, lo, hi);
        {add}
    ELSE
        EXECUTE format('CREATE TABLE %I PARTITION OF case_file FOR VALUES FROM (%L) TO (%L)', name, lo, hi);
    END IF;
    RETURN name;
END
$fn$
"""

_DROP_KEY = f"ALTER TABLE case_registry DROP CONSTRAINT {_KEY};"
_ADD_KEY = (
    f"ALTER TABLE case_registry ADD CONSTRAINT {_KEY} FOREIGN KEY (id, reported_at)\n"
    "            REFERENCES case_file (id, reported_at) DEFERRABLE INITIALLY DEFERRED NOT VALID;\n"
    f"        ALTER TABLE case_registry VALIDATE CONSTRAINT {_KEY};"
)


def _month_function(with_key: bool) -> str:
    return _MONTH_FUNCTION.replace("{drop}", _DROP_KEY if with_key else "").replace(
        "{add}", _ADD_KEY if with_key else ""
    )


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"ALTER TABLE case_registry DROP CONSTRAINT IF EXISTS {_KEY}")
    op.execute(_month_function(with_key=False))


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        f"ALTER TABLE case_registry ADD CONSTRAINT {_KEY} FOREIGN KEY (id, reported_at) "
        "REFERENCES case_file (id, reported_at) DEFERRABLE INITIALLY DEFERRED"
    )
    op.execute(_month_function(with_key=True))
