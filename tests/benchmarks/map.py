"""How fast the map pages are on the full Guandu demo (1,854 micro-grids, 50,000 cases), in headless Chromium.

Figures: first contentful paint, time until the page is ready (district, sub-districts and the last 30 days'
cases drawn; nothing in flight), bytes fetched; then interactions: drill into a sub-district, zoom to micro-grids,
pan, a year of cases (≈ 50,000 points), a choropleth per grid, the console's queue. The peer is the obvious way: a
folium page with every grid and micro-grid embedded as one GeoJSON (what the issue warns against), loaded in the
same browser. Each figure is the median of 3 runs, each run in a fresh browser context (empty cache).

    python tests/benchmarks/map.py [--database sqlite:////path/to/full-demo.sqlite] [--part new]

Issue 14 adds: the 12-month series of a grid, a community, a sub-district and the district over HTTP (target
< 300 ms); a year of cases over the district as raw points against server-side clusters (features, time, bytes on
the wire and as JSON); the first screen at 390×844 with touch beside 1440×900 (`--part new` runs only these).

Without --database the full demo is loaded into a temporary SpatiaLite file first (about 80 s).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import shapely.geometry

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, _free_port, sign_in, wait_idle, wait_js  # noqa: E402

RUNS = 3


def serve(url: str) -> tuple[str, subprocess.Popen]:
    port = _free_port()
    env = {**os.environ, "GRIDMAP_DATABASE_URL": url}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "gridmap_api.main:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env=env,
        cwd=ROOT,
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(base + "/login", timeout=2)
            return base, proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("the server did not start")


def timed(page, action, ready: str, idle: bool = True) -> float:
    started = time.perf_counter()
    page.evaluate(f"() => {{ {action}; }}")  # nothing returned: Playwright would serialise a whole Leaflet map
    wait_js(page, ready, 120)
    if idle:
        wait_idle(page, 120)
    return (time.perf_counter() - started) * 1000


def transferred(page) -> int:
    return int(
        page.evaluate(
            "performance.getEntriesByType('resource').reduce((s, e) => s + e.transferSize, 0)"
            " + performance.getEntriesByType('navigation')[0].transferSize"
        )
    )


def session_cookies(browser, base: str, username: str = "demo-dispatcher") -> list[dict]:
    """Sign in once as the district's dispatcher (or `username`, through the sign-in page); the runs start signed
    in, as a user who opens the map during the working day."""
    context = browser.new_context()
    sign_in(context.new_page(), base, username)
    cookies = context.cookies()
    context.close()
    return cookies


def overview_run(browser, base: str, cookies: list[dict]) -> dict:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.add_cookies(cookies)
    page = context.new_page()
    out = {}
    started = time.perf_counter()
    page.goto(base + "/")
    wait_js(page, "document.body.dataset.gmCases !== undefined && document.body.dataset.gmLevel_subdistrict", 120)
    wait_idle(page, 120)
    out["ready_ms"] = (time.perf_counter() - started) * 1000
    out["fcp_ms"] = page.evaluate("performance.getEntriesByName('first-contentful-paint')[0].startTime")
    out["bytes"] = transferred(page)
    out["cases_30d"] = int(page.evaluate("document.body.dataset.gmCases"))
    started = time.perf_counter()
    out["drill_ms"] = timed(
        page, "GridmapPage.select('530111003', true)", "document.body.dataset.gmMeasures === '530111003'", idle=False
    )
    wait_js(page, "document.body.dataset.gmTrend === '530111003'", 120)
    wait_idle(page, 120)
    out["trend_ms"] = (time.perf_counter() - started) * 1000
    page.evaluate(
        "() => { GridmapPage.areas.levels.grid.layer.addTo(GridmapPage.map);"
        " GridmapPage.areas.levels.microgrid.layer.addTo(GridmapPage.map); }"
    )
    wait_idle(page, 60)
    out["zoom15_ms"] = timed(
        page, "GridmapPage.map.setView([25.03, 102.76], 15)", "Number(document.body.dataset.gmLevel_microgrid) > 0"
    )
    out["microgrids_drawn"] = int(page.evaluate("document.body.dataset.gmLevel_microgrid"))
    out["pan_ms"] = timed(page, "GridmapPage.map.panBy([700, 0], {animate: false})", "true")
    page.fill("input[name=since]", "2025-11-20")
    page.fill("input[name=until]", "2026-11-21")
    before = page.evaluate("document.body.dataset.gmCases")
    out["year_ms"] = timed(
        page, "document.querySelector('.gm-apply').click()", f"document.body.dataset.gmCases !== '{before}'"
    )
    out["cases_year"] = int(page.evaluate("document.body.dataset.gmCases"))
    page.select_option("select[name=measure]", "on_time_rate")
    page.select_option("select[name=measure_level]", "grid")
    out["choropleth_ms"] = timed(
        page,
        "document.querySelector('.gm-apply').click()",
        "(document.body.dataset.gmChoropleth || '').startsWith('on_time_rate:grid')",
    )
    started = time.perf_counter()
    page.goto(base + "/dispatch")
    wait_js(page, "document.body.dataset.gmPolls !== undefined", 120)
    wait_idle(page, 120)
    out["console_ready_ms"] = (time.perf_counter() - started) * 1000
    context.close()
    return out


def peer_page(base: str, folder: Path) -> Path:
    """The obvious folium page: every grid and micro-grid embedded as GeoJSON at full precision."""
    from urllib.parse import urlencode

    import folium

    from gridmap.demo.accounts import DEMO_PASSWORD

    form = urlencode({"username": "demo-dispatcher", "password": DEMO_PASSWORD}).encode()
    with urllib.request.urlopen(urllib.request.Request(f"{base}/api/v1/auth/token", data=form)) as r:
        token = json.load(r)["access_token"]
    html = folium.Map(location=[25.0, 102.8], zoom_start=11, tiles=None)
    for level in ("grid", "microgrid"):
        request = urllib.request.Request(
            f"{base}/api/v1/areas?level={level}&precision=8", headers={"Authorization": f"Bearer {token}"}
        )
        with urllib.request.urlopen(request) as r:
            folium.GeoJson(json.load(r), name=level).add_to(html)
    path = folder / "embedded.html"
    html.save(str(path))
    # folium links Leaflet and friends from CDNs, unreachable here: point Leaflet at the app's copy, drop the rest
    text = path.read_text()
    static = ROOT / "web" / "gridmap_web" / "static" / "vendor" / "leaflet"
    text = re.sub(r'https://[^"]*/leaflet\.js', (static / "leaflet.js").as_uri(), text)
    text = re.sub(r'https://[^"]*/leaflet\.css', (static / "leaflet.css").as_uri(), text)
    text = re.sub(r'<(script|link)[^>]*"https://[^"]*"[^>]*>(</script>)?', "", text)
    path.write_text(text)
    return path


def peer_run(browser, base: str, path: Path) -> dict:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    started = time.perf_counter()
    page.goto(path.as_uri())
    page.wait_for_load_state("load")
    page.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
    out = {
        "ready_ms": (time.perf_counter() - started) * 1000,
        "fcp_ms": page.evaluate("(performance.getEntriesByName('first-contentful-paint')[0] || {}).startTime"),
        "bytes": path.stat().st_size,
        "paths": page.evaluate("document.querySelectorAll('path.leaflet-interactive').length"),
    }
    context.close()
    return out


def first_screen_run(browser, base: str, cookies: list[dict], phone: bool) -> dict:
    """The overview's first screen, cold: at 390×844 with touch (a phone, 3 device pixels per CSS pixel) or at
    1440×900. Times: first contentful paint, and the first painted map (the district's areas drawn and the cases
    of the last 30 days placed; nothing in flight)."""
    if phone:
        context = browser.new_context(
            viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True, device_scale_factor=3
        )
    else:
        context = browser.new_context(viewport={"width": 1440, "height": 900})
    context.add_cookies(cookies)
    page = context.new_page()
    started = time.perf_counter()
    page.goto(base + "/")
    wait_js(page, "document.body.dataset.gmCases !== undefined && document.body.dataset.gmLevel_subdistrict", 120)
    painted = (time.perf_counter() - started) * 1000
    page.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
    wait_idle(page, 120)
    out = {
        "painted_ms": painted,
        "ready_ms": (time.perf_counter() - started) * 1000,
        "fcp_ms": page.evaluate("(performance.getEntriesByName('first-contentful-paint')[0] || {}).startTime"),
        "bytes": transferred(page),
        "areas_drawn": page.evaluate("document.querySelectorAll('path.leaflet-interactive').length"),
        "scroll_x": page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth"),
    }
    # then the grids: the first screen shows the district and its sub-districts; the grid layer, switched on, is
    # drawn from z11, as GeoJSON or, when the view holds more than the page's limit, from vector tiles
    out["grids_ms"] = timed(
        page,
        "GridmapPage.areas.levels.grid.layer.addTo(GridmapPage.map);"
        " GridmapPage.map.setView(GridmapPage.map.getCenter(), 12, {animate: false})",
        "Number(document.body.dataset.gmLevel_grid) > 0 || Number(document.body.dataset.gmTilesReady_grid) > 0",
    )
    out["grids_drawn"] = int(page.evaluate("document.body.dataset.gmLevel_grid"))  # 0: from tiles
    context.close()
    return out


def api_token(base: str, username: str = "demo-admin") -> dict:
    from urllib.parse import urlencode

    from gridmap.demo.accounts import DEMO_PASSWORD

    form = urlencode({"username": username, "password": DEMO_PASSWORD}).encode()
    with urllib.request.urlopen(urllib.request.Request(f"{base}/api/v1/auth/token", data=form)) as r:
        return {"Authorization": f"Bearer {json.load(r)['access_token']}"}


def fetch(base: str, path: str, headers: dict) -> tuple[float, int, bytes]:
    """(milliseconds, bytes on the wire, body) of one GET, as the pages send it (gzip accepted)."""
    import gzip

    started = time.perf_counter()
    with urllib.request.urlopen(
        urllib.request.Request(base + path, headers={**headers, "Accept-Encoding": "gzip"})
    ) as r:
        raw = r.read()
        zipped = r.headers.get("Content-Encoding") == "gzip"
    ms = (time.perf_counter() - started) * 1000
    return ms, len(raw), gzip.decompress(raw) if zipped else raw


def series_figures(base: str, headers: dict, reps: int = 5) -> list[tuple[str, str, float, float]]:
    """GET /api/v1/areas/{code}/series (12 months) of a grid, a community, a sub-district and the district, over
    HTTP as the page calls it: (label, code, best ms, median ms) of `reps` calls after one warm-up."""
    codes, parent = {}, "530111"
    for level in ("subdistrict", "community", "grid"):  # the first of each, down from the district
        _, _, body = fetch(base, f"/api/v1/areas?parent={parent}&precision=3", headers)
        codes[level] = parent = sorted(f["properties"]["code"] for f in json.loads(body)["features"])[0]
    out = []
    for label, code in [
        ("grid", codes["grid"]),
        ("community", codes["community"]),
        ("sub-district", codes["subdistrict"]),
        ("district", "530111"),
    ]:
        fetch(base, f"/api/v1/areas/{code}/series?months=12", headers)
        times = [fetch(base, f"/api/v1/areas/{code}/series?months=12", headers)[0] for _ in range(reps)]
        out.append((label, code, min(times), statistics.median(times)))
    return out


def cluster_figures(base: str, headers: dict, reps: int = 3) -> list[tuple[str, int, float, float, int]]:
    """A year of cases over the whole district, zoomed out (z11, the district on a 1440 px screen) and at z13: the
    raw points (`/map/cases`) against the clusters (`/map/cases/clusters`): (label, features, best ms, wire bytes,
    JSON bytes)."""
    year = "since=2025-11-20T00:00:00%2B08:00&until=2026-11-21T00:00:00%2B08:00"
    _, _, body = fetch(base, "/api/v1/areas?level=district&precision=4", headers)
    minx, miny, maxx, maxy = shapely.geometry.shape(json.loads(body)["features"][0]["geometry"]).bounds
    box = f"{minx:.5f},{miny:.5f},{maxx:.5f},{maxy:.5f}"
    out = []
    for label, path, key in [
        ("raw points", f"/api/v1/map/cases?{year}&bbox={box}", "count"),
        ("clusters z11", f"/api/v1/map/cases/clusters?{year}&bbox={box}&zoom=11", "features"),
        ("clusters z13", f"/api/v1/map/cases/clusters?{year}&bbox={box}&zoom=13", "features"),
        ("open cases, clusters z11", f"/api/v1/map/cases/clusters?{year}&bbox={box}&zoom=11&state=open", "features"),
    ]:
        fetch(base, path, headers)
        runs = [fetch(base, path, headers) for _ in range(reps)]
        answer = json.loads(runs[0][2])
        n = answer["count"] if key == "count" else len(answer["features"])
        cases = answer["count"] if key == "count" else answer["total"]
        out.append((label, n, cases, min(r[0] for r in runs), runs[0][1], len(runs[0][2])))
    return out


def median(runs: list[dict], key: str) -> float:
    values = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(values) if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database", help="a database holding the full demo (default: load one)")
    parser.add_argument(
        "--part",
        choices=("all", "new"),
        default="all",
        help="new: only the series, the year of cases clustered and the first screens (issue 14)",
    )
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="gridmap-bench-map-"))
    url = args.database
    if not url:
        url = f"sqlite:///{folder / 'full.sqlite'}"
        print("loading the full Guandu demo …", flush=True)
        env = {**os.environ, "GRIDMAP_DATABASE_URL": url}
        subprocess.run([sys.executable, "-m", "gridmap.cli", "init"], env=env, check=True, cwd=ROOT)
        subprocess.run([sys.executable, "-m", "gridmap.cli", "demo", "--if-empty"], env=env, check=True, cwd=ROOT)
    base, proc = serve(url)
    try:
        from playwright.sync_api import sync_playwright

        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            cookies = session_cookies(browser, base)
            headers = api_token(base)
            series = series_figures(base, headers)
            clusters = cluster_figures(base, headers)
            first_screen_run(browser, base, cookies, phone=False)  # warm the server's caches once
            screens = {
                phone: [first_screen_run(browser, base, cookies, phone) for _ in range(RUNS)] for phone in (False, True)
            }
            if args.part == "all":
                overview_run(browser, base, cookies)  # warm the server's caches (outlines per zoom, calendar) once
                runs = [overview_run(browser, base, cookies) for _ in range(RUNS)]
                embedded = peer_page(base, folder)
                peers = [peer_run(browser, base, embedded) for _ in range(RUNS)]
            browser.close()
    finally:
        proc.terminate()
        proc.wait(10)
    print("\n12-month series of an area, GET /api/v1/areas/{code}/series over HTTP (target < 300 ms)")
    for label, code, best, mid in series:
        print(f"  {label:14s}{code:>18s}{best:>10,.0f} ms best{mid:>8,.0f} ms median")
    print("\na year of cases over the whole district: raw points against server-side clusters")
    print(f"  {'':28s}{'features':>10s}{'cases':>9s}{'time':>10s}{'wire (gzip)':>14s}{'JSON':>12s}")
    for label, n, cases, best, wire, size in clusters:
        print(f"  {label:28s}{n:>10,}{cases:>9,}{best:>8,.0f} ms{wire:>12,} B{size:>10,} B")
    print(
        f"\nthe overview's first screen, median of {RUNS} cold runs (first painted map: district and sub-districts"
        " drawn, last 30 days' cases placed)"
    )
    print(f"  {'':34s}{'1440×900':>12s}{'390×844 touch':>16s}")
    for label, key, unit in [
        ("first contentful paint", "fcp_ms", "ms"),
        ("first painted map", "painted_ms", "ms"),
        ("ready (nothing in flight)", "ready_ms", "ms"),
        ("bytes fetched", "bytes", "B"),
        ("areas drawn", "areas_drawn", ""),
        ("horizontal overflow (px)", "scroll_x", ""),
        ("then zoom to z12: grids drawn", "grids_ms", "ms"),
        ("grids drawn", "grids_drawn", ""),
    ]:
        print(
            f"  {label:34s}{median(screens[False], key):>10,.0f}{unit:>2s}{median(screens[True], key):>14,.0f}"
            f"{unit:>2s}"
        )
    if args.part != "all":
        return
    print(f"\nmap pages, full Guandu demo, headless Chromium, median of {RUNS} cold runs")
    print(f"{'':44s}{'gridmap':>12s}{'embedded GeoJSON':>18s}{'ratio':>8s}")
    for label, key, unit in [
        ("first contentful paint", "fcp_ms", "ms"),
        ("ready (drawn, nothing in flight)", "ready_ms", "ms"),
        ("bytes fetched", "bytes", "B"),
    ]:
        ours, theirs = median(runs, key), median(peers, key)
        print(f"{label:44s}{ours:>10,.0f}{unit:>2s}{theirs:>16,.0f}{unit:>2s}{theirs / ours:>7.1f}×")
    print(
        f"  (the embedded page draws {median(peers, 'paths'):,.0f} outlines at once; gridmap draws the "
        f"district and {len(runs) and 'sub-districts'} and {median(runs, 'cases_30d'):,.0f} cases of the last 30 days)"
    )
    for label, key in [
        ("drill into a sub-district (panel and measures)", "drill_ms"),
        ("… and its 12-month trend chart", "trend_ms"),
        ("zoom to z15 with grids and micro-grids", "zoom15_ms"),
        ("pan 700 px at z15", "pan_ms"),
        (f"a year of cases ({median(runs, 'cases_year'):,.0f} points, clustered)", "year_ms"),
        ("choropleth of on-time rate per grid", "choropleth_ms"),
        ("dispatcher console ready", "console_ready_ms"),
    ]:
        print(f"{label:60s}{median(runs, key):>10,.0f} ms")
    print(f"micro-grids drawn at z15: {median(runs, 'microgrids_drawn'):,.0f} of 1,854")


if __name__ == "__main__":
    main()
