"""Cases: intake (located, filed and routed by the rules, at most once per idempotency key).

A case with a location inside a grid and a category is filed and dispatched at once: events to the grid's worker
(先属地), components to the owning department (先属主), both under the grid's party branch. The other steps of the
loop are `gridmap.cases.workflow`; lists, queues and reading one case are `gridmap.cases.queries`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, overload

import sqlalchemy as sa
from sqlalchemy import orm
from sqlalchemy.orm import Session, selectinload

from gridmap.calendar import china_date
from gridmap.cases import workflow
from gridmap.errors import Conflict, InvalidInput, NotFound
from gridmap.geo import crs as gcrs
from gridmap.geo.index import AreaIndex, Location
from gridmap.locating.locate import LocateOptions, _alternative_reading, to_wgs84_checked
from gridmap.store.partitions import cases_by_id
from gridmap.store.tables import (
    CASE_SOURCES,
    CASE_STATES,
    FINISHED_STATES,
    Case,
    CaseCategory,
    CaseEvent,
    IdempotencyKey,
)
from gridmap.textcheck import MAX_ADDRESS, clean_phone, clean_text

NOT_RUNNING = (*FINISHED_STATES, "suspended")  # no clock runs
RUNNING = tuple(s for s in CASE_STATES if s not in NOT_RUNNING)
PSEUDO_STATES = {"open": "not finished", "overdue": "running past its deadline"}
LEVEL_COLUMNS = {
    "district": Case.district_code,
    "subdistrict": Case.subdistrict_code,
    "community": Case.community_code,
    "grid": Case.grid_code,
    "microgrid": Case.microgrid_code,
}
MAX_TEXT = 4000
STATE_ZH = {
    "reported": "待处理",
    "filed": "已立案",
    "rejected": "不予受理",
    "voided": "已作废",
    "dispatched": "已派遣",
    "accepted": "已签收",
    "handled": "已处置",
    "rework": "返工",
    "suspended": "挂账",
    "closed": "已结案",
    "merged": "已合并",
}
SOURCE_ZH = {
    "hotline": "12345热线",
    "miniprogram": "随手拍",
    "patrol": "网格员巡查",
    "referral": "上级转办",
    "api": "系统接口",
    "open311": "311开放接口",
}
# case numbers: a prefix by channel, the China date of intake, the sequence (the row id for new cases)
SOURCE_PREFIX = {"hotline": "RX", "miniprogram": "SP", "patrol": "XC", "referral": "ZB", "api": "JK", "open311": "KF"}
DEAD_END_RADIUS_M = 1000.0  # a point in no grid: the grids this close are offered to correct it with
MAX_CANDIDATES = 5


def case_number(source: str, at: dt.datetime, seq: int) -> str:
    """The one format of case numbers, demo and new alike: the channel's prefix, the date in China (the day the
    case came in, as people there count days) and a sequence of at least 7 digits — `RX202612060000123`.
    New cases use their row id as the sequence, so two intakes at once can never get the same number."""
    return f"{SOURCE_PREFIX.get(source, 'AJ')}{china_date(at):%Y%m%d}{seq:07d}"


def candidates_of(index: AreaIndex, location: Location, lon: float, lat: float) -> list[dict[str, Any]]:
    """The grids near the point other than the one it was given, nearest first, as {code, name, distance_m}: the
    other grids on a shared edge (0 m), those within the near distance, the others within the nearest distance;
    for a point in no grid at all, the nearest grids within `DEAD_END_RADIUS_M` (to correct its location with)."""
    own = location.leaf_code
    seen: dict[str, float] = {}
    for code in location.candidates:
        seen.setdefault(code, 0.0)
    for near in location.near:
        seen.setdefault(near["code"], float(near["distance_m"]))
    if not location.chain:
        for code, distance in index.leaves_within(lon, lat, DEAD_END_RADIUS_M)[:MAX_CANDIDATES]:
            seen.setdefault(code, distance)
    if own is not None:
        seen.pop(own, None)
    out = []
    for code, distance in sorted(seen.items(), key=lambda kv: (kv[1], kv[0])):
        ref = index.by_code.get(code)
        out.append(
            {
                "code": code,
                "name": ref.name if ref else None,
                "level": ref.level if ref else None,
                "distance_m": round(distance, 1),
            }
        )
    return out


def candidates_now(
    index: AreaIndex | None, case: Case, options: LocateOptions | None = None
) -> list[dict[str, Any]] | None:
    """For a case stored without candidates (before revision 0006) that lies in no grid: the grids near its point
    now, to correct it with; None when the stored ones stand."""
    if index is None or case.locate_candidates is not None or case.grid_code or case.lon is None or case.lat is None:
        return None
    options = options or LocateOptions()
    location = index.locate(case.lon, case.lat, near_m=options.near_m, nearest_m=options.nearest_m)
    return candidates_of(index, location, case.lon, case.lat)


def locate_for_case(
    index: AreaIndex, lon: float, lat: float, system: gcrs.CoordinateSystem, options: LocateOptions
) -> tuple[Location, list[str], list[dict[str, Any]]]:
    """Where a case's point lies, exactly as `GET /locate` answers it with the same options (nearest-grid
    assignment within `nearest_m`, `near_boundary` within `near_m`, a second reading of the datum): the
    location, every flag, and the candidates."""
    location = index.locate(lon, lat, near_m=options.near_m, nearest_m=options.nearest_m)
    flags = list(location.flags)
    alternative = _alternative_reading(index, lon, lat, system, location)
    if alternative:
        flags.append(alternative[0])
    return location, flags, candidates_of(index, location, lon, lat)


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


@overload
def utc(value: dt.datetime) -> dt.datetime: ...
@overload
def utc(value: None) -> None: ...
@overload
def utc(value: dt.datetime | None) -> dt.datetime | None: ...


def utc(value: dt.datetime | None) -> dt.datetime | None:
    """Datetimes are stored in UTC; SQLite hands them back naive."""
    if value is None:
        return None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def check_new_case_text(new: NewCase) -> NewCase:
    """The case's texts checked (length first, then control, bidi and invisible-only text; NFC) and its phone as
    ASCII digits: the one check every intake channel passes through, before anything is located or stored."""
    title = clean_text(new.title, "title", 200)
    if title is None:  # (a title of None: it is required)
        raise InvalidInput("title: required, 1 to 200 characters", field="title", zh="标题：必填，1 至 200 字。")
    return dataclasses.replace(
        new,
        title=title.strip(),
        description=clean_text(new.description, "description", MAX_TEXT, multiline=True, required=False),
        address=clean_text(new.address, "address", MAX_ADDRESS, required=False),
        reporter_name=clean_text(new.reporter_name, "reporter_name", 64, required=False),
        reporter_phone=clean_phone(new.reporter_phone, "reporter_phone"),
        external_ref=clean_text(new.external_ref, "external_ref", 64, required=False),
    )


def _check_new_case(session: Session, new: NewCase) -> CaseCategory | None:
    if new.source not in CASE_SOURCES:
        raise InvalidInput(
            f"source: {new.source!r} is not a channel; accepted: {', '.join(CASE_SOURCES)}",
            field="source",
            zh=f"来源：{new.source!r} 不是上报渠道；可选："
            f"{'、'.join(f'{SOURCE_ZH.get(s, s)}（{s}）' for s in CASE_SOURCES)}。",
        )
    if new.category is None:
        return None
    category = session.scalars(sa.select(CaseCategory).where(CaseCategory.code == new.category)).first()
    if category is None:
        raise InvalidInput(
            f"category: {new.category!r} is not a category code",
            field="category",
            zh=f"事项类别：{new.category!r} 不是事项类别编码。",
            see="categories",
        )
    if category.active is False:
        raise InvalidInput(
            f"category: {new.category} ({category.name}) is retired",
            field="category",
            zh=f"事项类别：{new.category}（{category.name}）已停用。",
            see="categories",
        )
    return category


def create_case(
    session: Session,
    index: AreaIndex,
    new: NewCase,
    *,
    actor: str = "api",
    now: dt.datetime | None = None,
    options: LocateOptions | None = None,
) -> Case:
    """File a case: validate, convert the point to WGS84, locate it exactly as `GET /locate` does (`options`: the
    same distances; the defaults are the locate route's), assign it, and record its history."""
    new = check_new_case_text(new)
    category = _check_new_case(session, new)
    system = gcrs.parse_crs(new.crs)
    options = options or LocateOptions()
    # refused, naming lon/lat, when far outside the service area (a case 8,000 km away is a mistake, not a case)
    lon, lat = to_wgs84_checked(index, new.lon, new.lat, system, options)
    location, flags, candidates = locate_for_case(index, lon, lat, system, options)
    # in UTC: SQLite stores a time's wall clock whatever its zone (a +08:00 report would read back 8 h off)
    now = utc(now) if now else dt.datetime.now(dt.UTC)
    case = Case(
        number=f"new-{uuid.uuid4().hex[:28]}",
        title=new.title.strip(),
        description=new.description,
        category_id=category and category.id,
        source=new.source,
        state="reported",
        address=new.address,
        raw_x=new.lon,
        raw_y=new.lat,
        raw_crs=system.name,
        lon=lon,
        lat=lat,
        geom=f"SRID=4326;POINT({lon!r} {lat!r})",
        reporter_name=new.reporter_name,
        reporter_phone=new.reporter_phone,
        reported_at=utc(new.reported_at) if new.reported_at else now,
        external_ref=new.external_ref,
        reported_by_staff_id=new.reported_by_staff_id,
        generation_id=index.generation_id,
        locate_flags=[*flags, *new.extra_flags],
        locate_candidates=candidates,
    )
    _apply_location(case, location)
    if not location.chain:
        _claim_dead_end(case, index, candidates)
    session.add(case)
    session.flush()
    case.number = case_number(new.source, now, case.id)  # readable and unique: channel, China date, row id
    reported = {"source": new.source, **({"external_ref": new.external_ref} if new.external_ref else {})}
    _record(session, case, case.reported_at, actor, "reported", None, "reported", reported)
    located = {
        "flags": case.locate_flags,
        "candidates": candidates,
        "crs": system.name,
        "method": location.method,
        **({"distance_m": location.distance_m} if location.distance_m is not None else {}),
    }
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
        if case.assignee_id is not None:
            from gridmap.cases import notifications

            notifications.notify_holder(session, case, "assigned", actor="system", now=now)
    session.flush()
    return case


def _claim_dead_end(case: Case, index: AreaIndex, candidates: list[dict[str, Any]]) -> None:
    """A point in no grid belongs to the areas every grid near it shares (the district at least, the sub-district
    or community when all its candidates lie in one), so the dispatchers who must correct it see it; its grid and
    micro-grid stay empty until they do."""
    chains = [index.chain_of(c["code"]) for c in candidates if c.get("code") in index.by_code]
    if not chains:
        return
    for level, column in LEVEL_COLUMNS.items():
        if level in ("grid", "microgrid"):
            break
        codes = {next((a.code for a in chain if a.level == level), None) for chain in chains}
        if len(codes) != 1 or None in codes:
            break
        setattr(case, column.key, codes.pop())


def _apply_location(case: Case, location: Location) -> None:
    for level, column in LEVEL_COLUMNS.items():
        ref = location.at_level(level)
        setattr(case, column.key, ref.code if ref else None)


def _record(
    session: Session,
    case: Case,
    at: dt.datetime,
    actor: str,
    action: str,
    from_state: str | None,
    to_state: str | None,
    detail: dict[str, Any] | None,
) -> None:
    session.add(
        CaseEvent(
            case_id=case.id, at=at, actor=actor, action=action, from_state=from_state, to_state=to_state, detail=detail
        )
    )


def request_hash(new: NewCase, extra: dict[str, Any] | None = None) -> str:
    """A digest of a submission, to tell a retry (same body) from a reuse of its idempotency key."""
    body = json.dumps([dataclasses.asdict(new), extra or {}], sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(body.encode()).hexdigest()


def create_case_once(
    sessionmaker: orm.sessionmaker[Session],
    index: AreaIndex,
    new: NewCase,
    key: str | None,
    *,
    actor: str = "api",
    now: dt.datetime | None = None,
    then: Callable[[Session, Case], object] | None = None,
    extra: dict[str, Any] | None = None,
    options: LocateOptions | None = None,
) -> tuple[Case, bool]:
    """File a case at most once per idempotency key `key`; returns (case, created). The same key with a different body
    (the case and `extra`) is refused. Two retries racing each other both get the one case: the key's primary key
    decides. `then(session, case)` runs in the same transaction (a patrol worker handling it on the spot): if it
    raises, nothing is stored."""
    if key is not None and not (1 <= len(key) <= 200 and key.isprintable()):
        raise InvalidInput(
            "idempotency key: 1 to 200 printable characters, e.g. a UUID",
            field="idempotency_key",
            zh="幂等键：应为 1–200 个可打印字符，如一个 UUID。",
        )
    digest = request_hash(new, extra)
    for _ in range(3):
        try:
            with sessionmaker() as session, session.begin():
                if key is not None:
                    seen = session.get(IdempotencyKey, key)
                    if seen is not None:
                        if seen.request_hash != digest:
                            raise InvalidInput(
                                "idempotency key: already used for a different submission; use a "
                                "new key for a new case",
                                field="idempotency_key",
                                zh="幂等键已用于另一次提交；新案件请用新的键。",
                            )
                        return get_case(session, seen.case_id), False
                case = create_case(session, index, new, actor=actor, now=now, options=options)
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
    raise Conflict(
        "idempotency key: the submission is being processed; retry in a moment",
        field="idempotency_key",
        zh="幂等键：该提交正在处理中，请稍后重试。",
    )


def get_case(session: Session, case_id: int) -> Case:
    """One case with its history; `NotFound` when there is none."""
    case = session.scalars(
        sa.select(Case)
        .options(selectinload(Case.events), selectinload(Case.category))
        .where(cases_by_id(session, [case_id]))
    ).first()
    if case is None:
        raise NotFound(f"case id: no case has id {case_id}", field="id", zh=f"没有编号为 {case_id} 的案件。")
    return case


def reporter_token(key: str | None) -> str:
    """The token a reporter rates the case with: derived from the submission's idempotency key when there is one
    (so a retried submission is answered with the same token), random otherwise. Only its digest is stored."""
    if key:
        return hashlib.sha256(f"gridmap-reporter:{key}".encode()).hexdigest()[:32]
    return uuid.uuid4().hex


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()
