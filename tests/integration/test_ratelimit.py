"""Rate limits over HTTP, on both databases: anonymous intake per client address, Open311 POST per address and per
API key, sign-in through `check`; over the limit a 429 problem+json with Retry-After, refused before the request is
processed; budgets come back as time passes (an injected clock, plus one short real-time check), addresses have
their own budgets, X-Forwarded-For counts only from a trusted proxy, and honest rates never meet a limit."""

from __future__ import annotations

import time
import uuid

import pytest
import sqlalchemy as sa
from fastapi import Depends, FastAPI, Request
from fastapi.testclient import TestClient

from gridmap.store import engine as storage
from gridmap.store.tables import Case
from gridmap_api import errors
from gridmap_api.main import create_app
from gridmap_api.ratelimit import RateLimiter, check, limiter_for, rate_limit
from gridmap_api.settings import Settings
from tests.conftest import api_client


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_app(db_url: str, clock: Clock | None = None, **rates):
    settings = Settings(database_url=db_url, escalation_interval_s=3600, **rates)
    app = create_app(settings)
    if clock is not None:
        app.state.rate_limiter = RateLimiter.from_settings(settings, clock=clock)
    return app


def as_client(app, host: str, **headers) -> TestClient:
    """Another client of an app already started (no lifespan of its own), from `host`."""
    return TestClient(app, client=(host, 40000), headers=headers)


@pytest.fixture(scope="module")
def point(db_url):
    engine = storage.make_engine(db_url)
    with storage.make_sessionmaker(engine)() as s:
        lon, lat = s.execute(sa.select(Case.lon, Case.lat).where(Case.grid_code.is_not(None)).limit(1)).one()
    engine.dispose()
    return lon, lat


def case_body(point, run: str, i: int) -> dict:
    return {
        "title": "限流测试",
        "lon": point[0],
        "lat": point[1],
        "category": "E0101",
        "description": f"ratelimit {run}-{i}",
    }


def count_cases(db_url: str, run: str) -> int:
    engine = storage.make_engine(db_url)
    with storage.make_sessionmaker(engine)() as s:
        n = s.scalar(sa.select(sa.func.count()).select_from(Case).where(Case.description.like(f"ratelimit {run}-%")))
    engine.dispose()
    return n


def assert_429(r, retry_after: int) -> None:
    assert r.status_code == 429, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.headers["retry-after"] == str(retry_after)
    body = r.json()
    assert body["status"] == 429 and body["code"] == "rate_limited" and body["retry_after"] == retry_after
    assert body["detail"].startswith(f"请求过于频繁，请 {retry_after} 秒后再试")


def test_a_burst_over_the_anonymous_limit_gets_429_until_the_window_passes(db_url, point):
    clock, run = Clock(), uuid.uuid4().hex[:8]
    with TestClient(make_app(db_url, clock, rate_anonymous_intake="5/60")) as client:
        answers = [client.post("/api/v1/cases", json=case_body(point, run, i)) for i in range(5)]
        assert [r.status_code for r in answers] == [201] * 5
        refused = client.post("/api/v1/cases", json=case_body(point, run, 5))
        assert_429(refused, 12)  # 5 per 60 s: the next token in 12 s
        # refused before anything else: a bad body is not even looked at, and nothing was made
        assert_429(client.post("/api/v1/cases", json={"title": ""}), 12)
        assert count_cases(db_url, run) == 5
        clock.now += 11.5
        assert_429(client.post("/api/v1/cases", json=case_body(point, run, 6)), 1)
        clock.now += 0.5
        assert client.post("/api/v1/cases", json=case_body(point, run, 7)).status_code == 201  # one token back
        assert client.post("/api/v1/cases", json=case_body(point, run, 8)).status_code == 429
        clock.now += 60
        assert [client.post("/api/v1/cases", json=case_body(point, run, 10 + i)).status_code for i in range(6)] == [
            201
        ] * 5 + [429]  # the whole burst back, and no more
        assert count_cases(db_url, run) == 11
        # the other endpoints are not limited by it
        assert client.get("/api/v1/categories").status_code == 200


def test_authenticated_callers_are_not_held_to_the_anonymous_budget(db_url, point):
    """Residents without credentials share their address's budget; staff (here through the trusted gateway) and
    integrations are accountable by name and are not limited per address."""
    clock, run = Clock(), uuid.uuid4().hex[:8]
    settings = Settings(database_url=db_url, escalation_interval_s=3600, rate_anonymous_intake="2/60")
    with api_client(settings, role="dispatcher", user="ratelimit-tester") as staff:
        staff.app.state.rate_limiter = RateLimiter.from_settings(settings, clock=clock)
        resident = TestClient(staff.app)  # the same address ("testclient"), no credentials
        post = lambda c, i: c.post("/api/v1/cases", json=case_body(point, run, i)).status_code  # noqa: E731
        assert [post(resident, i) for i in range(3)] == [201, 201, 429]
        assert [post(staff, 10 + i) for i in range(5)] == [201] * 5
        assert post(resident, 20) == 429


def test_addresses_have_their_own_budgets(db_url, point):
    clock, run = Clock(), uuid.uuid4().hex[:8]
    app = make_app(db_url, clock, rate_anonymous_intake="2/60")
    with TestClient(app, client=("192.0.2.1", 40000)) as first:
        post = lambda c, i: c.post("/api/v1/cases", json=case_body(point, run, i)).status_code  # noqa: E731
        assert [post(first, i) for i in range(3)] == [201, 201, 429]
        second = as_client(app, "192.0.2.2")
        assert [post(second, 10 + i) for i in range(3)] == [201, 201, 429]
        # IPv6: one subscriber's /64 is one budget; another /64 is another
        v6a, v6b, other = (as_client(app, h) for h in ("2001:db8:1:2::10", "2001:db8:1:2::99", "2001:db8:1:3::1"))
        assert [post(v6a, 20), post(v6b, 21), post(v6b, 22)] == [201, 201, 429]
        assert post(other, 23) == 201
        # X-Forwarded-For from a client that is not a trusted proxy changes nothing
        spoof = as_client(app, "192.0.2.1", **{"X-Forwarded-For": "198.51.100.7"})
        assert post(spoof, 30) == 429


def test_forwarded_for_counts_only_from_a_trusted_proxy(db_url, point):
    clock, run = Clock(), uuid.uuid4().hex[:8]
    app = make_app(db_url, clock, rate_anonymous_intake="1/60", trusted_proxies="10.0.0.0/8, 192.0.2.250")
    with TestClient(app, client=("10.1.1.1", 40000), headers={"X-Forwarded-For": "198.51.100.1"}) as via_a:
        post = lambda c, i: c.post("/api/v1/cases", json=case_body(point, run, i)).status_code  # noqa: E731
        assert [post(via_a, 1), post(via_a, 2)] == [201, 429]
        # another client through the same proxy, and a client behind two proxies (a forged first hop ignored)
        assert post(as_client(app, "10.1.1.1", **{"X-Forwarded-For": "198.51.100.2"}), 3) == 201
        chained = as_client(app, "192.0.2.250", **{"X-Forwarded-For": "203.0.113.9, 198.51.100.3, 10.2.2.2"})
        assert [post(chained, 4), post(chained, 5)] == [201, 429]
        # a proxy's own requests (no header) are limited as the proxy's
        assert [post(as_client(app, "10.1.1.1"), 6), post(as_client(app, "10.1.1.1"), 7)] == [201, 429]
    with pytest.raises(ValueError, match="not an address or network"):
        Settings(trusted_proxies="10.0.0.0/8, proxy.example")
    with pytest.raises(ValueError, match="is not a rate"):
        Settings(rate_anonymous_intake="fast")


def test_a_flood_of_41_per_second_meets_the_default_limit_and_an_honest_burst_does_not(db_url):
    """Default settings. A client flooding 41 intakes a second is cut down to the refill rate within seconds;
    the durability test's burst (about 100 submissions at once from one address, retried) passes. The bodies are
    invalid (422 when let through) so that the flood writes nothing; the limit comes first either way."""
    clock = Clock()
    app = make_app(db_url, clock)
    with TestClient(app, client=("203.0.113.41", 40000)) as flood:
        statuses = []
        for tick in range(41 * 20):  # 20 s at 41 a second
            clock.now = 1000.0 + tick / 41
            statuses.append(flood.post("/api/v1/cases", json={"title": ""}).status_code)
        first_refused = statuses.index(429)
        assert set(statuses) == {422, 429}
        assert first_refused / 41 < 10  # refused within 10 s of flooding
        passed_later = statuses[first_refused:].count(422)
        assert passed_later <= 5 * (len(statuses) - first_refused) / 41 + 1  # after that, only the refill
        honest = as_client(app, "127.0.0.1")
        clock.now += 3600
        assert [honest.post("/api/v1/cases", json={"title": ""}).status_code for _ in range(100)] == [422] * 100


def test_open311_post_is_limited_per_api_key_and_per_address(db_url):
    clock = Clock()
    app = make_app(db_url, clock, open311_api_keys="key-a,key-b", rate_open311_post="6/60", rate_open311_key="3/60")
    form = {"service_code": "NO-SUCH-SERVICE", "lat": "24.9", "long": "102.8"}
    with TestClient(app, client=("192.0.2.31", 40000)) as client:

        def post(key):
            return client.post("/open311/v2/requests.json", data={**form, "api_key": key})

        let_through = post("key-a").status_code
        assert let_through == 404  # an unknown service, so that nothing is made
        assert [post("key-a").status_code for _ in range(2)] == [let_through] * 2
        assert_429(post("key-a"), 20)  # key-a's budget (3 per 60 s)
        assert [post("key-b").status_code for _ in range(2)] == [let_through] * 2
        assert_429(post("key-b"), 10)  # now the address's budget (6 per 60 s) is spent
        other = as_client(app, "192.0.2.32")
        assert other.post("/open311/v2/requests.json", data={**form, "api_key": "key-b"}).status_code == let_through
        assert other.post("/open311/v2/requests.json", data={**form, "api_key": "key-a"}).status_code == 429
        # reading is not limited
        assert client.get("/open311/v2/services.json").status_code == 200


def test_the_window_passes_in_real_time(db_url, point):
    """No injected clock: 2 per 6 s, so one token is back 3 s after the burst began. (The window is wide enough for
    three requests on a loaded machine: with 2 per 0.5 s a request slower than 0.25 s found its token back.)"""
    run = uuid.uuid4().hex[:8]
    with TestClient(make_app(db_url, rate_anonymous_intake="2/6")) as client:
        post = lambda i: client.post("/api/v1/cases", json=case_body(point, run, i))  # noqa: E731
        started = time.monotonic()
        assert post(0).status_code == 201 and post(1).status_code == 201
        third = post(2)
        if time.monotonic() - started < 3:  # else the machine was too slow for the burst to be one
            assert third.status_code == 429 and int(third.headers["retry-after"]) in (1, 2, 3), third.text
        time.sleep(max(0.0, started + 6.2 - time.monotonic()))
        assert post(3).status_code == 201


def test_signin_code_calls_check_per_account_and_address():
    """Sign-in knows the account name only from its body: it calls `check` inside the route, which uses the
    limiter of the app serving the request (bound by the route's `rate_limit` dependency)."""
    clock = Clock()
    app = FastAPI()
    app.state.settings = Settings(rate_signin_account="2/60", rate_signin_address="3/60")  # no database used
    app.state.rate_limiter = RateLimiter.from_settings(app.state.settings, clock=clock)
    errors.register(app)

    @app.post("/signin", dependencies=[Depends(rate_limit("signin_address"))])
    def signin(username: str) -> dict:  # sync: runs in the thread pool, in the request's context
        check("signin_account", username)
        return {"ok": True}

    @app.post("/signin-async")
    async def signin_async(username: str, request: Request) -> dict:
        check("signin_account", username, request=request)
        return {"ok": True}

    c = TestClient(app, client=("192.0.2.77", 40000))
    assert [c.post("/signin", params={"username": "alice"}).status_code for _ in range(2)] == [200, 200]
    assert_429(c.post("/signin", params={"username": "alice"}), 30)  # alice's account budget
    assert c.post("/signin", params={"username": "bob"}).status_code == 429  # the address's 3 are spent
    other = TestClient(app, client=("192.0.2.78", 40000))
    assert other.post("/signin", params={"username": "bob"}).status_code == 200
    assert other.post("/signin-async", params={"username": "bob"}).status_code == 200
    assert other.post("/signin-async", params={"username": "bob"}).status_code == 429
    limiter_for(app).reset("signin_account", "bob")
    assert other.post("/signin-async", params={"username": "bob"}).status_code == 200  # reset after a success
