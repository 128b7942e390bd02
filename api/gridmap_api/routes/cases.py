"""Cases: intake (located and assigned), listing with filters, one case with its history."""

from __future__ import annotations

import hmac
import logging
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response

from gridmap.access import policy
from gridmap.access.policy import Principal
from gridmap.boundaries.areas import check_bbox
from gridmap.cases import duplicates, paging, patrol, queries, workflow
from gridmap.cases import intake as cases
from gridmap.errors import InvalidInput, NotFound, Unauthenticated
from gridmap.store import audit
from gridmap.views import geojson as features
from gridmap_api.auth import actor_of, allow, get_principal, label_of
from gridmap_api.deps import IndexDep, SessionDep, commit_now
from gridmap_api.errors import PreconditionFailed
from gridmap_api.links import case_links
from gridmap_api.params import Moment, Offset, PathId
from gridmap_api.ratelimit import address_of_anonymous, rate_limit
from gridmap_api.schemas.cases import (
    ActionIn,
    CaseCreated,
    CaseDetail,
    CaseFeatureCollection,
    CaseIn,
    CaseItem,
    CasePage,
    Duplicates,
    PatrolIn,
    Rated,
    RatingIn,
    Receipt,
)
from gridmap_api.schemas.common import COMMON, problems

router = APIRouter(prefix="/api/v1", tags=["cases"], responses=COMMON)
log = logging.getLogger("gridmap.store.audit")  # who was shown personal data (never the data itself)


@router.post(
    "/cases",
    status_code=201,
    dependencies=[Depends(rate_limit("anonymous_intake", key=address_of_anonymous(get_principal)))],
)
def create_case(
    body: CaseIn,
    index: IndexDep,
    request: Request,
    response: Response,
    who: Annotated[Principal, allow("case.create")],
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> CaseCreated | Receipt:
    """File a case: located in its grid, filed and routed by the rules (events to the grid's worker, components
    to their owner department). With an `Idempotency-Key` a retried submission returns the first case (200,
    `Idempotent-Replayed: true`) instead of making a second one; the same key with a different body is a 422.

    Staff and integrations get the case with its history and possible duplicates; a resident's client
    (anonymous, where the deployment allows it, or with a `report` API key) gets a receipt: the case number,
    its state and the `reporter_token` to follow and rate it with — never other residents' cases."""
    resident = who.anonymous or (
        who.via == "api_key" and "report" in who.key_scopes and not policy.holds(who, "case.read")
    )
    if who.anonymous and not request.app.state.settings.anonymous_intake:
        raise Unauthenticated(
            "anonymous reports are off here: sign in or use an API key",
            field="credentials",
            zh="匿名上报未开放，请登录或使用 API 密钥。",
        )
    token = cases.reporter_token(idempotency_key)

    def remember_reporter(session, case) -> None:
        case.reporter_token_hash = cases.token_digest(token)

    actor = label_of(who)
    case, created = cases.create_case_once(
        request.app.state.sessionmaker,
        index,
        cases.NewCase(**body.model_dump()),
        idempotency_key,
        actor=actor,
        then=remember_reporter,
        options=request.app.state.settings.locate_options(),
    )
    if resident:
        _headers(request, response, case, created)
        return Receipt.model_validate(_receipt(case, token))
    return CaseCreated.model_validate({**_created(request, response, case, created, who), "reporter_token": token})


def _headers(request: Request, response: Response, case, created: bool) -> None:
    response.headers["Location"] = str(request.url_for("get_case", case_id=case.id))
    response.headers["ETag"] = f'"{case.version}"'
    if not created:
        response.status_code = 200
        response.headers["Idempotent-Replayed"] = "true"


def _receipt(case, token: str | None) -> dict:
    """What a resident is told: enough to follow the case and rate it, nothing about anyone else."""
    return {
        "id": case.id,
        "number": case.number,
        "state": case.state,
        "reported_at": queries.case_summary(case)["reported_at"],
        "grid_code": case.grid_code,
        "reporter_token": token,
    }


def _created(request: Request, response: Response, case, created: bool, who: Principal) -> dict:
    """The answer to an intake by staff: the case, its history, and the cases it may duplicate."""
    _headers(request, response, case, created)
    with request.app.state.sessionmaker() as session:
        similar = duplicates.suggest(session, case, request.app.state.settings.duplicate_window(), limit=5)
        similar = [s for s in similar if _visible(session, who, s.get("id"))]
        item = queries.case_items(session, [case], who=who)[0]
    return {**item, "history": queries.case_history(case), "possible_duplicates": similar}


def _visible(session, who: Principal, case_id) -> bool:
    try:
        queries.get_case_for(session, case_id, who)
    except Exception:  # noqa: BLE001 - NotFound: not one to show
        return False
    return True


@router.post("/patrol-reports", status_code=201, responses=problems(409))
def create_patrol_report(
    body: PatrolIn,
    index: IndexDep,
    request: Request,
    response: Response,
    who: Annotated[Principal, allow("patrol.create")],
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> CaseCreated:
    """A grid worker's patrol report (巡查上报): filed and routed like every case, recording who found it; a point
    outside the worker's grids is flagged `outside_own_grid`. With `handled_on_spot` (即报即处) the case is
    accepted and handled by the worker at once and waits for verification — only when it is theirs to handle.
    The worker is the signed-in account's staff record."""
    fields = body.model_dump(exclude={"handled_on_spot", "note"})
    case, created = patrol.report(
        request.app.state.sessionmaker,
        index,
        cases.NewCase(**fields),
        actor_of(who),
        calendar=request.app.state.calendar(),
        handled_on_spot=body.handled_on_spot,
        note=body.note,
        key=idempotency_key,
    )
    return CaseCreated.model_validate(_created(request, response, case, created, who))


@router.get("/cases/{case_id}/duplicates", response_model=Duplicates, responses=problems(404))
def case_duplicates(
    case_id: PathId,
    session: SessionDep,
    request: Request,
    who: Annotated[Principal, allow("case.read")],
    distance_m: Annotated[float | None, Query(ge=0, le=10_000)] = None,
    hours: Annotated[float | None, Query(ge=0, le=24 * 366)] = None,
) -> dict:
    """Cases that may report the same problem: same category, within `distance_m` metres and `hours` hours
    (defaults from the settings), not rejected, voided or merged; nearest first. Merge one with the `merge` step."""
    default = request.app.state.settings.duplicate_window()
    window = duplicates.Window(
        distance_m if distance_m is not None else default.distance_m, hours if hours is not None else default.hours
    )
    case = queries.get_case_for(session, case_id, who)
    items = [s for s in duplicates.suggest(session, case, window) if _visible(session, who, s.get("id"))]
    return {"case_id": case.id, "distance_m": window.distance_m, "hours": window.hours, "items": items}


def _if_match(value: str | None) -> int | None:
    if value is None:
        return None
    text = value.strip().removeprefix("W/").strip('"')
    if not (text.isdigit() and len(text) <= 18):
        raise InvalidInput(
            f'If-Match: {value[:40]!r} is not a case version such as "3"',
            field="If-Match",
            zh=f'版本条件（If-Match）：{value[:40]!r} 不是案件版本号，应如 "3"。',
        )
    return int(text)


@router.post("/cases/{case_id}/actions/{action}", responses=problems(404, 409, 412, 428))
def case_action(
    case_id: PathId,
    action: Annotated[str, Path(max_length=32)],
    body: ActionIn,
    session: SessionDep,
    request: Request,
    response: Response,
    who: Annotated[Principal, allow("case.act")],
    index: IndexDep,
    if_match: Annotated[str | None, Header()] = None,
) -> CaseItem:
    """Take one step of the loop: file, reject, void, dispatch, reassign, accept, bounce, whistle, report_in,
    handle, verify, send_back, rate, request_extension, request_suspension, approve, deny, resume, merge,
    relocate (更正位置: `lon`/`lat`/`crs` or `grid`, with a `reason`), urge (催办) and supervise (督办) (a `note`
    or `reason`; the holder's accounts are notified).

    Who acts is the signed-in account: its role decides the steps it may take, a worker acts on the cases
    assigned to it and a department on those given to it; a case outside the account's areas is not found. The
    version you saw goes in `If-Match` (a stale one is 412) or in the body's `version` (a stale one is 409); one
    of them is required (428)."""
    calendar = request.app.state.calendar()  # before this session takes a connection: loading it may need one
    queries.get_case_for(session, case_id, who)
    if body.into is not None and not _visible(session, who, body.into):
        raise InvalidInput(
            f"into: no case has id {body.into}", field="into", zh=f"并入对象：没有编号为 {body.into} 的案件。"
        )
    header_version = _if_match(if_match)
    version = header_version if header_version is not None else body.version
    params = body.model_dump(exclude={"version"})
    try:
        case = workflow.act(
            session,
            case_id,
            action,
            actor_of(who),
            version=version,
            calendar=calendar,
            params=params,
            index=index,
            options=request.app.state.settings.locate_options(),
        )
    except workflow.StaleVersion as exc:
        if header_version is not None:
            raise PreconditionFailed(exc.message, field="If-Match", zh=exc.zh) from None
        raise
    summary = queries.case_items(session, [case], who=who, calendar=calendar)[0]
    # commit here, in this thread, before answering: an acknowledged step is durable, and the write lock is not
    # held while the request waits for the event loop to run the session's teardown (50 dispatchers at once on
    # SQLite: the losers read the old version meanwhile and fail on the lock instead of answering 412)
    commit_now(session)
    response.headers["ETag"] = f'"{case.version}"'
    return CaseItem.model_validate(summary)


@router.post("/cases/{case_id}/rating", response_model=Rated, responses=problems(404, 409))
def rate_case(
    case_id: PathId,
    body: RatingIn,
    session: SessionDep,
    request: Request,
    who: Annotated[Principal, allow("case.rate")],
) -> dict:
    """The reporter rates the result (群众评价), once per closure: only with the `reporter_token` of the case
    (anyone else's token, or none, finds no case). A rating of 1 or 2 sends the case back to work."""
    case = cases.get_case(session, case_id)
    expected = case.reporter_token_hash
    if expected is None or not hmac.compare_digest(expected, cases.token_digest(body.reporter_token)):
        raise NotFound(f"case id: no case has id {case_id}", field="id", zh=f"没有编号为 {case_id} 的案件。")
    actor = workflow.Actor(f"reporter:{case.id}", "resident", name="reporter")
    case = workflow.act(
        session,
        case_id,
        "rate",
        actor,
        version=case.version,
        calendar=request.app.state.calendar(),
        params={"satisfaction": body.satisfaction, "note": body.note},
    )
    return {"id": case.id, "number": case.number, "state": case.state, "satisfaction": case.satisfaction}


CodeList = Annotated[str | None, Query(max_length=400)]
Hours = Annotated[float | None, Query(ge=0, le=queries.MAX_AGE_H, allow_inf_nan=False)]
Sort = Literal["reported_at", "deadline", "overdue_by", "updated_at"]
CursorParam = Annotated[
    str | None,
    Query(
        max_length=paging.MAX_CURSOR,
        description="the `next_cursor` of the page before (opaque); none for the first page",
    ),
]
CountParam = Annotated[
    bool | None,
    Query(description="count the total: by default only on a page without a cursor (the first page)"),
]
OffsetParam = Annotated[
    Offset,
    Query(deprecated=True, description="cases to skip (deprecated: page by `cursor`; not together with it)"),
]


def order_of(order: str | None, sort: str) -> str:
    """`asc`/`desc`, also from the older `newest`/`oldest`; by default the newest first (the most overdue or the
    nearest deadline first for those sorts)."""
    if order in ("asc", "oldest"):
        return "asc"
    if order in ("desc", "newest"):
        return "desc"
    return "asc" if sort == "deadline" else "desc"


@router.get("/cases", response_model=CasePage | CaseFeatureCollection)
def list_cases(
    session: SessionDep,
    request: Request,
    who: Annotated[Principal, allow("case.read")],
    area: Annotated[str | None, Query(max_length=24)] = None,
    state: Annotated[str | None, Query(max_length=200)] = None,
    since: Moment | None = None,
    until: Moment | None = None,
    bbox: str | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 50,
    cursor: CursorParam = None,
    count: CountParam = None,
    offset: OffsetParam = 0,
    order: Literal["newest", "oldest", "asc", "desc"] | None = None,
    sort: Sort = "reported_at",
    queue: Annotated[str | None, Query(max_length=16)] = None,
    category: CodeList = None,
    source: CodeList = None,
    holder: Annotated[str | None, Query(max_length=32)] = None,
    min_age_h: Hours = None,
    max_age_h: Hours = None,
    format: Literal["json", "geojson"] = "json",
):
    """Cases filtered by area code, state (comma-separated; also `open` and `overdue`), queue (pending,
    dispatched, verify, bounced, approvals, overdue), category codes and sources (comma-separated), holder (a
    staff id, `me`, or a department code), age in hours since reported and reporting period; sorted by
    `reported_at`, `deadline`, `overdue_by` or `updated_at`, `order` asc or desc (`newest`/`oldest` still
    work); only the cases the caller may see. Paged by cursor: each page's `next_cursor`, passed as `cursor`,
    gives the page after it (null on the last page), however deep, in the same order, each case once even while
    cases are added; the total is counted on the first page (no cursor) or with `count=true`. `offset` still
    works (deprecated: each offset page reads every case before it and counts them all again)."""
    limit = min(limit, request.app.state.settings.max_page_size if format == "json" else 10_000)
    if area:
        policy.check_area(who, area)
    f = queries.CaseFilter(
        area=area,
        state=state,
        queue=queue,
        category=category,
        source=source,
        holder=holder,
        min_age_h=min_age_h,
        max_age_h=max_age_h,
        since=since,
        until=until,
        bbox=check_bbox(bbox),
        sort=sort,
        order=order_of(order, sort),
    )
    page = queries.page_cases(session, f, limit=limit, offset=offset, cursor=cursor or None, count=count, who=who)
    if format == "geojson":
        return features.feature_collection(
            [features.case_feature(c) for c in page.rows],
            numberMatched=page.total,
            numberReturned=len(page.rows),
            next_cursor=page.next_cursor,
        )
    calendar = request.app.state.calendar()
    return CasePage(
        total=page.total,
        limit=limit,
        offset=offset,
        next_cursor=page.next_cursor,
        items=[case_links(i) for i in queries.case_items(session, page.rows, who=who, calendar=calendar)],
    )


@router.get("/cases/{case_id}", name="get_case", responses=problems(404))
def get_case(
    case_id: PathId,
    session: SessionDep,
    request: Request,
    response: Response,
    who: Annotated[Principal, allow("case.read")],
) -> CaseDetail:
    """One case with its full history (and the histories of the cases merged into it). The reporter's name and
    phone are masked unless the caller may see them (`gridmap.access.policy.may_see_contact`: dispatchers, admins and
    verifiers of the case's area, the worker or department the case is with); each such view is written to the
    audit log, committed before the answer. `routing` says where it went and why: the grid chain, branch,
    worker or department, the rule, and how the point was placed."""
    case = queries.get_case_for(session, case_id, who)
    contact = policy.may_see_contact(who, case, queries.department_code(session, case))
    item = queries.case_items(session, [case], who=who, calendar=request.app.state.calendar(), contact=contact)[0]
    found = cases.candidates_now(request.app.state.registry.active(), case, request.app.state.settings.locate_options())
    if found is not None:
        item["candidates"] = found
    out = case_links(
        {**item, "routing": queries.routing(session, case, who), "history": queries.full_history(session, case)}
    )
    if contact and (case.reporter_name or case.reporter_phone):
        audit.record(
            session, "reveal", f"case:{case.id}", {"number": case.number, "fields": ["reporter_name", "reporter_phone"]}
        )
        # the reveal is on record before the data leaves: SessionDep commits before the answer
        log.info("contact shown: case %s to %s", case.number, who.label())
    response.headers["ETag"] = f'"{case.version}"'
    response.headers["Cache-Control"] = "private, no-store" if contact else "no-cache"
    return CaseDetail.model_validate(out)
