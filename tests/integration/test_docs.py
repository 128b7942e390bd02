"""The API explorer (/docs) is served by the app itself: a page under a CSP with a per-response nonce that allows
no origin but the app's, whose scripts and styles all come from /static/ (Swagger UI from the pinned package).
It is for signed-in accounts (here through the trusted gateway); it reads no database, so one app without a
database suffices. The browser test is tests/e2e/test_docs.py."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from fastapi.testclient import TestClient

from gridmap_api.routes.docs import ASSETS, SWAGGER_VERSION
from gridmap_api.settings import Settings
from tests.conftest import api_client


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    # no `with`: the app is not started, so no database is opened; /docs and the files need none
    return api_client(
        Settings(database_url=f"sqlite:///{tmp_path_factory.mktemp('docs')}/none.sqlite"), role="dispatcher"
    )


def test_docs_are_for_signed_in_accounts_and_swagger_files_for_all(client):
    anonymous = TestClient(client.app)
    r = anonymous.get("/docs", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login?next=")
    assert anonymous.get(f"/static/swagger-ui/{SWAGGER_VERSION}/swagger-ui.css").status_code == 200


class _Refs(HTMLParser):
    """Every script's src, every link's href, and the nonces of inline scripts and styles."""

    def __init__(self):
        super().__init__()
        self.refs, self.inline = [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "script" and attrs.get("src") or tag == "link":
            self.refs.append(attrs.get("src") or attrs.get("href"))
        elif tag in ("script", "style"):
            self.inline.append(attrs.get("nonce"))


def csp(response) -> dict[str, list[str]]:
    return {d.split()[0]: d.split()[1:] for d in response.headers["content-security-policy"].split(";") if d.strip()}


def test_docs_page_is_served_under_a_csp_with_a_nonce_and_no_other_origin(client):
    r = client.get("/docs")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "<title>接口文档 API docs · gridmap</title>" in r.text
    policy = csp(r)
    sources = [s for values in policy.values() for s in values]
    assert not [s for s in sources if re.match(r"(https?:|\*)", s)], sources  # no origin but 'self'
    assert "'unsafe-inline'" not in sources and "'unsafe-eval'" not in sources
    nonce = next(s for s in policy["script-src"] if s.startswith("'nonce-")).removeprefix("'nonce-").rstrip("'")
    assert policy["script-src"] == ["'self'", f"'nonce-{nonce}'"]
    assert policy["object-src"] == ["'none'"] and policy["base-uri"] == ["'none'"]
    parsed = _Refs()
    parsed.feed(r.text)
    assert parsed.inline and all(n == nonce for n in parsed.inline)  # no inline script or style without it
    assert r.headers["cache-control"] == "no-store"
    again = csp(client.get("/docs"))["script-src"]
    assert again != policy["script-src"]  # a new nonce for each response


def test_every_script_and_link_of_the_page_is_a_static_file_of_the_app(client):
    parsed = _Refs()
    parsed.feed(client.get("/docs").text)
    files = [ref for ref in parsed.refs if not ref.endswith("/openapi.json")]
    assert any(ref.endswith("/swagger-ui-bundle.js") for ref in files)
    assert any(ref.endswith("/swagger-ui.css") for ref in files)
    for ref in files:
        assert ref.startswith(f"/static/swagger-ui/{SWAGGER_VERSION}/"), ref
        got = client.get(ref)
        assert got.status_code == 200 and got.content, ref
        assert got.headers["content-type"] == ASSETS[ref.rsplit("/", 1)[1]]
        assert "immutable" in got.headers["cache-control"]  # the version is in the path
    assert client.get("/openapi.json").status_code == 200


def test_only_the_listed_swagger_files_under_their_version(client):
    for path in (f"/static/swagger-ui/{SWAGGER_VERSION}/index.html", "/static/swagger-ui/0.0.1/swagger-ui.css"):
        r = client.get(path)
        assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json", path
        assert "swagger-ui-bundle.js" in r.json()["detail"]  # what would be accepted
    assert client.get(f"/static/swagger-ui/{SWAGGER_VERSION}/..%2F..%2F__init__.py").status_code == 404
    assert client.get("/static/vendor/leaflet/leaflet.js").status_code == 200  # the other static files still are


def test_fastapis_cdn_pages_are_gone(client):
    assert client.get("/redoc").status_code == 404
    assert client.get("/docs/oauth2-redirect").status_code == 404
    assert "/docs" not in client.get("/openapi.json").json()["paths"]
    # the API's own answers keep the CSP that allows nothing
    api_csp = client.get("/openapi.json").headers["content-security-policy"]
    assert api_csp == "default-src 'none'; frame-ancestors 'none'"
