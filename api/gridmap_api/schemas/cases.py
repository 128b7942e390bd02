"""Cases: the request bodies of intake, steps and ratings, and the case items as lists, queues, steps and one case
answer them (the API contract of the dispatcher's desk)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from gridmap.cases import intake as cases
from gridmap_api.params import Id
from gridmap_api.schemas.common import PointGeometry


class Candidate(BaseModel):
    """A grid near the case's point other than its own (0 m: on a shared edge)."""

    code: str
    name: str | None = None
    level: str | None = None
    distance_m: float


class Holder(BaseModel):
    """Who has the case: a worker or a department (`kind` null: nobody). The phone is in full for the people who
    must reach them (dispatchers, leaders, verifiers of the area, the holder itself), masked for others."""

    kind: Literal["worker", "department"] | None
    id: int | None = None
    code: str | None = None
    name: str | None = None
    phone: str | None = None


class Bounce(BaseModel):
    """The last 退单: when, by whom, why, and the boundary evidence."""

    at: str | None
    by: str | None = None
    reason: str | None = None
    evidence: dict[str, Any] | None = None


class PendingRequest(BaseModel):
    """An extension (延期) or suspension (挂账) request awaiting a leader."""

    kind: Literal["extension", "suspension"]
    at: str | None = None
    by: str | None = None
    reason: str | None = None
    amount: float | None = None
    unit: str | None = None


class CaseItem(BaseModel):
    id: int
    number: str
    title: str
    description: str | None = None
    category: str | None = None
    category_name: str | None = None
    source: str
    source_zh: str
    state: str
    state_zh: str
    address: str | None = None
    lon: float | None = None
    lat: float | None = None
    raw: dict[str, Any] | None = None
    district_code: str | None = None
    subdistrict_code: str | None = None
    community_code: str | None = None
    grid_code: str | None = None
    microgrid_code: str | None = None
    branch_id: int | None = None
    assignee_id: int | None = None
    department_id: int | None = None
    flags: list[str]
    candidates: list[Candidate]
    holder: Holder | None = None
    reporter_name: str | None = None
    reporter_phone: str | None = None
    reported_at: str | None = None
    accepted_at: str | None = None
    due_at: str | None = None
    deadline: str | None = None
    time_left_s: int | None = None
    overdue_by_s: int | None = None
    closed_at: str | None = None
    version: int
    handled_by: str | None = None
    satisfaction: int | None = None
    escalation_level: int = 0
    pending: dict[str, Any] | None = None
    pending_request: PendingRequest | None = None
    last_bounce: Bounce | None = None
    counts: dict[str, int]
    whistle: dict[str, Any] | None = None
    clock: dict[str, Any] | None = None
    external_ref: str | None = None
    reported_by_staff_id: int | None = None
    merged_into_id: int | None = None
    attachments_count: int = 0


class HistoryEvent(BaseModel):
    at: str | None
    actor: str
    action: str
    action_zh: str
    from_state: str | None = None
    to_state: str | None = None
    detail: dict[str, Any] | None = None
    case_number: str | None = None  # an entry of a case merged into this one


class CaseDetail(CaseItem):
    routing: dict[str, Any]
    history: list[HistoryEvent]


class CasePage(BaseModel):
    """A page of a case list or a queue. `next_cursor` continues the list after this page (pass it as `cursor`;
    null on the last page). `total` is how many cases match in all: counted on a page asked for without a cursor
    (the first page; an `offset` page), and on any page with `count=true`; null on the pages after a cursor
    otherwise (the list is counted once, not again on every page)."""

    total: int | None = Field(description="cases matching in all; null where not counted (a page after a cursor)")
    limit: int
    offset: int = Field(description="cases skipped by `offset` (deprecated: page by `cursor`); 0 with a cursor")
    next_cursor: str | None = Field(
        default=None, description="the `cursor` of the next page (opaque); null on the last page"
    )
    items: list[CaseItem]


class Duplicate(BaseModel):
    """A case that may report the same problem (`gridmap.cases.duplicates.suggest`)."""

    id: int
    number: str
    state: str
    title: str
    grid_code: str | None = None
    source: str | None = None
    distance_m: float
    hours_apart: float


class CaseCreated(CaseItem):
    """A case as its intake by staff answers it: the item, its history, the cases it may duplicate, and the token
    its reporter rates it with (not for patrol reports)."""

    history: list[HistoryEvent]
    possible_duplicates: list[Duplicate]
    reporter_token: str | None = None


class Receipt(BaseModel):
    """What a resident is told: enough to follow the case and rate it (and nothing else: a staff answer is
    never read as a receipt)."""

    model_config = ConfigDict(extra="forbid")
    id: int
    number: str
    state: str
    reported_at: str | None
    grid_code: str | None
    reporter_token: str | None


class Duplicates(BaseModel):
    case_id: int
    distance_m: float = Field(description="the window's distance used")
    hours: float = Field(description="the window's hours used")
    items: list[Duplicate] = Field(description="nearest first")


class Rated(BaseModel):
    """The case after a resident's rating."""

    id: int
    number: str
    state: str
    satisfaction: int | None


class CaseFeature(BaseModel):
    """A case as a GeoJSON point Feature (personal data masked); no geometry when it has no point."""

    type: Literal["Feature"] = "Feature"
    id: int
    geometry: PointGeometry | None
    properties: CaseItem


class CaseFeatureCollection(BaseModel):
    """Cases as GeoJSON (`format=geojson`), with the total matched (null where not counted, as `CasePage.total`),
    the number in this page and the cursor of the next page."""

    type: Literal["FeatureCollection"] = "FeatureCollection"
    features: list[CaseFeature]
    numberMatched: int | None
    numberReturned: int
    next_cursor: str | None = None


class _ReportIn(BaseModel):
    """What every report says: what, where (`lon`/`lat` in `crs`; stored converted to WGS84, the raw kept)."""

    model_config = ConfigDict(extra="forbid")
    title: str = Field(min_length=1, max_length=200)
    lon: float = Field(allow_inf_nan=False)
    lat: float = Field(allow_inf_nan=False)
    crs: str = "wgs84"
    description: str | None = Field(default=None, max_length=cases.MAX_TEXT)
    address: str | None = Field(default=None, max_length=300)


class CaseIn(_ReportIn):
    """A new case from any channel."""

    category: str | None = None
    source: str = "api"
    reporter_name: str | None = Field(default=None, max_length=64)
    reporter_phone: str | None = None


class PatrolIn(_ReportIn):
    """What a grid worker on patrol reports; `handled_on_spot` when they dealt with it there and then."""

    category: str = Field(min_length=1, max_length=32)
    handled_on_spot: bool = False
    note: str | None = Field(default=None, max_length=4000)


class ActionIn(BaseModel):
    """Parameters of a step; which ones apply depends on the step (see `gridmap.cases.workflow`)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    version: Id | None = Field(None, description="the version of the case you saw (or send If-Match)")
    reason: str | None = Field(None, max_length=2000)
    category: str | None = Field(None, max_length=32)
    assignee_id: Id | None = None
    department: str | None = Field(None, max_length=32)
    satisfaction: int | None = Field(None, ge=1, le=5)
    amount: float | None = Field(None, ge=-1e6, le=1e6)
    unit: str | None = Field(None, max_length=32)
    note: str | None = Field(None, max_length=4000)
    into: Id | None = Field(None, description="merge: the id of the case this one duplicates")
    lon: float | None = Field(None, ge=-1e7, le=1e7, description="relocate: the new point, in `crs`")
    lat: float | None = Field(None, ge=-1e7, le=1e7)
    crs: str | None = Field(
        None,
        max_length=32,
        description="relocate: the new point's system (default wgs84)",
    )
    grid: str | None = Field(
        None,
        max_length=24,
        description="relocate: a leaf grid code from the candidates",
    )


class RatingIn(BaseModel):
    """A resident's rating of a closed case, with the token handed back when the case was submitted."""

    model_config = ConfigDict(extra="forbid")
    reporter_token: str = Field(min_length=8, max_length=64)
    satisfaction: int = Field(ge=1, le=5, description="1 very dissatisfied … 5 very satisfied; 1–2 reopen it")
    note: str | None = Field(None, max_length=1000)
