"""Material for every queue of a dispatcher's day at the end of the demo's year, and a few deliberate dead ends.

The year's loop (`gridmap.demo.cases`) leaves few cases in the early states at its end. Here some of the newest
cases are staged, by the workflow's steps and the working calendar, so that each queue holds a few: 待处理
(reported, in a grid), 已派遣 (dispatched, not yet accepted), 待核查 (handled, awaiting the verifier), 退单
(bounced back with the handler's reason and the boundary evidence), 待审批 (an extension or a suspension request
waiting for a leader), 超期 (accepted, past the deadline, with a holder).

Five more are dead ends on purpose, for the dispatcher's relocate flow, each with the flags the locator gives and a
description starting with `DEAD_END_NOTE` that says what is wrong: just outside the district edge (assigned to the
nearest grid), further outside (in no grid), exactly on a line between two grids, a few metres from one, and an
address that matched a compound far from where the caller said the problem is.

Everything is drawn from its own generator (spawned from the load's, which it leaves untouched): the rest of the
demo is the same with or without this staging.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely
import sqlalchemy as sa
from geoalchemy2.shape import to_shape
from shapely.ops import nearest_points
from sqlalchemy.orm import Session

from gridmap.calendar import WorkCalendar
from gridmap.demo.tiling import DemoArea
from gridmap.geo.index import AreaIndex, Location, metres_per_degree
from gridmap.store.tables import CaseCategory, Place

DEAD_END_NOTE = "位置存疑："
# fate → how many per 20,000 cases of the year (at least one round) and how long before the end it was reported
FATES = {
    "pending": (6, (0.3, 16)),
    "dispatched": (3, (1, 20)),
    "handled": (4, (24, 96)),
    "bounced": (3, (4, 72)),
    "extension": (2, (48, 144)),
    "suspension": (1, (48, 144)),
    "overdue": (2, (8 * 24, 25 * 24)),
}
DEAD_ENDS = ("edge_near", "edge_far", "on_line", "near_line", "address_far")
BOUNCE_REASONS = {
    "worker": ("非本网格辖区：上报点位在相邻网格", "非本网格辖区：该路段由相邻社区管理"),
    "department": ("非本单位职责：设施产权属其他单位", "权属不清：产权单位待确认"),
}
EXTENSION_REASONS = ("需协调多部门", "需采购配件，预计一周到货", "需业主委员会表决")
SUSPENSION_REASONS = ("涉及历史遗留问题，需专项资金", "需待雨季结束后施工")


@dataclass
class Staged:
    """One staged case: its fate, when it was reported, and for a dead end where it is and what it says."""

    fate: str
    reported: dt.datetime
    lon: float | None = None
    lat: float | None = None
    leaf: int = -1
    columns: dict[str, Any] | None = None  # columns set after the year's own (flags, description, source …)


def plan(n: int, end: dt.datetime, rng: np.random.Generator) -> dict[int, Staged]:
    """Which of the `n` cases (in order of report, newest last) are staged, and when they were reported."""
    rounds = 1 + n // 20_000
    fates = [fate for fate, (count, _) in FATES.items() for _ in range(count * rounds)] + list(DEAD_ENDS)
    if n < 4 * len(fates):
        return {}
    chosen = rng.choice(np.arange(n - 4 * len(fates), n), size=len(fates), replace=False)
    out = {}
    for i, fate in zip(sorted(int(c) for c in chosen), fates):
        low, high = FATES[fate][1] if fate in FATES else (1, 48)
        out[i] = Staged(fate, end - dt.timedelta(hours=float(rng.uniform(low, high))))
    return out


def place_dead_ends(
    session: Session,
    index: AreaIndex,
    areas: list[DemoArea],
    epsg: int,
    staged: dict[int, Staged],
    rng: np.random.Generator,
) -> None:
    """Put the dead-end examples where they go wrong, with the locator's flags and a description of the problem."""
    from gridmap.geo import crs as gcrs

    _, back = gcrs.projector(epsg)
    names = {a.code: a.name for a in areas}
    district = max(shapely.get_parts(areas[0].geom), key=lambda g: g.area)
    for item in staged.values():
        if item.fate in ("edge_near", "edge_far"):
            metres = 40 if item.fate == "edge_near" else 160
            edge = district.exterior.interpolate(float(rng.uniform(0, 1)), normalized=True)
            out = nearest_points(district.buffer(metres, quad_segs=4).exterior, edge)[0]
            lon, lat = back.transform(out.x, out.y)
            location, candidates = _locate(index, lon, lat)
            if location.chain:
                text = (
                    f"上报点位于区界外约{metres}米，已暂按最近网格（{location.chain[3].name}）定位，"
                    "请核实后更正位置或确认立案。"
                )
                _set(index, item, lon, lat, location, candidates, text, "miniprogram")
            else:  # in no grid, but reported to this district: its dispatchers see it (policy.case_condition)
                text = f"上报点位于区界外约{metres}米，不在任何网格内，请核实后更正位置再立案。"
                _set(index, item, lon, lat, location, candidates, text, "miniprogram", district_code=areas[0].code)
        elif item.fate in ("on_line", "near_line"):
            lon, lat, other = _grid_corner(index, areas[0].code, rng)
            if item.fate == "near_line":  # three metres into the winning leaf, towards its inside
                own = index.leaf_geoms[index.leaf_at(lon, lat)]
                inner = own.representative_point()
                kx, ky = metres_per_degree(lat)
                dx, dy = (inner.x - lon) * kx, (inner.y - lat) * ky
                step = 3.0 / max(np.hypot(dx, dy), 1e-9)
                lon, lat = lon + dx * step / kx, lat + dy * step / ky
            location, candidates = _locate(index, lon, lat)
            own_grid, other_grid = location.chain[3].name, names.get(other[:15], other[:15])
            text = (
                (
                    f"上报点恰在{own_grid}与{other_grid}的分界线上，已按编码较小者优先的规则暂归{own_grid}，"
                    "请核实属于哪个网格。"
                )
                if item.fate == "on_line"
                else (f"上报点距{other_grid}边界约3米，请核实属于哪个网格。")
            )
            _set(index, item, lon, lat, location, candidates, text, "miniprogram")
        elif item.fate == "address_far":
            _address_far(session, index, names, areas[0].code, item, rng)


def _locate(index: AreaIndex, lon: float, lat: float) -> tuple[Location, list[dict[str, Any]]]:
    """The point located exactly as intake locates a new case (the locate route's distances): the location (with
    every flag intake stores) and the candidate grids intake stores."""
    from gridmap.cases.intake import locate_for_case
    from gridmap.geo import crs as gcrs
    from gridmap.locating.locate import LocateOptions

    location, flags, candidates = locate_for_case(index, lon, lat, gcrs.parse_crs("wgs84"), LocateOptions())
    location.flags = list(flags)
    return location, candidates


def _set(
    index: AreaIndex,
    item: Staged,
    lon: float,
    lat: float,
    location: Location,
    candidates: list[dict[str, Any]],
    text: str,
    source: str,
    **more: Any,
) -> None:
    item.lon, item.lat = float(lon), float(lat)
    code = location.leaf_code if location.chain else None
    item.leaf = int(np.searchsorted(index.leaf_codes_sorted, code)) if code else -1
    item.columns = dict(
        locate_flags=list(location.flags),
        locate_candidates=candidates,
        description=DEAD_END_NOTE + text,
        source=source,
        **more,
    )


def _grid_corner(index: AreaIndex, district: str, rng: np.random.Generator) -> tuple[float, float, str]:
    """A vertex shared by leaves of two different grids of the district (so exactly on a grid line), and the other
    leaf's code."""
    for start in rng.permutation(len(index.leaves)):
        if not index.leaves[start].code.startswith(district):  # (the index holds every district loaded)
            continue
        geom = index.leaf_geoms[start]
        for x, y in shapely.get_coordinates(
            shapely.get_exterior_ring(max(shapely.get_parts(geom), key=lambda g: g.area))
        ):
            codes = index.covering(float(x), float(y))
            grids = {c[:15] for c in codes}
            if len(grids) == 2 and len(codes) == 2:
                return float(x), float(y), codes[1]
    raise ValueError("no two grids share a vertex")


def _address_far(
    session: Session, index: AreaIndex, names: dict[str, Any], district: str, item: Staged, rng: np.random.Generator
) -> None:
    """A 12345 call: the address text matched a compound (at low confidence) far from the community the caller
    named, so the point is probably wrong."""
    rows = session.execute(
        sa.select(Place.name, Place.area_code, Place.geom)
        .where(Place.kind == "compound", Place.area_code.startswith(district))
        .order_by(Place.id)
    ).all()
    points = shapely.get_coordinates([to_shape(g) for *_, g in rows])  # the compounds' points: (x, y) rows
    a = int(rng.integers(len(rows)))
    kx, ky = metres_per_degree(float(points[a, 1]))
    far = np.flatnonzero(np.hypot((points[:, 0] - points[a, 0]) * kx, (points[:, 1] - points[a, 1]) * ky) > 8_000)
    b = int(far[int(rng.integers(len(far)))]) if len(far) else (a + 1) % len(rows)
    name, grid = rows[a][0], rows[a][1]
    said = names.get(rows[b][1][:12], "")
    km = np.hypot((points[b, 0] - points[a, 0]) * kx, (points[b, 1] - points[a, 1]) * ky) / 1000
    lon, lat = float(points[a, 0]), float(points[a, 1])
    location, candidates = _locate(index, lon, lat)
    location.flags += ["placed_by_address", "address_low_confidence"]
    text = (
        f"来电称在{said}一带的{name}5幢门口垃圾堆积。地址按“{name}5幢”匹配到{names.get(grid[:12], '')}的"
        f"同名小区（可信度0.6），与来电所述地点相距约{km:.0f}公里，请与来电人核实位置。"
    )
    _set(index, item, lon, lat, location, candidates, text, "hotline", address=f"{name}5幢")


def staged_case(
    item: Staged,
    cat: CaseCategory,
    end: dt.datetime,
    codes: dict[str, Any],
    worker: int | None,
    point: tuple[float, float],
    generation_id: int | None,
    labels: dict[str, str],
    calendar: WorkCalendar,
    rng: np.random.Generator,
) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any] | None]:
    """The staged case's columns, history (by the workflow's steps) and pending request."""
    fate, reported = item.fate, item.reported
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
        "assignee_id": None,
        "department_id": None,
        "rework_count": 0,
        "bounce_count": 0,
        "extension_count": 0,
        "reopen_count": 0,
    }
    history = [
        {
            "at": reported,
            "actor": "resident",
            "action": "reported",
            "from_state": None,
            "to_state": "reported",
            "detail": None,
        }
    ]

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

    if fate == "pending" or fate in DEAD_ENDS or not codes.get("grid"):
        return row, history, None
    limit, unit = cat.time_limit, cat.time_unit
    # filed, dispatched and taken up (accepted or bounced) within minutes to an hour or two of the report
    gaps = [dt.timedelta(minutes=float(rng.uniform(low, high))) for low, high in ((5, 30), (2, 20), (10, 150))]
    if fate == "overdue":  # reported early enough for the deadline to have passed a while before the end
        for _ in range(6):
            due = calendar.add(reported + sum(gaps, dt.timedelta()), limit, unit)
            if due < end - dt.timedelta(hours=2):
                break
            reported = reported - (due - end) - dt.timedelta(days=float(rng.uniform(1, 5)))
        row["reported_at"] = history[0]["at"] = item.reported = reported
    t = reported + gaps[0]
    step("file", "dispatcher:demo", "filed", t)
    t += gaps[1]
    row["assignee_id"], row["department_id"] = (None, cat.department_id) if owner_first else (worker, None)
    step("dispatch", "system", "dispatched", t, {"rule": "owner_first" if owner_first else "territory_first"})
    if fate == "dispatched":
        return row, history, None
    t += gaps[2]
    if fate == "bounced":
        kind = "department" if owner_first else "worker"
        reason = BOUNCE_REASONS[kind][int(rng.integers(2))]
        evidence = {
            "grid_code": codes.get("grid"),
            "microgrid_code": codes.get("microgrid"),
            "point": [point[0], point[1]],
            "generation_id": generation_id,
        }
        step(
            "bounce",
            handler,
            "filed",
            t,
            {
                "reason": reason,
                "evidence": evidence,
                "by": labels.get(handler, handler),
                "from_assignee_id": row["assignee_id"],
                "from_department_id": row["department_id"],
            },
        )
        row.update(bounce_count=1, assignee_id=None, department_id=None)
        return row, history, None
    step("accept", handler, "accepted", t)
    row["accepted_at"] = t
    row["due_at"] = calendar.add(t, limit, unit)
    t += dt.timedelta(seconds=(end - t).total_seconds() * float(rng.uniform(0.3, 0.9)))
    if fate == "handled":
        step("handle", handler, "handled", t)
        row["handled_by"], row["handled_at"] = handler, t
        return row, history, None
    if fate in ("extension", "suspension"):
        reasons = EXTENSION_REASONS if fate == "extension" else SUSPENSION_REASONS
        reason = reasons[int(rng.integers(len(reasons)))]
        pending: dict[str, Any] = {
            "kind": fate,
            "reason": reason,
            "by": labels.get(handler, handler),
            "at": t.isoformat(),
        }
        detail: dict[str, Any] = {"reason": reason}
        if fate == "extension":
            pending.update(amount=limit, unit=unit)
            detail.update(amount=limit, unit=unit)
        step(f"request_{fate}", handler, "accepted", t, detail)
        return row, history, pending
    return row, history, None  # overdue: accepted, never handled; the deadline has passed


def handler_labels(session: Session, staff_ids: set[int]) -> dict[str, str]:
    """`worker:<id>` / `department:<id>` → the role and the person's or department's name, as a step records it."""
    from gridmap.store.tables import Department, Staff

    out = {
        f"worker:{i}": f"worker:{n}"
        for i, n in session.execute(sa.select(Staff.id, Staff.name).where(Staff.id.in_(sorted(staff_ids))))
    }
    out.update(
        {f"department:{i}": f"department:{n}" for i, n in session.execute(sa.select(Department.id, Department.name))}
    )
    return out
