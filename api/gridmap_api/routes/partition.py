"""Suggest a balanced partition of a community's grids (issue 13 §5): the proposal opens as a new draft."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Response

from gridmap.access import policy
from gridmap.access.policy import Principal
from gridmap.errors import NotFound
from gridmap.planning import partition as gpartition
from gridmap_api.auth import allow
from gridmap_api.deps import RegistryDep, SessionDep, after_commit
from gridmap_api.params import PathId
from gridmap_api.schemas.common import COMMON, problems
from gridmap_api.schemas.partition import PartitionIn, PartitionOut

router = APIRouter(prefix="/api/v1/generations", tags=["generations"], responses=COMMON)


@router.post("/{generation_id}/partition", status_code=201, response_model=PartitionOut, responses=problems(404, 409))
def partition(
    generation_id: PathId,
    body: PartitionIn,
    session: SessionDep,
    response: Response,
    registry: RegistryDep,
    who: Annotated[Principal, allow("generation.edit")],
) -> dict:
    """Propose grids for a community (or for some adjacent grids of it, `grids`) with households within the
    tolerance of the mean, contiguous and compact, moving as few households as possible (GerryChain over the
    micro-grids' adjacency, deterministic with `seed`), and open the proposal as a new draft copied from
    generation {generation_id} (planners; the community must be in the caller's areas). Committed before the
    answer. 422 naming n/tolerance when the micro-grids cannot meet the tolerance, with the best found."""
    if not policy.within(who, body.area):
        raise NotFound(
            f"area: no area has code {body.area!r}", field="area", zh=f"区域：没有编码为 {body.area} 的区域。"
        )
    out = gpartition.partition(
        session, generation_id, body.area, body.n, body.tolerance, body.seed, body.grids, name=body.name, actor=who.key
    )
    after_commit(session, lambda: registry.forget(out["generation_id"]))
    response.headers["Location"] = f"/api/v1/generations/{out['generation_id']}"
    return out
