"""The catalogue of categories and the working calendar: read by everyone, edited by admins."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Path, Query, Request, Response

from api.auth import allow
from api.deps import SessionDep
from gridmap import catalogue
from gridmap.policy import Principal

router = APIRouter(prefix="/api/v1", tags=["catalogue"])
Admin = Annotated[Principal, allow("catalogue.edit")]
Reader = Annotated[Principal, allow("catalogue.read")]
Day = Annotated[str, Path(max_length=10)]


@router.get("/categories")
def list_categories(session: SessionDep, who: Reader, include_retired: bool = False) -> list[dict]:
    """The categories: code, kind, major class, name, time limit and unit, urgency, filing condition, department."""
    return catalogue.list_categories(session, include_retired=include_retired)


@router.post("/categories", status_code=201)
def create_category(session: SessionDep, response: Response, who: Admin,
                    body: Annotated[dict, Body()]) -> dict:
    """A new minor class (admin): code, kind, major_class, name, time_limit, time_unit, and optionally urgency,
    filing_condition, department (a department code)."""
    category = catalogue.create_category(session, body)
    result = catalogue.category_dict(category)
    session.commit()
    response.headers["Location"] = f"/api/v1/categories/{category.code}"
    return result


@router.patch("/categories/{code}")
def update_category(code: Annotated[str, Path(max_length=32)], session: SessionDep, who: Admin,
                    body: Annotated[dict, Body()]) -> dict:
    """Change a category (admin). `active: false` retires it: no new cases, existing ones keep it. A new time
    limit applies from the next acceptance."""
    result = catalogue.category_dict(catalogue.update_category(session, code, body))
    session.commit()
    return result


@router.get("/calendar")
def get_calendar(session: SessionDep, who: Reader, year: Annotated[int, Query(ge=1950, le=2200)]) -> dict:
    """A year's holidays and make-up working days (调休), the number of working days, and whether the year's
    notice has been entered."""
    return catalogue.calendar_year(session, year)


@router.put("/calendar/{day}")
def put_calendar_day(day: Day, session: SessionDep, request: Request, who: Admin, body: Annotated[dict, Body()]) -> dict:
    """Make a day a `holiday` or a make-up `workday` (admin), with a name. New deadlines use it at once; deadlines
    already set are not moved."""
    row = catalogue.put_day(session, day, body.get("kind"), body.get("name"))
    result = {"day": row.day.isoformat(), "kind": row.kind, "name": row.name}
    session.commit()
    request.app.state.calendar_changed()
    return result


@router.delete("/calendar/{day}", status_code=204)
def delete_calendar_day(day: Day, session: SessionDep, request: Request, who: Admin) -> Response:
    """Make a day ordinary again (admin)."""
    catalogue.delete_day(session, day)
    session.commit()
    request.app.state.calendar_changed()
    return Response(status_code=204)
