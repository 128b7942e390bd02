"""Partitioning an area of a draft into grids."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from gridmap.planning import partition as gpartition


class PartitionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    area: str = Field(min_length=1, max_length=24, description="the community's code")
    grids: list[Annotated[str, Field(min_length=1, max_length=24)]] | None = Field(
        None,
        min_length=1,
        max_length=gpartition.MAX_N,
        description="only these adjacent grids of the community are re-partitioned (default: all of its grids)",
    )
    n: int = Field(
        ge=1,
        le=gpartition.MAX_N,
        description="how many grids the community should have",
    )
    tolerance: float = Field(
        0.10,
        ge=gpartition.MIN_TOLERANCE,
        le=gpartition.MAX_TOLERANCE,
        description="households per grid within this fraction of the mean (0.10 = ±10 %)",
    )
    seed: int = Field(
        0,
        ge=0,
        le=gpartition.MAX_SEED,
        description="the same seed gives the same proposal",
    )
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
    method: str = Field(
        description="current (the plan already met the tolerance), recom (repair of the current "
        "plan by ReCom steps), recursive_tree_part, or merge (n = 1)"
    )
    moved_households: int = Field(description="households whose grid changes")
    moved_microgrids: list[str] = Field(description="codes (before) of the micro-grids that change grid")
    polsby_popper: float = Field(description="mean compactness of the grids")
    grids: list[PartitionGrid]
    created: list[str] = Field(description="new codes (grids and micro-grids)")
    retired: list[str] = Field(description="codes no longer in the draft (dropped grids, moved micro-grids)")
