/* gridmap: the grid worker's page on the phone (/m, 网格员). A list for one thumb: my cases by deadline colour
 * (overdue red, due soon amber, on time green) with the time left or overdue by; a case: accept (签收), navigate to
 * it (a geo: link in WGS84, AMap and Baidu links in GCJ-02), handle (处置反馈) with photos before and after, request
 * an extension (申请延期), bounce (退单) with a reason; a patrol report (巡查上报) with the phone's position, photos and
 * 即报即处; notifications (催办, 督办, 派单). The map is a small box moved into the case or the report shown.
 * Text from the server is only ever set with textContent (see common.js); refusals show the API's problem detail. */
(function () {
  "use strict";
  var el = GM.el, row = GM.row, option = GM.option;

  var TEXT = {
    zh: {
      tabs: { cases: "我的事件", patrol: "巡查上报", notes: "通知" }, empty: "暂无待办事件。", back: "‹ 返回列表",
      overdueBy: "已超期", left: "剩余", toAccept: "待签收", toVerify: "待核查", noClock: "未计时",
      day: "天", hour: "小时", minute: "分", number: "编号", state: "状态", category: "类别", address: "地址",
      description: "描述", reportedAt: "上报时间", deadline: "办结时限", flags: "提示", pending: "待审批申请",
      navigate: "导航到现场", amap: "高德地图", baidu: "百度地图", geo: "手机地图（geo:）", accept: "签收",
      bounce: "退单", bounceReason: "退单原因（必填）", bounceSubmit: "确认退单", handle: "处置反馈",
      handleNote: "处置说明", before: "处置前照片", after: "处置后照片", handleSubmit: "提交处置",
      extension: "申请延期", extensionReason: "延期原因（必填）", amount: "延长", unit: "单位",
      extensionSubmit: "提交延期申请", units: { work_hours: "工作小时", work_days: "工作日", calendar_days: "自然日" },
      photos: "照片", history: "流转记录", handled: "已处置，等待核查。", done: "已完成：", uploading: "正在上传照片…",
      photoDone: "张照片已上传", lastBounce: "上次退单", needReason: "请填写原因。", needAmount: "请填写延长的时长（大于0，最多30）。",
      patrolTitle: "标题（必填）", patrolCategory: "类别（必填）", chooseCategory: "请选择类别", patrolDesc: "描述",
      locate: "📍 获取当前位置", locating: "正在定位…", position: "位置", accuracy: "精度约", metres: "米",
      noPosition: "尚未定位：请点“获取当前位置”，或在地图上点选。", geoFailed: "无法获取位置：", inGrid: "所在网格",
      outsideMine: "（不在您负责的网格内）", sitePhotos: "现场照片", onSpot: "即报即处（当场已处置）",
      onSpotNote: "处置说明", patrolSubmit: "提交上报", reported: "已上报：", needTitle: "请填写标题。",
      needCategory: "请选择类别。", needPoint: "请先获取当前位置。", noNotes: "暂无通知。", unread: "未读",
      openCase: "查看事件", mapHint: "可在地图上点选位置", failed: "操作失败：",
      actions: { attach: "上传照片", accept: "签收", handle: "处置反馈", bounce: "退单", request_extension: "申请延期" }
    },
    en: {
      tabs: { cases: "My cases", patrol: "Patrol report", notes: "Notices" }, empty: "No cases to work on.",
      back: "‹ Back to the list", overdueBy: "Overdue by ", left: "Left: ", toAccept: "To accept", toVerify: "To verify",
      noClock: "No clock", day: " d ", hour: " h ", minute: " min", number: "Number", state: "State",
      category: "Category", address: "Address", description: "Description", reportedAt: "Reported",
      deadline: "Deadline", flags: "Flags", pending: "Request pending", navigate: "Navigate there", amap: "AMap",
      baidu: "Baidu Maps", geo: "Phone's map (geo:)", accept: "Accept", bounce: "Bounce",
      bounceReason: "Why it is not ours (required)", bounceSubmit: "Bounce it", handle: "Report handling",
      handleNote: "What was done", before: "Photos before", after: "Photos after", handleSubmit: "Submit",
      extension: "Request an extension", extensionReason: "Reason (required)", amount: "Extend by", unit: "Unit",
      extensionSubmit: "Request", units: { work_hours: "working hours", work_days: "working days", calendar_days: "calendar days" },
      photos: "Photos", history: "History", handled: "Handled; waiting for verification.", done: "Done: ",
      uploading: "Uploading photos…", photoDone: "photo(s) uploaded", lastBounce: "Last bounce",
      needReason: "Please give a reason.", needAmount: "Please give the extension (above 0, at most 30).",
      patrolTitle: "Title (required)", patrolCategory: "Category (required)", chooseCategory: "Choose a category",
      patrolDesc: "Description", locate: "📍 Use my position", locating: "Locating…", position: "Position",
      accuracy: "accuracy about", metres: "m", noPosition: "No position yet: tap “Use my position”, or tap the map.",
      geoFailed: "No position: ", inGrid: "Grid", outsideMine: " (not one of your grids)", sitePhotos: "Photos of the site",
      onSpot: "Handled on the spot", onSpotNote: "What was done", patrolSubmit: "Send the report", reported: "Reported: ",
      needTitle: "Please give a title.", needCategory: "Please choose a category.", needPoint: "Please get your position first.",
      noNotes: "No notices.", unread: "unread", openCase: "Open the case", mapHint: "You can tap the map to set the place",
      failed: "Refused: ",
      actions: { attach: "Photo added", accept: "Accepted", handle: "Handled", bounce: "Bounced",
        request_extension: "Extension requested" }
    }
  };
  var UNITS = ["work_hours", "work_days", "calendar_days"];
  var DUE_SOON_S = 4 * 3600;  // without the server's clock colour: amber in the last four hours
  var SHRINK_ABOVE = 1.5 * 1024 * 1024, MAX_SIDE = 2048;  // photos: made smaller on the phone above 1.5 MB

  function fieldOf(parent, label, control, id) {
    var wrap = el("div", "gm-m-field"), lab = el("label", null, label);
    control.id = id;
    lab.htmlFor = id;
    wrap.appendChild(lab);
    wrap.appendChild(control);
    parent.appendChild(wrap);
    return control;
  }

  function button(parent, label, cls, onClick) {
    var b = el("button", cls || "gm-m-button", label);
    b.type = "button";
    if (onClick) { b.addEventListener("click", onClick); }
    parent.appendChild(b);
    return b;
  }

  function fileInput(name) {
    var f = el("input");
    f.type = "file";
    f.name = name;
    f.accept = "image/*";
    f.setAttribute("capture", "environment");  // the phone opens its camera
    f.multiple = true;
    return f;
  }

  function randomKey() {
    var a = new Uint8Array(12);
    window.crypto.getRandomValues(a);
    return Array.prototype.map.call(a, function (b) { return (b < 16 ? "0" : "") + b.toString(16); }).join("");
  }

  var Page = {
    init: function (map, config) {
      var core = this.core = new GM.Core(map, config, "m");
      this.map = map;
      this.t = Object.assign({}, core.t, TEXT[core.lang]);
      this.cases = [];
      this.current = null;
      this.position = null;
      var self = this;
      document.body.classList.add("gm-m");
      map.setMaxZoom(19);
      this.areas = new GM.AreaLayers(core, {});
      ["community", "grid"].forEach(function (l) { self.areas.levels[l].layer.addTo(map); });
      this.pins = L.layerGroup().addTo(map);
      map.on("click", function (e) {  // a tap on the map sets the place, in the base map's system (kept raw)
        if (self.view === "patrol") { self.setPosition([e.latlng.lng, e.latlng.lat], null, self.core.gcj ? "gcj02" : "wgs84"); }
      });
      this.build();
      this.show("cases");
      this.loadCases();
      this.loadNotes();
      this.timer = setInterval(function () {
        self.loadNotes();
        if (self.view === "cases") { self.loadCases(); }
      }, Math.max(30, config.poll_s || 30) * 1000);
    },

    /* ------------------------------------------------------------------------------------------ the frame */
    build: function () {
      var t = this.t, body = document.getElementById("gm-body"), self = this;
      var tabs = el("nav", "gm-m-tabs");
      tabs.setAttribute("aria-label", t.tabs.cases + " / " + t.tabs.patrol + " / " + t.tabs.notes);
      this.tabs = {};
      ["cases", "patrol", "notes"].forEach(function (name) {
        var b = button(tabs, "", "gm-m-tab", function () { self.show(name); if (name === "cases") { self.loadCases(); } });
        b.id = "gm-m-tab-" + name;
        b.appendChild(el("span", null, t.tabs[name]));
        b.appendChild(el("span", "gm-m-count", ""));
        self.tabs[name] = b;
      });
      body.appendChild(tabs);
      this.tabs.patrol.hidden = this.core.config.role !== "worker";  // patrol reports are the grid workers'
      this.views = {};
      ["cases", "case", "patrol", "notes"].forEach(function (name) {
        var v = el("section", "gm-m-view");
        v.id = "gm-m-" + name;
        v.hidden = true;
        body.appendChild(v);
        self.views[name] = v;
      });
      this.list = el("ul", "gm-m-list");
      this.list.id = "gm-m-list";
      this.views.cases.appendChild(this.list);
      this.buildPatrol();
      this.noteList = el("ul", "gm-m-list gm-m-notes");
      this.views.notes.appendChild(this.noteList);
    },

    show: function (name) {
      var self = this;
      this.view = name;
      Object.keys(this.views).forEach(function (v) { self.views[v].hidden = v !== name; });
      Object.keys(this.tabs).forEach(function (tab) {
        var on = tab === name || (tab === "cases" && name === "case");
        self.tabs[tab].classList.toggle("gm-m-tab-on", on);
        self.tabs[tab].setAttribute("aria-pressed", on ? "true" : "false");
      });
      if (name === "patrol") { this.placeMap(this.patrolMap); this.drawPosition(); }
      this.core.mark("gmMobileView", name);
      window.scrollTo(0, 0);
    },

    /* the map box: moved into the view that shows it, then told its new size */
    placeMap: function (slot) {
      var box = this.map.getContainer();
      if (box.parentNode !== slot) { slot.appendChild(box); }
      this.map.invalidateSize(false);
    },

    /* ------------------------------------------------------------------------------------ my cases, the list */
    loadCases: function () {
      var self = this;
      return this.core.get("cases?holder=me&state=open&sort=deadline&order=asc&limit=200").then(function (res) {
        self.cases = res.items.filter(function (c) { return ["dispatched", "accepted", "rework", "handled"].indexOf(c.state) >= 0; });
        self.cases.sort(function (a, b) { return self.rank(a) - self.rank(b); });
        self.drawList();
      }).catch(function (err) {
        self.core.fail(err);
        if (err.problem && err.problem.field === "holder") {  // an account with no cases of its own (a dispatcher)
          self.list.replaceChildren(el("li", "gm-m-empty gm-error", err.message));
          self.core.mark("gmMobileCases", "none");
        }
      });
    },

    /* how urgent a case is: overdue first (longest first), then those waiting to be accepted, then by time left */
    rank: function (c) {
      var d = this.deadline(c);
      if (d.colour === "red") { return -1e12 - (d.seconds || 0); }
      if (c.state === "dispatched") { return -1e9; }
      if (c.state === "handled") { return 1e12; }
      return d.seconds === null ? 1e11 : d.seconds;
    },

    /* the deadline of a case: colour (red / amber / green / none), seconds (left, or overdue by), text */
    deadline: function (c) {
      var t = this.t, left = c.time_left_s, over = c.overdue_by_s;
      if ((left === undefined || left === null) && (over === undefined || over === null) && c.due_at &&
          ["accepted", "rework"].indexOf(c.state) >= 0) {
        var s = Math.round((Date.parse(c.due_at) - Date.now()) / 1000);  // before the API said it itself
        if (s >= 0) { left = s; } else { over = -s; }
      }
      if (over) { return { colour: "red", seconds: over, text: t.overdueBy + this.duration(over) }; }
      if (c.state === "dispatched") { return { colour: "none", seconds: null, text: t.toAccept }; }
      if (c.state === "handled") { return { colour: "none", seconds: null, text: t.toVerify }; }
      if (left === undefined || left === null) { return { colour: "none", seconds: null, text: t.noClock }; }
      var soon = c.clock ? c.clock.colour !== "green" : left < DUE_SOON_S;
      return { colour: soon ? "amber" : "green", seconds: left, text: t.left + this.duration(left) };
    },

    duration: function (seconds) {
      var t = this.t, d = Math.floor(seconds / 86400), h = Math.floor((seconds % 86400) / 3600),
        m = Math.floor((seconds % 3600) / 60), out = "";
      if (d) { out += d + t.day; }
      if (h || d) { out += h + t.hour; }
      if (!d) { out += m + t.minute; }
      return out.trim();
    },

    drawList: function () {
      var t = this.t, self = this;
      this.list.replaceChildren();
      var count = this.tabs.cases.querySelector(".gm-m-count");
      count.textContent = this.cases.length ? String(this.cases.length) : "";
      if (!this.cases.length) { this.list.appendChild(el("li", "gm-m-empty", t.empty)); }
      this.cases.forEach(function (c) {
        var d = self.deadline(c), li = el("li", "gm-m-item");
        var b = button(li, "", "gm-m-case gm-m-due-" + d.colour, function () { self.open(c.id); });
        b.dataset.id = c.id;
        b.dataset.due = d.colour;
        var head = el("span", "gm-m-case-head");
        head.appendChild(el("span", "gm-m-due", d.text));
        head.appendChild(el("span", "gm-state gm-state-" + c.state, c.state_zh && self.core.lang === "zh" ? c.state_zh : t.states[c.state]));
        b.appendChild(head);
        b.appendChild(el("span", "gm-m-case-title", c.title));
        b.appendChild(el("span", "gm-m-case-meta", [c.category_name, c.address].filter(Boolean).join(" · ") || c.number));
        b.appendChild(el("span", "gm-m-case-number", c.number));
        self.list.appendChild(li);
      });
      this.core.mark("gmMobileCases", this.cases.map(function (c) { return c.id + ":" + c.state; }).join(","));
    },

    /* ----------------------------------------------------------------------------------------- one case */
    open: function (id) {
      var self = this;
      this.show("case");
      return Promise.all([this.core.get("cases/" + id),
        this.core.get("cases/" + id + "/attachments").catch(function () { return { items: [] }; })])
        .then(function (res) { self.current = res[0]; self.drawCase(res[0], res[1].items || []); })
        .catch(function (err) { self.core.fail(err); self.views["case"].replaceChildren(el("p", "gm-error", err.message)); });
    },

    drawCase: function (c, photos) {
      var t = this.t, self = this, v = this.views["case"], d = this.deadline(c);
      v.replaceChildren();
      button(v, t.back, "gm-m-back", function () { self.show("cases"); self.loadCases(); });
      var h = el("h2", "gm-m-title", c.title);
      v.appendChild(h);
      var badges = el("p", "gm-m-badges");
      badges.appendChild(el("span", "gm-m-due gm-m-due-" + d.colour, d.text));
      badges.appendChild(el("span", "gm-state gm-state-" + c.state, this.stateName(c)));
      v.appendChild(badges);
      this.message = el("p", "gm-m-message");
      this.message.setAttribute("role", "status");
      v.appendChild(this.message);
      this.error = el("p", "gm-error gm-m-error");
      this.error.setAttribute("role", "alert");
      v.appendChild(this.error);
      var table = el("table", "gm-m-table");
      row(table, t.number, c.number);
      row(table, t.category, c.category_name || c.category);
      row(table, t.address, c.address);
      row(table, t.description, c.description);
      row(table, t.reportedAt, GM.localTime(c.reported_at));
      if (c.deadline || c.due_at) { row(table, t.deadline, GM.localTime(c.deadline || c.due_at)); }
      var pending = c.pending_request || c.pending;
      if (pending) {
        row(table, t.pending, [t.units[pending.unit] ? t.extension + " " + pending.amount + " " + t.units[pending.unit] : pending.kind,
          pending.reason].filter(Boolean).join("：")).classList.add("gm-warn");
      }
      if (c.last_bounce) { row(table, t.lastBounce, [c.last_bounce.by, c.last_bounce.reason].filter(Boolean).join("：")); }
      v.appendChild(table);
      // the map and the ways there
      var slot = el("div", "gm-m-map");
      v.appendChild(slot);
      this.placeMap(slot);
      this.pins.clearLayers();
      if (c.lon !== null && c.lat !== null) {
        var at = this.core.point([c.lon, c.lat]);
        L.circleMarker(at, { radius: 9, color: "#fff", weight: 3, fillColor: "#c62828", fillOpacity: 1 }).addTo(this.pins);
        this.map.setView(at, 17);
        v.appendChild(this.navigation(c));
      }
      this.actions(v, c);
      if (photos.length) {
        v.appendChild(el("h3", null, t.photos));
        var strip = el("div", "gm-m-photos");
        photos.forEach(function (p) {
          var img = el("img");
          img.src = p.thumbnail_url;
          img.alt = (p.stage_zh && self.core.lang === "zh" ? p.stage_zh : p.stage) + " " + (p.at ? GM.localTime(p.at) : "");
          img.loading = "lazy";
          strip.appendChild(img);
        });
        v.appendChild(strip);
      }
      if (c.history && c.history.length) {
        v.appendChild(el("h3", null, t.history));
        var ol = el("ol", "gm-m-history");
        c.history.slice(-8).forEach(function (e) {
          var li = el("li");
          li.appendChild(el("span", "gm-muted", GM.localTime(e.at) + " "));
          li.appendChild(el("span", null, (self.core.lang === "zh" && e.action_zh) || t.actions[e.action] || e.action));
          if (e.detail && e.detail.reason) { li.appendChild(el("span", "gm-muted", "：" + e.detail.reason)); }
          ol.appendChild(li);
        });
        v.appendChild(ol);
      }
      this.core.mark("gmMobileCase", c.id + ":" + c.state);
    },

    stateName: function (c) { return this.core.lang === "zh" && c.state_zh ? c.state_zh : this.t.states[c.state] || c.state; },

    /* geo: is WGS84 (RFC 5870); AMap and Baidu take GCJ-02 here (converted with the same public formula as
     * gridmap.crs.wgs84_to_gcj02), and are told so (coordinate=gaode, coord_type=gcj02) */
    navigation: function (c) {
      var t = this.t, box = el("div", "gm-m-nav"), g = GM.gcj02(c.lat, c.lon), name = encodeURIComponent(c.title || c.number);
      box.appendChild(el("h3", null, t.navigate));
      var links = [
        ["amap", "https://uri.amap.com/marker?position=" + g[1].toFixed(6) + "," + g[0].toFixed(6) + "&name=" + name +
          "&coordinate=gaode&callnative=1&src=gridmap"],
        ["baidu", "https://api.map.baidu.com/marker?location=" + g[0].toFixed(6) + "," + g[1].toFixed(6) + "&title=" +
          encodeURIComponent(c.number) + "&content=" + name + "&coord_type=gcj02&output=html&src=gridmap"],
        ["geo", "geo:" + c.lat.toFixed(6) + "," + c.lon.toFixed(6) + "?q=" + c.lat.toFixed(6) + "," + c.lon.toFixed(6) + "(" + name + ")"]
      ];
      links.forEach(function (l) {
        var a = el("a", "gm-m-link gm-m-link-" + l[0], t[l[0]]);
        a.href = l[1];
        if (l[0] !== "geo") { a.target = "_blank"; a.rel = "noopener noreferrer"; }
        box.appendChild(a);
      });
      return box;
    },

    actions: function (v, c) {
      var t = this.t, self = this;
      if (c.state === "dispatched") {
        button(v, t.accept, "gm-m-button gm-m-primary gm-m-accept", function () { self.act(c, "accept", {}); });
        var bounce = this.fold(v, t.bounce, "gm-m-bounce");
        var reason = fieldOf(bounce.form, t.bounceReason, el("textarea"), "gm-m-bounce-reason");
        reason.maxLength = 2000;
        reason.rows = 3;
        this.submit(bounce.form, t.bounceSubmit, "gm-m-button gm-m-danger");
        bounce.form.addEventListener("submit", function (e) {
          e.preventDefault();
          if (!reason.value.trim()) { self.say(t.needReason, true); return; }
          self.act(c, "bounce", { reason: reason.value.trim() });
        });
      } else if (c.state === "accepted" || c.state === "rework") {
        var handle = this.fold(v, t.handle, "gm-m-handle", true);
        var note = fieldOf(handle.form, t.handleNote, el("textarea"), "gm-m-handle-note");
        note.maxLength = 4000;
        note.rows = 3;
        var before = fieldOf(handle.form, t.before, fileInput("before"), "gm-m-before");
        var after = fieldOf(handle.form, t.after, fileInput("after"), "gm-m-after");
        this.submit(handle.form, t.handleSubmit, "gm-m-button gm-m-primary");
        handle.form.addEventListener("submit", function (e) {
          e.preventDefault();
          var files = self.files(before, "before").concat(self.files(after, "after"));
          self.busy(handle.form, true);
          self.upload(c.id, files).then(function () {
            return self.act(c, "handle", note.value.trim() ? { note: note.value.trim() } : {});
          }).catch(function (err) { self.say(t.failed + err.message, true); })
            .finally(function () { self.busy(handle.form, false); });
        });
        if (!(c.pending_request || c.pending)) {
          var ext = this.fold(v, t.extension, "gm-m-extension");
          var why = fieldOf(ext.form, t.extensionReason, el("textarea"), "gm-m-extension-reason");
          why.maxLength = 2000;
          why.rows = 2;
          var line = el("div", "gm-m-row");
          var amount = fieldOf(line, t.amount, el("input"), "gm-m-extension-amount");
          amount.type = "number"; amount.min = "0.5"; amount.max = "30"; amount.step = "0.5"; amount.inputMode = "decimal";
          var unit = fieldOf(line, t.unit, el("select"), "gm-m-extension-unit");
          UNITS.forEach(function (u) { option(unit, u, t.units[u], u === "work_days"); });
          ext.form.appendChild(line);
          this.submit(ext.form, t.extensionSubmit, "gm-m-button");
          ext.form.addEventListener("submit", function (e) {
            e.preventDefault();
            var n = Number(amount.value);
            if (!why.value.trim()) { self.say(t.needReason, true); return; }
            if (!(n > 0 && n <= 30)) { self.say(t.needAmount, true); return; }
            self.act(c, "request_extension", { reason: why.value.trim(), amount: n, unit: unit.value });
          });
        }
      } else if (c.state === "handled") {
        v.appendChild(el("p", "gm-m-note", t.handled));
      }
    },

    fold: function (parent, title, cls, open) {
      var box = el("details", "gm-m-fold " + cls), form = el("form", "gm-m-form");
      box.appendChild(el("summary", null, title));
      box.appendChild(form);
      if (open) { box.open = true; }
      parent.appendChild(box);
      return { box: box, form: form };
    },

    submit: function (form, label, cls) {
      var b = el("button", cls, label);
      b.type = "submit";
      form.appendChild(b);
      return b;
    },

    busy: function (form, on) {
      Array.prototype.forEach.call(form.querySelectorAll("button"), function (b) { b.disabled = on; });
    },

    files: function (input, stage) {
      return Array.prototype.map.call(input.files || [], function (f) { return [f, stage]; });
    },

    /* a phone's camera photo (several MB) made smaller before it travels: at most 2048 px on its longer side, as
     * JPEG; small files, and anything the browser cannot decode, go as they are (the server judges them) */
    shrink: function (file) {
      if (file.size <= SHRINK_ABOVE || !window.createImageBitmap || !/^image\//.test(file.type || "image/")) {
        return Promise.resolve(file);
      }
      return createImageBitmap(file, { imageOrientation: "from-image" }).then(function (bitmap) {
        var k = Math.min(1, MAX_SIDE / Math.max(bitmap.width, bitmap.height));
        var canvas = document.createElement("canvas");
        canvas.width = Math.round(bitmap.width * k);
        canvas.height = Math.round(bitmap.height * k);
        canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
        bitmap.close();
        return new Promise(function (resolve) {
          canvas.toBlob(function (blob) { resolve(blob && blob.size < file.size ? blob : file); }, "image/jpeg", 0.85);
        });
      }).catch(function () { return file; });
    },

    /* photos one at a time (each is one request the server may refuse on its own) */
    upload: function (caseId, files) {
      var self = this, done = 0;
      if (!files.length) { return Promise.resolve(0); }
      this.say(this.t.uploading);
      return files.reduce(function (chain, item) {
        return chain.then(function () { return self.shrink(item[0]); }).then(function (file) {
          var form = new FormData();
          form.append("file", file, item[0].name || "photo.jpg");
          form.append("stage", item[1]);
          return self.core.request("POST", "cases/" + caseId + "/attachments", form).then(function () {
            done += 1;
            self.core.mark("gmMobilePhotos", done);
          });
        });
      }, Promise.resolve()).then(function () { self.say(done + " " + self.t.photoDone); return done; });
    },

    act: function (c, action, params) {
      var self = this, t = this.t;
      this.say("");
      return this.core.request("POST", "cases/" + c.id + "/actions/" + action,
        Object.assign({ version: c.version }, params)).then(function (res) {
        self.core.mark("gmMobileDone", action + ":" + res.state);
        return self.open(c.id).then(function () {
          self.say(t.done + (res.state === c.state ? t.actions[action] || action  // a request: the state stays
            : (self.core.lang === "zh" && res.state_zh) || t.states[res.state] || res.state));
          self.loadCases();
        });
      }).catch(function (err) { self.say(t.failed + err.message, true); });
    },

    say: function (text, isError) {
      var target = this.view === "patrol" ? this.patrol : this;
      if (!target.message) { return; }
      target.message.textContent = isError ? "" : text;
      target.error.textContent = isError ? text : "";
      (isError ? target.error : target.message).scrollIntoView({ block: "nearest" });
    },

    /* ----------------------------------------------------------------------------------------- a patrol report */
    buildPatrol: function () {
      var t = this.t, self = this, v = this.views.patrol, p = this.patrol = {};
      var form = p.form = el("form", "gm-m-form gm-m-patrol");
      form.noValidate = true;
      p.category = fieldOf(form, t.patrolCategory, el("select"), "gm-m-patrol-category");
      option(p.category, "", t.chooseCategory, true);
      p.title = fieldOf(form, t.patrolTitle, el("input"), "gm-m-patrol-title");
      p.title.maxLength = 200;
      p.description = fieldOf(form, t.patrolDesc, el("textarea"), "gm-m-patrol-description");
      p.description.rows = 2;
      p.description.maxLength = 4000;
      var where = el("div", "gm-m-where");
      button(where, t.locate, "gm-m-button gm-m-locate", function () { self.locate(); }).id = "gm-m-locate";
      p.where = el("p", "gm-m-position", t.noPosition);
      p.where.id = "gm-m-position";
      p.where.setAttribute("aria-live", "polite");
      where.appendChild(p.where);
      form.appendChild(where);
      this.patrolMap = el("div", "gm-m-map");
      this.patrolMap.id = "gm-m-patrol-map";
      this.patrolMap.title = t.mapHint;
      form.appendChild(this.patrolMap);
      p.photos = fieldOf(form, t.sitePhotos, fileInput("patrol"), "gm-m-patrol-photos");
      var spot = el("div", "gm-m-check");
      p.onSpot = el("input");
      p.onSpot.type = "checkbox";
      p.onSpot.id = "gm-m-onspot";
      var lab = el("label", null, t.onSpot);
      lab.htmlFor = "gm-m-onspot";
      spot.appendChild(p.onSpot);
      spot.appendChild(lab);
      form.appendChild(spot);
      var handled = el("div", "gm-m-onspot-fields");
      handled.hidden = true;
      p.note = fieldOf(handled, t.onSpotNote, el("textarea"), "gm-m-patrol-note");
      p.note.rows = 2;
      p.note.maxLength = 4000;
      p.after = fieldOf(handled, t.after, fileInput("after"), "gm-m-patrol-after");
      form.appendChild(handled);
      p.onSpot.addEventListener("change", function () { handled.hidden = !p.onSpot.checked; });
      p.message = el("p", "gm-m-message");
      p.message.setAttribute("role", "status");
      p.error = el("p", "gm-error gm-m-error");
      p.error.setAttribute("role", "alert");
      this.submit(form, t.patrolSubmit, "gm-m-button gm-m-primary");
      form.appendChild(p.message);
      form.appendChild(p.error);
      form.addEventListener("submit", function (e) { e.preventDefault(); self.sendPatrol(); });
      v.appendChild(form);
      this.core.get("categories").then(function (cats) {
        var groups = {};
        cats.forEach(function (c) {
          var key = c.major_class || "";
          if (!groups[key]) {
            groups[key] = el("optgroup");
            groups[key].label = key;
            p.category.appendChild(groups[key]);
          }
          option(groups[key], c.code, c.name);
        });
      }).catch(function (err) { self.core.fail(err); });
    },

    locate: function () {
      var self = this, t = this.t, p = this.patrol;
      if (!navigator.geolocation) { this.say(t.geoFailed + "—", true); return; }
      p.where.textContent = t.locating;
      navigator.geolocation.getCurrentPosition(function (pos) {
        self.setPosition([pos.coords.longitude, pos.coords.latitude], pos.coords.accuracy, "wgs84");  // as browsers give it
      }, function (err) {
        p.where.textContent = t.noPosition;
        self.say(t.geoFailed + err.message, true);
      }, { enableHighAccuracy: true, timeout: 15000, maximumAge: 30000 });
    },

    setPosition: function (lonlat, accuracy, crs) {
      var self = this, t = this.t, p = this.patrol;
      this.position = { lon: lonlat[0], lat: lonlat[1], accuracy: accuracy, crs: crs };
      p.where.textContent = t.position + " " + lonlat[0].toFixed(6) + ", " + lonlat[1].toFixed(6) +
        (accuracy ? "（" + t.accuracy + Math.round(accuracy) + t.metres + "）" : "");
      this.drawPosition();
      var q = "locate?crs=" + crs + "&lon=" + lonlat[0].toFixed(7) + "&lat=" + lonlat[1].toFixed(7) + (accuracy ? "&accuracy_m=" + Math.min(accuracy, 1000).toFixed(0) : "");
      this.core.get(q).then(function (res) {
        if (!res.grid || self.position.lon !== lonlat[0]) { return; }
        var mine = (self.core.config.areas || []).some(function (a) { return res.grid.code.indexOf(a) === 0; });
        p.where.appendChild(el("span", "gm-m-grid", " · " + t.inGrid + "：" + res.grid.name + (mine ? "" : t.outsideMine)));
        self.core.mark("gmMobileGrid", res.grid.code + (mine ? ":mine" : ":other"));
      }).catch(function (err) { self.core.fail(err); });
    },

    drawPosition: function () {
      if (!this.position || this.view !== "patrol") { return; }
      var at = this.position.crs === "gcj02" ? L.latLng(this.position.lat, this.position.lon)  // drawn as tapped
        : this.core.point([this.position.lon, this.position.lat]);
      this.pins.clearLayers();
      if (this.position.accuracy) { L.circle(at, { radius: this.position.accuracy, weight: 1, color: "#1565c0", fillOpacity: 0.1 }).addTo(this.pins); }
      L.circleMarker(at, { radius: 8, color: "#fff", weight: 3, fillColor: "#1565c0", fillOpacity: 1 }).addTo(this.pins);
      this.map.setView(at, Math.max(this.map.getZoom(), 17));
    },

    sendPatrol: function () {
      var self = this, t = this.t, p = this.patrol;
      if (!p.category.value) { this.say(t.needCategory, true); p.category.focus(); return; }
      if (!p.title.value.trim()) { this.say(t.needTitle, true); p.title.focus(); return; }
      if (!this.position) { this.say(t.needPoint, true); return; }
      var body = { title: p.title.value.trim(), category: p.category.value, lon: this.position.lon, lat: this.position.lat,
        crs: this.position.crs, handled_on_spot: p.onSpot.checked };
      if (p.description.value.trim()) { body.description = p.description.value.trim(); }
      if (p.onSpot.checked && p.note.value.trim()) { body.note = p.note.value.trim(); }
      var files = this.files(p.photos, "patrol").concat(p.onSpot.checked ? this.files(p.after, "after") : []);
      p.key = p.key || randomKey();  // a retry after a lost answer does not make a second case
      this.say("");
      this.busy(p.form, true);
      this.core.request("POST", "patrol-reports", body, { "Idempotency-Key": p.key }).then(function (c) {
        return self.upload(c.id, files).then(function () {
          p.key = null;
          p.form.reset();
          p.form.querySelector(".gm-m-onspot-fields").hidden = true;
          self.say(t.reported + c.number + " · " + self.stateName(c));
          self.core.mark("gmMobilePatrol", c.id + ":" + c.state);
          self.loadCases();
        });
      }).catch(function (err) { self.say(t.failed + err.message, true); })
        .finally(function () { self.busy(p.form, false); });
    },

    /* ------------------------------------------------------------------------------------------ notifications */
    loadNotes: function () {
      var self = this;
      return this.core.get("notifications?limit=50").then(function (res) {
        var items = res.items || [];
        var unread = res.unread !== undefined ? res.unread : items.filter(function (n) { return !n.read_at; }).length;
        self.tabs.notes.querySelector(".gm-m-count").textContent = unread ? String(unread) : "";
        self.drawNotes(items);
        self.core.mark("gmMobileNotes", unread);
      }).catch(function (err) { self.core.fail(err); });
    },

    drawNotes: function (items) {
      var t = this.t, self = this;
      this.noteList.replaceChildren();
      if (!items.length) { this.noteList.appendChild(el("li", "gm-m-empty", t.noNotes)); }
      items.forEach(function (n) {
        var li = el("li", "gm-m-item");
        var b = button(li, "", "gm-m-case gm-m-note-item" + (n.read_at ? "" : " gm-m-unread"), function () {
          var read = n.read_at ? Promise.resolve() : self.core.request("POST", "notifications/" + n.id + "/read");
          read.then(function () { self.loadNotes(); }).catch(function (err) { self.core.fail(err); });
          if (n.case_id) { self.open(n.case_id); }
        });
        var head = el("span", "gm-m-case-head");
        head.appendChild(el("span", "gm-m-kind", (self.core.lang === "zh" && n.kind_zh) || n.kind));
        head.appendChild(el("span", "gm-m-case-number", GM.localTime(n.at)));
        b.appendChild(head);
        b.appendChild(el("span", "gm-m-case-title", n.text));
        if (n.case_number) { b.appendChild(el("span", "gm-m-case-meta", n.case_number)); }
        self.noteList.appendChild(li);
      });
    }
  };

  window.GridmapPage = Page;
}());
