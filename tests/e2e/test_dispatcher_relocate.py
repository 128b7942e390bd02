"""Relocating a dead end and filing it, in the console at 1440×900 and on a phone (390×844, touch) — the first steps
of the dispatcher's day (test_dispatcher_day.py has the rest). The dead end is made through the API: a case 500 m
outside the district edge, in no grid and beyond the nearest-grid distance, so that only a correction can file it."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import PHONE, api
from tests.e2e.test_dispatcher_day import (
    WIDE,
    dead_end_point,
    do,
    done,
    grids,
    new_case,
    no_sideways_scroll,
    open_console,
    open_row,
    pin_drag,
    row,
    shot,
    sort_by,
    wait_idle,
    wait_js,
)
from tests.e2e.test_map import assert_clean, inner_point

pytestmark = pytest.mark.e2e


def test_relocate_a_dead_end_case_and_file_it(signed_in, server):
    lon, lat = dead_end_point(server)
    case = new_case(server, "道路积水", (lon, lat))
    assert case["state"] == "reported" and case["grid_code"] is None
    assert "outside_all_grids" in case["flags"] and case["candidates"], case
    target = next(g for g in grids(server) if g["properties"]["code"] == case["candidates"][0]["code"][:15])
    page = signed_in("demo-dispatcher", viewport=WIDE)
    open_console(page, server)
    sort_by(page, "reported_at", "desc")
    item = row(page, case["id"])
    assert "不在任何网格内" in item.locator(".gm-queue-flags").inner_text()
    open_row(page, case["id"], "reported")
    # 立案 is refused while it lies in no grid: the API's own words, in Chinese
    do(page, "file", category="E0101")
    wait_js(page, "document.body.dataset.gmLastError === 'location'")
    error = page.locator("#gm-side .gm-error").inner_text()
    assert error and "location" not in error and any("\u4e00" <= ch <= "\u9fff" for ch in error), error
    # 更正位置: drag the pin into the nearest grid, with a reason
    page.locator("#gm-side .gm-action-relocate summary").click()
    wait_js(page, f"document.body.dataset.gmRelocating === '{case['id']}'")
    to = inner_point(target)
    pin_drag(page, to)
    form = page.locator("#gm-side .gm-action-relocate")
    assert form.locator("select[name=to]").input_value() == "pin"
    form.locator("input[name=reason]").fill("来电人补充：在小区南门内")
    shot(page, "day-relocate-pin")
    form.locator("button[type=submit]").click()
    done(page, "relocate", case["id"], "reported")
    now = api(server, f"/api/v1/cases/{case['id']}")
    assert now["grid_code"] == target["properties"]["code"]
    assert abs(now["lon"] - to[0]) < 2e-4 and abs(now["lat"] - to[1]) < 2e-4
    timeline = page.locator("#gm-side .gm-timeline").inner_text()
    assert "更正位置" in timeline and "来电人补充：在小区南门内" in timeline
    # now 立案 works
    do(page, "file", category="E0101")
    done(page, "file", case["id"], "filed")
    assert [e["action"] for e in api(server, f"/api/v1/cases/{case['id']}")["history"]][-2:] == ["relocate", "file"]
    shot(page, "day-relocated-filed")
    page.console_errors = [e for e in page.console_errors if "422" not in e]  # the refused 立案 itself
    assert_clean(page, server)


def test_relocate_to_a_candidate_grid_needs_a_reason(signed_in, server):
    lon, lat = dead_end_point(server)
    case = new_case(server, "井盖缺失", (lon, lat - 0.001))
    code = case["candidates"][0]["code"]
    page = signed_in("demo-dispatcher", viewport=WIDE)
    open_console(page, server)
    page.evaluate(f"void GridmapPage.open({case['id']})")
    wait_js(page, f"document.body.dataset.gmCase === '{case['id']}:reported'")
    wait_idle(page)
    form = page.locator("#gm-side .gm-action-relocate")
    form.locator("summary").click()
    form.locator("select[name=to]").select_option(f"grid:{code}")
    form.locator("button[type=submit]").click()  # no reason: the browser refuses the empty required field
    assert api(server, f"/api/v1/cases/{case['id']}")["grid_code"] is None
    form.locator("input[name=reason]").fill("坐标偏差，按地址归入")
    form.locator("button[type=submit]").click()
    done(page, "relocate", case["id"], "reported")
    assert api(server, f"/api/v1/cases/{case['id']}")["grid_code"] == code[:15]
    assert_clean(page, server)


def test_on_a_phone_relocate_and_file(signed_in, server):
    lon, lat = dead_end_point(server)
    case = new_case(server, "路面塌陷", (lon, lat + 0.001))
    code = case["candidates"][0]["code"]
    page = signed_in("demo-dispatcher", viewport=PHONE, mobile=True)
    open_console(page, server)
    no_sideways_scroll(page)
    shot(page, "day-phone-queues")
    sort_by(page, "reported_at", "desc", touch=True)
    open_row(page, case["id"], "reported", touch=True)
    no_sideways_scroll(page)
    do(page, "relocate", touch=True, to=f"grid:{code}", reason="现场核实在网格内")
    done(page, "relocate", case["id"], "reported")
    do(page, "file", touch=True, category="E0101")
    done(page, "file", case["id"], "filed")
    assert api(server, f"/api/v1/cases/{case['id']}")["grid_code"] == code[:15]
    no_sideways_scroll(page)
    shot(page, "day-phone-filed")
    assert_clean(page, server)
