"""Patrol reports, duplicate suggestions and merging, through the HTTP API on both databases."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
import sqlalchemy as sa

from gridmap.cases import duplicates
from gridmap.geo.index import metres_per_degree
from gridmap.store.tables import Case, StaffArea
from tests.helpers import inside

APP_SETTINGS = {"escalation_interval_s": 3600}  # the module's `client` (tests/conftest.py)


def _spot(client, k):
    """A point inside leaf k, its grid code and that grid's full-time worker."""
    index = client.app.state.registry.current
    x, y = inside(index, k)
    grid = index.locate(x, y).at_level("grid").code
    with client.app.state.sessionmaker() as s:
        worker = s.scalar(
            sa.select(StaffArea.staff_id)
            .where(StaffArea.area_code == grid, StaffArea.role == "fulltime_worker")
            .order_by(StaffArea.id)
            .limit(1)
        )
    return x, y, grid, worker


def _other_grid_leaf(client, grid):
    index = client.app.state.registry.current
    return next(k for k in range(len(index.leaves)) if index.chain_of(index.leaves[k].code)[3].code != grid)


def _patrol(client, worker, x, y, status=201, user="w1", key=None, **extra):
    headers = {"X-User": user, "X-Role": "worker", "X-Staff-Id": str(worker)}
    if key:
        headers["Idempotency-Key"] = key
    body = {"title": "巡查发现暴露垃圾", "lon": x, "lat": y, "category": "E0101", **extra}
    r = client.post("/api/v1/patrol-reports", json=body, headers=headers)
    assert r.status_code == status, r.text
    return r.json()


def _count(client):
    with client.app.state.sessionmaker() as s:
        return s.scalar(sa.select(sa.func.count(Case.id)))


def test_a_patrol_report_in_the_workers_own_grid_goes_to_them(client):
    x, y, grid, worker = _spot(client, 3)
    case = _patrol(client, worker, x, y)
    assert (case["source"], case["state"], case["grid_code"]) == ("patrol", "dispatched", grid)
    assert case["reported_by_staff_id"] == worker and case["assignee_id"] == worker
    assert "outside_own_grid" not in case["flags"]
    assert [h["action"] for h in case["history"]] == ["reported", "located", "file", "dispatch"]


def test_a_report_outside_the_workers_grids_is_flagged_and_goes_to_the_territory(client):
    x, y, grid, worker = _spot(client, 3)
    ox, oy, other_grid, other_worker = _spot(client, _other_grid_leaf(client, grid))
    case = _patrol(client, worker, ox, oy)
    assert "outside_own_grid" in case["flags"]
    assert (case["grid_code"], case["assignee_id"], case["reported_by_staff_id"]) == (other_grid, other_worker, worker)


def test_handled_on_the_spot_waits_for_someone_else_to_verify(client):
    x, y, _, worker = _spot(client, 4)
    case = _patrol(client, worker, x, y, user="w-onspot", handled_on_spot=True, note="已当场清理")
    assert case["state"] == "handled" and case["handled_by"] == "w-onspot" and case["due_at"]
    assert [h["action"] for h in case["history"]][-2:] == ["accept", "handle"]
    assert case["history"][-1]["detail"]["note"] == "已当场清理"
    headers = {"X-User": "w-onspot", "X-Role": "verifier", "If-Match": f'"{case["version"]}"'}
    r = client.post(f"/api/v1/cases/{case['id']}/actions/verify", json={}, headers=headers)
    assert r.status_code == 403 and r.json()["field"] == "user"  # not by the one who handled it
    r = client.post(f"/api/v1/cases/{case['id']}/actions/verify", json={}, headers={**headers, "X-User": "v-other"})
    assert r.status_code == 200 and r.json()["state"] == "closed"


def test_handled_on_the_spot_is_refused_when_the_case_is_not_theirs_and_nothing_is_stored(client):
    x, y, grid, worker = _spot(client, 3)
    ox, oy, _, other_worker = _spot(client, _other_grid_leaf(client, grid))
    before = _count(client)
    r = _patrol(client, worker, ox, oy, status=422, handled_on_spot=True)
    assert r["field"] == "handled_on_spot" and f"staff {other_worker}" in r["detail"]
    r = _patrol(client, worker, x, y, status=422, handled_on_spot=True, category="C0101")  # a component
    assert r["field"] == "handled_on_spot" and "department" in r["detail"]
    assert _count(client) == before


@pytest.mark.parametrize(
    ("headers", "body", "status", "field"),
    [
        ({"X-User": "d", "X-Role": "dispatcher", "X-Staff-Id": "1"}, {}, 403, "role"),
        ({"X-User": "w", "X-Role": "worker"}, {}, 422, "staff_id"),  # the gateway named no staff record
        ({"X-User": "w", "X-Role": "worker", "X-Staff-Id": "987654"}, {}, 403, "staff_id"),
        ({"X-User": "w", "X-Role": "worker", "X-Staff-Id": "WORKER"}, {}, 422, "x-staff-id"),
        ({"X-User": "w", "X-Role": "worker", "X-Staff-Id": "WORKER"}, {"category": None}, 422, "category"),
        ({"X-User": "w", "X-Role": "worker", "X-Staff-Id": "WORKER"}, {"category": "X9999"}, 422, "category"),
        ({"X-User": "w", "X-Role": "worker", "X-Staff-Id": "WORKER"}, {"lon": 0.0, "lat": 0.0}, 422, "lon"),
    ],
)
def test_bad_patrol_reports_are_refused(client, headers, body, status, field):
    x, y, _, worker = _spot(client, 3)
    headers = {k: (str(worker) if v == "WORKER" else v) for k, v in headers.items()}
    if field == "x-staff-id":
        headers["X-Staff-Id"], field = "abc", "X-Staff-Id"
    before = _count(client)
    payload = {"title": "t", "lon": x, "lat": y, "category": "E0101", **body}
    r = client.post("/api/v1/patrol-reports", json=payload, headers=headers)
    assert r.status_code == status, r.text
    assert r.json()["field"].lower() == field.lower()
    assert _count(client) == before


def test_a_retried_patrol_report_makes_one_case(client):
    x, y, _, worker = _spot(client, 6)
    key = str(uuid.uuid4())
    first = _patrol(client, worker, x, y, key=key, handled_on_spot=True)
    again = client.post(
        "/api/v1/patrol-reports",
        json={"title": "巡查发现暴露垃圾", "lon": x, "lat": y, "category": "E0101", "handled_on_spot": True},
        headers={"X-User": "w1", "X-Role": "worker", "X-Staff-Id": str(worker), "Idempotency-Key": key},
    )
    assert again.status_code == 200 and again.json()["id"] == first["id"]
    assert again.headers["Idempotent-Replayed"] == "true"


def _offset(x, y, east_m):
    kx, _ = metres_per_degree(y)
    return x + east_m / kx, y


def _post(client, x, y, category="E0101"):
    r = client.post("/api/v1/cases", json={"title": "垃圾满溢", "lon": x, "lat": y, "category": category})
    assert r.status_code == 201, r.text
    return r.json()


def test_duplicates_are_suggested_at_intake_and_on_request(client):
    x, y, _, _ = _spot(client, 20)
    x, y = _offset(x, y, 0.37)  # a spot no other test reports at
    first = _post(client, x, y)
    near = _post(client, *_offset(x, y, 20))
    assert first["id"] in [d["id"] for d in near["possible_duplicates"]]
    hit = next(d for d in near["possible_duplicates"] if d["id"] == first["id"])
    assert 19 <= hit["distance_m"] <= 21 and hit["hours_apart"] < 1
    other_kind = _post(client, x, y, category="E0201")
    assert first["id"] not in [d["id"] for d in other_kind["possible_duplicates"]]
    far = _post(client, *_offset(x, y, 200))
    assert first["id"] not in [d["id"] for d in far["possible_duplicates"]]
    r = client.get(f"/api/v1/cases/{far['id']}/duplicates", params={"distance_m": 300})
    assert first["id"] in [d["id"] for d in r.json()["items"]] and r.json()["distance_m"] == 300
    for query, field in (
        ("distance_m=0", "distance_m"),
        ("distance_m=1e9", "distance_m"),
        ("hours=-1", "hours"),
        ("hours=abc", "hours"),
    ):
        r = client.get(f"/api/v1/cases/{far['id']}/duplicates?{query}")
        assert r.status_code == 422 and r.json()["field"] == field


def test_the_time_window_of_duplicate_suggestions(client):
    x, y, _, _ = _spot(client, 21)
    a = _post(client, x, y)
    with client.app.state.sessionmaker() as s, s.begin():
        old = s.get(Case, a["id"])
        old.reported_at = dt.datetime.now(dt.UTC) - dt.timedelta(days=4)
    b = _post(client, x, y)
    assert a["id"] not in [d["id"] for d in b["possible_duplicates"]]  # 96 h apart > 72 h
    with client.app.state.sessionmaker() as s:
        found = duplicates.suggest(s, s.get(Case, b["id"]), duplicates.Window(50, 100))
    assert a["id"] in [d["id"] for d in found]


def _merge(client, case, into, status=200, role="dispatcher", **extra):
    r = client.post(
        f"/api/v1/cases/{case['id']}/actions/merge",
        json={"into": into, **extra},
        headers={"X-User": "d1", "X-Role": role, "If-Match": f'"{case["version"]}"'},
    )
    assert r.status_code == status, r.text
    return r.json()


def test_merge_keeps_both_histories(client):
    x, y, _, _ = _spot(client, 22)
    primary = _post(client, x, y)
    dup = _post(client, *_offset(x, y, 10))
    _merge(client, dup, dup["id"], status=422)
    _merge(client, dup, 10**9, status=422)
    _merge(client, dup, primary["id"], status=403, role="worker")
    other = _post(client, x, y, category="E0201")
    assert _merge(client, other, primary["id"], status=422)["field"] == "reason"  # another category: say why
    merged = _merge(client, dup, primary["id"])
    assert merged["state"] == "merged" and merged["merged_into_id"] == primary["id"]
    view = client.get(f"/api/v1/cases/{primary['id']}").json()
    assert view["version"] == primary["version"] + 1 and view["state"] == "dispatched"
    actions = [(h["action"], h.get("case_number")) for h in view["history"]]
    assert ("merge_in", None) in actions and ("merge", dup["number"]) in actions
    assert ("reported", dup["number"]) in actions and ("reported", None) in actions  # both histories
    own = client.get(f"/api/v1/cases/{dup['id']}").json()
    assert [h["action"] for h in own["history"]][-1] == "merge"
    # a merged case is no longer suggested, and nothing can be merged into it
    assert dup["id"] not in [d["id"] for d in client.get(f"/api/v1/cases/{primary['id']}/duplicates").json()["items"]]
    third = _post(client, x, y)
    r = _merge(client, third, dup["id"], status=409)
    assert r["field"] == "into" and f"case {primary['id']}" in r["detail"]
    assert _merge(client, other, primary["id"], reason="同一处垃圾堆，分类报错")["state"] == "merged"
    # Open311 clients see a merged request as closed
    body = client.get(f"/open311/v2/requests/{dup['number']}.json").json()
    assert body[0]["status"] == "closed" and body[0]["status_notes"] == "已合并"
