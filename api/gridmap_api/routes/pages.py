"""HTML pages: the overview map and the dispatcher console, built by `web`, sent with a strict CSP."""

from __future__ import annotations

import secrets
from typing import Annotated, Literal
from urllib.parse import quote, urlsplit

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from gridmap.access import policy
from gridmap.access.policy import Principal
from gridmap.errors import GridmapError
from gridmap_api.auth import SESSION_COOKIE, csrf_token, get_principal
from gridmap_api.deps import SettingsDep
from gridmap_api.settings import Settings
from gridmap_web.pages import MapConfig, render_page

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
    return (
        f"default-src 'self'; script-src 'self' 'nonce-{nonce}'; style-src 'self' 'nonce-{nonce}'; "
        f"img-src {images}; connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'self'"
    )


def page_user(permission: str):
    """The dependency of a page: the signed-in account (None when nobody is signed in, or the session ended: the
    page then sends the browser to the sign-in page); a role without `permission` gets 403."""
    if permission not in policy.RULES:
        raise KeyError(permission)

    async def dependency(request: Request) -> Principal | None:
        try:
            who = await get_principal(request)
        except GridmapError:
            return None
        if who.anonymous:
            return None
        policy.require(who, permission)
        return who

    dependency.permission = permission  # type: ignore[attr-defined]  # read by the policy test
    return Depends(dependency)


FIRST_VIEW_PAGES = ("overview", "dispatch")  # the pages that open on the districts the account sees


def first_view(request: Request, who: Principal) -> list[float] | None:
    """The box of the districts `who` sees, the view the overview and the console open on, from the outlines the
    map serves (`GET /api/v1/map/areas?level=district` fitted the same view a round trip later); None while no
    boundaries are loaded (the page then asks for the districts' outlines first)."""
    state = request.app.state
    index = state.registry.current
    if index is None:
        return None
    try:
        with state.sessionmaker() as session:
            shapes = state.area_shapes.get(session, state.db_key, index.generation_id)
        box = shapes.extent("district", None if who.everywhere else (lambda code: policy.sees_area(who, code)))
    except (sa.exc.OperationalError, sa.exc.ProgrammingError):
        return None
    return list(box) if box else None


def _page(page: str, request: Request, settings: Settings, lang: str | None, who: Principal | None):
    if who is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(
            f"/login?next={quote(target, safe='')}" + (f"&lang={lang}" if lang else ""), status_code=303
        )
    nonce = secrets.token_urlsafe(16)
    cookie = request.cookies.get(SESSION_COOKIE)
    config = MapConfig(
        language=lang or settings.language,
        basemaps=settings.basemaps(),
        tile_crs=settings.tile_crs,
        user=who.name,
        role=who.role,
        role_zh=policy.ROLES_ZH.get(who.role, who.role),
        csrf=csrf_token(cookie) if cookie and who.via == "session" else "",
        poll_s=settings.poll_s,
        max_geojson=settings.map_max_geojson,
        areas=[s.code for s in who.scopes],
        everywhere=who.everywhere,
        measures=policy.holds(who, "measures.read"),
        bounds=first_view(request, who) if page in FIRST_VIEW_PAGES else None,
    )
    return HTMLResponse(
        render_page(page, config, nonce),
        headers={"Content-Security-Policy": content_security_policy(nonce, settings), "Cache-Control": "no-store"},
    )


@router.get("/", response_class=HTMLResponse)
def overview(
    request: Request,
    settings: SettingsDep,
    who: Annotated[Principal | None, page_user("map.read")],
    lang: Literal["zh", "en"] | None = None,
):
    """The overview map: drill down the hierarchy, see who is responsible, the cases and the measures (signed-in
    staff; each sees its own areas)."""
    return _page("overview", request, settings, lang, who)


@router.get("/dispatch", response_class=HTMLResponse)
def dispatch(
    request: Request,
    settings: SettingsDep,
    who: Annotated[Principal | None, page_user("case.read")],
    lang: Literal["zh", "en"] | None = None,
):
    """The dispatcher console: the queue of new and overdue cases beside the map (accounts that act on cases,
    each on its own areas)."""
    return _page("dispatch", request, settings, lang, who)


@router.get("/plan", response_class=HTMLResponse)
def plan(
    request: Request,
    settings: SettingsDep,
    who: Annotated[Principal | None, page_user("generation.read")],
    lang: Literal["zh", "en"] | None = None,
):
    """The planner's workspace: a draft's grids under a sub-district or community, coloured by their deviation from
    the household mean, with the balance table, drawing and editing tools, the check's problems, the diff against
    the active boundaries, submitting and approving (planners edit, approvers approve; admins read)."""
    return _page("plan", request, settings, lang, who)


@router.get("/m", response_class=HTMLResponse)
def worker_phone(
    request: Request,
    settings: SettingsDep,
    who: Annotated[Principal | None, page_user("case.act")],
    lang: Literal["zh", "en"] | None = None,
):
    """The grid worker's page for the phone (网格员): my cases by deadline colour, accept, navigate, handle with
    photos before and after, request an extension, bounce with a reason; patrol reports (巡查上报, 即报即处) with
    the phone's position and photos; notifications (accounts that act on cases)."""
    return _page("m", request, settings, lang, who)
