"""The planner's workspace: the balance table of a draft's grids, its diff against the active generation, the
places and areas it shows."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from gridmap.planning import edit as plan_edit
from gridmap_api.params import Id


class Norm(BaseModel):
    mean_households: float = Field(description="the mean households of the units")
    tolerance: float = Field(description="the deviation accepted either side of the mean, as a fraction")


class BalanceProperties(BaseModel):
    code: str
    name: str
    level: Literal["grid", "microgrid"]
    parent: str | None
    households: int
    population: int
    party_members: int = Field(description="members of the unit's party branch (the draft's assignment first)")
    has_branch: bool
    compounds: int = Field(description="compounds whose point lies in the unit")
    buildings: int = Field(description="buildings whose point lies in the unit")
    staff: int = Field(description="people serving the unit's code (now, or by the draft's assignment)")
    open_cases: int = Field(description="cases not finished whose point lies in the unit")
    deviation: float | None = Field(description="(households − mean) / mean")
    within_tolerance: bool
    polsby_popper: float | None = Field(description="4πA/P² in metres: 1 for a circle")
    contiguous: bool
    locked: bool
    changed: bool = Field(description="new, or another outline or household count than in the active generation")


class BalanceFeature(BaseModel):
    type: Literal["Feature"]
    id: str
    geometry: dict
    properties: BalanceProperties


class BalanceCollection(BaseModel):
    type: Literal["FeatureCollection"]
    features: list[BalanceFeature]


class Totals(BaseModel):
    units: int
    households: int
    population: int
    party_members: int
    compounds: int
    buildings: int
    staff: int
    open_cases: int


class Balance(BaseModel):
    generation_id: int
    status: str
    area: str
    area_name: str
    area_level: str
    level: Literal["grid", "microgrid"]
    norm: Norm
    totals: Totals
    features: BalanceCollection


class DiffArea(BaseModel):
    code: str
    level: Literal["grid", "microgrid"]
    name: str
    status: Literal["created", "retired", "changed"]
    parent_before: str | None
    parent_after: str | None
    households_before: int | None
    households_after: int | None
    population_before: int | None
    population_after: int | None
    geometry: dict = Field(description="the outline in this generation (the retired outline for a retired code)")
    geometry_before: dict | None = Field(description="the active generation's outline of a changed code")


class DiffUnit(BaseModel):
    id: int
    kind: Literal["building", "compound"]
    name: str
    households: int
    to: str | None = Field(description="its grid in this generation")
    from_: str | None = Field(alias="from", description="its grid in the active generation")
    lon: float
    lat: float


class Diff(BaseModel):
    generation_id: int
    active_id: int
    area: str
    area_name: str
    created: list[str]
    retired: list[str]
    changed: list[str]
    areas: list[DiffArea]
    units: list[DiffUnit]


class PlanPlace(BaseModel):
    id: int
    kind: Literal["building", "compound"]
    name: str
    households: int
    compound_id: int | None = Field(description="a building's compound")
    leaf: str = Field(description="the leaf (micro-grid) its point lies in, in this generation")
    grid: str | None = Field(description="the grid its point lies in, in this generation")
    lon: float
    lat: float


class PlanPlaces(BaseModel):
    generation_id: int
    area: str
    places: list[PlanPlace]


class AreaRow(BaseModel):
    code: str
    name: str
    level: Literal["district", "subdistrict", "community", "grid", "microgrid"]
    parent: str | None
    households: int
    locked: bool


class AreaList(BaseModel):
    generation_id: int
    areas: list[AreaRow]


Code = Annotated[str, Field(min_length=1, max_length=24)]


LonLat = Annotated[list[float], Field(min_length=2, max_length=2)]


class LineIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["LineString"]
    coordinates: list[Annotated[list[float], Field(min_length=2, max_length=3)]] = Field(
        min_length=2, max_length=plan_edit.MAX_LINE_POINTS
    )


class EditIn(BaseModel):
    """One edit; which fields it takes depends on `op` (see the operation list of POST .../edits)."""

    model_config = ConfigDict(extra="forbid")
    op: Literal["split", "merge", "move_vertex", "move_edge", "reassign", "lock"]
    code: Code | None = None
    codes: list[Code] | None = Field(None, min_length=1, max_length=plan_edit.MAX_CODES)
    line: LineIn | None = None
    from_: LonLat | None = Field(None, alias="from")
    to: LonLat | Code | None = None
    places: list[Id] | None = Field(None, min_length=1, max_length=plan_edit.MAX_PLACES)
    compound: Id | None = None
    locked: StrictBool | None = None


class ChangedArea(BaseModel):
    code: str
    level: str
    name: str
    parent: str | None
    geometry: dict = Field(description="GeoJSON in WGS84")
    households: int
    population: int
    area_m2: float
    locked: bool


class BalanceRow(BaseModel):
    code: str
    households_before: int
    households_after: int
    population_before: int
    population_after: int


class EditResult(BaseModel):
    generation_id: int
    seq: int | None = Field(description="the edit's number in the log (null when nothing changed)")
    op: str
    changed: list[ChangedArea] = Field(description="every area row written, leaves and ancestors, as it is now")
    created: list[str] = Field(description="codes the edit brought into the draft")
    retired: list[str] = Field(description="codes the edit took out of the draft (they are never given again)")
    balance: list[BalanceRow]
    can_undo: bool
    can_redo: bool


class EditLogRow(BaseModel):
    seq: int
    op: str
    actor: str | None
    at: str | None
    undone: bool
