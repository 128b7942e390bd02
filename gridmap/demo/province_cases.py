"""The province demo's cases: millions of cases over the year before the reference date, made a chunk at a time
with numpy (no Python per case on the numbers, none on the way to the database either: the CSV of a COPY is made
by Arrow on PostGIS, the points are ready SpatiaLite BLOBs for executemany on SpatiaLite), with a progress bar.
Into empty case tables all chunks go in one transaction with the tables' upkeep deferred to its end (see
`insert_province_cases`; on PostGIS the next chunk made in a second thread meanwhile); beside cases already there,
a transaction per chunk.

Each case lies inside one micro-grid (a point drawn in the interior of the micro-grid's cell, clear of its edges)
and is stored under that micro-grid's chain of codes, its grid's party branch and worker, by the routing rules of
the district demo (events to the grid's worker, components to their department). The loop is drawn as the
district demo draws it (acceptance, deadline, handling, verification, rating, a few rejected, stalled, suspended,
extended, reworked or reopened), with deadlines on an approximate calendar (a working hour ≈ 3 calendar hours, a
working day ≈ 1.4 calendar days) instead of the working calendar case by case. The history kept per case is what
the measures read: the report, the handling and the rating.

Chunks are `CHUNK` cases, each from its own random stream (`[seed, 9, chunk]`), covering its own slice of the
year in time order (ids follow the reporting time): the same seed and size give the same cases whatever the
database.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Iterator
from contextlib import suppress
from queue import Empty, Full, Queue
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from gridmap.cases import bulk
from gridmap.cases.intake import SOURCE_PREFIX
from gridmap.demo.catalogue import CLASS_WEIGHTS
from gridmap.demo.province_write import (
    JsonText,
    Points,
    Prepared,
    move_sequence,
    next_id,
    nullable_ints,
    prepare,
    write_columns,
    write_prepared,
)
from gridmap.store import bulkload
from gridmap.store.tables import Case, CaseCategory, CaseEvent

if TYPE_CHECKING:
    from gridmap.demo.province import Territory

T = TypeVar("T")
CHUNK = 100_000
SOURCES = np.array(["hotline", "miniprogram", "patrol", "referral"])
SOURCE_WEIGHTS = np.array([0.45, 0.25, 0.25, 0.05])
SCORES = np.array([5, 5, 5, 5, 4, 4, 4, 3, 3, 2])
PREFIXES = np.array([SOURCE_PREFIX[s] for s in SOURCES.tolist()])
# the history's JSON as json.dumps writes it: a report's source, a rating's score (1 to 5) and whether it reopened
SOURCE_DETAIL = np.array([json.dumps({"source": s}) for s in SOURCES.tolist()], dtype=object)
RATED_DETAIL = np.array(
    [[json.dumps({"satisfaction": k, "reopened": r}) for r in (False, True)] for k in range(1, 6)], dtype=object
)
UNIT_SECONDS = {"work_hours": 3 * 3600.0, "work_days": 1.4 * 86400.0, "calendar_days": 86400.0}
CHINA = np.timedelta64(8, "h")
YEAR_S = 365 * 86400


TABLES = ("case_file", "case_event", "case_registry")  # the registry: PostgreSQL only


def insert_province_cases(
    factory: sessionmaker[Session],
    territory: Territory,
    generation_id: int,
    n: int,
    today: dt.date,
    seed: int,
    progress: bulk.Progress | None = None,
    *,
    deferred_upkeep: bool = True,
) -> tuple[int, int]:
    """Write `n` cases and their histories; returns (cases, history rows).

    Into empty case tables (a new database): one transaction, the indexes, keys and triggers of the case tables
    made again at its end (`gridmap.store.bulkload`); on PostGIS the next chunk made in a second thread while the
    server stores this one. Beside cases already there (`--append` onto a database with cases): a transaction per
    chunk, the upkeep row by row (and always with `deferred_upkeep` false). Both write the same rows."""
    progress = progress or bulk.Progress(enabled=False)
    if n <= 0:
        return 0, 0
    setup = _Setup(territory, generation_id, today)
    with factory() as session:
        setup.categories(session)
    bar = progress.bar(n, "cases", unit="case")
    deferred = False
    if deferred_upkeep:
        with factory() as session:
            engine = session.get_bind()
        assert isinstance(engine, sa.Engine)
        if engine.dialect.name == "sqlite":
            engine.dispose()  # the pool's idle connections closed: the load's connection has the file to itself
        step = lambda what: progress.stage(f"rebuilt: {what}")  # noqa: E731
        with engine.connect() as conn, bulkload.rollback_journal(conn), conn.begin():
            with bulkload.deferred_upkeep(conn, TABLES, step=step, work_mem_mb=512) as deferred:
                if deferred:
                    events = _write_in_one(conn, setup, n, seed, bar, progress)
                    bar.close()
                    progress.stage("cases written; making the indexes, keys and triggers of the case tables again", n)
            if deferred:
                _finish(conn, n, events, first_case=1, first_event=1)
    if not deferred:
        events = _write_by_chunk(factory, setup, n, seed, bar, progress)
        bar.close()
    vacuumed = _refresh_statistics(factory)
    progress.stage("statistics refreshed" + (", case tables vacuumed" if vacuumed else ""), None)
    return n, events


ANALYZED = (
    "case_file",
    "case_event",
    "case_registry",
    "case_activity",
    "case_step_count",
    "case_month_count",
    "area",
    "party_org_area",
    "staff_area",
)
VACUUMED = ("case_file", "case_event", "case_registry", "case_activity")  # on PostgreSQL, after the load


def _refresh_statistics(factory: sessionmaker[Session]) -> bool:
    """Fresh statistics for the planner after millions of rows (ANALYZED); on PostgreSQL the case tables are also
    vacuumed, as autovacuum would do in its own time after a load, if it runs at all: until then no page of them
    is known all-visible, and a count from an index reads the table (a district's: 1.1 s against 0.1-0.2 s after
    `VACUUM`, on the 10 M-case province). Whether they were vacuumed (not in a session bound to a connection,
    whose transaction VACUUM cannot run in)."""
    with factory() as session:
        bind = session.get_bind()
    postgres = bind.dialect.name == "postgresql"
    if postgres and isinstance(bind, sa.Engine):
        with bind.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            for table in ANALYZED:
                conn.exec_driver_sql(f"VACUUM (ANALYZE) {table}" if table in VACUUMED else f"ANALYZE {table}")
        return True
    with factory.begin() as session:
        for table in ANALYZED:
            if table != "case_registry" or postgres:
                session.connection().exec_driver_sql(f"ANALYZE {table}")
    return False


def _stage_every(progress: bulk.Progress, c: int, chunks: int, n: int) -> None:
    if c % max(chunks // 20, 1) == 0 or c == chunks - 1:  # about 20 lines whatever the size
        progress.stage("cases written", min((c + 1) * CHUNK, n))


def _chunk_sizes(n: int) -> list[int]:
    chunks = (n + CHUNK - 1) // CHUNK
    return [min(CHUNK, n - c * CHUNK) for c in range(chunks)]


def _prepared_chunks(
    dialect: str, setup: _Setup, n: int, seed: int, first_case: int, first_event: int
) -> Iterator[tuple[int, Prepared, Prepared]]:
    """Each chunk's cases and history rows, ready for the database (ids from `first_case` and `first_event`)."""
    sizes = _chunk_sizes(n)
    for c, size in enumerate(sizes):
        cases, history = make_chunk(setup, c, len(sizes), size, seed, first_case + c * CHUNK)
        history["id"] = np.arange(first_event, first_event + len(history["case_id"]), dtype=np.int64)
        first_event += len(history["case_id"])
        yield size, prepare(dialect, Case.__table__, cases), prepare(dialect, CaseEvent.__table__, history)


def _ahead(items: Iterator[T], depth: int = 1) -> Iterator[T]:
    """`items`, made `depth` ahead in a second thread (numpy, Arrow and the driver release the interpreter while
    they work: the next chunk is made while the database takes this one)."""
    done = object()
    queue: Queue[Any] = Queue(maxsize=depth)
    stop = threading.Event()

    def make() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        queue.put((item, None), timeout=0.2)
                        break
                    except Full:
                        continue
                if stop.is_set():
                    return
            queue.put((done, None))
        except BaseException as failure:  # handed to the reader
            queue.put((None, failure))

    worker = threading.Thread(target=make, name="province-cases", daemon=True)
    worker.start()
    try:
        while True:
            item, failure = queue.get()
            if failure is not None:
                raise failure
            if item is done:
                return
            yield item
    finally:
        stop.set()
        while worker.is_alive():  # let a blocked put see the stop
            with suppress(Empty):
                queue.get_nowait()
            worker.join(timeout=0.2)


def _write_in_one(conn: sa.Connection, setup: _Setup, n: int, seed: int, bar: bulk.Bar, progress: bulk.Progress) -> int:
    """Every chunk into the (empty, upkeep deferred) case tables in the caller's transaction; the history rows."""
    chunks = len(_chunk_sizes(n))
    events = 0
    made = _prepared_chunks(conn.dialect.name, setup, n, seed, 1, 1)
    if conn.dialect.name == "postgresql":
        # the server stores a chunk while Python makes the next; on SQLite the writes are this process's own work
        # (500,000 cases with a second thread 24.6-27.8 s, without 25.5-28.9 s, load 2-3) and gridmap.demo.cases
        # writes there in the caller's thread too
        made = _ahead(made)
    for c, (size, cases, history) in enumerate(made):
        write_prepared(conn, cases)
        events += write_prepared(conn, history)
        bar.update(size)
        _stage_every(progress, c, chunks, n)
    return events


def _write_by_chunk(
    factory: sessionmaker[Session], setup: _Setup, n: int, seed: int, bar: bulk.Bar, progress: bulk.Progress
) -> int:
    """Each chunk in its own transaction beside the cases already there (ids after theirs)."""
    sizes = _chunk_sizes(n)
    events = 0
    for c, size in enumerate(sizes):
        with factory.begin() as session:
            conn = session.connection()
            first = next_id(conn, Case.__table__)
            cases, history = make_chunk(setup, c, len(sizes), size, seed, first)
            write_columns(conn, Case.__table__, cases)
            first_event = next_id(conn, CaseEvent.__table__)
            history["id"] = np.arange(first_event, first_event + len(history["case_id"]), dtype=np.int64)
            write_columns(conn, CaseEvent.__table__, history)
            _finish(conn, size, len(history["case_id"]), first, first_event)
        events += len(history["case_id"])
        bar.update(size)
        _stage_every(progress, c, len(sizes), n)
    return events


def _finish(conn: sa.Connection, cases: int, events: int, first_case: int, first_event: int) -> None:
    move_sequence(conn, Case.__table__)
    move_sequence(conn, CaseEvent.__table__)
    bulk.record_inserts(
        conn,
        {"case_file": [first_case], "case_event": [first_event]},
        counts={"case_file": cases, "case_event": events},
    )


class _Setup:
    """The per-micro-grid arrays a chunk draws from, computed once."""

    def __init__(self, territory: Territory, generation_id: int, today: dt.date) -> None:
        province = territory.province
        levels = province.levels
        micro = levels["microgrid"]
        self.generation_id = generation_id
        end_cn = np.datetime64(today.isoformat(), "s")  # midnight in China, as naive China time
        self.end = end_cn - CHINA  # …in UTC
        weights = micro.households.astype(float)
        self.cum = np.cumsum(weights) / weights.sum()
        n = len(micro.codes)
        corners = np.empty((n, 4, 2))
        for d, lattice in enumerate(province.lattices):
            members = np.flatnonzero(np.asarray(micro.district) == d)
            rect = np.asarray([micro.rect[k] for k in members], dtype=np.int64)
            i, j = rect[:, 0], rect[:, 1]
            for q, (di, dj) in enumerate(((0, 0), (1, 0), (1, 1), (0, 1))):
                corners[members, q, 0] = lattice.x[j + dj, i + di]
                corners[members, q, 1] = lattice.y[j + dj, i + di]
        self.corners = corners
        grid_of = np.asarray(micro.parent, dtype=np.int64)
        com_of = np.asarray(levels["grid"].parent, dtype=np.int64)[grid_of]
        sub_of = np.asarray(levels["community"].parent, dtype=np.int64)[com_of]
        dis_of = np.asarray(levels["subdistrict"].parent, dtype=np.int64)[sub_of]
        self.codes = {
            "microgrid_code": np.asarray(micro.codes, dtype=object),
            "grid_code": np.asarray(levels["grid"].codes, dtype=object)[grid_of],
            "community_code": np.asarray(levels["community"].codes, dtype=object)[com_of],
            "subdistrict_code": np.asarray(levels["subdistrict"].codes, dtype=object)[sub_of],
            "district_code": np.asarray(levels["district"].codes, dtype=object)[dis_of],
        }
        self.branch = territory.branch_of_grid[grid_of]
        self.worker = territory.worker_of_grid[grid_of]

    def categories(self, session: Session) -> None:
        cats = session.scalars(
            sa.select(CaseCategory).where(CaseCategory.active.is_(True)).order_by(CaseCategory.code)
        ).all()
        per_class: dict[str, int] = {}
        for c in cats:
            per_class[c.major_class] = per_class.get(c.major_class, 0) + 1
        w = np.array([CLASS_WEIGHTS.get(c.major_class, 1) / per_class[c.major_class] for c in cats])
        self.cat_cum = np.cumsum(w) / w.sum()
        self.cat_id = np.array([c.id for c in cats])
        self.cat_name = np.array([c.name for c in cats], dtype=object)
        self.cat_desc = np.array([f"{c.name}，请尽快处理。" for c in cats], dtype=object)
        self.cat_limit = np.array([c.time_limit * UNIT_SECONDS.get(c.time_unit, 86400.0) for c in cats])
        owner_first = [c.kind == "component" and c.department_id is not None for c in cats]
        self.cat_owner = np.array(owner_first)
        self.cat_dept = np.array([c.department_id if o else -1 for c, o in zip(cats, owner_first)])


def _seconds(values: np.ndarray) -> np.ndarray:
    return (values * 1e6).astype("timedelta64[us]")


def make_chunk(
    setup: _Setup, c: int, chunks: int, n: int, seed: int, first_id: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Chunk `c`'s cases (columns of case_file) and their history rows (columns of case_event, ids left out)."""
    from gridmap.demo.province import people_names, phones

    rng = np.random.default_rng([seed, 9, c])
    end = setup.end
    # when: the chunk's slice of the year, on a daytime hour in China
    lo, hi = YEAR_S * c / chunks, YEAR_S * (c + 1) / chunks
    t = np.sort(rng.uniform(lo, hi, n))
    start_cn = (end + CHINA) - np.timedelta64(YEAR_S, "s")
    day = np.floor(t / 86400.0)
    tod = np.clip(rng.normal(13.5, 3.5, n), 6.0, 23.0) * 3600.0 + rng.uniform(0, 3600, n)
    offset = np.minimum(day * 86400.0 + tod, YEAR_S - 60.0)
    order = np.argsort(offset, kind="stable")
    offset = offset[order]
    reported = start_cn - CHINA + offset.astype("timedelta64[s]")
    # where: a micro-grid by its households, a point inside its cell clear of the edges
    m = np.searchsorted(setup.cum, rng.random(n), side="right").clip(0, len(setup.cum) - 1)
    u, v = rng.uniform(0.1, 0.9, n), rng.uniform(0.1, 0.9, n)
    q = setup.corners[m]
    w = np.stack([(1 - u) * (1 - v), u * (1 - v), u * v, (1 - u) * v], axis=1)
    lon = np.einsum("nk,nk->n", w, q[:, :, 0])
    lat = np.einsum("nk,nk->n", w, q[:, :, 1])
    # what
    cat = np.searchsorted(setup.cat_cum, rng.random(n), side="right").clip(0, len(setup.cat_cum) - 1)
    source_k = np.searchsorted(np.cumsum(SOURCE_WEIGHTS), rng.random(n), side="right").clip(0, 3)
    source = SOURCES[source_k]
    limit = setup.cat_limit[cat]
    owner = setup.cat_owner[cat]
    worker = setup.worker[m]
    # the loop
    draws = rng.random((n, 8))
    filed = reported + _seconds(rng.uniform(5, 60, n) * 60)
    accepted = filed + _seconds((rng.uniform(2, 40, n) + rng.uniform(5, 90, n)) * 60)
    extended = draws[:, 1] < 0.02
    due = accepted + _seconds(limit * np.where(extended, 2.0, 1.0))
    share = rng.lognormal(-1.4, 0.6, n)
    rework = draws[:, 2] < 0.03
    handled = accepted + _seconds(limit * share * np.where(rework, 1.5, 1.0))
    closed = handled + _seconds(limit * rng.uniform(0.03, 0.15, n))
    rated = closed + _seconds(rng.uniform(3600, 48 * 3600, n))
    score = SCORES[rng.integers(len(SCORES), size=n)]
    rejected = draws[:, 0] < 0.015
    suspended = (draws[:, 3] < 0.006) & ~rejected
    stalled = (draws[:, 3] >= 0.006) & (draws[:, 3] < 0.016) & ~rejected
    nat = np.datetime64("NaT", "us")
    state = np.full(n, "closed", dtype=object)
    state[closed > end] = "handled"
    state[handled > end] = "accepted"
    state[stalled & (accepted <= end)] = "accepted"
    state[suspended & (accepted <= end)] = "suspended"
    state[accepted > end] = "dispatched"
    state[filed > end] = "reported"
    state[rejected & (filed <= end)] = "rejected"
    is_closed = state == "closed"
    got_rated = is_closed & (draws[:, 4] < 0.7) & (rated <= end)
    reopened = got_rated & (score <= 2)
    was_handled = np.isin(state, ("handled", "closed"))
    state[reopened] = "dispatched"
    in_loop = np.isin(state, ("accepted", "handled", "closed", "suspended")) | reopened
    accepted_col = np.where(in_loop & ~reopened, accepted.astype("datetime64[us]"), nat)
    due_col = np.where(in_loop & ~reopened, due.astype("datetime64[us]"), nat)
    handled_col = np.where(was_handled & ~reopened, handled.astype("datetime64[us]"), nat)
    closed_col = np.where(is_closed & ~reopened, closed.astype("datetime64[us]"), nat)
    closed_col = np.where(state == "rejected", filed.astype("datetime64[us]"), closed_col)
    rated_col = np.where(got_rated, rated.astype("datetime64[us]"), nat)
    suspended_col = np.where(
        state == "suspended", (accepted + _seconds(rng.uniform(3600, 36000, n))).astype("datetime64[us]"), nat
    )
    routed = ~np.isin(state, ("reported", "rejected"))
    dept = setup.cat_dept[cat]
    handler = np.where(
        owner, np.char.add("department:", dept.astype(str)), np.char.add("worker:", worker.astype(str))
    ).astype(object)
    ids = np.arange(first_id, first_id + n, dtype=np.int64)
    china_day = (reported + CHINA).astype("datetime64[D]").astype(str)  # 'YYYY-MM-DD'
    ymd = np.strings.replace(china_day, "-", "")
    number = np.strings.add(np.strings.add(PREFIXES[source_k], ymd), np.strings.zfill(ids.astype(str), 7))
    public = np.isin(source, ("hotline", "miniprogram"))
    names_ = people_names(rng, n)
    phone = phones(rng, n)
    none = np.full(n, None, dtype=object)
    cases = {
        "id": ids,
        "number": number.astype(object),
        "title": setup.cat_name[cat],
        "description": setup.cat_desc[cat],
        "category_id": setup.cat_id[cat],
        "source": source.astype(object),
        "state": state,
        "raw_x": lon,
        "raw_y": lat,
        "raw_crs": np.full(n, "wgs84", dtype=object),
        "lon": lon,
        "lat": lat,
        "generation_id": np.full(n, setup.generation_id),
        **{k: col[m] for k, col in setup.codes.items()},
        "branch_id": setup.branch[m],
        "assignee_id": nullable_ints(worker, ~(routed & ~owner)),
        "department_id": nullable_ints(dept, ~(routed & owner)),
        "locate_flags": JsonText(np.full(n, "[]", dtype=object)),
        "reporter_name": np.where(public, names_, none),
        "reporter_phone": np.where(public, phone, none),
        "reported_by_staff_id": nullable_ints(worker, source != "patrol"),
        "satisfaction": nullable_ints(score, ~got_rated),
        "reported_at": reported.astype("datetime64[us]"),
        "accepted_at": accepted_col,
        "due_at": due_col,
        "closed_at": closed_col,
        "handled_at": handled_col,
        "rated_at": rated_col,
        "suspended_at": suspended_col,
        "handled_by": np.where(was_handled & ~reopened, handler, none),
        "version": np.where(routed, 3, 1) + was_handled.astype(int) * 2,
        "rework_count": (rework & was_handled).astype(np.int64),
        "extension_count": (extended & in_loop).astype(np.int64),
        "reopen_count": reopened.astype(np.int64),
        "bounce_count": np.zeros(n, np.int64),
        "geom": Points(lon, lat),
    }
    # history: reported (every case), handled (handled ones), rated (rated ones), a case's steps together in order
    k_handled, k_rated = int(was_handled.sum()), int(got_rated.sum())
    h_case = np.concatenate([ids, ids[was_handled], ids[got_rated]])
    order = np.argsort(h_case, kind="stable")
    rated_text = RATED_DETAIL[score[got_rated] - 1, reopened[got_rated].astype(np.int64)]
    history = {
        "case_id": h_case,
        "at": np.concatenate(
            [
                reported.astype("datetime64[us]"),
                handled[was_handled].astype("datetime64[us]"),
                rated[got_rated].astype("datetime64[us]"),
            ]
        ),
        "actor": np.concatenate(
            [np.full(n, "resident", object), handler[was_handled], np.full(k_rated, "resident", object)]
        ),
        "action": np.repeat(np.array(["reported", "handle", "rate"], dtype=object), [n, k_handled, k_rated]),
        "from_state": np.repeat(np.array([None, "accepted", "closed"], dtype=object), [n, k_handled, k_rated]),
        "to_state": np.concatenate(
            [
                np.full(n, "reported", object),
                np.full(k_handled, "handled", object),
                np.where(reopened[got_rated], "dispatched", "closed").astype(object),
            ]
        ),
        "detail": np.concatenate([SOURCE_DETAIL[source_k], np.full(k_handled, None, object), rated_text]),
    }
    ordered: dict[str, Any] = {key: col[order] for key, col in history.items()}
    ordered["detail"] = JsonText(ordered["detail"])
    return cases, ordered


__all__ = ["CHUNK", "insert_province_cases", "make_chunk"]
