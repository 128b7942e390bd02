"""What the map pages load: area outlines, case points as a compact table, the search box, departments (the
clusters' models are in `api.routes.mapdata`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from api.schemas.common import Geometry


class OutlineProperties(BaseModel):
    code: str
    name: str | None
    level: str
    parent_code: str | None
    label: list[float] = Field(description="[lon, lat] of a point inside the area, for its label")


class OutlineFeature(BaseModel):
    type: Literal["Feature"] = "Feature"
    id: str
    geometry: Geometry
    properties: OutlineProperties


class Outlines(BaseModel):
    """The areas of a level drawn for a zoom (application/geo+json)."""

    type: Literal["FeatureCollection"] = "FeatureCollection"
    features: list[OutlineFeature]
    numberReturned: int
    zoom: int | None = None
    generation_id: int | None = None


class CasePoints(BaseModel):
    """Case points as one table: each row holds the values of `fields` in order (id, lon, lat, state, clock colour
    green / yellow / red or null, category code, source, reported time)."""

    fields: list[str]
    rows: list[list[Any]]
    count: int
    truncated: bool = Field(description="more cases matched than `limit`")
    now: str


class SearchItem(BaseModel):
    """One hit: `kind` area (level, code, bbox), case (id, state, point), place or address (id, place_kind,
    area_code, point; an address with its `confidence`)."""

    kind: Literal["area", "case", "place", "address"]
    label: str | None
    detail: str | None
    id: int | None = None
    level: str | None = None
    code: str | None = None
    bbox: list[float] | None = None
    state: str | None = None
    point: list[float | None] | None = None
    place_kind: str | None = None
    area_code: str | None = None
    confidence: float | None = None


class SearchOut(BaseModel):
    q: str
    items: list[SearchItem] = Field(description="best first")


class DepartmentOut(BaseModel):
    code: str
    name: str
