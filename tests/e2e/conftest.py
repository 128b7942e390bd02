"""A real server (uvicorn, subprocess) on a SpatiaLite demo database, and Debian's headless Chromium via Playwright."""

from __future__ import annotations

import http.server
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import IN_CI, _load

CHROMIUM = os.environ.get("GRIDMAP_CHROMIUM", shutil.which("chromium") or "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
SCREENSHOTS = Path(__file__).with_name("screenshots")
# a 1×1 PNG, light grey
TILE_PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d49444154789c"
                         "63b87bf7ee7f0008c90397affde77b0000000049454e44ae426082")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(url: str, **settings):
    """Start `gridmap` under uvicorn on a free port with GRIDMAP_* settings; yields its base URL."""
    port = _free_port()
    env = {**os.environ, "GRIDMAP_DATABASE_URL": url, "GRIDMAP_POLL_S": "1",
           **{f"GRIDMAP_{k.upper()}": str(v) for k, v in settings.items()}}
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "api.main:create_app", "--factory", "--host", "127.0.0.1",
                             "--port", str(port), "--log-level", "warning"], env=env)
    base = f"http://127.0.0.1:{port}"
    for _ in range(150):
        try:
            urllib.request.urlopen(base + "/api/v1/areas?level=district", timeout=1)
            break
        except OSError:
            time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("the server did not start")
    return base, proc


@pytest.fixture(scope="session")
def database(tmp_path_factory):
    return _load(f"sqlite:///{tmp_path_factory.mktemp('e2e') / 'gridmap.sqlite'}")


@pytest.fixture(scope="session")
def server(database):
    base, proc = _serve(database)
    yield base
    proc.terminate()
    proc.wait(10)


class _Tiles(http.server.BaseHTTPRequestHandler):
    """A base-map tile server on this machine: every tile is the same small PNG; the paths asked are kept."""

    asked: list = []

    def do_GET(self):  # noqa: N802 - the http.server API
        _Tiles.asked.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(TILE_PNG)))
        self.end_headers()
        self.wfile.write(TILE_PNG)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="session")
def tile_server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Tiles)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", _Tiles.asked
    httpd.shutdown()


@pytest.fixture(scope="session")
def gcj_server(database, tile_server):
    """The same database served for a GCJ-02 base map (AMap-style tiles, here from the local tile server)."""
    base, proc = _serve(database, tile_crs="gcj02", tile_url=tile_server[0] + "/{z}/{x}/{y}.png",
                        tile_attribution="test tiles")
    yield base
    proc.terminate()
    proc.wait(10)


def wait_js(page, expression: str, timeout: float = 20.0):
    """Poll a JavaScript expression until it is truthy and return its value. (Playwright's wait_for_function
    compiles its predicate with eval, which the pages' Content-Security-Policy rightly forbids.)"""
    end = time.monotonic() + timeout
    while True:
        value = page.evaluate(expression)
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {expression}")
        time.sleep(0.05)


def wait_idle(page, timeout: float = 20.0):
    """Until no API request is in flight (twice, 150 ms apart: one answer may start the next request)."""
    for _ in range(2):
        wait_js(page, "document.body.dataset.gmIdle === '1'", timeout)
        time.sleep(0.15)
    wait_js(page, "document.body.dataset.gmIdle === '1'", timeout)


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        if IN_CI:
            pytest.fail(f"Chromium is required under CI but {CHROMIUM} does not exist")
        pytest.skip("no Chromium on this machine")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture()
def page(browser, server):
    """A page that records console errors and every request, for the assertions after the test."""
    context = browser.new_context(viewport={"width": 1400, "height": 900}, locale="zh-CN")
    pg = context.new_page()
    pg.console_errors = []
    pg.requests = []
    pg.on("console", lambda m: pg.console_errors.append(m.text) if m.type == "error" else None)
    pg.on("pageerror", lambda e: pg.console_errors.append(str(e)))
    pg.on("request", lambda r: pg.requests.append(r.url))
    pg.on("response", lambda r: pg.console_errors.append(f"HTTP {r.status} {r.url}") if r.status >= 400 else None)
    SCREENSHOTS.mkdir(exist_ok=True)
    yield pg
    context.close()
