"""Small helpers the test modules share (fixtures are in tests/conftest.py)."""

from __future__ import annotations

from typing import Any


def inside(where: Any, k: int = 5) -> tuple[float, float]:
    """(lon, lat) of a point inside micro-grid `k` (the k-th leaf) of the active boundaries, hence inside its grid,
    community and sub-district too. `where` is an API TestClient (its app's index) or an AreaIndex."""
    app = getattr(where, "app", None)
    index = app.state.registry.active() if app is not None else where
    p = index.leaf_geoms[k].representative_point()
    return p.x, p.y
