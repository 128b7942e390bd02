"""Request dependencies: a database session per request (committed before the answer), the lookup index, the
settings."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from gridmap.boundaries.generations import IndexRegistry
from gridmap.errors import DatabaseNotReady
from gridmap.geo.index import AreaIndex
from gridmap_api.settings import Settings

AFTER_COMMIT = "gridmap.after_commit"


def get_session(request: Request) -> Iterator[Session]:
    """The request's session, in one transaction: committed when the route function returns and before the
    response is sent (`SessionDep` is function-scoped, so an acknowledged write is durable), rolled back when it
    raises. Work that must follow the commit (a cache to drop, an index to rebuild) is registered with
    `after_commit`; it too runs before the response is sent. This is how every write route commits: no route calls
    `session.commit()` itself (tests/unit/test_layering.py)."""
    with request.app.state.sessionmaker() as session:
        with session.begin():
            yield session
        for then in session.info.pop(AFTER_COMMIT, []):
            then()


def after_commit(session: Session, then: Callable[[], object]) -> None:
    """Run `then()` once the request's transaction has committed (before the response is sent)."""
    session.info.setdefault(AFTER_COMMIT, []).append(then)


def commit_now(session: Session) -> None:
    """Commit the request's transaction before the route returns, and run its `after_commit` work: only for an
    answer that reports what the commit caused (the lookup index rebuilt from boundaries just activated)."""
    session.commit()
    for then in session.info.pop(AFTER_COMMIT, []):
        then()


async def get_index(request: Request) -> AreaIndex:
    """The in-memory lookup index of the active generation, built at start-up.

    The cheap dependencies are `async` so that they run on the event loop: every sync dependency costs a hop to
    the thread pool, which dominated the latency of a locate request."""
    index = request.app.state.registry.current
    if index is None:
        index = await run_in_threadpool(request.app.state.reload_index)
    if index is None:
        raise DatabaseNotReady(
            "no boundaries loaded: run `gridmap demo` or import a generation first",
            zh="尚未导入边界：请先运行 `gridmap demo` 或导入一版边界。",
        )
    return index


async def get_registry(request: Request) -> IndexRegistry:
    return request.app.state.registry


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


# function-scoped: the transaction ends when the route function returns, before the response is sent (FastAPI's
# default for a dependency with yield, "request", would commit after the client has its answer)
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
IndexDep = Annotated[AreaIndex, Depends(get_index)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
RegistryDep = Annotated[IndexRegistry, Depends(get_registry)]
