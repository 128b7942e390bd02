"""The dispatcher's daily loop on both databases (issue 14 §1): intake that uses exactly the locate answer, case
numbers in China time, the case item's fields (holder, deadline, time left / overdue by, last bounce, pending
request), list filters and sorts, the queues, relocating a dead end, urging with notifications, batch steps."""

from __future__ import annotations

import datetime as dt
import re

import pytest
import shapely
import sqlalchemy as sa
from fastapi.testclient import TestClient

from gridmap.access import accounts
from gridmap.cases import intake as cases
from gridmap.geo.index import metres_per_degree
from gridmap.store import engine as storage
from gridmap.store.tables import Account, Case, CaseEvent, Staff
from tests.helpers import inside

PASSWORD = "daily-work-password-2026"
NUMBER = re.compile(r"^[A-Z]{2}\d{8}\d{7,}$")


APP_SETTINGS = {"escalation_interval_s": 3600}  # the module's `client` (tests/conftest.py)


def _index(client):
    return client.app.state.registry.active()


def _as(role, **extra):
    return {"X-User": f"{role}-1", "X-Role": role, **extra}


def _new(client, x, y, category="E0101", **extra):
    r = client.post(
        "/api/v1/cases",
        json={"title": "测试事件", "lon": x, "lat": y, "category": category, **extra},
        headers=_as("dispatcher"),
    )
    assert r.status_code == 201, r.text
    return r.json()


def _act(client, case, action, role="dispatcher", status=200, headers=None, **params):
    r = client.post(
        f"/api/v1/cases/{case['id']}/actions/{action}",
        json={"version": case["version"], **params},
        headers={**_as(role), **(headers or {})},
    )
    assert r.status_code == status, r.text
    return r.json()


def _shared_line_point(index):
    """The midpoint of a segment two leaves of different grids share, which `GET /locate` flags near_boundary."""
    for i, a in enumerate(index.leaves):
        for j in index.tree.query(index.leaf_geoms[i], predicate="intersects"):
            b = index.leaves[j]
            if b.parent_code == a.parent_code:
                continue
            shared = index.leaf_geoms[i].intersection(index.leaf_geoms[j])
            lines = [g for g in getattr(shared, "geoms", [shared]) if g.geom_type == "LineString"]
            for line in lines:
                coords = list(line.coords)
                for p, q in zip(coords, coords[1:]):
                    x, y = (p[0] + q[0]) / 2, (p[1] + q[1]) / 2
                    if "near_boundary" in index.locate(x, y, near_m=10, nearest_m=100).flags:
                        return x, y, {a.code, b.code}
    raise AssertionError("the demo has no shared grid line")


def _just_outside(index, metres=9.0):
    """A point `metres` outside the district's edge (no leaf covers it; the nearest is that far)."""
    union = shapely.union_all(index.leaf_geoms)
    ring = max(getattr(union, "geoms", [union]), key=lambda g: g.area).exterior
    for k in range(200):
        p = ring.interpolate(k / 200, normalized=True)
        kx, ky = metres_per_degree(p.y)
        for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1), (0.7, 0.7), (-0.7, 0.7), (0.7, -0.7), (-0.7, -0.7)):
            x, y = p.x + dx * metres / kx, p.y + dy * metres / ky
            if index.covering(x, y):
                continue
            near = index.leaves_within(x, y, 100)
            if near and metres - 1 <= near[0][1] <= metres + 0.5:
                return x, y, near[0][0]
    raise AssertionError("no point found just outside the edge")


def _far_outside(index, metres=400.0):
    union = shapely.union_all(index.leaf_geoms)
    ring = max(getattr(union, "geoms", [union]), key=lambda g: g.area).exterior
    for k in range(200):
        p = ring.interpolate(k / 200, normalized=True)
        kx, ky = metres_per_degree(p.y)
        for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            x, y = p.x + dx * metres / kx, p.y + dy * metres / ky
            if not index.covering(x, y) and not index.leaves_within(x, y, 100) and index.leaves_within(x, y, 1000):
                return x, y
    raise AssertionError("no point found far outside the edge")


# -- 1. intake uses exactly the locate answer ---------------------------------------------------------------------


def test_a_point_on_a_shared_grid_line_is_stored_near_boundary_with_its_candidates(client):
    x, y, pair = _shared_line_point(_index(client))
    answer = client.get("/api/v1/locate", params={"lon": x, "lat": y}).json()
    case = _new(client, x, y)
    assert "near_boundary" in case["flags"] and case["flags"] == answer["flags"]
    assert case["grid_code"] == answer["grid"]["code"]
    other = {c["code"] for c in case["candidates"]}
    assert other & pair and all(c["distance_m"] <= 10 and c["name"] for c in case["candidates"])
    stored = client.get(f"/api/v1/cases/{case['id']}", headers=_as("dispatcher")).json()
    assert stored["flags"] == case["flags"] and stored["candidates"] == case["candidates"]
    located = next(h for h in stored["history"] if h["action"] == "located")
    assert located["detail"]["flags"] == case["flags"] and located["action_zh"] == "定位"
    listed = client.get("/api/v1/cases", params={"limit": 5}, headers=_as("dispatcher")).json()["items"]
    assert next(c for c in listed if c["id"] == case["id"])["flags"] == case["flags"]


def test_a_point_9_m_outside_the_edge_is_assigned_to_the_nearest_grid_and_dispatched(client):
    x, y, leaf = _just_outside(_index(client))
    answer = client.get("/api/v1/locate", params={"lon": x, "lat": y}).json()
    assert "assigned_to_nearest" in answer["flags"]
    case = _new(client, x, y)
    assert case["flags"] == answer["flags"]
    assert {"outside_all_grids", "assigned_to_nearest"} <= set(case["flags"])
    assert case["state"] == "dispatched" and case["grid_code"] == answer["grid"]["code"]
    assert leaf in (case["microgrid_code"], case["grid_code"])
    assert case["holder"]["kind"] == "worker" and case["holder"]["name"]


# -- 2. case numbers ------------------------------------------------------------------------------------------------


def test_case_numbers_use_the_china_date_and_the_demos_format(client):
    index = _index(client)
    x, y = inside(index, 3)
    with client.app.state.sessionmaker() as session:
        case = cases.create_case(
            session,
            index,
            cases.NewCase("夜间事件", x, y, source="hotline"),
            now=dt.datetime(2026, 12, 5, 23, 30, tzinfo=dt.UTC),
        )
        assert case.number == f"RX20261206{case.id:07d}" and NUMBER.match(case.number)
        demo = session.execute(
            sa.select(Case.number, Case.source, Case.reported_at, Case.id)
            .where(Case.id < case.id)
            .order_by(Case.id)
            .limit(50)
        ).all()
        session.rollback()
    assert demo and all(NUMBER.match(number) for number, *_ in demo)
    for number, source, reported_at, case_id in demo:  # the demo's: channel, China date reported, row id
        assert number == cases.case_number(source, cases.utc(reported_at), case_id)
    assert cases.case_number("api", dt.datetime(2026, 12, 5, 15, 59, tzinfo=dt.UTC), 7) == "JK202612050000007"


# -- 3. the case item ------------------------------------------------------------------------------------------------


def test_the_holders_phone_is_callable_for_the_dispatcher_and_masked_for_a_viewer(client):
    index = _index(client)
    x, y = inside(index, 4)
    case = _new(client, x, y)
    with client.app.state.sessionmaker() as s:
        phone = s.get(Staff, case["assignee_id"]).phone
    assert phone and len(phone) >= 8
    area = case["subdistrict_code"]
    full = client.get(f"/api/v1/cases/{case['id']}", headers=_as("dispatcher", **{"X-Areas": area})).json()
    assert full["holder"] == {
        "kind": "worker",
        "id": case["assignee_id"],
        "code": None,
        "name": full["holder"]["name"],
        "phone": phone,
    }
    assert full["routing"]["worker"]["phone"] == phone
    masked = client.get(f"/api/v1/cases/{case['id']}", headers=_as("viewer", **{"X-Areas": area})).json()
    assert masked["holder"]["phone"] != phone and "****" in masked["holder"]["phone"]
    assert masked["routing"]["worker"]["phone"] != phone
    own = client.get(f"/api/v1/cases/{case['id']}", headers=_as("worker", **{"X-Staff-Id": str(case["assignee_id"])}))
    assert own.json()["holder"]["phone"] == phone
    assert full["state_zh"] == "已派遣" and full["source_zh"] == "系统接口" and full["category_name"]
    assert full["attachments_count"] == 0 and full["last_bounce"] is None and full["pending_request"] is None
    assert [h["action_zh"] for h in full["history"]] == ["上报", "定位", "立案", "派遣"]


def test_deadline_time_left_overdue_by_last_bounce_and_pending_request(client):
    index = _index(client)
    x, y = inside(index, 6)
    case = _new(client, x, y)
    worker = {"X-Staff-Id": str(case["assignee_id"])}
    bounced = _act(client, case, "bounce", "worker", headers=worker, reason="不属本网格")
    assert bounced["state"] == "filed" and bounced["last_bounce"]["reason"] == "不属本网格"
    assert bounced["last_bounce"]["by"] and bounced["last_bounce"]["evidence"]["grid_code"] == case["grid_code"]
    again = _act(client, bounced, "dispatch")
    accepted = _act(client, again, "accept", "worker", headers={"X-Staff-Id": str(again["assignee_id"])})
    assert accepted["deadline"] == accepted["due_at"] and accepted["time_left_s"] > 0
    assert accepted["overdue_by_s"] is None
    asked = _act(
        client,
        accepted,
        "request_extension",
        "worker",
        headers={"X-Staff-Id": str(accepted["assignee_id"])},
        reason="材料未到",
        amount=2,
        unit="work_days",
    )
    assert asked["pending_request"]["kind"] == "extension" and asked["pending_request"]["amount"] == 2
    with client.app.state.sessionmaker() as s:
        s.execute(
            sa.update(Case).where(Case.id == case["id"]).values(due_at=dt.datetime.now(dt.UTC) - dt.timedelta(hours=5))
        )
        s.commit()
    late = client.get(f"/api/v1/cases/{case['id']}", headers=_as("dispatcher")).json()
    assert late["time_left_s"] is None and 5 * 3600 - 60 <= late["overdue_by_s"] <= 5 * 3600 + 600


# -- 4. filters, sorts, queues --------------------------------------------------------------------------------------


def _count(client, condition):
    with client.app.state.sessionmaker() as s:
        return s.scalar(sa.select(sa.func.count()).select_from(Case).where(condition))


def test_list_filters_and_sorts(client):
    get = lambda **p: client.get("/api/v1/cases", params=p, headers=_as("dispatcher"))  # noqa: E731
    overdue = get(queue="overdue", sort="overdue_by", limit=500).json()
    now = dt.datetime.now(dt.UTC)
    assert overdue["total"] == _count(client, sa.and_(Case.state.not_in(cases.NOT_RUNNING), Case.due_at < now))
    lateness = [c["overdue_by_s"] for c in overdue["items"]]
    assert all(v is not None for v in lateness) and lateness == sorted(lateness, reverse=True)
    hotline = get(source="hotline,miniprogram", limit=50).json()
    assert hotline["total"] == _count(client, Case.source.in_(("hotline", "miniprogram")))
    assert {c["source"] for c in hotline["items"]} <= {"hotline", "miniprogram"}
    category = get(category="E0101", order="oldest", limit=50).json()
    assert category["items"] and {c["category"] for c in category["items"]} == {"E0101"}
    times = [c["reported_at"] for c in category["items"]]
    assert times == sorted(times)
    assert [c["id"] for c in get(order="asc", category="E0101", limit=50).json()["items"]] == [
        c["id"] for c in category["items"]
    ]
    old = get(min_age_h=24 * 30, limit=10).json()
    assert old["total"] == _count(client, Case.reported_at <= now - dt.timedelta(days=30))
    young = get(max_age_h=24 * 30, limit=10).json()
    assert old["total"] + young["total"] >= _count(client, sa.true())
    deadline = get(sort="deadline", order="asc", state="accepted", limit=50).json()["items"]
    dues = [c["deadline"] for c in deadline if c["deadline"]]
    assert dues == sorted(dues)
    updated = get(sort="updated_at", limit=3).json()["items"]
    assert updated[0]["id"] == max(c["id"] for c in get(limit=100).json()["items"]) or updated
    assert get(sort="colour").status_code == 422 and get(source="fax").json()["field"] == "source"
    assert get(queue="nowhere").json()["field"] == "queue" and get(min_age_h=-1).status_code == 422


def test_holder_filter_me_a_staff_id_and_a_department(client):
    with client.app.state.sessionmaker() as s:
        staff, n = s.execute(
            sa.select(Case.assignee_id, sa.func.count())
            .where(Case.assignee_id.is_not(None))
            .group_by(Case.assignee_id)
            .order_by(sa.func.count().desc())
        ).first()
        dept_id, code, m = s.execute(
            sa.text(
                "SELECT d.id, d.code, COUNT(*) FROM case_file c JOIN department d ON d.id = c.department_id "
                "GROUP BY d.id, d.code ORDER BY COUNT(*) DESC"
            )
        ).first()
    mine = client.get(
        "/api/v1/cases", params={"holder": "me"}, headers=_as("worker", **{"X-Staff-Id": str(staff)})
    ).json()
    assert mine["total"] == n and {c["assignee_id"] for c in mine["items"]} == {staff}
    assert client.get("/api/v1/cases", params={"holder": str(staff)}, headers=_as("dispatcher")).json()["total"] == n
    by_dept = client.get("/api/v1/cases", params={"holder": code}, headers=_as("dispatcher")).json()
    assert by_dept["total"] == m and {c["holder"]["kind"] for c in by_dept["items"]} == {"department"}
    assert client.get("/api/v1/cases", params={"holder": "me"}, headers=_as("dispatcher")).json()["field"] == "holder"


def test_the_overdue_list_is_the_overdue_queue(client):
    """`GET /api/v1/cases?state=overdue` names the running states as the 超期 queue does (migration 0020's index
    serves both on PostgreSQL): the same cases as "not finished, not suspended, due before now", for the district's
    dispatcher and within a sub-district."""
    now = dt.datetime.now(dt.UTC)
    reference = _count(client, sa.and_(Case.state.not_in(cases.NOT_RUNNING), Case.due_at < now))
    sub = client.get("/api/v1/areas", params={"level": "subdistrict"}).json()["features"][0]["properties"]["code"]
    for params in ({}, {"area": sub}):
        listed = client.get(
            "/api/v1/cases", params={"state": "overdue", "limit": 1, **params}, headers=_as("dispatcher")
        )
        queued = client.get("/api/v1/queues", params=params, headers=_as("dispatcher")).json()
        overdue = {q["name"]: q["count"] for q in queued["items"]}["overdue"]
        assert abs(listed.json()["total"] - overdue) <= 1  # (a deadline may pass between the two)
        if not params:
            assert overdue > 0 and abs(overdue - reference) <= 1


def test_queues_count_by_sql_and_page_every_case(client):
    counts = client.get("/api/v1/queues", headers=_as("dispatcher")).json()
    names = [q["name"] for q in counts["items"]]
    assert names == ["pending", "dispatched", "verify", "bounced", "approvals", "overdue"]
    assert {q["name"]: q["zh"] for q in counts["items"]}["verify"] == "待核查"
    now = dt.datetime.now(dt.UTC)
    expected = {
        "pending": sa.or_(Case.state == "reported", sa.and_(Case.state == "filed", Case.bounce_count == 0)),
        "verify": Case.state == "handled",
        "dispatched": Case.state.in_(("dispatched", "accepted", "rework")),
        "bounced": sa.and_(Case.state == "filed", Case.bounce_count > 0),
        "overdue": sa.and_(Case.state.not_in(cases.NOT_RUNNING), Case.due_at < now),
    }
    for q in counts["items"]:
        page = client.get(f"/api/v1/queues/{q['name']}", params={"limit": 7}, headers=_as("dispatcher")).json()
        assert page["total"] == q["count"] and len(page["items"]) == min(7, q["count"])
        if q["name"] in expected:
            assert abs(q["count"] - _count(client, expected[q["name"]])) <= 1  # (a deadline may pass meanwhile)
    overdue = {q["name"]: q["count"] for q in counts["items"]}["overdue"]
    seen = set()
    for offset in range(0, overdue, 100):  # every overdue case reachable: no cut at 200
        page = client.get(
            "/api/v1/queues/overdue", params={"limit": 100, "offset": offset}, headers=_as("dispatcher")
        ).json()
        seen |= {c["id"] for c in page["items"]}
    assert len(seen) >= overdue - 1
    area = client.get("/api/v1/queues/pending", params={"limit": 1}, headers=_as("dispatcher")).json()
    sub = client.get("/api/v1/areas", params={"level": "subdistrict"}).json()["features"][0]["properties"]["code"]
    scoped = client.get("/api/v1/queues", params={"area": sub}, headers=_as("dispatcher")).json()
    assert sum(q["count"] for q in scoped["items"]) <= sum(q["count"] for q in counts["items"])
    other = client.get("/api/v1/queues", headers=_as("dispatcher", **{"X-Areas": sub})).json()
    assert other == {**scoped, "area": None}
    assert client.get("/api/v1/queues/nowhere", headers=_as("dispatcher")).status_code == 404
    assert area["total"] >= 0


def test_the_approvals_queue_lists_pending_requests(client):
    approvals = client.get("/api/v1/queues/approvals", params={"limit": 100}, headers=_as("dispatcher")).json()
    assert approvals["total"] >= 1
    assert all(c["pending_request"] and c["state"] in ("accepted", "rework") for c in approvals["items"])


# -- 5. relocate, urge, supervise, notifications ---------------------------------------------------------------------


def test_a_dead_end_is_relocated_to_a_candidate_grid_and_then_filed(client):
    x, y = _far_outside(_index(client))
    case = _new(client, x, y)
    assert case["state"] == "reported" and "outside_all_grids" in case["flags"] and not case["grid_code"]
    assert case["candidates"] and case["candidates"][0]["distance_m"] > 100
    refused = _act(client, case, "file", status=422)
    assert refused["field"] == "location"
    with client.app.state.sessionmaker() as s:  # a case stored before candidates were: found when it is read
        s.execute(sa.update(Case).where(Case.id == case["id"]).values(locate_candidates=sa.null()))
        s.commit()
    read = client.get(f"/api/v1/cases/{case['id']}", headers=_as("dispatcher")).json()
    assert read["candidates"] == case["candidates"]
    _act(client, case, "relocate", status=422)  # a reason is needed
    bad = _act(client, case, "relocate", status=422, grid="99999", reason="核实位置")
    assert bad["field"] == "grid"
    pick = case["candidates"][0]["code"]
    moved = _act(client, case, "relocate", grid=pick, reason="电话核实，在相邻网格")
    assert pick in (moved["grid_code"], moved["microgrid_code"]) and "grid_chosen" in moved["flags"]
    assert moved["state"] == "reported"
    filed = _act(client, moved, "file")
    dispatched = _act(client, filed, "dispatch")
    assert dispatched["state"] == "dispatched" and dispatched["holder"]["kind"] == "worker"
    history = client.get(f"/api/v1/cases/{case['id']}", headers=_as("dispatcher")).json()["history"]
    step = next(h for h in history if h["action"] == "relocate")
    assert step["action_zh"] == "更正位置" and step["detail"]["reason"] == "电话核实，在相邻网格"
    assert step["detail"]["from"]["grid_code"] is None and step["detail"]["to"]["grid_code"] == moved["grid_code"]


def test_relocating_a_dispatched_case_by_point_reroutes_it(client):
    index = _index(client)
    grids = {}
    for i, leaf in enumerate(index.leaves):
        grids.setdefault(leaf.parent_code, i)
    first, second = list(grids.values())[:2]
    x, y = inside(index, first)
    case = _new(client, x, y)
    nx, ny = inside(index, second)
    moved = _act(client, case, "relocate", lon=nx, lat=ny, reason="定位偏差，已核实")
    assert moved["grid_code"] != case["grid_code"] and moved["state"] == "dispatched"
    assert (moved["lon"], moved["lat"]) == pytest.approx((nx, ny)) and "relocated" in moved["flags"]
    with client.app.state.sessionmaker() as s:
        from gridmap.store.tables import StaffArea

        expected = s.scalar(
            sa.select(StaffArea.staff_id)
            .where(StaffArea.area_code == moved["grid_code"], StaffArea.role == "fulltime_worker")
            .order_by(StaffArea.id)
            .limit(1)
        )
    assert moved["assignee_id"] == expected
    far = _act(client, moved, "relocate", status=422, lon=nx + 1.0, lat=ny, reason="x")
    assert far["field"] in ("lon", "lat")


def _account(client, username, role, **spec):
    with storage.session_scope(client.app.state.sessionmaker) as s:
        if s.scalar(sa.select(Account.id).where(Account.username == username)) is None:
            accounts.add_account(s, accounts.AccountSpec(username, role, **spec), PASSWORD)
    r = _plain(client).post("/api/v1/auth/token", data={"username": username, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def _plain(client):
    """A client of the same app without the gateway's headers: requests signed in with a real account's token."""
    return TestClient(client.app)


def test_urge_and_supervise_notify_the_holder_who_reads_only_their_own(client):
    index = _index(client)
    x, y = inside(index, 2)
    case = _new(client, x, y)
    worker = _account(
        client,
        f"daily-worker-{client.app.state.db_key[-6:]}",
        "worker",
        staff_id=case["assignee_id"],
        areas=(case["grid_code"],),
    )
    other = _account(
        client, f"daily-viewer-{client.app.state.db_key[-6:]}", "viewer", areas=(case["subdistrict_code"],)
    )
    before = _plain(client).get("/api/v1/notifications", params={"unread": "true"}, headers=worker).json()
    urged = _act(client, case, "urge", note="请今天处理")
    supervised = _act(client, urged, "supervise", "leader", reason="群众多次来电")
    assert supervised["version"] == case["version"] + 2
    mine = _plain(client).get("/api/v1/notifications", params={"unread": "true"}, headers=worker).json()
    assert mine["unread"] == before["unread"] + 2
    kinds = [n["kind"] for n in mine["items"] if n["case_id"] == case["id"]]
    assert kinds == ["supervise", "urge"]  # (the account was made after the case was given to it)
    urge = next(n for n in mine["items"] if n["kind"] == "urge" and n["case_id"] == case["id"])
    assert urge["case_number"] == case["number"] and "请今天处理" in urge["text"] and urge["read_at"] is None
    assert _plain(client).post(f"/api/v1/notifications/{urge['id']}/read", headers=other).status_code == 404
    assert _plain(client).get("/api/v1/notifications", headers=other).json()["total"] == 0
    read = _plain(client).post(f"/api/v1/notifications/{urge['id']}/read", headers=worker)
    assert read.status_code == 200 and read.json()["read_at"]
    after = _plain(client).get("/api/v1/notifications", params={"unread": "true"}, headers=worker).json()
    assert urge["id"] not in {n["id"] for n in after["items"]} and after["unread"] == mine["unread"] - 1
    history = client.get(f"/api/v1/cases/{case['id']}", headers=_as("dispatcher")).json()["history"]
    assert [h["action_zh"] for h in history[-2:]] == ["催办", "督办"]
    refused = _act(client, supervised, "urge", "worker", status=403, headers={"X-Staff-Id": str(case["assignee_id"])})
    assert refused["field"] == "role"


def test_a_reassigned_worker_is_notified(client):
    index = _index(client)
    x, y = inside(index, 7)
    case = _new(client, x, y)
    with client.app.state.sessionmaker() as s:
        other = s.scalar(
            sa.select(Staff.id)
            .where(Staff.id != case["assignee_id"])
            .join(__import__("gridmap.store.tables", fromlist=["StaffArea"]).StaffArea)
            .limit(1)
        )
    headers = _account(
        client, f"daily-other-{client.app.state.db_key[-6:]}", "worker", staff_id=other, areas=(case["grid_code"],)
    )
    before = _plain(client).get("/api/v1/notifications", headers=headers).json()["total"]
    _act(client, case, "reassign", assignee_id=other, reason="原网格员请假")
    items = _plain(client).get("/api/v1/notifications", headers=headers).json()
    assert items["total"] == before + 1 and items["items"][0]["kind"] == "assigned"
    assert items["items"][0]["case_id"] == case["id"]


# -- 6. batch ---------------------------------------------------------------------------------------------------------


def test_batch_dispatch_each_case_independent_and_committed(client):
    index = _index(client)
    made = [_new(client, *inside(index, k), category=None) for k in (1, 8, 9)]
    assert {c["state"] for c in made} == {"reported"}
    items = [{"id": c["id"], "version": c["version"]} for c in made]
    filed = client.post(
        "/api/v1/cases/batch/file", json={"items": items, "category": "E0101"}, headers=_as("dispatcher")
    ).json()
    assert filed["ok"] == 3 and {r["state"] for r in filed["results"]} == {"filed"}
    items = [{"id": r["id"], "version": r["version"]} for r in filed["results"]]
    items[1]["version"] -= 1  # one stale
    items.append({"id": 2_000_000_000, "version": 1})  # one nobody has
    out = client.post("/api/v1/cases/batch/dispatch", json={"items": items}, headers=_as("dispatcher")).json()
    assert [r["ok"] for r in out["results"]] == [True, False, True, False] and out["ok"] == 2
    assert out["results"][1]["error"]["code"] == "stale_version" and out["results"][1]["error"]["field"] == "version"
    assert out["results"][3]["error"]["code"] == "not_found"
    with client.app.state.sessionmaker() as s:  # committed: seen from another session
        states = dict(s.execute(sa.select(Case.id, Case.state).where(Case.id.in_([c["id"] for c in made]))).all())
        assert [states[c["id"]] for c in made] == ["dispatched", "filed", "dispatched"]
        assert (
            s.scalar(
                sa.select(sa.func.count())
                .select_from(CaseEvent)
                .where(CaseEvent.case_id == made[1]["id"], CaseEvent.action == "dispatch")
            )
            == 0
        )
    too_many = client.post(
        "/api/v1/cases/batch/dispatch",
        json={"items": [{"id": i, "version": 1} for i in range(1, 202)]},
        headers=_as("dispatcher"),
    )
    assert too_many.status_code == 422 and "items" in too_many.text
    assert (
        client.post("/api/v1/cases/batch/fly", json={"items": items[:1]}, headers=_as("dispatcher")).status_code == 404
    )
    refused = client.post("/api/v1/cases/batch/dispatch", json={"items": items[:1]}, headers=_as("viewer"))
    assert refused.status_code == 403


# -- 7. address matches ------------------------------------------------------------------------------------------------


def test_address_matches_answer_the_place_its_confidence_and_alternatives_to_confirm(client):
    from gridmap.locating.gazetteer import gazetteer_for

    with client.app.state.sessionmaker() as s:
        gazetteer = gazetteer_for(s)
    building = next(e for e in gazetteer.entries if e.kind == "building")
    compound = next(e for e in gazetteer.entries if e.kind == "compound" and e.name.endswith("小区"))
    here = {"near_lon": building.place["lon"], "near_lat": building.place["lat"]}
    get = lambda **p: client.get("/api/v1/address-matches", params=p, headers=_as("dispatcher"))  # noqa: E731
    sure = get(q=building.name, **here).json()
    assert sure["matched_place"]["name"] == building.name and sure["confidence"] >= 0.9
    assert sure["matched_place"]["grid"]["code"] and sure["matched_place"]["distance_m"] < 1
    assert sure["needs_confirmation"] is False and sure["confirm_because"] == []
    far = get(q=building.name, near_lon=here["near_lon"] + 0.25, near_lat=here["near_lat"]).json()
    assert far["needs_confirmation"] and "far_from_point" in far["confirm_because"]
    assert far["matched_place"]["distance_m"] > 20_000
    # a name like a known compound's but not it (as 福德佳园 for 福德小区): nothing matched, the likes offered
    unlike = compound.name[:-2] + "佳园5幢"
    answer = get(q=unlike, **here).json()
    assert answer["needs_confirmation"] and answer["alternatives"]
    assert answer["matched_place"] is None or answer["confidence"] < 0.9
    assert compound.name in {a["name"] for a in answer["alternatives"]}
    assert all(a["lon"] is not None and a["grid"] and a["distance_m"] is not None for a in answer["alternatives"])
    assert get(q=building.name, near_lon=1.0).json()["field"] == "near_lat"
    assert get(q="").status_code == 422 and get(q="x" * 301).status_code == 422
    assert client.get("/api/v1/address-matches", params={"q": building.name}, headers=_as("viewer")).status_code == 200


def test_a_dead_end_belongs_to_the_areas_its_candidate_grids_share(client):
    """A point in no grid (400 m outside the edge) is stored with the district — and the sub-district or community
    when all the grids near it lie in one — so the dispatchers who must correct it see it in their queue; another
    sub-district's dispatcher does not."""
    index = _index(client)
    x, y = _far_outside(index)
    case = _new(client, x, y)
    assert not case["grid_code"] and not case["microgrid_code"] and case["candidates"]
    chains = [index.chain_of(c["code"]) for c in case["candidates"]]
    shared = set.intersection(
        *({a.code for a in chain if a.level in ("district", "subdistrict", "community")} for chain in chains)
    )
    stored = {case[k] for k in ("district_code", "subdistrict_code", "community_code") if case[k]}
    assert stored == shared and case["district_code"]
    district = {"X-Areas": case["district_code"]}
    assert client.get(f"/api/v1/cases/{case['id']}", headers=_as("dispatcher", **district)).status_code == 200
    pending = client.get("/api/v1/queues/pending", params={"limit": 500}, headers=_as("dispatcher", **district))
    assert case["id"] in {c["id"] for c in pending.json()["items"]}
    others = [r.code for r in index.by_code.values() if r.level == "subdistrict" and r.code not in shared]
    assert others
    far = _as("dispatcher", **{"X-Areas": others[0]})
    assert client.get(f"/api/v1/cases/{case['id']}", headers=far).status_code == 404


def test_a_filed_case_waits_in_pending_until_it_is_dispatched(client):
    """立案 without 派遣 leaves the case in 待处理 (it was in no queue at all); dispatched, it leaves."""
    index = _index(client)
    x, y = inside(index, 0)
    case = _new(client, x, y, category=None)
    filed = _act(client, case, "file", category="E0101")
    assert filed["state"] == "filed"

    def pending():
        page = client.get(
            "/api/v1/queues/pending",
            params={"limit": 500, "sort": "updated_at", "order": "desc"},
            headers=_as("dispatcher"),
        ).json()
        return {c["id"] for c in page["items"]}

    assert case["id"] in pending()
    _act(client, filed, "dispatch")
    assert case["id"] not in pending()
