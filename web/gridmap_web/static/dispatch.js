/* gridmap dispatcher console: the queues (待处理, 已派遣, 待核查, 退单, 待审批, 超期) with counts, filters, sorting and
 * paging beside the map, refreshed by polling; a case's place, routing, holder, photos and full timeline; the steps
 * each role may take in the case's state (file, reject, void, dispatch, reassign, relocate, whistle, urge, supervise,
 * verify, send back, approve, deny, resume, merge); batch dispatch; a new case by clicking the map or typing an
 * address (the match confirmed before the pin moves); a sound and a desktop notification for new cases.
 * Text from the server → textContent. */
(function () {
  "use strict";
  var el = GM.el, row = GM.row, option = GM.option;

  var TEXT = {
    zh: {
      queues: { pending: "待处理", dispatched: "已派遣", verify: "待核查", bounced: "退单", approvals: "待审批", overdue: "超期" },
      empty: "队列为空", newBadge: "新", newCases: "条新事件",
      hint: "点击地图或输入地址新建事件；点击队列中的事件查看并处理。",
      number: "编号", state: "状态", category: "类别", source: "来源", reportedAt: "上报时间", address: "地址",
      description: "描述", routing: "派遣去向", chain: "所属网格", branch: "网格党支部", worker: "网格员",
      department: "职能部门", rule: "规则", method: "定位方式", flags: "提示", candidates: "附近网格",
      rules: { territory_first: "先属地（网格员）", owner_first: "先属主（权属部门）", override: "调度员指定", auto_file: "自动立案" },
      methods: { coordinates: "坐标", address: "地址" },
      flagNames: { on_boundary: "位于网格边界上", near_boundary: "边界附近", outside_all_grids: "不在任何网格内",
        assigned_to_nearest: "已归入最近网格", placed_by_address: "按地址定位", by_address: "按地址定位",
        address_low_confidence: "地址匹配置信度低", possibly_gcj02: "坐标可能为火星坐标（GCJ-02）",
        possibly_converted_twice: "坐标可能被重复转换", address_disagrees: "地址与坐标不在同一网格",
        address_not_matched: "地址未匹配", outside_own_grid: "不在上报人自己的网格内", relocated: "位置已更正", grid_chosen: "已人工选定网格" },
      flagOther: "其他定位提示", noGrid: "不在任何网格内",
      nearby: "附近未办结的同类事件", noneNearby: "无", actions: "操作", file: "立案", reject: "不予受理",
      dispatchAction: "派遣", byRules: "按规则派遣", toWorker: "派给网格员", toDepartment: "派给部门", reassign: "改派",
      whistle: "吹哨（上报部门）", merge: "合并到", void: "作废", reason: "原因", submit: "确定", chooseCategory: "选择类别",
      create: "在此新建事件", title: "标题", createSubmit: "新建并派遣", findAddress: "按地址定位", locate: "查找",
      created: "已新建", done: "已完成", distance: "距离", metres: "米", clock: "时限", due: "应办结",
      optional: "（可选）", none: "无", noStaff: "该网格无人员", reporter: "反映人",
      holder: "承办", noHolder: "无人承办", call: "拨打", timeLeft: "剩余", overdueBy: "超期",
      minutes: "分钟", hours: "小时", days: "天",
      relocate: "更正位置", relocateHint: "拖动地图上的标记，或点击地图，或选择附近的网格；须填写原因。",
      relocateTo: "更正到", toPin: "标记所在位置", pinAt: "标记位置", reasonRequired: "请填写原因。",
      urge: "催办", supervise: "督办", note: "说明", verifyAction: "核查结案", sendBack: "返工",
      approve: "批准", deny: "驳回", resume: "恢复办理", requestNone: "无待审批的申请",
      pendingRequest: "待审批的申请", kinds: { extension: "申请延期", suspension: "申请挂账" },
      units: { work_hours: "个工作小时", work_days: "个工作日", calendar_days: "天" },
      by: "申请人", at: "时间", lastBounce: "最近一次退单", bounceBy: "退单方", bounceWhy: "退单原因",
      evidence: "证据", evidenceGrid: "当时所在网格", showBoundary: "在地图上显示边界", point: "位置",
      timeline: "流转记录", photos: "照片", noPhotos: "无照片",
      stages: { report: "上报", before: "处置前", after: "处置后", patrol: "巡查" },
      filters: "筛选与排序", area: "区域", allAreas: "全部区域", allCategories: "全部类别", allSources: "全部来源",
      age: "上报至今", ages: { any: "不限", d1: "24小时内", d3: "1至3天", d7: "3至7天", older: "7天以上" },
      sort: "排序", sorts: { reported_at: "上报时间", deadline: "办理时限", overdue_by: "超期时长", updated_at: "最近更新" },
      orders: { asc: "从早到晚（从小到大）", desc: "从晚到早（从大到小）" }, apply: "应用", reset: "重置",
      prev: "上一页", next: "下一页", range: function (a, b, n) { return "第 " + a + "–" + b + " 条，共 " + n + " 条"; },
      batchDispatch: "批量派遣", selected: "已选", batchNone: "请先勾选要派遣的事件。", batchResults: "批量派遣结果",
      batchCategory: "未分类事件的立案类别", batchKeepCategory: "立案类别（未分类的事件）",
      ok: "成功", failed: "失败", select: "选择",
      alertOption: "新事件提醒（提示音和桌面通知）", alertTitle: "新事件", alertBody: function (n) { return "待处理新增 " + n + " 件。"; },
      notifyDenied: "浏览器未允许桌面通知，只播放提示音。",
      stale: "该事件已被他人更新，已重新加载最新内容，请核对后重试。",
      matched: "匹配到", confidence: "置信度", alternatives: "其他可能",
      confirmPlace: "确认并移动标记", noMatch: "未找到匹配的地点", fromPin: "距标记",
      confirmBecause: { low_confidence: "匹配置信度较低，请核对地址。", far_from_point: "匹配地点离当前标记较远，请核对。",
        alternatives: "还有其他可能的地点，请确认是哪一个。" },
      roles: { dispatcher: "调度员", worker: "网格员", department: "职能部门", verifier: "核查员", leader: "领导",
        resident: "群众", system: "系统", admin: "系统管理员", manager: "网格长", integration: "接口", api: "接口",
        reporter: "反映人", e2e: "测试" },
      steps: { reported: "上报", located: "定位", file: "立案", reject: "不予受理", void: "作废", dispatch: "派遣",
        reassign: "改派", accept: "签收", bounce: "退单", whistle: "吹哨", report_in: "报到", handle: "处置反馈",
        verify: "核查结案", send_back: "返工", rate: "评价", request_extension: "申请延期",
        request_suspension: "申请挂账", approve: "批准申请", deny: "驳回申请", resume: "恢复办理", merge: "合并",
        merge_in: "合并进入", escalate: "超期升级", relocate: "更正位置", urge: "催办", supervise: "督办",
        boundary_change: "边界调整", attach: "添加照片" },
      stepOther: "其他操作", comma: "，", colon: "：", lp: "（", rp: "）"
    },
    en: {
      queues: { pending: "To handle", dispatched: "Dispatched", verify: "To verify", bounced: "Bounced",
        approvals: "Approvals", overdue: "Overdue" },
      empty: "The queue is empty", newBadge: "new", newCases: "new cases",
      hint: "Click the map or type an address to create a case; click a case in a queue to review and act on it.",
      number: "Number", state: "State", category: "Category", source: "Source", reportedAt: "Reported", address: "Address",
      description: "Description", routing: "Routed to", chain: "Grid", branch: "Grid party branch", worker: "Grid worker",
      department: "Department", rule: "Rule", method: "Placed by", flags: "Flags", candidates: "Grids nearby",
      rules: { territory_first: "territory first (grid worker)", owner_first: "owner first (department)",
        override: "dispatcher's choice", auto_file: "filed automatically" },
      methods: { coordinates: "coordinates", address: "address" },
      flagNames: { on_boundary: "on a grid boundary", near_boundary: "near a grid boundary", outside_all_grids: "outside every grid",
        assigned_to_nearest: "given to the nearest grid", placed_by_address: "placed by address", by_address: "placed by address",
        address_low_confidence: "address match uncertain", possibly_gcj02: "coordinates may be GCJ-02",
        possibly_converted_twice: "coordinates may be converted twice", address_disagrees: "address and point in different grids",
        address_not_matched: "address not matched", outside_own_grid: "outside the reporter's own grid", relocated: "location corrected", grid_chosen: "grid chosen by hand" },
      flagOther: "other location flag", noGrid: "in no grid",
      nearby: "Open cases of the same category nearby", noneNearby: "None", actions: "Actions", file: "File",
      reject: "Reject", dispatchAction: "Dispatch", byRules: "by the rules", toWorker: "to a grid worker",
      toDepartment: "to a department", reassign: "Reassign", whistle: "Whistle (call in a department)", merge: "Merge into",
      void: "Void", reason: "Reason", submit: "OK", chooseCategory: "choose a category", create: "New case here",
      title: "Title", createSubmit: "Create and route", findAddress: "Find an address", locate: "Find", created: "Created",
      done: "Done", distance: "distance", metres: "m", clock: "Clock", due: "Due", optional: " (optional)", none: "None",
      noStaff: "no staff in this grid", reporter: "Reporter",
      holder: "Holder", noHolder: "nobody", call: "Call", timeLeft: "left", overdueBy: "overdue by",
      minutes: "min", hours: "h", days: "d",
      relocate: "Correct the location", relocateHint: "Drag the pin on the map, click the map, or pick a grid nearby; a reason is required.",
      relocateTo: "Move to", toPin: "where the pin is", pinAt: "Pin at", reasonRequired: "Please give a reason.",
      urge: "Urge", supervise: "Supervise", note: "Note", verifyAction: "Verify and close", sendBack: "Send back for rework",
      approve: "Approve", deny: "Deny", resume: "Resume", requestNone: "No request waits for approval",
      pendingRequest: "Request awaiting approval", kinds: { extension: "Extension", suspension: "Suspension" },
      units: { work_hours: " working hours", work_days: " working days", calendar_days: " days" },
      by: "By", at: "At", lastBounce: "Last bounce", bounceBy: "Bounced by", bounceWhy: "Reason",
      evidence: "Evidence", evidenceGrid: "Grid at the time", showBoundary: "show the boundary on the map", point: "Point",
      timeline: "Timeline", photos: "Photos", noPhotos: "No photos",
      stages: { report: "report", before: "before", after: "after", patrol: "patrol" },
      filters: "Filter and sort", area: "Area", allAreas: "all areas", allCategories: "all categories", allSources: "all sources",
      age: "Since reported", ages: { any: "any", d1: "under 24 h", d3: "1–3 days", d7: "3–7 days", older: "over 7 days" },
      sort: "Sort", sorts: { reported_at: "reported", deadline: "deadline", overdue_by: "overdue by", updated_at: "last update" },
      orders: { asc: "ascending", desc: "descending" }, apply: "Apply", reset: "Reset",
      prev: "Previous", next: "Next", range: function (a, b, n) { return a + "–" + b + " of " + n; },
      batchDispatch: "Dispatch selected", selected: "selected", batchNone: "Tick the cases to dispatch first.",
      batchCategory: "Category to file uncategorised cases under", batchKeepCategory: "Category (for uncategorised cases)",
      batchResults: "Batch dispatch", ok: "done", failed: "failed", select: "select",
      alertOption: "Alert me to new cases (sound and desktop notification)", alertTitle: "New cases",
      alertBody: function (n) { return n + " new case(s) to handle."; },
      notifyDenied: "Desktop notifications are not allowed by the browser; only the sound plays.",
      stale: "Someone else changed this case; it was reloaded. Check it and try again.",
      matched: "Matched", confidence: "confidence", alternatives: "Other candidates",
      confirmPlace: "Confirm and move the pin", noMatch: "No matching place", fromPin: "from the pin",
      confirmBecause: { low_confidence: "Low confidence: check the address.", far_from_point: "The match is far from the pin: check it.",
        alternatives: "Other places match too: confirm which one." },
      roles: { dispatcher: "dispatcher", worker: "grid worker", department: "department", verifier: "verifier",
        leader: "leader", resident: "resident", system: "system", admin: "administrator", manager: "grid manager",
        integration: "integration", api: "API", reporter: "reporter", e2e: "test" },
      steps: { reported: "Reported", located: "Located", file: "Filed", reject: "Rejected", void: "Voided",
        dispatch: "Dispatched", reassign: "Reassigned", accept: "Accepted", bounce: "Bounced", whistle: "Whistled",
        report_in: "Reported in", handle: "Handled", verify: "Verified and closed", send_back: "Sent back",
        rate: "Rated", request_extension: "Extension requested", request_suspension: "Suspension requested",
        approve: "Request approved", deny: "Request denied", resume: "Resumed", merge: "Merged", merge_in: "Merged in",
        escalate: "Escalated", relocate: "Location corrected", urge: "Urged", supervise: "Supervised",
        boundary_change: "Boundary changed", attach: "Photo added" },
      stepOther: "Other step", comma: ", ", colon: ": ", lp: " (", rp: ")"
    }
  };
  var QUEUES = ["pending", "dispatched", "verify", "bounced", "approvals", "overdue"];
  var DEFAULT_SORT = { pending: ["reported_at", "asc"], dispatched: ["deadline", "asc"], verify: ["updated_at", "asc"],
    bounced: ["updated_at", "desc"], approvals: ["updated_at", "asc"], overdue: ["overdue_by", "desc"] };
  var AGES = { any: [null, null], d1: [null, 24], d3: [24, 72], d7: [72, 168], older: [168, null] };
  var FIRST_QUEUE = { verifier: "verify", leader: "approvals" };
  var PAGE_SIZE = 20;
  var ALERT_KEY = "gridmap.dispatch.alert";
  var STALE = ["version", "If-Match"];

  function store(key, value) {
    try {
      if (value === undefined) { return window.localStorage.getItem(key); }
      window.localStorage.setItem(key, value);
    } catch (e) { /* storage off: the option lasts for this page only */ }
    return null;
  }

  var Page = {
    init: function (map, config) {
      var core = this.core = new GM.Core(map, config, "dispatch");
      this.map = map;
      this.config = config;
      this.role = config.role;
      this.t = Object.assign({}, core.t, TEXT[core.lang]);
      this.queue = FIRST_QUEUE[config.role] || "pending";
      this.filters = { area: "", category: "", source: "", age: "any", sort: "", order: "" };
      this.cursors = [null];  // where each page shown so far starts (the next_cursor of the page before it)
      this.seen = null;
      this.fresh = {};
      this.checked = {};
      this.counts = {};
      this.pendingCount = null;
      this.alerts = 0;
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
      map.on("click", function (e) {
        if (self.relocating) { self.relocating(e.latlng); return; }
        self.createAt(e.latlng);
      });
      Promise.all([core.get("categories"), core.get("departments")]).then(function (res) {
        self.categories = res[0];
        self.departments = res[1];
        self.fillFilterOptions();
      }).catch(function (err) { core.fail(err); });
      this.loadAreaChoices();
      this.areas.start();
      this.poll();
      this.timer = setInterval(function () { self.poll(); }, Math.max(1, config.poll_s || 5) * 1000);
    },

    /* ------------------------------------------------------------------------------------------ the panel */
    buildPanel: function () {
      var t = this.t, body = document.getElementById("gm-body"), self = this;
      var tabs = el("div", "gm-tabs gm-qtabs");
      tabs.setAttribute("role", "tablist");
      this.tabs = {};
      QUEUES.forEach(function (q) {
        var b = el("button", "gm-tab" + (q === self.queue ? " gm-tab-on" : ""));
        b.type = "button";
        b.dataset.queue = q;
        b.setAttribute("role", "tab");
        b.appendChild(el("span", "gm-tab-name", t.queues[q]));
        b.appendChild(el("span", "gm-count", ""));
        b.addEventListener("click", function () { self.switchTo(q); });
        tabs.appendChild(b);
        self.tabs[q] = b;
      });
      body.appendChild(tabs);
      body.appendChild(this.buildFilters());
      this.notice = el("div", "gm-notice");
      this.notice.setAttribute("aria-live", "polite");
      body.appendChild(this.notice);
      var batch = this.batchBar = el("div", "gm-batch");
      var batchButton = this.batchButton = el("button", "gm-batch-dispatch", t.batchDispatch);
      batchButton.type = "button";
      batchButton.addEventListener("click", function () { self.batchDispatch(); });
      this.batchCategory = el("select", "gm-batch-category");
      this.batchCategory.name = "batch_category";
      this.batchCategory.setAttribute("aria-label", t.batchCategory);
      option(this.batchCategory, "", t.batchKeepCategory);
      batch.appendChild(this.batchCategory);
      batch.appendChild(batchButton);
      this.batchInfo = el("span", "gm-muted", "");
      batch.appendChild(this.batchInfo);
      this.batchOut = el("div", "gm-batch-results");
      this.batchOut.setAttribute("aria-live", "polite");
      body.appendChild(batch);
      body.appendChild(this.batchOut);
      this.list = el("ul", "gm-queue");
      this.list.id = "gm-queue";
      body.appendChild(this.list);
      this.pager = el("div", "gm-pager");
      this.prev = el("button", "gm-prev", "‹ " + t.prev);
      this.next = el("button", "gm-next", t.next + " ›");
      this.prev.type = this.next.type = "button";
      this.range = el("span", "gm-range", "");
      // paged by cursor: forward with the page's next_cursor, back by the cursors of the pages before
      this.prev.addEventListener("click", function () {
        if (self.cursors.length > 1) { self.cursors.pop(); self.poll(); }
      });
      this.next.addEventListener("click", function () {
        if (self.nextCursor) { self.cursors.push(self.nextCursor); self.nextCursor = null; self.poll(); }
      });
      [this.prev, this.range, this.next].forEach(function (n) { self.pager.appendChild(n); });
      body.appendChild(this.pager);
      body.appendChild(this.buildAlertOption());
      body.appendChild(el("div", "gm-hint", t.hint));
      this.side = document.getElementById("gm-side");
      this.syncBatch();
    },

    switchTo: function (q) {
      this.queue = q;
      this.seen = null;
      this.cursors = [null];
      this.checked = {};
      this.batchOut.replaceChildren();
      this.filters.sort = "";
      this.filters.order = "";
      this.sortSelect.value = DEFAULT_SORT[q][0];
      this.orderSelect.value = DEFAULT_SORT[q][1];
      this.syncBatch();
      this.poll();
    },

    buildFilters: function () {
      var t = this.t, self = this, box = el("details", "gm-qfilters"), form = el("form", "gm-qform");
      box.appendChild(el("summary", null, t.filters));
      function field(label, control) {
        var lab = el("label", "gm-qfield");
        lab.appendChild(el("span", null, label));
        lab.appendChild(control);
        form.appendChild(lab);
        return control;
      }
      this.areaSelect = field(t.area, el("select"));
      this.areaSelect.name = "area";
      option(this.areaSelect, "", t.allAreas);
      this.categoryFilter = field(t.category, el("select"));
      this.categoryFilter.name = "category";
      option(this.categoryFilter, "", t.allCategories);
      this.sourceFilter = field(t.source, el("select"));
      this.sourceFilter.name = "source";
      option(this.sourceFilter, "", t.allSources);
      ["hotline", "miniprogram", "patrol", "referral", "open311", "api"].forEach(function (s) { option(self.sourceFilter, s, t.sources[s]); });
      this.ageFilter = field(t.age, el("select"));
      this.ageFilter.name = "age";
      Object.keys(AGES).forEach(function (a) { option(self.ageFilter, a, t.ages[a]); });
      this.sortSelect = field(t.sort, el("select"));
      this.sortSelect.name = "sort";
      Object.keys(t.sorts).forEach(function (s) { option(self.sortSelect, s, t.sorts[s]); });
      this.sortSelect.value = DEFAULT_SORT[this.queue][0];
      this.orderSelect = field("", el("select"));
      this.orderSelect.name = "order";
      this.orderSelect.setAttribute("aria-label", t.sort);
      option(this.orderSelect, "asc", t.orders.asc);
      option(this.orderSelect, "desc", t.orders.desc);
      this.orderSelect.value = DEFAULT_SORT[this.queue][1];
      var buttons = el("div", "gm-qbuttons");
      var reset = el("button", "gm-qreset", t.reset), apply = el("button", "gm-qapply", t.apply);
      reset.type = "button";
      apply.type = "submit";
      buttons.appendChild(reset);
      buttons.appendChild(apply);
      form.appendChild(buttons);
      form.addEventListener("submit", function (e) {
        e.preventDefault();
        if (self.filters.area !== self.areaSelect.value) { self.pendingCount = null; }  // another area's count is no news
        self.filters = { area: self.areaSelect.value, category: self.categoryFilter.value, source: self.sourceFilter.value,
          age: self.ageFilter.value, sort: self.sortSelect.value, order: self.orderSelect.value };
        self.cursors = [null];
        self.seen = null;
        box.open = false;  // the list, not the form, is what one looks at next (on a phone it fills the panel)
        self.poll();
      });
      reset.addEventListener("click", function () {
        form.reset();
        self.sortSelect.value = DEFAULT_SORT[self.queue][0];
        self.orderSelect.value = DEFAULT_SORT[self.queue][1];
        self.filters = { area: "", category: "", source: "", age: "any", sort: "", order: "" };
        self.pendingCount = null;
        self.cursors = [null];
        self.poll();
      });
      box.appendChild(form);
      return box;
    },

    fillFilterOptions: function () {
      var s = this.categoryFilter, groups = {}, b = this.batchCategory;
      (this.categories || []).forEach(function (c) { (groups[c.major_class] = groups[c.major_class] || []).push(c); });
      Object.keys(groups).forEach(function (major) {
        var g = el("optgroup");
        g.label = major;
        groups[major].forEach(function (c) { option(g, c.code, c.name); });
        s.appendChild(g);
        b.appendChild(g.cloneNode(true));
      });
    },

    /* the sub-districts and communities the account may see, for the area filter */
    loadAreaChoices: function () {
      var self = this, core = this.core;
      Promise.all([core.get("areas?level=subdistrict&precision=3"), core.get("areas?level=community&precision=3")]).then(function (res) {
        var subs = res[0].features, comms = res[1].features;
        subs.forEach(function (s) {
          var p = s.properties, g = el("optgroup");
          g.label = p.name;
          option(g, p.code, p.name);
          comms.filter(function (c) { return c.properties.code.indexOf(p.code) === 0; }).forEach(function (c) {
            option(g, c.properties.code, "　" + c.properties.name);
          });
          self.areaSelect.appendChild(g);
        });
      }).catch(function (err) { core.fail(err); });
    },

    buildAlertOption: function () {
      var t = this.t, self = this, lab = el("label", "gm-alert-option"), box = el("input");
      box.type = "checkbox";
      box.name = "alert";
      box.checked = store(ALERT_KEY) === "1";
      lab.appendChild(box);
      lab.appendChild(el("span", null, t.alertOption));
      this.alertOn = box.checked;
      box.addEventListener("change", function () {
        self.alertOn = box.checked;
        store(ALERT_KEY, box.checked ? "1" : "0");
        if (box.checked) {
          self.audio();  // made on the click: browsers let a page play sound only after a gesture
          if (window.Notification && Notification.permission === "default") {
            Promise.resolve(Notification.requestPermission()).then(function (p) {
              self.core.mark("gmNotify", p);
              if (p === "denied") { self.notice.textContent = t.notifyDenied; }
            });
          } else if (window.Notification) {
            self.core.mark("gmNotify", Notification.permission);
            if (Notification.permission === "denied") { self.notice.textContent = t.notifyDenied; }
          }
        }
      });
      return lab;
    },

    audio: function () {
      if (!this.audioContext) {
        var Ctx = window.AudioContext || window.webkitAudioContext;
        if (Ctx) { this.audioContext = new Ctx(); }
      }
      return this.audioContext;
    },

    /* a short two-tone chime and, when allowed, a desktop notification */
    alert: function (added) {
      var t = this.t, ctx = this.audio();
      this.alerts += 1;
      this.core.mark("gmAlerts", this.alerts);
      if (ctx) {
        try {
          [880, 1320].forEach(function (f, i) {
            var osc = ctx.createOscillator(), gain = ctx.createGain(), at = ctx.currentTime + i * 0.18;
            osc.frequency.value = f;
            gain.gain.setValueAtTime(0.15, at);
            gain.gain.exponentialRampToValueAtTime(0.001, at + 0.16);
            osc.connect(gain);
            gain.connect(ctx.destination);
            osc.start(at);
            osc.stop(at + 0.17);
          });
        } catch (e) { /* no sound device */ }
      }
      if (window.Notification && Notification.permission === "granted") {
        try {
          var n = new Notification(t.alertTitle, { body: t.alertBody(added), tag: "gridmap-new-cases" });
          var self = this;
          n.onclick = function () { window.focus(); n.close(); if (self.queue !== "pending") { self.switchTo("pending"); } };
          this.core.mark("gmNotified", this.alerts);
        } catch (e) { /* a browser that only notifies from a service worker */ }
      }
    },

    /* ------------------------------------------------------------------------------------------ queues */
    query: function () {
      var f = this.filters, parts = ["limit=" + PAGE_SIZE], cursor = this.cursors[this.cursors.length - 1];
      if (cursor) { parts.push("cursor=" + encodeURIComponent(cursor)); }  // the total is counted on the first page only
      var sort = f.sort || DEFAULT_SORT[this.queue][0], order = f.order || DEFAULT_SORT[this.queue][1];
      parts.push("sort=" + sort, "order=" + order);
      if (f.area) { parts.push("area=" + encodeURIComponent(f.area)); }
      if (f.category) { parts.push("category=" + encodeURIComponent(f.category)); }
      if (f.source) { parts.push("source=" + encodeURIComponent(f.source)); }
      var age = AGES[f.age] || AGES.any;
      if (age[0] !== null) { parts.push("min_age_h=" + age[0]); }
      if (age[1] !== null) { parts.push("max_age_h=" + age[1]); }
      return parts.join("&");
    },

    /* the counts of every queue and the page of the queue shown, every poll_s seconds */
    poll: function () {
      var self = this;
      if (this.polling) { this.pollAgain = true; return this.polling; }  // one poll at a time; the newest wish wins
      this.polling = this.pollOnce().then(function () {
        self.polling = null;
        if (self.pollAgain) { self.pollAgain = false; return self.poll(); }
        return null;
      });
      return this.polling;
    },

    pollOnce: function () {
      var self = this, t = this.t, queue = this.queue, q = this.query();
      QUEUES.forEach(function (name) { self.tabs[name].classList.toggle("gm-tab-on", name === queue); });
      var area = this.filters.area ? "?area=" + encodeURIComponent(this.filters.area) : "";
      var counts = this.core.get("queues" + area).then(function (res) {
        if (area !== (self.filters.area ? "?area=" + encodeURIComponent(self.filters.area) : "")) { return; }  // asked for another area
        res.items.forEach(function (item) {
          self.counts[item.name] = item.count;
          if (self.tabs[item.name]) { self.tabs[item.name].querySelector(".gm-count").textContent = String(item.count); }
        });
        var pending = self.counts.pending;
        if (self.pendingCount !== null && pending > self.pendingCount && self.alertOn) {
          self.alert(pending - self.pendingCount);
        }
        self.pendingCount = pending;
        self.core.mark("gmCounts", QUEUES.map(function (n) { return n + ":" + self.counts[n]; }).join(","));
      }).catch(function (err) { self.core.fail(err); });
      var page = this.core.get("queues/" + queue + "?" + q).then(function (res) {
        if (queue !== self.queue || q !== self.query()) { return; }  // another queue, page or filter meanwhile
        var ids = res.items.map(function (c) { return c.id; });
        if (self.seen) {
          ids.forEach(function (id) { if (!self.seen[id]) { self.fresh[id] = true; } });
        } else {
          self.seen = {};
        }
        ids.forEach(function (id) { self.seen[id] = true; });
        var newOnes = ids.filter(function (id) { return self.fresh[id]; }).length;
        if (self.notice.textContent !== t.notifyDenied || newOnes) {
          self.notice.textContent = newOnes ? newOnes + " " + t.newCases : "";
        }
        if (res.total !== null && res.total !== undefined) { self.total = res.total; }  // after a cursor: not counted
        self.nextCursor = res.next_cursor || null;
        self.items = res.items;
        // redraw only when something shown changed: a row replaced under the finger is a missed tap
        var shown = JSON.stringify([res.items.map(function (c) { return [c.id, c.version, c.state, c.time_left_s === null ? null :
          Math.round((c.time_left_s || 0) / 60), c.overdue_by_s === null ? null : Math.round((c.overdue_by_s || 0) / 60)]; }),
          self.current, Object.keys(self.fresh), Object.keys(self.checked)]);
        if (shown !== self.shown) { self.shown = shown; self.drawQueue(res.items); }
        self.drawPager(res);
        self.syncBatch();
        self.core.mark("gmQueueName", queue);
        self.core.mark("gmQueue", self.total);
        self.core.mark("gmQueueIds", ids.join(","));
      }).catch(function (err) { self.core.fail(err); });
      return Promise.all([counts, page]).then(function () {
        self.core.mark("gmPolls", (Number(document.body.dataset.gmPolls) || 0) + 1);
      });
    },

    drawPager: function (res) {
      // the total as the first page counted it (cases added since are in the tabs' counts)
      var t = this.t, start = (this.cursors.length - 1) * PAGE_SIZE, n = Math.max(this.total || 0, start + res.items.length);
      var a = res.items.length ? start + 1 : 0, b = start + res.items.length;
      this.range.textContent = t.range(a, b, n);
      this.prev.disabled = this.cursors.length <= 1;
      this.next.disabled = !res.next_cursor;
      this.pager.hidden = this.cursors.length <= 1 && !res.next_cursor;
    },

    /* how long is left, or how long past: 剩余 3 小时 / 超期 2 天 */
    duration: function (seconds) {
      var t = this.t, s = Math.abs(seconds);
      if (s < 3600) { return Math.max(1, Math.round(s / 60)) + " " + t.minutes; }
      if (s < 48 * 3600) { return Math.round(s / 3600) + " " + t.hours; }
      return Math.round(s / 86400) + " " + t.days;
    },

    timeText: function (c) {
      var t = this.t;
      if (c.overdue_by_s !== null && c.overdue_by_s !== undefined) { return { late: true, text: t.overdueBy + " " + this.duration(c.overdue_by_s) }; }
      if (c.time_left_s !== null && c.time_left_s !== undefined) {
        return { late: false, text: this.core.lang === "zh" ? t.timeLeft + " " + this.duration(c.time_left_s) : this.duration(c.time_left_s) + " " + t.timeLeft };
      }
      return null;
    },

    flagName: function (f) { return this.t.flagNames[f] || this.t.flagOther; },
    stateName: function (s) { return this.t.states[s] || this.t.stepOther; },
    sourceName: function (s) { return this.t.sources[s] || (this.core.lang === "zh" ? "其他来源" : "other"); },

    drawQueue: function (items) {
      var t = this.t, self = this;
      this.list.replaceChildren();
      this.markers.clearLayers();
      if (!items.length) { this.list.appendChild(el("li", "gm-empty", t.empty)); }
      items.forEach(function (c) {
        var li = el("li", "gm-queue-item" + (c.id === self.current ? " gm-current" : ""));
        li.dataset.caseId = String(c.id);
        li.dataset.state = c.state;
        var head = el("div", "gm-queue-head");
        if (self.role === "dispatcher" && (c.state === "filed" || c.state === "reported")) {
          var box = el("input", "gm-pick");
          box.type = "checkbox";
          box.checked = !!self.checked[c.id];
          box.setAttribute("aria-label", t.select + " " + c.number);
          box.addEventListener("click", function (e) { e.stopPropagation(); });
          box.addEventListener("change", function () {
            if (box.checked) { self.checked[c.id] = { version: c.version, number: c.number, state: c.state, category: c.category }; } else { delete self.checked[c.id]; }
            self.syncBatch();
          });
          if (self.checked[c.id]) { self.checked[c.id].version = c.version; self.checked[c.id].state = c.state; }
          head.appendChild(box);
        }
        head.appendChild(el("span", "gm-state gm-state-" + c.state, self.stateName(c.state)));
        if (c.clock) { head.appendChild(el("span", "gm-clock gm-clock-" + c.clock.colour, t.clocks[c.clock.colour])); }
        if (self.fresh[c.id]) { head.appendChild(el("span", "gm-new", t.newBadge)); }
        head.appendChild(el("span", "gm-queue-number", c.number));
        li.appendChild(head);
        li.appendChild(el("div", "gm-queue-title", c.title));
        li.appendChild(el("div", "gm-queue-meta", (c.category_name || "—") + " · " + self.sourceName(c.source) + " · " + GM.localTime(c.reported_at)));
        var who = el("div", "gm-queue-who"), time = self.timeText(c);
        if ((c.holder && c.holder.name) || ["reported", "filed"].indexOf(c.state) < 0) {
          who.appendChild(el("span", "gm-holder", t.holder + t.colon + ((c.holder && c.holder.name) || t.noHolder)));
        }
        if (time) { who.appendChild(el("span", "gm-time" + (time.late ? " gm-late" : ""), time.text)); }
        if (who.childNodes.length) { li.appendChild(who); }
        if ((c.flags || []).length) {
          var flags = el("div", "gm-queue-flags");
          flags.appendChild(el("span", "gm-muted", t.flags + t.colon));
          c.flags.forEach(function (f) { flags.appendChild(el("span", "gm-flag", self.flagName(f))); });
          li.appendChild(flags);
        }
        if (c.last_bounce && (self.queue === "bounced" || c.state === "filed")) {
          li.appendChild(el("div", "gm-queue-bounce", t.bounceWhy + t.colon + (c.last_bounce.reason || "—")));
        }
        if (c.pending_request) {
          li.appendChild(el("div", "gm-queue-request", self.requestText(c.pending_request)));
        }
        li.addEventListener("click", function () { self.open(c.id); });
        self.list.appendChild(li);
        if (c.lon !== null && c.lon !== undefined) {
          var m = L.circleMarker(self.core.point([c.lon, c.lat]), { radius: 7, color: "#fff", weight: 1.5,
            fillColor: (c.clock && GM.CLOCK_COLOURS[c.clock.colour]) || GM.STATE_COLOURS[c.state], fillOpacity: 0.95 });
          m.on("click", function (e) { L.DomEvent.stopPropagation(e); self.open(c.id); });
          m.addTo(self.markers);
        }
      });
    },

    requestText: function (r) {
      var t = this.t, text = t.kinds[r.kind] || t.stepOther;
      if (r.kind === "extension" && r.amount) { text += " " + r.amount + (t.units[r.unit] || ""); }
      if (r.reason) { text += t.comma + t.reason + t.colon + r.reason; }
      return text;
    },

    syncBatch: function () {
      var n = Object.keys(this.checked).length, t = this.t;
      var ready = (this.items || []).some(function (c) { return c.state === "filed" || c.state === "reported"; });
      var self = this, toFile = Object.keys(this.checked).some(function (id) { return self.checked[id].state === "reported"; });
      this.batchBar.hidden = !(this.role === "dispatcher" && (ready || n > 0));
      this.batchCategory.hidden = !toFile;
      this.batchButton.disabled = n === 0;
      this.batchInfo.textContent = n ? t.selected + " " + n : "";
    },

    /* 批量派遣: the ticked cases still to file are filed first (with the chosen category, where they have none),
     * then every filed one is dispatched by the rules; each case's result is shown (one failing stops no other) */
    batchDispatch: function () {
      var self = this, t = this.t, ids = Object.keys(this.checked);
      if (!ids.length) { this.batchOut.textContent = t.batchNone; return Promise.resolve(); }
      var picked = ids.map(function (id) { return Object.assign({ id: Number(id) }, self.checked[id]); });
      var toFile = picked.filter(function (c) { return c.state === "reported"; });
      var outcome = {};
      picked.forEach(function (c) { outcome[c.id] = { number: c.number }; });
      this.batchOut.replaceChildren();
      var category = this.batchCategory.value;
      // those with a category keep it; the chosen one is for those without
      var groups = [toFile.filter(function (c) { return c.category; }), toFile.filter(function (c) { return !c.category; })];
      var filing = Promise.all(groups.map(function (group, i) {
        if (!group.length) { return { results: [] }; }
        var body = { items: group.map(function (c) { return { id: c.id, version: c.version }; }) };
        if (i === 1 && category) { body.category = category; }
        return self.core.request("POST", "cases/batch/file", body);
      })).then(function (both) { return { results: both[0].results.concat(both[1].results) }; });
      return filing.then(function (res) {
        res.results.forEach(function (r) {
          if (r.ok) {
            picked.forEach(function (c) { if (c.id === r.id) { c.version = r.version; c.state = r.state; } });
          } else {
            outcome[r.id].error = (r.error && r.error.detail) || "";
          }
          if (r.number) { outcome[r.id].number = r.number; }
        });
        var ready = picked.filter(function (c) { return c.state === "filed" && !outcome[c.id].error; });
        if (!ready.length) { return { results: [] }; }
        return self.core.request("POST", "cases/batch/dispatch",
          { items: ready.map(function (c) { return { id: c.id, version: c.version }; }) });
      }).then(function (res) {
        res.results.forEach(function (r) {
          if (r.ok) { outcome[r.id].state = r.state; } else { outcome[r.id].error = (r.error && r.error.detail) || ""; }
          if (r.number) { outcome[r.id].number = r.number; }
        });
        self.batchOut.appendChild(el("strong", null, t.batchResults));
        var list = el("ul", "gm-batch-list"), good = 0;
        picked.forEach(function (c) {
          var o = outcome[c.id], ok = !o.error && o.state;
          var li = el("li", ok ? "gm-ok" : "gm-error");
          li.dataset.caseId = String(c.id);
          if (ok) { good += 1; }
          li.textContent = (o.number || String(c.id)) + t.colon + (ok ? t.ok + t.lp + self.stateName(o.state) + t.rp : t.failed + t.colon + (o.error || ""));
          list.appendChild(li);
        });
        self.batchOut.appendChild(list);
        self.checked = {};
        self.syncBatch();
        self.core.mark("gmBatch", good + "/" + picked.length);
        return self.poll();
      }).catch(function (err) {
        self.batchOut.appendChild(el("div", "gm-error", err.message));
      });
    },

    /* ------------------------------------------------------------------------------------------ one case */
    open: function (id) {
      var self = this;
      this.current = id;
      delete this.fresh[id];
      var attachments = this.core.get("cases/" + id + "/attachments").catch(function () { return { items: [] }; });
      return Promise.all([this.core.get("cases/" + id), this.core.get("cases/" + id + "/duplicates"), attachments]).then(function (res) {
        self.show(res[0], res[1].items, (res[2] && res[2].items) || []);
        Array.prototype.forEach.call(self.list.querySelectorAll(".gm-queue-item"), function (li) {
          li.classList.toggle("gm-current", li.dataset.caseId === String(id));
        });
      }).catch(function (err) { self.core.fail(err); });
    },

    show: function (c, nearby, photos) {
      var t = this.t, side = this.side, self = this;
      this.relocating = null;
      this.case = c;
      side.replaceChildren();
      side.hidden = false;
      side.dataset.caseId = String(c.id);
      side.dataset.state = c.state;
      var close = el("button", "gm-close", "×");
      close.type = "button";
      close.setAttribute("aria-label", this.core.lang === "zh" ? "关闭" : "Close");
      close.addEventListener("click", function () { side.hidden = true; self.focus.clearLayers(); self.current = null; self.relocating = null; });
      side.appendChild(close);
      side.appendChild(el("h2", "gm-case-title", c.title));
      var info = el("table", "gm-info");
      row(info, t.number, c.number);
      row(info, t.state, this.stateName(c.state));
      row(info, t.category, c.category_name);
      row(info, t.source, this.sourceName(c.source));
      row(info, t.reportedAt, GM.localTime(c.reported_at));
      var time = this.timeText(c);
      if (c.clock || time) {
        var clock = [c.clock ? t.clocks[c.clock.colour] : null, time ? time.text : null,
          c.due_at ? t.due + " " + GM.localTime(c.due_at) : null].filter(Boolean).join(" · ");
        row(info, t.clock, clock).className = time && time.late ? "gm-warn" : "";
      }
      row(info, t.holder, this.holderNode(c.holder));
      row(info, t.address, c.address);
      if (c.reporter_name || c.reporter_phone) {
        row(info, t.reporter, this.holderNode({ name: c.reporter_name || "—", phone: c.reporter_phone }));
      }
      side.appendChild(info);
      if (c.description) { side.appendChild(el("p", "gm-desc", c.description)); }
      if (c.last_bounce) { side.appendChild(this.bounceBox(c.last_bounce)); }
      if (c.pending_request) { side.appendChild(this.requestBox(c.pending_request)); }
      this.actions(c, nearby);
      side.appendChild(this.photoBox(photos));
      var r = c.routing || {};
      side.appendChild(el("h3", null, t.routing));
      var routing = el("table", "gm-routing");
      row(routing, t.chain, (r.chain || []).filter(function (a) { return a.level !== "district"; })
        .map(function (a) { return a.name || a.code; }).join(" › "));
      row(routing, t.branch, r.branch && r.branch.name);
      row(routing, t.worker, r.worker && r.worker.name);
      row(routing, t.department, r.department && r.department.name);
      row(routing, t.rule, r.rule && (t.rules[r.rule] || t.stepOther) + (r.routed_by && r.routed_by.reason ? " · " + r.routed_by.reason : ""));
      var loc = r.located || {};
      row(routing, t.method, t.methods[loc.method] || t.methods.coordinates);
      var flags = c.flags || loc.flags || [];
      var fl = row(routing, t.flags, flags.map(function (f) { return self.flagName(f); }).join(t.comma) || t.none);
      fl.className = flags.length ? "gm-warn" : "";
      row(routing, t.candidates, this.candidates(c).map(function (k) {
        return (k.name ? k.name + " " : "") + k.code + (k.distance_m !== undefined && k.distance_m !== null ? " · " + Math.round(k.distance_m) + t.metres : "");
      }).join(t.comma) || t.none);
      side.appendChild(routing);
      side.appendChild(this.timeline(c.history || []));
      side.appendChild(el("h3", null, t.nearby));
      var list = el("ul", "gm-nearby");
      if (!nearby.length) { list.appendChild(el("li", null, t.noneNearby)); }
      nearby.forEach(function (n) {
        var li = el("li"), a = el("a", null, n.number + " · " + n.title);
        a.href = "#";
        a.addEventListener("click", function (e) { e.preventDefault(); self.open(n.id); });
        li.appendChild(a);
        li.appendChild(el("span", "gm-muted", " · " + self.stateName(n.state) + " · " + t.distance + " " + Math.round(n.distance_m) + t.metres));
        list.appendChild(li);
      });
      side.appendChild(list);
      this.showOnMap(c, nearby);
      this.core.mark("gmCase", c.id + ":" + c.state);
    },

    /* the candidate grids: [{code, name, distance_m}] (older answers: codes in routing.located.candidates) */
    candidates: function (c) {
      if (c.candidates && c.candidates.length) { return c.candidates; }
      var codes = (c.routing && c.routing.located && c.routing.located.candidates) || [];
      return codes.map(function (code) { return typeof code === "string" ? { code: code } : code; });
    },

    holderNode: function (h) {
      var t = this.t, span = el("span", "gm-holder");
      if (!h || !h.name) { span.textContent = t.noHolder; return span; }
      span.appendChild(document.createTextNode(h.name + (h.kind === "department" ? t.lp + t.department + t.rp : "")));
      if (h.phone) {
        var digits = String(h.phone).replace(/[^\d+]/g, "");
        if (/\*/.test(h.phone) || digits.length < 5) {
          span.appendChild(document.createTextNode(" · " + h.phone));
        } else {
          var a = el("a", "gm-tel", h.phone);
          a.href = "tel:" + digits;
          a.setAttribute("aria-label", t.call + " " + h.name + " " + h.phone);
          span.appendChild(document.createTextNode(" · "));
          span.appendChild(a);
        }
      }
      return span;
    },

    actorText: function (actor) {
      var t = this.t, text = String(actor || ""), i = text.indexOf(":");
      if (i < 0) { return t.roles[text] || text; }
      var role = text.slice(0, i), name = text.slice(i + 1);
      return (t.roles[role] || "") + (t.roles[role] ? " " : "") + name;
    },

    bounceBox: function (b) {
      var t = this.t, self = this, box = el("div", "gm-bounce");
      box.appendChild(el("h3", null, t.lastBounce));
      var table = el("table");
      row(table, t.bounceBy, this.actorText(b.by));
      row(table, t.at, GM.localTime(b.at));
      row(table, t.bounceWhy, b.reason);
      var ev = b.evidence || {};
      if (ev.grid_code || ev.point) {
        var span = el("span");
        span.appendChild(document.createTextNode([ev.grid_code, ev.point && ev.point[0] !== null && ev.point[0] !== undefined ?
          t.point + " " + Number(ev.point[0]).toFixed(5) + ", " + Number(ev.point[1]).toFixed(5) : null].filter(Boolean).join(" · ")));
        if (ev.grid_code) {
          var show = el("button", "gm-linkish gm-show-boundary", t.showBoundary);
          show.type = "button";
          show.addEventListener("click", function () { self.outline(ev.grid_code, "#ef6c00", true); });
          span.appendChild(document.createTextNode(" "));
          span.appendChild(show);
        }
        row(table, t.evidence, span);
      }
      box.appendChild(table);
      return box;
    },

    requestBox: function (r) {
      var t = this.t, box = el("div", "gm-request");
      box.appendChild(el("h3", null, t.pendingRequest));
      var table = el("table");
      row(table, t.kinds[r.kind] || t.stepOther, r.kind === "extension" && r.amount ? r.amount + (t.units[r.unit] || "") : "—");
      row(table, t.reason, r.reason);
      row(table, t.by, this.actorText(r.by));
      row(table, t.at, GM.localTime(r.at));
      box.appendChild(table);
      return box;
    },

    photoBox: function (photos) {
      var t = this.t, box = el("div", "gm-photos");
      box.appendChild(el("h3", null, t.photos));
      if (!photos.length) { box.appendChild(el("div", "gm-muted", t.noPhotos)); return box; }
      photos.forEach(function (p) {
        var a = el("a", "gm-photo"), img = el("img");
        a.href = p.url;
        a.target = "_blank";
        a.rel = "noopener";
        img.src = p.thumbnail_url || p.url;
        img.alt = t.photos + " · " + (t.stages[p.stage] || "");
        img.loading = "lazy";
        a.appendChild(img);
        a.appendChild(el("span", "gm-photo-stage", t.stages[p.stage] || ""));
        box.appendChild(a);
      });
      return box;
    },

    /* 流转记录: every step, who took it, why, and a bounce's evidence */
    timeline: function (history) {
      var t = this.t, self = this, box = el("div", "gm-timeline-box");
      box.appendChild(el("h3", null, t.timeline));
      var ol = el("ol", "gm-timeline");
      history.forEach(function (e) {
        var li = el("li", "gm-event gm-event-" + e.action);
        li.dataset.action = e.action;
        var head = el("div", "gm-event-head");
        head.appendChild(el("span", "gm-event-at", GM.localTime(e.at)));
        var name = self.core.lang === "zh" && e.action_zh ? e.action_zh : (t.steps[e.action] || e.action_zh || t.stepOther);
        head.appendChild(el("strong", "gm-event-name", name));
        if (e.from_state && e.to_state && e.from_state !== e.to_state) {
          head.appendChild(el("span", "gm-muted", self.stateName(e.from_state) + " → " + self.stateName(e.to_state)));
        }
        li.appendChild(head);
        li.appendChild(el("div", "gm-event-actor", self.actorText(e.actor) + (e.case_number ? " · " + e.case_number : "")));
        var d = e.detail || {};
        var words = [d.reason, d.note].filter(function (w) { return typeof w === "string" && w.trim(); });
        if (words.length) { li.appendChild(el("div", "gm-event-reason", words.join(" · "))); }
        if (d.rule && t.rules[d.rule]) { li.appendChild(el("div", "gm-muted", t.rule + t.colon + t.rules[d.rule])); }
        if (e.action === "relocate") {
          var from = d.from_grid || d.from_grid_code || (d.from && d.from.grid_code), to = d.to_grid || d.grid_code || (d.to && d.to.grid_code);
          li.appendChild(el("div", "gm-muted", (from || t.noGrid) + " → " + (to || t.noGrid)));
        }
        if (e.action === "bounce" && d.evidence) {
          var ev = d.evidence;
          li.appendChild(el("div", "gm-event-evidence", t.evidence + t.colon + t.evidenceGrid + " " + (ev.grid_code || "—")));
        }
        ol.appendChild(li);
      });
      box.appendChild(ol);
      return box;
    },

    outline: function (code, colour, frame) {
      var self = this;
      return this.core.get("areas/" + encodeURIComponent(code)).then(function (f) {
        var layer = L.geoJSON(f, { coordsToLatLng: self.core.toLatLng, interactive: false,
          style: { color: colour, weight: 3, dashArray: "6 4", fillOpacity: 0.05 } }).addTo(self.focus);
        if (frame) { self.map.fitBounds(layer.getBounds(), { maxZoom: 17, animate: false }); }
        self.core.mark("gmOutlined", code);
      }).catch(function () { /* an old grid code: the point still shows */ });
    },

    showOnMap: function (c, nearby) {
      var self = this, focus = this.focus;
      focus.clearLayers();
      this.pin = null;
      if (c.lon === null || c.lon === undefined) { return; }
      var at = this.core.point([c.lon, c.lat]);
      L.circleMarker(at, { radius: 11, color: "#d81b60", weight: 3, fillOpacity: 0.15, interactive: false }).addTo(focus);
      nearby.forEach(function (n) {
        if (n.lon !== undefined && n.lon !== null) {
          L.circleMarker(self.core.point([n.lon, n.lat]), { radius: 6, color: "#6a1b9a", weight: 2, dashArray: "2 2", fillOpacity: 0.1 }).addTo(focus);
        }
      });
      if (c.grid_code) {
        this.core.get("areas/" + encodeURIComponent(c.grid_code)).then(function (f) {
          L.geoJSON(f, { coordsToLatLng: self.core.toLatLng, interactive: false,
            style: { color: "#d81b60", weight: 3, fillOpacity: 0.04 } }).addTo(focus);
        }).catch(function () { /* an old grid code */ });
      }
      this.candidates(c).forEach(function (k) {
        if (k.code === c.grid_code) { return; }
        self.core.get("areas/" + encodeURIComponent(k.code)).then(function (f) {
          L.geoJSON(f, { coordsToLatLng: self.core.toLatLng, interactive: false,
            style: { color: "#6a1b9a", weight: 2, dashArray: "6 4", fillOpacity: 0.04 } }).addTo(focus);
        }).catch(function () { /* an old grid code */ });
      });
      this.map.setView(at, Math.max(this.map.getZoom(), 16));
    },

    /* the steps this account may take on the case in its state */
    actions: function (c, nearby) {
      var t = this.t, side = this.side, self = this, s = c.state, role = this.role;
      var box = el("div", "gm-actions");
      box.appendChild(el("h3", null, t.actions));
      this.error = el("div", "gm-error");
      this.error.setAttribute("role", "alert");
      var open = ["closed", "rejected", "voided", "merged"].indexOf(s) < 0;
      if (role === "dispatcher") {
        if (["reported", "filed", "dispatched", "accepted"].indexOf(s) >= 0) { this.relocateForm(box, c); }
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
      }
      if ((role === "dispatcher" || role === "leader") && ["dispatched", "accepted", "rework"].indexOf(s) >= 0) {
        ["urge", "supervise"].forEach(function (step) {
          var u = self.form(box, step, t[step]);
          var note = self.reasonInput(u.form, true, t.note);
          u.onsubmit = function () { return { reason: note.value || null }; };
        });
      }
      if (role === "verifier" && s === "handled") {
        var v = this.form(box, "verify", t.verifyAction);
        v.onsubmit = function () { return {}; };
        var sb = this.form(box, "send_back", t.sendBack);
        var sbwhy = this.reasonInput(sb.form);
        sb.onsubmit = function () { return { reason: sbwhy.value }; };
      }
      if (role === "leader" && c.pending_request) {
        var ap = this.form(box, "approve", t.approve);
        ap.onsubmit = function () { return {}; };
        var dn = this.form(box, "deny", t.deny);
        var dnwhy = this.reasonInput(dn.form);
        dn.onsubmit = function () { return { reason: dnwhy.value }; };
      }
      if ((role === "leader" || role === "dispatcher") && s === "suspended") {
        this.form(box, "resume", t.resume);
      }
      if (role === "dispatcher" && ["reported", "filed", "dispatched", "accepted"].indexOf(s) >= 0 && nearby.length) {
        var mg = this.form(box, "merge", t.merge);
        var into = el("select");
        into.name = "into";
        into.setAttribute("aria-label", t.merge);
        nearby.forEach(function (n) { option(into, n.id, n.number + " · " + n.title); });
        mg.form.insertBefore(into, mg.form.lastChild);
        var mwhy = this.reasonInput(mg.form, true);
        mg.onsubmit = function () { return { into: Number(into.value), reason: mwhy.value || null }; };
      }
      if (role === "dispatcher" && ["reported", "filed", "dispatched"].indexOf(s) >= 0) {
        var vo = this.form(box, "void", t.void);
        var vwhy = this.reasonInput(vo.form);
        vo.onsubmit = function () { return { reason: vwhy.value }; };
      }
      if (box.querySelectorAll("details").length === 0) {
        box.appendChild(el("div", "gm-muted", open ? t.none : this.stateName(s)));
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
        var params = handle.onsubmit();
        if (params) { self.act(action, params); }
      });
      details.appendChild(form);
      box.appendChild(details);
      return handle;
    },

    reasonInput: function (form, optional, label) {
      var input = el("input");
      input.name = "reason";
      input.maxLength = 2000;
      input.placeholder = (label || this.t.reason) + (optional ? this.t.optional : "");
      input.setAttribute("aria-label", input.placeholder);
      if (!optional) { input.required = true; }
      form.insertBefore(input, form.lastChild);
      return input;
    },

    /* 更正位置: the pin dragged or put by a click/tap, or a candidate grid picked; a reason always */
    relocateForm: function (box, c) {
      var t = this.t, self = this, h = this.form(box, "relocate", t.relocate);
      var form = h.form, details = form.parentNode;
      form.insertBefore(el("div", "gm-muted", t.relocateHint), form.lastChild);
      var to = el("select");
      to.name = "to";
      to.setAttribute("aria-label", t.relocateTo);
      option(to, "pin", t.toPin);
      this.candidates(c).forEach(function (k) {
        if (k.code === c.grid_code) { return; }
        option(to, "grid:" + k.code, (k.name ? k.name + " " : "") + k.code +
          (k.distance_m !== undefined && k.distance_m !== null ? " · " + t.distance + " " + Math.round(k.distance_m) + t.metres : ""));
      });
      var lab = el("label", "gm-qfield");
      lab.appendChild(el("span", null, t.relocateTo));
      lab.appendChild(to);
      form.insertBefore(lab, form.lastChild);
      var where = el("div", "gm-pin-at gm-muted", "");
      form.insertBefore(where, form.lastChild);
      // or by an address: the match is shown and the pin moves only when confirmed
      var find = el("div", "gm-find gm-relocate-find"), addr = el("input"), go = el("button", null, t.locate);
      addr.name = "find";
      addr.placeholder = t.findAddress;
      addr.setAttribute("aria-label", t.findAddress);
      go.type = "button";
      find.appendChild(addr);
      find.appendChild(go);
      form.insertBefore(find, form.lastChild);
      var matchBox = el("div");
      form.insertBefore(matchBox, form.lastChild);
      var reason = this.reasonInput(form);
      var point = null;
      var lookup = this.addressFinder(matchBox, addr, function (at) {
        moved(at);
        self.map.setView(at, Math.max(self.map.getZoom(), 17));
      }, function () { return point; });
      go.addEventListener("click", function () { lookup(addr.value); });
      addr.addEventListener("keydown", function (e) { if (e.key === "Enter") { e.preventDefault(); lookup(addr.value); } });
      function place(latlng) {
        point = latlng;
        if (!self.pin) {
          var icon = L.divIcon({ className: "gm-drag-pin", html: "", iconSize: [28, 28], iconAnchor: [14, 14] });
          self.pin = L.marker(latlng, { draggable: true, icon: icon, autoPan: true, keyboard: true, title: t.relocate,
            zIndexOffset: 1000 }).addTo(self.focus);
          self.pin.on("dragend", function () { moved(self.pin.getLatLng()); });
        } else {
          self.pin.setLatLng(latlng);
        }
      }
      function moved(latlng) {
        point = latlng;
        if (self.pin) { self.pin.setLatLng(latlng); }
        to.value = "pin";
        where.textContent = t.pinAt + t.colon + latlng.lng.toFixed(5) + ", " + latlng.lat.toFixed(5);
        self.core.mark("gmPin", latlng.lat.toFixed(5) + "," + latlng.lng.toFixed(5));
      }
      details.addEventListener("toggle", function () {
        if (details.open) {
          var at = c.lon !== null && c.lon !== undefined ? self.core.point([c.lon, c.lat]) : self.map.getCenter();
          place(point || at);
          self.relocating = moved;
          self.core.mark("gmRelocating", c.id);
        } else {
          self.relocating = null;
        }
      });
      h.onsubmit = function () {
        if (!reason.value.trim()) { self.error.textContent = t.reasonRequired; reason.focus(); return null; }
        if (to.value.indexOf("grid:") === 0) { return { grid: to.value.slice(5), reason: reason.value }; }
        var p = point || (self.pin && self.pin.getLatLng());
        if (!p) { self.error.textContent = t.relocateHint; return null; }
        return { lon: Number(p.lng.toFixed(7)), lat: Number(p.lat.toFixed(7)), crs: self.core.gcj ? "gcj02" : "wgs84",
          reason: reason.value };
      };
    },

    categorySelect: function (form, current) {
      var s = el("select"), groups = {}, t = this.t;
      s.name = "category";
      s.setAttribute("aria-label", this.t.category);
      option(s, "", this.t.chooseCategory);
      (this.categories || []).forEach(function (c) { (groups[c.major_class] = groups[c.major_class] || []).push(c); });
      Object.keys(groups).forEach(function (major) {
        var g = el("optgroup");
        g.label = major;
        groups[major].forEach(function (c) { option(g, c.code, c.name + t.lp + c.code + t.rp, c.code === current); });
        s.appendChild(g);
      });
      form.insertBefore(s, form.lastChild);
      return s;
    },

    departmentSelect: function (form) {
      var s = el("select");
      s.name = "department";
      s.setAttribute("aria-label", this.t.department);
      (this.departments || []).forEach(function (d) { option(s, d.code, d.name); });
      form.insertBefore(s, form.lastChild);
      return s;
    },

    /* by the rules, to a grid worker of the case's grid, or to a department; a reason for any override */
    routeChoice: function (form, c, overrideOnly) {
      var t = this.t, self = this, mode = el("select");
      mode.name = "mode";
      mode.setAttribute("aria-label", t.dispatchAction);
      if (!overrideOnly) { option(mode, "rules", t.byRules); }
      option(mode, "worker", t.toWorker);
      option(mode, "department", t.toDepartment);
      var worker = el("select"), dept = el("select"), reason = el("input");
      worker.name = "assignee_id"; dept.name = "department"; reason.name = "reason";
      worker.setAttribute("aria-label", t.worker);
      dept.setAttribute("aria-label", t.department);
      reason.placeholder = t.reason;
      reason.setAttribute("aria-label", t.reason);
      (this.departments || []).forEach(function (d) { option(dept, d.code, d.name); });
      if (c.grid_code) {
        this.core.get("areas/" + encodeURIComponent(c.grid_code)).then(function (f) {
          var staff = (f.properties.staff || []).filter(function (s) { return /worker|grid_head/.test(s.role); });
          if (!staff.length) { option(worker, "", t.noStaff); }
          staff.forEach(function (s) { option(worker, s.id, (self.core.lang === "zh" ? s.role_zh : (s.role_en || s.role_zh)) + " · " + s.name); });
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
      var self = this, id = this.current, t = this.t;
      this.error.textContent = "";
      var body = Object.assign({ version: this.version }, params);
      Object.keys(body).forEach(function (k) { if (body[k] === "" || body[k] === undefined || body[k] === null) { delete body[k]; } });
      return this.core.request("POST", "cases/" + id + "/actions/" + action, body).then(function (c) {
        self.core.mark("gmLastAction", action + ":" + c.id + ":" + c.state);
        self.core.status(t.done + t.colon + self.stateName(c.state));
        self.poll();
        return self.open(c.id);
      }).catch(function (err) {
        var field = err.problem && err.problem.field;
        if ((err.status === 409 || err.status === 412) && STALE.indexOf(field) >= 0) {
          // someone else moved the case on: show what it is now, and say so
          return self.open(id).then(function () {
            self.error.textContent = t.stale;
            self.core.mark("gmStale", id);
            self.core.mark("gmLastError", field);
          });
        }
        self.error.textContent = err.message;
        self.core.mark("gmLastError", field || err.status);
      });
    },

    /* ------------------------------------------------------------------------------------------ addresses */
    /* look an address up and show what it matched, how sure, and the alternatives; `onConfirm(point, label)`
     * only when the user confirms (the pin never moves silently) */
    addressFinder: function (container, input, onConfirm, near) {
      var t = this.t, self = this, out = el("div", "gm-match");
      out.setAttribute("aria-live", "polite");
      container.appendChild(out);
      function conf(v) { return v === undefined || v === null ? "" : t.lp + t.confidence + " " + Math.round(Number(v) * 100) + "%" + t.rp; }
      function placeText(p) {
        var where = [p.address && p.address !== p.name ? p.address : null, p.grid && p.grid.name ? p.grid.name : null,
          p.distance_m !== undefined && p.distance_m !== null ? t.fromPin + " " + self.distanceText(p.distance_m) : null];
        return where.filter(Boolean).join(" · ");
      }
      function lookup(text) {
        out.replaceChildren();
        if (!text.trim()) { return Promise.resolve(); }
        var url = "address-matches?q=" + encodeURIComponent(text), pin = near && near();
        if (pin && !self.core.gcj) { url += "&near_lon=" + pin.lng.toFixed(6) + "&near_lat=" + pin.lat.toFixed(6); }
        return self.core.get(url).then(function (m) {
          var place = m.matched_place, alternatives = m.alternatives || [];
          self.core.mark("gmMatch", place ? "matched" : "none");
          if (place) {
            var line = el("div", "gm-match-place");
            line.appendChild(el("span", null, t.matched + t.colon));
            line.appendChild(el("strong", null, place.name || text));
            line.appendChild(el("span", "gm-match-conf" + (m.confidence < 0.8 ? " gm-late" : ""), conf(m.confidence)));
            out.appendChild(line);
            var detail = placeText(place);
            if (detail) { out.appendChild(el("div", "gm-muted", detail)); }
          } else {
            out.appendChild(el("div", "gm-error", t.noMatch));
          }
          (m.confirm_because || []).forEach(function (why) {
            if (t.confirmBecause[why] && why !== "not_matched") { out.appendChild(el("div", "gm-warn-text", t.confirmBecause[why])); }
          });
          if (place) {
            var ok = el("button", "gm-confirm-place", t.confirmPlace);
            ok.type = "button";
            ok.addEventListener("click", function () {
              out.replaceChildren();
              onConfirm(self.core.point([place.lon, place.lat]), text, place);
            });
            out.appendChild(ok);
          }
          if (alternatives.length) {
            out.appendChild(el("div", "gm-muted", t.alternatives + t.colon));
            var ul = el("ul", "gm-alternatives");
            alternatives.slice(0, 5).forEach(function (a) {
              var li = el("li"), b = el("button", "gm-linkish gm-alternative", (a.name || "") + conf(a.confidence));
              b.type = "button";
              b.addEventListener("click", function () {
                input.value = a.name || "";
                if (a.lon !== undefined && a.lon !== null) {
                  out.replaceChildren();
                  onConfirm(self.core.point([a.lon, a.lat]), input.value, a);
                } else {
                  lookup(input.value);
                }
              });
              li.appendChild(b);
              var detail = placeText(a);
              if (detail) { li.appendChild(el("span", "gm-muted", " " + detail)); }
              ul.appendChild(li);
            });
            out.appendChild(ul);
          }
        }).catch(function (err) { out.appendChild(el("div", "gm-error", err.message)); });
      }
      return lookup;
    },

    distanceText: function (m) {
      return m >= 1000 ? (m / 1000).toFixed(1) + (this.core.lang === "zh" ? " 公里" : " km") : Math.round(m) + " " + this.t.metres;
    },

    /* ------------------------------------------------------------------------------------------ a new case */
    createAt: function (latlng, address) {
      var t = this.t, side = this.side, self = this;
      this.current = null;
      this.relocating = null;
      this.focus.clearLayers();
      this.pin = null;
      var pin = L.circleMarker(latlng, { radius: 9, color: "#d81b60", weight: 3, fillOpacity: 0.3 }).addTo(this.focus);
      side.replaceChildren();
      side.hidden = false;
      delete side.dataset.caseId;
      var close = el("button", "gm-close", "×");
      close.type = "button";
      close.setAttribute("aria-label", this.core.lang === "zh" ? "关闭" : "Close");
      close.addEventListener("click", function () { side.hidden = true; self.focus.clearLayers(); });
      side.appendChild(close);
      side.appendChild(el("h2", null, t.create));
      var find = el("form", "gm-find");
      var addr = el("input");
      addr.name = "find"; addr.placeholder = t.findAddress; addr.value = address || "";
      addr.setAttribute("aria-label", t.findAddress);
      var go = el("button", null, t.locate);
      go.type = "submit";
      find.appendChild(addr);
      find.appendChild(go);
      side.appendChild(find);
      var matchBox = el("div");
      side.appendChild(matchBox);
      var form = el("form", "gm-create");
      form.id = "gm-create";
      var title = el("input");
      title.name = "title"; title.required = true; title.maxLength = 200; title.placeholder = t.title;
      title.setAttribute("aria-label", t.title);
      form.appendChild(title);
      var ok = el("button", null, t.createSubmit);
      ok.type = "submit";
      form.appendChild(ok);
      var cat = this.categorySelect(form, null);
      var source = el("select");
      source.name = "source";
      source.setAttribute("aria-label", t.source);
      ["hotline", "miniprogram", "patrol", "referral", "api"].forEach(function (s) { option(source, s, t.sources[s]); });
      form.insertBefore(source, ok);
      var where = el("input");
      where.name = "address"; where.placeholder = t.address + t.optional; where.value = address || "";
      where.setAttribute("aria-label", t.address);
      form.insertBefore(where, ok);
      var desc = el("textarea");
      desc.name = "description"; desc.placeholder = t.description; desc.rows = 3;
      desc.setAttribute("aria-label", t.description);
      form.insertBefore(desc, ok);
      var error = el("div", "gm-error");
      error.setAttribute("role", "alert");
      side.appendChild(form);
      side.appendChild(error);
      var point = latlng;
      var lookup = this.addressFinder(matchBox, addr, function (at, text, place) {
        point = at;
        pin.setLatLng(point);
        where.value = text;
        self.map.setView(point, Math.max(self.map.getZoom(), 17));
        self.core.mark("gmFound", Number(place.lon).toFixed(5) + "," + Number(place.lat).toFixed(5));
      }, function () { return point; });
      find.addEventListener("submit", function (e) {
        e.preventDefault();
        lookup(addr.value);
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
