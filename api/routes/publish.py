"""Publishing boundaries: submit, approve (now or scheduled), reject, the impact preview, and the branches and
staff a draft gives its grids. The rules are `gridmap.publish`'s; these routes only check the input's shape and
length, name the permission, and commit before answering."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from api.auth import allow
from api.deps import RegistryDep, SessionDep, SettingsDep, commit_now
from api.params import Day, Id, PathId
from gridmap import audit
from gridmap import publish as pub
from gridmap.policy import Principal
from gridmap.tables import Generation

router = APIRouter(prefix="/api/v1/generations", tags=["publishing"])


class ApproveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    effective_from: Day = Field(description="the day the boundaries take effect (00:00 China time); today or "
                                            "earlier takes effect at once, a later day is scheduled")


class RejectIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=1000, description="why the draft goes back to the planner")


class StaffIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    staff_id: Id
    role: str = Field(min_length=1, max_length=32, description="grid_head, fulltime_worker, parttime_worker, police, "
                                                               "building_head or volunteer")


class AssignmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    area_code: str = Field(min_length=6, max_length=24, pattern=r"^[0-9]+$")
    branch_id: Id | None = Field(None, description="the party branch (grid_branch; building_group for a micro-grid)")
    staff: list[StaffIn] = Field(default_factory=list, max_length=50)


class Ref(BaseModel):
    id: int
    name: str


class StaffOut(BaseModel):
    id: int
    name: str
    role: str
    role_zh: str
    role_en: str


class GridAssignment(BaseModel):
    code: str
    name: str
    new: bool = Field(description="a code the active generation does not have")
    recoded_from: str | None = Field(None, description="the old code of a grid only re-coded (same outline): it "
                                                       "keeps that code's branch and staff unless planned")
    planned: bool = Field(description="the draft plans this grid's branch or staff (else it keeps its code's)")
    branch: Ref | None
    staff: list[StaffOut]


class SharedBranch(BaseModel):
    branch_id: int
    codes: list[str]


class Assignments(BaseModel):
    generation_id: int
    grids: list[GridAssignment]
    missing: list[str] = Field(description="grids without a party branch (publishing is refused while any)")
    shared: list[SharedBranch] = Field(description="branches given to more than one grid (refused too)")


class Activation(BaseModel):
    generation_id: int
    previous_id: int | None
    effective_from: str
    branches_assigned: list[dict]
    branch_rows_closed: int
    staff_assigned: int
    staff_removed: int
    carried: int = Field(description="branch and staff rows carried from old codes to re-coded areas")
    merged_branches: list[dict]
    places_moved: int
    cases_relocated: int


class GenerationOut(BaseModel):
    id: int
    name: str
    status: Literal["draft", "submitted", "approved", "active", "retired"]
    effective_from: dt.date | None
    effective_to: dt.date | None
    note: str | None
    base_id: int | None
    created_by: str | None
    submitted_by: str | None
    submitted_at: dt.datetime | None
    approved_by: str | None
    approved_at: dt.datetime | None
    activated_at: dt.datetime | None


class PublishOut(BaseModel):
    generation: GenerationOut
    scheduled: bool = Field(False, description="approved for a later day: takes effect at 00:00 China time then")
    activation: Activation | None = None
    index_generation_id: int | None = Field(None, description="the generation the lookup index serves after this")


class Moved(BaseModel):
    buildings: int
    compounds: int
    households: int
    population: int
    party_members: int


class OpenCase(BaseModel):
    id: int
    number: str
    state: str
    from_grid: str | None
    to_grid: str | None
    to_microgrid: str | None
    holder: dict | None = Field(description="the worker or department holding it now")


class History(BaseModel):
    recorded: int = Field(description="cases recorded under this grid code, all time")
    in_old_outline: int = Field(description="all cases whose point lies in the active outline")
    in_new_outline: int = Field(description="all cases whose point lies in the draft's outline")


class GridImpact(BaseModel):
    code: str
    name: str
    change: Literal["new", "retired", "redrawn"]
    households_before: int
    households_after: int
    moved_in: Moved
    moved_out: Moved
    branch_before: Ref | None
    branch_after: Ref | None
    staff_before: list[StaffOut]
    staff_after: list[StaffOut]
    open_cases_in: list[OpenCase]
    open_cases_out: list[OpenCase]
    historical_cases: History


class Impact(BaseModel):
    generation_id: int
    active_id: int
    created: list[str]
    retired: list[str]
    redrawn: list[str]
    grids: list[GridImpact]
    totals: dict[str, int]


def _out(gen: Generation, **extra) -> dict:
    fields = GenerationOut.model_fields
    return {"generation": {k: getattr(gen, k) for k in fields}, **extra}


@router.post("/{generation_id}/submit", response_model=PublishOut)
def submit(generation_id: PathId, session: SessionDep, settings: SettingsDep,
           who: Annotated[Principal, allow("generation.edit")]) -> dict:
    """A planner hands a draft in for approval (draft → submitted). Refused (409) while the boundary check has
    errors or a grid has no party branch."""
    gen = pub.submit(session, generation_id, who.key, household_band=settings.check_household_band)
    audit.record(session, "submit", f"generation:{generation_id}", {"name": gen.name})
    out = _out(gen)
    return out


@router.post("/{generation_id}/approve", response_model=PublishOut)
def approve(generation_id: PathId, body: ApproveIn, session: SessionDep, settings: SettingsDep, request: Request,
            who: Annotated[Principal, allow("generation.activate")]) -> dict:
    """An approver other than the draft's creator and submitter approves it: effective today or earlier, it is
    active when this answers (open cases re-located, branches and staff applied, the lookup index swapped);
    effective later, it is scheduled and takes effect at 00:00 China time on that day, even across restarts."""
    result = pub.approve(session, generation_id, who.key, body.effective_from,
                         household_band=settings.check_household_band)
    gen = result["generation"]
    audit.record(session, "publish" if not result["scheduled"] else "schedule", f"generation:{generation_id}",
                 {"name": gen.name, "effective_from": body.effective_from.isoformat()})
    activation = result["activation"]
    out = _out(gen, scheduled=result["scheduled"],
               activation={k: v for k, v in activation.items() if k != "generation"} if activation else None)
    commit_now(session)  # the answer reports the index rebuilt from the committed boundaries
    if activation:
        index = request.app.state.reload_index()
        out["index_generation_id"] = index.generation_id if index is not None else None
    return out


@router.post("/{generation_id}/reject", response_model=PublishOut)
def reject(generation_id: PathId, body: RejectIn, session: SessionDep,
           who: Annotated[Principal, allow("generation.activate")]) -> dict:
    """An approver sends a submitted or scheduled generation back to draft, with the reason (kept in the audit
    log)."""
    gen = pub.reject(session, generation_id, who.key, body.reason)
    audit.record(session, "reject", f"generation:{generation_id}", {"name": gen.name, "reason": body.reason})
    out = _out(gen)
    return out


@router.get("/{generation_id}/impact", response_model=Impact)
def impact(generation_id: PathId, session: SessionDep, registry: RegistryDep,
           who: Annotated[Principal, allow("generation.read")]) -> dict:
    """What publishing this generation would move, per grid that changes against the active generation."""
    pub._generation(session, generation_id)
    active = registry.active()
    return pub.impact(session, generation_id, old_index=active, new_index=registry.for_generation(generation_id))


@router.get("/{generation_id}/assignments", response_model=Assignments)
def get_assignments(generation_id: PathId, session: SessionDep,
                    who: Annotated[Principal, allow("generation.read")]) -> dict:
    """The party branch and staff of every grid of the generation as it would take effect."""
    return pub.assignments(session, generation_id)


@router.put("/{generation_id}/assignments", response_model=GridAssignment)
def put_assignment(generation_id: PathId, body: AssignmentIn, session: SessionDep,
                   who: Annotated[Principal, allow("generation.edit")]) -> dict:
    """Plan the branch and staff of one grid (or micro-grid) of a draft; applied when it takes effect. No branch
    and no staff removes the grid's plan."""
    out = pub.put_assignment(session, generation_id, body.area_code, body.branch_id,
                             [(s.staff_id, s.role) for s in body.staff], actor=who.key)
    return out
