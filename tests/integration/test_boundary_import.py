"""Importing a city's own boundaries (issue 13 §1) on both databases.

The files are made here from the small demo's leaves (24 micro-grids of 官渡区): GeoJSON, GeoPackage, a Shapefile zip
in GBK with its .cpg and one without .cpg read with encoding=GBK, KML, KMZ and CSV with WKT; a GeoPackage in GCJ-02
numbers labelled EPSG:4326. Each import is compared with the demo it came from (codes, Chinese names of leaves and
parents, households, outlines within a centimetre, or a metre for GCJ-02). A fresh, empty database is brought up
from a leaves-only file with `gridmap boundaries import --activate`, then locate, address matching and case intake
work on it. Hostile and broken files are refused with a 422 problem+json naming the file, the feature and the field
(the CLI: exit 2, the same message), and nothing is stored. GDAL writes the test files in a separate interpreter
(it crashes writing a GeoPackage where SpatiaLite is loaded, see gridmap.io.gpkg)."""

from __future__ import annotations

import contextlib
import io
import json
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely
import sqlalchemy as sa
from geoalchemy2.shape import to_shape

from gridmap import cli
from gridmap.geo.crs import wgs84_to_bd09, wgs84_to_gcj02
from gridmap.store import engine as storage
from gridmap.store.tables import Area, AuditEntry, CodeRegistry, Generation, Place
from gridmap_api.settings import Settings
from tests.conftest import _new_postgis_database, api_client

PLANNER = {"X-User": "p1", "X-Role": "planner"}
WORKER = {"X-User": "w1", "X-Role": "worker"}
DISPATCHER = {"X-User": "d1", "X-Role": "dispatcher"}
M_PER_DEG = 111_320.0  # degrees × this over-states a distance in longitude: a bound, not an estimate
WRITER = """
import json, sys
import geopandas as gpd, pyogrio
for src, dst, driver, opts in json.loads(sys.argv[1]):
    pyogrio.write_dataframe(gpd.read_parquet(src), dst, driver=driver, **opts)
"""


# -- the demo's leaves, and files made from them -------------------------------------------------------------------


def _demo(url: str) -> dict:
    """The active generation of a database: every area by code (level, name, parent, households, geometry)."""
    engine = storage.make_engine(url)
    with storage.make_sessionmaker(engine)() as s:
        gen = s.scalars(sa.select(Generation).where(Generation.status == "active")).one()
        rows = s.scalars(sa.select(Area).where(Area.generation_id == gen.id)).all()
        code_of = {a.id: a.code for a in rows}
        out = {
            a.code: {
                "level": a.level,
                "name": a.name,
                "parent": code_of.get(a.parent_id),
                "households": a.households,
                "population": a.population,
                "is_leaf": a.is_leaf,
                "geom": to_shape(a.geom),
            }
            for a in rows
        }
        buildings = s.execute(
            sa.select(Place.area_code, sa.func.sum(Place.households))
            .where(Place.kind == "building")
            .group_by(Place.area_code)
        ).all()
    engine.dispose()
    return {"generation_id": gen.id, "areas": out, "building_households": dict(buildings)}


def _leaves_frame(demo: dict, *, counts: bool = True, recode: str | None = None) -> gpd.GeoDataFrame:
    areas = demo["areas"]
    leaves = sorted(c for c, a in areas.items() if a["is_leaf"])
    data = {
        "网格编码": [recode + c[6:] if recode else c for c in leaves],
        "网格名称": [areas[c]["name"] for c in leaves],
        "所属街道": [areas[c[:9]]["name"] for c in leaves],
        "所属社区": [areas[c[:12]]["name"] for c in leaves],
    }
    if counts:
        data["户数"] = [areas[c]["households"] for c in leaves]
        data["人口"] = [areas[c]["population"] for c in leaves]
    return gpd.GeoDataFrame(data, geometry=[areas[c]["geom"] for c in leaves], crs="EPSG:4326")


def _write_all(jobs: list[tuple[gpd.GeoDataFrame, Path, str, dict]]) -> None:
    """Write frames with GDAL (one other interpreter for all of them): (frame, path, driver, options)."""
    args = []
    for i, (frame, path, driver, opts) in enumerate(jobs):
        src = path.parent / f".src{i}.parquet"
        frame.to_parquet(src, index=False)
        args.append([str(src), str(path), driver, opts])
    subprocess.run([sys.executable, "-c", WRITER, json.dumps(args)], check=True, capture_output=True)
    for src, *_ in args:
        Path(src).unlink()


def _write(frame: gpd.GeoDataFrame, path: Path, driver: str, **opts) -> Path:
    _write_all([(frame, path, driver, opts)])
    return path


def _zip(path: Path, members: dict[str, bytes | Path]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content in members.items():
            zf.writestr(name, content.read_bytes() if isinstance(content, Path) else content)
    return path


@pytest.fixture(scope="module")
def demo(fresh_db_url):
    return _demo(fresh_db_url)


@pytest.fixture(scope="module")
def files(demo, tmp_path_factory) -> dict[str, tuple[Path, dict]]:
    """Every format, made from the demo's leaves: name → (file, import options)."""
    tmp = tmp_path_factory.mktemp("formats")
    frame = _leaves_frame(demo)
    (tmp / "shp").mkdir()
    (tmp / "utf8").mkdir()
    _write_all(
        [
            (frame, tmp / "网格.geojson", "GeoJSON", {}),
            (frame, tmp / "网格.gpkg", "GPKG", {"layer": "微网格"}),
            (frame, tmp / "shp" / "网格.shp", "ESRI Shapefile", {"encoding": "GBK"}),
            (frame, tmp / "utf8" / "grids.shp", "ESRI Shapefile", {"encoding": "UTF-8"}),
            (frame, tmp / "网格.kml", "LIBKML", {}),
        ]
    )
    out = {"geojson": (tmp / "网格.geojson", {}), "gpkg": (tmp / "网格.gpkg", {})}
    shp = {ext: tmp / "shp" / f"网格.{ext}" for ext in ("shp", "shx", "dbf", "prj", "cpg")}
    dbf = shp["dbf"].read_bytes()
    assert "关上街道".encode("gbk") in dbf and "关上街道".encode() not in dbf  # really GBK
    assert shp["cpg"].read_text().strip().upper() == "GBK"
    out["shp_gbk_cpg"] = (_zip(tmp / "网格_cpg.zip", {f"网格/grids.{e}": p for e, p in shp.items()}), {})
    out["shp_gbk_encoding"] = (
        _zip(tmp / "网格_nocpg.zip", {f"grids.{e}": p for e, p in shp.items() if e != "cpg"}),
        {"encoding": "GBK"},
    )
    kml = tmp / "网格.kml"
    out["kml"] = (kml, {})
    out["kmz"] = (_zip(tmp / "网格.kmz", {"doc.kml": kml}), {})
    table = frame.drop(columns="geometry").assign(WKT=frame.geometry.to_wkt(rounding_precision=-1))
    csv_path = tmp / "网格.csv"
    csv_path.write_bytes(table.to_csv(index=False).encode("gb18030"))  # as Excel in China saves it
    out["csv"] = (csv_path, {})
    # not importable: GDAL cuts UTF-8 column names at 10 bytes, in the middle of 网格编码's fourth character
    out["_utf8_cut_names"] = (_zip(tmp / "utf8.zip", {p.name: p for p in (tmp / "utf8").iterdir()}), {})
    return out


def _post(client, path: Path, options: dict | None = None, headers=PLANNER, filename: str | None = None):
    return client.post(
        "/api/v1/generations/import",
        headers=headers,
        data=options or {},
        files={"file": (filename or path.name, path.read_bytes(), "application/octet-stream")},
    )


def _stored(client, generation_id: int) -> dict:
    with client.app.state.sessionmaker() as s:
        rows = s.scalars(sa.select(Area).where(Area.generation_id == generation_id)).all()
        code_of = {a.id: a.code for a in rows}
        return {
            a.code: {
                "level": a.level,
                "name": a.name,
                "parent": code_of.get(a.parent_id),
                "households": a.households,
                "population": a.population,
                "is_leaf": a.is_leaf,
                "area_m2": a.area_m2,
                "geom": to_shape(a.geom),
            }
            for a in rows
        }


def _rows(sessionmaker) -> tuple[int, int, int, int]:
    """Generations, areas, registered codes, and audit rows of those or of an import (the app's own sweeper of
    overdue cases may write others meanwhile)."""
    with sessionmaker() as s:
        audit = s.scalar(
            sa.select(sa.func.count())
            .select_from(AuditEntry)
            .where(
                sa.or_(
                    AuditEntry.target.in_(("generation", "area", "code_registry")),
                    AuditEntry.action == "boundary_import",
                )
            )
        )
        return (*(s.scalar(sa.select(sa.func.count()).select_from(t)) for t in (Generation, Area, CodeRegistry)), audit)


def _gap_m(a, b) -> float:
    return shapely.hausdorff_distance(a, b) * M_PER_DEG


# -- every format --------------------------------------------------------------------------------------------------

FORMATS = ["geojson", "gpkg", "shp_gbk_cpg", "shp_gbk_encoding", "kml", "kmz", "csv"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_imports_the_demo_leaves(client, demo, files, fmt):
    """A leaves-only file of each format gives back the demo's hierarchy: the same codes per level, the leaves'
    and parents' Chinese names (所属街道/所属社区 columns; the district's from the divisions dataset), households
    and population, and outlines within a centimetre; the draft is a copy of the active generation with the
    district replaced, and it checks without errors."""
    path, options = files[fmt]
    r = _post(client, path, {**options, "name": f"导入 {fmt}"})
    assert r.status_code == 201, r.text
    summary = r.json()
    assert r.headers["location"] == f"/api/v1/generations/{summary['generation_id']}"
    want = demo["areas"]
    per_level = {
        lv: sum(a["level"] == lv for a in want.values())
        for lv in ("district", "subdistrict", "community", "grid", "microgrid")
    }
    assert (
        summary["areas"] == per_level == {"district": 1, "subdistrict": 2, "community": 4, "grid": 10, "microgrid": 24}
    )
    assert (summary["status"], summary["name"], summary["base_id"]) == ("draft", f"导入 {fmt}", demo["generation_id"])
    assert summary["features"] == 24 and summary["districts"] == ["530111"] and summary["crs"] == "wgs84"
    assert summary["replaced"] == {"530111": len(want)}
    assert summary["check"]["ok"] is True and summary["check"]["errors"] == 0
    assert summary["households"] == want["530111"]["households"]
    got = _stored(client, summary["generation_id"])
    assert set(got) == set(want)
    for code, area in want.items():
        g = got[code]
        assert (g["level"], g["parent"], g["is_leaf"]) == (area["level"], area["parent"], area["is_leaf"]), code
        assert (g["households"], g["population"]) == (area["households"], area["population"]), code
        if area["level"] in ("microgrid", "community", "subdistrict", "district"):
            assert g["name"] == area["name"], code  # grids have no name column: they are named by code
        assert _gap_m(g["geom"], area["geom"]) < 0.01, code
    assert got["530111"]["name"] == "官渡区"
    district_m2 = got["530111"]["area_m2"]
    assert district_m2 == pytest.approx(sum(g["area_m2"] for g in got.values() if g["level"] == "microgrid"), rel=1e-6)
    with client.app.state.sessionmaker() as s:
        registered = set(s.scalars(sa.select(CodeRegistry.code).where(CodeRegistry.code.like("530111%"))))
    assert set(want) <= registered


def test_gcj02_geopackage_labelled_wgs84(client, demo, tmp_path):
    """A GeoPackage drawn on AMap says EPSG:4326 but holds GCJ-02 numbers: with crs=gcj02 every outline lands
    within a metre of the WGS84 original; read as it says, it would be hundreds of metres off."""
    frame = _leaves_frame(demo)
    frame = frame.set_geometry(
        shapely.transform(frame.geometry.values, lambda xy: np.column_stack(wgs84_to_gcj02(xy[:, 0], xy[:, 1])))
    )
    path = _write(frame.set_crs("EPSG:4326", allow_override=True), tmp_path / "amap.gpkg", "GPKG")
    r = _post(client, path, {"crs": "gcj02"})
    assert r.status_code == 201, r.text
    assert r.json()["crs"] == "gcj02" and r.json()["check"]["ok"]
    got = _stored(client, r.json()["generation_id"])
    worst = max(_gap_m(got[c]["geom"], a["geom"]) for c, a in demo["areas"].items())
    assert worst < 1.0
    as_labelled = _post(client, path)
    assert as_labelled.status_code == 201
    shifted = _stored(client, as_labelled.json()["generation_id"])
    assert min(_gap_m(shifted[c]["geom"], a["geom"]) for c, a in demo["areas"].items()) > 100


@pytest.mark.parametrize("system", ["bd09", "EPSG:4543"])
def test_other_coordinate_systems(client, demo, tmp_path, system):
    """Baidu numbers in a file labelled EPSG:4326, read with crs=bd09; a Shapefile in the CGCS2000 Gauss-Krüger
    zone of Kunming (EPSG:4543), its CRS taken from its .prj: both land within a metre of the original."""
    frame = _leaves_frame(demo)
    if system == "bd09":
        moved = shapely.transform(frame.geometry.values, lambda xy: np.column_stack(wgs84_to_bd09(xy[:, 0], xy[:, 1])))
        path = _write(
            frame.set_geometry(moved).set_crs("EPSG:4326", allow_override=True), tmp_path / "baidu.geojson", "GeoJSON"
        )
        r = _post(client, path, {"crs": "bd09"})
    else:
        folder = tmp_path / "gk"
        folder.mkdir()
        _write(frame.to_crs(4543), folder / "grids.shp", "ESRI Shapefile", encoding="GBK")
        path = _zip(tmp_path / "gk.zip", {p.name: p for p in folder.iterdir()})
        r = _post(client, path)
    assert r.status_code == 201, r.text
    assert r.json()["crs"] == ("bd09" if system == "bd09" else "EPSG:4543") and r.json()["check"]["ok"]
    got = _stored(client, r.json()["generation_id"])
    assert max(_gap_m(got[c]["geom"], a["geom"]) for c, a in demo["areas"].items()) < 1.0


def test_households_from_places_when_no_columns(client, demo, tmp_path):
    """Without 户数/人口 columns each leaf's households are the buildings inside it (point in polygon), which in
    the demo equal the households of the buildings filed under its code; parents are sums."""
    path = _write(_leaves_frame(demo, counts=False), tmp_path / "no_counts.geojson", "GeoJSON")
    r = _post(client, path)
    assert r.status_code == 201, r.text
    got = _stored(client, r.json()["generation_id"])
    by_code = demo["building_households"]
    for code, area in got.items():
        if area["level"] == "microgrid":
            assert area["households"] == by_code.get(code, 0) > 0, code
    assert got["530111"]["households"] == sum(by_code.values())


def test_worker_may_not_import(client, files):
    before = _rows(client.app.state.sessionmaker)
    r = _post(client, files["geojson"][0], headers=WORKER)
    assert r.status_code == 403, r.text
    assert _rows(client.app.state.sessionmaker) == before


# -- a fresh installation ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fresh_install(request, demo, fresh_db_url, tmp_path_factory):
    """An empty database of the module's kind, brought up with `gridmap init` and `gridmap boundaries import
    --activate` from a leaves-only file: the demo's leaves recoded to 五华区 (530102), a district no demo has."""
    tmp = tmp_path_factory.mktemp("install")
    if fresh_db_url.startswith("sqlite"):
        url, drop = f"sqlite:///{tmp / 'new.sqlite'}", (lambda: None)
    else:
        url, drop = _new_postgis_database()
    path = _write(_leaves_frame(demo, recode="530102"), tmp / "五华区网格.geojson", "GeoJSON")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli.main(["--database", url, "init"]) == 0
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = cli.main(
            [
                "--database",
                url,
                "boundaries",
                "import",
                str(path),
                "--activate",
                "2026-01-01",
                "--name",
                "五华区网格 2026",
            ]
        )
    assert rc == 0
    yield url, json.loads(out.getvalue())
    drop()


def test_fresh_install_from_a_leaves_only_file(fresh_install, demo):
    url, summary = fresh_install
    assert summary["status"] == "active" and summary["effective_from"] == "2026-01-01"
    assert summary["base_id"] is None and summary["replaced"] == {"530102": 0}
    assert summary["areas"] == {"district": 1, "subdistrict": 2, "community": 4, "grid": 10, "microgrid": 24}
    assert summary["check"]["ok"] is True
    engine = storage.make_engine(url)
    with storage.make_sessionmaker(engine)() as s:
        names = dict(
            s.execute(sa.select(Area.code, Area.name).where(Area.level.in_(("district", "subdistrict")))).all()
        )
        assert s.scalar(sa.select(sa.func.count()).select_from(Place)) == 0  # no demo
    engine.dispose()
    assert names == {"530102": "五华区", "530102001": "关上街道", "530102002": "太和街道"}


def test_locate_and_intake_work_on_the_fresh_install(fresh_install, demo):
    """With no demo loaded: the CLI and the API locate a point in the imported grids, a dispatcher's case is filed
    in the right grid, and the map serves the imported grids."""
    url, _ = fresh_install
    leaf = next(c for c, a in sorted(demo["areas"].items()) if a["is_leaf"])
    point = demo["areas"][leaf]["geom"].representative_point()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli.main(["--database", url, "locate", str(point.x), str(point.y)]) == 0
    chain = {a["level"]: a["code"] for a in json.loads(out.getvalue())["chain"]}
    assert chain["microgrid"] == "530102" + leaf[6:] and chain["district"] == "530102"
    with api_client(Settings(database_url=url)) as c:
        r = c.get("/api/v1/locate", params={"lon": point.x, "lat": point.y})
        assert r.status_code == 200, r.text
        assert r.json()["chain"][-1]["code"] == "530102" + leaf[6:]
        r = c.post("/api/v1/cases", headers=DISPATCHER, json={"title": "路灯不亮", "lon": point.x, "lat": point.y})
        assert r.status_code == 201, r.text
        case = r.json()
        assert case["grid_code"] == "530102" + leaf[6:15], case
        r = c.get("/api/v1/map/areas", params={"level": "grid", "zoom": 13})
        assert r.status_code == 200, r.text
        grids = {f["properties"]["code"] for f in r.json()["features"]}
        assert grids == {"530102" + c[6:] for c, a in demo["areas"].items() if a["level"] == "grid"}


def test_addresses_in_any_real_district(fresh_install):
    """The gazetteer knows the province and city of an imported district from the divisions dataset (it took them
    from the demo's list before, and refused 云南省昆明市五华区… as another area); an address in a district that is
    not loaded is still another area."""
    url, _ = fresh_install
    with api_client(Settings(database_url=url)) as c:

        def match(text):
            r = c.get("/api/v1/locate", params={"address": text})
            assert r.status_code == 200, r.text
            return r.json()["address_match"]

        ours = match("云南省昆明市五华区关上街道")
        assert (ours["reason"], ours["place"]["area_code"]) == ("subdistrict", "530102001"), ours
        assert match("昆明市五华区太和街道")["place"]["area_code"] == "530102002"
        assert match("云南昆明五华关上街道")["place"]["area_code"] == "530102001"
        for other in (
            "云南省昆明市官渡区关上街道",
            "北京市朝阳区关上街道",
            "红河哈尼族彝族自治州个旧市关上街道",
            "四川省成都市武侯区太和街道",
        ):
            assert match(other)["reason"] == "other_area", other


# -- hostile and broken files --------------------------------------------------------------------------------------


def _feature(code, geometry, **props) -> dict:
    return {"type": "Feature", "properties": {"网格编码": code, **props}, "geometry": geometry}


def _geojson(features) -> bytes:
    return json.dumps({"type": "FeatureCollection", "features": features}, ensure_ascii=False).encode()


SQUARE = {
    "type": "Polygon",
    "coordinates": [[[102.80, 25.00], [102.81, 25.00], [102.81, 25.01], [102.80, 25.01], [102.80, 25.00]]],
}
SQUARE2 = {
    "type": "Polygon",
    "coordinates": [[[102.81, 25.00], [102.82, 25.00], [102.82, 25.01], [102.81, 25.01], [102.81, 25.00]]],
}


def _hostile(tmp: Path, files: dict) -> dict[str, tuple[str, bytes, dict, str, list[str]]]:
    """name → (file name, content, options, the field named, words the message must hold)."""
    shp = {p.suffix[1:]: p for p in files["shp_gbk_cpg"][0].parent.glob("shp/*")}
    link = zipfile.ZipInfo("grids.shp")
    link.external_attr = 0o120777 << 16
    linked = io.BytesIO()
    with zipfile.ZipFile(linked, "w") as zf:
        zf.writestr(link, "/etc/passwd")
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("grids.shp", b"\0" * (20 * 2**20))
        zf.writestr("grids.shx", b"\0" * 100)
        zf.writestr("grids.dbf", b"\0" * 100)
    liar = io.BytesIO()  # a member that says it unpacks to 1,000 bytes and holds 3 MB
    with zipfile.ZipFile(liar, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("grids.shp", b"\0" * (3 * 2**20))
        zf.writestr("grids.shx", b"\0" * 100)
        zf.writestr("grids.dbf", b"\0" * 100)
    liar = bytearray(liar.getvalue())
    struct.pack_into("<I", liar, liar.find(b"PK\x01\x02") + 24, 1000)  # central directory: uncompressed size
    struct.pack_into("<I", liar, liar.find(b"PK\x03\x04") + 22, 1000)  # local header: the same
    traversal = io.BytesIO()
    with zipfile.ZipFile(traversal, "w") as zf:
        for ext in ("shp", "shx", "dbf"):
            zf.writestr(f"../../grids.{ext}", shp[ext].read_bytes())
    vrt = (
        b'<OGRVRTDataSource><OGRVRTLayer name="x"><SrcDataSource>/etc/passwd</SrcDataSource>'
        b"<GeometryType>wkbNone</GeometryType></OGRVRTLayer></OGRVRTDataSource>"
    )
    xxe = (
        b'<?xml version="1.0"?><!DOCTYPE kml [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b'<kml xmlns="http://www.opengis.net/kml/2.2"><Placemark><name>&x;</name></Placemark></kml>'
    )
    gpkg = files["gpkg"][0].read_bytes()
    many = shapely.segmentize(shapely.geometry.shape(SQUARE), 0.0001)  # 400 vertices
    prj = 'LOCAL_CS["my city grid",LOCAL_DATUM["local",0],UNIT["metre",1],AXIS["X",EAST],AXIS["Y",NORTH]]'
    local = io.BytesIO()
    with zipfile.ZipFile(local, "w") as zf:
        for ext in ("shp", "shx", "dbf", "cpg"):
            zf.writestr(f"grids.{ext}", shp[ext].read_bytes())
        zf.writestr("grids.prj", prj)
    leaf = "53011100100100101"
    return {
        "zip_traversal": ("网格.zip", traversal.getvalue(), {}, "file", ["网格.zip", "unsafe", ".."]),
        "zip_symlink": ("网格.zip", linked.getvalue(), {}, "file", ["网格.zip", "link"]),
        "zip_bomb": ("网格.zip", bomb.getvalue(), {}, "file", ["网格.zip", "archive_too_large"]),
        "zip_lying_sizes": ("网格.zip", bytes(liar), {}, "file", ["网格.zip", "grids.shp", "cannot be unpacked"]),
        "vrt_as_geojson": ("网格.geojson", vrt, {}, "file", ["网格.geojson", "XML"]),
        "gpkg_as_geojson": ("网格.geojson", gpkg, {}, "file", ["网格.geojson", "GeoPackage"]),
        "kml_with_entities": ("网格.kml", xxe, {}, "file", ["网格.kml", "DTD"]),
        "too_large": (
            "网格.geojson",
            _geojson([_feature(leaf, SQUARE)]) + b" " * 250_000,
            {},
            "file",
            ["网格.geojson", "GRIDMAP_IMPORT_MAX_BYTES"],
        ),
        "too_many_vertices": (
            "网格.geojson",
            _geojson([_feature(leaf, shapely.geometry.mapping(many))]),
            {},
            "geometry",
            ["网格.geojson", "feature 1", leaf, "GRIDMAP_IMPORT_MAX_VERTICES"],
        ),
        "unknown_crs_option": (
            "网格.geojson",
            _geojson([_feature(leaf, SQUARE)]),
            {"crs": "EPSG:999999"},
            "crs",
            ["网格.geojson", "999999"],
        ),
        "unknown_crs_in_file": ("网格.zip", local.getvalue(), {}, "crs", ["网格.zip", "my city grid"]),
        "projected_numbers_as_wgs84": (
            "网格.geojson",
            _geojson(
                [
                    _feature(
                        leaf,
                        {
                            "type": "Polygon",
                            "coordinates": [
                                [[500000, 2770000], [501000, 2770000], [501000, 2771000], [500000, 2770000]]
                            ],
                        },
                    )
                ]
            ),
            {},
            "crs",
            ["网格.geojson", "feature 1", "projected"],
        ),
        "duplicate_codes": (
            "网格.geojson",
            _geojson([_feature(leaf, SQUARE), _feature(leaf, SQUARE2)]),
            {},
            "网格编码",
            ["网格.geojson", "feature 2", leaf, "duplicate", "feature 1"],
        ),
        "not_a_polygon": (
            "网格.geojson",
            _geojson(
                [
                    _feature(leaf, SQUARE),
                    _feature(
                        "53011100100100102", {"type": "LineString", "coordinates": [[102.8, 25.0], [102.9, 25.1]]}
                    ),
                ]
            ),
            {},
            "geometry",
            ["网格.geojson", "feature 2", "53011100100100102", "LineString"],
        ),
        "bad_code": (
            "网格.geojson",
            _geojson([_feature(leaf, SQUARE), _feature("5301110010010010X", SQUARE2)]),
            {},
            "网格编码",
            ["网格.geojson", "feature 2", "5301110010010010X", "DB11"],
        ),
        "code_of_16_digits": (
            "网格.geojson",
            _geojson([_feature("5301110010010010", SQUARE)]),
            {},
            "网格编码",
            ["feature 1", "5301110010010010", "DB11"],
        ),
        "bow_tie": (
            "网格.geojson",
            _geojson(
                [
                    _feature(
                        leaf,
                        {
                            "type": "Polygon",
                            "coordinates": [
                                [[102.80, 25.00], [102.81, 25.01], [102.81, 25.00], [102.80, 25.01], [102.80, 25.00]]
                            ],
                        },
                    )
                ]
            ),
            {},
            "geometry",
            ["feature 1", leaf, "Self-intersection"],
        ),
        "no_code_column": (
            "网格.geojson",
            _geojson([{"type": "Feature", "properties": {"名字": "x"}, "geometry": SQUARE}]),
            {},
            "code-field",
            ["名字"],
        ),
        "households_not_a_number": (
            "网格.geojson",
            _geojson([_feature(leaf, SQUARE, 户数="很多")]),
            {},
            "户数",
            ["feature 1", leaf, "很多"],
        ),
        "unsupported_type": ("网格.dxf", b"0\nSECTION\n", {}, "file", ["网格.dxf", ".kmz"]),
        "truncated_geojson": (
            "网格.geojson",
            b'{"type": "FeatureCollection", "features": [{"type": "Feat',
            {},
            "file",
            ["网格.geojson", "cannot be read as GeoJSON"],
        ),
        "utf8_shapefile_cut_names": (
            "网格.zip",
            files["_utf8_cut_names"][0].read_bytes(),
            {},
            "encoding",
            ["网格.zip", "10 bytes", "GBK"],
        ),
    }


HOSTILE = [
    "zip_traversal",
    "zip_symlink",
    "zip_bomb",
    "zip_lying_sizes",
    "vrt_as_geojson",
    "gpkg_as_geojson",
    "kml_with_entities",
    "too_large",
    "too_many_vertices",
    "unknown_crs_option",
    "unknown_crs_in_file",
    "projected_numbers_as_wgs84",
    "duplicate_codes",
    "not_a_polygon",
    "bad_code",
    "code_of_16_digits",
    "bow_tie",
    "no_code_column",
    "households_not_a_number",
    "unsupported_type",
    "truncated_geojson",
    "utf8_shapefile_cut_names",
]
LIMITS = {"import_max_bytes": 200_000, "import_max_vertices": 300}


@pytest.fixture(scope="module")
def strict_client(fresh_db_url):
    with api_client(Settings(database_url=fresh_db_url, **LIMITS)) as c:
        yield c


@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_files_are_refused_and_nothing_is_stored(
    strict_client, files, fresh_db_url, tmp_path, monkeypatch, case, capsys
):
    name, content, options, field, words = _hostile(tmp_path, files)[case]
    before = _rows(strict_client.app.state.sessionmaker)
    r = strict_client.post(
        "/api/v1/generations/import",
        headers=PLANNER,
        data=options,
        files={"file": (name, content, "application/octet-stream")},
    )
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    problem = r.json()
    assert problem["field"] == field, problem
    for word in words:
        assert word in problem["detail"], (word, problem["detail"])
    assert f"field {field}" in problem["detail"]
    zh = strict_client.post(
        "/api/v1/generations/import",
        headers={**PLANNER, "Accept-Language": "zh-CN"},
        data=options,
        files={"file": (name, content, "application/octet-stream")},
    ).json()
    assert zh["field"] == field and f"字段 {field}" in zh["detail"] and f"field {field}" not in zh["detail"], zh
    assert _rows(strict_client.app.state.sessionmaker) == before
    if not fresh_db_url.startswith("sqlite"):
        return  # the CLI's refusal does not depend on the database: once is enough
    # the CLI: exit 2 and the same message on standard error, nothing stored
    path = tmp_path / name
    path.write_bytes(content)
    monkeypatch.setenv("GRIDMAP_IMPORT_MAX_BYTES", str(LIMITS["import_max_bytes"]))
    monkeypatch.setenv("GRIDMAP_IMPORT_MAX_VERTICES", str(LIMITS["import_max_vertices"]))
    args = [f"--{k.replace('_', '-')}={v}" for k, v in options.items()]
    capsys.readouterr()
    assert cli.main(["--database", fresh_db_url, "boundaries", "import", str(path), *args]) == 2
    assert capsys.readouterr().err.strip() == f"gridmap: {problem['detail']}"
    assert _rows(strict_client.app.state.sessionmaker) == before


def test_a_file_with_several_layers_needs_one_named(client, demo, tmp_path):
    """A GeoPackage with two layers is refused until `layer` names one; naming it imports that layer."""
    path = tmp_path / "two.gpkg"
    frame = _leaves_frame(demo)
    _write_all(
        [(frame, path, "GPKG", {"layer": "微网格"}), (frame.iloc[:1], path, "GPKG", {"layer": "其他", "append": True})]
    )
    r = _post(client, path)
    assert r.status_code == 422 and r.json()["field"] == "layer" and "微网格" in r.json()["detail"], r.text
    r = _post(client, path, {"layer": "微网格"})
    assert r.status_code == 201, r.text
    assert r.json()["areas"]["microgrid"] == 24


def test_another_district_is_added_beside_the_active_ones(client, demo, tmp_path):
    """Importing a district the active generation does not have: the draft holds the active generation's areas
    unchanged plus the new district's."""
    frame = _leaves_frame(demo, recode="530102")
    frame = frame.set_geometry(frame.geometry.translate(xoff=0.5))
    r = _post(client, _write(frame, tmp_path / "五华区.geojson", "GeoJSON"))
    assert r.status_code == 201, r.text
    assert r.json()["replaced"] == {"530102": 0} and r.json()["districts"] == ["530102"]
    got = _stored(client, r.json()["generation_id"])
    kept = {c: a for c, a in got.items() if c.startswith("530111")}
    assert set(kept) == set(demo["areas"])
    for code, area in demo["areas"].items():
        assert kept[code]["geom"].equals_exact(area["geom"], 0) and kept[code]["name"] == area["name"], code
    assert sum(c.startswith("530102") for c in got) == len(demo["areas"])
    assert got["530102"]["name"] == "五华区" and got["530102"]["parent"] is None


def test_parents_in_the_file_and_the_level_option(client, demo, tmp_path):
    """A file of grids (leaves here: no micro-grids) with its communities: the communities take their names from
    their features and their outlines from their grids; with level=grid a micro-grid code is refused."""
    areas = demo["areas"]
    grids = sorted(c for c, a in areas.items() if a["level"] == "grid")
    communities = sorted(c for c, a in areas.items() if a["level"] == "community")
    features = [_feature(c, shapely.geometry.mapping(areas[c]["geom"]), 网格名称=areas[c]["name"]) for c in grids]
    features += [_feature(c, SQUARE, 网格名称=f"社区{i}") for i, c in enumerate(communities)]  # outline not used
    path = tmp_path / "grids.geojson"
    path.write_bytes(_geojson(features))
    r = _post(client, path, {"level": "grid"})
    assert r.status_code == 201, r.text
    assert r.json()["areas"] == {"district": 1, "subdistrict": 2, "community": 4, "grid": 10, "microgrid": 0}
    got = _stored(client, r.json()["generation_id"])
    for i, c in enumerate(communities):
        assert got[c]["name"] == f"社区{i}"
        assert _gap_m(got[c]["geom"], areas[c]["geom"]) < 0.01
    assert all(got[c]["is_leaf"] and got[c]["name"] == areas[c]["name"] for c in grids)
    leaf = next(c for c, a in areas.items() if a["level"] == "microgrid")
    path.write_bytes(_geojson(features + [_feature(leaf, SQUARE2)]))
    before = _rows(client.app.state.sessionmaker)
    r = _post(client, path, {"level": "grid"})
    assert r.status_code == 422 and r.json()["field"] == "网格编码" and leaf in r.json()["detail"], r.text
    assert _rows(client.app.state.sessionmaker) == before


def test_parent_files_given_beside_the_leaves(client, demo, tmp_path):
    """Leaves in one file, their communities and sub-districts (for the names) in another, sent as two `file`
    parts; a code in both files is refused naming both."""
    areas = demo["areas"]
    leaves = sorted(c for c, a in areas.items() if a["is_leaf"])
    parents = sorted(c for c, a in areas.items() if a["level"] in ("subdistrict", "community"))
    leaf_file = tmp_path / "微网格.geojson"
    leaf_file.write_bytes(_geojson([_feature(c, shapely.geometry.mapping(areas[c]["geom"])) for c in leaves]))
    parent_file = tmp_path / "社区.geojson"
    parent_file.write_bytes(
        _geojson([_feature(c, shapely.geometry.mapping(areas[c]["geom"]), 名称=areas[c]["name"]) for c in parents])
    )
    parts = [("file", (p.name, p.read_bytes(), "application/geo+json")) for p in (leaf_file, parent_file)]
    r = client.post("/api/v1/generations/import", headers=PLANNER, files=parts)
    assert r.status_code == 201, r.text
    assert r.json()["file"] == "微网格.geojson, 社区.geojson" and r.json()["features"] == len(leaves) + len(parents)
    got = _stored(client, r.json()["generation_id"])
    assert {c: got[c]["name"] for c in parents} == {c: areas[c]["name"] for c in parents}
    assert sum(a["level"] == "microgrid" for a in got.values()) == len(leaves)
    parent_file.write_bytes(_geojson([_feature(leaves[3], SQUARE)]))
    before = _rows(client.app.state.sessionmaker)
    parts = [("file", (p.name, p.read_bytes(), "application/geo+json")) for p in (leaf_file, parent_file)]
    r = client.post("/api/v1/generations/import", headers=PLANNER, files=parts)
    assert r.status_code == 422, r.text
    for word in ("社区.geojson", "feature 1", leaves[3], "微网格.geojson", "feature 4", "duplicate"):
        assert word in r.json()["detail"], (word, r.json()["detail"])
    assert _rows(client.app.state.sessionmaker) == before


def test_boundaries_with_errors_are_not_activated(client, fresh_db_url, tmp_path, capsys):
    """Nine leaves whose middle one leaves a 0.5 m crack around itself: imported as a draft the check reports the
    gap and the hole; with --activate nothing is activated or stored (exit 2, the errors named)."""
    features = []
    for n, (i, j) in enumerate(((i, j) for i in range(3) for j in range(3)), start=1):
        x, y, d = 102.80 + i * 0.01, 25.0 + j * 0.01, 5e-6 if (i, j) == (1, 1) else 0.0
        features.append(
            _feature(
                f"5301110010010010{n}",
                {
                    "type": "Polygon",
                    "coordinates": [
                        [
                            [x + d, y + d],
                            [x + 0.01 - d, y + d],
                            [x + 0.01 - d, y + 0.01 - d],
                            [x + d, y + 0.01 - d],
                            [x + d, y + d],
                        ]
                    ],
                },
            )
        )
    path = tmp_path / "crack.geojson"
    path.write_bytes(_geojson(features))
    before = _rows(client.app.state.sessionmaker)
    capsys.readouterr()
    assert cli.main(["--database", fresh_db_url, "boundaries", "import", str(path), "--activate", "2026-11-21"]) == 2
    err = capsys.readouterr().err
    assert "activate" in err and "gap 1" in err and "hole 1" in err, err
    assert _rows(client.app.state.sessionmaker) == before
    assert cli.main(["--database", fresh_db_url, "boundaries", "import", str(path)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["status"] == "draft" and summary["check"]["ok"] is False
    assert summary["check"]["counts"]["gap"] == 1 and summary["check"]["counts"]["hole"] == 1
