"""Publishing boundaries (#13 §6): who takes a draft into force, when, and what follows it.

The workflow of a generation::

    draft ──submit (planner)──▶ submitted ──approve (another user, approver)──▶ active       (effective today or
      ▲                            │                                     └──▶ approved      earlier: at once)
      └────────reject (approver)───┴──────────────────────────────────────────── (scheduled: a future day)

* **Ready to publish** (`readiness`): the boundary check (`gridmap.boundaries.check`) has no error, and every grid of
  the draft has exactly one party branch and no branch serves two grids (the 1:1 rule). A grid keeps the branch
  and staff of its code when the code is unchanged; a new code needs a planned assignment (`PlanAssignment`, set
  with `put_assignment`). Submitting and approving both require it.
* **Four eyes**: the approver is neither the draft's creator nor its submitter (by the stable principal key, so a
  planner account later given the approver role still cannot approve its own draft).
* **Scheduled**: a future `effective_from` is stored (status `approved`); it takes effect at 00:00 China time
  (UTC+8, no daylight saving) on that day, when `activate_due` runs (the app runs it at start-up and every minute;
  a conditional UPDATE lets exactly one of several workers do it, and a restart loses nothing: it is in the
  database). At most one generation is scheduled at a time.
* **Activation** (`activate_generation`, also what `gridmap.boundaries.generations.activate` and the CLI use): the
status
  switch, then, in the same transaction, the planned branches and staff of new codes are applied (valid from the
  effective day), those of retired codes are closed (valid to it), a grid branch left without a grid is marked
  for merging into the branch of the grid that took most of its area (`PartyOrg.merge_into_id`), places take the
  codes of the areas they now lie in, and every open case whose grid or micro-grid changes is re-located with a
  `boundary_change` event naming the old and the new grid, its branch and (when its worker does not serve the new
  grid) its worker routed as intake would. Closed cases keep the grid of their day, so measures — which count a
  case by its stored codes — count each case where it was at the time.
* **Impact** (`impact`): per changed grid, what moves between the active generation and the draft.

"Now" is `publish.now()` (tests replace it); "today" is the China-time date of that instant.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import shapely
import sqlalchemy as sa
from geoalchemy2.shape import to_shape
from sqlalchemy.orm import Session

from gridmap.boundaries.areas import STAFF_ROLES_EN, STAFF_ROLES_ZH, active_generation, load_index
from gridmap.boundaries.generations import shared_index
from gridmap.calendar import CST, china_date
from gridmap.errors import Conflict, Forbidden, GridmapError, InvalidInput, NotFound
from gridmap.geo.index import AreaIndex
from gridmap.store.engine import rowcount
from gridmap.store.tables import (
    FINISHED_STATES,
    LEVEL_NAMES_ZH,
    Area,
    Case,
    CaseEvent,
    Department,
    Generation,
    PartyOrg,
    PartyOrgArea,
    Place,
    PlanAssignment,
    Staff,
    StaffArea,
)

log = logging.getLogger("gridmap.planning.publish")

LOCAL_TZ = CST  # China Standard Time, UTC+8 (no daylight saving)
UNPUBLISHED = ("draft", "submitted", "approved")
STATUS_ZH = {"draft": "草稿", "submitted": "已提交", "approved": "已批准待生效", "active": "现行", "retired": "已停用"}
ORG_KIND_ZH = {"grid_branch": "网格党支部", "building_group": "楼栋党小组"}
CODE_LEVEL = {6: "district", 9: "subdistrict", 12: "community", 15: "grid", 17: "microgrid", 18: "microgrid"}


class Claimed(Conflict):
    """Another caller (another worker's scheduler) changed the generation first."""


def now() -> dt.datetime:
    """The current instant (aware, UTC). Tests replace this function to move the clock."""
    return dt.datetime.now(dt.UTC)


def local_today(at: dt.datetime | None = None) -> dt.date:
    """The date in China at `at` (default: now): the day boundaries take effect on, from 00:00 local time."""
    return china_date(at or now())


def _generation(session: Session, generation_id: int) -> Generation:
    gen = session.get(Generation, generation_id)
    if gen is None:
        raise NotFound(
            f"generation: no generation has id {generation_id}",
            field="generation",
            zh=f"边界版本：没有编号为 {generation_id} 的边界版本。",
        )
    return gen


def _status_error(gen: Generation, wanted_zh: str, wanted_en: str) -> Conflict:
    zh = STATUS_ZH.get(gen.status, gen.status)
    return Conflict(
        f"generation {gen.id} is {gen.status}; {wanted_en}",
        field="generation",
        zh=f"边界版本：第 {gen.id} 版当前为「{zh}」，{wanted_zh}。",
    )


def _active(session: Session) -> Generation | None:
    return session.scalars(
        sa.select(Generation).where(Generation.status == "active").order_by(Generation.id.desc()).limit(1)
    ).first()


# -- branches and staff of a draft's grids ----------------------------------------------------------------------------


def _areas(session: Session, generation_id: int, level: str) -> dict[str, Area]:
    return {
        a.code: a
        for a in session.scalars(
            sa.select(Area).where(Area.generation_id == generation_id, Area.level == level).order_by(Area.code)
        )
    }


def _codes(session: Session, generation_id: int | None, level: str | None = None) -> set[str]:
    if generation_id is None:
        return set()
    query = sa.select(Area.code).where(Area.generation_id == generation_id)
    if level:
        query = query.where(Area.level == level)
    return set(session.scalars(query))


def _open_branch_rows(session: Session, codes: Iterable[str], day: dt.date) -> list[tuple[PartyOrgArea, PartyOrg]]:
    """PartyOrgArea rows (with their organisation) of these codes in force on `day` or later."""
    codes = list(codes)
    if not codes:
        return []
    return list(
        session.execute(
            sa.select(PartyOrgArea, PartyOrg)
            .join(PartyOrg, PartyOrg.id == PartyOrgArea.party_org_id)
            .where(PartyOrgArea.area_code.in_(codes))
            .where(sa.or_(PartyOrgArea.valid_to.is_(None), PartyOrgArea.valid_to > day))
            .order_by(PartyOrgArea.area_code, PartyOrg.id)
        ).all()
    )


def _current_branches(session: Session, codes: Iterable[str], day: dt.date) -> dict[str, PartyOrg]:
    """The grid branch of each code on `day` (the smallest id wins, as `areas.branch_for`)."""
    out: dict[str, PartyOrg] = {}
    for row, org in _open_branch_rows(session, codes, day):
        if row.valid_from is not None and row.valid_from > day:
            continue
        out.setdefault(row.area_code, org)
    return out


def _current_staff(session: Session, codes: Iterable[str]) -> dict[str, list[tuple[Staff, str]]]:
    out: dict[str, list[tuple[Staff, str]]] = defaultdict(list)
    codes = list(codes)
    if codes:
        for code, person, role in session.execute(
            sa.select(StaffArea.area_code, Staff, StaffArea.role)
            .join(Staff, Staff.id == StaffArea.staff_id)
            .where(StaffArea.area_code.in_(codes))
            .order_by(StaffArea.id)
        ).all():
            out[code].append((person, role))
    return out


def _plan(session: Session, generation_id: int) -> tuple[dict[str, int], dict[str, list[tuple[int, str]]]]:
    branches: dict[str, int] = {}
    staff: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for row in session.scalars(
        sa.select(PlanAssignment).where(PlanAssignment.generation_id == generation_id).order_by(PlanAssignment.id)
    ):
        if row.kind == "branch":
            branches[row.area_code] = row.ref_id
        elif row.kind == "staff" and row.role is not None:  # a staff row always has its role
            staff[row.area_code].append((row.ref_id, row.role))
    return branches, staff


def _staff_dict(person: Staff, role: str) -> dict[str, Any]:
    return {
        "id": person.id,
        "name": person.name,
        "role": role,
        "role_zh": STAFF_ROLES_ZH.get(role, role),
        "role_en": STAFF_ROLES_EN.get(role, role),
    }


def _planning_day(active: Generation | None) -> dt.date:
    """The day a draft's branches and staff are judged on: today, or the active generation's first day when that
    is later (a generation scheduled for tomorrow has already been taken into force)."""
    today = local_today()
    return max(today, active.effective_from) if active is not None and active.effective_from else today


def recoded(
    session: Session, old_id: int | None, new_id: int, levels: tuple[str, ...] = ("grid", "microgrid")
) -> dict[str, str]:
    """New codes of `new_id` whose outline is exactly that of a code `old_id` has and `new_id` has not (an area
    moved under another parent keeps its outline but must take a new code): new code → old code. Such an area
    keeps the branch and staff of its old code unless the draft plans others."""
    if old_id is None or old_id == new_id:
        return {}
    out: dict[str, str] = {}
    for level in levels:
        old = {
            a.code: a for a in session.scalars(sa.select(Area).where(Area.generation_id == old_id, Area.level == level))
        }
        new = {
            a.code: a for a in session.scalars(sa.select(Area).where(Area.generation_id == new_id, Area.level == level))
        }
        retired = {shapely.normalize(to_shape(old[c].geom)).wkb: c for c in set(old) - set(new)}
        for code in sorted(set(new) - set(old)):
            key = shapely.normalize(to_shape(new[code].geom)).wkb
            if key in retired:
                out[code] = retired.pop(key)
    return out


def assignments(session: Session, generation_id: int, *, day: dt.date | None = None) -> dict[str, Any]:
    """The party branch and staff of every grid of a generation as it would take effect: a planned assignment
    where there is one, otherwise (for a code the active generation has too, or a grid only re-coded, same outline:
    `recoded_from`) the current one. `missing` lists the grids without a branch; `shared` the branches given to
    more than one grid (both break the 1:1 rule)."""
    gen = _generation(session, generation_id)
    active = _active(session)
    day = day or _planning_day(active)
    grids = _areas(session, gen.id, "grid")
    kept = _codes(session, active.id, "grid") if active is not None and active.id != gen.id else set(grids)
    before = recoded(session, active.id if active is not None else None, gen.id, ("grid",))
    source = {code: (code if code in kept else before.get(code)) for code in grids}
    planned_branch, planned_staff = _plan(session, gen.id)
    current = _current_branches(session, {c for c in source.values() if c}, day)
    staff_now = _current_staff(session, {c for c in source.values() if c})
    orgs = {o.id: o for o in session.scalars(sa.select(PartyOrg).where(PartyOrg.id.in_(set(planned_branch.values()))))}
    people = {
        p.id: p
        for p in session.scalars(
            sa.select(Staff).where(Staff.id.in_({sid for rows in planned_staff.values() for sid, _ in rows}))
        )
    }
    rows, holders = [], defaultdict(list)
    for code, area in grids.items():
        was = source[code]  # the code whose branch and staff the grid keeps (None: a new grid)
        org = orgs.get(planned_branch[code]) if code in planned_branch else current.get(was) if was else None
        if code in planned_staff:
            staff = [_staff_dict(people[sid], role) for sid, role in planned_staff[code] if sid in people]
        else:
            staff = [_staff_dict(p, role) for p, role in (staff_now.get(was, []) if was else [])]
        rows.append(
            {
                "code": code,
                "name": area.name,
                "new": code not in kept,
                "recoded_from": before.get(code),
                "planned": code in planned_branch or code in planned_staff,
                "branch": {"id": org.id, "name": org.name} if org is not None else None,
                "staff": staff,
            }
        )
        if org is not None:
            holders[org.id].append(code)
    return {
        "generation_id": gen.id,
        "grids": rows,
        "missing": [r["code"] for r in rows if r["branch"] is None],
        "shared": [{"branch_id": b, "codes": codes} for b, codes in sorted(holders.items()) if len(codes) > 1],
    }


def put_assignment(
    session: Session,
    generation_id: int,
    area_code: str,
    branch_id: int | None,
    staff: list[tuple[int, str]],
    *,
    actor: str | None = None,
) -> dict[str, Any]:
    """Plan the party branch and staff of one grid (or micro-grid) of a draft, replacing its earlier plan; they
    are applied when the draft takes effect. With no branch and no staff the grid's plan is removed (it then keeps
    what its code has now). Staff, when given, replace the code's staff on activation."""
    gen = _generation(session, generation_id)
    if gen.status != "draft":
        raise _status_error(gen, "只有草稿可以调整支部和人员", "only a draft's assignments can be changed")
    area = session.scalars(sa.select(Area).where(Area.generation_id == gen.id, Area.code == area_code)).first()
    if area is None:
        raise NotFound(
            f"area_code: no area {area_code!r} in generation {gen.id}",
            field="area_code",
            zh=f"区域编码：第 {gen.id} 版中没有编码为 {area_code} 的区域。",
        )
    if area.level not in ("grid", "microgrid"):
        raise InvalidInput(
            f"area_code: {area_code} is a {area.level}; assignments are for grids and micro-grids",
            field="area_code",
            zh=f"区域编码：{area_code} 为{LEVEL_NAMES_ZH.get(area.level, area.level)}，"
            "只能为网格或微网格指定支部和人员。",
        )
    if branch_id is not None:
        org = session.get(PartyOrg, branch_id)
        if org is None:
            raise NotFound(
                f"branch_id: no party organisation has id {branch_id}",
                field="branch_id",
                zh=f"党支部：没有编号为 {branch_id} 的党组织。",
            )
        wanted = "grid_branch" if area.level == "grid" else "building_group"
        if org.kind != wanted:
            raise InvalidInput(
                f"branch_id: a {area.level} takes a {wanted}",
                field="branch_id",
                zh=f"党支部：{org.name} 是{ORG_KIND_ZH.get(org.kind, org.kind)}，{area_code} "
                f"需要{ORG_KIND_ZH.get(wanted, wanted)}。",
            )
        if org.merge_into_id is not None:
            raise InvalidInput(
                "branch_id: the branch is marked for merging",
                field="branch_id",
                zh=f"党支部：{org.name} 已标记合并，不能再分配网格。",
            )
        other = session.scalar(
            sa.select(PlanAssignment.area_code)
            .where(
                PlanAssignment.generation_id == gen.id,
                PlanAssignment.kind == "branch",
                PlanAssignment.ref_id == branch_id,
                PlanAssignment.area_code != area_code,
            )
            .limit(1)
        )
        if other is not None:
            raise Conflict(
                f"branch_id: the branch is already planned for {other}; one branch per grid",
                field="branch_id",
                zh=f"党支部：{org.name} 已分配给网格 {other}，一个支部只对应一个网格。",
            )
    seen = set()
    for i, (staff_id, role) in enumerate(staff):
        if role not in STAFF_ROLES_ZH:
            raise InvalidInput(
                f"staff.{i}.role: {role!r} is not a role; accepted: {', '.join(STAFF_ROLES_ZH)}",
                field=f"staff.{i}.role",
                zh=f"第 {i + 1} 位人员的岗位：{role!r} 不是岗位；可选："
                f"{'、'.join((f'{v}（{k}）' for k, v in STAFF_ROLES_ZH.items()))}。",
            )
        if session.get(Staff, staff_id) is None:
            raise NotFound(
                f"staff.{i}.staff_id: no staff member has id {staff_id}",
                field=f"staff.{i}.staff_id",
                zh=f"第 {i + 1} 位人员：没有编号为 {staff_id} 的人员。",
            )
        if staff_id in seen:
            raise InvalidInput(
                f"staff.{i}.staff_id: {staff_id} repeats; each person once per area",
                field=f"staff.{i}.staff_id",
                zh=f"第 {i + 1} 位人员：{staff_id} 重复，每人在一个区域只能出现一次。",
            )
        seen.add(staff_id)
    session.execute(
        sa.delete(PlanAssignment).where(PlanAssignment.generation_id == gen.id, PlanAssignment.area_code == area_code)
    )
    if branch_id is not None:
        session.add(
            PlanAssignment(generation_id=gen.id, area_code=area_code, kind="branch", ref_id=branch_id, actor=actor)
        )
    for staff_id, role in staff:
        session.add(
            PlanAssignment(
                generation_id=gen.id, area_code=area_code, kind="staff", ref_id=staff_id, role=role, actor=actor
            )
        )
    session.flush()
    if area.level == "grid":
        return next(r for r in assignments(session, gen.id)["grids"] if r["code"] == area_code)
    org = session.get(PartyOrg, branch_id) if branch_id else None
    people = {p.id: p for p in session.scalars(sa.select(Staff).where(Staff.id.in_(seen)))}
    return {
        "code": area_code,
        "name": area.name,
        "new": area_code not in _codes(session, (_active(session) or gen).id),
        "planned": bool(branch_id or staff),
        "branch": {"id": org.id, "name": org.name} if org else None,
        "staff": [_staff_dict(people[sid], role) for sid, role in staff],
    }


# -- ready to publish? -------------------------------------------------------------------------------------------------


def readiness(
    session: Session, generation_id: int, *, household_band: str | Mapping[str, tuple[int, int]] | None = None
) -> dict[str, Any]:
    """Whether a generation may be published: the check's errors, the grids without a branch, shared branches."""
    from gridmap.boundaries.check import check_generation

    report = check_generation(session, generation_id, household_band=household_band)
    errors = [p for p in report["problems"] if p["severity"] == "error"]
    plan = assignments(session, generation_id)
    counts: dict[str, int] = defaultdict(int)
    for p in errors:
        counts[p["kind"]] += 1
    return {
        "ok": not errors and not plan["missing"] and not plan["shared"],
        "check_ok": not errors,
        "check_errors": dict(counts),
        "missing": plan["missing"],
        "shared": plan["shared"],
    }


def require_ready(
    session: Session, generation_id: int, *, household_band: str | Mapping[str, tuple[int, int]] | None = None
) -> dict[str, Any]:
    """`readiness`, raising `Conflict` with the reason when the generation may not be published."""
    ready = readiness(session, generation_id, household_band=household_band)
    if not ready["check_ok"]:
        kinds = "、".join(f"{k} {n}" for k, n in sorted(ready["check_errors"].items()))
        total = sum(ready["check_errors"].values())
        raise Conflict(
            f"check: publishing refused: the boundary check of generation {generation_id} found {total} "
            f"errors: {kinds}; see its check report",
            field="check",
            zh=f"边界检查有 {total} 个错误（{kinds}），修正后才能发布。",
        )
    if ready["missing"]:
        codes = ", ".join(ready["missing"][:20])
        raise Conflict(
            f"assignments: publishing refused: {len(ready['missing'])} grids have no party branch: "
            f"{codes}; assign one to each",
            field="assignments",
            zh=f"人员分配：网格 {codes} 没有党支部，请先指定支部（一网格一支部）。",
        )
    if ready["shared"]:
        first = ready["shared"][0]
        raise Conflict(
            f"assignments: publishing refused: branch {first['branch_id']} is given to "
            f"{len(first['codes'])} grids; one branch per grid",
            field="assignments",
            zh=f"人员分配：党支部 {first['branch_id']} 同时对应网格 {', '.join(first['codes'])}（一网格一支部）。",
        )
    return ready


def published_base(session: Session, gen: Generation) -> int | None:
    """The published generation (active or retired) a draft descends from, through drafts copied from drafts."""
    seen, base_id = {gen.id}, gen.base_id
    while base_id is not None and base_id not in seen:
        seen.add(base_id)
        base = session.get(Generation, base_id)
        if base is None or base.status not in UNPUBLISHED:
            return base_id
        base_id = base.base_id
    return None


def _require_current_base(session: Session, gen: Generation) -> None:
    active = _active(session)
    base = published_base(session, gen)
    if active is not None and base is not None and base != active.id:
        raise Conflict(
            f"generation: the draft descends from generation {base} but generation {active.id} is active "
            "now: publishing it would undo that change; make a new draft",
            field="generation",
            zh=f"边界版本：第 {gen.id} 版草稿基于第 {base} 版，而现行为第 {active.id} 版；请基于现行版本重新起草。",
        )


# -- the workflow ---------------------------------------------------------------------------------------------------


def submit(
    session: Session,
    generation_id: int,
    actor: str,
    *,
    household_band: str | Mapping[str, tuple[int, int]] | None = None,
) -> Generation:
    """A planner hands a draft in for approval; refused while it is not ready to publish."""
    gen = _generation(session, generation_id)
    if gen.status != "draft":
        raise _status_error(gen, "只有草稿可以提交", "only a draft can be submitted")
    _require_current_base(session, gen)
    require_ready(session, gen.id, household_band=household_band)
    claimed = rowcount(
        session.execute(
            sa.update(Generation)
            .where(Generation.id == gen.id, Generation.status == "draft")
            .values(status="submitted", submitted_by=actor, submitted_at=now())
            .execution_options(synchronize_session=False)
        )
    )
    if claimed != 1:
        raise Conflict(
            f"generation {gen.id} changed meanwhile", field="generation", zh=f"边界版本：第 {gen.id} 版刚被他人修改。"
        )
    session.refresh(gen)
    return gen


def four_eyes(gen: Generation, actor: str) -> None:
    """The approver must be someone else than the draft's creator and its submitter."""
    if actor in {gen.submitted_by, gen.created_by} - {None}:
        who = "提交人" if actor == gen.submitted_by else "创建人"
        raise Forbidden(
            "approver: the approver must not be the user who "
            f"{('submitted' if actor == gen.submitted_by else 'created')} the draft: four eyes",
            field="approver",
            zh=f"审批人不能是本草稿的{who}，须由另一位审批人批准。",
        )


def approve(
    session: Session,
    generation_id: int,
    actor: str,
    effective_from: dt.date,
    *,
    household_band: str | Mapping[str, tuple[int, int]] | None = None,
    at: dt.datetime | None = None,
) -> dict[str, Any]:
    """Another user with the approver role approves a submitted draft: it takes effect at once when
    `effective_from` is today (China time) or earlier, else it is scheduled for 00:00 on that day. Returns
    {"generation", "scheduled", "activation"}."""
    at = at or now()
    gen = _generation(session, generation_id)
    if gen.status != "submitted":
        raise _status_error(gen, "须先由规划员提交才能批准", "only a submitted draft can be approved")
    four_eyes(gen, actor)
    _require_current_base(session, gen)
    require_ready(session, gen.id, household_band=household_band)
    active = _active(session)
    if active is not None and active.effective_from and effective_from <= active.effective_from:
        raise InvalidInput(
            f"effective_from: must be after {active.effective_from}, when the active generation "
            f"{active.id} took effect",
            field="effective_from",
            zh=f"生效日期：须晚于现行第 {active.id} 版的生效日 {active.effective_from}。",
        )
    session.execute(
        sa.update(Generation)
        .where(Generation.id == gen.id)
        .values(approved_by=actor, approved_at=at)
        .execution_options(synchronize_session=False)
    )
    if effective_from <= local_today(at):
        done = activate_generation(session, gen.id, effective_from, actor=actor, at=at, from_states=("submitted",))
        return {"generation": done["generation"], "scheduled": False, "activation": done}
    scheduled = session.scalars(
        sa.select(Generation).where(Generation.status == "approved", Generation.id != gen.id)
    ).first()
    if scheduled is not None:
        raise Conflict(
            f"generation {scheduled.id} is already scheduled for {scheduled.effective_from}; reject it first",
            field="generation",
            zh=f"边界版本：第 {scheduled.id} 版已定于 {scheduled.effective_from} 生效；"
            "一次只能安排一个版本，请先退回它。",
        )
    claimed = rowcount(
        session.execute(
            sa.update(Generation)
            .where(Generation.id == gen.id, Generation.status == "submitted")
            .values(status="approved", effective_from=effective_from)
            .execution_options(synchronize_session=False)
        )
    )
    if claimed != 1:
        raise Conflict(
            f"generation {gen.id} changed meanwhile", field="generation", zh=f"边界版本：第 {gen.id} 版刚被他人修改。"
        )
    session.refresh(gen)
    return {"generation": gen, "scheduled": True, "activation": None}


def reject(session: Session, generation_id: int, actor: str, reason: str) -> Generation:
    """An approver sends a submitted (or scheduled) generation back to draft, with a reason."""
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput("reason: give a reason", field="reason", zh="理由：请说明退回理由。")
    gen = _generation(session, generation_id)
    if gen.status not in ("submitted", "approved"):
        raise _status_error(
            gen, "只有已提交或待生效的版本可以退回", "only a submitted or scheduled generation can be sent back"
        )
    claimed = rowcount(
        session.execute(
            sa.update(Generation)
            .where(Generation.id == gen.id, Generation.status.in_(("submitted", "approved")))
            .values(
                status="draft",
                submitted_by=None,
                submitted_at=None,
                approved_by=None,
                approved_at=None,
                effective_from=None,
            )
            .execution_options(synchronize_session=False)
        )
    )
    if claimed != 1:
        raise Conflict(
            f"generation {gen.id} changed meanwhile", field="generation", zh=f"边界版本：第 {gen.id} 版刚被他人修改。"
        )
    session.refresh(gen)
    return gen


def activate_due(session: Session, *, at: dt.datetime | None = None) -> list[int]:
    """Activate every approved generation whose day has come (00:00 China time), oldest day first. Safe to run in
    several workers at once and again after a restart: the conditional UPDATE of `activate_generation` lets one
    of them do it; the others find nothing to do. Returns the ids activated by this call."""
    at = at or now()
    today = local_today(at)
    due = list(
        session.scalars(
            sa.select(Generation.id)
            .where(Generation.status == "approved", Generation.effective_from <= today)
            .order_by(Generation.effective_from, Generation.id)
        )
    )
    done = []
    for gen_id in due:
        day = session.scalar(sa.select(Generation.effective_from).where(Generation.id == gen_id))
        assert day is not None  # chosen above by its effective_from
        try:
            with session.begin_nested():
                _require_current_base(session, _generation(session, gen_id))
                activate_generation(session, gen_id, day, actor="system", at=at, from_states=("approved",))
            done.append(gen_id)
        except Claimed:
            log.info("generation %s was activated by another worker", gen_id)
        except GridmapError as exc:
            session.expire_all()
            if session.scalar(sa.select(Generation.status).where(Generation.id == gen_id)) != "approved":
                log.info("generation %s was handled by another worker", gen_id)
                continue
            # it can no longer take effect as approved (another generation took effect meanwhile): back to the
            # approvers as submitted, with the reason in the audit log, rather than retried every minute
            from gridmap.store import audit

            session.execute(
                sa.update(Generation)
                .where(Generation.id == gen_id, Generation.status == "approved")
                .values(status="submitted", effective_from=None, approved_by=None, approved_at=None)
                .execution_options(synchronize_session=False)
            )
            audit.record(
                session,
                "publish_failed",
                f"generation:{gen_id}",
                {"effective_from": day.isoformat(), "reason": exc.message},
            )
            log.error("scheduled generation %s could not take effect on %s: %s", gen_id, day, exc.message)
    return done


# -- activation -------------------------------------------------------------------------------------------------


def activate_generation(
    session: Session,
    generation_id: int,
    effective_from: dt.date,
    *,
    actor: str = "system",
    at: dt.datetime | None = None,
    from_states: tuple[str, ...] = UNPUBLISHED,
) -> dict[str, Any]:
    """Put a generation in force from `effective_from` (today or earlier) and apply what follows: assignments,
    merges, places, open cases (see the module). The status switch is a conditional UPDATE: of several callers
    at once exactly one succeeds, the others get `Conflict` and have written nothing."""
    at = at or now()
    gen = _generation(session, generation_id)
    if gen.status not in from_states:
        wanted = "、".join(STATUS_ZH[s] for s in from_states)
        raise _status_error(gen, f"只有{wanted}的版本可以生效", f"only {', '.join(from_states)} can be activated")
    if effective_from > local_today(at):
        raise InvalidInput(
            f"effective_from: {effective_from} is in the future; approve it for that day to schedule it",
            field="effective_from",
            zh=f"生效日期：{effective_from} 是将来的日期；请以该日批准，届时 00:00 自动生效。",
        )
    previous = _active(session)
    if previous is not None and previous.effective_from and effective_from <= previous.effective_from:
        raise InvalidInput(
            f"effective_from: must be after {previous.effective_from}, when the active generation "
            f"{previous.id} took effect",
            field="effective_from",
            zh=f"生效日期：须晚于现行第 {previous.id} 版的生效日 {previous.effective_from}。",
        )
    claimed = rowcount(
        session.execute(
            sa.update(Generation)
            .where(Generation.id == gen.id, Generation.status.in_(from_states))
            .values(status="active", effective_from=effective_from, effective_to=None, activated_at=at)
            .execution_options(synchronize_session=False)
        )
    )
    if claimed != 1:
        raise Claimed(
            f"generation {gen.id} was activated or changed meanwhile",
            field="generation",
            zh=f"边界版本：第 {gen.id} 版已由他人处理。",
        )
    if previous is not None:
        session.execute(
            sa.update(Generation)
            .where(Generation.id == previous.id, Generation.status == "active")
            .values(status="retired", effective_to=effective_from)
            .execution_options(synchronize_session=False)
        )
    session.flush()
    session.refresh(gen)
    if previous is not None:
        session.refresh(previous)
    summary = {
        "generation": gen,
        "generation_id": gen.id,
        "previous_id": previous.id if previous else None,
        "effective_from": effective_from.isoformat(),
    }
    summary.update(_apply(session, gen, previous, effective_from, actor=actor, at=at))
    return summary


def _apply(
    session: Session, gen: Generation, previous: Generation | None, day: dt.date, *, actor: str, at: dt.datetime
) -> dict[str, Any]:
    old_codes = _codes(session, previous.id if previous else None)
    new_codes = _codes(session, gen.id)
    retired = old_codes - new_codes
    old_grids = {c: to_shape(a.geom) for c, a in _areas(session, previous.id, "grid").items()} if previous else {}
    new_grids = {c: to_shape(a.geom) for c, a in _areas(session, gen.id, "grid").items()}
    planned_branch, planned_staff = _plan(session, gen.id)
    # an area only re-coded (same outline under another parent) takes its old code's branch and staff along
    carried = 0
    for new_code, old_code in recoded(session, previous.id if previous else None, gen.id).items():
        if new_code not in planned_branch:
            for row, _ in _open_branch_rows(session, [old_code], day):
                session.add(
                    PartyOrgArea(
                        party_org_id=row.party_org_id, area_code=new_code, valid_from=max(day, row.valid_from or day)
                    )
                )
                carried += 1
        if new_code not in planned_staff:
            for staff_row in session.scalars(
                sa.select(StaffArea).where(StaffArea.area_code == old_code).order_by(StaffArea.id)
            ):
                session.add(StaffArea(staff_id=staff_row.staff_id, area_code=new_code, role=staff_row.role))
                carried += 1
    session.flush()
    # the grid branches that served a grid now retired (they may be left without a grid)
    held_retired = {
        org.id: row.area_code
        for row, org in _open_branch_rows(session, retired, day)
        if org.kind == "grid_branch" and row.area_code in old_grids
    }
    opened, closed = [], 0

    def close(row: PartyOrgArea) -> None:
        nonlocal closed
        if row.valid_from is not None and row.valid_from >= day:
            session.delete(row)  # it would never have been in force
        else:
            row.valid_to = day
        closed += 1

    for code, branch_id in planned_branch.items():
        if code not in new_codes:
            continue
        org = session.get(PartyOrg, branch_id)
        if org is None:
            continue
        rows = _open_branch_rows(session, [code], day)
        if any(o.id == branch_id for _, o in rows):
            continue
        for row, other in rows:
            if other.kind == org.kind:
                close(row)
        session.add(PartyOrgArea(party_org_id=branch_id, area_code=code, valid_from=day))
        opened.append({"code": code, "branch_id": branch_id})
    for row, _ in _open_branch_rows(session, retired, day):
        close(row)
    removed_staff = (
        rowcount(
            session.execute(
                sa.delete(StaffArea)
                .where(StaffArea.area_code.in_(retired))
                .execution_options(synchronize_session=False)
            )
        )
        if retired
        else 0
    )
    staffed = 0
    for code, people in planned_staff.items():
        if code not in new_codes:
            continue
        session.execute(
            sa.delete(StaffArea).where(StaffArea.area_code == code).execution_options(synchronize_session=False)
        )
        for staff_id, role in people:
            session.add(StaffArea(staff_id=staff_id, area_code=code, role=role))
            staffed += 1
    session.flush()
    # a grid branch left without any grid is marked for merging into the branch of the grid that took most of its area
    merged = []
    for org_id, old_code in held_retired.items():
        still = session.scalar(
            sa.select(sa.func.count())
            .select_from(PartyOrgArea)
            .where(
                PartyOrgArea.party_org_id == org_id,
                sa.or_(PartyOrgArea.valid_to.is_(None), PartyOrgArea.valid_to > day),
            )
        )
        if still:
            continue
        old = old_grids[old_code]
        best = max(new_grids, key=lambda c: new_grids[c].intersection(old).area, default=None)
        if best is None or new_grids[best].intersection(old).area <= 0:
            continue
        target = _current_branches(session, [best], day).get(best)
        if target is not None and target.id != org_id:
            merging = session.get(PartyOrg, org_id)
            assert merging is not None  # a branch of the old grid, read above
            merging.merge_into_id = target.id
            merged.append({"branch_id": org_id, "into": target.id, "from_grid": old_code, "grid": best})
    session.flush()
    # the new boundaries' lookup index, from (or into) the file every process on the machine loads
    # (`generations.shared_index`): the servers' workers swapping it in and the next `gridmap locate-file` then load
    # it instead of each building it again (seconds at province scale; the first locate-file ran at 0.45x the naive
    # geopandas pipeline, building it)
    index = shared_index(session, gen.id)
    places = _relocate_places(session, index)
    cases = _relocate_open_cases(session, index, previous, gen, day, actor=actor, at=at)
    return {
        "branches_assigned": opened,
        "branch_rows_closed": closed,
        "staff_assigned": staffed,
        "carried": carried,
        "staff_removed": removed_staff,
        "merged_branches": merged,
        "places_moved": places,
        "cases_relocated": cases,
    }


def _codes_at(index: AreaIndex, lon: np.ndarray, lat: np.ndarray, level: str) -> list[str | None]:
    """The code at `level` of the leaf each point lies in (the index's tie rule), None outside every leaf."""
    leaf = index.locate_many(np.asarray(lon, float), np.asarray(lat, float)) if len(lon) else np.array([], int)
    cache: dict[int, str | None] = {}
    out = []
    for i in leaf.tolist():
        if i not in cache:
            cache[i] = (
                None
                if i < 0
                else next((a.code for a in index.chain_of(index.leaves[i].code) if a.level == level), None)
            )
        out.append(cache[i])
    return out


def _relocate_places(session: Session, index: AreaIndex) -> int:
    """Places take the code, at the level their code has, of the area their point lies in now."""
    rows = session.execute(
        sa.select(Place.id, Place.area_code, sa.func.ST_X(Place.geom), sa.func.ST_Y(Place.geom)).where(
            Place.area_code.is_not(None)
        )
    ).all()
    by_level: dict[str, list[Any]] = defaultdict(list[Any])
    for row in rows:
        level = CODE_LEVEL.get(len(row[1]))
        if level:
            by_level[level].append(row)
    moved = 0
    for level, items in by_level.items():
        codes = _codes_at(index, np.array([r[2] for r in items]), np.array([r[3] for r in items]), level)
        for (place_id, old, _, _), new in zip(items, codes):
            if new is not None and new != old:
                session.execute(
                    sa.update(Place)
                    .where(Place.id == place_id)
                    .values(area_code=new)
                    .execution_options(synchronize_session=False)
                )
                moved += 1
    return moved


def _case_chains(
    index: AreaIndex, lon: np.ndarray, lat: np.ndarray, flags: list[Any], stored: list[Any]
) -> list[list[Any]]:
    """Where each case lies under `index` by intake's rule: the leaf its point lies in; outside every leaf, the
    nearest leaf within intake's `nearest_m` (`assigned_to_nearest`); the leaf a dispatcher chose for it
    (`grid_chosen`, see `workflow.relocate`; `stored` is the case's leaf code) while that code is still a leaf.
    An empty chain: in no grid."""
    from gridmap.locating.locate import LocateOptions  # noqa: PLC0415 - gridmap.locating.locate imports what this module uses

    nearest_m = LocateOptions().nearest_m
    leaves = {ref.code for ref in index.leaves}
    leaf = index.locate_many(np.asarray(lon, float), np.asarray(lat, float)) if len(lon) else np.array([], int)
    out = []
    for i, x, y, f, own in zip(
        leaf.tolist(), np.asarray(lon, float).tolist(), np.asarray(lat, float).tolist(), flags, stored
    ):
        if "grid_chosen" in (f or ()) and own in leaves:
            out.append(index.chain_of(own))
        elif i >= 0:
            out.append(index.chain_of(index.leaves[i].code))
        else:
            out.append(index.locate(x, y, nearest_m=nearest_m).chain)
    return out


LEVEL_COLUMNS = (
    ("district", "district_code"),
    ("subdistrict", "subdistrict_code"),
    ("community", "community_code"),
    ("grid", "grid_code"),
    ("microgrid", "microgrid_code"),
)


def _relocate_open_cases(
    session: Session,
    index: AreaIndex,
    previous: Generation | None,
    gen: Generation,
    day: dt.date,
    *,
    actor: str,
    at: dt.datetime,
) -> int:
    """Every open case whose grid or micro-grid changes takes the new codes, branch and (when its worker does not
    serve the new grid) the new grid's full-time worker, with a `boundary_change` event."""
    cases = list(
        session.scalars(
            sa.select(Case)
            .where(Case.state.not_in(FINISHED_STATES), Case.lon.is_not(None), Case.lat.is_not(None))
            .order_by(Case.id)
        )
    )
    if not cases:
        return 0
    names: dict[str | None, str] = dict(
        session.execute(
            sa.select(Area.code, Area.name)
            .where(
                Area.generation_id.in_([g.id for g in (previous, gen) if g is not None]),
                Area.level.in_(("grid", "microgrid")),
            )
            .order_by(Area.generation_id)
        ).all()
    )
    moved = 0
    territory: dict[str | None, tuple[int | None, int | None]] = {}
    chains = _case_chains(
        index,
        np.array([c.lon for c in cases], float),
        np.array([c.lat for c in cases], float),
        [c.locate_flags for c in cases],
        [c.microgrid_code or c.grid_code for c in cases],
    )
    for case, chain in zip(cases, chains):
        at_level = {ref.level: ref.code for ref in chain}
        new = {column: at_level.get(level) for level, column in LEVEL_COLUMNS}
        if new["grid_code"] == case.grid_code and new["microgrid_code"] == case.microgrid_code:
            continue
        old = {column: getattr(case, column) for _, column in LEVEL_COLUMNS}
        detail = {
            "generation_id": gen.id,
            "previous_generation_id": previous.id if previous else None,
            "effective_from": day.isoformat(),
            "from": {
                "grid": old["grid_code"],
                "grid_name": names.get(old["grid_code"]),
                "microgrid": old["microgrid_code"],
                "microgrid_name": names.get(old["microgrid_code"]),
            },
            "to": {
                "grid": new["grid_code"],
                "grid_name": names.get(new["grid_code"]),
                "microgrid": new["microgrid_code"],
                "microgrid_name": names.get(new["microgrid_code"]),
            },
            "codes": {
                column: {"from": old[column], "to": new[column]}
                for _, column in LEVEL_COLUMNS
                if old[column] != new[column]
            },
        }  # for measures: where the case was before
        for column, value in new.items():
            setattr(case, column, value)
        case.generation_id = gen.id
        grid = new["grid_code"]
        if grid is not None and grid not in territory:
            branch = _current_branches(session, [grid], day).get(grid)
            worker = session.scalar(
                sa.select(StaffArea.staff_id)
                .where(StaffArea.area_code == grid, StaffArea.role == "fulltime_worker")
                .order_by(StaffArea.id)
                .limit(1)
            )
            territory[grid] = (branch.id if branch else None, worker)
        branch_id, worker_id = territory.get(grid, (None, None))
        if (case.branch_id is not None or case.state != "reported") and case.branch_id != branch_id:
            detail["branch_id"] = {"from": case.branch_id, "to": branch_id}
            case.branch_id = branch_id
        if case.assignee_id is not None:
            serves = grid is not None and session.scalar(
                sa.select(sa.func.count())
                .select_from(StaffArea)
                .where(
                    StaffArea.staff_id == case.assignee_id,
                    StaffArea.area_code.in_([c for c in (grid, new["microgrid_code"]) if c]),
                )
            )
            if not serves and worker_id is not None and worker_id != case.assignee_id:
                detail["assignee_id"] = {"from": case.assignee_id, "to": worker_id, "rule": "territory_first"}
                case.assignee_id = worker_id
        case.version = (case.version or 1) + 1
        session.add(
            CaseEvent(
                case_id=case.id,
                at=at,
                actor=actor,
                action="boundary_change",
                from_state=case.state,
                to_state=case.state,
                detail=detail,
            )
        )
        moved += 1
    session.flush()
    return moved


# -- impact -----------------------------------------------------------------------------------------------------


def _same(a: shapely.Geometry, b: shapely.Geometry) -> bool:
    return bool(shapely.equals_exact(shapely.normalize(a), shapely.normalize(b), tolerance=1e-9))


def _holder(
    case: Case | sa.Row[Any], staff: dict[int, str], departments: dict[int, tuple[str, str]]
) -> dict[str, Any] | None:
    if case.assignee_id is not None:
        return {"kind": "worker", "id": case.assignee_id, "name": staff.get(case.assignee_id)}
    if case.department_id is not None:
        code, name = departments.get(case.department_id, (None, None))
        return {"kind": "department", "id": case.department_id, "code": code, "name": name}
    return None


def impact(
    session: Session, generation_id: int, *, old_index: AreaIndex | None = None, new_index: AreaIndex | None = None
) -> dict[str, Any]:
    """What publishing a generation would move, against the active generation, per changed grid (a code new,
    retired, or with another outline): buildings, compounds, households, population and party members moving in
    and out (a building by its point; population and party members apportioned to buildings by households — the
    old micro-grid's persons per household, the old grid branch's members per household), staff and branch before
    and after, the open cases that would be re-located (with their holder), and historical case counts (cases
    recorded under the code, and all cases whose point lies in the old and the new outline)."""
    gen = _generation(session, generation_id)
    active = active_generation(session)
    if old_index is None or old_index.generation_id != active.id:
        old_index = load_index(session, active.id)
    if new_index is None or new_index.generation_id != gen.id:
        new_index = load_index(session, gen.id)
    old_grids = _areas(session, active.id, "grid")
    new_grids = _areas(session, gen.id, "grid")
    old_shapes = {c: to_shape(a.geom) for c, a in old_grids.items()}
    new_shapes = {c: to_shape(a.geom) for c, a in new_grids.items()}
    created = sorted(set(new_grids) - set(old_grids))
    retired = sorted(set(old_grids) - set(new_grids))
    redrawn = sorted(c for c in set(old_grids) & set(new_grids) if not _same(old_shapes[c], new_shapes[c]))
    changed = {
        **dict.fromkeys(created, "new"),
        **dict.fromkeys(retired, "retired"),
        **dict.fromkeys(redrawn, "redrawn"),
    }

    micro = {
        a.code: a
        for a in session.scalars(sa.select(Area).where(Area.generation_id == active.id, Area.level == "microgrid"))
    }
    day = _planning_day(active)
    branches_now = _current_branches(session, list(old_grids), day)
    members = {c: (b.member_count or 0) for c, b in branches_now.items()}

    def empty() -> dict[str, Any]:
        return {"buildings": 0, "compounds": 0, "households": 0, "population": [], "party_members": []}

    moves: dict[str, dict[str, Any]] = {
        c: {"in": empty(), "out": empty(), "households_before": 0, "households_after": 0} for c in changed
    }
    buildings = session.execute(
        sa.select(Place.id, Place.households, sa.func.ST_X(Place.geom), sa.func.ST_Y(Place.geom)).where(
            Place.kind == "building"
        )
    ).all()
    lon = np.array([r[2] for r in buildings], float)
    lat = np.array([r[3] for r in buildings], float)
    old_g, new_g = _codes_at(old_index, lon, lat, "grid"), _codes_at(new_index, lon, lat, "grid")
    old_m = _codes_at(old_index, lon, lat, "microgrid")
    grid_households: dict[str, int] = defaultdict(int)
    for (_, hh, _, _), g in zip(buildings, old_g):
        if g is not None:
            grid_households[g] += hh or 0
    for (_, hh, _, _), og, ng, om in zip(buildings, old_g, new_g, old_m):
        hh = hh or 0
        if og in moves:
            moves[og]["households_before"] += hh
        if ng in moves:
            moves[ng]["households_after"] += hh
        if og == ng:
            continue
        m = micro.get(om) if om is not None else None
        population = hh * m.population / m.households if m is not None and m.households else 0.0
        party = hh * members.get(og, 0) / grid_households[og] if og and grid_households[og] else 0.0
        for code, side in ((og, "out"), (ng, "in")):
            if code in moves:
                entry = moves[code][side]
                entry["buildings"] += 1
                entry["households"] += hh
                entry["population"].append(population)
                entry["party_members"].append(party)
    compounds = session.execute(
        sa.select(Place.id, sa.func.ST_X(Place.geom), sa.func.ST_Y(Place.geom)).where(Place.kind == "compound")
    ).all()
    clon = np.array([r[1] for r in compounds], float)
    clat = np.array([r[2] for r in compounds], float)
    for og, ng in zip(_codes_at(old_index, clon, clat, "grid"), _codes_at(new_index, clon, clat, "grid")):
        if og != ng:
            for code, side in ((og, "out"), (ng, "in")):
                if code in moves:
                    moves[code][side]["compounds"] += 1
    for entry in moves.values():
        for side in ("in", "out"):
            entry[side]["population"] = round(math.fsum(entry[side]["population"]))
            entry[side]["party_members"] = round(math.fsum(entry[side]["party_members"]))

    # cases: the open ones that would be re-located, and historical counts per outline
    cases = session.execute(
        sa.select(
            Case.id,
            Case.number,
            Case.state,
            Case.grid_code,
            Case.microgrid_code,
            Case.lon,
            Case.lat,
            Case.assignee_id,
            Case.department_id,
            Case.locate_flags,
        )
        .where(Case.lon.is_not(None), Case.lat.is_not(None))
        .order_by(Case.id)
    ).all()
    klon = np.array([r.lon for r in cases], float)
    klat = np.array([r.lat for r in cases], float)
    k_old = _codes_at(old_index, klon, klat, "grid")
    k_new = _codes_at(new_index, klon, klat, "grid")
    # an open case moves where intake would place it under the new boundaries (as publishing moves it)
    is_open = np.array([r.state not in FINISHED_STATES for r in cases], bool)
    open_rows = [r for r, o in zip(cases, is_open) if o]
    placed = iter(
        _case_chains(
            new_index,
            klon[is_open],
            klat[is_open],
            [r.locate_flags for r in open_rows],
            [r.microgrid_code or r.grid_code for r in open_rows],
        )
    )
    k_open = [({ref.level: ref.code for ref in next(placed)} if o else {}) for o in is_open]
    staff_names = dict(
        session.execute(
            sa.select(Staff.id, Staff.name).where(Staff.id.in_({r.assignee_id for r in cases if r.assignee_id}))
        ).all()
    )
    departments = {d.id: (d.code, d.name) for d in session.scalars(sa.select(Department))}
    history = {c: {"recorded": 0, "in_old_outline": 0, "in_new_outline": 0} for c in changed}
    open_cases: dict[str, dict[str, list[dict[str, Any]]]] = {c: {"in": [], "out": []} for c in changed}
    recorded = (
        dict(
            session.execute(
                sa.select(Case.grid_code, sa.func.count())
                .where(Case.grid_code.in_(list(changed)))
                .group_by(Case.grid_code)
            ).all()
        )
        if changed
        else {}
    )
    for code, n in recorded.items():
        if code is not None:  # grid codes of `changed` only
            history[code]["recorded"] = n
    for row, og, ng, at_level in zip(cases, k_old, k_new, k_open):
        if og in history:
            history[og]["in_old_outline"] += 1
        if ng in history:
            history[ng]["in_new_outline"] += 1
        ng, nm = at_level.get("grid"), at_level.get("microgrid")
        if row.state in FINISHED_STATES or (ng == row.grid_code and nm == row.microgrid_code):
            continue
        if ng == row.grid_code:
            continue  # moves between micro-grids of one grid: not a grid change
        item = {
            "id": row.id,
            "number": row.number,
            "state": row.state,
            "from_grid": row.grid_code,
            "to_grid": ng,
            "to_microgrid": nm,
            "holder": _holder(row, staff_names, departments),
        }
        for code, side in ((row.grid_code, "out"), (ng, "in")):
            if code in open_cases:
                open_cases[code][side].append(item)

    plan = {r["code"]: r for r in assignments(session, gen.id)["grids"]}
    staff_now = _current_staff(session, retired + redrawn)
    grids = []
    for code in sorted(changed):
        area = new_grids[code] if code in new_grids else old_grids[code]
        before_branch = branches_now.get(code)
        grids.append(
            {
                "code": code,
                "name": area.name,
                "change": changed[code],
                "households_before": moves[code]["households_before"],
                "households_after": moves[code]["households_after"],
                "moved_in": moves[code]["in"],
                "moved_out": moves[code]["out"],
                "branch_before": {"id": before_branch.id, "name": before_branch.name} if before_branch else None,
                "branch_after": plan[code]["branch"] if code in plan else None,
                "staff_before": [_staff_dict(p, role) for p, role in staff_now.get(code, [])],
                "staff_after": plan[code]["staff"] if code in plan else [],
                "open_cases_in": open_cases[code]["in"],
                "open_cases_out": open_cases[code]["out"],
                "historical_cases": history[code],
            }
        )
    moved_buildings = sum(1 for og, ng in zip(old_g, new_g) if og != ng)
    moved_households = sum((r[1] or 0) for r, og, ng in zip(buildings, old_g, new_g) if og != ng)
    moving_open = {i["id"] for g in grids for i in g["open_cases_out"] + g["open_cases_in"]}
    return {
        "generation_id": gen.id,
        "active_id": active.id,
        "created": created,
        "retired": retired,
        "redrawn": redrawn,
        "grids": grids,
        "totals": {
            "changed_grids": len(grids),
            "buildings_moved": moved_buildings,
            "households_moved": moved_households,
            "open_cases_moved": len(moving_open),
        },
    }


def active_id(session: Session) -> int | None:
    """The id of the active generation, None when there is none."""
    gen = _active(session)
    return gen.id if gen is not None else None
