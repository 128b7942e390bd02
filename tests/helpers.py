"""Small helpers the test modules share (fixtures are in tests/conftest.py)."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import sessionmaker


def inside(where: Any, k: int = 5) -> tuple[float, float]:
    """(lon, lat) of a point inside micro-grid `k` (the k-th leaf) of the active boundaries, hence inside its grid,
    community and sub-district too. `where` is an API TestClient (its app's index) or an AreaIndex."""
    app = getattr(where, "app", None)
    index = app.state.registry.active() if app is not None else where
    p = index.leaf_geoms[k].representative_point()
    return p.x, p.y


def swept(engine: sa.Engine) -> None:
    """Every case overdue now escalated, as a started app's own sweep would, and that sweep over: it runs in the
    background and escalated cases (a history entry each) in the middle of a walk by last update when the machine
    was busy (`pytest -n 2`). The sweep's conditional update leaves it nothing to do after this."""
    from gridmap.cases.workflow import overdue_candidates, sweep_overdue

    now = dt.datetime.now(dt.UTC)
    factory = sessionmaker(engine)
    for _ in range(600):
        sweep_overdue(factory, now)
        with factory() as session:
            if not overdue_candidates(session, now, 1):
                return
        time.sleep(0.1)  # (on PostgreSQL the app's sweep holds its lock: it is sweeping)
    raise AssertionError("the overdue cases were not all escalated within a minute")
