"""The dispatcher's day in the console (issue 14, must-show), in a real headless Chromium at 1440×900 and on a phone
(390×844, touch): verify and close; send back for rework; approve an extension (and supervise); urge an overdue
holder; see a bounce with its reason and evidence; batch-dispatch three cases; an uncertain address match confirmed
before the pin moves; a stale version told in Chinese; the new-case alert; queues filtered, sorted, paged and in
English; axe-core with every form open. Relocating a dead end and filing it: test_dispatcher_relocate.py. Each test
makes its own material through the API (cases handled by the demo grid worker, a deadline moved into the past …)
so that nothing depends on the demo's random cases; the pages are used by the demo accounts signed in through
/login."""

from __future__ import annotations

import datetime as dt
import io
import json
import urllib.parse
import urllib.request

import pytest
import sqlalchemy as sa
from PIL import Image
from shapely.geometry import shape

from gridmap.store import engine as storage
from gridmap.store.tables import Case
from tests.e2e.conftest import PHONE, SCREENSHOTS, api, bearer, wait_idle, wait_js
from tests.e2e.test_a11y import axe_page_fixture, describe, run_axe  # noqa: F401 - registers the axe_page fixture
from tests.e2e.test_map import assert_clean, inner_point

pytestmark = pytest.mark.e2e

WIDE = {"width": 1440, "height": 900}


# ------------------------------------------------------------------------------------------------ material
def grids(server):
    return sorted(api(server, "/api/v1/areas?level=grid")["features"], key=lambda f: f["properties"]["code"])


def worker_grid(server):
    """The demo worker's grid (the first grid by code: `gridmap.demo.accounts`)."""
    return grids(server)[0]


def new_case(server, title, point, **extra):
    lon, lat = point
    return api(server, "/api/v1/cases", {"title": title, "lon": lon, "lat": lat, "source": "hotline", **extra})


def step(server, case_id, action, as_, **params):
    version = api(server, f"/api/v1/cases/{case_id}", as_=as_)["version"]
    return api(server, f"/api/v1/cases/{case_id}/actions/{action}", {"version": version, **params}, as_=as_)


def photo(colour) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), colour).save(out, "JPEG")
    return out.getvalue()


def attach(server, case_id, stage, data, as_):
    """A photo added to a case through the API (multipart, as a phone sends it)."""
    boundary = "gridmap-e2e-boundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="stage"\r\n\r\n{stage}\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{stage}.jpg"\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    request = urllib.request.Request(
        f"{server}/api/v1/cases/{case_id}/attachments",
        data=body,
        headers={
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "Authorization": f"Bearer {bearer(server, as_)}",
        },
    )
    with urllib.request.urlopen(request) as r:
        return json.load(r)


def handled_case(server, title, photos=False):
    """A case in the worker's grid, accepted and handled by the demo worker (with before and after photos when
    asked): it waits in 待核查."""
    case = new_case(server, title, inner_point(worker_grid(server)), category="E0101")
    assert case["state"] == "dispatched", case["state"]
    step(server, case["id"], "accept", "demo-worker")
    if photos:
        attach(server, case["id"], "before", photo("#8d6e63"), "demo-worker")
        attach(server, case["id"], "after", photo("#81c784"), "demo-worker")
    step(server, case["id"], "handle", "demo-worker", note="已清理")
    return case


def dead_end_point(server):
    """A point 500 m west of the district's westmost vertex: in no grid and beyond the nearest-grid distance."""
    district = api(server, "/api/v1/areas?level=district")["features"][0]
    geom = shape(district["geometry"])
    minx = geom.bounds[0]
    west = min(
        (p for p in geom.exterior.coords if p[0] == minx)
        if geom.geom_type == "Polygon"
        else (p for poly in geom.geoms for p in poly.exterior.coords if p[0] == minx)
    )
    return minx - 0.005, west[1]


def make_overdue(database, case_id, days=30):
    """Move an accepted case's deadline into the past (a case overdue by `days`), escalated already so that the
    server's overdue sweep leaves it alone during the test."""
    engine = storage.make_engine(database)
    with engine.begin() as conn:
        conn.execute(
            sa.update(Case)
            .where(Case.id == case_id)
            .values(due_at=dt.datetime.now(dt.UTC) - dt.timedelta(days=days), escalation_level=1)
        )
    engine.dispose()


# ------------------------------------------------------------------------------------------------ the page
def open_console(page, server, query=""):
    page.goto(server + "/dispatch" + query)
    wait_js(page, "document.body.dataset.gmPolls !== undefined")
    wait_idle(page)


def tab(page, queue, touch=False):
    button = page.locator(f".gm-tab[data-queue={queue}]")
    button.tap() if touch else button.click()
    wait_js(page, f"document.body.dataset.gmQueueName === '{queue}'")
    wait_idle(page)


def sort_by(page, sort, order, touch=False, **filters):
    summary = page.locator(".gm-qfilters summary")
    if not page.locator(".gm-qfilters").evaluate("d => d.open"):
        summary.tap() if touch else summary.click()
    page.select_option(".gm-qform select[name=sort]", sort)
    page.select_option(".gm-qform select[name=order]", order)
    for name, value in filters.items():
        page.select_option(f".gm-qform select[name={name}]", value)
    apply = page.locator(".gm-qapply")
    apply.tap() if touch else apply.click()
    wait_idle(page)


def row(page, case_id):
    try:
        wait_js(page, f"(document.body.dataset.gmQueueIds || '').split(',').includes('{case_id}')")
    except AssertionError:  # say what the page did show
        print(page.evaluate("JSON.stringify(document.body.dataset)"), page.console_errors)
        raise
    return page.locator(f".gm-queue-item[data-case-id='{case_id}']")


def open_row(page, case_id, state, touch=False):
    item = row(page, case_id)
    item.scroll_into_view_if_needed()
    item.locator(".gm-queue-title").tap() if touch else item.click()
    wait_js(page, f"document.body.dataset.gmCase === '{case_id}:{state}'")
    wait_idle(page)


def do(page, action, touch=False, **fields):
    """Open the action's form in the case panel, fill it, press 确定; waits for the step to be taken."""
    form = page.locator(f"#gm-side .gm-action-{action}")
    summary = form.locator("summary")
    summary.scroll_into_view_if_needed()
    summary.tap() if touch else summary.click()
    for name, value in fields.items():
        control = form.locator(f"[name={name}]")
        if control.evaluate("n => n.tagName") == "SELECT":
            control.select_option(value)
        else:
            control.fill(value)
    ok = form.locator("button[type=submit]")
    ok.scroll_into_view_if_needed()
    ok.tap() if touch else ok.click()


def done(page, action, case_id, state):
    wait_js(page, f"document.body.dataset.gmLastAction === '{action}:{case_id}:{state}'")
    wait_js(page, f"document.body.dataset.gmCase === '{case_id}:{state}'")
    wait_idle(page)


def no_sideways_scroll(page):
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= page.viewport_size["width"], width


def shot(page, name):
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


def pin_drag(page, to_lonlat):
    """Drag the relocation pin to a WGS84 point with the mouse (the map framed on both first)."""
    page.evaluate(
        "([lon, lat]) => { const m = GridmapPage.map, a = GridmapPage.pin.getLatLng(),"
        " b = GridmapPage.core.point([lon, lat]);"
        " m.fitBounds(L.latLngBounds([a, b]), {paddingTopLeft: [440, 120], paddingBottomRight: [460, 120],"
        " maxZoom: 17, animate: false}); }",
        list(to_lonlat),
    )
    wait_idle(page)
    box = page.locator(".gm-drag-pin").bounding_box()
    x0, y0 = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    x1, y1 = page.evaluate(
        "([lon, lat]) => { const m = GridmapPage.map, p = m.latLngToContainerPoint("
        "GridmapPage.core.point([lon, lat])), r = m.getContainer().getBoundingClientRect();"
        " return [p.x + r.left, p.y + r.top]; }",
        list(to_lonlat),
    )
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move((x0 + x1) / 2, (y0 + y1) / 2, steps=8)
    page.mouse.move(x1, y1, steps=8)
    page.mouse.up()
    wait_js(page, "document.body.dataset.gmPin !== undefined")


# ------------------------------------------------------------------------------------------------ desktop
def test_verify_and_close_and_send_back_for_rework(signed_in, server):
    good = handled_case(server, "垃圾清运", photos=True)
    bad = handled_case(server, "垃圾未清")
    page = signed_in("demo-verifier", viewport=WIDE)
    open_console(page, server)
    assert page.evaluate("document.body.dataset.gmQueueName") == "verify"  # a verifier starts on 待核查
    sort_by(page, "updated_at", "desc")
    open_row(page, good["id"], "handled")
    assert page.locator("#gm-side .gm-action-verify").count() == 1
    assert page.locator("#gm-side .gm-action-file").count() == 0  # no dispatcher's steps for a verifier
    timeline = page.locator("#gm-side .gm-timeline").inner_text()
    assert "签收" in timeline and "处置反馈" in timeline and "已清理" in timeline
    # the before and after photos, as thumbnails that loaded
    assert page.locator("#gm-side .gm-photo").count() == 2
    assert "处置前" in page.locator("#gm-side .gm-photos").inner_text()
    wait_js(
        page, "[...document.querySelectorAll('#gm-side .gm-photo img')].every(i => i.complete && i.naturalWidth > 0)"
    )
    do(page, "verify")
    done(page, "verify", good["id"], "closed")
    assert "核查结案" in page.locator("#gm-side .gm-timeline").inner_text()
    shot(page, "day-verified")
    # 返工 with a reason
    open_row(page, bad["id"], "handled")
    do(page, "send_back", reason="现场仍有垃圾，请重新清理")
    done(page, "send_back", bad["id"], "rework")
    last = api(server, f"/api/v1/cases/{bad['id']}")["history"][-1]
    assert last["action"] == "send_back" and last["detail"]["reason"] == "现场仍有垃圾，请重新清理"
    assert "现场仍有垃圾" in page.locator("#gm-side .gm-timeline").inner_text()
    assert str(bad["id"]) not in page.evaluate("document.body.dataset.gmQueueIds").split(",")
    shot(page, "day-sent-back")
    assert_clean(page, server)


def test_a_leader_approves_an_extension(signed_in, server):
    case = new_case(server, "违规广告牌", inner_point(worker_grid(server)), category="E0101")
    step(server, case["id"], "accept", "demo-worker")
    step(server, case["id"], "request_extension", "demo-worker", amount=2, unit="work_days", reason="需协调物业公司")
    before = api(server, f"/api/v1/cases/{case['id']}")
    page = signed_in("demo-leader", viewport=WIDE)
    open_console(page, server)
    assert page.evaluate("document.body.dataset.gmQueueName") == "approvals"  # a leader starts on 待审批
    sort_by(page, "updated_at", "desc")
    item = row(page, case["id"])
    assert "申请延期" in item.inner_text() and "需协调物业公司" in item.inner_text()
    open_row(page, case["id"], "accepted")
    request = page.locator("#gm-side .gm-request").inner_text()
    assert "2个工作日" in request and "需协调物业公司" in request
    do(page, "approve")
    done(page, "approve", case["id"], "accepted")
    after = api(server, f"/api/v1/cases/{case['id']}")
    assert after["due_at"] > before["due_at"] and not after.get("pending_request") and not after.get("pending")
    assert page.locator("#gm-side .gm-request").count() == 0
    assert "批准" in page.locator("#gm-side .gm-timeline").inner_text()
    shot(page, "day-approved")
    # 督办: the leader presses the holder, who is notified
    do(page, "supervise", reason="本周内办结，周五前报结果")
    done(page, "supervise", case["id"], "accepted")
    assert "督办" in page.locator("#gm-side .gm-timeline").inner_text()
    notes = api(server, "/api/v1/notifications?unread=true", as_="demo-worker")["items"]
    assert any(n["case_id"] == case["id"] and n["kind"] == "supervise" for n in notes), notes
    assert_clean(page, server)


def test_urge_an_overdue_holder(signed_in, server, database):
    case = new_case(server, "道路破损", inner_point(worker_grid(server)), category="E0101")
    step(server, case["id"], "accept", "demo-worker")
    make_overdue(database, case["id"], days=30)
    page = signed_in("demo-dispatcher", viewport=WIDE)
    open_console(page, server)
    tab(page, "overdue")
    sort_by(page, "overdue_by", "desc", age="d1")  # reported today, the most overdue first
    item = row(page, case["id"])
    worker = api(server, f"/api/v1/cases/{case['id']}")["holder"]
    text = item.inner_text()
    assert "超期 30 天" in text and worker["name"] in text, text
    open_row(page, case["id"], "accepted")
    tel = page.locator("#gm-side .gm-info a.gm-tel")
    assert tel.get_attribute("href") == "tel:" + "".join(ch for ch in worker["phone"] if ch.isdigit() or ch == "+")
    do(page, "urge", reason="请今天内处理完毕")
    done(page, "urge", case["id"], "accepted")
    assert "催办" in page.locator("#gm-side .gm-timeline").inner_text()
    notes = api(server, "/api/v1/notifications?unread=true", as_="demo-worker")["items"]
    assert any(n["case_id"] == case["id"] and n["kind"] == "urge" for n in notes), notes
    shot(page, "day-urged")
    assert_clean(page, server)


def test_see_a_bounce_with_its_reason_and_evidence(signed_in, server):
    grid = worker_grid(server)
    case = new_case(server, "绿化带损毁", inner_point(grid), category="E0101")
    step(server, case["id"], "bounce", "demo-worker", reason="不属于本网格，应归相邻网格")
    page = signed_in("demo-dispatcher", viewport=WIDE)
    open_console(page, server)
    tab(page, "bounced")
    item = row(page, case["id"])
    assert "不属于本网格，应归相邻网格" in item.inner_text()
    open_row(page, case["id"], "filed")
    bounce = page.locator("#gm-side .gm-bounce").inner_text()
    assert "不属于本网格，应归相邻网格" in bounce and "网格员" in bounce and grid["properties"]["code"] in bounce
    page.locator("#gm-side .gm-show-boundary").click()
    wait_js(page, f"document.body.dataset.gmOutlined === '{grid['properties']['code']}'")
    assert "退单" in page.locator("#gm-side .gm-timeline").inner_text()
    shot(page, "day-bounce")
    assert_clean(page, server)


def test_batch_dispatch_three_cases(signed_in, server):
    """Three hotline tickets with no category (待处理): ticked, given one category, filed and dispatched by the
    rules at once (batch file, then batch dispatch); each result on its own line with the case number."""
    grid = worker_grid(server)
    lon, lat = inner_point(grid)
    ids = [
        new_case(server, title, (lon + i * 1e-5, lat))["id"]
        for i, title in enumerate(["楼道堆物", "乱贴广告", "占道经营"])
    ]
    assert all(api(server, f"/api/v1/cases/{i}")["state"] == "reported" for i in ids)
    page = signed_in("demo-dispatcher", viewport=WIDE)
    open_console(page, server)
    sort_by(page, "reported_at", "desc")
    for case_id in ids:
        row(page, case_id).locator("input.gm-pick").check()
    assert "已选 3" in page.locator(".gm-batch").inner_text()
    page.select_option(".gm-batch select[name=batch_category]", "E0101")
    page.locator(".gm-batch-dispatch").click()
    wait_js(page, "document.body.dataset.gmBatch === '3/3'")
    wait_idle(page)
    results = page.locator(".gm-batch-results").inner_text()
    assert results.count("成功（已派遣）") == 3, results
    for i in ids:
        case = api(server, f"/api/v1/cases/{i}")
        assert case["state"] == "dispatched" and case["category"] == "E0101" and case["holder"]["name"]
        assert case["number"] in results
    assert not set(ids) & set(page.evaluate("document.body.dataset.gmQueueIds").split(","))  # left 待处理
    shot(page, "day-batch")
    assert_clean(page, server)


def test_a_stale_version_reloads_the_case_and_says_so(signed_in, server):
    case = new_case(server, "路灯不亮", inner_point(worker_grid(server)))
    page = signed_in("demo-dispatcher", viewport=WIDE)
    open_console(page, server)
    page.evaluate(f"void GridmapPage.open({case['id']})")
    wait_js(page, f"document.body.dataset.gmCase === '{case['id']}:reported'")
    wait_idle(page)
    step(server, case["id"], "file", "demo-dispatcher", category="E0101")  # someone else files it meanwhile
    do(page, "reject", reason="重复来电")
    wait_js(page, f"document.body.dataset.gmStale === '{case['id']}'")
    wait_js(page, f"document.body.dataset.gmCase === '{case['id']}:filed'")
    assert "已被他人更新" in page.locator("#gm-side .gm-error").inner_text()
    assert api(server, f"/api/v1/cases/{case['id']}")["state"] == "filed"
    page.console_errors = [e for e in page.console_errors if "409" not in e]  # the refused step itself
    assert_clean(page, server)


def test_new_cases_ring_and_notify_when_asked(signed_in, server):
    page = signed_in("demo-dispatcher", viewport=WIDE)
    page.context.grant_permissions(["notifications"], origin=server)
    open_console(page, server)
    page.locator(".gm-alert-option input").check()
    assert page.evaluate("localStorage.getItem('gridmap.dispatch.alert')") == "1"
    wait_js(page, "document.body.dataset.gmNotify === 'granted'")
    new_case(server, "噪声扰民", inner_point(worker_grid(server)))
    wait_js(page, "Number(document.body.dataset.gmAlerts) >= 1")
    wait_js(page, "Number(document.body.dataset.gmNotified) >= 1")
    # remembered: the option is still on after a reload
    open_console(page, server)
    assert page.locator(".gm-alert-option input").is_checked()
    assert_clean(page, server)


def test_queues_filter_sort_page_and_speak_english(signed_in, server):
    page = signed_in("demo-dispatcher", viewport=WIDE)
    open_console(page, server)
    counts = dict(kv.split(":") for kv in page.evaluate("document.body.dataset.gmCounts").split(","))
    assert set(counts) == {"pending", "dispatched", "verify", "bounced", "approvals", "overdue"}
    for name in ("pending", "dispatched", "verify", "bounced", "approvals", "overdue"):
        assert page.locator(f".gm-tab[data-queue={name}] .gm-count").inner_text() == counts[name]
    # 待处理 paged by 20 (new tickets added if it holds fewer than 21): the next page by the first page's
    # next_cursor, the first page's total kept, and back
    added = [
        new_case(server, f"翻页用新工单 {k}", inner_point(worker_grid(server)))
        for k in range(int(counts["pending"]), 21)
    ]
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url) if "/api/v1/queues/pending?" in r.url else None)
    tab(page, "dispatched")
    tab(page, "pending")
    total = int(page.evaluate("document.body.dataset.gmQueue"))
    assert total > 20, total
    first = page.evaluate("document.body.dataset.gmQueueIds")
    page.locator(".gm-next").click()
    wait_js(page, f"document.body.dataset.gmQueueIds !== '{first}'")
    assert page.locator(".gm-range").inner_text().startswith("第 21–")
    assert page.locator(".gm-range").inner_text().endswith(f"共 {total} 条")
    assert "cursor=" in asked[-1] and "offset=" not in asked[-1], asked[-1]
    page.locator(".gm-prev").click()
    wait_js(page, f"document.body.dataset.gmQueueIds === '{first}'")
    for case in added:  # out of the queue again (voided): the tests after this one see the queue as it was
        step(server, case["id"], "void", "demo-dispatcher", reason="测试工单")
    tab(page, "dispatched")
    sort_by(page, "reported_at", "desc", source="hotline")
    shown = page.evaluate("document.body.dataset.gmQueueIds").split(",")
    for case_id in [i for i in shown if i][:5]:
        assert api(server, f"/api/v1/cases/{case_id}")["source"] == "hotline"
    text = page.locator("#gm-body").inner_text()
    for raw in ("hotline", "near_boundary", "dispatched", "reported_at"):
        assert raw not in text
    shot(page, "day-queues")
    open_console(page, server, "?lang=en")
    assert page.locator(".gm-tab[data-queue=verify] .gm-tab-name").inner_text() == "To verify"
    tab(page, "bounced")
    first = page.evaluate("document.body.dataset.gmQueueIds").split(",")[0]
    open_row(page, first, "filed")
    labels = page.locator("#gm-side th, #gm-side h3, #gm-side summary").all_inner_texts()
    assert labels and not [x for x in labels if any("\u4e00" <= ch <= "\u9fff" for ch in x)], labels
    shot(page, "day-english")
    assert_clean(page, server)


# ------------------------------------------------------------------------------------------------ phone
def test_on_a_phone_verify_and_close(signed_in, server):
    handled = handled_case(server, "垃圾满溢")
    phone = signed_in("demo-verifier", viewport=PHONE, mobile=True)
    open_console(phone, server)
    sort_by(phone, "updated_at", "desc", touch=True)
    open_row(phone, handled["id"], "handled", touch=True)
    do(phone, "verify", touch=True)
    done(phone, "verify", handled["id"], "closed")
    no_sideways_scroll(phone)
    shot(phone, "day-phone-verified")
    assert_clean(phone, server)


def test_an_uncertain_address_match_is_shown_and_confirmed_before_the_pin_moves(signed_in, server):
    place = api(server, "/api/v1/search?q=%E5%B0%8F%E5%8C%BA")["items"][0]  # a compound
    text = place["label"].split(" ")[0] + "99幢"  # a building the gazetteer does not know: a weaker match
    answer = api(server, "/api/v1/address-matches?q=" + urllib.parse.quote(text))
    assert answer["matched_place"] and answer["confidence"] < 1
    page = signed_in("demo-dispatcher", viewport=WIDE)
    open_console(page, server)
    page.evaluate("void GridmapPage.createAt(GridmapPage.map.getCenter())")
    before = page.evaluate("document.body.dataset.gmCreating")
    page.fill(".gm-find input[name=find]", text)
    page.click(".gm-find button[type=submit]")
    wait_js(page, "document.body.dataset.gmMatch === 'matched'")
    wait_idle(page)
    match = page.locator("#gm-side .gm-match").inner_text()
    assert answer["matched_place"]["name"] in match
    assert f"置信度 {round(answer['confidence'] * 100)}%" in match, match
    if "low_confidence" in answer["confirm_because"]:
        assert "置信度较低" in match
    for alt in answer["alternatives"][:5]:
        assert alt["name"] in match
    assert page.evaluate("document.body.dataset.gmFound") is None  # not moved yet
    assert page.evaluate("document.body.dataset.gmCreating") == before
    shot(page, "day-address-match")
    page.click("#gm-side .gm-confirm-place")
    found = wait_js(page, "document.body.dataset.gmFound")
    p = answer["matched_place"]
    assert found == f"{p['lon']:.5f},{p['lat']:.5f}"
    assert page.locator("#gm-create input[name=address]").input_value() == text
    assert_clean(page, server)


@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_a_case_with_its_forms_open_has_no_serious_accessibility_violation(axe_page, server, size):
    """axe-core on the console with a bounced case open and every action form unfolded (the page's load alone is
    checked in test_a11y)."""
    grid = worker_grid(server)
    case = new_case(
        server, "井盖松动", inner_point(grid), category="E0101", reporter_name="李四", reporter_phone="13900001111"
    )
    step(server, case["id"], "bounce", "demo-worker", reason="不在本网格")
    viewport, mobile = (WIDE, False) if size == "desktop" else (PHONE, True)
    page = axe_page("demo-dispatcher", viewport, mobile)
    open_console(page, server)
    tab(page, "bounced", touch=mobile)
    open_row(page, case["id"], "filed", touch=mobile)
    page.evaluate("document.querySelectorAll('#gm-side details').forEach(d => { d.open = true; })")
    page.evaluate("document.querySelector('.gm-qfilters').open = true")
    wait_idle(page)
    violations = run_axe(page)
    shot(page, f"day-a11y-{size}")
    assert violations == [], describe(violations)
