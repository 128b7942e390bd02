"""Benchmark: the case loop's bulk work on the full Guandu demo (50,000 cases, ~300,000 history rows), on the
embedded SpatiaLite file and on PostGIS, same data, one run.

    .venv/bin/python tests/benchmarks/cases.py            # full Guandu demo
    .venv/bin/python tests/benchmarks/cases.py --small    # the small demo, for a quick look

It prints, for each database:

* measures — `gridmap.cases.measures` per grid over the demo's year, best of 3, against the peer: the same counts
  (received, due, suspended, closed, closed on time per grid) as one hand-written SQL `GROUP BY` run by the
  database itself; the counts are checked to agree before any time is printed;
* hotline import — rows per second importing a 12345 export of 10,000 address-only rows (CSV) in bulk
  (`gridmap.cases.bulk.create_cases`), beside its peer, the row-by-row path (`bulk=False`: one ORM intake per row, the
  way imports were written before; on `--peer-rows` rows, 1,000 by default, with other ticket numbers); and
  re-importing the bulk file (every row a duplicate, nothing created). Rows per second are given by the wall clock
  and by this process's CPU time (the database server's own CPU on PostGIS is not in it): on a shared machine the
  wall clock counts the other processes' turns too;
* demo load — the full Guandu demo written into an empty database, wall clock and CPU, with the load average
  (its stages are printed as it goes). On PostGIS the database is then ANALYZEd (timed apart, not in the load):
  right after a bulk load the month partitions of the case table have no statistics, and the measures query waits
  minutes on a plan made without them.

`--no-measures` leaves the measures out (the imports and the load only).

Figures are measurements on this machine at this moment; run it twice before believing a ratio.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from locate import best_of  # noqa: E402  (tests/benchmarks is on the path: this script's directory)

from gridmap.boundaries.areas import load_index  # noqa: E402
from gridmap.cases.bulk import Progress  # noqa: E402
from gridmap.cases.hotline import import_export  # noqa: E402
from gridmap.cases.measures import measures, to_records  # noqa: E402
from gridmap.demo.load import load_demo  # noqa: E402
from gridmap.store import engine as storage  # noqa: E402
from gridmap.store.tables import Place  # noqa: E402
from tests.conftest import _new_postgis_database  # noqa: E402

TODAY = dt.date(2026, 11, 20)
PEER_SQL = """
SELECT grid_code,
       SUM(CASE WHEN reported_at >= :since AND reported_at < :until THEN 1 ELSE 0 END) AS received,
       SUM(CASE WHEN d THEN 1 ELSE 0 END) AS due,
       SUM(CASE WHEN d AND state = 'suspended' THEN 1 ELSE 0 END) AS suspended,
       SUM(CASE WHEN d AND state = 'closed' AND closed_at IS NOT NULL THEN 1 ELSE 0 END) AS closed,
       SUM(CASE WHEN d AND state = 'closed' AND closed_at <= due_at THEN 1 ELSE 0 END) AS closed_on_time
FROM (SELECT grid_code, state, reported_at, closed_at, due_at,
             (state NOT IN ('rejected', 'voided', 'merged') AND due_at >= :since AND due_at < :until) AS d
      FROM case_file) AS c
WHERE grid_code IS NOT NULL
GROUP BY grid_code
"""


def export_rows(session, n: int, prefix: str = "BENCH") -> bytes:
    places = session.scalars(sa.select(Place.name).where(Place.kind == "compound").order_by(Place.id)).all()
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["工单编号", "来电时间", "来电人", "联系电话", "事发地址", "诉求内容", "问题分类"])
    for i in range(n):
        writer.writerow(
            [
                f"{prefix}-{i:06d}",
                "2026-11-18 10:00:00",
                "张三",
                "13812341234",
                places[i % len(places)],
                "楼道堆放杂物",
                "E0101",
            ]
        )
    return buffer.getvalue().encode("utf-8")


def timed(call):
    """(wall seconds, CPU seconds of this process, the answer)."""
    wall, cpu = time.perf_counter(), time.process_time()
    answer = call()
    return time.perf_counter() - wall, time.process_time() - cpu, answer


def run(url: str, label: str, small: bool, rows: int, peer_rows: int, with_measures: bool = True) -> dict:
    engine = storage.make_engine(url)
    storage.migrate(engine)
    factory = storage.make_sessionmaker(engine)
    import gridmap.locating.gazetteer  # noqa: F401  (its imports, ~1 s, are not the import's: a server has them loaded)

    def load():
        with storage.session_scope(factory) as session:
            load_demo(session, "530111", small=small, seed=7, today=TODAY, progress=Progress(label=f"{label} "))

    load_s, load_cpu, _ = timed(load)
    load_avg = os.getloadavg()[0]
    analyze_s = 0.0
    if engine.dialect.name == "postgresql":  # what autovacuum would do a minute later; not part of the load
        with engine.connect() as conn:
            analyze_s, _, _ = timed(lambda: conn.execute(sa.text("ANALYZE")))
            conn.commit()
    until = dt.datetime.combine(TODAY, dt.time(0), dt.timezone(dt.timedelta(hours=8)))
    since = until - dt.timedelta(days=365)
    t_ours = t_sql = float("nan")
    ours: dict = {"*": {"due": 0, "closure_rate": float("nan"), "on_time_rate": float("nan")}}
    peer: list = []
    with factory() as session:
        if with_measures:
            t_ours, t_sql, ours, peer = _measures(session, engine, since, until)
        index = load_index(session)
        data = export_rows(session, rows)
        peer_data = export_rows(session, peer_rows, "BENCHPEER")
    total = ours["*"]

    t_peer, c_peer, one = timed(lambda: import_export(factory, index, peer_data, "csv", bulk=False))
    t_import, c_import, first = timed(lambda: import_export(factory, index, data, "csv"))
    # the same rows give the same outcomes both ways (created, placed in the same grids)
    outcome = {e["ticket"][-6:]: (e["status"], e["grid_code"], e["reason"]) for e in first["report"]}
    assert all(outcome[e["ticket"][-6:]] == (e["status"], e["grid_code"], e["reason"]) for e in one["report"])
    t_again, c_again, again = timed(lambda: import_export(factory, index, data, "csv"))
    assert again["created"] == 0 and again["duplicate"] == rows
    engine.dispose()
    return {
        "label": label,
        "analyze_s": analyze_s,
        "load_s": load_s,
        "load_cpu": load_cpu,
        "load_avg": load_avg,
        "measures_s": t_ours,
        "sql_s": t_sql,
        "grids": len(peer),
        "cases_due": total["due"],
        "closure": total["closure_rate"],
        "on_time": total["on_time_rate"],
        "import_rows_s": rows / t_import,
        "import_cpu_rows_s": rows / c_import,
        "peer_rows_s": peer_rows / t_peer,
        "peer_cpu_rows_s": peer_rows / c_peer,
        "created": first["created"],
        "reimport_rows_s": rows / t_again,
        "import_avg": os.getloadavg()[0],
    }


def _measures(session, engine, since: dt.datetime, until: dt.datetime) -> tuple[float, float, dict, list]:
    """gridmap's measures per grid and the hand-written GROUP BY, best of 3 each, their counts checked to agree."""
    t_ours, (_, table) = best_of(lambda: measures(session, "grid", since=since, until=until))
    params = {"since": since.astimezone(dt.UTC), "until": until.astimezone(dt.UTC)}
    if engine.dialect.name == "sqlite":  # SQLite compares the stored text form
        params = {k: v.strftime("%Y-%m-%d %H:%M:%S.%f") for k, v in params.items()}
    t_sql, peer = best_of(lambda: session.execute(sa.text(PEER_SQL), params).all())
    ours = {r["key"]: r for r in to_records(table)}
    keys = ("received", "due", "suspended", "closed", "closed_on_time")
    for row in peer:
        mine = ours[row.grid_code]
        assert tuple(mine[k] for k in keys) == tuple(int(v) for v in row[1:]), (row, mine)
    return t_ours, t_sql, ours, peer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="the small demo")
    parser.add_argument("--rows", type=int, default=10_000, help="rows of the hotline export (bulk)")
    parser.add_argument("--peer-rows", type=int, default=1_000, help="rows imported row by row (the peer)")
    parser.add_argument("--no-measures", action="store_true", help="the imports and the demo load only")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stopped: the PostgreSQL database is still dropped
    results = []
    print(
        f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())} on {os.cpu_count()} CPUs",
        file=sys.stderr,
    )
    with tempfile.TemporaryDirectory() as tmp:
        results.append(
            run(
                f"sqlite:///{tmp}/bench.sqlite",
                "SpatiaLite",
                args.small,
                args.rows,
                args.peer_rows,
                not args.no_measures,
            )
        )
    url, drop = _new_postgis_database()
    try:
        results.append(run(url, "PostGIS", args.small, args.rows, args.peer_rows, not args.no_measures))
    finally:
        drop()
    print(
        f"\nGuandu demo ({'small' if args.small else 'full'}): measures per grid over one year; "
        f"import of a {args.rows}-row 12345 export"
    )
    print(
        f"{'database':<11} {'load':>7} {'grids':>6} {'due':>7} {'closure':>8} {'on time':>8} "
        f"{'gridmap':>9} {'SQL':>9} {'÷ SQL':>6} {'import':>10} {'re-import':>10}"
    )
    for r in results:
        print(
            f"{r['label']:<11} {r['load_s']:>6.1f}s {r['grids']:>6} {r['cases_due']:>7} {r['closure']:>8.2%} "
            f"{r['on_time']:>8.2%} {r['measures_s'] * 1000:>7.0f}ms {r['sql_s'] * 1000:>7.0f}ms "
            f"{r['sql_s'] / r['measures_s']:>6.2f} {r['import_rows_s']:>6.0f} r/s {r['reimport_rows_s']:>6.0f} r/s"
        )
    print(
        "(÷ SQL above 1: gridmap's measures are faster than the hand-written GROUP BY; below 1: slower. "
        "gridmap computes all 17 measures, the SQL only 5 counts.)"
    )
    print(
        f"\nhotline import, rows/s: bulk on {args.rows:,} rows, the row-by-row peer on {args.peer_rows:,}; "
        "wall clock and CPU of this process (target: 2,000 rows/s); demo load (target: 15 s)"
    )
    print(
        f"{'database':<11} {'bulk wall':>10} {'bulk CPU':>9} {'peer wall':>10} {'peer CPU':>9} {'× peer':>7} "
        f"{'load':>7} {'load CPU':>9} {'load avg':>9}"
    )
    for r in results:
        print(
            f"{r['label']:<11} {r['import_rows_s']:>10,.0f} {r['import_cpu_rows_s']:>9,.0f} "
            f"{r['peer_rows_s']:>10,.0f} {r['peer_cpu_rows_s']:>9,.0f} {r['import_rows_s'] / r['peer_rows_s']:>6.1f}x "
            f"{r['load_s']:>6.1f}s {r['load_cpu']:>8.1f}s {r['load_avg']:>4.1f}/{r['import_avg']:<4.1f}"
        )
    print(
        f"(load avg: the 1-minute load average after the demo load / after the imports, on {os.cpu_count()} CPUs; "
        f"PostGIS ANALYZE after the load, not in it: {results[-1]['analyze_s']:.1f}s)"
    )


if __name__ == "__main__":
    main()
