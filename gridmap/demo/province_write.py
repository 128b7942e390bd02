"""Column-wise bulk writes for the province demo: a table's rows given as columns (numpy arrays or lists), written
by COPY (CSV, built by Arrow in C) on PostGIS and by the driver's executemany on SpatiaLite.

A write is two steps, so that the next chunk can be made while this one is written: `prepare` turns the columns
into what the database takes (the CSV bytes; the rows of parameters) and needs no connection; `write_prepared`
sends it. `write_columns` does both.

Geometries come as shapely arrays (SRID 4326) or, for a point column, as `Points` (x and y arrays: no shapely
object is made). On PostGIS they travel as hex EWKB in the CSV (a point's built for the whole column with numpy); on
SpatiaLite a point goes as a ready SpatiaLite BLOB (60 bytes, built for a whole column at once with numpy), a polygon
as WKB through `GeomFromWKB(?, 4326)` (with `CastToMulti` for a MULTIPOLYGON column). A JSON column comes as Python
values (dumped here) or as `JsonText`, each row's ready text. Timestamps are numpy datetime64 (UTC, NaT for NULL)
and are written as SQLAlchemy writes them on each database (PostgreSQL: UTC timestamps; SQLite:
'YYYY-MM-DD HH:MM:SS.ffffff'). Integers with NULLs come as a numpy masked array (or a list with None). Columns left
out take their server default or NULL; the ORM's Python-side defaults are not applied, so callers give every column
that has one.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import shapely
import sqlalchemy as sa
from geoalchemy2 import Geometry
from sqlalchemy.dialects import sqlite

_SQLITE = sqlite.dialect()

Columns = dict[str, Any]


@dataclass(frozen=True)
class Points:
    """A point column by its coordinates (SRID 4326), without shapely objects."""

    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.x)


@dataclass(frozen=True)
class JsonText:
    """A JSON column as each row's ready text (None for NULL), written as given: what `json.dumps` writes."""

    values: np.ndarray

    def __len__(self) -> int:
        return len(self.values)


@dataclass(frozen=True)
class Prepared:
    """Rows ready for one table: the CSV of a COPY (PostgreSQL) or the statement and its rows (SQLite)."""

    table: str
    names: tuple[str, ...]
    count: int
    csv: bytes = b""
    sql: str = ""
    rows: list[tuple[Any, ...]] | None = None


_SPATIALITE_POINT = np.dtype(
    [
        ("start", "u1"),
        ("endian", "u1"),
        ("srid", "<i4"),
        ("mbr", "<f8", (4,)),
        ("mbr_end", "u1"),
        ("kind", "<i4"),
        ("xy", "<f8", (2,)),
        ("end", "u1"),
    ]
)
_HEX = np.frombuffer(b"".join(f"{i:02X}".encode() for i in range(256)), np.uint8).reshape(256, 2)


def spatialite_points(x: np.ndarray, y: np.ndarray, srid: int = 4326) -> list[bytes]:
    """SpatiaLite's internal BLOB of each point (x, y): what `MakePoint(x, y, srid)` would store."""
    n = len(x)
    rec = np.zeros(n, _SPATIALITE_POINT)
    rec["start"], rec["endian"], rec["srid"] = 0x00, 0x01, srid
    rec["mbr"][:, 0] = rec["mbr"][:, 2] = x
    rec["mbr"][:, 1] = rec["mbr"][:, 3] = y
    rec["mbr_end"], rec["kind"], rec["end"] = 0x7C, 1, 0xFE
    rec["xy"][:, 0], rec["xy"][:, 1] = x, y
    raw = rec.tobytes()
    size = _SPATIALITE_POINT.itemsize
    return [raw[i : i + size] for i in range(0, n * size, size)]


def ewkb_points_hex(x: np.ndarray, y: np.ndarray, srid: int = 4326) -> pa.Array:
    """The hex EWKB of each point (x, y) with its SRID, as `shapely.to_wkb(..., hex=True, include_srid=True)` writes
    it: an Arrow string array, built for the whole column with numpy."""
    n = len(x)
    raw = np.empty((n, 25), np.uint8)
    raw[:, :5] = (0x01, 0x01, 0x00, 0x00, 0x20)  # little-endian, POINT with an SRID
    raw[:, 5:9] = np.frombuffer(np.int32(srid).astype("<i4").tobytes(), np.uint8)
    raw[:, 9:17] = np.ascontiguousarray(x, dtype="<f8").view(np.uint8).reshape(n, 8)
    raw[:, 17:25] = np.ascontiguousarray(y, dtype="<f8").view(np.uint8).reshape(n, 8)
    text = np.ascontiguousarray(_HEX[raw].reshape(n, 50)).view("S50").ravel()
    return pa.array(text, pa.binary(50)).cast(pa.string())


def _name(table: sa.FromClause) -> str:
    assert isinstance(table, sa.Table), table
    return table.name


def _length(columns: Columns) -> int:
    return len(next(iter(columns.values())))


def write_columns(conn: sa.Connection, table: sa.FromClause, columns: Columns) -> int:
    """Write the rows given as `columns` (name → values, all of one length) into `table`; returns the row count."""
    if not columns or _length(columns) == 0:
        return 0
    return write_prepared(conn, prepare(conn.dialect.name, table, columns))


def prepare(dialect: str, table: sa.FromClause, columns: Columns) -> Prepared:
    """The rows of `columns` ready for `table` on `dialect` ("postgresql" or "sqlite"); no connection needed (a
    worker thread can make the next chunk's while this one is written)."""
    if dialect == "postgresql":
        return _prepare_csv(table, columns)
    return _prepare_sqlite(table, columns)


def write_prepared(conn: sa.Connection, prepared: Prepared) -> int:
    """Send rows made ready by `prepare`; returns the row count."""
    if not prepared.count:
        return 0
    quote = conn.dialect.identifier_preparer.quote
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL TIME ZONE 'UTC'")  # the naive timestamps of the CSV are UTC
        raw = conn.connection.driver_connection
        names = ", ".join(quote(n) for n in prepared.names)
        sql = f"COPY {quote(prepared.table)} ({names}) FROM STDIN WITH (FORMAT csv)"
        with raw.cursor() as cursor, cursor.copy(sql) as copy:  # type: ignore[union-attr]
            data = memoryview(prepared.csv)
            for start in range(0, len(data), 1 << 24):
                copy.write(data[start : start + (1 << 24)])
    else:
        conn.exec_driver_sql(prepared.sql, prepared.rows or [])
    return prepared.count


def _is_json(column: sa.ColumnElement[Any]) -> bool:
    return isinstance(column.type, sa.JSON)


def _arrow(column: sa.ColumnElement[Any], values: Any) -> pa.Array:
    """One column as Arrow, written by the CSV writer as PostgreSQL reads it (NULL unquoted and empty, strings
    quoted, floats in their shortest exact form, booleans true/false, timestamps 'YYYY-MM-DD HH:MM:SS.ffffff')."""
    if isinstance(column.type, Geometry):
        if isinstance(values, Points):
            return ewkb_points_hex(values.x, values.y)
        geoms = shapely.set_srid(np.asarray(values, dtype=object), 4326)
        return pa.array(shapely.to_wkb(geoms, hex=True, include_srid=True), pa.string())
    if isinstance(values, JsonText):
        return pa.array(values.values, pa.string())
    if _is_json(column):
        return pa.array([None if v is None else json.dumps(v, ensure_ascii=False) for v in values], pa.string())
    if isinstance(values, np.ma.MaskedArray):
        return pa.array(np.ma.getdata(values), mask=np.ma.getmaskarray(values))
    if isinstance(values, np.ndarray):
        if values.dtype.kind == "M":
            return pa.array(values.astype("datetime64[us]"))
        if values.dtype.kind == "O":
            return pa.array(values, _arrow_type(column))
        return pa.array(values)
    return pa.array(values, _arrow_type(column))


def _arrow_type(column: sa.ColumnElement[Any]) -> pa.DataType | None:
    if isinstance(column.type, sa.Integer):
        return pa.int64()
    if isinstance(column.type, sa.Float):
        return pa.float64()
    if isinstance(column.type, sa.String):
        return pa.string()
    return None


def _prepare_csv(table: sa.FromClause, columns: Columns) -> Prepared:
    names = tuple(columns)
    arrays = [_arrow(table.c[name], values) for name, values in columns.items()]
    frame = pa.Table.from_arrays(arrays, names=list(names))
    buf = io.BytesIO()
    pa_csv.write_csv(frame, buf, pa_csv.WriteOptions(include_header=False, quoting_style="needed"))
    return Prepared(_name(table), names, frame.num_rows, csv=buf.getvalue())


def _sqlite_times(values: np.ndarray) -> list[str | None]:
    out: list[str | None] = pa.array(values.astype("datetime64[us]")).cast(pa.string()).to_pylist()
    return out


def _prepare_sqlite(table: sa.FromClause, columns: Columns) -> Prepared:
    out: list[Sequence[Any]] = []
    marks: list[str] = []
    for name, values in columns.items():
        column = table.c[name]
        if isinstance(values, Points):
            out.append(spatialite_points(values.x, values.y))
            marks.append("?")
        elif isinstance(column.type, Geometry):
            geoms = np.asarray(values, dtype=object)
            kinds = shapely.get_type_id(geoms)
            if len(geoms) and (kinds == 0).all():
                out.append(spatialite_points(shapely.get_x(geoms), shapely.get_y(geoms)))
                marks.append("?")
            else:
                out.append(list(shapely.to_wkb(geoms)))
                multi = str(column.type.geometry_type).upper().startswith("MULTI")
                marks.append("CastToMulti(GeomFromWKB(?, 4326))" if multi else "GeomFromWKB(?, 4326)")
        elif isinstance(values, JsonText):
            out.append(values.values.tolist())
            marks.append("?")
        elif _is_json(column):
            out.append([None if v is None else json.dumps(v) for v in values])
            marks.append("?")
        elif isinstance(values, np.ndarray) and values.dtype.kind == "M":
            out.append(_sqlite_times(values))
            marks.append("?")
        elif isinstance(values, np.ndarray):  # a masked array's tolist gives None where masked
            out.append(values.tolist())
            marks.append("?")
        else:
            out.append(list(values))
            marks.append("?")
    quote = _SQLITE.identifier_preparer.quote
    sql = f"INSERT INTO {quote(_name(table))} ({', '.join(quote(n) for n in columns)}) VALUES ({', '.join(marks)})"
    rows = list(zip(*out))
    return Prepared(_name(table), tuple(columns), len(rows), sql=sql, rows=rows)


def nullable_ints(values: np.ndarray, missing: np.ndarray) -> np.ma.MaskedArray:
    """Integers with NULL where `missing`."""
    return np.ma.MaskedArray(np.asarray(values, dtype=np.int64), mask=np.asarray(missing, dtype=bool))


def next_id(conn: sa.Connection, table: sa.FromClause) -> int:
    """The id after the largest in `table` (1 for an empty table)."""
    return int(conn.execute(sa.select(sa.func.max(table.c.id))).scalar() or 0) + 1


def move_sequence(conn: sa.Connection, table: sa.FromClause) -> None:
    """On PostGIS, ids were given: move the table's id sequence past them."""
    if conn.dialect.name == "postgresql":
        name = _name(table)
        conn.execute(
            sa.text(f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), (SELECT GREATEST(MAX(id), 1) FROM {name}))")
        )


__all__ = [
    "JsonText",
    "Points",
    "Prepared",
    "ewkb_points_hex",
    "move_sequence",
    "next_id",
    "nullable_ints",
    "prepare",
    "spatialite_points",
    "write_columns",
    "write_prepared",
]
