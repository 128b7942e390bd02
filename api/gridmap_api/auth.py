"""Who is calling: one dependency, `get_principal`, turns the request's credentials into a `policy.Principal` (once
per request), and `allow(permission)` is how every route states its policy and receives the principal. Routes that
act on cases make it the workflow's actor with `actor_of`, and name it in histories with `label_of`.

Credentials, in this order:
1. a gateway's identity headers — only when the deployment sets `GRIDMAP_GATEWAY_SECRET` and the request carries
   it in `X-Gateway-Secret` (compared in constant time); otherwise X-User / X-Role / … are ignored entirely;
2. `Authorization: Bearer <token>` from `POST /api/v1/auth/token`;
3. `X-API-Key: <key>` (or `Authorization: ApiKey <key>`) for integrations;
4. the pages' session cookie; a write with it must also carry the page's `X-CSRF-Token` (or form field `csrf`).
A request with none of them is anonymous. A presented but invalid credential is a 401, never anonymity.

Resolved principals are remembered per token for at most `PRINCIPAL_TTL_S` seconds, so that a locate answered on
the event loop needs no database round trip; a revoked token, key or account, or a changed role or area, takes
effect at once in every server process (the `principals` topic of `gridmap.runtime` empties the cache before the
next request is answered).
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from gridmap.access import accounts, policy
from gridmap.access.policy import Principal
from gridmap.cases import workflow
from gridmap.errors import Forbidden, InvalidInput, Unauthenticated
from gridmap.runtime import PRINCIPAL_TTL_S, PrincipalCache  # noqa: F401 - the cache lives with the others
from gridmap.store import audit
from gridmap_api.params import MAX_ID

SESSION_COOKIE = "gridmap_session"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
COOKIELESS = ("/login", "/logout")  # they handle the session cookie themselves (a stale one must not lock one out)


def csrf_token(session_token: str) -> str:
    """The CSRF token of a session: derived from the session's secret cookie, so only its holder can know it."""
    return hashlib.sha256(f"gridmap-csrf:{session_token}".encode()).hexdigest()[:40]


def client_address(request: Request) -> str | None:
    from gridmap_api.ratelimit import client_address as address  # one rule for who the client is (trusted proxies)

    return address(request)


def _gateway(request: Request, secret: str) -> Principal | None:
    """The identity a trusted gateway asserts, or None when the request does not carry the gateway's secret."""
    presented = request.headers.get("x-gateway-secret")
    if not secret or presented is None:
        return None
    if not hmac.compare_digest(presented.encode(), secret.encode()):
        raise Unauthenticated(
            "X-Gateway-Secret: wrong gateway secret", field="X-Gateway-Secret", zh="网关凭据（X-Gateway-Secret）错误。"
        )
    user = (request.headers.get("x-user") or "").strip()
    role = (request.headers.get("x-role") or "").strip()
    if not user or len(user) > 64:
        raise InvalidInput(
            "X-User: the gateway must name the user (1–64 characters)",
            field="X-User",
            zh="用户（X-User）：网关须注明用户（1–64 个字符）。",
        )
    if role not in policy.ROLES:
        raise InvalidInput(
            f"X-Role: {role[:20]!r} is not a role; accepted: {', '.join(policy.ROLES)}",
            field="X-Role",
            zh=f"角色（X-Role）：{role[:20]!r} 不是角色；可选：{', '.join(policy.ROLES)}。",
        )
    staff = request.headers.get("x-staff-id")
    if staff is not None and not (staff.isascii() and staff.isdigit() and len(staff) <= 10 and int(staff) <= MAX_ID):
        raise InvalidInput(
            f"X-Staff-Id: a staff id (digits, at most {MAX_ID})",
            field="X-Staff-Id",
            zh=f"人员编号（X-Staff-Id）：应为人员编号（数字，最大 {MAX_ID}）。",
        )
    areas = [a.strip() for a in (request.headers.get("x-areas") or "").split(",") if a.strip()]
    if any(not (a.isdigit() and len(a) <= 24) for a in areas) or len(areas) > 50:
        raise InvalidInput(
            "X-Areas: comma-separated area codes (digits), at most 50",
            field="X-Areas",
            zh="辖区（X-Areas）：应为以逗号分隔的区域编码（数字），最多 50 个。",
        )
    scopes = tuple(policy.Scope(a, accounts.level_of_code(a)) for a in areas)
    department = (request.headers.get("x-department") or "").strip()[:32] or None
    return Principal(
        key=user,
        name=user,
        role=role,
        scopes=scopes,
        everywhere=not areas,
        department=department,
        staff_id=int(staff) if staff else None,
        via="gateway",
    )


async def _resolve(request: Request, kind: str, secret: str) -> Principal | None:
    """The principal of a token or key: from the cache, or looked up once however many requests ask at the same
    moment (the others wait on the event loop, holding neither a thread nor a database connection)."""
    cache: PrincipalCache = request.app.state.principals
    key = (kind, accounts.digest(secret))
    hit, principal = cache.get(key)
    if hit:
        return principal
    async with cache.lock_for(key):
        hit, principal = cache.get(key)
        if hit:
            return principal
        return await run_in_threadpool(_lookup, request, kind, secret, key)


def _lookup(request: Request, kind: str, secret: str, key: tuple[str, str]) -> Principal | None:
    cache: PrincipalCache = request.app.state.principals
    with request.app.state.sessionmaker() as session:
        if kind == "api_key":
            principal = accounts.principal_for_api_key(session, secret)
        else:
            principal = accounts.principal_for_token(session, secret, kind)
            if principal is not None and principal.department and principal.department_id is None:
                principal = None
    cache.put(key, principal)
    return principal


async def get_principal(request: Request) -> Principal:
    """The caller, from the request's credentials (see the module docstring); anonymous without any."""
    cached = request.scope.get("gridmap.principal")
    if cached is not None:
        return cached
    settings = request.app.state.settings
    principal = _gateway(request, settings.gateway_secret)
    if principal is None:
        authorization = request.headers.get("authorization") or ""
        scheme, _, value = authorization.partition(" ")
        api_key = request.headers.get("x-api-key")
        if scheme.lower() == "apikey":
            api_key = value.strip()
        cookie = request.cookies.get(SESSION_COOKIE) if request.url.path not in COOKIELESS else None
        if scheme.lower() == "bearer":
            principal = await _resolve(request, "access", value.strip())
            if principal is None:
                raise Unauthenticated(
                    "Authorization: token invalid, expired or revoked",
                    field="Authorization",
                    zh="令牌无效或已过期，请重新登录。",
                )
        elif api_key is not None:
            principal = await _resolve(request, "api_key", api_key.strip())
            if principal is None:
                raise Unauthenticated(
                    "X-API-Key: unknown or revoked API key", field="X-API-Key", zh="接口密钥（X-API-Key）无效或已吊销。"
                )
        elif authorization:
            raise Unauthenticated(
                "Authorization: accepted schemes are Bearer and ApiKey",
                field="Authorization",
                zh="Authorization：只接受 Bearer 或 ApiKey 两种方式。",
            )
        elif cookie:
            principal = await _resolve(request, "session", cookie)
            if principal is None:
                raise Unauthenticated("session expired or signed out", field="session", zh="会话已过期，请重新登录。")
            if request.method not in SAFE_METHODS:
                sent = request.headers.get(CSRF_HEADER) or ""
                if not hmac.compare_digest(sent.encode(), csrf_token(cookie).encode()):
                    raise Forbidden(
                        "X-CSRF-Token: missing or wrong CSRF token",
                        field="X-CSRF-Token",
                        zh="缺少或错误的 CSRF 令牌，请刷新页面。",
                    )
        else:
            principal = policy.ANONYMOUS
    request.scope["gridmap.principal"] = principal
    # the writes this request makes are audited as this principal's
    audit.set_acting(audit.Acting(principal.label(), principal.account_id, client_address(request)))
    return principal


def actor_of(who: Principal) -> workflow.Actor:
    """The actor a principal is in the case loop (`gridmap.cases.workflow`): the one conversion every route that acts on
    cases uses."""
    return workflow.Actor(who.key, who.role, who.staff_id, who.department, name=who.name)


def label_of(who: Principal) -> str:
    """How a principal is named in a case's history: `resident` for an anonymous reporter."""
    return "resident" if who.anonymous else who.label()


def allow(permission: str):
    """The dependency a route states its policy with: the caller must hold `permission` (401 without credentials,
    403 with a role that lacks it); it yields the principal for the object-level checks."""
    if permission not in policy.RULES:
        raise KeyError(f"no policy rule {permission!r}")

    async def dependency(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
        policy.require(principal, permission)
        return principal

    dependency.permission = permission  # type: ignore[attr-defined]  # read by the policy matrix test
    dependency.__name__ = f"allow_{permission.replace('.', '_')}"
    return Depends(dependency)


Who = Annotated[Principal, Depends(get_principal)]
