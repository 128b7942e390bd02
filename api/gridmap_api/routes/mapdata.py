"""What the map pages load: outlines per level, box and zoom; case points; one area's measures and their series;
the search box; departments. All of it is read-only and holds no personal data."""

from __future__ import annotations

import hashlib
from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Query, Request, Response

from gridmap.access import policy
from gridmap.boundaries.areas import check_bbox, check_level
from gridmap.cases import measures
from gridmap.locating import search
from gridmap.store.tables import Department
from gridmap.views import mapdata
from gridmap_api.auth import allow
from gridmap_api.deps import IndexDep, SessionDep
from gridmap_api.params import Moment
from gridmap_api.schemas.common import COMMON, problems
from gridmap_api.schemas.mapdata import CaseClusters, CasePoints, DepartmentOut, Outlines, SearchOut
from gridmap_api.schemas.measures import AreaMeasures, AreaSeries

router = APIRouter(prefix="/api/v1", tags=["map"], responses=COMMON)
GEOJSON = "application/geo+json"


@router.get(
    "/map/areas",
    response_model=Outlines,
    responses={
        200: {"content": {GEOJSON: {"schema": {"$ref": "#/components/schemas/Outlines"}}}},
        304: {"description": "unchanged since the ETag sent in If-None-Match"},
        **COMMON,
        **problems(503),
    },
)
def map_areas(
    request: Request,
    index: IndexDep,
    who: Annotated[policy.Principal, allow("map.read")],
    level: str,
    zoom: Annotated[int, Query(ge=0, le=24)],
    bbox: Annotated[str | None, Query(max_length=200)] = None,
    max_features: Annotated[int | None, Query(ge=1, le=mapdata.MAX_FEATURES_LIMIT)] = None,
) -> Response:
    """The areas of a level that meet `bbox`, drawn for a zoom: outlines simplified to half a screen pixel as a
    coverage (neighbours still meet), coordinates rounded to a quarter pixel; properties code, name, level,
    parent_code and a label point; only the areas the caller acts for and those above them. `numberMatched` says
    how many areas that is; with `max_features`, a box holding more sends none of them (`numberReturned` 0: draw
    that view from the vector tiles, `/tiles/{level}/{z}/{x}/{y}.mvt`). Cacheable: the answer changes only with
    the active generation (and the caller's scope)."""
    check_level(level)
    box = check_bbox(bbox)
    state = request.app.state
    scope = "*" if who.everywhere else ",".join(sorted(s.code for s in who.scopes))
    key = f"{state.db_key}|{index.generation_id}|{level}|{zoom}|{box}|{scope}|{max_features}"
    etag = '"' + hashlib.sha1(key.encode()).hexdigest()[:20] + '"'
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers={"ETag": etag})
    with state.sessionmaker() as session:
        shapes = state.area_shapes.get(session, state.db_key, index.generation_id)
    body = shapes.collection(
        level,
        box,
        zoom,
        visible=None if who.everywhere else (lambda code: policy.sees_area(who, code)),
        max_features=max_features,
    )
    return Response(
        body,
        media_type=GEOJSON,
        headers={"ETag": etag, "Cache-Control": "private, max-age=300", "Vary": "Cookie, Authorization"},
    )


@router.get("/map/cases", response_model=CasePoints, responses={**COMMON, **problems(404)})
def map_cases(
    session: SessionDep,
    request: Request,
    who: Annotated[policy.Principal, allow("map.read")],
    since: Moment | None = None,
    until: Moment | None = None,
    state: str | None = None,
    category: str | None = None,
    source: str | None = None,
    bbox: str | None = None,
    area: str | None = None,
    limit: Annotated[int, Query(ge=1, le=mapdata.MAX_CASE_POINTS)] = mapdata.MAX_CASE_POINTS,
    all_or_none: bool = False,
) -> dict:
    """Case points for the map as one compact table (`fields`, `rows`): id, lon, lat, state, deadline colour
    (green / yellow / red while a clock runs), category code, source, reported time. Filters: reported in
    [since, until), `state` (comma-separated states, `open`, `overdue`), `category` and `source` (comma-separated
    codes), `bbox`, `area` (an area code). More than `limit` cases: the newest `limit` and `truncated`; with
    `all_or_none`, none of them (`truncated`, no rows: draw the clusters, `/map/cases/clusters`)."""
    split = mapdata.CaseFilter.split
    flt = mapdata.CaseFilter(since, until, split(state), split(category), split(source), check_bbox(bbox), area)
    if area:
        policy.check_area(who, area)
    return mapdata.case_points(
        session, flt, calendar=request.app.state.calendar(), limit=limit, who=who, all_or_none=all_or_none
    )


@router.get("/map/cases/clusters", response_model=CaseClusters, responses={**COMMON, **problems(404)})
def map_case_clusters(
    session: SessionDep,
    request: Request,
    who: Annotated[policy.Principal, allow("map.read")],
    bbox: Annotated[str, Query(max_length=200)],
    zoom: Annotated[int, Query(ge=mapdata.MIN_CLUSTER_ZOOM, le=mapdata.MAX_CLUSTER_ZOOM)],
    since: Moment | None = None,
    until: Moment | None = None,
    state: Annotated[str | None, Query(max_length=500)] = None,
    category: Annotated[str | None, Query(max_length=2000)] = None,
    source: Annotated[str | None, Query(max_length=200)] = None,
    area: Annotated[str | None, Query(max_length=32)] = None,
) -> dict:
    """A year of cases drawn zoomed out without sending every point: the cases (filters as `/map/cases`) grouped
    by the database into cells of about 64 screen pixels at `zoom` inside `bbox` (required; at most 20,000 cells),
    as GeoJSON points with `count`, `worst_state`, `worst_deadline` (overdue / due_soon / ok), the cases' `bbox`
    and, for one case, its `case_id`. Only the cases the caller may see: the counts add up to what
    `GET /cases` gives for the same filters and box."""
    split = mapdata.CaseFilter.split
    flt = mapdata.CaseFilter(since, until, split(state), split(category), split(source), check_bbox(bbox), area)
    if area:
        policy.check_area(who, area)
    return mapdata.case_clusters(session, flt, zoom, calendar=request.app.state.calendar(), who=who)


@router.get("/areas/{code}/measures", response_model=AreaMeasures, responses={**COMMON, **problems(404)})
def area_measures(
    code: str,
    session: SessionDep,
    who: Annotated[policy.Principal, allow("measures.read")],
    since: Moment | None = None,
    until: Moment | None = None,
) -> dict:
    """The measures of one area (any level) over [since, until), by default this month (formulas:
    `gridmap.cases.measures`). Only for areas the caller acts for."""
    policy.check_area(who, code, inside=True)
    period, record = measures.area_measures(session, code, since=since, until=until)
    return {"code": code, "since": period.since.isoformat(), "until": period.until.isoformat(), "measures": record}


@router.get("/areas/{code}/series", response_model=AreaSeries, responses={**COMMON, **problems(404)})
def area_series(
    request: Request,
    code: str,
    session: SessionDep,
    who: Annotated[policy.Principal, allow("measures.read")],
    months: int = 12,
    until: Moment | None = None,
) -> dict:
    """The measures of one area month by month (China time), the last `months` months (1–36)."""
    policy.check_area(who, code, inside=True)
    # read only: the hours to close are read on a second session beside the counts
    series = measures.area_series(session, code, months=months, until=until, beside=request.app.state.sessionmaker)
    return {"code": code, "months": series}


@router.get("/search", response_model=SearchOut, response_model_exclude_unset=True, responses=COMMON)
def search_all(session: SessionDep, who: Annotated[policy.Principal, allow("search")], q: str, limit: int = 10) -> dict:
    """Areas by code or name, compounds, buildings and addresses, cases by number; best first; only what the
    caller may see."""
    return {"q": q, "items": search.search(session, q, limit=limit, who=who)}


@router.get("/departments", response_model=list[DepartmentOut], responses=problems(401))
def departments(session: SessionDep, who: Annotated[policy.Principal, allow("signed_in")]) -> list[dict]:
    """The functional departments (职能部门) cases can go to."""
    return [{"code": d.code, "name": d.name} for d in session.scalars(sa.select(Department).order_by(Department.code))]
