"""The fast lookup equals the GEOS reference and a brute-force check for every point, ties included."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import MultiPolygon, Polygon, box

from gridmap.lookup import AreaIndex, AreaRef

sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
from synthetic import tiling  # noqa: E402


def make_index(geoms, cells_per_leaf=256.0) -> AreaIndex:
    refs = [AreaRef(i, "grid", f"{i:05d}", f"g{i}", None) for i in range(len(geoms))]
    return AreaIndex(refs, list(geoms), cells_per_leaf=cells_per_leaf)


def brute_force(geoms, lon, lat) -> np.ndarray:
    """Per point: the smallest index of a polygon that covers it, by testing every polygon."""
    pts = shapely.points(lon, lat)
    out = np.full(len(pts), -1)
    for i in range(len(geoms) - 1, -1, -1):
        out[shapely.covers(geoms[i], pts)] = i
    return out


def edge_points(geoms, rng, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Vertices, and points interpolated on edges: the places where ties and rounding live."""
    coords = shapely.get_coordinates(shapely.boundary(np.asarray(geoms, dtype=object)))
    pick = rng.integers(0, len(coords) - 1, k)
    t = rng.choice([0.0, 0.5, 0.25, rng.uniform()], k)
    xy = coords[pick] * (1 - t)[:, None] + coords[pick + 1] * t[:, None]
    return xy[:, 0], xy[:, 1]


@settings(max_examples=25, deadline=None)
@given(n=st.integers(3, 120), seed=st.integers(0, 10_000), cells=st.sampled_from([4.0, 64.0, 400.0]))
def test_random_tilings_equal_brute_force(n, seed, cells):
    geoms = tiling(n, seed)
    index = make_index(geoms, cells)
    rng = np.random.default_rng(seed)
    x0, y0, x1, y1 = shapely.total_bounds(geoms)
    lon = np.concatenate([rng.uniform(x0 - 0.01, x1 + 0.01, 3000), edge_points(geoms, rng, 1500)[0]])
    lat = np.concatenate([rng.uniform(y0 - 0.01, y1 + 0.01, 3000), edge_points(geoms, rng, 1500)[1]])
    expected = brute_force(geoms, lon, lat)
    assert np.array_equal(index.locate_many(lon, lat), expected)
    assert np.array_equal(index.locate_many_reference(lon, lat), expected)
    for i in rng.integers(0, len(lon), 300):
        assert index.leaf_at(lon[i], lat[i]) == expected[i]
    # every point inside the coverage gets a grid, and off the internal edges exactly one grid covers it
    pts = shapely.points(lon, lat)
    inside = shapely.contains(shapely.union_all(geoms), pts)
    assert (expected[inside] >= 0).all()
    off_edges = inside & (shapely.distance(shapely.union_all(shapely.boundary(geoms)), pts) > 1e-9)
    covers = shapely.covers(np.asarray(geoms, dtype=object)[:, None], pts[off_edges][None, :]).sum(axis=0)
    assert (covers == 1).all()


@settings(max_examples=25, deadline=None)
@given(nx=st.integers(1, 6), ny=st.integers(1, 6), step=st.sampled_from([0.001, 0.01, 0.25, 1.0]),
       data=st.data())
def test_axis_aligned_grids_with_points_exactly_on_edges(nx, ny, step, data):
    """Boxes on a lattice, points on the lattice (edges, shared vertices) and between: exact ties everywhere."""
    x0, y0 = 102.7, 25.0
    geoms = [box(x0 + i * step, y0 + j * step, x0 + (i + 1) * step, y0 + (j + 1) * step)
             for j in range(ny) for i in range(nx)]
    index = make_index(geoms, data.draw(st.sampled_from([1.0, 16.0, 256.0])))
    fx = np.array(data.draw(st.lists(st.integers(-2, 4 * nx + 2), min_size=50, max_size=50))) / 4
    fy = np.array(data.draw(st.lists(st.integers(-2, 4 * ny + 2), min_size=50, max_size=50))) / 4
    lon, lat = x0 + fx * step, y0 + fy * step
    expected = brute_force(geoms, lon, lat)
    assert np.array_equal(index.locate_many(lon, lat), expected)
    for k in range(len(lon)):
        codes = index.leaf_codes_at(lon[k], lat[k])
        loc = index.locate(lon[k], lat[k])
        assert loc.leaf_code == (codes[0] if codes else None)
        assert (len(codes) > 1) == ("on_boundary" in loc.flags)


def test_holes_multipolygons_and_overlaps_equal_brute_force():
    ring = Polygon([(0, 0), (4, 0), (4, 4), (0, 4)], [[(1, 1), (3, 1), (3, 3), (1, 3)]])
    island = Polygon([(1.5, 1.5), (2.5, 1.5), (2.5, 2.5), (1.5, 2.5)])
    multi = MultiPolygon([box(5, 0, 6, 1), box(7, 0, 8, 1)])
    overlapping = box(3.5, 3.5, 5.5, 5.5)  # invalid data: overlaps the ring; answers must still equal GEOS
    geoms = [ring, island, multi, overlapping]
    index = make_index(geoms, 64.0)
    rng = np.random.default_rng(4)
    lon = np.concatenate([rng.uniform(-1, 9, 20_000), np.arange(0, 8.25, 0.25).repeat(33)])
    lat = np.concatenate([rng.uniform(-1, 6, 20_000), np.tile(np.arange(0, 8.25, 0.25), 33)])
    assert np.array_equal(index.locate_many(lon, lat), brute_force(geoms, lon, lat))


def test_nan_and_far_points_are_outside():
    index = make_index([box(0, 0, 1, 1)])
    out = index.locate_many(np.array([np.nan, 0.5, 500.0, -1e300]), np.array([0.5, np.nan, 0.5, 0.5]))
    assert out.tolist() == [-1, -1, -1, -1]


@pytest.mark.parametrize("n", [2000])
def test_synthetic_2000_grids_one_million_points_sample(n):
    """The benchmark's data at its smallest size: a large random sample agrees with the reference."""
    geoms = tiling(n)
    index = make_index(geoms)
    rng = np.random.default_rng(1)
    x0, y0, x1, y1 = shapely.total_bounds(geoms)
    lon, lat = rng.uniform(x0, x1, 200_000), rng.uniform(y0, y1, 200_000)
    assert np.array_equal(index.locate_many(lon, lat), index.locate_many_reference(lon, lat))
