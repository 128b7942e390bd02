"""Exact tilings: splitting a polygon along street-like lines, noding a set of polygons into a clean coverage,
and checking a tiling for gaps, overlaps and nesting. All of it works in metres (a Gauss-Krüger zone).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import shapely
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry


def as_multipolygon(geom: BaseGeometry) -> MultiPolygon:
    """Keep only the polygonal parts of `geom`, as a MultiPolygon."""
    if isinstance(geom, MultiPolygon):
        return geom
    if isinstance(geom, Polygon):
        return MultiPolygon([geom])
    parts = [g for g in getattr(geom, "geoms", []) if isinstance(g, (Polygon, MultiPolygon))]
    polys: list[Polygon] = []
    for part in parts:
        polys.extend(part.geoms if isinstance(part, MultiPolygon) else [part])
    return MultiPolygon(polys)


def half_plane(origin: tuple[float, float], angle: float, offset: float, reach: float) -> Polygon:
    """The half-plane {p : (p - origin) · n <= offset} for the unit normal n at `angle`, clipped to `reach`."""
    nx, ny = math.cos(angle), math.sin(angle)
    tx, ty = -ny, nx
    cx, cy = origin[0] + nx * offset, origin[1] + ny * offset
    return Polygon(
        [
            (cx + tx * reach, cy + ty * reach),
            (cx - tx * reach, cy - ty * reach),
            (cx - tx * reach - nx * 2 * reach, cy - ty * reach - ny * 2 * reach),
            (cx + tx * reach - nx * 2 * reach, cy + ty * reach - ny * 2 * reach),
        ]
    )


@dataclass
class Piece:
    """A polygon and the weighted sample points (households) that fall inside it."""

    geom: BaseGeometry
    xy: np.ndarray
    weight: np.ndarray

    @property
    def total(self) -> float:
        return float(self.weight.sum())


def split_balanced(piece: Piece, k: int, street_angle: float, rng: np.random.Generator) -> list[Piece]:
    """Split `piece` into `k` pieces of about equal weight by straight cuts, like blocks between streets.

    Each cut runs along one of the two street directions (`street_angle` and its perpendicular), across the
    longer extent of the points, at the weighted quantile that gives each side its share of the `k` pieces.
    """
    if k <= 1 or len(piece.xy) < 2:
        return [piece]
    k_left = k // 2
    angles = (street_angle, street_angle + math.pi / 2)
    spreads = [np.ptp(piece.xy @ np.array([math.cos(a), math.sin(a)])) for a in angles]
    angle = angles[int(np.argmax(spreads))] + rng.normal(0.0, 0.03)
    normal = np.array([math.cos(angle), math.sin(angle)])
    origin = piece.xy.mean(axis=0)
    proj = (piece.xy - origin) @ normal
    order = np.argsort(proj)
    cum = np.cumsum(piece.weight[order])
    target = cum[-1] * k_left / k
    idx = int(np.clip(np.searchsorted(cum, target), 0, len(order) - 2))
    offset = 0.5 * (proj[order[idx]] + proj[order[idx + 1]])
    minx, miny, maxx, maxy = piece.geom.bounds
    reach = 4 * (max(maxx - minx, maxy - miny) + abs(offset)) + 1000.0
    cutter = half_plane((float(origin[0]), float(origin[1])), angle, offset, reach)
    left_geom = piece.geom.intersection(cutter)
    right_geom = piece.geom.difference(cutter)
    mask = proj <= offset
    if left_geom.is_empty or right_geom.is_empty or mask.all() or not mask.any():
        return [piece]
    left = Piece(left_geom, piece.xy[mask], piece.weight[mask])
    right = Piece(right_geom, piece.xy[~mask], piece.weight[~mask])
    return split_balanced(left, k_left, street_angle, rng) + split_balanced(right, k - k_left, street_angle, rng)


def allocate(total: int, weights: list[float], minimum: int = 1) -> list[int]:
    """Share `total` among `weights`: `minimum` each, then what is left in proportion to the weights (largest
    remainders first, ties to the earlier part), summing exactly to `total`.

    Examples
    --------
    >>> allocate(10, [1, 1, 2])  # 1 each, then 7 shared 1.75 : 1.75 : 3.5
    [3, 3, 4]
    >>> allocate(4, [0, 0])
    [2, 2]
    """
    n = len(weights)
    if total < minimum * n:
        raise ValueError(f"cannot give {n} parts at least {minimum} each out of {total}")
    w = np.asarray(weights, dtype=float)
    w = w / w.sum() if w.sum() > 0 else np.full(n, 1.0 / n)
    spare = total - minimum * n
    raw = w * spare
    counts = np.floor(raw).astype(int)
    remainder = spare - counts.sum()
    for i in np.argsort(-(raw - counts), kind="stable")[:remainder]:
        counts[i] += 1
    return [int(c) + minimum for c in counts]


def node_coverage(polygons: list[BaseGeometry], grid_size: float = 0.01) -> list[MultiPolygon]:
    """Rebuild `polygons` (a tiling up to rounding) as an exact coverage whose neighbours share vertices.

    All boundaries are noded together on a `grid_size` grid and polygonised; each face goes to the input
    polygon that contains its interior point. Shared edges then consist of identical vertices, so the result
    has no slivers, gaps or overlaps, and unions of neighbours are exact.
    """
    lines = shapely.union_all([p.boundary for p in polygons], grid_size=grid_size)
    faces = list(shapely.get_parts(shapely.polygonize(shapely.get_parts(lines))))
    tree = shapely.STRtree(polygons)
    owners: list[list[Polygon]] = [[] for _ in polygons]
    for face in faces:
        point = face.point_on_surface()
        hits = tree.query(point, predicate="intersects")
        if len(hits) == 0:
            continue  # a hole of the input (outside the outline)
        # Rounding may leave a face inside two inputs; it goes to the one it lies deepest in.
        best = max(hits, key=lambda i: polygons[i].boundary.distance(point))
        owners[int(best)].append(face)
    return [as_multipolygon(shapely.coverage_union_all(parts)) if parts else MultiPolygon() for parts in owners]


def union_exact(parts: list[BaseGeometry]) -> MultiPolygon:
    """Union of pieces of an exact coverage (shared vertices), without re-noding."""
    return as_multipolygon(shapely.coverage_union_all(parts))


@dataclass
class TilingReport:
    """How far a set of children is from exactly tiling its parent, in square metres."""

    gap_m2: float
    overlap_m2: float
    outside_m2: float

    def is_exact(self, tolerance_m2: float = 1e-3) -> bool:
        return max(self.gap_m2, self.overlap_m2, self.outside_m2) <= tolerance_m2


def check_tiling(parent: BaseGeometry, children: list[BaseGeometry]) -> TilingReport:
    """Measure gaps (parent not covered), overlaps (sum of child areas beyond their union), and parts outside."""
    union = shapely.union_all(children)
    overlap = sum(c.area for c in children) - union.area
    return TilingReport(
        gap_m2=parent.difference(union).area,
        overlap_m2=max(overlap, 0.0),
        outside_m2=union.difference(parent).area,
    )
