"""Case counts per area: open, overdue, closed (issue #4 adds the full measures of docs/DOMAIN.md §4)."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import Session

from gridmap.cases.intake import LEVEL_COLUMNS, NOT_RUNNING
from gridmap.store.tables import FINISHED_STATES as FINISHED
from gridmap.store.tables import Area, Case


def case_counts(session: Session, area: Area, now: dt.datetime | None = None) -> dict[str, int]:
    """Total, open (not finished), overdue (running past its deadline) and closed cases of an area."""
    now = now or dt.datetime.now(dt.UTC)
    column = LEVEL_COLUMNS[area.level]
    open_ = Case.state.not_in(FINISHED)
    overdue = sa.and_(Case.state.not_in(NOT_RUNNING), Case.due_at.is_not(None), Case.due_at < now)
    row = session.execute(
        sa.select(
            sa.func.count(),
            sa.func.sum(sa.case((open_, 1), else_=0)),
            sa.func.sum(sa.case((overdue, 1), else_=0)),
            sa.func.sum(sa.case((Case.state == "closed", 1), else_=0)),
        ).where(column == area.code)
    ).one()
    total, open_n, overdue_n, closed = (int(v or 0) for v in row)
    return {"total": total, "open": open_n, "overdue": overdue_n, "closed": closed}
