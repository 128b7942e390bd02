"""Publishing boundaries: the bodies of approve and reject and the assignments a draft gives its grids, the
published generation, the activation summary, and the impact preview."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from gridmap_api.params import Day, Id


class ApproveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    effective_from: Day = Field(
        description="the day the boundaries take effect (00:00 China time); today or "
        "earlier takes effect at once, a later day is scheduled"
    )


class RejectIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(
        min_length=1,
        max_length=1000,
        description="why the draft goes back to the planner",
    )


class StaffIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    staff_id: Id
    role: str = Field(
        min_length=1,
        max_length=32,
        description="grid_head, fulltime_worker, parttime_worker, police, building_head or volunteer",
    )


class AssignmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    area_code: str = Field(min_length=6, max_length=24, pattern=r"^[0-9]+$")
    branch_id: Id | None = Field(
        None,
        description="the party branch (grid_branch; building_group for a micro-grid)",
    )
    staff: list[StaffIn] = Field(default_factory=list, max_length=50)


class Ref(BaseModel):
    id: int
    name: str


class PlannedStaff(BaseModel):
    """A person serving a grid before or after a plan, with the role in Chinese and English (no phone: a plan is
    read by planners and approvers, not by those who call staff)."""

    id: int
    name: str
    role: str
    role_zh: str
    role_en: str


class GridAssignment(BaseModel):
    code: str
    name: str
    new: bool = Field(description="a code the active generation does not have")
    recoded_from: str | None = Field(
        None,
        description="the old code of a grid only re-coded (same outline): it "
        "keeps that code's branch and staff unless planned",
    )
    planned: bool = Field(description="the draft plans this grid's branch or staff (else it keeps its code's)")
    branch: Ref | None
    staff: list[PlannedStaff]


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
    scheduled: bool = Field(
        False,
        description="approved for a later day: takes effect at 00:00 China time then",
    )
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
    staff_before: list[PlannedStaff]
    staff_after: list[PlannedStaff]
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
