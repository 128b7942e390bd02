"""Problem details in the caller's language, on both databases (issue 14 §7): for every kind of error the answer
without Accept-Language and with `zh-CN` is Chinese (title and detail, no English words apart from field names,
codes and the values sent), with `en-US,en;q=0.9` English (no Chinese); `field` and `code` are the same in both.
Also: validation errors item by item, Vary: Accept-Language, and Chinese exports without English words."""

from __future__ import annotations

import csv
import io
import re

import openpyxl
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from gridmap.store import engine as storage
from gridmap_api.main import create_app
from gridmap_api.ratelimit import RateLimiter
from gridmap_api.settings import Settings
from tests.conftest import GATEWAY_SECRET, _new_postgis_database

ZH_CN, EN_US = "zh-CN", "en-US,en;q=0.9"
LANGUAGES = [None, ZH_CN, EN_US]  # None: no Accept-Language header at all
CJK = re.compile(r"[\u4e00-\u9fff]")
WORD = re.compile(r"[A-Za-z][A-Za-z0-9_\-]*[A-Za-z0-9]")
# technical names a Chinese sentence may hold as they are (formats, standards, header names)
TECHNICAL = {
    "JSON",
    "API",
    "CSRF",
    "UUID",
    "EPSG",
    "WGS84",
    "GeoJSON",
    "CSV",
    "XLSX",
    "MB",
    "Bearer",
    "ApiKey",
    "Authorization",
    "Content-Type",
    "Content-Length",
    "If-Match",
    "X-API-Key",
    "Idempotency-Key",
}
STAFF = {"X-Gateway-Secret": GATEWAY_SECRET, "X-User": "i18n-tester", "X-Role": "admin"}
DISPATCHER = {"X-Role": "dispatcher", "X-Areas": "530111", "X-User": "i18n-dispatcher"}


def english_words(text: str, allowed: set[str]) -> list[str]:
    """Words in Latin letters that are neither a value of the request, nor a field, code or technical name (nor
    a command in backquotes)."""
    text = re.sub(r"`[^`]*`", "", text)
    return [w for w in WORD.findall(text) if w not in TECHNICAL and not any(w in a for a in allowed)]


def headers(lang: str | None, extra: dict | None = None) -> dict:
    return {**({"Accept-Language": lang} if lang else {}), **(extra or {})}


@pytest.fixture(scope="module")
def app(db_url):
    settings = Settings(
        database_url=db_url, escalation_interval_s=3600, gateway_secret=GATEWAY_SECRET, max_body_bytes=64 * 1024
    )
    with TestClient(create_app(settings)) as client:  # no Accept-Language of its own
        yield client


@pytest.fixture(scope="module")
def case(app):
    r = app.get("/api/v1/cases", params={"limit": 1}, headers=headers(EN_US, {**STAFF, **DISPATCHER}))
    assert r.status_code == 200, r.text
    return r.json()["items"][0]


def _kinds(case: dict) -> dict:
    """kind → (status, a request as (method, path, keyword arguments), values of the request that may show)."""
    act = f"/api/v1/cases/{case['id']}/actions/file"
    staff = {**STAFF, **DISPATCHER}
    return {
        "400 malformed JSON": (
            400,
            (
                "post",
                "/api/v1/cases",
                {"content": b'{"title": ', "headers": {**STAFF, "Content-Type": "application/json"}},
            ),
            set(),
        ),
        "401 bad token": (
            401,
            ("get", "/api/v1/accounts", {"headers": {"Authorization": "Bearer not-a-token"}}),
            set(),
        ),
        "403 role": (403, ("get", "/api/v1/accounts", {"headers": staff}), {"dispatcher"}),
        "404 no such case": (404, ("get", "/api/v1/cases/999999999", {"headers": STAFF}), set()),
        "404 no such route": (404, ("get", "/api/v1/no-such-route", {"headers": STAFF}), set()),
        "405 method": (405, ("delete", "/api/v1/categories", {"headers": STAFF}), set()),
        "409 stale version": (
            409,
            ("post", act, {"headers": staff, "json": {"version": case["version"] + 100}}),
            set(),
        ),
        "412 If-Match": (
            412,
            ("post", act, {"headers": {**staff, "If-Match": f'"{case["version"] + 100}"'}, "json": {}}),
            set(),
        ),
        "413 body": (
            413,
            (
                "post",
                "/api/v1/cases",
                {"content": b"x" * (65 * 1024), "headers": {**STAFF, "Content-Type": "application/json"}},
            ),
            set(),
        ),
        "422 domain": (
            422,
            (
                "get",
                "/api/v1/locate",
                {"headers": STAFF, "params": {"lon": "102.75", "lat": "25.0", "crs": "EPSG:999999"}},
            ),
            {"EPSG:999999", "wgs84 cgcs2000 gcj02 bd09"},
        ),
        "422 validation": (
            422,
            (
                "post",
                "/api/v1/accounts",
                {"headers": STAFF, "json": {"username": "x", "role": "dispatcher", "password": "short", "surprise": 1}},
            ),
            {"dispatcher"},
        ),
        "428 no version": (428, ("post", act, {"headers": staff, "json": {}}), set()),
    }


def _answer(client, request, lang):
    method, path, kwargs = request
    kwargs = dict(kwargs)
    kwargs["headers"] = headers(lang, kwargs.get("headers"))
    return getattr(client, method)(path, **kwargs)


def check(answers: dict, status: int, values: set[str]) -> None:
    """The three answers to one request: Chinese twice, English once; the same status, field and code."""
    bodies = {}
    for lang, r in answers.items():
        assert r.status_code == status, (lang, r.text)
        assert r.headers["content-type"].startswith("application/problem+json"), (lang, r.headers)
        assert "accept-language" in r.headers.get("vary", "").lower(), (lang, r.headers)
        bodies[lang] = body = r.json()
        assert body["status"] == status
        allowed = {
            str(body.get("field") or ""),
            str(body.get("code") or ""),
            *values,
            *(e["field"] for e in body.get("errors", ())),
        }
        text = f"{body['title']} {body['detail']}"
        if lang == EN_US:
            assert not CJK.search(text), body
            assert WORD.search(body["detail"]), body
        else:
            assert CJK.search(body["title"]) and CJK.search(body["detail"]), body
            assert not english_words(text, allowed), (english_words(text, allowed), body)
    zh, none, en = bodies[ZH_CN], bodies[None], bodies[EN_US]
    assert zh == none, (zh, none)
    assert zh.get("field") == en.get("field") and zh.get("code") == en.get("code"), (zh, en)
    assert zh["detail"] != en["detail"] and zh["title"] != en["title"]


@pytest.mark.parametrize("kind", list(_kinds({"id": 0, "version": 0})))
def test_every_error_kind_answers_in_chinese_or_english(app, case, kind):
    status, request, values = _kinds(case)[kind]
    check({lang: _answer(app, request, lang) for lang in LANGUAGES}, status, values)


def test_validation_errors_are_listed_in_the_callers_language(app):
    body = {"username": "x", "role": "dispatcher", "password": "short", "surprise": 1}
    zh = app.post("/api/v1/accounts", json=body, headers=headers(ZH_CN, STAFF)).json()
    en = app.post("/api/v1/accounts", json=body, headers=headers(EN_US, STAFF)).json()
    by_field = {e["field"]: e for e in zh["errors"]}
    assert set(by_field) == {e["field"] for e in en["errors"]} == {"username", "password", "surprise"}
    assert [e["type"] for e in zh["errors"]] == [e["type"] for e in en["errors"]]
    assert by_field["username"]["message"] == "「用户名」至少 2 个字符。"
    assert by_field["password"]["message"].startswith("「密码」至少 ") and "个字符" in by_field["password"]["message"]
    assert by_field["surprise"]["message"] == "不接受字段「surprise」，请删除该字段。"
    assert zh["field"] == en["field"] == zh["errors"][0]["field"]
    assert all(not CJK.search(e["message"]) for e in en["errors"])
    # a number out of range names the bound, a literal lists what is accepted
    r = app.get("/api/v1/measures", params={"format": "pdf"}, headers=headers(None, STAFF)).json()
    assert (
        r["field"] == "format" and r["errors"][0]["message"] == "「格式」的值不被接受，可选：'json'、'csv' 或 'xlsx'。"
    ), r
    r = app.get("/api/v1/cases", params={"limit": 0}, headers=headers(None, {**STAFF, **DISPATCHER})).json()
    assert r["field"] == "limit" and "「每页条数」应大于或等于 1" in r["detail"], r


def test_q_values_choose_the_language(app):
    def lang_of(header):
        r = app.get("/api/v1/cases/999999999", headers=headers(header, STAFF))
        return "zh" if CJK.search(r.json()["detail"]) else "en"

    assert lang_of("en;q=0.5, zh;q=0.9") == "zh"
    assert lang_of("zh;q=0.4, en;q=0.8") == "en"
    assert lang_of("fr-FR, en;q=0.1") == "en"
    assert lang_of("fr-FR") == "zh"  # neither: the default
    assert lang_of("zh;q=0, en") == "en"
    assert lang_of(";;;q==") == "zh"  # unparseable: the default
    assert lang_of("EN") == "en"


def test_rate_limited_answers_in_both_languages(db_url):
    settings = Settings(database_url=db_url, escalation_interval_s=3600, rate_anonymous_intake="1/3600")
    app = create_app(settings)
    app.state.rate_limiter = RateLimiter.from_settings(settings, clock=lambda: 1000.0)  # time stands still
    report = {"title": "路灯不亮", "lon": 102.75, "lat": 25.0}
    with TestClient(app) as anonymous:  # no credentials: the anonymous budget of one report
        first = anonymous.post("/api/v1/cases", json=report)
        assert first.status_code == 201, first.text
        check(
            {lang: anonymous.post("/api/v1/cases", json=report, headers=headers(lang)) for lang in LANGUAGES},
            429,
            set(),
        )


def test_database_not_ready_is_503_in_both_languages(db_url, tmp_path):
    if db_url.startswith("sqlite"):
        url, drop = f"sqlite:///{tmp_path / 'empty.sqlite'}", (lambda: None)
    else:
        url, drop = _new_postgis_database()
    try:
        engine = storage.make_engine(url)
        storage.migrate(engine)  # the schema, no boundaries
        engine.dispose()
        settings = Settings(database_url=url, escalation_interval_s=3600, gateway_secret=GATEWAY_SECRET)
        with TestClient(create_app(settings)) as empty:
            check(
                {
                    lang: empty.get("/api/v1/locate", params={"lon": 102.75, "lat": 25.0}, headers=headers(lang, STAFF))
                    for lang in LANGUAGES
                },
                503,
                set(),
            )
    finally:
        drop()


# -- exports -------------------------------------------------------------------------------------------------------

LETTERS = re.compile(r"[A-Za-z]")


def test_a_chinese_measures_export_has_no_english_in_headings_or_unit_names(app):
    params = {"by": "grid", "since": "2025-11-20T00:00:00+08:00", "until": "2026-11-20T00:00:00+08:00"}
    r = app.get("/api/v1/measures", params={**params, "format": "csv"}, headers=headers(None, STAFF))
    assert r.status_code == 200, r.text
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert not [h for h in rows[0] if LETTERS.search(h)], rows[0]
    unit = rows[0].index("单位类型")
    assert {row[unit] for row in rows[1:]} == {"网格", "合计"}
    r = app.get("/api/v1/measures", params={**params, "format": "xlsx"}, headers=headers(None, STAFF))
    sheet = openpyxl.load_workbook(io.BytesIO(r.content)).active
    table = list(sheet.iter_rows(values_only=True))
    assert not [h for h in table[0] if LETTERS.search(str(h))], table[0]
    assert {row[0] for row in table[1:]} == {"网格", "合计"}
    # in English, English throughout
    r = app.get("/api/v1/measures", params={**params, "format": "csv", "lang": "en"}, headers=headers(None, STAFF))
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert not CJK.search(",".join(rows[0])) and {row[0] for row in rows[1:]} == {"grid", "total"}
    assert rows[-1][2] == "total"


def test_a_chinese_case_export_has_no_english_in_headings_or_enumerated_columns(app):
    r = app.get("/api/v1/exports/cases", params={"area": "530111", "limit": 500}, headers=headers(None, STAFF))
    assert r.status_code == 200, r.text
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert rows and not [h for h in rows[0] if LETTERS.search(h)], list(rows[0])
    for column in ("状态", "来源", "类别", "街道", "社区", "网格", "承办"):
        values = {row[column] for row in rows if row[column]}
        assert not [v for v in values if LETTERS.search(v)], (column, values)


def test_staff_roles_have_english_names_for_english_pages(app, db_url):
    engine = storage.make_engine(db_url)
    with engine.connect() as conn:
        code = conn.execute(sa.text("SELECT area_code FROM staff_area LIMIT 1")).scalar()
    engine.dispose()
    r = app.get(f"/api/v1/areas/{code}", headers=headers(EN_US, STAFF))
    assert r.status_code == 200, r.text
    staff = r.json().get("staff") or r.json().get("properties", {}).get("staff")
    assert staff, r.json()
    for person in staff:
        assert person["role_en"] and person["role_en"] != person["role"] and not CJK.search(person["role_en"])
