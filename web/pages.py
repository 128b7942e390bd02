"""The overview map page, built with folium; data is loaded at run time from the API, never embedded.

Every script and stylesheet is served from /static (no CDN): folium's default CDN assets are replaced by the
vendored Leaflet, and the page's behaviour lives in /static/gridmap.js, which renders all text with textContent.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import folium
from branca.element import CssLink, Element, JavascriptLink, MacroElement
from jinja2 import Template

VENDOR_JS = ["/static/vendor/leaflet/leaflet.js", "/static/vendor/markercluster/leaflet.markercluster.js"]
VENDOR_CSS = ["/static/vendor/leaflet/leaflet.css", "/static/vendor/markercluster/MarkerCluster.css",
              "/static/vendor/markercluster/MarkerCluster.Default.css"]
TITLES = {"zh": "网格化管理 · 总览", "en": "Grid governance · Overview"}


@dataclass(frozen=True)
class MapConfig:
    """What the page needs to know: language and the base map (none by default: the map reads well without)."""

    language: str = "zh"
    tile_url: str | None = None
    tile_attribution: str = ""
    tile_crs: str = "wgs84"
    api_base: str = "/api/v1"


class _App(MacroElement):
    """Starts gridmap.js on the folium map once the page has loaded."""

    _template = Template(
        "{% macro script(this, kwargs) %}"
        "GridmapApp.init({{ this._parent.get_name() }}, {{ this.config | tojson }});"
        "{% endmacro %}"
    )

    def __init__(self, config: MapConfig):
        super().__init__()
        self._name = "GridmapApp"
        self.config = asdict(config)


PANEL = """
<div id="gm-panel" class="gm-panel" aria-live="polite">
  <div class="gm-panel-head"><span id="gm-title" class="gm-title"></span>
    <a id="gm-lang" class="gm-lang" href="#"></a></div>
  <div id="gm-hint" class="gm-hint"></div>
  <div id="gm-detail" class="gm-detail" hidden></div>
</div>
<div id="gm-status" class="gm-status" role="status"></div>
"""


def render_overview(config: MapConfig) -> str:
    """The complete HTML of the overview map."""
    fmap = folium.Map(location=[25.0, 102.75], zoom_start=12, tiles=None, control_scale=True,
                      prefer_canvas=False, zoom_control=True)
    fmap.default_js, fmap.default_css = [], []  # folium's CDN links; ours are added in load order below
    root = fmap.get_root()
    root.header.add_child(Element(f"<title>{TITLES.get(config.language, TITLES['zh'])}</title>"
                                  '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">'), name="title")
    for i, url in enumerate(VENDOR_JS + ["/static/gridmap.js"]):
        root.header.add_child(JavascriptLink(url), name=f"gm_js_{i}")
    for i, url in enumerate(VENDOR_CSS + ["/static/gridmap.css"]):
        root.header.add_child(CssLink(url), name=f"gm_css_{i}")
    if config.tile_url:
        folium.TileLayer(tiles=config.tile_url, attr=config.tile_attribution or " ", name="basemap",
                         overlay=False, control=False).add_to(fmap)
    root.html.add_child(Element(PANEL), name="gm_panel")
    fmap.add_child(_App(config))
    html = root.render()
    return html.replace('<html>', f'<html lang="{"zh-CN" if config.language == "zh" else "en"}">', 1)
