"""The overview map in a real headless Chromium, offline, under the pages' Content-Security-Policy: loading,
drill-down, layers, filters, choropleth, heat map, search, resident text shown as text, English, GCJ-02 base map.
The pages are opened by the district's dispatcher, signed in (the `page` fixture); the API calls of the tests go
as the same account."""

import math
import time

import pytest
from shapely.geometry import shape

from tests.e2e.conftest import SCREENSHOTS, api, wait_idle, wait_js

pytestmark = pytest.mark.e2e


def click_lonlat(page, lon, lat):
    """Click the map where a WGS84 point is drawn (through the page's own projection, GCJ-02 shift included)."""
    x, y = page.evaluate(
        "([lon, lat]) => { const m = GridmapPage.map, p = m.latLngToContainerPoint("
        "GridmapPage.core.point([lon, lat])), r = m.getContainer().getBoundingClientRect();"
        " return [p.x + r.left, p.y + r.top]; }",
        [lon, lat],
    )
    page.mouse.click(x, y)


def toggle(page, label):
    page.locator(".leaflet-control-layers-overlays label", has_text=label).first.locator("input").click()


def assert_clean(page, server, *also_local):
    assert page.console_errors == [], page.console_errors
    local = (server, "data:", "blob:", *also_local)
    outside = [u for u in page.requests if not u.startswith(local)]
    assert outside == [], f"requests left the machine: {outside[:5]}"


def open_overview(page, server, query=""):
    started = time.monotonic()
    page.goto(server + "/" + query)
    wait_js(page, "document.body.dataset.gmCases !== undefined && document.body.dataset.gmLevel_subdistrict")
    wait_idle(page)
    return time.monotonic() - started


def inner_point(feature):
    p = shape(feature["geometry"]).representative_point()
    return p.x, p.y


def test_overview_loads_offline_and_drills_down_to_a_micro_grid(page, server):
    seconds = open_overview(page, server)
    assert page.locator("#gm-title").text_content() == "网格化管理 · 总览"
    subs = api(server, "/api/v1/areas?level=subdistrict")["features"]
    assert page.evaluate("document.body.dataset.gmLevel_subdistrict") == str(len(subs))
    assert int(page.evaluate("document.body.dataset.gmCases")) > 0
    assert page.evaluate("document.body.dataset.gmLabels").startswith("subdistrict:")
    page.screenshot(path=str(SCREENSHOTS / "overview.png"))
    print(f"overview ready in {seconds:.2f} s (small demo)")

    toggle(page, "事件")  # hide the case markers so that clicks reach the areas
    assert page.locator(".marker-cluster").count() == 0
    chain = []
    target = subs[0]
    for level in ("subdistrict", "community", "grid", "microgrid"):
        click_lonlat(page, *inner_point(target))
        code = target["properties"]["code"]
        wait_js(page, f"document.body.dataset.gmSelected === '{code}' && document.body.dataset.gmTrend === '{code}'")
        wait_idle(page)
        detail = page.locator("#gm-detail")
        assert detail.get_attribute("data-level") == level
        text = detail.inner_text()
        assert target["properties"]["name"] in text and "考核指标" in text and "结案率" in text
        assert page.locator("#gm-detail svg.gm-chart rect.gm-bar").count() == 12
        chain.append(code)
        if level == "grid":
            assert "网格党支部" in text and "专职网格员" in text and "****" in text  # staff phones masked
            page.screenshot(path=str(SCREENSHOTS / "overview-grid.png"))
        if level != "microgrid":
            children = api(server, f"/api/v1/areas?parent={code}")["features"]
            next_level = children[0]["properties"]["level"]
            wait_js(page, f"Number(document.body.dataset.gmLevel_{next_level}) > 0")
            target = children[len(children) // 2]
    crumbs = page.locator(".gm-crumbs a")
    assert crumbs.count() == 4  # district › sub-district › community › grid › (this micro-grid)
    crumbs.nth(1).click()
    wait_js(page, f"document.body.dataset.gmSelected === '{chain[0]}'")
    assert_clean(page, server)


# the page's API requests as the browser timed them
API_ENTRIES = """performance.getEntriesByType('resource').filter(e => e.name.includes('/api/v1/'))
  .map(e => ({path: e.name.replace(location.origin, ''), start: e.startTime, end: e.responseEnd}))"""


def test_the_first_screen_asks_for_its_view_at_once(page, server):
    """The page comes with the box of the districts the account sees: the first view is fitted before any request
    (no districts' outlines fetched only to fit it), and the clusters of the cases in that view are asked beside
    the points (all or none), not once the points' answer said there are too many — a province's first screen
    waited that round trip before its ~1 s of clusters. Fewer cases than the limit: the clusters are dropped and
    the points drawn; more: the clusters asked beside are drawn, with no second request for them."""
    open_overview(page, server)
    bounds = page.evaluate("GridmapPage.core.config.bounds")
    districts = api(server, "/api/v1/map/areas?level=district&zoom=10")["features"]
    boxes = [shape(f["geometry"]).bounds for f in districts]  # simplified for z10: within a pixel (0.0014°)
    extent = [min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes)]
    assert bounds == pytest.approx(extent, abs=2e-3)
    entries = page.evaluate(API_ENTRIES)
    assert not [e for e in entries if "/map/areas?level=district&zoom=10" in e["path"]], entries
    points = [e for e in entries if e["path"].startswith("/api/v1/map/cases?")]
    clusters = [e for e in entries if e["path"].startswith("/api/v1/map/cases/clusters?")]
    assert len(points) == 1 and len(clusters) == 1, entries
    assert clusters[0]["start"] <= points[0]["start"] < clusters[0]["end"]  # asked together, not one after
    assert int(page.evaluate("document.body.dataset.gmCases")) > 5
    assert page.evaluate("GridmapPage.rows.length") == int(page.evaluate("document.body.dataset.gmCases"))
    # more cases than the page draws itself: the clusters asked beside the points are the ones drawn
    page.evaluate("performance.clearResourceTimings(); GridmapPage.pointLimit = 5; void GridmapPage.loadCases()")
    wait_js(page, "(document.body.dataset.gmCaseView || '').startsWith('clusters:')")
    wait_idle(page)
    entries = page.evaluate(API_ENTRIES)
    clusters = [e for e in entries if e["path"].startswith("/api/v1/map/cases/clusters?")]
    points = [e for e in entries if e["path"].startswith("/api/v1/map/cases?")]
    assert len(clusters) == 1 and len(points) == 1, entries
    assert clusters[0]["start"] <= points[0]["start"]
    drawn = int(page.evaluate("document.body.dataset.gmCaseView").split(":")[1])
    assert page.locator(".gm-cluster-inner").count() == drawn
    assert_clean(page, server)


def test_layers_filters_choropleth_and_heat(page, server):
    open_overview(page, server)
    page.select_option("select[name=state]", "closed")
    page.select_option("select[name=colour]", "clock")
    page.select_option("select[name=measure]", "closure_rate")
    page.select_option("select[name=measure_level]", "grid")
    page.fill("input[name=since]", "2026-01-01")
    page.fill("input[name=until]", "2026-11-21")
    page.click(".gm-apply")
    wait_js(page, "(document.body.dataset.gmChoropleth || '').startsWith('closure_rate:grid:')")
    wait_idle(page)
    expected = api(server, "/api/v1/map/cases?state=closed&since=2025-12-31T16:00:00Z&until=2026-11-20T16:00:00Z")
    assert page.evaluate("GridmapPage.rows.length") == expected["count"] > 0
    assert page.evaluate("GridmapPage.rows.every(r => r[3] === 'closed')")
    measures = api(server, "/api/v1/measures?by=grid&since=2025-12-31T16:00:00Z&until=2026-11-20T16:00:00Z")["items"]
    with_value = [r for r in measures if r["key"] != "*" and r["closure_rate"] is not None]
    assert page.evaluate("document.body.dataset.gmChoropleth") == f"closure_rate:grid:{len(with_value)}"
    legend = page.locator(".gm-legend").inner_text()
    assert "结案率 · 网格" in legend and "%" in legend and "超期" in legend  # clock colours and the classes
    # a grid's fill colour is its class on the legend's ramp
    fills = page.evaluate("Object.values(GridmapPage.areas.levels.grid.byCode).map(l => l.options.fillColor)")
    assert len(set(fills)) >= 3
    toggle(page, "热力图")
    wait_js(page, "document.querySelector('canvas.leaflet-heatmap-layer') !== null")
    toggle(page, "事件")
    assert page.locator(".marker-cluster").count() == 0
    page.screenshot(path=str(SCREENSHOTS / "overview-choropleth-heat.png"))
    toggle(page, "微网格")
    page.evaluate("void GridmapPage.map.setZoom(15)")
    wait_js(page, "Number(document.body.dataset.gmLevel_microgrid) > 0")
    assert_clean(page, server)


def test_search_by_grid_code_place_and_case_number(page, server):
    open_overview(page, server)
    grid = api(server, "/api/v1/areas?level=grid")["features"][7]["properties"]
    page.fill("#gm-search", grid["code"])
    page.locator(".gm-search-item").first.click()
    wait_js(page, f"document.body.dataset.gmSelected === '{grid['code']}'")
    case = api(server, "/api/v1/cases?limit=1")["items"][0]
    page.fill("#gm-search", case["number"])
    page.locator(".gm-search-item[data-kind=case]").first.click()
    wait_js(page, f"document.body.dataset.gmOpenCase === '{case['id']}'")
    assert case["number"] in page.locator(".gm-case").inner_text()
    page.fill("#gm-search", "小区")
    page.locator(".gm-search-item[data-kind=place]").first.click()
    wait_js(page, "(document.body.dataset.gmPicked || '').startsWith('place:')")
    page.screenshot(path=str(SCREENSHOTS / "overview-search.png"))
    assert_clean(page, server)


XSS_TITLE = "<script>window.__xss = 1</script>${window.__xss = 2}"
XSS_TEXT = '<img src=x onerror="window.__xss = 3"><b onmouseover="window.__xss = 4">粗体</b> `${window.__xss = 5}`'


def test_resident_text_is_shown_as_text_everywhere(page, server):
    grid = api(server, "/api/v1/areas?level=grid")["features"][2]
    lon, lat = inner_point(grid)
    case = api(
        server,
        "/api/v1/cases",
        {
            "title": XSS_TITLE,
            "description": XSS_TEXT,
            "lon": lon,
            "lat": lat,
            "category": "E0101",
            "source": "miniprogram",
            "address": XSS_TEXT[:100],
        },
    )
    open_overview(page, server)
    page.evaluate(
        f"void GridmapPage.openCase({case['id']}, "
        f"L.marker(GridmapPage.core.point([{lon}, {lat}])).addTo(GridmapPage.map))"
    )
    wait_js(page, f"document.body.dataset.gmOpenCase === '{case['id']}'")
    popup = page.locator(".gm-case")
    assert popup.locator(".gm-case-title").text_content() == XSS_TITLE
    assert popup.locator(".gm-desc").text_content() == XSS_TEXT
    assert popup.locator("img, script, b").count() == 0
    page.screenshot(path=str(SCREENSHOTS / "overview-xss.png"))
    page.goto(server + "/dispatch")
    wait_idle(page)
    page.evaluate(f"void GridmapPage.open({case['id']})")
    wait_js(page, f"(document.body.dataset.gmCase || '').startsWith('{case['id']}:')")
    side = page.locator("#gm-side")
    assert side.locator(".gm-case-title").text_content() == XSS_TITLE
    assert side.locator(".gm-desc").text_content() == XSS_TEXT
    assert side.locator("img, script, b").count() == 0
    page.fill("#gm-search", case["number"])
    wait_js(page, "document.querySelectorAll('.gm-search-item').length > 0")
    page.screenshot(path=str(SCREENSHOTS / "dispatch-xss.png"))
    assert page.evaluate("window.__xss") is None
    assert_clean(page, server)


def test_english_pages(page, server):
    open_overview(page, server, "?lang=en")
    assert page.locator("#gm-title").text_content() == "Grid governance · Overview"
    assert page.locator(".leaflet-control-layers-overlays", has_text="Micro-grid").count() == 1
    assert page.locator(".gm-legend", has_text="Dispatched").count() == 1
    page.goto(server + "/dispatch?lang=en")
    wait_idle(page)
    assert page.locator("#gm-title").text_content() == "Grid governance · Dispatch console"
    assert page.locator(".gm-tab", has_text="Overdue").count() == 1
    page.screenshot(path=str(SCREENSHOTS / "dispatch-en.png"))
    assert_clean(page, server)


def test_a_gcj02_base_map_shifts_the_overlays(page, server, gcj_server, tile_server):
    base, asked = tile_server
    open_overview(page, server)
    vertices = "GridmapPage.areas.levels.district.layer.getLayers()[0].getLatLngs()[0][0].slice(0, 20)"
    plain = page.evaluate(vertices)
    open_overview(page, gcj_server)
    assert page.evaluate("document.documentElement.dataset.gmShift") == "gcj02"
    shifted = page.evaluate(vertices)
    # every vertex of the outline moved by the GCJ-02 offset at that vertex (a few hundred metres here)
    for p, s in zip(plain, shifted):
        expected = page.evaluate(f"gridmapGcj02({p['lat']}, {p['lng']})")
        assert abs(s["lat"] - expected[0]) < 1e-9 and abs(s["lng"] - expected[1]) < 1e-9
        metres = math.hypot(
            (s["lng"] - p["lng"]) * 111_320 * math.cos(math.radians(p["lat"])), (s["lat"] - p["lat"]) * 110_540
        )
        assert 100 < metres < 1000
    assert asked and page.locator("img.leaflet-tile-loaded").count() > 0  # the base map's tiles were drawn
    page.screenshot(path=str(SCREENSHOTS / "overview-gcj02.png"))
    # on that base map a click where a grid is drawn files the case in that grid (sent as GCJ-02)
    grid = api(gcj_server, "/api/v1/areas?level=grid")["features"][4]
    page.goto(gcj_server + "/dispatch")
    wait_idle(page)
    lon, lat = inner_point(grid)
    page.evaluate(f"void GridmapPage.map.setView(GridmapPage.core.point([{lon}, {lat}]), 17)")
    wait_idle(page)
    click_lonlat(page, lon, lat)
    wait_js(page, "document.body.dataset.gmCreating !== undefined")
    page.fill("#gm-create input[name=title]", "井盖缺失")
    page.click("#gm-create button[type=submit]")
    created = wait_js(page, "document.body.dataset.gmCreated")
    case = api(gcj_server, f"/api/v1/cases/{created.split(':')[0]}")
    assert case["grid_code"] == grid["properties"]["code"] and case["raw"]["crs"] == "gcj02"
    assert abs(case["lon"] - lon) < 1e-5 and abs(case["lat"] - lat) < 1e-5
    assert_clean(page, gcj_server, server, base)
