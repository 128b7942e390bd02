"""Importing a city's own boundaries (issue 13 §1): POST /api/v1/generations/import, a multipart upload of a boundary
file that becomes a draft generation (planners). Publishing it goes through submission and approval."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Form, Response

from gridmap.access.policy import Principal
from gridmap.planning import importer as bi
from gridmap_api.auth import allow
from gridmap_api.deps import SessionDep, SettingsDep
from gridmap_api.schemas.boundary_import import ImportForm, ImportSummary
from gridmap_api.schemas.common import COMMON, problems

router = APIRouter(prefix="/api/v1/generations", tags=["generations"], responses=COMMON)
CHUNK = 1 << 20


@router.post("/import", status_code=201, response_model=ImportSummary, responses=problems(409))
def import_boundaries(
    form: Annotated[ImportForm, Form(media_type="multipart/form-data")],
    session: SessionDep,
    settings: SettingsDep,
    response: Response,
    who: Annotated[Principal, allow("generation.edit")],
) -> dict:
    """Import a boundary file as a new draft: the active generation with the file's districts replaced (or
    added). A file of leaves is enough (parents by code prefix, as exact unions). Refused files answer 422
    problem+json naming the file, the feature and the field, and nothing is stored. Planners only; committed
    before the answer."""
    limits = bi.Limits(max_bytes=settings.import_max_bytes, max_vertices=settings.import_max_vertices)
    options = bi.Options(
        crs=form.crs,
        layer=form.layer,
        code_field=form.code_field,
        name_field=form.name_field,
        level=form.level,
        name=form.name,
        encoding=form.encoding,
    )
    labels = [bi.display_name(upload.filename or "upload") for upload in form.file]
    for upload, label in zip(form.file, labels):
        if upload.size is not None:
            bi.check_size(label, upload.size, limits)  # measured before anything is copied or parsed
    with tempfile.TemporaryDirectory(prefix="gridmap-upload-") as tmp:
        sources: list[tuple[str | Path, str | None]] = []
        for i, (upload, label) in enumerate(zip(form.file, labels)):
            suffix = Path(label).suffix.lower()
            target = Path(tmp) / f"upload{i}{suffix if suffix in bi.FORMATS else '.bin'}"
            written = 0
            with open(target, "wb") as out:
                while chunk := upload.file.read(CHUNK):
                    written += len(chunk)
                    if written > limits.max_bytes:
                        bi.check_size(label, written, limits)  # refused at once: the rest is not read
                    out.write(chunk)
            sources.append((target, label))
        summary = bi.import_boundaries(
            session, sources, options, limits, actor=who.label(), household_band=settings.check_household_band
        )
    response.headers["Location"] = f"/api/v1/generations/{summary['generation_id']}"
    return summary
