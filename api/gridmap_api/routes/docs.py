"""The API explorer (接口文档) at /docs: Swagger UI from the pinned `swagger-ui-bundle-v2` package, served by the app
itself (no CDN, so it works with no internet access), under a page CSP with a per-response nonce like the map's."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse
from swagger_ui_bundle import swagger_ui_path

from gridmap.access.policy import Principal
from gridmap.errors import NotFound
from gridmap_api.auth import allow
from gridmap_api.routes.pages import page_user

router = APIRouter(include_in_schema=False)

SWAGGER_DIR = Path(str(swagger_ui_path))
SWAGGER_VERSION = SWAGGER_DIR.name.removeprefix("swagger-ui-")  # e.g. 5.31.0: in the URL, so cached for good
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon-32x32.png": "image/png",
    "favicon-16x16.png": "image/png",
}
ASSET_URL = f"/static/swagger-ui/{SWAGGER_VERSION}"

PAGE = """<!DOCTYPE html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>接口文档 API docs · gridmap</title>
<link rel="icon" type="image/png" sizes="32x32" href="{assets}/favicon-32x32.png">
<link rel="icon" type="image/png" sizes="16x16" href="{assets}/favicon-16x16.png">
<link rel="stylesheet" href="{assets}/swagger-ui.css">
<style nonce="{nonce}">
body {{ margin: 0; font-family: sans-serif; }}
.gm-docs-head {{ padding: 10px 20px; background: #1b4f72; color: #fff; }}
.gm-docs-head h1 {{ margin: 0; font-size: 20px; }}
.gm-docs-head p {{ margin: 4px 0 0; font-size: 13px; }}
.gm-docs-head a {{ color: #fff; }}
</style>
</head>
<body>
<header class="gm-docs-head">
<h1>接口文档 API docs</h1>
<p>网格化管理系统的 HTTP 接口，可在本页试用 · the HTTP API of gridmap, to read and try out here ·
<a href="{openapi}">OpenAPI (JSON)</a></p>
</header>
<noscript>本页需要启用 JavaScript。The API docs need JavaScript.</noscript>
<div id="swagger-ui"></div>
<script src="{assets}/swagger-ui-bundle.js"></script>
<script nonce="{nonce}">
window.ui = SwaggerUIBundle({{url: {openapi_js}, dom_id: "#swagger-ui", deepLinking: true, validatorUrl: null,
  presets: [SwaggerUIBundle.presets.apis], layout: "BaseLayout"}});
</script>
</body>
</html>
"""


def content_security_policy(nonce: str) -> str:
    """As the pages' policy (see `gridmap_api.routes.pages`), without the base map's tile servers: everything from the
    app,
    inline script and style only with this response's nonce, images also as data: URLs (Swagger UI's icons)."""
    return (
        f"default-src 'self'; script-src 'self' 'nonce-{nonce}'; style-src 'self' 'nonce-{nonce}'; "
        "img-src 'self' data:; connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'self'"
    )


@router.get("/docs", response_class=HTMLResponse)
def docs(request: Request, who: Annotated[Principal | None, page_user("signed_in")]):
    """The API explorer: Swagger UI reading this app's OpenAPI document (signed-in accounts only)."""
    if who is None:
        return RedirectResponse("/login?next=" + quote("/docs", safe=""), status_code=303)
    nonce = secrets.token_urlsafe(16)
    openapi = request.scope.get("root_path", "") + (request.app.openapi_url or "/openapi.json")
    html = PAGE.format(
        assets=request.scope.get("root_path", "") + ASSET_URL,
        nonce=nonce,
        openapi=openapi,
        openapi_js=json.dumps(openapi).replace("</", "<\\/"),
    )
    return HTMLResponse(
        html, headers={"Content-Security-Policy": content_security_policy(nonce), "Cache-Control": "no-store"}
    )


@router.get("/openapi.json")
def openapi_document(request: Request, who: Annotated[Principal, allow("public")]) -> JSONResponse:
    """The OpenAPI document, public as FastAPI's own route was (the API's inventory, no data); served here so that
    it states its policy like every other route."""
    return JSONResponse(request.app.openapi())


@router.get("/static/swagger-ui/{version}/{name}")
def swagger_asset(version: str, name: str, who: Annotated[Principal, allow("public")]) -> FileResponse:
    """Swagger UI's own files, from the installed package; the version in the path lets browsers keep them."""
    if version != SWAGGER_VERSION or name not in ASSETS:
        files = ", ".join(sorted(ASSETS))
        raise NotFound(
            f"path: no such Swagger UI file; accepted: {ASSET_URL}/ followed by {files}",
            field="path",
            zh=f"路径：没有这个 Swagger UI 文件；可用：{ASSET_URL}/ 加 {files}。",
        )
    return FileResponse(
        SWAGGER_DIR / name, media_type=ASSETS[name], headers={"Cache-Control": "public, max-age=31536000, immutable"}
    )
