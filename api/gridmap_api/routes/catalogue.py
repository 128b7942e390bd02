"""The catalogue of categories and the working calendar: read by everyone, edited by admins."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response

from gridmap.access.policy import Principal
from gridmap.cases import catalogue
from gridmap_api.auth import allow
from gridmap_api.deps import SessionDep, after_commit
from gridmap_api.schemas.catalogue import CalendarDay as CalendarDayOut
from gridmap_api.schemas.catalogue import CalendarDayIn, CalendarYear, CategoryIn, CategoryOut, CategoryPatch
from gridmap_api.schemas.common import COMMON, problems

router = APIRouter(prefix="/api/v1", tags=["catalogue"], responses=COMMON)
Admin = Annotated[Principal, allow("catalogue.edit")]
Reader = Annotated[Principal, allow("catalogue.read")]
Day = Annotated[str, Path(max_length=10)]


@router.get("/categories", response_model=list[CategoryOut], responses=COMMON)
def list_categories(session: SessionDep, who: Reader, include_retired: bool = False) -> list[dict]:
    """The categories: code, kind, major class, name, time limit and unit, urgency, filing condition, department."""
    return catalogue.list_categories(session, include_retired=include_retired)


@router.post("/categories", status_code=201, response_model=CategoryOut, responses={**COMMON, **problems(409)})
def create_category(session: SessionDep, response: Response, who: Admin, body: CategoryIn) -> dict:
    """A new minor class (admin): code, kind, major_class, name, time_limit, time_unit, and optionally urgency,
    filing_condition, department (a department code)."""
    category = catalogue.create_category(session, body.model_dump(exclude_unset=True))
    result = catalogue.category_dict(category)
    response.headers["Location"] = f"/api/v1/categories/{category.code}"
    return result


@router.patch("/categories/{code}", response_model=CategoryOut, responses={**COMMON, **problems(404)})
def update_category(
    code: Annotated[str, Path(max_length=32)], session: SessionDep, who: Admin, body: CategoryPatch
) -> dict:
    """Change a category (admin). `active: false` retires it: no new cases, existing ones keep it. A new time
    limit applies from the next acceptance."""
    result = catalogue.category_dict(catalogue.update_category(session, code, body.model_dump(exclude_unset=True)))
    return result


@router.get("/calendar", response_model=CalendarYear, responses=COMMON)
def get_calendar(session: SessionDep, who: Reader, year: Annotated[int, Query(ge=1950, le=2200)]) -> dict:
    """A year's holidays and make-up working days (调休), the number of working days, and whether the year's
    notice has been entered."""
    return catalogue.calendar_year(session, year)


@router.put("/calendar/{day}", response_model=CalendarDayOut, responses=COMMON)
def put_calendar_day(day: Day, session: SessionDep, request: Request, who: Admin, body: CalendarDayIn) -> dict:
    """Make a day a `holiday` or a make-up `workday` (admin), with a name. New deadlines use it at once; deadlines
    already set are not moved."""
    row = catalogue.put_day(session, day, body.kind, body.name)
    result = {"day": row.day.isoformat(), "kind": row.kind, "name": row.name}
    after_commit(session, request.app.state.calendar_changed)
    return result


@router.delete("/calendar/{day}", status_code=204, responses={**COMMON, **problems(404)})
def delete_calendar_day(day: Day, session: SessionDep, request: Request, who: Admin) -> Response:
    """Make a day ordinary again (admin)."""
    catalogue.delete_day(session, day)
    after_commit(session, request.app.state.calendar_changed)
    return Response(status_code=204)
