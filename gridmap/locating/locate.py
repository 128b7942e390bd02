"""Locating for people: a point (in any supported coordinate system) or an address text → the responsible grid,
its chain, party branch and staff, with the method and the quality flags that explain the answer.

Flags (all documented in `lookup` and here):

* `on_boundary` — the point is on a shared edge or vertex; `candidates` lists the other grids, `tie_rule` says
  which rule chose the winner (`smallest_code_wins`).
* `near_boundary` — another grid is within `near_m` (or the GPS accuracy radius, if larger); `near` lists them
  with distances in metres.
* `outside_all_grids` — no grid covers the point; with `assigned_to_nearest` the nearest grid within
  `nearest_m` was taken (method `nearest`).
* `possibly_converted_twice` — a GCJ-02/BD-09 point lands outside every grid, but converting it once more lands
  inside one: the usual sign of a coordinate that was shifted to GCJ-02 twice. `alternative` shows that grid.
* `possibly_gcj02` — a point given as WGS84 lands outside every grid but inside one when read as GCJ-02.
* `address_disagrees` — coordinates and an address were both given, and the address's place lies in another grid.

Points farther than `service_margin_m` from the service area are refused (`InvalidCoordinate`), with the distance.
"""

from __future__ import annotations

import datetime as dt
import math
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from gridmap.boundaries.areas import PeopleDirectory, people_directory
from gridmap.calendar import china_date
from gridmap.errors import InvalidCoordinate, InvalidInput, field_zh
from gridmap.geo import crs as gcrs
from gridmap.geo.index import FLAG_OUTSIDE, AreaIndex, Location
from gridmap.textcheck import MAX_ADDRESS

if TYPE_CHECKING:
    from collections.abc import Callable

    from gridmap.locating.gazetteer import Gazetteer

FLAG_TWICE = "possibly_converted_twice"
FLAG_GCJ02 = "possibly_gcj02"
FLAG_ADDRESS_DISAGREES = "address_disagrees"
FLAG_ADDRESS_NOT_MATCHED = "address_not_matched"


@dataclass(frozen=True)
class LocateOptions:
    """Distances that qualify an answer, in metres."""

    near_m: float = 10.0  # report other grids this close as near_boundary
    nearest_m: float = 100.0  # outside every grid: take the nearest grid within this distance
    service_margin_m: float = 30_000.0  # refuse points farther than this from the service area

    def check(self) -> None:
        for name in ("near_m", "nearest_m", "service_margin_m"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and 0 <= value <= 1_000_000):
                raise InvalidInput(
                    f"{name}: {value!r} must be a number of metres from 0 to 1000000",
                    field=name,
                    zh=f"{field_zh(name)}：{value!r} 应为 0 至 1000000 之间的米数。",
                )


def check_accuracy(accuracy_m: float | None) -> float | None:
    if accuracy_m is None:
        return None
    if not (math.isfinite(accuracy_m) and 0 <= accuracy_m <= 10_000):
        raise InvalidInput(
            f"accuracy_m: {accuracy_m!r} must be a GPS accuracy radius from 0 to 10000 metres",
            field="accuracy_m",
            zh=f"定位精度：{accuracy_m!r} 应为 0 至 10000 米之间的定位精度半径。",
        )
    return float(accuracy_m)


def to_wgs84_checked(
    index: AreaIndex, x: float, y: float, system: gcrs.CoordinateSystem, options: LocateOptions
) -> tuple[float, float]:
    """Convert and validate one point, refusing points far outside the service area with the reason."""
    lon, lat = gcrs.convert_point(x, y, system)
    distance = index.distance_to_service_area_m(lon, lat)
    if distance > options.service_margin_m:
        hint = gcrs.zone_hint(system)
        if not hint and system.is_geographic:
            hint = " Check the coordinate system (crs) and the order of longitude and latitude."
        hint_zh = gcrs.zone_hint_zh(system) or (
            "请检查坐标系（crs）以及经度、纬度的顺序。" if system.is_geographic else ""
        )
        raise InvalidCoordinate(
            f"lon/lat: ({x}, {y}) in {system.name} is WGS84 ({lon:.6f}, {lat:.6f}), {distance / 1000:,.1f} km from "
            f"the service area; points more than {options.service_margin_m / 1000:g} km away are refused.{hint}",
            field="lon",
            zh=f"经纬度：{system.name} 坐标（{x}, {y}）即 WGS84（{lon:.6f}, {lat:.6f}），距服务区域 "
            f"{distance / 1000:,.1f} 公里；超出 {options.service_margin_m / 1000:g} 公里的点不予受理。{hint_zh}",
        )
    return lon, lat


def _alternative_reading(
    index: AreaIndex, lon: float, lat: float, system: gcrs.CoordinateSystem, location: Location
) -> tuple[str, dict[str, Any]] | None:
    """When a point lands outside every grid, a second reading of its datum that lands inside one."""
    if FLAG_OUTSIDE not in location.flags:  # outside every grid (perhaps given the nearest one anyway)
        return None
    if system.is_offset:
        flag = FLAG_TWICE
    elif system.name in ("wgs84", "cgcs2000"):
        flag = FLAG_GCJ02
    else:
        return None
    alt_lon, alt_lat = gcrs.gcj02_to_wgs84(lon, lat)
    codes = index.covering(alt_lon, alt_lat)
    if not codes:
        return None
    chain = index.chain_of(codes[0])
    grid = next((a for a in chain if a.level == "grid"), chain[-1])
    return flag, {
        "point": {"lon": alt_lon, "lat": alt_lat},
        "grid": {"code": grid.code, "name": grid.name},
        "leaf_code": codes[0],
    }


PEOPLE_TTL_S = 30.0
_people: dict[tuple[str, dt.date], tuple[float, PeopleDirectory]] = {}
_people_lock = threading.Lock()
_loading: dict[tuple[str, dt.date], threading.Lock] = {}  # one load at a time per key; the others wait for it
_people_epoch = 0  # moved by every clear: a load begun before a clear is returned but not kept
_waiting = 0  # callers waiting for a load in progress: a load that gives way to answers stops giving way


def clear_people_cache() -> None:
    """Forget cached branch and staff answers (call after changing assignments)."""
    global _people_epoch
    with _people_lock:
        _people.clear()
        _people_epoch += 1


def _people_key(session_or_key: Session | str, on: dt.date | None) -> tuple[str, dt.date]:
    db = session_or_key if isinstance(session_or_key, str) else str(session_or_key.get_bind().engine.url)
    return db, on or china_date()


def people_age(db: str, on: dt.date | None = None) -> float | None:
    """Seconds since the branch and staff of `db` for `on` were loaded; None when they are not cached. While
    they are, a locate needs no database at all."""
    hit = _people.get(_people_key(db, on))
    return None if hit is None else time.monotonic() - hit[0]


def warm_people(
    session: Session,
    on: dt.date | None = None,
    *,
    max_age_s: float | None = None,
    pause: Callable[..., None] | None = None,
) -> PeopleDirectory:
    """Load the branch and staff of every grid for a day (two queries) and cache them for `PEOPLE_TTL_S`. One load
    per database and day at a time: a caller arriving during another's load waits for it, and with `max_age_s` uses
    what that load (or any kept less than `max_age_s` seconds ago) read instead of reading again (a province's
    directory takes seconds: a server starting loads it in the background while the first locates come in).
    `pause` (a background load's, `Runtime.giving_way`): called between slices of the rows, and ended as soon as
    a caller waits for this load."""
    global _waiting
    key = _people_key(session, on)
    with _people_lock:
        if len(_loading) > 64:
            _loading.clear()
        loading = _loading.setdefault(key, threading.Lock())
    if not loading.acquire(blocking=False):
        with _people_lock:
            _waiting += 1
        try:
            loading.acquire()
        finally:
            with _people_lock:
                _waiting -= 1
    try:
        hit = _people.get(key)
        if max_age_s is not None and hit is not None and time.monotonic() - hit[0] < max_age_s:
            return hit[1]
        epoch = _people_epoch
        polite = None if pause is None else lambda: pause(lambda: _waiting > 0)
        directory = people_directory(session, key[1], pause=polite)
        with _people_lock:
            if len(_people) > 64:
                _people.clear()
            if epoch == _people_epoch:  # no change of assignments was heard while it was read
                _people[key] = (time.monotonic(), directory)
    finally:
        loading.release()
    return directory


class PeopleNotCached(LookupError):
    """A locate without a session found no cached branch and staff (dropped meanwhile: an activation, a change of
    assignments): the caller answers with a session instead."""


def people_for(
    session: Session | None, grid_code: str, on: dt.date | None, *, db: str | None = None
) -> tuple[dict[str, Any] | None, list[Any]]:
    """The grid's party branch and staff, from a directory of all grids reloaded every `PEOPLE_TTL_S` seconds:
    a locate answer is asked for far more often than assignments change. Without a session (`db` names the
    database) a cached directory is used even if stale; `PeopleNotCached` when there is none."""
    named: Session | str | None = session if session is not None else db
    if named is None:
        raise LookupError("no session, and no database named whose cached branch and staff could be used")
    key = _people_key(named, on)
    hit = _people.get(key)
    if hit is not None and (session is None or time.monotonic() - hit[0] < PEOPLE_TTL_S):
        directory = hit[1]
    elif session is None:
        raise PeopleNotCached(f"no branch and staff cached for {key[1]}")
    else:
        directory = warm_people(session, key[1], max_age_s=PEOPLE_TTL_S)
    branch, staff = directory.get(grid_code, (None, []))
    return branch, [dict(s) for s in staff]


def describe(
    session: Session | None,
    index: AreaIndex,
    location: Location,
    *,
    on: dt.date | None = None,
    with_people: bool = True,
    db: str | None = None,
) -> dict[str, Any]:
    """The JSON answer for a located point: chain, grid, micro-grid, branch, staff, method and flags."""
    grid = location.at_level("grid")
    micro = location.at_level("microgrid")
    branch, staff = people_for(session, grid.code, on, db=db) if (grid and with_people) else (None, [])
    return {
        "point": {"lon": location.lon, "lat": location.lat},
        "chain": [a.as_dict() for a in location.chain],
        "grid": {"code": grid.code, "name": grid.name} if grid else None,
        "microgrid": {"code": micro.code, "name": micro.name} if micro else None,
        "branch": branch,
        "staff": [dict(s) for s in staff],
        "method": location.method,
        "flags": list(location.flags),
        "candidates": location.candidates,
        "tie_rule": location.tie_rule,
        "near": location.near,
        "distance_m": location.distance_m,
        "generation_id": index.generation_id,
    }


def locate(
    session: Session | None,
    index: AreaIndex,
    x: float | None = None,
    y: float | None = None,
    crs: str | None = "wgs84",
    *,
    address: str | None = None,
    accuracy_m: float | None = None,
    as_of: dt.date | None = None,
    options: LocateOptions | None = None,
    gazetteer: Gazetteer | None = None,
    db: str | None = None,
) -> dict[str, Any]:
    """The locate answer for a point, an address, or both (the point decides, the address cross-checks).

    `session` may be None for a point when the branch and staff of `db` are cached (`people_age`): the
    answer then needs no database at all, which is what lets the API answer on its event loop.

    Raises `InvalidCoordinate`, `UnknownCRS` or `InvalidInput` (naming the field) for input that cannot be
    located; an address that matches nothing is an answer (`address_not_matched`), not an error."""
    options = options or LocateOptions()
    accuracy_m = check_accuracy(accuracy_m)
    has_point = x is not None or y is not None
    if not has_point and not (address and address.strip()):
        raise InvalidInput(
            "lon/lat or address: give a point (lon and lat) or an address text",
            field="lon",
            zh="经纬度或地址：请提供一个点（经度和纬度）或一段地址文字。",
        )
    match = None
    if address is not None and len(address) > MAX_ADDRESS:  # measured before anything reads it
        raise InvalidInput(
            f"address: {len(address):,} characters is too long; at most {MAX_ADDRESS}",
            field="address",
            zh=f"地址过长：{len(address):,} 个字符，最多 {MAX_ADDRESS} 个。",
        )
    if address and address.strip():
        if gazetteer is None:
            from gridmap.locating.gazetteer import gazetteer_for

            assert session is not None, "an address is matched through a session or a given gazetteer"
            gazetteer = gazetteer_for(session)
        match = gazetteer.match(address)
    if has_point:
        if x is None or y is None:
            missing = "lon" if x is None else "lat"
            raise InvalidCoordinate(
                f"{missing}: missing; give both lon and lat",
                field=missing,
                zh=f"缺少{field_zh(missing)}，请同时提供经度和纬度。",
            )
        system = gcrs.parse_crs(crs)
        lon, lat = to_wgs84_checked(index, x, y, system, options)
        location = index.locate(lon, lat, near_m=options.near_m, accuracy_m=accuracy_m, nearest_m=options.nearest_m)
        alternative = _alternative_reading(index, lon, lat, system, location)
        out = describe(session, index, location, on=as_of, db=db)
        out["input"] = {"x": x, "y": y, "crs": system.name}
        if alternative:
            out["flags"].append(alternative[0])
            out["alternative"] = alternative[1]
        if match is not None:
            out["address_match"] = match.as_dict()
            if (
                match.place is not None
                and match.leaf_code
                and location.leaf_code
                and match.leaf_code[: len(location.leaf_code)] != location.leaf_code[: len(match.leaf_code)]
            ):
                out["flags"].append(FLAG_ADDRESS_DISAGREES)
        return out
    # address only
    if match is None or match.place is None:
        location = Location(math.nan, math.nan, flags=[FLAG_ADDRESS_NOT_MATCHED], method="address")
        out = describe(session, index, location, on=as_of, db=db)
        out["point"] = None
    else:
        lon, lat = match.place["lon"], match.place["lat"]
        location = index.locate(lon, lat, near_m=options.near_m, accuracy_m=accuracy_m, nearest_m=options.nearest_m)
        location.method = "address"
        if match.level == "community" and location.chain:
            # a community name alone says which community, not which grid
            location.chain = [a for a in location.chain if a.level in ("district", "subdistrict", "community")]
            location.candidates = []
        out = describe(session, index, location, on=as_of, db=db)
    out["input"] = {"address": address}
    out["address_match"] = match.as_dict() if match is not None else None
    return out
