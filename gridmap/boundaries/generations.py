"""Boundary generations: which boundaries were in force on a day, drafts that planners redraw, activation,
and the lookup indexes that follow them.

A generation is *draft*, *active* (exactly one) or *retired*. Activating a draft on a date retires the active one
on that date (`effective_to` = the new `effective_from`), so that for every day after the first generation began
exactly one generation was in force: `generation_on(date)` answers "which grid was responsible on that day".

`IndexRegistry` holds the lookup indexes: the active one, and a few others by generation for as-of and draft
lookups. Activation builds the new index first and then swaps one reference, so requests in flight finish on
the old index and the service never stops. Every write to `generation` or `area` moves the `boundaries` topic of
`gridmap.runtime`, and every serving process then calls `IndexRegistry.invalidate()` before its next answer.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa
from shapely.geometry.base import BaseGeometry
from sqlalchemy import orm
from sqlalchemy.orm import Session

from gridmap import runtime as _runtime  # noqa: F401 - installs the hooks that tell other processes of a change
from gridmap.boundaries.areas import active_generation, index_from_rows, load_index
from gridmap.errors import InvalidInput, NotFound
from gridmap.geo.index import AreaIndex
from gridmap.store.tables import Area, Case, Generation


def get_generation(session: Session, generation_id: int) -> Generation:
    gen = session.get(Generation, generation_id)
    if gen is None:
        raise NotFound(
            f"generation: no generation has id {generation_id}",
            field="generation",
            zh=f"没有编号为 {generation_id} 的边界版本。",
        )
    return gen


def list_generations(session: Session) -> list[Generation]:
    return list(session.scalars(sa.select(Generation).order_by(Generation.id)))


def generation_on(session: Session, day: dt.date) -> Generation:
    """The generation in force on `day` (active or retired); `NotFound` naming `as_of` when there was none."""
    gen = session.scalars(
        sa.select(Generation)
        .where(Generation.status.in_(("active", "retired")))
        .where(Generation.effective_from <= day)
        .where(sa.or_(Generation.effective_to.is_(None), Generation.effective_to > day))
        .order_by(Generation.effective_from.desc())
        .limit(1)
    ).first()
    if gen is None:
        first = session.scalar(
            sa.select(sa.func.min(Generation.effective_from)).where(Generation.status.in_(("active", "retired")))
        )
        since = f"; the first boundaries took effect on {first}" if first else ""
        raise NotFound(
            f"as_of: no boundaries were in force on {day}{since}",
            field="as_of",
            zh=f"日期：{day} 没有现行的边界{(f'；最早的边界自 {first} 起生效' if first else '')}。",
        )
    return gen


def generation_dict(gen: Generation) -> dict[str, Any]:
    return {
        "id": gen.id,
        "name": gen.name,
        "status": gen.status,
        "effective_from": gen.effective_from.isoformat() if gen.effective_from else None,
        "effective_to": gen.effective_to.isoformat() if gen.effective_to else None,
        "note": gen.note,
    }


def create_draft(
    session: Session, name: str, *, source_id: int | None = None, note: str | None = None, created_by: str | None = None
) -> Generation:
    """A new draft holding a copy of every area of `source_id` (the active generation by default); `base_id`
    records the source and `created_by` the planner (the four-eyes rule of publishing compares it)."""
    if not name or not name.strip():
        raise InvalidInput("name: must not be empty", field="name", zh="名称不能为空。")
    source = get_generation(session, source_id) if source_id else active_generation(session)
    draft = Generation(name=name.strip(), status="draft", note=note, base_id=source.id, created_by=created_by)
    session.add(draft)
    session.flush()
    rows = session.scalars(sa.select(Area).where(Area.generation_id == source.id).order_by(Area.code)).all()
    new_id: dict[int, Area] = {}
    for row in rows:
        copy = Area(
            generation_id=draft.id,
            level=row.level,
            code=row.code,
            name=row.name,
            households=row.households,
            population=row.population,
            area_m2=row.area_m2,
            is_leaf=row.is_leaf,
            locked=row.locked,
            geom=row.geom,
        )  # a lock stays with the area into the next draft
        new_id[row.id] = copy
        session.add(copy)
    session.flush()
    for row in rows:
        if row.parent_id:
            new_id[row.id].parent_id = new_id[row.parent_id].id
    session.flush()
    return draft


def redraw(
    session: Session, generation_id: int, changes: dict[str, BaseGeometry], *, actor: str | None = None
) -> list[str]:
    """Replace the geometry of some leaves of a draft and recompute their ancestors as exact coverage unions.

    The changed leaves must be valid polygons and must together cover exactly what they covered before: they are
    re-noded with every leaf next to them, and a gap left or an overlap with any leaf (given or not) over 0.01 m² is
    refused, smaller ones absorbed, so no ancestor gets a hole or a zero-area ring. Households, population and area
    are recomputed (see `gridmap.planning.edit`), and the redraw is logged as an edit that can be undone. Returns the
    codes whose row changed (leaves and ancestors)."""
    from gridmap.planning import edit as plan_edit

    result = plan_edit.redraw(session, generation_id, changes, actor)
    return [row["code"] for row in result["changed"]]


def activate(
    session: Session,
    generation_id: int,
    effective_from: dt.date,
    *,
    actor: str = "system",
    from_states: tuple[str, ...] = ("draft", "submitted", "approved"),
) -> Generation:
    """Put a generation in force from `effective_from` (today or earlier, China time); the active one is retired on
    that day. Everything that follows an activation — planned branches and staff, merged branches, places and open
    cases re-located with a `boundary_change` event — is done in the same transaction by
    `gridmap.planning.publish.activate_generation` (the operator's direct path; through the API a draft is submitted and
    approved first, see `gridmap.planning.publish`)."""
    from gridmap.planning.publish import activate_generation

    gen: Generation = activate_generation(session, generation_id, effective_from, actor=actor, from_states=from_states)[
        "generation"
    ]
    return gen


def relocate_cases(session: Session, index: AreaIndex, *, since: dt.datetime | None = None) -> pd.DataFrame:
    """Re-locate every stored case against `index` (e.g. a draft's) and list those whose grid would change."""
    query = sa.select(Case.id, Case.number, Case.lon, Case.lat, Case.grid_code, Case.microgrid_code, Case.state)
    if since is not None:
        query = query.where(Case.reported_at >= since)
    frame = pd.DataFrame(
        session.execute(query.where(Case.lon.is_not(None))).all(),
        columns=["id", "number", "lon", "lat", "grid_code", "microgrid_code", "state"],
    )
    if frame.empty:
        return frame.assign(new_grid_code=[], new_microgrid_code=[])
    leaf = index.locate_many(frame["lon"].to_numpy(float), frame["lat"].to_numpy(float))
    chains = {i: index.chain_of(index.leaves[i].code) for i in set(leaf.tolist()) if i >= 0}

    def code_at(i: int, level: str) -> str | None:
        return next((a.code for a in chains[i] if a.level == level), None) if i >= 0 else None

    frame["new_grid_code"] = [code_at(i, "grid") for i in leaf]
    frame["new_microgrid_code"] = [code_at(i, "microgrid") for i in leaf]
    changed = (frame["new_grid_code"].fillna("") != frame["grid_code"].fillna("")) | (
        frame["new_microgrid_code"].fillna("") != frame["microgrid_code"].fillna("")
    )
    return frame[changed].reset_index(drop=True)


SHARED_INDEX_KEEP = 6  # shared index folders kept per cache folder (the newest)


def shared_index(session: Session, generation_id: int, *, cache_dir: str | Path | None = None) -> AreaIndex:
    """The lookup index of a generation, built once and shared read-only by every process on the machine.

    The index is pickled (protocol 5) with its numeric arrays out of band, each written as a `.npy` file, in a folder
    named by a digest of the generation's rows (ids, codes, names, parents, geometry bytes), the source of the index
    code and the library versions — another database, another generation or any change of its areas gives another
    folder. A process loads it with the arrays memory-mapped (`np.load(mmap_mode='c')`): their pages (the cell
    raster, over 95 % of the index) are one copy in the page cache for all workers instead of one per process.
    Copy-on-write rather than read-only: nothing writes them, and they keep the writable array type the compiled
    kernels (`gridmap.geo.cells`) were compiled and cached for (read-only arrays would compile them again).
    The first process builds it under a file lock; the others wait and load it. Any failure to use the folder
    (not writable, not owned by this user) falls back to building the index in memory."""
    import fcntl
    import os
    import pickle
    import shutil
    import tempfile
    from pathlib import Path

    import numpy as np

    from gridmap.locating.batch import area_rows, index_cache_dir, index_digest, load_shared_index, shared_index_folder

    # the rows hashed as `batch.quick_index` hashes them (`gridmap locate-file` finds the file without the ORM); on
    # SpatiaLite with each geometry's WKB too (the stored blob is hashed, the WKB decoded if the index is built)
    dbapi = session.connection().connection.driver_connection
    assert dbapi is not None  # a connection checked out of the pool
    cursor = dbapi.cursor()
    try:
        raw = area_rows(cursor, generation_id, session.get_bind().dialect.name == "sqlite", wkb=True)
    finally:
        cursor.close()
    folder = Path(cache_dir) if cache_dir is not None else index_cache_dir()
    target = shared_index_folder(folder, generation_id, index_digest(raw, generation_id))

    def build() -> AreaIndex:
        return index_from_rows([(r[0], r[1], r[2], r[3], r[6], r[5]) for r in raw], generation_id)

    def load() -> AreaIndex | None:
        return load_shared_index(target, generation_id)

    index = load()
    if index is not None:
        return index
    lock_path = folder / f"shared-{generation_id}.lock"
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        lock_path.touch()
    except OSError:
        return build()
    with open(lock_path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one process builds; the others wait here and then load its files
        index = load()
        if index is not None:
            return index
        index = build()
        raw.clear()  # the rows are not needed while the index is written
        try:
            partial = Path(tempfile.mkdtemp(prefix=f".shared-{generation_id}-", dir=folder))
            buffers: list[Any] = []
            data = pickle.dumps(index, protocol=5, buffer_callback=buffers.append)
            for i, buffer in enumerate(buffers):
                np.save(partial / f"{i}.npy", np.frombuffer(buffer.raw(), dtype=np.uint8), allow_pickle=False)
            (partial / "buffers").write_text(str(len(buffers)))
            (partial / "index.pickle").write_bytes(data)
            os.replace(partial, target)
            kept = sorted(folder.glob("shared-*-*"), key=lambda p: p.stat().st_mtime, reverse=True)
            for old in kept[SHARED_INDEX_KEEP:]:
                if old.is_dir() and not old.name.endswith(".lock"):
                    shutil.rmtree(old, ignore_errors=True)  # processes that mapped it keep their pages
        except OSError:
            shutil.rmtree(partial, ignore_errors=True)
            return index
        return load() or index


class IndexRegistry:
    """Lookup indexes by generation: the active one always ready, a few others cached (least recently used)."""

    def __init__(
        self,
        sessionmaker: orm.sessionmaker[Session],
        cache_size: int = 4,
        *,
        shared: bool = False,
        cache_dir: str | Path | None = None,
    ):
        """With `shared`, indexes of generations no longer drafts come from `shared_index` (built once per machine,
        memory-mapped by every process; `cache_dir` or the user's cache folder); drafts are built in memory."""
        self.sessionmaker = sessionmaker
        self.cache_size = cache_size
        self.shared, self.cache_dir = shared, cache_dir
        self._active: AreaIndex | None = None
        self._cache: OrderedDict[int, AreaIndex] = OrderedDict()
        # two locks: `_lock` is held while an index is built (seconds at province scale) so that one build runs at
        # a time; `_state` only around reading and swapping the fields, so that `invalidate()` (called before a
        # request is answered, perhaps on the event loop) never waits for a build
        self._lock = threading.Lock()
        self._state = threading.Lock()
        self._stale = False
        self._epoch = 0  # moved by every invalidate(): a build begun before it does not clear `_stale`

    @property
    def current(self) -> AreaIndex | None:
        """The active index if it is built and still known to be the active one, without building it (for
        callers on an event loop); None after `invalidate()` until `active()` has checked again."""
        return None if self._stale else self._active

    def active(self) -> AreaIndex | None:
        """The index of the active generation (built on first use); None while no boundaries are loaded."""
        if self._active is None or self._stale:
            self.refresh()
        return self._active

    def invalidate(self, active_id: int | None = None) -> None:
        """Boundaries changed somewhere (an activation, a draft redrawn, perhaps in another process): forget the
        cached indexes of other generations. When `active_id` (the generation active now, as the caller just read
        it) is the one whose index is held, that index stays current (a draft was edited); otherwise the active
        generation is checked again before the next answer. The active index is kept for reuse while its
        generation stays the active one (the areas of a published generation are not edited)."""
        with self._state:
            self._epoch += 1
            active = self._active
            self._cache.clear()
            if active is not None and active.generation_id is not None:
                self._cache[active.generation_id] = active
            if active is None or active_id != active.generation_id:
                self._stale = True

    def refresh(self) -> AreaIndex | None:
        """Rebuild the active index and swap it in; call after an activation. Readers never wait for the build."""
        from gridmap.errors import DatabaseNotReady

        with self._lock:
            epoch = self._epoch
            try:
                with self.sessionmaker() as session:
                    gen = active_generation(session)
                    with self._state:
                        index = self._cache.get(gen.id)
                    if index is None:
                        index = self._load(session, gen)
            except DatabaseNotReady:
                return None
            with self._state:
                self._active = index  # one reference swap: requests in flight keep the index they hold
                if epoch == self._epoch:  # no change was heard while it was read: it is the active one
                    self._stale = False
                self._remember(index)
            return index

    def for_generation(self, generation_id: int) -> AreaIndex:
        active = self._active
        if active is not None and active.generation_id == generation_id and not self._stale:
            return active
        with self._lock:
            with self._state:
                index = self._cache.get(generation_id)
                if index is not None:
                    self._cache.move_to_end(generation_id)
                    return index
            with self.sessionmaker() as session:
                index = self._load(session, get_generation(session, generation_id))
            with self._state:
                self._remember(index)
            return index

    def _load(self, session: Session, gen: Generation) -> AreaIndex:
        if self.shared and gen.status != "draft":
            return shared_index(session, gen.id, cache_dir=self.cache_dir)
        return load_index(session, gen.id)

    def forget(self, generation_id: int) -> None:
        """Drop a cached index, e.g. a draft's after it was redrawn."""
        with self._state:
            self._cache.pop(generation_id, None)

    def for_date(self, session: Session, day: dt.date) -> AreaIndex:
        return self.for_generation(generation_on(session, day).id)

    def _remember(self, index: AreaIndex) -> None:
        assert index.generation_id is not None  # the registry builds indexes of stored generations only
        self._cache[index.generation_id] = index
        self._cache.move_to_end(index.generation_id)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
