"""Point → area chain: the lookup index of one boundary generation, its rules and its quality flags.

**Which leaf.** The predicate is *covers*: a point on a boundary belongs to every leaf whose boundary it is on.
When several leaves cover a point (a shared edge or vertex), the **tie-break rule** is: *the leaf with the smallest
code wins* (`TIE_RULE`). Codes are numbered north→south, west→east, so on a shared edge the northern/western
neighbour takes the case; and because a leaf's code starts with its parents' codes, the winner's grid, community
and sub-district are also the smallest among the candidates. The other covering leaves are reported as
`candidates` and the answer is flagged `on_boundary`. A point covered by no leaf gets the flag
`outside_all_grids`; with `nearest_m` it is given the nearest leaf within that distance (method `nearest`).

**How.** The reference is GEOS: an STRtree over the leaves, predicate covers (`leaf_codes_at`). The fast path is
`CellIndex` (see `gridmap.geo.cells`), which answers exactly the same for every point more than 1e-9° from a
boundary and hands the others back to the reference, so batch and single answers equal the reference, ties
included.

**Near a boundary.** With `near_m` (or a GPS accuracy radius, whichever is larger) the other leaves within that
distance are listed with their distances in metres and the answer is flagged `near_boundary`. Distances use a
local equirectangular projection around the point (error well under 1 % at these distances).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import shapely
from shapely.geometry import Point

from gridmap.geo.cells import STATUS_UNRESOLVED, CellIndex

FLAG_ON_BOUNDARY = "on_boundary"
FLAG_NEAR_BOUNDARY = "near_boundary"
FLAG_OUTSIDE = "outside_all_grids"
FLAG_NEAREST = "assigned_to_nearest"
TIE_RULE = "smallest_code_wins"

M_PER_DEG_LAT = 110_574.0
M_PER_DEG_LON_EQ = 111_320.0


@dataclass(frozen=True)
class AreaRef:
    """The identifying part of an area: enough to print a chain."""

    id: int
    level: str
    code: str
    name: str
    parent_code: str | None

    def as_dict(self) -> dict[str, Any]:
        return {"level": self.level, "code": self.code, "name": self.name}


@dataclass
class Location:
    """The answer to 'where is this point': its chain of areas and the flags that qualify it."""

    lon: float
    lat: float
    chain: list[AreaRef] = field(default_factory=list)
    candidates: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    near: list[dict[str, Any]] = field(default_factory=list)
    method: str = "coordinates"
    tie_rule: str | None = None
    distance_m: float | None = None

    def at_level(self, level: str) -> AreaRef | None:
        """The chain's area of `level`, if any."""
        return next((a for a in self.chain if a.level == level), None)

    @property
    def leaf_code(self) -> str | None:
        return self.chain[-1].code if self.chain else None


def metres_per_degree(lat: float) -> tuple[float, float]:
    """Metres per degree of longitude and of latitude at `lat` (spherical, good to ~0.5 %)."""
    return M_PER_DEG_LON_EQ * math.cos(math.radians(lat)), M_PER_DEG_LAT


def local_distance_m(geoms: npt.ArrayLike, lon: float, lat: float) -> np.ndarray:
    """Distance in metres from (lon, lat) to each geometry, in a local equirectangular frame at the point."""
    kx, ky = metres_per_degree(lat)
    local = shapely.transform(np.asarray(geoms, dtype=object), lambda xy: (xy - (lon, lat)) * (kx, ky))
    return shapely.distance(local, Point(0.0, 0.0))


class AreaIndex:
    """An immutable in-memory index of one generation's areas; build a new one when boundaries change."""

    def __init__(
        self,
        areas: list[AreaRef],
        geoms: list[shapely.Geometry],
        generation_id: int | None = None,
        cells_per_leaf: float = 256.0,
    ):
        self.generation_id = generation_id
        self.by_code = {a.code: a for a in areas}
        codes = {a.parent_code for a in areas if a.parent_code}
        # leaves in code order: the position of a leaf is its rank under the tie-break rule
        leaf_idx = sorted((i for i, a in enumerate(areas) if a.code not in codes), key=lambda i: areas[i].code)
        self.leaves = [areas[i] for i in leaf_idx]
        self.leaf_codes = np.array([a.code for a in self.leaves], dtype=object)
        self.leaf_codes_sorted = self.leaf_codes.astype(str)
        self.leaf_geoms = np.array([geoms[i] for i in leaf_idx], dtype=object)
        shapely.prepare(self.leaf_geoms)
        self.leaf_boundaries = shapely.boundary(self.leaf_geoms)
        self.tree = shapely.STRtree(self.leaf_geoms)
        self.cells = CellIndex(self.leaf_geoms, cells_per_leaf=cells_per_leaf)
        self.bounds = tuple(shapely.total_bounds(self.leaf_geoms)) if len(self.leaves) else None

    def __len__(self) -> int:
        return len(self.leaves)

    def __getstate__(self) -> dict[str, Any]:
        """Pickled with the leaves as one array of WKB, without what is derived from them (boundaries, STRtree):
        unpickling then decodes them in one vectorised call instead of one call per geometry (~50 ms for the
        1,854 leaves of the full demo, in every process that loads the index file)."""
        state = self.__dict__.copy()
        state["leaf_geoms"] = shapely.to_wkb(self.leaf_geoms)
        del state["leaf_boundaries"], state["tree"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.leaf_geoms = shapely.from_wkb(state["leaf_geoms"])
        shapely.prepare(self.leaf_geoms)
        self.leaf_boundaries = shapely.boundary(self.leaf_geoms)
        self.tree = shapely.STRtree(self.leaf_geoms)

    def chain_of(self, code: str) -> list[AreaRef]:
        """The area with `code` and all its ancestors, outermost first."""
        out: list[AreaRef] = []
        ref = self.by_code.get(code)
        while ref is not None:
            out.append(ref)
            ref = self.by_code.get(ref.parent_code) if ref.parent_code else None
        return out[::-1]

    # --- which leaf -------------------------------------------------------------------------------------------

    def leaf_codes_at(self, lon: float, lat: float) -> list[str]:
        """Reference: codes of every leaf covering the point (GEOS), smallest (the tie-break winner) first."""
        hits = self.tree.query(Point(lon, lat), predicate="covered_by")
        return sorted(self.leaves[i].code for i in hits)

    def leaf_at(self, lon: float, lat: float) -> int:
        """Fast single lookup: the position in `self.leaves` of the winning leaf, -1 where none covers the point."""
        leaf, status = self.cells.query_one(lon, lat)
        if status == STATUS_UNRESOLVED:
            codes = self.leaf_codes_at(lon, lat)
            return int(np.searchsorted(self.leaf_codes_sorted, codes[0])) if codes else -1
        return leaf

    def covering(self, lon: float, lat: float) -> list[str]:
        """Codes of every leaf covering the point, winner first: the fast path, with the reference near edges."""
        leaf, status = self.cells.query_one(lon, lat)
        if status == STATUS_UNRESOLVED:
            return self.leaf_codes_at(lon, lat)
        return [self.leaves[leaf].code] if leaf >= 0 else []

    def locate_many(self, lon: npt.ArrayLike, lat: npt.ArrayLike) -> np.ndarray:
        """Position in `self.leaves` of the winning leaf for each point, -1 where none covers it.

        Equal to the reference for every point: the cell index answers, and the points it cannot decide
        (within 1e-9° of an edge) are answered by GEOS."""
        x = np.ascontiguousarray(lon, dtype=np.float64)
        y = np.ascontiguousarray(lat, dtype=np.float64)
        out, status = self.cells.query(x, y)
        hard = np.flatnonzero(status == STATUS_UNRESOLVED)
        if len(hard):
            out[hard] = self._reference_many(x[hard], y[hard])
        return out.astype(np.int64)

    def locate_many_clear(self, lon: npt.ArrayLike, lat: npt.ArrayLike, margin: float) -> tuple[np.ndarray, np.ndarray]:
        """`locate_many`, and which points no boundary comes within `margin` degrees of (`CellIndex.clear_of`:
        in an interior cell, farther than `margin` from its sides), found in the same pass over the cells."""
        x = np.ascontiguousarray(lon, dtype=np.float64)
        y = np.ascontiguousarray(lat, dtype=np.float64)
        clear = np.empty(len(x), bool)
        out, status = self.cells.query(x, y, clear=clear, margin=margin)
        hard = np.flatnonzero(status == STATUS_UNRESOLVED)
        if len(hard):
            out[hard] = self._reference_many(x[hard], y[hard])
        return out.astype(np.int64), clear

    def locate_many_reference(self, lon: npt.ArrayLike, lat: npt.ArrayLike) -> np.ndarray:
        """`locate_many` computed by GEOS alone (STRtree, covers, smallest code): the yardstick of the tests."""
        return self._reference_many(np.asarray(lon, float), np.asarray(lat, float))

    def _reference_many(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        out = np.full(len(lon), -1, dtype=np.int64)
        ok = ~(np.isnan(lon) | np.isnan(lat))
        pts = shapely.points(lon[ok], lat[ok])
        pt_idx, leaf_idx = self.tree.query(pts, predicate="covered_by")
        if len(pt_idx):
            # leaves are in code order, so the smallest position is the tie-break winner
            order = np.lexsort((leaf_idx, pt_idx))
            pt_sorted, leaf_sorted = pt_idx[order], leaf_idx[order]
            first = np.ones(len(pt_sorted), bool)
            first[1:] = pt_sorted[1:] != pt_sorted[:-1]
            out[np.flatnonzero(ok)[pt_sorted[first]]] = leaf_sorted[first]
        return out

    def leaves_within(self, lon: float, lat: float, distance_m: float) -> list[tuple[str, float]]:
        """Leaves within `distance_m` of the point with their distances in metres, nearest first."""
        if distance_m <= 0 or not len(self.leaves):
            return []
        kx, ky = metres_per_degree(lat)
        radius_deg = distance_m / min(kx, ky)
        hits = self.tree.query(Point(lon, lat), predicate="dwithin", distance=radius_deg)
        if not len(hits):
            return []
        dist = local_distance_m(self.leaf_geoms[hits], lon, lat)
        pairs = sorted((float(d), self.leaves[i].code) for i, d in zip(hits, dist) if d <= distance_m)
        return [(code, round(d, 2)) for d, code in pairs]

    # --- the answer for people ----------------------------------------------------------------------------------

    def locate(
        self, lon: float, lat: float, *, near_m: float = 0.0, accuracy_m: float | None = None, nearest_m: float = 0.0
    ) -> Location:
        """Locate one WGS84 point, with flags.

        Examples
        --------
        >>> from shapely.geometry import box
        >>> refs = [AreaRef(1, "grid", "A", "West", None), AreaRef(2, "grid", "B", "East", None)]
        >>> index = AreaIndex(refs, [box(0, 0, 1, 1), box(1, 0, 2, 1)])
        >>> index.locate(1.0, 0.5).leaf_code, index.locate(1.0, 0.5).flags
        ('A', ['on_boundary'])
        >>> index.locate(5, 5).flags
        ['outside_all_grids']
        """
        location = self.location_from_codes(lon, lat, self.covering(lon, lat))
        radius = max(near_m or 0.0, accuracy_m or 0.0)
        if (
            location.chain
            and radius > 0
            and location.leaf_code is not None
            and not self._farther_than(lon, lat, location.leaf_code, radius)
        ):
            own = {location.leaf_code, *location.candidates}
            location.near = [
                {"code": c, "distance_m": d} for c, d in self.leaves_within(lon, lat, radius) if c not in own
            ]
            if location.near:
                location.flags.append(FLAG_NEAR_BOUNDARY)
        elif not location.chain and nearest_m > 0:
            near = self.leaves_within(lon, lat, nearest_m)
            if near:
                code, dist = near[0]
                location.chain = self.chain_of(code)
                location.method = "nearest"
                location.distance_m = dist
                location.flags.append(FLAG_NEAREST)
                location.near = [{"code": c, "distance_m": d} for c, d in near[1:]]
        return location

    def _farther_than(self, lon: float, lat: float, code: str, radius_m: float) -> bool:
        """True when the point is surely more than `radius_m` from its own leaf's boundary (a cheap pre-check:
        any other leaf within the radius would have to cross that boundary)."""
        i = int(np.searchsorted(self.leaf_codes_sorted, code))
        kx, ky = metres_per_degree(lat)
        return float(shapely.distance(self.leaf_boundaries[i], Point(lon, lat))) * min(kx, ky) > radius_m * 1.01

    def location_from_codes(self, lon: float, lat: float, codes: list[str]) -> Location:
        """Apply the tie-break rule and the flags to a sorted list of covering leaf codes."""
        if not codes:
            return Location(lon, lat, flags=[FLAG_OUTSIDE])
        if len(codes) > 1:
            return Location(
                lon,
                lat,
                chain=self.chain_of(codes[0]),
                candidates=codes[1:],
                flags=[FLAG_ON_BOUNDARY],
                tie_rule=TIE_RULE,
            )
        return Location(lon, lat, chain=self.chain_of(codes[0]))

    def distance_to_service_area_m(self, lon: float, lat: float) -> float:
        """Metres from the point to the bounding box of all leaves (0 inside it)."""
        if self.bounds is None:
            return math.inf
        minx, miny, maxx, maxy = self.bounds
        kx, ky = metres_per_degree(lat)
        dx = max(minx - lon, 0.0, lon - maxx) * kx
        dy = max(miny - lat, 0.0, lat - maxy) * ky
        return math.hypot(dx, dy)
