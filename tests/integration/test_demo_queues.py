"""The demo gives the dispatcher's day material (issue 14 §8), on both databases: its open cases lie in grids except
a few deliberate dead ends, which say what is wrong; every queue holds cases; communities have their leaders."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from gridmap import storage
from gridmap.areas import load_index
from gridmap.cases import utc
from gridmap.demo.queues import DEAD_END_NOTE, DEAD_ENDS
from gridmap.tables import FINISHED_STATES, Area, Case, CaseEvent, Generation, StaffArea
from tests.conftest import TODAY

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
    flags = sorted(tuple(c.locate_flags) for c in dead)
    assert flags == sorted([("outside_all_grids", "assigned_to_nearest"), ("outside_all_grids",), ("on_boundary",),
                            ("near_boundary",), ("placed_by_address", "address_low_confidence")])
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
    for e in demo.scalars(sa.select(CaseEvent).where(CaseEvent.case_id.in_([c.id for c in open_]))
                          .order_by(CaseEvent.id)):
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
    communities = set(demo.scalars(sa.select(Area.code).where(Area.generation_id == gen,
                                                              Area.level == "community")))
    for role in ("community_secretary", "community_director"):
        held = set(demo.scalars(sa.select(StaffArea.area_code).where(StaffArea.role == role)))
        assert held == communities, role
