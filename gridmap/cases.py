"""Cases: intake (located, filed and routed by the rules, at most once per Idempotency-Key), listing and reading.

A case with a location inside a grid and a category is filed and dispatched at once: events to the grid's worker
(先属地), components to the owning department (先属主), both under the grid's party branch. The other steps of the
loop are `gridmap.workflow`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import uuid
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session, selectinload

from gridmap import crs as gcrs
from gridmap import policy, workflow
from gridmap.locate import LocateOptions, to_wgs84_checked
from gridmap.areas import get_area, mask_phone
from gridmap.errors import Conflict, InvalidInput, NotFound
from gridmap.lookup import AreaIndex, Location
from gridmap.policy import Principal
from gridmap.textcheck import MAX_ADDRESS, clean_phone, clean_text
from gridmap.tables import CASE_SOURCES, CASE_STATES, FINISHED_STATES, Case, CaseCategory, CaseEvent, Department, IdempotencyKey

NOT_RUNNING = (*FINISHED_STATES, "suspended")  # no clock runs
PSEUDO_STATES = {"open": "not finished", "overdue": "running past its deadline"}
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
    external_ref: str | None = None  # the ticket number in the source system (one case per source and ticket)
    reported_at: dt.datetime | None = None  # when the resident reported it, if not now (an imported call)
    reported_by_staff_id: int | None = None  # the grid worker whose patrol found it
    extra_flags: tuple[str, ...] = ()  # how the channel placed it (e.g. by address)


def utc(value: dt.datetime | None) -> dt.datetime | None:
    """Datetimes are stored in UTC; SQLite hands them back naive."""
    if value is None:
        return None
    return value.replace(tzinfo=dt.timezone.utc) if value.tzinfo is None else value.astimezone(dt.timezone.utc)


def check_new_case_text(new: NewCase) -> NewCase:
    """The case's texts checked (length first, then control, bidi and invisible-only text; NFC) and its phone as
    ASCII digits: the one check every intake channel passes through, before anything is located or stored."""
    return dataclasses.replace(
        new,
        title=clean_text(new.title, "title", 200).strip(),
        description=clean_text(new.description, "description", MAX_TEXT, multiline=True, required=False),
        address=clean_text(new.address, "address", MAX_ADDRESS, required=False),
        reporter_name=clean_text(new.reporter_name, "reporter_name", 64, required=False),
        reporter_phone=clean_phone(new.reporter_phone, "reporter_phone"),
        external_ref=clean_text(new.external_ref, "external_ref", 64, required=False))


def _check_new_case(session: Session, new: NewCase) -> CaseCategory | None:
    if new.source not in CASE_SOURCES:
        raise InvalidInput(f"source: {new.source!r} is not a channel; accepted: {', '.join(CASE_SOURCES)}",
                           field="source")
    if new.category is None:
        return None
    category = session.scalars(sa.select(CaseCategory).where(CaseCategory.code == new.category)).first()
    if category is None:
        raise InvalidInput(f"category: {new.category!r} is not a category code (see GET /api/v1/categories)",
                           field="category")
    if category.active is False:
        raise InvalidInput(f"category: {new.category} ({category.name}) is retired; see GET /api/v1/categories",
                           field="category")
    return category


def create_case(session: Session, index: AreaIndex, new: NewCase, *, actor: str = "api",
                now: dt.datetime | None = None) -> Case:
    """File a case: validate, convert the point to WGS84, locate it, assign it, and record its history."""
    new = check_new_case_text(new)
    category = _check_new_case(session, new)
    system = gcrs.parse_crs(new.crs)
    # refused, naming lon/lat, when far outside the service area (a case 8,000 km away is a mistake, not a case)
    lon, lat = to_wgs84_checked(index, new.lon, new.lat, system, LocateOptions())
    location = index.locate(lon, lat)
    now = now or dt.datetime.now(dt.timezone.utc)
    case = Case(number=f"new-{uuid.uuid4().hex[:28]}", title=new.title.strip(), description=new.description, category_id=category and category.id,
                source=new.source, state="reported", address=new.address, raw_x=new.lon, raw_y=new.lat,
                raw_crs=system.name, lon=lon, lat=lat, geom=f"SRID=4326;POINT({lon!r} {lat!r})",
                reporter_name=new.reporter_name, reporter_phone=new.reporter_phone,
                reported_at=new.reported_at or now, external_ref=new.external_ref,
                reported_by_staff_id=new.reported_by_staff_id, generation_id=index.generation_id,
                locate_flags=[*location.flags, *new.extra_flags])
    _apply_location(case, location)
    session.add(case)
    session.flush()
    case.number = f"{now:%Y%m%d}{case.id:07d}"  # readable and unique: the date, then the row id
    reported = {"source": new.source, **({"external_ref": new.external_ref} if new.external_ref else {})}
    _record(session, case, case.reported_at, actor, "reported", None, "reported", reported)
    located = {"flags": case.locate_flags, "candidates": location.candidates, "crs": system.name}
    _record(session, case, now, "system", "located", "reported", "reported", located)
    if location.chain and category is not None:
        # a located case with a category is filed and dispatched by the rules at once; the others wait for a
        # dispatcher to file them (立案) with a category or a corrected location
        case.category = category
        _record(session, case, now, "system", "file", "reported", "filed", {"rule": "auto_file"})
        case.state = "filed"
        detail = workflow.route(session, case, now)
        case.state = "dispatched"
        _record(session, case, now, "system", "dispatch", "filed", "dispatched", detail)
    session.flush()
    return case


def _apply_location(case: Case, location: Location) -> None:
    for level, column in LEVEL_COLUMNS.items():
        ref = location.at_level(level)
        setattr(case, column.key, ref.code if ref else None)


def _record(session: Session, case: Case, at: dt.datetime, actor: str, action: str, from_state: str | None,
            to_state: str | None, detail: dict | None) -> None:
    session.add(CaseEvent(case_id=case.id, at=at, actor=actor, action=action, from_state=from_state,
                          to_state=to_state, detail=detail))


def request_hash(new: NewCase, extra: dict | None = None) -> str:
    """A digest of a submission, to tell a retry (same body) from a reuse of its Idempotency-Key."""
    body = json.dumps([dataclasses.asdict(new), extra or {}], sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(body.encode()).hexdigest()


def create_case_once(sessionmaker, index: AreaIndex, new: NewCase, key: str | None, *, actor: str = "api",
                     now: dt.datetime | None = None, then=None, extra: dict | None = None) -> tuple[Case, bool]:
    """File a case at most once per Idempotency-Key; returns (case, created). The same key with a different body
    (the case and `extra`) is refused. Two retries racing each other both get the one case: the key's primary key
    decides. `then(session, case)` runs in the same transaction (a patrol worker handling it on the spot): if it
    raises, nothing is stored."""
    if key is not None and not (1 <= len(key) <= 200 and key.isprintable()):
        raise InvalidInput("Idempotency-Key: 1 to 200 printable characters, e.g. a UUID", field="Idempotency-Key")
    digest = request_hash(new, extra)
    for _ in range(3):
        try:
            with sessionmaker() as session, session.begin():
                if key is not None:
                    seen = session.get(IdempotencyKey, key)
                    if seen is not None:
                        if seen.request_hash != digest:
                            raise InvalidInput("Idempotency-Key: already used for a different submission; use a "
                                               "new key for a new case", field="Idempotency-Key")
                        return get_case(session, seen.case_id), False
                case = create_case(session, index, new, actor=actor, now=now)
                if then is not None:
                    then(session, case)
                if key is not None:
                    session.add(IdempotencyKey(key=key, request_hash=digest, case_id=case.id))
                    session.flush()
                session.expire(case, ["events", "category"])
                case = get_case(session, case.id)
            return case, True
        except sa.exc.IntegrityError:
            continue  # a concurrent retry with the same key won: read its case
    raise Conflict("Idempotency-Key: the submission is being processed; retry in a moment", field="Idempotency-Key")


def get_case(session: Session, case_id: int) -> Case:
    """One case with its history; `NotFound` when there is none."""
    case = session.scalars(sa.select(Case).options(selectinload(Case.events), selectinload(Case.category))
                           .where(Case.id == case_id)).first()
    if case is None:
        raise NotFound(f"case id: no case has id {case_id}", field="id")
    return case


def department_code(session: Session, case: Case) -> str | None:
    if case.department_id is None:
        return None
    return session.scalar(sa.select(Department.code).where(Department.id == case.department_id))


def get_case_for(session: Session, case_id: int, who: Principal) -> Case:
    """One case, if `who` may see it; otherwise `NotFound`, the same answer as for an id nobody has."""
    case = get_case(session, case_id)
    policy.check_case(who, case, department_code(session, case))
    return case


def reporter_token(key: str | None) -> str:
    """The token a reporter rates the case with: derived from the submission's Idempotency-Key when there is one
    (so a retried submission is answered with the same token), random otherwise. Only its digest is stored."""
    if key:
        return hashlib.sha256(f"gridmap-reporter:{key}".encode()).hexdigest()[:32]
    return uuid.uuid4().hex


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def check_period(since: dt.datetime | None, until: dt.datetime | None) -> None:
    """A period must not end before it starts."""
    if since and until and utc(until) < utc(since):
        raise InvalidInput(f"until: {until.isoformat()} is before since {since.isoformat()}", field="until")


def check_states(text: str | tuple[str, ...] | None) -> tuple[str, ...]:
    """States as given (comma-separated), each a case state or `open` / `overdue`."""
    values = text.split(",") if isinstance(text, str) else (text or ())
    states = tuple(sorted({v.strip() for v in values if v.strip()}))
    for state in states:
        if state not in CASE_STATES and state not in PSEUDO_STATES:
            raise InvalidInput(f"state: {state!r} is not a case state; accepted: {', '.join(PSEUDO_STATES)}, "
                               f"{', '.join(CASE_STATES)}", field="state")
    return states


def state_condition(states: tuple[str, ...], now: dt.datetime):
    """SQL for "in any of these states"; `open` = not finished, `overdue` = running past the deadline (as in the
    area counts)."""
    parts = []
    plain = [s for s in states if s in CASE_STATES]
    if plain:
        parts.append(Case.state.in_(plain))
    if "open" in states:
        parts.append(Case.state.not_in(FINISHED_STATES))
    if "overdue" in states:
        parts.append(sa.and_(Case.state.not_in(NOT_RUNNING), Case.due_at.is_not(None), Case.due_at < now))
    return sa.or_(*parts)


def find_cases(session: Session, *, area: str | None = None, state: str | tuple[str, ...] | None = None,
               since: dt.datetime | None = None, until: dt.datetime | None = None,
               bbox: tuple[float, float, float, float] | None = None,
               limit: int = 50, offset: int = 0, oldest_first: bool = False,
               now: dt.datetime | None = None, who: Principal | None = None) -> tuple[int, list[Case]]:
    """Cases matching the filters (`state` may list several, and `open` / `overdue`), newest first (or oldest
    first, as a queue is worked), and how many match in all; only those `who` may see (`gridmap.policy`)."""
    states = check_states(state)
    check_period(since, until)
    query = sa.select(Case)
    if who is not None:
        query = query.where(policy.case_condition(who, Case))
    if area:
        target = get_area(session, area)
        query = query.where(LEVEL_COLUMNS[target.level] == area)
    if states:
        query = query.where(state_condition(states, utc(now) or dt.datetime.now(dt.timezone.utc)))
    if since:
        query = query.where(Case.reported_at >= utc(since))
    if until:
        query = query.where(Case.reported_at < utc(until))
    if bbox:
        query = query.where(Case.lon.between(bbox[0], bbox[2]), Case.lat.between(bbox[1], bbox[3]))
    total = session.scalar(sa.select(sa.func.count()).select_from(query.subquery()))
    order = (Case.reported_at.asc(), Case.id.asc()) if oldest_first else (Case.reported_at.desc(), Case.id.desc())
    rows = session.scalars(query.options(selectinload(Case.category)).order_by(*order).limit(limit).offset(offset))
    return int(total or 0), list(rows)


def case_summary(case: Case, *, calendar=None, now: dt.datetime | None = None, contact: bool = False) -> dict:
    """The public view of a case: personal data masked (in full with `contact`, for one who may see it), times in
    UTC ISO 8601; with a calendar, the clock."""
    clock = None
    if calendar is not None and case.accepted_at and case.due_at and case.state in ("accepted", "rework", "handled"):
        # the share of the time from acceptance to the (possibly extended) deadline used so far, in the unit of
        # the category's limit: green under 80 %, yellow up to the deadline, red past it
        from gridmap.workcal import clock as clock_of

        unit = workflow.limit_of(case.category)[1]
        colour, used = clock_of(calendar, utc(case.accepted_at), utc(case.due_at), unit,
                                now or dt.datetime.now(dt.timezone.utc))
        clock = {"colour": colour, "used": round(used, 3)}
    return {
        "id": case.id, "number": case.number, "title": case.title, "description": case.description,
        "category": case.category.code if case.category else None,
        "category_name": case.category.name if case.category else None,
        "source": case.source, "state": case.state, "address": case.address,
        "lon": case.lon, "lat": case.lat, "raw": {"x": case.raw_x, "y": case.raw_y, "crs": case.raw_crs},
        "district_code": case.district_code, "subdistrict_code": case.subdistrict_code,
        "community_code": case.community_code, "grid_code": case.grid_code, "microgrid_code": case.microgrid_code,
        "branch_id": case.branch_id, "assignee_id": case.assignee_id, "flags": case.locate_flags or [],
        "reporter_name": case.reporter_name if contact else _mask_name(case.reporter_name),
        "reporter_phone": case.reporter_phone if contact else mask_phone(case.reporter_phone),
        "reported_at": _iso(case.reported_at), "accepted_at": _iso(case.accepted_at),
        "due_at": _iso(case.due_at), "closed_at": _iso(case.closed_at), "version": case.version,
        "department_id": case.department_id, "handled_by": case.handled_by, "satisfaction": case.satisfaction,
        "escalation_level": case.escalation_level or 0, "pending": case.pending,
        "counts": {"rework": case.rework_count or 0, "bounce": case.bounce_count or 0,
                   "reopen": case.reopen_count or 0, "extension": case.extension_count or 0},
        "whistle": ({"department_id": case.department_id, "at": _iso(case.whistled_at),
                     "due_at": _iso(case.department_due_at), "reported_at": _iso(case.department_reported_at)}
                    if case.whistled_at else None),
        "clock": clock, "external_ref": case.external_ref, "reported_by_staff_id": case.reported_by_staff_id,
        "merged_into_id": case.merged_into_id,
    }


def case_history(case: Case) -> list[dict]:
    """The case's events, oldest first."""
    return [_event(e) for e in case.events]


def _event(e: CaseEvent) -> dict:
    return {"at": _iso(e.at), "actor": e.actor, "action": e.action, "from_state": e.from_state,
            "to_state": e.to_state, "detail": e.detail}


def full_history(session: Session, case: Case) -> list[dict]:
    """The case's history with the histories of the cases merged into it, in time order; entries of a merged
    case carry its `case_number`."""
    merged = dict(session.execute(sa.select(Case.id, Case.number).where(Case.merged_into_id == case.id)).all())
    if not merged:
        return case_history(case)
    events = list(case.events)
    events += session.scalars(sa.select(CaseEvent).where(CaseEvent.case_id.in_(merged)))
    events.sort(key=lambda e: (utc(e.at), e.id))
    return [{**_event(e), **({"case_number": merged[e.case_id]} if e.case_id in merged else {})} for e in events]


ROUTING_STEPS = ("dispatch", "reassign", "bounce", "whistle")


def routing(session: Session, case: Case) -> dict:
    """Where the case went and why: the grid chain with names, the party branch, the worker or department, the
    rule of the last routing step, and how the point was placed (method, flags such as `on_boundary`, the other
    candidate grids)."""
    from gridmap.tables import Area, PartyOrg, Staff

    codes = [c for c in (case.district_code, case.subdistrict_code, case.community_code, case.grid_code,
                         case.microgrid_code) if c]
    names = dict(session.execute(sa.select(Area.code, Area.name).where(
        Area.code.in_(codes), Area.generation_id == case.generation_id)).all()) if codes else {}
    chain = [{"level": level, "code": getattr(case, column.key), "name": names.get(getattr(case, column.key))}
             for level, column in LEVEL_COLUMNS.items() if getattr(case, column.key)]
    branch = session.get(PartyOrg, case.branch_id) if case.branch_id else None
    worker = session.get(Staff, case.assignee_id) if case.assignee_id else None
    department = session.get(Department, case.department_id) if case.department_id else None
    located = next((e for e in case.events if e.action == "located"), None)
    routed = next((e for e in reversed(case.events) if e.action in ROUTING_STEPS), None)
    flags = case.locate_flags or []
    method = "address" if "placed_by_address" in flags else "coordinates"
    return {
        "chain": chain,
        "branch": {"id": branch.id, "name": branch.name, "secretary": branch.secretary_name} if branch else None,
        "worker": {"id": worker.id, "name": worker.name, "phone": mask_phone(worker.phone)} if worker else None,
        "department": {"code": department.code, "name": department.name} if department else None,
        "rule": (routed.detail or {}).get("rule") if routed else None,
        "routed_by": {"action": routed.action, "at": _iso(routed.at), "actor": routed.actor,
                      "reason": (routed.detail or {}).get("reason")} if routed else None,
        "located": {"method": method, "flags": flags,
                    "candidates": ((located.detail or {}).get("candidates") or []) if located else [],
                    "crs": ((located.detail or {}).get("crs")) if located else case.raw_crs},
    }


def _mask_name(name: str | None) -> str | None:
    return name[0] + "*" * max(len(name) - 1, 1) if name else name


def _iso(value: dt.datetime | None) -> str | None:
    value = utc(value)
    return value.isoformat().replace("+00:00", "Z") if value else None
