"""Exchange with GIS tools (issue 13 §7), on both databases: exported files read back by GDAL (pyogrio) with their
CRS, codes and Chinese names; OGC API – Features at /ogc read by GDAL's OAPIF driver from a real server; paging,
bbox, datetime (as-of day), parameter errors, personal data, and the areas policy (a worker limited to one
sub-district sees its areas and those above them only).

The database holds the small demo (one active generation) plus, made here as a fixture, an earlier generation of
the same areas that was in force for the half year before it (one grid named differently), so that `datetime`
has a past to look at.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import subprocess
import sys
import time
import urllib.request
import zipfile
from urllib.parse import parse_qs, urlsplit

import pytest
import shapely
import sqlalchemy as sa
from fastapi.testclient import TestClient
from geoalchemy2.shape import to_shape

from gridmap.access import accounts
from gridmap.boundaries import generations as gens
from gridmap.cli import main as cli
from gridmap.store import engine as storage
from gridmap.store.tables import Area, Generation, Staff, StaffArea
from gridmap_api.main import create_app
from gridmap_api.settings import Settings
from tests.e2e.conftest import _free_port

FIELDS = ["code", "name", "level", "parent", "households", "population", "area_m2"]
LEVELS = ["district", "subdistrict", "community", "grid", "microgrid"]
OLD_NAME = "旧版网格（测试）"
READ_BACK = r"""
import json, sys, pyogrio
out = {}
for path in sys.argv[1:]:
    layers = {}
    for name, _ in pyogrio.list_layers(path):
        info = pyogrio.read_info(path, layer=name)
        frame = pyogrio.read_dataframe(path, layer=name)
        name_col = "name" if "name" in frame.columns else "Name"
        layers[str(name)] = {"crs": info["crs"], "encoding": info["encoding"], "columns": list(frame.columns),
                             "codes": frame["code"].tolist(), "names": frame[name_col].tolist(),
                             "parents": [None if p is None or p != p else p for p in frame["parent"]],
                             "households": [int(h) for h in frame["households"]],
                             "wkb": [g.hex() for g in frame.geometry.to_wkb()]}
    out[path] = layers
print(json.dumps(out, ensure_ascii=False))
"""


class World:
    def __init__(self, url: str, client: TestClient):
        self.url, self.client = url, client
        self.sessionmaker = client.app.state.sessionmaker


@pytest.fixture(scope="module")
def world(fresh_db_url, tmp_path_factory):
    settings = Settings(database_url=fresh_db_url, escalation_interval_s=3600, gateway_secret="")
    with TestClient(create_app(settings)) as client:
        w = World(fresh_db_url, client)
        with storage.session_scope(w.sessionmaker) as s:
            active = s.scalars(sa.select(Generation).where(Generation.status == "active")).one()
            w.active_id, w.active_from = active.id, active.effective_from
            # an earlier generation: the same areas, in force for the 183 days before the active one
            old = gens.create_draft(s, "早先的边界（测试）")
            old.status, old.effective_from, old.effective_to = (
                "retired",
                w.active_from - dt.timedelta(days=183),
                w.active_from,
            )
            w.old_id = old.id
            renamed = s.scalars(
                sa.select(Area).where(Area.generation_id == old.id, Area.level == "grid").order_by(Area.code)
            ).first()
            renamed.name, w.renamed = OLD_NAME, renamed.code
            w.areas = {
                lvl: s.execute(
                    sa.select(Area.code, Area.name, Area.households, Area.geom)
                    .where(Area.generation_id == active.id, Area.level == lvl)
                    .order_by(Area.code)
                ).all()
                for lvl in LEVELS
            }
            w.s1, w.s2 = [a.code for a in w.areas["subdistrict"]][:2]
            staff_id = s.scalar(
                sa.select(StaffArea.staff_id)
                .where(StaffArea.area_code.startswith(w.s1), StaffArea.role == "fulltime_worker")
                .limit(1)
            )
            w.people = [(p.name, p.phone) for p in s.scalars(sa.select(Staff))]
            worker = accounts.add_account(
                s, accounts.AccountSpec("ex-worker", "worker", (w.s1,), staff_id=staff_id), "ex-password-2026-long"
            )
            planner = accounts.add_account(s, accounts.AccountSpec("ex-planner", "planner"), "ex-password-2026-long")
            scoped = accounts.add_account(
                s, accounts.AccountSpec("ex-planner-s2", "planner", (w.s2,)), "ex-password-2026-long"
            )
            ttl = dt.timedelta(hours=1)
            w.worker = {"Authorization": f"Bearer {accounts.issue_token(s, worker, 'access', ttl)}"}
            w.planner = {"Authorization": f"Bearer {accounts.issue_token(s, planner, 'access', ttl)}"}
            w.planner_s2 = {"Authorization": f"Bearer {accounts.issue_token(s, scoped, 'access', ttl)}"}
            _, key = accounts.add_api_key(s, "ex-gis", ("read",))
            w.key = {"X-API-Key": key}
        w.tmp = tmp_path_factory.mktemp("exchange")
        yield w


def _codes(features) -> list[str]:
    return [f["properties"]["code"] for f in features]


def _read_back(*paths) -> dict:
    """What GDAL (pyogrio) reads from the files, in a fresh interpreter (this one has loaded SpatiaLite, and a
    GeoPackage must not meet it)."""
    done = subprocess.run(
        [sys.executable, "-c", READ_BACK, *map(str, paths)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


# -- export --------------------------------------------------------------------------------------------------------


def test_export_every_format_reads_back_with_crs_codes_and_chinese_names(world):
    """Each format through the API (all levels: one layer per level; GeoJSON: one collection), read back by GDAL:
    EPSG:4326, every code with its Chinese name, parent and households, the geometry as stored (KML to 1e-9°)."""
    files = {}
    for fmt, suffix, media in (
        ("geojson", "geojson", "application/geo+json"),
        ("gpkg", "gpkg", "application/geopackage+sqlite3"),
        ("shp", "zip", "application/zip"),
        ("kml", "kml", "application/vnd.google-earth.kml+xml"),
    ):
        r = world.client.get(
            f"/api/v1/generations/{world.active_id}/export", params={"format": fmt}, headers=world.planner
        )
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith(media)
        name = f"gridmap-generation-{world.active_id}-all.{suffix}"
        assert r.headers["content-disposition"] == f'attachment; filename="{name}"'
        path = world.tmp / name
        path.write_bytes(r.content)
        files[fmt] = path
    with zipfile.ZipFile(io.BytesIO(files["shp"].read_bytes())) as archive:
        names = set(archive.namelist())
        assert {f"{lvl}.{ext}" for lvl in LEVELS for ext in ("shp", "shx", "dbf", "prj", "cpg")} <= names
        assert all(archive.read(f"{lvl}.cpg").decode().strip() == "UTF-8" for lvl in LEVELS)
    read = _read_back(files["geojson"], files["gpkg"], f"/vsizip/{files['shp']}", files["kml"])
    expected = {lvl: {a.code: a for a in rows} for lvl, rows in world.areas.items()}
    for path, layers in read.items():
        if path.endswith(".geojson"):
            (only,) = layers.values()
            assert only["crs"] == "EPSG:4326"
            assert only["codes"] == [a.code for lvl in LEVELS for a in world.areas[lvl]]
            assert set(FIELDS) <= set(only["columns"])
            continue
        assert sorted(layers) == sorted(LEVELS), path
        for lvl, got in layers.items():
            assert got["crs"] == "EPSG:4326", (path, lvl, got["crs"])
            assert got["codes"] == list(expected[lvl]), (path, lvl)
            assert got["names"] == [expected[lvl][c].name for c in got["codes"]], (path, lvl)
            assert any("\u4e00" <= ch <= "\u9fff" for ch in got["names"][0])
            assert got["households"] == [expected[lvl][c].households for c in got["codes"]]
            assert all((p is None) == (lvl == "district") for p in got["parents"])
            assert all(p is None or c.startswith(p) for c, p in zip(got["codes"], got["parents"]))
            for code, wkb in zip(got["codes"], got["wkb"]):
                stored = to_shape(expected[lvl][code].geom)
                back = shapely.force_2d(shapely.from_wkb(bytes.fromhex(wkb)))
                if path.endswith(".kml"):
                    assert stored.hausdorff_distance(back) < 1e-9, (lvl, code)
                else:
                    assert stored.symmetric_difference(back).area == 0 and stored.equals(back), (path, lvl, code)


def test_export_one_level_of_any_generation_by_cli_and_api(world, capsys):
    """The CLI writes a level of the retired generation (its own name for the renamed grid); the format comes from
    the suffix or --format; a bad suffix, an unknown generation or level are refused (exit 2, 422/404)."""
    out = world.tmp / "grids-old.gpkg"
    assert cli(["--database", world.url, "boundaries", "export", str(world.old_id), str(out), "--level", "grid"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["features"] == {"grid": len(world.areas["grid"])} and summary["format"] == "gpkg"
    kml = world.tmp / "grids-old.data"
    assert (
        cli(
            [
                "--database",
                world.url,
                "boundaries",
                "export",
                str(world.old_id),
                str(kml),
                "--level",
                "grid",
                "--format",
                "kml",
            ]
        )
        == 0
    )
    capsys.readouterr()
    read = _read_back(out, kml)
    for path in (str(out), str(kml)):
        (layer,) = read[path].values()
        assert layer["codes"] == [a.code for a in world.areas["grid"]]
        assert layer["names"][layer["codes"].index(world.renamed)] == OLD_NAME
    assert cli(["--database", world.url, "boundaries", "export", "1", str(world.tmp / "x.txt")]) == 2
    assert cli(["--database", world.url, "boundaries", "export", "999999", str(world.tmp / "x.gpkg")]) == 2
    assert "999999" in capsys.readouterr().err
    c = world.client
    r = c.get(f"/api/v1/generations/{world.old_id}/export", params={"level": "grid"}, headers=world.planner)
    assert r.status_code == 200
    body = r.json()
    assert {f["properties"]["level"] for f in body["features"]} == {"grid"}
    assert [f["properties"] for f in body["features"] if f["id"] == world.renamed][0]["name"] == OLD_NAME
    assert list(body["features"][0]["properties"]) == FIELDS
    assert c.get("/api/v1/generations/999999/export", headers=world.planner).status_code == 404
    bad = c.get(f"/api/v1/generations/{world.active_id}/export", params={"format": "dxf"}, headers=world.planner)
    assert bad.status_code == 422 and bad.json()["field"] == "format"
    bad = c.get(f"/api/v1/generations/{world.active_id}/export", params={"level": "town"}, headers=world.planner)
    assert bad.status_code == 422 and bad.json()["field"] == "level"


def test_export_follows_the_areas_policy(world):
    """generation.read: a worker is refused, an anonymous caller asked to sign in; a planner limited to the second
    sub-district gets its areas and the district above them, nothing of the first."""
    url = f"/api/v1/generations/{world.active_id}/export"
    assert world.client.get(url, headers=world.worker).status_code == 403
    assert world.client.get(url).status_code == 401
    r = world.client.get(url, params={"level": "all"}, headers=world.planner_s2)
    codes = _codes(r.json()["features"])
    assert world.s2 in codes and codes[0] == world.areas["district"][0].code
    assert not [c for c in codes if c.startswith(world.s1)]
    assert all(c.startswith(world.s2) or len(c) < len(world.s2) for c in codes)


# -- OGC API – Features --------------------------------------------------------------------------------------------


def test_ogc_landing_conformance_and_collections(world):
    c, h = world.client, world.key
    landing = c.get("/ogc", headers=h)
    assert landing.status_code == 200 and landing.headers["content-type"] == "application/json"
    rels = {link["rel"]: link["href"] for link in landing.json()["links"]}
    assert set(rels) == {"self", "service-desc", "conformance", "data"}
    assert c.get(urlsplit(rels["service-desc"]).path).json()["paths"]["/ogc/collections/{collection_id}/items"]
    conf = c.get(urlsplit(rels["conformance"]).path, headers=h).json()["conformsTo"]
    assert "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core" in conf
    assert "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson" in conf
    cols = c.get(urlsplit(rels["data"]).path, headers=h).json()["collections"]
    assert [col["id"] for col in cols] == LEVELS
    district = shapely.bounds(to_shape(world.areas["district"][0].geom)).tolist()
    for col in cols:
        assert col["crs"] == ["http://www.opengis.net/def/crs/OGC/1.3/CRS84"]
        assert col["extent"]["spatial"]["bbox"][0] == pytest.approx(district, abs=1e-9)
        assert col["extent"]["temporal"]["interval"][0][0].startswith(str(world.active_from - dt.timedelta(days=183)))
        assert {link["rel"] for link in col["links"]} == {"self", "items"}
        one = c.get(f"/ogc/collections/{col['id']}", headers=h)
        assert one.status_code == 200 and one.json() == col
    r = c.get("/ogc/collections/parish", headers=h)
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"


def test_ogc_items_page_with_next_and_prev_links(world):
    """Following `next` from limit=7 visits every micro-grid once, in code order; `prev` goes back; a limit over
    the maximum sends the maximum; one feature by code, with its links."""
    c, h = world.client, world.key
    expected = [a.code for a in world.areas["microgrid"]]
    url, seen, pages = "/ogc/collections/microgrid/items?limit=7", [], []
    while url:
        r = c.get(url, headers=h)
        assert r.status_code == 200 and r.headers["content-type"] == "application/geo+json"
        body = r.json()
        assert body["numberMatched"] == len(expected) and body["numberReturned"] == len(body["features"])
        seen += _codes(body["features"])
        pages.append(body)
        nxt = [link["href"] for link in body["links"] if link["rel"] == "next"]
        url = (urlsplit(nxt[0]).path + "?" + urlsplit(nxt[0]).query) if nxt else None
    assert seen == expected and len(pages) == -(-len(expected) // 7)
    prev = [link["href"] for link in pages[1]["links"] if link["rel"] == "prev"]
    assert parse_qs(urlsplit(prev[0]).query) == {"limit": ["7"], "offset": ["0"]}
    assert not [link for link in pages[0]["links"] if link["rel"] == "prev"]
    big = c.get("/ogc/collections/microgrid/items", params={"limit": 5000}, headers=h).json()
    assert big["numberReturned"] == len(expected)
    assert c.get("/ogc/collections/microgrid/items", headers=h).json()["numberReturned"] == len(expected)  # ≤ 100
    feature = pages[0]["features"][0]
    assert set(feature["properties"]) == set(FIELDS) and feature["id"] == expected[0]
    one = c.get(f"/ogc/collections/microgrid/items/{expected[0]}", headers=h)
    assert one.status_code == 200 and one.headers["content-type"] == "application/geo+json"
    assert one.json()["geometry"] == feature["geometry"]
    assert {link["rel"] for link in one.json()["links"]} == {"self", "collection"}
    assert shapely.geometry.shape(one.json()["geometry"]).equals(to_shape(world.areas["microgrid"][0].geom))
    assert c.get(f"/ogc/collections/grid/items/{expected[0]}", headers=h).status_code == 404  # not a grid
    assert c.get("/ogc/collections/grid/items/999999999999999", headers=h).status_code == 404


def test_ogc_bbox_selects_the_features_that_meet_the_box(world):
    c, h = world.client, world.key
    grids = {a.code: to_shape(a.geom) for a in world.areas["grid"]}
    first = next(iter(grids.values()))
    p = first.representative_point()
    for box in ((p.x - 0.001, p.y - 0.001, p.x + 0.001, p.y + 0.001), tuple(first.bounds), (0.0, 0.0, 1.0, 1.0)):
        want = sorted(code for code, g in grids.items() if g.intersects(shapely.box(*box)))
        r = c.get("/ogc/collections/grid/items", params={"bbox": ",".join(map(str, box))}, headers=h)
        assert r.status_code == 200
        assert _codes(r.json()["features"]) == want and r.json()["numberMatched"] == len(want)
        nxt = [link["href"] for link in r.json()["links"] if link["rel"] in ("self", "next")]
        assert all("bbox=" in href for href in nxt)
    assert (
        len(
            _codes(
                c.get(
                    "/ogc/collections/grid/items", params={"bbox": ",".join(map(str, first.bounds))}, headers=h
                ).json()["features"]
            )
        )
        >= 2
    )  # the box of one grid meets its neighbours


def test_ogc_datetime_is_the_as_of_day(world):
    """datetime names the day whose boundaries are served: the earlier generation (its grid name) before the
    active one took effect, the active one after; an instant is a China-time day; before any boundaries nothing
    matches (an empty collection, 200); intervals are refused."""
    c, h = world.client, world.key
    grid = world.renamed

    def name_on(value):
        r = c.get("/ogc/collections/grid/items", params={"datetime": value}, headers=h)
        assert r.status_code == 200, r.text
        return {f["id"]: f["properties"]["name"] for f in r.json()["features"]}.get(grid), r.json()

    start = world.active_from
    assert name_on((start - dt.timedelta(days=1)).isoformat())[0] == OLD_NAME
    assert name_on(start.isoformat())[0] != OLD_NAME
    assert name_on(f"{start - dt.timedelta(days=1)}T15:59:59Z")[0] == OLD_NAME  # 23:59:59 China time
    assert name_on(f"{start - dt.timedelta(days=1)}T16:00:00Z")[0] != OLD_NAME  # 00:00 the next day
    assert name_on(f"{start}T00:00:00+08:00")[0] != OLD_NAME
    assert c.get("/ogc/collections/grid/items", headers=h).json()["numberMatched"] == len(world.areas["grid"])
    empty = name_on((start - dt.timedelta(days=400)).isoformat())[1]
    assert empty["features"] == [] and empty["numberMatched"] == 0 and empty["numberReturned"] == 0
    one = c.get(
        f"/ogc/collections/grid/items/{grid}", params={"datetime": str(start - dt.timedelta(days=2))}, headers=h
    )
    assert one.json()["properties"]["name"] == OLD_NAME
    assert c.get(f"/ogc/collections/grid/items/{grid}", params={"datetime": "2000-01-01"}, headers=h).status_code == 404


@pytest.mark.parametrize(
    "params, field",
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"limit": "-5"}, "limit"),
        ({"offset": "-1"}, "offset"),
        ({"offset": "1e3"}, "offset"),
        ({"bbox": "1,2,3"}, "bbox"),
        ({"bbox": "103,25,102,26"}, "bbox"),
        ({"bbox": "a,b,c,d"}, "bbox"),
        ({"bbox": "0,0,nan,1"}, "bbox"),
        ({"bbox": "0,0,1,1,2,3"}, "bbox"),
        ({"datetime": "2026-13-01"}, "datetime"),
        ({"datetime": "2026-01-01/.."}, "datetime"),
        ({"datetime": "../2026-01-01"}, "datetime"),
        ({"datetime": "1900-01-01"}, "datetime"),
        ({"datetime": "yesterday"}, "datetime"),
        ({"crs": "http://www.opengis.net/def/crs/EPSG/0/3857"}, "crs"),
        ({"bbox-crs": "EPSG:4490"}, "bbox-crs"),
        ({"f": "html"}, "f"),
        ({"sortby": "name"}, "sortby"),
    ],
)
def test_ogc_invalid_parameters_are_400_problems_naming_the_parameter(world, params, field):
    r = world.client.get("/ogc/collections/grid/items", params=params, headers=world.key)
    assert r.status_code == 400, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["field"] == field and field in r.json()["detail"]


def test_ogc_no_personal_data_in_any_collection(world):
    """Every feature of every collection holds the seven fields only; no staff name or phone appears anywhere."""
    c, h = world.client, world.key
    text = ""
    for lvl in LEVELS:
        r = c.get(f"/ogc/collections/{lvl}/items", params={"limit": 1000}, headers=h)
        assert len(r.json()["features"]) == len(world.areas[lvl])
        assert all(list(f["properties"]) == FIELDS for f in r.json()["features"])
        text += r.text
    text += c.get("/ogc/collections", headers=h).text
    people = [(n, p) for n, p in world.people if n]
    assert len(people) > 10
    assert not [n for n, p in people if n in text or (p and p in text)]


def test_ogc_a_worker_sees_its_subdistrict_and_what_is_above_only(world):
    c, h = world.client, world.worker
    district = world.areas["district"][0].code
    subs = c.get("/ogc/collections/subdistrict/items", headers=h).json()
    assert _codes(subs["features"]) == [world.s1] and subs["numberMatched"] == 1
    assert _codes(c.get("/ogc/collections/district/items", headers=h).json()["features"]) == [district]
    grids = _codes(c.get("/ogc/collections/grid/items", headers=h).json()["features"])
    assert grids == [a.code for a in world.areas["grid"] if a.code.startswith(world.s1)] and grids
    other = next(a.code for a in world.areas["grid"] if a.code.startswith(world.s2))
    assert c.get(f"/ogc/collections/grid/items/{other}", headers=h).status_code == 404
    assert c.get(f"/ogc/collections/grid/items/{grids[0]}", headers=h).status_code == 200
    assert c.get("/ogc/collections/grid/items").status_code == 401
    s1_box = shapely.bounds(
        shapely.union_all([to_shape(a.geom) for a in world.areas["grid"] if a.code.startswith(world.s1)])
    ).tolist()
    grid_col = c.get("/ogc/collections/grid", headers=h).json()
    assert grid_col["extent"]["spatial"]["bbox"][0] == pytest.approx(s1_box, abs=1e-9)


# -- GDAL's OAPIF driver against a real server ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(world):
    port = _free_port()
    env = {
        **os.environ,
        "GRIDMAP_DATABASE_URL": world.url,
        "GRIDMAP_GATEWAY_SECRET": "",
        "GRIDMAP_ESCALATION_INTERVAL_S": "3600",
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "gridmap_api.main:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180  # start-up migrates and builds the index: slow on a loaded 2-core machine
        while True:
            try:
                urllib.request.urlopen(base + "/login", timeout=5)
                break
            except OSError:
                if proc.poll() is not None:
                    pytest.fail(f"the server exited with {proc.returncode} before answering")
                if time.monotonic() > deadline:
                    pytest.fail("the server did not answer within 180 s")
                time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        proc.wait(10)


def _gdal_as(world, headers: dict):
    """GDAL sends these headers with every request (GDAL_HTTP_HEADER_FILE: the OAPIF driver passes its own Accept
    header, which replaces GDAL_HTTP_HEADERS, but a header file is added to it)."""
    import pyogrio

    path = world.tmp / f"headers-{abs(hash(tuple(headers.items())))}.txt"
    path.write_text("".join(f"{k}: {v}\r\n" for k, v in headers.items()))
    pyogrio.set_gdal_config_options({"GDAL_HTTP_HEADER_FILE": str(path), "GDAL_HTTP_TIMEOUT": "30"})


def test_gdal_oapif_lists_the_collections_and_reads_every_grid(world, server):
    """pyogrio.list_layers("OAPIF:…/ogc") names the five levels; read_dataframe reads every grid with its code
    and Chinese name in CRS84, and every micro-grid through pages of five (`next` links); the worker's token gets
    its sub-district's grids only."""
    import pyogrio

    source = f"OAPIF:{server}/ogc"
    try:
        _gdal_as(world, world.key)
        layers = pyogrio.list_layers(source)
        assert [str(name) for name, _ in layers] == LEVELS
        grids = pyogrio.read_dataframe(source, layer="grid")
        assert grids["code"].tolist() == [a.code for a in world.areas["grid"]]
        assert grids["name"].tolist() == [a.name for a in world.areas["grid"]]
        assert grids.crs.to_epsg() == 4326 or "CRS84" in grids.crs.to_string()
        assert set(FIELDS) <= set(grids.columns)
        for code, geom in zip(grids["code"], grids.geometry):
            assert geom.equals(to_shape(next(a.geom for a in world.areas["grid"] if a.code == code)))
        micro = pyogrio.read_dataframe(source, layer="microgrid", PAGE_SIZE="5")
        assert micro["code"].tolist() == [a.code for a in world.areas["microgrid"]]
        _gdal_as(world, world.worker)
        mine = pyogrio.read_dataframe(source, layer="grid")
        assert mine["code"].tolist() == [a.code for a in world.areas["grid"] if a.code.startswith(world.s1)]
        _gdal_as(world, {"X-API-Key": "gmk_not_a_key"})
        with pytest.raises(Exception, match="401"):
            pyogrio.list_layers(source)
    finally:
        pyogrio.set_gdal_config_options({"GDAL_HTTP_HEADER_FILE": None, "GDAL_HTTP_TIMEOUT": None})
