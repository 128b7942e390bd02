"""The check's repairs (issue 13 §2), on both databases: a draft broken on purpose — a gap between two micro-grids,
an overlap, a part outside the district narrower than the snapping tolerance, a sliver — gets the right repair
at the right place in the preview; the preview writes nothing and leaves no error; policy and bad parameters.

Each dialect gets a database of its own (`fresh_db_url`), since the tests write drafts."""

from __future__ import annotations

import math

import pytest
import shapely
import sqlalchemy as sa
from fastapi.testclient import TestClient
from geoalchemy2.shape import from_shape, to_shape
from shapely.geometry import MultiPolygon, shape

from gridmap.planning import repair as boundary_repair
from gridmap.store.tables import Area

PLANNER = {"X-User": "p1", "X-Role": "planner"}
WORKER = {"X-User": "w1", "X-Role": "worker"}
DEG_PER_M = 1 / 111_320.0


def _draft(client: TestClient, name: str) -> int:
    r = client.post("/api/v1/generations", headers=PLANNER, json={"name": name})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def _leaves(client: TestClient, generation_id: int) -> dict[str, tuple[str, MultiPolygon]]:
    """Micro-grid code → (parent grid code, geometry)."""
    with client.app.state.sessionmaker() as s:
        rows = s.scalars(sa.select(Area).where(Area.generation_id == generation_id)).all()
        code_of = {a.id: a.code for a in rows}
        return {a.code: (code_of.get(a.parent_id), to_shape(a.geom)) for a in rows if a.level == "microgrid"}


def _write(client: TestClient, generation_id: int, changes: dict[str, MultiPolygon]) -> None:
    with client.app.state.sessionmaker() as s, s.begin():
        for code, geom in changes.items():
            multi = geom if geom.geom_type == "MultiPolygon" else MultiPolygon([geom])
            s.execute(
                sa.update(Area)
                .where(Area.generation_id == generation_id, Area.code == code)
                .values(geom=from_shape(multi, srid=4326))
            )


def _pair(leaves: dict, *, same_parent: bool) -> tuple[str, str]:
    """Two micro-grids sharing an edge at least 200 m long, with the same parent grid or not."""
    codes = sorted(leaves)
    for i, a in enumerate(codes):
        for b in codes[i + 1 :]:
            if (leaves[a][0] == leaves[b][0]) != same_parent:
                continue
            if leaves[a][1].intersection(leaves[b][1]).length > 200 * DEG_PER_M:
                return a, b
    raise AssertionError("no such pair in the demo")


def _m2(geom) -> float:
    lat = geom.centroid.y if not geom.is_empty else 25.0
    return geom.area * 111_320.0 * math.cos(math.radians(lat)) * 110_574.0


def _preview(client: TestClient, generation_id: int, **params) -> dict:
    r = client.get(f"/api/v1/generations/{generation_id}/repairs", headers=PLANNER, params=params)
    assert r.status_code == 200, r.text
    return r.json()


def test_the_demo_needs_no_repair(client):
    gen = _draft(client, "修复：原样")
    plan = _preview(client, gen)
    assert plan["repairs"] == [] and plan["changed"] == {}
    assert plan["before"]["errors"] == 0 and plan["after"] == plan["before"]


def test_a_gap_goes_to_the_neighbour_with_the_longest_shared_edge(client):
    gen = _draft(client, "修复：空隙")
    leaves = _leaves(client, gen)
    a, b = _pair(leaves, same_parent=True)
    geom_a, geom_b = leaves[a][1], leaves[b][1]
    shrunk = geom_b.difference(geom_a.buffer(2 * DEG_PER_M))  # a strip about 2 m wide between a and b
    gap = geom_b.difference(shrunk)
    _write(client, gen, {b: shrunk})
    plan = _preview(client, gen)
    assert plan["before"]["errors"] >= 1
    gaps = [r for r in plan["repairs"] if r["kind"] == "gap_to_neighbour"]
    assert gaps, plan["repairs"]
    got = shapely.union_all([shape(r["geometry"]) for r in gaps])
    assert abs(_m2(got) - _m2(gap)) <= 0.02 * _m2(gap)
    assert got.symmetric_difference(gap).area <= 0.02 * gap.area
    # the strip's longest edge is shared with both a and b (its two long sides): either may get it, nobody else
    assert {r["to_code"] for r in gaps} <= {a, b}
    assert plan["after"]["errors"] == 0
    # a preview writes nothing
    assert _leaves(client, gen)[b][1].equals_exact(shrunk, 1e-12)


def test_an_overlap_is_cut_from_one_neighbour(client):
    gen = _draft(client, "修复：重叠")
    leaves = _leaves(client, gen)
    a, b = _pair(leaves, same_parent=False)
    geom_a, geom_b = leaves[a][1], leaves[b][1]
    overlap = geom_b.intersection(geom_a.buffer(3 * DEG_PER_M))
    _write(client, gen, {a: geom_a.union(overlap)})
    plan = _preview(client, gen)
    cuts = [r for r in plan["repairs"] if r["kind"] == "overlap_to_neighbour"]
    assert len(cuts) >= 1 and {tuple(sorted(r["codes"])) for r in cuts} == {tuple(sorted((a, b)))}
    # the overlap lies in b's grid: b keeps it, a loses it
    assert {(r["from_code"], r["to_code"]) for r in cuts} == {(a, b)}
    got = shapely.union_all([shape(r["geometry"]) for r in cuts])
    assert abs(_m2(got) - _m2(overlap)) <= 0.05 * _m2(overlap)
    assert plan["after"]["errors"] == 0
    assert shape(plan["changed"][a]).symmetric_difference(geom_a).area <= 1e-4 * geom_a.area


def test_a_narrow_part_outside_the_district_is_snapped_and_a_wide_one_is_not(client):
    gen = _draft(client, "修复：越界")
    leaves = _leaves(client, gen)
    with client.app.state.sessionmaker() as s:
        district = to_shape(
            s.scalars(sa.select(Area.geom).where(Area.generation_id == gen, Area.level == "district")).one()
        )
    edge = next(
        c for c, (_, g) in sorted(leaves.items()) if g.boundary.intersection(district.boundary).length > 300 * DEG_PER_M
    )
    geom = leaves[edge][1]
    narrow = geom.buffer(0.5 * DEG_PER_M).difference(district)
    _write(client, gen, {edge: geom.union(narrow)})
    plan = _preview(client, gen, snap_m=1.0)
    snaps = [r for r in plan["repairs"] if r["kind"] == "snap_to_parent"]
    assert snaps and {r["from_code"] for r in snaps} == {edge}
    assert abs(sum(r["area_m2"] for r in snaps) - _m2(narrow)) <= 0.05 * _m2(narrow)
    assert plan["after"]["errors"] == 0
    # with a tolerance below the part's width it is left for the planner
    plan = _preview(client, gen, snap_m=0.2, kinds="snap_to_parent")
    assert not [r for r in plan["repairs"] if r["kind"] == "snap_to_parent"]
    assert plan["after"]["errors"] >= 1 and plan["skipped"]


def test_a_sliver_part_is_absorbed_by_its_sibling(client):
    gen = _draft(client, "修复：碎片")
    leaves = _leaves(client, gen)
    a, b = _pair(leaves, same_parent=True)
    geom_a, geom_b = leaves[a][1], leaves[b][1]
    # a 0.5 m² bit of b, cut off from the rest of b by a 1 cm strip given to a, becomes a separate part of b
    shared = geom_a.intersection(geom_b)
    p = shared.interpolate(0.5, normalized=True)
    bit = geom_b.intersection(p.buffer(0.6 * DEG_PER_M))
    ring = geom_b.intersection(p.buffer(0.7 * DEG_PER_M)).difference(bit)
    _write(client, gen, {a: geom_a.union(ring), b: geom_b.difference(ring)})
    plan = _preview(client, gen, kinds="absorb_sliver")
    slivers = [r for r in plan["repairs"] if r["kind"] == "absorb_sliver"]
    assert [(r["from_code"], r["to_code"]) for r in slivers] == [(b, a)]
    assert 0.2 <= slivers[0]["area_m2"] <= 1.0


def test_policy_and_bad_parameters(client):
    gen = _draft(client, "修复：参数")
    assert client.get(f"/api/v1/generations/{gen}/repairs", headers=WORKER).status_code == 403
    for params, field in (
        ({"kinds": "glue_everything"}, "kinds"),
        ({"snap_m": 0}, "snap_m"),
        ({"snap_m": 1000}, "snap_m"),
        ({"kinds": "x" * 300}, "kinds"),
    ):
        r = client.get(f"/api/v1/generations/{gen}/repairs", headers=PLANNER, params=params)
        assert r.status_code == 422, (params, r.text)
        assert field in r.text
    assert client.get("/api/v1/generations/999999/repairs", headers=PLANNER).status_code == 404


def test_plan_repairs_refuses_unknown_kinds():
    from gridmap.errors import InvalidInput

    with pytest.raises(InvalidInput) as err:
        boundary_repair.plan_repairs([], kinds=("nope",))
    assert err.value.field == "kinds"


def _stored(client: TestClient, generation_id: int, code: str) -> bytes:
    with client.app.state.sessionmaker() as s:
        geom = s.scalars(sa.select(Area.geom).where(Area.generation_id == generation_id, Area.code == code)).one()
        return shapely.to_wkb(to_shape(geom))


def test_applying_the_repairs_leaves_a_clean_draft_and_undo_brings_the_broken_one_back(client):
    gen = _draft(client, "修复：应用")
    leaves = _leaves(client, gen)
    a, b = _pair(leaves, same_parent=True)
    c, d = _pair(leaves, same_parent=False)
    geom_a, geom_b, geom_c, geom_d = (leaves[x][1] for x in (a, b, c, d))
    _write(client, gen, {b: geom_b.difference(geom_a.buffer(2 * DEG_PER_M))})  # a gap
    _write(client, gen, {c: geom_c.union(geom_d.intersection(geom_c.buffer(3 * DEG_PER_M)))})  # an overlap
    broken = {x: _stored(client, gen, x) for x in (a, b, c, d)}
    r = client.get(f"/api/v1/generations/{gen}/check", headers=PLANNER)
    assert not r.json()["ok"]
    r = client.post(f"/api/v1/generations/{gen}/repairs", headers=PLANNER, json={})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["edit"]["op"] == "repair" and out["edit"]["can_undo"]
    assert {x["code"] for x in out["edit"]["changed"]} >= {b, c}
    check = client.get(f"/api/v1/generations/{gen}/check", headers=PLANNER).json()
    assert check["ok"], [p for p in check["problems"] if p["severity"] == "error"]
    # the repaired leaf meets its neighbour along their whole old edge again: no hairline is left between them
    after = _leaves(client, gen)
    shared = after[a][1].intersection(after[b][1])
    assert shared.length >= 0.99 * geom_a.intersection(geom_b).length, (shared.length, shared.geom_type)
    assert {p["kind"] for p in check["problems"]} <= {"not_contiguous", "household_norm"}
    # households kept in total, the draft tiles again; the log has the repair; undo restores the broken draft
    log = client.get(f"/api/v1/generations/{gen}/edits", headers=PLANNER).json()
    assert log[-1]["op"] == "repair"
    r = client.post(f"/api/v1/generations/{gen}/edits/undo", headers=PLANNER)
    assert r.status_code == 200, r.text
    assert {x: _stored(client, gen, x) for x in (a, b, c, d)} == broken
    # nothing left to repair after a redo
    assert client.post(f"/api/v1/generations/{gen}/edits/redo", headers=PLANNER).status_code == 200
    r = client.post(f"/api/v1/generations/{gen}/repairs", headers=PLANNER, json={"kinds": ["gap_to_neighbour"]})
    assert r.status_code == 422 and r.json()["field"] == "kinds"


def test_repairs_are_applied_to_drafts_by_planners_only(client):
    gens_ = client.get("/api/v1/generations", headers=PLANNER).json()
    active = next(g["id"] for g in gens_ if g["status"] == "active")
    r = client.post(f"/api/v1/generations/{active}/repairs", headers=PLANNER, json={})
    assert r.status_code == 409 and r.json()["field"] == "generation"
    gen = _draft(client, "修复：权限")
    assert client.post(f"/api/v1/generations/{gen}/repairs", headers=WORKER, json={}).status_code == 403
    for body, field in (
        ({"kinds": ["glue"]}, "kinds"),
        ({"snap_m": -1}, "snap_m"),
        ({"kinds": []}, "kinds"),
        ({"extra": 1}, "extra"),
    ):
        r = client.post(f"/api/v1/generations/{gen}/repairs", headers=PLANNER, json=body)
        assert r.status_code == 422 and field in r.text, (body, r.text)


def test_the_preview_says_whether_applying_would_be_accepted(client):
    """The preview tries the edit and rolls it back: `applicable` agrees with what POST then does, and the preview
    leaves no trace (no log row, the same stored geometry)."""
    gen = _draft(client, "修复：预演")
    leaves = _leaves(client, gen)
    a, b = _pair(leaves, same_parent=True)
    _write(client, gen, {b: leaves[b][1].difference(leaves[a][1].buffer(2 * DEG_PER_M))})
    stored = _stored(client, gen, b)
    plan = _preview(client, gen)
    assert plan["applicable"] is True and plan["refusal"] is None
    assert client.get(f"/api/v1/generations/{gen}/edits", headers=PLANNER).json() == []
    assert _stored(client, gen, b) == stored
    # a lock makes the edit refuse: the preview says so, naming the reason, and POST refuses the same way
    r = client.post(
        f"/api/v1/generations/{gen}/edits", headers=PLANNER, json={"op": "lock", "codes": [a, b], "locked": True}
    )
    assert r.status_code == 200, r.text
    plan = _preview(client, gen)
    assert plan["applicable"] is False and plan["refusal"]
    r = client.post(f"/api/v1/generations/{gen}/repairs", headers=PLANNER, json={})
    assert r.status_code in (409, 422) and r.json()["detail"] == plan["refusal"]
    # on the active generation nothing is tried
    active = next(g["id"] for g in client.get("/api/v1/generations", headers=PLANNER).json() if g["status"] == "active")
    assert _preview(client, active)["applicable"] is None
