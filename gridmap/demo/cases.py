"""A year of demo cases: realistic categories, channels, states and times, located by the lookup index."""

from __future__ import annotations

import datetime as dt

import numpy as np
import sqlalchemy as sa
from sqlalchemy.orm import Session

from gridmap import crs as gcrs
from gridmap.demo import names
from gridmap.demo.catalogue import CLASS_WEIGHTS
from gridmap.demo.tiling import DemoArea
from gridmap.lookup import AreaIndex
from gridmap.tables import Case, CaseCategory, CaseEvent, PartyOrg, PartyOrgArea, StaffArea

SOURCES = ("hotline", "miniprogram", "patrol", "referral")
SOURCE_WEIGHTS = (0.45, 0.25, 0.25, 0.05)
UNIT_HOURS = {"work_hours": 1.0, "work_days": 8.0, "calendar_days": 24.0}
TZ_CN = dt.timezone(dt.timedelta(hours=8))


def _sample_points(areas: list[DemoArea], n: int, rng: np.random.Generator) -> np.ndarray:
    leaves = [a for a in areas if a.level == "microgrid" and len(a.xy)]
    weights = np.array([a.households for a in leaves], float)
    chosen = rng.choice(len(leaves), size=n, p=weights / weights.sum())
    xy = np.array([leaves[i].xy[int(rng.integers(len(leaves[i].xy)))] for i in chosen])
    return xy + rng.normal(0.0, 8.0, size=xy.shape)


def insert_cases(session: Session, index: AreaIndex, areas: list[DemoArea], epsg: int, n: int, today: dt.date,
                 rng: np.random.Generator, prefix: str) -> int:
    """Insert `n` cases reported over the year before `today`, with their histories; returns `n`."""
    if n <= 0:
        return 0
    _, back = gcrs.projector(epsg)
    xy = _sample_points(areas, n, rng)
    lon, lat = back.transform(xy[:, 0], xy[:, 1])
    leaf = index.locate_many(lon, lat)
    cats = session.scalars(sa.select(CaseCategory).order_by(CaseCategory.code)).all()
    cat_w = np.array([CLASS_WEIGHTS.get(c.major_class, 1) / sum(1 for d in cats if d.major_class == c.major_class)
                      for c in cats])
    cat_idx = rng.choice(len(cats), size=n, p=cat_w / cat_w.sum())
    branches = dict(session.execute(sa.select(PartyOrgArea.area_code, PartyOrg.id)
                                    .join(PartyOrg, PartyOrg.id == PartyOrgArea.party_org_id)
                                    .where(PartyOrg.kind == "grid_branch")).all())
    workers = dict(session.execute(sa.select(StaffArea.area_code, sa.func.min(StaffArea.staff_id))
                                   .where(StaffArea.role == "fulltime_worker").group_by(StaffArea.area_code)).all())
    end = dt.datetime.combine(today, dt.time(0), TZ_CN).astimezone(dt.timezone.utc)
    age_days = np.sort(rng.uniform(0, 365, n))[::-1]
    rows, histories = [], []
    seq: dict[str, int] = {}
    for i in range(n):
        reported = end - dt.timedelta(days=float(age_days[i]))
        reported = _daytime(reported, rng)
        chain = index.chain_of(index.leaves[leaf[i]].code) if leaf[i] >= 0 else []
        codes = {a.level: a.code for a in chain}
        cat = cats[cat_idx[i]]
        row, history = _one_case(cat, reported, end, codes, rng)
        day = f"{reported.astimezone(TZ_CN):%Y%m%d}"
        seq[day] = seq.get(day, 0) + 1
        source = str(rng.choice(SOURCES, p=SOURCE_WEIGHTS))
        row.update(number=f"{prefix}{day}{seq[day]:05d}", title=cat.name, category_id=cat.id, source=source,
                   description=f"{cat.name}，请尽快处理。", lon=float(lon[i]), lat=float(lat[i]),
                   raw_x=float(lon[i]), raw_y=float(lat[i]), raw_crs="wgs84",
                   geom=f"SRID=4326;POINT({float(lon[i])!r} {float(lat[i])!r})", generation_id=index.generation_id,
                   district_code=codes.get("district"), subdistrict_code=codes.get("subdistrict"),
                   community_code=codes.get("community"), grid_code=codes.get("grid"),
                   microgrid_code=codes.get("microgrid"), branch_id=branches.get(codes.get("grid")),
                   assignee_id=workers.get(codes.get("grid")), locate_flags=[], version=1,
                   reporter_name=names.person_name(rng) if source in ("hotline", "miniprogram") else None,
                   reporter_phone=names.phone_number(rng) if source in ("hotline", "miniprogram") else None)
        rows.append(row)
        histories.append(history)
    session.execute(sa.insert(Case), rows)
    ids = dict(session.execute(sa.select(Case.number, Case.id).where(Case.number.startswith(prefix))).all())
    events = [dict(case_id=ids[row["number"]], **event) for row, history in zip(rows, histories) for event in history]
    session.execute(sa.insert(CaseEvent), events)
    return n


def _daytime(when: dt.datetime, rng: np.random.Generator) -> dt.datetime:
    """Most reports arrive between 08:00 and 21:00 China time."""
    local = when.astimezone(TZ_CN)
    hour = int(np.clip(rng.normal(13.5, 3.5), 6, 23))
    return local.replace(hour=hour, minute=int(rng.integers(60)), second=int(rng.integers(60)),
                         microsecond=0).astimezone(dt.timezone.utc)


def _one_case(cat: CaseCategory, reported: dt.datetime, end: dt.datetime, codes: dict, rng: np.random.Generator):
    """The case's state and times, and its history, given how long ago it was reported."""
    limit_h = cat.time_limit * UNIT_HOURS[cat.time_unit]
    steps = [("reported", None, "reported", reported)]
    filed = reported + dt.timedelta(minutes=float(rng.uniform(5, 60)))
    if rng.random() < 0.015:
        steps.append(("rejected", "reported", "rejected", filed))
        return _finish(steps, None, None, None, None)
    steps.append(("filed", "reported", "filed", filed))
    if not codes.get("grid"):
        return _finish(steps, None, None, None, None)
    dispatched = filed + dt.timedelta(minutes=float(rng.uniform(2, 40)))
    accepted = dispatched + dt.timedelta(minutes=float(rng.uniform(5, 90)))
    due = accepted + dt.timedelta(hours=limit_h * (1.6 if cat.time_unit == "work_days" else 1.0))
    handled = accepted + dt.timedelta(hours=limit_h * float(rng.lognormal(-1.0, 0.55)))
    closed = handled + dt.timedelta(hours=float(rng.uniform(0.5, 8)))
    for action, frm, to, at in (("dispatched", "filed", "dispatched", dispatched),
                                ("accepted", "dispatched", "accepted", accepted),
                                ("handled", "accepted", "handled", handled), ("closed", "handled", "closed", closed)):
        if at > end:
            break
        steps.append((action, frm, to, at))
    if steps[-1][0] == "handled" and rng.random() < 0.04 and closed > end - dt.timedelta(days=2):
        steps.append(("rework", "handled", "rework", end - dt.timedelta(hours=2)))
    if steps[-1][0] == "closed" and rng.random() < 0.006:
        steps[-1] = ("suspended", "handled", "suspended", closed)
    rated = int(rng.choice([5, 5, 5, 4, 4, 3, 2])) if steps[-1][0] == "closed" and rng.random() < 0.7 else None
    accepted_at = accepted if len(steps) >= 4 else None
    return _finish(steps, accepted_at, due if accepted_at else None,
                   closed if steps[-1][0] == "closed" else None, rated)


def _finish(steps, accepted_at, due_at, closed_at, satisfaction):
    state = steps[-1][2]
    row = dict(state=state, reported_at=steps[0][3], accepted_at=accepted_at, due_at=due_at, closed_at=closed_at,
               satisfaction=satisfaction)
    actors = {"reported": "resident", "filed": "dispatcher", "rejected": "dispatcher", "dispatched": "system"}
    history = [dict(at=at, actor=actors.get(action, "grid_worker"), action=action, from_state=frm, to_state=to,
                    detail=None) for action, frm, to, at in steps]
    return row, history
