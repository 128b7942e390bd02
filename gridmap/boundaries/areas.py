"""Areas of the hierarchy: queries by level, parent, descendants and box; one area with its branch and staff."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import numpy as np
import shapely
import sqlalchemy as sa
from geoalchemy2.shape import to_shape
from sqlalchemy.orm import Session, aliased

from gridmap.calendar import china_date
from gridmap.errors import DatabaseNotReady, InvalidInput, NotFound
from gridmap.geo.index import AreaColumns, AreaIndex
from gridmap.store import dialect as _spatial
from gridmap.store.tables import (
    LEVEL_NAMES_ZH,
    LEVELS,
    Area,
    Generation,
    PartyOrg,
    PartyOrgArea,
    Place,
    Staff,
    StaffArea,
)

STAFF_ROLES_ZH = {
    "grid_head": "网格长",
    "fulltime_worker": "专职网格员",
    "parttime_worker": "兼职网格员",
    "police": "社区民警",
    "building_head": "楼栋长",
    "volunteer": "志愿者",
    "community_secretary": "社区书记",
    "community_director": "社区主任",
}
# the same in English, for pages in English (no raw codes on a page)
STAFF_ROLES_EN = {
    "grid_head": "Grid head",
    "fulltime_worker": "Full-time grid worker",
    "parttime_worker": "Part-time grid worker",
    "police": "Community police officer",
    "building_head": "Building head",
    "volunteer": "Volunteer",
    "community_secretary": "Community Party secretary",
    "community_director": "Community director",
}


def active_generation(session: Session) -> Generation:
    """The generation in force now; raises `DatabaseNotReady` when there is none."""
    gen = session.scalars(
        sa.select(Generation).where(Generation.status == "active").order_by(Generation.id.desc()).limit(1)
    ).first()
    if gen is None:
        raise DatabaseNotReady(
            "no active boundary generation: load boundaries first (gridmap demo)",
            zh="尚无现行边界：请先导入边界（gridmap demo）。",
        )
    return gen


def check_level(level: str | None) -> str | None:
    """Validate a level name; the error lists the accepted ones."""
    if level is not None and level not in LEVELS:
        raise InvalidInput(
            f"level: {level!r} is not a level; accepted: {', '.join(LEVELS)}",
            field="level",
            zh=f"层级：{level!r} 不是层级；可选："
            f"{'、'.join(LEVEL_NAMES_ZH.get(x, x) for x in LEVELS)}（{', '.join(LEVELS)}）。",
        )
    return level


def check_bbox(text: str | None) -> tuple[float, float, float, float] | None:
    """Parse 'minx,miny,maxx,maxy' in WGS84 degrees."""
    if text is None:
        return None
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 4 or not all(np.isfinite(values)):
        raise InvalidInput(
            f"bbox: {text!r} is not four finite numbers 'minlon,minlat,maxlon,maxlat'",
            field="bbox",
            zh=f"范围（bbox）：{text!r} 应为四个数：最小经度,最小纬度,最大经度,最大纬度。",
        )
    minx, miny, maxx, maxy = values
    if not (-180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90):
        raise InvalidInput(
            f"bbox: {text!r} must satisfy -180<=minlon<=maxlon<=180 and -90<=minlat<=maxlat<=90",
            field="bbox",
            zh=f"范围（bbox）：{text!r} 须满足 -180≤最小经度≤最大经度≤180、-90≤最小纬度≤最大纬度≤90。",
        )
    return minx, miny, maxx, maxy


def get_area(session: Session, code: str, generation_id: int | None = None) -> Area:
    """The area with `code` in a generation (the active one by default); `NotFound` otherwise."""
    generation_id = generation_id or active_generation(session).id
    area = session.scalars(sa.select(Area).where(Area.generation_id == generation_id, Area.code == code)).first()
    if area is None:
        raise NotFound(f"area code: no area has code {code!r}", field="code", zh=f"没有编码为 {code!r} 的区域。")
    return area


def find_areas(
    session: Session,
    *,
    level: str | None = None,
    parent: str | None = None,
    under: str | None = None,
    bbox: tuple[float, float, float, float] | None = None,
    generation_id: int | None = None,
    limit: int | None = None,
) -> list[tuple[Area, str | None]]:
    """Areas matching every given filter, each with its parent's code; `parent` = direct children,
    `under` = all descendants (codes are hierarchical, so descendants share the code as a prefix)."""
    check_level(level)
    generation_id = generation_id or active_generation(session).id
    parent_area = aliased(Area)
    query = (
        sa.select(Area, parent_area.code)
        .outerjoin(parent_area, Area.parent_id == parent_area.id)
        .where(Area.generation_id == generation_id)
        .order_by(Area.code)
    )
    if level:
        query = query.where(Area.level == level)
    if parent:
        query = query.where(Area.parent_id == get_area(session, parent, generation_id).id)
    if under:
        get_area(session, under, generation_id)
        query = query.where(Area.code.startswith(under, autoescape=True), Area.code != under)
    if bbox:
        query = query.where(_spatial.bbox_filter(session, "area", bbox))
    if limit:
        query = query.limit(limit)
    return [(row[0], row[1]) for row in session.execute(query)]


def ancestors(area: Area) -> list[dict[str, Any]]:
    """The areas above one, the district first."""
    out: list[dict[str, Any]] = []
    parent = area.parent
    while parent is not None:
        out.insert(0, {"code": parent.code, "name": parent.name, "level": parent.level})
        parent = parent.parent
    return out


def geometry_of(area: Area | Place, precision: int = 6) -> shapely.Geometry:
    """The stored geometry as shapely, coordinates rounded to `precision` decimals (6 ≈ 0.1 m)."""
    geom = to_shape(area.geom)
    return shapely.transform(geom, lambda xy: np.round(xy, precision)) if precision is not None else geom


def load_index(session: Session, generation_id: int | None = None) -> AreaIndex:
    """Build the in-memory lookup index of a generation (the active one by default)."""
    generation_id = generation_id or active_generation(session).id
    dbapi = session.connection().connection.driver_connection
    assert dbapi is not None  # a connection checked out of the pool
    sqlite = session.get_bind().dialect.name == "sqlite"
    cursor = dbapi.cursor()
    try:
        cursor.execute(
            "SELECT id, level, code, name, parent_id, "
            + ("AsBinary(geom) FROM area WHERE generation_id = ? " if sqlite else "ST_AsBinary(geom) FROM area ")
            + ("" if sqlite else "WHERE generation_id = %s ")
            + "ORDER BY id",
            (generation_id,),
        )
        rows = cursor.fetchall()
    finally:
        cursor.close()
    return index_from_rows([(r[0], r[1], r[2], r[3], r[5], r[4]) for r in rows], generation_id)


def index_from_rows(rows: list[tuple[Any, ...]], generation_id: int | None) -> AreaIndex:
    """The index of a generation's areas given as rows (id, level, code, name, WKB or EWKB, parent id): columns
    handed to `AreaIndex` as `AreaColumns`, only the leaves' geometries decoded (in one vectorised call)."""
    code_of = {r[0]: r[2] for r in rows}
    columns = AreaColumns(
        [r[0] for r in rows],
        [r[1] for r in rows],
        [r[2] for r in rows],
        [r[3] for r in rows],
        [code_of.get(r[5]) for r in rows],
    )
    return AreaIndex(columns, [r[4] for r in rows], generation_id)


def covering_leaf_codes(session: Session, lon: float, lat: float, generation_id: int) -> list[str]:
    """The SQL twin of `AreaIndex.leaf_codes_at`: same codes, same order, computed by the database."""
    sql = _spatial.covering_leaf_codes_sql(session)
    return list(session.scalars(sql, {"lon": lon, "lat": lat, "generation": generation_id}))


@dataclass
class Branch:
    """A party organisation responsible for an area, as shown to users."""

    id: int
    kind: str
    name: str
    secretary: str | None
    member_count: int
    reporting_member_count: int

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def branch_for(session: Session, area_code: str, on: dt.date | None = None) -> Branch | None:
    """The party organisation assigned to `area_code` on a date (today in China by default)."""
    on = on or china_date()
    row = session.scalars(
        sa.select(PartyOrg)
        .join(PartyOrgArea, PartyOrgArea.party_org_id == PartyOrg.id)
        .where(PartyOrgArea.area_code == area_code)
        .where(sa.or_(PartyOrgArea.valid_from.is_(None), PartyOrgArea.valid_from <= on))
        .where(sa.or_(PartyOrgArea.valid_to.is_(None), PartyOrgArea.valid_to > on))
        .order_by(PartyOrg.id)
        .limit(1)
    ).first()
    if row is None:
        return None
    return Branch(row.id, row.kind, row.name, row.secretary_name, row.member_count, row.reporting_member_count)


def mask_phone(phone: str | None) -> str | None:
    """138****1234: personal phone numbers are never shown in full in lists and maps.

    >>> mask_phone("13812341234")
    '138****1234'
    """
    if not phone:
        return phone
    return phone[:3] + "****" + phone[-4:] if len(phone) >= 8 else "****"


def staff_for(session: Session, area_code: str) -> list[dict[str, Any]]:
    """The people serving an area, with their role (in Chinese and English) and a masked phone."""
    rows = session.execute(
        sa.select(Staff, StaffArea.role)
        .join(StaffArea, StaffArea.staff_id == Staff.id)
        .where(StaffArea.area_code == area_code)
        .order_by(StaffArea.id)
    ).all()
    return [
        {
            "id": s.id,
            "name": s.name,
            "role": role,
            "role_zh": STAFF_ROLES_ZH.get(role, role),
            "role_en": STAFF_ROLES_EN.get(role, role),
            "phone": mask_phone(s.phone),
        }
        for s, role in rows
    ]


PEOPLE_SLICE = 10_000  # rows of `people_directory` between two pauses (a province's: ~0.02 s of work)

People = tuple[dict[str, Any] | None, list[dict[str, Any]]]


class PeopleDirectory(Mapping[str, People]):
    """Branch and staff of every area that has either, as `people_directory` read them: `directory[code]` is the
    area's branch (`Branch.as_dict()`, or None) and its staff (as `staff_for` has them: in assignment order), made
    anew from the rows kept at each lookup — a locate looks up one area, and a province has 270,000 branches and
    480,000 assignments: a dict of each, made at the load, took ~1 s of every worker's start and of every reload."""

    def __init__(self, branches: dict[str, tuple[Any, ...]], staff: dict[str, list[tuple[Any, ...]]]):
        self._branches = branches  # area code → (code, id, kind, name, secretary, members, reporting members)
        self._staff = staff  # area code → [(code, assignment id, id, name, phone, role), …] in no order
        self._size = len(branches) + sum(1 for code in staff if code not in branches)

    def __contains__(self, code: object) -> bool:  # without making the area's dicts
        return code in self._branches or code in self._staff

    def __getitem__(self, code: str) -> People:
        branch, staff = self._branches.get(code), self._staff.get(code)
        if branch is None and staff is None:
            raise KeyError(code)
        return (
            None if branch is None else Branch(*branch[1:]).as_dict(),
            [
                {
                    "id": person_id,
                    "name": name,
                    "role": role,
                    "role_zh": STAFF_ROLES_ZH.get(role, role),
                    "role_en": STAFF_ROLES_EN.get(role, role),
                    "phone": mask_phone(phone),
                }
                for _, _, person_id, name, phone, role in sorted(staff or (), key=itemgetter(1))
            ],
        )

    def __iter__(self) -> Iterator[str]:
        yield from self._branches
        yield from (code for code in self._staff if code not in self._branches)

    def __len__(self) -> int:
        return self._size


def people_directory(
    session: Session, on: dt.date | None = None, *, pause: Callable[[], None] | None = None
) -> PeopleDirectory:
    """Branch and staff of every area that has either, on a date, in two queries: the same answers as
    `branch_for` and `staff_for` area by area (the branch with the smallest id wins, staff in assignment order).
    `pause`: called before each query and every PEOPLE_SLICE rows (a background load giving way to answers).

    The rows are read from the driver PEOPLE_SLICE at a time, in no order (the smallest branch id kept as they
    come, an area's staff put in order when it is looked up), and kept as they come. On the province this took
    3.0-3.6 s on either database when every row was fetched through SQLAlchemy's result, a dict made for every
    branch and person, and PostgreSQL sorted the 480,000 assignments and 270,000 branches first (~1 s of it)."""
    on = on or china_date()
    pause = pause or (lambda: None)
    pause()
    branches: dict[str, tuple[Any, ...]] = {}
    staff: dict[str, list[tuple[Any, ...]]] = {}
    query = (
        sa.select(
            PartyOrgArea.area_code,
            PartyOrg.id,
            PartyOrg.kind,
            PartyOrg.name,
            PartyOrg.secretary_name,
            PartyOrg.member_count,
            PartyOrg.reporting_member_count,
        )
        .join(PartyOrg, PartyOrgArea.party_org_id == PartyOrg.id)
        .where(sa.or_(PartyOrgArea.valid_from.is_(None), PartyOrgArea.valid_from <= on))
        .where(sa.or_(PartyOrgArea.valid_to.is_(None), PartyOrgArea.valid_to > on))
    )
    for rows in _slices(session, query):
        for row in rows:
            kept = branches.get(row[0])
            if kept is None or row[1] < kept[1]:  # the smallest id of the area's branches
                branches[row[0]] = row
        pause()
    staff_query = sa.select(StaffArea.area_code, StaffArea.id, Staff.id, Staff.name, Staff.phone, StaffArea.role).join(
        Staff, StaffArea.staff_id == Staff.id
    )
    for rows in _slices(session, staff_query):
        for row in rows:
            found = staff.get(row[0])
            if found is None:
                staff[row[0]] = [row]
            else:
                found.append(row)
        pause()
    return PeopleDirectory(branches, staff)


def _slices(session: Session, query: sa.Select[*tuple[Any, ...]]) -> Iterator[Sequence[Any]]:
    """The rows of `query` as the driver gives them (tuples: plain columns need no conversion), PEOPLE_SLICE at a
    time, on the session's connection (not through the ORM, which reads every row before handing out the first)."""
    result = session.connection().execute(query)
    try:
        while rows := result.cursor.fetchmany(PEOPLE_SLICE):
            yield rows
    finally:
        result.close()


def count_places(session: Session, area_code: str) -> dict[str, int]:
    """How many places of each kind lie in an area (by code prefix)."""
    rows = session.execute(
        sa.select(Place.kind, sa.func.count())
        .where(Place.area_code.startswith(area_code, autoescape=True))
        .group_by(Place.kind)
    ).all()
    return dict(rows)
