"""The demo gives the dispatcher's day material (issue 14 §8), on both databases: its open cases lie in grids except
a few deliberate dead ends, which say what is wrong; every queue holds cases; communities have their leaders."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from gridmap.boundaries.areas import load_index
from gridmap.cases.intake import utc
from gridmap.demo.queues import DEAD_END_NOTE, DEAD_ENDS
from gridmap.store import engine as storage
from gridmap.store.tables import FINISHED_STATES, Area, Case, CaseEvent, Generation, StaffArea
from gridmap_api.settings import Settings
from tests.conftest import TODAY, api_client

END = dt.datetime.combine(TODAY, dt.time(0), dt.timezone(dt.timedelta(hours=8)))


@pytest.fixture(scope="module")
def demo(fresh_db_url):
    """The small demo alone (a database of its own: no other test's cases)."""
    engine = storage.make_engine(fresh_db_url)
    with sa.orm.Session(engine) as session:
        yield session
    engine.dispose()


def _open(session):
    return list(session.scalars(sa.select(Case).where(Case.state.not_in(FINISHED_STATES)).order_by(Case.id)))


def test_open_cases_lie_in_grids_except_the_flagged_dead_ends(demo):
    index = load_index(demo)
    open_ = _open(demo)
    dead = [c for c in open_ if (c.description or "").startswith(DEAD_END_NOTE)]
    plain = [c for c in open_ if c not in dead]
    assert len(plain) > 20
    for case in plain:
        assert case.grid_code and not case.locate_flags, case.number
        assert index.covering(case.lon, case.lat)[:1] == [case.microgrid_code], case.number
    # the five dead ends, each in the state a dispatcher meets it, with the locator's flags
    assert len(dead) == len(DEAD_ENDS) and {c.state for c in dead} == {"reported"}
    # (a point outside may also read as an unconverted GCJ-02 one: intake's `possibly_*` flags, left aside here)
    flags = sorted(tuple(f for f in c.locate_flags if not f.startswith("possibly_")) for c in dead)
    assert flags == sorted(
        [
            ("outside_all_grids", "assigned_to_nearest"),
            ("outside_all_grids",),
            ("on_boundary",),
            ("near_boundary",),
            ("placed_by_address", "address_low_confidence"),
        ]
    )
    for case in dead:
        covering = index.covering(case.lon, case.lat)
        if "outside_all_grids" in case.locate_flags:
            assert covering == []  # really outside every grid
            assert bool(case.grid_code) == ("assigned_to_nearest" in case.locate_flags)
            assert case.district_code == "530111"  # the district's dispatchers see it
        elif "on_boundary" in case.locate_flags:
            assert len(covering) == 2 and covering[0][:15] != covering[1][:15]  # on a line between two grids
            assert case.microgrid_code == covering[0]
        else:
            assert covering == [case.microgrid_code]
        if "placed_by_address" in case.locate_flags:
            assert case.source == "hotline" and case.address and "公里" in case.description
    # nothing else of the demo lies outside the grids (the year's points are put back inside)
    outside = demo.scalar(sa.select(sa.func.count()).select_from(Case).where(Case.grid_code.is_(None)))
    assert outside == 1


def test_each_dead_end_can_be_relocated_and_filed_by_a_dispatcher(demo, fresh_db_url):
    """The material works in the dispatcher's flow: each dead end carries the candidate grids intake would store,
    and 更正位置 to the nearest candidate, then 立案, goes through (the API as the console calls it)."""
    index = load_index(demo)
    dead = [c for c in _open(demo) if (c.description or "").startswith(DEAD_END_NOTE)]
    with api_client(
        Settings(database_url=fresh_db_url), role="dispatcher", user="dispatcher-demo", **{"X-Areas": "530111"}
    ) as client:
        for case in dead:
            body = client.get(f"/api/v1/cases/{case.id}").json()
            assert body["state"] == "reported" and body["flags"] == case.locate_flags
            if {"on_boundary", "near_boundary"} & set(case.locate_flags) or not case.grid_code:
                # the other grid(s) on the line, or the nearest ones to a point in none, to pick from
                assert body["candidates"] and all(c["code"] and c["name"] for c in body["candidates"]), body
                move = {"grid": body["candidates"][0]["code"]}
            else:  # assigned to the nearest grid, or placed by its address: the pin is moved after a call back
                leaf = index.leaf_geoms[1 if case.microgrid_code == index.leaves[0].code else 0]
                move = {"lon": leaf.representative_point().x, "lat": leaf.representative_point().y}
            r = client.post(
                f"/api/v1/cases/{case.id}/actions/relocate",
                json={"version": body["version"], "reason": "与上报人电话核实位置", **move},
            )
            assert r.status_code == 200, r.text
            r = client.post(f"/api/v1/cases/{case.id}/actions/file", json={"version": r.json()["version"]})
            assert r.status_code == 200 and r.json()["state"] == "filed", r.text


def test_every_queue_of_the_dispatchers_day_has_material(demo):
    open_ = _open(demo)
    plain = [c for c in open_ if not (c.description or "").startswith(DEAD_END_NOTE)]
    by_state = {}
    for case in plain:
        by_state.setdefault(case.state, []).append(case)
    assert len(by_state.get("reported", [])) >= 5  # 待处理, in grids: they can be filed as they are
    assert len(by_state.get("dispatched", [])) >= 2  # 已派遣
    assert len(by_state.get("handled", [])) >= 3  # 待核查
    events = {}
    for e in demo.scalars(
        sa.select(CaseEvent)
        .where(CaseEvent.case_id.in_([c.id for c in open_]))
        .where(CaseEvent.action != "escalate")
        .order_by(CaseEvent.id)
    ):
        # (an app started on the database escalates the overdue ones: no step of the case's own)
        events.setdefault(e.case_id, []).append(e)
    # 退单: filed again after a bounce, with who and why and the boundary as evidence
    bounced = [c for c in by_state.get("filed", []) if events[c.id][-1].action == "bounce"]
    assert len(bounced) >= 2
    for case in bounced:
        detail = events[case.id][-1].detail
        assert detail["reason"] and detail["by"].split(":")[1] and detail["evidence"]["grid_code"] == case.grid_code
        assert case.assignee_id is None and case.department_id is None and case.bounce_count == 1
    # 待审批: an extension and a suspension request waiting for a leader
    pending = [c for c in plain if c.pending]
    assert {c.pending["kind"] for c in pending} == {"extension", "suspension"}
    for case in pending:
        last = events[case.id][-1]
        assert last.action == f"request_{case.pending['kind']}" and case.state == "accepted"
        assert case.pending["reason"] and case.pending["by"] and case.pending["at"]
        if case.pending["kind"] == "extension":
            assert case.pending["amount"] > 0 and case.pending["unit"]
    # 超期 at the demo's end: running past the deadline, each with a holder to chase
    overdue = [c for c in plain if c.state in ("accepted", "rework") and c.due_at and utc(c.due_at) < END]
    assert len(overdue) >= 2
    assert all(c.assignee_id or c.department_id for c in overdue)


def test_every_community_has_its_secretary_and_director(demo):
    gen = demo.scalar(sa.select(Generation.id).where(Generation.status == "active"))
    communities = set(demo.scalars(sa.select(Area.code).where(Area.generation_id == gen, Area.level == "community")))
    for role in ("community_secretary", "community_director"):
        held = set(demo.scalars(sa.select(StaffArea.area_code).where(StaffArea.role == role)))
        assert held == communities, role


def test_the_staging_is_deterministic_on_either_database(demo, tmp_path):
    """The same seed and date give the same cases, staged ones included, whichever database holds them (compared
    on what the other tests here do not change)."""
    from gridmap.demo.load import load_demo

    def content(session):
        rows = session.execute(
            sa.select(
                Case.number,
                Case.reported_at,
                Case.source,
                Case.category_id,
                Case.description,
                Case.bounce_count,
                Case.pending,
            ).order_by(Case.number)
        )
        return [
            (n, utc(at).isoformat(), src, cat, text, bounces, (p or {}).get("kind"))
            for n, at, src, cat, text, bounces, p in rows
        ]

    url = f"sqlite:///{tmp_path / 'again.sqlite'}"
    engine = storage.make_engine(url)
    storage.migrate(engine)
    with storage.session_scope(storage.make_sessionmaker(engine)) as session:
        load_demo(session, "530111", small=True, seed=11, today=TODAY)
    with sa.orm.Session(engine) as session:
        again = content(session)
    engine.dispose()
    assert again == content(demo) and sum(1 for row in again if row[4].startswith(DEAD_END_NOTE)) == 5
