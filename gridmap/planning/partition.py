"""Suggest a balanced partition of a community's grids (issue 13 §5), built on GerryChain.

The units are the community's micro-grids (the leaves; households on each row); two units are neighbours when they
share a boundary of positive length (rook adjacency). For a target count `n` and a tolerance (±10 % by default) a
proposal gives every unit a part so that each part's households are within the tolerance of the mean, each part is
connected in the unit graph (contiguous), parts are compact, and as few households as possible change grid.

How a proposal is found, deterministically from `seed` (one `random.Random(seed)` drives every draw):

1. the current plan itself, when it already has `n` grids that meet the tolerance and are contiguous (nothing moves,
   so nothing else is tried);
2. a repair of the current plan: grids are merged with a neighbour (too many) or split with GerryChain's
   `bipartition_tree` (too few) until there are `n`, then ReCom steps (merge two neighbouring parts, re-split the
   pair with `bipartition_tree` at the mean, keeping of a few splits the one that moves fewest households) until
   every part meets the tolerance;
3. several plans from GerryChain's `recursive_tree_part` (random spanning trees cut into balanced parts);

then each candidate is pulled towards the current plan by single-unit flips that keep the tolerance and contiguity
and move fewer households, and by ReCom steps that re-split two neighbouring parts, or three in a row, exhaustively
(every split of their micro-grids into contiguous parts within the tolerance, the one moving fewest households); parts
are matched to current grids by largest household overlap (Hungarian assignment,
`scipy.optimize.linear_sum_assignment`), and the candidate moving fewest households wins (ties: the more compact by
mean Polsby–Popper, then the one found first).

`propose(session, generation_id, area_code, n, ...)` returns the proposal without writing anything;
`open_as_draft(session, proposal, ...)` writes it as a new draft copied from the generation (matched grids keep
their codes, extra grids get new codes, dropped grids' codes retire, moved micro-grids get new codes under their new
grid; grid outlines are exact coverage unions of their micro-grids, households and population sums);
`partition(...)` does both. Nothing here commits.
"""

from __future__ import annotations

import math
import random
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, SupportsInt, cast

import networkx as nx
import numpy as np
import shapely
import sqlalchemy as sa
from geoalchemy2.shape import from_shape, to_shape
from gerrychain import Graph
from gerrychain.partition import recursive_tree_part
from gerrychain.tree import BipartitionWarning, bipartition_tree
from scipy.optimize import linear_sum_assignment
from sqlalchemy.orm import Session

from gridmap.boundaries import check as bc
from gridmap.boundaries import codes as gcodes
from gridmap.boundaries.generations import create_draft, get_generation
from gridmap.errors import Conflict, InvalidInput, NotFound
from gridmap.geo import crs as gcrs
from gridmap.geo.coverage import as_multipolygon
from gridmap.store.tables import Area

MAX_N = 50
MIN_TOLERANCE, MAX_TOLERANCE = 0.01, 0.5
MAX_SEED = 2**31 - 1
TREE_PLANS = 24  # recursive_tree_part plans per proposal (half with the region surcharge)
GIVE_UP = 4  # … but no more after this many failed draws in a row from the start
RECOM_STEPS = 40  # ReCom steps of the repair
RESPLITS = 6  # bipartitions tried per ReCom step (the one moving fewest households is kept)
PAIR_UNITS = 14  # two neighbouring parts of up to this many micro-grids are re-split exhaustively (2^14 splits)
TRIPLE_UNITS = 10  # three parts in a row of up to this many micro-grids too (3^10 splits)
MAX_TREE_ATTEMPTS = 200  # spanning trees per bipartition before GerryChain gives up
SHARED_EDGE_M = 0.01  # a shared boundary shorter than this (metres) is a touch at a point, not adjacency
POP = "households"
GRID = "grid"  # node attribute: the unit's current grid (for GerryChain's region surcharge)
SURCHARGE = {GRID: 1.0}  # spanning trees cross current grid lines last, so cuts tend to follow them


@dataclass
class _Scope:
    """The community, its current grids and its micro-grids (the units), with the unit graph."""

    generation_id: int
    community: Area
    grids: list[Area]  # current grids, by code
    units: list[Area]  # micro-grids, by code; node i of the graph is units[i]
    current: list[int]  # index into `grids` of each unit's current grid
    households: np.ndarray
    population: np.ndarray
    area_m2: np.ndarray  # measured in metres (the district's Gauss-Krüger zone)
    perimeter_m: np.ndarray
    shared_m: dict[tuple[int, int], float]  # (i, j), i < j → shared boundary length in metres
    graph: nx.Graph[int] = field(repr=False)
    chain_graph: Graph = field(repr=False)
    subset: bool = False  # only some of the community's grids are re-partitioned

    def label(self) -> tuple[str, str]:
        """What is re-partitioned, in Chinese and English."""
        code = self.community.code
        if self.subset:
            return f"社区 {code} 所选网格", f"the chosen grids of community {code}"
        return f"社区 {code} ", f"community {code}"

    @property
    def total(self) -> int:
        return int(self.households.sum())


def _name_zh(n: int) -> str:
    digits = "零一二三四五六七八九"
    if n < 10:
        return digits[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return (digits[tens] if tens > 1 else "") + "十" + (digits[ones] if ones else "")
    return str(n)


def check_arguments(n: int, tolerance: float, seed: int) -> None:
    """Range checks on what the caller asks for, before any work."""
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_N:
        raise InvalidInput(
            f"n must be an integer from 1 to {MAX_N}, got {n!r}", field="n", zh=f"网格数：应为 1–{MAX_N} 的整数。"
        )
    if (
        isinstance(tolerance, bool)
        or not isinstance(tolerance, (int, float))
        or not math.isfinite(tolerance)
        or not MIN_TOLERANCE <= tolerance <= MAX_TOLERANCE
    ):
        raise InvalidInput(
            f"tolerance must be a fraction from {MIN_TOLERANCE} to {MAX_TOLERANCE}, e.g. 0.10 for ±10 "
            f"%, got {tolerance!r}",
            field="tolerance",
            zh=f"容差：应为 {MIN_TOLERANCE}–{MAX_TOLERANCE} 之间的比例（如 0.10 即 ±10 %）。",
        )
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise InvalidInput(
            f"seed must be an integer from 0 to {MAX_SEED}, got {seed!r}",
            field="seed",
            zh=f"随机种子：应为 0–{MAX_SEED} 的整数。",
        )


def _load(session: Session, generation_id: int, area_code: str, only: Sequence[str] | None = None) -> _Scope:
    get_generation(session, generation_id)
    if not isinstance(area_code, str) or not area_code.strip():
        raise InvalidInput("area must be a community code", field="area", zh="区域：应为社区编码。")
    area_code = area_code.strip()
    community = session.scalars(
        sa.select(Area).where(Area.generation_id == generation_id, Area.code == area_code)
    ).first()
    if community is None:
        raise NotFound(
            f"area: no area {area_code!r} in generation {generation_id}",
            field="area",
            zh=f"区域：第 {generation_id} 版边界中没有编码为 {area_code} 的区域。",
        )
    if community.level != "community":
        raise InvalidInput(
            f"area must be a community; {area_code} is a {community.level}",
            field="area",
            zh=f"区域：{area_code} 是{_level_zh(community.level)}，应为社区编码。",
        )
    grids = list(session.scalars(sa.select(Area).where(Area.parent_id == community.id).order_by(Area.code)))
    if not grids:
        raise InvalidInput(
            f"area: community {area_code} has no grids", field="area", zh=f"区域：社区 {area_code} 下没有网格。"
        )
    if only is not None:
        asked = [c.strip() if isinstance(c, str) else c for c in only]
        strange = sorted({repr(c) for c in asked} - {repr(g.code) for g in grids})
        if not asked or strange or len(set(asked)) != len(asked):
            raise InvalidInput(
                f"grids must be distinct codes of grids of community {area_code}",
                field="grids",
                zh=f"网格：应为社区 {area_code} "
                f"下互不重复的网格编码{('，不是：' + ', '.join(strange) if strange else '')}。",
            )
        grids = [g for g in grids if g.code in set(asked)]
    grid_index: dict[int | None, int] = {g.id: i for i, g in enumerate(grids)}
    units = list(session.scalars(sa.select(Area).where(Area.parent_id.in_(list(grid_index))).order_by(Area.code)))
    locked = sorted(a.code for a in [community, *grids, *units] if a.locked)
    if locked:
        fld = "grids" if only is not None else "area"
        raise Conflict(
            f"{fld}: {', '.join(locked[:5])} {('are' if len(locked) > 1 else 'is')} locked against edits; "
            "choose unlocked adjacent grids with grids",
            field=fld,
            zh=f"{fld}：{', '.join(locked[:5])}{(' 等' if len(locked) > 5 else '')}已锁定，不能重新划分；"
            "请在“网格”中只选未锁定的相邻网格。",
        )
    bare = sorted(g.code for g in grids if not any(u.parent_id == g.id for u in units))
    if bare:
        raise InvalidInput(
            "area: grids without micro-grids cannot be re-partitioned",
            field="area",
            zh=f"区域：网格 {', '.join(bare)} 没有微网格，无法按微网格重新划分。",
        )
    geoms = [to_shape(u.geom) for u in units]
    minx, miny, maxx, maxy = shapely.total_bounds(geoms)
    fwd, _ = gcrs.projector(bc.metric_epsg((minx + maxx) / 2, (miny + maxy) / 2))
    # vertices are projected one by one, so neighbours that share vertices in lon/lat share them in metres too
    metric = [shapely.transform(g, lambda xy: np.column_stack(fwd.transform(xy[:, 0], xy[:, 1]))) for g in geoms]
    boundaries = [m.boundary for m in metric]
    shared: dict[tuple[int, int], float] = {}
    tree = shapely.STRtree(metric)
    left, right = tree.query(metric, predicate="intersects")
    for i, j in zip(left.tolist(), right.tolist()):
        if i < j:
            length = float(boundaries[i].intersection(boundaries[j]).length)
            if length > SHARED_EDGE_M:
                shared[(i, j)] = length
    current = [grid_index[u.parent_id] for u in units]
    graph: nx.Graph[int] = nx.Graph()
    for i, u in enumerate(units):
        graph.add_node(i, **{POP: int(u.households or 0), GRID: current[i]})
    graph.add_edges_from(sorted(shared))
    households = np.array([int(u.households or 0) for u in units], dtype=np.int64)
    if not nx.is_connected(graph):
        parts = sorted((sorted(units[i].code for i in c) for c in nx.connected_components(graph)), key=len)
        what, fld = ("所选网格", "grids") if only is not None else (f"社区 {area_code} ", "area")
        raise InvalidInput(
            f"{fld}: the micro-grids are not connected: the grids must be adjacent",
            field=fld,
            zh=f"{fld}：{what}的微网格不连通（{len(parts)} 块，最小一块：{', '.join(parts[0])}），"
            "无法划分为连通的网格。",
        )
    return _Scope(
        generation_id=generation_id,
        community=community,
        grids=grids,
        units=units,
        current=current,
        households=households,
        population=np.array([int(u.population or 0) for u in units], dtype=np.int64),
        area_m2=np.array([m.area for m in metric]),
        perimeter_m=np.array([m.length for m in metric]),
        shared_m=shared,
        graph=graph,
        chain_graph=_chain_graph(graph),
        subset=only is not None,
    )


def _chain_graph(graph: nx.Graph[int]) -> Graph:
    """GerryChain's graph (rustworkx inside, about three times faster than networkx for spanning trees) whose node
    ids are the unit indices (nodes are added in order, so rustworkx gives them the same numbers)."""
    chain = Graph.from_networkx(graph.copy()).convert_from_nx_to_rx()
    if any(k != v for k, v in chain.get_nx_to_rx_node_id_map().items()):  # not expected; refuse rather than mix
        raise RuntimeError("gerrychain renumbered the unit graph's nodes")
    return chain


def _level_zh(level: str) -> str:
    from gridmap.store.tables import LEVEL_NAMES_ZH

    return LEVEL_NAMES_ZH.get(level, level)


# -- evaluating a plan -----------------------------------------------------------------------------------------------


def _parts(assign: Sequence[int], k: int) -> list[list[int]]:
    out: list[list[int]] = [[] for _ in range(k)]
    for unit, part in enumerate(assign):
        out[part].append(unit)
    return out


def _normalise(assign: Sequence[int]) -> list[int]:
    """Relabel parts 0..k-1 in order of their lowest unit (so equal plans compare equal)."""
    labels: dict[int, int] = {}
    return [labels.setdefault(p, len(labels)) for p in assign]


def _match(scope: _Scope, assign: Sequence[int], k: int) -> tuple[list[int | None], int]:
    """Match parts to current grids by largest household overlap; (grid index or None per part, households moved)."""
    overlap = np.zeros((k, len(scope.grids)), dtype=np.int64)
    for unit, part in enumerate(assign):
        overlap[part, scope.current[unit]] += scope.households[unit]
    # units with no households still count a little, so an empty-household unit does not decide a tie alone
    weight = overlap * 1000
    for unit, part in enumerate(assign):
        weight[part, scope.current[unit]] += 1
    rows, cols = linear_sum_assignment(weight, maximize=True)
    matched: list[int | None] = [None] * k
    kept = 0
    for r, c in zip(rows.tolist(), cols.tolist()):
        if weight[r, c] > 0:
            matched[r] = c
            kept += int(overlap[r, c])
    return matched, scope.total - kept


def _moved_units(scope: _Scope, assign: Sequence[int], matched: list[int | None]) -> list[int]:
    return [u for u, p in enumerate(assign) if matched[p] != scope.current[u]]


def _compactness(scope: _Scope, members: list[int]) -> float:
    """Polsby–Popper (4πA/P²) of the union of `members`, from unit areas, perimeters and shared edge lengths."""
    inside = set(members)
    area = float(scope.area_m2[members].sum())
    internal = sum(length for (i, j), length in scope.shared_m.items() if i in inside and j in inside)
    perimeter = float(scope.perimeter_m[members].sum()) - 2 * internal
    return 4 * math.pi * area / perimeter**2 if perimeter > 0 else 0.0


def _contiguous(scope: _Scope, members: list[int]) -> bool:
    return len(members) > 0 and nx.is_connected(scope.graph.subgraph(members))


def _pops(scope: _Scope, assign: Sequence[int], k: int) -> np.ndarray:
    return np.bincount(np.asarray(assign), weights=scope.households, minlength=k)


def _valid(scope: _Scope, assign: Sequence[int], k: int, tolerance: float) -> bool:
    mean = scope.total / k
    pops = _pops(scope, assign, k)
    if np.any(np.abs(pops - mean) > tolerance * mean + 1e-9):
        return False
    return all(_contiguous(scope, members) for members in _parts(assign, k))


# -- finding plans ---------------------------------------------------------------------------------------------------


def _bipartitions(
    scope: _Scope,
    nodes: set[int],
    target: float,
    epsilon: float,
    rng: random.Random,
    *,
    one_sided: bool = False,
    tries: int = 1,
) -> list[frozenset[int]]:
    """Up to `tries` connected subsets of `nodes` from GerryChain's `bipartition_tree` (each of households within
    `epsilon` of `target`, and, unless `one_sided`, the rest too), on spanning trees that cross current grid lines
    last; none when it finds no cut."""
    out: list[frozenset[int]] = []
    sub = scope.chain_graph.subgraph(sorted(nodes))
    for _ in range(tries):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", BipartitionWarning)
                cut = bipartition_tree(
                    sub,
                    pop_col=POP,
                    pop_target=target,
                    epsilon=epsilon,
                    single_district_cut=one_sided,
                    max_attempts=MAX_TREE_ATTEMPTS,
                    warn_attempts=MAX_TREE_ATTEMPTS + 1,
                    region_surcharge=SURCHARGE,
                    rng=rng,
                )
        except (RuntimeError, ValueError, KeyError):
            break
        out.append(frozenset(int(cast(SupportsInt, x)) for x in cut))  # the nodes are ints
    return out


def _tree_plans(
    scope: _Scope,
    n: int,
    tolerance: float,
    rng: random.Random,
    count: int,
    *,
    surcharge: dict[str, float] | None = None,
    give_up: int | None = None,
) -> list[list[int]]:
    """Plans from GerryChain's recursive_tree_part (some draws may fail: they are left out); with `surcharge`, on
    spanning trees that cross current grid lines last; with `give_up`, none after that many failed draws in a row
    from the start (the target is then very likely out of reach)."""
    plans: list[list[int]] = []
    fn = partial(
        bipartition_tree,
        max_attempts=MAX_TREE_ATTEMPTS,
        warn_attempts=MAX_TREE_ATTEMPTS + 1,
        region_surcharge=surcharge,
    )
    for draw in range(count):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", BipartitionWarning)
                flips = recursive_tree_part(
                    scope.chain_graph, list(range(n)), scope.total / n, POP, tolerance, bipartition_tree_fn=fn, rng=rng
                )
        except Exception:  # noqa: BLE001 - PopulationBalanceError, RuntimeError: this draw found no balanced plan
            if give_up is not None and not plans and draw + 1 >= give_up:
                break
            continue
        plans.append(_normalise([int(cast(SupportsInt, flips[u])) for u in range(len(scope.units))]))  # part numbers
    return plans


def _pair_moves(scope: _Scope, members: frozenset[int], keep: int, assign: list[int]) -> int:
    """Households of `members` that change part if they become part `keep` (the rest of the pair is counted the
    same way from the other side)."""
    return int(sum(scope.households[u] for u in members if assign[u] != keep))


def _repair(scope: _Scope, n: int, tolerance: float, rng: random.Random) -> list[int] | None:
    """Start from the current grids, reach `n` parts by merging or splitting, then ReCom steps until balanced."""
    assign = list(scope.current)
    k = len(scope.grids)
    mean = scope.total / n
    while k > n:  # merge the smallest part into its smallest neighbour
        pops = _pops(scope, assign, k)
        small = int(np.argmin(pops))
        neighbours = {assign[v] for u, p in enumerate(assign) if p == small for v in scope.graph[u]} - {small}
        if not neighbours:
            return None
        into = min(neighbours, key=lambda p: (pops[p], p))
        assign = _normalise([into if p == small else p for p in assign])
        k -= 1
    while k < n:  # cut a part of about the mean off the largest part
        pops = _pops(scope, assign, k)
        big = int(np.argmax(pops))
        nodes = {u for u, p in enumerate(assign) if p == big}
        if len(nodes) < 2:
            return None
        cuts = _bipartitions(scope, nodes, mean, max(tolerance, 0.5), rng, one_sided=True, tries=1) or _bipartitions(
            scope, nodes, pops[big] / 2, 0.9, rng, tries=1
        )
        if not cuts:
            return None
        for u in cuts[0]:
            assign[u] = k
        k += 1
    for _ in range(RECOM_STEPS):
        pops = _pops(scope, assign, k)
        excess = np.abs(pops - mean) - tolerance * mean
        if np.all(excess <= 1e-9) and all(_contiguous(scope, m) for m in _parts(assign, k)):
            return assign
        worst = int(np.argmax(excess))
        towards = sorted(
            {assign[v] for u, p in enumerate(assign) if p == worst for v in scope.graph[u]} - {worst},
            key=lambda p: (-(pops[worst] - mean) * (pops[p] - mean), p),
        )  # opposite sign first
        for other in towards:
            nodes = {u for u, p in enumerate(assign) if p in (worst, other)}
            pair = pops[worst] + pops[other]
            if abs(pair - 2 * mean) <= 2 * tolerance * mean:  # both halves can meet the tolerance
                cuts = _bipartitions(scope, nodes, mean, tolerance, rng, tries=RESPLITS)
            else:  # fix the worst part, the neighbour takes the difference on to the next step
                cuts = _bipartitions(scope, nodes, mean, tolerance, rng, one_sided=True, tries=RESPLITS)
                cuts = [c for c in cuts if _contiguous(scope, sorted(nodes - c))]
            if not cuts:
                continue

            def cost(cut: frozenset[int], keep: int, rest: int, nodes: set[int] = nodes) -> int:
                return _pair_moves(scope, cut, keep, assign) + _pair_moves(scope, frozenset(nodes - cut), rest, assign)

            best = min(cuts, key=lambda c: min(cost(c, worst, other), cost(c, other, worst)))
            keep, rest = (worst, other) if cost(best, worst, other) <= cost(best, other, worst) else (other, worst)
            for u in nodes:
                assign[u] = keep if u in best else rest
            break
        else:
            return None
    return assign if _valid(scope, assign, k, tolerance) else None


def _pull_towards_current(scope: _Scope, assign: list[int], k: int, tolerance: float) -> list[int]:
    """Single-unit flips (GerryChain's flip move, done greedily) that move fewer households while every part keeps
    the tolerance and stays contiguous: a unit goes back to the part matched with its current grid."""
    mean = scope.total / k
    lo, hi = mean * (1 - tolerance) - 1e-9, mean * (1 + tolerance) + 1e-9
    for _ in range(len(scope.units)):
        matched, _moved = _match(scope, assign, k)
        home = {g: p for p, g in enumerate(matched) if g is not None}
        pops = _pops(scope, assign, k)
        best: tuple[int, int, int] | None = None
        for u in sorted(_moved_units(scope, assign, matched), key=lambda u: (-scope.households[u], u)):
            src, dst = assign[u], home.get(scope.current[u])
            if dst is None or not any(assign[v] == dst for v in scope.graph[u]):
                continue
            h = scope.households[u]
            if not (pops[src] - h >= lo and pops[dst] + h <= hi):
                continue
            rest = [v for v, p in enumerate(assign) if p == src and v != u]
            if not _contiguous(scope, rest):
                continue
            best = (u, src, dst)
            break
        if best is None:
            return assign
        assign = list(assign)
        assign[best[0]] = best[2]
    return assign


def _connected_mask(mask: int, neighbours: list[int]) -> bool:
    """Whether the nodes in bit mask `mask` are connected, given each node's neighbours as a bit mask."""
    start = mask & -mask
    seen, frontier = start, start
    while frontier:
        reach = 0
        bits = frontier
        while bits:
            low = bits & -bits
            reach |= neighbours[low.bit_length() - 1]
            bits ^= low
        frontier = reach & mask & ~seen
        seen |= frontier
    return seen == mask


def _resplit(
    scope: _Scope, assign: list[int], group: tuple[int, ...], matched: list[int | None], lo: float, hi: float
) -> bool:
    """Re-split the micro-grids of the parts in `group` among them in the way that moves fewest households, every
    split into contiguous parts within [lo, hi] tried (numpy over all labellings, bit masks for contiguity);
    True when `assign` was changed for the better."""
    nodes = [u for u in range(len(assign)) if assign[u] in group]
    g, m = len(group), len(nodes)
    pos = {u: i for i, u in enumerate(nodes)}
    neighbours = [sum(1 << pos[v] for v in scope.graph[u] if v in pos) for u in nodes]
    hh = scope.households[nodes].astype(float)
    labels = (np.arange(g**m, dtype=np.int64)[:, None] // (g ** np.arange(m, dtype=np.int64))) % g
    ok = np.ones(len(labels), dtype=bool)
    cost = np.zeros(len(labels))
    for j, part in enumerate(group):
        inside = (labels == j).astype(float)
        pop = inside @ hh
        ok &= (pop >= lo) & (pop <= hi)
        cost += inside @ (np.array([matched[part] != scope.current[u] for u in nodes], dtype=float) * hh)
    now = sum(hh[i] for i, u in enumerate(nodes) if matched[assign[u]] != scope.current[u])
    order = np.argsort(cost, kind="stable")
    for idx in order[ok[order]]:
        if cost[idx] >= now - 0.5:
            return False
        row = labels[idx]
        masks = [sum(1 << i for i in range(m) if row[i] == j) for j in range(g)]
        if all(_connected_mask(mask, neighbours) for mask in masks):
            for i, u in enumerate(nodes):
                assign[u] = group[int(row[i])]
            return True
    return False


def _improve_groups(scope: _Scope, assign: list[int], k: int, tolerance: float) -> list[int]:
    """ReCom steps with an exhaustive split: two neighbouring parts (up to PAIR_UNITS micro-grids), then three in a
    row (up to TRIPLE_UNITS), are re-split in the way that moves fewest households, until no group improves."""
    mean = scope.total / k
    lo, hi = mean * (1 - tolerance) - 1e-9, mean * (1 + tolerance) + 1e-9
    assign = list(assign)
    for _ in range(4 * k):
        matched, _moved = _match(scope, assign, k)
        size = np.bincount(np.asarray(assign), minlength=k)
        touching: dict[int, set[int]] = {p: set() for p in range(k)}
        for i, j in scope.shared_m:
            if assign[i] != assign[j]:
                touching[assign[i]].add(assign[j])
                touching[assign[j]].add(assign[i])
        pairs = sorted({(a, b) for a in range(k) for b in touching[a] if a < b})
        triples = sorted(
            {tuple(sorted((a, b, c))) for b in range(k) for a in touching[b] for c in touching[b] if a < c}
        )
        groups = [grp for grp in pairs if size[list(grp)].sum() <= PAIR_UNITS] + [
            grp for grp in triples if size[list(grp)].sum() <= TRIPLE_UNITS
        ]
        if not any(_resplit(scope, assign, grp, matched, lo, hi) for grp in groups):
            return assign
    return assign


@dataclass
class _Candidate:
    assign: list[int]
    method: str
    moved: int = 0
    matched: list[int | None] = field(default_factory=list)
    compactness: float = 0.0


def _max_deviation(scope: _Scope, assign: Sequence[int], k: int) -> float:
    mean = scope.total / k
    return float(np.max(np.abs(_pops(scope, assign, k) - mean)) / mean)


def _best_tolerance(scope: _Scope, n: int, tolerance: float, seed: int) -> float | None:
    """The smallest largest deviation (to ½ %) of the plans of `n` contiguous parts GerryChain found when the
    tolerance was relaxed step by step (a bisection), or None when it found none even at ±100 %."""
    rng = random.Random(seed)

    def best_at(epsilon: float) -> float | None:
        plans = _tree_plans(scope, n, epsilon, rng, 3)
        return min(_max_deviation(scope, p, n) for p in plans) if plans else None

    found = best_at(1.0)
    if found is None:
        return None
    # a part holds at least one micro-grid: the heaviest one alone bounds the best from below
    lo = max(float(scope.households.max()) / (scope.total / n) - 1, tolerance)
    while found - lo > 0.005:
        mid = (lo + found) / 2
        better = best_at(mid)
        if better is None:
            lo = mid
        else:
            found = better
    return found


def _infeasible(scope: _Scope, n: int, tolerance: float, seed: int, reason_zh: str, reason_en: str) -> InvalidInput:
    best = _best_tolerance(scope, n, tolerance, seed) if n > 1 else None
    best_zh = f"；按现有微网格，n={n} 时找到的最好结果为 ±{best * 100:.1f}%" if best is not None else ""
    best_en = f"; with these micro-grids the best found for n={n} is ±{best * 100:.1f}%" if best is not None else ""
    zh, en = scope.label()
    return InvalidInput(
        f"n/tolerance: {reason_en}; the {scope.total} households of {en} cannot be split into {n} "
        f"contiguous grids within ±{tolerance:.0%} of the mean{best_en}",
        field="n",
        zh=f"网格数与容差：{reason_zh}，无法把{zh}的 {scope.total} 户分成 {n} 个户数在均值 "
        f"±{tolerance:.0%} 内的连通网格{best_zh}。",
    )


def propose(
    session: Session,
    generation_id: int,
    area_code: str,
    n: int,
    tolerance: float = 0.10,
    seed: int = 0,
    grids: Sequence[str] | None = None,
) -> dict[str, Any]:
    """A balanced partition of community `area_code` of generation `generation_id` into `n` grids (nothing written);
    with `grids`, only those adjacent grids of the community are re-partitioned into `n` (the others stay).

    Returns ``{"generation_id", "area", "name", "n", "tolerance", "seed", "from_grids" (the grids re-partitioned),
    "households", "mean_households", "method", "moved_households", "moved_microgrids", "retired" (grid codes),
    "polsby_popper", "grids": [{"code" (None for a new grid), "name", "households", "population", "deviation",
    "contiguous", "polsby_popper", "microgrids"}]}``. `InvalidInput` naming n/tolerance/seed/area/grids,
    `NotFound` naming generation/area."""
    check_arguments(n, tolerance, seed)
    scope = _load(session, generation_id, area_code, grids)
    units = len(scope.units)
    if n > units:
        zh, en = scope.label()
        raise InvalidInput(
            f"n must not exceed the {units} micro-grids of {en}",
            field="n",
            zh=f"网格数：{zh}只有 {units} 个微网格，n 不能大于 {units}。",
        )
    if scope.total <= 0:
        raise InvalidInput(
            "area: the community's micro-grids hold no households to balance",
            field="area",
            zh=f"区域：社区 {scope.community.code} 的微网格没有户数，无法按户数均衡。",
        )
    mean = scope.total / n
    heaviest = int(np.argmax(scope.households))
    if scope.households[heaviest] > mean * (1 + tolerance):
        raise _infeasible(
            scope,
            n,
            tolerance,
            seed,
            f"微网格 {scope.units[heaviest].code} 有 {scope.households[heaviest]} 户，已超过上限 "
            f"{mean * (1 + tolerance):.0f} 户（均值 {mean:.0f}）",
            f"micro-grid {scope.units[heaviest].code} alone holds {scope.households[heaviest]} "
            f"households, above the limit of {mean * (1 + tolerance):.0f} (mean {mean:.0f})",
        )
    rng = random.Random(seed)
    candidates: list[_Candidate] = []
    if n == 1:
        candidates.append(_Candidate([0] * units, "merge"))
    else:
        if n == len(scope.grids) and _valid(scope, scope.current, n, tolerance):
            candidates.append(_Candidate(list(scope.current), "current"))  # nothing moves: no plan does better
        else:
            repaired = _repair(scope, n, tolerance, rng)
            if repaired is not None:
                candidates.append(_Candidate(_normalise(repaired), "recom"))
            for surcharge in (SURCHARGE, None):
                candidates += [
                    _Candidate(plan, "recursive_tree_part")
                    for plan in _tree_plans(
                        scope, n, tolerance, rng, TREE_PLANS // 2, surcharge=surcharge, give_up=GIVE_UP
                    )
                ]
    best: _Candidate | None = None
    seen: set[tuple[int, ...]] = set()
    for cand in candidates:
        pulled = _pull_towards_current(scope, cand.assign, n, tolerance)
        cand.assign = _normalise(_improve_groups(scope, pulled, n, tolerance) if n > 1 else pulled)
        key = tuple(cand.assign)
        if key in seen or not _valid(scope, cand.assign, n, tolerance):
            continue
        seen.add(key)
        cand.matched, cand.moved = _match(scope, cand.assign, n)
        cand.compactness = float(np.mean([_compactness(scope, m) for m in _parts(cand.assign, n)]))
        if best is None or (cand.moved, -round(cand.compactness, 6)) < (best.moved, -round(best.compactness, 6)):
            best = cand
    if best is None:
        raise _infeasible(
            scope, n, tolerance, seed, "未找到满足容差的连通划分", "no contiguous plan meeting the tolerance was found"
        )
    return _describe(scope, best, n, tolerance, seed)


def _describe(scope: _Scope, cand: _Candidate, n: int, tolerance: float, seed: int) -> dict[str, Any]:
    mean = scope.total / n
    parts = _parts(cand.assign, n)

    def matched_first(p: int) -> tuple[bool, str, int]:
        m = cand.matched[p]
        return m is None, scope.grids[m].code if m is not None else "", min(parts[p])

    order = sorted(range(n), key=matched_first)
    grids = []
    for p in order:
        members = parts[p]
        g = cand.matched[p]
        hh = int(scope.households[members].sum())
        grids.append(
            {
                "code": scope.grids[g].code if g is not None else None,
                "name": scope.grids[g].name if g is not None else None,
                "households": hh,
                "population": int(scope.population[members].sum()),
                "deviation": round(hh / mean - 1, 4),
                "contiguous": _contiguous(scope, members),
                "polsby_popper": round(_compactness(scope, members), 4),
                "microgrids": [scope.units[u].code for u in members],
            }
        )
    kept = {g for g in cand.matched if g is not None}
    return {
        "generation_id": scope.generation_id,
        "area": scope.community.code,
        "name": scope.community.name,
        "n": n,
        "tolerance": tolerance,
        "seed": seed,
        "from_grids": [g.code for g in scope.grids],
        "households": scope.total,
        "mean_households": round(mean, 2),
        "method": cand.method,
        "moved_households": cand.moved,
        "moved_microgrids": [scope.units[u].code for u in _moved_units(scope, cand.assign, cand.matched)],
        "retired": [g.code for i, g in enumerate(scope.grids) if i not in kept],
        "polsby_popper": round(cand.compactness, 4),
        "grids": grids,
    }


# -- writing the proposal as a draft ---------------------------------------------------------------------------------


def open_as_draft(
    session: Session, proposal: dict[str, Any], *, name: str | None = None, actor: str | None = None
) -> dict[str, Any]:
    """Write `proposal` (from `propose`) as a new draft copied from its generation; returns the proposal with the
    draft's id and final codes: ``generation_id`` (the draft), ``source_generation_id``, per grid ``code``,
    ``name``, ``new`` and final ``microgrids``, and ``created`` / ``retired`` codes (grids and micro-grids).
    `Conflict` when the rewritten community would not tile exactly (nothing is then kept by the caller)."""
    source_id = proposal["generation_id"]
    source = get_generation(session, source_id)
    draft = create_draft(
        session,
        name or f"{proposal['name']}网格调整（{proposal['n']} 个网格）",
        source_id=source_id,
        note=f"partition of {proposal['area']} into {proposal['n']} grids "
        f"(±{proposal['tolerance']:.0%}, seed {proposal['seed']}) from generation {source.id}",
    )
    draft.base_id = source.id
    if actor:
        draft.created_by = actor[:64]
    rows = {a.code: a for a in session.scalars(sa.select(Area).where(Area.generation_id == draft.id))}
    for code in session.scalars(sa.select(Area.code).where(Area.generation_id == source.id, Area.locked.is_(True))):
        rows[code].locked = True  # locks elsewhere in the generation hold in the draft too
    community = rows[proposal["area"]]
    old_grids = {code: a for code, a in rows.items() if a.parent_id == community.id}
    new_grid_count = sum(g["code"] is None for g in proposal["grids"])
    fresh = (
        iter(gcodes.new_codes(session, community.code, "grid", new_grid_count, draft.id))
        if new_grid_count
        else iter(())
    )
    created: list[str] = []
    retired: list[str] = []
    out_grids = []
    for g in proposal["grids"]:
        if g["code"] is not None:
            grid = old_grids[g["code"]]
        else:
            code = next(fresh)
            suffix = int(code[len(community.code) :])
            grid = Area(
                generation_id=draft.id,
                level="grid",
                code=code,
                name=f"{community.name}第{_name_zh(suffix)}网格",
                parent_id=community.id,
                is_leaf=False,
                geom=community.geom,
            )
            session.add(grid)
            created.append(code)
        out_grids.append((g, grid))
    session.flush()
    for g, grid in out_grids:
        moving = [rows[c] for c in g["microgrids"] if rows[c].parent_id != grid.id]
        codes = gcodes.new_codes(session, grid.code, "microgrid", len(moving), draft.id) if moving else []
        for unit, code in zip(moving, codes):
            retired.append(unit.code)
            created.append(code)
            unit.code = code
            unit.name = f"{grid.name}{int(code[len(grid.code) :])}号微网格"
            unit.parent_id = grid.id
    session.flush()
    final: list[dict[str, Any]] = []
    for g, grid in out_grids:
        members = sorted(
            (rows_unit for rows_unit in session.scalars(sa.select(Area).where(Area.parent_id == grid.id))),
            key=lambda a: a.code,
        )
        grid.geom = from_shape(
            as_multipolygon(shapely.coverage_union_all([to_shape(m.geom) for m in members])), srid=4326
        )
        grid.households = sum(int(m.households or 0) for m in members)
        grid.population = sum(int(m.population or 0) for m in members)
        grid.area_m2 = float(sum(float(m.area_m2 or 0.0) for m in members))
        grid.is_leaf = False
        final.append(
            {
                **g,
                "code": grid.code,
                "name": grid.name,
                "new": g["code"] is None,
                "microgrids": [m.code for m in members],
            }
        )
    for code in proposal["retired"]:
        session.delete(old_grids[code])
        retired.append(code)
    session.flush()
    _check_community(session, draft.id, community)
    return {
        **proposal,
        "generation_id": draft.id,
        "source_generation_id": source.id,
        "grids": final,
        "created": sorted(created),
        "retired": sorted(retired),
    }


TILING_ERRORS = frozenset(
    {"invalid_geometry", "gap", "overlap", "hole", "outside_parent", "duplicate_code", "bad_code"}
)


def _check_community(session: Session, generation_id: int, community: Area) -> None:
    """The boundary check of the rewritten community (it, its grids and micro-grids); `Conflict` on an error."""
    grid_ids = list(session.scalars(sa.select(Area.id).where(Area.parent_id == community.id)))
    rows = session.scalars(
        sa.select(Area)
        .where(Area.generation_id == generation_id)
        .where(sa.or_(Area.id == community.id, Area.id.in_(grid_ids), Area.parent_id.in_(grid_ids)))
    ).all()
    records = [
        bc.AreaRecord(
            r.id,
            r.code,
            r.level,
            r.parent_id if r.id != community.id else None,
            int(r.households or 0),
            to_shape(r.geom),
        )
        for r in rows
    ]
    report = bc.check_areas(records)
    errors = [p for p in report["problems"] if p["kind"] in TILING_ERRORS]
    if errors:
        kinds = ", ".join(sorted({p["kind"] for p in errors}))
        raise Conflict(
            f"area: the re-partitioned community does not tile exactly: {kinds}",
            field="area",
            zh=f"区域：重新划分后的社区 {community.code} 未能精确拼合（{kinds}）。",
        )


def partition(
    session: Session,
    generation_id: int,
    area_code: str,
    n: int,
    tolerance: float = 0.10,
    seed: int = 0,
    grids: Sequence[str] | None = None,
    *,
    name: str | None = None,
    actor: str | None = None,
) -> dict[str, Any]:
    """`propose` and `open_as_draft` in one: the new draft holding the proposal (not committed)."""
    return open_as_draft(
        session, propose(session, generation_id, area_code, n, tolerance, seed, grids), name=name, actor=actor
    )
