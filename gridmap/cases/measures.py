"""How the work is measured (docs/DOMAIN.md §4): one place for every formula, per grid, branch, community, sub-district,
department or worker, over any period.

A period is the half-open interval [since, until). States are taken as they are when the report runs (a case
suspended last month and resumed since is no longer suspended). A case counts for a unit by its current
attribution: its grid, community and sub-district codes, its party branch, the department it is with, and the
worker it is assigned to; a bounce counts for whoever bounced it (recorded in the bounce's history entry). Where a
boundary change re-located an open case (its `boundary_change` events), what happened to it in the period — its
report, handling, rating, bounces — counts where the case was at that moment; closed cases are never re-located.

The due cohort D of a period is the cases whose deadline (`due_at`, possibly extended) falls in the period, less
rejected, voided and merged ones; S ⊆ D are those suspended (挂账). An approved extension moves the deadline and
so moves the case to the period of its new deadline.

=====================  ===========  ==============================================================================
measure                中文          formula
=====================  ===========  ==============================================================================
received               受理量        cases reported in the period
handled                处置量        `handle` steps taken in the period (a reworked case is handled again)
due                    应结案数      |D|
suspended              挂账数        |S|
closed                 结案数        cases in D − S that are closed
closed_on_time         按期结案数    cases in D − S closed no later than their deadline
closure_rate           结案率        closed ÷ (due − suspended)
on_time_rate           按期结案率    closed_on_time ÷ (due − suspended)
reworked               返工数        cases in D − S sent back for rework at least once
rework_rate            返工率        reworked ÷ (due − suspended)
extended               延期数        cases in D − S with an approved extension
extension_rate         延期率        extended ÷ (due − suspended)
bounces                退单数        `bounce` steps taken in the period
close_hours_p50/p90    办结时长      hours from report to closure of the cases closed in the period: median and
                                    90th percentile, linearly interpolated (numpy's default, Excel PERCENTILE.INC)
rated                  参评数        `rate` steps taken in the period
satisfied              满意数        of those, ratings 3–5 (满意 and 基本满意; 1–2 are 不满意 and reopen the case)
satisfaction           满意率        satisfied ÷ rated
=====================  ===========  ==============================================================================

A rate whose denominator is 0 is None (shown empty), never 0 or 100 %.
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.orm import QueryableAttribute, Session

from gridmap.cases.intake import utc
from gridmap.errors import DatabaseNotReady, InvalidInput
from gridmap.io import tabular
from gridmap.store import partitions as case_partitions

if TYPE_CHECKING:
    from openpyxl.worksheet.worksheet import Worksheet

from gridmap.store.tables import (
    LEVEL_NAMES_ZH,
    Area,
    Case,
    CaseEvent,
    CaseMonthCount,
    CaseMonthHours,
    CaseStepCount,
    Department,
    Generation,
    PartyOrg,
    Staff,
    StaffArea,
)

# a column of a case or step in a query: the mapped attribute, or an SQL expression over one
Column = QueryableAttribute[Any] | sa.ColumnElement[Any]

UNITS = ("grid", "community", "subdistrict", "branch", "department", "worker")
UNIT_COLUMN = {
    "grid": "grid_code",
    "community": "community_code",
    "subdistrict": "subdistrict_code",
    "branch": "branch_id",
    "department": "department_id",
    "worker": "assignee_id",
    "microgrid": "microgrid_code",
}  # micro-grids: for rankings of a grid's children (not in UNITS)
UNIT_ZH = {
    "grid": "网格",
    "community": "社区",
    "subdistrict": "街道",
    "branch": "网格党支部",
    "department": "职能部门",
    "worker": "网格员",
}
NOT_COUNTED = ("rejected", "voided", "merged")
SATISFIED_MIN = 3

# every output column: key, Chinese heading, English heading, kind (count | rate | hours | text)
COLUMNS = [
    ("unit", "单位类型", "unit", "text"),
    ("key", "编码", "code", "text"),
    ("name", "名称", "name", "text"),
    ("received", "受理量", "received", "count"),
    ("handled", "处置量", "handled", "count"),
    ("due", "应结案数", "due to close", "count"),
    ("suspended", "挂账数", "suspended", "count"),
    ("closed", "结案数", "closed", "count"),
    ("closed_on_time", "按期结案数", "closed on time", "count"),
    ("closure_rate", "结案率", "closure rate", "rate"),
    ("on_time_rate", "按期结案率", "on-time closure rate", "rate"),
    ("reworked", "返工数", "reworked", "count"),
    ("rework_rate", "返工率", "rework rate", "rate"),
    ("extended", "延期数", "extended", "count"),
    ("extension_rate", "延期率", "extension rate", "rate"),
    ("bounces", "退单数", "bounces", "count"),
    ("close_hours_p50", "办结时长中位数（小时）", "hours to close, median", "hours"),
    ("close_hours_p90", "办结时长90分位（小时）", "hours to close, 90th percentile", "hours"),
    ("rated", "参评数", "rated", "count"),
    ("satisfied", "满意数", "satisfied", "count"),
    ("satisfaction", "满意率", "satisfaction", "rate"),
]
TOTAL_KEY = "*"
# the unit column's values in Chinese exports: the units, the levels of areas (a series), the total row
UNIT_NAMES_ZH = {**LEVEL_NAMES_ZH, **UNIT_ZH, "microgrid": "微网格", "total": "合计"}
CST = dt.timezone(dt.timedelta(hours=8))
NO_UNIT = "\0none"  # cases of no unit (no grid, no worker): in the total only


@dataclass(frozen=True)
class Period:
    """The half-open interval [since, until), both aware."""

    since: dt.datetime
    until: dt.datetime

    @classmethod
    def of(cls, since: dt.datetime | None, until: dt.datetime | None, now: dt.datetime | None = None) -> Period:
        """The period asked for; by default from the first of this month (China time) until now."""
        now = utc(now) or dt.datetime.now(dt.UTC)
        if until is None:
            until = now
        if since is None:
            local = utc(until).astimezone(CST)
            since = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
            if since >= local:  # at midnight on the 1st: the whole previous month
                since = (since - dt.timedelta(days=1)).replace(day=1)
        since, until = utc(since), utc(until)
        if until <= since:
            raise InvalidInput(
                f"until: {until.isoformat()} must be after since {since.isoformat()}",
                field="until",
                zh=f"截止日期 {until.isoformat()} 应晚于起始日期 {since.isoformat()}。",
            )
        if until - since > dt.timedelta(days=3660):
            raise InvalidInput("since: a period of at most ten years", field="since", zh="起始日期：统计时段最长十年。")
        return cls(since, until)


def _rate(numerator: pd.Series, denominator: pd.Series) -> pd.Series:
    return (numerator / denominator.where(denominator > 0)).astype(float)


def _key(value: object) -> str | None:
    """A unit key as text: area codes as they are, ids of branches, departments and workers as "12"."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        return str(int(value))
    return str(value)


def _keys(values: pd.Series | np.ndarray | list[Any]) -> np.ndarray:
    """`_key` of every value, worked out once per distinct value (a year's closures are ~50,000 rows of a few
    hundred units)."""
    codes, uniques = pd.factorize(pd.Series(values, dtype=object), use_na_sentinel=True)
    return np.array([_key(u) for u in uniques] + [None], dtype=object)[codes]


def _count(condition: sa.ColumnElement[bool]) -> sa.ColumnElement[Any]:
    return sa.func.sum(sa.case((condition, 1), else_=0))


def _case_counts(period: Period) -> dict[str, sa.ColumnElement[Any]]:
    """The counts over cases, as SQL: the formulas of the module docstring (D, S, D − S and what is in them)."""
    since, until = period.since, period.until
    in_d = sa.and_(Case.state.not_in(NOT_COUNTED), Case.due_at >= since, Case.due_at < until)
    active = sa.and_(in_d, Case.state != "suspended")
    closed = sa.and_(active, Case.state == "closed", Case.closed_at.is_not(None))
    return {
        "received": _count(sa.and_(Case.reported_at >= since, Case.reported_at < until)),
        "due": _count(in_d),
        "suspended": _count(sa.and_(in_d, Case.state == "suspended")),
        "active": _count(active),
        "closed": _count(closed),
        "closed_on_time": _count(sa.and_(closed, Case.closed_at <= Case.due_at)),
        "reworked": _count(sa.and_(active, Case.rework_count > 0)),
        "extended": _count(sa.and_(active, Case.extension_count > 0)),
    }


def _grouped(
    session: Session,
    columns: dict[str, sa.ColumnElement[Any]],
    key: Column,
    source: sa.FromClause | type[Case],
    where: list[sa.ColumnElement[bool]],
) -> pd.DataFrame:
    """One aggregate query grouped by the unit key (None for cases of no unit: they count in the total only)."""
    query = (
        sa.select(key.label("key"), *(c.label(n) for n, c in columns.items()))
        .select_from(source)
        .where(*where)
        .group_by(key)
    )
    return _by_key([tuple(r) for r in session.execute(query).all()], list(columns))


def _by_key(rows: list[tuple[Any, ...]], names: list[str]) -> pd.DataFrame:
    """Rows of (key, count, …) as a frame of float counts by unit key as text (NO_UNIT for None)."""
    frame = pd.DataFrame(rows, columns=["key", *names]).astype(dict.fromkeys(names, float))
    frame["key"] = pd.Series(_keys(frame["key"]), index=frame.index).fillna(NO_UNIT)
    return frame.groupby("key").sum()


def _counts_and_hours(
    session: Session, period: Period, key: Column, hours: sa.ColumnElement[Any], where: list[Any], closed: list[Any]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """PostgreSQL: the counts of `_case_counts` by unit key (as `_grouped`) and the median and 90th percentile of
    `hours` over the rows that are `closed` (by `percentile_cont`, as `_sql_quantiles`), by key and over every row
    (key `*`), from one pass over the cases: `where` holds every closed row. One sort of the period's cases by key
    instead of a second reading of them (a year of 10 million cases on PostGIS: the counts' hash aggregate and the
    percentiles' own scan and sort took ~15 s + ~22 s; both together ~30 s)."""
    counts = _case_counts(period)
    in_closed = sa.and_(*closed)
    query = (
        sa.select(
            key,
            sa.func.grouping(key),
            sa.func.percentile_cont(0.5).within_group(hours).filter(in_closed),
            sa.func.percentile_cont(0.9).within_group(hours).filter(in_closed),
            *counts.values(),
        )
        .where(*where)
        .group_by(sa.func.rollup(key))
    )
    rows = [tuple(r) for r in session.execute(query)]
    by_key = pd.DataFrame(
        [
            (TOTAL_KEY if total else _key(k), p50, p90)
            for k, total, p50, p90, *_ in rows
            if (total or k is not None) and p50 is not None
        ],
        columns=["key", "close_hours_p50", "close_hours_p90"],
    ).set_index("key")
    return _by_key([(r[0], *r[4:]) for r in rows if not r[1]], list(counts)), by_key.astype(float)


def _hours(session: Session, start: Column, end: Column) -> sa.ColumnElement[Any]:
    """Hours between two timestamp columns, computed by the database. PostgreSQL: `date_part`, a double, as
    Python's `timedelta.total_seconds() / 3600` has it; `EXTRACT` gives a numeric, which became a double through its
    text form for each case (a district's year of closures on the province: 0.29-0.41 s → 0.21-0.24 s)."""
    if session.get_bind().dialect.name == "sqlite":
        return (sa.func.julianday(end) - sa.func.julianday(start)) * 24.0
    return sa.func.date_part("epoch", end - start, type_=sa.Float) / 3600.0


def compute(
    session: Session, period: Period, unit: str, under: str | None = None, under_level: str | None = None
) -> pd.DataFrame:
    """The measures of every unit of a kind and the total (key `*`), by the formulas above. Counts are
    aggregated by the database, on PostgreSQL the percentiles of the hours to close too (in the same pass over the
    cases as the counts); on SQLite the hours come back per case, for their percentiles. The steps are counted in
    one pass over the period's steps (and one more for the bounces of workers and departments, who are named in
    the step, and on SQLite for every unit's bounces). `under` keeps the cases inside an area (codes are
    hierarchical; a micro-grid, below the grid, is matched by its own code)."""
    since, until = period.since, period.until
    column = getattr(Case, UNIT_COLUMN[unit])
    inside = (
        []
        if not under
        else [Case.microgrid_code == under]
        if under_level == "microgrid"
        else [Case.grid_code.startswith(under)]
    )
    relevant = sa.or_(
        Case.reported_at.between(since, until), Case.due_at.between(since, until), Case.closed_at.between(since, until)
    )
    # the months concerned (partitions pruned), for a period of a few months; over a longer one the probe of every
    # partition for cases due or closed in it costs more than the pruning saves (a year of the full demo on
    # PostGIS: 332-383 ms with the bounds, 258-303 ms without)
    within, steps_within = _reported_within(session, since, until) if until - since <= PRUNE_MAX_PERIOD else ([], [])
    postgres = session.get_bind().dialect.name == "postgresql"
    # hours from report to closure of the cases closed in the period: median and 90th percentile
    closed_in_period = [Case.state == "closed", Case.closed_at >= since, Case.closed_at < until]
    if postgres:  # the percentiles worked out by the database, in the counts' pass over the cases
        counts, by_key = _counts_and_hours(
            session,
            period,
            column,
            _hours(session, Case.reported_at, Case.closed_at),
            [relevant, *inside, *within],
            closed_in_period,
        )
    else:
        counts = _grouped(session, _case_counts(period), column, Case, [relevant, *inside, *within])
    steps = sa.join(CaseEvent, Case, Case.id == CaseEvent.case_id)
    in_period = [CaseEvent.at >= since, CaseEvent.at < until, *inside, *steps_within]
    score = CaseEvent.detail["satisfaction"].as_integer()
    step_counts = {
        "handled": _count(CaseEvent.action == "handle"),
        "rated": _count(CaseEvent.action == "rate"),
        "satisfied": _count(sa.and_(CaseEvent.action == "rate", score >= SATISFIED_MIN)),
    }
    # a bounce counts for the worker or department that bounced it (recorded in the step): the case no longer
    # names them; for the other units it counts where the case is — on PostgreSQL in the same pass over the steps.
    # On SQLite still a query of its own, as before: together they were a little faster on the district demo (the
    # steps' queries 0.115-0.123 s -> 0.107-0.112 s CPU) and equal alone on the province (150 s both ways), but the
    # province's whole year per grid ran 387-458 s against 231-283 s before, unexplained yet (load 2-6)
    bouncer = {
        "worker": CaseEvent.detail["from_assignee_id"].as_integer(),
        "department": CaseEvent.detail["from_department_id"].as_integer(),
    }.get(unit, None if postgres else column)
    actions = ("handle", "rate") if bouncer is not None else ("handle", "rate", "bounce")
    if bouncer is None:
        step_counts["bounces"] = _count(CaseEvent.action == "bounce")
    stepped: list[pd.DataFrame | pd.Series] = [
        _grouped(session, step_counts, column, steps, [*in_period, CaseEvent.action.in_(actions)])
    ]
    if bouncer is not None:
        stepped.append(
            _grouped(session, {"bounces": sa.func.count()}, bouncer, steps, [*in_period, CaseEvent.action == "bounce"])
        )
    out = counts.join(stepped, how="outer").fillna(0)
    _count_where_it_was(session, out, period, unit, under, under_level)
    out.loc[TOTAL_KEY] = out.sum()
    out = out.drop(index=NO_UNIT, errors="ignore").astype(int)
    if postgres:
        out = (
            out.join(by_key, how="left") if len(by_key) else out.assign(close_hours_p50=np.nan, close_hours_p90=np.nan)
        )
    else:
        closed = sa.select(column, _hours(session, Case.reported_at, Case.closed_at)).where(
            *closed_in_period, *inside, *within
        )
        result = session.connection().execute(closed)  # ~50,000 rows a year: as the driver gives them
        try:
            rows = result.cursor.fetchall()
        finally:
            result.close()
        hours = pd.DataFrame(rows, columns=["key", "h"])
        hours["key"], hours["h"] = _keys(hours["key"]), hours["h"].astype(float)
        hours_by_key = hours.dropna(subset=["key"]).groupby("key")["h"]
        out["close_hours_p50"], out["close_hours_p90"] = hours_by_key.quantile(0.5), hours_by_key.quantile(0.9)
        if len(hours):
            out.loc[TOTAL_KEY, ["close_hours_p50", "close_hours_p90"]] = hours["h"].quantile([0.5, 0.9]).to_numpy()
    out["closure_rate"] = _rate(out["closed"], out["active"])
    out["on_time_rate"] = _rate(out["closed_on_time"], out["active"])
    out["rework_rate"] = _rate(out["reworked"], out["active"])
    out["extension_rate"] = _rate(out["extended"], out["active"])
    out["satisfaction"] = _rate(out["satisfied"], out["rated"])
    out.index.name = "key"
    return out.drop(columns=["active"])


PRUNE_MAX_PERIOD = dt.timedelta(days=93)  # measures over a longer period read every month partition


def _reported_within(
    session: Session, since: dt.datetime, until: dt.datetime, *, steps: bool = True
) -> tuple[list[sa.ColumnElement[bool]], list[sa.ColumnElement[bool]]]:
    """Conditions on the report time holding every case reported, due or closed in [since, until), and every case
    with a step (handled, rated, bounced) in it, as constants the planner prunes the case table's month partitions
    by (PostgreSQL, migration 0010); none where the table is not partitioned. They change no answer: the bounds are
    found from the partitions and the case registry themselves (`gridmap.store.partitions.report_bounds`). `steps`:
    whether to bound the cases of steps too (a join of the period's steps with the registry; else no bounds)."""
    bounds = case_partitions.report_bounds(session, since, until, steps=steps)
    if bounds is None:
        return [], []
    lo, hi = bounds.cases
    return (
        [Case.reported_at >= lo, Case.reported_at < hi],
        [] if bounds.steps is None else [Case.reported_at >= bounds.steps[0], Case.reported_at < bounds.steps[1]],
    )


def _sql_quantiles(
    session: Session, key: Column, hours: sa.ColumnElement[Any], where: list[Any]
) -> dict[tuple[Any, ...], tuple[float, float]]:
    """PostgreSQL: the median and 90th percentile of `hours` by `key` and over all rows, by `percentile_cont`
    (linear interpolation between adjacent values: numpy's default, Excel PERCENTILE.INC), as
    {(key, False): (p50, p90), …, (None, True): (p50, p90) of every row}. A year's closures stay in the database:
    one row per unit comes back instead of one per case."""
    query = (
        sa.select(
            key,
            sa.func.grouping(key),
            sa.func.percentile_cont(0.5).within_group(hours),
            sa.func.percentile_cont(0.9).within_group(hours),
        )
        .where(*where)
        .group_by(sa.func.rollup(key))
    )
    return {(k, bool(total)): (p50, p90) for k, total, p50, p90 in session.execute(query)}


def _moves(session: Session) -> dict[int, list[tuple[dt.datetime, dict[str, tuple[Any, ...]]]]]:
    """The re-locations of cases by boundary changes (`boundary_change` events), by case, in time order: for each,
    the attribution columns it changed, (from, to)."""
    rows = session.execute(
        sa.select(CaseEvent.case_id, CaseEvent.at, CaseEvent.detail)
        .where(CaseEvent.action == "boundary_change")
        .order_by(CaseEvent.case_id, CaseEvent.at, CaseEvent.id)
    ).all()
    out: dict[int, list[tuple[dt.datetime, dict[str, tuple[Any, ...]]]]] = {}
    for case_id, at, detail in rows:
        detail = detail or {}
        changed = {column: (pair.get("from"), pair.get("to")) for column, pair in (detail.get("codes") or {}).items()}
        for side in ("grid", "microgrid"):  # events written before the codes of every level were recorded
            before, after = (detail.get("from") or {}).get(side), (detail.get("to") or {}).get(side)
            if f"{side}_code" not in changed and before != after:
                changed[f"{side}_code"] = (before, after)
        for column, name in (("branch_id", "branch_id"), ("assignee_id", "assignee_id")):
            if isinstance(detail.get(name), dict):
                changed[column] = (detail[name].get("from"), detail[name].get("to"))
        out.setdefault(case_id, []).append((utc(at), changed))
    return out


def _in_area(values: dict[str, Any], under: str | None, under_level: str | None) -> bool:
    """Whether codes {grid_code, microgrid_code} lie in the area `under` (anywhere when None)."""
    if not under:
        return True
    if under_level == "microgrid":
        return bool(values["microgrid_code"] == under)
    return (values["grid_code"] or "").startswith(under)


def _attribution_at(
    moves: list[tuple[dt.datetime, dict[str, tuple[Any, ...]]]], now: dict[str, Any], when: dt.datetime
) -> dict[str, Any]:
    """The attribution a case had at `when`, from the one it has now: for each column of `now`, the `from` of
    the first re-location after `when` that changed it."""
    then, seen = dict(now), set()
    for at, changed in moves:
        if at <= when:
            continue
        for col, (before, _) in changed.items():
            if col in now and col not in seen:
                then[col] = before
                seen.add(col)
    return then


def _add(frame: pd.DataFrame, row: Hashable, column: str, amount: int) -> None:
    """Add to one count of a frame of counts. pandas' stubs type a cell as any scalar; these cells are numbers."""
    frame.at[row, column] = cast(float, frame.at[row, column]) + amount


def _step_measures(action: str, detail: dict[str, Any] | None) -> dict[str, int]:
    """What one step counts for: handled, bounces, or rated and satisfied."""
    if action == "rate":
        score = (detail or {}).get("satisfaction")
        return {"rated": 1, "satisfied": int(isinstance(score, int) and score >= SATISFIED_MIN)}
    return {"handle": {"handled": 1}, "bounce": {"bounces": 1}}[action]


def _count_where_it_was(
    session: Session, out: pd.DataFrame, period: Period, unit: str, under: str | None, under_level: str | None
) -> None:
    """Move the counts of events in the period — a case received, a step handled, rated or bounced — of cases that
    a boundary change re-located since, to the unit the case was in when the event happened (the counts above are
    by the cases' current attribution). Closed cases are never re-located, so the due cohort stays as it is."""
    moves = _moves(session)
    if not moves:
        return
    column = UNIT_COLUMN[unit]
    cases = session.execute(
        sa.select(Case.id, Case.reported_at, getattr(Case, column), Case.grid_code, Case.microgrid_code).where(
            Case.id.in_(list(moves))
        )
    ).all()
    steps = session.execute(
        sa.select(CaseEvent.case_id, CaseEvent.at, CaseEvent.action, CaseEvent.detail).where(
            CaseEvent.case_id.in_(list(moves)),
            CaseEvent.at >= period.since,
            CaseEvent.at < period.until,
            CaseEvent.action.in_(("handle", "rate", "bounce")),
        )
    ).all()

    def shift(measures: dict[str, int], now: dict[str, Any], then: dict[str, Any]) -> None:
        key_now, key_then = _key(now[column]) or NO_UNIT, _key(then[column]) or NO_UNIT
        in_now, in_then = _in_area(now, under, under_level), _in_area(then, under, under_level)
        if (key_now, in_now) == (key_then, in_then):
            return
        for key, sign, counted in ((key_now, -1, in_now), (key_then, 1, in_then)):
            if not counted:
                continue
            if key not in out.index:
                out.loc[key] = 0
            for name, n in measures.items():
                _add(out, key, name, sign * n)

    current = {}
    for case_id, reported_at, value, grid, micro in cases:
        now = {column: value, "grid_code": grid, "microgrid_code": micro}
        current[case_id] = now
        reported_at = utc(reported_at)
        if period.since <= reported_at < period.until:
            shift({"received": 1}, now, _attribution_at(moves[case_id], now, reported_at))
    for case_id, at, action, detail in steps:
        if action == "bounce" and unit in ("worker", "department"):
            continue  # a bounce counts for whoever bounced it, recorded in the step
        now = current[case_id]
        shift(_step_measures(action, detail), now, _attribution_at(moves[case_id], now, utc(at)))


def _unit_names(session: Session, unit: str, under: str | None) -> dict[str, str]:
    """Every unit of the kind (so that units with nothing to show are listed too), by key, with its name."""
    if unit in ("grid", "community", "subdistrict"):
        active = session.scalar(sa.select(Generation.id).where(Generation.status == "active"))
        query = sa.select(Area.code, Area.name).where(Area.generation_id == active, Area.level == unit)
        if under:
            query = query.where(Area.code.startswith(under))
        return dict(session.execute(query.order_by(Area.code)).all())
    if unit == "branch":
        rows = session.execute(sa.select(PartyOrg.id, PartyOrg.name).where(PartyOrg.kind == "grid_branch"))
    elif unit == "department":
        rows = session.execute(sa.select(Department.id, Department.name).order_by(Department.code))
    else:
        rows = session.execute(
            sa.select(Staff.id, Staff.name)
            .join(StaffArea, StaffArea.staff_id == Staff.id)
            .where(StaffArea.role == "fulltime_worker")
            .distinct()
        )
    return {str(k): name for k, name in rows}


def measures(
    session: Session,
    unit: str,
    *,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    under: str | None = None,
    now: dt.datetime | None = None,
) -> tuple[Period, pd.DataFrame]:
    """The measures of every unit of a kind over a period, plus a total row (key `*`) for all cases."""
    if unit not in UNITS:
        raise InvalidInput(
            f"by: {unit!r} is not a unit; accepted: {', '.join(UNITS)}",
            field="by",
            zh=f"分组方式：{unit!r} 不是统计单位；可选：{'、'.join(f'{UNIT_ZH[u]}（{u}）' for u in UNITS)}。",
        )
    if under is not None and unit not in ("grid", "community", "subdistrict"):
        raise InvalidInput(
            "under: only for grid, community and sub-district measures",
            field="under",
            zh="上级区域（under）只用于按网格、社区和街道统计。",
        )
    period = Period.of(since, until, now)
    names = _unit_names(session, unit, under)
    computed = compute(session, period, unit, under)
    per_unit = computed.drop(index=TOTAL_KEY).reindex(sorted(set(names) | set(computed.index) - {TOTAL_KEY}))
    table = pd.concat([per_unit, computed.loc[[TOTAL_KEY]]])
    for key, _, _, kind in COLUMNS:
        if kind == "count" and key in table:
            table[key] = table[key].fillna(0).astype(int)
    table["unit"] = [unit if k != TOTAL_KEY else "total" for k in table.index]
    table["name"] = [names.get(k, "合计" if k == TOTAL_KEY else None) for k in table.index]
    table = table.reset_index()
    return period, table[[c[0] for c in COLUMNS]]


def area_measures(
    session: Session,
    code: str,
    *,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    now: dt.datetime | None = None,
) -> tuple[Period, dict[str, Any]]:
    """The measures of one area of any level (district to micro-grid) over a period: the total row of its cases."""
    from gridmap.boundaries.areas import get_area

    area = get_area(session, code)
    period = Period.of(since, until, now)
    total = compute(session, period, "grid", under=code, under_level=area.level).loc[[TOTAL_KEY]]
    total["unit"], total["name"] = area.level, area.name
    return period, to_records(total.reset_index()[[c[0] for c in COLUMNS]])[0] | {"key": code}


def area_series(
    session: Session,
    code: str,
    *,
    months: int = 12,
    until: dt.datetime | None = None,
    now: dt.datetime | None = None,
    beside: Callable[[], Session] | None = None,
) -> list[dict[str, Any]]:
    """The measures of one area month by month (China time), the last `months` months up to `until`'s month: the
    same figures as `area_measures` over each month, from a fixed number of queries over the whole span
    (`_series_counts`, `_series_hours`) rather than one `compute` per month. A district down to a grid counts its
    cases and steps from what the database keeps by grid and month (migrations 0018, 0021), and reads its cases
    only for the hours to close; a micro-grid is counted from its own cases. A district's hours of the whole past
    months are read as kept (`keep_close_hours`, migration 0026) where they are: a district of the province on
    PostGIS, in process, 222-346 → 70-167 ms, the same figures. The other months' hours come from the cases.

    `beside`: a factory of sessions on the same database, for a caller that has written nothing in `session` (a
    read-only route): for a district (or an area of nearly every case) the hours to close are then read on a session
    of it while the counts are read on `session`, two statements at once (a district of the province, in process:
    PostGIS 266-312 → 233-265 ms, the counts taking ~55 ms and the hours ~200 ms; SpatiaLite 197-209 → 157-177 ms).
    A smaller area's hours take milliseconds, less than a second session costs."""
    from gridmap.boundaries.areas import get_area

    if not 1 <= months <= 36:
        raise InvalidInput(
            f"months: {months} must be from 1 to 36", field="months", zh=f"月数：{months} 应在 1 至 36 之间。"
        )
    area = get_area(session, code)
    periods = _series_months(months, until, now)
    edges = [p.since for _, p in periods] + [periods[-1][1].until]
    # the months the series reads (partitions pruned); the steps of a year are not joined to the registry for
    # bounds (their cases are found through the grid code's index, or not at all for a district)
    within = _reported_within(session, edges[0], edges[-1], steps=False)
    outside = _few_outside(session, code, area.level, within[1])
    # a district's past months' hours as kept (`keep_close_hours`); the other months from the cases
    kept = _kept_hours(session, code, periods) if area.level == "district" else {}
    missing = [i for i in range(len(periods)) if i not in kept]

    def live(s: Session) -> dict[int, np.ndarray]:
        out: dict[int, np.ndarray] = {}
        for first, last in _runs(missing):
            part = _series_hours(s, edges[first : last + 2], code, area.level, outside, within[0])
            out.update({first + i: v for i, v in part.items()})
        return out

    if not missing or beside is None or (area.level != "district" and outside is None):
        # (a smaller area's hours take ~10 ms, less than a second session costs)
        table = _series_counts(session, edges, code, area.level, outside, *within)
        hours = live(session)
    else:

        def hours_beside() -> dict[int, np.ndarray]:
            with beside() as other:
                return live(other)

        with ThreadPoolExecutor(1, thread_name_prefix="gridmap-series") as pool:
            pending = pool.submit(hours_beside)
            table = _series_counts(session, edges, code, area.level, outside, *within)
            hours = pending.result()
    hours |= {i: v for i, v in kept.items() if v is not None}
    for name, q in (("close_hours_p50", 0), ("close_hours_p90", 1)):
        table[name] = [hours[i][q] if i in hours else np.nan for i in table.index]
    table["closure_rate"] = _rate(table["closed"], table["active"])
    table["on_time_rate"] = _rate(table["closed_on_time"], table["active"])
    table["rework_rate"] = _rate(table["reworked"], table["active"])
    table["extension_rate"] = _rate(table["extended"], table["active"])
    table["satisfaction"] = _rate(table["satisfied"], table["rated"])
    table["unit"], table["key"], table["name"] = area.level, code, area.name
    records = to_records(table[[c[0] for c in COLUMNS]])
    return [
        {"month": label, **{k: v for k, v in record.items() if k not in ("unit", "key", "name")}}
        for (label, _), record in zip(periods, records)
    ]


def warm_series(factory: Callable[[], Session]) -> str | None:
    """Work out the 12-month series of the first district of the active boundaries once, and forget it: what a
    process's first series pays for besides the reading is then paid before anyone asks (the overview's chart is
    on a district dispatcher's first screen) — its statements compiled (~90 ms of ~10 statements), a second
    connection opened for the hours and, on PostGIS, PostGIS loaded by each connection and the case table's
    partitions planned a first time. Any district serves: the statements are the same for every district of a
    month, the code a parameter. Returns the district's code; None without boundaries or districts."""
    from gridmap.boundaries.areas import find_areas

    with factory() as session:
        try:
            first = find_areas(session, level="district", limit=1)
        except DatabaseNotReady:
            return None
        if not first:
            return None
        code = first[0][0].code
        area_series(session, code, beside=factory)
    return code


def _runs(indexes: list[int]) -> list[tuple[int, int]]:
    """Consecutive runs of sorted integers, as (first, last) pairs: [0, 1, 2, 5, 7, 8] → [(0, 2), (5, 5), (7, 8)]."""
    runs: list[tuple[int, int]] = []
    for i in indexes:
        if runs and runs[-1][1] == i - 1:
            runs[-1] = (runs[-1][0], i)
        else:
            runs.append((i, i))
    return runs


def _kept_hours(session: Session, code: str, periods: list[tuple[str, Period]]) -> dict[int, np.ndarray | None]:
    """A district's hours to close kept for the whole months among `periods` (`case_month_hours`), by the month's
    position: [p50, p90], or None for a month kept with no closure. A month cut short, or not kept (the current
    month, a month whose closures changed since), is not there."""
    whole = {_month_key(p.since): i for i, (_, p) in enumerate(periods) if p.until == _next_month(p.since)}
    if not whole:
        return {}
    rows = session.execute(
        sa.select(CaseMonthHours.month, CaseMonthHours.p50, CaseMonthHours.p90).where(
            CaseMonthHours.area_code == code, CaseMonthHours.month.in_(sorted(whole))
        )
    )
    return {whole[m]: None if p50 is None else np.array([p50, p90], dtype=float) for m, p50, p90 in rows}


# migration 0026's advisory locks: (this, the month), shared by the writers of a closure, exclusive by the keeper
HOURS_LOCK_CLASS = 0x676D6863
KEEP_HOURS_MONTHS = 36  # the longest series (`area_series`)


def keep_close_hours(
    factory: Callable[[], Session],
    now: dt.datetime | None = None,
    *,
    months: int = KEEP_HOURS_MONTHS,
    pause: Callable[[], object] | None = None,
) -> int:
    """Work out and keep the hours to close (median and 90th percentile) of every district of the active boundaries
    for each of the `months` whole China-time months before `now`'s (now when None) that is not kept already
    (`case_month_hours`, migration 0026): a district's series then reads them instead of sorting each month's
    closures again (~45,000 a month for a district of the province). Each month in a transaction of its own, from
    `_series_hours` itself, so that a kept month is what the series would have worked out; `pause` (if given) is
    called between months. Returns how many months were worked out; 0 without a schema, boundaries or districts.

    A write of a closure of the month between the reading and the commit would leave the month's rows stale for
    good. On PostgreSQL the month's advisory lock is taken exclusively first (the database's triggers take it
    shared before they delete a month's rows), on SQLite the write lock (`BEGIN IMMEDIATE`); either way the month
    is read after the last such write and before the next, and a month another process kept meanwhile is left as
    it is."""
    from gridmap.boundaries.areas import find_areas

    local = (utc(now) or dt.datetime.now(dt.UTC)).astimezone(CST)
    first = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    starts: list[dt.datetime] = []
    for _ in range(months):
        first = (first - dt.timedelta(days=1)).replace(day=1)
        starts.insert(0, first.astimezone(dt.UTC))
    with factory() as session:
        try:
            codes = [area.code for area, _ in find_areas(session, level="district")]
            if not codes:
                return 0
            complete = dict(
                session.execute(
                    sa.select(CaseMonthHours.month, sa.func.count())
                    .where(CaseMonthHours.month.in_([_month_key(at) for at in starts]))
                    .where(CaseMonthHours.area_code.in_(codes))
                    .group_by(CaseMonthHours.month)
                ).all()
            )
        except (DatabaseNotReady, sa.exc.OperationalError, sa.exc.ProgrammingError):
            return 0  # no schema yet, or not yet 0026's
    done = 0
    for since in starts:
        key = _month_key(since)
        if complete.get(key, 0) >= len(codes):
            continue
        if done and pause is not None:
            pause()
        done += _keep_month(factory, since, key, codes)
    return done


def _keep_month(factory: Callable[[], Session], since: dt.datetime, key: int, codes: list[str]) -> int:
    """`keep_close_hours` of one month: 1 if it was worked out, 0 if another process had just done it."""
    edges = [since, _next_month(since)]
    with factory() as session, session.begin():
        conn = session.connection()
        if conn.dialect.name == "postgresql":
            session.execute(sa.select(sa.func.pg_advisory_xact_lock(HOURS_LOCK_CLASS, key)))
        elif not conn.connection.driver_connection.in_transaction:  # type: ignore[union-attr]
            # SQLite: the write lock before the first read (the driver itself would begin only at the DELETE):
            # a second worker keeping the same month waits here, then finds it kept
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        kept = session.scalar(
            sa.select(sa.func.count())
            .select_from(CaseMonthHours)
            .where(CaseMonthHours.month == key, CaseMonthHours.area_code.in_(codes))
        )
        if (kept or 0) >= len(codes):
            return 0
        session.execute(sa.delete(CaseMonthHours).where(CaseMonthHours.month == key))
        rows = []
        for code in codes:
            hours = _series_hours(session, edges, code, "district").get(0)
            p50, p90 = (None, None) if hours is None else (float(hours[0]), float(hours[1]))
            rows.append({"month": key, "area_code": code, "p50": p50, "p90": p90})
        session.execute(sa.insert(CaseMonthHours), rows)
    return 1


def _series_months(months: int, until: dt.datetime | None, now: dt.datetime | None) -> list[tuple[str, Period]]:
    """The months of a series (China time), oldest first, each with its label: whole calendar months, the last
    one cut at `until` (a month that would be empty is left out). Consecutive: each starts where the last ended."""
    end = utc(until) or utc(now) or dt.datetime.now(dt.UTC)
    local = end.astimezone(CST)
    firsts = [local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)]
    for _ in range(months - 1):
        firsts.insert(0, (firsts[0] - dt.timedelta(days=1)).replace(day=1))
    out = []
    for i, first in enumerate(firsts):
        last = firsts[i + 1] if i + 1 < len(firsts) else min(end, (first + dt.timedelta(days=32)).replace(day=1))
        if last > first:
            out.append((f"{first:%Y-%m}", Period.of(first, last)))
    return out


def _month_of(column: Column, edges: list[dt.datetime]) -> sa.ColumnElement[Any]:
    """Which month of a series a timestamp column falls in, as SQL: i where edges[i] <= value < edges[i + 1], NULL
    outside (or NULL), by binary search over the edges. The comparisons are the ones `compute` makes for one
    month, so a row counts in the same month on both databases."""

    def within(lo: int, hi: int) -> sa.ColumnElement[Any]:
        """The month of a value known to lie in [edges[lo], edges[hi])."""
        if hi - lo == 1:
            return sa.literal_column(str(lo))
        mid = (lo + hi) // 2
        return sa.case((column < edges[mid], within(lo, mid)), else_=within(mid, hi))

    return sa.case((sa.and_(column >= edges[0], column < edges[-1]), within(0, len(edges) - 1)), else_=sa.null())


def _inside(code: str, level: str, session: Session | None = None) -> list[sa.ColumnElement[Any]]:
    """The cases of an area, as `compute` keeps them (a micro-grid by its own code, any other area by the prefix
    of the grid code), plus, for a code of digits, the range of codes with that prefix — the same cases (codes
    compare digit by digit), but a condition the grid code's index can serve. Not for a district on SQLite (or
    without `session`): in a database of one district it holds most cases and a scan is faster, and SQLite's
    planner would take the index. PostgreSQL weighs the range by its statistics: a district of a province (6 % of
    its cases) is read through the index, the one district of a city by a scan."""
    if level == "microgrid":
        return [Case.microgrid_code == code]
    conditions = [Case.grid_code.startswith(code)]
    ranged = level != "district" or (session is not None and session.get_bind().dialect.name == "postgresql")
    if code.isascii() and code.isdigit() and ranged:
        conditions.append(Case.grid_code >= code)
        if code.strip("9"):
            conditions.append(Case.grid_code < str(int(code) + 1).zfill(len(code)))
    return conditions


def _outside(code: str, level: str) -> sa.ColumnElement[Any]:
    """Exactly the cases `_inside` leaves out (a case of no grid included)."""
    column = Case.microgrid_code if level == "microgrid" else Case.grid_code
    if level != "microgrid" and code.isascii() and code.isdigit() and code.strip("9"):
        # the same cases as "no grid, or a grid code not starting with the code", as ranges the grid code's index
        # serves (codes of digits compare digit by digit: those starting with the code are exactly those in
        # [code, code + 1) — what `_inside` also relies on)
        return sa.or_(column.is_(None), column < code, column >= str(int(code) + 1).zfill(len(code)))
    matches = column == code if level == "microgrid" else column.startswith(code)
    return sa.or_(column.is_(None), sa.not_(matches))


FEW_OUTSIDE = 1000  # an area with at most this many cases outside it counts its steps as all steps less theirs


def _few_outside(session: Session, code: str, level: str, steps_within: list[Any] | None = None) -> list[int] | None:
    """The ids of the cases outside the area when there are at most FEW_OUTSIDE of them (the area holds nearly
    every case: a district of a one-district database), else None. `steps_within`: bounds of the report time of
    every case with a step in the period (`_reported_within`; on PostgreSQL): the cases outside them have no step
    to take away, and are not looked for in every month's partition."""
    outside = session.scalars(
        sa.select(Case.id).where(_outside(code, level), *(steps_within or [])).limit(FEW_OUTSIDE + 1)
    ).all()
    return list(outside) if len(outside) <= FEW_OUTSIDE else None


def _month_is(column: str, first: dt.datetime) -> sa.ColumnElement[bool]:
    """PostgreSQL: a time column of the case table in the China-time month that starts at `first`, as the
    expression of the index of 0019 (`ix_case_file_closed_month`), written out (no parameter) so that the planner
    matches it: with the grid code's range after it, a district's month is one range of the index. Beside the
    column's own range, which it does not change (the month of `first` holds it)."""
    month = first.astimezone(CST).strftime("%Y-%m-01 00:00:00")
    return sa.literal_column(
        f"date_trunc('month', case_file.{column} AT TIME ZONE INTERVAL '+08:00') = TIMESTAMP '{month}'", sa.Boolean
    )


def _monthly(
    edges: list[dt.datetime], arm: Callable[[int, dt.datetime, dt.datetime], sa.Select[*tuple[Any, ...]]]
) -> sa.Select[*tuple[Any, ...]] | sa.CompoundSelect[*tuple[Any, ...]]:
    """One statement of one query per month, `arm(i, since, until)`, UNION ALL: each month is a range of an
    index on the time (the indexes of migration 0009), so the database counts index ranges instead of working out
    the month of every row."""
    arms = [arm(i, edges[i], edges[i + 1]) for i in range(len(edges) - 1)]
    return arms[0] if len(arms) == 1 else sa.union_all(*arms)


def _month_label(i: int) -> sa.ColumnElement[Any]:
    return sa.literal_column(str(int(i))).label("m")


# the rating of a `rate` step as SQL, written out as the index `ix_case_event_rating` (migration 0009) has it — the
# same value as `CaseEvent.detail["satisfaction"].as_integer()`, whose bound JSON path no index can match
RATING_SQL = {
    "sqlite": "CAST(JSON_EXTRACT(case_event.detail, '$.\"satisfaction\"') AS INTEGER)",
    "postgresql": "CAST((case_event.detail ->> 'satisfaction') AS INTEGER)",
}


def _steps_by_month_ranges(session: Session, edges: list[dt.datetime]) -> pd.DataFrame:
    """Every step of the period by month (handled, rated, satisfied, bounces), as counts of ranges of the index
    of action and time (and, for the satisfied, of the rating: `ix_case_event_rating`)."""
    action, at = CaseEvent.action, CaseEvent.at
    score = sa.literal_column(RATING_SQL[session.get_bind().dialect.name], sa.Integer)

    def arm(
        i: int, lo: dt.datetime, hi: dt.datetime, what: str, *where: sa.ColumnElement[bool]
    ) -> sa.Select[*tuple[Any, ...]]:
        return sa.select(
            _month_label(i), sa.literal_column(f"'{what}'").label("what"), sa.func.count().label("n")
        ).where(at >= lo, at < hi, *where)

    # the satisfied: `action = 'rate'` written out, as the partial index `ix_case_event_rating` has it (SQLite uses
    # a partial index only for a query that names its condition itself, not through a parameter)
    rated = action == sa.literal_column("'rate'")
    arms = [
        arm(i, edges[i], edges[i + 1], what, *where)
        for what, where in (
            ("handled", [action == "handle"]),
            ("rated", [action == "rate"]),
            ("bounces", [action == "bounce"]),
            ("satisfied", [rated, score >= SATISFIED_MIN]),
        )
        for i in range(len(edges) - 1)
    ]
    query = arms[0] if len(arms) == 1 else sa.union_all(*arms)
    rows = pd.DataFrame([tuple(r) for r in session.execute(query)], columns=["m", "what", "n"])
    out = rows.pivot_table(index="m", columns="what", values="n", aggfunc="sum", fill_value=0)
    out = out.reindex(
        index=pd.RangeIndex(len(edges) - 1), columns=["handled", "rated", "satisfied", "bounces"], fill_value=0
    )
    return out.fillna(0).astype("int64")


def _series_steps(
    session: Session,
    edges: list[dt.datetime],
    code: str,
    level: str,
    outside: list[int] | None,
    steps_within: list[Any] | None = None,
) -> pd.DataFrame:
    """The steps of the area's cases (handled, rated, satisfied, bounces) by month. A district to a grid: from the
    counts the database keeps by grid and month (`_steps_counted`). A micro-grid (its cases are named by their own
    code, not a grid's): when few cases lie outside it (`outside`: a database of nearly one micro-grid), every step
    of the period, counted from index ranges without touching the cases, less the steps of those few, found by their
    ids; otherwise the steps of its cases, found from the cases, the step's action and time wrapped so that no
    planner (with table statistics or none yet) starts from every step of the period instead."""
    if level != "microgrid":
        return _steps_counted(session, edges, code)
    since, until = edges[0], edges[-1]
    action, at = CaseEvent.action, CaseEvent.at
    score = CaseEvent.detail["satisfaction"].as_integer()
    satisfied = sa.case((action == "rate", sa.case((score >= SATISFIED_MIN, 1), else_=0)), else_=0)

    def by_month(of_cases: list[int] | sa.Select[int]) -> pd.DataFrame:
        """The steps of some cases by month, action and satisfied or not (the rating read only for ratings)."""
        act, when = sa.func.coalesce(action, action), sa.func.coalesce(at, at)
        query = (
            sa.select(
                _month_of(at, edges).label("m"), action.label("action"), satisfied.label("satisfied"), sa.func.count()
            )
            .where(when >= since, when < until, act.in_(("handle", "rate", "bounce")), CaseEvent.case_id.in_(of_cases))
            .group_by(sa.literal_column("m"), sa.literal_column("action"), sa.literal_column("satisfied"))
        )
        rows = pd.DataFrame(
            [tuple(r) for r in session.execute(query) if r[0] is not None], columns=["m", "action", "satisfied", "n"]
        ).astype({"m": int, "satisfied": int, "n": int})
        out = (
            pd.DataFrame(
                {
                    "handled": rows["n"].where(rows["action"] == "handle", 0),
                    "rated": rows["n"].where(rows["action"] == "rate", 0),
                    "satisfied": rows["n"].where(rows["satisfied"] == 1, 0),
                    "bounces": rows["n"].where(rows["action"] == "bounce", 0),
                }
            )
            .groupby(rows["m"])
            .sum()
        )
        return out.reindex(pd.RangeIndex(len(edges) - 1), fill_value=0).astype("int64")

    if outside is not None:
        every = _steps_by_month_ranges(session, edges)
        return every - by_month(outside) if outside else every
    return by_month(sa.select(Case.id).where(*_inside(code, level, session), *(steps_within or [])))


def _grid_codes(column: Column, code: str) -> list[sa.ColumnElement[bool]]:
    """The grid codes of an area (district to grid) as `_inside` has them: the prefix, and for a code of digits the
    same codes as a range."""
    conditions = [column.startswith(code)]
    if code.isascii() and code.isdigit():
        conditions.append(column >= code)
        if code.strip("9"):
            conditions.append(column < str(int(code) + 1).zfill(len(code)))
    return conditions


def _grid_range(column: Column, code: str) -> list[sa.ColumnElement[bool]]:
    """The grid codes of an area as `_grid_codes` has them, with only the range for a code of digits (the same codes:
    those starting with it are exactly those in [code, code + 1)), else the prefix."""
    conditions = _grid_codes(column, code)
    return conditions[1:] if len(conditions) == 3 else conditions


def _month_key(at: dt.datetime) -> int:
    """The key of a China-time month in `case_step_count`: year × 100 + month."""
    local = at.astimezone(CST)
    return local.year * 100 + local.month


STEP_COUNTS = ("handled", "rated", "satisfied", "bounces")


def _steps_counted(session: Session, edges: list[dt.datetime], code: str) -> pd.DataFrame:
    """The steps of an area's cases (a district to a grid) by month, from the counts the database keeps by grid and
    month (`case_step_count`, migration 0018): the area's grids × the months, a few thousand rows for a district,
    instead of its cases' history. The months of a series are whole China-time months but the last, which ends at
    `until`: a step after that (none, when the series ends now) is taken away from its month's count."""
    out = _kept_by_month(session, CaseStepCount, STEP_COUNTS, edges, code)
    cut, month_end = utc(edges[-1]), _next_month(edges[-2])
    if cut < month_end:
        out.loc[len(out) - 1] -= _steps_between(session, cut, month_end, code)
    return out


def _kept_by_month(
    session: Session,
    table: type[CaseStepCount] | type[CaseMonthCount],
    names: Sequence[str],
    edges: list[dt.datetime],
    code: str,
) -> pd.DataFrame:
    """The counts `names` of a table kept by grid and China-time month (`case_step_count`, `case_month_count`),
    summed over an area's grids for each whole month of a series (0 … n − 1; the last one whole too)."""
    months = [_month_key(edges[i]) for i in range(len(edges) - 1)]
    query = (
        sa.select(table.month, *(sa.func.sum(getattr(table, n)) for n in names))
        .where(table.month.in_(months), *_grid_codes(table.grid_code, code))
        .group_by(table.month)
    )
    position = {month: i for i, month in enumerate(months)}
    out = pd.DataFrame(0, index=pd.RangeIndex(len(months)), columns=list(names), dtype="int64")
    for month, *values in session.execute(query):
        out.loc[position[month]] = [int(v or 0) for v in values]
    return out


CASE_COUNTS = ("received", "due", "suspended", "active", "closed", "closed_on_time", "reworked", "extended")


def _cases_counted(session: Session, edges: list[dt.datetime], code: str, level: str) -> pd.DataFrame:
    """The cases of an area (a district to a grid) received and of the due cohort by month, from the counts the
    database keeps by grid and month (`case_month_count`, migration 0021): the area's grids × the months instead of
    its cases. The last month of a series ends at `until`: the cases received or due from then to the month's end
    (the deadlines of the running cases, mostly) are counted from the indexes of report time and deadline and taken
    away."""
    out = _kept_by_month(session, CaseMonthCount, CASE_COUNTS, edges, code)
    cut, month_end = utc(edges[-1]), _next_month(edges[-2])
    if cut < month_end:
        tail = _cases_by_month_ranges(session, [cut, month_end], _inside(code, level, session))
        out.loc[len(out) - 1] -= tail.loc[0, list(CASE_COUNTS)].to_numpy()
    return out


def _next_month(first: dt.datetime) -> dt.datetime:
    """The start of the China-time month after the one `first` (a month's start) begins, in UTC (as every time
    bound to a query: SQLite keeps times as UTC text)."""
    local = first.astimezone(CST)
    return (local + dt.timedelta(days=32)).replace(day=1, hour=0, minute=0, second=0, microsecond=0).astimezone(dt.UTC)


def _steps_between(session: Session, since: dt.datetime, until: dt.datetime, code: str) -> list[int]:
    """The four step counts of an area's cases (by their grid now, as `case_step_count` has them) between two times,
    from the history's index of action and time: the steps after a series' end in its last month (normally none).
    On PostgreSQL each step's grid is read from the registry, which names no month partition."""
    owner = case_partitions.REGISTRY if session.get_bind().dialect.name == "postgresql" else Case.__table__
    action = CaseEvent.action
    score = CaseEvent.detail["satisfaction"].as_integer()
    flags = (
        action == "handle",
        action == "rate",
        sa.case((action == "rate", score >= SATISFIED_MIN), else_=sa.false()),
        action == "bounce",
    )
    query = (
        sa.select(*(sa.func.count().filter(flag) for flag in flags))
        .select_from(CaseEvent)
        .join(owner, owner.c.id == CaseEvent.case_id)
        .where(
            CaseEvent.at >= since,
            CaseEvent.at < until,
            action.in_(case_partitions.STEP_ACTIONS),
            # the prefix as a value no index serves: the few steps of the period lead (SQLite would otherwise read a
            # district's cases through the grid code's index, 2.7 s on the province, to find none)
            sa.func.substr(owner.c.grid_code, 1, len(code)) == code,
        )
    )
    return [int(n) for n in session.execute(query).one()]


def _by_month(months: np.ndarray, counts: np.ndarray, n: int) -> np.ndarray:
    """Counts summed by month index (0 … n − 1)."""
    return np.bincount(months.astype("int64"), weights=counts, minlength=n).astype("int64")


def _cases_by_month_ranges(
    session: Session, edges: list[dt.datetime], inside: list[Any], within: list[Any] | None = None
) -> pd.DataFrame:
    """The cases received and the due cohort of each month, the formulas of `_case_counts` summed over ranges of
    the indexes of report time and of deadline (both holding the grid code and, for the deadline, every column the
    formulas read, so that the cases themselves are not read)."""
    in_d = Case.state.not_in(NOT_COUNTED)
    active = sa.and_(in_d, Case.state != "suspended")
    closed = sa.and_(active, Case.state == "closed", Case.closed_at.is_not(None))
    cohort = {
        "due": in_d,
        "suspended": sa.and_(in_d, Case.state == "suspended"),
        "active": active,
        "closed": closed,
        "closed_on_time": sa.and_(closed, Case.closed_at <= Case.due_at),
        "reworked": sa.and_(active, Case.rework_count > 0),
        "extended": sa.and_(active, Case.extension_count > 0),
    }
    zero: sa.ColumnClause[Any] = sa.literal_column("0")
    # one statement: per month an arm for the reports (the cohort's columns 0) and one for the deadlines
    arms = [
        sa.select(_month_label(i), sa.func.count().label("received"), *(zero.label(n) for n in cohort)).where(
            Case.reported_at >= edges[i], Case.reported_at < edges[i + 1], *inside
        )
        for i in range(len(edges) - 1)
    ]
    arms += [
        sa.select(
            _month_label(i),
            zero.label("received"),
            *(sa.func.coalesce(_count(c), 0).label(n) for n, c in cohort.items()),
        ).where(Case.due_at >= edges[i], Case.due_at < edges[i + 1], *inside, *(within or []))
        for i in range(len(edges) - 1)
    ]
    rows = session.execute(sa.union_all(*arms)).all()
    out = pd.DataFrame([tuple(r)[1:] for r in rows], index=[r[0] for r in rows], columns=["received", *cohort])
    return out.groupby(level=0).sum().reindex(pd.RangeIndex(len(edges) - 1)).fillna(0).astype("int64")


def _series_counts(
    session: Session,
    edges: list[dt.datetime],
    code: str,
    level: str,
    outside: list[int] | None,
    within: list[Any] | None = None,
    steps_within: list[Any] | None = None,
) -> pd.DataFrame:
    """Every count of the series, one row per month (0 … n − 1): the cases received and the due cohort — for a
    district down to a grid from the counts the database keeps by grid and month (`_cases_counted`); for a
    micro-grid of nearly every case (`outside` is not None) from ranges of indexes, month by month; otherwise from
    one query over the area's cases grouped by month reported, month due and what the formulas look at (state,
    closed on time or not, …) — the steps from `_series_steps`; then the reports and steps of cases a boundary
    change re-located, counted where the case was at the time (as in `compute`)."""
    since, until = edges[0], edges[-1]
    inside = _inside(code, level, session)
    within = within or []  # bounds of the report time holding the period's cases (`_reported_within`)
    flags = {
        "on_time": Case.closed_at <= Case.due_at,
        "unclosed": Case.closed_at.is_(None),
        "reworked": Case.rework_count > 0,
        "extended": Case.extension_count > 0,
    }
    keys: dict[str, Column] = {
        "mr": _month_of(Case.reported_at, edges),
        "md": _month_of(Case.due_at, edges),
        "state": Case.state,
        **{name: sa.case((condition, 1), else_=0) for name, condition in flags.items()},
    }
    query = (
        sa.select(*(c.label(n) for n, c in keys.items()), sa.func.count().label("n"))
        .where(
            *inside,
            *within,
            sa.or_(
                sa.and_(Case.reported_at >= since, Case.reported_at < until),
                sa.and_(Case.due_at >= since, Case.due_at < until),
            ),
        )
        .group_by(*(sa.literal_column(n) for n in keys))
    )
    months = pd.RangeIndex(len(edges) - 1)
    out = pd.DataFrame(
        0,
        index=months,
        columns=[
            "received",
            "handled",
            "due",
            "suspended",
            "active",
            "closed",
            "closed_on_time",
            "reworked",
            "extended",
            "bounces",
            "rated",
            "satisfied",
        ],
        dtype="int64",
    )
    counted = None
    if level != "microgrid":
        counted = _cases_counted(session, edges, code, level)
    elif outside is not None:
        counted = _cases_by_month_ranges(session, edges, inside, within)
    if counted is not None:
        out[list(counted.columns)] = counted
    rows: list[tuple[Any, ...]] = [] if counted is not None else [tuple(r) for r in session.execute(query).all()]
    cases = pd.DataFrame(rows, columns=[*keys, "n"])
    if len(cases):
        # the formulas of `_case_counts`, on groups of cases alike in all they look at (a condition that is NULL
        # in SQL, such as a state of NULL or a deadline compared with no closure, is false there and here)
        n = cases["n"].to_numpy(dtype="int64")
        reported = cases["mr"].notna().to_numpy()
        out["received"] = _by_month(cases["mr"].to_numpy()[reported], n[reported], len(months))
        state = cases["state"].to_numpy(dtype=object)
        in_d = cases["md"].notna().to_numpy() & cases["state"].notna().to_numpy() & ~np.isin(state, NOT_COUNTED)
        active = in_d & (state != "suspended")
        closed = active & (state == "closed") & (cases["unclosed"].to_numpy() == 0)
        cohort = {
            "due": in_d,
            "suspended": in_d & (state == "suspended"),
            "active": active,
            "closed": closed,
            "closed_on_time": closed & (cases["on_time"].to_numpy() == 1),
            "reworked": active & (cases["reworked"].to_numpy() == 1),
            "extended": active & (cases["extended"].to_numpy() == 1),
        }
        due_month = cases["md"].to_numpy()
        for name, member in cohort.items():
            out[name] = _by_month(due_month[member], n[member], len(months))
    steps = _series_steps(session, edges, code, level, outside, steps_within)
    out[list(steps.columns)] = steps
    _series_where_it_was(session, out, edges, code, level)
    return out


def _series_where_it_was(session: Session, out: pd.DataFrame, edges: list[dt.datetime], code: str, level: str) -> None:
    """`_count_where_it_was` for the area's total over each month of a series: a report or a step of a case that
    a boundary change re-located since counts in the area if the case was in it at that moment (whether it is in
    it now or not)."""
    moves = _moves(session)
    if not moves:
        return
    since, until = edges[0], edges[-1]
    cases = session.execute(
        sa.select(Case.id, Case.reported_at, Case.grid_code, Case.microgrid_code).where(Case.id.in_(list(moves)))
    ).all()
    steps = session.execute(
        sa.select(CaseEvent.case_id, CaseEvent.at, CaseEvent.action, CaseEvent.detail).where(
            CaseEvent.case_id.in_(list(moves)),
            CaseEvent.at >= since,
            CaseEvent.at < until,
            CaseEvent.action.in_(("handle", "rate", "bounce")),
        )
    ).all()

    def shift(when: dt.datetime, measures: dict[str, int], now: dict[str, Any], case_id: int) -> None:
        month = bisect.bisect_right(edges, when) - 1
        if not 0 <= month < len(edges) - 1:
            return
        then = _attribution_at(moves[case_id], now, when)
        change = int(_in_area(then, code, level)) - int(_in_area(now, code, level))
        if change:
            for name, n in measures.items():
                _add(out, month, name, change * n)

    current = {}
    for case_id, reported_at, grid, micro in cases:
        current[case_id] = {"grid_code": grid, "microgrid_code": micro}
        shift(utc(reported_at), {"received": 1}, current[case_id], case_id)
    for case_id, at, action, detail in steps:
        shift(utc(at), _step_measures(action, detail), current[case_id], case_id)


def _series_hours(
    session: Session,
    edges: list[dt.datetime],
    code: str,
    level: str,
    outside: list[int] | None = None,
    within: list[Any] | None = None,
) -> dict[int, np.ndarray]:
    """The median and 90th percentile of hours from report to closure of the cases closed in each month, by month
    (months with none left out), exactly as `compute` has them: the same expression for the hours and the same
    quantile (pandas', numpy's linear interpolation)."""
    sqlite = session.get_bind().dialect.name == "sqlite"
    hours = _hours(session, Case.reported_at, Case.closed_at)
    state: Column = Case.state
    if sqlite:  # its planner would read every closed case through the state's index, slower than a scan
        state = sa.func.coalesce(state, state)
    inside = [*_inside(code, level, session), *(within or [])]
    if not sqlite and (outside is not None or level == "district"):
        # a district: month by month, each month's closures one range of the index of their month (0019) and sorted
        # alone (on the province: 0.22-0.27 s against 1.2-1.6 s for one pass over the year's index of closures)
        # Each arm names little beyond its index range: the grid codes as a range alone (the prefix is the same
        # cases) and the closure's own bound only where the month is cut short (the last one, at `until`): fewer
        # filters on each of the ~45,000 index entries of a month (a district of the province on PostGIS, the
        # twelve arms run serially: 496-545 ms → 458-526 ms). Not bounded by `reported_at < hi`, which would prune
        # the later partitions (408-427 ms) but leave out a case whose closure is written before its report.
        p50, p90 = (sa.func.percentile_cont(q).within_group(hours) for q in (0.5, 0.9))
        grids = _grid_range(Case.grid_code, code) if outside is None else _inside(code, level, session)
        query = _monthly(
            edges,
            lambda i, lo, hi: sa.select(_month_label(i), sa.func.count(), p50, p90).where(
                _month_is("closed_at", lo),
                state == "closed",
                *([Case.closed_at < hi] if hi < _next_month(lo) else []),
                *grids,
                *(within or []),
            ),
        )
        return {int(m): np.array([a, b]) for m, n, a, b in session.execute(query) if n}
    if not sqlite:  # the percentiles worked out by the database, as `compute` has them there; a smaller area's
        # year in one statement (twelve arms over every month partition cost more to plan than to run)
        month = _month_of(Case.closed_at, edges)
        quantiles = _sql_quantiles(
            session, month, hours, [state == "closed", Case.closed_at >= edges[0], Case.closed_at < edges[-1], *inside]
        )
        return {int(m): np.array(q) for (m, total), q in quantiles.items() if not total and m is not None}
    if outside is None and level == "district":
        return _district_hours_sqlite(session, edges, code, within or [])
    if outside is not None:  # an area of nearly every case: month by month, ranges of the index of closure
        query = _monthly(
            edges,
            lambda i, lo, hi: sa.select(_month_label(i), hours).where(
                state == "closed", Case.closed_at >= lo, Case.closed_at < hi, *inside
            ),
        )
    else:  # the area's grid codes as a range alone (the same cases), which leads 0023's index: the year's closures
        # of a district of the province from the index alone (0.37-0.39 s), not those of every district (1.1-1.2 s)
        if level != "microgrid":
            inside = [*_grid_range(Case.grid_code, code), *(within or [])]
        query = sa.select(_month_of(Case.closed_at, edges), hours).where(
            state == "closed", Case.closed_at >= edges[0], Case.closed_at < edges[-1], *inside
        )
    # a district's year is ~50,000 rows: read as the driver gives them (two numbers each), not as result rows
    result = session.connection().execute(query)
    try:
        rows = result.cursor.fetchall()
    finally:
        result.close()
    if not rows:
        return {}
    values = np.array(rows, dtype=float)
    return {
        int(m): pd.Series(values[values[:, 0] == m, 1]).quantile([0.5, 0.9]).to_numpy() for m in np.unique(values[:, 0])
    }


# SQLite: a closure's China-time month ('YYYY-MM') and its hours from report to closure (`_hours`), written as
# migration 0025's index `ix_case_file_district_close_hours` has them: SQLite matches an indexed expression by its
# form, so these must stay as the index was made
CLOSE_MONTH_SQLITE = "strftime('%Y-%m', case_file.closed_at, '+8 hours')"
CLOSE_HOURS_SQLITE = "(julianday(case_file.closed_at) - julianday(case_file.reported_at)) * 24.0"
_QUANTILES = (0.5, 0.9)


def _district_hours_sqlite(
    session: Session, edges: list[dt.datetime], code: str, within: list[Any]
) -> dict[int, np.ndarray]:
    """`_series_hours` of a district on SQLite, from migration 0025's index, where a district's closures of a month
    are one range in order of their hours: each month's count, then the few values around each percentile's
    position (`LIMIT … OFFSET …` over that range), two statements in all. Only those values come to Python, where
    `_quantiles_around` gives pandas' answer over the whole month (a district of the province: 0.78-0.85 s when
    the year's 545,806 closures came to Python for their percentiles)."""
    month = sa.literal_column(CLOSE_MONTH_SQLITE, sa.String)
    hours = sa.literal_column(CLOSE_HOURS_SQLITE, sa.Float)

    def month_of(i: int) -> list[sa.ColumnElement[bool]]:
        lo, hi = edges[i], edges[i + 1]
        return [
            Case.district_code == code,
            month == lo.astimezone(CST).strftime("%Y-%m"),
            Case.state == sa.literal_column("'closed'"),  # the index's own condition, written out (not a parameter)
            *_grid_range(Case.grid_code, code),  # the district's grids, as the other areas' hours have them
            *([Case.closed_at < hi] if hi < _next_month(lo) else []),  # the month cut short (at `until`)
            *within,
        ]

    counted = _monthly(edges, lambda i, lo, hi: sa.select(_month_label(i), sa.func.count()).where(*month_of(i)))
    counts = {int(m): int(n) for m, n in session.execute(counted) if n}
    if not counts:
        return {}
    arms = []
    for i, n in counts.items():
        for j, first in enumerate(_around(n)):
            picked = sa.select(hours.label("h")).where(*month_of(i)).order_by(hours).limit(4).offset(first)
            part = picked.subquery(f"p{i}_{j}")
            arms.append(sa.select(_month_label(i), sa.literal_column(str(first)).label("pos"), part.c.h))
    values: dict[tuple[int, int], list[float]] = {}
    for m, first, h in session.execute(sa.union_all(*arms) if len(arms) > 1 else arms[0]):
        values.setdefault((int(m), int(first)), []).append(float(h))
    return {i: _quantiles_around(n, {f: values[(i, f)] for f in _around(n)}) for i, n in counts.items()}


def _around(n: int) -> list[int]:
    """The first of the (up to) four sorted positions read around each of `_QUANTILES`' positions in `n` values:
    one either side of floor(q·(n − 1)) and the next, so that numpy's own rounding of the position (a few ulps
    off) still falls among them."""
    return sorted({min(max(int(np.floor(q * (n - 1))) - 1, 0), max(n - 4, 0)) for q in _QUANTILES})


def _quantiles_around(n: int, around: dict[int, list[float]]) -> np.ndarray:
    """pandas' `quantile(_QUANTILES)` of `n` sorted values of which only those in `around` are known (first
    position → the values from it on): worked out on `n` values that hold them at their positions and, before and
    after, the nearest known one. The interpolation reads only the two values at the position it works out, so
    the answer is that of the whole month, to the bit."""
    filled = np.empty(n, dtype=float)
    known = sorted((first + k, v) for first, vs in around.items() for k, v in enumerate(vs))
    position = 0
    for at, value in known:
        filled[position : at + 1] = value
        position = at + 1
    filled[position:] = known[-1][1]
    return pd.Series(filled).quantile(list(_QUANTILES)).to_numpy()


def to_records(table: pd.DataFrame) -> list[dict[str, Any]]:
    """JSON-ready rows: NaN becomes None, rates rounded to 4 places, hours to 2."""
    records = []
    for row in table.itertuples(index=False):
        record = {}
        for (key, _, _, kind), value in zip(COLUMNS, row):
            if kind in ("rate", "hours"):
                record[key] = None if pd.isna(value) else round(float(value), 4 if kind == "rate" else 2)
            elif kind == "count":
                record[key] = int(value)
            else:
                record[key] = None if value is None or (isinstance(value, float) and np.isnan(value)) else value
        records.append(record)
    return records


def export(table: pd.DataFrame, fmt: str, *, lang: str = "zh") -> bytes:
    """The table as CSV (UTF-8 with a BOM, so that Excel reads the Chinese headings) or XLSX (rates formatted as
    percentages), headings in Chinese or English."""
    headings = {key: (zh if lang == "zh" else en) for key, zh, en, _ in COLUMNS}
    frame = table.copy()
    total = frame["key"] == TOTAL_KEY
    if lang == "zh":  # no codes in a Chinese export's enumerated column: 网格 / 社区 / … / 合计
        frame["unit"] = [UNIT_NAMES_ZH.get(u, u) for u in frame["unit"]]
    else:
        frame.loc[total, "name"] = "total"
    frame = frame.rename(columns=headings)
    if fmt == "csv":  # names of units and workers are text that could look like a formula: see gridmap.io.tabular
        return tabular.csv_bytes(frame, float_format="%.4f")
    if fmt != "xlsx":
        raise InvalidInput(
            f"format: {fmt!r}; accepted: json, csv, xlsx",
            field="format",
            zh=f"格式：{fmt!r} 不被接受；可选：json、csv、xlsx。",
        )

    def layout(sheet: Worksheet) -> None:
        from openpyxl.utils import get_column_letter

        for i, (_, zh, en, kind) in enumerate(COLUMNS, start=1):
            letter = get_column_letter(i)
            sheet.column_dimensions[letter].width = max(10, len(zh if lang == "zh" else en) * 2)
            if kind in ("rate", "hours"):
                for cell in sheet[letter][1:]:
                    cell.number_format = "0.00%" if kind == "rate" else "0.0"
        sheet.freeze_panes = "D2"

    return tabular.xlsx_bytes(frame, "measures" if lang == "en" else "考核指标", after=layout)
