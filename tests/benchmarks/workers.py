"""Benchmark: `gridmap serve --workers 2` on the full Guandu demo — memory per worker and start-up with the lookup
index built in each process (`GRIDMAP_SHARED_INDEX=false`, the peer) and memory-mapped from one file per generation
(`gridmap.boundaries.generations.shared_index`), cold (the first worker builds the file, the other waits and maps it)
and warm
(both map a file made before), in one run.

    .venv/bin/python tests/benchmarks/workers.py [--database sqlite:///…full-demo.sqlite] [--workers 2]

The database is copied (never changed); with none given, the file tests/benchmarks/series.py keeps under
/tmp/gridmap-bench-series/ is used. For each mode it prints the seconds until every worker answers, each worker's
RSS, PSS (its share of pages mapped by several processes) and USS (pages only it holds), from psutil, and the ratio
of the PSS sum to the peer's. Figures on a busy machine vary: the load average is printed with them.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import psutil  # noqa: E402

from tests.integration.test_workers import _connections, _free_port  # noqa: E402

SERIES_DB = Path("/tmp/gridmap-bench-series/full-demo.sqlite")


def run(url: str, workers: int, cache: Path, shared: bool) -> dict:
    port = _free_port()
    env = {
        **os.environ,
        "GRIDMAP_INDEX_CACHE": str(cache),
        "GRIDMAP_SHARED_INDEX": "true" if shared else "false",
        "GRIDMAP_ESCALATION_INTERVAL_S": "3600",
    }
    started = time.perf_counter()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gridmap.cli",
            "--database",
            url,
            "serve",
            "--workers",
            str(workers),
            "--port",
            str(port),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        conns = _connections(proc, port, None, workers)
        for conn in conns.values():  # one locate each: the index is in use
            conn.request("GET", "/api/v1/locate?lon=102.75&lat=25.0")
            conn.getresponse().read()
        ready_s = time.perf_counter() - started
        memory = {}
        for pid in conns:
            info = psutil.Process(pid).memory_full_info()
            memory[pid] = (info.rss, info.pss, info.uss)
        for conn in conns.values():
            conn.close()
        return {"ready_s": ready_s, "memory": memory}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", help="a SpatiaLite file URL holding the full demo (copied, not changed)")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    source = Path(args.database.removeprefix("sqlite:///")) if args.database else SERIES_DB
    if not source.exists():
        sys.exit(f"no full demo at {source}: run tests/benchmarks/series.py first, or give --database")
    folder = Path(tempfile.mkdtemp(prefix="gridmap-bench-workers-"))
    try:
        shutil.copyfile(source, folder / "demo.sqlite")
        url = f"sqlite:///{folder / 'demo.sqlite'}"
        cache = folder / "cache"
        print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; {args.workers} workers; {source}")
        results = {}
        for mode, shared in (
            ("built per process (peer)", False),
            ("shared file, cold", True),
            ("shared file, warm", True),
        ):
            results[mode] = out = run(url, args.workers, cache, shared)
            print(f"\n{mode}: every worker answering after {out['ready_s']:.1f} s")
            for pid, (rss, pss, uss) in out["memory"].items():
                print(
                    f"  worker {pid}: RSS {rss / 2**20:7.1f} MB  PSS {pss / 2**20:7.1f} MB  USS {uss / 2**20:7.1f} MB"
                )
            total = sum(m[1] for m in out["memory"].values())
            print(f"  PSS of the workers together: {total / 2**20:.1f} MB")
        peer = sum(m[1] for m in results["built per process (peer)"]["memory"].values())
        for mode in ("shared file, cold", "shared file, warm"):
            total = sum(m[1] for m in results[mode]["memory"].values())
            print(
                f"{mode}: PSS {total / peer:.2f}× the peer's; start-up "
                f"{results[mode]['ready_s'] / results['built per process (peer)']['ready_s']:.2f}× the peer's"
            )
        print(f"load average {os.getloadavg()[0]:.1f} at the end")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
