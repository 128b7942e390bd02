"""`gridmap demo --scale province` at a small fraction (2 districts, ~4,000 micro-grids, 20,000 cases) on both
databases: it loads through the command, refuses a database that holds areas, gives the same rows for the same seed
(the stored areas and cases are those the generator makes again in memory), nests exactly (the project's boundary
check), every case lies in the micro-grid it is stored under (the app's own locate index), and locate and measures
answer on it."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
import shapely
import sqlalchemy as sa
from geoalchemy2.shape import to_shape

from gridmap import cli
from gridmap.boundaries import check as boundary_check
from gridmap.boundaries.areas import load_index
from gridmap.cases import measures
from gridmap.demo.province import ProvinceScale, build_province
from gridmap.demo.province_cases import CHUNK, _Setup, make_chunk
from gridmap.store import engine as storage
from gridmap.store.tables import Area, Case, CaseEvent, Generation, PartyOrg, PartyOrgArea, Staff, StaffArea
from gridmap_api.settings import Settings
from tests.conftest import DIALECTS, _new_postgis_database, api_client

SCALE = ProvinceScale(districts=2, microgrids=4_000, cases=20_000)
SEED = 7
TODAY = dt.date(2026, 11, 20)
ARGS = [
    "demo",
    "--scale",
    "province",
    "--districts",
    "2",
    "--microgrids",
    "4000",
    "--cases",
    "20000",
    "--seed",
    str(SEED),
    "--today",
    TODAY.isoformat(),
    "--no-progress",
]


@pytest.fixture(scope="module", params=DIALECTS)
def url(request, tmp_path_factory):
    """An empty database holding the province fraction, loaded by the command."""
    if request.param == "spatialite":
        db = f"sqlite:///{tmp_path_factory.mktemp('province') / 'province.sqlite'}"
        drop = None
    else:
        db, drop = _new_postgis_database()
    assert cli.main(["--database", db, *ARGS]) == 0
    yield db
    if drop is not None:
        drop()


@pytest.fixture(scope="module")
def engine(url):
    eng = storage.make_engine(url)
    yield eng
    eng.dispose()


@pytest.fixture(scope="module")
def province():
    return build_province(SCALE, SEED)


def test_a_second_load_is_refused_in_chinese_first(url, capsys):
    assert cli.main(["--database", url, *ARGS]) == 2
    err = capsys.readouterr().err
    assert "数据库中已有" in err and err.index("数据库中已有") < err.index("the database already holds")
    assert cli.main(["--database", url, *ARGS, "--if-empty"]) == 0  # nothing loaded, nothing refused


def test_the_load_leaves_fresh_statistics_and_on_postgis_vacuumed_case_tables(engine):
    """After millions of rows the planner has statistics; on PostGIS the case tables are vacuumed too, so that
    counts from their indexes need not read the table (no page is known all-visible before a VACUUM)."""
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            assert conn.scalar(sa.text("SELECT count(*) FROM sqlite_stat1 WHERE tbl = 'case_file'")) > 0
            return
        months = conn.execute(
            sa.text(
                "SELECT c.relname, c.relpages, c.relallvisible FROM pg_class c JOIN pg_inherits i ON i.inhrelid = "
                "c.oid WHERE i.inhparent = 'case_file'::regclass AND c.relpages > 0"
            )
        ).all()
        assert months and all(m.relallvisible > 0 for m in months), months
        for table in ("case_event", "case_registry", "case_activity"):
            pages, visible = conn.execute(
                sa.text("SELECT relpages, relallvisible FROM pg_class WHERE relname = :t"), {"t": table}
            ).one()
            assert pages > 0 and visible > 0, table
        assert conn.scalar(sa.text("SELECT reltuples FROM pg_class WHERE relname = 'case_event'")) > 0  # analysed


def test_the_steps_are_counted_by_grid_and_month_after_the_bulk_load(engine):
    """The load takes the history's triggers off and fills `case_step_count` in one statement at the end
    (gridmap.store.bulkload): the same counts the triggers would have kept, row for row."""
    from tests.integration.test_case_step_count import kept, truth

    with sa.orm.Session(engine) as session:
        counted = kept(session)
        assert len(counted) > 100 and counted == truth(session)


def test_the_cases_are_counted_by_grid_and_month_after_the_bulk_load(engine):
    """The load takes the case table's counting trigger off and fills `case_month_count` in one statement at the
    end (gridmap.store.bulkload): the same counts the triggers would have kept, row for row."""
    from tests.integration.test_case_month_count import kept, truth

    with sa.orm.Session(engine) as session:
        counted = kept(session)
        assert len(counted) > 100 and counted == truth(session)


def test_counts_and_the_people_of_every_level(engine, province):
    counts = province.count()
    assert counts["district"] == 2 and counts["microgrid"] >= 3_900 and counts["grid"] >= 1_000
    with engine.connect() as conn:
        stored = dict(conn.execute(sa.select(Area.level, sa.func.count()).group_by(Area.level)).all())
        assert stored == counts
        assert conn.scalar(sa.select(sa.func.count()).select_from(Case)) == SCALE.cases
        orgs = dict(conn.execute(sa.select(PartyOrg.kind, sa.func.count()).group_by(PartyOrg.kind)).all())
        assert orgs == {
            "subdistrict_committee": counts["subdistrict"],
            "community_committee": counts["community"],
            "grid_branch": counts["grid"],
            "building_group": counts["microgrid"],
        }
        assert conn.scalar(sa.select(sa.func.count()).select_from(PartyOrgArea)) == sum(orgs.values())
        roles = dict(
            conn.execute(
                sa.select(StaffArea.role, sa.func.count(sa.distinct(StaffArea.area_code))).group_by(StaffArea.role)
            ).all()
        )
        for role in ("grid_head", "fulltime_worker", "parttime_worker", "police"):
            assert roles[role] == counts["grid"], role
        assert roles["building_head"] == counts["microgrid"]
        assert roles["community_secretary"] == roles["community_director"] == counts["community"]
        assert conn.scalar(sa.select(sa.func.count()).select_from(Staff)) > 2 * counts["grid"]


def test_same_seed_same_rows(engine, province):
    """The stored areas are the generated ones (codes, parents, geometries to the bit), and the cases those the
    chunks make again: ids, points, codes, states, times."""
    levels = province.levels
    with engine.connect() as conn:
        rows = conn.execute(sa.select(Area.id, Area.code, Area.parent_id, Area.geom).order_by(Area.id)).all()
        gen_id = conn.scalar(sa.select(Generation.id).where(Generation.status == "active"))
        setup_cats = None
        codes = [
            c for name in ("district", "subdistrict", "community", "grid", "microgrid") for c in levels[name].codes
        ]
        assert [r.code for r in rows] == codes
        geoms = np.concatenate(
            [levels[name].geoms for name in ("district", "subdistrict", "community", "grid", "microgrid")]
        )
        stored = np.array([to_shape(r.geom) for r in rows], dtype=object)
        assert shapely.equals_exact(stored, geoms, tolerance=0).all()
        by_id = {r.id: r.code for r in rows}
        parents = {r.code: by_id.get(r.parent_id) for r in rows}
        for name, above in (("microgrid", "grid"), ("grid", "community")):
            level = levels[name]
            assert all(parents[c] == levels[above].codes[p] for c, p in zip(level.codes[::97], level.parent[::97]))
        cases = conn.execute(
            sa.select(Case.id, Case.lon, Case.lat, Case.microgrid_code, Case.state, Case.reported_at, Case.number)
            .order_by(Case.id)
            .limit(CHUNK)
        ).all()
        branches = dict(conn.execute(sa.select(PartyOrgArea.area_code, PartyOrgArea.party_org_id)).all())
        workers = dict(
            conn.execute(
                sa.select(StaffArea.area_code, StaffArea.staff_id).where(StaffArea.role == "fulltime_worker")
            ).all()
        )
    from gridmap.demo.province import Territory

    grids = levels["grid"].codes
    territory = Territory(province, {}, np.array([branches[g] for g in grids]), np.array([workers[g] for g in grids]))
    setup = _Setup(territory, gen_id, TODAY)
    with sa.orm.Session(engine) as session:
        setup.categories(session)
    again, history = make_chunk(setup, 0, 1, SCALE.cases, SEED, 1)
    assert [r.id for r in cases] == again["id"].tolist()
    assert np.array_equal(np.array([r.lon for r in cases]), again["lon"])
    assert np.array_equal(np.array([r.lat for r in cases]), again["lat"])
    assert [r.microgrid_code for r in cases] == list(again["microgrid_code"])
    assert [r.state for r in cases] == list(again["state"])
    assert [r.number for r in cases] == list(again["number"])
    reported = np.array(
        [
            r.reported_at.replace(tzinfo=None)
            if r.reported_at.tzinfo is None
            else r.reported_at.astimezone(dt.UTC).replace(tzinfo=None)
            for r in cases
        ],
        dtype="datetime64[us]",
    )
    assert np.array_equal(reported, again["reported_at"])
    assert setup_cats is None
    assert len(history["case_id"]) > SCALE.cases  # the report of every case, and handling and ratings


def test_a_different_seed_gives_another_province():
    a, b = build_province(SCALE, SEED), build_province(SCALE, SEED + 1)
    assert a.levels["district"].codes == b.levels["district"].codes
    assert not shapely.equals_exact(a.levels["microgrid"].geoms[0], b.levels["microgrid"].geoms[0], tolerance=0)


def test_every_level_tiles_its_parent(engine):
    with sa.orm.Session(engine) as session:
        gen_id = session.scalar(sa.select(Generation.id).where(Generation.status == "active"))
        report = boundary_check.check_generation(session, gen_id)
    errors = [p for p in report["problems"] if p["severity"] == "error"]
    assert report["ok"] and errors == []
    kinds = {p["kind"] for p in report["problems"]}
    assert kinds <= {"household_norm"}, kinds  # warnings: only a few grids above the households norm


def test_every_case_lies_in_the_grid_it_is_stored_under(engine):
    with sa.orm.Session(engine) as session:
        gen_id = session.scalar(sa.select(Generation.id).where(Generation.status == "active"))
        index = load_index(session, gen_id)
        rows = session.execute(sa.select(Case.lon, Case.lat, Case.microgrid_code, Case.grid_code)).all()
    lon = np.array([r.lon for r in rows])
    lat = np.array([r.lat for r in rows])
    leaf = index.locate_many(lon, lat)
    assert (leaf >= 0).all()
    located = [index.leaves[k].code for k in leaf.tolist()]
    assert located == [r.microgrid_code for r in rows]
    assert all(r.microgrid_code.startswith(r.grid_code) for r in rows)


def test_locate_and_measures_answer_on_it(url, engine):
    with engine.connect() as conn:
        case = conn.execute(
            sa.select(Case.lon, Case.lat, Case.grid_code, Case.microgrid_code).order_by(Case.id).offset(12_345).limit(1)
        ).one()
        bare = dict(
            conn.execute(
                sa.select(Case.grid_code, sa.func.count())
                .where(
                    Case.reported_at >= dt.datetime(2025, 11, 1, tzinfo=dt.UTC),
                    Case.reported_at < dt.datetime(2026, 11, 20, tzinfo=dt.UTC),
                )
                .group_by(Case.grid_code)
            ).all()
        )
        rated = conn.scalar(sa.select(sa.func.count()).select_from(CaseEvent).where(CaseEvent.action == "rate"))
    with api_client(Settings(database_url=url)) as client:
        answer = client.get("/api/v1/locate", params={"lon": case.lon, "lat": case.lat})
        assert answer.status_code == 200, answer.text
        codes = {a["level"]: a["code"] for a in answer.json()["chain"]}
        assert codes["grid"] == case.grid_code and codes["microgrid"] == case.microgrid_code
    with sa.orm.Session(engine) as session:
        _, table = measures.measures(
            session,
            "grid",
            since=dt.datetime(2025, 11, 1, tzinfo=dt.UTC),
            until=dt.datetime(2026, 11, 20, tzinfo=dt.UTC),
        )
    per_grid = table[table["unit"] == "grid"].set_index("key")
    assert {k: int(v) for k, v in per_grid["received"].items() if v} == bare
    total = table[table["unit"] == "total"].iloc[0]
    assert total["received"] == SCALE.cases and total["rated"] == rated
    assert 0.9 < total["closure_rate"] <= 1.0 and 0.8 < total["satisfaction"] <= 1.0


DIGESTS: dict[str, str] = {}


def test_both_databases_hold_the_same_rows(engine):
    """The digest of the areas (code, geometry) and cases (id, point, codes, state, number, report time) is the same
    on SpatiaLite and PostGIS (checked when the second database's half runs)."""
    import hashlib

    digest = hashlib.sha256()
    with engine.connect() as conn:
        for row in conn.execute(sa.select(Area.code, Area.geom).order_by(Area.id)):
            digest.update(row.code.encode() + to_shape(row.geom).wkb)
        for row in conn.execute(
            sa.select(
                Case.id, Case.lon, Case.lat, Case.microgrid_code, Case.state, Case.number, Case.reported_at
            ).order_by(Case.id)
        ):
            at = row.reported_at if row.reported_at.tzinfo is None else row.reported_at.astimezone(dt.UTC)
            digest.update(
                repr(
                    (
                        row.id,
                        row.lon,
                        row.lat,
                        row.microgrid_code,
                        row.state,
                        row.number,
                        at.replace(tzinfo=None).isoformat(),
                    )
                ).encode()
            )
    DIGESTS[engine.dialect.name] = digest.hexdigest()
    assert len(set(DIGESTS.values())) == 1, DIGESTS
