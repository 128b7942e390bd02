"""Benchmark: new boundaries, then the first batch locate — the planner's and the analyst's whole jobs, one after
the other, as they run them (issue 15 §1).

    .venv/bin/python tests/benchmarks/activation_locate.py                          # the full demo, SpatiaLite
    .venv/bin/python tests/benchmarks/activation_locate.py --baseline /tmp/wt-base  # an earlier commit beside

Each round, on its own copy of the full demo (`gridmap demo`, built once under /tmp/gridmap-bench-activation/) and
with an empty index cache (`GRIDMAP_INDEX_CACHE`): a draft is made as a copy of the active boundaries, then
`gridmap boundaries activate GEN --force` (wall time of the process), then `gridmap locate-file` on 1,000,000
points in the district's box (Parquet) twice: the first run after the activation and again. Beside it the naive
geopandas pipeline of tests/benchmarks/locate.py (read Parquet, read the leaves from the same database, sjoin
within, write) on the same files; ratios naive ÷ gridmap. With `--baseline`, that checkout's gridmap is run the
same way in turn and the output files of the two are compared whole.

Since the activation writes the new boundaries' index file (`generations.shared_index`), the first locate-file
after it loads the index instead of building it. No assertion on time; the load average is printed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).parent))
GM = str(Path(sys.executable).with_name("gridmap"))
WORK = Path("/tmp/gridmap-bench-activation")
POINTS = 1_000_000
DRAFT = """import sys
from gridmap.store import engine as storage
from gridmap.boundaries.generations import create_draft
engine = storage.make_engine(sys.argv[1])
with storage.session_scope(storage.make_sessionmaker(engine)) as session:
    print(create_draft(session, "bench").id)
"""


def _timed(cmd: list[str], env: dict[str, str]) -> float:
    t = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{' '.join(cmd[:4])}… failed:\n{done.stdout[-800:]}\n{done.stderr[-2000:]}")
    return time.perf_counter() - t


def main() -> None:
    from locate import NAIVE

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--baseline", help="another checkout (e.g. a worktree of an earlier commit), run in turn")
    args = parser.parse_args()
    WORK.mkdir(exist_ok=True)
    source = WORK / "full.sqlite"
    if not (WORK / "full.done").exists():
        for suffix in ("", "-wal", "-shm"):
            Path(f"{source}{suffix}").unlink(missing_ok=True)
        url = f"sqlite:///{source}"
        subprocess.run([GM, "--database", url, "init"], check=True, capture_output=True)
        subprocess.run([GM, "--database", url, "demo", "--no-progress"], check=True, capture_output=True)
        (WORK / "full.done").write_text("gridmap demo\n")
    points = WORK / "points.parquet"
    if not points.exists():
        rng = np.random.default_rng(7)
        lon, lat = rng.uniform(102.70, 102.95, POINTS), rng.uniform(24.90, 25.10, POINTS)
        pd.DataFrame({"id": np.arange(POINTS), "lon": lon, "lat": lat}).to_parquet(points)
    (WORK / "naive.py").write_text(NAIVE)
    (WORK / "draft.py").write_text(DRAFT)
    checkouts = [("gridmap", str(ROOT))] + ([(f"baseline {args.baseline}", args.baseline)] if args.baseline else [])
    print(f"== an activation, then locate-file on {POINTS:,} points, full demo on SpatiaLite, {args.rounds} rounds")
    outputs: dict[str, Path] = {}
    for n in range(args.rounds):
        for k, (name, checkout) in enumerate(checkouts):
            db, cache = WORK / f"db-{k}.sqlite", WORK / f"cache-{k}"
            for suffix in ("", "-wal", "-shm"):
                Path(f"{db}{suffix}").unlink(missing_ok=True)
            shutil.copyfile(source, db)
            shutil.rmtree(cache, ignore_errors=True)
            url = f"sqlite:///{db}"
            path = os.pathsep.join([checkout, f"{checkout}/api", f"{checkout}/web"])
            env = {**os.environ, "PYTHONPATH": path, "GRIDMAP_INDEX_CACHE": str(cache)}
            gen = subprocess.run(
                [sys.executable, str(WORK / "draft.py"), url], env=env, capture_output=True, text=True, check=True
            ).stdout.strip()
            activate = _timed([GM, "--database", url, "boundaries", "activate", gen, "--force"], env)
            out = outputs[name] = WORK / f"out-{k}.parquet"
            locate = [GM, "--database", url, "locate-file", str(points), str(out), "--no-progress"]
            first = _timed(locate, env)
            again = _timed(locate, env)
            naive = _timed(
                [sys.executable, str(WORK / "naive.py"), str(db), str(points), str(WORK / "naive.parquet")], env
            )
            print(
                f"   round {n + 1}, {name}: activate {activate:5.1f} s; then locate-file first {first:5.1f} s "
                f"({naive / first:4.1f}× the naive pipeline's {naive:4.1f} s), again {again:5.1f} s "
                f"({naive / again:4.1f}×); activate + first locate-file {activate + first:5.1f} s "
                f"(load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)",
                flush=True,
            )
    if len(outputs) == 2:
        a, b = (pd.read_parquet(p) for p in outputs.values())
        print(f"   the two checkouts' output files: {'equal' if a.equals(b) else 'DIFFERENT'}")


if __name__ == "__main__":
    main()
