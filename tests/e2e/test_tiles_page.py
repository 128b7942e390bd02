"""The overview draws a level from the server's vector tiles (Leaflet.VectorGrid, served locally) where GeoJSON
would be too much: micro-grids switched on below the zoom where their outlines come as GeoJSON, and any level
whose view holds more areas than the page's limit (GRIDMAP_MAP_MAX_GEOJSON) — the server then only counts them:
a province's level never reaches the first screen as GeoJSON. Offline, under the pages' CSP, in headless
Chromium."""

import pytest

from tests.e2e.conftest import SCREENSHOTS, _serve, api, wait_idle, wait_js
from tests.e2e.test_map import assert_clean, open_overview, toggle

pytestmark = pytest.mark.e2e
FEW = 1  # the pages' GeoJSON limit in the last test (the small demo has 2 sub-districts)

DRAWN = """() => { const c = document.querySelectorAll('.leaflet-gmAreaTiles-pane canvas');
  let n = 0; for (const cv of c) { const d = cv.getContext('2d').getImageData(0, 0, cv.width, cv.height).data;
  for (let i = 3; i < d.length; i += 4) { if (d[i] > 0) { n += 1; } } } return n; }"""


def test_micro_grids_zoomed_out_come_as_tiles_and_as_geojson_zoomed_in(page, server):
    tiles = []
    page.on(
        "response",
        lambda r: tiles.append((r.status, r.headers.get("content-type"), r.url)) if "/api/v1/tiles/" in r.url else None,
    )
    open_overview(page, server)
    page.evaluate("void GridmapPage.map.setZoom(11)")
    wait_idle(page)
    toggle(page, "微网格")
    wait_js(page, "document.body.dataset.gmTiles_microgrid === '1'")
    wait_js(page, f"({DRAWN})() > 500", 30)  # the outlines are painted on the tiles' canvases
    assert page.evaluate("document.body.dataset.gmLevel_microgrid") == "0"  # no GeoJSON at this zoom
    page.screenshot(path=str(SCREENSHOTS / "overview-microgrid-tiles.png"))
    ok = [t for t in tiles if t[0] == 200 and "/microgrid/11/" in t[2]]
    assert ok and all(t[1] == "application/vnd.mapbox-vector-tile" for t in ok), tiles[:5]
    # zoomed in, the level comes as GeoJSON again (clickable, labelled) and the tiles are gone
    page.evaluate("void GridmapPage.map.setZoom(15)")
    wait_js(page, "Number(document.body.dataset.gmLevel_microgrid) > 0")
    assert page.evaluate("document.body.dataset.gmTiles_microgrid") == "0"
    assert page.locator(".leaflet-gmAreaTiles-pane canvas").count() == 0
    # switched off zoomed out: no tiles either
    page.evaluate("void GridmapPage.map.setZoom(11)")
    wait_js(page, "document.body.dataset.gmTiles_microgrid === '1'")
    toggle(page, "微网格")
    wait_js(page, "document.body.dataset.gmTiles_microgrid === '0'")
    assert_clean(page, server)


def test_a_level_too_large_for_geojson_is_drawn_from_tiles(page, server):
    open_overview(page, server)
    grids = len(api(server, "/api/v1/areas?level=grid")["features"])
    page.evaluate("void GridmapPage.map.setZoom(12)")
    wait_idle(page)
    toggle(page, "网格")
    wait_js(page, "Number(document.body.dataset.gmLevel_grid) > 3")  # as GeoJSON: under the page's limit
    assert int(page.evaluate("document.body.dataset.gmLevel_grid")) <= grids
    assert page.evaluate("document.body.dataset.gmTiles_grid") == "0"
    # the page's limit lowered below what the next view holds: that answer is dropped and tiles drawn instead,
    # and from then on that zoom goes to the tiles straight away
    page.evaluate("GridmapPage.areas.levels.grid.maxGeojson = 3; void GridmapPage.map.setZoom(13)")
    wait_js(page, "document.body.dataset.gmTiles_grid === '1'")
    assert page.evaluate("GridmapPage.areas.levels.grid.tooMany[13]") is True
    wait_js(page, "document.body.dataset.gmLevel_grid === '0'")
    wait_js(page, f"({DRAWN})() > 100", 30)
    assert_clean(page, server)


@pytest.fixture(scope="module")
def few_geojson_server(database):
    """The same database served with the pages' GeoJSON limit lowered to FEW areas a view (GRIDMAP_MAP_MAX_GEOJSON):
    the small demo's sub-districts are then "a province" to the first screen."""
    base, proc = _serve(database, map_max_geojson=FEW)
    yield base
    proc.terminate()
    proc.wait(10)


def test_the_first_screen_never_gets_a_level_larger_than_the_limit_as_geojson(page, server, few_geojson_server):
    subdistricts = len(api(server, "/api/v1/areas?level=subdistrict")["features"])
    assert subdistricts > FEW  # what the first screen shows is over the limit
    outlines = []

    def keep(response):
        if "/api/v1/map/areas" in response.url and response.status == 200:
            outlines.append((response.url, response.json()))

    page.on("response", keep)
    open_overview(page, few_geojson_server)
    wait_js(page, "document.body.dataset.gmTiles_subdistrict === '1'")
    wait_js(page, "Number(document.body.dataset.gmTilesReady_subdistrict) > 0", 30)
    wait_js(page, f"({DRAWN})() > 100", 30)  # the sub-districts are painted, from the tiles
    assert page.evaluate("document.body.dataset.gmLevel_subdistrict") == "0"
    asked = [(url, fc) for url, fc in outlines if "level=subdistrict" in url]
    assert asked, outlines
    for url, fc in outlines:  # no answer carried more areas than the page may draw as GeoJSON
        assert len(fc["features"]) <= FEW, (url, fc["numberMatched"], len(fc["features"]))
    for url, fc in asked:  # the server counted them and sent none
        assert f"max_features={FEW}" in url and fc["numberMatched"] > FEW and fc["features"] == [], url
    tiles = [u for u in page.requests if "/api/v1/tiles/subdistrict/" in u]
    assert tiles, page.requests[-10:]
    assert_clean(page, few_geojson_server, server)
