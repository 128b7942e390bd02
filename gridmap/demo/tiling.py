"""The demo's area hierarchy: a real district outline cut into sub-districts, communities, grids and micro-grids.

Households are sampled from a density field (a dense urban core, a few secondary centres, a thin rural floor);
every level is cut from its parent by straight, street-like cuts at household quantiles, so grids are small and
regular in the core, large in the countryside, and hold about the same number of households each (the way real
grids are drawn). The leaves are then noded into an exact coverage and every parent is the exact union of its
children: no gaps, no overlaps, every child inside its parent.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from gridmap.demo.names import DISTRICTS, chinese_ordinal, unique_words
from gridmap.geo import crs as gcrs
from gridmap.geo.coverage import Piece, allocate, as_multipolygon, node_coverage, split_balanced, union_exact

GEODATA = Path(__file__).resolve().parents[2] / "geodata" / "districts"


@dataclass(frozen=True)
class DemoScale:
    """How many areas of each level, households, cases and service centres a demo district gets."""

    subdistricts: int
    communities: int
    grids: int
    microgrids: int
    households: int
    cases: int
    service_centres: int


# Guandu as the source reports describe it: 8 / 99 / 533 / 1,854, about 1.6 million residents, 140 centres.
FULL_SCALES = {
    "530111": DemoScale(8, 99, 533, 1854, 615_000, 50_000, 140),
    "140213": DemoScale(6, 40, 160, 480, 190_000, 8_000, 45),
    "511302": DemoScale(6, 36, 140, 420, 170_000, 7_000, 40),
    "320282": DemoScale(5, 30, 120, 360, 150_000, 6_000, 35),
}
SMALL_SCALE = DemoScale(2, 4, 10, 24, 12_000, 300, 6)


@dataclass
class DemoArea:
    """One generated area, geometry in the district's Gauss-Krüger metres."""

    level: str
    code: str
    name: str
    parent_code: str | None
    geom: BaseGeometry
    households: int = 0
    population: int = 0
    xy: np.ndarray = field(default_factory=lambda: np.empty((0, 2)))


def load_outline(adcode: str, geodata: Path = GEODATA) -> BaseGeometry:
    """The district outline in WGS84, converted from the GCJ-02 file shipped in geodata/."""
    path = geodata / f"{adcode}.geojson"
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in geodata.glob("*.geojson")))
        raise ValueError(f"district: no outline for {adcode!r}; available: {known}")
    gcj = shape(json.loads(path.read_text(encoding="utf-8")))
    return shapely.transform(gcj, lambda xy: np.column_stack(gcrs.gcj02_to_wgs84(xy[:, 0], xy[:, 1])))


def _sample_households(
    outline_m: BaseGeometry, core: tuple[float, float], n: int, rng: np.random.Generator
) -> np.ndarray:
    """`n` points inside the outline drawn from an urban density field centred on `core` (metres)."""
    minx, miny, maxx, maxy = outline_m.bounds
    span = max(maxx - minx, maxy - miny)
    centres = [(core, 0.10 * span, 1.0)]
    for _ in range(3):
        centres.append(((rng.uniform(minx, maxx), rng.uniform(miny, maxy)), 0.05 * span, 0.35))
    out: list[np.ndarray] = []
    shapely.prepare(outline_m)
    while sum(len(o) for o in out) < n:
        cand = np.column_stack([rng.uniform(minx, maxx, 4 * n), rng.uniform(miny, maxy, 4 * n)])
        dens = np.full(len(cand), 0.02)
        for (cx, cy), sigma, peak in centres:
            dens += peak * np.exp(-((cand[:, 0] - cx) ** 2 + (cand[:, 1] - cy) ** 2) / (2 * sigma**2))
        keep = (rng.uniform(0, 1.4, len(cand)) < dens) & shapely.contains_xy(outline_m, cand[:, 0], cand[:, 1])
        out.append(cand[keep])
    return np.concatenate(out)[:n]


def _ordered(pieces: list[Piece], parent_area: float) -> list[Piece]:
    """Pieces numbered north→south in rows, west→east within a row (DB11 numbering)."""
    band = math.sqrt(max(parent_area, 1.0) / max(len(pieces), 1))
    cents = [p.geom.centroid for p in pieces]
    top = max(c.y for c in cents)
    order = sorted(range(len(pieces)), key=lambda i: (round((top - cents[i].y) / band), cents[i].x))
    return [pieces[i] for i in order]


def build_hierarchy(adcode: str, scale: DemoScale, seed: int = 530111) -> tuple[list[DemoArea], int]:
    """Generate the five levels for one district; returns the areas (metres) and the zone's EPSG code."""
    rng = np.random.default_rng(seed)
    info = DISTRICTS.get(adcode, {"name": f"{adcode}区", "subdistricts": [], "centre": None})
    outline = load_outline(adcode)
    epsg = gcrs.gk_zone_epsg(outline.centroid.x)
    fwd, _ = gcrs.projector(epsg)
    outline_m = shapely.make_valid(
        shapely.transform(outline, lambda xy: np.column_stack(fwd.transform(xy[:, 0], xy[:, 1])))
    )
    centre = info["centre"] or (outline.centroid.x, outline.centroid.y)
    core = fwd.transform(*centre)
    n_points = max(30 * scale.microgrids, 3000)
    xy = _sample_households(outline_m, core, n_points, rng)
    street_angle = rng.uniform(-0.25, 0.25)
    root = Piece(outline_m, xy, np.ones(len(xy)))
    district = DemoArea("district", adcode, info["name"], None, outline_m, xy=xy)
    areas = [district]
    levels = [
        ("subdistrict", scale.subdistricts, 3),
        ("community", scale.communities, 3),
        ("grid", scale.grids, 3),
        ("microgrid", scale.microgrids, 2),
    ]
    parents: list[tuple[DemoArea, Piece]] = [(district, root)]
    used_words: set[str] = set()
    for level, total, width in levels:
        counts = allocate(total, [p.total for _, p in parents]) if len(parents) > 1 else [total]
        nxt: list[tuple[DemoArea, Piece]] = []
        for (parent, piece), k in zip(parents, counts):
            children = _ordered(split_balanced(piece, k, street_angle, rng), piece.geom.area)
            names = _child_names(level, parent, len(children), info, rng, used_words)
            for i, (child, name) in enumerate(zip(children, names), start=1):
                area = DemoArea(level, f"{parent.code}{i:0{width}d}", name, parent.code, child.geom, xy=child.xy)
                areas.append(area)
                nxt.append((area, child))
        parents = nxt
    _make_exact(areas)
    _count_households(areas, scale.households, n_points, rng)
    return areas, epsg


def _child_names(
    level: str, parent: DemoArea, n: int, info: dict[str, Any], rng: np.random.Generator, used: set[str]
) -> list[str]:
    if level == "subdistrict":
        real = list(info.get("subdistricts", []))
        extra = [f"{w}街道" for w in unique_words(rng, max(0, n - len(real)), used)]
        return (real + extra)[:n]
    if level == "community":
        return [f"{w}社区" for w in unique_words(rng, n, used)]
    if level == "grid":
        return [f"{parent.name}第{chinese_ordinal(i)}网格" for i in range(1, n + 1)]
    return [f"{parent.name}{i}号微网格" for i in range(1, n + 1)]


def _make_exact(areas: list[DemoArea]) -> None:
    """Node the leaves into an exact coverage, then rebuild every parent as the union of its children."""
    leaves = [a for a in areas if a.level == "microgrid"]
    for leaf, geom in zip(leaves, node_coverage([a.geom for a in leaves])):
        leaf.geom = geom
    by_code = {a.code: a for a in areas}
    children: dict[str, list[DemoArea]] = {}
    for a in areas:
        if a.parent_code:
            children.setdefault(a.parent_code, []).append(a)
    for level in ("grid", "community", "subdistrict", "district"):
        for a in areas:
            if a.level == level:
                a.geom = union_exact([c.geom for c in children[a.code]])
    assert all(not by_code[c].geom.is_empty for c in by_code), "an area lost all its geometry"


def _count_households(areas: list[DemoArea], total: int, n_points: int, rng: np.random.Generator) -> None:
    """Households per micro-grid from its share of sample points, population at 2.3-2.9 per household."""
    per_point = total / n_points
    leaves = [a for a in areas if a.level == "microgrid"]
    counts = allocate(total, [max(len(a.xy), 0.5) * per_point for a in leaves], minimum=1)
    for leaf, households in zip(leaves, counts):
        leaf.households = households
        leaf.population = int(round(households * rng.uniform(2.3, 2.9)))
    by_code = {a.code: a for a in areas}
    for a in sorted(areas, key=lambda a: -len(a.code)):
        if a.parent_code:
            parent = by_code[a.parent_code]
            parent.households += a.households
            parent.population += a.population


def to_wgs84(areas: list[DemoArea], epsg: int) -> list[BaseGeometry]:
    """Every area's geometry as a WGS84 MultiPolygon; shared vertices map to identical coordinates."""
    _, back = gcrs.projector(epsg)
    geoms = [a.geom for a in areas]
    out = shapely.transform(
        np.array(geoms, dtype=object), lambda xy: np.column_stack(back.transform(xy[:, 0], xy[:, 1]))
    )
    return [as_multipolygon(g) for g in out]
