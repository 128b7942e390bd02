"""What the planner's workspace reads about a draft: the balance table of the grids under an area, and the diff
against the active generation (issue 13 §4). Both read only; planners, approvers and admins."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from gridmap.access import policy
from gridmap.access.policy import Principal
from gridmap.planning import balance as plan_balance
from gridmap_api.auth import allow
from gridmap_api.deps import SessionDep
from gridmap_api.params import PathId
from gridmap_api.schemas.common import COMMON
from gridmap_api.schemas.plan import AreaList, Balance, Diff, PlanPlaces

router = APIRouter(prefix="/api/v1/generations", tags=["planning"], responses=COMMON)

AreaCode = Annotated[
    str,
    Query(
        min_length=6,
        max_length=24,
        pattern=r"^[0-9]+$",
        description="the code of a sub-district, community or grid of the generation",
    ),
]


@router.get("/{generation_id}/balance", response_model=Balance)
def balance(
    generation_id: PathId,
    area: AreaCode,
    session: SessionDep,
    who: Annotated[Principal, allow("generation.read")],
    level: Literal["grid", "microgrid"] | None = None,
    tolerance: Annotated[float, Query(gt=0, lt=1)] = plan_balance.DEFAULT_TOLERANCE,
) -> dict:
    """The balance table of the grids (or, under a grid, the micro-grids) of `area` in a generation, as GeoJSON:
    households, population, party members, compounds, buildings, staff, open cases, the deviation from the mean of
    the units, Polsby–Popper compactness, contiguity, locked, and whether each differs from the active generation."""
    policy.check_area(who, area)
    return plan_balance.balance(session, generation_id, area, level, tolerance=tolerance)


@router.get("/{generation_id}/diff", response_model=Diff, response_model_by_alias=True)
def diff(
    generation_id: PathId, area: AreaCode, session: SessionDep, who: Annotated[Principal, allow("generation.read")]
) -> dict:
    """What a generation changes under `area` against the active generation: the grids and micro-grids it creates,
    retires and changes (outlines before and after, households), and the buildings and compounds whose grid changes.
    Empty for the active generation and for an unchanged draft."""
    policy.check_area(who, area)
    return plan_balance.diff(session, generation_id, area)


@router.get("/{generation_id}/places", response_model=PlanPlaces)
def places(
    generation_id: PathId, area: AreaCode, session: SessionDep, who: Annotated[Principal, allow("generation.read")]
) -> dict:
    """The buildings and compounds under `area` with the micro-grid and grid each lies in, in this generation: the
    units a planner picks and reassigns to a neighbouring grid."""
    policy.check_area(who, area)
    return plan_balance.places(session, generation_id, area)


@router.get("/{generation_id}/areas", response_model=AreaList)
def areas(
    generation_id: PathId,
    session: SessionDep,
    who: Annotated[Principal, allow("generation.read")],
    level: Annotated[
        list[Literal["district", "subdistrict", "community", "grid", "microgrid"]], Query(max_length=5)
    ] = ["subdistrict", "community"],  # noqa: B006 - FastAPI copies a parameter's default for each request
) -> dict:
    """The areas of a generation at the levels asked (`level` may repeat; sub-districts and communities by
    default), without outlines: code, name, level, parent, households, locked. Only the areas the caller acts for
    and those above them."""
    rows = plan_balance.area_list(session, generation_id, tuple(level))
    return {"generation_id": generation_id, "areas": [r for r in rows if policy.sees_area(who, r["code"])]}
