"""The schema: one set of SQLAlchemy 2 tables with geoalchemy2 geometry columns, for SpatiaLite and PostGIS.

Geometry is stored in EPSG:4326 (longitude, latitude). Areas (district → micro-grid) belong to one boundary
*generation*: a redraw loads a new generation as a draft and activates it on a date, never editing the old one in
place, so a case reported last year is still attributed to the grid that was in force then (mapit's model).
Assignments of party organisations and staff point at area *codes*, the stable identifiers users type and print,
so they survive a redraw that keeps the code.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from geoalchemy2 import Geometry
from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy import false as sa_false
from sqlalchemy import text as sa_text
from sqlalchemy import true as sa_true
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    """Declarative base of every gridmap table."""


class Level(enum.StrEnum):
    """Levels of the area hierarchy, outermost first."""

    district = "district"
    subdistrict = "subdistrict"
    community = "community"
    grid = "grid"
    microgrid = "microgrid"


LEVELS: tuple[str, ...] = tuple(level.value for level in Level)
LEVEL_NAMES_ZH = {"district": "区", "subdistrict": "街道", "community": "社区", "grid": "网格", "microgrid": "微网格"}
# digits of an area code by level (DB11 shape: district 6 digits of GB/T 2260, then 3 per sub-district, community and
# grid, and 2 per micro-grid, or 3 in districts with more than 99 per grid)
CODE_DIGITS: dict[str, tuple[int, ...]] = {
    "district": (6,),
    "subdistrict": (9,),
    "community": (12,),
    "grid": (15,),
    "microgrid": (17, 18),
}


class CaseState(enum.StrEnum):
    """States of the case loop (GB/T 30428 steps); issue #4 adds the guarded transitions between them."""

    reported = "reported"  # 上报, collected but not yet filed
    filed = "filed"  # 立案
    rejected = "rejected"  # 不予受理
    voided = "voided"  # 作废
    dispatched = "dispatched"  # 派遣
    accepted = "accepted"  # 签收
    handled = "handled"  # 处置反馈
    rework = "rework"  # 返工
    suspended = "suspended"  # 挂账
    closed = "closed"  # 结案
    merged = "merged"  # 合并 into another case reporting the same problem


CASE_STATES: tuple[str, ...] = tuple(state.value for state in CaseState)
FINISHED_STATES: tuple[str, ...] = ("closed", "rejected", "voided", "merged")  # no more work; Open311 `closed`
CASE_SOURCES: tuple[str, ...] = ("hotline", "miniprogram", "patrol", "referral", "api", "open311")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Generation(Base):
    """One version of all boundaries: draft, active (exactly one at a time) or retired."""

    __tablename__ = "generation"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default="draft")
    effective_from: Mapped[dt.date | None] = mapped_column(Date)
    effective_to: Mapped[dt.date | None] = mapped_column(Date)
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)
    # the generation a draft was copied from
    base_id: Mapped[int | None] = mapped_column(ForeignKey("generation.id"), index=True)
    created_by: Mapped[str | None] = mapped_column(String(64))
    submitted_by: Mapped[str | None] = mapped_column(String(64))
    submitted_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    approved_by: Mapped[str | None] = mapped_column(String(64))
    approved_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    activated_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class Area(Base):
    """A district, sub-district, community, grid or micro-grid of one generation."""

    __tablename__ = "area"
    __table_args__ = (
        UniqueConstraint("generation_id", "code", name="uq_area_generation_code"),
        Index("ix_area_generation_level", "generation_id", "level"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    generation_id: Mapped[int] = mapped_column(ForeignKey("generation.id"))
    level: Mapped[str] = mapped_column(String(16))
    code: Mapped[str] = mapped_column(String(24))
    name: Mapped[str] = mapped_column(String(200))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("area.id"), index=True)
    households: Mapped[int] = mapped_column(Integer, default=0)
    population: Mapped[int] = mapped_column(Integer, default=0)
    area_m2: Mapped[float] = mapped_column(Float, default=0.0)
    is_leaf: Mapped[bool] = mapped_column(Boolean, default=True)
    locked: Mapped[bool] = mapped_column(Boolean, default=False, server_default=sa_false())  # no edits in a draft
    geom = mapped_column(Geometry("MULTIPOLYGON", srid=4326, spatial_index=True), nullable=False)

    parent: Mapped[Area | None] = relationship(remote_side=[id])


class PartyOrg(Base):
    """A party organisation: sub-district working committee, community committee, grid branch, building group."""

    __tablename__ = "party_org"
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(200))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("party_org.id"), index=True)
    secretary_name: Mapped[str | None] = mapped_column(String(64))
    secretary_phone: Mapped[str | None] = mapped_column(String(32))
    member_count: Mapped[int] = mapped_column(Integer, default=0)
    reporting_member_count: Mapped[int] = mapped_column(Integer, default=0)  # 在职党员双报到
    merge_into_id: Mapped[int | None] = mapped_column(ForeignKey("party_org.id"), index=True)  # marked for merging into


class PartyOrgArea(Base):
    """Which area (by stable code) a party organisation is responsible for, and since when."""

    __tablename__ = "party_org_area"
    id: Mapped[int] = mapped_column(primary_key=True)
    party_org_id: Mapped[int] = mapped_column(ForeignKey("party_org.id"), index=True)
    area_code: Mapped[str] = mapped_column(String(24), index=True)
    valid_from: Mapped[dt.date | None] = mapped_column(Date)
    valid_to: Mapped[dt.date | None] = mapped_column(Date)


class Staff(Base):
    """A person working for the grids: grid head, full- or part-time worker, police officer, building head,
    volunteer."""

    __tablename__ = "staff"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    phone: Mapped[str | None] = mapped_column(String(32))
    party_member: Mapped[bool] = mapped_column(Boolean, default=False)


class StaffArea(Base):
    """One role a person holds in one area (by code); one person may serve several grids."""

    __tablename__ = "staff_area"
    id: Mapped[int] = mapped_column(primary_key=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id"), index=True)
    area_code: Mapped[str] = mapped_column(String(24), index=True)
    role: Mapped[str] = mapped_column(String(32))


class Place(Base):
    """A residential compound, building, party-mass service centre or other place with an address."""

    __tablename__ = "place"
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), index=True)
    name: Mapped[str] = mapped_column(String(200))
    address: Mapped[str | None] = mapped_column(String(300))
    area_code: Mapped[str | None] = mapped_column(String(24), index=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("place.id"), index=True)
    households: Mapped[int] = mapped_column(Integer, default=0)
    attributes: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    geom = mapped_column(Geometry("POINT", srid=4326, spatial_index=True), nullable=False)


class Department(Base):
    """A functional department (职能部门) that answers escalations."""

    __tablename__ = "department"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    phone: Mapped[str | None] = mapped_column(String(32))


class CaseCategory(Base):
    """A minor class of events or components, with its time limit and responsible department."""

    __tablename__ = "case_category"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    kind: Mapped[str] = mapped_column(String(16))  # event | component | service
    major_class: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(128))
    time_limit: Mapped[int] = mapped_column(Integer)
    time_unit: Mapped[str] = mapped_column(String(16))  # work_hours | work_days | calendar_days
    urgency: Mapped[str] = mapped_column(String(16), default="normal")
    filing_condition: Mapped[str | None] = mapped_column(Text)
    department_id: Mapped[int | None] = mapped_column(ForeignKey("department.id"), index=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=sa_true())  # retired: no new cases

    department: Mapped[Department | None] = relationship()


# The cases the overdue sweep may escalate (`gridmap.cases.workflow.overdue_candidates`), as SQL text: the predicate of
# the partial index `ix_case_file_overdue` and of the sweep's query, written the same so that both databases see
# that the index holds every row the query asks for (SQLite needs the very terms; PostgreSQL proves it).
OVERDUE_CANDIDATES = "escalation_level = 0 AND state IN ('accepted', 'rework')"


class Case(Base):
    """A case (事件/案卷). The table is named case_file because CASE is an SQL keyword.

    On PostgreSQL (migration 0010) the table is partitioned by month of `reported_at` (China time), its primary key
    is (id, reported_at), and the uniqueness of ids, numbers and (source, external_ref) — declared below, as SQLite
    has it — is kept by the trigger-maintained `case_registry`, which the tables referencing a case reference
    (see gridmap/store/partitions.py and the migration's docstring)."""

    __tablename__ = "case_file"
    __table_args__ = (
        Index("ix_case_file_state_reported", "state", "reported_at"),
        Index("ix_case_file_due", "state", "due_at"),
        Index("uq_case_file_source_ref", "source", "external_ref", unique=True),
        Index("ix_case_file_category_reported", "category_id", "reported_at"),
        # a district's and a sub-district's case lists, counted and newest first (migration 0015): without them the
        # count of a sub-district read every case (2.3 s warm, 33 s cold on the 10 M-case province, PostGIS). The
        # district's on PostgreSQL only (SQLite, without histograms, took it over the state index for the queues)
        Index("ix_case_file_district_reported", "district_code", "reported_at").ddl_if(dialect="postgresql"),
        Index("ix_case_file_subdistrict_reported", "subdistrict_code", "reported_at"),
        # a district's queue counts and overdue list (migrations 0020 and, on SQLite, 0022): its cases in some states,
        # due before now, counted from the index alone; on SQLite the count of all its cases too
        Index("ix_case_file_district_state_due", "district_code", "state", "due_at"),
        # the measures' month ranges (migration 0009): covering for what the formulas read
        Index("ix_case_file_reported_grid", "reported_at", "grid_code"),
        Index(
            "ix_case_file_due_measures", "due_at", "grid_code", "state", "closed_at", "rework_count", "extension_count"
        ),
        Index("ix_case_file_closed_measures", "closed_at", "grid_code", "state", "reported_at"),
        # an area's year (migration 0019, PostgreSQL only): its grids' range first (the series' counts), so that a
        # district of a province reads its own cases' entries, not every district's of the year; and, made by the
        # migration only (an index on an expression), ix_case_file_closed_month for the series' hours
        Index(
            "ix_case_file_grid_reported",
            "grid_code",
            "reported_at",
            postgresql_include=["due_at", "state", "closed_at", "rework_count", "extension_count"],
        ).ddl_if(dialect="postgresql"),
        # the map's clusters of a period (migration 0016, SQLite only): what the grouping reads of each case, so that
        # a month of a province is read from the index alone instead of case by case from the table
        Index("ix_case_file_reported_map", "reported_at", "lon", "lat", "state", "due_at").ddl_if(dialect="sqlite"),
        # a district's map of a period (migration 0024, SQLite only): its cases one range, read from the index alone
        Index("ix_case_file_district_map", "district_code", "reported_at", "lon", "lat", "state", "due_at").ddl_if(
            dialect="sqlite"
        ),
        # an area's closures of a year for its hours to close (migration 0023, SQLite only): one range of the grid
        # codes, read from the index alone (PostgreSQL has 0019's by grid and month of closure)
        Index("ix_case_file_grid_closed", "grid_code", "closed_at", "state", "reported_at").ddl_if(dialect="sqlite"),
        # the overdue sweep's candidates only (migration 0014): it reads what it escalates, not every case
        Index(
            "ix_case_file_overdue",
            "due_at",
            "id",
            postgresql_where=sa_text(OVERDUE_CANDIDATES),
            sqlite_where=sa_text(OVERDUE_CANDIDATES),
        ),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(32), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    category_id: Mapped[int | None] = mapped_column(ForeignKey("case_category.id"))
    source: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    address: Mapped[str | None] = mapped_column(String(300))
    raw_x: Mapped[float | None] = mapped_column(Float)
    raw_y: Mapped[float | None] = mapped_column(Float)
    raw_crs: Mapped[str | None] = mapped_column(String(32))
    lon: Mapped[float | None] = mapped_column(Float)
    lat: Mapped[float | None] = mapped_column(Float)
    generation_id: Mapped[int | None] = mapped_column(ForeignKey("generation.id"), index=True)
    district_code: Mapped[str | None] = mapped_column(String(24))
    subdistrict_code: Mapped[str | None] = mapped_column(String(24))
    community_code: Mapped[str | None] = mapped_column(String(24), index=True)
    grid_code: Mapped[str | None] = mapped_column(String(24), index=True)
    microgrid_code: Mapped[str | None] = mapped_column(String(24))
    branch_id: Mapped[int | None] = mapped_column(ForeignKey("party_org.id"), index=True)
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"), index=True)
    locate_flags: Mapped[list[Any] | None] = mapped_column(JSON)
    reporter_name: Mapped[str | None] = mapped_column(String(64))
    reporter_phone: Mapped[str | None] = mapped_column(String(32))
    satisfaction: Mapped[int | None] = mapped_column(Integer)
    reported_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)
    accepted_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    due_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    version: Mapped[int] = mapped_column(Integer, default=1)  # bumped by every guarded transition
    geom = mapped_column(Geometry("POINT", srid=4326, spatial_index=True), nullable=True)
    # the loop (revision 0002): who handled and verified, the department whistled to, counters and requests
    handled_by: Mapped[str | None] = mapped_column(String(64))
    handled_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    department_id: Mapped[int | None] = mapped_column(ForeignKey("department.id"), index=True)
    whistled_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    department_due_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    department_reported_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    escalation_level: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    escalated_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    rework_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    bounce_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    reopen_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    extension_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    pending: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # an extension or suspension awaiting approval
    suspended_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    rated_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    # intake and duplicates (revision 0003): the ticket number in the source system (unique per source), the
    # patrolling worker who reported it, the case this one was merged into
    external_ref: Mapped[str | None] = mapped_column(String(64))
    # accounts (revision 0004): the hash of the token handed to the reporter at submission (they rate with it)
    reporter_token_hash: Mapped[str | None] = mapped_column(String(64))
    reported_by_staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"), index=True)
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("case_file.id"), index=True)
    # daily work (revision 0006): the grids near the point ([{code, name, distance_m}]) as intake found them
    locate_candidates: Mapped[list[Any] | None] = mapped_column(JSON)

    category: Mapped[CaseCategory | None] = relationship()
    events: Mapped[list[CaseEvent]] = relationship(back_populates="case", order_by="CaseEvent.id")


class CalendarDay(Base):
    """An exception to the Monday–Friday week: a public holiday, or a weekend day worked (调休)."""

    __tablename__ = "calendar_day"
    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))  # holiday | workday
    name: Mapped[str] = mapped_column(String(64))


class IdempotencyKey(Base):
    """A client's idempotency key for a submission: the same key and body give the same case, once."""

    __tablename__ = "idempotency_key"
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    case_id: Mapped[int] = mapped_column(ForeignKey("case_file.id"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)


class CaseEvent(Base):
    """One change of a case: who did what, when, from which state to which."""

    __tablename__ = "case_event"
    # and ix_case_event_rating (action, at, the rating; `rate` steps only): an index on an expression written per
    # database, so made by migration 0009 only (see gridmap.cases.measures.RATING_SQL)
    __table_args__ = (Index("ix_case_event_action_at", "action", "at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("case_file.id"), index=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))
    from_state: Mapped[str | None] = mapped_column(String(16))
    to_state: Mapped[str | None] = mapped_column(String(16))
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    case: Mapped[Case] = relationship(back_populates="events")


class CaseActivity(Base):
    """When each case last changed: the time of its latest history entry (`case_event.at`), the key of the case
    lists sorted by last update (`updated_at`). A case without history has no row.

    Kept by the database itself (migration 0015): triggers on `case_event` — after an insert the row is created or
    moved forward, after a delete or an update of `case_id`/`at` the cases touched are read again. No code writes it;
    bulk loads into an empty history fill it in one statement (`gridmap.store.bulkload`). Narrow on purpose: a list
    of a district by last update walks `ix_case_activity_last_event` from its end and stops after a page, instead of
    working out the latest entry of every case that matches (6–17 s for a district, ~2 min for the province of
    10 M cases on PostGIS, before). No foreign key: every row is written by the triggers from a `case_event` row,
    whose own key names the case (a key check per row would cost every write of history)."""

    __tablename__ = "case_activity"
    __table_args__ = (Index("ix_case_activity_last_event", "last_event_at", "case_id"),)
    case_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    last_event_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class CaseStepCount(Base):
    """The steps of the cases of each grid in each month, counted: how many were handled (`handle`), rated (`rate`),
    rated satisfied (a rating of `gridmap.cases.measures.SATISFIED_MIN` or more) and bounced back (`bounce`), by the
    case's grid now (`case_file.grid_code`) and the China-time month of the step (`month` = year × 100 + month).

    Kept by the database itself (migration 0018), as `case_activity` is: an insert, delete or update of
    `case_event` adds or takes away its steps, and a change of a case's grid moves the case's steps to its new grid
    (on PostgreSQL through `case_registry.grid_code`, so that a step's upkeep reads no month partition of the
    cases). No code writes it; bulk loads into an empty history fill it in one statement (`gridmap.store.bulkload`).
    A district's year of steps is then a few thousand rows (its grids × 12) instead of ~1 M history entries joined
    to their cases (4.4-4.9 s on the 10 M-case province; `gridmap.cases.measures._series_steps`). Steps of cases in
    no grid are not kept: no area's series counts them."""

    __tablename__ = "case_step_count"
    month: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    grid_code: Mapped[str] = mapped_column(String(24), primary_key=True)
    handled: Mapped[int] = mapped_column(Integer, server_default=sa_text("0"))
    rated: Mapped[int] = mapped_column(Integer, server_default=sa_text("0"))
    satisfied: Mapped[int] = mapped_column(Integer, server_default=sa_text("0"))
    bounces: Mapped[int] = mapped_column(Integer, server_default=sa_text("0"))


class CaseMonthCount(Base):
    """The cases of each grid counted by China-time month (`month` = year × 100 + month), by the case's grid now:
    `received` by the month of the report, the due cohort (`due`, `suspended`, `active`, `closed`,
    `closed_on_time`, `reworked`, `extended`) by the month of the deadline, with the formulas of
    `gridmap.cases.measures._case_counts`.

    Kept by the database itself (migration 0021), as `case_step_count` is: an insert, delete or update of a case
    adds, takes away or moves its counts. No code writes it; bulk loads into an empty case table fill it in one
    statement (`gridmap.store.bulkload`). A district's year of counts is then a few thousand rows (its grids × 12)
    instead of its ~600,000 cases (`gridmap.cases.measures._series_counts`). Cases in no grid are not kept: no
    area's series counts them."""

    __tablename__ = "case_month_count"
    month: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    grid_code: Mapped[str] = mapped_column(String(24), primary_key=True)
    received: Mapped[int] = mapped_column(Integer, server_default=sa_text("0"))
    due: Mapped[int] = mapped_column(Integer, server_default=sa_text("0"))
    suspended: Mapped[int] = mapped_column(Integer, server_default=sa_text("0"))
    active: Mapped[int] = mapped_column(Integer, server_default=sa_text("0"))
    closed: Mapped[int] = mapped_column(Integer, server_default=sa_text("0"))
    closed_on_time: Mapped[int] = mapped_column(Integer, server_default=sa_text("0"))
    reworked: Mapped[int] = mapped_column(Integer, server_default=sa_text("0"))
    extended: Mapped[int] = mapped_column(Integer, server_default=sa_text("0"))


class CaseMonthHours(Base):
    """A district's median and 90th percentile of hours from report to closure of the cases closed in a past
    China-time month (`month` = year × 100 + month), as a district's series works them out; both None when none
    closed that month.

    Written by `gridmap.cases.measures.keep_close_hours` for whole months that have ended, read by
    `area_series`. The database deletes a month's rows whenever a case closed in it (before or after the write)
    is written in a way that could change them (migration 0026): a row here is always what the cases say."""

    __tablename__ = "case_month_hours"
    month: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    area_code: Mapped[str] = mapped_column(String(24), primary_key=True)
    p50: Mapped[float | None] = mapped_column(Float)
    p90: Mapped[float | None] = mapped_column(Float)


class Account(Base):
    """A person (or service) who signs in: a role, the areas it acts for (each with everything under it), and for
    a worker the staff record, for a department its code. Passwords are stored as argon2id hashes only."""

    __tablename__ = "account"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str | None] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))
    department_code: Mapped[str | None] = mapped_column(String(32))
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"), index=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=sa_true())
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)
    password_changed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))

    areas: Mapped[list[AccountArea]] = relationship(order_by="AccountArea.area_code", cascade="all, delete-orphan")


class AccountArea(Base):
    """One subtree of areas an account acts for: the area (by its stable code) and everything under it."""

    __tablename__ = "account_area"
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"), primary_key=True)
    area_code: Mapped[str] = mapped_column(String(24), primary_key=True)
    level: Mapped[str] = mapped_column(String(16))


class AuthToken(Base):
    """A signed-in session: a bearer token for API clients (`access`) or the pages' cookie (`session`). Only the
    SHA-256 of the token is stored; a token ends at `expires_at` or when revoked."""

    __tablename__ = "auth_token"
    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"), index=True)
    kind: Mapped[str] = mapped_column(String(8))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    address: Mapped[str | None] = mapped_column(String(64))


class ApiKey(Base):
    """A key for an integration (the 12345 platform, an Open311 client, a mini-program back end): stored hashed,
    limited to its scopes (and areas, when given), revocable. The first characters (`prefix`) name it in lists."""

    __tablename__ = "api_key"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    scopes: Mapped[list[Any]] = mapped_column(JSON)
    area_codes: Mapped[list[Any] | None] = mapped_column(JSON)
    created_by: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class AuditEntry(Base):
    """The append-only audit log: every write, every reveal of personal data, every sign-in (success and failure)
    and every boundary publish — who, when, what, from where. The database refuses UPDATE and DELETE on it."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_at", "at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)
    actor: Mapped[str] = mapped_column(String(100))
    account_id: Mapped[int | None] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(32))
    target: Mapped[str | None] = mapped_column(String(100))
    address: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class CodeRegistry(Base):
    """Every area code ever given, in any generation or draft: a code once used is never given to another area."""

    __tablename__ = "code_registry"
    code: Mapped[str] = mapped_column(String(24), primary_key=True)
    level: Mapped[str] = mapped_column(String(16))
    first_generation_id: Mapped[int | None] = mapped_column(ForeignKey("generation.id"), index=True)
    registered_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)


class PlanEdit(Base):
    """One edit of a draft, with what it replaced and what it wrote, so that it can be undone and redone."""

    __tablename__ = "plan_edit"
    __table_args__ = (UniqueConstraint("generation_id", "seq", name="uq_plan_edit_generation_seq"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    generation_id: Mapped[int] = mapped_column(ForeignKey("generation.id"))
    seq: Mapped[int] = mapped_column(Integer)
    op: Mapped[str] = mapped_column(String(32))
    params: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    actor: Mapped[str | None] = mapped_column(String(64))
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)
    undone: Mapped[bool] = mapped_column(Boolean, default=False, server_default=sa_false())


class PlanAssignment(Base):
    """A party branch (`kind` branch) or staff member (`kind` staff, with `role`) that a draft gives an area code;
    applied to the assignments when the draft takes effect."""

    __tablename__ = "plan_assignment"
    __table_args__ = (UniqueConstraint("generation_id", "area_code", "kind", "ref_id", name="uq_plan_assignment"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    generation_id: Mapped[int] = mapped_column(ForeignKey("generation.id"), index=True)
    area_code: Mapped[str] = mapped_column(String(24))
    kind: Mapped[str] = mapped_column(String(16))
    ref_id: Mapped[int] = mapped_column(Integer)
    role: Mapped[str | None] = mapped_column(String(32))
    actor: Mapped[str | None] = mapped_column(String(64))
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)


class Notification(Base):
    """A message to one account (revision 0006): a case urged (催办) or supervised (督办), or given to it
    (`assigned`); read when `read_at` is set."""

    __tablename__ = "notification"
    __table_args__ = (Index("ix_notification_account_read", "account_id", "read_at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"))
    kind: Mapped[str] = mapped_column(String(16))  # urge | supervise | assigned
    case_id: Mapped[int | None] = mapped_column(ForeignKey("case_file.id"), index=True)
    text: Mapped[str] = mapped_column(String(500))
    actor: Mapped[str | None] = mapped_column(String(64))
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)
    read_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


ATTACHMENT_STAGES: tuple[str, ...] = ("report", "before", "after", "patrol")  # 上报, 处置前, 处置后, 巡查


class Attachment(Base):
    """A photo of a case (gridmap.cases.attachments): the cleaned image and its thumbnail live in the media store under
    `storage_key` / `thumbnail_key`; `gps_*` is the position the upload's EXIF block gave (the stored file has
    none), offered as a location candidate."""

    __tablename__ = "attachment"
    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("case_file.id"), index=True)
    stage: Mapped[str] = mapped_column(String(16))
    content_type: Mapped[str] = mapped_column(String(32))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    bytes: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    backend: Mapped[str] = mapped_column(String(16))
    storage_key: Mapped[str] = mapped_column(String(200))
    thumbnail_key: Mapped[str] = mapped_column(String(200))
    thumb_width: Mapped[int] = mapped_column(Integer)
    thumb_height: Mapped[int] = mapped_column(Integer)
    gps_lon: Mapped[float | None] = mapped_column(Float)
    gps_lat: Mapped[float | None] = mapped_column(Float)
    uploaded_by: Mapped[str] = mapped_column(String(64))
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)
