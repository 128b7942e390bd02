"""Batch locate on both databases: files larger than the chunk are streamed chunk by chunk (never more than
`chunk_rows` rows located at once) and give exactly the file located at once, for Parquet, GeoParquet and CSV;
and the vectorised answers equal single lookups, for points on boundaries, outside every grid, invalid, and given
in GCJ-02."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import shapely

from gridmap.boundaries.areas import load_index
from gridmap.geo import crs
from gridmap.geo.index import FLAG_NEAR_BOUNDARY
from gridmap.locating import batch
from gridmap.store import engine as storage


@pytest.fixture(scope="module")
def index(engine):
    with storage.make_sessionmaker(engine)() as session:
        return load_index(session)


def _points(index, m: int, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """`m` points: a third on leaf vertices and edge midpoints (shared boundaries), some outside every leaf but
    near, the rest inside."""
    rng = np.random.default_rng(seed)
    coords = shapely.get_coordinates(index.leaf_boundaries)
    k = rng.integers(0, len(coords) - 1, m // 3)
    edge = np.vstack([coords[k[: len(k) // 2]], (coords[k[len(k) // 2 :]] + coords[k[len(k) // 2 :] + 1]) / 2])
    minx, miny, maxx, maxy = index.bounds
    rest = m - len(edge)
    lon = np.concatenate([edge[:, 0], rng.uniform(minx - 0.005, maxx + 0.005, rest)])
    lat = np.concatenate([edge[:, 1], rng.uniform(miny - 0.005, maxy + 0.005, rest)])
    order = rng.permutation(m)
    return lon[order], lat[order]


def _frame(index, m: int) -> pd.DataFrame:
    lon, lat = _points(index, m)
    frame = pd.DataFrame({"id": np.arange(m), "lon": lon, "lat": lat, "note": ["n"] * m})
    frame.loc[7, ["lon", "lat"]] = [np.nan, np.nan]  # no location
    frame.loc[8, "lat"] = 200.0  # invalid
    frame.loc[9, ["lon", "lat"]] = [10.0, 10.0]  # far outside the service area
    return frame


def _spy(monkeypatch) -> list[int]:
    """The sizes of the chunks located: every chunk goes through `batch._locate_xy`, whether its coordinates were
    read through pandas (`locate_columns`) or as Arrow arrays (Parquet with number columns)."""
    seen: list[int] = []
    real = batch._locate_xy

    def spy(x, *args, **kwargs):
        seen.append(len(x))
        return real(x, *args, **kwargs)

    monkeypatch.setattr(batch, "_locate_xy", spy)
    return seen


@pytest.mark.parametrize("near_m", [0.0, 5.0])
def test_parquet_larger_than_a_chunk_is_streamed_with_the_same_answer(engine, index, tmp_path, monkeypatch, near_m):
    frame = _frame(index, 2400)
    source = tmp_path / "points.parquet"
    frame.to_parquet(source, index=False)
    with storage.make_sessionmaker(engine)() as session:
        expected = batch.locate_frame(frame, index, session=session, near_m=near_m)
        whole = batch.locate_file(
            source,
            tmp_path / "whole.parquet",
            index,
            session=session,
            near_m=near_m,
            show_progress=False,
            chunk_rows=10_000,
        )
        seen = _spy(monkeypatch)
        chunked = batch.locate_file(
            source,
            tmp_path / "chunked.parquet",
            index,
            session=session,
            near_m=near_m,
            show_progress=False,
            chunk_rows=500,
        )
    assert whole["chunks"] == 1 and chunked["chunks"] == 5 and seen == [500, 500, 500, 500, 400]
    assert {k: v for k, v in chunked.items() if k not in ("written", "chunks")} == {
        k: v for k, v in whole.items() if k not in ("written", "chunks")
    }
    a, b = pq.read_table(tmp_path / "whole.parquet"), pq.read_table(tmp_path / "chunked.parquet")
    assert a.schema == b.schema
    pd.testing.assert_frame_equal(a.to_pandas(), b.to_pandas())  # (NaN equal to NaN)
    # and what was written is what locate_frame answers for the whole frame at once
    out = b.to_pandas()
    assert list(out.columns) == list(expected.columns)
    for column in expected.columns:
        left, right = out[column].astype(object), expected[column].astype(object)
        assert ((left == right) | (left.isna() & right.isna())).all(), column
    assert "on_boundary" in set(";".join(out["flags"]).split(";"))
    assert whole["flags"]["invalid_coordinate"] == 1 and whole["flags"]["outside_service_area"] == 1
    if near_m:
        assert whole["flags"][FLAG_NEAR_BOUNDARY] > 0


def test_geoparquet_is_streamed_by_its_geometry_and_keeps_its_metadata(engine, index, tmp_path, monkeypatch):
    lon, lat = _points(index, 1200, seed=5)
    east, north = crs.projector(4543)[0].transform(lon, lat)
    gpd.GeoDataFrame({"id": np.arange(len(lon))}, geometry=gpd.points_from_xy(east, north), crs=4543).to_parquet(
        tmp_path / "in.parquet"
    )
    with storage.make_sessionmaker(engine)() as session:
        batch.locate_file(
            tmp_path / "in.parquet", tmp_path / "whole.parquet", index, session=session, show_progress=False
        )
        seen = _spy(monkeypatch)
        summary = batch.locate_file(
            tmp_path / "in.parquet",
            tmp_path / "chunked.parquet",
            index,
            session=session,
            show_progress=False,
            chunk_rows=300,
        )
    assert seen == [300] * 4 and summary["chunks"] == 4
    a, b = pq.read_table(tmp_path / "whole.parquet"), pq.read_table(tmp_path / "chunked.parquet")
    assert a.schema == b.schema
    pd.testing.assert_frame_equal(a.to_pandas(), b.to_pandas())
    out = gpd.read_parquet(tmp_path / "chunked.parquet")  # still GeoParquet, in its own CRS
    assert out.crs.to_epsg() == 4543
    wlon, wlat = crs.to_wgs84(
        shapely.get_x(out.geometry.values), shapely.get_y(out.geometry.values), crs.parse_crs("EPSG:4543")
    )
    leaf = index.locate_many(wlon, wlat)
    expected = [index.leaves[i].code if i >= 0 else None for i in leaf]
    assert out["microgrid_code"].astype(object).where(out["microgrid_code"].notna(), None).tolist() == expected


def test_csv_larger_than_a_chunk_is_streamed_byte_for_byte(engine, index, tmp_path, monkeypatch):
    """Every column comes back as the text it was, whichever chunk it is in: 'code' holds integers in the first
    chunk (one with a leading zero) and text in the last, 'lon' a bad value only in the last chunk, 'weight'
    integers then decimals; a formula-looking text is neutralised in every chunk, a plain number is not."""
    frame = _frame(index, 1000)
    frame["code"] = [str(i) for i in range(900)] + [f"A{i}" for i in range(100)]
    frame["weight"] = ["1"] * 600 + ["1.5"] * 400  # in the file: 1 then 1.5
    frame["lon"] = frame["lon"].astype(object)
    frame.loc[950, "lon"] = "x"
    frame.loc[3, "note"] = "=cmd()"
    frame.loc[990, "note"] = "-1+cmd()"
    frame.loc[991, "note"] = "+1"
    frame.loc[5, "code"] = "007"
    source = tmp_path / "points.csv"
    frame.to_csv(source, index=False)
    from gridmap.io import tabular

    with storage.make_sessionmaker(engine)() as session:
        reference = batch.locate_frame(batch.read_table(source), index, session=session)
        whole = batch.locate_file(source, tmp_path / "whole.csv", index, session=session, show_progress=False)
        seen = _spy(monkeypatch)
        chunked = batch.locate_file(
            source, tmp_path / "chunked.csv", index, session=session, show_progress=False, chunk_rows=250
        )
        batch.locate_file(
            source, tmp_path / "chunked.parquet", index, session=session, show_progress=False, chunk_rows=250
        )
        batch.locate_file(source, tmp_path / "whole.parquet", index, session=session, show_progress=False)
    assert seen == [250] * 8 + [1000] and chunked["chunks"] == 4 and whole["chunks"] == 1
    assert (tmp_path / "chunked.csv").read_bytes() == (tmp_path / "whole.csv").read_bytes()
    assert (tmp_path / "whole.csv").read_bytes() == tabular.csv_bytes(reference)  # as the whole-file path wrote
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "chunked.parquet"), pd.read_parquet(tmp_path / "whole.parquet")
    )
    out = pd.read_csv(tmp_path / "chunked.csv", dtype=str, keep_default_na=False)
    assert out.loc[950, "flags"] == "invalid_coordinate" and out.loc[3, "note"] == "'=cmd()"
    assert out.loc[990, "note"] == "'-1+cmd()" and out.loc[991, "note"] == "+1" and out.loc[899, "code"] == "899"
    assert out.loc[5, "code"] == "007" and out.loc[0, "weight"] == "1" and out.loc[999, "weight"] == "1.5"
    assert whole["rows"] == 1000 and whole["located"] == chunked["located"] > 0


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_job_that_fails_half_way_leaves_the_target_as_it_was(engine, index, tmp_path, monkeypatch, suffix):
    """Chunks go to a file beside the target, which replaces it only when every chunk is written: a failure in the
    third chunk leaves the earlier answer in place and no part file behind (found in review)."""
    source = tmp_path / "points.csv"
    _frame(index, 1000).to_csv(source, index=False)
    target = tmp_path / f"out{suffix}"
    target.write_bytes(b"an earlier answer")
    real, calls = batch.locate_columns, []

    def failing(frame, *args, **kwargs):
        calls.append(len(frame))
        if len(calls) == 3:
            raise RuntimeError("the disk is full")
        return real(frame, *args, **kwargs)

    monkeypatch.setattr(batch, "locate_columns", failing)
    with storage.make_sessionmaker(engine)() as session, pytest.raises(RuntimeError, match="disk is full"):
        batch.locate_file(source, target, index, session=session, show_progress=False, chunk_rows=250)
    assert len(calls) == 3 and target.read_bytes() == b"an earlier answer"
    assert {p.name for p in tmp_path.iterdir()} == {"points.csv", target.name}
    monkeypatch.setattr(batch, "locate_columns", real)
    with storage.make_sessionmaker(engine)() as session:
        done = batch.locate_file(source, target, index, session=session, show_progress=False, chunk_rows=250)
    assert done["rows"] == 1000 and target.read_bytes() != b"an earlier answer"
    assert {p.name for p in tmp_path.iterdir()} == {"points.csv", target.name}


def test_progress_bar_counts_every_row(engine, index, tmp_path, capsys):
    frame = _frame(index, 900)
    frame.to_parquet(tmp_path / "p.parquet", index=False)
    with storage.make_sessionmaker(engine)() as session:
        batch.locate_file(
            tmp_path / "p.parquet", tmp_path / "o.parquet", index, session=session, show_progress=True, chunk_rows=400
        )
        err = capsys.readouterr().err
        assert "locating" in err and "900/900" in err
        batch.locate_file(
            tmp_path / "p.parquet", tmp_path / "o.parquet", index, session=session, show_progress=False, chunk_rows=400
        )
        assert capsys.readouterr().err == ""


@pytest.mark.parametrize("system", ["wgs84", "gcj02"])
@pytest.mark.parametrize("near_m", [0.0, 8.0])
def test_vectorised_answers_equal_single_lookups(engine, index, system, near_m):
    lon, lat = _points(index, 1500, seed=17)
    if system == "gcj02":  # the same places, as a Chinese map app gives them
        lon, lat = crs.wgs84_to_gcj02(lon, lat)
    frame = pd.DataFrame({"lon": lon, "lat": lat})
    frame.loc[0, ["lon", "lat"]] = [np.nan, np.nan]
    frame.loc[1, "lat"] = 95.0
    frame.loc[2, ["lon", "lat"]] = [0.0, 0.0]
    with storage.make_sessionmaker(engine)() as session:
        out = batch.locate_frame(frame, index, crs=system, session=session, near_m=near_m)
    assert out.loc[0, "flags"] == "no_location_given" and out.loc[1, "flags"] == "invalid_coordinate"
    assert out.loc[2, "flags"] == "outside_service_area" and (out.loc[:2, "method"] == "none").all()
    checked = {"on_boundary": 0, "outside_all_grids": 0, "near_boundary": 0, "": 0}
    for i in range(3, len(out)):
        x, y = out.at[i, "lon_wgs84"], out.at[i, "lat_wgs84"]
        if system == "gcj02":  # converted as a single point would be (to 1e-9°, about 0.1 mm)
            ex, ey = crs.convert_point(float(lon[i]), float(lat[i]), crs.parse_crs("gcj02"))
            assert abs(x - ex) < 1e-9 and abs(y - ey) < 1e-9
        single = index.locate(x, y, near_m=near_m)

        def value(column, i=i):
            return None if pd.isna(out.at[i, column]) else out.at[i, column]

        assert value("microgrid_code") == single.leaf_code
        assert value("grid_code") == (single.at_level("grid").code if single.chain else None)
        assert out.at[i, "flags"] == ";".join(single.flags)
        assert (value("candidates") or "") == ";".join(single.candidates + [n["code"] for n in single.near])
        for flag in single.flags or [""]:
            checked[flag] = checked.get(flag, 0) + 1
    assert checked["outside_all_grids"] > 10 and checked[""] > 100
    if system == "wgs84":  # (converted from GCJ-02, a vertex is no longer exactly on it)
        assert checked["on_boundary"] > 30
    if near_m:
        assert checked["near_boundary"] > 10


def test_cached_index_is_built_once_per_content_and_answers_as_load_index(session, index, tmp_path, monkeypatch):
    import os

    import sqlalchemy as sa

    from gridmap.geo import index as lookup
    from gridmap.store.tables import Area

    first = batch.cached_index(session, cache_dir=tmp_path)
    assert len([p for p in tmp_path.glob("shared-*") if p.is_dir()]) == 1
    built: list[int] = []
    real_init = lookup.AreaIndex.__init__

    def counting_init(self, *args, **kwargs):
        built.append(1)
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(lookup.AreaIndex, "__init__", counting_init)
    again = batch.cached_index(session, cache_dir=tmp_path)
    assert built == [] and again is not first and again.generation_id == index.generation_id
    lon, lat = _points(index, 3000, seed=23)
    assert np.array_equal(again.locate_many(lon, lat), index.locate_many(lon, lat))
    for k in range(0, 3000, 97):
        a, b = again.locate(lon[k], lat[k], near_m=10), index.locate(lon[k], lat[k], near_m=10)
        assert (a.leaf_code, a.flags, a.candidates, a.near) == (b.leaf_code, b.flags, b.candidates, b.near)
    # a file others may write is never unpickled: built again
    (path,) = [p for p in tmp_path.glob("shared-*") if p.is_dir()]
    os.chmod(path, 0o777)
    batch.cached_index(session, cache_dir=tmp_path)
    assert built == [1]
    # other content (a renamed micro-grid, in this test's transaction) is another file
    area = session.scalars(
        sa.select(Area).where(Area.generation_id == index.generation_id, Area.is_leaf).order_by(Area.code)
    ).first()
    area.name = area.name + "（改）"
    session.flush()
    changed = batch.cached_index(session, cache_dir=tmp_path)
    assert built == [1, 1] and len([p for p in tmp_path.glob("shared-*") if p.is_dir()]) == 2
    assert changed.by_code[area.code].name.endswith("（改）")


def test_the_command_streams_with_its_chunk_size(db_url, index, tmp_path, monkeypatch, capsys):
    import json

    from gridmap.cli import main

    monkeypatch.setenv("GRIDMAP_INDEX_CACHE", str(tmp_path / "cache"))
    _frame(index, 700).to_parquet(tmp_path / "in.parquet", index=False)
    assert (
        main(
            [
                "--database",
                db_url,
                "locate-file",
                str(tmp_path / "in.parquet"),
                str(tmp_path / "a.parquet"),
                "--chunk-rows",
                "200",
                "--no-progress",
            ]
        )
        == 0
    )
    small = json.loads(capsys.readouterr().out)
    assert main(["--database", db_url, "locate-file", str(tmp_path / "in.parquet"), str(tmp_path / "b.parquet")]) == 0
    large = json.loads(capsys.readouterr().out)
    assert small["chunks"] == 4 and large["chunks"] == 1 and small["located"] == large["located"] > 0
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "a.parquet"), pd.read_parquet(tmp_path / "b.parquet"))
    assert len([p for p in (tmp_path / "cache").glob("shared-*") if p.is_dir()]) == 1
    assert (
        main(
            [
                "--database",
                db_url,
                "locate-file",
                str(tmp_path / "in.parquet"),
                str(tmp_path / "c.parquet"),
                "--chunk-rows",
                "0",
            ]
        )
        != 0
    )
    assert "--chunk-rows" in capsys.readouterr().err


def test_the_command_on_a_known_index_file_loads_no_orm(db_url, index, tmp_path):
    """Once the active generation's index file is there, `gridmap locate-file` on Parquet coordinates finds it
    through a plain DB-API connection (its rows hashed, as the ORM path names it) and imports neither SQLAlchemy,
    pandas nor numba — with the same file as the ORM path wrote; an area changed gives another file name."""
    import json
    import os
    import subprocess
    import sys

    env = {**os.environ, "GRIDMAP_INDEX_CACHE": str(tmp_path / "cache")}
    _frame(index, 900).to_parquet(tmp_path / "in.parquet", index=False)
    script = (
        "import sys, json\nfrom gridmap.cli import main\ncode = main(sys.argv[1:])\n"
        "print(json.dumps(sorted(m for m in ('sqlalchemy', 'pandas', 'numba', 'geopandas') "
        "if m in sys.modules)))\nsys.exit(code)\n"
    )

    def run(out: str) -> tuple[dict, list[str]]:
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                script,
                "--database",
                db_url,
                "locate-file",
                str(tmp_path / "in.parquet"),
                str(tmp_path / out),
                "--no-progress",
            ],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        summary, loaded = done.stdout.strip().splitlines()
        return json.loads(summary), json.loads(loaded)

    first, loaded_first = run("orm.parquet")  # no index file yet: the ORM path builds and writes it
    assert "sqlalchemy" in loaded_first
    second, loaded_second = run("quick.parquet")
    assert loaded_second == [] and first["located"] == second["located"] > 0
    orm, quick = pq.read_table(tmp_path / "orm.parquet"), pq.read_table(tmp_path / "quick.parquet")
    assert orm.schema.equals(quick.schema, check_metadata=True)
    pd.testing.assert_frame_equal(orm.to_pandas(), quick.to_pandas())  # NaN where not located: equal here
    engine = storage.make_engine(db_url)
    with storage.make_sessionmaker(engine)() as session:
        quick_index = batch.quick_index(db_url, cache_dir=tmp_path / "cache")
        assert quick_index is not None and quick_index[0].generation_id == index.generation_id
        assert quick_index[1] == batch.branch_names(session, quick_index[2], index.generation_id)
        cursor = session.connection().connection.driver_connection.cursor()
        rows = batch.area_rows(cursor, index.generation_id, db_url.startswith("sqlite"))
    engine.dispose()
    same = batch.index_digest(rows, index.generation_id)
    renamed = [r if k else (*r[:3], r[3] + "（改）", *r[4:]) for k, r in enumerate(rows)]
    moved = [r if k else (*r[:4], bytes(r[4])[:-1] + bytes([bytes(r[4])[-1] ^ 1]), *r[5:]) for k, r in enumerate(rows)]
    assert (
        len({same, batch.index_digest(renamed, index.generation_id), batch.index_digest(moved, index.generation_id)})
        == 3
    )  # a name or a coordinate: another file
    assert (tmp_path / "cache" / f"shared-{index.generation_id}-{same}").is_dir()


def test_an_unchanged_database_is_not_read_and_hashed_again(db_url, index, tmp_path, monkeypatch):
    """`quick_index` remembers the digest of a generation's rows for the database's state — SpatiaLite: its files'
    identity, size, times and headers, when nothing was committed while it read the rows; PostGIS: a fingerprint of
    the rows the server computes, in the snapshot the rows were read in — and the next run in that state finds the
    index file without reading the rows. A commit (here a grid renamed) moves the state: the rows are read and
    hashed again, and the renamed grid's content has no index file yet."""
    import sqlalchemy as sa

    from gridmap.store.tables import Area
    from tests.conftest import _new_postgis_database, _postgis_template

    drop = None
    if db_url.startswith("sqlite"):  # a copy of the module's database, to commit to
        from pysqlite3 import dbapi2

        source, copy = dbapi2.connect(storage.sqlite_path(db_url)), dbapi2.connect(str(tmp_path / "copy.sqlite"))
        source.backup(copy)
        source.close()
        copy.close()
        url = f"sqlite:///{tmp_path / 'copy.sqlite'}"
    else:
        url, drop = _new_postgis_database(template=_postgis_template())  # the module's copy is in use
    cache = tmp_path / "cache"
    engine = storage.make_engine(url)
    try:
        with storage.make_sessionmaker(engine)() as session:
            batch.cached_index(session, cache_dir=cache)  # the index file of these rows
        engine.dispose()  # no connection of this process left open on the database
        reads: list[int] = []
        real = batch.area_rows

        def counted(*args, **kwargs):
            reads.append(1)
            return real(*args, **kwargs)

        monkeypatch.setattr(batch, "area_rows", counted)
        first, second = batch.quick_index(url, cache_dir=cache), batch.quick_index(url, cache_dir=cache)
        assert first is not None and second is not None and reads == [1]  # the second found the digest
        assert second[0].generation_id == first[0].generation_id == index.generation_id
        lon, lat = _points(index, 2000, seed=31)
        assert np.array_equal(second[0].locate_many(lon, lat), index.locate_many(lon, lat))
        with storage.make_sessionmaker(engine)() as session, session.begin():
            area = session.scalars(
                sa.select(Area).where(Area.generation_id == index.generation_id, Area.is_leaf).order_by(Area.code)
            ).first()
            area.name = area.name + "（改）"
        engine.dispose()
        assert batch.quick_index(url, cache_dir=cache) is None and reads == [1, 1]  # read again: no file for these
    finally:
        engine.dispose()
        if drop is not None:
            drop()


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_the_command_locates_addresses_on_either_path(db_url, index, tmp_path, suffix):
    """Rows with an address and no coordinates are located by the gazetteer on the path without the ORM too (a
    session is opened for it when the first such row comes): the second run, which finds the index file, writes
    what the first wrote."""
    import json
    import os
    import subprocess
    import sys

    from gridmap.locating.gazetteer import gazetteer_for

    with storage.make_sessionmaker(storage.make_engine(db_url))() as session:
        compound = next(e for e in gazetteer_for(session).entries if e.kind == "compound")
    frame = _frame(index, 300).drop(columns="note")
    frame["address"] = None
    frame.loc[10:11, ["lon", "lat"]] = np.nan
    frame.loc[10, "address"] = compound.place["address"]
    frame.loc[11, "address"] = "不知道"
    source = tmp_path / f"in{suffix}"
    frame.to_csv(source, index=False) if suffix == ".csv" else frame.to_parquet(source, index=False)
    env = {**os.environ, "GRIDMAP_INDEX_CACHE": str(tmp_path / "cache")}
    outputs = []
    for name in ("first", "second"):
        target = tmp_path / f"{name}{suffix}"
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "gridmap.cli",
                "--database",
                db_url,
                "locate-file",
                str(source),
                str(target),
                "--no-progress",
            ],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        summary = json.loads(done.stdout)
        assert summary["method"]["address"] == 1
        outputs.append(target.read_bytes() if suffix == ".csv" else pd.read_parquet(target))
    if suffix == ".csv":
        assert outputs[0] == outputs[1]
    else:
        pd.testing.assert_frame_equal(outputs[0], outputs[1])
        assert outputs[1].loc[10, "method"] == "address" and outputs[1].loc[11, "flags"] == "address_not_matched"
