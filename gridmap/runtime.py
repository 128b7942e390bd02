"""The runtime services of a serving process: every cache of data that lives in the database, with one rule for
when it is no longer true, so that several server processes over one database answer alike.

The rule: **a cache holds what was read under the current version of its topic.** Every transaction that writes a
table a cache is made from bumps that topic's version (a row of `runtime_version`) in the same transaction — the
session hooks below do it, whoever writes (a route, the CLI, a test) — and a process that sees a version move
drops what it holds of that topic before it answers its next request:

- on SpatiaLite `Runtime.sync()` is called before every request; it costs one `PRAGMA data_version` on a private
  connection (a counter SQLite moves when any other connection commits) and reads `runtime_version` only when
  that counter moved;
- on PostGIS `sync()` reads the four version rows on a private connection before every request (about 0.1 ms):
  a notification alone was seen to arrive after the next request on a busy machine. The bump also sends
  `NOTIFY gridmap_runtime` (delivered at commit), and a listener thread per process applies the change and builds
  what it needs (the new lookup index) at once, so that requests rarely wait for the build.

Topics and the tables that move them (`TABLE_TOPICS`):
    boundaries  generation, area            the lookup indexes (active, as-of, drafts), the map's outlines
    people      party_org*, staff*          branch and staff of every grid (a locate's answer)
    calendar    calendar_day                the working calendar (deadlines)
    principals  account*, api_key, department, auth_token (revocations, not sign-ins)
                                            who a token or key stands for
Other code can follow a topic with `Runtime.on_change(callback)` (called with the set of topics that moved) or
by keying its own cache with `Runtime.stamp(topic)`. A write the hooks cannot see (raw SQL text) calls
`mark_changed(session, topic)` inside its transaction.

A process also counts the answers it is working on (`answer_begun` / `answer_ended`, around every request): a
background build — the server's warm-up — pauses between its steps while there are any (`giving_way`).

What stays per process by nature: the rate limiter's buckets (each worker counts its own clients; a limit of N per
process is N × workers for the service) and time-bound expiries (a principal is re-read after `PRINCIPAL_TTL_S`
so that a token's expiry takes effect; the branch and staff of a day are re-read after `locate.PEOPLE_TTL_S`,
assignments having validity dates). Static reference data (`divisions`, CRS transformers) is cached for the
process's life: it never changes while it runs.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import event, orm
from sqlalchemy.orm import ORMExecuteState, Session

from gridmap.store.tables import Base

if TYPE_CHECKING:
    import psycopg

    from gridmap.access.policy import Principal
    from gridmap.calendar import WorkCalendar

log = logging.getLogger("gridmap.runtime")

TOPICS = ("boundaries", "people", "calendar", "principals")
TABLE_TOPICS = {
    "generation": "boundaries",
    "area": "boundaries",
    "party_org": "people",
    "party_org_area": "people",
    "staff": "people",
    "staff_area": "people",
    "calendar_day": "calendar",
    "account": "principals",
    "account_area": "principals",
    "api_key": "principals",
    "department": "principals",
    "auth_token": "principals",
}
# a new row of these cannot change a cached answer (nobody has presented the new token or key yet): signing in
# must not empty every process's principal cache
QUIET_INSERTS = frozenset({"auth_token", "api_key", "account"})
CHANNEL = "gridmap_runtime"
PRINCIPAL_TTL_S = 5.0
# a background build waits for the answers in progress at most this long at a step, this long in all, polling so
GIVE_WAY_EACH_S, GIVE_WAY_TOTAL_S, GIVE_WAY_POLL_S = 0.5, 10.0, 0.005
# … and until the process has answered nothing for this long: a browser's requests for one screen come in bursts
# with gaps between them (the page, then its scripts and styles, then the data they ask for), and a build that
# resumed in each gap held the interpreter when the next request came
GIVE_WAY_QUIET_S = 0.5

runtime_version = sa.Table(
    "runtime_version",
    Base.metadata,
    sa.Column("topic", sa.String(32), primary_key=True),
    sa.Column("version", sa.BigInteger(), nullable=False, server_default="0"),
)

_PENDING = "gridmap.runtime.topics"


# ------------------------------------------------------------------------------------------------ the write side


def mark_changed(session: Session, *topics: str) -> None:
    """Record that this transaction changes what caches of `topics` hold; the versions are bumped at commit."""
    unknown = [t for t in topics if t not in TOPICS]
    if unknown:
        raise ValueError(f"unknown runtime topics {unknown}; known: {TOPICS}")
    session.info.setdefault(_PENDING, set()).update(topics)


def _topic_of(table: str, insert: bool) -> str | None:
    if insert and table in QUIET_INSERTS:
        return None
    return TABLE_TOPICS.get(table)


@event.listens_for(Session, "before_flush")
def _note_flush(session: Session, _context: object, _instances: object) -> None:
    topics: set[str | None] = set()
    for obj in session.new:
        topics.add(_topic_of(getattr(type(obj), "__tablename__", ""), True))
    for obj in session.dirty:
        if session.is_modified(obj, include_collections=True):  # an account's areas removed count too
            topics.add(_topic_of(getattr(type(obj), "__tablename__", ""), False))
    for obj in session.deleted:
        topics.add(_topic_of(getattr(type(obj), "__tablename__", ""), False))
    topics.discard(None)
    if topics:
        session.info.setdefault(_PENDING, set()).update(topics)


@event.listens_for(Session, "do_orm_execute")
def _note_statement(state: ORMExecuteState) -> None:
    if not (state.is_insert or state.is_update or state.is_delete):
        return
    table = getattr(state.statement, "table", None)
    topic = _topic_of(getattr(table, "name", ""), state.is_insert)
    if topic is not None:
        state.session.info.setdefault(_PENDING, set()).add(topic)


_HAS_TABLE: set[str] = set()


def _has_table(session: Session) -> bool:
    """Whether the schema has `runtime_version` (it does from migration 0008; remembered once seen)."""
    bind = session.get_bind()
    key = str(bind.engine.url)  # an Engine's engine is itself
    if key in _HAS_TABLE:
        return True
    if sa.inspect(session.connection()).has_table("runtime_version"):
        _HAS_TABLE.add(key)
        return True
    return False


@event.listens_for(Session, "before_commit")
def _bump(session: Session) -> None:
    if session.info.get(_PENDING) is None and not session.new and not session.dirty and not session.deleted:
        return
    session.flush()  # what is still pending may change a topic too
    topics = sorted(session.info.pop(_PENDING, ()) or ())
    if not topics or not _has_table(session):
        return
    session.execute(
        runtime_version.update()
        .where(runtime_version.c.topic.in_(topics))
        .values(version=runtime_version.c.version + 1)
    )
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            sa.text("SELECT pg_notify(:channel, :topics)"), {"channel": CHANNEL, "topics": ",".join(topics)}
        )


@event.listens_for(Session, "after_rollback")
def _forget(session: Session) -> None:
    session.info.pop(_PENDING, None)


def read_versions(session_or_connection: Session | sa.Connection) -> dict[str, int]:
    """The topics' versions as the database has them now ({} before migration 0008)."""
    try:
        rows = session_or_connection.execute(sa.select(runtime_version.c.topic, runtime_version.c.version)).all()
    except (sa.exc.OperationalError, sa.exc.ProgrammingError):
        return {}
    return {topic: int(version) for topic, version in rows}


# ------------------------------------------------------------------------------------------------- the caches


class PrincipalCache:
    """Principals by (kind, token digest), each for `ttl_s` seconds at most (a token's expiry takes effect) and
    until the `principals` topic moves (a revocation takes effect before the next request)."""

    def __init__(self, ttl_s: float = PRINCIPAL_TTL_S, size: int = 10_000):
        self.ttl_s, self.size = ttl_s, size
        self._items: dict[tuple[str, str], tuple[float, Principal | None]] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str]) -> tuple[bool, Principal | None]:
        item = self._items.get(key)
        if item is None or item[0] < time.monotonic():
            return False, None
        return True, item[1]

    def put(self, key: tuple[str, str], principal: Principal | None) -> None:
        with self._lock:
            if len(self._items) >= self.size:
                self._items.clear()
            self._items[key] = (time.monotonic() + self.ttl_s, principal)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def lock_for(self, key: tuple[str, str]) -> asyncio.Lock:
        """One lock per key being looked up (dropped with the cache when it is cleared for size)."""
        with self._lock:
            if len(self._locks) >= self.size:
                self._locks.clear()
            return self._locks.setdefault(key, asyncio.Lock())


class Runtime:
    """The caches of one process over one database and the versions they were read under (see the module
    docstring). `sync()` before answering; `start()` once serving (the PostGIS listener), `stop()` at the end."""

    def __init__(
        self, sessionmaker: orm.sessionmaker[Session], *, db_key: str | None = None, shared_index: bool = True
    ):
        from gridmap.boundaries.generations import IndexRegistry
        from gridmap.views.mapdata import ShapeCache

        self.sessionmaker = sessionmaker
        engine = sessionmaker.kw["bind"]
        self.engine = engine
        self.db_key = db_key or str(engine.url)
        self.dialect = engine.dialect.name
        # the lookup index of a published generation: built once per machine, memory-mapped by every worker
        self.registry = IndexRegistry(
            sessionmaker, shared=shared_index and ":memory:" not in self.db_key and self.db_key != "sqlite://"
        )
        self.shapes = ShapeCache()  # outlines per generation, level and zoom, for the map
        self.principals = PrincipalCache()
        self._calendar: WorkCalendar | None = None
        self._calendar_lock = threading.Lock()
        self._calendar_epoch = 0  # moved by every invalidation: a read begun before it is not kept
        self._versions: dict[str, int] | None = None
        self._callbacks: list[Callable[[frozenset[str]], None]] = []
        self._lock = threading.Lock()
        self._heard, self._applied = 1, 0  # re-reads asked for (`invalidate`) / the count last applied
        self._stop = threading.Event()
        self._listener: threading.Thread | None = None
        self._pg: psycopg.Connection[Any] | None = None  # PostGIS: the private connection versions are read on
        self.listening = threading.Event()
        self._probe: Any = None  # SpatiaLite: a pysqlite3 connection (no types) for PRAGMA data_version
        self._probe_lock = threading.Lock()
        self._data_version: int | None = None
        self._answering = 0  # answers this process is working on (`answer_begun` / `answer_ended`)
        self._answered_at = -math.inf  # when the last of them ended (time.monotonic())
        self._answering_lock = threading.Lock()  # its own: `_lock` is held while a change is applied (reads)
        if self.dialect == "sqlite":
            from gridmap.store.engine import sqlite_path

            path = sqlite_path(str(engine.url))
            if path and path != ":memory:":
                # the same SQLite library as the engine's (gridmap.store.engine): two copies of SQLite in one process
                # release each other's POSIX locks on the file ("disk I/O error"). Never writes; autocommit, so
                # that it holds no read transaction between two probes.
                from pysqlite3 import dbapi2

                self._probe = dbapi2.connect(path, check_same_thread=False, isolation_level=None)

    # -- answers in progress: background builds give way to them ---------------------------------------------

    def answer_begun(self) -> None:
        """An answer of this process began (called by whatever serves: the ASGI app, around every request, on its
        event loop: this never waits for anything else)."""
        with self._answering_lock:
            self._answering += 1

    def answer_ended(self) -> None:
        with self._answering_lock:
            self._answering -= 1
            self._answered_at = time.monotonic()

    def answering(self) -> int:
        """How many answers this process is working on now."""
        return self._answering

    def giving_way(
        self, each_s: float | None = None, total_s: float | None = None, quiet_s: float | None = None
    ) -> Callable[..., None]:
        """A pause for a background build to call between its steps (a server's warm-up): it waits while this
        process is answering and until it has answered nothing for `quiet_s`, at most `each_s` at a time and
        `total_s` in all (defaults GIVE_WAY_QUIET_S, GIVE_WAY_EACH_S, GIVE_WAY_TOTAL_S), so that the build still
        ends under steady traffic; `pause(wanted)` also ends as soon as `wanted()` is true (someone waits for the
        build). A starting server's first answers then share the cores less with its warm-up: on the province that
        warm-up (the branch and staff of every grid, the lookup index's search structures) took 5-8 s in each
        worker, and a map's first screen on a freshly started server took 1.8-2.7 s beside it (1.2-1.4 s
        without it); with the pause waiting only while a request was in progress, 1.5-2.2 s, and with the quiet
        moment and a lighter warm-up (~2 s) 1.0-1.7 s."""
        each_s = GIVE_WAY_EACH_S if each_s is None else each_s
        left = GIVE_WAY_TOTAL_S if total_s is None else total_s
        quiet_s = GIVE_WAY_QUIET_S if quiet_s is None else quiet_s

        def busy() -> bool:
            return bool(self._answering) or time.monotonic() - self._answered_at < quiet_s

        def pause(wanted: Callable[[], bool] = lambda: False) -> None:
            nonlocal left
            if left <= 0 or not busy() or wanted():
                return
            started = time.monotonic()
            until = started + min(each_s, left)
            while busy() and not wanted() and time.monotonic() < until:
                time.sleep(GIVE_WAY_POLL_S)
            left -= time.monotonic() - started

        return pause

    # -- following changes --------------------------------------------------------------------------------------

    def on_change(self, callback: Callable[[frozenset[str]], None]) -> None:
        """Call `callback(topics)` in this process whenever topics moved (after this runtime dropped its own
        caches of them, before the request that noticed it is answered). Keep it quick: it may run on the
        event loop."""
        self._callbacks.append(callback)

    def stamp(self, topic: str) -> int:
        """The version of `topic` this process's caches reflect (grows with every change; 0 before any)."""
        return (self._versions or {}).get(topic, 0)

    def settled(self) -> bool:
        """Whether nothing moved since the last `sync()`, from the cheap probe alone (safe to call on an event loop:
        one PRAGMA on SpatiaLite, one read of four rows on PostGIS, no pool connection). False means `sync()` has
        work to do — reading the versions through the pool, dropping caches, perhaps waiting for an index build —
        which belongs in a worker thread, not on the loop."""
        if self._heard != self._applied or self._versions is None:
            return False
        if self.dialect == "sqlite":
            with self._probe_lock:
                if self._probe is None:
                    return False
                data_version = self._probe.execute("PRAGMA data_version").fetchone()[0]
            return bool(data_version == self._data_version)
        if self.dialect == "postgresql":
            versions = self._read_pg()
            if versions is None:
                return False
            old = self._versions
            return all(v <= old.get(t, v) for t, v in versions.items()) and set(versions) <= set(old)
        return False

    def sync(self) -> frozenset[str]:
        """Catch up with the database: drop what changed since the last call; the topics that moved. Cheap when
        nothing did: on SpatiaLite one PRAGMA on a private connection, on PostGIS one read of the four version
        rows on a private connection (16 µs and 92 µs measured with a load average of 13 on 2 cores: a
        notification alone was seen to arrive after the next request on a busy machine, so the listener only makes
        the rebuild start early, it is not what the answer relies on)."""
        # What was seen is recorded only after it was applied: a request arriving meanwhile reads the versions
        # too (and waits on the lock in `_apply`) rather than answering from a cache about to be dropped.
        seen = self._heard
        data_version = None
        if self.dialect == "sqlite" and self._probe is not None:
            with self._probe_lock:
                if self._probe is None:
                    return frozenset()
                data_version = self._probe.execute("PRAGMA data_version").fetchone()[0]
            if data_version == self._data_version and seen == self._applied:
                return frozenset()
        versions = self._read_pg() if self.dialect == "postgresql" else None
        if versions is None:
            with self.sessionmaker() as session:
                versions = read_versions(session)
        moved = self._apply(versions)
        self._data_version, self._applied = data_version, seen
        return moved

    def _pg_params(self) -> dict[str, Any]:
        """PostGIS: the engine's own connection parameters for a private psycopg connection, as the dialect reads
        them from the URL (a URL rendered again as text would send `options=-c%20…` as `-c+…`, which PostgreSQL
        refuses: the probe and the listener then failed on every request of a server given such a URL)."""
        _args, params = self.engine.dialect.create_connect_args(self.engine.url)
        params.pop("context", None)  # SQLAlchemy's adapters: not this connection's
        return dict(params)

    def _read_pg(self) -> dict[str, int] | None:
        """PostGIS: the versions from this process's private autocommit connection (opened on first use, reopened
        after a failure); None when it cannot be had (the pool's connections are used instead)."""
        import psycopg

        with self._probe_lock:
            try:
                if self._pg is None or self._pg.closed:
                    self._pg = psycopg.connect(**self._pg_params(), autocommit=True, connect_timeout=10)
                rows = self._pg.execute("SELECT topic, version FROM runtime_version").fetchall()
            except psycopg.Error:
                if self._pg is not None:
                    self._pg.close()
                self._pg = None
                return None
        return {topic: int(version) for topic, version in rows}

    def _apply(self, versions: dict[str, int]) -> frozenset[str]:
        with self._lock:
            old = self._versions
            if old is not None:  # versions only grow: a reading older than one applied meanwhile adds nothing
                versions = {t: max(v, old.get(t, v)) for t, v in versions.items()}
            if old == versions:
                return frozenset()
            self._versions = versions
            if old is None:
                return frozenset()  # the first reading: nothing was cached under older versions
            moved = frozenset(t for t in set(versions) | set(old) if versions.get(t) != old.get(t))
            self._invalidate(moved)
        for callback in self._callbacks:
            try:
                callback(moved)
            except Exception:  # noqa: BLE001 - one follower's failure must not stop the others
                log.exception("runtime change callback failed")
        return moved

    def invalidate(self, *topics: str) -> None:
        """Drop this process's caches of `topics` now (the other processes learn of a change from its version);
        the versions are read again on the next `sync()`."""
        with self._lock:
            self._invalidate(frozenset(topics))
        self._heard += 1

    def _invalidate(self, topics: frozenset[str]) -> None:
        if "boundaries" in topics:  # the active generation's index and outlines stay (its areas are not edited)
            active_id = self._active_id()
            self.registry.invalidate(active_id)
            self.shapes.retain(active_id)
        if "people" in topics or "boundaries" in topics:
            from gridmap.locating.locate import clear_people_cache

            clear_people_cache()
        if "calendar" in topics:
            self._calendar_epoch += 1
            self._calendar = None
        if "principals" in topics:
            self.principals.clear()

    def _active_id(self) -> int | None:
        """The id of the generation active now (None when unknown: the registry then checks again itself)."""
        from gridmap.store.tables import Generation

        try:
            with self.sessionmaker() as session:
                active: int | None = session.scalar(
                    sa.select(sa.func.max(Generation.id)).where(Generation.status == "active")
                )
                return active
        except (sa.exc.OperationalError, sa.exc.ProgrammingError):
            return None

    # -- the working calendar -----------------------------------------------------------------------------------

    def calendar(self) -> WorkCalendar:
        """The working calendar, read once per version of the `calendar` topic."""
        from gridmap.calendar import WorkCalendar

        calendar = self._calendar
        if calendar is not None:
            return calendar
        with self._calendar_lock:
            if self._calendar is not None:
                return self._calendar
            epoch = self._calendar_epoch
            try:
                with self.sessionmaker() as session:
                    read = WorkCalendar.from_session(session)
            except (sa.exc.OperationalError, sa.exc.ProgrammingError):
                return WorkCalendar.seeded()  # no schema yet: not remembered
            if epoch == self._calendar_epoch:  # no change was heard while it was read: keep it
                self._calendar = read
            return read

    # -- the PostGIS listener -----------------------------------------------------------------------------------

    def start(self) -> None:
        """Read the versions (before anything is cached) and, on PostGIS, start listening for changes."""
        self.sync()
        if self.dialect == "postgresql" and self._listener is None:
            self._listener = threading.Thread(target=self._listen, name="gridmap-runtime-listener", daemon=True)
            self._listener.start()

    def stop(self) -> None:
        self._stop.set()
        if self._listener is not None:
            self._listener.join(timeout=3)
        with self._probe_lock:
            for connection in (self._probe, self._pg):
                if connection is not None:
                    connection.close()
            self._probe = self._pg = None

    def _listen(self) -> None:
        """PostGIS: on a notification, apply the change and build what it needs (a new lookup index) at once, in
        this thread, so that requests rarely wait for it; answers do not depend on it (see `sync`)."""
        import psycopg

        params = self._pg_params()
        while not self._stop.is_set():
            try:
                with psycopg.connect(**params, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.listening.set()
                    while not self._stop.is_set():
                        heard = False
                        for _ in conn.notifies(timeout=1.0, stop_after=1):
                            heard = True
                        if heard:
                            self._catch_up()
            except Exception:  # noqa: BLE001 - the database restarting must not end the listening
                self.listening.clear()
                if not self._stop.is_set():
                    log.warning("runtime listener lost its connection; reconnecting", exc_info=True)
                    self._stop.wait(1.0)

    def _catch_up(self) -> None:
        """In the listener thread: apply the change and rebuild the active index before requests need it."""
        try:
            moved = self.sync()
            if "boundaries" in moved:
                index = self.registry.active()
                if index is not None:
                    index.warm()
        except (sa.exc.OperationalError, sa.exc.ProgrammingError):
            log.warning("runtime: catching up failed; the next request tries again", exc_info=True)


def topics_of_tables(tables: Iterable[str]) -> frozenset[str]:
    """The topics writes to `tables` move (for documentation and tests)."""
    return frozenset(t for t in (TABLE_TOPICS.get(name) for name in tables) if t)
