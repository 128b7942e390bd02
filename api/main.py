"""The ASGI application: `create_app(settings)` wires storage, the lookup index, routes, pages and static files."""

from __future__ import annotations

from contextlib import asynccontextmanager

import sqlalchemy.exc
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from api import errors
from api.routes import areas, cases, generations, locate, pages
from api.settings import Settings
from gridmap import storage
from gridmap.generations import IndexRegistry
from gridmap.locate import warm_people
from gridmap.lookup import AreaIndex
from web import STATIC_DIR


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; the engine and the index are made when it starts, not at import."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        engine = storage.make_engine(settings.database_url)
        app.state.sessionmaker = storage.make_sessionmaker(engine)
        app.state.db_key = str(engine.url)
        app.state.registry = IndexRegistry(app.state.sessionmaker)
        app.state.reload_index()
        yield
        engine.dispose()

    app = FastAPI(title="gridmap", version="0.1.0", lifespan=lifespan,
                  description="Grid governance GIS: grids, party branches, staff and cases (网格化管理).")
    app.state.settings = settings

    def reload_index() -> AreaIndex | None:
        """(Re)build the lookup index of the active generation and swap it in; None while no boundaries are loaded.
        Requests in flight keep the index they started with."""
        try:
            index = app.state.registry.refresh()
            if index is not None:
                with app.state.sessionmaker() as session:
                    warm_people(session)  # branch and staff of every grid, so that locates need no database
            return index
        except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.ProgrammingError):
            return None

    app.state.reload_index = reload_index
    errors.register(app)
    for module in (areas, locate, generations, cases, pages):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
