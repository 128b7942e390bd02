"""Rankings: the child areas of an area, or the workers serving it, ordered on one measure of `gridmap.cases.measures`,
with the target line (达标线) of that measure.

Values are the very figures of `gridmap.cases.measures.compute`, from its grouped queries (one set of queries for all
children, never one per child): a child area's value equals `area_measures` of that child; a worker's value is
the measure of the cases inside the area that are assigned to the worker (a bounce counts for the worker who
bounced it), as `compute(unit="worker", under=area)` has it.

Each rate comes with its numerator and denominator (closure rate: closed ÷ (due − suspended), …; see
`RATIOS`); a count has the count as numerator and no denominator; hours have neither.

Target lines (`TARGETS`) are the defaults below, from the published figures of docs/DOMAIN.md §4 rounded to what
offices commonly set as 达标线; `direction` says whether a higher value is better. A measure without a target
has `target` None and every `meets_target` None.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.orm import Session

from gridmap.boundaries.areas import get_area
from gridmap.cases import measures
from gridmap.errors import InvalidInput
from gridmap.store.tables import Area, Staff, StaffArea

CHILD_LEVEL = {"district": "subdistrict", "subdistrict": "community", "community": "grid", "grid": "microgrid"}
WORKER_ROLES = ("grid_head", "fulltime_worker", "parttime_worker")
BY = ("children", "workers")

# measure → (numerator column, denominator columns added, subtracted)
RATIOS: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    "closure_rate": ("closed", ("due",), ("suspended",)),
    "on_time_rate": ("closed_on_time", ("due",), ("suspended",)),
    "rework_rate": ("reworked", ("due",), ("suspended",)),
    "extension_rate": ("extended", ("due",), ("suspended",)),
    "satisfaction": ("satisfied", ("rated",), ()),
}


@dataclass(frozen=True)
class Target:
    """A target line: the value and whether higher is better."""

    value: float | None
    higher_is_better: bool


# lower is better for these; the rest: higher
LOWER_BETTER = {"rework_rate", "extension_rate", "bounces", "close_hours_p50", "close_hours_p90", "suspended"}
TARGETS: dict[str, float] = {
    "closure_rate": 0.95,  # 结案率 ≥ 95 %
    "on_time_rate": 0.90,  # 按期结案率 ≥ 90 %
    "satisfaction": 0.90,  # 满意率 ≥ 90 %
    "rework_rate": 0.05,  # 返工率 ≤ 5 %
    "extension_rate": 0.10,  # 延期率 ≤ 10 %
}
MEASURES = tuple(key for key, _, _, kind in measures.COLUMNS if kind != "text")
MEASURE_ZH = {key: zh for key, zh, _, kind in measures.COLUMNS if kind != "text"}


def target_of(measure: str) -> Target:
    return Target(TARGETS.get(measure), measure not in LOWER_BETTER)


def check(measure: str, by: str) -> None:
    if measure not in MEASURES:
        raise InvalidInput(
            f"measure: {measure!r} is not a measure; accepted: {', '.join(MEASURES)}",
            field="measure",
            zh=f"指标：{measure!r} 不是可排名的指标；可选：{'、'.join(MEASURES)}",
        )
    if by not in BY:
        raise InvalidInput(
            f"by: {by!r}; accepted: children, workers",
            field="by",
            zh=f"排名对象：{by!r} 无效；可选：children（下级区域）、workers（网格员）",
        )


def _parts(row: pd.Series, measure: str) -> tuple[float | None, float | None]:
    """Numerator and denominator of a measure in one row of `compute`."""
    if measure in RATIOS:
        num, plus, minus = RATIOS[measure]
        return float(row[num]), float(sum(row[c] for c in plus) - sum(row[c] for c in minus))
    if KIND[measure] == "count":
        return float(row[measure]), None
    return None, None


KIND = {key: kind for key, _, _, kind in measures.COLUMNS}


def _row(table: pd.DataFrame, key: str) -> pd.Series | None:
    """A unit's row of `compute` (its index is the unit's code), or None for a unit with nothing in the period."""
    # one label of a unique index: a Series (the stubs cannot tell it from a list of labels)
    return cast(pd.Series, table.loc[key]) if key in table.index else None


def _value(row: pd.Series | None, measure: str) -> tuple[float | None, float | None, float | None]:
    """Value (rounded as `measures.to_records` rounds it), numerator and denominator of a measure in one row of
    `compute`, or of a unit with nothing in the period (no row)."""
    kind = KIND[measure]
    if row is None:
        return {"rate": (None, 0.0, 0.0), "hours": (None, None, None), "count": (0, 0.0, None)}[kind]
    value = row[measure]
    if pd.isna(value):
        value = None
    elif kind in ("rate", "hours"):
        value = round(float(value), 4 if kind == "rate" else 2)
    else:
        value = int(value)
    num, den = _parts(row, measure)
    return value, num, den


def _meets(value: float | None, target: Target) -> bool | None:
    if value is None or target.value is None:
        return None
    return value >= target.value if target.higher_is_better else value <= target.value


def ranking(
    session: Session,
    code: str,
    measure: str,
    by: str = "children",
    *,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    now: dt.datetime | None = None,
    sees_staff: Callable[[list[str]], bool] | None = None,
) -> dict[str, Any]:
    """The ranking of the children (`by="children"`) or the workers (`by="workers"`) of area `code` on `measure`
    over [since, until) (by default this month so far), best first (no value last, then by code or name).
    `sees_staff(area_codes)` tells whether a worker serving those areas may be listed (all by default)."""
    check(measure, by)
    area = get_area(session, code)
    period = measures.Period.of(since, until, now)
    target = target_of(measure)
    items: list[dict[str, Any]] = []
    if by == "children":
        level = CHILD_LEVEL.get(area.level)
        if level is None:
            raise InvalidInput(
                f"by: a {area.level} has no areas within it", field="by", zh="排名对象：该区域没有下级区域"
            )
        children = session.execute(
            sa.select(Area.code, Area.name).where(Area.parent_id == area.id).order_by(Area.code)
        ).all()
        table = measures.compute(session, period, level, under=code, under_level=area.level)
        for child, name in children:
            row = _row(table, child)
            value, num, den = _value(row, measure)
            items.append(
                {
                    "code": child,
                    "staff_id": None,
                    "name": name,
                    "value": value,
                    "numerator": num,
                    "denominator": den,
                    "meets_target": _meets(value, target),
                }
            )
    else:
        rows = session.execute(
            sa.select(Staff.id, Staff.name, StaffArea.area_code)
            .join(StaffArea, StaffArea.staff_id == Staff.id)
            .where(StaffArea.role.in_(WORKER_ROLES), StaffArea.area_code.startswith(code))
            .order_by(Staff.id)
        ).all()
        serving: dict[int, tuple[str, list[str]]] = {}
        for staff_id, name, area_code in rows:
            serving.setdefault(staff_id, (name, []))[1].append(area_code)
        table = measures.compute(session, period, "worker", under=code, under_level=area.level)
        for staff_id, (name, codes) in serving.items():
            if sees_staff is not None and not sees_staff(codes):
                continue
            key = str(staff_id)
            row = _row(table, key)
            value, num, den = _value(row, measure)
            items.append(
                {
                    "code": None,
                    "staff_id": staff_id,
                    "name": name,
                    "value": value,
                    "numerator": num,
                    "denominator": den,
                    "meets_target": _meets(value, target),
                }
            )
    sign = -1 if target.higher_is_better else 1
    items.sort(key=lambda i: (i["value"] is None, sign * (i["value"] or 0), i["code"] or "", i["staff_id"] or 0))
    return {
        "code": code,
        "level": area.level,
        "by": by,
        "measure": measure,
        "measure_zh": MEASURE_ZH[measure],
        "target": target.value,
        "higher_is_better": target.higher_is_better,
        "since": period.since.isoformat(),
        "until": period.until.isoformat(),
        "items": items,
    }
