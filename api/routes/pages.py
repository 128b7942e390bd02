"""HTML pages: the map, built by `web`."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from api.deps import SettingsDep
from web.pages import MapConfig, render_overview

router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
def overview(settings: SettingsDep, lang: Literal["zh", "en"] | None = None) -> HTMLResponse:
    """The overview map of the loaded district(s)."""
    config = MapConfig(language=lang or settings.language, tile_url=settings.tile_url,
                       tile_attribution=settings.tile_attribution, tile_crs=settings.tile_crs)
    return HTMLResponse(render_overview(config))
