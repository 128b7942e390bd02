"""Benchmark: planning on the full Guandu demo (1 district, 8 sub-districts, 99 communities, 533 grids, 1,854
micro-grids), on the embedded SpatiaLite file and on PostGIS, same data, one run.

    .venv/bin/python tests/benchmarks/planning.py                 # full demo: builds both databases (a few minutes)
    .venv/bin/python tests/benchmarks/planning.py --small         # the small demo, for a quick look
    .venv/bin/python tests/benchmarks/planning.py --sqlite URL --postgis URL   # databases already holding the demo

It prints, for each database:

* check — `gridmap.boundaries.check.check_generation` of the whole demo district (every level, every area; best of
  3), against the peer a PostGIS user would write on the same tables: per parent `ST_Union` of the children
  compared with the parent (`ST_Difference` both ways: gaps and parts outside), pairwise `ST_Intersection` of
  siblings whose boxes meet (overlaps), `ST_IsValid` of every area; areas in m² on the geography type. It runs on
  the active generation (clean: the peer must find nothing over 1 m²) and on a draft with injected defects (a
  micro-grid moved 30 m, one shrunk by 2 %, one grown by 20 m), where both must name the same parents with gaps
  and parts outside and the same overlapping pairs (over 1 m²); the comparison is printed before the times;
* edits — if `gridmap.planning.edit` is present: the latency of each edit operation on one community of a draft
  (move an edge, move a vertex, paint a compound or a building to a neighbouring micro-grid, split, merge,
  undo, redo; each applied and committed as the API does), median and worst of several targets, against the
  target of 300 ms;
* rebalance — if `gridmap.planning.partition` is present: the time of `partition.propose` per community over the first
  `--communities` communities, for n = its current grid count, n − 1 and n + 1 (±10 %, seed 0): median and worst,
  how many proposals meet the tolerance and contiguity, households moved, and how long an infeasible target
  takes to be refused.

Hooks: `time_check`, `peer_check`, `time_edits`, `time_rebalance` take a database URL and return plain dicts, so
other benchmarks (or a later version of this one) can call them on their own data. Figures are measurements on
this machine at this moment; run it twice before believing a ratio.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import shapely
import sqlalchemy as sa
from geoalchemy2.shape import from_shape, to_shape

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from gridmap.boundaries.check import check_generation  # noqa: E402
from gridmap.boundaries.generations import create_draft  # noqa: E402
from gridmap.demo.load import load_demo  # noqa: E402
from gridmap.geo.coverage import as_multipolygon  # noqa: E402
from gridmap.store import engine as storage  # noqa: E402
from gridmap.store.tables import Area, Generation, Place  # noqa: E402
from tests.conftest import _new_postgis_database  # noqa: E402

TODAY = dt.date(2026, 11, 20)
THRESHOLD_M2 = 1.0  # problems smaller than this are slivers/noise in both the check and the peer
EDIT_TARGET_MS = 300.0
M_PER_DEG = 111_320.0

PEER_INVALID = """
SELECT code FROM area WHERE generation_id = :g AND NOT ST_IsValid(geom) ORDER BY code
"""
PEER_PARENTS = """
WITH u AS (
    SELECT parent_id, ST_Union(geom) AS geom
    FROM area WHERE generation_id = :g AND parent_id IS NOT NULL
    GROUP BY parent_id
)
SELECT p.code,
       ST_Area(ST_Difference(p.geom, u.geom)::geography) AS gap_m2,
       ST_Area(ST_Difference(u.geom, p.geom)::geography) AS outside_m2
FROM u JOIN area p ON p.id = u.parent_id
ORDER BY p.code
"""
PEER_OVERLAPS = """
SELECT code_a, code_b, m2 FROM (
    SELECT a.code AS code_a, b.code AS code_b, ST_Area(ST_Intersection(a.geom, b.geom)::geography) AS m2
    FROM area a JOIN area b
      ON b.parent_id = a.parent_id AND a.id < b.id AND a.geom && b.geom
    WHERE a.generation_id = :g AND b.generation_id = :g AND ST_Intersects(a.geom, b.geom)
) AS pairs
WHERE m2 > :threshold
ORDER BY code_a, code_b
"""


def best_of(fn, reps: int = 3):
    best, out = float("inf"), None
    for _ in range(reps):
        started = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - started)
    return best, out


def build(url: str, small: bool) -> float:
    """Schema and the demo (full unless `small`); seconds taken."""
    engine = storage.make_engine(url)
    storage.migrate(engine)
    started = time.perf_counter()
    with storage.session_scope(storage.make_sessionmaker(engine)) as session:
        load_demo(session, "530111", small=small, seed=7, today=TODAY)
    engine.dispose()
    return time.perf_counter() - started


def active_id(url: str) -> int:
    engine = storage.make_engine(url)
    with engine.connect() as conn:
        gen = conn.scalar(sa.select(Generation.id).where(Generation.status == "active"))
    engine.dispose()
    return gen


def level_counts(url: str, generation_id: int) -> dict[str, int]:
    engine = storage.make_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(Area.level, sa.func.count()).where(Area.generation_id == generation_id).group_by(Area.level)
        ).all()
    engine.dispose()
    return dict(rows)


# -- the check and its peer ----------------------------------------------------------------------------------------


def time_check(url: str, generation_id: int, reps: int = 3) -> dict:
    """gridmap's check of a whole generation (reading it from the database included): best of `reps`."""
    engine = storage.make_engine(url)
    factory = storage.make_sessionmaker(engine)
    with factory() as session:
        seconds, report = best_of(lambda: check_generation(session, generation_id), reps)
    engine.dispose()
    return {"seconds": seconds, "report": report, "findings": findings_of(report)}


def findings_of(report: dict) -> dict:
    """What the peer can also say, from the check's report: parents with gaps or parts outside, overlapping pairs,
    invalid areas (errors over THRESHOLD_M2)."""
    big = [
        p
        for p in report["problems"]
        if p["severity"] == "error" and (p["area_m2"] is None or p["area_m2"] > THRESHOLD_M2)
    ]
    return {
        "invalid": sorted({c for p in big if p["kind"] == "invalid_geometry" for c in p["codes"]}),
        "gap_parents": sorted({p["parent"] for p in big if p["kind"] in ("gap", "hole") and p["parent"]}),
        "outside_parents": sorted({p["parent"] for p in big if p["kind"] == "outside_parent" and p["parent"]}),
        "overlaps": sorted({tuple(sorted(p["codes"]))[:2] for p in big if p["kind"] == "overlap"}),
    }


def peer_check(url: str, generation_id: int, reps: int = 3) -> dict:
    """The PostGIS peer (SQL a user would write; see PEER_*): best of `reps`, each query timed."""
    engine = storage.make_engine(url)
    params = {"g": generation_id, "threshold": THRESHOLD_M2}

    def run():
        times = {}
        with engine.connect() as conn:
            for name, sql in (("invalid", PEER_INVALID), ("parents", PEER_PARENTS), ("overlaps", PEER_OVERLAPS)):
                started = time.perf_counter()
                times[name] = (conn.execute(sa.text(sql), params).all(), time.perf_counter() - started)
        return times

    seconds, times = best_of(run, reps)
    engine.dispose()
    parents = times["parents"][0]
    return {
        "seconds": seconds,
        "per_query": {k: v[1] for k, v in times.items()},
        "findings": {
            "invalid": sorted(r.code for r in times["invalid"][0]),
            "gap_parents": sorted(r.code for r in parents if r.gap_m2 > THRESHOLD_M2),
            "outside_parents": sorted(r.code for r in parents if r.outside_m2 > THRESHOLD_M2),
            "overlaps": sorted((r.code_a, r.code_b) for r in times["overlaps"][0]),
        },
    }


def inject_defects(url: str, source_id: int) -> tuple[int, dict]:
    """A draft copy of `source_id` with three micro-grids changed in the table (as a broken import would leave
    them): one moved 30 m east, one shrunk by 2 % about its centroid, one grown by 20 m. Deterministic: the first
    micro-grids (by code) of the first, third and fifth grids."""
    engine = storage.make_engine(url)
    with storage.session_scope(storage.make_sessionmaker(engine)) as session:
        draft = create_draft(session, "基准：注入缺陷 (benchmark: injected defects)")
        grids = session.scalars(
            sa.select(Area).where(Area.generation_id == draft.id, Area.level == "grid").order_by(Area.code)
        ).all()

        def first_leaf(grid):
            return session.scalars(sa.select(Area).where(Area.parent_id == grid.id).order_by(Area.code)).first()

        moved, shrunk, grown = (first_leaf(grids[i % len(grids)]) for i in (0, 2, 4))
        geom = to_shape(moved.geom)
        lat = geom.centroid.y
        moved.geom = from_shape(
            shapely.affinity.translate(geom, xoff=30 / (M_PER_DEG * math.cos(math.radians(lat)))), srid=4326
        )
        geom = to_shape(shrunk.geom)
        shrunk.geom = from_shape(
            as_multipolygon(shapely.affinity.scale(geom, 0.98, 0.98, origin="centroid")), srid=4326
        )
        geom = to_shape(grown.geom)
        grown.geom = from_shape(as_multipolygon(geom.buffer(20 / M_PER_DEG, join_style="mitre")), srid=4326)
        out = draft.id, {"moved": moved.code, "shrunk": shrunk.code, "grown": grown.code}
    engine.dispose()
    return out


def compare(ours: dict, peer: dict) -> list[str]:
    """Differences between the check's findings and the peer's (empty when they agree)."""
    diffs = []
    for key in ("invalid", "gap_parents", "outside_parents", "overlaps"):
        a, b = (
            {tuple(x) if isinstance(x, list) else x for x in ours[key]},
            {tuple(x) if isinstance(x, list) else x for x in peer[key]},
        )
        if a != b:
            diffs.append(f"{key}: only gridmap {sorted(a - b)}, only the peer {sorted(b - a)}")
    return diffs


# -- edits (gridmap.planning.edit) -------------------------------------------------------------------------------------


def _available(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _leaves_of(session, generation_id: int, under: str) -> list[Area]:
    return list(
        session.scalars(
            sa.select(Area)
            .where(Area.generation_id == generation_id, Area.is_leaf.is_(True), Area.code.startswith(under))
            .order_by(Area.code)
        )
    )


def _pairs(leaves: list[Area]) -> list[tuple[Area, Area, shapely.Geometry]]:
    """Sibling leaves sharing an edge, with the shared line."""
    shapes = {a.code: to_shape(a.geom) for a in leaves}
    out = []
    for i, a in enumerate(leaves):
        for b in leaves[i + 1 :]:
            if a.parent_id != b.parent_id or not shapes[a.code].intersects(shapes[b.code]):
                continue
            shared = shapely.line_merge(shapes[a.code].boundary.intersection(shapes[b.code].boundary))
            if shared.length > 0:
                out.append((a, b, shared))
    return out


def _edit_ops(session, generation_id: int, community: str, per_op: int) -> dict[str, list[dict]]:
    """Candidate operations of each kind in the community (more than needed: some may be refused), the ones that
    keep codes first (moves, painting), then those that retire codes (split, merge)."""
    leaves = _leaves_of(session, generation_id, community)
    ops: dict[str, list[dict]] = {
        k: [] for k in ("move_edge", "move_vertex", "paint_compound", "paint_buildings", "split", "merge")
    }
    pairs = _pairs(leaves)
    for a, b, shared in pairs:
        line = shared if shared.geom_type == "LineString" else max(shared.geoms, key=lambda g: g.length)
        coords = np.asarray(line.coords)
        x, y = coords[len(coords) // 2] if len(coords) >= 3 else coords[0]
        ops["move_vertex"].append(
            {
                "op": "move_vertex",
                "codes": [a.code, b.code],
                "from": [x, y],
                "to": [x + 3 / M_PER_DEG, y + 3 / M_PER_DEG],
            }
        )
        start, end = coords[0], coords[-1]
        mid = line.interpolate(0.5, normalized=True)
        dx, dy = end[0] - start[0], end[1] - start[1]
        norm = math.hypot(dx, dy) or 1.0
        bend = [mid.x - dy / norm * 5 / M_PER_DEG, mid.y + dx / norm * 5 / M_PER_DEG]
        ops["move_edge"].append(
            {
                "op": "move_edge",
                "codes": [a.code, b.code],
                "line": {"type": "LineString", "coordinates": [list(start), bend, list(end)]},
            }
        )
        ops["merge"].append({"op": "merge", "codes": [a.code, b.code]})
    neighbours: dict[str, list[str]] = {}
    for a, b, _ in pairs:
        neighbours.setdefault(a.code, []).append(b.code)
        neighbours.setdefault(b.code, []).append(a.code)
    buildings = session.execute(
        sa.select(Place.id, Place.parent_id, Place.area_code, Place.geom)
        .where(Place.kind == "building", Place.area_code.startswith(community))
        .order_by(Place.id)
    ).all()
    compounds: dict[int, set[str]] = {}
    per_leaf: dict[str, list] = {}
    for b in buildings:
        if b.parent_id is not None:
            compounds.setdefault(b.parent_id, set()).add(b.area_code)
        per_leaf.setdefault(b.area_code, []).append(b)
    for compound_id, held in compounds.items():
        # a compound inside one leaf that holds other buildings too, painted to a neighbour of that leaf
        (leaf_code, *more) = sorted(held)
        if not more and {b.parent_id for b in per_leaf[leaf_code]} != {compound_id}:
            ops["paint_compound"] += [
                {"op": "reassign", "compound": compound_id, "to": other} for other in neighbours.get(leaf_code, [])
            ]
    shapes = {a.code: to_shape(a.geom) for a in leaves}
    for leaf_code, held in per_leaf.items():
        # the building of a leaf nearest a neighbour, painted to that neighbour (the leaf keeps its others)
        for other in neighbours.get(leaf_code, []) if len(held) > 1 else []:
            nearest = min(held, key=lambda b: to_shape(b.geom).distance(shapes[other]))
            ops["paint_buildings"].append({"op": "reassign", "places": [nearest.id], "to": other})
    for leaf in leaves:
        geom = to_shape(leaf.geom)
        c = geom.representative_point()
        minx, miny, maxx, maxy = geom.bounds
        for y in (c.y, (miny + maxy) / 2):
            ops["split"].append(
                {
                    "op": "split",
                    "code": leaf.code,
                    "line": {"type": "LineString", "coordinates": [[minx - 1e-4, y], [maxx + 1e-4, y]]},
                }
            )
    return ops


def time_edits(url: str, community: str | None = None, per_op: int = 3) -> dict:
    """Latency of each edit operation (applied and committed) on one community of a fresh draft: {op: [ms]} and
    refusals {op: [messages]}; {"skipped": reason} when gridmap.planning.edit is not there."""
    if not _available("gridmap.planning.edit"):
        return {"skipped": "gridmap.planning.edit is not present"}
    from gridmap.planning import edit as plan_edit

    engine = storage.make_engine(url)
    factory = storage.make_sessionmaker(engine)
    with storage.session_scope(factory) as session:
        draft = create_draft(session, "基准：编辑 (benchmark: edits)")
        draft_id = draft.id
        if community is None:
            community = session.scalar(
                sa.select(Area.code)
                .where(Area.generation_id == draft_id, Area.level == "community")
                .order_by(Area.code)
            )
        ops = _edit_ops(session, draft_id, community, per_op)
    times: dict[str, list[float]] = {}
    refused: dict[str, list[str]] = {}
    retired: set[str] = set()

    def timed(name: str, call) -> dict | None:
        started = time.perf_counter()
        try:
            with storage.session_scope(factory) as session:
                result = call(session)
        except Exception as exc:  # noqa: BLE001 - a refused edit is reported, not fatal
            refused.setdefault(name, []).append(f"{type(exc).__name__}: {str(exc)[:160]}")
            return None
        times.setdefault(name, []).append((time.perf_counter() - started) * 1000)
        return result

    for name, candidates in ops.items():
        for op in candidates:
            if len(times.get(name, [])) >= per_op:
                break
            codes = set(op.get("codes", [])) | {op[k] for k in ("code", "to") if isinstance(op.get(k), str)}
            if codes & retired:
                continue  # an earlier edit (split, merge) retired it
            result = timed(name, lambda s, op=op: plan_edit.apply(s, draft_id, op, actor="bench"))
            if result:
                retired |= set(result.get("retired", []))
    for _ in range(per_op):
        timed("undo", lambda s: plan_edit.undo(s, draft_id, actor="bench"))
    for _ in range(per_op):
        timed("redo", lambda s: plan_edit.redo(s, draft_id, actor="bench"))
    engine.dispose()
    return {"community": community, "draft": draft_id, "ms": times, "refused": refused}


# -- rebalance (gridmap.planning.partition) ----------------------------------------------------------------------------


def time_rebalance(
    url: str, communities: int = 10, tolerance: float = 0.10, seed: int = 0, extra: tuple[int, ...] = (0, -1, 1)
) -> dict:
    """Seconds of `partition.propose` per community and target count (n = its current grid count + each of
    `extra`) for the first `communities` communities of the active generation: {"runs": [{"area", "n", "delta",
    "seconds", "ok", "moved_households"}], "refused": [{"area", "n", "delta", "seconds", "why"}]};
    {"skipped": reason} when gridmap.planning.partition is not there."""
    if not _available("gridmap.planning.partition"):
        return {"skipped": "gridmap.planning.partition is not present"}
    from gridmap.planning import partition

    engine = storage.make_engine(url)
    out: dict = {"runs": [], "refused": []}
    with storage.make_sessionmaker(engine)() as session:
        gen = session.scalar(sa.select(Generation.id).where(Generation.status == "active"))
        rows = session.execute(
            sa.select(Area.code, Area.id)
            .where(Area.generation_id == gen, Area.level == "community")
            .order_by(Area.code)
            .limit(communities)
        ).all()
        for code, area_id in rows:
            grids = session.scalar(sa.select(sa.func.count()).where(Area.parent_id == area_id, Area.level == "grid"))
            for delta in extra:
                n = grids + delta
                started = time.perf_counter()
                try:
                    proposal = partition.propose(session, gen, code, n, tolerance, seed)
                except Exception as exc:  # noqa: BLE001 - an infeasible target is reported, not fatal
                    out["refused"].append(
                        {
                            "area": code,
                            "n": n,
                            "delta": delta,
                            "seconds": time.perf_counter() - started,
                            "why": f"{type(exc).__name__}: {str(exc)[:140]}",
                        }
                    )
                    continue
                ok = all(abs(g["deviation"]) <= tolerance + 1e-9 and g["contiguous"] for g in proposal["grids"])
                out["runs"].append(
                    {
                        "area": code,
                        "n": n,
                        "delta": delta,
                        "seconds": time.perf_counter() - started,
                        "ok": ok,
                        "moved_households": proposal.get("moved_households"),
                    }
                )
    engine.dispose()
    return out


# -- the run -------------------------------------------------------------------------------------------------------


def run(url: str, label: str, with_peer: bool, args) -> dict:
    gen = active_id(url)
    counts = level_counts(url, gen)
    print(
        f"\n== {label}: generation {gen}, "
        + ", ".join(f"{counts.get(k, 0):,} {k}" for k in ("district", "subdistrict", "community", "grid", "microgrid")),
        flush=True,
    )
    out = {"label": label, "counts": counts}
    clean = time_check(url, gen, args.reps)
    draft, injected = inject_defects(url, gen)
    broken = time_check(url, draft, args.reps)
    out["check_s"], out["check_broken_s"] = clean["seconds"], broken["seconds"]
    errors = sum(p["severity"] == "error" for p in clean["report"]["problems"])
    print(
        f"   gridmap check, active generation: {clean['seconds']:.2f} s (best of {args.reps}); {errors} errors, "
        f"{len(clean['report']['problems']) - errors} warnings; counts {clean['report']['counts']}"
    )
    print(
        f"   gridmap check, draft with injected defects {injected}: {broken['seconds']:.2f} s; "
        f"findings {json.dumps(broken['findings'], ensure_ascii=False)}"
    )
    if with_peer:
        peer_clean = peer_check(url, gen, args.reps)
        peer_broken = peer_check(url, draft, args.reps)
        out["peer_s"], out["peer_broken_s"] = peer_clean["seconds"], peer_broken["seconds"]
        for name, ours, peer in (("active", clean, peer_clean), ("injected", broken, peer_broken)):
            diffs = compare(ours["findings"], peer["findings"])
            print(
                f"   PostGIS peer ({name}): {peer['seconds']:.2f} s ("
                + ", ".join(f"{k} {v:.2f} s" for k, v in peer["per_query"].items())
                + "); "
                + ("same findings as gridmap" if not diffs else "DIFFERENT: " + "; ".join(diffs))
            )
            out[f"agree_{name}"] = not diffs
    if not args.no_edits:
        edits = time_edits(url, args.community, args.per_op)
        out["edits"] = edits
        if "skipped" in edits:
            print(f"   edits: skipped ({edits['skipped']})")
        else:
            print(
                f"   edits on community {edits['community']} (draft {edits['draft']}), ms per operation, "
                f"committed (target {EDIT_TARGET_MS:.0f} ms):"
            )
            for op, ms in edits["ms"].items():
                mark = "ok" if max(ms) < EDIT_TARGET_MS else "OVER TARGET"
                print(f"     {op:<16} median {statistics.median(ms):7.1f}  worst {max(ms):7.1f}  (n={len(ms)}) {mark}")
            for op, why in edits["refused"].items():
                print(f"     {op:<16} refused {len(why)}× — first: {why[0]}")
    if not args.no_rebalance:
        balance = time_rebalance(url, args.communities)
        out["rebalance"] = balance
        if "skipped" in balance:
            print(f"   rebalance: skipped ({balance['skipped']})")
        else:
            for delta in sorted({r["delta"] for r in balance["runs"] + balance["refused"]}, key=abs):
                runs = [r for r in balance["runs"] if r["delta"] == delta]
                refused = [r for r in balance["refused"] if r["delta"] == delta]
                secs = [r["seconds"] for r in runs]
                label = f"n = current grids{f' {delta:+d}' if delta else ''}"
                if runs:
                    print(
                        f"   rebalance ({label}, ±10 %, seed 0) over {len(runs)} communities: median "
                        f"{statistics.median(secs):.2f} s, worst {max(secs):.2f} s; {sum(r['ok'] for r in runs)}/"
                        f"{len(runs)} within tolerance and contiguous; households moved: median "
                        f"{statistics.median(r['moved_households'] or 0 for r in runs):.0f}"
                    )
                if refused:
                    print(
                        f"   rebalance ({label}): refused as infeasible for {len(refused)} communities after median "
                        f"{statistics.median(r['seconds'] for r in refused):.2f} s, worst "
                        f"{max(r['seconds'] for r in refused):.2f} s — first: {refused[0]['area']} "
                        f"n={refused[0]['n']}: {refused[0]['why']}"
                    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="the small demo (24 micro-grids), for a quick look")
    parser.add_argument("--sqlite", help="a SpatiaLite URL already holding the demo (else a temporary file)")
    parser.add_argument("--postgis", help="a PostGIS URL already holding the demo (else a fresh database)")
    parser.add_argument("--reps", type=int, default=3, help="runs per timing (the best is kept)")
    parser.add_argument("--community", help="the community to edit (default: the first)")
    parser.add_argument("--per-op", type=int, default=3, help="edits timed per operation")
    parser.add_argument("--communities", type=int, default=10, help="communities to rebalance")
    parser.add_argument("--no-edits", action="store_true")
    parser.add_argument("--no-rebalance", action="store_true")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        url = args.sqlite
        if url is None:
            url = f"sqlite:///{tmp}/planning.sqlite"
            print(f"loading the {'small' if args.small else 'full'} demo into SpatiaLite …", flush=True)
            print(f"   {build(url, args.small):.0f} s")
        results.append(run(url, "SpatiaLite", False, args))
    drop = None
    url = args.postgis
    if url is None:
        url, drop = _new_postgis_database()
        print(f"\nloading the {'small' if args.small else 'full'} demo into PostGIS …", flush=True)
        print(f"   {build(url, args.small):.0f} s")
    try:
        results.append(run(url, "PostGIS", True, args))
    finally:
        if drop is not None:
            drop()
    lite, pg = results
    print("\n== summary (seconds; ratio = gridmap / PostGIS peer, below 1 is faster)")
    print(
        f"   check of the whole district, active generation: SpatiaLite {lite['check_s']:.2f}, PostGIS "
        f"{pg['check_s']:.2f}, peer {pg['peer_s']:.2f} → ratios {lite['check_s'] / pg['peer_s']:.2f} / "
        f"{pg['check_s'] / pg['peer_s']:.2f}"
    )
    print(
        f"   check, injected defects:                     SpatiaLite {lite['check_broken_s']:.2f}, PostGIS "
        f"{pg['check_broken_s']:.2f}, peer {pg['peer_broken_s']:.2f} → ratios "
        f"{lite['check_broken_s'] / pg['peer_broken_s']:.2f} / {pg['check_broken_s'] / pg['peer_broken_s']:.2f}"
    )
    print(f"   findings agree with the peer: active {pg['agree_active']}, injected {pg['agree_injected']}")


if __name__ == "__main__":
    main()
