"""Admins edit the catalogue and the working calendar through the API (both databases); everyone else may only
read them; edits take effect for new cases and new deadlines at once."""

from __future__ import annotations

import datetime as dt

import pytest

from gridmap.calendar import CST, WorkCalendar
from tests.helpers import inside

ADMIN = {"X-User": "a1", "X-Role": "admin"}
NEW = {
    "code": "E0799",
    "kind": "event",
    "major_class": "扩展事件",
    "name": "共享单车乱停放",
    "time_limit": 2,
    "time_unit": "work_days",
    "urgency": "normal",
    "filing_condition": "人行道单车堆放≥5辆",
    "department": None,
}


APP_SETTINGS = {"escalation_interval_s": 3600}  # the module's `client` (tests/conftest.py)


def test_an_admin_adds_changes_and_retires_a_category(client):
    dept = client.get("/api/v1/categories").json()[0]["department"] or "CG"
    r = client.post("/api/v1/categories", json={**NEW, "department": dept}, headers=ADMIN)
    assert r.status_code == 201, r.text
    assert r.json()["department"] == dept and r.headers["location"].endswith("/E0799")
    assert "E0799" in [c["code"] for c in client.get("/api/v1/categories").json()]
    assert "E0799" in [s["service_code"] for s in client.get("/open311/v2/services.json").json()]
    x, y = inside(client)
    case = client.post("/api/v1/cases", json={"title": "单车堆放", "lon": x, "lat": y, "category": "E0799"}).json()
    assert case["state"] == "dispatched"
    r = client.patch("/api/v1/categories/E0799", json={"time_limit": 4, "urgency": "urgent"}, headers=ADMIN)
    assert r.status_code == 200 and (r.json()["time_limit"], r.json()["urgency"]) == (4, "urgent")
    # retired: gone from the lists and refused for new cases; the case filed under it keeps it
    assert client.patch("/api/v1/categories/E0799", json={"active": False}, headers=ADMIN).json()["active"] is False
    assert "E0799" not in [c["code"] for c in client.get("/api/v1/categories").json()]
    retired = [c for c in client.get("/api/v1/categories?include_retired=true").json() if c["code"] == "E0799"]
    assert retired and retired[0]["active"] is False
    r = client.post("/api/v1/cases", json={"title": "单车", "lon": x, "lat": y, "category": "E0799"})
    assert r.status_code == 422 and r.json()["field"] == "category" and "retired" in r.json()["detail"]
    assert "E0799" not in [s["service_code"] for s in client.get("/open311/v2/services.json").json()]
    assert client.get(f"/api/v1/cases/{case['id']}").json()["category"] == "E0799"


@pytest.mark.parametrize(
    ("method", "path", "body", "headers", "status", "field"),
    [
        ("post", "/api/v1/categories", NEW, {"X-User": "d", "X-Role": "dispatcher"}, 403, "role"),
        ("post", "/api/v1/categories", NEW, {"X-User": ""}, 422, "X-User"),
        ("post", "/api/v1/categories", {**NEW, "code": "C0799"}, ADMIN, 422, "code"),
        ("post", "/api/v1/categories", {**NEW, "code": "E0101"}, ADMIN, 409, "code"),
        ("post", "/api/v1/categories", {**NEW, "code": "E0798", "kind": "incident"}, ADMIN, 422, "kind"),
        ("post", "/api/v1/categories", {**NEW, "code": "E0798", "time_unit": "weeks"}, ADMIN, 422, "time_unit"),
        ("post", "/api/v1/categories", {**NEW, "code": "E0798", "time_limit": 0}, ADMIN, 422, "time_limit"),
        ("post", "/api/v1/categories", {**NEW, "code": "E0798", "time_limit": 9999}, ADMIN, 422, "time_limit"),
        ("post", "/api/v1/categories", {**NEW, "code": "E0798", "time_limit": "2"}, ADMIN, 422, "time_limit"),
        ("post", "/api/v1/categories", {**NEW, "code": "E0798", "department": "NOPE"}, ADMIN, 422, "department"),
        (
            "post",
            "/api/v1/categories",
            {k: v for k, v in NEW.items() if k != "name"} | {"code": "E0798"},
            ADMIN,
            422,
            "name",
        ),
        ("patch", "/api/v1/categories/E0101", {"code": "E9999"}, ADMIN, 422, "code"),
        ("patch", "/api/v1/categories/E0101", {"urgency": "whenever"}, ADMIN, 422, "urgency"),
        ("patch", "/api/v1/categories/E0101", {"active": "no"}, ADMIN, 422, "active"),
        ("patch", "/api/v1/categories/X0000", {"urgency": "urgent"}, ADMIN, 404, "code"),
        ("put", "/api/v1/calendar/2030-13-01", {"kind": "holiday", "name": "x"}, ADMIN, 422, "day"),
        ("put", "/api/v1/calendar/2030-01-07", {"kind": "workday", "name": "调休"}, ADMIN, 422, "kind"),
        ("put", "/api/v1/calendar/2030-01-05", {"kind": "day off", "name": "x"}, ADMIN, 422, "kind"),
        ("put", "/api/v1/calendar/2030-01-01", {"kind": "holiday", "name": ""}, ADMIN, 422, "name"),
        (
            "put",
            "/api/v1/calendar/2030-01-01",
            {"kind": "holiday", "name": "元旦"},
            {"X-User": "w", "X-Role": "worker"},
            403,
            "role",
        ),
        ("delete", "/api/v1/calendar/2030-06-03", None, ADMIN, 404, "day"),
    ],
)
def test_bad_edits_are_refused_and_change_nothing(client, method, path, body, headers, status, field):
    before = (
        client.get("/api/v1/categories?include_retired=true").json(),
        client.get("/api/v1/calendar?year=2030").json(),
    )
    kwargs = {"headers": headers} | ({"json": body} if body is not None else {})
    r = getattr(client, method)(path, **kwargs)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json" and r.json()["field"] == field
    assert (
        client.get("/api/v1/categories?include_retired=true").json(),
        client.get("/api/v1/calendar?year=2030").json(),
    ) == before


def test_the_calendar_of_a_year_and_a_new_notice(client):
    year = client.get("/api/v1/calendar?year=2026").json()
    assert year["has_notice"] and len([d for d in year["days"] if d["kind"] == "holiday"]) == 33
    seeded = WorkCalendar.seeded()  # counted day by day by the calendar arithmetic itself
    assert (
        year["working_days"]
        == sum(seeded.is_working_day(dt.date(2026, 1, 1) + dt.timedelta(days=i)) for i in range(365))
        == 248
    )
    empty = client.get("/api/v1/calendar?year=2030").json()
    assert not empty["has_notice"] and empty["days"] == [] and empty["working_days"] == 261
    assert client.get("/api/v1/calendar?year=1999").status_code == 422
    # an admin enters part of the 2030 notice: New Year's Day, and a make-up Saturday
    assert (
        client.put("/api/v1/calendar/2030-01-01", json={"kind": "holiday", "name": "元旦"}, headers=ADMIN).status_code
        == 200
    )
    assert (
        client.put(
            "/api/v1/calendar/2030-01-05", json={"kind": "workday", "name": "元旦调休"}, headers=ADMIN
        ).status_code
        == 200
    )
    year = client.get("/api/v1/calendar?year=2030").json()
    assert year["has_notice"] and year["working_days"] == 261 - 1 + 1
    assert client.delete("/api/v1/calendar/2030-01-05", headers=ADMIN).status_code == 204
    assert client.get("/api/v1/calendar?year=2030").json()["working_days"] == 260


def test_a_new_holiday_moves_the_next_deadline(client):
    today = dt.datetime.now(CST).date()
    before = client.app.state.calendar()
    day = today + dt.timedelta(days=1)
    while not before.is_working_day(day):
        day += dt.timedelta(days=1)
    r = client.put(f"/api/v1/calendar/{day}", json={"kind": "holiday", "name": "临时休假"}, headers=ADMIN)
    assert r.status_code == 200
    after = client.app.state.calendar()
    assert not after.is_working_day(day)  # the cached calendar was dropped
    x, y = inside(client)
    case = client.post("/api/v1/cases", json={"title": "暴露垃圾", "lon": x, "lat": y, "category": "E0104"}).json()
    worker = case["assignee_id"]
    r = client.post(
        f"/api/v1/cases/{case['id']}/actions/accept",
        json={"version": case["version"]},
        headers={"X-User": "w", "X-Role": "worker", "X-Staff-Id": str(worker)},
    )
    assert r.status_code == 200, r.text
    accepted = dt.datetime.fromisoformat(r.json()["accepted_at"].replace("Z", "+00:00"))
    due = dt.datetime.fromisoformat(r.json()["due_at"].replace("Z", "+00:00"))
    limit = next(c for c in client.get("/api/v1/categories").json() if c["code"] == "E0104")
    assert due == after.add(accepted, limit["time_limit"], limit["time_unit"])
    # two working days always run through the next working day, which is now a holiday: the deadline moves
    assert due > before.add(accepted, limit["time_limit"], limit["time_unit"])
    assert due.astimezone(CST).date() != day


def test_the_seeded_catalogue_has_two_trees_and_complete_minor_classes(client):
    categories = client.get("/api/v1/categories").json()
    majors = {kind: {c["major_class"] for c in categories if c["kind"] == kind} for kind in ("event", "component")}
    assert majors["event"] == {"市容环境", "宣传广告", "施工管理", "街面秩序", "突发事件", "扩展事件"}
    assert majors["component"] == {"公用设施", "道路交通", "市容环境", "园林绿化", "房屋土地", "其它设施", "扩展部件"}
    assert len(categories) >= 60
    units = {c["time_unit"] for c in categories}
    assert units == {"work_hours", "work_days", "calendar_days"}
    for c in categories:
        assert c["filing_condition"] and c["time_limit"] >= 1 and c["urgency"] in ("normal", "urgent", "critical")
    assert all(c["department"] for c in categories if c["kind"] == "component")  # owner first needs an owner
