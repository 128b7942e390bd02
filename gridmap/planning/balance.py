"""The planner's balance table and the diff of a draft against the active generation (issue 13 §4).

`balance(session, generation_id, area_code, level)` gives one row per grid (or micro-grid) under an area of a
generation: households and population (as the generation stores them), the party members of the unit's branch,
compounds and buildings (places whose point lies in the unit), staff, open cases, the deviation of the households
from the mean of the units, compactness as Polsby–Popper (4πA/P², in metres) and contiguity; and whether the unit
differs from the active generation. `diff(session, generation_id, area_code)` lists the grids and micro-grids a
draft creates, retires or changes under an area, and the buildings and compounds whose grid changes.

Places and cases are counted by where they are (point in polygon, on the stored longitude/latitude), not by the
codes stored with them, which name the units of the generation they were filed under. A point on a shared edge
belongs to the unit with the smallest code, so every point is counted once. Cases with no point are counted by the
grid (or micro-grid) code they carry.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely
import sqlalchemy as sa
from geoalchemy2.shape import to_shape
from shapely.geometry.base import BaseGeometry
from sqlalchemy.orm import Session

from gridmap.boundaries.areas import active_generation
from gridmap.boundaries.check import metric_epsg
from gridmap.boundaries.generations import get_generation
from gridmap.errors import InvalidInput, NotFound
from gridmap.geo import crs as gcrs
from gridmap.store.dialect import bbox_filter
from gridmap.store.tables import (
    FINISHED_STATES,
    LEVELS,
    Area,
    Case,
    PartyOrg,
    PartyOrgArea,
    Place,
    PlanAssignment,
    StaffArea,
)

UNIT_LEVELS = ("grid", "microgrid")
DEFAULT_TOLERANCE = 0.10
SEGMENT_DEG = 1e-4  # edges are densified to about 10 m before they are projected to metres
UNIT_KINDS = ("building", "compound")  # the places a diff follows


@dataclass
class Unit:
    """One grid or micro-grid of a generation, with its shape."""

    id: int
    code: str
    name: str
    level: str
    parent: str | None
    households: int
    population: int
    locked: bool
    geom: BaseGeometry


# -- loading ---------------------------------------------------------------------------------------------------------


def _area_of(session: Session, generation_id: int, code: str) -> Area:
    area = session.scalars(sa.select(Area).where(Area.generation_id == generation_id, Area.code == code)).first()
    if area is None:
        raise NotFound(
            f"area: no area has code {code!r} in generation {generation_id}",
            field="area",
            zh=f"区域：第 {generation_id} 版边界中没有编码为 {code!r} 的区域。",
        )
    return area


def _descendant_ids(session: Session, generation_id: int, root_id: int, level: str) -> list[int]:
    """Ids of the areas at `level` under the area `root_id` (by the parent links, not by code prefix: a unit moved
    to another parent may keep its code)."""
    rows = session.execute(
        sa.select(Area.id, Area.parent_id, Area.level).where(Area.generation_id == generation_id)
    ).all()
    children: dict[int, list[int]] = {}
    levels = {}
    for area_id, parent_id, lvl in rows:
        levels[area_id] = lvl
        if parent_id is not None:
            children.setdefault(parent_id, []).append(area_id)
    out, stack = [], [root_id]
    while stack:
        current = stack.pop()
        if levels.get(current) == level:
            out.append(current)
            continue
        stack.extend(children.get(current, ()))
    return out


def _units(session: Session, ids: list[int]) -> list[Unit]:
    if not ids:
        return []
    parent = sa.orm.aliased(Area)
    rows = session.execute(
        sa.select(Area, parent.code)
        .outerjoin(parent, parent.id == Area.parent_id)
        .where(Area.id.in_(ids))
        .order_by(Area.code)
    ).all()
    return [
        Unit(a.id, a.code, a.name, a.level, p, a.households or 0, a.population or 0, bool(a.locked), to_shape(a.geom))
        for a, p in rows
    ]


def units_under(session: Session, generation_id: int, area_code: str, level: str) -> list[Unit]:
    """The units at `level` under the area `area_code` of a generation, by code."""
    root = _area_of(session, generation_id, area_code)
    return _units(session, _descendant_ids(session, generation_id, root.id, level))


def _check_level(area: Area, level: str | None) -> str:
    finer = [lv for lv in UNIT_LEVELS if LEVELS.index(lv) > LEVELS.index(area.level)]
    if not finer:
        raise InvalidInput(
            f"area {area.code} is a {area.level}; choose a sub-district, community or grid",
            field="area",
            zh=f"区域：{area.code} 是{('微网格' if area.level == 'microgrid' else '网格')}，请选择街道、社区或网格。",
        )
    if level is None:
        return finer[0]
    if level not in finer:
        raise InvalidInput(
            f"level: under a {area.level} the units may be {' or '.join(finer)}, not {level!r}",
            field="level",
            zh=f"层级：{area.code} 之下可选 {'、'.join(finer)}。",
        )
    return level


# -- assigning points to units ------------------------------------------------------------------------------------


class _Locator:
    """Which unit a point lies in: the unit with the smallest code among those that cover it."""

    def __init__(self, units: list[Unit]):
        self.units = sorted(units, key=lambda u: u.code)
        self.tree = shapely.STRtree([u.geom for u in self.units]) if self.units else None

    def locate(self, lons: np.ndarray, lats: np.ndarray) -> list[int | None]:
        """For each point, the index (in `self.units`) of its unit, or None."""
        out: list[int | None] = [None] * len(lons)
        if self.tree is None or not len(lons):
            return out
        points = shapely.points(lons, lats)
        pairs = self.tree.query(points, predicate="intersects")
        for point_i, unit_i in zip(pairs[0].tolist(), pairs[1].tolist()):
            if out[point_i] is None or unit_i < out[point_i]:
                out[point_i] = unit_i
        return out


def _bounds(units: list[Unit]) -> tuple[float, float, float, float]:
    boxes = np.array([u.geom.bounds for u in units])
    return float(boxes[:, 0].min()), float(boxes[:, 1].min()), float(boxes[:, 2].max()), float(boxes[:, 3].max())


def _places_in(
    session: Session, box: tuple[float, float, float, float], kinds: tuple[str, ...]
) -> list[tuple[int, str, str | None, int, float, float]]:
    """Places of `kinds` whose point lies in `box`: (id, kind, name, households, lon, lat), by id."""
    minx, miny, maxx, maxy = box
    rows = session.execute(
        sa.select(
            Place.id, Place.kind, Place.name, Place.households, sa.func.ST_X(Place.geom), sa.func.ST_Y(Place.geom)
        )
        .where(Place.kind.in_(kinds), bbox_filter(session, "place", box))
        .order_by(Place.id)
    ).all()
    return [
        (pid, kind, name, households or 0, float(x), float(y))
        for pid, kind, name, households, x, y in rows
        if minx <= x <= maxx and miny <= y <= maxy
    ]


# -- measures -----------------------------------------------------------------------------------------------------


def polsby_popper(geom: BaseGeometry) -> float | None:
    """4πA/P² of a (multi)polygon measured in metres in its Gauss-Krüger zone (1 for a circle, π/4 for a square);
    None for an empty shape."""
    if geom.is_empty:
        return None
    minx, miny, maxx, maxy = geom.bounds
    fwd, _ = gcrs.projector(metric_epsg((minx + maxx) / 2, (miny + maxy) / 2))
    dense = shapely.segmentize(geom, SEGMENT_DEG)
    metric = shapely.transform(dense, lambda xy: np.column_stack(fwd.transform(xy[:, 0], xy[:, 1])))
    perimeter = metric.length
    return 4 * math.pi * metric.area / (perimeter * perimeter) if perimeter > 0 else None


def is_contiguous(geom: BaseGeometry) -> bool:
    """One piece (a multipolygon of one polygon, or a polygon)."""
    if geom.is_empty:
        return False
    return len([p for p in getattr(geom, "geoms", [geom]) if not p.is_empty]) == 1


def same_shape(a: BaseGeometry, b: BaseGeometry) -> bool:
    """The same outline: identical, or the same point set (vertices reordered by a union)."""
    return a.wkb == b.wkb or bool(shapely.equals(a, b))


# -- the balance table ----------------------------------------------------------------------------------------------


def _branches(session: Session, generation_id: int, codes: list[str], on: dt.date) -> dict[str, int]:
    """Party members of each code's branch: the draft's own assignment when it has one, else the organisation
    assigned to the code on `on` (the one with the smallest id, as the locate answers)."""
    members: dict[str, int] = {}
    rows = session.execute(
        sa.select(PartyOrgArea.area_code, PartyOrg.member_count)
        .join(PartyOrg, PartyOrg.id == PartyOrgArea.party_org_id)
        .where(PartyOrgArea.area_code.in_(codes))
        .where(sa.or_(PartyOrgArea.valid_from.is_(None), PartyOrgArea.valid_from <= on))
        .where(sa.or_(PartyOrgArea.valid_to.is_(None), PartyOrgArea.valid_to > on))
        .order_by(PartyOrgArea.area_code, PartyOrg.id)
    ).all()
    for code, count in rows:
        members.setdefault(code, count or 0)
    planned = session.execute(
        sa.select(PlanAssignment.area_code, PartyOrg.member_count)
        .join(PartyOrg, PartyOrg.id == PlanAssignment.ref_id)
        .where(
            PlanAssignment.generation_id == generation_id,
            PlanAssignment.kind == "branch",
            PlanAssignment.area_code.in_(codes),
        )
        .order_by(PlanAssignment.area_code, PlanAssignment.id)
    ).all()
    seen: set[str] = set()
    for code, count in planned:
        if code not in seen:
            members[code] = count or 0
            seen.add(code)
    return members


def _staff(session: Session, generation_id: int, codes: list[str]) -> dict[str, int]:
    """Distinct people serving each code: assigned now, or by the draft."""
    people: dict[str, set[int]] = {}
    for code, staff_id in session.execute(
        sa.select(StaffArea.area_code, StaffArea.staff_id).where(StaffArea.area_code.in_(codes))
    ):
        people.setdefault(code, set()).add(staff_id)
    for code, staff_id in session.execute(
        sa.select(PlanAssignment.area_code, PlanAssignment.ref_id).where(
            PlanAssignment.generation_id == generation_id,
            PlanAssignment.kind == "staff",
            PlanAssignment.area_code.in_(codes),
        )
    ):
        people.setdefault(code, set()).add(staff_id)
    return {code: len(ids) for code, ids in people.items()}


def _open_cases(session: Session, units: list[Unit], locator: _Locator, level: str) -> list[int]:
    counts = [0] * len(locator.units)
    if not units:
        return counts
    minx, miny, maxx, maxy = _bounds(units)
    located = session.execute(
        sa.select(Case.lon, Case.lat).where(
            Case.state.not_in(FINISHED_STATES),
            Case.lon.is_not(None),
            Case.lat.is_not(None),
            Case.lon.between(minx, maxx),
            Case.lat.between(miny, maxy),
        )
    ).all()
    if located:
        arr = np.array(located, dtype=float)
        for i in locator.locate(arr[:, 0], arr[:, 1]):
            if i is not None:
                counts[i] += 1
    column = Case.grid_code if level == "grid" else Case.microgrid_code
    index: dict[str | None, int] = {u.code: i for i, u in enumerate(locator.units)}
    for (code,) in session.execute(
        sa.select(column).where(
            Case.state.not_in(FINISHED_STATES), sa.or_(Case.lon.is_(None), Case.lat.is_(None)), column.in_(list(index))
        )
    ):
        counts[index[code]] += 1
    return counts


def balance(
    session: Session,
    generation_id: int,
    area_code: str,
    level: str | None = None,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    on: dt.date | None = None,
) -> dict[str, Any]:
    """The balance table of the units (grids by default, micro-grids under a grid) under `area_code` in a
    generation: a GeoJSON FeatureCollection with one feature per unit, and the household norm (the mean of the
    units and the tolerance of the deviation)."""
    if not 0 < tolerance < 1:
        raise InvalidInput(
            f"tolerance must be a fraction between 0 and 1, not {tolerance}",
            field="tolerance",
            zh="容差：应为 0 到 1 之间的小数。",
        )
    gen = get_generation(session, generation_id)
    root = _area_of(session, gen.id, area_code)
    level = _check_level(root, level)
    units = _units(session, _descendant_ids(session, gen.id, root.id, level))
    locator = _Locator(units)
    units = locator.units
    codes = [u.code for u in units]
    compounds, buildings = [0] * len(units), [0] * len(units)
    if units:
        places = _places_in(session, _bounds(units), ("compound", "building"))
        if places:
            where = locator.locate(np.array([p[4] for p in places]), np.array([p[5] for p in places]))
            for place, i in zip(places, where):
                if i is not None:
                    (compounds if place[1] == "compound" else buildings)[i] += 1
    members = _branches(session, gen.id, codes, on or dt.date.today())
    staff = _staff(session, gen.id, codes)
    cases = _open_cases(session, units, locator, level)
    changed = changed_codes(session, gen.id, units)
    total = sum(u.households for u in units)
    mean = total / len(units) if units else 0.0
    features = []
    for i, u in enumerate(units):
        deviation = (u.households - mean) / mean if mean else None
        features.append(
            {
                "type": "Feature",
                "id": u.code,
                "geometry": shapely.geometry.mapping(u.geom),
                "properties": {
                    "code": u.code,
                    "name": u.name,
                    "level": u.level,
                    "parent": u.parent,
                    "households": u.households,
                    "population": u.population,
                    "party_members": members.get(u.code, 0),
                    "has_branch": u.code in members,
                    "compounds": compounds[i],
                    "buildings": buildings[i],
                    "staff": staff.get(u.code, 0),
                    "open_cases": cases[i],
                    "deviation": round(deviation, 6) if deviation is not None else None,
                    "within_tolerance": deviation is not None and abs(deviation) <= tolerance,
                    "polsby_popper": _round(polsby_popper(u.geom)),
                    "contiguous": is_contiguous(u.geom),
                    "locked": u.locked,
                    "changed": u.code in changed,
                },
            }
        )
    return {
        "generation_id": gen.id,
        "status": gen.status,
        "area": root.code,
        "area_name": root.name,
        "area_level": root.level,
        "level": level,
        "norm": {"mean_households": round(mean, 3), "tolerance": tolerance},
        "totals": {
            "units": len(units),
            "households": total,
            "population": sum(u.population for u in units),
            "party_members": sum(members.get(c, 0) for c in codes),
            "compounds": sum(compounds),
            "buildings": sum(buildings),
            "staff": sum(staff.get(c, 0) for c in codes),
            "open_cases": sum(cases),
        },
        "features": {"type": "FeatureCollection", "features": features},
    }


def _round(value: float | None) -> float | None:
    return round(value, 6) if value is not None else None


def changed_codes(session: Session, generation_id: int, units: list[Unit]) -> set[str]:
    """Codes of `units` (of one generation) that the active generation lacks, or holds with another outline,
    household count or parent."""
    active = active_generation(session)
    if active.id == generation_id or not units:
        return set()
    codes = [u.code for u in units]
    parent = sa.orm.aliased(Area)
    rows = session.execute(
        sa.select(Area.code, Area.households, Area.geom, parent.code)
        .outerjoin(parent, parent.id == Area.parent_id)
        .where(Area.generation_id == active.id, Area.code.in_(codes))
    ).all()
    before = {code: (households or 0, to_shape(geom), up) for code, households, geom, up in rows}
    out = set()
    for u in units:
        old = before.get(u.code)
        if old is None or old[0] != u.households or old[2] != u.parent or not same_shape(old[1], u.geom):
            out.add(u.code)
    return out


# -- the diff against the active generation --------------------------------------------------------------------------


def diff(session: Session, generation_id: int, area_code: str) -> dict[str, Any]:
    """What a generation changes under `area_code` against the active generation: grids and micro-grids created,
    retired and changed (with both outlines), and the buildings and compounds whose grid changes."""
    gen = get_generation(session, generation_id)
    active = active_generation(session)
    root = _area_of(session, gen.id, area_code)
    out: dict[str, Any] = {
        "generation_id": gen.id,
        "active_id": active.id,
        "area": root.code,
        "area_name": root.name,
        "created": [],
        "retired": [],
        "changed": [],
        "areas": [],
        "units": [],
    }
    if active.id == gen.id:
        return out
    active_root = session.scalars(
        sa.select(Area).where(Area.generation_id == active.id, Area.code == area_code)
    ).first()
    grids: dict[str, tuple[list[Unit], list[Unit]]] = {}
    for level in UNIT_LEVELS:
        if LEVELS.index(level) <= LEVELS.index(root.level):
            continue
        now = _units(session, _descendant_ids(session, gen.id, root.id, level))
        was = _units(session, _descendant_ids(session, active.id, active_root.id, level)) if active_root else []
        known = {u.code for u in was}
        extra = [u.code for u in now if u.code not in known]  # kept codes moved here from elsewhere
        if extra:
            ids = list(
                session.scalars(
                    sa.select(Area.id).where(Area.generation_id == active.id, Area.code.in_(extra), Area.level == level)
                )
            )
            was = sorted(was + _units(session, ids), key=lambda u: u.code)
        grids[level] = (was, now)
        before = {u.code: u for u in was}
        after = {u.code: u for u in now}
        for code in sorted(set(before) | set(after)):
            b, a = before.get(code), after.get(code)
            if b is None:
                status = "created"
            elif a is None:
                status = "retired"
            elif b.households != a.households or b.parent != a.parent or not same_shape(b.geom, a.geom):
                status = "changed"
            else:
                continue
            shown = a or b
            assert shown is not None  # the code is in one of them
            out[status].append(code)
            out["areas"].append(
                {
                    "code": code,
                    "level": level,
                    "name": shown.name,
                    "status": status,
                    "parent_before": b.parent if b else None,
                    "parent_after": a.parent if a else None,
                    "households_before": b.households if b else None,
                    "households_after": a.households if a else None,
                    "population_before": b.population if b else None,
                    "population_after": a.population if a else None,
                    "geometry": shapely.geometry.mapping(shown.geom),
                    "geometry_before": shapely.geometry.mapping(b.geom) if (a and b) else None,
                }
            )
    level = "grid" if "grid" in grids else "microgrid"
    if level in grids and (grids[level][0] or grids[level][1]):
        was, now = grids[level]
        box = _bounds(was + now)
        places = _places_in(session, box, UNIT_KINDS)
        if places:
            lons, lats = np.array([p[4] for p in places]), np.array([p[5] for p in places])
            old_loc, new_loc = _Locator(was), _Locator(now)
            olds, news = old_loc.locate(lons, lats), new_loc.locate(lons, lats)
            for place, o, n in zip(places, olds, news):
                old_code = old_loc.units[o].code if o is not None else None
                new_code = new_loc.units[n].code if n is not None else None
                if old_code != new_code:
                    out["units"].append(
                        {
                            "id": place[0],
                            "kind": place[1],
                            "name": place[2],
                            "households": place[3],
                            "from": old_code,
                            "to": new_code,
                            "lon": place[4],
                            "lat": place[5],
                        }
                    )
    return out


# -- the units a planner paints -------------------------------------------------------------------------------------


def places(session: Session, generation_id: int, area_code: str) -> dict[str, Any]:
    """The buildings and compounds under `area_code` in a generation, each with the leaf (micro-grid) and the grid
    its point lies in there: what the planner picks to reassign."""
    gen = get_generation(session, generation_id)
    root = _area_of(session, gen.id, area_code)
    leaves = _units(session, _descendant_ids(session, gen.id, root.id, "microgrid"))
    if not leaves:  # a district whose leaves are grids
        leaves = _units(session, _descendant_ids(session, gen.id, root.id, "grid"))
    items = []
    if leaves:
        rows = session.execute(sa.select(Place.id, Place.parent_id).where(Place.kind.in_(UNIT_KINDS))).all()
        parent_of = dict(rows)
        found = _places_in(session, _bounds(leaves), UNIT_KINDS)
        locator = _Locator(leaves)
        where = locator.locate(np.array([p[4] for p in found]), np.array([p[5] for p in found])) if found else []
        for place, i in zip(found, where):
            if i is None:
                continue
            leaf = locator.units[i]
            grid = leaf.parent if leaf.level == "microgrid" else leaf.code
            items.append(
                {
                    "id": place[0],
                    "kind": place[1],
                    "name": place[2],
                    "households": place[3],
                    "compound_id": parent_of.get(place[0]) if place[1] == "building" else None,
                    "leaf": leaf.code,
                    "grid": grid,
                    "lon": place[4],
                    "lat": place[5],
                }
            )
    return {"generation_id": gen.id, "area": root.code, "places": items}


def area_list(session: Session, generation_id: int, levels: tuple[str, ...]) -> list[dict[str, Any]]:
    """The areas of a generation at `levels` (code, name, level, parent code, households, locked), by code: what
    a planner picks from (a draft's own areas: an imported district is in the draft, not yet in the active
    generation)."""
    gen = get_generation(session, generation_id)
    parent = sa.orm.aliased(Area)
    rows = session.execute(
        sa.select(Area.code, Area.name, Area.level, parent.code, Area.households, Area.locked)
        .outerjoin(parent, parent.id == Area.parent_id)
        .where(Area.generation_id == gen.id, Area.level.in_(levels))
        .order_by(Area.code)
    ).all()
    return [
        {
            "code": code,
            "name": name,
            "level": level,
            "parent": up,
            "households": households or 0,
            "locked": bool(locked),
        }
        for code, name, level, up, households, locked in rows
    ]
