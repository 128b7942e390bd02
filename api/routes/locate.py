"""Point → grid chain, party branch and staff."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import IndexDep, SessionDep
from gridmap.locate import locate as locate_point

router = APIRouter(prefix="/api/v1", tags=["locate"])


@router.get("/locate")
def locate(session: SessionDep, index: IndexDep, lon: float, lat: float, crs: str = "wgs84") -> dict:
    """Locate a point given in `crs` (wgs84, cgcs2000, gcj02, bd09 or EPSG:nnnn); `point` is its WGS84 position."""
    return locate_point(session, index, lon, lat, crs)
