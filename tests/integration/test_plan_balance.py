"""The planner's balance table, diff and places (GET /api/v1/generations/{id}/balance, /diff, /places) on both
databases: every row equals a brute-force recount (each place and case tested against each grid in turn, party
members and staff by plain queries, Polsby–Popper from the geodesic area and perimeter); the diff of an unchanged
draft is empty, that of a changed one lists exactly the change; who may read them."""

from __future__ import annotations

import datetime as dt
import math

import pytest
import shapely
import sqlalchemy as sa
from fastapi.testclient import TestClient
from geoalchemy2.shape import from_shape, to_shape
from pyproj import Geod

from gridmap.geo.coverage import as_multipolygon
from gridmap.store import engine as storage
from gridmap.store.tables import FINISHED_STATES, Area, Case, PartyOrg, PartyOrgArea, Place, PlanAssignment, StaffArea
from gridmap_api.main import create_app
from gridmap_api.settings import Settings

PLANNER = {"X-User": "p1", "X-Role": "planner"}
APPROVER = {"X-User": "a1", "X-Role": "approver"}
ADMIN = {"X-User": "root", "X-Role": "admin"}
WORKER = {"X-User": "w1", "X-Role": "worker"}
GEOD = Geod(ellps="WGS84")


def _sm(client):
    return client.app.state.sessionmaker


def _draft(client, name: str) -> int:
    r = client.post("/api/v1/generations", headers=PLANNER, json={"name": name})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def _get(client, path: str, headers=PLANNER, **params) -> dict:
    r = client.get(path, headers=headers, params=params)
    assert r.status_code == 200, r.text
    return r.json()


def _units(session, generation_id: int, area_code: str, level: str) -> list[Area]:
    """The units under an area by walking down the children, one level at a time (as a person would)."""
    current = session.scalars(sa.select(Area).where(Area.generation_id == generation_id, Area.code == area_code)).all()
    while current and current[0].level != level:
        ids = [a.id for a in current]
        current = session.scalars(sa.select(Area).where(Area.parent_id.in_(ids))).all()
    return sorted(current, key=lambda a: a.code)


def _first_covering(units: list[tuple[str, object]], x: float, y: float) -> str | None:
    for code, geom in units:  # by code: the smallest code wins on a shared edge
        if geom.covers(shapely.Point(x, y)):
            return code
    return None


def recount(session, generation_id: int, area_code: str, level: str, today: dt.date) -> dict[str, dict]:
    """The balance rows, counted the slow way."""
    units = _units(session, generation_id, area_code, level)
    shapes = [(u.code, to_shape(u.geom)) for u in units]
    rows = {
        u.code: {
            "households": u.households,
            "population": u.population,
            "compounds": 0,
            "buildings": 0,
            "open_cases": 0,
            "party_members": 0,
            "staff": 0,
        }
        for u in units
    }
    for place in session.scalars(sa.select(Place).where(Place.kind.in_(("compound", "building")))):
        p = to_shape(place.geom)
        code = _first_covering(shapes, p.x, p.y)
        if code:
            rows[code]["compounds" if place.kind == "compound" else "buildings"] += 1
    for case in session.scalars(sa.select(Case)):
        if case.state in FINISHED_STATES:
            continue
        if case.lon is None:
            code = case.grid_code if level == "grid" else case.microgrid_code
        else:
            code = _first_covering(shapes, case.lon, case.lat)
        if code in rows:
            rows[code]["open_cases"] += 1
    for code in rows:
        planned = session.scalars(
            sa.select(PlanAssignment)
            .where(
                PlanAssignment.generation_id == generation_id,
                PlanAssignment.area_code == code,
                PlanAssignment.kind == "branch",
            )
            .order_by(PlanAssignment.id)
        ).first()
        if planned is not None:
            rows[code]["party_members"] = session.get(PartyOrg, planned.ref_id).member_count
        else:
            orgs = [
                session.get(PartyOrg, link.party_org_id)
                for link in session.scalars(sa.select(PartyOrgArea).where(PartyOrgArea.area_code == code))
                if (link.valid_from is None or link.valid_from <= today)
                and (link.valid_to is None or link.valid_to > today)
            ]
            if orgs:
                rows[code]["party_members"] = min(orgs, key=lambda o: o.id).member_count
        people = {s.staff_id for s in session.scalars(sa.select(StaffArea).where(StaffArea.area_code == code))}
        people |= {
            a.ref_id
            for a in session.scalars(
                sa.select(PlanAssignment).where(
                    PlanAssignment.generation_id == generation_id,
                    PlanAssignment.area_code == code,
                    PlanAssignment.kind == "staff",
                )
            )
        }
        rows[code]["staff"] = len(people)
    mean = sum(r["households"] for r in rows.values()) / len(rows)
    for code, geom in shapes:
        area, perimeter = GEOD.geometry_area_perimeter(geom)
        rows[code]["polsby_popper"] = 4 * math.pi * abs(area) / perimeter**2
        rows[code]["contiguous"] = len(as_multipolygon(geom).geoms) == 1
        rows[code]["deviation"] = (rows[code]["households"] - mean) / mean
    return rows


def _check_rows(body: dict, expected: dict[str, dict]) -> None:
    got = {f["properties"]["code"]: f["properties"] for f in body["features"]["features"]}
    assert set(got) == set(expected)
    for code, want in expected.items():
        row = got[code]
        for key in (
            "households",
            "population",
            "compounds",
            "buildings",
            "open_cases",
            "party_members",
            "staff",
            "contiguous",
        ):
            assert row[key] == want[key], (code, key, row[key], want[key])
        assert row["deviation"] == pytest.approx(want["deviation"], abs=1e-6), code
        assert row["polsby_popper"] == pytest.approx(want["polsby_popper"], rel=2e-3), code


def _codes(session, generation_id: int, level: str) -> list[str]:
    return list(
        session.scalars(
            sa.select(Area.code).where(Area.generation_id == generation_id, Area.level == level).order_by(Area.code)
        )
    )


def test_balance_equals_a_recount_on_every_community_and_sub_district(client):
    draft = _draft(client, "平衡表")
    today = dt.date.today()
    with _sm(client)() as s:
        communities, subs = _codes(s, draft, "community"), _codes(s, draft, "subdistrict")
        grids = _codes(s, draft, "grid")
        expected = {c: recount(s, draft, c, "grid", today) for c in communities + subs}
        micro = recount(s, draft, grids[0], "microgrid", today)
    assert len(communities) == 4 and len(subs) == 2
    seen = {"compounds": 0, "buildings": 0, "open_cases": 0, "party_members": 0, "staff": 0}
    for code in communities + subs:
        body = _get(client, f"/api/v1/generations/{draft}/balance", area=code)
        assert body["level"] == "grid" and body["area"] == code and body["generation_id"] == draft
        _check_rows(body, expected[code])
        assert body["norm"]["tolerance"] == 0.10
        assert body["norm"]["mean_households"] == pytest.approx(
            sum(r["households"] for r in expected[code].values()) / len(expected[code])
        )
        assert not any(f["properties"]["changed"] for f in body["features"]["features"])
        if code in communities:
            for key in seen:
                seen[key] += body["totals"][key]
    assert all(seen.values()), seen  # the demo has something of every kind to count
    body = _get(client, f"/api/v1/generations/{draft}/balance", area=grids[0])
    assert body["level"] == "microgrid"
    _check_rows(body, micro)
    explicit = _get(client, f"/api/v1/generations/{draft}/balance", area=communities[0], level="microgrid")
    assert explicit["level"] == "microgrid" and len(explicit["features"]["features"]) > len(expected[communities[0]])


def test_a_draft_s_own_branch_and_staff_count(client):
    draft = _draft(client, "平衡表·指派")
    today = dt.date.today()
    with storage.session_scope(_sm(client)) as s:
        grid = _codes(s, draft, "grid")[0]
        other = s.scalars(
            sa.select(PartyOrg)
            .where(PartyOrg.kind == "grid_branch", PartyOrg.member_count > 0)
            .order_by(PartyOrg.member_count.desc())
        ).first()
        staff = s.scalars(sa.select(StaffArea.staff_id).where(StaffArea.area_code != grid)).first()
        s.add_all(
            [
                PlanAssignment(generation_id=draft, area_code=grid, kind="branch", ref_id=other.id),
                PlanAssignment(generation_id=draft, area_code=grid, kind="staff", ref_id=staff, role="grid_head"),
            ]
        )
    with _sm(client)() as s:
        community = grid[:12]
        expected = recount(s, draft, community, "grid", today)
    body = _get(client, f"/api/v1/generations/{draft}/balance", area=community)
    _check_rows(body, expected)
    assert expected[grid]["party_members"] == other.member_count


def _reparent(session, draft: int) -> tuple[str, str, str]:
    """Move one micro-grid to the neighbouring grid of its community (in the database, as an edit would):
    (micro-grid, from grid, to grid)."""
    areas = {a.code: a for a in session.scalars(sa.select(Area).where(Area.generation_id == draft))}
    by_id = {a.id: a for a in areas.values()}
    for code, micro in sorted(areas.items()):
        if micro.level != "microgrid":
            continue
        home = by_id[micro.parent_id]
        shape = to_shape(micro.geom)
        siblings = [a for a in areas.values() if a.parent_id == home.id and a.id != micro.id]
        for grid in sorted(areas.values(), key=lambda a: a.code):
            if grid.level != "grid" or grid.id == home.id or grid.parent_id != home.parent_id or not siblings:
                continue
            if shape.intersection(to_shape(grid.geom)).length > 0:  # they share an edge
                micro.parent_id = grid.id
                for parent in (home, grid):
                    children = [a for a in areas.values() if a.parent_id == parent.id]
                    parent.geom = from_shape(
                        as_multipolygon(shapely.coverage_union_all([to_shape(c.geom) for c in children])), srid=4326
                    )
                    parent.households = sum(c.households for c in children)
                    parent.population = sum(c.population for c in children)
                session.flush()
                return code, home.code, grid.code
    raise AssertionError("no micro-grid touches a neighbouring grid")


def test_the_diff_of_an_unchanged_draft_is_empty_and_a_change_is_listed(client):
    draft = _draft(client, "对比")
    with _sm(client)() as s:
        subs = _codes(s, draft, "subdistrict")
    for code in subs:
        body = _get(client, f"/api/v1/generations/{draft}/diff", area=code)
        assert (body["created"], body["retired"], body["changed"], body["areas"], body["units"]) == ([], [], [], [], [])
    with storage.session_scope(_sm(client)) as s:
        micro, was, now = _reparent(s, draft)
        # and elsewhere a micro-grid given a new code (the old one retired)
        other = next(c for c in _codes(s, draft, "microgrid") if c[:12] != micro[:12])
        row = s.scalars(sa.select(Area).where(Area.generation_id == draft, Area.code == other)).one()
        renamed = other[:15] + "99"
        row.code = renamed
        s.flush()
        moved = []
        micro_shape = to_shape(
            s.scalars(sa.select(Area.geom).where(Area.generation_id == draft, Area.code == micro)).one()
        )
        for place in s.scalars(sa.select(Place).where(Place.kind.in_(("building", "compound"))).order_by(Place.id)):
            p = to_shape(place.geom)
            if micro_shape.contains(p):
                moved.append(place.id)
    community = micro[:12]
    body = _get(client, f"/api/v1/generations/{draft}/diff", area=community)
    assert body["created"] == [] and body["retired"] == []
    assert sorted(body["changed"]) == sorted([was, now, micro])
    by_code = {a["code"]: a for a in body["areas"]}
    assert by_code[micro]["parent_before"] == was and by_code[micro]["parent_after"] == now
    assert by_code[micro]["level"] == "microgrid"
    assert by_code[was]["households_after"] < by_code[was]["households_before"]
    assert by_code[now]["households_after"] > by_code[now]["households_before"]
    assert by_code[was]["geometry_before"] is not None
    assert moved, "the moved micro-grid holds places"
    assert sorted(u["id"] for u in body["units"]) == moved
    assert {(u["from"], u["to"]) for u in body["units"]} == {(was, now)}
    elsewhere = _get(client, f"/api/v1/generations/{draft}/diff", area=other[:12])
    assert elsewhere["created"] == [renamed] and elsewhere["retired"] == [other] and elsewhere["changed"] == []
    assert elsewhere["units"] == []
    # the balance marks what changed, and its rows still equal the recount
    balance = _get(client, f"/api/v1/generations/{draft}/balance", area=community)
    changed = {f["properties"]["code"] for f in balance["features"]["features"] if f["properties"]["changed"]}
    assert changed == {was, now}
    with _sm(client)() as s:
        _check_rows(balance, recount(s, draft, community, "grid", dt.date.today()))
    # the places: every building and compound of the community with its micro-grid and grid in the draft
    places = _get(client, f"/api/v1/generations/{draft}/places", area=community)["places"]
    assert {p["id"] for p in places} >= set(moved)
    assert {p["grid"] for p in places if p["id"] in moved} == {now}
    assert {p["leaf"] for p in places if p["id"] in moved} == {micro}
    # the active generation against itself
    active = _get(client, "/api/v1/generations/1/diff", area=community)
    assert active["changed"] == [] and active["units"] == []


def test_who_may_read_and_bad_requests(client, fresh_db_url):
    draft = _draft(client, "权限")
    with _sm(client)() as s:
        community = _codes(s, draft, "community")[0]
        micro = _codes(s, draft, "microgrid")[0]
    for path in ("balance", "diff", "places"):
        url = f"/api/v1/generations/{draft}/{path}"
        for who in (PLANNER, APPROVER, ADMIN):
            assert client.get(url, headers=who, params={"area": community}).status_code == 200, (path, who)
        r = client.get(url, headers=WORKER, params={"area": community})
        assert r.status_code == 403 and r.headers["content-type"] == "application/problem+json"
        missing = client.get(url, headers=PLANNER, params={"area": "530111009009"})
        assert missing.status_code == 404 and missing.json()["field"] == "area"
        assert client.get(url, headers=PLANNER, params={"area": "关上"}).status_code == 422
        assert client.get(url, headers=PLANNER).status_code == 422
        assert (
            client.get(f"/api/v1/generations/987654/{path}", headers=PLANNER, params={"area": community}).status_code
            == 404
        )
        # a planner acting for another sub-district does not see this one
        r = client.get(url, headers={**PLANNER, "X-Areas": "530111002"}, params={"area": "530111001001"})
        assert r.status_code == 404
    with TestClient(create_app(Settings(database_url=fresh_db_url))) as anonymous:
        assert anonymous.get(f"/api/v1/generations/{draft}/balance", params={"area": community}).status_code == 401
    r = client.get(f"/api/v1/generations/{draft}/balance", headers=PLANNER, params={"area": micro})
    assert r.status_code == 422 and r.json()["field"] == "area" and "microgrid" in r.json()["detail"]
    r = client.get(
        f"/api/v1/generations/{draft}/balance", headers=PLANNER, params={"area": micro[:15], "level": "grid"}
    )
    assert r.status_code == 422 and r.json()["field"] == "level"
    for bad in ("0", "1", "nan", "-0.1"):
        assert (
            client.get(
                f"/api/v1/generations/{draft}/balance", headers=PLANNER, params={"area": community, "tolerance": bad}
            ).status_code
            == 422
        )


def test_the_area_list_is_the_generation_s_own(client):
    draft = _draft(client, "区域列表")
    with storage.session_scope(_sm(client)) as s:
        row = s.scalars(
            sa.select(Area).where(Area.generation_id == draft, Area.level == "community").order_by(Area.code)
        ).first()
        row.name = "草稿里改名的社区"
        code = row.code
    body = _get(client, f"/api/v1/generations/{draft}/areas")
    assert {a["level"] for a in body["areas"]} == {"subdistrict", "community"}
    assert len(body["areas"]) == 6
    mine = next(a for a in body["areas"] if a["code"] == code)
    assert mine["name"] == "草稿里改名的社区" and mine["parent"] == code[:9]
    active = _get(client, "/api/v1/generations/1/areas")
    assert next(a for a in active["areas"] if a["code"] == code)["name"] != "草稿里改名的社区"
    grids = _get(client, f"/api/v1/generations/{draft}/areas", level=["grid", "microgrid"])["areas"]
    assert {a["level"] for a in grids} == {"grid", "microgrid"} and len(grids) == 34
    scoped = client.get(f"/api/v1/generations/{draft}/areas", headers={**PLANNER, "X-Areas": "530111002"})
    assert {a["code"][:9] for a in scoped.json()["areas"]} == {"530111002"}
    assert client.get(f"/api/v1/generations/{draft}/areas", headers=WORKER).status_code == 403
    assert (
        client.get(f"/api/v1/generations/{draft}/areas", headers=PLANNER, params={"level": "street"}).status_code == 422
    )
