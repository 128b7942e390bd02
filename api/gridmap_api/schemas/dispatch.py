"""The dispatcher's desk: queue counts, batch steps, address matches."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from gridmap_api.params import Id
from gridmap_api.schemas.cases import ActionIn

MAX_BATCH = 200


class QueueCount(BaseModel):
    name: str
    zh: str
    en: str
    count: int


class QueueCounts(BaseModel):
    area: str | None
    items: list[QueueCount]


class CaseBatchItem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: Id
    version: Id


class CaseBatchIn(ActionIn):
    """The cases (each with the version seen) and the step's parameters, the same for every case."""

    items: list[CaseBatchItem] = Field(min_length=1, max_length=MAX_BATCH)


class BatchError(BaseModel):
    code: str
    field: str | None = None
    detail: str


class CaseBatchResult(BaseModel):
    id: int
    ok: bool
    state: str | None = None
    version: int | None = None
    number: str | None = None
    error: BatchError | None = None


class CaseBatchOut(BaseModel):
    action: str
    ok: int
    failed: int
    results: list[CaseBatchResult]


class MatchedPlace(BaseModel):
    id: int | None = None
    kind: str | None = None
    name: str | None = None
    address: str | None = None
    lon: float | None = None
    lat: float | None = None
    area_code: str | None = None
    grid: dict[str, str | None] | None = None
    distance_m: float | None = None


class PlaceAlternative(MatchedPlace):
    confidence: float | None = None
    similar_name: bool = False


class AddressMatchOut(BaseModel):
    text: str
    matched_place: MatchedPlace | None
    confidence: float
    reason: str | None = None
    level: str | None = None
    alternatives: list[PlaceAlternative]
    needs_confirmation: bool
    confirm_because: list[Literal["not_matched", "low_confidence", "far_from_point", "alternatives"]]
    near: dict[str, float] | None = None
