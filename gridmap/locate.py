"""Locating a point for people: convert it to WGS84, find its chain, and add the grid's party branch and staff."""

from __future__ import annotations

from sqlalchemy.orm import Session

from gridmap import crs as gcrs
from gridmap.areas import branch_for, staff_for
from gridmap.lookup import AreaIndex


def locate(session: Session, index: AreaIndex, x: float, y: float, crs: str | None = "wgs84") -> dict:
    """The locate answer: WGS84 point, chain, grid, micro-grid, branch, staff, candidates and flags.

    Raises `InvalidCoordinate` or `UnknownCRS` (naming the field) for input that cannot be a point.
    """
    system = gcrs.parse_crs(crs)
    lon, lat = gcrs.convert_point(x, y, system)
    location = index.locate(lon, lat)
    grid = location.at_level("grid")
    micro = location.at_level("microgrid")
    branch = branch_for(session, grid.code) if grid else None
    return {
        "point": {"lon": lon, "lat": lat},
        "input": {"x": x, "y": y, "crs": system.name},
        "chain": [a.as_dict() for a in location.chain],
        "grid": {"code": grid.code, "name": grid.name} if grid else None,
        "microgrid": {"code": micro.code, "name": micro.name} if micro else None,
        "branch": branch.as_dict() if branch else None,
        "staff": staff_for(session, grid.code) if grid else [],
        "candidates": location.candidates,
        "flags": location.flags,
        "method": "coordinates",
        "generation_id": index.generation_id,
    }
