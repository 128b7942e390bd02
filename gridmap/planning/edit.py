"""Planner edits of a draft generation (issue 13 §3): split, merge, move a shared vertex or edge, reassign buildings,
compounds or whole leaves, lock — each one call that keeps the draft exactly tiled at every level, logged so that
it can be undone and redone.

Functions (the API and the benchmarks call these):

- `apply(session, generation_id, op, actor)` → EditResult (a dict; see `EditResult` in api/gridmap_api/routes/plan.py);
- `undo(session, generation_id, actor)`, `redo(session, generation_id, actor)` → EditResult;
- `history(session, generation_id)` → the log;
- `redraw(session, generation_id, changes, actor)` — the raw redraw of `PUT /generations/{id}/areas`, with the
  same guarantees (used by `gridmap.boundaries.generations.redraw`).

Operations (`op` dicts, as in the API):

- ``{"op": "split", "code": LEAF, "line": GeoJSON LineString}`` — the line must cross the leaf and cut it in exactly
  two pieces; both get new codes (`gridmap.boundaries.codes.new_codes`), the old leaf leaves the draft.
- ``{"op": "merge", "codes": [LEAF, LEAF, ...]}`` — adjacent leaves of one parent become one leaf with a new code.
- ``{"op": "move_vertex", "from": [lon, lat], "to": [lon, lat], "codes": [...]?}`` — the vertex nearest `from`
  (within `SNAP_M`; among `codes` when given) moves in every leaf that has it.
- ``{"op": "move_edge", "codes": [A, B], "line": GeoJSON LineString}`` — the new course of the edge A and B share,
  between the same end points (the line's ends are snapped to them within `SNAP_M`).
- ``{"op": "reassign", "places": [ids], "to": LEAF}`` or ``{"op": "reassign", "compound": ID, "to": LEAF}`` —
  Districtr-style painting: the region moved is the buildings' Voronoi cells (`shapely.voronoi_polygons` over the
  buildings of their leaf), clipped to that leaf, so the boundary follows the units. A compound stands for its
  buildings. Refused when a leaf would be emptied or split in more parts than it had.
- ``{"op": "reassign", "codes": [LEAF, ...], "to": PARENT}`` — whole leaves move to an adjacent parent of their
  parent's level; they get new codes under it (DB11 codes are prefixed by the parent).
- ``{"op": "lock", "codes": [...], "locked": true|false}``.

Exact coverage. Shared edges of neighbouring leaves carry identical vertices. An edit never moves an existing vertex
other than the one it is asked to move: the leaves it changes are re-noded together with every leaf within
`NEAR_DEG` of them (`shapely.union_all` of their boundaries and the drawn line, then `shapely.polygonize`), so a new
vertex where a cut meets a shared edge is written into both neighbours, and leaves that are not touched keep their
stored bytes. (No global fixed-precision snap: it would move every stored vertex, and an unchanged grid must stay
byte-identical to the active generation's.) Parents are `shapely.coverage_union_all` of their children, up to the
district. After every edit the changed leaves and their neighbours must form a valid coverage
(`shapely.coverage_is_valid`), every changed geometry must be valid and no ancestor may gain a hole; otherwise the
edit is refused and nothing is stored.

Households and population. A leaf whose geometry changed receives from each leaf it took ground from (its
"sources", itself included) that source's households and population in proportion to the source's buildings
(places of kind ``building``, by point in polygon, weighted by their households) that now lie in it; a source
without buildings shares by area. Shares are whole numbers (largest remainder), so totals are kept exactly; where
the stored households of a leaf equal its buildings' households this is the buildings' recount. (The demo's stored
households are not its buildings' sums — e.g. 354 stored against 275 in buildings — so counting buildings outright
would change every edited leaf's total even when no building moved.) Ancestors sum their children; `area_m2` is
measured in the district's Gauss-Krüger zone (UTM outside China).

Locks. A locked area refuses every edit that would change its shape, numbers or code, and so does every area under
a locked one (a locked grid's micro-grids are locked with it). A vertex written onto a locked leaf's edge by a
neighbour's cut does not change its shape and is allowed.

Log. Each edit is a `PlanEdit` row: `seq`, `op`, `params`, and `before`/`after` — for every area row removed, added or
changed, its id, code, name, level, parent, numbers, lock and geometry as WKB hex. Undo writes `before` back
(byte-identical WKB), redo writes `after`; both first check that the rows are still as the log left them (a
conflict otherwise). A new edit after an undo deletes the undone edits (the redo branch). Codes stay registered in
`code_registry` for ever, undone or not.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely
import sqlalchemy as sa
from geoalchemy2.shape import from_shape, to_shape
from shapely.geometry import LineString, MultiPolygon, Point, Polygon
from shapely.geometry.base import BaseGeometry
from sqlalchemy.orm import Session

from gridmap.boundaries import codes as gcodes
from gridmap.errors import Conflict, InvalidInput, NotFound, field_zh
from gridmap.geo import crs as gcrs
from gridmap.geo.coverage import allocate, as_multipolygon
from gridmap.store import dialect as _spatial
from gridmap.store.tables import LEVEL_NAMES_ZH, Area, Generation, Place, PlanEdit

OPS = ("split", "merge", "move_vertex", "move_edge", "reassign", "lock")
M_PER_DEG = 111_320.0
SNAP_M = 1.0  # a point given for a vertex or an edge's end is taken as the nearest one within this many metres
NEAR_DEG = 1e-7  # about 1 cm: a drawn line is clipped to the leaf grown by this; leaves this close are re-noded too
NOISE_M2 = 0.01  # redraw: gaps and overlaps under this are rounding and are absorbed
SNAP_BACK_DEG = 1e-9  # about 0.1 mm: a repaired vertex this close to a neighbour's vertex is put on it
MIN_PIECE_M2 = 1.0  # a new piece must have at least this much ground
MAX_LINE_POINTS = 1000
MAX_CODES = 200
MAX_PLACES = 2000


# -- small helpers -------------------------------------------------------------------------------------------------


def _wkb(geom: BaseGeometry) -> str:
    return shapely.to_wkb(geom, hex=True)


def _same(a: BaseGeometry, b: BaseGeometry) -> bool:
    """The same vertices in the same rings (start and orientation aside)."""
    return bool(shapely.equals_exact(shapely.normalize(a), shapely.normalize(b), tolerance=0.0))


def _m2_per_deg2(lat: float) -> float:
    return M_PER_DEG * math.cos(math.radians(lat)) * 110_574.0


def _approx_m2(geom: BaseGeometry) -> float:
    return 0.0 if geom.is_empty else geom.area * _m2_per_deg2(geom.centroid.y)


def _parts(geom: BaseGeometry) -> int:
    return len([p for p in as_multipolygon(geom).geoms if not p.is_empty])


def _zh(level: str) -> str:
    return LEVEL_NAMES_ZH.get(level, level)


def _lonlat(value: object, name: str) -> tuple[float, float]:
    if (
        not isinstance(value, (list, tuple))
        or len(value) != 2
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    ):
        raise InvalidInput(f"{name} must be [lon, lat]", field=name, zh=f"{field_zh(name)}：应为 [经度, 纬度] 两个数。")
    lon, lat = float(value[0]), float(value[1])
    if not (math.isfinite(lon) and math.isfinite(lat) and -180 <= lon <= 180 and -90 <= lat <= 90):
        raise InvalidInput(
            f"{name}: not a longitude/latitude pair in range",
            field=name,
            zh=f"{field_zh(name)}：{value!r} 不是有效的经纬度。",
        )
    return lon, lat


def _line(value: object, name: str = "line") -> LineString:
    if (
        not isinstance(value, dict)
        or value.get("type") != "LineString"
        or not isinstance(value.get("coordinates"), (list, tuple))
    ):
        raise InvalidInput(
            f"{name}: a GeoJSON LineString in WGS84", field=name, zh=f"{field_zh(name)}：应为 GeoJSON LineString。"
        )
    coords = value["coordinates"]
    if not 2 <= len(coords) <= MAX_LINE_POINTS:
        raise InvalidInput(
            f"{name}: 2 to {MAX_LINE_POINTS} points",
            field=name,
            zh=f"{field_zh(name)}：应有 2–{MAX_LINE_POINTS} 个点，实为 {len(coords)} 个。",
        )
    points = [_lonlat(c[:2] if isinstance(c, (list, tuple)) and len(c) == 3 else c, name) for c in coords]
    line = LineString(points)
    if line.length == 0:
        raise InvalidInput(f"{name}: the line has no length", field=name, zh=f"{field_zh(name)}：线的长度为零。")
    if not line.is_simple:
        raise InvalidInput(
            f"{name}: the line must not cross itself", field=name, zh=f"{field_zh(name)}：线不能自相交。"
        )
    return line


def _code_list(value: object, name: str = "codes", *, least: int = 1) -> list[str]:
    if (
        not isinstance(value, list)
        or not least <= len(value) <= MAX_CODES
        or not all(isinstance(c, str) and 1 <= len(c) <= 24 for c in value)
    ):
        raise InvalidInput(
            f"{name}: a list of {least} to {MAX_CODES} area codes",
            field=name,
            zh=f"{field_zh(name)}：应为 {least}–{MAX_CODES} 个区域编码的列表。",
        )
    if len(set(value)) != len(value):
        raise InvalidInput(f"{name}: codes must not repeat", field=name, zh=f"{field_zh(name)}：编码重复。")
    return list(value)


def _code(value: object, name: str) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= 24:
        raise InvalidInput(f"{name}: an area code", field=name, zh=f"{field_zh(name)}：应为区域编码（1–24 个字符）。")
    return value


def _only(op: dict[str, Any], allowed: set[str], optional: frozenset[str] = frozenset()) -> None:
    extra = sorted(set(op) - allowed - optional - {"op"})
    if extra:
        raise InvalidInput(
            f"{extra[0]}: unknown field for operation {op.get('op')}; accepted: {', '.join(sorted(allowed))}",
            field=extra[0],
            zh=f"{extra[0]}：操作 {op.get('op')} 不接受此字段；可用字段：{', '.join(sorted(allowed))}。",
        )
    missing = sorted(k for k in allowed if k not in op)
    if missing:
        raise InvalidInput(
            f"{missing[0]}: required for this operation",
            field=missing[0],
            zh=f"{field_zh(missing[0])}：操作 {op.get('op')} 须有此字段。",
        )


# -- the draft as an edit sees it ----------------------------------------------------------------------------------


@dataclass
class _Leaf:
    code: str
    name: str
    level: str
    parent_id: int | None
    geom: BaseGeometry
    row: Area | None = None  # None for a leaf the edit creates
    sources: set[str] = field(default_factory=set)  # old leaves it took ground from (for new leaves)


class _Work:
    """The leaves an edit touches, in memory, on top of the stored draft."""

    def __init__(self, session: Session, gen: Generation, field_name: str = "code"):
        self.session, self.gen = session, gen
        self.leaves: dict[str, _Leaf] = {}  # loaded leaves by their current code (new ones too)
        self.old: dict[str, BaseGeometry] = {}  # stored geometry of every loaded stored leaf, by stored code
        self.removed: set[str] = set()  # stored codes that leave the draft
        self.recoded: dict[str, str] = {}  # stored code → new code (leaves moved to another parent)
        self.field = field_name
        self.toggled: set[int] = set()  # ids of areas whose lock the edit turns over

    # loading
    def _add(self, row: Area) -> _Leaf:
        if row.code in self.old:
            loaded = self.leaves.get(self.recoded.get(row.code, row.code))
            assert loaded is not None  # a loaded leaf stays in `leaves` (under its new code once recoded)
            return loaded
        geom = to_shape(row.geom)
        self.old[row.code] = geom
        leaf = _Leaf(row.code, row.name, row.level, row.parent_id, geom, row)
        self.leaves[row.code] = leaf
        return leaf

    def area(self, code: str, name: str | None = None) -> Area:
        row = self.session.scalars(sa.select(Area).where(Area.generation_id == self.gen.id, Area.code == code)).first()
        if row is None:
            name = name or self.field
            raise NotFound(
                f"{name}: no area {code!r} in draft {self.gen.id}",
                field=name,
                zh=f"{field_zh(name)}：草稿 {self.gen.id} 中没有编码为 {code!r} 的区域。",
            )
        return row

    def leaf(self, code: str, name: str | None = None) -> _Leaf:
        if code in self.leaves and code not in self.removed:
            return self.leaves[code]
        row = self.area(code, name)
        if not row.is_leaf:
            name = name or self.field
            raise InvalidInput(
                f"{name}: {code} is not a leaf",
                field=name,
                zh=f"{field_zh(name)}：{code} 是{_zh(row.level)}，不是最底层网格；请编辑其下级。",
            )
        return self._add(row)

    def near(self, geom: BaseGeometry, distance: float = 2 * NEAR_DEG) -> list[_Leaf]:
        """Current leaves within `distance` degrees of `geom` (stored ones loaded on demand)."""
        minx, miny, maxx, maxy = geom.bounds
        box = (minx - distance, miny - distance, maxx + distance, maxy + distance)
        rows = self.session.scalars(
            sa.select(Area).where(
                Area.generation_id == self.gen.id,
                Area.is_leaf.is_(True),
                _spatial.bbox_filter(self.session, "area", box),
            )
        ).all()
        for row in rows:
            self._add(row)
        return [
            leaf
            for code, leaf in self.leaves.items()
            if code not in self.removed and shapely.dwithin(leaf.geom, geom, distance)
        ]

    def new_leaf(self, parent: Area, level: str, name: str, geom: BaseGeometry, sources: set[str]) -> _Leaf:
        (code,) = gcodes.new_codes(self.session, parent.code, level, 1, self.gen.id)
        leaf = _Leaf(code, name, level, parent.id, as_multipolygon(geom), None, set(sources))
        self.leaves[code] = leaf
        return leaf

    def remove(self, code: str) -> None:
        self.removed.add(code)

    def parent(self, parent_id: int | None) -> Area:
        """The stored parent of a leaf (every leaf has one: the district is never a leaf)."""
        row = self.session.get(Area, parent_id) if parent_id is not None else None
        assert row is not None, f"a leaf's parent {parent_id} is not in the draft"
        return row


# -- noding --------------------------------------------------------------------------------------------------------


def _faces(owners: list[_Leaf], extra: BaseGeometry | None = None) -> dict[str, list[Polygon]]:
    """Node the boundaries of `owners` (and `extra` lines) together and give each face to the leaf it lies in."""
    lines = [shapely.boundary(leaf.geom) for leaf in owners]
    if extra is not None and not extra.is_empty:
        lines.append(extra)
    noded = shapely.union_all(lines)
    faces = shapely.get_parts(shapely.polygonize(shapely.get_parts(noded)))
    geoms = [leaf.geom for leaf in owners]
    tree = shapely.STRtree(geoms)
    out: dict[str, list[Polygon]] = {leaf.code: [] for leaf in owners}
    for face in faces:
        point = face.point_on_surface()
        hits = tree.query(point, predicate="intersects")
        if len(hits) == 0:
            continue  # a hole of the owners: another leaf's enclave, or outside
        best = max(hits, key=lambda i: geoms[i].boundary.distance(point))
        out[owners[int(best)].code].append(face)
    return out


def _union(faces: Sequence[BaseGeometry]) -> MultiPolygon:
    return as_multipolygon(shapely.coverage_union_all(np.array(faces, dtype=object))) if faces else MultiPolygon()


def _set_geom(leaf: _Leaf, geom: BaseGeometry) -> None:
    """Give a leaf a geometry, keeping its stored one when nothing but the ring's start differs."""
    geom = as_multipolygon(geom)
    if not _same(geom, leaf.geom):
        leaf.geom = geom


# -- the operations ------------------------------------------------------------------------------------------------


def _op_split(w: _Work, op: dict[str, Any]) -> None:
    _only(op, {"code", "line"})
    code = _code(op["code"], "code")
    line = _line(op["line"])
    leaf = w.leaf(code)
    grown = shapely.buffer(leaf.geom, NEAR_DEG, quad_segs=2)
    cut = shapely.intersection(line, grown)
    if cut.is_empty or not shapely.intersects(line, leaf.geom):
        raise InvalidInput(
            f"line: the line does not cross {code}", field="line", zh=f"划线：划线没有经过{_zh(leaf.level)} {code}。"
        )
    owners = [leaf] + [n for n in w.near(leaf.geom) if n.code != code]
    faces = _faces(owners, cut)
    pieces = faces[code]
    if len(pieces) != 2:
        raise InvalidInput(
            f"line: the line must cut {code} in exactly two pieces, it gives {len(pieces)}",
            field="line",
            zh=f"划线：划线应把 {code} 恰好分成两块，实为 {len(pieces)} 块；线须从该网格外画到网格外。",
        )
    if min(_approx_m2(p) for p in pieces) < MIN_PIECE_M2:
        raise InvalidInput(
            f"line: a piece would be under {MIN_PIECE_M2:g} m²",
            field="line",
            zh=f"划线：划线切出的一块小于 {MIN_PIECE_M2:g} m²。",
        )
    for other in owners[1:]:
        _set_geom(other, _union(faces[other.code]))
    parent = w.parent(leaf.parent_id)
    pieces.sort(key=lambda p: (-p.area, p.representative_point().x))
    w.remove(code)
    for i, piece in enumerate(pieces, start=1):
        w.new_leaf(parent, leaf.level, f"{leaf.name}-{i}", piece, {code})


def _adjacent(a: BaseGeometry, b: BaseGeometry) -> bool:
    return shapely.intersection(shapely.boundary(a), shapely.boundary(b)).length > 0


def _connected(geoms: list[BaseGeometry]) -> bool:
    seen, todo = {0}, [0]
    while todo:
        i = todo.pop()
        for j in range(len(geoms)):
            if j not in seen and _adjacent(geoms[i], geoms[j]):
                seen.add(j)
                todo.append(j)
    return len(seen) == len(geoms)


def _op_merge(w: _Work, op: dict[str, Any]) -> None:
    _only(op, {"codes"})
    codes = _code_list(op["codes"], least=2)
    leaves = [w.leaf(c, "codes") for c in codes]
    if len({leaf.parent_id for leaf in leaves}) != 1:
        raise InvalidInput(
            "codes: the leaves must have the same parent", field="codes", zh="编码：只能合并同一上级下的网格。"
        )
    if not _connected([leaf.geom for leaf in leaves]):
        raise InvalidInput(
            "codes: the leaves must be adjacent: share edges",
            field="codes",
            zh="编码：要合并的网格须彼此相邻（有公共边）。",
        )
    merged = _union([leaf.geom for leaf in leaves])
    if _parts(merged) > sum(_parts(leaf.geom) for leaf in leaves):
        raise InvalidInput("codes: the merged leaf would not be contiguous", field="codes", zh="编码：合并结果不连通。")
    parent = w.parent(leaves[0].parent_id)
    for leaf in leaves:
        w.remove(leaf.code)
    names = [leaf.name for leaf in leaves]
    w.new_leaf(parent, leaves[0].level, f"{names[0]}（合并）", merged, set(codes))


def _vertices(geom: BaseGeometry) -> np.ndarray:
    return shapely.get_coordinates(geom)


def _op_move_vertex(w: _Work, op: dict[str, Any]) -> None:
    _only(op, {"from", "to"}, frozenset({"codes"}))
    src = _lonlat(op["from"], "from")
    dst = _lonlat(op["to"], "to")
    where = Point(src)
    if op.get("codes") is not None:
        candidates = [w.leaf(c, "codes") for c in _code_list(op["codes"])]
    else:
        candidates = w.near(where, SNAP_M / M_PER_DEG * 2)
    best, best_d = None, math.inf
    for leaf in candidates:
        xy = _vertices(leaf.geom)
        if len(xy):
            d = np.hypot((xy[:, 0] - src[0]) * math.cos(math.radians(src[1])), xy[:, 1] - src[1])
            i = int(np.argmin(d))
            if d[i] < best_d:
                best, best_d = (float(xy[i, 0]), float(xy[i, 1])), float(d[i])
    if best is None or best_d * M_PER_DEG > SNAP_M:
        raise InvalidInput(
            f"from: no vertex within {SNAP_M:g} m of from", field="from", zh=f"起始：{SNAP_M:g} 米内没有网格顶点。"
        )
    if math.hypot((dst[0] - best[0]) * math.cos(math.radians(dst[1])), dst[1] - best[1]) == 0:
        raise InvalidInput("to is the vertex itself", field="to", zh="目标：新位置与原顶点相同。")
    vertex = Point(best)
    movers = [
        leaf for leaf in w.near(vertex, 1e-9) if any((x == best[0] and y == best[1]) for x, y in _vertices(leaf.geom))
    ]

    def move(xy: np.ndarray) -> np.ndarray:
        hit = (xy[:, 0] == best[0]) & (xy[:, 1] == best[1])
        xy = xy.copy()
        xy[hit] = dst
        return xy

    for leaf in movers:
        moved = shapely.transform(leaf.geom, move)
        if not shapely.is_valid(moved):
            raise InvalidInput(
                f"to: the move makes {leaf.code} invalid",
                field="to",
                zh=f"目标：移动后 {leaf.code} 的边界自相交或无效（{shapely.is_valid_reason(moved)}）。",
            )
        leaf.geom = as_multipolygon(moved)
    w.near(Point(dst), SNAP_M / M_PER_DEG)  # leaves near the new place are checked with the others


def _shared_chain(a: _Leaf, b: _Leaf) -> list[LineString]:
    shared = shapely.intersection(shapely.boundary(a.geom), shapely.boundary(b.geom))
    lines = (
        [
            g
            for g in shapely.get_parts(
                shapely.line_merge(
                    shapely.union_all(
                        [g for g in shapely.get_parts(shared) if g.geom_type in ("LineString", "MultiLineString")]
                    )
                )
            )
            if g.geom_type == "LineString" and g.length > 0
        ]
        if not shared.is_empty
        else []
    )
    return lines


def _op_move_edge(w: _Work, op: dict[str, Any]) -> None:
    _only(op, {"codes", "line"})
    codes = _code_list(op["codes"], least=2)
    if len(codes) != 2:
        raise InvalidInput(
            "codes: exactly the two leaves that share the edge",
            field="codes",
            zh="编码：应为共用这条边的两个网格编码。",
        )
    line = _line(op["line"])
    a, b = (w.leaf(c, "codes") for c in codes)
    chains = _shared_chain(a, b)
    if not chains:
        raise InvalidInput(
            f"codes: {a.code} and {b.code} share no edge", field="codes", zh=f"编码：{a.code} 与 {b.code} 没有公共边。"
        )
    first, last = Point(line.coords[0]), Point(line.coords[-1])
    tol = SNAP_M / M_PER_DEG
    chosen = None
    for chain in chains:
        ends = [Point(chain.coords[0]), Point(chain.coords[-1])]
        if chain.is_ring:
            continue
        if ends[0].distance(first) <= tol and ends[1].distance(last) <= tol:
            chosen = (chain, ends[0], ends[1])
        elif ends[1].distance(first) <= tol and ends[0].distance(last) <= tol:
            chosen = (chain, ends[1], ends[0])
    if chosen is None:
        raise InvalidInput(
            "line: the line must start and end at the shared edge's end points",
            field="line",
            zh=f"划线：新边须起止于 {a.code} 与 {b.code} 公共边的两个端点（{SNAP_M:g} 米内）。",
        )
    _, start, end = chosen
    course = LineString([start.coords[0], *line.coords[1:-1], end.coords[0]])
    if not course.is_simple:
        raise InvalidInput("line: the line must not cross itself", field="line", zh="划线：线不能自相交。")
    both = _union([a.geom, b.geom])
    touching = shapely.intersection(course, shapely.boundary(both))
    if not shapely.equals(touching, shapely.MultiPoint([start, end])) or not shapely.covers(both, course):
        raise InvalidInput(
            "line: the line must stay inside the two leaves, touching their outline only at its ends",
            field="line",
            zh=f"划线：新边须在 {a.code} 与 {b.code} 之内，只在两端碰到它们的外边界。",
        )
    faces = [
        f
        for f in shapely.get_parts(
            shapely.polygonize(shapely.get_parts(shapely.union_all([shapely.boundary(both), course])))
        )
        if shapely.covers(both, f.point_on_surface())
    ]
    to_a: list[Polygon] = []
    to_b: list[Polygon] = []
    for face in faces:
        (to_a if shapely.intersection(face, a.geom).area >= shapely.intersection(face, b.geom).area else to_b).append(
            face
        )
    new_a, new_b = _union(to_a), _union(to_b)
    if new_a.is_empty or new_b.is_empty:
        raise InvalidInput(
            "line: the line would leave one leaf with nothing", field="line", zh="划线：新边会让其中一个网格消失。"
        )
    if _same(new_a, a.geom):
        raise InvalidInput("line: the line is the edge as it is", field="line", zh="划线：新边与原边相同。")
    if _parts(new_a) > max(_parts(a.geom), 1) or _parts(new_b) > max(_parts(b.geom), 1):
        raise InvalidInput("line: a leaf would fall into separate parts", field="line", zh="划线：新边会使网格不连通。")
    a.geom, b.geom = new_a, new_b


def _buildings(session: Session, geom: BaseGeometry) -> list[tuple[int, float, float, int, int | None]]:
    """Buildings (id, lon, lat, households, compound id) inside `geom`."""
    rows = session.execute(
        sa.select(Place.id, Place.geom, Place.households, Place.parent_id).where(
            Place.kind == "building", _spatial.bbox_filter(session, "place", geom.bounds)
        )
    ).all()
    out = []
    for pid, pgeom, hh, parent in rows:
        x, y = to_shape(pgeom).coords[0]
        out.append((pid, x, y, int(hh or 0), parent))
    if not out:
        return out
    inside = shapely.contains_xy(geom, [r[1] for r in out], [r[2] for r in out])
    return [r for r, keep in zip(out, inside) if keep]


def _op_reassign(w: _Work, op: dict[str, Any]) -> None:
    if "codes" in op:
        return _reassign_leaves(w, op)
    if "compound" in op:
        _only(op, {"compound", "to"})
        cid = op["compound"]
        if not isinstance(cid, int) or isinstance(cid, bool) or not 1 <= cid <= 2**31 - 1:
            raise InvalidInput("compound: a compound id", field="compound", zh="小区：应为小区的编号（正整数）。")
        compound = w.session.get(Place, cid)
        if compound is None or compound.kind != "compound":
            raise NotFound(f"compound: no compound {cid}", field="compound", zh=f"小区：没有编号为 {cid} 的小区。")
        ids = set(w.session.scalars(sa.select(Place.id).where(Place.kind == "building", Place.parent_id == cid)))
        if not ids:
            raise InvalidInput(
                f"compound: compound {cid} has no buildings", field="compound", zh=f"小区：小区 {cid} 没有楼栋。"
            )
        name = "compound"
    else:
        _only(op, {"places", "to"})
        places = op["places"]
        if (
            not isinstance(places, list)
            or not 1 <= len(places) <= MAX_PLACES
            or not all(isinstance(p, int) and not isinstance(p, bool) and 1 <= p <= 2**31 - 1 for p in places)
        ):
            raise InvalidInput(
                f"places: a list of 1 to {MAX_PLACES} building or compound ids",
                field="places",
                zh=f"楼栋或小区：应为 1–{MAX_PLACES} 个楼栋或小区编号。",
            )
        rows = w.session.execute(sa.select(Place.id, Place.kind).where(Place.id.in_(places))).all()
        kinds = dict(rows)
        missing = [p for p in places if p not in kinds]
        if missing:
            raise NotFound(
                f"places: no place {missing[0]}", field="places", zh=f"楼栋或小区：没有编号为 {missing[0]} 的地点。"
            )
        wrong = [p for p in places if kinds[p] not in ("building", "compound")]
        if wrong:
            raise InvalidInput(
                f"places: {wrong[0]} is not a building or compound; only buildings and compounds can be painted",
                field="places",
                zh=f"楼栋或小区：{wrong[0]} 不是楼栋或小区。",
            )
        ids = {p for p in places if kinds[p] == "building"}
        compounds = [p for p in places if kinds[p] == "compound"]
        if compounds:
            ids |= set(
                w.session.scalars(sa.select(Place.id).where(Place.kind == "building", Place.parent_id.in_(compounds)))
            )
        name = "places"
    target = w.leaf(_code(op["to"], "to"), "to")
    pts = w.session.execute(sa.select(Place.id, Place.geom).where(Place.id.in_(ids))).all()
    xy = {pid: to_shape(g).coords[0] for pid, g in pts}
    # which leaf each building lies in now
    by_source: dict[str, set[int]] = {}
    for leaf in w.near(shapely.MultiPoint(list(xy.values())).envelope, 1e-6):
        inside = shapely.contains_xy(leaf.geom, [xy[p][0] for p in xy], [xy[p][1] for p in xy])
        for pid, hit in zip(xy, inside):
            if hit and leaf.code != target.code:
                by_source.setdefault(leaf.code, set()).add(pid)
    if not by_source:
        raise InvalidInput(
            f"{name}: the buildings are in {target.code} already",
            field=name,
            zh=f"{field_zh(name)}：所选楼栋已在 {target.code} 中。",
        )
    todo = dict(by_source)
    while todo:
        # the sources next to the target (as it grows) first; one that never touches it is refused
        ready = sorted(c for c in todo if _adjacent(w.leaves[c].geom, target.geom))
        if not ready:
            first = sorted(todo)[0]
            raise InvalidInput(
                f"to must be a neighbour of {first}, where the buildings are",
                field="to",
                zh=f"目标：{target.code} 与楼栋所在的 {first} 不相邻。",
            )
        source_code = ready[0]
        chosen = todo.pop(source_code)
        source = w.leaves[source_code]
        units = _buildings(w.session, source.geom)
        at = {(u[1], u[2]) for u in units if u[0] in chosen}
        chosen = {u[0] for u in units if (u[1], u[2]) in at}  # buildings at one point cannot be told apart: together
        if all(u[0] in chosen for u in units):
            # every unit of the leaf moves: the boundary follows them, so the whole leaf joins the target
            siblings = set(w.session.scalars(sa.select(Area.code).where(Area.parent_id == source.parent_id)))
            if siblings - w.removed - {source_code} == set() and not any(
                leaf.parent_id == source.parent_id and leaf.row is None for leaf in w.leaves.values()
            ):
                parent = w.parent(source.parent_id)
                raise InvalidInput(
                    f"{name}: it would empty {parent.code}",
                    field=name,
                    zh=f"{field_zh(name)}：这会把{_zh(parent.level)} {parent.code} 的楼栋全部移走，"
                    "使它没有下级；请改用合并或移动整个网格。",
                )
            merged = _union([target.geom, source.geom])
            if _parts(merged) > max(_parts(target.geom), 1):
                raise InvalidInput(
                    f"{name}: the painted region would not be contiguous with {target.code}",
                    field=name,
                    zh=f"{field_zh(name)}：这些楼栋的范围与 {target.code} 不相连。",
                )
            target.geom = merged
            w.remove(source_code)
            continue
        sites = sorted({(u[1], u[2]) for u in units})
        cells = shapely.get_parts(
            shapely.voronoi_polygons(shapely.MultiPoint(sites), extend_to=source.geom, ordered=True)
        )
        region = shapely.union_all([c for c, xy in zip(cells, sites) if xy in at])
        extra = shapely.intersection(shapely.boundary(region), shapely.buffer(source.geom, NEAR_DEG, quad_segs=2))
        owners = [source] + [n for n in w.near(source.geom) if n.code != source_code]
        faces = _faces(owners, extra)
        moved = [f for f in faces[source_code] if shapely.intersects(region, f.point_on_surface())]
        kept = [f for f in faces[source_code] if not shapely.intersects(region, f.point_on_surface())]
        for other in owners[1:]:
            geoms = faces[other.code] + (moved if other.code == target.code else [])
            _set_geom(other, _union(geoms))
        new_source = _union(kept)
        if new_source.is_empty:
            raise InvalidInput(
                f"{name}: it would empty {source_code}",
                field=name,
                zh=f"{field_zh(name)}：这会把 {source_code} 整个移走；请改用合并。",
            )
        if _parts(new_source) > max(_parts(w.old[source_code]), 1):
            raise InvalidInput(
                f"{name}: it would split {source_code} into separate parts",
                field=name,
                zh=f"{field_zh(name)}：移走这些楼栋后 {source_code} 会断成几块。",
            )
        if _parts(target.geom) > max(_parts(w.old.get(target.code, target.geom)), 1):
            raise InvalidInput(
                f"{name}: the painted region would not be contiguous with {target.code}",
                field=name,
                zh=f"{field_zh(name)}：这些楼栋的范围与 {target.code} 不相连。",
            )
        source.geom = new_source


def _reassign_leaves(w: _Work, op: dict[str, Any]) -> None:
    _only(op, {"codes", "to"})
    codes = _code_list(op["codes"])
    leaves = [w.leaf(c, "codes") for c in codes]
    parent = w.area(_code(op["to"], "to"), "to")
    old_parents = {w.parent(leaf.parent_id) for leaf in leaves}
    if any(p.level != parent.level for p in old_parents):
        raise InvalidInput(
            "to must be of the level of their parent",
            field="to",
            zh=f"目标：{parent.code} 是{_zh(parent.level)}，应与这些网格原来的上级同级。",
        )
    if any(p.id == parent.id for p in old_parents):
        raise InvalidInput(
            f"to: they belong to {parent.code} already", field="to", zh=f"目标：这些网格已属于 {parent.code}。"
        )
    parent_geom = to_shape(parent.geom)
    if not _connected([parent_geom, *[leaf.geom for leaf in leaves]]):
        raise InvalidInput(
            "to must be adjacent to the leaves moved", field="to", zh=f"目标：{parent.code} 与所移网格不相邻。"
        )
    for old_parent in old_parents:
        kids = w.session.scalars(sa.select(Area.code).where(Area.parent_id == old_parent.id)).all()
        if set(kids) <= set(codes):
            raise InvalidInput(
                f"codes: it would empty {old_parent.code}",
                field="codes",
                zh=f"编码：这会让 {old_parent.code} 没有下级；请改用合并。",
            )
    new = gcodes.new_codes(w.session, parent.code, leaves[0].level, len(leaves), w.gen.id)
    for leaf, code in zip(leaves, new):
        w.recoded[leaf.code] = code
        w.leaves[code] = w.leaves.pop(leaf.code)
        leaf.code, leaf.parent_id = code, parent.id


def _op_lock(w: _Work, op: dict[str, Any]) -> None:
    _only(op, {"codes", "locked"})
    codes = _code_list(op["codes"])
    if not isinstance(op["locked"], bool):
        raise InvalidInput("locked: true or false", field="locked", zh="锁定：应为 true 或 false。")
    for code in codes:
        row = w.area(code, "codes")
        if row.locked != op["locked"]:
            w.toggled.add(row.id)


# -- the snapshot of rows, and writing it -------------------------------------------------------------------------


def _snap(row: Area, geom: BaseGeometry | None = None) -> dict[str, Any]:
    return {
        "id": row.id,
        "code": row.code,
        "name": row.name,
        "level": row.level,
        "parent_id": row.parent_id,
        "households": int(row.households or 0),
        "population": int(row.population or 0),
        "area_m2": float(row.area_m2 or 0.0),
        "is_leaf": bool(row.is_leaf),
        "locked": bool(row.locked),
        "wkb": _wkb(geom if geom is not None else to_shape(row.geom)),
    }


def _write(session: Session, gen_id: int, leaving: list[dict[str, Any]], arriving: list[dict[str, Any]]) -> None:
    """Replace the rows `leaving` (as they are now) by `arriving`: delete, insert (with their ids) or update."""
    out_ids = {r["id"] for r in leaving}
    in_ids = {r["id"] for r in arriving}
    for rid in out_ids - in_ids:
        session.delete(session.get(Area, rid))
    session.flush()
    for r in arriving:
        values = {
            "generation_id": gen_id,
            "level": r["level"],
            "code": r["code"],
            "name": r["name"],
            "parent_id": r["parent_id"],
            "households": r["households"],
            "population": r["population"],
            "area_m2": r["area_m2"],
            "is_leaf": r["is_leaf"],
            "locked": r["locked"],
            "geom": from_shape(shapely.from_wkb(r["wkb"]), srid=4326),
        }
        if r["id"] in out_ids:
            row = session.get(Area, r["id"])
            for k, v in values.items():
                setattr(row, k, v)
        else:
            session.add(Area(id=r["id"], **values))
    session.flush()


def _current(session: Session, gen_id: int, rows: list[dict[str, Any]]) -> None:
    """Conflict unless each row of `rows` is stored as it says (the draft was not changed past the log)."""
    ids = [r["id"] for r in rows]
    stored = {a.id: a for a in session.scalars(sa.select(Area).where(Area.id.in_(ids)))} if ids else {}
    for r in rows:
        a = stored.get(r["id"])
        if (
            a is None
            or a.generation_id != gen_id
            or a.code != r["code"]
            or _wkb(to_shape(a.geom)) != r["wkb"]
            or bool(a.locked) != r["locked"]
        ):
            raise Conflict(
                f"generation: {r['code']} was changed outside the edit log; cannot undo or redo",
                field="generation",
                zh=f"边界版本：草稿 {gen_id} 中的 {r['code']} 在此编辑之后被别的方式改过，无法撤销或重做。",
            )


# -- applying an edit ----------------------------------------------------------------------------------------------

_OPS = {
    "split": _op_split,
    "merge": _op_merge,
    "move_vertex": _op_move_vertex,
    "move_edge": _op_move_edge,
    "reassign": _op_reassign,
    "lock": _op_lock,
}
_FIELD = {
    "split": "code",
    "merge": "codes",
    "move_vertex": "from",
    "move_edge": "codes",
    "reassign": "to",
    "lock": "codes",
    "redraw": "geometry",
    "repair": "kinds",
}


def _draft(session: Session, generation_id: int) -> Generation:
    """The draft, locked for this transaction: a no-op write on its row comes first, so two edits of one draft run
    one after the other (PostgreSQL: a row lock; SQLite: the write lock taken before anything is read)."""
    from gridmap.boundaries.generations import get_generation

    session.execute(
        sa.update(Generation)
        .where(Generation.id == generation_id)
        .values(status=Generation.status)
        .execution_options(synchronize_session=False)
    )
    gen = get_generation(session, generation_id)
    if gen.status != "draft":
        raise Conflict(
            f"generation {gen.id} is {gen.status}; only drafts can be edited",
            field="generation",
            zh=f"边界版本：第 {gen.id} 版边界的状态是 {gen.status}，只有草稿可以编辑。",
        )
    return gen


def apply(session: Session, generation_id: int, op: dict[str, Any], actor: str | None = None) -> dict[str, Any]:
    """Apply one edit to a draft and log it; returns the EditResult. Nothing is stored when it raises."""
    if not isinstance(op, dict) or op.get("op") not in OPS:
        raise InvalidInput(
            f"op must be one of {', '.join(OPS)}", field="op", zh=f"编辑操作：应为 {', '.join(OPS)} 之一。"
        )
    gen = _draft(session, generation_id)
    w = _Work(session, gen, _FIELD[op["op"]])
    _OPS[op["op"]](w, op)
    return _finish(w, op["op"], {k: v for k, v in op.items() if k != "op"}, actor)


# how `_renode` gives a face to a leaf: rule(face, point in it, leaves holding the point, all owners, old cover)
_Rule = Callable[[Polygon, Point, list[_Leaf], list[_Leaf], BaseGeometry], "_Leaf | None"]


def _rows(log: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The area rows a logged edit's `before` or `after` holds (both are always written: `_finish`)."""
    assert log is not None
    rows: list[dict[str, Any]] = log["rows"]
    return rows


def _deepest(holders: list[_Leaf], point: Point) -> _Leaf:
    """Of the leaves holding a face (rounding may put it in two), the one it lies deepest in."""
    return max(holders, key=lambda o: o.geom.boundary.distance(point))


def _longest_edge(leaves: list[_Leaf], face: Polygon) -> _Leaf:
    """The leaf sharing the longest edge with a face."""
    return max(leaves, key=lambda o: shapely.intersection(o.geom.boundary, face.boundary).length)


def _renode(
    w: _Work, given: Sequence[_Leaf], new: Mapping[str, BaseGeometry], rule: _Rule, field_name: str, after_zh: str
) -> None:
    """Give the `given` leaves their `new` geometries and re-node them with every leaf near them: all boundaries
    (and the old outline of the given leaves) are noded together, and each face goes to the leaf `rule(face,
    point, holders, owners, old_cover)` names (None: to nobody). A leaf left with nothing is refused."""
    old_cover = shapely.union_all([w.old[leaf.code] for leaf in given])
    others = [n for n in w.near(shapely.union_all([old_cover, *new.values()])) if n.code not in new]
    for leaf in given:
        leaf.geom = new[leaf.code]
    owners = [*given, *others]
    lines = shapely.union_all([shapely.boundary(o.geom) for o in owners] + [shapely.boundary(old_cover)])
    faces = shapely.get_parts(shapely.polygonize(shapely.get_parts(lines)))
    out: dict[str, list[Any]] = {o.code: [] for o in owners}
    for face in faces:
        point = face.point_on_surface()
        holder = rule(face, point, [o for o in owners if shapely.intersects(o.geom, point)], owners, old_cover)
        if holder is not None:
            out[holder.code].append(face)
    for o in owners:
        _set_geom(o, _union(out[o.code]))
        if o.geom.is_empty:
            raise InvalidInput(
                f"{field_name}: nothing would be left of {o.code}",
                field=field_name,
                zh=f"{field_zh(field_name)}：{after_zh} {o.code} 没有剩下任何范围。",
            )


def redraw(
    session: Session, generation_id: int, changes: dict[str, BaseGeometry], actor: str | None = None
) -> dict[str, Any]:
    """Replace whole leaf geometries (the raw redraw): the leaves given are re-noded with their neighbours; a gap or
    an overlap (with one another or with a leaf not given) over `NOISE_M2` is refused, smaller ones are absorbed
    (a gap goes to the leaf with the longest edge along it)."""
    gen = _draft(session, generation_id)
    w = _Work(session, gen, "geometry")
    given: list[_Leaf] = []
    for code, geom in changes.items():
        leaf = w.leaf(code, "code")
        if geom.geom_type not in ("Polygon", "MultiPolygon") or geom.is_empty or not shapely.is_valid(geom):
            reason = shapely.is_valid_reason(geom) if geom.geom_type in ("Polygon", "MultiPolygon") else geom.geom_type
            raise InvalidInput(
                "geometry: must be a valid polygon",
                field="geometry",
                zh=f"几何图形：{code} 应为有效的多边形（{reason}）。",
            )
        given.append(leaf)
    new = {leaf.code: as_multipolygon(changes[leaf.code]) for leaf in given}
    redrawn = set(new)

    def rule(
        face: Polygon, point: Point, holders: list[_Leaf], owners: list[_Leaf], old_cover: BaseGeometry
    ) -> _Leaf | None:
        in_old = shapely.intersects(old_cover, point)
        m2 = _approx_m2(face)
        if not holders:
            if not in_old:
                return None  # outside: another leaf's enclave, or beyond the district
            if m2 > NOISE_M2:
                raise InvalidInput(
                    f"geometry: the redrawn leaves leave a gap of {m2:.2f} m² (at "
                    f"{face.representative_point().wkt}); together they must cover exactly what "
                    "they covered before",
                    field="geometry",
                    zh=f"几何图形：重画后留下 {m2:.2f} m² 的空隙（在 "
                    f"{face.representative_point().wkt}）；"
                    "所给网格合起来须与原来覆盖的范围完全一致。",
                )
            near = [o for o in owners if shapely.intersects(o.geom.boundary, face.boundary)]
            return _longest_edge(near or owners, face)
        if len(holders) > 1 and m2 > NOISE_M2:
            mine = sorted(o.code for o in holders if o.code in redrawn) or sorted(o.code for o in holders)
            rest = sorted(o.code for o in holders if o.code != mine[0])
            raise InvalidInput(
                f"geometry: {mine[0]} overlaps {', '.join(rest)} by {m2:.2f} m² (at {face.representative_point().wkt})",
                field="geometry",
                zh=f"几何图形：{mine[0]} 与 {'、'.join(rest)} 重叠 {m2:.2f} m²（在 "
                f"{face.representative_point().wkt}）。",
            )
        if not in_old and all(o.code in redrawn for o in holders):
            if m2 > NOISE_M2:
                raise InvalidInput(
                    f"geometry: the redrawn leaves reach {m2:.2f} m² beyond what they covered before",
                    field="geometry",
                    zh=f"几何图形：重画的网格超出了原来的范围 {m2:.2f} m²；所给网格合起来须与原来覆盖的范围完全一致。",
                )
            return None  # rounding beyond the old outline: dropped
        return _deepest(holders, point)

    _renode(w, given, new, rule, "geometry", "重画后")
    params = {"codes": sorted(changes)}
    return _finish(w, "redraw", params, actor, noop_ok=True)


def repair(
    session: Session,
    generation_id: int,
    changes: dict[str, BaseGeometry],
    params: dict[str, Any],
    actor: str | None = None,
) -> dict[str, Any]:
    """Write the leaf geometries of `gridmap.planning.repair` (a gap given to a neighbour, an overlap cut from one,
    a part outside the parent cut off, a sliver moved): unlike `redraw`, the leaves given may cover more or less
    than before — that is what a repair is for. They are re-noded with their neighbours; a face that no leaf
    holds after the repair is dropped when it is a region the repair cut away, and given to the leaf with the
    longest edge along it when it is rounding noise (under `NOISE_M2`); a face two leaves hold goes to the one it
    lies deepest in. Logged as the edit ``repair`` (undo restores the broken draft exactly)."""
    gen = _draft(session, generation_id)
    w = _Work(session, gen, "kinds")
    given = [w.leaf(code, "kinds") for code in changes]
    # The repairs were computed on the check's 1 µm precision grid: their vertices are put back on the stored
    # vertices of the neighbours they meet (within SNAP_BACK_DEG), so that the shared edges are exactly shared again
    # and no hairline is left between a repaired leaf and one the repair did not change.
    near = [n for n in w.near(shapely.union_all([changes[leaf.code] for leaf in given])) if n.code not in changes]
    reference = shapely.GeometryCollection([n.geom for n in near]) if near else None
    new = {}
    for leaf in given:
        geom = as_multipolygon(changes[leaf.code])
        if reference is not None:
            snapped = as_multipolygon(shapely.snap(geom, reference, SNAP_BACK_DEG))
            geom = snapped if shapely.is_valid(snapped) else geom
        new[leaf.code] = geom

    def rule(
        face: Polygon, point: Point, holders: list[_Leaf], owners: list[_Leaf], old_cover: BaseGeometry
    ) -> _Leaf | None:
        if holders:
            return _deepest(holders, point)
        if _approx_m2(face) > NOISE_M2:
            return None  # a region the repair cut away, another leaf's enclave, or outside the district
        # rounding left between a repaired leaf and a neighbour: to a repaired leaf along it, else the neighbour
        near = [o for o in owners if shapely.intersection(o.geom.boundary, face.boundary).length > 0]
        repaired = [o for o in near if o.code in new]
        return _longest_edge(repaired or near, face) if near else None

    _renode(w, given, new, rule, "kinds", "修复后")
    return _finish(w, "repair", params, actor)


def _ancestors_of(session: Session, parent_ids: set[int], gen_id: int, codes: set[str]) -> dict[int, Area]:
    """The areas `parent_ids` and all above them, following `parent_id`. The rows are fetched in one query by the
    codes' prefixes (DB11 codes carry their parents'); only what that misses is queried by id."""
    cache: dict[int, Area] = {}
    prefixes = sorted({c[:n] for c in codes for n in range(1, len(c))})
    if prefixes:
        for row in session.scalars(sa.select(Area).where(Area.generation_id == gen_id, Area.code.in_(prefixes))):
            cache[row.id] = row
    out: dict[int, Area] = {}
    todo = {p for p in parent_ids if p is not None}
    while todo:
        missing = todo - set(cache)
        if missing:
            for row in session.scalars(sa.select(Area).where(Area.id.in_(missing))):
                cache[row.id] = row
        above = set()
        for pid in todo:
            row = cache[pid]
            out[pid] = row
            if row.parent_id is not None and row.parent_id not in out:
                above.add(row.parent_id)
        todo = above
    return out


def _measure(geoms: dict[str, BaseGeometry], anchor: BaseGeometry) -> dict[str, float]:
    from gridmap.boundaries.check import SEGMENT_DEG, metric_epsg

    minx, miny, maxx, maxy = anchor.bounds
    fwd, _ = gcrs.projector(metric_epsg((minx + maxx) / 2, (miny + maxy) / 2))
    out = {}
    for code, geom in geoms.items():
        dense = shapely.segmentize(geom, SEGMENT_DEG)
        out[code] = float(shapely.transform(dense, lambda xy: np.column_stack(fwd.transform(xy[:, 0], xy[:, 1]))).area)
    return out


def _finish(
    w: _Work, op_name: str, params: dict[str, Any], actor: str | None, *, noop_ok: bool = False
) -> dict[str, Any]:
    session, gen = w.session, w.gen
    # the leaves that changed: new ones, removed ones, recoded ones, and stored ones with another geometry
    changed: dict[str, _Leaf] = {}
    for code, leaf in w.leaves.items():
        if leaf.row is None:
            changed[code] = leaf
        elif leaf.row.code in w.removed:
            continue
        elif leaf.row.code in w.recoded or not _same(leaf.geom, w.old[leaf.row.code]):
            changed[code] = leaf
    removed_rows: list[Area] = []
    for c in w.removed:
        stored = w.leaves[c].row
        assert stored is not None  # a leaf the draft loses was loaded from it
        removed_rows.append(stored)
    if not changed and not removed_rows and not w.toggled:
        if noop_ok:
            return _result(w.session, w.gen.id, None, op_name, [], [])
        raise InvalidInput(
            f"{w.field}: the edit changes nothing", field=w.field, zh=f"{field_zh(w.field)}：此编辑不会改变任何区域。"
        )
    # validity, and an exact coverage among the changed leaves and every leaf next to them
    for leaf in changed.values():
        if leaf.geom.is_empty or not shapely.is_valid(leaf.geom):
            reason = "empty" if leaf.geom.is_empty else shapely.is_valid_reason(leaf.geom)
            raise InvalidInput(
                f"{w.field}: the edit would make {leaf.code} invalid",
                field=w.field,
                zh=f"{field_zh(w.field)}：编辑后 {leaf.code} 的几何无效（{reason}）。",
            )
    geoms_changed = [
        leaf
        for leaf in changed.values()
        if leaf.row is None or leaf.row.code not in w.recoded or not _same(leaf.geom, w.old[leaf.row.code])
    ]
    if geoms_changed or removed_rows:
        region = shapely.union_all([leaf.geom for leaf in geoms_changed] + [to_shape(r.geom) for r in removed_rows])
        around = w.near(region, 2 * NEAR_DEG)
        if not shapely.coverage_is_valid(np.array([leaf.geom for leaf in around], dtype=object)):
            raise InvalidInput(
                f"{w.field}: the edit would make leaves overlap or their shared edges disagree",
                field=w.field,
                zh=f"{field_zh(w.field)}：编辑后网格之间会有重叠或边界不吻合。",
            )
    # households and population: each changed source shares its numbers among the leaves that now hold its ground
    sources = removed_rows + [leaf.row for leaf in geoms_changed if leaf.row is not None]
    dests = geoms_changed
    dest_ids = {id(d) for d in dests}
    numbers: dict[str, list[int]] = {leaf.code: [0, 0] for leaf in dests}
    if sources:
        cover = shapely.union_all([w.old[r.code] for r in sources])
        units = _buildings(session, cover)
        ux = np.array([u[1] for u in units])
        uy = np.array([u[2] for u in units])
        uh = np.array([u[3] for u in units], dtype=float)
        for src in sources:
            old = w.old[src.code]
            weights = []
            mine = shapely.contains_xy(old, ux, uy) if len(units) else np.zeros(0, bool)
            by_units = uh[mine].sum() > 0
            for d in dests:
                if by_units:
                    weights.append(float(uh[mine & shapely.contains_xy(d.geom, ux, uy)].sum()))
                else:
                    weights.append(float(shapely.intersection(old, d.geom).area))
            if sum(weights) <= 0 and by_units:
                weights = [float(shapely.intersection(old, d.geom).area) for d in dests]
            hh_shares = allocate(int(src.households or 0), weights, minimum=0) if sum(weights) > 0 else [0] * len(dests)
            pop_shares = (
                allocate(int(src.population or 0), weights, minimum=0) if sum(weights) > 0 else [0] * len(dests)
            )
            for d, h, p in zip(dests, hh_shares, pop_shares):
                numbers[d.code][0] += h
                numbers[d.code][1] += p
    for leaf in changed.values():
        if id(leaf) not in dest_ids:  # only recoded: keeps its numbers
            assert leaf.row is not None  # a new leaf is always among the destinations
            numbers[leaf.code] = [int(leaf.row.households or 0), int(leaf.row.population or 0)]
    # ancestors: coverage unions of their children, sums of their numbers
    parent_ids = {
        p
        for p in (
            {leaf.parent_id for leaf in changed.values()}
            | {r.parent_id for r in removed_rows}
            | {leaf.row.parent_id for leaf in changed.values() if leaf.row is not None}
        )
        if p is not None
    }
    ancestors = _ancestors_of(
        session, parent_ids, gen.id, {leaf.code for leaf in changed.values()} | {r.code for r in removed_rows}
    )
    root = next((a for a in ancestors.values() if a.parent_id is None), None)
    anchor = to_shape(root.geom) if root is not None else shapely.union_all([leaf.geom for leaf in changed.values()])
    by_id_changed = {leaf.row.id: leaf for leaf in changed.values() if leaf.row is not None}
    gone_ids = {r.id for r in removed_rows}
    kids = session.scalars(sa.select(Area).where(Area.parent_id.in_(list(ancestors)))).all() if ancestors else []
    children: dict[int | None, list[Any]] = {}
    for k in kids:
        if k.id in gone_ids or k.id in by_id_changed:
            continue
        children.setdefault(k.parent_id, []).append(("row", k))
    for leaf in changed.values():
        children.setdefault(leaf.parent_id, []).append(("leaf", leaf))
    depth: dict[int, int] = {}
    for aid in ancestors:
        steps, up = 0, ancestors[aid]
        while up.parent_id in ancestors:
            up, steps = ancestors[up.parent_id], steps + 1
        depth[aid] = steps
    new_anc: dict[int, tuple[BaseGeometry, int, int]] = {}
    anc_geom_changed: set[int] = set()
    for aid in sorted(ancestors, key=lambda i: -depth[i]):
        row = ancestors[aid]
        geoms: list[BaseGeometry] = []
        hh, pop = 0, 0
        any_geom_change = False
        for kind, item in children.get(aid, []):
            if kind == "leaf":
                geoms.append(item.geom)
                hh += numbers[item.code][0]
                pop += numbers[item.code][1]
                any_geom_change |= id(item) in dest_ids or item.row is None or item.row.parent_id != item.parent_id
            elif item.id in new_anc:
                g, h, p = new_anc[item.id]
                geoms.append(g)
                hh += h
                pop += p
                any_geom_change |= item.id in anc_geom_changed
            else:
                geoms.append(to_shape(item.geom))
                hh += int(item.households or 0)
                pop += int(item.population or 0)
        old_geom = to_shape(row.geom)
        moved_away = any(r.parent_id == aid for r in removed_rows) or any(
            leaf.row is not None and leaf.row.parent_id == aid and leaf.parent_id != aid for leaf in changed.values()
        )
        geom: BaseGeometry = old_geom
        if any_geom_change or moved_away:
            merged = _union(geoms)
            if not _same(merged, old_geom):
                anc_geom_changed.add(aid)
                geom = merged
                if _parts(merged) > max(_parts(old_geom), 1):
                    raise InvalidInput(
                        f"{w.field}: the edit would split {row.code} into separate parts",
                        field=w.field,
                        zh=f"{field_zh(w.field)}：编辑会使{_zh(row.level)} {row.code} 断成不相连的几块。",
                    )
                holes = sum(len(p.interiors) for p in merged.geoms)
                if holes > sum(len(p.interiors) for p in as_multipolygon(old_geom).geoms):
                    raise InvalidInput(
                        f"{w.field}: the edit would leave a hole in {row.code}",
                        field=w.field,
                        zh=f"{field_zh(w.field)}：编辑会在{_zh(row.level)} {row.code} 中留下空洞。",
                    )
        new_anc[aid] = (geom, hh, pop)

    # locks
    def shape_changed(leaf: _Leaf) -> bool:
        old = w.old.get(leaf.row.code) if leaf.row is not None else None
        return old is None or shapely.symmetric_difference(old, leaf.geom).area * _m2_per_deg2(old.centroid.y) > 1e-4

    for leaf in changed.values():
        own = leaf.row
        numbers_changed = own is None or numbers[leaf.code] != [int(own.households or 0), int(own.population or 0)]
        really = own is None or own.code in w.recoded or shape_changed(leaf) or numbers_changed
        if not really:
            continue
        chain = [own] if own is not None else []
        pid = leaf.parent_id
        while pid in ancestors:
            chain.append(ancestors[pid])
            pid = ancestors[pid].parent_id
        if own is not None:
            pid = own.parent_id
            while pid in ancestors:
                chain.append(ancestors[pid])
                pid = ancestors[pid].parent_id
        for a in chain:
            if a.locked:
                raise Conflict(
                    f"{w.field}: {a.code} is locked",
                    field=w.field,
                    zh=f"{field_zh(w.field)}：{_zh(a.level)} {a.code} 已锁定，不能修改它或其下级。",
                )
    for r in removed_rows:
        a, chain = r, [r]
        while a.parent_id in ancestors:
            a = ancestors[a.parent_id]
            chain.append(a)
        for a in chain:
            if a.locked:
                raise Conflict(
                    f"{w.field}: {a.code} is locked",
                    field=w.field,
                    zh=f"{field_zh(w.field)}：{_zh(a.level)} {a.code} 已锁定，不能修改它或其下级。",
                )
    # the rows before and after
    measure = {leaf.code: leaf.geom for leaf in dests}
    measure.update({f"#{aid}": new_anc[aid][0] for aid in anc_geom_changed})
    m2 = _measure(measure, anchor) if measure else {}
    before, after = [], []
    for r in removed_rows:
        before.append(_snap(r, w.old[r.code]))
    new_rows = []
    for leaf in changed.values():
        if leaf.row is None:
            new_rows.append(leaf)
            continue
        before.append(_snap(leaf.row, w.old[leaf.row.code]))
        snap = _snap(leaf.row, leaf.geom)
        snap.update(
            code=leaf.code, parent_id=leaf.parent_id, households=numbers[leaf.code][0], population=numbers[leaf.code][1]
        )
        if id(leaf) in dest_ids:
            snap["area_m2"] = m2[leaf.code]
        after.append(snap)
    for aid, (geom, hh, pop) in new_anc.items():
        row = ancestors[aid]
        snap = _snap(row, geom)
        if snap["wkb"] == _wkb(to_shape(row.geom)) and hh == row.households and pop == row.population:
            continue
        before.append(_snap(row))
        snap.update(households=hh, population=pop)
        if aid in anc_geom_changed:
            snap["area_m2"] = m2[f"#{aid}"]
        after.append(snap)
    for rid in w.toggled:
        toggled = session.get(Area, rid)
        assert toggled is not None  # loaded by the edit in this session
        before.append(_snap(toggled))
        snap = _snap(toggled)
        snap["locked"] = not toggled.locked
        after.append(snap)
    # write: new leaves get ids first
    for leaf in new_rows:
        new = Area(
            generation_id=gen.id,
            level=leaf.level,
            code=leaf.code,
            name=leaf.name,
            parent_id=leaf.parent_id,
            households=numbers[leaf.code][0],
            population=numbers[leaf.code][1],
            area_m2=m2[leaf.code],
            is_leaf=True,
            locked=False,
            geom=from_shape(leaf.geom, srid=4326),
        )
        session.add(new)
        session.flush()
        after.append(_snap(new, leaf.geom))
    _write(session, gen.id, before, [a for a in after if a["id"] in {b["id"] for b in before}])
    # the log: a new edit drops the undone ones (the redo branch)
    session.execute(sa.delete(PlanEdit).where(PlanEdit.generation_id == gen.id, PlanEdit.undone.is_(True)))
    seq = (session.scalar(sa.select(sa.func.max(PlanEdit.seq)).where(PlanEdit.generation_id == gen.id)) or 0) + 1
    session.add(
        PlanEdit(
            generation_id=gen.id,
            seq=seq,
            op=op_name,
            params=params,
            before={"rows": before},
            after={"rows": after},
            actor=(actor or "")[:64] or None,
            at=dt.datetime.now(dt.UTC),
            undone=False,
        )
    )
    try:
        session.flush()
    except sa.exc.IntegrityError:
        raise Conflict(
            "generation: another edit of the draft came first; retry",
            field="generation",
            zh=f"边界版本：草稿 {gen.id} 同时被另一个编辑修改，请重试。",
        ) from None
    return _result(session, gen.id, seq, op_name, before, after)


# -- undo, redo, history -------------------------------------------------------------------------------------------


def undo(session: Session, generation_id: int, actor: str | None = None) -> dict[str, Any]:
    """Undo the last edit that is not undone: its `before` rows are written back exactly."""
    gen = _draft(session, generation_id)
    edit = session.scalars(
        sa.select(PlanEdit)
        .where(PlanEdit.generation_id == gen.id, PlanEdit.undone.is_(False))
        .order_by(PlanEdit.seq.desc())
        .limit(1)
    ).first()
    if edit is None:
        raise Conflict(
            "generation: nothing to undo", field="generation", zh=f"边界版本：草稿 {gen.id} 没有可撤销的编辑。"
        )
    before, after = _rows(edit.before), _rows(edit.after)
    _current(session, gen.id, after)
    _write(session, gen.id, after, before)
    edit.undone = True
    session.flush()
    return _result(session, gen.id, edit.seq, edit.op, after, before)


def redo(session: Session, generation_id: int, actor: str | None = None) -> dict[str, Any]:
    """Redo the first undone edit: its `after` rows are written again."""
    gen = _draft(session, generation_id)
    edit = session.scalars(
        sa.select(PlanEdit)
        .where(PlanEdit.generation_id == gen.id, PlanEdit.undone.is_(True))
        .order_by(PlanEdit.seq)
        .limit(1)
    ).first()
    if edit is None:
        raise Conflict(
            "generation: nothing to redo", field="generation", zh=f"边界版本：草稿 {gen.id} 没有可重做的编辑。"
        )
    before, after = _rows(edit.before), _rows(edit.after)
    _current(session, gen.id, before)
    _write(session, gen.id, before, after)
    edit.undone = False
    session.flush()
    return _result(session, gen.id, edit.seq, edit.op, before, after)


def history(session: Session, generation_id: int) -> list[dict[str, Any]]:
    from gridmap.boundaries.generations import get_generation

    get_generation(session, generation_id)
    edits = session.scalars(
        sa.select(PlanEdit).where(PlanEdit.generation_id == generation_id).order_by(PlanEdit.seq)
    ).all()
    return [
        {"seq": e.seq, "op": e.op, "actor": e.actor, "at": e.at.isoformat() if e.at else None, "undone": bool(e.undone)}
        for e in edits
    ]


def _result(
    session: Session,
    gen_id: int,
    seq: int | None,
    op_name: str,
    leaving: list[dict[str, Any]],
    arriving: list[dict[str, Any]],
) -> dict[str, Any]:
    codes_before = {r["code"] for r in leaving}
    codes_after = {r["code"] for r in arriving}
    parents = {r["parent_id"] for r in arriving if r["parent_id"]}
    code_of = dict(session.execute(sa.select(Area.id, Area.code).where(Area.id.in_(parents))).all()) if parents else {}
    changed = [
        {
            "code": r["code"],
            "level": r["level"],
            "name": r["name"],
            "parent": code_of.get(r["parent_id"]),
            "geometry": shapely.geometry.mapping(shapely.from_wkb(r["wkb"])),
            "households": r["households"],
            "population": r["population"],
            "area_m2": r["area_m2"],
            "locked": r["locked"],
        }
        for r in sorted(arriving, key=lambda r: (len(r["code"]), r["code"]))
    ]
    was = {r["code"]: r for r in leaving}
    now = {r["code"]: r for r in arriving}
    balance = []
    for code in sorted(codes_before | codes_after, key=lambda c: (len(c), c)):
        b, a = was.get(code), now.get(code)
        balance.append(
            {
                "code": code,
                "households_before": b["households"] if b else 0,
                "households_after": a["households"] if a else 0,
                "population_before": b["population"] if b else 0,
                "population_after": a["population"] if a else 0,
            }
        )
    states = set(session.scalars(sa.select(PlanEdit.undone).where(PlanEdit.generation_id == gen_id).distinct()))
    can_undo, can_redo = False in states, True in states
    return {
        "generation_id": gen_id,
        "seq": seq,
        "op": op_name,
        "changed": changed,
        "created": sorted(codes_after - codes_before),
        "retired": sorted(codes_before - codes_after),
        "balance": balance,
        "can_undo": can_undo,
        "can_redo": can_redo,
    }
