/* gridmap dispatcher console: the queue of new, dispatched and overdue cases beside the map, refreshed by polling;
 * a case's place, where it was routed and why, nearby open cases; file, dispatch, reassign, escalate (whistle to a
 * department), merge; a new case by clicking the map or typing an address. Text from the server → textContent. */
(function () {
  "use strict";
  var el = GM.el, row = GM.row, option = GM.option;

  var TEXT = {
    zh: {
      queues: { fresh: "待处理", dispatched: "已派遣", overdue: "超期" }, empty: "队列为空", newBadge: "新",
      newCases: "条新事件", hint: "点击地图或输入地址新建事件；点击队列中的事件查看并派遣。",
      number: "编号", state: "状态", category: "类别", source: "来源", reportedAt: "上报时间", address: "地址",
      description: "描述", routing: "派遣去向", chain: "所属网格", branch: "网格党支部", worker: "网格员",
      department: "职能部门", rule: "规则", located: "定位", method: "方式", flags: "提示", candidates: "相邻网格",
      rules: { territory_first: "先属地（网格员）", owner_first: "先属主（权属部门）", override: "调度员指定" },
      methods: { coordinates: "坐标", address: "地址" },
      flagNames: { on_boundary: "位于网格边界", near_boundary: "靠近网格边界", outside_all_grids: "不在任何网格内",
        assigned_to_nearest: "已归入最近网格", placed_by_address: "按地址定位", address_low_confidence: "地址匹配置信度低",
        possibly_gcj02: "坐标可能为GCJ-02", possibly_converted_twice: "坐标可能被重复转换" },
      nearby: "附近未办结的同类事件", noneNearby: "无", actions: "操作", file: "立案", reject: "不予受理",
      dispatchAction: "派遣", byRules: "按规则派遣", toWorker: "派给网格员", toDepartment: "派给部门", reassign: "改派",
      whistle: "吹哨（上报部门）", merge: "合并到", void: "作废", reason: "原因", submit: "确定", chooseCategory: "选择类别",
      create: "在此新建事件", title: "标题", createSubmit: "新建并派遣", findAddress: "按地址定位", locate: "定位",
      created: "已新建", done: "已完成", distance: "距离", metres: "米", clock: "时限", due: "应办结",
      optional: "（可选）", none: "无", noStaff: "该网格无人员", reporter: "反映人"
    },
    en: {
      queues: { fresh: "To handle", dispatched: "Dispatched", overdue: "Overdue" }, empty: "The queue is empty",
      newBadge: "new", newCases: "new cases", hint: "Click the map or type an address to create a case; click a case in the queue to review and dispatch it.",
      number: "Number", state: "State", category: "Category", source: "Source", reportedAt: "Reported", address: "Address",
      description: "Description", routing: "Routed to", chain: "Grid", branch: "Grid party branch", worker: "Grid worker",
      department: "Department", rule: "Rule", located: "Placed", method: "Method", flags: "Flags", candidates: "Neighbouring grids",
      rules: { territory_first: "territory first (grid worker)", owner_first: "owner first (department)", override: "dispatcher's choice" },
      methods: { coordinates: "coordinates", address: "address" },
      flagNames: { on_boundary: "on a grid boundary", near_boundary: "near a grid boundary", outside_all_grids: "outside every grid",
        assigned_to_nearest: "given to the nearest grid", placed_by_address: "placed by address", address_low_confidence: "address match uncertain",
        possibly_gcj02: "coordinates may be GCJ-02", possibly_converted_twice: "coordinates may be converted twice" },
      nearby: "Open cases of the same category nearby", noneNearby: "None", actions: "Actions", file: "File",
      reject: "Reject", dispatchAction: "Dispatch", byRules: "by the rules", toWorker: "to a grid worker",
      toDepartment: "to a department", reassign: "Reassign", whistle: "Whistle (call in a department)", merge: "Merge into",
      void: "Void", reason: "Reason", submit: "OK", chooseCategory: "choose a category", create: "New case here",
      title: "Title", createSubmit: "Create and route", findAddress: "Find an address", locate: "Find", created: "Created",
      done: "Done", distance: "distance", metres: "m", clock: "Clock", due: "Due", optional: " (optional)", none: "None",
      noStaff: "no staff in this grid", reporter: "Reporter"
    }
  };
  var QUEUES = { fresh: "reported,filed", dispatched: "dispatched", overdue: "overdue" };

  var Page = {
    init: function (map, config) {
      var core = this.core = new GM.Core(map, config, "dispatch");
      this.map = map;
      this.t = Object.assign({}, core.t, TEXT[core.lang]);
      this.queue = "fresh";
      this.seen = null;
      this.fresh = {};
      var self = this;
      this.areas = new GM.AreaLayers(core, { each: function (feature, lyr) {
        var tip = el("span", null, feature.properties.name + " " + feature.properties.code);
        lyr.bindTooltip(tip, { sticky: true, className: "gm-tooltip" });
      } });
      var control = L.control.layers(null, null, { collapsed: true, position: "topright" }).addTo(map);
      GM.LEVELS.forEach(function (level) { control.addOverlay(self.areas.levels[level].layer, self.t.levels[level]); });
      ["district", "community", "grid"].forEach(function (l) { self.areas.levels[l].layer.addTo(map); });
      this.markers = L.layerGroup().addTo(map);
      this.focus = L.layerGroup().addTo(map);
      this.buildPanel();
      new GM.SearchBox(core, function (item) { self.pick(item); });
      map.on("click", function (e) { self.createAt(e.latlng); });
      Promise.all([core.get("categories"), core.get("departments")]).then(function (res) {
        self.categories = res[0];
        self.departments = res[1];
      }).catch(function (err) { core.fail(err); });
      this.areas.start();
      this.poll();
      this.timer = setInterval(function () { self.poll(); }, Math.max(1, config.poll_s || 5) * 1000);
    },

    buildPanel: function () {
      var t = this.t, body = document.getElementById("gm-body"), self = this;
      var tabs = el("div", "gm-tabs");
      this.tabs = {};
      Object.keys(QUEUES).forEach(function (q) {
        var b = el("button", "gm-tab" + (q === self.queue ? " gm-tab-on" : ""));
        b.type = "button";
        b.dataset.queue = q;
        b.appendChild(el("span", null, t.queues[q]));
        b.appendChild(el("span", "gm-count", ""));
        b.addEventListener("click", function () { self.queue = q; self.seen = null; self.poll(); });
        tabs.appendChild(b);
        self.tabs[q] = b;
      });
      body.appendChild(tabs);
      this.notice = el("div", "gm-notice");
      body.appendChild(this.notice);
      this.list = el("ul", "gm-queue");
      this.list.id = "gm-queue";
      body.appendChild(this.list);
      body.appendChild(el("div", "gm-hint", t.hint));
      this.side = document.getElementById("gm-side");
    },

    /* the queue, and the size of every queue, looked up every poll_s seconds */
    poll: function () {
      var self = this, t = this.t, queue = this.queue;
      Object.keys(QUEUES).forEach(function (q) {
        self.tabs[q].classList.toggle("gm-tab-on", q === queue);
      });
      return this.core.get("cases?order=oldest&limit=200&state=" + QUEUES[queue]).then(function (res) {
        if (queue !== self.queue) { return; }
        var ids = res.items.map(function (c) { return c.id; });
        if (self.seen) {
          ids.forEach(function (id) { if (!self.seen[id]) { self.fresh[id] = true; } });
        }
        self.seen = {};
        ids.forEach(function (id) { self.seen[id] = true; });
        var newOnes = ids.filter(function (id) { return self.fresh[id]; }).length;
        self.notice.textContent = newOnes ? newOnes + " " + t.newCases : "";
        self.tabs[queue].querySelector(".gm-count").textContent = String(res.total);
        self.drawQueue(res.items);
        self.core.mark("gmQueue", res.total);
        self.core.mark("gmQueueIds", ids.join(","));
        self.core.mark("gmPolls", (Number(document.body.dataset.gmPolls) || 0) + 1);
        Object.keys(QUEUES).forEach(function (q) {
          if (q === queue) { return; }
          self.core.get("cases?limit=1&state=" + QUEUES[q]).then(function (r) {
            self.tabs[q].querySelector(".gm-count").textContent = String(r.total);
          }).catch(function () { /* the next poll tries again */ });
        });
      }).catch(function (err) { self.core.fail(err); });
    },

    drawQueue: function (items) {
      var t = this.t, self = this;
      this.list.replaceChildren();
      this.markers.clearLayers();
      if (!items.length) { this.list.appendChild(el("li", "gm-empty", t.empty)); }
      items.forEach(function (c) {
        var li = el("li", "gm-queue-item" + (c.id === self.current ? " gm-current" : ""));
        li.dataset.caseId = String(c.id);
        var head = el("div", "gm-queue-head");
        head.appendChild(el("span", "gm-state gm-state-" + c.state, t.states[c.state] || c.state));
        if (c.clock) { head.appendChild(el("span", "gm-clock gm-clock-" + c.clock.colour, t.clocks[c.clock.colour])); }
        if (self.fresh[c.id]) { head.appendChild(el("span", "gm-new", t.newBadge)); }
        head.appendChild(el("span", "gm-queue-number", c.number));
        li.appendChild(head);
        li.appendChild(el("div", "gm-queue-title", c.title));
        li.appendChild(el("div", "gm-queue-meta", (c.category_name || "—") + " · " + (t.sources[c.source] || c.source) + " · " + GM.localTime(c.reported_at)));
        li.addEventListener("click", function () { self.open(c.id); });
        self.list.appendChild(li);
        if (c.lon !== null) {
          var m = L.circleMarker(self.core.point([c.lon, c.lat]), { radius: 7, color: "#fff", weight: 1.5,
            fillColor: (c.clock && GM.CLOCK_COLOURS[c.clock.colour]) || GM.STATE_COLOURS[c.state], fillOpacity: 0.95 });
          m.on("click", function (e) { L.DomEvent.stopPropagation(e); self.open(c.id); });
          m.addTo(self.markers);
        }
      });
    },

    /* ------------------------------------------------------------------------------------------ one case */
    open: function (id) {
      var self = this;
      this.current = id;
      delete this.fresh[id];
      return Promise.all([this.core.get("cases/" + id), this.core.get("cases/" + id + "/duplicates")]).then(function (res) {
        self.show(res[0], res[1].items);
      }).catch(function (err) { self.core.fail(err); });
    },

    show: function (c, nearby) {
      var t = this.t, side = this.side, self = this;
      side.replaceChildren();
      side.hidden = false;
      side.dataset.caseId = String(c.id);
      side.dataset.state = c.state;
      var close = el("button", "gm-close", "×");
      close.type = "button";
      close.addEventListener("click", function () { side.hidden = true; self.focus.clearLayers(); self.current = null; });
      side.appendChild(close);
      side.appendChild(el("h2", "gm-case-title", c.title));
      var info = el("table", "gm-info");
      row(info, t.number, c.number);
      row(info, t.state, t.states[c.state] || c.state);
      row(info, t.category, c.category_name);
      row(info, t.source, t.sources[c.source] || c.source);
      row(info, t.reportedAt, GM.localTime(c.reported_at));
      if (c.clock) { row(info, t.clock, t.clocks[c.clock.colour] + " · " + t.due + " " + GM.localTime(c.due_at)); }
      row(info, t.address, c.address);
      if (c.reporter_name || c.reporter_phone) {
        row(info, t.reporter, [c.reporter_name, c.reporter_phone].filter(Boolean).join(" · "));
      }
      side.appendChild(info);
      if (c.description) { side.appendChild(el("p", "gm-desc", c.description)); }
      var r = c.routing || {};
      side.appendChild(el("h3", null, t.routing));
      var routing = el("table", "gm-routing");
      row(routing, t.chain, (r.chain || []).filter(function (a) { return a.level !== "district"; })
        .map(function (a) { return a.name || a.code; }).join(" › "));
      row(routing, t.branch, r.branch && r.branch.name);
      row(routing, t.worker, r.worker && (r.worker.name + " · " + (r.worker.phone || "")));
      row(routing, t.department, r.department && r.department.name);
      row(routing, t.rule, r.rule && (t.rules[r.rule] || r.rule) + (r.routed_by && r.routed_by.reason ? " · " + r.routed_by.reason : ""));
      var loc = r.located || {};
      row(routing, t.method, t.methods[loc.method] || loc.method);
      var flags = row(routing, t.flags, (loc.flags || []).map(function (f) { return t.flagNames[f] || f; }).join("，") || t.none);
      flags.className = (loc.flags || []).length ? "gm-warn" : "";
      row(routing, t.candidates, (loc.candidates || []).join("，") || t.none);
      side.appendChild(routing);
      side.appendChild(el("h3", null, t.nearby));
      var list = el("ul", "gm-nearby");
      if (!nearby.length) { list.appendChild(el("li", null, t.noneNearby)); }
      nearby.forEach(function (n) {
        var li = el("li"), a = el("a", null, n.number + " · " + n.title);
        a.href = "#";
        a.addEventListener("click", function (e) { e.preventDefault(); self.open(n.id); });
        li.appendChild(a);
        li.appendChild(el("span", "gm-muted", " · " + (t.states[n.state] || n.state) + " · " + t.distance + " " + Math.round(n.distance_m) + t.metres));
        list.appendChild(li);
      });
      side.appendChild(list);
      this.actions(c, nearby);
      this.showOnMap(c, nearby);
      this.core.mark("gmCase", c.id + ":" + c.state);
    },

    showOnMap: function (c, nearby) {
      var self = this, focus = this.focus;
      focus.clearLayers();
      if (c.lon === null) { return; }
      var at = this.core.point([c.lon, c.lat]);
      L.circleMarker(at, { radius: 11, color: "#d81b60", weight: 3, fillOpacity: 0.15 }).addTo(focus);
      nearby.forEach(function (n) {
        if (n.lon !== undefined && n.lon !== null) {
          L.circleMarker(self.core.point([n.lon, n.lat]), { radius: 6, color: "#6a1b9a", weight: 2, dashArray: "2 2", fillOpacity: 0.1 }).addTo(focus);
        }
      });
      var codes = [c.grid_code].concat((c.routing && c.routing.located && c.routing.located.candidates) || []);
      codes.forEach(function (code, i) {
        if (!code) { return; }
        self.core.get("areas/" + encodeURIComponent(code)).then(function (f) {
          L.geoJSON(f, { coordsToLatLng: self.core.toLatLng, interactive: false,
            style: { color: i ? "#6a1b9a" : "#d81b60", weight: i ? 2 : 3, dashArray: i ? "6 4" : null, fillOpacity: 0.04 } }).addTo(focus);
        }).catch(function () { /* an old grid code: the point still shows */ });
      });
      this.map.setView(at, Math.max(this.map.getZoom(), 16));
    },

    /* the steps a dispatcher may take in the case's state */
    actions: function (c, nearby) {
      var t = this.t, side = this.side, self = this;
      var box = el("div", "gm-actions");
      box.appendChild(el("h3", null, t.actions));
      this.error = el("div", "gm-error");
      this.error.setAttribute("role", "alert");
      var s = c.state;
      if (s === "reported") {
        var f = this.form(box, "file", t.file);
        var cat = this.categorySelect(f.form, c.category);
        f.onsubmit = function () { return { category: cat.value || null }; };
        var rj = this.form(box, "reject", t.reject);
        var why = this.reasonInput(rj.form);
        rj.onsubmit = function () { return { reason: why.value }; };
      }
      if (s === "filed") {
        var d = this.form(box, "dispatch", t.dispatchAction);
        var how = this.routeChoice(d.form, c, false);
        d.onsubmit = function () { return how(); };
      }
      if (s === "dispatched") {
        var ra = this.form(box, "reassign", t.reassign);
        var target = this.routeChoice(ra.form, c, true);
        ra.onsubmit = function () { return target(); };
      }
      if (s === "accepted" || s === "rework") {
        var w = this.form(box, "whistle", t.whistle);
        var dept = this.departmentSelect(w.form);
        w.onsubmit = function () { return { department: dept.value }; };
      }
      if (["reported", "filed", "dispatched", "accepted"].indexOf(s) >= 0 && nearby.length) {
        var mg = this.form(box, "merge", t.merge);
        var into = el("select"); into.name = "into";
        nearby.forEach(function (n) { option(into, n.id, n.number + " · " + n.title); });
        mg.form.insertBefore(into, mg.form.lastChild);
        var mwhy = this.reasonInput(mg.form, true);
        mg.onsubmit = function () { return { into: Number(into.value), reason: mwhy.value || null }; };
      }
      if (["reported", "filed", "dispatched"].indexOf(s) >= 0) {
        var v = this.form(box, "void", t.void);
        var vwhy = this.reasonInput(v.form);
        v.onsubmit = function () { return { reason: vwhy.value }; };
      }
      box.appendChild(this.error);
      side.appendChild(box);
      this.version = c.version;
    },

    form: function (box, action, label) {
      var self = this, details = el("details", "gm-action gm-action-" + action), form = el("form");
      details.appendChild(el("summary", null, label));
      var handle = { form: form, onsubmit: function () { return {}; } };
      var ok = el("button", null, this.t.submit);
      ok.type = "submit";
      form.appendChild(ok);
      form.addEventListener("submit", function (e) {
        e.preventDefault();
        self.act(action, handle.onsubmit());
      });
      details.appendChild(form);
      box.appendChild(details);
      return handle;
    },

    reasonInput: function (form, optional) {
      var input = el("input");
      input.name = "reason";
      input.placeholder = this.t.reason + (optional ? this.t.optional : "");
      form.insertBefore(input, form.lastChild);
      return input;
    },

    categorySelect: function (form, current) {
      var s = el("select"), groups = {};
      s.name = "category";
      option(s, "", this.t.chooseCategory);
      (this.categories || []).forEach(function (c) { (groups[c.major_class] = groups[c.major_class] || []).push(c); });
      Object.keys(groups).forEach(function (major) {
        var g = el("optgroup"); g.label = major;
        groups[major].forEach(function (c) { option(g, c.code, c.name + " (" + c.code + ")", c.code === current); });
        s.appendChild(g);
      });
      form.insertBefore(s, form.lastChild);
      return s;
    },

    departmentSelect: function (form) {
      var s = el("select");
      s.name = "department";
      (this.departments || []).forEach(function (d) { option(s, d.code, d.name); });
      form.insertBefore(s, form.lastChild);
      return s;
    },

    /* by the rules, to a grid worker of the case's grid, or to a department; a reason for any override */
    routeChoice: function (form, c, overrideOnly) {
      var t = this.t, self = this, mode = el("select");
      mode.name = "mode";
      if (!overrideOnly) { option(mode, "rules", t.byRules); }
      option(mode, "worker", t.toWorker);
      option(mode, "department", t.toDepartment);
      var worker = el("select"), dept = el("select"), reason = el("input");
      worker.name = "assignee_id"; dept.name = "department"; reason.name = "reason";
      reason.placeholder = t.reason;
      (this.departments || []).forEach(function (d) { option(dept, d.code, d.name); });
      if (c.grid_code) {
        this.core.get("areas/" + encodeURIComponent(c.grid_code)).then(function (f) {
          var staff = (f.properties.staff || []).filter(function (s) { return /worker|grid_head/.test(s.role); });
          if (!staff.length) { option(worker, "", t.noStaff); }
          staff.forEach(function (s) { option(worker, s.id, (self.core.lang === "zh" ? s.role_zh : s.role) + " · " + s.name); });
        }).catch(function (err) { self.core.fail(err); });
      }
      [mode, worker, dept, reason].forEach(function (n) { form.insertBefore(n, form.lastChild); });
      function sync() {
        worker.hidden = mode.value !== "worker";
        dept.hidden = mode.value !== "department";
        reason.hidden = mode.value === "rules";
      }
      mode.addEventListener("change", sync);
      sync();
      return function () {
        if (mode.value === "worker") { return { assignee_id: worker.value ? Number(worker.value) : null, reason: reason.value }; }
        if (mode.value === "department") { return { department: dept.value, reason: reason.value }; }
        return {};
      };
    },

    act: function (action, params) {
      var self = this, id = this.current;
      this.error.textContent = "";
      var body = Object.assign({ version: this.version }, params);
      Object.keys(body).forEach(function (k) { if (body[k] === "" || body[k] === undefined) { delete body[k]; } });
      return this.core.request("POST", "cases/" + id + "/actions/" + action, body).then(function (c) {
        self.core.mark("gmLastAction", action + ":" + c.id + ":" + c.state);
        self.core.status(self.t.done + ": " + (self.t.states[c.state] || c.state));
        self.poll();
        return self.open(c.id);
      }).catch(function (err) {
        self.error.textContent = err.message;
        self.core.mark("gmLastError", (err.problem && err.problem.field) || err.status);
      });
    },

    /* ------------------------------------------------------------------------------------------ a new case */
    createAt: function (latlng, address) {
      var t = this.t, side = this.side, self = this;
      this.current = null;
      this.focus.clearLayers();
      var pin = L.circleMarker(latlng, { radius: 9, color: "#d81b60", weight: 3, fillOpacity: 0.3 }).addTo(this.focus);
      side.replaceChildren();
      side.hidden = false;
      delete side.dataset.caseId;
      side.appendChild(el("h2", null, t.create));
      var find = el("form", "gm-find");
      var addr = el("input"); addr.name = "find"; addr.placeholder = t.findAddress; addr.value = address || "";
      var go = el("button", null, t.locate); go.type = "submit";
      find.appendChild(addr); find.appendChild(go);
      side.appendChild(find);
      var form = el("form", "gm-create");
      form.id = "gm-create";
      var title = el("input"); title.name = "title"; title.required = true; title.maxLength = 200; title.placeholder = t.title;
      form.appendChild(title);
      var ok = el("button", null, t.createSubmit); ok.type = "submit";
      form.appendChild(ok);
      var cat = this.categorySelect(form, null);
      var source = el("select"); source.name = "source";
      ["hotline", "miniprogram", "patrol", "referral", "api"].forEach(function (s) { option(source, s, t.sources[s]); });
      form.insertBefore(source, ok);
      var where = el("input"); where.name = "address"; where.placeholder = t.address + t.optional; where.value = address || "";
      form.insertBefore(where, ok);
      var desc = el("textarea"); desc.name = "description"; desc.placeholder = t.description; desc.rows = 3;
      form.insertBefore(desc, ok);
      var error = el("div", "gm-error"); error.setAttribute("role", "alert");
      side.appendChild(form);
      side.appendChild(error);
      var point = latlng;
      find.addEventListener("submit", function (e) {
        e.preventDefault();
        self.core.get("locate?address=" + encodeURIComponent(addr.value)).then(function (res) {
          var p = res.address_match && res.address_match.place;
          if (!p) { error.textContent = t.noResults + (res.address_match ? " (" + res.address_match.reason + ")" : ""); return; }
          point = self.core.point([p.lon, p.lat]);
          pin.setLatLng(point);
          where.value = addr.value;
          self.map.setView(point, Math.max(self.map.getZoom(), 17));
          self.core.mark("gmFound", p.lon.toFixed(5) + "," + p.lat.toFixed(5));
        }).catch(function (err) { error.textContent = err.message; });
      });
      form.addEventListener("submit", function (e) {
        e.preventDefault();
        error.textContent = "";
        var body = { title: title.value, lon: point.lng, lat: point.lat, crs: self.core.gcj ? "gcj02" : "wgs84",
          source: source.value };
        if (cat.value) { body.category = cat.value; }
        if (desc.value) { body.description = desc.value; }
        if (where.value) { body.address = where.value; }
        self.core.request("POST", "cases", body).then(function (c) {
          self.core.mark("gmCreated", c.id + ":" + c.state);
          self.poll();
          return self.open(c.id);
        }).catch(function (err) { error.textContent = err.message; self.core.mark("gmLastError", (err.problem && err.problem.field) || err.status); });
      });
      this.core.mark("gmCreating", latlng.lat.toFixed(5) + "," + latlng.lng.toFixed(5));
    },

    pick: function (item) {
      if (item.kind === "case") { this.open(item.id); return; }
      if (item.kind === "area") {
        var b = item.bbox;
        this.map.fitBounds(L.latLngBounds(this.core.point([b[0], b[1]]), this.core.point([b[2], b[3]])));
        return;
      }
      if (item.point) {
        var at = this.core.point(item.point);
        this.map.setView(at, Math.max(this.map.getZoom(), 17));
        this.createAt(at, item.label);
      }
    }
  };

  window.GridmapPage = Page;
}());
