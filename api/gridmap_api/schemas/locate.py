"""Locate: a point or an address → grid chain, party branch and staff (`gridmap.locating.locate.locate`), one at a time
or
in batches."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from gridmap_api.params import Day
from gridmap_api.schemas.common import AreaRef, CodeName, LonLat


class BranchOut(BaseModel):
    """The party organisation (党组织) responsible for a grid."""

    id: int
    kind: str
    name: str
    secretary: str | None
    member_count: int
    reporting_member_count: int


class StaffOut(BaseModel):
    """A person serving an area, with the role in Chinese and English; the phone masked."""

    id: int
    name: str
    role: str
    role_zh: str
    role_en: str
    phone: str | None


class NearArea(BaseModel):
    code: str
    distance_m: float


class CrsAlternative(BaseModel):
    """Where the point would be were its coordinates read in the other common system (a likely mix-up)."""

    point: LonLat
    grid: CodeName
    leaf_code: str


class AddressMatch(BaseModel):
    """What the gazetteer made of an address text."""

    text: str | None
    matched: bool
    place: dict[str, Any] | None = Field(
        description="the compound, building, road number or area matched: id, kind, name, address, lon, lat, area_code"
    )
    kind: str | None
    level: str | None
    confidence: float
    reason: str | None
    alternatives: list[Any]
    parsed: dict[str, Any] | None


class LocateInput(BaseModel):
    """The input as read: `x`/`y` in `crs`, or the `address`."""

    x: float | None = None
    y: float | None = None
    crs: str | None = None
    address: str | None = None


class Located(BaseModel):
    """Where a point or address is: the chain of areas (district first), grid and micro-grid, branch and staff, how
    it was placed (`method`), and flags qualifying it (near a boundary, outside the service area, …). Members that
    only some answers carry (`input`, `alternative`, `address_match`) are left out when they do not apply."""

    point: LonLat | None
    chain: list[AreaRef]
    grid: CodeName | None
    microgrid: CodeName | None
    branch: BranchOut | None
    staff: list[StaffOut]
    method: str
    flags: list[str]
    candidates: list[str] = Field(description="other leaf codes the point may belong to")
    tie_rule: str | None
    near: list[NearArea]
    distance_m: float | None
    generation_id: int | None
    input: LocateInput | None = None
    alternative: CrsAlternative | None = None
    address_match: AddressMatch | None = None


class LocateBatchItem(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    id: str | int | None = None
    lon: float | None = None
    lat: float | None = None
    address: str | None = Field(None, max_length=300)


class LocateBatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    crs: str = "wgs84"
    as_of: Day | None = None
    near_m: float = Field(0.0, ge=0, le=10_000)
    items: list[LocateBatchItem] = Field(min_length=1)


class LocateBatchResult(BaseModel):
    """One item of a batch: a bad item comes back with method `none` and a flag saying why."""

    id: str | int | float | None = Field(description="the item's own id, as sent")
    point: LonLat | None
    codes: dict[str, str | None] = Field(description="level → code: district, subdistrict, community, grid, microgrid")
    grid_name: str | None
    branch: str | None
    method: str
    flags: list[str]
    candidates: list[str]
    address_confidence: float | None
    address_place: str | None


class LocateBatchOut(BaseModel):
    generation_id: int | None
    count: int
    results: list[LocateBatchResult]
