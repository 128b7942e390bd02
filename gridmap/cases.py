"""Cases: intake (located and auto-assigned to grid, branch and worker, with its history), listing and reading.

The full loop (guarded transitions, deadlines on the working calendar, escalation) comes with issue #4; what is
here files a case where it happened and routes it to the territory (先属地): the grid covering the point, that
grid's party branch, and its full-time grid worker.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session, selectinload

from gridmap import crs as gcrs
from gridmap.areas import branch_for, get_area, mask_phone
from gridmap.errors import InvalidInput, NotFound
from gridmap.lookup import AreaIndex, Location
from gridmap.tables import CASE_SOURCES, CASE_STATES, Case, CaseCategory, CaseEvent, StaffArea

LEVEL_COLUMNS = {"district": Case.district_code, "subdistrict": Case.subdistrict_code,
                 "community": Case.community_code, "grid": Case.grid_code, "microgrid": Case.microgrid_code}
MAX_TEXT = 4000


@dataclass
class NewCase:
    """What an intake channel supplies for a new case."""

    title: str
    lon: float
    lat: float
    crs: str = "wgs84"
    category: str | None = None
    description: str | None = None
    source: str = "api"
    address: str | None = None
    reporter_name: str | None = None
    reporter_phone: str | None = None


def utc(value: dt.datetime | None) -> dt.datetime | None:
    """Datetimes are stored in UTC; SQLite hands them back naive."""
    if value is None:
        return None
    return value.replace(tzinfo=dt.timezone.utc) if value.tzinfo is None else value.astimezone(dt.timezone.utc)


def _check_text(field: str, value: str | None, *, required: bool = False, limit: int = MAX_TEXT) -> None:
    if required and (value is None or not value.strip()):
        raise InvalidInput(f"{field}: must not be empty", field=field)
    if value is not None and len(value) > limit:
        raise InvalidInput(f"{field}: {len(value)} characters is too long; at most {limit}", field=field)


def _check_new_case(session: Session, new: NewCase) -> CaseCategory | None:
    _check_text("title", new.title, required=True, limit=200)
    _check_text("description", new.description)
    _check_text("address", new.address, limit=300)
    _check_text("reporter_name", new.reporter_name, limit=64)
    if new.source not in CASE_SOURCES:
        raise InvalidInput(f"source: {new.source!r} is not a channel; accepted: {', '.join(CASE_SOURCES)}",
                           field="source")
    if new.reporter_phone is not None and not (new.reporter_phone.isdigit() and 7 <= len(new.reporter_phone) <= 15):
        raise InvalidInput("reporter_phone: must be 7 to 15 digits, e.g. 13812341234", field="reporter_phone")
    if new.category is None:
        return None
    category = session.scalars(sa.select(CaseCategory).where(CaseCategory.code == new.category)).first()
    if category is None:
        raise InvalidInput(f"category: {new.category!r} is not a category code (see GET /api/v1/categories)",
                           field="category")
    return category


def _worker_for(session: Session, grid_code: str) -> int | None:
    return session.scalars(
        sa.select(StaffArea.staff_id).where(StaffArea.area_code == grid_code, StaffArea.role == "fulltime_worker")
        .order_by(StaffArea.id).limit(1)
    ).first()


def create_case(session: Session, index: AreaIndex, new: NewCase, *, actor: str = "api",
                now: dt.datetime | None = None) -> Case:
    """File a case: validate, convert the point to WGS84, locate it, assign it, and record its history."""
    category = _check_new_case(session, new)
    system = gcrs.parse_crs(new.crs)
    lon, lat = gcrs.convert_point(new.lon, new.lat, system)
    location = index.locate(lon, lat)
    now = now or dt.datetime.now(dt.timezone.utc)
    case = Case(number=f"new-{uuid.uuid4().hex[:28]}", title=new.title.strip(), description=new.description, category_id=category and category.id,
                source=new.source, state="reported", address=new.address, raw_x=new.lon, raw_y=new.lat,
                raw_crs=system.name, lon=lon, lat=lat, geom=f"SRID=4326;POINT({lon!r} {lat!r})",
                reporter_name=new.reporter_name, reporter_phone=new.reporter_phone, reported_at=now,
                generation_id=index.generation_id, locate_flags=location.flags)
    _apply_location(case, location)
    session.add(case)
    session.flush()
    case.number = f"{now:%Y%m%d}{case.id:07d}"  # readable and unique: the date, then the row id
    _record(session, case, now, actor, "reported", None, "reported", {"source": new.source})
    located = {"flags": location.flags, "candidates": location.candidates, "crs": system.name}
    if location.chain:
        _route(session, case, now, actor, located)
    else:
        _record(session, case, now, "system", "located", "reported", "reported", located)
    session.flush()
    return case


def _apply_location(case: Case, location: Location) -> None:
    for level, column in LEVEL_COLUMNS.items():
        ref = location.at_level(level)
        setattr(case, column.key, ref.code if ref else None)


def _route(session: Session, case: Case, now: dt.datetime, actor: str, located: dict) -> None:
    """Territory first: the grid's branch and full-time worker take the case."""
    branch = branch_for(session, case.grid_code, now.date()) if case.grid_code else None
    case.branch_id = branch.id if branch else None
    case.assignee_id = _worker_for(session, case.grid_code) if case.grid_code else None
    case.state = "dispatched"
    detail = {**located, "grid": case.grid_code, "branch_id": case.branch_id, "assignee_id": case.assignee_id,
              "rule": "territory_first"}
    _record(session, case, now, "system", "dispatched", "reported", "dispatched", detail)


def _record(session: Session, case: Case, at: dt.datetime, actor: str, action: str, from_state: str | None,
            to_state: str | None, detail: dict | None) -> None:
    session.add(CaseEvent(case_id=case.id, at=at, actor=actor, action=action, from_state=from_state,
                          to_state=to_state, detail=detail))


def get_case(session: Session, case_id: int) -> Case:
    """One case with its history; `NotFound` when there is none."""
    case = session.scalars(sa.select(Case).options(selectinload(Case.events), selectinload(Case.category))
                           .where(Case.id == case_id)).first()
    if case is None:
        raise NotFound(f"case id: no case has id {case_id}", field="id")
    return case


def check_period(since: dt.datetime | None, until: dt.datetime | None) -> None:
    """A period must not end before it starts."""
    if since and until and utc(until) < utc(since):
        raise InvalidInput(f"until: {until.isoformat()} is before since {since.isoformat()}", field="until")


def find_cases(session: Session, *, area: str | None = None, state: str | None = None,
               since: dt.datetime | None = None, until: dt.datetime | None = None,
               bbox: tuple[float, float, float, float] | None = None,
               limit: int = 50, offset: int = 0) -> tuple[int, list[Case]]:
    """Cases matching the filters, newest first, and how many match in all."""
    if state is not None and state not in CASE_STATES:
        raise InvalidInput(f"state: {state!r} is not a case state; accepted: {', '.join(CASE_STATES)}", field="state")
    check_period(since, until)
    query = sa.select(Case)
    if area:
        target = get_area(session, area)
        query = query.where(LEVEL_COLUMNS[target.level] == area)
    if state:
        query = query.where(Case.state == state)
    if since:
        query = query.where(Case.reported_at >= utc(since))
    if until:
        query = query.where(Case.reported_at < utc(until))
    if bbox:
        query = query.where(Case.lon.between(bbox[0], bbox[2]), Case.lat.between(bbox[1], bbox[3]))
    total = session.scalar(sa.select(sa.func.count()).select_from(query.subquery()))
    rows = session.scalars(query.options(selectinload(Case.category))
                           .order_by(Case.reported_at.desc(), Case.id.desc()).limit(limit).offset(offset))
    return int(total or 0), list(rows)


def case_summary(case: Case) -> dict:
    """The public view of a case: personal data masked, times in UTC ISO 8601."""
    return {
        "id": case.id, "number": case.number, "title": case.title, "description": case.description,
        "category": case.category.code if case.category else None,
        "category_name": case.category.name if case.category else None,
        "source": case.source, "state": case.state, "address": case.address,
        "lon": case.lon, "lat": case.lat, "raw": {"x": case.raw_x, "y": case.raw_y, "crs": case.raw_crs},
        "district_code": case.district_code, "subdistrict_code": case.subdistrict_code,
        "community_code": case.community_code, "grid_code": case.grid_code, "microgrid_code": case.microgrid_code,
        "branch_id": case.branch_id, "assignee_id": case.assignee_id, "flags": case.locate_flags or [],
        "reporter_name": _mask_name(case.reporter_name), "reporter_phone": mask_phone(case.reporter_phone),
        "reported_at": _iso(case.reported_at), "accepted_at": _iso(case.accepted_at),
        "due_at": _iso(case.due_at), "closed_at": _iso(case.closed_at), "version": case.version,
    }


def case_history(case: Case) -> list[dict]:
    """The case's events, oldest first."""
    return [{"at": _iso(e.at), "actor": e.actor, "action": e.action, "from_state": e.from_state,
             "to_state": e.to_state, "detail": e.detail} for e in case.events]


def _mask_name(name: str | None) -> str | None:
    return name[0] + "*" * max(len(name) - 1, 1) if name else name


def _iso(value: dt.datetime | None) -> str | None:
    value = utc(value)
    return value.isoformat().replace("+00:00", "Z") if value else None


def list_categories(session: Session) -> list[dict]:
    """Every case category, by code."""
    rows = session.scalars(sa.select(CaseCategory).order_by(CaseCategory.code))
    return [{"code": c.code, "kind": c.kind, "major_class": c.major_class, "name": c.name,
             "time_limit": c.time_limit, "time_unit": c.time_unit, "urgency": c.urgency} for c in rows]
