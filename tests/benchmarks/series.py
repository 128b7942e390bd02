"""Benchmark: the 12-month series of one area (`GET /api/v1/areas/{code}/series`) on the full Guandu demo (8
sub-districts, 99 communities, 533 grids, 1,854 micro-grids, ~50,000 cases), on SpatiaLite and on PostGIS.

    .venv/bin/python tests/benchmarks/series.py              # builds the full demo once, then reuses it
    .venv/bin/python tests/benchmarks/series.py --rebuild    # builds both databases anew

The full demo (seed 7, today 2026-11-20, as tests/benchmarks/cases.py) is built once and kept: the SpatiaLite file
under /tmp/gridmap-bench-series/, and a PostGIS database named `gridmap_bench_series` on the test server
(GRIDMAP_TEST_POSTGRES_URL), analysed before timing as autovacuum would have it; `--drop` removes both
afterwards. SpatiaLite is timed as gridmap leaves it (no ANALYZE: gridmap never runs one).

For the district, a sub-district, a community and a grid it prints, best of REPS:

* old — the series as it was computed before: `measures.compute` once per month (12 calls), called directly;
* new — `measures.area_series`, called directly;
* route — `GET /api/v1/areas/{code}/series` through the app (FastAPI TestClient, signed in as demo-admin with a
  bearer token from /api/v1/auth/token), as the pages call it: what a user waits for, less the network;

and checks first that old and new give the same numbers for every month and every measure. Figures are
measurements on this machine at this moment; run it twice before believing a ratio.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import shutil
import sys
import time
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from gridmap.boundaries.areas import get_area  # noqa: E402
from gridmap.cases import measures  # noqa: E402
from gridmap.demo.accounts import DEMO_PASSWORD, create_demo_accounts  # noqa: E402
from gridmap.demo.load import load_demo  # noqa: E402
from gridmap.store import engine as storage  # noqa: E402
from gridmap.store.tables import Area, Case, Generation  # noqa: E402
from tests.conftest import POSTGRES_ADMIN_URL  # noqa: E402

TODAY = dt.date(2026, 11, 20)
CACHE = Path("/tmp/gridmap-bench-series")
SQLITE_FILE = CACHE / "full-demo.sqlite"
PG_NAME = "gridmap_bench_series"
UNTIL = dt.datetime(2026, 11, 20, 12, tzinfo=dt.timezone(dt.timedelta(hours=8)))  # the demo's "now"
REPS = 5


def _loaded(url: str) -> bool:
    engine = storage.make_engine(url)
    try:
        with engine.connect() as conn:
            return (conn.scalar(sa.select(sa.func.count()).select_from(Case)) or 0) > 40_000 and conn.scalar(
                sa.text("SELECT count(*) FROM account WHERE username = 'demo-admin'")
            ) == 1
    except sa.exc.DBAPIError:
        return False
    finally:
        engine.dispose()


def _upgrade(url: str) -> None:
    """A database kept from an earlier run, brought to the schema of this checkout (new indexes included)."""
    engine = storage.make_engine(url)
    storage.migrate(engine)
    engine.dispose()


def _build(url: str) -> float:
    engine = storage.make_engine(url)
    storage.migrate(engine)
    started = time.perf_counter()
    with storage.session_scope(storage.make_sessionmaker(engine)) as session:
        load_demo(session, "530111", small=False, seed=7, today=TODAY)
        create_demo_accounts(session, "530111")
    engine.dispose()
    return time.perf_counter() - started


def sqlite_url(rebuild: bool) -> str:
    url = f"sqlite:///{SQLITE_FILE}"
    if not rebuild and SQLITE_FILE.exists() and _loaded(url):
        _upgrade(url)
        return url
    shutil.rmtree(CACHE, ignore_errors=True)
    CACHE.mkdir(parents=True)
    print("building the full demo on SpatiaLite …", flush=True)
    print(f"  {_build(url):.0f} s", flush=True)
    return url


def _admin() -> sa.Engine:
    return sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")


def _analyze(url: str) -> None:
    """Table statistics and the visibility map, as autovacuum keeps them on a PostgreSQL server (the test server
    runs without it; a planner with no statistics takes 50,000 rows for one, and with no visibility map reads the
    table for what an index already holds)."""
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text("VACUUM ANALYZE"))
    engine.dispose()


def postgis_url(rebuild: bool) -> str:
    url = sa.engine.make_url(POSTGRES_ADMIN_URL).set(database=PG_NAME).render_as_string(hide_password=False)
    admin = _admin()
    with admin.connect() as conn:
        exists = conn.scalar(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": PG_NAME})
        if exists and not rebuild and _loaded(url):
            admin.dispose()
            _upgrade(url)
            _analyze(url)
            return url
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{PG_NAME}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{PG_NAME}"'))
    admin.dispose()
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE EXTENSION IF NOT EXISTS postgis"))
    engine.dispose()
    print("building the full demo on PostGIS …", flush=True)
    print(f"  {_build(url):.0f} s", flush=True)
    _analyze(url)
    return url


def drop_all() -> None:
    shutil.rmtree(CACHE, ignore_errors=True)
    admin = _admin()
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{PG_NAME}" WITH (FORCE)'))
    admin.dispose()


def old_series(session, code: str, months: int = 12, until: dt.datetime = UNTIL) -> list[dict]:
    """The series as it was computed before: `compute` over each month (China time), one month after the other."""
    area = get_area(session, code)
    end = until.astimezone(measures.CST)
    firsts = [end.replace(day=1, hour=0, minute=0, second=0, microsecond=0)]
    for _ in range(months - 1):
        firsts.insert(0, (firsts[0] - dt.timedelta(days=1)).replace(day=1))
    out = []
    for i, first in enumerate(firsts):
        last = firsts[i + 1] if i + 1 < len(firsts) else min(end, (first + dt.timedelta(days=32)).replace(day=1))
        if last <= first:
            continue
        total = measures.compute(
            session, measures.Period.of(first, last), "grid", under=code, under_level=area.level
        ).loc[[measures.TOTAL_KEY]]
        total["unit"], total["name"] = area.level, area.name
        record = measures.to_records(total.reset_index()[[c[0] for c in measures.COLUMNS]])[0]
        out.append({"month": f"{first:%Y-%m}", **{k: v for k, v in record.items() if k not in ("unit", "key", "name")}})
    return out


def best_of(fn, reps: int = REPS) -> tuple[float, object]:
    best, result = math.inf, None
    for _ in range(reps):
        started = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - started)
    return best, result


def areas_to_time(session) -> dict[str, str]:
    """The district, its first sub-district, that sub-district's first community and that community's first grid."""
    active = session.scalar(sa.select(Generation.id).where(Generation.status == "active"))

    def first(level: str, under: str) -> str:
        return session.scalar(
            sa.select(Area.code)
            .where(Area.generation_id == active, Area.level == level, Area.code.startswith(under))
            .order_by(Area.code)
            .limit(1)
        )

    sub = first("subdistrict", "530111")
    community = first("community", sub)
    return {"district": "530111", "sub-district": sub, "community": community, "grid": first("grid", community)}


def run(url: str, label: str) -> list[dict]:
    from fastapi.testclient import TestClient

    from gridmap_api.main import create_app
    from gridmap_api.settings import Settings

    engine = storage.make_engine(url)
    factory = storage.make_sessionmaker(engine)
    rows = []
    with TestClient(create_app(Settings(database_url=url, escalation_interval_s=3600))) as client:
        token = client.post("/api/v1/auth/token", data={"username": "demo-admin", "password": DEMO_PASSWORD})
        token.raise_for_status()
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        params = {"months": 12, "until": UNTIL.isoformat()}
        with factory() as session:
            codes = areas_to_time(session)
            for name, code in codes.items():
                cases = session.scalar(
                    sa.select(sa.func.count()).select_from(Case).where(Case.grid_code.startswith(code))
                )
                t_old, old = best_of(lambda code=code: old_series(session, code), reps=3)
                t_new, new = best_of(lambda code=code: measures.area_series(session, code, months=12, until=UNTIL))
                assert new == old, (label, code, [(a, b) for a, b in zip(old, new) if a != b][:1])

                def call(code=code):
                    response = client.get(f"/api/v1/areas/{code}/series", params=params, headers=headers)
                    response.raise_for_status()
                    return response.json()

                t_route, body = best_of(call)
                assert body["months"] == new, (label, code)
                rows.append(
                    {
                        "db": label,
                        "area": name,
                        "code": code,
                        "cases": cases,
                        "old": t_old,
                        "new": t_new,
                        "route": t_route,
                        "received": sum(m["received"] for m in new),
                    }
                )
                print(f"  {label} {name} done", flush=True)
    engine.dispose()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rebuild", action="store_true", help="build both databases anew")
    parser.add_argument("--drop", action="store_true", help="remove both databases at the end")
    parser.add_argument("--only", choices=("sqlite", "postgis"), help="one database only")
    args = parser.parse_args()
    rows = []
    try:
        if args.only != "postgis":
            rows += run(sqlite_url(args.rebuild), "SpatiaLite")
        if args.only != "sqlite":
            rows += run(postgis_url(args.rebuild), "PostGIS")
    finally:
        if args.drop:
            drop_all()
    print(
        f"\n12-month series on the full Guandu demo (until {UNTIL:%Y-%m-%d %H:%M} China time), best of {REPS} "
        "(old: best of 3); old and new agree on every month and measure"
    )
    print(
        f"{'database':<11} {'area':<13} {'code':<13} {'cases':>7} {'received':>9} {'old':>9} {'new':>9} "
        f"{'route':>9} {'old÷new':>8} {'old÷route':>9}"
    )
    for r in rows:
        print(
            f"{r['db']:<11} {r['area']:<13} {r['code']:<13} {r['cases']:>7} {r['received']:>9} "
            f"{r['old'] * 1000:>7.0f}ms {r['new'] * 1000:>7.0f}ms {r['route'] * 1000:>7.0f}ms "
            f"{r['old'] / r['new']:>8.1f} {r['old'] / r['route']:>9.1f}"
        )
    print(
        "(route: the whole request through the app — sign-in check, area check, the series, JSON — without "
        "the network; target under 300 ms for every area)"
    )


if __name__ == "__main__":
    main()
