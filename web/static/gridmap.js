/* gridmap overview map: area layers per level, clustered cases, an area panel. Data comes from /api/v1.
 * Every text that came from the database is rendered with textContent, never as HTML. */
(function () {
  "use strict";

  var I18N = {
    zh: {
      title: "网格化管理 · 总览", other: "English", hint: "点击地图上的网格查看党支部、人员和事件。",
      levels: { district: "区", subdistrict: "街道", community: "社区", grid: "网格", microgrid: "微网格" },
      cases: "事件（近30天）", code: "编码", households: "户数", population: "人口", area: "面积（平方公里）",
      branch: "党组织", secretary: "书记", members: "党员数", reporting: "在职党员报到", staff: "人员",
      places: "场所", caseCounts: "事件", total: "合计", open: "未办结", overdue: "超期", closed: "已结案",
      none: "无", loading: "加载中…", loaded: "已加载", failed: "加载失败",
      placeKinds: { compound: "小区", building: "楼栋", service_centre: "党群服务中心" },
      states: { reported: "上报", filed: "立案", rejected: "不予受理", voided: "作废", dispatched: "已派遣",
                accepted: "已签收", handled: "已处置", rework: "返工", suspended: "挂账", closed: "已结案" },
      level: "层级", parent: "上级编码", number: "编号", grid: "网格", state: "状态", reportedAt: "上报时间", legend: "事件状态"
    },
    en: {
      title: "Grid governance · Overview", other: "中文", hint: "Click a grid on the map to see its party branch, staff and cases.",
      levels: { district: "District", subdistrict: "Sub-district", community: "Community", grid: "Grid", microgrid: "Micro-grid" },
      cases: "Cases (last 30 days)", code: "Code", households: "Households", population: "Population", area: "Area (km²)",
      branch: "Party organisation", secretary: "Secretary", members: "Members", reporting: "In-service members reporting",
      staff: "Staff", places: "Places", caseCounts: "Cases", total: "Total", open: "Open", overdue: "Overdue",
      closed: "Closed", none: "None", loading: "Loading…", loaded: "Loaded", failed: "Failed to load",
      placeKinds: { compound: "Compounds", building: "Buildings", service_centre: "Party-mass service centres" },
      states: { reported: "Reported", filed: "Filed", rejected: "Rejected", voided: "Voided", dispatched: "Dispatched",
                accepted: "Accepted", handled: "Handled", rework: "Rework", suspended: "Suspended", closed: "Closed" },
      level: "Level", parent: "Parent code", number: "Number", grid: "Grid", state: "State", reportedAt: "Reported", legend: "Case state"
    }
  };
  var LEVELS = ["district", "subdistrict", "community", "grid", "microgrid"];
  var STYLE = {
    district: { color: "#b71c1c", weight: 3.5, fill: false },
    subdistrict: { color: "#6a1b9a", weight: 2.5, fillOpacity: 0.03 },
    community: { color: "#1565c0", weight: 1.6, fillOpacity: 0.03 },
    grid: { color: "#2e7d32", weight: 1.0, fillOpacity: 0.06 },
    microgrid: { color: "#9e9d24", weight: 0.6, dashArray: "3 3", fillOpacity: 0.02 }
  };
  var VISIBLE = { district: true, subdistrict: true, community: false, grid: true, microgrid: false };
  var STATE_COLOURS = { reported: "#9e9e9e", filed: "#607d8b", rejected: "#5d4037", voided: "#5d4037",
    dispatched: "#1e88e5", accepted: "#fb8c00", handled: "#8e24aa", rework: "#e53935", suspended: "#757575",
    closed: "#43a047" };

  /* GCJ-02 forward formula, for drawing WGS84 overlays on a GCJ-02 base map. */
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
    tr.appendChild(el("td", null, value === null || value === undefined ? "—" : value));
    table.appendChild(tr);
  }

  var App = {
    init: function (map, config) {
      this.map = map;
      this.config = config;
      if (!map.options.maxZoom) { map.setMaxZoom(19); }  // no base map: marker clustering needs a maximum zoom
      this.t = I18N[config.language] || I18N.zh;
      this.layers = {};
      this.pending = 0;
      this.toLatLng = config.tile_crs === "gcj02"
        ? function (c) { var p = gcj02(c[1], c[0]); return L.latLng(p[0], p[1]); }
        : function (c) { return L.latLng(c[1], c[0]); };
      document.documentElement.dataset.gmShift = config.tile_crs;
      this.buildPanel();
      var control = L.control.layers(null, null, { collapsed: false }).addTo(map);
      var self = this;
      LEVELS.forEach(function (level) {
        var layer = self.areaLayer(level);
        control.addOverlay(layer, self.t.levels[level]);
        if (VISIBLE[level]) { layer.addTo(map); }
      });
      this.cases = L.markerClusterGroup({ chunkedLoading: true, maxClusterRadius: 50 });
      control.addOverlay(this.cases, this.t.cases);
      this.cases.addTo(map);
      this.loadCases();
      this.addLegend();
      map.on("overlayadd", function (e) { if (e.layer.gmLevel) { self.loadLevel(e.layer); } });
    },

    buildPanel: function () {
      var t = this.t, lang = document.getElementById("gm-lang");
      document.getElementById("gm-title").textContent = t.title;
      document.getElementById("gm-hint").textContent = t.hint;
      lang.textContent = t.other;
      lang.href = "?lang=" + (this.config.language === "zh" ? "en" : "zh");
      L.DomEvent.disableClickPropagation(document.getElementById("gm-panel"));
    },

    areaLayer: function (level) {
      var self = this;
      var layer = L.geoJSON(null, {
        style: function () { return STYLE[level]; },
        coordsToLatLng: this.toLatLng,
        onEachFeature: function (feature, lyr) {
          var p = feature.properties, label = el("span", "gm-label", p.name + " " + p.code);
          lyr.bindTooltip(label, { sticky: true, className: "gm-tooltip gm-tooltip-" + level });
          lyr.on("click", function (ev) { L.DomEvent.stopPropagation(ev); self.select(p.code, lyr); });
        }
      });
      layer.gmLevel = level;
      layer.gmLoaded = false;
      this.layers[level] = layer;
      if (VISIBLE[level]) { this.loadLevel(layer); }
      return layer;
    },

    fetchJSON: function (url) {
      var self = this;
      this.pending += 1;
      this.status(this.t.loading);
      return fetch(url, { headers: { Accept: "application/json" } }).then(function (r) {
        if (!r.ok) { throw new Error(url + " → " + r.status); }
        return r.json();
      }).finally(function () {
        self.pending -= 1;
        if (self.pending === 0) { self.status(self.t.loaded); document.body.dataset.gmIdle = "1"; }
      });
    },

    status: function (text) {
      document.getElementById("gm-status").textContent = text;
      document.body.dataset.gmIdle = this.pending === 0 ? "1" : "0";
    },

    loadLevel: function (layer) {
      if (layer.gmLoaded) { return; }
      layer.gmLoaded = true;
      var self = this, level = layer.gmLevel;
      this.fetchJSON(this.config.api_base + "/areas?level=" + level).then(function (fc) {
        layer.addData(fc);
        document.body.dataset["gmLevel_" + level] = String(fc.features.length);
        if (level === "district" && fc.features.length) { self.map.fitBounds(layer.getBounds()); }
        self.raiseOrder();
      }).catch(function (err) { self.status(self.t.failed + ": " + err.message); });
    },

    raiseOrder: function () {
      var map = this.map;
      ["microgrid", "grid", "community", "subdistrict", "district"].forEach(function (level) {
        var layer = this.layers[level];
        if (layer && map.hasLayer(layer)) { layer.bringToBack(); }
      }, this);
    },

    loadCases: function () {
      var self = this, since = new Date(Date.now() - 30 * 86400000).toISOString();
      this.fetchJSON(this.config.api_base + "/cases?format=geojson&limit=10000&since=" + encodeURIComponent(since))
        .then(function (fc) {
          var markers = fc.features.filter(function (f) { return f.geometry; }).map(function (f) {
            var p = f.properties, m = L.circleMarker(self.toLatLng(f.geometry.coordinates), {
              radius: 6, color: "#fff", weight: 1, fillColor: STATE_COLOURS[p.state] || "#000", fillOpacity: 0.9
            });
            m.bindPopup(function () { return self.casePopup(p); });
            return m;
          });
          self.cases.addLayers(markers);
          document.body.dataset.gmCases = String(markers.length);
        }).catch(function (err) { self.status(self.t.failed + ": " + err.message); });
    },

    casePopup: function (p) {
      var t = this.t, box = el("div", "gm-case"), table = el("table");
      box.appendChild(el("strong", null, p.title));
      row(table, t.number, p.number);
      row(table, t.state, t.states[p.state] || p.state);
      row(table, t.grid, p.grid_code);
      row(table, t.reportedAt, p.reported_at && p.reported_at.replace("T", " ").slice(0, 16));
      box.appendChild(table);
      if (p.description) { box.appendChild(el("p", "gm-desc", p.description)); }
      return box;
    },

    select: function (code, lyr) {
      var self = this;
      if (this.highlighted) { this.highlighted.setStyle({ weight: STYLE[this.highlighted.feature.properties.level].weight }); }
      if (lyr && lyr.setStyle) { lyr.setStyle({ weight: 4 }); this.highlighted = lyr; }
      this.fetchJSON(this.config.api_base + "/areas/" + encodeURIComponent(code)).then(function (f) {
        self.showArea(f.properties);
      }).catch(function (err) { self.status(self.t.failed + ": " + err.message); });
    },

    showArea: function (p) {
      var t = this.t, box = document.getElementById("gm-detail");
      box.replaceChildren();
      box.hidden = false;
      box.dataset.code = p.code;
      box.appendChild(el("h2", "gm-area-name", p.name));
      var info = el("table", "gm-info");
      row(info, t.code, p.code);
      row(info, t.level, t.levels[p.level] || p.level);
      row(info, t.parent, p.parent_code);
      row(info, t.households, p.households.toLocaleString());
      row(info, t.population, p.population.toLocaleString());
      row(info, t.area, p.area_km2);
      box.appendChild(info);
      box.appendChild(el("h3", null, t.branch));
      if (p.branch) {
        var b = el("table", "gm-branch");
        row(b, "", p.branch.name);
        row(b, t.secretary, p.branch.secretary);
        row(b, t.members, p.branch.member_count);
        row(b, t.reporting, p.branch.reporting_member_count);
        box.appendChild(b);
      } else { box.appendChild(el("p", null, t.none)); }
      box.appendChild(el("h3", null, t.staff));
      var staff = el("ul", "gm-staff");
      (p.staff || []).forEach(function (s) {
        staff.appendChild(el("li", null, (this.config.language === "zh" ? s.role_zh : s.role) + " · " + s.name + " · " + (s.phone || "")));
      }, this);
      if (!(p.staff || []).length) { staff.appendChild(el("li", null, t.none)); }
      box.appendChild(staff);
      box.appendChild(el("h3", null, t.caseCounts));
      var c = el("table", "gm-cases"), counts = p.cases || {};
      row(c, t.total, counts.total); row(c, t.open, counts.open);
      row(c, t.overdue, counts.overdue); row(c, t.closed, counts.closed);
      box.appendChild(c);
      box.appendChild(el("h3", null, t.places));
      var pl = el("table", "gm-places"), places = p.places || {};
      Object.keys(t.placeKinds).forEach(function (k) { row(pl, t.placeKinds[k], places[k] || 0); });
      box.appendChild(pl);
    },

    addLegend: function () {
      var t = this.t, legend = L.control({ position: "bottomright" });
      legend.onAdd = function () {
        var div = el("div", "gm-legend");
        div.appendChild(el("strong", null, t.legend));
        ["dispatched", "accepted", "handled", "rework", "closed", "reported"].forEach(function (s) {
          var item = el("div", "gm-legend-item"), sw = el("span", "gm-swatch");
          sw.style.background = STATE_COLOURS[s];
          item.appendChild(sw);
          item.appendChild(el("span", null, t.states[s]));
          div.appendChild(item);
        });
        return div;
      };
      legend.addTo(this.map);
    }
  };

  window.GridmapApp = App;
  window.gridmapGcj02 = gcj02;
}());
