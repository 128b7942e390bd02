"""A reporter's name and phone: stored in full, masked in lists, maps, exports and logs, shown in full on one case
only to the roles that need them — and every such view is audited without the data (both databases)."""

from __future__ import annotations

import csv
import io
import logging

import pytest
import sqlalchemy as sa

from gridmap.store.tables import Case
from tests.helpers import inside

PHONE, NAME = "13987654321", "欧阳娜娜"


APP_SETTINGS = {"escalation_interval_s": 3600}  # the module's `client` (tests/conftest.py)
CLIENT_ROLE = "manager"


@pytest.fixture()
def reported(client, caplog):
    caplog.set_level(logging.DEBUG)
    lon, lat = inside(client, 7)
    r = client.post(
        "/api/v1/cases",
        json={
            "title": "噪声扰民",
            "lon": lon,
            "lat": lat,
            "category": "E0106",
            "reporter_name": NAME,
            "reporter_phone": PHONE,
        },
    )
    assert r.status_code == 201
    return r.json()


def _view(client, case, **headers):
    return client.get(f"/api/v1/cases/{case['id']}", headers=headers).json()


def test_stored_in_full_masked_by_default(client, reported):
    with client.app.state.sessionmaker() as s:
        row = s.get(Case, reported["id"])
        assert (row.reporter_name, row.reporter_phone) == (NAME, PHONE)
    assert (reported["reporter_name"], reported["reporter_phone"]) == ("欧***", "139****4321")
    anonymous = _view(client, reported)  # a grid manager: no right to the contact
    assert (anonymous["reporter_name"], anonymous["reporter_phone"]) == ("欧***", "139****4321")


@pytest.mark.parametrize(
    ("headers", "full"),
    [
        ({"X-User": "d1", "X-Role": "dispatcher"}, True),
        ({"X-User": "a1", "X-Role": "admin"}, True),
        ({"X-User": "v1", "X-Role": "verifier"}, True),
        ({"X-User": "w1", "X-Role": "worker", "X-Staff-Id": "ASSIGNEE"}, True),
        ({"X-User": "w2", "X-Role": "worker", "X-Staff-Id": "OTHER"}, False),
        ({"X-User": "w3", "X-Role": "worker"}, False),
        ({"X-User": "r1", "X-Role": "viewer"}, False),
        ({"X-User": "l1", "X-Role": "leader"}, False),
        ({"X-User": "m1", "X-Role": "manager"}, False),
        ({"X-User": "x", "X-Role": "department", "X-Department": "CG"}, False),  # not with a department
    ],
)
def test_shown_in_full_only_where_the_role_allows(client, reported, headers, full, caplog):
    headers = {
        k: (
            str(reported["assignee_id"]) if v == "ASSIGNEE" else str(reported["assignee_id"] + 1) if v == "OTHER" else v
        )
        for k, v in headers.items()
    }
    view = _view(client, reported, **headers)
    assert (view["reporter_phone"] == PHONE) is full and (view["reporter_name"] == NAME) is full
    if not full:
        assert view["reporter_phone"] == "139****4321"
    audit = [r for r in caplog.records if r.name == "gridmap.store.audit"]
    assert len(audit) == (1 if full else 0)
    if full:
        assert reported["number"] in audit[0].getMessage() and headers["X-User"] in audit[0].getMessage()


def test_the_department_a_case_is_with_sees_the_contact(client):
    lon, lat = inside(client, 8)
    case = client.post(
        "/api/v1/cases",
        json={
            "title": "井盖缺失",
            "lon": lon,
            "lat": lat,
            "category": "C0101",
            "reporter_name": NAME,
            "reporter_phone": PHONE,
        },
    ).json()
    with client.app.state.sessionmaker() as s:
        code = s.scalar(sa.text("SELECT code FROM department WHERE id = :i"), {"i": case["department_id"]})
    assert (
        _view(client, case, **{"X-User": "x", "X-Role": "department", "X-Department": code})["reporter_phone"] == PHONE
    )
    other = "CG" if code != "CG" else "SW"
    assert (
        _view(client, case, **{"X-User": "x", "X-Role": "department", "X-Department": other})["reporter_phone"]
        == "139****4321"
    )


def test_lists_maps_and_exports_never_show_it(client, reported):
    dispatcher = {"X-User": "d1", "X-Role": "dispatcher"}
    listing = client.get("/api/v1/cases", params={"area": reported["grid_code"], "limit": 500}, headers=dispatcher)
    texts = [
        listing.text,
        client.get(
            "/api/v1/cases", params={"area": reported["grid_code"], "format": "geojson"}, headers=dispatcher
        ).text,
        client.get(f"/open311/v2/requests/{reported['number']}.json").text,
        client.get("/api/v1/measures", params={"by": "grid", "format": "csv"}).content.decode("utf-8-sig"),
    ]
    assert any(item["id"] == reported["id"] for item in listing.json()["items"])
    for text in texts:
        assert PHONE not in text and NAME not in text


def test_logs_never_hold_it(client, caplog):
    caplog.set_level(logging.DEBUG)
    lon, lat = inside(client, 9)
    client.post("/api/v1/cases", json={"title": "t", "lon": lon, "lat": lat, "reporter_phone": "1398765432x"})
    bad_phone = io.StringIO()
    csv.writer(bad_phone).writerows(
        [["工单编号", "来电时间", "联系电话", "事发地址"], ["PD-1", "2026-11-18 10:00", PHONE + "99999", "东风街363号"]]
    )
    r = client.post(
        "/api/v1/imports/hotline",
        content=bad_phone.getvalue().encode(),
        headers={"X-User": "d1", "X-Role": "dispatcher", "Content-Type": "text/csv"},
    )
    assert r.json()["invalid"] == 1 and PHONE not in r.text  # the report does not repeat the bad number
    case = client.post("/api/v1/cases", json={"title": "t", "lon": lon, "lat": lat, "reporter_phone": PHONE}).json()
    _view(client, case, **{"X-User": "d1", "X-Role": "dispatcher"})
    assert caplog.records and all(PHONE not in r.getMessage() for r in caplog.records)
