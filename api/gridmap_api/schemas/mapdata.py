"""What the map pages load: area outlines, case points as a compact table, the search box, departments (the
clusters' models are in `gridmap_api.routes.mapdata`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from gridmap.views import mapdata
from gridmap_api.schemas.common import Geometry, PointGeometry


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
    numberMatched: int | None = Field(
        None, description="the areas that meet the box; more than `max_features`: none sent (draw the tiles)"
    )
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


class ClusterProperties(BaseModel):
    count: int = Field(description="cases in the cluster")
    worst_state: str | None = Field(
        description="the most worrying state among them (order: " + ", ".join(mapdata.STATE_SEVERITY) + ")"
    )
    worst_deadline: Literal["overdue", "due_soon", "ok"] = Field(
        description="overdue: a running clock past its deadline; due_soon: one in its last 20 % (yellow); ok"
    )
    bbox: list[float] = Field(description="[minlon, minlat, maxlon, maxlat] of its cases (to zoom in on a click)")
    case_id: int | None = Field(description="the case's id when the cluster holds one case")


class ClusterFeature(BaseModel):
    type: Literal["Feature"] = "Feature"
    geometry: PointGeometry
    properties: ClusterProperties


class CaseClusters(BaseModel):
    type: Literal["FeatureCollection"] = "FeatureCollection"
    features: list[ClusterFeature]
    zoom: int
    cell: list[float] = Field(description="[width, height] of a cell in degrees")
    total: int = Field(description="the sum of the counts: the cases the list gives for the same filters and box")
    now: str
