"""Benchmark: the dispatcher's queues on ~50,000 cases (the full demo's size) on SpatiaLite — the small demo's
cases copied until there are that many (states, deadlines and requests as the demo has them), then the queue
counts, the overdue queue's first and a later page, the pending queue, and the whole list by last change.
Prints figures; asserts nothing.

    .venv/bin/python tests/benchmarks/dispatch_queues.py [--cases 50000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import sqlalchemy as sa  # noqa: E402

from gridmap.cases import intake as cases
from gridmap.cases import queries
from gridmap.demo.load import load_demo  # noqa: E402
from gridmap.store import engine as storage  # noqa: E402

TODAY = dt.date(2026, 11, 20)
NOW = dt.datetime(2026, 11, 20, 4, tzinfo=dt.UTC)


def build(path: Path, n: int) -> str:
    url = f"sqlite:///{path}"
    engine = storage.make_engine(url)
    storage.migrate(engine)
    with storage.session_scope(storage.make_sessionmaker(engine)) as session:
        load_demo(session, "530111", small=True, seed=11, today=TODAY)
    with engine.begin() as conn:
        columns = [
            r[1]
            for r in conn.execute(sa.text("PRAGMA table_info(case_file)"))
            if r[1] not in ("id", "number", "external_ref")
        ]
        listed = ", ".join(columns)
        for k in range(1, 1000):
            if conn.execute(sa.text("SELECT COUNT(*) FROM case_file")).scalar() >= n:
                break
            conn.execute(
                sa.text(
                    f"INSERT INTO case_file ({listed}, number) SELECT {listed}, number || '-{k}' "
                    "FROM case_file WHERE number NOT LIKE '%-%'"
                )
            )
        conn.execute(
            sa.text(
                "INSERT INTO case_event (case_id, at, actor, action, from_state, to_state) "
                "SELECT id, reported_at, 'bench', 'reported', NULL, 'reported' FROM case_file "
                "WHERE number LIKE '%-%'"
            )
        )
    engine.dispose()
    return url


def timed(fn, repeat: int = 5) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times), out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=50_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = build(Path(tmp) / "queues.sqlite", args.cases)
        engine = storage.make_engine(url)
        with storage.make_sessionmaker(engine)() as session:
            total = session.scalar(sa.select(sa.func.count()).select_from(cases.Case))
            print(f"SpatiaLite, {total:,} cases; median of 5 runs")
            runs = {
                "queue counts (6 queues)": lambda: queries.queue_counts(session, now=NOW),
                "overdue, most overdue first, page 1": lambda: queries.search_cases(
                    session, queries.CaseFilter(queue="overdue", sort="overdue_by"), limit=50, now=NOW
                ),
                "overdue, offset 500": lambda: queries.search_cases(
                    session, queries.CaseFilter(queue="overdue", sort="overdue_by"), limit=50, offset=500, now=NOW
                ),
                "pending, oldest first": lambda: queries.search_cases(
                    session, queries.CaseFilter(queue="pending", order="asc"), limit=50, now=NOW
                ),
                "approvals": lambda: queries.search_cases(
                    session, queries.CaseFilter(queue="approvals", sort="updated_at", order="asc"), limit=50, now=NOW
                ),
                "all cases by last change": lambda: queries.search_cases(
                    session, queries.CaseFilter(sort="updated_at"), limit=50, now=NOW
                ),
            }
            for label, fn in runs.items():
                ms, out = timed(fn)
                if isinstance(out, tuple):
                    items_ms, _ = timed(lambda out=out: queries.case_items(session, out[1], now=NOW))
                    print(f"  {label:40s} {ms:7.1f} ms  (total {out[0]:,}; items of the page {items_ms:.1f} ms)")
                else:
                    print(f"  {label:40s} {ms:7.1f} ms  {[q['count'] for q in out]}")
        engine.dispose()


if __name__ == "__main__":
    main()
