"""The manager's lists (both databases). Rankings of child areas and of workers: every child's value equals the
measures of that child computed on its own (`area_measures`), workers' figures equal their cases counted one by
one, the order and the target line, and who may see what (an area outside the caller's scope is not found; workers
outside it are not listed). The case list exported as CSV / XLSX holds exactly the listed cases, in Chinese."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from gridmap.cases import export as case_export
from gridmap.cases import intake as cases
from gridmap.cases import measures, rankings
from gridmap.errors import InvalidInput
from gridmap.store.tables import Area, Case, Generation, StaffArea
from tests.conftest import TODAY

UTC = dt.UTC
UNTIL = dt.datetime.combine(TODAY, dt.time(), UTC)
SINCE = UNTIL - dt.timedelta(days=365)


def _areas(session, level, under=None):
    active = session.scalar(sa.select(Generation.id).where(Generation.status == "active"))
    q = sa.select(Area).where(Area.generation_id == active, Area.level == level)
    if under:
        q = q.where(Area.code.startswith(under))
    return session.scalars(q.order_by(Area.code)).all()


@pytest.mark.parametrize("level", ["district", "subdistrict", "community", "grid"])
@pytest.mark.parametrize("measure", ["on_time_rate", "received", "bounces", "close_hours_p50", "satisfaction"])
def test_each_child_equals_its_own_measures(session, level, measure):
    area = _areas(session, level)[0]
    got = rankings.ranking(session, area.code, measure, "children", since=SINCE, until=UNTIL)
    children = _areas(session, rankings.CHILD_LEVEL[level], area.code)
    children = [c for c in children if c.parent_id == area.id]
    assert {i["code"] for i in got["items"]} == {c.code for c in children} and children
    for item in got["items"]:
        _, own = measures.area_measures(session, item["code"], since=SINCE, until=UNTIL)
        assert item["value"] == own[measure], (item["code"], measure)
        if measure in rankings.RATIOS:
            num, plus, minus = rankings.RATIOS[measure]
            assert item["numerator"] == own[num]
            assert item["denominator"] == sum(own[c] for c in plus) - sum(own[c] for c in minus)
            if item["denominator"]:
                assert item["value"] == pytest.approx(item["numerator"] / item["denominator"], abs=5e-5)
    assert got["measure"] == measure and got["target"] == rankings.TARGETS.get(measure)


def test_order_best_first_and_the_target_line(session):
    district = _areas(session, "district")[0]
    for measure, higher in (("on_time_rate", True), ("rework_rate", False)):
        got = rankings.ranking(session, district.code, measure, "children", since=SINCE, until=UNTIL)
        values = [i["value"] for i in got["items"] if i["value"] is not None]
        assert values == sorted(values, reverse=higher) and got["higher_is_better"] is higher
        for i in got["items"]:
            if i["value"] is None:
                assert i["meets_target"] is None
            else:
                assert i["meets_target"] == (i["value"] >= got["target"] if higher else i["value"] <= got["target"])
    got = rankings.ranking(session, district.code, "received", "children", since=SINCE, until=UNTIL)
    assert got["target"] is None and all(i["meets_target"] is None for i in got["items"])


def test_workers_counted_one_by_one(session):
    community = _areas(session, "community")[0]
    got = rankings.ranking(session, community.code, "received", "workers", since=SINCE, until=UNTIL)
    serving = set(
        session.scalars(
            sa.select(StaffArea.staff_id).where(
                StaffArea.area_code.startswith(community.code), StaffArea.role.in_(rankings.WORKER_ROLES)
            )
        )
    )
    assert {i["staff_id"] for i in got["items"]} == serving
    due = rankings.ranking(session, community.code, "closure_rate", "workers", since=SINCE, until=UNTIL)
    due = {i["staff_id"]: i for i in due["items"]}
    assert any(i["value"] for i in got["items"])
    for item in got["items"]:
        mine = [Case.assignee_id == item["staff_id"], Case.grid_code.startswith(community.code)]
        received = session.scalar(
            sa.select(sa.func.count())
            .select_from(Case)
            .where(*mine, Case.reported_at >= SINCE, Case.reported_at < UNTIL)
        )
        assert item["value"] == received
        cohort = [
            *mine,
            Case.due_at >= SINCE,
            Case.due_at < UNTIL,
            Case.state.not_in(("rejected", "voided", "merged", "suspended")),
        ]
        active = session.scalar(sa.select(sa.func.count()).select_from(Case).where(*cohort))
        closed = session.scalar(
            sa.select(sa.func.count())
            .select_from(Case)
            .where(*cohort, Case.state == "closed", Case.closed_at.is_not(None))
        )
        d = due[item["staff_id"]]
        assert (d["numerator"], d["denominator"]) == (closed, active)
        assert d["value"] == (round(closed / active, 4) if active else None)


def test_bad_measure_or_by(session):
    code = _areas(session, "district")[0].code
    with pytest.raises(InvalidInput) as e:
        rankings.ranking(session, code, "speed", "children")
    assert e.value.field == "measure"
    with pytest.raises(InvalidInput) as e:
        rankings.ranking(session, code, "received", "streets")
    assert e.value.field == "by"
    leaf = _areas(session, "microgrid")[0].code
    with pytest.raises(InvalidInput) as e:
        rankings.ranking(session, leaf, "received", "children")
    assert e.value.field == "by"


APP_SETTINGS = {"escalation_interval_s": 3600}  # the module's `client` (tests/conftest.py)


def test_the_route_answers_typed_and_within_the_callers_areas(client, session):
    subs = _areas(session, "subdistrict")
    params = {"measure": "on_time_rate", "since": SINCE.isoformat(), "until": UNTIL.isoformat()}
    own, other = subs[0].code, subs[1].code
    as_manager = {"X-Role": "manager", "X-Areas": own}
    r = client.get(f"/api/v1/areas/{own}/ranking", params=params, headers=as_manager)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["target"] == 0.9 and body["measure_zh"] == "按期结案率" and body["items"]
    assert set(body["items"][0]) == {"code", "staff_id", "name", "value", "numerator", "denominator", "meets_target"}
    r = client.get(f"/api/v1/areas/{other}/ranking", params=params, headers=as_manager)
    assert r.status_code == 404 and r.json()["field"] == "code"
    district = _areas(session, "district")[0].code
    assert client.get(f"/api/v1/areas/{district}/ranking", params=params, headers=as_manager).status_code == 404
    assert (
        client.get(
            f"/api/v1/areas/{own}/ranking", params=params, headers={"X-Role": "worker", "X-Areas": own}
        ).status_code
        == 403
    )
    # workers: a manager of one grid sees only the workers whose every area here is that grid
    grid = _areas(session, "grid", own)[0].code
    community = grid[:12]
    everyone = client.get(f"/api/v1/areas/{community}/ranking", params={**params, "by": "workers"}).json()
    mine = client.get(
        f"/api/v1/areas/{grid}/ranking",
        params={**params, "by": "workers"},
        headers={"X-Role": "manager", "X-Areas": grid},
    ).json()
    in_grid = set(
        session.scalars(
            sa.select(StaffArea.staff_id).where(
                StaffArea.area_code.startswith(grid), StaffArea.role.in_(rankings.WORKER_ROLES)
            )
        )
    )
    assert {i["staff_id"] for i in mine["items"]} <= in_grid
    assert len(everyone["items"]) > len(mine["items"]) > 0
    for query, field in (("measure=speed", "measure"), ("by=streets", "by"), ("limit=0", "limit")):
        r = client.get(f"/api/v1/areas/{own}/ranking?{query}")
        assert r.status_code == 422 and r.json()["field"] == field, (query, r.text)


# -- the case list as a spreadsheet --------------------------------------------------------------------------------


def test_the_case_list_export_holds_the_listed_cases_in_chinese(client, session):
    import csv
    import io

    import openpyxl

    own, other = (a.code for a in _areas(session, "subdistrict")[:2])
    manager = {"X-Role": "manager", "X-Areas": own}
    listed = client.get("/api/v1/cases", params={"area": own, "state": "open", "limit": 500}, headers=manager).json()
    r = client.get("/api/v1/exports/cases", params={"area": own, "state": "open"}, headers=manager)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"] and r.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert list(rows[0]) == [zh for _, zh, _ in case_export.COLUMNS]
    assert len(rows) == listed["total"] > 0
    assert {r["编号"] for r in rows} >= {i["number"] for i in listed["items"]}
    assert {r["状态"] for r in rows} <= set(cases.STATE_ZH.values())
    assert all(r["街道"] and not r["街道"].isdigit() for r in rows)  # names, not codes
    by_number = {i["number"]: i for i in listed["items"]}
    for row in rows:
        if row["编号"] in by_number and by_number[row["编号"]].get("overdue_by_s"):
            assert float(row["超期时长（小时）"]) == pytest.approx(
                by_number[row["编号"]]["overdue_by_s"] / 3600, abs=0.2
            )
    r = client.get(
        "/api/v1/exports/cases",
        params={"area": own, "state": "overdue", "format": "xlsx", "lang": "en"},
        headers=manager,
    )
    sheet = openpyxl.load_workbook(io.BytesIO(r.content)).active
    assert [c.value for c in sheet[1]] == [en for _, _, en in case_export.COLUMNS]
    overdue = client.get("/api/v1/cases", params={"area": own, "state": "overdue", "limit": 1}, headers=manager)
    assert sheet.max_row - 1 == overdue.json()["total"]
    r = client.get("/api/v1/exports/cases", params={"area": other}, headers=manager)
    assert r.status_code == 404 and r.json()["field"] == "code"
    # without an area: only the caller's cases
    mine = client.get("/api/v1/exports/cases", params={"state": "open"}, headers=manager)
    numbers = {r["编号"] for r in csv.DictReader(io.StringIO(mine.content.decode("utf-8-sig")))}
    assert numbers == {r["编号"] for r in rows}
    for query, field in (("format=pdf", "format"), ("limit=0", "limit"), ("limit=10001", "limit")):
        r = client.get(f"/api/v1/exports/cases?{query}")
        assert r.status_code == 422 and r.json()["field"] == field, (query, r.text)
