"""Types for values that arrive at the edge, checked for range before any work: ids that fit the databases' id
columns, offsets, and times and days inside the years a case or a boundary can have."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import Path
from pydantic import AfterValidator, Field
from pydantic_core import PydanticCustomError

MAX_ID = 2**31 - 1  # the id columns are INTEGER: 32 bits on PostgreSQL (SQLite's hold 64)
MAX_OFFSET = 10_000_000
FIRST_YEAR, LAST_YEAR = 1950, 2200


def _in_years(value: dt.date | None) -> dt.date | None:
    """A time or a day in FIRST_YEAR–LAST_YEAR (checked before anything converts it: year 1 at +14:00 overflows)."""
    if value is not None and not FIRST_YEAR <= value.year <= LAST_YEAR:
        # its own error type, so that the Chinese answer has its own words (api/gridmap_api/i18n.py)
        raise PydanticCustomError(
            "year_range", "must be from the year {first} to {last}", {"first": FIRST_YEAR, "last": LAST_YEAR}
        )
    return value


Moment = Annotated[dt.datetime, AfterValidator(_in_years)]
Day = Annotated[dt.date, AfterValidator(_in_years)]
Id = Annotated[int, Field(ge=1, le=MAX_ID)]
PathId = Annotated[int, Path(ge=1, le=MAX_ID)]
Offset = Annotated[int, Field(ge=0, le=MAX_OFFSET)]
