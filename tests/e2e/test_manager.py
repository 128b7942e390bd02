"""The grid manager's day on the overview, in a real headless Chromium at 1440×900 and at 390×844 with touch, as the
demo manager (网格长 of the first community): open a grid's panel from the search box, list its overdue cases, open
one with its timeline (framed on the map beside the panel), rank the community's grids by 按期结案率 with the
target line, sort the ranking, export the measures and the case list and read the downloads; the heat map shown,
hidden and the filters applied again with no 加载失败 and without refetching the 12-month series; the server's
clusters when there are too many points. No console errors, no request leaving the machine."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from tests.e2e.conftest import PHONE, SCREENSHOTS, api, wait_idle, wait_js
from tests.e2e.test_a11y import axe_page_fixture  # noqa: F401 (registers the axe_page fixture here)
from tests.e2e.test_map import assert_clean, toggle

pytestmark = pytest.mark.e2e
WIDE = {"width": 1440, "height": 900}
MANAGER = "demo-manager"


def _community(server):
    me = api(server, "/api/v1/auth/me", as_=MANAGER)
    return me["areas"][0] if isinstance(me["areas"][0], str) else me["areas"][0]["code"]


def _grid_with_overdue(server, community):
    grids = api(server, f"/api/v1/areas?parent={community}", as_=MANAGER)["features"]
    best = None
    for g in grids:
        code = g["properties"]["code"]
        total = api(server, f"/api/v1/cases?area={code}&state=overdue&limit=1", as_=MANAGER)["total"]
        if total and (best is None or total > best[1]):
            best = (g["properties"], total)
    assert best, "the demo manager's community has no overdue case"
    return best


def open_overview(page, server):
    page.goto(server + "/")
    wait_js(page, "document.body.dataset.gmCases !== undefined && document.body.dataset.gmLevel_subdistrict")
    wait_idle(page)


def search_and_select(page, code, tap=False):
    page.fill("#gm-search", code)
    item = page.locator(".gm-search-item[data-kind=area]").first
    item.wait_for()
    item.tap() if tap else item.click()
    wait_js(page, f"document.body.dataset.gmSelected === '{code}'")
    wait_idle(page)


def no_horizontal_scroll(page):
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"), page.evaluate(
        "[document.documentElement.scrollWidth, window.innerWidth]"
    )


def _framed_beside_the_panel(page):
    """The framed case's pin is inside the map and not under the panel (when the panel leaves room beside it)."""
    return page.evaluate("""() => {
        const m = GridmapPage.map, pin = GridmapPage.casePin, p = m.latLngToContainerPoint(pin.getLatLng());
        const size = m.getSize(), panel = document.getElementById('gm-panel').getBoundingClientRect();
        const box = m.getContainer().getBoundingClientRect();
        const inside = p.x >= 0 && p.y >= 0 && p.x <= size.x && p.y <= size.y;
        const beside = panel.right > box.width * 0.6 || p.x + box.left > panel.right;
        return inside && beside;
    }""")


def _list_overdue_and_open_one(page, server, grid, total, tap=False):
    click = (lambda loc: loc.tap()) if tap else (lambda loc: loc.click())
    link = page.locator("#gm-detail a.gm-count-link[data-state=overdue]")
    assert link.inner_text() == str(total)
    click(link)
    wait_js(page, f"document.body.dataset.gmCaseList === '{grid['code']}:overdue:{total}'")
    items = page.locator("#gm-case-list .gm-case-item")
    assert items.count() == min(total, 15)
    listed = api(server, f"/api/v1/cases?area={grid['code']}&state=overdue&limit=15", as_=MANAGER)["items"]
    assert {i["id"] for i in listed} == {int(items.nth(k).get_attribute("data-case-id")) for k in range(items.count())}
    assert "已超期" in items.first.inner_text() or "超期" in items.first.inner_text()
    case_id = int(items.first.get_attribute("data-case-id"))
    click(items.first.locator(".gm-case-head"))
    case = api(server, f"/api/v1/cases/{case_id}", as_=MANAGER)
    wait_js(page, f"document.body.dataset.gmListCase === '{case_id}:{len(case['history'])}'")
    wait_js(page, f"document.body.dataset.gmFramed === '{case_id}'")
    wait_idle(page)
    body = page.locator("#gm-case-list .gm-case-open .gm-case-body")
    assert case["number"] in body.inner_text() and "流转记录" in body.inner_text()
    assert body.locator(".gm-timeline-item").count() == len(case["history"]) > 0
    first = case["history"][0]
    assert (first.get("action_zh") or first["action"]) in body.locator(".gm-timeline-item").first.inner_text()
    assert _framed_beside_the_panel(page)
    return case


def _rank_grids(page, server, community, since, until, tap=False):
    page.locator("#gm-ranking").scroll_into_view_if_needed()
    page.select_option("#gm-ranking select.gm-rank-measure", "on_time_rate")
    page.select_option("#gm-ranking select.gm-rank-by", "children")
    expected = api(
        server,
        f"/api/v1/areas/{community}/ranking?measure=on_time_rate&by=children&since={since}&until={until}",
        as_=MANAGER,
    )
    n = len(expected["items"])
    wait_js(page, f"document.body.dataset.gmRanking === '{community}:on_time_rate:children:{n}'")
    wait_idle(page)
    assert expected["target"] == 0.9 and n > 1
    assert page.locator("#gm-ranking line.gm-target-line").count() == 1
    assert "达标线 90.0%" in page.locator("#gm-ranking text.gm-target-label").text_content()
    rows = page.locator("#gm-ranking table.gm-rank-list tbody tr")
    assert rows.count() == n
    shown = [rows.nth(k).locator("td").nth(1).inner_text() for k in range(n)]
    assert shown == [i["name"] for i in expected["items"]]
    bars = page.locator("#gm-ranking rect.gm-rank-bar")
    assert bars.count() == sum(1 for i in expected["items"] if i["value"] is not None)
    # sort by name, then by the value ascending
    button = page.locator("#gm-ranking button.gm-sort[data-sort=name]")
    button.tap() if tap else button.click()
    wait_js(page, "document.body.dataset.gmRankSort === 'name:asc'")
    names = [rows.nth(k).locator("td").nth(1).inner_text() for k in range(n)]
    assert names == sorted(names, key=lambda s: page.evaluate("([a]) => a", [s])) or len(set(names)) == n
    return expected


def _period(page):
    return page.evaluate("GridmapPage.period().map(decodeURIComponent).map(s => s.split('=')[1])")


def test_the_managers_day_at_the_desk(signed_in, server):
    page = signed_in(MANAGER, viewport=WIDE)
    community = _community(server)
    grid, total = _grid_with_overdue(server, community)
    open_overview(page, server)
    search_and_select(page, grid["code"])
    assert page.locator("#gm-detail h3.gm-org-head").inner_text() == "网格党支部"
    # the selection is outlined and framed beside the panel
    assert page.evaluate("GridmapPage.selectionLayer !== null && GridmapPage.map.hasLayer(GridmapPage.selectionLayer)")
    assert page.evaluate("""() => { const m = GridmapPage.map, b = GridmapPage.selectionLayer.getBounds();
        const panel = document.getElementById('gm-panel').getBoundingClientRect();
        return m.latLngToContainerPoint(b.getNorthWest()).x >= panel.right - 2; }""")
    case = _list_overdue_and_open_one(page, server, grid, total)
    page.screenshot(path=str(SCREENSHOTS / "manager-overdue-case.png"))
    # the measures panel: every measure, in Chinese
    text = page.locator("#gm-detail .gm-measure-table").inner_text()
    for name in ("受理量", "应结案数", "按期结案率", "返工率", "退单数", "延期率", "满意率", "办结时长90分位"):
        assert name in text, name

    # the community: its party committee, its leaders, its grids ranked by 按期结案率
    page.locator(".gm-crumbs a", has_text="").last.click()
    wait_js(page, f"document.body.dataset.gmSelected === '{community}'")
    wait_idle(page)
    detail = page.locator("#gm-detail")
    assert detail.locator("h3.gm-org-head").inner_text() == "社区党委"
    leaders = detail.locator("table.gm-leaders").inner_text()
    assert "社区书记" in leaders and "社区主任" in leaders
    since, until = _period(page)
    ranked = _rank_grids(page, server, community, since, until)
    page.locator("#gm-ranking").screenshot(path=str(SCREENSHOTS / "manager-ranking.png"))
    # the community's workers on the same measure
    page.select_option("#gm-ranking select.gm-rank-by", "workers")
    workers = api(
        server,
        f"/api/v1/areas/{community}/ranking?measure=on_time_rate&by=workers&since={since}&until={until}",
        as_=MANAGER,
    )["items"]
    wait_js(page, f"document.body.dataset.gmRanking === '{community}:on_time_rate:workers:{len(workers)}'")
    assert len(workers) > 1 and page.locator("#gm-ranking table.gm-rank-list tbody tr").count() == len(workers)
    page.select_option("#gm-ranking select.gm-rank-by", "children")
    wait_js(page, f"document.body.dataset.gmRanking === '{community}:on_time_rate:children:{len(ranked['items'])}'")
    page.screenshot(path=str(SCREENSHOTS / "manager-community.png"))

    # exports: the measures of the community's grids, the case list
    with page.expect_download() as got:
        page.locator("#gm-detail a.gm-export-measures-csv").click()
    content = Path(got.value.path()).read_bytes()
    assert got.value.suggested_filename.endswith(".csv") and content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(content.decode("utf-8-sig"))))
    assert "按期结案率" in rows[0] and {r["编码"] for r in rows} >= {grid["code"], "*"}
    page.select_option("#gm-case-list select.gm-list-state", "overdue")
    wait_js(page, f"(document.body.dataset.gmCaseList || '').startsWith('{community}:overdue:')")
    with page.expect_download() as got:
        page.locator("#gm-detail a.gm-export-cases-csv").click()
    listed = list(csv.DictReader(io.StringIO(Path(got.value.path()).read_bytes().decode("utf-8-sig"))))
    assert got.value.suggested_filename.endswith(".csv")
    assert case["number"] in {r["编号"] for r in listed} and {r["状态"] for r in listed} <= {
        "已派遣",
        "已签收",
        "返工",
        "已处置",
        "已立案",
        "待处理",
    }
    overdue_total = api(server, f"/api/v1/cases?area={community}&state=overdue&limit=1", as_=MANAGER)["total"]
    assert len(listed) == overdue_total
    # by category: the open case's category
    page.select_option("#gm-case-list select.gm-list-category", case["category"])
    of_category = api(
        server, f"/api/v1/cases?area={community}&state=overdue&category={case['category']}&limit=50", as_=MANAGER
    )
    wait_js(
        page, f"document.body.dataset.gmCaseList === '{community}:overdue:{of_category['total']}:{case['category']}'"
    )
    shown = page.locator("#gm-case-list .gm-case-item")
    assert shown.count() == min(of_category["total"], 15) > 0
    assert all(case["category_name"] in shown.nth(k).inner_text() for k in range(shown.count()))
    assert "category=" + case["category"] in page.locator("#gm-detail a.gm-export-cases-csv").get_attribute("href")
    wait_idle(page)
    assert_clean(page, server)


def test_heat_map_show_hide_and_apply_refetch_only_what_changed(signed_in, server):
    page = signed_in(MANAGER, viewport=WIDE)
    community = _community(server)
    open_overview(page, server)
    search_and_select(page, community)
    wait_js(page, f"document.body.dataset.gmTrend === '{community}'")
    toggle(page, "热力图")
    wait_js(page, "document.querySelector('canvas.leaflet-heatmap-layer') !== null")
    toggle(page, "热力图")
    wait_js(page, "document.querySelector('canvas.leaflet-heatmap-layer') === null")
    before = page.evaluate("Object.assign({}, GridmapPage.fetches)")
    seen = len(page.requests)
    page.select_option("select[name=state]", "overdue")
    page.click(".gm-apply")
    wait_js(page, "document.body.dataset.gmApplied === '1'")
    wait_idle(page)
    status = page.locator("#gm-status").inner_text()
    assert "加载失败" not in status, status
    after = page.evaluate("Object.assign({}, GridmapPage.fetches)")
    asked = page.requests[seen:]
    # only the case points were fetched again: not the series, the measures, the ranking or the choropleth
    assert after["cases"] == before["cases"] + 1
    assert {k: after[k] for k in after if k != "cases"} == {k: before[k] for k in before if k != "cases"}
    assert not [u for u in asked if "/series" in u or "/measures" in u or "/ranking" in u], asked
    assert (
        page.evaluate("GridmapPage.rows.length")
        == api(
            server,
            "/api/v1/map/cases?state=overdue&"
            + "&".join(f"{k}={v}" for k, v in zip(("since", "until"), _period(page))),
            as_=MANAGER,
        )["count"]
    )
    # the period changed: the measures and the ranking follow, the series still not
    page.fill("input[name=since]", "2026-01-01")
    page.click(".gm-apply")
    wait_js(page, "document.body.dataset.gmApplied === '2'")
    wait_idle(page)
    final = page.evaluate("Object.assign({}, GridmapPage.fetches)")
    assert final["series"] == before["series"] and final["measures"] == before["measures"] + 1
    assert final["ranking"] == before["ranking"] + 1
    toggle(page, "热力图")  # shown again: drawn with the current points
    wait_js(page, "document.querySelector('canvas.leaflet-heatmap-layer') !== null")
    assert "加载失败" not in page.locator("#gm-status").inner_text()
    page.screenshot(path=str(SCREENSHOTS / "manager-heat-cycle.png"))
    assert_clean(page, server)


def test_the_choropleth_keeps_good_green_with_the_value_on_hover(signed_in, server):
    page = signed_in("demo-dispatcher", viewport=WIDE)
    open_overview(page, server)
    page.select_option("select[name=measure]", "on_time_rate")
    page.select_option("select[name=measure_level]", "community")
    page.fill("input[name=since]", "2026-01-01")
    page.click(".gm-apply")
    wait_js(page, "(document.body.dataset.gmChoropleth || '').startsWith('on_time_rate:community:')")
    wait_idle(page)
    # every community at or above the target line is green, and the colours never go down as the value goes up
    pairs = page.evaluate("""Object.values(GridmapPage.areas.levels.community.byCode).map(l =>
        [GridmapPage.choro.values[l.feature.properties.code], l.options.fillColor])""")
    rated = sorted((v, c) for v, c in pairs if v is not None)
    order = ["#d7191c", "#fdae61", "#fee08b", "#a6d96a", "#1a9641"]
    classes = [order.index(c) for _, c in rated]
    assert classes == sorted(classes) and len(rated) > 3
    assert all(order.index(c) >= 3 for v, c in rated if v >= 0.9)
    # the value in the hover
    code = page.evaluate(
        "Object.keys(GridmapPage.choro.values).find(k => GridmapPage.choro.values[k] !== null"
        " && GridmapPage.areas.levels.community.byCode[k])"
    )
    tip = page.evaluate(
        f"GridmapPage.areaTip(GridmapPage.areas.levels.community.byCode['{code}'].feature.properties).textContent"
    )
    value = page.evaluate(f"GridmapPage.choro.values['{code}']")
    assert "按期结案率：" in tip and f"{value * 100:.1f}%" in tip
    page.evaluate(f"GridmapPage.areas.levels.community.byCode['{code}'].openTooltip()")
    assert f"{value * 100:.1f}%" in page.locator(".leaflet-tooltip").first.inner_text()
    # the series chart: two axes and a legend
    page.evaluate(f"void GridmapPage.select('{code}', true)")
    wait_js(page, f"document.body.dataset.gmTrend === '{code}'")
    chart = page.locator("#gm-detail svg.gm-chart")
    assert chart.locator("text.gm-axis-left").count() == 3 and chart.locator("text.gm-axis-right").count() == 3
    assert "受理量" in chart.text_content() and "结案率（右轴）" in chart.text_content()
    # clusters in the legend's colours: a cluster holding a rework case is red
    page.screenshot(path=str(SCREENSHOTS / "manager-choropleth.png"))
    colours = page.evaluate(
        """Array.from(document.querySelectorAll('.gm-cluster-inner')).map(d => d.style.background)"""
    )
    assert colours, "no clusters drawn"
    legend_colours = page.evaluate("Object.values(GM.STATE_COLOURS)")
    rgb = page.evaluate(
        """(cs) => cs.map(c => { const d = document.createElement('div'); d.style.background = c;
        return d.style.background; })""",
        legend_colours,
    )
    assert set(colours) <= set(rgb)
    assert_clean(page, server)


def test_too_many_points_are_clustered_by_the_server(page, server):
    open_overview(page, server)
    shown = int(page.evaluate("document.body.dataset.gmCases"))
    assert shown > 5
    page.evaluate("GridmapPage.pointLimit = 5; void GridmapPage.loadCases()")
    wait_js(page, "(document.body.dataset.gmCaseView || '').startsWith('clusters:')")
    wait_idle(page)
    view = page.evaluate("document.body.dataset.gmCaseView").split(":")
    total = int(view[2])
    assert total == int(page.evaluate("document.body.dataset.gmCases")) == shown  # every case, fewer markers
    assert page.locator(".gm-cluster-inner").count() == int(view[1]) > 0
    page.screenshot(path=str(SCREENSHOTS / "manager-server-clusters.png"))
    assert_clean(page, server)


def test_the_managers_day_on_the_phone(signed_in, server):
    page = signed_in(MANAGER, viewport=PHONE, mobile=True)
    community = _community(server)
    grid, total = _grid_with_overdue(server, community)
    open_overview(page, server)
    no_horizontal_scroll(page)
    search_and_select(page, grid["code"], tap=True)
    _list_overdue_and_open_one(page, server, grid, total, tap=True)
    no_horizontal_scroll(page)
    page.screenshot(path=str(SCREENSHOTS / "manager-phone-case.png"))
    page.evaluate(f"void GridmapPage.select('{community}', true)")
    wait_js(page, f"document.body.dataset.gmSelected === '{community}'")
    wait_idle(page)
    since, until = _period(page)
    _rank_grids(page, server, community, since, until, tap=True)
    no_horizontal_scroll(page)
    page.screenshot(path=str(SCREENSHOTS / "manager-phone-ranking.png"))
    with page.expect_download() as got:
        page.locator("#gm-detail a.gm-export-measures-xlsx").tap()
    assert got.value.suggested_filename.endswith(".xlsx")
    assert Path(got.value.path()).read_bytes()[:2] == b"PK"
    assert_clean(page, server)


def test_the_case_list_pages_by_cursor(signed_in, server):
    """The panel's case list goes forward by each page's next_cursor and back by the cursors before, showing the
    first page's total: the pages are the API's pages by cursor."""
    page = signed_in(MANAGER, viewport=WIDE)
    community = _community(server)
    first = api(server, f"/api/v1/cases?area={community}&limit=15&sort=reported_at&order=newest", as_=MANAGER)
    assert first["total"] > 15 and first["next_cursor"]
    cursor = first["next_cursor"]
    second = api(
        server, f"/api/v1/cases?area={community}&limit=15&sort=reported_at&order=newest&cursor={cursor}", as_=MANAGER
    )
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url) if "/api/v1/cases?" in r.url else None)
    open_overview(page, server)
    page.evaluate(f"void GridmapPage.select('{community}', true)")
    wait_js(page, f"(document.body.dataset.gmCaseList || '').startsWith('{community}:open:')")
    page.select_option("#gm-case-list .gm-list-state", "")  # every state
    wait_js(page, f"document.body.dataset.gmCaseList === '{community}:all:{first['total']}'")
    wait_idle(page)
    info, items = page.locator("#gm-case-list .gm-page-info"), page.locator("#gm-case-list .gm-case-item")

    def shown():
        return [int(items.nth(k).get_attribute("data-case-id")) for k in range(items.count())]

    assert shown() == [c["id"] for c in first["items"]] and info.inner_text().startswith("第1–15条")
    assert page.locator("#gm-case-list .gm-page-prev").is_disabled()
    page.locator("#gm-case-list .gm-page-next").click()
    wait_js(page, "document.querySelector('#gm-case-list .gm-page-info').textContent.startsWith('第16–')")
    wait_idle(page)
    assert shown() == [c["id"] for c in second["items"]]
    assert "cursor=" in asked[-1] and "offset=" not in asked[-1], asked[-1]  # by the cursor, not by an offset
    assert info.inner_text().endswith(f"共{first['total']}条")  # the first page's count, not counted again
    page.locator("#gm-case-list .gm-page-prev").click()
    wait_js(page, "document.querySelector('#gm-case-list .gm-page-info').textContent.startsWith('第1–')")
    wait_idle(page)
    assert shown() == [c["id"] for c in first["items"]]
    assert_clean(page, server)


def test_the_managers_panel_in_english(signed_in, server):
    page = signed_in(MANAGER, viewport=WIDE)
    community = _community(server)
    grid, total = _grid_with_overdue(server, community)
    page.goto(server + "/?lang=en")
    wait_js(page, "document.body.dataset.gmCases !== undefined && document.body.dataset.gmLevel_subdistrict")
    page.evaluate(f"void GridmapPage.select('{grid['code']}', true)")
    wait_js(page, f"(document.body.dataset.gmCaseList || '').startsWith('{grid['code']}:open:')")
    wait_idle(page)
    detail = page.locator("#gm-detail")
    assert detail.locator("h3.gm-org-head").inner_text() == "Grid party branch"
    staff = detail.locator("ul.gm-staff").inner_text()
    assert "Full-time grid worker" in staff and "fulltime_worker" not in staff
    page.evaluate(f"void GridmapPage.select('{community}', true)")
    wait_js(page, f"(document.body.dataset.gmRanking || '').startsWith('{community}:')")
    wait_idle(page)
    text = detail.inner_text()
    assert "Community party committee" in text and "Director" in text and "Target 90.0%" in text
    # no full-width punctuation of the page's own in English (names from the data aside)
    own = page.evaluate(
        "Array.from(document.querySelectorAll('#gm-detail h3, #gm-detail th, #gm-detail option, "
        "#gm-detail .gm-queue-meta, #gm-detail .gm-rank-list td:nth-child(4)'))"
        ".map(e => e.textContent).join(' ')"
    )
    assert not set(own) & set("：；（）／，。"), own
    page.screenshot(path=str(SCREENSHOTS / "manager-english.png"))
    assert_clean(page, server)


@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_the_managers_panel_has_no_serious_accessibility_violation(axe_page, server, size):
    from tests.e2e.test_a11y import SIZES, describe, run_axe

    viewport, mobile = SIZES[size]
    page = axe_page(MANAGER, viewport, mobile, landing="/")
    community = _community(server)
    grid, total = _grid_with_overdue(server, community)
    open_overview(page, server)
    page.evaluate(f"void GridmapPage.select('{grid['code']}', true)")
    wait_js(page, f"(document.body.dataset.gmCaseList || '').startsWith('{grid['code']}:open:')")
    page.locator("#gm-detail a.gm-count-link[data-state=overdue]").click()
    wait_js(page, f"document.body.dataset.gmCaseList === '{grid['code']}:overdue:{total}'")
    page.locator("#gm-case-list .gm-case-item .gm-case-head").first.click()
    wait_js(page, "(document.body.dataset.gmListCase || '') !== ''")
    wait_idle(page)
    violations = run_axe(page)
    assert violations == [], describe(violations)
    page.evaluate(f"void GridmapPage.select('{community}', true)")
    wait_js(page, f"(document.body.dataset.gmRanking || '').startsWith('{community}:')")
    wait_idle(page)
    violations = run_axe(page)
    assert violations == [], describe(violations)
    assert page.console_errors == [], page.console_errors


def test_case_markers_are_drawn_above_the_area_labels(page, server):
    open_overview(page, server)
    toggle(page, "微网格")
    # a micro-grid's label point, and a case put right there: its marker must be what a tap at that point reaches
    micro = api(server, "/api/v1/map/areas?level=microgrid&zoom=17")["features"][3]["properties"]
    lon, lat = micro["label"]
    case = api(
        server,
        "/api/v1/cases",
        {"title": "标签下的事件", "lon": lon, "lat": lat, "category": "E0101", "source": "patrol"},
    )
    page.evaluate("void GridmapPage.loadCases()")  # the new case (a filter change would do the same)
    wait_js(page, f"GridmapPage.rows.some(r => r[0] === {case['id']})")
    page.evaluate(f"void GridmapPage.map.setView(GridmapPage.core.point([{lon}, {lat}]), 19)")
    wait_idle(page)
    wait_js(page, "(document.body.dataset.gmLabels || '').startsWith('microgrid:')")
    # the marker is drawn (not clustered at this zoom) in the cases' pane, which is stacked above the labels'
    drawn = page.evaluate(f"""() => {{ let path = null;
        GridmapPage.cluster.eachLayer(l => {{
            if (l.gmCase[0] === {case["id"]} && l._path && l._path.isConnected) path = l._path; }});
        const pane = n => Number(getComputedStyle(GridmapPage.map.getPane(n)).zIndex);
        return [path !== null && GridmapPage.map.getPane('gmCases').contains(path), pane('gmCases'),
                pane('gmLabels')]; }}""")
    assert drawn[0] and drawn[1] > drawn[2], drawn
    labels = page.locator(".leaflet-gmLabels-pane .gm-area-label", has_text=micro["name"])
    assert labels.count() == 1  # the label is there, under the marker
    page.screenshot(path=str(SCREENSHOTS / "manager-marker-over-label.png"))
    assert_clean(page, server)
