"""The dispatcher's desk: queues (待处理, 已派遣, 待核查, 退单, 待审批, 超期) and batch steps. Urging (催办/督办) and
location corrections (更正位置) are steps of the loop (POST /api/v1/cases/{id}/actions/urge|supervise|relocate)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request

from gridmap.access import policy
from gridmap.access.policy import Principal
from gridmap.cases import queries, workflow
from gridmap.errors import GridmapError, InvalidInput, NotFound
from gridmap_api import i18n
from gridmap_api.auth import actor_of, allow
from gridmap_api.deps import IndexDep, SessionDep
from gridmap_api.links import case_links
from gridmap_api.routes.cases import CodeList, CountParam, CursorParam, Hours, OffsetParam, Sort, _visible, order_of
from gridmap_api.schemas.cases import CasePage
from gridmap_api.schemas.common import COMMON, problems
from gridmap_api.schemas.dispatch import (
    AddressMatchOut,
    BatchError,
    CaseBatchIn,
    CaseBatchOut,
    CaseBatchResult,
    QueueCounts,
)

router = APIRouter(prefix="/api/v1", tags=["dispatch"], responses=COMMON)


@router.get("/queues")
def queue_counts(
    session: SessionDep,
    who: Annotated[Principal, allow("case.read")],
    area: Annotated[str | None, Query(max_length=24)] = None,
) -> QueueCounts:
    """How many cases each queue of the desk holds, in `area` (any level) and among the cases the caller may
    see: 待处理 `pending` (reported, or filed and never bounced), 已派遣 `dispatched` (dispatched, accepted,
    rework), 待核查 `verify` (handled), 退单 `bounced` (back to filed by a bounce), 待审批 `approvals` (an extension
    or suspension request pending), 超期 `overdue` (the clock past the deadline). One grouped query."""
    if area:
        policy.check_area(who, area)
    return QueueCounts(area=area, items=queries.queue_counts(session, area=area, who=who))


QUEUE_ORDER = {
    "pending": ("reported_at", "asc"),
    "dispatched": ("deadline", "asc"),
    "verify": ("updated_at", "asc"),
    "bounced": ("updated_at", "desc"),
    "approvals": ("updated_at", "asc"),
    "overdue": ("overdue_by", "desc"),
}


@router.get("/queues/{name}", responses=problems(404))
def queue_items(
    name: Annotated[str, Path(max_length=16)],
    session: SessionDep,
    request: Request,
    who: Annotated[Principal, allow("case.read")],
    area: Annotated[str | None, Query(max_length=24)] = None,
    category: CodeList = None,
    source: CodeList = None,
    holder: Annotated[str | None, Query(max_length=32)] = None,
    min_age_h: Hours = None,
    max_age_h: Hours = None,
    sort: Sort | None = None,
    order: Literal["asc", "desc", "newest", "oldest"] | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: CursorParam = None,
    count: CountParam = None,
    offset: OffsetParam = 0,
) -> CasePage:
    """One queue's cases, filtered (area, category codes and sources comma-separated, holder: staff id, `me` or
    department code, age in hours), sorted and paged by cursor as the case list is (`next_cursor`; the total on
    the first page or with `count=true`; `offset` deprecated) — by SQL however many there are. Each
    item carries its holder, deadline, time left or overdue by, last bounce and pending request. Default order:
    pending oldest first, dispatched by nearest deadline, overdue most overdue first."""
    if name not in queries.QUEUES:
        raise NotFound(
            f"queue: no queue is named {name!r}; queues: {', '.join(queries.QUEUES)}",
            field="name",
            zh=f"队列：没有名为 {name!r} 的队列；可选：{'、'.join(queries.QUEUES)}",
        )
    if area:
        policy.check_area(who, area)
    default_sort, default_order = QUEUE_ORDER[name]
    chosen = sort or default_sort
    direction = (
        order_of(order, chosen) if order else (default_order if chosen == default_sort else order_of(None, chosen))
    )
    limit = min(limit, request.app.state.settings.max_page_size)
    f = queries.CaseFilter(
        area=area,
        queue=name,
        category=category,
        source=source,
        holder=holder,
        min_age_h=min_age_h,
        max_age_h=max_age_h,
        sort=chosen,
        order=direction,
    )
    page = queries.page_cases(session, f, limit=limit, offset=offset, cursor=cursor or None, count=count, who=who)
    calendar = request.app.state.calendar()
    items = [case_links(i) for i in queries.case_items(session, page.rows, who=who, calendar=calendar)]
    return CasePage(total=page.total, limit=limit, offset=offset, next_cursor=page.next_cursor, items=items)


def _error_code(exc: GridmapError) -> str:
    return {
        "StaleVersion": "stale_version",
        "PreconditionFailed": "stale_version",
        "NotFound": "not_found",
        "Forbidden": "forbidden",
        "Conflict": "conflict",
        "VersionRequired": "version_required",
    }.get(type(exc).__name__, "invalid" if isinstance(exc, GridmapError) else "error")


@router.post("/cases/batch/{action}")
def batch_action(
    action: Annotated[str, Path(max_length=32)],
    body: CaseBatchIn,
    session: SessionDep,
    request: Request,
    index: IndexDep,
    who: Annotated[Principal, allow("case.act")],
) -> CaseBatchOut:
    """One step on up to 200 cases (e.g. batch dispatch 批量派遣), each with the version seen, the same
    parameters for all. Every case is independent: one refused (stale version, wrong state, not visible) does
    not stop the others; each result says ok with the new state and version, or the error with its code and
    field. All successful steps are committed before the answer."""
    if action not in workflow.STEPS:
        raise NotFound(
            f"action: {action!r} is not a step; accepted: {', '.join(workflow.STEPS)}",
            field="action",
            zh=f"操作：{action!r} 不是流程步骤。",
        )
    calendar = request.app.state.calendar()
    options = request.app.state.settings.locate_options()
    params = body.model_dump(exclude={"version", "items"})
    actor = actor_of(who)
    lang = i18n.of_request(request)  # each refusal's detail in the caller's language, as a problem's would be
    results: list[CaseBatchResult] = []
    seen: set[int] = set()
    for item in body.items:
        if item.id in seen:
            results.append(
                CaseBatchResult(
                    id=item.id,
                    ok=False,
                    error=BatchError(
                        code="invalid",
                        field="items",
                        detail="同一批次中同一案件出现两次。"
                        if lang == i18n.ZH
                        else "the same case twice in one batch",
                    ),
                )
            )
            continue
        seen.add(item.id)
        savepoint = session.begin_nested()
        try:
            if not _visible(session, who, item.id):
                raise NotFound(f"case id: no case has id {item.id}", field="id", zh=f"没有编号为 {item.id} 的案件。")
            if body.into is not None and not _visible(session, who, body.into):
                raise NotFound(
                    f"into: no case has id {body.into}", field="into", zh=f"并入对象：没有编号为 {body.into} 的案件。"
                )
            case = workflow.act(
                session,
                item.id,
                action,
                actor,
                version=item.version,
                calendar=calendar,
                params=params,
                index=index,
                options=options,
            )
            savepoint.commit()
            results.append(
                CaseBatchResult(id=case.id, ok=True, state=case.state, version=case.version, number=case.number)
            )
        except GridmapError as exc:
            savepoint.rollback()
            results.append(
                CaseBatchResult(
                    id=item.id,
                    ok=False,
                    error=BatchError(code=_error_code(exc), field=exc.field, detail=i18n.domain_detail(exc, lang)),
                )
            )
    # every step that succeeded is committed before the answer (SessionDep)
    ok = sum(r.ok for r in results)
    return CaseBatchOut(action=action, ok=ok, failed=len(results) - ok, results=results)


@router.get("/address-matches")
def address_matches(
    session: SessionDep,
    index: IndexDep,
    who: Annotated[Principal, allow("search")],
    q: Annotated[str, Query(min_length=1, max_length=300)],
    near_lon: Annotated[float | None, Query(ge=-180, le=180, allow_inf_nan=False)] = None,
    near_lat: Annotated[float | None, Query(ge=-90, le=90, allow_inf_nan=False)] = None,
) -> AddressMatchOut:
    """An address text → the place it matched (`matched_place`, with its point, grid and distance from
    `near_lon`/`near_lat` — the case's pin, WGS84), the `confidence` (0–1) and the `alternatives` (each with its
    point, grid and confidence; similar names when nothing matched well). `needs_confirmation` says a person
    should confirm before the pin moves, and `confirm_because` why: not matched, confidence under 0.9, more
    than 2 km from the pin, or alternatives exist."""
    from gridmap.locating.address_match import match_address
    from gridmap.textcheck import clean_text

    if (near_lon is None) != (near_lat is None):
        missing = "near_lat" if near_lat is None else "near_lon"
        raise InvalidInput(
            f"{missing}: give both near_lon and near_lat, or neither",
            field=missing,
            zh="参考点：near_lon 与 near_lat 须同时给出",
        )
    text = clean_text(q, "q", 300)
    if text is None:  # (required: blank text is refused by clean_text itself)
        raise InvalidInput("q: an address text is required", field="q", zh="地址：必填。")
    near = (near_lon, near_lat) if near_lon is not None and near_lat is not None else None
    return AddressMatchOut(**match_address(session, index, text, near=near))
