"""Request dependencies: a database session per request, the lookup index, the settings."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool
from sqlalchemy.orm import Session

from api.settings import Settings
from gridmap.errors import DatabaseNotReady
from gridmap.generations import IndexRegistry
from gridmap.lookup import AreaIndex


def get_session(request: Request) -> Iterator[Session]:
    """A session whose transaction commits when the route returns and rolls back on an error."""
    with request.app.state.sessionmaker() as session, session.begin():
        yield session


async def get_index(request: Request) -> AreaIndex:
    """The in-memory lookup index of the active generation, built at start-up.

    The cheap dependencies are `async` so that they run on the event loop: every sync dependency costs a hop to
    the thread pool, which dominated the latency of a locate request."""
    index = request.app.state.registry.current
    if index is None:
        index = await run_in_threadpool(request.app.state.reload_index)
    if index is None:
        raise DatabaseNotReady("no boundaries loaded: run `gridmap demo` or import a generation first",
                               zh="尚未导入边界：请先运行 `gridmap demo` 或导入一版边界。")
    return index


async def get_registry(request: Request) -> IndexRegistry:
    return request.app.state.registry


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


SessionDep = Annotated[Session, Depends(get_session)]
IndexDep = Annotated[AreaIndex, Depends(get_index)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
RegistryDep = Annotated[IndexRegistry, Depends(get_registry)]
