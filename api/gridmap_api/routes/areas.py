"""Areas of the hierarchy as GeoJSON."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from gridmap.access import policy
from gridmap.boundaries import areas
from gridmap.cases.stats import case_counts
from gridmap.views import geojson as features
from gridmap_api.auth import allow
from gridmap_api.deps import SessionDep
from gridmap_api.schemas.areas import AreaCollection, AreaFeature
from gridmap_api.schemas.common import COMMON, problems

router = APIRouter(prefix="/api/v1", tags=["areas"], responses=COMMON)


@router.get("/areas", response_model=AreaCollection, response_model_exclude_unset=True, responses=COMMON)
def list_areas(
    session: SessionDep,
    who: Annotated[policy.Principal, allow("area.read")],
    level: str | None = None,
    parent: str | None = None,
    under: str | None = None,
    bbox: str | None = None,
    precision: Annotated[int, Query(ge=3, le=8)] = 6,
) -> dict:
    """Areas as a GeoJSON FeatureCollection: `parent` = direct children, `under` = all descendants. Only the areas
    the caller acts for, and those above them."""
    rows = areas.find_areas(session, level=level, parent=parent, under=under, bbox=areas.check_bbox(bbox))
    rows = [(a, p) for a, p in rows if policy.sees_area(who, a.code)]
    feats = [features.area_feature(a, parent_code, precision) for a, parent_code in rows]
    return features.feature_collection(feats, numberMatched=len(feats), numberReturned=len(feats))


@router.get(
    "/areas/{code}",
    response_model=AreaFeature,
    response_model_exclude_unset=True,
    responses={**COMMON, **problems(404)},
)
def get_area(code: str, session: SessionDep, who: Annotated[policy.Principal, allow("area.read")]) -> dict:
    """One area as a Feature, with its party organisation, staff, places, case counts, its ancestors (`chain`,
    district first) and the areas directly within it (`children`). An area above the caller's own is shown with
    its outline, chain and visible children only; any other area outside its scope does not exist for it."""
    policy.check_area(who, code)
    area = areas.get_area(session, code)
    parent = area.parent.code if area.parent else None
    children = [
        {"code": a.code, "name": a.name, "level": a.level}
        for a, _ in areas.find_areas(session, parent=code, generation_id=area.generation_id)
        if policy.sees_area(who, a.code)
    ]
    if not policy.within(who, code):
        return features.area_feature(area, parent, chain=areas.ancestors(area), children=children)
    return features.area_feature(
        area,
        parent,
        branch=(b.as_dict() if (b := areas.branch_for(session, code)) else None),
        staff=areas.staff_for(session, code),
        places=areas.count_places(session, code),
        cases=case_counts(session, area),
        chain=areas.ancestors(area),
        children=children,
    )
