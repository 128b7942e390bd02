"""Boundary generations: list, draft, redraw, re-locate cases against a draft, activate."""

from __future__ import annotations

from typing import Annotated

import shapely
from fastapi import APIRouter, Query, Request, Response

from gridmap.access.policy import Principal
from gridmap.boundaries import check as boundary_check
from gridmap.boundaries import generations as gens
from gridmap.errors import InvalidInput
from gridmap.planning import publish
from gridmap.planning import repair as boundary_repair
from gridmap.store import audit
from gridmap_api import i18n
from gridmap_api.auth import allow
from gridmap_api.deps import RegistryDep, SessionDep, SettingsDep, after_commit, commit_now
from gridmap_api.params import PathId
from gridmap_api.schemas.common import COMMON, problems
from gridmap_api.schemas.generations import (
    Activated,
    ActivateIn,
    CheckReport,
    DraftIn,
    GenerationBrief,
    RedrawIn,
    Redrawn,
    RelocatedCases,
    RepairApplied,
    RepairIn,
    RepairPlan,
)

router = APIRouter(prefix="/api/v1/generations", tags=["generations"], responses=COMMON)


@router.get("", response_model=list[GenerationBrief])
def list_generations(session: SessionDep, who: Annotated[Principal, allow("generation.read")]) -> list[dict]:
    return [gens.generation_dict(g) for g in gens.list_generations(session)]


@router.post("", status_code=201, response_model=GenerationBrief, responses=problems(404))
def create_draft(
    body: DraftIn, session: SessionDep, response: Response, who: Annotated[Principal, allow("generation.edit")]
) -> dict:
    """A draft holding a copy of the active generation's areas (or of `source_id`); planners only. Committed
    before the answer: a 201 means the draft is stored."""
    out = gens.generation_dict(
        gens.create_draft(session, body.name, source_id=body.source_id, note=body.note, created_by=who.key)
    )
    response.headers["Location"] = f"/api/v1/generations/{out['id']}"
    return out


@router.put("/{generation_id}/areas", response_model=Redrawn, responses=problems(404, 409))
def redraw(
    generation_id: PathId,
    body: RedrawIn,
    session: SessionDep,
    registry: RegistryDep,
    who: Annotated[Principal, allow("generation.edit")],
) -> dict:
    """Replace the geometry of some leaves of a draft; their ancestors are recomputed (planners only)."""
    changes = {}
    for code, geojson in body.areas.items():
        try:
            changes[code] = shapely.geometry.shape(geojson.model_dump())
        except Exception as exc:  # noqa: BLE001 - any unreadable GeoJSON is the caller's error
            raise InvalidInput(
                f"areas.{code}: not a GeoJSON geometry ({exc})",
                field=f"areas.{code}",
                zh=f"区域 {code} 的几何图形不是有效的 GeoJSON。",
            ) from None
    changed = gens.redraw(session, generation_id, changes)
    after_commit(session, lambda: registry.forget(generation_id))  # a cached index of the draft is stale now
    return {"generation_id": generation_id, "changed": changed}


@router.get("/{generation_id}/check", response_model=CheckReport, responses=problems(404))
def check(
    generation_id: PathId,
    session: SessionDep,
    settings: SettingsDep,
    who: Annotated[Principal, allow("generation.read")],
) -> boundary_check.CheckReport:
    """The validation report of a generation (any status): invalid geometries, gaps, overlaps, holes, parts outside
    the parent, slivers, non-contiguous areas, duplicate or malformed codes, household norms; `ok` when no problem
    is an error. Computed from the stored geometries in Python, the same on SpatiaLite and PostGIS."""
    return boundary_check.check_generation(session, generation_id, household_band=settings.check_household_band)


RepairKinds = Annotated[
    str,
    Query(
        max_length=200, pattern=r"^[a-z_]+(,[a-z_]+)*$", description="comma-separated repair kinds; all four by default"
    ),
]
SnapM = Annotated[float, Query(gt=0, le=100, description="snap a leaf's part outside its parent narrower than this")]


def _kinds(text: str | None) -> tuple[str, ...]:
    if not text:
        return boundary_repair.REPAIR_KINDS
    return tuple(dict.fromkeys(part for part in text.split(",") if part))


@router.get("/{generation_id}/repairs", response_model=RepairPlan, responses=problems(404))
def repairs(
    generation_id: PathId,
    session: SessionDep,
    who: Annotated[Principal, allow("generation.read")],
    request: Request,
    kinds: RepairKinds = "",
    snap_m: SnapM = boundary_repair.SNAP_M,
) -> boundary_repair.RepairPlan:
    """The repairs the check offers, as a preview (nothing is written): narrow parts outside the parent cut to its
    edge, overlaps left to one neighbour, gaps given to the neighbour with the longest shared edge, slivers absorbed;
    with the check's error and warning counts before and after."""
    plan = boundary_repair.preview(session, generation_id, kinds=_kinds(kinds), snap_m=snap_m)
    if plan.get("refusal_zh") and i18n.of_request(request) == i18n.ZH:  # shown on the page as it is
        plan["refusal"] = plan["refusal_zh"]
    return plan


@router.post("/{generation_id}/repairs", response_model=RepairApplied, responses=problems(404, 409))
def apply_repairs(
    generation_id: PathId,
    body: RepairIn,
    session: SessionDep,
    registry: RegistryDep,
    who: Annotated[Principal, allow("generation.edit")],
) -> dict:
    """Apply the repairs the preview (GET) offers to a draft, as one edit of its log that undo reverses; planners
    only. 409 when the generation is not a draft or a locked area would change; 422 naming `kinds` when there is
    nothing to repair. Committed before the answer."""
    out = boundary_repair.apply(session, generation_id, who.name, kinds=tuple(body.kinds), snap_m=body.snap_m)
    after_commit(session, lambda: registry.forget(generation_id))  # a cached lookup index of the draft is stale
    return out


@router.get("/{generation_id}/relocated-cases", response_model=RelocatedCases, responses=problems(404))
def relocated_cases(
    generation_id: PathId,
    session: SessionDep,
    registry: RegistryDep,
    who: Annotated[Principal, allow("generation.read")],
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> dict:
    """Cases whose grid or micro-grid would change under this generation's boundaries."""
    gens.get_generation(session, generation_id)
    frame = gens.relocate_cases(session, registry.for_generation(generation_id))
    rows = frame.head(max(1, min(limit, 10_000))).to_dict("records")
    return {"generation_id": generation_id, "count": len(frame), "cases": rows}


@router.post("/{generation_id}/activate", response_model=Activated, responses=problems(404, 409))
def activate(
    generation_id: PathId,
    body: ActivateIn,
    session: SessionDep,
    request: Request,
    who: Annotated[Principal, allow("generation.activate")],
) -> dict:
    """Bring an approved (scheduled) generation forward: it takes effect from `effective_from`, today or earlier
    (China time), instead of on its scheduled day. Only for a generation already approved, by an approver who
    neither created nor submitted it (drafts go through submit and approve, see the publishing routes). The change
    is committed, then the lookup index of the new boundaries is built and swapped in before the answer, so every
    locate after it uses the new boundaries; locates in flight during the build finish on the old index."""
    gen = gens.get_generation(session, generation_id)
    if gen.status == "approved":
        publish.four_eyes(gen, who.key)
    done = publish.activate_generation(
        session, generation_id, body.effective_from, actor=who.key, from_states=("approved",)
    )
    gen = done["generation"]
    out = gens.generation_dict(gen)
    out["activation"] = {k: v for k, v in done.items() if k != "generation"}
    audit.record(
        session,
        "publish",
        f"generation:{generation_id}",
        {"name": gen.name, "effective_from": body.effective_from.isoformat(), "brought_forward": True},
    )
    commit_now(session)  # the answer reports the index rebuilt from the committed boundaries
    index = request.app.state.reload_index()
    out["index_generation_id"] = index.generation_id if index is not None else None
    return out
