"""The dispatcher console in a real headless Chromium: a case created by clicking the map is routed and shown with
its reasons; a case with no category is filed and dispatched from the console and the overview shows the change;
new cases arrive without a reload; an address finds its place (confirmed before the pin moves); a refused step
shows the problem's message. (The dispatcher's whole day: test_dispatcher_day.py.) The
console is opened by the district's dispatcher, signed in (the `page` fixture)."""

import pytest

from tests.e2e.conftest import SCREENSHOTS, api, wait_idle, wait_js
from tests.e2e.test_map import assert_clean, click_lonlat, inner_point, open_overview

pytestmark = pytest.mark.e2e


def open_console(page, server):
    page.goto(server + "/dispatch")
    wait_js(page, "document.body.dataset.gmPolls !== undefined")
    wait_idle(page)


def go_to(page, lon, lat, zoom=17):
    page.evaluate(f"void GridmapPage.map.setView(GridmapPage.core.point([{lon}, {lat}]), {zoom})")
    wait_idle(page)


def test_a_case_created_by_clicking_the_map_is_routed_and_says_why(page, server):
    grid = api(server, "/api/v1/areas?level=grid")["features"][6]
    code = grid["properties"]["code"]
    open_console(page, server)
    page.screenshot(path=str(SCREENSHOTS / "dispatch.png"))
    lon, lat = inner_point(grid)
    go_to(page, lon, lat)
    click_lonlat(page, lon, lat)
    wait_js(page, "document.body.dataset.gmCreating !== undefined")
    page.fill("#gm-create input[name=title]", "路灯不亮")
    page.select_option("#gm-create select[name=category]", "E0101")
    page.fill("#gm-create textarea[name=description]", "小区门口路灯坏了三天")
    page.click("#gm-create button[type=submit]")
    created = wait_js(page, "document.body.dataset.gmCreated")
    case_id, state = created.split(":")
    assert state == "dispatched"
    wait_js(page, f"document.body.dataset.gmCase === '{case_id}:dispatched'")
    wait_idle(page)
    routing = page.locator(".gm-routing").inner_text()
    staff = api(server, f"/api/v1/areas/{code}")["properties"]["staff"]
    worker = next(s for s in staff if s["role"] == "fulltime_worker")
    assert grid["properties"]["name"] in routing and worker["name"] in routing and "先属地" in routing
    assert "坐标" in routing  # placed by its coordinates
    page.screenshot(path=str(SCREENSHOTS / "dispatch-created.png"))
    assert_clean(page, server)


def test_dispatching_from_the_console_changes_the_overview(browser, page, server):
    grid = api(server, "/api/v1/areas?level=grid")["features"][8]
    lon, lat = inner_point(grid)
    # the overview, open in another tab, shows the grid's cases
    overview = page.context.new_page()
    overview.console_errors = []
    overview.on("console", lambda m: overview.console_errors.append(m.text) if m.type == "error" else None)
    open_overview(overview, server, "?lang=zh")
    open_console(page, server)
    go_to(page, lon, lat)
    click_lonlat(page, lon, lat)
    wait_js(page, "document.body.dataset.gmCreating !== undefined")
    page.fill("#gm-create input[name=title]", "楼道堆物")  # no category: waits for a dispatcher
    page.click("#gm-create button[type=submit]")
    case_id, state = wait_js(page, "document.body.dataset.gmCreated").split(":")
    assert state == "reported"
    wait_js(page, f"(document.body.dataset.gmQueueIds || '').split(',').includes('{case_id}')")
    wait_js(page, f"document.body.dataset.gmCase === '{case_id}:reported'")
    # 立案 with a category, then 派遣 by the rules
    page.locator(".gm-action-file summary").click()
    page.select_option(".gm-action-file select[name=category]", "E0301")
    page.locator(".gm-action-file button[type=submit]").click()
    wait_js(page, f"document.body.dataset.gmCase === '{case_id}:filed'")
    wait_idle(page)
    page.locator(".gm-action-dispatch summary").click()
    page.locator(".gm-action-dispatch button[type=submit]").click()
    wait_js(page, f"document.body.dataset.gmCase === '{case_id}:dispatched'")
    wait_idle(page)
    assert page.locator(".gm-routing").inner_text().count("先属地") == 1
    assert case_id not in page.evaluate("document.body.dataset.gmQueueIds").split(",")  # left the queue
    page.screenshot(path=str(SCREENSHOTS / "dispatch-dispatched.png"))
    # the overview: apply the filters again and the case is there, dispatched, in its grid's open count
    overview.bring_to_front()
    overview.select_option("select[name=state]", "dispatched")
    overview.click(".gm-apply")
    wait_js(overview, f"GridmapPage.rows.some(r => r[0] === {case_id} && r[3] === 'dispatched')")
    overview.evaluate(f"GridmapPage.select('{grid['properties']['code']}', true)")
    wait_js(overview, f"document.body.dataset.gmMeasures === '{grid['properties']['code']}'")
    counts = api(server, f"/api/v1/areas/{grid['properties']['code']}")["properties"]["cases"]
    assert f"未办结\n{counts['open']}" in overview.locator("#gm-detail").inner_text().replace("\t", "\n")
    assert overview.console_errors == []
    assert_clean(page, server)


def test_the_console_sees_new_cases_without_a_reload(page, server):
    open_console(page, server)
    polls = int(page.evaluate("document.body.dataset.gmPolls"))
    page.evaluate("window.gmSamePage = true")  # gone if the page were loaded again
    grid = api(server, "/api/v1/areas?level=grid")["features"][1]
    lon, lat = inner_point(grid)
    case = api(server, "/api/v1/cases", {"title": "噪声扰民", "lon": lon, "lat": lat, "source": "hotline"})
    wait_js(page, f"(document.body.dataset.gmQueueIds || '').split(',').includes('{case['id']}')", 10)
    # it came by polling, not a reload: a poll counts itself once its queue's page and the tabs' counts are both
    # in, so the page may show the case a moment before the count moves (seen on CI under load)
    wait_js(page, f"Number(document.body.dataset.gmPolls) > {polls}", 10)
    assert page.evaluate("window.gmSamePage === true")
    item = page.locator(f".gm-queue-item[data-case-id='{case['id']}']")
    assert item.locator(".gm-new").count() == 1 and "噪声扰民" in item.inner_text()
    assert page.locator(".gm-notice").inner_text().startswith("1")
    page.screenshot(path=str(SCREENSHOTS / "dispatch-live.png"))
    assert_clean(page, server)


def test_an_address_finds_its_place_and_a_refused_step_shows_why(page, server):
    open_console(page, server)
    place = api(server, "/api/v1/search?q=%E5%B0%8F%E5%8C%BA")["items"][0]  # a compound
    page.evaluate("void GridmapPage.createAt(GridmapPage.map.getCenter())")
    page.fill(".gm-find input[name=find]", place["label"])
    page.click(".gm-find button[type=submit]")
    # the match is shown (place, confidence) and the pin moves only when the dispatcher confirms it
    wait_js(page, "document.body.dataset.gmMatch === 'matched'")
    assert page.evaluate("document.body.dataset.gmFound") is None
    match = page.locator("#gm-side .gm-match").inner_text()
    assert place["label"].split(" ")[0][:4] in match and "置信度" in match, match
    page.click("#gm-side .gm-confirm-place")
    found = wait_js(page, "document.body.dataset.gmFound")
    assert found == f"{place['point'][0]:.5f},{place['point'][1]:.5f}"
    page.fill("#gm-create input[name=title]", "违章搭建")
    page.click("#gm-create button[type=submit]")
    case_id, state = wait_js(page, "document.body.dataset.gmCreated").split(":")
    case = api(server, f"/api/v1/cases/{case_id}")
    assert case["address"] == place["label"]
    assert case["microgrid_code"] == place["area_code"] or case["grid_code"] == place["area_code"][:15]
    # filing with no category is refused; the console shows the problem's own words and stores nothing
    wait_js(page, f"document.body.dataset.gmCase === '{case_id}:reported'")
    page.locator(".gm-action-file summary").click()
    page.locator(".gm-action-file button[type=submit]").click()
    wait_js(page, "document.body.dataset.gmLastError === 'category'")
    assert "类别" in page.locator("#gm-side .gm-error").inner_text()  # the problem's own words, in Chinese
    assert api(server, f"/api/v1/cases/{case_id}")["state"] == "reported"
    page.console_errors = [e for e in page.console_errors if "422" not in e]  # the refused request itself
    assert_clean(page, server)


def test_reassign_to_a_department_and_whistle_from_the_console(page, server):
    grid = api(server, "/api/v1/areas?level=grid")["features"][3]
    lon, lat = inner_point(grid)
    case = api(
        server,
        "/api/v1/cases",
        {
            "title": "占道经营",
            "lon": lon,
            "lat": lat,
            "category": "E0101",
            "source": "hotline",
            "reporter_name": "王小明",
            "reporter_phone": "13812341234",
        },
    )
    assert case["state"] == "dispatched" and case["assignee_id"]
    open_console(page, server)
    page.evaluate(f"void GridmapPage.open({case['id']})")
    wait_js(page, f"document.body.dataset.gmCase === '{case['id']}:dispatched'")
    wait_idle(page)
    # a dispatcher calls the resident back: the console shows the contact in full (and the audit log says so)
    assert "王小明 · 13812341234" in page.locator("#gm-side .gm-info").inner_text()
    # 改派 to a department, with a reason
    page.locator(".gm-action-reassign summary").click()
    page.select_option(".gm-action-reassign select[name=mode]", "department")
    page.select_option(".gm-action-reassign select[name=department]", "CG")
    page.fill(".gm-action-reassign input[name=reason]", "需执法部门处置")
    page.locator(".gm-action-reassign button[type=submit]").click()
    wait_js(page, f"document.body.dataset.gmLastAction === 'reassign:{case['id']}:dispatched'")
    wait_idle(page)
    routing = page.locator(".gm-routing").inner_text()
    assert "区城市管理局" in routing and "调度员指定" in routing and "需执法部门处置" in routing
    # the department accepts; then the dispatcher whistles another department in (吹哨)
    now = api(server, f"/api/v1/cases/{case['id']}")
    api(
        server, f"/api/v1/cases/{case['id']}/actions/accept", {"version": now["version"]}, as_="demo-department"
    )  # the demo's department account is 区城市管理局 (CG)
    page.evaluate(f"void GridmapPage.open({case['id']})")
    wait_js(page, f"document.body.dataset.gmCase === '{case['id']}:accepted'")
    wait_idle(page)
    page.locator(".gm-action-whistle summary").click()
    page.select_option(".gm-action-whistle select[name=department]", "SW")
    page.locator(".gm-action-whistle button[type=submit]").click()
    wait_js(page, f"document.body.dataset.gmLastAction === 'whistle:{case['id']}:accepted'")
    history = api(server, f"/api/v1/cases/{case['id']}")["history"]
    assert [e["action"] for e in history][-3:] == ["reassign", "accept", "whistle"]
    assert history[-1]["actor"].startswith("dispatcher:")
    page.screenshot(path=str(SCREENSHOTS / "dispatch-whistle.png"))
    assert_clean(page, server)
