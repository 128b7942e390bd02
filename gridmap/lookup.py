"""Point → area chain: the in-memory reference index (shapely STRtree over the leaf areas) and its rules.

The predicate is *covers*: a point on a boundary belongs to every area whose boundary it is on. When several
leaves cover a point (a shared edge or vertex), the **tie-break rule** is: the leaf with the smallest code wins.
Codes are numbered north→south, west→east, so on a shared edge the northern/western neighbour takes the case; and
because a leaf's code starts with its parents' codes, the winner's grid, community and sub-district are also the
smallest among the candidates. The other candidates are reported, and the result is flagged `on_boundary`.
A point covered by no leaf gets no chain and the flag `outside_all_grids`; it is an answer, not an error.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import shapely
from shapely.geometry import Point

FLAG_ON_BOUNDARY = "on_boundary"
FLAG_OUTSIDE = "outside_all_grids"


@dataclass(frozen=True)
class AreaRef:
    """The identifying part of an area: enough to print a chain."""

    id: int
    level: str
    code: str
    name: str
    parent_code: str | None

    def as_dict(self) -> dict:
        return {"level": self.level, "code": self.code, "name": self.name}


@dataclass
class Location:
    """The answer to 'where is this point': its chain of areas and the flags that qualify it."""

    lon: float
    lat: float
    chain: list[AreaRef] = field(default_factory=list)
    candidates: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)

    def at_level(self, level: str) -> AreaRef | None:
        """The chain's area of `level`, if any."""
        return next((a for a in self.chain if a.level == level), None)

    @property
    def leaf_code(self) -> str | None:
        return self.chain[-1].code if self.chain else None


class AreaIndex:
    """An immutable in-memory index of one generation's areas; build a new one when boundaries change."""

    def __init__(self, areas: list[AreaRef], geoms: list[shapely.Geometry], generation_id: int | None = None):
        self.generation_id = generation_id
        self.by_code = {a.code: a for a in areas}
        codes = {a.parent_code for a in areas if a.parent_code}
        leaf_idx = [i for i, a in enumerate(areas) if a.code not in codes]
        self.leaves = [areas[i] for i in leaf_idx]
        self.leaf_geoms = np.array([geoms[i] for i in leaf_idx], dtype=object)
        shapely.prepare(self.leaf_geoms)
        self.tree = shapely.STRtree(self.leaf_geoms)

    def __len__(self) -> int:
        return len(self.leaves)

    def chain_of(self, code: str) -> list[AreaRef]:
        """The area with `code` and all its ancestors, outermost first."""
        out: list[AreaRef] = []
        ref = self.by_code.get(code)
        while ref is not None:
            out.append(ref)
            ref = self.by_code.get(ref.parent_code) if ref.parent_code else None
        return out[::-1]

    def leaf_codes_at(self, lon: float, lat: float) -> list[str]:
        """Codes of every leaf covering the point, smallest (the tie-break winner) first."""
        hits = self.tree.query(Point(lon, lat), predicate="covered_by")
        return sorted(self.leaves[i].code for i in hits)

    def locate(self, lon: float, lat: float) -> Location:
        """Locate one WGS84 point.

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
        return self.location_from_codes(lon, lat, self.leaf_codes_at(lon, lat))

    def location_from_codes(self, lon: float, lat: float, codes: list[str]) -> Location:
        """Apply the tie-break rule and the flags to a sorted list of covering leaf codes."""
        if not codes:
            return Location(lon, lat, flags=[FLAG_OUTSIDE])
        flags = [FLAG_ON_BOUNDARY] if len(codes) > 1 else []
        return Location(lon, lat, chain=self.chain_of(codes[0]), candidates=codes[1:], flags=flags)

    def locate_many(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """Index into `self.leaves` of the winning leaf for each point, -1 where none covers it."""
        points = shapely.points(np.asarray(lon, float), np.asarray(lat, float))
        pt_idx, leaf_idx = self.tree.query(points, predicate="covered_by")
        codes = np.array([leaf.code for leaf in self.leaves], dtype=object)
        out = np.full(len(points), -1, dtype=np.int64)
        order = np.lexsort((codes[leaf_idx].astype(str), pt_idx)) if len(pt_idx) else np.array([], int)
        pt_sorted, leaf_sorted = pt_idx[order], leaf_idx[order]
        first = np.ones(len(pt_sorted), bool)
        first[1:] = pt_sorted[1:] != pt_sorted[:-1]
        out[pt_sorted[first]] = leaf_sorted[first]
        return out
