"""Vector tiles against the GeoJSON map endpoints on the full Guandu demo (1,854 micro-grids, 533 grids, 50,000
cases), on SpatiaLite and PostGIS, over the app's HTTP stack (in process, the same middleware as served).

For each view — a 1440×900 screen centred on the district at a zoom, one layer — the same place is asked for two
ways: the GeoJSON endpoint the pages use today (`/map/areas?level&zoom&bbox`, `/map/cases?bbox`) as one request,
and the tiles that cover the screen (`/tiles/{layer}/{z}/{x}/{y}.mvt`), each timed on its own. Figures per view:
GeoJSON time (p50 of warm runs; its outline fragments are built on the first call and kept), tile p50 / p95 with
the tile cache emptied before each pass (cold: the database draws every tile) and from the cache (warm), a 304
revalidation, the time for all the view's tiles one after the other (a browser fetches about six at once), and the
bytes of each answer (uncompressed).

    python tests/benchmarks/tiles.py [--sqlite FILE] [--postgis URL] [--only sqlite|postgis] [--reps N]

The SpatiaLite file is copied first (never written); PostGIS is opened in read-only transactions
(`--default_transaction_read_only=on`: the app's overdue sweep, which would write, fails harmlessly). Defaults: the
files the series benchmark builds (`/tmp/gridmap-bench-series/full-demo.sqlite`, database `gridmap_bench_series`).
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import mapbox_vector_tile
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from gridmap_api.settings import Settings  # noqa: E402
from tests.conftest import POSTGRES_ADMIN_URL, api_client  # noqa: E402

SQLITE_FILE = Path("/tmp/gridmap-bench-series/full-demo.sqlite")
PG_NAME = "gridmap_bench_series"
WIDTH, HEIGHT = 1440, 900
VIEWS = [
    ("district", 10),
    ("subdistrict", 11),
    ("community", 12),
    ("grid", 13),
    ("microgrid", 12),
    ("microgrid", 14),
    ("cases", 13),
    ("cases", 15),
]


def lonlat_to_pixel(lon: float, lat: float, z: int) -> tuple[float, float]:
    n = 256 * 2**z
    return (lon + 180) / 360 * n, (1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n


def pixel_to_lonlat(px: float, py: float, z: int) -> tuple[float, float]:
    n = 256 * 2**z
    return px / n * 360 - 180, math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * py / n))))


def view(centre: tuple[float, float], z: int) -> tuple[str, list[tuple[int, int, int]]]:
    """The bbox of a WIDTH×HEIGHT screen at zoom z around `centre`, and the tiles that cover it."""
    cx, cy = lonlat_to_pixel(*centre, z)
    x0, y0, x1, y1 = cx - WIDTH / 2, cy - HEIGHT / 2, cx + WIDTH / 2, cy + HEIGHT / 2
    west, north = pixel_to_lonlat(x0, y0, z)
    east, south = pixel_to_lonlat(x1, y1, z)
    tiles = [
        (z, x, y) for x in range(int(x0 // 256), int(x1 // 256) + 1) for y in range(int(y0 // 256), int(y1 // 256) + 1)
    ]
    return f"{west:.6f},{south:.6f},{east:.6f},{north:.6f}", tiles


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))]


def timed_get(client, url: str, **kw) -> tuple[float, object]:
    started = time.perf_counter()
    r = client.get(url, **kw)
    elapsed = (time.perf_counter() - started) * 1000
    assert r.status_code in (200, 304), (url, r.status_code, r.text[:200])
    return elapsed, r


def copy_sqlite(src: Path, folder: str) -> str:
    dst = Path(folder) / "full-demo.sqlite"
    with sqlite3.connect(f"file:{src}?mode=ro", uri=True) as source, sqlite3.connect(dst) as target:
        source.backup(target)
    return f"sqlite:///{dst}"


def run(url: str, label: str, reps: int) -> list[dict]:
    rows = []
    with api_client(Settings(database_url=url, escalation_interval_s=86_400)) as client:
        districts = client.get("/api/v1/map/areas", params={"level": "district", "zoom": 10}).json()["features"]
        assert districts, "no boundaries in this database"
        (lon, lat) = districts[0]["properties"]["label"]
        for layer, z in VIEWS:
            bbox, tiles = view((lon, lat), z)
            if layer == "cases":
                geo_url, geo_params = "/api/v1/map/cases", {"bbox": bbox}
            else:
                geo_url, geo_params = "/api/v1/map/areas", {"level": layer, "zoom": z, "bbox": bbox}
            geo_first, r = timed_get(client, geo_url, params=geo_params)
            geo_bytes = len(r.content)
            geo_times = [timed_get(client, geo_url, params=geo_params)[0] for _ in range(reps)]
            cold, warm, revalidate, view_cold, view_warm, tile_bytes, features = [], [], [], [], [], 0, 0
            for rep in range(reps):
                cache = getattr(client.app.state, "tile_cache", None)
                if cache is not None:
                    cache.clear()
                total = 0.0
                for z_, x, y in tiles:
                    elapsed, r = timed_get(client, f"/api/v1/tiles/{layer}/{z_}/{x}/{y}.mvt")
                    cold.append(elapsed)
                    total += elapsed
                    if rep == 0:
                        tile_bytes += len(r.content)
                        features += len(mapbox_vector_tile.decode(r.content).get(layer, {}).get("features", []))
                view_cold.append(total)
                total = 0.0
                for z_, x, y in tiles:
                    elapsed, r = timed_get(client, f"/api/v1/tiles/{layer}/{z_}/{x}/{y}.mvt")
                    warm.append(elapsed)
                    total += elapsed
                    elapsed, _ = timed_get(
                        client, f"/api/v1/tiles/{layer}/{z_}/{x}/{y}.mvt", headers={"If-None-Match": r.headers["etag"]}
                    )
                    revalidate.append(elapsed)
                view_warm.append(total)
            rows.append(
                {
                    "db": label,
                    "layer": layer,
                    "z": z,
                    "tiles": len(tiles),
                    "features": features,
                    "geo_first": geo_first,
                    "geo": statistics.median(geo_times),
                    "geo_bytes": geo_bytes,
                    "cold50": pct(cold, 50),
                    "cold95": pct(cold, 95),
                    "warm50": pct(warm, 50),
                    "warm95": pct(warm, 95),
                    "r304": pct(revalidate, 50),
                    "view_cold": statistics.median(view_cold),
                    "view_warm": statistics.median(view_warm),
                    "tile_bytes": tile_bytes,
                }
            )
            r = rows[-1]
            print(
                f"  {label:9} {layer:11} z{z:<2} {len(tiles):3} tiles {features:6} feat | GeoJSON "
                f"{r['geo']:7.1f} ms (first {geo_first:7.1f}) {geo_bytes / 1024:8.1f} KiB | tile cold p50 "
                f"{r['cold50']:6.1f} p95 {r['cold95']:6.1f} · warm p50 {r['warm50']:5.1f} p95 {r['warm95']:5.1f}"
                f" · 304 {r['r304']:4.1f} ms | view cold {r['view_cold']:7.1f} warm {r['view_warm']:6.1f} ms "
                f"{tile_bytes / 1024:8.1f} KiB",
                flush=True,
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sqlite", type=Path, default=SQLITE_FILE, help="the full demo on SpatiaLite (copied)")
    parser.add_argument(
        "--postgis", help=f"the full demo on PostGIS (opened read-only); default: database {PG_NAME} on the test server"
    )
    parser.add_argument("--only", choices=("sqlite", "postgis"))
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    logging.getLogger("gridmap.api").setLevel(logging.CRITICAL)  # the read-only sweep's failure is expected
    load = os.getloadavg()
    print(
        f"machine: {os.cpu_count()} cores, load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} at start; "
        f"view {WIDTH}×{HEIGHT} px; {args.reps} passes",
        flush=True,
    )
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        if args.only in (None, "sqlite"):
            rows += run(copy_sqlite(args.sqlite, folder), "SpatiaLite", args.reps)
        if args.only in (None, "postgis"):
            url = args.postgis or sa.engine.make_url(POSTGRES_ADMIN_URL).set(database=PG_NAME).render_as_string(
                hide_password=False
            )
            url += ("&" if "?" in url else "?") + "options=--default_transaction_read_only%3Don"
            rows += run(url, "PostGIS", args.reps)
    load = os.getloadavg()
    print(f"\nload average at the end {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    print(
        "\nratios (tiles of the view one after the other / one GeoJSON request of the same view; bytes tiles / "
        "GeoJSON):"
    )
    for r in rows:
        print(
            f"  {r['db']:10} {r['layer']:11} z{r['z']:<2} time cold {r['view_cold'] / r['geo']:5.2f}× warm "
            f"{r['view_warm'] / r['geo']:5.2f}× · tile p95 cold / GeoJSON {r['cold95'] / r['geo']:5.2f}× · bytes "
            f"{r['tile_bytes'] / max(r['geo_bytes'], 1):5.2f}×"
        )


if __name__ == "__main__":
    main()
