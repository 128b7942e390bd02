"""The overview map in a real headless Chromium: loads offline, toggles layers, clicks a grid, shows its panel."""

import json
import urllib.request

import pytest
from shapely.geometry import shape

from tests.e2e.conftest import SCREENSHOTS

pytestmark = pytest.mark.e2e


def _api(server, path):
    with urllib.request.urlopen(server + path) as r:
        return json.load(r)


def _wait_idle(page):
    page.wait_for_selector(".leaflet-container")
    page.wait_for_function("document.body.dataset.gmIdle === '1' && document.body.dataset.gmLevel_grid !== undefined",
                           timeout=20_000)


def _toggle(page, label):
    page.locator(".leaflet-control-layers-overlays label", has_text=label).locator("input").click()


def _click_lonlat(page, lon, lat):
    x, y = page.evaluate("([lat, lon]) => { const p = GridmapApp.map.latLngToContainerPoint([lat, lon]);"
                         " const r = GridmapApp.map.getContainer().getBoundingClientRect();"
                         " return [p.x + r.left, p.y + r.top]; }", [lat, lon])
    page.mouse.click(x, y)


def test_map_loads_offline_toggles_layers_and_opens_a_grid(page, server):
    page.goto(server + "/")
    _wait_idle(page)
    grids = _api(server, "/api/v1/areas?level=grid")["features"]
    assert page.evaluate("document.body.dataset.gmLevel_grid") == str(len(grids))
    assert int(page.evaluate("document.body.dataset.gmCases")) > 0
    assert page.locator("#gm-title").text_content() == "网格化管理 · 总览"

    _toggle(page, "事件（近30天）")  # hide the case markers so that the click reaches the grid
    assert page.locator(".leaflet-marker-icon").count() == 0
    target = grids[len(grids) // 2]
    point = shape(target["geometry"]).representative_point()
    _click_lonlat(page, point.x, point.y)
    page.wait_for_selector(f"#gm-detail[data-code='{target['properties']['code']}']", timeout=10_000)
    detail = page.locator("#gm-detail").inner_text()
    assert target["properties"]["name"] in detail and "党支部" in detail and "网格长" in detail

    _toggle(page, "微网格")
    page.wait_for_function("document.body.dataset.gmLevel_microgrid !== undefined", timeout=10_000)
    assert int(page.evaluate("document.body.dataset.gmLevel_microgrid")) == len(
        _api(server, "/api/v1/areas?level=microgrid")["features"])
    page.screenshot(path=str(SCREENSHOTS / "overview.png"))

    assert page.console_errors == []
    outside = [u for u in page.requests if not u.startswith(server) and not u.startswith(("data:", "blob:"))]
    assert outside == [], f"requests left the machine: {outside[:5]}"


def test_english_page(page, server):
    page.goto(server + "/?lang=en")
    _wait_idle(page)
    assert page.locator("#gm-title").text_content() == "Grid governance · Overview"
    assert page.locator(".leaflet-control-layers-overlays", has_text="Micro-grid").count() == 1
    assert page.console_errors == []
