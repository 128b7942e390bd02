"""Benchmark: assigning points to grids — gridmap vs geopandas.sjoin, shapely STRtree and PostGIS, same data, one run.

    .venv/bin/python tests/benchmarks/locate.py                 # 2k, 20k, 200k grids; 1M points; HTTP on Guandu
    .venv/bin/python tests/benchmarks/locate.py --sizes 2000 --points 200000 --http-demo small

For each grid set (tiled wiggly Voronoi cells, 40–60 vertices, `synthetic.py`) it prints points per second for
gridmap's batch locate (one thread), geopandas.sjoin(predicate="within"), shapely STRtree.query(predicate=
"within") and PostGIS (`INSERT … SELECT … JOIN ON ST_Covers` with a GiST index), after checking that every
method gives the same grid for every point, and the ratios gridmap/peer. Then single-point latency in process
(p50, p99) and over HTTP against `gridmap serve` on the embedded SpatiaLite database at a fixed request rate.
Figures are measurements on this machine at this moment; run it twice before believing a ratio.
"""

from __future__ import annotations

import argparse
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

from gridmap.lookup import AreaIndex, AreaRef  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
PG_ADMIN = os.environ.get("GRIDMAP_TEST_POSTGIS_ADMIN",
                          "postgresql://gridmap_test:gridmap_test@127.0.0.1:5432/postgres")


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
            grid_wkb = shapely.to_wkb(shapely.set_srid(np.array(multis, dtype=object), 4326), hex=True,
                                      include_srid=True)
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
    print(f"\n== {len(grids):,} grids (vertices p5/median/p95 {np.percentile(verts, 5):.0f}/{np.median(verts):.0f}/"
          f"{np.percentile(verts, 95):.0f}), {m:,} points; generated in {gen_s:.1f}s")
    print(f"   gridmap index: built in {build_s:.2f}s, {stats['cells']:,} cells of {stats['cell_m']} m, "
          f"{stats['boundary'] / stats['cells']:.1%} boundary, {stats['mbytes']:.0f} MB")
    results = {}
    secs, ours = best_of(lambda: index.locate_many(lon, lat))
    results["gridmap batch locate (1 thread)"] = (secs, ours)
    pts_geom = shapely.points(lon, lat)
    left = gpd.GeoDataFrame(geometry=pts_geom, crs=4326)
    right = gpd.GeoDataFrame({"gid": np.arange(len(grids))}, geometry=grids, crs=4326)
    secs, joined = best_of(lambda: gpd.sjoin(left, right, predicate="within", how="inner"), reps=2)
    results["geopandas.sjoin(predicate='within')"] = (
        secs, first_hit(joined.index.to_numpy(), joined["gid"].to_numpy(), m))
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
        print(f"   {name:44s} {m / secs:12,.0f} {secs:8.3f}  {ratio:9.1f}  {'yes' if same else 'NO'} "
              f"({(answer == reference).sum():,}/{m:,})")
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
    print(f"   single point in process: leaf_at p50 {np.percentile(lat_ns, 50) / 1000:.2f} µs, "
          f"p99 {np.percentile(lat_ns, 99) / 1000:.2f} µs; locate() with chain and 10 m near-check p50 "
          f"{np.percentile(full_ns, 50) / 1000:.1f} µs, p99 {np.percentile(full_ns, 99) / 1000:.1f} µs; "
          f"STRtree.query(Point) p50 {np.percentile(ref_ns, 50) / 1000:.1f} µs")
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
    subprocess.run([gm, "--database", db, "demo"] + (["--small"] if demo == "small" else []), check=True,
                   stdout=subprocess.DEVNULL)
    print(f"\n== HTTP: GET /api/v1/locate on the embedded SpatiaLite database ({demo} Guandu demo, loaded in "
          f"{time.perf_counter() - t:.0f}s), one uvicorn worker, {rate:.0f} requests/s for {seconds:.0f}s")
    port = 18_000 + os.getpid() % 1000
    server = subprocess.Popen([gm, "--database", db, "serve", "--port", str(port)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
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

        token = httpx.post(f"http://127.0.0.1:{port}/api/v1/auth/token",
                           data={"username": "demo-dispatcher", "password": DEMO_PASSWORD}).json()["access_token"]
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
        print(f"   {len(params):,} requests in {took:.1f}s ({len(params) / took:.0f}/s achieved): "
              f"p50 {np.percentile(lat, 50) * 1000:.2f} ms, p90 {np.percentile(lat, 90) * 1000:.2f} ms, "
              f"p99 {np.percentile(lat, 99) * 1000:.2f} ms, max {lat.max() * 1000:.1f} ms "
              f"(client and server share the 2 cores)")
    finally:
        server.terminate()
        server.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 20000, 200000])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--no-postgis", action="store_true")
    parser.add_argument("--http-demo", choices=["full", "small", "none"], default="full")
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    lon, lat = make_points(args.points)
    index = AreaIndex([AreaRef(0, "grid", "0", "warm-up", None)], [shapely.box(0, 0, 1, 1)])
    index.locate_many(np.array([0.5]), np.array([0.5]))  # compile the kernels before timing
    ok = True
    for n in args.sizes:
        ok &= bench_size(n, lon, lat, not args.no_postgis)["ok"]
    if args.http_demo != "none":
        bench_http(args.http_demo, args.rate, args.seconds)
    print("\nall methods agree on every point" if ok else "\nDISAGREEMENT: see the table above")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
