"""Suggest a balanced partition of a community's grids (issue 13 §5): the proposal opens as a new draft."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from api.auth import allow
from api.deps import RegistryDep, SessionDep, after_commit
from api.params import PathId
from gridmap import partition as gpartition
from gridmap import policy
from gridmap.errors import NotFound
from gridmap.policy import Principal

router = APIRouter(prefix="/api/v1/generations", tags=["generations"])


class PartitionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    area: str = Field(min_length=1, max_length=24, description="the community's code")
    grids: list[Annotated[str, Field(min_length=1, max_length=24)]] | None = Field(
        None, min_length=1, max_length=gpartition.MAX_N,
        description="only these adjacent grids of the community are re-partitioned (default: all of its grids)")
    n: int = Field(ge=1, le=gpartition.MAX_N, description="how many grids the community should have")
    tolerance: float = Field(0.10, ge=gpartition.MIN_TOLERANCE, le=gpartition.MAX_TOLERANCE,
                             description="households per grid within this fraction of the mean (0.10 = ±10 %)")
    seed: int = Field(0, ge=0, le=gpartition.MAX_SEED, description="the same seed gives the same proposal")
    name: str | None = Field(None, min_length=1, max_length=200, description="the new draft's name")


class PartitionGrid(BaseModel):
    code: str
    name: str
    new: bool = Field(description="a grid that did not exist before (new code)")
    households: int
    population: int
    deviation: float = Field(description="households against the mean, as a fraction (0.05 = 5 % above)")
    contiguous: bool = Field(description="its micro-grids are connected by shared edges")
    polsby_popper: float = Field(description="compactness 4πA/P² (1 for a disc)")
    microgrids: list[str] = Field(description="its micro-grids' codes in the new draft")


class PartitionOut(BaseModel):
    generation_id: int = Field(description="the new draft holding the proposal")
    source_generation_id: int
    area: str
    n: int
    tolerance: float
    seed: int
    from_grids: list[str] = Field(description="the grids that were re-partitioned (codes before)")
    households: int
    mean_households: float
    method: str = Field(description="current (the plan already met the tolerance), recom (repair of the current "
                                    "plan by ReCom steps), recursive_tree_part, or merge (n = 1)")
    moved_households: int = Field(description="households whose grid changes")
    moved_microgrids: list[str] = Field(description="codes (before) of the micro-grids that change grid")
    polsby_popper: float = Field(description="mean compactness of the grids")
    grids: list[PartitionGrid]
    created: list[str] = Field(description="new codes (grids and micro-grids)")
    retired: list[str] = Field(description="codes no longer in the draft (dropped grids, moved micro-grids)")


@router.post("/{generation_id}/partition", status_code=201, response_model=PartitionOut)
def partition(generation_id: PathId, body: PartitionIn, session: SessionDep, response: Response,
              registry: RegistryDep, who: Annotated[Principal, allow("generation.edit")]) -> dict:
    """Propose grids for a community (or for some adjacent grids of it, `grids`) with households within the tolerance of the mean, contiguous and compact,
    moving as few households as possible (GerryChain over the micro-grids' adjacency, deterministic with `seed`),
    and open the proposal as a new draft copied from generation {generation_id} (planners; the community must be
    in the caller's areas). Committed before the answer. 422 naming n/tolerance when the micro-grids cannot meet
    the tolerance, with the best found."""
    if not policy.within(who, body.area):
        raise NotFound(f"area: no area has code {body.area!r}", field="area",
                       zh=f"区域：没有编码为 {body.area} 的区域。")
    out = gpartition.partition(session, generation_id, body.area, body.n, body.tolerance, body.seed, body.grids,
                               name=body.name, actor=who.key)
    after_commit(session, lambda: registry.forget(out["generation_id"]))
    response.headers["Location"] = f"/api/v1/generations/{out['generation_id']}"
    return out
