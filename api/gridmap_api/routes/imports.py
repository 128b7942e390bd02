"""Bulk intake: 12345 hotline exports (CSV or XLSX in the request body), answered with a row-by-row report."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Header, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from gridmap.access.policy import Principal
from gridmap.cases import hotline
from gridmap.errors import InvalidInput
from gridmap_api.auth import allow
from gridmap_api.deps import IndexDep
from gridmap_api.schemas.common import COMMON, binary, problems
from gridmap_api.schemas.imports import HOTLINE_BODY, HotlineReport

router = APIRouter(prefix="/api/v1", tags=["imports"], responses=COMMON)
MAX_BYTES = 20 * 1024 * 1024
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
KINDS = {"text/csv": "csv", "application/csv": "csv", XLSX: "xlsx"}


@router.post(
    "/imports/hotline",
    response_model=HotlineReport,
    openapi_extra=HOTLINE_BODY,
    responses={
        **binary("text/csv", XLSX, description="the report as JSON, or as a CSV or XLSX file (`report`)"),
        **COMMON,
        **problems(503),
    },
)
async def import_hotline(
    request: Request,
    index: IndexDep,
    who: Annotated[Principal, allow("import.hotline")],
    crs: Annotated[str, Query(max_length=32)] = "gcj02",
    report: Literal["json", "csv", "xlsx"] = "json",
    content_type: Annotated[str | None, Header()] = None,
):
    """Import a 12345 export sent as the request body (`Content-Type: text/csv` or the XLSX type). Every row gets
    one outcome — created, duplicate, unplaced (with the reason) or invalid (with the field) — in the report,
    as JSON or as a CSV/XLSX file (`report`). Re-importing the same file creates nothing new. Dispatchers,
    admins and the hotline platform's API key (scope `hotline`)."""
    kind = KINDS.get((content_type or "").split(";")[0].strip().lower())
    if kind is None:
        raise InvalidInput(
            f"Content-Type: {content_type!r}; accepted: text/csv, {XLSX}",
            field="Content-Type",
            zh=f"内容类型：{content_type!r} 不被接受；可选：text/csv、{XLSX}。",
        )
    data = bytearray()
    async for chunk in request.stream():
        data.extend(chunk)
        if len(data) > MAX_BYTES:
            raise InvalidInput(
                f"file: larger than {MAX_BYTES // 2**20} MB; split the export",
                field="file",
                zh=f"文件超过 {MAX_BYTES // 2**20} MB，请拆分导出文件。",
            )
    result = await run_in_threadpool(
        hotline.import_export, request.app.state.sessionmaker, index, bytes(data), kind, crs=crs, actor=who.label()
    )
    if report == "json":
        return result
    media = "text/csv; charset=utf-8" if report == "csv" else XLSX
    counts = ",".join(f"{k}={result[k]}" for k in ("rows", "created", "duplicate", "unplaced", "invalid"))
    return Response(
        hotline.report_file(result, report),
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="import-report.{report}"', "X-Import-Counts": counts},
    )
