"""Exchange with GIS tools (issue 13 §7): a generation's boundaries as a file (`router`), and OGC API – Features at
/ogc (`ogc_router`) for QGIS, ArcGIS, GDAL and other clients. The documents come from `gridmap.boundaries.export`
and `gridmap.views.ogc`; these routes parse the request and answer."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path as FilePath
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import FileResponse, JSONResponse
from starlette.background import BackgroundTask

from gridmap.access import policy
from gridmap.access.policy import Principal
from gridmap.boundaries import export as boundary_export
from gridmap.errors import InvalidInput
from gridmap.views import ogc
from gridmap_api.auth import allow
from gridmap_api.deps import SessionDep
from gridmap_api.errors import domain_problem
from gridmap_api.params import PathId
from gridmap_api.schemas.common import COMMON, GeoJSONResponse, binary, problems
from gridmap_api.schemas.ogc import BoundaryFeature, BoundaryPage, Collection, Collections, Conformance, Landing

router = APIRouter(prefix="/api/v1/generations", tags=["generations"], responses=COMMON)
ogc_router = APIRouter(prefix="/ogc", tags=["OGC API – Features"], responses={**COMMON, **problems(404)})

ExportFormat = Literal["geojson", "gpkg", "shp", "kml"]
CollectionId = Annotated[str, Path(description="district, subdistrict, community, grid or microgrid")]
ExportLevel = Literal["district", "subdistrict", "community", "grid", "microgrid", "all"]


@router.get(
    "/{generation_id}/export",
    response_class=FileResponse,
    responses={
        **binary(
            *(f.media_type for f in boundary_export.FORMATS.values()),
            description="the file: GeoJSON, GeoPackage, a zip of Shapefiles (with .cpg: UTF-8) or KML",
        ),
        **COMMON,
        **problems(404),
    },
)
def export(
    generation_id: PathId,
    session: SessionDep,
    who: Annotated[Principal, allow("generation.read")],
    level: Annotated[ExportLevel, Query(description="one level, or all (the default): one layer per level")] = "all",
    format: Annotated[
        ExportFormat, Query(description="geojson (default), gpkg, shp (a zip with .cpg) or kml")
    ] = "geojson",
) -> FileResponse:
    """The areas of a generation (any status) in WGS84 (EPSG:4326) with code, name, level, parent, households,
    population and area_m2 — planners, approvers and admins; an account limited to some areas gets those and the
    areas above them (as in /api/v1/areas). Written to a temporary file, sent, then deleted."""
    fmt = boundary_export.check_format(format)
    tmp = FilePath(tempfile.mkdtemp(prefix="gridmap-export-"))
    name = f"gridmap-generation-{generation_id}-{level}{fmt.suffix}"
    try:
        boundary_export.export(
            session, generation_id, tmp / name, level=level, fmt=fmt, visible=lambda code: policy.sees_area(who, code)
        )
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return FileResponse(
        tmp / name,
        media_type=fmt.media_type,
        filename=name,
        background=BackgroundTask(shutil.rmtree, tmp, ignore_errors=True),
    )


# -- OGC API – Features --------------------------------------------------------------------------------------------


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/") + ogc_router.prefix


def _json(body: dict, media_type: str = ogc.JSON, *, crs: bool = False) -> JSONResponse:
    return JSONResponse(body, media_type=media_type, headers={"Content-Crs": f"<{ogc.CRS84}>"} if crs else None)


def _bad_parameter(exc: InvalidInput, request: Request) -> JSONResponse:
    """The standard asks for 400 on an invalid or unknown parameter (the API's other 4xx stay as they are)."""
    return domain_problem(request, exc, status=400, code="InvalidParameterValue")


CRS_DOC = f"{ogc.CRS84} (the only coordinate system served; OGC API – Features Part 2's parameter)"
DATETIME_DOC = (
    "the boundaries in force on this day: a date (2026-01-31) or an instant (2026-01-31T08:00:00Z, "
    "taken in China time); before the first boundaries, no feature matches; intervals are refused"
)


@ogc_router.get("", summary="OGC API landing page", response_model=Landing, responses=problems(400, 401, 403))
def landing(
    request: Request, who: Annotated[Principal, allow("area.read")], f: Annotated[str | None, Query()] = None
) -> JSONResponse:
    """Links to the API definition, the conformance declaration and the collections."""
    try:
        ogc.check_parameters(request.query_params.keys(), {"f"})
        ogc.parse_format(f)
    except InvalidInput as exc:
        return _bad_parameter(exc, request)
    return _json(ogc.landing_page(_base(request), str(request.base_url).rstrip("/") + "/openapi.json"))


@ogc_router.get(
    "/conformance",
    summary="OGC API conformance declaration",
    response_model=Conformance,
    responses=problems(400, 401, 403),
)
def conformance(
    request: Request, who: Annotated[Principal, allow("area.read")], f: Annotated[str | None, Query()] = None
) -> JSONResponse:
    try:
        ogc.check_parameters(request.query_params.keys(), {"f"})
        ogc.parse_format(f)
    except InvalidInput as exc:
        return _bad_parameter(exc, request)
    return _json(ogc.conformance())


@ogc_router.get(
    "/collections",
    summary="OGC API collections: one per level of the active generation",
    response_model=Collections,
    responses=problems(400, 401, 403),
)
def collections(
    request: Request,
    session: SessionDep,
    who: Annotated[Principal, allow("area.read")],
    f: Annotated[str | None, Query()] = None,
) -> JSONResponse:
    try:
        ogc.check_parameters(request.query_params.keys(), {"f"})
        ogc.parse_format(f)
    except InvalidInput as exc:
        return _bad_parameter(exc, request)
    return _json(ogc.collections(session, who, _base(request)))


@ogc_router.get(
    "/collections/{collection_id}",
    summary="OGC API collection",
    response_model=Collection,
    responses=problems(400, 401, 403, 404),
)
def collection(
    collection_id: CollectionId,
    request: Request,
    session: SessionDep,
    who: Annotated[Principal, allow("area.read")],
    f: Annotated[str | None, Query()] = None,
) -> JSONResponse:
    try:
        ogc.check_parameters(request.query_params.keys(), {"f"})
        ogc.parse_format(f)
    except InvalidInput as exc:
        return _bad_parameter(exc, request)
    return _json(ogc.collection(session, who, _base(request), collection_id))


@ogc_router.get(
    "/collections/{collection_id}/items",
    summary="OGC API features of a collection (GeoJSON)",
    response_model=BoundaryPage,
    response_class=GeoJSONResponse,
    responses=problems(400, 401, 403, 404),
)
def items(
    collection_id: CollectionId,
    request: Request,
    session: SessionDep,
    who: Annotated[Principal, allow("area.read")],
    limit: Annotated[
        str | None,
        Query(
            description=f"features per page, 1–{ogc.MAX_LIMIT} "
            f"(default {ogc.DEFAULT_LIMIT}; more is sent as {ogc.MAX_LIMIT})"
        ),
    ] = None,
    offset: Annotated[str | None, Query(description="features to skip (follow the `next` link)")] = None,
    bbox: Annotated[
        str | None, Query(description="minlon,minlat,maxlon,maxlat (CRS84): features whose geometry meets the box")
    ] = None,
    datetime: Annotated[str | None, Query(description=DATETIME_DOC)] = None,
    crs: Annotated[str | None, Query(description=CRS_DOC)] = None,
    bbox_crs: Annotated[str | None, Query(alias="bbox-crs", description=CRS_DOC)] = None,
    f: Annotated[str | None, Query()] = None,
) -> JSONResponse:
    """One page of features, ordered by code, with `next`/`prev` links and numberMatched/numberReturned."""
    try:
        ogc.check_parameters(request.query_params.keys())
        ogc.parse_format(f)
        ogc.parse_crs(crs)
        ogc.parse_crs(bbox_crs, "bbox-crs")
        page: dict[str, Any] = {
            "limit": ogc.parse_limit(limit),
            "offset": ogc.parse_offset(offset),
            "bbox": ogc.parse_bbox(bbox),
            "day": ogc.parse_datetime(datetime),
        }
    except InvalidInput as exc:
        return _bad_parameter(exc, request)
    body = ogc.items(
        session,
        who,
        _base(request),
        collection_id,
        query_params=dict(request.query_params),
        limit=page["limit"],
        offset=page["offset"],
        bbox=page["bbox"],
        day=page["day"],
    )
    return _json(body, ogc.GEOJSON, crs=True)


@ogc_router.get(
    "/collections/{collection_id}/items/{feature_id}",
    summary="OGC API feature (one area by code)",
    response_model=BoundaryFeature,
    response_class=GeoJSONResponse,
    responses=problems(400, 401, 403, 404),
)
def item(
    collection_id: CollectionId,
    feature_id: Annotated[str, Path(description="the area's code")],
    request: Request,
    session: SessionDep,
    who: Annotated[Principal, allow("area.read")],
    datetime: Annotated[str | None, Query(description=DATETIME_DOC)] = None,
    crs: Annotated[str | None, Query(description=CRS_DOC)] = None,
    f: Annotated[str | None, Query()] = None,
) -> JSONResponse:
    """One area by code (the feature id); absent areas, other levels' and areas outside one's scope: not found."""
    try:
        ogc.check_parameters(request.query_params.keys(), ogc.FEATURE_PARAMETERS)
        ogc.parse_format(f)
        ogc.parse_crs(crs)
        day = ogc.parse_datetime(datetime)
    except InvalidInput as exc:
        return _bad_parameter(exc, request)
    return _json(ogc.item(session, who, _base(request), collection_id, feature_id, day), ogc.GEOJSON, crs=True)
