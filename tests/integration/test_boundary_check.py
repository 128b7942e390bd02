"""The boundary check (issue 13 §2) on both databases: the demo's boundaries pass; drafts broken on purpose — by
writing the table directly, past the API's own checks, including what the redraw (PUT /api/v1/generations/{id}/areas)
wrote before issue 13 fixed it (`_old_redraw`) — are reported with the right kind, codes, area and place; SpatiaLite
and PostGIS give the same report; the CLI's exit codes; who may call the API (the policy matrix has the full row).
The fixed redraw itself: it refuses the 3 m² wedge and the 5 m² overlap it used to accept, absorbs the zero-area
wedge without leaving a ring in any ancestor, and recomputes households, population and area.

Each dialect gets a database of its own (`fresh_db_url`), since the tests add drafts."""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest
import shapely
import shapely.affinity
import shapely.ops
import sqlalchemy as sa
from fastapi.testclient import TestClient
from geoalchemy2.shape import from_shape, to_shape
from shapely.geometry import MultiPoint, MultiPolygon, Point, Polygon, box

from gridmap import cli
from gridmap.boundaries import check as bc
from gridmap.boundaries import generations as gens
from gridmap.errors import InvalidInput
from gridmap.store import engine as storage
from gridmap.store.tables import Area, Generation
from gridmap_api.main import create_app
from gridmap_api.settings import Settings
from tests.conftest import _load, _new_postgis_database

PLANNER = {"X-User": "p1", "X-Role": "planner"}
WORKER = {"X-User": "w1", "X-Role": "worker"}
M_PER_DEG = 111_320.0  # for "within a metre": degrees × this over-states a distance in longitude (cos 25° = 0.91)


# -- helpers -------------------------------------------------------------------------------------------------------


def _sm(client):
    return client.app.state.sessionmaker


def _draft(client, name: str) -> int:
    r = client.post("/api/v1/generations", headers=PLANNER, json={"name": name})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def _areas(session, generation_id: int) -> dict[str, dict]:
    rows = session.scalars(sa.select(Area).where(Area.generation_id == generation_id).order_by(Area.code)).all()
    code_of = {a.id: a.code for a in rows}
    return {
        a.code: {"code": a.code, "level": a.level, "parent": code_of.get(a.parent_id), "geom": to_shape(a.geom)}
        for a in rows
    }


def _check(client, generation_id: int) -> dict:
    r = client.get(f"/api/v1/generations/{generation_id}/check", headers=PLANNER)
    assert r.status_code == 200, r.text
    return r.json()


def _put(client, generation_id: int, changes: dict, status: int = 200) -> dict:
    body = {"areas": {code: shapely.geometry.mapping(geom) for code, geom in changes.items()}}
    r = client.put(f"/api/v1/generations/{generation_id}/areas", headers=PLANNER, json=json.loads(json.dumps(body)))
    assert r.status_code == status, r.text
    return r.json()


def _old_redraw(session, generation_id: int, changes: dict) -> None:
    """What the redraw did before issue 13 was fixed, written past the API: the leaves replaced as given and every
    ancestor recomputed with `union_all` of its children (which leaves holes and zero-area rings when the children's
    vertices differ slightly), with no check against the leaves not given. The check must find what it left."""
    areas = {a.code: a for a in session.scalars(sa.select(Area).where(Area.generation_id == generation_id))}
    by_id = {a.id: a for a in areas.values()}
    for code, geom in changes.items():
        areas[code].geom = from_shape(geom if isinstance(geom, MultiPolygon) else MultiPolygon([geom]), srid=4326)
    session.flush()
    parents = {areas[c].parent_id for c in changes}
    while parents - {None}:
        above = set()
        for pid in parents - {None}:
            union = shapely.union_all([to_shape(a.geom) for a in areas.values() if a.parent_id == pid])
            by_id[pid].geom = from_shape(
                union if union.geom_type == "MultiPolygon" else MultiPolygon([union]), srid=4326
            )
            above.add(by_id[pid].parent_id)
        parents = above
    session.flush()


def _stored(client, generation_id: int) -> dict:
    with _sm(client)() as session:
        return {code: (shapely.to_wkb(a["geom"], hex=True)) for code, a in _areas(session, generation_id).items()}


def _write(session, generation_id: int, code: str, /, **values) -> None:
    """Change a stored area directly, past the API's checks."""
    if "geom" in values:
        geom = values["geom"]
        values["geom"] = from_shape(geom if isinstance(geom, MultiPolygon) else MultiPolygon([geom]), srid=4326)
    session.execute(sa.update(Area).where(Area.generation_id == generation_id, Area.code == code).values(**values))


def _m2_per_deg2(lat: float) -> float:
    return 111_320.0 * math.cos(math.radians(lat)) * 110_574.0


def _m2(geom) -> float:
    """Area in m² by the local scale at its latitude (independent of the check's projection)."""
    return geom.area * _m2_per_deg2(geom.centroid.y if not geom.is_empty else 25.0)


def _of(report: dict, kind: str) -> list[dict]:
    return [p for p in report["problems"] if p["kind"] == kind]


def _errors(report: dict) -> list[dict]:
    return [p for p in report["problems"] if p["severity"] == "error"]


def _ancestors(areas: dict, code: str) -> list[str]:
    out = []
    while areas[code]["parent"]:
        code = areas[code]["parent"]
        out.append(code)
    return out


def _vertices(geom) -> list[tuple[float, float]]:
    return [c for p in geom.geoms for c in p.exterior.coords[:-1]]


def _move_vertex(geom, old, new):
    return MultiPolygon(
        [
            Polygon([new if c == old else c for c in p.exterior.coords], [r.coords for r in p.interiors])
            for p in geom.geoms
        ]
    )


def _ring_neighbour(geom, v, exclude: set) -> tuple[float, float] | None:
    """The vertex next to `v` on `geom`'s ring that is not in `exclude` (the other leaf's vertices)."""
    for p in geom.geoms:
        ring = list(p.exterior.coords)[:-1]
        if v in ring:
            i = ring.index(v)
            found = [c for c in (ring[i - 1], ring[(i + 1) % len(ring)]) if c not in exclude]
            return found[0] if len(found) == 1 else None
    return None


def wedge_edit(areas: dict, target_m2: float) -> tuple[dict, dict]:
    """Move the end of the edge two micro-grids share, where it meets another grid of the same community, into
    their grid by a distance that leaves a wedge of `target_m2` between the grids: both micro-grids get the same
    new vertex (the edge moves as one), the neighbour keeps the old one. The redraw accepts it (the wedge is
    under its 10 m² tolerance) and its `union_all` gives the community, sub-district and district a hole."""
    leaves = [a for a in areas.values() if a["level"] == "microgrid"]
    candidates = []
    for a in leaves:
        for b in leaves:
            if a["code"] >= b["code"] or a["parent"] != b["parent"]:
                continue
            va, vb = set(_vertices(a["geom"])), set(_vertices(b["geom"]))
            cousins = [
                c
                for c in leaves
                if areas[c["parent"]]["parent"] == areas[a["parent"]]["parent"] and c["parent"] != a["parent"]
            ]
            for v in sorted(va & vb):
                p1, p2 = _ring_neighbour(a["geom"], v, vb), _ring_neighbour(b["geom"], v, va)
                if not (p1 and p2):
                    continue
                # both edges at v border micro-grids of other grids of the community: the wedge is closed in it
                across = [
                    [c for c in cousins if c["geom"].boundary.distance(Point(np.add(v, end) / 2)) < 1e-12]
                    for end in (p1, p2)
                ]
                outline = areas[areas[a["parent"]]["parent"]]["geom"].boundary
                inside = any(outline.distance(Point(end)) > 1e-9 for end in (p1, p2))  # else the community is
                if all(across) and inside:  # pinched in two there, and the hole starts one level up
                    candidates.append((math.dist(p1, p2), a["code"], b["code"], v, p1, p2, across[0][0]["parent"]))
    assert candidates, "the demo has no edge between two micro-grids ending on another grid of the community"
    _, code_a, code_b, v, p1, p2, other_grid = min(candidates)
    grid = areas[code_a]["parent"]
    (dx, dy), length = np.subtract(p2, p1), math.dist(p1, p2)
    normal = np.array([-dy, dx]) / length
    if not areas[grid]["geom"].contains(Point(np.add(v, normal * 1e-7))):
        normal = -normal  # into the grid
    delta = 2 * target_m2 / (_m2_per_deg2(v[1]) * length)  # the wedge p1-v-p2-new: ½ · |p1p2| · delta
    new = tuple(np.add(v, normal * delta))
    wedge = Polygon([p1, v, p2, new])
    changes = {code_a: _move_vertex(areas[code_a]["geom"], v, new), code_b: _move_vertex(areas[code_b]["geom"], v, new)}
    return changes, {
        "v": v,
        "wedge": wedge,
        "grid": grid,
        "other_grid": other_grid,
        "community": areas[grid]["parent"],
        "holed": sorted(_ancestors(areas, grid)),
    }


def _adjacent_pair(areas: dict, skip: set = frozenset()) -> tuple[dict, dict]:
    leaves = [a for a in areas.values() if a["level"] == "microgrid" and a["parent"] not in skip]
    for a in leaves:
        for b in leaves:
            if (
                a["code"] < b["code"]
                and a["parent"] == b["parent"]
                and a["geom"].intersection(b["geom"]).length > 0.002
            ):
                return a, b
    raise AssertionError("no two adjacent micro-grids in one grid")


def overlap_edit(areas: dict, target_m2: float, skip: set = frozenset()) -> tuple[dict, dict]:
    """Leaf a takes a half disc of `target_m2` from its neighbour b, which is not redrawn: the redraw checks
    overlaps only among the leaves it is given, and the cover of a changes by less than its tolerance."""
    a, b = _adjacent_pair(areas, skip)
    edge = a["geom"].intersection(b["geom"])
    centre = edge.interpolate(0.5, normalized=True)
    radius_deg = math.sqrt(2 * target_m2 / math.pi) / 110_574.0
    disc = shapely.affinity.scale(centre.buffer(radius_deg, quad_segs=32), xfact=1 / math.cos(math.radians(centre.y)))
    half = b["geom"].intersection(disc)
    return {a["code"]: shapely.union_all([a["geom"], half])}, {"a": a["code"], "b": b["code"], "region": half}


def two_part_edit(areas: dict, skip: set = frozenset()) -> tuple[dict, dict]:
    """Leaf a takes an island of its neighbour b (an enclave of a inside b): a has two parts, b a hole that a fills."""
    a, b = _adjacent_pair(areas, skip)
    inner = b["geom"].buffer(-0.001)
    centre = shapely.ops.nearest_points(inner, a["geom"])[0] if not inner.is_empty else b["geom"].representative_point()
    island = centre.buffer(0.00015, quad_segs=4).intersection(b["geom"])
    assert island.distance(a["geom"]) > 0.0001 and island.within(b["geom"])
    return (
        {a["code"]: shapely.union_all([a["geom"], island]), b["code"]: b["geom"].difference(island)},
        {"a": a["code"], "b": b["code"], "island": island},
    )


def _close(p: dict, geom, metres: float = 1.0) -> bool:
    return shapely.geometry.shape(p["geometry"]).distance(geom) * M_PER_DEG <= metres


# -- the demo ------------------------------------------------------------------------------------------------------


def test_the_demo_passes_quickly(client):
    """The loaded demo's active generation has no errors (its warnings: grids that follow the district's exclaves),
    and checking it takes well under a few seconds."""
    active = next(g for g in client.get("/api/v1/generations", headers=PLANNER).json() if g["status"] == "active")
    report = _check(client, active["id"])
    assert report["ok"] and not _errors(report), _errors(report)
    assert report["areas"] == 41 and report["generation_id"] == active["id"]
    assert {p["kind"] for p in report["problems"]} <= {"not_contiguous", "household_norm", "sliver"}
    with _sm(client)() as session:
        bc.check_generation(session, active["id"])  # warm (the projection's transformers are built once)
        best = math.inf
        for _ in range(3):
            started = time.perf_counter()
            bc.check_generation(session, active["id"])
            best = min(best, time.perf_counter() - started)
    assert best < 3.0, f"the check of the small demo took {best:.2f} s"


# -- (a) the redraw's holes ----------------------------------------------------------------------------------------


def test_a_the_redraw_refuses_a_wedge_and_absorbs_a_zero_area_one(client):
    """Issue 13's first defect, fixed: the redraw re-nodes the leaves it is given with their neighbours. The 3 m²
    wedge that moving the end of a shared edge leaves (the neighbour across keeps the old vertex) is refused as a gap,
    naming where, and nothing is stored; the zero-area one (1e-5 m²) is absorbed by a neighbour, and no ancestor
    gets a hole or a zero-area ring (before the fix both were accepted and the community, sub-district and district
    got a hole: see the check's test below, which writes what the old redraw wrote)."""
    draft = _draft(client, "移边 修复")
    with _sm(client)() as session:
        areas = _areas(session, draft)
    changes, info = wedge_edit(areas, 3.0)
    before = _stored(client, draft)
    r = _put(client, draft, changes, 422)
    assert r["field"] == "geometry" and "gap" in r["detail"] and "3.00 m²" in r["detail"], r
    x, y = map(float, r["detail"].split("POINT (")[1].split(")")[0].split())
    assert Point(x, y).distance(info["wedge"]) * M_PER_DEG < 1.0  # named at the wedge
    assert _stored(client, draft) == before

    changes, info = wedge_edit(areas, 1e-5)
    _put(client, draft, changes)
    with _sm(client)() as session:
        stored = _areas(session, draft)
    assert not [code for code in info["holed"] for p in stored[code]["geom"].geoms if p.interiors]
    report = _check(client, draft)
    assert report["ok"] and not _of(report, "hole") and not _of(report, "gap") and not _of(report, "sliver"), _errors(
        report
    )


def test_a_the_redraw_recomputes_households_population_and_area(client):
    """Issue 13's third defect, fixed: a redraw that moves a building's ground from one micro-grid to its neighbour
    moves that building's share of households and population (stored numbers shared in proportion to the buildings'
    households), parents are their children's sums, and `area_m2` is measured again."""
    from gridmap.store.tables import Place

    draft = _draft(client, "重画 户数")
    with _sm(client)() as session:
        areas = _areas(session, draft)
        rows = {a.code: a for a in session.scalars(sa.select(Area).where(Area.generation_id == draft))}
        units = [
            (pid, to_shape(g), hh)
            for pid, g, hh in session.execute(
                sa.select(Place.id, Place.geom, Place.households).where(Place.kind == "building")
            ).all()
        ]
    a, b = _adjacent_pair(areas)
    mine = [u for u in units if b["geom"].contains(u[1])]
    assert len(mine) >= 2
    edge = a["geom"].intersection(b["geom"])
    cells = shapely.voronoi_polygons(MultiPoint([u[1] for u in mine]), extend_to=b["geom"], ordered=True)
    # the building nearest the shared edge whose cell (clipped to b) reaches along that edge
    touching = [
        (u, c.intersection(b["geom"]))
        for c, u in zip(cells.geoms, mine)
        if c.intersection(b["geom"]).intersects(a["geom"])
    ]
    assert touching, "some building's cell of b reaches the edge b shares with a"
    near, cell = min(touching, key=lambda uc: uc[0][1].distance(edge))
    changes = {a["code"]: shapely.union_all([a["geom"], cell]), b["code"]: b["geom"].difference(cell)}
    _put(client, draft, changes)
    with _sm(client)() as session:
        after = {x.code: x for x in session.scalars(sa.select(Area).where(Area.generation_id == draft))}
        share = round(rows[b["code"]].households * near[2] / sum(u[2] for u in mine))
        assert after[a["code"]].households == rows[a["code"]].households + share
        assert after[b["code"]].households == rows[b["code"]].households - share
        assert after[a["code"]].population > rows[a["code"]].population
        assert after[a["code"]].area_m2 == pytest.approx(rows[a["code"]].area_m2 + _m2(cell), rel=0.01)
        for row in after.values():
            kids = [k for k in after.values() if k.parent_id == row.id]
            if kids:
                assert row.households == sum(k.households for k in kids)
                assert row.population == sum(k.population for k in kids)
    assert _check(client, draft)["ok"]


@pytest.mark.parametrize("target_m2", [3.0, 1e-5], ids=["3m2", "zero_area"])
def test_a_moved_edge_leaves_holes_in_the_parents(client, target_m2):
    """What the redraw wrote before the fix (`_old_redraw`): the check finds the holes."""
    draft = _draft(client, f"移边 {target_m2}")
    with _sm(client)() as session:
        areas = _areas(session, draft)
        changes, info = wedge_edit(areas, target_m2)
        _old_redraw(session, draft, changes)
        session.commit()
    with _sm(client)() as session:
        stored = _areas(session, draft)
    rings = {code for code in info["holed"] for p in stored[code]["geom"].geoms if p.interiors}
    assert rings == set(info["holed"]), "the redraw's union_all left no hole; the scenario is wrong"

    report = _check(client, draft)
    assert not report["ok"]
    (hole,) = _of(report, "hole")
    assert hole["severity"] == "error" and hole["codes"] == info["holed"]
    assert _close(hole, info["wedge"], 0.01)  # on the wedge: the polygon itself, or a point on its outline
    if target_m2 >= 1:
        assert hole["area_m2"] == pytest.approx(target_m2, rel=0.02)
        assert hole["geometry"]["type"] == "Polygon"
        assert shapely.geometry.shape(hole["geometry"]).hausdorff_distance(info["wedge"]) * M_PER_DEG < 1.0
        (gap,) = _of(report, "gap")
        assert gap["parent"] == info["community"] and {info["grid"], info["other_grid"]} <= set(gap["codes"])
        assert gap["area_m2"] == pytest.approx(target_m2, rel=0.1) and _close(gap, Point(info["v"]))
    else:  # zero area: too small for a gap (float noise), still a ring that draws a stray line on the map
        assert hole["area_m2"] < 0.01 and hole["geometry"]["type"] == "Point"
        assert not _of(report, "gap") and not _of(report, "sliver")


# -- (b) overlapping leaves ----------------------------------------------------------------------------------------


def test_b_overlapping_leaves(client):
    draft = _draft(client, "重叠")
    with _sm(client)() as session:
        areas = _areas(session, draft)
    changes, info = overlap_edit(areas, 5.0)
    before = _stored(client, draft)
    r = _put(client, draft, changes, 422)  # fixed: an overlap with a leaf not redrawn is refused, naming both
    assert (
        r["field"] == "geometry" and info["a"] in r["detail"] and info["b"] in r["detail"] and "overlaps" in r["detail"]
    ), r
    assert _stored(client, draft) == before
    with _sm(client)() as session:  # what the redraw accepted before the fix
        _old_redraw(session, draft, changes)
        session.commit()
    report = _check(client, draft)
    assert not report["ok"]
    (overlap,) = _of(report, "overlap")
    assert overlap["codes"] == sorted([info["a"], info["b"]]) and overlap["parent"] == areas[info["a"]]["parent"]
    assert overlap["area_m2"] == pytest.approx(_m2(info["region"]), rel=0.02)
    assert 2.0 < overlap["area_m2"] < 6.0
    assert shapely.geometry.shape(overlap["geometry"]).hausdorff_distance(info["region"]) * M_PER_DEG < 1.0
    assert not _of(report, "gap") and not _of(report, "hole")


# -- (c) a leaf outside its parent, (d) a bow-tie, written straight into the table ---------------------------------


def test_c_a_leaf_pushed_outside_its_parent(client):
    draft = _draft(client, "越界")
    with _sm(client)() as session:
        areas = _areas(session, draft)
        leaf = areas[sorted(c for c, a in areas.items() if a["level"] == "microgrid")[5]]
        moved = shapely.affinity.translate(leaf["geom"], xoff=0.002)  # about 200 m east
        _write(session, draft, leaf["code"], geom=moved)
        session.commit()
    report = _check(client, draft)
    outside = [p for p in _of(report, "outside_parent") if p["codes"] == [leaf["code"]]]
    expected = moved.difference(areas[leaf["parent"]]["geom"])
    assert outside and all(p["parent"] == leaf["parent"] and p["severity"] == "error" for p in outside)
    assert sum(p["area_m2"] for p in outside) == pytest.approx(_m2(expected), rel=0.02)
    assert all(shapely.geometry.shape(p["geometry"]).within(expected.buffer(1e-6)) for p in outside)
    gaps = [p for p in _of(report, "gap") if p["parent"] == leaf["parent"]]  # where it was
    assert gaps and sum(p["area_m2"] for p in gaps) == pytest.approx(_m2(leaf["geom"].difference(moved)), rel=0.02)


def test_d_a_bow_tie_in_the_table(client):
    draft = _draft(client, "自相交")
    with _sm(client)() as session:
        areas = _areas(session, draft)
        code = sorted(c for c, a in areas.items() if a["level"] == "microgrid")[7]
        x, y = areas[code]["geom"].representative_point().coords[0]
        d = 0.0005
        tie = Polygon([(x - d, y - d), (x + d, y + d), (x + d, y - d), (x - d, y + d), (x - d, y - d)])
        _write(session, draft, code, geom=MultiPolygon([tie]))
        session.commit()
    report = _check(client, draft)
    (invalid,) = _of(report, "invalid_geometry")
    assert invalid["codes"] == [code] and invalid["severity"] == "error"
    assert invalid["detail"].endswith(shapely.is_valid_reason(MultiPolygon([tie])))
    assert "Self-intersection" in invalid["detail"] and _close(invalid, Point(x, y))
    assert _of(report, "gap")  # the leaf's old place is not covered any more


# -- (e) codes and norms, (f) a two-part leaf ----------------------------------------------------------------------

FULL_WIDTH = str.maketrans("0123456789", "０１２３４５６７８９")


def test_e_duplicate_and_bad_codes_and_household_norms(client):
    draft = _draft(client, "编码")
    with _sm(client)() as session:
        areas = _areas(session, draft)
        micro = sorted(c for c, a in areas.items() if a["level"] == "microgrid")
        grids = sorted(c for c, a in areas.items() if a["level"] == "grid")
        twin = micro[0].translate(FULL_WIDTH)  # the same code in full-width digits (as typed in a spreadsheet)
        short = micro[3][:-1]  # 16 digits
        stranger = micro[-1][:15] + "77"  # a micro-grid code of another grid's…
        assert not stranger.startswith(areas[micro[4]]["parent"])
        _write(session, draft, micro[1], code=twin)
        _write(session, draft, micro[3], code=short)
        _write(session, draft, micro[4], code=stranger)  # …under this micro-grid's grid
        _write(session, draft, grids[0], households=5)
        session.commit()
    report = _check(client, draft)
    (dup,) = _of(report, "duplicate_code")
    assert dup["codes"] == sorted([micro[0], twin]) and dup["geometry"]["type"] == "MultiPoint"
    bad = {p["codes"][0]: p for p in _of(report, "bad_code")}
    assert set(bad) == {twin, short, stranger}
    assert "16" in bad[short]["detail"] and "17或18" in bad[short]["detail"]
    assert areas[micro[4]]["parent"] in bad[stranger]["detail"] and "不以上级编码" in bad[stranger]["detail"]
    assert "数字" in bad[twin]["detail"]
    (norm,) = _of(report, "household_norm")
    assert norm["codes"] == [grids[0]] and norm["severity"] == "warning" and "200–2000" in norm["detail"]
    assert not _of(report, "gap") and not _of(report, "overlap")


def test_f_a_two_part_leaf(client):
    draft = _draft(client, "飞地")
    with _sm(client)() as session:
        areas = _areas(session, draft)
    changes, info = two_part_edit(areas)
    _put(client, draft, changes)
    report = _check(client, draft)
    parts = [p for p in _of(report, "not_contiguous") if p["codes"] == [info["a"]]]
    assert len(parts) == 1 and parts[0]["severity"] == "warning"
    assert parts[0]["area_m2"] == pytest.approx(_m2(info["island"]), rel=0.02)
    assert shapely.geometry.shape(parts[0]["geometry"]).hausdorff_distance(info["island"]) * M_PER_DEG < 1.0
    assert report["ok"], _errors(report)  # b's hole is a's enclave: explained, not a hole


# -- (h) the CLI, (i) the API's edge -------------------------------------------------------------------------------


def test_h_cli_exit_codes(client, fresh_db_url, capsys):
    with _sm(client)() as session:
        active = session.scalar(sa.select(Generation.id).where(Generation.status == "active"))
    base = ["--database", fresh_db_url, "boundaries", "check"]
    assert cli.main([*base, "active"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("边界检查") and "不连通 not_contiguous" in out and "通过 OK" in out

    draft = _draft(client, "命令行")
    with _sm(client)() as session:
        areas = _areas(session, draft)
    changes, _ = overlap_edit(areas, 5.0)
    with _sm(client)() as session:
        _old_redraw(session, draft, changes)
        session.commit()
    assert cli.main([*base, str(draft), "--json"]) == 1
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report == _check(client, draft) and [p["kind"] for p in _errors(report)] == ["overlap"]
    assert "重叠 overlap" in captured.err and "不通过 NOT OK" in captured.err
    assert cli.main([*base, str(draft), "--sliver-m2", "10"]) == 0  # a 5 m² overlap is a sliver then
    assert "碎片 sliver" in capsys.readouterr().out
    assert cli.main([*base, str(active), "--household-band", "grid=5000-6000"]) == 0  # warnings only
    assert "户数超出常规 household_norm" in capsys.readouterr().out
    assert cli.main([*base, "987654"]) == 2 and "no generation has id 987654" in capsys.readouterr().err
    assert cli.main([*base, "草稿"]) == 2 and "GEN" in capsys.readouterr().err
    assert cli.main([*base, "active", "--household-band", "grid=9-1"]) == 2
    assert "household_band" in capsys.readouterr().err


def test_i_who_may_check(client, fresh_db_url):
    """Planner 200, worker 403, anonymous 401 (the policy matrix's row covers every role and key scope)."""
    draft = _draft(client, "权限")
    assert client.get(f"/api/v1/generations/{draft}/check", headers=PLANNER).status_code == 200
    assert client.get(f"/api/v1/generations/{draft}/check", headers=WORKER).status_code == 403
    with TestClient(create_app(Settings(database_url=fresh_db_url))) as anonymous:
        r = anonymous.get(f"/api/v1/generations/{draft}/check")
        assert r.status_code == 401 and r.headers["content-type"] == "application/problem+json"
    missing = client.get("/api/v1/generations/987654/check", headers=PLANNER)
    assert missing.status_code == 404 and missing.json()["field"] == "generation"
    assert client.get("/api/v1/generations/0/check", headers=PLANNER).status_code == 422
    assert client.get(f"/api/v1/generations/{2**40}/check", headers=PLANNER).status_code == 422


# -- (g) the same report on both databases -------------------------------------------------------------------------


def _break(session, generation_id: int) -> None:
    """Every scenario above at once, in different grids, through the library (the redraw) and the table."""
    areas = _areas(session, generation_id)
    changes, wedge = wedge_edit(areas, 3.0)
    _old_redraw(session, generation_id, changes)
    used = {wedge["grid"]}
    changes, over = overlap_edit(areas, 5.0, skip=used)
    _old_redraw(session, generation_id, changes)
    used.add(areas[over["a"]]["parent"])
    changes, two = two_part_edit(areas, skip=used)
    gens.redraw(session, generation_id, changes)
    used.add(areas[two["a"]]["parent"])
    free = [c for c, a in sorted(areas.items()) if a["level"] == "microgrid" and a["parent"] not in used]
    _write(session, generation_id, free[0], geom=shapely.affinity.translate(areas[free[0]]["geom"], xoff=0.002))
    x, y = areas[free[-1]]["geom"].representative_point().coords[0]
    _write(
        session,
        generation_id,
        free[-1],
        geom=Polygon([(x, y), (x + 1e-3, y + 1e-3), (x + 1e-3, y), (x, y + 1e-3), (x, y)]),
    )
    _write(session, generation_id, free[2], code=free[1].translate(FULL_WIDTH))
    session.flush()


def test_g_the_same_report_on_spatialite_and_postgis(tmp_path):
    """One draft broken the same way in a SpatiaLite file and a PostGIS database: the two reports are equal,
    problem for problem (kinds, codes, areas, geometries)."""
    pg_url, drop = _new_postgis_database()
    reports = {}
    try:
        for name, url in (("spatialite", f"sqlite:///{tmp_path / 'g.sqlite'}"), ("postgis", pg_url)):
            engine = storage.make_engine(_load(url))
            try:
                with storage.session_scope(storage.make_sessionmaker(engine)) as session:
                    draft = gens.create_draft(session, "两库对照").id
                    session.flush()
                    _break(session, draft)
                with storage.make_sessionmaker(engine)() as session:
                    reports[name] = bc.check_generation(session, draft)
            finally:
                engine.dispose()
    finally:
        drop()
    lite, pg = reports["spatialite"], reports["postgis"]
    assert {
        "overlap",
        "hole",
        "gap",
        "outside_parent",
        "invalid_geometry",
        "duplicate_code",
        "bad_code",
        "not_contiguous",
    } <= set(lite["counts"])
    assert [(p["kind"], p["codes"], p["area_m2"]) for p in lite["problems"]] == [
        (p["kind"], p["codes"], p["area_m2"]) for p in pg["problems"]
    ]
    assert lite == pg


# -- the check itself, on areas that are not stored ----------------------------------------------------------------


def _rec(key, code, level, parent, geom, households=400):
    return bc.AreaRecord(key, code, level, parent, households, geom)


def _square(x0, y0, size=0.01):
    return MultiPolygon([box(102.7 + x0, 25.0 + y0, 102.7 + x0 + size, 25.0 + y0 + size)])


def test_records_duplicate_codes_cracks_enclaves_and_stale_parents():
    """What the database's constraints keep out (an exact duplicate code), and the cases a stored demo does not
    show: a narrow crack between two leaves that opens onto the outside (no parent sees it), an enclave (a hole
    another area fills), a parent whose hole its children cover."""
    left, right = _square(0, 0), _square(0.01, 0)
    district = MultiPolygon([box(102.7, 25.0, 102.72, 25.01)])
    base = [_rec(1, "530111", "district", None, district, 9000), _rec(2, "530111001", "subdistrict", 1, district, 800)]
    clean = base + [_rec(3, "530111001001", "community", 2, left), _rec(4, "530111001002", "community", 2, right)]
    assert bc.check_areas(clean, household_band="")["problems"] == []

    twice = clean + [_rec(5, "530111001002", "community", 2, _square(0.005, 0.02, 0.001))]
    (dup,) = [p for p in bc.check_areas(twice, household_band="")["problems"] if p["kind"] == "duplicate_code"]
    assert dup["codes"] == ["530111001002", "530111001002"]

    crack_w = 0.3 / (111_320 * math.cos(math.radians(25.005)))  # a 30 cm crack, edge to edge: the parent (the
    # union) has it too
    cracked_right = MultiPolygon([box(102.71 + crack_w, 25.0, 102.72, 25.01)])
    parent = MultiPolygon(list(shapely.union_all([left, cracked_right]).geoms))
    cracked = [
        _rec(1, "530111", "district", None, parent),
        _rec(2, "530111001", "subdistrict", 1, parent),
        _rec(3, "530111001001", "community", 2, left),
        _rec(4, "530111001002", "community", 2, cracked_right),
    ]
    report = bc.check_areas(cracked, household_band="")
    (gap,) = [p for p in report["problems"] if p["kind"] == "gap"]
    assert gap["codes"] == ["530111001001", "530111001002"] and gap["parent"] == "530111001"
    assert gap["area_m2"] == pytest.approx(0.3 * 1_105.74, rel=0.03)  # 30 cm × 0.01° of latitude

    island = box(102.704, 25.004, 102.706, 25.006)
    holed = MultiPolygon([Polygon(left.geoms[0].exterior.coords, [island.exterior.coords])])
    enclave = [
        *base[:1],
        _rec(2, "530111001", "subdistrict", 1, district),
        _rec(3, "530111001001", "community", 2, holed),
        _rec(4, "530111001002", "community", 2, MultiPolygon([right.geoms[0], island])),
    ]
    report = bc.check_areas(enclave, household_band="")
    assert report["ok"] and [p["kind"] for p in report["problems"]] == ["not_contiguous"]

    stale = [
        _rec(1, "530111", "district", None, district),
        _rec(
            2,
            "530111001",
            "subdistrict",
            1,
            MultiPolygon([Polygon(district.geoms[0].exterior.coords, [island.exterior.coords])]),
        ),
        *clean[2:],
    ]
    (hole,) = [p for p in bc.check_areas(stale, household_band="")["problems"] if p["kind"] == "hole"]
    assert hole["codes"] == ["530111001"] and "stale parent" in hole["detail"]
    assert hole["area_m2"] == pytest.approx(_m2(island), rel=0.02)


def test_tolerances_and_bands_are_checked():
    for name, value in (("sliver_m2", -1.0), ("noise_m2", math.nan), ("grid_size_m", 0.0), ("gap_width_m", 1e9)):
        with pytest.raises(InvalidInput) as err:
            bc.check_areas([], **{name: value})
        assert err.value.field == name
    for band in ("grid=1", "grid=9-1", "ward=1-2", "x" * 501):
        with pytest.raises(InvalidInput) as err:
            bc.parse_household_band(band)
        assert err.value.field == "household_band"
    assert bc.parse_household_band("") == {} and bc.parse_household_band(None)["microgrid"] == (50, 800)
