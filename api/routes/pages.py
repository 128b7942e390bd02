"""HTML pages: the overview map and the dispatcher console, built by `web`, sent with a strict CSP."""

from __future__ import annotations

import secrets
from typing import Annotated, Literal
from urllib.parse import urlsplit

from fastapi import APIRouter, Header
from fastapi.responses import HTMLResponse

from api.deps import SettingsDep
from api.settings import Settings
from web.pages import MapConfig, render_page

router = APIRouter(include_in_schema=False)


def image_sources(basemaps: list[dict]) -> list[str]:
    """The origins the base map's tiles come from, for the CSP's img-src ({s} becomes a wildcard subdomain)."""
    out = []
    for layer in basemaps:
        parts = urlsplit(layer["url"].replace("{s}", "SUBDOMAIN"))
        labels = (parts.hostname or "").split(".")
        host = ".".join("*" if "subdomain" in label else label for label in labels)  # CSP: *.example.org
        if parts.scheme in ("http", "https") and host:
            out.append(f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else ""))
    return sorted(set(out))


def content_security_policy(nonce: str, settings: Settings) -> str:
    """Scripts and styles only from the app (inline ones only with this response's nonce), data only from the
    app, images also from the base map's tile servers; no plugins, no framing by other sites."""
    images = " ".join(["'self'", "data:", "blob:", *image_sources(settings.basemaps())])
    return (f"default-src 'self'; script-src 'self' 'nonce-{nonce}'; style-src 'self' 'nonce-{nonce}'; "
            f"img-src {images}; connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
            "form-action 'self'; frame-ancestors 'self'")


def _page(page: str, settings: Settings, lang: str | None, user: str | None, role: str | None) -> HTMLResponse:
    nonce = secrets.token_urlsafe(16)
    config = MapConfig(language=lang or settings.language, basemaps=settings.basemaps(), tile_crs=settings.tile_crs,
                       user=(user or "").strip(), role=(role or "").strip(), poll_s=settings.poll_s)
    return HTMLResponse(render_page(page, config, nonce),
                        headers={"Content-Security-Policy": content_security_policy(nonce, settings),
                                 "Cache-Control": "no-store"})


@router.get("/", response_class=HTMLResponse)
def overview(settings: SettingsDep, lang: Literal["zh", "en"] | None = None,
             x_user: Annotated[str | None, Header()] = None, x_role: Annotated[str | None, Header()] = None):
    """The overview map: drill down the hierarchy, see who is responsible, the cases and the measures."""
    return _page("overview", settings, lang, x_user, x_role)


@router.get("/dispatch", response_class=HTMLResponse)
def dispatch(settings: SettingsDep, lang: Literal["zh", "en"] | None = None,
             x_user: Annotated[str | None, Header()] = None, x_role: Annotated[str | None, Header()] = None):
    """The dispatcher console: the queue of new and overdue cases beside the map."""
    return _page("dispatch", settings, lang, x_user, x_role or "dispatcher")
