"""case_file partitioned by month of report time on PostgreSQL (native declarative partitioning); a no-op on SQLite

What changes (PostgreSQL only; the table keeps its name and every column, in the same order, so INSERT and COPY
into `case_file` work unchanged):

- `case_file` is `PARTITION BY RANGE (reported_at)`: one partition per calendar month of China time
  (`case_file_p202611` holds [2026-11-01 00:00+08, 2026-12-01 00:00+08)) and a DEFAULT partition
  `case_file_default` that takes any report time no month partition covers (years in the past or the future), so a
  write never fails for want of a partition. The migration makes every month from the earliest case (or a year
  ago) to a year ahead; `gridmap_case_partitions(lo, hi)` (SQL; `gridmap.store.partitions.ensure_months` in Python,
  `gridmap case-partitions` on the command line) makes more, moving rows the DEFAULT partition holds for those
  months into them. Every server makes the next 12 months and adopts the months of cases waiting in the DEFAULT
  partition at start-up and hourly (api/gridmap_api/main.py `_case_months`).
- The primary key is `(id, reported_at)`: PostgreSQL requires the partition key in every primary key and unique
  constraint of a partitioned table. Every index the table had is kept, made on the partitioned table (each
  partition gets its own), including those of 0009 that the measures read; the former unique indexes on `number`
  and `(source, external_ref)` stay as plain indexes there (`ix_case_file_number`, `ix_case_file_source_ref`);
  0009's covering index of deadlines also holds the report time (INCLUDE), so that the measures' months of
  deadlines, now bounded by report time to prune partitions, are still read from the index alone.

How a case id stays unique and what references a case keeps its integrity — a registry, not composite keys:
`case_registry (id PRIMARY KEY, reported_at, number UNIQUE, source, external_ref, UNIQUE (source, external_ref))`
holds one row per case, written by statement-level triggers on `case_file` (transition tables: one INSERT … SELECT
per statement, COPY included): insert adds, update follows changes of those columns (a case moved to another
month by a change of its report time too), delete removes. Its foreign key `(id, reported_at) → case_file` (the
partitioned table's primary key; DEFERRABLE INITIALLY DEFERRED, checked at commit, since a report time changed by
an UPDATE that moves the row to another partition is followed by the trigger only after the key check would run)
makes a registry row without its case impossible. The tables that reference a case — case_event, attachment,
notification, idempotency_key and case_file.merged_into_id itself — keep their single `case_id` column and now
reference `case_registry (id)`: a row cannot name a missing case, and a case still referenced cannot be deleted
(the trigger's delete of its registry row is refused). The ids still come from `case_file_id_seq`
(`pg_get_serial_sequence('case_file', 'id')` keeps working); the registry's primary key makes them unique across
partitions, and case numbers and (source, ticket) pairs stay unique across partitions too (an IntegrityError, as
before, names the registry's constraint).

Why not composite keys: the referencing tables would each need a `case_reported_at` column kept equal to the
case's, every writer of events, attachments and notifications would change, and a case's report time could no
longer change without rewriting its history; a trigger checking existence instead of a foreign key would probe
every partition's index by id on each write and leave uniqueness of ids, numbers and tickets unenforced. The cost
of the registry: one more row and three index entries per case, written in the same statement, and a key check at
commit.

Partitions are written through `case_file` only; the maintenance function alone writes one directly (moving rows
out of the DEFAULT partition, with the registry's foreign key dropped for the move and validated again).

The table is copied once (a full rewrite: minutes for millions of rows; the table is locked meanwhile).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

# the unique index and constraint of case_file that become the registry's (kept on case_file as plain indexes)
_UNIQUES = {
    "case_file_number_key": ("ix_case_file_number", "(number)"),
    "uq_case_file_source_ref": ("ix_case_file_source_ref", "(source, external_ref)"),
}

# 0009's covering index of deadlines, as 0009 made it and as 0010 makes it: with the report time, so that a month of
# deadlines bounded by report time (the partitions pruned, gridmap.cases.measures) is still read from the index alone
_DUE_INDEX = "ix_case_file_due_measures"
_DUE_COLUMNS = "(due_at, grid_code, state, closed_at, rework_count, extension_count)"

# the month partition holding a time (China time, UTC+8, no daylight saving), made if missing; rows the DEFAULT
# partition holds for that month are moved into it (the registry's key dropped for the move: PostgreSQL checks a
# row deleted from one partition against that partition alone)
_MONTH_FUNCTION = r"""
CREATE FUNCTION gridmap_case_partition(at timestamptz) RETURNS text LANGUAGE plpgsql AS $fn$
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
        ALTER TABLE case_registry DROP CONSTRAINT fk_case_registry_case;
        EXECUTE format('INSERT INTO %I SELECT * FROM case_file_default WHERE reported_at >= $1 AND reported_at < $2',
                       name) USING lo, hi;
        DELETE FROM case_file_default WHERE reported_at >= lo AND reported_at < hi;
        EXECUTE format('ALTER TABLE case_file ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)', name, lo, hi);
        ALTER TABLE case_registry ADD CONSTRAINT fk_case_registry_case FOREIGN KEY (id, reported_at)
            REFERENCES case_file (id, reported_at) DEFERRABLE INITIALLY DEFERRED NOT VALID;
        ALTER TABLE case_registry VALIDATE CONSTRAINT fk_case_registry_case;
    ELSE
        EXECUTE format('CREATE TABLE %I PARTITION OF case_file FOR VALUES FROM (%L) TO (%L)', name, lo, hi);
    END IF;
    RETURN name;
END
$fn$
"""

# every month partition from lo's month to hi's month (at most 1200: a century)
_RANGE_FUNCTION = r"""
CREATE FUNCTION gridmap_case_partitions(lo timestamptz, hi timestamptz) RETURNS integer LANGUAGE plpgsql AS $fn$
DECLARE
    first_month timestamp := date_trunc('month', (lo AT TIME ZONE 'UTC') + interval '8 hours');
    last_month timestamp := date_trunc('month', (hi AT TIME ZONE 'UTC') + interval '8 hours');
    month timestamp := first_month;
    made integer := 0;
BEGIN
    IF last_month > first_month + interval '1200 months' THEN
        RAISE EXCEPTION 'case partitions: from % to % is more than 1200 months', lo, hi;
    END IF;
    WHILE month <= last_month LOOP
        IF to_regclass('case_file_p' || to_char(month, 'YYYYMM')) IS NULL THEN
            PERFORM gridmap_case_partition((month - interval '8 hours') AT TIME ZONE 'UTC');
            made := made + 1;
        END IF;
        month := month + interval '1 month';
    END LOOP;
    RETURN made;
END
$fn$
"""

_TRIGGERS = r"""
CREATE FUNCTION gridmap_case_registry_insert() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    INSERT INTO case_registry (id, reported_at, number, source, external_ref)
        SELECT id, reported_at, number, source, external_ref FROM new_cases;
    RETURN NULL;
END
$fn$;
CREATE FUNCTION gridmap_case_registry_update() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    UPDATE case_registry r SET reported_at = n.reported_at, number = n.number, source = n.source,
                               external_ref = n.external_ref
        FROM new_cases n
        WHERE r.id = n.id AND (r.reported_at, r.number, r.source, r.external_ref)
            IS DISTINCT FROM (n.reported_at, n.number, n.source, n.external_ref);
    RETURN NULL;
END
$fn$;
CREATE FUNCTION gridmap_case_registry_delete() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    DELETE FROM case_registry r USING old_cases o WHERE r.id = o.id;
    RETURN NULL;
END
$fn$;
CREATE TRIGGER case_registry_insert AFTER INSERT ON case_file REFERENCING NEW TABLE AS new_cases
    FOR EACH STATEMENT EXECUTE FUNCTION gridmap_case_registry_insert();
CREATE TRIGGER case_registry_update AFTER UPDATE ON case_file REFERENCING NEW TABLE AS new_cases
    FOR EACH STATEMENT EXECUTE FUNCTION gridmap_case_registry_update();
CREATE TRIGGER case_registry_delete AFTER DELETE ON case_file REFERENCING OLD TABLE AS old_cases
    FOR EACH STATEMENT EXECUTE FUNCTION gridmap_case_registry_delete();
"""

_DROP_FUNCTIONS = (
    "gridmap_case_partitions(timestamptz, timestamptz)",
    "gridmap_case_partition(timestamptz)",
    "gridmap_case_registry_insert()",
    "gridmap_case_registry_update()",
    "gridmap_case_registry_delete()",
)

MONTHS_AROUND = 12  # months made before and after today at migration time


def _rows(sql: str) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in op.get_bind().execute(sa.text(sql))]


def _referencing(table: str) -> list[tuple[str, str, str]]:
    """The foreign keys naming `table`: (table holding it, name, definition)."""
    return _rows(
        f"SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
        f"WHERE contype = 'f' AND confrelid = '{table}'::regclass AND conparentid = 0 "
        "ORDER BY conrelid::regclass::text, conname"
    )


def _own_foreign_keys() -> list[tuple[str, str]]:
    return _rows(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE contype = 'f' "
        "AND conrelid = 'case_file'::regclass AND confrelid <> 'case_file'::regclass AND conparentid = 0 "
        "ORDER BY conname"
    )


def _indexes(unique: bool) -> list[tuple[str, str]]:
    """Indexes of case_file other than its primary key: (name, CREATE INDEX statement on case_file)."""
    rows = _rows(
        "SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i JOIN pg_class c "
        "ON c.oid = i.indexrelid WHERE i.indrelid = 'case_file'::regclass AND NOT i.indisprimary "
        f"AND i.indisunique = {'true' if unique else 'false'} ORDER BY c.relname"
    )
    # a partitioned table's index is written "ON ONLY table"; made again it must reach every partition
    return [(name, definition.replace(" ON ONLY ", " ON ", 1)) for name, definition in rows]


def _month_start(at: dt.datetime) -> dt.datetime:
    local = at.astimezone(dt.timezone(dt.timedelta(hours=8)))
    return local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    op.execute("LOCK TABLE case_file IN ACCESS EXCLUSIVE MODE")
    uniques = _indexes(unique=True)
    unknown = sorted({name for name, _ in uniques} - set(_UNIQUES))
    if unknown:  # a unique index this migration does not know how to keep across partitions
        raise RuntimeError(f"case_file: unique indexes {unknown} cannot be kept on a partitioned table")
    plain = _indexes(unique=False)
    own = _own_foreign_keys()
    referencing = _referencing("case_file")
    for table, name, _ in referencing:
        op.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
    op.execute("ALTER TABLE case_file RENAME TO case_file_unpartitioned")
    op.execute(
        "CREATE TABLE case_file (LIKE case_file_unpartitioned INCLUDING DEFAULTS INCLUDING CONSTRAINTS "
        "INCLUDING STORAGE INCLUDING COMMENTS) PARTITION BY RANGE (reported_at)"
    )
    op.execute("CREATE TABLE case_file_default PARTITION OF case_file DEFAULT")
    # the registry's table first: the month function moves rows under its key (none yet to move here)
    op.execute(
        "CREATE TABLE case_registry (id integer NOT NULL, reported_at timestamptz NOT NULL, "
        "number varchar(32) NOT NULL, source varchar(16) NOT NULL, external_ref varchar(64), "
        "CONSTRAINT case_registry_pkey PRIMARY KEY (id), "
        "CONSTRAINT uq_case_registry_number UNIQUE (number), "
        "CONSTRAINT uq_case_registry_source_ref UNIQUE (source, external_ref))"
    )
    op.execute(_MONTH_FUNCTION)
    op.execute(_RANGE_FUNCTION)
    now: dt.datetime = bind.execute(sa.text("SELECT now()")).scalar_one()
    first, last = bind.execute(sa.text("SELECT min(reported_at), max(reported_at) FROM case_file_unpartitioned")).one()
    lo = _month_start(min(first or now, now - dt.timedelta(days=31 * MONTHS_AROUND)))
    hi = _month_start(max(last or now, now + dt.timedelta(days=31 * MONTHS_AROUND)))
    if (hi.year - lo.year) * 12 + hi.month - lo.month <= 240:
        bind.execute(sa.text("SELECT gridmap_case_partitions(:lo, :hi)"), {"lo": lo, "hi": hi})
    else:  # a few cases decades away: their own months, and the two years around today
        bind.execute(
            sa.text("SELECT gridmap_case_partitions(:lo, :hi)"),
            {"lo": now - dt.timedelta(days=31 * MONTHS_AROUND), "hi": now + dt.timedelta(days=31 * MONTHS_AROUND)},
        )
        bind.execute(
            sa.text(
                "SELECT gridmap_case_partition((m - interval '8 hours') AT TIME ZONE 'UTC') FROM "
                "(SELECT DISTINCT date_trunc('month', (reported_at AT TIME ZONE 'UTC') "
                "+ interval '8 hours') AS m FROM case_file_unpartitioned) months"
            )
        )
    op.execute("INSERT INTO case_file SELECT * FROM case_file_unpartitioned")
    op.execute("ALTER SEQUENCE case_file_id_seq OWNED BY case_file.id")
    op.execute("DROP TABLE case_file_unpartitioned")
    op.execute("ALTER TABLE case_file ADD CONSTRAINT case_file_pkey PRIMARY KEY (id, reported_at)")
    for name, definition in plain:
        if name == _DUE_INDEX:
            definition = f"CREATE INDEX {_DUE_INDEX} ON case_file {_DUE_COLUMNS} INCLUDE (reported_at)"
        op.execute(definition)
    for plain_name, columns in _UNIQUES.values():
        op.execute(f"CREATE INDEX {plain_name} ON case_file {columns}")
    op.execute(
        "INSERT INTO case_registry (id, reported_at, number, source, external_ref) "
        "SELECT id, reported_at, number, source, external_ref FROM case_file"
    )
    op.execute(
        "ALTER TABLE case_registry ADD CONSTRAINT fk_case_registry_case FOREIGN KEY (id, reported_at) "
        "REFERENCES case_file (id, reported_at) DEFERRABLE INITIALLY DEFERRED"
    )
    op.execute(_TRIGGERS)
    for name, definition in own:
        op.execute(f'ALTER TABLE case_file ADD CONSTRAINT "{name}" {definition}')
    for table, name, definition in referencing:
        op.execute(
            f'ALTER TABLE {table} ADD CONSTRAINT "{name}" '
            f"{definition.replace('REFERENCES case_file(id)', 'REFERENCES case_registry(id)')}"
        )
    op.execute("ANALYZE case_file")
    op.execute("ANALYZE case_registry")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    op.execute("LOCK TABLE case_file IN ACCESS EXCLUSIVE MODE")
    plain = [(n, d) for n, d in _indexes(unique=False) if n not in {p for p, _ in _UNIQUES.values()}]
    own = _own_foreign_keys()
    referencing = [r for r in _referencing("case_registry") if r[0] != "case_registry"]
    for table, name, _ in referencing:
        op.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
    for trigger in ("case_registry_insert", "case_registry_update", "case_registry_delete"):
        op.execute(f"DROP TRIGGER {trigger} ON case_file")
    op.execute("DROP TABLE case_registry")
    for function in _DROP_FUNCTIONS:
        op.execute(f"DROP FUNCTION {function}")
    op.execute("ALTER TABLE case_file RENAME TO case_file_partitioned")
    op.execute(
        "CREATE TABLE case_file (LIKE case_file_partitioned INCLUDING DEFAULTS INCLUDING CONSTRAINTS "
        "INCLUDING STORAGE INCLUDING COMMENTS)"
    )
    op.execute("INSERT INTO case_file SELECT * FROM case_file_partitioned")
    op.execute("ALTER SEQUENCE case_file_id_seq OWNED BY case_file.id")
    op.execute("DROP TABLE case_file_partitioned")  # and its partitions
    op.execute("ALTER TABLE case_file ADD CONSTRAINT case_file_pkey PRIMARY KEY (id)")
    op.execute("ALTER TABLE case_file ADD CONSTRAINT case_file_number_key UNIQUE (number)")
    op.execute("CREATE UNIQUE INDEX uq_case_file_source_ref ON case_file (source, external_ref)")
    for name, definition in plain:
        if name == _DUE_INDEX:
            definition = f"CREATE INDEX {_DUE_INDEX} ON case_file {_DUE_COLUMNS}"
        op.execute(definition)
    for name, definition in own:
        if "REFERENCES case_registry(id)" in definition:  # merged_into_id
            definition = definition.replace("REFERENCES case_registry(id)", "REFERENCES case_file(id)")
        op.execute(f'ALTER TABLE case_file ADD CONSTRAINT "{name}" {definition}')
    for table, name, definition in referencing:
        if table == "case_file":
            continue  # made above with case_file's own
        op.execute(
            f'ALTER TABLE {table} ADD CONSTRAINT "{name}" '
            f"{definition.replace('REFERENCES case_registry(id)', 'REFERENCES case_file(id)')}"
        )
    op.execute("ANALYZE case_file")
