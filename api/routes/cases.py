"""Cases: intake (located and assigned), listing with filters, one case with its history."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from api.deps import IndexDep, SessionDep
from gridmap import cases, features
from gridmap.areas import check_bbox

router = APIRouter(prefix="/api/v1", tags=["cases"])


class CaseIn(BaseModel):
    """A new case. `lon`/`lat` are in `crs`; the stored position is converted to WGS84, the raw one kept."""

    model_config = ConfigDict(extra="forbid")
    title: str = Field(min_length=1, max_length=200)
    lon: float = Field(allow_inf_nan=False)
    lat: float = Field(allow_inf_nan=False)
    crs: str = "wgs84"
    category: str | None = None
    description: str | None = Field(default=None, max_length=cases.MAX_TEXT)
    source: str = "api"
    address: str | None = Field(default=None, max_length=300)
    reporter_name: str | None = Field(default=None, max_length=64)
    reporter_phone: str | None = None


@router.post("/cases", status_code=201)
def create_case(body: CaseIn, session: SessionDep, index: IndexDep, request: Request, response: Response) -> dict:
    """File a case: located in its grid and assigned to the grid's branch and worker."""
    case = cases.create_case(session, index, cases.NewCase(**body.model_dump()))
    response.headers["Location"] = str(request.url_for("get_case", case_id=case.id))
    return {**cases.case_summary(case), "history": cases.case_history(case)}


@router.get("/cases")
def list_cases(session: SessionDep, request: Request, area: str | None = None, state: str | None = None,
               since: dt.datetime | None = None, until: dt.datetime | None = None, bbox: str | None = None,
               limit: Annotated[int, Query(ge=1)] = 50, offset: Annotated[int, Query(ge=0)] = 0,
               format: Literal["json", "geojson"] = "json") -> dict:
    """Cases filtered by area code, state and reporting period, newest first, paged."""
    limit = min(limit, request.app.state.settings.max_page_size if format == "json" else 10_000)
    total, rows = cases.find_cases(session, area=area, state=state, since=since, until=until,
                                   bbox=check_bbox(bbox), limit=limit, offset=offset)
    if format == "geojson":
        return features.feature_collection([features.case_feature(c) for c in rows], numberMatched=total,
                                           numberReturned=len(rows))
    return {"total": total, "limit": limit, "offset": offset, "items": [cases.case_summary(c) for c in rows]}


@router.get("/cases/{case_id}", name="get_case")
def get_case(case_id: int, session: SessionDep) -> dict:
    """One case with its full history."""
    case = cases.get_case(session, case_id)
    return {**cases.case_summary(case), "history": cases.case_history(case)}


@router.get("/categories")
def list_categories(session: SessionDep) -> list[dict]:
    """The case categories: code, kind, major class, name, time limit and unit."""
    return cases.list_categories(session)
