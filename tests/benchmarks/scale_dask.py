"""Benchmark: `gridmap relocate` on the full Guandu demo (1,854 micro-grids, ~50,000 cases) in one process against
Dask distributed on a LocalCluster of single-threaded worker processes — same report asserted, times printed.

    .venv/bin/python tests/benchmarks/scale_dask.py                      # SpatiaLite (a copy of the cached demo)
    .venv/bin/python tests/benchmarks/scale_dask.py --postgis            # also PostGIS (loads the demo: minutes)
    .venv/bin/python tests/benchmarks/scale_dask.py --workers 4 --rows 5000

The full demo SpatiaLite file cached by tests/benchmarks/series.py (/tmp/gridmap-bench-series/full-demo.sqlite) is
copied, never changed; without it the demo is loaded (seed 7, today 2026-11-20, as series.py). In the copy a draft
moves MOVES micro-grids (those holding the most cases, each under a neighbouring grid, with a fresh code), so the
report has cases that change grid. With --postgis a database of its own is made on the test server
(GRIDMAP_TEST_POSTGRES_URL), loaded the same way and dropped afterwards.

Printed per database: the single-machine time, the cluster's start-up, the Dask time (first run, with the index
scattered, and a second run), cases per second, the ratio single ÷ Dask, and the machine's load average. The
single-machine and the Dask reports (per case and per grid) are asserted equal before any figure is printed.
Then the cases received per grid and month over 24 months: `measures.measures` once per month (the peer), and
`relocate.received_by_month` in one process and on Dask, all three asserted equal. On a
2-core machine shared with other jobs, two worker processes cannot beat one process by much: the figure that
matters here is that the answers are the same, and what the distribution costs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from gridmap.boundaries import codes  # noqa: E402
from gridmap.boundaries.generations import create_draft  # noqa: E402
from gridmap.planning import relocate  # noqa: E402
from gridmap.store import engine as storage  # noqa: E402
from gridmap.store.tables import Area, Case  # noqa: E402
from tests.conftest import POSTGRES_ADMIN_URL  # noqa: E402

CACHED = Path("/tmp/gridmap-bench-series/full-demo.sqlite")
TODAY = dt.date(2026, 11, 20)
MOVES = 20


def _load(url: str) -> float:
    from gridmap.demo.load import load_demo

    engine = storage.make_engine(url)
    storage.migrate(engine)
    start = time.perf_counter()
    with storage.session_scope(storage.make_sessionmaker(engine)) as session:
        load_demo(session, "530111", small=False, seed=7, today=TODAY)
    engine.dispose()
    return time.perf_counter() - start


def make_draft(url: str, moves: int = MOVES) -> int:
    """A draft of the active generation with `moves` micro-grids (most cases first) moved under a neighbouring
    grid with fresh codes; committed. Returns its id."""
    from geoalchemy2.shape import to_shape

    engine = storage.make_engine(url)
    with storage.session_scope(storage.make_sessionmaker(engine)) as s:
        draft = create_draft(s, "benchmark: micro-grids moved").id
        areas = {a.code: a for a in s.scalars(sa.select(Area).where(Area.generation_id == draft))}
        counts = dict(s.execute(sa.select(Case.microgrid_code, sa.func.count()).group_by(Case.microgrid_code)).all())
        grids = [a for a in areas.values() if a.level == "grid"]
        shapes = {g.id: to_shape(g.geom) for g in grids}
        done, touched = 0, set()
        for m in sorted(
            (a for a in areas.values() if a.level == "microgrid"), key=lambda a: (-counts.get(a.code, 0), a.code)
        ):
            if done == moves:
                break
            if m.parent_id in touched:
                continue
            shape = to_shape(m.geom)
            target = next(
                (
                    g
                    for g in grids
                    if g.id != m.parent_id and g.id not in touched and shape.intersection(shapes[g.id]).length > 1e-4
                ),
                None,
            )
            if target is None:
                continue
            touched |= {m.parent_id, target.id}
            (m.code,) = codes.new_codes(s, target.code, "microgrid", 1, draft)
            m.parent_id = target.id
            s.flush()
            done += 1
        assert done == moves, f"only {done} micro-grids could be moved"
    engine.dispose()
    return draft


def bench(label: str, url: str, workers: int, rows: int) -> None:
    draft = make_draft(url)
    start = time.perf_counter()
    single = relocate.relocate(url, draft, rows_per_partition=rows)
    t_single = time.perf_counter() - start
    start = time.perf_counter()
    client = relocate.open_client(f"local:{workers}")
    t_start = time.perf_counter() - start
    try:
        assert len(client.scheduler_info()["workers"]) == workers
        start = time.perf_counter()
        first = relocate.relocate(url, draft, client=client, rows_per_partition=rows)
        t_first = time.perf_counter() - start
        start = time.perf_counter()
        second = relocate.relocate(url, draft, client=client, rows_per_partition=rows)
        t_second = time.perf_counter() - start
    finally:
        relocate.close_client(client)
    for spread in (first, second):
        pd.testing.assert_frame_equal(single[0], spread[0])
        pd.testing.assert_frame_equal(single[1], spread[1])
        assert single[2] == spread[2]
    totals = single[2]
    assert totals["grid_changed"] > 0
    n = totals["cases"]
    load = os.getloadavg()
    print(
        f"\n{label}: {n:,} cases in {totals['partitions']} partitions of ≤{rows:,}; "
        f"{totals['changed']:,} change grid or micro-grid ({totals['open_changed']:,} open), methods "
        f"{totals['method']} — reports equal (per case and per grid)"
    )
    print(f"  single process          {t_single:7.2f} s   {n / t_single:9,.0f} cases/s")
    print(f"  LocalCluster start      {t_start:7.2f} s   ({workers} worker processes, 1 thread each)")
    print(
        f"  Dask, first run         {t_first:7.2f} s   {n / t_first:9,.0f} cases/s   single ÷ Dask "
        f"{t_single / t_first:.2f}× (index scattered to every worker)"
    )
    print(
        f"  Dask, second run        {t_second:7.2f} s   {n / t_second:9,.0f} cases/s   single ÷ Dask "
        f"{t_single / t_second:.2f}×"
    )
    print(f"  load average            {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores")
    months(url, workers, rows)


def _china_months(first: dt.date, n: int) -> list[dt.datetime]:
    cst = dt.timezone(dt.timedelta(hours=8))
    out, year, month = [], first.year, first.month
    for _ in range(n + 1):
        out.append(dt.datetime(year, month, 1, tzinfo=cst).astimezone(dt.UTC))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out


def months(url: str, workers: int, rows: int, n: int = 24) -> None:
    """Cases received per grid and month over two years: measures.measures once per month (the peer), the
    partitioned count in one process and on Dask; all three asserted equal."""
    from gridmap.cases import measures

    edges = _china_months(dt.date(2025, 1, 1), n)
    start = time.perf_counter()
    engine = storage.make_engine(url)
    expected = {}
    with storage.make_sessionmaker(engine)() as s:
        for k in range(n):
            _, table = measures.measures(s, "grid", since=edges[k], until=edges[k + 1])
            expected.update(
                {(k, r.key): r.received for r in table.itertuples() if r.key != measures.TOTAL_KEY and r.received}
            )
    engine.dispose()
    t_measures = time.perf_counter() - start
    start = time.perf_counter()
    single = relocate.received_by_month(url, edges, rows_per_partition=rows)
    t_single = time.perf_counter() - start
    client = relocate.open_client(f"local:{workers}")
    try:
        relocate.received_by_month(url, edges, client=client, rows_per_partition=rows)  # workers warmed
        start = time.perf_counter()
        spread = relocate.received_by_month(url, edges, client=client, rows_per_partition=rows)
        t_dask = time.perf_counter() - start
    finally:
        relocate.close_client(client)
    pd.testing.assert_frame_equal(single, spread)
    got = {(m, g): r for m, g, r in single.itertuples(index=False) if g != measures.NO_UNIT}
    assert got == expected
    print(
        f"  received per grid and month, {n} months, {int(single['received'].sum()):,} cases — equal to "
        "measures.measures month by month"
    )
    print(f"    measures.measures × {n}  {t_measures:7.2f} s   (all twenty measures, not only this count)")
    print(f"    partitioned, single   {t_single:7.2f} s   measures ÷ single {t_measures / t_single:.2f}×")
    print(
        f"    partitioned, Dask     {t_dask:7.2f} s   measures ÷ Dask {t_measures / t_dask:.2f}× "
        f"(second run, {workers} workers)"
    )
    load = os.getloadavg()
    print(f"    load average          {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rows", type=int, default=10_000, help="cases per partition")
    parser.add_argument("--postgis", action="store_true", help="also on a PostGIS database of its own")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gridmap-scale-dask-") as tmp:
        path = Path(tmp) / "full-demo.sqlite"
        url = f"sqlite:///{path}"
        if CACHED.exists():
            shutil.copyfile(CACHED, path)
            print(f"SpatiaLite: a copy of {CACHED}")
        else:
            print(f"SpatiaLite: full demo loaded in {_load(url):.1f} s")
        bench("SpatiaLite", url, args.workers, args.rows)
    if args.postgis:
        admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
        name = f"gridmap_bench_dask_{uuid.uuid4().hex[:8]}"
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        url = sa.engine.make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
        try:
            engine = sa.create_engine(url)
            with engine.begin() as conn:
                conn.execute(sa.text("CREATE EXTENSION IF NOT EXISTS postgis"))
            engine.dispose()
            print(f"\nPostGIS: full demo loaded in {_load(url):.1f} s")
            bench("PostGIS", url, args.workers, args.rows)
        finally:
            for engine in relocate._ENGINES.values():  # the client's own connections, before the drop
                engine.dispose()
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
