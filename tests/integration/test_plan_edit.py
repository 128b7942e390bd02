"""The planner's edits through the API (issue 13 §3) on both databases: every operation as a planner (200, stored
before the answer, the draft still tiles exactly at every level, the balance equals a brute-force recount), as a
worker and an approver (403), on a generation that is not a draft (409), with bad input (422 naming the field), on a
locked area (409); undo and redo give back the stored areas byte for byte; a new edit after an undo drops the redo
branch; codes are never given twice. The edits themselves come from the generators of the property tests
(tests/unit/test_plan_edit_properties.py)."""

from __future__ import annotations

import random

import pytest
import shapely
import sqlalchemy as sa
from geoalchemy2.shape import to_shape
from shapely.geometry import LineString, Point, mapping

from gridmap.geo.coverage import allocate
from gridmap.store.tables import CodeRegistry, Generation, Place
from tests.unit.test_plan_edit_properties import areas_of, pick, state_of, tiling_errors

PLANNER = {"X-User": "p1", "X-Role": "planner"}
WORKER = {"X-User": "w1", "X-Role": "worker"}
APPROVER = {"X-User": "a1", "X-Role": "approver"}
KINDS = ["split", "merge", "move_edge", "move_vertex", "paint", "compound", "reassign_leaves", "lock"]


def _sm(client):
    return client.app.state.sessionmaker


def _draft(client, name: str = "编辑") -> int:
    r = client.post("/api/v1/generations", headers=PLANNER, json={"name": name})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def _edit(client, draft: int, op: dict, headers=PLANNER):
    return client.post(f"/api/v1/generations/{draft}/edits", headers=headers, json=op)


def _make(client, draft: int, kind: str, seed: int) -> dict:
    with _sm(client)() as session:
        rng = random.Random(seed)
        return pick(kind, session, draft, rng)


def _accepted(client, kind: str) -> tuple[int, dict, dict, dict, dict]:
    """A fresh draft and an edit of `kind` the planner gets a 200 for: (draft, op, result, state before, after)."""
    for seed in range(60):
        draft = _draft(client, f"{kind} {seed}")
        op = _make(client, draft, kind, seed)
        with _sm(client)() as session:
            before = state_of(session, draft)
        r = _edit(client, draft, op)
        if r.status_code == 200:
            with _sm(client)() as session:  # a new session: the edit was committed before the answer
                after = state_of(session, draft)
            return draft, op, r.json(), before, after
        assert r.status_code == 422, r.text  # a refusal for the content, never a 500
        with _sm(client)() as session:
            assert state_of(session, draft) == before
    pytest.fail(f"no {kind} edit was accepted")


def _buildings(session) -> list[tuple[Point, int]]:
    return [
        (to_shape(g), hh)
        for g, hh in session.execute(sa.select(Place.geom, Place.households).where(Place.kind == "building")).all()
    ]


def _recount(before_areas: dict, after_areas: dict, result: dict, buildings) -> dict[str, tuple[int, int]]:
    """Households and population of every changed leaf, counted again by brute force: each leaf the edit changed
    or removed shares its numbers among the leaves that now hold its ground, in proportion to the households of
    its buildings that lie in each (by area where it has none)."""
    changed = {row["code"] for row in result["balance"]}
    sources = [
        before_areas[c]
        for c in changed
        if c in before_areas
        and before_areas[c]["leaf"]
        and (c not in after_areas or not after_areas[c]["geom"].equals_exact(before_areas[c]["geom"], 0))
    ]
    dests = [
        after_areas[c]
        for c in changed
        if c in after_areas
        and after_areas[c]["leaf"]
        and (c not in before_areas or not after_areas[c]["geom"].equals_exact(before_areas[c]["geom"], 0))
    ]
    out = {d["code"]: [0, 0] for d in dests}
    for src in sources:
        mine = [(p, hh) for p, hh in buildings if src["geom"].contains(p)]
        if sum(hh for _, hh in mine) > 0:
            weights = [float(sum(hh for p, hh in mine if d["geom"].contains(p))) for d in dests]
        else:
            weights = [src["geom"].intersection(d["geom"]).area for d in dests]
        if sum(weights) <= 0:
            weights = [src["geom"].intersection(d["geom"]).area for d in dests]
        for d, h, p in zip(dests, allocate(src["households"], weights, 0), allocate(src["population"], weights, 0)):
            out[d["code"]][0] += h
            out[d["code"]][1] += p
    return {k: tuple(v) for k, v in out.items()}


# -- every operation -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_a_planner_edits_and_the_draft_stays_exact(client, kind):
    draft, op, result, before, after = _accepted(client, kind)
    assert result["generation_id"] == draft and result["seq"] == 1 and result["can_undo"] and not result["can_redo"]
    assert set(result["created"]) == set(after) - set(before)
    assert set(result["retired"]) == set(before) - set(after)
    if kind in ("split", "merge", "reassign_leaves"):
        assert result["created"] and result["retired"]
    if kind == "split":
        assert len(result["created"]) == 2 and result["retired"] == [op["code"]]
    with _sm(client)() as session:
        assert not tiling_errors(session, draft)
        now = areas_of(session, draft)
        registered = set(session.scalars(sa.select(CodeRegistry.code)))
        assert set(result["created"]) <= registered
        for row in result["changed"]:  # the answer is what is stored
            stored = now[row["code"]]
            assert shapely.geometry.shape(row["geometry"]).equals_exact(stored["geom"], 0)
            assert (row["households"], row["population"], row["locked"]) == (
                stored["households"],
                stored["population"],
                stored["locked"],
            )
        # the balance: numbers before and after as stored, leaves recounted from the buildings, parents summed
        for row in result["balance"]:
            assert row["households_after"] == (now[row["code"]]["households"] if row["code"] in now else 0)
            assert row["households_before"] == (before[row["code"]][1] if row["code"] in before else 0)
        with _sm(client)() as s2:
            old = areas_of(s2, _base(s2, draft))  # the active generation = the draft before the edit
        recount = _recount(old, now, result, _buildings(session))
        for code, (hh, pop) in recount.items():
            assert (now[code]["households"], now[code]["population"]) == (hh, pop), code
        for code, area in now.items():
            kids = [a for a in now.values() if a["parent"] == code]
            if kids:
                assert area["households"] == sum(k["households"] for k in kids)
                assert area["population"] == sum(k["population"] for k in kids)
        district = next(a for a in now.values() if a["level"] == "district")
        assert district["households"] == before[district["code"]][1]  # nothing is lost or made up
    if kind == "compound":
        moved = _compound_households(client, op["compound"])
        src = [r for r in result["balance"] if len(r["code"]) >= 17 and r["households_after"] < r["households_before"]]
        assert src and moved > 0


def _base(session, draft: int) -> int:
    return session.scalar(sa.select(Generation.id).where(Generation.status == "active"))


def _compound_households(client, compound: int) -> int:
    with _sm(client)() as session:
        return int(session.scalar(sa.select(sa.func.sum(Place.households)).where(Place.parent_id == compound)) or 0)


@pytest.mark.parametrize("kind", KINDS)
def test_who_may_edit_and_what_is_refused(client, kind):
    draft, op, *_ = _accepted(client, kind)
    fresh = _draft(client, f"{kind} 权限")
    for headers in (WORKER, APPROVER):
        r = _edit(client, fresh, op, headers)
        assert r.status_code == 403, r.text
    with _sm(client)() as session:
        active = session.scalar(sa.select(Generation.id).where(Generation.status == "active"))
    r = _edit(client, active, op)
    assert r.status_code == 409 and r.json()["field"] == "generation", r.text
    # locked: every area the edit would touch refuses it (here, an ancestor of the first area named)
    named = op.get("code") or (op.get("codes") or [None])[0]
    if kind == "lock":
        return
    if named is None:  # move_vertex, paint: lock the whole draft's district
        with _sm(client)() as session:
            named = next(a["code"] for a in areas_of(session, fresh).values() if a["level"] == "district")
    else:
        named = named[:15] if len(named) > 15 else named
    r = _edit(client, fresh, {"op": "lock", "codes": [named], "locked": True})
    assert r.status_code == 200, r.text
    with _sm(client)() as session:
        locked_state = state_of(session, fresh)
    r = _edit(client, fresh, op)
    assert r.status_code == 409, r.text
    assert "locked" in r.json()["detail"]
    with _sm(client)() as session:
        assert state_of(session, fresh) == locked_state


BAD = {
    "split": (
        lambda op, a: {**op, "line": {"type": "LineString", "coordinates": [[100.0, 20.0], [100.1, 20.1]]}},
        "line",
    ),
    "merge": (lambda op, a: {**op, "codes": op["codes"][:1]}, "codes"),
    "move_edge": (
        lambda op, a: {**op, "line": {"type": "LineString", "coordinates": [[100.0, 20.0], [100.1, 20.1]]}},
        "line",
    ),
    "move_vertex": (lambda op, a: {**op, "from": [100.0, 20.0]}, "from"),
    "paint": (lambda op, a: {**op, "places": [a["service_centre"]]}, "places"),
    "compound": (lambda op, a: {**op, "to": a["district"]}, "to"),
    "reassign_leaves": (lambda op, a: {**op, "to": a["district"]}, "to"),
    "lock": (lambda op, a: {**op, "locked": "yes"}, "locked"),
}


@pytest.mark.parametrize("kind", KINDS)
def test_bad_input_names_the_field(client, kind):
    draft = _draft(client, f"{kind} 错误")
    op = None
    for seed in range(20):
        try:
            op = _make(client, draft, kind, seed)
            break
        except IndexError:
            continue
    with _sm(client)() as session:
        before = state_of(session, draft)
        extra = {
            "service_centre": session.scalar(sa.select(Place.id).where(Place.kind == "service_centre")),
            "district": next(a["code"] for a in areas_of(session, draft).values() if a["level"] == "district"),
        }
    make, field = BAD[kind]
    r = _edit(client, draft, make(op, extra))
    assert r.status_code == 422 and r.json()["field"] == field, r.text
    assert r.headers["content-type"] == "application/problem+json"
    r = _edit(client, draft, {**op, "unknown": 1})
    assert r.status_code == 422 and r.json()["field"] == "unknown", r.text
    missing = _edit(
        client,
        draft,
        {**op, "code": "53011199999999901"}
        if kind == "split"
        else {**op, "to": "53011199999999901"}
        if kind in ("paint", "compound")
        else {**op, "codes": ["53011199999999901", *op.get("codes", [])[1:]]}
        if "codes" in op
        else {**op, "codes": ["53011199999999901"]},
    )
    assert missing.status_code in (404, 422) and missing.json()["field"] in ("code", "codes", "to"), missing.text
    with _sm(client)() as session:
        assert state_of(session, draft) == before
    assert (
        client.post(f"/api/v1/generations/{draft}/edits", headers=PLANNER, json={"op": "teleport"}).json()["field"]
        == "op"
    )


# -- undo, redo, the log -------------------------------------------------------------------------------------------


def test_undo_and_redo_give_back_the_exact_areas(client):
    draft = _draft(client, "撤销")
    states = []
    done = []
    for kind, seed in (("split", 1), ("move_edge", 2), ("paint", 3), ("merge", 4)):
        for s in range(seed, seed + 30):
            op = _make(client, draft, kind, s)
            with _sm(client)() as session:
                states.append(state_of(session, draft))
            r = _edit(client, draft, op)
            if r.status_code == 200:
                done.append(r.json())
                break
            states.pop()
    assert len(done) == 4 and [d["seq"] for d in done] == [1, 2, 3, 4]
    with _sm(client)() as session:
        final = state_of(session, draft)
    for expected, edit in zip(reversed(states), reversed(done)):
        r = client.post(f"/api/v1/generations/{draft}/edits/undo", headers=PLANNER)
        assert r.status_code == 200 and r.json()["seq"] == edit["seq"], r.text
        assert r.json()["created"] == edit["retired"] and r.json()["retired"] == edit["created"]
        with _sm(client)() as session:
            assert state_of(session, draft) == expected
            assert not tiling_errors(session, draft)
    r = client.post(f"/api/v1/generations/{draft}/edits/undo", headers=PLANNER)
    assert r.status_code == 409 and r.json()["field"] == "generation"
    for edit in done:
        r = client.post(f"/api/v1/generations/{draft}/edits/redo", headers=PLANNER)
        assert r.status_code == 200 and r.json()["seq"] == edit["seq"]
    with _sm(client)() as session:
        assert state_of(session, draft) == final
    assert client.post(f"/api/v1/generations/{draft}/edits/redo", headers=PLANNER).status_code == 409
    log = client.get(f"/api/v1/generations/{draft}/edits", headers=PLANNER).json()
    assert [(e["seq"], e["undone"], e["actor"]) for e in log] == [(i, False, "p1") for i in (1, 2, 3, 4)]
    # undo two, then a new edit: the redo branch is dropped, and the undone split's codes are not given again
    client.post(f"/api/v1/generations/{draft}/edits/undo", headers=PLANNER)
    client.post(f"/api/v1/generations/{draft}/edits/undo", headers=PLANNER)
    assert client.get(f"/api/v1/generations/{draft}/edits", headers=APPROVER).status_code == 200
    r = _edit(client, draft, {"op": "lock", "codes": [done[0]["created"][0]], "locked": True})
    assert r.status_code == 200 and r.json()["seq"] == 3 and not r.json()["can_redo"], r.text
    assert [e["seq"] for e in client.get(f"/api/v1/generations/{draft}/edits", headers=PLANNER).json()] == [1, 2, 3]
    assert client.post(f"/api/v1/generations/{draft}/edits/redo", headers=PLANNER).status_code == 409
    for headers in (WORKER, APPROVER):
        assert client.post(f"/api/v1/generations/{draft}/edits/undo", headers=headers).status_code == 403
    assert client.get(f"/api/v1/generations/{draft}/edits", headers=WORKER).status_code == 403


def test_codes_are_never_given_twice(client):
    draft = _draft(client, "编码")
    _, op, first, *_ = _accepted(client, "split")
    r = _edit(client, draft, op)
    assert r.status_code == 200
    created = r.json()["created"]
    assert not set(created) & set(first["created"])  # another draft's split took those
    assert client.post(f"/api/v1/generations/{draft}/edits/undo", headers=PLANNER).status_code == 200
    again = _edit(client, draft, op).json()["created"]
    assert not set(again) & set(created)


def test_a_split_line_must_cross_the_leaf_in_two(client):
    draft = _draft(client, "划线")
    with _sm(client)() as session:
        areas = areas_of(session, draft)
    leaf = next(a for a in areas.values() if a["leaf"])
    c = leaf["geom"].representative_point()
    inside = LineString([(c.x, c.y), (c.x + 1e-6, c.y + 1e-6)])
    r = _edit(client, draft, {"op": "split", "code": leaf["code"], "line": mapping(inside)})
    assert r.status_code == 422 and r.json()["field"] == "line" and "two pieces" in r.json()["detail"]
    grid = leaf["parent"]
    r = _edit(client, draft, {"op": "split", "code": grid, "line": mapping(inside)})
    assert r.status_code == 422 and r.json()["field"] == "code" and "is not a leaf" in r.json()["detail"]


def test_two_edits_of_one_draft_at_once_run_one_after_the_other(client):
    """Two planners edit one draft at the same moment: the second edit waits for the first (the draft's row is
    written first) and works on what the first stored, so both are logged in order and the draft stays exact."""
    import threading

    from gridmap.planning import edit as plan_edit

    draft = _draft(client, "并发")
    ops = []
    for seed in range(40):
        op = _make(client, draft, "move_edge", seed)
        if not ops or set(op["codes"]).isdisjoint(ops[0]["codes"]):
            ops.append(op)
        if len(ops) == 2:
            break
    first_in = threading.Event()
    results, errors = {}, []

    def run(name, op, hold):
        try:
            with _sm(client)() as session:
                results[name] = plan_edit.apply(session, draft, op, name)
                if hold:
                    first_in.set()
                    threading.Event().wait(0.5)  # keep the transaction open while the other one starts
                session.commit()
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(repr(exc))
            first_in.set()

    a = threading.Thread(target=run, args=("a", ops[0], True))
    a.start()
    first_in.wait(30)
    b = threading.Thread(target=run, args=("b", ops[1], False))
    b.start()
    a.join(60)
    b.join(60)
    assert not errors, errors
    assert (results["a"]["seq"], results["b"]["seq"]) == (1, 2)
    log = client.get(f"/api/v1/generations/{draft}/edits", headers=PLANNER).json()
    assert [(e["seq"], e["actor"]) for e in log] == [(1, "a"), (2, "b")]
    with _sm(client)() as session:
        assert not tiling_errors(session, draft)
