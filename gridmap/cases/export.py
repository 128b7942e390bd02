"""A list of cases as a spreadsheet (CSV with a BOM for Excel, or XLSX): what a manager hands on — number, title,
state, category, channel, where (sub-district, community, grid by name), who holds it, when reported, the
deadline and by how long it is overdue, when closed, the address. Headings and values in Chinese (or English);
times in China time. No personal data of reporters."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.orm import Session

from gridmap.cases.intake import SOURCE_ZH, STATE_ZH, utc
from gridmap.errors import InvalidInput
from gridmap.io import tabular
from gridmap.store.tables import Area, Case, Department, Generation, Staff

CST = dt.timezone(dt.timedelta(hours=8))
# key, Chinese heading, English heading
COLUMNS = [
    ("number", "编号", "number"),
    ("title", "标题", "title"),
    ("state", "状态", "state"),
    ("category", "类别", "category"),
    ("source", "来源", "source"),
    ("subdistrict", "街道", "sub-district"),
    ("community", "社区", "community"),
    ("grid", "网格", "grid"),
    ("holder", "承办", "holder"),
    ("reported_at", "上报时间", "reported"),
    ("due_at", "处置时限", "deadline"),
    ("overdue_h", "超期时长（小时）", "overdue by (hours)"),
    ("closed_at", "结案时间", "closed"),
    ("address", "地址", "address"),
]
OPEN = ("reported", "filed", "dispatched", "accepted", "rework", "handled")


def _local(moment: dt.datetime | None) -> str | None:
    return None if moment is None else f"{utc(moment).astimezone(CST):%Y-%m-%d %H:%M}"


def table(session: Session, rows: list[Case], *, lang: str = "zh", now: dt.datetime | None = None) -> pd.DataFrame:
    """The cases as a frame with the headings of `COLUMNS` (names of areas, workers and departments read in one
    query each)."""
    now = utc(now) or dt.datetime.now(dt.UTC)
    codes = {c for case in rows for c in (case.subdistrict_code, case.community_code, case.grid_code) if c}
    active = session.scalar(sa.select(Generation.id).where(Generation.status == "active"))
    names: dict[str | None, str | None] = (
        dict(
            session.execute(
                sa.select(Area.code, Area.name).where(Area.generation_id == active, Area.code.in_(codes))
            ).all()
        )
        if codes
        else {}
    )
    staff_ids = {c.assignee_id for c in rows if c.assignee_id}
    staff: dict[int | None, str] = (
        dict(session.execute(sa.select(Staff.id, Staff.name).where(Staff.id.in_(staff_ids))).all()) if staff_ids else {}
    )
    dept_ids = {c.department_id for c in rows if c.department_id}
    depts: dict[int | None, str] = (
        dict(session.execute(sa.select(Department.id, Department.name).where(Department.id.in_(dept_ids))).all())
        if dept_ids
        else {}
    )
    zh = lang == "zh"
    records = []
    for c in rows:
        due = utc(c.due_at)
        overdue = round((now - due).total_seconds() / 3600, 1) if due and c.state in OPEN and due < now else None
        holder = depts.get(c.department_id) if c.department_id else staff.get(c.assignee_id)
        records.append(
            {
                "number": c.number,
                "title": c.title,
                "state": STATE_ZH.get(c.state, c.state) if zh else c.state,
                "category": c.category.name if c.category else None,
                "source": SOURCE_ZH.get(c.source, c.source) if zh else c.source,
                "subdistrict": names.get(c.subdistrict_code, c.subdistrict_code),
                "community": names.get(c.community_code, c.community_code),
                "grid": names.get(c.grid_code, c.grid_code),
                "holder": holder,
                "reported_at": _local(c.reported_at),
                "due_at": _local(c.due_at),
                "overdue_h": overdue,
                "closed_at": _local(c.closed_at),
                "address": c.address,
            }
        )
    frame = pd.DataFrame(records, columns=[k for k, _, _ in COLUMNS])
    return frame.rename(columns={k: (z if zh else e) for k, z, e in COLUMNS})


def export(frame: pd.DataFrame, fmt: str, *, lang: str = "zh") -> bytes:
    """CSV (UTF-8 with a BOM) or XLSX; cells that could read as formulas are made inert (gridmap.io.tabular)."""
    if fmt == "csv":
        return tabular.csv_bytes(frame)
    if fmt == "xlsx":
        return tabular.xlsx_bytes(frame, "事件清单" if lang == "zh" else "cases")
    raise InvalidInput(
        f"format: {fmt!r}; accepted: csv, xlsx", field="format", zh=f"格式：{fmt!r} 无效；可选：csv、xlsx"
    )
