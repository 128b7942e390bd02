"""The monthly partitions of the case table on PostgreSQL (migration 0010), and the report-time bounds that let the
planner prune them.

`case_file` is partitioned by range of `reported_at`, one partition per calendar month of China time
(`case_file_p202611`), plus a DEFAULT partition for any time no month covers. On SQLite (and on PostgreSQL before
0010) nothing here does anything: `partitions` is None, `ensure_months` makes nothing, `report_bounds` is None.

The planner prunes partitions only from conditions on the partition key itself compared with constants or
parameters. A query for cases *reported* in a period has them; a query for cases *due* or *closed* in a period does
not (a case due this month may have been reported any time before). `report_bounds` finds, by one probe of each
partition's index on the deadline and on the closure time (an EXISTS per partition, not a read of the rows), the
months holding such cases, and returns report-time bounds that cover them: added to a query, they change no
answer and let the planner leave the other months out.

A case named by its id alone is not pruned either: PostgreSQL 15 plans `WHERE id = ?` over every month, and opens
and locks every partition and every index of each (619 locks for one SELECT at 28 months, 1,241 for the UPDATE
that claims a case; the shared lock table holds `max_locks_per_transaction` × `max_connections`, 6,400 by default,
so five case actions at once filled it). `cases_by_id` therefore adds each case's report time, read first from
`case_registry` (its primary key: one probe, one table), and the ORM's writes of a loaded case go through
`_write_cases_by_month` (a flush hook on every session), which names the case by id and report time too. A step
on one case then locks its month's partition alone, as long as each execution is planned for its own values
(`gridmap.store.engine.SESSION_SETTINGS`: a generic plan names every month again).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.exc import StaleDataError

from gridmap.store import audit
from gridmap.store.tables import Case

CST = dt.timezone(dt.timedelta(hours=8))
TABLE = "case_file"
DEFAULT = "case_file_default"
_MONTH_NAME = re.compile(r"^case_file_p(\d{4})(\d{2})$")
STEP_ACTIONS = ("handle", "rate", "bounce")  # the steps the measures count


@dataclass(frozen=True)
class Month:
    """One month partition: its table and the half-open interval [since, until) of report times it holds."""

    name: str
    since: dt.datetime
    until: dt.datetime


@dataclass(frozen=True)
class Bounds:
    """Report-time bounds [lo, hi): `cases` holds every case reported, due or closed in a period, `steps` every case
    with a step (STEP_ACTIONS) in it."""

    cases: tuple[dt.datetime, dt.datetime]
    steps: tuple[dt.datetime, dt.datetime] | None  # None: not asked for


@dataclass(frozen=True)
class Partitions:
    """The partitions of the case table: the months, oldest first, and whether a DEFAULT partition exists."""

    months: list[Month]
    default: bool


def month_of(at: dt.datetime) -> Month:
    """The month partition (China time) that holds a report time: its name and bounds, whether it exists or not."""
    local = (at if at.tzinfo else at.replace(tzinfo=dt.UTC)).astimezone(CST)
    first = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    following = (first + dt.timedelta(days=32)).replace(day=1)
    return Month(f"case_file_p{first:%Y%m}", first.astimezone(dt.UTC), following.astimezone(dt.UTC))


def partitions(session: Session) -> Partitions | None:
    """The case table's partitions, or None when it is not partitioned (SQLite, or PostgreSQL before 0010)."""
    if session.get_bind().dialect.name != "postgresql":
        return None
    names = session.scalars(
        sa.text(
            "SELECT c.relname FROM pg_partitioned_table p JOIN pg_inherits i ON i.inhparent = p.partrelid "
            "JOIN pg_class c ON c.oid = i.inhrelid WHERE p.partrelid = to_regclass(:table)"
        ),
        {"table": TABLE},
    ).all()
    if not names:
        partitioned = session.scalar(
            sa.text("SELECT count(*) FROM pg_partitioned_table WHERE partrelid = to_regclass(:table)"), {"table": TABLE}
        )
        if not partitioned:
            return None
    months = []
    for name in names:
        found = _MONTH_NAME.match(name)
        if found:
            first = dt.datetime(int(found[1]), int(found[2]), 1, tzinfo=CST)
            months.append(month_of(first))
    return Partitions(sorted(months, key=lambda m: m.since), DEFAULT in names)


def ensure_months(
    session: Session, since: dt.datetime, until: dt.datetime, *, lock_timeout_s: float | None = None
) -> int:
    """Make the month partitions from `since`'s month to `until`'s month (China time) that do not exist yet,
    moving into each the rows the DEFAULT partition holds for it; how many were made (0 where the table is not
    partitioned). What the application runs ahead of time (`gridmap case-partitions`, and every server hourly): a
    case reported in a month without its partition is still written (into the DEFAULT partition), but is pruned
    with no month. Making a partition locks the case table for a moment; `lock_timeout_s` gives up (an
    OperationalError) rather than queue every reader behind a long query (the server's hourly round)."""
    if partitions(session) is None:
        return 0
    if lock_timeout_s is not None:
        session.execute(sa.text(f"SET LOCAL lock_timeout = {int(lock_timeout_s * 1000)}"))
    return int(session.scalar(sa.text("SELECT gridmap_case_partitions(:lo, :hi)"), {"lo": since, "hi": until}) or 0)


def adopt_default(session: Session, *, limit: int = 24, lock_timeout_s: float | None = None) -> int:
    """Make the month partitions of the cases the DEFAULT partition holds (at most `limit` months a call), moving
    them out of it; how many were made (0 where the table is not partitioned or the DEFAULT partition is empty)."""
    found = partitions(session)
    if found is None or not found.default:
        return 0
    if lock_timeout_s is not None:
        session.execute(sa.text(f"SET LOCAL lock_timeout = {int(lock_timeout_s * 1000)}"))
    months = session.scalars(
        sa.text(
            f"SELECT DISTINCT date_trunc('month', (reported_at AT TIME ZONE 'UTC') + interval '8 hours') AS m "
            f"FROM {DEFAULT} ORDER BY m LIMIT :limit"
        ),
        {"limit": limit},
    ).all()
    for first in months:  # naive China time
        session.execute(sa.text("SELECT gridmap_case_partition(:at)"), {"at": first.replace(tzinfo=CST)})
    return len(months)


def report_bounds(session: Session, since: dt.datetime, until: dt.datetime, *, steps: bool = True) -> Bounds | None:
    """Report-time bounds holding every case reported, due or closed in [since, until) — whole months: those of
    the period and those whose partitions hold a case due or closed in it (an index probe per partition) — and
    every case with a step in it (from the registry, which holds each case's report time); None where the table is
    not partitioned (no bounds are needed there). One statement."""
    found = partitions(session)
    if found is None:
        return None
    lo, hi = since, until
    # a row per month partition holding such a case (k, the month's index); for the DEFAULT partition (k = -1) the
    # earliest and latest report time of those it holds; for the steps (k = -2) those of the cases they are of
    probes = [
        f"SELECT {i} AS k, NULL::timestamptz AS lo, NULL::timestamptz AS hi WHERE EXISTS (SELECT 1 FROM "
        f"{m.name} WHERE due_at >= :since AND due_at < :until) OR EXISTS (SELECT 1 FROM {m.name} "
        "WHERE closed_at >= :since AND closed_at < :until)"
        for i, m in enumerate(found.months)
    ]
    if found.default:
        probes.append(
            f"SELECT -1, min(reported_at), max(reported_at) FROM {DEFAULT} WHERE (due_at >= :since "
            "AND due_at < :until) OR (closed_at >= :since AND closed_at < :until)"
        )
    params: dict[str, object] = {"since": since, "until": until}
    if steps:  # a join of the period's steps with the registry: worth it where steps are joined to their cases
        probes.append(
            "SELECT -2, min(r.reported_at), max(r.reported_at) FROM case_event e JOIN case_registry r "
            "ON r.id = e.case_id WHERE e.at >= :since AND e.at < :until AND e.action IN :actions"
        )
        params["actions"] = list(STEP_ACTIONS)
    if not probes:
        return Bounds((lo, hi), None)
    query = sa.text(" UNION ALL ".join(probes))
    if steps:
        query = query.bindparams(sa.bindparam("actions", expanding=True))
    found_steps: tuple[dt.datetime, dt.datetime] | None = None
    for k, first, last in session.execute(query, params):
        if k >= 0:
            lo, hi = min(lo, found.months[k].since), max(hi, found.months[k].until)
        elif k == -1 and first is not None:
            lo, hi = min(lo, first), max(hi, last + dt.timedelta(microseconds=1))
        elif k == -2 and first is not None:
            found_steps = (first, last + dt.timedelta(microseconds=1))
    # no step in the period: any bounds will do (the steps' queries find none); the cases' keep them narrow
    return Bounds((lo, hi), (found_steps or (lo, hi)) if steps else None)


# the registry of case ids (migration 0010, PostgreSQL only): each case's id and report time, kept by triggers
REGISTRY = sa.table(
    "case_registry",
    sa.column("id", sa.Integer),
    sa.column("reported_at", sa.DateTime(timezone=True)),
    sa.column("number", sa.String),
    sa.column("grid_code", sa.String),  # the case's grid (migration 0018)
)


def _partitioned(session: Session) -> bool:
    """Whether the case table is partitioned: on PostgreSQL at the head revision it is (migration 0010)."""
    return session.get_bind().dialect.name == "postgresql"


def cases_by_id(session: Session, ids: Iterable[int]) -> sa.ColumnElement[bool]:
    """SQL naming the cases with these ids. Where the table is partitioned, with their report times too, read here
    from the registry, so that the planner reads and locks only their months (see the module docstring); an id
    nobody has names nothing. On SQLite, the ids alone (its primary key)."""
    wanted = sorted(set(ids))
    if not _partitioned(session):
        return Case.id == wanted[0] if len(wanted) == 1 else Case.id.in_(wanted)
    return _registered(session, REGISTRY.c.id.in_(wanted)) if wanted else sa.false()


def cases_by_number(session: Session, numbers: Iterable[str]) -> sa.ColumnElement[bool]:
    """SQL naming the cases with these case numbers, as `cases_by_id` does (the registry holds the numbers)."""
    wanted = sorted(set(numbers))
    if not _partitioned(session):
        return Case.number == wanted[0] if len(wanted) == 1 else Case.number.in_(wanted)
    return _registered(session, REGISTRY.c.number.in_(wanted)) if wanted else sa.false()


def _registered(session: Session, condition: sa.ColumnElement[bool]) -> sa.ColumnElement[bool]:
    """The cases the registry's rows meeting `condition` name, by id and report time."""
    found = session.execute(sa.select(REGISTRY.c.id, REGISTRY.c.reported_at).where(condition)).all()
    if not found:
        return sa.false()
    ids, times = sorted({row.id for row in found}), sorted({row.reported_at for row in found})
    if len(found) == 1:
        return sa.and_(Case.id == ids[0], Case.reported_at == times[0])
    return sa.and_(Case.id.in_(ids), Case.reported_at.in_(times))


def this_case(session: Session, case: Case) -> sa.ColumnElement[bool]:
    """SQL naming a loaded case: by id, and where the table is partitioned by its report time as stored."""
    if not _partitioned(session):
        return Case.id == case.id
    return sa.and_(Case.id == case.id, Case.reported_at == _stored(case, "reported_at"))


def _stored(case: Case, key: str) -> object:
    """An attribute's value as the database holds it (before a change not yet written)."""
    history = sa.inspect(case).attrs[key].history
    if history.deleted:
        return history.deleted[0]
    return getattr(case, key)


@event.listens_for(Session, "before_flush")
def _write_cases_by_month(session: Session, _context: object, _instances: object) -> None:
    """Write the changed columns of the loaded cases by UPDATEs naming each case's id and report time, where the
    table is partitioned, instead of the ORM's UPDATE by id alone (which locks every month: module docstring); the
    columns written are then as the database holds them, so the ORM's own flush has nothing left to write for
    them. Cases changed in the same columns are written by one executemany, in id order as the ORM does (two
    writers lock rows in the same order). New and deleted cases are left to the ORM (an INSERT is routed to its
    month; deletes are rare)."""
    dirty = [obj for obj in session.dirty if isinstance(obj, Case)]
    if not dirty or not _partitioned(session):
        return
    table = cast(sa.Table, Case.__table__)
    groups: dict[tuple[str, ...], list[tuple[Case, dict[str, object]]]] = {}
    for case in sorted(dirty, key=lambda c: c.id):
        state = sa.inspect(case)
        if state.key is None or state.deleted or state.was_deleted:
            continue
        values: dict[str, object] = {}
        for attr in state.mapper.column_attrs:
            history = state.attrs[attr.key].history
            if history.added and history.has_changes():
                values[attr.key] = history.added[0]
        if values:
            groups.setdefault(tuple(sorted(values)), []).append((case, values))
    conn = session.connection()
    for keys, cases in groups.items():
        expressions = [key for key in keys if any(isinstance(v[key], sa.ClauseElement) for _, v in cases)]
        statement = sa.update(table).where(
            table.c.id == sa.bindparam("_case_id"), table.c.reported_at == sa.bindparam("_case_reported_at")
        )
        rows = [
            {"_case_id": case.id, "_case_reported_at": _stored(case, "reported_at")}
            | {f"_set_{key}": value for key, value in values.items()}
            for case, values in cases
        ]
        if expressions:  # an SQL expression (`rework_count + 1`) is written case by case, as the ORM does
            written = sum(
                conn.execute(
                    statement.values({table.c[k]: v for k, v in values.items()}),
                    {"_case_id": row["_case_id"], "_case_reported_at": row["_case_reported_at"]},
                ).rowcount
                for row, (_, values) in zip(rows, cases)
            )
        else:
            sets: dict[sa.Column[Any], sa.BindParameter[Any]] = {table.c[k]: sa.bindparam(f"_set_{k}") for k in keys}
            written = conn.execute(statement.values(sets), rows).rowcount
        if written != len(cases):
            raise StaleDataError(f"cases {[c.id for c, _ in cases][:10]}: the UPDATE matched {written} rows")
        for case, values in cases:
            for key, value in values.items():
                if key not in expressions:
                    set_committed_value(case, key, value)
            if expressions:
                session.expire(case, expressions)  # read back when next used
            audit.wrote(session, Case.__tablename__, "update", case.id)
