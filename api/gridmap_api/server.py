"""Starting the server: `serve()` runs uvicorn on the app; `gridmap serve` calls it (the library itself never
imports the web stack, and the command line sets no environment for it).

One process serves the app object `create_app(settings)` builds. Several processes (`workers` > 1) share one
database, each following the others' changes (gridmap.runtime): uvicorn starts each worker from an import string,
so each builds its own app with the factory `gridmap_api.main:create_app`, which reads its `Settings` from the
environment; the settings given here that differ from that environment are handed to the workers there."""

from __future__ import annotations

import json
import os

from gridmap_api.settings import Settings

# A worker importing the stack or building a large lookup index on a busy machine may not answer the supervisor's
# health check within uvicorn's 5 s and would be killed and restarted over and over: it gets two minutes.
WORKER_HEALTHCHECK_S = 120
FACTORY = "gridmap_api.main:create_app"


def _environment(settings: Settings) -> dict[str, str]:
    """The `GRIDMAP_*` variables that give a worker's `Settings()` the values set on `settings`."""
    prefix = str(Settings.model_config.get("env_prefix", ""))
    out = {}
    for name, value in settings.model_dump(include=settings.model_fields_set).items():
        out[f"{prefix}{name}".upper()] = value if isinstance(value, str) else json.dumps(value)
    return out


def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    workers: int = 1,
    settings: Settings | None = None,
    access_log: bool = False,
) -> None:
    """Serve the API and the map on `host`:`port` with `workers` processes until interrupted."""
    import uvicorn

    if workers < 1:
        raise ValueError(f"workers: {workers} is not a number of processes (1 or more)")
    settings = settings or Settings()
    if workers == 1:
        from gridmap_api.main import create_app

        uvicorn.run(create_app(settings), host=host, port=port, log_level="info", access_log=access_log)
        return
    os.environ.update(_environment(settings))  # for the workers uvicorn spawns, which read their own settings
    uvicorn.run(
        FACTORY,
        factory=True,
        host=host,
        port=port,
        log_level="info",
        access_log=access_log,
        workers=workers,
        timeout_worker_healthcheck=WORKER_HEALTHCHECK_S,
    )
