"""The province demo's column writer prepares rows without a database: the CSV of a PostGIS COPY (Arrow's) reads
back as the values given — floats exactly, NULL apart from the empty string, JSON as given, integers with NULLs,
timestamps in UTC, points as the EWKB shapely writes — and the SQLite rows are what the driver binds."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import shapely
import sqlalchemy as sa
from geoalchemy2 import Geometry

from gridmap.demo.province_write import JsonText, Points, ewkb_points_hex, nullable_ints, prepare, spatialite_points

TABLE = sa.Table(
    "t",
    sa.MetaData(),
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(20)),
    sa.Column("x", sa.Float),
    sa.Column("n", sa.Integer),
    sa.Column("at", sa.DateTime(timezone=True)),
    sa.Column("ok", sa.Boolean),
    sa.Column("detail", sa.JSON),
    sa.Column("flags", sa.JSON),
    sa.Column("geom", Geometry("POINT", srid=4326)),
)

RNG = np.random.default_rng(3)
X = RNG.uniform(97.0, 106.0, 4)
Y = RNG.uniform(21.0, 29.0, 4)
COLUMNS = {
    "id": np.arange(1, 5),
    "name": np.array(["五华区", None, "", 'a "q", b\nc'], dtype=object),
    "x": X,
    "n": nullable_ints(np.array([7, 8, 9, 10]), np.array([False, True, False, True])),
    "at": np.array(["2026-03-08T22:02:42.123456", "NaT", "2026-01-01T00:00:00", "2025-12-31T16:00:00"], "M8[us]"),
    "ok": np.array([True, False, True, False]),
    "detail": JsonText(np.array(['{"source": "hotline"}', None, "[]", '{"satisfaction": 5}'], dtype=object)),
    "flags": [[], None, {"a": 1}, ["中"]],
    "geom": Points(X, Y),
}


def test_the_csv_reads_back_as_the_values_given():
    prepared = prepare("postgresql", TABLE, COLUMNS)
    assert prepared.count == 4 and prepared.names == tuple(COLUMNS)
    text = prepared.csv.decode()
    lines = text.splitlines(keepends=True)
    rows = list(csv.reader(io.StringIO(text)))
    assert len(rows) == 4
    assert [float(r[2]) for r in rows] == X.tolist()  # exactly: the shortest text that reads back the same
    assert [r[1] for r in rows[:3]] == ["五华区", "", ""]
    assert ',"",' in lines[2] and lines[1].split(",")[1] == ""  # the empty string quoted, NULL bare
    assert rows[3][1] == 'a "q", b\nc'
    assert [r[3] for r in rows] == ["7", "", "9", ""]
    assert [r[4] for r in rows] == [
        "2026-03-08 22:02:42.123456",
        "",
        "2026-01-01 00:00:00.000000",
        "2025-12-31 16:00:00.000000",
    ]
    assert [r[5] for r in rows] == ["true", "false", "true", "false"]
    assert [r[6] for r in rows] == ['{"source": "hotline"}', "", "[]", '{"satisfaction": 5}']
    assert [json.loads(r[7]) if r[7] else None for r in rows] == [[], None, {"a": 1}, ["中"]]
    expected = shapely.to_wkb(shapely.set_srid(shapely.points(X, Y), 4326), hex=True, include_srid=True)
    assert [r[8] for r in rows] == list(expected)


def test_point_ewkb_is_shapelys():
    x, y = RNG.uniform(-180, 180, 1000), RNG.uniform(-90, 90, 1000)
    ours = ewkb_points_hex(x, y).to_pylist()
    assert ours == list(shapely.to_wkb(shapely.set_srid(shapely.points(x, y), 4326), hex=True, include_srid=True))


def test_the_sqlite_rows_are_what_the_driver_binds():
    prepared = prepare("sqlite", TABLE, COLUMNS)
    assert prepared.sql.startswith("INSERT INTO t (id, name, x, n, at, ok, detail, flags, geom) VALUES (")
    rows = prepared.rows
    assert rows is not None and len(rows) == 4
    assert [r[3] for r in rows] == [7, None, 9, None]
    assert [r[4] for r in rows] == [
        "2026-03-08 22:02:42.123456",
        None,
        "2026-01-01 00:00:00.000000",
        "2025-12-31 16:00:00.000000",
    ]
    assert [r[6] for r in rows] == ['{"source": "hotline"}', None, "[]", '{"satisfaction": 5}']
    assert [r[7] for r in rows] == ["[]", None, '{"a": 1}', '["\\u4e2d"]']  # as json.dumps writes it
    assert [r[8] for r in rows] == spatialite_points(X, Y)
    assert all(isinstance(r[0], int) and isinstance(r[5], bool) for r in rows)
