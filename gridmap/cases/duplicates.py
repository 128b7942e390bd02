"""Duplicate suggestions: several residents report the same overflowing bin. A case is a likely duplicate of
another when both have the same category, lie within `distance_m` of each other, were reported within `hours`
of each other, and the other is not finished as rejected, voided or merged. Suggestions are only suggestions:
a dispatcher merges (`workflow` step `merge`), and the merged case keeps its own history next to the one it
joined."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from gridmap.cases.intake import utc
from gridmap.errors import InvalidInput
from gridmap.geo.index import metres_per_degree
from gridmap.store.tables import Case

NOT_CANDIDATES = ("rejected", "voided", "merged")


@dataclass(frozen=True)
class Window:
    """How close in space and time two reports must be to be suggested as one problem."""

    distance_m: float = 50.0
    hours: float = 72.0

    def check(self) -> Window:
        if not (math.isfinite(self.distance_m) and 0 < self.distance_m <= 5_000):
            raise InvalidInput(
                f"distance_m: {self.distance_m!r}; a distance above 0 and at most 5000 metres",
                field="distance_m",
                zh=f"距离：{self.distance_m!r} 不被接受；应大于 0 且不超过 5000 米。",
            )
        if not (math.isfinite(self.hours) and 0 < self.hours <= 24 * 90):
            raise InvalidInput(
                f"hours: {self.hours!r}; a window above 0 and at most 2160 hours (90 days)",
                field="hours",
                zh=f"小时数：{self.hours!r} 不被接受；应大于 0 且不超过 2160 小时（90 天）。",
            )
        return self


def suggest(session: Session, case: Case, window: Window = Window(), *, limit: int = 20) -> list[dict[str, Any]]:
    """Likely duplicates of `case`, nearest first: id, number, state, distance in metres, hours apart."""
    window.check()
    if case.lon is None or case.lat is None or case.category_id is None:
        return []
    kx, ky = metres_per_degree(case.lat)
    dlon, dlat = window.distance_m / kx, window.distance_m / ky
    at = utc(case.reported_at)
    span = dt.timedelta(hours=window.hours)
    rows = session.execute(
        sa.select(
            Case.id,
            Case.number,
            Case.state,
            Case.lon,
            Case.lat,
            Case.reported_at,
            Case.title,
            Case.grid_code,
            Case.source,
        ).where(
            Case.category_id == case.category_id,
            Case.id != case.id,
            Case.state.not_in(NOT_CANDIDATES),
            Case.reported_at.between(at - span, at + span),
            Case.lon.between(case.lon - dlon, case.lon + dlon),
            Case.lat.between(case.lat - dlat, case.lat + dlat),
        )
    ).all()
    found = []
    for row in rows:
        distance = math.hypot((row.lon - case.lon) * kx, (row.lat - case.lat) * ky)
        if distance <= window.distance_m:
            hours = abs((utc(row.reported_at) - at).total_seconds()) / 3600
            found.append(
                {
                    "id": row.id,
                    "number": row.number,
                    "state": row.state,
                    "title": row.title,
                    "grid_code": row.grid_code,
                    "source": row.source,
                    "distance_m": round(distance, 1),
                    "hours_apart": round(hours, 2),
                }
            )
    found.sort(key=lambda f: (f["distance_m"], f["hours_apart"], f["id"]))
    return found[:limit]
