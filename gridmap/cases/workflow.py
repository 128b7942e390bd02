"""The case loop (事件收集—分析研判—精准派单—签收处理—结果反馈—工作评价—事件办结) as guarded transitions.

Every step names who may take it (a role, and for workers and departments the case must be theirs), from which
states, and against which version of the case: the caller sends the version it saw, and a conditional
`UPDATE … WHERE version = :seen` claims the case, so of fifty dispatchers acting at once exactly one wins and the
others get `StaleVersion` (kind `stale_version`). Each step is timestamped and written to the
case's history in the same transaction.

States: reported → filed | rejected | voided; filed → dispatched; dispatched → accepted (签收; the clock starts on
the working calendar) or back to filed (退单, bounce, with the grid boundary as evidence); accepted/rework →
handled; handled → closed (核查结案, by someone other than the handler) or rework (返工); closed → rated, and
reopened (back to dispatched) when the resident is not satisfied. A duplicate is merged (合并) into the case it
repeats: it ends as `merged`, and both cases keep their histories (each records the merge). Extension (延期) and
suspension (挂账) are requested by the handler and approved by a leader; a suspended case resumes with its
deadline moved by the time it was suspended. A department whistled to (吹哨) must report in (报到) within
`REPORT_IN_LIMIT`.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from gridmap import errors
from gridmap.calendar import WorkCalendar, china_date
from gridmap.errors import Conflict, InvalidInput, NotFound
from gridmap.store.engine import rowcount, session_scope
from gridmap.store.partitions import cases_by_id, this_case
from gridmap.store.tables import OVERDUE_CANDIDATES, Case, CaseCategory, CaseEvent, Department, StaffArea
from gridmap.textcheck import clean_text

if TYPE_CHECKING:
    from gridmap.geo.index import AreaIndex
    from gridmap.locating.locate import LocateOptions

Params = dict[str, Any]  # a step's parameters (reason, note, assignee_id, ...)
Detail = dict[str, Any] | None  # what a step adds to the history

ROLES = ("dispatcher", "worker", "department", "verifier", "leader", "resident", "admin", "system")
REPORT_IN_LIMIT = (2, "work_hours")  # a department whistled to reports in within two working hours
DEFAULT_LIMIT = (5, "work_days")  # a case without a category
NOT_SATISFIED_MAX = 2  # ratings 1–5; 1 and 2 are 不满意 and reopen the case


def _role_zh(role: str | None) -> str:
    from gridmap.access.policy import ROLES_ZH

    return ROLES_ZH.get(role or "", "系统" if role == "system" else str(role))


def _state_zh(state: str | None) -> str:
    from gridmap.cases.intake import STATE_ZH  # cases imports this module

    return STATE_ZH.get(state or "", str(state))


class Forbidden(errors.Forbidden):
    """The actor's role may not take this step on this case."""


StaleVersion = errors.StaleVersion  # the case changed since the caller read it
VersionRequired = errors.VersionRequired  # a change must say which version of the case it was based on


@dataclass(frozen=True)
class Actor:
    """Who acts: a stable id (`user`: the account's key, compared by the four-eyes rule), a role, for a worker
    the staff id, for a department its code, and the name written into the history."""

    user: str
    role: str
    staff_id: int | None = None
    department: str | None = None
    name: str | None = None

    def label(self) -> str:
        return f"{self.role}:{self.name or self.user}"


@dataclass(frozen=True)
class Step:
    name: str
    zh: str
    from_states: tuple[str, ...]
    roles: tuple[str, ...]
    to_state: str | None  # None: the state does not change (or depends on the parameters)


STEPS = {
    s.name: s
    for s in [
        Step("file", "立案", ("reported",), ("dispatcher", "system"), "filed"),
        Step("reject", "不予受理", ("reported",), ("dispatcher",), "rejected"),
        Step("void", "作废", ("reported", "filed", "dispatched"), ("dispatcher",), "voided"),
        Step("dispatch", "派遣", ("filed",), ("dispatcher", "system"), "dispatched"),
        Step("reassign", "改派", ("dispatched",), ("dispatcher",), "dispatched"),
        Step("accept", "签收", ("dispatched",), ("worker", "department"), "accepted"),
        Step("bounce", "退单", ("dispatched",), ("worker", "department"), "filed"),
        Step("whistle", "吹哨", ("accepted", "rework"), ("worker", "dispatcher"), None),
        Step("report_in", "报到", ("accepted", "rework"), ("department",), None),
        Step("handle", "处置反馈", ("accepted", "rework"), ("worker", "department"), "handled"),
        Step("verify", "核查结案", ("handled",), ("verifier",), "closed"),
        Step("send_back", "返工", ("handled",), ("verifier",), "rework"),
        Step("rate", "评价", ("closed",), ("resident", "dispatcher"), None),
        Step("request_extension", "申请延期", ("accepted", "rework"), ("worker", "department"), None),
        Step("request_suspension", "申请挂账", ("accepted", "rework"), ("worker", "department"), None),
        Step("approve", "批准申请", ("accepted", "rework"), ("leader",), None),
        Step("deny", "驳回申请", ("accepted", "rework"), ("leader",), None),
        Step("resume", "恢复办理", ("suspended",), ("leader", "dispatcher"), "accepted"),
        Step("merge", "合并", ("reported", "filed", "dispatched", "accepted"), ("dispatcher",), "merged"),
        Step("relocate", "更正位置", ("reported", "filed", "dispatched", "accepted"), ("dispatcher",), None),
        Step("urge", "催办", ("dispatched", "accepted", "rework"), ("dispatcher", "leader"), None),
        Step("supervise", "督办", ("dispatched", "accepted", "rework"), ("leader", "dispatcher"), None),
    ]
}
MERGE_TARGET_EXCLUDED = ("rejected", "voided", "merged")
NEEDS_REASON = {
    "reject",
    "void",
    "reassign",
    "bounce",
    "send_back",
    "request_extension",
    "request_suspension",
    "deny",
    "relocate",
}
NOTIFIES = {"urge", "supervise"}  # steps that tell the holder (and dispatch/reassign tell a worker it has a case)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value


def check_actor(user: str | None, role: str | None) -> None:
    if not user or not user.strip():
        raise InvalidInput(
            "user: missing; say who acts (a user id)", field="user", zh="用户：缺少操作人，请注明由谁操作（用户编号）。"
        )
    if role not in ROLES or role == "system":
        raise InvalidInput(
            f"role: {role!r} is not a role; accepted: {', '.join(r for r in ROLES if r != 'system')}",
            field="role",
            zh=f"角色：{role!r} 不是角色；可选：{'、'.join(_role_zh(r) for r in ROLES if r != 'system')}。",
        )


def require_role(user: str | None, role: str | None, allowed: tuple[str, ...], doing: str) -> None:
    """Who acts must be named, and be one of the `allowed` roles to do `doing` (else `Forbidden`, naming the role)."""
    check_actor(user, role)
    if role not in allowed:
        raise Forbidden(
            f"role: a {role} may not {doing}; allowed: {', '.join(allowed)}",
            field="role",
            zh=f"无权限：{_role_zh(role)}不能执行此操作；可执行的角色：{'、'.join(_role_zh(r) for r in allowed)}。",
        )


def limit_of(category: CaseCategory | None) -> tuple[int, str]:
    return (category.time_limit, category.time_unit) if category else DEFAULT_LIMIT


TEXT_PARAMS = {"reason": 2000, "note": 4000}  # free text written into the history: checked as intake text is


def act(
    session: Session,
    case_id: int,
    action: str,
    actor: Actor,
    *,
    version: int | None,
    calendar: WorkCalendar,
    params: Params | None = None,
    now: dt.datetime | None = None,
    index: AreaIndex | None = None,
    options: LocateOptions | None = None,
) -> Case:
    """Take one step of the loop on a case; returns the changed case. See the module docstring. `index` (the
    active boundaries) and `options` (the locate distances) are what `relocate` locates the new point with."""
    params = dict(params or {})
    for name, limit in TEXT_PARAMS.items():
        params[name] = clean_text(params.get(name), name, limit, multiline=True, required=False)
    step = STEPS.get(action)
    if step is None:
        raise NotFound(
            f"action: {action!r} is not a step; accepted: {', '.join(STEPS)}",
            field="action",
            zh=f"操作：{action!r} 不是办理步骤；可选：{'、'.join((f'{s.zh}（{a}）' for a, s in STEPS.items()))}。",
        )
    if version is None:
        raise VersionRequired(
            "version: say which version of the case you saw", field="version", zh="版本号：请注明您看到的案件版本。"
        )
    case = load_case(session, case_id)
    if case is None:
        raise NotFound(f"case id: no case has id {case_id}", field="id", zh=f"没有编号为 {case_id} 的案件。")
    if case.version != version:
        raise StaleVersion(
            f"version: the case is at version {case.version}, not {version}; reload it and retry",
            field="version",
            zh=f"版本号：案件当前为第 {case.version} 版，不是第 {version} 版；请刷新后重试。",
        )
    if actor.role not in step.roles:
        raise Forbidden(
            f"role: a {actor.role} may not {action} ({step.zh}); allowed: {', '.join(step.roles)}",
            field="role",
            zh=f"无权限：{_role_zh(actor.role)}不能{step.zh}；可执行的角色："
            f"{'、'.join(_role_zh(r) for r in step.roles)}。",
        )
    if case.state not in step.from_states:
        raise Conflict(
            f"state: cannot {action} ({step.zh}) a case that is {case.state}; only from {', '.join(step.from_states)}",
            field="state",
            zh=f"状态：案件当前为「{_state_zh(case.state)}」，不能{step.zh}；"
            f"只有「{'、'.join(_state_zh(s) for s in step.from_states)}」的案件可以。",
        )
    reason = params.get("reason")
    if action in NEEDS_REASON and not (isinstance(reason, str) and reason.strip()):
        raise InvalidInput(
            f"reason: {action} ({step.zh}) needs a reason", field="reason", zh=f"理由：{step.zh}须填写理由。"
        )
    now = now or _now()
    _check_owner(session, case, step, actor)

    # claim the case: of concurrent actors exactly one moves it on from this version
    claimed = session.execute(
        sa.update(Case)
        .where(this_case(session, case), Case.version == version)
        .values(version=version + 1)
        .execution_options(synchronize_session=False)
    )
    if rowcount(claimed) != 1:
        raise StaleVersion(
            f"version: the case changed while you acted (was {version}); reload it and retry",
            field="version",
            zh=f"版本号：您操作期间案件已被他人修改（原为第 {version} 版）；请刷新后重试。",
        )
    case.version = version + 1
    from_state = case.state
    detail = {k: v for k, v in params.items() if v is not None}
    holder_before = (case.assignee_id, case.department_id)
    if action == "relocate":
        extra = _relocate(session, case, actor, params, now, index, options)
    else:
        handler = getattr(_Handlers, action)
        extra = handler(session, case, actor, params, calendar, now) or {}
    detail.update(extra)
    if step.to_state is not None and case.state == from_state:
        case.state = step.to_state
    session.add(
        CaseEvent(
            case_id=case.id,
            at=now,
            actor=actor.label(),
            action=action,
            from_state=from_state,
            to_state=case.state,
            detail=detail or None,
        )
    )
    _notify(session, case, action, actor, params, holder_before, now)
    session.flush()
    return case


def load_case(session: Session, case_id: int) -> Case | None:
    """One case by id, read from its month's partition alone where the table is partitioned (see
    `gridmap.store.partitions`); None when there is none."""
    return session.scalars(sa.select(Case).where(cases_by_id(session, [case_id]))).first()


def _notify(
    session: Session,
    case: Case,
    action: str,
    actor: Actor,
    params: Params,
    holder_before: tuple[int | None, int | None],
    now: dt.datetime,
) -> None:
    """Urging and supervising reach the holder's accounts; a worker newly given a case is told."""
    from gridmap.cases import notifications

    if action in NOTIFIES:
        if case.assignee_id is None and case.department_id is None:
            raise Conflict(
                f"state: case {case.id} is with nobody to {action}",
                field="state",
                zh=f"状态：案件 {case.id} 当前无处置人，无法{STEPS[action].zh}",
            )
        notifications.notify_holder(
            session, case, action, actor=actor.label(), note=params.get("note") or params.get("reason"), now=now
        )
    elif case.assignee_id is not None and case.assignee_id != holder_before[0] and case.state == "dispatched":
        notifications.notify_holder(session, case, "assigned", actor=actor.label(), note=params.get("reason"), now=now)


def _relocate(
    session: Session,
    case: Case,
    actor: Actor,
    params: Params,
    now: dt.datetime,
    index: AreaIndex | None,
    options: LocateOptions | None,
) -> dict[str, Any]:
    """更正位置: a new point (`lon`/`lat` in `crs`) located as intake locates one, or one of the leaf grids near
    the point (`grid`, e.g. from the case's candidates) chosen by the dispatcher; the old and new point and
    codes are recorded. A case that was with someone is routed again in its new grid (an accepted one that
    changes hands goes back to dispatched: the new holder accepts it); a dead end (no grid) can then be filed."""
    from gridmap.cases import intake as gcases
    from gridmap.cases import queries
    from gridmap.geo import crs as gcrs
    from gridmap.locating.locate import LocateOptions, to_wgs84_checked

    if index is None:
        raise InvalidInput(
            "location: no boundaries are loaded to locate with", field="location", zh="位置：尚未导入边界，无法定位。"
        )
    options = options or LocateOptions()
    lon, lat, grid = params.get("lon"), params.get("lat"), params.get("grid")
    before = {
        "point": [case.lon, case.lat],
        "crs": case.raw_crs,
        **{column.key: getattr(case, column.key) for column in gcases.LEVEL_COLUMNS.values()},
    }
    if grid is not None:
        if lon is not None or lat is not None:
            raise InvalidInput(
                "grid: give either a point (lon, lat) or a grid, not both",
                field="grid",
                zh="网格：请给出新位置（经纬度）或网格之一，不要同时给出",
            )
        code = str(grid).strip()
        leaves = {ref.code for ref in index.leaves}
        if code not in leaves:
            raise InvalidInput(
                f"grid: {code[:40]!r} is not a leaf grid of the boundaries in force",
                field="grid",
                zh=f"网格：{code[:40]!r} 不是现行边界中的末级网格",
            )
        from gridmap.geo.index import Location

        location = Location(
            math.nan if case.lon is None else case.lon,
            math.nan if case.lat is None else case.lat,
            chain=index.chain_of(code),
            method="chosen",
        )
        flags = [f for f in (case.locate_flags or []) if f not in ("outside_all_grids", "assigned_to_nearest")]
        flags.append("grid_chosen")
        candidates = [c for c in queries._candidates(case.locate_candidates) if c["code"] != code]
        if case.microgrid_code or case.grid_code:
            old_leaf = case.microgrid_code or case.grid_code
            ref = index.by_code.get(old_leaf or "")
            candidates.insert(
                0,
                {
                    "code": old_leaf,
                    "name": ref.name if ref else None,
                    "level": ref.level if ref else None,
                    "distance_m": 0.0,
                },
            )
    else:
        if lon is None or lat is None:
            missing = "lon" if lon is None else "lat"
            raise InvalidInput(
                f"{missing}: relocating needs the new point (lon and lat) or a grid",
                field=missing,
                zh="经纬度：更正位置需要新的经纬度，或选择一个网格",
            )
        system = gcrs.parse_crs(params.get("crs") or "wgs84")
        x, y = lon, lat
        lon, lat = to_wgs84_checked(index, float(x), float(y), system, options)
        location, flags, candidates = gcases.locate_for_case(index, lon, lat, system, options)
        if not location.chain:
            raise InvalidInput(
                "lon: the new point lies in no grid either; move it into a grid or choose one of the candidates",
                field="lon",
                zh="经纬度：新位置仍不在任何网格内，请移入网格或从候选网格中选择",
            )
        case.lon, case.lat = lon, lat
        case.raw_x, case.raw_y, case.raw_crs = x, y, system.name
        case.geom = f"SRID=4326;POINT({lon!r} {lat!r})"
        flags = [*flags, "relocated"]
    gcases._apply_location(case, location)
    case.generation_id = index.generation_id
    case.locate_flags = flags
    case.locate_candidates = candidates
    after = {
        "point": [case.lon, case.lat],
        "crs": case.raw_crs,
        **{column.key: getattr(case, column.key) for column in gcases.LEVEL_COLUMNS.values()},
    }
    out = {"from": before, "to": after, "flags": flags, "candidates": candidates, "by": actor.label()}
    if case.state in ("dispatched", "accepted") and (case.assignee_id is not None or case.department_id is not None):
        holder = (case.assignee_id, case.department_id)
        out["routing"] = route(session, case, now)
        if (case.assignee_id, case.department_id) != holder and case.state == "accepted":
            case.state = "dispatched"  # a new holder signs for it; its clock starts then
            case.accepted_at = case.due_at = None
    return out


def _check_owner(session: Session, case: Case, step: Step, actor: Actor) -> None:
    """A worker acts only on cases assigned to them, a department only on cases given to its department (every
    step a department takes: accepting, bouncing, reporting in, handling, asking for an extension or a
    suspension)."""
    worker_steps = ("accept", "bounce", "handle", "whistle", "request_extension", "request_suspension")
    if (
        actor.role == "worker"
        and step.name in worker_steps
        and (actor.staff_id is None or actor.staff_id != case.assignee_id)
    ):
        raise Forbidden(
            f"staff_id: case {case.id} is assigned to staff {case.assignee_id}, not to {actor.staff_id}",
            field="staff_id",
            zh=f"人员：案件 {case.id} 派给的是人员 {case.assignee_id}，不是 {actor.staff_id}。",
        )
    if actor.role == "department":
        if case.department_id is None:
            raise Forbidden(
                f"department: case {case.id} is not with a department",
                field="department",
                zh=f"部门：案件 {case.id} 没有交给部门办理。",
            )
        if actor.department is None:
            raise Forbidden(
                "department: say which department acts", field="department", zh="部门：请注明由哪个部门办理。"
            )
        _check_department(session, case, actor)


class _Handlers:
    """What each step changes beyond the state; each returns extra history detail."""

    @staticmethod
    def file(
        session: Session, case: Case, actor: Actor, params: Params, calendar: WorkCalendar, now: dt.datetime
    ) -> Detail:
        code = params.get("category")
        if code is not None:
            category = session.scalars(sa.select(CaseCategory).where(CaseCategory.code == code)).first()
            if category is None or category.active is False:
                raise InvalidInput(
                    f"category: {code!r} is not a category code in use",
                    field="category",
                    zh=f"事项类别：{code!r} 不是在用的事项类别编码。",
                )
            case.category_id = category.id
        if case.category_id is None:
            raise InvalidInput(
                "category: filing needs a category (立案条件 are per category)",
                field="category",
                zh="类别：立案须选择案件类别（立案条件按类别而定）。",
            )
        if not case.grid_code:
            raise InvalidInput(
                "location: the case lies in no grid; correct its location (relocate) before filing",
                field="location",
                zh="位置：该案件不在任何网格内，请先更正位置（可从候选网格中选择），再立案。",
            )
        return None

    @staticmethod
    def reject(
        session: Session, case: Case, actor: Actor, params: Params, calendar: WorkCalendar, now: dt.datetime
    ) -> Detail:
        case.closed_at = now
        return None

    @staticmethod
    def void(
        session: Session, case: Case, actor: Actor, params: Params, calendar: WorkCalendar, now: dt.datetime
    ) -> Detail:
        case.closed_at = now
        return None

    @staticmethod
    def dispatch(
        session: Session, case: Case, actor: Actor, params: Params, calendar: WorkCalendar, now: dt.datetime
    ) -> Detail:
        return route(session, case, now, override_staff=params.get("assignee_id"), reason=params.get("reason"))

    @staticmethod
    def reassign(
        session: Session, case: Case, actor: Actor, params: Params, calendar: WorkCalendar, now: dt.datetime
    ) -> Detail:
        if params.get("assignee_id") is None and params.get("department") is None:
            raise InvalidInput(
                "assignee_id: reassigning needs an assignee_id or a department",
                field="assignee_id",
                zh="承办人：改派须指定承办人或部门。",
            )
        return route(
            session,
            case,
            now,
            override_staff=params.get("assignee_id"),
            department=params.get("department"),
            reason=params.get("reason"),
        )

    @staticmethod
    def accept(
        session: Session, case: Case, actor: Actor, params: Params, calendar: WorkCalendar, now: dt.datetime
    ) -> Detail:
        _check_department(session, case, actor)
        limit, unit = limit_of(case.category)
        case.accepted_at = now
        case.due_at = calendar.add(now, limit, unit)
        return {"due_at": case.due_at.isoformat(), "limit": limit, "unit": unit}

    @staticmethod
    def bounce(
        session: Session, case: Case, actor: Actor, params: Params, calendar: WorkCalendar, now: dt.datetime
    ) -> Detail:
        _check_department(session, case, actor)
        case.bounce_count = (case.bounce_count or 0) + 1
        evidence = {
            "grid_code": case.grid_code,
            "microgrid_code": case.microgrid_code,
            "point": [case.lon, case.lat],
            "generation_id": case.generation_id,
        }  # the API links the grid
        bounced_by = {"from_assignee_id": case.assignee_id, "from_department_id": case.department_id}
        case.assignee_id = None
        case.department_id = None
        return {"evidence": evidence, "by": actor.label(), **bounced_by}

    @staticmethod
    def whistle(
        session: Session, case: Case, actor: Actor, params: Params, calendar: WorkCalendar, now: dt.datetime
    ) -> Detail:
        code = params.get("department")
        department = session.scalars(sa.select(Department).where(Department.code == code)).first() if code else None
        if department is None:
            raise InvalidInput(
                f"department: {code!r} is not a department code",
                field="department",
                zh=f"部门：{code!r} 不是部门编码。",
            )
        case.department_id = department.id
        case.whistled_at = now
        case.department_reported_at = None
        case.department_due_at = calendar.add(now, *REPORT_IN_LIMIT)
        return {"department_due_at": case.department_due_at.isoformat()}

    @staticmethod
    def report_in(
        session: Session, case: Case, actor: Actor, params: Params, calendar: WorkCalendar, now: dt.datetime
    ) -> Detail:
        _check_department(session, case, actor)
        if case.whistled_at is None:
            raise Conflict(
                "state: no department was whistled to on this case",
                field="state",
                zh="状态：此案件没有吹哨通知任何部门。",
            )
        if case.department_reported_at is not None:
            raise Conflict("state: the department has already reported in", field="state", zh="状态：该部门已经报到。")
        case.department_reported_at = now
        due = _aware(case.department_due_at)
        return {"on_time": due is None or now <= due}

    @staticmethod
    def handle(
        session: Session, case: Case, actor: Actor, params: Params, calendar: WorkCalendar, now: dt.datetime
    ) -> Detail:
        _check_department(session, case, actor)
        if case.pending and case.pending.get("kind") == "suspension":
            raise Conflict(
                "state: a suspension request is pending; wait for the decision",
                field="state",
                zh="状态：挂账申请正在审批中，请等待审批结果。",
            )
        case.handled_by = actor.user
        case.handled_at = now
        return None

    @staticmethod
    def verify(
        session: Session, case: Case, actor: Actor, params: Params, calendar: WorkCalendar, now: dt.datetime
    ) -> Detail:
        if case.handled_by == actor.user:
            raise Forbidden(
                "user: the handler may not verify their own work; another verifier must",
                field="user",
                zh="处置人不能核查自己的工作，须由另一名核查员核查。",
            )
        case.closed_at = now
        due = _aware(case.due_at)
        return {"on_time": due is None or now <= due}

    @staticmethod
    def send_back(
        session: Session, case: Case, actor: Actor, params: Params, calendar: WorkCalendar, now: dt.datetime
    ) -> Detail:
        if case.handled_by == actor.user:
            raise Forbidden(
                "user: the handler may not verify their own work; another verifier must",
                field="user",
                zh="处置人不能核查自己的工作，须由另一名核查员核查。",
            )
        case.rework_count = (case.rework_count or 0) + 1
        return None

    @staticmethod
    def rate(
        session: Session, case: Case, actor: Actor, params: Params, calendar: WorkCalendar, now: dt.datetime
    ) -> Detail:
        rated, closed = _aware(case.rated_at), _aware(case.closed_at)
        if rated is not None and (closed is None or rated >= closed):
            raise Conflict(
                "satisfaction: this case was rated already; one rating per closure",
                field="satisfaction",
                zh="满意度：该案件已评价过，每次结案只能评价一次。",
            )
        score = params.get("satisfaction")
        if not isinstance(score, int) or isinstance(score, bool) or not 1 <= score <= 5:
            raise InvalidInput(
                "satisfaction: an integer from 1 (very dissatisfied) to 5 (very satisfied)",
                field="satisfaction",
                zh="满意度：应为 1（很不满意）至 5（很满意）之间的整数。",
            )
        case.satisfaction = score
        case.rated_at = now
        if score <= NOT_SATISFIED_MAX:  # not satisfied: the case goes back to work
            case.state = "dispatched"
            case.reopen_count = (case.reopen_count or 0) + 1
            case.closed_at = case.accepted_at = case.due_at = None
            case.handled_by = case.handled_at = None
            return {"reopened": True}
        return {"reopened": False}

    @staticmethod
    def request_extension(
        session: Session, case: Case, actor: Actor, params: Params, calendar: WorkCalendar, now: dt.datetime
    ) -> Detail:
        amount = params.get("amount")
        unit = params.get("unit") or limit_of(case.category)[1]
        if not isinstance(amount, (int, float)) or isinstance(amount, bool) or not 0 < amount <= 30:
            raise InvalidInput(
                "amount: the extension, a number above 0 and at most 30 (in `unit`)",
                field="amount",
                zh="数量：延期时长应大于 0 且不超过 30（单位见 unit）。",
            )
        if unit not in ("work_hours", "work_days", "calendar_days"):
            raise InvalidInput(
                f"unit: {unit!r}; accepted: work_hours, work_days, calendar_days",
                field="unit",
                zh=f"单位：{unit!r} 不被接受；可选：work_hours（工作小时）、work_days（工作日）、"
                "calendar_days（自然日）。",
            )
        _no_pending(case)
        case.pending = {
            "kind": "extension",
            "amount": amount,
            "unit": unit,
            "reason": params["reason"],
            "by": actor.label(),
            "at": now.isoformat(),
        }
        return None

    @staticmethod
    def request_suspension(
        session: Session, case: Case, actor: Actor, params: Params, calendar: WorkCalendar, now: dt.datetime
    ) -> Detail:
        _no_pending(case)
        case.pending = {"kind": "suspension", "reason": params["reason"], "by": actor.label(), "at": now.isoformat()}
        return None

    @staticmethod
    def approve(
        session: Session, case: Case, actor: Actor, params: Params, calendar: WorkCalendar, now: dt.datetime
    ) -> Detail:
        pending = case.pending
        if not pending:
            raise Conflict(
                "state: there is no extension or suspension request to approve",
                field="state",
                zh="状态：没有待审批的延期或挂账申请。",
            )
        case.pending = None
        if pending["kind"] == "extension":
            case.due_at = calendar.add(_aware(case.due_at) or now, pending["amount"], pending["unit"])
            case.extension_count = (case.extension_count or 0) + 1
            return {"approved": "extension", "due_at": case.due_at.isoformat()}
        case.state = "suspended"
        case.suspended_at = now
        return {"approved": "suspension"}

    @staticmethod
    def deny(
        session: Session, case: Case, actor: Actor, params: Params, calendar: WorkCalendar, now: dt.datetime
    ) -> Detail:
        if not case.pending:
            raise Conflict(
                "state: there is no extension or suspension request to deny",
                field="state",
                zh="状态：没有可驳回的延期或挂账申请。",
            )
        denied = case.pending["kind"]
        case.pending = None
        return {"denied": denied}

    @staticmethod
    def resume(
        session: Session, case: Case, actor: Actor, params: Params, calendar: WorkCalendar, now: dt.datetime
    ) -> Detail:
        since = _aware(case.suspended_at) or now
        unit = limit_of(case.category)[1]
        due = _aware(case.due_at)
        if due is not None:
            if unit == "calendar_days":
                case.due_at = due + (now - since)
            else:
                case.due_at = calendar.add_working_seconds(due, calendar.working_seconds(since, now))
        case.suspended_at = None
        return {"due_at": case.due_at.isoformat() if case.due_at else None}

    @staticmethod
    def urge(
        session: Session, case: Case, actor: Actor, params: Params, calendar: WorkCalendar, now: dt.datetime
    ) -> Detail:
        return {"holder": {"assignee_id": case.assignee_id, "department_id": case.department_id}}

    @staticmethod
    def supervise(
        session: Session, case: Case, actor: Actor, params: Params, calendar: WorkCalendar, now: dt.datetime
    ) -> Detail:
        return {"holder": {"assignee_id": case.assignee_id, "department_id": case.department_id}}

    @staticmethod
    def merge(
        session: Session, case: Case, actor: Actor, params: Params, calendar: WorkCalendar, now: dt.datetime
    ) -> Detail:
        into = params.get("into")
        if not isinstance(into, int) or isinstance(into, bool):
            raise InvalidInput(
                "into: the id of the case this one duplicates",
                field="into",
                zh="并入对象：请填写与本案重复的案件编号。",
            )
        if into == case.id:
            raise InvalidInput(
                "into: a case cannot be merged into itself", field="into", zh="并入对象：案件不能并入自身。"
            )
        primary = load_case(session, into)
        if primary is None:
            raise InvalidInput(f"into: no case has id {into}", field="into", zh=f"并入对象：没有编号为 {into} 的案件。")
        if primary.state in MERGE_TARGET_EXCLUDED:
            target = f"; merge into case {primary.merged_into_id} instead" if primary.merged_into_id else ""
            raise Conflict(
                f"into: case {into} is {primary.state}{target}",
                field="into",
                zh=f"并入对象：案件 {into} "
                f"为「{_state_zh(primary.state)}」"
                f"{(f'，请并入案件 {primary.merged_into_id}' if primary.merged_into_id else '')}。",
            )
        if primary.category_id != case.category_id and not (params.get("reason") or "").strip():
            raise InvalidInput(
                "reason: the cases have different categories; say why they are one problem",
                field="reason",
                zh="理由：两个案件的事项类别不同，请说明为何属于同一问题。",
            )
        case.merged_into_id = primary.id
        case.closed_at = now
        # the case it joins records the merge too (and its version moves, so that open forms see the change)
        session.execute(
            sa.update(Case)
            .where(this_case(session, primary))
            .values(version=Case.version + 1)
            .execution_options(synchronize_session=False)
        )
        session.add(
            CaseEvent(
                case_id=primary.id,
                at=now,
                actor=actor.label(),
                action="merge_in",
                from_state=primary.state,
                to_state=primary.state,
                detail={"case_id": case.id, "number": case.number, "source": case.source},
            )
        )
        return {"into_number": primary.number}


def _no_pending(case: Case) -> None:
    if case.pending:
        raise Conflict(
            f"state: a {case.pending['kind']} request is already pending",
            field="state",
            zh=f"状态：已有{('延期' if case.pending['kind'] == 'extension' else '挂账')}申请在审批中。",
        )


def _check_department(session: Session, case: Case, actor: Actor) -> None:
    if actor.role != "department":
        return
    department = session.get(Department, case.department_id)
    if department is None or department.code != actor.department:
        raise Forbidden(
            f"department: case {case.id} is with {department.code if department else 'no department'}, "
            f"not {actor.department}",
            field="department",
            zh=f"部门：案件 {case.id} 在{(f'部门 {department.code}' if department else '无部门')}办理，"
            f"不在 {actor.department}。",
        )


def _worker_for(session: Session, grid_code: str) -> int | None:
    return session.scalars(
        sa.select(StaffArea.staff_id)
        .where(StaffArea.area_code == grid_code, StaffArea.role == "fulltime_worker")
        .order_by(StaffArea.id)
        .limit(1)
    ).first()


def _territory(session: Session, grid_code: str, day: dt.date) -> tuple[int | None, int | None]:
    """The grid's party branch and full-time worker on a day, remembered for the session's life (one request or
    one batch of an import: assignments do not change under it)."""
    from gridmap.boundaries.areas import branch_for

    cache: dict[tuple[str, dt.date], tuple[int | None, int | None]] = session.info.setdefault("gridmap.territory", {})
    key = (grid_code, day)
    if key not in cache:
        branch = branch_for(session, grid_code, day)
        cache[key] = (branch.id if branch else None, _worker_for(session, grid_code))
    return cache[key]


def route(
    session: Session,
    case: Case,
    now: dt.datetime,
    *,
    override_staff: int | None = None,
    department: str | None = None,
    reason: str | None = None,
) -> dict[str, Any]:
    """Who gets the case. Events go to the territory first (先属地: the grid's worker); components to their owner
    first (先属主: the category's department). A dispatcher's override names a worker or a department and a
    reason; both are recorded."""
    case.branch_id = _territory(session, case.grid_code, china_date(now))[0] if case.grid_code else None
    if override_staff is not None or department is not None:
        if override_staff is not None:
            if not session.scalar(
                sa.select(sa.func.count()).select_from(StaffArea).where(StaffArea.staff_id == override_staff)
            ):
                raise InvalidInput(
                    f"assignee_id: no staff member {override_staff} serves any grid",
                    field="assignee_id",
                    zh=f"承办人：人员 {override_staff} 不负责任何网格。",
                )
            case.assignee_id, case.department_id = override_staff, None
        else:
            dept = session.scalars(sa.select(Department).where(Department.code == department)).first()
            if dept is None:
                raise InvalidInput(
                    f"department: {department!r} is not a department code",
                    field="department",
                    zh=f"部门：{department!r} 不是部门编码。",
                )
            case.assignee_id, case.department_id = None, dept.id
        return {
            "rule": "override",
            "reason": reason,
            "assignee_id": case.assignee_id,
            "department_id": case.department_id,
            "branch_id": case.branch_id,
        }
    category = case.category or (session.get(CaseCategory, case.category_id) if case.category_id else None)
    if category is not None and category.kind == "component" and category.department_id:
        case.assignee_id, case.department_id = None, category.department_id
        rule = "owner_first"
    else:
        case.assignee_id = _territory(session, case.grid_code, china_date(now))[1] if case.grid_code else None
        case.department_id = None
        rule = "territory_first"
    return {
        "rule": rule,
        "grid": case.grid_code,
        "assignee_id": case.assignee_id,
        "department_id": case.department_id,
        "branch_id": case.branch_id,
    }


SWEEP_LOCK = 0x67726964  # PostgreSQL advisory lock of the overdue sweep ("grid"): one server process sweeps at a time


def overdue_candidates(session: Session, now: dt.datetime, limit: int | None = None) -> list[tuple[int, dt.datetime]]:
    """The overdue open cases not yet escalated (`OVERDUE_CANDIDATES`, due before `now`), longest overdue first, at
    most `limit`: each case's id and report time (the month of its partition on PostgreSQL)."""
    # through the partial index of the candidates (`ix_case_file_overdue`, same predicate text): without it the
    # planner walked a due_at index over every case ever due and read each from the table — 12 to 17 s a chunk
    # on 10 M cases (PostGIS, load 7), every minute, where this reads the ~1,000 it escalates (11 ms)
    # (SQLite is told: without statistics its planner prefers `ix_case_file_due` on (state, due_at), which reads
    # every open case ever due, escalated or not, and sorts them)
    if session.get_bind().dialect.name == "sqlite" and session.scalar(
        sa.text("SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = 'ix_case_file_overdue'")
    ):  # (a database not yet upgraded to 0014 is swept as before)
        due_at = sa.literal_column("due_at", Case.due_at.type)
        due: sa.Select[Any, Any] = (
            sa.select(sa.literal_column("id", sa.Integer), sa.literal_column("reported_at", Case.reported_at.type))
            .select_from(sa.text("case_file INDEXED BY ix_case_file_overdue"))
            .where(sa.text(OVERDUE_CANDIDATES), due_at < now)
            .order_by(due_at, sa.literal_column("id"))
        )
    else:
        due = (
            sa.select(Case.id, Case.reported_at)
            .where(sa.text(OVERDUE_CANDIDATES), Case.due_at < now)
            .order_by(Case.due_at, Case.id)
        )
    if limit is not None:
        due = due.limit(limit)
    return [(int(case_id), reported_at) for case_id, reported_at in session.execute(due)]


def escalate_overdue(
    session: Session,
    now: dt.datetime | None = None,
    *,
    limit: int | None = None,
    candidates: list[tuple[int, dt.datetime]] | None = None,
) -> list[int]:
    """Escalate every overdue open case one level up (grid → community), exactly once: the conditional update
    `escalation_level = 0` makes a second sweep — or a sweep after a restart — find nothing to do.

    One UPDATE … RETURNING for up to `limit` cases (all when None), so that a sweep after a large import or a long
    stop holds its transaction for one statement, not a statement per case; the caller commits and calls again
    while a full `limit` came back. On PostgreSQL a sweep that finds another process sweeping returns [] at once
    (an advisory lock held for the transaction) instead of waiting on that process's row locks.

    `candidates` (`overdue_candidates`, read in an earlier transaction: `sweep_overdue`): those cases alone, each
    escalated only if it is still a candidate now. The UPDATE names them by id and report time, so that on
    PostgreSQL it plans, opens and locks their months' partitions alone, not every month (1,420 locks at 28 months
    on the province when the candidates were a subquery of the UPDATE; 44-81 now)."""
    now = now or _now()
    postgres = session.get_bind().dialect.name == "postgresql"
    if postgres and not session.scalar(sa.select(sa.func.pg_try_advisory_xact_lock(SWEEP_LOCK))):
        return []
    if candidates is None:
        candidates = overdue_candidates(session, now, limit)
    if not candidates:
        return []
    ids = sorted({case_id for case_id, _ in candidates})
    named = [Case.id.in_(ids)]
    if postgres:  # (each case's month: `gridmap.store.partitions`)
        named.append(Case.reported_at.in_(sorted({at for _, at in candidates})))
    claimed = session.execute(
        sa.update(Case)
        .where(*named, sa.text(OVERDUE_CANDIDATES), Case.due_at < now, Case.escalation_level == 0)
        .values(escalation_level=1, escalated_at=now, version=Case.version + 1)
        .returning(Case.id, Case.state)
        .execution_options(synchronize_session=False)
    ).all()
    done = sorted(case_id for case_id, _ in claimed)
    session.add_all(
        CaseEvent(
            case_id=case_id,
            at=now,
            actor="system",
            action="escalate",
            from_state=state,
            to_state=state,
            detail={"level": 1, "to": "community", "reason": "overdue"},
        )
        for case_id, state in sorted(claimed)
    )
    session.flush()
    return done


def sweep_overdue(factory: sessionmaker[Session], now: dt.datetime | None = None, *, chunk: int = 1_000) -> int:
    """Escalate the overdue cases `chunk` at a time, each chunk in two transactions: its candidates read
    (`overdue_candidates`: a read of every month, whose locks end with it), then escalated (`escalate_overdue`,
    naming their months alone); until a chunk comes back short — none left, another process sweeping, or a case
    that changed in between (the next sweep takes up the rest). How many were escalated."""
    now = now or _now()
    escalated = 0
    while True:
        with session_scope(factory) as session:
            candidates = overdue_candidates(session, now, chunk)
        if not candidates:
            return escalated
        with session_scope(factory) as session:
            done = escalate_overdue(session, now, candidates=candidates)
        escalated += len(done)
        if len(done) < chunk:
            return escalated
