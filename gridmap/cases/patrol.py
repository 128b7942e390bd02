"""Patrol reports (巡查上报): a grid worker on patrol reports what they find, from the phone app.

The worker is named by the gateway (`Actor` with role `worker` and a staff id) and must serve at least one grid.
The report must name its category (the worker knows the catalogue); it is located, filed and routed by the same
rules as every case, and records who found it. A point outside the worker's own grids is flagged
`outside_own_grid` and still goes to the grid where it lies (先属地). With `handled_on_spot` (即报即处) the worker
has already dealt with it: the case is accepted and handled by them at once and waits for someone else to verify
it — allowed only when the rules route the case to that same worker; otherwise nothing is stored and the error
says where the case would go.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import sqlalchemy as sa
from sqlalchemy import orm

from gridmap.calendar import WorkCalendar
from gridmap.cases import workflow
from gridmap.cases.intake import NewCase, create_case_once
from gridmap.errors import InvalidInput
from gridmap.geo.index import AreaIndex
from gridmap.store.tables import Case, StaffArea

FLAG_OUTSIDE_OWN = "outside_own_grid"


def report(
    sessionmaker: orm.sessionmaker[orm.Session],
    index: AreaIndex,
    new: NewCase,
    actor: workflow.Actor,
    *,
    calendar: WorkCalendar,
    handled_on_spot: bool = False,
    note: str | None = None,
    key: str | None = None,
    now: dt.datetime | None = None,
) -> tuple[Case, bool]:
    """File a patrol report at most once per idempotency key (`key`); returns (case, created)."""
    workflow.require_role(actor.user, actor.role, ("worker",), "send a patrol report (grid workers do)")
    if actor.staff_id is None:
        raise InvalidInput("staff_id: say which worker reports", field="staff_id", zh="人员：请注明由哪位网格员上报。")
    if not new.category:
        raise InvalidInput(
            "category: a patrol report names its category",
            field="category",
            zh="事项类别：巡查上报须注明事项类别。",
            see="categories",
        )
    with sessionmaker() as session:
        own = set(session.scalars(sa.select(StaffArea.area_code).where(StaffArea.staff_id == actor.staff_id)))
    if not own:
        raise workflow.Forbidden(
            f"staff_id: staff {actor.staff_id} serves no grid",
            field="staff_id",
            zh=f"人员：编号 {actor.staff_id} 的人员不负责任何网格。",
        )
    new = dataclasses.replace(new, source="patrol", reported_by_staff_id=actor.staff_id)

    def then(session: orm.Session, case: Case) -> None:
        if not own & {case.grid_code, case.microgrid_code, case.community_code}:
            case.locate_flags = [*(case.locate_flags or []), FLAG_OUTSIDE_OWN]
        if not handled_on_spot:
            return
        if case.state != "dispatched" or case.assignee_id != actor.staff_id:
            where = (
                f"to department {case.department_id} (a component: its owner first)"
                if case.department_id
                else f"to staff {case.assignee_id}, the worker of grid {case.grid_code}"
                if case.grid_code
                else "nowhere: it lies in no grid"
            )
            where_zh = (
                f"部门 {case.department_id}（部件类案件先交其权属单位）"
                if case.department_id
                else f"网格 {case.grid_code} 的网格员（人员编号 {case.assignee_id}）"
                if case.grid_code
                else "无处可派（不在任何网格内）"
            )
            raise InvalidInput(
                f"handled_on_spot: this case goes {where}, not to you; report it without handled_on_spot",
                field="handled_on_spot",
                zh=f"即报即处：此案件应交{where_zh}，不归您处置；请不勾选即报即处再上报。",
            )
        at = now or dt.datetime.now(dt.UTC)
        workflow.act(session, case.id, "accept", actor, version=case.version, calendar=calendar, now=at)
        workflow.act(
            session,
            case.id,
            "handle",
            actor,
            version=case.version,
            calendar=calendar,
            now=at,
            params={"note": note, "on_spot": True},
        )

    return create_case_once(
        sessionmaker,
        index,
        new,
        key,
        actor=actor.label(),
        now=now,
        then=then,
        extra={"handled_on_spot": handled_on_spot, "note": note},
    )
