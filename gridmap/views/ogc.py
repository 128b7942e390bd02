"""OGC API – Features, Part 1: Core, with GeoJSON (issue 13 §7): the documents of the service, built from the
database for one caller. The routes (`api/gridmap_api/routes/exchange.py`) only parse the request and send these back.

Resources, under the service's base URL (`/ogc`):

* the landing page (`self`, `service-desc`, `conformance`, `data` links) and the conformance declaration;
* `collections`: one per level of the active generation — `district`, `subdistrict`, `community`, `grid`,
  `microgrid` — each with its spatial extent (CRS84) and temporal extent (from the first boundaries on);
* `collections/{level}/items`: a GeoJSON FeatureCollection ordered by code, with `bbox` (features whose geometry
  intersects the box), `limit` (default 100; above 1000 the server sends 1000, as the standard allows) and
  `offset` paging with `next`/`prev` links, `numberMatched`/`numberReturned`, and `datetime`: the boundaries in
  force on that day (`gridmap.boundaries.generations.generation_on`; an instant is taken in China time). A day before
  the
  first boundaries took effect selects no feature (an empty collection, as for any filter nothing matches).
  Intervals are refused: areas of two generations share codes, so "areas in force at some time in an interval"
  would not be one collection of features with unique ids;
* `collections/{level}/items/{code}`: one area (the feature id is its code).

Properties are the area's `code`, `name`, `level`, `parent` (code), `households`, `population`, `area_m2` — no
personal data. What a caller sees follows the areas policy of the area lists (`policy.area_condition`): its own
areas and those above them; any other area is absent from lists and not found on its own.

Parameter errors raise `InvalidInput` naming the parameter (the standard asks for a 400 answer, which the route
gives); unknown parameters are refused the same way. Besides the Core's, `f=json`/`f=geojson` and Part 2's `crs`
and `bbox-crs` naming CRS84 (the only coordinate system served; GDAL sends `crs`) are accepted.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import threading
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, urlencode

import shapely
import sqlalchemy as sa
from geoalchemy2.shape import to_shape
from sqlalchemy.orm import Session, aliased

from gridmap.access import policy
from gridmap.boundaries.areas import active_generation
from gridmap.boundaries.generations import generation_on
from gridmap.errors import InvalidInput, NotFound
from gridmap.store.tables import LEVEL_NAMES_ZH, LEVELS, Area, Generation

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
GREGORIAN = "http://www.opengis.net/def/uom/ISO-8601/0/Gregorian"
CONFORMANCE = (
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
)
GEOJSON = "application/geo+json"
JSON = "application/json"
OPENAPI = "application/vnd.oai.openapi+json;version=3.1"
DEFAULT_LIMIT, MAX_LIMIT, MAX_OFFSET = 100, 1000, 10_000_000
FIRST_YEAR, LAST_YEAR = 1950, 2200
LOCAL = dt.timezone(dt.timedelta(hours=8))  # China Standard Time: boundaries take effect at 00:00 local time
ITEM_PARAMETERS = frozenset({"limit", "offset", "bbox", "bbox-crs", "crs", "datetime", "f"})
FEATURE_PARAMETERS = frozenset({"crs", "datetime", "f"})
CRS_ACCEPTED = frozenset({CRS84, "OGC:CRS84", "[OGC:CRS84]"})
FORMATS = frozenset({"json", "geojson"})
LEVEL_NAMES_EN = {
    "district": "districts",
    "subdistrict": "sub-districts",
    "community": "communities",
    "grid": "grids",
    "microgrid": "micro-grids",
}


def _link(href: str, rel: str, type_: str, title: str | None = None) -> dict[str, Any]:
    out = {"href": href, "rel": rel, "type": type_}
    if title:
        out["title"] = title
    return out


# -- parameters ----------------------------------------------------------------------------------------------------


def check_parameters(names: Iterable[str], allowed: Iterable[str] = ITEM_PARAMETERS) -> None:
    """Refuse parameters the resource does not know (the standard's rule for unknown query parameters)."""
    unknown = sorted(set(names) - set(allowed))
    if unknown:
        raise InvalidInput(
            f"{unknown[0]}: unknown parameter {unknown[0][:40]!r}; accepted: {', '.join(sorted(allowed))}",
            field=unknown[0][:40],
            zh=f"{unknown[0]}：不支持的参数，可用 {', '.join(sorted(allowed))}。",
        )


def parse_format(text: str | None) -> None:
    if text is not None and text not in FORMATS:
        raise InvalidInput(
            f"f {text[:20]!r} is not accepted; accepted: json, geojson",
            field="f",
            zh="格式（f）：仅支持 json 或 geojson。",
        )


def parse_crs(text: str | None, field: str = "crs") -> None:
    """`crs` / `bbox-crs` (Part 2's parameters, sent by clients such as GDAL): CRS84 is the only one served."""
    if text is not None and text.strip().strip("<>") not in CRS_ACCEPTED:
        raise InvalidInput(
            f"{field} {text[:80]!r} is not served; accepted: {CRS84}",
            field=field,
            zh=f"{field}：仅支持 {CRS84}（WGS84 经纬度）。",
        )


def parse_limit(text: str | None) -> int:
    """1 … ; above MAX_LIMIT the server's maximum is used (the standard lets a server cap the page)."""
    if text is None:
        return DEFAULT_LIMIT
    if not (text.isascii() and text.isdigit() and len(text) <= 12) or int(text) < 1:
        raise InvalidInput(
            f"limit {text[:20]!r} must be a positive integer; at most {MAX_LIMIT} are sent per page",
            field="limit",
            zh=f"每页条数（limit）：应为正整数，最大 {MAX_LIMIT}。",
        )
    return min(int(text), MAX_LIMIT)


def parse_offset(text: str | None) -> int:
    if text is None:
        return 0
    if not (text.isascii() and text.isdigit() and len(text) <= 12) or int(text) > MAX_OFFSET:
        raise InvalidInput(
            f"offset {text[:20]!r} must be an integer from 0 to {MAX_OFFSET}",
            field="offset",
            zh=f"起始位置（offset）：应为 0–{MAX_OFFSET} 的整数。",
        )
    return int(text)


def parse_bbox(text: str | None) -> tuple[float, float, float, float] | None:
    """'minlon,minlat,maxlon,maxlat' in CRS84 degrees (a 3D box's heights are not supported)."""
    if text is None:
        return None
    parts = text.split(",")
    try:
        values = tuple(float(v) for v in parts) if len(parts) == 4 and len(text) <= 200 else ()
    except ValueError:
        values = ()
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        raise InvalidInput(
            f"bbox {text[:60]!r} must be four numbers 'minlon,minlat,maxlon,maxlat' in CRS84 degrees",
            field="bbox",
            zh="范围（bbox）：应为四个数 最小经度,最小纬度,最大经度,最大纬度。",
        )
    minx, miny, maxx, maxy = values
    if not (-180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90):
        raise InvalidInput(
            f"bbox {text[:60]!r} must satisfy -180<=minlon<=maxlon<=180 and -90<=minlat<=maxlat<=90",
            field="bbox",
            zh="范围（bbox）：须满足 -180≤最小经度≤最大经度≤180、-90≤最小纬度≤最大纬度≤90。",
        )
    return minx, miny, maxx, maxy


def parse_datetime(text: str | None) -> dt.date | None:
    """The as-of day: a date (2026-01-31) or an RFC 3339 instant (2026-01-31T08:00:00Z, taken in China time)."""
    if text is None:
        return None
    bad = InvalidInput(
        f"datetime {text[:40]!r} must be one day or instant, e.g. 2026-01-31 or 2026-01-31T08:00:00Z: "
        "the boundaries in force then; intervals are not supported",
        field="datetime",
        zh="日期时间（datetime）：应为一个日期或时刻，如 2026-01-31 或 2026-01-31T08:00:00Z，不支持时间段。",
    )
    value = text.strip()
    if "/" in value or not value or len(value) > 40:
        raise bad
    try:
        if len(value) == 10:
            day = dt.date.fromisoformat(value)
        else:
            moment = dt.datetime.fromisoformat(value.replace("z", "Z"))
            if moment.tzinfo is not None:
                moment = moment.astimezone(LOCAL)
            day = moment.date()
    except (ValueError, OverflowError):
        raise bad from None
    if not FIRST_YEAR <= day.year <= LAST_YEAR:
        raise InvalidInput(
            f"datetime {text[:40]!r} must be from the year {FIRST_YEAR} to {LAST_YEAR}",
            field="datetime",
            zh=f"日期时间（datetime）：须在 {FIRST_YEAR}–{LAST_YEAR} 年之间。",
        )
    return day


def check_collection(collection_id: str) -> str:
    if collection_id not in LEVELS:
        raise NotFound(
            f"collectionId: no collection {collection_id[:40]!r}; collections: {', '.join(LEVELS)}",
            field="collectionId",
            zh=f"集合：没有集合 {collection_id[:40]!r}，可用 {', '.join(LEVELS)}。",
        )
    return collection_id


# -- documents -----------------------------------------------------------------------------------------------------


def landing_page(base: str, openapi_href: str) -> dict[str, Any]:
    return {
        "title": "gridmap 网格边界 (grid boundaries)",
        "description": "区、街道、社区、网格、微网格边界，OGC API – Features (Part 1: Core, GeoJSON). Boundaries of "
        "districts, sub-districts, communities, grids and micro-grids; no personal data.",
        "links": [
            _link(base, "self", JSON, "本页 this document"),
            _link(openapi_href, "service-desc", OPENAPI, "接口定义 the API definition (OpenAPI)"),
            _link(f"{base}/conformance", "conformance", JSON, "符合的标准 conformance classes"),
            _link(f"{base}/collections", "data", JSON, "要素集合 feature collections"),
        ],
    }


def conformance() -> dict[str, Any]:
    return {"conformsTo": list(CONFORMANCE)}


_extents: dict[tuple[str, int, str], list[tuple[str, tuple[float, float, float, float]]]] = {}
_extents_lock = threading.Lock()


def _bounds(session: Session, generation_id: int, level: str) -> list[tuple[str, tuple[float, float, float, float]]]:
    """(code, bounds) of a generation's areas at a level; kept per database and generation (served generations are
    active or retired, never redrawn)."""
    key = (str(session.get_bind().engine.url), generation_id, level)
    found = _extents.get(key)
    if found is None:
        rows = session.execute(
            sa.select(Area.code, Area.geom).where(Area.generation_id == generation_id, Area.level == level)
        ).all()
        found = []
        for code, geom in rows:
            minx, miny, maxx, maxy = (float(v) for v in to_shape(geom).bounds)
            found.append((code, (minx, miny, maxx, maxy)))
        with _extents_lock:
            if len(_extents) > 64:
                _extents.clear()
            _extents[key] = found
    return found


def _collection(
    session: Session, who: policy.Principal, base: str, gen: Generation, level: str, first_day: dt.date | None
) -> dict[str, Any]:
    boxes = [b for code, b in _bounds(session, gen.id, level) if policy.sees_area(who, code)]
    extent: dict[str, Any] = {}
    if boxes:
        extent["spatial"] = {
            "bbox": [
                [min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes)]
            ],
            "crs": CRS84,
        }
    if first_day is not None:
        extent["temporal"] = {"interval": [[f"{first_day.isoformat()}T00:00:00+08:00", None]], "trs": GREGORIAN}
    href = f"{base}/collections/{level}"
    out: dict[str, Any] = {
        "id": level,
        "title": f"{LEVEL_NAMES_ZH[level]} {LEVEL_NAMES_EN[level]}",
        "description": f"{LEVEL_NAMES_ZH[level]}边界（第 {gen.id} 版「{gen.name}」起）; boundaries of the "
        f"{LEVEL_NAMES_EN[level]}, of generation {gen.id} unless `datetime` names another day. "
        "Properties: code, name, level, parent, households, population, area_m2.",
        "links": [
            _link(href, "self", JSON, "本集合 this collection"),
            _link(f"{href}/items", "items", GEOJSON, "要素 the features"),
        ],
        "itemType": "feature",
        "crs": [CRS84],
        "storageCrs": CRS84,
    }
    if extent:
        out["extent"] = extent
    return out


def _first_day(session: Session) -> dt.date | None:
    return session.scalar(
        sa.select(sa.func.min(Generation.effective_from)).where(Generation.status.in_(("active", "retired")))
    )


def collections(session: Session, who: policy.Principal, base: str) -> dict[str, Any]:
    gen = active_generation(session)
    first = _first_day(session)
    return {
        "links": [_link(f"{base}/collections", "self", JSON, "本页 this document")],
        "collections": [_collection(session, who, base, gen, level, first) for level in LEVELS],
    }


def collection(session: Session, who: policy.Principal, base: str, collection_id: str) -> dict[str, Any]:
    level = check_collection(collection_id)
    return _collection(session, who, base, active_generation(session), level, _first_day(session))


def _generation_for(session: Session, day: dt.date | None) -> Generation | None:
    if day is None:
        return active_generation(session)
    try:
        return generation_on(session, day)
    except NotFound:
        return None  # no boundaries were in force that day: nothing matches


def _intersects(session: Session, bbox: tuple[float, float, float, float]) -> sa.ColumnElement[bool]:
    """SQL: the area's geometry meets the box (PostGIS answers a boolean, SpatiaLite 1/0)."""
    if session.get_bind().dialect.name == "sqlite":
        return sa.func.ST_Intersects(Area.geom, sa.func.BuildMbr(*bbox, 4326)) == 1
    return sa.func.ST_Intersects(Area.geom, sa.func.ST_MakeEnvelope(*bbox, 4326))


def _query(
    session: Session,
    who: policy.Principal,
    generation_id: int,
    level: str,
    bbox: tuple[float, float, float, float] | None,
) -> sa.Select[*tuple[Any, ...]]:
    parent = aliased(Area)
    query = (
        sa.select(
            Area.code,
            Area.name,
            Area.level,
            parent.code.label("parent"),
            Area.households,
            Area.population,
            Area.area_m2,
            Area.geom,
        )
        .outerjoin(parent, Area.parent_id == parent.id)
        .where(Area.generation_id == generation_id, Area.level == level, policy.area_condition(who, Area.code))
    )
    if bbox is not None:
        from gridmap.store import dialect as _spatial

        # the index finds the boxes that meet it; the geometry must meet it too
        query = query.where(_spatial.bbox_filter(session, "area", bbox), _intersects(session, bbox))
    return query


def _feature(row: sa.Row[Any], base: str, level: str, with_links: bool) -> dict[str, Any]:
    props = {
        "code": row.code,
        "name": row.name,
        "level": row.level,
        "parent": row.parent,
        "households": int(row.households or 0),
        "population": int(row.population or 0),
        "area_m2": round(float(row.area_m2 or 0.0), 2),
    }
    feature = {
        "type": "Feature",
        "id": row.code,
        "geometry": json.loads(shapely.to_geojson(to_shape(row.geom))),
        "properties": props,
    }
    if with_links:
        feature["links"] = [
            _link(
                f"{base}/collections/{level}/items/{quote(row.code, safe='')}", "self", GEOJSON, "本要素 this feature"
            ),
            _link(f"{base}/collections/{level}", "collection", JSON, "所属集合 the collection"),
        ]
    return feature


def items(
    session: Session,
    who: policy.Principal,
    base: str,
    collection_id: str,
    *,
    limit: int = DEFAULT_LIMIT,
    offset: int = 0,
    bbox: tuple[float, float, float, float] | None = None,
    day: dt.date | None = None,
    query_params: dict[str, str] | None = None,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """One page of a collection's features. `query_params`: the request's own parameters, kept in the links."""
    level = check_collection(collection_id)
    gen = _generation_for(session, day)
    features: list[dict[str, Any]] = []
    matched = 0
    if gen is not None:
        query = _query(session, who, gen.id, level, bbox)
        matched = session.scalar(sa.select(sa.func.count()).select_from(query.subquery())) or 0
        rows = session.execute(query.order_by(Area.code).limit(limit).offset(offset)).all()
        features = [_feature(r, base, level, with_links=False) for r in rows]
    href = f"{base}/collections/{level}/items"
    params = {k: v for k, v in (query_params or {}).items() if k not in ("limit", "offset")}

    def page(at: int) -> str:
        return f"{href}?{urlencode({**params, 'limit': limit, 'offset': at})}"

    links = [
        _link(page(offset), "self", GEOJSON, "本页 this page"),
        _link(f"{base}/collections/{level}", "collection", JSON, "所属集合 the collection"),
    ]
    if offset + len(features) < matched:
        links.append(_link(page(offset + limit), "next", GEOJSON, "下一页 next page"))
    if offset > 0:
        links.append(_link(page(max(0, offset - limit)), "prev", GEOJSON, "上一页 previous page"))
    stamp = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).replace(microsecond=0)
    return {
        "type": "FeatureCollection",
        "features": features,
        "links": links,
        "timeStamp": stamp.isoformat().replace("+00:00", "Z"),
        "numberMatched": matched,
        "numberReturned": len(features),
    }


def item(
    session: Session, who: policy.Principal, base: str, collection_id: str, feature_id: str, day: dt.date | None = None
) -> dict[str, Any]:
    """One area by code; not found when it is not in this collection, not in force that day, or not the caller's."""
    level = check_collection(collection_id)
    missing = NotFound(
        f"featureId: no feature {feature_id[:40]!r} in collection {level}",
        field="featureId",
        zh=f"要素编码：集合 {level} 中没有编码为 {feature_id[:40]!r} 的要素。",
    )
    if not policy.sees_area(who, feature_id):
        raise missing
    gen = _generation_for(session, day)
    if gen is None:
        raise missing
    row = session.execute(_query(session, who, gen.id, level, None).where(Area.code == feature_id)).first()
    if row is None:
        raise missing
    return _feature(row, base, level, with_links=True)
