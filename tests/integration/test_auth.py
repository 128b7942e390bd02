"""Accounts and sign-in on both databases: argon2id hashes, bearer tokens (issue, use, revoke, expire), the pages'
session cookie with CSRF, API keys with scopes, gateway headers only with the secret, the CLI's accounts, and the
append-only audit log (sign-ins, reveals, writes, publishes; UPDATE and DELETE refused by the database)."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from gridmap.access import accounts
from gridmap.demo.accounts import DEMO_PASSWORD, create_demo_accounts
from gridmap.store import engine as storage
from gridmap.store.tables import Account, ApiKey, AuditEntry, AuthToken
from gridmap_api.auth import SESSION_COOKIE, csrf_token
from gridmap_api.main import create_app
from gridmap_api.settings import Settings
from tests.helpers import inside

GRIDMAP = str(Path(sys.executable).with_name("gridmap"))


@pytest.fixture(scope="module")
def app_url(fresh_db_url):
    engine = storage.make_engine(fresh_db_url)
    with storage.session_scope(storage.make_sessionmaker(engine)) as session:
        create_demo_accounts(session, "530111")
    engine.dispose()
    return fresh_db_url


@pytest.fixture(scope="module")
def client(app_url):
    settings = Settings(database_url=app_url, escalation_interval_s=3600, rate_signin_account="5/300")
    with TestClient(create_app(settings), base_url="https://testserver") as c:
        yield c


def _token(client, user: str, password: str = DEMO_PASSWORD) -> dict:
    r = client.post("/api/v1/auth/token", data={"username": user, "password": password})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == "bearer" and 0 < body["expires_in"] <= 3600
    return {"Authorization": f"Bearer {body['access_token']}"}


def _audit(client, **where) -> list[AuditEntry]:
    with client.app.state.sessionmaker() as s:
        query = sa.select(AuditEntry).order_by(AuditEntry.id)
        for key, value in where.items():
            query = query.where(getattr(AuditEntry, key) == value)
        return list(s.scalars(query))


def test_passwords_are_stored_as_argon2id_hashes(client):
    with client.app.state.sessionmaker() as s:
        hashes = list(s.scalars(sa.select(Account.password_hash)))
    assert hashes and all(h.startswith("$argon2id$") and DEMO_PASSWORD not in h for h in hashes)


def test_a_token_is_issued_used_and_revoked(client):
    headers = _token(client, "demo-dispatcher")
    me = client.get("/api/v1/auth/me", headers=headers).json()
    assert me["role"] == "dispatcher" and me["areas"] == ["530111"] and me["via"] == "token"
    with client.app.state.sessionmaker() as s:  # only the digest is stored
        token = headers["Authorization"].split()[1]
        assert s.scalar(sa.select(sa.func.count()).where(AuthToken.token_hash == token)) == 0
        assert s.scalar(sa.select(sa.func.count()).where(AuthToken.token_hash == accounts.digest(token))) == 1
    assert client.post("/api/v1/auth/revoke", headers=headers).status_code == 204
    r = client.get("/api/v1/cases", headers=headers)
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
    assert r.json()["field"] == "Authorization"


def test_an_expired_token_is_refused(client):
    headers = _token(client, "demo-viewer")
    with client.app.state.sessionmaker() as s, s.begin():
        s.execute(
            sa.update(AuthToken)
            .where(AuthToken.token_hash == accounts.digest(headers["Authorization"][7:]))
            .values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
        )
    client.app.state.principals.clear()
    assert client.get("/api/v1/cases", headers=headers).status_code == 401


def test_wrong_credentials_say_nothing_about_the_account(client):
    unknown = client.post("/api/v1/auth/token", data={"username": "nobody-here", "password": "x" * 12})
    wrong = client.post("/api/v1/auth/token", data={"username": "demo-leader", "password": "x" * 12})
    assert unknown.status_code == wrong.status_code == 401
    assert unknown.json()["detail"] == wrong.json()["detail"]
    failed = _audit(client, action="signin_failed")
    assert {"account:nobody-here", "account:demo-leader"} <= {e.target for e in failed}
    assert all("x" * 12 not in str(e.detail) for e in failed)  # never the password


def test_sign_in_is_throttled_per_account(client):
    name = "demo-verifier"
    statuses = [
        client.post("/api/v1/auth/token", data={"username": name, "password": "wrong-password"}).status_code
        for _ in range(7)
    ]
    assert statuses[:5] == [401] * 5 and statuses[5:] == [429, 429]
    r = client.post("/api/v1/auth/token", data={"username": name, "password": DEMO_PASSWORD})
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1  # even the right password waits
    assert (
        client.post("/api/v1/auth/token", data={"username": "demo-manager", "password": DEMO_PASSWORD}).status_code
        == 200
    )  # another account is not locked out


def test_a_deactivated_account_loses_its_sessions_at_once(client, app_url):
    admin = _token(client, "demo-admin")
    spec = {
        "username": f"tmp-{uuid.uuid4().hex[:6]}",
        "role": "viewer",
        "areas": ["530111"],
        "password": "a-long-password-1",
    }
    created = client.post("/api/v1/accounts", json=spec, headers=admin)
    assert created.status_code == 201, created.text
    assert "password" not in created.json() and "password_hash" not in created.json()
    headers = _token(client, spec["username"], spec["password"])
    assert client.get("/api/v1/cases?limit=1", headers=headers).status_code == 200
    r = client.patch(f"/api/v1/accounts/{created.json()['id']}", json={"active": False}, headers=admin)
    assert r.status_code == 200 and r.json()["active"] is False
    assert client.get("/api/v1/cases?limit=1", headers=headers).status_code == 401
    assert (
        client.post("/api/v1/auth/token", data={"username": spec["username"], "password": spec["password"]}).status_code
        == 401
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"username": "x", "role": "viewer", "areas": ["530111"], "password": "a-long-password"}, "username"),
        ({"username": "new-one", "role": "superuser", "areas": ["530111"], "password": "a-long-password"}, "role"),
        ({"username": "new-one", "role": "viewer", "areas": ["999999"], "password": "a-long-password"}, "areas"),
        ({"username": "new-one", "role": "viewer", "areas": [], "password": "a-long-password"}, "areas"),
        ({"username": "new-one", "role": "worker", "areas": ["530111"], "password": "a-long-password"}, "staff_id"),
        (
            {"username": "new-one", "role": "department", "department": "NOPE", "password": "a-long-password"},
            "department",
        ),
        ({"username": "new-one", "role": "viewer", "areas": ["530111"], "password": "short"}, "password"),
        ({"username": "demo-admin", "role": "viewer", "areas": ["530111"], "password": "a-long-password"}, "username"),
    ],
)
def test_bad_accounts_are_refused(client, body, field):
    admin = _token(client, "demo-admin")
    before = len(client.get("/api/v1/accounts", headers=admin).json())
    r = client.post("/api/v1/accounts", json=body, headers=admin)
    assert 400 <= r.status_code < 500 and r.headers["content-type"] == "application/problem+json", r.text
    assert r.json()["field"].split(".")[0] == field
    assert len(client.get("/api/v1/accounts", headers=admin).json()) == before


def test_only_admins_manage_accounts_keys_and_the_audit(client):
    dispatcher = _token(client, "demo-dispatcher")
    for method, path in (("get", "/api/v1/accounts"), ("get", "/api/v1/api-keys"), ("get", "/api/v1/audit")):
        assert getattr(client, method)(path, headers=dispatcher).status_code == 403
        assert getattr(client, method)(path).status_code == 401


def test_pages_sign_in_with_a_cookie_and_writes_need_the_csrf_token(client):
    assert client.get("/dispatch", follow_redirects=False).headers["location"] == "/login?next=%2Fdispatch"
    page = client.get("/login?next=/dispatch")
    assert page.status_code == 200 and "登录" in page.text and "nonce-" in page.headers["content-security-policy"]
    bad = client.post(
        "/login",
        data={"username": "demo-dispatcher", "password": "nope-nope-nope", "next": "/"},
        follow_redirects=False,
    )
    assert (
        bad.status_code == 401
        and "用户名或密码错误" in bad.text
        and SESSION_COOKIE not in bad.headers.get("set-cookie", "")
    )
    r = client.post(
        "/login",
        data={"username": "demo-dispatcher", "password": DEMO_PASSWORD, "next": "https://evil.example/"},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/"  # never off the site
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "Secure" in cookie and "SameSite=lax" in cookie.replace("Lax", "lax")
    session = client.cookies.get(SESSION_COOKIE)
    page = client.get("/dispatch")
    assert page.status_code == 200 and csrf_token(session) in page.text and "demo-dispatcher" in page.text
    x, y = inside(client)
    body = {"title": "井盖缺失", "lon": x, "lat": y, "category": "C0101"}
    refused = client.post("/api/v1/cases", json=body)
    assert refused.status_code == 403 and refused.json()["field"] == "X-CSRF-Token"
    made = client.post("/api/v1/cases", json=body, headers={"X-CSRF-Token": csrf_token(session)})
    assert made.status_code == 201 and made.json()["history"][0]["actor"] == "dispatcher:demo-dispatcher"
    out = client.post("/logout", data={"csrf": csrf_token(session)}, follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/login"
    client.cookies.set(SESSION_COOKIE, session, domain="testserver")
    assert client.get("/api/v1/cases").status_code == 401  # the old cookie is dead on the server too
    client.cookies.clear()


def test_api_keys_are_hashed_scoped_and_revocable(client):
    admin = _token(client, "demo-admin")
    r = client.post("/api/v1/api-keys", json={"name": "随手拍小程序", "scopes": ["report"]}, headers=admin)
    assert r.status_code == 201
    key, key_id = r.json()["key"], r.json()["id"]
    assert key.startswith("gmk_") and all(
        k["key"] is None for k in client.get("/api/v1/api-keys", headers=admin).json()
    )
    with client.app.state.sessionmaker() as s:
        assert s.scalar(sa.select(ApiKey.key_hash).where(ApiKey.id == key_id)) == accounts.digest(key)
    x, y = inside(client, 3)
    made = client.post("/api/v1/cases", json={"title": "垃圾满溢", "lon": x, "lat": y}, headers={"X-API-Key": key})
    assert made.status_code == 201 and set(made.json()) == {
        "id",
        "number",
        "state",
        "reported_at",
        "grid_code",
        "reporter_token",
    }
    assert client.get("/api/v1/cases", headers={"X-API-Key": key}).status_code == 403  # not its scope
    assert client.get("/api/v1/cases", headers={"Authorization": f"ApiKey {key}"}).status_code == 403
    assert client.delete(f"/api/v1/api-keys/{key_id}", headers=admin).json()["revoked_at"]
    assert (
        client.post(
            "/api/v1/cases", json={"title": "垃圾满溢", "lon": x, "lat": y}, headers={"X-API-Key": key}
        ).status_code
        == 401
    )


def test_identity_headers_without_the_gateway_secret_change_nothing(client, app_url):
    forged = {"X-User": "mallory", "X-Role": "admin", "X-Areas": "530111", "X-Staff-Id": "1"}
    assert client.get("/api/v1/cases", headers=forged).status_code == 401
    assert client.get("/api/v1/accounts", headers=forged).status_code == 401
    worker = _token(client, "demo-worker")
    assert client.get("/api/v1/accounts", headers={**worker, **forged}).status_code == 403
    me = client.get("/api/v1/auth/me", headers={**worker, **forged}).json()
    assert me["role"] == "worker" and me["username"] == "demo-worker"
    settings = Settings(database_url=app_url, gateway_secret="s3cret-of-the-gateway")
    with TestClient(create_app(settings), base_url="https://testserver") as gated:
        assert gated.get("/api/v1/cases", headers=forged).status_code == 401  # headers alone: anonymous
        wrong = gated.get("/api/v1/cases", headers={**forged, "X-Gateway-Secret": "guess"})
        assert wrong.status_code == 401 and wrong.json()["field"] == "X-Gateway-Secret"
        right = gated.get("/api/v1/auth/me", headers={**forged, "X-Gateway-Secret": "s3cret-of-the-gateway"})
        assert right.status_code == 200 and right.json()["role"] == "admin" and right.json()["via"] == "gateway"


def test_anonymous_intake_can_be_switched_off(app_url):
    settings = Settings(database_url=app_url, anonymous_intake=False)
    with TestClient(create_app(settings), base_url="https://testserver") as c:
        r = c.post("/api/v1/cases", json={"title": "噪声", "lon": 102.75, "lat": 25.0})
        assert r.status_code == 401 and "匿名" in r.json()["detail"]


def test_a_worker_sees_and_acts_on_its_own_cases_only(client):
    worker = _token(client, "demo-worker")
    me = client.get("/api/v1/auth/me", headers=worker).json()
    grid = me["areas"][0]
    listed = client.get("/api/v1/cases?limit=500", headers=worker).json()["items"]
    assert listed and all(c["grid_code"] == grid or c["assignee_id"] == me["staff_id"] for c in listed)
    everyone = client.get("/api/v1/cases?limit=500", headers=_token(client, "demo-admin")).json()["items"]
    other = next(c for c in everyone if c["grid_code"] != grid and c["assignee_id"] != me["staff_id"])
    assert client.get(f"/api/v1/cases/{other['id']}", headers=worker).status_code == 404
    missing = client.get("/api/v1/cases/999999999", headers=worker)
    assert (
        missing.status_code == 404
        and missing.json()["detail"].replace("999999999", str(other["id"]))
        == client.get(f"/api/v1/cases/{other['id']}", headers=worker).json()["detail"]
    )  # the same answer
    act = client.post(f"/api/v1/cases/{other['id']}/actions/accept", json={"version": other["version"]}, headers=worker)
    assert act.status_code == 404


def test_a_department_acts_only_on_its_own_cases(client):
    admin, dispatcher = _token(client, "demo-admin"), _token(client, "demo-dispatcher")
    department = _token(client, "demo-department")
    own = client.get("/api/v1/auth/me", headers=department).json()["department"]
    other = next(d["code"] for d in client.get("/api/v1/departments", headers=admin).json() if d["code"] != own)
    x, y = inside(client, 2)
    case = client.post(
        "/api/v1/cases", json={"title": "占道", "lon": x, "lat": y, "category": "E0101"}, headers=dispatcher
    ).json()
    case = client.post(
        f"/api/v1/cases/{case['id']}/actions/reassign",
        headers=dispatcher,
        json={"version": case["version"], "department": other, "reason": "属其他部门"},
    ).json()
    for action, extra in (("accept", {}), ("request_extension", {"amount": 2, "unit": "work_days", "reason": "x"})):
        r = client.post(
            f"/api/v1/cases/{case['id']}/actions/{action}",
            headers=department,
            json={"version": case["version"], **extra},
        )
        assert r.status_code == 404, r.text  # not its case: it does not exist for this department


def test_the_audit_log_records_sign_ins_reveals_and_writes(client):
    dispatcher = _token(client, "demo-dispatcher")
    x, y = inside(client, 4)
    case = client.post(
        "/api/v1/cases",
        json={"title": "违章搭建", "lon": x, "lat": y, "reporter_name": "李四", "reporter_phone": "13912345678"},
        headers=dispatcher,
    ).json()
    shown = client.get(f"/api/v1/cases/{case['id']}", headers=dispatcher).json()
    assert shown["reporter_phone"] == "13912345678"
    assert [e.target for e in _audit(client, action="reveal")][-1] == f"case:{case['id']}"
    reveal = _audit(client, action="reveal")[-1]
    assert (
        reveal.actor == "dispatcher:demo-dispatcher" and reveal.account_id and "13912345678" not in str(reveal.detail)
    )
    inserts = [e for e in _audit(client, action="insert", target="case_file") if case["id"] in e.detail["ids"]]
    assert inserts and inserts[0].actor == "dispatcher:demo-dispatcher"
    assert any(e.actor == "user:demo-dispatcher" for e in _audit(client, action="signin"))
    admin = _token(client, "demo-admin")
    exported = client.get("/api/v1/audit?format=csv&limit=50", headers=admin)
    assert exported.status_code == 200 and exported.content.startswith(b"\xef\xbb\xbfid,at,actor")
    assert client.get("/api/v1/audit?action=reveal", headers=admin).json()["items"][0]["action"] == "reveal"


def test_the_application_cannot_change_or_delete_audit_rows(client):
    _token(client, "demo-viewer")  # at least one row
    engine = storage.make_engine(client.app.state.settings.database_url)
    try:
        for statement in ("UPDATE audit_log SET actor = 'nobody'", "DELETE FROM audit_log"):
            with pytest.raises(sa.exc.DatabaseError, match="append-only|permission denied"), engine.begin() as conn:
                conn.execute(sa.text(statement))
        if engine.dialect.name == "postgresql":
            with pytest.raises(sa.exc.DatabaseError, match="append-only|permission denied"), engine.begin() as conn:
                conn.execute(sa.text("TRUNCATE audit_log"))
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM audit_log WHERE actor = 'nobody'")).scalar() == 0
            assert conn.execute(sa.text("SELECT count(*) FROM audit_log")).scalar() > 0
    finally:
        engine.dispose()


def test_publishing_boundaries_is_audited_and_needs_the_approver(client):
    planner, approver = _token(client, "demo-planner"), _token(client, "demo-approver")
    draft = client.post("/api/v1/generations", json={"name": "审计测试"}, headers=planner)
    assert draft.status_code == 201 and draft.headers["location"].endswith(str(draft.json()["id"]))
    body = {"effective_from": dt.date.today().isoformat()}
    assert (
        client.post(f"/api/v1/generations/{draft.json()['id']}/activate", json=body, headers=planner).status_code == 403
    )
    assert client.post("/api/v1/generations", json={"name": "x"}, headers=approver).status_code == 403
    assert client.post("/api/v1/generations", json={"name": "x"}).status_code == 401
    assert client.post(f"/api/v1/generations/{draft.json()['id']}/submit", headers=approver).status_code == 403
    assert client.post(f"/api/v1/generations/{draft.json()['id']}/submit", headers=planner).status_code == 200
    assert (
        client.post(f"/api/v1/generations/{draft.json()['id']}/approve", json=body, headers=planner).status_code == 403
    )
    r = client.post(f"/api/v1/generations/{draft.json()['id']}/approve", json=body, headers=approver)
    assert r.status_code == 200, r.text
    assert r.json()["generation"]["status"] == "active"
    submit = _audit(client, action="submit")[-1]
    assert submit.target == f"generation:{draft.json()['id']}" and submit.actor == "planner:demo-planner"
    publish = _audit(client, action="publish")[-1]
    assert publish.target == f"generation:{draft.json()['id']}" and publish.actor == "approver:demo-approver"


def test_the_cli_creates_the_admin_once_and_adds_users(tmp_path):
    url = f"sqlite:///{tmp_path / 'cli.sqlite'}"
    first = subprocess.run([GRIDMAP, "--database", url, "init"], capture_output=True, text=True, check=True)
    assert "one-time password" in first.stdout
    password = first.stdout.rsplit(":", 1)[1].strip()
    second = subprocess.run([GRIDMAP, "--database", url, "init"], capture_output=True, text=True, check=True)
    assert "one-time password" not in second.stdout
    engine = storage.make_engine(url)
    with storage.make_sessionmaker(engine)() as s:
        admin = s.scalars(sa.select(Account).where(Account.username == "admin")).one()
        assert accounts.authenticate(s, "admin", password).id == admin.id
    engine.dispose()
    added = subprocess.run(
        [GRIDMAP, "--database", url, "user", "add", "zhang.san", "--role", "planner", "--password-stdin"],
        input="correct horse battery\n",
        capture_output=True,
        text=True,
    )
    assert added.returncode == 0, added.stderr
    assert "correct horse" not in added.stdout
    again = subprocess.run(
        [GRIDMAP, "--database", url, "user", "add", "zhang.san", "--role", "planner"], capture_output=True, text=True
    )
    assert again.returncode == 2 and "exists" in again.stderr
    bad = subprocess.run(
        [GRIDMAP, "--database", url, "user", "add", "li.si", "--role", "dispatcher"], capture_output=True, text=True
    )
    assert bad.returncode == 2 and "area" in bad.stderr  # a dispatcher needs its areas
