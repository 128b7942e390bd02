"""Engines, sessions and migrations for the two supported databases: SpatiaLite (embedded) and PostGIS.

SpatiaLite is loaded into every SQLite connection through `pysqlite3` (the pyenv/stdlib `sqlite3` may be built
without extension loading). The file runs in WAL mode with `synchronous=FULL`, so an acknowledged write survives a
crash or power cut. The schema is created and upgraded by Alembic (`migrate`), never by `create_all`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import pyproj  # noqa: F401 - see below
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from gridmap.store import (
    audit,  # noqa: F401 - installs the audit hooks on every session
    partitions,  # noqa: F401 - installs the case table's writes by month on every session
)

# pyproj's wheel brings its own PROJ library, and SpatiaLite links the system's. When SpatiaLite is loaded first and
# pyproj after it, the process aborts at exit (double free: "corrupted size vs. prev_size", exit status 134 or 139),
# which turned a script's or a command's success into a failure. Importing pyproj here, before any engine can load
# SpatiaLite, fixes the order for everything that opens a database through this module.

DEFAULT_DATABASE_URL = "sqlite:///gridmap.sqlite"
_MIGRATIONS = Path(__file__).with_name("migrations")
SPATIALITE_MODULE = "mod_spatialite"


# SQLite reads the database file through memory mapping, up to this many bytes (its build may cap it lower): pages
# come straight from the operating system's cache, shared by every connection and process, instead of being
# copied by a read() each into each connection's own 2 MB page cache. On the 10 M-case province (a 15 GB file, all
# in the OS cache; load 4-6), a grid's counts over six months took 119-135 s without and 52-55 s with it.
SQLITE_MMAP_BYTES = 1 << 40


def _on_sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.enable_load_extension(True)
    dbapi_conn.load_extension(SPATIALITE_MODULE)
    dbapi_conn.enable_load_extension(False)
    cursor = dbapi_conn.cursor()
    pragmas = ("journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON", "busy_timeout=10000")
    for pragma in (*pragmas, f"mmap_size={SQLITE_MMAP_BYTES}"):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def make_engine(url: str = DEFAULT_DATABASE_URL, **kwargs: Any) -> Engine:
    """Create an engine for a `sqlite:///file` (SpatiaLite) or `postgresql+psycopg://` (PostGIS) URL.

    Examples
    --------
    >>> engine = make_engine("sqlite:///:memory:")
    >>> with engine.connect() as conn:
    ...     conn.execute(sa.text("SELECT spatialite_version()")).scalar() is not None
    True
    """
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        from pysqlite3 import dbapi2

        if parsed.database not in (None, "", ":memory:") and "poolclass" not in kwargs:
            kwargs.setdefault("pool_use_lifo", True)  # a file's pool (QueuePool): see the note at PostgreSQL's
        engine = sa.create_engine(parsed.set(drivername="sqlite+pysqlite"), module=dbapi2, **kwargs)
        sa.event.listen(engine, "connect", _on_sqlite_connect)
        return engine
    if parsed.get_backend_name() == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        kwargs.setdefault("pool_pre_ping", True)
        kwargs["connect_args"] = _connection_options(parsed, kwargs.get("connect_args"))
        # as many connections as the web server's worker threads (40): a request waiting for a connection while
        # the requests holding them wait for a thread to finish would otherwise stall until the pool's timeout
        kwargs.setdefault("pool_size", 10)
        kwargs.setdefault("max_overflow", 30)
        # the connection used last is used next (not the one idle longest): a request then finds the database's
        # caches of the connection warm — the tables and partitions it has planned, PostGIS loaded (~11 ms the
        # first time), its prepared statements — as the start-up's warm-up left them, and connections opened for
        # a burst sit idle. A district's series over HTTP, the first of each worker after the start-up: 307-357 →
        # 226-277 ms on the province, with the warm-up's series (`measures.warm_series`)
        kwargs.setdefault("pool_use_lifo", True)
        return sa.create_engine(parsed, **kwargs)
    raise ValueError(f"database url: {parsed.get_backend_name()!r} is not supported; use sqlite:/// or postgresql://")


# PostgreSQL settings of the app's connections, each unless the URL or the caller names it itself (see
# `_connection_options`)
SESSION_SETTINGS = {
    # JIT compilation: the app's queries are interactive, and PostgreSQL costs a scan of a district's or a
    # province's cases above `jit_above_cost`, then compiles its expressions for seconds: on the 10 M-case province
    # (PostGIS 15, load 4-5), the first page of a district's case list took 4.7-7.3 s with JIT and 2.0-2.6 s
    # without, the overdue cases 8.7-8.8 s against 3.2-3.3 s, a district's list by last update 27 s (8.6 s
    # compiling)
    "jit": "off",
    # a plan for each execution's own values: psycopg prepares a statement run five times on a connection, and
    # PostgreSQL then moves to a generic plan, which names every month partition of the case table and locks all
    # of them and their indexes when it runs (PostgreSQL 15), although the values prune all but one: reading one
    # case by id and report time went from 56 to 626 locks, a step on a case from 93 to 647 (27 months), and the
    # shared lock table is bounded (gridmap.store.partitions)
    "plan_cache_mode": "force_custom_plan",
}


def _connection_options(url: sa.engine.URL, connect_args: dict[str, Any] | None) -> dict[str, Any]:
    """PostgreSQL's connection options with `SESSION_SETTINGS` (`-c name=value`) after any options the URL or the
    caller gives; a setting they name themselves is theirs."""
    args = dict(connect_args or {})
    given = args.get("options", url.query.get("options", ""))
    given = given if isinstance(given, str) else " ".join(given)
    ours = " ".join(f"-c {name}={value}" for name, value in SESSION_SETTINGS.items() if name not in given)
    if ours:
        args["options"] = f"{given} {ours}".strip()
    return args


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """A session factory whose objects stay readable after commit."""
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A transaction: committed when the block ends, rolled back on any exception."""
    with factory() as session, session.begin():
        yield session


def rowcount(result: sa.Result[Any]) -> int:
    """The rows an UPDATE or DELETE matched. `Session.execute` is typed as returning a `Result`, but for a DML
    statement it is a `CursorResult`, which has the count."""
    return cast(sa.CursorResult[Any], result).rowcount


def prepare_database(engine: Engine) -> None:
    """Make the spatial extension ready: SpatiaLite metadata tables, or the PostGIS extension."""
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            if not conn.execute(sa.text("SELECT CheckSpatialMetaData()")).scalar():
                # InitSpatialMetaData(1) inserts spatial_ref_sys in one transaction: 0.1 s instead of ~15 s.
                conn.execute(sa.text("SELECT InitSpatialMetaData(1)"))
        else:
            conn.execute(sa.text("CREATE EXTENSION IF NOT EXISTS postgis"))


def migrate(engine: Engine, revision: str = "head") -> None:
    """Create or upgrade the schema with Alembic."""
    from alembic import command
    from alembic.config import Config

    prepare_database(engine)
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)


def schema_revision(engine: Engine) -> str | None:
    """The Alembic revision the database is at, or None for an empty database."""
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()


def head_revision() -> str:
    """The newest Alembic revision of this code (what `migrate` upgrades to)."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head


def at_head(conn: sa.Connection) -> bool:
    """Whether the database on `conn` is at this code's newest revision (its schema is the one the code writes)."""
    if not sa.inspect(conn).has_table("alembic_version"):
        return False
    return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == head_revision()


def database_url_from(value: str | None) -> str:
    """The database URL to use: the given one, or the embedded default file in the working directory."""
    return value or DEFAULT_DATABASE_URL


def sqlite_path(url: str) -> str | None:
    """The file path of a SQLite URL, or None for other databases."""
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return os.path.abspath(parsed.database)
