"""The in-memory lookup on hand-drawn grids: inside, on an edge, on a shared vertex, in a hole, outside."""

import numpy as np
import pytest
from shapely.geometry import Polygon, box

from gridmap.lookup import FLAG_ON_BOUNDARY, FLAG_OUTSIDE, AreaIndex, AreaRef

# Two communities side by side; community A has grids A1 (with a hole) and A2, community B has one grid B1.
#  y=2 +------+------+------+
#      |  A1  |  A2  |  B1  |   hole in A1: (0.4..0.6, 0.4..0.6) is not part of any grid
#  y=0 +------+------+------+
#      x=0    x=1    x=2    x=3
REFS = [AreaRef(1, "community", "A", "A", None), AreaRef(2, "community", "B", "B", None),
        AreaRef(3, "grid", "A001", "A1", "A"), AreaRef(4, "grid", "A002", "A2", "A"), AreaRef(5, "grid", "B001", "B1", "B")]
A1 = Polygon([(0, 0), (1, 0), (1, 2), (0, 2)], [[(0.4, 0.4), (0.6, 0.4), (0.6, 0.6), (0.4, 0.6)]])
GEOMS = [box(0, 0, 2, 2), box(2, 0, 3, 2), A1, box(1, 0, 2, 2), box(2, 0, 3, 2)]


@pytest.fixture(scope="module")
def index():
    return AreaIndex(REFS, GEOMS)


@pytest.mark.parametrize("case,lon,lat,leaf,flags,candidates", [
    ("inside", 0.2, 1.5, "A001", [], []),
    ("edge_between_grids_same_community", 1.0, 1.5, "A001", [FLAG_ON_BOUNDARY], ["A002"]),
    ("edge_between_communities", 2.0, 0.5, "A002", [FLAG_ON_BOUNDARY], ["B001"]),
    ("shared_vertex_top", 2.0, 2.0, "A002", [FLAG_ON_BOUNDARY], ["B001"]),
    ("outer_corner_vertex", 0.0, 0.0, "A001", [], []),
    ("in_hole", 0.5, 0.5, None, [FLAG_OUTSIDE], []),
    ("on_hole_boundary", 0.4, 0.5, "A001", [], []),
    ("outside_every_grid", 5.0, 5.0, None, [FLAG_OUTSIDE], []),
])
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
