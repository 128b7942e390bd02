"""Benchmark: publishing a draft of the full Guandu demo (533 grids, 1,854 micro-grids, 7,437 buildings, 50,000
cases) with `gridmap.planning.publish`: the impact preview, the readiness check (boundary check and 1:1 branches), and
the
activation (assignments, places, open cases re-located), on SpatiaLite.

    .venv/bin/python tests/benchmarks/publishing.py DB.sqlite    # a copy of a full-demo database (it is changed)
    .venv/bin/python tests/benchmarks/publishing.py              # builds the full demo first (about 4 minutes)

The draft moves one micro-grid of each of the first `--moves` communities (default 20) to a neighbouring grid under a
new code (parents recomputed with shapely.coverage_union_all), so about 40 grids change. Figures are measurements on
this machine at this moment; run it twice before believing them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import shapely  # noqa: E402
import sqlalchemy as sa  # noqa: E402
from geoalchemy2.shape import from_shape, to_shape  # noqa: E402

from gridmap.boundaries import codes, generations
from gridmap.geo.coverage import as_multipolygon  # noqa: E402
from gridmap.planning import publish
from gridmap.store import engine as storage  # noqa: E402
from gridmap.store.tables import FINISHED_STATES, Area, Case  # noqa: E402


def _timed(label: str, fn):
    start = time.perf_counter()
    out = fn()
    print(f"{label:<46} {time.perf_counter() - start:8.2f} s")
    return out


def _draft_with_moves(session, moves: int) -> int:
    draft = generations.create_draft(session, "基准：微网格划转", created_by="bench")
    areas = list(session.scalars(sa.select(Area).where(Area.generation_id == draft.id)))
    by_id = {a.id: a for a in areas}
    grids = [a for a in areas if a.level == "grid"]
    micro = [a for a in areas if a.level == "microgrid"]
    done, touched_communities = 0, set()
    for m in micro:
        a = by_id[m.parent_id]
        if a.parent_id in touched_communities or sum(1 for x in micro if x.parent_id == a.id) < 3:
            continue
        shape = to_shape(m.geom)
        b = next(
            (
                g
                for g in grids
                if g.parent_id == a.parent_id and g.id != a.id and shape.intersection(to_shape(g.geom)).length > 1e-4
            ),
            None,
        )
        if b is None:
            continue
        (code,) = codes.new_codes(session, b.code, "microgrid", 1, draft.id)
        m.parent_id, m.code = b.id, code
        for parent in (a, b):
            children = [x for x in micro if x.parent_id == parent.id]
            parent.geom = from_shape(
                as_multipolygon(shapely.coverage_union_all([to_shape(x.geom) for x in children])), srid=4326
            )
            parent.households = sum(x.households for x in children)
            parent.population = sum(x.population for x in children)
        touched_communities.add(a.parent_id)
        done += 1
        if done >= moves:
            break
    session.flush()
    return draft.id


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("database", nargs="?", help="a full-demo SpatiaLite file (copied, never changed)")
    parser.add_argument("--moves", type=int, default=20)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp()) / "publish.sqlite"
    if args.database:
        shutil.copy(args.database, work)
        url = f"sqlite:///{work}"
    else:
        from gridmap.demo.load import load_demo

        url = f"sqlite:///{work}"
        engine = storage.make_engine(url)
        storage.migrate(engine)
        with storage.session_scope(storage.make_sessionmaker(engine)) as s:
            _timed(
                "load the full demo", lambda: load_demo(s, "530111", small=False, seed=11, today=dt.date(2026, 11, 20))
            )
        engine.dispose()
    engine = storage.make_engine(url)
    sm = storage.make_sessionmaker(engine)
    with storage.session_scope(sm) as s:
        draft = _timed(f"draft moving {args.moves} micro-grids", lambda: _draft_with_moves(s, args.moves))
    with sm() as s:
        from gridmap.boundaries.areas import active_generation, load_index

        old = _timed("lookup index of the active generation", lambda: load_index(s, active_generation(s).id))
        new = _timed("lookup index of the draft", lambda: load_index(s, draft))
        print("  (the server holds both: the active one always, the draft's after its first use)")
        impact = _timed(
            "impact preview, indexes held (GET .../impact)",
            lambda: publish.impact(s, draft, old_index=old, new_index=new),
        )
        print(f"  {impact['totals']}")
        ready = _timed("readiness (check + branches)", lambda: publish.readiness(s, draft))
        print(f"  ok={ready['ok']} check_errors={ready['check_errors']} missing={len(ready['missing'])}")
        open_cases = s.scalar(sa.select(sa.func.count()).where(Case.state.not_in(FINISHED_STATES)))
    with storage.session_scope(sm) as s:
        day = publish.local_today()
        done = _timed(
            "activation (all of it, one transaction)", lambda: publish.activate_generation(s, draft, day, actor="bench")
        )
        print(
            f"  cases re-located {done['cases_relocated']} of {open_cases} open; places moved "
            f"{done['places_moved']}; rows carried {done['carried']}"
        )
    engine.dispose()


if __name__ == "__main__":
    main()
