"""Accessibility: axe-core (vendored under tests/e2e/vendor/axe-core, pinned, never served by the app) run in a real
Chromium on every page — sign-in, overview, dispatcher console, planner's workspace, the grid worker's phone page —
in Chinese and in English, at 1400×900 and at 390×844 with touch. A serious or critical violation fails the test
with its rule, the elements and axe's summary of what to fix.

axe is injected with `add_script_tag`, an inline script: the test's browser context bypasses the pages'
Content-Security-Policy for that (the pages themselves are unchanged)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.conftest import DESKTOP, PHONE, SCREENSHOTS, api, record, sign_in, wait_idle, wait_js
from tests.e2e.test_mobile import new_case, worker_grid

pytestmark = pytest.mark.e2e

AXE = Path(__file__).with_name("vendor") / "axe-core" / "axe.min.js"
AXE_VERSION = "4.14.1"
FAILING = ("serious", "critical")

# page → (account, what tells that the page has drawn its content)
PAGES = {
    "/": (
        "demo-dispatcher",
        "document.body.dataset.gmCases !== undefined && document.body.dataset.gmLevel_subdistrict",
    ),
    "/dispatch": ("demo-dispatcher", "document.body.dataset.gmPolls !== undefined"),
    "/plan": ("demo-planner", "document.body.dataset.gmPlanLoads"),
    "/m": ("demo-worker", "document.body.dataset.gmMobileCases !== undefined"),
}
SIZES = {"desktop": (DESKTOP, False), "phone": (PHONE, True)}


def run_axe(pg) -> list[dict]:
    """The serious and critical violations axe finds on the page as it is now (WCAG 2.x A/AA and best practice)."""
    pg.add_script_tag(path=str(AXE))
    assert pg.evaluate("axe.version") == AXE_VERSION
    result = pg.evaluate("""async () => {
        const r = await axe.run(document, {resultTypes: ['violations']});
        return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
            nodes: v.nodes.map(n => ({target: n.target.join(' '), summary: n.failureSummary}))}));
    }""")
    return [v for v in result if v["impact"] in FAILING]


def describe(violations) -> str:
    return json.dumps([{**v, "nodes": v["nodes"][:4]} for v in violations], ensure_ascii=False, indent=1)


@pytest.fixture(name="axe_page")
def axe_page_fixture(browser, server):
    """`axe_page(username, viewport, mobile)`: a page of that account (signed in through /login) whose context
    lets the test inject axe."""
    contexts = []

    def open_as(username, viewport=DESKTOP, mobile=False, landing="/m"):
        context = browser.new_context(
            viewport=viewport,
            locale="zh-CN",
            is_mobile=mobile,
            has_touch=mobile,
            device_scale_factor=2 if mobile else 1,
            bypass_csp=True,
        )
        contexts.append(context)
        pg = record(context.new_page())
        if username:
            # land on a page with an icon link (a JSON answer makes Chromium ask for /favicon.ico: a 404)
            assert sign_in(pg, server, username, next_path=landing).status == 200
        SCREENSHOTS.mkdir(exist_ok=True)
        return pg

    yield open_as
    for context in contexts:
        context.close()


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("lang", ["zh", "en"])
def test_the_sign_in_page_has_no_serious_violation(axe_page, server, lang, size):
    viewport, mobile = SIZES[size]
    pg = axe_page(None, viewport, mobile)
    pg.goto(f"{server}/login?lang={lang}")
    violations = run_axe(pg)
    assert violations == [], describe(violations)
    # with an error shown too (a wrong password)
    pg.fill("#username", "demo-dispatcher")
    pg.fill("#password", "wrong-password")
    pg.click("form button[type=submit]")
    pg.wait_for_load_state()
    violations = run_axe(pg)
    assert violations == [], describe(violations)
    assert pg.console_errors == [] or all("401" in e for e in pg.console_errors), pg.console_errors


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("lang", ["zh", "en"])
@pytest.mark.parametrize("path", PAGES)
def test_every_page_has_no_serious_violation(axe_page, server, path, lang, size):
    account, ready = PAGES[path]
    viewport, mobile = SIZES[size]
    pg = axe_page(account, viewport, mobile, landing=path)
    pg.goto(f"{server}{path}?lang={lang}")
    wait_js(pg, ready)
    wait_idle(pg)
    assert pg.evaluate("document.documentElement.lang") == ("zh-CN" if lang == "zh" else "en")
    violations = run_axe(pg)
    name = path.strip("/") or "overview"
    pg.screenshot(path=str(SCREENSHOTS / f"a11y-{name}-{lang}-{size}.png"))
    assert violations == [], describe(violations)
    if path == "/m":  # the worker's other views: the patrol report form, a case with its forms and map
        pg.click("#gm-m-tab-patrol")
        violations = run_axe(pg)
        assert violations == [], describe(violations)
        case = new_case(server, "无障碍检查", worker_grid(server)[1])
        case = api(
            server, f"/api/v1/cases/{case['id']}/actions/accept", {"version": case["version"]}, as_="demo-worker"
        )  # its forms: handling with photos, an extension
        pg.click("#gm-m-tab-cases")
        wait_idle(pg)
        pg.locator(f".gm-m-case[data-id='{case['id']}']").click()
        wait_js(pg, f"document.body.dataset.gmMobileCase === '{case['id']}:accepted'")
        wait_idle(pg)
        for fold in pg.locator("#gm-m-case details").all():
            fold.evaluate("d => d.open = true")
        violations = run_axe(pg)
        assert violations == [], describe(violations)
    assert pg.console_errors == [], pg.console_errors
