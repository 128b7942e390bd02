"""Benchmark: the measures of every grid over a year (`gridmap.cases.measures.measures(session, "grid", …)`, what
`GET /api/v1/measures?by=grid` and `gridmap measures --by grid` run) on the full Guandu demo (533 grids, ~50,000
cases, ~350,000 history rows), on SpatiaLite and on PostGIS, beside hand-written SQL a user could write instead:

* peer "5 counts" — the one `GROUP BY grid_code` of tests/benchmarks/cases.py: received, due, suspended, closed,
  closed on time (what earlier notes compared against);
* peer "all counts" — the same counts gridmap reports, all of them: that GROUP BY with the reworked and extended
  cohort too, plus a second GROUP BY of the year's steps joined to their cases (handled, rated, satisfied,
  bounces). gridmap also works out the median and 90th percentile of hours to close per grid, which no bare
  GROUP BY gives (SQLite has no percentile function); that work is in gridmap's figure and not in the peers'.

Every count of both peers is checked against gridmap's before any time is printed. The databases are the ones
tests/benchmarks/series.py builds and keeps (the SpatiaLite file under /tmp/gridmap-bench-series/, the PostGIS
database `gridmap_bench_series`, brought to this checkout's schema and vacuumed as autovacuum would); best of
REPS, wall time.

    .venv/bin/python tests/benchmarks/measures.py
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "benchmarks"))

import series  # noqa: E402  (the kept full-demo databases)
from cases import PEER_SQL  # noqa: E402

from gridmap.cases.measures import measures, to_records  # noqa: E402
from gridmap.store import engine as storage  # noqa: E402

REPS = 5
TODAY = dt.date(2026, 11, 20)
CASE_COUNTS = """
SELECT grid_code,
       SUM(CASE WHEN reported_at >= :since AND reported_at < :until THEN 1 ELSE 0 END) AS received,
       SUM(CASE WHEN d THEN 1 ELSE 0 END) AS due,
       SUM(CASE WHEN d AND state = 'suspended' THEN 1 ELSE 0 END) AS suspended,
       SUM(CASE WHEN d AND state = 'closed' AND closed_at IS NOT NULL THEN 1 ELSE 0 END) AS closed,
       SUM(CASE WHEN d AND state = 'closed' AND closed_at <= due_at THEN 1 ELSE 0 END) AS closed_on_time{more}
FROM (SELECT grid_code, state, reported_at, closed_at, due_at, rework_count, extension_count,
             (state NOT IN ('rejected', 'voided', 'merged') AND due_at >= :since AND due_at < :until) AS d
      FROM case_file) AS c
WHERE grid_code IS NOT NULL
GROUP BY grid_code
"""
FIVE = PEER_SQL  # the 5-count GROUP BY of tests/benchmarks/cases.py, as it is there
ALL_CASES = CASE_COUNTS.format(
    more=""",
       SUM(CASE WHEN d AND state <> 'suspended' AND rework_count > 0 THEN 1 ELSE 0 END) AS reworked,
       SUM(CASE WHEN d AND state <> 'suspended' AND extension_count > 0 THEN 1 ELSE 0 END) AS extended"""
)
STEPS = """
SELECT c.grid_code,
       SUM(CASE WHEN e.action = 'handle' THEN 1 ELSE 0 END) AS handled,
       SUM(CASE WHEN e.action = 'rate' THEN 1 ELSE 0 END) AS rated,
       SUM(CASE WHEN e.action = 'rate' AND {rating} >= 3 THEN 1 ELSE 0 END) AS satisfied,
       SUM(CASE WHEN e.action = 'bounce' THEN 1 ELSE 0 END) AS bounces
FROM case_event AS e JOIN case_file AS c ON c.id = e.case_id
WHERE e.action IN ('handle', 'rate', 'bounce') AND e.at >= :since AND e.at < :until AND c.grid_code IS NOT NULL
GROUP BY c.grid_code
"""
RATING = {
    "sqlite": "CAST(json_extract(e.detail, '$.satisfaction') AS INTEGER)",
    "postgresql": "CAST(e.detail ->> 'satisfaction' AS INTEGER)",
}


def best_of(fn, reps: int = REPS):
    best, out = float("inf"), None
    for _ in range(reps):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def run(url: str, label: str) -> dict:
    engine = storage.make_engine(url)
    until = dt.datetime.combine(TODAY, dt.time(0), dt.timezone(dt.timedelta(hours=8)))
    since = until - dt.timedelta(days=365)
    params = {"since": since.astimezone(dt.UTC), "until": until.astimezone(dt.UTC)}
    if engine.dialect.name == "sqlite":  # SQLite compares the stored text form
        params = {k: v.strftime("%Y-%m-%d %H:%M:%S.%f") for k, v in params.items()}
    steps_sql = STEPS.format(rating=RATING[engine.dialect.name])
    with storage.make_sessionmaker(engine)() as session:
        t_ours, (_, table) = best_of(lambda: measures(session, "grid", since=since, until=until))
        t_five, five = best_of(lambda: session.execute(sa.text(FIVE), params).all())
        t_all, (cases, steps) = best_of(
            lambda: (
                session.execute(sa.text(ALL_CASES), params).all(),
                session.execute(sa.text(steps_sql), params).all(),
            )
        )
    engine.dispose()
    ours = {r["key"]: r for r in to_records(table)}
    for rows in (five, cases, steps):
        for row in rows:
            mapping = row._mapping
            mine = ours[row.grid_code]
            for key in mapping:
                if key != "grid_code":
                    assert mine[key] == int(mapping[key] or 0), (label, row.grid_code, key, mine[key], mapping[key])
    return {"label": label, "grids": len(cases), "ours": t_ours, "five": t_five, "all": t_all}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rebuild", action="store_true", help="build the kept full-demo databases anew")
    args = parser.parse_args()
    results = [run(series.sqlite_url(args.rebuild), "SpatiaLite"), run(series.postgis_url(args.rebuild), "PostGIS")]
    print(
        f"\nmeasures of every grid over the year to {TODAY} on the full Guandu demo, best of {REPS}; "
        "every count agrees with both peers"
    )
    print(
        f"{'database':<11} {'grids':>6} {'gridmap':>9} {'5 counts':>9} {'all counts':>11} "
        f"{'÷ 5 counts':>11} {'÷ all counts':>13}"
    )
    for r in results:
        print(
            f"{r['label']:<11} {r['grids']:>6} {r['ours'] * 1000:>7.0f}ms {r['five'] * 1000:>7.0f}ms "
            f"{r['all'] * 1000:>9.0f}ms {r['ours'] / r['five']:>10.2f}× {r['ours'] / r['all']:>12.2f}×"
        )
    print(
        "(÷: gridmap's time over the peer's; the target is at most 2× a GROUP BY of the same counts. gridmap "
        "also computes the hours-to-close percentiles per grid.)"
    )


if __name__ == "__main__":
    main()
