"""One search box for the map: an area by code or name, a compound, building or address, a case by number.

Results come back best first, each with what the map needs to go there: an area's code and box, a place's or a
case's point. Codes and case numbers match from their start; names match anywhere in them; an address goes
through the gazetteer (so 官渡区 prefixes, 栋/号楼 forms and small typos are understood).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from geoalchemy2.shape import to_shape
from shapely.geometry import Point
from sqlalchemy.orm import Session

from gridmap.access import policy
from gridmap.boundaries.areas import active_generation
from gridmap.errors import InvalidInput
from gridmap.locating.gazetteer import gazetteer_for
from gridmap.store import dialect
from gridmap.store.tables import LEVELS, Area, Case, Place

MAX_QUERY = 100
LEVEL_RANK = {level: i for i, level in enumerate(LEVELS)}


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


# what a case number can start with: `intake.case_number` writes a channel's letters, the date and a sequence
NUMBER_START = re.compile(r"[A-Za-z0-9]+")


def _cases_numbered(session: Session, text: str, limit: int, who: policy.Principal) -> Sequence[Any]:
    """The cases `who` may see whose number starts with `text` (letters in either case), in number order, as rows
    (id, number, state, lon, lat, grid_code): a range of the case numbers' index in byte order (migration 0017), on
    both databases. A text no number can start with (a Chinese word, a space, a dash) asks nothing of the case
    table."""
    if not NUMBER_START.fullmatch(text):
        return []
    start = text.upper()
    after = start[:-1] + chr(ord(start[-1]) + 1)  # the first text in byte order past every one starting so
    number = dialect.byte_ordered(session, Case.__table__.c.number)
    return session.execute(
        sa.select(Case.id, Case.number, Case.state, Case.lon, Case.lat, Case.grid_code)
        .where(number >= start, number < after, policy.case_condition(who, Case))
        .order_by(number)
        .limit(limit)
    ).all()


def search(session: Session, q: str, *, limit: int = 10, who: policy.Principal | None = None) -> list[dict[str, Any]]:
    """Areas, places and cases matching `q`, best first (at most `limit`); with `who`, only what it may see
    (areas in or above its scope, places and cases in it)."""
    who = who or policy.SYSTEM
    text = (q or "").strip()
    if not text:
        raise InvalidInput(
            "q: type a grid code or name, a compound or address, or a case number",
            field="q",
            zh="搜索词：请输入网格编码或名称、小区或地址，或案件编号。",
        )
    if len(text) > MAX_QUERY:
        raise InvalidInput(
            f"q: {len(text)} characters is too long; at most {MAX_QUERY}",
            field="q",
            zh=f"搜索词过长：{len(text)} 个字符，最多 {MAX_QUERY} 个。",
        )
    if not 1 <= limit <= 50:
        raise InvalidInput(
            f"limit: {limit} must be from 1 to 50", field="limit", zh=f"每页条数：{limit} 应在 1 至 50 之间。"
        )
    generation = active_generation(session).id
    results: list[tuple[float, dict[str, Any]]] = []
    pattern = _like(text)
    areas = session.execute(
        sa.select(Area.code, Area.name, Area.level, Area.geom)
        .where(
            Area.generation_id == generation,
            policy.area_condition(who, Area.code),
            sa.or_(Area.code.like(pattern + "%", escape="\\"), Area.name.like("%" + pattern + "%", escape="\\")),
        )
        .order_by(Area.code)
        .limit(limit * 3)
    ).all()
    for code, name, level, geom in areas:
        shape = to_shape(geom)
        exact = code == text or name == text
        score = (3.0 if exact else 2.0 if code.startswith(text) or name.startswith(text) else 1.5) - LEVEL_RANK.get(
            level, 0
        ) * 0.01
        minx, miny, maxx, maxy = shape.bounds
        results.append(
            (
                score,
                {
                    "kind": "area",
                    "level": level,
                    "code": code,
                    "label": name,
                    "detail": code,
                    "bbox": [round(minx, 6), round(miny, 6), round(maxx, 6), round(maxy, 6)],
                },
            )
        )
    for cid, number, state, lon, lat, grid in _cases_numbered(session, text, limit, who):
        results.append(
            (
                3.0 if number == text.upper() else 1.8,
                {
                    "kind": "case",
                    "id": cid,
                    "label": number,
                    "detail": grid,
                    "state": state,
                    "point": [lon, lat] if lon is not None else None,
                },
            )
        )
    places = session.execute(
        sa.select(Place.id, Place.kind, Place.name, Place.address, Place.area_code, Place.geom)
        .where(
            policy.code_condition(who, Place.area_code),
            sa.or_(
                Place.name.like("%" + pattern + "%", escape="\\"), Place.address.like("%" + pattern + "%", escape="\\")
            ),
        )
        .order_by(Place.name)
        .limit(limit)
    ).all()
    seen_places = set()
    for pid, kind, name, address, area_code, geom in places:
        point = to_shape(geom)
        assert isinstance(point, Point)  # places are points (tables.Place)
        seen_places.add(pid)
        results.append(
            (
                2.5 if name == text else 1.6,
                {
                    "kind": "place",
                    "id": pid,
                    "place_kind": kind,
                    "label": name,
                    "detail": address or area_code,
                    "area_code": area_code,
                    "point": [round(point.x, 6), round(point.y, 6)],
                },
            )
        )
    if len(text) >= 2:
        match = gazetteer_for(session).match(text)
        if (
            match.place is not None
            and match.place.get("id") not in seen_places
            and policy.within(who, match.place.get("area_code"))
        ):
            p = match.place
            results.append(
                (
                    1.0 + match.confidence,
                    {
                        "kind": "address",
                        "id": p.get("id"),
                        "place_kind": match.kind,
                        "label": p.get("name"),
                        "detail": p.get("address") or p.get("area_code"),
                        "area_code": p.get("area_code"),
                        "confidence": round(match.confidence, 3),
                        "point": [p.get("lon"), p.get("lat")],
                    },
                )
            )
    results.sort(key=lambda item: -item[0])
    return [r for _, r in results[:limit]]
