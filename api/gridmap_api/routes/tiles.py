"""Mapbox Vector Tiles of the area levels and of cases, and a TileJSON document per layer (issue 15 §5), for the
pages and for desktop GIS (QGIS: Layer → Add Layer → Add Vector Tile Layer, the tile URL below).

The work is in `gridmap.views.tiles`; this module checks the request, keeps area tiles in a cache shared by the
process, and answers with a strong ETag (If-None-Match → 304)."""

from __future__ import annotations

import threading
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from gridmap.access import policy
from gridmap.views import mapdata, tiles
from gridmap_api.auth import allow
from gridmap_api.deps import IndexDep
from gridmap_api.params import Moment
from gridmap_api.schemas.common import COMMON, binary
from gridmap_api.schemas.tiles import TileJSON

router = APIRouter(prefix="/api/v1", tags=["map"], responses=COMMON)
MVT = "application/vnd.mapbox-vector-tile"
TILE_BUDGET_BYTES = 64 * 2**20
_cache_lock = threading.Lock()


def tile_cache(request: Request) -> tiles.TileCache:
    """The process's area tile cache (made on first use). Its keys hold the database and the active generation: the
    areas of a published generation are not edited (as `IndexRegistry` keeps its index), so a tile stays right,
    and its ETag with it, until another generation is activated — not cleared by every change of the boundaries
    (a planner's draft edits move that topic, and emptied every cache and every client's 304s)."""
    state = request.app.state
    cache = getattr(state, "tile_cache", None)
    if cache is None:
        with _cache_lock:
            cache = getattr(state, "tile_cache", None)
            if cache is None:
                cache = tiles.TileCache(TILE_BUDGET_BYTES)
                state.tile_cache = cache
    return cache


def _matches(request: Request, etag: str) -> bool:
    sent = request.headers.get("if-none-match")
    if not sent:
        return False
    tags = {t.strip().removeprefix("W/") for t in sent.split(",")}
    return "*" in tags or etag in tags


def _answer(request: Request, body: bytes | None, etag: str, cache_control: str) -> Response:
    headers = {"ETag": etag, "Cache-Control": cache_control, "Vary": "Cookie, Authorization, X-API-Key"}
    if body is None or _matches(request, etag):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=MVT, headers=headers)


TILE_RESPONSES = {
    **binary(MVT, description="the tile (Mapbox Vector Tile 2.1); empty when it holds no feature"),
    304: {"description": "unchanged since the ETag sent in If-None-Match"},
}


@router.get("/tiles/{layer}/{z}/{x}/{y}.mvt", response_class=Response, responses=TILE_RESPONSES)
def tile(
    layer: str,
    z: int,
    x: int,
    y: int,
    request: Request,
    index: IndexDep,
    who: Annotated[policy.Principal, allow("map.read")],
    since: Moment | None = None,
    until: Moment | None = None,
    state: Annotated[str | None, Query(max_length=500)] = None,
    category: Annotated[str | None, Query(max_length=2000)] = None,
    source: Annotated[str | None, Query(max_length=200)] = None,
    area: Annotated[str | None, Query(max_length=32)] = None,
) -> Response:
    """One tile of a layer: `district`, `subdistrict`, `community`, `grid`, `microgrid` (the areas of the active
    boundaries that meet the tile and that the caller may see, as `GET /map/areas`; properties `code`, `name`,
    `level`, `parent_code`, `label_lon`, `label_lat`) or `cases` (the cases the caller may see, as
    `GET /map/cases`, newest first, at most 50,000 a tile; feature id and property `id`, `state`, `clock`,
    `category`, `source`, `reported_at`; the filters `since`, `until`, `state`, `category`, `source`, `area`
    apply to this layer only). XYZ scheme, EPSG:3857, extent 4096, buffer 64; z from 0 to 22, x and y from 0 to
    2^z − 1. Area tiles are kept per boundary generation and per caller's areas (a draft's edits change neither
    them nor their ETag; an activation does); the ETag is strong."""
    tiles.check_layer(layer)
    tiles.check_tile(z, x, y)
    app = request.app.state
    if layer != tiles.CASES:
        scope = tiles.scope_key(who)
        cache = tile_cache(request)
        assert index.generation_id is not None  # the registry's indexes are of stored generations
        key = (app.db_key, index.generation_id, layer, z, x, y, scope)
        etag = f'"{tiles.tile_tag(*key)}"'
        if _matches(request, etag):
            return _answer(request, None, etag, "private, no-cache")
        body = cache.get(key)
        if body is None:
            with app.sessionmaker() as session:
                shapes = app.area_shapes.get(session, app.db_key, index.generation_id)
                body = tiles.area_tile(
                    session,
                    shapes,
                    layer,
                    z,
                    x,
                    y,
                    visible=None if scope == "*" else (lambda code: policy.sees_area(who, code)),
                )
            cache.put(key, body)
        return _answer(request, body, etag, "private, no-cache")
    split = mapdata.CaseFilter.split
    flt = mapdata.CaseFilter(since, until, split(state), split(category), split(source), None, area)
    if area:
        policy.check_area(who, area)
    with app.sessionmaker() as session, session.begin():
        body = tiles.case_tile(session, flt, z, x, y, who=who, calendar=app.calendar())
    return _answer(request, body, f'"{tiles.content_tag(body)}"', "private, no-cache")


@router.get("/tiles/{layer}/tilejson.json", response_model=TileJSON)
def tile_json(
    layer: str, request: Request, index: IndexDep, who: Annotated[policy.Principal, allow("map.read")]
) -> dict:
    """The TileJSON of a layer (what a vector tile client such as QGIS or MapLibre needs: the tile URL, zooms,
    bounds, the layer's fields)."""
    tiles.check_layer(layer)
    app = request.app.state
    with app.sessionmaker() as session:
        shapes = app.area_shapes.get(session, app.db_key, index.generation_id)
    url = str(request.base_url).rstrip("/") + router.prefix + f"/tiles/{layer}/{{z}}/{{x}}/{{y}}.mvt"
    return tiles.tilejson(shapes, layer, url)
