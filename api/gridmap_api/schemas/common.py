"""Pieces every resource uses: the problem+json error (`Problem`, `problems(...)` for a route's `responses=`),
GeoJSON geometry and links, and the `responses=` entry of an answer that is a file rather than JSON."""

from __future__ import annotations

from typing import Any, Literal

from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

PROBLEM_MEDIA = "application/problem+json"


class ProblemItem(BaseModel):
    """One failed check of a request (a 422 names each)."""

    field: str = Field(description="the parameter or body field, dotted (e.g. `items.3.lon`)")
    message: str = Field(description="what is wrong and what is accepted, in the caller's language")
    type: str | None = Field(None, description="the check that failed (pydantic's error type)")


class Problem(BaseModel):
    """An error as RFC 9457 application/problem+json: `title` and `detail` in the caller's language (Chinese by
    default, English with `Accept-Language: en`), `code` and `field` machine-readable."""

    model_config = ConfigDict(extra="allow")  # RFC 9457 allows extension members; these are the ones we send
    type: str = "about:blank"
    title: str
    status: int
    detail: str
    code: str | None = Field(None, description="the kind of error, e.g. validation_error, NotFound, Conflict")
    kind: str | None = Field(
        None,
        description="a domain error's kind (invalid_input, not_found, conflict, stale_version, forbidden, …)",
    )
    field: str | None = Field(None, description="the field or parameter at fault")
    errors: list[ProblemItem] | None = Field(None, description="422: every failed check")
    retry_after: int | None = Field(None, description="429: seconds to wait")


_WHEN = {
    400: "malformed request body or parameter",
    401: "no or invalid credentials",
    403: "the role or the areas of the caller do not allow it",
    404: "not found (or outside the caller's areas)",
    409: "conflicts with the stored state (e.g. a stale version, a duplicate code)",
    412: "If-Match names a version that is no longer current",
    413: "the body is over the size limit",
    422: "a field or parameter is not accepted (named in `field`)",
    428: "a version (If-Match or `version`) is required",
    429: "too many requests (see Retry-After)",
    503: "the database or a store is not ready",
}


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` entries documenting problem+json answers for `statuses`."""
    return {
        status: {
            "description": _WHEN.get(status, "error"),
            "model": Problem,
            "content": {PROBLEM_MEDIA: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for status in statuses
    }


# the errors any route that checks its caller and its input can answer
COMMON = problems(400, 401, 403, 422)


def binary(*media_types: str, description: str, status: int = 200) -> dict[int | str, dict[str, Any]]:
    """`responses=` for an answer that is a file (tiles, images, spreadsheets): its media types, each a binary
    string."""
    schema = {"type": "string", "format": "binary"}
    return {
        status: {
            "description": description,
            "content": {m: {"schema": dict(schema)} for m in media_types},
        }
    }


class GeoJSONResponse(JSONResponse):
    """A JSON answer sent as application/geo+json (RFC 7946): as `response_class=`, /openapi.json documents the
    route's model under that media type."""

    media_type = "application/geo+json"


GeometryType = Literal["Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon"]


class Geometry(BaseModel):
    """A GeoJSON (RFC 7946) geometry in WGS84 longitude/latitude."""

    type: GeometryType
    coordinates: list[Any] = Field(description="positions as RFC 7946 nests them for the type")


class PointGeometry(BaseModel):
    type: Literal["Point"] = "Point"
    coordinates: list[float] = Field(description="[lon, lat] in WGS84")


class LonLat(BaseModel):
    lon: float
    lat: float


class Link(BaseModel):
    """A web link (OGC API style)."""

    href: str
    rel: str
    type: str
    title: str | None = None


class AreaRef(BaseModel):
    """An area named by level, code and name."""

    level: str
    code: str
    name: str | None = None


class CodeName(BaseModel):
    code: str
    name: str | None = None
