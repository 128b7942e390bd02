"""From domain errors to HTTP: one table from an error's kind to a status, the header and link wording the library
leaves out, and handlers that answer RFC 9457 application/problem+json in the caller's language
(`Accept-Language`: Chinese by default, English when preferred; see api/gridmap_api/i18n.py). `title` and `detail` are
localised; `code`, `kind`, `field` and `errors[].field` / `errors[].type` stay machine-readable.

gridmap names no protocol: its errors carry a kind, a field, English and Chinese text, and perhaps a resource to
`see`. Here a field the API takes from a header is named by the header (`idempotency_key` → `Idempotency-Key`), and
a resource to see becomes its address (`categories` → `GET /api/v1/categories`)."""

from __future__ import annotations

from typing import Any, cast

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from gridmap import errors
from gridmap_api import i18n
from gridmap_api.links import API
from gridmap_api.ratelimit import RateLimited

STATUS: dict[str, int] = {  # an error's kind → its status (a kind not here: the nearest base class's)
    "not_found": 404,
    "precondition_failed": 412,
    "unauthenticated": 401,
    "forbidden": 403,
    "version_required": 428,
    "stale_version": 409,
    "conflict": 409,
    "database_not_ready": 503,
    "unavailable": 503,
    "too_large": 413,
    "invalid_input": 422,
    "error": 400,
}
PROBLEM = "application/problem+json"


class PreconditionFailed(errors.StaleVersion):
    """A stale version named by the request's `If-Match` header (a stale one in the body is a 409 `StaleVersion`)."""

    kind = "precondition_failed"


# Domain fields the API takes from a header: (header, how the English message begins, how the Chinese one begins)
HEADER_FIELDS: dict[str, tuple[str, str, str]] = {
    "idempotency_key": ("Idempotency-Key", "idempotency key", "幂等键"),
}
# Hints a kind of error gets on a field (English, Chinese), where the API offers a header beside the body's field
HINTS: dict[tuple[str, str], tuple[str, str]] = {
    ("version_required", "version"): ("If-Match header or `version`", "If-Match 请求头或 version 字段"),
}
SEE: dict[str, str] = {  # resources an error may point to → where the API serves them
    "categories": f"GET {API}/categories",
}


def _aside(text: str, en: str, zh: str) -> str:
    """`text` with a parenthesised remark before its final full stop (Chinese) or at its end (English)."""
    if text.endswith("。"):
        return f"{text[:-1]}（{zh}）。"
    return f"{text} ({en})"


def in_api_terms(exc: errors.GridmapError) -> tuple[str | None, str, str | None]:
    """The error's (field, English message, Chinese message) as the API words them: header fields named by their
    header, the header a kind of error could have used, and the address of a resource to see."""
    field, message, zh = exc.field, exc.message, exc.zh
    if field in HEADER_FIELDS:
        header, en_word, zh_word = HEADER_FIELDS[field]
        field = header
        if message.startswith(en_word):
            message = header + message[len(en_word) :]
        if zh and zh.startswith(zh_word):
            zh = f"{zh_word}（{header}）{zh[len(zh_word) :]}"
    hint = HINTS.get((exc.kind, exc.field or ""))
    if hint:
        message, zh = _aside(message, *hint), (_aside(zh, *hint) if zh else zh)
    if exc.see in SEE:
        where = SEE[exc.see]
        message, zh = _aside(message, f"see {where}", f"见 {where}"), (_aside(zh, "", f"见 {where}") if zh else zh)
    return field, message, zh


def problem(status: int, title: str, detail: str, **extra) -> JSONResponse:
    """A problem+json response (already in the caller's language; it varies by Accept-Language)."""
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers={"Vary": i18n.VARY})


def status_of(exc: errors.GridmapError) -> int:
    """The status of an error's kind (or of the nearest base class's kind the table has)."""
    for cls in type(exc).__mro__:
        kind = cls.__dict__.get("kind")
        if isinstance(kind, str) and kind in STATUS:
            return STATUS[kind]
    return STATUS["error"]  # pragma: no cover - GridmapError's kind is in the table


def domain_problem(
    request: Request, exc: errors.GridmapError, *, status: int | None = None, code: str | None = None
) -> JSONResponse:
    """The problem for a domain error in the request's language (`status` / `code` override the table's)."""
    lang = i18n.of_request(request)
    status = status or status_of(exc)
    field, message, zh = in_api_terms(exc)
    extra = {"field": field} if field else {}
    worded = exc
    if (field, message, zh) != (exc.field, exc.message, exc.zh):  # a copy in the API's words, of the same kind
        worded = type(exc).__new__(type(exc))
        worded.__dict__.update(exc.__dict__, field=field, message=message, zh=zh)
    response = problem(
        status,
        i18n.title(status, lang),
        i18n.domain_detail(worded, lang),
        code=code or type(exc).__name__,
        kind=exc.kind,
        **extra,
    )
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="gridmap"'
    return response


async def _domain(request: Request, exc: errors.GridmapError) -> JSONResponse:
    return domain_problem(request, exc)


def _field(loc: tuple) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
    lang = i18n.of_request(request)
    errs = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errs):
        first = next(e for e in errs if e.get("type") == "json_invalid")
        where = str(first.get("ctx", {}).get("error", ""))
        pos = next((p for p in reversed(first.get("loc", ())) if isinstance(p, int)), None)
        at = f"（第 {pos + 1} 个字符处）" if pos is not None else ""  # the parser's own words are English
        detail = (
            f"请求体不是有效的 JSON{at}。" if lang == i18n.ZH else f"body: the request body is not valid JSON ({where})"
        )
        return problem(400, i18n.title("malformed_json", lang), detail, code="malformed_json", field="body")
    items = []
    for e in errs:
        field = _field(e.get("loc", ()))
        items.append({"field": field, "message": i18n.validation_message(e, field, lang), "type": e.get("type")})
    if lang == i18n.ZH:
        detail = "；".join(i["message"].rstrip("。") for i in items) + "。"
    else:
        detail = "; ".join(f"{i['field']}: {i['message']}" for i in items)
    return problem(422, i18n.title(422, lang), detail, code="validation_error", field=items[0]["field"], errors=items)


BODY_UNREADABLE = "There was an error parsing the body"  # FastAPI's words for a body its parser gave up on


async def _http(request: Request, exc: HTTPException) -> JSONResponse:
    lang = i18n.of_request(request)
    if exc.status_code == 400 and exc.detail == BODY_UNREADABLE:  # e.g. JSON nested too deeply to parse
        detail = (
            "请求体无法读取（JSON 嵌套过深，或与声明的内容类型不符）；请按接口文档提供请求体。"
            if lang == i18n.ZH
            else "body: the request body could not be read (JSON nested too deeply, or not in the declared "
            "Content-Type); accepted: a body as the operation documents it"
        )
        return problem(400, i18n.title("malformed_body", lang), detail, code="malformed_body", field="body")
    status = exc.status_code
    said = str(exc.detail)
    if lang == i18n.ZH:
        detail = said if i18n.has_cjk(said) else i18n.http_detail(status, lang)
    else:
        generic = said in ("", "Not Found", "Method Not Allowed") or said == i18n.TITLES.get(status, ("", ""))[1]
        detail = i18n.http_detail(status, lang) if generic else said
    response = problem(status, i18n.title(status, lang), detail, code=f"http_{status}")
    for name, value in (exc.headers or {}).items():
        response.headers[name] = value
    return response


async def _rate_limited(request: Request, exc: RateLimited) -> JSONResponse:
    lang = i18n.of_request(request)
    detail = (
        f"请求过于频繁，请 {exc.retry_after} 秒后再试。"
        if lang == i18n.ZH
        else f"too many requests; retry after {exc.retry_after} s"
    )
    response = problem(429, i18n.title(429, lang), detail, code="rate_limited", retry_after=exc.retry_after)
    response.headers["Retry-After"] = str(exc.retry_after)
    return response


def register(app: FastAPI) -> None:
    """Install the handlers on an app."""
    # Starlette types a handler as taking any Exception; each of these is registered for its own class only
    app.add_exception_handler(errors.GridmapError, cast(Any, _domain))
    app.add_exception_handler(RequestValidationError, cast(Any, _validation))
    app.add_exception_handler(HTTPException, cast(Any, _http))
    app.add_exception_handler(RateLimited, cast(Any, _rate_limited))
