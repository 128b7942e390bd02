"""Column-wise bulk writes for the province demo: a table's rows given as columns (numpy arrays or lists), written
by COPY (CSV, built by pandas in C) on PostGIS and by the driver's executemany on SpatiaLite.

Geometries come as shapely arrays (SRID 4326). On PostGIS they travel as hex EWKB in the CSV; on SpatiaLite a
point goes as a ready SpatiaLite BLOB (60 bytes, built for a whole column at once with numpy), a polygon as WKB
through `GeomFromWKB(?, 4326)` (with `CastToMulti` for a MULTIPOLYGON column). Timestamps are numpy datetime64
(UTC, NaT for NULL) and are written as SQLAlchemy writes them on each database (PostgreSQL: UTC timestamps;
SQLite: 'YYYY-MM-DD HH:MM:SS.ffffff'). Columns left out take their server default or NULL; the ORM's Python-side
defaults are not applied, so callers give every column that has one.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import shapely
import sqlalchemy as sa
from geoalchemy2 import Geometry

Columns = dict[str, Any]

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


def _name(table: sa.FromClause) -> str:
    assert isinstance(table, sa.Table), table
    return table.name


def _length(columns: Columns) -> int:
    return len(next(iter(columns.values())))


def write_columns(conn: sa.Connection, table: sa.FromClause, columns: Columns) -> int:
    """Write the rows given as `columns` (name → values, all of one length) into `table`; returns the row count."""
    if not columns or _length(columns) == 0:
        return 0
    if conn.dialect.name == "postgresql":
        _copy_csv(conn, table, columns)
    else:
        _sqlite_many(conn, table, columns)
    return _length(columns)


def _is_json(column: sa.ColumnElement[Any]) -> bool:
    return isinstance(column.type, sa.JSON)


def _copy_csv(conn: sa.Connection, table: sa.FromClause, columns: Columns) -> None:
    frame: dict[str, Any] = {}
    for name, values in columns.items():
        column = table.c[name]
        if isinstance(column.type, Geometry):
            geoms = shapely.set_srid(np.asarray(values, dtype=object), 4326)
            frame[name] = shapely.to_wkb(geoms, hex=True, include_srid=True)
        elif _is_json(column):
            frame[name] = [None if v is None else json.dumps(v, ensure_ascii=False) for v in values]
        elif isinstance(values, np.ndarray) and values.dtype.kind == "M":
            frame[name] = pd.Series(values.astype("datetime64[us]"))
        elif isinstance(values, np.ndarray) and values.dtype.kind == "b":
            frame[name] = np.where(values, "t", "f")
        elif isinstance(column.type, sa.Integer) and not isinstance(values, np.ndarray):
            frame[name] = pd.array(values, dtype="Int64")  # with NULLs: written as integers, not as 12.0
        else:
            frame[name] = values
    df = pd.DataFrame(frame)
    buf = io.StringIO()
    df.to_csv(buf, header=False, index=False, date_format="%Y-%m-%d %H:%M:%S.%f")
    quote = conn.dialect.identifier_preparer.quote
    conn.exec_driver_sql("SET LOCAL TIME ZONE 'UTC'")  # the naive timestamps of the CSV are UTC
    raw = conn.connection.driver_connection
    with raw.cursor() as cursor:  # type: ignore[union-attr]
        names = ", ".join(quote(n) for n in columns)
        with cursor.copy(f"COPY {quote(_name(table))} ({names}) FROM STDIN WITH (FORMAT csv)") as copy:
            data = buf.getvalue()
            for start in range(0, len(data), 1 << 24):
                copy.write(data[start : start + (1 << 24)])


def _sqlite_times(values: np.ndarray) -> list[str | None]:
    text = np.datetime_as_string(values.astype("datetime64[us]"), unit="us")
    return [None if s == "NaT" else f"{s[:10]} {s[11:]}" for s in text.tolist()]


def _sqlite_many(conn: sa.Connection, table: sa.FromClause, columns: Columns) -> None:
    out: list[Sequence[Any]] = []
    marks: list[str] = []
    for name, values in columns.items():
        column = table.c[name]
        if isinstance(column.type, Geometry):
            geoms = np.asarray(values, dtype=object)
            kinds = shapely.get_type_id(geoms)
            if len(geoms) and (kinds == 0).all():
                out.append(spatialite_points(shapely.get_x(geoms), shapely.get_y(geoms)))
                marks.append("?")
            else:
                out.append(list(shapely.to_wkb(geoms)))
                multi = str(column.type.geometry_type).upper().startswith("MULTI")
                marks.append("CastToMulti(GeomFromWKB(?, 4326))" if multi else "GeomFromWKB(?, 4326)")
        elif _is_json(column):
            out.append([None if v is None else json.dumps(v) for v in values])
            marks.append("?")
        elif isinstance(values, np.ndarray) and values.dtype.kind == "M":
            out.append(_sqlite_times(values))
            marks.append("?")
        elif isinstance(values, np.ndarray):
            out.append(values.tolist())
            marks.append("?")
        else:
            out.append(list(values))
            marks.append("?")
    quote = conn.dialect.identifier_preparer.quote
    sql = f"INSERT INTO {quote(_name(table))} ({', '.join(quote(n) for n in columns)}) VALUES ({', '.join(marks)})"
    conn.exec_driver_sql(sql, list(zip(*out)))


def nullable_ints(values: np.ndarray, missing: np.ndarray) -> list[int | None]:
    """Integers as Python ints, None where `missing`."""
    return [None if m else v for v, m in zip(values.tolist(), missing.tolist())]


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


__all__ = ["move_sequence", "next_id", "nullable_ints", "spatialite_points", "write_columns"]
