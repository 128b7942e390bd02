"""Bulk writes: many new cases in one transaction, with intake's answers, and tables loaded many rows per statement.

`create_cases` is `cases.create_case` for a list of cases: every case is checked, located, filed and routed
exactly as `create_case` does it (the same texts, flags, candidates, chain, party branch, worker or department,
history and notifications), but the points are located together (`locate_cases`: the vectorised cell index, GEOS
only for the few points near an edge), the lookups intake repeats per case (category, branch and worker of a grid,
the accounts of a worker) are made once per batch, and the rows are written with a few multi-row INSERTs instead of
an ORM flush per case. A case that intake refuses (a text, a category, a point far outside the service area) is
answered with its `GridmapError` in place of the case and nothing of it is written; the others are. The caller's
transaction holds the whole batch: it commits or vanishes as one.

Case numbers are the row ids, as for a single intake: on PostGIS the ids are taken from the table's sequence first
(so the numbers go into the INSERT), on SQLite they come back from `INSERT … RETURNING` and the numbers follow in
one executemany UPDATE. The writes are audited as every write is (`gridmap.store.audit`): one row per table, the count
and the first ids, in the same transaction.

`insert_rows` writes plain rows to a table, many per statement, by column name (never by a table's position or
OID: a partitioned table takes them as a plain one). On PostGIS many rows go through COPY (text format, each value
written as the INSERT would bind it, a point as its EWKT). On SpatiaLite many rows go to the driver's executemany;
points given as EWKT (`SRID=4326;POINT(x y)`, the form every caller uses) go as ready SpatiaLite BLOBs, and the
table's per-row geometry triggers (the constraint check, the statistics time stamp, the spatial index entry) are
set aside for the statement and their work done once for all rows — in the same transaction, so that a failure
leaves the triggers and the rows as they were. `Progress` reports stages and counts on stderr.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import queue
import re
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from operator import itemgetter
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, Protocol, cast

import numpy as np
import shapely
import sqlalchemy as sa
from sqlalchemy.orm import Session

from gridmap.calendar import CST, MAX_SPAN_DAYS, WorkCalendar
from gridmap.errors import GridmapError
from gridmap.geo import crs as gcrs
from gridmap.geo.cells import STATUS_OK
from gridmap.geo.index import AreaIndex, Location, metres_per_degree
from gridmap.locating.locate import LocateOptions, to_wgs84_checked
from gridmap.store import audit, bulkload
from gridmap.store.tables import CASE_SOURCES, Account, AuditEntry, Base, Case, CaseCategory, CaseEvent, Notification

if TYPE_CHECKING:
    from gridmap.cases.intake import NewCase


def table_of(model: type[Base]) -> sa.Table:
    """The table a mapped class is declared on (SQLAlchemy types `__table__` as any FROM clause; ours are tables)."""
    table = model.__table__
    if not isinstance(table, sa.Table):
        raise TypeError(f"{model.__name__} is not mapped to a table")
    return table


CASES = table_of(Case)
EVENTS = table_of(CaseEvent)
NOTES = table_of(Notification)
COPY_MIN_ROWS = 200  # below this, a multi-row INSERT is as quick as COPY on PostGIS
EXECUTEMANY_MIN_ROWS = 100  # SQLite: from this many rows, the driver's executemany is handed the rows directly
TRIGGERS_MIN_ROWS = 500  # SQLite: from this many points, the geometry triggers' work is done once for all rows
_EWKT_POINT = re.compile(r"SRID=(\d+);POINT\(([^ ()]+) ([^ ()]+)\)")


@dataclass(frozen=True)
class Created:
    """A case `create_cases` stored."""

    id: int
    number: str
    grid_code: str | None
    state: str


def locate_cases(
    index: AreaIndex, lon: Sequence[float], lat: Sequence[float], system: gcrs.CoordinateSystem, options: LocateOptions
) -> list[tuple[Location, list[str], list[dict[str, Any]]]]:
    """`cases.locate_for_case` for many WGS84 points: the same (location, flags, candidates) for each.

    The cell index answers every point at once; a point it places inside one leaf and surely farther than the near
    distance from that leaf's boundary has no flags, no candidates and no near grids (exactly the test
    `AreaIndex.locate` makes, point by point). The others — near an edge, outside every grid, undecided by the cells
    — go through `locate_for_case` itself."""
    from gridmap.cases.intake import locate_for_case

    xs = np.ascontiguousarray(lon, dtype=np.float64)
    ys = np.ascontiguousarray(lat, dtype=np.float64)
    n = len(xs)
    out: list[Any] = [None] * n
    if n == 0:
        return out
    leaf, status = index.cells.query(xs, ys)
    inside = np.flatnonzero((status == STATUS_OK) & (leaf >= 0))
    radius = max(options.near_m or 0.0, 0.0)
    fast = np.zeros(n, bool)
    if len(inside):
        if radius > 0:
            d_deg = shapely.distance(index.leaf_boundaries[leaf[inside]], shapely.points(xs[inside], ys[inside]))
            # `AreaIndex._farther_than`, in the same float arithmetic (math.cos, the shorter metres per degree)
            far = [float(d) * min(metres_per_degree(float(y))) > radius * 1.01 for d, y in zip(d_deg, ys[inside])]
            fast[inside[np.asarray(far, bool)]] = True
        else:
            fast[inside] = True
    chains: dict[int, list[Any]] = {}
    near: dict[tuple[float, float], tuple[Location, list[str], list[dict[str, Any]]]] = {}
    for i in range(n):
        x, y = float(xs[i]), float(ys[i])
        if fast[i]:
            k = int(leaf[i])
            if k not in chains:
                chains[k] = index.chain_of(index.leaves[k].code)
            out[i] = (Location(x, y, chain=list(chains[k])), [], [])
            continue
        # a point answered before in this batch (many calls from one compound, placed by its address) is answered
        # the same: a copy of that answer, lists and all
        known = near.get((x, y))
        if known is None:
            known = near[(x, y)] = locate_for_case(index, x, y, system, options)
        location, flags, candidates = known
        out[i] = (
            dataclasses.replace(
                location,
                chain=list(location.chain),
                candidates=list(location.candidates),
                flags=list(location.flags),
                near=[dict(d) for d in location.near],
            ),
            list(flags),
            [dict(c) for c in candidates],
        )
    return out


def create_cases(
    session: Session,
    index: AreaIndex,
    news: Sequence[NewCase],
    *,
    actor: str = "api",
    now: dt.datetime | None = None,
    options: LocateOptions | None = None,
) -> list[Created | GridmapError]:
    """File many cases in the session's transaction, each as `cases.create_case` files it; returns, in order, the
    stored case or the error intake refused it with (nothing of a refused case is written). `prepare_cases` and
    then `write_cases`, in the one transaction."""
    return write_cases(session.connection(), prepare_cases(session, index, news, actor=actor, now=now, options=options))


@dataclass
class PreparedCases:
    """What `prepare_cases` made of a list of new cases, for `write_cases`: the rows of the cases, their history and
    who is told, in the order of the cases intake accepted (`ready`: their positions), and intake's errors for the
    others (in `results`)."""

    results: list[Created | GridmapError | None]
    ready: list[int]
    rows: list[dict[str, Any]]
    events: list[list[dict[str, Any]]]
    holders: list[int | None]
    now: dt.datetime


def prepare_cases(
    session: Session,
    index: AreaIndex,
    news: Sequence[NewCase],
    *,
    actor: str = "api",
    now: dt.datetime | None = None,
    options: LocateOptions | None = None,
) -> PreparedCases:
    """The first half of `create_cases`: every case checked, located, filed and routed, its row and history made;
    nothing written. It reads (the categories in use, the grids' branches and workers) through `session`, which need
    not be the transaction `write_cases` then writes in: an import prepares its next cases while the last ones are
    written."""
    from gridmap.cases import intake as gcases
    from gridmap.cases import workflow

    options = options or LocateOptions()
    now = gcases.utc(now) if now else dt.datetime.now(dt.UTC)
    results: list[Created | GridmapError | None] = [None] * len(news)
    active = {c.code: c for c in session.scalars(sa.select(CaseCategory).where(CaseCategory.active.is_(True)))}
    systems: dict[str, gcrs.CoordinateSystem] = {}
    ready: list[tuple[int, NewCase, CaseCategory | None, gcrs.CoordinateSystem, float, float]] = []
    for i, new in enumerate(news):
        try:  # the checks of `create_case`, in its order
            new = gcases.check_new_case_text(new)
            if new.source in CASE_SOURCES and (new.category is None or new.category in active):
                category = active.get(new.category) if new.category is not None else None
            else:
                category = gcases._check_new_case(session, new)  # raises with intake's own message
            if new.crs not in systems:
                systems[new.crs] = gcrs.parse_crs(new.crs)
            system = systems[new.crs]
            lon, lat = to_wgs84_checked(index, new.lon, new.lat, system, options)
        except GridmapError as exc:
            results[i] = exc
            continue
        ready.append((i, new, category, system, lon, lat))
    if not ready:
        return PreparedCases(results, [], [], [], [], now)
    located: list[Any] = [None] * len(ready)
    for name in {r[3].name for r in ready}:
        part = [j for j, r in enumerate(ready) if r[3].name == name]
        answers = locate_cases(
            index, [ready[j][4] for j in part], [ready[j][5] for j in part], ready[part[0]][3], options
        )
        for j, answer in zip(part, answers):
            located[j] = answer
    _prime_territory(session, {loc.at_level("grid").code for loc, _, _ in located if loc.at_level("grid")}, now)
    rows, events, holders = [], [], []
    for (_, new, category, system, lon, lat), (location, flags, candidates) in zip(ready, located):
        # a stand-in for the Case holding what `_apply_location`, `_claim_dead_end` and `workflow.route` set and read
        # (a transient Case given its category would be cascaded into the session): typed as the Case it stands for
        case = cast(Case, types.SimpleNamespace(branch_id=None, assignee_id=None, department_id=None, category=None))
        gcases._apply_location(case, location)
        if not location.chain:
            gcases._claim_dead_end(case, index, candidates)
        locate_flags = [*flags, *new.extra_flags]
        reported_at = gcases.utc(new.reported_at) if new.reported_at else now  # SQLite keeps a time's wall clock
        history = [
            {
                "at": reported_at,
                "actor": actor,
                "action": "reported",
                "from_state": None,
                "to_state": "reported",
                "detail": {"source": new.source, **({"external_ref": new.external_ref} if new.external_ref else {})},
            },
            {
                "at": now,
                "actor": "system",
                "action": "located",
                "from_state": "reported",
                "to_state": "reported",
                "detail": {
                    "flags": locate_flags,
                    "candidates": candidates,
                    "crs": system.name,
                    "method": location.method,
                    **({"distance_m": location.distance_m} if location.distance_m is not None else {}),
                },
            },
        ]
        state = "reported"
        if location.chain and category is not None:  # filed and dispatched by the rules at once
            case.category, case.category_id = category, category.id
            history.append(
                {
                    "at": now,
                    "actor": "system",
                    "action": "file",
                    "from_state": "reported",
                    "to_state": "filed",
                    "detail": {"rule": "auto_file"},
                }
            )
            detail = workflow.route(session, case, now)
            history.append(
                {
                    "at": now,
                    "actor": "system",
                    "action": "dispatch",
                    "from_state": "filed",
                    "to_state": "dispatched",
                    "detail": detail,
                }
            )
            state = "dispatched"
        rows.append(
            dict(
                number=None,  # the case number, made of its id when written (`_insert_cases`)
                title=new.title.strip(),
                description=new.description,
                category_id=category and category.id,
                source=new.source,
                state=state,
                address=new.address,
                raw_x=new.lon,
                raw_y=new.lat,
                raw_crs=system.name,
                lon=lon,
                lat=lat,
                geom=f"SRID=4326;POINT({lon!r} {lat!r})",
                reporter_name=new.reporter_name,
                reporter_phone=new.reporter_phone,
                reported_at=reported_at,
                external_ref=new.external_ref,
                reported_by_staff_id=new.reported_by_staff_id,
                generation_id=index.generation_id,
                locate_flags=locate_flags,
                locate_candidates=candidates,
                **{column.key: getattr(case, column.key) for column in gcases.LEVEL_COLUMNS.values()},
                branch_id=case.branch_id,
                assignee_id=case.assignee_id,
                department_id=case.department_id,
                version=1,
            )
        )
        events.append(history)
        holders.append(case.assignee_id if state == "dispatched" else None)
    return PreparedCases(results, [r[0] for r in ready], rows, events, holders, now)


def write_cases(conn: sa.Connection, prepared: PreparedCases) -> list[Created | GridmapError]:
    """The second half of `create_cases`: the prepared cases, their history and their holders' notifications written
    in the connection's transaction (and audited); returns, in order, the stored case or intake's error."""
    from gridmap.cases import notifications

    results, rows, events, holders, now = (
        list(prepared.results),
        prepared.rows,
        prepared.events,
        prepared.holders,
        prepared.now,
    )
    if not rows:
        return results  # type: ignore[return-value]
    ids = _insert_cases(conn, rows, now)
    event_ids = insert_numbered(
        conn, EVENTS, [dict(case_id=case_id, **e) for case_id, history in zip(ids, events) for e in history]
    )
    # a worker is told of the case given to them (`notifications.notify_holder`, kind `assigned`)
    staff = sorted({h for h in holders if h is not None})
    accounts: dict[int, list[int]] = {}
    for start in range(0, len(staff), 500):
        for account_id, staff_id in conn.execute(
            sa.select(Account.id, Account.staff_id)
            .where(Account.staff_id.in_(staff[start : start + 500]), Account.active.is_(True))
            .order_by(Account.id)
        ):
            if staff_id is not None:  # (always: matched a worker)
                accounts.setdefault(staff_id, []).append(account_id)
    notes = []
    for row, case_id, holder in zip(rows, ids, holders):
        if holder is None:
            continue
        # the message reads the case's number and title only: a stand-in holding them, typed as the Case
        text = notifications.text_for(
            "assigned", cast(Case, types.SimpleNamespace(number=row["number"], title=row["title"]))
        )
        notes += [
            {
                "account_id": a,
                "kind": "assigned",
                "case_id": case_id,
                "text": text,
                "actor": "system",
                "at": now,
                "read_at": None,
            }
            for a in accounts.get(holder, [])
        ]
    note_ids = insert_numbered(conn, NOTES, notes)
    record_inserts(conn, {"case_file": ids, "case_event": event_ids, "notification": note_ids}, now=now)
    for i, row, case_id in zip(prepared.ready, rows, ids):
        results[i] = Created(case_id, row["number"], row["grid_code"], row["state"])
    return results  # type: ignore[return-value]


def _prime_territory(session: Session, grids: set[str], now: dt.datetime) -> None:
    """The party branch and full-time worker of every grid of the batch, found with two queries and remembered where
    `workflow.route` looks them up (`workflow._territory`'s session cache): the same answers as its queries per grid
    (`areas.branch_for`: the organisation assigned on the day, smallest id first; `workflow._worker_for`: the
    grid's first full-time worker)."""
    from gridmap.calendar import china_date
    from gridmap.store.tables import PartyOrg, PartyOrgArea, StaffArea

    day = china_date(now)
    cache = session.info.setdefault("gridmap.territory", {})
    wanted = sorted(g for g in grids if (g, day) not in cache)
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        branches: dict[str, int] = {}
        for code, org_id in session.execute(
            sa.select(PartyOrgArea.area_code, PartyOrg.id)
            .join(PartyOrgArea, PartyOrgArea.party_org_id == PartyOrg.id)
            .where(PartyOrgArea.area_code.in_(chunk))
            .where(sa.or_(PartyOrgArea.valid_from.is_(None), PartyOrgArea.valid_from <= day))
            .where(sa.or_(PartyOrgArea.valid_to.is_(None), PartyOrgArea.valid_to > day))
            .order_by(PartyOrg.id)
        ):
            branches.setdefault(code, org_id)
        workers: dict[str, int] = {}
        for code, staff_id in session.execute(
            sa.select(StaffArea.area_code, StaffArea.staff_id)
            .where(StaffArea.area_code.in_(chunk), StaffArea.role == "fulltime_worker")
            .order_by(StaffArea.id)
        ):
            workers.setdefault(code, staff_id)
        for code in chunk:
            cache[(code, day)] = (branches.get(code), workers.get(code))


def _insert_cases(conn: sa.Connection, rows: list[dict[str, Any]], now: dt.datetime) -> list[int]:
    """Insert the cases, numbered by their row ids (`cases.case_number`); returns the ids in order."""
    from gridmap.cases.intake import case_number

    def numbered(row: dict[str, Any], case_id: int) -> dict[str, Any]:
        row.update(id=case_id, number=case_number(row["source"], now, case_id))
        return row

    return insert_numbered(conn, CASES, rows, number=numbered)


def reserve_ids(conn: sa.Connection, table: sa.Table, n: int) -> list[int]:
    """`n` new ids of `table`, ascending, as `n` INSERTs one after another would get them, kept for this
    transaction. On PostGIS they are drawn from the table's sequence. On SQLite a write statement that changes
    nothing takes the database's write lock first, so no other writer comes between: the ids are those after the
    largest, as SQLite would give them."""
    if n <= 0:
        return []
    if conn.dialect.name == "postgresql":
        # the sequence named once (an InitPlan), not per id; the ids come back as their first and last when they
        # are one run (always, unless another session drew from the sequence meanwhile), else as an array
        first, last, drawn = conn.execute(_RESERVE, {"table": table.name, "n": n}).one()
        return list(range(first, last + 1)) if drawn is None else sorted(drawn)
    conn.execute(sa.update(table).where(sa.false()).values(id=table.c.id))
    last = conn.execute(sa.select(sa.func.max(table.c.id))).scalar() or 0
    return list(range(last + 1, last + 1 + n))


_RESERVE = sa.text(
    "WITH drawn AS MATERIALIZED (SELECT nextval(CAST((SELECT pg_get_serial_sequence(:table, 'id')) AS regclass)) "
    "AS v FROM generate_series(1, :n)), span AS (SELECT min(v) AS first, max(v) AS last FROM drawn) "
    "SELECT first, last, CASE WHEN last - first + 1 = :n THEN NULL "
    "ELSE (SELECT array_agg(v ORDER BY v) FROM drawn) END FROM span"
)


def _with_id(row: dict[str, Any], new_id: int) -> dict[str, Any]:
    row["id"] = new_id
    return row


def insert_numbered(
    conn: sa.Connection,
    table: sa.Table,
    rows: list[dict[str, Any]],
    *,
    number: Callable[[dict[str, Any], int], dict[str, Any]] | None = None,
) -> list[int]:
    """Insert rows that get new ids from the table (`reserve_ids`), many per statement; returns the ids, in the order
    of `rows`. `number(row, id)` completes each row, in order, once its id is known (the default sets `id`): a row
    may refer to the ids of rows before it."""
    if not rows:
        return []
    number = number or _with_id
    ids = reserve_ids(conn, table, len(rows))
    insert_rows(conn, table, [number(row, new_id) for row, new_id in zip(rows, ids)])
    return ids


def record_inserts(
    conn: sa.Connection,
    inserted: dict[str, list[Any]],
    *,
    now: dt.datetime | None = None,
    counts: dict[str, int] | None = None,
) -> None:
    """The audit rows of rows written without the ORM (whose flush hook records the others): one per table, as
    `audit` writes them (kind `insert`, the count, the first `audit.MAX_IDS` ids)."""
    who = audit.current()
    at = dt.datetime.now(dt.UTC)
    rows = []
    for table, ids in inserted.items():
        count = (counts or {}).get(table, len(ids))
        if not count:
            continue
        rows.append(
            {
                "at": at,
                "actor": who.actor[:100],
                "account_id": who.account_id,
                "action": "insert",
                "target": table,
                "address": who.address,
                "detail": {"count": count, "ids": [int(i) for i in ids[: audit.MAX_IDS]]},
            }
        )
    if rows:
        conn.execute(sa.insert(AuditEntry), rows)


@contextmanager
def into_empty(conn: sa.Connection, table: sa.Table) -> Iterator[bool]:
    """A bulk load into a table that is empty, on PostgreSQL: the table's secondary indexes, unique constraints and
    foreign keys set aside while the rows go in, and made again from their own definitions at the end of the block
    (one index build and one check of all references, instead of an index entry and a key check per row: what
    pg_restore does) — `gridmap.store.bulkload.deferred_upkeep` on one table. Yields whether it applies: the table
    has no rows and is taken at once in ACCESS EXCLUSIVE mode, which the transaction then keeps (a table another
    session is using, or one with rows, is loaded as it is, its indexes and keys in place). Its primary key stays.
    The definitions are made again only when the block ends normally; on an error the transaction rolls them back
    with the rows (PostgreSQL's DDL is transactional). On SQLite, nothing (yields False)."""
    if conn.dialect.name != "postgresql":
        yield False
        return
    with bulkload.deferred_upkeep(conn, [table.name], nowait=True) as applies:
        yield applies


def insert_rows(conn: sa.Connection, table: sa.Table, rows: list[dict[str, Any]], *, grouped: bool = False) -> None:
    """Write `rows` (dicts with the same keys; with `grouped`, rows of several key sets, one statement per set, the
    rows giving their ids) to `table`, many rows per statement. On PostGIS a table without geometry takes COPY when
    the rows are many."""
    if not rows:
        return
    if grouped:
        groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
        for row in rows:
            groups.setdefault(tuple(row), []).append(row)
        for group in groups.values():
            insert_rows(conn, table, group)
        return
    if conn.dialect.name == "postgresql" and len(rows) >= COPY_MIN_ROWS and _copyable(table, rows[0]):
        _copy(conn, table, rows)
    elif conn.dialect.name == "sqlite" and len(rows) >= EXECUTEMANY_MIN_ROWS:
        if not _spatialite_points(conn, table, rows):
            _executemany(conn, table, rows)
    else:
        conn.execute(sa.insert(table), rows)


def _copyable(table: sa.Table, row: dict[str, Any]) -> bool:
    """COPY takes a geometry given as EWKT text (`SRID=4326;POINT(…)`), as the INSERT does; not a WKB element."""
    from geoalchemy2 import Geometry

    return all(
        isinstance(row[c.key], str) or row[c.key] is None
        for c in table.columns
        if isinstance(c.type, Geometry) and c.key in row
    )


def _copy(conn: sa.Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    """COPY the rows: in COPY's text format written column by column (`_copy_texts`: each value as the INSERT
    binds it, JSON serialised the same way, a geometry as its EWKT text) when every column's type allows, else
    row by row through psycopg's own adaptation. A failure is raised as SQLAlchemy raises it for an INSERT."""
    from geoalchemy2 import Geometry

    keys = list(rows[0])
    columns = [table.c[k] for k in keys]
    quote = conn.dialect.identifier_preparer.quote
    statement = f"COPY {quote(table.name)} ({', '.join(quote(k) for k in keys)}) FROM STDIN"
    texts = [_copy_texts(c, list(map(itemgetter(k), rows))) for c, k in zip(columns, keys)]
    ready = [t for t in texts if t is not None]  # every column's texts, when every column's type allows
    processors = (
        []
        if len(ready) == len(texts)
        else [
            None if isinstance(c.type, Geometry) else c.type.dialect_impl(conn.dialect).bind_processor(conn.dialect)
            for c in columns
        ]
    )
    raw = conn.connection.driver_connection
    dbapi = conn.dialect.loaded_dbapi
    try:
        with raw.cursor() as cursor, cursor.copy(statement) as copy:  # type: ignore[union-attr]
            if not processors:
                step = 20_000
                for start in range(0, len(rows), step):
                    copy.write("\n".join(map("\t".join, zip(*(t[start : start + step] for t in ready)))) + "\n")
            else:
                for row in rows:
                    copy.write_row([p(row[k]) if p is not None else row[k] for k, p in zip(keys, processors)])
    except dbapi.Error as exc:  # as SQLAlchemy raises it for a statement (IntegrityError for a duplicate, …)
        raise sa.exc.DBAPIError.instance(statement, None, exc, dbapi.Error, dialect=conn.dialect) from exc


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_NULL = "\\N"


def _copy_texts(column: sa.Column[Any], values: list[Any]) -> list[str] | None:
    """The values of one column in COPY's text format (NULL as \\N, tabs, newlines and backslashes escaped), as the
    INSERT would store them: JSON by `json.dumps` (None as JSON null unless the type says `none_as_null`, as
    SQLAlchemy binds it), times in ISO 8601 with their offset, floats by `repr` (the exact double). None for a type
    this does not know (the caller adapts such rows through psycopg).

    Column at once: the types checked as a set, each value converted by a `map` over the values that are not None,
    and the escapes applied only when the column holds a character that needs one (most hold none)."""
    from geoalchemy2 import Geometry

    kind = column.type
    kinds = set(map(type, values))
    if isinstance(kind, sa.JSON):
        null = _NULL if getattr(kind, "none_as_null", False) else "null"
        return _texts(values, kinds, json.dumps, null)
    if isinstance(kind, sa.Boolean):
        return _texts(values, kinds, _BOOL_TEXT.__getitem__ if kinds <= {bool, _NONE} else _bool_text, escape=False)
    if isinstance(kind, sa.Integer):
        return _texts(values, kinds, int.__repr__, escape=False) if kinds <= {int, _NONE} else None
    if isinstance(kind, sa.Float) and not kind.asdecimal:
        if not kinds <= {float, int, _NONE}:
            return None
        return _texts(values, kinds, float.__repr__ if int not in kinds else _float_text, escape=False)
    if isinstance(kind, (sa.DateTime, sa.Date)):
        wanted = dt.datetime if isinstance(kind, sa.DateTime) else dt.date
        return _texts(values, kinds, wanted.isoformat, escape=False) if kinds <= {wanted, _NONE} else None
    if isinstance(kind, (sa.String, Geometry)) and not isinstance(kind, sa.Enum):
        return _texts(values, kinds, None) if kinds <= {str, _NONE} else None
    return None


_NONE = type(None)
_BOOL_TEXT = {True: "t", False: "f"}
_NEEDS_ESCAPE = re.compile(r"[\\\t\n\r]")


def _bool_text(v: Any) -> str:
    return "t" if v else "f"


def _float_text(v: float | int) -> str:
    return repr(float(v))


def _texts(
    values: list[Any],
    kinds: set[type],
    form: Callable[[Any], str] | None,
    null: str = _NULL,
    *,
    escape: bool = True,
) -> list[str]:
    """`form(v)` of each value (`v` itself when `form` is None) with COPY's escapes, None as `null`."""
    present = values if _NONE not in kinds else [v for v in values if v is not None]
    texts: list[str] = present if form is None else list(map(form, present))
    if escape and texts and _NEEDS_ESCAPE.search("".join(texts)):
        esc = _COPY_ESCAPES
        texts = [t.translate(esc) for t in texts]
    if len(texts) == len(values):
        return texts
    found = iter(texts)
    return [null if v is None else next(found) for v in values]


def _spatialite_points(conn: sa.Connection, table: sa.Table, rows: list[dict[str, Any]]) -> bool:
    """Write the rows with their points as SpatiaLite BLOBs and the geometry triggers' work done once, when that
    applies: the rows give their integer primary key `id` (the rowid, which the spatial index is keyed by), every
    geometry column they give is a POINT column whose values are all EWKT points of its SRID (or None), and the
    rows are many. Returns False, having written nothing, when it does not apply.

    SpatiaLite's triggers per row check the geometry's type and SRID (true of BLOBs built for the column), stamp
    `geometry_columns_time` and add the point to the spatial index with `RTreeAlign`; here the triggers are dropped,
    the rows written, the index entries added by `RTreeAlign` itself in one statement per 20,000 rows (the points
    in Z order: `curve_order`), the stamp set once, and the triggers created again from their own SQL. SQLite holds
    its write lock from the first write to the commit and its DDL is transactional: no other connection writes
    meanwhile, none ever sees the table without its triggers, and a failure rolls the triggers back with the rows."""
    from geoalchemy2 import Geometry

    if len(rows) < TRIGGERS_MIN_ROWS or "id" not in rows[0] or "id" not in table.c:
        return False
    pk = list(table.primary_key.columns)
    if len(pk) != 1 or pk[0].key != "id" or not isinstance(pk[0].type, sa.Integer):
        return False
    keys = list(rows[0])
    geometry = [table.c[k] for k in keys if isinstance(table.c[k].type, Geometry)]
    if not geometry:
        return False
    blobs: dict[str, list[bytes | None]] = {}
    orders: dict[str, list[int]] = {}
    for column in geometry:
        kind = column.type
        assert isinstance(kind, Geometry)
        if str(kind.geometry_type).upper() != "POINT" or getattr(kind, "dimension", 2) != 2:
            return False
        parsed = _parse_points([row[column.key] for row in rows], int(kind.srid))
        if parsed is None:
            return False
        blobs[column.key], orders[column.key] = parsed
    if any(
        not (d.is_scalar or d.is_callable)
        for c in table.columns
        if c.key not in rows[0]
        for d in [c.default]
        if d is not None
    ):
        return False
    names = {f"{prefix}_{table.name}_{c.name}".lower(): c for prefix in ("ggi", "tmi", "gii") for c in geometry}
    found = conn.exec_driver_sql(
        "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND lower(tbl_name) = lower(?)", (table.name,)
    ).all()
    triggers = [(name, sql) for name, sql in found if name.lower() in names and sql]
    quote = conn.dialect.identifier_preparer.quote
    for name, _ in triggers:
        conn.exec_driver_sql(f"DROP TRIGGER {quote(name)}")
    try:
        _executemany(conn, table, rows, blobs=blobs)
        ids = [row["id"] for row in rows]
        for name, _ in triggers:
            column = names[name.lower()]
            if name.lower().startswith("gii_"):
                index = f"idx_{table.name}_{column.name}"
                if _rtree_holds(conn, index, ids):  # (entries left by earlier rows)
                    conn.exec_driver_sql(f"DELETE FROM {quote(index)} WHERE pkid = ?", [(i,) for i in ids])
                # the points added in the order of a space-filling curve, not the rows' order: one after another
                # they go down the same branches of the tree, whose pages are then read once, not once per point (a
                # day's points among a province's 10 M: most of an import's time on SQLite in reading pages)
                align = (
                    f"SELECT count(RTreeAlign(?, c.id, c.{quote(column.name)})) FROM json_each(?) AS j "
                    f"CROSS JOIN {quote(table.name)} AS c ON c.id = j.value"  # CROSS JOIN: json_each's order
                )
                placed = [ids[i] for i in orders[column.key]]
                for start in range(0, len(placed), 20_000):
                    conn.exec_driver_sql(align, (index, json.dumps(placed[start : start + 20_000]))).all()
            elif name.lower().startswith("tmi_"):
                conn.exec_driver_sql(
                    "UPDATE geometry_columns_time SET last_insert = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') "
                    "WHERE Lower(f_table_name) = Lower(?) AND Lower(f_geometry_column) = Lower(?)",
                    (table.name, column.name),
                )
    finally:
        for _, sql in triggers:
            conn.exec_driver_sql(sql)
    return True


def _rtree_holds(conn: sa.Connection, index: str, ids: list[int]) -> bool:
    """Whether the R-tree `index` has an entry for any of `ids`: asked of its shadow table of ids (`<index>_rowid`,
    a table keyed by them: one range lookup), or id by id where it has none. Never by a range of `pkid` on the
    R-tree itself, which SQLite answers by reading the whole tree (10 M points: seconds a batch)."""
    quote = conn.dialect.identifier_preparer.quote
    shadow = f"{index}_rowid"
    if (
        conn.exec_driver_sql("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (shadow,)).first()
        is not None
    ):
        return any(
            conn.exec_driver_sql(f"SELECT 1 FROM {quote(shadow)} WHERE rowid BETWEEN ? AND ? LIMIT 1", run).first()
            is not None
            for run in _runs(ids)
        )
    return any(
        conn.exec_driver_sql(f"SELECT 1 FROM {quote(index)} WHERE pkid = ?", (i,)).first() is not None for i in ids
    )


def _runs(ids: list[int]) -> list[tuple[int, int]]:
    """The ids as (first, last) runs of consecutive integers."""
    out: list[tuple[int, int]] = []
    for i in sorted(set(ids)):
        if out and i == out[-1][1] + 1:
            out[-1] = (out[-1][0], i)
        else:
            out.append((i, i))
    return out


def _parse_points(values: list[Any], srid: int) -> tuple[list[bytes | None], list[int]] | None:
    """SpatiaLite BLOBs of EWKT points of `srid` (None stays None) and the positions of the points (not None) in the
    order of a space-filling curve (`curve_order`), or None when a value is anything else."""
    xs: list[float] = []
    ys: list[float] = []
    where: list[int] = []
    match = _EWKT_POINT.fullmatch
    for i, value in enumerate(values):
        if value is None:
            continue
        m = match(value) if type(value) is str else None
        if m is None or int(m.group(1)) != srid:
            return None
        try:
            xs.append(float(m.group(2)))
            ys.append(float(m.group(3)))
        except ValueError:
            return None
        where.append(i)
    out: list[bytes | None] = [None] * len(values)
    x, y = np.array(xs, float), np.array(ys, float)
    for i, blob in zip(where, spatialite_point_blobs(x, y, srid)):
        out[i] = blob
    return out, np.asarray(where, np.int64)[curve_order(x, y)].tolist()


def curve_order(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The positions of the points in the order of a Z-order (Morton) curve over their bounding box, 16 bits a side:
    points near each other mostly come one after another. Ties keep their order."""
    if len(x) == 0:
        return np.zeros(0, np.int64)
    keys = np.zeros(len(x), np.uint64)
    for shift, v in ((0, x), (1, y)):
        low, span = float(v.min()), float(v.max() - v.min())
        q = (np.zeros(len(v)) if span <= 0 else (v - low) / span * 65535).astype(np.uint64)
        for k, mask in ((8, 0x00FF00FF), (4, 0x0F0F0F0F), (2, 0x33333333), (1, 0x55555555)):
            q = (q | (q << np.uint64(k))) & np.uint64(mask)
        keys |= q << np.uint64(shift)
    return np.argsort(keys, kind="stable")


_SPATIALITE_POINT = np.dtype(
    [
        ("start", "u1"),
        ("endian", "u1"),
        ("srid", "<i4"),
        ("mbr", "<f8", (4,)),
        ("mbr_end", "u1"),
        ("kind", "<i4"),
        ("xy", "<f8", (2,)),
        ("end", "u1"),
    ]
)


def spatialite_point_blobs(x: np.ndarray, y: np.ndarray, srid: int = 4326) -> list[bytes]:
    """SpatiaLite's BLOB of each point (what `GeomFromEWKT('SRID=…;POINT(x y)')` stores), a column at once."""
    rec = np.zeros(len(x), _SPATIALITE_POINT)
    rec["start"], rec["endian"], rec["srid"] = 0x00, 0x01, srid
    rec["mbr"][:, 0] = rec["mbr"][:, 2] = x
    rec["mbr"][:, 1] = rec["mbr"][:, 3] = y
    rec["mbr_end"], rec["kind"], rec["end"] = 0x7C, 1, 0xFE
    rec["xy"][:, 0], rec["xy"][:, 1] = x, y
    raw, size = rec.tobytes(), _SPATIALITE_POINT.itemsize
    return [raw[i : i + size] for i in range(0, len(raw), size)]


def _executemany(
    conn: sa.Connection,
    table: sa.Table,
    rows: list[dict[str, Any]],
    *,
    blobs: dict[str, list[bytes | None]] | None = None,
) -> None:
    """The INSERT SQLAlchemy compiles for these columns, each column's bind processor (its type's, for this
    dialect) applied column by column and the rows handed to the driver's executemany at once (what
    `conn.execute(insert, rows)` does, without building a parameter dictionary per row). Columns left out take
    their defaults, as they would there. `blobs`: geometry columns given as ready SpatiaLite BLOBs, bound as they
    are (`?` rather than the type's `GeomFromEWKT(?)`)."""
    keys = list(rows[0])
    blobs = blobs or {}
    given = [table.c[k] for k in keys]
    defaults: list[tuple[sa.Column[Any], object]] = []
    for column in table.columns:
        if column.key in rows[0] or column.default is None:
            continue
        default = column.default
        if not (default.is_scalar or default.is_callable):
            conn.execute(sa.insert(table), rows)
            return
        defaults.append((column, default.arg if default.is_scalar else default.arg(None)))  # type: ignore[attr-defined]
    dialect = conn.dialect
    quote = dialect.identifier_preparer.quote
    marks: list[str] = []
    columns: list[list[Any]] = []
    for column in given:
        if column.key in blobs:
            marks.append("?")
            columns.append(blobs[column.key])
            continue
        marks.append(_bind_mark(conn, column))
        process = column.type.dialect_impl(dialect).bind_processor(dialect)
        values = list(map(itemgetter(column.key), rows))
        columns.append(values if process is None else _processed(column.type, process, values))
    for column, value in defaults:
        marks.append(_bind_mark(conn, column))
        process = column.type.dialect_impl(dialect).bind_processor(dialect)
        columns.append([value if process is None else process(value)] * len(rows))
    names = [c.name for c in given] + [c.name for c, _ in defaults]
    sql = f"INSERT INTO {quote(table.name)} ({', '.join(quote(n) for n in names)}) VALUES ({', '.join(marks)})"
    conn.exec_driver_sql(sql, list(zip(*columns)))


_CST = dt.timezone(dt.timedelta(hours=8))
_TIME_SAMPLES = [
    dt.datetime(1999, 1, 2, 3, 4, 5, 6),
    dt.datetime(2026, 11, 20, 23, 59, 59, tzinfo=_CST),
    dt.datetime(2026, 3, 1, 0, 0, 0, 120000, tzinfo=dt.UTC),
]
_JSON_SAMPLES: list[Any] = [[], ["on_boundary", '引号"\t'], {"rule": "auto_file", "n": 1.5, "x": None}, "s", 3]


def _processed(kind: sa.types.TypeEngine[Any], process: Any, values: list[Any]) -> list[Any]:
    """`process` (a column's bind processor) applied to each value; for times and JSON by the quicker equivalent
    (SQLite's stored form of a time written with one `%`; `json.dumps`, None as the processor's own answer), taken
    only when it gives what the processor gives for the first values of this call and for samples of every shape."""
    if isinstance(kind, sa.DateTime) and all(v is None or type(v) is dt.datetime for v in values):
        samples = [v for v in values[:100] if v is not None][:5] + _TIME_SAMPLES
        form = "%04d-%02d-%02d %02d:%02d:%02d.%06d"  # SQLite's stored form of a time (its local fields)
        if process(None) is None and all(
            process(v) == form % (v.year, v.month, v.day, v.hour, v.minute, v.second, v.microsecond) for v in samples
        ):
            return [
                None if v is None else form % (v.year, v.month, v.day, v.hour, v.minute, v.second, v.microsecond)
                for v in values
            ]
    elif isinstance(kind, sa.JSON):
        null, dumps = process(None), json.dumps
        samples = [v for v in values[:100] if v is not None][:5] + _JSON_SAMPLES
        if all(process(v) == dumps(v) for v in samples):
            return [null if v is None else dumps(v) for v in values]
    return [process(v) for v in values]


def _bind_mark(conn: sa.Connection, column: sa.Column[Any]) -> str:
    """The placeholder of a column's value in an INSERT, inside the SQL its type wraps it in (`GeomFromEWKT(?)` for
    a geometry on SpatiaLite), as SQLAlchemy compiles it."""
    wrapped = column.type.bind_expression(sa.bindparam(column.key))
    return "?" if wrapped is None else str(wrapped.compile(dialect=conn.dialect))


class BatchCalendar(WorkCalendar):
    """The working calendar for many deadlines at once: each day's working periods and the working hours of a day
    are computed once and remembered, the arithmetic is `WorkCalendar`'s own (the same instants). Build it from a
    calendar (`of`) or as `WorkCalendar` builds one (`seeded`, `from_session`); do not change its days after."""

    @classmethod
    def of(cls, calendar: WorkCalendar) -> BatchCalendar:
        return cls(set(calendar.holidays), set(calendar.workdays), calendar.periods, calendar.years)

    @property
    def hours_per_day(self) -> float:
        hours: float | None = self.__dict__.get("_hours_per_day")
        if hours is None:
            hours = self.__dict__["_hours_per_day"] = super().hours_per_day
        return hours

    def _day_periods(self, day: dt.date) -> list[tuple[dt.datetime, dt.datetime]]:
        known: dict[dt.date, list[tuple[dt.datetime, dt.datetime]]] = self.__dict__.setdefault("_periods_of", {})
        periods = known.get(day)
        if periods is None:
            periods = known[day] = WorkCalendar._day_periods(self, day)
        return periods

    def _day_micros(self, day: dt.date) -> list[tuple[int, int, dt.datetime]]:
        """The day's working periods as (start, end) in microseconds since the epoch, with the start itself."""
        known: dict[dt.date, list[tuple[int, int, dt.datetime]]] = self.__dict__.setdefault("_micros_of", {})
        periods = known.get(day)
        if periods is None:
            periods = known[day] = [(_micros(a), _micros(b), a) for a, b in self._day_periods(day)]
        return periods

    def add_working_seconds(self, start: dt.datetime, seconds: float) -> dt.datetime:
        """`WorkCalendar.add_working_seconds`, the same steps on whole microseconds since the epoch (the period's
        seconds left are the same exact quotient `total_seconds` gives, taken from the same float remainder) and
        the answer made as it makes it."""
        local = (start.replace(tzinfo=dt.UTC) if start.tzinfo is None else start).astimezone(CST)
        now = _micros(local)
        remaining = seconds
        day = local.date()
        periods = self._day_micros
        for _ in range(MAX_SPAN_DAYS):
            for a, b, a_time in periods(day):
                begin, begin_time = (a, a_time) if a >= now else (now, local)  # max(a, local): a when equal
                if begin >= b:
                    continue
                available = (b - begin) / 1_000_000
                if remaining <= available:
                    return (begin_time + dt.timedelta(seconds=remaining)).astimezone(dt.UTC)
                remaining -= available
            day += _ONE_DAY
        raise ValueError(f"time limit: {seconds / 3600:.0f} working hours run past {MAX_SPAN_DAYS} days")


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_ONE_DAY, _ONE_MICROSECOND = dt.timedelta(days=1), dt.timedelta(microseconds=1)


def _micros(at: dt.datetime) -> int:
    return (at - _EPOCH) // _ONE_MICROSECOND


class Writer:
    """Writes run in the order given on a thread of their own, so that the caller makes the next rows while the
    database stores the last ones: the database's work (PostgreSQL's server process, SQLite's C code, both run
    without Python's lock) overlaps Python's. `put(write)` hands over a function of no arguments, waiting while
    `depth` are already waiting (the rows in flight stay bounded); `close()` waits for every write and raises the
    first write's error, if any (the writes after a failed one are dropped). Used as a context manager it closes at
    the end of the block; a block left by an exception drops the writes not started and waits for the one running
    (the caller then rolls the transaction back with nothing running on its connection).

    The writes use the caller's connection, and the caller does not touch it until `close` returns. With
    `threaded=False` each write runs at once, in `put` (the same writes in the same order)."""

    def __init__(self, *, depth: int = 2, threaded: bool = True) -> None:
        self._error: BaseException | None = None
        self._queue: queue.Queue[Callable[[], object] | None] = queue.Queue(maxsize=max(depth, 1))
        self._thread: threading.Thread | None = None
        if threaded:
            self._thread = threading.Thread(target=self._run, name="gridmap-bulk-writer", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while (write := self._queue.get()) is not None:
            if self._error is None:
                try:
                    write()
                except BaseException as exc:  # raised in the caller's thread by `put` or `close`
                    self._error = exc

    def put(self, write: Callable[[], object]) -> None:
        if self._error is not None:
            self.close()
        if self._thread is None:
            write()
        else:
            self._queue.put(write)

    def close(self) -> None:
        self._stop()
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def _stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if kind is None:
            self.close()
            return
        while True:  # the writes not started are dropped
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._stop()


class Progress:
    """Stages and counts on stderr, a line per stage (`stage`) and, on a terminal, a bar for long ones (`bar`,
    tqdm); silent when `enabled` is false (the library's default: tests, the API)."""

    def __init__(
        self, enabled: bool = True, stream: IO[str] | None = None, label: str = "", bars: bool | None = None
    ) -> None:
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.label = label
        self.bars = bars if bars is not None else bool(getattr(self.stream, "isatty", lambda: False)())
        self.start = time.perf_counter()

    def stage(self, text: str, count: int | None = None) -> None:
        if not self.enabled:
            return
        counted = f" {count:,}" if count is not None else ""
        print(f"{self.label}[{time.perf_counter() - self.start:6.1f}s] {text}{counted}", file=self.stream, flush=True)

    def bar(self, total: int, desc: str, unit: str = "rows") -> Bar:
        """A tqdm bar (a no-op object when disabled): `update(n)`, `close()`."""
        if not (self.enabled and self.bars):
            return _NoBar()
        from tqdm import tqdm

        return tqdm(
            total=total,
            desc=f"{self.label}{desc}",
            unit=unit,
            unit_scale=True,
            file=self.stream,
            mininterval=0.5,
            leave=False,
        )


class Bar(Protocol):
    """What `Progress.bar` gives: a tqdm bar or a no-op."""

    def update(self, n: int = 1, /) -> object: ...

    def close(self) -> object: ...


class _NoBar:
    def update(self, _n: int = 1) -> None:
        return None

    def close(self) -> None:
        return None


__all__ = [
    "BatchCalendar",
    "Created",
    "PreparedCases",
    "Progress",
    "Writer",
    "create_cases",
    "insert_numbered",
    "insert_rows",
    "into_empty",
    "locate_cases",
    "prepare_cases",
    "record_inserts",
    "reserve_ids",
    "write_cases",
]
