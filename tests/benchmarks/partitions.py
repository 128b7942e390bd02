"""Benchmark: the case table partitioned by month (PostGIS, migration 0010) beside the same rows in one table
(revision 0009), for what partition pruning is for — a month's measures per grid, a year's measures per grid, a
district's 12-month series, and a date-bounded case list paged deep — same data, same answers checked, one run.

Data: the full Guandu demo (533 grids, a year of cases, seed 11, reference day 2026-11-20), its cases and their
history copied into the YEARS − 1 years before (each copy shifted by whole years, new ids, numbers and tickets), so
that the table holds YEARS years of cases in ~12·YEARS month partitions. The month partitions for the copies are
made first (`gridmap.store.partitions.ensure_months`, the maintenance step). The unpartitioned peer is a copy of that
database (CREATE DATABASE … TEMPLATE) downgraded to 0009 by migration 0010's downgrade: the same rows in one table
with the indexes of 0009. Both are VACUUM ANALYZEd. Best of REPS, wall time, the machine's load average printed
beside the figures. Both databases are dropped at the end (--keep keeps them for another run; a kept pair is used
again only with --reuse).

    .venv/bin/python tests/benchmarks/partitions.py [--years 4] [--times 1] [--reps 5] [--keep] [--reuse]

`--times N` copies each year's cases N − 1 more times (without history: more cases per month, the same steps), for
a table closer to a province's: e.g. --years 4 --times 5 holds ~1,000,000 cases.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from alembic import command  # noqa: E402
from alembic.config import Config  # noqa: E402

from gridmap.cases import intake as cases  # noqa: E402
from gridmap.cases import measures, queries  # noqa: E402
from gridmap.demo.load import load_demo  # noqa: E402
from gridmap.store import engine as storage  # noqa: E402
from gridmap.store import partitions as case_partitions  # noqa: E402

ADMIN_URL = os.environ.get(
    "GRIDMAP_TEST_POSTGRES_URL", "postgresql+psycopg://gridmap_test:gridmap_test@127.0.0.1:5432/postgres"
)
PARTITIONED, SINGLE = "gridmap_bench_partitions", "gridmap_bench_partitions_single"
TODAY = dt.date(2026, 11, 20)
CST = dt.timezone(dt.timedelta(hours=8))
TIMES = (
    "reported_at",
    "accepted_at",
    "due_at",
    "closed_at",
    "handled_at",
    "whistled_at",
    "department_due_at",
    "department_reported_at",
    "escalated_at",
    "suspended_at",
    "rated_at",
)
CASE_STEP, EVENT_STEP = 10_000_000, 100_000_000  # id offsets of the copies (the demo's ids are far below)


def _url(name: str) -> str:
    return sa.engine.make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)


def _admin(sql: str) -> None:
    engine = sa.create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(sql))
    engine.dispose()


def _copy_years(engine: sa.Engine, years: int, times: int = 1) -> None:
    """The demo's cases and history copied k = 1 … years − 1 years earlier; with `times` > 1, each year's cases
    (not their history) `times` − 1 more times, a few minutes apart (more cases per month, the same steps)."""
    with engine.begin() as conn:
        columns = list(
            conn.scalars(
                sa.text(
                    "SELECT column_name FROM information_schema.columns WHERE table_name = 'case_file' "
                    "ORDER BY ordinal_position"
                )
            )
        )
        events = list(
            conn.scalars(
                sa.text(
                    "SELECT column_name FROM information_schema.columns WHERE table_name = 'case_event' "
                    "ORDER BY ordinal_position"
                )
            )
        )
        first = conn.scalar(sa.text("SELECT min(reported_at) FROM case_file"))
    with Session(engine) as session:  # the maintenance step: the months of the copies, before they are written
        case_partitions.ensure_months(session, first - dt.timedelta(days=366 * (years - 1)), first)
        session.commit()
    for k, j in ((k, j) for k in range(years) for j in range(times)):
        if (k, j) == (0, 0):
            continue
        shift, copy = f"interval '{k} years' - interval '{3 * j} minutes'", k * times + j

        def case_value(c: str, copy: int = copy, shift: str = shift) -> str:
            if c in TIMES:
                return f"{c} - {shift}"
            if c in ("id", "merged_into_id"):
                return f"{c} + {copy * CASE_STEP}"
            if c in ("number", "external_ref"):
                return f"{c} || '-{copy}'"
            return c

        def event_value(c: str, k: int = k, shift: str = shift) -> str:
            return {
                "id": f"id + {k * EVENT_STEP}",
                "case_id": f"case_id + {k * times * CASE_STEP}",
                "at": f"at - {shift}",
            }.get(c, c)

        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    f"INSERT INTO case_file ({', '.join(columns)}) SELECT {', '.join(map(case_value, columns))} "
                    f"FROM case_file WHERE id < {CASE_STEP}"
                )
            )
            if j == 0:
                conn.execute(
                    sa.text(
                        f"INSERT INTO case_event ({', '.join(events)}) SELECT {', '.join(map(event_value, events))} "
                        f"FROM case_event WHERE id < {EVENT_STEP}"
                    )
                )
    with engine.begin() as conn:
        conn.execute(
            sa.text("SELECT setval(pg_get_serial_sequence('case_file', 'id'), (SELECT max(id) FROM case_file))")
        )
        conn.execute(
            sa.text("SELECT setval(pg_get_serial_sequence('case_event', 'id'), (SELECT max(id) FROM case_event))")
        )


def _vacuum(name: str) -> None:
    engine = sa.create_engine(_url(name), isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text("VACUUM ANALYZE"))
    engine.dispose()


def build(years: int, times: int) -> None:
    for name in (PARTITIONED, SINGLE):
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    _admin(f'CREATE DATABASE "{PARTITIONED}"')
    engine = storage.make_engine(_url(PARTITIONED))
    t = time.perf_counter()
    storage.migrate(engine)
    with storage.session_scope(storage.make_sessionmaker(engine)) as session:
        load_demo(session, "530111", seed=11, today=TODAY)
    print(f"full demo loaded in {time.perf_counter() - t:.0f} s", flush=True)
    t = time.perf_counter()
    _copy_years(engine, years, times)
    print(f"copied into {years} years ({times} times a year) in {time.perf_counter() - t:.0f} s", flush=True)
    engine.dispose()
    _vacuum(PARTITIONED)
    _admin(f'CREATE DATABASE "{SINGLE}" TEMPLATE "{PARTITIONED}"')
    single = storage.make_engine(_url(SINGLE))
    config = Config()
    config.set_main_option("script_location", str(storage._MIGRATIONS))
    t = time.perf_counter()
    with single.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0009")
    print(f"peer: downgraded to 0009 (one table) in {time.perf_counter() - t:.0f} s", flush=True)
    single.dispose()
    _vacuum(SINGLE)


def best(reps: int, run: Callable[[], Any]) -> tuple[float, Any]:
    times, answer = [], None
    for _ in range(reps):
        t = time.perf_counter()
        answer = run()
        times.append(time.perf_counter() - t)
    return min(times), answer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--years", type=int, default=4)
    parser.add_argument("--times", type=int, default=1, help="each year's cases this many times (history once)")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep both databases")
    parser.add_argument("--reuse", action="store_true", help="use the databases a --keep run left")
    args = parser.parse_args()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} cores)")
    if not args.reuse:
        build(args.years, args.times)
    engines = {"partitioned": storage.make_engine(_url(PARTITIONED)), "one table": storage.make_engine(_url(SINGLE))}
    june = (dt.datetime(2026, 6, 1, tzinfo=CST), dt.datetime(2026, 7, 1, tzinfo=CST))
    year = (dt.datetime(2025, 11, 1, tzinfo=CST), dt.datetime(2026, 11, 1, tzinfo=CST))
    window = (dt.datetime(2026, 3, 1, tzinfo=CST), dt.datetime(2026, 6, 1, tzinfo=CST))
    jobs: dict[str, Callable[[Session], Any]] = {
        "measures per grid, one month (June 2026)": lambda s: measures.to_records(
            measures.measures(s, "grid", since=june[0], until=june[1])[1]
        ),
        "measures per grid, one year": lambda s: measures.to_records(
            measures.measures(s, "grid", since=year[0], until=year[1])[1]
        ),
        "district series, 12 months": lambda s: measures.area_series(s, "530111", months=12, until=year[1]),
        "case list, 3 months bounded, page at offset 5000": lambda s: [
            c.number for c in queries.find_cases(s, since=window[0], until=window[1], limit=50, offset=5000)[1]
        ],
        "case list, 3 months bounded, count": lambda s: queries.find_cases(
            s, since=window[0], until=window[1], limit=1
        )[0],
        # the cost side: a case read by id alone (no report time) probes every partition's primary key
        "200 cases read by id (get_case)": lambda s: [cases.get_case(s, i).number for i in range(1000, 1200)],
    }
    with engines["partitioned"].connect() as conn:
        n_cases, n_events = conn.execute(
            sa.text("SELECT (SELECT count(*) FROM case_file), (SELECT count(*) FROM case_event)")
        ).one()
        n_parts = conn.scalar(sa.text("SELECT count(*) FROM pg_inherits WHERE inhparent = 'case_file'::regclass"))
    print(f"data: {n_cases:,} cases, {n_events:,} history rows; partitioned: {n_parts} partitions; best of {args.reps}")
    print(f"{'job':52} {'partitioned':>12} {'one table':>12} {'ratio':>7}")
    try:
        for label, job in jobs.items():
            figures, answers = {}, {}
            for name, engine in engines.items():
                with Session(engine) as session:
                    job(session)  # warm
                    figures[name], answers[name] = best(args.reps, functools.partial(job, session))
            assert answers["partitioned"] == answers["one table"], f"{label}: the answers differ"
            ratio = figures["one table"] / figures["partitioned"]
            print(
                f"{label:52} {figures['partitioned'] * 1000:10.1f}ms {figures['one table'] * 1000:10.1f}ms "
                f"{ratio:6.2f}x",
                flush=True,
            )
    finally:
        for engine in engines.values():
            engine.dispose()
        if not args.keep:
            for name in (PARTITIONED, SINGLE):
                _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; ratio = one table / partitioned")


if __name__ == "__main__":
    main()
