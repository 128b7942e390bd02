"""Bulk writes (issue 15 §2), on both databases: a hotline import written in bulk (`gridmap.cases.bulk.create_cases`)
stores
exactly the cases the row-by-row import (`cases.create_case` per row) stores — routing, flags, candidates, history,
notifications, audit — and reports every row the same; the batch locator answers as `locate_for_case`; a row intake
refuses is answered with its error and nothing of it is written, a batch that fails leaves nothing behind; progress
is printed when asked for and only then."""

from __future__ import annotations

import csv
import datetime as dt
import io
from pathlib import Path

import numpy as np
import pytest
import shapely
import sqlalchemy as sa

from gridmap.access.accounts import AccountSpec, add_account
from gridmap.boundaries.areas import load_index
from gridmap.calendar import WorkCalendar
from gridmap.cases.bulk import BatchCalendar, Created, Progress, create_cases, locate_cases
from gridmap.cases.hotline import import_export
from gridmap.cases.intake import NewCase, case_number, locate_for_case
from gridmap.errors import InvalidCoordinate, InvalidInput
from gridmap.geo import crs as gcrs
from gridmap.geo.index import metres_per_degree
from gridmap.locating.locate import LocateOptions
from gridmap.store import engine as storage
from gridmap.store.tables import AuditEntry, Case, CaseCategory, CaseEvent, Notification, StaffArea

LABELLED = Path(__file__).parents[1] / "data" / "addresses.csv"
HEAD = ["工单编号", "来电时间", "来电人", "联系电话", "事发地址", "诉求内容", "问题分类", "经度", "纬度"]
NOW = dt.datetime(2026, 11, 20, 3, 0, tzinfo=dt.UTC)
CASE_COLUMNS = [c.key for c in Case.__table__.columns if c.key not in ("id", "number", "external_ref", "geom")]


@pytest.fixture(scope="module")
def db(fresh_db_url):
    """A small demo of its own, with an account for one grid's worker (so that intake notifies someone)."""
    engine = storage.make_engine(fresh_db_url)
    factory = storage.make_sessionmaker(engine)
    with storage.session_scope(factory) as session:
        index = load_index(session)
        grid = index.chain_of(index.leaves[0].code)[3].code
        worker = session.scalar(
            sa.select(StaffArea.staff_id).where(StaffArea.area_code == grid, StaffArea.role == "fulltime_worker")
        )
        add_account(session, AccountSpec("bulk-worker", "worker", (grid,), staff_id=worker), "bulk-worker-pass-1")
    yield factory, index
    engine.dispose()


def _addresses(n):
    with LABELLED.open(encoding="utf-8") as f:
        rows = [
            r
            for r in csv.DictReader(f)
            if r["expected_kind"] in ("compound", "building")
            and r["variant"] in ("full_address", "building_unit_room", "road_building_haolou")
        ]
    return [r["text"] for r in rows[:n]]


def _shared_vertex(index):
    """A vertex of the first leaf that another leaf shares (exactly on a line between them)."""
    for k in range(len(index.leaves)):
        for x, y in shapely.get_coordinates(index.leaf_geoms[k].boundary):
            if len(index.covering(float(x), float(y))) == 2:
                return float(x), float(y), k
    raise AssertionError("no shared vertex")


def _points(index):
    """WGS84 points of every kind intake meets: inside leaves, on a shared vertex, a few metres from a line, just
    outside the district (the nearest grid), far outside every grid, far outside the service area."""
    pts = [(p.x, p.y) for p in (index.leaf_geoms[k].representative_point() for k in range(0, len(index.leaves), 2))]
    x, y, k = _shared_vertex(index)
    inner = index.leaf_geoms[k].representative_point()
    kx, ky = metres_per_degree(y)
    d = np.hypot((inner.x - x) * kx, (inner.y - y) * ky)
    pts += [(x, y)] + [(x + (inner.x - x) * m / d, y + (inner.y - y) * m / d) for m in (3.0, 8.0, 30.0)]
    xy = shapely.get_coordinates(shapely.boundary(index.leaf_geoms))
    west = xy[np.argmin(xy[:, 0])]  # the westernmost vertex of the district: west of it lies no grid
    step = 1 / metres_per_degree(float(west[1]))[0]
    pts += [(float(west[0]) - m * step, float(west[1])) for m in (40.0, 90.0, 400.0)]
    return pts


def _export(prefix, index):
    rows = []
    cats = ["E0101", "C0101", "暴露垃圾", "外星人", ""]
    for i, text in enumerate(_addresses(6)):
        rows.append(
            [
                f"{prefix}-A{i}",
                f"2026-11-1{i % 9} 09:{i:02d}:00",
                "张三丰",
                "13812341234",
                text,
                "楼道堆放杂物",
                cats[i % len(cats)],
                "",
                "",
            ]
        )
    for i, (x, y) in enumerate(_points(index)):
        rows.append(
            [
                f"{prefix}-P{i:02d}",
                "2026-11-18 14:05",
                "李四",
                "0871-63123456",
                "",
                f"井盖缺失{i}",
                cats[i % len(cats)],
                repr(x),
                repr(y),
            ]
        )
    rows.append([f"{prefix}-X1", "昨天下午", "", "", "东风街363号", "时间无法识别", "E0101", "", ""])
    rows.append([f"{prefix}-X2", "2026-11-18 10:00:00", "赵六", "12ab", "东风街363号", "电话错误", "E0101", "", ""])
    rows.append([f"{prefix}-A0", "2026-11-10 09:00:00", "", "", "重复行", "", "", "", ""])
    buffer = io.StringIO()
    csv.writer(buffer).writerows([HEAD, *rows])
    return buffer.getvalue().encode("utf-8")


def _stored(factory, prefix):
    """The cases of one import by ticket (without the prefix), each with its history and notifications, ids and
    numbers left out (checked apart)."""
    out = {}
    with factory() as s:
        cases = s.scalars(sa.select(Case).where(Case.external_ref.startswith(f"{prefix}-"))).all()
        for case in cases:
            ticket = case.external_ref.split("-", 1)[1]
            assert case.number == case_number("hotline", NOW, case.id)
            events = [
                (
                    e.at,
                    e.actor,
                    e.action,
                    e.from_state,
                    e.to_state,
                    {**(e.detail or {}), **({"external_ref": ticket} if "external_ref" in (e.detail or {}) else {})},
                )
                for e in s.scalars(sa.select(CaseEvent).where(CaseEvent.case_id == case.id).order_by(CaseEvent.id))
            ]
            notes = [
                (n.account_id, n.kind, n.text.replace(case.number, "#"), n.actor, n.at)
                for n in s.scalars(
                    sa.select(Notification).where(Notification.case_id == case.id).order_by(Notification.id)
                )
            ]
            out[ticket] = ({k: getattr(case, k) for k in CASE_COLUMNS}, events, notes, case.id)
    return out


def test_a_bulk_import_stores_what_the_row_by_row_import_stores(db):
    factory, index = db
    rows, bulk = ("R", "B")
    one = import_export(factory, index, _export(rows, index), "csv", crs="wgs84", now=NOW, bulk=False)
    many = import_export(factory, index, _export(bulk, index), "csv", crs="wgs84", now=NOW)
    assert one["created"] >= 15 and one["unplaced"] >= 1 and one["invalid"] == 2 and one["duplicate"] == 1

    def outcome(result, prefix):
        return [{**e, "ticket": e["ticket"].split("-", 1)[1], "case_number": None} for e in result["report"]]

    assert outcome(many, bulk) == outcome(one, rows)
    assert {k: many[k] for k in many if k != "report"} == {k: one[k] for k in one if k != "report"}
    a, b = _stored(factory, rows), _stored(factory, bulk)
    assert set(a) == set(b) == {e["ticket"].split("-", 1)[1] for e in one["report"] if e["status"] == "created"}
    for ticket in a:
        assert b[ticket][:3] == a[ticket][:3], ticket
    # the kinds of answer the sample is meant to cover, each met by both paths alike
    flags = {f for columns, *_ in a.values() for f in columns["locate_flags"]}
    assert {"on_boundary", "near_boundary", "placed_by_address"} <= flags  # (the nearest grid: never by import)
    states = {columns["state"] for columns, *_ in a.values()}
    assert states == {"reported", "dispatched"}
    assert any(columns["department_id"] for columns, *_ in a.values())
    assert any(notes for _, _, notes, _ in a.values()) and any(notes for _, _, notes, _ in b.values())
    for report, stored in ((one, a), (many, b)):  # each created row names its stored case
        numbers = {e["ticket"].split("-", 1)[1]: e["case_number"] for e in report["report"] if e["status"] == "created"}
        with factory() as s:
            assert numbers == {t: s.get(Case, stored[t][3]).number for t in stored}
    with factory() as s:  # the bulk writes are audited: the inserted case ids are listed
        audited = {
            i
            for e in s.scalars(
                sa.select(AuditEntry).where(AuditEntry.action == "insert", AuditEntry.target == "case_file")
            )
            for i in (e.detail or {}).get("ids", [])
        }
    assert {case_id for *_, case_id in b.values()} <= audited
    again = import_export(factory, index, _export(bulk, index), "csv", crs="wgs84", now=NOW)
    assert again["created"] == 0 and again["duplicate"] == one["created"] + 1  # idempotent
    assert len(_stored(factory, bulk)) == len(b)


def test_the_batch_locator_answers_as_intake_does(db):
    _, index = db
    rng = np.random.default_rng(5)
    minx, miny, maxx, maxy = index.bounds
    pts = _points(index) + list(
        zip(rng.uniform(minx - 0.002, maxx + 0.002, 400), rng.uniform(miny - 0.002, maxy + 0.002, 400))
    )
    x, y, _ = _shared_vertex(index)
    pts += [(x + dx, y + dy) for dx in (-1e-7, 0.0, 1e-7) for dy in (-1e-7, 0.0, 1e-7)]
    pts += pts[-9:] + pts[:50]  # points given twice (many calls from one compound): answered alike, each its own
    seen = set()
    for system, options in (
        (gcrs.parse_crs("wgs84"), LocateOptions()),
        (gcrs.parse_crs("gcj02"), LocateOptions()),
        (gcrs.parse_crs("wgs84"), LocateOptions(near_m=0.0, nearest_m=0.0)),
    ):
        got = locate_cases(index, [p[0] for p in pts], [p[1] for p in pts], system, options)
        seen |= {f for _, flags, _ in got for f in flags}
        for (lon, lat), (location, flags, candidates) in zip(pts, got):
            want, want_flags, want_candidates = locate_for_case(index, lon, lat, system, options)
            assert (
                location.chain,
                location.candidates,
                location.flags,
                location.near,
                location.method,
                location.tie_rule,
                location.distance_m,
            ) == (want.chain, want.candidates, want.flags, want.near, want.method, want.tie_rule, want.distance_m)
            assert (flags, candidates) == (want_flags, want_candidates)
        answers = [(id(loc), id(loc.chain), id(loc.near), id(flags), id(cands)) for loc, flags, cands in got]
        assert len({i for answer in answers for i in answer}) == 5 * len(got)  # no list shared between two answers
    assert {"on_boundary", "near_boundary", "assigned_to_nearest", "outside_all_grids"} <= seen


def test_a_row_intake_refuses_is_answered_with_its_error_and_a_failed_batch_leaves_nothing(db):
    factory, index = db
    p = index.leaf_geoms[3].representative_point()
    with factory() as s:
        try:
            retired = s.scalars(sa.select(CaseCategory).order_by(CaseCategory.code.desc()).limit(1)).one()
            retired.active = False  # (rolled back below)
            s.flush()
            news = [
                NewCase(title="路灯不亮", lon=p.x, lat=p.y, category="C0101", source="hotline", external_ref="RF-1"),
                NewCase(title="远处", lon=p.x + 3.0, lat=p.y, source="hotline", external_ref="RF-2"),
                NewCase(
                    title="停用类别", lon=p.x, lat=p.y, category=retired.code, source="hotline", external_ref="RF-3"
                ),
                NewCase(title="x" * 201, lon=p.x, lat=p.y, source="hotline", external_ref="RF-4"),
                NewCase(title="渠道", lon=p.x, lat=p.y, source="fax", external_ref="RF-5"),
                NewCase(title="无类别", lon=p.x, lat=p.y, source="hotline", external_ref="RF-6"),
            ]
            made = create_cases(s, index, news, actor="test", now=NOW)
            assert isinstance(made[0], Created) and made[0].state == "dispatched"
            assert isinstance(made[1], InvalidCoordinate) and made[1].field == "lon"
            assert isinstance(made[2], InvalidInput) and made[2].field == "category" and "retired" in made[2].message
            assert made[3].field == "title" and made[4].field == "source"
            assert isinstance(made[5], Created) and made[5].state == "reported"
            stored = s.scalars(sa.select(Case.external_ref).where(Case.external_ref.startswith("RF-"))).all()
            assert sorted(stored) == ["RF-1", "RF-6"]
            assert (
                s.scalar(
                    sa.select(sa.func.count())
                    .select_from(CaseEvent)
                    .where(CaseEvent.case_id.in_([made[0].id, made[5].id]))
                )
                == 4 + 2
            )
        finally:
            s.rollback()
    with factory() as s, s.begin():
        create_cases(
            s, index, [NewCase(title="已有", lon=p.x, lat=p.y, source="hotline", external_ref="RF-8")], now=NOW
        )
    # a batch holding a ticket stored already fails as a whole: none of its cases is left
    with pytest.raises(sa.exc.IntegrityError), factory() as s, s.begin():
        create_cases(
            s,
            index,
            [
                NewCase(title="新", lon=p.x, lat=p.y, source="hotline", external_ref="RF-7"),
                NewCase(title="重", lon=p.x, lat=p.y, source="hotline", external_ref="RF-8"),
            ],
            now=NOW,
        )
    with factory() as s:
        refs = s.scalars(sa.select(Case.external_ref).where(Case.external_ref.startswith("RF-"))).all()
        assert refs == ["RF-8"]
        assert s.scalar(sa.select(sa.func.count()).select_from(CaseCategory).where(CaseCategory.active.is_(False))) == 0


def test_the_batch_calendar_gives_the_calendar_s_deadlines():
    plain = WorkCalendar.seeded()
    batch = BatchCalendar.of(plain)
    rng = np.random.default_rng(3)
    start = dt.datetime(2025, 12, 20, tzinfo=dt.UTC)
    for _ in range(300):
        at = start + dt.timedelta(minutes=float(rng.uniform(0, 60 * 24 * 400)))
        amount, unit = float(rng.uniform(0, 20)), str(rng.choice(["work_hours", "work_days", "calendar_days"]))
        assert batch.add(at, amount, unit) == plain.add(at, amount, unit)
    assert batch.hours_per_day == plain.hours_per_day


def test_the_demo_load_prints_its_stages_when_asked_for(tmp_path, capsys):
    from gridmap.demo.load import load_demo
    from tests.conftest import TODAY

    engine = storage.make_engine(f"sqlite:///{tmp_path / 'demo.sqlite'}")
    storage.migrate(engine)
    stream = io.StringIO()
    with storage.session_scope(storage.make_sessionmaker(engine)) as session:
        summary = load_demo(session, "530111", small=True, seed=11, today=TODAY, progress=Progress(stream=stream))
    engine.dispose()
    lines = stream.getvalue().splitlines()
    for stage, count in (
        ("wrote areas", sum(summary.areas.values())),
        ("wrote places", sum(summary.places.values())),
        ("wrote cases", summary.cases),
    ):
        assert any(line.endswith(f"530111: {stage} {count:,}") for line in lines), (stage, lines)
    assert capsys.readouterr().err == ""


def test_progress_is_printed_when_asked_for_and_only_then(db, capsys):
    factory, index = db
    data = _export("PG", index)
    quiet = import_export(factory, index, data, "csv", crs="wgs84", now=NOW)
    assert capsys.readouterr().err == ""
    stream = io.StringIO()
    again = import_export(factory, index, data, "csv", crs="wgs84", now=NOW, progress=Progress(stream=stream))
    text = stream.getvalue()
    assert f"read rows {quiet['rows']:,}" in text and "placed rows" in text
    assert again["created"] == 0 and quiet["created"] > 0


def _case_rows(prefix, ids, p):
    """Case rows as the bulk writers are given them, with the texts COPY's text format escapes and JSON both ways."""
    at = dt.datetime(2026, 11, 18, 2, 3, 4, 567891, tzinfo=dt.UTC)
    texts = ["tab\there", "line\nbreak\r\n", "back\\slash \\N", "引号\"'", "plain"]
    return [
        {
            "id": case_id,
            "number": f"{prefix}{case_id}",
            "title": texts[i % 5],
            "description": None if i % 3 else texts[i % 5],
            "source": "hotline",
            "state": "reported",
            "raw_x": p.x + i * 1e-6,
            "raw_y": p.y,
            "raw_crs": "wgs84",
            "lon": p.x + i * 1e-6,
            "lat": p.y - i * 1e-7,
            "geom": f"SRID=4326;POINT({p.x + i * 1e-6!r} {p.y - i * 1e-7!r})",
            "reported_at": at + dt.timedelta(seconds=i),
            "locate_flags": [] if i % 2 else ["on_boundary", texts[i % 5]],
            "locate_candidates": None,
            "pending": None if i % 4 else {"reason": texts[i % 5], "amount": 1.5},
            "external_ref": f"{prefix}{i}",
            "version": 1,
            "generation_id": None,
        }
        for i, case_id in enumerate(ids)
    ]


def _as_stored(session, ids):
    """The stored columns of some cases as the database holds them (JSON as its text, the point as WKT)."""
    postgis = session.get_bind().dialect.name == "postgresql"
    geom = sa.func.ST_AsText(Case.geom) if postgis else sa.func.AsText(Case.geom)
    json_text = [sa.cast(c, sa.Text) for c in (Case.locate_flags, Case.locate_candidates, Case.pending)]
    rows = session.execute(
        sa.select(
            Case.id,
            Case.title,
            Case.description,
            Case.raw_x,
            Case.lon,
            Case.lat,
            Case.reported_at,
            Case.version,
            Case.escalation_level,
            geom,
            *json_text,
        )
        .where(Case.id.in_(ids))
        .order_by(Case.id)
    ).all()
    return [tuple(r[1:]) for r in rows]


def test_insert_rows_stores_what_an_insert_stores_and_keeps_the_spatial_index(db):
    """The bulk paths (COPY on PostGIS; SpatiaLite BLOBs with the geometry triggers' work done once) store each
    value as SQLAlchemy's INSERT does, the new points are in the spatial index, the triggers are in place after,
    and a statement that fails leaves the triggers in place and, rolled back, nothing."""
    from gridmap.cases.bulk import TRIGGERS_MIN_ROWS, insert_rows, reserve_ids

    factory, index = db
    p = index.leaf_geoms[5].representative_point()
    n = TRIGGERS_MIN_ROWS + 37
    with factory() as s:
        conn = s.connection()
        sqlite = conn.dialect.name == "sqlite"
        triggers = "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'case_file' ORDER BY name"
        before = conn.exec_driver_sql(triggers).all() if sqlite else None
        fast = reserve_ids(conn, Case.__table__, n)
        insert_rows(conn, Case.__table__, _case_rows("IR-", fast, p))
        plain = reserve_ids(conn, Case.__table__, n)
        conn.execute(sa.insert(Case.__table__), _case_rows("IO-", plain, p))
        got, want = _as_stored(s, fast), _as_stored(s, plain)
        assert len(got) == n and got == want
        box = sa.func.ST_MakeEnvelope(p.x - 1e-3, p.y - 1e-3, p.x + 1e-3, p.y + 1e-3, 4326)
        if sqlite:  # the spatial index holds every new point, as the triggers put them there
            entries = {
                r[0]
                for r in conn.exec_driver_sql(
                    f"SELECT pkid FROM idx_case_file_geom WHERE pkid IN ({', '.join(map(str, fast + plain))})"
                )
            }
            assert entries == set(fast + plain)
            assert conn.exec_driver_sql(triggers).all() == before
            found = s.scalars(
                sa.select(Case.id).where(
                    Case.id.in_(fast),
                    sa.func.ST_Intersects(
                        Case.geom, sa.func.BuildMbr(p.x - 1e-3, p.y - 1e-3, p.x + 1e-3, p.y + 1e-3, 4326)
                    ),
                )
            ).all()
        else:
            found = s.scalars(sa.select(Case.id).where(Case.id.in_(fast), Case.geom.intersects(box))).all()
        assert sorted(found) == fast
        s.rollback()
    with factory() as s:
        conn = s.connection()
        ids = reserve_ids(conn, Case.__table__, n)
        rows = _case_rows("IF-", ids, p)
        rows[-1]["number"] = rows[0]["number"]  # the last row breaks the unique number: the statement fails
        with pytest.raises(sa.exc.IntegrityError):
            insert_rows(conn, Case.__table__, rows)
        if conn.dialect.name == "sqlite":
            assert conn.exec_driver_sql(triggers).all() == before
        s.rollback()
    with factory() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(Case).where(Case.number.startswith("IF-"))) == 0
        if s.get_bind().dialect.name == "sqlite":
            assert s.connection().exec_driver_sql(triggers).all() == before


def test_the_demo_draws_as_rng_choice_draws():
    """The demo's own draws (a channel by weight, a rating, a name) take the same numbers from the generator as
    `rng.choice` did, so a seed loads the same demo."""
    from bisect import bisect_right

    from gridmap.demo import cases as demo_cases
    from gridmap.demo import names

    for seed in range(20):
        a, b = np.random.default_rng(seed), np.random.default_rng(seed)
        for _ in range(200):
            assert (
                str(a.choice(demo_cases._SOURCES_A, p=demo_cases._SOURCE_WEIGHTS_A))
                == demo_cases.SOURCES[bisect_right(demo_cases._SOURCE_CDF, b.random())]
            )
            assert (
                int(a.choice(demo_cases._SCORES_FIRST))
                == demo_cases._SCORES_FIRST_L[int(b.integers(0, len(demo_cases._SCORES_FIRST_L)))]
            )
            given = "".join(a.choice(names._GIVEN_A, size=int(a.integers(1, 3))))
            assert str(a.choice(names._SURNAMES_A)) + given == names.person_name(b)
            highs, same = a.integers(1, 50, size=7), b.integers(1, 50, size=7)  # a household per chosen leaf
            assert [int(a.integers(h)) for h in highs] == b.integers(0, same).tolist()
            phone = "1" + str(a.integers(3, 10)) + "".join(map(str, a.integers(0, 10, size=9).tolist()))
            assert phone == names.phone_number(b)
        assert a.random() == b.random()


def test_single_draws_are_numpy_s_own_draw_for_draw():
    """`Draws` gives, call for call, the numbers numpy's own methods give and leaves the generator where they leave
    it: bounded integers of every size numpy draws by Lemire's method on 32 bits (a rejection included: bounds
    near 2**31 reject often), the bounds numpy answers otherwise (1: no draw; 2**32 and more; 0: its error),
    uniform, normal and lognormal numbers, mixed in any order with numpy's own calls on the same generator."""
    import math

    from gridmap.demo.draws import Draws, draws

    bounds = [1, 2, 3, 7, 10, 60, 300, 1000, 2**31 - 1, 2**31 + 1, 3 * 2**30, 2**32 - 2, 2**32 - 1, 2**32, 2**40]
    for seed in range(30):
        a, b = np.random.default_rng(seed), np.random.default_rng(seed)
        d = draws(b)
        assert isinstance(d, Draws) and draws(b) is d and draws(d) is d
        for step in range(400):
            n = bounds[step % len(bounds)]
            assert int(a.integers(n)) == d.below(n)
            assert int(a.integers(5, 5 + n)) == d.integers(5, 5 + n)
            assert a.integers(0, n, size=3).tolist() == [d.below(n) for _ in range(3)]
            low, high = float(a.random()) * 100 - 50, 0.0
            high = low + float(b.random()) * 1000
            assert float(a.uniform(low, high)) == d.uniform(low, high)
            assert float(a.uniform(5, 90)) == d.uniform(5, 90)
            assert float(a.normal(13.5, 3.5)) == d.normal(13.5, 3.5)
            assert float(a.lognormal(-1.4, 0.6)) == d.lognormal(-1.4, 0.6)
            assert int(a.integers(60)) == int(b.integers(60))  # numpy's own, on the same generator, in between
        assert a.random() == b.random() and a.bit_generator.state == b.bit_generator.state
        with pytest.raises(ValueError):
            d.below(0)
    assert not math.isnan(Draws(np.random.default_rng(1)).lognormal(0.0, 1.0))


def _contents(engine) -> dict[str, tuple[int, str]]:
    """Every table's rows (ordered by key; geometries as WKB) as a count and a digest, but for the two columns
    that hold the clock's time of the load (the audit's and the generation's)."""
    import hashlib

    from geoalchemy2 import Geometry

    from gridmap.store.tables import Base

    clock = {("audit_log", "at"), ("generation", "created_at")}
    as_binary = sa.func.ST_AsBinary if engine.dialect.name == "postgresql" else sa.func.AsBinary
    out = {}
    with engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            columns = [
                as_binary(c).label(c.name) if isinstance(c.type, Geometry) else c
                for c in table.columns
                if (table.name, c.name) not in clock
            ]
            digest, n = hashlib.sha256(), 0
            for row in conn.execute(sa.select(*columns).order_by(*table.primary_key.columns)):
                values = [
                    v.astimezone(dt.UTC).isoformat() if isinstance(v, dt.datetime) and v.tzinfo else v for v in row
                ]
                digest.update(repr([bytes(v) if isinstance(v, memoryview) else v for v in values]).encode())
                n += 1
            out[table.name] = (n, digest.hexdigest())
    return out


def _definitions(engine, table: str) -> list[tuple[str, str]]:
    """A PostgreSQL table's indexes and constraints, as their definitions."""
    with engine.connect() as conn:
        return conn.execute(
            sa.text(
                "SELECT relname, pg_get_indexdef(indexrelid) FROM pg_index JOIN pg_class ON oid = indexrelid "
                "WHERE indrelid = CAST(:t AS regclass) UNION ALL SELECT conname, pg_get_constraintdef(oid) "
                "FROM pg_constraint WHERE conrelid = CAST(:t AS regclass) ORDER BY 1"
            ),
            {"t": table},
        ).all()


def test_the_demo_is_the_same_written_at_once_or_chunk_by_chunk_on_a_thread(db, tmp_path, monkeypatch):
    """The demo's cases and histories written by chunks (on PostGIS on the writer's thread, `bulk.Writer`, into a
    history table whose indexes and key are made after the rows, `bulk.into_empty`: as `gridmap demo` writes them)
    store every row of every table as they are stored written all at once in the caller's thread, chunks small
    enough that some statements are multi-row INSERTs rather than COPY; the history table has its indexes and
    constraints as the migration made them."""
    from gridmap.demo import cases as demo_cases
    from gridmap.demo.load import load_demo

    factory, _ = db
    postgis = factory.kw["bind"].dialect.name == "postgresql"
    found = []
    for chunk, threaded in ((10**9, False), (70, True)):
        monkeypatch.setattr(demo_cases, "WRITE_CHUNK", chunk)
        monkeypatch.setattr(demo_cases, "WRITE_THREADED", threaded)
        if postgis:
            from tests.conftest import _new_postgis_database

            url, drop = _new_postgis_database()
        else:
            url, drop = f"sqlite:///{tmp_path / f'chunks-{chunk}.sqlite'}", lambda: None
        engine = storage.make_engine(url)
        try:
            storage.migrate(engine)
            migrated = _definitions(engine, "case_event") if postgis else []
            with storage.session_scope(storage.make_sessionmaker(engine)) as session:
                load_demo(session, "530111", small=True, seed=11, today=dt.date(2026, 11, 20))
            found.append(_contents(engine))
            if postgis:
                assert _definitions(engine, "case_event") == migrated and len(migrated) == 6
        finally:
            engine.dispose()
            drop()
    at_once, chunked = found
    assert chunked == at_once
    assert at_once["case_file"][0] == 300 and at_once["case_event"][0] > 1500


def test_a_load_into_an_empty_history_table_sets_its_indexes_and_keys_aside_only_then(db):
    """`bulk.into_empty` on PostGIS: a table with rows keeps its indexes and keys; an empty one is loaded without
    its plain indexes and foreign keys (its primary key and partial index kept) and gets them back, the same, at
    the end of the block; a block that fails leaves the table as it was once rolled back. Nothing on SpatiaLite."""
    from gridmap.cases.bulk import EVENTS, into_empty

    factory, _ = db
    engine = factory.kw["bind"]
    if engine.dialect.name != "postgresql":
        with factory() as s, into_empty(s.connection(), EVENTS) as applies:
            assert applies is False
        return
    before = _definitions(engine, "case_event")
    with factory() as s:
        with into_empty(s.connection(), EVENTS) as applies:  # the demo's histories are there
            assert applies is False
            assert [name for name, _ in _definitions_in(s, "case_event")] == [name for name, _ in before]
        s.rollback()
    with factory() as s:
        conn = s.connection()
        conn.execute(sa.text("DELETE FROM case_event"))
        with into_empty(conn, EVENTS) as applies:
            assert applies is True
            # its primary key, and its partial index (of ratings), which stays through a load
            assert [name for name, _ in _definitions_in(s, "case_event")] == [
                "case_event_pkey",
                "case_event_pkey",
                "ix_case_event_rating",
            ]
        assert _definitions_in(s, "case_event") == before
        with pytest.raises(RuntimeError), into_empty(conn, EVENTS):
            raise RuntimeError("a failed load")
        s.rollback()
    assert _definitions(engine, "case_event") == before
    with factory() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(CaseEvent)) > 0


def _definitions_in(session, table: str) -> list[tuple[str, str]]:
    return session.execute(
        sa.text(
            "SELECT relname, pg_get_indexdef(indexrelid) FROM pg_index JOIN pg_class ON oid = indexrelid "
            "WHERE indrelid = CAST(:t AS regclass) UNION ALL SELECT conname, pg_get_constraintdef(oid) "
            "FROM pg_constraint WHERE conrelid = CAST(:t AS regclass) ORDER BY 1"
        ),
        {"t": table},
    ).all()


def test_reserved_ids_are_the_sequence_s_in_one_run_or_not(db):
    """`reserve_ids` on PostGIS answers the ids the sequence gave, ascending: one run when nothing else drew from
    it meanwhile (the usual case, answered as its ends), and the ids themselves when they are not one run (a
    sequence stepping by 3 stands in for another session's draws); on SpatiaLite those after the largest."""
    from gridmap.cases.bulk import EVENTS, reserve_ids

    factory, _ = db
    with factory() as s:
        conn = s.connection()
        first = reserve_ids(conn, EVENTS, 5)
        assert first == list(range(first[0], first[0] + 5))
        assert reserve_ids(conn, EVENTS, 0) == []
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("ALTER SEQUENCE case_event_id_seq INCREMENT BY 3"))
            spaced = reserve_ids(conn, EVENTS, 4)
            assert spaced == list(range(spaced[0], spaced[0] + 12, 3)) and spaced[0] > first[-1]
        else:
            assert first[0] == s.scalar(sa.select(sa.func.max(CaseEvent.id))) + 1
        s.rollback()


@pytest.mark.parametrize("db_url", ["spatialite"], indirect=True)  # SpatiaLite's own spatial index
def test_spatialite_points_scattered_and_over_stale_entries_are_indexed_where_they_are(db):
    """SpatiaLite: the points of a bulk insert spread over the demo go into the spatial index in the order of a
    space-filling curve, not the rows' order; every point is indexed where it is, an entry some earlier row left
    for a new id is replaced (looked up by the index's table of ids, never by a range scan of the tree), and a
    query by box finds exactly the rows inside it."""
    from gridmap.cases.bulk import TRIGGERS_MIN_ROWS, curve_order, insert_rows, reserve_ids

    factory, index = db
    points = [index.leaf_geoms[k % len(index.leaf_geoms)].representative_point() for k in range(TRIGGERS_MIN_ROWS)]
    with factory() as s:
        conn = s.connection()
        assert conn.dialect.name == "sqlite"
        ids = reserve_ids(conn, Case.__table__, len(points))
        # entries left for two of the new ids, far away (as rows deleted without their entries would leave them)
        for stale in (ids[0], ids[-7]):
            conn.exec_driver_sql(
                "INSERT INTO idx_case_file_geom (pkid, xmin, xmax, ymin, ymax) VALUES (?, 1, 1, 1, 1)", (stale,)
            )
        rows = _case_rows("SC-", ids, points[0])
        for row, p in zip(rows, points):
            row.update(lon=p.x, lat=p.y, geom=f"SRID=4326;POINT({p.x!r} {p.y!r})")
        insert_rows(conn, Case.__table__, rows)
        entries = conn.exec_driver_sql(
            f"SELECT pkid, xmin, ymin FROM idx_case_file_geom WHERE pkid IN ({', '.join(map(str, ids))})"
        ).all()
        assert sorted(e[0] for e in entries) == ids  # one entry each, none stale
        at = {pkid: (x, y) for pkid, x, y in entries}
        for case_id, p in zip(ids, points):
            assert at[case_id] == pytest.approx((p.x, p.y), abs=1e-4)  # the R-tree's 32-bit floats
        x0, y0, x1, y1 = index.bounds
        box = (x0, y0, (x0 + x1) / 2, (y0 + y1) / 2)
        inside = {i for i, p in zip(ids, points) if box[0] <= p.x <= box[2] and box[1] <= p.y <= box[3]}
        found = conn.exec_driver_sql(
            "SELECT pkid FROM idx_case_file_geom WHERE xmin <= ? AND xmax >= ? AND ymin <= ? AND ymax >= ?",
            (box[2], box[0], box[3], box[1]),
        ).all()
        assert inside and {r[0] for r in found} & set(ids) == inside
        s.rollback()
    order = curve_order(np.array([0.0, 1, 0, 1, 0.5, 0.5]), np.array([0.0, 0, 1, 1, 0.5, 0.5]))
    assert order.tolist() == [0, 4, 5, 1, 2, 3]  # Z order: the lower left quarter first; ties as given
