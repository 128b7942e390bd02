"""The case loop driven through the HTTP API on both databases: the plain path, rework, whistle and report-in,
bounce, extension, suspension, reopening; guards (role, owner, state, version); 50 dispatchers at once;
idempotent intake; overdue escalation exactly once."""

from __future__ import annotations

import datetime as dt
import threading
import uuid

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from gridmap.calendar import WorkCalendar
from gridmap.cases.workflow import escalate_overdue
from gridmap.store import engine as storage
from gridmap.store.tables import Case, CaseEvent
from gridmap_api.main import create_app
from gridmap_api.settings import Settings
from tests.conftest import api_client
from tests.helpers import inside

APP_SETTINGS = {"escalation_interval_s": 3600}  # the module's `client` (tests/conftest.py)


def _new(client, category="E0101", k=5, **extra):
    x, y = inside(client, k)
    r = client.post("/api/v1/cases", json={"title": "测试事件", "lon": x, "lat": y, "category": category, **extra})
    assert r.status_code == 201, r.text
    return r.json()


def _act(client, case, action, role, user="u1", *, status=200, staff=None, dept=None, **params):
    headers = {"X-User": user, "X-Role": role, "If-Match": f'"{case["version"]}"'}
    if staff is not None:
        headers["X-Staff-Id"] = str(staff)
    if dept is not None:
        headers["X-Department"] = dept
    r = client.post(f"/api/v1/cases/{case['id']}/actions/{action}", json=params, headers=headers)
    assert r.status_code == status, r.text
    if status == 200:
        assert r.headers["etag"] == f'"{r.json()["version"]}"'
    return r.json()


def _history(client, case):
    return [h["action"] for h in client.get(f"/api/v1/cases/{case['id']}").json()["history"]]


def _dept_code(client, case):
    with client.app.state.sessionmaker() as s:
        return s.scalar(sa.text("SELECT code FROM department WHERE id = :i"), {"i": case["department_id"]})


def _rate(client, case, token, score, status=200):
    r = client.post(f"/api/v1/cases/{case['id']}/rating", json={"reporter_token": token, "satisfaction": score})
    assert r.status_code == status, r.text
    return client.get(f"/api/v1/cases/{case['id']}").json() if status == 200 else r.json()


def test_plain_path_from_report_to_rating(client):
    case = _new(client)
    token = case["reporter_token"]
    worker = case["assignee_id"]
    case = _act(client, case, "accept", "worker", "w1", staff=worker)
    assert case["state"] == "accepted" and case["due_at"] and case["clock"]["colour"] == "green"
    case = _act(client, case, "handle", "worker", "w1", staff=worker, note="已清理")
    assert case["state"] == "handled" and case["handled_by"] == "w1"
    case = _act(client, case, "verify", "verifier", "v1")
    assert case["state"] == "closed" and case["closed_at"]
    case = _rate(client, case, token, 5)
    assert case["state"] == "closed" and case["satisfaction"] == 5
    assert _history(client, case) == ["reported", "located", "file", "dispatch", "accept", "handle", "verify", "rate"]


def test_rework_and_the_handler_cannot_verify_their_own_work(client):
    case = _new(client)
    worker = case["assignee_id"]
    case = _act(client, case, "accept", "worker", "w1", staff=worker)
    case = _act(client, case, "handle", "worker", "w1", staff=worker)
    _act(client, case, "verify", "verifier", "w1", status=403)
    case = _act(client, case, "send_back", "verifier", "v1", reason="现场仍有垃圾")
    assert case["state"] == "rework" and case["counts"]["rework"] == 1
    case = _act(client, case, "handle", "worker", "w1", staff=worker)
    case = _act(client, case, "verify", "verifier", "v2")
    assert case["state"] == "closed"


def test_whistle_report_in_and_department_handling(client):
    case = _new(client)
    worker = case["assignee_id"]
    case = _act(client, case, "accept", "worker", "w1", staff=worker)
    case = _act(client, case, "whistle", "worker", "w1", staff=worker, department="CG", reason="需执法部门处置")
    assert case["whistle"]["due_at"] and case["whistle"]["reported_at"] is None
    _act(client, case, "report_in", "department", "d1", dept="SW", status=403)  # not the department whistled to
    case = _act(client, case, "report_in", "department", "d1", dept="CG")
    assert case["whistle"]["reported_at"]
    _act(client, case, "report_in", "department", "d1", dept="CG", status=409)  # once
    case = _act(client, case, "handle", "department", "d1", dept="CG")
    case = _act(client, case, "verify", "verifier", "v1")
    assert case["state"] == "closed"
    history = client.get(f"/api/v1/cases/{case['id']}").json()["history"]
    assert next(h for h in history if h["action"] == "report_in")["detail"]["on_time"] is True


def test_bounce_with_the_boundary_as_evidence_then_override(client):
    case = _new(client, category="C0101")  # a component: its owner department first
    dept = _dept_code(client, case)
    _act(client, case, "bounce", "department", "d1", dept=dept, status=422)  # a bounce needs a reason
    case = _act(client, case, "bounce", "department", "d1", dept=dept, reason="不属于本部门管养范围")
    assert case["state"] == "filed" and case["counts"]["bounce"] == 1 and case["department_id"] is None
    history = client.get(f"/api/v1/cases/{case['id']}").json()["history"]
    evidence = history[-1]["detail"]["evidence"]
    assert evidence["grid_code"] == case["grid_code"] and evidence["boundary"].endswith(case["grid_code"])
    worker = client.get(f"/api/v1/areas/{case['grid_code']}").json()["properties"]["staff"][0]["id"]
    case = _act(client, case, "dispatch", "dispatcher", "p1", assignee_id=worker, reason="社区先行处置")
    assert case["state"] == "dispatched" and case["assignee_id"] == worker
    detail = client.get(f"/api/v1/cases/{case['id']}").json()["history"][-1]["detail"]
    assert detail["rule"] == "override" and detail["reason"] == "社区先行处置"


def test_extension_moves_the_deadline_on_the_working_calendar(client):
    case = _new(client)
    worker = case["assignee_id"]
    case = _act(client, case, "accept", "worker", "w1", staff=worker)
    due = dt.datetime.fromisoformat(case["due_at"].replace("Z", "+00:00"))
    case = _act(
        client, case, "request_extension", "worker", "w1", staff=worker, amount=2, unit="work_days", reason="需采购配件"
    )
    assert case["pending"]["kind"] == "extension"
    _act(client, case, "approve", "worker", "w1", staff=worker, status=403)  # a leader approves
    case = _act(client, case, "approve", "leader", "l1")
    moved = dt.datetime.fromisoformat(case["due_at"].replace("Z", "+00:00"))
    assert moved == WorkCalendar.seeded().add(due, 2, "work_days") and case["counts"]["extension"] == 1
    assert case["pending"] is None


def test_suspension_and_resume(client):
    case = _new(client)
    worker = case["assignee_id"]
    case = _act(client, case, "accept", "worker", "w1", staff=worker)
    case = _act(client, case, "request_suspension", "worker", "w1", staff=worker, reason="等待产权单位确认")
    case = _act(client, case, "deny", "leader", "l1", reason="可先行处置")
    assert case["state"] == "accepted" and case["pending"] is None
    case = _act(client, case, "request_suspension", "worker", "w1", staff=worker, reason="等待产权单位确认")
    case = _act(client, case, "approve", "leader", "l1")
    assert case["state"] == "suspended"
    _act(client, case, "handle", "worker", "w1", staff=worker, status=409)
    case = _act(client, case, "resume", "leader", "l1")
    assert case["state"] == "accepted"
    case = _act(client, case, "handle", "worker", "w1", staff=worker)
    assert case["state"] == "handled"


def test_a_dissatisfied_resident_reopens_the_case(client):
    case = _new(client)
    token = case["reporter_token"]
    worker = case["assignee_id"]
    for action, role, user in (("accept", "worker", "w1"), ("handle", "worker", "w1"), ("verify", "verifier", "v1")):
        case = _act(client, case, action, role, user, staff=worker if role == "worker" else None)
    _rate(client, case, token, 9, status=422)
    _rate(client, case, "not-the-token", 5, status=404)  # only the reporter rates, and others learn nothing
    case = _rate(client, case, token, 1)
    assert case["state"] == "dispatched" and case["counts"]["reopen"] == 1 and case["closed_at"] is None
    _rate(client, case, token, 1, status=409)  # not closed again yet: nothing to rate
    case = _act(client, case, "accept", "worker", "w1", staff=worker)
    assert case["state"] == "accepted"
    for action, role, user in (("handle", "worker", "w1"), ("verify", "verifier", "v1")):
        case = _act(client, case, action, role, user, staff=worker if role == "worker" else None)
    assert _rate(client, case, token, 4)["satisfaction"] == 4  # a new closure may be rated once
    _rate(client, case, token, 5, status=409)
    _rate(client, case, token, 1, status=409)  # rating twenty times to reopen it is over


def test_guards_refuse_and_change_nothing(client):
    case = _new(client)
    worker = case["assignee_id"]
    url = f"/api/v1/cases/{case['id']}/actions/accept"
    who = {"X-User": "w1", "X-Role": "worker", "X-Staff-Id": str(worker)}
    assert client.post(url, json={}, headers=who).status_code == 428
    stale = client.post(url, json={}, headers={**who, "If-Match": '"999"'})
    assert stale.status_code == 412 and stale.json()["field"] == "If-Match"
    assert client.post(url, json={"version": 999}, headers=who).status_code == 409
    assert client.post(url, json={"version": case["version"]}, headers={**who, "X-Staff-Id": "1"}).status_code == 403
    assert client.post(url, json={"version": case["version"]}, headers={**who, "X-Role": "janitor"}).status_code == 422
    assert (
        client.post(url, json={"version": case["version"]}, headers={**who, "X-User": ""}).json()["field"] == "X-User"
    )
    bad_if = client.post(url, json={}, headers={**who, "If-Match": "yesterday"})
    assert bad_if.status_code == 422 and bad_if.json()["field"] == "If-Match"
    assert (
        client.post(f"/api/v1/cases/{case['id']}/actions/teleport", json={"version": 1}, headers=who).status_code == 404
    )
    wrong_state = _act(client, case, "verify", "verifier", "v1", status=409)
    assert wrong_state["field"] == "state" and wrong_state["type"] == "about:blank"
    assert client.post("/api/v1/cases/99999999/actions/accept", json={"version": 1}, headers=who).status_code == 404
    after = client.get(f"/api/v1/cases/{case['id']}")
    assert after.json()["version"] == case["version"] and after.json()["state"] == "dispatched"
    assert _history(client, case) == ["reported", "located", "file", "dispatch"]


def _at_once(n: int, request) -> list[int]:
    """`request(i)` for i in 0..n-1 from n threads released together; the status codes."""
    statuses: list[int] = []
    barrier = threading.Barrier(n)

    def run(i: int) -> None:
        barrier.wait()
        statuses.append(request(i).status_code)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return statuses


def test_fifty_dispatchers_at_once_exactly_one_wins(client):
    case = _new(client)
    worker = case["assignee_id"]
    statuses = _at_once(
        50,
        lambda i: client.post(
            f"/api/v1/cases/{case['id']}/actions/reassign",
            json={"assignee_id": worker, "reason": f"调度员{i}改派"},
            headers={"X-User": f"p{i}", "X-Role": "dispatcher", "If-Match": f'"{case["version"]}"'},
        ),
    )
    assert sorted(statuses) == [200] + [412] * 49
    assert _history(client, case).count("reassign") == 1
    assert client.get(f"/api/v1/cases/{case['id']}").json()["version"] == case["version"] + 1


def test_signed_in_dispatchers_racing_exactly_one_wins(client, db_url):
    """The same race with real accounts and bearer tokens (five dispatchers, ten requests each, at once)."""
    from gridmap.access import accounts

    run = uuid.uuid4().hex[:6]
    with client.app.state.sessionmaker() as s, s.begin():
        names = [
            accounts.add_account(
                s, accounts.AccountSpec(f"race-{run}-{i}", "dispatcher", ("530111",)), "a-long-password-1"
            ).username
            for i in range(5)
        ]
    case = _new(client)
    with TestClient(create_app(Settings(database_url=db_url, escalation_interval_s=3600))) as plain:
        _race(plain, case, names)


def _race(plain, case, names) -> None:
    """50 requests at once from five dispatchers' bearer tokens (no gateway: only the tokens say who acts)."""
    tokens = [
        plain.post("/api/v1/auth/token", data={"username": n, "password": "a-long-password-1"}).json()["access_token"]
        for n in names
    ]
    statuses = _at_once(
        50,
        lambda i: plain.post(
            f"/api/v1/cases/{case['id']}/actions/reassign",
            json={"assignee_id": case["assignee_id"], "reason": f"调度员{i}改派"},
            headers={"Authorization": f"Bearer {tokens[i % 5]}", "If-Match": f'"{case["version"]}"'},
        ),
    )
    assert sorted(statuses) == [200] + [412] * 49, sorted(statuses)
    history = plain.get(f"/api/v1/cases/{case['id']}", headers={"Authorization": f"Bearer {tokens[0]}"}).json()
    assert [h["actor"] for h in history["history"] if h["action"] == "reassign"][0].split(":")[1] in names


def test_idempotent_intake_under_retries(client):
    x, y = inside(client, 7)
    body = {"title": "路灯不亮", "lon": x, "lat": y, "category": "C0201"}
    key = str(uuid.uuid4())
    first = client.post("/api/v1/cases", json=body, headers={"Idempotency-Key": key})
    again = client.post("/api/v1/cases", json=body, headers={"Idempotency-Key": key})
    assert first.status_code == 201 and again.status_code == 200
    assert again.headers["idempotent-replayed"] == "true" and again.json()["id"] == first.json()["id"]
    other = client.post("/api/v1/cases", json={**body, "title": "路灯常亮"}, headers={"Idempotency-Key": key})
    assert other.status_code == 422 and other.json()["field"] == "Idempotency-Key"

    racing_key = str(uuid.uuid4())
    ids: list[int] = []
    barrier = threading.Barrier(10)

    def retry() -> None:
        barrier.wait()
        r = client.post("/api/v1/cases", json=body, headers={"Idempotency-Key": racing_key})
        assert r.status_code in (200, 201), r.text
        ids.append(r.json()["id"])

    threads = [threading.Thread(target=retry) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(ids) == 10 and len(set(ids)) == 1
    with client.app.state.sessionmaker() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(Case).where(Case.id == ids[0])) == 1
        assert s.scalar(sa.text("SELECT count(*) FROM idempotency_key WHERE key = :k"), {"k": racing_key}) == 1


def test_overdue_cases_escalate_exactly_once_also_after_a_restart(client, db_url):
    case = _new(client)
    case = _act(client, case, "accept", "worker", "w1", staff=case["assignee_id"])
    sm = client.app.state.sessionmaker
    with storage.session_scope(sm) as s:
        s.execute(
            sa.update(Case).where(Case.id == case["id"]).values(due_at=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))
        )
    with storage.session_scope(sm) as s:
        assert case["id"] in escalate_overdue(s)
    with storage.session_scope(sm) as s:
        assert case["id"] not in escalate_overdue(s)
    with api_client(Settings(database_url=db_url, escalation_interval_s=3600)) as restarted:
        after = restarted.get(f"/api/v1/cases/{case['id']}").json()
    assert after["escalation_level"] == 1 and after["clock"]["colour"] == "red"
    with sm() as s:
        n = s.scalar(
            sa.select(sa.func.count())
            .select_from(CaseEvent)
            .where(CaseEvent.case_id == case["id"], CaseEvent.action == "escalate")
        )
    assert n == 1


@pytest.mark.parametrize("reason", ["a\x00b", "退回\u202e原因", "\u200b\u200b", "x" * 2001])
def test_step_texts_are_checked_like_intake_text(client, reason):
    case = _new(client)
    r = client.post(
        f"/api/v1/cases/{case['id']}/actions/void",
        json={"version": case["version"], "reason": reason},
        headers={"X-User": "d1", "X-Role": "dispatcher"},
    )
    assert r.status_code == 422 and r.json()["field"] == "reason", r.text
    after = client.get(f"/api/v1/cases/{case['id']}").json()
    assert (after["state"], after["version"]) == (case["state"], case["version"])
