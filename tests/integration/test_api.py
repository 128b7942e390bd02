"""The HTTP API on both databases: areas, locate (GCJ-02 included), cases, and bad input as problem+json 4xx."""

import pytest

from gridmap.geo import crs


@pytest.fixture(scope="module")
def grid(client):
    return client.get("/api/v1/areas", params={"level": "grid"}).json()["features"][0]


def test_areas_by_level_parent_under_and_bbox(client):
    subs = client.get("/api/v1/areas", params={"level": "subdistrict"}).json()
    assert subs["type"] == "FeatureCollection" and len(subs["features"]) == 2
    first = subs["features"][0]["properties"]
    assert first["parent_code"] == "530111" and first["level"] == "subdistrict"
    children = client.get("/api/v1/areas", params={"parent": first["code"]}).json()["features"]
    assert children and all(f["properties"]["parent_code"] == first["code"] for f in children)
    under = client.get("/api/v1/areas", params={"under": first["code"]}).json()["features"]
    assert {f["properties"]["level"] for f in under} == {"community", "grid", "microgrid"}
    assert all(f["properties"]["code"].startswith(first["code"]) for f in under)
    x0, y0, x1, y1 = _bounds(children[0]["geometry"])
    boxed = client.get("/api/v1/areas", params={"level": "community", "bbox": f"{x0},{y0},{x1},{y1}"}).json()
    assert children[0]["properties"]["code"] in {f["properties"]["code"] for f in boxed["features"]}


def _bounds(geometry):
    xs = [p[0] for poly in geometry["coordinates"] for ring in poly for p in ring]
    ys = [p[1] for poly in geometry["coordinates"] for ring in poly for p in ring]
    return min(xs), min(ys), max(xs), max(ys)


def test_one_area_has_branch_staff_and_counts(client, grid):
    code = grid["properties"]["code"]
    props = client.get(f"/api/v1/areas/{code}").json()["properties"]
    assert props["branch"]["kind"] == "grid_branch" and props["branch"]["name"].endswith("党支部")
    roles = {s["role"] for s in props["staff"]}
    assert {"grid_head", "fulltime_worker", "police"} <= roles
    assert all("****" in s["phone"] for s in props["staff"])
    assert set(props["cases"]) == {"total", "open", "overdue", "closed"}


def _inside(client, grid):
    """A point inside the grid: the position of one of the demo's cases located there."""
    items = client.get("/api/v1/cases", params={"area": grid["properties"]["code"], "limit": 1}).json()["items"]
    return items[0]["lon"], items[0]["lat"]


def test_locate_gives_chain_branch_and_staff(client, grid):
    x, y = _inside(client, grid)
    body = client.get("/api/v1/locate", params={"lon": x, "lat": y}).json()
    assert [a["level"] for a in body["chain"]][:4] == ["district", "subdistrict", "community", "grid"]
    assert body["grid"]["code"] == body["chain"][3]["code"]
    assert body["branch"]["kind"] == "grid_branch" and body["staff"]
    assert body["point"] == {"lon": x, "lat": y}


def test_gcj02_point_lands_in_the_grid_of_its_true_position(client):
    cases = client.get("/api/v1/cases", params={"limit": 60}).json()["items"]
    naive_wrong = 0
    for case in cases:
        x, y = case["lon"], case["lat"]
        truth = client.get("/api/v1/locate", params={"lon": x, "lat": y}).json()
        gx, gy = crs.wgs84_to_gcj02(x, y)
        shifted = client.get("/api/v1/locate", params={"lon": gx, "lat": gy, "crs": "gcj02"}).json()
        assert shifted["chain"] == truth["chain"]
        assert shifted["point"]["lon"] == pytest.approx(x, abs=1e-9)
        naive = client.get("/api/v1/locate", params={"lon": gx, "lat": gy}).json()
        naive_wrong += naive["chain"] != truth["chain"]
    assert naive_wrong > 0, "unconverted, the ~500 m offset should put some points in the wrong area"


def test_outside_every_grid_is_an_answer_not_an_error(client):
    index = client.app.state.registry.active()
    minx, miny, maxx, maxy = index.bounds
    body = client.get("/api/v1/locate", params={"lon": minx - 0.02, "lat": (miny + maxy) / 2}).json()
    assert body["grid"] is None and body["chain"] == [] and body["flags"] == ["outside_all_grids"]


def test_far_outside_the_service_area_is_refused_with_the_reason(client):
    response = client.get("/api/v1/locate", params={"lon": 100.0, "lat": 10.0})
    assert response.status_code == 422 and response.headers["content-type"] == "application/problem+json"
    assert response.json()["field"] == "lon" and "from the service area" in response.json()["detail"]


def test_create_case_locates_assigns_and_records(client, grid):
    x, y = _inside(client, grid)
    created = client.post(
        "/api/v1/cases",
        json={
            "title": "暴露垃圾",
            "lon": x,
            "lat": y,
            "category": "E0101",
            "source": "miniprogram",
            "reporter_phone": "13812341234",
        },
    )
    assert created.status_code == 201
    case = created.json()
    # an event goes to the territory first: the grid's worker, under the grid's branch
    assert case["state"] == "dispatched" and case["grid_code"] and case["branch_id"] and case["assignee_id"]
    assert case["department_id"] is None
    assert case["reporter_phone"] == "138****1234"
    fetched = client.get(created.headers["location"]).json()
    assert [h["action"] for h in fetched["history"]] == ["reported", "located", "file", "dispatch"]
    assert fetched["history"][-1]["detail"]["rule"] == "territory_first"
    # a component goes to its owner first: the department of its category
    manhole = client.post("/api/v1/cases", json={"title": "井盖缺失", "lon": x, "lat": y, "category": "C0101"}).json()
    assert manhole["state"] == "dispatched" and manhole["assignee_id"] is None and manhole["department_id"]
    assert manhole["branch_id"] == case["branch_id"]
    listed = client.get("/api/v1/cases", params={"area": case["grid_code"], "state": "dispatched"}).json()
    assert case["id"] in {c["id"] for c in listed["items"]}
    geo = client.get("/api/v1/cases", params={"format": "geojson", "area": case["grid_code"]}).json()
    assert geo["type"] == "FeatureCollection" and geo["numberMatched"] >= 1


def test_cases_are_paged_and_filtered_by_period(client):
    page = client.get("/api/v1/cases", params={"limit": 7, "offset": 3}).json()
    assert len(page["items"]) == 7 and page["total"] >= 300
    recent = client.get(
        "/api/v1/cases", params={"since": "2026-11-01T00:00:00Z", "until": "2026-11-20T00:00:00Z"}
    ).json()
    assert all("2026-10-31T16" <= c["reported_at"] < "2026-11-20" for c in recent["items"])


BAD_GETS = [
    ("locate_nan_lon", "/api/v1/locate?lon=nan&lat=25", 422, "lon"),
    ("locate_inf_lat", "/api/v1/locate?lon=102.7&lat=inf", 422, "lat"),
    ("locate_swapped", "/api/v1/locate?lon=25.03&lat=102.75", 422, "lat"),
    ("locate_lon_out_of_range", "/api/v1/locate?lon=200&lat=25", 422, "lon"),
    ("locate_not_a_number", "/api/v1/locate?lon=abc&lat=25", 422, "lon"),
    ("locate_missing_lat", "/api/v1/locate?lon=102.7", 422, "lat"),
    ("locate_unknown_crs", "/api/v1/locate?lon=102.7&lat=25&crs=mars2", 422, "crs"),
    ("locate_unknown_epsg", "/api/v1/locate?lon=102.7&lat=25&crs=EPSG:99999", 422, "crs"),
    ("area_unknown_code", "/api/v1/areas/999999", 404, "code"),
    ("areas_unknown_parent", "/api/v1/areas?parent=999", 404, "code"),
    ("areas_unknown_level", "/api/v1/areas?level=street", 422, "level"),
    ("areas_bad_bbox", "/api/v1/areas?bbox=1,2,3", 422, "bbox"),
    ("areas_inverted_bbox", "/api/v1/areas?bbox=103,25,102,26", 422, "bbox"),
    ("cases_unknown_state", "/api/v1/cases?state=done", 422, "state"),
    ("cases_bad_period", "/api/v1/cases?since=2026-02-01&until=2026-01-01", 422, "until"),
    ("cases_bad_limit", "/api/v1/cases?limit=0", 422, "limit"),
    ("case_unknown_id", "/api/v1/cases/987654321", 404, "id"),
    ("case_id_not_int", "/api/v1/cases/abc", 422, "case_id"),
]


@pytest.mark.parametrize("name,url,status,field", BAD_GETS, ids=[b[0] for b in BAD_GETS])
def test_bad_queries_get_problem_json_naming_the_field(client, name, url, status, field):
    response = client.get(url)
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status and body["field"] == field and field in body["detail"]


BAD_BODIES = [
    ("nan_lon", '{"title":"x","lon":NaN,"lat":25}', 422, "lon"),
    ("infinity_lat", '{"title":"x","lon":102.7,"lat":Infinity}', 422, "lat"),
    ("malformed_json", '{"title":"x",', 400, "body"),
    ("not_an_object", "[1,2]", 422, "body"),
    ("empty_title", '{"title":"","lon":102.7,"lat":25}', 422, "title"),
    ("unknown_category", '{"title":"x","lon":102.7,"lat":25,"category":"nope"}', 422, "category"),
    ("unknown_source", '{"title":"x","lon":102.7,"lat":25,"source":"fax"}', 422, "source"),
    ("bad_phone", '{"title":"x","lon":102.7,"lat":25,"reporter_phone":"call me"}', 422, "reporter_phone"),
    ("swapped", '{"title":"x","lon":25.0,"lat":102.7}', 422, "lat"),
    ("unknown_crs", '{"title":"x","lon":102.7,"lat":25,"crs":"foo"}', 422, "crs"),
    ("unknown_member", '{"title":"x","lon":102.7,"lat":25,"colour":"red"}', 422, "colour"),
    ("far_outside", '{"title":"x","lon":-74.0,"lat":40.7}', 422, "lon"),
]


@pytest.mark.parametrize("name,body,status,field", BAD_BODIES, ids=[b[0] for b in BAD_BODIES])
def test_bad_bodies_get_problem_json_and_store_nothing(client, name, body, status, field):
    before = client.get("/api/v1/cases", params={"limit": 1}).json()["total"]
    response = client.post("/api/v1/cases", content=body, headers={"content-type": "application/json"})
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["field"] == field
    assert client.get("/api/v1/cases", params={"limit": 1}).json()["total"] == before


def test_openapi_is_published(client):
    spec = client.get("/openapi.json").json()
    assert {"/api/v1/areas", "/api/v1/locate", "/api/v1/cases"} <= set(spec["paths"])


def test_answers_are_gzipped_at_the_apps_level_not_starlettes_nine(client):
    """Every answer of 2 KiB or more is gzipped when the client accepts it, at `GZIP_LEVEL` (5): at Starlette's
    default, 9, a z13 case tile of the province took 399 ms to compress, against 54 ms, for 1% fewer bytes."""
    import gzip

    from starlette.middleware.gzip import GZipMiddleware

    from gridmap_api.main import GZIP_LEVEL

    assert GZIP_LEVEL == 5
    (gz,) = [m for m in client.app.user_middleware if m.cls is GZipMiddleware]
    assert gz.kwargs == {"minimum_size": 2048, "compresslevel": GZIP_LEVEL}
    script = "/static/vendor/leaflet/leaflet.js"
    plain = client.get(script, headers={"accept-encoding": "identity"})
    assert plain.status_code == 200 and "content-encoding" not in plain.headers
    with client.stream("GET", script, headers={"accept-encoding": "gzip"}) as packed:
        assert packed.headers["content-encoding"] == "gzip"
        raw = b"".join(packed.iter_raw())
    assert gzip.decompress(raw) == plain.content
    # as zlib makes it at that level, give or take the flushes between the file's chunks (and smaller than at 1)
    assert abs(len(raw) - len(gzip.compress(plain.content, compresslevel=GZIP_LEVEL))) < 0.01 * len(raw)
    assert len(raw) < len(gzip.compress(plain.content, compresslevel=1))
