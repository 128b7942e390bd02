"""The measures of docs/DOMAIN.md §4 per unit and period, as JSON, CSV or XLSX (formulas: `gridmap.cases.measures`)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Response

from gridmap.access import policy
from gridmap.cases import measures
from gridmap.errors import Forbidden, InvalidInput
from gridmap_api.auth import allow
from gridmap_api.deps import SessionDep
from gridmap_api.params import Moment
from gridmap_api.schemas.common import COMMON, binary, problems
from gridmap_api.schemas.measures import MeasuresOut

router = APIRouter(prefix="/api/v1", tags=["measures"], responses=COMMON)
MEDIA = {"csv": "text/csv; charset=utf-8", "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}


@router.get(
    "/measures",
    response_model=MeasuresOut,
    responses={
        **binary(*MEDIA.values(), description="the measures as JSON, or as a CSV or XLSX file (`format`)"),
        **COMMON,
        **problems(404),
    },
)
def get_measures(
    session: SessionDep,
    who: Annotated[policy.Principal, allow("measures.read")],
    by: str = "grid",
    since: Moment | None = None,
    until: Moment | None = None,
    under: str | None = None,
    format: Literal["json", "csv", "xlsx"] = "json",
    lang: Literal["zh", "en"] = "zh",
):
    """Workload, closure, on-time closure, rework, extension, bounces, time to close and satisfaction of every
    grid, community, sub-district, branch, department or worker (`by`) over [since, until) — by default this
    month so far — plus a total row (`key` = `*`). `under` keeps the areas inside one area code. An account
    scoped to areas gets area units inside its own areas (`under` defaults to its area when it has one)."""
    if not who.everywhere:
        if by not in ("grid", "community", "subdistrict"):
            raise Forbidden(
                f"by: an account scoped to areas measures by grid, community or sub-district, not {by}",
                field="by",
                zh=f"分组方式：有辖区的账号只能按网格、社区或街道统计，不能按 {by} 统计。",
            )
        if under is None and len(who.scopes) == 1:
            under = who.scopes[0].code
        if under is None:
            raise InvalidInput(
                f"under: name one of your areas: {', '.join(s.code for s in who.scopes)}",
                field="under",
                zh=f"上级区域：请选择您负责的一个区域：{'、'.join(s.code for s in who.scopes)}。",
            )
        policy.check_area(who, under, inside=True)
    period, table = measures.measures(session, by, since=since, until=until, under=under)
    if format == "json":
        return {
            "by": by,
            "since": period.since.isoformat(),
            "until": period.until.isoformat(),
            "formulas": "see gridmap.cases.measures and the README",
            "items": measures.to_records(table),
        }
    name = f"measures-{by}-{period.since:%Y%m%d}-{period.until:%Y%m%d}.{format}"
    return Response(
        measures.export(table, format, lang=lang),
        media_type=MEDIA[format],
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
