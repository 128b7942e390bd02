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
* demo load — the user's whole command, `gridmap demo --seed 7 --today 2026-11-20` (the full Guandu demo and its
  accounts) run as its own process into a freshly migrated database: the interpreter's start, the imports, the
  migration check, the load and the accounts, to the commit and the process's exit. Wall clock, the command's
  CPU time and, on PostGIS, the database server's (the CPU time of the command's server process, read from /proc
  while it runs, when the server runs on this machine), with the load average; the command's progress lines are
  printed as they come, labelled. On PostGIS the database is then ANALYZEd (timed apart, not in the load): right
  after a bulk load the month partitions of the case table have no statistics, and the measures query waits
  minutes on a plan made without them.

`--no-measures` leaves the measures out (the imports and the load only); `--load-only` the imports too.
`--before DIR` times the same `gridmap demo` of another checkout (an earlier commit) in the same run, each into a
freshly migrated database of its own, the earlier one first.

Figures are measurements on this machine at this moment; run it twice before believing a ratio.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import os
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from locate import best_of  # noqa: E402  (tests/benchmarks is on the path: this script's directory)

from gridmap.boundaries.areas import load_index  # noqa: E402
from gridmap.cases.hotline import import_export  # noqa: E402
from gridmap.cases.measures import measures, to_records  # noqa: E402
from gridmap.store import engine as storage  # noqa: E402
from gridmap.store.tables import Place  # noqa: E402
from tests.conftest import POSTGRES_ADMIN_URL as ADMIN_URL  # noqa: E402
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


def demo_command(url: str, label: str, small: bool, root: Path = ROOT) -> tuple[float, float, float]:
    """`gridmap demo` (of the checkout at `root`) into the database at `url`, as a user runs it: (wall seconds, the
    command's CPU seconds, the CPU seconds of its database server process on PostGIS, NaN where they cannot be
    read). Its progress lines go to stderr as they come, labelled."""
    argv = [sys.executable, "-m", "gridmap.cli", "--database", url, "demo", "--seed", "7", "--today", TODAY.isoformat()]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    server = _ServerCpu(url)
    wall = time.perf_counter()
    with subprocess.Popen(
        [*argv, *(["--small"] if small else [])],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=root,  # `python -m` puts the working directory first on the path, before PYTHONPATH
    ) as process:
        assert process.stderr is not None and process.stdout is not None
        server.start()
        for line in process.stderr:
            print(f"{label} {line}", end="", file=sys.stderr, flush=True)
        out = process.stdout.read()
    wall = time.perf_counter() - wall
    server.stop()
    if process.returncode:
        raise RuntimeError(f"gridmap demo failed ({process.returncode}): {out}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, server.seconds()


class _ServerCpu:
    """The CPU time of the PostgreSQL server processes serving a database, sampled from /proc every 0.1 s while
    they live (the largest seen per process): the command's backend, and any other it opened. Only where the
    server runs on this machine and its processes are readable; NaN otherwise (and on SQLite)."""

    def __init__(self, url: str) -> None:
        self.database = sa.engine.make_url(url).database if url.startswith("postgresql") else None
        self.seen: dict[int, float] = {}
        self.tick = os.sysconf("SC_CLK_TCK")
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        if self.database:
            self.thread.start()

    def stop(self) -> None:
        self.done.set()
        if self.thread.is_alive():
            self.thread.join()

    def _run(self) -> None:
        admin = sa.create_engine(ADMIN_URL)
        try:
            with admin.connect() as conn:
                while not self.done.is_set():
                    pids = conn.execute(
                        sa.text("SELECT pid FROM pg_stat_activity WHERE datname = :d AND pid <> pg_backend_pid()"),
                        {"d": self.database},
                    ).scalars()
                    conn.rollback()
                    for pid in pids:
                        try:
                            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                        except OSError:
                            continue
                        cpu = (int(fields[11]) + int(fields[12])) / self.tick
                        self.seen[pid] = max(self.seen.get(pid, 0.0), cpu)
                    self.done.wait(0.1)
        finally:
            admin.dispose()

    def seconds(self) -> float:
        return sum(self.seen.values()) if self.seen else float("nan")


def run(
    url: str,
    label: str,
    small: bool,
    rows: int,
    peer_rows: int,
    with_measures: bool = True,
    imports: bool = True,
    before: tuple[Path, str] | None = None,
) -> dict:
    earlier = {}
    if before is not None:  # the same command of an earlier checkout, into a database of its own, just before
        root, other = before
        migrated = storage.make_engine(other)
        storage.migrate(migrated)
        migrated.dispose()
        wall, cpu, server = demo_command(other, f"{label} (before)", small, root)
        earlier = {"before_s": wall, "before_cpu": cpu, "before_server_cpu": server, "before_avg": os.getloadavg()[0]}
    engine = storage.make_engine(url)
    storage.migrate(engine)
    factory = storage.make_sessionmaker(engine)
    import gridmap.locating.gazetteer  # noqa: F401  (its imports, ~1 s, are not the import's: a server has them loaded)

    engine.dispose()  # the command's connection is then the only one
    load_s, load_cpu, server_cpu = demo_command(url, label, small)
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
    if not imports:
        engine.dispose()
        nan = float("nan")
        return {
            **earlier,
            "label": label,
            "analyze_s": analyze_s,
            "load_s": load_s,
            "load_cpu": load_cpu,
            "server_cpu": server_cpu,
            "load_avg": load_avg,
            "measures_s": t_ours,
            "sql_s": t_sql,
            "grids": len(peer),
            "cases_due": total["due"],
            "closure": total["closure_rate"],
            "on_time": total["on_time_rate"],
            **dict.fromkeys(("import_rows_s", "import_cpu_rows_s", "peer_rows_s", "peer_cpu_rows_s"), nan),
            **dict.fromkeys(("reimport_rows_s", "import_avg"), nan),
            "created": 0,
        }

    t_peer, c_peer, one = timed(lambda: import_export(factory, index, peer_data, "csv", bulk=False))
    t_import, c_import, first = timed(lambda: import_export(factory, index, data, "csv"))
    # the same rows give the same outcomes both ways (created, placed in the same grids)
    outcome = {e["ticket"][-6:]: (e["status"], e["grid_code"], e["reason"]) for e in first["report"]}
    assert all(outcome[e["ticket"][-6:]] == (e["status"], e["grid_code"], e["reason"]) for e in one["report"])
    t_again, c_again, again = timed(lambda: import_export(factory, index, data, "csv"))
    assert again["created"] == 0 and again["duplicate"] == rows
    engine.dispose()
    return {
        **earlier,
        "label": label,
        "analyze_s": analyze_s,
        "load_s": load_s,
        "load_cpu": load_cpu,
        "server_cpu": server_cpu,
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
    parser.add_argument("--load-only", action="store_true", help="the demo load only (no measures, no imports)")
    parser.add_argument(
        "--before",
        type=Path,
        help="a checkout of an earlier commit (git worktree add --detach DIR COMMIT): its `gridmap demo` is timed "
        "too, into a database of its own, just before this checkout's",
    )
    args = parser.parse_args()
    measures_too, imports = not (args.no_measures or args.load_only), not args.load_only
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stopped: the PostgreSQL database is still dropped
    results = []
    print(
        f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())} on {os.cpu_count()} CPUs",
        file=sys.stderr,
    )
    with tempfile.TemporaryDirectory() as tmp:
        before = (args.before, f"sqlite:///{tmp}/before.sqlite") if args.before else None
        results.append(
            run(
                f"sqlite:///{tmp}/bench.sqlite",
                "SpatiaLite",
                args.small,
                args.rows,
                args.peer_rows,
                measures_too,
                imports,
                before,
            )
        )
    url, drop = _new_postgis_database()
    other, drop_other = _new_postgis_database() if args.before else (None, lambda: None)
    try:
        before = (args.before, other) if other else None
        results.append(run(url, "PostGIS", args.small, args.rows, args.peer_rows, measures_too, imports, before))
    finally:
        drop()
        drop_other()
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
        "wall clock and CPU of this process (target: 2,000 rows/s)"
    )
    print(f"{'database':<11} {'bulk wall':>10} {'bulk CPU':>9} {'peer wall':>10} {'peer CPU':>9} {'× peer':>7}")
    for r in results:
        print(
            f"{r['label']:<11} {r['import_rows_s']:>10,.0f} {r['import_cpu_rows_s']:>9,.0f} "
            f"{r['peer_rows_s']:>10,.0f} {r['peer_cpu_rows_s']:>9,.0f} {r['import_rows_s'] / r['peer_rows_s']:>6.1f}x"
        )
    print(
        f"\ndemo load: `gridmap demo` ({'small' if args.small else 'full'} Guandu demo, seed 7), the whole command "
        "into a freshly migrated database (target: 15 s)"
    )
    print(f"{'database':<20} {'wall':>7} {'command CPU':>12} {'server CPU':>11} {'load avg':>9}")
    for r in results:
        if "before_s" in r:
            print(
                f"{r['label'] + ' (before)':<20} {r['before_s']:>6.1f}s {r['before_cpu']:>11.1f}s "
                f"{r['before_server_cpu']:>10.1f}s {r['before_avg']:>4.1f}"
            )
        print(
            f"{r['label']:<20} {r['load_s']:>6.1f}s {r['load_cpu']:>11.1f}s {r['server_cpu']:>10.1f}s "
            f"{r['load_avg']:>4.1f}/{r['import_avg']:<4.1f}"
        )
    print(
        f"(load avg: the 1-minute load average after the demo load / after the imports, on {os.cpu_count()} CPUs; "
        f"server CPU: the PostgreSQL process serving the command; PostGIS ANALYZE after the load, not in it: "
        f"{results[-1]['analyze_s']:.1f}s)"
    )


if __name__ == "__main__":
    main()
