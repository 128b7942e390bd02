"""OGC API – Features at /ogc (`gridmap.views.ogc`): the landing page, conformance, collections (one per level) and
their features (application/geo+json), and the boundary export of a generation (a file)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from gridmap_api.schemas.common import Geometry, Link


class Landing(BaseModel):
    title: str
    description: str
    links: list[Link]


class Conformance(BaseModel):
    conformsTo: list[str]


class SpatialExtent(BaseModel):
    bbox: list[list[float]]
    crs: str


class TemporalExtent(BaseModel):
    interval: list[list[str | None]]
    trs: str


class Extent(BaseModel):
    spatial: SpatialExtent | None = None
    temporal: TemporalExtent | None = None


class Collection(BaseModel):
    id: str = Field(description="the level: district, subdistrict, community, grid or microgrid")
    title: str
    description: str
    links: list[Link]
    itemType: Literal["feature"]
    crs: list[str]
    storageCrs: str
    extent: Extent | None = None


class Collections(BaseModel):
    links: list[Link]
    collections: list[Collection]


class BoundaryProperties(BaseModel):
    code: str
    name: str | None
    level: str
    parent: str | None
    households: int
    population: int
    area_m2: float


class BoundaryFeature(BaseModel):
    type: Literal["Feature"] = "Feature"
    id: str
    geometry: Geometry
    properties: BoundaryProperties
    links: list[Link] | None = Field(None, description="one feature's own links (not in a page's features)")


class BoundaryPage(BaseModel):
    type: Literal["FeatureCollection"] = "FeatureCollection"
    features: list[BoundaryFeature]
    links: list[Link] = Field(description="self, collection, and next / prev when there are more")
    timeStamp: str
    numberMatched: int
    numberReturned: int
