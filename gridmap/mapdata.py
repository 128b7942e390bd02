"""What the map needs, shaped for the browser: area outlines per level, box and zoom; compact case points.

The browser never gets a whole level at full detail. For a zoom z a screen pixel is `360 / (256 · 2^z)` degrees of
longitude; outlines are simplified to about half a pixel as a *coverage* (`shapely.coverage_simplify`: shared edges
are simplified once, so neighbours still meet with no gap or overlap) and their coordinates rounded to a quarter of
a pixel (5 decimals at district zooms, 6 from z 16). Each feature is encoded once per generation, level and zoom and
kept in memory, so a request is an R-tree query and a string join. The answer is the same on SpatiaLite and PostGIS:
both hand the stored geometry to shapely.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import shapely
import sqlalchemy as sa
from geoalchemy2.shape import to_shape
from sqlalchemy.orm import Session, aliased

from gridmap import policy, workflow
from gridmap.areas import check_level, get_area
from gridmap.cases import LEVEL_COLUMNS, check_period, check_states, state_condition, utc
from gridmap.errors import InvalidInput
from gridmap.policy import Principal
from gridmap.tables import CASE_SOURCES, Area, Case, CaseCategory
from gridmap.workcal import clock as clock_of

MIN_ZOOM, MAX_ZOOM = 6, 17  # outside this range the nearest is used (17: no simplification left to do)
CASE_FIELDS = ("id", "lon", "lat", "state", "clock", "category", "source", "reported_at")
CLOCKED_STATES = ("accepted", "rework", "handled")
MAX_CASE_POINTS = 100_000


def pixel_degrees(zoom: int) -> float:
    """Degrees of longitude per screen pixel at a Web Mercator zoom."""
    return 360.0 / (256 * 2 ** zoom)


def zoom_detail(zoom: int) -> tuple[float, int]:
    """(simplification tolerance in degrees, decimals kept) for a zoom: half a pixel, a quarter of a pixel."""
    px = pixel_degrees(zoom)
    decimals = min(6, max(3, math.ceil(-math.log10(px / 4))))
    return (0.0 if zoom >= MAX_ZOOM else px / 2), decimals


def check_zoom(zoom: int) -> int:
    if not isinstance(zoom, int) or not 0 <= zoom <= 24:
        raise InvalidInput(f"zoom: {zoom!r} must be a whole number from 0 to 24", field="zoom")
    return min(MAX_ZOOM, max(MIN_ZOOM, zoom))


@dataclass
class _Level:
    codes: list[str]
    fragments: dict[int, list[str]]  # zoom → encoded Feature per area, in `codes` order
    geoms: np.ndarray
    props: list[dict]
    tree: shapely.STRtree


class AreaShapes:
    """The outlines of one generation, per level, ready to serve by box and zoom (thread-safe, built lazily)."""

    def __init__(self, generation_id: int, rows: list[tuple[str, str, str, str | None, shapely.Geometry]]):
        self.generation_id = generation_id
        self._lock = threading.Lock()
        by_level: dict[str, list] = {}
        for code, name, level, parent, geom in rows:
            by_level.setdefault(level, []).append((code, name, parent, geom))
        self._levels: dict[str, _Level] = {}
        for level, items in by_level.items():
            items.sort(key=lambda item: item[0])
            geoms = np.array([g for *_, g in items], dtype=object)
            labels = shapely.get_coordinates(shapely.point_on_surface(geoms))
            props = [{"code": code, "name": name, "level": level, "parent_code": parent,
                      "label": [round(float(x), 6), round(float(y), 6)]}
                     for (code, name, parent, _), (x, y) in zip(items, labels)]
            self._levels[level] = _Level([i[0] for i in items], {}, geoms, props, shapely.STRtree(geoms))

    @classmethod
    def from_session(cls, session: Session, generation_id: int) -> AreaShapes:
        parent = aliased(Area)
        rows = session.execute(
            sa.select(Area.code, Area.name, Area.level, parent.code, Area.geom)
            .outerjoin(parent, Area.parent_id == parent.id).where(Area.generation_id == generation_id)).all()
        return cls(generation_id, [(c, n, lv, p, to_shape(g)) for c, n, lv, p, g in rows])

    def levels(self) -> list[str]:
        return list(self._levels)

    def _fragments(self, level: _Level, zoom: int) -> list[str]:
        with self._lock:
            done = level.fragments.get(zoom)
            if done is not None:
                return done
            tolerance, decimals = zoom_detail(zoom)
            geoms = level.geoms
            if tolerance > 0:
                try:
                    geoms = shapely.coverage_simplify(geoms, tolerance)
                except shapely.errors.GEOSException:  # not a clean coverage: simplify each outline on its own
                    geoms = shapely.simplify(geoms, tolerance, preserve_topology=True)
            geoms = shapely.transform(geoms, lambda xy: np.round(xy, decimals))
            encoded = shapely.to_geojson(geoms)
            out = [f'{{"type":"Feature","id":{json.dumps(p["code"])},"geometry":{g},'
                   f'"properties":{json.dumps(p, ensure_ascii=False, separators=(",", ":"))}}}' for p, g in zip(level.props, encoded)]
            level.fragments[zoom] = out
            return out

    def collection(self, level: str, bbox: tuple[float, float, float, float] | None, zoom: int,
                   visible=None) -> str:
        """A GeoJSON FeatureCollection (as text) of the level's areas that meet the box, drawn for the zoom (only
        those whose code `visible(code)` accepts, when given)."""
        check_level(level)
        zoom = check_zoom(zoom)
        data = self._levels.get(level)
        if data is None:
            return '{"type":"FeatureCollection","features":[],"numberReturned":0}'
        if bbox is None:
            hits = range(len(data.codes))
        else:
            hits = sorted(data.tree.query(shapely.box(*bbox), predicate="intersects").tolist())
        if visible is not None:
            hits = [i for i in hits if visible(data.codes[i])]
        fragments = self._fragments(data, zoom)
        body = ",".join(fragments[i] for i in hits)
        return (f'{{"type":"FeatureCollection","features":[{body}],"numberReturned":{len(hits)},'
                f'"zoom":{zoom},"generation_id":{self.generation_id}}}')


class ShapeCache:
    """AreaShapes per generation, the most recently used few kept."""

    def __init__(self, keep: int = 3):
        self._keep = keep
        self._items: OrderedDict[tuple, AreaShapes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, session: Session, key: str, generation_id: int) -> AreaShapes:
        with self._lock:
            shapes = self._items.get((key, generation_id))
            if shapes is not None:
                self._items.move_to_end((key, generation_id))
                return shapes
        shapes = AreaShapes.from_session(session, generation_id)
        with self._lock:
            self._items[(key, generation_id)] = shapes
            while len(self._items) > self._keep:
                self._items.popitem(last=False)
        return shapes

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


# ---------------------------------------------------------------------------------------------------- case points

@dataclass(frozen=True)
class CaseFilter:
    """Which cases the map shows: reported in [since, until), in these states (or `open` / `overdue`), of these
    categories (codes) and sources, inside a box or an area."""

    since: dt.datetime | None = None
    until: dt.datetime | None = None
    states: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    bbox: tuple[float, float, float, float] | None = None
    area: str | None = None

    @staticmethod
    def split(text: str | None) -> tuple[str, ...]:
        return tuple(sorted({v.strip() for v in (text or "").split(",") if v.strip()}))

    def check(self) -> None:
        check_period(self.since, self.until)
        check_states(self.states)
        for source in self.sources:
            if source not in CASE_SOURCES:
                raise InvalidInput(f"source: {source!r} is not a channel; accepted: {', '.join(CASE_SOURCES)}",
                                   field="source")


def case_points(session: Session, flt: CaseFilter, *, calendar=None, now: dt.datetime | None = None,
                limit: int = MAX_CASE_POINTS, who: Principal | None = None) -> dict:
    """The cases to draw, as one compact table: `fields` and `rows` (no personal data, no text typed by residents
    beyond the category code). `clock` is the deadline colour of a running case (green / yellow / red) or None."""
    flt.check()
    now = utc(now) or dt.datetime.now(dt.timezone.utc)
    query = (sa.select(Case.id, Case.lon, Case.lat, Case.state, CaseCategory.code, Case.source, Case.reported_at,
                       Case.accepted_at, Case.due_at, CaseCategory.time_unit)
             .outerjoin(CaseCategory, Case.category_id == CaseCategory.id).where(Case.lon.is_not(None)))
    if who is not None:
        query = query.where(policy.case_condition(who, Case))
    if flt.since:
        query = query.where(Case.reported_at >= utc(flt.since))
    if flt.until:
        query = query.where(Case.reported_at < utc(flt.until))
    if flt.states:
        query = query.where(state_condition(flt.states, now))
    if flt.categories:
        query = query.where(CaseCategory.code.in_(flt.categories))
    if flt.sources:
        query = query.where(Case.source.in_(flt.sources))
    if flt.bbox:
        minx, miny, maxx, maxy = flt.bbox
        query = query.where(Case.lon.between(minx, maxx), Case.lat.between(miny, maxy))
    if flt.area:
        target = get_area(session, flt.area)
        query = query.where(LEVEL_COLUMNS[target.level] == flt.area)
    rows = session.execute(query.order_by(Case.reported_at.desc(), Case.id.desc()).limit(limit + 1)).all()
    truncated = len(rows) > limit
    out = []
    for cid, lon, lat, state, category, source, reported, accepted, due, unit in rows[:limit]:
        clock = None
        if state in CLOCKED_STATES and accepted is not None and due is not None:
            if calendar is not None:
                clock = clock_of(calendar, utc(accepted), utc(due), unit or workflow.limit_of(None)[1], now)[0]
            else:
                clock = "red" if utc(due) < now else "green"
        out.append([cid, round(lon, 6), round(lat, 6), state, clock, category, source,
                    utc(reported).isoformat().replace("+00:00", "Z")])
    return {"fields": list(CASE_FIELDS), "rows": out, "count": len(out), "truncated": truncated,
            "now": now.isoformat().replace("+00:00", "Z")}
