"""The map pages, built with folium; their data is loaded at run time from the API, never embedded.

Every script and stylesheet is served from /static (no CDN): folium's default CDN assets are replaced by the
vendored Leaflet and plugins, and the pages' behaviour lives in /static/*.js, which render all text with
`textContent`. Inline scripts carry the response's CSP nonce.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from html import escape
from typing import Any

import folium
from branca.element import CssLink, Element, Figure, JavascriptLink, MacroElement
from jinja2 import Template

from gridmap_web import asset_url

VENDOR_JS = [
    "/static/vendor/leaflet/leaflet.js",
    "/static/vendor/markercluster/leaflet.markercluster.js",
    "/static/vendor/leaflet-heat/leaflet-heat.js",
]
VENDOR_CSS = [
    "/static/vendor/leaflet/leaflet.css",
    "/static/vendor/markercluster/MarkerCluster.css",
    "/static/vendor/markercluster/MarkerCluster.Default.css",
]
PAGES: dict[str, dict[str, Any]] = {
    "overview": {
        "zh": "网格化管理 · 总览",
        "en": "Grid governance · Overview",
        "js": "/static/overview.js",
        "vendor_js": ["/static/vendor/vectorgrid/Leaflet.VectorGrid.bundled.min.js"],  # tiles, when too large
        "css": ["/static/overview.css"],
    },
    "dispatch": {
        "zh": "网格化管理 · 调度台",
        "en": "Grid governance · Dispatch console",
        "js": "/static/dispatch.js",
        "vendor_js": ["/static/vendor/vectorgrid/Leaflet.VectorGrid.bundled.min.js"],  # grids, when too many
        "css": ["/static/dispatch.css"],
    },
    "plan": {
        "zh": "网格化管理 · 规划工作台",
        "en": "Grid governance · Planner's workspace",
        "js": "/static/plan.js",
        "vendor_js": ["/static/vendor/leaflet-geoman/leaflet-geoman.min.js"],
        "css": ["/static/vendor/leaflet-geoman/leaflet-geoman.css", "/static/plan.css"],
    },
    # the grid worker's phone page: a list for one thumb; the map is a small box inside a case or a patrol report
    "m": {
        "zh": "网格化管理 · 网格员",
        "en": "Grid governance · Grid worker",
        "js": "/static/m.js",
        "css": ["/static/m.css"],
    },
}


@dataclass(frozen=True)
class MapConfig:
    """What a page needs to know: language, base map layers (none by default: the map reads well without), who
    is using it (as the gateway said), how often to poll."""

    language: str = "zh"
    basemaps: list = field(default_factory=list)
    tile_crs: str = "wgs84"
    api_base: str = "/api/v1"
    user: str = ""
    role: str = ""
    role_zh: str = ""
    csrf: str = ""  # the session's CSRF token, sent with every write
    areas: list = field(default_factory=list)  # the areas the account acts for (the API enforces them; the page
    everywhere: bool = False  # uses them to not ask for what it may not see)
    measures: bool = False  # whether the account may read measures
    poll_s: float = 5.0
    max_geojson: int = 3000  # a level's view holding more areas is drawn from vector tiles
    bounds: list | None = None  # [minlon, minlat, maxlon, maxlat] of the districts the account sees: the first view


class _App(MacroElement):
    """Starts the page's script on the folium map once the page has loaded."""

    _template = Template(
        "{% macro script(this, kwargs) %}"
        "GridmapPage.init({{ this._parent.get_name() }}, {{ this.config | tojson }});"
        "{% endmacro %}"
    )

    def __init__(self, config: MapConfig):
        super().__init__()
        self._name = "GridmapPage"
        self.config = asdict(config)


SHELL = """
<div id="gm-panel" class="gm-panel gm-panel-{page}" aria-live="polite">
  <div class="gm-panel-head"><h1 id="gm-title" class="gm-title"></h1>
    <nav class="gm-nav"><a id="gm-other-page" href="#"></a> · <a id="gm-lang" class="gm-lang" href="#"></a></nav>
    <button id="gm-panel-toggle" class="gm-panel-toggle" type="button" aria-controls="gm-body"
      aria-expanded="true"></button></div>
  <div class="gm-search"><input id="gm-search" type="search" autocomplete="off">
    <ul id="gm-search-results" class="gm-search-results" hidden></ul></div>
  <div id="gm-body"></div>
</div>
<form id="gm-user" class="gm-user" method="post" action="/logout"><span class="gm-user-name">{who}</span>
  <input type="hidden" name="csrf" value="{csrf}"><button type="submit">{signout}</button></form>
<div id="gm-side" class="gm-side" tabindex="0" hidden></div>
<div id="gm-status" class="gm-status" role="status"></div>
"""


def render_page(page: str, config: MapConfig, nonce: str) -> str:
    """The complete HTML of a map page (`overview` or `dispatch`); inline scripts and styles carry `nonce`."""
    spec = PAGES[page]
    fmap = folium.Map(
        location=[25.0, 102.75],
        zoom_start=12,
        tiles=None,
        control_scale=True,
        prefer_canvas=False,
        zoom_control=True,
        max_zoom=19,
    )
    fmap.default_js, fmap.default_css = [], []  # folium's CDN links; ours are added in load order below
    root = fmap.get_root()
    assert isinstance(root, Figure)  # a map's root is its figure
    title = spec.get(config.language, spec["zh"])
    root.header.add_child(
        Element(
            f'<title>{title}</title><link rel="icon" href="{asset_url("/static/favicon.svg")}" type="image/svg+xml">'
        ),
        name="title",
    )
    for i, url in enumerate(VENDOR_JS + spec.get("vendor_js", []) + ["/static/common.js", spec["js"]]):
        root.header.add_child(JavascriptLink(asset_url(url)), name=f"gm_js_{i}")
    for i, url in enumerate(VENDOR_CSS + ["/static/gridmap.css"] + spec.get("css", [])):
        root.header.add_child(CssLink(asset_url(url)), name=f"gm_css_{i}")
    who = f"{config.user} · {config.role_zh if config.language == 'zh' else config.role}" if config.user else ""
    root.html.add_child(
        Element(
            SHELL.format(
                page=page,
                who=escape(who),
                csrf=escape(config.csrf),
                signout="退出登录" if config.language == "zh" else "Sign out",
            )
        ),
        name="gm_shell",
    )
    fmap.add_child(_App(config))
    html = root.render()
    html = re.sub(r"<(script|style)(?=[\s>])", rf'<\1 nonce="{nonce}"', html)
    lang = "zh-CN" if config.language == "zh" else "en"
    return html.replace("<html>", f'<html lang="{lang}">', 1)
