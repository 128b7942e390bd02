/* gridmap overview: drill down district → sub-district → community → grid → micro-grid; the selected area's
 * party branch, staff, places, measures and their trend; cases clustered (by state or deadline colour), as a heat
 * map, and a choropleth of any measure; filters by period, category, state and source.
 * Every text from the server is set with textContent (see common.js). */
(function () {
  "use strict";
  var el = GM.el, row = GM.row, option = GM.option;

  var TEXT = {
    zh: {
      hint: "点击区域逐级下钻：街道 → 社区 → 网格 → 微网格。", filters: "图层与筛选", period: "时段", from: "自",
      to: "至", category: "类别", state: "状态", source: "来源", all: "全部", colourBy: "着色", byState: "按状态",
      byClock: "按时限（绿/黄/红）", choropleth: "专题图", none: "无", per: "按", apply: "应用", cases: "事件",
      noMeasures: "该区域的考核指标不在您的权限范围内",
      heat: "热力图", code: "编码", level: "层级", households: "户数", population: "人口", area: "面积（平方公里）",
      branch: "网格党支部", secretary: "书记", members: "党员数", reporting: "在职党员报到", staff: "人员",
      places: "场所", caseCounts: "事件", total: "合计", open: "未办结", overdue: "超期", closed: "已结案",
      measures: "考核指标（所选时段）", trend: "近12个月受理量与结案率", children: "下级区域", up: "返回上级",
      number: "编号", grid: "网格", reportedAt: "上报时间", caseLegend: "事件", noValue: "无数据",
      measureNames: { received: "受理量", handled: "处置量", closure_rate: "结案率", on_time_rate: "按期结案率",
        rework_rate: "返工率", satisfaction: "满意率", bounces: "退单数", close_hours_p50: "办结时长中位数(小时)" },
      address: "地址", description: "描述", categoryName: "类别", deadline: "时限"
    },
    en: {
      hint: "Click an area to drill down: sub-district → community → grid → micro-grid.", filters: "Layers and filters",
      period: "Period", from: "from", to: "to", category: "Category", state: "State", source: "Source", all: "All",
      colourBy: "Colour", byState: "by state", byClock: "by deadline (green/yellow/red)", choropleth: "Choropleth",
      none: "None", per: "per", apply: "Apply", cases: "Cases",
      noMeasures: "This area's measures are outside what your account may see", heat: "Heat map", code: "Code", level: "Level",
      households: "Households", population: "Population", area: "Area (km²)", branch: "Grid party branch",
      secretary: "Secretary", members: "Members", reporting: "In-service members reporting", staff: "Staff",
      places: "Places", caseCounts: "Cases", total: "Total", open: "Open", overdue: "Overdue", closed: "Closed",
      measures: "Measures (chosen period)", trend: "Received and closure rate, last 12 months", children: "Areas within",
      up: "Up one level", number: "Number", grid: "Grid", reportedAt: "Reported", caseLegend: "Cases",
      noValue: "no data",
      measureNames: { received: "Received", handled: "Handled", closure_rate: "Closure rate",
        on_time_rate: "On-time closure rate", rework_rate: "Rework rate", satisfaction: "Satisfaction",
        bounces: "Bounces", close_hours_p50: "Hours to close (median)" },
      address: "Address", description: "Description", categoryName: "Category", deadline: "Deadline"
    }
  };
  var RATES = { closure_rate: 1, on_time_rate: 1, rework_rate: 1, satisfaction: 1 };
  var RAMP = ["#fff5eb", "#fdd0a2", "#fd8d3c", "#d94801", "#7f2704"];
  var RAMP_GOOD = ["#7f2704", "#d94801", "#fd8d3c", "#a1d99b", "#238b45"];  // rates where high is good
  var NEXT = { district: "subdistrict", subdistrict: "community", community: "grid", grid: "microgrid" };

  function isoDay(d) { var z = new Date(d.getTime() - d.getTimezoneOffset() * 60000); return z.toISOString().slice(0, 10); }
  function dayStart(value) { return new Date(value + "T00:00:00").toISOString(); }

  var Page = {
    init: function (map, config) {
      var core = this.core = new GM.Core(map, config, "overview");
      this.map = map;
      this.t = Object.assign({}, core.t, TEXT[core.lang]);
      this.mode = "state";
      this.choro = null;
      this.rows = [];
      var self = this;
      this.areas = new GM.AreaLayers(core, {
        style: function (f) { return self.areaStyle(f); },
        each: function (feature, lyr) {
          var p = feature.properties, tip = el("span", "gm-tip");
          tip.appendChild(el("b", null, p.name));
          tip.appendChild(el("span", null, " " + p.code));
          lyr.bindTooltip(tip, { sticky: true, className: "gm-tooltip" });
          lyr.on("click", function (ev) { L.DomEvent.stopPropagation(ev); self.select(p.code, true); });
        }
      });
      this.cluster = L.markerClusterGroup({ chunkedLoading: true, maxClusterRadius: 50,
        iconCreateFunction: function (c) { return self.clusterIcon(c); } });
      this.heat = L.heatLayer([], { radius: 18, blur: 15, maxZoom: 16 });
      var control = this.control = L.control.layers(null, null, { collapsed: false, position: "topright" }).addTo(map);
      GM.LEVELS.forEach(function (level) { control.addOverlay(self.areas.levels[level].layer, self.t.levels[level]); });
      control.addOverlay(this.cluster, this.t.cases);
      control.addOverlay(this.heat, this.t.heat);
      ["district", "subdistrict"].forEach(function (l) { self.areas.levels[l].layer.addTo(map); });
      this.cluster.addTo(map);
      map.on("overlayadd", function (e) { if (e.layer === self.heat) { self.core.mark("gmHeat", self.rows.length); } });
      this.buildPanel();
      this.legend = L.control({ position: "bottomright" });
      this.legend.onAdd = function () { self.legendBox = el("div", "gm-legend"); return self.legendBox; };
      this.legend.addTo(map);
      this.drawLegend();
      new GM.SearchBox(core, function (item) { self.pick(item); });
      this.areas.start({ paddingTopLeft: [360, 10] });  // the panel covers the left
      this.loadCases();
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
      this.measure = this.dropdown(form, "measure", t.choropleth, [["", t.none]].concat(Object.keys(t.measureNames).map(function (m) { return [m, t.measureNames[m]]; })));
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
      this.core.get("categories").then(function (cats) {
        var groups = {};
        cats.forEach(function (c) { (groups[c.major_class] = groups[c.major_class] || []).push(c); });
        Object.keys(groups).forEach(function (major) {
          var g = el("optgroup"); g.label = major;
          option(g, groups[major].map(function (c) { return c.code; }).join(","), major + " · " + t.all);
          groups[major].forEach(function (c) { option(g, c.code, c.name); });
          self.category.appendChild(g);
        });
      }).catch(function (err) { self.core.fail(err); });
    },

    dropdown: function (form, name, label, options) {
      var field = el("div", "gm-field"), s = el("select");
      s.name = name;
      field.appendChild(el("label", null, label));
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

    applyFilters: function () {
      var modeChanged = this.mode !== this.colour.value;
      this.mode = this.colour.value;
      if (this.caseQuery() !== this.loadedQuery) { this.loadCases(); } else if (modeChanged) { this.drawCases(); }
      this.loadChoropleth();
      if (this.selected) { this.loadMeasures(this.selected); }
    },

    /* ------------------------------------------------------------------------------------------------ cases */
    caseQuery: function () {
      var q = this.period();
      if (this.category && this.category.value) { q.push("category=" + encodeURIComponent(this.category.value)); }
      if (this.state && this.state.value) { q.push("state=" + encodeURIComponent(this.state.value)); }
      if (this.source && this.source.value) { q.push("source=" + encodeURIComponent(this.source.value)); }
      return q.join("&");
    },

    /* the cases of the filters (fetched again only when a filter changed) */
    loadCases: function () {
      var self = this, query = this.caseQuery();
      var seq = this.caseSeq = (this.caseSeq || 0) + 1;
      return this.core.get("map/cases?" + query).then(function (res) {
        if (seq !== self.caseSeq) { return; }
        self.loadedQuery = query;
        self.rows = res.rows;
        self.drawCases();
      }).catch(function (err) { self.core.fail(err); });
    },

    caseColour: function (r) {
      return this.mode === "clock" ? GM.CLOCK_COLOURS[r[4] || "none"] : (GM.STATE_COLOURS[r[3]] || "#000");
    },

    drawCases: function () {
      var self = this;
      this.cluster.clearLayers();
      var markers = this.rows.map(function (r) {
        var m = L.circleMarker(self.core.point([r[1], r[2]]), { radius: 6, color: "#fff", weight: 1,
          fillColor: self.caseColour(r), fillOpacity: 0.9 });
        m.gmCase = r;
        m.on("click", function () { self.openCase(r[0], m); });
        return m;
      });
      this.cluster.addLayers(markers);
      this.heat.setLatLngs(this.rows.map(function (r) { var p = self.core.point([r[1], r[2]]); return [p.lat, p.lng, 0.6]; }));
      this.core.mark("gmCases", markers.length);
      this.core.mark("gmCaseMode", this.mode);
      this.drawLegend();
    },

    clusterIcon: function (cluster) {
      var children = cluster.getAllChildMarkers(), n = children.length, worst = "green";
      if (this.mode === "clock") {
        var rank = { red: 3, yellow: 2, green: 1 }, best = 0;
        children.forEach(function (m) { var c = m.gmCase[4]; if (c && rank[c] > best) { best = rank[c]; worst = c; } });
        if (!best) { worst = "none"; }
      }
      var size = n < 10 ? "small" : n < 100 ? "medium" : "large";
      var inner = el("div");
      inner.appendChild(el("span", null, n));
      var cls = this.mode === "clock" ? "gm-cluster gm-cluster-" + worst : "marker-cluster marker-cluster-" + size;
      return L.divIcon({ html: inner, className: "marker-cluster " + cls, iconSize: L.point(40, 40) });
    },

    openCase: function (id, marker) {
      var self = this, t = this.t;
      this.core.get("cases/" + id).then(function (c) {
        var box = el("div", "gm-case"), table = el("table");
        box.dataset.caseId = String(c.id);
        box.appendChild(el("strong", "gm-case-title", c.title));
        row(table, t.number, c.number);
        row(table, t.state, t.states[c.state] || c.state);
        row(table, t.categoryName, c.category_name);
        row(table, t.grid, c.grid_code);
        row(table, t.reportedAt, GM.localTime(c.reported_at));
        if (c.clock) { row(table, t.deadline, t.clocks[c.clock.colour] + " · " + GM.localTime(c.due_at)); }
        if (c.address) { row(table, t.address, c.address); }
        box.appendChild(table);
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
        var v = c.values[f.properties.code];
        style.fill = true;
        style.fillOpacity = v === null || v === undefined ? 0.15 : 0.65;
        style.fillColor = v === null || v === undefined ? "#cfd8dc" : c.ramp[this.classOf(v)];
      }
      return style;
    },

    classOf: function (v) {
      var b = this.choro.breaks, i = 0;
      while (i < b.length && v > b[i]) { i += 1; }
      return Math.min(i, 4);
    },

    loadChoropleth: function () {
      var self = this, measure = this.measure.value, level = this.measureLevel.value;
      var previous = this.choro;
      if (!measure) {
        this.choro = null;
        if (previous) { this.areas.levels[previous.level].restyle(); }
        this.core.mark("gmChoropleth", "none");
        this.drawLegend();
        return Promise.resolve();
      }
      var q = ["by=" + level].concat(this.period());
      return this.core.get("measures?" + q.join("&")).then(function (res) {
        var values = {}, list = [];
        res.items.forEach(function (r) {
          if (r.key === "*") { return; }
          values[r.key] = r[measure];
          if (r[measure] !== null && r[measure] !== undefined) { list.push(r[measure]); }
        });
        list.sort(function (a, b) { return a - b; });
        var breaks = [0.2, 0.4, 0.6, 0.8].map(function (p) { return list.length ? list[Math.floor(p * (list.length - 1))] : 0; });
        self.choro = { measure: measure, level: level, values: values, breaks: breaks,
          ramp: RATES[measure] && measure !== "rework_rate" ? RAMP_GOOD : RAMP, min: list[0], max: list[list.length - 1] };
        if (previous && previous.level !== level) { self.areas.levels[previous.level].restyle(); }
        var lv = self.areas.levels[level];
        if (!self.map.hasLayer(lv.layer)) { lv.layer.addTo(self.map); }
        lv.restyle();
        self.core.mark("gmChoropleth", measure + ":" + level + ":" + list.length);
        self.drawLegend();
        return self.areas.refresh();
      }).catch(function (err) { self.core.fail(err); });
    },

    drawLegend: function () {
      var box = this.legendBox, t = this.t, self = this;
      if (!box) { return; }
      box.replaceChildren();
      box.appendChild(el("strong", null, t.caseLegend + " · " + (this.mode === "clock" ? t.byClock : t.byState)));
      var items = this.mode === "clock" ? ["green", "yellow", "red", "none"] : ["reported", "filed", "dispatched", "accepted", "handled", "rework", "suspended", "closed"];
      items.forEach(function (k) {
        var item = el("div", "gm-legend-item"), sw = el("span", "gm-swatch");
        sw.style.background = self.mode === "clock" ? GM.CLOCK_COLOURS[k] : GM.STATE_COLOURS[k];
        item.appendChild(sw);
        item.appendChild(el("span", null, self.mode === "clock" ? t.clocks[k] : t.states[k]));
        box.appendChild(item);
      });
      var c = this.choro;
      if (c) {
        var head = el("strong", "gm-legend-choro", t.measureNames[c.measure] + " · " + t.levels[c.level]);
        box.appendChild(head);
        var fmt = function (v) { return RATES[c.measure] ? GM.percent(v) : (Math.round(v * 10) / 10).toLocaleString(); };
        // classes whose limits coincide (skewed values: many grids at 100 %) are shown once
        var limits = [];
        c.breaks.concat([c.max]).forEach(function (b, i) { if (!limits.length || b > limits[limits.length - 1].hi) { limits.push({ i: i, hi: b }); } });
        limits.forEach(function (l, k) {
          var item = el("div", "gm-legend-item"), sw = el("span", "gm-swatch gm-swatch-square");
          sw.style.background = c.ramp[l.i];
          item.appendChild(sw);
          var lo = k === 0 ? null : limits[k - 1].hi;
          item.appendChild(el("span", null, c.min === undefined ? t.noValue : (lo === null ? "≤ " + fmt(l.hi) : "> " + fmt(lo) + " – " + fmt(l.hi))));
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
      GM.LEVELS.forEach(function (l) {
        var lv = self.areas.levels[l];
        [previous, code].forEach(function (c) { if (c && lv.byCode[c]) { lv.byCode[c].setStyle(self.areaStyle(lv.byCode[c].feature)); } });
      });
      return this.core.get("areas/" + encodeURIComponent(code)).then(function (f) {
        var p = f.properties;
        self.showArea(p);
        var next = NEXT[p.level];
        if (next && !self.map.hasLayer(self.areas.levels[next].layer)) { self.areas.levels[next].layer.addTo(self.map); }
        if (fit && f.geometry) {
          var b = L.geoJSON(f, { coordsToLatLng: self.core.toLatLng }).getBounds();
          if (b.isValid()) { self.map.fitBounds(b, { maxZoom: 18, paddingTopLeft: [360, 10], paddingBottomRight: [10, 10] }); }
        }
        self.loadMeasures(code);
        self.core.mark("gmSelected", code);
        return self.areas.refresh();
      }).catch(function (err) { self.core.fail(err); });
    },

    showArea: function (p) {
      var t = this.t, box = this.detail, self = this;
      box.replaceChildren();
      box.hidden = false;
      box.dataset.code = p.code;
      box.dataset.level = p.level;
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
        staff.appendChild(el("li", null, (self.core.lang === "zh" ? s.role_zh : s.role) + " · " + s.name + " · " + (s.phone || "")));
      });
      if (!(p.staff || []).length) { staff.appendChild(el("li", null, t.none)); }
      box.appendChild(staff);
      box.appendChild(el("h3", null, t.caseCounts));
      var c = el("table", "gm-cases"), counts = p.cases || {};
      row(c, t.total, counts.total); row(c, t.open, counts.open);
      row(c, t.overdue, counts.overdue).className = counts.overdue ? "gm-bad" : "";
      row(c, t.closed, counts.closed);
      box.appendChild(c);
      box.appendChild(el("h3", null, t.places));
      var pl = el("table", "gm-places"), places = p.places || {};
      ["compound", "building", "service_centre"].forEach(function (k) { row(pl, t.placeKinds[k], places[k] || 0); });
      box.appendChild(pl);
      this.measureBox = el("div", "gm-measures");
      box.appendChild(this.measureBox);
      if ((p.children || []).length) {
        box.appendChild(el("h3", null, t.children + "（" + p.children.length + "）"));
        var list = el("ul", "gm-children");
        p.children.forEach(function (ch) {
          var li = el("li"), a = el("a", null, ch.name + " " + ch.code);
          a.href = "#";
          a.addEventListener("click", function (e) { e.preventDefault(); self.select(ch.code, true); });
          li.appendChild(a);
          list.appendChild(li);
        });
        box.appendChild(list);
      }
    },

    /* the measures first (one query), then the twelve-month trend (twelve periods) as it comes */
    loadMeasures: function (code) {
      var self = this, t = this.t;
      var q = this.period().join("&"), path = "areas/" + encodeURIComponent(code);
      var box = self.measureBox, config = this.core.config;
      var mine = config.everywhere || (config.areas || []).some(function (a) { return code.indexOf(a) === 0; });
      if (!config.measures || !mine) {  // not the account's to read: say so without asking the server
        box.replaceChildren(el("p", "gm-note", t.noMeasures));
        self.trendBox = null;
        return Promise.resolve();
      }
      var table = this.core.get(path + "/measures?" + q).then(function (res) {
        if (self.selected !== code) { return; }
        var m = res.measures;
        box.replaceChildren();
        box.appendChild(el("h3", null, t.measures));
        var table = el("table", "gm-measure-table");
        row(table, t.measureNames.received, m.received);
        row(table, t.measureNames.handled, m.handled);
        row(table, t.measureNames.closure_rate, GM.percent(m.closure_rate));
        row(table, t.measureNames.on_time_rate, GM.percent(m.on_time_rate));
        row(table, t.measureNames.satisfaction, GM.percent(m.satisfaction));
        row(table, t.measureNames.close_hours_p50, m.close_hours_p50);
        box.appendChild(table);
        box.appendChild(el("h3", null, t.trend));
        self.trendBox = el("div", "gm-trend", t.loading);
        box.appendChild(self.trendBox);
        self.core.mark("gmMeasures", code);
      });
      var trend = this.core.get(path + "/series?months=12");
      var denied = function (err) {  // an area above one's own, or a role without measures: say so, not 加载失败
        if (err.status !== 403 && err.status !== 404) { throw err; }
        if (self.selected === code) { box.replaceChildren(el("p", "gm-note", t.noMeasures)); self.trendBox = null; }
        return null;
      };
      return Promise.all([table.catch(denied), trend.catch(denied)]).then(function (res) {
        if (self.selected !== code || !self.trendBox || !res[1]) { return; }
        self.trendBox.replaceChildren(self.chart(res[1].months));
        self.core.mark("gmTrend", code);
      }).catch(function (err) { self.core.fail(err); });
    },

    /* bars: cases received per month; line: closure rate (0–100 %) */
    chart: function (months) {
      var NS = "http://www.w3.org/2000/svg", W = 300, H = 110, pad = 18, n = months.length || 1;
      var svg = document.createElementNS(NS, "svg");
      svg.setAttribute("viewBox", "0 0 " + W + " " + H);
      svg.setAttribute("class", "gm-chart");
      svg.setAttribute("role", "img");
      var max = Math.max.apply(null, months.map(function (m) { return m.received; }).concat([1]));
      var bw = (W - 2 * pad) / n, pts = [];
      months.forEach(function (m, i) {
        var h = (H - 2 * pad) * m.received / max, x = pad + i * bw;
        var bar = document.createElementNS(NS, "rect");
        bar.setAttribute("x", (x + 1).toFixed(1)); bar.setAttribute("y", (H - pad - h).toFixed(1));
        bar.setAttribute("width", (bw - 2).toFixed(1)); bar.setAttribute("height", h.toFixed(1));
        bar.setAttribute("class", "gm-bar");
        var tip = document.createElementNS(NS, "title");
        tip.textContent = m.month + ": " + m.received + " / " + GM.percent(m.closure_rate);
        bar.appendChild(tip);
        svg.appendChild(bar);
        if (m.closure_rate !== null) { pts.push((x + bw / 2).toFixed(1) + "," + (H - pad - (H - 2 * pad) * m.closure_rate).toFixed(1)); }
        if (i % 3 === 0 || i === n - 1) {
          var label = document.createElementNS(NS, "text");
          label.setAttribute("x", (x + bw / 2).toFixed(1)); label.setAttribute("y", H - 4);
          label.setAttribute("class", "gm-chart-label");
          label.textContent = m.month.slice(2);
          svg.appendChild(label);
        }
      });
      var top = document.createElementNS(NS, "text");
      top.setAttribute("x", 2); top.setAttribute("y", 12); top.setAttribute("class", "gm-chart-label");
      top.textContent = String(max);
      svg.appendChild(top);
      if (pts.length > 1) {
        var line = document.createElementNS(NS, "polyline");
        line.setAttribute("points", pts.join(" "));
        line.setAttribute("class", "gm-line");
        svg.appendChild(line);
      }
      return svg;
    },

    /* a search result: an area is selected, a place or case is shown on the map */
    pick: function (item) {
      var self = this;
      if (item.kind === "area") {
        var b = item.bbox, sw = this.core.point([b[0], b[1]]), ne = this.core.point([b[2], b[3]]);
        this.map.fitBounds(L.latLngBounds(sw, ne));
        this.select(item.code, false);
        return;
      }
      if (!item.point) { return; }
      var at = this.core.point(item.point);
      this.map.setView(at, Math.max(this.map.getZoom(), 17));
      if (this.pin) { this.map.removeLayer(this.pin); }
      var label = el("span", null, item.label + (item.detail ? " · " + item.detail : ""));
      this.pin = L.circleMarker(at, { radius: 9, color: "#d81b60", weight: 3, fillOpacity: 0.2 }).addTo(this.map)
        .bindTooltip(label, { permanent: true, direction: "top" });
      this.core.mark("gmPicked", item.kind + ":" + (item.code || item.id));
      if (item.kind === "case") { this.openCase(item.id, this.pin); }
    }
  };

  window.GridmapPage = Page;
}());
