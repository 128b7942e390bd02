"""Benchmark: importing a whole district's leaves (the full Guandu demo: 1,854 micro-grids) with
`gridmap.planning.importer`, on SpatiaLite (and PostGIS when a URL is given).

    .venv/bin/python tests/benchmarks/boundary_import.py                 # builds the full demo first (a minute or so)
    .venv/bin/python tests/benchmarks/boundary_import.py --small         # the small demo (24 micro-grids)
    .venv/bin/python tests/benchmarks/boundary_import.py --postgis URL   # also into this (empty) PostGIS database

The demo's leaves are written as GeoJSON, GeoPackage and a Shapefile zip (GBK), each imported into an empty
database with activation (the adoption path) and into the demo's own database as a draft (replacing the district).
It prints, per format and database: the file's size, the time to read it (the GDAL process included), to node the
leaves and build the parents, to store them, and the boundary check's time and verdict. Figures are measurements on
this machine at this moment; run it twice before believing them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import geopandas as gpd  # noqa: E402
import sqlalchemy as sa  # noqa: E402
from geoalchemy2.shape import to_shape  # noqa: E402

from gridmap.boundaries import check as boundary_check
from gridmap.demo.load import load_demo  # noqa: E402
from gridmap.planning import importer as bi  # noqa: E402
from gridmap.store import engine as storage  # noqa: E402
from gridmap.store.tables import Area, Generation  # noqa: E402

WRITER = """
import json, sys
import geopandas as gpd, pyogrio
for src, dst, driver, opts in json.loads(sys.argv[1]):
    pyogrio.write_dataframe(gpd.read_parquet(src), dst, driver=driver, **opts)
"""


def leaves(url: str) -> gpd.GeoDataFrame:
    engine = storage.make_engine(url)
    with storage.make_sessionmaker(engine)() as s:
        gen = s.scalars(sa.select(Generation).where(Generation.status == "active")).one()
        rows = s.scalars(sa.select(Area).where(Area.generation_id == gen.id)).all()
    engine.dispose()
    names = {a.code: a.name for a in rows}
    leaf = sorted((a for a in rows if a.is_leaf), key=lambda a: a.code)
    return gpd.GeoDataFrame(
        {
            "网格编码": [a.code for a in leaf],
            "网格名称": [a.name for a in leaf],
            "所属街道": [names[a.code[:9]] for a in leaf],
            "所属社区": [names[a.code[:12]] for a in leaf],
            "户数": [a.households for a in leaf],
            "人口": [a.population for a in leaf],
        },
        geometry=[to_shape(a.geom) for a in leaf],
        crs="EPSG:4326",
    )


def write_files(frame: gpd.GeoDataFrame, tmp: Path) -> dict[str, Path]:
    src = tmp / "leaves.parquet"
    frame.to_parquet(src, index=False)
    (tmp / "shp").mkdir()
    jobs = [
        [str(src), str(tmp / "leaves.geojson"), "GeoJSON", {}],
        [str(src), str(tmp / "leaves.gpkg"), "GPKG", {}],
        [str(src), str(tmp / "shp" / "leaves.shp"), "ESRI Shapefile", {"encoding": "GBK"}],
    ]
    subprocess.run([sys.executable, "-c", WRITER, json.dumps(jobs)], check=True)
    with zipfile.ZipFile(tmp / "leaves.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        for part in (tmp / "shp").iterdir():
            zf.write(part, part.name)
    return {"geojson": tmp / "leaves.geojson", "gpkg": tmp / "leaves.gpkg", "shapefile": tmp / "leaves.zip"}


def timed_import(url: str, path: Path, activate: dt.date | None) -> dict:
    """The stages of one import, timed separately (the same calls `import_boundaries` makes), then the whole."""
    limits = bi.Limits(max_bytes=500 * 2**20, max_vertices=1_000_000)
    options = bi.Options(activate=activate)
    engine = storage.make_engine(url)
    factory = storage.make_sessionmaker(engine)
    t0 = time.perf_counter()
    features, _ = bi.read_features(path, options, limits)
    t1 = time.perf_counter()
    built = bi.build_areas(features)
    t2 = time.perf_counter()
    with storage.session_scope(factory) as session:
        t3 = time.perf_counter()
        summary = bi.import_boundaries(session, path, options, limits)
        t4 = time.perf_counter()
        check_t = time.perf_counter()
        boundary_check.check_generation(session, summary["generation_id"])
        check_s = time.perf_counter() - check_t
    engine.dispose()
    return {
        "features": len(features),
        "areas": len(built),
        "read_s": round(t1 - t0, 2),
        "build_s": round(t2 - t1, 2),
        "whole_import_s": round(t4 - t3, 2),
        "check_s": round(check_s, 2),
        "ok": summary["check"]["ok"],
        "problems": summary["check"]["problems"],
    }


def empty_sqlite(tmp: Path, name: str) -> str:
    url = f"sqlite:///{tmp / name}"
    storage.migrate(storage.make_engine(url))
    return url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true")
    parser.add_argument("--postgis", help="an empty PostGIS database for the adoption path")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        demo = f"sqlite:///{tmp / 'demo.sqlite'}"
        engine = storage.make_engine(demo)
        storage.migrate(engine)
        t = time.perf_counter()
        with storage.session_scope(storage.make_sessionmaker(engine)) as s:
            load_demo(s, "530111", small=args.small, seed=11, today=dt.date(2026, 11, 20))
        engine.dispose()
        print(f"demo loaded in {time.perf_counter() - t:.1f} s")
        frame = leaves(demo)
        files = write_files(frame, tmp)
        print(
            f"{len(frame):,} leaves; files: "
            + ", ".join(f"{k} {p.stat().st_size / 2**20:.1f} MB" for k, p in files.items())
        )
        for fmt, path in files.items():
            fresh = empty_sqlite(tmp, f"fresh-{fmt}.sqlite")
            print(
                json.dumps(
                    {
                        "format": fmt,
                        "into": "empty SpatiaLite, activate",
                        **timed_import(fresh, path, dt.date(2026, 1, 1)),
                    },
                    ensure_ascii=False,
                )
            )
            print(
                json.dumps(
                    {
                        "format": fmt,
                        "into": "demo SpatiaLite, draft replacing 530111",
                        **timed_import(demo, path, None),
                    },
                    ensure_ascii=False,
                )
            )
        if args.postgis:
            storage.migrate(storage.make_engine(args.postgis))
            print(
                json.dumps(
                    {
                        "format": "gpkg",
                        "into": "empty PostGIS, activate",
                        **timed_import(args.postgis, files["gpkg"], dt.date(2026, 1, 1)),
                    },
                    ensure_ascii=False,
                )
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
