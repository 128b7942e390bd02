"""Vector tiles (issue 15 §5), on both databases: a tile decodes (mapbox_vector_tile.decode) to the features the
GeoJSON map endpoints give for the same place — the same codes and ids, the same properties, the geometry equal
within the tile's quantisation —; ST_AsMVT (PostGIS) and the Python encoder agree; empty tiles; z/x/y and layer
checked at the edge; ETag and 304; the cases layer scoped by the caller's areas; area tiles never shared between
callers of different areas, and a new generation never served from old tiles.

The expected tile geometry is computed here independently of gridmap.views.tiles: pyproj for EPSG:4326 → 3857 and the
XYZ tile arithmetic written out again."""

from __future__ import annotations

import datetime as dt
import math

import mapbox_vector_tile
import numpy as np
import pytest
import shapely
import sqlalchemy as sa
from geoalchemy2.shape import to_shape
from pyproj import Transformer
from shapely.geometry import shape

from gridmap.boundaries.areas import active_generation
from gridmap.store.tables import LEVELS, Area, Case, Generation
from gridmap.views import mapdata, tiles

MVT = "application/vnd.mapbox-vector-tile"
HALF_WORLD = 20037508.342789244
TO_3857 = Transformer.from_crs(4326, 3857, always_xy=True)
TO_4326 = Transformer.from_crs(3857, 4326, always_xy=True)
ZOOM_OF = {"district": 10, "subdistrict": 11, "community": 12, "grid": 13, "microgrid": 14}
PLANNER = {"X-User": "planner-1", "X-Role": "planner"}
APPROVER = {"X-User": "approver-1", "X-Role": "approver"}


@pytest.fixture(scope="module")
def subdistricts(client):
    fc = client.get("/api/v1/map/areas", params={"level": "subdistrict", "zoom": 12}).json()
    return sorted(f["properties"]["code"] for f in fc["features"])


# -- the tile arithmetic, written out again ----------------------------------------------------------------------


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int, int]:
    n = 2**z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return z, x, y


def envelope(z: int, x: int, y: int, buffer_units: float = 0) -> tuple[float, float, float, float]:
    size = 2 * HALF_WORLD / 2**z
    pad = size * buffer_units / 4096
    return (
        -HALF_WORLD + x * size - pad,
        HALF_WORLD - (y + 1) * size - pad,
        -HALF_WORLD + (x + 1) * size + pad,
        HALF_WORLD - y * size + pad,
    )


def lonlat_box(z, x, y, buffer_units=0) -> str:
    minx, miny, maxx, maxy = envelope(z, x, y, buffer_units)
    (lon0, lon1), (lat0, lat1) = TO_4326.transform([minx, maxx], [miny, maxy])
    return f"{lon0:.9f},{lat0:.9f},{lon1:.9f},{lat1:.9f}"


def in_tile_units(geom, z, x, y):
    """A lon/lat geometry in tile units as mapbox_vector_tile.decode gives them (y up, 0–4096 across the tile)."""
    minx, miny, maxx, maxy = envelope(z, x, y)
    scale = 4096 / (maxx - minx)

    def move(xy):
        mx, my = TO_3857.transform(xy[:, 0], xy[:, 1])
        return np.column_stack(((np.asarray(mx) - minx) * scale, (np.asarray(my) - miny) * scale))

    return shapely.transform(geom, move)


def decoded(body: bytes, layer: str) -> dict:
    """Features of a layer by code (areas) or id (cases)."""
    features = mapbox_vector_tile.decode(body).get(layer, {}).get("features", [])
    key = (lambda f: f["id"]) if layer == "cases" else (lambda f: f["properties"]["code"])
    out = {key(f): f for f in features}
    assert len(out) == len(features), "a feature appears twice in the tile"
    return out


def get_tile(client, layer, z, x, y, **kw):
    r = client.get(f"/api/v1/tiles/{layer}/{z}/{x}/{y}.mvt", **kw)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == MVT
    return r


# -- areas ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("level", LEVELS)
def test_an_area_tile_holds_the_features_of_the_geojson_endpoint(client, level):
    full = client.get("/api/v1/map/areas", params={"level": level, "zoom": 17}).json()["features"]
    first = full[len(full) // 2]
    z, x, y = tile_of(*first["properties"]["label"], ZOOM_OF[level])
    body = get_tile(client, level, z, x, y).content
    got = decoded(body, level)
    # the GeoJSON endpoint for the same place: the tile and its 64-unit buffer, drawn at full detail
    same = client.get("/api/v1/map/areas", params={"level": level, "zoom": 17, "bbox": lonlat_box(z, x, y, 64)}).json()[
        "features"
    ]
    expected = {f["properties"]["code"]: f for f in same}
    assert first["properties"]["code"] in got
    assert set(got) <= set(expected)
    buffered = shapely.box(-64, -64, 4096 + 64, 4096 + 64)
    for code, feature in expected.items():
        clipped = in_tile_units(shape(feature["geometry"]), z, x, y).intersection(buffered)
        if clipped.area >= 4:  # more than a sliver of the buffer: it must be drawn
            assert code in got, f"{code} ({clipped.area:.1f} units²) is missing from the tile"
        if code not in got:
            continue
        props = feature["properties"]
        tile_props = got[code]["properties"]
        assert tile_props == {
            "code": props["code"],
            "name": props["name"],
            "level": props["level"],
            **({"parent_code": props["parent_code"]} if props["parent_code"] else {}),
            "label_lon": props["label"][0],
            "label_lat": props["label"][1],
        }
        drawn = shape(got[code]["geometry"])
        assert drawn.geom_type in ("Polygon", "MultiPolygon")
        # snapping each vertex to whole units moves an edge by at most about half a unit: the area, and the area
        # where the two differ, by about half the perimeter
        assert abs(drawn.area - clipped.area) <= 0.5 * clipped.length + 1, (code, drawn.area, clipped.area)
        assert shapely.make_valid(drawn).symmetric_difference(clipped).area <= 0.75 * clipped.length + 2, code
        if clipped.area > 10_000:  # (a sliver's centroid moves along the tile edge it nearly runs along)
            assert drawn.centroid.distance(clipped.centroid) <= 1.5, code


def test_postgis_and_python_draw_the_same_tiles(client):
    """On PostGIS, ST_AsMVT's tile and the Python encoder's decode to the same codes, properties and shapes (on
    SpatiaLite there is one engine, and the test above compares it with GeoJSON)."""
    sm = client.app.state.sessionmaker
    with sm() as session:
        engines = ["postgis", "python"] if session.get_bind().dialect.name == "postgresql" else ["python"]
        shapes = mapdata.AreaShapes.from_session(session, active_generation(session).id)
        for level in ("subdistrict", "microgrid"):
            data = shapes.level(level)
            assert data is not None
            code, label = data.codes[0], data.props[0]["label"]
            for z in (8, ZOOM_OF[level], 16):
                bodies = {e: tiles.area_tile(session, shapes, level, *tile_of(*label, z), engine=e) for e in engines}
                layers = {e: decoded(b, level) for e, b in bodies.items()}
                assert code in layers["python"]
                reference = layers[engines[0]]
                for e, layer in layers.items():
                    assert set(layer) == set(reference), (e, z)
                    for c, f in layer.items():
                        assert f["properties"] == reference[c]["properties"]
                        a, b = shape(f["geometry"]), shape(reference[c]["geometry"])
                        assert abs(a.area - b.area) <= 0.01 * b.area + 0.5 * b.length, (e, z, c)


def test_an_empty_tile_is_empty_and_decodes_to_nothing(client, subdistricts):
    r = get_tile(client, "grid", 10, 0, 0)  # the middle of the Pacific
    assert r.content == b"" and mapbox_vector_tile.decode(r.content) == {}
    r = get_tile(client, "cases", 10, 0, 0)
    assert r.content == b""
    # a caller acting for no area of this demo sees no outline and no case where they lie
    full = client.get("/api/v1/map/areas", params={"level": "grid", "zoom": 17}).json()["features"]
    z, x, y = tile_of(*full[0]["properties"]["label"], 13)
    assert decoded(get_tile(client, "grid", z, x, y).content, "grid")
    elsewhere = {"X-Role": "viewer", "X-Areas": "110101"}
    assert get_tile(client, "grid", z, x, y, headers=elsewhere).content == b""
    assert get_tile(client, "cases", z, x, y, headers={**elsewhere, "X-Role": "dispatcher"}).content == b""


@pytest.mark.parametrize(
    "path, field",
    [
        ("grid/23/0/0", "z"),
        ("grid/-1/0/0", "z"),
        ("grid/3/8/0", "x"),
        ("grid/3/0/8", "y"),
        ("grid/0/0/1", "y"),
        ("grid/3/-1/0", "x"),
        ("grid/3/0/99999999999999999999999", "y"),
        ("grid/x/0/0", "z"),
        ("nope/3/0/0", "layer"),
        ("cases/3/9/0", "x"),
        ("cases/9/400/200", "z"),
    ],
)  # case tiles start at z10: further out, the clusters
def test_out_of_range_tiles_are_4xx_naming_the_field(client, path, field):
    r = client.get(f"/api/v1/tiles/{path}.mvt")
    assert 400 <= r.status_code < 500 and r.headers["content-type"].startswith("application/problem+json"), r.text
    assert r.json()["field"] == field
    r = client.get("/api/v1/tiles/nope/tilejson.json")
    assert r.status_code == 422 and r.json()["field"] == "layer"


def test_etag_and_304(client, subdistricts):
    full = client.get("/api/v1/map/areas", params={"level": "community", "zoom": 17}).json()["features"]
    z, x, y = tile_of(*full[0]["properties"]["label"], 12)
    first = get_tile(client, "community", z, x, y)
    etag = first.headers["etag"]
    assert etag.startswith('"') and not etag.startswith("W/") and first.content
    again = client.get(f"/api/v1/tiles/community/{z}/{x}/{y}.mvt", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    assert get_tile(client, "community", z, x, y).content == first.content  # the same bytes (the tag is strong)
    stale = client.get(f"/api/v1/tiles/community/{z}/{x}/{y}.mvt", headers={"If-None-Match": '"0000"'})
    assert stale.status_code == 200 and stale.content == first.content
    # another caller's areas: another tag, and the 304 of the first does not apply
    scoped = {"X-Role": "viewer", "X-Areas": subdistricts[1]}
    other = client.get(f"/api/v1/tiles/community/{z}/{x}/{y}.mvt", headers={**scoped, "If-None-Match": etag})
    assert other.status_code == 200 and other.headers["etag"] != etag
    # the cases layer: validated by content
    cases = get_tile(client, "cases", z, x, y)
    assert cases.content
    assert (
        client.get(f"/api/v1/tiles/cases/{z}/{x}/{y}.mvt", headers={"If-None-Match": cases.headers["etag"]}).status_code
        == 304
    )


def test_area_tiles_are_not_shared_between_callers_of_different_areas(client, subdistricts):
    s1, s2 = subdistricts[:2]
    shapes = client.get("/api/v1/map/areas", params={"level": "subdistrict", "zoom": 17}).json()["features"]
    one = next(f for f in shapes if f["properties"]["code"] == s1)
    z, x, y = tile_of(*one["properties"]["label"], 8)
    everyone = decoded(get_tile(client, "subdistrict", z, x, y).content, "subdistrict")
    assert {s1, s2} <= set(everyone)  # both sub-districts meet this tile
    for mine, theirs in ((s1, s2), (s2, s1), (s1, s2)):  # and back again: a cached tile is not handed across
        for role in ("viewer", "dispatcher"):
            seen = decoded(
                get_tile(client, "subdistrict", z, x, y, headers={"X-Role": role, "X-Areas": mine}).content,
                "subdistrict",
            )
            geojson = client.get(
                "/api/v1/map/areas",
                headers={"X-Role": role, "X-Areas": mine},
                params={"level": "subdistrict", "zoom": 17, "bbox": lonlat_box(z, x, y, 64)},
            ).json()["features"]
            assert mine in seen and theirs not in seen
            assert set(seen) == {f["properties"]["code"] for f in geojson}


# -- cases ---------------------------------------------------------------------------------------------------------


def _case_tile_and_points(client, z, x, y, headers=None, **params):
    body = get_tile(client, "cases", z, x, y, headers=headers or {}, params=params).content
    points = client.get(
        "/api/v1/map/cases", headers=headers or {}, params={"bbox": lonlat_box(z, x, y, 64), **params}
    ).json()
    rows = {r[0]: dict(zip(points["fields"], r)) for r in points["rows"]}
    return decoded(body, "cases"), rows


def test_the_cases_layer_holds_the_points_of_the_geojson_endpoint(client):
    everything = client.get("/api/v1/map/cases").json()
    lon, lat = everything["rows"][0][1:3]
    for z in (11, 14):
        z, x, y = tile_of(lon, lat, z)
        got, rows = _case_tile_and_points(client, z, x, y)
        assert got and set(got) == set(rows)
        for cid, feature in got.items():
            row = rows[cid]
            assert feature["properties"] == {
                k: row[k] for k in ("id", "state", "clock", "category", "source", "reported_at") if row[k] is not None
            }
            px, py = feature["geometry"]["coordinates"]
            expected = in_tile_units(shapely.Point(row["lon"], row["lat"]), z, x, y)
            assert abs(px - expected.x) <= 0.51 and abs(py - expected.y) <= 0.51
    # the map's filters apply to the layer
    got, rows = _case_tile_and_points(client, z, x, y, state="closed")
    assert set(got) == set(rows) and {f["properties"]["state"] for f in got.values()} <= {"closed"}


def test_the_cases_layer_is_scoped_by_the_callers_areas(client, subdistricts):
    s1, s2 = subdistricts[:2]
    sm = client.app.state.sessionmaker
    from gridmap.store.tables import Case

    with sm() as session:
        lon, lat = session.execute(
            sa.select(Case.lon, Case.lat).where(Case.subdistrict_code == s1).order_by(Case.id).limit(1)
        ).one()
    z, x, y = tile_of(lon, lat, 10)  # the lowest zoom of case tiles
    everything, _ = _case_tile_and_points(client, z, x, y)
    with sm() as session:
        where = dict(
            session.execute(sa.select(Case.id, Case.subdistrict_code).where(Case.id.in_(list(everything)))).all()
        )
    assert {s1, s2} <= set(where.values()), "the tile should hold cases of both sub-districts"
    for mine in (s1, s2):
        headers = {"X-Role": "dispatcher", "X-Areas": mine}
        got, rows = _case_tile_and_points(client, z, x, y, headers=headers)
        assert got and set(got) == set(rows)
        assert set(got) == {cid for cid, code in where.items() if code == mine}
    planner = get_tile(client, "cases", z, x, y, headers={"X-Role": "planner", "X-Areas": s1})
    assert planner.content == b""  # planners see areas, never cases
    r = client.get(
        f"/api/v1/tiles/cases/{z}/{x}/{y}.mvt", params={"area": s2}, headers={"X-Role": "dispatcher", "X-Areas": s1}
    )
    assert r.status_code == 404 and r.json()["field"] == "code"


def test_the_postgis_case_tile_is_the_python_one(client):
    """PostGIS makes a case tile in one statement (the deadline colours of the running cases worked out first, in
    Python, and joined by id); it holds what the Python pipeline holds — the same cases, properties (clock and the
    ISO time with or without microseconds included) and positions — on a tile of running cases at the lowest zoom
    of case tiles and on one zoomed in, and within the limit, the newest. SpatiaLite draws every tile with the
    Python pipeline."""
    sm = client.app.state.sessionmaker
    from gridmap.store.tables import Case

    with sm() as session:
        postgis = session.get_bind().dialect.name == "postgresql"
        running = session.execute(
            sa.select(Case.id, Case.lon, Case.lat, Case.reported_at)
            .where(Case.state.in_(mapdata.CLOCKED_STATES), Case.due_at.is_not(None), Case.lon.is_not(None))
            .order_by(Case.id)
            .limit(1)
        ).one()
    now = dt.datetime(2026, 11, 20, 4, tzinfo=dt.UTC)
    calendar = client.app.state.calendar()
    with sm() as session, session.begin():  # a time with microseconds on the running case (rolled back)
        session.execute(
            sa.update(Case)
            .where(Case.id == running.id)
            .values(reported_at=running.reported_at.replace(microsecond=1234))
        )
        for z in (tiles.CASES_MIN_ZOOM, 15):
            z, x, y = tile_of(running.lon, running.lat, z)
            if not postgis:  # SpatiaLite draws with the Python pipeline: "auto" is it, byte for byte
                args = (session, mapdata.CaseFilter(), z, x, y)
                auto = tiles.case_tile(*args, who=None, calendar=calendar, now=now, engine="auto")
                assert auto and auto == tiles.case_tile(*args, who=None, calendar=calendar, now=now, engine="python")
                continue
            for limit in (tiles.MAX_TILE_CASES, 7):
                got = {}
                for engine in ("postgis", "python"):
                    body = tiles.case_tile(
                        session,
                        mapdata.CaseFilter(),
                        z,
                        x,
                        y,
                        who=None,
                        calendar=calendar,
                        now=now,
                        limit=limit,
                        engine=engine,
                    )
                    got[engine] = decoded(body, "cases")
                assert got["postgis"] and got["postgis"].keys() == got["python"].keys()
                for cid, feature in got["postgis"].items():
                    assert feature["properties"] == got["python"][cid]["properties"]
                    assert feature["geometry"] == got["python"][cid]["geometry"]
                assert len(got["postgis"]) <= limit
                if limit == tiles.MAX_TILE_CASES:
                    mine = got["postgis"][running.id]["properties"]
                    assert mine["clock"] in ("green", "yellow", "red")
                    assert mine["reported_at"].endswith(".001234Z")
        session.rollback()


def test_tilejson_names_the_tile_url_and_the_fields(client):
    for layer in (*LEVELS, "cases"):
        doc = client.get(f"/api/v1/tiles/{layer}/tilejson.json").json()
        assert doc["tilejson"] == "3.0.0" and doc["tiles"] == [
            f"http://testserver/api/v1/tiles/{layer}/{{z}}/{{x}}/{{y}}.mvt"
        ]
        (vector,) = doc["vector_layers"]
        assert vector["id"] == layer and ("id" if layer == "cases" else "code") in vector["fields"]
        west, south, east, north = doc["bounds"]
        assert 100 < west < east < 106 and 20 < south < north < 30  # Kunming
        lon, lat, zoom = doc["center"]
        z, x, y = tile_of(lon, lat, int(zoom))
        if layer != "cases":
            assert decoded(get_tile(client, layer, z, x, y).content, layer)


# -- a new generation ----------------------------------------------------------------------------------------------


def before_generation(client) -> int:
    with client.app.state.sessionmaker() as session:
        return session.scalar(sa.select(sa.func.max(Generation.id)).where(Generation.status == "active"))


def test_a_new_generation_is_never_served_from_old_tiles(client):
    """Redraw two micro-grids in a draft: the active generation's tiles stay cached with their ETag (and the map's
    outlines of it); activate: the same tile URL answers the new outlines (the cached tile and its ETag were of the
    old generation)."""
    sm = client.app.state.sessionmaker
    draft_id = client.post("/api/v1/generations", headers=PLANNER, json={"name": "瓦片测试调整"}).json()["id"]
    with sm() as session:
        rows = session.scalars(
            sa.select(Area).where(Area.generation_id == draft_id, Area.level == "microgrid").order_by(Area.code)
        ).all()
        leaves = [(a.code, a.parent_id, to_shape(a.geom)) for a in rows]
    (code_a, geom_a), (code_b, geom_b) = next(
        ((a[0], a[2]), (b[0], b[2]))
        for i, a in enumerate(leaves)
        for b in leaves[i + 1 :]
        if a[1] == b[1] and a[2].intersection(b[2]).length > 0.002
    )
    strip = geom_b.intersection(geom_a.buffer(0.001))
    new_a, new_b = shapely.union_all([geom_a, strip]), geom_b.difference(strip)
    inside = strip.representative_point()  # a tile where the outline moved
    z, x, y = tile_of(inside.x, inside.y, 14)
    before = get_tile(client, "microgrid", z, x, y)
    old = shape(decoded(before.content, "microgrid")[code_a]["geometry"])
    put = client.put(
        f"/api/v1/generations/{draft_id}/areas",
        headers=PLANNER,
        json={"areas": {code_a: shapely.geometry.mapping(new_a), code_b: shapely.geometry.mapping(new_b)}},
    )
    assert put.status_code == 200, put.text
    # the draft's edits leave the active generation's tiles as they were: cached, and the client's copy current
    shapes, db_key, active = client.app.state.area_shapes, client.app.state.db_key, before_generation(client)
    with sm() as session:
        kept = shapes.get(session, db_key, active)
    unchanged = client.get(
        f"/api/v1/tiles/microgrid/{z}/{x}/{y}.mvt", headers={"If-None-Match": before.headers["etag"]}
    )
    assert unchanged.status_code == 304 and unchanged.headers["etag"] == before.headers["etag"]
    with sm() as session:
        assert shapes.get(session, db_key, active) is kept
    assert client.post(f"/api/v1/generations/{draft_id}/submit", headers=PLANNER).status_code == 200
    approved = client.post(
        f"/api/v1/generations/{draft_id}/approve",
        headers=APPROVER,
        json={"effective_from": dt.date.today().isoformat()},
    )
    assert approved.status_code == 200, approved.text
    after = client.get(f"/api/v1/tiles/microgrid/{z}/{x}/{y}.mvt", headers={"If-None-Match": before.headers["etag"]})
    assert after.status_code == 200 and after.headers["etag"] != before.headers["etag"]
    new = shape(decoded(after.content, "microgrid")[code_a]["geometry"])
    expected = in_tile_units(new_a, z, x, y).intersection(shapely.box(-64, -64, 4160, 4160))
    assert new.area > old.area + 10
    assert abs(new.area - expected.area) <= 0.5 * expected.length + 1


# -- the cache -----------------------------------------------------------------------------------------------------


def test_the_tile_cache_keeps_to_its_budget_and_drops_an_old_generation():
    cache = tiles.TileCache(budget=10_000)
    for i in range(20):
        cache.put(("db", 1, "grid", 14, i, 0, "*"), bytes(1000))
    assert cache.used <= 10_000 and 0 < len(cache) < 20
    assert cache.get(("db", 1, "grid", 14, 19, 0, "*")) is not None  # the newest stay
    assert cache.get(("db", 1, "grid", 14, 0, 0, "*")) is None  # the oldest went first
    cache.get(("db", 1, "grid", 14, 12, 0, "*"))  # used: it stays when the next comes in
    cache.put(("db", 1, "grid", 14, 20, 0, "*"), bytes(1000))
    assert cache.get(("db", 1, "grid", 14, 12, 0, "*")) is not None
    cache.put(("other", 7, "grid", 14, 0, 0, "*"), b"x")
    cache.put(("db", 2, "grid", 14, 0, 0, "*"), b"new")  # a new generation of "db": its old tiles are dropped
    assert [k for k in cache._items if k[0] == "db"] == [("db", 2, "grid", 14, 0, 0, "*")]
    assert cache.get(("other", 7, "grid", 14, 0, 0, "*")) == b"x"  # another database's are not
    cache.put(("db", 2, "grid", 0, 0, 0, "*"), bytes(20_000))  # larger than the whole budget: not kept
    assert cache.get(("db", 2, "grid", 0, 0, 0, "*")) is None and cache.used <= 10_000


def test_tile_arithmetic_matches_postgis_tile_envelope():
    assert tiles.tile_bounds(0, 0, 0) == pytest.approx((-HALF_WORLD, -HALF_WORLD, HALF_WORLD, HALF_WORLD))
    assert tiles.tile_bounds(14, 12345, 6789) == pytest.approx(envelope(14, 12345, 6789))
    assert tiles.tile_bounds(14, 12345, 6789, 64) == pytest.approx(envelope(14, 12345, 6789, 64))
    lon, lat = 102.83, 25.02
    xy = tiles.mercator(np.array([[lon, lat]]))[0]
    assert tuple(xy) == pytest.approx(TO_3857.transform(lon, lat), abs=1e-6)
    assert tuple(tiles.lonlat(xy[None, :])[0]) == pytest.approx((lon, lat), abs=1e-9)


def _by_the_package(features: list[dict]) -> bytes:
    """The layer as mapbox-vector-tile encodes it, feature by feature (shapely points)."""
    return tiles.encode_layer(tiles.CASES, features)


def test_the_case_layer_is_byte_for_byte_what_the_package_encodes(client):
    """The Python pipeline's case layer (its rows read column by column, placed and encoded as arrays) is the bytes
    mapbox-vector-tile makes, feature by feature, of the rows the map's GeoJSON endpoint gives for the tile's box
    (`mapdata.case_points`, one `case_row` each) placed by shapely (`to_tile`), on the demo's busiest case tiles of
    three zooms (running cases with a clock, finished ones without)."""
    sm = client.app.state.sessionmaker
    now = dt.datetime(2026, 11, 20, 4, tzinfo=dt.UTC)
    calendar = client.app.state.calendar()
    with sm() as session:
        lon, lat = session.execute(
            sa.select(sa.func.avg(Case.lon), sa.func.avg(Case.lat)).where(Case.lon.is_not(None))
        ).one()
        for z in (tiles.CASES_MIN_ZOOM, 11, 13):
            z, x, y = tile_of(lon, lat, z)
            flt = mapdata.CaseFilter(bbox=tiles.tile_box_lonlat(z, x, y))
            points = mapdata.case_points(session, flt, calendar=calendar, now=now)
            assert not points["truncated"]
            rows = [dict(zip(points["fields"], r)) for r in points["rows"]]
            placed = tiles.to_tile(np.asarray(shapely.points([[r["lon"], r["lat"]] for r in rows])), z, x, y)
            features = [
                {"geometry": g, "id": r["id"], "properties": {k: r[k] for k in tiles.CASE_FIELDS if r[k] is not None}}
                for g, r in zip(placed, rows)
                if g is not None and not g.is_empty
            ]
            assert any("clock" in f["properties"] for f in features) and any(
                "clock" not in f["properties"] for f in features
            )
            mine = tiles.case_tile(
                session, mapdata.CaseFilter(), z, x, y, who=None, calendar=calendar, now=now, engine="python"
            )
            assert len(features) >= 10 and mine == _by_the_package(features), (z, len(features))


def test_points_are_placed_in_a_tile_as_shapely_places_them():
    """`points_to_tile` (arrays) against `to_tile` (shapely: clip, move, snap) on points around and across a
    tile's buffered edge, on its corners, and at half units (rounded half up: GEOS's rule, not numpy's)."""
    rng = np.random.default_rng(11)
    for z, x, y in ((10, 804, 438), (13, 6432, 3507), (18, 205842, 112243)):
        x0, y0, x1, y1 = tiles.tile_box_lonlat(z, x, y)
        w, h = x1 - x0, y1 - y0
        lonlat = np.column_stack((rng.uniform(x0 - w / 4, x1 + w / 4, 4000), rng.uniform(y0 - h / 4, y1 + h / 4, 4000)))
        corners = np.array([[x0, y0], [x1, y1], [x0, y1], [x1, y0], [(x0 + x1) / 2, y0], [x0, (y0 + y1) / 2]])
        minx, miny, maxx, maxy = tiles.tile_bounds(z, x, y)
        units = np.array(
            [[0.5, 0.5], [1.5, 2.5], [-0.5, -1.5], [4095.5, 17.5], [-63.5, 4159.5], [0.49999999999999994, 3]]
        )
        halves = tiles.lonlat(
            np.column_stack((minx + units[:, 0] * (maxx - minx) / 4096, maxy - units[:, 1] * (maxy - miny) / 4096))
        )
        assert 0 < tiles.points_to_tile(lonlat, z, x, y)[0].sum() < len(lonlat)  # some in, some out
        for points in (lonlat, corners, halves, lonlat[:1]):
            kept, xy = tiles.points_to_tile(points, z, x, y)
            placed = tiles.to_tile(np.asarray(shapely.points(points)), z, x, y)
            theirs = np.array([not (g is None or g.is_empty) for g in placed], dtype=bool)
            assert np.array_equal(kept, theirs)
            assert np.array_equal(xy, shapely.get_coordinates(placed[theirs]).reshape(-1, 2))
        kept, xy = tiles.points_to_tile(np.empty((0, 2)), z, x, y)
        assert not len(kept) and xy.shape == (0, 2)
    # the snapping alone, on exact halves and next to them, against GEOS's precision reducer
    values = np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 0.49999999999999994, -0.49999999999999994, 4095.5, -63.5, 7.0])
    pairs = np.column_stack((values, values[::-1]))
    snapped = shapely.get_coordinates(shapely.set_precision(shapely.points(pairs), 1.0))
    assert np.array_equal(tiles._round_half_up(pairs), snapped)


def test_positions_are_rounded_to_six_places_as_python_rounds_them():
    """`round6` against Python's `round(v, 6)` on typed coordinates of 7 decimals ending in 5 (halves in decimal,
    not in binary), random ones, negatives, whole ones, huge ones and NaN."""
    rng = np.random.default_rng(3)
    typed = np.round(rng.uniform(97, 106, 20000), 6) + 5e-7  # x.xxxxxx5 as typed
    values = np.concatenate(
        (typed, rng.uniform(-180, 180, 20000), -typed, [0.0, -0.0, 1.0, 102.6999995, 25.0000005, 1e17, np.nan])
    )
    ours = tiles.round6(values)
    python = np.array([round(float(v), 6) for v in values])
    assert np.array_equal(ours, python, equal_nan=True)
    assert np.array_equal(np.signbit(ours), np.signbit(python))


def test_points_are_encoded_as_the_package_encodes_them_whatever_is_missing_or_shared():
    """`encode_points` against mapbox-vector-tile on layers made to trip a layer-wide numbering: a key missing from
    the first features, values shared between keys, a number and its text, positions in the buffer (negative) and
    beyond the extent, and one feature."""
    rng = np.random.default_rng(7)
    for n in (1, 2, 5, 300):
        xy = rng.integers(-64, 4096 + 64, size=(n, 2))
        columns = {
            "id": [int(v) for v in rng.integers(1, 50, n)],
            "state": [None if i < n // 2 else str(rng.choice(["closed", "7", "red"])) for i in range(n)],
            "clock": [str(rng.choice(["red", "green"])) if i % 3 else None for i in range(n)],
            "source": [str(rng.choice(["7", "hotline"])) for _ in range(n)],
            "empty": [None] * n,
            "number": [int(v) for v in rng.integers(-(2**40), 2**40, n)],  # negative: ten bytes as an int64
            "text": [str(rng.choice(["环境卫生", "道路", "x" * 200])) for _ in range(n)],  # lengths past 127
        }
        ids = [int(v) for v in rng.integers(1, 10**9, n)]
        features = [
            {
                "geometry": shapely.Point(float(a), float(b)),
                "id": ids[i],
                "properties": {k: v[i] for k, v in columns.items() if v[i] is not None},
            }
            for i, (a, b) in enumerate(xy.tolist())
        ]
        assert tiles.encode_points(tiles.CASES, ids, xy.astype(float), columns) == _by_the_package(features), n
    assert tiles.encode_points(tiles.CASES, [], np.empty((0, 2)), {"id": []}) == b""
    bare = [  # a feature with no property (no tags at all) and an id past 32 bits
        {"geometry": shapely.Point(3.0, 4.0), "id": 2**40 + 5, "properties": {}},
        {"geometry": shapely.Point(-5.0, 9.0), "id": 7, "properties": {"k": "v"}},
    ]
    mine = tiles.encode_points(tiles.CASES, [2**40 + 5, 7], np.array([[3.0, 4.0], [-5.0, 9.0]]), {"k": [None, "v"]})
    assert mine == _by_the_package(bare)
