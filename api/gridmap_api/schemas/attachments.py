"""Photos of a case: the upload's form fields and the attachments as listed."""

from __future__ import annotations

from typing import Literal

from fastapi import UploadFile
from pydantic import BaseModel, ConfigDict, Field

Stage = Literal["report", "before", "after", "patrol"]


class UploadIn(BaseModel):
    """One image for a case. `stage`: report (上报照片), before / after (处置前 / 处置后, by the worker or department
    the case is with), patrol (巡查照片, by the worker whose patrol report it is). A resident adds `report`
    photos with the `reporter_token` handed back when the case was submitted."""

    model_config = ConfigDict(extra="forbid")
    file: UploadFile = Field(description="JPEG, PNG or WebP; judged by its content, not its name or type")
    stage: Stage
    reporter_token: str | None = Field(None, min_length=8, max_length=64)


class Gps(BaseModel):
    """The position the photo's EXIF block gave (WGS84), offered as a location candidate; not kept in the file."""

    lon: float
    lat: float
    crs: Literal["wgs84"] = "wgs84"


class AttachmentOut(BaseModel):
    id: int
    case_id: int
    stage: Stage
    stage_zh: str
    content_type: str
    width: int
    height: int
    bytes: int
    sha256: str
    thumbnail_width: int
    thumbnail_height: int
    gps: Gps | None
    uploaded_by: str | None
    at: str | None
    url: str = Field(description="the image: GET with the same credentials as the case")
    thumbnail_url: str


class AttachmentList(BaseModel):
    case_id: int
    total: int
    limit: int = Field(description="the most attachments one case may have")
    items: list[AttachmentOut]
