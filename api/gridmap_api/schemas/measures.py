"""The measures (考核指标) of areas, branches, departments and workers (`gridmap.cases.measures`): one record per unit,
its fields the columns of `gridmap.cases.measures.COLUMNS` (so the contract follows the formulas' table)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, create_model

from gridmap.cases.measures import COLUMNS

_TYPES: dict[str, Any] = {"count": int, "rate": float | None, "hours": float | None}
_TEXT: dict[str, Any] = {"unit": str, "key": str | int | None, "name": str | None}


def _fields(*, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        key: (
            _TEXT.get(key, str | None) if kind == "text" else _TYPES[kind],
            Field(description=f"{zh} ({en})"),
        )
        for key, zh, en, kind in COLUMNS
        if key not in skip
    }


MeasureRecord = create_model(
    "MeasureRecord",
    __doc__="One unit's measures over the period (`key` `*`: the total row); rates 0–1 or null "
    "when nothing was due, hours to close null when nothing closed.",
    **_fields(),
)
MonthMeasures = create_model(
    "MonthMeasures",
    __doc__="One month's measures of an area (China time).",
    month=(str, Field(description="YYYY-MM")),
    **_fields(skip=("unit", "key", "name")),
)


class MeasuresOut(BaseModel):
    by: str = Field(description="grid, community, subdistrict, branch, department or worker")
    since: str
    until: str
    formulas: str
    items: list[MeasureRecord]


class AreaMeasures(BaseModel):
    code: str
    since: str
    until: str
    measures: MeasureRecord


class AreaSeries(BaseModel):
    code: str
    months: list[MonthMeasures]
