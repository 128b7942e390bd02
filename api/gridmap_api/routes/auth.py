"""Sign-in: bearer tokens for API clients (OAuth2 password form), the sign-in page and session cookie for the pages,
signing out and revoking; who am I."""

from __future__ import annotations

import datetime as dt
import html
import secrets
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.security import OAuth2PasswordRequestForm

from gridmap.access import accounts, policy
from gridmap.access.policy import Principal
from gridmap.errors import Forbidden, Unauthenticated
from gridmap.store import audit
from gridmap_api import ratelimit
from gridmap_api.auth import SESSION_COOKIE, allow, client_address, csrf_token
from gridmap_api.deps import SessionDep, after_commit
from gridmap_api.routes.pages import content_security_policy
from gridmap_api.schemas.auth import MeOut, TokenOut
from gridmap_api.schemas.common import COMMON
from gridmap_web import asset_url

router = APIRouter(tags=["auth"], responses=COMMON)


def _sign_in(request: Request, username: str, password: str, kind: str, ttl_s: int, how: str) -> str:
    """Check the password (throttled per account and per address), record the attempt, and issue a token."""
    address = client_address(request)
    account_key = username[:64].lower()
    ratelimit.check("signin_account", account_key, request=request)
    ratelimit.check("signin_address", ratelimit.client_address(request), request=request)
    try:
        with request.app.state.sessionmaker() as session, session.begin():
            account = accounts.authenticate(session, username, password)
            token = accounts.issue_token(session, account, kind, dt.timedelta(seconds=ttl_s), address)
            accounts.record_signin(session, username, True, address, how, account.id)
    except Unauthenticated:
        with request.app.state.sessionmaker() as session, session.begin():
            accounts.record_signin(session, username, False, address, how)
        raise
    ratelimit.reset("signin_account", account_key, request=request)  # only failures add up for an account
    return token


@router.post("/api/v1/auth/token", response_model=TokenOut)
def issue_token(
    request: Request, form: Annotated[OAuth2PasswordRequestForm, Depends()], who: Annotated[Principal, allow("public")]
) -> TokenOut:
    """Sign in with a username and password (OAuth2 password form) for a short-lived bearer token
    (`expires_in` seconds). Wrong credentials are a 401 saying nothing about whether the account exists;
    repeated failures are throttled (429) per account and per address."""
    ttl = request.app.state.settings.token_ttl_s
    token = _sign_in(request, form.username, form.password, "access", ttl, "token")
    return TokenOut(access_token=token, expires_in=ttl)


@router.post("/api/v1/auth/revoke", status_code=204)
def revoke(request: Request, session: SessionDep, who: Annotated[Principal, allow("signed_in")]) -> Response:
    """End the session or bearer token this request was made with."""
    authorization = request.headers.get("authorization") or ""
    token = (
        authorization.partition(" ")[2].strip()
        if authorization.lower().startswith("bearer ")
        else request.cookies.get(SESSION_COOKIE)
    )
    if token:
        accounts.revoke_token(session, token)
        audit.record(session, "signout", f"account:{who.name}")
        after_commit(session, request.app.state.principals.clear)
    response = Response(status_code=204)
    if not authorization:
        response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/api/v1/auth/me", response_model=MeOut)
def me(who: Annotated[Principal, allow("signed_in")]) -> MeOut:
    """Who the credentials of this request stand for, and where it may act."""
    return MeOut(
        username=who.name,
        role=who.role,
        role_zh=policy.ROLES_ZH.get(who.role, who.role),
        areas=[s.code for s in who.scopes],
        everywhere=who.everywhere,
        department=who.department,
        staff_id=who.staff_id,
        via=who.via,
    )


# -- the sign-in page ----------------------------------------------------------------------------------------------

TEXT = {
    "zh": {
        "title": "网格化管理 · 登录",
        "heading": "网格化管理平台",
        "username": "用户名",
        "password": "密码",
        "submit": "登录",
        "failed": "用户名或密码错误",
        "throttled": "尝试次数过多，请稍后再试",
        "hint": "请使用管理员为您开设的账号登录。",
        "other": "English",
    },
    "en": {
        "title": "Grid governance · Sign in",
        "heading": "Grid governance",
        "username": "Username",
        "password": "Password",
        "submit": "Sign in",
        "failed": "Wrong username or password",
        "throttled": "Too many attempts; try again later",
        "hint": "Sign in with the account your administrator made for you.",
        "other": "中文",
    },
}
PAGE = """<!doctype html>
<html lang="{lang_attr}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title><link rel="icon" href="{favicon}" type="image/svg+xml">
<link rel="stylesheet" href="{stylesheet}"></head>
<body><main class="gm-login">
<h1>{heading}</h1>
<form method="post" action="/login" autocomplete="on">
<input type="hidden" name="next" value="{next}"><input type="hidden" name="lang" value="{lang}">
<label for="username">{username}</label>
<input id="username" name="username" autocomplete="username" required maxlength="64" autofocus value="{user}">
<label for="password">{password}</label>
<input id="password" name="password" type="password" autocomplete="current-password" required maxlength="256">
<p class="gm-login-error" role="alert">{error}</p>
<button type="submit">{submit}</button>
</form>
<p class="gm-login-hint">{hint}</p>
<p><a href="/login?lang={other_lang}&amp;next={next_q}">{other}</a></p>
</main></body></html>"""


def safe_next(value: str | None) -> str:
    """Where to go after signing in: a path on this site only (no other host, no scheme)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value or len(value) > 500:
        return "/"
    return value


def login_page(
    request: Request, lang: str, next_path: str, error: str = "", user: str = "", status: int = 200
) -> HTMLResponse:
    lang = lang if lang in TEXT else request.app.state.settings.language
    text = TEXT[lang]
    nonce = secrets.token_urlsafe(16)
    body = PAGE.format(
        lang_attr="zh-CN" if lang == "zh" else "en",
        lang=lang,
        next=html.escape(next_path),
        next_q=quote(next_path, safe=""),
        error=html.escape(error),
        user=html.escape(user[:64]),
        other_lang="en" if lang == "zh" else "zh",
        favicon=asset_url("/static/favicon.svg"),
        stylesheet=asset_url("/static/login.css"),
        **{k: html.escape(v) for k, v in text.items()},
    )
    return HTMLResponse(
        body,
        status_code=status,
        headers={
            "Content-Security-Policy": content_security_policy(nonce, request.app.state.settings),
            "Cache-Control": "no-store",
        },
    )


@router.get("/login", response_class=HTMLResponse, include_in_schema=False)
def login_form(
    request: Request, who: Annotated[Principal, allow("public")], lang: str | None = None, next: str | None = None
):
    """The sign-in page (Chinese by default)."""
    return login_page(request, lang or request.app.state.settings.language, safe_next(next))


@router.post("/login", include_in_schema=False)
def login_submit(
    request: Request,
    who: Annotated[Principal, allow("public")],
    username: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=256)],
    next: Annotated[str, Form(max_length=500)] = "/",
    lang: Annotated[str, Form(max_length=2)] = "zh",
):
    """Check the password, set the session cookie (HttpOnly, SameSite=Lax, Secure) and go on to `next`."""
    settings = request.app.state.settings
    target = safe_next(next)
    try:
        token = _sign_in(request, username, password, "session", settings.session_ttl_s, "page")
    except Unauthenticated:
        return login_page(request, lang, target, TEXT.get(lang, TEXT["zh"])["failed"], username, status=401)
    except ratelimit.RateLimited as exc:
        page = login_page(request, lang, target, TEXT.get(lang, TEXT["zh"])["throttled"], username, status=429)
        page.headers["Retry-After"] = str(exc.retry_after)
        return page
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=settings.session_ttl_s,
        httponly=True,
        samesite="lax",
        secure=settings.cookie_secure,
        path="/",
    )
    return response


@router.post("/logout", include_in_schema=False)
def logout(
    request: Request,
    session: SessionDep,
    who: Annotated[Principal, allow("public")],
    csrf: Annotated[str, Form(max_length=100)] = "",
):
    """Sign out of the pages: the session ends on the server and the cookie is removed."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        if not secrets.compare_digest(csrf, csrf_token(cookie)):
            raise Forbidden(
                "csrf: missing or wrong CSRF token", field="csrf", zh="缺少或错误的 CSRF 令牌，请刷新页面。"
            )
        accounts.revoke_token(session, cookie)
        audit.record(session, "signout", "session")
        after_commit(session, request.app.state.principals.clear)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
