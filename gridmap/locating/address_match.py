"""Address matches for the dispatcher to confirm: the place an address text matched, how sure the match is, where
it lies (grid, and how far from a reference point such as the case's pin), and the alternatives — so that a pin
is never moved silently to a compound 25 km away at confidence 0.6 (issue 14).

The matching itself is `gridmap.locating.gazetteer`'s; this adds what a person needs to decide: coordinates and the grid
of every alternative, similar names when nothing matched well, and `needs_confirmation` with its reasons.
"""

from __future__ import annotations

import difflib
import math
import re
from typing import Any

from sqlalchemy.orm import Session

from gridmap.geo.index import AreaIndex, metres_per_degree
from gridmap.locating.gazetteer import Gazetteer, gazetteer_for, normalise

SURE = 0.9  # below this a match is shown for confirmation
FAR_M = 2_000.0  # a match this far from the reference point is shown for confirmation
MAX_ALTERNATIVES = 5
SIMILAR_MIN = 0.4  # how alike a name must be to be offered when nothing matched well


def _distance_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    kx, ky = metres_per_degree((a[1] + b[1]) / 2)
    return math.hypot((a[0] - b[0]) * kx, (a[1] - b[1]) * ky)


def _where(index: AreaIndex | None, place: dict[str, Any], near: tuple[float, float] | None) -> dict[str, Any]:
    """A place as the answer shows it: name, address, kind, point, its grid, and the distance from `near`."""
    out = {k: place.get(k) for k in ("id", "kind", "name", "address", "lon", "lat", "area_code")}
    grid = None
    if index is not None and place.get("area_code"):
        chain = index.chain_of(place["area_code"])
        ref = next((a for a in chain if a.level == "grid"), chain[-1] if chain else None)
        grid = {"code": ref.code, "name": ref.name} if ref else None
    out["grid"] = grid
    out["distance_m"] = (
        round(_distance_m(near, (place["lon"], place["lat"])), 1)
        if near is not None and place.get("lon") is not None
        else None
    )
    return out


def _similar(gazetteer: Gazetteer, text: str, exclude: set[Any], limit: int) -> list[tuple[float, dict[str, Any]]]:
    """Compounds whose name is like the text's name part (before a building number): (likeness, place)."""
    head = re.split(r"\d", normalise(text), maxsplit=1)[0] or normalise(text)
    scored = []
    for entry in gazetteer.entries:
        if entry.kind != "compound" or entry.place.get("id") in exclude:
            continue
        ratio = difflib.SequenceMatcher(None, head, normalise(entry.name)).ratio()
        if ratio >= SIMILAR_MIN:
            scored.append((ratio, entry.place))
    scored.sort(key=lambda pair: (-pair[0], pair[1].get("name") or ""))
    return scored[:limit]


def match_address(
    session: Session,
    index: AreaIndex | None,
    text: str,
    *,
    near: tuple[float, float] | None = None,
    gazetteer: Gazetteer | None = None,
) -> dict[str, Any]:
    """The matched place (or None), its confidence and reason, the alternatives (each with its point, grid,
    confidence and distance from `near`), and whether a person should confirm it, with why."""
    gazetteer = gazetteer or gazetteer_for(session)
    match = gazetteer.match(text)
    places = {(e.name, e.kind): e.place for e in gazetteer.entries}
    place = _where(index, match.place, near) if match.place is not None else None
    seen = {match.place.get("id")} if match.place is not None else set()
    alternatives = []
    for alt in match.alternatives:
        name, kind = alt.get("name"), alt.get("kind")
        found = places.get((name, kind)) if isinstance(name, str) and isinstance(kind, str) else None
        if found is None or found.get("id") in seen:
            continue
        seen.add(found.get("id"))
        alternatives.append({**_where(index, found, near), "confidence": alt.get("confidence")})
    if match.place is None or match.confidence < SURE:
        for ratio, found in _similar(gazetteer, text, seen, MAX_ALTERNATIVES - len(alternatives)):
            seen.add(found.get("id"))
            alternatives.append(
                {**_where(index, found, near), "confidence": round(0.5 * ratio, 3), "similar_name": True}
            )
    alternatives = alternatives[:MAX_ALTERNATIVES]
    reasons = []
    if place is None:
        reasons.append("not_matched")
    else:
        if match.confidence < SURE:
            reasons.append("low_confidence")
        if place["distance_m"] is not None and place["distance_m"] > FAR_M:
            reasons.append("far_from_point")
    if alternatives and place is not None:
        reasons.append("alternatives")
    return {
        "text": text,
        "matched_place": place,
        "confidence": round(match.confidence, 3) if place else 0.0,
        "reason": match.reason,
        "level": match.level,
        "alternatives": alternatives,
        "needs_confirmation": bool(reasons),
        "confirm_because": reasons,
        "near": {"lon": near[0], "lat": near[1]} if near is not None else None,
    }
