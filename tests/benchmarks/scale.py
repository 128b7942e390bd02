"""Benchmark: a province on one machine (issue 15 §6) — `gridmap demo --scale province` on SpatiaLite and PostGIS,
then the user's jobs on it, each figure printed beside its peer where there is one, with the load average.

    .venv/bin/python tests/benchmarks/scale.py                       # 16 districts, 200,000 micro-grids, 10 M cases
    .venv/bin/python tests/benchmarks/scale.py --cases 1000000       # a smaller run (say which in any note)
    .venv/bin/python tests/benchmarks/scale.py --only sqlite --skip map,http
    .venv/bin/python tests/benchmarks/scale.py --sqlite-url sqlite:////var/tmp/p/province.sqlite \
        --postgis-url postgresql://…/db --skip locate-file,measures,import,locate,tiles,map   # paging, deleting

Per database:

* generation — `gridmap demo --scale province …` as a user runs it (one process, wall and CPU, peak RSS), cases/s.
  The database is built once per parameter set and schema revision and reused by later runs: the SpatiaLite file
  under /tmp/gridmap-bench-scale/ (with a `.done` file naming the parameters), the PostGIS database
  `gridmap_bench_scale_<key>` (its COMMENT names the parameters) only if kept by `--keep`; without `--keep` the
  PostgreSQL databases this run creates are dropped at the end.
* locate batch — `gridmap locate-file` on `--points` (1,000,000) points in a Parquet file (95 % inside districts,
  or `--spread bbox`: uniform in the province's bounding box), whole process: the first run on these boundaries
  (the index built and its file written) and again (the file found), on each database, beside the naive geopandas
  pipeline reading the same database (read Parquet, read the leaf polygons, sjoin within, write), alternated, best of
  `--reps`; ratios naive/gridmap in wall and CPU time; answers compared per point off the boundaries, and the two
  databases' output files compared whole. `--baseline /work/main` runs another checkout's gridmap beside.
  A province built already is used as it is with `--sqlite-url` / `--postgis-url` (only the databases named):

      .venv/bin/python tests/benchmarks/scale.py --sqlite-url sqlite:////var/tmp/p.sqlite \\
          --postgis-url postgresql://…/gridmap_p --skip measures,http,import
* measures — `gridmap.cases.measures.measures(session, "grid", …)` over the year beside the two peers of
  tests/benchmarks/measures.py: the bare GROUP BY of the case table's five counts, and the bare SQL of all the
  counts `measures` gives (the case table's with the reworked and extended cohort, and the steps' joined to their
  cases: handled, rated, satisfied, bounces); the counts are checked equal.
* case list by last update — `page_cases` sorted by `updated_at` (migration 0015's `case_activity`) for the
  province, a district, a sub-district, a community, a grid and a queue, first page and the next, beside the bare
  SQL that works out each case's latest history entry (LAST_UPDATE_PEER); the pages checked to hold the same cases.
* the case list as each account opens it — over HTTP (`gridmap serve --workers 2`), the first page, counted, for
  the admin (the province), a district's and a sub-district's dispatcher and a community's manager, beside the bare
  SQL of the same page (the area's count by its code, the 50 newest); `--server-baseline CHECKOUT` runs an earlier
  commit's server in turn (the totals checked equal to the bare count).
* dispatchers at work — over HTTP, 20 threads as the district's dispatcher, each opening and urging (催办) cases of
  its own, open cases from every month of the district: the answers' times, any answer that is not 200, and on
  PostGIS the most locks the server's backends held at once; `--server-baseline` runs the earlier commit in turn.
* the 12-month series — over HTTP, each account's own area's (the admin's: the first district), beside the bare
  SQL of its steps in the 12 months.
* the dispatcher's console — over HTTP, each account's six queue counts and its overdue list's counted first page,
  beside the bare count of its overdue cases; `--server-baseline` runs the earlier commit in turn.
* the search box — over HTTP, as each account types a case number (whole, its start, `RX2026`, `RX`) or a Chinese
  word, beside the bare SQL of the number's start (`LIKE 'text%'`, the search's query before migration 0017).
* case list paging — over HTTP, 50 a page, for the case list newest first, by deadline, by last update, a month of
  it, and the dispatched queue: the first page (counted), then page 1,000 (or the last, if fewer) by `offset`
  (counted, as offset pages are; and with `count=false`) beside the same page by `cursor` (the `next_cursor` of the
  page before; not counted), the two pages checked equal; and the last page the same way. Beside them, for the case
  list newest first, the same page as bare SQL: LIMIT/OFFSET and a keyset WHERE.
* deleting cases — the app's one path that deletes cases (after a day's import, below: the imported cases, their
  notifications and history, by ticket prefix): 10,000 imported cases deleted at schema 0012 (the foreign keys'
  referencing columns without indexes) and again at 0013 (indexed), in one run; the schema is left at the head.
  At 0012 the cases go by runs of 500 and stop after `--delete-cap` seconds (600): cases/s, and the time that
  gives for all 10,000 (over 7 minutes on PostGIS at 1 M cases, hours on a busy SpatiaLite), are printed.
* over HTTP, `gridmap serve --workers 2`: locate p50/p99 at a fixed rate (open loop, tests/benchmarks/locate.py's
  load client, signed in as the dispatcher with a bearer token); tile p50/p95 for the screens of a 1440×900
  view at several zooms per layer (cold: each tile's first request; warm: again), beside the GeoJSON endpoint of the
  same view; the map's first screen in headless Chromium (tests/benchmarks/map.py's `first_screen_run`, target
  < 2 s; `--map-runs` screens per view size, 3 by default, the median printed).
* a day's import — 10,000 hotline tickets (CSV, addresses of compounds; tests/benchmarks/cases.py's `export_rows`)
  through `gridmap.cases.hotline.import_export` in bulk, rows/s, twice in one process with the locate index loaded and
  warmed as a server holds it: the first import pays for what the index derives on first use, the second is a
  server's steady state; the imported cases are deleted again afterwards so that the kept database stays what the
  generator made.

No assertion on time. Figures are measurements on this machine at this moment: a shared 2-core machine, so the
load average is printed beside each part.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import datetime as dt
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).parent))

from gridmap.store import engine as storage  # noqa: E402
from tests.conftest import POSTGRES_ADMIN_URL  # noqa: E402

WORK = Path("/tmp/gridmap-bench-scale")
TODAY = dt.date(2026, 11, 20)
SEED = 53
GM = str(Path(sys.executable).with_name("gridmap"))


def load() -> str:
    a, b, c = os.getloadavg()
    return f"load {a:.1f} {b:.1f} {c:.1f} on {os.cpu_count()} cores"


def params_key(args: argparse.Namespace) -> str:
    """The parameters a build is reused for; its schema is brought to this checkout's head on reuse (`migrate`), so
    that a new migration does not throw away a build of half an hour."""
    return f"d{args.districts}-m{args.microgrids}-c{args.cases}-s{SEED}-{TODAY}"


def upgraded(url: str) -> str:
    """Bring a reused database to the schema head of this checkout; says what it did."""
    engine = storage.make_engine(url)
    before = storage.schema_revision(engine)
    storage.migrate(engine)
    after = storage.schema_revision(engine)
    engine.dispose()
    return f"schema {before}" + ("" if before == after else f" → {after} (upgraded)")


def run_measured(cmd: list[str], log: Path) -> tuple[float, float, float]:
    from locate import _run  # the launcher of tests/benchmarks/locate.py: wall, CPU, peak RSS of one process

    return _run(cmd, log)


def demo_cmd(url: str, args: argparse.Namespace) -> list[str]:
    return [
        GM,
        "--database",
        url,
        "demo",
        "--scale",
        "province",
        "--districts",
        str(args.districts),
        "--microgrids",
        str(args.microgrids),
        "--cases",
        str(args.cases),
        "--seed",
        str(SEED),
        "--today",
        TODAY.isoformat(),
    ]


# --- building or reusing ----------------------------------------------------------------------------------------


def sqlite_db(args: argparse.Namespace, key: str) -> tuple[str, dict | None]:
    WORK.mkdir(exist_ok=True)
    path = WORK / f"province-{key}.sqlite"
    done = path.with_suffix(".done")
    if path.exists() and done.exists() and json.loads(done.read_text()).get("key") == key:
        url = f"sqlite:///{path}"
        print(f"   reusing {path} (built at the same parameters: {done.read_text().strip()}; {upgraded(url)})")
        return url, None
    for old in [*WORK.glob("province-*.sqlite*"), *WORK.glob("province-*.done")]:
        old.unlink()
    url = f"sqlite:///{path}"
    figures = run_measured(demo_cmd(url, args), WORK / "build-sqlite.log")
    done.write_text(json.dumps({"key": key, "wall": figures[0], "cpu": figures[1], "rss": figures[2]}))
    return url, {"wall": figures[0], "cpu": figures[1], "rss": figures[2]}


def _admin() -> sa.Engine:
    return sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")


def postgis_db(args: argparse.Namespace, key: str) -> tuple[str, dict | None, str, bool]:
    """(url, build figures or None when reused, database name, created by this run)."""
    name = "gridmap_bench_scale_" + hashlib.sha1(key.encode()).hexdigest()[:10]
    url = sa.engine.make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    admin = _admin()
    with admin.connect() as conn:
        exists = conn.scalar(
            sa.text("SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = :n"), {"n": name}
        )
        present = conn.scalar(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name})
        if present and exists == key:
            print(f"   reusing PostGIS database {name} (kept at the same parameters; {upgraded(url)})")
            return url, None, name, False
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE EXTENSION IF NOT EXISTS postgis"))
    engine.dispose()
    figures = run_measured(demo_cmd(url, args), WORK / "build-postgis.log")
    with admin.connect() as conn:
        conn.execute(sa.text(f"COMMENT ON DATABASE \"{name}\" IS '{key}'"))
    admin.dispose()
    return url, {"wall": figures[0], "cpu": figures[1], "rss": figures[2]}, name, True


def drop_postgis(name: str) -> None:
    admin = _admin()
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()
    print(f"   dropped PostGIS database {name}")


def sizes(url: str) -> dict:
    engine = storage.make_engine(url)
    with engine.connect() as conn:
        out = {
            "cases": conn.scalar(sa.text("SELECT count(*) FROM case_file")),
            "events": conn.scalar(sa.text("SELECT count(*) FROM case_event")),
            "microgrids": conn.scalar(sa.text("SELECT count(*) FROM area WHERE level = 'microgrid'")),
            "grids": conn.scalar(sa.text("SELECT count(*) FROM area WHERE level = 'grid'")),
        }
    engine.dispose()
    return out


# --- locate batch -------------------------------------------------------------------------------------------------


def province_points(url: str, m: int, path: Path, spread: str = "districts") -> None:
    """`m` points in a Parquet file (id, lon, lat): with `spread` "districts", 95 % uniform inside the districts (by
    area) and 5 % in their bounding boxes outside; with "bbox", uniform in the bounding box of the whole province
    (mostly outside every district: a province's districts cover a seventh of it)."""
    import pandas as pd
    import shapely

    engine = storage.make_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT ST_AsBinary(a.geom) FROM area a JOIN generation g ON g.id = "
                "a.generation_id WHERE g.status = 'active' AND a.level = 'district'"
            )
        ).all()
    engine.dispose()
    districts = [shapely.from_wkb(bytes(r[0])) for r in rows]
    rng = np.random.default_rng(11)
    if spread == "bbox":
        minx, miny, maxx, maxy = shapely.total_bounds(districts)
        lon, lat = rng.uniform(minx, maxx, m), rng.uniform(miny, maxy, m)
        pd.DataFrame({"id": np.arange(m), "lon": lon, "lat": lat}).to_parquet(path, index=False)
        return
    areas = np.array([d.area for d in districts])
    per = np.random.default_rng(12).multinomial(m, areas / areas.sum())
    lon_all, lat_all = [], []
    for d, k in zip(districts, per):
        minx, miny, maxx, maxy = d.bounds
        lon, lat = rng.uniform(minx, maxx, 2 * k + 100), rng.uniform(miny, maxy, 2 * k + 100)
        inside = shapely.contains_xy(d, lon, lat)
        pick = np.concatenate([np.flatnonzero(inside)[: k - k // 20], np.flatnonzero(~inside)[: k // 20]])
        if len(pick) < k:
            pick = np.concatenate([pick, np.flatnonzero(inside)[-(k - len(pick)) :]])
        lon_all.append(lon[pick])
        lat_all.append(lat[pick])
    lon, lat = np.concatenate(lon_all), np.concatenate(lat_all)
    order = rng.permutation(len(lon))
    pd.DataFrame({"id": np.arange(len(lon)), "lon": lon[order], "lat": lat[order]}).to_parquet(path, index=False)


# the naive peer on PostGIS: tests/benchmarks/locate.py's NAIVE, the leaf polygons read from PostGIS
NAIVE_PG = '''"""The naive peer: read the points, read the leaf polygons from the same database, sjoin within, write."""
import sys

import geopandas as gpd
import pandas as pd
import psycopg

url, source, target = sys.argv[1:4]
points = pd.read_parquet(source)
left = gpd.GeoDataFrame(points, geometry=gpd.points_from_xy(points["lon"], points["lat"]), crs=4326)
with psycopg.connect(url) as con:
    rows = con.execute("SELECT m.code, g.code, ST_AsBinary(m.geom) FROM area m "
                       "JOIN generation gen ON gen.id = m.generation_id AND gen.status = 'active' "
                       "LEFT JOIN area g ON g.id = m.parent_id WHERE m.is_leaf").fetchall()
areas = pd.DataFrame(rows, columns=["microgrid_code", "grid_code", "wkb"])
right = gpd.GeoDataFrame(areas[["microgrid_code", "grid_code"]],
                         geometry=gpd.GeoSeries.from_wkb(areas["wkb"].map(bytes)), crs=4326)
out = gpd.sjoin(left, right, predicate="within", how="left")
out.to_parquet(target)
'''


def _run_env(cmd: list[str], log: Path, env: dict[str, str]) -> tuple[float, float, float]:
    """`locate._run` (wall, CPU, peak RSS of one process, from `os.wait4` in a launcher) with its own environment."""
    from locate import LAUNCH

    launcher = log.with_name("launch.py")
    launcher.write_text(LAUNCH)
    done = subprocess.run(
        [sys.executable, str(launcher), str(log), *cmd], check=True, capture_output=True, text=True, env=env
    )
    figures = json.loads(done.stdout)
    if figures["code"]:
        raise SystemExit(f"{cmd[0]} failed ({figures['code']}):\n{log.read_text()[-2000:]}")
    return figures["wall"], figures["cpu"], figures["rss"]


def _same_as_naive(ours_path: Path, naive_path: Path) -> tuple[int, int, int, int]:
    """(points with the same micro-grid and grid, points compared, points gridmap flags on_boundary, points the peer
    lists more than once): sjoin(within) leaves a point on an edge out, or lists it once per polygon; gridmap gives
    it the smallest code and the flag — those are compared apart (left out here, counted)."""
    import pandas as pd

    ours = pd.read_parquet(ours_path, columns=["id", "microgrid_code", "grid_code", "flags"])
    theirs = pd.read_parquet(naive_path, columns=["id", "microgrid_code", "grid_code"])
    listed = theirs["id"].value_counts()
    once = theirs[theirs["id"].map(listed) == 1].set_index("id")
    on_edge = ours["flags"].astype(str).str.contains("on_boundary").to_numpy()
    keep = ~on_edge & ours["id"].isin(once.index).to_numpy()
    ours = ours[keep].set_index("id")
    theirs = once.loc[ours.index]
    same = np.ones(len(ours), bool)
    for col in ("microgrid_code", "grid_code"):
        a, b = ours[col].astype(object), theirs[col].astype(object)
        same &= ((a == b) | (a.isna() & b.isna())).to_numpy()
    return int(same.sum()), len(ours), int(on_edge.sum()), int((listed > 1).sum())


def bench_locate_batch(
    urls: dict[str, str], m: int, reps: int = 3, spread: str = "districts", baseline: str | None = None
) -> bool:
    """The user's whole job on the province: `gridmap locate-file` on `m` points in a Parquet file, first on these
    boundaries (no index file yet: read through the ORM, the index built and written) and again (the index file
    found without the ORM), beside the naive geopandas pipeline reading the same database (SpatiaLite: locate.py's
    NAIVE; PostGIS: NAIVE_PG), warm runs and peer alternated, best of `reps`; answers compared per point, and the
    two databases' files compared whole. With `baseline` (a checkout, e.g. the main worktree), that checkout's
    gridmap is run the same way beside (its own index cache). True when every answer agrees."""
    import pyarrow.parquet as pq
    from locate import NAIVE

    tmp = Path(tempfile.mkdtemp(prefix="gridmap-bench-scale-file-"))
    ok = True
    try:
        any_url = next(iter(urls.values()))
        source = tmp / "points.parquet"
        province_points(any_url, m, source, spread)
        (tmp / "naive.py").write_text(NAIVE)
        (tmp / "naive_pg.py").write_text(NAIVE_PG)
        print(
            f"\n== locate batch: {m:,} points ({spread}) in a Parquet file, whole process, best of {reps} ({load()})",
            flush=True,
        )
        checkouts = {"gridmap": str(ROOT)}
        if baseline:
            checkouts["baseline " + Path(baseline).name] = str(Path(baseline).resolve())
        outputs: dict[str, Path] = {}
        for label, url in urls.items():
            naive_cmd = (
                [sys.executable, str(tmp / "naive.py"), str(storage.sqlite_path(url)), str(source)]
                if label == "sqlite"
                else [sys.executable, str(tmp / "naive_pg.py"), url.replace("+psycopg", ""), str(source)]
            )
            naive_runs: list[tuple[float, float, float]] = []
            rows = []
            for name, checkout in checkouts.items():
                cache = tmp / f"cache-{label}-{len(rows)}"
                env = {
                    **os.environ,
                    "GRIDMAP_INDEX_CACHE": str(cache),
                    "PYTHONPATH": os.pathsep.join([checkout, f"{checkout}/api", f"{checkout}/web"]),
                }
                out = tmp / f"{label}-{len(rows)}.parquet"
                cmd = [GM, "--database", url, "locate-file", str(source), str(out), "--no-progress"]
                first = _run_env(cmd, tmp / "first.log", env)  # no index file: the ORM path builds and writes it
                warm = []
                for _ in range(reps if name == "gridmap" else 1):  # alternated with the peer: the same machine
                    warm.append(_run_env(cmd, tmp / "warm.log", env))
                    if name == "gridmap":
                        naive_runs.append(_run_env([*naive_cmd, str(tmp / "naive.parquet")], tmp / "naive.log", env))
                rows.append((name, first, warm, out))
            nw, nc = min(f[0] for f in naive_runs), min(f[1] for f in naive_runs)
            print(f"   {label}: {'process':52s} {'wall s':>7s} {'CPU s':>7s} {'RSS MB':>7s}  naive/this wall, CPU")
            for name, first, warm, _out in rows:
                w, c, r = min(f[0] for f in warm), min(f[1] for f in warm), max(f[2] for f in warm)
                print(
                    f"   {'':{len(label) + 1}s} {name + ' locate-file, first run (index built)':52s} {first[0]:7.1f} "
                    f"{first[1]:7.1f} {first[2]:7.0f}  {nw / first[0]:5.2f}× {nc / first[1]:5.2f}×"
                )
                print(
                    f"   {'':{len(label) + 1}s} {name + ' locate-file, again (index file found)':52s} {w:7.1f} "
                    f"{c:7.1f} {r:7.0f}  {nw / w:5.2f}× {nc / c:5.2f}×"
                )
            print(
                f"   {'':{len(label) + 1}s} {'naive geopandas (read, sjoin within, write)':52s} {nw:7.1f} {nc:7.1f} "
                f"{max(f[2] for f in naive_runs):7.0f}   ({load()})",
                flush=True,
            )
            for name, _first, _warm, out in rows:
                same, compared, on_edge, multi = _same_as_naive(out, tmp / "naive.parquet")
                agree = same == compared
                ok &= agree
                print(
                    f"   {'':{len(label) + 1}s} answers ({name}): {same:,} of {compared:,} points off the boundaries "
                    f"get the peer's micro-grid and grid — {'same answers' if agree else 'DIFFERENT'} ({on_edge:,} "
                    f"flagged on_boundary, {multi:,} listed twice by the peer)"
                )
            outputs[label] = rows[0][3]
            for name, _first, _warm, out in rows[1:]:
                whole = pq.read_table(out).equals(pq.read_table(rows[0][3]))
                ok &= whole
                print(f"   {'':{len(label) + 1}s} {name}'s file and this checkout's: {'equal' if whole else 'DIFFER'}")
        if len(outputs) == 2:
            whole = pq.read_table(outputs["sqlite"]).equals(pq.read_table(outputs["postgis"]))
            ok &= whole
            print(f"   SpatiaLite's and PostGIS's files: {'equal' if whole else 'DIFFER'}")
        return ok
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# --- measures, paging, import (in process) ---------------------------------------------------------------------


def best_of(fn, reps: int = 3) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(reps):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def bench_measures(url: str, label: str) -> None:
    """Measures per grid for a year beside the two peers of tests/benchmarks/measures.py: the bare GROUP BY of the
    case table's five counts (PEER_SQL of tests/benchmarks/cases.py, what earlier notes compared against), and the
    bare SQL of all the counts `measures` gives (that GROUP BY with the reworked and extended cohort, plus the
    GROUP BY of the year's steps joined to their cases: handled, rated, satisfied, bounces), without the hours'
    percentiles, which only `measures` works out. Every count of both peers is checked against gridmap's."""
    import measures as peers  # tests/benchmarks/measures.py: the peers' SQL, as the full-demo benchmark runs it

    from gridmap.cases.measures import measures, to_records

    engine = storage.make_engine(url)
    until = dt.datetime.combine(TODAY, dt.time(0), dt.timezone(dt.timedelta(hours=8)))
    since = until - dt.timedelta(days=365)
    params = {"since": since.astimezone(dt.UTC), "until": until.astimezone(dt.UTC)}
    if engine.dialect.name == "sqlite":  # SQLite compares the stored text form
        params = {k: v.strftime("%Y-%m-%d %H:%M:%S.%f") for k, v in params.items()}
    steps_sql = peers.STEPS.format(rating=peers.RATING[engine.dialect.name])
    with storage.make_sessionmaker(engine)() as session:
        t_ours, (_, table) = best_of(lambda: measures(session, "grid", since=since, until=until), 2)
        t_five, five = best_of(lambda: session.execute(sa.text(peers.FIVE), params).all(), 2)
        t_cases, cases = best_of(lambda: session.execute(sa.text(peers.ALL_CASES), params).all(), 2)
        t_steps, steps = best_of(lambda: session.execute(sa.text(steps_sql), params).all(), 2)
    engine.dispose()
    ours = {r["key"]: r for r in to_records(table)}
    wrong = [
        (row.grid_code, key, ours[row.grid_code][key], int(value or 0))
        for rows in (five, cases, steps)
        for row in rows
        for key, value in row._mapping.items()
        if key != "grid_code" and ours[row.grid_code][key] != int(value or 0)
    ]
    differ = {grid for grid, *_ in wrong}
    if wrong:  # which counts, and a few of them: (grid, count, gridmap's, the peer's)
        print(f"   counts that differ: {collections.Counter(k for _, k, *_ in wrong)}; e.g. {wrong[:5]}", flush=True)
    t_all = t_cases + t_steps
    print(
        f"   measures per grid, a year ({len(cases):,} grids): gridmap {t_ours:7.2f} s; the bare GROUP BY of the "
        f"case table's five counts {t_five:7.2f} s → {t_ours / t_five:.1f}× it; the bare SQL of all the same counts "
        f"(cases {t_cases:.2f} s + steps joined to their cases {t_steps:.2f} s) {t_all:7.2f} s → "
        f"{t_ours / t_all:.1f}× it (target ≤ 2× a bare GROUP BY of the same counts); counts "
        f"{'agree' if not differ else f'DIFFER for {len(differ)} grids'} ({load()})",
        flush=True,
    )


# the list by last update as a user of the database would write it without `case_activity` (and as gridmap read
# it before migration 0015): each case's latest history entry worked out, then sorted; every column of the cases,
# as gridmap reads them
LAST_UPDATE_PEER = (
    "SELECT c.* FROM case_file c WHERE {where} ORDER BY (SELECT max(e.at) FROM case_event e WHERE e.case_id = c.id) "
    "{order} NULLS LAST, c.id {order} LIMIT 50"
)


def bench_last_update(url: str, label: str) -> None:
    """The case list sorted by last update (`sort=updated_at`), first page of 50 (not counted) and the page after by
    cursor, newest and oldest change first, for the province, its largest district, that district's largest
    sub-district and a community and grid of it, and the dispatcher's "to verify" queue of the district (oldest
    change first, its default): through `gridmap.cases.queries.page_cases` (what the case list and queue routes
    call), beside the peer, the bare SQL that works out each case's latest history entry and sorts by it
    (LAST_UPDATE_PEER); the first pages are checked to hold the same cases. Reads only: runs on a read-only URL."""
    from gridmap.cases import queries

    engine = storage.make_engine(url)
    sqlite = engine.dialect.name == "sqlite"
    now = dt.datetime.combine(TODAY, dt.time(12), dt.UTC)
    with engine.connect() as conn:
        district = conn.scalar(
            sa.text("SELECT district_code FROM case_file GROUP BY district_code ORDER BY count(*) DESC LIMIT 1")
        )
        subdistrict = conn.scalar(
            sa.text(
                "SELECT subdistrict_code FROM case_file WHERE district_code = :d GROUP BY subdistrict_code "
                "ORDER BY count(*) DESC LIMIT 1"
            ),
            {"d": district},
        )
        community, grid = conn.execute(
            sa.text(
                "SELECT community_code, grid_code FROM case_file WHERE subdistrict_code = :s "
                "GROUP BY community_code, grid_code ORDER BY count(*) DESC LIMIT 1"
            ),
            {"s": subdistrict},
        ).one()
    lists = [
        ("province", queries.CaseFilter(), "TRUE" if not sqlite else "1", {}),
        (f"district {district}", queries.CaseFilter(area=district), "c.district_code = :a", {"a": district}),
        (
            f"sub-district {subdistrict}",
            queries.CaseFilter(area=subdistrict),
            "c.subdistrict_code = :a",
            {"a": subdistrict},
        ),
        (f"community {community}", queries.CaseFilter(area=community), "c.community_code = :a", {"a": community}),
        (f"grid {grid}", queries.CaseFilter(area=grid), "c.grid_code = :a", {"a": grid}),
    ]
    print(f"   case list by last update, first page of 50 and the next by cursor ({load()}):", flush=True)
    with storage.make_sessionmaker(engine)() as session:
        for name, base, where, params in lists:
            for order in ("desc", "asc"):
                f = dataclasses.replace(base, sort="updated_at", order=order)
                t = time.perf_counter()
                page = queries.page_cases(session, f, limit=50, count=False, now=now)
                first_ms = (time.perf_counter() - t) * 1000
                again_s, _ = best_of(lambda f=f: queries.page_cases(session, f, limit=50, count=False, now=now), 2)
                after = page.next_cursor
                next_s, _ = best_of(
                    lambda f=f, after=after: queries.page_cases(
                        session, f, limit=50, cursor=after, count=False, now=now
                    ),
                    2,
                )
                sql = sa.text(LAST_UPDATE_PEER.format(where=where, order=order.upper()))
                t = time.perf_counter()
                peer_ids = [r.id for r in session.execute(sql, params)]
                peer_ms = (time.perf_counter() - t) * 1000
                if peer_ms < 5_000:  # the peer's cache warm too: best of 3 where it is quick enough
                    peer_ms = min(
                        peer_ms, best_of(lambda sql=sql, p=params: session.execute(sql, p).all(), 2)[0] * 1000
                    )
                same = peer_ids == [c.id for c in page.rows]
                which = "newest" if order == "desc" else "oldest"
                print(
                    f"     {name}, {which} change first: gridmap {first_ms:8.1f} ms first call, {again_s * 1000:7.1f} "
                    f"ms again (next page {next_s * 1000:7.1f} ms) | bare SQL over the history {peer_ms:9.1f} ms → "
                    f"{peer_ms / (again_s * 1000):7.1f}× ({'same cases' if same else 'DIFFERENT CASES'}) ({load()})",
                    flush=True,
                )
        f = queries.CaseFilter(area=district, queue="verify", sort="updated_at", order="asc")
        t = time.perf_counter()
        page = queries.page_cases(session, f, limit=50, count=True, now=now)
        print(
            f"     queue 待核查 of {district} (oldest change first, counted: {page.total:,} cases): "
            f"{(time.perf_counter() - t) * 1000:9.1f} ms ({load()})",
            flush=True,
        )
    engine.dispose()


def bench_import(url: str, label: str, rows: int = 10_000) -> None:
    """A day's import, twice in one process: the first pays for what the locate index derives on first use (the
    leaves' boundaries and lists, as a server's first import after its start does), the second is the steady state
    of a server that has imported before."""
    from cases import export_rows

    from gridmap.boundaries.areas import load_index
    from gridmap.cases.hotline import import_export

    engine = storage.make_engine(url)
    factory = storage.make_sessionmaker(engine)
    with factory() as session:
        t = time.perf_counter()
        index = load_index(session)
        index.warm()  # as a server holds it (gridmap_api's reload_index)
        t_index = time.perf_counter() - t
    for run in ("first", "second"):
        prefix = f"SCALE{os.getpid()}{run[0].upper()}"
        with factory() as session:
            data = export_rows(session, rows, prefix)
        try:
            wall, cpu = time.perf_counter(), time.process_time()
            result = import_export(factory, index, data, "csv")
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            print(
                f"   a day's import ({run} in this process): {rows:,} hotline tickets in {wall:.1f} s = "
                f"{rows / wall:,.0f} rows/s wall, {rows / cpu:,.0f} rows/s of this process's CPU (target ≥ 2,000); "
                f"created {result['created']:,}; the locate index loaded and warmed first in {t_index:.1f} s "
                f"({load()})",
                flush=True,
            )
        finally:
            # back to what the generator made, even when stopped half way (Ctrl-C: the batches written so far):
            # the imported cases go again (their history and notifications first)
            delete_imported(factory, prefix)
    engine.dispose()


_DELETES = (
    ("notification", "DELETE FROM notification WHERE case_id IN (SELECT id FROM case_file WHERE {cases})"),
    ("case_event", "DELETE FROM case_event WHERE case_id IN (SELECT id FROM case_file WHERE {cases})"),
    ("case_file", "DELETE FROM case_file WHERE {cases}"),
)


def delete_imported(factory, prefix: str) -> dict[str, float]:
    """Delete the cases of the tickets numbered `prefix`…, their notifications and history first, in one
    transaction: seconds per statement."""
    took = {}
    with storage.session_scope(factory) as session:
        for table, sql in _DELETES:
            t = time.perf_counter()
            session.execute(sa.text(sql.format(cases="external_ref LIKE :p")), {"p": f"{prefix}%"})
            took[table] = time.perf_counter() - t
        t = time.perf_counter()
    took["commit"] = time.perf_counter() - t
    return took


def delete_imported_capped(factory, prefix: str, chunk: int, cap_s: float) -> tuple[int, float]:
    """`delete_imported` by runs of `chunk` cases (the same statements, each also bounded by an id range; a
    transaction per run), stopping after the run that passes `cap_s` seconds: (cases deleted, seconds)."""
    with factory() as session:
        ids = session.scalars(
            sa.text("SELECT id FROM case_file WHERE external_ref LIKE :p ORDER BY id"), {"p": f"{prefix}%"}
        ).all()
    done, started = 0, time.perf_counter()
    for k in range(0, len(ids), chunk):
        part = ids[k : k + chunk]
        with storage.session_scope(factory) as session:
            for _, sql in _DELETES:
                session.execute(
                    sa.text(sql.format(cases="external_ref LIKE :p AND id BETWEEN :lo AND :hi")),
                    {"p": f"{prefix}%", "lo": part[0], "hi": part[-1]},
                )
        done += len(part)
        if time.perf_counter() - started > cap_s:
            break
    return done, time.perf_counter() - started


def _to_revision(url: str, revision: str) -> float:
    """Bring the schema up or down to `revision`; seconds."""
    from alembic import command
    from alembic.config import Config

    engine = storage.make_engine(url)
    t = time.perf_counter()
    config = Config()
    config.set_main_option("script_location", str(storage._MIGRATIONS))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        if revision == "head":
            command.upgrade(config, "head")
        else:
            command.downgrade(config, revision)
    engine.dispose()
    return time.perf_counter() - t


def bench_delete(url: str, label: str, rows: int = 10_000, cap_s: float = 600.0) -> None:
    """Deleting `rows` imported cases at 0012 (no index on the referencing columns of 14 foreign keys, among them
    case_file.merged_into_id, notification.case_id and idempotency_key.case_id, which each deleted case is checked
    against) and at 0013, in one run; each time the tickets are imported first (not timed here). At 0012 the cases
    go by runs of 500 and the deletion stops after the run that passes `cap_s` (the rest is deleted after the
    upgrade, untimed): the rate, and the time it gives for all `rows`, are printed."""
    from cases import export_rows

    from gridmap.boundaries.areas import load_index
    from gridmap.cases.hotline import import_export

    engine = storage.make_engine(url)
    factory = storage.make_sessionmaker(engine)
    _to_revision(url, "head")
    with factory() as session:
        index = load_index(session)
    delete_imported(factory, "DEL")  # the leftovers of a run cut short
    print(f"   deleting {rows:,} imported cases (their notifications, history, then the cases) ({load()}):", flush=True)
    rates = {}
    for revision in ("0012", "head"):
        moved = _to_revision(url, revision)
        at = storage.schema_revision(engine)
        prefix = f"DEL{at}P{os.getpid()}"
        with factory() as session:
            data = export_rows(session, rows, prefix)
        created = import_export(factory, index, data, "csv")["created"]
        if revision == "head":
            took = delete_imported(factory, prefix)  # as the app does it: three statements, one transaction
            done, seconds = created, sum(took.values())
            detail = ", ".join(f"{k} {v:.2f} s" for k, v in took.items())
        else:
            done, seconds = delete_imported_capped(factory, prefix, 500, cap_s)
            detail = f"by runs of 500{'' if done == created else f', stopped after {cap_s:.0f} s'}"
        rates[at] = done / seconds
        print(
            f"     schema {at} (reached in {moved:5.1f} s): {done:,} of {created:,} cases deleted in {seconds:8.1f} s "
            f"= {rates[at]:8,.0f} cases/s → {rows / rates[at]:8.1f} s for {rows:,} ({detail}) ({load()})",
            flush=True,
        )
    _to_revision(url, "head")
    delete_imported(factory, "DEL")
    before, after = rates.get("0012"), rates.get(storage.schema_revision(engine))
    if before and after:
        print(f"     with the foreign keys indexed: {after / before:,.0f}× the rate at 0012")
    engine.dispose()


# --- over HTTP -------------------------------------------------------------------------------------------------


def start_server(url: str, workers: int = 2, checkout: str | None = None) -> tuple[str, subprocess.Popen, int]:
    """`gridmap serve` on a free port (`checkout`: another checkout's code, e.g. a worktree of an earlier commit)."""
    import socket
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "GRIDMAP_DATABASE_URL": url}
    if checkout:
        env["PYTHONPATH"] = os.pathsep.join([checkout, f"{checkout}/api", f"{checkout}/web"])
    proc = subprocess.Popen(
        [GM, "--database", url, "serve", "--port", str(port), "--workers", str(workers)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(1200):
        try:
            urllib.request.urlopen(base + "/login", timeout=5)
            return base, proc, port
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise SystemExit("the server did not start")


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()


def bench_http(
    url: str,
    label: str,
    rate: float,
    seconds: float,
    skip: set[str],
    map_user: str = "demo-dispatcher",
    map_runs: int = 3,
) -> None:
    import httpx
    from locate import _load

    from gridmap.demo.accounts import DEMO_PASSWORD

    t = time.perf_counter()
    base, proc, port = start_server(url)
    started = time.perf_counter() - t
    try:
        token = httpx.post(
            f"{base}/api/v1/auth/token", data={"username": "demo-dispatcher", "password": DEMO_PASSWORD}, timeout=60
        )
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        admin = httpx.post(
            f"{base}/api/v1/auth/token", data={"username": "demo-admin", "password": DEMO_PASSWORD}, timeout=60
        )
        admin_headers = {"Authorization": f"Bearer {admin.json()['access_token']}"}
        print(f"   gridmap serve --workers 2 answering after {started:.1f} s ({load()})", flush=True)
        client = httpx.Client(base_url=base, headers=admin_headers, timeout=300)
        districts = client.get("/api/v1/map/areas", params={"level": "district", "zoom": 8}).json()["features"]
        lon, lat = districts[0]["properties"]["label"]
        if "locate" not in skip:
            import shapely
            from shapely.geometry import shape

            rng = np.random.default_rng(5)
            geom = shape(districts[0]["geometry"])
            minx, miny, maxx, maxy = geom.bounds
            xs, ys = rng.uniform(minx, maxx, 4 * int(rate * seconds)), rng.uniform(miny, maxy, 4 * int(rate * seconds))
            inside = shapely.contains_xy(geom, xs, ys)
            params = [{"lon": round(float(x), 7), "lat": round(float(y), 7)} for x, y in zip(xs[inside], ys[inside])][
                : int(rate * seconds)
            ]
            lat_s, took = _load(port, params, rate, headers)
            print(
                f"   locate over HTTP: {len(params):,} requests at {rate:.0f}/s in {took:.1f} s: p50 "
                f"{np.nanpercentile(lat_s, 50) * 1000:.1f} ms, p99 {np.nanpercentile(lat_s, 99) * 1000:.1f} ms, max "
                f"{np.nanmax(lat_s) * 1000:.0f} ms of {int(np.isfinite(lat_s).sum()):,} answered "
                f"({int(np.isnan(lat_s).sum()):,} not: a connection reset) (client and 2 workers share the cores; "
                f"{load()})",
                flush=True,
            )
        if "tiles" not in skip:
            bench_tiles(client, (lon, lat))
        if "paging" not in skip:
            bench_paging(client, url)
        if "map" not in skip:
            bench_map(base, map_user, steps="map-steps" not in skip, runs=map_runs)
    finally:
        stop_server(proc)


SCOPED_USERS = (
    ("demo-admin", None, "the province (admin)"),
    ("demo-dispatcher", "district", "a district (its dispatcher)"),
    ("demo-dispatcher-1", "subdistrict", "a sub-district (its dispatcher)"),
    ("demo-manager", "community", "a community (its grid manager)"),
)


def bench_scoped_lists(url: str, baseline: str | None = None, rounds: int = 2) -> None:
    """The first page of the case list as each account opens it (newest first, 50, counted: the total is shown
    above the list), over HTTP from `gridmap serve --workers 2`: three requests each, and once with `count=false`,
    for the admin (the province), a district's and a sub-district's dispatcher and a community's manager; beside
    the bare SQL a user would write for the same page: the count of the area's cases by its code, and the 50 newest.
    The totals are checked equal to the bare count. With `baseline` (a checkout of an earlier commit), its server
    and this one are run in turn, `rounds` times each."""
    import httpx

    from gridmap.demo.accounts import DEMO_PASSWORD

    engine = storage.make_engine(url)
    with storage.make_sessionmaker(engine)() as session:
        from gridmap.store.tables import Account

        areas = {
            a.username: (a.areas[0].area_code if a.areas else None)
            for a in session.query(Account).where(Account.username.in_([u for u, _, _ in SCOPED_USERS]))
        }
    peers: dict[str, tuple[int, float, float]] = {}
    print(f"   first page of the case list as each account opens it, bare SQL beside ({load()}):", flush=True)
    with engine.connect() as conn:
        for user, level, what in SCOPED_USERS:
            where = f"{level}_code = :a" if level else "TRUE"
            params = {"a": areas[user]} if level else {}
            runs = []
            for _ in range(2):
                t = time.perf_counter()
                total = conn.scalar(sa.text(f"SELECT count(*) FROM case_file WHERE {where}"), params)
                counted = time.perf_counter() - t
                t = time.perf_counter()
                conn.execute(
                    sa.text(f"SELECT * FROM case_file WHERE {where} ORDER BY reported_at DESC, id DESC LIMIT 50"),
                    params,
                ).all()
                runs.append((counted, time.perf_counter() - t))
            peers[user] = (total, min(r[0] for r in runs) * 1000, min(r[1] for r in runs) * 1000)
            print(
                f"     bare SQL, {what} {areas[user] or ''}: count {total:,} in {peers[user][1]:8.1f} ms, "
                f"the 50 newest in {peers[user][2]:7.1f} ms",
                flush=True,
            )
    engine.dispose()
    checkouts = [("this checkout", None)] + ([(f"baseline {baseline}", baseline)] if baseline else [])
    for n in range(rounds):
        for name, checkout in checkouts:
            base, proc, _ = start_server(url, checkout=checkout)
            try:
                print(f"   round {n + 1}, {name}: gridmap serve --workers 2 ({load()})", flush=True)
                for user, _, what in SCOPED_USERS:
                    token = httpx.post(
                        f"{base}/api/v1/auth/token", data={"username": user, "password": DEMO_PASSWORD}, timeout=120
                    ).json()["access_token"]
                    client = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=300)
                    times, totals = [], set()
                    for _ in range(3):
                        t = time.perf_counter()
                        r = client.get("/api/v1/cases", params={"limit": PAGE})
                        times.append((time.perf_counter() - t) * 1000)
                        if r.status_code != 200:
                            raise SystemExit(f"{user}: answered {r.status_code}: {r.text[:300]}")
                        totals.add(r.json()["total"])
                    t = time.perf_counter()
                    client.get("/api/v1/cases", params={"limit": PAGE, "count": "false"}).raise_for_status()
                    uncounted = (time.perf_counter() - t) * 1000
                    client.close()
                    total, count_ms, page_ms = peers[user]
                    agree = (
                        "total = bare count" if totals == {total} else f"TOTALS DIFFER {sorted(totals)} vs {total:,}"
                    )
                    print(
                        f"     {what}: counted {', '.join(f'{x:,.0f}' for x in times)} ms (not counted "
                        f"{uncounted:,.0f} ms) | bare SQL {count_ms + page_ms:,.0f} ms → "
                        f"{(count_ms + page_ms) / statistics.median(times):.2f}× ({agree}) ({load()})",
                        flush=True,
                    )
            finally:
                stop_server(proc)


def bench_steps(url: str, baseline: str | None = None, rounds: int = 2, dispatchers: int = 20, each: int = 5) -> None:
    """Dispatchers working at once (over HTTP, `gridmap serve --workers 2`): each of `dispatchers` threads, signed
    in as the district's dispatcher, opens a case of its own and urges it (催办, with the version it saw), `each`
    cases in turn; every answer's time, any answer that is not 200, and, on PostgreSQL, the most locks the
    server's backends held at once (pg_locks sampled every 20 ms). The cases are open cases of the district, from
    as many months as it has. With `baseline` (a checkout of an earlier commit), its server and this one are run in
    turn. Each urge adds a history entry and a notification to the database."""
    from gridmap.store.tables import Account, Case

    engine = storage.make_engine(url)
    with storage.make_sessionmaker(engine)() as session:
        account = session.scalars(sa.select(Account).where(Account.username == "demo-dispatcher")).one()
        district = account.areas[0].area_code
        rows = session.execute(
            sa.select(Case.id, Case.reported_at)
            .where(Case.district_code == district, Case.state.in_(("dispatched", "accepted", "rework")))
            .order_by(Case.id)
            .limit(20_000)
        ).all()
    by_month: dict[str, list[int]] = collections.defaultdict(list)
    for case_id, reported_at in rows:
        by_month[f"{reported_at:%Y%m}"].append(case_id)
    months = sorted(by_month)
    wanted = dispatchers * each * rounds * (2 if baseline else 1)
    picked: list[int] = []
    while len(picked) < wanted and any(by_month.values()):
        for m in months:
            if by_month[m] and len(picked) < wanted:
                picked.append(by_month[m].pop())
    print(
        f"   dispatchers at work: {dispatchers} at once, {each} cases each (open and urge), {len(picked):,} open "
        f"cases of {district} from {len(months)} months ({load()})",
        flush=True,
    )
    checkouts = [("this checkout", None)] + ([(f"baseline {baseline}", baseline)] if baseline else [])
    for n in range(rounds):
        for name, checkout in checkouts:
            batch, picked = picked[: dispatchers * each], picked[dispatchers * each :]
            if not batch:
                print("     no open cases left", flush=True)
                return
            base, proc, _ = start_server(url, checkout=checkout)
            try:
                print(f"   round {n + 1}, {name}: {_steps_round(engine, base, batch, dispatchers)}", flush=True)
            finally:
                stop_server(proc)
    engine.dispose()


def _steps_round(engine: sa.Engine, base: str, batch: list[int], dispatchers: int) -> str:
    """One round of `bench_steps` against the server at `base`: what it measured, as a line."""
    import threading

    import httpx

    from gridmap.demo.accounts import DEMO_PASSWORD

    postgres = engine.dialect.name == "postgresql"
    peak = {"locks": 0, "backend": 0}
    stop = threading.Event()

    def sample() -> None:
        with engine.connect() as conn:
            while not stop.is_set():
                counts = (
                    conn.execute(
                        sa.text(
                            "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                            "WHERE a.datname = current_database() AND l.pid <> pg_backend_pid() GROUP BY l.pid"
                        )
                    )
                    .scalars()
                    .all()
                )
                conn.rollback()
                peak["locks"] = max(peak["locks"], sum(counts))
                peak["backend"] = max([peak["backend"], *counts])
                time.sleep(0.02)

    token = httpx.post(
        f"{base}/api/v1/auth/token", data={"username": "demo-dispatcher", "password": DEMO_PASSWORD}, timeout=120
    ).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    opened: list[float] = []
    urged: list[float] = []
    refused: collections.Counter[str] = collections.Counter()
    start = threading.Barrier(dispatchers)

    def work(cases: list[int]) -> None:
        with httpx.Client(base_url=base, headers=headers, timeout=300) as client:
            start.wait()
            for case_id in cases:
                t = time.perf_counter()
                r = client.get(f"/api/v1/cases/{case_id}")
                opened.append(time.perf_counter() - t)
                if r.status_code != 200:
                    refused[f"open {r.status_code}"] += 1
                    continue
                t = time.perf_counter()
                r = client.post(
                    f"/api/v1/cases/{case_id}/actions/urge",
                    json={"note": "请加快办理"},
                    headers={"If-Match": f'"{r.json()["version"]}"'},
                )
                urged.append(time.perf_counter() - t)
                if r.status_code != 200:
                    refused[f"urge {r.status_code}: {r.text[:80]}"] += 1

    sampler = threading.Thread(target=sample, daemon=True)
    if postgres:
        sampler.start()
    threads = [threading.Thread(target=work, args=(batch[i::dispatchers],)) for i in range(dispatchers)]
    t = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    took = time.perf_counter() - t
    stop.set()
    if postgres:
        sampler.join()

    def pct(xs: list[float], q: float) -> str:
        return f"{np.percentile(xs, q) * 1000:,.0f}" if xs else "-"

    locks = f"; most locks held at once {peak['locks']:,}, by one backend {peak['backend']:,}" if postgres else ""
    return (
        f"{len(urged):,} urges in {took:.1f} s ({len(urged) / took:.1f}/s); open p50 {pct(opened, 50)} p95 "
        f"{pct(opened, 95)} ms, urge p50 {pct(urged, 50)} p95 {pct(urged, 95)} max {pct(urged, 100)} ms; refused "
        f"{dict(refused) or 0}{locks} ({load()})"
    )


# the series over HTTP: asked for this many times by each account, once the server has answered its first request
# and had this long for its start-up's warm-up (a server in use, not one just started)
SERIES_REQUESTS = 6
SERIES_WAIT_S = 10.0


def bench_series(url: str, baseline: str | None = None) -> None:
    """The 12-month series of each account's own area (`GET /api/v1/areas/{code}/series`, the overview's chart),
    over HTTP (`gridmap serve --workers 2`), SERIES_REQUESTS requests each from SERIES_WAIT_S after the start: the
    admin's first district, a district's and a sub-district's dispatcher's and a community's manager's; beside the
    bare SQL of what was its largest part before migration 0018, the steps of the area's cases in the 12 months
    (`count(*)` of case_event joined to the area's cases by grid code), and the simplest query a user would write
    for one of its twenty figures, the cases received by month (`GROUP BY date_trunc('month', …)` over the area's
    grid-code prefix). With `baseline` (another checkout), its server answers the same requests first, then this
    checkout's."""
    for checkout in [baseline, None] if baseline else [None]:
        if checkout:
            print(f"   -- the server of {checkout}:", flush=True)
        _bench_series(url, checkout)


def _bench_series(url: str, checkout: str | None) -> None:
    import httpx

    from gridmap.demo.accounts import DEMO_PASSWORD
    from gridmap.store.tables import Account, Area

    engine = storage.make_engine(url)
    with storage.make_sessionmaker(engine)() as session:
        areas = {
            a.username: (a.areas[0].area_code if a.areas else None)
            for a in session.query(Account).where(Account.username.in_([u for u, _, _ in SCOPED_USERS]))
        }
        first = session.scalar(sa.select(Area.code).where(Area.level == "district").order_by(Area.code).limit(1))
    areas["demo-admin"] = first
    print(f"   the 12-month series of each account's area, bare SQL of its steps beside ({load()}):", flush=True)
    base, proc, _ = start_server(url, checkout=checkout)
    time.sleep(SERIES_WAIT_S)
    try:
        for user, _, what in SCOPED_USERS:
            code = areas[user]
            token = httpx.post(
                f"{base}/api/v1/auth/token", data={"username": user, "password": DEMO_PASSWORD}, timeout=120
            ).json()["access_token"]
            with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=900) as client:
                times = []
                for _ in range(SERIES_REQUESTS):
                    t = time.perf_counter()
                    client.get(f"/api/v1/areas/{code}/series", params={"months": 12}).raise_for_status()
                    times.append(time.perf_counter() - t)
            with engine.connect() as conn:
                t = time.perf_counter()
                year_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=365)
                steps = conn.scalar(
                    sa.text(
                        "SELECT count(*) FROM case_event e JOIN case_file c ON c.id = e.case_id "
                        "WHERE c.grid_code >= :lo AND c.grid_code < :hi AND e.action IN ('handle', 'rate', 'bounce') "
                        "AND e.at >= :since"
                    ).bindparams(sa.bindparam("since", type_=sa.DateTime(timezone=True))),
                    {"lo": code, "hi": str(int(code) + 1).zfill(len(code)), "since": year_ago},
                )
                bare = time.perf_counter() - t
                t = time.perf_counter()
                month = (
                    "date_trunc('month', reported_at AT TIME ZONE 'Asia/Shanghai')"
                    if conn.dialect.name == "postgresql"
                    else "strftime('%Y-%m', reported_at, '+8 hours')"
                )
                received = conn.execute(
                    sa.text(
                        f"SELECT {month} AS m, count(*) FROM case_file WHERE grid_code LIKE :prefix "
                        "AND reported_at >= :since GROUP BY 1"
                    ).bindparams(sa.bindparam("since", type_=sa.DateTime(timezone=True))),
                    {"prefix": f"{code}%", "since": year_ago},
                ).all()
                by_month = time.perf_counter() - t
            print(
                f"     {what} {code}: {', '.join(f'{x:,.2f}' for x in times)} s | bare SQL of the steps ({steps:,}) "
                f"{bare:,.2f} s; of the cases received by month ({len(received)} months) {by_month:,.2f} s "
                f"({load()})",
                flush=True,
            )
    finally:
        stop_server(proc)
    engine.dispose()


def bench_queues(url: str, baseline: str | None = None, rounds: int = 1) -> None:
    """The dispatcher's console as each account polls it, over HTTP (`gridmap serve --workers 2`): the counts of
    its six queues (`GET /api/v1/queues`) and its overdue list's first counted page (`GET
    /api/v1/cases?state=overdue&limit=50`), four requests each (a worker's first answer among them), beside the
    bare SQL a user would write for the largest of the counts, the account's cases not finished, not suspended and
    due before now (`count(*)` with `state NOT IN …`), run once in process. With `baseline` (a checkout of an
    earlier commit), its server and this one are run in turn, `rounds` times each (two when a baseline is given)."""
    import httpx

    from gridmap.demo.accounts import DEMO_PASSWORD
    from gridmap.store.tables import Account

    engine = storage.make_engine(url)
    with storage.make_sessionmaker(engine)() as session:
        areas = {
            a.username: (a.areas[0].area_code if a.areas else None)
            for a in session.query(Account).where(Account.username.in_([u for u, _, _ in SCOPED_USERS]))
        }
    print(f"   the console's queue counts and overdue list of each account ({load()}):", flush=True)
    checkouts = [("this checkout", None)] + ([(f"baseline {baseline}", baseline)] if baseline else [])
    for n in range(max(rounds, 2 if baseline else 1)):
        for name, checkout in checkouts:
            base, proc, _ = start_server(url, checkout=checkout)
            try:
                print(f"   round {n + 1}, {name}: gridmap serve --workers 2 ({load()})", flush=True)
                for user, level, what in SCOPED_USERS:
                    token = httpx.post(
                        f"{base}/api/v1/auth/token", data={"username": user, "password": DEMO_PASSWORD}, timeout=120
                    ).json()["access_token"]
                    times: dict[str, list[float]] = {"queues": [], "overdue": []}
                    headers = {"Authorization": f"Bearer {token}"}
                    with httpx.Client(base_url=base, headers=headers, timeout=900) as client:
                        for _ in range(4):
                            for part, path in (
                                ("queues", "/api/v1/queues"),
                                ("overdue", "/api/v1/cases?state=overdue&limit=50"),
                            ):
                                t = time.perf_counter()
                                client.get(path).raise_for_status()
                                times[part].append(time.perf_counter() - t)
                    scope = f"AND {level}_code = :code" if level else ""
                    with engine.connect() as conn:
                        t = time.perf_counter()
                        overdue = conn.scalar(
                            sa.text(
                                "SELECT count(*) FROM case_file WHERE state NOT IN ('closed', 'rejected', 'voided', "
                                f"'merged', 'suspended') AND due_at < :now {scope}"
                            ).bindparams(sa.bindparam("now", type_=sa.DateTime(timezone=True))),
                            {"code": areas.get(user), "now": dt.datetime.now(dt.UTC)},
                        )
                        bare = time.perf_counter() - t
                    print(
                        f"     {what}: queues {', '.join(f'{x * 1000:,.0f}' for x in times['queues'])} ms | overdue "
                        f"list {', '.join(f'{x * 1000:,.0f}' for x in times['overdue'])} ms | bare count of the "
                        f"overdue ({overdue:,}) {bare * 1000:,.0f} ms ({load()})",
                        flush=True,
                    )
            finally:
                stop_server(proc)
    engine.dispose()


def bench_search(url: str) -> None:
    """The map's search box as each account types into it (over HTTP, `gridmap serve --workers 2`): a whole case
    number, its first 12 characters, `RX2026`, `RX`, and two Chinese words (no number starts so); two requests
    each, beside the bare SQL a user would write for the cases (`number LIKE 'text%' ORDER BY number LIMIT 10`,
    the search's query before migration 0017) run once in process for the province."""
    import httpx

    from gridmap.demo.accounts import DEMO_PASSWORD

    engine = storage.make_engine(url)
    with engine.connect() as conn:
        number = conn.scalar(sa.text("SELECT number FROM case_file ORDER BY id DESC LIMIT 1"))
        texts = [number, number[:12], "RX2026", "RX", "违章", "官渡"]
        print(f"   the search box, bare SQL beside ({load()}):", flush=True)
        for text in texts[:4]:
            t = time.perf_counter()
            conn.execute(
                sa.text("SELECT id FROM case_file WHERE number LIKE :p ORDER BY number LIMIT 10"), {"p": text + "%"}
            ).all()
            print(f"     bare SQL, LIKE '{text}%': {(time.perf_counter() - t) * 1000:,.0f} ms", flush=True)
    engine.dispose()
    base, proc, _ = start_server(url)
    try:
        for user, _, what in SCOPED_USERS:
            token = httpx.post(
                f"{base}/api/v1/auth/token", data={"username": user, "password": DEMO_PASSWORD}, timeout=120
            ).json()["access_token"]
            with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=300) as client:
                shown = []
                for text in texts:
                    times = []
                    for _ in range(2):
                        t = time.perf_counter()
                        r = client.get("/api/v1/search", params={"q": text, "limit": 10})
                        times.append((time.perf_counter() - t) * 1000)
                        r.raise_for_status()
                    cases = sum(item["kind"] == "case" for item in r.json()["items"])
                    shown.append(f"{text!r} {min(times):,.0f}/{max(times):,.0f} ms ({cases} cases)")
                print(f"     {what}: {'; '.join(shown)} ({load()})", flush=True)
    finally:
        stop_server(proc)


def bench_tiles(client, centre: tuple[float, float]) -> None:
    from tiles import pct, view

    views = [
        ("district", 9),
        ("subdistrict", 11),
        ("community", 12),
        ("grid", 13),
        ("microgrid", 14),
        ("cases", 13),
        ("cases", 15),
    ]
    cold_all, warm_all = [], []
    print(f"   tiles of a 1440×900 screen on the first district, beside that view's GeoJSON ({load()}):")
    for layer, z in views:
        bbox, tiles = view(centre, z)
        if layer == "cases":
            geo_url, geo_params = "/api/v1/map/cases", {"bbox": bbox}
        else:
            geo_url, geo_params = "/api/v1/map/areas", {"level": layer, "zoom": z, "bbox": bbox}
        t = time.perf_counter()
        r = client.get(geo_url, params=geo_params)
        geo_ms = (time.perf_counter() - t) * 1000
        geo_note = (
            f"{geo_ms:8.1f} ms {len(r.content) / 1024:8.0f} KiB"
            if r.status_code == 200
            else f"answered {r.status_code}"
        )
        cold, warm = [], []
        for z_, x, y in tiles:
            for bucket in (cold, warm):
                t = time.perf_counter()
                r = client.get(f"/api/v1/tiles/{layer}/{z_}/{x}/{y}.mvt")
                bucket.append((time.perf_counter() - t) * 1000)
                assert r.status_code in (200, 204), (layer, z_, x, y, r.status_code, r.text[:200])
        cold_all += cold
        warm_all += warm
        print(
            f"     {layer:11} z{z:<2} {len(tiles):3} tiles: cold p50 {pct(cold, 50):7.1f} p95 {pct(cold, 95):7.1f} ms,"
            f" warm p95 {pct(warm, 95):6.1f} ms | GeoJSON {geo_note}",
            flush=True,
        )
    print(f"     all views: cold p95 {pct(cold_all, 95):.1f} ms, warm p95 {pct(warm_all, 95):.1f} ms")


PAGE = 50
DEEP = 1_000  # the page measured deep into a list


def _timed_get(client, path: str, params: dict, reps: int = 3) -> tuple[float, dict]:
    """The median of `reps` requests (ms) and the last answer."""
    times, body = [], {}
    for _ in range(reps):
        t = time.perf_counter()
        r = client.get(path, params=params)
        times.append((time.perf_counter() - t) * 1000)
        if r.status_code != 200:
            raise SystemExit(f"{path} {params}: answered {r.status_code}: {r.text[:300]}")
        body = r.json()
    return statistics.median(times), body


def bench_paging(client, url: str) -> None:
    month = (dt.datetime(2026, 6, 1, tzinfo=dt.timezone(dt.timedelta(hours=8))).isoformat(),
             dt.datetime(2026, 7, 1, tzinfo=dt.timezone(dt.timedelta(hours=8))).isoformat())  # fmt: skip
    lists = [
        ("case list, newest first", "/api/v1/cases", {}),
        ("case list by deadline", "/api/v1/cases", {"sort": "deadline", "order": "asc"}),
        ("case list by last update", "/api/v1/cases", {"sort": "updated_at", "order": "desc"}),
        ("June, newest first", "/api/v1/cases", {"since": month[0], "until": month[1]}),
        ("queue 已派遣 (by deadline)", "/api/v1/queues/dispatched", {}),
    ]
    print(f"   paging, {PAGE} a page, median of 3 requests over HTTP ({load()}):")
    for label, path, params in lists:
        first_ms, first = _timed_get(client, path, {**params, "limit": PAGE})
        total = first["total"]
        print(f"     {label}: {total:,} cases; first page (counted) {first_ms:8.1f} ms", flush=True)
        last_page = max((total - 1) // PAGE, 1)
        for name, page in ((f"page {DEEP:,}", min(DEEP - 1, last_page)), ("last page", last_page)):
            offset = page * PAGE
            by_offset_ms, by_offset = _timed_get(client, path, {**params, "limit": PAGE, "offset": offset})
            uncounted_ms, _ = _timed_get(client, path, {**params, "limit": PAGE, "offset": offset, "count": "false"})
            before = client.get(path, params={**params, "limit": PAGE, "offset": offset - PAGE}).json()
            by_cursor_ms, by_cursor = _timed_get(
                client, path, {**params, "limit": PAGE, "cursor": before["next_cursor"]}
            )
            same = [c["id"] for c in by_offset["items"]] == [c["id"] for c in by_cursor["items"]]
            print(
                f"       {name:>10} (offset {offset:>9,}): by offset {by_offset_ms:8.1f} ms (not counted "
                f"{uncounted_ms:8.1f} ms) | by cursor {by_cursor_ms:7.1f} ms → {by_offset_ms / by_cursor_ms:6.1f}× "
                f"({'same cases' if same else 'DIFFERENT CASES'}) ({load()})",
                flush=True,
            )
    engine = storage.make_engine(url)
    with engine.connect() as conn:
        total = conn.scalar(sa.text("SELECT count(*) FROM case_file"))
        print(f"     bare SQL, newest first, {total:,} cases:")
        for offset in sorted({(DEEP - 1) * PAGE, max(total - PAGE, 0)}):
            t = time.perf_counter()
            conn.execute(
                sa.text("SELECT id, reported_at FROM case_file ORDER BY reported_at DESC, id DESC LIMIT 50 OFFSET :o"),
                {"o": offset},
            ).all()
            sql_ms = (time.perf_counter() - t) * 1000
            r, i = conn.execute(
                sa.text("SELECT reported_at, id FROM case_file ORDER BY reported_at DESC, id DESC LIMIT 1 OFFSET :o"),
                {"o": max(offset - 1, 0)},
            ).one()
            t = time.perf_counter()
            conn.execute(
                sa.text(
                    "SELECT id, reported_at FROM case_file WHERE reported_at <= :r AND (reported_at < :r OR id < :i) "
                    "ORDER BY reported_at DESC, id DESC LIMIT 50"
                ),
                {"r": r, "i": i},
            ).all()
            keyset_ms = (time.perf_counter() - t) * 1000
            print(f"       offset {offset:>9,}: LIMIT/OFFSET {sql_ms:8.1f} ms | keyset {keyset_ms:6.1f} ms", flush=True)
    engine.dispose()


# what one screen of the map fetched: every request after the page's own, as the browser saw it
RESOURCES_JS = """performance.getEntriesByType('resource').map(e => ({
  path: e.name.replace(location.origin, ''), kib: e.transferSize / 1024, body_kib: e.decodedBodySize / 1024,
  wait_ms: e.responseStart - e.requestStart, ms: e.duration, start_ms: e.startTime}))"""
# a level is drawn when its GeoJSON features are on the map or, where it comes as vector tiles, when the tiles of
# the view are loaded (the same test before and after the page learnt to mark it)
DRAWN_JS = """(() => {{ const lv = GridmapPage.areas.levels.{level}, d = document.body.dataset;
  if (Number(d.gmLevel_{level}) > 0) {{ return 'GeoJSON ' + d.gmLevel_{level}; }}
  const t = lv.tiles; if (t && GridmapPage.map.hasLayer(t) && !t.isLoading() && Object.keys(t._tiles).length) {{
    return 'tiles ' + Object.keys(t._tiles).length; }}
  return ''; }})()"""
ZOOM_STEPS = (("grid", 12), ("microgrid", 14))
STEP_CAP_S = 120


def zoom_step(page, level: str, zoom: int) -> tuple[float | None, str, int]:
    """Switch a level on and zoom to `zoom` at the label point of the first district shown (the district's middle;
    the view's centre on a phone can lie outside it): (ms until drawn and nothing in flight, or None after
    STEP_CAP_S; how it was drawn; bytes fetched by the step)."""
    from map import transferred

    from tests.e2e.conftest import wait_idle, wait_js

    before = transferred(page)
    started = time.perf_counter()
    page.evaluate(
        f"() => {{ const m = GridmapPage.map, first = GridmapPage.areas.levels.district.layer.getLayers()[0];"
        f" GridmapPage.areas.levels.{level}.layer.addTo(m);"
        f" m.setView(GridmapPage.core.point(first.feature.properties.label), {zoom}, {{animate: false}}); }}"
    )
    try:
        how = wait_js(page, DRAWN_JS.format(level=level), STEP_CAP_S)
        wait_idle(page, STEP_CAP_S)
        how = page.evaluate(DRAWN_JS.format(level=level)) or how
    except AssertionError:
        return None, f"not drawn after {STEP_CAP_S} s", transferred(page) - before
    return (time.perf_counter() - started) * 1000, how, transferred(page) - before


def first_screen(browser, base: str, cookies: list[dict], phone: bool = False, steps: bool = True) -> dict:
    """The overview's first screen in a cold context, at 1440×900 or at 390×844 with touch (a phone): painted
    (district, sub-districts and the month's cases drawn), ready (nothing in flight), first contentful paint,
    bytes, the browser's scripting and task time (Chrome DevTools Protocol), and every request; then, with
    `steps`, the zoom to grids (z12) and to micro-grids (z14) in the district's middle, each capped at STEP_CAP_S."""
    from map import transferred

    from tests.e2e.conftest import wait_idle, wait_js

    if phone:
        context = browser.new_context(
            viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True, device_scale_factor=3
        )
    else:
        context = browser.new_context(viewport={"width": 1440, "height": 900})
    context.add_cookies(cookies)
    page = context.new_page()
    cdp = context.new_cdp_session(page)
    cdp.send("Performance.enable")
    started = time.perf_counter()
    page.goto(base + "/")
    wait_js(page, "document.body.dataset.gmCases !== undefined && document.body.dataset.gmLevel_subdistrict", 300)
    painted = (time.perf_counter() - started) * 1000
    page.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
    wait_idle(page, 300)
    ready = (time.perf_counter() - started) * 1000
    metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
    out = {
        "painted_ms": painted,
        "ready_ms": ready,
        "fcp_ms": page.evaluate("(performance.getEntriesByName('first-contentful-paint')[0] || {}).startTime"),
        "bytes": transferred(page),
        "script_ms": metrics.get("ScriptDuration", 0) * 1000,
        "task_ms": metrics.get("TaskDuration", 0) * 1000,
        "requests": page.evaluate(RESOURCES_JS),
        "zoom": page.evaluate("GridmapPage.map.getZoom()"),
    }
    if steps:
        for level, zoom in ZOOM_STEPS:
            out[f"{level}_ms"], out[f"{level}_how"], out[f"{level}_bytes"] = zoom_step(page, level, zoom)
    context.close()
    return out


def _med(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] or 0 for r in runs)


def bench_map(base: str, username: str = "demo-dispatcher", steps: bool = True, runs: int = 3) -> None:
    try:
        from map import session_cookies
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        print(f"   map first screen: not measured ({exc})")
        return
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        try:
            cookies = session_cookies(browser, base, username)
            # the first two screens after the server started (its two workers each build what they keep)
            fresh = [first_screen(browser, base, cookies, steps=False) for _ in range(2)]
            screens = {
                phone: [first_screen(browser, base, cookies, phone, steps) for _ in range(runs)]
                for phone in (False, True)
            }
        finally:
            browser.close()
    print(
        "   map first screen on a freshly started server, 1440×900, two runs: ready "
        + ", ".join(f"{r['ready_ms']:.0f} ms" for r in fresh)
        + f" ({load()})"
    )
    for i, run in enumerate(fresh, 1):
        _print_requests(f"fresh run {i}", run["requests"])
    for phone, runs in screens.items():
        view = "390×844 touch" if phone else "1440×900"
        painted, ready, fcp = _med(runs, "painted_ms"), _med(runs, "ready_ms"), _med(runs, "fcp_ms")
        kib, script, task = _med(runs, "bytes") / 1024, _med(runs, "script_ms"), _med(runs, "task_ms")
        print(
            f"   map first screen as {username} ({view}, Chromium, cold context, median of {len(runs)}): painted "
            f"{painted:.0f} ms, ready {ready:.0f} ms (target < 2,000), FCP {fcp:.0f} ms, {kib:.0f} KiB, scripting "
            f"{script:.0f} ms (tasks {task:.0f} ms), at z{runs[0]['zoom']} ({load()})",
            flush=True,
        )
        for level, zoom in ZOOM_STEPS if steps else ():
            times = [r[f"{level}_ms"] for r in runs]
            done = [t for t in times if t is not None]
            print(
                f"     then {level} at z{zoom}: "
                + (
                    f"{statistics.median(done):.0f} ms"
                    if len(done) == len(times)
                    else f"{len(times) - len(done)} of "
                    f"{len(times)} runs not drawn within {STEP_CAP_S} s"
                    + (f" (others {statistics.median(done):.0f} ms)" if done else "")
                )
                + f", {statistics.median(r[f'{level}_bytes'] for r in runs) / 1024:.0f} KiB"
                f" ({', '.join(sorted({str(r[f'{level}_how']) for r in runs}))})",
                flush=True,
            )
        _print_requests("the last run", runs[-1]["requests"])


ALL_REQUESTS = False  # --all-requests: print the small static files of a screen too


def _print_requests(which: str, requests: list[dict]) -> None:
    print(f"     requests of {which} ({len(requests)}): start, waiting for the server, total, KiB on the wire")
    for r in sorted(requests, key=lambda r: r["start_ms"]):
        if r["path"].startswith("/static/") and r["kib"] < 50 and not ALL_REQUESTS:
            continue
        print(
            f"       {r['start_ms']:7.0f} {r['wait_ms']:7.0f} {r['ms']:7.0f} ms {r['kib']:8.1f} KiB"
            f" ({r['body_kib']:8.1f} KiB JSON)  {r['path'][:110]}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--districts", type=int, default=16)
    parser.add_argument("--microgrids", type=int, default=200_000)
    parser.add_argument("--cases", type=int, default=10_000_000)
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--rate", type=float, default=200.0, help="locate requests per second over HTTP")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--only", choices=("sqlite", "postgis"))
    parser.add_argument(
        "--skip",
        default="",
        help="comma-separated: locate-file,measures,last-update,scoped,steps,search,series,queues,import,delete,http,"
        "locate,"
        "tiles,paging,map,map-steps",
    )
    parser.add_argument("--keep", action="store_true", help="keep the PostgreSQL database for a later run")
    parser.add_argument("--delete-cap", type=float, default=600.0, help="seconds of deleting at schema 0012")
    parser.add_argument("--sqlite-url", help="a province already built on SpatiaLite: used as it is (not built)")
    parser.add_argument("--postgis-url", help="a province already built on PostGIS: used as it is (not built)")
    parser.add_argument("--reps", type=int, default=3, help="locate batch: warm runs and peer runs, alternated")
    parser.add_argument("--spread", choices=("districts", "bbox"), default="districts", help="locate batch points")
    parser.add_argument("--baseline", help="locate batch: another checkout's gridmap run beside (e.g. /work/main)")
    parser.add_argument(
        "--map-user", default="demo-dispatcher", help="the account that opens the map (default: the district's)"
    )
    parser.add_argument(
        "--server-baseline",
        help="scoped lists, steps, queues: another checkout's server run in turn (a worktree of an earlier commit)",
    )
    parser.add_argument("--map-runs", type=int, default=3, help="map first screens per view size (the median printed)")
    parser.add_argument("--all-requests", action="store_true", help="map: print every static file of a screen too")
    args = parser.parse_args()
    global ALL_REQUESTS
    ALL_REQUESTS = args.all_requests
    skip = set(filter(None, args.skip.split(",")))
    key = params_key(args)
    if args.sqlite_url or args.postgis_url:
        print(f"== province: the databases given, as they are; {load()}")
    else:
        print(
            f"== province: {args.districts} districts, {args.microgrids:,} micro-grids, {args.cases:,} cases "
            f"(seed {SEED}, today {TODAY}); {load()}"
        )
    urls: dict[str, str] = {}
    created: list[str] = []
    try:
        for label in ("sqlite", "postgis"):
            if args.only and args.only != label:
                continue
            given = args.sqlite_url if label == "sqlite" else args.postgis_url
            if given or args.sqlite_url or args.postgis_url:  # databases named: only those, as they are
                if given:
                    urls[label] = given
                    got = sizes(given)
                    print(
                        f"\n== {label}: the province given ({given.rsplit('@', 1)[-1]}): {got['microgrids']:,} "
                        f"micro-grids, {got['grids']:,} grids, {got['cases']:,} cases",
                        flush=True,
                    )
                continue
            print(f"\n== generation on {label} ({load()})", flush=True)
            if label == "sqlite":
                url, figures = sqlite_db(args, key)
            else:
                url, figures, name, made = postgis_db(args, key)
                if made:
                    created.append(name)
            urls[label] = url
            got = sizes(url)
            if figures:
                print(
                    f"   gridmap demo --scale province: {figures['wall']:.0f} s wall, {figures['cpu']:.0f} s CPU "
                    f"(this process; the server's own on PostGIS not in it), peak RSS {figures['rss']:.0f} MB; "
                    f"{got['cases'] / figures['wall']:,.0f} cases/s ({load()})",
                    flush=True,
                )
            print(
                f"   holds {got['microgrids']:,} micro-grids, {got['grids']:,} grids, {got['cases']:,} cases, "
                f"{got['events']:,} history rows",
                flush=True,
            )
        if "locate-file" not in skip and not bench_locate_batch(
            urls, args.points, args.reps, args.spread, args.baseline
        ):
            print("   DISAGREEMENT: see the answers above")
        for label, url in urls.items():
            if {
                "measures",
                "last-update",
                "scoped",
                "steps",
                "search",
                "series",
                "queues",
                "http",
                "import",
                "delete",
            } <= skip:
                break
            print(f"\n== {label}: in process and over HTTP ({load()})", flush=True)
            if "measures" not in skip:
                bench_measures(url, label)
            if "last-update" not in skip:
                bench_last_update(url, label)
            if "scoped" not in skip:
                bench_scoped_lists(url, args.server_baseline)
            if "steps" not in skip:
                bench_steps(url, args.server_baseline)
            if "search" not in skip:
                bench_search(url)
            if "series" not in skip:
                bench_series(url, args.server_baseline)
            if "queues" not in skip:
                bench_queues(url, args.server_baseline)
            if "http" not in skip:
                bench_http(url, label, args.rate, args.seconds, skip, args.map_user, args.map_runs)
            if "import" not in skip:
                bench_import(url, label)
            if "delete" not in skip:
                bench_delete(url, label, cap_s=args.delete_cap)
    finally:
        if not args.keep:
            for name in created:
                drop_postgis(name)


if __name__ == "__main__":
    main()
