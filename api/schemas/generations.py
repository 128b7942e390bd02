"""Boundary generations (边界版本): list, draft, redraw, the cases a draft would move, activation."""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from api.params import Day, Id
from api.schemas.common import Geometry
from api.schemas.publish import Activation


class GenerationBrief(BaseModel):
    """A generation as lists show it (`gridmap.generations.generation_dict`)."""

    id: int
    name: str
    status: str = Field(description="draft, submitted, approved, active or retired")
    effective_from: str | None = Field(description="YYYY-MM-DD")
    effective_to: str | None
    note: str | None


class DraftIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    source_id: Id | None = None
    note: str | None = Field(None, max_length=2000)


class RedrawIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    areas: dict[str, Geometry] = Field(
        min_length=1, max_length=1000, description="leaf code → GeoJSON Polygon/MultiPolygon in WGS84"
    )


class Redrawn(BaseModel):
    generation_id: int
    changed: list[str] = Field(description="the codes whose row changed: the leaves and their ancestors")


class ActivateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    effective_from: Day


class Activated(GenerationBrief):
    """The generation now active, what its activation did, and the generation the lookup index serves."""

    activation: Activation
    index_generation_id: int | None


def _none_if_nan(value: Any) -> Any:
    """A missing code as pandas holds it (NaN) is null, as the answer always said."""
    return None if isinstance(value, float) and math.isnan(value) else value


Code = Annotated[str | None, BeforeValidator(_none_if_nan)]


class RelocatedCase(BaseModel):
    """A case whose grid or micro-grid would change under the generation's boundaries."""

    id: int
    number: str
    lon: float
    lat: float
    grid_code: Code
    microgrid_code: Code
    state: str
    new_grid_code: Code
    new_microgrid_code: Code


class RelocatedCases(BaseModel):
    generation_id: int
    count: int = Field(description="all such cases (the list is cut at `limit`)")
    cases: list[RelocatedCase]
