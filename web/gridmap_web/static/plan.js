/* gridmap planner's workspace (/plan): a draft's grids under a sub-district or community, coloured by their deviation
 * from the household mean; the balance table; drawing and editing with Leaflet-Geoman (split by a line, merge,
 * move a shared vertex or edge, paint buildings or a compound to a neighbour, lock), undo and redo; the check's
 * problems and the diff against the active boundaries on the map; branches for grids that lack one; submit, approve,
 * reject. Every edit goes to the API and the page redraws what it answers. Text from the server → textContent. */
(function () {
  "use strict";
  var el = GM.el, option = GM.option;

  var TEXT = {
    zh: {
      plan: "网格化管理 · 规划工作台", toOverview: "总览", draft: "草稿", area: "区域", unit: "单元",
      levels: { district: "区", subdistrict: "街道", community: "社区", grid: "网格", microgrid: "微网格" },
      statuses: { draft: "草稿", submitted: "已提交", approved: "已批准（待生效）", active: "现行", retired: "已停用" },
      noDrafts: "没有草稿：请先新建草稿", newDraft: "新建草稿", draftName: "草稿名称",
      tools: "编辑工具", split: "画线分割", merge: "合并", vertex: "移动顶点", edge: "移动公共边", paint: "划转楼栋/小区",
      lock: "锁定", unlock: "解锁", undo: "撤销", redo: "重做", finish: "完成画线", cancel: "取消",
      mergeSelected: "合并所选", edgeSelected: "画新的公共边", clear: "清除选择", selected: "已选",
      hints: {
        none: "点击地图上的网格（编辑单位为最底层的微网格）；选择工具开始编辑。",
        split: "在地图上画一条穿过网格的线：逐点点击，然后点“完成画线”（或再次点击最后一点、按回车）。",
        merge: "点击两个或更多相邻网格，然后点“合并所选”。",
        vertex: "点击一个网格，拖动其顶点；相邻网格一同移动。",
        edge: "点击两个相邻网格，点“画新的公共边”，从公共边的一端画到另一端（自动吸附顶点）。",
        paint: "点击楼栋或小区（可多选），再点击要划入的相邻网格。",
        lock: "点击网格以选择，然后点“锁定”或“解锁”。",
        readonly: "只读：该版本不是草稿，或您没有规划编辑权限。"
      },
      balance: "平衡表", households: "户数", population: "人口", members: "党员", compounds: "小区", buildings: "楼栋",
      staff: "人员", openCases: "未结事件", deviation: "偏差", pp: "紧凑度（Polsby–Popper）", contiguous: "连通", yes: "是", no: "否",
      householdsShort: "户数", deviationShort: "偏差", populationShort: "人口",
      membersShort: "党员", compoundsShort: "小区", buildingsShort: "楼栋", staffShort: "人员", openShort: "未结",
      ppShort: "紧凑", contiguousShort: "连通",
      total: "合计", mean: "平均户数", tolerance: "允许偏差", locked: "已锁定", changedMark: "有变更",
      problems: "检查问题", comma: "，", noProblems: "未发现问题", ok: "无错误", errors: "个错误", warnings: "个警告",
      kinds: { invalid_geometry: "几何无效", gap: "缝隙", overlap: "重叠", hole: "空洞", outside_parent: "超出上级",
        duplicate_code: "编码重复", bad_code: "编码格式错误", sliver: "碎片", not_contiguous: "不连通",
        household_norm: "户数超出规范" },
      severities: { error: "错误", warning: "警告" },
      diff: "与现行边界对比", noDiff: "与现行边界相同", created: "新增", retired: "撤销", changedList: "变更",
      movedUnits: "迁移的楼栋/小区", to: "→",
      branches: "缺少党支部的网格", noMissing: "所有网格均有党支部", pickBranch: "选择党支部", save: "保存",
      sharedBy: "被多个网格共用（一个支部只对应一个网格）：", heldBy: "现属",
      branchNote: "可选的党支部都已对应网格（一网格一支部）：选用后原网格须换用其他支部；支部不够时，须先成立新的网格党支部才能提交审批。",
      workflow: "提交与审批", submit: "提交审批", approve: "批准", reject: "退回", effectiveFrom: "生效日期",
      reason: "退回原因", submitted: "已提交审批", approved: "已批准", rejected: "已退回修改",
      lastChange: "本次变更", undone: "已撤销", redone: "已重做", saved: "已保存", edited: "已完成编辑",
      nothingSelected: "请先选择网格", pickPlaces: "请先点击楼栋或小区", lineOutside: "画线未穿过任何网格",
      legend: "户数偏差", below: "低于", above: "高于", within: "允许范围内", moved: "迁移", changedOutline: "变更的网格",
      problemOnMap: "检查问题", noArea: "该版本中没有可选区域",
      version: "版本", newDraftHint: "新建草稿会复制所选版本的边界，之后在草稿上编辑、提交审批。", createdDraft: "已新建草稿", draftNameNeeded: "请填写草稿名称", reasonNeeded: "请填写退回原因，规划员据此修改",
      dateNeeded: "请选择生效日期",
      hh: "户", viewOverview: "在总览中查看", approvedNow: "已批准，新边界已生效", approvedLater: "已批准，将于以下日期生效：",
      ops: { split: "分割", merge: "合并", move_vertex: "移动顶点", move_edge: "移动公共边", reassign: "划转", lock: "锁定",
        repair: "自动修复" },
      states: {
        planner: { submitted: "已提交审批，等待审批人批准或退回；退回后可继续编辑。",
          approved: "已批准，到生效日期自动生效；如需再改，请新建草稿。",
          active: "现行边界不能直接修改：请新建草稿（复制现行边界）后编辑。",
          none: "还没有草稿：请新建草稿（复制现行边界）后编辑。" },
        approver: { submitted: "请查看平衡表、检查问题和与现行边界的差异，然后批准或退回。",
          approved: "已批准，到生效日期（中国时间 0 点）自动生效。",
          draft: "草稿由规划员编辑；提交审批后在此批准或退回。",
          other: "审批人不编辑边界；规划员提交的草稿在此审批。" },
        other: "只读：您的角色不编辑边界。"
      },
      partition: "自动划分网格（生成新草稿）", gridCount: "网格数", partitionRun: "生成方案",
      partitionHint: "按户数均衡地重新划分本社区的网格，结果存为新草稿（当前版本不变）；新网格需要指定党支部。",
      partitioned: "已生成方案：新草稿", movedHh: "迁移户数",
      gridCountRange: "网格数：应为 1–50 的整数", toleranceRange: "允许偏差：应为 1–50（%）",
      repair: "自动修复…", repairTitle: "自动修复预览", repairApply: "应用修复", repairNone: "没有可自动修复的问题",
      repairCount: "项修复", repairErrors: "错误", repairWarnings: "警告", repairSkipped: "仍需手工处理：",
      repaired: "已应用", repairNote: "修复后可撤销。", repairRefused: "这些修复无法直接应用：",
      repairKinds: { snap_to_parent: "贴合上级边界", overlap_to_neighbour: "重叠归一侧", gap_to_neighbour: "缝隙并入相邻",
        absorb_sliver: "碎片并入相邻" }
    },
    en: {
      plan: "Grid governance · Planner's workspace", toOverview: "Overview", draft: "Draft", area: "Area", unit: "Units",
      levels: { district: "District", subdistrict: "Sub-district", community: "Community", grid: "Grid", microgrid: "Micro-grid" },
      statuses: { draft: "draft", submitted: "submitted", approved: "approved (scheduled)", active: "active", retired: "retired" },
      noDrafts: "No draft yet: make one first", newDraft: "New draft", draftName: "Draft name",
      tools: "Editing tools", split: "Split by a line", merge: "Merge", vertex: "Move a vertex", edge: "Move a shared edge",
      paint: "Paint buildings/compounds", lock: "Lock", unlock: "Unlock", undo: "Undo", redo: "Redo", finish: "Finish line",
      cancel: "Cancel", mergeSelected: "Merge selected", edgeSelected: "Draw the new shared edge", clear: "Clear selection",
      selected: "Selected",
      hints: {
        none: "Click the map to select (the tools edit the finest units, the micro-grids); pick a tool to edit.",
        split: "Draw a line across a grid: click point by point, then “Finish line” (or click the last point again, or press Enter).",
        merge: "Click two or more adjacent grids, then “Merge selected”.",
        vertex: "Click a grid and drag one of its vertices; the neighbours move with it.",
        edge: "Click two adjacent grids, press “Draw the new shared edge” and draw from one end of their edge to the other (vertices snap).",
        paint: "Click buildings or compounds (several if you like), then the neighbouring grid they go to.",
        lock: "Click grids to select them, then Lock or Unlock.",
        readonly: "Read only: this generation is not a draft, or your role does not edit boundaries."
      },
      balance: "Balance", households: "Households", population: "Population", members: "Party members",
      compounds: "Compounds", buildings: "Buildings", staff: "Staff", openCases: "Open cases", deviation: "Deviation",
      pp: "Compactness (Polsby–Popper)", contiguous: "Contiguous", yes: "yes", no: "no", total: "Total",
      mean: "Mean households", householdsShort: "Hh", deviationShort: "Dev.", populationShort: "Pop.", membersShort: "Party", compoundsShort: "Cpd", buildingsShort: "Bldg", staffShort: "Staff",
      openShort: "Open", ppShort: "PP", contiguousShort: "Contig.",
      tolerance: "Tolerance", locked: "locked", changedMark: "changed",
      problems: "Check problems", comma: ", ", noProblems: "No problems found", ok: "no errors", errors: "errors", warnings: "warnings",
      kinds: { invalid_geometry: "invalid geometry", gap: "gap", overlap: "overlap", hole: "hole",
        outside_parent: "outside its parent", duplicate_code: "duplicate code", bad_code: "malformed code",
        sliver: "sliver", not_contiguous: "not contiguous", household_norm: "households outside the norm" },
      severities: { error: "error", warning: "warning" },
      diff: "Against the active boundaries", noDiff: "Same as the active boundaries", created: "Created",
      retired: "Retired", changedList: "Changed", movedUnits: "Buildings/compounds moved", to: "→",
      branches: "Grids without a party branch", noMissing: "Every grid has a party branch", pickBranch: "Choose a branch",
      sharedBy: "shared by several grids (one branch per grid):", heldBy: "now of",
      branchNote: "Every branch listed already serves a grid (one branch per grid): the grid that had it then needs another; with too few branches a new grid branch must be founded before the draft can be submitted.",
      save: "Save", workflow: "Submit and approve", submit: "Submit for approval", approve: "Approve", reject: "Send back",
      effectiveFrom: "Effective from", reason: "Reason", submitted: "Submitted for approval", approved: "Approved",
      rejected: "Sent back for changes", lastChange: "Last change", undone: "Undone", redone: "Redone", saved: "Saved",
      edited: "Edited", nothingSelected: "Select grids first", pickPlaces: "Click buildings or compounds first",
      lineOutside: "The line crosses no grid", legend: "Deviation in households", below: "below", above: "above",
      within: "within tolerance", moved: "moved", changedOutline: "changed grids", problemOnMap: "check problems",
      noArea: "No area to choose in this generation",
      version: "Version", newDraftHint: "A new draft copies the boundaries of the version shown; edit it, then submit it for approval.",
      createdDraft: "Draft created", draftNameNeeded: "Give the draft a name",
      reasonNeeded: "Give a reason for sending it back: the planner works from it", dateNeeded: "Choose the day it takes effect", hh: "households", viewOverview: "See it on the overview",
      approvedNow: "Approved: the new boundaries are in effect", approvedLater: "Approved: they take effect on",
      ops: { split: "split", merge: "merge", move_vertex: "move vertex", move_edge: "move edge", reassign: "reassign",
        lock: "lock", repair: "repair" },
      states: {
        planner: { submitted: "Submitted for approval: waiting for an approver to approve or send it back (then you can edit again).",
          approved: "Approved: it takes effect on its date. To change more, make a new draft.",
          active: "The active boundaries are not edited directly: make a new draft (a copy of them) and edit that.",
          none: "No draft yet: make a new draft (a copy of the active boundaries) to edit." },
        approver: { submitted: "Review the balance, the check's problems and the diff, then approve or send back.",
          approved: "Approved: it takes effect at 00:00 China time on its date.",
          draft: "Planners edit drafts; once submitted you approve or send them back here.",
          other: "Approvers do not edit boundaries; drafts submitted by planners are approved here." },
        other: "Read only: your role does not edit boundaries."
      },
      partition: "Re-partition the grids (as a new draft)", gridCount: "Grids", partitionRun: "Propose",
      partitionHint: "Re-draws this community's grids with balanced households, as a new draft (this version stays as it is); new grids then need a party branch.",
      partitioned: "Proposal made: new draft", movedHh: "households moved",
      gridCountRange: "Grids: a whole number from 1 to 50", toleranceRange: "Tolerance: from 1 to 50 (%)",
      repair: "Repair…", repairTitle: "Automatic repairs (preview)", repairApply: "Apply repairs",
      repairNone: "Nothing the automatic repairs can fix", repairCount: "repair(s)", repairErrors: "errors",
      repairWarnings: "warnings", repairSkipped: "Still to fix by hand:", repaired: "Applied",
      repairRefused: "These repairs cannot be applied as they are: ",
      repairNote: "You can undo it afterwards.",
      repairKinds: { snap_to_parent: "snap to the parent's edge", overlap_to_neighbour: "overlap left to one side",
        gap_to_neighbour: "gap given to a neighbour", absorb_sliver: "sliver absorbed" }
    }
  };
  var DEV_COLOURS = ["#2166ac", "#92c5de", "#e6f4e0", "#f4a582", "#b2182b"];
  var OPS = { split: 1, merge: 1, move_vertex: 1, move_edge: 1, reassign: 1, lock: 1 };
  var REPAIRABLE = { gap: 1, overlap: 1, sliver: 1, outside_parent: 1 };

  /* today in China (boundaries take effect at 00:00 Asia/Shanghai), YYYY-MM-DD */
  function today() {
    var parts = {};
    new Intl.DateTimeFormat("en-GB", { timeZone: "Asia/Shanghai", year: "numeric", month: "2-digit", day: "2-digit" })
      .formatToParts(new Date()).forEach(function (p) { parts[p.type] = p.value; });
    return parts.year + "-" + parts.month + "-" + parts.day;
  }
  function fixed(v, n) { return v === null || v === undefined ? "—" : Number(v).toFixed(n); }
  function signedPercent(v) { return v === null || v === undefined ? "—" : (v > 0 ? "+" : "") + (v * 100).toFixed(1) + "%"; }

  /* point in a GeoJSON Polygon or MultiPolygon (even-odd over every ring) */
  function inPolygon(pt, geometry) {
    var polys = geometry.type === "Polygon" ? [geometry.coordinates] : geometry.coordinates, inside = false;
    polys.forEach(function (rings) {
      rings.forEach(function (ring) {
        for (var i = 0, j = ring.length - 1; i < ring.length; j = i++) {
          var xi = ring[i][0], yi = ring[i][1], xj = ring[j][0], yj = ring[j][1];
          if (((yi > pt[1]) !== (yj > pt[1])) && (pt[0] < (xj - xi) * (pt[1] - yi) / (yj - yi) + xi)) { inside = !inside; }
        }
      });
    });
    return inside;
  }

  var Page = {
    init: function (map, config) {
      var core = this.core = new GM.Core(map, config, "plan");
      var self = this;
      this.map = map;
      map.options.zoomSnap = 0.25;  // fit the area closely
      this.config = config;
      this.t = Object.assign({}, core.t, TEXT[core.lang]);
      this.mayEdit = config.role === "planner";
      this.mayApprove = config.role === "approver";
      this.selection = [];
      this.picked = [];
      this.mode = null;
      this.canUndo = false;
      this.canRedo = false;
      this.loads = 0;
      document.getElementById("gm-title").textContent = this.t.plan;
      var other = document.getElementById("gm-other-page");
      other.textContent = this.t.toOverview;
      other.href = "/?lang=" + core.lang;
      var params = new URLSearchParams(window.location.search);
      this.wanted = { generation: params.get("generation"), area: params.get("area"), level: params.get("level") };
      map.pm.setLang(core.lang === "zh" ? "zh" : "en");
      map.pm.setGlobalOptions({ snappable: false, snapDistance: 15, allowSelfIntersection: false, finishOnEnter: true,
        preventMarkerRemoval: true, hideMiddleMarkers: true, pathOptions: { color: "#d81b60", weight: 3 } });
      map.createPane("gmPlanUnits").style.zIndex = 410;
      map.createPane("gmPlanLeaves").style.zIndex = 415;
      map.createPane("gmPlanDiff").style.zIndex = 420;
      map.createPane("gmPlanLabels").style.zIndex = 450;
      this.units = L.geoJSON(null, {
        pane: "gmPlanUnits",
        coordsToLatLng: core.toLatLng,
        style: function (f) { return self.unitStyle(f); },
        onEachFeature: function (f, lyr) { if (!self.separateLeaves) { self.eachUnit(f, lyr); } }
      }).addTo(map);
      this.leafLayer = L.geoJSON(null, {
        pane: "gmPlanLeaves",
        coordsToLatLng: core.toLatLng,
        style: function (f) { return self.leafStyle(f); },
        onEachFeature: function (f, lyr) { self.eachUnit(f, lyr); }
      }).addTo(map);
      this.labels = L.layerGroup().addTo(map);
      this.diffLayer = L.layerGroup().addTo(map);
      this.problemLayer = L.layerGroup().addTo(map);
      this.placeLayer = L.layerGroup().addTo(map);
      this.legend = L.control({ position: "bottomright" });
      this.legend.onAdd = function () { self.legendBox = el("div", "gm-legend gm-plan-legend"); return self.legendBox; };
      this.legend.addTo(map);
      map.on("pm:create", function (e) { self.drawn(e.layer); });
      map.on("zoomend", function () { self.declutter(); });
      this.buildPanel();
      this.buildSide();
      this.start();
    },

    /* ------------------------------------------------------------------------------------------------- panel */
    buildPanel: function () {
      var t = this.t, self = this, body = document.getElementById("gm-body");
      body.replaceChildren();
      var pick = el("div", "gm-plan-pick");
      this.genSelect = this.field(pick, t.version, el("select"), "gm-plan-generation");
      this.areaSelect = this.field(pick, t.area, el("select"), "gm-plan-area");
      this.levelSelect = this.field(pick, t.unit, el("select"), "gm-plan-level");
      option(this.levelSelect, "grid", t.levels.grid);
      option(this.levelSelect, "microgrid", t.levels.microgrid);
      body.appendChild(pick);
      this.statusLine = el("div", "gm-plan-status");
      this.statusLine.id = "gm-plan-status";
      body.appendChild(this.statusLine);
      this.genSelect.addEventListener("change", function () { self.pickGeneration(Number(self.genSelect.value)); });
      this.areaSelect.addEventListener("change", function () { self.area = self.areaSelect.value; self.reload(true); });
      this.levelSelect.addEventListener("change", function () { self.level = self.levelSelect.value; self.reload(true); });

      var tools = el("div", "gm-plan-tools");
      tools.id = "gm-plan-tools";
      tools.setAttribute("role", "toolbar");
      tools.setAttribute("aria-label", t.tools);
      this.toolButtons = {};
      ["split", "merge", "vertex", "edge", "paint", "lock"].forEach(function (mode) {
        var b = self.button(tools, t[mode], function () { self.setMode(self.mode === mode ? null : mode); });
        b.dataset.tool = mode;
        b.id = "gm-plan-tool-" + mode;
        self.toolButtons[mode] = b;
      });
      this.undoButton = this.button(tools, "↶ " + t.undo, function () { self.undoRedo("undo"); });
      this.undoButton.id = "gm-plan-undo";
      this.redoButton = this.button(tools, "↷ " + t.redo, function () { self.undoRedo("redo"); });
      this.redoButton.id = "gm-plan-redo";
      body.appendChild(tools);
      this.hint = el("div", "gm-hint");
      this.hint.id = "gm-plan-hint";
      body.appendChild(this.hint);
      this.actions = el("div", "gm-plan-actions");
      this.actions.id = "gm-plan-actions";
      body.appendChild(this.actions);
      this.partitionBox = el("details", "gm-plan-partition");
      this.partitionBox.id = "gm-plan-partition";
      this.partitionBox.hidden = true;
      body.appendChild(this.partitionBox);
      this.message = el("div", "gm-plan-message");
      this.message.id = "gm-plan-message";
      this.message.setAttribute("role", "status");
      body.appendChild(this.message);
      this.error = el("div", "gm-error");
      this.error.id = "gm-plan-error";
      this.error.setAttribute("role", "alert");
      body.appendChild(this.error);
      this.change = el("div", "gm-plan-change");
      this.change.id = "gm-plan-change";
      body.appendChild(this.change);
      this.flow = el("div", "gm-plan-flow");
      this.flow.id = "gm-plan-flow";
      body.appendChild(this.flow);
    },

    buildSide: function () {
      var t = this.t, side = document.getElementById("gm-side");
      side.hidden = false;
      side.classList.add("gm-plan-side");
      side.replaceChildren();
      var sections = [["balance", t.balance], ["problems", t.problems], ["diff", t.diff], ["branches", t.branches]];
      this.sections = {};
      sections.forEach(function (s) {
        var box = el("section", "gm-plan-section");
        box.id = "gm-plan-" + s[0];
        var h = el("h3", null, s[1]);
        box.appendChild(h);
        var content = el("div", "gm-plan-content");
        box.appendChild(content);
        side.appendChild(box);
        this.sections[s[0]] = { box: box, head: h, content: content };
      }, this);
    },

    field: function (parent, label, control, id) {
      var wrap = el("label", "gm-field");
      wrap.appendChild(el("span", null, label));
      control.id = id;
      wrap.appendChild(control);
      parent.appendChild(wrap);
      return control;
    },

    button: function (parent, label, onClick, cls) {
      var b = el("button", cls || "gm-plan-button", label);
      b.type = "button";
      b.addEventListener("click", onClick);
      parent.appendChild(b);
      return b;
    },

    say: function (text) { this.clearError(); this.message.textContent = text || ""; this.reveal(this.message); },
    clearError: function () { this.error.textContent = ""; this.core.mark("gmPlanError", ""); },
    /* on a phone the panel is a short strip that scrolls: bring a message or a refusal into its view */
    reveal: function (node) {
      if (!node.textContent || !node.scrollIntoView) { return; }
      var box = document.getElementById("gm-panel").getBoundingClientRect(), at = node.getBoundingClientRect();
      if (at.top < box.top || at.bottom > box.bottom) { node.scrollIntoView({ block: "nearest" }); }
    },
    complain: function (err) {
      this.message.textContent = "";
      this.error.textContent = err && err.message ? err.message : String(err);
      this.reveal(this.error);
      this.core.mark("gmPlanError", this.error.textContent);
      if (err && err.status === undefined && window.console) { window.console.warn(err); }
    },

    /* ------------------------------------------------------------------------------------- draft and area */
    start: function () {
      var self = this;
      return this.core.get("generations").then(function (gens) {
        self.generations = gens;
        self.fillGenerations();
        var wanted = gens.filter(function (g) { return String(g.id) === self.wanted.generation; })[0];
        var drafts = gens.filter(function (g) { return g.status === "draft" || g.status === "submitted"; });
        var waiting = gens.filter(function (g) { return g.status === "submitted"; });
        if (self.mayApprove && waiting.length) { drafts = waiting; }  // an approver starts on what waits for approval
        var first = wanted || drafts[drafts.length - 1] || gens.filter(function (g) { return g.status === "active"; })[0];
        if (!first) { self.say(self.t.noDrafts); self.refreshTools(); self.showFlow(); return null; }
        return self.pickGeneration(first.id);
      }).catch(function (err) { self.complain(err); });
    },

    fillGenerations: function () {
      var t = this.t, select = this.genSelect;
      select.replaceChildren();
      this.generations.slice().reverse().forEach(function (g) {
        if (g.status === "retired") { return; }
        option(select, String(g.id), "#" + g.id + " " + g.name + " · " + (t.statuses[g.status] || g.status));
      });
    },

    pickGeneration: function (id) {
      var self = this;
      this.gen = this.generations.filter(function (g) { return g.id === id; })[0];
      this.genSelect.value = String(id);
      this.core.mark("gmPlanGeneration", id);
      return this.fillAreas().then(function () { return self.loadEdits(); }).then(function () { return self.reload(true); });
    },

    /* the draft's own sub-districts and communities (an imported district is in the draft only) */
    fillAreas: function () {
      var self = this, t = this.t;
      return this.core.get("generations/" + this.gen.id + "/areas?level=subdistrict&level=community").then(function (res) {
        self.areaList = [];
        res.areas.filter(function (a) { return a.level === "subdistrict"; }).forEach(function (s) {
          self.areaList.push({ code: s.code, name: s.name, level: s.level, label: t.levels.subdistrict + " " + s.name });
          res.areas.forEach(function (c) {
            if (c.level === "community" && c.parent === s.code) {
              self.areaList.push({ code: c.code, name: c.name, level: c.level, label: "　" + t.levels.community + " " + c.name });
            }
          });
        });
        self.showAreas();
      });
    },

    showAreas: function () {
      var select = this.areaSelect, self = this;
      select.replaceChildren();
      this.areaList.forEach(function (a) { option(select, a.code, a.label); });
      var codes = this.areaList.map(function (a) { return a.code; });
      if (!this.level) { this.level = this.wanted.level === "microgrid" ? "microgrid" : "grid"; }
      if (!this.area && codes.indexOf(this.wanted.area) >= 0) { this.area = this.wanted.area; }
      if (!this.area || codes.indexOf(this.area) < 0) {  // the first community of this draft
        this.area = (this.areaList.filter(function (a) { return a.level === "community"; })[0] || this.areaList[0] || {}).code;
      }
      if (!this.area) { this.say(this.t.noArea); }
      select.value = this.area;
      this.levelSelect.value = this.level;
      self.core.mark("gmPlanArea", this.area);
    },

    editable: function () { return this.mayEdit && this.gen && this.gen.status === "draft"; },

    /* why nothing can be edited here, and what to do next */
    readonlyHint: function () {
      var s = this.t.states, status = this.gen ? this.gen.status : "none";
      if (this.mayEdit) { return s.planner[status] || s.planner.active; }
      if (this.mayApprove) { return s.approver[status] || s.approver.other; }
      return s.other;
    },

    loadEdits: function () {
      var self = this;
      this.canUndo = this.canRedo = false;
      if (!this.gen || this.gen.status !== "draft") { return Promise.resolve(); }
      return this.core.get("generations/" + this.gen.id + "/edits").then(function (list) {
        var items = Array.isArray(list) ? list : (list && list.items) || [];
        self.canUndo = items.some(function (e) { return !e.undone; });
        self.canRedo = items.some(function (e) { return e.undone; });
      }).catch(function () { /* no edit log yet: nothing to undo */ });
    },

    /* everything that depends on the draft and the area; `fit`: zoom to the area */
    reload: function (fit) {
      var self = this;
      if (!this.gen || !this.area) { return Promise.resolve(); }
      this.core.mark("gmPlanArea", this.area);
      var q = new URLSearchParams(window.location.search);
      q.set("generation", this.gen.id);
      q.set("area", this.area);
      q.set("level", this.level);
      window.history.replaceState(null, "", "?" + q.toString());
      this.selection = [];
      this.picked = [];
      this.refreshTools();
      this.showFlow();
      var balance = this.loadBalance(fit);
      var rest = Promise.all([this.loadDiff(), this.loadProblems(), this.loadBranches(),
        this.mode === "paint" ? this.loadPlaces() : Promise.resolve()]);
      return Promise.all([balance, rest]);
    },

    /* ----------------------------------------------------------------------------------- the balance table */
    devClass: function (d) {
      var tol = this.balance ? this.balance.norm.tolerance : 0.1;
      if (d === null || d === undefined) { return 2; }
      if (d < -2 * tol) { return 0; }
      if (d < -tol) { return 1; }
      if (d <= tol) { return 2; }
      if (d <= 2 * tol) { return 3; }
      return 4;
    },

    unitStyle: function (f) {
      var p = f.properties, chosen = this.selection.indexOf(p.code) >= 0;
      return { color: chosen ? "#d81b60" : (p.locked ? "#37474f" : "#455a64"), weight: chosen ? 4 : (p.locked ? 3 : 1.4),
        dashArray: p.locked ? "6 4" : null, fillColor: DEV_COLOURS[this.devClass(p.deviation)],
        fillOpacity: chosen ? 0.75 : 0.6 };
    },

    /* the leaves drawn over the grids when the grids are not leaves themselves: what the tools edit */
    leafStyle: function (f) {
      var chosen = this.selection.indexOf(f.properties.code) >= 0;
      return { color: chosen ? "#d81b60" : "#5d4037", weight: chosen ? 3.5 : 0.8, dashArray: chosen ? null : "3 3",
        fill: true, fillColor: "#d81b60", fillOpacity: chosen ? 0.35 : 0 };
    },

    eachUnit: function (f, lyr) {
      var self = this, p = f.properties, grid = this.separateLeaves && this.byCode && this.byCode[p.parent];
      var text = p.name + " " + p.code + " · " + this.t.households + " " + p.households + " (" + signedPercent(p.deviation) + ")";
      if (grid) {
        text = grid.properties.name + " · " + this.t.households + " " + grid.properties.households + " (" +
          signedPercent(grid.properties.deviation) + ") — " + this.t.levels.microgrid + " " + p.code + " · " + p.households;
      }
      var tip = el("span", null, text);
      lyr.bindTooltip(tip, { sticky: true, className: "gm-tooltip" });
      lyr.gmCode = p.code;
      lyr.on("click", function () {  // the click goes on to the map too: Geoman draws there
        if (!self.map.pm.globalDrawModeEnabled()) { self.unitClicked(p.code, lyr); }
      });
    },

    showBalance: function (b, fit, leaves) {
      var self = this;
      this.balance = b;
      this.byCode = {};
      b.features.features.forEach(function (f) { self.byCode[f.properties.code] = f; });
      // the tools edit leaves: the micro-grids under the grids when there are any, else the units themselves
      this.leafFeatures = leaves && leaves.features.features.length ? leaves.features.features : b.features.features;
      this.separateLeaves = this.leafFeatures !== b.features.features;
      this.units.clearLayers();
      this.leafLayer.clearLayers();
      this.labels.clearLayers();
      this.units.addData(b.features);
      if (this.separateLeaves) { this.leafLayer.addData({ type: "FeatureCollection", features: this.leafFeatures }); }
      this.units.eachLayer(function (lyr) {
        var p = lyr.feature.properties, box = el("div", "gm-area-label gm-plan-label" + (p.locked ? " gm-plan-locked" : ""));
        box.appendChild(el("span", "gm-area-label-name", p.name));
        box.appendChild(el("span", "gm-area-label-code", p.households + " · " + signedPercent(p.deviation)));
        var label = L.marker(lyr.getBounds().getCenter(), { icon: L.divIcon({ html: box, className: "gm-label-icon",
          iconSize: null }), interactive: false, keyboard: false, pane: "gmPlanLabels" });
        label.gmBounds = lyr.getBounds();
        label.addTo(self.labels);
      });
      if (fit) { this.fit(this.units.getBounds()); }
      this.declutter();
      this.drawTable();
      this.drawLegend();
      this.showPartition();
      this.loads += 1;
      this.core.mark("gmPlanUnits", b.features.features.length);
      this.core.mark("gmPlanLoads", this.loads);
      this.core.mark("gmPlanBalance", JSON.stringify(b.features.features.map(function (f) {
        return [f.properties.code, f.properties.households];
      })));
      if (this.mode === "vertex" && this.editing) { this.editing = null; }
    },

    /* a unit's label only where the unit is wide enough on screen for it (many small micro-grids otherwise pile
     * their labels into an unreadable heap); the table and the tooltips still name every unit */
    declutter: function () {
      var map = this.map, shown = 0;
      this.labels.eachLayer(function (label) {
        var b = label.gmBounds, nw = map.latLngToContainerPoint(b.getNorthWest()), se = map.latLngToContainerPoint(b.getSouthEast());
        var fits = Math.abs(se.x - nw.x) >= 90 && Math.abs(se.y - nw.y) >= 34;
        var node = label.getElement();
        if (node) { node.style.display = fits ? "" : "none"; }
        if (fits) { shown += 1; }
      });
      this.core.mark("gmPlanLabels", shown);
    },

    /* fit a box into the part of the map the panels leave free */
    fit: function (bounds) {
      if (!bounds.isValid()) { return; }
      var panel = document.getElementById("gm-panel").getBoundingClientRect();
      var side = document.getElementById("gm-side").getBoundingClientRect();
      var box = this.map.getContainer().getBoundingClientRect(), options;
      if (box.width > 800) {
        options = { paddingTopLeft: [panel.right - box.left + 10, 20], paddingBottomRight: [box.right - side.left + 10, 20] };
      } else {
        options = { paddingTopLeft: [10, panel.bottom - box.top + 10], paddingBottomRight: [10, box.bottom - side.top + 10] };
      }
      this.map.fitBounds(bounds, options);
    },

    drawTable: function () {
      var t = this.t, b = this.balance, self = this, box = this.sections.balance.content;
      box.replaceChildren();
      var norm = el("div", "gm-muted", t.mean + " " + fixed(b.norm.mean_households, 0) + " · " + t.tolerance + " ±" +
        (b.norm.tolerance * 100).toFixed(0) + "%");
      box.appendChild(norm);
      var wrap = el("div", "gm-plan-table-wrap"), table = el("table", "gm-plan-table");
      table.id = "gm-plan-balance-table";
      wrap.tabIndex = 0;  // it scrolls sideways on a phone: reachable by keyboard (axe: scrollable-region-focusable)
      var head = el("tr");
      [[t.levels[b.level], t.levels[b.level]], [t.households, t.householdsShort], [t.deviation, t.deviationShort],
        [t.population, t.populationShort], [t.members, t.membersShort], [t.compounds, t.compoundsShort],
        [t.buildings, t.buildingsShort], [t.staff, t.staffShort], [t.openCases, t.openShort], [t.pp, t.ppShort],
        [t.contiguous, t.contiguousShort]].forEach(function (h) {
        var th = el("th", null, h[1]);
        th.title = h[0];
        head.appendChild(th);
      });
      var thead = el("thead");
      thead.appendChild(head);
      table.appendChild(thead);
      var tbody = el("tbody");
      b.features.features.forEach(function (f) {
        var p = f.properties, tr = el("tr", "gm-plan-row");
        tr.dataset.code = p.code;
        if (self.selection.indexOf(p.code) >= 0) { tr.classList.add("gm-plan-chosen"); }
        if (p.changed) { tr.classList.add("gm-plan-changed"); }
        var name = el("td", "gm-plan-name");
        name.appendChild(el("span", null, self.shortName(p.name)));
        name.appendChild(el("span", "gm-muted", " " + p.code.slice(-3) + (p.locked ? " 🔒" : "") +
          (p.changed ? " ✎" : "")));
        name.title = p.code + (p.locked ? " · " + t.locked : "") + (p.changed ? " · " + t.changedMark : "");
        tr.appendChild(name);
        tr.appendChild(el("td", "gm-num", p.households));
        var dev = el("td", "gm-num gm-plan-dev gm-plan-dev-" + self.devClass(p.deviation), signedPercent(p.deviation));
        tr.appendChild(dev);
        [p.population, p.party_members, p.compounds, p.buildings, p.staff, p.open_cases].forEach(function (v) {
          tr.appendChild(el("td", "gm-num", v));
        });
        tr.appendChild(el("td", "gm-num", fixed(p.polsby_popper, 2)));
        tr.appendChild(el("td", p.contiguous ? null : "gm-plan-bad", p.contiguous ? t.yes : t.no));
        tr.addEventListener("click", function () {
          var lyr = null;
          self.units.eachLayer(function (l) { if (l.feature.properties.code === p.code) { lyr = l; } });
          if (lyr) { self.fit(lyr.getBounds()); }
        });
        tbody.appendChild(tr);
      });
      table.appendChild(tbody);
      var tot = b.totals, foot = el("tr", "gm-plan-total");
      [t.total + " (" + tot.units + ")", tot.households, "", tot.population, tot.party_members, tot.compounds,
        tot.buildings, tot.staff, tot.open_cases, "", ""].forEach(function (v, i) {
        foot.appendChild(el(i === 0 ? "th" : "td", i ? "gm-num" : null, v));
      });
      var tfoot = el("tfoot");
      tfoot.appendChild(foot);
      table.appendChild(tfoot);
      wrap.appendChild(table);
      box.appendChild(wrap);
    },

    shortName: function (name) {
      var area = (this.areaList || []).filter(function (a) { return a.code === this.area; }, this)[0];
      var prefix = area ? area.name : "";
      return prefix && name.indexOf(prefix) === 0 && name.length > prefix.length ? name.slice(prefix.length) : name;
    },

    drawLegend: function () {
      var t = this.t, box = this.legendBox, tol = (this.balance.norm.tolerance * 100).toFixed(0);
      if (!box) { return; }
      box.replaceChildren();
      box.appendChild(el("strong", null, t.legend));
      var labels = [t.below + " " + 2 * tol + "%+", t.below + " " + tol + "–" + 2 * tol + "%", t.within + " ±" + tol + "%",
        t.above + " " + tol + "–" + 2 * tol + "%", t.above + " " + 2 * tol + "%+"];
      labels.forEach(function (label, i) {
        var item = el("div", "gm-legend-item"), sw = el("span", "gm-swatch gm-swatch-square");
        sw.style.background = DEV_COLOURS[i];
        item.appendChild(sw);
        item.appendChild(document.createTextNode(label));
        box.appendChild(item);
      });
      var d = el("div", "gm-legend-item"), sw = el("span", "gm-swatch gm-swatch-square gm-plan-swatch-diff");
      d.appendChild(sw);
      d.appendChild(document.createTextNode(t.changedOutline));
      box.appendChild(d);
      var m = el("div", "gm-legend-item"), sw2 = el("span", "gm-swatch gm-plan-swatch-moved");
      m.appendChild(sw2);
      m.appendChild(document.createTextNode(t.movedUnits));
      box.appendChild(m);
    },

    /* ------------------------------------------------------------------------------- problems, diff, branches */
    loadProblems: function () {
      var self = this, t = this.t, area = this.area, box = this.sections.problems.content;
      return this.core.get("generations/" + this.gen.id + "/check").then(function (report) {
        var mine = report.problems.filter(function (p) {
          return p.codes.some(function (c) { return c.indexOf(area) === 0 || area.indexOf(c) === 0; });
        });
        var errors = mine.filter(function (p) { return p.severity === "error"; }).length;
        self.sections.problems.head.textContent = t.problems + " (" + mine.length + ")";
        box.replaceChildren();
        self.problemLayer.clearLayers();
        if (mine.length) {
          box.appendChild(el("div", errors ? "gm-plan-bad" : "gm-muted", errors ? errors + " " + t.errors + t.comma +
            (mine.length - errors) + " " + t.warnings : t.ok + t.comma + mine.length + " " + t.warnings));
        }
        var repairable = mine.some(function (p) { return REPAIRABLE[p.kind]; });
        if (self.editable() && repairable) {
          self.button(box, t.repair, function () { self.previewRepairs(); }).id = "gm-plan-repair";
        }
        self.repairBox = el("div", "gm-plan-repair");
        self.repairBox.id = "gm-plan-repair-preview";
        self.repairBox.hidden = true;
        box.appendChild(self.repairBox);
        var list = el("ul", "gm-plan-list");
        list.id = "gm-plan-problem-list";
        mine.slice(0, 100).forEach(function (p) {
          var li = el("li", "gm-plan-problem gm-plan-" + p.severity);
          li.dataset.kind = p.kind;
          li.appendChild(el("span", "gm-plan-tag", t.severities[p.severity] || p.severity));
          li.appendChild(el("span", null, " " + (t.kinds[p.kind] || p.kind) + " · " + p.codes.join("、") +
            (p.area_m2 ? " · " + fixed(p.area_m2, 1) + " m²" : "")));
          list.appendChild(li);
          var shape = L.geoJSON(p.geometry, { pane: "gmPlanDiff", coordsToLatLng: self.core.toLatLng,
            style: { color: p.severity === "error" ? "#c62828" : "#ef6c00", weight: 2, fillOpacity: 0.35, dashArray: "2 3" },
            pointToLayer: function (feature, at) {
              return L.circleMarker(at, { radius: 6, color: p.severity === "error" ? "#c62828" : "#ef6c00", weight: 2,
                fillOpacity: 0.3, pane: "gmPlanDiff" });
            } });
          shape.bindTooltip(el("span", null, (t.kinds[p.kind] || p.kind) + " · " + p.detail), { sticky: true });
          shape.addTo(self.problemLayer);
          li.addEventListener("click", function () {
            var bounds = shape.getBounds();
            if (bounds.isValid()) { self.map.fitBounds(bounds, { maxZoom: 17 }); }
          });
        });
        if (!mine.length) { list.appendChild(el("li", "gm-muted", t.noProblems)); }
        box.appendChild(list);
        self.core.mark("gmPlanProblems", mine.length);
      }).catch(function (err) { self.complain(err); });
    },

    /* the automatic repairs of gaps, overlaps, slivers and narrow parts outside the parent: a preview (what moves
     * where, the check's errors and warnings before and after), applied as one edit of the draft's log on confirmation */
    previewRepairs: function () {
      var self = this, t = this.t, box = this.repairBox;
      this.clearError();
      return this.core.get("generations/" + this.gen.id + "/repairs").then(function (plan) {
        box.replaceChildren();
        box.hidden = false;
        box.appendChild(el("div", "gm-plan-subhead", t.repairTitle));
        var items = plan.repairs || [];
        self.core.mark("gmPlanRepairs", items.length);
        if (!items.length) {
          box.appendChild(el("div", "gm-muted", t.repairNone));
        } else {
          var summary = el("div", "gm-plan-repair-summary", items.length + " " + t.repairCount + t.comma + t.repairErrors + " " +
            plan.before.errors + " → " + plan.after.errors + t.comma + t.repairWarnings + " " + plan.before.warnings + " → " +
            plan.after.warnings);
          summary.id = "gm-plan-repair-summary";
          box.appendChild(summary);
          var list = el("ul", "gm-plan-list");
          list.id = "gm-plan-repair-list";
          items.slice(0, 50).forEach(function (r) {
            var li = el("li", "gm-plan-problem");
            li.dataset.kind = r.kind;
            li.title = r.detail;
            li.appendChild(el("span", "gm-plan-tag", (t.repairKinds && t.repairKinds[r.kind]) || r.kind));
            li.appendChild(el("span", null, " " + (r.from_code || "—") + " " + t.to + " " + (r.to_code || "—") + " · " +
              fixed(r.area_m2, 1) + " m²"));
            var shape = L.geoJSON(r.geometry, { pane: "gmPlanDiff", coordsToLatLng: self.core.toLatLng,
              style: { color: "#00897b", weight: 3, fillOpacity: 0.45 },
              pointToLayer: function (feature, at) {
                return L.circleMarker(at, { radius: 8, color: "#00897b", weight: 3, fillOpacity: 0.3, pane: "gmPlanDiff" });
              } }).addTo(self.problemLayer);
            li.addEventListener("click", function () {
              var bounds = shape.getBounds();
              if (bounds.isValid()) { self.map.fitBounds(bounds, { maxZoom: 17 }); }
            });
            list.appendChild(li);
          });
          box.appendChild(list);
        }
        if ((plan.skipped || []).length) {
          box.appendChild(el("div", "gm-plan-bad", t.repairSkipped));
          var left = el("ul", "gm-plan-list");
          plan.skipped.slice(0, 20).forEach(function (text) { left.appendChild(el("li", null, text)); });
          box.appendChild(left);
        }
        var row = el("div", "gm-plan-form");
        if (plan.applicable === false) {  // tried and rolled back by the server: applying would be refused
          var refused = el("div", "gm-plan-bad", t.repairRefused + (plan.refusal || ""));
          refused.id = "gm-plan-repair-refused";
          box.appendChild(refused);
        } else if (items.length) {
          row.appendChild(el("span", "gm-muted", t.repairNote));
          self.button(row, t.repairApply, function () { self.applyRepairs(); }, "gm-plan-primary").id = "gm-plan-repair-apply";
        }
        self.button(row, t.cancel, function () { box.hidden = true; box.replaceChildren(); self.loadProblems(); })
          .id = "gm-plan-repair-cancel";
        box.appendChild(row);
      }).catch(function (err) { self.complain(err); });
    },

    applyRepairs: function () {
      var self = this;
      this.clearError();
      return this.core.request("POST", "generations/" + this.gen.id + "/repairs", {}).then(function (res) {
        return self.afterEdit(res.edit, self.t.repaired);
      }).catch(function (err) { self.complain(err); });
    },

    loadDiff: function () {
      var self = this, t = this.t, box = this.sections.diff.content;
      return this.core.get("generations/" + this.gen.id + "/diff?area=" + this.area).then(function (d) {
        self.diff = d;
        box.replaceChildren();
        self.diffLayer.clearLayers();
        var count = d.created.length + d.retired.length + d.changed.length;
        self.sections.diff.head.textContent = t.diff + " (" + count + ")";
        if (!count && !d.units.length) { box.appendChild(el("div", "gm-muted", t.noDiff)); }
        var list = el("ul", "gm-plan-list");
        list.id = "gm-plan-diff-list";
        d.areas.forEach(function (a) {
          var li = el("li", "gm-plan-diff-" + a.status);
          li.dataset.code = a.code;
          li.dataset.status = a.status;
          var label = { created: t.created, retired: t.retired, changed: t.changedList }[a.status];
          li.appendChild(el("span", "gm-plan-tag", label));
          li.appendChild(el("span", null, " " + t.levels[a.level] + " " + a.name + " " + a.code + " · " + t.households +
            " " + (a.households_before === null ? "—" : a.households_before) + " → " +
            (a.households_after === null ? "—" : a.households_after)));
          list.appendChild(li);
          if (a.geometry_before) {
            L.geoJSON(a.geometry_before, { pane: "gmPlanDiff", coordsToLatLng: self.core.toLatLng, interactive: false,
              style: { color: "#616161", weight: 1.5, dashArray: "4 4", fill: false } }).addTo(self.diffLayer);
          }
          var grid = a.level === "grid" || self.level === "microgrid";
          L.geoJSON(a.geometry, { pane: "gmPlanDiff", coordsToLatLng: self.core.toLatLng, interactive: false,
            style: { color: a.status === "retired" ? "#757575" : "#6a1b9a", weight: grid ? 3.5 : 2,
              dashArray: a.status === "retired" ? "2 6" : null, fill: false } }).addTo(self.diffLayer);
        });
        box.appendChild(list);
        if (d.units.length) {
          box.appendChild(el("div", "gm-plan-subhead", t.movedUnits + " (" + d.units.length + ")"));
          var units = el("ul", "gm-plan-list gm-plan-units");
          d.units.slice(0, 200).forEach(function (u) {
            units.appendChild(el("li", null, (t.placeKinds[u.kind] || u.kind) + " " + u.name + " · " + u.households + " " +
              t.hh + " · " + (u.from || "—") + " " + t.to + " " + (u.to || "—")));
            L.circleMarker(self.core.point([u.lon, u.lat]), { radius: 6, color: "#fff", weight: 1.5, fillColor: "#d500f9",
              fillOpacity: 0.95, pane: "gmPlanDiff", interactive: false }).addTo(self.diffLayer);
          });
          box.appendChild(units);
        }
        self.core.mark("gmPlanDiff", [d.created.length, d.changed.length, d.retired.length, d.units.length].join(":"));
      }).catch(function (err) { self.complain(err); });
    },

    loadBranches: function () {
      var self = this, t = this.t, box = this.sections.branches.content, area = this.area;
      box.replaceChildren();
      if (!this.gen || (this.gen.status !== "draft" && this.gen.status !== "submitted")) {
        this.sections.branches.box.hidden = true;
        return Promise.resolve();
      }
      this.sections.branches.box.hidden = false;
      return this.core.get("generations/" + this.gen.id + "/assignments").then(function (res) {
        var grids = res.grids || [], byCode = {}, branches = {}, holders = {}, mine, shared;
        grids.forEach(function (g) {
          byCode[g.code] = g;
          if (g.branch) {
            branches[g.branch.id] = g.branch.name;
            (holders[g.branch.id] = holders[g.branch.id] || []).push(g.code);
          }
        });
        mine = (res.missing || []).filter(function (c) { return c.indexOf(area) === 0; });
        shared = (res.shared || []).filter(function (s) {
          return s.codes.some(function (c) { return c.indexOf(area) === 0; });
        });
        self.sections.branches.head.textContent = t.branches + " (" + mine.length + ")";
        self.core.mark("gmPlanMissing", mine.join(","));
        self.core.mark("gmPlanShared", shared.map(function (s) { return s.branch_id; }).join(","));
        if (shared.length) {
          var list = el("ul", "gm-plan-list gm-plan-shared");
          list.id = "gm-plan-shared";
          shared.forEach(function (s) {
            list.appendChild(el("li", "gm-plan-bad", (branches[s.branch_id] || "#" + s.branch_id) + " · " + t.sharedBy +
              " " + s.codes.join("、")));
          });
          box.appendChild(list);
        }
        if (!mine.length) { box.appendChild(el("div", "gm-muted", t.noMissing)); return; }
        var note = el("div", "gm-muted gm-plan-branch-note", t.branchNote);
        note.id = "gm-plan-branch-note";
        box.appendChild(note);
        var ids = Object.keys(branches).sort(function (a, b) {
          var near = function (id) { return holders[id].some(function (c) { return c.indexOf(area) === 0; }) ? 0 : 1; };
          return near(a) - near(b) || (branches[a] < branches[b] ? -1 : 1);
        });
        mine.forEach(function (code) {
          var g = byCode[code] || { code: code, name: code, staff: [] };
          var row = el("div", "gm-plan-assign");
          row.dataset.code = code;
          row.appendChild(el("span", "gm-plan-assign-name", g.name + " " + code));
          var select = el("select");
          select.setAttribute("aria-label", t.pickBranch + " " + code);
          option(select, "", t.pickBranch);
          ids.forEach(function (id) { option(select, id, branches[id] + "（" + t.heldBy + " " + holders[id].join("、") + "）"); });
          row.appendChild(select);
          var save = self.button(row, t.save, function () {
            if (!select.value) { self.complain(t.pickBranch); return; }
            save.disabled = true;
            self.core.request("PUT", "generations/" + self.gen.id + "/assignments", {
              area_code: code, branch_id: Number(select.value),
              staff: (g.staff || []).map(function (s) { return { staff_id: s.id, role: s.role }; })
            }).then(function () { self.say(t.saved); return Promise.all([self.loadBranches(), self.reloadBalanceOnly()]); })
              .catch(function (err) { save.disabled = false; self.complain(err); });
          });
          save.disabled = !self.editable();
          select.disabled = !self.editable();
          box.appendChild(row);
        });
      }).catch(function (err) { box.appendChild(el("div", "gm-error", err.message)); });
    },

    /* the balance of the units shown and, at grid level, the micro-grids the tools edit */
    loadBalance: function (fit) {
      var self = this, base = "generations/" + this.gen.id + "/balance?area=" + this.area + "&level=";
      var leaves = this.level === "grid" ? this.core.get(base + "microgrid") : Promise.resolve(null);
      return Promise.all([this.core.get(base + this.level), leaves]).then(function (res) {
        self.showBalance(res[0], fit, res[1]);
      }).catch(function (err) { self.complain(err); });
    },

    reloadBalanceOnly: function () { return this.loadBalance(false); },

    /* ------------------------------------------------------------------------------------------- tools */
    setMode: function (mode) {
      if (!this.editable()) { mode = null; }
      this.map.pm.disableDraw();
      if (this.editing) { this.editing.pm.disable(); this.editing = null; }
      this.mode = mode;
      this.selection = [];
      this.picked = [];
      this.placeLayer.clearLayers();
      this.editLayer().eachLayer(function (lyr) { if (lyr.pm) { lyr.pm.disable(); } });
      if (mode === "split") { this.drawLine(false); }
      if (mode === "paint") { this.loadPlaces(); }
      this.core.mark("gmPlanMode", mode || "none");
      this.refreshTools();
      this.restyle();
    },

    refreshTools: function () {
      var t = this.t, self = this, editable = this.editable();
      Object.keys(this.toolButtons).forEach(function (m) {
        var b = self.toolButtons[m];
        b.disabled = !editable;
        b.classList.toggle("gm-plan-on", self.mode === m);
        b.setAttribute("aria-pressed", self.mode === m ? "true" : "false");
      });
      this.undoButton.disabled = !editable || !this.canUndo;
      this.redoButton.disabled = !editable || !this.canRedo;
      this.core.mark("gmPlanCanUndo", this.canUndo ? 1 : 0);
      this.core.mark("gmPlanCanRedo", this.canRedo ? 1 : 0);
      this.hint.textContent = editable ? t.hints[this.mode || "none"] : this.readonlyHint();
      var a = this.actions;
      a.replaceChildren();
      if (!editable) { return; }
      if (this.selection.length) {
        a.appendChild(el("span", "gm-plan-selected", t.selected + "：" + this.selection.map(function (c) {
          return self.byCode && self.byCode[c] ? self.byCode[c].properties.name : c;
        }).join("、")));
      }
      if (this.picked.length) {
        a.appendChild(el("span", "gm-plan-selected", t.selected + "：" + this.picked.map(function (p) {
          return p.name;
        }).join("、")));
      }
      if (this.mode === "merge") {
        this.button(a, t.mergeSelected, function () { self.mergeSelected(); }).id = "gm-plan-do-merge";
      }
      if (this.mode === "edge") {
        this.button(a, t.edgeSelected, function () { self.drawEdge(); }).id = "gm-plan-do-edge";
      }
      if (this.mode === "lock") {
        this.button(a, t.lock, function () { self.lockSelected(true); }).id = "gm-plan-do-lock";
        this.button(a, t.unlock, function () { self.lockSelected(false); }).id = "gm-plan-do-unlock";
      }
      if (this.mode === "split" || this.mode === "edge") {
        this.button(a, t.finish, function () { self.finishLine(); }).id = "gm-plan-finish";
      }
      if (this.mode) {
        this.button(a, t.cancel, function () { self.setMode(null); }).id = "gm-plan-cancel";
      }
      if (this.selection.length || this.picked.length) {
        this.button(a, t.clear, function () { self.selection = []; self.picked = []; self.restyle(); self.refreshTools(); });
      }
    },

    restyle: function () {
      var self = this;
      this.units.eachLayer(function (lyr) { lyr.setStyle(self.unitStyle(lyr.feature)); });
      this.leafLayer.eachLayer(function (lyr) { lyr.setStyle(self.leafStyle(lyr.feature)); });
      var rows = document.querySelectorAll("#gm-plan-balance-table tr.gm-plan-row");
      Array.prototype.forEach.call(rows, function (tr) {
        tr.classList.toggle("gm-plan-chosen", self.selection.indexOf(tr.dataset.code) >= 0);
      });
      this.placeLayer.eachLayer(function (m) {
        if (m.gmPlace) { m.setStyle(self.placeStyle(m.gmPlace)); }
      });
      this.core.mark("gmPlanSelection", this.selection.join(","));
      this.core.mark("gmPlanPicked", this.picked.map(function (p) { return p.id; }).join(","));
    },

    unitClicked: function (code, lyr) {
      if (!this.editable() || !this.mode || this.mode === "split") {
        this.toggle(code, !this.mode ? 1 : 0);
        return;
      }
      if (this.mode === "paint") { this.paintTo(code); return; }
      if (this.mode === "vertex") { this.editVertices(code); return; }
      this.toggle(code, this.mode === "edge" ? 2 : 0);
    },

    /* select or unselect a unit; `most`: at most that many at once (0: any number) */
    toggle: function (code, most) {
      var i = this.selection.indexOf(code);
      if (i >= 0) { this.selection.splice(i, 1); } else {
        this.selection.push(code);
        if (most && this.selection.length > most) { this.selection.shift(); }
      }
      this.restyle();
      this.refreshTools();
    },

    editLayer: function () { return this.separateLeaves ? this.leafLayer : this.units; },

    layerOf: function (code) {
      var found = null;
      this.editLayer().eachLayer(function (lyr) { if (lyr.gmCode === code) { found = lyr; } });
      return found;
    },

    /* the WGS84 longitude/latitude of a point on the map (the inverse of the GCJ-02 shift when the base map has it) */
    lonLat: function (latlng) {
      if (!this.core.gcj) { return [latlng.lng, latlng.lat]; }
      var lat = latlng.lat, lon = latlng.lng;
      for (var i = 0; i < 8; i += 1) {
        var p = GM.gcj02(lat, lon);
        lat += latlng.lat - p[0];
        lon += latlng.lng - p[1];
      }
      return [lon, lat];
    },

    lineOf: function (layer) {
      var self = this;
      return { type: "LineString", coordinates: layer.getLatLngs().map(function (ll) { return self.lonLat(ll); }) };
    },

    finishLine: function () {
      var draw = this.map.pm.Draw && this.map.pm.Draw.Line;
      if (draw && draw._enabled && draw._layer && draw._layer.getLatLngs().length >= 2) { draw._finishShape(); }
    },

    drawEdge: function () {
      if (this.selection.length !== 2) { this.complain(this.t.nothingSelected); return; }
      this.drawLine(true);
    },

    /* a split line goes where it is clicked; a new edge snaps its ends to the vertices of the old one */
    drawLine: function (snap) {
      this.map.pm.enableDraw("Line", { snappable: snap, snapDistance: 15, finishOnEnter: true });
      this.core.mark("gmPlanDrawing", 1);
    },

    /* a line was drawn: split the unit it crosses, or give two units a new shared edge */
    drawn: function (layer) {
      var line = this.lineOf(layer), self = this;
      this.map.removeLayer(layer);
      if (this.mode === "edge") {
        var codes = this.selection.slice();
        this.map.pm.disableDraw();
        this.snapEnds(line, codes);
        return this.edit({ op: "move_edge", codes: codes, line: line });
      }
      if (this.mode !== "split") { return null; }
      var target = this.selection.length === 1 ? this.selection[0] : this.crossed(line);
      if (!target) { this.complain(this.t.lineOutside); this.drawLine(false); return null; }
      return this.edit({ op: "split", code: target, line: line }).then(function () {
        if (self.mode === "split") { self.drawLine(false); }
      });
    },

    /* put each end of a new edge on the nearest vertex the two leaves share, when it is within 20 px of one */
    snapEnds: function (line, codes) {
      var self = this, sets = codes.map(function (code) {
        var f = self.leafFeatures.filter(function (g) { return g.properties.code === code; })[0], out = {};
        if (f) {
          (f.geometry.type === "Polygon" ? [f.geometry.coordinates] : f.geometry.coordinates).forEach(function (rings) {
            rings.forEach(function (ring) { ring.forEach(function (v) { out[v[0] + "," + v[1]] = v; }); });
          });
        }
        return out;
      });
      var shared = Object.keys(sets[0] || {}).filter(function (k) { return sets[1] && sets[1][k]; })
        .map(function (k) { return sets[0][k]; });
      var px = function (v) { return self.map.latLngToContainerPoint(self.core.point(v)); };
      [0, line.coordinates.length - 1].forEach(function (i) {
        var at = px(line.coordinates[i]), best = null, bestD = 20;
        shared.forEach(function (v) {
          var d = at.distanceTo(px(v));
          if (d <= bestD) { best = v; bestD = d; }
        });
        if (best) { line.coordinates[i] = [best[0], best[1]]; }
      });
      return line;
    },

    /* the unit holding most of the line's sample points (its vertices and segment midpoints) */
    crossed: function (line) {
      var pts = [], c = line.coordinates, votes = {}, best = null;
      for (var i = 0; i < c.length; i += 1) {
        pts.push(c[i]);
        if (i + 1 < c.length) {
          for (var k = 1; k < 8; k += 1) { pts.push([c[i][0] + (c[i + 1][0] - c[i][0]) * k / 8, c[i][1] + (c[i + 1][1] - c[i][1]) * k / 8]); }
        }
      }
      this.leafFeatures.forEach(function (f) {
        pts.forEach(function (p) { if (inPolygon(p, f.geometry)) { votes[f.properties.code] = (votes[f.properties.code] || 0) + 1; } });
      });
      Object.keys(votes).forEach(function (code) { if (!best || votes[code] > votes[best]) { best = code; } });
      return best;
    },

    mergeSelected: function () {
      if (this.selection.length < 2) { this.complain(this.t.nothingSelected); return null; }
      return this.edit({ op: "merge", codes: this.selection.slice() });
    },

    /* lock what is shown: the grids of the chosen leaves at grid level, else the chosen units */
    lockSelected: function (locked) {
      var self = this, codes = [];
      if (!this.selection.length) { this.complain(this.t.nothingSelected); return null; }
      this.selection.forEach(function (code) {
        var f = self.separateLeaves ? self.leafFeatures.filter(function (g) { return g.properties.code === code; })[0] : null;
        var target = f && f.properties.parent ? f.properties.parent : code;
        if (codes.indexOf(target) < 0) { codes.push(target); }
      });
      return this.edit({ op: "lock", codes: codes, locked: locked });
    },

    /* drag a vertex of one unit with Geoman; the API moves it in every leaf that has it */
    editVertices: function (code) {
      var lyr = this.layerOf(code), self = this;
      if (!lyr) { return; }
      if (this.editing && this.editing !== lyr) { this.editing.pm.disable(); }
      this.editing = lyr;
      this.selection = [code];
      this.restyle();
      this.refreshTools();
      lyr.off("pm:markerdragstart pm:markerdragend");
      var from = null;
      lyr.on("pm:markerdragstart", function (e) { from = self.vertexAt(lyr.feature.geometry, e.indexPath); });
      lyr.on("pm:markerdragend", function (e) {
        var to = self.lonLat(e.markerEvent.target.getLatLng());
        lyr.pm.disable();
        self.editing = null;
        if (!from || e.intersectionReset) { return self.reloadBalanceOnly(); }
        return self.edit({ op: "move_vertex", from: from, to: to });
      });
      lyr.pm.enable({ allowSelfIntersection: false, preventMarkerRemoval: true, hideMiddleMarkers: true, snappable: false,
        draggable: false });
      this.core.mark("gmPlanEditing", code);
    },

    /* the stored coordinates of the vertex at a Geoman index path ([ring, i] or [polygon, ring, i]) */
    vertexAt: function (geometry, path) {
      var coords = geometry.coordinates;
      if (!Array.isArray(path)) { path = [0, path]; }
      if (geometry.type === "MultiPolygon" && path.length === 2) { path = [0].concat(path); }
      if (geometry.type === "Polygon" && path.length === 3) { path = path.slice(1); }
      var node = coords;
      for (var i = 0; i < path.length; i += 1) {
        if (!node) { return null; }
        node = node[path[i]];
      }
      return node && typeof node[0] === "number" ? [node[0], node[1]] : null;
    },

    /* --------------------------------------------------------------------------------- painting units */
    loadPlaces: function () {
      var self = this;
      if (!this.gen || !this.area) { return Promise.resolve(); }
      return this.core.get("generations/" + this.gen.id + "/places?area=" + this.area).then(function (res) {
        self.places = res.places;
        self.drawPlaces();
      }).catch(function (err) { self.complain(err); });
    },

    placeStyle: function (p) {
      var on = this.picked.some(function (q) { return q.id === p.id; });
      return p.kind === "compound"
        ? { radius: on ? 10 : 8, color: on ? "#d81b60" : "#e65100", weight: on ? 4 : 2, fillColor: "#ffb74d", fillOpacity: 0.9 }
        : { radius: on ? 6 : 4.5, color: on ? "#d81b60" : "#1a237e", weight: on ? 3 : 1, fillColor: "#5c6bc0", fillOpacity: 0.95 };
    },

    drawPlaces: function () {
      var self = this, t = this.t;
      this.placeLayer.clearLayers();
      if (this.mode !== "paint") { return; }
      this.places.forEach(function (p) {
        var m = L.circleMarker(self.core.point([p.lon, p.lat]), Object.assign({ pane: "gmPlanLabels", bubblingMouseEvents: false },
          self.placeStyle(p)));
        m.gmPlace = p;
        m.bindTooltip(el("span", null, (t.placeKinds[p.kind] || p.kind) + " " + p.name + " · " + p.households + " " +
          t.hh), { direction: "top" });
        m.on("click", function (e) { L.DomEvent.stopPropagation(e); self.pick(p); });
        m.addTo(self.placeLayer);
      });
      this.core.mark("gmPlanPlaces", this.places.length);
    },

    pick: function (p) {
      var i = this.picked.map(function (q) { return q.id; }).indexOf(p.id);
      if (i >= 0) { this.picked.splice(i, 1); } else {
        // a compound goes alone; buildings go together
        if (p.kind === "compound" || this.picked.some(function (q) { return q.kind === "compound"; })) { this.picked = []; }
        this.picked.push(p);
      }
      this.restyle();
      this.refreshTools();
    },

    paintTo: function (code) {
      if (!this.picked.length) { this.complain(this.t.pickPlaces); return null; }
      var to = code, body;
      if (this.picked.length === 1 && this.picked[0].kind === "compound") {
        body = { op: "reassign", compound: this.picked[0].id, to: to };
      } else {
        body = { op: "reassign", places: this.picked.map(function (p) { return p.id; }), to: to };
      }
      return this.edit(body);
    },

    /* ------------------------------------------------------------------------------ edits, undo, redo */
    edit: function (body) {
      var self = this;
      if (!OPS[body.op]) { return null; }
      this.clearError();
      return this.core.request("POST", "generations/" + this.gen.id + "/edits", body).then(function (res) {
        return self.afterEdit(res, self.t.edited);
      }).catch(function (err) { self.complain(err); return self.reloadBalanceOnly(); });
    },

    undoRedo: function (which) {
      var self = this;
      this.clearError();
      return this.core.request("POST", "generations/" + this.gen.id + "/edits/" + which).then(function (res) {
        return self.afterEdit(res, which === "undo" ? self.t.undone : self.t.redone);
      }).catch(function (err) { self.complain(err); });
    },

    afterEdit: function (res, verb) {
      var t = this.t, box = this.change, mode = this.mode, self = this;
      this.canUndo = !!res.can_undo;
      this.canRedo = !!res.can_redo;
      this.say(verb + " · " + ((t.ops && t.ops[res.op]) || res.op || "") + (res.seq ? " #" + res.seq : ""));
      box.replaceChildren();
      var rows = (res.balance || []).filter(function (r) { return r.code.length >= 15; });  // grids and below
      if (rows.length) {
        box.appendChild(el("div", "gm-plan-subhead", t.lastChange));
        var list = el("ul", "gm-plan-list");
        var names = {};
        (res.changed || []).forEach(function (c) { names[c.code] = c.name; });
        rows.forEach(function (r) {
          var known = names[r.code] || (self.byCode && self.byCode[r.code] && self.byCode[r.code].properties.name);
          list.appendChild(el("li", null, (known ? known + " " : "") + r.code + " · " + t.households + " " + (r.households_before === null ? "—" : r.households_before) +
            " → " + (r.households_after === null ? "—" : r.households_after) + " · " + t.population + " " +
            (r.population_before === null ? "—" : r.population_before) + " → " +
            (r.population_after === null ? "—" : r.population_after)));
        });
        box.appendChild(list);
      }
      this.core.mark("gmPlanLastEdit", (res.op || "") + ":" + (res.seq || ""));
      this.core.mark("gmPlanEdits", (Number(document.body.dataset.gmPlanEdits) || 0) + 1);
      return this.reload(false).then(function () {
        if (mode && mode !== "split") { self.mode = null; self.setMode(mode); }
      });
    },

    /* ------------------------------------------------------------------------------- submit and approve */
    showFlow: function () {
      var t = this.t, box = this.flow, self = this, gen = this.gen;
      box.replaceChildren();
      if (!gen) {
        this.statusLine.replaceChildren();
        if (this.mayEdit) { this.newDraftForm(box); }
        box.hidden = !this.mayEdit;
        return;
      }
      box.appendChild(el("h3", null, t.workflow));
      var status = el("span", "gm-plan-badge gm-plan-badge-" + gen.status, t.statuses[gen.status] || gen.status);
      status.id = "gm-plan-gen-status";
      this.statusLine.replaceChildren(status);
      if (gen.effective_from) { this.statusLine.appendChild(el("span", "gm-muted", " " + t.effectiveFrom + " " + gen.effective_from)); }
      this.core.mark("gmPlanStatus", gen.status);
      if (this.mayEdit && gen.status === "draft") {
        this.button(box, t.submit, function () { self.workflow("submit", undefined, t.submitted); }, "gm-plan-primary").id = "gm-plan-submit";
      }
      if (this.mayApprove && gen.status === "submitted") {
        var approve = el("div", "gm-plan-form");
        var date = el("input");
        date.type = "date";
        date.value = today();
        date.id = "gm-plan-effective";
        this.field(approve, t.effectiveFrom, date, "gm-plan-effective");
        this.button(approve, t.approve, function () {
          if (!date.value) { self.complain(t.dateNeeded); return; }
          self.workflow("approve", { effective_from: date.value }, t.approved);
        }, "gm-plan-primary").id = "gm-plan-approve";
        box.appendChild(approve);
        var reject = el("div", "gm-plan-form"), reason = el("input");
        reason.type = "text";
        reason.maxLength = 500;
        this.field(reject, t.reason, reason, "gm-plan-reason");
        this.button(reject, t.reject, function () {
          if (!reason.value.trim()) { self.complain(t.reasonNeeded); reason.focus(); return; }
          self.workflow("reject", { reason: reason.value.trim() }, t.rejected);
        }).id = "gm-plan-reject";
        box.appendChild(reject);
      }
      if (this.mayEdit && (gen.status === "active" || gen.status === "approved")) { this.newDraftForm(box); }
      if (gen.status === "active") {  // the overview shows the boundaries in force
        var link = el("a", "gm-plan-overview", t.viewOverview);
        link.href = "/?lang=" + this.core.lang;
        link.id = "gm-plan-to-overview";
        box.appendChild(link);
      }
      if (box.childNodes.length === 1) { box.hidden = true; } else { box.hidden = false; }
    },

    /* a balanced proposal for the community's grids (the partition API), opened as a new draft */
    showPartition: function () {
      var t = this.t, self = this, box = this.partitionBox, gen = this.gen;
      var area = (this.areaList || []).filter(function (a) { return a.code === self.area; })[0];
      var open = box.open;
      box.replaceChildren();
      box.hidden = !(this.mayEdit && gen && area && area.level === "community" &&
        (gen.status === "draft" || gen.status === "active"));
      if (box.hidden) { return; }
      box.appendChild(el("summary", null, t.partition));
      box.appendChild(el("div", "gm-muted gm-plan-new-hint", t.partitionHint));
      var form = el("div", "gm-plan-form"), n = el("input"), tol = el("input");
      n.type = "number";
      n.min = 1;
      n.max = 50;
      n.value = this.balance && this.balance.area === this.area && this.balance.level === "grid" ? this.balance.totals.units : 2;
      this.field(form, t.gridCount, n, "gm-plan-partition-n");
      tol.type = "number";
      tol.min = 1;
      tol.max = 50;
      tol.value = 10;
      this.field(form, t.tolerance + " ±%", tol, "gm-plan-partition-tolerance");
      this.button(form, t.partitionRun, function () {
        var k = Number(n.value), pct = Number(tol.value);
        if (!(k >= 1 && k <= 50 && k === Math.floor(k))) { self.complain(t.gridCountRange); return; }
        if (!(pct >= 1 && pct <= 50)) { self.complain(t.toleranceRange); return; }
        self.partition(k, pct / 100);
      }, "gm-plan-primary").id = "gm-plan-partition-run";
      box.appendChild(form);
      box.open = open;
    },

    partition: function (n, tolerance) {
      var self = this, t = this.t, area = this.area;
      this.clearError();
      return this.core.request("POST", "generations/" + this.gen.id + "/partition", { area: area, n: n, tolerance: tolerance })
        .then(function (res) {
          return self.core.get("generations").then(function (gens) {
            self.generations = gens;
            self.fillGenerations();
            self.setMode(null);
            return self.pickGeneration(res.generation_id);
          }).then(function () {
            self.say(t.partitioned + " #" + res.generation_id + t.comma + t.movedHh + " " + res.moved_households);
            self.core.mark("gmPlanWorkflow", "partition");
          });
        }).catch(function (err) { self.complain(err); });
    },

    /* a draft is made from the page: a copy of the active boundaries, named by the planner */
    newDraftForm: function (box) {
      var t = this.t, self = this, form = el("div", "gm-plan-form gm-plan-new");
      form.appendChild(el("div", "gm-muted gm-plan-new-hint", t.newDraftHint));
      var name = el("input");
      name.type = "text";
      name.maxLength = 200;
      name.value = t.draft + " " + today();
      this.field(form, t.draftName, name, "gm-plan-draft-name");
      this.button(form, t.newDraft, function () {
        self.createDraft(name.value.trim(), self.gen ? self.gen.id : null);
      }, "gm-plan-primary").id = "gm-plan-new-draft";
      box.appendChild(form);
    },

    createDraft: function (name, source) {
      var self = this, t = this.t;
      this.clearError();
      if (!name) { this.complain(t.draftNameNeeded); return Promise.resolve(); }
      var body = { name: name };
      if (source) { body.source_id = source; }  // a copy of the version shown (the active or the scheduled one)
      return this.core.request("POST", "generations", body).then(function (gen) {
        return self.core.get("generations").then(function (gens) {
          self.generations = gens;
          self.fillGenerations();
          self.setMode(null);
          return self.pickGeneration(gen.id);
        }).then(function () {
          self.say(t.createdDraft + " #" + gen.id);
          self.core.mark("gmPlanWorkflow", "create");
        });
      }).catch(function (err) { self.complain(err); });
    },

    workflow: function (action, body, done) {
      var self = this, id = this.gen.id, t = this.t;
      this.clearError();
      return this.core.request("POST", "generations/" + id + "/" + action, body).then(function (res) {
        var g = res && res.generation;
        if (action === "approve" && g && g.status === "active") { done = t.approvedNow; }
        if (action === "approve" && g && g.status === "approved") { done = t.approvedLater + " " + (g.effective_from || ""); }
        self.say(done);
        self.core.mark("gmPlanWorkflow", action);
        return self.core.get("generations").then(function (gens) {
          self.generations = gens;
          self.fillGenerations();
          self.gen = gens.filter(function (g) { return g.id === id; })[0] || self.gen;
          if (self.gen.status !== "retired") { self.genSelect.value = String(id); }
          self.setMode(null);
          return self.loadEdits().then(function () { return self.reload(false); });
        });
      }).catch(function (err) { self.complain(err); });
    },

    /* for tests and scripts: where a WGS84 point is on the page, in CSS pixels */
    screenPoint: function (lonlat) {
      var p = this.map.latLngToContainerPoint(this.core.point(lonlat)), box = this.map.getContainer().getBoundingClientRect();
      return [box.left + p.x, box.top + p.y];
    }
  };

  window.GridmapPage = Page;
}());
