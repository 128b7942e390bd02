"""The API explorer (/docs) in a real headless Chromium with every request off the app refused: Swagger UI comes
from the app, runs under the page's Content-Security-Policy and lists the operations."""

import pytest

from tests.e2e.conftest import wait_js

pytestmark = pytest.mark.e2e


def test_docs_render_offline_under_the_csp(page, server):
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
    assert page.title() == "接口文档 API docs · gridmap"
    wait_js(page, "document.querySelectorAll('.opblock').length > 10")
    paths = page.locator(".opblock-summary-path").all_text_contents()
    assert "/api/v1/cases" in [p.replace("\u200b", "") for p in paths]
    assert page.get_by_text("/api/v1/cases", exact=True).first.is_visible()
    # open one operation: its parameters and responses render too
    page.locator(".opblock-summary-path", has_text="/api/v1/areas").first.click()
    wait_js(page, "document.querySelector('.opblock.is-open .responses-table') !== null")
    assert csp_reports == [], csp_reports
    assert page.console_errors == [], page.console_errors
    assert refused == [], f"the page asked for something off the app: {refused[:5]}"
    assert all(u.startswith((server + "/", "data:")) for u in page.requests)
    assert any(u.startswith(server + "/static/swagger-ui/") for u in page.requests)
