"""Publishing boundaries (#13 §6) on both databases, as real accounts signed in with POST /api/v1/auth/token:
draft → submitted → approved by another user → active (at once, or scheduled for 00:00 China time and taken into
force by the app's scheduler after a restart); refused while the check has errors or a grid has no branch; open
cases re-located with `boundary_change` events, closed ones left where they were; branches of new grids applied,
of retired grids closed and marked for merging; the impact preview against a brute-force recount in plain shapely;
and a draft found at once after its 201 (a real uvicorn server).

The drafts' grids are changed by writing geometry directly (a micro-grid moved to a neighbouring grid under a new
code, a grid split off or merged away; parents recomputed with shapely.coverage_union_all), so this file does not
depend on the planner's edit operations. The tests share one database per dialect and run in order: each
activation must be dated after the previous one, so they use days in the past (taking effect at once) and then
days after "today" on a clock moved forward (`gridmap.planning.publish.now`)."""

from __future__ import annotations

import datetime as dt
import math
import threading
from unittest import mock

import httpx
import numpy as np
import pyproj
import pytest
import shapely
import sqlalchemy as sa
from fastapi.testclient import TestClient
from geoalchemy2.shape import from_shape, to_shape

from gridmap.access import accounts
from gridmap.boundaries import codes
from gridmap.cases import measures
from gridmap.geo.coverage import as_multipolygon
from gridmap.locating.locate import LocateOptions
from gridmap.planning import publish
from gridmap.store import engine as storage
from gridmap.store.tables import (
    FINISHED_STATES,
    Account,
    Area,
    Case,
    CaseEvent,
    Generation,
    PartyOrg,
    PartyOrgArea,
    Place,
    StaffArea,
)
from gridmap_api.main import create_app
from gridmap_api.settings import Settings

PASSWORD = "publish-test-password-2026"
RATES_OFF = {
    f"rate_{p}": "off" for p in ("anonymous_intake", "open311_post", "open311_key", "signin_account", "signin_address")
}
USERS = {
    "pub-planner": "planner",
    "pub-planner2": "planner",
    "pub-approver": "approver",
    "pub-approver2": "approver",
    "pub-admin": "admin",
}
TODAY = publish.local_today()


def _settings(url: str) -> Settings:
    return Settings(database_url=url, escalation_interval_s=3600, gateway_secret="", **RATES_OFF)


def _token(client, username: str) -> dict:
    r = client.post("/api/v1/auth/token", data={"username": username, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


@pytest.fixture(scope="module")
def world(fresh_db_url):
    engine = storage.make_engine(fresh_db_url)
    sm = storage.make_sessionmaker(engine)
    digest = accounts.hash_password(PASSWORD)
    with storage.session_scope(sm) as s, mock.patch.object(accounts, "hash_password", lambda p: digest):
        for name, role in USERS.items():
            accounts.add_account(s, accounts.AccountSpec(name, role), PASSWORD)
        accounts.add_account(s, accounts.AccountSpec("pub-dispatcher", "dispatcher", ("530111",)), PASSWORD)
    engine.dispose()
    with TestClient(create_app(_settings(fresh_db_url))) as client:
        tokens = {name: _token(client, name) for name in [*USERS, "pub-dispatcher"]}
        yield {"url": fresh_db_url, "client": client, "tokens": tokens, "sm": client.app.state.sessionmaker}


# -- writing a changed draft directly -------------------------------------------------------------------------------


def _areas(s, gen_id, level=None) -> dict[str, Area]:
    q = sa.select(Area).where(Area.generation_id == gen_id)
    if level:
        q = q.where(Area.level == level)
    return {a.code: a for a in s.scalars(q.order_by(Area.code))}


def _recompute(s, gen_id, parent_ids) -> None:
    """Parents as coverage unions of their children, households and population as sums, up to the district."""
    by_id = {a.id: a for a in _areas(s, gen_id).values()}
    todo = set(parent_ids)
    while todo:
        nxt = set()
        for pid in todo:
            parent = by_id[pid]
            children = [a for a in by_id.values() if a.parent_id == pid]
            if not children:
                continue  # emptied: the caller drops it
            parent.geom = from_shape(
                as_multipolygon(shapely.coverage_union_all([to_shape(c.geom) for c in children])), srid=4326
            )
            parent.households = sum(c.households for c in children)
            parent.population = sum(c.population for c in children)
            if parent.parent_id:
                nxt.add(parent.parent_id)
        todo = nxt
    s.flush()


def _touching(s, gen_id):
    """(grid A, grid B, micro-grid m of A sharing an edge with B) with A keeping others, in one community."""
    grids = _areas(s, gen_id, "grid")
    micro = _areas(s, gen_id, "microgrid")
    by_id = {a.id: a for a in grids.values()}
    for m in micro.values():
        a = by_id[m.parent_id]
        if sum(1 for x in micro.values() if x.parent_id == a.id) < 2:
            continue
        for b in grids.values():
            if (
                b.id != a.id
                and b.parent_id == a.parent_id
                and to_shape(m.geom).intersection(to_shape(b.geom)).length > 1e-4
            ):
                rest = shapely.union_all(
                    [to_shape(x.geom) for x in micro.values() if x.parent_id == a.id and x.id != m.id]
                )
                if rest.geom_type == "Polygon":
                    return a, b, m
    raise AssertionError("no micro-grid touches a neighbouring grid")


def _move_leaf(s, gen_id, leaf: Area, to: Area) -> str:
    """Move a micro-grid under another grid of the draft; it gets a fresh code there."""
    (code,) = codes.new_codes(s, to.code, "microgrid", 1, gen_id)
    old_parent = leaf.parent_id
    leaf.parent_id, leaf.code = to.id, code
    s.flush()
    _recompute(s, gen_id, {old_parent, to.id})
    return code


def _new_grid(s, gen_id, community: Area, leaves: list[Area]) -> tuple[str, list[str]]:
    """A new grid (fresh code) in `community` made of `leaves` (re-coded under it)."""
    (code,) = codes.new_codes(s, community.code, "grid", 1, gen_id)
    first = leaves[0]
    grid = Area(
        generation_id=gen_id,
        level="grid",
        code=code,
        name=f"新网格{code[-3:]}",
        parent_id=community.id,
        is_leaf=False,
        geom=first.geom,
        households=0,
        population=0,
        area_m2=0.0,
    )
    s.add(grid)
    s.flush()
    old_parents = {leaf.parent_id for leaf in leaves}
    new_codes = codes.new_codes(s, code, "microgrid", len(leaves), gen_id)
    for leaf, leaf_code in zip(leaves, new_codes):
        leaf.parent_id, leaf.code = grid.id, leaf_code
    s.flush()
    _recompute(s, gen_id, old_parents | {grid.id})
    return code, new_codes


def _merge_grid(s, gen_id, b: Area, into: Area) -> list[str]:
    """Merge grid `b` into `into`: its micro-grids move under `into` with fresh codes, `into` becomes the coverage
    union of both grids (the demo's grids are noded against each other; micro-grids across a grid edge need not be),
    and `b` is removed."""
    leaves = [x for x in _areas(s, gen_id, "microgrid").values() if x.parent_id == b.id]
    fresh = codes.new_codes(s, into.code, "microgrid", len(leaves), gen_id)
    for leaf, code in zip(leaves, fresh):
        leaf.parent_id, leaf.code = into.id, code
    into.geom = from_shape(
        as_multipolygon(shapely.coverage_union_all([to_shape(into.geom), to_shape(b.geom)])), srid=4326
    )
    into.households += b.households
    into.population += b.population
    s.flush()
    _drop_empty(s, gen_id, b.code)
    return fresh


def _recode_grid(s, gen_id, grid: Area) -> str:
    """Give a grid of the draft a fresh code (same outline, same community), its micro-grids fresh codes under it."""
    community = s.get(Area, grid.parent_id)
    (code,) = codes.new_codes(s, community.code, "grid", 1, gen_id)
    leaves = [x for x in _areas(s, gen_id, "microgrid").values() if x.parent_id == grid.id]
    grid.code = code
    for leaf, leaf_code in zip(leaves, codes.new_codes(s, code, "microgrid", len(leaves), gen_id)):
        leaf.code = leaf_code
    s.flush()
    return code


def _drop_empty(s, gen_id, code) -> None:
    area = _areas(s, gen_id)[code]
    assert not s.scalar(sa.select(sa.func.count()).where(Area.parent_id == area.id))
    parent = area.parent_id
    s.delete(area)
    s.flush()
    _recompute(s, gen_id, {parent})


def _draft(world, name: str, user: str = "pub-planner") -> int:
    r = world["client"].post("/api/v1/generations", headers=world["tokens"][user], json={"name": name})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def _post(world, path: str, user: str, body: dict | None = None):
    return world["client"].post(path, headers=world["tokens"][user], json=body)


def _point_in(geom) -> tuple[float, float]:
    p = (
        geom.buffer(-0.0002).representative_point()
        if not geom.buffer(-0.0002).is_empty
        else geom.representative_point()
    )
    return p.x, p.y


def _branch_of(s, code, day=TODAY):
    return s.scalar(
        sa.select(PartyOrgArea.party_org_id)
        .where(
            PartyOrgArea.area_code == code,
            sa.or_(PartyOrgArea.valid_from.is_(None), PartyOrgArea.valid_from <= day),
            sa.or_(PartyOrgArea.valid_to.is_(None), PartyOrgArea.valid_to > day),
        )
        .order_by(PartyOrgArea.party_org_id)
    )


# -- the defect: a draft is stored when its 201 arrives ---------------------------------------------------------------


def test_a_new_draft_is_found_at_once_by_a_real_server(world):
    """POST /generations answers only after its commit: through a real uvicorn server, a PUT and a GET sent the
    moment the 201 arrives find the draft, ten times out of ten."""
    from tests.integration.test_durability import _free_port, _start

    port = _free_port()
    proc = _start(world["url"], port)
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=30) as http:
            token = http.post("/api/v1/auth/token", data={"username": "pub-planner", "password": PASSWORD}).json()
            headers = {"Authorization": f"Bearer {token['access_token']}"}
            for i in range(10):
                made = http.post("/api/v1/generations", headers=headers, json={"name": f"立即可见 {i}"})
                assert made.status_code == 201, made.text
                gen_id = made.json()["id"]
                got = http.get(f"/api/v1/generations/{gen_id}/assignments", headers=headers)
                assert got.status_code == 200, got.text
                grid = got.json()["grids"][0]
                put = http.put(
                    f"/api/v1/generations/{gen_id}/assignments",
                    headers=headers,
                    json={"area_code": grid["code"], "branch_id": grid["branch"]["id"]},
                )
                assert put.status_code == 200, put.text
                assert put.json()["planned"] is True
    finally:
        proc.kill()
        proc.wait(10)


# -- impact against a brute-force recount ---------------------------------------------------------------------------


def _covering(shapes: dict, x: float, y: float) -> str | None:
    point = shapely.Point(x, y)
    hits = sorted(code for code, geom in shapes.items() if geom.covers(point))
    return hits[0] if hits else None


def _placed(shapes: dict, case) -> str | None:
    """Where intake puts a case among `shapes`: the grid covering its point; outside all of them the nearest one
    within intake's 100 m (distances in metres on a local azimuthal projection); the grid a dispatcher chose."""
    if "grid_chosen" in (case.locate_flags or ()) and case.grid_code in shapes:
        return case.grid_code
    hit = _covering(shapes, case.lon, case.lat)
    if hit is not None:
        return hit
    local = pyproj.Transformer.from_crs(
        4326, pyproj.CRS.from_proj4(f"+proj=aeqd +lon_0={case.lon} +lat_0={case.lat} +units=m"), always_xy=True
    ).transform
    near = sorted(
        (
            shapely.transform(geom, lambda c: np.column_stack(local(c[:, 0], c[:, 1]))).distance(shapely.Point(0, 0)),
            code,
        )
        for code, geom in shapes.items()
    )
    return near[0][1] if near and near[0][0] <= LocateOptions().nearest_m else None


def _brute_force(s, active_id: int, draft_id: int) -> dict:
    """Every number of the impact recounted in plain shapely: each building, compound and case tested against every
    old and every new grid (and old micro-grid) polygon."""
    old = {c: to_shape(a.geom) for c, a in _areas(s, active_id, "grid").items()}
    new = {c: to_shape(a.geom) for c, a in _areas(s, draft_id, "grid").items()}
    old_micro = _areas(s, active_id, "microgrid")
    old_micro_shapes = {c: to_shape(a.geom) for c, a in old_micro.items()}
    changed = (set(old) ^ set(new)) | {c for c in set(old) & set(new) if not old[c].equals(new[c])}
    members = {}
    for code in old:
        branch = _branch_of(s, code)
        members[code] = s.get(PartyOrg, branch).member_count if branch else 0
    out = {
        c: {
            "in": {"buildings": 0, "compounds": 0, "households": 0, "population": [], "party_members": []},
            "out": {"buildings": 0, "compounds": 0, "households": 0, "population": [], "party_members": []},
            "households_before": 0,
            "households_after": 0,
            "open_in": set(),
            "open_out": set(),
            "recorded": 0,
            "in_old_outline": 0,
            "in_new_outline": 0,
        }
        for c in changed
    }
    buildings = [(to_shape(p.geom), p.households) for p in s.scalars(sa.select(Place).where(Place.kind == "building"))]
    located = [
        (_covering(old, g.x, g.y), _covering(new, g.x, g.y), _covering(old_micro_shapes, g.x, g.y), hh)
        for g, hh in buildings
    ]
    grid_hh: dict[str, int] = {}
    for og, _, _, hh in located:
        grid_hh[og] = grid_hh.get(og, 0) + hh
    for og, ng, om, hh in located:
        if og in out:
            out[og]["households_before"] += hh
        if ng in out:
            out[ng]["households_after"] += hh
        if og == ng:
            continue
        m = old_micro[om]
        population = hh * m.population / m.households if m.households else 0.0
        party = hh * members.get(og, 0) / grid_hh[og] if grid_hh.get(og) else 0.0
        for code, side in ((og, "out"), (ng, "in")):
            if code in out:
                out[code][side]["buildings"] += 1
                out[code][side]["households"] += hh
                out[code][side]["population"].append(population)
                out[code][side]["party_members"].append(party)
    for p in s.scalars(sa.select(Place).where(Place.kind == "compound")):
        g = to_shape(p.geom)
        og, ng = _covering(old, g.x, g.y), _covering(new, g.x, g.y)
        if og != ng:
            for code, side in ((og, "out"), (ng, "in")):
                if code in out:
                    out[code][side]["compounds"] += 1
    for entry in out.values():
        for side in ("in", "out"):
            entry[side]["population"] = round(math.fsum(entry[side]["population"]))
            entry[side]["party_members"] = round(math.fsum(entry[side]["party_members"]))
    for case in s.scalars(sa.select(Case).where(Case.lon.is_not(None))):
        og, ng = _covering(old, case.lon, case.lat), _covering(new, case.lon, case.lat)
        if case.grid_code in out:
            out[case.grid_code]["recorded"] += 1
        if og in out:
            out[og]["in_old_outline"] += 1
        if ng in out:
            out[ng]["in_new_outline"] += 1
        if case.state in FINISHED_STATES:
            continue
        ng = _placed(new, case)  # an open case moves where intake would place it under the new boundaries
        if ng != case.grid_code:
            assert _placed(old, case) == case.grid_code  # an open case's stored grid is where intake put it
            for code, side in ((case.grid_code, "open_out"), (ng, "open_in")):
                if code in out:
                    out[code][side].add(case.id)
    return out


def _check_impact_against_brute_force(world, draft_id: int) -> dict:
    r = world["client"].get(f"/api/v1/generations/{draft_id}/impact", headers=world["tokens"]["pub-approver"])
    assert r.status_code == 200, r.text
    body = r.json()
    with world["sm"]() as s:
        expected = _brute_force(s, body["active_id"], draft_id)
    assert {g["code"] for g in body["grids"]} == set(expected)
    for g in body["grids"]:
        want = expected[g["code"]]
        assert g["moved_in"] == want["in"], g["code"]
        assert g["moved_out"] == want["out"], g["code"]
        assert (g["households_before"], g["households_after"]) == (want["households_before"], want["households_after"])
        assert {c["id"] for c in g["open_cases_in"]} == want["open_in"]
        assert {c["id"] for c in g["open_cases_out"]} == want["open_out"]
        assert g["historical_cases"] == {
            "recorded": want["recorded"],
            "in_old_outline": want["in_old_outline"],
            "in_new_outline": want["in_new_outline"],
        }
    return body


# -- the workflow ---------------------------------------------------------------------------------------------------


def test_workflow_moves_open_cases_keeps_closed_ones_and_counts_each_where_it_was(world):
    client, tokens, sm = world["client"], world["tokens"], world["sm"]
    draft = _draft(world, "微网格划转")
    with storage.session_scope(sm) as s:
        a, b, m = _touching(s, draft)
        a_code, b_code, m_code = a.code, b.code, m.code
        m_shape = to_shape(m.geom)
        new_m = _move_leaf(s, draft, m, b)
        a_worker = s.scalar(
            sa.select(StaffArea.staff_id).where(StaffArea.area_code == a_code, StaffArea.role == "fulltime_worker")
        )
        b_worker = s.scalar(
            sa.select(StaffArea.staff_id).where(StaffArea.area_code == b_code, StaffArea.role == "fulltime_worker")
        )
        a_branch, b_branch = _branch_of(s, a_code), _branch_of(s, b_code)
    assert a_worker != b_worker and a_branch != b_branch
    # two open cases and a closed one in the micro-grid that moves, filed and routed by intake to A's worker
    x, y = _point_in(m_shape)
    made = [
        client.post(
            "/api/v1/cases",
            headers=tokens["pub-dispatcher"],
            json={"title": f"划转测试{i}", "lon": x, "lat": y, "category": "E0101"},
        )
        for i in range(3)
    ]
    assert all(r.status_code == 201 for r in made), [r.text for r in made]
    ids = [r.json()["id"] for r in made]
    assert {r.json()["grid_code"] for r in made} == {a_code}
    with storage.session_scope(sm) as s:
        assert {s.get(Case, i).assignee_id for i in ids} == {a_worker}
        closed_at = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
        s.execute(sa.update(Case).where(Case.id == ids[2]).values(state="closed", closed_at=closed_at))

    impact = _check_impact_against_brute_force(world, draft)
    assert set(impact["redrawn"]) == {a_code, b_code} and not impact["created"] and not impact["retired"]
    moving = {c["id"]: c for g in impact["grids"] for c in g["open_cases_out"]}
    assert {ids[0], ids[1]} <= set(moving) and ids[2] not in moving
    assert moving[ids[0]]["holder"]["kind"] == "worker" and moving[ids[0]]["holder"]["id"] == a_worker

    # only an approver approves, and only what was submitted
    assert (
        _post(
            world, f"/api/v1/generations/{draft}/approve", "pub-approver", {"effective_from": TODAY.isoformat()}
        ).status_code
        == 409
    )
    assert _post(world, f"/api/v1/generations/{draft}/submit", "pub-approver").status_code == 403
    submitted = _post(world, f"/api/v1/generations/{draft}/submit", "pub-planner")
    assert submitted.status_code == 200, submitted.text
    assert submitted.json()["generation"]["status"] == "submitted"
    assert (
        _post(
            world, f"/api/v1/generations/{draft}/approve", "pub-planner2", {"effective_from": TODAY.isoformat()}
        ).status_code
        == 403
    )  # a planner is no approver
    day = TODAY - dt.timedelta(days=30)
    approved = _post(world, f"/api/v1/generations/{draft}/approve", "pub-approver", {"effective_from": day.isoformat()})
    assert approved.status_code == 200, approved.text
    body = approved.json()
    assert body["generation"]["status"] == "active" and body["scheduled"] is False
    assert body["index_generation_id"] == draft and body["activation"]["cases_relocated"] >= 2
    assert body["generation"]["approved_by"] != body["generation"]["submitted_by"]

    # locating follows at once; the open cases moved with an event naming both grids; the closed one stayed
    located = client.get("/api/v1/locate", headers=tokens["pub-dispatcher"], params={"lon": x, "lat": y}).json()
    assert located["grid"]["code"] == b_code and located["microgrid"]["code"] == new_m
    with sm() as s:
        for cid in ids[:2]:
            case = s.get(Case, cid)
            assert (case.grid_code, case.microgrid_code, case.generation_id) == (b_code, new_m, draft)
            assert case.assignee_id == b_worker and case.branch_id == b_branch
            (event,) = s.scalars(
                sa.select(CaseEvent).where(CaseEvent.case_id == cid, CaseEvent.action == "boundary_change")
            ).all()
            assert event.detail["from"]["grid"] == a_code and event.detail["to"]["grid"] == b_code
            assert event.detail["from"]["microgrid"] == m_code and event.detail["to"]["microgrid"] == new_m
            assert event.detail["from"]["grid_name"] and event.detail["to"]["grid_name"]
            assert event.detail["assignee_id"] == {"from": a_worker, "to": b_worker, "rule": "territory_first"}
        kept = s.get(Case, ids[2])
        assert (kept.grid_code, kept.microgrid_code, kept.assignee_id) == (a_code, m_code, a_worker)
        assert not s.scalar(
            sa.select(sa.func.count()).where(CaseEvent.case_id == ids[2], CaseEvent.action == "boundary_change")
        )
        # the micro-grid kept its outline under a new code: its building group and building head came along
        group = s.scalars(sa.select(PartyOrgArea).where(PartyOrgArea.area_code == m_code)).one()
        assert group.valid_to == day
        assert _branch_of(s, new_m) == group.party_org_id
        assert s.scalar(sa.select(StaffArea.role).where(StaffArea.area_code == new_m)) == "building_head"
        assert not s.scalar(sa.select(sa.func.count()).where(StaffArea.area_code == m_code))
        # the buildings of the micro-grid take its new code
        inside = [
            p for p in s.scalars(sa.select(Place).where(Place.kind == "building")) if m_shape.covers(to_shape(p.geom))
        ]
        assert inside and {p.area_code for p in inside} == {new_m}
        # measures over a period spanning the change count each case where it was at the time: all three were
        # received in A (the moved ones' boundary_change events say so), though two are in B now
        mine = s.scalars(sa.select(Case).where(Case.id.in_(ids))).all()
        assert sorted(c.grid_code for c in mine) == sorted([a_code, b_code, b_code])
        since = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
        until = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)
        _, table = measures.measures(s, "grid", since=since, until=until)
        rows = table.set_index("key")
        received = {code: int(rows.loc[code, "received"]) for code in (a_code, b_code)}
        by_area = {
            code: measures.area_measures(s, code, since=since, until=until)[1]["received"] for code in (a_code, b_code)
        }
        others = s.scalar(
            sa.select(sa.func.count())
            .select_from(Case)
            .where(
                Case.reported_at >= since,
                Case.reported_at < until,
                Case.id.not_in(ids),
                Case.grid_code.in_([a_code, b_code]),
            )
        )
        assert received[a_code] + received[b_code] == 3 + others
        assert received == by_area
        assert received[a_code] >= 3  # the moved cases count in A, where they were received
        _, by_worker = measures.measures(s, "worker", since=since, until=until)
        workers = by_worker.set_index("key")
        assert int(workers.loc[str(a_worker), "received"]) >= 3  # A's worker had them when they came in
    assert client.get("/api/v1/generations", headers=tokens["pub-planner"]).json()[0]["status"] == "retired"


def test_the_submitter_or_creator_may_not_approve_even_as_approver(world):
    """Four eyes by account: a planner later given the approver role cannot approve its own draft."""
    client, tokens = world["client"], world["tokens"]
    draft = _draft(world, "四眼原则", user="pub-planner2")
    assert _post(world, f"/api/v1/generations/{draft}/submit", "pub-planner2").status_code == 200
    with world["sm"]() as s:
        account_id = s.scalar(sa.select(Account.id).where(Account.username == "pub-planner2"))
    changed = client.patch(f"/api/v1/accounts/{account_id}", headers=tokens["pub-admin"], json={"role": "approver"})
    assert changed.status_code == 200, changed.text
    as_approver = _token(client, "pub-planner2")
    refused = client.post(
        f"/api/v1/generations/{draft}/approve", headers=as_approver, json={"effective_from": TODAY.isoformat()}
    )
    assert refused.status_code == 403, refused.text
    problem = refused.json()
    assert problem["field"] == "approver" and problem["detail"].startswith("审批人不能是本草稿的提交人")
    assert refused.headers["content-type"] == "application/problem+json"
    # another approver sends it back with a reason; it is a draft again, and nothing was published
    rejected = _post(world, f"/api/v1/generations/{draft}/reject", "pub-approver", {"reason": "请补充说明"})
    assert rejected.status_code == 200 and rejected.json()["generation"]["status"] == "draft"
    assert rejected.json()["generation"]["submitted_by"] is None
    assert _post(world, f"/api/v1/generations/{draft}/reject", "pub-approver", {"reason": "again"}).status_code == 409
    assert _post(world, f"/api/v1/generations/{draft}/reject", "pub-approver", {"reason": ""}).status_code == 422
    client.patch(f"/api/v1/accounts/{account_id}", headers=tokens["pub-admin"], json={"role": "planner"})


def test_check_errors_refuse_publishing(world):
    sm = world["sm"]
    draft = _draft(world, "有缺口的草稿")
    with storage.session_scope(sm) as s:
        leaf = next(a for a in _areas(s, draft, "microgrid").values())
        leaf.geom = from_shape(as_multipolygon(to_shape(leaf.geom).buffer(-0.0005)), srid=4326)  # a 50 m gap
    refused = _post(world, f"/api/v1/generations/{draft}/submit", "pub-planner")
    assert refused.status_code == 409 and refused.json()["field"] == "check", refused.text
    assert refused.json()["detail"].startswith("边界检查有")
    # and approving one that was submitted anyhow (written directly) is refused the same way
    with storage.session_scope(sm) as s:
        s.execute(sa.update(Generation).where(Generation.id == draft).values(status="submitted", submitted_by="a999"))
    again = _post(world, f"/api/v1/generations/{draft}/approve", "pub-approver", {"effective_from": TODAY.isoformat()})
    assert again.status_code == 409 and again.json()["field"] == "check"
    with sm() as s:
        assert s.get(Generation, draft).status == "submitted"
    _post(world, f"/api/v1/generations/{draft}/reject", "pub-approver", {"reason": "有缺口"})


def test_a_merged_grid_keeps_one_branch_and_marks_the_other_for_merging(world):
    client, sm = world["client"], world["sm"]
    draft = _draft(world, "网格合并")
    with storage.session_scope(sm) as s:
        a, b, _ = _touching(s, draft)
        a_code, b_code = a.code, b.code
        _merge_grid(s, draft, b, a)
        a_branch, b_branch = _branch_of(s, a_code), _branch_of(s, b_code)
        b_staff = s.scalar(sa.select(sa.func.count()).where(StaffArea.area_code == b_code))
    assert b_staff > 0
    plan = client.get(f"/api/v1/generations/{draft}/assignments", headers=world["tokens"]["pub-planner"]).json()
    assert plan["missing"] == [] and b_code not in {g["code"] for g in plan["grids"]}
    impact = _check_impact_against_brute_force(world, draft)
    assert impact["retired"] == [b_code]
    assert _post(world, f"/api/v1/generations/{draft}/submit", "pub-planner").status_code == 200
    day = TODAY - dt.timedelta(days=20)
    r = _post(world, f"/api/v1/generations/{draft}/approve", "pub-approver2", {"effective_from": day.isoformat()})
    assert r.status_code == 200, r.text
    merged = r.json()["activation"]["merged_branches"]
    assert merged == [{"branch_id": b_branch, "into": a_branch, "from_grid": b_code, "grid": a_code}]
    with sm() as s:
        assert s.get(PartyOrg, b_branch).merge_into_id == a_branch
        assert s.get(PartyOrg, a_branch).merge_into_id is None
        row = s.scalars(sa.select(PartyOrgArea).where(PartyOrgArea.area_code == b_code)).one()
        assert row.valid_to == day  # closed on the day the merge took effect: the history stays
        assert _branch_of(s, b_code, day - dt.timedelta(days=1)) == b_branch and _branch_of(s, b_code, day) is None
        assert not s.scalar(sa.select(sa.func.count()).where(StaffArea.area_code == b_code))
        # no open case is left in the retired grid
        assert not s.scalar(
            sa.select(sa.func.count()).where(Case.grid_code == b_code, Case.state.not_in(FINISHED_STATES))
        )


def test_the_operator_activates_directly_from_the_cli(world, capsys):
    """`gridmap boundaries activate`: refused (exit 2, nothing changed) while the check has errors; a ready draft
    takes effect on the day given, with its cases re-located; `publish-due` finds nothing due."""
    import json

    from gridmap.cli import main

    sm, url = world["sm"], world["url"]
    broken = _draft(world, "命令行：有缺口")
    with storage.session_scope(sm) as s:
        leaf = next(a for a in _areas(s, broken, "microgrid").values())
        leaf.geom = from_shape(as_multipolygon(to_shape(leaf.geom).buffer(-0.0005)), srid=4326)
    day = TODAY - dt.timedelta(days=10)
    capsys.readouterr()
    assert main(["--database", url, "boundaries", "activate", str(broken), "--date", day.isoformat()]) == 2
    assert "check: publishing refused: the boundary check" in capsys.readouterr().err  # the CLI speaks English
    with sm() as s:
        assert s.get(Generation, broken).status == "draft"
    draft = _draft(world, "命令行生效")
    with storage.session_scope(sm) as s:
        a, b, m = _touching(s, draft)
        x, y = _point_in(to_shape(m.geom))
        b_code, new_m = b.code, _move_leaf(s, draft, m, b)
    case = (
        world["client"]
        .post(
            "/api/v1/cases",
            headers=world["tokens"]["pub-dispatcher"],
            json={"title": "命令行测试", "lon": x, "lat": y, "category": "E0101"},
        )
        .json()
    )
    assert main(["--database", url, "boundaries", "activate", str(draft), "--date", day.isoformat()]) == 0
    done = json.loads(capsys.readouterr().out)
    assert done["generation_id"] == draft and done["effective_from"] == day.isoformat() and done["cases_relocated"] >= 1
    with sm() as s:
        assert s.get(Generation, draft).status == "active"
        moved = s.get(Case, case["id"])
        assert (moved.grid_code, moved.microgrid_code) == (b_code, new_m)
        assert (
            s.scalar(
                sa.select(CaseEvent.actor).where(CaseEvent.case_id == case["id"], CaseEvent.action == "boundary_change")
            )
            == "cli"
        )
    assert main(["--database", url, "boundaries", "publish-due"]) == 0
    assert json.loads(capsys.readouterr().out) == {"activated": []}
    world["client"].app.state.reload_index()


def test_a_new_grid_needs_a_branch_and_a_scheduled_activation_survives_a_restart(world, monkeypatch):
    client, tokens, sm, url = world["client"], world["tokens"], world["sm"], world["url"]
    draft = _draft(world, "新设网格（定期生效）")
    with storage.session_scope(sm) as s:
        a, b, m = _touching(s, draft)
        a_code = a.code
        community = s.get(Area, a.parent_id)
        m_shape = to_shape(m.geom)
        new_grid, (new_m,) = _new_grid(s, draft, community, [m])
        spare = s.scalar(
            sa.select(PartyOrg.id).where(PartyOrg.kind == "grid_branch", PartyOrg.merge_into_id.is_not(None))
        )
        free_branch = s.scalar(
            sa.select(PartyOrg.id)
            .where(PartyOrg.kind == "grid_branch", PartyOrg.merge_into_id.is_(None))
            .order_by(PartyOrg.id.desc())
        )
        worker = s.scalar(
            sa.select(StaffArea.staff_id).where(StaffArea.area_code == a_code, StaffArea.role == "fulltime_worker")
        )
        committee = s.scalar(sa.select(PartyOrg.id).where(PartyOrg.kind == "community_committee").limit(1))
    x, y = _point_in(m_shape)
    case = client.post(
        "/api/v1/cases",
        headers=tokens["pub-dispatcher"],
        json={"title": "新网格测试", "lon": x, "lat": y, "category": "E0101"},
    )
    assert case.status_code == 201 and case.json()["grid_code"] == a_code
    case_id = case.json()["id"]

    plan = client.get(f"/api/v1/generations/{draft}/assignments", headers=tokens["pub-planner"]).json()
    assert plan["missing"] == [new_grid]
    assert next(g for g in plan["grids"] if g["code"] == new_grid) == {
        "code": new_grid,
        "name": f"新网格{new_grid[-3:]}",
        "new": True,
        "recoded_from": None,
        "planned": False,
        "branch": None,
        "staff": [],
    }
    refused = _post(world, f"/api/v1/generations/{draft}/submit", "pub-planner")
    assert refused.status_code == 409 and refused.json()["field"] == "assignments"
    assert new_grid in refused.json()["detail"] and refused.json()["detail"].startswith("人员分配：网格")
    # a branch marked for merging cannot be given; a grid branch that serves another grid breaks 1:1
    put = f"/api/v1/generations/{draft}/assignments"
    assert (
        client.put(put, headers=tokens["pub-planner"], json={"area_code": new_grid, "branch_id": spare}).status_code
        == 422
    )
    assert (
        client.put(put, headers=tokens["pub-planner"], json={"area_code": new_grid, "branch_id": committee}).status_code
        == 422
    )  # a community committee is no grid branch
    shared = client.put(put, headers=tokens["pub-planner"], json={"area_code": new_grid, "branch_id": free_branch})
    assert shared.status_code == 200
    assert _post(world, f"/api/v1/generations/{draft}/submit", "pub-planner").json()["field"] == "assignments"
    # the planner takes the branch of the merged-away grid back into service (its mark is cleared by an admin)
    with storage.session_scope(sm) as s:
        s.get(PartyOrg, spare).merge_into_id = None
    assigned = client.put(
        put,
        headers=tokens["pub-planner"],
        json={"area_code": new_grid, "branch_id": spare, "staff": [{"staff_id": worker, "role": "fulltime_worker"}]},
    )
    assert assigned.status_code == 200, assigned.text
    assert assigned.json()["branch"]["id"] == spare and assigned.json()["staff"][0]["id"] == worker
    assert (
        client.put(put, headers=tokens["pub-approver"], json={"area_code": new_grid, "branch_id": spare}).status_code
        == 403
    )
    assert _post(world, f"/api/v1/generations/{draft}/submit", "pub-planner").status_code == 200

    # approved for tomorrow: scheduled, nothing changes yet
    tomorrow = TODAY + dt.timedelta(days=1)
    r = _post(world, f"/api/v1/generations/{draft}/approve", "pub-approver", {"effective_from": tomorrow.isoformat()})
    assert r.status_code == 200, r.text
    assert r.json()["scheduled"] is True and r.json()["generation"]["status"] == "approved"
    with sm() as s:
        assert s.get(Case, case_id).grid_code == a_code

    # the app goes down; it comes back at 23:59:59 China time (nothing due), then at 00:00:01 tomorrow
    def at_local(day: dt.date, h: int, mi: int, sec: int) -> dt.datetime:
        return dt.datetime(day.year, day.month, day.day, h, mi, sec, tzinfo=publish.LOCAL_TZ)

    monkeypatch.setattr(publish, "now", lambda: at_local(TODAY, 23, 59, 59))
    with TestClient(create_app(_settings(url))) as restarted:
        with restarted.app.state.sessionmaker() as s:
            assert s.get(Generation, draft).status == "approved"
        assert (
            restarted.get("/api/v1/locate", headers=tokens["pub-dispatcher"], params={"lon": x, "lat": y}).json()[
                "grid"
            ]["code"]
            == a_code
        )
    monkeypatch.setattr(publish, "now", lambda: at_local(tomorrow, 0, 0, 1))
    with TestClient(create_app(_settings(url))) as restarted:
        with restarted.app.state.sessionmaker() as s:
            gen = s.get(Generation, draft)
            assert gen.status == "active" and gen.effective_from == tomorrow and gen.approved_by
            moved = s.get(Case, case_id)
            assert (moved.grid_code, moved.microgrid_code) == (new_grid, new_m)
            assert moved.branch_id == spare and moved.assignee_id == worker  # the worker serves the new grid
            (event,) = s.scalars(
                sa.select(CaseEvent).where(CaseEvent.case_id == case_id, CaseEvent.action == "boundary_change")
            ).all()
            assert event.actor == "system" and event.detail["to"]["grid"] == new_grid
            assert "assignee_id" not in event.detail
            assert _branch_of(s, new_grid, tomorrow) == spare and _branch_of(s, new_grid, TODAY) is None
        # it takes effect: locate answers with the new grid and, on its day, its branch and staff
        now = restarted.get(
            "/api/v1/locate",
            headers=tokens["pub-dispatcher"],
            params={"lon": x, "lat": y, "as_of": tomorrow.isoformat()},
        ).json()
        assert now["grid"]["code"] == new_grid and now["generation_id"] == draft
        assert now["branch"]["id"] == spare and [p["id"] for p in now["staff"]] == [worker]
        then = restarted.get(
            "/api/v1/locate", headers=tokens["pub-dispatcher"], params={"lon": x, "lat": y, "as_of": TODAY.isoformat()}
        ).json()
        assert then["grid"]["code"] == a_code
        assert (
            restarted.get("/api/v1/locate", headers=tokens["pub-dispatcher"], params={"lon": x, "lat": y}).json()[
                "grid"
            ]["code"]
            == new_grid
        )
    client.app.state.reload_index()


def test_due_activation_runs_once_across_workers(world, monkeypatch):
    """Two schedulers (two sessions in two threads, as two workers) find the same generation due: one activates
    it, the other does nothing; every open case gets one boundary_change event."""
    sm = world["sm"]
    with sm() as s:
        active = s.scalar(sa.select(Generation).where(Generation.status == "active"))
        start = active.effective_from
    draft = _draft(world, "并发生效")
    with storage.session_scope(sm) as s:
        a, b, m = _touching(s, draft)
        _move_leaf(s, draft, m, b)
        other = next(g for g in _areas(s, draft, "grid").values() if g.id not in (a.id, b.id))
        old_code, branch = other.code, _branch_of(s, other.code)
        recoded = _recode_grid(s, draft, other)
    # a grid only re-coded (same outline) keeps its branch: nothing to plan for it
    plan = (
        world["client"].get(f"/api/v1/generations/{draft}/assignments", headers=world["tokens"]["pub-planner"]).json()
    )
    row = next(g for g in plan["grids"] if g["code"] == recoded)
    assert row["new"] and row["recoded_from"] == old_code and row["branch"]["id"] == branch and row["staff"]
    assert plan["missing"] == []
    with storage.session_scope(sm) as s:
        s.execute(
            sa.update(Generation)
            .where(Generation.id == draft)
            .values(
                status="approved", effective_from=start + dt.timedelta(days=1), submitted_by="a998", approved_by="a997"
            )
        )
    due = dt.datetime.combine(start + dt.timedelta(days=1), dt.time(0, 0, 1), publish.LOCAL_TZ)
    results, barrier = [], threading.Barrier(2)

    def worker():
        barrier.wait()
        try:
            with storage.session_scope(sm) as s:
                results.append(publish.activate_due(s, at=due))
        except sa.exc.OperationalError as exc:  # SQLite: the other writer holds the database
            results.append(("busy", str(exc)[:80]))

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(map(str, results)).count(str([draft])) == 1, results
    with sm() as s:
        assert s.get(Generation, draft).status == "active"
        events = s.execute(
            sa.select(CaseEvent.case_id, sa.func.count())
            .where(CaseEvent.action == "boundary_change", CaseEvent.detail["generation_id"].as_integer() == draft)
            .group_by(CaseEvent.case_id)
        ).all()
        assert all(n == 1 for _, n in events)
        day = start + dt.timedelta(days=1)
        assert _branch_of(s, recoded, day) == branch and _branch_of(s, old_code, day) is None
        assert s.get(PartyOrg, branch).merge_into_id is None
        assert s.scalar(sa.select(sa.func.count()).where(StaffArea.area_code == recoded)) == len(row["staff"])
    with storage.session_scope(sm) as s:  # a third run, later, finds nothing
        assert publish.activate_due(s, at=due + dt.timedelta(minutes=5)) == []
    world["client"].app.state.reload_index()


def test_a_scheduled_generation_overtaken_by_another_goes_back_to_the_approvers(world):
    """Approved for a day, then another generation took effect first: on its day it is not put in force (that would
    undo the other one) but sent back as submitted, with the reason in the audit log, and not retried."""
    from gridmap.store.tables import AuditEntry

    sm = world["sm"]
    with sm() as s:
        # (from today at least: run first in its module, the demo's boundaries started in the past)
        start = max(TODAY, s.scalar(sa.select(Generation.effective_from).where(Generation.status == "active")))
    first, second = _draft(world, "先批准的"), _draft(world, "后生效的")
    assert _post(world, f"/api/v1/generations/{first}/submit", "pub-planner").status_code == 200
    later = start + dt.timedelta(days=3)
    r = _post(world, f"/api/v1/generations/{first}/approve", "pub-approver", {"effective_from": later.isoformat()})
    assert r.status_code == 200 and r.json()["scheduled"] is True
    sooner = dt.datetime.combine(start + dt.timedelta(days=2), dt.time(9), publish.LOCAL_TZ)
    with storage.session_scope(sm) as s:
        publish.activate_generation(s, second, start + dt.timedelta(days=2), actor="a1", at=sooner)
    due = dt.datetime.combine(later, dt.time(0, 0, 1), publish.LOCAL_TZ)
    with storage.session_scope(sm) as s:
        assert publish.activate_due(s, at=due) == []
    with sm() as s:
        gen = s.get(Generation, first)
        assert gen.status == "submitted" and gen.effective_from is None and gen.approved_by is None
        entry = s.scalars(
            sa.select(AuditEntry).where(
                AuditEntry.action == "publish_failed", AuditEntry.target == f"generation:{first}"
            )
        ).one()
        assert f"generation {second} is active now" in entry.detail["reason"]
        assert s.scalar(sa.select(Generation.status).where(Generation.id == second)) == "active"
    with storage.session_scope(sm) as s:
        assert publish.activate_due(s, at=due + dt.timedelta(minutes=1)) == []
    world["client"].app.state.reload_index()


def test_an_activation_leaves_the_index_file_that_locate_file_loads(world, tmp_path, monkeypatch):
    """Activating boundaries writes their lookup index file (`generations.shared_index`), so that the next
    `gridmap locate-file` (`batch.quick_index`) and the server's workers load it instead of building it again; the
    file answers as the index built from the database does."""
    from gridmap.boundaries.areas import load_index
    from gridmap.locating import batch

    cache = tmp_path / "cache"
    monkeypatch.setenv("GRIDMAP_INDEX_CACHE", str(cache))
    assert batch.quick_index(world["url"], cache_dir=cache) is None  # no file yet: locate-file would build it
    sm = world["sm"]
    with sm() as s:
        start = s.scalar(sa.select(Generation.effective_from).where(Generation.status == "active"))
    day = max(TODAY, start + dt.timedelta(days=1))
    draft = _draft(world, "索引文件")
    with storage.session_scope(sm) as s:
        publish.activate_generation(
            s, draft, day, actor="a1", at=dt.datetime.combine(day, dt.time(9), publish.LOCAL_TZ)
        )
    found = batch.quick_index(world["url"], cache_dir=cache)
    assert found is not None and found[0].generation_id == draft
    with sm() as s:
        built = load_index(s, draft)
    x0, y0, x1, y1 = built.bounds
    rng = np.random.default_rng(3)
    xs, ys = rng.uniform(x0, x1, 2000), rng.uniform(y0, y1, 2000)
    assert (found[0].locate_many(xs, ys) == built.locate_many(xs, ys)).all()
    assert [a.code for a in found[0].leaves] == [a.code for a in built.leaves]
    world["client"].app.state.reload_index()
