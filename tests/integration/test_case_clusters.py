"""Server-side clusters of case points (GET /api/v1/map/cases/clusters, issue 14 §6), on both databases: the counts
add up to the case list's total for the same filters and box, each cluster is its cases grouped by hand, a cluster's
worst state and deadline are those of its cases, a caller of another sub-district sees none of the first's cases,
the edge refuses what it cannot serve, and on SpatiaLite the grouping reads the cases from one covering index."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from gridmap.store.tables import Case
from gridmap.views import mapdata
from gridmap_api.settings import Settings
from tests.conftest import api_client

STATES = (
    "rework",
    "reported",
    "filed",
    "dispatched",
    "accepted",
    "handled",
    "suspended",
    "closed",
    "merged",
    "voided",
    "rejected",
)


@pytest.fixture(scope="module")
def district_box(client):
    rows = client.get("/api/v1/map/cases").json()["rows"]
    lons, lats = [r[1] for r in rows], [r[2] for r in rows]
    return min(lons) - 0.01, min(lats) - 0.01, max(lons) + 0.01, max(lats) + 0.01


def _box(b) -> str:
    return ",".join(f"{v:.6f}" for v in b)


def _clusters(client, **params):
    r = client.get("/api/v1/map/cases/clusters", params=params)
    assert r.status_code == 200, r.text
    return r.json()


def _list_total(client, **params) -> int:
    r = client.get("/api/v1/cases", params={**params, "limit": 1})
    assert r.status_code == 200, r.text
    return r.json()["total"]


@pytest.mark.parametrize("zoom", [9, 12, 14])
@pytest.mark.parametrize(
    "filters",
    [
        {},
        {"state": "open"},
        {"state": "closed,overdue"},
        {"since": "2026-06-01T00:00:00+08:00", "until": "2026-09-01T00:00:00+08:00"},
    ],
)
def test_the_counts_add_up_to_the_case_list(client, district_box, zoom, filters):
    minx, miny, maxx, maxy = district_box
    half = (minx, miny, (minx + maxx) / 2, (miny + maxy) / 2)  # a box that cuts through the cases as well
    for box in (district_box, half):
        body = _clusters(client, bbox=_box(box), zoom=zoom, **filters)
        counts = [f["properties"]["count"] for f in body["features"]]
        assert sum(counts) == body["total"] == _list_total(client, bbox=_box(box), **filters)
        assert body["type"] == "FeatureCollection" and body["zoom"] == zoom and all(c > 0 for c in counts)
        for f in body["features"]:
            lon, lat = f["geometry"]["coordinates"]
            x0, y0, x1, y1 = f["properties"]["bbox"]
            assert box[0] <= x0 - 1e-6 <= lon <= x1 + 1e-6 <= box[2] + 2e-6 and y0 - 1e-6 <= lat <= y1 + 1e-6
            assert (f["properties"]["case_id"] is not None) == (f["properties"]["count"] == 1)
    assert body["total"] > 0 or filters.get("since")


@pytest.mark.parametrize("zoom", [10, 14])
def test_each_cluster_is_its_cases_grouped_by_hand(client, engine, district_box, zoom):
    """Half a year of the box's cases read with plain SQL and grouped in Python into the same cells: the clusters, in
    cell order, are those groups (count, mean position, bounds, worst state, overdue, the single case's id)."""
    since, until = "2026-05-20T00:00:00+00:00", "2026-11-21T00:00:00+00:00"
    body = _clusters(client, bbox=_box(district_box), zoom=zoom, since=since, until=until)
    box = tuple(float(v) for v in _box(district_box).split(","))
    width, height = mapdata.cluster_cell(zoom, (box[1] + box[3]) / 2)
    now = dt.datetime.fromisoformat(body["now"])
    with sa.orm.Session(engine) as session:
        rows = session.execute(
            sa.select(Case.id, Case.lon, Case.lat, Case.state, Case.due_at).where(
                Case.lon.is_not(None),
                Case.reported_at >= dt.datetime.fromisoformat(since),
                Case.reported_at < dt.datetime.fromisoformat(until),
                Case.lon.between(box[0], box[2]),
                Case.lat.between(box[1], box[3]),
            )
        ).all()
    groups: dict[tuple[int, int], list] = {}
    for row in rows:
        groups.setdefault((int((row.lon + 180.0) / width), int((row.lat + 90.0) / height)), []).append(row)
    assert len(rows) > 100 and len(groups) > 3
    assert body["total"] == len(rows) and len(body["features"]) == len(groups)
    for key, f in zip(sorted(groups), body["features"]):
        cases, props = groups[key], f["properties"]
        lons, lats = [c.lon for c in cases], [c.lat for c in cases]
        assert props["count"] == len(cases)
        assert f["geometry"]["coordinates"] == pytest.approx([sum(lons) / len(cases), sum(lats) / len(cases)], abs=2e-6)
        assert props["bbox"] == [round(v, 6) for v in (min(lons), min(lats), max(lons), max(lats))]
        assert props["worst_state"] == next(s for s in STATES if s in {c.state for c in cases})
        late = any(
            c.state in ("accepted", "rework", "handled")
            and c.due_at is not None
            and (c.due_at if c.due_at.tzinfo else c.due_at.replace(tzinfo=dt.UTC)) < now
            for c in cases
        )
        assert (props["worst_deadline"] == "overdue") == late
        assert props["case_id"] == (cases[0].id if len(cases) == 1 else None)


def test_the_grouping_reads_one_covering_index_on_spatialite(engine, district_box):
    """SQLite reads the period's cases for the clusters from `ix_case_file_reported_map` alone (migration 0016), not
    case by case from the table; PostgreSQL has no such index (it reads the period's month partitions)."""
    statements: list[tuple[str, object]] = []

    def seen(conn, cursor, statement, parameters, context, executemany):
        statements.append((statement, parameters))

    flt = mapdata.CaseFilter(
        since=dt.datetime(2026, 5, 20, tzinfo=dt.UTC), until=dt.datetime(2026, 11, 21, tzinfo=dt.UTC), bbox=district_box
    )
    sa.event.listen(engine, "before_cursor_execute", seen)
    try:
        with sa.orm.Session(engine) as session:
            body = mapdata.case_clusters(session, flt, 10)
    finally:
        sa.event.remove(engine, "before_cursor_execute", seen)
    assert body["total"] > 100
    grouping = next(s for s in statements if "count(*)" in s[0])
    indexes = {ix["name"] for ix in sa.inspect(engine).get_indexes("case_file")}
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            plan = [row[-1] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + grouping[0], grouping[1])]
        assert any("USING COVERING INDEX ix_case_file_reported_map" in step for step in plan), plan
        assert not any(step.startswith(("SCAN case_file", "SEARCH case_file USING INDEX")) for step in plan), plan
    else:
        assert "ix_case_file_reported_map" not in indexes


def test_a_category_filter_counts_only_its_cases(client, district_box):
    """The grouping joins the categories only when a category filter needs them (SQLite keeps an unused outer join:
    a lookup per case): filtered by one major class, the counts are its cases, fewer than all."""
    categories = client.get("/api/v1/categories").json()
    major = categories[0]["major_class"]
    codes = ",".join(c["code"] for c in categories if c["major_class"] == major)
    everything = _clusters(client, bbox=_box(district_box), zoom=12)["total"]
    body = _clusters(client, bbox=_box(district_box), zoom=12, category=codes)
    assert sum(f["properties"]["count"] for f in body["features"]) == body["total"]
    assert 0 < body["total"] == _list_total(client, bbox=_box(district_box), category=codes) < everything


def test_more_cells_when_zoomed_in_and_one_case_is_its_own_cluster(client, district_box):
    sizes = [len(_clusters(client, bbox=_box(district_box), zoom=z)["features"]) for z in (8, 11, 14)]
    assert sizes[0] < sizes[1] < sizes[2]
    single = next(
        f for f in _clusters(client, bbox=_box(district_box), zoom=14)["features"] if f["properties"]["count"] == 1
    )
    case = client.get(f"/api/v1/cases/{single['properties']['case_id']}").json()
    assert single["geometry"]["coordinates"] == pytest.approx([case["lon"], case["lat"]], abs=1e-6)
    assert single["properties"]["worst_state"] == case["state"]


@pytest.mark.parametrize("state", [None, "open", "closed", "accepted,handled,rework"])
def test_worst_state_and_deadline_are_those_of_the_cases(client, district_box, state):
    """At zoom 3 a cell is 11° wide: the district is one cluster, to be compared with every point's state and clock
    colour (`/map/cases`, coloured on the same working calendar)."""
    params = {"state": state} if state else {}
    body = _clusters(client, bbox=_box(district_box), zoom=3, **params)
    points = client.get("/api/v1/map/cases", params={"bbox": _box(district_box), **params}).json()
    assert len(body["features"]) == 1 and body["total"] == points["count"]
    props = body["features"][0]["properties"]
    states = {r[3] for r in points["rows"]}
    assert props["worst_state"] == next(s for s in STATES if s in states)
    clocks = {r[4] for r in points["rows"]}
    assert props["worst_deadline"] == ("overdue" if "red" in clocks else "due_soon" if "yellow" in clocks else "ok")
    if state == "closed":
        assert props == {**props, "worst_state": "closed", "worst_deadline": "ok"}


def test_another_subdistricts_caller_sees_none_of_them(client, db_url, district_box):
    subs = [
        f["properties"]["code"] for f in client.get("/api/v1/areas", params={"level": "subdistrict"}).json()["features"]
    ]
    s1, s2 = sorted(subs)[:2]
    s1_total = _list_total(client, area=s1)
    assert s1_total > 0
    for code in (s1, s2):
        with api_client(
            Settings(database_url=db_url), role="dispatcher", user=f"d-{code}", **{"X-Areas": code}
        ) as scoped:
            body = _clusters(scoped, bbox=_box(district_box), zoom=12)
            assert body["total"] == _list_total(scoped, bbox=_box(district_box)) == _list_total(client, area=code)
            # a tiny box around each of the first sub-district's clusters' cases: only its own caller finds them
            own = _clusters(scoped, bbox=_box(district_box), zoom=12, area=code) if code == s1 else None
            if own is not None:
                assert own["total"] == s1_total
            first = _clusters(client, bbox=_box(district_box), zoom=14, area=s1)["features"][:5]
            for f in first:
                x0, y0, x1, y1 = (v + d for v, d in zip(f["properties"]["bbox"], (-2e-6, -2e-6, 2e-6, 2e-6)))
                seen = _clusters(scoped, bbox=_box((x0, y0, x1, y1)), zoom=16)["total"]
                if code == s1:
                    assert seen >= f["properties"]["count"]
                else:
                    assert seen == _list_total(scoped, bbox=_box((x0, y0, x1, y1)))
                    assert seen == _list_total(client, bbox=_box((x0, y0, x1, y1)), area=s2)
            if code == s2:
                r = scoped.get(
                    "/api/v1/map/cases/clusters", params={"bbox": _box(district_box), "zoom": 12, "area": s1}
                )
                assert r.status_code == 404  # another sub-district's area is not found, as elsewhere


@pytest.mark.parametrize(
    "params, field",
    [
        ({"zoom": 12}, "bbox"),
        ({"bbox": "102,24,103", "zoom": 12}, "bbox"),
        ({"bbox": "103,24,102,25", "zoom": 12}, "bbox"),
        ({"bbox": "60,10,140,50", "zoom": 12}, "bbox"),  # far more cells than a screen shows
        ({"bbox": "102,24,103,25"}, "zoom"),
        ({"bbox": "102,24,103,25", "zoom": 2}, "zoom"),
        ({"bbox": "102,24,103,25", "zoom": 21}, "zoom"),
        ({"bbox": "102,24,103,25", "zoom": "x"}, "zoom"),
        ({"bbox": "102,24,103,25", "zoom": 12, "state": "lost"}, "state"),
        ({"bbox": "102,24,103,25", "zoom": 12, "source": "fax"}, "source"),
        (
            {"bbox": "102,24,103,25", "zoom": 12, "since": "2026-06-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"},
            "until",
        ),
    ],
)
def test_the_edge_refuses_naming_the_field(client, params, field):
    r = client.get("/api/v1/map/cases/clusters", params=params)
    assert r.status_code == 422, r.text
    assert r.json()["field"] == field
