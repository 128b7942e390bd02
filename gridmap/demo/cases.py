"""A year of demo cases: realistic categories, channels and places, each taken through the case loop by the
workflow's steps, routing rules and working calendar (tests replay every history through `workflow.STEPS`)."""

from __future__ import annotations

import datetime as dt
import functools
from bisect import bisect_right
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.orm import Session

from gridmap.calendar import WorkCalendar
from gridmap.cases import bulk
from gridmap.cases.intake import case_number
from gridmap.demo import names, queues
from gridmap.demo.catalogue import CLASS_WEIGHTS
from gridmap.demo.draws import Draws, draws
from gridmap.demo.tiling import DemoArea
from gridmap.geo import crs as gcrs
from gridmap.geo.index import AreaIndex
from gridmap.store import bulkload
from gridmap.store import engine as storage
from gridmap.store.tables import CaseCategory, PartyOrg, PartyOrgArea, StaffArea

if TYPE_CHECKING:
    from pyproj import Transformer

SOURCES = ("hotline", "miniprogram", "patrol", "referral")
SOURCE_WEIGHTS = (0.45, 0.25, 0.25, 0.05)
# as arrays once (`rng.choice` draws the same from a tuple and from its array, but converts a tuple per call)
_SOURCES_A, _SOURCE_WEIGHTS_A = np.array(SOURCES), np.array(SOURCE_WEIGHTS)
_SCORES_FIRST, _SCORES_AGAIN = np.array([5, 5, 5, 5, 4, 4, 4, 3, 3, 2]), np.array([5, 4, 4, 3])
# `rng.choice(a, p=p)` for one value is `a[cdf.searchsorted(rng.random(), side='right')]` with numpy's normalised
# cumulative weights, and `rng.choice(a)` is `a[rng.integers(0, len(a))]`: the same draws, without numpy's checks
# of `p` and `a` on every call (tests/integration/test_bulk_writes.py holds the two to the same draws)
_SOURCE_CDF = (lambda c: (c / c[-1]).tolist())(_SOURCE_WEIGHTS_A.cumsum())
_SCORES_FIRST_L, _SCORES_AGAIN_L = _SCORES_FIRST.tolist(), _SCORES_AGAIN.tolist()
TZ_CN = dt.timezone(dt.timedelta(hours=8))
WRITE_CHUNK = 5_000  # cases handed to the writer at a time (with their histories, about 7 times as many rows)
WRITE_THREADED = True  # on PostGIS, the writes on a thread of their own, overlapping the making of the next chunk


def _sample_points(areas: list[DemoArea], n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """`n` points near households (a few metres of scatter), and the households they scatter from."""
    leaves = [a for a in areas if a.level == "microgrid" and len(a.xy)]
    weights = np.array([a.households for a in leaves], float)
    chosen = rng.choice(len(leaves), size=n, p=weights / weights.sum())
    # one household of each chosen leaf: `rng.integers` over an array of bounds draws what one call per point drew
    counts = np.array([len(a.xy) for a in leaves])
    pick = rng.integers(0, counts[chosen]) if n else np.zeros(0, np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    xy = np.concatenate([a.xy for a in leaves])[starts[chosen] + pick]
    return xy + rng.normal(0.0, 8.0, size=xy.shape), xy


def _inside(
    index: AreaIndex, back: Transformer, xy: np.ndarray, homes: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """WGS84 points and their leaves, every one inside a grid: a point the scatter carried out of every grid (past
    the district edge) is put back on the household it scattered from."""
    lon, lat = (np.asarray(v, float) for v in back.transform(xy[:, 0], xy[:, 1]))
    leaf = index.locate_many(lon, lat)
    out = np.flatnonzero(leaf < 0)
    if len(out):
        hx, hy = back.transform(homes[out, 0], homes[out, 1])
        lon[out], lat[out] = hx, hy
        leaf[out] = index.locate_many(lon[out], lat[out])
        for i in out[leaf[out] < 0]:  # a household on the very edge, moved by the projection: the nearest leaf
            code, _ = index.leaves_within(float(lon[i]), float(lat[i]), 50.0)[0]
            p = index.leaf_geoms[int(np.searchsorted(index.leaf_codes_sorted, code))].representative_point()
            lon[i], lat[i] = p.x, p.y
            leaf[i] = index.locate_many(lon[i : i + 1], lat[i : i + 1])[0]
    return lon, lat, leaf


UPKEEP_TABLES = ("case_file", "case_event", "case_registry")  # (the registry on PostgreSQL only)


def insert_cases(
    session: Session,
    index: AreaIndex,
    areas: list[DemoArea],
    epsg: int,
    n: int,
    today: dt.date,
    rng: np.random.Generator,
    prefix: str,
    progress: bulk.Progress | None = None,
) -> int:
    """Insert `n` cases reported over the year before `today`, with their histories; returns `n`. The rows are
    written many per statement (`gridmap.cases.bulk`; the histories by COPY on PostGIS) and audited per table."""
    if n <= 0:
        return 0
    progress = progress or bulk.Progress(enabled=False)
    _, back = gcrs.projector(epsg)
    xy, homes = _sample_points(areas, n, rng)
    lon, lat, leaf = _inside(index, back, xy, homes)
    cats = session.scalars(sa.select(CaseCategory).order_by(CaseCategory.code)).all()
    cat_w = np.array(
        [CLASS_WEIGHTS.get(c.major_class, 1) / sum(1 for d in cats if d.major_class == c.major_class) for c in cats]
    )
    cat_idx = rng.choice(len(cats), size=n, p=cat_w / cat_w.sum())
    branches = dict(
        session.execute(
            sa.select(PartyOrgArea.area_code, PartyOrg.id)
            .join(PartyOrg, PartyOrg.id == PartyOrgArea.party_org_id)
            .where(PartyOrg.kind == "grid_branch")
        ).all()
    )
    workers = dict(
        session.execute(
            sa.select(StaffArea.area_code, sa.func.min(StaffArea.staff_id))
            .where(StaffArea.role == "fulltime_worker")
            .group_by(StaffArea.area_code)
        ).all()
    )
    end = dt.datetime.combine(today, dt.time(0), TZ_CN).astimezone(dt.UTC)
    calendar = bulk.BatchCalendar.seeded()  # the seeded calendar, each day's hours worked out once
    age_days = np.sort(rng.uniform(0, 365, n))[::-1]
    stage_rng = rng.spawn(1)[0]  # the staging draws from its own stream: the year's cases stay as they were
    draw = draws(rng)  # the cases' single draws (the same numbers as `rng`'s own methods give, more cheaply)
    staged = queues.plan(n, end, stage_rng)
    queues.place_dead_ends(session, index, areas, epsg, staged, stage_rng)
    for i, placed in staged.items():
        if placed.lon is not None:
            lon[i], lat[i], leaf[i] = placed.lon, placed.lat, placed.leaf
    labels = queues.handler_labels(session, set(workers.values()))
    rows, histories = [], []
    conn = session.connection()
    # numbered by row id, as new cases are: the ids reserved from the table (its sequence on PostGIS; on SQLite under
    # the write lock the transaction then holds), so that a case written meanwhile by another session cannot take one
    ids = bulk.reserve_ids(conn, bulk.CASES, n)
    codes_of: dict[int, dict[str, str]] = {-1: {}}  # the chain's codes of each leaf, once per leaf
    for k in np.unique(leaf).tolist():
        if k >= 0:
            codes_of[k] = {a.level: a.code for a in index.chain_of(index.leaves[k].code)}
    leaf_list, lon_list, lat_list = leaf.tolist(), lon.tolist(), lat.tolist()
    ages, cat_list = age_days.tolist(), cat_idx.tolist()
    bar = progress.bar(n, "cases", unit="case")
    written: dict[str, list[int]] = {"case_file": [], "case_event": []}

    def write(rows: list[dict[str, Any]], histories: list[list[dict[str, Any]]]) -> None:
        # the staged rows set a few more columns (address, candidates, a dead end's district, a pending request):
        # one statement per set of columns, the others left to their defaults as before
        bulk.insert_rows(conn, bulk.CASES, rows, grouped=True)
        events = []  # each event given its case (the last column, as before), in place
        for row, history in zip(rows, histories):
            case_id = row["id"]
            for event in history:
                event["case_id"] = case_id
            events += history
        written["case_file"] += [row["id"] for row in rows]
        written["case_event"] += bulk.insert_numbered(conn, bulk.EVENTS, events)

    # written a chunk at a time, the cases of a chunk before their histories. On PostGIS while the next is made
    # (`bulk.Writer`: the server stores a chunk while Python makes the next; the session's connection is the writer's
    # until it is closed); into an empty history table, its indexes and key made once at the end (`bulk.into_empty`).
    # On SpatiaLite in this thread: the driver lets go of Python's lock around each row's step and a writer thread
    # gets it back only when this one's switch interval runs out (the full demo at load 6: 15-26 s with a writer
    # thread, 13-20 s without)
    # Into empty case tables of the newest schema (a new database's first district), their indexes, keys and
    # triggers are made once at the end, on both databases (`bulkload.deferred_upkeep`, as the province's load
    # does; its fills are written for the newest schema): the full demo's load on SpatiaLite 25.9 → 17.4 s, after
    # migrations had added indexes and triggers kept row by row. An older schema (a test of an upgrade) as before.
    threaded = WRITE_THREADED and conn.dialect.name == "postgresql"
    deferred = (
        bulkload.deferred_upkeep(
            conn, bulkload.existing(conn, UPKEEP_TABLES), step=lambda what: progress.stage(f"rebuilt: {what}")
        )
        if storage.at_head(conn)
        else bulk.into_empty(conn, bulk.EVENTS)
    )
    with deferred, bulk.Writer(threaded=threaded) as writer:
        for i in range(n):
            if i % 1000 == 999:
                bar.update(1000)
            reported = end - dt.timedelta(days=ages[i])
            reported = _daytime(reported, draw)
            codes = codes_of[leaf_list[i] if leaf_list[i] >= 0 else -1]
            cat = cats[cat_list[i]]
            grid = codes.get("grid")
            worker = workers.get(grid) if grid is not None else None
            row, history = _one_case(cat, reported, end, codes, worker, calendar, draw)
            item = staged.get(i)
            if item is not None:  # replaced, after its draws from `rng` were made as for any case
                row, history, pending = queues.staged_case(
                    item,
                    cat,
                    end,
                    codes,
                    worker,
                    (lon_list[i], lat_list[i]),
                    index.generation_id,
                    labels,
                    calendar,
                    stage_rng,
                )
                reported = item.reported
            source = SOURCES[bisect_right(_SOURCE_CDF, draw.random())]  # rng.choice(_SOURCES_A, p=_SOURCE_WEIGHTS_A)
            x, y = lon_list[i], lat_list[i]
            row.update(
                id=ids[i],
                title=cat.name,
                category_id=cat.id,
                source=source,
                description=f"{cat.name}，请尽快处理。",
                lon=x,
                lat=y,
                raw_x=x,
                raw_y=y,
                raw_crs="wgs84",
                geom=f"SRID=4326;POINT({x!r} {y!r})",
                generation_id=index.generation_id,
                district_code=codes.get("district"),
                subdistrict_code=codes.get("subdistrict"),
                community_code=codes.get("community"),
                grid_code=codes.get("grid"),
                microgrid_code=codes.get("microgrid"),
                branch_id=branches.get(grid) if grid is not None else None,
                locate_flags=[],
                version=1 + max(len(history) - 3, 0),  # file and dispatch at intake: 1
                reported_by_staff_id=worker if source == "patrol" else None,
                reporter_name=names.person_name(draw) if source in ("hotline", "miniprogram") else None,
                reporter_phone=names.phone_number(draw) if source in ("hotline", "miniprogram") else None,
            )
            if item is not None:
                if item.columns:  # a dead end: where and how it came in, and what is wrong with it
                    row.update(
                        item.columns,
                        reported_by_staff_id=None,
                        reporter_name=row["reporter_name"] or names.person_name(stage_rng),
                        reporter_phone=row["reporter_phone"] or names.phone_number(stage_rng),
                    )
                if pending:  # an extension or suspension request waiting for a leader
                    row["pending"] = pending
            row["number"] = case_number(row["source"], reported, row["id"])  # the channel it finally came in by
            rows.append(row)
            histories.append(history)
            if len(rows) == WRITE_CHUNK:
                writer.put(functools.partial(write, rows, histories))
                rows, histories = [], []
        if rows:
            writer.put(functools.partial(write, rows, histories))
        bar.close()
        progress.stage("cases made", n)
    progress.stage("case rows written", n)
    progress.stage("history rows written", len(written["case_event"]))
    bulk.record_inserts(conn, written)
    return n


def _daytime(when: dt.datetime, rng: Draws) -> dt.datetime:
    """Most reports arrive between 08:00 and 21:00 China time."""
    local = when.astimezone(TZ_CN)
    hour = int(min(max(rng.normal(13.5, 3.5), 6.0), 23.0))  # (np.clip's answer, without its overhead)
    return local.replace(hour=hour, minute=rng.below(60), second=rng.below(60), microsecond=0).astimezone(dt.UTC)


def _one_case(
    cat: CaseCategory,
    reported: dt.datetime,
    end: dt.datetime,
    codes: dict[str, Any],
    worker: int | None,
    calendar: WorkCalendar,
    rng: Draws,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The case's loop up to `end`, by the workflow's steps and the working calendar: its columns and history.

    Events go to the grid's worker, components to their department (the routing rules of `workflow.route`); the
    deadline is the category's limit on the working calendar from acceptance; a few cases are bounced, reworked,
    extended or suspended, most handled within their limit, and about 70 % of the closed ones rated."""
    owner_first = cat.kind == "component" and cat.department_id is not None
    handler = f"department:{cat.department_id}" if owner_first else f"worker:{worker}"
    row = {
        "state": "reported",
        "reported_at": reported,
        "accepted_at": None,
        "due_at": None,
        "closed_at": None,
        "satisfaction": None,
        "handled_by": None,
        "handled_at": None,
        "rated_at": None,
        "suspended_at": None,
        "assignee_id": None if owner_first else worker,
        "department_id": cat.department_id if owner_first else None,
        "rework_count": 0,
        "bounce_count": 0,
        "extension_count": 0,
        "reopen_count": 0,
    }
    history = []
    t = reported

    def step(action: str, actor: str, to_state: str, at: dt.datetime, detail: dict[str, Any] | None = None) -> None:
        history.append(
            {
                "at": at,
                "actor": actor,
                "action": action,
                "from_state": row["state"],
                "to_state": to_state,
                "detail": detail,
            }
        )
        row["state"] = to_state

    def later(minutes_low: float, minutes_high: float) -> dt.datetime:
        return t + dt.timedelta(minutes=rng.uniform(minutes_low, minutes_high))

    history.append(
        {
            "at": reported,
            "actor": "resident",
            "action": "reported",
            "from_state": None,
            "to_state": "reported",
            "detail": None,
        }
    )
    t = later(5, 60)
    if t > end:
        return row, history
    if rng.random() < 0.015:
        step("reject", "dispatcher:demo", "rejected", t, {"reason": "不属于受理范围"})
        row["closed_at"] = t
        return row, history
    if not codes.get("grid"):
        return row, history  # outside every grid: waits for a dispatcher to place it
    step("file", "dispatcher:demo", "filed", t)
    t = later(2, 40)
    step("dispatch", "system", "dispatched", t, {"rule": "owner_first" if owner_first else "territory_first"})
    if rng.random() < 0.015:  # bounced once ("not our territory"), then dispatched again by a dispatcher
        t = later(10, 120)
        if t > end:
            return row, history
        row["bounce_count"] = 1
        step(
            "bounce",
            handler,
            "filed",
            t,
            {
                "reason": "非本单位职责",
                "from_assignee_id": row["assignee_id"],
                "from_department_id": row["department_id"],
            },
        )
        t = later(10, 60)
        step("dispatch", "dispatcher:demo", "dispatched", t, {"rule": "override", "reason": "经核实属本单位"})
    for round_ in range(2):  # a second round only after a dissatisfied rating reopened the case
        reached = _work(row, step, handler, t, end, cat, calendar, rng, first=round_ == 0)
        if reached is None or row["state"] != "dispatched":
            break
        t = reached
    return row, history


def _work(
    row: dict[str, Any],
    step: Callable[..., None],
    handler: str,
    t: dt.datetime,
    end: dt.datetime,
    cat: CaseCategory,
    calendar: WorkCalendar,
    rng: Draws,
    *,
    first: bool,
) -> dt.datetime | None:
    """From dispatch to closure and rating (or as far as `end`); returns the time reached, None when stopped."""
    limit, unit = cat.time_limit, cat.time_unit
    t = t + dt.timedelta(minutes=rng.uniform(5, 90))
    if t > end:
        return None
    step("accept", handler, "accepted", t)
    row["accepted_at"] = t
    row["due_at"] = due = calendar.add(t, limit, unit)
    if first and rng.random() < 0.02:  # an extension, approved
        t = calendar.add(t, limit * 0.5, unit) if unit != "calendar_days" else t + dt.timedelta(days=limit * 0.5)
        if t > end:
            return None
        step("request_extension", handler, "accepted", t, {"reason": "需协调多部门", "amount": limit, "unit": unit})
        t = t + dt.timedelta(minutes=rng.uniform(30, 240))
        row["due_at"] = due = calendar.add(due, limit, unit)
        row["extension_count"] = 1
        step("approve", "leader:demo", "accepted", t, {"approved": "extension"})
    draw = rng.random()
    if first and draw < 0.006:  # suspended (挂账), not resumed yet
        t = t + dt.timedelta(minutes=rng.uniform(60, 600))
        if t > end:
            return None
        step("request_suspension", handler, "accepted", t, {"reason": "涉及历史遗留问题，需专项资金"})
        t = t + dt.timedelta(minutes=rng.uniform(30, 240))
        row["suspended_at"] = t
        step("approve", "leader:demo", "suspended", t, {"approved": "suspension"})
        return None
    if first and draw < 0.016:  # stalled: accepted, never handled (it runs overdue and is escalated)
        return None
    # most cases are handled well within their limit; a tail runs late
    share = rng.lognormal(-1.4, 0.6)
    rework = first and rng.random() < 0.03

    def after(start: dt.datetime, fraction: float) -> dt.datetime:  # a fraction of the limit, in its kind of time
        if unit == "calendar_days":
            return start + dt.timedelta(days=limit * fraction)
        return calendar.add(start, limit * fraction, unit)

    for attempt in range(2 if rework else 1):
        t = after(t, share)
        if t > end:
            return None
        step("handle", handler, "handled", t)
        row["handled_by"], row["handled_at"] = handler, t
        t = after(t, rng.uniform(0.03, 0.15))  # the verifier checks on site
        if t > end:
            return None
        if attempt == 0 and rework:
            row["rework_count"] = 1
            step("send_back", "verifier:demo", "rework", t, {"reason": "现场核查未整改到位"})
            share = share * 0.5
    step("verify", "verifier:demo", "closed", t, {"on_time": t <= due})
    row["closed_at"] = t
    if rng.random() < 0.7:
        t = t + dt.timedelta(minutes=rng.uniform(60, 60 * 48))
        if t <= end:
            scores = _SCORES_FIRST_L if first else _SCORES_AGAIN_L
            score = scores[rng.below(len(scores))]  # rng.choice(_SCORES_FIRST or _SCORES_AGAIN)
            row["satisfaction"], row["rated_at"] = score, t
            if score <= 2:  # not satisfied: reopened, back to the same handler
                step("rate", "resident", "dispatched", t, {"satisfaction": score, "reopened": True})
                row["reopen_count"] = row.get("reopen_count", 0) + 1
                row.update(closed_at=None, accepted_at=None, due_at=None, handled_by=None, handled_at=None)
            else:
                step("rate", "resident", "closed", t, {"satisfaction": score, "reopened": False})
    return t
