"""Locating many records at once: DataFrames and GeoDataFrames in and out, and the files planners and the 12345
hotline exchange (CSV, XLSX, GeoPackage, Parquet).

Input rows carry `lon`/`lat` (in any coordinate system gridmap knows, `crs`), or a geometry (GeoDataFrame), or
an `address`. Output adds, per row: the chain codes (`district_code` … `microgrid_code`), `grid_name`,
`branch`, `method` (coordinates, address, nearest or none), `flags` (`;`-separated, as in single lookups),
`candidates` (other grids on a shared boundary) and, for addresses, `address_confidence` and the matched place.
Rows that cannot be located get `method` none and a flag that says why (`invalid_coordinate`,
`outside_service_area`, `address_not_matched`, `address_too_long` over 300 characters); a batch never fails because
of one bad row.
"""

from __future__ import annotations

import codecs
import json
import os
import sys
import threading
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import shapely

from gridmap.errors import InvalidInput
from gridmap.geo.index import (
    FLAG_NEAR_BOUNDARY,
    FLAG_ON_BOUNDARY,
    FLAG_OUTSIDE,
    M_PER_DEG_LAT,
    M_PER_DEG_LON_EQ,
    AreaIndex,
)
from gridmap.textcheck import MAX_ADDRESS

if TYPE_CHECKING:  # imported where they are used: `gridmap locate-file` on a Parquet file needs neither
    import datetime as dt

    import pandas as pd
    from numpy.typing import ArrayLike
    from sqlalchemy.orm import Session

    from gridmap.cases.bulk import Bar

    # a chunk of a file read: (Arrow table of every column or None, pandas frame or None, Arrow table of the
    # columns that locate or None); pyarrow is untyped
    Chunk = tuple[Any, pd.DataFrame | None, Any]


class AddressMatcher(Protocol):
    """What locates a row by its address: a `gridmap.locating.gazetteer.Gazetteer`, or anything with its `match`."""

    def match(self, text: str) -> Any: ...


LEVELS = ("district", "subdistrict", "community", "grid", "microgrid")
OUT_COLUMNS = [f"{lv}_code" for lv in LEVELS] + ["grid_name", "branch", "method", "flags", "candidates"]
FORMATS = {
    ".csv": "csv",
    ".xlsx": "xlsx",
    ".gpkg": "gpkg",
    ".geojson": "geojson",
    ".parquet": "parquet",
    ".geoparquet": "parquet",
}
GDAL_DRIVERS = {"gpkg": "GPKG", "geojson": "GeoJSON"}  # the only drivers GDAL may use, one per format
CONTENT = {
    "csv": "CSV text",
    "xlsx": "an XLSX workbook",
    "gpkg": "a GeoPackage",
    "geojson": "GeoJSON",
    "parquet": "(Geo)Parquet",
    "xml": "XML (such as a GDAL VRT, GML or KML)",
    "zip": "a zip archive",
    "sqlite": "an SQLite database that is not a GeoPackage",
    "binary": "binary data",
}
MAX_FILE_ROWS = 5_000_000
CHUNK = 200_000
CHUNK_ROWS = 250_000  # rows of a CSV or Parquet file read, located and written at a time


# flags in the order single lookups and batches list them: the located part first, then why a row was not used
FLAG_ORDER = (
    FLAG_OUTSIDE,
    FLAG_ON_BOUNDARY,
    FLAG_NEAR_BOUNDARY,
    "invalid_coordinate",
    "outside_service_area",
    "address_too_long",
    "address_not_matched",
    "address_community_only",
    "no_location_given",
)
_BIT = {name: np.uint16(1 << k) for k, name in enumerate(FLAG_ORDER)}
_FLAG_TEXT = np.array(
    [";".join(f for k, f in enumerate(FLAG_ORDER) if mask >> k & 1) for mask in range(1 << len(FLAG_ORDER))],
    dtype=object,
)  # bit mask -> "a;b"
METHODS = np.array(["none", "coordinates", "address"], dtype=object)
TIE_DEG = 1e-8  # a point this close to its leaf's edge is checked for other covering leaves (the reference)
_LEAF_COLUMNS: weakref.WeakKeyDictionary[AreaIndex, dict[str, LeafColumn]] = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()
LEAF_COLUMNS = tuple(f"{lv}_code" for lv in LEVELS) + ("grid_name",)


class LeafColumn:
    """One output column read per leaf (a chain code, the grid's name, its branch), dictionary-encoded: its distinct
    values and, per leaf position, the position of the leaf's value among them (-1: none). `codes` has one entry
    more than the index has leaves, -1, which is what position len(index), no leaf, reads."""

    def __init__(self, values: np.ndarray, codes: np.ndarray):
        self.values = values
        self.codes = codes
        self._objects: np.ndarray | None = None
        self._arrow: Any = None

    @classmethod
    def from_keys(cls, keys: np.ndarray, value_of: Callable[[np.ndarray], np.ndarray]) -> LeafColumn:
        """From an integer key per leaf (-1: none) and a function giving the text of each of a sorted array of
        distinct keys (a numpy string array; "" for no value)."""
        distinct = np.unique(keys[keys >= 0])
        texts = np.asarray(value_of(distinct), dtype=str)
        value_code: np.ndarray
        if len(texts) and texts[0] != "" and bool(np.all(texts[1:] > texts[:-1])):  # codes: distinct, in order
            values, value_code = texts, np.arange(len(texts), dtype=np.int32)
        else:
            values, inverse = np.unique(texts, return_inverse=True)
            value_code = inverse.astype(np.int32)
        if len(values) and values[0] == "":  # no value: sorted first
            value_code -= 1
            values = values[1:]
        codes = np.full(len(keys) + 1, -1, np.int32)
        if len(distinct):
            at = np.minimum(np.searchsorted(distinct, keys), len(distinct) - 1)
            codes[:-1] = np.where(keys >= 0, value_code[at], -1)
        return cls(values, codes)

    def objects(self) -> np.ndarray:
        """The values as an object array with None after them (position -1)."""
        if self._objects is None:
            out = np.empty(len(self.values) + 1, dtype=object)
            out[: len(self.values)] = self.values
            self._objects = out
        return self._objects

    def arrow(self) -> Any:  # a pyarrow StringArray (pyarrow is untyped)
        if self._arrow is None:
            self._arrow = _string_array(self.values)
        return self._arrow


def leaf_columns(index: AreaIndex) -> dict[str, LeafColumn]:
    """Per leaf position, the chain codes and the grid name, dictionary-encoded (`LeafColumn`): the chain of every
    leaf walked at once over the index's parent array (`AreaIndex.leaf_level_areas`), as `AreaIndex.chain_of` reads
    it — the code of the innermost area of each level, the name of the outermost grid. Built once per index."""
    with _LOCK:
        columns = _LEAF_COLUMNS.get(index)
        if columns is None:

            def codes_of(at: np.ndarray) -> np.ndarray:
                return np.asarray(index.area_codes[at])

            def names_of(at: np.ndarray) -> np.ndarray:
                return np.array([index.area_name(k) for k in at.tolist()], dtype=str)

            columns = {f"{lv}_code": LeafColumn.from_keys(index.leaf_level_areas(lv), codes_of) for lv in LEVELS}
            columns["grid_name"] = LeafColumn.from_keys(index.leaf_level_areas("grid", innermost=False), names_of)
            _LEAF_COLUMNS[index] = columns
    return columns


def leaf_tables(index: AreaIndex) -> dict[str, np.ndarray]:
    """Per leaf position, the chain codes and grid name (object arrays of len(index) + 1; the last entry, None,
    is what position -1, no leaf, reads)."""
    return {name: column.objects()[column.codes] for name, column in leaf_columns(index).items()}


def flag_text(bits: np.ndarray | list[int]) -> np.ndarray:
    """`;`-joined flag names (FLAG_ORDER) for an array of flag bit masks."""
    return _FLAG_TEXT[np.asarray(bits, dtype=np.int64)]


def _join_groups(point: np.ndarray, codes: np.ndarray, n: int) -> np.ndarray:
    """`;`-joined codes per point, for (point, code) pairs already in order; None where a point has none."""
    out = np.full(n, None, dtype=object)
    if len(point):
        cuts = np.flatnonzero(np.diff(point)) + 1
        starts = np.concatenate([[0], cuts])
        for p, group in zip(point[starts], np.split(codes, cuts)):
            out[p] = ";".join(group)
    return out


def _near_leaves(
    index: AreaIndex, lon: np.ndarray, lat: np.ndarray, near_m: float, pairs_per_step: int = 100_000
) -> tuple[np.ndarray, np.ndarray]:
    """`AreaIndex.leaves_within` for many points at once: (point, leaf) pairs within `near_m` metres, nearest first
    per point (ties by code), distances computed in the same local frame with the same arithmetic."""
    kx = M_PER_DEG_LON_EQ * np.cos(np.radians(lat))
    radius = near_m / np.minimum(kx, M_PER_DEG_LAT)
    pt, leaf = index.tree.query(shapely.points(lon, lat), predicate="dwithin", distance=radius)
    dist = np.empty(len(pt))
    ncoord = shapely.get_num_coordinates(index.leaf_geoms)
    origin = shapely.Point(0.0, 0.0)
    for s in range(0, len(pt), pairs_per_step):
        p, g = pt[s : s + pairs_per_step], leaf[s : s + pairs_per_step]
        reps = ncoord[g]
        shift = np.column_stack([np.repeat(lon[p], reps), np.repeat(lat[p], reps)])
        scale = np.column_stack([np.repeat(kx[p], reps), np.full(reps.sum(), M_PER_DEG_LAT)])

        def to_local(xy: np.ndarray, shift: np.ndarray = shift, scale: np.ndarray = scale) -> np.ndarray:
            moved: np.ndarray = (xy - shift) * scale  # this step's points' frames
            return moved

        local = shapely.transform(index.leaf_geoms[g], to_local)
        dist[s : s + pairs_per_step] = shapely.distance(local, origin)
    keep = dist <= near_m
    pt, leaf, dist = pt[keep], leaf[keep], dist[keep]
    order = np.lexsort((leaf, dist, pt))  # leaf positions are in code order
    return pt[order], leaf[order]


def locate_arrays(
    index: AreaIndex, lon: ArrayLike, lat: ArrayLike, *, near_m: float = 0.0, progress: Bar | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Leaf position (-1 for none), flag bits (FLAG_ORDER) and candidates (None or `;`-joined codes) for arrays of
    WGS84 points, exactly as single lookups decide them; no Python per point but for points on an edge.

    A point covered by two leaves lies on both their boundaries; only points within TIE_DEG of an edge are asked
    which leaves cover them (`AreaIndex.covering_pairs`, GEOS covers). Those are found by the cell raster
    (`AreaIndex.locate_many_near`: the edges of each point's boundary cell), not by measuring every point's
    distance to its leaf's boundary; with `near_m` the distance is measured anyway (it decides the flag)."""
    lon = np.asarray(lon, dtype=np.float64)
    lat = np.asarray(lat, dtype=np.float64)
    n = len(lon)
    leaf = np.empty(n, np.int64)
    # which points may be within 2 * TIE_DEG of an edge, found while locating them
    maybe: np.ndarray | None = np.empty(n, bool) if near_m <= 0 and hasattr(index, "locate_many_near") else None
    for start in range(0, n, CHUNK):
        stop = min(start + CHUNK, n)
        if maybe is not None:
            leaf[start:stop], maybe[start:stop] = index.locate_many_near(lon[start:stop], lat[start:stop], 2 * TIE_DEG)
        else:
            leaf[start:stop] = index.locate_many(lon[start:stop], lat[start:stop])
        if progress is not None:
            progress.update(stop - start)
    bits = np.where(leaf < 0, _BIT[FLAG_OUTSIDE], np.uint16(0)).astype(np.uint16)
    candidates = np.full(n, None, dtype=object)
    inside = np.flatnonzero(leaf >= 0)
    if not len(inside):
        return leaf, bits, candidates
    if maybe is not None:
        # only points that may be near an edge can be covered by more than one leaf: GEOS says which cover them
        tied = inside[maybe[inside]]
    else:
        d_deg = shapely.distance(index.leaf_boundaries[leaf[inside]], shapely.points(lon[inside], lat[inside]))
        tied = inside[d_deg <= TIE_DEG]
    own_extra = np.zeros(0, np.int64), np.zeros(0, np.int64)
    if len(tied):
        hit_pt, hit_leaf = index.covering_pairs(lon[tied], lat[tied])  # by point, then leaf
        count = np.bincount(hit_pt, minlength=len(tied))
        first = np.ones(len(hit_pt), bool)
        first[1:] = hit_pt[1:] != hit_pt[:-1]
        rest = ~first & (count[hit_pt] > 1)  # the covering leaves after the smallest code: the candidates
        several = tied[count > 1]
        bits[several] |= _BIT[FLAG_ON_BOUNDARY]
        own_extra = tied[hit_pt[rest]], hit_leaf[rest]
        candidates = _join_groups(own_extra[0], index.leaf_codes[own_extra[1]], n)
    if near_m > 0:
        # a point farther from its own leaf's boundary than near_m (in the shorter metre-per-degree) is not near
        kx = M_PER_DEG_LON_EQ * np.cos(np.radians(lat[inside]))
        close = inside[np.flatnonzero(d_deg * np.minimum(kx, M_PER_DEG_LAT) <= near_m)]
        if len(close):
            p, g = _near_leaves(index, lon[close], lat[close], near_m)
            p = close[p]
            import pandas as pd

            # not the point's own leaf, nor one of its on-boundary candidates
            own = pd.MultiIndex.from_arrays(
                [np.concatenate([close, own_extra[0]]), np.concatenate([leaf[close], own_extra[1]])]
            )
            keep = ~pd.MultiIndex.from_arrays([p, g]).isin(own)
            p, g = p[keep], g[keep]
            if len(p):
                bits[np.unique(p)] |= _BIT[FLAG_NEAR_BOUNDARY]
                near = _join_groups(p, index.leaf_codes[g], n)
                has_near = np.flatnonzero(near != None)  # noqa: E711 (elementwise)
                ties, extra = candidates[has_near], near[has_near]
                joined = extra.copy()
                both = pd.notna(ties)  # elementwise (codes or None); on-boundary candidates first, then the near ones
                joined[both] = (
                    pd.Series(ties[both], dtype=object) + ";" + pd.Series(extra[both], dtype=object)
                ).to_numpy(dtype=object)
                candidates[has_near] = joined
    return leaf, bits, candidates


def locate_points(
    index: AreaIndex, lon: ArrayLike, lat: ArrayLike, *, near_m: float = 0.0, progress: Bar | None = None
) -> pd.DataFrame:
    """Leaf position, flags and candidates for arrays of WGS84 points, exactly as single lookups decide them."""
    import pandas as pd

    leaf, bits, candidates = locate_arrays(index, lon, lat, near_m=near_m, progress=progress)
    cand = candidates.copy()
    cand[cand == None] = ""  # noqa: E711
    return pd.DataFrame({"leaf": leaf, "flags": flag_text(bits), "candidates": cand})


def branch_names(
    session: Session | None, on: dt.date | None = None, generation_id: int | None = None
) -> dict[str, str] | None:
    """Area code -> name of its party branch on a date (None without a database): the branch
    `areas.people_directory` gives (the smallest id among those in force), in one query of two columns read through
    the session's DB-API connection (`raw_branch_names`; no ORM row per assignment). With `generation_id`, only the
    grids of that generation (the branch a batch answers is its grid's)."""
    if session is None:
        return None
    from gridmap.calendar import china_date

    dbapi = session.connection().connection.driver_connection
    assert dbapi is not None  # a connection checked out of the pool
    cursor = dbapi.cursor()
    try:
        return raw_branch_names(
            cursor, on or china_date(), session.get_bind().dialect.name == "sqlite", generation_id=generation_id
        )
    finally:
        cursor.close()


_DISTINCT: dict[int, tuple[np.ndarray, list[str], np.ndarray]] = {}  # id → (table, distinct, positions)


def _distinct(table: np.ndarray) -> tuple[list[str], np.ndarray]:
    """The distinct strings of an object array (None left out), sorted, and each entry's position among them
    (-1 for None); remembered for the small tables every chunk reads (chains, names, branches, flags)."""
    small = len(table) <= 1 << 16
    if small:
        held = _DISTINCT.get(id(table))
        if held is not None and held[0] is table:
            return held[1], held[2]
    present = np.flatnonzero(table != None)  # noqa: E711 (elementwise)
    values = table[present].tolist()
    distinct = sorted(set(values))
    where = {v: k for k, v in enumerate(distinct)}
    code_of = np.full(len(table), -1, np.int32)
    code_of[present] = np.fromiter((where[v] for v in values), np.int32, len(values))
    if small:
        with _LOCK:
            if len(_DISTINCT) > 64:
                _DISTINCT.clear()
            _DISTINCT[id(table)] = (table, distinct, code_of)  # the table held: its id is not reused meanwhile
    return distinct, code_of


def _string_array(values: list[str] | np.ndarray) -> Any:  # a pyarrow StringArray (pyarrow is untyped)
    """An Arrow string array of `values`, from buffers: a numpy string array of ASCII text (codes) without a Python
    string per value (its bytes, less each value's padding)."""
    import pyarrow as pa

    if isinstance(values, np.ndarray):
        try:
            raw = values.astype("S")
        except UnicodeEncodeError:  # not ASCII: encoded one by one below
            values = values.tolist()
        else:
            lengths = np.strings.str_len(raw).astype(np.int64)
            offsets = np.zeros(len(raw) + 1, np.int64)
            np.cumsum(lengths, out=offsets[1:])
            if offsets[-1] < 2**31:
                grid = raw.view(np.uint8).reshape(len(raw), raw.dtype.itemsize)
                data = grid[np.arange(raw.dtype.itemsize) < lengths[:, None]]
                return pa.Array.from_buffers(
                    pa.string(), len(raw), [None, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(data)]
                )
            values = values.tolist()
    encoded = [v.encode() for v in values]
    offsets = np.zeros(len(encoded) + 1, np.int64)
    np.cumsum([len(e) for e in encoded], out=offsets[1:])
    if offsets[-1] >= 2**31:
        return pa.Array.from_buffers(
            pa.large_string(), len(encoded), [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded))]
        ).cast(pa.string())
    return pa.Array.from_buffers(
        pa.string(), len(encoded), [None, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(b"".join(encoded))]
    )


@dataclass
class Located:
    """The located columns of a batch, as arrays: `pos` indexes the per-leaf columns (len(index) for no leaf)."""

    pos: np.ndarray
    tables: dict[str, LeafColumn]
    bits: np.ndarray
    method: np.ndarray
    candidates: np.ndarray
    wlon: np.ndarray
    wlat: np.ndarray
    address: tuple[Any, ...] | None  # (confidence, matched place) when the input has an address column

    def column(self, name: str) -> np.ndarray:
        """One output column as an object (or float) array, as `locate_frame` returns it."""
        if name in self.tables:
            table = self.tables[name]
            return np.asarray(table.objects()[table.codes[self.pos]])
        if name == "flags":
            return flag_text(self.bits)
        if name == "method":
            return np.asarray(METHODS[self.method])
        if name == "candidates":
            return self.candidates
        if name in ("lon_wgs84", "lat_wgs84"):
            return self.wlon if name == "lon_wgs84" else self.wlat
        if name in ("address_confidence", "address_place") and self.address is not None:
            return np.asarray(self.address[0 if name == "address_confidence" else 1])
        raise KeyError(name)

    def names(self) -> list[str]:
        return (
            (["address_confidence", "address_place"] if self.address is not None else [])
            + ["lon_wgs84", "lat_wgs84"]
            + OUT_COLUMNS
        )

    def arrow(self, name: str, dictionary: bool = False) -> Any:
        """One output column as a pyarrow array; `dictionary`: the text columns as dictionary arrays over their
        distinct values (no string copied per row). Built from buffers: `pyarrow.array` imports pandas."""
        import pyarrow as pa

        if name in ("lon_wgs84", "lat_wgs84", "address_confidence"):
            values = np.ascontiguousarray(self.column(name), dtype=np.float64)
            return pa.Array.from_buffers(pa.float64(), len(values), [None, pa.py_buffer(values)])
        if name in self.tables:  # the per-leaf columns: their dictionary is made once per index
            leaf = self.tables[name]
            positions, strings = leaf.codes[self.pos], leaf.arrow()
        else:
            if name == "flags":
                table, codes = _FLAG_TEXT, self.bits
            elif name == "method":
                table, codes = METHODS, self.method
            else:  # a value per row (candidates, the matched place): mostly none, few distinct ones
                table, codes = self.column(name), None
            distinct, code_of = _distinct(table)
            positions = code_of if codes is None else code_of[codes]
            strings = _string_array(distinct)
        missing = positions < 0
        indices = pa.Array.from_buffers(
            pa.int32(),
            len(positions),
            [
                pa.py_buffer(np.packbits(~missing, bitorder="little")) if missing.any() else None,
                pa.py_buffer(np.ascontiguousarray(positions, dtype=np.int32)),
            ],
        )
        return pa.DictionaryArray.from_arrays(indices, strings) if dictionary else strings.take(indices)

    def summary(self) -> dict[str, Any]:
        """Rows by method, by flag, and how many got a grid (as `locate_file` reports them)."""
        counts = np.bincount(self.method, minlength=len(METHODS))
        return {
            "method": {m: int(c) for m, c in zip(METHODS, counts) if c},
            "flags": {f: c for f in FLAG_ORDER if (c := int(np.count_nonzero(self.bits & _BIT[f])))},
            "located": int(np.count_nonzero(self.tables["grid_code"].codes[self.pos] >= 0)),
        }


_WGS84_NAMES = frozenset({"wgs84", "epsg4326", "4326", "crs84", "epsg:4326"})


def _coordinate_system(crs: str | None) -> Any:
    """`crs.parse_crs(crs)`, or None for the names it reads as WGS84 (EPSG:4326, whose conversion is the
    identity): those need no import of pyproj."""
    import re

    if crs is None or not str(crs).strip() or re.sub(r"[\s_\-]", "", str(crs)).lower() in _WGS84_NAMES:
        return None
    from gridmap.geo import crs as gcrs

    return gcrs.parse_crs(crs)


def _frame_coordinates(
    frame: pd.DataFrame, crs: str | None, lon: str, lat: str, address: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, Any]:
    """(x, y, given, system) of a (Geo)DataFrame: the coordinates as floats (NaN where missing or not a number),
    where a coordinate was written but is not a number, and their coordinate system (None: WGS84 as it is)."""

    n = len(frame)
    x = np.full(n, np.nan)
    y = np.full(n, np.nan)
    system = _coordinate_system(crs)
    if (
        hasattr(frame, "geometry")
        and getattr(frame, "geometry", None) is not None
        and hasattr(frame, "crs")
        and frame.geometry.name in frame.columns
    ):
        from gridmap.geo import crs as gcrs

        geoms = frame.geometry.values
        pts = shapely.point_on_surface(np.asarray(geoms, dtype=object))
        x, y = shapely.get_x(pts), shapely.get_y(pts)
        if frame.crs is not None and (system is None or system.name == "wgs84"):
            system = gcrs.CoordinateSystem(f"EPSG:{frame.crs.to_epsg()}", frame.crs.to_epsg())
            if system.epsg == 4326:
                system = None
    elif lon in frame.columns and lat in frame.columns:
        x, y = _numbers(frame[lon]), _numbers(frame[lat])
    elif address not in frame.columns:
        _no_columns(frame.columns, lon, lat, address)
    has_xy = np.isfinite(x) & np.isfinite(y)
    given = np.zeros(n, bool)  # a coordinate was written but is not a number
    for col in (lon, lat):
        if col in frame.columns and not has_xy.all():
            raw = frame[col].astype("string").str.strip().fillna("")
            given |= (raw != "").to_numpy() & ~has_xy
    return x, y, given, system


def _numbers(column: pd.Series) -> np.ndarray:
    """A column of coordinates as floats: numbers as they are, text (a CSV's) parsed with the spaces around it
    stripped; what is not a number is NaN."""
    import pandas as pd

    if pd.api.types.is_object_dtype(column.dtype) or pd.api.types.is_string_dtype(column.dtype):
        column = column.astype("string").str.strip()
    return pd.to_numeric(column, errors="coerce").to_numpy(float)


def _no_columns(columns: Any, lon: str, lat: str, address: str) -> None:
    raise InvalidInput(
        f"columns: need '{lon}' and '{lat}', a geometry, or '{address}'; found {', '.join(map(str, columns))}",
        field="columns",
        zh=f"列：须有“{lon}”和“{lat}”列、几何列或“{address}”列；文件中的列：{', '.join(map(str, columns))}。",
    )


def _arrow_coordinates(
    table: Any, crs: str | None, lon: str, lat: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, Any]:
    """`_frame_coordinates` of an Arrow table whose `lon` and `lat` columns are numbers (integers or floats), read
    without pandas: a null or NaN is missing; a row without both as finite numbers that has either written (an
    infinity, or one of the two) is `given` (as pandas reads it: the text of the number is not empty)."""
    x, y = (_float_values(table.column(c)) for c in (lon, lat))
    has_xy = np.isfinite(x) & np.isfinite(y)
    given = ~has_xy & (~np.isnan(x) | ~np.isnan(y))
    return x, y, given, _coordinate_system(crs)


_NUMPY_TYPES = {
    "int8": np.int8,
    "int16": np.int16,
    "int32": np.int32,
    "int64": np.int64,
    "uint8": np.uint8,
    "uint16": np.uint16,
    "uint32": np.uint32,
    "uint64": np.uint64,
    "halffloat": np.float16,
    "float": np.float32,
    "double": np.float64,
}


def _float_values(column: Any) -> np.ndarray:
    """A numeric Arrow column (`_NUMPY_TYPES`) as float64 numpy values, NaN where null, read from its buffers
    (pyarrow's `to_numpy` of a column with nulls goes through pandas, its `cast` through pyarrow.compute):
    integers past 2**53 are rounded to the nearest float, as pandas does."""
    dtype = _NUMPY_TYPES[str(column.type)]
    parts = [np.zeros(0)]
    for chunk in column.chunks:
        n = len(chunk)
        if not n:
            continue
        validity, data = chunk.buffers()
        values = np.frombuffer(data, dtype, count=n, offset=chunk.offset * np.dtype(dtype).itemsize)
        values = values.astype(np.float64)
        if chunk.null_count:
            valid = np.unpackbits(np.frombuffer(validity, np.uint8), bitorder="little", count=chunk.offset + n)[
                chunk.offset :
            ]
            values[~valid.astype(bool)] = np.nan
        parts.append(values)
    return parts[-1] if len(parts) == 2 else np.concatenate(parts)


def _arrow_numeric(table: Any, lon: str, lat: str, address: str) -> bool:
    """Whether `_arrow_coordinates` reads this table as `_frame_coordinates` reads its pandas frame: plain integer or
    float `lon` and `lat` columns, no address column, no geometry (GeoParquet)."""
    names = set(table.column_names)
    if lon not in names or lat not in names or address in names or b"geo" in (table.schema.metadata or {}):
        return False
    return all(str(table.schema.field(c).type) in _NUMPY_TYPES for c in (lon, lat))


def locate_columns(
    frame: pd.DataFrame,
    index: AreaIndex,
    *,
    crs: str | None = "wgs84",
    session: Session | None = None,
    gazetteer: AddressMatcher | None = None,
    near_m: float = 0.0,
    service_margin_m: float = 30_000.0,
    lon: str = "lon",
    lat: str = "lat",
    address: str = "address",
    progress: Bar | None = None,
    on: dt.date | None = None,
    branches: dict[str, str] | None = None,
    branch: bool = True,
) -> Located:
    """The located columns of `frame` as arrays (see `locate_frame`); `branches` (from `branch_names`) saves
    reading the branch directory again for every chunk of a file; without `branch` the branch directory is not read
    at all and the `branch` column is empty, as without a database (for a caller that does not read it)."""
    x, y, given, system = _frame_coordinates(frame, crs, lon, lat, address)
    texts = frame[address] if address in frame.columns else None
    return _locate_xy(
        x,
        y,
        given,
        system,
        index,
        texts=texts,
        session=session,
        gazetteer=gazetteer,
        near_m=near_m,
        service_margin_m=service_margin_m,
        progress=progress,
        on=on,
        branches=branches,
        branch=branch,
    )


def _locate_xy(
    x: np.ndarray,
    y: np.ndarray,
    given: np.ndarray,
    system: Any,
    index: AreaIndex,
    *,
    texts: Any = None,
    session: Session | None = None,
    gazetteer: AddressMatcher | None = None,
    near_m: float = 0.0,
    service_margin_m: float = 30_000.0,
    progress: Bar | None = None,
    on: dt.date | None = None,
    branches: dict[str, str] | None = None,
    branch: bool = True,
) -> Located:
    """`locate_columns` from coordinates already read (`_frame_coordinates`, `_arrow_coordinates`) and, when the
    input has an address column, its values (a pandas Series)."""
    n = len(x)
    has_xy = np.isfinite(x) & np.isfinite(y)
    wlon = np.full(n, np.nan)
    wlat = np.full(n, np.nan)
    if has_xy.all() and system is None:
        wlon, wlat = x.copy(), y.copy()
    elif has_xy.any():
        if system is None:
            cx, cy = x[has_xy], y[has_xy]
        else:
            from gridmap.geo import crs as gcrs

            with np.errstate(all="ignore"):
                cx, cy = gcrs.to_wgs84(x[has_xy], y[has_xy], system)
        wlon[has_xy], wlat[has_xy] = cx, cy
    with np.errstate(invalid="ignore"):
        bad = has_xy & ~((np.abs(wlat) <= 90) & (np.abs(wlon) <= 180) & np.isfinite(wlon) & np.isfinite(wlat))
    far = np.zeros(n, bool)
    if index.bounds is not None:
        minx, miny, maxx, maxy = index.bounds
        with np.errstate(invalid="ignore"):
            # inside the leaves' bounding box the distance to it is 0: only the points outside are measured
            box = np.zeros(n, bool)
            if service_margin_m >= 0:
                box = (wlon >= minx) & (wlon <= maxx) & (wlat >= miny) & (wlat <= maxy)
            out = np.flatnonzero(has_xy & ~bad & ~box)
            olon, olat = wlon[out], wlat[out]
            kx = 111_320 * np.cos(np.radians(np.clip(np.nan_to_num(olat), -89, 89)))
            dx = np.maximum.reduce([minx - olon, np.zeros(len(out)), olon - maxx]) * kx
            dy = np.maximum.reduce([miny - olat, np.zeros(len(out)), olat - maxy]) * 110_574
            far[out] = np.hypot(dx, dy) > service_margin_m
    method = has_xy.astype(np.int8)  # METHODS: 0 none, 1 coordinates, 2 address
    bits = np.zeros(n, np.uint16)
    bits[bad | given] |= _BIT["invalid_coordinate"]
    bits[far] |= _BIT["outside_service_area"]
    usable = has_xy & ~bad & ~far
    method[has_xy & ~usable] = 0
    found = None
    if texts is not None:
        confidence = np.full(n, np.nan)
        matched = np.full(n, None, dtype=object)
        texts_all = texts.astype("string").fillna("").str.strip().to_numpy()
        todo = np.flatnonzero(~has_xy & (texts_all != ""))
        if len(todo):  # geocoding stays row by row, for the rows that have an address and no coordinates only
            if gazetteer is None:
                if session is None:
                    raise InvalidInput(
                        "address: locating addresses needs a database session",
                        field="address",
                        zh="地址：按地址定位需要连接数据库。",
                    )
                from gridmap.locating.gazetteer import gazetteer_for

                gazetteer = gazetteer_for(session)
            raw_texts = texts.astype("string").fillna("").to_numpy()
            for i in todo:
                if len(raw_texts[i]) > MAX_ADDRESS:  # never handed to the gazetteer
                    bits[i] |= _BIT["address_too_long"]
                    continue
                m = gazetteer.match(str(raw_texts[i]))
                confidence[i] = m.confidence
                if m.place is None or m.level != "place":
                    bits[i] |= _BIT["address_not_matched" if m.place is None else "address_community_only"]
                    if m.place is not None:
                        matched[i] = m.place["name"]
                    continue
                matched[i] = m.place["name"]
                wlon[i], wlat[i] = m.place["lon"], m.place["lat"]
                usable[i] = True
                method[i] = 2
        found = (confidence, matched)
    bits[~has_xy & ~given & ~usable & (bits == 0)] |= _BIT["no_location_given"]
    idx = np.flatnonzero(usable)
    if len(idx) == n:
        leaf, located_bits, located_candidates = locate_arrays(index, wlon, wlat, near_m=near_m, progress=progress)
        bits |= located_bits
        candidates = located_candidates
    else:
        leaf, located_bits, located_candidates = locate_arrays(
            index, wlon[idx], wlat[idx], near_m=near_m, progress=progress
        )
        bits[idx] |= located_bits  # the located flags come first in FLAG_ORDER, as they did joined in front
        candidates = np.full(n, None, dtype=object)
        candidates[idx] = located_candidates
    tables = dict(leaf_columns(index))
    pos = np.full(n, len(index), np.int64)
    pos[idx] = np.where(leaf >= 0, leaf, len(index))
    names = None if not branch else branch_names(session, on, index.generation_id) if branches is None else branches
    tables["branch"] = _branch_column(index, names)
    return Located(
        pos, tables, bits, method, candidates, np.where(usable, wlon, np.nan), np.where(usable, wlat, np.nan), found
    )


_BRANCH_COLUMNS: weakref.WeakKeyDictionary[AreaIndex, tuple[dict[str, str] | None, LeafColumn]] = (
    weakref.WeakKeyDictionary()
)


def _branch_column(index: AreaIndex, names: dict[str, str] | None) -> LeafColumn:
    """Per leaf position, its grid's branch name (none without a database), made once per index and directory."""
    with _LOCK:
        held = _BRANCH_COLUMNS.get(index)
        if held is not None and held[0] is names:
            return held[1]
    if names is None:
        column = LeafColumn(np.zeros(0, "U1"), np.full(len(index) + 1, -1, np.int32))
    else:
        known = names

        def branch_of(at: np.ndarray) -> np.ndarray:
            return np.array([known.get(code) or "" for code in index.area_codes[at].tolist()], dtype=str)

        column = LeafColumn.from_keys(index.leaf_level_areas("grid"), branch_of)
    with _LOCK:
        _BRANCH_COLUMNS[index] = (names, column)
    return column


def locate_frame(
    frame: pd.DataFrame,
    index: AreaIndex,
    *,
    crs: str | None = "wgs84",
    session: Session | None = None,
    gazetteer: AddressMatcher | None = None,
    near_m: float = 0.0,
    service_margin_m: float = 30_000.0,
    lon: str = "lon",
    lat: str = "lat",
    address: str = "address",
    progress: Bar | None = None,
    on: dt.date | None = None,
    branches: dict[str, str] | None = None,
) -> pd.DataFrame:
    """A copy of `frame` with the located columns added (see the module doc). A GeoDataFrame is located by its
    geometry (points; other shapes by a point on their surface), converted from its own CRS."""
    located = locate_columns(
        frame,
        index,
        crs=crs,
        session=session,
        gazetteer=gazetteer,
        near_m=near_m,
        service_margin_m=service_margin_m,
        lon=lon,
        lat=lat,
        address=address,
        progress=progress,
        on=on,
        branches=branches,
    )
    out = frame.copy()
    for name in located.names():
        out[name] = located.column(name)
    return out


def index_cache_dir() -> Path:
    """Where `cached_index` keeps built indexes: $GRIDMAP_INDEX_CACHE, else $XDG_CACHE_HOME/gridmap, else
    ~/.cache/gridmap (the user's own folder: the files are pickles, loaded only when the user owns them)."""
    import os

    if os.environ.get("GRIDMAP_INDEX_CACHE"):
        return Path(os.environ["GRIDMAP_INDEX_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "gridmap"


def cached_index(
    session: Session, generation_id: int | None = None, *, cache_dir: str | Path | None = None
) -> AreaIndex:
    """`areas.load_index` (the active generation by default), from the index file kept per generation and content
    (`generations.shared_index`: the areas' rows are read and hashed with the index code and library versions;
    a file for that hash is memory-mapped, otherwise the index is built as `load_index` builds it and saved).
    `gridmap locate-file` uses it: building the cell raster is the larger part of loading an index."""
    from gridmap.boundaries.areas import active_generation
    from gridmap.boundaries.generations import shared_index

    return shared_index(session, generation_id or active_generation(session).id, cache_dir=cache_dir)


DEFAULT_DATABASE_URL = "sqlite:///gridmap.sqlite"  # storage.DEFAULT_DATABASE_URL (a test keeps them equal)


def area_rows(cursor: Any, generation_id: int, sqlite: bool, *, wkb: bool = False) -> list[tuple[Any, ...]]:
    """(id, level, code, name, geometry bytes, parent id) of every area of a generation, by id, through a DB-API
    cursor: the geometry as the database holds it (SpatiaLite's blob; EWKB from PostGIS). What `index_digest`
    hashes, read alike by the ORM path (`generations.shared_index`) and without it (`quick_index`). With `wkb`, a
    seventh column the index is built from: the geometry as WKB (SpatiaLite's `AsBinary`, which needs the
    extension loaded; PostGIS's EWKB again)."""
    if sqlite:
        cursor.execute(
            "SELECT id, level, code, name, geom, parent_id"
            + (", AsBinary(geom)" if wkb else "")
            + " FROM area WHERE generation_id = ? ORDER BY id",
            (generation_id,),
        )
        return list(cursor.fetchall())
    cursor.execute(
        "SELECT id, level, code, name, ST_AsEWKB(geom), parent_id FROM area WHERE generation_id = %s ORDER BY id",
        (generation_id,),
    )
    rows = list(cursor.fetchall())
    return [(*r, r[4]) for r in rows] if wkb else rows


def index_digest(rows: list[tuple[Any, ...]], generation_id: int) -> str:
    """The name of a generation's index file: a digest of its areas' rows (`area_rows`: ids, levels, codes, names,
    parents, geometry bytes), the index code (gridmap.geo.index, gridmap.geo.cells) and the library versions.
    Hashed in three updates (the rows' other columns as one text, the geometries' lengths, their bytes) rather than
    two per row."""
    try:
        from _blake2 import blake2b  # hashlib's own, without loading OpenSSL (~10 ms) for it
    except ImportError:
        from hashlib import blake2b

    from gridmap.geo import cells as cellindex
    from gridmap.geo import index as lookup

    digest = blake2b(digest_size=20)
    for module in (lookup, cellindex):
        digest.update(Path(str(module.__file__)).read_bytes())
    digest.update(repr((shapely.__version__, np.__version__, sys.version, generation_id)).encode())
    digest.update(repr([(r[0], r[1], r[2], r[3], r[5]) for r in rows]).encode())
    geoms = [g.encode() if isinstance(g, str) else bytes(g) for g in (r[4] for r in rows)]
    digest.update(np.array([len(g) for g in geoms], np.int64).tobytes())
    digest.update(b"".join(geoms))
    return digest.hexdigest()


def shared_index_folder(folder: Path, generation_id: int, digest: str) -> Path:
    return folder / f"shared-{generation_id}-{digest}"


def load_shared_index(target: Path, generation_id: int) -> AreaIndex | None:
    """The index pickled in `target` (`generations.shared_index` writes it), its arrays memory-mapped; None when the
    folder is missing, unreadable, not the user's own or writable by others (pickles are loaded only from the
    user's own folders), or holds another generation."""
    import pickle

    try:
        info = target.stat()
        if info.st_uid != os.getuid() or info.st_mode & 0o022:
            return None
        data = (target / "index.pickle").read_bytes()
        count = int((target / "buffers").read_text())
        arrays = [np.load(target / f"{i}.npy", mmap_mode="c", allow_pickle=False) for i in range(count)]
        index = pickle.loads(data, buffers=arrays)
    except (OSError, ValueError, pickle.UnpicklingError, EOFError, AttributeError, ImportError, TypeError):
        return None
    if not isinstance(index, AreaIndex) or index.generation_id != generation_id:
        return None
    return index


def _raw_connection(url: str) -> tuple[Any, bool, type[Exception]] | None:
    """(DB-API connection, whether it is SQLite, the driver's Error class) for a `sqlite:///file` or
    `postgresql://` URL, opened as `storage.make_engine` would but without SQLAlchemy (and without SpatiaLite: only
    plain columns are read); None for any other URL (the caller then goes through `storage`)."""
    import re

    found = re.fullmatch(r"sqlite(?:\+pysqlite)?:///([^?]+)", url)
    if found:
        path = found.group(1)
        if path == ":memory:" or not os.path.isfile(path):  # storage creates or reports it
            return None
        from pysqlite3 import dbapi2

        return dbapi2.connect(path, timeout=10.0), True, dbapi2.Error
    found = re.fullmatch(r"postgresql(?:\+psycopg)?://(.*)", url)
    if found:
        import psycopg

        try:
            return psycopg.connect("postgresql://" + found.group(1)), False, psycopg.Error
        except psycopg.Error:
            return None
    return None


def raw_branch_names(cursor: Any, on: Any, sqlite: bool, *, generation_id: int | None = None) -> dict[str, str]:
    """`branch_names` through a DB-API cursor: the smallest party organisation id in force on `on` per area code
    (with `generation_id`, per grid code of that generation only: a province has four times as many other
    assignments)."""
    mark = "?" if sqlite else "%s"
    grids = f"AND a.area_code IN (SELECT code FROM area WHERE generation_id = {mark} AND level = 'grid') "
    day = on.isoformat() if sqlite else on
    cursor.execute(
        "SELECT a.area_code, o.name FROM party_org_area a JOIN party_org o ON a.party_org_id = o.id "
        f"WHERE (a.valid_from IS NULL OR a.valid_from <= {mark}) "
        f"AND (a.valid_to IS NULL OR a.valid_to > {mark}) "
        + (grids if generation_id is not None else "")
        + "ORDER BY a.area_code, o.id",
        (day, day) if generation_id is None else (day, day, generation_id),
    )
    names: dict[str, str] = {}
    for code, name in cursor.fetchall():
        names.setdefault(code, name)
    return names


MEMO_FILE = "digests.json"
MEMO_KEEP = 32


def _sqlite_file(url: str) -> Path | None:
    import re

    found = re.fullmatch(r"sqlite(?:\+pysqlite)?:///([^?]+)", url)
    return Path(found.group(1)).resolve() if found else None


def _sqlite_state(path: Path) -> str | None:
    """What identifies the committed content of a SQLite database without reading it: the database file's and its
    write-ahead log's identity, size, times (change and modification) and headers — a commit in rollback mode moves
    the file change counter in the database's header; in WAL mode it appends frames to the log (its size grows) or
    restarts the log (new salts in its header); a file put in its place has another inode or change time. With
    the index code's own stamp (`index_digest` hashes it), so that a new gridmap never reuses an entry. None when
    the file cannot be read."""
    import os

    parts: list[Any] = [str(path), _code_stamp()]
    for name in (str(path), str(path) + "-wal"):
        try:
            info = os.stat(name)
            with open(name, "rb") as f:
                head = f.read(100)
        except FileNotFoundError:
            if name == str(path):
                return None
            parts.append(None)
            continue
        except OSError:
            return None
        if name != str(path) and info.st_size == 0:
            parts.append(None)  # an empty log, as a reader opening the database makes it, holds no commit
            continue
        parts.append([info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns, head.hex()])
    return json.dumps(parts)


def _code_stamp() -> str:
    from gridmap.geo import cells as cellindex
    from gridmap.geo import index as lookup

    try:
        from _blake2 import blake2b
    except ImportError:
        from hashlib import blake2b
    digest = blake2b(digest_size=20)
    for module in (lookup, cellindex):
        digest.update(Path(str(module.__file__)).read_bytes())
    digest.update(repr((shapely.__version__, np.__version__, sys.version)).encode())
    return digest.hexdigest()


# PostGIS: a fingerprint of a generation's rows computed by the server (one row back instead of every geometry):
# each row's columns quoted, its geometry's md5, all joined in id order and hashed
PG_FINGERPRINT = (
    "SELECT md5(string_agg(concat_ws(',', id, quote_nullable(level), quote_nullable(code), quote_nullable(name), "
    "coalesce(parent_id::text, 'null'), coalesce(md5(ST_AsEWKB(geom)), 'null')), E'\\n' ORDER BY id)), count(*) "
    "FROM area WHERE generation_id = %s"
)


def _pg_state(cursor: Any, generation_id: int) -> str:
    """What identifies a PostGIS generation's rows without reading them: `PG_FINGERPRINT`, with the index code's own
    stamp. Content, not a database: the same rows anywhere are the same index."""
    cursor.execute(PG_FINGERPRINT, (generation_id,))
    fingerprint, count = cursor.fetchone()
    return json.dumps(["postgis", _code_stamp(), generation_id, fingerprint, count])


def _memo_digest(folder: Path, state: str | None, generation_id: int) -> str | None:
    """The digest remembered for this state of the database (`_sqlite_state`, `_pg_state`) and active generation."""
    if state is None:
        return None
    try:
        info = folder.stat()
        if info.st_uid != os.getuid() or info.st_mode & 0o022:
            return None
        memo = json.loads((folder / MEMO_FILE).read_text())
        found = memo.get(state)
    except (OSError, ValueError, AttributeError):
        return None
    if isinstance(found, list) and len(found) == 2 and found[0] == generation_id and isinstance(found[1], str):
        return found[1]
    return None


def _remember_digest(folder: Path, state: str, generation_id: int, digest: str) -> None:
    """Keep `digest` for this database state (the newest MEMO_KEEP states), written whole and then renamed."""
    import tempfile

    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            memo = json.loads((folder / MEMO_FILE).read_text())
            memo = memo if isinstance(memo, dict) else {}
        except (OSError, ValueError):
            memo = {}
        memo.pop(state, None)
        memo[state] = [generation_id, digest]
        memo = dict(list(memo.items())[-MEMO_KEEP:])
        fd, tmp = tempfile.mkstemp(prefix=".memo-", dir=folder)
        with os.fdopen(fd, "w") as out:
            json.dump(memo, out)
        os.replace(tmp, folder / MEMO_FILE)
    except OSError:
        pass


def quick_index(url: str, *, cache_dir: str | Path | None = None) -> tuple[AreaIndex, dict[str, str], Any] | None:
    """(index of the active generation, its branch names, the day they are for) read without SQLAlchemy, when the
    generation's index file is there for exactly the rows the database holds now: the active generation's id
    and its areas' rows are read through a plain DB-API connection (in one read transaction) and hashed
    (`index_digest`, as `generations.shared_index` names the file), so an edit of any area, another generation
    activated or another database gives another name. The digest is remembered for the database's state
    (`digests.json` in the cache folder): on SpatiaLite the state of its files (`_sqlite_state`), on PostGIS a
    fingerprint of the rows the server computes (`_pg_state`); a later run in the same state reads neither the rows
    nor their geometries. None when there is no such file yet (or the URL or the
    database is not one this reads): the caller then takes the ORM path, which writes the file."""
    from gridmap.calendar import china_date

    opened = _raw_connection(url)
    if opened is None:
        return None
    conn, sqlite, error = opened
    folder = Path(cache_dir) if cache_dir is not None else index_cache_dir()
    path = _sqlite_file(url) if sqlite else None
    try:
        if not sqlite:  # one snapshot for the fingerprint, the rows and the branches
            import psycopg

            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            conn.read_only = True
        cursor = conn.cursor()
        state = _sqlite_state(path) if path is not None else None
        if sqlite:
            cursor.execute("BEGIN")  # one snapshot for the generation, its areas and the branches
        cursor.execute("SELECT id FROM generation WHERE status = 'active' ORDER BY id DESC LIMIT 1")
        found = cursor.fetchone()
        if found is None:
            return None
        generation_id = int(found[0])
        if not sqlite:
            state = _pg_state(cursor, generation_id)
        digest = _memo_digest(folder, state, generation_id)
        if digest is None:
            digest = index_digest(area_rows(cursor, generation_id, sqlite), generation_id)
            if state is not None and (path is None or _sqlite_state(path) == state):
                # SpatiaLite: no commit since `state`, so these are its rows; PostGIS: the same snapshot
                _remember_digest(folder, state, generation_id, digest)
        index = load_shared_index(shared_index_folder(folder, generation_id, digest), generation_id)
        if index is None:
            return None
        on = china_date()
        return index, raw_branch_names(cursor, on, sqlite, generation_id=generation_id), on
    except error:  # not a gridmap database, or not migrated: the ORM path says what is wrong
        return None
    finally:
        conn.close()


class _SessionGazetteer:
    """The gazetteer of a database, opened (with an ORM session) only when a row is located by its address."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine: Any = None
        self.session: Any = None
        self.gazetteer: Any = None

    def match(self, text: str) -> Any:
        if self.gazetteer is None:
            from gridmap.locating.gazetteer import gazetteer_for
            from gridmap.store import engine as storage

            self.engine = storage.make_engine(self.url)
            self.session = storage.make_sessionmaker(self.engine)()
            self.gazetteer = gazetteer_for(self.session)
        return self.gazetteer.match(text)

    def close(self) -> None:
        if self.session is not None:
            self.session.close()
        if self.engine is not None:
            self.engine.dispose()


def locate_file_at(
    url: str | None,
    source: str | Path,
    target: str | Path,
    *,
    crs: str | None = "wgs84",
    near_m: float = 0.0,
    as_of: Any = None,
    chunk_rows: int = CHUNK_ROWS,
    show_progress: bool | None = None,
    cache_dir: str | Path | None = None,
) -> dict[str, Any]:
    """`gridmap locate-file`: `locate_file` against the database at `url` (the boundaries in force today, or on
    `as_of`). When the active generation's index file is there for its current rows (`quick_index`), nothing
    of SQLAlchemy is imported — a process that locates a Parquet file of coordinates imports numpy, pyarrow and
    shapely and little else; addresses, if any, open an ORM session for the gazetteer when first needed.
    Otherwise (first run on these boundaries, `as_of`, another database) through the ORM: `cached_index`, which
    writes the index file for the next run."""
    url = url or DEFAULT_DATABASE_URL
    quick = quick_index(url, cache_dir=cache_dir) if as_of is None else None
    if quick is not None:
        index, branches, on = quick
        gazetteer = _SessionGazetteer(url)
        try:
            return locate_file(
                source,
                target,
                index,
                crs=crs,
                near_m=near_m,
                on=on,
                chunk_rows=chunk_rows,
                show_progress=show_progress,
                branches=branches,
                gazetteer=gazetteer,
            )
        finally:
            gazetteer.close()
    from gridmap.boundaries.generations import generation_on
    from gridmap.store import engine as storage

    engine = storage.make_engine(storage.database_url_from(url))
    try:
        with storage.make_sessionmaker(engine)() as session:
            index = cached_index(session, generation_on(session, as_of).id if as_of else None, cache_dir=cache_dir)
            return locate_file(
                source,
                target,
                index,
                session=session,
                crs=crs,
                near_m=near_m,
                on=as_of,
                chunk_rows=chunk_rows,
                show_progress=show_progress,
            )
    finally:
        engine.dispose()


def file_format(path: str | Path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise InvalidInput(
            f"file: {Path(path).name!r} has no supported extension; accepted: {', '.join(sorted(FORMATS))}",
            field="file",
            zh=f"文件：{Path(path).name!r} 的扩展名不受支持；可用：{', '.join(sorted(FORMATS))}。",
        )
    return FORMATS[suffix]


def sniff(path: str | Path) -> str:
    """What a file holds, decided from its first bytes (never from its name): gpkg (SQLite with the GeoPackage
    application id), parquet (PAR1), xlsx (a zip with a workbook), geojson (text starting with `{`), xml, zip,
    sqlite, binary, or csv (other text). A path GDAL would read as a network or virtual file (/vsi…, URLs) or
    anything but a regular file is refused."""
    text = str(path)
    name = Path(text).name
    if (
        text.lower().startswith(("/vsi", "vsi"))
        or "://" in text
        or text.lower().startswith(("http:", "https:", "ftp:", "file:"))
        or "/vsi" in text.lower()
    ):
        raise InvalidInput(
            f"file: {text[:80]!r} is a network or virtual path; give a local file",
            field="file",
            zh=f"文件：{text[:80]!r} 是网络路径或虚拟路径，请提供本地文件。",
        )
    real = Path(text).resolve()
    if not real.is_file():
        raise InvalidInput(f"file: {name!r} is not a regular file", field="file", zh=f"文件：{name!r} 不是普通文件。")
    with open(real, "rb") as f:
        head = f.read(4096)
    found = content_of(head)
    if found == "zip":
        import zipfile

        from gridmap.io import tabular

        try:
            with zipfile.ZipFile(real) as archive:
                tabular.check_archive(archive, repr(name))
                names = set(archive.namelist())
        except zipfile.BadZipFile:
            return "binary"
        return "xlsx" if {"[Content_Types].xml", "xl/workbook.xml"} <= names else "zip"
    return found


def content_of(head: bytes) -> str:
    """What a file's first bytes say it holds: gpkg, sqlite, parquet, zip (also an empty archive), binary, geojson
    (text starting with `{`), xml (with `<`) or csv (other text). One sniffer for every reader of user files."""
    if head.startswith(b"SQLite format 3\x00"):
        return "gpkg" if head[68:72] in (b"GPKG", b"GP10", b"GP11") else "sqlite"
    if head.startswith(b"PAR1"):
        return "parquet"
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "zip"
    if b"\x00" in head:
        return "binary"
    start = head.removeprefix(b"\xef\xbb\xbf").lstrip()
    if start.startswith(b"{"):
        return "geojson"
    if start.startswith(b"<"):
        return "xml"
    return "csv"


def _checked_kind(path: str | Path) -> str:
    """The format of `path`: its extension, checked against its content (`sniff`)."""
    kind = file_format(path)
    found = sniff(path)
    if found != kind:
        raise InvalidInput(
            f"file: {Path(path).name!r} is named {Path(path).suffix.lower()} but holds "
            f"{CONTENT[found]}; accepted: CSV, XLSX, GeoPackage, GeoJSON, (Geo)Parquet "
            "(unsupported_format)",
            field="file",
            zh=f"文件：{Path(path).name!r} 的扩展名是 {Path(path).suffix.lower()}，内容却是 "
            f"{found.upper()}；可用：CSV、XLSX、GeoPackage、GeoJSON、(Geo)Parquet。",
        )
    return kind


def read_table(path: str | Path) -> pd.DataFrame:
    """Read CSV (UTF-8, or GB18030 as Excel in China writes it), XLSX, GeoPackage, GeoJSON or (Geo)Parquet. The
    content must be what the name says (`sniff`): a GDAL VRT, GML or KML named .gpkg or .geojson is refused
    before GDAL sees it, and GDAL reads with that one format's driver only (`gridmap.io.gpkg`)."""
    import pandas as pd

    kind = _checked_kind(path)
    path = Path(path).resolve()
    if kind == "csv":
        text: pd.DataFrame = pd.read_csv(path, **_csv_text(_csv_encoding(path)))
        return text
    if kind == "xlsx":
        return _read_xlsx(path)
    if kind in GDAL_DRIVERS:
        from gridmap.io import gpkg as _gpkgio

        read: pd.DataFrame = _gpkgio.read(path, GDAL_DRIVERS[kind])
        return read
    import pyarrow.parquet as pq

    meta = pq.read_schema(path).metadata or {}
    if b"geo" in meta:
        import geopandas as gpd

        geo_frame: pd.DataFrame = gpd.read_parquet(path)  # a GeoDataFrame (geopandas is untyped)
        return geo_frame
    return pd.read_parquet(path)


def _read_xlsx(path: Path) -> pd.DataFrame:
    """The first sheet, streamed (`gridmap.io.tabular`); a cell over 4,000 characters refuses the file, naming it."""
    import pandas as pd

    from gridmap.io import tabular

    headings, rows = tabular.read_xlsx_rows(path.read_bytes(), label=repr(path.name), max_rows=MAX_FILE_ROWS)
    for number, values in rows:
        for heading, value in zip(headings, values):
            if isinstance(value, tabular.TooLong):
                raise InvalidInput(
                    f"file: {path.name!r} row {number} column {str(heading)[:40]!r} holds "
                    f"{value.length:,} characters; at most {tabular.MAX_CELL:,} per cell",
                    field="file",
                    zh=f"文件：{path.name!r} 第 {number} 行 {str(heading)[:40]!r} 列有 "
                    f"{value.length:,} 个字符，每格最多 {tabular.MAX_CELL:,} 个。",
                )
    names = [str(h) if h is not None else f"column {j}" for j, h in enumerate(headings, start=1)]
    return pd.DataFrame([values for _, values in rows], columns=names, dtype=object).infer_objects()


def write_table(frame: pd.DataFrame, path: str | Path) -> None:
    """Write CSV or XLSX through `gridmap.io.tabular` (text that looks like a formula stays text), or GeoPackage,
    GeoJSON or Parquet."""
    from gridmap.io import tabular

    kind = file_format(path)
    if kind == "csv":
        tabular.write_csv(frame, path)
    elif kind == "xlsx":
        Path(path).write_bytes(tabular.xlsx_bytes(frame, "Sheet1"))
    elif kind in GDAL_DRIVERS:
        import geopandas as gpd

        if not isinstance(frame, gpd.GeoDataFrame):
            frame = gpd.GeoDataFrame(
                frame, geometry=gpd.points_from_xy(frame["lon_wgs84"], frame["lat_wgs84"]), crs=4326
            )
        from gridmap.io import gpkg as _gpkgio

        _gpkgio.write(frame, path, GDAL_DRIVERS[kind])
    else:
        frame.to_parquet(path, index=False)


def _csv_encoding(path: Path) -> str:
    """utf-8-sig when the whole file decodes as UTF-8, else gb18030 (as Excel in China writes CSV); decided by one
    streaming pass, so that a chunked read never changes encoding half way."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    try:
        with open(path, "rb") as f:
            while block := f.read(1 << 20):
                decoder.decode(block)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return "gb18030"
    return "utf-8-sig"


def _csv_text(encoding: str) -> dict[str, Any]:
    """How a CSV is read: every column as the text it holds (a CSV has no types; read as numbers, a code `007`
    came back `7.0` and a phone number lost its leading zero), an empty cell as empty text, not as a missing
    value, and "NA" or "null" as those words. The coordinates are made numbers where they are used
    (`_frame_coordinates`); what is written back is the input's text, unchanged."""
    return {"dtype": str, "keep_default_na": False, "na_values": [], "encoding": encoding}


def _csv_chunks(path: Path, rows: int) -> Iterator[Chunk]:
    import pandas as pd

    with pd.read_csv(path, chunksize=rows, **_csv_text(_csv_encoding(path))) as reader:
        first = next(reader, None)
        if first is None:  # a heading and no rows
            yield None, pd.read_csv(path, **_csv_text(_csv_encoding(path))), None
            return
        yield None, first, None
        for chunk in reader:
            yield None, chunk, None


def _parquet_chunks(path: Path, rows: int, wanted: tuple[str, ...]) -> Iterator[Chunk]:
    """(arrow table, None, Arrow table of the columns that locate) per chunk of `rows` rows (`_part_frame` makes
    the second a frame, a GeoDataFrame for GeoParquet, when it is not read as arrays)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    source = pq.ParquetFile(path)
    schema = source.schema_arrow
    meta = schema.metadata or {}
    names = set(schema.names)
    geo = None
    if b"geo" in meta:
        geo = json.loads(meta[b"geo"])
    index_columns = [
        c for c in json.loads(meta.get(b"pandas", b"{}") or b"{}").get("index_columns", []) if isinstance(c, str)
    ]
    geo_columns = [c for c in (geo or {}).get("columns", {}) if c in names]
    if geo_columns or not ({wanted[0], wanted[1]} <= names or wanted[2] in names):
        keep = None  # a geometry or an error naming every column: all of them
    else:
        keep = [c for c in wanted if c in names]
    batches = source.iter_batches(batch_size=rows)
    if not source.metadata.num_rows:
        batches = iter([pa.RecordBatch.from_pylist([], schema=schema)])
    for batch in batches:
        table = pa.Table.from_batches([batch], schema=schema)
        part = table if keep is None else table.select(keep)
        yield table.drop_columns([c for c in index_columns if c in table.column_names]), None, part


def _part_frame(part: Any) -> pd.DataFrame:
    """The columns that locate, as pandas (a GeoDataFrame for GeoParquet)."""
    geo = json.loads((part.schema.metadata or {}).get(b"geo", b"null"))
    if geo is not None and any(c in part.column_names for c in geo.get("columns", {})):
        from geopandas.io.arrow import _arrow_to_geopandas

        geo_frame: pd.DataFrame = _arrow_to_geopandas(part, geo)  # (geopandas and pyarrow are untyped)
        return geo_frame
    frame: pd.DataFrame = part.to_pandas()
    return frame


class _ParquetOut:
    """Chunks appended to one Parquet file: the input's own columns (Arrow types and GeoParquet metadata kept),
    then the located ones as strings and floats.

    The columns taken from small tables (codes, names, branch, flags, method) are handed to Parquet as dictionary
    arrays — Parquet stores strings dictionary-encoded anyway, so it writes their indices without hashing a string
    per row — and the file declares them plain strings: the Arrow schema is not stored (it would say dictionary),
    which loses nothing when the input's columns are plain numbers, booleans, text, bytes or dates. Otherwise the
    strings are written out row by row, and the Arrow schema stored."""

    PLAIN = (
        "is_integer",
        "is_floating",
        "is_boolean",
        "is_string",
        "is_large_string",
        "is_binary",
        "is_large_binary",
        "is_date32",
        "is_null",
    )

    def __init__(self, path: Path):
        self.path, self.dictionary = path, False
        self.writer: Any = None  # a pyarrow.parquet.ParquetWriter once the first chunk is written (pyarrow is untyped)
        self.schema: Any = None

    def write(self, table: Any, frame: pd.DataFrame | None, located: Located) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if table is None:
            table = pa.Table.from_pandas(frame, preserve_index=False)
        if self.writer is None:
            self.dictionary = all(any(getattr(pa.types, test)(f.type) for test in self.PLAIN) for f in table.schema)
        names = located.names()
        for name in names:
            column = located.arrow(name, dictionary=self.dictionary)
            if name in table.column_names:
                table = table.set_column(table.column_names.index(name), name, column)
            else:
                table = table.append_column(name, column)
        if self.writer is None:
            meta = {k: v for k, v in (table.schema.metadata or {}).items() if k != b"pandas"}
            self.schema = table.schema.with_metadata(meta)
            coded = [f.name for f in self.schema if pa.types.is_dictionary(f.type)]
            stats = [f.name for f in self.schema if f.name not in coded]
            text = [
                f.name
                for f in self.schema
                if pa.types.is_dictionary(f.type) or pa.types.is_string(f.type) or pa.types.is_large_string(f.type)
            ]  # numbers are not worth a dictionary
            # snappy does not shrink coordinates (random float bits) and costs time: floats stay uncompressed
            compression: str | dict[str, str] = "snappy"
            if not any(pa.types.is_nested(f.type) for f in self.schema):
                compression = {f.name: "none" if pa.types.is_floating(f.type) else "snappy" for f in self.schema}
            self.writer = pq.ParquetWriter(
                self.path,
                self.schema,
                store_schema=not coded,
                write_statistics=stats if coded else True,
                use_dictionary=text,
                compression=compression,
            )
            if coded and meta:  # without the Arrow schema the writer leaves out the rest (GeoParquet's "geo")
                self.writer.add_key_value_metadata(meta)
        self.writer.write_table(
            table.cast(self.schema)
            if table.schema != self.schema
            else table.replace_schema_metadata(self.schema.metadata)
        )

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class _CsvOut:
    """Chunks appended to one CSV file, byte for byte what `tabular.write_csv` writes for the whole frame."""

    def __init__(self, path: Path):
        self.file = open(path, "wb")  # noqa: SIM115 - held across chunks; close() closes it (in locate_file's finally)
        self.first = True

    def write(self, table: Any, frame: pd.DataFrame | None, located: Located) -> None:
        out = _with_columns(table, frame, located)
        text = _safe_frame(out).to_csv(index=False, header=self.first)
        self.file.write(text.encode("utf-8-sig" if self.first else "utf-8"))
        self.first = False

    def close(self) -> None:
        self.file.close()


class _WholeOut:
    """Formats written at once (XLSX, GeoPackage, GeoJSON): chunks are gathered, then `write_table`."""

    def __init__(self, path: Path):
        self.path = path
        self.parts: list[pd.DataFrame] = []

    def write(self, table: Any, frame: pd.DataFrame | None, located: Located) -> None:
        self.parts.append(_with_columns(table, frame, located))

    def close(self) -> None:
        if self.parts:
            import pandas as pd

            write_table(self.parts[0] if len(self.parts) == 1 else pd.concat(self.parts, ignore_index=True), self.path)


def _with_columns(table: Any, frame: pd.DataFrame | None, located: Located) -> pd.DataFrame:
    """The whole input chunk as pandas (as `read_table` reads it) with the located columns."""
    if table is not None:
        geo = json.loads((table.schema.metadata or {}).get(b"geo", b"null"))
        if geo is not None:
            from geopandas.io.arrow import _arrow_to_geopandas

            frame = _arrow_to_geopandas(table, geo)
        else:
            frame = table.to_pandas()
    if frame is None:
        raise ValueError("a chunk with neither its Arrow table nor its frame")
    out = frame.copy()
    for name in located.names():
        out[name] = located.column(name)
    return out


def _safe_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """`tabular.safe_frame`, column by column instead of cell by cell (same cells get the leading `'`)."""
    import pandas as pd

    from gridmap.io import tabular

    out = frame.copy()
    for column in out.columns:
        dtype = out[column].dtype
        if (
            pd.api.types.is_object_dtype(dtype)
            or isinstance(dtype, (pd.StringDtype, pd.CategoricalDtype))
            or pd.api.types.is_string_dtype(dtype)
        ):
            values = out[column].astype(object)
            try:
                stripped = values.str.lstrip(" \u3000")
            except AttributeError:  # not all text: cell by cell
                out[column] = values.map(tabular.safe_cell)
                continue
            mask = stripped.str[:1].isin(list(tabular.FORMULA_START)).to_numpy()
            if mask.any():  # a plain number written as text is not a formula (`tabular.looks_like_formula`)
                mask = mask & ~stripped.str.fullmatch(tabular.NUMBER.pattern).fillna(False).to_numpy(bool)
            if mask.any():
                values = values.copy()
                values[mask] = "'" + values[mask]
            out[column] = values
    out.columns = [tabular.safe_cell(str(c)) for c in out.columns]
    return out


def locate_file(
    source: str | Path,
    target: str | Path,
    index: AreaIndex,
    *,
    session: Session | None = None,
    crs: str | None = "wgs84",
    near_m: float = 0.0,
    show_progress: bool | None = None,
    on: dt.date | None = None,
    chunk_rows: int = CHUNK_ROWS,
    branches: dict[str, str] | None = None,
    gazetteer: AddressMatcher | None = None,
) -> dict[str, Any]:
    """Read `source`, locate every row, write `target`; returns counts by method and flag.

    `branches` (`branch_names`) and `gazetteer` (anything with `match(text)`, for rows located by address) stand
    in for what `session` would be asked for; without either, the file is located without a database (no branch,
    no addresses).

    CSV and Parquet are read and written `chunk_rows` rows at a time (Parquet with `iter_batches` and one
    `ParquetWriter`; CSV in chunks, every column as its text, written back as it was read), so memory stays bounded
    by the chunk, not the file; the output is the same as located at once. XLSX, GeoPackage and GeoJSON are read
    (and written) whole. A progress bar goes to standard error (by default when it is a terminal)."""
    out_kind = file_format(target)
    kind = _checked_kind(source)
    source = Path(source).resolve()
    target = Path(target)
    if show_progress is None:
        show_progress = sys.stderr.isatty()
    chunk_rows = max(int(chunk_rows), 1)
    total = None
    if kind == "parquet":
        import pyarrow.parquet as pq

        total = pq.ParquetFile(source).metadata.num_rows
        chunks = _parquet_chunks(source, chunk_rows, ("lon", "lat", "address"))
    elif kind == "csv":
        chunks = _csv_chunks(source, chunk_rows)
    else:
        whole = read_table(source)
        total = len(whole)
        chunks = iter([(None, whole, None)])
    progress = None
    if show_progress:
        from tqdm import tqdm

        progress = tqdm(total=total, unit="pt", unit_scale=True, desc="locating", file=sys.stderr)
    # chunks are written to a file beside the target, which takes its place only once every chunk is written: a
    # job that fails half way leaves no half-written file that looks whole (nor spoils an earlier answer)
    streamed = out_kind in ("parquet", "csv")
    written = target.with_name(f".{target.name}.{os.getpid()}.part") if streamed else target
    writer: _ParquetOut | _CsvOut | _WholeOut
    writer = (
        _ParquetOut(written) if out_kind == "parquet" else _CsvOut(written) if out_kind == "csv" else _WholeOut(written)
    )
    if branches is None:
        branches = branch_names(session, on, index.generation_id)
    methods: dict[str, int] = {}
    flags: dict[str, int] = {}
    rows, located_rows, n_chunks = 0, 0, 0
    try:
        try:
            for table, frame, part in chunks:
                if frame is None and _arrow_numeric(part, "lon", "lat", "address"):
                    # plain number columns: read as arrays, no pandas
                    x, y, given, system = _arrow_coordinates(part, crs, "lon", "lat")
                    located = _locate_xy(
                        x, y, given, system, index, session=session, near_m=near_m, on=on, branches=branches
                    )
                else:
                    if frame is None:
                        frame = _part_frame(part)
                    located = locate_columns(
                        frame,
                        index,
                        crs=crs,
                        session=session,
                        near_m=near_m,
                        on=on,
                        branches=branches,
                        gazetteer=gazetteer,
                    )
                # (written here, not on a thread while the next chunk is located: on this 2-core machine, shared,
                # the thread made the whole run slower, ~1.37 s against ~1.22 s in 4 alternated runs at load 7)
                writer.write(table, frame, located)
                counts = located.summary()
                for into, add in ((methods, counts["method"]), (flags, counts["flags"])):
                    for key, value in add.items():
                        into[key] = into.get(key, 0) + value
                rows += len(located.pos)
                located_rows += counts["located"]
                n_chunks += 1
                if progress is not None:
                    progress.update(len(located.pos))
        finally:
            writer.close()
            if progress is not None:
                progress.close()
        if streamed:
            os.replace(written, target)
    finally:
        if streamed:
            written.unlink(missing_ok=True)
    return {
        "rows": rows,
        "method": dict(sorted(methods.items(), key=lambda kv: -kv[1])),
        "flags": dict(sorted(flags.items(), key=lambda kv: (-kv[1], FLAG_ORDER.index(kv[0])))),
        "located": located_rows,
        "written": str(target),
        "chunks": n_chunks,
    }
