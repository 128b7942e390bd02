/* gridmap: what both map pages share — texts, safe DOM helpers, API calls, the GCJ-02 shift, the area outlines
 * loaded per box and zoom, labels, base maps and the search box.
 * Rule: text that came from the server (and so possibly from a resident) is only ever set with textContent. */
(function () {
  "use strict";

  var TEXT = {
    zh: {
      overview: "网格化管理 · 总览", dispatch: "网格化管理 · 调度台", m: "网格化管理 · 网格员", other: "English",
      toOverview: "总览", hidePanel: "收起", showPanel: "展开",
      toDispatch: "调度台", search: "搜索网格编码或名称、小区、地址、事件编号", noResults: "无结果",
      levels: { district: "区", subdistrict: "街道", community: "社区", grid: "网格", microgrid: "微网格" },
      loading: "加载中…", loaded: "已加载", failed: "加载失败", zoomIn: "放大后显示",
      states: { reported: "上报", filed: "立案", rejected: "不予受理", voided: "作废", dispatched: "已派遣",
        accepted: "已签收", handled: "已处置", rework: "返工", suspended: "挂账", closed: "已结案", merged: "已合并",
        open: "未办结", overdue: "超期" },
      clocks: { green: "正常", yellow: "临期", red: "超期", none: "未计时" },
      sources: { hotline: "12345热线", miniprogram: "随手拍", patrol: "网格员巡查", referral: "上级转办", api: "系统接口",
        open311: "311开放接口" },
      kinds: { area: "区域", place: "地点", address: "地址", "case": "事件" },
      placeKinds: { compound: "小区", building: "楼栋", service_centre: "党群服务中心", road: "道路" }
    },
    en: {
      overview: "Grid governance · Overview", dispatch: "Grid governance · Dispatch console",
      m: "Grid governance · Grid worker", other: "中文", hidePanel: "Hide", showPanel: "Show",
      toOverview: "Overview", toDispatch: "Dispatch", search: "Search a grid code or name, compound, address, case number",
      noResults: "No results",
      levels: { district: "District", subdistrict: "Sub-district", community: "Community", grid: "Grid", microgrid: "Micro-grid" },
      loading: "Loading…", loaded: "Loaded", failed: "Failed to load", zoomIn: "zoom in to show",
      states: { reported: "Reported", filed: "Filed", rejected: "Rejected", voided: "Voided", dispatched: "Dispatched",
        accepted: "Accepted", handled: "Handled", rework: "Rework", suspended: "Suspended", closed: "Closed",
        merged: "Merged", open: "Open", overdue: "Overdue" },
      clocks: { green: "On time", yellow: "Due soon", red: "Overdue", none: "No clock" },
      sources: { hotline: "12345 hotline", miniprogram: "Snap and report", patrol: "Grid patrol", referral: "Referral",
        api: "API", open311: "Open311" },
      kinds: { area: "Area", place: "Place", address: "Address", "case": "Case" },
      placeKinds: { compound: "Compound", building: "Building", service_centre: "Service centre", road: "Road" }
    }
  };
  var LEVELS = ["district", "subdistrict", "community", "grid", "microgrid"];
  var MIN_ZOOM = { district: 0, subdistrict: 8, community: 10, grid: 11, microgrid: 13 };
  /* vector tiles (/api/v1/tiles, when the page loads Leaflet.VectorGrid and the base map is WGS84: a tile cannot be
   * shifted to GCJ-02): below MIN_ZOOM a level switched on is drawn from tiles from TILE_MIN_ZOOM on (outlines
   * only); at GeoJSON zooms a level whose view holds more than max_geojson areas (the page's setting, MAX_GEOJSON
   * by default) is drawn from tiles at that zoom from then on: the server only counts them (max_features), it does
   * not send them */
  var TILE_MIN_ZOOM = { grid: 9, microgrid: 10 };
  var MAX_GEOJSON = 3000;
  var STYLE = {
    district: { color: "#b71c1c", weight: 3.5, fill: false },
    subdistrict: { color: "#6a1b9a", weight: 2.4, fillColor: "#6a1b9a", fillOpacity: 0.03 },
    community: { color: "#1565c0", weight: 1.6, fillColor: "#1565c0", fillOpacity: 0.03 },
    grid: { color: "#2e7d32", weight: 1.0, fillColor: "#2e7d32", fillOpacity: 0.05 },
    microgrid: { color: "#827717", weight: 0.7, dashArray: "3 3", fillColor: "#827717", fillOpacity: 0.02 }
  };
  var STATE_COLOURS = { reported: "#9e9e9e", filed: "#607d8b", rejected: "#5d4037", voided: "#5d4037",
    dispatched: "#1e88e5", accepted: "#fb8c00", handled: "#8e24aa", rework: "#e53935", suspended: "#757575",
    closed: "#43a047", merged: "#bdbdbd" };
  var CLOCK_COLOURS = { green: "#2e7d32", yellow: "#f9a825", red: "#c62828", none: "#9e9e9e" };

  /* black or white, whichever reads better on the colour `hex` (#rrggbb): WCAG contrast, at least 4.5:1 on any */
  function textOn(hex) {
    var lum = [1, 3, 5].map(function (i) {
      var c = parseInt(hex.substr(i, 2), 16) / 255;
      return c <= 0.04045 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4);
    });
    var l = 0.2126 * lum[0] + 0.7152 * lum[1] + 0.0722 * lum[2];
    return (l + 0.05) / 0.05 >= 1.05 / (l + 0.05) ? "#000" : "#fff";
  }

  /* GCJ-02 forward formula (WGS84 → GCJ-02), for drawing WGS84 overlays on a GCJ-02 base map. */
  function gcj02(lat, lon) {
    if (lon < 72.004 || lon > 137.8347 || lat < 0.8293 || lat > 55.8271) { return [lat, lon]; }
    var a = 6378245.0, ee = 0.00669342162296594323, PI = Math.PI, x = lon - 105.0, y = lat - 35.0;
    var common = (20 * Math.sin(6 * x * PI) + 20 * Math.sin(2 * x * PI)) * 2 / 3;
    var dLat = -100 + 2 * x + 3 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * Math.sqrt(Math.abs(x)) + common +
      (20 * Math.sin(y * PI) + 40 * Math.sin(y / 3 * PI)) * 2 / 3 + (160 * Math.sin(y / 12 * PI) + 320 * Math.sin(y * PI / 30)) * 2 / 3;
    var dLon = 300 + x + 2 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * Math.sqrt(Math.abs(x)) + common +
      (20 * Math.sin(x * PI) + 40 * Math.sin(x / 3 * PI)) * 2 / 3 + (150 * Math.sin(x / 12 * PI) + 300 * Math.sin(x / 30 * PI)) * 2 / 3;
    var rad = lat / 180 * PI, magic = 1 - ee * Math.sin(rad) * Math.sin(rad), sm = Math.sqrt(magic);
    dLat = (dLat * 180) / ((a * (1 - ee)) / (magic * sm) * PI);
    dLon = (dLon * 180) / (a / sm * Math.cos(rad) * PI);
    return [lat + dLat, lon + dLon];
  }

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) { node.className = cls; }
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }

  function row(table, label, value) {
    var tr = el("tr");
    tr.appendChild(el("th", null, label));
    var td = el("td");
    if (value instanceof Node) { td.appendChild(value); } else { td.textContent = value === null || value === undefined || value === "" ? "—" : String(value); }
    tr.appendChild(td);
    table.appendChild(tr);
    return tr;
  }

  function option(select, value, label, selected) {
    var o = el("option", null, label);
    o.value = value;
    if (selected) { o.selected = true; }
    select.appendChild(o);
    return o;
  }

  function percent(v) { return v === null || v === undefined ? "—" : (v * 100).toFixed(1) + "%"; }
  function localTime(iso) {
    if (!iso) { return "—"; }
    var d = new Date(iso), pad = function (n) { return (n < 10 ? "0" : "") + n; };
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " + pad(d.getHours()) + ":" + pad(d.getMinutes());
  }

  /* ---------------------------------------------------------------------------------------------- the page core */
  function Core(map, config, page) {
    this.map = map;
    this.config = config;
    this.page = page;
    if (!map.options.maxZoom) { map.setMaxZoom(19); }  // with no base map; marker clustering needs one
    this.lang = config.language === "en" ? "en" : "zh";
    this.t = TEXT[this.lang];
    this.pending = 0;
    this.gcj = config.tile_crs === "gcj02";
    var self = this;
    this.toLatLng = this.gcj
      ? function (c) { var p = gcj02(c[1], c[0]); return L.latLng(p[0], p[1]); }
      : function (c) { return L.latLng(c[1], c[0]); };
    document.documentElement.dataset.gmShift = config.tile_crs;
    document.body.dataset.gmIdle = "0";
    (config.basemaps || []).forEach(function (b) {
      L.tileLayer(b.url, { attribution: b.attribution || "", subdomains: b.subdomains || "abc", maxZoom: 19 }).addTo(map);
    });
    if (!(config.basemaps || []).length) { map.getContainer().classList.add("gm-no-basemap"); }
    var other = document.getElementById("gm-other-page"), lang = document.getElementById("gm-lang");
    document.getElementById("gm-title").textContent = this.t[page];
    other.textContent = page === "overview" ? this.t.toDispatch : this.t.toOverview;
    other.href = (page === "overview" ? "/dispatch" : "/") + "?lang=" + this.lang;
    lang.textContent = this.t.other;
    lang.href = "?lang=" + (this.lang === "zh" ? "en" : "zh");
    L.DomEvent.disableClickPropagation(document.getElementById("gm-panel"));
    L.DomEvent.disableScrollPropagation(document.getElementById("gm-panel"));
    var side = document.getElementById("gm-side");
    L.DomEvent.disableClickPropagation(side);
    L.DomEvent.disableScrollPropagation(side);
    map.on("moveend", function () { self.mark("gmView", map.getZoom() + "@" + map.getCenter().lat.toFixed(5) + "," + map.getCenter().lng.toFixed(5)); });
    /* a phone (issue 14 §3): every fit of the map leaves room for the panel as laid out now, the panel folds away */
    var fitBounds = map.fitBounds;
    map.fitBounds = function (bounds, options) { return fitBounds.call(map, bounds, self.fitOptions(options)); };
    this.panelToggle();
    labelControls();
    var observer = new MutationObserver(function () { clearTimeout(self.labelTimer); self.labelTimer = setTimeout(labelControls, 30); });
    ["gm-panel", "gm-side"].forEach(function (id) { observer.observe(document.getElementById(id), { childList: true, subtree: true }); });
  }

  var NARROW = "(max-width: 600px)";
  function narrow() { return !!(window.matchMedia && window.matchMedia(NARROW).matches); }

  /* the padding of a fit as the screen allows: on a phone the panel lies across the top (when open), so a page's
   * padding for a panel on the left is replaced by the height the panel covers; anywhere, paddings that would
   * leave less than a quarter of the map are scaled down (a 360 px padding on a 390 px map opened the overview at
   * zoom 6, 400 km west of the district: Leaflet fits the bounds into what the padding leaves and centres them
   * half the padding off) */
  Core.prototype.fitOptions = function (options) {
    var o = Object.assign({}, options || {}), size = this.map.getSize();
    var tl = L.point(o.paddingTopLeft || o.padding || [0, 0]), br = L.point(o.paddingBottomRight || o.padding || [0, 0]);
    delete o.padding;
    if (narrow()) {
      var panel = document.getElementById("gm-panel"), box = this.map.getContainer().getBoundingClientRect();
      if (tl.x > size.x / 5) { tl.x = 10; }
      if (br.x > size.x / 5) { br.x = 10; }
      if (panel && !panel.classList.contains("gm-collapsed") && getComputedStyle(panel).display !== "none") {
        var cover = panel.getBoundingClientRect().bottom - box.top;
        if (cover > 0) { tl.y = Math.max(tl.y, cover + 8); }
      }
    }
    [["x", size.x], ["y", size.y]].forEach(function (axis) {
      var k = axis[0], sum = tl[k] + br[k];
      if (sum > axis[1] * 0.75) { tl[k] = tl[k] * axis[1] * 0.75 / sum; br[k] = br[k] * axis[1] * 0.75 / sum; }
    });
    o.paddingTopLeft = [tl.x, tl.y];
    o.paddingBottomRight = [br.x, br.y];
    return o;
  };

  /* the panel's fold button (收起 / 展开): folded, only the title row stays and the map is free (a case's side
   * panel stays, with its own close button: on a phone the map and the case then share the screen); the map's top
   * controls sit under the panel on a phone (--gm-panel-bottom) */
  Core.prototype.panelToggle = function () {
    var panel = document.getElementById("gm-panel"), button = document.getElementById("gm-panel-toggle"), self = this;
    if (!panel || !button) { return; }
    function place() {
      var bottom = panel.getBoundingClientRect().bottom - self.map.getContainer().getBoundingClientRect().top;
      document.documentElement.style.setProperty("--gm-panel-bottom", Math.max(0, Math.round(bottom)) + "px");
    }
    this.setPanel = function (open) {
      var before = panel.getBoundingClientRect().bottom;
      panel.classList.toggle("gm-collapsed", !open);
      document.body.classList.toggle("gm-panel-collapsed", !open);
      button.setAttribute("aria-expanded", open ? "true" : "false");
      button.textContent = open ? self.t.hidePanel : self.t.showPanel;
      self.mark("gmPanel", open ? "open" : "closed");
      place();
      // on a phone the panel lies over the map's top: keep what was in the middle of the free part there
      var moved = before - panel.getBoundingClientRect().bottom;
      if (narrow() && !panel.contains(self.map.getContainer()) && Math.abs(moved) > 1) {
        self.map.panBy([0, moved / 2], { animate: false });
      }
    };
    button.addEventListener("click", function () { self.setPanel(panel.classList.contains("gm-collapsed")); });
    if (window.ResizeObserver) { new ResizeObserver(place).observe(panel); }
    window.addEventListener("resize", place);
    this.setPanel(true);
  };

  Core.prototype.mark = function (key, value) { document.body.dataset[key] = String(value); };

  Core.prototype.status = function (text) {
    document.getElementById("gm-status").textContent = text;
  };

  Core.prototype.headers = function (extra) {
    var h = { Accept: "application/json" };
    if (this.config.csrf) { h["X-CSRF-Token"] = this.config.csrf; }  // the session cookie goes by itself
    h["Accept-Language"] = this.lang === "en" ? "en" : "zh-CN";  // problem details in the page's language
    Object.keys(extra || {}).forEach(function (k) { h[k] = extra[k]; });
    return h;
  };

  /* fetch JSON from the API; the page is "idle" (data-gm-idle=1) when nothing is in flight. Errors reject with
   * the problem+json detail. */
  Core.prototype.request = function (method, path, body, extraHeaders) {
    var self = this, url = path.indexOf("/") === 0 ? path : this.config.api_base + "/" + path;
    var init = { method: method, headers: this.headers(extraHeaders) };
    if (body instanceof FormData) { init.body = body; }  // multipart (photos): the browser writes the type
    else if (body !== undefined) { init.body = JSON.stringify(body); init.headers["Content-Type"] = "application/json"; }
    this.pending += 1;
    document.body.dataset.gmIdle = "0";
    this.status(this.t.loading);
    return fetch(url, init).then(function (r) {
      return r.text().then(function (text) {
        var data = text ? JSON.parse(text) : null;
        if (r.status === 401) {  // the session ended: sign in again and come back here
          window.location.assign("/login?next=" + encodeURIComponent(window.location.pathname + window.location.search));
        }
        if (!r.ok) {
          var err = new Error((data && data.detail) || (url + " → " + r.status));
          err.status = r.status; err.problem = data;
          throw err;
        }
        return data;
      });
    }).finally(function () {
      self.pending -= 1;
      if (self.pending === 0) { self.status(self.t.loaded); document.body.dataset.gmIdle = "1"; }
    });
  };
  Core.prototype.get = function (path) { return this.request("GET", path); };
  Core.prototype.fail = function (err) {
    this.status(this.t.failed + ": " + err.message);
    if (window.console && err.status === undefined) { window.console.warn(err); }
  };

  /* the view's box in WGS84 for the API: on a GCJ-02 base map the view is shifted ~0.5 km, so widen it */
  Core.prototype.bboxOf = function (bounds) {
    var pad = this.gcj ? 0.01 : 0;
    var clamp = function (v, limit) { return Math.max(-limit, Math.min(limit, v)); };  // a padded world view
    return [clamp(bounds.getWest() - pad, 180), clamp(bounds.getSouth() - pad, 90), clamp(bounds.getEast() + pad, 180),
            clamp(bounds.getNorth() + pad, 90)].map(function (v) { return v.toFixed(5); }).join(",");
  };
  Core.prototype.point = function (lonlat) { return this.toLatLng(lonlat); };

  /* ------------------------------------------------------------------ area outlines per level, box and zoom */
  function AreaLevel(core, level, handlers) {
    this.core = core;
    this.level = level;
    this.byCode = {};
    this.bucket = null;
    this.extent = null;
    this.seq = 0;
    this.tooMany = {};  // zoom buckets where the GeoJSON answer was too large: tiles there
    this.maxGeojson = core.config.max_geojson || MAX_GEOJSON;
    this.tiles = null;
    this.styleOf = handlers.style || function () { return STYLE[level]; };
    var self = this;
    this.layer = L.geoJSON(null, {
      style: function (f) { return self.styleOf(f); },
      coordsToLatLng: core.toLatLng,
      onEachFeature: function (feature, lyr) {
        self.byCode[feature.properties.code] = lyr;
        if (handlers.each) { handlers.each(feature, lyr); }
      }
    });
    this.layer.gmLevel = level;
  }

  AreaLevel.prototype.visible = function () { return this.core.map.hasLayer(this.layer); };

  /* whether this level is drawn from vector tiles at `zoom` (see TILE_MIN_ZOOM) */
  AreaLevel.prototype.useTiles = function (zoom) {
    if (!L.vectorGrid || this.core.gcj) { return false; }
    if (zoom < MIN_ZOOM[this.level]) { return zoom >= (TILE_MIN_ZOOM[this.level] || Infinity); }
    return !!this.tooMany[Math.max(6, Math.min(17, zoom))];
  };

  AreaLevel.prototype.showTiles = function (on) {
    var map = this.core.map, self = this;
    if (on && !this.tiles) {
      if (!map.getPane("gmAreaTiles")) {
        var pane = map.createPane("gmAreaTiles");
        pane.style.zIndex = 390;  // under the outlines drawn from GeoJSON (400)
        pane.style.pointerEvents = "none";
      }
      var styles = {};
      styles[this.level] = function (p) {
        var s = L.extend({}, self.styleOf({ properties: p }));
        s.fill = s.fill !== false && !!s.fillColor;
        return s;
      };
      this.tiles = L.vectorGrid.protobuf(this.core.config.api_base + "/tiles/" + this.level + "/{z}/{x}/{y}.mvt", {
        vectorTileLayerStyles: styles, interactive: false, pane: "gmAreaTiles", maxNativeZoom: 18,
        rendererFactory: L.canvas.tile, fetchOptions: { credentials: "same-origin" }
      });
      // the view's tiles drawn: how many (0 while some are loading)
      this.tiles.on("loading", function () { self.core.mark("gmTilesReady_" + self.level, 0); });
      this.tiles.on("load", function () { self.core.mark("gmTilesReady_" + self.level, Object.keys(self.tiles._tiles).length); });
    }
    if (on && !map.hasLayer(this.tiles)) { this.tiles.addTo(map); }
    if (!on && this.tiles && map.hasLayer(this.tiles)) { map.removeLayer(this.tiles); }
    if (!on) { this.core.mark("gmTilesReady_" + this.level, 0); }
    this.core.mark("gmTiles_" + this.level, on ? 1 : 0);
  };

  AreaLevel.prototype.refresh = function () {
    var map = this.core.map, self = this;
    if (!this.visible()) { this.seq += 1; this.asking = null; this.showTiles(false); return Promise.resolve(); }
    var zoom = Math.round(map.getZoom()), tiled = this.useTiles(zoom);
    this.showTiles(tiled);
    if (zoom < MIN_ZOOM[this.level] || tiled) {
      this.seq += 1; this.asking = null;  // an answer still in flight is not drawn
      this.layer.clearLayers(); this.byCode = {}; this.bucket = null; this.extent = null;
      this.core.mark("gmLevel_" + this.level, 0);
      return Promise.resolve();
    }
    var bucket = Math.max(6, Math.min(17, zoom)), view = map.getBounds();
    if (bucket === this.bucket && this.extent && this.extent.contains(view)) { return Promise.resolve(); }
    if (this.asking && this.asking.bucket === bucket && this.asking.extent.contains(view)) { return this.asking.done; }
    var extent = view.pad(0.5), seq = ++this.seq;
    var tiles = !!L.vectorGrid && !this.core.gcj;
    var url = "map/areas?level=" + this.level + "&zoom=" + bucket + "&bbox=" + this.core.bboxOf(extent) +
      (tiles ? "&max_features=" + this.maxGeojson : "");
    var asking = this.asking = { bucket: bucket, extent: extent };  // what is in flight covers a view inside it
    asking.done = this.core.get(url).then(function (fc) {
      if (self.asking === asking) { self.asking = null; }
      if (seq !== self.seq) { return; }  // a newer view asked since
      var matched = Math.max(fc.numberMatched || 0, fc.numberReturned);
      if (tiles && matched > self.maxGeojson) {  // too large: tiles at this zoom (none of them was sent)
        self.tooMany[bucket] = true;
        return self.refresh();
      }
      if (bucket !== self.bucket) { self.layer.clearLayers(); self.byCode = {}; }
      self.bucket = bucket;
      self.extent = extent;
      var fresh = fc.features.filter(function (f) { return !self.byCode[f.properties.code]; });
      self.layer.addData({ type: "FeatureCollection", features: fresh });
      self.core.mark("gmLevel_" + self.level, Object.keys(self.byCode).length);
      if (self.onLoad) { self.onLoad(); }
    }).catch(function (err) { if (self.asking === asking) { self.asking = null; } self.core.fail(err); });
    return asking.done;
  };

  AreaLevel.prototype.restyle = function () {
    var self = this;
    this.layer.eachLayer(function (lyr) { lyr.setStyle(self.styleOf(lyr.feature)); });
    if (this.tiles && this.core.map.hasLayer(this.tiles)) { this.tiles.redraw(); }
  };

  function AreaLayers(core, handlers) {
    var self = this;
    this.core = core;
    this.levels = {};
    LEVELS.forEach(function (level) { self.levels[level] = new AreaLevel(core, level, handlers || {}); });
    if (!core.map.getPane("gmLabels")) { core.map.createPane("gmLabels").style.zIndex = 450; }  // under the markers
    this.labels = L.layerGroup().addTo(core.map);
    this.fit = new Promise(function (resolve) { self.onFit = resolve; });  // the first view was fitted (see start)
    core.map.on("moveend", function () { self.soon(); });
    core.map.on("overlayadd overlayremove", function (e) {
      if (e.layer.gmLevel) { self.soon(); }
    });
  }

  /* one refresh for the moves and switches of one task (a page switching on two levels asked twice), none while
   * the first view is being found (the map's default view is nobody's) */
  AreaLayers.prototype.soon = function () {
    var self = this;
    if (this.timer) { return; }
    this.timer = setTimeout(function () { self.timer = null; if (!self.starting) { self.refresh(); } }, 0);
  };

  /* the first view: fit the district(s), then load every visible level for it. The page comes with the box of
   * the districts the account sees (config.bounds): the view is fitted at once, and what depends on it (the
   * levels' outlines, the cases' clusters) is asked without first waiting for the districts' outlines */
  AreaLayers.prototype.start = function (fitOptions) {
    var core = this.core, self = this, b = core.config.bounds;
    // not animated: the levels are then asked for the view fitted, not for the map's default one mid-animation
    var fit = function (bounds) {
      if (bounds.isValid()) { core.map.fitBounds(bounds, Object.assign({ animate: false }, fitOptions || {})); }
      clearTimeout(self.timer); self.timer = null; self.starting = false;
      self.fitted = true;
      self.onFit();
      return self.refresh();
    };
    if (b && b.length === 4) {
      return fit(L.latLngBounds(core.toLatLng([b[0], b[1]]), core.toLatLng([b[2], b[3]])));
    }
    this.starting = true;
    return core.get("map/areas?level=district&zoom=10").then(function (fc) {
      return fit(L.geoJSON(fc, { coordsToLatLng: core.toLatLng }).getBounds());
    }).catch(function (err) { self.starting = false; self.onFit(); core.fail(err); });
  };

  AreaLayers.prototype.refresh = function () {
    var self = this;
    return Promise.all(LEVELS.map(function (l) { return self.levels[l].refresh(); })).then(function () {
      self.order();
      self.relabel();
    });
  };

  /* finer levels on top, so that a click reaches the finest visible area */
  AreaLayers.prototype.order = function () {
    var map = this.core.map;
    LEVELS.slice().reverse().forEach(function (level) {
      var layer = this.levels[level].layer;
      if (map.hasLayer(layer)) { layer.bringToBack(); }
    }, this);
  };

  /* names and codes of the finest visible level that fits on screen (at most 80 labels) */
  AreaLayers.prototype.relabel = function () {
    var map = this.core.map, view = map.getBounds(), self = this;
    this.labels.clearLayers();
    var levels = LEVELS.slice().reverse();
    for (var i = 0; i < levels.length; i += 1) {
      var lv = this.levels[levels[i]];
      if (!lv.visible() || levels[i] === "district") { continue; }
      var inView = [];
      lv.layer.eachLayer(function (lyr) {
        var p = lyr.feature.properties, at = self.core.point(p.label);
        if (view.contains(at)) { inView.push([p, at]); }
      });
      if (!inView.length) { continue; }
      if (inView.length > 80) { continue; }
      inView.forEach(function (item) {
        var box = el("div", "gm-area-label gm-area-label-" + item[0].level);
        box.appendChild(el("span", "gm-area-label-name", item[0].name));
        box.appendChild(el("span", "gm-area-label-code", item[0].code));
        L.marker(item[1], { icon: L.divIcon({ html: box, className: "gm-label-icon", iconSize: null }),
          interactive: false, keyboard: false, pane: "gmLabels" }).addTo(self.labels);
      });
      this.core.mark("gmLabels", levels[i] + ":" + inView.length);
      return;
    }
    this.core.mark("gmLabels", "none");
  };

  /* ------------------------------------------------------------------------------------------ the search box */
  function SearchBox(core, onPick) {
    var input = document.getElementById("gm-search"), list = document.getElementById("gm-search-results");
    var timer = null, seq = 0, t = core.t;
    input.placeholder = t.search;
    input.setAttribute("aria-label", t.search);
    function show(items) {
      list.replaceChildren();
      list.hidden = false;
      if (!items.length) { list.appendChild(el("li", "gm-search-none", t.noResults)); return; }
      items.forEach(function (item) {
        var li = el("li", "gm-search-item"), kind = item.kind === "area" ? t.levels[item.level] : t.kinds[item.kind];
        li.appendChild(el("span", "gm-search-kind", kind));
        li.appendChild(el("span", "gm-search-label", item.label));
        if (item.detail) { li.appendChild(el("span", "gm-search-detail", item.detail)); }
        li.tabIndex = 0;
        li.dataset.kind = item.kind;
        li.addEventListener("click", function () { list.hidden = true; onPick(item); });
        li.addEventListener("keydown", function (e) { if (e.key === "Enter") { list.hidden = true; onPick(item); } });
        list.appendChild(li);
      });
    }
    function run() {
      var q = input.value.trim(), mine = ++seq;
      if (!q) { list.hidden = true; return; }
      core.get("search?limit=10&q=" + encodeURIComponent(q)).then(function (res) {
        if (mine === seq) { show(res.items); }
      }).catch(function (err) { core.fail(err); });
    }
    input.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(run, 250); });
    input.addEventListener("keydown", function (e) { if (e.key === "Enter") { clearTimeout(timer); run(); } });
  }

  /* accessibility: a form control with no accessible name (no <label for>, no wrapping label, no aria-label) is
   * named by the nearest label before it (itself, or up to two of its ancestors, or their earlier siblings) —
   * the pages build fields as <label>text</label><select>; axe counts an unnamed control as critical */
  var autoId = 0;
  function labelControls() {
    var controls = document.querySelectorAll("#gm-panel input, #gm-panel select, #gm-panel textarea, " +
      "#gm-side input, #gm-side select, #gm-side textarea");
    Array.prototype.forEach.call(controls, function (c) {
      if (c.type === "hidden" || c.getAttribute("aria-label") || c.getAttribute("aria-labelledby") || c.title ||
          (c.labels && c.labels.length)) { return; }
      var label = null, node = c;
      for (var depth = 0; depth < 3 && node && !label; depth += 1, node = node.parentElement) {
        for (var prev = node.previousElementSibling; prev && !label; prev = prev.previousElementSibling) {
          if (prev.tagName === "LABEL" && prev.textContent.trim()) { label = prev; }
        }
      }
      if (label) {
        if (!label.id) { autoId += 1; label.id = "gm-label-" + autoId; }
        c.setAttribute("aria-labelledby", label.id);
      } else if (c.placeholder) {
        c.setAttribute("aria-label", c.placeholder);
      }
    });
  }

  /* a layers control is folded on a phone (an open one covers the map and the panel's links) */
  if (window.L && L.control && L.control.layers && !L.control.layers.gmWrapped) {
    var layersControl = L.control.layers;
    L.control.layers = function (base, overlays, options) {
      return layersControl(base, overlays, narrow() ? Object.assign({}, options, { collapsed: true }) : options);
    };
    L.control.layers.gmWrapped = true;
  }

  window.GM = { TEXT: TEXT, narrow: narrow, LEVELS: LEVELS, MIN_ZOOM: MIN_ZOOM, STYLE: STYLE, STATE_COLOURS: STATE_COLOURS,
    CLOCK_COLOURS: CLOCK_COLOURS, textOn: textOn, el: el, row: row, option: option, percent: percent, localTime: localTime,
    gcj02: gcj02, Core: Core, AreaLayers: AreaLayers, SearchBox: SearchBox };
  window.gridmapGcj02 = gcj02;
}());
