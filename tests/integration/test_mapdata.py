"""What the map pages load, on both databases: outlines per box and zoom, case points and their filters, one
area's measures and series, search, a case's routing, and the security headers."""

import datetime as dt
import json
import re

import pytest
import shapely
from shapely.geometry import shape

from gridmap.boundaries.areas import active_generation
from gridmap.views import mapdata
from gridmap.views.mapdata import zoom_detail
from gridmap_api.settings import Settings
from tests.conftest import api_client


@pytest.fixture(scope="module")
def full_grids(client):
    return {
        f["id"]: shape(f["geometry"]) for f in client.get("/api/v1/areas", params={"level": "grid"}).json()["features"]
    }


def _decimals(geometry) -> int:
    text = json.dumps(geometry)
    return max(len(d) for d in re.findall(r"\.(\d+)", text))


def test_outlines_in_a_box_are_exactly_the_areas_that_meet_it(client, full_grids):
    xs = [g.bounds for g in full_grids.values()]
    minx, miny = min(b[0] for b in xs), min(b[1] for b in xs)
    maxx, maxy = max(b[2] for b in xs), max(b[3] for b in xs)
    box = (minx, miny, (minx + maxx) / 2, (miny + maxy) / 2)
    fc = client.get("/api/v1/map/areas", params={"level": "grid", "zoom": 14, "bbox": ",".join(map(str, box))}).json()
    got = {f["id"] for f in fc["features"]}
    expected = {code for code, g in full_grids.items() if g.intersects(shapely.box(*box))}
    assert got == expected and 0 < len(got) < len(full_grids)
    assert fc["numberReturned"] == len(got)
    props = fc["features"][0]["properties"]
    assert set(props) == {"code", "name", "level", "parent_code", "label"}
    label = shapely.Point(props["label"])
    assert full_grids[props["code"]].buffer(1e-5).contains(label)  # the label point lies on its area


@pytest.mark.parametrize("zoom", [8, 12, 17])
def test_outlines_are_simplified_for_the_zoom_and_still_tile_the_level(client, full_grids, zoom):
    fc = client.get("/api/v1/map/areas", params={"level": "grid", "zoom": zoom}).json()
    simple = {f["id"]: shape(f["geometry"]) for f in fc["features"]}
    assert set(simple) == set(full_grids)
    tolerance, decimals = zoom_detail(zoom)
    assert all(_decimals(f["geometry"]) <= decimals for f in fc["features"])
    vertices = sum(shapely.get_num_coordinates(g) for g in simple.values())
    original = sum(shapely.get_num_coordinates(g) for g in full_grids.values())
    assert vertices <= original
    if zoom == 8:
        assert vertices < original * 0.9  # at a district-wide zoom most vertices are below a pixel
    # neighbours still meet: no gap or overlap wider than the rounding, and every outline stays near its original
    union = shapely.union_all(list(simple.values()))
    overlap = sum(g.area for g in simple.values()) - union.area
    assert abs(overlap) < 1e-4 * union.area
    px = 360 / (256 * 2**zoom)
    for code, g in simple.items():
        assert g.hausdorff_distance(full_grids[code]) <= max(tolerance, 10**-decimals) * 2 + px


def test_outlines_are_cacheable_and_bad_queries_name_the_field(client):
    first = client.get("/api/v1/map/areas", params={"level": "community", "zoom": 12})
    assert first.status_code == 200 and first.headers["content-type"] == "application/geo+json"
    again = client.get(
        "/api/v1/map/areas", params={"level": "community", "zoom": 12}, headers={"If-None-Match": first.headers["etag"]}
    )
    assert again.status_code == 304
    for params, field in [
        ({"level": "street", "zoom": 12}, "level"),
        ({"level": "grid", "zoom": 30}, "zoom"),
        ({"level": "grid", "zoom": 12, "bbox": "1,2,3"}, "bbox"),
        ({"level": "grid"}, "zoom"),
    ]:
        r = client.get("/api/v1/map/areas", params=params)
        assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
        assert r.json()["field"] == field, params


def test_a_view_holding_more_than_max_features_sends_only_their_count(client, full_grids):
    n = len(full_grids)
    over = client.get("/api/v1/map/areas", params={"level": "grid", "zoom": 12, "max_features": n - 1})
    assert over.status_code == 200 and over.headers["content-type"] == "application/geo+json"
    assert over.json() | {"generation_id": None} == {
        "type": "FeatureCollection",
        "features": [],
        "numberMatched": n,
        "numberReturned": 0,
        "zoom": 12,
        "generation_id": None,
    }
    assert len(over.content) < 200  # the count, not the outlines
    fits = client.get("/api/v1/map/areas", params={"level": "grid", "zoom": 12, "max_features": n}).json()
    assert fits["numberMatched"] == fits["numberReturned"] == len(fits["features"]) == n
    whole = client.get("/api/v1/map/areas", params={"level": "grid", "zoom": 12})
    assert whole.json()["features"] == fits["features"]
    assert whole.headers["etag"] != over.headers["etag"]  # two answers, two validators
    for bad in (0, -1, mapdata.MAX_FEATURES_LIMIT + 1, "many"):
        r = client.get("/api/v1/map/areas", params={"level": "grid", "zoom": 12, "max_features": bad})
        assert r.status_code == 422 and r.json()["field"] == "max_features", bad


def test_a_level_is_read_when_first_asked_for(client):
    with client.app.state.sessionmaker() as session:
        shapes = mapdata.AreaShapes.from_session(session, active_generation(session).id)
    assert shapes._levels == {}
    fc = json.loads(shapes.collection("district", None, 10))
    assert fc["numberReturned"] == 1 and set(shapes._levels) == {"district"}  # the first screen reads no grid
    json.loads(shapes.collection("subdistrict", None, 10))
    assert set(shapes._levels) == {"district", "subdistrict"}


def test_a_large_level_is_simplified_block_by_block_where_a_view_needs_it(client, full_grids):
    """Over BLOCK_ABOVE areas (a province's grids), a level is simplified per grandparent (a grid's sub-district),
    only the blocks a view meets: here the small demo's ten grids with the limit lowered to 5."""
    with client.app.state.sessionmaker() as session:
        generation = active_generation(session).id
        whole = mapdata.AreaShapes.from_session(session, generation)
        blocked = mapdata.AreaShapes.from_session(session, generation, block_above=5)
    communities = {
        f["properties"]["code"]: f["properties"]["parent_code"]
        for f in client.get("/api/v1/map/areas", params={"level": "community", "zoom": 12}).json()["features"]
    }
    data = blocked.level("grid")
    assert data is not None and len(data.blocks) == len(set(communities.values())) > 1
    for members in data.blocks:  # each block: the grids of one sub-district
        assert len({communities[data.props[i]["parent_code"]] for i in members}) == 1
    xs = [g.bounds for g in full_grids.values()]
    minx, miny = min(b[0] for b in xs), min(b[1] for b in xs)
    maxx, maxy = max(b[2] for b in xs), max(b[3] for b in xs)
    box = (minx, miny, minx + (maxx - minx) / 4, miny + (maxy - miny) / 4)
    zoom = 13
    got = json.loads(blocked.collection("grid", box, zoom))
    assert 0 < len(data.done[zoom]) < len(data.blocks)  # only the blocks the box meets were simplified
    reference = json.loads(whole.collection("grid", box, zoom))
    assert [f["id"] for f in got["features"]] == [f["id"] for f in reference["features"]]
    tolerance, decimals = zoom_detail(zoom)
    for f, r in zip(got["features"], reference["features"]):
        assert f["properties"] == r["properties"]
        assert shape(f["geometry"]).hausdorff_distance(shape(r["geometry"])) <= 2 * tolerance + 2 * 10**-decimals
    # the whole level block by block still tiles it: no gap or overlap wider than the tolerance along the blocks
    simple = [shape(f["geometry"]) for f in json.loads(blocked.collection("grid", None, zoom))["features"]]
    assert len(data.done[zoom]) == len(data.blocks) and len(simple) == len(full_grids)
    union = shapely.union_all(simple)
    assert abs(sum(g.area for g in simple) - union.area) < 1e-4 * union.area


def _point_rows(client, **params):
    body = client.get("/api/v1/map/cases", params=params).json()
    assert body["fields"][:4] == ["id", "lon", "lat", "state"]
    return body["rows"]


def test_case_points_follow_every_filter(client):
    everything = _point_rows(client)
    listed = client.get("/api/v1/cases", params={"limit": 1}).json()["total"]
    assert len(everything) == listed > 50
    states = {r[3] for r in everything}
    state = sorted(states)[0]
    assert {r[0] for r in _point_rows(client, state=state)} == {r[0] for r in everything if r[3] == state}
    open_ = _point_rows(client, state="open")
    assert {r[3] for r in open_} <= {"reported", "filed", "dispatched", "accepted", "handled", "rework", "suspended"}
    assert len(open_) == client.get("/api/v1/cases", params={"state": "open", "limit": 1}).json()["total"]
    district = client.get("/api/v1/areas/530111").json()["properties"]["cases"]
    assert len(open_) == district["open"]
    overdue = _point_rows(client, state="overdue")
    assert len(overdue) == district["overdue"] and all(r[4] == "red" for r in overdue)
    category = next(r[5] for r in everything if r[5])  # other tests add cases without one to the shared database
    assert {r[0] for r in _point_rows(client, category=category)} == {r[0] for r in everything if r[5] == category}
    two = _point_rows(client, source="hotline,patrol")
    assert {r[0] for r in two} == {r[0] for r in everything if r[6] in ("hotline", "patrol")}
    times = sorted(r[7] for r in everything)
    middle = times[len(times) // 2]
    since = _point_rows(client, since=middle)
    assert {r[0] for r in since} == {r[0] for r in everything if r[7] >= middle}
    # the deadline colour is the case's clock (it runs from acceptance, so only accepted, rework, handled)
    running = {
        c["id"]: c["clock"]["colour"]
        for c in client.get("/api/v1/cases", params={"state": "accepted,rework,handled", "limit": 500}).json()["items"]
    }
    assert running and {r[0]: r[4] for r in everything if r[4] is not None} == running


def test_case_points_all_or_none(client):
    """The overview asks for all the points of its filters or none: over the limit it draws the server's clusters,
    so a point sent would be thrown away (20,000 rows, 1.7 MB, on the province demo)."""
    every = client.get("/api/v1/map/cases").json()
    n = every["count"]
    over = client.get("/api/v1/map/cases", params={"limit": n - 1, "all_or_none": "true"}).json()
    assert over["truncated"] is True and over["rows"] == [] and over["count"] == 0
    newest = client.get("/api/v1/map/cases", params={"limit": n - 1}).json()  # without: the newest, truncated
    assert newest["truncated"] is True and newest["rows"] == every["rows"][: n - 1]
    fits = client.get("/api/v1/map/cases", params={"limit": n, "all_or_none": "true"}).json()
    assert fits["truncated"] is False and fits["rows"] == every["rows"]
    state = every["rows"][0][3]
    some = client.get("/api/v1/map/cases", params={"state": state, "limit": n - 1, "all_or_none": "true"}).json()
    assert some["rows"] == [r for r in every["rows"] if r[3] == state] and not some["truncated"]


@pytest.mark.parametrize(
    "params, field",
    [
        ({"state": "lost"}, "state"),
        ({"source": "fax"}, "source"),
        ({"since": "2026-02-01", "until": "2026-01-01"}, "until"),
        ({"bbox": "a,b,c,d"}, "bbox"),
        ({"area": "999"}, "code"),
    ],
)
def test_bad_case_filters_name_the_field(client, params, field):
    r = client.get("/api/v1/map/cases", params=params)
    assert 400 <= r.status_code < 500 and r.json()["field"] == field


def test_queue_lists_several_states_oldest_first(client):
    counts = {}
    for r in _point_rows(client):
        counts[r[3]] = counts.get(r[3], 0) + 1
    two = sorted(counts, key=counts.get)[:2]  # the two rarest states, so that both fit on one page
    body = client.get("/api/v1/cases", params={"state": ",".join(two), "order": "oldest", "limit": 500}).json()
    assert body["total"] == counts[two[0]] + counts[two[1]] <= 500
    assert {c["state"] for c in body["items"]} == set(two)
    times = [c["reported_at"] for c in body["items"]]
    assert times == sorted(times)
    assert client.get("/api/v1/cases", params={"state": "reported,nope"}).json()["field"] == "state"


def test_one_areas_measures_are_the_total_of_its_cases(client):
    community = client.get("/api/v1/areas", params={"level": "community"}).json()["features"][0]["id"]
    period = {"since": "2026-01-01T00:00:00+08:00", "until": "2026-11-01T00:00:00+08:00"}
    mine = client.get(f"/api/v1/areas/{community}/measures", params=period).json()["measures"]
    table = client.get("/api/v1/measures", params={"by": "community", **period}).json()["items"]
    row = next(r for r in table if r["key"] == community)
    for key in ("received", "closed", "closure_rate", "on_time_rate", "satisfaction", "close_hours_p50"):
        assert mine[key] == row[key], key
    series = client.get(
        f"/api/v1/areas/{community}/series", params={"months": 10, "until": "2026-10-31T23:59:59+08:00"}
    ).json()["months"]
    assert [m["month"] for m in series] == [f"2026-{m:02d}" for m in range(1, 11)]
    assert sum(m["received"] for m in series) == mine["received"]  # received is additive over months
    detail = client.get(f"/api/v1/areas/{community}").json()["properties"]
    assert [a["level"] for a in detail["chain"]] == ["district", "subdistrict"]
    assert detail["children"] and all(c["level"] == "grid" for c in detail["children"])
    assert client.get(f"/api/v1/areas/{community}/series", params={"months": 99}).json()["field"] == "months"


def test_search_finds_areas_places_and_cases(client):
    grid = client.get("/api/v1/areas", params={"level": "grid"}).json()["features"][3]["properties"]
    hits = client.get("/api/v1/search", params={"q": grid["code"]}).json()["items"]
    assert hits[0]["kind"] == "area" and hits[0]["code"] == grid["code"] and len(hits[0]["bbox"]) == 4
    by_name = client.get("/api/v1/search", params={"q": grid["name"]}).json()["items"]
    assert any(h.get("code") == grid["code"] for h in by_name)
    case = client.get("/api/v1/cases", params={"limit": 1}).json()["items"][0]
    hits = client.get("/api/v1/search", params={"q": case["number"]}).json()["items"]
    assert hits[0] == {
        "kind": "case",
        "id": case["id"],
        "label": case["number"],
        "detail": case["grid_code"],
        "state": case["state"],
        "point": [case["lon"], case["lat"]],
    }
    place = client.get("/api/v1/search", params={"q": "小区"}).json()["items"]
    assert place and place[0]["kind"] == "place" and len(place[0]["point"]) == 2
    assert client.get("/api/v1/search", params={"q": "  "}).json()["field"] == "q"
    assert client.get("/api/v1/search", params={"q": "%_%"}).json()["items"] == []  # LIKE wildcards are literal


def test_search_by_the_start_of_a_case_number_finds_exactly_the_cases_numbered_so(client):
    """A case number's start, typed in either case, finds the cases whose number starts so, in number order, the
    first ten: as a filter of every number would; a text no number starts with asks nothing of the case table;
    on PostGIS the cases are found by a range of the numbers' index (migration 0017), not by reading them all."""
    import sqlalchemy as sa

    from gridmap.store.tables import Case

    factory = client.app.state.sessionmaker
    with factory() as s:
        numbers = sorted(s.scalars(sa.select(Case.number)))
    sample = numbers[len(numbers) // 3]
    prefixes = {sample, sample[:10], sample[:10].lower(), sample[:2], sample[:8] + "9", sample[:4], "Q", "RX2099"}
    for prefix in sorted(prefixes):
        hits = client.get("/api/v1/search", params={"q": prefix, "limit": 10}).json()["items"]
        found = [h["label"] for h in hits if h["kind"] == "case"]
        assert found == [n for n in numbers if n.startswith(prefix.upper())][:10], prefix
    engine = factory.kw["bind"]
    sent: list[str] = []

    def capture(_conn, _cursor, statement, _parameters, _context, _many) -> None:
        if "case_file" in statement:
            sent.append(statement)

    sa.event.listen(engine, "before_cursor_execute", capture)
    try:
        for text in ("违章", "RX-2026", "RX 2026"):
            items = client.get("/api/v1/search", params={"q": text}).json()["items"]
            assert not [h for h in items if h["kind"] == "case"], text
    finally:
        sa.event.remove(engine, "before_cursor_execute", capture)
    assert sent == []
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.exec_driver_sql("SET enable_seqscan = off")  # the small demo's months are a few pages each
            plan = "\n".join(
                conn.exec_driver_sql(
                    'EXPLAIN SELECT id FROM case_file WHERE number COLLATE "C" >= %(lo)s '
                    'AND number COLLATE "C" < %(hi)s ORDER BY number COLLATE "C" LIMIT 10',
                    {"lo": sample[:6], "hi": sample[:5] + chr(ord(sample[5]) + 1)},
                ).scalars()
            )
        # every month's index read in number order and merged: no table read whole, no sort of what was found
        assert "_number_idx" in plan and "Seq Scan" not in plan and not re.search(r"(^|->)\s*Sort\s+\(", plan), plan


def test_a_case_says_where_it_was_routed_and_why(client):
    grid = client.get("/api/v1/areas", params={"level": "grid"}).json()["features"][5]
    point = shape(grid["geometry"]).representative_point()
    body = {"title": "路灯不亮", "lon": point.x, "lat": point.y, "category": "E0101", "source": "hotline"}
    created = client.post("/api/v1/cases", json=body)
    assert created.status_code == 201, created.text
    case = client.get(f"/api/v1/cases/{created.json()['id']}").json()
    routing = case["routing"]
    assert [a["code"] for a in routing["chain"]][-2] == grid["id"] or routing["chain"][-1]["code"] == grid["id"]
    assert all(a["name"] for a in routing["chain"])
    staff = client.get(f"/api/v1/areas/{case['grid_code']}").json()["properties"]["staff"]
    worker = next(s for s in staff if s["role"] == "fulltime_worker")
    assert (routing["worker"]["id"], routing["worker"]["name"]) == (worker["id"], worker["name"])
    # the area's staff list masks phones; the case's worker is callable in full for the one who must reach them
    phone = routing["worker"]["phone"]
    assert "*" not in phone and phone[:3] == worker["phone"][:3] and phone[-4:] == worker["phone"][-4:]
    assert routing["rule"] == "territory_first" and routing["branch"]["name"]
    assert routing["located"] == {"method": "coordinates", "flags": [], "candidates": [], "crs": "wgs84"}


def test_pages_send_a_strict_content_security_policy(client):
    for path in ("/", "/dispatch", "/?lang=en"):
        r = client.get(path)
        csp = r.headers["content-security-policy"]
        nonce = re.search(r"'nonce-([^']+)'", csp).group(1)
        assert "script-src 'self' 'nonce-" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
        scripts = re.findall(r"<script([^>]*)>", r.text)
        assert scripts and all(f'nonce="{nonce}"' in s for s in scripts)
        assert "connect-src 'self'" in csp and "object-src 'none'" in csp
        assert "https://" not in r.text.split("<body>")[0].replace("https://leafletjs", "")  # no CDN links
    assert client.get("/").headers["content-security-policy"] != client.get("/").headers["content-security-policy"]
    api = client.get("/api/v1/areas/530111")
    assert api.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
    assert api.headers["x-content-type-options"] == "nosniff"


def test_pages_name_their_scripts_and_styles_by_version_and_a_browser_may_keep_those_a_year(client):
    """Every script, stylesheet and icon a page names carries its content's version (`?v=`): asked for at that
    version it may be kept a year (`immutable`); asked for without it, or at another (an old page after an
    upgrade), only while the browser checks each use (`no-cache`, then 304 by ETag)."""
    import hashlib

    from gridmap_web import STATIC_DIR

    named = set()
    for path in ("/", "/dispatch", "/plan", "/login"):  # the worker's phone page is built the same way
        page = client.get(path)
        assert page.status_code == 200, path
        urls = re.findall(r'(?:src|href)="(/static/[^"]+)"', page.text)
        assert urls and all("?v=" in u for u in urls), (path, urls)
        named.update(urls)
    assert any(u.startswith("/static/common.js?v=") for u in named)
    assert any(u.startswith("/static/login.css?v=") for u in named)
    for url in named:
        file, version = url.split("?v=")
        assert version == hashlib.sha256((STATIC_DIR / file[len("/static/") :]).read_bytes()).hexdigest()[:16]
        kept = client.get(url)
        assert kept.status_code == 200 and kept.headers["cache-control"] == "public, max-age=31536000, immutable"
        for other in (file, f"{file}?v=0123456789abcdef"):
            checked = client.get(other)
            assert checked.status_code == 200 and checked.headers["cache-control"] == "no-cache", other
            again = client.get(other, headers={"if-none-match": checked.headers["etag"]})
            assert again.status_code == 304 and again.headers["cache-control"] == "no-cache"
    assert client.get("/static/no-such.js?v=0123456789abcdef").status_code == 404


def test_base_map_settings_reach_the_page_and_the_policy(db_url):
    settings = Settings(database_url=db_url, tianditu_key="abc123")
    with api_client(settings) as c:
        r = c.get("/")
        assert "https://*.tianditu.gov.cn" in r.headers["content-security-policy"]
        assert "tk=abc123" in r.text and "cva_w" in r.text
    settings = Settings(
        database_url=db_url, tile_url="http://tiles.example.internal:8080/{z}/{x}/{y}.png", tile_crs="gcj02"
    )
    with api_client(settings) as c:
        r = c.get("/dispatch")
        assert "img-src 'self' data: blob: http://tiles.example.internal:8080;" in r.headers["content-security-policy"]
        assert '"tile_crs": "gcj02"' in r.text


def test_period_inputs_are_checked(client):
    r = client.get("/api/v1/areas/530111/measures", params={"since": "2026-03-01", "until": "2026-02-01"})
    assert r.status_code == 422 and r.json()["field"] == "until"
    assert client.get("/api/v1/areas/nope/measures").status_code == 404
    assert dt.date.today()  # the default period (this month) needs no parameters:
    assert client.get("/api/v1/areas/530111/measures").status_code == 200
