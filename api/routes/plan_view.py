"""What the planner's workspace reads about a draft: the balance table of the grids under an area, and the diff
against the active generation (issue 13 §4). Both read only; planners, approvers and admins."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from api.auth import allow
from api.deps import SessionDep
from api.params import PathId
from api.schemas.common import COMMON
from gridmap import plan_balance, policy
from gridmap.policy import Principal

router = APIRouter(prefix="/api/v1/generations", tags=["planning"], responses=COMMON)

AreaCode = Annotated[str, Query(min_length=6, max_length=24, pattern=r"^[0-9]+$",
                                description="the code of a sub-district, community or grid of the generation")]


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


@router.get("/{generation_id}/balance", response_model=Balance)
def balance(generation_id: PathId, area: AreaCode, session: SessionDep,
            who: Annotated[Principal, allow("generation.read")],
            level: Literal["grid", "microgrid"] | None = None,
            tolerance: Annotated[float, Query(gt=0, lt=1)] = plan_balance.DEFAULT_TOLERANCE) -> dict:
    """The balance table of the grids (or, under a grid, the micro-grids) of `area` in a generation, as GeoJSON:
    households, population, party members, compounds, buildings, staff, open cases, the deviation from the mean of
    the units, Polsby–Popper compactness, contiguity, locked, and whether each differs from the active generation."""
    policy.check_area(who, area)
    return plan_balance.balance(session, generation_id, area, level, tolerance=tolerance)


@router.get("/{generation_id}/diff", response_model=Diff, response_model_by_alias=True)
def diff(generation_id: PathId, area: AreaCode, session: SessionDep,
         who: Annotated[Principal, allow("generation.read")]) -> dict:
    """What a generation changes under `area` against the active generation: the grids and micro-grids it creates,
    retires and changes (outlines before and after, households), and the buildings and compounds whose grid changes.
    Empty for the active generation and for an unchanged draft."""
    policy.check_area(who, area)
    return plan_balance.diff(session, generation_id, area)


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


@router.get("/{generation_id}/places", response_model=PlanPlaces)
def places(generation_id: PathId, area: AreaCode, session: SessionDep,
           who: Annotated[Principal, allow("generation.read")]) -> dict:
    """The buildings and compounds under `area` with the micro-grid and grid each lies in, in this generation: the
    units a planner picks and reassigns to a neighbouring grid."""
    policy.check_area(who, area)
    return plan_balance.places(session, generation_id, area)


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


@router.get("/{generation_id}/areas", response_model=AreaList)
def areas(generation_id: PathId, session: SessionDep, who: Annotated[Principal, allow("generation.read")],
          level: Annotated[list[Literal["district", "subdistrict", "community", "grid", "microgrid"]],
                           Query(max_length=5)] = ["subdistrict", "community"]) -> dict:  # noqa: B006
    """The areas of a generation at the levels asked (`level` may repeat; sub-districts and communities by
    default), without outlines: code, name, level, parent, households, locked. Only the areas the caller acts for
    and those above them."""
    rows = plan_balance.area_list(session, generation_id, tuple(level))
    return {"generation_id": generation_id, "areas": [r for r in rows if policy.sees_area(who, r["code"])]}
