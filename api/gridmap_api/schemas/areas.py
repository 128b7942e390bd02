"""Areas of the hierarchy (district → micro-grid) as GeoJSON Features."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from gridmap_api.schemas.common import Geometry
from gridmap_api.schemas.locate import BranchOut, StaffOut


class AreaBrief(BaseModel):
    code: str
    name: str | None
    level: str


class AreaCaseCounts(BaseModel):
    total: int
    open: int
    overdue: int
    closed: int


class AreaProperties(BaseModel):
    """What every area feature carries; one area (`GET /areas/{code}`) adds its ancestors and children, and for an
    area within the caller's own its branch, staff, places and case counts (left out otherwise)."""

    code: str
    name: str | None
    level: str
    parent_code: str | None
    households: int | None
    population: int | None
    area_km2: float
    generation_id: int
    chain: list[AreaBrief] | None = Field(None, description="the ancestors, district first")
    children: list[AreaBrief] | None = Field(None, description="the areas directly within it")
    branch: BranchOut | None = None
    staff: list[StaffOut] | None = None
    places: dict[str, int] | None = Field(None, description="place kind → how many")
    cases: AreaCaseCounts | None = None


class AreaFeature(BaseModel):
    type: Literal["Feature"] = "Feature"
    id: str = Field(description="the area's code")
    geometry: Geometry
    properties: AreaProperties


class AreaCollection(BaseModel):
    type: Literal["FeatureCollection"] = "FeatureCollection"
    features: list[AreaFeature]
    numberMatched: int
    numberReturned: int
