"""The overview draws a level from the server's vector tiles (Leaflet.VectorGrid, served locally) where GeoJSON
would be too much: micro-grids switched on below the zoom where their outlines come as GeoJSON, and any level
whose GeoJSON answer for the view is over the page's limit. Offline, under the pages' CSP, in headless Chromium."""

import pytest

from tests.e2e.conftest import SCREENSHOTS, api, wait_idle, wait_js
from tests.e2e.test_map import assert_clean, open_overview, toggle

pytestmark = pytest.mark.e2e

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
