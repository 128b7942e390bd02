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
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

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


class AreaColumns(NamedTuple):
    """AreaRefs as columns: what `AreaIndex` is built from without an object per area."""

    ids: Sequence[int]
    levels: Sequence[str]
    codes: Sequence[str]
    names: Sequence[str]
    parent_codes: Sequence[str | None]


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


def _utf8(values: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Strings as one UTF-8 buffer and their offsets (as Arrow lays out a string column)."""
    return _concat([v.encode() for v in values])


def _concat(parts: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """The parts as one read-only byte array (a view of their join, not a copy) and their offsets."""
    offsets = np.zeros(len(parts) + 1, np.int64)
    np.cumsum(np.fromiter(map(len, parts), np.int64, len(parts)), out=offsets[1:])
    return np.frombuffer(b"".join(parts), dtype=np.uint8), offsets


def local_distance_m(geoms: npt.ArrayLike, lon: float, lat: float) -> np.ndarray:
    """Distance in metres from (lon, lat) to each geometry, in a local equirectangular frame at the point."""
    kx, ky = metres_per_degree(lat)
    local = shapely.transform(np.asarray(geoms, dtype=object), lambda xy: (xy - (lon, lat)) * (kx, ky))
    return shapely.distance(local, Point(0.0, 0.0))


class AreasByCode(Mapping[str, AreaRef]):
    """Every area of an index by its code, each AreaRef made on first use and kept: a lookup by the codes' sorted
    array (`AreaIndex.area_at`), not a dict of every area made at once (a province's 260,000 took 1.2 s, in one
    step holding the interpreter: a starting server's warm-up)."""

    def __init__(self, index: AreaIndex):
        self._index = index
        self._made: dict[str, AreaRef] = {}

    def __getitem__(self, code: str) -> AreaRef:
        ref = self._made.get(code)
        if ref is None:
            k = self._index.area_at(code) if isinstance(code, str) else -1
            if k < 0:
                raise KeyError(code)
            ref = self._made[code] = self._index._ref(k)  # two threads at once make equal refs; either is kept
        return ref

    def __contains__(self, code: object) -> bool:
        return isinstance(code, str) and (code in self._made or self._index.area_at(code) >= 0)

    def __iter__(self) -> Iterator[str]:
        return iter(self._index.area_codes.tolist())

    def __len__(self) -> int:
        return len(self._index.area_codes)


class AreaIndex:
    """An immutable in-memory index of one generation's areas; build a new one when boundaries change.

    Held as columns (numpy arrays: the areas in code order, their levels, names and parents; the leaves' WKB; the
    cell raster), so that an index file (`generations.shared_index`) loads without making an object per area or a
    geometry per leaf. What is derived for people and for GEOS — `leaves` and `by_code` (AreaRef objects),
    `leaf_geoms`, `leaf_boundaries`, the STRtree `tree` — is made on first use, once per index; a batch that only
    locates points (`gridmap.locating.batch`) never needs them but for the few points on or near an edge, whose
    candidate leaves it decodes alone (`geoms_of`)."""

    def __init__(
        self,
        areas: Sequence[AreaRef] | AreaColumns,
        geoms: Sequence[shapely.Geometry | bytes | None],
        generation_id: int | None = None,
        cells_per_leaf: float = 256.0,
    ):
        """`areas`: AreaRefs, or the same as columns (`AreaColumns`, as a query returns them: no object per area);
        `geoms[i]` is the geometry of area i (shapely, or WKB/EWKB bytes); only the leaves' are used."""
        if isinstance(areas, AreaColumns):
            self._build(*areas, geoms, generation_id, cells_per_leaf)
        else:
            self._build(
                [a.id for a in areas],
                [a.level for a in areas],
                [a.code for a in areas],
                [a.name for a in areas],
                [a.parent_code for a in areas],
                geoms,
                generation_id,
                cells_per_leaf,
            )

    def _build(
        self,
        ids: Sequence[int],
        levels: Sequence[str],
        codes: Sequence[str],
        names: Sequence[str],
        parent_codes: Sequence[str | None],
        geoms: Sequence[shapely.Geometry | bytes | None],
        generation_id: int | None,
        cells_per_leaf: float,
    ) -> None:
        self.generation_id = generation_id
        given = np.array(list(codes), dtype=str) if len(codes) else np.zeros(0, "U1")
        parents_given = np.array([p or "" for p in parent_codes], dtype=str) if len(codes) else np.zeros(0, "U1")
        # the areas in code order; of several with one code the last given, as a dict by code keeps it
        order = np.argsort(given, kind="stable")
        last = np.ones(len(order), bool)
        last[:-1] = given[order][1:] != given[order][:-1]
        keep = order[last]
        self.area_codes = given[keep]
        self.area_ids = np.asarray(ids, dtype=np.int64)[keep] if len(keep) else np.zeros(0, np.int64)
        level_of = np.array(list(levels), dtype=str)[keep] if len(keep) else np.zeros(0, "U1")
        level_names, level_idx = np.unique(level_of, return_inverse=True)
        self.level_names: tuple[str, ...] = tuple(str(v) for v in level_names)
        self.area_levels = level_idx.astype(np.int8 if len(level_names) < 128 else np.int32)
        self.area_parent_codes = parents_given[keep]
        at = np.searchsorted(self.area_codes, self.area_parent_codes)
        at = np.minimum(at, max(len(keep) - 1, 0))
        found = (
            (self.area_parent_codes != "") & (self.area_codes[at] == self.area_parent_codes) if len(keep) else at > 0
        )
        self.area_parents = np.where(found, at, -1).astype(np.int32)
        names_kept = [names[i] for i in keep.tolist()]
        self._name_buf, self._name_off = _utf8(names_kept)
        # leaves: areas no area names as its parent; in code order, so a leaf's position is its rank under the
        # tie-break rule
        parent_set = np.unique(parents_given[parents_given != ""])
        self.leaf_area = np.flatnonzero(~np.isin(self.area_codes, parent_set)).astype(np.int32)
        self.leaf_codes_sorted = self.area_codes[self.leaf_area]
        leaf_given = [geoms[i] for i in keep[self.leaf_area].tolist()]
        wkb = np.array([g if isinstance(g, (bytes, bytearray, memoryview)) else None for g in leaf_given], dtype=object)
        leaf_geoms = np.empty(len(leaf_given), dtype=object)
        leaf_geoms[:] = leaf_given
        as_bytes = np.flatnonzero(wkb != None)  # noqa: E711 (elementwise)
        if len(as_bytes):
            leaf_geoms[as_bytes] = shapely.from_wkb(np.array([bytes(b) for b in wkb[as_bytes]], dtype=object))
            wkb[as_bytes] = [bytes(b) for b in wkb[as_bytes]]
        shaped = np.flatnonzero(wkb == None)  # noqa: E711
        if len(shaped):
            wkb[shaped] = shapely.to_wkb(leaf_geoms[shaped])
        self._wkb_buf, self._wkb_off = _concat(wkb.tolist())
        del wkb
        self.cells = CellIndex(leaf_geoms, cells_per_leaf=cells_per_leaf)
        self.bounds = tuple(shapely.total_bounds(leaf_geoms)) if len(leaf_geoms) else None
        self._init_lazy()
        self._lazy["leaf_geoms_raw"] = leaf_geoms  # decoded already: kept for `leaf_geoms` and `geoms_of`

    def _init_lazy(self) -> None:
        self._lazy: dict[str, Any] = {}
        self._lazy_lock = threading.RLock()

    def _once(self, name: str, make: Callable[[], Any]) -> Any:
        """A derived value made on first use (under a lock: server threads share the index)."""
        value = self._lazy.get(name)
        if value is None:
            with self._lazy_lock:
                value = self._lazy.get(name)
                if value is None:
                    value = make()
                    self._lazy[name] = value
        return value

    def __len__(self) -> int:
        return len(self.leaf_area)

    def __getstate__(self) -> dict[str, Any]:
        """Pickled as its arrays (protocol 5 hands them out of band: `shared_index` writes each to a file that
        processes memory-map), without anything derived from them."""
        state = self.__dict__.copy()
        del state["_lazy"], state["_lazy_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._init_lazy()

    # --- what is made on first use ------------------------------------------------------------------------------

    def _ref(self, k: int) -> AreaRef:
        parent = str(self.area_parent_codes[k])
        return AreaRef(
            int(self.area_ids[k]),
            self.level_names[int(self.area_levels[k])],
            str(self.area_codes[k]),
            self.area_name(k),
            parent or None,
        )

    def area_name(self, k: int) -> str:
        """The name of the area at position `k` (in code order)."""
        return bytes(self._name_buf[self._name_off[k] : self._name_off[k + 1]]).decode()

    def area_at(self, code: str) -> int:
        """Position of the area with `code` among the areas in code order, or -1."""
        k = int(np.searchsorted(self.area_codes, code))
        return k if k < len(self.area_codes) and self.area_codes[k] == code else -1

    @property
    def by_code(self) -> AreasByCode:
        """Every area by its code (a mapping whose AreaRefs are made as they are asked for)."""
        made: AreasByCode = self._once("by_code", lambda: AreasByCode(self))
        return made

    @property
    def leaves(self) -> list[AreaRef]:
        """The leaves in code order (the tie-break order): `locate_many` answers positions in this list."""
        made: list[AreaRef] = self._once("leaves", lambda: [self._ref(k) for k in self.leaf_area.tolist()])
        return made

    @property
    def leaf_codes(self) -> np.ndarray:
        """The leaves' codes as an object array (Python strings), in code order."""
        made: np.ndarray = self._once("leaf_codes", lambda: self.leaf_codes_sorted.astype(object))
        return made

    def _decoded(self) -> np.ndarray:
        def decode() -> np.ndarray:
            geoms: np.ndarray = shapely.from_wkb(self._wkb_slices(np.arange(len(self))))
            return geoms

        made: np.ndarray = self._once("leaf_geoms_raw", decode)
        return made

    @property
    def leaf_geoms(self) -> np.ndarray:
        """The leaves' geometries (prepared), in code order."""

        def prepared() -> np.ndarray:
            geoms = self._decoded()
            shapely.prepare(geoms)
            return geoms

        made: np.ndarray = self._once("leaf_geoms", prepared)
        return made

    @property
    def leaf_boundaries(self) -> np.ndarray:
        made: np.ndarray = self._once("leaf_boundaries", lambda: shapely.boundary(self._decoded()))
        return made

    @property
    def tree(self) -> shapely.STRtree:
        """An STRtree over the leaves (the GEOS reference)."""
        made: shapely.STRtree = self._once("tree", lambda: shapely.STRtree(self.leaf_geoms))
        return made

    def geoms_of(self, leaves: npt.ArrayLike) -> np.ndarray:
        """The geometries of the leaves at these positions: decoded alone when the whole set is not decoded yet
        (a batch needs a handful, for the points on an edge)."""
        idx = np.asarray(leaves, dtype=np.int64)
        whole = self._lazy.get("leaf_geoms_raw")
        if whole is not None:
            return np.asarray(whole[idx], dtype=object)
        if not len(idx):
            return np.empty(0, dtype=object)
        unique, back = np.unique(idx, return_inverse=True)
        decoded: np.ndarray = shapely.from_wkb(self._wkb_slices(unique))
        return np.asarray(decoded[back], dtype=object)

    def _wkb_slices(self, idx: np.ndarray) -> np.ndarray:
        buf, off = self._wkb_buf, self._wkb_off
        out = np.empty(len(idx), dtype=object)
        out[:] = [buf[off[i] : off[i + 1]].tobytes() for i in idx.tolist()]
        return out

    def leaf_level_areas(self, level: str, *, innermost: bool = True) -> np.ndarray:
        """Per leaf, the position (among the areas in code order) of the area of `level` in its chain, -1 where
        none: the innermost such area (as a dict of the chain by level keeps it), or with `innermost=False` the
        outermost (the first of the chain). Walks the parents of every leaf at once (chains deeper than 64
        areas are cut there)."""
        out = np.full(len(self), -1, np.int32)
        if level not in self.level_names:
            return out
        want = self.level_names.index(level)
        alive = np.arange(len(self))
        cur = self.leaf_area.astype(np.int64)
        for _ in range(64):
            hit = self.area_levels[cur] == want
            if innermost:
                hit &= out[alive] < 0
            out[alive[hit]] = cur[hit]
            up = self.area_parents[cur]
            more = up >= 0
            alive, cur = alive[more], up[more].astype(np.int64)
            if not len(alive):
                break
        return out

    def chain_of(self, code: str) -> list[AreaRef]:
        """The area with `code` and all its ancestors, outermost first."""
        out: list[AreaRef] = []
        k = self.area_at(code)
        while k >= 0 and len(out) <= len(self.area_codes):
            out.append(self._ref(k))
            k = int(self.area_parents[k])
        return out[::-1]

    # --- which leaf -------------------------------------------------------------------------------------------

    def leaf_codes_at(self, lon: float, lat: float) -> list[str]:
        """Reference: codes of every leaf covering the point (GEOS), smallest (the tie-break winner) first."""
        hits = self.tree.query(Point(lon, lat), predicate="covered_by")
        return sorted(str(self.leaf_codes_sorted[i]) for i in hits)

    def leaf_at(self, lon: float, lat: float) -> int:
        """Fast single lookup: the position in `self.leaves` of the winning leaf, -1 where none covers the point."""
        leaf, status = self.cells.query_one(lon, lat)
        if status == STATUS_UNRESOLVED:
            return int(self._resolve_hard(np.array([lon], float), np.array([lat], float))[0])
        return leaf

    def covering(self, lon: float, lat: float) -> list[str]:
        """Codes of every leaf covering the point, winner first: the fast path, and GEOS near edges (the point
        against its cell's candidate leaves, `covering_pairs`)."""
        leaf, status = self.cells.query_one(lon, lat)
        if status == STATUS_UNRESOLVED:
            _, hits = self.covering_pairs(np.array([lon], float), np.array([lat], float))
            return [str(self.leaf_codes_sorted[i]) for i in hits]
        return [str(self.leaf_codes_sorted[leaf])] if leaf >= 0 else []

    def locate_many(self, lon: npt.ArrayLike, lat: npt.ArrayLike) -> np.ndarray:
        """Position in `self.leaves` of the winning leaf for each point, -1 where none covers it.

        Equal to the reference for every point: the cell index answers, and the points it cannot decide
        (within 1e-9° of an edge) are answered by GEOS (`covering_pairs`)."""
        x = np.ascontiguousarray(lon, dtype=np.float64)
        y = np.ascontiguousarray(lat, dtype=np.float64)
        out, status = self.cells.query(x, y)
        self._settle(out, status, x, y)
        return out.astype(np.int64)

    def locate_many_clear(self, lon: npt.ArrayLike, lat: npt.ArrayLike, margin: float) -> tuple[np.ndarray, np.ndarray]:
        """`locate_many`, and which points no boundary comes within `margin` degrees of (`CellIndex.clear_of`:
        in an interior cell, farther than `margin` from its sides), found in the same pass over the cells."""
        x = np.ascontiguousarray(lon, dtype=np.float64)
        y = np.ascontiguousarray(lat, dtype=np.float64)
        clear = np.empty(len(x), bool)
        out, status = self.cells.query(x, y, clear=clear, margin=margin)
        self._settle(out, status, x, y)
        return out.astype(np.int64), clear

    def locate_many_near(self, lon: npt.ArrayLike, lat: npt.ArrayLike, margin: float) -> tuple[np.ndarray, np.ndarray]:
        """`locate_many`, and which points may be covered by more than one leaf: those within `margin` degrees of an
        edge in their cell (`CellIndex.near_edges`). A point in an interior cell is covered by its one leaf only
        (another leaf covering it would cover the whole cell, which only overlapping data does: an overlap cell,
        always listed)."""
        x = np.ascontiguousarray(lon, dtype=np.float64)
        y = np.ascontiguousarray(lat, dtype=np.float64)
        out, status = self.cells.query(x, y)
        self._settle(out, status, x, y)
        return out.astype(np.int64), self.cells.near_edges(x, y, margin)

    def locate_many_reference(self, lon: npt.ArrayLike, lat: npt.ArrayLike) -> np.ndarray:
        """`locate_many` computed by GEOS alone (STRtree, covers, smallest code): the yardstick of the tests."""
        return self._reference_many(np.asarray(lon, float), np.asarray(lat, float))

    def covering_pairs(self, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(point, leaf) for every leaf covering each point (GEOS covers), sorted by point then leaf (so the first
        of a point is the tie-break winner). A point in a boundary cell is tested against that cell's candidate
        leaves only — every leaf whose boundary comes near the cell, and the one covering its centre: any other
        leaf covering the point would cover the whole cell —, so a batch decodes a handful of leaves instead of
        building the STRtree; a point in an interior or overlap cell asks the tree (the batch and single lookups
        ask about points in boundary cells only), one in an outside cell is covered by none."""
        x = np.ascontiguousarray(lon, dtype=np.float64)
        y = np.ascontiguousarray(lat, dtype=np.float64)
        pt, cand, elsewhere = self.cells.candidates(x, y)
        hit = np.zeros(len(pt), bool)
        if len(pt):
            hit = shapely.covered_by(shapely.points(x[pt], y[pt]), self.geoms_of(cand))
        pts, leaves = [pt[hit]], [cand[hit].astype(np.int64)]
        if len(elsewhere):
            tp, tl = self.tree.query(shapely.points(x[elsewhere], y[elsewhere]), predicate="covered_by")
            pts.append(elsewhere[tp])
            leaves.append(tl.astype(np.int64))
        p, g = np.concatenate(pts).astype(np.int64), np.concatenate(leaves)
        order = np.lexsort((g, p))
        return p[order], g[order]

    def _settle(self, out: np.ndarray, status: np.ndarray, x: np.ndarray, y: np.ndarray) -> None:
        """Fill in `out` the points the cell kernels left undecided (`STATUS_UNRESOLVED`), by GEOS."""
        hard = np.flatnonzero(status == STATUS_UNRESOLVED)
        if len(hard):
            out[hard] = self._resolve_hard(x[hard], y[hard])

    def _resolve_hard(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """The winner (smallest covering leaf, or -1) of points the cell kernels left undecided."""
        out = np.full(len(lon), -1, dtype=np.int64)
        p, g = self.covering_pairs(lon, lat)
        if len(p):
            first = np.ones(len(p), bool)
            first[1:] = p[1:] != p[:-1]
            out[p[first]] = g[first]
        return out

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
        if distance_m <= 0 or not len(self.leaf_codes_sorted):  # (not `self.leaves`: 200,000 objects to count)
            return []
        kx, ky = metres_per_degree(lat)
        radius_deg = distance_m / min(kx, ky)
        hits = self.tree.query(Point(lon, lat), predicate="dwithin", distance=radius_deg)
        if not len(hits):
            return []
        dist = local_distance_m(self.leaf_geoms[hits], lon, lat)
        pairs = sorted((float(d), str(self.leaf_codes_sorted[i])) for i, d in zip(hits, dist) if d <= distance_m)
        return [(code, round(d, 2)) for d, code in pairs]

    def warm(self, pause: Callable[[], None] | None = None) -> None:
        """Make now what a single point's answer reads on first use (the leaves' search tree, the cell lookup's
        first call), so that a server's first answers do not wait for it: at 200,000 leaves that is ~0.6 s, and
        open-loop traffic arriving meanwhile queues behind it. `pause`: called before each of the two (a
        background build giving way to answers; an answer that needs one meanwhile makes it)."""
        pause = pause or (lambda: None)
        if len(self.leaf_codes_sorted) and self.bounds is not None:
            pause()
            _ = self.tree
            pause()
            x0, y0, x1, y1 = self.bounds
            self.locate((x0 + x1) / 2, (y0 + y1) / 2, near_m=1.0, nearest_m=1.0)

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
        edge = shapely.boundary(self.geoms_of([i])[0])
        return float(shapely.distance(edge, Point(lon, lat))) * min(kx, ky) > radius_m * 1.01

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
