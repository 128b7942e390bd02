"""Open311 GeoReport v2 (/open311/v2/): the documents in their JSON form (`.json`); `.xml` answers carry the same
members as the spec's XML. Errors follow the spec (a list of code and description), not problem+json."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

XML = "text/xml"


class Endpoint(BaseModel):
    specification: str
    url: str
    changeset: str
    type: str
    formats: list[str]


class Discovery(BaseModel):
    changeset: str
    contact: str
    key_service: str
    endpoints: list[Endpoint]


class Service(BaseModel):
    service_code: str
    service_name: str
    description: str
    metadata: bool = Field(description="the service has attributes (see its definition)")
    type: str
    keywords: str
    group: str


class AttributeValue(BaseModel):
    key: str
    name: str


class Attribute(BaseModel):
    variable: bool
    code: str
    datatype: str
    required: bool
    datatype_description: str | None
    order: int
    description: str
    values: list[AttributeValue]


class ServiceDefinition(BaseModel):
    service_code: str
    attributes: list[Attribute]


class ExtendedAttributes(BaseModel):
    grid_code: str | None
    branch: str | None
    stage: str = Field(description="the case's state in gridmap")
    deadline: str | None
    escalation_level: int


class ServiceRequest(BaseModel):
    """A service request (a case) in the spec's fields; personal data never shown."""

    service_request_id: str
    status: str = Field(description="open or closed")
    status_notes: str | None
    service_name: str | None
    service_code: str | None
    description: str | None
    agency_responsible: str | None
    service_notice: str | None
    requested_datetime: str | None
    updated_datetime: str | None
    expected_datetime: str | None
    address: str | None
    address_id: str | None
    zipcode: str | None
    lat: float | None
    long: float | None
    media_url: str | None
    extended_attributes: ExtendedAttributes


class RequestCreated(BaseModel):
    service_request_id: str
    service_notice: str | None
    account_id: str | None


class Open311Error(BaseModel):
    code: int | str
    description: str


def open311_responses(
    errors: tuple[int, ...] = (400, 404),
) -> dict[int | str, dict[str, Any]]:
    """`responses=`: the XML form of the 200 answer and the spec's error lists."""
    xml = {
        XML: {
            "schema": {
                "type": "string",
                "description": "the same document as the spec's XML",
            }
        }
    }
    out: dict[int | str, dict[str, Any]] = {200: {"content": xml}}
    for status in errors:
        out[status] = {
            "model": list[Open311Error],
            "description": "the spec's errors (XML unless the path ends in .json)",
            "content": xml,
        }
    return out


# a POST's body: application/x-www-form-urlencoded as the spec has it, or multipart/form-data with a `media` photo
_FIELDS: dict[str, Any] = {
    "api_key": {"type": "string"},
    "jurisdiction_id": {"type": "string"},
    "service_code": {"type": "string"},
    "lat": {"type": "number"},
    "long": {"type": "number"},
    "address_string": {"type": "string"},
    "address_id": {"type": "string"},
    "email": {"type": "string"},
    "device_id": {"type": "string"},
    "account_id": {"type": "string"},
    "first_name": {"type": "string"},
    "last_name": {"type": "string"},
    "phone": {"type": "string"},
    "description": {"type": "string"},
    "media_url": {"type": "string"},
}
POST_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "required": ["api_key", "service_code"],
                    "properties": _FIELDS,
                }
            },
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["api_key", "service_code"],
                    "properties": {
                        **_FIELDS,
                        "media": {"type": "string", "format": "binary"},
                    },
                }
            },
        },
    }
}
