"""The catalogue of categories (事项类别) and the working calendar (工作日历). The edit bodies are checked at the
edge (types, lengths, accepted values); what depends on the stored data (the code's letter against the kind, the
time limit against its unit, a department code, a weekday) is checked by `gridmap.cases.catalogue`."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt

Kind = Literal["event", "component", "service"]
TimeUnit = Literal["work_hours", "work_days", "calendar_days"]
Urgency = Literal["normal", "urgent", "critical"]
TimeLimit = StrictInt  # a JSON number, not "2": the limit is counted


class CategoryOut(BaseModel):
    code: str
    kind: str
    major_class: str
    name: str
    time_limit: int
    time_unit: str
    urgency: str
    filing_condition: str | None
    department: str | None = Field(description="the owner department's code")
    department_name: str | None
    active: bool


class CategoryPatch(BaseModel):
    """The fields of a category an admin may change (only those sent change; never its code or kind).
    `active: false` retires it."""

    model_config = ConfigDict(extra="forbid")
    major_class: str | None = Field(None, min_length=1, max_length=64)
    name: str | None = Field(None, min_length=1, max_length=128)
    time_limit: TimeLimit | None = Field(None, ge=1, le=10_000, description="in `time_unit`")
    time_unit: TimeUnit | None = None
    urgency: Urgency | None = None
    filing_condition: str | None = Field(None, max_length=2000)
    department: str | None = Field(None, max_length=32, description="a department code, or null for none")
    active: StrictBool | None = None


class CategoryIn(CategoryPatch):
    """A new minor class: the code is the kind's letter (E event, C component, S service) and four digits."""

    code: str = Field(min_length=5, max_length=5, description="e.g. E0712")
    kind: Kind
    major_class: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=128)
    time_limit: TimeLimit = Field(ge=1, le=10_000, description="in `time_unit`")
    time_unit: TimeUnit


class CalendarDay(BaseModel):
    day: str = Field(description="YYYY-MM-DD")
    kind: Literal["holiday", "workday"]
    name: str


class CalendarYear(BaseModel):
    year: int
    working_days: int
    has_notice: bool = Field(description="the year's holiday notice has been entered")
    days: list[CalendarDay]


class CalendarDayIn(BaseModel):
    """A holiday, or a make-up working day (调休, a Saturday or Sunday), with its name."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["holiday", "workday"]
    name: str = Field(min_length=1, max_length=64, description="e.g. 春节 or 春节调休")
