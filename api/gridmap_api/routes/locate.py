"""Point or address → grid chain, party branch and staff; one at a time or in batches."""

from __future__ import annotations

import asyncio
import math
from typing import Annotated

import pandas as pd
from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool

from gridmap.access.policy import Principal
from gridmap.errors import DatabaseNotReady, InvalidInput
from gridmap.geo import crs as gcrs
from gridmap.locating.batch import LEVELS, locate_columns
from gridmap.locating.locate import PEOPLE_TTL_S, LocateOptions, PeopleNotCached, people_age, warm_people
from gridmap.locating.locate import locate as locate_point
from gridmap_api.auth import allow
from gridmap_api.deps import IndexDep, RegistryDep, SessionDep, SettingsDep
from gridmap_api.params import Day
from gridmap_api.schemas.common import COMMON, problems
from gridmap_api.schemas.locate import LocateBatchIn, LocateBatchOut, Located

router = APIRouter(prefix="/api/v1", tags=["locate"], responses=COMMON)
INLINE_MAX_M = 500.0  # larger near/nearest/accuracy distances may take milliseconds: those go to the thread pool


def _options(settings, near_m: float | None, nearest_m: float | None) -> LocateOptions:
    base = settings.locate_options()
    options = LocateOptions(
        base.near_m if near_m is None else near_m,
        base.nearest_m if nearest_m is None else nearest_m,
        base.service_margin_m,
    )
    options.check()
    return options


def _refresh_people(state) -> None:
    """Reload branch and staff in the thread pool, once at a time; answers meanwhile use the previous load
    (at most `PEOPLE_TTL_S` seconds plus one reload old)."""
    if getattr(state, "people_task", None) is not None and not state.people_task.done():
        return

    def reload() -> None:
        with state.sessionmaker() as session:
            warm_people(session)

    state.people_task = asyncio.get_running_loop().create_task(run_in_threadpool(reload))


@router.get(
    "/locate", response_model=Located, response_model_exclude_unset=True, responses=problems(401, 403, 422, 503)
)
async def locate(
    request: Request,
    who: Annotated[Principal, allow("locate")],
    lon: float | None = None,
    lat: float | None = None,
    crs: str = "wgs84",
    address: str | None = Query(None, max_length=300),
    accuracy_m: float | None = None,
    as_of: Day | None = None,
    near_m: float | None = None,
    nearest_m: float | None = None,
) -> dict:
    """Locate a point given in `crs` (wgs84, cgcs2000, gcj02, bd09 or EPSG:nnnn) or an `address` text.

    `as_of` answers with the boundaries in force on that day; `accuracy_m` (GPS accuracy radius) widens the
    near-boundary check. With both a point and an address the point decides and the address is cross-checked."""
    state = request.app.state  # no Depends(): each dependency costs FastAPI time on the hot path
    registry = state.registry
    options = _options(state.settings, near_m, nearest_m)
    index = registry.current
    small = max(options.near_m, options.nearest_m, accuracy_m or 0.0) <= INLINE_MAX_M
    age = people_age(state.db_key) if (small and address is None and as_of is None and index is not None) else None
    if age is not None:
        # everything is in memory and the distance checks are short: answer on the event loop (about 0.1 ms
        # of CPU) without the thread-pool hop, which costs more than the answer
        if age > PEOPLE_TTL_S:
            _refresh_people(state)
        try:
            return locate_point(None, index, lon, lat, crs, accuracy_m=accuracy_m, options=options, db=state.db_key)
        except PeopleNotCached:
            pass  # dropped since `people_age` saw it (an activation heard meanwhile): answered with a session below

    def work() -> dict:
        with state.sessionmaker() as session:
            index = registry.for_date(session, as_of) if as_of is not None else registry.active()
            if index is None:
                raise DatabaseNotReady(
                    "no boundaries loaded: run `gridmap demo` or import a generation first",
                    zh="尚未导入边界：请先运行 `gridmap demo` 或导入一版边界。",
                )
            return locate_point(
                session, index, lon, lat, crs, address=address, accuracy_m=accuracy_m, as_of=as_of, options=options
            )

    return await run_in_threadpool(work)


def _clean(value):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value


@router.post("/locate/batch", response_model=LocateBatchOut, responses={**COMMON, **problems(503)})
def locate_batch(
    body: LocateBatchIn,
    session: SessionDep,
    registry: RegistryDep,
    index: IndexDep,
    settings: SettingsDep,
    who: Annotated[Principal, allow("locate")],
) -> dict:
    """Locate up to `max_batch` points or addresses in one request; one bad item never fails the others:
    it comes back with method `none` and a flag saying why."""
    if len(body.items) > settings.max_batch:
        raise InvalidInput(
            f"items: {len(body.items)} items; at most {settings.max_batch} per request "
            "(use `gridmap locate-file` for more)",
            field="items",
            zh=f"条目：{len(body.items)} 条，每次请求最多 {settings.max_batch} 条（更多请用 `gridmap locate-file`）。",
        )
    gcrs.parse_crs(body.crs)
    for i, item in enumerate(body.items):
        if (item.lon is None) != (item.lat is None):
            raise InvalidInput(
                f"items.{i}: give both lon and lat, or neither",
                field=f"items.{i}",
                zh=f"第 {i + 1} 条（items.{i}）：经度和纬度须同时提供，或都不提供。",
            )
        if item.lon is None and not item.address:
            raise InvalidInput(
                f"items.{i}: give lon and lat, or an address",
                field=f"items.{i}",
                zh=f"第 {i + 1} 条（items.{i}）：请提供经度和纬度，或一个地址。",
            )
    if body.as_of is not None:
        index = registry.for_date(session, body.as_of)
    frame = pd.DataFrame([item.model_dump() for item in body.items])
    located = locate_columns(
        frame,
        index,
        crs=body.crs,
        session=session,
        near_m=body.near_m,
        service_margin_m=settings.service_margin_m,
        on=body.as_of,
    )
    # columns as arrays (no per-row pandas lookups); the answer itself is one JSON object per item
    col = {name: located.column(name).tolist() for name in located.names()}
    n = len(frame)
    none = [None] * n
    codes = [col[f"{lv}_code"] for lv in LEVELS]
    split: dict = {}
    flags = [split[f] if f in split else split.setdefault(f, [x for x in f.split(";") if x]) for f in col["flags"]]
    confidence, place = col.get("address_confidence", none), col.get("address_place", none)
    results = [
        {
            "id": item_id,
            "point": {"lon": x, "lat": y} if not math.isnan(x) else None,
            "codes": dict(zip(LEVELS, chain)),
            "grid_name": name,
            "branch": branch,
            "method": method,
            "flags": list(flag),
            "candidates": [c for c in (cand or "").split(";") if c],
            "address_confidence": _clean(conf),
            "address_place": _clean(matched),
        }
        for item_id, x, y, chain, name, branch, method, flag, cand, conf, matched in zip(
            frame["id"].tolist(),
            col["lon_wgs84"],
            col["lat_wgs84"],
            zip(*codes),
            col["grid_name"],
            col["branch"],
            col["method"],
            flags,
            col["candidates"],
            confidence,
            place,
        )
    ]
    return {"generation_id": index.generation_id, "count": len(results), "results": results}
