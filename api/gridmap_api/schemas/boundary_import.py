"""Importing boundaries from a file: the form and the summary of what was read and checked."""

from __future__ import annotations

from typing import Literal

from fastapi import UploadFile
from pydantic import BaseModel, ConfigDict, Field


class ImportForm(BaseModel):
    """The form fields: the file and the options of `gridmap boundaries import` (no `activate`: through the API a
    draft is published by submission and approval)."""

    model_config = ConfigDict(extra="forbid")
    file: list[UploadFile] = Field(
        min_length=1,
        max_length=5,
        description="GeoJSON, GeoPackage, Shapefile .zip, KML, "
        "KMZ or CSV with a WKT column; several `file` parts for leaves and their parents",
    )
    crs: str | None = Field(
        None,
        max_length=32,
        description="wgs84, cgcs2000, gcj02, bd09 or EPSG:nnnn; overrides the file's",
    )
    layer: str | None = Field(None, max_length=200)
    code_field: str | None = Field(None, max_length=64)
    name_field: str | None = Field(None, max_length=64)
    level: Literal["district", "subdistrict", "community", "grid", "microgrid"] | None = None
    name: str | None = Field(None, min_length=1, max_length=200, description="the draft's name")
    encoding: str | None = Field(
        None,
        max_length=32,
        pattern=r"^[A-Za-z0-9_.:-]+$",
        description="a Shapefile's without .cpg, or a CSV's (e.g. GBK)",
    )


class CheckSummary(BaseModel):
    ok: bool = Field(description="the boundary check found no error")
    problems: int
    errors: int
    warnings: int
    counts: dict[str, int] = Field(description="problems by kind")


class ImportSummary(BaseModel):
    generation_id: int
    name: str
    status: str
    effective_from: str | None
    base_id: int | None = Field(description="the active generation the draft was copied from")
    file: str
    crs: str = Field(description="the coordinate system the file's numbers were read in")
    features: int
    districts: list[str]
    replaced: dict[str, int] = Field(description="areas of each imported district the draft had before the import")
    areas: dict[str, int] = Field(description="imported areas per level")
    households: int
    population: int
    check: CheckSummary
