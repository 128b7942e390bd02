"""Vector tiles: the TileJSON of a layer (the tiles themselves are binary Mapbox Vector Tiles)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class VectorLayer(BaseModel):
    id: str
    fields: dict[str, str] = Field(description="property name → String or Number")
    minzoom: int
    maxzoom: int
    description: str


class TileJSON(BaseModel):
    """TileJSON 3.0.0 (https://github.com/mapbox/tilejson-spec)."""

    tilejson: Literal["3.0.0"]
    name: str
    scheme: Literal["xyz"]
    tiles: list[str] = Field(description="the tile URL template")
    minzoom: int
    maxzoom: int
    bounds: list[float] = Field(description="[west, south, east, north] in WGS84 degrees")
    center: list[float] = Field(description="[lon, lat, zoom]")
    description: str
    vector_layers: list[VectorLayer]
    generation_id: int = Field(description="the active boundary generation the area tiles are drawn from")
