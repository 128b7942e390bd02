"""The catalogue and the working calendar, as an administrator edits them.

Categories: a code (a letter E/C/S for event, component or community service, then four digits: major class and
minor class), kind, major class, name, time limit and unit, urgency, filing condition and responsible department.
A category with cases cannot be deleted; it is retired (`active` false): no new case may use it, the cases it
has keep it. A changed time limit applies from the next acceptance: deadlines already running are not moved.

The calendar: exceptions to the Monday–Friday week, one row per day — `holiday` (a day off that would be worked)
or `workday` (a weekend day worked, 调休). A new State Council notice is entered day by day (or with `put_days`).
Deadlines already set are not recomputed.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from gridmap.calendar import TIME_UNITS
from gridmap.errors import Conflict, InvalidInput, NotFound, field_zh
from gridmap.store.tables import CalendarDay, CaseCategory, Department

KINDS = {"event": "E", "component": "C", "service": "S"}
URGENCIES = ("normal", "urgent", "critical")
EDITABLE = ("major_class", "name", "time_limit", "time_unit", "urgency", "filing_condition", "department", "active")
MAX_LIMIT = {"work_hours": 2000, "work_days": 250, "calendar_days": 365}


def category_dict(category: CaseCategory) -> dict[str, Any]:
    return {
        "code": category.code,
        "kind": category.kind,
        "major_class": category.major_class,
        "name": category.name,
        "time_limit": category.time_limit,
        "time_unit": category.time_unit,
        "urgency": category.urgency,
        "filing_condition": category.filing_condition,
        "department": category.department.code if category.department else None,
        "department_name": category.department.name if category.department else None,
        "active": category.active is not False,
    }


def list_categories(session: Session, *, include_retired: bool = False) -> list[dict[str, Any]]:
    query = sa.select(CaseCategory).order_by(CaseCategory.code)
    if not include_retired:
        query = query.where(CaseCategory.active.is_(True))
    return [category_dict(c) for c in session.scalars(query)]


def _get(session: Session, code: str) -> CaseCategory:
    category = session.scalars(sa.select(CaseCategory).where(CaseCategory.code == code)).first()
    if category is None:
        raise NotFound(f"code: no category has code {code!r}", field="code", zh=f"没有编码为 {code!r} 的事项类别。")
    return category


def _check(values: dict[str, Any], kind: str) -> dict[str, Any]:
    """Validate the editable fields present in `values`; returns them with the department resolved later."""
    out: dict[str, Any] = {}
    for key in ("major_class", "name"):
        if key in values:
            text = values[key]
            if not isinstance(text, str) or not text.strip() or len(text) > (64 if key == "major_class" else 128):
                raise InvalidInput(
                    f"{key}: text of 1 to {64 if key == 'major_class' else 128} characters",
                    field=key,
                    zh=f"{('大类' if key == 'major_class' else '名称')}：应为 "
                    f"1–{(64 if key == 'major_class' else 128)} 个字符的文字。",
                )
            out[key] = text.strip()
    if "time_unit" in values:
        if values["time_unit"] not in TIME_UNITS:
            raise InvalidInput(
                f"time_unit: {values['time_unit']!r}; accepted: {', '.join(TIME_UNITS)}",
                field="time_unit",
                zh=f"时限单位：{values['time_unit']!r} 不被接受；可选：{', '.join(TIME_UNITS)}。",
            )
        out["time_unit"] = values["time_unit"]
    if "time_limit" in values:
        limit = values["time_limit"]
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise InvalidInput(
                "time_limit: a whole number of at least 1 (in time_unit)",
                field="time_limit",
                zh="办理时限：应为不小于 1 的整数（单位见时限单位）。",
            )
        out["time_limit"] = limit
    if "urgency" in values:
        if values["urgency"] not in URGENCIES:
            raise InvalidInput(
                f"urgency: {values['urgency']!r}; accepted: {', '.join(URGENCIES)}",
                field="urgency",
                zh=f"紧急程度：{values['urgency']!r} 不被接受；可选：normal（一般）、urgent（紧急）、"
                "critical（特急）。",
            )
        out["urgency"] = values["urgency"]
    if "filing_condition" in values:
        text = values["filing_condition"]
        if text is not None and (not isinstance(text, str) or len(text) > 2000):
            raise InvalidInput(
                "filing_condition: text of at most 2000 characters, or null",
                field="filing_condition",
                zh="立案条件：应为不超过 2000 个字符的文字，或留空。",
            )
        out["filing_condition"] = text
    if "active" in values:
        if not isinstance(values["active"], bool):
            raise InvalidInput("active: true or false", field="active", zh="启用：应为 true 或 false。")
        out["active"] = values["active"]
    if "department" in values:
        out["department"] = values["department"]
    return out


def _department_id(session: Session, code: str | None) -> int | None:
    if code is None:
        return None
    department = session.scalars(sa.select(Department).where(Department.code == code)).first()
    if department is None:
        known = ", ".join(session.scalars(sa.select(Department.code).order_by(Department.code)))
        raise InvalidInput(
            f"department: {code!r} is not a department code; known: {known}",
            field="department",
            zh=f"部门：{code!r} 不是部门编码；已有：{known}。",
        )
    return department.id


def _check_limit(category: CaseCategory) -> None:
    if category.time_limit > MAX_LIMIT[category.time_unit]:
        raise InvalidInput(
            f"time_limit: {category.time_limit} {category.time_unit} is too long; at most "
            f"{MAX_LIMIT[category.time_unit]}",
            field="time_limit",
            zh=f"办理时限：{category.time_limit} {category.time_unit} 过长，最多 {MAX_LIMIT[category.time_unit]}。",
        )


def create_category(session: Session, values: dict[str, Any]) -> CaseCategory:
    """A new minor class; the code's letter must match the kind (E event, C component, S service)."""
    kind, code = values.get("kind"), values.get("code")
    if kind not in KINDS:
        raise InvalidInput(
            f"kind: {kind!r}; accepted: {', '.join(KINDS)}",
            field="kind",
            zh=f"类型：{kind!r} 不被接受；可选：event（事件）、component（部件）、service（服务）。",
        )
    if not isinstance(code, str) or not re.fullmatch(rf"{KINDS[kind]}\d{{4}}", code):
        raise InvalidInput(
            f"code: {code!r}; a {kind} code is {KINDS[kind]} and four digits, e.g. {KINDS[kind]}0712",
            field="code",
            zh=f"编码：{code!r} 不符合格式；此类编码为 {KINDS[kind]} 加四位数字，如 {KINDS[kind]}0712。",
        )
    missing = [k for k in ("major_class", "name", "time_limit", "time_unit") if k not in values]
    if missing:
        raise InvalidInput(
            f"{missing[0]}: required for a new category",
            field=missing[0],
            zh=f"新建事项类别须填写{field_zh(missing[0])}。",
        )
    checked = _check(values, kind)
    if session.scalar(sa.select(sa.func.count()).select_from(CaseCategory).where(CaseCategory.code == code)):
        raise Conflict(
            f"code: {code} already exists; change it with PATCH",
            field="code",
            zh=f"编码 {code} 已存在；如需修改请用 PATCH。",
        )
    category = CaseCategory(
        code=code,
        kind=kind,
        major_class=checked["major_class"],
        name=checked["name"],
        time_limit=checked["time_limit"],
        time_unit=checked["time_unit"],
        urgency=checked.get("urgency", "normal"),
        filing_condition=checked.get("filing_condition"),
        department_id=_department_id(session, checked.get("department")),
        active=checked.get("active", True),
    )
    _check_limit(category)
    session.add(category)
    session.flush()
    return category


def update_category(session: Session, code: str, values: dict[str, Any]) -> CaseCategory:
    """Change some fields of a category (never its code or kind)."""
    unknown = sorted(set(values) - set(EDITABLE))
    if unknown:
        raise InvalidInput(
            f"{unknown[0]}: cannot be changed; editable: {', '.join(EDITABLE)}",
            field=unknown[0],
            zh=f"{field_zh(unknown[0])}不能修改；可修改：{', '.join(EDITABLE)}。",
        )
    category = _get(session, code)
    checked = _check(values, category.kind)
    for key, value in checked.items():
        if key == "department":
            category.department_id = _department_id(session, value)
        else:
            setattr(category, key, value)
    _check_limit(category)
    session.flush()
    session.refresh(category, ["department"])
    return category


def _day(text: str) -> dt.date:
    try:
        day = dt.date.fromisoformat(text)
    except (TypeError, ValueError):
        raise InvalidInput(
            f"day: {text!r} is not a date YYYY-MM-DD", field="day", zh=f"日期：{text!r} 不是 YYYY-MM-DD 格式的日期。"
        ) from None
    if not 2000 <= day.year <= 2100:  # the years a calendar is kept for (as `calendar_year`)
        raise InvalidInput(
            f"day: {text} is outside the years 2000–2100 the calendar is kept for",
            field="day",
            zh=f"日期：{text} 超出工作日历的年份范围（2000–2100 年）。",
        )
    return day


def calendar_year(session: Session, year: int) -> dict[str, Any]:
    """The exceptions of one year and how many working days it has."""
    if not 2000 <= year <= 2100:
        raise InvalidInput(
            f"year: {year}; a year from 2000 to 2100", field="year", zh=f"年份：{year} 超出范围，应为 2000–2100 年。"
        )
    rows = session.scalars(
        sa.select(CalendarDay)
        .where(CalendarDay.day.between(dt.date(year, 1, 1), dt.date(year, 12, 31)))
        .order_by(CalendarDay.day)
    ).all()
    kinds = {r.day: r.kind for r in rows}
    day, working = dt.date(year, 1, 1), 0
    while day.year == year:
        kind = kinds.get(day)
        working += kind == "workday" or (kind != "holiday" and day.weekday() < 5)
        day += dt.timedelta(days=1)
    return {
        "year": year,
        "working_days": working,
        "has_notice": any(r.kind == "holiday" for r in rows),
        "days": [{"day": r.day.isoformat(), "kind": r.kind, "name": r.name} for r in rows],
    }


def put_day(session: Session, day: str, kind: str, name: str) -> CalendarDay:
    """Make a day a holiday or a make-up working day (replacing what it was)."""
    date = _day(day)
    if kind not in ("holiday", "workday"):
        raise InvalidInput(
            f"kind: {kind!r}; accepted: holiday, workday",
            field="kind",
            zh=f"类型：{kind!r} 不被接受；可选：holiday（节假日）、workday（调休上班）。",
        )
    if kind == "workday" and date.weekday() < 5:
        raise InvalidInput(
            f"kind: {date} is a {date:%A}, already a working day; a make-up working day is a Saturday or Sunday",
            field="kind",
            zh=f"类型：{date} 是星期{'一二三四五六日'[date.weekday()]}，本来就是工作日；调休上班日只能是周六或周日。",
        )
    if not isinstance(name, str) or not name.strip() or len(name) > 64:
        raise InvalidInput(
            "name: 1 to 64 characters, e.g. 春节 or 春节调休",
            field="name",
            zh="名称：应为 1–64 个字符，如“春节”或“春节调休”。",
        )
    row = session.get(CalendarDay, date)
    if row is None:
        row = CalendarDay(day=date, kind=kind, name=name.strip())
        session.add(row)
    else:
        row.kind, row.name = kind, name.strip()
    session.flush()
    return row


def delete_day(session: Session, day: str) -> None:
    """Make a day ordinary again (worked Monday to Friday, off at weekends)."""
    row = session.get(CalendarDay, _day(day))
    if row is None:
        raise NotFound(
            f"day: {day} is not a holiday or a make-up working day",
            field="day",
            zh=f"日期：{day} 不是节假日，也不是调休上班日。",
        )
    session.delete(row)
    session.flush()
