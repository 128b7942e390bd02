"""Repairs the boundary check offers: computed as a preview, applied only on request.

Four repairs, each on the leaves (micro-grids, or grids where a generation has no micro-grids); parents are then
the unions of their children again:

- ``snap_to_parent``: a leaf's part outside its parent that is narrower than `snap_m` is cut off (the leaf is
  snapped to its parent's edge).
- ``overlap_to_neighbour``: a region two leaves both cover stays with one of them — the one whose parent holds more
  of it, else the one sharing the longest edge with it — and is cut from the others.
- ``gap_to_neighbour``: a region of a parent that none of its leaves covers goes to the leaf with the longest shared
  edge with it. A parent's outline is taken as stored, with its holes narrower than `gap_width_m` filled (the
  stray rings a redraw leaves): such a hole is a gap too.
- ``absorb_sliver``: a part of a leaf under `sliver_m2` (a leaf in several parts) goes to the sibling sharing the
  longest edge with it.

Regions are found on the stored longitude/latitude with the check's fixed-precision grid and measured in metres,
as in `gridmap.boundaries.check`. What the repairs would leave is checked again (`after`), so the planner sees
before applying whether the problems go away.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, NotRequired, TypedDict, get_args

import shapely
from shapely.geometry import MultiPolygon, Polygon, mapping, shape
from shapely.geometry.base import BaseGeometry

from gridmap.boundaries import check as bc
from gridmap.boundaries.check import AreaRecord
from gridmap.errors import Conflict, InvalidInput
from gridmap.geo.coverage import as_multipolygon

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

RepairKind = Literal["snap_to_parent", "overlap_to_neighbour", "gap_to_neighbour", "absorb_sliver"]
REPAIR_KINDS: tuple[RepairKind, ...] = get_args(RepairKind)
REPAIR_NAMES_ZH = {
    "snap_to_parent": "吸附到上级边界",
    "overlap_to_neighbour": "重叠归属相邻区域",
    "gap_to_neighbour": "空隙并入相邻区域",
    "absorb_sliver": "碎片并入相邻区域",
}
SNAP_M = 1.0


class RepairItem(TypedDict):
    kind: str
    codes: list[str]  # the leaf that loses the region first (none for a gap), then the leaf that gets it
    from_code: str | None
    to_code: str | None
    area_m2: float
    geometry: dict[str, Any]
    detail: str


class RepairPlan(TypedDict):
    generation_id: int | None
    repairs: list[RepairItem]
    changed: dict[str, dict[str, Any]]  # leaf code → its repaired geometry (GeoJSON MultiPolygon, WGS84)
    skipped: list[str]  # problems the repairs do not touch, in words
    before: dict[str, int]  # error and warning counts of the check before and after
    after: dict[str, int]
    applicable: bool | None  # on a draft: whether applying them would be accepted (None: nothing to apply)
    refusal: str | None  # and why not
    refusal_zh: NotRequired[str | None]  # the same in Chinese, when refused


@dataclass
class _Leaf:
    record: AreaRecord
    geom: BaseGeometry  # valid, on the check's precision grid
    changed: bool = False


def plan_repairs(
    records: list[AreaRecord],
    *,
    kinds: tuple[str, ...] = REPAIR_KINDS,
    snap_m: float = SNAP_M,
    noise_m2: float = bc.NOISE_M2,
    sliver_m2: float = bc.SLIVER_M2,
    gap_width_m: float = bc.GAP_WIDTH_M,
    grid_size_m: float = bc.GRID_SIZE_M,
) -> RepairPlan:
    """The repairs of `kinds` for a generation's areas, and the check of the areas they would leave."""
    for kind in kinds:
        if kind not in REPAIR_KINDS:
            raise InvalidInput(
                f"kinds: {kind!r} is not a repair kind; accepted: {', '.join(REPAIR_KINDS)}",
                field="kinds",
                zh=f"修复类型：{kind!r} 不是可用的修复类型；可选：{', '.join(REPAIR_KINDS)}。",
            )
    if not 0.0 < snap_m <= 100.0:
        raise InvalidInput(
            f"snap_m: {snap_m!r}; accepted: a number above 0 and at most 100",
            field="snap_m",
            zh=f"吸附距离（米）：{snap_m!r} 应在 0–100 米之间。",
        )
    tol = bc.Tolerances(noise_m2, sliver_m2, gap_width_m, grid_size_m)
    tol.check()
    before = bc.check_areas(
        records,
        noise_m2=noise_m2,
        sliver_m2=sliver_m2,
        gap_width_m=gap_width_m,
        grid_size_m=grid_size_m,
        household_band={},
    )
    run = _Repairer(records, tol, snap_m)
    for kind in REPAIR_KINDS:
        if kind in kinds:
            getattr(run, kind)()
    repaired = run.records_after()
    after = bc.check_areas(
        repaired,
        noise_m2=noise_m2,
        sliver_m2=sliver_m2,
        gap_width_m=gap_width_m,
        grid_size_m=grid_size_m,
        household_band={},
    )
    changed = {leaf.record.code: mapping(leaf.geom) for leaf in run.leaves.values() if leaf.changed}
    return RepairPlan(
        generation_id=None,
        repairs=run.items,
        changed=changed,
        skipped=_skipped(after),
        before=_counts(before),
        after=_counts(after),
        applicable=None,
        refusal=None,
    )


def _counts(report: bc.CheckReport) -> dict[str, int]:
    errors = sum(p["severity"] == "error" for p in report["problems"])
    return {"errors": errors, "warnings": len(report["problems"]) - errors}


def _skipped(after: bc.CheckReport) -> list[str]:
    left = sorted({p["kind"] for p in after["problems"] if p["severity"] == "error"})
    return [
        f"{bc.KIND_NAMES_ZH[k]}（{k}）无法自动修复，请在工作台中手工处理 (not repaired automatically)" for k in left
    ]


class _Repairer:
    def __init__(self, records: list[AreaRecord], tol: bc.Tolerances, snap_m: float):
        self.tol = tol
        self.snap_m = snap_m
        self.grid = tol.grid_size_m / bc.M_PER_DEG
        self.records = records
        self.by_key = {r.key: r for r in records}
        self.children: dict[int, list[int]] = {}
        for r in records:
            if r.parent is not None and r.parent in self.by_key:
                self.children.setdefault(r.parent, []).append(r.key)
        self.leaves = {r.key: _Leaf(r, self.snap(r.geom)) for r in records if r.key not in self.children}
        anchor = shapely.union_all([r.geom for r in records if r.parent is None] or [r.geom for r in records])
        self.fam = bc._Family(records[0], anchor) if records else None
        self.items: list[RepairItem] = []
        self._targets: dict[int, BaseGeometry] = {}

    # -- helpers --------------------------------------------------------------------------------------------------

    def snap(self, geom: BaseGeometry) -> MultiPolygon:
        """`geom` made valid and put on the precision grid, as the check sees it."""
        if not geom.is_empty and not shapely.is_valid(geom):
            geom = shapely.make_valid(geom)
        return as_multipolygon(shapely.set_precision(geom, self.grid))

    def area_m2(self, geom: BaseGeometry) -> float:
        return self.fam.area_m2(geom) if self.fam is not None else 0.0

    def narrow(self, geom: BaseGeometry, width_m: float) -> bool:
        """Whether `geom` is nowhere as wide as `width_m`."""
        assert self.fam is not None  # asked only while repairing records, which make the family
        return bool(self.fam.to_metres(geom).buffer(-width_m / 2).is_empty)

    def leaves_under(self, key: int) -> list[int]:
        out, stack = [], [key]
        while stack:
            k = stack.pop()
            if k in self.leaves:
                out.append(k)
            stack.extend(self.children.get(k, ()))
        return sorted(out)

    def target(self, key: int) -> BaseGeometry:
        """A parent's outline as stored, with its holes narrower than `gap_width_m` filled."""
        if key not in self._targets:
            polys = []
            for poly in bc._polygons(self.snap(self.by_key[key].geom)):
                keep = [ring for ring in poly.interiors if not self.narrow(Polygon(ring), self.tol.gap_width_m)]
                polys.append(Polygon(poly.exterior, keep))
            self._targets[key] = shapely.union_all(polys, grid_size=self.grid) if polys else MultiPolygon()
        return self._targets[key]

    def shared(self, region: BaseGeometry, key: int) -> float:
        """Length (degrees) of the edge `region` shares with leaf `key`."""
        line = shapely.intersection(region.boundary, self.leaves[key].geom.boundary, grid_size=self.grid)
        return float(line.length)

    def add(self, kind: str, region: BaseGeometry, from_key: int | None, to_key: int | None, detail: str) -> None:
        codes = [self.by_key[k].code for k in (from_key, to_key) if k is not None]
        self.items.append(
            RepairItem(
                kind=kind,
                codes=codes,
                from_code=self.by_key[from_key].code if from_key is not None else None,
                to_code=self.by_key[to_key].code if to_key is not None else None,
                area_m2=round(self.area_m2(region), 3),
                geometry=bc._geojson(region, self.area_m2(region), self.tol.noise_m2),
                detail=detail,
            )
        )

    def cut(self, key: int, region: BaseGeometry) -> None:
        leaf = self.leaves[key]
        leaf.geom = as_multipolygon(shapely.difference(leaf.geom, region, grid_size=self.grid))
        leaf.changed = True

    def give(self, key: int, region: BaseGeometry) -> None:
        leaf = self.leaves[key]
        leaf.geom = as_multipolygon(shapely.union(leaf.geom, region, grid_size=self.grid))
        leaf.changed = True

    def regions(self, geom: BaseGeometry) -> list[Polygon]:
        return [p for p in bc._polygons(geom) if self.area_m2(p) > self.tol.noise_m2]

    # -- the repairs ----------------------------------------------------------------------------------------------

    def snap_to_parent(self) -> None:
        for key in sorted(self.leaves):
            parent = self.leaves[key].record.parent
            if parent is None or parent not in self.by_key:
                continue
            outside = shapely.difference(self.leaves[key].geom, self.target(parent), grid_size=self.grid)
            for part in self.regions(outside):
                if self.narrow(part, self.snap_m):
                    self.cut(key, part)
                    self.add(
                        "snap_to_parent",
                        part,
                        key,
                        None,
                        f"{self.by_key[key].code} 超出上级 {self.by_key[parent].code} 的部分宽度小于 "
                        f"{self.snap_m:g} 米，已吸附到上级边界 (cut to the parent's edge)",
                    )

    def overlap_to_neighbour(self) -> None:
        keys = sorted(self.leaves)
        tree = shapely.STRtree([self.leaves[k].geom for k in keys])
        for i, j in zip(*tree.query([self.leaves[k].geom for k in keys], predicate="intersects")):
            if i >= j:
                continue
            a, b = keys[int(i)], keys[int(j)]
            common = shapely.intersection(self.leaves[a].geom, self.leaves[b].geom, grid_size=self.grid)
            for region in self.regions(common):
                winner = max((a, b), key=lambda k: (self._held_by_parent(k, region), self._edge_rest(k, region), -k))
                loser = b if winner == a else a
                self.cut(loser, region)
                self.add(
                    "overlap_to_neighbour",
                    region,
                    loser,
                    winner,
                    f"{self.by_key[a].code} 与 {self.by_key[b].code} 重叠的区域归 {self.by_key[winner].code}"
                    f"，从 {self.by_key[loser].code} 中去除 (overlap kept by one neighbour)",
                )

    def _held_by_parent(self, key: int, region: BaseGeometry) -> float:
        parent = self.leaves[key].record.parent
        if parent is None or parent not in self.by_key:
            return 0.0
        return float(shapely.intersection(region, self.target(parent), grid_size=self.grid).area)

    def _edge_rest(self, key: int, region: BaseGeometry) -> float:
        rest = shapely.difference(self.leaves[key].geom, region, grid_size=self.grid)
        return float(shapely.intersection(region.boundary, rest.boundary, grid_size=self.grid).length)

    def gap_to_neighbour(self) -> None:
        parents = sorted(self.children, key=lambda k: -bc._level_rank(self.by_key[k].level))  # lowest level first
        for pkey in parents:
            under = self.leaves_under(pkey)
            if not under:
                continue
            covered = shapely.union_all([self.leaves[k].geom for k in under], grid_size=self.grid)
            gaps = shapely.difference(self.target(pkey), covered, grid_size=self.grid)
            for region in self.regions(gaps):
                best = max(under, key=lambda k: (self.shared(region, k), -k))
                if self.shared(region, best) <= 0.0:
                    continue  # touches no leaf: an enclave or a lost part, for the planner
                self.give(best, region)
                self.add(
                    "gap_to_neighbour",
                    region,
                    None,
                    best,
                    f"{self.by_key[pkey].code} 内未被覆盖的空隙并入共享边界最长的 {self.by_key[best].code} "
                    "(gap given to the neighbour with the longest shared edge)",
                )

    def absorb_sliver(self) -> None:
        for key in sorted(self.leaves):
            parts = bc._polygons(self.leaves[key].geom)
            if len(parts) < 2:
                continue
            parent = self.leaves[key].record.parent
            siblings = [k for k in (self.children.get(parent, []) if parent is not None else []) if k != key]
            largest = max(parts, key=lambda p: p.area)
            for part in parts:
                if part is largest or self.area_m2(part) >= self.tol.sliver_m2:
                    continue
                near = [k for k in siblings if self.shared(part, k) > 0.0]
                if not near:
                    continue
                best = max(near, key=lambda k: (self.shared(part, k), -k))
                self.cut(key, part)
                self.give(best, part)
                self.add(
                    "absorb_sliver",
                    part,
                    key,
                    best,
                    f"{self.by_key[key].code} 的碎片（小于 {self.tol.sliver_m2:g} m²）并入 "
                    f"{self.by_key[best].code} (sliver absorbed by the neighbour)",
                )

    # -- the result -----------------------------------------------------------------------------------------------

    def records_after(self) -> list[AreaRecord]:
        """Every area with the repaired leaves, and the parents as stored (their narrow holes filled): the leaves
        are checked against the outlines they should tile. Applying the repairs then writes the leaves and makes
        each parent the union of its children again, which is that outline when the check is clean."""
        geoms = {k: leaf.geom if leaf.changed else leaf.record.geom for k, leaf in self.leaves.items()}
        for key in self.children:
            geoms[key] = as_multipolygon(self.target(key))
        return [
            AreaRecord(r.key, r.code, r.level, r.parent, r.households, geoms.get(r.key, r.geom)) for r in self.records
        ]


def preview(session: Session, generation_id: int, **options: Any) -> RepairPlan:
    """The repairs of a stored generation (any status) as a preview: nothing is written. On a draft the repairs are
    also tried as the edit `apply` would write, in a savepoint rolled back at once, so that the preview says
    whether applying them would be accepted (`applicable`) and, if not, why (`refusal`): the edit's own guards
    (an exact coverage, no parent split into parts or given a hole, locks) are the last word."""
    from gridmap.boundaries.generations import get_generation
    from gridmap.errors import GridmapError
    from gridmap.planning import edit as plan_edit

    plan = plan_repairs(bc.load_records(session, generation_id), **options)
    plan["generation_id"] = generation_id
    plan["applicable"], plan["refusal"] = None, None
    if plan["changed"] and get_generation(session, generation_id).status == "draft":
        changes = {code: shape(geojson) for code, geojson in plan["changed"].items()}
        trial = session.begin_nested()
        try:
            plan_edit.repair(session, generation_id, changes, {}, None)
            plan["applicable"] = True
        except GridmapError as exc:
            plan["applicable"], plan["refusal"], plan["refusal_zh"] = False, exc.message, exc.zh
        finally:
            trial.rollback()
    return plan


def apply(session: Session, generation_id: int, actor: str | None = None, **options: Any) -> dict[str, Any]:
    """Compute the repairs of a draft and write them as one edit (`gridmap.planning.edit.repair`, undoable); returns
    {"plan": the RepairPlan applied, "edit": the EditResult}. `InvalidInput` naming `kinds` when there is nothing to
    repair; `Conflict` when the generation is not a draft."""
    from shapely.geometry import shape

    from gridmap.boundaries.generations import get_generation
    from gridmap.planning import edit as plan_edit

    gen = get_generation(session, generation_id)
    if gen.status != "draft":
        raise Conflict(
            f"generation {gen.id} is {gen.status}; only drafts can be repaired",
            field="generation",
            zh=f"边界版本：第 {gen.id} 版边界的状态是 {gen.status}，只有草稿可以修复。",
        )
    plan = plan_repairs(bc.load_records(session, generation_id), **options)
    plan["generation_id"] = generation_id
    if not plan["changed"]:
        raise InvalidInput("kinds: there is nothing to repair", field="kinds", zh="修复类型：没有可以自动修复的问题。")
    params = {
        "kinds": list(options.get("kinds", REPAIR_KINDS)),
        "snap_m": options.get("snap_m", SNAP_M),
        "repairs": len(plan["repairs"]),
    }
    changes = {code: shape(geojson) for code, geojson in plan["changed"].items()}
    edit = plan_edit.repair(session, generation_id, changes, params, actor)
    plan["applicable"] = True
    return {"plan": plan, "edit": edit}
