"""Bulk intake of 12345 hotline exports: the row-by-row report (`gridmap.cases.hotline.import_export`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


class ImportRow(BaseModel):
    """The outcome of one row of the file."""

    row: int = Field(description="the row's number in the file")
    ticket: str = Field(description="the hotline's ticket number (工单号)")
    status: Literal["created", "duplicate", "unplaced", "invalid"] | None
    case_number: str | None
    grid_code: str | None
    method: str | None = Field(description="how the case was placed: coordinates or address")
    address_confidence: float | None
    field: str | None = Field(description="invalid: the column at fault")
    reason: str | None


class HotlineReport(BaseModel):
    rows: int
    created: int
    duplicate: int
    unplaced: int
    invalid: int
    category_not_matched: int = Field(
        description="rows filed without a category (none matched): a dispatcher files them"
    )
    report: list[ImportRow]


# the request body is the file itself, read as a stream (no multipart): documented here for /openapi.json
HOTLINE_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "the 12345 export file",
        "content": {
            "text/csv": {"schema": {"type": "string", "format": "binary"}},
            XLSX: {"schema": {"type": "string", "format": "binary"}},
        },
    }
}
