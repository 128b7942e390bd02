/* gridmap overview: drill down district → sub-district → community → grid → micro-grid; the selected area's
 * party organisation, leaders, staff, places, measures and their trend, its case lists (open, overdue, by
 * category) with each case's detail and timeline, a ranking of its child areas or workers on any measure with the
 * target line (达标线), and exports; cases clustered (by state or deadline colour, clusters in their worst
 * colour), as a heat map, and a choropleth of any measure; filters by period, category, state and source.
 * Every text from the server is set with textContent (see common.js). */
(function () {
  "use strict";
  var el = GM.el, row = GM.row, option = GM.option;
  var SVGNS = "http://www.w3.org/2000/svg";

  /* every measure of gridmap/cases/measures.py (COLUMNS), in its order */
  var MEASURES = ["received", "handled", "due", "suspended", "closed", "closed_on_time", "closure_rate",
    "on_time_rate", "reworked", "rework_rate", "extended", "extension_rate", "bounces", "close_hours_p50",
    "close_hours_p90", "rated", "satisfied", "satisfaction"];
  var RATES = { closure_rate: 1, on_time_rate: 1, rework_rate: 1, extension_rate: 1, satisfaction: 1 };
  var HOURS = { close_hours_p50: 1, close_hours_p90: 1 };
  var LOWER_BETTER = { rework_rate: 1, extension_rate: 1, bounces: 1, close_hours_p50: 1, close_hours_p90: 1,
    suspended: 1, reworked: 1, extended: 1 };
  /* the target lines of gridmap/cases/rankings.py TARGETS (the ranking answer carries them too) */
  var TARGETS = { closure_rate: 0.95, on_time_rate: 0.90, satisfaction: 0.90, rework_rate: 0.05, extension_rate: 0.10 };
  /* the choropleth's colours: bad → good (red … green); a neutral ramp for counts that are neither */
  var BAD_GOOD = ["#d7191c", "#fdae61", "#fee08b", "#a6d96a", "#1a9641"];
  var NEUTRAL = ["#eff3ff", "#bdd7e7", "#6baed6", "#3182bd", "#08519c"];
  var NEXT = { district: "subdistrict", subdistrict: "community", community: "grid", grid: "microgrid" };
  /* a cluster shows its worst member's colour: the order of attention, worst first */
  var STATE_RANK = ["rework", "reported", "filed", "dispatched", "accepted", "handled", "suspended", "closed",
    "rejected", "voided", "merged"];
  var CLOCK_RANK = ["red", "yellow", "green", "none"];
  var PAGE_SIZE = 15;
  var POINT_LIMIT = 20000;  // case points drawn in the browser; beyond, the server groups them per view and zoom
  var POINTS_FROM_ZOOM = 16;  // zoomed in this far, the points of the view are drawn if they are few enough
  var DEADLINE_CLOCK = { overdue: "red", due_soon: "yellow", ok: "green" };

  var TEXT = {
    zh: {
      hint: "点击区域逐级下钻：街道 → 社区 → 网格 → 微网格。", filters: "图层与筛选", period: "时段", from: "自",
      to: "至", category: "类别", state: "状态", source: "来源", all: "全部", colourBy: "着色", byState: "按状态",
      byClock: "按时限（绿/黄/红）", choropleth: "专题图", none: "无", per: "按", apply: "应用", cases: "事件",
      noMeasures: "该区域的考核指标不在您的权限范围内",
      heat: "热力图", code: "编码", level: "层级", households: "户数", population: "人口", area: "面积（平方公里）",
      orgs: { district: "区委", subdistrict: "街道党工委", community: "社区党委", grid: "网格党支部",
        microgrid: "楼栋党小组" },
      secretary: "书记", members: "党员数", reporting: "在职党员报到", staff: "人员",
      leaders: "社区负责人", communitySecretary: "社区书记", communityDirector: "社区主任", notRegistered: "未登记",
      places: "场所", caseCounts: "事件", total: "合计", open: "未办结", overdue: "超期", closed: "已结案",
      measures: "考核指标（所选时段）", trend: "近12个月受理量与结案率", children: "下级区域", up: "返回上级",
      number: "编号", grid: "网格", reportedAt: "上报时间", caseLegend: "事件", noValue: "无数据",
      measureNames: { received: "受理量", handled: "处置量", due: "应结案数", suspended: "挂账数", closed: "结案数",
        closed_on_time: "按期结案数", closure_rate: "结案率", on_time_rate: "按期结案率", reworked: "返工数",
        rework_rate: "返工率", extended: "延期数", extension_rate: "延期率", bounces: "退单数",
        close_hours_p50: "办结时长中位数（小时）", close_hours_p90: "办结时长90分位（小时）", rated: "参评数",
        satisfied: "满意数", satisfaction: "满意率" },
      address: "地址", description: "描述", categoryName: "类别", deadline: "时限",
      caseList: "事件清单", listStates: { open: "未办结", overdue: "超期", "": "全部" }, prev: "上一页",
      next: "下一页", pageOf: function (a, b, n) { return "第" + a + "–" + b + "条，共" + n + "条"; },
      noCases: "无符合条件的事件", holder: "承办", overdueBy: "已超期", timeLeft: "剩余", timeline: "流转记录",
      noHistory: "无流转记录", days: "天", hours: "小时", minutes: "分钟", phone: "电话",
      ranking: "排名", rankMeasure: "指标", rankBy: "对象", byChildren: "下级区域", byWorkers: "网格员",
      target: "达标线", meets: "达标", misses: "未达标", rank: "名次", name: "名称", value: "数值",
      ratio: "分子／分母", noTarget: "该指标无达标线", noRanking: "无可排名的对象",
      exports: "导出", exportMeasures: "考核指标", exportCases: "事件清单", csv: "CSV", xlsx: "Excel",
      geojson: "GeoJSON", receivedAxis: "受理量（件，左轴）", rateAxis: "结案率（右轴）",
      reasons: { overdue: "超过处置时限" },
      series: "近12个月", colon: "：", slash: "／", open_: "（", close_: "）",
      actors: { system: "系统", resident: "群众", reporter: "群众", dispatcher: "调度员", worker: "网格员",
        department: "职能部门", verifier: "核查员", leader: "领导", manager: "网格长", admin: "系统管理员",
        integration: "系统对接", planner: "规划员", approver: "审批人" }
    },
    en: {
      hint: "Click an area to drill down: sub-district → community → grid → micro-grid.", filters: "Layers and filters",
      period: "Period", from: "from", to: "to", category: "Category", state: "State", source: "Source", all: "All",
      colourBy: "Colour", byState: "by state", byClock: "by deadline (green/yellow/red)", choropleth: "Choropleth",
      none: "None", per: "per", apply: "Apply", cases: "Cases",
      noMeasures: "This area's measures are outside what your account may see", heat: "Heat map", code: "Code", level: "Level",
      households: "Households", population: "Population", area: "Area (km²)",
      orgs: { district: "District party committee", subdistrict: "Sub-district working committee",
        community: "Community party committee", grid: "Grid party branch", microgrid: "Building party group" },
      secretary: "Secretary", members: "Members", reporting: "In-service members reporting", staff: "Staff",
      leaders: "Community leaders", communitySecretary: "Party secretary", communityDirector: "Director",
      notRegistered: "not registered",
      places: "Places", caseCounts: "Cases", total: "Total", open: "Open", overdue: "Overdue", closed: "Closed",
      measures: "Measures (chosen period)", trend: "Received and closure rate, last 12 months", children: "Areas within",
      up: "Up one level", number: "Number", grid: "Grid", reportedAt: "Reported", caseLegend: "Cases",
      noValue: "no data",
      measureNames: { received: "Received", handled: "Handled", due: "Due to close", suspended: "Suspended",
        closed: "Closed", closed_on_time: "Closed on time", closure_rate: "Closure rate",
        on_time_rate: "On-time closure rate", reworked: "Reworked", rework_rate: "Rework rate", extended: "Extended",
        extension_rate: "Extension rate", bounces: "Bounces", close_hours_p50: "Hours to close (median)",
        close_hours_p90: "Hours to close (90th pct.)", rated: "Rated", satisfied: "Satisfied",
        satisfaction: "Satisfaction" },
      address: "Address", description: "Description", categoryName: "Category", deadline: "Deadline",
      caseList: "Case list", listStates: { open: "Open", overdue: "Overdue", "": "All" }, prev: "Previous",
      next: "Next", pageOf: function (a, b, n) { return a + "–" + b + " of " + n; },
      noCases: "No cases match", holder: "Holder", overdueBy: "Overdue by", timeLeft: "Time left",
      timeline: "Timeline", noHistory: "No history", days: "d", hours: "h", minutes: "min", phone: "Phone",
      ranking: "Ranking", rankMeasure: "Measure", rankBy: "Of", byChildren: "Areas within", byWorkers: "Workers",
      target: "Target", meets: "meets", misses: "below target", rank: "#", name: "Name", value: "Value",
      ratio: "Num./den.", noTarget: "No target for this measure", noRanking: "Nothing to rank",
      exports: "Export", exportMeasures: "Measures", exportCases: "Case list", csv: "CSV", xlsx: "Excel",
      geojson: "GeoJSON", receivedAxis: "Received (left axis)", rateAxis: "Closure rate (right axis)",
      reasons: { overdue: "past the deadline" },
      series: "Last 12 months", colon: ": ", slash: "/", open_: " (", close_: ")",
      actors: { system: "System", resident: "Resident", reporter: "Resident", dispatcher: "Dispatcher", worker: "Grid worker",
        department: "Department", verifier: "Verifier", leader: "Leader", manager: "Grid manager", admin: "Administrator",
        integration: "Integration", planner: "Planner", approver: "Approver" },
      staffRoles: { grid_head: "Grid head", fulltime_worker: "Full-time grid worker", parttime_worker: "Part-time grid worker",
        police: "Community police officer", building_head: "Building head", volunteer: "Volunteer",
        community_secretary: "Community party secretary", community_director: "Community director" }
    }
  };

  function isoDay(d) { var z = new Date(d.getTime() - d.getTimezoneOffset() * 60000); return z.toISOString().slice(0, 10); }
  function dayStart(value) { return new Date(value + "T00:00:00").toISOString(); }
  function svg(tag, attrs, text) {
    var node = document.createElementNS(SVGNS, tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined) { node.textContent = String(text); }
    return node;
  }

  var Page = {
    init: function (map, config) {
      var core = this.core = new GM.Core(map, config, "overview");
      this.map = map;
      this.t = Object.assign({}, core.t, TEXT[core.lang]);
      this.mode = "state";
      this.choro = null;
      this.rows = [];
      this.heatPoints = [];
      this.loaded = {};  // what each part of the page was last fetched for (Apply refetches only what changed)
      this.fetches = { cases: 0, choropleth: 0, measures: 0, series: 0, ranking: 0 };
      var self = this;
      // case markers above the area labels (450) and outlines (400), below the cluster icons (600)
      map.createPane("gmCases").style.zIndex = 590;
      map.createPane("gmSelection").style.zIndex = 420;
      map.getPane("gmSelection").style.pointerEvents = "none";
      this.areas = new GM.AreaLayers(core, {
        style: function (f) { return self.areaStyle(f); },
        each: function (feature, lyr) {
          lyr.bindTooltip(function () { return self.areaTip(feature.properties); }, { sticky: true, className: "gm-tooltip" });
          lyr.on("click", function (ev) { L.DomEvent.stopPropagation(ev); self.select(feature.properties.code, true); });
        }
      });
      this.cluster = L.markerClusterGroup({ chunkedLoading: true, maxClusterRadius: 50,
        iconCreateFunction: function (c) { return self.clusterIcon(c); } });
      this.serverLayer = L.layerGroup();  // the server's clusters, when there are too many points to send
      this.caseLayer = L.layerGroup([this.cluster, this.serverLayer]);
      this.pointLimit = POINT_LIMIT;
      this.heat = L.heatLayer([], { radius: 18, blur: 15, maxZoom: 16 });
      var control = this.control = L.control.layers(null, null, { collapsed: false, position: "topright" }).addTo(map);
      GM.LEVELS.forEach(function (level) { control.addOverlay(self.areas.levels[level].layer, self.t.levels[level]); });
      control.addOverlay(this.caseLayer, this.t.cases);
      control.addOverlay(this.heat, this.t.heat);
      ["district", "subdistrict"].forEach(function (l) { self.areas.levels[l].layer.addTo(map); });
      this.caseLayer.addTo(map);
      map.on("moveend", function () { if (self.serverMode) { self.loadView(); } });
      // leaflet-heat redraws on setLatLngs even when removed from the map (and then fails on its missing map):
      // its points are handed over only while it is shown
      map.on("overlayadd", function (e) {
        if (e.layer === self.heat) { self.heat.setLatLngs(self.heatPoints); self.core.mark("gmHeat", self.heatPoints.length); }
      });
      this.buildPanel();
      this.legend = L.control({ position: "bottomright" });
      this.legend.onAdd = function () { self.legendBox = el("div", "gm-legend"); return self.legendBox; };
      this.legend.addTo(map);
      this.drawLegend();
      new GM.SearchBox(core, function (item) { self.pick(item); });
      this.areas.start({ paddingTopLeft: this.panelPadding() });
      this.loadCases();
    },

    /* the panel covers the map's left: fit things to the rest (on a narrow screen the panel is above the map) */
    panelPadding: function () {
      var panel = document.getElementById("gm-panel"), box = this.map.getContainer().getBoundingClientRect();
      if (!panel || !panel.offsetWidth) { return [10, 10]; }
      var r = panel.getBoundingClientRect();
      if (r.right > box.width * 0.6) { return [10, 10]; }
      return [Math.round(r.right - box.left + 10), 10];
    },

    /* ------------------------------------------------------------------------------------------- the panel */
    buildPanel: function () {
      var t = this.t, body = document.getElementById("gm-body"), self = this;
      var box = el("details", "gm-filters");
      box.open = true;
      box.appendChild(el("summary", null, t.filters));
      var form = this.form = el("form", "gm-form");
      form.addEventListener("submit", function (e) { e.preventDefault(); self.applyFilters(); });
      var today = new Date(), since = new Date(today.getTime() - 30 * 86400000), until = new Date(today.getTime() + 86400000);
      var period = el("div", "gm-field");
      period.appendChild(el("label", null, t.period));
      this.since = el("input"); this.since.type = "date"; this.since.name = "since"; this.since.value = isoDay(since);
      this.until = el("input"); this.until.type = "date"; this.until.name = "until"; this.until.value = isoDay(until);
      this.since.setAttribute("aria-label", t.period + " " + t.from);
      this.until.setAttribute("aria-label", t.period + " " + t.to);
      var span = el("div", "gm-period");
      span.appendChild(this.since); span.appendChild(el("span", null, "–")); span.appendChild(this.until);
      period.appendChild(span);
      form.appendChild(period);
      this.category = this.dropdown(form, "category", t.category, [["", t.all]]);
      this.state = this.dropdown(form, "state", t.state, [["", t.all], ["open", t.states.open], ["overdue", t.states.overdue]]
        .concat(Object.keys(t.states).filter(function (s) { return s !== "open" && s !== "overdue"; })
          .map(function (s) { return [s, t.states[s]]; })));
      this.source = this.dropdown(form, "source", t.source, [["", t.all]].concat(Object.keys(t.sources).map(function (s) { return [s, t.sources[s]]; })));
      this.colour = this.dropdown(form, "colour", t.colourBy, [["state", t.byState], ["clock", t.byClock]]);
      this.measure = this.dropdown(form, "measure", t.choropleth, [["", t.none]].concat(MEASURES.map(function (m) { return [m, t.measureNames[m]]; })));
      this.measureLevel = this.dropdown(form, "measure_level", t.per, ["subdistrict", "community", "grid"].map(function (l) { return [l, t.levels[l]]; }));
      this.measureLevel.value = "community";
      var apply = el("button", "gm-apply", t.apply);
      apply.type = "submit";
      form.appendChild(apply);
      box.appendChild(form);
      body.appendChild(box);
      body.appendChild(el("div", "gm-hint", t.hint));
      var crumbs = this.crumbs = el("nav", "gm-crumbs");
      body.appendChild(crumbs);
      var detail = this.detail = el("div", "gm-detail");
      detail.id = "gm-detail";
      detail.hidden = true;
      body.appendChild(detail);
      this.categories = [];
      this.core.get("categories").then(function (cats) {
        self.categories = cats;
        self.fillCategories(self.category);
        if (self.listCategory) { self.fillCategories(self.listCategory); }
      }).catch(function (err) { self.core.fail(err); });
    },

    fillCategories: function (select) {
      var groups = {}, t = this.t;
      this.categories.forEach(function (c) { (groups[c.major_class] = groups[c.major_class] || []).push(c); });
      Object.keys(groups).forEach(function (major) {
        var g = el("optgroup"); g.label = major;
        option(g, groups[major].map(function (c) { return c.code; }).join(","), major + " · " + t.all);
        groups[major].forEach(function (c) { option(g, c.code, c.name); });
        select.appendChild(g);
      });
    },

    dropdown: function (form, name, label, options) {
      var field = el("div", "gm-field"), s = el("select"), id = "gm-f-" + name;
      s.name = name; s.id = id;
      var lab = el("label", null, label);
      lab.htmlFor = id;
      field.appendChild(lab);
      options.forEach(function (o) { option(s, o[0], o[1]); });
      field.appendChild(s);
      form.appendChild(field);
      return s;
    },

    period: function () {
      var q = [];
      if (this.since.value) { q.push("since=" + encodeURIComponent(dayStart(this.since.value))); }
      if (this.until.value) { q.push("until=" + encodeURIComponent(dayStart(this.until.value))); }
      return q;
    },

    /* Apply: each part is fetched again only when what it depends on changed — the case points on the case
     * filters, the choropleth on its measure, level and period, the selected area's measures and ranking on the
     * period; the 12-month series never (it depends on the area only) */
    applyFilters: function () {
      var modeChanged = this.mode !== this.colour.value;
      this.mode = this.colour.value;
      if (this.caseQuery() !== this.loaded.cases) { this.loadCases(); } else if (modeChanged) {
        if (this.serverMode && this.serverClusters) { this.drawServerClusters(this.serverClusters); } else { this.drawCases(); }
      }
      if (this.choroKey() !== this.loaded.choropleth) { this.loadChoropleth(); }
      if (this.selected && this.measureKey(this.selected) !== this.loaded.measures) { this.loadMeasures(this.selected); }
      if (this.selected && this.rankBox && this.rankKey() !== this.loaded.ranking) { this.loadRanking(); }
      this.updateExports();
      this.core.mark("gmApplied", (Number(document.body.dataset.gmApplied) || 0) + 1);
    },

    /* ------------------------------------------------------------------------------------------------ cases */
    caseQuery: function () {
      var q = this.period();
      if (this.category && this.category.value) { q.push("category=" + encodeURIComponent(this.category.value)); }
      if (this.state && this.state.value) { q.push("state=" + encodeURIComponent(this.state.value)); }
      if (this.source && this.source.value) { q.push("source=" + encodeURIComponent(this.source.value)); }
      return q.join("&");
    },

    /* the case points of the filters, all at once when there are at most `pointLimit`; otherwise the view's:
     * grouped by the server per zoom (GET map/cases/clusters), or the points themselves when zoomed in on few */
    loadCases: function () {
      var self = this, query = this.caseQuery();
      var seq = this.caseSeq = (this.caseSeq || 0) + 1;
      this.loaded.cases = query;
      this.fetches.cases += 1;
      this.viewKey = null;
      // the view's clusters asked beside the points, not after them: when there are more cases than the limit
      // (a province's month, a district's at 10 M cases) they are what is drawn, and asking for them only once
      // the points' answer said so cost the first screen a round trip; fewer, they are dropped (few cases: a
      // cheap answer). Only for a view already fitted and zoomed out (zoomed in, the view's points come first)
      var early = this.areas.fitted && Math.round(this.map.getZoom()) < POINTS_FROM_ZOOM ? this.askClusters(query) : null;
      // all or none: more than the limit, the server says so without sending any (the view's clusters follow)
      return this.core.get("map/cases?" + query + (query ? "&" : "") + "limit=" + this.pointLimit + "&all_or_none=true").then(function (res) {
        if (seq !== self.caseSeq) { return; }
        self.serverMode = !!res.truncated;
        self.viewKey = null;
        // the clusters are of the first view fitted, not of the map's default one (a count answered first)
        if (self.serverMode) { return self.areas.fit.then(function () { if (seq === self.caseSeq) { return self.loadView(early); } }); }
        self.serverLayer.clearLayers();
        self.rows = res.rows;
        self.drawCases();
      }).catch(function (err) { if (seq === self.caseSeq) { self.loaded.cases = null; } self.core.fail(err); });
    },

    /* the server's clusters of the view (the box shown and a quarter around it, at its zoom) for the case filters */
    viewAsk: function (query) {
      var map = this.map, zoom = Math.round(map.getZoom());
      var box = this.core.bboxOf(map.getBounds().pad(0.25));
      return { key: query + "|" + zoom + "|" + box, zoom: zoom, q: (query ? query + "&" : "") + "bbox=" + box };
    },

    askClusters: function (query) {
      var ask = this.viewAsk(query);
      ask.clusters = this.core.get("map/cases/clusters?" + ask.q + "&zoom=" + Math.max(3, Math.min(20, ask.zoom)));
      ask.clusters.catch(function () { return null; });  // a failure is reported where it is used
      return ask;
    },

    /* the cases of the view: its points when zoomed in on few, else the server's clusters (`early`: those asked
     * already for this view, see loadCases) */
    loadView: function (early) {
      var self = this, query = this.caseQuery(), ask = this.viewAsk(query), key = ask.key, zoom = ask.zoom;
      if (key === this.viewKey) { return Promise.resolve(); }
      this.viewKey = key;
      var seq = this.caseSeq, q = ask.q;
      var points = zoom >= POINTS_FROM_ZOOM
        ? this.core.get("map/cases?" + q + "&limit=" + this.pointLimit + "&all_or_none=true") : Promise.resolve({ truncated: true });
      return points.then(function (res) {
        if (seq !== self.caseSeq || key !== self.viewKey) { return; }
        if (!res.truncated) {
          self.serverLayer.clearLayers();
          self.rows = res.rows;
          self.drawCases();
          self.core.mark("gmCaseView", "points:" + res.rows.length);
          return;
        }
        zoom = Math.max(3, Math.min(20, zoom));
        var clusters = early && early.key === key ? early.clusters : self.core.get("map/cases/clusters?" + q + "&zoom=" + zoom);
        return clusters.then(function (fc) {
          if (seq !== self.caseSeq || key !== self.viewKey) { return; }
          self.rows = [];
          self.cluster.clearLayers();
          self.drawServerClusters(fc);
        });
      }).catch(function (err) { self.viewKey = null; self.core.fail(err); });
    },

    /* the server's groups, in the legend's colours (worst state, or worst deadline), sized by their count */
    drawServerClusters: function (fc) {
      var self = this, clock = this.mode === "clock";
      this.serverClusters = fc;
      this.serverLayer.clearLayers();
      var heat = [];
      fc.features.forEach(function (f) {
        var p = f.properties, c = f.geometry.coordinates, at = self.core.point(c);
        var worst = clock ? DEADLINE_CLOCK[p.worst_deadline] || "none" : p.worst_state || "closed";
        var colour = clock ? GM.CLOCK_COLOURS[worst] : (GM.STATE_COLOURS[worst] || "#9e9e9e");
        var size = p.count < 10 ? 32 : p.count < 100 ? 38 : p.count < 1000 ? 44 : 50;
        var inner = el("div", "gm-cluster-inner");
        inner.style.background = colour;
        inner.style.color = GM.textOn(colour);
        inner.appendChild(el("span", null, p.count.toLocaleString()));
        var m = L.marker(at, { icon: L.divIcon({ html: inner, className: "marker-cluster gm-cluster gm-cluster-" + worst,
          iconSize: L.point(size, size) }), keyboard: false });
        m.on("click", function () {
          if (p.case_id) { self.openCase(p.case_id, m); return; }
          var b = p.bbox;
          self.map.fitBounds(L.latLngBounds(self.core.point([b[0], b[1]]), self.core.point([b[2], b[3]])).pad(0.1));
        });
        self.serverLayer.addLayer(m);
        heat.push([at.lat, at.lng, Math.min(1, 0.2 + p.count / 50)]);
      });
      this.heatPoints = heat;
      if (this.map.hasLayer(this.heat)) { this.heat.setLatLngs(this.heatPoints); }
      this.core.mark("gmCases", fc.total);
      this.core.mark("gmCaseView", "clusters:" + fc.features.length + ":" + fc.total);
      this.core.mark("gmCaseMode", this.mode);
      this.drawLegend();
    },

    caseColour: function (r) {
      return this.mode === "clock" ? GM.CLOCK_COLOURS[r[4] || "none"] : (GM.STATE_COLOURS[r[3]] || "#000");
    },

    drawCases: function () {
      var self = this;
      this.cluster.clearLayers();
      var markers = this.rows.map(function (r) {
        var m = L.circleMarker(self.core.point([r[1], r[2]]), { radius: 6, color: "#fff", weight: 1,
          fillColor: self.caseColour(r), fillOpacity: 0.9, pane: "gmCases" });
        m.gmCase = r;
        m.on("click", function () { self.openCase(r[0], m); });
        return m;
      });
      this.cluster.addLayers(markers);
      this.heatPoints = this.rows.map(function (r) { var p = self.core.point([r[1], r[2]]); return [p.lat, p.lng, 0.6]; });
      if (this.map.hasLayer(this.heat)) { this.heat.setLatLngs(this.heatPoints); }
      this.core.mark("gmCases", markers.length);
      this.core.mark("gmCaseMode", this.mode);
      this.drawLegend();
    },

    /* a cluster in its worst member's colour (the legend's colours), its size in the number */
    clusterIcon: function (cluster) {
      var children = cluster.getAllChildMarkers(), n = children.length, clock = this.mode === "clock";
      var rank = clock ? CLOCK_RANK : STATE_RANK, best = rank.length;
      children.forEach(function (m) {
        var k = rank.indexOf(clock ? (m.gmCase[4] || "none") : m.gmCase[3]);
        if (k >= 0 && k < best) { best = k; }
      });
      var worst = rank[Math.min(best, rank.length - 1)];
      var colour = clock ? GM.CLOCK_COLOURS[worst] : (GM.STATE_COLOURS[worst] || "#9e9e9e");
      var size = n < 10 ? 32 : n < 100 ? 38 : 44;
      var inner = el("div", "gm-cluster-inner");
      inner.style.background = colour;
      inner.style.color = GM.textOn(colour);
      inner.appendChild(el("span", null, n));
      return L.divIcon({ html: inner, className: "marker-cluster gm-cluster gm-cluster-" + worst, iconSize: L.point(size, size) });
    },

    caseTable: function (c) {
      var t = this.t, table = el("table");
      row(table, t.number, c.number);
      row(table, t.state, c.state_zh && this.core.lang === "zh" ? c.state_zh : (t.states[c.state] || c.state));
      row(table, t.categoryName, c.category_name);
      var chain = (c.routing && c.routing.chain) || [], where = chain.filter(function (a) { return a.level === "grid"; })[0];
      row(table, t.grid, (where && where.name) || c.grid_name || c.grid_code);
      if (c.holder && c.holder.name) {
        row(table, t.holder, c.holder.name + (c.holder.phone ? " · " + c.holder.phone : ""));
      }
      row(table, t.reportedAt, GM.localTime(c.reported_at));
      if (c.overdue_by_s) {
        row(table, t.overdueBy, this.duration(c.overdue_by_s)).className = "gm-bad";
      } else if (c.time_left_s !== undefined && c.time_left_s !== null) {
        row(table, t.timeLeft, this.duration(c.time_left_s) + " · " + GM.localTime(c.deadline || c.due_at));
      } else if (c.clock) {
        row(table, t.deadline, t.clocks[c.clock.colour] + " · " + GM.localTime(c.due_at));
      }
      if (c.address) { row(table, t.address, c.address); }
      return table;
    },

    duration: function (s) {
      var t = this.t, d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
      if (d) { return d + t.days + (h ? h + t.hours : ""); }
      if (h) { return h + t.hours + (m ? m + t.minutes : ""); }
      return Math.max(m, 1) + t.minutes;
    },

    openCase: function (id, marker) {
      var self = this;
      this.core.get("cases/" + id).then(function (c) {
        var box = el("div", "gm-case");
        box.dataset.caseId = String(c.id);
        box.appendChild(el("strong", "gm-case-title", c.title));
        box.appendChild(self.caseTable(c));
        if (c.description) { box.appendChild(el("p", "gm-desc", c.description)); }
        marker.bindPopup(box, { maxWidth: 320 }).openPopup();
        self.core.mark("gmOpenCase", c.id);
      }).catch(function (err) { self.core.fail(err); });
    },

    /* ------------------------------------------------------------------------------------------ choropleth */
    areaStyle: function (f) {
      var base = GM.STYLE[f.properties.level], c = this.choro;
      var style = Object.assign({}, base);
      if (this.selected === f.properties.code) { style.weight = (base.weight || 1) + 2.5; style.color = "#ff6f00"; }
      if (c && c.level === f.properties.level) {
        var v = c.values[f.properties.code], k = this.classOf(v);
        style.fill = true;
        style.fillOpacity = k < 0 ? 0.15 : 0.65;
        style.fillColor = k < 0 ? "#cfd8dc" : c.classes[k].colour;
      }
      return style;
    },

    areaTip: function (p) {
      var tip = el("span", "gm-tip"), c = this.choro;
      tip.appendChild(el("b", null, p.name));
      tip.appendChild(el("span", null, " " + p.code));
      if (c && c.level === p.level) {
        var v = c.values[p.code];
        tip.appendChild(el("br"));
        tip.appendChild(el("span", "gm-tip-value", this.t.measureNames[c.measure] + this.t.colon +
          (v === null || v === undefined ? this.t.noValue : this.format(c.measure, v))));
      }
      return tip;
    },

    format: function (measure, v) {
      if (v === null || v === undefined) { return "—"; }
      if (RATES[measure]) { return GM.percent(v); }
      if (HOURS[measure]) { return (Math.round(v * 10) / 10).toLocaleString(); }
      return Math.round(v).toLocaleString();
    },

    classOf: function (v) {
      if (v === null || v === undefined || !this.choro) { return -1; }
      var cl = this.choro.classes;
      for (var i = 0; i < cl.length; i += 1) { if (cl[i].has(v)) { return i; } }
      return cl.length - 1;
    },

    /* the classes of a measure's values, worst first, each {colour, has(v), label}:
     * a rate with a target line — fixed limits around the target, so "good" is green whatever the spread
     * (many areas at 100 % stay green); any other measure — quantiles of the distinct values (monotone, no empty
     * class), red for what is bad where lower is better, a neutral ramp otherwise */
    classesFor: function (measure, values) {
      var self = this, fmt = function (v) { return self.format(measure, v); }, target = TARGETS[measure];
      var classes = [];
      if (target !== undefined) {
        if (!LOWER_BETTER[measure]) {
          var top = target + (1 - target) / 2, lims = [target - 0.15, target - 0.05, target, top];
          classes.push({ has: function (v) { return v < lims[0]; }, label: "< " + fmt(lims[0]) });
          for (var i = 1; i < lims.length; i += 1) {
            (function (lo, hi) { classes.push({ has: function (v) { return v >= lo && v < hi; }, label: fmt(lo) + " – " + fmt(hi) }); }(lims[i - 1], lims[i]));
          }
          classes.push({ has: function (v) { return v >= top; }, label: "≥ " + fmt(top) });
          classes[3].label += this.t.open_ + this.t.target + this.t.close_;
        } else {
          var ups = [target / 2, target, target * 2, target * 4];
          classes.push({ has: function (v) { return v > ups[3]; }, label: "> " + fmt(ups[3]) });
          for (var j = 3; j > 0; j -= 1) {
            (function (lo, hi) { classes.push({ has: function (v) { return v > lo && v <= hi; }, label: fmt(lo) + " – " + fmt(hi) }); }(ups[j - 1], ups[j]));
          }
          classes.push({ has: function (v) { return v <= ups[0]; }, label: "≤ " + fmt(ups[0]) });
          classes[3].label += this.t.open_ + this.t.target + this.t.close_;
        }
        classes.forEach(function (c, k) { c.colour = BAD_GOOD[k]; });
        return classes;
      }
      var distinct = values.filter(function (v, k, all) { return k === 0 || v !== all[k - 1]; });
      var breaks = [];
      [0.2, 0.4, 0.6, 0.8].forEach(function (p) {
        if (!distinct.length) { return; }
        var b = distinct[Math.floor(p * (distinct.length - 1))];
        if (!breaks.length || b > breaks[breaks.length - 1]) { breaks.push(b); }
      });
      if (breaks.length && breaks[breaks.length - 1] >= distinct[distinct.length - 1]) { breaks.pop(); }
      var lo = null;
      breaks.forEach(function (b) {
        (function (l, h) { classes.push({ has: function (v) { return (l === null || v > l) && v <= h; }, label: (l === null ? "≤ " : fmt(l) + " – ") + fmt(h) }); }(lo, b));
        lo = b;
      });
      (function (l) { classes.push({ has: function (v) { return l === null || v > l; }, label: l === null ? (distinct.length ? fmt(distinct[0]) : self.t.noValue) : "> " + fmt(l) }); }(lo));
      var n = classes.length, ramp = LOWER_BETTER[measure] ? BAD_GOOD.slice().reverse() : NEUTRAL;
      classes.forEach(function (c, k) { c.colour = ramp[n === 1 ? 2 : Math.round(k * 4 / (n - 1))]; });
      if (LOWER_BETTER[measure]) { classes.reverse(); }  // worst first, as the rates are
      return classes;
    },

    choroKey: function () {
      return this.measure.value ? [this.measure.value, this.measureLevel.value].concat(this.period()).join("|") : "";
    },

    loadChoropleth: function () {
      var self = this, measure = this.measure.value, level = this.measureLevel.value, key = this.choroKey();
      var previous = this.choro;
      this.loaded.choropleth = key;
      if (!measure) {
        this.choro = null;
        if (previous) { this.areas.levels[previous.level].restyle(); }
        this.core.mark("gmChoropleth", "none");
        this.drawLegend();
        return Promise.resolve();
      }
      this.fetches.choropleth += 1;
      var q = ["by=" + level].concat(this.period());
      return this.core.get("measures?" + q.join("&")).then(function (res) {
        var values = {}, list = [];
        res.items.forEach(function (r) {
          if (r.key === "*") { return; }
          values[r.key] = r[measure];
          if (r[measure] !== null && r[measure] !== undefined) { list.push(r[measure]); }
        });
        list.sort(function (a, b) { return a - b; });
        self.choro = { measure: measure, level: level, values: values, classes: self.classesFor(measure, list),
          min: list[0], max: list[list.length - 1], count: list.length };
        if (previous && previous.level !== level) { self.areas.levels[previous.level].restyle(); }
        var lv = self.areas.levels[level];
        if (!self.map.hasLayer(lv.layer)) { lv.layer.addTo(self.map); }
        lv.restyle();
        self.core.mark("gmChoropleth", measure + ":" + level + ":" + list.length);
        self.drawLegend();
        return self.areas.refresh();
      }).catch(function (err) { self.loaded.choropleth = null; self.core.fail(err); });
    },

    drawLegend: function () {
      var box = this.legendBox, t = this.t, self = this;
      if (!box) { return; }
      box.replaceChildren();
      box.appendChild(el("strong", null, t.caseLegend + " · " + (this.mode === "clock" ? t.byClock : t.byState)));
      var items = this.mode === "clock" ? ["red", "yellow", "green", "none"] : ["rework", "reported", "filed", "dispatched", "accepted", "handled", "suspended", "closed"];
      items.forEach(function (k) {
        var item = el("div", "gm-legend-item"), sw = el("span", "gm-swatch");
        sw.style.background = self.mode === "clock" ? GM.CLOCK_COLOURS[k] : GM.STATE_COLOURS[k];
        item.appendChild(sw);
        item.appendChild(el("span", null, self.mode === "clock" ? t.clocks[k] : t.states[k]));
        box.appendChild(item);
      });
      var c = this.choro;
      if (c) {
        box.appendChild(el("strong", "gm-legend-choro", t.measureNames[c.measure] + " · " + t.levels[c.level]));
        c.classes.slice().reverse().forEach(function (cl) {  // best on top
          var item = el("div", "gm-legend-item"), sw = el("span", "gm-swatch gm-swatch-square");
          sw.style.background = cl.colour;
          item.appendChild(sw);
          item.appendChild(el("span", null, cl.label));
          box.appendChild(item);
        });
        var nodata = el("div", "gm-legend-item"), sw2 = el("span", "gm-swatch gm-swatch-square");
        sw2.style.background = "#cfd8dc";
        nodata.appendChild(sw2); nodata.appendChild(el("span", null, t.noValue));
        box.appendChild(nodata);
      }
    },

    /* ---------------------------------------------------------------------------------- drill-down, detail */
    select: function (code, fit) {
      var self = this, previous = this.selected;
      this.selected = code;
      if (this.casePin && previous !== code) { this.map.removeLayer(this.casePin); this.casePin = null; }
      GM.LEVELS.forEach(function (l) {
        var lv = self.areas.levels[l];
        [previous, code].forEach(function (c) { if (c && lv.byCode[c]) { lv.byCode[c].setStyle(self.areaStyle(lv.byCode[c].feature)); } });
      });
      return this.core.get("areas/" + encodeURIComponent(code)).then(function (f) {
        if (self.selected !== code) { return; }
        var p = f.properties;
        self.showArea(p);
        var next = NEXT[p.level];
        if (next && !self.map.hasLayer(self.areas.levels[next].layer)) { self.areas.levels[next].layer.addTo(self.map); }
        self.outline(f);
        if (fit && f.geometry) {
          var b = L.geoJSON(f, { coordsToLatLng: self.core.toLatLng }).getBounds();
          if (b.isValid()) { self.map.fitBounds(b, { maxZoom: 18, paddingTopLeft: self.panelPadding(), paddingBottomRight: [10, 10] }); }
        }
        self.loadMeasures(code);
        self.core.mark("gmSelected", code);
        return self.areas.refresh();
      }).catch(function (err) { self.core.fail(err); });
    },

    /* the selected area outlined whatever levels are shown */
    outline: function (f) {
      if (this.selectionLayer) { this.map.removeLayer(this.selectionLayer); this.selectionLayer = null; }
      if (!f.geometry) { return; }
      this.selectionLayer = L.geoJSON(f, { coordsToLatLng: this.core.toLatLng, interactive: false, pane: "gmSelection",
        style: { color: "#ff6f00", weight: 3.5, opacity: 0.95, fill: false, dashArray: null } }).addTo(this.map);
    },

    showArea: function (p) {
      var t = this.t, box = this.detail, self = this;
      box.replaceChildren();
      box.hidden = false;
      box.dataset.code = p.code;
      box.dataset.level = p.level;
      this.area = p;
      this.crumbs.replaceChildren();
      (p.chain || []).concat([{ code: p.code, name: p.name, level: p.level }]).forEach(function (a, i, all) {
        if (i) { self.crumbs.appendChild(el("span", "gm-crumb-sep", " › ")); }
        var link = el(i === all.length - 1 ? "span" : "a", "gm-crumb", a.name);
        if (i < all.length - 1) { link.href = "#"; link.addEventListener("click", function (e) { e.preventDefault(); self.select(a.code, true); }); }
        self.crumbs.appendChild(link);
      });
      box.appendChild(el("h2", "gm-area-name", p.name));
      var info = el("table", "gm-info");
      row(info, t.code, p.code);
      row(info, t.level, t.levels[p.level] || p.level);
      row(info, t.households, (p.households || 0).toLocaleString());
      row(info, t.population, (p.population || 0).toLocaleString());
      row(info, t.area, p.area_km2);
      box.appendChild(info);
      var inScope = p.cases !== undefined || p.branch !== undefined || p.staff !== undefined;
      var orgHead = el("h3", "gm-org-head", t.orgs[p.level] || t.orgs.grid);
      box.appendChild(orgHead);
      if (p.branch) {
        var b = el("table", "gm-branch");
        row(b, "", p.branch.name);
        row(b, t.secretary, p.branch.secretary);
        row(b, t.members, p.branch.member_count);
        row(b, t.reporting, p.branch.reporting_member_count);
        box.appendChild(b);
      } else { box.appendChild(el("p", null, t.none)); }
      var staff = p.staff || [];
      if (p.level === "community") {
        // the community's leaders: its party committee's secretary (社区书记) and the director (社区主任) where one
        // is registered among its staff
        box.appendChild(el("h3", "gm-leaders-head", t.leaders));
        var lead = el("table", "gm-leaders"), director = staff.filter(function (s) { return s.role === "community_director"; });
        var secretary = staff.filter(function (s) { return s.role === "community_secretary"; });
        row(lead, t.communitySecretary, secretary.length ? secretary.map(function (s) { return s.name + (s.phone ? " · " + s.phone : ""); }).join("、")
          : (p.branch && p.branch.secretary) || t.notRegistered);
        row(lead, t.communityDirector, director.length ? director.map(function (s) { return s.name + (s.phone ? " · " + s.phone : ""); }).join("、") : t.notRegistered);
        box.appendChild(lead);
        staff = staff.filter(function (s) { return s.role !== "community_director" && s.role !== "community_secretary"; });
      }
      if (p.level !== "community" || staff.length) {
        box.appendChild(el("h3", null, t.staff));
        var list = el("ul", "gm-staff");
        staff.forEach(function (s) {
          list.appendChild(el("li", null, (self.core.lang === "zh" ? s.role_zh : (t.staffRoles && t.staffRoles[s.role]) || s.role) + " · " + s.name + " · " + (s.phone || "")));
        });
        if (!staff.length) { list.appendChild(el("li", null, t.none)); }
        box.appendChild(list);
      }
      box.appendChild(el("h3", null, t.caseCounts));
      var c = el("table", "gm-cases"), counts = p.cases || {};
      row(c, t.total, counts.total);
      row(c, t.open, this.countLink(counts.open, "open"));
      row(c, t.overdue, this.countLink(counts.overdue, "overdue")).className = counts.overdue ? "gm-bad" : "";
      row(c, t.closed, counts.closed);
      box.appendChild(c);
      box.appendChild(el("h3", null, t.places));
      var pl = el("table", "gm-places"), places = p.places || {};
      ["compound", "building", "service_centre"].forEach(function (k) { row(pl, t.placeKinds[k], places[k] || 0); });
      box.appendChild(pl);
      this.measureBox = el("div", "gm-measures");
      box.appendChild(this.measureBox);
      this.loaded.measures = null;
      this.rankBox = null;
      this.listBox = null;
      this.exportBox = null;
      if (inScope && this.core.config.measures && this.mine(p.code) && NEXT[p.level]) { this.buildRanking(box, p); }
      if (inScope && this.mine(p.code)) { this.buildCaseList(box, p); this.buildExports(box, p); }
      if ((p.children || []).length) {
        box.appendChild(el("h3", null, t.children + t.open_ + p.children.length + t.close_));
        var kids = el("ul", "gm-children");
        p.children.forEach(function (ch) {
          var li = el("li"), a = el("a", null, ch.name + " " + ch.code);
          a.href = "#";
          a.addEventListener("click", function (e) { e.preventDefault(); self.select(ch.code, true); });
          li.appendChild(a);
          kids.appendChild(li);
        });
        box.appendChild(kids);
      }
    },

    mine: function (code) {
      var config = this.core.config;
      return config.everywhere || (config.areas || []).some(function (a) { return code.indexOf(a) === 0; });
    },

    countLink: function (n, state) {
      var self = this;
      if (!n || !this.mine(this.area.code)) { return n; }
      var a = el("a", "gm-count-link", n);
      a.href = "#";
      a.dataset.state = state;
      a.addEventListener("click", function (e) {
        e.preventDefault();
        if (!self.listState) { return; }
        self.listState.value = state;
        self.listCursors = [null];
        self.loadList();
        self.listBox.scrollIntoView({ block: "start", behavior: "smooth" });
      });
      return a;
    },

    /* ------------------------------------------------------------------------------- the area's case list */
    buildCaseList: function (box, p) {
      var t = this.t, self = this;
      var section = this.listBox = el("section", "gm-case-section");
      section.id = "gm-case-list";
      section.appendChild(el("h3", null, t.caseList));
      var controls = el("div", "gm-list-controls");
      this.listState = el("select", "gm-list-state");
      this.listState.setAttribute("aria-label", t.caseList + " · " + t.state);
      ["open", "overdue", ""].forEach(function (s) { option(self.listState, s, t.listStates[s]); });
      this.listCategory = el("select", "gm-list-category");
      this.listCategory.setAttribute("aria-label", t.caseList + " · " + t.category);
      option(this.listCategory, "", t.category + " · " + t.all);
      if (this.categories.length) { this.fillCategories(this.listCategory); }
      [this.listState, this.listCategory].forEach(function (s) {
        s.addEventListener("change", function () { self.listCursors = [null]; self.loadList(); self.updateExports(); });
        controls.appendChild(s);
      });
      section.appendChild(controls);
      this.listItems = el("ol", "gm-case-list");
      section.appendChild(this.listItems);
      var pager = el("div", "gm-pager");
      this.prevButton = el("button", "gm-page-prev", t.prev); this.prevButton.type = "button";
      this.nextButton = el("button", "gm-page-next", t.next); this.nextButton.type = "button";
      this.pageInfo = el("span", "gm-page-info");
      // paged by cursor: forward with the page's next_cursor, back by the cursors of the pages before
      this.prevButton.addEventListener("click", function () {
        if (self.listCursors.length > 1) { self.listCursors.pop(); self.loadList(); }
      });
      this.nextButton.addEventListener("click", function () {
        if (self.listNext) { self.listCursors.push(self.listNext); self.listNext = null; self.loadList(); }
      });
      pager.appendChild(this.prevButton); pager.appendChild(this.pageInfo); pager.appendChild(this.nextButton);
      section.appendChild(pager);
      box.appendChild(section);
      this.listCursors = [null];  // where each page shown so far starts
      this.loadList();
    },

    listQuery: function (extra) {
      var q = ["area=" + encodeURIComponent(this.area.code)];
      if (this.listState.value) { q.push("state=" + this.listState.value); }
      if (this.listCategory.value) { q.push("category=" + encodeURIComponent(this.listCategory.value)); }
      return q.concat(extra || []).join("&");
    },

    loadList: function () {
      var self = this, code = this.area.code, t = this.t, overdue = this.listState.value === "overdue";
      var seq = this.listSeq = (this.listSeq || 0) + 1;
      var cursor = this.listCursors[this.listCursors.length - 1], start = (this.listCursors.length - 1) * PAGE_SIZE;
      var q = this.listQuery(["limit=" + PAGE_SIZE].concat(cursor ? ["cursor=" + encodeURIComponent(cursor)] : []));
      // overdue: the earliest deadline (the most overdue) first; others the newest first (`order` in the words
      // every version of the list understands; a server without `sort` orders by the time reported)
      q += overdue ? "&sort=deadline&order=oldest" : "&sort=reported_at&order=newest";
      return this.core.get("cases?" + q).then(function (res) {
        if (seq !== self.listSeq || self.area.code !== code) { return; }
        var wanted = self.listCategory.value ? self.listCategory.value.split(",") : null;
        var items = res.items.filter(function (c) { return !wanted || !c.category || wanted.indexOf(c.category) >= 0; });
        self.listItems.replaceChildren();
        items.forEach(function (c) { self.listItems.appendChild(self.caseItem(c)); });
        if (!items.length) { self.listItems.appendChild(el("li", "gm-muted", t.noCases)); }
        // the total is counted on the first page only (a page after a cursor has none): the first page's is kept
        if (res.total !== null && res.total !== undefined) { self.listTotal = res.total; }
        var total = Math.max(self.listTotal || 0, start + res.items.length);
        self.listNext = res.next_cursor || null;
        self.pageInfo.textContent = total ? t.pageOf(start + 1, start + res.items.length, total) : "";
        self.prevButton.disabled = self.listCursors.length <= 1;
        self.nextButton.disabled = !self.listNext;
        self.core.mark("gmCaseList", code + ":" + (self.listState.value || "all") + ":" + total +
          (self.listCategory.value ? ":" + self.listCategory.value : ""));
      }).catch(function (err) { self.core.fail(err); });
    },

    caseItem: function (c) {
      var t = this.t, self = this, li = el("li", "gm-case-item");
      li.dataset.caseId = String(c.id);
      var head = el("button", "gm-case-head");
      head.type = "button";
      var badge = el("span", "gm-state gm-state-" + c.state, c.state_zh && this.core.lang === "zh" ? c.state_zh : (t.states[c.state] || c.state));
      head.appendChild(badge);
      head.appendChild(el("span", "gm-queue-number", c.number));
      head.appendChild(el("span", "gm-case-item-title", c.title));
      var meta = [c.category_name];
      if (c.holder && c.holder.name) { meta.push(t.holder + t.colon + c.holder.name); }
      if (c.overdue_by_s) { meta.push(t.overdueBy + " " + this.duration(c.overdue_by_s)); }
      else if (c.clock && c.clock.colour) { meta.push(t.clocks[c.clock.colour]); }
      head.appendChild(el("span", "gm-queue-meta", meta.filter(Boolean).join(" · ")));
      if (c.overdue_by_s || (c.clock && c.clock.colour === "red")) { li.classList.add("gm-case-overdue"); }
      head.addEventListener("click", function () { self.openListCase(c, li); });
      li.appendChild(head);
      return li;
    },

    /* a case of the list: framed on the map beside the panel, its detail and timeline under it */
    openListCase: function (c, li) {
      var self = this, t = this.t;
      var open = this.listItems.querySelector(".gm-case-open");
      if (open) { open.classList.remove("gm-case-open"); var old = open.querySelector(".gm-case-body"); if (old) { old.remove(); } }
      if (open === li) { return; }
      li.classList.add("gm-case-open");
      this.frameCase(c);
      var body = el("div", "gm-case-body", t.loading);
      li.appendChild(body);
      this.core.get("cases/" + c.id).then(function (full) {
        body.replaceChildren();
        body.appendChild(self.caseTable(full));
        if (full.description) { body.appendChild(el("p", "gm-desc", full.description)); }
        body.appendChild(el("h4", null, t.timeline));
        var list = el("ol", "gm-timeline");
        (full.history || []).forEach(function (e) {
          var item = el("li", "gm-timeline-item");
          item.appendChild(el("span", "gm-timeline-at", GM.localTime(e.at)));
          var what = e.action_zh && self.core.lang === "zh" ? e.action_zh : e.action, to = t.states[e.to_state];
          if (to && e.to_state !== e.from_state && to !== what) { what += " → " + to; }
          item.appendChild(el("span", "gm-timeline-what", what));
          if (e.actor) { item.appendChild(el("span", "gm-timeline-who", self.actorText(e.actor))); }
          var reason = e.detail && (e.detail.reason || e.detail.note);
          if (reason && /^[a-z_]+$/.test(String(reason))) { reason = t.reasons[reason] || null; }  // a code, not words
          if (reason) { item.appendChild(el("span", "gm-timeline-note", String(reason))); }
          list.appendChild(item);
        });
        if (!(full.history || []).length) { list.appendChild(el("li", "gm-muted", t.noHistory)); }
        body.appendChild(list);
        li.scrollIntoView({ block: "nearest" });
        self.core.mark("gmListCase", full.id + ":" + (full.history || []).length);
      }).catch(function (err) { body.replaceChildren(el("p", "gm-error", t.failed)); self.core.fail(err); });
    },

    /* "worker:12" → 网格员 12: the role in words, then who */
    actorText: function (actor) {
      var roles = this.t.actors, text = String(actor || ""), i = text.indexOf(":");
      if (i < 0) { return roles[text] || text; }
      var role = text.slice(0, i), who = text.slice(i + 1);
      return roles[role] ? roles[role] + " " + who : text;
    },

    frameCase: function (c) {
      if (c.lon === null || c.lon === undefined) { return; }
      var at = this.core.point([c.lon, c.lat]);
      this.map.fitBounds(at.toBounds(240), { paddingTopLeft: this.panelPadding(), paddingBottomRight: [10, 10], maxZoom: 17 });
      if (this.casePin) { this.map.removeLayer(this.casePin); }
      this.casePin = L.circleMarker(at, { radius: 13, color: "#d81b60", weight: 3, fill: false, pane: "gmCases",
        interactive: false }).addTo(this.map);
      this.casePin.bindTooltip(el("span", null, c.number), { permanent: true, direction: "top", offset: [0, -12] });
      this.core.mark("gmFramed", c.id);
    },

    /* ------------------------------------------------------------------------------------------- exports */
    buildExports: function (box, p) {
      var t = this.t;
      var section = this.exportBox = el("section", "gm-exports");
      section.appendChild(el("h3", null, t.exports));
      var links = this.exportLinks = {};
      var line = function (label, kinds) {
        var div = el("div", "gm-export-line");
        div.appendChild(el("span", "gm-export-label", label));
        kinds.forEach(function (k) {
          var a = el("a", "gm-export gm-export-" + k[0], k[1]);
          a.setAttribute("download", "");
          links[k[0]] = a;
          div.appendChild(a);
        });
        section.appendChild(div);
      };
      if (this.core.config.measures) { line(t.exportMeasures, [["measures-csv", t.csv], ["measures-xlsx", t.xlsx]]); }
      line(t.exportCases, [["cases-csv", t.csv], ["cases-geojson", t.geojson]]);
      box.appendChild(section);
      this.updateExports();
    },

    updateExports: function () {
      var links = this.exportLinks, p = this.area;
      if (!this.exportBox || !links || !p) { return; }
      var base = this.core.config.api_base, lang = "lang=" + this.core.lang;
      // the measures of the area's children (the area itself for a grid; a micro-grid's grid)
      var by = { district: "subdistrict", subdistrict: "community", community: "grid", grid: "grid", microgrid: "grid" }[p.level];
      var under = p.level === "microgrid" && (p.chain || []).length ? p.chain[p.chain.length - 1].code : p.code;
      var mq = ["by=" + by, "under=" + encodeURIComponent(under)].concat(this.period(), [lang]).join("&");
      if (links["measures-csv"]) { links["measures-csv"].href = base + "/measures?" + mq + "&format=csv"; }
      if (links["measures-xlsx"]) { links["measures-xlsx"].href = base + "/measures?" + mq + "&format=xlsx"; }
      var cq = this.listState ? this.listQuery() : "area=" + encodeURIComponent(p.code);
      links["cases-csv"].href = base + "/exports/cases?" + cq + "&format=csv&" + lang;
      links["cases-geojson"].href = base + "/cases?" + cq + "&format=geojson&limit=10000";
      links["cases-geojson"].setAttribute("download", "cases-" + p.code + ".geojson");
    },

    /* ------------------------------------------------------------------------------------------- ranking */
    buildRanking: function (box, p) {
      var t = this.t, self = this;
      var section = this.rankBox = el("section", "gm-ranking");
      section.id = "gm-ranking";
      section.appendChild(el("h3", null, t.ranking));
      var controls = el("div", "gm-list-controls");
      this.rankMeasure = el("select", "gm-rank-measure");
      this.rankMeasure.setAttribute("aria-label", t.ranking + " · " + t.rankMeasure);
      MEASURES.forEach(function (m) { option(self.rankMeasure, m, t.measureNames[m]); });
      this.rankMeasure.value = this.rankMeasureValue || "on_time_rate";
      this.rankBy = el("select", "gm-rank-by");
      this.rankBy.setAttribute("aria-label", t.ranking + " · " + t.rankBy);
      option(this.rankBy, "children", t.byChildren + t.open_ + t.levels[NEXT[p.level]] + t.close_);
      option(this.rankBy, "workers", t.byWorkers);
      [this.rankMeasure, this.rankBy].forEach(function (s) {
        s.addEventListener("change", function () { self.rankMeasureValue = self.rankMeasure.value; self.loadRanking(); });
        controls.appendChild(s);
      });
      section.appendChild(controls);
      this.rankChart = el("div", "gm-rank-chart");
      this.rankTable = el("div", "gm-rank-table");
      section.appendChild(this.rankChart);
      section.appendChild(this.rankTable);
      box.appendChild(section);
      this.loaded.ranking = null;
      this.loadRanking();
    },

    rankKey: function () {
      return [this.area.code, this.rankMeasure.value, this.rankBy.value].concat(this.period()).join("|");
    },

    loadRanking: function () {
      var self = this, key = this.rankKey(), code = this.area.code;
      this.loaded.ranking = key;
      this.fetches.ranking += 1;
      var q = ["measure=" + this.rankMeasure.value, "by=" + this.rankBy.value].concat(this.period()).join("&");
      return this.core.get("areas/" + encodeURIComponent(code) + "/ranking?" + q).then(function (res) {
        if (self.loaded.ranking !== key || !self.rankBox) { return; }
        self.ranking = res;
        self.rankSort = { key: "value", desc: null };
        self.drawRanking();
        self.core.mark("gmRanking", code + ":" + res.measure + ":" + res.by + ":" + res.items.length);
      }).catch(function (err) {
        if (self.loaded.ranking === key) { self.loaded.ranking = null; }
        if (err.status === 403 || err.status === 404) { self.rankChart.replaceChildren(el("p", "gm-note", self.t.noMeasures)); return; }
        self.core.fail(err);
      });
    },

    /* a bar per item (green at or beyond the target line, red short of it), the target line across */
    drawRanking: function () {
      var res = this.ranking, t = this.t, self = this, m = res.measure;
      var items = res.items.slice(0, 40);
      this.rankChart.replaceChildren();
      if (!items.length) { this.rankChart.appendChild(el("p", "gm-muted", t.noRanking)); this.drawRankTable(); return; }
      var W = 300, rowH = 16, left = 92, right = 44, top = 16, H = top + rowH * items.length + 6;
      var max = RATES[m] ? 1 : Math.max.apply(null, items.map(function (i) { return i.value || 0; }).concat([res.target || 0, 1]));
      var x = function (v) { return left + (W - left - right) * Math.max(0, v) / max; };
      var chart = svg("svg", { viewBox: "0 0 " + W + " " + H, "class": "gm-rank-svg", role: "img" });
      chart.appendChild(svg("title", {}, t.ranking + t.colon + t.measureNames[m]));
      items.forEach(function (it, k) {
        var y = top + k * rowH;
        var g = svg("g", { "class": "gm-rank-row" });
        var label = it.name || it.code || String(it.staff_id), parent = self.area.name;
        // children are usually named after their parent (六甲社区第一网格): the chart shows what tells them apart
        if (it.code && parent && label.indexOf(parent) === 0 && label.length > parent.length) { label = label.slice(parent.length); }
        g.appendChild(svg("text", { x: left - 4, y: y + 11, "class": "gm-rank-name", "text-anchor": "end" }, label.length > 9 ? label.slice(0, 8) + "…" : label));
        var cls = it.meets_target === true ? "gm-rank-good" : it.meets_target === false ? "gm-rank-bad" : "gm-rank-plain";
        if (it.value !== null) {
          g.appendChild(svg("rect", { x: left, y: y + 2, width: Math.max(1, x(it.value) - left).toFixed(1), height: rowH - 4, "class": "gm-rank-bar " + cls }));
        }
        g.appendChild(svg("text", { x: (it.value === null ? left : x(it.value)) + 3, y: y + 11, "class": "gm-rank-value" }, self.format(m, it.value)));
        var tip = svg("title", {}, label + t.colon + self.format(m, it.value));
        g.appendChild(tip);
        chart.appendChild(g);
      });
      if (res.target !== null && res.target !== undefined) {
        var tx = x(res.target).toFixed(1);
        chart.appendChild(svg("line", { x1: tx, x2: tx, y1: top - 4, y2: H - 2, "class": "gm-target-line" }));
        chart.appendChild(svg("text", { x: tx, y: 10, "class": "gm-target-label", "text-anchor": "middle" },
          t.target + " " + self.format(m, res.target)));
      }
      this.rankChart.appendChild(chart);
      if (res.target === null || res.target === undefined) { this.rankChart.appendChild(el("p", "gm-muted", t.noTarget)); }
      this.drawRankTable();
    },

    /* the same items as a table, sortable by any column (click a heading; again to reverse) */
    drawRankTable: function () {
      var res = this.ranking, t = this.t, self = this, m = res.measure, sort = this.rankSort;
      var cols = [["rank", t.rank], ["name", t.name], ["value", t.measureNames[m]], ["ratio", t.ratio], ["meets", t.target]];
      var items = res.items.map(function (it, k) { return Object.assign({ rank: k + 1 }, it); });
      if (sort.desc !== null) {
        var val = function (it) {
          return sort.key === "name" ? (it.name || "") : sort.key === "ratio" ? it.denominator : sort.key === "meets"
            ? (it.meets_target === null ? -1 : Number(it.meets_target)) : sort.key === "rank" ? it.rank : it.value;
        };
        items.sort(function (a, b) {
          var va = val(a), vb = val(b);
          if (va === null || va === undefined) { return 1; }
          if (vb === null || vb === undefined) { return -1; }
          var c = typeof va === "string" ? va.localeCompare(vb, "zh") : va - vb;
          return sort.desc ? -c : c;
        });
      }
      var table = el("table", "gm-rank-list"), thead = el("thead"), tr = el("tr");
      cols.forEach(function (c) {
        var th = el("th"), b = el("button", "gm-sort", c[1] + (sort.key === c[0] && sort.desc !== null ? (sort.desc ? " ▼" : " ▲") : ""));
        b.type = "button";
        b.dataset.sort = c[0];
        b.addEventListener("click", function () {
          self.rankSort = { key: c[0], desc: sort.key === c[0] ? !sort.desc : c[0] !== "name" && c[0] !== "rank" };
          self.drawRankTable();
        });
        th.appendChild(b);
        th.setAttribute("aria-sort", sort.key === c[0] && sort.desc !== null ? (sort.desc ? "descending" : "ascending") : "none");
        tr.appendChild(th);
      });
      thead.appendChild(tr);
      table.appendChild(thead);
      var tbody = el("tbody");
      items.forEach(function (it) {
        var r = el("tr");
        r.className = it.meets_target === false ? "gm-rank-miss" : "";
        r.appendChild(el("td", null, it.rank));
        var name = el("td");
        if (it.code) {
          var a = el("a", null, it.name || it.code);
          a.href = "#";
          a.addEventListener("click", function (e) { e.preventDefault(); self.select(it.code, true); });
          name.appendChild(a);
        } else { name.textContent = it.name || "—"; }
        r.appendChild(name);
        r.appendChild(el("td", null, self.format(m, it.value)));
        r.appendChild(el("td", null, it.denominator === null || it.denominator === undefined ? "—" : it.numerator + t.slash + it.denominator));
        r.appendChild(el("td", null, it.meets_target === null ? "—" : it.meets_target ? t.meets : t.misses));
        tbody.appendChild(r);
      });
      table.appendChild(tbody);
      this.rankTable.replaceChildren(table);
      this.core.mark("gmRankSort", sort.key + ":" + (sort.desc === null ? "default" : sort.desc ? "desc" : "asc"));
    },

    /* ----------------------------------------------------------------------------- measures and the trend */
    measureKey: function (code) { return [code].concat(this.period()).join("|"); },

    /* the measures (refetched when the area or the period changes), then the twelve-month trend (only when the
     * area changes: it does not depend on the filters) */
    loadMeasures: function (code) {
      var self = this, t = this.t;
      var q = this.period().join("&"), path = "areas/" + encodeURIComponent(code), key = this.measureKey(code);
      var box = self.measureBox;
      if (!this.core.config.measures || !this.mine(code)) {  // not the account's to read: say so without asking
        box.replaceChildren(el("p", "gm-note", t.noMeasures));
        self.trendBox = null;
        this.loaded.measures = key;
        return Promise.resolve();
      }
      this.loaded.measures = key;
      this.fetches.measures += 1;
      var fresh = !this.trendBox || this.trendCode !== code || !box.contains(this.trendBox);
      var table = this.core.get(path + "/measures?" + q).then(function (res) {
        if (self.selected !== code) { return; }
        var m = res.measures;
        var holder = box.querySelector(".gm-measure-block");
        if (!holder) { holder = el("div", "gm-measure-block"); box.insertBefore(holder, box.firstChild); }
        holder.replaceChildren();
        holder.appendChild(el("h3", null, t.measures));
        var table = el("table", "gm-measure-table");
        MEASURES.forEach(function (k) {
          var tr = row(table, t.measureNames[k], self.format(k, m[k]));
          tr.dataset.measure = k;
          if (TARGETS[k] !== undefined && m[k] !== null && m[k] !== undefined) {
            var ok = LOWER_BETTER[k] ? m[k] <= TARGETS[k] : m[k] >= TARGETS[k];
            tr.className = ok ? "gm-good" : "gm-bad";
          }
        });
        holder.appendChild(table);
        if (fresh && !self.trendBox) {
          box.appendChild(el("h3", null, t.trend));
          self.trendBox = el("div", "gm-trend", t.loading);
          box.appendChild(self.trendBox);
        }
        self.core.mark("gmMeasures", code);
      });
      if (fresh) { box.replaceChildren(); this.trendBox = null; this.trendCode = code; }
      var trend = fresh ? (this.fetches.series += 1, this.core.get(path + "/series?months=12")) : Promise.resolve(null);
      var denied = function (err) {  // an area above one's own, or a role without measures: say so, not 加载失败
        if (err.status !== 403 && err.status !== 404) { throw err; }
        if (self.selected === code) { box.replaceChildren(el("p", "gm-note", t.noMeasures)); self.trendBox = null; }
        return null;
      };
      return Promise.all([table.catch(denied), trend.catch(denied)]).then(function (res) {
        if (self.selected !== code || !self.trendBox || !res[1]) { return; }
        self.trendBox.replaceChildren(self.chart(res[1].months));
        self.core.mark("gmTrend", code);
      }).catch(function (err) { self.loaded.measures = null; self.core.fail(err); });
    },

    /* bars: cases received per month (left axis, counts); line: closure rate (right axis, 0–100 %); a legend */
    chart: function (months) {
      var t = this.t, W = 300, H = 150, L0 = 30, R0 = 34, T0 = 8, B0 = 40, n = months.length || 1;
      var chart = svg("svg", { viewBox: "0 0 " + W + " " + H, "class": "gm-chart", role: "img" });
      chart.appendChild(svg("title", {}, t.trend));
      var max = Math.max.apply(null, months.map(function (m) { return m.received; }).concat([1]));
      var step = Math.pow(10, Math.floor(Math.log10(max))), nice = Math.ceil(max / step) * step;
      var plotH = H - T0 - B0, bw = (W - L0 - R0) / n, pts = [];
      var y = function (v) { return T0 + plotH * (1 - v); };
      // axes and gridlines: the left one counts (0, half, top), the right one percentages (0, 50 %, 100 %)
      [0, 0.5, 1].forEach(function (f) {
        chart.appendChild(svg("line", { x1: L0, x2: W - R0, y1: y(f).toFixed(1), y2: y(f).toFixed(1), "class": "gm-grid-line" }));
        chart.appendChild(svg("text", { x: L0 - 3, y: (y(f) + 3).toFixed(1), "class": "gm-chart-label gm-axis-left", "text-anchor": "end" }, Math.round(nice * f)));
        chart.appendChild(svg("text", { x: W - R0 + 3, y: (y(f) + 3).toFixed(1), "class": "gm-chart-label gm-axis-right" }, Math.round(f * 100) + "%"));
      });
      chart.appendChild(svg("line", { x1: L0, x2: L0, y1: T0, y2: T0 + plotH, "class": "gm-axis" }));
      chart.appendChild(svg("line", { x1: W - R0, x2: W - R0, y1: T0, y2: T0 + plotH, "class": "gm-axis gm-axis-rate" }));
      months.forEach(function (m, i) {
        var h = plotH * m.received / nice, x = L0 + i * bw;
        var bar = svg("rect", { x: (x + 1).toFixed(1), y: (T0 + plotH - h).toFixed(1), width: Math.max(1, bw - 2).toFixed(1), height: h.toFixed(1), "class": "gm-bar" });
        bar.appendChild(svg("title", {}, m.month + t.colon + m.received + " · " + GM.percent(m.closure_rate)));
        chart.appendChild(bar);
        if (m.closure_rate !== null) { pts.push((x + bw / 2).toFixed(1) + "," + y(m.closure_rate).toFixed(1)); }
        if (i % 3 === 0 || i === n - 1) {
          chart.appendChild(svg("text", { x: (x + bw / 2).toFixed(1), y: T0 + plotH + 11, "class": "gm-chart-label", "text-anchor": "middle" }, m.month.slice(2)));
        }
      });
      if (pts.length > 1) { chart.appendChild(svg("polyline", { points: pts.join(" "), "class": "gm-line" })); }
      pts.forEach(function (p) { var xy = p.split(","); chart.appendChild(svg("circle", { cx: xy[0], cy: xy[1], r: 1.8, "class": "gm-line-dot" })); });
      // the legend, under the months
      var ly = H - 10;
      chart.appendChild(svg("rect", { x: L0, y: ly - 7, width: 10, height: 8, "class": "gm-bar-key" }));
      chart.appendChild(svg("text", { x: L0 + 13, y: ly, "class": "gm-chart-label gm-legend-text" }, t.receivedAxis));
      chart.appendChild(svg("line", { x1: L0 + 150, x2: L0 + 162, y1: ly - 3, y2: ly - 3, "class": "gm-line" }));
      chart.appendChild(svg("text", { x: L0 + 165, y: ly, "class": "gm-chart-label gm-legend-text" }, t.rateAxis));
      return chart;
    },

    /* a search result: an area is selected (outlined, framed beside the panel), a place or case is shown */
    pick: function (item) {
      var self = this;
      if (item.kind === "area") {
        this.select(item.code, true);
        return;
      }
      if (!item.point) { return; }
      var at = this.core.point(item.point);
      this.map.fitBounds(at.toBounds(200), { paddingTopLeft: this.panelPadding(), paddingBottomRight: [10, 10],
        maxZoom: Math.max(this.map.getZoom(), 17) });
      if (this.pin) { this.map.removeLayer(this.pin); }
      var label = el("span", null, item.label + (item.detail ? " · " + item.detail : ""));
      this.pin = L.circleMarker(at, { radius: 9, color: "#d81b60", weight: 3, fillOpacity: 0.2, pane: "gmCases" }).addTo(this.map)
        .bindTooltip(label, { permanent: true, direction: "top" });
      this.core.mark("gmPicked", item.kind + ":" + (item.code || item.id));
      if (item.kind === "case") { this.openCase(item.id, this.pin); }
    }
  };

  window.GridmapPage = Page;
}());
