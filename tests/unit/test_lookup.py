"""The in-memory lookup on hand-drawn grids: inside, on an edge, on a shared vertex, in a hole, outside."""

import numpy as np
import pytest
from shapely.geometry import Polygon, box

from gridmap.geo.index import FLAG_ON_BOUNDARY, FLAG_OUTSIDE, AreaIndex, AreaRef

# Two communities side by side; community A has grids A1 (with a hole) and A2, community B has one grid B1.
#  y=2 +------+------+------+
#      |  A1  |  A2  |  B1  |   hole in A1: (0.4..0.6, 0.4..0.6) is not part of any grid
#  y=0 +------+------+------+
#      x=0    x=1    x=2    x=3
REFS = [
    AreaRef(1, "community", "A", "A", None),
    AreaRef(2, "community", "B", "B", None),
    AreaRef(3, "grid", "A001", "A1", "A"),
    AreaRef(4, "grid", "A002", "A2", "A"),
    AreaRef(5, "grid", "B001", "B1", "B"),
]
A1 = Polygon([(0, 0), (1, 0), (1, 2), (0, 2)], [[(0.4, 0.4), (0.6, 0.4), (0.6, 0.6), (0.4, 0.6)]])
GEOMS = [box(0, 0, 2, 2), box(2, 0, 3, 2), A1, box(1, 0, 2, 2), box(2, 0, 3, 2)]


@pytest.fixture(scope="module")
def index():
    return AreaIndex(REFS, GEOMS)


@pytest.mark.parametrize(
    "case,lon,lat,leaf,flags,candidates",
    [
        ("inside", 0.2, 1.5, "A001", [], []),
        ("edge_between_grids_same_community", 1.0, 1.5, "A001", [FLAG_ON_BOUNDARY], ["A002"]),
        ("edge_between_communities", 2.0, 0.5, "A002", [FLAG_ON_BOUNDARY], ["B001"]),
        ("shared_vertex_top", 2.0, 2.0, "A002", [FLAG_ON_BOUNDARY], ["B001"]),
        ("outer_corner_vertex", 0.0, 0.0, "A001", [], []),
        ("in_hole", 0.5, 0.5, None, [FLAG_OUTSIDE], []),
        ("on_hole_boundary", 0.4, 0.5, "A001", [], []),
        ("outside_every_grid", 5.0, 5.0, None, [FLAG_OUTSIDE], []),
    ],
)
def test_named_cases(index, case, lon, lat, leaf, flags, candidates):
    loc = index.locate(lon, lat)
    assert loc.leaf_code == leaf
    assert loc.flags == flags
    assert loc.candidates == candidates


def test_chain_goes_from_outermost_to_leaf(index):
    assert [a.code for a in index.locate(2.5, 1).chain] == ["B", "B001"]


def test_batch_equals_single_point_lookup(index):
    rng = np.random.default_rng(3)
    lon = np.concatenate([rng.uniform(-0.5, 3.5, 2000), [1.0, 2.0, 0.5, 2.0]])
    lat = np.concatenate([rng.uniform(-0.5, 2.5, 2000), [1.0, 2.0, 0.5, 0.0]])
    batch = index.locate_many(lon, lat)
    for i in range(len(lon)):
        single = index.locate(lon[i], lat[i]).leaf_code
        assert (index.leaves[batch[i]].code if batch[i] >= 0 else None) == single


# Two 0.001° (~100 m) grids side by side near Kunming, for the distance-based flags.
#   A: 102.700..102.701   B: 102.701..102.702   (lat 25.000..25.001)
METRIC_REFS = [AreaRef(1, "grid", "G1", "A", None), AreaRef(2, "grid", "G2", "B", None)]
METRIC_GEOMS = [box(102.700, 25.000, 102.701, 25.001), box(102.701, 25.000, 102.702, 25.001)]
M_PER_DEG_LON = 111_320 * np.cos(np.radians(25.0005))


@pytest.fixture(scope="module")
def metric():
    return AreaIndex(METRIC_REFS, METRIC_GEOMS)


@pytest.mark.parametrize(
    "case,dx_m,near_m,accuracy_m,leaf,flags,near",
    [
        ("5m_from_edge_within_10m", -5.0, 10, None, "G1", ["near_boundary"], ["G2"]),
        ("5m_from_edge_near_check_3m", -5.0, 3, None, "G1", [], []),
        ("5m_from_edge_accuracy_8m_widens", -5.0, 3, 8, "G1", ["near_boundary"], ["G2"]),
        ("40m_from_edge_accuracy_8m", -40.0, 10, 8, "G1", [], []),
        ("on_the_edge_tie_and_no_near_duplicate", 0.0, 10, None, "G1", ["on_boundary"], []),
        ("east_side_3m", 3.0, 10, None, "G2", ["near_boundary"], ["G1"]),
    ],
)
def test_near_boundary_named_cases(metric, case, dx_m, near_m, accuracy_m, leaf, flags, near):
    loc = metric.locate(102.701 + dx_m / M_PER_DEG_LON, 25.0005, near_m=near_m, accuracy_m=accuracy_m)
    assert loc.leaf_code == leaf and loc.flags == flags
    assert [n["code"] for n in loc.near] == near
    for n in loc.near:
        assert n["distance_m"] == pytest.approx(abs(dx_m), rel=0.01)
    if "on_boundary" in flags:
        assert loc.tie_rule == "smallest_code_wins" and loc.candidates == ["G2"]


@pytest.mark.parametrize(
    "case,dx_m,nearest_m,leaf,method,flags",
    [
        ("50m_east_nearest_within_100m", 50.0, 100, "G2", "nearest", ["outside_all_grids", "assigned_to_nearest"]),
        ("50m_east_nearest_within_30m", 50.0, 30, None, "coordinates", ["outside_all_grids"]),
        ("50m_east_nearest_off", 50.0, 0, None, "coordinates", ["outside_all_grids"]),
    ],
)
def test_outside_with_nearest_named_cases(metric, case, dx_m, nearest_m, leaf, method, flags):
    loc = metric.locate(102.702 + dx_m / M_PER_DEG_LON, 25.0005, nearest_m=nearest_m)
    assert loc.leaf_code == leaf and loc.method == method and loc.flags == flags
    if leaf:
        assert loc.distance_m == pytest.approx(dx_m, rel=0.01)


def test_service_area_distance(metric):
    assert metric.distance_to_service_area_m(102.7015, 25.0005) == 0
    assert metric.distance_to_service_area_m(102.702 + 1000 / M_PER_DEG_LON, 25.0005) == pytest.approx(1000, rel=0.01)


def test_warm_makes_what_a_first_answer_reads():
    """A server warms its index when it loads it: afterwards one point's answer, nearest grids included, makes
    nothing more (at 200,000 leaves the first answer made 2–3 s of objects while requests queued behind it)."""
    fresh = AreaIndex(REFS, GEOMS)
    fresh.warm()
    made = set(fresh._lazy)
    assert "tree" in made
    fresh.locate(5.0, 1.0, near_m=50.0, nearest_m=500_000.0)
    fresh.locate(0.2, 1.5, near_m=50.0)
    assert set(fresh._lazy) == made, f"made on first answer after warm(): {sorted(set(fresh._lazy) - made)}"
    assert "leaves" not in made  # nearest grids need the codes, not 200,000 area objects


def test_areas_by_code_are_made_as_they_are_asked_for():
    """`by_code` answers as the dict of every area it replaced (a province's 260,000 AreaRefs took 1.2 s of a
    server's warm-up) and makes only the areas asked for."""
    index = AreaIndex(REFS, GEOMS)
    by_code = index.by_code
    assert not by_code._made
    first = REFS[-1]
    assert by_code[first.code] == first and by_code.get(first.code) is by_code[first.code]
    assert set(by_code._made) == {first.code}
    assert first.code in by_code and "no-such-code" not in by_code and None not in by_code
    assert by_code.get("no-such-code") is None and by_code.get("") is None
    with pytest.raises(KeyError):
        by_code["no-such-code"]
    assert list(by_code) == sorted(r.code for r in REFS) and len(by_code) == len(REFS)
    assert dict(by_code) == {r.code: r for r in REFS}
    assert index.leaves == [by_code[c] for c in index.leaf_codes_sorted.tolist()]
