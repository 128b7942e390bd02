"""The phone, in a real Chromium at 390×844 with touch (issue 14 §3): the grid worker's day on /m — accept a case,
handle it with a photo before and one after, a patrol report handled on the spot (即报即处) at the phone's position
inside the worker's grid; a bounce with its reason, an extension request, and a refused photo whose problem detail
the worker reads; and every page (overview, console, planner's workspace, /m) without horizontal scrolling, with a
panel that folds away, a first view that shows the district (or the planner's area) and map controls clear of the
panel's links. Screenshots in tests/e2e/screenshots/phone-*.png."""

from __future__ import annotations

import io
import json

import pytest
from PIL import Image
from shapely.geometry import shape

from gridmap.geo.crs import wgs84_to_gcj02
from tests.e2e.conftest import PHONE, SCREENSHOTS, api, new_context, status_of, wait_idle, wait_js
from tests.e2e.test_map import assert_clean, inner_point

pytestmark = pytest.mark.e2e

NO_SCROLL = "document.scrollingElement.scrollWidth <= window.innerWidth"


def jpeg(colour, size=(64, 48)) -> dict:
    """A JPEG for a file input: a small plain one, or (`colour` "noise") a camera-sized one of about 5 MB."""
    out = io.BytesIO()
    image = Image.effect_noise(size, 64).convert("RGB") if colour == "noise" else Image.new("RGB", size, colour)
    image.save(out, "JPEG", quality=90 if colour == "noise" else 80)
    return {"name": f"photo-{colour}.jpg", "mimeType": "image/jpeg", "buffer": out.getvalue()}


def worker_grid(server):
    """The grid of demo-worker (the district's first grid) and a point well inside it."""
    grids = sorted(api(server, "/api/v1/areas?level=grid")["features"], key=lambda f: f["properties"]["code"])
    return grids[0]["properties"]["code"], inner_point(grids[0])


def new_case(server, title, lonlat):
    """A case in the worker's grid, filed and dispatched to its worker by the rules (an event: territory first)."""
    lon, lat = lonlat
    case = api(
        server,
        "/api/v1/cases",
        {
            "title": title,
            "lon": lon,
            "lat": lat,
            "category": "E0101",
            "source": "hotline",
            "description": "门口路灯不亮",
        },
    )
    assert case["state"] == "dispatched", case["state"]
    return case


def open_m(pg, server, query=""):
    pg.goto(server + "/m" + query)
    wait_js(pg, "document.body.dataset.gmMobileCases !== undefined")
    wait_idle(pg)


def open_case(pg, case_id):
    pg.locator(f".gm-m-case[data-id='{case_id}']").tap()
    wait_js(pg, f"(document.body.dataset.gmMobileCase || '').startsWith('{case_id}:')")
    wait_idle(pg)


def state_shown(pg, case_id, state):
    wait_js(pg, f"document.body.dataset.gmMobileCase === '{case_id}:{state}'")
    wait_idle(pg)


def no_horizontal_scroll(pg):
    assert pg.evaluate(NO_SCROLL), pg.evaluate("[document.scrollingElement.scrollWidth, window.innerWidth]")


def test_the_workers_day_on_the_phone(signed_in, server):
    code, point = worker_grid(server)
    case = new_case(server, "手机签收处置测试", point)
    pg = signed_in("demo-worker", viewport=PHONE, mobile=True)
    pg.context.grant_permissions(["geolocation"], origin=server)
    inside = (point[0] + 0.00005, point[1] + 0.00005)
    pg.context.set_geolocation({"longitude": inside[0], "latitude": inside[1], "accuracy": 12})
    open_m(pg, server)
    assert pg.locator("#gm-title").text_content() == "网格化管理 · 网格员"
    item = pg.locator(f".gm-m-case[data-id='{case['id']}']")
    assert item.count() == 1 and "待签收" in item.inner_text()
    no_horizontal_scroll(pg)
    # every tap target of the list and the tabs is at least 44 px high
    heights = pg.evaluate(
        "[...document.querySelectorAll('.gm-m-tab, .gm-m-case, #gm-user button')]"
        ".filter(e => e.offsetParent).map(e => e.getBoundingClientRect().height)"
    )
    assert heights and min(heights) >= 44, heights
    pg.screenshot(path=str(SCREENSHOTS / "phone-m-list.png"))

    # the case: navigate (geo: in WGS84, AMap and Baidu in GCJ-02), accept
    open_case(pg, case["id"])
    geo = pg.locator(".gm-m-link-geo").get_attribute("href")
    assert geo.startswith(f"geo:{case['lat']:.6f},{case['lon']:.6f}")
    glon, glat = wgs84_to_gcj02(case["lon"], case["lat"])
    amap = pg.locator(".gm-m-link-amap").get_attribute("href")
    assert f"position={glon:.6f},{glat:.6f}" in amap and "coordinate=gaode" in amap, (amap, glon, glat)
    baidu = pg.locator(".gm-m-link-baidu").get_attribute("href")
    assert f"location={glat:.6f},{glon:.6f}" in baidu and "coord_type=gcj02" in baidu
    pg.locator(".gm-m-accept").tap()
    state_shown(pg, case["id"], "accepted")
    assert "已完成" in pg.locator("#gm-m-case .gm-m-message").inner_text()
    due = pg.locator("#gm-m-case .gm-m-badges .gm-m-due")
    assert due.inner_text().startswith("剩余") and "gm-m-due-green" in due.get_attribute("class")
    pg.screenshot(path=str(SCREENSHOTS / "phone-m-accepted.png"), full_page=True)

    # handled with a photo before and one after
    pg.fill("#gm-m-handle-note", "已更换灯泡，恢复照明")
    pg.set_input_files("#gm-m-before", jpeg("gray"))
    camera = jpeg("noise", (3000, 2250))
    assert len(camera["buffer"]) > 3_000_000
    pg.set_input_files("#gm-m-after", camera)  # made smaller on the phone before it is sent
    pg.locator(".gm-m-handle button[type=submit]").tap()
    state_shown(pg, case["id"], "handled")
    wait_js(pg, "document.querySelectorAll('#gm-m-case .gm-m-photos img').length === 2")
    photos = api(server, f"/api/v1/cases/{case['id']}/attachments")["items"]
    assert sorted(p["stage"] for p in photos) == ["after", "before"]
    after = next(p for p in photos if p["stage"] == "after")
    assert (after["width"], after["height"]) == (2048, 1536) and after["bytes"] < len(camera["buffer"]), after
    history = api(server, f"/api/v1/cases/{case['id']}")["history"]
    actions = [e["action"] for e in history]
    assert actions[-4:] == ["accept", "attach", "attach", "handle"], actions  # the photos before the handling
    assert "已更换灯泡，恢复照明" in json.dumps(history[-1], ensure_ascii=False)  # the note is on record
    assert "等待核查" in pg.locator("#gm-m-case").inner_text()
    no_horizontal_scroll(pg)
    pg.screenshot(path=str(SCREENSHOTS / "phone-m-handled.png"), full_page=True)

    # a patrol report at the phone's position, handled on the spot, with a photo of the site and one after
    pg.locator("#gm-m-tab-patrol").tap()
    pg.select_option("#gm-m-patrol-category", "E0101")
    pg.fill("#gm-m-patrol-title", "巡查发现路灯损坏")
    pg.locator("#gm-m-locate").tap()
    wait_js(pg, f"(document.body.dataset.gmMobileGrid || '') === '{code}:mine'")
    assert "所在网格" in pg.locator("#gm-m-position").inner_text()
    pg.set_input_files("#gm-m-patrol-photos", jpeg("blue"))
    pg.locator("label[for=gm-m-onspot]").tap()
    assert pg.locator("#gm-m-onspot").is_checked()
    pg.fill("#gm-m-patrol-note", "当场更换")
    pg.set_input_files("#gm-m-patrol-after", jpeg("green"))
    no_horizontal_scroll(pg)
    pg.screenshot(path=str(SCREENSHOTS / "phone-m-patrol.png"), full_page=True)
    pg.locator(".gm-m-patrol button[type=submit]").tap()
    patrol_id, state = wait_js(pg, "document.body.dataset.gmMobilePatrol").split(":")
    wait_idle(pg)
    assert state == "handled"
    report = api(server, f"/api/v1/cases/{patrol_id}")
    assert report["source"] == "patrol" and report["grid_code"] == code
    assert abs(report["lon"] - inside[0]) < 1e-6 and abs(report["lat"] - inside[1]) < 1e-6
    stages = sorted(p["stage"] for p in api(server, f"/api/v1/cases/{patrol_id}/attachments")["items"])
    assert stages == ["after", "patrol"]
    assert "已上报" in pg.locator("#gm-m-patrol .gm-m-message").inner_text()
    pg.screenshot(path=str(SCREENSHOTS / "phone-m-patrol-sent.png"), full_page=True)
    assert_clean(pg, server)


def test_bounce_extension_and_a_refusal_on_the_phone(signed_in, server):
    _, point = worker_grid(server)
    bounced = new_case(server, "不属本网格的事件", point)
    extended = new_case(server, "需要延期的事件", point)
    pg = signed_in("demo-worker", viewport=PHONE, mobile=True)
    open_m(pg, server)
    # a bounce needs a reason (said on the page), then goes back to the dispatcher with it
    open_case(pg, bounced["id"])
    pg.locator(".gm-m-bounce summary").tap()
    pg.locator(".gm-m-bounce button[type=submit]").tap()
    assert pg.locator("#gm-m-case .gm-m-error").inner_text() == "请填写原因。"
    pg.fill("#gm-m-bounce-reason", "该处属于道路红线内，归市政部门")
    pg.locator(".gm-m-bounce button[type=submit]").tap()
    state_shown(pg, bounced["id"], "filed")
    case = api(server, f"/api/v1/cases/{bounced['id']}")
    assert case["history"][-1]["action"] == "bounce"
    assert case["history"][-1]["detail"]["reason"] == "该处属于道路红线内，归市政部门"
    pg.locator(".gm-m-back").tap()
    wait_idle(pg)
    assert pg.locator(f".gm-m-case[data-id='{bounced['id']}']").count() == 0  # no longer the worker's
    # accept, then ask for two more working days
    open_case(pg, extended["id"])
    pg.locator(".gm-m-accept").tap()
    state_shown(pg, extended["id"], "accepted")
    # a file named .jpg that is not an image: the API's refusal is shown in Chinese and nothing changes
    pg.set_input_files(
        "#gm-m-before",
        {"name": "fake.jpg", "mimeType": "image/jpeg", "buffer": b"<html><script>alert(1)</script></html>"},
    )
    pg.locator(".gm-m-handle button[type=submit]").tap()
    wait_js(pg, "document.querySelector('#gm-m-case .gm-m-error').textContent.length > 0")
    wait_idle(pg)
    error = pg.locator("#gm-m-case .gm-m-error").inner_text()
    assert error.startswith("操作失败：") and any("\u4e00" <= ch <= "\u9fff" for ch in error[5:]), error
    assert api(server, f"/api/v1/cases/{extended['id']}")["state"] == "accepted"
    pg.screenshot(path=str(SCREENSHOTS / "phone-m-refused.png"), full_page=True)
    pg.locator(".gm-m-extension summary").tap()
    pg.fill("#gm-m-extension-reason", "需等待配件到货")
    pg.fill("#gm-m-extension-amount", "2")
    pg.select_option("#gm-m-extension-unit", "work_days")
    pg.locator(".gm-m-extension button[type=submit]").tap()
    wait_js(pg, "document.body.dataset.gmMobileDone === 'request_extension:accepted'")
    wait_idle(pg)
    pending = api(server, f"/api/v1/cases/{extended['id']}")
    request = pending.get("pending_request") or pending.get("pending")
    assert request["kind"] == "extension" and request["amount"] == 2 and request["unit"] == "work_days"
    assert "待审批" in pg.locator("#gm-m-case .gm-m-table").inner_text()
    assert pg.locator("#gm-m-case .gm-m-message").inner_text() == "已完成：申请延期"
    assert pg.locator(".gm-m-extension").count() == 0  # one request at a time
    pg.screenshot(path=str(SCREENSHOTS / "phone-m-extension.png"), full_page=True)
    pg.console_errors = [e for e in pg.console_errors if "422" not in e]  # the refused photo
    assert_clean(pg, server)


def test_a_patrol_report_placed_by_a_tap_on_a_gcj02_base_map(signed_in, gcj_server, tile_server):
    """On an AMap-style base map the tapped point is sent as GCJ-02 (kept raw) and stored in WGS84 in the grid
    drawn under the finger."""
    code, (lon, lat) = worker_grid(gcj_server)
    pg = signed_in("demo-worker", viewport=PHONE, mobile=True)
    open_m(pg, gcj_server)
    pg.locator("#gm-m-tab-patrol").tap()
    pg.evaluate(f"void GridmapPage.map.setView(GridmapPage.core.point([{lon}, {lat}]), 17)")
    wait_idle(pg)
    pg.locator("#gm-m-patrol-map").scroll_into_view_if_needed()
    x, y = pg.evaluate(
        "([lon, lat]) => { const m = GridmapPage.map, p = m.latLngToContainerPoint("
        "GridmapPage.core.point([lon, lat])), r = m.getContainer().getBoundingClientRect();"
        " return [p.x + r.left, p.y + r.top]; }",
        [lon, lat],
    )
    pg.mouse.click(x, y)
    wait_js(pg, f"(document.body.dataset.gmMobileGrid || '') === '{code}:mine'")
    pg.select_option("#gm-m-patrol-category", "E0101")
    pg.fill("#gm-m-patrol-title", "地图点选的巡查上报")
    pg.locator(".gm-m-patrol button[type=submit]").tap()
    case_id, state = wait_js(pg, "document.body.dataset.gmMobilePatrol").split(":")
    wait_idle(pg)
    case = api(gcj_server, f"/api/v1/cases/{case_id}")
    assert case["raw"]["crs"] == "gcj02" and case["grid_code"] == code and state == "dispatched"
    assert abs(case["lon"] - lon) < 2e-5 and abs(case["lat"] - lat) < 2e-5  # within a pixel at z17
    assert_clean(pg, gcj_server, tile_server[0])


def test_who_may_open_the_worker_page(browser, server):
    """Signed out: to the sign-in page and back; accounts that act on cases open it; others (a viewer) get 403."""
    assert status_of(server, "/m", as_="demo-worker") == 200
    assert status_of(server, "/m", as_="demo-dispatcher") == 200
    assert status_of(server, "/m", as_="demo-viewer") == 403
    context = new_context(browser, PHONE, True)
    pg = context.new_page()
    pg.goto(server + "/m?lang=en")
    assert pg.url.startswith(server + "/login?next=%2Fm%3Flang%3Den")
    assert pg.evaluate(NO_SCROLL)  # the sign-in page fits a phone too
    context.close()


def test_an_account_with_no_cases_of_its_own_is_told_so(signed_in, server):
    """A dispatcher may open /m (it acts on cases) but holds none: the list says why, in Chinese; no patrol tab."""
    pg = signed_in("demo-dispatcher", viewport=PHONE, mobile=True)
    open_m(pg, server)
    assert pg.evaluate("document.body.dataset.gmMobileCases") == "none"
    said = pg.locator("#gm-m-list").inner_text()
    assert said.startswith("处置人") and "网格员" in said, said
    assert not pg.locator("#gm-m-tab-patrol").is_visible()
    pg.console_errors = [e for e in pg.console_errors if "422" not in e]  # that refusal itself
    assert_clean(pg, server)


def test_the_worker_page_in_english(signed_in, server):
    pg = signed_in("demo-worker", viewport=PHONE, mobile=True)
    open_m(pg, server, "?lang=en")
    assert pg.locator("#gm-title").text_content() == "Grid governance · Grid worker"
    assert pg.locator("#gm-m-tab-patrol").inner_text() == "Patrol report"
    assert pg.evaluate("document.documentElement.lang") == "en"
    no_horizontal_scroll(pg)
    assert_clean(pg, server)


def district_bounds(server):
    b = shape(api(server, "/api/v1/areas?level=district")["features"][0]["geometry"]).bounds
    return [[b[1], b[0]], [b[3], b[2]]]


# page → (account, what tells that the page has drawn, the bounds the first view must contain: a JS expression)
MAP_PAGES = {
    "/": (
        "demo-dispatcher",
        "document.body.dataset.gmCases !== undefined && document.body.dataset.gmLevel_subdistrict",
        "district",
    ),
    "/dispatch": ("demo-dispatcher", "document.body.dataset.gmPolls !== undefined", "district"),
    "/plan": ("demo-planner", "document.body.dataset.gmPlanLoads", "GridmapPage.units.getBounds()"),
}

OVERLAPS = """() => {
    const box = e => e.getBoundingClientRect();
    const hit = (a, b) => Math.min(a.right, b.right) - Math.max(a.left, b.left) > 0.5 &&
                          Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top) > 0.5;
    const links = [...document.querySelectorAll('#gm-panel-head a, .gm-nav a, #gm-panel-toggle')];
    const controls = [...document.querySelectorAll('.leaflet-control-layers, .leaflet-control-zoom')];
    const out = [];
    controls.forEach(c => links.forEach(l => { if (hit(box(c), box(l))) out.push([c.className, l.id]); }));
    const panel = document.getElementById('gm-panel');
    controls.forEach(c => { if (hit(box(c), box(panel))) out.push([c.className, 'gm-panel']); });
    return out;
}"""


@pytest.mark.parametrize("path", MAP_PAGES)
def test_every_map_page_fits_a_phone(signed_in, server, path):
    account, ready, bounds = MAP_PAGES[path]
    pg = signed_in(account, viewport=PHONE, mobile=True)
    pg.goto(server + path)
    wait_js(pg, ready)
    wait_idle(pg)
    name = path.strip("/") or "overview"
    no_horizontal_scroll(pg)
    panel = pg.locator("#gm-panel").bounding_box()
    assert panel["x"] >= 0 and panel["x"] + panel["width"] <= PHONE["width"], panel
    # the first view shows the district (the planner: the area it opened), not zoom 6 far to the west
    target = f"L.latLngBounds({district_bounds(server)})" if bounds == "district" else bounds
    assert pg.evaluate(f"GridmapPage.map.getBounds().contains({target})"), pg.evaluate(
        "[GridmapPage.map.getZoom(), GridmapPage.map.getCenter()]"
    )
    assert pg.evaluate("GridmapPage.map.getZoom()") >= 9
    # the map's controls cover neither the panel nor its links
    assert pg.evaluate(OVERLAPS) == []
    pg.screenshot(path=str(SCREENSHOTS / f"phone-{name}.png"))
    # the panel folds away (its side sheet with it) and the map is free; the button stays in reach
    toggle = pg.locator("#gm-panel-toggle")
    assert toggle.get_attribute("aria-expanded") == "true" and toggle.inner_text() == "收起"
    toggle.tap()
    assert pg.evaluate("document.body.dataset.gmPanel") == "closed"
    assert toggle.get_attribute("aria-expanded") == "false" and toggle.inner_text() == "展开"
    assert not pg.locator("#gm-body").is_visible()
    assert not pg.locator("#gm-side").is_visible()  # the planner's balance table folds too; elsewhere none is open
    folded = pg.locator("#gm-panel").bounding_box()
    assert folded["height"] < 80, folded
    box = toggle.bounding_box()
    assert box["height"] >= 44 and box["x"] + box["width"] <= PHONE["width"]
    assert pg.evaluate(OVERLAPS) == []
    no_horizontal_scroll(pg)
    pg.screenshot(path=str(SCREENSHOTS / f"phone-{name}-folded.png"))
    toggle.tap()
    assert pg.locator("#gm-body").is_visible() and toggle.inner_text() == "收起"
    if path == "/dispatch":  # a case opened, the panel folded: the map and the case's sheet share the screen
        pg.locator(".gm-queue-item .gm-queue-title").first.tap()
        wait_js(pg, "document.body.dataset.gmCase")
        wait_idle(pg)
        toggle.tap()
        side = pg.locator("#gm-side").bounding_box()
        assert (
            pg.locator("#gm-side").is_visible() and side["y"] - (pg.locator("#gm-panel").bounding_box()["y"] + 80) > 300
        )
        no_horizontal_scroll(pg)
        pg.screenshot(path=str(SCREENSHOTS / "phone-dispatch-case-folded.png"))
    assert_clean(pg, server)
