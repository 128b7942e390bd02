"""Publishing boundaries: submit, approve (now or scheduled), reject, the impact preview, and the branches and
staff a draft gives its grids. The rules are `gridmap.planning.publish`'s; these routes only check the input's shape and
length, name the permission, and commit before answering."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request

from gridmap.access.policy import Principal
from gridmap.planning import publish as pub
from gridmap.store import audit
from gridmap.store.tables import Generation
from gridmap_api.auth import allow
from gridmap_api.deps import RegistryDep, SessionDep, SettingsDep, commit_now
from gridmap_api.params import PathId
from gridmap_api.schemas.common import COMMON, problems
from gridmap_api.schemas.publish import (
    ApproveIn,
    AssignmentIn,
    Assignments,
    GenerationOut,
    GridAssignment,
    Impact,
    PublishOut,
    RejectIn,
)

router = APIRouter(prefix="/api/v1/generations", tags=["publishing"], responses=COMMON)


def _out(gen: Generation, **extra) -> dict:
    fields = GenerationOut.model_fields
    return {"generation": {k: getattr(gen, k) for k in fields}, **extra}


@router.post("/{generation_id}/submit", response_model=PublishOut, responses=problems(404, 409))
def submit(
    generation_id: PathId,
    session: SessionDep,
    settings: SettingsDep,
    who: Annotated[Principal, allow("generation.edit")],
) -> dict:
    """A planner hands a draft in for approval (draft → submitted). Refused (409) while the boundary check has
    errors or a grid has no party branch."""
    gen = pub.submit(session, generation_id, who.key, household_band=settings.check_household_band)
    audit.record(session, "submit", f"generation:{generation_id}", {"name": gen.name})
    out = _out(gen)
    return out


@router.post("/{generation_id}/approve", response_model=PublishOut, responses=problems(404, 409))
def approve(
    generation_id: PathId,
    body: ApproveIn,
    session: SessionDep,
    settings: SettingsDep,
    request: Request,
    who: Annotated[Principal, allow("generation.activate")],
) -> dict:
    """An approver other than the draft's creator and submitter approves it: effective today or earlier, it is
    active when this answers (open cases re-located, branches and staff applied, the lookup index swapped);
    effective later, it is scheduled and takes effect at 00:00 China time on that day, even across restarts."""
    result = pub.approve(
        session, generation_id, who.key, body.effective_from, household_band=settings.check_household_band
    )
    gen = result["generation"]
    audit.record(
        session,
        "publish" if not result["scheduled"] else "schedule",
        f"generation:{generation_id}",
        {"name": gen.name, "effective_from": body.effective_from.isoformat()},
    )
    activation = result["activation"]
    out = _out(
        gen,
        scheduled=result["scheduled"],
        activation={k: v for k, v in activation.items() if k != "generation"} if activation else None,
    )
    commit_now(session)  # the answer reports the index rebuilt from the committed boundaries
    if activation:
        index = request.app.state.reload_index()
        out["index_generation_id"] = index.generation_id if index is not None else None
    return out


@router.post("/{generation_id}/reject", response_model=PublishOut, responses=problems(404, 409))
def reject(
    generation_id: PathId, body: RejectIn, session: SessionDep, who: Annotated[Principal, allow("generation.activate")]
) -> dict:
    """An approver sends a submitted or scheduled generation back to draft, with the reason (kept in the audit
    log)."""
    gen = pub.reject(session, generation_id, who.key, body.reason)
    audit.record(session, "reject", f"generation:{generation_id}", {"name": gen.name, "reason": body.reason})
    out = _out(gen)
    return out


@router.get("/{generation_id}/impact", response_model=Impact, responses=problems(404, 409))
def impact(
    generation_id: PathId,
    session: SessionDep,
    registry: RegistryDep,
    who: Annotated[Principal, allow("generation.read")],
) -> dict:
    """What publishing this generation would move, per grid that changes against the active generation."""
    pub._generation(session, generation_id)
    active = registry.active()
    return pub.impact(session, generation_id, old_index=active, new_index=registry.for_generation(generation_id))


@router.get("/{generation_id}/assignments", response_model=Assignments, responses=problems(404))
def get_assignments(
    generation_id: PathId, session: SessionDep, who: Annotated[Principal, allow("generation.read")]
) -> dict:
    """The party branch and staff of every grid of the generation as it would take effect."""
    return pub.assignments(session, generation_id)


@router.put("/{generation_id}/assignments", response_model=GridAssignment, responses=problems(404, 409))
def put_assignment(
    generation_id: PathId, body: AssignmentIn, session: SessionDep, who: Annotated[Principal, allow("generation.edit")]
) -> dict:
    """Plan the branch and staff of one grid (or micro-grid) of a draft; applied when it takes effect. No branch
    and no staff removes the grid's plan."""
    out = pub.put_assignment(
        session,
        generation_id,
        body.area_code,
        body.branch_id,
        [(s.staff_id, s.role) for s in body.staff],
        actor=who.key,
    )
    return out
