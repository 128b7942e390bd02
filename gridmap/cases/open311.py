"""Open311 GeoReport v2 (http://wiki.open311.org/GeoReport_v2): the catalogue as services, cases as service
requests, and the spec's rules for arguments and errors. Rendering (XML or JSON) is the API's job.

- Services are the case categories: `service_code` is the category code, `group` its major class, `keywords`
  the kind and class; components ask for an optional asset number (部件编号), community services for a required
  visiting time, so `metadata` is true for those.
- A service request is a case; `service_request_id` is the case number. `status` is `closed` for closed,
  rejected and voided cases and `open` otherwise; `status_notes` says the stage.
- Extensions that standard clients can ignore are grouped under `extended_attributes` (mySociety's convention):
  grid code and name, party branch, stage (our state), deadline, escalation level.
- Errors are a list of `code` and `description`, of a kind: `not_found` for what does not exist, `forbidden` for a
  missing or wrong api_key, `invalid_input` for anything else (docs/DOMAIN.md §6); the API gives each kind the
  spec's answer and code.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Container
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, selectinload

from gridmap.cases.intake import MAX_TEXT, NewCase, utc
from gridmap.errors import InvalidInput
from gridmap.store.partitions import cases_by_number
from gridmap.store.tables import FINISHED_STATES, Case, CaseCategory, Department, PartyOrg
from gridmap.textcheck import MAX_ADDRESS, clean_phone, clean_text

SPEC = "http://wiki.open311.org/GeoReport_v2"
WINDOW = dt.timedelta(days=90)  # the default and the widest range of GET requests
MAX_REQUESTS = 1000
CLOSED_STATES = FINISHED_STATES
STAGE_ZH = {
    "reported": "已上报",
    "filed": "已立案",
    "rejected": "不予受理",
    "voided": "已作废",
    "dispatched": "已派遣",
    "accepted": "已签收，处置中",
    "handled": "已处置，待核查",
    "rework": "返工中",
    "suspended": "挂账",
    "closed": "已结案",
    "merged": "已合并",
}
ASSET_ATTRIBUTE = {
    "variable": True,
    "code": "asset_id",
    "datatype": "string",
    "required": False,
    "datatype_description": "如井盖、路灯上的编号",
    "order": 1,
    "description": "部件编号（如有）",
    "values": [],
}
VISIT_ATTRIBUTE = {
    "variable": True,
    "code": "visit_time",
    "datatype": "singlevaluelist",
    "required": True,
    "datatype_description": None,
    "order": 1,
    "description": "希望网格员上门的时段",
    "values": [
        {"key": "morning", "name": "上午"},
        {"key": "afternoon", "name": "下午"},
        {"key": "evening", "name": "傍晚"},
    ],
}


INVALID, NOT_FOUND, FORBIDDEN, UNAVAILABLE = "invalid_input", "not_found", "forbidden", "unavailable"
KINDS = (INVALID, NOT_FOUND, FORBIDDEN, UNAVAILABLE)


class Open311Error(Exception):
    """An error as the spec reports it: a kind (one of `KINDS`, as gridmap.errors names them) and a description;
    `code` is the spec's error code when it is not the one the API gives the kind."""

    def __init__(self, kind: str, description: str, code: int | str | None = None) -> None:
        if kind not in KINDS:
            raise ValueError(f"kind: {kind!r}; accepted: {', '.join(KINDS)}")
        super().__init__(description)
        self.kind = kind
        self.description = description
        self.code = code


def _shown(text: str) -> str:
    """A value for an error message: short ones quoted, long ones only counted (an error never echoes a megabyte)."""
    return repr(text) if len(text) <= 40 else f"({len(text):,} characters)"


def attributes_of(category: CaseCategory) -> list[dict[str, Any]]:
    if category.kind == "component":
        return [ASSET_ATTRIBUTE]
    if category.kind == "service":
        return [VISIT_ATTRIBUTE]
    return []


def service(category: CaseCategory) -> dict[str, Any]:
    return {
        "service_code": category.code,
        "service_name": category.name,
        "description": category.filing_condition or category.name,
        "metadata": bool(attributes_of(category)),
        "type": "realtime",
        "keywords": ", ".join(
            [
                category.major_class,
                {"event": "事件", "component": "部件", "service": "社区服务"}.get(category.kind, category.kind),
            ]
        ),
        "group": category.major_class,
    }


def services(session: Session) -> list[dict[str, Any]]:
    query = sa.select(CaseCategory).where(CaseCategory.active.is_(True)).order_by(CaseCategory.code)
    return [service(c) for c in session.scalars(query)]  # retired categories take no new requests


def category_for(session: Session, code: str | None) -> CaseCategory:
    if not code:
        raise Open311Error(INVALID, "service_code was not provided")
    category = session.scalars(sa.select(CaseCategory).where(CaseCategory.code == code)).first()
    if category is None or category.active is False:
        raise Open311Error(NOT_FOUND, f"service_code {_shown(code)} was not found; see services.xml")
    return category


def definition(session: Session, code: str) -> dict[str, Any]:
    category = category_for(session, code)
    return {"service_code": category.code, "attributes": attributes_of(category)}


def check_jurisdiction(value: str | None, ours: str) -> None:
    """Optional for a single-jurisdiction endpoint; when given it must be ours."""
    if value not in (None, "") and value != ours:
        raise Open311Error(NOT_FOUND, f"jurisdiction_id {_shown(value)} was not found; this endpoint serves {ours}")


def _one(form: dict[str, list[str]], name: str) -> str | None:
    values = form.get(name)
    if not values:
        return None
    value = values[-1].strip()
    return value or None  # an empty argument is the same as a missing one (Optional Arguments)


def last_value(form: dict[str, list[str]], name: str) -> str | None:
    """The last value of a form field, as sent (None when absent)."""
    values = form.get(name)
    return values[-1] if values else None


def _float(form: dict[str, list[str]], name: str) -> float | None:
    text = _one(form, name)
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        raise Open311Error(INVALID, f"{name} must be a number in WGS84 degrees, not {_shown(text)}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise Open311Error(INVALID, f"{name} must be a finite number")
    return value


def _text(form: dict[str, list[str]], name: str, limit: int, *, multiline: bool = False) -> str | None:
    """A text argument checked like every intake's text (length first, before anything reads it; then control
    and bidi characters, invisible-only text; NFC); empty means missing. Errors name the argument, not the value."""
    values = form.get(name)
    if not values:
        return None
    if len(values[-1]) > limit:
        raise Open311Error(INVALID, f"{name} is {len(values[-1]):,} characters; at most {limit:,}")
    try:
        return clean_text(values[-1].strip(), name, limit, multiline=multiline, required=False)
    except InvalidInput as exc:
        raise Open311Error(INVALID, exc.message) from None


@dataclass
class Submission:
    """A POST requests body, checked: what to file, and where."""

    new: NewCase
    category: CaseCategory
    address: str | None
    attributes: dict[str, str | list[str]]
    media_url: str | None = None  # the client's photo, by reference (never fetched: see check_media_url)


def parse_submission(
    session: Session,
    form: dict[str, list[str]],
    *,
    api_keys: Container[str],
    jurisdiction: str,
    locate_address: Callable[[str], tuple[float, float] | None],
) -> Submission:
    """Check a POST requests form (application/x-www-form-urlencoded) in the spec's order of errors."""
    key = _one(form, "api_key")
    if key is None:
        raise Open311Error(FORBIDDEN, "api_key was not provided -- can't proceed with create_request")
    if key not in api_keys:
        raise Open311Error(FORBIDDEN, "Invalid api_key received -- can't proceed with create_request")
    check_jurisdiction(_one(form, "jurisdiction_id"), jurisdiction)
    category = category_for(session, _one(form, "service_code"))
    lat, lon = _float(form, "lat"), _float(form, "long")
    address = _text(form, "address_string", MAX_ADDRESS)
    if _one(form, "address_id") is not None and lat is None and address is None:
        raise Open311Error(INVALID, "address_id is not supported here; send lat and long, or address_string")
    if (lat is None) != (lon is None):
        raise Open311Error(INVALID, "lat and long must both be sent")
    if lat is None and address is None:
        raise Open311Error(INVALID, "a location is required: lat and long, or address_string")
    if lat is not None and lon is not None and not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise Open311Error(INVALID, f"lat {lat} / long {lon} are not WGS84 degrees (lat -90..90, long -180..180)")
    description = _text(form, "description", MAX_TEXT, multiline=True)
    attributes: dict[str, str | list[str]] = {}
    for name, values in form.items():
        if name.startswith("attribute[") and values:
            code = name[len("attribute[") :].split("]", 1)[0]
            if len(code) > 32 or len(attributes) >= 20:
                raise Open311Error(INVALID, "attribute: at most 20 attributes, each code at most 32 characters")
            checked = [_text({name: [v]}, f"attribute[{code}]", 200) or "" for v in values[-20:]]
            attributes[code] = checked if name.endswith("[]") else checked[-1]
    for attribute in attributes_of(category):
        value = attributes.get(attribute["code"])
        if attribute["required"] and not value:
            raise Open311Error(INVALID, f"attribute[{attribute['code']}] is required for service_code {category.code}")
        keys = {v["key"] for v in attribute["values"]}
        if value and keys and any(v not in keys for v in (value if isinstance(value, list) else [value])):
            raise Open311Error(INVALID, f"attribute[{attribute['code']}] must be one of {', '.join(sorted(keys))}")
    try:
        phone = clean_phone(last_value(form, "phone"), "phone")
    except InvalidInput as exc:
        raise Open311Error(INVALID, exc.message) from None
    reporter = " ".join(p for p in (_text(form, "last_name", 64), _text(form, "first_name", 64)) if p) or None
    _text(form, "account_id", 64)  # echoed back in the answer: short and printable
    if lat is None or lon is None:
        point = locate_address(address) if address is not None else None
        if point is None:
            raise Open311Error(
                INVALID, f"address_string {address!r} could not be located in this jurisdiction; send lat and long"
            )
        lon, lat = point
    note = "\n".join(f"{k}: {', '.join(v) if isinstance(v, list) else v}" for k, v in attributes.items())
    body = "\n".join(p for p in (description, note) if p) or None
    new = NewCase(
        title=category.name,
        lon=lon,
        lat=lat,
        crs="wgs84",
        category=category.code,
        description=body,
        source="open311",
        address=address,
        reporter_name=reporter[:64] if reporter else None,
        reporter_phone=phone,
    )
    media_url = check_media_url(_one(form, "media_url"))
    return Submission(new, category, address, attributes, media_url)


MAX_MEDIA_URL = 1000


def check_media_url(text: str | None) -> str | None:
    """A `media_url` is kept as a reference on the case and shown back; it is never fetched (no request to a
    place a client names: SSRF). Only an https address of a named public host is accepted: no credentials, no
    IP address literal of a loopback, private, link-local or reserved network, no other scheme."""
    if text is None:
        return None
    import ipaddress
    from urllib.parse import urlsplit

    if len(text) > MAX_MEDIA_URL or not text.isprintable() or any(c.isspace() for c in text):
        raise Open311Error(INVALID, f"media_url must be one https address of at most {MAX_MEDIA_URL} characters")
    try:
        parts = urlsplit(text)
        host = parts.hostname
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        raise Open311Error(INVALID, f"media_url {_shown(text)} is not an address") from None
    if parts.scheme.lower() != "https" or not host:
        raise Open311Error(
            INVALID, f"media_url {_shown(text)} is not allowed: only https addresses are accepted (url_not_allowed)"
        )
    if parts.username is not None or parts.password is not None:
        raise Open311Error(INVALID, "media_url must not carry a user name or password (url_not_allowed)")
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        address = None
    local_name = host.lower() in ("localhost", "localhost.localdomain") or host.lower().endswith(
        (".localhost", ".local", ".internal")
    )
    if (address is not None and not address.is_global) or local_name:
        raise Open311Error(INVALID, f"media_url {_shown(text)} points at a local or private address (url_not_allowed)")
    return text


def media_reference(case: Case) -> str | None:
    """The `media_url` a client sent with the request, kept in the case's history."""
    return next(((e.detail or {}).get("url") for e in case.events if e.action == MEDIA_LINKED), None)


MEDIA_LINKED = "media_linked"


def _parse_w3(name: str, text: str | None) -> dt.datetime | None:
    if text is None:
        return None
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise Open311Error(
            INVALID, f"{name} must be a w3 datetime such as 2010-01-01T00:00:00Z, not {_shown(text)}"
        ) from None
    if value.tzinfo is None:
        raise Open311Error(INVALID, f"{name} must include the time zone (Z or +08:00)")
    return value


def find_requests(session: Session, query: dict[str, list[str]], *, now: dt.datetime | None = None) -> list[Case]:
    """GET requests: by service_request_id (overrides everything else), or by service_code, date range (at most
    90 days; the most recent 90 days by default) and status; at most 1,000, most recent first."""
    now = now or dt.datetime.now(dt.UTC)
    base = sa.select(Case).options(selectinload(Case.category), selectinload(Case.events))
    ids = _one(query, "service_request_id")
    if ids is not None:
        numbers = [p.strip() for p in ids.split(",") if p.strip()]
        found = base.where(cases_by_number(session, numbers)) if numbers else base.where(sa.false())
        return list(session.scalars(found.order_by(Case.reported_at.desc())))
    start, end = _parse_w3("start_date", _one(query, "start_date")), _parse_w3("end_date", _one(query, "end_date"))
    if start and end and end < start:
        raise Open311Error(INVALID, "end_date is before start_date")
    if start and end and end - start > WINDOW:
        raise Open311Error(INVALID, "start_date and end_date may not span more than 90 days")
    if start is None and end is None:
        end, start = now, now - WINDOW
    elif start is None and end is not None:
        start = end - WINDOW
    elif end is None and start is not None:
        end = start + WINDOW
    statement = base.where(Case.reported_at >= start, Case.reported_at <= end)
    codes = _one(query, "service_code")
    if codes is not None:
        codes_wanted = [c.strip() for c in codes.split(",") if c.strip()]
        statement = statement.join(CaseCategory, Case.category_id == CaseCategory.id).where(
            CaseCategory.code.in_(codes_wanted)
        )
    statuses = _one(query, "status")
    if statuses is not None:
        wanted = {s.strip() for s in statuses.split(",") if s.strip()}
        if not wanted <= {"open", "closed"}:
            raise Open311Error(
                INVALID, f"status must be open, closed or both (comma delimited), not {_shown(statuses)}"
            )
        if wanted == {"open"}:
            statement = statement.where(Case.state.not_in(CLOSED_STATES))
        elif wanted == {"closed"}:
            statement = statement.where(Case.state.in_(CLOSED_STATES))
    return list(session.scalars(statement.order_by(Case.reported_at.desc(), Case.id.desc()).limit(MAX_REQUESTS)))


def get_request(session: Session, number: str) -> Case:
    case = session.scalars(
        sa.select(Case)
        .options(selectinload(Case.category), selectinload(Case.events))
        .where(cases_by_number(session, [number]))
    ).first()
    if case is None:
        raise Open311Error(NOT_FOUND, f"service_request_id {number} was not found")
    return case


def _w3(value: dt.datetime | None) -> str | None:
    value = utc(value)
    return value.isoformat(timespec="seconds").replace("+00:00", "Z") if value else None


def request_view(session: Session, case: Case, names: dict[str, Any] | None = None) -> dict[str, Any]:
    """One service request in the spec's fields, with our extensions under `extended_attributes`."""
    names = names if names is not None else _names(session)
    updated = max((e.at for e in case.events), default=case.reported_at, key=lambda t: utc(t))
    agency = names["departments"].get(case.department_id) or names["branches"].get(case.branch_id)
    return {
        "service_request_id": case.number,
        "status": "closed" if case.state in CLOSED_STATES else "open",
        "status_notes": STAGE_ZH.get(case.state, case.state),
        "service_name": case.category.name if case.category else None,
        "service_code": case.category.code if case.category else None,
        "description": case.description,
        "agency_responsible": agency,
        "service_notice": None,
        "requested_datetime": _w3(case.reported_at),
        "updated_datetime": _w3(case.closed_at if case.state in CLOSED_STATES and case.closed_at else updated),
        "expected_datetime": _w3(case.due_at),
        "address": case.address,
        "address_id": None,
        "zipcode": None,
        "lat": case.lat,
        "long": case.lon,
        "media_url": media_reference(case),
        "extended_attributes": {
            "grid_code": case.grid_code,
            "branch": names["branches"].get(case.branch_id),
            "stage": case.state,
            "deadline": _w3(case.due_at),
            "escalation_level": case.escalation_level or 0,
        },
    }


def _names(session: Session) -> dict[str, Any]:
    return {
        "departments": dict(session.execute(sa.select(Department.id, Department.name)).all()),
        "branches": dict(session.execute(sa.select(PartyOrg.id, PartyOrg.name)).all()),
    }


def requests_view(session: Session, cases: list[Case]) -> list[dict[str, Any]]:
    names = _names(session)
    return [request_view(session, c, names) for c in cases]


def notice(case: Case) -> str:
    if case.state == "dispatched":
        return f"已受理并派遣（{case.grid_code} 网格），编号 {case.number}"
    return f"已收到，编号 {case.number}，等待调度员立案"


def discovery(base_url: str, changeset: str) -> dict[str, Any]:
    return {
        "changeset": changeset,
        "contact": "12345 市民服务热线",
        "key_service": "向区网格化服务管理中心申请 api_key",
        "endpoints": [
            {
                "specification": SPEC,
                "url": base_url,
                "changeset": changeset,
                "type": "production",
                "formats": ["text/xml", "application/json"],
            }
        ],
    }
