"""A precomputed cell index that answers "which leaf covers this point" exactly, and fast.

The bounding box of all leaves is cut into a raster of small cells (in degrees, about square in metres). Every
cell is classified once, when the index is built:

* **interior** — no leaf boundary comes within `EPS` of the cell, so one leaf covers all of it (or none does);
  a point in such a cell is answered by one array read;
* **boundary** — some boundary passes through or near it; the cell keeps the list of leaves whose boundary touches
  it, plus the leaf covering its centre. A point there is tested against those leaves only, with a crossing-number
  test (the segment from the cell's centre to the point against the candidates' edges in the cell): compiled by
  numba, or in numpy for a whole batch when numba is not loaded (`CellIndex.query`, same answers);
* **overlap** — covered by two leaves without a boundary near (invalid, overlapping data); answered by the fallback.

The crossing test is exact for any point that is more than `EPS` (1e-9°, about 0.1 mm) away from every tested
edge: the intersection abscissa is computed to ~1e-13°. A point closer than that — on an edge, on a vertex — is
reported as *unresolved* and the caller answers it with the GEOS reference (STRtree, predicate covers), so the
result is always the reference's, ties included. See `AreaIndex.locate_many`.
"""

from __future__ import annotations

import math
import sys
import threading
from collections.abc import Iterable
from typing import Any

import numpy as np
import numpy.typing as npt
import shapely
from shapely.geometry.base import BaseGeometry

EPS = 1e-9
BLOCK_SHIFT = 4  # the raster is stored in blocks of 16 × 16 cells; only blocks near a polygon are allocated
BLOCK = 1 << BLOCK_SHIFT
STATUS_OK = 0
STATUS_UNRESOLVED = 1

_CACHE = True
# the numba kernels, compiled (or loaded from numba's cache) on first use by `_jit`: building an index and single
# lookups use them; `CellIndex.query` uses them only when they are loaded already, and numpy otherwise
_KERNELS = (
    "_cell_at",
    "_mark_blocks",
    "_edge_test",
    "_pip",
    "_orient_sign",
    "_crosses",
    "_fill",
    "_mark",
    "_classify",
    "_pack",
    "_resolve",
    "_gather",
    "_resolve_many",
)
_JIT_LOCK = threading.Lock()
_JITTED = False


def _flatten(geoms: Iterable[BaseGeometry]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Ring coordinates of every polygon part, concatenated: xs, ys, ring offsets, and each polygon's first ring
    (a polygon's rings in order: each part's exterior, then its holes) — `shapely.to_ragged_array`'s layout."""
    arr = np.asarray(geoms if isinstance(geoms, np.ndarray) else list(geoms), dtype=object)
    kind, coords, offsets = shapely.to_ragged_array(arr)
    ring_off = offsets[0].astype(np.int64)
    if kind == shapely.GeometryType.MULTIPOLYGON:
        poly_ring = offsets[1].astype(np.int64)[offsets[2]]
    elif kind == shapely.GeometryType.POLYGON:
        poly_ring = offsets[1].astype(np.int64)
    else:
        raise ValueError(f"the cell index is made of polygons, not of {kind.name.lower()}s")
    return (
        np.ascontiguousarray(coords[:, 0], dtype=np.float64),
        np.ascontiguousarray(coords[:, 1], dtype=np.float64),
        ring_off,
        poly_ring,
    )


def _cell_at(row: int, col: int, blocks: np.ndarray, nbx: int) -> int:
    """Position in `label` of the raster cell (row, col): its block's first cell (block 0: the block of outside
    cells every unallocated block reads) plus the cell's place in its block, row-major."""
    return int(
        np.int64(blocks[(row >> BLOCK_SHIFT) * nbx + (col >> BLOCK_SHIFT)]) * (BLOCK * BLOCK)
        + ((row & (BLOCK - 1)) << BLOCK_SHIFT)
        + (col & (BLOCK - 1))
    )


def _mark_blocks(
    bounds: np.ndarray, x0: float, y0: float, dx: float, dy: float, nx: int, ny: int, nbx: int, used: np.ndarray
) -> None:
    """Mark the blocks that a polygon's bounding box, one cell wider on every side, reaches: every cell the fill
    and the edge marking write is in one of them."""
    for p in range(bounds.shape[0]):
        c0 = max(0, int(math.floor((bounds[p, 0] - x0) / dx)) - 1)
        c1 = min(nx - 1, int(math.floor((bounds[p, 2] - x0) / dx)) + 1)
        r0 = max(0, int(math.floor((bounds[p, 1] - y0) / dy)) - 1)
        r1 = min(ny - 1, int(math.floor((bounds[p, 3] - y0) / dy)) + 1)
        for br in range(r0 >> BLOCK_SHIFT, (r1 >> BLOCK_SHIFT) + 1):
            for bc in range(c0 >> BLOCK_SHIFT, (c1 >> BLOCK_SHIFT) + 1):
                used[br * nbx + bc] = 1


def _edge_test(k: int, px: float, py: float, xs: np.ndarray, ys: np.ndarray, eps: float) -> int:
    """Edge k (vertex k to k + 1) against the ray from (px, py) towards +x: 1 it crosses the ray, 0 it does not,
    -1 the point is within `eps` of it (horizontally where it crosses the ray's line; else in the plane)."""
    y1 = ys[k]
    y2 = ys[k + 1]
    if (y1 > py) != (y2 > py):
        x1 = xs[k]
        xi = x1 + (py - y1) * (xs[k + 1] - x1) / (y2 - y1)
        d = px - xi
        if -eps <= d <= eps:
            return -1
        return 1 if d < 0.0 else 0
    if min(y1, y2) - eps <= py <= max(y1, y2) + eps:
        # an edge ending on the ray's line or lying along it: is the point on it?
        x1 = xs[k]
        x2 = xs[k + 1]
        if min(x1, x2) - eps <= px <= max(x1, x2) + eps:
            dx = x2 - x1
            dy = y2 - y1
            ll = dx * dx + dy * dy
            t = 0.0 if ll == 0.0 else ((px - x1) * dx + (py - y1) * dy) / ll
            t = min(1.0, max(0.0, t))
            ex = x1 + t * dx - px
            ey = y1 + t * dy - py
            if ex * ex + ey * ey <= eps * eps:
                return -1
    return 0


def _pip(
    p: int | np.integer[Any],
    px: float,
    py: float,
    xs: np.ndarray,
    ys: np.ndarray,
    ring_off: np.ndarray,
    poly_ring: np.ndarray,
    eps: float,
) -> int:
    """Crossing-number test of polygon `p`: 1 inside, 0 outside, -1 within `eps` of its boundary."""
    inside = False
    for r in range(poly_ring[p], poly_ring[p + 1]):
        for k in range(ring_off[r], ring_off[r + 1] - 1):
            t = _edge_test(k, px, py, xs, ys, eps)
            if t < 0:
                return -1
            if t == 1:
                inside = not inside
    return 1 if inside else 0


def _fill(
    n_poly: int,
    xs: np.ndarray,
    ys: np.ndarray,
    ring_off: np.ndarray,
    poly_ring: np.ndarray,
    bounds: np.ndarray,
    x0: float,
    y0: float,
    dx: float,
    dy: float,
    nx: int,
    ny: int,
    blocks: np.ndarray,
    nbx: int,
    label: np.ndarray,
    nfill: np.ndarray,
) -> None:
    """Scan-convert every polygon at cell centres; the smallest polygon index is written last and so wins.

    Each edge is visited once per polygon: the row centres it crosses get its crossing abscissa (bucketed by row,
    then each row's few crossings sorted), rather than every edge being tested against every row of the
    polygon's bounding box."""
    for p in range(n_poly - 1, -1, -1):
        r0 = max(0, int(math.floor((bounds[p, 1] - y0) / dy - 0.5)))
        r1 = min(ny - 1, int(math.ceil((bounds[p, 3] - y0) / dy - 0.5)))
        if r1 < r0:
            continue
        n_rows = r1 - r0 + 1
        start = np.zeros(n_rows + 1, np.int64)
        for r in range(poly_ring[p], poly_ring[p + 1]):  # the crossings of each row, counted
            for k in range(ring_off[r], ring_off[r + 1] - 1):
                y1 = ys[k]
                y2 = ys[k + 1]
                lo = max(r0, int(math.floor((min(y1, y2) - y0) / dy - 0.5)) - 1)
                hi = min(r1, int(math.ceil((max(y1, y2) - y0) / dy - 0.5)) + 1)
                for row in range(lo, hi + 1):
                    yc = y0 + (row + 0.5) * dy
                    if (y1 > yc) != (y2 > yc):
                        start[row - r0 + 1] += 1
        for j in range(n_rows):
            start[j + 1] += start[j]
        crossings = np.empty(start[n_rows], np.float64)
        fill_at = start[:n_rows].copy()
        for r in range(poly_ring[p], poly_ring[p + 1]):  # and written, row by row
            for k in range(ring_off[r], ring_off[r + 1] - 1):
                y1 = ys[k]
                y2 = ys[k + 1]
                lo = max(r0, int(math.floor((min(y1, y2) - y0) / dy - 0.5)) - 1)
                hi = min(r1, int(math.ceil((max(y1, y2) - y0) / dy - 0.5)) + 1)
                for row in range(lo, hi + 1):
                    yc = y0 + (row + 0.5) * dy
                    if (y1 > yc) != (y2 > yc):
                        crossings[fill_at[row - r0]] = xs[k] + (yc - y1) * (xs[k + 1] - xs[k]) / (y2 - y1)
                        fill_at[row - r0] += 1
        for row in range(r0, r1 + 1):
            xs_row = crossings[start[row - r0] : start[row - r0 + 1]]
            xs_row.sort()
            for j in range(0, xs_row.shape[0] - 1, 2):
                c0 = max(0, int(math.ceil((xs_row[j] - x0) / dx - 0.5)))
                c1 = min(nx - 1, int(math.ceil((xs_row[j + 1] - x0) / dx - 0.5)) - 1)
                for c in range(c0, c1 + 1):
                    at = _cell_at(row, c, blocks, nbx)
                    label[at] = p
                    if nfill[at] < 255:
                        nfill[at] += 1


def _mark(
    n_poly: int,
    xs: np.ndarray,
    ys: np.ndarray,
    ring_off: np.ndarray,
    poly_ring: np.ndarray,
    x0: float,
    y0: float,
    dx: float,
    dy: float,
    nx: int,
    ny: int,
    blocks: np.ndarray,
    nbx: int,
    eps: float,
    at: np.ndarray,
    out_poly: np.ndarray,
    out_edge: np.ndarray,
    count_only: bool,
) -> int:
    """Every (cell, polygon, edge) triple such that the edge of the polygon comes within `eps` of the cell, bucketed
    by cell (a counting sort: no sort of the triples, no key per triple).

    Two passes over the edges. With `count_only`, `at[cell + 1]` counts the cell's triples (cells by their
    position in `label`); the caller turns `at` into each bucket's start (a cumulative sum). Then the triples are
    written into the buckets, polygon to `out_poly` and edge (its first vertex's index) to `out_edge`, and `at[cell]`
    ends as the end of the cell's bucket. Polygons are visited in order and their edges in ring order, so a
    bucket holds its polygons in ascending order and each polygon's edges in ring order. Returns the number of
    triples."""
    n = 0
    for p in range(n_poly):
        for r in range(poly_ring[p], poly_ring[p + 1]):
            for k in range(ring_off[r], ring_off[r + 1] - 1):
                xa = xs[k]
                ya = ys[k]
                xb = xs[k + 1]
                yb = ys[k + 1]
                if xa > xb:
                    xa, xb = xb, xa
                    ya, yb = yb, ya
                c0 = max(0, int(math.floor((xa - eps - x0) / dx)))
                c1 = min(nx - 1, int(math.floor((xb + eps - x0) / dx)))
                for c in range(c0, c1 + 1):
                    # the part of the edge within eps of this column, and its y-range
                    lo_x = max(xa, x0 + c * dx - eps)
                    hi_x = min(xb, x0 + (c + 1) * dx + eps)
                    if xb > xa and lo_x <= hi_x:
                        s = (yb - ya) / (xb - xa)
                        y_lo = ya + (lo_x - xa) * s
                        y_hi = ya + (hi_x - xa) * s
                        lo = min(y_lo, y_hi)
                        hi = max(y_lo, y_hi)
                    else:
                        lo = min(ya, yb)
                        hi = max(ya, yb)
                    q0 = max(0, int(math.floor((lo - eps - y0) / dy)))
                    q1 = min(ny - 1, int(math.floor((hi + eps - y0) / dy)))
                    for q in range(q0, q1 + 1):
                        cell = _cell_at(q, c, blocks, nbx)
                        if count_only:
                            at[cell + 1] += 1
                        else:
                            i = at[cell]
                            out_poly[i] = p
                            out_edge[i] = k
                            at[cell] = i + 1
                        n += 1
    return n


def _orient_sign(ax: float, ay: float, bx: float, by: float, cx: float, cy: float) -> int:
    """Sign of the orientation of (a, b, c), or 0 when floating point cannot tell (Shewchuk's filter, widened)."""
    left = (bx - ax) * (cy - ay)
    right = (by - ay) * (cx - ax)
    det = left - right
    bound = 1e-15 * (abs(left) + abs(right))
    if det > bound:
        return 1
    if det < -bound:
        return -1
    return 0


def _crosses(cx: float, cy: float, qx: float, qy: float, ax: float, ay: float, bx: float, by: float) -> int:
    """1 if segment c-q properly crosses edge a-b, 0 if it certainly does not, -1 if that cannot be told."""
    s1 = _orient_sign(ax, ay, bx, by, cx, cy)
    s2 = _orient_sign(ax, ay, bx, by, qx, qy)
    if s1 != 0 and s1 == s2:
        return 0
    s3 = _orient_sign(cx, cy, qx, qy, ax, ay)
    s4 = _orient_sign(cx, cy, qx, qy, bx, by)
    if s3 != 0 and s3 == s4:
        return 0
    if s1 * s2 == -1 and s3 * s4 == -1:
        return 1
    return -1


def _classify(
    ends: np.ndarray,
    polys: np.ndarray,
    edges: np.ndarray,
    label: np.ndarray,
    nfill: np.ndarray,
    x0: float,
    y0: float,
    dx: float,
    dy: float,
    block_row: np.ndarray,
    block_col: np.ndarray,
    xs: np.ndarray,
    ys: np.ndarray,
    ring_off: np.ndarray,
    poly_ring: np.ndarray,
    eps: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Turn the (polygon, edge) buckets of the cells (`_mark`: cell c's bucket ends at `ends[c]` and starts where
    the previous one ends) into boundary cells.

    `label` is recoded: >= 0 interior leaf, -1 outside, -2 overlap (fallback), <= -3 boundary cell -(v + 3).
    A boundary cell lists its candidate polygons in ascending order, each with whether the cell's centre is
    inside it and the candidate's edges that touch the cell (`cell_off` → candidates, `cand_off` → edges).
    When the centre is too close to a boundary to be classified, the cell's candidates are tested in full
    (`cell_full`)."""
    n_cells = label.shape[0]
    nb_cells = 0
    n_cand = 0
    start = 0
    for cell in range(n_cells):
        stop = ends[cell]
        if stop > start:
            nb_cells += 1
            n_cand += 1  # room for the centre's leaf
            prev = -1
            for i in range(start, stop):
                if polys[i] != prev:
                    n_cand += 1
                    prev = polys[i]
        start = stop
    cell_off = np.zeros(nb_cells + 1, np.int64)
    cell_full = np.zeros(nb_cells, np.uint8)
    cand_poly = np.empty(n_cand, np.int32)
    cand_in = np.zeros(n_cand, np.uint8)
    cand_off = np.zeros(n_cand + 1, np.int64)
    m = 0  # candidates written
    b = 0
    start = 0
    for cell in range(n_cells):
        stop = ends[cell]
        if stop == start:
            continue
        blk = cell >> (2 * BLOCK_SHIFT)
        row = block_row[blk] * BLOCK + ((cell >> BLOCK_SHIFT) & (BLOCK - 1))
        col = block_col[blk] * BLOCK + (cell & (BLOCK - 1))
        cxr = x0 + (col + 0.5) * dx
        cyr = y0 + (row + 0.5) * dy
        centre = label[cell]
        pending = centre >= 0
        full = False
        i = start
        while i < stop:
            p = polys[i]
            if pending and centre < p:
                cand_poly[m] = centre
                cand_in[m] = 1
                cand_off[m + 1] = cand_off[m]
                m += 1
                pending = False
            if pending and centre == p:
                pending = False
            cand_poly[m] = p
            k0 = i
            while i < stop and polys[i] == p:
                i += 1
            cand_off[m + 1] = cand_off[m] + (i - k0)
            if nfill[cell] <= 1:
                # the centre is in the polygon the fill wrote there, if any (the same crossings as `_pip`, which
                # can only differ within eps of an edge; an edge that near the centre touches the cell, so is one
                # of this polygon's edges listed here)
                res = 1 if p == centre else 0
                for e in range(k0, i):
                    if _edge_test(edges[e], cxr, cyr, xs, ys, eps) < 0:
                        res = -1
                        break
            else:
                res = _pip(p, cxr, cyr, xs, ys, ring_off, poly_ring, eps)
            if res < 0:
                full = True
            cand_in[m] = 1 if res == 1 else 0
            m += 1
        if pending:
            cand_poly[m] = centre
            cand_in[m] = 1
            cand_off[m + 1] = cand_off[m]
            m += 1
        b += 1
        cell_off[b] = m
        cell_full[b - 1] = 1 if full else 0
        label[cell] = -2 if nfill[cell] > 1 else -3 - (b - 1)
        start = stop
    return cell_off, cell_full, cand_poly[:m], cand_in[:m], cand_off[: m + 1]


def _pack(
    cell_off: np.ndarray,
    cell_full: np.ndarray,
    cand_poly: np.ndarray,
    cand_in: np.ndarray,
    cand_off: np.ndarray,
    edges: np.ndarray,
    xs: np.ndarray,
    ys: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Lay each boundary cell out as one contiguous run of int32, so that answering a point there touches one
    cache line of it: [n_candidates, full, then per candidate: polygon, inside-at-centre, n_edges, and each edge as
    the index k of its first vertex in xs/ys (the edge runs from vertex k to k + 1)]. An edge is 4 bytes here
    instead of its 32 bytes of coordinates: at 200,000 grids the cells hold a few million edges."""
    nb_cells = cell_off.shape[0] - 1
    blob_off = np.zeros(nb_cells + 1, np.int64)
    for b in range(nb_cells):
        size = 2
        for j in range(cell_off[b], cell_off[b + 1]):
            size += 3 + (cand_off[j + 1] - cand_off[j])
        blob_off[b + 1] = blob_off[b] + size
    blob = np.empty(blob_off[nb_cells], np.int32)
    for b in range(nb_cells):
        o = blob_off[b]
        blob[o] = cell_off[b + 1] - cell_off[b]
        blob[o + 1] = cell_full[b]
        o += 2
        for j in range(cell_off[b], cell_off[b + 1]):
            blob[o] = cand_poly[j]
            blob[o + 1] = cand_in[j]
            blob[o + 2] = cand_off[j + 1] - cand_off[j]
            o += 3
            for e in range(cand_off[j], cand_off[j + 1]):
                blob[o] = edges[e]
                o += 1
    return blob_off, blob


def _resolve(
    b: int,
    col: int,
    row: int,
    px: float,
    py: float,
    x0: float,
    y0: float,
    dx: float,
    dy: float,
    blob_off: np.ndarray,
    blob: np.ndarray,
    xs: np.ndarray,
    ys: np.ndarray,
    ring_off: np.ndarray,
    poly_ring: np.ndarray,
    eps: float,
) -> tuple[int, int]:
    """(winner, status) of a point in boundary cell `b` (at col, row)."""
    o = blob_off[b]
    n_cand = int(blob[o])
    full = blob[o + 1] != 0
    o += 2
    cxr = x0 + (col + 0.5) * dx
    cyr = y0 + (row + 0.5) * dy
    same = px == cxr and py == cyr
    win = -1
    for _ in range(n_cand):
        p = int(blob[o])
        res = int(blob[o + 1])
        n_edges = int(blob[o + 2])
        o += 3
        if full:
            res = _pip(p, px, py, xs, ys, ring_off, poly_ring, eps)
            if res < 0:
                return -1, STATUS_UNRESOLVED
        elif not same:
            for _e in range(n_edges):
                k = blob[o]
                c = _crosses(cxr, cyr, px, py, xs[k], ys[k], xs[k + 1], ys[k + 1])
                if c < 0:
                    return -1, STATUS_UNRESOLVED
                res ^= c
                o += 1
        if full or same:
            o += n_edges
        if res == 1:
            if win >= 0:  # two leaves cover the point: only overlapping data does this
                return -1, STATUS_UNRESOLVED
            win = p
    return win, STATUS_OK


def _gather(
    px_arr: np.ndarray,
    py_arr: np.ndarray,
    x0: float,
    y0: float,
    inv_dx: float,
    inv_dy: float,
    nx: int,
    ny: int,
    blocks: np.ndarray,
    nbx: int,
    label: np.ndarray,
    out: np.ndarray,
) -> int:
    """Every point's cell label, branch-free so that the memory reads overlap; returns how many points fell in
    boundary or overlap cells (label <= -2)."""
    n_hard = 0
    for i in range(px_arr.shape[0]):
        fx = (px_arr[i] - x0) * inv_dx
        fy = (py_arr[i] - y0) * inv_dy
        ok = (fx >= 0.0) & (fy >= 0.0) & (fx < nx) & (fy < ny)
        idx = _cell_at(int(fy), int(fx), blocks, nbx) if ok else 0  # label 0: the outside block
        v = label[idx]
        out[i] = v
        n_hard += v <= -2
    return n_hard


def _resolve_many(
    order: np.ndarray,
    px_arr: np.ndarray,
    py_arr: np.ndarray,
    x0: float,
    y0: float,
    inv_dx: float,
    inv_dy: float,
    dx: float,
    dy: float,
    label: np.ndarray,
    blob_off: np.ndarray,
    blob: np.ndarray,
    xs: np.ndarray,
    ys: np.ndarray,
    ring_off: np.ndarray,
    poly_ring: np.ndarray,
    eps: float,
    out: np.ndarray,
    status: np.ndarray,
) -> None:
    """Resolve the points `order` (in boundary or overlap cells), visited in cell order for memory locality."""
    for i in order:
        v = out[i]
        if v == -2:
            out[i] = -1
            status[i] = STATUS_UNRESOLVED
            continue
        px = px_arr[i]
        py = py_arr[i]
        col = int((px - x0) * inv_dx)
        row = int((py - y0) * inv_dy)
        w, st = _resolve(-3 - v, col, row, px, py, x0, y0, dx, dy, blob_off, blob, xs, ys, ring_off, poly_ring, eps)
        out[i] = w
        status[i] = st


def _jit() -> None:
    """Compile the kernels above with numba, in place (the module's names become numba dispatchers), once per
    process. Compiled code is cached on disk (`cache=True`: next to this file, or in numba's user-wide cache folder
    or $NUMBA_CACHE_DIR when that is not writable); where no cache folder can be written (a read-only install
    and home), the kernels are compiled in memory instead."""
    global _JITTED
    if _JITTED:
        return
    with _JIT_LOCK:
        if _JITTED:  # another thread compiled them meanwhile
            return  # type: ignore[unreachable]
        import numba

        module = sys.modules[__name__]
        for name in _KERNELS:  # callees first: a kernel compiled later calls their dispatchers
            func = getattr(module, name)
            try:
                compiled = numba.njit(cache=_CACHE, nogil=True)(func)
            except RuntimeError:  # "cannot cache function …: no locator available": nowhere to write the cache
                compiled = numba.njit(cache=False, nogil=True)(func)
            setattr(module, name, compiled)
        _JITTED = True


def jit_loaded() -> bool:
    """Whether this process has the compiled kernels (`_jit` ran)."""
    return _JITTED


def _orient_np(ax: Any, ay: Any, bx: Any, by: Any, cx: Any, cy: Any) -> np.ndarray:
    """`_orient_sign` over arrays (the same arithmetic, so the same signs)."""
    left = (bx - ax) * (cy - ay)
    right = (by - ay) * (cx - ax)
    det = left - right
    bound = 1e-15 * (np.abs(left) + np.abs(right))
    signs: np.ndarray = (det > bound).astype(np.int8) - (det < -bound).astype(np.int8)
    return signs


def _crosses_np(cx: Any, cy: Any, qx: Any, qy: Any, ax: Any, ay: Any, bx: Any, by: Any) -> np.ndarray:
    """`_crosses` over arrays: 1 crosses, 0 certainly not, -1 cannot be told."""
    s1 = _orient_np(ax, ay, bx, by, cx, cy)
    s2 = _orient_np(ax, ay, bx, by, qx, qy)
    s3 = _orient_np(cx, cy, qx, qy, ax, ay)
    s4 = _orient_np(cx, cy, qx, qy, bx, by)
    no = ((s1 != 0) & (s1 == s2)) | ((s3 != 0) & (s3 == s4))
    yes = (s1 * s2 == -1) & (s3 * s4 == -1)
    return np.where(no, 0, np.where(yes, 1, -1)).astype(np.int8)


def _query_np(
    cells: CellIndex,
    lon: np.ndarray,
    lat: np.ndarray,
    out: np.ndarray,
    status: np.ndarray,
    clear: np.ndarray | None = None,
    margin: float = 0.0,
) -> None:
    """`_gather` and `_resolve_many` in numpy: the same cells, candidates and crossing tests, so the same answers;
    a point in a cell whose candidates are tested in full (`cell_full`, rare) is left to the reference, as is one
    the crossing tests cannot decide. Used when the numba kernels are not loaded: a process that only loads an
    index file does not pay numba's start-up (~0.4 s of imports and cache loading). With `clear`, also which
    points are in an interior cell and farther than `margin` from its sides (`CellIndex.clear_of`)."""
    fx = (lon - cells.x0) * cells.inv_dx
    fy = (lat - cells.y0) * cells.inv_dy
    with np.errstate(invalid="ignore"):
        ok = (fx >= 0.0) & (fy >= 0.0) & (fx < cells.nx) & (fy < cells.ny)
    col = np.where(ok, fx, 0.0).astype(np.int64)
    row = np.where(ok, fy, 0.0).astype(np.int64)
    cell = cells._cell_at(row, col)
    cell[~ok] = 0  # the outside block
    v = cells.label[cell]
    out[:] = v
    if clear is not None:
        _clear(v, fx, fy, col, row, cells.dx, cells.dy, margin, clear)
    hard = np.flatnonzero(v <= -2)
    if not len(hard):
        return
    overlap = hard[v[hard] == -2]
    out[overlap] = -1
    status[overlap] = STATUS_UNRESOLVED
    hard = hard[v[hard] <= -3]
    if not len(hard):
        return
    blob, xs, ys = cells.blob, cells.xs, cells.ys
    px, py = lon[hard], lat[hard]
    c, r = col[hard], row[hard]
    cxr = cells.x0 + (c + 0.5) * cells.dx
    cyr = cells.y0 + (r + 0.5) * cells.dy
    same = (px == cxr) & (py == cyr)
    o = cells.blob_off[-3 - v[hard]]
    n_cand = blob[o].astype(np.int64)
    unresolved = blob[o + 1] != 0  # tested in full: the reference answers
    win = np.full(len(hard), -1, np.int64)
    count = np.zeros(len(hard), np.int64)
    sel = np.flatnonzero(~unresolved & (n_cand > 0))
    oo = o[sel] + 2
    left = n_cand[sel]
    while len(sel):  # candidate k of every point at once
        poly = blob[oo].astype(np.int64)
        res = blob[oo + 1].astype(np.int8)
        n_edges = blob[oo + 2].astype(np.int64)
        oo = oo + 3
        e_sel = np.flatnonzero((n_edges > 0) & ~same[sel])
        eo = oo[e_sel]
        e_left = n_edges[e_sel]
        while len(e_sel):  # edge j of those candidates at once
            pts = sel[e_sel]
            k = blob[eo]
            crossed = _crosses_np(cxr[pts], cyr[pts], px[pts], py[pts], xs[k], ys[k], xs[k + 1], ys[k + 1])
            unresolved[pts] |= crossed < 0
            res[e_sel] ^= (crossed == 1).astype(np.int8)
            eo = eo + 1
            e_left = e_left - 1
            keep = e_left > 0
            e_sel, eo, e_left = e_sel[keep], eo[keep], e_left[keep]
        oo = oo + n_edges
        hit = res == 1
        count[sel[hit]] += 1  # sel holds each point once: no repeated index
        win[sel[hit]] = poly[hit]
        left = left - 1
        keep = left > 0
        sel, oo, left = sel[keep], oo[keep], left[keep]
    unresolved |= count > 1  # two leaves cover the point: only overlapping data does this
    out[hard] = np.where(unresolved, -1, win)
    status[hard] = np.where(unresolved, STATUS_UNRESOLVED, STATUS_OK)


def _segment_distance(
    px: np.ndarray, py: np.ndarray, ax: np.ndarray, ay: np.ndarray, bx: np.ndarray, by: np.ndarray
) -> np.ndarray:
    """Distance from each point to its segment a-b."""
    dx, dy = bx - ax, by - ay
    ll = dx * dx + dy * dy
    with np.errstate(invalid="ignore", divide="ignore"):
        t = np.where(ll > 0.0, ((px - ax) * dx + (py - ay) * dy) / ll, 0.0)
    t = np.clip(t, 0.0, 1.0)
    distance: np.ndarray = np.hypot(ax + t * dx - px, ay + t * dy - py)
    return distance


def _clear(
    v: np.ndarray,
    fx: np.ndarray,
    fy: np.ndarray,
    col: np.ndarray,
    row: np.ndarray,
    dx: float,
    dy: float,
    margin: float,
    clear: np.ndarray,
) -> None:
    """Into `clear`: the cell is interior (v >= 0) and each of its four sides is farther than `margin` from the
    point, (fx - col) * dx and so on — the terms whose minimum `batch` compared before, so the same points."""
    np.greater_equal(v, 0, out=clear)
    with np.errstate(invalid="ignore"):
        clear &= (fx - col) * dx > margin
        clear &= (col + 1 - fx) * dx > margin
        clear &= (fy - row) * dy > margin
        clear &= (row + 1 - fy) * dy > margin


class CellIndex:
    """The cell raster over polygons given in tie-break order (index 0 wins ties); see the module doc."""

    def __init__(self, geoms: Iterable[BaseGeometry], cells_per_leaf: float = 400.0, max_cells: int = 48_000_000):
        geoms = list(geoms)
        self.n = len(geoms)
        flat: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] = (
            _flatten(geoms) if geoms else (np.zeros(0), np.zeros(0), np.zeros(1, np.int64), np.zeros(1, np.int64))
        )
        self.xs, self.ys, self.ring_off, self.poly_ring = flat
        bounds = shapely.bounds(np.asarray(geoms, dtype=object)) if geoms else np.zeros((0, 4))
        if not geoms:
            self.x0 = self.y0 = 0.0
            self.dx = self.dy = self.inv_dx = self.inv_dy = 1.0
            self.nx = self.ny = self.nbx = 1
            self.blocks = np.zeros(1, np.int32)
            self.label = np.full(BLOCK * BLOCK, -1, np.int32)
            return
        minx, miny = bounds[:, 0].min(), bounds[:, 1].min()
        maxx, maxy = bounds[:, 2].max(), bounds[:, 3].max()
        coslat = max(0.05, math.cos(math.radians((miny + maxy) / 2)))
        # cell side: a leaf of median size spans about sqrt(cells_per_leaf) cells; never more than max_cells cells
        widths = (bounds[:, 2] - bounds[:, 0]) * coslat
        heights = bounds[:, 3] - bounds[:, 1]
        typical = float(np.median(np.sqrt(np.maximum(widths * heights, 1e-18)))) * 0.8
        side = typical / math.sqrt(cells_per_leaf)
        span_x, span_y = (maxx - minx) * coslat, maxy - miny
        side = max(side, math.sqrt(span_x * span_y / max_cells), 1e-7)
        self.dy = side
        self.dx = side / coslat
        # one spare cell around everything: the raster's edge is never touched by a boundary
        self.x0 = minx - self.dx
        self.y0 = miny - self.dy
        self.nx = int(math.ceil((maxx - minx) / self.dx)) + 3
        self.ny = int(math.ceil((maxy - miny) / self.dy)) + 3
        _jit()
        # the raster in blocks of BLOCK × BLOCK cells, only those a polygon comes near allocated: a province's
        # districts cover a seventh of their bounding box, whose empty cells would be most of the raster
        self.nbx = (self.nx + BLOCK - 1) >> BLOCK_SHIFT
        nby = (self.ny + BLOCK - 1) >> BLOCK_SHIFT
        used = np.zeros(self.nbx * nby, np.uint8)
        _mark_blocks(bounds, self.x0, self.y0, self.dx, self.dy, self.nx, self.ny, self.nbx, used)
        allocated = np.flatnonzero(used)
        del used
        self.blocks = np.zeros(self.nbx * nby, np.int32)  # block 0: all outside, read by every other block
        self.blocks[allocated] = np.arange(1, len(allocated) + 1, dtype=np.int32)
        block_row = np.concatenate([[-1], allocated // self.nbx]).astype(np.int64)
        block_col = np.concatenate([[-1], allocated % self.nbx]).astype(np.int64)
        n_cells = (len(allocated) + 1) * BLOCK * BLOCK
        label = np.full(n_cells, -1, np.int32)
        nfill = np.zeros(n_cells, np.uint8)
        _fill(
            self.n,
            self.xs,
            self.ys,
            self.ring_off,
            self.poly_ring,
            bounds,
            self.x0,
            self.y0,
            self.dx,
            self.dy,
            self.nx,
            self.ny,
            self.blocks,
            self.nbx,
            label,
            nfill,
        )
        args = (
            self.n,
            self.xs,
            self.ys,
            self.ring_off,
            self.poly_ring,
            self.x0,
            self.y0,
            self.dx,
            self.dy,
            self.nx,
            self.ny,
            self.blocks,
            self.nbx,
            EPS,
        )
        at = np.zeros(n_cells + 1, np.int32)  # per cell: its triples, then where its bucket starts, then ends
        count = _mark(*args, at, np.zeros(0, np.int32), np.zeros(0, np.int32), True)
        if count >= 2**31:
            at = at.astype(np.int64)
        np.cumsum(at, out=at)
        polys = np.empty(count, np.int32)
        edges = np.empty(count, np.int32)
        _mark(*args, at, polys, edges, False)
        classified = _classify(
            at,
            polys,
            edges,
            label,
            nfill,
            self.x0,
            self.y0,
            self.dx,
            self.dy,
            block_row,
            block_col,
            self.xs,
            self.ys,
            self.ring_off,
            self.poly_ring,
            EPS,
        )
        del at, polys, nfill
        self.blob_off, self.blob = _pack(*classified, edges, self.xs, self.ys)
        del classified, edges
        self.label = label
        self.inv_dx = 1.0 / self.dx
        self.inv_dy = 1.0 / self.dy

    def _cell_at(self, row: np.ndarray, col: np.ndarray) -> np.ndarray:
        """`_cell_at` over arrays of rows and columns (inside the raster)."""
        at: np.ndarray = (
            self.blocks[(row >> BLOCK_SHIFT) * self.nbx + (col >> BLOCK_SHIFT)].astype(np.int64) * (BLOCK * BLOCK)
            + ((row & (BLOCK - 1)) << BLOCK_SHIFT)
            + (col & (BLOCK - 1))
        )
        return at

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self._arrays() if isinstance(a, np.ndarray))

    def _arrays(self) -> tuple[Any, ...]:
        return (
            self.x0,
            self.y0,
            self.inv_dx,
            self.inv_dy,
            self.dx,
            self.dy,
            self.nx,
            self.ny,
            self.blocks,
            self.label,
            self.blob_off,
            self.blob,
            self.xs,
            self.ys,
            self.ring_off,
            self.poly_ring,
            EPS,
        )

    def stats(self) -> dict[str, Any]:
        """Cell counts by kind, for reports and benchmarks."""
        lab = self.label[BLOCK * BLOCK :]  # the allocated blocks (not the outside one)
        return {
            "cells": int(lab.size),
            "raster_cells": self.nx * self.ny,
            "nx": self.nx,
            "ny": self.ny,
            "cell_m": round(self.dy * 111_320, 2),
            "interior": int((lab >= 0).sum()),
            "outside": int((lab == -1).sum()),
            "boundary": int((lab <= -3).sum()),
            "overlap": int((lab == -2).sum()),
            "mbytes": self.nbytes / 1e6,
        }

    def query(
        self,
        lon: npt.ArrayLike,
        lat: npt.ArrayLike,
        *,
        kernel: str | None = None,
        clear: np.ndarray | None = None,
        margin: float = 0.0,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(winner index or -1, status) for arrays of WGS84 points; status 1 = answer with the reference.

        `kernel`: "numba" (the compiled kernels), "numpy", or None: numba when this process has the kernels loaded
        already (it built an index, or answered a single point near an edge), else numpy. Both give the same
        winners; numpy may leave a few more points (those in cells tested in full) to the reference. `clear`: a
        boolean array filled as `clear_of(lon, lat, margin)` fills it (in the same pass, with numpy)."""
        lon = np.ascontiguousarray(lon, dtype=np.float64)
        lat = np.ascontiguousarray(lat, dtype=np.float64)
        out = np.empty(lon.shape[0], np.int32)
        status = np.empty(lon.shape[0], np.uint8)
        status[:] = STATUS_OK
        if kernel not in (None, "numba", "numpy"):
            raise ValueError(f"kernel: {kernel!r}; accepted: 'numba', 'numpy' or None")
        if not self.n:
            out[:] = -1
        elif kernel == "numpy" or (kernel is None and not _JITTED):
            _query_np(self, lon, lat, out, status, clear, margin)
            clear = None
        else:
            _jit()
            n_hard = _gather(
                lon,
                lat,
                self.x0,
                self.y0,
                self.inv_dx,
                self.inv_dy,
                self.nx,
                self.ny,
                self.blocks,
                self.nbx,
                self.label,
                out,
            )
            if n_hard:
                hard = np.flatnonzero(out <= -2)
                # descending label = ascending boundary cell number = the order of the packed cells in memory
                hard = hard[np.argsort(-out[hard], kind="stable")] if n_hard > 1 else hard
                _resolve_many(
                    hard,
                    lon,
                    lat,
                    self.x0,
                    self.y0,
                    self.inv_dx,
                    self.inv_dy,
                    self.dx,
                    self.dy,
                    self.label,
                    self.blob_off,
                    self.blob,
                    self.xs,
                    self.ys,
                    self.ring_off,
                    self.poly_ring,
                    EPS,
                    out,
                    status,
                )
        if clear is not None:
            clear[:] = self.clear_of(lon, lat, margin) if self.n else False
        nan = np.isnan(lon) | np.isnan(lat)
        if nan.any():
            out[nan] = -1
            status[nan] = STATUS_UNRESOLVED
        return out, status

    def clear_of(self, lon: np.ndarray, lat: np.ndarray, margin: float) -> np.ndarray:
        """Which points are in an interior cell (no boundary within EPS of it) and farther than `margin` (degrees)
        from the cell's sides: no boundary can be within `margin` of those points."""
        lon = np.ascontiguousarray(lon, dtype=np.float64)
        lat = np.ascontiguousarray(lat, dtype=np.float64)
        label, fx, fy, col, row = self._cells_of(lon, lat)
        clear = np.empty(len(lon), bool)
        _clear(label, fx, fy, col, row, self.dx, self.dy, margin, clear)
        return clear

    def _cells_of(
        self, lon: np.ndarray, lat: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per point: its cell's label, fractional column and row, and the cell's column and row (a point off the
        raster, or NaN, reads margin cell 0: outside)."""
        fx = (lon - self.x0) * self.inv_dx
        fy = (lat - self.y0) * self.inv_dy
        with np.errstate(invalid="ignore"):
            ok = (fx >= 0.0) & (fy >= 0.0) & (fx < self.nx) & (fy < self.ny)
        col = np.where(ok, fx, 0.0).astype(np.int64)
        row = np.where(ok, fy, 0.0).astype(np.int64)
        cell = self._cell_at(row, col)
        cell[~ok] = 0
        return self.label[cell], fx, fy, col, row

    def candidates(self, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(point, polygon) pairs for the points in boundary cells: the cell's candidates (every polygon whose
        boundary comes within EPS of the cell, and the one covering its centre), a superset of the polygons
        covering the point — a polygon whose boundary stays away from the cell and that covers a point in it
        covers the whole cell, centre included. Also the points this cannot say for: in an overlap cell (no
        candidate list) or an interior one (its polygon covers it; only invalid data has another covering it),
        for the caller to ask GEOS about every polygon. Points in outside cells (and NaN) are covered by none."""
        empty = np.zeros(0, np.int64)
        if not self.n:
            return empty, empty, empty
        lon = np.ascontiguousarray(lon, dtype=np.float64)
        lat = np.ascontiguousarray(lat, dtype=np.float64)
        v = self._cells_of(lon, lat)[0]
        hard = np.flatnonzero(v <= -3)
        pts, polys = [empty], [empty]
        if len(hard):
            blob = self.blob
            o = self.blob_off[-3 - v[hard]]
            left = blob[o].astype(np.int64)
            sel = np.flatnonzero(left > 0)
            oo, left = o[sel] + 2, left[sel]
            while len(sel):  # candidate k of every point at once
                pts.append(hard[sel])
                polys.append(blob[oo].astype(np.int64))
                oo = oo + 3 + blob[oo + 2].astype(np.int64)
                left = left - 1
                keep = left > 0
                sel, oo, left = sel[keep], oo[keep], left[keep]
        return np.concatenate(pts), np.concatenate(polys), np.flatnonzero((v == -2) | (v >= 0))

    def near_edges(self, lon: np.ndarray, lat: np.ndarray, margin: float) -> np.ndarray:
        """Which points may lie within `margin` degrees of a polygon edge, as far as more than one polygon could
        cover them: a point in a boundary cell within `margin` of one of its cell's candidate edges or of a side of
        its cell (an edge that does not reach the cell is farther from the point than that side), and every point
        in an overlap cell. Points in interior and outside cells are not listed (one polygon covers the whole cell,
        or none). Distances in degrees, as GEOS measures them in WGS84."""
        lon = np.ascontiguousarray(lon, dtype=np.float64)
        lat = np.ascontiguousarray(lat, dtype=np.float64)
        out = np.zeros(len(lon), bool)
        if not self.n:
            return out
        v, fx, fy, col, row = self._cells_of(lon, lat)
        out[v == -2] = True
        hard = np.flatnonzero(v <= -3)
        if not len(hard):
            return out
        near = (
            np.minimum(
                np.minimum(fx[hard] - col[hard], col[hard] + 1 - fx[hard]) * self.dx,
                np.minimum(fy[hard] - row[hard], row[hard] + 1 - fy[hard]) * self.dy,
            )
            <= margin
        )
        blob, xs, ys = self.blob, self.xs, self.ys
        px, py = lon[hard], lat[hard]
        o = self.blob_off[-3 - v[hard]]
        left = blob[o].astype(np.int64)
        sel = np.flatnonzero(left > 0)
        oo, left = o[sel] + 2, left[sel]
        while len(sel):  # candidate k of every point at once
            n_edges = blob[oo + 2].astype(np.int64)
            e_sel = np.flatnonzero(n_edges > 0)
            eo, e_left = oo[e_sel] + 3, n_edges[e_sel]
            while len(e_sel):  # edge j of those candidates at once
                at, k = sel[e_sel], blob[eo]
                near[at] |= _segment_distance(px[at], py[at], xs[k], ys[k], xs[k + 1], ys[k + 1]) <= margin
                eo, e_left = eo + 1, e_left - 1
                keep = e_left > 0
                e_sel, eo, e_left = e_sel[keep], eo[keep], e_left[keep]
            oo = oo + 3 + n_edges
            left = left - 1
            keep = left > 0
            sel, oo, left = sel[keep], oo[keep], left[keep]
        out[hard] = near
        return out

    def query_one(self, lon: float, lat: float) -> tuple[int, int]:
        """One point: (winner index or -1, status). Interior cells are answered without leaving Python."""
        if not self.n:
            return -1, STATUS_OK
        fx = (lon - self.x0) * self.inv_dx
        fy = (lat - self.y0) * self.inv_dy
        if not (0.0 <= fx < self.nx and 0.0 <= fy < self.ny):
            return -1, (STATUS_OK if (lon == lon and lat == lat) else STATUS_UNRESOLVED)
        r, c = int(fy), int(fx)
        block = int(self.blocks[(r >> BLOCK_SHIFT) * self.nbx + (c >> BLOCK_SHIFT)])
        v = int(self.label[block * BLOCK * BLOCK + ((r & (BLOCK - 1)) << BLOCK_SHIFT) + (c & (BLOCK - 1))])
        if v >= -1:
            return v, STATUS_OK
        if v == -2:
            return -1, STATUS_UNRESOLVED
        _jit()
        return _resolve(
            -3 - v,
            int(fx),
            int(fy),
            float(lon),
            float(lat),
            self.x0,
            self.y0,
            self.dx,
            self.dy,
            self.blob_off,
            self.blob,
            self.xs,
            self.ys,
            self.ring_off,
            self.poly_ring,
            EPS,
        )
