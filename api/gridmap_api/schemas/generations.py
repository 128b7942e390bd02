"""Boundary generations (边界版本): list, draft, redraw, the cases a draft would move, activation."""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from gridmap.boundaries import check as boundary_check
from gridmap.planning import repair as boundary_repair
from gridmap_api.params import Day, Id
from gridmap_api.schemas.common import Geometry
from gridmap_api.schemas.plan import EditResult
from gridmap_api.schemas.publish import Activation


class GenerationBrief(BaseModel):
    """A generation as lists show it (`gridmap.boundaries.generations.generation_dict`)."""

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
        min_length=1,
        max_length=1000,
        description="leaf code → GeoJSON Polygon/MultiPolygon in WGS84",
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


class CheckProblem(BaseModel):
    kind: boundary_check.CheckKind = Field(
        description="invalid_geometry, gap, overlap, hole, outside_parent, "
        "duplicate_code, bad_code, sliver, not_contiguous, household_norm"
    )
    severity: Literal["error", "warning"]
    codes: list[str] = Field(description="the areas concerned")
    area_m2: float | None = Field(description="the problem region's area in m² (null when it is not a region)")
    geometry: dict = Field(description="GeoJSON in WGS84 at the problem's place: the region, or a point")
    parent: str | None = Field(description="the parent within which siblings were compared")
    detail: str


class CheckReport(BaseModel):
    generation_id: int
    ok: bool = Field(description="no problem of severity error")
    areas: int
    counts: dict[str, int] = Field(description="problems by kind")
    tolerances: dict
    problems: list[CheckProblem]


class RepairItem(BaseModel):
    kind: boundary_repair.RepairKind = Field(
        description="snap_to_parent, overlap_to_neighbour, gap_to_neighbour, absorb_sliver"
    )
    codes: list[str] = Field(description="the leaf losing the region (none for a gap), then the leaf getting it")
    from_code: str | None
    to_code: str | None
    area_m2: float
    geometry: dict = Field(description="GeoJSON in WGS84: the region that moves")
    detail: str


class RepairPlan(BaseModel):
    generation_id: int
    repairs: list[RepairItem]
    changed: dict[str, dict] = Field(description="leaf code → its repaired geometry (GeoJSON MultiPolygon, WGS84)")
    skipped: list[str] = Field(description="errors the repairs leave, for the planner to fix by hand")
    before: dict[str, int] = Field(description="errors and warnings of the check before the repairs")
    after: dict[str, int] = Field(description="errors and warnings of the check after them")
    applicable: bool | None = Field(
        description="on a draft: whether POST would apply them (tried and rolled "
        "back); null when there is nothing to apply or the generation is no draft"
    )
    refusal: str | None = Field(description="why applying them would be refused")


class RepairIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kinds: list[boundary_repair.RepairKind] = Field(
        default=list(boundary_repair.REPAIR_KINDS),
        min_length=1,
        max_length=4,
        description="the repairs to apply (all four by default)",
    )
    snap_m: float = Field(boundary_repair.SNAP_M, gt=0, le=100)


class RepairApplied(BaseModel):
    plan: RepairPlan = Field(description="the repairs applied, with the check's counts before and after")
    edit: EditResult = Field(description="the edit written to the draft's log (undo with POST …/edits/undo)")
