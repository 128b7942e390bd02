"""The runtime never makes the event loop wait (found in review of issue 15 §4), on both databases.

- `Runtime.settled()` is the only part of catching up that runs on the loop: a probe on a private connection,
  True while nothing moved, False as soon as another connection committed a change; the rest (`sync()`: reading
  the versions through the pool, dropping caches) runs in a worker thread (`gridmap_api.main.RuntimeSync`).
- `IndexRegistry.invalidate()` (called by `sync()` before a request is answered) does not wait for an index build
  in progress, and a build begun before an invalidation does not mark its index as current.
"""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa

from gridmap.runtime import Runtime
from gridmap.store import engine as storage
from gridmap.store.tables import Area

DEADLOCK_S = 30  # only a deadlock waits this long; the test passes at the first moment the event is seen


def test_settled_is_true_until_another_connection_commits_a_change(fresh_db_url):
    engine = storage.make_engine(fresh_db_url)
    writer = storage.make_engine(fresh_db_url)
    runtime = Runtime(storage.make_sessionmaker(engine))
    try:
        assert runtime.settled() is False  # nothing read yet: sync() must run first
        runtime.sync()
        assert runtime.settled() is True and runtime.settled() is True
        with storage.session_scope(storage.make_sessionmaker(writer)) as session:
            area = session.scalars(sa.select(Area).where(Area.is_leaf).limit(1)).first()
            area.households = (area.households or 0) + 1
        assert runtime.settled() is False
        assert runtime.sync() == frozenset({"boundaries"})
        assert runtime.settled() is True
        runtime.invalidate("calendar")  # this process dropped a cache itself: the versions are read again
        assert runtime.settled() is False
        runtime.sync()
        assert runtime.settled() is True
    finally:
        runtime.stop()
        engine.dispose()
        writer.dispose()


def test_invalidate_does_not_wait_for_a_build_and_a_stale_build_stays_stale(fresh_db_url, monkeypatch):
    engine = storage.make_engine(fresh_db_url)
    runtime = Runtime(storage.make_sessionmaker(engine), shared_index=False)
    registry = runtime.registry
    building, release = threading.Event(), threading.Event()
    real_load = registry._load

    def slow_load(session, gen):
        building.set()
        assert release.wait(DEADLOCK_S)
        return real_load(session, gen)

    monkeypatch.setattr(registry, "_load", slow_load)
    built: list[object] = []
    builder = threading.Thread(target=lambda: built.append(registry.active()))
    try:
        builder.start()
        assert building.wait(DEADLOCK_S)
        invalidated = threading.Event()
        threading.Thread(target=lambda: (registry.invalidate(None), invalidated.set())).start()
        # the build is still held up: the invalidation must have finished without waiting for it
        assert invalidated.wait(DEADLOCK_S)
        assert not release.is_set()
        release.set()
        builder.join(DEADLOCK_S)
        assert built and built[0] is not None
        # the build began before the invalidation: its index is kept but not trusted as the active one
        assert registry.current is None
        monkeypatch.setattr(registry, "_load", real_load)
        again = registry.active()  # checked again: the same generation, from the cache
        assert again is built[0] and registry.current is again
    finally:
        release.set()
        runtime.stop()
        engine.dispose()


@pytest.mark.parametrize("db_url", ["postgis"], indirect=True)  # SpatiaLite's probe is a connection to the file
def test_the_private_connections_take_the_urls_options(fresh_db_url):
    """A PostGIS URL with connection options (a read-only server's `options=-c%20default_transaction_read_only%3Don`)
    reaches the probe and the listener as the engine reads it: rendered again as text, the space went as `+` and
    PostgreSQL refused the connection, so every request of such a server tried (and failed) to connect on the loop."""
    url = fresh_db_url + ("&" if "?" in fresh_db_url else "?") + "options=-c%20default_transaction_read_only%3Don"
    engine = storage.make_engine(url)
    runtime = Runtime(storage.make_sessionmaker(engine))
    try:
        assert runtime._read_pg() is not None
        assert runtime._pg is not None
        assert runtime._pg.execute("SHOW default_transaction_read_only").fetchone() == ("on",)
        runtime.sync()
        assert runtime.settled() is True
    finally:
        runtime.stop()
        engine.dispose()
