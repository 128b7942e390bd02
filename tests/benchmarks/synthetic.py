"""Synthetic tiled grid sets for benchmarks and property tests: wiggly Voronoi tilings with shared edges.

N random seeds in a 20 km × 20 km box in EPSG:4547 (CGCS2000 3-degree Gauss-Krüger, central meridian 114°E,
near Shenzhen); Voronoi cells clipped to the box, densified to 40–60 vertices, then every vertex moved by one
smooth displacement field that is zero on the box edge. Shared edges stay shared, so the cells tile the box with
no gap and no overlap, but the boundaries wiggle like streets. Returned in WGS84.
"""

from __future__ import annotations

import numpy as np
import pyproj
import shapely

BOX = (495_000.0, 2_485_000.0, 515_000.0, 2_505_000.0)


def _displace(x: np.ndarray, y: np.ndarray, amplitude: float, waves: float) -> tuple[np.ndarray, np.ndarray]:
    x0, y0, x1, y1 = BOX
    u = (x - x0) / (x1 - x0)
    v = (y - y0) / (y1 - y0)
    damp = np.sin(np.pi * u) * np.sin(np.pi * v)  # zero on the box edge
    k = 2 * np.pi * waves
    dx = amplitude * damp * np.sin(k * v + 1.3) * np.cos(0.7 * k * u)
    dy = amplitude * damp * np.sin(k * u + 0.4) * np.cos(0.9 * k * v)
    return x + dx, y + dy


def tiling(n: int, seed: int = 1) -> np.ndarray:
    """`n` polygons (about; Voronoi of n seeds) tiling BOX, in WGS84, with 40–60 vertices each."""
    rng = np.random.default_rng(seed)
    x0, y0, x1, y1 = BOX
    seeds = shapely.multipoints(np.column_stack([rng.uniform(x0, x1, n), rng.uniform(y0, y1, n)]))
    cells = shapely.get_parts(shapely.voronoi_polygons(seeds, extend_to=shapely.box(*BOX)))
    cells = shapely.intersection(cells, shapely.box(*BOX))
    cells = cells[~shapely.is_empty(cells)]
    cells = np.array([c if c.geom_type == "Polygon" else max(c.geoms, key=lambda g: g.area) for c in cells])
    # densify each cell to about 48 vertices; the shared edges get the same new vertices from both sides
    mean_side = np.sqrt((x1 - x0) * (y1 - y0) / len(cells))
    cells = shapely.segmentize(cells, mean_side * 4 / 48)
    cell_size = mean_side
    amplitude = 0.12 * cell_size
    waves = (x1 - x0) / cell_size / 1.7
    transformer = pyproj.Transformer.from_crs(4547, 4326, always_xy=True)

    def move(coords: np.ndarray) -> np.ndarray:
        x, y = _displace(coords[:, 0], coords[:, 1], amplitude, waves)
        lon, lat = transformer.transform(x, y)
        return np.column_stack([lon, lat])

    out = shapely.transform(cells, move)
    return shapely.make_valid(out) if not shapely.is_valid(out).all() else out


def points(m: int, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """`m` uniform random points in BOX, in WGS84."""
    rng = np.random.default_rng(seed)
    x0, y0, x1, y1 = BOX
    transformer = pyproj.Transformer.from_crs(4547, 4326, always_xy=True)
    return transformer.transform(rng.uniform(x0, x1, m), rng.uniform(y0, y1, m))
