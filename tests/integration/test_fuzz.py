"""Fuzzing every operation, and the reproducers of issue 12, on both databases: no input is a 5xx.

1. Property-based fuzzing with schemathesis over the app's own OpenAPI document (`app.openapi()`), called in
   process through schemathesis' ASGI transport, with a fixed seed and a bounded number of examples, once for each
   of several roles holding valid bearer tokens (admin, dispatcher, worker, planner). Schemathesis generates both
   valid and invalid requests (its positive and negative modes) and adds the boundary values of its coverage phase
   as explicit examples: about 9,700 requests per database. The only check is `not_a_server_error`: whatever the
   request, the answer is not a 5xx. Two in three generated values of parameters the app looks up (area codes,
   case and generation ids, the Open311 format, …) are swapped for ones the demo has, chosen from the generated
   value itself (so the run stays reproducible), or nearly every request would stop at a 404 or 422.

   The fuzzer acts as an admin too: it may deactivate, demote or re-scope the accounts it acts as, or revoke their
   tokens; after any request that can, the accounts are put back as they were and given fresh tokens.

2. Regression tests: integers above 2^63, times and days at the ends of the range, and the bad inputs of the
   reliability reference (section c) that apply to routes that exist — each a 4xx (never a 500) naming the field.
"""

from __future__ import annotations

import datetime as dt
import zlib
from collections import Counter
from dataclasses import dataclass, field

import pytest
import schemathesis
import sqlalchemy as sa
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, seed, settings
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi

from gridmap.access import accounts
from gridmap.boundaries import generations as gens
from gridmap.cases import workflow
from gridmap.store import engine as storage
from gridmap.store.tables import AccountArea, Area, Case, Generation, StaffArea
from gridmap_api.main import create_app
from gridmap_api.settings import Settings

SEED = 20261125
MAX_EXAMPLES = 15  # generated per operation and role, besides the boundary values of the coverage phase
FUZZ_ROLES = ("admin", "dispatcher", "worker", "planner")
PASSWORD = "fz-password-2026"
BIG = 2**63  # one more than the largest 64-bit integer (issue 12's reproducers)
INT32 = 2**31  # one more than the largest id PostgreSQL's INTEGER id columns hold

# what can revoke the fuzzer's tokens or change its accounts (deactivate, demote, re-scope): after one of these,
# the accounts are put back and get new tokens
SPOILERS = {"POST /api/v1/auth/revoke", "PATCH /api/v1/accounts/{account_id}"}

SCHEMA_APP = create_app(Settings(database_url="sqlite://", gateway_secret=""))
schema = schemathesis.openapi.from_dict(SCHEMA_APP.openapi())


@dataclass
class Fuzz:
    app: object
    client: TestClient  # a second app over the same database, for the regression tests
    sessionmaker: object
    ids: dict
    specs: dict
    real: dict
    s1: str
    point: tuple[float, float]
    case_id: int
    draft_id: int
    leaf: str
    statuses: Counter = field(default_factory=Counter)  # status class → responses, for the summary
    tokens: dict = field(default_factory=dict)

    def headers(self, role: str) -> dict:
        """The role's bearer token; a new one, after putting the account back as it was, when an operation that
        can end tokens or change accounts has been called since (`spoil`)."""
        if role not in self.tokens:
            self.tokens[role] = self._token(role)
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    def spoil(self) -> None:
        self.tokens.clear()

    def _token(self, role: str) -> str:
        spec = self.specs[role]
        with storage.session_scope(self.sessionmaker) as s:
            account = accounts.get_account(s, self.ids[role])
            now = (
                account.role,
                account.active,
                sorted(a.area_code for a in account.areas),
                account.department_code,
                account.staff_id,
            )
            if now != (spec.role, True, sorted(spec.areas), spec.department, spec.staff_id):
                account.role, account.active = spec.role, True
                account.department_code, account.staff_id = spec.department, spec.staff_id
                account.areas = [AccountArea(area_code=c, level=accounts.level_of_code(c)) for c in spec.areas]
            return accounts.issue_token(s, account, "access", dt.timedelta(hours=1))


@pytest.fixture(scope="module")
def fuzz(fresh_db_url):
    settings_ = Settings(
        database_url=fresh_db_url, escalation_interval_s=3600, gateway_secret="", open311_api_keys="fz-open311-key"
    )
    engine = storage.make_engine(fresh_db_url)
    sm = storage.make_sessionmaker(engine)
    with storage.session_scope(sm) as s:
        gen = s.scalar(sa.select(Generation.id).where(Generation.status == "active"))

        def codes(level):
            return list(
                s.scalars(
                    sa.select(Area.code).where(Area.generation_id == gen, Area.level == level).order_by(Area.code)
                )
            )

        s1 = codes("subdistrict")[0]
        staff, grid = s.execute(
            sa.select(StaffArea.staff_id, StaffArea.area_code)
            .where(StaffArea.role == "fulltime_worker")
            .order_by(StaffArea.id)
            .limit(1)
        ).one()
        specs = {
            "admin": accounts.AccountSpec("fz-admin", "admin"),
            "dispatcher": accounts.AccountSpec("fz-dispatcher", "dispatcher", ("530111",)),
            "worker": accounts.AccountSpec("fz-worker", "worker", (grid,), staff_id=staff),
            "planner": accounts.AccountSpec("fz-planner", "planner"),
            "approver": accounts.AccountSpec("fz-approver", "approver"),
        }
        ids = {role: accounts.add_account(s, spec, PASSWORD).id for role, spec in specs.items()}
        target = accounts.add_account(s, accounts.AccountSpec("fz-target", "viewer", (s1,)), PASSWORD).id
        key, _ = accounts.add_api_key(s, "fz-target", ("locate",))
        cases = s.execute(sa.select(Case.id, Case.number).order_by(Case.id).limit(8)).all()
        mine = s.scalar(sa.select(Case.id).where(Case.assignee_id == staff).order_by(Case.id.desc()).limit(1))
        draft = gens.create_draft(s, "fz draft").id
        leaf = s.scalar(
            sa.select(Area.code).where(Area.generation_id == draft, Area.is_leaf.is_(True)).order_by(Area.code).limit(1)
        )
        area_codes = ["530111", s1, codes("community")[0], grid, codes("microgrid")[0]]
    app = create_app(settings_)
    with TestClient(create_app(settings_), raise_server_exceptions=False) as client:
        p = client.app.state.registry.current.leaf_geoms[3].representative_point()
        real = {
            "fmt": ["json", "xml"],
            "level": ["district", "subdistrict", "community", "grid", "microgrid"],
            "code": area_codes,
            "under": area_codes,
            "area": area_codes,
            "parent": area_codes,
            "case_id": [c.id for c in cases] + [mine] * (mine is not None),
            "generation_id": [gen, draft],
            "account_id": [target],
            "key_id": [key.id],
            "day": ["2031-10-08", "2026-10-01"],
            "service_code": ["E0101", "C0101", "S0101"],
            "service_request_id": [c.number for c in cases],
            "action": list(workflow.STEPS),
            "year": [2026],
            "q": [s1, cases[0].number[:6]],
            "crs": ["wgs84", "gcj02"],
            "lon": [p.x],
            "lat": [p.y],
            "long": [p.x],
            "category": ["E0101", "C0101"],
            "api_key": ["fz-open311-key"],
        }
        f = Fuzz(app, client, sm, ids, specs, real, s1, (p.x, p.y), cases[0].id, draft, leaf)
        yield f
    print(
        f"\nfuzzing on {fresh_db_url.split(':')[0]}: {sum(f.statuses.values())} requests, "
        f"{dict(sorted(f.statuses.items()))}"
    )
    asgi.shutdown_lifespans()  # the fuzzed app's, started by schemathesis' transport
    engine.dispose()


def _steer(case, real: dict) -> None:
    """Swap two in three generated values of known parameters (and top-level body fields) for real ones, the
    choice made from the generated value itself."""
    places = [case.path_parameters, case.query]
    if isinstance(case.body, dict):
        places.append(case.body)
    for params in places:
        for name, value in list((params or {}).items()):
            choices = real.get(name)
            if not choices:
                continue
            digest = zlib.crc32(repr(value).encode())
            if digest % 3:
                params[name] = choices[digest % len(choices)]


@schema.parametrize()
@pytest.mark.parametrize("role", FUZZ_ROLES)
@seed(SEED)
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
)
def test_no_input_is_a_server_error(case, role, fuzz):
    _steer(case, fuzz.real)
    response = case.call(app=fuzz.app, headers=fuzz.headers(role))
    if case.operation.label in SPOILERS:
        fuzz.spoil()
    fuzz.statuses[f"{response.status_code // 100}xx"] += 1
    case.validate_response(response, checks=[not_a_server_error])


# -- regression tests ----------------------------------------------------------------------------------------------


def _repro(f: Fuzz) -> list[tuple]:
    """(role, method, url, body, status, field): `body` a dict sent as JSON or a str sent as raw JSON."""
    s1, case, draft, leaf = f.s1, f.case_id, f.draft_id, f.leaf
    lon, lat = f.point
    report = {"title": "路灯不亮", "lon": lon, "lat": lat}
    out = [
        # integers above 2^63
        ("dispatcher", "GET", "/api/v1/cases?offset=1e20", None, 422, "offset"),
        ("dispatcher", "GET", f"/api/v1/cases?offset={BIG}", None, 422, "offset"),
        ("dispatcher", "GET", "/api/v1/cases/1e20", None, 422, "case_id"),
        ("dispatcher", "GET", f"/api/v1/cases/{BIG}", None, 422, "case_id"),
        ("dispatcher", "GET", f"/api/v1/cases/{BIG}/duplicates", None, 422, "case_id"),
        ("dispatcher", "POST", f"/api/v1/cases/{BIG}/actions/file", {"version": 1}, 422, "case_id"),
        (
            "dispatcher",
            "POST",
            f"/api/v1/cases/{case}/actions/dispatch",
            {"version": 1, "assignee_id": BIG},
            422,
            "assignee_id",
        ),
        ("dispatcher", "POST", f"/api/v1/cases/{case}/actions/merge", {"version": 1, "into": 2**64}, 422, "into"),
        ("dispatcher", "POST", f"/api/v1/cases/{case}/actions/file", {"version": BIG}, 422, "version"),
        (
            "dispatcher",
            "POST",
            f"/api/v1/cases/{BIG}/rating",
            {"reporter_token": "x" * 12, "satisfaction": 5},
            422,
            "case_id",
        ),
        ("planner", "POST", "/api/v1/generations", {"name": "x", "source_id": BIG}, 422, "source_id"),
        ("planner", "PUT", f"/api/v1/generations/{BIG}/areas", {"areas": {leaf: {}}}, 422, "generation_id"),
        ("planner", "GET", f"/api/v1/generations/{BIG}/relocated-cases", None, 422, "generation_id"),
        (
            "approver",
            "POST",
            f"/api/v1/generations/{BIG}/activate",
            {"effective_from": "2026-01-01"},
            422,
            "generation_id",
        ),
        ("admin", "PATCH", f"/api/v1/accounts/{BIG}", {"display_name": "x"}, 422, "account_id"),
        ("admin", "DELETE", f"/api/v1/api-keys/{BIG}", None, 422, "key_id"),
        (
            "admin",
            "POST",
            "/api/v1/accounts",
            {"username": "fz-big", "role": "worker", "areas": [s1], "staff_id": BIG, "password": PASSWORD},
            422,
            "staff_id",
        ),
        ("admin", "PATCH", f"/api/v1/accounts/{f.real['account_id'][0]}", {"staff_id": INT32}, 422, "staff_id"),
        ("admin", "PATCH", f"/api/v1/accounts/{f.real['account_id'][0]}", {"staff_id": INT32 - 1}, 422, "staff_id"),
        # ids PostgreSQL's INTEGER columns cannot hold (were a 500 there)
        ("dispatcher", "GET", f"/api/v1/cases/{INT32}", None, 422, "case_id"),
        ("dispatcher", "GET", f"/api/v1/cases/{2**40}/duplicates", None, 422, "case_id"),
        (
            "dispatcher",
            "POST",
            f"/api/v1/cases/{INT32}/rating",
            {"reporter_token": "x" * 12, "satisfaction": 5},
            422,
            "case_id",
        ),
        ("planner", "POST", "/api/v1/generations", {"name": "x", "source_id": INT32}, 422, "source_id"),
        ("planner", "GET", f"/api/v1/generations/{INT32}/relocated-cases", None, 422, "generation_id"),
        ("admin", "DELETE", f"/api/v1/api-keys/{INT32}", None, 422, "key_id"),
        ("dispatcher", "GET", f"/api/v1/cases/{INT32 - 1}", None, 404, "id"),  # the largest id: not found
        # times and days at the ends of the range
        (
            "approver",
            "POST",
            f"/api/v1/generations/{draft}/activate",
            {"effective_from": "0001-01-01"},
            422,
            "effective_from",
        ),
        (
            "approver",
            "POST",
            f"/api/v1/generations/{draft}/activate",
            {"effective_from": "9999-12-31"},
            422,
            "effective_from",
        ),
        ("dispatcher", "GET", f"/api/v1/areas/{s1}/series?until=0001-01-02T00:00:00", None, 422, "until"),
        ("dispatcher", "GET", f"/api/v1/areas/{s1}/series?until=0001-01-01T00:00:00%2B14:00", None, 422, "until"),
        ("dispatcher", "GET", f"/api/v1/areas/{s1}/series?until=9999-12-31T23:59:59-14:00", None, 422, "until"),
        ("dispatcher", "GET", f"/api/v1/locate?lon={lon}&lat={lat}&as_of=0001-01-01", None, 422, "as_of"),
        ("admin", "PUT", "/api/v1/calendar/0001-01-01", {"kind": "holiday", "name": "x"}, 422, "day"),
        ("admin", "PUT", "/api/v1/calendar/9999-12-31", {"kind": "holiday", "name": "x"}, 422, "day"),
        # the bad-input table: numbers that are not finite, swapped or out of range
        ("dispatcher", "POST", "/api/v1/cases", f'{{"title": "t", "lon": {lon}, "lat": NaN}}', 422, "lat"),
        ("dispatcher", "POST", "/api/v1/cases", f'{{"title": "t", "lon": Infinity, "lat": {lat}}}', 422, "lon"),
        (
            "worker",
            "POST",
            "/api/v1/patrol-reports",
            f'{{"title": "t", "lon": {lon}, "lat": -Infinity, "category": "E0101"}}',
            422,
            "lat",
        ),
        ("dispatcher", "POST", "/api/v1/locate/batch", '{"items": [{"lon": NaN, "lat": 25.0}]}', 422, "items.0.lon"),
        ("dispatcher", "GET", f"/api/v1/locate?lon={lon}&lat=inf", None, 422, "lat"),
        ("dispatcher", "GET", f"/api/v1/locate?lon=nan&lat={lat}", None, 422, "lon"),
        ("dispatcher", "POST", "/api/v1/cases", {**report, "lon": lat, "lat": lon}, 422, "lat"),  # swapped
        ("dispatcher", "GET", f"/api/v1/locate?lon={lat}&lat={lon}", None, 422, "lat"),
        ("dispatcher", "POST", "/api/v1/cases", {**report, "lon": 200}, 422, "lon"),
        ("dispatcher", "POST", "/api/v1/cases", {**report, "lat": -95}, 422, "lat"),
        ("dispatcher", "GET", f"/api/v1/locate?lon=200&lat={lat}", None, 422, "lon"),
        ("dispatcher", "POST", "/api/v1/cases", {**report, "lon": 4.5e5, "lat": 2.8e6}, 422, "lat"),  # metres
        ("dispatcher", "GET", "/api/v1/cases?bbox=nan,nan,nan,nan", None, 422, "bbox"),
        # geometries of a redraw
        (
            "planner",
            "PUT",
            f"/api/v1/generations/{draft}/areas",
            {
                "areas": {
                    leaf: {
                        "type": "Polygon",
                        "coordinates": [
                            [[lon, lat], [lon + 0.01, lat + 0.01], [lon + 0.01, lat], [lon, lat + 0.01], [lon, lat]]
                        ],
                    }
                }
            },
            422,
            "geometry",
        ),  # bow-tie
        (
            "planner",
            "PUT",
            f"/api/v1/generations/{draft}/areas",
            {
                "areas": {
                    leaf: {
                        "type": "Polygon",
                        "coordinates": [[[lon, lat], [lon + 0.01, lat + 0.01], [lon + 0.01, lat]]],
                    }
                }
            },
            422,
            "geometry",
        ),  # ring not closed:
        # closed by shapely, then refused for overlapping the leaf's neighbours
        (
            "planner",
            "PUT",
            f"/api/v1/generations/{draft}/areas",
            f'{{"areas": {{"{leaf}": {{"type": "Polygon", "coordinates": [[[NaN, 1], [2, 2], [3, 1], [NaN, 1]]]}}}}}}',
            422,
            f"areas.{leaf}",
        ),  # a NaN vertex
        (
            "planner",
            "PUT",
            f"/api/v1/generations/{draft}/areas",
            {"areas": {leaf: {"type": "Point", "coordinates": [lon, lat]}}},
            422,
            "geometry",
        ),
        # nesting too deep to parse
        ("dispatcher", "POST", "/api/v1/cases", "[" * 100_000 + "]" * 100_000, 400, "body"),
        ("admin", "POST", "/api/v1/categories", '{"a":' * 100_000 + "1" + "}" * 100_000, 400, "body"),
        (
            "planner",
            "PUT",
            f"/api/v1/generations/{draft}/areas",
            '{"areas": {"x": ' + '{"a":' * 50_000 + "1" + "}" * 50_000 + "}}",
            400,
            "body",
        ),
        # unknown sort and filter values
        ("dispatcher", "GET", "/api/v1/cases?order=id;select pg_sleep(5)", None, 422, "order"),
        ("dispatcher", "GET", "/api/v1/cases?state=nonsense", None, 422, "state"),
        ("dispatcher", "GET", "/api/v1/map/cases?state=id;select%201", None, 422, "state"),
        ("dispatcher", "GET", "/api/v1/cases?format=xml", None, 422, "format"),
        ("admin", "GET", "/api/v1/measures?by=id;select%201", None, 422, "by"),
        ("dispatcher", "GET", "/api/v1/measures?by=id;select%201", None, 403, "by"),  # scoped: area units only
        ("admin", "GET", "/api/v1/audit?format=xml", None, 422, "format"),
        # texts, versions and transitions
        ("dispatcher", "POST", "/api/v1/cases", {**report, "reporter_phone": "12ab"}, 422, "reporter_phone"),
        ("dispatcher", "POST", "/api/v1/cases", {**report, "description": "x" * 5000}, 422, "description"),
        ("dispatcher", "POST", f"/api/v1/cases/{case}/actions/file", {}, 428, "version"),
        ("dispatcher", "POST", f"/api/v1/cases/{case}/actions/file", {"version": 10**6}, 409, "version"),
    ]
    for path in (
        "/api/v1/cases",
        "/api/v1/map/cases",
        "/api/v1/measures",
        f"/api/v1/areas/{s1}/measures",
        "/api/v1/audit",
    ):
        role = "admin" if path.endswith("audit") else "dispatcher"
        out += [
            (role, "GET", f"{path}?since=0001-01-01T00:00:00%2B14:00", None, 422, "since"),
            (role, "GET", f"{path}?until=0001-01-02T00:00:00", None, 422, "until"),
            (role, "GET", f"{path}?since=9999-12-31T23:59:59-14:00", None, 422, "since"),
        ]
    return out


def _send(f: Fuzz, role, method, url, body, **headers):
    headers = {**f.headers(role), **headers}
    if isinstance(body, str):
        return f.client.request(method, url, content=body, headers={**headers, "Content-Type": "application/json"})
    return f.client.request(method, url, json=body, headers=headers)


def test_reproducers_and_bad_inputs_are_4xx_naming_the_field(fuzz):
    # a draft of their own, made now: the fuzzer may have submitted, approved or edited the one it was given
    with storage.session_scope(fuzz.sessionmaker) as s:
        fuzz.draft_id = gens.create_draft(s, "fz repro draft").id
        fuzz.leaf = s.scalar(
            sa.select(Area.code)
            .where(Area.generation_id == fuzz.draft_id, Area.is_leaf.is_(True))
            .order_by(Area.code)
            .limit(1)
        )
    wrong = []
    for role, method, url, body, status, named in _repro(fuzz):
        r = _send(fuzz, role, method, url, body)
        problem = r.json() if r.headers.get("content-type", "").startswith("application/problem+json") else {}
        if r.status_code != status or problem.get("field") != named:
            wrong.append(f"{role} {method} {url[:90]} {str(body)[:60]}: {r.status_code} {r.text[:160]}")
    assert not wrong, "\n".join(wrong)


def test_a_stale_if_match_is_412_and_reusing_an_idempotency_key_is_422(fuzz):
    r = _send(fuzz, "dispatcher", "POST", f"/api/v1/cases/{fuzz.case_id}/actions/file", {}, **{"If-Match": f'"{BIG}"'})
    assert r.status_code == 422 and r.json()["field"] == "If-Match"
    r = _send(fuzz, "dispatcher", "POST", f"/api/v1/cases/{fuzz.case_id}/actions/file", {}, **{"If-Match": '"999999"'})
    assert r.status_code == 412 and r.json()["field"] == "If-Match"
    report = {"title": "井盖缺失", "lon": fuzz.point[0], "lat": fuzz.point[1]}
    key = {"Idempotency-Key": f"fz-{zlib.crc32(fuzz.client.app.state.settings.database_url.encode())}"}
    assert _send(fuzz, "dispatcher", "POST", "/api/v1/cases", report, **key).status_code in (200, 201)
    r = _send(fuzz, "dispatcher", "POST", "/api/v1/cases", {**report, "title": "另一件事"}, **key)
    assert r.status_code == 422 and r.json()["field"] == "Idempotency-Key"


def test_unknown_query_keys_are_ignored_not_a_server_error(fuzz):
    """Keys no operation declares are ignored (the answer is the one without them); `sort`, a declared key since the
    dispatcher's queues, refuses an injection as a value it does not accept, naming the field."""
    plain = _send(fuzz, "dispatcher", "GET", "/api/v1/cases?limit=5", None)
    for extra in ("sort_by=id;select%20pg_sleep(5)", "filter[state]=x", "foo=bar"):
        r = _send(fuzz, "dispatcher", "GET", f"/api/v1/cases?limit=5&{extra}", None)
        assert r.status_code == 200 and r.json() == plain.json(), extra
    r = _send(fuzz, "dispatcher", "GET", "/api/v1/cases?limit=5&sort=id;select%20pg_sleep(5)", None)
    assert r.status_code == 422 and r.json()["field"] == "sort", r.text


def test_a_gateways_staff_id_out_of_range_is_422(fuzz):
    """X-Staff-Id from a trusted gateway is compared with INTEGER columns: above 2^31-1 (was a 500 on PostGIS), or
    not ASCII digits, it is refused naming the header."""
    settings_ = fuzz.client.app.state.settings.model_copy(update={"gateway_secret": "fz-gateway"})
    gateway = {"X-Gateway-Secret": "fz-gateway", "X-User": "w1", "X-Role": "worker", "X-Areas": fuzz.s1}
    with TestClient(create_app(settings_), raise_server_exceptions=False) as client:
        for staff in (str(INT32), str(2**40), str(BIG), "\u00b2", "\u0661", "12a"):  # ² and ١ are digits to str
            r = client.get("/api/v1/cases", headers={**gateway, "X-Staff-Id": staff.encode("utf-8")})
            assert r.status_code == 422 and r.json()["field"] == "X-Staff-Id", (staff, r.text)
        assert client.get("/api/v1/cases", headers={**gateway, "X-Staff-Id": str(INT32 - 1)}).status_code == 200
