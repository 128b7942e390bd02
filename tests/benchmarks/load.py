"""Load test (issue 15 §8): a mixed workload driven by locust against `gridmap serve --workers 2` on PostGIS.

    .venv/bin/python tests/benchmarks/load.py [--seconds 60] [--users 30] [--workers 2] [--keep]
    make load-test                        # the same, after installing locust into .venv-load

What it does, in one run:

1. A fresh PostGIS database `gridmap_load` with the full demo (the district 530111, ~2 years of cases, the demo
   accounts): copied from the kept benchmark database `gridmap_bench_series` (tests/benchmarks/series.py) with
   `CREATE DATABASE … TEMPLATE` when nobody is connected to it, else loaded here with `load_demo` (minutes on a
   busy machine). The copy is brought to this checkout's schema and analysed. Intake writes to it, so it is never
   the kept database itself; it is dropped at the end unless --keep.
2. A plan for the users (tests/benchmarks/locustfile.py): points inside grids, area codes, categories, the tiles
   over the district and over the manager's community, and two API keys (hotline integration, Open311 app).
3. `gridmap serve --workers N` on a free port, with the rate limits off (a load test from one address would
   otherwise measure the limiter) and Open311 posting allowed for the plan's key.
4. Locust headless (from .venv-load, its own pinned environment: requirements-load.lock) for --seconds with
   --users, while this process samples the CPU of each process every second: the server's workers, the
   PostgreSQL backends serving the test database, and locust itself.
5. The table: per operation requests, failures (any answer that is not 2xx/304), req/s, p50, p99; the CPU of each
   process group (share of one core, averaged over the run, and its peak) and the machine's load average — the
   machine is shared, so the figures are those of a loaded machine, and the table says what saturated first.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from gridmap.access import accounts  # noqa: E402
from gridmap.demo.accounts import create_demo_accounts  # noqa: E402
from gridmap.store import engine as storage  # noqa: E402

ADMIN_URL = os.environ.get("GRIDMAP_BENCH_PG_ADMIN", "postgresql://gridmap_test:gridmap_test@127.0.0.1:5432/postgres")
TEMPLATE = "gridmap_bench_series"
DB = "gridmap_load"
DISTRICT = "530111"
LOCUST = Path(os.environ.get("GRIDMAP_LOCUST", ROOT / ".venv-load" / "bin" / "locust"))
GRIDMAP = Path(sys.executable).parent / "gridmap"
TILE_ZOOM = 14


def _url(name: str) -> str:
    return ADMIN_URL.rsplit("/", 1)[0] + "/" + name


def make_database() -> str:
    """A fresh database with the full demo: a copy of the kept one when it can be copied, else loaded."""
    admin = sa.create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    url = _url(DB)
    started = time.perf_counter()
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{DB}" WITH (FORCE)'))
        has_template = conn.scalar(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": TEMPLATE})
        copied = False
        if has_template:
            try:
                conn.execute(sa.text(f'CREATE DATABASE "{DB}" TEMPLATE "{TEMPLATE}"'))
                copied = True
            except sa.exc.DBAPIError as exc:  # someone is connected to it: load our own instead
                print(
                    f"  cannot copy {TEMPLATE} ({str(exc.orig).strip().splitlines()[0]}); loading the demo", flush=True
                )
        if not copied:
            conn.execute(sa.text(f'CREATE DATABASE "{DB}"'))
    admin.dispose()
    engine = storage.make_engine(url)
    storage.migrate(engine)
    factory = storage.make_sessionmaker(engine)
    if not copied:
        from gridmap.demo.load import load_demo

        with storage.session_scope(factory) as session:
            load_demo(session, DISTRICT, small=False, seed=7)
    with storage.session_scope(factory) as session:
        create_demo_accounts(session, DISTRICT)
    engine.dispose()
    with sa.create_engine(url, isolation_level="AUTOCOMMIT").connect() as conn:
        conn.execute(sa.text("ANALYZE"))
    how = f"copied from {TEMPLATE}" if copied else "demo loaded"
    print(f"database {DB}: {how}, {time.perf_counter() - started:.0f} s", flush=True)
    return url


def _tile_of(lon: float, lat: float, z: int) -> tuple[int, int]:
    n = 2**z
    x = int((lon + 180.0) / 360.0 * n)
    y = int((1.0 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2.0 * n)
    return x, y


def _tiles(bounds: tuple[float, float, float, float], z: int) -> list[list[int]]:
    """Top-left corners of the 2×2 tile blocks over a bounding box (lon/lat) at zoom z."""
    x0, y0 = _tile_of(bounds[0], bounds[3], z)
    x1, y1 = _tile_of(bounds[2], bounds[1], z)
    return [[z, x, y] for x in range(x0, max(x0, x1 - 1) + 1) for y in range(y0, max(y0, y1 - 1) + 1)]


def make_plan(url: str) -> dict:
    engine = storage.make_engine(url)
    with engine.connect() as conn:
        active = conn.scalar(sa.text("SELECT id FROM generation WHERE status = 'active'"))
        points = [
            [float(x), float(y)]
            for x, y in conn.execute(
                sa.text(
                    "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) AS p FROM area "
                    "WHERE generation_id = :g AND level = 'grid' ORDER BY md5(code) LIMIT 500) s"
                ),
                {"g": active},
            )
        ]
        subdistricts = list(
            conn.scalars(
                sa.text("SELECT code FROM area WHERE generation_id = :g AND level = 'subdistrict' ORDER BY code"),
                {"g": active},
            )
        )
        categories = list(
            conn.scalars(sa.text("SELECT code FROM case_category WHERE active IS NOT false ORDER BY code"))
        )
        # Open311 asks an asset or visit attribute of component and service categories: the apps' plain reports
        # are events
        events = list(
            conn.scalars(
                sa.text("SELECT code FROM case_category WHERE active IS NOT false AND kind = 'event' ORDER BY code")
            )
        )
        community = conn.scalar(
            sa.text("SELECT code FROM area WHERE generation_id = :g AND level = 'community' ORDER BY code LIMIT 1"),
            {"g": active},
        )

        def bounds(code: str) -> tuple[float, float, float, float]:
            row = conn.execute(
                sa.text(
                    "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM (SELECT "
                    "ST_Extent(geom) AS e FROM area WHERE generation_id = :g AND code = :c) s"
                ),
                {"g": active, "c": code},
            ).one()
            return tuple(float(v) for v in row)

        district_tiles = _tiles(bounds(DISTRICT), TILE_ZOOM)
        community_tiles = _tiles(bounds(community), TILE_ZOOM + 2)
    factory = storage.make_sessionmaker(engine)
    with storage.session_scope(factory) as session:
        keys = {
            scope: accounts.add_api_key(session, f"load test {scope}", (scope,), created_by="load.py")[1]
            for scope in ("hotline", "report", "locate")
        }
    engine.dispose()
    if not points or not events or not district_tiles:
        raise SystemExit("the database holds no grids or categories: is the demo loaded?")
    return {
        "points": points,
        "subdistricts": subdistricts,
        "categories": categories,
        "events": events,
        "community": community,
        "tiles": district_tiles,
        "community_tiles": community_tiles,
        "keys": keys,
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(url: str, workers: int, port: int, log: Path, open311_key: str) -> subprocess.Popen:
    env = {
        **os.environ,
        "GRIDMAP_DATABASE_URL": url,
        "GRIDMAP_OPEN311_API_KEYS": open311_key,
        "GRIDMAP_RATE_ANONYMOUS_INTAKE": "off",
        "GRIDMAP_RATE_OPEN311_POST": "off",
        "GRIDMAP_RATE_OPEN311_KEY": "off",
        "GRIDMAP_RATE_SIGNIN_ACCOUNT": "off",
        "GRIDMAP_RATE_SIGNIN_ADDRESS": "off",
    }
    server = subprocess.Popen(
        [str(GRIDMAP), "serve", "--workers", str(workers), "--port", str(port)],
        env=env,
        cwd=ROOT,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server stopped ({server.returncode}):\n{log.read_text()[-3000:]}")
        if log.read_text(errors="replace").count("Application startup complete") >= workers:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/queues", timeout=30)
            except urllib.error.HTTPError:  # 401: it answers
                return server
            except OSError:
                pass
        time.sleep(1)
    raise SystemExit("the server did not start within 10 minutes")


def stop(process: subprocess.Popen) -> None:
    """The process and its children (the process group it leads)."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)


class CpuSampler(threading.Thread):
    """CPU of each process group, sampled every second: server workers, PostgreSQL backends of the database under
    test (found in pg_stat_activity), locust. Per group: the mean and peak share of one core over the run."""

    def __init__(self, server: subprocess.Popen, url: str):
        super().__init__(daemon=True)
        self.server = psutil.Process(server.pid)
        self.locust: psutil.Process | None = None
        self.engine = sa.create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT", pool_size=1)
        self.samples: dict[str, list[float]] = {}
        self.machine: list[float] = []
        self.done = threading.Event()

    def _groups(self) -> dict[str, list[psutil.Process]]:
        children = self.server.children(recursive=True)
        workers = [
            p for p in children if "multiprocessing" in " ".join(p.cmdline()) and "spawn_main" in " ".join(p.cmdline())
        ] or children
        with self.engine.connect() as conn:
            pids = list(conn.scalars(sa.text("SELECT pid FROM pg_stat_activity WHERE datname = :d"), {"d": DB}))
        groups = {f"worker {i + 1}": [p] for i, p in enumerate(sorted(workers, key=lambda p: p.pid))}
        groups["postgres (all backends)"] = [psutil.Process(pid) for pid in pids if psutil.pid_exists(pid)]
        if self.locust is not None:
            groups["locust"] = [self.locust, *self.locust.children(recursive=True)]
        return groups

    def run(self) -> None:
        last: dict[int, float] = {}
        last_t = time.monotonic()
        psutil.cpu_percent(None)
        while not self.done.wait(1.0):
            try:
                groups = self._groups()
            except (psutil.Error, sa.exc.DBAPIError):
                continue
            now = time.monotonic()
            span = now - last_t
            last_t = now
            self.machine.append(psutil.cpu_percent(None))
            seen: dict[int, float] = {}
            for name, procs in groups.items():
                share = 0.0
                for p in procs:
                    try:
                        t = sum(p.cpu_times()[:2])
                    except psutil.Error:
                        continue
                    seen[p.pid] = t
                    if p.pid in last:
                        share += (t - last[p.pid]) / span
                self.samples.setdefault(name, []).append(100.0 * share)
            last = seen

    def cpu_seconds(self, prefix: str) -> float:
        """CPU seconds used over the run by the groups whose name starts with `prefix` (samples are 1 s apart)."""
        return sum(sum(v[1:]) / 100.0 for n, v in self.samples.items() if n.startswith(prefix))

    def table(self) -> list[str]:
        lines = []
        for name, values in self.samples.items():
            values = values[1:] or values  # the first sample has no previous reading
            if values:
                lines.append(
                    f"  {name:<26} mean {sum(values) / len(values):5.0f} %   peak {max(values):5.0f} %   "
                    f"{sum(values) / 100.0:6.1f} CPU s"
                )
        if self.machine:
            lines.append(
                f"  {'machine (all ' + str(psutil.cpu_count()) + ' cores)':<26} mean "
                f"{sum(self.machine) / len(self.machine):5.0f} %   peak {max(self.machine):5.0f} %"
            )
        return lines


def run_locust(
    host: str, users: int, spawn_rate: float, seconds: int, plan_path: Path, out: Path, sampler: CpuSampler
) -> int:
    env = {**os.environ, "GRIDMAP_LOAD_PLAN": str(plan_path)}
    cmd = [
        str(LOCUST),
        "-f",
        str(Path(__file__).with_name("locustfile.py")),
        "--headless",
        "--host",
        host,
        "--users",
        str(users),
        "--spawn-rate",
        str(spawn_rate),
        "--run-time",
        f"{seconds}s",
        "--csv",
        str(out / "load"),
        "--only-summary",
        "--stop-timeout",
        "10",
        "--loglevel",
        "WARNING",
    ]
    locust = subprocess.Popen(
        cmd, env=env, cwd=ROOT, stdout=(out / "locust.log").open("wb"), stderr=subprocess.STDOUT, start_new_session=True
    )
    sampler.locust = psutil.Process(locust.pid)
    try:
        return locust.wait(seconds + 120)
    finally:
        stop(locust)


def report(out: Path, seconds: int) -> list[dict]:
    rows = list(csv.DictReader((out / "load_stats.csv").open()))
    print(f"\n{'operation':<22}{'requests':>9}{'failures':>9}{'req/s':>8}{'p50 ms':>8}{'p99 ms':>8}{'max ms':>8}")
    for r in rows:
        name = r["Name"] if r["Name"] != "Aggregated" else "ALL"
        print(
            f"{r['Type'] + ' ' + name if name != 'ALL' else 'ALL':<22.22}{r['Request Count']:>9}"
            f"{r['Failure Count']:>9}{float(r['Requests/s']):>8.1f}{r['50%']:>8}{r['99%']:>8}"
            f"{float(r['Max Response Time']):>8.0f}"
        )
    failures = list(csv.DictReader((out / "load_failures.csv").open())) if (out / "load_failures.csv").exists() else []
    if failures:
        print("\nfailures (operation, error, count):")
        for f in failures:
            print(f"  {f['Method']} {f['Name']}: {f['Error'][:160]} × {f['Occurrences']}")
    return rows


def verdict(rows: list[dict], sampler: CpuSampler, users: int) -> str:
    """What saturated first: a group whose mean CPU is near its ceiling (one core per process) while the others
    are not; on a shared machine whose cores are all busy, the machine itself."""
    means = {n: sum(v[1:] or v) / len(v[1:] or v) for n, v in sampler.samples.items() if v}
    workers = [v for n, v in means.items() if n.startswith("worker")]
    machine = sum(sampler.machine) / len(sampler.machine) if sampler.machine else 0.0
    notes = []
    if workers and min(workers) >= 80:
        notes.append(f"the server workers (each ≥ 80 % of a core: {', '.join(f'{w:.0f} %' for w in workers)})")
    if means.get("locust", 0) >= 80:
        notes.append(f"the load generator (locust {means['locust']:.0f} % of its one core)")
    if means.get("postgres (all backends)", 0) >= 80:
        notes.append(f"PostgreSQL ({means['postgres (all backends)']:.0f} % of a core over its backends)")
    if machine >= 90:
        notes.append(f"the machine ({machine:.0f} % of all cores busy, other agents included)")
    if not notes:
        return f"nothing saturated at {users} users: the users' think times bound the rate; raise --users"
    return "saturated: " + "; ".join(notes)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--users", type=int, default=30)
    ap.add_argument("--spawn-rate", type=float, default=5.0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--keep", action="store_true", help="keep the database gridmap_load afterwards")
    args = ap.parse_args()
    if not LOCUST.exists():
        raise SystemExit(f"{LOCUST} not found: `make load-test` installs locust from requirements-load.lock")
    load_before = os.getloadavg()
    print(
        f"load test: {args.users} users, {args.seconds} s, {args.workers} workers on PostGIS; machine load "
        f"average {load_before[0]:.1f} on {psutil.cpu_count()} cores (shared with other work)",
        flush=True,
    )
    url = make_database()
    out = Path(tempfile.mkdtemp(prefix="gridmap-load-"))
    plan = make_plan(url)
    plan_path = out / "plan.json"
    plan_path.write_text(json.dumps(plan))
    port = _free_port()
    started = time.perf_counter()
    server = start_server(url, args.workers, port, out / "server.log", plan["keys"]["report"])
    print(
        f"server: {args.workers} workers up in {time.perf_counter() - started:.0f} s (log {out / 'server.log'})",
        flush=True,
    )
    sampler = CpuSampler(server, url)
    try:
        sampler.start()
        code = run_locust(
            f"http://127.0.0.1:{port}", args.users, args.spawn_rate, args.seconds, plan_path, out, sampler
        )
        sampler.done.set()
        sampler.join(5)
        load_after = os.getloadavg()
        rows = report(out, args.seconds)
        print("\nCPU per process (100 % = one core), sampled every second during the run:")
        print("\n".join(sampler.table()))
        print(
            f"\nmachine load average: {load_before[0]:.1f} before, {load_after[0]:.1f} after (1 min), "
            f"{psutil.cpu_count()} cores shared with other agents' work"
        )
        print(verdict(rows, sampler, args.users))
        total = next((r for r in rows if r["Name"] == "Aggregated"), None)
        requests = int(total["Request Count"]) if total else 0
        signins = sum(int(r["Request Count"]) for r in rows if r["Name"] == "sign-in")
        for label, prefix, cores in (("server workers", "worker", args.workers), ("PostgreSQL", "postgres", None)):
            spent = sampler.cpu_seconds(prefix)
            if requests and spent > 0:
                per = 1000.0 * spent / requests
                ceiling = (
                    f", so about {1000.0 / per * cores:.0f} req/s of this mix on {cores} free cores" if cores else ""
                )
                print(
                    f"{label}: {per:.1f} ms of CPU per request (sign-ins included: {signins} of {requests}, "
                    f"argon2 by design){ceiling}"
                )
        total = next((r for r in rows if r["Name"] == "Aggregated"), None)
        if total is None or int(total["Request Count"]) == 0:
            print("no request was made: see", out / "locust.log")
            return 1
        failed = int(total["Failure Count"]) / int(total["Request Count"])
        print(f"failures: {failed:.1%} of all requests; locust exit code {code}; files in {out}")
        return 0 if failed < 0.01 else 1
    finally:
        sampler.done.set()
        stop(server)
        if not args.keep:
            admin = sa.create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{DB}" WITH (FORCE)'))
            admin.dispose()


if __name__ == "__main__":
    sys.exit(main())
