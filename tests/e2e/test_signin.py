"""Signing in, and what each account sees, in a real headless Chromium against the real server: the sign-in page
in Chinese on a desktop and on a phone; a grid worker and a sub-district's dispatcher see only their own cases and
areas on the map and in the console (and another area's case is "not found" for them); resident text stays text
while signed in; the API explorer only for signed-in accounts, offline; signing out ends the session on the
server; a write without the page's CSRF token is refused; the signed-in bar covers no control on a phone."""

import urllib.parse

import pytest

from gridmap.demo.accounts import DEMO_PASSWORD
from tests.e2e.conftest import DESKTOP, PHONE, SCREENSHOTS, api, new_context, record, status_of, wait_idle, wait_js
from tests.e2e.test_console import go_to, open_console
from tests.e2e.test_dispatcher_day import sort_by
from tests.e2e.test_map import XSS_TEXT, XSS_TITLE, assert_clean, click_lonlat, inner_point, open_overview

pytestmark = pytest.mark.e2e

QUEUES = ("pending", "dispatched", "verify", "bounced", "approvals", "overdue")  # the console's tabs
SIZES = {"desktop": (DESKTOP, False), "phone": (PHONE, True)}


def fetch_json(pg, path, method="GET", body=None, headers=None):
    """(status, JSON) of a request made by the page itself (its cookie goes with it, as with the page's own); the
    page must show one of the app's pages (an API answer's own CSP allows no fetch)."""
    return pg.evaluate(
        """async ([path, method, body, headers]) => {
        const init = {method, headers: Object.assign({Accept: "application/json"}, headers || {})};
        if (body !== null) { init.body = JSON.stringify(body); init.headers["Content-Type"] = "application/json"; }
        const r = await fetch(path, init), text = await r.text();
        return [r.status, text ? JSON.parse(text) : null];
    }""",
        [path, method, body, headers],
    )


def session_cookie(context):
    found = [c for c in context.cookies() if c["name"] == "gridmap_session"]
    return found[0] if found else None


def press(pg, selector, mobile):
    """Click, or tap on a touch screen."""
    if mobile:
        pg.tap(selector)
    else:
        pg.click(selector)


def widen_period(pg):
    """The overview's filters over the whole demo year (the page's default is the last 30 days); returns the query
    of the case points the page then loaded."""
    pg.fill("input[name=since]", "2025-11-01")
    pg.fill("input[name=until]", "2026-12-31")
    pg.click(".gm-apply")
    wait_idle(pg)
    asked = [u for u in pg.requests if "/api/v1/map/cases?" in u]
    assert "since=2025-1" in asked[-1], asked[-1]
    query = asked[-1].split("?", 1)[1]
    return "&".join(p for p in query.split("&") if not p.startswith("limit="))  # the filters, not the page size


def queue_ids(pg):
    """The case ids of every queue of the console (each tab opened in turn)."""
    out = {}
    for queue in QUEUES:
        pg.click(f".gm-tab[data-queue={queue}]")
        wait_js(pg, f"document.querySelector('.gm-tab[data-queue={queue}]').classList.contains('gm-tab-on')")
        polls = int(pg.evaluate("document.body.dataset.gmPolls"))
        wait_js(pg, f"Number(document.body.dataset.gmPolls) > {polls}")
        wait_idle(pg)
        ids = pg.evaluate("document.body.dataset.gmQueueIds")
        out[queue] = {int(i) for i in ids.split(",") if i}
        shown = pg.locator(".gm-queue-item").evaluate_all("items => items.map(li => Number(li.dataset.caseId))")
        assert set(shown) == out[queue]
    return out


def new_case(server, grid, title, **more):
    """A case at a point inside `grid` (a feature), filed by the district's dispatcher through the API."""
    lon, lat = inner_point(grid)
    return api(server, "/api/v1/cases", {"title": title, "lon": lon, "lat": lat, "source": "hotline", **more})


# -- (a) the sign-in page ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
def test_the_sign_in_page_in_chinese_refuses_a_wrong_password_and_goes_on_to_next(browser, server, size):
    viewport, mobile = SIZES[size]
    context = new_context(browser, viewport, mobile)
    pg = record(context.new_page())
    try:
        pg.goto(server + "/dispatch")  # nobody signed in: the page sends the browser to sign in first
        assert pg.url == server + "/login?next=%2Fdispatch"
        assert pg.locator("html").get_attribute("lang") == "zh-CN"
        assert pg.title() == "网格化管理 · 登录"
        assert pg.locator("h1").inner_text() == "网格化管理平台"
        assert pg.locator("label[for=username]").inner_text() == "用户名"
        assert pg.locator("label[for=password]").inner_text() == "密码"
        assert pg.locator("form button[type=submit]").inner_text() == "登录"
        assert pg.locator("#password").get_attribute("type") == "password"
        # it fits the screen: nothing wider than the viewport, the form and its button wholly on screen
        assert pg.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
        for selector in ("#username", "#password", "form button[type=submit]"):
            box = pg.locator(selector).bounding_box()
            assert box["x"] >= 0 and box["x"] + box["width"] <= viewport["width"]
            assert box["y"] >= 0 and box["y"] + box["height"] <= viewport["height"]
            assert box["height"] >= 36  # big enough to hit with a finger
        pg.screenshot(path=str(SCREENSHOTS / f"signin-{size}.png"))

        pg.fill("#username", "demo-dispatcher")
        pg.fill("#password", "not-the-password")
        with pg.expect_navigation() as refused:
            press(pg, "form button[type=submit]", mobile)
        assert refused.value.status == 401
        assert pg.locator(".gm-login-error").inner_text() == "用户名或密码错误"
        assert session_cookie(context) is None
        assert pg.input_value("#username") == "demo-dispatcher" and pg.input_value("#password") == ""
        assert pg.locator("input[name=next]").input_value() == "/dispatch"  # still going where it was asked
        pg.screenshot(path=str(SCREENSHOTS / f"signin-{size}-refused.png"))

        pg.fill("#password", DEMO_PASSWORD)
        with pg.expect_navigation() as landed:
            press(pg, "form button[type=submit]", mobile)
        assert landed.value.status == 200 and pg.url == server + "/dispatch"
        wait_js(pg, "document.body.dataset.gmPolls !== undefined")
        wait_idle(pg)
        assert pg.locator("#gm-title").text_content() == "网格化管理 · 调度台"
        assert pg.locator("#gm-user .gm-user-name").text_content() == "demo-dispatcher · 调度员"  # hidden on a phone
        cookie = session_cookie(context)
        assert cookie and cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Lax"
        assert pg.evaluate("document.cookie") == ""  # not readable by the page's scripts
        errors = [e for e in pg.console_errors if "401" not in e]  # the refused sign-in itself
        assert errors == [], pg.console_errors
        assert_clean_requests(pg, server)
    finally:
        context.close()


def assert_clean_requests(pg, server):
    outside = [u for u in pg.requests if not u.startswith((server, "data:", "blob:"))]
    assert outside == [], f"requests left the machine: {outside[:5]}"


# -- (b) a grid worker ---------------------------------------------------------------------------------------------


def test_a_worker_sees_only_the_cases_of_its_grid_and_its_own(signed_in, server):
    grids = api(server, "/api/v1/areas?level=grid")["features"]
    subs = [f["properties"]["code"] for f in api(server, "/api/v1/areas?level=subdistrict")["features"]]
    pg = signed_in("demo-worker")
    open_overview(pg, server)
    status, me = fetch_json(pg, "/api/v1/auth/me")
    assert status == 200 and me["role"] == "worker" and len(me["areas"]) == 1
    worker_grid, staff = me["areas"][0], me["staff_id"]
    other_sub = next(s for s in subs if not worker_grid.startswith(s))
    # new cases: one in the worker's grid (dispatched to it by the rules), one in another sub-district
    mine = new_case(
        server, next(g for g in grids if g["properties"]["code"] == worker_grid), "垃圾满溢", category="E0101"
    )
    elsewhere = new_case(server, next(g for g in grids if g["properties"]["code"].startswith(other_sub)), "道路积水")
    assert mine["grid_code"] == worker_grid and mine["assignee_id"] == staff and mine["state"] == "dispatched"

    def its_own(case):
        return case["grid_code"] == worker_grid or case["assignee_id"] == staff

    # everything the worker may see, asked as the same session
    status, listed = fetch_json(pg, "/api/v1/cases?limit=500")
    assert status == 200 and listed["total"] == len(listed["items"]) > 0
    seen = {c["id"]: c for c in listed["items"]}
    assert all(its_own(c) for c in seen.values()) and mine["id"] in seen and elsewhere["id"] not in seen

    # the map's case layer
    pg.reload()
    wait_js(pg, "document.body.dataset.gmCases !== undefined && document.body.dataset.gmLevel_subdistrict")
    wait_idle(pg)
    query = widen_period(pg)
    rows = pg.evaluate("GridmapPage.rows.map(r => r[0])")
    status, same = fetch_json(pg, "/api/v1/cases?limit=500&" + query)
    assert status == 200 and set(rows) == {c["id"] for c in same["items"]} and mine["id"] in rows
    assert all(its_own(seen[i]) for i in rows)
    assert api(server, "/api/v1/map/cases?" + query)["count"] > len(rows)  # the district has more
    assert list(pg.evaluate("Object.keys(GridmapPage.areas.levels.subdistrict.byCode)")) == [worker_grid[:9]]
    # its grid's panel: the measures are not a worker's to read, and the page says so rather than failing
    pg.evaluate(f"() => {{ GridmapPage.select('{worker_grid}', true); }}")
    wait_js(
        pg,
        "(document.querySelector('.gm-measures .gm-note') || {}).textContent === '该区域的考核指标不在您的权限范围内'",
    )
    wait_idle(pg)
    pg.screenshot(path=str(SCREENSHOTS / "worker-overview.png"))
    assert_clean(pg, server)

    # the console's queues
    open_console(pg, server)
    queues = queue_ids(pg)
    assert mine["id"] in queues["dispatched"] and elsewhere["id"] not in queues["pending"]
    for ids in queues.values():
        assert ids <= set(seen) and all(its_own(seen[i]) for i in ids)
    pg.screenshot(path=str(SCREENSHOTS / "worker-dispatch.png"))
    assert_clean(pg, server)

    # another sub-district's case does not exist for the worker, in the same browser
    probe = pg.context.new_page()
    assert probe.goto(f"{server}/api/v1/cases/{elsewhere['id']}").status == 404
    assert probe.goto(f"{server}/api/v1/cases/{mine['id']}").status == 200
    assert status_of(server, f"/api/v1/cases/{elsewhere['id']}", as_="demo-dispatcher") == 200
    probe.close()


# -- (c) a sub-district's dispatcher -------------------------------------------------------------------------------


def test_a_subdistrict_dispatcher_sees_nothing_of_the_other_subdistrict(signed_in, server):
    grids = api(server, "/api/v1/areas?level=grid")["features"]
    pg = signed_in("demo-dispatcher-1")
    open_console(pg, server)
    status, me = fetch_json(pg, "/api/v1/auth/me")
    assert status == 200 and me["role"] == "dispatcher" and len(me["areas"]) == 1
    own = me["areas"][0]
    others = [
        f["properties"]["code"]
        for f in api(server, "/api/v1/areas?level=subdistrict")["features"]
        if f["properties"]["code"] != own
    ]
    assert others
    ours = new_case(server, next(g for g in grids if g["properties"]["code"].startswith(own)), "楼道堆物")
    theirs = new_case(server, next(g for g in grids if g["properties"]["code"].startswith(others[0])), "楼道堆物")
    assert ours["state"] == theirs["state"] == "reported"  # no category: both wait in the pending queue (待处理)

    # the console: every queue holds cases of its own sub-district only
    pg.reload()
    wait_js(pg, "document.body.dataset.gmPolls !== undefined")
    wait_idle(pg)
    queues = queue_ids(pg)
    assert ours["id"] in queues["pending"] and theirs["id"] not in queues["pending"]
    for queue, ids in queues.items():  # a tab shows the first page of its queue, all of the sub-district's own
        inside = api(server, f"/api/v1/queues/{queue}?area={own}&limit=500")
        assert ids <= {c["id"] for c in inside["items"]}, queue
        assert len(ids) == min(inside["total"], 20), queue  # the console's page size
        for other in others:
            outside = api(server, f"/api/v1/queues/{queue}?area={other}&limit=500")
            assert not ids & {c["id"] for c in outside["items"]}, queue
    # the outlines: the district (the way down) and its own sub-district's communities and grids, no other
    levels = pg.evaluate(
        "Object.fromEntries(Object.entries(GridmapPage.areas.levels).map(([k, v]) => [k, Object.keys(v.byCode)]))"
    )
    assert len(levels["district"]) == 1 and levels["community"] and levels["grid"]
    assert all(c.startswith(own) for level in ("community", "grid", "microgrid") for c in levels[level])
    pg.screenshot(path=str(SCREENSHOTS / "subdistrict-dispatch.png"))
    assert_clean(pg, server)

    # the overview: the case points it loaded, and the sub-district outlines drawn below the district
    open_overview(pg, server)
    query = widen_period(pg)
    rows = set(pg.evaluate("GridmapPage.rows.map(r => r[0])"))
    expected = api(server, f"/api/v1/map/cases?area={own}&" + query)["rows"]
    assert rows == {r[0] for r in expected} and ours["id"] in rows
    for other in others:
        assert not rows & {r[0] for r in api(server, f"/api/v1/map/cases?area={other}&" + query)["rows"]}
    assert list(pg.evaluate("Object.keys(GridmapPage.areas.levels.subdistrict.byCode)")) == [own]
    assert len(pg.evaluate("Object.keys(GridmapPage.areas.levels.district.byCode)")) == 1
    pg.screenshot(path=str(SCREENSHOTS / "subdistrict-overview.png"))
    # the other sub-district's case is not found, in the same browser
    probe = pg.context.new_page()
    assert probe.goto(f"{server}/api/v1/cases/{theirs['id']}").status == 404
    probe.close()
    assert_clean(pg, server)


# -- (d) resident text stays text ----------------------------------------------------------------------------------


def test_resident_text_stays_text_while_signed_in(page, server):
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    grid = api(server, "/api/v1/areas?level=grid")["features"][5]
    lon, lat = inner_point(grid)
    # a case typed into the console by the dispatcher
    open_console(page, server)
    go_to(page, lon, lat)
    click_lonlat(page, lon, lat)
    wait_js(page, "document.body.dataset.gmCreating !== undefined")
    page.fill("#gm-create input[name=title]", XSS_TITLE)
    page.fill("#gm-create input[name=address]", XSS_TEXT[:100])
    page.fill("#gm-create textarea[name=description]", XSS_TEXT)
    page.click("#gm-create button[type=submit]")
    typed = int(wait_js(page, "document.body.dataset.gmCreated").split(":")[0])
    stored = api(server, f"/api/v1/cases/{typed}")
    assert (stored["title"], stored["description"], stored["address"]) == (XSS_TITLE, XSS_TEXT, XSS_TEXT[:100])
    # and a resident's report through the API, with the payloads in every text field
    resident = api(
        server,
        "/api/v1/cases",
        {
            "title": XSS_TITLE,
            "description": XSS_TEXT,
            "address": XSS_TEXT[:100],
            "reporter_name": XSS_TITLE[:64],
            "reporter_phone": "13812341234",
            "lon": lon,
            "lat": lat,
            "source": "miniprogram",
        },
        as_=None,
    )
    sort_by(page, "reported_at", "desc")  # 待处理 is worked oldest first: the newest report is on the first page so
    wait_js(page, f"(document.body.dataset.gmQueueIds || '').split(',').includes('{resident['id']}')")
    for case_id in (resident["id"], typed):
        page.evaluate(f"void GridmapPage.open({case_id})")
        wait_js(page, f"(document.body.dataset.gmCase || '').startsWith('{case_id}:')")
        wait_idle(page)
        side = page.locator("#gm-side")
        assert side.locator(".gm-case-title").text_content() == XSS_TITLE
        assert side.locator(".gm-desc").text_content() == XSS_TEXT
        assert XSS_TEXT[:100] in side.locator(".gm-info").inner_text()
        assert side.locator("img, script, b").count() == 0
    page.evaluate(f"void GridmapPage.open({resident['id']})")
    wait_js(page, f"document.body.dataset.gmCase === '{resident['id']}:reported'")
    wait_idle(page)
    assert f"{XSS_TITLE[:64]} · 13812341234" in page.locator("#gm-side .gm-info").inner_text()  # the reporter
    queue = page.locator(f".gm-queue-item[data-case-id='{resident['id']}']")
    assert XSS_TITLE in queue.inner_text() and queue.locator("img, script, b").count() == 0
    page.fill("#gm-search", resident["number"])
    wait_js(page, "document.querySelectorAll('.gm-search-item').length > 0")
    assert page.locator("#gm-search-results img, #gm-search-results script, #gm-search-results b").count() == 0
    page.screenshot(path=str(SCREENSHOTS / "signed-in-xss-dispatch.png"))
    # the overview's case popup
    open_overview(page, server)
    for case_id in (resident["id"], typed):
        page.evaluate(
            f"void GridmapPage.openCase({case_id}, L.marker(GridmapPage.core.point([{lon}, {lat}]))"
            ".addTo(GridmapPage.map))"
        )
        wait_js(page, f"document.body.dataset.gmOpenCase === '{case_id}'")
        popup = page.locator(".gm-case").last  # the popup of this marker (the first may still be closing)
        assert popup.locator(".gm-case-title").text_content() == XSS_TITLE
        assert popup.locator(".gm-desc").text_content() == XSS_TEXT
        assert popup.locator("img, script, b").count() == 0
    page.screenshot(path=str(SCREENSHOTS / "signed-in-xss-overview.png"))
    # the sign-in page echoes a typed user name and a `next` as text too
    page.goto(f"{server}/login?next={urllib.parse.quote('/' + XSS_TITLE, safe='')}")
    assert page.locator("input[name=next]").input_value() == "/" + XSS_TITLE
    page.fill("#username", XSS_TITLE[:64])
    page.fill("#password", "not-the-password")
    with page.expect_navigation():
        page.click("form button[type=submit]")
    assert page.input_value("#username") == XSS_TITLE[:64]
    assert page.locator("script").count() == 0
    assert page.evaluate("window.__xss") is None and dialogs == []
    page.console_errors = [e for e in page.console_errors if "401" not in e]  # the refused sign-in itself
    assert_clean(page, server)


# -- (e) the API explorer ------------------------------------------------------------------------------------------


def test_the_api_docs_offline_when_signed_in_and_sign_in_first_when_not(browser, page, server):
    refused = []

    def only_the_app(route):
        if route.request.url.startswith((server + "/", "data:")):
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    page.route("**/*", only_the_app)
    csp_reports = []
    page.on("console", lambda m: csp_reports.append(m.text) if "Content Security Policy" in m.text else None)
    page.goto(server + "/docs")
    assert page.url == server + "/docs"
    assert page.title() == "接口文档 API docs · gridmap"
    wait_js(page, "document.querySelectorAll('.opblock').length > 10")
    paths = page.locator(".opblock-summary-path").all_text_contents()
    assert "/api/v1/cases" in [p.replace("\u200b", "") for p in paths]
    assert page.get_by_text("/api/v1/cases", exact=True).first.is_visible()
    # open one operation: its parameters and responses render too
    page.locator(".opblock-summary-path", has_text="/api/v1/areas").first.click()
    wait_js(page, "document.querySelector('.opblock.is-open .responses-table') !== null")
    page.screenshot(path=str(SCREENSHOTS / "docs.png"))
    assert csp_reports == [], csp_reports
    assert page.console_errors == [], page.console_errors
    assert refused == [], f"the page asked for something off the app: {refused[:5]}"
    assert all(u.startswith((server + "/", "data:")) for u in page.requests)
    assert any(u.startswith(server + "/static/swagger-ui/") for u in page.requests)

    # nobody signed in: to the sign-in page, and back to /docs after it
    context = new_context(browser)
    try:
        anonymous = record(context.new_page())
        anonymous.goto(server + "/docs")
        assert anonymous.url == server + "/login?next=%2Fdocs"
        assert anonymous.locator("input[name=next]").input_value() == "/docs"
        assert not any("/static/swagger-ui/" in u for u in anonymous.requests)
    finally:
        context.close()


# -- (f) signing out -----------------------------------------------------------------------------------------------


def test_signing_out_ends_the_session(signed_in, server):
    pg = signed_in("demo-admin", fresh=True)
    open_overview(pg, server)
    old = session_cookie(pg.context)["value"]
    assert status_of(server, "/api/v1/auth/me", cookie=old) == 200
    button = pg.locator("#gm-user button")
    assert button.inner_text() == "退出登录" and "demo-admin · 系统管理员" in pg.locator("#gm-user").inner_text()
    with pg.expect_navigation():
        button.click()
    assert pg.url == server + "/login"
    assert pg.locator("form button[type=submit]").inner_text() == "登录"
    assert session_cookie(pg.context) is None
    # the old cookie is refused by the API, and by the pages even when a browser sends it again
    assert status_of(server, "/api/v1/auth/me", cookie=old) == 401
    assert status_of(server, "/api/v1/cases?limit=1", cookie=old) == 401
    pg.context.add_cookies(
        [{"name": "gridmap_session", "value": old, "url": server, "secure": True, "httpOnly": True, "sameSite": "Lax"}]
    )
    pg.goto(server + "/")
    assert pg.url == server + "/login?next=%2F"
    assert_clean(pg, server)


# -- (g) CSRF ------------------------------------------------------------------------------------------------------


def test_a_write_without_the_csrf_token_is_refused(page, server):
    open_console(page, server)
    grid = api(server, "/api/v1/areas?level=grid")["features"][9]
    lon, lat = inner_point(grid)
    body = {"title": "跨站请求", "lon": lon, "lat": lat, "source": "hotline"}
    before = api(server, "/api/v1/cases?limit=1")["total"]
    status, problem = fetch_json(page, "/api/v1/cases", "POST", body)
    assert status == 403 and problem["field"] == "X-CSRF-Token" and "CSRF" in problem["detail"]
    status, problem = fetch_json(page, "/api/v1/cases", "POST", body, {"X-CSRF-Token": "0" * 40})
    assert status == 403 and problem["field"] == "X-CSRF-Token"
    case = api(server, "/api/v1/cases?limit=1")
    assert case["total"] == before  # nothing was stored
    # signing out is a write too: without the form's token it is refused, and the session goes on
    status, _ = page.evaluate(
        "async () => { const r = await fetch('/logout', {method: 'POST'}); return [r.status, await r.text()]; }"
    )
    assert status == 403
    # with the page's own token the same request goes through
    token = page.evaluate("GridmapPage.core.config.csrf")
    assert len(token) == 40
    status, created = fetch_json(page, "/api/v1/cases", "POST", body, {"X-CSRF-Token": token})
    assert status == 201 and created["title"] == "跨站请求"
    assert api(server, "/api/v1/cases?limit=1")["total"] == before + 1
    page.console_errors = [e for e in page.console_errors if "403" not in e]  # the refused requests themselves
    assert_clean(page, server)


# -- the signed-in bar on a phone and on a desktop -----------------------------------------------------------------

RECTS = """() => {
    const box = e => { const r = e.getBoundingClientRect(); return {x: r.left, y: r.top, r: r.right, b: r.bottom}; };
    const shown = e => { const s = getComputedStyle(e), r = e.getBoundingClientRect();
                         return s.display !== 'none' && s.visibility !== 'hidden' && r.width > 0 && r.height > 0; };
    const others = [...document.querySelectorAll('#gm-panel, #gm-side, #gm-status, .leaflet-control')].filter(shown);
    const bar = document.getElementById('gm-user'), button = bar.querySelector('button'), b = box(button);
    const top = document.elementFromPoint((b.x + b.r) / 2, (b.y + b.b) / 2);
    return {bar: box(bar), button: button === top || button.contains(top),
            others: others.map(e => [e.id || e.className, box(e)])};
}"""


def overlap(a, b):
    return min(a["r"], b["r"]) - max(a["x"], b["x"]) > 0.5 and min(a["b"], b["b"]) - max(a["y"], b["y"]) > 0.5


@pytest.mark.parametrize("size", SIZES)
def test_the_signed_in_bar_covers_no_control(signed_in, server, size):
    viewport, mobile = SIZES[size]
    for account in ("demo-dispatcher-1", "demo-admin"):
        pg = signed_in(account, viewport=viewport, mobile=mobile)
        for name in ("overview", "dispatch"):
            if name == "overview":
                open_overview(pg, server)
            else:
                open_console(pg, server)
            layout = pg.evaluate(RECTS)
            bar = layout["bar"]
            assert bar["x"] >= 0 and bar["r"] <= viewport["width"] and bar["b"] <= viewport["height"], bar
            assert layout["button"], "something lies over the sign-out button"
            covered = [what for what, rect in layout["others"] if overlap(bar, rect)]
            assert covered == [], f"{account} {name} {size}: the bar covers {covered}"
            pg.screenshot(path=str(SCREENSHOTS / f"signed-in-bar-{name}-{size}.png"))
        assert_clean(pg, server)
