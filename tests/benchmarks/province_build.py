"""Benchmark: `gridmap demo --scale province` — this checkout beside an earlier one (a git ref), on SpatiaLite and
PostGIS, each into a new empty database, in one run.

    .venv/bin/python tests/benchmarks/province_build.py --ref f0c1ec1                 # 2 districts, 25,000 / 100,000
    .venv/bin/python tests/benchmarks/province_build.py --districts 16 --microgrids 200000 --cases 1000000 --ref none
    .venv/bin/python tests/benchmarks/province_build.py --keep-postgis gridmap_province --keep-sqlite /var/tmp/p.sqlite

Per build it prints the wall time of the whole command (migrations included), the CPU time of the command's own
process (the client) and, on PostGIS, of the server processes that served its database (sampled from /proc every
quarter second: only where the server runs on this machine), the peak RSS, the part spent on the areas (from the
start to the places written: micro-grids/s) and on the cases (from there to the statistics refreshed: cases/s,
from the command's progress lines), and the load average before and after. The earlier checkout is exported with
`git archive` and run with the same interpreter; `--ref none` runs this checkout only.

No assertion on time: a shared 2-core machine, so the load average is printed beside every figure.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.conftest import POSTGRES_ADMIN_URL  # noqa: E402

TODAY = "2026-11-20"
STAGE = re.compile(r"^\[\s*([\d.]+)s\] (.*)$")


def load() -> str:
    a, b, c = os.getloadavg()
    return f"{a:.1f} {b:.1f} {c:.1f}"


def export(ref: str) -> Path:
    """The tree of `ref` in a temporary directory."""
    where = Path(tempfile.mkdtemp(prefix="gridmap-province-ref-"))
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(where)], input=archive, check=True)
    return where


def _admin() -> sa.Engine:
    return sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")


def new_postgis(name: str) -> str:
    admin = _admin()
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = sa.engine.make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE EXTENSION IF NOT EXISTS postgis"))
    engine.dispose()
    return url


def drop_postgis(name: str) -> None:
    admin = _admin()
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


class ServerCpu:
    """The CPU seconds of the PostgreSQL processes serving database `name`, sampled from /proc (a backend's last
    sample before it exits is what is counted)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.seen: dict[int, float] = {}
        self.stop = threading.Event()
        self.engine = _admin()
        self.tick = os.sysconf("SC_CLK_TCK")
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _cpu(self, pid: int) -> float | None:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / self.tick  # utime, stime

    def _run(self) -> None:
        with self.engine.connect() as conn:
            while not self.stop.is_set():
                pids = conn.scalars(
                    sa.text("SELECT pid FROM pg_stat_activity WHERE datname = :n"), {"n": self.name}
                ).all()
                for pid in pids:
                    cpu = self._cpu(pid)
                    if cpu is not None:
                        self.seen[pid] = max(cpu, self.seen.get(pid, 0.0))
                self.stop.wait(0.25)

    def __enter__(self) -> ServerCpu:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop.set()
        self.thread.join()
        self.engine.dispose()

    @property
    def total(self) -> float | None:
        return sum(self.seen.values()) if self.seen and Path("/proc").exists() else None


def run(root: Path, url: str, args: argparse.Namespace, log: Path, server: str | None) -> dict[str, float | None]:
    """One build by the checkout at `root`: figures of the whole command and of its parts."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(str(root / p) for p in ("", "api", "web"))
    cmd = [sys.executable, "-m", "gridmap.cli", "--database", url, "demo", "--scale", "province"]
    cmd += ["--districts", str(args.districts), "--microgrids", str(args.microgrids), "--cases", str(args.cases)]
    cmd += ["--today", TODAY]
    if args.nice:
        cmd = ["nice", "-n", str(args.nice), *cmd]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    sampler = ServerCpu(server) if server else None
    with log.open("w") as out:
        if sampler:
            with sampler:
                code = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=root).returncode
        else:
            code = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=root).returncode
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if code:
        raise SystemExit(f"build failed ({code}):\n{log.read_text()[-3000:]}")
    stages = {}
    for line in log.read_text().splitlines():
        found = STAGE.match(line)
        if found:
            stages[found[2].split(" (")[0].rstrip("0123456789, ")] = float(found[1])
    places = stages.get("wrote places")
    done = stages.get("statistics refreshed")
    return {
        "wall": wall,
        "client_cpu": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        "server_cpu": sampler.total if sampler else None,
        "rss_mb": after.ru_maxrss / 1024,
        "areas_s": places,
        "cases_s": (done - places) if done is not None and places is not None else None,
    }


def show(label: str, figures: dict[str, float | None], args: argparse.Namespace, loads: tuple[str, str]) -> None:
    server = figures["server_cpu"]
    areas, cases = figures["areas_s"], figures["cases_s"]
    print(
        f"   {label:<26} {figures['wall']:7.1f} s wall, client CPU {figures['client_cpu']:6.1f} s, server CPU "
        + (f"{server:6.1f} s" if server is not None else "   n/a")
        + f", peak RSS {figures['rss_mb']:5.0f} MB; areas {areas or 0:6.1f} s "
        f"({args.microgrids / areas if areas else 0:7,.0f} micro-grids/s), cases {cases or 0:7.1f} s "
        f"({args.cases / cases if cases else 0:7,.0f} cases/s); load {loads[0]} → {loads[1]}",
        flush=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--districts", type=int, default=2)
    parser.add_argument("--microgrids", type=int, default=25_000)
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--ref", default="f0c1ec1", help="the earlier checkout to run beside this one, or none")
    parser.add_argument("--only", choices=("sqlite", "postgis"), default=None)
    parser.add_argument("--nice", type=int, default=10)
    parser.add_argument("--keep-postgis", default=None, help="build this checkout's into this database and keep it")
    parser.add_argument("--keep-sqlite", default=None, help="build this checkout's into this file and keep it")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="gridmap-province-build-", dir=os.environ.get("BENCH_DIR", "/var/tmp")))
    versions = [("this checkout", ROOT)]
    exported = None
    if args.ref != "none":
        exported = export(args.ref)
        versions.insert(0, (f"at {args.ref}", exported))
    print(
        f"== gridmap demo --scale province --districts {args.districts} --microgrids {args.microgrids:,} "
        f"--cases {args.cases:,} (nice {args.nice}; {os.cpu_count()} cores)",
        flush=True,
    )
    try:
        for kind in ("postgis", "sqlite"):
            if args.only and kind != args.only:
                continue
            print(f"-- {kind}", flush=True)
            for k, (label, root) in enumerate(versions):
                mine = root == ROOT
                if kind == "postgis":
                    name = (args.keep_postgis if mine else None) or f"gridmap_province_build_{k}"
                    url, server = new_postgis(name), name
                else:
                    path = Path(args.keep_sqlite) if (mine and args.keep_sqlite) else work / f"build-{k}.sqlite"
                    for old in path.parent.glob(path.name + "*"):
                        old.unlink()
                    path.parent.mkdir(parents=True, exist_ok=True)
                    url, server = f"sqlite:///{path}", None
                first = load()
                figures = run(root, url, args, work / f"{kind}-{k}.log", server)
                show(label, figures, args, (first, load()))
                if kind == "postgis" and not (mine and args.keep_postgis):
                    drop_postgis(name)
                elif kind == "sqlite" and not (mine and args.keep_sqlite):
                    for old in path.parent.glob(path.name + "*"):
                        old.unlink()
    finally:
        if exported:
            shutil.rmtree(exported, ignore_errors=True)
    print(f"   logs: {work}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
