"""Cases: reading them — lists and queues with their filters, sorts and cursor pages, counts, one case's summary
for its reader, its history and its routing.

Filing and locating a case is `gridmap.cases.intake`; the steps of the loop are `gridmap.cases.workflow`. This module
only reads: it writes and commits nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, selectinload

from gridmap.access import policy
from gridmap.access.policy import Principal
from gridmap.boundaries.areas import get_area, mask_phone
from gridmap.calendar import WorkCalendar
from gridmap.cases import paging, workflow
from gridmap.cases.intake import (
    LEVEL_COLUMNS,
    NOT_RUNNING,
    PSEUDO_STATES,
    RUNNING,
    SOURCE_ZH,
    STATE_ZH,
    get_case,
    utc,
)
from gridmap.errors import InvalidInput
from gridmap.store import dialect
from gridmap.store.partitions import cases_by_id
from gridmap.store.tables import (
    CASE_SOURCES,
    CASE_STATES,
    FINISHED_STATES,
    Case,
    CaseActivity,
    CaseCategory,
    CaseEvent,
    Department,
)


def department_code(session: Session, case: Case) -> str | None:
    if case.department_id is None:
        return None
    return session.scalar(sa.select(Department.code).where(Department.id == case.department_id))


def get_case_for(session: Session, case_id: int, who: Principal) -> Case:
    """One case, if `who` may see it; otherwise `NotFound`, the same answer as for an id nobody has."""
    case = get_case(session, case_id)
    policy.check_case(who, case, department_code(session, case))
    return case


def check_period(since: dt.datetime | None, until: dt.datetime | None) -> None:
    """A period must not end before it starts."""
    if since and until and utc(until) < utc(since):
        raise InvalidInput(
            f"until: {until.isoformat()} is before since {since.isoformat()}",
            field="until",
            zh=f"截止日期 {until.isoformat()} 早于起始日期 {since.isoformat()}。",
        )


def check_states(text: str | tuple[str, ...] | None) -> tuple[str, ...]:
    """States as given (comma-separated), each a case state or `open` / `overdue`."""
    values = text.split(",") if isinstance(text, str) else (text or ())
    states = tuple(sorted({v.strip() for v in values if v.strip()}))
    for state in states:
        if state not in CASE_STATES and state not in PSEUDO_STATES:
            raise InvalidInput(
                f"state: {state!r} is not a case state; accepted: {', '.join(PSEUDO_STATES)}, {', '.join(CASE_STATES)}",
                field="state",
                zh=f"状态：{state!r} 不是案件状态；可选：open（未办结）、overdue（超期）、"
                f"{'、'.join(f'{STATE_ZH.get(s, s)}（{s}）' for s in CASE_STATES)}。",
            )
    return states


def state_condition(states: tuple[str, ...], now: dt.datetime) -> sa.ColumnElement[bool]:
    """SQL for "in any of these states"; `open` = not finished, `overdue` = running past the deadline (as in the
    area counts)."""
    parts: list[sa.ColumnElement[bool]] = []
    plain = [s for s in states if s in CASE_STATES]
    if plain:
        parts.append(Case.state.in_(plain))
    if "open" in states:
        parts.append(Case.state.not_in(FINISHED_STATES))
    if "overdue" in states:  # the running states by name, as the queue has them: the state indexes serve it
        parts.append(sa.and_(Case.state.in_(RUNNING), Case.due_at.is_not(None), Case.due_at < now))
    return sa.or_(*parts)


QUEUES = {  # name: (zh, en)
    "pending": ("待处理", "Pending"),
    "dispatched": ("已派遣", "Dispatched"),
    "verify": ("待核查", "To verify"),
    "bounced": ("退单", "Bounced"),
    "approvals": ("待审批", "Approvals"),
    "overdue": ("超期", "Overdue"),
}
SORTS = ("reported_at", "deadline", "overdue_by", "updated_at")
MAX_AGE_H = 24 * 366 * 10


def queue_condition(name: str, now: dt.datetime) -> sa.ColumnElement[bool]:
    """SQL for a queue of the dispatcher's desk: 待处理 (reported, or filed and never bounced), 已派遣 (dispatched,
    accepted, rework), 待核查 (handled), 退单 (filed after a bounce), 待审批 (an extension or suspension request
    pending), 超期 (the clock runs past the deadline)."""
    if name == "pending":  # new tickets, and cases filed but not yet dispatched (never bounced: those are 退单)
        return sa.or_(
            Case.state == "reported", sa.and_(Case.state == "filed", sa.func.coalesce(Case.bounce_count, 0) == 0)
        )
    if name == "dispatched":
        return Case.state.in_(("dispatched", "accepted", "rework"))
    if name == "verify":
        return Case.state == "handled"
    if name == "bounced":
        return sa.and_(Case.state == "filed", Case.bounce_count > 0)
    if name == "approvals":
        return sa.and_(
            Case.state.in_(("accepted", "rework")), Case.pending["kind"].as_string().in_(("extension", "suspension"))
        )
    if name == "overdue":  # the running states by name, so that the (state, due_at) index serves it
        return sa.and_(Case.state.in_(RUNNING), Case.due_at.is_not(None), Case.due_at < now)
    raise InvalidInput(
        f"queue: {name!r} is not a queue; accepted: {', '.join(QUEUES)}",
        field="queue",
        zh=f"队列：没有名为 {name!r} 的队列；可选：{'、'.join(QUEUES)}",
    )


def _codes(text: str | None, field: str, allowed: tuple[str, ...] | None = None) -> tuple[str, ...]:
    values = tuple(sorted({v.strip() for v in (text or "").split(",") if v.strip()}))
    if len(values) > 50 or any(len(v) > 32 for v in values):
        raise InvalidInput(
            f"{field}: at most 50 codes of at most 32 characters",
            field=field,
            zh=f"{field}：至多 50 个代码，每个至多 32 个字符",
        )
    if allowed is not None:
        for v in values:
            if v not in allowed:
                raise InvalidInput(
                    f"{field}: {v!r} is not accepted; accepted: {', '.join(allowed)}",
                    field=field,
                    zh=f"{field}：不接受 {v!r}；可选：{'、'.join(allowed)}",
                )
    return values


@dataclass
class CaseFilter:
    """What a case list or a queue is narrowed to, and how it is ordered."""

    area: str | None = None
    state: str | tuple[str, ...] | None = None
    queue: str | None = None
    category: str | None = None  # codes, comma-separated
    source: str | None = None  # channels, comma-separated
    holder: str | None = None  # a staff id, `me`, or a department code
    min_age_h: float | None = None
    max_age_h: float | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    bbox: tuple[float, float, float, float] | None = None
    sort: str = "reported_at"
    order: str = "desc"


def _holder_condition(session: Session, holder: str, who: Principal | None) -> sa.ColumnElement[bool]:
    text = holder.strip()
    if text == "me":
        if who is not None and who.role == "department" and who.department_id is not None:
            return Case.department_id == who.department_id
        if who is None or who.staff_id is None:
            raise InvalidInput(
                "holder: `me` names the signed-in worker's staff record, and this account has none",
                field="holder",
                zh="处置人：me 指当前登录网格员本人，此账号未关联网格员",
            )
        return Case.assignee_id == who.staff_id
    if text.isdigit() and len(text) <= 12:
        return Case.assignee_id == int(text)
    department = session.scalar(sa.select(Department.id).where(Department.code == text))
    if department is None:
        raise InvalidInput(
            f"holder: {text[:40]!r} is neither a staff id, `me`, nor a department code",
            field="holder",
            zh=f"处置人：{text[:40]!r} 既不是网格员编号、me，也不是部门代码",
        )
    return Case.department_id == department


def case_query(session: Session, f: CaseFilter, *, now: dt.datetime, who: Principal | None = None) -> sa.Select[Case]:
    """The SELECT of the cases matching `f` that `who` may see (no order)."""
    states = check_states(f.state)
    check_period(f.since, f.until)
    query = sa.select(Case)
    if who is not None:
        query = query.where(policy.case_condition(who, Case))
    if f.area:
        target = get_area(session, f.area)
        column = LEVEL_COLUMNS[target.level]
        query = query.where(dialect.code_is(column, f.area) if target.level == "district" else column == f.area)
    if states:
        query = query.where(state_condition(states, now))
    if f.queue:
        query = query.where(queue_condition(f.queue, now))
    categories = _codes(f.category, "category")
    if categories:
        query = query.where(Case.category_id.in_(sa.select(CaseCategory.id).where(CaseCategory.code.in_(categories))))
    sources = _codes(f.source, "source", CASE_SOURCES)
    if sources:
        query = query.where(Case.source.in_(sources))
    if f.holder:
        query = query.where(_holder_condition(session, f.holder, who))
    for name, value in (("min_age_h", f.min_age_h), ("max_age_h", f.max_age_h)):
        if value is not None and not (0 <= value <= MAX_AGE_H):
            raise InvalidInput(
                f"{name}: {value!r} hours; from 0 to {MAX_AGE_H}",
                field=name,
                zh=f"{name}：{value!r} 小时；应在 0 到 {MAX_AGE_H} 之间",
            )
    if f.min_age_h is not None and f.max_age_h is not None and f.max_age_h < f.min_age_h:
        raise InvalidInput("max_age_h: below min_age_h", field="max_age_h", zh="max_age_h：小于 min_age_h")
    if f.min_age_h is not None:
        query = query.where(Case.reported_at <= now - dt.timedelta(hours=f.min_age_h))
    if f.max_age_h is not None:
        query = query.where(Case.reported_at >= now - dt.timedelta(hours=f.max_age_h))
    if f.since:
        query = query.where(Case.reported_at >= utc(f.since))
    if f.until:
        query = query.where(Case.reported_at < utc(f.until))
    if f.bbox:
        query = query.where(Case.lon.between(f.bbox[0], f.bbox[2]), Case.lat.between(f.bbox[1], f.bbox[3]))
    return query


def _sort_key(sort: str, order: str) -> tuple[Any, bool, bool]:
    """The sort key of a list (`reported_at`, `deadline`, `overdue_by`, `updated_at`), whether it runs descending,
    and whether it may be NULL. `overdue_by` is the deadline the other way round (the most overdue is the
    largest: `desc` is the earliest deadline first); `updated_at` is the time of the last history entry, as the
    database keeps it in `case_activity` (a query sorted by it joins that table: `_with_key`)."""
    if sort not in SORTS:
        raise InvalidInput(
            f"sort: {sort!r}; accepted: {', '.join(SORTS)}",
            field="sort",
            zh=f"排序：不接受 {sort!r}；可选：{'、'.join(SORTS)}",
        )
    if order not in ("asc", "desc"):
        raise InvalidInput(f"order: {order!r}; accepted: asc, desc", field="order", zh="顺序：只能为 asc 或 desc")
    desc = order == "desc"
    if sort == "reported_at":
        return Case.reported_at, desc, False
    if sort == "deadline":
        return Case.due_at, desc, True
    if sort == "overdue_by":
        return Case.due_at, not desc, True
    return CaseActivity.last_event_at, desc, True


def _with_key(query: sa.Select[Any], sort: str, *, keyed: bool = False) -> sa.Select[Any]:
    """`query` able to read its sort key: for `updated_at`, each case's row of `case_activity` — an outer join (a
    case without history has none: the key NULL), or with `keyed` an inner join, for the cases with the key only,
    which the database can then read in the order of the key's index (SQLite does not make an outer join inner
    for an `IS NOT NULL` on it, and scanned every case of a district instead)."""
    if sort != "updated_at":
        return query
    on = CaseActivity.case_id == Case.id
    return query.join_from(Case, CaseActivity, on) if keyed else query.outerjoin_from(Case, CaseActivity, on)


def _ordering(sort: str, order: str) -> tuple[Any, ...]:
    """ORDER BY for a sort key (`_sort_key`), cases without the key last whichever the order, the id breaking
    ties in the same direction."""
    key, desc, nullable = _sort_key(sort, order)
    tie = Case.id.desc() if desc else Case.id.asc()
    if not nullable:  # never NULL: the time alone, so that its index serves the order (a page without a
        return (key.desc() if desc else key.asc(), tie)  # sort of every case; found on the province demo)
    nulls = sa.case((key.is_(None), 1), else_=0)  # cases without the key last, whichever the order
    return (nulls, key.desc() if desc else key.asc(), tie)


@dataclass
class CasePage:
    """A page of a case list: the cases, how many match in all (None where not counted: `page_cases`), and the
    cursor of the page after this one (None on the last page)."""

    total: int | None
    rows: list[Case]
    next_cursor: str | None


def page_cases(
    session: Session,
    f: CaseFilter,
    *,
    limit: int = 50,
    offset: int = 0,
    cursor: str | None = None,
    count: bool | None = None,
    now: dt.datetime | None = None,
    who: Principal | None = None,
) -> CasePage:
    """A page of the cases matching `f` that `who` may see, in the order of `f.sort`/`f.order`, and the cursor of
    the next page (`gridmap.cases.paging`): after `cursor` (the `next_cursor` of the page before) by a keyset
    condition, or — the older way, for existing clients — after skipping `offset` cases (never both).

    The total is counted when `count` says so; by default (None) only for a request without a cursor (the first
    page, and offset pages as before): a list walked by cursor is counted once, on its first page, not again on
    every page. Whether there is a next page is known without counting (one case more is read than shown)."""
    now = utc(now) or dt.datetime.now(dt.UTC)
    key, desc, nullable = _sort_key(f.sort, f.order)
    position = paging.decode(cursor, sort=f.sort, order=f.order) if cursor is not None else None
    if position is not None and offset:
        raise InvalidInput(
            "offset: give a cursor or an offset, not both (the cursor already says where the page starts)",
            field="offset",
            zh="偏移量（offset）：cursor 与 offset 只能二选一（游标已指明从何处开始）。",
        )
    query = case_query(session, f, now=now, who=who)
    total = None
    if count or (count is None and position is None):  # (SQLite seeks the district in its index for a count)
        counted = sa.select(sa.func.count()).select_from(dialect.seeking(query).subquery())
        total = int(session.scalar(counted) or 0)
    # the key is read with each case (for `updated_at` it is not a column of the case), and one case more than
    # asked for says whether a next page exists
    selected = query.add_columns(key.label("sort_key")).options(selectinload(Case.category))
    want = limit + 1
    if offset:
        found = _at_offset(session, query, f.sort, f.order, key, offset, want)
    else:
        found = _after(session, selected, f.sort, key, desc, nullable, position, want)
    rows = [r[0] for r in found[:limit]]
    following = None
    if len(found) > limit:
        last = found[limit - 1]
        following = paging.encode(paging.Position(f.sort, f.order, last[1], last[0].id))
    return CasePage(total, rows, following)


def _at_offset(
    session: Session, query: sa.Select[Any], sort: str, order: str, key: Any, offset: int, want: int
) -> list[tuple[Case, Any]]:
    """Up to `want` (case, key) rows after skipping `offset` in the list's order: the ids and keys first, reading
    only the columns of the order (the rows skipped are read and dropped, and whole rows — the geometry, the text —
    made a deep page take minutes at 10 M cases), then those cases whole, by id within their report times (so that
    only their months' partitions are read). A case deleted in between is left out of the page."""
    narrow = _with_key(query.with_only_columns(Case.id, Case.reported_at, key.label("sort_key")), sort)
    picked = session.execute(narrow.order_by(*_ordering(sort, order)).limit(want).offset(offset)).all()
    if not picked:
        return []
    times = [p[1] for p in picked]
    whole = {
        c.id: c
        for c in session.scalars(
            sa.select(Case)
            .where(Case.id.in_([p[0] for p in picked]), Case.reported_at.between(min(times), max(times)))
            .options(selectinload(Case.category))
        )
    }
    return [(whole[i], k) for i, _, k in picked if i in whole]


def _after(
    session: Session,
    selected: sa.Select[Any],
    sort: str,
    key: Any,
    desc: bool,
    nullable: bool,
    position: paging.Position | None,
    want: int,
) -> list[Any]:
    """Up to `want` (case, key) rows after `position` (from the start without one): the cases with the key first
    (by key, then id), then those without (by id), each part its own query, ordered as its index is, bounded by
    the key (so that a month-partitioned table is read from the month of the position on)."""

    def tie_after(i: int) -> sa.ColumnElement[bool]:
        return Case.id < i if desc else Case.id > i

    def keyed_page(by: Any) -> sa.Select[Any]:
        """The cases with the key after `position`, ordered and bounded by `by` (the key, or the key as an
        expression no index answers)."""
        keyed = _with_key(selected, sort, keyed=True)  # `updated_at`: the join leaves out the cases without the key
        if nullable and sort != "updated_at":
            keyed = keyed.where(key.is_not(None))
        if position is not None:
            k = position.key
            within = by <= k if desc else by >= k  # a range on the key: its index and the partitions bound it
            beyond = by < k if desc else by > k
            keyed = keyed.where(within, sa.or_(beyond, tie_after(position.id)))
        ordered = (by.desc(), Case.id.desc()) if desc else (by.asc(), Case.id.asc())
        return keyed.order_by(*ordered).limit(want)

    found: list[Any] = []
    if position is not None and position.key is None:
        pass  # among the cases without the key already
    elif sort == "updated_at" and session.get_bind().dialect.name == "sqlite":
        found = _latest_first(session, keyed_page, key, desc, position, want)
    else:
        found = list(session.execute(keyed_page(key)))
    if nullable and len(found) < want:
        blank = _with_key(selected, sort).where(key.is_(None))
        if position is not None and position.key is None:
            blank = blank.where(tie_after(position.id))
        found += list(
            session.execute(blank.order_by(Case.id.desc() if desc else Case.id.asc()).limit(want - len(found)))
        )
    return found


# how many changes, next in the list's order, the tries of a list by last update on SQLite look among, in turn
LATEST_WINDOWS = (2_000, 100_000)


def _latest_first(
    session: Session,
    keyed_page: Callable[[Any], sa.Select[Any]],
    key: Any,
    desc: bool,
    position: paging.Position | None,
    want: int,
) -> list[Any]:
    """A page of a list by last update on SQLite, which plans it badly either way round when left to itself: it
    does not weigh the LIMIT, so it reads every case of a district (no index) or a sub-district and sorts them
    (2.6–3.0 s on the 10 M-case province) where walking the key's index finds the page after a few thousand
    changes, and it walks the key's index through millions of changes for a community or a grid whose few hundred
    cases its own index gives at once (12.7 s).

    So: the page is looked for among the next LATEST_WINDOWS changes in turn (`_within_latest`; a window only the
    walk can answer), which finds it when the list's cases are many among the latest changes, or finds the list's
    last cases when the window reaches the end of the index. Otherwise the list's cases are few among the changes
    (none in the first window, or fewer than a page in the widest), and the list is read with the key hidden from
    its index (an expression of it), so that the list's own conditions choose the index."""
    for size in LATEST_WINDOWS:
        found, reached_end = _within_latest(session, keyed_page(key), desc, position, size, want)
        if len(found) == want or reached_end:
            return found
        if not found:  # none in the first window: too few for a wider one, and for the key's index
            break
    return list(session.execute(keyed_page(sa.func.coalesce(key, key))))


def _within_latest(
    session: Session, query: sa.Select[Any], desc: bool, position: paging.Position | None, size: int, want: int
) -> tuple[list[Any], bool]:
    """A page of a list by last update (`query`: its cases with the key, ordered, limited to `want`) looked for
    among the `size` cases next in the key's order only (after `position`), and whether those were all the cases
    left: the rows found are the page itself when there are as many as asked for (every case outside the window
    comes after them), and the end of the list when the window held all the cases left.

    SQLite, given a list narrowed by a column without an index (a district), plans it by reading every case and
    sorting those that match — it does not weigh the LIMIT against walking the key's index, which finds a page of
    a district after a few thousand cases: 2.6–3.0 s against milliseconds on the province's 10 M cases. The
    window, a range of `ix_case_activity_last_event`, makes the walk the only plan."""
    window = sa.select(CaseActivity.case_id)
    if position is not None:
        k, i = position.key, position.id
        window = window.where(
            CaseActivity.last_event_at <= k if desc else CaseActivity.last_event_at >= k,
            sa.or_(
                CaseActivity.last_event_at < k if desc else CaseActivity.last_event_at > k,
                CaseActivity.case_id < i if desc else CaseActivity.case_id > i,
            ),
        )
    if desc:
        window = window.order_by(CaseActivity.last_event_at.desc(), CaseActivity.case_id.desc())
    else:
        window = window.order_by(CaseActivity.last_event_at.asc(), CaseActivity.case_id.asc())
    window = window.limit(size)
    found = list(session.execute(query.where(CaseActivity.case_id.in_(window.scalar_subquery()))))
    if len(found) == want:  # a full page: no need to know more
        return found, False
    held = int(session.scalar(sa.select(sa.func.count()).select_from(window.subquery())) or 0)
    return found, held < size


def search_cases(
    session: Session,
    f: CaseFilter,
    *,
    limit: int = 50,
    offset: int = 0,
    now: dt.datetime | None = None,
    who: Principal | None = None,
) -> tuple[int, list[Case]]:
    """Cases matching `f` that `who` may see, ordered and paged, and how many match in all — all in SQL."""
    page = page_cases(session, f, limit=limit, offset=offset, count=True, now=now, who=who)
    return int(page.total or 0), page.rows


def queue_counts(
    session: Session, *, area: str | None = None, now: dt.datetime | None = None, who: Principal | None = None
) -> list[dict[str, Any]]:
    """How many cases each queue holds (in `area`, among those `who` may see): one grouped query."""
    now = utc(now) or dt.datetime.now(dt.UTC)
    base = case_query(session, CaseFilter(area=area), now=now, who=who).whereclause
    base = dialect.seeking(base) if base is not None else None  # (on SQLite: the district in its index)
    out = []
    for name, (zh, en) in QUEUES.items():  # one count per queue: each served by the state indexes
        counted = sa.select(sa.func.count()).select_from(Case).where(queue_condition(name, now))
        if base is not None:
            counted = counted.where(base)
        out.append({"name": name, "zh": zh, "en": en, "count": int(session.scalar(counted) or 0)})
    return out


def find_cases(
    session: Session,
    *,
    area: str | None = None,
    state: str | tuple[str, ...] | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    bbox: tuple[float, float, float, float] | None = None,
    limit: int = 50,
    offset: int = 0,
    oldest_first: bool = False,
    now: dt.datetime | None = None,
    who: Principal | None = None,
) -> tuple[int, list[Case]]:
    """Cases matching the filters (`state` may list several, and `open` / `overdue`), newest first (or oldest
    first, as a queue is worked), and how many match in all; only those `who` may see (`gridmap.access.policy`)."""
    f = CaseFilter(area=area, state=state, since=since, until=until, bbox=bbox, order="asc" if oldest_first else "desc")
    return search_cases(session, f, limit=limit, offset=offset, now=now, who=who)


def case_summary(
    case: Case, *, calendar: WorkCalendar | None = None, now: dt.datetime | None = None, contact: bool = False
) -> dict[str, Any]:
    """The public view of a case: personal data masked (in full with `contact`, for one who may see it), times in
    UTC ISO 8601; with a calendar, the clock."""
    clock = None
    if calendar is not None and case.accepted_at and case.due_at and case.state in ("accepted", "rework", "handled"):
        # the share of the time from acceptance to the (possibly extended) deadline used so far, in the unit of
        # the category's limit: green under 80 %, yellow up to the deadline, red past it
        from gridmap.calendar import clock as clock_of

        unit = workflow.limit_of(case.category)[1]
        colour, used = clock_of(calendar, utc(case.accepted_at), utc(case.due_at), unit, now or dt.datetime.now(dt.UTC))
        clock = {"colour": colour, "used": round(used, 3)}
    return {
        "id": case.id,
        "number": case.number,
        "title": case.title,
        "description": case.description,
        "category": case.category.code if case.category else None,
        "category_name": case.category.name if case.category else None,
        "source": case.source,
        "state": case.state,
        "address": case.address,
        "lon": case.lon,
        "lat": case.lat,
        "raw": {"x": case.raw_x, "y": case.raw_y, "crs": case.raw_crs},
        "district_code": case.district_code,
        "subdistrict_code": case.subdistrict_code,
        "community_code": case.community_code,
        "grid_code": case.grid_code,
        "microgrid_code": case.microgrid_code,
        "branch_id": case.branch_id,
        "assignee_id": case.assignee_id,
        "flags": case.locate_flags or [],
        "reporter_name": case.reporter_name if contact else _mask_name(case.reporter_name),
        "reporter_phone": case.reporter_phone if contact else mask_phone(case.reporter_phone),
        "reported_at": _iso(case.reported_at),
        "accepted_at": _iso(case.accepted_at),
        "due_at": _iso(case.due_at),
        "closed_at": _iso(case.closed_at),
        "version": case.version,
        "department_id": case.department_id,
        "handled_by": case.handled_by,
        "satisfaction": case.satisfaction,
        "escalation_level": case.escalation_level or 0,
        "pending": case.pending,
        "counts": {
            "rework": case.rework_count or 0,
            "bounce": case.bounce_count or 0,
            "reopen": case.reopen_count or 0,
            "extension": case.extension_count or 0,
        },
        "whistle": (
            {
                "department_id": case.department_id,
                "at": _iso(case.whistled_at),
                "due_at": _iso(case.department_due_at),
                "reported_at": _iso(case.department_reported_at),
            }
            if case.whistled_at
            else None
        ),
        "clock": clock,
        "external_ref": case.external_ref,
        "reported_by_staff_id": case.reported_by_staff_id,
        "merged_into_id": case.merged_into_id,
        "candidates": _candidates(case.locate_candidates),
        "state_zh": STATE_ZH.get(case.state, case.state),
        "source_zh": SOURCE_ZH.get(case.source, case.source),
        "deadline": _iso(case.due_at),
        **time_left(case, now),
        "pending_request": pending_request(case.pending),
        "holder": None,
        "last_bounce": None,
        "attachments_count": 0,
    }


def _candidates(stored: list[Any] | None) -> list[dict[str, Any]]:
    """Stored candidates as {code, name, distance_m} (cases from before revision 0006 stored none)."""
    return [
        c if isinstance(c, dict) else {"code": c, "name": None, "level": None, "distance_m": 0.0}
        for c in (stored or [])
    ]


def time_left(case: Case, now: dt.datetime | None = None) -> dict[str, Any]:
    """Seconds to the deadline while the clock runs (`time_left_s`), or past it (`overdue_by_s`); never negative,
    both None when no clock runs (not accepted yet, suspended, finished)."""
    due = utc(case.due_at)
    if due is None or case.state in NOT_RUNNING:
        return {"time_left_s": None, "overdue_by_s": None}
    left = (due - (utc(now) or dt.datetime.now(dt.UTC))).total_seconds()
    return (
        {"time_left_s": int(left), "overdue_by_s": None}
        if left >= 0
        else {"time_left_s": None, "overdue_by_s": int(-left)}
    )


def pending_request(pending: dict[str, Any] | None) -> dict[str, Any] | None:
    """An extension or suspension request awaiting a leader's decision."""
    if not pending or not isinstance(pending, dict) or not pending.get("kind"):
        return None
    return {
        "kind": pending.get("kind"),
        "at": pending.get("at"),
        "by": pending.get("by"),
        "reason": pending.get("reason"),
        "amount": pending.get("amount"),
        "unit": pending.get("unit"),
    }


def attachments_counts(session: Session, case_ids: list[int]) -> dict[int, int]:
    """How many attachments each case has (the one place this is computed; none until attachments exist)."""
    try:
        from gridmap.store.tables import Attachment  # noqa: PLC0415 - present once the attachments land
    except ImportError:
        return {}
    if not case_ids:
        return {}
    return dict(
        session.execute(
            sa.select(Attachment.case_id, sa.func.count())
            .where(Attachment.case_id.in_(case_ids))
            .group_by(Attachment.case_id)
        ).all()
    )


def may_call_holder(who: Principal | None, case: Case, department: str | None) -> bool:
    """Whether the holder's phone is shown in full: to the people who must reach them — dispatchers, leaders,
    verifiers (and admins) of the case's area — and to the holder itself; masked for everyone else."""
    if who is None:
        return False
    if who.role in ("dispatcher", "leader", "verifier", "admin"):
        return policy.sees_case(who, case, department)
    if who.role == "worker":
        return who.staff_id is not None and who.staff_id == case.assignee_id
    if who.role == "department":
        return bool(who.department) and who.department == department
    return False


def case_items(
    session: Session,
    rows: list[Case],
    *,
    who: Principal | None = None,
    calendar: WorkCalendar | None = None,
    now: dt.datetime | None = None,
    contact: bool = False,
) -> list[dict[str, Any]]:
    """Case items as lists, queues and one case show them: the summary plus the holder (worker or department,
    phone callable for those who must reach them), the last bounce with its reason and evidence, and the
    attachment count — each read for the whole page in one query."""
    from gridmap.store.tables import Staff

    if not rows:
        return []
    ids = [c.id for c in rows]
    staff = (
        {
            r.id: r
            for r in session.scalars(
                sa.select(Staff).where(Staff.id.in_({c.assignee_id for c in rows if c.assignee_id is not None}))
            )
        }
        if any(c.assignee_id for c in rows)
        else {}
    )
    departments = (
        {
            d.id: d
            for d in session.scalars(
                sa.select(Department).where(
                    Department.id.in_({c.department_id for c in rows if c.department_id is not None})
                )
            )
        }
        if any(c.department_id for c in rows)
        else {}
    )
    bounced = [c.id for c in rows if c.bounce_count]
    bounces: dict[int, CaseEvent] = {}
    if bounced:
        last = (
            sa.select(sa.func.max(CaseEvent.id))
            .where(CaseEvent.case_id.in_(bounced), CaseEvent.action == "bounce")
            .group_by(CaseEvent.case_id)
        )
        bounces = {e.case_id: e for e in session.scalars(sa.select(CaseEvent).where(CaseEvent.id.in_(last)))}
    attachments = attachments_counts(session, ids)
    out = []
    for case in rows:
        item = case_summary(case, calendar=calendar, now=now, contact=contact)
        department = departments.get(case.department_id) if case.department_id is not None else None
        code = department.code if department else None
        callable_ = may_call_holder(who, case, code)
        if case.assignee_id is not None and case.assignee_id in staff:
            person = staff[case.assignee_id]
            item["holder"] = {
                "kind": "worker",
                "id": person.id,
                "name": person.name,
                "phone": person.phone if callable_ else mask_phone(person.phone),
            }
        elif department is not None:
            item["holder"] = {
                "kind": "department",
                "id": department.id,
                "code": department.code,
                "name": department.name,
                "phone": department.phone if callable_ else mask_phone(department.phone),
            }
        else:
            item["holder"] = {"kind": None, "id": None, "name": None, "phone": None}
        event = bounces.get(case.id)
        if event is not None:
            detail = event.detail or {}
            item["last_bounce"] = {
                "at": _iso(event.at),
                "by": detail.get("by") or event.actor,
                "reason": detail.get("reason"),
                "evidence": detail.get("evidence"),
            }
        item["attachments_count"] = int(attachments.get(case.id, 0))
        out.append(item)
    return out


def case_history(case: Case) -> list[dict[str, Any]]:
    """The case's events, oldest first."""
    return [_event(e) for e in case.events]


ACTION_ZH = {
    "reported": "上报",
    "located": "定位",
    "merge_in": "并入",
    "escalate": "超期升级",
    "boundary_change": "边界调整",
    "attach": "上传照片",
}


def action_zh(action: str) -> str:
    """The Chinese name of a history entry: a step's name (`workflow.STEPS`), or one of intake's own entries."""
    step = workflow.STEPS.get(action)
    return step.zh if step is not None else ACTION_ZH.get(action, action)


def _event(e: CaseEvent) -> dict[str, Any]:
    return {
        "at": _iso(e.at),
        "actor": e.actor,
        "action": e.action,
        "action_zh": action_zh(e.action),
        "from_state": e.from_state,
        "to_state": e.to_state,
        "detail": e.detail,
    }


def full_history(session: Session, case: Case) -> list[dict[str, Any]]:
    """The case's history with the histories of the cases merged into it, in time order; entries of a merged
    case carry its `case_number`."""
    # the cases merged into this one are those its history names ("merge_in", written by every merge), read from
    # their months alone: a search of `merged_into_id` reads every month's partition (gridmap.store.partitions)
    named = {
        e.detail["case_id"]
        for e in case.events
        if e.action == "merge_in" and isinstance(e.detail, dict) and type(e.detail.get("case_id")) is int
    }
    merged = (
        dict(
            session.execute(
                sa.select(Case.id, Case.number).where(cases_by_id(session, named), Case.merged_into_id == case.id)
            ).all()
        )
        if named
        else {}
    )
    if not merged:
        return case_history(case)
    events = list(case.events)
    events += session.scalars(sa.select(CaseEvent).where(CaseEvent.case_id.in_(merged)))
    events.sort(key=lambda e: (utc(e.at), e.id))
    return [{**_event(e), **({"case_number": merged[e.case_id]} if e.case_id in merged else {})} for e in events]


ROUTING_STEPS = ("dispatch", "reassign", "bounce", "whistle")


def routing(session: Session, case: Case, who: Principal | None = None) -> dict[str, Any]:
    """Where the case went and why: the grid chain with names, the party branch, the worker or department, the
    rule of the last routing step, and how the point was placed (method, flags such as `on_boundary`, the other
    candidate grids)."""
    from gridmap.store.tables import Area, PartyOrg, Staff

    codes = [
        c
        for c in (case.district_code, case.subdistrict_code, case.community_code, case.grid_code, case.microgrid_code)
        if c
    ]
    names = (
        dict(
            session.execute(
                sa.select(Area.code, Area.name).where(Area.code.in_(codes), Area.generation_id == case.generation_id)
            ).all()
        )
        if codes
        else {}
    )
    chain = [
        {"level": level, "code": getattr(case, column.key), "name": names.get(getattr(case, column.key))}
        for level, column in LEVEL_COLUMNS.items()
        if getattr(case, column.key)
    ]
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
        "worker": {
            "id": worker.id,
            "name": worker.name,
            "phone": worker.phone
            if may_call_holder(who, case, department.code if department else None)
            else mask_phone(worker.phone),
        }
        if worker
        else None,
        "department": {"code": department.code, "name": department.name} if department else None,
        "rule": (routed.detail or {}).get("rule") if routed else None,
        "routed_by": {
            "action": routed.action,
            "at": _iso(routed.at),
            "actor": routed.actor,
            "reason": (routed.detail or {}).get("reason"),
        }
        if routed
        else None,
        "located": {
            "method": method,
            "flags": flags,
            "candidates": [
                c["code"] if isinstance(c, dict) else c
                for c in (
                    case.locate_candidates
                    if case.locate_candidates is not None
                    else (((located.detail or {}).get("candidates") or []) if located else [])
                )
            ],
            "crs": ((located.detail or {}).get("crs")) if located else case.raw_crs,
        },
    }


def _mask_name(name: str | None) -> str | None:
    return name[0] + "*" * max(len(name) - 1, 1) if name else name


def _iso(value: dt.datetime | None) -> str | None:
    value = utc(value)
    return value.isoformat().replace("+00:00", "Z") if value else None
