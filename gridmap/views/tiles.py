"""Mapbox Vector Tiles (MVT 2.1) of every area level and of case points, from either database (issue 15 §5).

A tile `z/x/y` is the Web Mercator (EPSG:3857) square of the XYZ scheme (x from the west, y from the north). Every
geometry is drawn the same way on both databases: clipped to the tile grown by BUFFER units on each side, moved
into tile coordinates (EXTENT units across, y down) and snapped to whole units, repeated points dropped, then made
valid; what collapses to nothing at that precision is left out.

* **PostGIS** does it in SQL: `ST_AsMVTGeom(ST_Transform(geom, 3857), ST_TileEnvelope(z, x, y), EXTENT, BUFFER,
  true)` and `ST_AsMVT`.
* **SpatiaLite** (which has no MVT functions) does it in shapely — `clip_by_rect`, an affine move and
  `set_precision(grid_size=1)` — and encodes with the maintained `mapbox-vector-tile` encoder; case points, many
  to a tile, are placed and encoded as arrays to the same numbers and bytes (`points_to_tile`, `encode_points`).

Which features: the same as the GeoJSON map endpoints (`gridmap.views.mapdata`) for the same place.

* an area layer (`district` … `microgrid`) holds the areas of the active generation whose outline meets the
  (buffered) tile and that the caller may see (`policy.sees_area`, as `GET /map/areas`); properties `code`, `name`,
  `level`, `parent_code` (absent for a root: MVT has no null) and the label point as `label_lon`, `label_lat`
  (GeoJSON's `label: [lon, lat]`: MVT values cannot be lists). The candidates and their properties come from the
  generation's `mapdata.AreaShapes` (one R-tree query, the same one `/map/areas` makes), so the two agree.
* the `cases` layer holds the cases the caller may see (`policy.case_condition`), filtered as `GET /map/cases`,
  inside the buffered tile, newest first and at most MAX_TILE_CASES: the rows `mapdata.case_points` gives (found
  through the points' spatial index first), with its properties `id`, `state`, `clock`, `category`, `source`,
  `reported_at` (a property that is None is left out) and the case id as the feature id. Personal data never
  enters a tile. On PostGIS the tile is made in one statement over the case query; only the deadline colours of
  the running cases come from Python (they need the working calendar), joined by id.

A tile with no feature is empty (zero bytes), on both databases.

Area tiles depend only on (database, active generation, layer, z, x, y, the caller's areas): `TileCache` keeps
them, in memory, least recently used first out, within a byte budget. Case tiles change with every case and with
the clock, so they are not kept (their answer is still validated by content).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import mapbox_vector_tile
import numpy as np
import pandas as pd
import shapely
import sqlalchemy as sa
from mapbox_vector_tile.Mapbox import vector_tile_pb2  # the package's protobuf of the MVT message
from shapely.geometry.base import BaseGeometry
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session

from gridmap.access import policy
from gridmap.access.policy import Principal
from gridmap.calendar import WorkCalendar
from gridmap.cases.intake import utc
from gridmap.errors import InvalidInput
from gridmap.store.tables import LEVEL_NAMES_ZH, LEVELS, Case, CaseCategory
from gridmap.views import mapdata

EXTENT = 4096  # tile units across a tile
BUFFER = 64  # tile units kept around it (so strokes meet across tile edges)
MAX_TILE_ZOOM = 22
CASES = "cases"
LAYERS: tuple[str, ...] = (*LEVELS, CASES)
MAX_TILE_CASES = 50_000  # newest first; a tile zoomed further out than that is for the clusters
# case tiles from this zoom: a tile further out covers a whole district (3 MB and ~3 s of encoding on the full demo,
# never cached) — what the clusters (`/map/cases/clusters`) are for
CASES_MIN_ZOOM = 10
FORMAT = "mvt-1"  # bump when the encoding of a tile changes (it is part of every cached tile's key and tag)
WORLD = 20037508.342789244  # half the Web Mercator world, in metres (EPSG:3857)
R = 6378137.0
MAX_LAT = 85.0511287798066

AREA_FIELDS = {
    "code": "String",
    "name": "String",
    "level": "String",
    "parent_code": "String",
    "label_lon": "Number",
    "label_lat": "Number",
}
CASE_FIELDS = {
    "id": "Number",
    "state": "String",
    "clock": "String",
    "category": "String",
    "source": "String",
    "reported_at": "String",
}
LAYER_NAMES_ZH = {**LEVEL_NAMES_ZH, CASES: "案件"}


# -- parameters ----------------------------------------------------------------------------------------------------


def check_layer(layer: str) -> str:
    if layer not in LAYERS:
        raise InvalidInput(
            f"layer: {str(layer)[:40]!r} is not a tile layer; accepted: {', '.join(LAYERS)}",
            field="layer",
            zh=f"图层（layer）：{str(layer)[:40]!r} 不是瓦片图层；可选：{', '.join(LAYERS)}。",
        )
    return layer


def check_tile(z: int, x: int, y: int) -> tuple[int, int, int]:
    """z from 0 to MAX_TILE_ZOOM; x and y from 0 to 2^z − 1."""
    if not isinstance(z, int) or isinstance(z, bool) or not 0 <= z <= MAX_TILE_ZOOM:
        raise InvalidInput(
            f"z: {z!r} must be a whole number from 0 to {MAX_TILE_ZOOM}",
            field="z",
            zh=f"缩放级别（z）：{z!r} 应为 0 至 {MAX_TILE_ZOOM} 之间的整数。",
        )
    last = 2**z - 1
    for name, value in (("x", x), ("y", y)):
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= last:
            raise InvalidInput(
                f"{name}: {value!r} must be a whole number from 0 to {last} at zoom {z}",
                field=name,
                zh=f"瓦片{'列' if name == 'x' else '行'}号（{name}）：{value!r} "
                f"在缩放级别 {z} 下应为 0 至 {last} 之间的整数。",
            )
    return z, x, y


# -- tile geometry -------------------------------------------------------------------------------------------------


def tile_bounds(z: int, x: int, y: int, buffer: float = 0.0) -> tuple[float, float, float, float]:
    """(minx, miny, maxx, maxy) of a tile in EPSG:3857 metres, grown by `buffer` tile units on each side (the
    envelope of PostGIS's `ST_TileEnvelope`)."""
    size = 2 * WORLD / 2**z
    pad = size * buffer / EXTENT
    minx, maxy = -WORLD + x * size, WORLD - y * size
    return minx - pad, maxy - size - pad, minx + size + pad, maxy + pad


def mercator(xy: np.ndarray) -> np.ndarray:
    """lon/lat degrees → EPSG:3857 metres (spherical Web Mercator, as PROJ's)."""
    out = np.empty_like(xy, dtype=float)
    out[:, 0] = np.radians(xy[:, 0]) * R
    lat = np.clip(xy[:, 1], -MAX_LAT - 1e-9, MAX_LAT + 1e-9)
    out[:, 1] = np.log(np.tan(np.pi / 4 + np.radians(lat) / 2)) * R
    return out


def lonlat(xy: np.ndarray) -> np.ndarray:
    """EPSG:3857 metres → lon/lat degrees."""
    out = np.empty_like(xy, dtype=float)
    out[:, 0] = np.degrees(xy[:, 0] / R)
    out[:, 1] = np.degrees(2 * np.arctan(np.exp(xy[:, 1] / R)) - np.pi / 2)
    return out


def tile_box_lonlat(z: int, x: int, y: int, buffer: float = BUFFER) -> tuple[float, float, float, float]:
    """The buffered tile as a lon/lat box (exact: Web Mercator maps boxes to boxes)."""
    minx, miny, maxx, maxy = tile_bounds(z, x, y, buffer)
    (lon0, lat0), (lon1, lat1) = lonlat(np.array([[minx, miny], [maxx, maxy]]))
    return max(-180.0, lon0), max(-90.0, lat0), min(180.0, lon1), min(90.0, lat1)


def to_tile(geoms: np.ndarray, z: int, x: int, y: int) -> np.ndarray:
    """lon/lat geometries → tile geometries (EXTENT units, y down), clipped to the buffered tile, snapped to whole
    units and made valid; those that collapse are empty."""
    if len(geoms) == 0:
        return np.array([], dtype=object)
    minx, miny, maxx, maxy = tile_bounds(z, x, y)
    scale = EXTENT / (maxx - minx)
    projected = shapely.transform(geoms, mercator)
    clipped = shapely.clip_by_rect(projected, *tile_bounds(z, x, y, BUFFER))

    def move(xy: np.ndarray) -> np.ndarray:
        return np.column_stack(((xy[:, 0] - minx) * scale, (maxy - xy[:, 1]) * scale))

    moved = shapely.transform(clipped, move)
    return shapely.set_precision(moved, 1.0)


def points_to_tile(lonlat: np.ndarray, z: int, x: int, y: int) -> tuple[np.ndarray, np.ndarray]:
    """`to_tile` of points given as an (n, 2) array of lon/lat, as arrays: which are kept (strictly inside the
    buffered tile, as GEOS's clip keeps a point) and their positions in whole tile units (rounded half up, as
    GEOS's precision reducer rounds), the same numbers `to_tile` gives (the same projection and arithmetic, in the
    same order) without a geometry object per point (a z13 case tile of 31,658 points: ~0.13 s → ~5 ms)."""
    minx, miny, maxx, maxy = tile_bounds(z, x, y)
    scale = EXTENT / (maxx - minx)
    projected = mercator(np.asarray(lonlat, dtype=float).reshape(-1, 2))
    x0, y0, x1, y1 = tile_bounds(z, x, y, BUFFER)
    px, py = projected[:, 0], projected[:, 1]
    kept = (px > x0) & (px < x1) & (py > y0) & (py < y1)
    moved = np.column_stack(((px[kept] - minx) * scale, (maxy - py[kept]) * scale))
    return kept, _round_half_up(moved)


def _round_half_up(values: np.ndarray) -> np.ndarray:
    """Each value to the nearest whole number, halves up (GEOS's `util::round`, Java's Math.round), from the
    value's own fraction (`x + 0.5` floored would take 0.49999999999999994 to 1)."""
    whole = np.trunc(values)
    fraction = np.abs(values - whole)
    up = np.where(fraction < 0.5, np.floor(values), np.where(fraction > 0.5, np.ceil(values), whole + 1.0))
    down = np.where(fraction < 0.5, np.ceil(values), np.where(fraction > 0.5, np.floor(values), whole))
    snapped: np.ndarray = np.where(values >= 0, up, down)
    return snapped


def _polygonal(geom: BaseGeometry | None) -> BaseGeometry | None:
    """The polygons of a geometry (a clip can leave lines and points where an outline runs along the edge)."""
    if geom is None or geom.is_empty:
        return None
    if geom.geom_type in ("Polygon", "MultiPolygon"):
        return geom
    parts = [p for p in shapely.get_parts(geom) if p.geom_type in ("Polygon", "MultiPolygon") and not p.is_empty]
    if not parts:
        return None
    return shapely.union_all(parts)


def encode_layer(name: str, features: list[dict[str, Any]]) -> bytes:
    """One MVT layer from features already in tile coordinates (y down); b"" when there is none."""
    if not features:
        return b""
    body: bytes = mapbox_vector_tile.encode(  # the package has no types
        {"name": name, "features": features},
        default_options={
            "extents": EXTENT,
            "y_coord_down": True,
            "on_invalid_geometry": mapbox_vector_tile.encoder.on_invalid_geometry_make_valid,
        },
    )
    return body


_MOVE_TO_ONE = (1 << 3) | 1  # MVT geometry command: MoveTo, one point
# protobuf keys (field number << 3 | wire type) of what `encode_points` writes itself: Layer.features (2, bytes),
# Feature.id (1, varint), .tags (2, packed), .type (3, varint), .geometry (4, packed); Layer.values (4, bytes),
# Value.string_value (1, bytes), .int_value (4, varint); Tile.layers (3, bytes)
_FEATURE, _ID, _TAGS, _TYPE, _GEOMETRY = 0x12, 0x08, 0x12, 0x18, 0x22
_VALUE, _STRING, _INT, _LAYER = 0x22, 0x0A, 0x20, 0x1A
_POINT = 1  # GeomType.POINT
_VARINT_LIMITS = np.array([1 << (7 * k) for k in range(1, 10)], dtype=np.uint64)


def _varint_sizes(values: np.ndarray) -> np.ndarray:
    """Bytes of each value (uint64) as a protobuf varint."""
    return np.searchsorted(_VARINT_LIMITS, values, side="right").astype(np.int64) + 1


def _varints(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The values (uint64) as consecutive protobuf varints (little-endian groups of 7 bits, the high bit set on all
    but the last byte of each), and the bytes each took."""
    sizes = _varint_sizes(values)
    out = np.empty(int(sizes.sum()), dtype=np.uint8)
    at = np.cumsum(sizes) - sizes
    rest, left = values, sizes
    while len(rest):  # byte k of every value that has one, then of those that have a next
        out[at] = (rest & np.uint64(0x7F)).astype(np.uint8) | np.where(left > 1, 0x80, 0).astype(np.uint8)
        more = left > 1
        rest, left, at = rest[more] >> np.uint64(7), left[more] - 1, at[more] + 1
    return out, sizes


def _within(counts: np.ndarray) -> np.ndarray:
    """0, 1, …, counts[i] − 1 for each i, one after the other."""
    ends = np.cumsum(counts)
    positions: np.ndarray = np.arange(int(ends[-1]) if len(ends) else 0) - np.repeat(ends - counts, counts)
    return positions


def encode_points(name: str, ids: Sequence[int], xy: np.ndarray, columns: dict[str, Sequence[Any]]) -> bytes:
    """One MVT layer of points, byte for byte what `encode_layer` (mapbox-vector-tile) makes of the same features
    — feature i with id `ids[i]`, the point `xy[i]` (whole tile units, y down) and property k `columns[k][i]`
    unless None — worked out over the whole layer at once instead of feature by feature. The package's rules are
    kept: keys and values numbered in the order first met (features in order, properties in `columns`' order), one
    value table for every key, a point as MoveTo(1) and its zig-zagged position; so is protobuf's serialisation
    of the package's message (fields in the order of their numbers, repeated numbers packed): the layer's name,
    features, keys and values, extent and version, the message made by the package's own protobuf
    (`vector_tile_pb2`) except the features and the values, whose varints and lengths are written here as arrays
    (the busiest z13 case tile of the province, 31,657 points: 432-630 ms in the package's encoder, 162-258 ms
    with a protobuf message added per feature, ~100 ms here). Strings and whole numbers only (what the case layer
    carries); `test_tiles` compares the bytes with the package's."""
    n = len(ids)
    if n == 0:
        return b""
    names = list(columns)
    table = np.empty((n, len(names)), dtype=object)
    for j, key in enumerate(names):
        table[:, j] = columns[key]
    present = np.not_equal(table, np.array(None, dtype=object))  # (None: the feature has no such property)
    # keys numbered in the order first met: by the first feature that has each, then by their order in a feature
    first = [int(np.argmax(present[:, j])) if present[:, j].any() else n for j in range(len(names))]
    key_order = sorted((f, j) for j, f in enumerate(first) if f < n)
    key_index = np.full(len(names), -1, dtype=np.int64)
    for i, (_, j) in enumerate(key_order):
        key_index[j] = i
    # values numbered in the order first met, feature by feature, across every key (one table, as the package's)
    flat = table[present]  # row-major: feature by feature, each in `columns`' order
    codes, uniques = _factorize(flat)
    per_feature = 2 * present.sum(axis=1)
    tags = np.empty(int(per_feature.sum()), dtype=np.uint64)
    tags[0::2] = np.broadcast_to(key_index, present.shape)[present]
    tags[1::2] = codes
    point = np.asarray(xy, dtype=np.int64)
    zigzag = ((point << 1) ^ (point >> 63)).astype(np.uint64)
    fid = np.asarray(ids, dtype=np.int64).astype(np.uint64)
    # each feature as varints: features-key, length, id-key, id, [tags-key, length, tags…], type-key, POINT,
    # geometry-key, length, MoveTo(1), x, y (the tags left out where a feature has none, as protobuf does)
    tag_bytes = np.bincount(np.repeat(np.arange(n), per_feature), _varint_sizes(tags), minlength=n).astype(np.int64)
    geometry_bytes = 1 + _varint_sizes(zigzag[:, 0]) + _varint_sizes(zigzag[:, 1])
    tagged = per_feature > 0
    feature_bytes = (
        1 + _varint_sizes(fid) + tagged * (1 + _varint_sizes(tag_bytes.astype(np.uint64)) + tag_bytes) + 2
    ) + (1 + _varint_sizes(geometry_bytes.astype(np.uint64)) + geometry_bytes)
    tokens_each = 4 + tagged * (2 + per_feature) + 7
    at = np.concatenate(([0], np.cumsum(tokens_each)[:-1]))
    tokens = np.empty(int(tokens_each.sum()), dtype=np.uint64)
    tokens[at], tokens[at + 1], tokens[at + 2], tokens[at + 3] = _FEATURE, feature_bytes, _ID, fid
    tokens[at[tagged] + 4], tokens[at[tagged] + 5] = _TAGS, tag_bytes[tagged]
    tokens[np.repeat(at + 6, per_feature) + _within(per_feature)] = tags
    g = at + 4 + tagged * (2 + per_feature)
    tokens[g], tokens[g + 1], tokens[g + 2], tokens[g + 3] = _TYPE, _POINT, _GEOMETRY, geometry_bytes
    tokens[g + 4], tokens[g + 5], tokens[g + 6] = _MOVE_TO_ONE, zigzag[:, 0], zigzag[:, 1]
    features, _ = _varints(tokens)
    # the rest in the order protobuf writes the fields: name (1), features (2), keys (3), values (4), extent (5),
    # version (15); name, keys, extent and version by the package's protobuf
    keys = vector_tile_pb2.tile.layer()
    keys.keys.extend(names[j] for _, j in key_order)
    layer = b"".join(
        (
            vector_tile_pb2.tile.layer(name=name).SerializePartialToString(),
            features.tobytes(),
            keys.SerializePartialToString(),
            _values(uniques),
            vector_tile_pb2.tile.layer(version=2, extent=EXTENT).SerializePartialToString(),
        )
    )
    size, _ = _varints(np.array([len(layer)], dtype=np.uint64))
    return bytes((_LAYER,)) + size.tobytes() + layer


def _values(uniques: list[Any]) -> bytes:
    """The layer's value table (field 4, one Value message each, in order): a str as string_value, a whole
    number as int_value (two's complement in 64 bits, as protobuf writes an int64)."""
    if not uniques:
        return b""
    text = [isinstance(v, str) for v in uniques]
    payloads = [v.encode() if t else b"" for v, t in zip(uniques, text)]
    lengths = np.fromiter(map(len, payloads), dtype=np.int64, count=len(payloads))
    is_text = np.array(text)
    number = np.array([0 if t else int(v) & 0xFFFFFFFFFFFFFFFF for v, t in zip(uniques, text)], dtype=np.uint64)
    inner = np.where(is_text, lengths.astype(np.uint64), number)  # the string's length, or the number itself
    message = 1 + _varint_sizes(inner) + lengths  # key, varint, bytes of the string (none for a number)
    tokens = np.empty(4 * len(uniques), dtype=np.uint64)
    tokens[0::4], tokens[1::4] = _VALUE, message
    tokens[2::4], tokens[3::4] = np.where(is_text, _STRING, _INT), inner
    heads, sizes = _varints(tokens)
    head_each = sizes.reshape(-1, 4).sum(axis=1)
    starts = np.concatenate(([0], np.cumsum(head_each + lengths)[:-1]))
    out = np.empty(int((head_each + lengths).sum()), dtype=np.uint8)
    out[np.repeat(starts, head_each) + _within(head_each)] = heads
    out[np.repeat(starts + head_each, lengths) + _within(lengths)] = np.frombuffer(b"".join(payloads), np.uint8)
    return out.tobytes()


def _factorize(values: np.ndarray) -> tuple[np.ndarray, list[Any]]:
    """Codes of `values` numbered in the order first met, and the values so numbered (as a dict would: a str and
    an int never equal)."""
    codes, uniques = pd.factorize(values, sort=False)
    return codes.astype(np.int64, copy=False), list(uniques)


def _is_postgis(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _choose(session: Session, engine: str) -> str:
    if engine not in ("auto", "postgis", "python"):
        raise ValueError(f"engine: {engine!r}")  # a programming error, not the caller's
    if engine == "auto":
        return "postgis" if _is_postgis(session) else "python"
    return engine


# -- areas ---------------------------------------------------------------------------------------------------------


def scope_key(who: Principal | None) -> str:
    """What decides which outlines a caller sees (`policy.sees_area`): '*' for all of them, else its areas'
    codes. Part of every cached area tile's key: callers of different scopes never share a tile."""
    if who is None or policy._all_outlines(who):
        return "*"
    return ",".join(sorted({s.code for s in who.scopes}))


def _area_candidates(
    shapes: mapdata.AreaShapes, level: str, z: int, x: int, y: int, visible: Callable[[str], bool] | None
) -> tuple[mapdata._Level | None, list[int]]:
    # the generation's outlines and properties, and the R-tree query /map/areas makes
    return shapes.hits(level, tile_box_lonlat(z, x, y), visible)


def _area_props(p: dict[str, Any]) -> dict[str, Any]:
    out = {"code": p["code"], "name": p["name"], "level": p["level"]}
    if p["parent_code"] is not None:
        out["parent_code"] = p["parent_code"]
    out["label_lon"], out["label_lat"] = float(p["label"][0]), float(p["label"][1])
    return out


AREA_SQL = sa.text("""
SELECT ST_AsMVT(t, :layer, :extent, 'geom') FROM (
  SELECT l.code, l.name, l.level, l.parent_code, l.label_lon, l.label_lat,
         ST_AsMVTGeom(ST_Transform(a.geom, 3857), ST_TileEnvelope(:z, :x, :y), :extent, :buffer, true) AS geom
  FROM unnest(CAST(:codes AS text[]), CAST(:names AS text[]), CAST(:levels AS text[]), CAST(:parents AS text[]),
              CAST(:lons AS float8[]), CAST(:lats AS float8[]), CAST(:ord AS int[]))
       AS l(code, name, level, parent_code, label_lon, label_lat, ord)
  JOIN area a ON a.generation_id = :generation AND a.code = l.code
  ORDER BY l.ord
) AS t WHERE t.geom IS NOT NULL
""")


def area_tile(
    session: Session,
    shapes: mapdata.AreaShapes,
    level: str,
    z: int,
    x: int,
    y: int,
    *,
    visible: Callable[[str], bool] | None = None,
    engine: str = "auto",
) -> bytes:
    """The MVT of one level's outlines in a tile (only the codes `visible` accepts, when given), layer named after
    the level; b"" when none. `engine`: 'postgis' (ST_AsMVT), 'python' (the shapely pipeline and the
    mapbox-vector-tile encoder) or 'auto' (PostGIS on PostgreSQL, Python elsewhere)."""
    if level not in LEVELS:
        check_layer(level)
        raise InvalidInput(
            f"layer: {level!r} holds no areas", field="layer", zh=f"图层（layer）：{level!r} 不是区域层级。"
        )
    check_tile(z, x, y)
    data, hits = _area_candidates(shapes, level, z, x, y, visible)
    if data is None or not hits:
        return b""
    props = [_area_props(data.props[i]) for i in hits]
    if _choose(session, engine) == "postgis":
        body = session.execute(
            AREA_SQL,
            {
                "layer": level,
                "extent": EXTENT,
                "buffer": BUFFER,
                "z": z,
                "x": x,
                "y": y,
                "generation": shapes.generation_id,
                "codes": [p["code"] for p in props],
                "names": [p["name"] for p in props],
                "levels": [p["level"] for p in props],
                "parents": [p.get("parent_code") for p in props],
                "lons": [p["label_lon"] for p in props],
                "lats": [p["label_lat"] for p in props],
                "ord": list(range(len(props))),
            },
        ).scalar()
        return bytes(body or b"")
    tiled = to_tile(data.geoms[hits], z, x, y)
    features = []
    for geom, p in zip(tiled, props):
        geom = _polygonal(geom)
        if geom is not None:
            features.append({"geometry": geom, "properties": p})
    return encode_layer(level, features)


# -- cases ---------------------------------------------------------------------------------------------------------

# PostGIS: the tile made where the cases are, in one statement over the case query (`mapdata.case_query`, newest
# first, at most `limit`) — no row comes to Python and goes back. Only the deadline colour of a running case, which
# needs the working calendar, is worked out in Python first, for the running cases among the newest `limit` (those
# the tile can hold), and joined by id. Position rounded to 6 decimals and `reported_at` written as in
# `mapdata.case_row` (ISO 8601 in UTC with a Z, microseconds only when there are some), so that the tile holds what
# `/map/cases` answers.
_REPORTED_ISO = (
    "to_char(cases.reported_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS') || CASE WHEN "
    "date_trunc('second', cases.reported_at) = cases.reported_at THEN '' "
    "ELSE to_char(cases.reported_at AT TIME ZONE 'UTC', '.US') END || 'Z'"
)
_POINT_3857 = (
    "ST_Transform(ST_SetSRID(ST_MakePoint(round(cases.lon::numeric, 6)::float8, round(cases.lat::numeric, 6)::float8),"
    " 4326), 3857)"
)


def case_tile(
    session: Session,
    flt: mapdata.CaseFilter,
    z: int,
    x: int,
    y: int,
    *,
    who: Principal | None,
    calendar: WorkCalendar | None = None,
    now: dt.datetime | None = None,
    limit: int = MAX_TILE_CASES,
    engine: str = "auto",
) -> bytes:
    """The MVT (layer `cases`) of the cases `who` may see that pass the filter (its box is replaced by the
    buffered tile), newest first, at most `limit`; b"" when none. The rows and their properties are those of
    `mapdata.case_points` for the same filter and box.

    On PostGIS (`_case_tile_postgis`) no row of the tile comes to Python: on the province demo (10 M cases over 13
    month partitions, load 4.5-6) the busiest z13 tiles of a district seat (31,658, 24,728 and 10,983 cases) took
    3,129, 2,212 and 1,094 ms (medians of 3) when every row was read into Python (0.66 s of rows for the largest)
    and sent back as arrays (0.45 s), and take 1,660, 1,191 and 618 ms; a z15 tile (1,888 cases) the same
    (~150 ms). What is left is mostly reading the cases: one table page per case, the cases of a place being
    spread over every month's partition (PostGIS has no index-only scan of points). The category codes are looked
    up by id as the colours are (the four busiest tiles, medians of 3, alternated: 450-659 → 398-619 ms).

    On SpatiaLite the rows come to Python column by column (`case_columns`), are placed by `points_to_tile` and
    encoded by `encode_points`, all as arrays: the four busiest z13 tiles of the province took 905-1,318 ms when the
    package's encoder took the features one by one, 619-892 ms with a protobuf message per feature and a row of
    Python objects per case, and take 62-542 ms (medians of 3, in process)."""
    check_tile(z, x, y)
    if z < CASES_MIN_ZOOM:
        raise InvalidInput(
            f"z: case tiles start at zoom {CASES_MIN_ZOOM} (got {z}); further out, use the clusters "
            "(/map/cases/clusters)",
            field="z",
            zh=f"缩放级别（z）：案件瓦片从级别 {CASES_MIN_ZOOM} 起提供（收到 {z}）；更小的级别请用聚合点。",
        )
    if not 1 <= limit <= MAX_TILE_CASES:
        raise InvalidInput(
            f"limit: {limit!r} must be from 1 to {MAX_TILE_CASES}",
            field="limit",
            zh=f"数量上限（limit）：应为 1 至 {MAX_TILE_CASES} 之间的整数。",
        )
    box = tile_box_lonlat(z, x, y)
    flt = mapdata.CaseFilter(flt.since, flt.until, flt.states, flt.categories, flt.sources, box, flt.area)
    if _choose(session, engine) == "postgis":
        return _case_tile_postgis(session, flt, z, x, y, who=who, calendar=calendar, now=now, limit=limit)
    ids, lonlat, properties = case_columns(session, flt, calendar=calendar, now=now, limit=limit, who=who)
    if not len(ids):
        return b""
    kept, xy = points_to_tile(lonlat, z, x, y)
    return encode_points(CASES, ids[kept], xy, {name: values[kept] for name, values in properties.items()})


def _case_tile_postgis(
    session: Session,
    flt: mapdata.CaseFilter,
    z: int,
    x: int,
    y: int,
    *,
    who: Principal | None,
    calendar: WorkCalendar | None,
    now: dt.datetime | None,
    limit: int,
) -> bytes:
    """`case_tile` on PostGIS: the deadline colours of the running cases, then the tile in one statement."""
    flt.check()
    now = utc(now) or dt.datetime.now(dt.UTC)
    newest = (Case.reported_at.desc(), Case.id.desc())
    query = mapdata.case_query(session, flt, now, who, indexed_box=True)
    # the running cases among the newest `limit` of the tile are among the newest `limit` running ones
    running = query.where(
        Case.state.in_(mapdata.CLOCKED_STATES), Case.accepted_at.is_not(None), Case.due_at.is_not(None)
    )
    clocks = [
        (row[0], row[4])
        for row in (mapdata.case_row(r, calendar, now) for r in session.execute(running.order_by(*newest).limit(limit)))
    ]
    # only what the tile shows (a narrower sort: the tile's 31,658 rows spilled to disk with the deadline columns)
    drawn = query.with_only_columns(
        Case.id, Case.lon, Case.lat, Case.state, Case.category_id, Case.source, Case.reported_at
    )
    cases = drawn.order_by(*newest).limit(limit).subquery("cases")
    # the colours by id as one JSON object (looked up per row; a join of the ids' array was planned as a nested
    # loop: 31,658 × 415 comparisons, 3 s)
    clock = sa.type_coerce(sa.bindparam("clocks", {str(cid): colour for cid, colour in clocks}, type_=JSONB), JSONB)[
        sa.cast(cases.c.id, sa.Text)
    ].astext
    # the category codes by id the same way: the join, left unused, is removed by the planner, which planned it as
    # a nested loop over the categories for each case (its estimate of a tile's cases was 28 for 31,658: ~0.1 s)
    codes = {str(cid): code for cid, code in session.execute(sa.select(CaseCategory.id, CaseCategory.code))}
    category = sa.type_coerce(sa.bindparam("categories", codes, type_=JSONB), JSONB)[
        sa.cast(cases.c.category_id, sa.Text)
    ].astext
    envelope = sa.func.ST_TileEnvelope(z, x, y)
    features = (
        sa.select(
            cases.c.id.label("fid"),
            cases.c.id,
            cases.c.state,
            clock.label("clock"),
            category.label("category"),
            cases.c.source,
            sa.literal_column(_REPORTED_ISO).label("reported_at"),
            sa.func.ST_AsMVTGeom(sa.literal_column(_POINT_3857), envelope, EXTENT, BUFFER, True).label("geom"),
        )
        .order_by(cases.c.reported_at.desc(), cases.c.id.desc())
        .subquery("t")
    )
    tile = sa.select(sa.func.ST_AsMVT(sa.literal_column("t"), CASES, EXTENT, "geom", "fid")).where(
        features.c.geom.is_not(None)
    )
    body = session.execute(tile).scalar()
    return bytes(body or b"")


def case_columns(
    session: Session,
    flt: mapdata.CaseFilter,
    *,
    calendar: WorkCalendar | None = None,
    now: dt.datetime | None = None,
    limit: int = MAX_TILE_CASES,
    who: Principal | None = None,
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """The cases of `mapdata.case_points` for a filter whose box is set (the same filter, order, rounding and
    deadline colour), as columns: their ids, their rounded positions (n × 2) and the tile's properties
    (`CASE_FIELDS`, objects, None where a case has none). Found through the spatial index of the cases' points
    first (a tile is a small part of the map: without it every tile would read the whole case table); read on the
    connection, column by column: on the province's busiest z13 tile (31,658 cases) the rows made one by one by
    `mapdata.case_row` took ~0.33 s, of which 0.12 s in `utc` alone."""
    flt.check()
    now = utc(now) or dt.datetime.now(dt.UTC)
    query = mapdata.case_query(session, flt, now, who, indexed_box=True)
    rows = session.connection().execute(query.order_by(Case.reported_at.desc(), Case.id.desc()).limit(limit)).all()
    if not rows:
        return np.zeros(0, dtype=np.int64), np.zeros((0, 2)), {name: np.empty(0, dtype=object) for name in CASE_FIELDS}
    cid, lon, lat, state, category, source, reported, accepted, due, _ = (_objects(c) for c in zip(*rows))
    clock = np.full(len(rows), None, dtype=object)
    none = np.array(None, dtype=object)
    running = np.isin(state, mapdata.CLOCKED_STATES) & np.not_equal(accepted, none) & np.not_equal(due, none)
    for i in np.flatnonzero(running).tolist():  # a tile's running cases are few (415 of the 31,658)
        clock[i] = mapdata.case_row(rows[i], calendar, now)[4]
    iso = _objects([t.isoformat() + "Z" if t.tzinfo is None else _iso(t) for t in reported])
    positions = np.column_stack((round6(lon.astype(float)), round6(lat.astype(float))))
    properties = {"id": cid, "state": state, "clock": clock, "category": category, "source": source}
    return cid.astype(np.int64), positions, {**properties, "reported_at": iso}


def _objects(values: Sequence[Any]) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def _iso(at: dt.datetime) -> str:
    return utc(at).isoformat().replace("+00:00", "Z")


def round6(values: np.ndarray) -> np.ndarray:
    """Python's `round(v, 6)` of each value (the map's positions: `mapdata.case_row`), as arrays: the product by
    10⁶ rounded to a whole number and divided back (the double nearest to that decimal, as Python's), except where
    the product lies within 10⁻⁶ of a half — its own rounding error is below 10⁻⁷ up to 180° — or is too large
    to be exact (2⁵²) or not finite: those are rounded by Python, which decides from the value's exact decimal
    expansion."""
    scaled = values * 1e6
    out = np.rint(scaled) / 1e6
    doubtful = ~(np.abs(scaled) < 2.0**52) | (np.abs(scaled - np.floor(scaled) - 0.5) < 1e-6)
    for i in np.flatnonzero(doubtful).tolist():
        out[i] = round(float(values[i]), 6)
    return out


# -- TileJSON ------------------------------------------------------------------------------------------------------


def tilejson(shapes: mapdata.AreaShapes, layer: str, url: str) -> dict[str, Any]:
    """A TileJSON 3.0.0 document for one layer (`url`: the tile URL template with {z}/{x}/{y}); bounds are those of
    the layer's areas in the generation (of its districts for `cases`)."""
    check_layer(layer)
    bounds = [-180.0, -MAX_LAT, 180.0, MAX_LAT]
    outer = shapes.level(layer if layer in LEVELS else LEVELS[0])
    for level in LEVELS:  # no district: the bounds of the first level there is
        outer = outer or shapes.level(level)
    if outer is not None and len(outer.geoms):
        bounds = [round(float(v), 6) for v in shapely.total_bounds(outer.geoms)]
    centre_zoom = _fit_zoom(bounds)
    fields = CASE_FIELDS if layer == CASES else AREA_FIELDS
    minzoom = CASES_MIN_ZOOM if layer == CASES else 0
    name_zh = LAYER_NAMES_ZH[layer]
    return {
        "tilejson": "3.0.0",
        "name": layer,
        "scheme": "xyz",
        "tiles": [url],
        "minzoom": minzoom,
        "maxzoom": MAX_TILE_ZOOM,
        "bounds": bounds,
        "center": [round((bounds[0] + bounds[2]) / 2, 6), round((bounds[1] + bounds[3]) / 2, 6), centre_zoom],
        "description": (
            f"{name_zh}（{layer}）矢量瓦片，EPSG:3857，extent {EXTENT}，buffer {BUFFER}"
            + (f"；第 {shapes.generation_id} 版边界" if layer != CASES else "；仅含可见案件")
        ),
        "vector_layers": [
            {"id": layer, "fields": dict(fields), "minzoom": minzoom, "maxzoom": MAX_TILE_ZOOM, "description": name_zh}
        ],
        "generation_id": shapes.generation_id,
    }


def _fit_zoom(bounds: Sequence[float]) -> int:
    width = max(bounds[2] - bounds[0], 1e-6)
    return max(0, min(MAX_TILE_ZOOM, int(math.floor(math.log2(360.0 / width)))))


# -- the cache -----------------------------------------------------------------------------------------------------


def tile_tag(*parts: object) -> str:
    """A strong validator for a tile named by its key (same key, same bytes: encoding is deterministic)."""
    return hashlib.sha1("|".join(map(str, (FORMAT, *parts))).encode()).hexdigest()[:24]


def content_tag(body: bytes) -> str:
    return hashlib.sha1(body).hexdigest()[:24]


class TileCache:
    """Encoded tiles by key, least recently used out first, within `budget` bytes (thread-safe). A key holds the
    database and the generation: when a database's active generation changes, its older tiles are dropped at the
    first tile of the new one, and a tile of an older generation is never served for a newer one."""

    def __init__(self, budget: int = 64 * 2**20):
        self.budget = budget
        self.used = 0
        self.hits = self.misses = 0
        self._items: OrderedDict[tuple[Any, ...], bytes] = OrderedDict()
        self._generation: dict[str, int] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple[Any, ...]) -> bytes | None:
        with self._lock:
            body = self._items.get(key)
            if body is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return body

    def put(self, key: tuple[Any, ...], body: bytes) -> None:
        """`key` starts with (database, generation, …): the generation any value that names it."""
        database, generation = key[0], key[1]
        cost = len(body) + 200
        if cost > self.budget:
            return
        with self._lock:
            if self._generation.get(database) != generation:
                self._generation[database] = generation
                for old in [k for k in self._items if k[0] == database and k[1] != generation]:
                    self.used -= len(self._items.pop(old)) + 200
            if key in self._items:
                self.used -= len(self._items.pop(key)) + 200
            self._items[key] = body
            self.used += cost
            while self.used > self.budget:
                _, dropped = self._items.popitem(last=False)
                self.used -= len(dropped) + 200

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._generation.clear()
            self.used = 0

    def __len__(self) -> int:
        return len(self._items)
