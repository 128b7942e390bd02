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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely
import sqlalchemy as sa
from sqlalchemy.orm import Session, aliased

from gridmap.access import policy
from gridmap.access.policy import Principal
from gridmap.boundaries.areas import check_level, get_area
from gridmap.calendar import WorkCalendar
from gridmap.calendar import clock as clock_of
from gridmap.cases import workflow
from gridmap.cases.intake import LEVEL_COLUMNS, utc
from gridmap.cases.queries import check_period, check_states, state_condition
from gridmap.errors import InvalidInput
from gridmap.store import dialect as _spatial
from gridmap.store.tables import CASE_SOURCES, LEVELS, Area, Case, CaseCategory

MIN_ZOOM, MAX_ZOOM = 6, 17  # outside this range the nearest is used (17: no simplification left to do)
CASE_FIELDS = ("id", "lon", "lat", "state", "clock", "category", "source", "reported_at")
CLOCKED_STATES = ("accepted", "rework", "handled")
MAX_CASE_POINTS = 100_000


def pixel_degrees(zoom: int) -> float:
    """Degrees of longitude per screen pixel at a Web Mercator zoom."""
    return 360.0 / (256 * 2.0**zoom)


def zoom_detail(zoom: int) -> tuple[float, int]:
    """(simplification tolerance in degrees, decimals kept) for a zoom: half a pixel, a quarter of a pixel."""
    px = pixel_degrees(zoom)
    decimals = min(6, max(3, math.ceil(-math.log10(px / 4))))
    return (0.0 if zoom >= MAX_ZOOM else px / 2), decimals


def check_zoom(zoom: int) -> int:
    if not isinstance(zoom, int) or not 0 <= zoom <= 24:
        raise InvalidInput(
            f"zoom: {zoom!r} must be a whole number from 0 to 24",
            field="zoom",
            zh=f"缩放级别：{zoom!r} 应为 0 至 24 之间的整数。",
        )
    return min(MAX_ZOOM, max(MIN_ZOOM, zoom))


MAX_FEATURES_LIMIT = 100_000  # the largest `max_features` a caller of `collection` may set
BLOCK_ABOVE = 20_000  # a level of more areas than this is simplified block by block (see AreaShapes)


@dataclass(frozen=True)
class Columns:
    """The areas of one level as columns: codes, names, parent codes, grandparent codes, outlines."""

    codes: Sequence[str]
    names: Sequence[str | None]
    parents: Sequence[str | None]
    grandparents: Sequence[str | None]
    geoms: np.ndarray


class _Props(Sequence[dict[str, Any]]):
    """The properties of a level's areas (code, name, level, parent code, label point), each dict made when read."""

    def __init__(
        self,
        level: str,
        codes: list[str],
        names: list[str | None],
        parents: list[str | None],
        labels: list[list[float]],
    ):
        self.level, self.codes, self.names, self.parents, self.labels = level, codes, names, parents, labels

    def __len__(self) -> int:
        return len(self.codes)

    def __getitem__(self, i: int) -> dict[str, Any]:  # type: ignore[override]  # an index, never a slice here
        return {
            "code": self.codes[i],
            "name": self.names[i],
            "level": self.level,
            "parent_code": self.parents[i],
            "label": self.labels[i],
        }


@dataclass
class _Level:
    codes: list[str]
    geoms: np.ndarray
    props: _Props
    tree: shapely.STRtree
    blocks: list[np.ndarray]  # the areas simplified together, as indexes into `codes`
    block_of: np.ndarray  # each area's block
    fragments: dict[int, list[str | None]] = field(default_factory=dict)  # zoom → encoded Feature per area
    done: dict[int, set[int]] = field(default_factory=dict)  # zoom → blocks encoded
    lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def build(cls, level: str, columns: Columns, block_above: int) -> _Level:
        """The level in code order, its label points, R-tree and blocks (one; or one per grandparent when it holds
        more than `block_above` areas)."""
        order = sorted(range(len(columns.codes)), key=columns.codes.__getitem__)
        codes = [columns.codes[i] for i in order]
        geoms = np.asarray(columns.geoms, dtype=object)[np.asarray(order, dtype=np.intp)]
        labels = np.round(shapely.get_coordinates(shapely.point_on_surface(geoms)), 6).tolist() if order else []
        props = _Props(level, codes, [columns.names[i] for i in order], [columns.parents[i] for i in order], labels)
        if len(order) > block_above:  # per grandparent (areas without one together)
            keys = np.array([columns.grandparents[i] or "" for i in order], dtype=object)
            _, block_of = np.unique(keys, return_inverse=True)
            block_of = block_of.astype(np.intp)
        else:
            block_of = np.zeros(len(order), dtype=np.intp)
        by_block = np.argsort(block_of, kind="stable")
        blocks = np.split(by_block, np.flatnonzero(np.diff(block_of[by_block])) + 1) if order else []
        return cls(codes, geoms, props, shapely.STRtree(geoms), blocks, block_of)


class AreaShapes:
    """The outlines of one generation, per level, ready to serve by box and zoom (thread-safe, built lazily).

    A level is read from the database the first time it is asked for (one query; the map's first screen needs
    only the districts and sub-districts of a province of 270,000 areas). Outlines are simplified for a zoom as a
    coverage, the first time a view at that zoom needs them: a level of up to BLOCK_ABOVE areas (a city district's
    grids or micro-grids) all at once, a larger one (a province's) block by block, a block being the areas of one
    grandparent (a grid's sub-district, a micro-grid's community), so that a view costs what it shows rather than
    the whole level. Neighbours in one block meet exactly; across a block's border they may differ by up to the
    tolerance (half a pixel)."""

    def __init__(
        self,
        generation_id: int,
        rows: Sequence[tuple[str, str, str, str | None, shapely.Geometry]] = (),
        *,
        loader: Callable[[str], Columns] | None = None,
        block_above: int = BLOCK_ABOVE,
    ):
        """`rows` (code, name, level, parent code, outline): every area at once; or `loader(level)`, the areas of
        one level as `Columns`, asked when the level is first needed."""
        self.generation_id = generation_id
        self.block_above = block_above
        self._levels: dict[str, _Level | None] = {}
        self._loader = loader
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}
        if loader is None:
            parent_of = {code: parent for code, _, _, parent, _ in rows}
            by_level: dict[str, list[tuple[str, str, str, str | None, shapely.Geometry]]] = {}
            for row in rows:
                by_level.setdefault(row[2], []).append(row)
            for level, items in by_level.items():
                columns = Columns(
                    [r[0] for r in items],
                    [r[1] for r in items],
                    [r[3] for r in items],
                    [parent_of.get(r[3]) if r[3] is not None else None for r in items],
                    np.array([r[4] for r in items], dtype=object),
                )
                self._levels[level] = _Level.build(level, columns, block_above)

    @classmethod
    def from_session(cls, session: Session, generation_id: int, *, block_above: int = BLOCK_ABOVE) -> AreaShapes:
        """The outlines of a generation, each level read when first asked for (one query, on a connection of the
        session's engine; a session bound to a connection, as in a test's transaction, reads them all now)."""
        bind = session.get_bind()

        def load(level: str) -> Columns:
            parent, grand = aliased(Area), aliased(Area)
            query = (
                sa.select(Area.code, Area.name, parent.code, grand.code, sa.func.ST_AsBinary(Area.geom))
                .outerjoin(parent, Area.parent_id == parent.id)
                .outerjoin(grand, parent.parent_id == grand.id)
                .where(Area.generation_id == generation_id, Area.level == level)
            )
            if isinstance(bind, sa.Connection):
                rows = bind.execute(query).all()
            else:
                with bind.connect() as conn:
                    rows = conn.execute(query).all()
            geoms = shapely.from_wkb([bytes(r[4]) for r in rows])
            codes, names, parents, grands = ([r[k] for r in rows] for k in range(4))
            return Columns(codes, names, parents, grands, geoms)

        shapes = cls(generation_id, loader=load, block_above=block_above)
        if isinstance(bind, sa.Connection):
            for level in LEVELS:
                shapes.level(level)
        return shapes

    def level(self, level: str) -> _Level | None:
        """A level's outlines, codes, properties and R-tree (read on first use); None when it has no area."""
        check_level(level)
        if level in self._levels or self._loader is None:
            return self._levels.get(level)
        with self._lock:
            lock = self._loading.setdefault(level, threading.Lock())
        with lock:
            if level not in self._levels:
                columns = self._loader(level)
                self._levels[level] = _Level.build(level, columns, self.block_above) if columns.codes else None
        return self._levels[level]

    def _fragments(self, data: _Level, zoom: int, hits: Sequence[int]) -> list[str]:
        """The encoded Features of the areas `hits` at `zoom`, simplifying the blocks they are in if not yet done."""
        with data.lock:
            fragments = data.fragments.setdefault(zoom, [None] * len(data.codes))
            done = data.done.setdefault(zoom, set())
            needed = sorted(set(np.unique(data.block_of[np.asarray(hits, dtype=np.intp)]).tolist()) - done)
            tolerance, decimals = zoom_detail(zoom)
            for block in needed:
                members = data.blocks[block]
                geoms = data.geoms[members]
                if tolerance > 0:
                    try:
                        geoms = shapely.coverage_simplify(geoms, tolerance)
                    except shapely.errors.GEOSException:  # not a clean coverage: simplify each outline on its own
                        geoms = shapely.simplify(geoms, tolerance, preserve_topology=True)
                geoms = shapely.transform(geoms, lambda xy: np.round(xy, decimals))
                for i, g in zip(members.tolist(), shapely.to_geojson(geoms)):
                    p = data.props[i]
                    fragments[i] = (
                        f'{{"type":"Feature","id":{json.dumps(p["code"])},"geometry":{g},'
                        f'"properties":{json.dumps(p, ensure_ascii=False, separators=(",", ":"))}}}'
                    )
                done.add(block)
            return [fragments[i] or "" for i in hits]

    def hits(
        self, level: str, bbox: tuple[float, float, float, float] | None, visible: Callable[[str], bool] | None = None
    ) -> tuple[_Level | None, list[int]]:
        """The level and the indexes of its areas that meet the box (all without one) and that `visible` accepts."""
        data = self.level(level)
        if data is None:
            return None, []
        found: Sequence[int]
        if bbox is None:
            found = range(len(data.codes))
        else:
            found = sorted(data.tree.query(shapely.box(*bbox), predicate="intersects").tolist())
        if visible is not None:
            return data, [i for i in found if visible(data.codes[i])]
        return data, list(found)

    def extent(
        self, level: str, visible: Callable[[str], bool] | None = None
    ) -> tuple[float, float, float, float] | None:
        """The box (minlon, minlat, maxlon, maxlat) around the level's areas that `visible` accepts (all without
        it); None when there is none. What a map page first fits its view to, sent with the page so that the view
        and the requests that depend on it need no round trip for the outlines first."""
        data, hits = self.hits(level, None, visible)
        if data is None or not hits:
            return None
        minx, miny, maxx, maxy = shapely.total_bounds(data.geoms[np.asarray(hits, dtype=np.intp)]).tolist()
        return (round(minx, 6), round(miny, 6), round(maxx, 6), round(maxy, 6))

    def collection(
        self,
        level: str,
        bbox: tuple[float, float, float, float] | None,
        zoom: int,
        visible: Callable[[str], bool] | None = None,
        max_features: int | None = None,
    ) -> str:
        """A GeoJSON FeatureCollection (as text) of the level's areas that meet the box, drawn for the zoom (only
        those whose code `visible(code)` accepts, when given). `numberMatched` says how many there are; when they
        are more than `max_features`, none is sent (`numberReturned` 0): a view that large is for the tiles."""
        check_level(level)
        zoom = check_zoom(zoom)
        data, hits = self.hits(level, bbox, visible)
        tail = f',"zoom":{zoom},"generation_id":{self.generation_id}}}'
        if data is None or not hits or (max_features is not None and len(hits) > max_features):
            return f'{{"type":"FeatureCollection","features":[],"numberMatched":{len(hits)},"numberReturned":0{tail}'
        body = ",".join(self._fragments(data, zoom, hits))
        return (
            f'{{"type":"FeatureCollection","features":[{body}],"numberMatched":{len(hits)},'
            f'"numberReturned":{len(hits)}{tail}'
        )


class ShapeCache:
    """AreaShapes per generation, the most recently used few kept."""

    def __init__(self, keep: int = 3):
        self._keep = keep
        self._items: OrderedDict[tuple[Any, ...], AreaShapes] = OrderedDict()
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

    def retain(self, generation_id: int | None) -> None:
        """Keep the outlines of this generation only (the active one: a published generation's areas are not
        edited), those of every other generation dropped (a draft's may have been); None: keep none."""
        with self._lock:
            for key in [k for k in self._items if k[1] != generation_id or generation_id is None]:
                del self._items[key]


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
                raise InvalidInput(
                    f"source: {source!r} is not a channel; accepted: {', '.join(CASE_SOURCES)}",
                    field="source",
                    zh=f"来源：{source!r} 不是上报渠道；可选：{', '.join(CASE_SOURCES)}。",
                )


def case_query(
    session: Session, flt: CaseFilter, now: dt.datetime, who: Principal | None, *, indexed_box: bool = False
) -> sa.Select[*tuple[Any, ...]]:
    """The cases to draw as SQL (the columns `case_row` reads), filtered and scoped; `indexed_box`: the box also
    through the spatial index of the cases' points (for a box that is a small part of the map, such as a tile)."""
    query = (
        sa.select(
            Case.id,
            Case.lon,
            Case.lat,
            Case.state,
            CaseCategory.code,
            Case.source,
            Case.reported_at,
            Case.accepted_at,
            Case.due_at,
            CaseCategory.time_unit,
        )
        .outerjoin(CaseCategory, Case.category_id == CaseCategory.id)
        .where(Case.lon.is_not(None))
    )
    if indexed_box and flt.bbox is not None:
        query = query.where(_spatial.bbox_filter(session, "case_file", flt.bbox))
    return _filtered(session, query, flt, now, who)


def case_row(row: Sequence[Any], calendar: WorkCalendar | None, now: dt.datetime) -> list[Any]:
    """One row of `case_query` as drawn (fields `CASE_FIELDS`): rounded position and the deadline colour of a
    running case (green / yellow / red; from the deadline alone without a calendar)."""
    cid, lon, lat, state, category, source, reported, accepted, due, unit = row
    clock = None
    if state in CLOCKED_STATES and accepted is not None and due is not None:
        if calendar is not None:
            clock = clock_of(calendar, utc(accepted), utc(due), unit or workflow.limit_of(None)[1], now)[0]
        else:
            clock = "red" if utc(due) < now else "green"
    return [
        cid,
        round(lon, 6),
        round(lat, 6),
        state,
        clock,
        category,
        source,
        utc(reported).isoformat().replace("+00:00", "Z"),
    ]


def case_points(
    session: Session,
    flt: CaseFilter,
    *,
    calendar: WorkCalendar | None = None,
    now: dt.datetime | None = None,
    limit: int = MAX_CASE_POINTS,
    who: Principal | None = None,
    all_or_none: bool = False,
) -> dict[str, Any]:
    """The cases to draw, as one compact table: `fields` and `rows` (no personal data, no text typed by residents
    beyond the category code). `clock` is the deadline colour of a running case (green / yellow / red) or None.
    `truncated`: more than `limit` cases match; with `all_or_none` none of them is then sent: they are counted in
    the database (up to `limit` + 1), not read (a map that draws clusters instead needs none of them; on the
    province demo the month's 41,000 cases, 1.7 MB and ~1 s, against ~30 ms)."""
    flt.check()
    now = utc(now) or dt.datetime.now(dt.UTC)
    query = case_query(session, flt, now, who)
    if all_or_none:
        # the district by equality on SQLite: its period one range of `ix_case_file_district_map` (migration 0024),
        # from the index alone (the categories joined only to filter by: SQLite keeps an unused outer join)
        ids = sa.select(Case.id).where(Case.lon.is_not(None))
        if flt.categories:
            ids = ids.outerjoin(CaseCategory, Case.category_id == CaseCategory.id)
        some = _spatial.seeking(_filtered(session, ids, flt, now, who)).limit(limit + 1).subquery()
        if (session.scalar(sa.select(sa.func.count()).select_from(some)) or 0) > limit:
            return {
                "fields": list(CASE_FIELDS),
                "rows": [],
                "count": 0,
                "truncated": True,
                "now": now.isoformat().replace("+00:00", "Z"),
            }
    rows = session.execute(query.order_by(Case.reported_at.desc(), Case.id.desc()).limit(limit + 1)).all()
    truncated = len(rows) > limit
    out = [case_row(row, calendar, now) for row in rows[:limit]]
    return {
        "fields": list(CASE_FIELDS),
        "rows": out,
        "count": len(out),
        "truncated": truncated,
        "now": now.isoformat().replace("+00:00", "Z"),
    }


def _filtered(
    session: Session, query: sa.Select[*tuple[Any, ...]], flt: CaseFilter, now: dt.datetime, who: Principal | None
) -> sa.Select[*tuple[Any, ...]]:
    """`query` (over Case outer-joined to CaseCategory) kept to the filter's cases that `who` may see."""
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
    return query


# ------------------------------------------------------------------------------------------------- case clusters

CLUSTER_PX = 64  # a cluster cell is about this many screen pixels wide at its zoom
MIN_CLUSTER_ZOOM, MAX_CLUSTER_ZOOM = 3, 20
MAX_CLUSTER_CELLS = 20_000  # cells a box may span at its zoom (a 4K screen spans about 2,000)
# a cell (cx, cy) as one number, cx * CELL_ROW + cy: cy stays below 2^26 (180° of latitude in cells at least
# 0.05 × 90 / 2^20 degrees high, zoom 20), cx below 2^23, the number below 2^49
CELL_ROW = 1 << 26
# the most worrying state first: sent back for rework, not yet filed, not yet dispatched, not yet accepted …
STATE_SEVERITY = (
    "rework",
    "reported",
    "filed",
    "dispatched",
    "accepted",
    "handled",
    "suspended",
    "closed",
    "merged",
    "voided",
    "rejected",
)


def cluster_cell(zoom: int, lat: float) -> tuple[float, float]:
    """(width, height) in degrees of a cluster cell at a zoom: CLUSTER_PX pixels of longitude, and as many of
    latitude as make it square on a Web Mercator map at latitude `lat`."""
    width = pixel_degrees(zoom) * CLUSTER_PX
    return width, width * max(math.cos(math.radians(lat)), 0.05)


def check_cluster_request(bbox: tuple[float, float, float, float] | None, zoom: int) -> tuple[float, float]:
    """The cell size for the box and zoom; the box is required and may span at most MAX_CLUSTER_CELLS cells."""
    if not isinstance(zoom, int) or isinstance(zoom, bool) or not MIN_CLUSTER_ZOOM <= zoom <= MAX_CLUSTER_ZOOM:
        raise InvalidInput(
            f"zoom: {zoom!r} must be a whole number from {MIN_CLUSTER_ZOOM} to {MAX_CLUSTER_ZOOM}",
            field="zoom",
            zh=f"zoom：须为 {MIN_CLUSTER_ZOOM} 至 {MAX_CLUSTER_ZOOM} 的整数。",
        )
    if bbox is None:
        raise InvalidInput(
            "bbox: clusters need the box shown, 'minlon,minlat,maxlon,maxlat'",
            field="bbox",
            zh="bbox：请给出地图范围（最小经度,最小纬度,最大经度,最大纬度）。",
        )
    width, height = cluster_cell(zoom, (bbox[1] + bbox[3]) / 2)
    cells = (math.floor(bbox[2] / width) - math.floor(bbox[0] / width) + 1) * (
        math.floor(bbox[3] / height) - math.floor(bbox[1] / height) + 1
    )
    if cells > MAX_CLUSTER_CELLS:
        raise InvalidInput(
            f"bbox: the box spans {cells:,} cells at zoom {zoom}; at most {MAX_CLUSTER_CELLS:,} "
            "(send the box shown on the screen)",
            field="bbox",
            zh=f"bbox：该范围在此缩放级别下含 {cells:,} 个格，最多 {MAX_CLUSTER_CELLS:,} 个"
            "（请只发送屏幕上显示的范围）。",
        )
    return width, height


def case_clusters(
    session: Session,
    flt: CaseFilter,
    zoom: int,
    *,
    calendar: WorkCalendar | None = None,
    now: dt.datetime | None = None,
    who: Principal | None = None,
) -> dict[str, Any]:
    """The filter's cases that `who` may see, grouped by the database into cells of about CLUSTER_PX pixels at
    `zoom` (the box is required), as a GeoJSON FeatureCollection of points: each at the mean position of its
    cases, with `count`, `worst_state` (the first of STATE_SEVERITY among them), `worst_deadline` (`overdue`: a
    running clock past its deadline; `due_soon`: one in its last 20 % — yellow, on the working calendar as the
    points' `clock`; `ok` otherwise), the `bbox` of its cases and, for a single case, its `case_id`. The counts
    add up to what the case list gives for the same filters and box."""
    flt.check()
    width, height = check_cluster_request(flt.bbox, zoom)
    now = utc(now) or dt.datetime.now(dt.UTC)
    cx = _spatial.floor_int(session, (Case.lon + 180.0) / width).label("cx")
    cy = _spatial.floor_int(session, (Case.lat + 90.0) / height).label("cy")
    severity = sa.case({s: len(STATE_SEVERITY) - i for i, s in enumerate(STATE_SEVERITY)}, value=Case.state, else_=0)
    running = sa.and_(Case.state.in_(CLOCKED_STATES), Case.due_at.is_not(None))
    overdue = sa.case((sa.and_(running, Case.due_at < now), 1), else_=0)
    cases = sa.select(cx, cy).select_from(Case).where(Case.lon.is_not(None))
    base = cases.outerjoin(CaseCategory, Case.category_id == CaseCategory.id)
    # Each case's cell as one number and its state's two flags as numbers, worked out per case in a subquery that
    # the grouping reads: SQLite groups by sorting what it groups, and sorted the state and deadline as text, the
    # cell as two keys, and worked out the flags per case only after the sort. Grouping the province's month
    # (383,619 cases of 10 M; the query alone, load 2) took 840-1,000 ms that way and 540-620 ms this way.
    # LIMIT -1 (no limit) keeps SQLite from flattening the subquery back into the grouping; PostgreSQL is given
    # none and pulls the subquery up.
    cell = sa.cast(cx, sa.BigInteger) * CELL_ROW + cy
    per_case = _filtered(
        session,
        # the categories only to filter by: SQLite does not drop an unused outer join (a lookup per case, ~10 % of
        # the grouping of a province's month)
        (base if flt.categories else cases).with_only_columns(
            cell.label("cell"),
            Case.lon.label("lon"),
            Case.lat.label("lat"),
            severity.label("severity"),
            overdue.label("overdue"),
            Case.id.label("id"),
        ),
        flt,
        now,
        who,
    )
    # a district compared by equality on SQLite: its period is one range of `ix_case_file_district_map` (migration
    # 0024), read from the index alone, not the period of every district (the province's month, ~170,000 cases,
    # each checked in its row of the table for the district's ~10,000)
    per_case = _spatial.seeking(per_case)
    if session.get_bind().dialect.name == "sqlite":
        per_case = per_case.limit(-1)
    one = per_case.subquery("per_case")
    grouped = sa.select(
        one.c.cell,
        sa.func.count().label("n"),
        sa.func.avg(one.c.lon),
        sa.func.avg(one.c.lat),
        sa.func.min(one.c.lon),
        sa.func.min(one.c.lat),
        sa.func.max(one.c.lon),
        sa.func.max(one.c.lat),
        sa.func.max(one.c.severity),
        sa.func.max(one.c.overdue),
        sa.func.min(one.c.id),
    ).group_by(one.c.cell)
    cells = {divmod(int(key), CELL_ROW): list(rest) for key, *rest in session.execute(grouped)}
    # due soon: the running clocks not yet past their deadline (a few hundred at most), coloured as the points are
    soon = _spatial.seeking(
        _filtered(
            session,
            base.add_columns(Case.accepted_at, Case.due_at, CaseCategory.time_unit).where(running, Case.due_at >= now),
            flt,
            now,
            who,
        )
    )
    due_soon = set()
    # a cell holding an overdue case is drawn as overdue: its other clocks need no working out (zoomed out on a
    # province nearly every cell has one, and the clocks of its ~1,600 running cases took ~100 ms)
    settled = {key for key, rest in cells.items() if rest[8]}
    for x, y, accepted, due, unit in session.execute(soon):
        key = (int(x), int(y))
        if accepted is None or key in settled:
            continue
        if calendar is not None:
            colour = clock_of(calendar, utc(accepted), utc(due), unit or workflow.limit_of(None)[1], now)[0]
        else:
            span = (utc(due) - utc(accepted)).total_seconds()
            colour = "yellow" if span <= 0 or (now - utc(accepted)).total_seconds() >= 0.8 * span else "green"
        if colour != "green":
            due_soon.add(key)
            settled.add(key)
    features, total = [], 0
    for key in sorted(cells):
        n, lon, lat, minx, miny, maxx, maxy, worst, late, first = cells[key]
        total += int(n)
        deadline = "overdue" if late else "due_soon" if key in due_soon else "ok"
        features.append(
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [round(float(lon), 6), round(float(lat), 6)]},
                "properties": {
                    "count": int(n),
                    "worst_state": STATE_SEVERITY[len(STATE_SEVERITY) - int(worst)] if worst else None,
                    "worst_deadline": deadline,
                    "bbox": [round(float(v), 6) for v in (minx, miny, maxx, maxy)],
                    "case_id": int(first) if n == 1 else None,
                },
            }
        )
    return {
        "type": "FeatureCollection",
        "features": features,
        "zoom": zoom,
        "cell": [round(width, 9), round(height, 9)],
        "total": total,
        "now": now.isoformat().replace("+00:00", "Z"),
    }
