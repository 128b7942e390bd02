"""Re-locating every stored case under one boundary generation (#15 §7): the report of what a redraw moves.

`relocate(url, generation_id)` attributes the point of every case with one (open and closed, all years) to the
district, sub-district, community, grid, micro-grid and party branch of the generation `generation_id` — a draft
being planned, a newly active one, or an old one — by intake's rule, the rule publishing uses for open cases
(`gridmap.planning.publish._case_chains`): the leaf the point lies in (the smallest code on a shared edge); outside
every
leaf, the nearest leaf within `LocateOptions().nearest_m` (method `nearest`); the leaf a dispatcher chose for the
case (`grid_chosen`) while that code is still a leaf of the generation (method `chosen`); else none. The branch is
the one the grid has in that generation (`gridmap.planning.publish.assignments`: planned, or kept with an unchanged
code).

The product is a report, never a write: publishing already moves open cases when a generation takes effect, and
closed cases keep the grid of their day (measures count each case where it was, see `gridmap.cases.measures`). The
report has one row per case (`COLUMNS`: stored codes `old_*`, new codes `new_*`, `method`, `changed` as publishing
decides it — grid or micro-grid differ — and `grid_changed`) and a summary per grid (`summary`: cases before and
after, moved out and in, open ones among them).

Two ways to run it, with the same answers (tests/integration/test_relocate.py, tests/benchmarks/scale_dask.py):

* one process (`scheduler=None`): the cases are read by id range, each range located in turn;
* Dask distributed (`scheduler="tcp://host:8786"`, or `"local:N"` for a LocalCluster of N worker processes on this
  machine): the same id ranges become the partitions of a dask-geopandas frame of case points, read by the workers
  from the database themselves (so the database must be reachable from every worker: PostGIS, or a SpatiaLite
  file on a path every worker sees); the lookup index of the generation is built once on the client and scattered
  to every worker (broadcast), and each partition is located by the same function (`map_partitions`). The
  attribution kernel is gridmap's own `AreaIndex`, not `dask_geopandas.sjoin`: an sjoin would not apply the
  tie-break rule on shared edges nor the nearest-grid rule, and would answer differently there. The located
  partitions come back in id order one at a time (written to Parquet as they come with `out=`).

Measures over years: `received_by_month` counts the cases received per grid and month over any span from the
same id-range partitions (a Dask groupby sums the partial counts), each case in the grid it was in when received,
as `gridmap.cases.measures` counts it after a boundary change.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import numpy.typing as npt
import pandas as pd
import sqlalchemy as sa

from gridmap.errors import InvalidInput, NotFound
from gridmap.geo.index import AreaIndex
from gridmap.store.tables import FINISHED_STATES, Area, Case, Generation

if TYPE_CHECKING:
    from distributed import Client
    from sqlalchemy.orm import Session

LEVELS = ("district", "subdistrict", "community", "grid", "microgrid")
CODE_COLUMNS = [f"{lv}_code" for lv in LEVELS]
CASE_COLUMNS = ["id", "number", "state", "reported_at", "lon", "lat", "locate_flags", *CODE_COLUMNS, "branch_id"]
# a partition holds `grid_chosen` (a dispatcher chose the grid) instead of the flag list: dask.dataframe turns
# object columns into strings, a list into its repr
PARTITION_COLUMNS = [c if c != "locate_flags" else "grid_chosen" for c in CASE_COLUMNS]
COLUMNS = (
    ["case_id", "number", "state", "open", "reported_at", "lon", "lat"]
    + [f"old_{c}" for c in CODE_COLUMNS]
    + ["old_branch_id"]
    + [f"new_{c}" for c in CODE_COLUMNS]
    + ["new_branch_id", "method", "changed", "grid_changed"]
)
SUMMARY_COLUMNS = [
    "grid_code",
    "grid_name",
    "cases_before",
    "cases_after",
    "moved_out",
    "moved_in",
    "open_moved_out",
    "open_moved_in",
]
DEFAULT_ROWS = 250_000  # cases per partition
MAX_ROWS = 5_000_000
MAX_LOCAL_WORKERS = 64
SCHEDULER = re.compile(r"^(tcp|tls|ucx|inproc|ws|wss)://[A-Za-z0-9.\-_\[\]:/]{1,200}$")


@dataclass
class Boundaries:
    """What every worker needs to locate: the generation's lookup index and each grid's party branch."""

    generation_id: int
    index: AreaIndex
    branches: dict[str, int | None] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)
    levels: np.ndarray | None = None  # per leaf position (and a last row for none), its code at each level

    def __post_init__(self) -> None:
        if self.levels is None:
            self.levels = _level_table(self.index)


def boundaries(session: Session, generation_id: int) -> Boundaries:
    """The index of `generation_id` and its grids' branches (`publish.assignments`); NotFound for no such id."""
    from gridmap.boundaries.areas import load_index
    from gridmap.planning.publish import assignments

    if session.get(Generation, generation_id) is None:
        raise NotFound(
            f"generation: no generation has id {generation_id}",
            field="generation",
            zh=f"边界版本：没有编号为 {generation_id} 的边界版本。",
        )
    index = load_index(session, generation_id)
    grids = assignments(session, generation_id)["grids"]
    branches = {g["code"]: (g["branch"]["id"] if g["branch"] else None) for g in grids}
    names = {ref.code: ref.name for ref in index.by_code.values() if ref.level == "grid"}
    return Boundaries(generation_id, index, branches, names)


# -- reading cases by id range ---------------------------------------------------------------------------------------

_ENGINES: dict[str, sa.engine.Engine] = {}


def _engine_for(url: str) -> sa.engine.Engine:
    """One engine per database URL and process (a Dask worker reads many partitions through it)."""
    from gridmap.store import engine as storage

    if url not in _ENGINES:
        _ENGINES[url] = storage.make_engine(url)
    return _ENGINES[url]


def id_ranges(session: Session, rows_per_partition: int = DEFAULT_ROWS) -> list[tuple[int, int]]:
    """Half-open case id ranges [lo, hi) of about `rows_per_partition` located cases each (equal id spans)."""
    if not 1 <= rows_per_partition <= MAX_ROWS:
        raise InvalidInput(
            f"rows_per_partition: {rows_per_partition} is out of range 1–{MAX_ROWS:,}",
            field="rows_per_partition",
            zh=f"每个分区的行数：{rows_per_partition} 超出范围 1–{MAX_ROWS:,}。",
        )
    count, lo, hi = session.execute(
        sa.select(sa.func.count(), sa.func.min(Case.id), sa.func.max(Case.id)).where(
            Case.lon.is_not(None), Case.lat.is_not(None)
        )
    ).one()
    if not count:
        return []
    parts = max(1, math.ceil(count / rows_per_partition))
    edges = np.unique(np.linspace(lo, hi + 1, parts + 1).round().astype(np.int64))
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]


def read_cases(url: str, lo: int, hi: int) -> pd.DataFrame:
    """The located cases with lo <= id < hi, in id order (`PARTITION_COLUMNS`)."""
    # the time and the flags as the driver gives them (SpatiaLite: text; PostGIS: datetime and list), converted
    # below by column: SQLAlchemy's per-value processing took 60 % of the read
    raw = ("reported_at", "locate_flags")
    query = (
        sa.select(
            *[sa.type_coerce(getattr(Case, c), sa.String) if c in raw else getattr(Case, c) for c in CASE_COLUMNS]
        )
        .where(Case.id >= lo, Case.id < hi, Case.lon.is_not(None), Case.lat.is_not(None))
        .order_by(Case.id)
    )
    with _engine_for(url).connect() as conn:
        rows = conn.execute(query).all()
    columns = list(zip(*rows)) if rows else [() for _ in CASE_COLUMNS]
    frame = pd.DataFrame({c: pd.Series(v, dtype=object) for c, v in zip(CASE_COLUMNS, columns)})
    frame["locate_flags"] = [
        (('"grid_chosen"' in f) if isinstance(f, str) else ("grid_chosen" in f)) if f else False
        for f in frame["locate_flags"]
    ]
    return _case_types(frame.rename(columns={"locate_flags": "grid_chosen"}))


def _case_types(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.astype(
        {"grid_chosen": "bool", "id": "int64", "lon": "float64", "lat": "float64", "branch_id": "Int64"}
    )
    at = pd.to_datetime(frame["reported_at"], utc=True, format="ISO8601")  # SpatiaLite's text: UTC
    frame["reported_at"] = at.astype("datetime64[us, UTC]")
    for c in ("number", "state", *CODE_COLUMNS):
        frame[c] = frame[c].astype(object).where(frame[c].notna(), None)
    return frame


def _case_points(frame: pd.DataFrame) -> Any:  # a GeoDataFrame (geopandas has no types)
    """The cases as a GeoDataFrame of points (EPSG:4326): the frames the Dask path partitions."""
    import geopandas as gpd

    return gpd.GeoDataFrame(frame, geometry=gpd.points_from_xy(frame["lon"], frame["lat"]), crs=4326)


# -- where each case goes --------------------------------------------------------------------------------------------


def place(
    index: AreaIndex, lon: npt.ArrayLike, lat: npt.ArrayLike, chosen: npt.ArrayLike, stored: Sequence[object]
) -> tuple[np.ndarray, np.ndarray]:
    """Leaf position in `index.leaves` (−1: no grid) and method (inside, nearest, chosen, none) of each case by
    intake's rule — the vectorised twin of `gridmap.planning.publish._case_chains` (same leaf for every case; the tests
    compare them). `chosen`: the case's flags hold `grid_chosen`; `stored`: its stored leaf code."""
    from gridmap.locating.locate import LocateOptions

    lon = np.asarray(lon, dtype=np.float64)
    lat = np.asarray(lat, dtype=np.float64)
    n = len(lon)
    leaf = index.locate_many(lon, lat) if n else np.zeros(0, np.int64)
    method = np.where(leaf >= 0, "inside", "none").astype(object)
    codes = index.leaf_codes_sorted
    fixed = np.zeros(n, bool)
    for i in np.flatnonzero(np.asarray(chosen, dtype=bool)):
        own = stored[int(i)]
        if isinstance(own, str):
            j = int(np.searchsorted(codes, own))
            if j < len(codes) and codes[j] == own:
                leaf[i], method[i], fixed[i] = j, "chosen", True
    nearest_m = LocateOptions().nearest_m
    for i in np.flatnonzero((leaf < 0) & ~fixed):
        found = index.locate(float(lon[i]), float(lat[i]), nearest_m=nearest_m)
        if found.chain and found.leaf_code is not None:
            leaf[i] = int(np.searchsorted(codes, found.leaf_code))
            method[i] = "nearest"
    return leaf, method


def _level_table(index: AreaIndex) -> np.ndarray:
    """Per leaf position (and a last row of Nones for −1), its code at each level."""
    table = np.full((len(index.leaves) + 1, len(LEVELS)), None, dtype=object)
    for i, ref in enumerate(index.leaves):
        for a in index.chain_of(ref.code):
            if a.level in LEVELS:
                table[i, LEVELS.index(a.level)] = a.code
    return table


def relocate_partition(cases: pd.DataFrame, bnd: Boundaries) -> pd.DataFrame:
    """One partition of the report (`COLUMNS`) for cases read by `read_cases` (a GeoDataFrame of them too)."""
    table = bnd.levels
    assert table is not None  # made by Boundaries.__post_init__
    stored = [m if isinstance(m, str) and m else g for m, g in zip(cases["microgrid_code"], cases["grid_code"])]
    leaf, method = place(
        bnd.index,
        cases["lon"].to_numpy(float),
        cases["lat"].to_numpy(float),
        cases["grid_chosen"].to_numpy(bool),
        stored,
    )
    new = table[np.where(leaf >= 0, leaf, len(table) - 1)]
    out = pd.DataFrame(
        {
            "case_id": cases["id"].to_numpy(np.int64),
            "number": cases["number"].to_numpy(object),
            "state": cases["state"].to_numpy(object),
            "open": ~cases["state"].isin(FINISHED_STATES).to_numpy(bool),
            "reported_at": cases["reported_at"].to_numpy(),
            "lon": cases["lon"].to_numpy(float),
            "lat": cases["lat"].to_numpy(float),
        }
    )
    out["reported_at"] = pd.to_datetime(out["reported_at"], utc=True).astype("datetime64[us, UTC]")
    for c in CODE_COLUMNS:
        out[f"old_{c}"] = cases[c].to_numpy(object)
    out["old_branch_id"] = cases["branch_id"].astype("Int64").array
    for k, c in enumerate(CODE_COLUMNS):
        out[f"new_{c}"] = new[:, k]
    out["new_branch_id"] = pd.array([bnd.branches.get(g) if g is not None else None for g in new[:, 3]], dtype="Int64")
    out["method"] = method

    def differs(a: str, b: str) -> np.ndarray:
        return (out[a].fillna("").astype(str) != out[b].fillna("").astype(str)).to_numpy(bool)

    out["grid_changed"] = differs("old_grid_code", "new_grid_code")
    out["changed"] = out["grid_changed"] | differs("old_microgrid_code", "new_microgrid_code")
    text = ["number", "state", "method", *(f"{side}_{c}" for side in ("old", "new") for c in CODE_COLUMNS)]
    return out[COLUMNS].astype(dict.fromkeys(text, "str")).reset_index(drop=True)  # one type in every partition


def empty_report() -> pd.DataFrame:
    """The report's columns and types with no row (the meta of the Dask path)."""
    bnd = Boundaries(0, AreaIndex([], []))
    return relocate_partition(_case_types(pd.DataFrame({c: [] for c in PARTITION_COLUMNS})), bnd)


def summary(report: pd.DataFrame, names: dict[str, str] | None = None) -> pd.DataFrame:
    """Per grid code found before or after (`SUMMARY_COLUMNS`): cases attributed to it as stored and under the
    generation, those moving out of it and into it (the grid changes), and the open ones among the moves."""
    return _named(_grid_counts(report), names)


def _grid_counts(report: pd.DataFrame) -> pd.DataFrame:
    """The counts of `summary` by grid code (the index): partial counts of partitions add up."""
    moved = report[report["grid_changed"]]
    parts = {
        "cases_before": report.groupby("old_grid_code").size(),
        "cases_after": report.groupby("new_grid_code").size(),
        "moved_out": moved.groupby("old_grid_code").size(),
        "moved_in": moved.groupby("new_grid_code").size(),
        "open_moved_out": moved[moved["open"]].groupby("old_grid_code").size(),
        "open_moved_in": moved[moved["open"]].groupby("new_grid_code").size(),
    }
    codes = sorted(set().union(*[set(s.index) for s in parts.values()]))
    out = pd.DataFrame(index=pd.Index(codes, dtype=object, name="grid_code"))
    for column, series in parts.items():
        out[column] = series.reindex(out.index).fillna(0).astype("int64")
    return out


def _named(counts: pd.DataFrame, names: dict[str, str] | None) -> pd.DataFrame:
    out = counts.sort_index().reset_index()
    out["grid_code"] = out["grid_code"].astype(object)
    out["grid_name"] = out["grid_code"].map(names or {}).astype(object)
    return out[SUMMARY_COLUMNS]


def _add_totals(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = {k: a.get(k, 0) + b[k] for k in b if k != "method"}
    methods = dict(a.get("method", {}))
    for k, v in b["method"].items():
        methods[k] = methods.get(k, 0) + v
    out["method"] = dict(sorted(methods.items()))
    return out


def totals(report: pd.DataFrame) -> dict[str, Any]:
    return {
        "cases": int(len(report)),
        "open": int(report["open"].sum()),
        "changed": int(report["changed"].sum()),
        "grid_changed": int(report["grid_changed"].sum()),
        "open_changed": int((report["changed"] & report["open"]).sum()),
        "method": {k: int(v) for k, v in report["method"].value_counts().sort_index().items()},
    }


# -- the two paths ---------------------------------------------------------------------------------------------------


def check_scheduler(scheduler: str) -> str:
    """`local:N` (1–64 worker processes on this machine) or a scheduler address such as tcp://host:8786."""
    if scheduler.startswith("local:"):
        n = scheduler[6:]
        if not (n.isascii() and n.isdigit() and 1 <= int(n) <= MAX_LOCAL_WORKERS):
            raise InvalidInput(
                f"scheduler: {scheduler[:40]!r}: local:N takes 1–{MAX_LOCAL_WORKERS} workers",
                field="scheduler",
                zh=f"调度器：{scheduler[:40]!r} 无效，local:N 的进程数须为 1–{MAX_LOCAL_WORKERS}。",
            )
        return scheduler
    if not SCHEDULER.match(scheduler):
        raise InvalidInput(
            f"scheduler: {scheduler[:40]!r} is neither local:N nor an address such as tcp://host:8786",
            field="scheduler",
            zh=f"调度器：{scheduler[:40]!r} 既不是 local:N，也不是 tcp://主机:8786 这样的地址。",
        )
    return scheduler


def open_client(scheduler: str) -> Client:
    """A distributed Client: a LocalCluster of N single-threaded worker processes for `local:N`, else the
    scheduler at the address. Close it (and its cluster) with `close_client`."""
    from distributed import Client, LocalCluster

    check_scheduler(scheduler)
    if scheduler.startswith("local:"):
        cluster = LocalCluster(
            n_workers=int(scheduler[6:]), threads_per_worker=1, processes=True, dashboard_address=None
        )
        return Client(cluster)
    return Client(scheduler)


def close_client(client: Client) -> None:
    cluster = client.cluster if hasattr(client, "cluster") else None
    client.close()
    if cluster is not None:
        cluster.close()


def relocate_local(url: str, bnd: Boundaries, ranges: list[tuple[int, int]]) -> Iterator[pd.DataFrame]:
    """The single-machine path: each id range read and located in turn, in this process (a partition at a time)."""
    for lo, hi in ranges:
        yield relocate_partition(_case_points(read_cases(url, lo, hi)), bnd)


def _read_points(span: tuple[int, int], url: str) -> Any:
    return _case_points(read_cases(url, *span))


def relocate_dask(url: str, bnd: Boundaries, ranges: list[tuple[int, int]], client: Client) -> Iterator[pd.DataFrame]:
    """The Dask path: one partition per id range, read by a worker; the index scattered to every worker once.
    The located partitions are fetched in id order, each released once handed on (the client holds one)."""
    import dask.dataframe as dd
    import dask_geopandas  # noqa: F401 - registers the GeoDataFrame backend of dask.dataframe

    if not ranges:
        return
    shared = client.scatter(bnd, broadcast=True, hash=False)
    meta = _case_points(_case_types(pd.DataFrame({c: [] for c in PARTITION_COLUMNS})))
    points = dd.from_map(_read_points, ranges, url=url, meta=meta, enforce_metadata=False)
    located = points.map_partitions(relocate_partition, shared, meta=empty_report(), enforce_metadata=False)
    futures = client.compute(located.to_delayed())
    try:
        for future in futures:
            yield future.result()
            future.release()
    finally:
        client.cancel(futures)


def relocate(
    url: str,
    generation_id: int,
    *,
    scheduler: str | None = None,
    client: Client | None = None,
    rows_per_partition: int = DEFAULT_ROWS,
    out: str | Path | None = None,
) -> tuple[pd.DataFrame | None, pd.DataFrame, dict[str, Any]]:
    """The report of re-locating every located case of the database at `url` under `generation_id`:
    (per case, per grid, totals). On Dask when `scheduler` (or an open `client`) is given. With `out` (a path)
    the report per case is written there as Parquet a partition at a time, never held whole (None is returned
    in its place)."""
    from gridmap.store import engine as storage

    if scheduler is not None:
        check_scheduler(scheduler)
    engine = _engine_for(url)
    with storage.make_sessionmaker(engine)() as session:
        bnd = boundaries(session, generation_id)
        ranges = id_ranges(session, rows_per_partition)
        old_names = dict(
            session.execute(
                sa.select(Area.code, Area.name).where(Area.level == "grid").order_by(Area.generation_id)
            ).all()
        )
    own = open_client(scheduler) if client is None and scheduler is not None else None
    try:
        runner = client if client is not None else own
        parts = relocate_local(url, bnd, ranges) if runner is None else relocate_dask(url, bnd, ranges, runner)
        report, counts, result = _collect(parts, out)
    finally:
        if own is not None:
            close_client(own)
    result.update(generation_id=generation_id, partitions=len(ranges))
    return report, _named(counts, {**old_names, **bnd.names}), result


def _collect(
    parts: Iterable[pd.DataFrame], out: str | Path | None
) -> tuple[pd.DataFrame | None, pd.DataFrame, dict[str, Any]]:
    """The partitions concatenated (or written to `out`), their grid counts and totals added up."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    empty = empty_report()
    schema = pa.Schema.from_pandas(empty, preserve_index=False)
    kept, counts, result = [], [_grid_counts(empty)], totals(empty)
    writer = pq.ParquetWriter(out, schema) if out is not None else None
    try:
        for part in parts:
            if not len(part):
                continue
            counts.append(_grid_counts(part))
            result = _add_totals(result, totals(part))
            if writer is not None:
                writer.write_table(pa.Table.from_pandas(part, schema=schema, preserve_index=False))
            else:
                kept.append(part)
    finally:
        if writer is not None:
            writer.close()
    report = None if writer is not None else (pd.concat(kept, ignore_index=True) if kept else empty)
    total = pd.concat(counts).groupby(level=0).sum().astype("int64")
    total.index = total.index.astype(object).rename("grid_code")
    return report, total, result


# -- measures over years: cases received per month and grid --------------------------------------------------------


def all_id_ranges(session: Session, rows_per_partition: int = DEFAULT_ROWS) -> list[tuple[int, int]]:
    """Half-open id ranges of about `rows_per_partition` cases each, over every case (located or not)."""
    if not 1 <= rows_per_partition <= MAX_ROWS:
        raise InvalidInput(
            f"rows_per_partition: {rows_per_partition} is out of range 1–{MAX_ROWS:,}",
            field="rows_per_partition",
            zh=f"每个分区的行数：{rows_per_partition} 超出范围 1–{MAX_ROWS:,}。",
        )
    count, lo, hi = session.execute(sa.select(sa.func.count(), sa.func.min(Case.id), sa.func.max(Case.id))).one()
    if not count:
        return []
    parts = max(1, math.ceil(count / rows_per_partition))
    edges = np.unique(np.linspace(lo, hi + 1, parts + 1).round().astype(np.int64))
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]


def _grid_moves(detail: dict[str, Any] | None) -> tuple[str | None, str | None] | None:
    """(from, to) grid of a `boundary_change` event that changed the grid, else None (as `measures` reads it:
    `codes.grid_code`, or the `from`/`to` grids of events written before the codes were recorded)."""
    detail = detail or {}
    pair = (detail.get("codes") or {}).get("grid_code")
    if isinstance(pair, dict):
        return pair.get("from"), pair.get("to")
    before, after = (detail.get("from") or {}).get("grid"), (detail.get("to") or {}).get("grid")
    return (before, after) if before != after else None


def received_partition(span: tuple[int, int], url: str, edges: list[Any]) -> pd.DataFrame:
    """Cases with lo <= id < hi received in each month [edges[k], edges[k+1]), per grid they were in when
    received (a later boundary change re-located it: the grid before the first such change after its report).
    Columns month (k), grid_code (NO_UNIT for none), received."""
    from gridmap.cases.measures import NO_UNIT
    from gridmap.store.tables import CaseEvent

    lo, hi = span
    bounds = pd.DatetimeIndex(pd.to_datetime(list(edges), utc=True)).as_unit("us")
    with _engine_for(url).connect() as conn:
        rows = conn.execute(
            sa.select(Case.id, sa.type_coerce(Case.reported_at, sa.String), Case.grid_code).where(
                Case.id >= lo,
                Case.id < hi,
                Case.reported_at >= bounds[0].to_pydatetime(),
                Case.reported_at < bounds[-1].to_pydatetime(),
            )
        ).all()
        events = conn.execute(
            sa.select(CaseEvent.case_id, sa.type_coerce(CaseEvent.at, sa.String), CaseEvent.detail)
            .where(CaseEvent.case_id >= lo, CaseEvent.case_id < hi, CaseEvent.action == "boundary_change")
            .order_by(CaseEvent.case_id, CaseEvent.at, CaseEvent.id)
        ).all()
    ids, at, grid = (list(c) for c in zip(*rows)) if rows else ([], [], [])
    reported = pd.to_datetime(pd.Series(at, dtype=object), utc=True, format="ISO8601")
    if events:
        position = {case_id: i for i, case_id in enumerate(ids)}
        times = pd.to_datetime(pd.Series([e[1] for e in events], dtype=object), utc=True, format="ISO8601")
        decided: set[int] = set()
        for (case_id, _, detail), when in zip(events, times):
            i = position.get(case_id)
            if i is None or i in decided or when <= cast(pd.Timestamp, reported.iat[i]):  # a datetime Series
                continue
            change = _grid_moves(detail)
            if change is not None:
                grid[i] = change[0]
                decided.add(i)
    month = (
        np.searchsorted(bounds.asi8, pd.DatetimeIndex(reported).as_unit("us").asi8, side="right") - 1
        if len(ids)
        else np.zeros(0, np.int64)
    )
    frame = pd.DataFrame(
        {
            "month": np.asarray(month, np.int64),
            "grid_code": pd.Series([g if isinstance(g, str) else NO_UNIT for g in grid], dtype=object),
        }
    )
    frame = frame[(frame["month"] >= 0) & (frame["month"] < len(edges) - 1)]
    out = frame.groupby(["month", "grid_code"]).size().rename("received").reset_index()
    return out.astype({"month": "int64", "received": "int64"}).astype({"grid_code": object})


def received_by_month(
    url: str, edges: list[Any], *, client: Client | None = None, rows_per_partition: int = DEFAULT_ROWS
) -> pd.DataFrame:
    """Cases received per month [edges[k], edges[k+1]) and grid, over any number of years, summed over id-range
    partitions — in this process, or on Dask with `client` (each worker reads its ranges; the partial counts are
    summed by a Dask groupby). Equal to `measures.measures(session, "grid", since=edges[k], until=edges[k+1])`'s
    received column per grid (tests/integration/test_relocate.py). Columns month, grid_code, received; sorted."""
    from gridmap.store import engine as storage

    with storage.make_sessionmaker(_engine_for(url))() as session:
        ranges = all_id_ranges(session, rows_per_partition)
    edges = list(edges)
    meta = pd.DataFrame(
        {
            "month": pd.Series([], dtype="int64"),
            "grid_code": pd.Series([], dtype=object),
            "received": pd.Series([], dtype="int64"),
        }
    )
    if not ranges:
        return meta
    if client is None:
        parts = pd.concat([received_partition(span, url, edges) for span in ranges], ignore_index=True)
        total = parts.groupby(["month", "grid_code"])["received"].sum()
    else:
        import dask.dataframe as dd

        parts = dd.from_map(received_partition, ranges, url=url, edges=edges, meta=meta, enforce_metadata=False)
        total = client.compute(parts.groupby(["month", "grid_code"])["received"].sum(), sync=True)
    out = total.reset_index().sort_values(["month", "grid_code"], ignore_index=True)
    return out.astype({"month": "int64", "received": "int64"}).astype({"grid_code": object})
