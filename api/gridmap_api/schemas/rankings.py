"""Rankings of an area's children or workers by one measure."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class RankItem(BaseModel):
    """One child area (`code`) or worker (`staff_id`): its value, the value's numerator and denominator (a rate's;
    a count's numerator is the count; hours have neither) and whether it meets the target line."""

    code: str | None
    staff_id: int | None
    name: str | None
    value: float | None
    numerator: float | None
    denominator: float | None
    meets_target: bool | None


class Ranking(BaseModel):
    code: str
    level: str
    by: Literal["children", "workers"]
    measure: str
    measure_zh: str
    target: float | None
    higher_is_better: bool
    since: str
    until: str
    items: list[RankItem]
