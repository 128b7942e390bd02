"""A province on one machine: `gridmap demo --scale province` — 16 Yunnan districts (one per prefecture, named after
its seat), about 200,000 micro-grids under the full hierarchy (district → sub-district/town → community/village →
grid → micro-grid), their party organisations and staff as the district demo makes them, a compound per grid, a
party-mass service centre per community, and about 10,000,000 cases over the year before the reference date.

Deterministic: the same seed and the same `ProvinceScale` give the same rows (ids, codes, geometries, cases).

How the areas are made (vectorised, no per-area GEOS work): each district is a lattice of quadrilateral cells around
its seat, denser in the middle (an urban core of small micro-grids, larger ones in the countryside) with every
lattice vertex jittered; a micro-grid is one cell. Sub-districts, communities and grids are rectangles of cells
cut recursively from their parent (a fair share of children each, cuts along lattice lines), and every area's
outline runs through all the lattice vertices on its border. So every level covers its parent exactly, neighbours
share their vertices (no T-junctions, no slivers), and a parent is exactly the union of its children.

Into a new database (the tables empty) the areas, people and places are written in one transaction and the cases in
another, each with the row-by-row upkeep of its tables (indexes, keys, triggers, R*Trees) deferred to its end
(`gridmap.store.bulkload`); beside rows already there (`--append`) the upkeep is row by row and the cases go a
transaction per chunk. The cases (`gridmap.demo.province_cases`) are written in chunks by COPY on PostGIS and
executemany with ready geometry BLOBs on SpatiaLite, with progress shown.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from gridmap import runtime
from gridmap.cases import bulk
from gridmap.demo import names
from gridmap.demo.load import ensure_catalogue, ensure_generation
from gridmap.demo.province_write import move_sequence, next_id, write_columns
from gridmap.errors import InvalidInput
from gridmap.store import bulkload
from gridmap.store.tables import Area, PartyOrg, PartyOrgArea, Place, Staff, StaffArea

# (adcode, name, prefecture, seat lon, seat lat): the seat district/city of each of Yunnan's 16 prefecture-level
# divisions
PROVINCE_DISTRICTS: list[tuple[str, str, str, float, float]] = [
    ("530102", "五华区", "昆明市", 102.70, 25.04),
    ("530302", "麒麟区", "曲靖市", 103.80, 25.49),
    ("530402", "红塔区", "玉溪市", 102.54, 24.35),
    ("530502", "隆阳区", "保山市", 99.16, 25.12),
    ("530602", "昭阳区", "昭通市", 103.72, 27.34),
    ("530702", "古城区", "丽江市", 100.23, 26.87),
    ("530802", "思茅区", "普洱市", 100.98, 22.79),
    ("530902", "临翔区", "临沧市", 100.09, 23.89),
    ("532301", "楚雄市", "楚雄彝族自治州", 101.53, 25.03),
    ("532501", "个旧市", "红河哈尼族彝族自治州", 103.16, 23.36),
    ("532601", "文山市", "文山壮族苗族自治州", 104.23, 23.40),
    ("532801", "景洪市", "西双版纳傣族自治州", 100.80, 22.01),
    ("532901", "大理市", "大理白族自治州", 100.27, 25.61),
    ("533102", "瑞丽市", "德宏傣族景颇族自治州", 97.85, 24.01),
    ("533301", "泸水市", "怒江傈僳族自治州", 98.86, 25.82),
    ("533401", "香格里拉市", "迪庆藏族自治州", 99.71, 27.83),
]
LEVELS = ("district", "subdistrict", "community", "grid", "microgrid")
AREA_TABLES = ("area", "party_org", "party_org_area", "staff", "staff_area", "place")  # what load_province writes
ORG_KINDS = {
    "subdistrict": ("subdistrict_committee", "党工委"),
    "community": ("community_committee", "党委"),
    "grid": ("grid_branch", "党支部"),
    "microgrid": ("building_group", "楼栋党小组"),
}
MICROGRIDS_PER_GRID = 3.5  # Guandu: 1,854 / 533
GRIDS_PER_COMMUNITY = 5.4  # Guandu: 533 / 99
COMMUNITIES_PER_SUBDISTRICT = 12.0
CELL_KM2 = 0.3  # the mean micro-grid (Guandu: 552 km² / 1,854)
MAX_DISTRICT_KM = 90.0  # districts of a large run stay apart
WARP = 0.75  # lattice spacing 1-WARP times the mean in the core, 1+WARP at the edge


@dataclass(frozen=True)
class ProvinceScale:
    """How large a province demo is: districts (of the 16), micro-grids over all of them, cases over all of them."""

    districts: int = 16
    microgrids: int = 200_000
    cases: int = 10_000_000

    def check(self) -> None:
        """Refuse sizes the generator cannot make (Chinese first, then English)."""
        if not 1 <= self.districts <= len(PROVINCE_DISTRICTS):
            raise InvalidInput(
                f"区县数须在 1 到 {len(PROVINCE_DISTRICTS)} 之间（收到 {self.districts}）；"
                f"--districts must be 1 to {len(PROVINCE_DISTRICTS)}",
                field="districts",
                zh=f"区县数须在 1 到 {len(PROVINCE_DISTRICTS)} 之间",
            )
        if not 50 * self.districts <= self.microgrids <= 1_000_000:
            raise InvalidInput(
                f"微网格数须在 {50 * self.districts} 到 1,000,000 之间（收到 {self.microgrids}）；"
                f"--microgrids must be 50 per district to 1,000,000",
                field="microgrids",
                zh="微网格数须为每区县至少 50 个，至多 1,000,000 个",
            )
        if not 0 <= self.cases <= 50_000_000:
            raise InvalidInput(
                f"事件数须在 0 到 50,000,000 之间（收到 {self.cases}）；--cases must be 0 to 50,000,000",
                field="cases",
                zh="事件数须在 0 到 50,000,000 之间",
            )


@dataclass
class Level:
    """The areas of one level, in id order: codes, names, parent positions (in the level above), the rectangle of
    lattice cells each covers (i0, j0, i1, j1, cells [i0, i1) × [j0, j1)) and its district."""

    name: str
    codes: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    parent: list[int] = field(default_factory=list)
    rect: list[tuple[int, int, int, int]] = field(default_factory=list)
    district: list[int] = field(default_factory=list)
    geoms: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=object))
    households: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    population: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    area_m2: np.ndarray = field(default_factory=lambda: np.empty(0))


@dataclass
class Lattice:
    """A district's jittered lattice: vertex coordinates `x`, `y` of shape (ny + 1, nx + 1), WGS84 degrees."""

    x: np.ndarray
    y: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        return self.x.shape[1] - 1, self.x.shape[0] - 1  # cells across, cells up


@dataclass
class Province:
    """The generated areas, level by level, and each district's lattice."""

    scale: ProvinceScale
    seed: int
    lattices: list[Lattice]
    levels: dict[str, Level]

    def count(self) -> dict[str, int]:
        return {name: len(level.codes) for name, level in self.levels.items()}


def _warp(t: np.ndarray) -> np.ndarray:
    return t + WARP * np.sin(2 * np.pi * t) / (2 * np.pi)


def _lattice(lon: float, lat: float, cells: int, rng: np.random.Generator) -> Lattice:
    nx = max(int(math.ceil(math.sqrt(cells))), 2)
    ny = max(int(round(cells / nx)), 2)
    cell_km = min(math.sqrt(CELL_KM2), MAX_DISTRICT_KM / math.sqrt(nx * ny))
    width = nx * cell_km / (111.32 * math.cos(math.radians(lat)))
    height = ny * cell_km / 110.57
    tx, ty = _warp(np.linspace(0.0, 1.0, nx + 1)), _warp(np.linspace(0.0, 1.0, ny + 1))
    gx, gy = np.meshgrid(lon + (tx - 0.5) * width, lat + (ty - 0.5) * height)
    # jitter each vertex by up to 15 % of the narrower neighbouring spacing: every cell stays a convex quadrilateral
    sx = np.diff(tx) * width
    sy = np.diff(ty) * height
    ax = 0.15 * np.minimum(np.r_[sx[0], sx], np.r_[sx, sx[-1]])
    ay = 0.15 * np.minimum(np.r_[sy[0], sy], np.r_[sy, sy[-1]])
    gx = gx + rng.uniform(-1, 1, gx.shape) * ax[None, :]
    gy = gy + rng.uniform(-1, 1, gy.shape) * ay[:, None]
    return Lattice(np.round(gx, 9), np.round(gy, 9))


def _split(rect: tuple[int, int, int, int], k: int, rng: np.random.Generator) -> list[tuple[int, int, int, int]]:
    """`k` rectangles of about equal cell counts tiling `rect`, by straight cuts along lattice lines."""
    i0, j0, i1, j1 = rect
    w, h = i1 - i0, j1 - j0
    k = min(k, w * h)
    if k <= 1:
        return [rect]
    left = k // 2
    across = w >= h if w != h else bool(rng.random() < 0.5)
    length = w if across else h
    cut = int(round(length * left / k + rng.uniform(-0.25, 0.25)))
    cut = min(max(cut, 1), length - 1)
    if across:
        a, b = (i0, j0, i0 + cut, j1), (i0 + cut, j0, i1, j1)
    else:
        a, b = (i0, j0, i1, j0 + cut), (i0, j0 + cut, i1, j1)
    return _split(a, left, rng) + _split(b, k - left, rng)


def _numbered(rects: list[tuple[int, int, int, int]]) -> list[tuple[int, int, int, int]]:
    """DB11 order: rows north → south, west → east within a row."""
    return sorted(rects, key=lambda r: (-r[3], r[0]))


def _outline_rings(lattice: Lattice, rects: list[tuple[int, int, int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """The closed outline of each rectangle through every lattice vertex on its border (counter-clockwise, from its
    south-west corner: east along the bottom, north up the right side, west along the top, south down the left side
    and back to the start): coordinates and ring offsets. All rings at once with numpy."""
    r = np.asarray(rects, dtype=np.int64).reshape(-1, 4)
    i0, j0, i1, j1 = r.T
    w, h = i1 - i0, j1 - j0
    length = 2 * w + 2 * h + 1
    offsets = np.concatenate([[0], np.cumsum(length)])
    ring = np.repeat(np.arange(len(r)), length)
    pos = np.arange(offsets[-1]) - offsets[ring]  # the place of each vertex along its ring
    i0, j0, i1, j1, w, h = (v[ring] for v in (i0, j0, i1, j1, w, h))
    bottom, right, top = pos < w, (pos >= w) & (pos < w + h), (pos >= w + h) & (pos < 2 * w + h)
    ii = np.select([bottom, right, top], [i0 + pos, i1, i1 - (pos - w - h)], i0)
    jj = np.select([bottom, right, top], [j0, j0 + (pos - w), j1], j1 - (pos - 2 * w - h))
    coords = np.column_stack([lattice.x[jj, ii], lattice.y[jj, ii]])
    return coords, offsets.astype(np.int64)


def _multipolygons(coords: np.ndarray, ring_offsets: np.ndarray) -> np.ndarray:
    n = len(ring_offsets) - 1
    one = np.arange(n + 1, dtype=np.int64)
    return shapely.from_ragged_array(shapely.GeometryType.MULTIPOLYGON, coords, (ring_offsets, one, one))


def _area_m2(geoms: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Square metres of small lon/lat polygons (local equirectangular scale at their latitude)."""
    out: np.ndarray = shapely.area(geoms) * 111_320.0 * np.cos(np.radians(lat)) * 110_574.0
    return out


def _counts(cells: int) -> tuple[int, int, int]:
    grids = max(int(round(cells / MICROGRIDS_PER_GRID)), 4)
    communities = max(int(round(grids / GRIDS_PER_COMMUNITY)), 2)
    subdistricts = max(int(round(communities / COMMUNITIES_PER_SUBDISTRICT)), 2)
    return subdistricts, communities, grids


def build_province(scale: ProvinceScale, seed: int = 53) -> Province:
    """Generate the areas of the province (no database): every level, codes, names, geometries, households."""
    scale.check()
    levels = {name: Level(name) for name in LEVELS}
    lattices: list[Lattice] = []
    per = [
        scale.microgrids // scale.districts + (1 if d < scale.microgrids % scale.districts else 0)
        for d in range(scale.districts)
    ]
    for d, (adcode, dname, _city, lon, lat) in enumerate(PROVINCE_DISTRICTS[: scale.districts]):
        rng = np.random.default_rng([seed, d])
        lattice = _lattice(lon, lat, per[d], rng)
        lattices.append(lattice)
        nx, ny = lattice.shape
        n_sub, n_com, n_grid = _counts(nx * ny)
        district = levels["district"]
        district.codes.append(adcode)
        district.names.append(dname)
        district.parent.append(-1)
        district.rect.append((0, 0, nx, ny))
        district.district.append(d)
        used: set[str] = set()
        parents = [len(district.codes) - 1]
        for level, total, width in (("subdistrict", n_sub, 3), ("community", n_com, 3), ("grid", n_grid, 3)):
            above, here = levels[LEVELS[LEVELS.index(level) - 1]], levels[level]
            cells = [(above.rect[p][2] - above.rect[p][0]) * (above.rect[p][3] - above.rect[p][1]) for p in parents]
            shares = _allocate(total, cells)
            nxt: list[int] = []
            for p, k in zip(parents, shares):
                children = _numbered(_split(above.rect[p], k, rng))
                child_names = _names(level, above.names[p], above.rect[p], children, (nx, ny), rng, used)
                for serial, (rect, cname) in enumerate(zip(children, child_names), start=1):
                    here.codes.append(f"{above.codes[p]}{serial:0{width}d}")
                    here.names.append(cname)
                    here.parent.append(p)
                    here.rect.append(rect)
                    here.district.append(d)
                    nxt.append(len(here.codes) - 1)
            parents = nxt
        grids, micro = levels["grid"], levels["microgrid"]
        for p in parents:  # every cell of a grid is one of its micro-grids
            i0, j0, i1, j1 = grids.rect[p]
            cells_of = [(i, j, i + 1, j + 1) for j in range(j1 - 1, j0 - 1, -1) for i in range(i0, i1)]
            if len(cells_of) > 99:
                raise AssertionError("a grid of more than 99 micro-grids")
            for serial, rect in enumerate(cells_of, start=1):
                micro.codes.append(f"{grids.codes[p]}{serial:02d}")
                micro.names.append(f"{grids.names[p]}{serial}号微网格")
                micro.parent.append(p)
                micro.rect.append(rect)
                micro.district.append(d)
    _geometries(levels, lattices)
    _households(levels, seed)
    return Province(scale, seed, lattices, levels)


def _allocate(total: int, cells: list[int]) -> list[int]:
    from gridmap.geo.coverage import allocate

    total = max(total, len(cells))
    shares = allocate(total, [float(c) for c in cells])
    return [min(s, c) for s, c in zip(shares, cells)]


def _names(
    level: str,
    parent_name: str,
    parent_rect: tuple[int, int, int, int],
    children: list[tuple[int, int, int, int]],
    size: tuple[int, int],
    rng: np.random.Generator,
    used: set[str],
) -> list[str]:
    if level == "grid":
        return [f"{parent_name}第{names.chinese_ordinal(i) if i < 100 else i}网格" for i in range(1, len(children) + 1)]
    words = names.unique_words(rng, len(children), used)
    out = []
    nx, ny = size
    for word, (i0, j0, i1, j1) in zip(words, children):
        cx, cy = (i0 + i1) / 2 / nx - 0.5, (j0 + j1) / 2 / ny - 0.5
        urban = cx * cx + cy * cy < 0.05  # the core: streets and communities; further out towns and villages
        if level == "subdistrict":
            out.append(f"{word}街道" if urban else f"{word}镇")
        else:
            out.append(f"{word}社区" if urban else f"{word}村")
    return out


def _geometries(levels: dict[str, Level], lattices: list[Lattice]) -> None:
    for level in levels.values():
        by_district: dict[int, list[int]] = {}
        for k, d in enumerate(level.district):
            by_district.setdefault(d, []).append(k)
        geoms = np.empty(len(level.codes), dtype=object)
        for d, members in by_district.items():
            coords, offsets = _outline_rings(lattices[d], [level.rect[k] for k in members])
            geoms[members] = _multipolygons(coords, offsets)
        level.geoms = geoms
        level.area_m2 = _area_m2(geoms, shapely.get_y(shapely.centroid(geoms)))


def _households(levels: dict[str, Level], seed: int) -> None:
    """Households per micro-grid: denser cells hold about as many as sparse ones (the lattice is denser where people
    are), lognormal around Guandu's ~330, rural cells fewer,
    within the micro-grid norm (50–800). Population 2.3–2.9 per household. Parents sum."""
    micro = levels["microgrid"]
    rng = np.random.default_rng([seed, 1_000])
    n = len(micro.codes)
    small = micro.area_m2 < np.median(micro.area_m2)
    micro.households = np.clip(np.round(rng.lognormal(np.where(small, 5.8, 5.2), 0.35, n)), 50, 800).astype(np.int64)
    micro.population = np.round(micro.households * rng.uniform(2.3, 2.9, n)).astype(np.int64)
    for child, parent in (
        ("microgrid", "grid"),
        ("grid", "community"),
        ("community", "subdistrict"),
        ("subdistrict", "district"),
    ):
        c, p = levels[child], levels[parent]
        idx = np.asarray(c.parent, dtype=np.int64)
        p.households = np.bincount(idx, weights=c.households, minlength=len(p.codes)).astype(np.int64)
        p.population = np.bincount(idx, weights=c.population, minlength=len(p.codes)).astype(np.int64)


# --- writing -----------------------------------------------------------------------------------------------------


@dataclass
class ProvinceSummary:
    """What `load_province` wrote."""

    areas: dict[str, int]
    party_orgs: int
    staff: int
    places: int
    cases: int
    events: int
    households: int
    population: int


@dataclass
class Territory:
    """What the cases need of the areas: per micro-grid its codes up the chain, its cell corners, households, the
    party branch and first full-time worker of its grid."""

    province: Province
    area_ids: dict[str, np.ndarray]
    branch_of_grid: np.ndarray
    worker_of_grid: np.ndarray


def refuse_if_loaded(session: Session, scale: ProvinceScale, append: bool) -> None:
    """A province goes into an empty database; with `append`, into one whose areas do not share its codes."""
    existing = session.scalar(sa.select(sa.func.count()).select_from(Area)) or 0
    if existing and not append:
        raise InvalidInput(
            f"数据库中已有 {existing} 个区域，省级演示数据只装入空库（如需追加请加 --append）；"
            f"the database already holds {existing} areas: the province demo loads into an empty "
            "database (--append to add it beside them)",
            field="database",
            zh="数据库中已有区域，省级演示数据只装入空库（如需追加请加 --append）",
        )
    codes = [d[0] for d in PROVINCE_DISTRICTS[: scale.districts]]
    clash = session.scalars(sa.select(Area.code).where(Area.code.in_(codes)).limit(3)).all()
    if clash:
        raise InvalidInput(
            f"区县 {', '.join(clash)} 已装入；district(s) {', '.join(clash)} already loaded",
            field="database",
            zh=f"区县 {', '.join(clash)} 已装入",
        )


def load_province(
    factory: sessionmaker[Session],
    scale: ProvinceScale | None = None,
    *,
    seed: int = 53,
    today: dt.date | None = None,
    append: bool = False,
    progress: bulk.Progress | None = None,
) -> ProvinceSummary:
    """Generate the province and write it: areas, party organisations, staff and places in one transaction, then
    the cases in chunks (each its own transaction). Refuses a non-empty database unless `append`."""
    from gridmap.demo.province_cases import insert_province_cases

    scale = scale or ProvinceScale()
    scale.check()
    progress = progress or bulk.Progress(enabled=False)
    today = today or dt.date.today()
    with factory() as session:
        refuse_if_loaded(session, scale, append)
    province = build_province(scale, seed)
    progress.stage("generated areas", sum(province.count().values()))
    with factory.begin() as session:
        gen = ensure_generation(session, today)
        ensure_catalogue(session)
        conn = session.connection()
        step = lambda what: progress.stage(f"rebuilt: {what}")  # noqa: E731
        with bulkload.deferred_upkeep(conn, AREA_TABLES, step=step):  # into a new database: upkeep once at the end
            area_ids = _write_areas(conn, session, gen.id, province)
            progress.stage("wrote areas", sum(province.count().values()))
            orgs, staff, branch_of_grid, worker_of_grid = _write_people(conn, session, province, today)
            progress.stage("wrote party organisations and staff", orgs + staff)
            places = _write_places(conn, province, seed)
        progress.stage("wrote places", places)
        generation_id = gen.id
    territory = Territory(province, area_ids, branch_of_grid, worker_of_grid)
    _month_partitions(factory, today)
    n_cases, n_events = insert_province_cases(
        factory, territory, generation_id, scale.cases, today, seed, progress=progress
    )
    _truncate_wal(factory)
    district = province.levels["district"]
    return ProvinceSummary(
        province.count(),
        orgs,
        staff,
        places,
        n_cases,
        n_events,
        int(district.households.sum()),
        int(district.population.sum()),
    )


def _truncate_wal(factory: sessionmaker[Session]) -> None:
    """On SQLite, the write-ahead log a bulk load grew (as large as what it wrote) copied into the file and cut back
    to nothing, so that the disk holds the database once."""
    with factory() as session:
        conn = session.connection()
        if conn.dialect.name == "sqlite":
            conn.commit()  # out of the session's transaction: a checkpoint does not run inside one
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")


def _month_partitions(factory: sessionmaker[Session], today: dt.date) -> None:
    """On PostgreSQL with the case table partitioned by month (migration 0010), the months of the year of cases
    are made first, so that no case lands in the DEFAULT partition (nothing to do elsewhere)."""
    try:
        from gridmap.store import partitions as case_partitions
    except ImportError:  # a checkout before the partitioning
        return
    end = dt.datetime.combine(today, dt.time(0), dt.UTC)
    with factory.begin() as session:
        if session.connection().dialect.name == "postgresql":
            case_partitions.ensure_months(session, end - dt.timedelta(days=400), end + dt.timedelta(days=31))


def _write_areas(
    conn: sa.Connection, session: Session, generation_id: int, province: Province
) -> dict[str, np.ndarray]:
    runtime.mark_changed(session, "boundaries")
    table = Area.__table__
    first = next_id(conn, table)
    ids: dict[str, np.ndarray] = {}
    start = first
    for name in LEVELS:
        ids[name] = np.arange(start, start + len(province.levels[name].codes), dtype=np.int64)
        start += len(province.levels[name].codes)
    for k, name in enumerate(LEVELS):
        level = province.levels[name]
        n = len(level.codes)
        parent = ids[LEVELS[k - 1]][np.asarray(level.parent, dtype=np.int64)].tolist() if k else [None] * n
        write_columns(
            conn,
            table,
            {
                "id": ids[name],
                "generation_id": np.full(n, generation_id),
                "level": [name] * n,
                "code": level.codes,
                "name": level.names,
                "parent_id": parent,
                "households": level.households,
                "population": level.population,
                "area_m2": level.area_m2,
                "is_leaf": np.full(n, name == "microgrid"),
                "locked": np.zeros(n, bool),
                "geom": level.geoms,
            },
        )
    move_sequence(conn, table)
    bulk.record_inserts(
        conn,
        {"area": ids["district"].tolist() + ids["microgrid"][:10].tolist()},
        counts={"area": int(sum(len(v) for v in ids.values()))},
    )
    return ids


def _people_names(rng: np.random.Generator, n: int) -> list[str]:
    """`n` personal names at once (names.person_name's pools)."""
    out: list[str] = people_names(rng, n).tolist()
    return out


def people_names(rng: np.random.Generator, n: int) -> np.ndarray:
    """`n` personal names at once (names.person_name's pools): an object array of str, made with numpy."""
    surnames = names._SURNAMES_A[rng.integers(len(names._SURNAMES_A), size=n)]
    given = names._GIVEN_A[rng.integers(len(names._GIVEN_A), size=(n, 2))]
    two = rng.random(n) < 0.5
    whole = np.strings.add(np.strings.add(surnames, given[:, 0]), np.where(two, given[:, 1], ""))
    return whole.astype(object)


def _phones(rng: np.random.Generator, n: int) -> list[str]:
    out: list[str] = phones(rng, n).tolist()
    return out


def phones(rng: np.random.Generator, n: int) -> np.ndarray:
    """`n` mobile numbers (1, a digit 3–9, nine digits): an object array of str."""
    second = rng.integers(3, 10, size=n)
    rest = rng.integers(0, 1_000_000_000, size=n)
    return (10_000_000_000 + second * 1_000_000_000 + rest).astype(str).astype(object)


def _write_people(
    conn: sa.Connection, session: Session, province: Province, today: dt.date
) -> tuple[int, int, np.ndarray, np.ndarray]:
    """One party organisation per sub-district, community, grid and micro-grid (secretary, members); per grid its
    head (the branch secretary), a full-time and one or two part-time workers and a police officer shared within the
    community; a building head per micro-grid; per community its secretary and director (one person in most).
    Returns the counts and, per grid, its branch's id and its full-time worker's id."""
    runtime.mark_changed(session, "people")
    rng = np.random.default_rng([province.seed, 2_000])
    levels = province.levels
    since = today - dt.timedelta(days=366)
    org_first = next_id(conn, PartyOrg.__table__)
    org_ids: dict[str, np.ndarray] = {}
    start = org_first
    for name in LEVELS[1:]:
        org_ids[name] = np.arange(start, start + len(levels[name].codes), dtype=np.int64)
        start += len(levels[name].codes)
    n_orgs = start - org_first
    secretaries = _people_names(rng, n_orgs)
    phones = _phones(rng, n_orgs)
    org_cols: dict[str, list[Any]] = {
        k: []
        for k in (
            "id",
            "kind",
            "name",
            "parent_id",
            "secretary_name",
            "secretary_phone",
            "member_count",
            "reporting_member_count",
        )
    }
    link_cols: dict[str, list[Any]] = {"party_org_id": [], "area_code": []}
    pos = 0
    secretary_of: dict[str, list[tuple[str, str]]] = {}
    for k, name in enumerate(LEVELS[1:], start=1):
        level = levels[name]
        n = len(level.codes)
        kind, suffix = ORG_KINDS[name]
        members = rng.integers(3, 9, size=n) if name == "microgrid" else rng.integers(15, 60, size=n)
        reporting = (members * rng.uniform(0.2, 0.6, size=n)).astype(np.int64)
        parent = org_ids[LEVELS[k - 1]][np.asarray(level.parent)].tolist() if name != "subdistrict" else [None] * n
        org_cols["id"] += org_ids[name].tolist()
        org_cols["kind"] += [kind] * n
        org_cols["name"] += [f"{a}{suffix}" for a in level.names]
        org_cols["parent_id"] += parent
        org_cols["secretary_name"] += secretaries[pos : pos + n]
        org_cols["secretary_phone"] += phones[pos : pos + n]
        org_cols["member_count"] += members.tolist()
        org_cols["reporting_member_count"] += reporting.tolist()
        link_cols["party_org_id"] += org_ids[name].tolist()
        link_cols["area_code"] += level.codes
        secretary_of[name] = list(zip(secretaries[pos : pos + n], phones[pos : pos + n]))
        pos += n
    write_columns(
        conn,
        PartyOrg.__table__,
        {k: np.asarray(v) if k in ("id", "member_count", "reporting_member_count") else v for k, v in org_cols.items()},
    )
    n_links = len(link_cols["area_code"])
    link_first = next_id(conn, PartyOrgArea.__table__)
    write_columns(
        conn,
        PartyOrgArea.__table__,
        {
            "id": np.arange(link_first, link_first + n_links),
            "party_org_id": np.asarray(link_cols["party_org_id"]),
            "area_code": link_cols["area_code"],
            "valid_from": [since] * n_links,
            "valid_to": [None] * n_links,
        },
    )

    # staff: made in order, grid by grid, then micro-grids, then the communities' leaders
    staff_first = next_id(conn, Staff.__table__)
    s_name: list[str] = []
    s_phone: list[str] = []
    s_member: list[bool] = []
    a_staff: list[int] = []
    a_code: list[str] = []
    a_role: list[str] = []

    def person(name: str, phone: str, member: bool) -> int:
        s_name.append(name)
        s_phone.append(phone)
        s_member.append(member)
        return staff_first + len(s_name) - 1

    def serve(staff_id: int, code: str, role: str) -> None:
        a_staff.append(staff_id)
        a_code.append(code)
        a_role.append(role)

    grids = levels["grid"]
    n_grid = len(grids.codes)
    pool = iter(
        zip(
            _people_names(rng, 6 * n_grid + 2 * len(levels["microgrid"].codes) + 10),
            _phones(rng, 6 * n_grid + 2 * len(levels["microgrid"].codes) + 10),
        )
    )
    draws = rng.random((n_grid, 4))
    parttime = rng.integers(1, 3, size=n_grid)
    worker_of_grid = np.zeros(n_grid, dtype=np.int64)
    police: dict[int, int] = {}
    for g in range(n_grid):
        code = grids.codes[g]
        head_name, head_phone = secretary_of["grid"][g]
        serve(person(head_name, head_phone, True), code, "grid_head")
        name, phone = next(pool)
        worker_of_grid[g] = person(name, phone, bool(draws[g, 0] < 0.6))
        serve(int(worker_of_grid[g]), code, "fulltime_worker")
        for _ in range(int(parttime[g])):
            name, phone = next(pool)
            serve(person(name, phone, bool(draws[g, 1] < 0.3)), code, "parttime_worker")
        community = grids.parent[g]
        officer = police.get(community)
        if officer is None or draws[g, 2] < 0.25:
            name, phone = next(pool)
            officer = police[community] = person(name, phone, False)
        serve(officer, code, "police")
    micro = levels["microgrid"]
    for code in micro.codes:
        name, phone = next(pool)
        serve(person(name, phone, True), code, "building_head")
    communities = levels["community"]
    both = rng.random(len(communities.codes)) < 0.7
    for c, code in enumerate(communities.codes):
        sec_name, sec_phone = secretary_of["community"][c]
        secretary = person(sec_name, sec_phone, True)
        serve(secretary, code, "community_secretary")
        if both[c]:
            serve(secretary, code, "community_director")
        else:
            name, phone = next(pool)
            serve(person(name, phone, True), code, "community_director")
    write_columns(
        conn,
        Staff.__table__,
        {
            "id": np.arange(staff_first, staff_first + len(s_name)),
            "name": s_name,
            "phone": s_phone,
            "party_member": np.asarray(s_member, bool),
        },
    )
    link_first = next_id(conn, StaffArea.__table__)
    write_columns(
        conn,
        StaffArea.__table__,
        {
            "id": np.arange(link_first, link_first + len(a_staff)),
            "staff_id": np.asarray(a_staff),
            "area_code": a_code,
            "role": a_role,
        },
    )
    for table in (PartyOrg.__table__, PartyOrgArea.__table__, Staff.__table__, StaffArea.__table__):
        move_sequence(conn, table)
    bulk.record_inserts(
        conn,
        {"party_org": org_ids["subdistrict"][:20].tolist(), "staff": [staff_first]},
        counts={"party_org": n_orgs, "party_org_area": n_links, "staff": len(s_name), "staff_area": len(a_staff)},
    )
    return n_orgs, len(s_name), org_ids["grid"], worker_of_grid


def _write_places(conn: sa.Connection, province: Province, seed: int) -> int:
    """A residential compound per grid (at a point inside it) and a party-mass service centre per community."""
    rng = np.random.default_rng([seed, 3_000])
    levels = province.levels
    grids, communities, districts = levels["grid"], levels["community"], levels["district"]
    first = next_id(conn, Place.__table__)
    words = names._WORDS_A[rng.integers(len(names._WORDS_A), size=len(grids.codes))].tolist()
    suffixes = names._COMPOUND_SUFFIX_A[rng.integers(len(names._COMPOUND_SUFFIX_A), size=len(grids.codes))].tolist()
    numbers = rng.integers(1, 400, size=len(grids.codes)).tolist()
    roads = [names.road_name(rng) for _ in communities.codes]
    city = [PROVINCE_DISTRICTS[d][2] + PROVINCE_DISTRICTS[d][1] for d in range(len(districts.codes))]
    used: set[tuple[int, str]] = set()
    p_kind: list[str] = []
    p_name: list[str] = []
    p_addr: list[str] = []
    p_code: list[str] = []
    p_hh: list[int] = []
    p_attr: list[dict[str, object] | None] = []
    for g, code in enumerate(grids.codes):
        c = grids.parent[g]
        name = f"{words[g]}{suffixes[g]}"
        serial = 2
        while (c, name) in used:
            name = f"{words[g]}{suffixes[g]}{serial}期"
            serial += 1
        used.add((c, name))
        p_kind.append("compound")
        p_name.append(name)
        p_addr.append(f"{city[grids.district[g]]}{roads[c]}{numbers[g]}号{name}")
        p_code.append(code)
        p_hh.append(0)
        p_attr.append({"property_company": f"{name[:2]}物业服务有限公司", "owners_committee": bool(numbers[g] % 5 < 3)})
    for c, code in enumerate(communities.codes):
        p_kind.append("service_centre")
        p_name.append(f"{communities.names[c]}党群服务中心")
        p_addr.append(f"{city[communities.district[c]]}{communities.names[c]}")
        p_code.append(code)
        p_hh.append(0)
        p_attr.append(None)
    geoms = np.concatenate([shapely.point_on_surface(grids.geoms), shapely.point_on_surface(communities.geoms)])
    n = len(p_kind)
    write_columns(
        conn,
        Place.__table__,
        {
            "id": np.arange(first, first + n),
            "kind": p_kind,
            "name": p_name,
            "address": p_addr,
            "area_code": p_code,
            "parent_id": [None] * n,
            "households": np.asarray(p_hh),
            "attributes": p_attr,
            "geom": geoms,
        },
    )
    move_sequence(conn, Place.__table__)
    bulk.record_inserts(conn, {"place": [first]}, counts={"place": n})
    return n


__all__ = [
    "PROVINCE_DISTRICTS",
    "Province",
    "ProvinceScale",
    "ProvinceSummary",
    "Territory",
    "build_province",
    "load_province",
    "refuse_if_loaded",
]
