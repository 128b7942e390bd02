"""How the work is measured (DOMAIN.md §4): one place for every formula, per grid, branch, community, sub-district,
department or worker, over any period.

A period is the half-open interval [since, until). States are taken as they are when the report runs (a case
suspended last month and resumed since is no longer suspended). A case counts for a unit by its current
attribution: its grid, community and sub-district codes, its party branch, the department it is with, and the
worker it is assigned to; a bounce counts for whoever bounced it (recorded in the bounce's history entry).

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

import datetime as dt
import io
from dataclasses import dataclass

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.orm import Session

from gridmap.cases import utc
from gridmap.errors import InvalidInput
from gridmap.tables import Area, Case, CaseEvent, Department, Generation, PartyOrg, Staff, StaffArea

UNITS = ("grid", "community", "subdistrict", "branch", "department", "worker")
UNIT_COLUMN = {"grid": "grid_code", "community": "community_code", "subdistrict": "subdistrict_code",
               "branch": "branch_id", "department": "department_id", "worker": "assignee_id"}
UNIT_ZH = {"grid": "网格", "community": "社区", "subdistrict": "街道", "branch": "网格党支部", "department": "职能部门",
           "worker": "网格员"}
NOT_COUNTED = ("rejected", "voided", "merged")
SATISFIED_MIN = 3

# every output column: key, Chinese heading, English heading, kind (count | rate | hours | text)
COLUMNS = [
    ("unit", "单位类型", "unit", "text"), ("key", "编码", "code", "text"), ("name", "名称", "name", "text"),
    ("received", "受理量", "received", "count"), ("handled", "处置量", "handled", "count"),
    ("due", "应结案数", "due to close", "count"), ("suspended", "挂账数", "suspended", "count"),
    ("closed", "结案数", "closed", "count"), ("closed_on_time", "按期结案数", "closed on time", "count"),
    ("closure_rate", "结案率", "closure rate", "rate"), ("on_time_rate", "按期结案率", "on-time closure rate", "rate"),
    ("reworked", "返工数", "reworked", "count"), ("rework_rate", "返工率", "rework rate", "rate"),
    ("extended", "延期数", "extended", "count"), ("extension_rate", "延期率", "extension rate", "rate"),
    ("bounces", "退单数", "bounces", "count"),
    ("close_hours_p50", "办结时长中位数(小时)", "hours to close, median", "hours"),
    ("close_hours_p90", "办结时长90分位(小时)", "hours to close, 90th percentile", "hours"),
    ("rated", "参评数", "rated", "count"), ("satisfied", "满意数", "satisfied", "count"),
    ("satisfaction", "满意率", "satisfaction", "rate"),
]
TOTAL_KEY = "*"


@dataclass(frozen=True)
class Period:
    """The half-open interval [since, until), both aware."""

    since: dt.datetime
    until: dt.datetime

    @classmethod
    def of(cls, since: dt.datetime | None, until: dt.datetime | None, now: dt.datetime | None = None) -> Period:
        """The period asked for; by default from the first of this month (China time) until now."""
        now = utc(now) or dt.datetime.now(dt.timezone.utc)
        if until is None:
            until = now
        if since is None:
            local = utc(until).astimezone(dt.timezone(dt.timedelta(hours=8)))
            since = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
            if since >= local:  # at midnight on the 1st: the whole previous month
                since = (since - dt.timedelta(days=1)).replace(day=1)
        since, until = utc(since), utc(until)
        if until <= since:
            raise InvalidInput(f"until: {until.isoformat()} must be after since {since.isoformat()}", field="until")
        if until - since > dt.timedelta(days=3660):
            raise InvalidInput("since: a period of at most ten years", field="since")
        return cls(since, until)


def _rate(numerator: pd.Series, denominator: pd.Series) -> pd.Series:
    return (numerator / denominator.where(denominator > 0)).astype(float)


def _keys(values: pd.Series) -> pd.Series:
    """Unit keys as text: area codes as they are, ids of branches, departments and workers as "12"."""
    if values.dtype.kind in "if":  # ids (float when some are missing)
        ints = pd.array(values, dtype="Int64")
        return pd.Series([None if v is pd.NA else str(v) for v in ints], index=values.index, dtype=object)
    def one(value):
        if value is None or (isinstance(value, float) and np.isnan(value)):
            return None
        if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            return str(int(value))
        return str(value)
    return values.map(one).astype(object)


def _frame(session: Session, statement, columns: list[str]) -> pd.DataFrame:
    """A query's rows as a DataFrame, built column by column (much faster than from Row objects)."""
    rows = session.execute(statement).all()
    data = list(zip(*rows)) if rows else [()] * len(columns)
    return pd.DataFrame({name: pd.Series(values, dtype=object) for name, values in zip(columns, data)})


def _percentile(q: float):
    return lambda values: float(np.percentile(values, q)) if len(values) else np.nan


def _frames(session: Session, period: Period) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The cases that can count in the period, and the steps taken in it that are counted."""
    since, until = period.since, period.until
    columns = [Case.id, Case.state, Case.reported_at, Case.due_at, Case.closed_at, Case.rework_count,
               Case.extension_count, *(getattr(Case, c) for c in UNIT_COLUMN.values())]
    relevant = sa.or_(Case.reported_at.between(since, until), Case.due_at.between(since, until),
                      Case.closed_at.between(since, until))
    cases = _frame(session, sa.select(*columns).where(relevant), [c.key for c in columns])
    for column in ("rework_count", "extension_count"):
        cases[column] = pd.to_numeric(cases[column])
    units = [getattr(Case, c) for c in UNIT_COLUMN.values()]
    in_period = sa.and_(CaseEvent.at >= since, CaseEvent.at < until)
    # handle steps need no detail; bounces and ratings do (who bounced, the score)
    handled = _frame(session, sa.select(CaseEvent.action, *units).join(Case, Case.id == CaseEvent.case_id)
                     .where(in_period, CaseEvent.action == "handle"), ["action", *UNIT_COLUMN.values()])
    handled["detail"] = None
    detailed = _frame(session, sa.select(CaseEvent.action, CaseEvent.detail, *units)
                      .join(Case, Case.id == CaseEvent.case_id)
                      .where(in_period, CaseEvent.action.in_(("bounce", "rate"))),
                      ["action", "detail", *UNIT_COLUMN.values()])
    events = pd.concat([handled, detailed], ignore_index=True)
    for column in ("reported_at", "due_at", "closed_at"):
        cases[column] = pd.to_datetime(cases[column], utc=True)
    if len(events):
        # a bounce counts for the worker or department that bounced it: the case no longer names them
        bounce = events["action"] == "bounce"
        for unit_column, key in (("assignee_id", "from_assignee_id"), ("department_id", "from_department_id")):
            events[unit_column] = events[unit_column].astype(object)
            events.loc[bounce, unit_column] = [d.get(key) if isinstance(d, dict) else None
                                               for d in events.loc[bounce, "detail"]]
        events["satisfied"] = [isinstance(d, dict) and isinstance(d.get("satisfaction"), int)
                               and d["satisfaction"] >= SATISFIED_MIN for d in events["detail"]]
    else:
        events["satisfied"] = pd.Series(dtype=bool)
    return cases, events


def compute(cases: pd.DataFrame, events: pd.DataFrame, period: Period, column: str | None) -> pd.DataFrame:
    """The measures of every unit in `column` (None: one row for everything), by the formulas above."""
    since, until = pd.Timestamp(period.since), pd.Timestamp(period.until)
    key = _keys(cases[column]) if column else pd.Series(TOTAL_KEY, index=cases.index, dtype=object)
    counted = ~cases["state"].isin(NOT_COUNTED)
    in_d = counted & (cases["due_at"] >= since) & (cases["due_at"] < until)
    suspended = in_d & (cases["state"] == "suspended")
    active = in_d & ~suspended
    closed = active & (cases["state"] == "closed") & cases["closed_at"].notna()
    on_time = closed & (cases["closed_at"] <= cases["due_at"])
    closed_in_p = (cases["state"] == "closed") & (cases["closed_at"] >= since) & (cases["closed_at"] < until)
    hours = (cases["closed_at"] - cases["reported_at"]).dt.total_seconds() / 3600.0
    frame = pd.DataFrame({
        "key": key,
        "received": (cases["reported_at"] >= since) & (cases["reported_at"] < until),
        "due": in_d, "suspended": suspended, "closed": closed, "closed_on_time": on_time,
        "reworked": active & (cases["rework_count"].fillna(0) > 0),
        "extended": active & (cases["extension_count"].fillna(0) > 0),
        "active": active,
    })
    out = frame.groupby("key", dropna=True).sum().astype(int)
    close_hours = hours[closed_in_p].groupby(key[closed_in_p])
    out["close_hours_p50"] = close_hours.agg(_percentile(50))
    out["close_hours_p90"] = close_hours.agg(_percentile(90))
    ev_key = _keys(events[column]) if column else pd.Series(TOTAL_KEY, index=events.index, dtype=object)
    ev = pd.DataFrame({"key": ev_key, "handled": events["action"] == "handle",
                       "bounces": events["action"] == "bounce", "rated": events["action"] == "rate",
                       "satisfied": (events["action"] == "rate") & events["satisfied"].astype(bool)})
    out = out.join(ev.groupby("key", dropna=True).sum().astype(int), how="outer")
    for name in ("received", "handled", "due", "suspended", "closed", "closed_on_time", "reworked", "extended",
                 "active", "bounces", "rated", "satisfied"):
        out[name] = out[name].fillna(0).astype(int) if name in out else 0
    out["closure_rate"] = _rate(out["closed"], out["active"])
    out["on_time_rate"] = _rate(out["closed_on_time"], out["active"])
    out["rework_rate"] = _rate(out["reworked"], out["active"])
    out["extension_rate"] = _rate(out["extended"], out["active"])
    out["satisfaction"] = _rate(out["satisfied"], out["rated"])
    out.index.name = "key"
    return out.drop(columns=["active"])


def _unit_names(session: Session, unit: str, under: str | None) -> dict[str, str]:
    """Every unit of the kind (so that units with nothing to show are listed too), by key, with its name."""
    if unit in ("grid", "community", "subdistrict"):
        active = session.scalar(sa.select(Generation.id).where(Generation.status == "active"))
        query = sa.select(Area.code, Area.name).where(Area.generation_id == active, Area.level == unit)
        if under:
            query = query.where(Area.code.startswith(under))
        return {code: name for code, name in session.execute(query.order_by(Area.code))}
    if unit == "branch":
        rows = session.execute(sa.select(PartyOrg.id, PartyOrg.name).where(PartyOrg.kind == "grid_branch"))
    elif unit == "department":
        rows = session.execute(sa.select(Department.id, Department.name).order_by(Department.code))
    else:
        rows = session.execute(sa.select(Staff.id, Staff.name).join(StaffArea, StaffArea.staff_id == Staff.id)
                               .where(StaffArea.role == "fulltime_worker").distinct())
    return {str(k): name for k, name in rows}


def measures(session: Session, unit: str, *, since: dt.datetime | None = None, until: dt.datetime | None = None,
             under: str | None = None, now: dt.datetime | None = None) -> tuple[Period, pd.DataFrame]:
    """The measures of every unit of a kind over a period, plus a total row (key `*`) for all cases."""
    if unit not in UNITS:
        raise InvalidInput(f"by: {unit!r} is not a unit; accepted: {', '.join(UNITS)}", field="by")
    if under is not None and unit not in ("grid", "community", "subdistrict"):
        raise InvalidInput("under: only for grid, community and sub-district measures", field="under")
    period = Period.of(since, until, now)
    cases, events = _frames(session, period)
    if under:
        prefix_of = cases["grid_code"].fillna("").str.startswith(under)
        cases = cases[prefix_of]
        events = events[events["grid_code"].fillna("").str.startswith(under)]
    names = _unit_names(session, unit, under)
    per_unit = compute(cases, events, period, UNIT_COLUMN[unit])
    per_unit = per_unit.reindex(sorted(set(names) | set(per_unit.index)))
    total = compute(cases, events, period, None)
    table = pd.concat([per_unit, total.reindex([TOTAL_KEY])])
    for key, _, _, kind in COLUMNS:
        if kind == "count" and key in table:
            table[key] = table[key].fillna(0).astype(int)
    table["unit"] = [unit if k != TOTAL_KEY else "total" for k in table.index]
    table["name"] = [names.get(k, "合计" if k == TOTAL_KEY else None) for k in table.index]
    table = table.reset_index()
    return period, table[[c[0] for c in COLUMNS]]


def to_records(table: pd.DataFrame) -> list[dict]:
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
    frame = table.rename(columns=headings)
    if fmt == "csv":
        return frame.to_csv(index=False, float_format="%.4f").encode("utf-8-sig")
    if fmt != "xlsx":
        raise InvalidInput(f"format: {fmt!r}; accepted: json, csv, xlsx", field="format")
    buffer = io.BytesIO()
    with pd.ExcelWriter(buffer, engine="openpyxl") as writer:
        frame.to_excel(writer, index=False, sheet_name="measures" if lang == "en" else "考核指标")
        sheet = writer.sheets["measures" if lang == "en" else "考核指标"]
        for i, (_, zh, en, kind) in enumerate(COLUMNS, start=1):
            letter = sheet.cell(row=1, column=i).column_letter
            sheet.column_dimensions[letter].width = max(10, len(zh if lang == "zh" else en) * 2)
            if kind in ("rate", "hours"):
                for cell in sheet[letter][1:]:
                    cell.number_format = "0.00%" if kind == "rate" else "0.0"
        sheet.freeze_panes = "D2"
    return buffer.getvalue()
