"""Days are China's (UTC+8): a branch assigned from a day serves cases reported from 00:00 China time on that day,
which is 16:00 UTC the day before; the address gazetteer follows an activation. Both databases (the session
fixture's transaction is rolled back)."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from gridmap.boundaries import generations as gens
from gridmap.calendar import china_date
from gridmap.cases import workflow
from gridmap.locating.gazetteer import gazetteer_for
from gridmap.store.tables import Case, Generation, PartyOrg, PartyOrgArea


def test_china_date_turns_at_16_utc():
    assert china_date(dt.datetime(2026, 11, 25, 15, 59, 59, tzinfo=dt.UTC)) == dt.date(2026, 11, 25)
    assert china_date(dt.datetime(2026, 11, 25, 16, 0, 0, tzinfo=dt.UTC)) == dt.date(2026, 11, 26)
    assert china_date(dt.datetime(2026, 11, 25, 16, 0, 0)) == dt.date(2026, 11, 26)  # naive: UTC


def test_a_branch_from_a_day_serves_cases_from_midnight_china_time(session):
    case = session.scalars(sa.select(Case).where(Case.grid_code.is_not(None)).order_by(Case.id).limit(1)).one()
    grid = case.grid_code
    day = dt.date(2031, 3, 2)
    for row in session.scalars(sa.select(PartyOrgArea).where(PartyOrgArea.area_code == grid)):
        row.valid_to = day
    new = PartyOrg(kind="grid_branch", name="新网格党支部（测试）", member_count=3)
    session.add(new)
    session.flush()
    session.add(PartyOrgArea(party_org_id=new.id, area_code=grid, valid_from=day))
    session.flush()
    session.info.pop("gridmap.territory", None)
    at_midnight = dt.datetime(2031, 3, 1, 16, 0, 1, tzinfo=dt.UTC)  # 00:00:01 on 2 March in China
    assert workflow.route(session, case, at_midnight)["branch_id"] == new.id
    session.info.pop("gridmap.territory", None)
    before = dt.datetime(2031, 3, 1, 15, 59, 0, tzinfo=dt.UTC)  # 23:59 on 1 March in China
    assert workflow.route(session, case, before)["branch_id"] not in (None, new.id)


def test_the_gazetteer_is_rebuilt_when_other_boundaries_take_effect(session):
    active = session.scalars(sa.select(Generation).where(Generation.status == "active")).one()
    other = gens.create_draft(session, "另一版（测试）")  # the newest generation, with areas, before and after
    first = gazetteer_for(session)
    assert gazetteer_for(session) is first
    session.execute(sa.update(Generation).where(Generation.id == active.id).values(status="retired"))
    session.execute(sa.update(Generation).where(Generation.id == other.id).values(status="active"))
    session.expire_all()
    assert gazetteer_for(session) is not first
