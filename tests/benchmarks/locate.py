"""Benchmark: assigning points to grids — gridmap vs geopandas.sjoin, shapely STRtree and PostGIS, same data, one run.

    .venv/bin/python tests/benchmarks/locate.py                 # 2k, 20k, 200k grids; 1M points; HTTP on Guandu;
                                                                # then the whole-process file comparison (1M points)
    .venv/bin/python tests/benchmarks/locate.py --sizes 2000 --points 200000 --http-demo small
    .venv/bin/python tests/benchmarks/locate.py --only-file --file-points 200000   # the file comparison alone

**Whole process** (`--file-points`, default 1,000,000; 0 skips it): on the full Guandu demo (the SpatiaLite file
tests/benchmarks/series.py keeps under /tmp/gridmap-bench-series/, or one built here), points spread over the
district (95 % inside, 5 % in its bounding box outside) are written to points.parquet, then timed as a user runs
them, each a separate process, interpreter start included, best of `--reps`:

* `gridmap --database sqlite:///… locate-file points.parquet out.parquet`;
* the naive geopandas script (`NAIVE` below): read the Parquet, make a GeoDataFrame, read the leaf (micro-grid)
  polygons with their grid codes from the same database, `sjoin(predicate="within")`, write Parquet.

The index file `gridmap locate-file` keeps per generation (`generations.shared_index`, named by a digest of the
generation's rows) is made by a first run, as any earlier run on the same boundaries would have made it; that run
is shown apart. The runs after it find the file without the ORM (`batch.quick_index`: the active generation's rows
read through a plain DB-API connection and hashed) and import neither SQLAlchemy, pandas nor numba. It prints
wall time, CPU time (each the best of the runs) and peak RSS of each (from `os.wait4` in a small launcher
process), the ratio, a run with a smaller chunk (memory follows the chunk, not the file), and the answers compared
per point: micro-grid and grid code, for the points that are on no boundary (gridmap flags `on_boundary`; sjoin
lists such a point once per polygon, or not at all). Then where gridmap's time goes, in one process: imports,
finding and loading the index, the file; and the floors: processes that only start the interpreter, or only
import what each side needs (numpy, pyarrow.parquet, shapely for gridmap; geopandas for the peer).

For each grid set (tiled wiggly Voronoi cells, 40–60 vertices, `synthetic.py`) it prints points per second for
gridmap's batch locate (one thread), geopandas.sjoin(predicate="within"), shapely STRtree.query(predicate=
"within") and PostGIS (`INSERT … SELECT … JOIN ON ST_Covers` with a GiST index), after checking that every
method gives the same grid for every point, and the ratios gridmap/peer. Then single-point latency in process
(p50, p99) and over HTTP against `gridmap serve` on the embedded SpatiaLite database at a fixed request rate.
Figures are measurements on this machine at this moment; run it twice before believing a ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import shapely

sys.path.insert(0, str(Path(__file__).parent))
from synthetic import points as make_points  # noqa: E402
from synthetic import tiling  # noqa: E402

from gridmap.geo.index import AreaIndex, AreaRef  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
PG_ADMIN = os.environ.get(
    "GRIDMAP_TEST_POSTGIS_ADMIN", "postgresql://gridmap_test:gridmap_test@127.0.0.1:5432/postgres"
)


def best_of(fn, reps: int = 3) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(reps):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def first_hit(pt_idx: np.ndarray, poly_idx: np.ndarray, m: int) -> np.ndarray:
    """Per point, the smallest polygon index among its hits (-1 for none)."""
    out = np.full(m, -1, np.int64)
    order = np.lexsort((poly_idx, pt_idx))
    p, g = pt_idx[order], poly_idx[order]
    first = np.ones(len(p), bool)
    first[1:] = p[1:] != p[:-1]
    out[p[first]] = g[first]
    return out


def bench_postgis(grids: np.ndarray, lon: np.ndarray, lat: np.ndarray) -> tuple[float, np.ndarray] | None:
    try:
        import psycopg
    except ImportError:
        return None
    name = f"gridmap_bench_{uuid.uuid4().hex[:8]}"
    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True)
    except psycopg.OperationalError as exc:
        print(f"  PostGIS: not reachable ({exc.__class__.__name__}); run `make postgis`")
        return None
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        with psycopg.connect(PG_ADMIN.rsplit("/", 1)[0] + "/" + name, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION postgis")
            conn.execute("CREATE TABLE grids (id int PRIMARY KEY, geom geometry(MultiPolygon, 4326))")
            conn.execute("CREATE TABLE pts (id int PRIMARY KEY, geom geometry(Point, 4326))")
            multis = [shapely.MultiPolygon([g]) if g.geom_type == "Polygon" else g for g in grids]
            grid_wkb = shapely.to_wkb(
                shapely.set_srid(np.array(multis, dtype=object), 4326), hex=True, include_srid=True
            )
            with conn.cursor().copy("COPY grids (id, geom) FROM STDIN") as copy:
                for i, g in enumerate(grid_wkb):
                    copy.write_row((i, g))
            pts_wkb = shapely.to_wkb(shapely.set_srid(shapely.points(lon, lat), 4326), hex=True, include_srid=True)
            with conn.cursor().copy("COPY pts (id, geom) FROM STDIN") as copy:
                for i, g in enumerate(pts_wkb):
                    copy.write_row((i, g))
            conn.execute("CREATE INDEX ON grids USING gist (geom)")
            conn.execute("VACUUM ANALYZE grids")
            conn.execute("VACUUM ANALYZE pts")
            conn.execute("CREATE UNLOGGED TABLE assign (pt int, grid int)")
            t = time.perf_counter()
            conn.execute("INSERT INTO assign SELECT p.id, g.id FROM pts p JOIN grids g ON ST_Covers(g.geom, p.geom)")
            elapsed = time.perf_counter() - t
            rows = conn.execute("SELECT pt, grid FROM assign").fetchall()
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
    arr = np.array(rows, dtype=np.int64).reshape(-1, 2)
    return elapsed, first_hit(arr[:, 0], arr[:, 1], len(lon))


def bench_size(n: int, lon: np.ndarray, lat: np.ndarray, with_postgis: bool) -> dict:
    import geopandas as gpd

    m = len(lon)
    t = time.perf_counter()
    grids = tiling(n)
    gen_s = time.perf_counter() - t
    refs = [AreaRef(i, "grid", f"{i:07d}", f"grid {i}", None) for i in range(len(grids))]
    t = time.perf_counter()
    index = AreaIndex(refs, list(grids))
    build_s = time.perf_counter() - t
    stats = index.cells.stats()
    verts = shapely.get_num_coordinates(grids)
    print(
        f"\n== {len(grids):,} grids (vertices p5/median/p95 {np.percentile(verts, 5):.0f}/{np.median(verts):.0f}/"
        f"{np.percentile(verts, 95):.0f}), {m:,} points; generated in {gen_s:.1f}s"
    )
    print(
        f"   gridmap index: built in {build_s:.2f}s, {stats['cells']:,} cells of {stats['cell_m']} m, "
        f"{stats['boundary'] / stats['cells']:.1%} boundary, {stats['mbytes']:.0f} MB"
    )
    results = {}
    secs, ours = best_of(lambda: index.locate_many(lon, lat))
    results["gridmap batch locate (1 thread)"] = (secs, ours)
    pts_geom = shapely.points(lon, lat)
    left = gpd.GeoDataFrame(geometry=pts_geom, crs=4326)
    right = gpd.GeoDataFrame({"gid": np.arange(len(grids))}, geometry=grids, crs=4326)
    secs, joined = best_of(lambda: gpd.sjoin(left, right, predicate="within", how="inner"), reps=2)
    results["geopandas.sjoin(predicate='within')"] = (
        secs,
        first_hit(joined.index.to_numpy(), joined["gid"].to_numpy(), m),
    )
    tree = shapely.STRtree(grids)
    secs, hits = best_of(lambda: tree.query(pts_geom, predicate="within"), reps=2)
    results["shapely STRtree.query(predicate='within')"] = (secs, first_hit(hits[0], hits[1], m))
    if with_postgis:
        pg = bench_postgis(grids, lon, lat)
        if pg is not None:
            results["PostGIS INSERT…SELECT ST_Covers, GiST"] = pg
    reference = index.locate_many_reference(lon, lat)
    print(f"   {'method':44s} {'points/s':>12s} {'seconds':>8s}  {'gridmap ×':>9s}  same answer")
    ours_secs = results["gridmap batch locate (1 thread)"][0]
    ok_all = True
    for name, (secs, answer) in results.items():
        same = np.array_equal(answer, reference)
        ok_all &= same
        ratio = secs / ours_secs
        print(
            f"   {name:44s} {m / secs:12,.0f} {secs:8.3f}  {ratio:9.1f}  {'yes' if same else 'NO'} "
            f"({(answer == reference).sum():,}/{m:,})"
        )
    # both cores: the kernels release the GIL
    from concurrent.futures import ThreadPoolExecutor

    halves = np.array_split(np.arange(m), 2)
    with ThreadPoolExecutor(2) as pool:
        secs2, _ = best_of(lambda: list(pool.map(lambda ix: index.locate_many(lon[ix], lat[ix]), halves)))
    print(f"   {'gridmap batch locate (2 threads)':44s} {m / secs2:12,.0f} {secs2:8.3f}")
    # single point, in process
    rng = np.random.default_rng(3)
    sample = rng.integers(0, m, 20_000)
    lat_ns = np.empty(len(sample))
    for k, i in enumerate(sample):
        x, y = float(lon[i]), float(lat[i])
        t = time.perf_counter_ns()
        index.leaf_at(x, y)
        lat_ns[k] = time.perf_counter_ns() - t
    full_ns = np.empty(5000)
    for k, i in enumerate(sample[:5000]):
        x, y = float(lon[i]), float(lat[i])
        t = time.perf_counter_ns()
        index.locate(x, y, near_m=10)
        full_ns[k] = time.perf_counter_ns() - t
    ref_ns = np.empty(5000)
    pt = shapely.Point
    for k, i in enumerate(sample[:5000]):
        x, y = float(lon[i]), float(lat[i])
        t = time.perf_counter_ns()
        tree.query(pt(x, y), predicate="within")
        ref_ns[k] = time.perf_counter_ns() - t
    print(
        f"   single point in process: leaf_at p50 {np.percentile(lat_ns, 50) / 1000:.2f} µs, "
        f"p99 {np.percentile(lat_ns, 99) / 1000:.2f} µs; locate() with chain and 10 m near-check p50 "
        f"{np.percentile(full_ns, 50) / 1000:.1f} µs, p99 {np.percentile(full_ns, 99) / 1000:.1f} µs; "
        f"STRtree.query(Point) p50 {np.percentile(ref_ns, 50) / 1000:.1f} µs"
    )
    return {"ok": ok_all}


def _load(port: int, params: list[dict], rate: float, headers: dict, workers: int = 8) -> tuple[np.ndarray, float]:
    """Open-loop load: request k is due at start + k/rate; `workers` threads, each with its own keep-alive
    connection (http.client: a light client, so that it does not starve the server of the shared CPU).
    Latency is measured from the due time, so a client that falls behind counts against the server too."""
    import http.client
    import threading
    from urllib.parse import urlencode

    paths = [f"/api/v1/locate?{urlencode(p)}" for p in params]
    warm = http.client.HTTPConnection("127.0.0.1", port)
    for path in paths[:200]:
        warm.request("GET", path, headers=headers)
        warm.getresponse().read()
    warm.close()
    lat = np.full(len(paths), np.nan)
    start = time.perf_counter() + 0.2

    def worker(w: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port)
        for k in range(w, len(paths), workers):
            due = start + k / rate
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            conn.request("GET", paths[k], headers=headers)
            response = conn.getresponse()
            response.read()
            assert response.status == 200, response.status
            lat[k] = time.perf_counter() - due
        conn.close()

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return lat, time.perf_counter() - start


def bench_http(demo: str, rate: float, seconds: float) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="gridmap-bench-"))
    db = f"sqlite:///{tmp}/bench.sqlite"
    gm = str(Path(sys.executable).with_name("gridmap"))
    t = time.perf_counter()
    subprocess.run([gm, "--database", db, "init"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(
        [gm, "--database", db, "demo"] + (["--small"] if demo == "small" else []), check=True, stdout=subprocess.DEVNULL
    )
    print(
        f"\n== HTTP: GET /api/v1/locate on the embedded SpatiaLite database ({demo} Guandu demo, loaded in "
        f"{time.perf_counter() - t:.0f}s), one uvicorn worker, {rate:.0f} requests/s for {seconds:.0f}s"
    )
    port = 18_000 + os.getpid() % 1000
    server = subprocess.Popen(
        [gm, "--database", db, "serve", "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        import httpx

        for _ in range(100):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/login", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        # as a signed-in dispatcher (a bearer token, as an API client would), so authentication is in the figures
        from gridmap.demo.accounts import DEMO_PASSWORD

        token = httpx.post(
            f"http://127.0.0.1:{port}/api/v1/auth/token",
            data={"username": "demo-dispatcher", "password": DEMO_PASSWORD},
        ).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        bounds = httpx.get(f"http://127.0.0.1:{port}/api/v1/areas?level=district", headers=headers).json()
        geom = shapely.geometry.shape(bounds["features"][0]["geometry"]) if "features" in bounds else None
        rng = np.random.default_rng(5)
        minx, miny, maxx, maxy = geom.bounds if geom is not None else (102.7, 24.95, 102.8, 25.05)
        params = []
        while len(params) < int(rate * seconds):
            x, y = rng.uniform(minx, maxx), rng.uniform(miny, maxy)
            if geom is None or geom.contains(shapely.Point(x, y)):
                params.append({"lon": round(x, 7), "lat": round(y, 7)})
        lat, took = _load(port, params, rate, headers)
        print(
            f"   {len(params):,} requests in {took:.1f}s ({len(params) / took:.0f}/s achieved): "
            f"p50 {np.percentile(lat, 50) * 1000:.2f} ms, p90 {np.percentile(lat, 90) * 1000:.2f} ms, "
            f"p99 {np.percentile(lat, 99) * 1000:.2f} ms, max {lat.max() * 1000:.1f} ms "
            f"(client and server share the 2 cores)"
        )
    finally:
        server.terminate()
        server.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


SERIES_DEMO = Path("/tmp/gridmap-bench-series/full-demo.sqlite")  # kept by tests/benchmarks/series.py
OWN_DEMO = Path("/tmp/gridmap-bench-locate/full-demo.sqlite")

NAIVE = '''"""The naive peer: read the points, read the leaf polygons from the same database, sjoin within, write."""
import sys

import geopandas as gpd
import pandas as pd
from pysqlite3 import dbapi2 as sqlite3

db, source, target = sys.argv[1:4]
points = pd.read_parquet(source)
left = gpd.GeoDataFrame(points, geometry=gpd.points_from_xy(points["lon"], points["lat"]), crs=4326)
con = sqlite3.connect(db)
con.enable_load_extension(True)
con.load_extension("mod_spatialite")
rows = con.execute("SELECT m.code, g.code, ST_AsBinary(m.geom) FROM area m "
                   "JOIN generation gen ON gen.id = m.generation_id AND gen.status = 'active' "
                   "LEFT JOIN area g ON g.id = m.parent_id WHERE m.is_leaf").fetchall()
areas = pd.DataFrame(rows, columns=["microgrid_code", "grid_code", "wkb"])
right = gpd.GeoDataFrame(areas[["microgrid_code", "grid_code"]], geometry=gpd.GeoSeries.from_wkb(areas["wkb"]),
                         crs=4326)
out = gpd.sjoin(left, right, predicate="within", how="left")
out.to_parquet(target)
'''

PHASES = """import resource, sys, time
t0, c0 = time.perf_counter(), time.process_time()
import numpy, pyarrow.parquet, shapely
t1, c1 = time.perf_counter(), time.process_time()
rss = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"   imports: numpy, pyarrow.parquet, shapely {t1 - t0:.2f} s wall, {c1 - c0:.2f} s CPU")
from gridmap.locating import batch
t2, c2 = time.perf_counter(), time.process_time()
print(f"   imports: gridmap.locating.batch (lookup, cellindex) {t2 - t1:.2f} s wall, {c2 - c1:.2f} s CPU "
      f"(peak RSS {rss():.0f} MB)")
index, branches, on = batch.quick_index(sys.argv[1])
t3, c3 = time.perf_counter(), time.process_time()
print(f"   the index as locate-file gets it (batch.quick_index: active generation's rows read with pysqlite3 and "
      f"hashed, file memory-mapped) {t3 - t2:.2f} s wall, {c3 - c2:.2f} s CPU ({rss():.0f} MB)")
batch.locate_file(sys.argv[2], sys.argv[3], index, on=on, branches=branches, show_progress=False)
t4, c4 = time.perf_counter(), time.process_time()
print(f"   read, locate, write the file {t4 - t3:.2f} s wall, {c4 - c3:.2f} s CPU ({rss():.0f} MB)")
heavy = [m for m in ("sqlalchemy", "pandas", "geopandas", "numba", "pyproj") if m in sys.modules]
print(f"   loaded of sqlalchemy, pandas, geopandas, numba, pyproj: {', '.join(heavy) or 'none'}")
"""

# a small launcher measures each process: a child's peak RSS counts from its parent's at fork (Linux keeps
# ru_maxrss across fork and exec), so the benchmark's own memory must not be its parent
LAUNCH = """import json, os, subprocess, sys, time
with open(sys.argv[1], "wb") as log:
    t = time.perf_counter()
    child = subprocess.Popen(sys.argv[2:], stdout=log, stderr=subprocess.STDOUT)
    _, status, usage = os.wait4(child.pid, 0)
print(json.dumps({"wall": time.perf_counter() - t, "cpu": usage.ru_utime + usage.ru_stime,
                  "rss": usage.ru_maxrss / 1024, "code": os.waitstatus_to_exitcode(status)}))
"""


def _demo_database() -> Path:
    """The full demo as SpatiaLite: the series benchmark's file when it is complete, else one built here once."""
    import sqlalchemy as sa

    from gridmap.store import engine as storage

    for path in (SERIES_DEMO, OWN_DEMO):
        if path.exists():
            engine = storage.make_engine(f"sqlite:///{path}")
            try:
                with engine.connect() as conn:
                    leaves = conn.scalar(sa.text("SELECT count(*) FROM area WHERE is_leaf"))
                    admin = conn.scalar(sa.text("SELECT count(*) FROM account WHERE username = 'demo-admin'"))
                if leaves and leaves > 1000 and admin:
                    return path
            except sa.exc.DBAPIError:
                pass
            finally:
                engine.dispose()
    OWN_DEMO.parent.mkdir(parents=True, exist_ok=True)
    OWN_DEMO.unlink(missing_ok=True)
    gm = str(Path(sys.executable).with_name("gridmap"))
    print(f"   building the full demo in {OWN_DEMO} (minutes)")
    subprocess.run([gm, "--database", f"sqlite:///{OWN_DEMO}", "init"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run([gm, "--database", f"sqlite:///{OWN_DEMO}", "demo"], check=True, stdout=subprocess.DEVNULL)
    return OWN_DEMO


def _district_points(db: Path, m: int, path: Path) -> None:
    """`m` points: 95 % uniform inside the district, 5 % in its bounding box outside it; written as Parquet
    (id, lon, lat), as a user's file would be."""
    import pandas as pd
    import sqlalchemy as sa

    from gridmap.store import engine as storage

    engine = storage.make_engine(f"sqlite:///{db}")
    with engine.connect() as conn:
        wkb = conn.scalar(
            sa.text(
                "SELECT ST_AsBinary(a.geom) FROM area a JOIN generation g ON g.id = a.generation_id "
                "WHERE g.status = 'active' AND a.level = 'district'"
            )
        )
    engine.dispose()
    district = shapely.from_wkb(bytes(wkb))
    rng = np.random.default_rng(11)
    minx, miny, maxx, maxy = district.bounds
    lon, lat = rng.uniform(minx, maxx, 4 * m + 100), rng.uniform(miny, maxy, 4 * m + 100)
    inside = shapely.contains_xy(district, lon, lat)
    pick = np.concatenate([np.flatnonzero(inside)[: m - m // 20], np.flatnonzero(~inside)[: m // 20]])
    rng.shuffle(pick)
    pd.DataFrame({"id": np.arange(m), "lon": lon[pick], "lat": lat[pick]}).to_parquet(path, index=False)


def _run(cmd: list[str], log: Path) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds, peak RSS in MB) of one process run by the launcher; fails on a non-zero exit."""
    launcher = log.with_name("launch.py")
    launcher.write_text(LAUNCH)
    done = subprocess.run([sys.executable, str(launcher), str(log), *cmd], check=True, capture_output=True, text=True)
    figures = json.loads(done.stdout)
    if figures["code"]:
        raise SystemExit(f"{cmd[0]} failed ({figures['code']}):\n{log.read_text()[-2000:]}")
    return figures["wall"], figures["cpu"], figures["rss"]


def bench_whole_process(m: int, reps: int) -> bool:
    import pandas as pd

    db = _demo_database()
    tmp = Path(tempfile.mkdtemp(prefix="gridmap-bench-file-"))
    try:
        source = tmp / "points.parquet"
        _district_points(db, m, source)
        naive_py = tmp / "naive.py"
        naive_py.write_text(NAIVE)
        gm = str(Path(sys.executable).with_name("gridmap"))
        url = f"sqlite:///{db}"
        ours_cmd = [gm, "--database", url, "locate-file", str(source), str(tmp / "gridmap.parquet")]
        naive_cmd = [sys.executable, str(naive_py), str(db), str(source), str(tmp / "naive.parquet")]
        load = os.getloadavg()
        print(
            f"\n== whole process: {m:,} points in a Parquet file over the full demo ({db}), best of {reps}; "
            f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} on {os.cpu_count()} cores"
        )
        small_cmd = ours_cmd[:-1] + [str(tmp / "small.parquet"), "--chunk-rows", "50000"]
        runs = {"gridmap locate-file": [], "naive geopandas (read, sjoin within, write)": []}
        cache = Path(tempfile.mkdtemp(prefix="gridmap-bench-index-"))
        os.environ["GRIDMAP_INDEX_CACHE"] = str(cache)  # an empty index cache of its own
        first = _run(ours_cmd, tmp / "gridmap.log")  # the index file of this generation is made
        for _ in range(reps):  # alternated, so that both see the same machine
            runs["gridmap locate-file"].append(_run(ours_cmd, tmp / "gridmap.log"))
            runs["naive geopandas (read, sjoin within, write)"].append(_run(naive_cmd, tmp / "naive.log"))
        runs["gridmap locate-file --chunk-rows 50000"] = [_run(small_cmd, tmp / "small.log")]
        runs["gridmap locate-file, no index file yet"] = [first]
        print(f"   {'process':44s} {'wall s':>8s} {'CPU s':>8s} {'peak RSS MB':>12s}   (every run: wall s / CPU s)")
        best = {}
        for name, figures in runs.items():
            wall = min(f[0] for f in figures)
            cpu = min(f[1] for f in figures)
            best[name] = (wall, cpu)
            print(
                f"   {name:44s} {wall:8.2f} {cpu:8.2f} {max(f[2] for f in figures):12.0f}   "
                f"({', '.join(f'{f[0]:.2f}/{f[1]:.2f}' for f in figures)})"
            )
        (ow, oc), (nw, nc) = best["gridmap locate-file"], best["naive geopandas (read, sjoin within, write)"]
        print(
            f"   gridmap is {nw / ow:.1f}× the naive pipeline in wall time, {nc / oc:.1f}× in CPU time "
            f"(target ≥ 5×); load average now {os.getloadavg()[0]:.1f}"
        )
        ours = pd.read_parquet(tmp / "gridmap.parquet", columns=["id", "microgrid_code", "grid_code", "flags"])
        naive = pd.read_parquet(tmp / "naive.parquet", columns=["id", "microgrid_code", "grid_code"])
        listed = naive["id"].value_counts()
        once = naive[naive["id"].map(listed) == 1].set_index("id")
        keep = ~ours["flags"].str.contains("on_boundary").to_numpy() & ours["id"].isin(once.index).to_numpy()
        ours = ours[keep].set_index("id")
        theirs = once.loc[ours.index]
        same = np.ones(len(ours), bool)
        for col in ("microgrid_code", "grid_code"):
            a, b = ours[col].astype(object), theirs[col].astype(object)
            same &= ((a == b) | (a.isna() & b.isna())).to_numpy()
        ok = bool(same.all()) and len(ours) >= 0.99 * m  # a boundary point is rare among random ones
        print(
            f"   answers: {int(same.sum()):,} of {len(ours):,} points on no boundary get the same micro-grid and grid "
            f"({m - len(ours):,} left out: on a boundary) — {'same answers' if same.all() else 'DIFFERENT'}"
        )
        print("   where gridmap's time goes, in one process:")
        phases = tmp / "phases.py"
        phases.write_text(PHASES)
        _run([sys.executable, str(phases), url, str(source), str(tmp / "again.parquet")], tmp / "phases.log")
        print((tmp / "phases.log").read_text().rstrip())
        print(f"   floors (whole processes, best of {reps}): {'wall s':>8s} {'CPU s':>8s}")
        for name, code in (
            ("python -c pass", "pass"),
            ("import numpy, pyarrow.parquet, shapely", "import numpy, pyarrow.parquet, shapely"),
            ("gridmap --help (gridmap.cli imported, parsed)", "from gridmap.cli import main; main(['--help'])"),
            ("peer: import geopandas, pysqlite3", "import geopandas; from pysqlite3 import dbapi2"),
        ):
            figures = [_run([sys.executable, "-c", code], tmp / "floor.log") for _ in range(reps)]
            print(f"   {name:44s} {min(f[0] for f in figures):8.2f} {min(f[1] for f in figures):8.2f}")
        shutil.rmtree(cache, ignore_errors=True)
        return ok
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 20000, 200000])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--no-postgis", action="store_true")
    parser.add_argument("--http-demo", choices=["full", "small", "none"], default="full")
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument(
        "--file-points", type=int, default=1_000_000, help="points in the whole-process file comparison (0 skips it)"
    )
    parser.add_argument("--reps", type=int, default=3, help="runs of each process in the file comparison")
    parser.add_argument("--only-file", action="store_true", help="only the whole-process file comparison")
    args = parser.parse_args()
    if args.only_file:
        ok = bench_whole_process(args.file_points, args.reps)
        print("\nsame answers" if ok else "\nDISAGREEMENT: see above")
        return 0 if ok else 1
    lon, lat = make_points(args.points)
    index = AreaIndex([AreaRef(0, "grid", "0", "warm-up", None)], [shapely.box(0, 0, 1, 1)])
    index.locate_many(np.array([0.5]), np.array([0.5]))  # compile the kernels before timing
    ok = True
    for n in args.sizes:
        ok &= bench_size(n, lon, lat, not args.no_postgis)["ok"]
    if args.http_demo != "none":
        bench_http(args.http_demo, args.rate, args.seconds)
    if args.file_points:
        ok &= bench_whole_process(args.file_points, args.reps)
    print("\nall methods agree on every point" if ok else "\nDISAGREEMENT: see the table above")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
