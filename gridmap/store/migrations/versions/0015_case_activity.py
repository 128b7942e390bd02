"""case_activity: when each case last changed, kept by triggers on case_event; and the case table indexed by district
and by sub-district (both databases)

The case lists sorted by last update (`sort=updated_at`; the dispatcher's queues "to verify", "bounced back" and
"approvals" by default) ordered by `max(case_event.at)` per case: worked out for every case that matched, then
sorted, for a page of 50. On the province demo (10 M cases, 26 M history entries, PostGIS) the first page of one
district took 6–17 s and the province's ~2 min; an index on `case_event (case_id, at)` did not help once the cache
was warm (the work is per case, not per lookup).

`case_activity (case_id PRIMARY KEY, last_event_at)`, indexed by `(last_event_at, case_id)`: a page is read by
walking that index from one end and keeping the cases the list's conditions admit. The time is kept by the
database, so that no write path can forget it (the ORM, the bulk imports, SQL run by hand):

- after an insert into `case_event`: the case's row is made, or moved forward to the new entry's time if later;
- after a delete from `case_event`, or an update of its `case_id` or `at`: each case touched is read again (its
  latest remaining entry; no row when none is left).

On PostgreSQL these are statement triggers over transition tables (one INSERT … ON CONFLICT per statement, the
cases in id order so that two writers never wait for each other crosswise); on SQLite, row triggers. A case without
history has no row, as `max()` over no entries gave NULL before: such cases still come last in either order.

Bulk loads into an empty history (`gridmap.store.bulkload.deferred_upkeep`) take the insert trigger off and fill the
table in one statement at the end, as they do for the case registry. The upgrade fills it from the history in one
statement (on the 10 M-case province: see the CHANGELOG).

The case lists of a district or a sub-district (街道, where most dispatching is done) are narrowed by
`district_code` / `subdistrict_code`, which no index led: the count on the first page read every case (a
sub-district of 15,600 cases on the 10 M-case province: 2.3 s warm and 33 s cold on PostGIS, 10–13 s on
SpatiaLite, where its first page newest first took 5.5–8 s more). `ix_case_file_district_reported` and
`ix_case_file_subdistrict_reported` (the code, then the report time) answer the count from the index and the page
newest first in the index's order; on PostgreSQL each month partition gets its own.

The district's index is made on PostgreSQL only. SQLite keeps no histogram of a column's values (its statistics
say only how many rows share a value on average), so it took the district's index (~600,000 cases) over the
state's for a district's queues, whose states hold a few hundred: on the province, the 待核查 queue of a district
went from 24 ms to 1.1 s and its six counts from 0.95 to 2.8 s. A sub-district's cases are few enough either way
(its queues' counts 0.95–1.05 s → 145–180 ms with its index, the 待核查 page 24–32 → 77–106 ms).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

FILL = "INSERT INTO case_activity (case_id, last_event_at) SELECT case_id, max(at) FROM case_event GROUP BY case_id"

_POSTGRES = r"""
CREATE FUNCTION gridmap_case_activity_insert() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    INSERT INTO case_activity AS a (case_id, last_event_at)
        SELECT case_id, max(at) FROM new_events GROUP BY case_id ORDER BY case_id
    ON CONFLICT (case_id) DO UPDATE SET last_event_at = greatest(a.last_event_at, excluded.last_event_at);
    RETURN NULL;
END
$fn$;
CREATE FUNCTION gridmap_case_activity_delete() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    PERFORM gridmap_case_activity_again(ARRAY(SELECT DISTINCT case_id FROM old_events ORDER BY 1));
    RETURN NULL;
END
$fn$;
CREATE FUNCTION gridmap_case_activity_update() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    PERFORM gridmap_case_activity_again(ARRAY(
        SELECT case_id FROM old_events UNION SELECT case_id FROM new_events ORDER BY 1));
    RETURN NULL;
END
$fn$;
CREATE FUNCTION gridmap_case_activity_again(cases integer[]) RETURNS void LANGUAGE plpgsql AS $fn$
BEGIN
    DELETE FROM case_activity a WHERE a.case_id = ANY (cases)
        AND NOT EXISTS (SELECT 1 FROM case_event e WHERE e.case_id = a.case_id);
    INSERT INTO case_activity AS a (case_id, last_event_at)
        SELECT case_id, max(at) FROM case_event WHERE case_id = ANY (cases) GROUP BY case_id ORDER BY case_id
    ON CONFLICT (case_id) DO UPDATE SET last_event_at = excluded.last_event_at
        WHERE a.last_event_at IS DISTINCT FROM excluded.last_event_at;
END
$fn$;
CREATE TRIGGER case_activity_insert AFTER INSERT ON case_event REFERENCING NEW TABLE AS new_events
    FOR EACH STATEMENT EXECUTE FUNCTION gridmap_case_activity_insert();
CREATE TRIGGER case_activity_delete AFTER DELETE ON case_event REFERENCING OLD TABLE AS old_events
    FOR EACH STATEMENT EXECUTE FUNCTION gridmap_case_activity_delete();
CREATE TRIGGER case_activity_update AFTER UPDATE ON case_event
    REFERENCING OLD TABLE AS old_events NEW TABLE AS new_events
    FOR EACH STATEMENT EXECUTE FUNCTION gridmap_case_activity_update();
"""
_POSTGRES_DROP = (
    "DROP TRIGGER case_activity_insert ON case_event",
    "DROP TRIGGER case_activity_delete ON case_event",
    "DROP TRIGGER case_activity_update ON case_event",
    "DROP FUNCTION gridmap_case_activity_insert()",
    "DROP FUNCTION gridmap_case_activity_delete()",
    "DROP FUNCTION gridmap_case_activity_update()",
    "DROP FUNCTION gridmap_case_activity_again(integer[])",
)

# a case's row read again from its history: gone when none is left
_SQLITE_AGAIN = """
    DELETE FROM case_activity WHERE case_id = {case} AND NOT EXISTS (SELECT 1 FROM case_event WHERE case_id = {case});
    INSERT OR REPLACE INTO case_activity (case_id, last_event_at)
        SELECT case_id, max(at) FROM case_event WHERE case_id = {case} GROUP BY case_id;"""
_SQLITE_INSERT = """CREATE TRIGGER case_activity_insert AFTER INSERT ON case_event BEGIN
    INSERT INTO case_activity (case_id, last_event_at) VALUES (NEW.case_id, NEW.at)
        ON CONFLICT (case_id) DO UPDATE SET last_event_at = excluded.last_event_at
        WHERE excluded.last_event_at > case_activity.last_event_at;
END"""
_SQLITE_DELETE = "CREATE TRIGGER case_activity_delete AFTER DELETE ON case_event BEGIN{old}\nEND"
_SQLITE_UPDATE = "CREATE TRIGGER case_activity_update AFTER UPDATE OF case_id, at ON case_event BEGIN{old}{new}\nEND"
_SQLITE = (
    _SQLITE_INSERT,
    _SQLITE_DELETE.format(old=_SQLITE_AGAIN.format(case="OLD.case_id")),
    _SQLITE_UPDATE.format(old=_SQLITE_AGAIN.format(case="OLD.case_id"), new=_SQLITE_AGAIN.format(case="NEW.case_id")),
)


def upgrade() -> None:
    op.create_table(
        "case_activity",
        sa.Column("case_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last_event_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("case_id", name=op.f("case_activity_pkey")),
    )
    op.execute(FILL)
    op.create_index("ix_case_activity_last_event", "case_activity", ["last_event_at", "case_id"])
    if op.get_bind().dialect.name == "postgresql":  # see the docstring: not on SQLite
        op.create_index("ix_case_file_district_reported", "case_file", ["district_code", "reported_at"])
    op.create_index("ix_case_file_subdistrict_reported", "case_file", ["subdistrict_code", "reported_at"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_POSTGRES)
    else:
        for trigger in _SQLITE:
            op.execute(trigger)
    # statistics for the planner, on both: without them SQLite took the table for a small one and read a district's
    # list by scanning the cases (8.9 s on the province instead of milliseconds)
    op.execute("ANALYZE case_activity")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in _POSTGRES_DROP:
            op.execute(statement)
    else:
        for name in ("case_activity_insert", "case_activity_delete", "case_activity_update"):
            op.execute(f"DROP TRIGGER {name}")
    op.drop_index("ix_case_file_subdistrict_reported", table_name="case_file")
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_case_file_district_reported", table_name="case_file")
    op.drop_index("ix_case_activity_last_event", table_name="case_activity")
    op.drop_table("case_activity")
