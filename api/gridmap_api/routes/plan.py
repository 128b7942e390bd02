"""Planner edits of a draft (issue 13 §3): split, merge, move a shared vertex or edge, reassign buildings, compounds
or leaves, lock — and undo/redo from the edit log. The work is `gridmap.planning.edit`'s; every route commits before it
answers and drops the draft's cached lookup index (the map's outline cache holds the active generation only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request

from gridmap.access.policy import Principal
from gridmap.planning import edit as plan_edit
from gridmap_api.auth import allow
from gridmap_api.deps import RegistryDep, SessionDep, after_commit
from gridmap_api.params import PathId
from gridmap_api.schemas.common import COMMON, problems
from gridmap_api.schemas.plan import EditIn, EditLogRow, EditResult

router = APIRouter(prefix="/api/v1/generations", tags=["planning"], responses=COMMON)


def _done(request: Request, registry, generation_id: int) -> None:
    registry.forget(generation_id)  # a cached lookup index of the draft is stale now
    # The map's outline cache (`app.state.area_shapes`) holds the active generation's outlines only, and only a
    # draft is edited, so there is nothing of it to drop; should the cache learn per-generation eviction, use it.
    forget = getattr(request.app.state.area_shapes, "forget", None)
    if forget is not None:
        forget(generation_id)


@router.post("/{generation_id}/edits", response_model=EditResult, responses=problems(404, 409))
def edit(
    generation_id: PathId,
    body: EditIn,
    session: SessionDep,
    registry: RegistryDep,
    request: Request,
    who: Annotated[Principal, allow("generation.edit")],
) -> dict:
    """Apply one edit to a draft; the answer holds the rows written (new geometries), codes created and retired,
    and the households and population of every area before and after.

    - `{"op":"split","code":LEAF,"line":LineString}` — two new leaves with new codes; the old code retires.
    - `{"op":"merge","codes":[LEAF,...]}` — adjacent leaves of one parent become one leaf with a new code.
    - `{"op":"move_vertex","from":[lon,lat],"to":[lon,lat],"codes":[...]?}` — every leaf with the vertex moves it.
    - `{"op":"move_edge","codes":[A,B],"line":LineString}` — the new course of A and B's shared edge.
    - `{"op":"reassign","places":[ids],"to":LEAF}` / `{"op":"reassign","compound":ID,"to":LEAF}` — paint
      buildings (or a compound's buildings) to a neighbouring leaf; the boundary follows their Voronoi cells.
    - `{"op":"reassign","codes":[LEAF,...],"to":PARENT}` — leaves move to an adjacent parent, with new codes.
    - `{"op":"lock","codes":[...],"locked":true|false}` — locked areas (and all under them) refuse edits.

    409 when the generation is not a draft or a locked area would change; 422 naming the field otherwise."""
    op = body.model_dump(by_alias=True, exclude_none=True)
    out = plan_edit.apply(session, generation_id, op, who.name)
    after_commit(session, lambda: _done(request, registry, generation_id))
    return out


@router.post("/{generation_id}/edits/undo", response_model=EditResult, responses=problems(404, 409))
def undo(
    generation_id: PathId,
    session: SessionDep,
    registry: RegistryDep,
    request: Request,
    who: Annotated[Principal, allow("generation.edit")],
) -> dict:
    """Undo the draft's last edit: the rows it changed get back their exact geometries and numbers (409 when there
    is nothing to undo)."""
    out = plan_edit.undo(session, generation_id, who.name)
    after_commit(session, lambda: _done(request, registry, generation_id))
    return out


@router.post("/{generation_id}/edits/redo", response_model=EditResult, responses=problems(404, 409))
def redo(
    generation_id: PathId,
    session: SessionDep,
    registry: RegistryDep,
    request: Request,
    who: Annotated[Principal, allow("generation.edit")],
) -> dict:
    """Redo the edit undone last (409 when there is none; a new edit after an undo drops what could be redone)."""
    out = plan_edit.redo(session, generation_id, who.name)
    after_commit(session, lambda: _done(request, registry, generation_id))
    return out


@router.get("/{generation_id}/edits", response_model=list[EditLogRow], responses=problems(404))
def edits(generation_id: PathId, session: SessionDep, who: Annotated[Principal, allow("generation.read")]) -> list:
    """The draft's edit log, oldest first (undone edits are marked until a new edit drops them)."""
    return plan_edit.history(session, generation_id)
