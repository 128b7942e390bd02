"""The manager's lists: rankings of child areas and of workers on a measure, with the target line (达标线); the
case list of an area as a spreadsheet."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Response

from gridmap.access import policy
from gridmap.cases import export as case_export
from gridmap.cases import queries, rankings
from gridmap_api.auth import allow
from gridmap_api.deps import SessionDep
from gridmap_api.params import Moment
from gridmap_api.schemas.common import COMMON, binary
from gridmap_api.schemas.rankings import Ranking

router = APIRouter(prefix="/api/v1", tags=["measures"], responses=COMMON)

MeasureName = Literal[rankings.MEASURES]  # type: ignore[valid-type]


@router.get("/areas/{code}/ranking")
def area_ranking(
    code: Annotated[str, Path(max_length=24)],
    session: SessionDep,
    who: Annotated[policy.Principal, allow("measures.read")],
    measure: MeasureName = "on_time_rate",
    by: Literal["children", "workers"] = "children",
    since: Moment | None = None,
    until: Moment | None = None,
    limit: Annotated[int, Query(ge=1, le=2000)] = 500,
) -> Ranking:
    """The areas directly within area `code` (`by=children`) or the grid heads and workers serving it
    (`by=workers`), best first on `measure` over [since, until) (by default this month so far), each with the
    value's numerator and denominator and whether it meets the measure's target line (`target`; None when the
    measure has none). Only for areas the caller acts for; workers are listed only when every area they serve
    here lies in the caller's areas. Formulas: `gridmap.cases.measures`; targets: `gridmap.cases.rankings.TARGETS`."""
    policy.check_area(who, code, inside=True)
    out = rankings.ranking(
        session,
        code,
        measure,
        by,
        since=since,
        until=until,
        sees_staff=lambda codes: all(policy.within(who, c) for c in codes),
    )
    out["items"] = out["items"][:limit]
    return Ranking(**out)


MEDIA = {"csv": "text/csv; charset=utf-8", "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}
MAX_EXPORT = 10_000


@router.get("/exports/cases", response_class=Response, responses=binary(*MEDIA.values(), description="the spreadsheet"))
def export_cases(
    session: SessionDep,
    who: Annotated[policy.Principal, allow("case.read")],
    area: Annotated[str | None, Query(max_length=24)] = None,
    state: Annotated[str | None, Query(max_length=200)] = None,
    category: Annotated[str | None, Query(max_length=400)] = None,
    since: Moment | None = None,
    until: Moment | None = None,
    format: Literal["csv", "xlsx"] = "csv",
    lang: Literal["zh", "en"] = "zh",
    limit: Annotated[int, Query(ge=1, le=MAX_EXPORT)] = MAX_EXPORT,
) -> Response:
    """The cases of an area (`state`: comma-separated, also `open` and `overdue`; `category`: codes; reported in
    [since, until)) as CSV or XLSX, newest first, at most `limit` (10,000): number, title, state, category,
    channel, sub-district, community and grid by name, holder, reported, deadline, hours overdue, closed,
    address — no reporter's data. Only the cases the caller may see; an area outside its scope is not found."""
    if area:
        policy.check_area(who, area)
    flt = queries.CaseFilter(area=area, state=state, category=category, since=since, until=until)
    rows = queries.page_cases(session, flt, limit=limit, count=False, who=who).rows  # no total: not shown
    body = case_export.export(case_export.table(session, rows, lang=lang), format, lang=lang)
    name = f"cases-{area or 'all'}.{format}"
    return Response(body, media_type=MEDIA[format], headers={"Content-Disposition": f'attachment; filename="{name}"'})
