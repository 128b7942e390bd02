"""Photos and files of a case (上报照片, 处置前/处置后, 巡查照片).

POST /api/v1/cases/{id}/attachments takes one image (multipart: `file`, `stage`, and for a resident the case's
`reporter_token`); the image is checked, cleaned and re-encoded by `gridmap.cases.attachments` (content sniffed, pixel
limit from the header, EXIF stripped with its GPS position offered back, thumbnail) and stored by the configured
media store (a directory, or an S3-compatible bucket). GET lists a case's attachments; the bytes of one, or of
its thumbnail, come from /api/v1/attachments/{id}[/thumbnail] — to the same callers as the case, with an ETag,
`Cache-Control: private` and `X-Content-Type-Options: nosniff`. Outside the caller's areas they are not found.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Header, Request, Response, UploadFile
from starlette.concurrency import run_in_threadpool

from gridmap.access import policy
from gridmap.access.policy import Principal
from gridmap.cases import attachments, queries, workflow
from gridmap.cases import intake as cases
from gridmap.errors import NotFound, Unauthenticated
from gridmap.store.media import StorageUnavailable
from gridmap_api import i18n
from gridmap_api.auth import allow, get_principal
from gridmap_api.errors import domain_problem, problem
from gridmap_api.params import PathId
from gridmap_api.ratelimit import address_of_anonymous, rate_limit
from gridmap_api.schemas.attachments import AttachmentList, AttachmentOut, UploadIn
from gridmap_api.schemas.common import COMMON, binary

router = APIRouter(prefix="/api/v1", tags=["attachments"], responses=COMMON)

IMAGE_TYPES = ("image/jpeg", "image/png")


def media_store(request: Request):
    """The app's media store, made once (an S3 client is not cheap)."""
    state = request.app.state
    store = getattr(state, "media_store", None)
    if store is None:
        store = state.settings.media_store()
        state.media_store = store
    return store


def _out(request: Request, row) -> AttachmentOut:
    facts = attachments.view(row)
    return AttachmentOut(
        **facts,
        url=str(request.app.url_path_for("get_attachment", attachment_id=str(row.id))),
        thumbnail_url=str(request.app.url_path_for("get_attachment_thumbnail", attachment_id=str(row.id))),
    )


def _is_resident(who: Principal) -> bool:
    """A resident's client: anonymous, or an API key that may report but not read cases."""
    return who.anonymous or (who.via == "api_key" and not policy.holds(who, "case.read"))


def _case_for(session, case_id: int, who: Principal, token: str | None):
    """The case, if the caller may add to it: staff who see it, or a resident holding its reporter token."""
    if _is_resident(who):
        case = workflow.load_case(session, case_id)
        expected = case.reporter_token_hash if case is not None else None
        if expected is None or token is None or not hmac.compare_digest(expected, cases.token_digest(token)):
            raise NotFound(
                f"case id: no case has id {case_id}", field="id", zh=f"案件编号：没有编号为 {case_id} 的案件。"
            )
        return case
    return queries.get_case_for(session, case_id, who)


def _check(case, stage: str, who: Principal) -> None:
    attachments.may_add(
        case, stage, role=who.role, staff_id=who.staff_id, department_id=who.department_id, reporter=_is_resident(who)
    )


def _read_upload(upload: UploadFile, limits: attachments.Limits) -> bytes:
    size = upload.size
    if size is not None:
        attachments.check_size(size, limits)
    upload.file.seek(0)
    data = upload.file.read(limits.max_bytes + 1)
    attachments.check_size(len(data), limits)
    return data


@router.post(
    "/cases/{case_id}/attachments",
    status_code=201,
    response_model=AttachmentOut,
    responses={
        413: {"description": "the file is over the size limit (field `file`)"},
        503: {"description": "the media store is unavailable: nothing was stored"},
        507: {"description": "the media store is full: nothing was stored"},
    },
    dependencies=[Depends(rate_limit("anonymous_intake", key=address_of_anonymous(get_principal)))],
)
def add_attachment(
    case_id: PathId,
    body: Annotated[UploadIn, Form(media_type="multipart/form-data")],
    request: Request,
    response: Response,
    who: Annotated[Principal, allow("attachment.add")],
):
    """Add one photo to a case. The file is judged by its content (JPEG, PNG or WebP; anything else, whatever its
    name — HTML, SVG … — is a 422 naming `file`), refused over the size limit (413) or the pixel limit (422, from
    the header, before decoding), re-encoded without EXIF or any other metadata (orientation applied first), and
    given a thumbnail. `gps` is the position the EXIF block held, offered as a location candidate. Who may add
    which stage: `report` the reporter (with `reporter_token`) and intake staff; `before` / `after` the worker or
    department the case is with, while it is worked on; `patrol` the worker whose patrol found it. At most
    `GRIDMAP_MEDIA_PER_CASE` (20) per case. Committed before the answer."""
    settings = request.app.state.settings
    if who.anonymous and not settings.anonymous_intake:
        raise Unauthenticated(
            "anonymous reports are off here: sign in or use an API key",
            field="credentials",
            zh="匿名上报未开放，请登录或使用 API 密钥。",
        )
    limits = settings.media_limits()
    store = media_store(request)
    sessionmaker = request.app.state.sessionmaker
    try:
        data = _read_upload(body.file, limits)
        with sessionmaker() as session:  # who may add what, before any work on the image
            _check(_case_for(session, case_id, who, body.reporter_token), body.stage, who)
        prepared = attachments.prepare(data, limits)
    except attachments.TooLarge as exc:
        return domain_problem(request, exc, status=413, code="payload_too_large")
    actor = "resident" if _is_resident(who) else who.label()
    try:
        with sessionmaker() as session, session.begin():
            case = _case_for(session, case_id, who, body.reporter_token)
            _check(case, body.stage, who)  # again: the case may have moved on meanwhile
            row = attachments.add(session, store, case, prepared, body.stage, actor=actor, limits=limits)
            out = _out(request, row)
            keys = (row.storage_key, row.thumbnail_key)
            try:
                session.commit()  # durable before the answer
            except BaseException:
                attachments.discard(store, *keys)
                raise
    except StorageUnavailable as exc:  # nothing stored, no row: 507 when the store is full, else 503
        return _storage_problem(request, exc)
    response.headers["Location"] = out.url
    return out


@router.get("/cases/{case_id}/attachments")
def list_attachments(
    case_id: PathId, request: Request, who: Annotated[Principal, allow("attachment.read")]
) -> AttachmentList:
    """The photos of a case, oldest first, with their thumbnails' URLs; a case outside the caller's areas is not
    found."""
    with request.app.state.sessionmaker() as session:
        queries.get_case_for(session, case_id, who)
        rows = attachments.for_case(session, case_id)
        items = [_out(request, r) for r in rows]
    return AttachmentList(
        case_id=case_id, total=len(items), limit=request.app.state.settings.media_per_case, items=items
    )


STORAGE_TITLES = {
    True: {"zh": "存储空间不足", "en": "Insufficient storage"},
    False: {"zh": "存储暂时不可用", "en": "Storage unavailable"},
}


def _storage_problem(request: Request, exc: StorageUnavailable) -> Response:
    lang = i18n.of_request(request)
    response = problem(
        507 if exc.full else 503,
        STORAGE_TITLES[exc.full]["zh" if lang == i18n.ZH else "en"],
        i18n.domain_detail(exc, lang),
        field=exc.field,
        code="insufficient_storage" if exc.full else "storage_unavailable",
    )
    if not exc.full:
        response.headers["Retry-After"] = "30"
    return response


def _visible_attachment(session, attachment_id: int, who: Principal):
    row = attachments.get(session, attachment_id)
    try:
        queries.get_case_for(session, row.case_id, who)
    except NotFound:
        raise NotFound(
            f"attachment id: no attachment has id {attachment_id}",
            field="id",
            zh=f"附件编号：没有编号为 {attachment_id} 的附件。",
        ) from None
    return row


async def _bytes(
    request: Request, attachment_id: int, who: Principal, thumbnail: bool, if_none_match: str | None
) -> Response:
    def work():
        with request.app.state.sessionmaker() as session:
            row = _visible_attachment(session, attachment_id, who)
            suffix = "-thumb" if thumbnail else ""
            extension = "png" if row.content_type == "image/png" and not thumbnail else "jpg"
            etag = f'"{row.sha256}{suffix}"'
            headers = {
                "ETag": etag,
                "Cache-Control": "private, max-age=86400",
                "X-Content-Type-Options": "nosniff",
                "Content-Security-Policy": "default-src 'none'; sandbox",
                "Content-Disposition": f'inline; filename="{row.id}{suffix}.{extension}"',
            }
            if if_none_match and etag in [t.strip().removeprefix("W/") for t in if_none_match.split(",")]:
                return Response(status_code=304, headers=headers)
            key, media = (row.thumbnail_key, "image/jpeg") if thumbnail else (row.storage_key, row.content_type)
        try:
            data = media_store(request).get(key)
        except StorageUnavailable as exc:
            return _storage_problem(request, exc)
        return Response(content=data, media_type=media, headers=headers)

    return await run_in_threadpool(work)


@router.get(
    "/attachments/{attachment_id}",
    name="get_attachment",
    response_class=Response,
    responses={**binary(*IMAGE_TYPES, description="the image"), 304: {"description": "unchanged"}},
)
async def get_attachment(
    attachment_id: PathId,
    request: Request,
    who: Annotated[Principal, allow("attachment.read")],
    if_none_match: Annotated[str | None, Header(max_length=1000)] = None,
) -> Response:
    """The image (JPEG or PNG, as stored: re-encoded, without metadata), to those who may see its case."""
    return await _bytes(request, attachment_id, who, False, if_none_match)


@router.get(
    "/attachments/{attachment_id}/thumbnail",
    name="get_attachment_thumbnail",
    response_class=Response,
    responses={**binary("image/jpeg", description="the thumbnail (JPEG, ≤ 320 px)"), 304: {"description": "unchanged"}},
)
async def get_attachment_thumbnail(
    attachment_id: PathId,
    request: Request,
    who: Annotated[Principal, allow("attachment.read")],
    if_none_match: Annotated[str | None, Header(max_length=1000)] = None,
) -> Response:
    """The thumbnail (JPEG, at most 320 px on its longer side)."""
    return await _bytes(request, attachment_id, who, True, if_none_match)
