"""Open311 GeoReport v2 conformance, written from the spec (wiki.open311.org/GeoReport_v2): every method in both
formats, the argument rules (optional = empty, location alternatives, attributes, 90-day/1,000 window) and every
error case with its status and the spec's error list. On both databases."""

from __future__ import annotations

import datetime as dt
import uuid
from xml.etree import ElementTree as ET

import pytest
import sqlalchemy as sa

from gridmap.locating.gazetteer import Gazetteer
from gridmap.store.tables import Case, CaseCategory
from tests.helpers import inside

KEY = "test-key-311"
FORMATS = ["xml", "json"]


APP_SETTINGS = {"open311_api_keys": f"{KEY},other-key", "escalation_interval_s": 3600}  # the module's `client`


def parse(response, fmt):
    """The body as Python data: JSON as is; XML as nested dicts/lists (lists where the spec has containers)."""
    if fmt == "json":
        assert response.headers["content-type"] == "application/json; charset=utf-8"
        return response.json()
    assert response.headers["content-type"] == "text/xml; charset=utf-8"
    assert response.content.startswith(b"<?xml version='1.0' encoding='utf-8'?>")
    return _xml(ET.fromstring(response.content))


CONTAINERS = {"services", "attributes", "values", "service_requests", "errors", "endpoints", "formats"}


def _xml(node):
    if node.tag in CONTAINERS:
        return [_xml(child) for child in node]
    if len(node):
        return {child.tag: _xml(child) for child in node}
    return node.text


def errors_of(response, fmt, status):
    assert response.status_code == status, response.text
    body = parse(response, fmt)
    assert isinstance(body, list) and body and {"code", "description"} <= set(body[0])
    assert str(body[0]["code"]) == str(status) and body[0]["description"]
    return body[0]["description"]


def _count(client):
    with client.app.state.sessionmaker() as s:
        return s.scalar(sa.select(sa.func.count()).select_from(Case))


@pytest.mark.parametrize("fmt", FORMATS)
def test_discovery(client, fmt):
    body = parse(client.get(f"/open311/v2/discovery.{fmt}"), fmt)
    endpoint = body["endpoints"][0]
    assert endpoint["specification"] == "http://wiki.open311.org/GeoReport_v2"
    assert endpoint["url"].endswith("/open311/v2") and endpoint["type"] == "production"
    assert set(endpoint["formats"]) == {"text/xml", "application/json"} and body["changeset"].endswith("Z")


@pytest.mark.parametrize("fmt", FORMATS)
def test_service_list(client, fmt):
    body = parse(client.get(f"/open311/v2/services.{fmt}"), fmt)
    with client.app.state.sessionmaker() as s:
        codes = sorted(s.scalars(sa.select(CaseCategory.code)))
    assert [svc["service_code"] for svc in body] == codes and len(codes) >= 60
    manhole = next(svc for svc in body if svc["service_code"] == "C0101")
    assert manhole["service_name"] == "井盖缺失" and manhole["group"] == "公用设施" and manhole["type"] == "realtime"
    assert str(manhole["metadata"]).lower() == "true" and manhole["description"] and "部件" in manhole["keywords"]
    garbage = next(svc for svc in body if svc["service_code"] == "E0101")
    assert str(garbage["metadata"]).lower() == "false"
    same = parse(client.get(f"/open311/v2/services.{fmt}", params={"jurisdiction_id": ""}), fmt)  # empty = absent
    assert same == body
    assert parse(client.get(f"/open311/v2/services.{fmt}", params={"jurisdiction_id": "530111"}), fmt) == body
    errors_of(client.get(f"/open311/v2/services.{fmt}", params={"jurisdiction_id": "sfgov.org"}), fmt, 404)


@pytest.mark.parametrize("fmt", FORMATS)
def test_service_definition(client, fmt):
    component = parse(client.get(f"/open311/v2/services/C0101.{fmt}"), fmt)
    assert component["service_code"] == "C0101"
    (asset,) = component["attributes"]
    assert asset["code"] == "asset_id" and asset["datatype"] == "string" and str(asset["required"]).lower() == "false"
    service = parse(client.get(f"/open311/v2/services/S0101.{fmt}"), fmt)
    (visit,) = service["attributes"]
    assert visit["datatype"] == "singlevaluelist" and str(visit["required"]).lower() == "true"
    assert [v["key"] for v in visit["values"]] == ["morning", "afternoon", "evening"] and str(visit["order"]) == "1"
    assert "NOPE" in errors_of(client.get(f"/open311/v2/services/NOPE.{fmt}"), fmt, 404)
    errors_of(client.get(f"/open311/v2/services/C0101.{fmt}", params={"jurisdiction_id": "x.org"}), fmt, 404)


def _post(client, fmt, form, headers=None):
    return client.post(
        f"/open311/v2/requests.{fmt}",
        content="&".join(f"{k}={v}" for k, v in form.items()),
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8", **(headers or {})},
    )


@pytest.mark.parametrize("fmt", FORMATS)
def test_post_request_and_read_it_back(client, fmt):
    lon, lat = inside(client, 11)
    created = _post(
        client,
        fmt,
        {
            "api_key": KEY,
            "jurisdiction_id": "530111",
            "service_code": "E0101",
            "lat": lat,
            "long": lon,
            "description": "小区门口垃圾堆积",
            "first_name": "伟",
            "last_name": "张",
            "phone": "138-1234-1234",
            "email": "",
            "account_id": "acc-9",
        },
    )
    assert created.status_code == 200, created.text
    (receipt,) = parse(created, fmt)
    rid = receipt["service_request_id"]
    assert rid and receipt["service_notice"] and receipt["account_id"] == "acc-9" and "token" not in receipt
    (request,) = parse(client.get(f"/open311/v2/requests/{rid}.{fmt}"), fmt)
    assert request["service_request_id"] == rid and request["status"] == "open"
    assert request["service_code"] == "E0101" and request["service_name"] == "暴露垃圾"
    assert request["requested_datetime"].endswith("Z") and request["updated_datetime"].endswith("Z")
    assert float(request["lat"]) == pytest.approx(lat) and float(request["long"]) == pytest.approx(lon)
    assert request["agency_responsible"] and request["extended_attributes"]["grid_code"]
    assert request["extended_attributes"]["stage"] == "dispatched"
    with client.app.state.sessionmaker() as s:
        case = s.scalars(sa.select(Case).where(Case.number == rid)).one()
        assert case.source == "open311" and case.reporter_phone == "13812341234" and case.reporter_name == "张 伟"


def test_post_by_address_string_and_with_attributes(client, engine):
    with client.app.state.sessionmaker() as s:
        compound = next(e for e in Gazetteer.from_session(s).entries if e.kind == "compound")
    created = _post(
        client,
        "json",
        {
            "api_key": KEY,
            "service_code": "S0101",
            "address_string": compound.place["name"],
            "attribute[visit_time]": "evening",
            "description": "邻里噪声纠纷",
        },
    )
    assert created.status_code == 200, created.text
    rid = created.json()[0]["service_request_id"]
    request = client.get(f"/open311/v2/requests/{rid}.json").json()[0]
    assert request["address"] == compound.place["name"] and "visit_time: evening" in request["description"]
    asset = _post(
        client,
        "json",
        {
            "api_key": "other-key",
            "service_code": "C0101",
            "lat": inside(client, 11)[1],
            "long": inside(client, 11)[0],
            "attribute[asset_id]": "WS-0921",
        },
    )
    assert asset.status_code == 200


def test_a_retried_post_with_an_idempotency_key_makes_one_request(client):
    lon, lat = inside(client, 12)
    form = {"api_key": KEY, "service_code": "C0201", "lat": lat, "long": lon}
    key = {"Idempotency-Key": str(uuid.uuid4())}
    first, again = _post(client, "json", form, key), _post(client, "json", form, key)
    assert first.json()[0]["service_request_id"] == again.json()[0]["service_request_id"]


BAD_POSTS = [
    ("no_api_key", {"service_code": "E0101", "lat": "LAT", "long": "LON"}, 403),
    ("wrong_api_key", {"api_key": "guess", "service_code": "E0101", "lat": "LAT", "long": "LON"}, 403),
    ("empty_api_key", {"api_key": "", "service_code": "E0101", "lat": "LAT", "long": "LON"}, 403),
    (
        "other_jurisdiction",
        {"api_key": KEY, "jurisdiction_id": "sfgov.org", "service_code": "E0101", "lat": "LAT", "long": "LON"},
        404,
    ),
    ("no_service_code", {"api_key": KEY, "lat": "LAT", "long": "LON"}, 400),
    ("unknown_service_code", {"api_key": KEY, "service_code": "X999", "lat": "LAT", "long": "LON"}, 404),
    ("no_location", {"api_key": KEY, "service_code": "E0101"}, 400),
    ("lat_without_long", {"api_key": KEY, "service_code": "E0101", "lat": "LAT"}, 400),
    ("lat_not_a_number", {"api_key": KEY, "service_code": "E0101", "lat": "north", "long": "LON"}, 400),
    ("lat_nan", {"api_key": KEY, "service_code": "E0101", "lat": "nan", "long": "LON"}, 400),
    ("lat_out_of_range", {"api_key": KEY, "service_code": "E0101", "lat": "95", "long": "LON"}, 400),
    ("far_outside", {"api_key": KEY, "service_code": "E0101", "lat": "40.0", "long": "-74.0"}, 400),
    ("address_id_only", {"api_key": KEY, "service_code": "E0101", "address_id": "545483"}, 400),
    ("address_not_found", {"api_key": KEY, "service_code": "E0101", "address_string": "火星基地一号"}, 400),
    ("required_attribute_missing", {"api_key": KEY, "service_code": "S0101", "lat": "LAT", "long": "LON"}, 400),
    (
        "attribute_not_in_list",
        {"api_key": KEY, "service_code": "S0101", "lat": "LAT", "long": "LON", "attribute[visit_time]": "midnight"},
        400,
    ),
    (
        "description_too_long",
        {"api_key": KEY, "service_code": "E0101", "lat": "LAT", "long": "LON", "description": "长" * 4001},
        400,
    ),
    ("phone_not_a_phone", {"api_key": KEY, "service_code": "E0101", "lat": "LAT", "long": "LON", "phone": "12"}, 400),
]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name,form,status", BAD_POSTS, ids=[b[0] for b in BAD_POSTS])
def test_bad_posts_get_the_spec_error_and_store_nothing(client, fmt, name, form, status):
    lon, lat = inside(client, 11)
    form = {k: (lat if v == "LAT" else lon if v == "LON" else v) for k, v in form.items()}
    before = _count(client)
    errors_of(_post(client, fmt, form), fmt, status)
    assert _count(client) == before


def test_a_body_that_is_not_utf8_is_a_400(client):
    response = client.post(
        "/open311/v2/requests.json",
        content=b"api_key=\xff\xfe",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    errors_of(response, "json", 400)


@pytest.mark.parametrize("fmt", FORMATS)
def test_get_requests_default_window_filters_and_limits(client, fmt):
    now = dt.datetime.now(dt.UTC)
    body = parse(client.get(f"/open311/v2/requests.{fmt}"), fmt)
    assert 0 < len(body) <= 1000
    times = [dt.datetime.fromisoformat(r["requested_datetime"].replace("Z", "+00:00")) for r in body]
    assert times == sorted(times, reverse=True) and min(times) >= now - dt.timedelta(days=90, minutes=1)
    closed = parse(client.get(f"/open311/v2/requests.{fmt}", params={"status": "closed"}), fmt)
    assert closed and all(r["status"] == "closed" for r in closed)
    both = parse(client.get(f"/open311/v2/requests.{fmt}", params={"status": "open,closed"}), fmt)
    assert len(both) == len(body)
    codes = parse(client.get(f"/open311/v2/requests.{fmt}", params={"service_code": "E0101,E0401"}), fmt)
    assert codes and {r["service_code"] for r in codes} <= {"E0101", "E0401"}
    start = (now - dt.timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    end = (now - dt.timedelta(days=20)).strftime("%Y-%m-%dT%H:%M:%SZ")
    ranged = parse(client.get(f"/open311/v2/requests.{fmt}", params={"start_date": start, "end_date": end}), fmt)
    assert ranged and all(start <= r["requested_datetime"] <= end for r in ranged)
    ids = ",".join(r["service_request_id"] for r in ranged[:3])
    picked = parse(
        client.get(
            f"/open311/v2/requests.{fmt}",
            params={"service_request_id": ids, "status": "bogus", "start_date": "garbage"},
        ),
        fmt,
    )
    assert sorted(r["service_request_id"] for r in picked) == sorted(ids.split(","))  # overrides the rest


BAD_QUERIES = [
    ("span_over_90_days", {"start_date": "2026-01-01T00:00:00Z", "end_date": "2026-06-01T00:00:00Z"}),
    ("end_before_start", {"start_date": "2026-06-01T00:00:00Z", "end_date": "2026-05-01T00:00:00Z"}),
    ("not_a_date", {"start_date": "last tuesday"}),
    ("no_time_zone", {"start_date": "2026-06-01T00:00:00"}),
    ("bad_status", {"status": "pending"}),
]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name,params", BAD_QUERIES, ids=[b[0] for b in BAD_QUERIES])
def test_bad_queries(client, fmt, name, params):
    errors_of(client.get(f"/open311/v2/requests.{fmt}", params=params), fmt, 400)


@pytest.mark.parametrize("fmt", FORMATS)
def test_unknown_things_are_404_in_the_spec_format(client, fmt):
    errors_of(client.get(f"/open311/v2/requests/NO-SUCH-ID.{fmt}"), fmt, 404)
    errors_of(client.get(f"/open311/v2/tokens/123.{fmt}"), fmt, 404)
    errors_of(client.get(f"/open311/v2/requests.{fmt}", params={"jurisdiction_id": "nyc.gov"}), fmt, 404)


def test_an_unknown_format_is_a_400_in_xml(client):
    response = client.get("/open311/v2/services.html")
    assert response.status_code == 400 and response.headers["content-type"].startswith("text/xml")
    # the spec's error list, saying which format was asked and which ones there are
    description = errors_of(response, "xml", 400)
    assert "'html'" in description and ".xml" in description and ".json" in description, description
