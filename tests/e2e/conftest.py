"""A real server (uvicorn, subprocess) on a SpatiaLite demo database with the demo accounts, and Debian's headless
Chromium via Playwright. Every page is opened by an account that signed in through the real /login page (the
session cookie is then kept per account, so each account signs in once a run); the test's own API calls carry a
bearer token of an account (`api(..., as_=...)`), never identity headers."""

from __future__ import annotations

import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from gridmap.demo.accounts import DEMO_PASSWORD, create_demo_accounts
from gridmap.store import audit
from gridmap.store import engine as storage
from tests.conftest import IN_CI, _load

CHROMIUM = os.environ.get("GRIDMAP_CHROMIUM", shutil.which("chromium") or "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).with_name("screenshots")
DISTRICT = "530111"
DESKTOP = {"width": 1400, "height": 900}
PHONE = {"width": 390, "height": 844}
# a 1×1 PNG, light grey
TILE_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d49444154789c"
    "63b87bf7ee7f0008c90397affde77b0000000049454e44ae426082"
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(url: str, **settings):
    """Start `gridmap` under uvicorn on a free port with GRIDMAP_* settings; yields its base URL."""
    port = _free_port()
    env = {
        **os.environ,
        "GRIDMAP_DATABASE_URL": url,
        "GRIDMAP_POLL_S": "1",
        **{f"GRIDMAP_{k.upper()}": str(v) for k, v in settings.items()},
    }
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
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180  # its imports alone take 30 s and more on a loaded 2-core machine
    while True:
        try:
            urllib.request.urlopen(base + "/login", timeout=5)
            break
        except OSError:
            if proc.poll() is not None:
                pytest.fail(f"the server exited with {proc.returncode} before it answered")
            if time.monotonic() > deadline:
                proc.kill()
                pytest.fail("the server did not answer within 180 s")
            time.sleep(0.2)
    return base, proc


@pytest.fixture(scope="session")
def database(tmp_path_factory):
    """The small demo with its accounts (one per role, password `DEMO_PASSWORD`), as `gridmap demo` makes them."""
    url = _load(f"sqlite:///{tmp_path_factory.mktemp('e2e') / 'gridmap.sqlite'}")
    engine = storage.make_engine(url)
    with audit.acting("e2e:fixture"), storage.session_scope(storage.make_sessionmaker(engine)) as session:
        create_demo_accounts(session, DISTRICT)
    engine.dispose()
    return url


def api(server, path, body=None, headers=None, *, as_: str | None = "demo-dispatcher"):
    """JSON from the API as the account `as_` (a bearer token from POST /api/v1/auth/token, asked once per account
    and run), or with no credentials when `as_` is None."""
    data = json.dumps(body).encode() if body is not None else None
    auth = {"Authorization": f"Bearer {bearer(server, as_)}"} if as_ else {}
    request = urllib.request.Request(
        server + path, data=data, headers={"Content-Type": "application/json", **auth, **(headers or {})}
    )
    with urllib.request.urlopen(request) as r:
        return json.load(r)


def status_of(server, path, *, cookie: str | None = None, as_: str | None = None) -> int:
    """The HTTP status of a request (with a session cookie, or as an account, or with nothing)."""
    headers = {}
    if cookie:
        headers["Cookie"] = f"gridmap_session={cookie}"
    if as_:
        headers["Authorization"] = f"Bearer {bearer(server, as_)}"
    try:
        with urllib.request.urlopen(urllib.request.Request(server + path, headers=headers)) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code


_TOKENS: dict[str, str] = {}


def bearer(server, username: str) -> str:
    """A bearer token of a demo account (the servers of a run share one database, so one token serves both)."""
    if username not in _TOKENS:
        form = urllib.parse.urlencode({"username": username, "password": DEMO_PASSWORD}).encode()
        with urllib.request.urlopen(urllib.request.Request(server + "/api/v1/auth/token", data=form)) as r:
            _TOKENS[username] = json.load(r)["access_token"]
    return _TOKENS[username]


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
    base, proc = _serve(
        database, tile_crs="gcj02", tile_url=tile_server[0] + "/{z}/{x}/{y}.png", tile_attribution="test tiles"
    )
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


def record(pg):
    """Keep the page's console errors, failed responses and every request, for the assertions after the test."""
    pg.console_errors = []
    pg.requests = []
    pg.on("console", lambda m: pg.console_errors.append(m.text) if m.type == "error" else None)
    pg.on("pageerror", lambda e: pg.console_errors.append(str(e)))
    pg.on("request", lambda r: pg.requests.append(r.url))
    pg.on("response", lambda r: pg.console_errors.append(f"HTTP {r.status} {r.url}") if r.status >= 400 else None)
    return pg


def new_context(browser, viewport=DESKTOP, mobile: bool = False):
    """A browser context in Chinese; `mobile`: a phone's (touch, mobile viewport)."""
    return browser.new_context(
        viewport=viewport, locale="zh-CN", is_mobile=mobile, has_touch=mobile, device_scale_factor=2 if mobile else 1
    )


def sign_in(pg, server, username: str, password: str = DEMO_PASSWORD, next_path: str = "/api/v1/auth/me"):
    """Sign in through the real sign-in page, as a person does: open /login?next=…, type, press 登录. Returns the
    response of the page it lands on."""
    pg.goto(f"{server}/login?next={urllib.parse.quote(next_path, safe='')}")
    pg.fill("#username", username)
    pg.fill("#password", password)
    with pg.expect_navigation() as landed:
        pg.click("form button[type=submit]")
    return landed.value


@pytest.fixture(scope="session")
def _session_cookies():
    return {}


@pytest.fixture()
def signed_in(browser, server, _session_cookies):
    """`signed_in(username, viewport=..., mobile=..., fresh=...)`: a new page (its own context) of that demo account.
    The account signs in through /login the first time in the run and its session cookie is kept for the next
    tests; `fresh=True` always signs in anew and keeps nothing (for signing out)."""
    contexts = []

    def open_as(username: str, *, viewport=DESKTOP, mobile: bool = False, fresh: bool = False):
        context = new_context(browser, viewport, mobile)
        contexts.append(context)
        pg = record(context.new_page())
        if fresh or username not in _session_cookies:
            landed = sign_in(pg, server, username)
            assert landed.status == 200 and landed.json()["username"] == username, landed.status
            cookies = [c for c in context.cookies() if c["name"] == "gridmap_session"]
            assert len(cookies) == 1 and cookies[0]["httpOnly"] and cookies[0]["secure"], cookies
            if not fresh:
                _session_cookies[username] = cookies
        else:
            context.add_cookies(_session_cookies[username])
        SCREENSHOTS.mkdir(exist_ok=True)
        return pg

    yield open_as
    for context in contexts:
        context.close()


@pytest.fixture()
def page(signed_in):
    """A page signed in as the district's dispatcher (demo-dispatcher: the whole district; intake, filing,
    dispatch, the map and the measures), recording console errors and every request."""
    return signed_in("demo-dispatcher")
