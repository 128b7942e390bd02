"""The measures of DOMAIN.md §4 against hand-computed cases (both databases), and their CSV/XLSX exports.

The hand-made cases live in March 2030, far from the demo's year, in two grids of one community. Each expected
figure below is worked out in the comment next to it."""

from __future__ import annotations

import csv
import datetime as dt
import io

import numpy as np
import openpyxl
import pandas as pd
import pytest
import sqlalchemy as sa

from gridmap.cases import measures
from gridmap.errors import InvalidInput
from gridmap.store import engine as storage
from gridmap.store.tables import Area, Case, CaseEvent, CaseMonthHours, Department, Generation, StaffArea

UTC = dt.UTC
SINCE, UNTIL = dt.datetime(2030, 3, 1, tzinfo=UTC), dt.datetime(2030, 4, 1, tzinfo=UTC)


def t(month, day, hour=0):
    return dt.datetime(2030, month, day, hour, tzinfo=UTC)


@pytest.fixture()
def world(session):
    active = session.scalar(sa.select(Generation.id).where(Generation.status == "active"))
    community = session.scalars(
        sa.select(Area).where(Area.generation_id == active, Area.level == "community").order_by(Area.code)
    ).first()
    g1, g2 = session.scalars(sa.select(Area.code).where(Area.parent_id == community.id).order_by(Area.code)).all()[:2]
    w1, w2 = session.scalars(
        sa.select(StaffArea.staff_id).where(StaffArea.role == "fulltime_worker").order_by(StaffArea.staff_id).distinct()
    ).all()[:2]
    dept = session.scalars(sa.select(Department).order_by(Department.code)).first()
    # n: (grid, worker, reported, due, closed, state, rework_count, extension_count)
    specs = {
        1: (g1, w1, t(3, 2), t(3, 5), t(3, 4, 12), "closed", 0, 0),  # on time; 60 h to close
        2: (g1, w1, t(3, 3), t(3, 10), t(3, 12), "closed", 1, 0),  # late, reworked; 216 h
        3: (g1, w1, t(3, 5), t(3, 20), None, "accepted", 0, 1),  # open, extended
        4: (g1, w1, t(3, 6), t(3, 25), None, "suspended", 0, 0),  # suspended: leaves the denominators
        5: (g1, w2, t(2, 20), t(3, 2), t(3, 1, 6), "closed", 0, 0),  # reported in Feb, due in March; 222 h
        6: (g1, w1, t(3, 28), t(4, 3), None, "accepted", 0, 0),  # received; due in April
        7: (g1, w1, t(3, 10), None, t(3, 10), "voided", 0, 0),  # received; never due
        8: (g2, w2, t(3, 1), t(3, 2), t(3, 1, 10), "closed", 0, 0),  # on time; 10 h
        9: (g2, w2, t(2, 1), t(2, 10), t(3, 15), "closed", 0, 0),  # due in Feb, closed in March; 1008 h
    }
    ids = {}
    for n, (grid, worker, reported, due, closed, state, rework, extension) in specs.items():
        case = Case(
            number=f"M2030{n:03d}",
            title=f"measure {n}",
            source="api",
            state=state,
            grid_code=grid,
            community_code=community.code,
            subdistrict_code=community.parent.code,
            assignee_id=worker,
            reported_at=reported,
            due_at=due,
            closed_at=closed,
            rework_count=rework,
            extension_count=extension,
            version=1,
        )
        session.add(case)
        session.flush()
        ids[n] = case.id
    events = [
        (1, t(3, 4, 10), "handle", None),
        (2, t(3, 8), "handle", None),
        (2, t(3, 11), "handle", None),
        (8, t(3, 1, 8), "handle", None),
        (9, t(2, 9), "handle", None),  # the last is in February
        (3, t(3, 5, 6), "bounce", {"from_department_id": dept.id, "from_assignee_id": None}),
        (1, t(3, 5), "rate", {"satisfaction": 5}),
        (2, t(3, 13), "rate", {"satisfaction": 2}),
        (8, t(3, 2), "rate", {"satisfaction": 3}),
        (5, t(2, 28), "rate", {"satisfaction": 4}),
    ]
    for n, at, action, detail in events:
        session.add(CaseEvent(case_id=ids[n], at=at, actor="test", action=action, detail=detail))
    session.flush()
    return {"g1": g1, "g2": g2, "community": community.code, "w1": w1, "w2": w2, "dept": dept.id}


def _row(table, key):
    rows = [r for r in measures.to_records(table) if r["key"] == str(key)]
    assert len(rows) == 1, key
    return rows[0]


def test_grid_measures_match_the_hand_computed_figures(session, world):
    _, table = measures.measures(session, "grid", since=SINCE, until=UNTIL)
    g1 = _row(table, world["g1"])
    # received 1,2,3,4,6,7; D = {1,2,3,4,5}, S = {4}; closed {1,2,5}, on time {1,5}; reworked {2}; extended {3}
    assert {
        k: g1[k]
        for k in (
            "received",
            "handled",
            "due",
            "suspended",
            "closed",
            "closed_on_time",
            "reworked",
            "extended",
            "bounces",
            "rated",
            "satisfied",
        )
    } == {
        "received": 6,
        "handled": 3,
        "due": 5,
        "suspended": 1,
        "closed": 3,
        "closed_on_time": 2,
        "reworked": 1,
        "extended": 1,
        "bounces": 1,
        "rated": 2,
        "satisfied": 1,
    }
    assert (g1["closure_rate"], g1["on_time_rate"], g1["rework_rate"], g1["extension_rate"]) == (0.75, 0.5, 0.25, 0.25)
    assert g1["satisfaction"] == 0.5  # 5 satisfied, 2 not; the February rating does not count
    # closed in March: 60, 216, 222 hours → median 216; p90 at rank 1.8 → 216 + 0.8 × 6
    assert g1["close_hours_p50"] == 216.0 and g1["close_hours_p90"] == pytest.approx(220.8)
    g2 = _row(table, world["g2"])
    assert (g2["received"], g2["due"], g2["closed"], g2["closure_rate"], g2["on_time_rate"]) == (1, 1, 1, 1.0, 1.0)
    assert g2["satisfaction"] == 1.0  # a 3 is 基本满意
    # closed in March: 10 h (case 8) and 1,008 h (case 9, due in February) → median 509, p90 10 + 0.9 × 998
    assert g2["close_hours_p50"] == 509.0 and g2["close_hours_p90"] == pytest.approx(908.2)
    total = _row(table, "*")
    assert (total["received"], total["due"], total["suspended"], total["closed"], total["closed_on_time"]) == (
        7,
        6,
        1,
        4,
        3,
    )
    assert (total["closure_rate"], total["on_time_rate"], total["rework_rate"]) == (0.8, 0.6, 0.2)
    assert total["satisfaction"] == pytest.approx(2 / 3, abs=1e-4)
    assert total["close_hours_p50"] == 216.0 and total["close_hours_p90"] == pytest.approx(693.6)


def test_a_grid_with_nothing_in_the_period_is_listed_with_empty_rates(session, world):
    _, table = measures.measures(session, "grid", since=SINCE, until=UNTIL)
    quiet = [r for r in measures.to_records(table) if r["key"] not in (world["g1"], world["g2"], "*")]
    assert quiet and all(r["due"] == 0 and r["closure_rate"] is None and r["close_hours_p50"] is None for r in quiet)


def test_community_worker_and_department_measures(session, world):
    _, table = measures.measures(session, "community", since=SINCE, until=UNTIL)
    community = _row(table, world["community"])
    assert (community["received"], community["due"], community["closed"], community["closure_rate"]) == (7, 6, 4, 0.8)
    _, table = measures.measures(session, "worker", since=SINCE, until=UNTIL)
    w1, w2 = _row(table, world["w1"]), _row(table, world["w2"])
    # w1: D = {1,2,3,4}, S = {4}, closed {1,2}, on time {1}; w2: D = {5,8}, both closed on time
    assert (w1["due"], w1["suspended"], w1["closed"], w1["closed_on_time"]) == (4, 1, 2, 1)
    assert w1["closure_rate"] == pytest.approx(2 / 3, abs=1e-4) and w1["on_time_rate"] == pytest.approx(1 / 3, abs=1e-4)
    assert (w2["due"], w2["closed"], w2["on_time_rate"]) == (2, 2, 1.0)
    _, table = measures.measures(session, "subdistrict", since=SINCE, until=UNTIL)
    subdistrict = [r for r in measures.to_records(table) if r["key"] not in ("*",) and r["received"]]
    assert [(r["received"], r["due"], r["closed"]) for r in subdistrict] == [(7, 6, 4)]
    _, table = measures.measures(session, "department", since=SINCE, until=UNTIL)
    dept = _row(table, world["dept"])
    assert dept["bounces"] == 1 and dept["due"] == 0  # the bounce counts for the department that bounced it


def test_branch_measures_follow_the_branch_of_each_case(session, world):
    from gridmap.store.tables import PartyOrg

    b1, b2 = session.scalars(sa.select(PartyOrg.id).where(PartyOrg.kind == "grid_branch").order_by(PartyOrg.id)).all()[
        :2
    ]
    session.execute(
        sa.update(Case).where(Case.number.like("M2030%"), Case.grid_code == world["g1"]).values(branch_id=b1)
    )
    session.execute(
        sa.update(Case).where(Case.number.like("M2030%"), Case.grid_code == world["g2"]).values(branch_id=b2)
    )
    _, table = measures.measures(session, "branch", since=SINCE, until=UNTIL)
    first, second = _row(table, b1), _row(table, b2)
    # the same figures as the grids the branches serve here
    assert (first["received"], first["due"], first["closed"], first["closure_rate"]) == (6, 5, 3, 0.75)
    assert (second["received"], second["due"], second["closure_rate"], second["satisfaction"]) == (1, 1, 1.0, 1.0)


def test_under_keeps_one_area_and_the_period_is_half_open(session, world):
    _, table = measures.measures(session, "grid", since=SINCE, until=UNTIL, under=world["g2"])
    assert [r["key"] for r in measures.to_records(table)] == [world["g2"], "*"]
    # until is exclusive: a period ending at case 8's report (1 March 00:00) does not receive it
    _, table = measures.measures(session, "grid", since=t(2, 1), until=t(3, 1), under=world["g2"])
    assert _row(table, world["g2"])["received"] == 1  # case 9 only


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"unit": "street"}, "by"),
        ({"unit": "grid", "since": t(3, 2), "until": t(3, 1)}, "until"),
        ({"unit": "grid", "since": dt.datetime(2000, 1, 1, tzinfo=UTC), "until": UNTIL}, "since"),
        ({"unit": "worker", "under": "530111"}, "under"),
    ],
)
def test_bad_requests_name_the_field(session, kwargs, field):
    with pytest.raises(InvalidInput) as err:
        kwargs = dict(kwargs)
        measures.measures(session, kwargs.pop("unit"), **kwargs)
    assert err.value.field == field


def test_default_period_is_this_month_in_china_time():
    now = dt.datetime(2026, 11, 23, 3, tzinfo=UTC)  # 11:00 in Beijing
    period = measures.Period.of(None, None, now)
    assert period.since == dt.datetime(2026, 10, 31, 16, tzinfo=UTC) and period.until == now
    at_midnight = dt.datetime(2026, 11, 30, 16, tzinfo=UTC)  # 1 December 00:00 in Beijing: all of November
    assert measures.Period.of(None, None, at_midnight).since == dt.datetime(2026, 10, 31, 16, tzinfo=UTC)


APP_SETTINGS = {"escalation_interval_s": 3600}  # the module's `client` (tests/conftest.py)


def test_exports_carry_the_same_figures_as_json(client):
    params = {"by": "community", "since": "2025-11-20T00:00:00+08:00", "until": "2026-11-20T00:00:00+08:00"}
    body = client.get("/api/v1/measures", params=params).json()
    items = {r["key"]: r for r in body["items"]}
    total = items["*"]
    assert total["received"] > 100 and 0 < total["closure_rate"] <= 1
    assert sum(r["received"] for k, r in items.items() if k != "*") <= total["received"]
    r = client.get("/api/v1/measures", params={**params, "format": "csv"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    assert r.content.startswith(b"\xef\xbb\xbf")  # a BOM, for Excel
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert len(rows) == len(items)
    by_code = {row["编码"]: row for row in rows}
    assert int(by_code["*"]["受理量"]) == total["received"]
    assert float(by_code["*"]["结案率"]) == pytest.approx(total["closure_rate"], abs=1e-4)
    r = client.get("/api/v1/measures", params={**params, "format": "xlsx", "lang": "en"})
    sheet = openpyxl.load_workbook(io.BytesIO(r.content)).active
    header = [c.value for c in sheet[1]]
    assert header[:4] == ["unit", "code", "name", "received"]
    values = {row[1]: dict(zip(header, row)) for row in sheet.iter_rows(min_row=2, values_only=True)}
    assert values["*"]["received"] == total["received"]
    assert values["*"]["closure rate"] == pytest.approx(total["closure_rate"], abs=1e-4)
    assert sheet.cell(row=2, column=header.index("closure rate") + 1).number_format == "0.00%"


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("by=street", "by"),
        ("format=pdf", "format"),
        ("since=yesterday", "since"),
        ("since=2026-02-01T00:00:00Z&until=2026-01-01T00:00:00Z", "until"),
    ],
)
def test_bad_queries_are_problems(client, query, field):
    r = client.get(f"/api/v1/measures?{query}")
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
    assert r.json()["field"] == field


# -- the 12-month series of an area ------------------------------------------------------------------------------

CST = dt.timezone(dt.timedelta(hours=8))
SERIES_UNTIL = dt.datetime(2026, 11, 20, 15, 30, tzinfo=CST)  # the small demo's "today"


def _month_by_month(session, code, months=12, until=SERIES_UNTIL):
    """The reference: `compute` over each China-time month on its own (how the series was made before)."""
    from gridmap.boundaries.areas import get_area

    area = get_area(session, code)
    end = until.astimezone(CST)
    firsts = [end.replace(day=1, hour=0, minute=0, second=0, microsecond=0)]
    for _ in range(months - 1):
        firsts.insert(0, (firsts[0] - dt.timedelta(days=1)).replace(day=1))
    out = []
    for i, first in enumerate(firsts):
        last = firsts[i + 1] if i + 1 < len(firsts) else min(end, (first + dt.timedelta(days=32)).replace(day=1))
        if last <= first:
            continue
        total = measures.compute(
            session, measures.Period.of(first, last), "grid", under=code, under_level=area.level
        ).loc[[measures.TOTAL_KEY]]
        total["unit"], total["name"] = area.level, area.name
        record = measures.to_records(total.reset_index()[[c[0] for c in measures.COLUMNS]])[0]
        out.append({"month": f"{first:%Y-%m}", **{k: v for k, v in record.items() if k not in ("unit", "key", "name")}})
    return out


@pytest.fixture()
def moved(session):
    """Cases on month edges and two cases a boundary change re-located: case R from grid A (micro-grid a1, first
    sub-district) to grid B (micro-grid b1, second sub-district) on 15 July; case T from a1 to b1 on 10 June
    (an event in the older format, grid and micro-grid only) and on from b1 to a2 (another micro-grid of A) on
    10 August."""
    active = session.scalar(sa.select(Generation.id).where(Generation.status == "active"))
    subs = session.scalars(
        sa.select(Area).where(Area.generation_id == active, Area.level == "subdistrict").order_by(Area.code)
    ).all()

    def first_below(parent_code, level, n=0):
        return session.scalars(
            sa.select(Area)
            .where(Area.generation_id == active, Area.level == level, Area.code.startswith(parent_code))
            .order_by(Area.code)
        ).all()[n]

    grid_a, grid_b = first_below(subs[0].code, "grid"), first_below(subs[1].code, "grid")
    a1, a2 = first_below(grid_a.code, "microgrid"), first_below(grid_a.code, "microgrid", 1)
    b1 = first_below(grid_b.code, "microgrid")

    def codes(grid, micro):
        return {
            "grid_code": grid.code,
            "microgrid_code": micro.code,
            "community_code": grid.parent.code,
            "subdistrict_code": grid.parent.parent.code,
            "district_code": "530111",
        }

    def add_case(number, state, reported, due, closed, where, **extra):
        case = Case(
            number=number,
            title=number,
            source="api",
            state=state,
            reported_at=reported,
            due_at=due,
            closed_at=closed,
            version=1,
            **codes(*where),
            **extra,
        )
        session.add(case)
        session.flush()
        return case

    def local(month, day, hour=0):
        return dt.datetime(2026, month, day, hour, tzinfo=CST)

    # on the edges of China-time months: reported at 00:00 on 1 June, due at 00:00 on 1 July (closed on time at
    # that very instant, after a rework), closed at 00:00 on 1 August; a suspended and an extended one
    add_case("S-EDGE-1", "closed", local(6, 1), local(7, 1), local(7, 1), (grid_a, a1), rework_count=1)
    add_case("S-EDGE-2", "closed", local(5, 31, 23), local(7, 31, 23), local(8, 1), (grid_a, a1))
    add_case("S-EDGE-3", "suspended", local(6, 30, 23), local(8, 1), None, (grid_a, a2))
    add_case("S-EDGE-4", "accepted", local(3, 1), local(9, 1), None, (grid_b, b1), extension_count=2)
    r = add_case("S-MOVE-R", "accepted", local(7, 2), local(11, 30), None, (grid_b, b1))
    t_ = add_case("S-MOVE-T", "accepted", local(5, 20), local(12, 10), None, (grid_a, a2))
    events = [
        (r, local(7, 3), "handle", None),  # in A: before the move
        (r, local(7, 15), "rate", {"satisfaction": 4}),  # at the very instant of the move: in B
        (r, local(7, 20), "rate", {"satisfaction": 2}),  # in B
        (r, local(8, 1), "bounce", {"from_assignee_id": None}),  # in B
        (
            r,
            local(7, 15),
            "boundary_change",
            {
                "codes": {
                    "grid_code": {"from": grid_a.code, "to": grid_b.code},
                    "microgrid_code": {"from": a1.code, "to": b1.code},
                    "community_code": {"from": grid_a.parent.code, "to": grid_b.parent.code},
                    "subdistrict_code": {"from": subs[0].code, "to": subs[1].code},
                },
                "from": {"grid": grid_a.code, "microgrid": a1.code},
                "to": {"grid": grid_b.code, "microgrid": b1.code},
            },
        ),
        (t_, local(6, 1), "handle", None),  # in a1
        (t_, local(7, 1), "rate", {"satisfaction": 5}),  # in b1
        (t_, local(9, 1), "handle", None),  # in a2
        (
            t_,
            local(6, 10),
            "boundary_change",
            {"from": {"grid": grid_a.code, "microgrid": a1.code}, "to": {"grid": grid_b.code, "microgrid": b1.code}},
        ),
        (
            t_,
            local(8, 10),
            "boundary_change",
            {
                "codes": {
                    "grid_code": {"from": grid_b.code, "to": grid_a.code},
                    "microgrid_code": {"from": b1.code, "to": a2.code},
                },
                "from": {"grid": grid_b.code, "microgrid": b1.code},
                "to": {"grid": grid_a.code, "microgrid": a2.code},
            },
        ),
    ]
    for case, at, action, detail in events:
        session.add(CaseEvent(case_id=case.id, at=at, actor="test", action=action, detail=detail))
    session.flush()
    return {
        "district": "530111",
        "sub_a": subs[0].code,
        "sub_b": subs[1].code,
        "grid_a": grid_a.code,
        "grid_b": grid_b.code,
        "a1": a1.code,
        "a2": a2.code,
        "b1": b1.code,
    }


@pytest.mark.parametrize("few_outside", [measures.FEW_OUTSIDE, 0])  # 0: every area's steps found from its cases
def test_the_series_equals_compute_month_by_month(session, moved, monkeypatch, few_outside):
    monkeypatch.setattr(measures, "FEW_OUTSIDE", few_outside)
    for name, code in moved.items():
        series = measures.area_series(session, code, until=SERIES_UNTIL)
        assert [m["month"] for m in series] == [f"2025-{m:02d}" for m in range(12, 13)] + [
            f"2026-{m:02d}" for m in range(1, 12)
        ]
        assert series == _month_by_month(session, code), name
    district = measures.area_series(session, "530111", until=SERIES_UNTIL)
    assert sum(m["received"] for m in district) > 100 and any(m["close_hours_p90"] for m in district)


@pytest.mark.parametrize("few_outside", [measures.FEW_OUTSIDE, 0])
def test_the_series_with_its_hours_read_beside_is_the_same_series(engine, monkeypatch, few_outside):
    """`beside` (a read-only caller's session factory, as the series route passes): a district's hours to close are
    read on a session of it while the counts are read on the caller's, and every series is the one read on one
    session, for a district, a sub-district, a grid and a micro-grid (a small area's on the caller's alone)."""
    monkeypatch.setattr(measures, "FEW_OUTSIDE", few_outside)
    factory = storage.make_sessionmaker(engine)
    opened = []

    def beside():
        opened.append(1)
        return factory()

    with factory() as session:
        grid = session.scalar(sa.select(Case.grid_code).where(Case.district_code == "530111", Case.state == "closed"))
        micro = session.scalar(sa.select(Case.microgrid_code).where(Case.grid_code == grid))
        for code in ("530111", grid[:9], grid, micro):
            alone = measures.area_series(session, code, until=SERIES_UNTIL)
            assert measures.area_series(session, code, until=SERIES_UNTIL, beside=beside) == alone, code
            assert any(m["close_hours_p50"] is not None for m in alone), code
            if code == "530111":
                assert len(opened) == 1  # the district's hours beside
        if few_outside == 0:
            assert len(opened) == 1  # the smaller areas' on the caller's session


def test_a_district_series_after_the_warm_up_compiles_nothing_and_answers_the_same(db_url):
    """`warm_series` (a server's start): the first district's series worked out once, so that a worker's first
    series finds its statements compiled. On a new engine (nothing compiled), the last district's series (the
    test demo has one district; the statements are the same for any) then compiles no statement, on either
    session, and is the series a second call gives."""
    from sqlalchemy.engine.default import CACHE_MISS

    fresh = storage.make_engine(db_url)
    try:
        factory = storage.make_sessionmaker(fresh)
        with factory() as session:
            generation = session.scalar(sa.select(Generation.id).where(Generation.status == "active"))
            districts = session.scalars(
                sa.select(Area.code)
                .where(Area.generation_id == generation, Area.level == "district")
                .order_by(Area.code)
            ).all()
        assert measures.warm_series(factory) == districts[0]
        misses = []

        def seen(conn, cursor, statement, parameters, context, executemany):
            if context is not None and context.cache_hit is CACHE_MISS:
                misses.append(statement)

        sa.event.listen(fresh, "before_cursor_execute", seen)
        try:
            with factory() as session:
                first = measures.area_series(session, districts[-1], beside=factory)
        finally:
            sa.event.remove(fresh, "before_cursor_execute", seen)
        assert misses == []
        with factory() as session:
            assert first == measures.area_series(session, districts[-1])
            assert any(m["close_hours_p50"] is not None for m in first)
    finally:
        fresh.dispose()


def test_a_relocated_case_counts_in_the_series_where_it_was(session, moved):
    july, august = 7, 8  # December 2025 is the first month of the series

    def month(code, i):
        return measures.area_series(session, code, until=SERIES_UNTIL)[i]

    a, b, b_august = month(moved["grid_a"], july), month(moved["grid_b"], july), month(moved["grid_b"], august)
    # as if R had never moved: still in grid A, with no boundary change
    r = session.scalar(sa.select(Case).where(Case.number == "S-MOVE-R"))
    r.grid_code, r.microgrid_code = moved["grid_a"], moved["a1"]
    session.execute(sa.delete(CaseEvent).where(CaseEvent.case_id == r.id, CaseEvent.action == "boundary_change"))
    session.flush()
    never_a, never_b = month(moved["grid_a"], july), month(moved["grid_b"], july)
    # reported on 2 July and handled on 3 July in A: counted there either way
    assert (a["received"], a["handled"]) == (never_a["received"], never_a["handled"])
    assert (b["received"], b["handled"]) == (never_b["received"], never_b["handled"])
    # rated on 15 July (the instant of the move) and on 20 July, bounced on 1 August: in B, where it was by then
    assert (a["rated"], b["rated"]) == (never_a["rated"] - 2, never_b["rated"] + 2)
    assert b["satisfied"] == never_b["satisfied"] + 1  # the 4 satisfies, the 2 does not
    assert b_august["bounces"] == month(moved["grid_b"], august)["bounces"] + 1


def test_the_series_of_any_length_and_a_month_that_has_not_begun(session, moved):
    first_of_november = dt.datetime(2026, 11, 1, tzinfo=CST)
    for code in (moved["sub_a"], moved["a2"]):
        series = measures.area_series(session, code, until=first_of_november)
        assert [m["month"] for m in series][-1] == "2026-10" and len(series) == 11  # November is empty: left out
        assert series == _month_by_month(session, code, until=first_of_november)
        long = measures.area_series(session, code, months=36, until=SERIES_UNTIL)
        assert len(long) == 36 and long == _month_by_month(session, code, months=36)
    with pytest.raises(InvalidInput) as err:
        measures.area_series(session, moved["a2"], months=37)
    assert err.value.field == "months"


def test_the_series_takes_a_fixed_number_of_queries(session, moved):
    statements = []

    def count(conn, cursor, statement, *args):
        statements.append(statement)

    session.execute(sa.delete(CaseMonthHours))  # every month's hours from the cases (rolled back with the test)
    bind = session.connection()
    sa.event.listen(bind, "before_cursor_execute", count)
    try:
        measures.area_series(session, "530111", months=3, until=SERIES_UNTIL)
        three = len(statements)
        statements.clear()
        measures.area_series(session, "530111", months=36, until=SERIES_UNTIL)
        # at most 12 (the counts kept by month and the last month's tail after `until`: 0021; the hours kept: 0026),
        # and on PostgreSQL 2 more: the partitions and their probe for the report-time bounds (0010)
        assert len(statements) == three <= 12 + 2 * (session.get_bind().dialect.name == "postgresql"), statements
    finally:
        sa.event.remove(bind, "before_cursor_execute", count)


def _series_as_on_a_province(session, monkeypatch, code):
    """SQLite: the 12-month series of `code` with statistics (as the province's load makes them; rolled back with
    the test) and FEW_OUTSIDE 0 (an area of a province, not nearly every case of the file), with the statements it
    ran (statement, parameters) and the connection they ran on."""
    session.execute(sa.text("ANALYZE"))
    session.execute(sa.delete(CaseMonthHours))  # every month's hours from the cases (0026's kept months: none)
    monkeypatch.setattr(measures, "FEW_OUTSIDE", 0)
    statements = []

    def record(conn, cursor, statement, parameters, *args):
        statements.append((statement, parameters))

    connection = session.connection()
    sa.event.listen(connection, "before_cursor_execute", record)
    try:
        series = measures.area_series(session, code, months=12, until=SERIES_UNTIL)
    finally:
        sa.event.remove(connection, "before_cursor_execute", record)
    return series, statements, connection


def test_an_areas_hours_on_sqlite_read_its_grid_range_from_the_index_alone(session, monkeypatch):
    """SQLite (migration 0023): the year's closures of an area that is not nearly every case (a sub-district here;
    a district of a province) are one range of `ix_case_file_grid_closed`, read from the index alone, not the
    year's closures of every area through the index led by the closure time; the series is unchanged (the tests
    above compare it with `compute`)."""
    bind = session.get_bind()
    if bind.dialect.name != "sqlite":
        assert "ix_case_file_grid_closed" not in {i["name"] for i in sa.inspect(bind).get_indexes("case_file")}
        return
    # (FEW_OUTSIDE 0: the small demo's other sub-districts are a few hundred cases)
    series, statements, connection = _series_as_on_a_province(session, monkeypatch, "530111001")
    assert any(month["close_hours_p50"] is not None for month in series)
    (statement, parameters), *others = [s for s in statements if "julianday" in s[0]]
    assert not others and "LIKE" not in statement, statement
    plan = [r[-1] for r in connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)]
    assert plan == ["SEARCH case_file USING COVERING INDEX ix_case_file_grid_closed (grid_code>? AND grid_code<?)"], (
        plan
    )


def test_a_districts_hours_name_each_month_as_the_index_of_months_of_closure_does(session):
    """PostgreSQL (migration 0019): the month a series' hours arm names (`measures._month_is`) is the expression of
    `ix_case_file_closed_month`, so the planner can read a district's month as one range of it; with sequential
    scans off, a month of one sub-district's closures is an index condition on that expression. SQLite has no
    such index."""
    bind = session.get_bind()
    if bind.dialect.name != "postgresql":
        assert "ix_case_file_closed_month" not in {i["name"] for i in sa.inspect(bind).get_indexes("case_file")}
        return
    june = dt.datetime(2026, 6, 1, tzinfo=CST)
    query = sa.select(sa.func.count()).where(
        measures._month_is("closed_at", june),
        Case.grid_code >= "530111001",
        Case.grid_code < "530111002",
    )
    sql = str(query.compile(bind, compile_kwargs={"literal_binds": True}))
    session.execute(sa.text("SET LOCAL enable_seqscan = off"))
    plan = "\n".join(session.execute(sa.text(f"EXPLAIN {sql}")).scalars())
    assert "date_trunc('month'" in plan and "Index Cond" in plan, plan
    assert "_date_trunc_grid_code_" in plan, plan  # the partitions' indexes of ix_case_file_closed_month
    counted = session.scalar(query)
    assert counted > 0
    assert counted == session.scalar(
        sa.select(sa.func.count()).where(
            Case.closed_at >= june.astimezone(dt.UTC),
            Case.closed_at < dt.datetime(2026, 7, 1, tzinfo=CST).astimezone(dt.UTC),
            Case.grid_code >= "530111001",
            Case.grid_code < "530111002",
        )
    )


def test_hours_to_close_are_worked_out_in_double_precision_as_python_has_them(session):
    """The hours from report to closure (`measures._hours`), which every percentile of `compute` and of a series
    sorts: on PostgreSQL `date_part`'s double precision, not `EXTRACT`'s numeric (turned into a double through its
    text form for each case: about a quarter of a district's series on the province), and equal to Python's hours
    of the same two times; on SQLite the julianday difference, as before."""
    reported = dt.datetime(2026, 3, 2, 8, 15, 7, tzinfo=CST)
    spans = [
        dt.timedelta(hours=216),
        dt.timedelta(days=3, hours=5, minutes=7, seconds=11),
        dt.timedelta(days=40, seconds=1),
        dt.timedelta(minutes=1),
    ]
    bind = session.get_bind()
    for span in spans:
        start = sa.literal(reported, sa.DateTime(timezone=True))
        end = sa.literal(reported + span, sa.DateTime(timezone=True))
        hours = measures._hours(session, start, end)
        got = session.scalar(sa.select(hours))
        if bind.dialect.name == "postgresql":
            assert session.scalar(sa.select(sa.func.pg_typeof(hours))) == "double precision"
            assert type(got) is float and got == span.total_seconds() / 3600, (span, got)
        else:
            assert got == pytest.approx(span.total_seconds() / 3600, abs=1e-6), (span, got)
    sql = str(measures._hours(session, Case.reported_at, Case.closed_at).compile(bind)).lower()
    assert "extract" not in sql and ("date_part" in sql) == (bind.dialect.name == "postgresql"), sql


DISTRICT_HOURS_INDEX = "ix_case_file_district_close_hours"


def _sqlite_index_names(conn) -> set[str]:
    """Every index of the case table as SQLite lists it (SQLAlchemy's reflection skips those on expressions)."""
    return set(conn.scalars(sa.text("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'case_file'")))


def test_a_districts_hours_on_sqlite_are_read_around_each_percentile_from_the_index(session, monkeypatch):
    """SQLite (migration 0025): a district's hours to close come from `ix_case_file_district_close_hours`, each
    month's closures one range in order of their hours: two statements (the months' counts, then the values around
    each percentile), every arm of them read from the index alone, and the series still equals `compute` month by
    month. PostgreSQL has no such index (it works out the percentiles itself)."""
    bind = session.get_bind()
    if bind.dialect.name != "sqlite":
        names = session.scalars(sa.text("SELECT indexname FROM pg_indexes WHERE tablename = 'case_file'")).all()
        assert DISTRICT_HOURS_INDEX not in names
        return
    series, statements, connection = _series_as_on_a_province(session, monkeypatch, "530111")
    assert series == _month_by_month(session, "530111")
    assert sum(1 for month in series if month["close_hours_p90"] is not None) >= 6
    hours = [s for s in statements if measures.CLOSE_MONTH_SQLITE in s[0]]
    assert len(hours) == 2 and measures.CLOSE_HOURS_SQLITE in hours[1][0], [s[0][:200] for s in hours]
    for statement, parameters in hours:
        plan = [r[-1] for r in connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)]
        reads = [step for step in plan if "case_file" in step]
        assert len(reads) >= 6 and set(reads) == {
            f"SEARCH case_file USING COVERING INDEX {DISTRICT_HOURS_INDEX} (district_code=? AND <expr>=?)"
        }, plan


@pytest.mark.parametrize("n", [*range(1, 13), 47, 100, 1001, 47914])
def test_quantiles_from_the_values_around_them_are_pandas_over_all_of_them(n):
    """`_quantiles_around` gives, from the few values read around each percentile's position, what pandas gives
    over every value, to the bit (ties, a single value and a month of the province's size included)."""
    rng = np.random.default_rng(n)
    for values in (rng.exponential(30.0, n), np.round(rng.exponential(30.0, n), 1), np.full(n, 2.5)):
        ordered = np.sort(values)
        around = {first: ordered[first : first + 4].tolist() for first in measures._around(n)}
        got = measures._quantiles_around(n, around)
        expected = pd.Series(ordered).quantile([0.5, 0.9]).to_numpy()
        assert got.tobytes() == expected.tobytes(), (n, got, expected)


def test_an_existing_spatialite_file_gets_the_district_hours_index_by_the_upgrade(tmp_path):
    """A SpatiaLite file at 0024 with the small demo and statistics: the upgrade makes 0025's index (of the closed
    cases only) and describes it to the planner; a downgrade removes it; the upgrade makes it again."""
    from gridmap.demo.load import load_demo
    from gridmap.store import engine as storage
    from tests.conftest import TODAY, empty_database
    from tests.integration.test_foreign_key_indexes import _alembic

    url, _ = empty_database("spatialite", tmp_path)
    engine = storage.make_engine(url)
    try:
        storage.migrate(engine, "0024")
        with storage.session_scope(storage.make_sessionmaker(engine)) as s:
            load_demo(s, "530111", small=True, seed=11, today=TODAY)
        with engine.begin() as conn:
            assert DISTRICT_HOURS_INDEX not in _sqlite_index_names(conn)
            conn.exec_driver_sql("ANALYZE")
        for _ in range(2):
            storage.migrate(engine)
            with engine.connect() as conn:
                assert DISTRICT_HOURS_INDEX in _sqlite_index_names(conn)
                closed = conn.scalar(sa.select(sa.func.count()).where(Case.state == "closed"))
                stat = conn.scalar(sa.text("SELECT stat FROM sqlite_stat1 WHERE idx = :n"), {"n": DISTRICT_HOURS_INDEX})
                assert closed > 100 and stat.split()[0] == str(closed)
            _alembic(engine, "downgrade", "0024")
            with engine.connect() as conn:
                assert DISTRICT_HOURS_INDEX not in _sqlite_index_names(conn)
    finally:
        engine.dispose()
