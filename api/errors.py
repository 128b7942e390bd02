"""One table from domain errors to HTTP statuses, and handlers that answer RFC 9457 application/problem+json."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from api.ratelimit import RateLimited
from gridmap import errors, workflow

STATUS = [
    (errors.NotFound, 404, "Not found"),
    (workflow.PreconditionFailed, 412, "Precondition failed"),
    (errors.Unauthenticated, 401, "Unauthorized"),
    (errors.Forbidden, 403, "Forbidden"),
    (workflow.VersionRequired, 428, "Precondition required"),
    (errors.Conflict, 409, "Conflict"),
    (errors.DatabaseNotReady, 503, "Database not ready"),
    (errors.InvalidInput, 422, "Invalid input"),
    (errors.GridmapError, 400, "Bad request"),
]
PROBLEM = "application/problem+json"


def problem(status: int, title: str, detail: str, **extra) -> JSONResponse:
    """A problem+json response."""
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return JSONResponse(body, status_code=status, media_type=PROBLEM)


async def _domain(_: Request, exc: errors.GridmapError) -> JSONResponse:
    for cls, status, title in STATUS:
        if isinstance(exc, cls):
            extra = {"field": exc.field} if exc.field else {}
            response = problem(status, title, exc.message, code=type(exc).__name__, **extra)
            if status == 401:
                response.headers["WWW-Authenticate"] = 'Bearer realm="gridmap"'
            return response
    raise exc  # pragma: no cover - GridmapError is the last row


def _field(loc: tuple) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
    errs = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errs):
        first = next(e for e in errs if e.get("type") == "json_invalid")
        where = first.get("ctx", {}).get("error", "")
        return problem(400, "Malformed JSON", f"body: the request body is not valid JSON ({where})",
                       code="malformed_json", field="body")
    items = [{"field": _field(e.get("loc", ())), "message": e.get("msg", ""), "type": e.get("type")} for e in errs]
    detail = "; ".join(f"{i['field']}: {i['message']}" for i in items)
    return problem(422, "Invalid input", detail, code="validation_error", field=items[0]["field"], errors=items)


BODY_UNREADABLE = "There was an error parsing the body"  # FastAPI's words for a body its parser gave up on


async def _http(_: Request, exc: HTTPException) -> JSONResponse:
    if exc.status_code == 400 and exc.detail == BODY_UNREADABLE:  # e.g. JSON nested too deeply to parse
        return problem(400, "Malformed body", "body: the request body could not be read (JSON nested too deeply, "
                       "or not in the declared Content-Type); accepted: a body as the operation documents it",
                       code="malformed_body", field="body")
    return problem(exc.status_code, str(exc.detail), str(exc.detail))


async def _rate_limited(_: Request, exc: RateLimited) -> JSONResponse:
    response = problem(429, "Too many requests",
                       f"请求过于频繁，请 {exc.retry_after} 秒后再试 (too many requests; retry after {exc.retry_after} s)",
                       code="rate_limited", retry_after=exc.retry_after)
    response.headers["Retry-After"] = str(exc.retry_after)
    return response


def register(app: FastAPI) -> None:
    """Install the handlers on an app."""
    app.add_exception_handler(errors.GridmapError, _domain)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(HTTPException, _http)
    app.add_exception_handler(RateLimited, _rate_limited)
