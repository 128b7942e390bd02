"""Property tests of the planner's edits (issue 13 §3, "Must show"): over random sequences of edits, undos and
redos on a draft of the small demo (SpatiaLite, in a temporary file), after every step the draft tiles exactly at
every level — the boundary check finds no gap, overlap, hole, part outside its parent or invalid geometry (and no
sliver) — and every undo gives back the stored areas byte for byte (WKB, codes, numbers, locks).

The `pick_*` helpers make a valid-looking edit from the draft as it is (random but reproducible from a seed); the
integration tests (tests/integration/test_plan_edit.py) use them too. An edit the library refuses (say, a line that
cuts a concave leaf in three) must leave the draft exactly as it was."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import shapely
import sqlalchemy as sa
from geoalchemy2.shape import to_shape
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from shapely.geometry import LineString, Point, mapping

from gridmap.boundaries import check as bc
from gridmap.boundaries import generations as gens
from gridmap.errors import Conflict, GridmapError
from gridmap.planning import edit as plan_edit
from gridmap.store import engine as storage
from gridmap.store.tables import Area, Place
from tests.conftest import _load

ERRORS = {"gap", "overlap", "hole", "outside_parent", "invalid_geometry", "sliver", "duplicate_code", "bad_code"}


# -- reading the draft ---------------------------------------------------------------------------------------------


def areas_of(session, generation_id: int) -> dict[str, dict]:
    rows = session.scalars(sa.select(Area).where(Area.generation_id == generation_id).order_by(Area.code)).all()
    code_of = {a.id: a.code for a in rows}
    return {
        a.code: {
            "code": a.code,
            "level": a.level,
            "parent": code_of.get(a.parent_id),
            "leaf": a.is_leaf,
            "geom": to_shape(a.geom),
            "households": a.households,
            "population": a.population,
            "locked": a.locked,
            "id": a.id,
            "area_m2": a.area_m2,
        }
        for a in rows
    }


def state_of(session, generation_id: int) -> dict[str, tuple]:
    """Every stored area as bytes and numbers: what an undo must give back exactly."""
    rows = session.execute(
        sa.select(
            Area.code, Area.geom, Area.households, Area.population, Area.area_m2, Area.locked, Area.parent_id, Area.name
        ).where(Area.generation_id == generation_id)
    ).all()
    return {
        r.code: (
            shapely.to_wkb(to_shape(r.geom), hex=True),
            r.households,
            r.population,
            r.area_m2,
            bool(r.locked),
            r.parent_id,
            r.name,
        )
        for r in rows
    }


def tiling_errors(session, generation_id: int) -> list[tuple]:
    report = bc.check_generation(session, generation_id)
    return [(p["kind"], p["codes"], p["area_m2"]) for p in report["problems"] if p["kind"] in ERRORS]


def _leaves(areas):
    return [a for a in areas.values() if a["leaf"]]


def _shared(a, b) -> float:
    return shapely.intersection(a["geom"].boundary, b["geom"].boundary).length


def _neighbours(areas, leaf, same_parent: bool | None = None):
    out = []
    for other in _leaves(areas):
        if other["code"] == leaf["code"] or _shared(leaf, other) <= 0:
            continue
        if same_parent is True and other["parent"] != leaf["parent"]:
            continue
        if same_parent is False and other["parent"] == leaf["parent"]:
            continue
        out.append(other)
    return out


# -- making edits --------------------------------------------------------------------------------------------------


def pick_split(areas, rng: random.Random) -> dict:
    leaf = rng.choice(_leaves(areas))
    geom = max(leaf["geom"].geoms, key=lambda p: p.area)
    c = geom.representative_point()
    minx, miny, maxx, maxy = geom.bounds
    reach = 2 * math.hypot(maxx - minx, maxy - miny)
    angle = rng.uniform(0, math.pi)
    line = LineString(
        [
            (c.x - reach * math.cos(angle), c.y - reach * math.sin(angle)),
            (c.x + reach * math.cos(angle), c.y + reach * math.sin(angle)),
        ]
    )
    return {"op": "split", "code": leaf["code"], "line": mapping(line)}


def pick_merge(areas, rng: random.Random) -> dict:
    pairs = [(a, b) for a in _leaves(areas) for b in _neighbours(areas, a, True) if a["code"] < b["code"]]
    a, b = rng.choice(pairs)
    return {"op": "merge", "codes": [a["code"], b["code"]]}


def _shared_chain(a, b):
    shared = shapely.line_merge(shapely.intersection(a["geom"].boundary, b["geom"].boundary))
    return [g for g in shapely.get_parts(shared) if g.geom_type == "LineString" and not g.is_ring]


def pick_move_edge(areas, rng: random.Random) -> dict:
    pairs = [
        (a, b) for a in _leaves(areas) for b in _neighbours(areas, a) if a["code"] < b["code"] and _shared_chain(a, b)
    ]
    a, b = rng.choice(pairs)
    chain = rng.choice(_shared_chain(a, b))
    start, end = chain.coords[0], chain.coords[-1]
    mid = chain.interpolate(0.5, normalized=True)
    (dx, dy) = np.subtract(end, start)
    length = math.hypot(dx, dy)
    normal = np.array([-dy, dx]) / length if length else np.array([0.0, 0.0])
    offset = rng.uniform(-0.15, 0.15) * min(length, 0.003)
    bend = (mid.x + normal[0] * offset, mid.y + normal[1] * offset)
    return {
        "op": "move_edge",
        "codes": [a["code"], b["code"]],
        "line": {"type": "LineString", "coordinates": [list(start), list(bend), list(end)]},
    }


def pick_move_vertex(areas, rng: random.Random) -> dict:
    leaf = rng.choice(_leaves(areas))
    coords = shapely.get_coordinates(leaf["geom"])
    x, y = coords[rng.randrange(len(coords))]
    d = rng.uniform(1, 30) / 111_320  # 1-30 m
    angle = rng.uniform(0, 2 * math.pi)
    return {
        "op": "move_vertex",
        "from": [float(x), float(y)],
        "to": [float(x + d * math.cos(angle)), float(y + d * math.sin(angle))],
    }


def buildings_in(session, geom) -> list[tuple[int, Point, int, int | None]]:
    rows = session.execute(
        sa.select(Place.id, Place.geom, Place.households, Place.parent_id).where(Place.kind == "building")
    ).all()
    out = []
    for pid, g, hh, parent in rows:
        p = to_shape(g)
        if geom.contains(p):
            out.append((pid, p, hh, parent))
    return out


def pick_paint(session, areas, rng: random.Random) -> dict:
    options = []
    for leaf in _leaves(areas):
        units = buildings_in(session, leaf["geom"])
        if len(units) < 2:
            continue
        for other in _neighbours(areas, leaf):
            options.append((leaf, other, units))
    leaf, other, units = rng.choice(options)
    edge = shapely.intersection(leaf["geom"].boundary, other["geom"].boundary)
    units.sort(key=lambda u: u[1].distance(edge))
    k = rng.randint(1, max(1, len(units) // 2))
    return {"op": "reassign", "places": [u[0] for u in units[:k]], "to": other["code"]}


def pick_compound(session, areas, rng: random.Random) -> dict:
    """A compound and a leaf next to one of the leaves its buildings are in (but holding none of them)."""
    leaves = [a for a in areas.values() if a["leaf"]]
    rows = session.execute(sa.select(Place.geom, Place.parent_id).where(Place.kind == "building")).all()
    where: dict[int, set] = {}
    for g, parent in rows:
        p = to_shape(g)
        leaf = next((a["code"] for a in leaves if a["geom"].contains(p)), None)
        if parent is not None and leaf is not None:
            where.setdefault(parent, set()).add(leaf)
    options = []
    for compound, inside in sorted(where.items()):
        for other in leaves:
            if other["code"] not in inside and any(
                shapely.intersection(other["geom"].boundary, areas[c]["geom"].boundary).length > 0 for c in inside
            ):
                options.append((compound, other["code"]))
    compound, to = rng.choice(options)
    return {"op": "reassign", "compound": compound, "to": to}


def pick_reassign_leaves(areas, rng: random.Random) -> dict:
    options = []
    for leaf in _leaves(areas):
        siblings = [a for a in _leaves(areas) if a["parent"] == leaf["parent"]]
        if len(siblings) < 2:
            continue
        parent = areas[leaf["parent"]]
        for other in areas.values():
            if (
                other["level"] == parent["level"]
                and other["code"] != parent["code"]
                and shapely.intersection(other["geom"].boundary, leaf["geom"].boundary).length > 0
            ):
                options.append((leaf, other))
    leaf, parent = rng.choice(options)
    return {"op": "reassign", "codes": [leaf["code"]], "to": parent["code"]}


def pick_lock(areas, rng: random.Random) -> dict:
    area = rng.choice([a for a in areas.values() if a["level"] in ("grid", "microgrid")])
    return {"op": "lock", "codes": [area["code"]], "locked": not area["locked"]}


def pick(kind: str, session, generation_id: int, rng: random.Random) -> dict:
    areas = areas_of(session, generation_id)
    if kind == "paint":
        return pick_paint(session, areas, rng)
    if kind == "compound":
        return pick_compound(session, areas, rng)
    return {
        "split": pick_split,
        "merge": pick_merge,
        "move_edge": pick_move_edge,
        "move_vertex": pick_move_vertex,
        "reassign_leaves": pick_reassign_leaves,
        "lock": pick_lock,
    }[kind](areas, rng)


# -- the property --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sessionmaker(tmp_path_factory):
    url = _load(f"sqlite:///{tmp_path_factory.mktemp('plan') / 'plan.sqlite'}")
    engine = storage.make_engine(url)
    yield storage.make_sessionmaker(engine)
    engine.dispose()


KINDS = ["split", "merge", "move_edge", "move_vertex", "paint", "compound", "reassign_leaves", "lock"]
STEPS = st.lists(
    st.tuples(st.sampled_from([*KINDS, "undo", "undo", "redo"]), st.integers(0, 2**16)), min_size=2, max_size=7
)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=STEPS)
def test_random_edit_sequences_keep_an_exact_tiling_and_undo_exactly(sessionmaker, steps):
    with sessionmaker() as session:
        draft = gens.create_draft(session, "性质测试").id
        session.flush()
        history = []  # the state before each edit that is not undone
        redo_states = []
        for kind, seed in steps:
            before = state_of(session, draft)
            if kind == "undo":
                if not history:
                    with pytest.raises(Conflict):
                        plan_edit.undo(session, draft)
                    continue
                plan_edit.undo(session, draft)
                assert state_of(session, draft) == history[-1], "undo did not restore the stored areas exactly"
                redo_states.append(before)
                history.pop()
            elif kind == "redo":
                if not redo_states:
                    with pytest.raises(Conflict):
                        plan_edit.redo(session, draft)
                    continue
                plan_edit.redo(session, draft)
                assert state_of(session, draft) == redo_states[-1], "redo did not give back the edit exactly"
                history.append(before)
                redo_states.pop()
            else:
                rng = random.Random(seed)
                try:
                    op = pick(kind, session, draft, rng)
                except IndexError:
                    continue  # nothing of this kind to do on this draft
                try:
                    with session.begin_nested():
                        result = plan_edit.apply(session, draft, op, "hypothesis")
                except GridmapError as exc:
                    event(f"refused {kind}: {type(exc).__name__} {exc.field}")
                    assert state_of(session, draft) == before, "a refused edit changed the draft"
                    continue
                event(f"applied {kind}")
                history.append(before)
                redo_states.clear()
                assert result["can_undo"] and not result["can_redo"]
                after = state_of(session, draft)
                assert set(result["created"]) == set(after) - set(before)
                assert set(result["retired"]) == set(before) - set(after)
                # the balance is what is stored now, and totals are kept
                for row in result["balance"]:
                    assert row["households_after"] == (after[row["code"]][1] if row["code"] in after else 0)
                    assert row["households_before"] == (before[row["code"]][1] if row["code"] in before else 0)
            errors = tiling_errors(session, draft)
            assert not errors, (kind, errors)
            _sums_hold(session, draft)
        session.rollback()


def _sums_hold(session, draft: int) -> None:
    """Every parent's households and population are its children's sums."""
    areas = areas_of(session, draft)
    kids: dict[str, list] = {}
    for a in areas.values():
        if a["parent"]:
            kids.setdefault(a["parent"], []).append(a)
    for code, children in kids.items():
        assert areas[code]["households"] == sum(c["households"] for c in children), code
        assert areas[code]["population"] == sum(c["population"] for c in children), code


def test_each_kind_of_edit_applies_somewhere(sessionmaker):
    """The generators are not vacuous: every kind of edit is accepted on some seed of the demo draft."""
    with sessionmaker() as session:
        draft = gens.create_draft(session, "每种编辑").id
        session.flush()
        for kind in KINDS:
            for seed in range(40):
                before = state_of(session, draft)
                try:
                    with session.begin_nested():
                        plan_edit.apply(session, draft, pick(kind, session, draft, random.Random(seed)), "t")
                except GridmapError:
                    assert state_of(session, draft) == before
                    continue
                assert not tiling_errors(session, draft), kind
                plan_edit.undo(session, draft)
                assert state_of(session, draft) == before
                break
            else:
                pytest.fail(f"no seed gave an accepted {kind} edit")
        session.rollback()
