"""Open311 GeoReport v2 at /open311/v2/: discovery, services, service definitions, requests; XML or JSON by the
path's suffix; errors as the spec's list of code and description (not problem+json)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Annotated
from urllib.parse import parse_qs
from xml.etree import ElementTree as ET

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from gridmap.access import accounts
from gridmap.access.policy import Principal
from gridmap.cases import attachments
from gridmap.cases import intake as cases
from gridmap.cases import open311 as o311
from gridmap.errors import GridmapError, NotFound
from gridmap.store.media import StorageUnavailable
from gridmap.store.tables import CaseEvent
from gridmap_api.auth import allow
from gridmap_api.errors import in_api_terms
from gridmap_api.ratelimit import open311_api_key, rate_limit
from gridmap_api.routes.attachments import media_store
from gridmap_api.schemas.open311 import (
    POST_BODY,
    Discovery,
    RequestCreated,
    Service,
    ServiceDefinition,
    ServiceRequest,
    open311_responses,
)

router = APIRouter(prefix="/open311/v2", tags=["open311"])
# Open311 is the public side: discovery, services and request views (personal data never shown) are open to all,
# and a POST carries its api_key in the body, as the spec says (checked by `_Keys`)
Public = Annotated[Principal, allow("public")]
FORMATS = {"xml": "text/xml; charset=utf-8", "json": "application/json; charset=utf-8"}
LIST_ITEMS = {
    "services": "service",
    "attributes": "attribute",
    "values": "value",
    "service_requests": "request",
    "errors": "error",
    "endpoints": "endpoint",
    "formats": "format",
}
CHANGESET = "2026-11-23T00:00:00Z"


def _element(parent: ET.Element, name: str, value) -> None:
    node = ET.SubElement(parent, name)
    if isinstance(value, dict):
        for key, item in value.items():
            _element(node, key, item)
    elif isinstance(value, list):
        for item in value:
            _element(node, LIST_ITEMS.get(name, "item"), item)
    elif isinstance(value, bool):
        node.text = "true" if value else "false"
    elif value is not None:
        node.text = str(value)


def render(fmt: str, root: str, data, status: int = 200) -> Response:
    """The spec's XML (root element, list items named after their container) or its JSON (the Spark mapping:
    lists as arrays, the root dropped)."""
    if fmt == "json":
        return Response(json.dumps(data, ensure_ascii=False), status_code=status, media_type=FORMATS["json"])
    if isinstance(data, list):
        top = ET.Element(root)
        for item in data:
            _element(top, LIST_ITEMS[root], item)
    else:
        top = ET.Element(root)
        for key, item in data.items():
            _element(top, key, item)
    body = ET.tostring(top, encoding="utf-8", xml_declaration=True)
    return Response(body, status_code=status, media_type=FORMATS["xml"])


STATUS = {o311.INVALID: 400, o311.NOT_FOUND: 404, o311.FORBIDDEN: 403, o311.UNAVAILABLE: 503}  # the spec's


def _errors(fmt: str, exc: o311.Open311Error) -> Response:
    """The spec's error list: the kind's status, and as the error's code the status unless it names its own."""
    status = STATUS[exc.kind]
    items = [{"code": exc.code if exc.code is not None else status, "description": exc.description}]
    return render(fmt if fmt in FORMATS else "xml", "errors", items, status=status)


def _refusal(exc: GridmapError) -> o311.Open311Error:
    """A domain refusal (bad point, outside the service area …) in the spec's terms, worded as the API words it."""
    kind = o311.NOT_FOUND if isinstance(exc, NotFound) else o311.INVALID
    return o311.Open311Error(kind, in_api_terms(exc)[1])


async def _answer(fmt: str, work: Callable[[], tuple[str, object, int]]) -> Response:
    """Run `work` in the thread pool and render its (root, data, status), or the spec's errors."""
    if fmt not in FORMATS:
        return _errors("xml", o311.Open311Error(o311.INVALID, f"format {fmt!r} is not supported; use .xml or .json"))
    try:
        root, data, status = await run_in_threadpool(work)
    except o311.Open311Error as exc:
        return _errors(fmt, exc)
    except GridmapError as exc:  # a domain refusal (bad point, outside the service area …) is a 400 here
        return _errors(fmt, _refusal(exc))
    return render(fmt, root, data, status)


class _Keys:
    """The api_keys an Open311 client may post with: the configured ones, and API keys with the `report` scope."""

    def __init__(self, session, configured: set[str]):
        self.session, self.configured = session, configured

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        if key in self.configured:
            return True
        principal = accounts.principal_for_api_key(self.session, key)
        return principal is not None and "report" in principal.key_scopes


def _query(request: Request) -> dict[str, list[str]]:
    return parse_qs(request.url.query, keep_blank_values=True)


@router.get("/discovery.{fmt}", response_model=Discovery, responses=open311_responses((400,)))
async def discovery(fmt: str, request: Request, who: Public) -> Response:
    base = str(request.url_for("open311_services", fmt="xml")).rsplit("/", 1)[0]
    return await _answer(fmt, lambda: ("discovery", o311.discovery(base, CHANGESET), 200))


async def _read(fmt: str, request: Request, root: str, read: Callable) -> Response:
    """A GET: check jurisdiction_id, then `read(session, query)` in a session of its own."""
    state = request.app.state

    def work():
        query = _query(request)
        o311.check_jurisdiction(o311.last_value(query, "jurisdiction_id"), state.settings.open311_jurisdiction)
        with state.sessionmaker() as session:
            return root, read(session, query), 200

    return await _answer(fmt, work)


@router.get("/services.{fmt}", name="open311_services", response_model=list[Service], responses=open311_responses())
async def services(fmt: str, request: Request, who: Public) -> Response:
    return await _read(fmt, request, "services", lambda session, query: o311.services(session))


@router.get("/services/{service_code}.{fmt}", response_model=ServiceDefinition, responses=open311_responses())
async def service_definition(service_code: str, fmt: str, request: Request, who: Public) -> Response:
    return await _read(
        fmt, request, "service_definition", lambda session, query: o311.definition(session, service_code)
    )


@router.post(
    "/requests.{fmt}",
    response_model=list[RequestCreated],
    openapi_extra=POST_BODY,
    responses=open311_responses((400, 403, 404, 429, 503)),
    dependencies=[Depends(rate_limit("open311_post")), Depends(rate_limit("open311_key", key=open311_api_key))],
)
async def post_request(fmt: str, request: Request, who: Public) -> Response:
    """Create a service request (a case) from an application/x-www-form-urlencoded body; `api_key` required
    (as the spec puts it, in the body): one configured in GRIDMAP_OPEN311_API_KEYS or an API key with the `report`
    scope. An `Idempotency-Key` header makes retries safe, as on the native API."""
    state = request.app.state
    key = request.headers.get("idempotency-key")
    media = None  # a photo sent along (multipart/form-data with a `media` file)
    form: dict[str, list[str]] = {}
    if request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
        try:
            form, media = await _multipart(request)
        except o311.Open311Error as exc:
            return _errors(fmt, exc)
        raw = None
    else:
        raw = await request.body()

    def work():
        nonlocal form
        if raw is not None:
            try:
                form = parse_qs(raw.decode("utf-8"), keep_blank_values=True)
            except UnicodeDecodeError:
                raise o311.Open311Error(
                    o311.INVALID, "the body must be UTF-8 application/x-www-form-urlencoded"
                ) from None
        with state.sessionmaker() as session:

            def locate_address(text: str):
                from gridmap.locating.gazetteer import gazetteer_for

                match = gazetteer_for(session).match(text)
                return (match.place["lon"], match.place["lat"]) if match.place else None

            submission = o311.parse_submission(
                session,
                form,
                api_keys=_Keys(session, state.settings.open311_keys()),
                jurisdiction=state.settings.open311_jurisdiction,
                locate_address=locate_address,
            )
        prepared = None
        if media is not None:
            try:
                prepared = attachments.prepare(media, state.settings.media_limits())
            except GridmapError as exc:
                raise o311.Open311Error(o311.INVALID, f"media: {exc.message}") from None
        store = media_store(request)

        def attach(session, case) -> None:
            if submission.media_url:
                session.add(
                    CaseEvent(
                        case_id=case.id,
                        actor="open311",
                        action=o311.MEDIA_LINKED,
                        from_state=case.state,
                        to_state=case.state,
                        detail={"url": submission.media_url},
                    )
                )
            if prepared is not None:
                attachments.add(
                    session, store, case, prepared, "report", actor="open311", limits=state.settings.media_limits()
                )

        extra = {
            k: v for k, v in (("media_url", submission.media_url), ("media_sha256", prepared and prepared.sha256)) if v
        }
        index = state.registry.active()
        try:
            case, _ = cases.create_case_once(
                state.sessionmaker, index, submission.new, key, actor="open311", then=attach, extra=extra or None
            )
        except StorageUnavailable as exc:  # the photo could not be stored: nothing was filed
            raise o311.Open311Error(o311.UNAVAILABLE, f"media: {exc.message}") from None
        account = o311.last_value(form, "account_id") or None
        return (
            "service_requests",
            [{"service_request_id": case.number, "service_notice": o311.notice(case), "account_id": account}],
            200,
        )

    return await _answer(fmt, work)


def _views(request: Request, session, found: list) -> list[dict]:
    """The requests in the spec's fields; `media_url` is our copy of the first photo when the case has one (the
    image itself is served to callers who may see the case), else the address the client sent."""
    views = o311.requests_view(session, found)
    photos = attachments.first_photos(session, [c.id for c in found])
    for case, view in zip(found, views):
        if case.id in photos:
            view["media_url"] = str(request.url_for("get_attachment", attachment_id=str(photos[case.id])))
    return views


@router.get("/requests.{fmt}", response_model=list[ServiceRequest], responses=open311_responses())
async def get_requests(fmt: str, request: Request, who: Public) -> Response:
    return await _read(
        fmt,
        request,
        "service_requests",
        lambda session, query: _views(
            request, session, o311.find_requests(session, query, now=dt.datetime.now(dt.UTC))
        ),
    )


@router.get("/requests/{service_request_id}.{fmt}", response_model=list[ServiceRequest], responses=open311_responses())
async def get_request(service_request_id: str, fmt: str, request: Request, who: Public) -> Response:
    return await _read(
        fmt,
        request,
        "service_requests",
        lambda session, query: _views(request, session, [o311.get_request(session, service_request_id)]),
    )


MAX_FORM_FIELDS = 100


async def _multipart(request: Request) -> tuple[dict[str, list[str]], bytes | None]:
    """A multipart POST: its text fields as parse_qs gives them, and the `media` file's bytes (at most one file;
    over the photo size limit is refused before the rest is read into memory)."""
    from starlette.datastructures import UploadFile

    limit = request.app.state.settings.media_max_bytes
    try:
        parsed = await request.form(max_files=1, max_fields=MAX_FORM_FIELDS)
    except Exception as exc:  # noqa: BLE001 - the parser's refusals (too many parts, malformed) are the client's
        if getattr(exc, "status_code", None) == 413:
            raise
        raise o311.Open311Error(o311.INVALID, f"the multipart body could not be read ({str(exc)[:120]})") from None
    form: dict[str, list[str]] = {}
    media = None
    for name, value in parsed.multi_items():
        if isinstance(value, UploadFile):
            if name != "media":
                raise o311.Open311Error(o311.INVALID, f"{name[:40]!r}: the only file accepted is `media` (one photo)")
            if value.size is not None and value.size > limit:
                raise o311.Open311Error(
                    o311.INVALID, f"media: {value.size:,} bytes is over the {limit / 2**20:g} MB limit"
                )
            media = await value.read(limit + 1)
            if len(media) > limit:
                raise o311.Open311Error(o311.INVALID, f"media: over the {limit / 2**20:g} MB limit")
        else:
            form.setdefault(name, []).append(value)
    await parsed.close()
    return form, media


@router.api_route("/{anything:path}", methods=["GET", "POST"], include_in_schema=False)
async def unknown(anything: str, who: Public) -> Response:
    """Anything else under /open311/v2/ is a 404 in the spec's format (XML unless the path ends in .json)."""
    fmt = "json" if anything.endswith(".json") else "xml"
    return _errors(fmt, o311.Open311Error(o311.NOT_FOUND, f"/open311/v2/{anything} is not a GeoReport v2 resource"))
