"""The validation report of a boundary generation (issue 13 §2): does every level tile its parent exactly, are the
geometries valid, are the codes well formed and unique, are the grids of a size one worker can serve?

`check_generation(session, generation_id)` reads the stored geometries and checks them in Python with shapely, never
with database functions, so one generation gives the same report on SpatiaLite and PostGIS. `check_areas(records)`
is the same check on areas that are not stored (an import can use it before it writes anything).

The report is ``{"generation_id", "ok", "areas", "counts", "tolerances", "problems": [...]}``; each problem is
``{"kind", "severity", "codes", "area_m2", "geometry", "parent", "detail"}`` with `geometry` as GeoJSON in WGS84 at
the problem's place (the region itself, or a point where the problem has no area) and `area_m2` measured in metres
(the district's CGCS2000 3-degree Gauss-Krüger zone, or its UTM zone outside China), `None` for problems that are not
regions. `ok` is true when no problem has severity ``error``.

Kinds (severity):

- ``invalid_geometry`` (error): not a valid polygon; `detail` is GEOS's reason (`shapely.is_valid_reason`), the
  point is where GEOS found it. The rest of the check goes on with `shapely.make_valid` of it.
- ``gap`` (error): a part of a parent that none of its children covers (the parent minus the union of its
  children, unexplained holes counted as covered); also a narrow crack between leaves that opens onto the outside
  of the district (found with `shapely.coverage_invalid_edges`). `codes`: the children along it.
- ``overlap`` (error): two siblings (or two districts) share an area; `codes`: both.
- ``hole`` (error): an interior ring of an area that its children do not explain — either its children cover the
  inside (the stored parent is stale), or the hole is too small or too narrow to be anyone's enclave (under
  `sliver_m2` or narrower than `gap_width_m`), like the zero-area rings that recomputing a parent with `union_all`
  from slightly different vertices leaves. Found at every level that carries the same ring; `codes`: all of them.
  A larger hole that nothing fills is an enclave (a district's) or shows up as a `gap` of the level above.
- ``outside_parent`` (error): the part of a child outside its parent.
- ``sliver`` (warning): a gap, overlap, outside part or polygon part under `sliver_m2` (and over `noise_m2`).
- ``not_contiguous`` (warning): an area made of several parts of at least `sliver_m2`; the geometry is every part
  but the largest. (Real districts have exclaves and the demo's grids follow them, so it does not break tiling.)
- ``duplicate_code`` (error): two areas of the generation with the same code, after Unicode NFKC and trimming (the
  database's unique constraint sees ``"530111001"``, ``"530111001 "`` and full-width ``"５３０１１１００１"`` as three).
- ``bad_code`` (error): not DB11-shaped for its level — district 6 digits (GB/T 2260), sub-district 9, community 12,
  grid 15, micro-grid 17 or 18 (6 + 3 + 3 + 3 + 2 or 3) — or not starting with its parent's code.
- ``household_norm`` (warning): households outside the band configured for the level.

Topology is computed on the stored longitude/latitude (the plane both databases and the lookup index work in),
measurements in metres (see `_Family`). Tolerances (parameters, with these defaults):

- `grid_size_m` = 1 µm: overlay runs on this fixed-precision grid (in degrees: grid_size_m / 111,320), with
  `shapely.set_precision` and the `grid_size` of the overlay functions (snap rounding; no hand-made overlay code).
  Snap rounding moves a vertex by up to half the grid, and a vertex that lies on a neighbour's long edge (where a
  redraw cut it) is moved off that edge: a 1 mm grid makes slivers of up to 2.5 m² along a 5 km edge, a 1 µm grid
  stays under the noise threshold on edges of 20 km.
- `noise_m2` = 0.01 m²: gaps, overlaps and parts under this are float noise and ignored (holes are not: a zero-area
  ring is exactly what draws stray lines on the map).
- `sliver_m2` = 1 m²: gaps, overlaps, outside parts and polygon parts under this are slivers (warnings).
- `gap_width_m` = 1 m: holes and cracks narrower than this are never enclaves.

Household bands default to `DEFAULT_HOUSEHOLD_BAND`: grids 200–2,000 households (wide enough for the common local
rule of 300–500 per urban grid and for Guandu's average of about 1,150), micro-grids 50–800 (Guandu averages about
330); other levels are not checked unless configured.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypedDict, get_args

import numpy as np
import shapely
import sqlalchemy as sa
from geoalchemy2.shape import to_shape
from shapely.geometry import MultiPoint, MultiPolygon, Point, Polygon
from shapely.geometry.base import BaseGeometry
from sqlalchemy.orm import Session

from gridmap.errors import InvalidCoordinate, InvalidInput, field_zh
from gridmap.geo import crs as gcrs
from gridmap.geo.coverage import as_multipolygon
from gridmap.store.tables import CODE_DIGITS, LEVEL_NAMES_ZH, LEVELS, Area

NOISE_M2 = 0.01
SLIVER_M2 = 1.0
GAP_WIDTH_M = 1.0
GRID_SIZE_M = 1e-6
DEFAULT_HOUSEHOLD_BAND = "grid=200-2000,microgrid=50-800"

CheckKind = Literal[
    "invalid_geometry",
    "gap",
    "overlap",
    "hole",
    "outside_parent",
    "duplicate_code",
    "bad_code",
    "sliver",
    "not_contiguous",
    "household_norm",
]
KINDS: tuple[CheckKind, ...] = get_args(CheckKind)
KIND_NAMES_ZH = {
    "invalid_geometry": "几何无效",
    "gap": "空隙",
    "overlap": "重叠",
    "hole": "内洞",
    "outside_parent": "超出上级",
    "duplicate_code": "编码重复",
    "bad_code": "编码不合规",
    "sliver": "碎片",
    "not_contiguous": "不连通",
    "household_norm": "户数超出常规",
}
WARNINGS = frozenset({"sliver", "not_contiguous", "household_norm"})
M_PER_DEG = 111_320.0  # metres per degree of latitude, near enough, for tolerances given in metres
SEGMENT_DEG = 1e-4  # edges are densified to this (about 10 m) before they are projected for measuring
NEAR_M = 0.01  # a region's neighbours: the areas within 1 cm of it
COORD_DIGITS = 7  # problem geometries are rounded to 1e-7° (about 1 cm)
_REASON_POINT = re.compile(r"\[\s*([-+0-9.eE]+)\s+([-+0-9.eE]+)\s*\]")


class Problem(TypedDict):
    kind: str
    severity: str
    codes: list[str]
    area_m2: float | None
    geometry: dict[str, Any]
    parent: str | None
    detail: str


class CheckReport(TypedDict):
    generation_id: int | None
    ok: bool
    areas: int
    counts: dict[str, int]
    tolerances: dict[str, Any]
    problems: list[Problem]


@dataclass(frozen=True)
class AreaRecord:
    """One area as the check sees it: `key` identifies it (the row id), `parent` is its parent's key."""

    key: int
    code: str
    level: str
    parent: int | None
    households: int
    geom: BaseGeometry  # WGS84 longitude/latitude


@dataclass(frozen=True)
class Tolerances:
    noise_m2: float = NOISE_M2
    sliver_m2: float = SLIVER_M2
    gap_width_m: float = GAP_WIDTH_M
    grid_size_m: float = GRID_SIZE_M

    def check(self) -> None:
        limits = {
            "noise_m2": (0.0, 1e4),
            "sliver_m2": (0.0, 1e6),
            "gap_width_m": (0.0, 1e3),
            "grid_size_m": (1e-7, 0.1),
        }
        for name, (low, high) in limits.items():
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or not low <= value <= high:
                raise InvalidInput(
                    f"{name}: {value!r} is out of range; accepted: a number from {low:g} to {high:g}",
                    field=name,
                    zh=f"{field_zh(name)}：{value!r} 超出范围，应为 {low:g} 至 {high:g} 之间的数。",
                )
        if self.noise_m2 > self.sliver_m2:
            raise InvalidInput(
                f"noise_m2: {self.noise_m2:g} is above sliver_m2 ({self.sliver_m2:g}); accepted: noise_m2 <= sliver_m2",
                field="noise_m2",
                zh=f"噪声面积（noise_m2）：{self.noise_m2:g} 大于狭缝面积（sliver_m2）"
                f"{self.sliver_m2:g}，应不大于后者。",
            )


def parse_household_band(text: str | Mapping[str, tuple[int, int]] | None) -> dict[str, tuple[int, int]]:
    """Households per area allowed by level, from ``"grid=200-2000,microgrid=50-800"`` (or a mapping); an empty
    text checks no level.

    Examples
    --------
    >>> parse_household_band("grid=300-500")
    {'grid': (300, 500)}
    """
    if text is None:
        text = DEFAULT_HOUSEHOLD_BAND
    if isinstance(text, Mapping):
        items = [(level, band) for level, band in text.items()]
    else:
        if len(text) > 500:
            raise InvalidInput(
                "household_band: at most 500 characters",
                field="household_band",
                zh="户数区间（household_band）最多 500 个字符。",
            )
        items = []
        for part in filter(None, (p.strip() for p in text.split(","))):
            match = re.fullmatch(r"([a-z]+)\s*=\s*(\d{1,9})\s*-\s*(\d{1,9})", part)
            if match is None:
                raise InvalidInput(
                    f"household_band: {part!r} is not LEVEL=MIN-MAX; accepted: e.g. {DEFAULT_HOUSEHOLD_BAND!r}",
                    field="household_band",
                    zh=f"户数区间（household_band）：{part!r} 不是“层级=最小-最大”的格式，如 "
                    f"{DEFAULT_HOUSEHOLD_BAND!r}。",
                )
            items.append((match.group(1), (int(match.group(2)), int(match.group(3)))))
    out: dict[str, tuple[int, int]] = {}
    for level, (low, high) in items:
        if level not in LEVELS:
            raise InvalidInput(
                f"household_band: {level!r} is not a level; accepted: {', '.join(LEVELS)}",
                field="household_band",
                zh=f"户数区间（household_band）：{level!r} 不是层级；可选：{', '.join(LEVELS)}。",
            )
        if not 0 <= int(low) <= int(high):
            raise InvalidInput(
                f"household_band: {level}={low}-{high} is empty; accepted: 0 <= MIN <= MAX",
                field="household_band",
                zh=f"户数区间（household_band）：{level}={low}-{high} 为空区间，应满足 0 ≤ 最小 ≤ 最大。",
            )
        out[level] = (int(low), int(high))
    return out


def check_generation(
    session: Session,
    generation_id: int,
    *,
    noise_m2: float = NOISE_M2,
    sliver_m2: float = SLIVER_M2,
    gap_width_m: float = GAP_WIDTH_M,
    grid_size_m: float = GRID_SIZE_M,
    household_band: str | Mapping[str, tuple[int, int]] | None = None,
) -> CheckReport:
    """Check every area of a stored generation (any status); `NotFound` naming `generation` when there is none."""
    report = check_areas(
        load_records(session, generation_id),
        noise_m2=noise_m2,
        sliver_m2=sliver_m2,
        gap_width_m=gap_width_m,
        grid_size_m=grid_size_m,
        household_band=household_band,
    )
    report["generation_id"] = generation_id
    return report


def load_records(session: Session, generation_id: int) -> list[AreaRecord]:
    """Every area of a stored generation as the check sees it; `NotFound` naming `generation` when there is none."""
    from gridmap.boundaries.generations import get_generation

    get_generation(session, generation_id)
    rows = session.execute(
        sa.select(Area.id, Area.code, Area.level, Area.parent_id, Area.households, Area.geom)
        .where(Area.generation_id == generation_id)
        .order_by(Area.code, Area.id)
    ).all()
    return [AreaRecord(r.id, r.code, r.level, r.parent_id, int(r.households or 0), to_shape(r.geom)) for r in rows]


def check_areas(
    records: Iterable[AreaRecord],
    *,
    noise_m2: float = NOISE_M2,
    sliver_m2: float = SLIVER_M2,
    gap_width_m: float = GAP_WIDTH_M,
    grid_size_m: float = GRID_SIZE_M,
    household_band: str | Mapping[str, tuple[int, int]] | None = None,
) -> CheckReport:
    """The check of `check_generation` on areas given directly (WGS84 geometries)."""
    tol = Tolerances(noise_m2, sliver_m2, gap_width_m, grid_size_m)
    tol.check()
    bands = parse_household_band(household_band)
    run = _Run(list(records), tol)
    run.codes()
    run.geometries()
    run.households(bands)
    problems = sorted(run.problems, key=_order)
    counts = {kind: sum(p["kind"] == kind for p in problems) for kind in KINDS}
    return CheckReport(
        generation_id=None,
        ok=not any(p["severity"] == "error" for p in problems),
        areas=len(run.records),
        counts={k: n for k, n in counts.items() if n},
        tolerances={**tol.__dict__, "household_band": {k: list(v) for k, v in bands.items()}},
        problems=problems,
    )


def _order(p: Problem) -> tuple[Any, ...]:
    return (p["severity"] != "error", KINDS.index(p["kind"]), p["codes"], -(p["area_m2"] or 0.0), p["detail"])


def _level_rank(level: str) -> int:
    return LEVELS.index(level) if level in LEVELS else len(LEVELS)


class _Family:
    """A district (a root) and everything under it, measured in one metric zone.

    Topology (validity, coverage, overlay) is computed on the stored longitude/latitude, the plane the databases
    and the lookup index work in; only measurements go through metres. A straight edge in degrees is slightly
    curved in a transverse Mercator zone (millimetres over a few kilometres), so edges are densified to
    `SEGMENT_DEG` (about 10 m) before they are projected: a thin sliver between two long edges is then measured
    as thin, not as the millimetres of curvature times the edge's length."""

    def __init__(self, root: AreaRecord, anchor: BaseGeometry):
        lon, lat = _anchor_lonlat(anchor)
        self.root = root
        self.epsg = metric_epsg(lon, lat)
        self.fwd, self.back = gcrs.projector(self.epsg)
        self.keys: list[int] = []

    def to_metres(self, geom: BaseGeometry) -> BaseGeometry:
        dense = shapely.segmentize(geom, SEGMENT_DEG)
        return shapely.transform(dense, lambda xy: np.column_stack(self.fwd.transform(xy[:, 0], xy[:, 1])))

    def area_m2(self, geom: BaseGeometry) -> float:
        return float(self.to_metres(geom).area) if not geom.is_empty else 0.0


def _anchor_lonlat(geom: BaseGeometry) -> tuple[float, float]:
    if geom.is_empty:
        return 102.0, 25.0  # nothing to measure; any zone will do
    minx, miny, maxx, maxy = geom.bounds
    return (minx + maxx) / 2, (miny + maxy) / 2


def metric_epsg(lon: float, lat: float) -> int:
    """The CGCS2000 3-degree Gauss-Krüger zone of a longitude in China, the WGS84 UTM zone elsewhere."""
    try:
        return gcrs.gk_zone_epsg(lon)
    except InvalidCoordinate:
        zone = min(max(int((lon + 180.0) // 6.0) + 1, 1), 60)
        return (32600 if lat >= 0 else 32700) + zone


def _polygons(geom: BaseGeometry) -> list[Polygon]:
    """The polygons of a geometry (any collection), empty ones left out."""
    return [p for p in as_multipolygon(geom).geoms if not p.is_empty]


class _Run:
    def __init__(self, records: list[AreaRecord], tol: Tolerances):
        self.tol = tol
        self.grid = tol.grid_size_m / M_PER_DEG  # the precision grid in degrees
        self.records = sorted(records, key=lambda r: (_level_rank(r.level), r.code, r.key))
        self.by_key = {r.key: r for r in self.records}
        self.children: dict[int, list[int]] = {}
        for r in self.records:
            if r.parent is not None and r.parent in self.by_key and r.parent != r.key:
                self.children.setdefault(r.parent, []).append(r.key)
        self.problems: list[Problem] = []

    # -- output ---------------------------------------------------------------------------------------------------

    def add(
        self,
        kind: str,
        codes: list[str],
        area_m2: float | None,
        geometry: BaseGeometry,
        detail: str,
        parent: str | None = None,
    ) -> None:
        self.problems.append(
            Problem(
                kind=kind,
                severity="warning" if kind in WARNINGS else "error",
                codes=codes,
                area_m2=None if area_m2 is None else round(area_m2, 3),
                geometry=_geojson(geometry, area_m2, self.tol.noise_m2),
                parent=parent,
                detail=detail,
            )
        )

    def region(
        self,
        kind: str,
        what_zh: str,
        region: BaseGeometry,
        fam: _Family,
        codes: list[str],
        detail: str,
        parent: str | None = None,
    ) -> bool:
        """Report one connected region as `kind`, or as a sliver below `sliver_m2`; False when it is noise."""
        area = fam.area_m2(region)
        if area <= self.tol.noise_m2:
            return False
        if area < self.tol.sliver_m2:
            detail = f"{what_zh}碎片 {area:.2f} m²，小于 {self.tol.sliver_m2:g} m²（sliver {kind}）：{detail}"
            kind = "sliver"
        self.add(kind, codes, area, region, detail, parent)
        return True

    # -- codes ----------------------------------------------------------------------------------------------------

    def codes(self) -> None:
        groups: dict[str, list[AreaRecord]] = {}
        for r in self.records:
            groups.setdefault(unicodedata.normalize("NFKC", r.code).strip(), []).append(r)
        for code, same in groups.items():
            if len(same) > 1:
                points = MultiPoint([_point_of(r.geom) for r in same])
                levels = "、".join(LEVEL_NAMES_ZH.get(r.level, r.level) for r in same)
                self.add(
                    "duplicate_code",
                    sorted(r.code for r in same),
                    None,
                    points,
                    f"编码 {code} 出现 {len(same)} 次（{levels}）；一个编码只能属于一个区域 (duplicate code)",
                )
        for r in self.records:
            reasons = []
            lengths = CODE_DIGITS.get(r.level)
            if lengths is None:
                reasons.append(f"层级 {r.level!r} 不是已知层级 (level is not one of {', '.join(LEVELS)})")
            elif not (r.code.isascii() and r.code.isdigit()):
                reasons.append(f"{LEVEL_NAMES_ZH[r.level]}编码应全为数字 (digits only)")
            elif len(r.code) not in lengths:
                want = "或".join(str(n) for n in lengths)
                reasons.append(
                    f"{LEVEL_NAMES_ZH[r.level]}编码应为 {want} 位（DB11：区 6 + 街道 3 + 社区 3 + 网格 3 + "
                    f"微网格 2–3），实为 {len(r.code)} 位 ({r.level} code must have {want} digits)"
                )
            parent = self.by_key.get(r.parent) if r.parent is not None else None
            if parent is not None and not r.code.startswith(parent.code):
                reasons.append(f"不以上级编码 {parent.code} 开头 (not prefixed by its parent's code)")
            if reasons:
                self.add(
                    "bad_code",
                    [r.code],
                    None,
                    _point_of(r.geom),
                    f"{r.code}：" + "；".join(reasons),
                    parent.code if parent is not None else None,
                )

    # -- households -----------------------------------------------------------------------------------------------

    def households(self, bands: dict[str, tuple[int, int]]) -> None:
        for r in self.records:
            band = bands.get(r.level)
            if band is not None and not band[0] <= r.households <= band[1]:
                self.add(
                    "household_norm",
                    [r.code],
                    None,
                    _point_of(r.geom),
                    f"{r.code} 有 {r.households} 户，超出{LEVEL_NAMES_ZH[r.level]}的常规范围 {band[0]}–{band[1]} 户 "
                    f"({r.households} households; the norm for a {r.level} is {band[0]}-{band[1]})",
                )

    # -- geometry -------------------------------------------------------------------------------------------------

    def geometries(self) -> None:
        fixed: dict[int, BaseGeometry] = {}
        for r in self.records:
            geom = r.geom
            if geom.is_empty or not shapely.is_valid(geom):
                reason = "Empty geometry" if geom.is_empty else shapely.is_valid_reason(geom)
                match = _REASON_POINT.search(reason)
                where = Point(float(match.group(1)), float(match.group(2))) if match else _point_of(geom)
                self.add("invalid_geometry", [r.code], None, where, f"几何无效 (invalid geometry): {reason}")
                geom = shapely.make_valid(geom) if not geom.is_empty else MultiPolygon()
            fixed[r.key] = as_multipolygon(geom)
        self.fixed = fixed
        self.snapped = {k: as_multipolygon(shapely.set_precision(g, self.grid)) for k, g in fixed.items()}
        self._unions: dict[int, BaseGeometry] = {}
        self._coverage_ok: dict[int, bool] = {}
        families = self._families()
        for fam in families:
            holes = self._holes(fam)
            regions: list[BaseGeometry] = [h for hs in holes.values() for h in hs]
            for key in fam.keys:
                self._parts(self.by_key[key], fam)
                if key in self.children:
                    regions.extend(self._siblings(key, fam, holes))
            self._cracks(fam, regions)
        if len(families) > 1:  # districts (or other roots) must not overlap one another
            roots = [f.root for f in families]
            self._overlaps(roots, [self.snapped[r.key] for r in roots], families[0], None)

    def _families(self) -> list[_Family]:
        def root_of(r: AreaRecord) -> AreaRecord:
            seen = {r.key}
            while r.parent is not None and r.parent in self.by_key and r.parent not in seen:
                r = self.by_key[r.parent]
                seen.add(r.key)
            return r

        families: dict[int, _Family] = {}
        for r in self.records:
            root = root_of(r)
            if root.key not in families:
                anchor = self.fixed[root.key] if not self.fixed[root.key].is_empty else self.fixed[r.key]
                families[root.key] = _Family(root, anchor)
            families[root.key].keys.append(r.key)
        return list(families.values())

    def _union(self, key: int) -> BaseGeometry:
        """The union of an area's children (snapped): `coverage_union_all` when they form a valid coverage."""
        if key not in self._unions:
            kids = np.array([self.snapped[k] for k in self.children[key]], dtype=object)
            valid = bool(shapely.coverage_is_valid(kids))
            self._coverage_ok[key] = valid
            self._unions[key] = (
                shapely.coverage_union_all(kids) if valid else shapely.union_all(kids, grid_size=self.grid)
            )
        return self._unions[key]

    def _parts(self, r: AreaRecord, fam: _Family) -> None:
        parts = _polygons(self.snapped[r.key])
        if len(parts) < 2:
            return
        measured = sorted(((fam.area_m2(p), i) for i, p in enumerate(parts)), reverse=True)
        kept = []
        for area, i in measured[1:]:
            if area >= self.tol.sliver_m2:
                kept.append(parts[i])
            else:
                self.region(
                    "sliver",
                    "多边形部分",
                    parts[i],
                    fam,
                    [r.code],
                    f"{r.code} 有一块很小的不相连部分 (a tiny separate part)",
                )
        if kept:
            rest = MultiPolygon(kept)
            self.add(
                "not_contiguous",
                [r.code],
                fam.area_m2(rest),
                rest,
                f"{r.code} 由 {len(kept) + 1} 块不相连的部分组成；此处为最大块以外的 {len(kept)} 块 "
                f"({len(kept) + 1} separate parts; shown: all but the largest)",
            )

    def _holes(self, fam: _Family) -> dict[int, list[Polygon]]:
        """Report the interior rings no child explains; returns them by area key."""
        unexplained: dict[int, list[Polygon]] = {}
        found: dict[tuple[Any, ...], dict[str, Any]] = {}
        w = self.tol.gap_width_m
        for key in fam.keys:
            for poly in _polygons(self.fixed[key]):
                for ring in poly.interiors:
                    hole = Polygon(ring)
                    metres = fam.to_metres(hole)
                    area = float(metres.area)
                    tiny = area < self.tol.sliver_m2 or (w > 0 and shapely.buffer(metres, -w / 2, quad_segs=2).is_empty)
                    filled = 0.0
                    if key in self.children:
                        inside = shapely.intersection(
                            shapely.set_precision(hole, self.grid), self._union(key), grid_size=self.grid
                        )
                        filled = fam.area_m2(inside)
                    if not tiny and filled <= self.tol.noise_m2:
                        continue  # an enclave, or a gap of the level above (reported there)
                    unexplained.setdefault(key, []).append(hole)
                    place = tuple(np.round(np.asarray(metres.bounds), 2))
                    entry = found.setdefault(place, {"codes": [], "hole": hole, "area": area, "filled": 0.0})
                    entry["codes"].append(self.by_key[key].code)
                    entry["filled"] = max(entry["filled"], filled)
        for entry in found.values():
            codes = sorted(set(entry["codes"]))
            if entry["filled"] > self.tol.noise_m2:
                why = (
                    f"下级区域覆盖了其中 {entry['filled']:.2f} m²，上级边界已过时 (its children cover it: stale parent)"
                )
            else:
                why = (
                    f"面积 {entry['area']:.4f} m² 或宽度小于 {w:g} m，不可能是飞地，多为重画后 union 留下的 "
                    "(too small or narrow for an enclave: an artefact of recomputing a union)"
                )
            self.add(
                "hole",
                codes,
                entry["area"],
                entry["hole"],
                f"{'、'.join(codes)} 的边界内有一个下级区域解释不了的洞：{why}",
            )
        return unexplained

    def _siblings(self, key: int, fam: _Family, holes: dict[int, list[Polygon]]) -> list[BaseGeometry]:
        """Gaps, overlaps and parts outside the parent among the children of `key`; returns the regions found."""
        g = self.grid
        parent = self.by_key[key]
        kids = self.children[key]
        union = self._union(key)
        found: list[BaseGeometry] = []
        if not self._coverage_ok[key]:
            found += self._overlaps([self.by_key[k] for k in kids], [self.snapped[k] for k in kids], fam, parent.code)
        filled_parent = shapely.union_all([self.snapped[key], *holes.get(key, [])], grid_size=g)
        filled_kids = shapely.union_all([union, *(h for k in kids for h in holes.get(k, []))], grid_size=g)
        tree = shapely.STRtree([self.snapped[k] for k in kids])
        near = NEAR_M / M_PER_DEG
        for part in _polygons(shapely.difference(filled_parent, filled_kids, grid_size=g)):
            codes = sorted(self.by_key[kids[i]].code for i in tree.query(part, predicate="dwithin", distance=near))
            if self.region(
                "gap",
                "空隙",
                part,
                fam,
                codes or [parent.code],
                f"{parent.code} 内有一块没有任何下级区域覆盖的空隙 (a gap among its children)",
                parent.code,
            ):
                found.append(part)
        outside = shapely.difference(union, filled_parent, grid_size=g)
        if fam.area_m2(outside) > self.tol.noise_m2:
            for k in kids:
                for part in _polygons(shapely.difference(self.snapped[k], filled_parent, grid_size=g)):
                    if self.region(
                        "outside_parent",
                        "超出上级",
                        part,
                        fam,
                        [self.by_key[k].code],
                        f"{self.by_key[k].code} 有一部分在上级 {parent.code} 之外 (outside its parent)",
                        parent.code,
                    ):
                        found.append(part)
        return found

    def _overlaps(
        self, rows: list[AreaRecord], geoms: list[BaseGeometry], fam: _Family, parent: str | None
    ) -> list[BaseGeometry]:
        """Pairwise intersections of siblings through an STRtree; each connected part is one problem."""
        found: list[BaseGeometry] = []
        tree = shapely.STRtree(geoms)
        left, right = tree.query(geoms, predicate="intersects")
        for i, j in sorted({(int(a), int(b)) for a, b in zip(left, right) if a < b}):
            inter = shapely.intersection(geoms[i], geoms[j], grid_size=self.grid)
            for part in _polygons(inter):
                codes = sorted([rows[i].code, rows[j].code])
                if self.region("overlap", "重叠", part, fam, codes, f"{codes[0]} 与 {codes[1]} 重叠 (overlap)", parent):
                    found.append(part)
        return found

    def _cracks(self, fam: _Family, reported: list[BaseGeometry]) -> None:
        """Narrow gaps between leaves that no parent shows because they open onto the outside of the district:
        `shapely.coverage_is_valid` with a `gap_width` finds them, `coverage_invalid_edges` says which leaves."""
        w = self.tol.gap_width_m / M_PER_DEG
        leaves = [k for k in fam.keys if k not in self.children and not self.snapped[k].is_empty]
        if len(leaves) < 2 or w <= 0:
            return
        geoms = np.array([self.snapped[k] for k in leaves], dtype=object)
        if shapely.coverage_is_valid(geoms, gap_width=w):
            return
        edges = shapely.coverage_invalid_edges(geoms, gap_width=w)
        flagged = [(i, e) for i, e in enumerate(edges) if e is not None and not e.is_empty]
        if len(flagged) < 2:
            return
        cover = shapely.union_all(geoms, grid_size=self.grid)
        closed = shapely.buffer(shapely.buffer(cover, w / 2, quad_segs=4), -w / 2, quad_segs=4)
        known = shapely.union_all([cover, *reported], grid_size=self.grid)
        edge_tree = shapely.STRtree([e for _, e in flagged])
        near = NEAR_M / M_PER_DEG
        for part in _polygons(shapely.difference(closed, known, grid_size=self.grid)):
            hits = edge_tree.query(part, predicate="dwithin", distance=near)
            codes = sorted({self.by_key[leaves[flagged[int(h)][0]]].code for h in hits})
            if len(codes) >= 2:
                self.region(
                    "gap",
                    "空隙",
                    part,
                    fam,
                    codes,
                    f"{'、'.join(codes)} 之间有一条窄于 {self.tol.gap_width_m:g} m 的缝 (a narrow crack between them)",
                    _common_prefix_code(codes, self.records),
                )


def _common_prefix_code(codes: list[str], records: list[AreaRecord]) -> str | None:
    """The code of the smallest area whose code starts all of `codes` (their common ancestor), if any."""
    known = {r.code for r in records}
    prefix = codes[0]
    for code in codes[1:]:
        while not code.startswith(prefix):
            prefix = prefix[:-1]
    while prefix and prefix not in known:
        prefix = prefix[:-1]
    return prefix or None


def _point_of(geom: BaseGeometry) -> Point:
    if geom.is_empty:
        return Point()
    if shapely.is_valid(geom):
        return geom.representative_point()
    minx, miny, maxx, maxy = geom.bounds
    return Point((minx + maxx) / 2, (miny + maxy) / 2)


def _geojson(geom: BaseGeometry, area_m2: float | None, noise_m2: float) -> dict[str, Any]:
    """GeoJSON of a problem's place, rounded to 1e-7°; a region with no real area becomes a point on its outline."""
    if area_m2 is not None and area_m2 <= noise_m2 and not geom.is_empty:
        polys = _polygons(geom)
        geom = polys[0].exterior.interpolate(0.5, normalized=True) if polys else _point_of(geom)
    geom = shapely.transform(geom, lambda xy: np.round(xy, COORD_DIGITS))
    if geom.is_empty:
        return {"type": "GeometryCollection", "geometries": []}
    out: dict[str, Any] = _lists(shapely.geometry.mapping(geom))
    return out


def _lists(value: object) -> Any:
    """`mapping`'s tuples as lists, so that a report equals its own JSON round trip."""
    if isinstance(value, dict):
        return {k: _lists(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_lists(v) for v in value]
    return value
