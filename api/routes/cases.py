"""Cases: intake (located and assigned), listing with filters, one case with its history."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Annotated, Literal

from fastapi import APIRouter, Header, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from api.deps import IndexDep, SessionDep
from gridmap import cases, duplicates, features, patrol, workflow
from gridmap.errors import InvalidInput
from gridmap.areas import check_bbox

router = APIRouter(prefix="/api/v1", tags=["cases"])
audit = logging.getLogger("gridmap.audit")  # who was shown personal data (never the data itself)


class _ReportIn(BaseModel):
    """What every report says: what, where (`lon`/`lat` in `crs`; stored converted to WGS84, the raw kept)."""

    model_config = ConfigDict(extra="forbid")
    title: str = Field(min_length=1, max_length=200)
    lon: float = Field(allow_inf_nan=False)
    lat: float = Field(allow_inf_nan=False)
    crs: str = "wgs84"
    description: str | None = Field(default=None, max_length=cases.MAX_TEXT)
    address: str | None = Field(default=None, max_length=300)


class CaseIn(_ReportIn):
    """A new case from any channel."""

    category: str | None = None
    source: str = "api"
    reporter_name: str | None = Field(default=None, max_length=64)
    reporter_phone: str | None = None


@router.post("/cases", status_code=201)
def create_case(body: CaseIn, index: IndexDep, request: Request, response: Response,
                idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None) -> dict:
    """File a case: located in its grid, filed and routed by the rules (events to the grid's worker, components
    to their owner department). With an `Idempotency-Key` a retried submission returns the first case (200,
    `Idempotent-Replayed: true`) instead of making a second one; the same key with a different body is a 422."""
    case, created = cases.create_case_once(request.app.state.sessionmaker, index, cases.NewCase(**body.model_dump()),
                                           idempotency_key)
    return _created(request, response, case, created)


def _created(request: Request, response: Response, case, created: bool) -> dict:
    """The answer to an intake: the case, its history, and the cases it may duplicate."""
    response.headers["Location"] = str(request.url_for("get_case", case_id=case.id))
    response.headers["ETag"] = f'"{case.version}"'
    if not created:
        response.status_code = 200
        response.headers["Idempotent-Replayed"] = "true"
    with request.app.state.sessionmaker() as session:
        similar = duplicates.suggest(session, case, request.app.state.settings.duplicate_window(), limit=5)
    return {**cases.case_summary(case), "history": cases.case_history(case), "possible_duplicates": similar}


class PatrolIn(_ReportIn):
    """What a grid worker on patrol reports; `handled_on_spot` when they dealt with it there and then."""

    category: str = Field(min_length=1, max_length=32)
    handled_on_spot: bool = False
    note: str | None = Field(default=None, max_length=4000)


@router.post("/patrol-reports", status_code=201)
def create_patrol_report(body: PatrolIn, index: IndexDep, request: Request, response: Response,
                         x_user: Annotated[str | None, Header()] = None,
                         x_role: Annotated[str | None, Header()] = None,
                         x_staff_id: Annotated[int | None, Header()] = None,
                         idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None) -> dict:
    """A grid worker's patrol report (巡查上报): filed and routed like every case, recording who found it; a point
    outside the worker's grids is flagged `outside_own_grid`. With `handled_on_spot` (即报即处) the case is
    accepted and handled by the worker at once and waits for verification — only when it is theirs to handle."""
    actor = workflow.Actor((x_user or "").strip(), x_role, x_staff_id)  # patrol.report checks who acts
    fields = body.model_dump(exclude={"handled_on_spot", "note"})
    case, created = patrol.report(request.app.state.sessionmaker, index, cases.NewCase(**fields), actor,
                                  calendar=request.app.state.calendar(), handled_on_spot=body.handled_on_spot,
                                  note=body.note, key=idempotency_key)
    return _created(request, response, case, created)


@router.get("/cases/{case_id}/duplicates")
def case_duplicates(case_id: int, session: SessionDep, request: Request, distance_m: float | None = None,
                    hours: float | None = None) -> dict:
    """Cases that may report the same problem: same category, within `distance_m` metres and `hours` hours
    (defaults from the settings), not rejected, voided or merged; nearest first. Merge one with the `merge` step."""
    default = request.app.state.settings.duplicate_window()
    window = duplicates.Window(distance_m if distance_m is not None else default.distance_m,
                               hours if hours is not None else default.hours)
    case = cases.get_case(session, case_id)
    return {"case_id": case.id, "distance_m": window.distance_m, "hours": window.hours,
            "items": duplicates.suggest(session, case, window)}


class ActionIn(BaseModel):
    """Parameters of a step; which ones apply depends on the step (see `gridmap.workflow`)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    version: int | None = Field(None, description="the version of the case you saw (or send If-Match)")
    reason: str | None = Field(None, max_length=2000)
    category: str | None = None
    assignee_id: int | None = None
    department: str | None = None
    satisfaction: int | None = None
    amount: float | None = None
    unit: str | None = None
    note: str | None = Field(None, max_length=4000)
    into: int | None = Field(None, description="merge: the id of the case this one duplicates")


def _if_match(value: str | None) -> int | None:
    if value is None:
        return None
    text = value.strip().removeprefix("W/").strip('"')
    if not text.isdigit():
        raise InvalidInput(f'If-Match: {value!r} is not a case version such as "3"', field="If-Match")
    return int(text)


@router.post("/cases/{case_id}/actions/{action}")
def case_action(case_id: int, action: str, body: ActionIn, session: SessionDep, request: Request,
                response: Response, x_user: Annotated[str | None, Header()] = None,
                x_role: Annotated[str | None, Header()] = None,
                x_staff_id: Annotated[int | None, Header()] = None,
                x_department: Annotated[str | None, Header()] = None,
                if_match: Annotated[str | None, Header()] = None) -> dict:
    """Take one step of the loop: file, reject, void, dispatch, reassign, accept, bounce, whistle, report_in,
    handle, verify, send_back, rate, request_extension, request_suspension, approve, deny, resume, merge.

    Who acts comes from `X-User` and `X-Role` (set by the gateway that authenticates users), plus `X-Staff-Id`
    for a worker and `X-Department` for a department. The version you saw goes in `If-Match` (a stale one is
    412) or in the body's `version` (a stale one is 409); one of them is required (428)."""
    workflow.check_actor(x_user, x_role)
    header_version = _if_match(if_match)
    version = header_version if header_version is not None else body.version
    actor = workflow.Actor(x_user.strip(), x_role, x_staff_id, x_department)
    params = body.model_dump(exclude={"version"})
    try:
        case = workflow.act(session, case_id, action, actor, version=version, calendar=request.app.state.calendar(),
                            params=params)
    except workflow.StaleVersion as exc:
        if header_version is not None:
            raise workflow.PreconditionFailed(exc.message, field="If-Match") from None
        raise
    summary = cases.case_summary(case, calendar=request.app.state.calendar())
    # commit here, in this thread, before answering: an acknowledged step is durable, and the write lock is not
    # held while the request waits for the thread pool to run the session's teardown
    session.commit()
    response.headers["ETag"] = f'"{case.version}"'
    return summary


@router.get("/cases")
def list_cases(session: SessionDep, request: Request, area: str | None = None, state: str | None = None,
               since: dt.datetime | None = None, until: dt.datetime | None = None, bbox: str | None = None,
               limit: Annotated[int, Query(ge=1)] = 50, offset: Annotated[int, Query(ge=0)] = 0,
               order: Literal["newest", "oldest"] = "newest",
               format: Literal["json", "geojson"] = "json") -> dict:
    """Cases filtered by area code, state (comma-separated; also `open` and `overdue`) and reporting period,
    newest first (or `order=oldest`, as a queue is worked), paged."""
    limit = min(limit, request.app.state.settings.max_page_size if format == "json" else 10_000)
    total, rows = cases.find_cases(session, area=area, state=state, since=since, until=until,
                                   bbox=check_bbox(bbox), limit=limit, offset=offset,
                                   oldest_first=order == "oldest")
    if format == "geojson":
        return features.feature_collection([features.case_feature(c) for c in rows], numberMatched=total,
                                           numberReturned=len(rows))
    calendar = request.app.state.calendar()
    return {"total": total, "limit": limit, "offset": offset,
            "items": [cases.case_summary(c, calendar=calendar) for c in rows]}


@router.get("/cases/{case_id}", name="get_case")
def get_case(case_id: int, session: SessionDep, request: Request, response: Response,
             x_user: Annotated[str | None, Header()] = None, x_role: Annotated[str | None, Header()] = None,
             x_staff_id: Annotated[int | None, Header()] = None,
             x_department: Annotated[str | None, Header()] = None) -> dict:
    """One case with its full history (and the histories of the cases merged into it). The reporter's name and
    phone are masked unless `X-Role` may see them: dispatcher, admin, verifier, or the worker (`X-Staff-Id`) or
    department (`X-Department`) the case is with; each such view is written to the audit log. `routing` says
    where it went and why: the grid chain, branch, worker or department, the rule, and how the point was placed."""
    case = cases.get_case(session, case_id)
    contact = bool(x_user and x_user.strip()) and cases.may_see_contact(session, case, x_role, x_staff_id,
                                                                        x_department)
    if contact and (case.reporter_name or case.reporter_phone):
        audit.info("contact shown: case %s to %s:%s", case.number, x_role, x_user.strip())
    response.headers["ETag"] = f'"{case.version}"'
    response.headers["Cache-Control"] = "private, no-store" if contact else "no-cache"
    return {**cases.case_summary(case, calendar=request.app.state.calendar(), contact=contact),
            "routing": cases.routing(session, case), "history": cases.full_history(session, case)}
