"""The ASGI application: `create_app(settings)` wires storage, the lookup index, routes, pages and static files."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from contextlib import asynccontextmanager
from urllib.parse import parse_qs

import anyio
import sqlalchemy.exc
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.middleware.gzip import GZipMiddleware
from starlette.responses import Response
from starlette.routing import NoMatchFound

from gridmap.cases import measures as measures_of_cases
from gridmap.cases.workflow import sweep_overdue
from gridmap.geo.index import AreaIndex
from gridmap.locating.locate import PEOPLE_TTL_S, warm_people
from gridmap.runtime import TOPICS as RUNTIME_TOPICS
from gridmap.runtime import Runtime
from gridmap.store import engine as storage
from gridmap_api import errors
from gridmap_api.limits import BodyLimit
from gridmap_api.routes import (
    admin,
    areas,
    attachments,
    auth,
    boundary_import,
    cases,
    catalogue,
    dispatch,
    docs,
    exchange,
    generations,
    imports,
    locate,
    mapdata,
    measures,
    notifications,
    open311,
    pages,
    partition,
    plan,
    plan_view,
    publish,
    rankings,
)
from gridmap_api.routes import tiles as tile_routes
from gridmap_api.security import SecurityHeaders
from gridmap_api.settings import Settings
from gridmap_web import STATIC_DIR, STATIC_PREFIX, asset_version

log = logging.getLogger("gridmap.api")
SWEEP_CHUNK = 1_000  # overdue cases escalated per transaction
# gzip's level for every answer of 2 KiB or more (Starlette's default is 9). On the province demo a z13 case tile of
# 1.9 MB took 399 ms at level 9 and 54 ms at 5, for 674 against 680 KiB; a month's case points as JSON (2.7 MB)
# 227 against 57 ms, for 563 against 591 KiB; Leaflet's script 10 against 4 ms, 41 against 42 KiB.
GZIP_LEVEL = 5


async def _sweep_overdue(app: FastAPI, interval_s: float) -> None:
    """Escalate overdue cases at start-up and then every `interval_s` seconds. Each case is escalated exactly once
    however often this runs (and across restarts): the database's conditional update decides. Then keep the
    districts' hours to close of the past months that are not kept (`measures.keep_close_hours`: a month just
    ended, or one whose closures changed), giving way to the answers in progress; usually one small query."""
    from starlette.concurrency import run_in_threadpool

    def sweep() -> None:  # transactions per chunk: no sweep holds row locks for minutes after a large import
        sweep_overdue(app.state.sessionmaker, chunk=SWEEP_CHUNK)
        measures_of_cases.keep_close_hours(app.state.sessionmaker, pause=app.state.runtime.giving_way())

    while True:
        try:
            await run_in_threadpool(sweep)
        except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.ProgrammingError):
            pass  # no schema yet, or the database is busy: the next sweep catches up
        except Exception:  # noqa: BLE001 - a failed sweep must not end the sweeping
            log.exception("overdue sweep failed; retrying in %s s", interval_s)
        app.state.sweep_rounds += 1  # (rounds ended, each done or failed: a test waits for the first)
        await asyncio.sleep(interval_s)


def _warm(
    app: FastAPI, index: AreaIndex | None, *, fresh: bool = True, stopping: threading.Event | None = None
) -> None:
    """What a locate answers from in memory: branch and staff of every grid (nothing to do without a schema), then
    the index's search structures. Not `fresh` (the start-up's, in the background): branch and staff that a locate
    arriving meanwhile loaded are kept, not read again, and the work gives way to the answers this process is
    working on (`Runtime.giving_way`), so that a starting server's first map screens do not share the cores with
    it. The people first: their load (~1.5 s on the province) pauses every PEOPLE_SLICE rows, the index's search
    tree (~0.5 s) only before and after it, and a first screen comes most likely in the first seconds. Last, at a
    start, one district's 12-month series (`measures.warm_series`, ~0.25 s): the overview's chart on a district
    dispatcher's first screen then finds its statements compiled and two connections warm (with the pool's
    last-used-first order, `storage.make_engine`); it waits for a quiet moment, and is left out when the server
    stops first (`stopping`)."""
    pause = None if fresh else app.state.runtime.giving_way()
    with (
        contextlib.suppress(sqlalchemy.exc.OperationalError, sqlalchemy.exc.ProgrammingError),
        app.state.sessionmaker() as session,
    ):
        warm_people(session, max_age_s=None if fresh else PEOPLE_TTL_S, pause=pause)
    if index is not None:
        index.warm(pause)
    if not fresh:  # not in the midst of a screen's requests: it reads for ~0.25 s on every core
        stopping = stopping or threading.Event()
        app.state.runtime.giving_way(WARM_SERIES_WAIT_S, WARM_SERIES_WAIT_S, WARM_SERIES_QUIET_S)(stopping.is_set)
        if not stopping.is_set():
            with contextlib.suppress(sqlalchemy.exc.OperationalError, sqlalchemy.exc.ProgrammingError):
                measures_of_cases.warm_series(app.state.sessionmaker)


# the start-up's series waits for this long without an answer, at most WARM_SERIES_WAIT_S (then runs anyway)
WARM_SERIES_QUIET_S = 2.0
WARM_SERIES_WAIT_S = 30.0


WARM_STOP_S = 5.0  # how long a server stopping waits for its start-up's warm-up still running


PUBLISH_INTERVAL_S = 60.0


async def _publish_due(app: FastAPI, interval_s: float = PUBLISH_INTERVAL_S, *, first_wait: bool = False) -> None:
    """Boundaries approved for a day take effect at 00:00 China time: at start-up and then every `interval_s`
    seconds, activate what is due (one worker of several does it: the database's conditional update decides; an
    approval survives a restart, it is stored), and swap in the index when the active generation changed, here or
    in another worker."""
    from starlette.concurrency import run_in_threadpool

    from gridmap.planning import publish as publishing

    def run() -> bool:
        with storage.session_scope(app.state.sessionmaker) as session:
            done = publishing.activate_due(session)
        with app.state.sessionmaker() as session:
            active = publishing.active_id(session)
        current = app.state.registry.current
        return bool(done) or (active is not None and (current is None or current.generation_id != active))

    if first_wait:
        await asyncio.sleep(interval_s)
    while True:
        try:
            if await run_in_threadpool(run):
                await run_in_threadpool(app.state.reload_index)
        except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.ProgrammingError):
            pass  # no schema yet, or the database is busy: the next round catches up
        except Exception:  # noqa: BLE001 - a failed round must not end the schedule
            log.exception("scheduled publishing failed; retrying in %s s", interval_s)
        if interval_s <= 0:
            return  # one round (start-up)
        await asyncio.sleep(interval_s)


CASE_MONTHS_INTERVAL_S = 3600.0
CASE_MONTHS_AHEAD = 12


async def _case_months(app: FastAPI, interval_s: float = CASE_MONTHS_INTERVAL_S) -> None:
    """PostgreSQL: the case table's month partitions up to CASE_MONTHS_AHEAD months ahead, at start-up and then
    every `interval_s` seconds (nothing to do, a few catalogue reads, unless a month is missing; gives up after 2 s
    waiting for the table's lock and tries again next round). A no-op on SQLite."""
    import datetime as dt

    from starlette.concurrency import run_in_threadpool

    from gridmap.store import partitions as case_partitions

    def run() -> int:
        now = dt.datetime.now(dt.UTC)
        with storage.session_scope(app.state.sessionmaker) as session:  # the months ahead, and any month whose
            # cases were written before it had a partition (they wait in the DEFAULT partition, unpruned)
            return case_partitions.ensure_months(
                session, now, now + dt.timedelta(days=31 * CASE_MONTHS_AHEAD), lock_timeout_s=2.0
            ) + case_partitions.adopt_default(session)

    while True:
        try:
            await run_in_threadpool(run)
        except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.ProgrammingError, sqlalchemy.exc.IntegrityError):
            pass  # no schema yet, the table busy, or another worker made the month meanwhile: next round
        except Exception:  # noqa: BLE001 - a failed round must not end the schedule
            log.exception("case partitions: round failed; retrying in %s s", interval_s)
        await asyncio.sleep(interval_s)


class VersionedStatic(StaticFiles):
    """The static files, with how long a browser may keep them: a year (`immutable`) when asked for at their
    version (`?v=`, as the pages name them: `gridmap_web.asset_url`), else only while it checks each use with the
    server (`no-cache`: a 304 by ETag when unchanged). Without a `Cache-Control` a browser keeps a file for a share
    of its age by its own rule, and after an upgrade could run an old script beside a new one."""

    async def get_response(self, path: str, scope) -> Response:
        response = await super().get_response(path, scope)
        if response.status_code in (200, 304):
            asked = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("v", [None])[0]
            current = asset_version(STATIC_PREFIX + path)
            response.headers["Cache-Control"] = (
                "public, max-age=31536000, immutable" if asked is not None and asked == current else "no-cache"
            )
        return response


def _routes_made(app: FastAPI) -> None:
    """Make every route's parameters and answers now, at the start, not on a worker's first request. FastAPI
    (0.16x) makes an included router's routes — a model field and a pydantic adapter for each parameter and answer
    of its ~70 routes — the first time a request is matched against them, on the event loop: 130-215 ms of each
    worker's first request (a `GET /api/v1/categories` of 13-20 ms otherwise), the requests arriving meanwhile
    waiting too. Asking for the path of a name no route has walks them all."""
    with contextlib.suppress(NoMatchFound):
        app.url_path_for("gridmap: every route made")


class RuntimeSync:
    """Before every request, the process catches up with changes other processes made (`gridmap.runtime`): an
    activation, a revoked key, an edited calendar reach this worker before it answers; and the runtime knows the
    request is being answered until its response is sent (a background build gives way meanwhile). A pure ASGI
    middleware (microseconds when nothing changed)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        runtime = getattr(scope["app"].state, "runtime", None) if scope["type"] == "http" else None
        if runtime is None:
            await self.app(scope, receive, send)
            return
        runtime.answer_begun()
        try:
            try:
                if not runtime.settled():  # the cheap probe on the loop; catching up (pool, builds) in a thread
                    await anyio.to_thread.run_sync(runtime.sync)
            except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.ProgrammingError):
                log.warning("could not read the runtime versions; retrying on the next request", exc_info=True)
                runtime.invalidate(*RUNTIME_TOPICS)  # unsure what changed: read everything again
            await self.app(scope, receive, send)
        finally:
            runtime.answer_ended()


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; the engine and the index are made when it starts, not at import."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        engine = storage.make_engine(settings.database_url)
        app.state.sessionmaker = storage.make_sessionmaker(engine)
        app.state.db_key = str(engine.url)
        # every cache of database data in one object with one invalidation rule (see gridmap.runtime); the
        # attributes below are the names routes have used
        runtime = app.state.runtime = Runtime(
            app.state.sessionmaker, db_key=app.state.db_key, shared_index=settings.shared_index
        )
        app.state.registry = runtime.registry
        app.state.area_shapes = runtime.shapes  # outlines per generation, level and zoom, for the map
        app.state.principals = runtime.principals  # who a token or key stands for
        app.state.calendar = runtime.calendar
        app.state.calendar_changed = lambda: runtime.invalidate("calendar")  # an admin edited it (this process)
        # no schema yet (an operational or programming error): the first request reads them
        with contextlib.suppress(sqlalchemy.exc.OperationalError, sqlalchemy.exc.ProgrammingError):
            runtime.start()  # the versions are read before anything is cached; on PostGIS the listener starts
        index = app.state.reload_index(warm=False)
        # what a locate answers from in memory — the branch and staff of every grid, the index's search tree —
        # made in the background: on a province they take seconds (~1.5 s and ~0.4 s in a quiet worker), and
        # a worker answers meanwhile (a locate arriving then makes what it needs or waits for the people's load),
        # the warm-up pausing while it does
        # (a daemon thread of its own: a server stopped meanwhile waits WARM_STOP_S for it at most, not its end)
        stopping = threading.Event()
        warming = threading.Thread(
            target=_warm,
            args=(app, index),
            kwargs={"fresh": False, "stopping": stopping},
            name="gridmap-warm-up",
            daemon=True,
        )
        warming.start()
        app.state.calendar()  # loaded once before the first request
        _routes_made(app)
        app.state.sweep_rounds = 0
        sweeper = asyncio.create_task(_sweep_overdue(app, settings.escalation_interval_s))
        await _publish_due(app, 0)  # what became due while the app was down takes effect before it serves
        publisher = asyncio.create_task(_publish_due(app, PUBLISH_INTERVAL_S, first_wait=True))
        months = asyncio.create_task(_case_months(app))
        yield
        sweeper.cancel()
        publisher.cancel()
        months.cancel()
        stopping.set()
        await asyncio.to_thread(warming.join, WARM_STOP_S)  # not cancellable; rarely still running
        runtime.stop()
        engine.dispose()

    app = FastAPI(
        title="gridmap",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,  # see routes.docs
        description="Grid governance GIS: grids, party branches, staff and cases (网格化管理).",
    )
    app.state.settings = settings

    def reload_index(warm: bool = True) -> AreaIndex | None:
        """(Re)build the lookup index of the active generation and swap it in; None while no boundaries are loaded.
        Requests in flight keep the index they started with. `warm`: also make what a first locate would otherwise
        make while requests queue behind it, and load the branch and staff of every grid (the start-up does both
        in the background instead)."""
        try:
            index = app.state.registry.refresh()
            if index is not None and warm:
                _warm(app, index)
            return index
        except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.ProgrammingError):
            return None

    app.state.reload_index = reload_index
    errors.register(app)
    for module in (
        auth,
        admin,
        areas,
        mapdata,
        locate,
        boundary_import,
        publish,
        plan,
        plan_view,
        partition,
        generations,
        exchange,
        dispatch,
        notifications,
        attachments,
        cases,
        catalogue,
        imports,
        measures,
        rankings,
        open311,
        pages,
        docs,
    ):
        app.include_router(module.router)
    app.include_router(exchange.ogc_router)  # OGC API – Features at /ogc
    app.include_router(tile_routes.router)  # vector tiles and TileJSON (issue 15 §5)
    app.mount("/static", VersionedStatic(directory=STATIC_DIR), name="static")
    app.add_middleware(RuntimeSync)  # innermost: after the body limit and headers, right before the route
    app.add_middleware(BodyLimit, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(GZipMiddleware, minimum_size=2048, compresslevel=GZIP_LEVEL)
    app.add_middleware(SecurityHeaders)
    return app
