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

from gridmap.geo.index import AreaIndex, AreaRef

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
@given(nx=st.integers(1, 6), ny=st.integers(1, 6), step=st.sampled_from([0.001, 0.01, 0.25, 1.0]), data=st.data())
def test_axis_aligned_grids_with_points_exactly_on_edges(nx, ny, step, data):
    """Boxes on a lattice, points on the lattice (edges, shared vertices) and between: exact ties everywhere."""
    x0, y0 = 102.7, 25.0
    geoms = [
        box(x0 + i * step, y0 + j * step, x0 + (i + 1) * step, y0 + (j + 1) * step)
        for j in range(ny)
        for i in range(nx)
    ]
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


@settings(max_examples=25, deadline=None)
@given(n=st.integers(3, 120), seed=st.integers(0, 10_000), cells=st.sampled_from([4.0, 64.0, 400.0]))
def test_numpy_kernel_gives_the_numba_kernels_answers(n, seed, cells):
    """`CellIndex.query` in numpy (used when numba is not loaded) decides every point the compiled kernels decide,
    the same way, and leaves the same points to the reference; `locate_many` then equals brute force either way."""
    import gridmap.geo.cells as ci

    geoms = tiling(n, seed)
    index = make_index(geoms, cells)
    rng = np.random.default_rng(seed)
    x0, y0, x1, y1 = shapely.total_bounds(geoms)
    cx = index.cells.x0 + (rng.integers(0, index.cells.nx, 500) + 0.5) * index.cells.dx  # cell centres
    cy = index.cells.y0 + (rng.integers(0, index.cells.ny, 500) + 0.5) * index.cells.dy
    ex, ey = edge_points(geoms, rng, 1500)
    lon = np.concatenate([rng.uniform(x0 - 0.01, x1 + 0.01, 3000), ex, cx, ex + 1e-10, [np.nan, x0]])
    lat = np.concatenate([rng.uniform(y0 - 0.01, y1 + 0.01, 3000), ey, cy, ey, [y0, np.nan]])
    fast, fast_status = index.cells.query(lon, lat, kernel="numba")
    plain, plain_status = index.cells.query(lon, lat, kernel="numpy")
    assert np.array_equal(fast_status, plain_status)
    assert np.array_equal(fast, plain)
    expected = brute_force(geoms, lon, lat)
    assert ci.jit_loaded()
    ci._JITTED = False  # as in a process that only loaded an index file: locate_many takes the numpy kernel
    try:
        assert np.array_equal(index.locate_many(lon, lat), expected)
    finally:
        ci._JITTED = True


def test_a_process_that_loads_an_index_file_does_not_import_numba(tmp_path):
    """An index unpickled in a fresh process answers batches without importing numba (its start-up costs more
    than the whole lookup of a million points); building one, or a single point near an edge, loads it."""
    import pickle
    import subprocess

    geoms = tiling(40, 3)
    index = make_index(geoms)
    (tmp_path / "index.pickle").write_bytes(pickle.dumps(index))
    x0, y0, x1, y1 = shapely.total_bounds(geoms)
    rng = np.random.default_rng(1)
    lon, lat = rng.uniform(x0, x1, 20_000), rng.uniform(y0, y1, 20_000)
    np.save(tmp_path / "pts.npy", np.stack([lon, lat]))
    np.save(tmp_path / "expected.npy", index.locate_many(lon, lat))
    script = (
        "import pickle, sys, numpy as np\n"
        f"index = pickle.loads(open({str(tmp_path / 'index.pickle')!r}, 'rb').read())\n"
        f"lon, lat = np.load({str(tmp_path / 'pts.npy')!r})\n"
        f"assert np.array_equal(index.locate_many(lon, lat), np.load({str(tmp_path / 'expected.npy')!r}))\n"
        "print('numba' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_kernels_compile_in_memory_where_no_cache_can_be_written(monkeypatch):
    """`cache=True` needs a writable cache folder; where numba finds none (a read-only install and home) it
    refuses to decorate, and the kernels are compiled without a cache instead of failing."""
    import numba

    import gridmap.geo.cells as ci

    calls = []
    real = numba.njit

    def njit(*args, **kwargs):
        calls.append(kwargs.get("cache"))
        if kwargs.get("cache"):
            raise RuntimeError("cannot cache function '_pip': no locator available for file 'cellindex.py'")
        return real(*args, **kwargs)

    originals = {name: getattr(ci, name) for name in ci._KERNELS}
    plain = {name: getattr(f, "py_func", f) for name, f in originals.items()}
    monkeypatch.setattr(numba, "njit", njit)
    monkeypatch.setattr(ci, "_JITTED", False)
    for name, func in plain.items():
        monkeypatch.setattr(ci, name, func)
    ci._jit()
    assert calls.count(True) == len(ci._KERNELS) and calls.count(False) == len(ci._KERNELS)
    assert isinstance(ci._orient_sign, numba.core.registry.CPUDispatcher)
    assert ci._orient_sign(0.0, 0.0, 1.0, 0.0, 0.0, 1.0) == 1  # compiled (one small kernel: the others alike)


def _cell_side_points(index, geoms, rng, k=500):
    x0, y0, x1, y1 = shapely.total_bounds(geoms)
    ex, ey = edge_points(geoms, rng, k)
    cols = rng.integers(0, index.cells.nx, 300)  # on cell sides, and just off them
    side = index.cells.x0 + cols * index.cells.dx + rng.choice([0.0, 1e-9, -1e-9, 3e-8], 300)
    lon = np.concatenate([rng.uniform(x0 - 0.01, x1 + 0.01, 2000), ex, side, [np.nan]])
    lat = np.concatenate([rng.uniform(y0 - 0.01, y1 + 0.01, 2000), ey, rng.uniform(y0, y1, 300), [y0]])
    return lon, lat


@settings(max_examples=15, deadline=None)
@given(n=st.integers(3, 80), seed=st.integers(0, 10_000), margin=st.sampled_from([0.0, 2e-8, 1e-4]))
def test_clear_of_sides_is_the_same_in_either_kernel(n, seed, margin):
    """`locate_many_clear`'s second answer (from the numpy pass, or `clear_of` after numba) is exactly the points
    `clear_of` lists: an interior cell, farther than the margin from each side."""
    geoms = tiling(n, seed)
    index = make_index(geoms, 64.0)
    lon, lat = _cell_side_points(index, geoms, np.random.default_rng(seed))
    before = index.cells.clear_of(lon, lat, margin)
    import gridmap.geo.cells as ci

    leaf_numba, clear_numba = index.locate_many_clear(lon, lat, margin)
    ci._JITTED = False
    try:
        leaf_numpy, clear_numpy = index.locate_many_clear(lon, lat, margin)
    finally:
        ci._JITTED = True
    assert np.array_equal(leaf_numba, leaf_numpy) and np.array_equal(leaf_numba, index.locate_many(lon, lat))
    assert np.array_equal(clear_numba, before) and np.array_equal(clear_numpy, before)


@settings(max_examples=15, deadline=None)
@given(n=st.integers(3, 80), seed=st.integers(0, 10_000), margin=st.sampled_from([2e-8, 1e-5, 1e-4]))
def test_near_edges_lists_every_point_that_two_grids_could_cover(n, seed, margin):
    """`CellIndex.near_edges` (what `batch.locate_arrays` asks GEOS about) lists every point in a boundary cell that
    lies within the margin of an edge (measured by GEOS), and every point two grids cover; it lists no point in an
    interior or outside cell, and no edge comes within EPS of a point in an interior cell."""
    import gridmap.geo.cells as ci

    geoms = tiling(n, seed)
    index = make_index(geoms, 64.0)
    rng = np.random.default_rng(seed)
    lon, lat = _cell_side_points(index, geoms, rng)
    ex, ey = edge_points(geoms, rng, 500)
    lon = np.concatenate([lon, ex + rng.uniform(-2 * margin, 2 * margin, 500)])
    lat = np.concatenate([lat, ey + rng.uniform(-2 * margin, 2 * margin, 500)])
    near = index.cells.near_edges(lon, lat, margin)
    label = index.cells._cells_of(lon, lat)[0]
    edges = shapely.union_all(shapely.boundary(np.asarray(geoms, dtype=object)))
    ok = ~(np.isnan(lon) | np.isnan(lat))
    dist = np.full(len(lon), np.inf)
    dist[ok] = shapely.distance(shapely.points(lon[ok], lat[ok]), edges)
    assert near[ok & (dist <= margin) & (label <= -2)].all()
    assert not near[label >= -1].any()
    assert (dist[ok & (label >= 0)] > ci.EPS).all()
    pt, _ = index.covering_pairs(lon, lat)
    assert near[np.bincount(pt, minlength=len(lon)) > 1].all()


@pytest.mark.parametrize("shape", ["tiling", "overlaps"])
def test_covering_pairs_equal_the_strtree(shape):
    """Every leaf covering each point, found from the point's cell candidates (or the tree in an overlap cell),
    equals GEOS over every leaf — on edges, on vertices, in holes and where invalid data overlaps."""
    if shape == "tiling":
        geoms = list(tiling(150, 5))
    else:
        ring = Polygon([(0, 0), (4, 0), (4, 4), (0, 4)], [[(1, 1), (3, 1), (3, 3), (1, 3)]])
        geoms = [
            ring,
            box(1.5, 1.5, 2.5, 2.5),
            MultiPolygon([box(5, 0, 6, 1), box(7, 0, 8, 1)]),
            box(3.5, 3.5, 5.5, 5.5),
        ]
    index = make_index(geoms, 64.0)
    rng = np.random.default_rng(8)
    x0, y0, x1, y1 = shapely.total_bounds(geoms)
    ex, ey = edge_points(geoms, rng, 3000)
    lon = np.concatenate([rng.uniform(x0 - 0.01, x1 + 0.01, 3000), ex, [np.nan]])
    lat = np.concatenate([rng.uniform(y0 - 0.01, y1 + 0.01, 3000), ey, [0.5]])
    got = index.covering_pairs(lon, lat)
    tp, tl = shapely.STRtree(geoms).query(shapely.points(lon, lat), predicate="covered_by")
    order = np.lexsort((tl, tp))
    assert np.array_equal(got[0], tp[order]) and np.array_equal(got[1], tl[order])
    assert np.bincount(got[0], minlength=len(lon)).max() > 1  # ties were tested
